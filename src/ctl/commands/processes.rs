//! `start`, `stop`, `restart`, `signal`.

use dxr::Value;

use super::super::client::ClientError;
use super::super::controller::{exit, faults, Controller};
use super::super::error::CtlError;
use super::super::format::{make_namespec, namespec_of, split_namespec};
use super::super::value::{self, Struct};
use super::help::help_text;
use super::words;

/// One outcome of a start/stop/signal, as supervisorctl's result dicts.
struct Outcome {
    namespec: String,
    code: i32,
    description: String,
}

impl Outcome {
    fn from_struct(s: &Struct) -> Outcome {
        Outcome {
            namespec: namespec_of(s),
            code: s.get("status").and_then(value::int).unwrap_or(0) as i32,
            description: value::str_field(s, "description"),
        }
    }

    fn from_fault(name: &str, code: i32, text: String) -> Outcome {
        let (group, process) = split_namespec(name);
        // supervisorctl builds the name from the split parts (`g:` and `g:*` never reach here).
        Outcome { namespec: make_namespec(&group, &process.unwrap_or_default()), code, description: text }
    }
}

fn unknown_code(o: &Outcome) -> CtlError {
    CtlError::Uncaught {
        class: "ValueError",
        message: format!("Unknown result code {} for {}", o.code, o.namespec),
    }
}

/// supervisorctl's `_startresult`.
fn start_line(o: &Outcome) -> Result<String, CtlError> {
    let reason = match o.code {
        faults::BAD_NAME => "no such process",
        faults::NO_FILE => "no such file",
        faults::NOT_EXECUTABLE => "file is not executable",
        faults::ALREADY_STARTED => "already started",
        faults::SPAWN_ERROR => "spawn error",
        faults::ABNORMAL_TERMINATION => "abnormal termination",
        faults::SUCCESS => return Ok(format!("{}: started", o.namespec)),
        _ => return Err(unknown_code(o)),
    };
    Ok(format!("{}: ERROR ({reason})", o.namespec))
}

/// supervisorctl's `_signalresult` (and `_stopresult` with `success = "stopped"`).
fn signal_line(o: &Outcome, success: &str) -> Result<String, CtlError> {
    let reason = match o.code {
        faults::BAD_NAME => "no such process",
        faults::BAD_SIGNAL => "bad signal name",
        faults::NOT_RUNNING => "not running",
        faults::SUCCESS => return Ok(format!("{}: {success}", o.namespec)),
        faults::FAILED => return Ok(o.description.clone()),
        _ => return Err(unknown_code(o)),
    };
    Ok(format!("{}: ERROR ({reason})", o.namespec))
}

/// Print each result of a group/all call and fold its status into the exit code.
fn report(
    ctl: &mut Controller,
    results: Value,
    line: fn(&Outcome) -> Result<String, CtlError>,
    ignored: Option<i32>,
) -> Result<(), CtlError> {
    for s in value::into_structs(results)? {
        let o = Outcome::from_struct(&s);
        let text = line(&o)?;
        ctl.output(&text);
        ctl.set_exitstatus_from_fault(o.code, ignored);
    }
    Ok(())
}

fn s(v: &str) -> Value {
    Value::String(v.to_string())
}

/// `start name|group:*|all ...`.
pub fn start(ctl: &mut Controller, arg: &str) -> Result<(), CtlError> {
    if !ctl.upcheck()? {
        return Ok(());
    }
    let names = words(arg);
    if names.is_empty() {
        ctl.output("Error: start requires a process name");
        ctl.exitstatus = exit::INVALID_ARGS;
        ctl.output(&help_text("start").unwrap_or_default());
        return Ok(());
    }
    let ignored = Some(faults::ALREADY_STARTED);
    if names.iter().any(|n| n == "all") {
        let results = ctl.call("supervisor.startAllProcesses", vec![])?;
        return report(ctl, results, start_line, ignored);
    }
    for name in &names {
        let (group, process) = split_namespec(name);
        if process.is_none() {
            match ctl.call("supervisor.startProcessGroup", vec![s(&group)]) {
                Ok(results) => report(ctl, results, start_line, ignored)?,
                Err(ClientError::Fault { code: faults::BAD_NAME, .. }) => {
                    ctl.output(&format!("{group}: ERROR (no such group)"));
                    ctl.exitstatus = exit::INVALID_ARGS;
                }
                Err(e) => {
                    ctl.exitstatus = exit::GENERIC;
                    return Err(e.into());
                }
            }
        } else {
            match ctl.call("supervisor.startProcess", vec![s(name)]) {
                Ok(_) => {
                    ctl.output(&format!("{}: started", Outcome::from_fault(name, 0, String::new()).namespec))
                }
                Err(ClientError::Fault { code, text }) => {
                    let o = Outcome::from_fault(name, code, text);
                    let text = start_line(&o)?;
                    ctl.output(&text);
                    ctl.set_exitstatus_from_fault(code, ignored);
                }
                Err(e) => return Err(e.into()),
            }
        }
    }
    Ok(())
}

fn stop_line(o: &Outcome) -> Result<String, CtlError> {
    signal_line(o, "stopped")
}

fn signalled_line(o: &Outcome) -> Result<String, CtlError> {
    signal_line(o, "signalled")
}

/// `stop name|group:*|all ...`.
pub fn stop(ctl: &mut Controller, arg: &str) -> Result<(), CtlError> {
    if !ctl.upcheck()? {
        return Ok(());
    }
    let names = words(arg);
    if names.is_empty() {
        ctl.output("Error: stop requires a process name");
        ctl.exitstatus = exit::GENERIC;
        ctl.output(&help_text("stop").unwrap_or_default());
        return Ok(());
    }
    let ignored = Some(faults::NOT_RUNNING);
    if names.iter().any(|n| n == "all") {
        let results = ctl.call("supervisor.stopAllProcesses", vec![])?;
        return report(ctl, results, stop_line, ignored);
    }
    for name in &names {
        let (group, process) = split_namespec(name);
        if process.is_none() {
            match ctl.call("supervisor.stopProcessGroup", vec![s(&group)]) {
                Ok(results) => report(ctl, results, stop_line, ignored)?,
                Err(ClientError::Fault { code: faults::BAD_NAME, .. }) => {
                    ctl.exitstatus = exit::GENERIC;
                    ctl.output(&format!("{group}: ERROR (no such group)"));
                }
                Err(e) => {
                    ctl.exitstatus = exit::GENERIC;
                    return Err(e.into());
                }
            }
        } else {
            match ctl.call("supervisor.stopProcess", vec![s(name)]) {
                Ok(_) => {
                    ctl.output(&format!("{}: stopped", Outcome::from_fault(name, 0, String::new()).namespec))
                }
                Err(ClientError::Fault { code, text }) => {
                    let o = Outcome::from_fault(name, code, text);
                    let text = stop_line(&o)?;
                    ctl.output(&text);
                    ctl.set_exitstatus_from_fault(code, ignored);
                }
                Err(e) => return Err(e.into()),
            }
        }
    }
    Ok(())
}

/// `restart name|group:*|all ...`: stop, then start, with the same arguments.
pub fn restart(ctl: &mut Controller, arg: &str) -> Result<(), CtlError> {
    if !ctl.upcheck()? {
        return Ok(());
    }
    if words(arg).is_empty() {
        ctl.output("Error: restart requires a process name");
        ctl.exitstatus = exit::GENERIC;
        ctl.output(&help_text("restart").unwrap_or_default());
        return Ok(());
    }
    stop(ctl, arg)?;
    start(ctl, arg)
}

/// `signal SIG name|group:*|all ...`.
pub fn signal(ctl: &mut Controller, arg: &str) -> Result<(), CtlError> {
    if !ctl.upcheck()? {
        return Ok(());
    }
    let args = words(arg);
    if args.len() < 2 {
        ctl.output("Error: signal requires a signal name and a process name");
        ctl.output(&help_text("signal").unwrap_or_default());
        ctl.exitstatus = exit::GENERIC;
        return Ok(());
    }
    let sig = &args[0];
    let names = &args[1..];
    if names.iter().any(|n| n == "all") {
        let results = ctl.call("supervisor.signalAllProcesses", vec![s(sig)])?;
        return report(ctl, results, signalled_line, None);
    }
    for name in names {
        let (group, process) = split_namespec(name);
        if process.is_none() {
            match ctl.call("supervisor.signalProcessGroup", vec![s(&group), s(sig)]) {
                Ok(results) => report(ctl, results, signalled_line, None)?,
                Err(ClientError::Fault { code: faults::BAD_NAME, .. }) => {
                    ctl.output(&format!("{group}: ERROR (no such group)"));
                    ctl.exitstatus = exit::GENERIC;
                }
                Err(e) => return Err(e.into()),
            }
        } else {
            match ctl.call("supervisor.signalProcess", vec![s(name), s(sig)]) {
                Ok(_) => ctl
                    .output(&format!("{}: signalled", Outcome::from_fault(name, 0, String::new()).namespec)),
                Err(ClientError::Fault { code, text }) => {
                    let o = Outcome::from_fault(name, code, text);
                    let text = signalled_line(&o)?;
                    ctl.output(&text);
                    ctl.set_exitstatus_from_fault(code, None);
                }
                Err(e) => return Err(e.into()),
            }
        }
    }
    Ok(())
}
