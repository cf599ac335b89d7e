//! supervisorctl's commands (and corral's additions), one module per concern.
//!
//! Each command takes the controller and the rest of the line, prints what
//! supervisorctl prints and sets its exit status. `Ok(true)` ends the shell.

mod corral;
mod daemon;
mod groups;
mod help;
mod logs;
mod processes;
mod status;

use super::controller::Controller;
use super::error::CtlError;

pub use help::{help_text, SUPERVISORCTL_COMMANDS};

/// Commands beyond supervisorctl's that the shell and one-shot mode also accept.
pub const CORRAL_COMMANDS: &[&str] = &["limits", "reexec", "stats"];

/// Read commands that accept `--json`.
pub const JSON_COMMANDS: &[&str] = &["avail", "limits", "pid", "stats", "status", "version"];

/// What a command returns: `Ok(true)` to leave the shell.
pub type Outcome = Result<bool, CtlError>;

/// Run `cmd` with `arg`; `None` when there is no such command.
pub fn run(ctl: &mut Controller, cmd: &str, arg: &str) -> Option<Outcome> {
    let (arg, json) = take_json_flag(cmd, arg);
    let saved = ctl.style.json;
    ctl.style.json |= json;
    let done = |r: Result<(), CtlError>| r.map(|()| false);
    let outcome = match cmd {
        "status" => done(status::status(ctl, &arg)),
        "pid" => done(status::pid(ctl, &arg)),
        "start" => done(processes::start(ctl, &arg)),
        "stop" => done(processes::stop(ctl, &arg)),
        "restart" => done(processes::restart(ctl, &arg)),
        "signal" => done(processes::signal(ctl, &arg)),
        "tail" => done(logs::tail(ctl, &arg)),
        "maintail" => done(logs::maintail(ctl, &arg)),
        "clear" => done(logs::clear(ctl, &arg)),
        "fg" => done(logs::fg(ctl, &arg)),
        "avail" => done(groups::avail(ctl, &arg)),
        "reread" => done(groups::reread(ctl, &arg)),
        "update" => done(groups::update(ctl, &arg)),
        "add" => done(groups::add(ctl, &arg)),
        "remove" => done(groups::remove(ctl, &arg)),
        "reload" => done(daemon::reload(ctl, &arg)),
        "shutdown" => done(daemon::shutdown(ctl, &arg)),
        "version" => done(daemon::version(ctl, &arg)),
        "open" => done(daemon::open(ctl, &arg)),
        "help" => done(help::help(ctl, &arg)),
        "stats" => done(corral::stats(ctl, &arg)),
        "limits" => done(corral::limits(ctl, &arg)),
        "reexec" => done(corral::reexec(ctl, &arg)),
        "quit" | "exit" | "EOF" => {
            ctl.output("");
            Ok(true)
        }
        _ => {
            ctl.style.json = saved;
            return None;
        }
    };
    ctl.style.json = saved;
    Some(outcome)
}

/// Remove a `--json` word from a read command's arguments.
fn take_json_flag(cmd: &str, arg: &str) -> (String, bool) {
    if !JSON_COMMANDS.contains(&cmd) || !arg.split_whitespace().any(|w| w == "--json") {
        return (arg.to_string(), false);
    }
    let rest: Vec<&str> = arg.split_whitespace().filter(|w| *w != "--json").collect();
    (rest.join(" "), true)
}

/// Python's `str.split()` of an argument.
fn words(arg: &str) -> Vec<String> {
    arg.split_whitespace().map(str::to_string).collect()
}
