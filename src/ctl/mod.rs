//! corralctl: commands and output formatting.

pub mod client;
