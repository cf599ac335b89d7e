//! corralctl: commands and output formatting.
