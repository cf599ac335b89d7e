//! corralctl's command line (clap), also the source of its completions and man page.
//!
//! Options are supervisorctl's (`-c`, `-s`, `-u`, `-p`, `-i`, `-r`). Each
//! supervisorctl command is a subcommand taking its words verbatim, so
//! `corralctl tail -f web` reaches the same parser as the shell line
//! `tail -f web` and behaves identically.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// Words after a supervisorctl-style command, passed through unparsed.
#[derive(Debug, Clone, Args, PartialEq, Eq)]
pub struct Words {
    /// Arguments, as supervisorctl takes them.
    #[arg(trailing_var_arg = true, allow_hyphen_values = true, num_args = 0..)]
    pub args: Vec<String>,
}

/// Control corrald (or any supervisord) from the command line.
#[derive(Debug, Parser)]
#[command(
    name = "corralctl",
    version,
    about = "Control corrald (or supervisord): supervisorctl's commands, plus JSON, stats, limits and top",
    long_about = "Control corrald (or supervisord) over its XML-RPC API.\n\n\
        Every supervisorctl command works with the same syntax, output and exit codes. \
        Without a command, an interactive shell starts.",
    disable_help_subcommand = true,
    allow_external_subcommands = true
)]
pub struct Cli {
    /// Configuration file path (searched for when not given)
    #[arg(short = 'c', long = "configuration", value_name = "FILE")]
    pub configuration: Option<PathBuf>,
    /// URL on which the server is listening: unix:///path or http://host:port (default http://localhost:9001)
    #[arg(short = 's', long = "serverurl", value_name = "URL")]
    pub serverurl: Option<String>,
    /// User name for authentication with the server
    #[arg(short = 'u', long = "username", value_name = "USER")]
    pub username: Option<String>,
    /// Password for authentication with the server
    #[arg(short = 'p', long = "password", value_name = "PASSWORD")]
    pub password: Option<String>,
    /// Start an interactive shell (with a command: ask before reload and shutdown)
    #[arg(short = 'i', long = "interactive")]
    pub interactive: bool,
    /// Accepted for supervisorctl compatibility; like supervisorctl, only the config's history_file is used
    #[arg(short = 'r', long = "history-file", alias = "history_file", value_name = "FILE")]
    pub history_file: Option<PathBuf>,
    /// Print JSON on read commands (status, avail, pid, version, stats, limits)
    #[arg(long, global = true)]
    pub json: bool,
    /// The command to run; none starts the shell
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// Which column `top` sorts by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Default)]
pub enum SortKey {
    /// CPU percent, highest first.
    #[default]
    Cpu,
    /// Current memory, highest first.
    Mem,
}

/// Shells `completions` can write for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Shell {
    /// bash
    Bash,
    /// zsh
    Zsh,
    /// fish
    Fish,
}

/// corralctl's commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Get status of processes: status [name|group:*|all ...]
    Status(Words),
    /// Start processes: start name|group:*|all ...
    Start(Words),
    /// Stop processes: stop name|group:*|all ...
    Stop(Words),
    /// Restart processes (stop, then start; does not reread config)
    Restart(Words),
    /// Send a signal: signal SIG name|group:*|all ...
    Signal(Words),
    /// PID of the daemon, of named processes, or of all: pid [name|all]
    Pid(Words),
    /// Last bytes of a process log: tail [-f|-N] name [stdout|stderr]
    Tail(Words),
    /// Follow a process's output and send it typed lines: fg name
    Fg(Words),
    /// Last bytes of the daemon's log: maintail [-f|-N]
    Maintail(Words),
    /// Clear process logs: clear name ...|all
    Clear(Words),
    /// List configured processes
    Avail(Words),
    /// Reload the configuration without applying it
    Reread(Words),
    /// Reload the configuration and apply it: update [all|group ...]
    Update(Words),
    /// Activate groups from the reread configuration: add group ...
    Add(Words),
    /// Remove stopped groups: remove group ...
    Remove(Words),
    /// Restart the daemon
    Reload(Words),
    /// Shut the daemon down
    Shutdown(Words),
    /// Show the daemon's supervisor version
    Version(Words),
    /// Connect to another server and show its status: open URL
    Open(Words),
    /// supervisorctl's help: help [command]
    Help(Words),
    /// Exit (for scripts that pipe shell commands)
    Quit(Words),
    /// Exit (for scripts that pipe shell commands)
    Exit(Words),
    /// Resource use per process: CPU %, memory, tasks, fds, restarts, OOM kills, cgroup
    Stats(Words),
    /// Show or change a process's cgroup limits: limits name [key=value ...]
    Limits(Words),
    /// Re-execute the daemon's (possibly upgraded) binary without stopping programs
    Reexec(Words),
    /// Live full-screen view of processes (c: sort by CPU, m: by memory, q: quit)
    Top {
        /// Initial sort order
        #[arg(long, value_enum, default_value_t = SortKey::Cpu)]
        sort: SortKey,
        /// Seconds between refreshes
        #[arg(long, default_value_t = 1.0)]
        interval: f64,
    },
    /// Validate a configuration file as corrald --check-config does
    CheckConfig {
        /// The file (searched for when not given)
        file: Option<PathBuf>,
    },
    /// Write a shell completion script to stdout
    Completions {
        /// Target shell
        #[arg(value_enum)]
        shell: Shell,
    },
    /// Write the corralctl(1) man page to stdout
    Manpage,
    /// Any other word: reported as supervisorctl does (*** Unknown syntax)
    #[command(external_subcommand)]
    Other(Vec<String>),
}

impl Command {
    /// The shell line a supervisorctl-style command stands for; `None` for corralctl-only commands.
    pub fn as_line(&self) -> Option<String> {
        use Command::*;
        let (name, words) = match self {
            Status(w) => ("status", w),
            Start(w) => ("start", w),
            Stop(w) => ("stop", w),
            Restart(w) => ("restart", w),
            Signal(w) => ("signal", w),
            Pid(w) => ("pid", w),
            Tail(w) => ("tail", w),
            Fg(w) => ("fg", w),
            Maintail(w) => ("maintail", w),
            Clear(w) => ("clear", w),
            Avail(w) => ("avail", w),
            Reread(w) => ("reread", w),
            Update(w) => ("update", w),
            Add(w) => ("add", w),
            Remove(w) => ("remove", w),
            Reload(w) => ("reload", w),
            Shutdown(w) => ("shutdown", w),
            Version(w) => ("version", w),
            Open(w) => ("open", w),
            Help(w) => ("help", w),
            Quit(w) => ("quit", w),
            Exit(w) => ("exit", w),
            Stats(w) => ("stats", w),
            Limits(w) => ("limits", w),
            Reexec(w) => ("reexec", w),
            Other(all) => return Some(all.join(" ")),
            Top { .. } | CheckConfig { .. } | Completions { .. } | Manpage => return None,
        };
        // supervisorctl joins its arguments with spaces and parses the result as a shell line.
        let mut line = name.to_string();
        for w in &words.args {
            line.push(' ');
            line.push_str(w);
        }
        Some(line)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(argv: &[&str]) -> Option<String> {
        Cli::try_parse_from(argv).ok()?.command?.as_line()
    }

    #[test]
    fn commands_pass_words_through() {
        assert_eq!(
            line(&["corralctl", "tail", "-f", "web", "stderr"]).as_deref(),
            Some("tail -f web stderr")
        );
        assert_eq!(line(&["corralctl", "tail", "-100", "web"]).as_deref(), Some("tail -100 web"));
        assert_eq!(line(&["corralctl", "status"]).as_deref(), Some("status"));
        assert_eq!(line(&["corralctl", "frobnicate", "x"]).as_deref(), Some("frobnicate x"));
        let cli = Cli::try_parse_from(["corralctl", "-s", "unix:///x", "status", "--json"]).unwrap();
        assert!(cli.json);
        assert_eq!(cli.serverurl.as_deref(), Some("unix:///x"));
    }

    #[test]
    fn definition_is_consistent() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }
}
