//! corralctl's entry: parse the command line, then run one command, the shell,
//! or one of corralctl's own tools (top, check-config, completions, man page).

use std::io::{self, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::CommandFactory;

use super::args::{Cli, Command, Shell};
use super::controller::{Controller, Style};
use super::options::{Options, Overrides};
use super::{shell, top};
use crate::config;

/// Run corralctl with parsed arguments; returns the process exit status.
pub fn run(cli: Cli, argv0: &Path) -> i32 {
    match &cli.command {
        Some(Command::Completions { shell }) => return completions(*shell, &mut io::stdout()),
        Some(Command::Manpage) => return manpage(&mut io::stdout()),
        Some(Command::CheckConfig { file }) => return check_config(file.as_deref(), argv0),
        _ => {}
    }
    let line = cli.command.as_ref().and_then(Command::as_line);
    let overrides = Overrides {
        configuration: cli.configuration.clone(),
        serverurl: cli.serverurl.clone(),
        username: cli.username.clone(),
        password: cli.password.clone(),
        interactive: cli.interactive || cli.command.is_none(),
    };
    let options = match Options::resolve(&overrides, argv0) {
        Ok(o) => o,
        Err(e) => {
            eprintln!("Error: {e}");
            eprintln!("For help, use {} -h", argv0.display());
            return 2;
        }
    };
    if let Some(Command::Top { sort, interval }) = &cli.command {
        return run_top(options, *sort, *interval);
    }
    let style = Style {
        color: !cli.json && io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none(),
        json: cli.json,
    };
    let mut ctl = Controller::new(options, style, Box::new(io::stdout()));
    match line {
        Some(line) => {
            ctl.onecmd(&line);
            ctl.flush();
            ctl.exitstatus
        }
        None => shell::run(&mut ctl),
    }
}

fn run_top(options: Options, sort: super::args::SortKey, interval: f64) -> i32 {
    let ctl = Controller::new(options, Style::default(), Box::new(io::sink()));
    let client = match ctl.client() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("Error: {e}");
            return 2;
        }
    };
    let interval = Duration::try_from_secs_f64(interval.max(0.1)).unwrap_or(Duration::from_secs(1));
    match top::run(&client, &ctl.options.serverurl, sort, interval) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("Error: {e}");
            1
        }
    }
}

/// `check-config [file]`: the same validation and summary as `corrald --check-config`.
fn check_config(file: Option<&Path>, argv0: &Path) -> i32 {
    let path: PathBuf = match file {
        Some(p) => p.to_path_buf(),
        None => match config::find_config(argv0) {
            Ok(p) => p,
            Err(e) => {
                eprintln!("{e}");
                return 1;
            }
        },
    };
    match config::load(&path) {
        Ok(cfg) => {
            print!("{}", config::describe(&cfg));
            0
        }
        Err(e) => {
            eprintln!("{e}");
            1
        }
    }
}

/// `completions SHELL`: the completion script for `shell`.
pub fn completions(shell: Shell, out: &mut dyn Write) -> i32 {
    let mut cmd = Cli::command();
    match shell {
        Shell::Bash => clap_complete::generate(clap_complete::Shell::Bash, &mut cmd, "corralctl", out),
        Shell::Zsh => clap_complete::generate(clap_complete::Shell::Zsh, &mut cmd, "corralctl", out),
        Shell::Fish => clap_complete::generate(clap_complete::Shell::Fish, &mut cmd, "corralctl", out),
    }
    0
}

/// The date in the man page header: fixed, so the checked-in page regenerates
/// byte for byte (bump it with the release).
const MAN_DATE: &str = "2026-11-25";

/// `manpage`: corralctl(1) in roff.
pub fn manpage(out: &mut dyn Write) -> i32 {
    match clap_mangen::Man::new(Cli::command()).date(MAN_DATE).manual("User Commands").render(out) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("Error: {e}");
            1
        }
    }
}
