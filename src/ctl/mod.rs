//! corralctl: supervisorctl's commands with its output and exit codes, plus
//! JSON output, stats, limits, `top`, config checking, completions and a man page.
//!
//! [`run::run`] is the entry; [`controller::Controller`] interprets one command
//! line as supervisorctl does; [`commands`] holds the commands; [`client`] speaks
//! XML-RPC (and streams `/logtail`).

pub mod args;
pub mod client;
pub mod commands;
pub mod controller;
pub mod error;
pub mod format;
pub mod interrupt;
pub mod json;
pub mod options;
pub mod run;
pub mod shell;
pub mod stats_table;
pub mod top;
pub mod value;
