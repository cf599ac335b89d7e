//! corralctl: control corrald (or supervisord) from the command line.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use corral::ctl::args::Cli;

fn main() -> ExitCode {
    let argv0 = std::env::args_os().next().map(PathBuf::from).unwrap_or_else(|| PathBuf::from("corralctl"));
    let cli = Cli::parse();
    let code = corral::ctl::run::run(cli, &argv0);
    ExitCode::from(u8::try_from(code).unwrap_or(1))
}
