//! `status` and `pid`.

use super::super::controller::{exit, faults, Controller};
use super::super::error::CtlError;
use super::super::format::{self, split_namespec};
use super::super::json;
use super::super::value::{self, Struct};
use super::words;
use crate::ctl::client::ClientError;

/// States supervisord counts as stopped: STOPPED, EXITED, FATAL, UNKNOWN.
const STOPPED_STATES: [i64; 4] = [0, 100, 200, 1000];

/// LSB status code for "not running".
const STATUS_NOT_RUNNING: i32 = 3;
/// LSB status code for "unknown".
const STATUS_UNKNOWN: i32 = 4;

/// `status [name|group:*|all ...]`.
pub fn status(ctl: &mut Controller, arg: &str) -> Result<(), CtlError> {
    if !ctl.upcheck()? {
        ctl.exitstatus = STATUS_UNKNOWN;
        return Ok(());
    }
    let all = value::into_structs(ctl.call("supervisor.getAllProcessInfo", vec![])?)?;
    let names = words(arg);
    let matching: Vec<Struct> = if names.is_empty() || names.iter().any(|n| n == "all") {
        all
    } else {
        let mut matching = Vec::new();
        for name in &names {
            let (group, process) = split_namespec(name);
            let mut found = false;
            for info in &all {
                let hit = value::str_field(info, "group") == group
                    && process.as_ref().is_none_or(|p| value::str_field(info, "name") == *p);
                if hit {
                    found = true;
                    matching.push(info.clone());
                }
            }
            if !found {
                let msg = match process {
                    None => format!("{group}: ERROR (no such group)"),
                    Some(_) => format!("{name}: ERROR (no such process)"),
                };
                // In JSON mode stdout carries only the document.
                if ctl.style.json {
                    eprintln!("{msg}");
                } else {
                    ctl.output(&msg);
                }
                ctl.exitstatus = STATUS_UNKNOWN;
            }
        }
        matching
    };
    if ctl.style.json {
        let doc = json::processes(&matching);
        ctl.output(&json::render(&doc));
    } else {
        for line in format::status_lines(&matching, ctl.style.color) {
            ctl.output(&line);
        }
    }
    if matching
        .iter()
        .any(|i| i.get("state").and_then(value::int).is_some_and(|s| STOPPED_STATES.contains(&s)))
    {
        ctl.exitstatus = STATUS_NOT_RUNNING;
    }
    Ok(())
}

/// `pid`, `pid all`, `pid name ...`.
pub fn pid(ctl: &mut Controller, arg: &str) -> Result<(), CtlError> {
    if !ctl.upcheck()? {
        return Ok(());
    }
    let names = words(arg);
    let mut rows: Vec<(String, i64)> = Vec::new();
    if names.is_empty() {
        let pid = ctl.call("supervisor.getPID", vec![])?;
        rows.push(("supervisord".into(), value::int(&pid).unwrap_or(0)));
        if !ctl.style.json {
            ctl.output(&value::text(&pid));
        }
    } else if names.iter().any(|n| n == "all") {
        for info in value::into_structs(ctl.call("supervisor.getAllProcessInfo", vec![])?)? {
            let pid = info.get("pid").map(value::text).unwrap_or_default();
            rows.push((format::namespec_of(&info), value::int_field(&info, "pid").unwrap_or(0)));
            if !ctl.style.json {
                ctl.output(&pid);
            }
        }
    } else {
        for name in &names {
            match ctl.call("supervisor.getProcessInfo", vec![dxr::Value::String(name.clone())]) {
                Err(ClientError::Fault { code: faults::BAD_NAME, .. }) => {
                    ctl.exitstatus = exit::GENERIC;
                    let msg = format!("No such process {name}");
                    if ctl.style.json {
                        eprintln!("{msg}");
                    } else {
                        ctl.output(&msg);
                    }
                }
                Err(e) => {
                    ctl.exitstatus = exit::GENERIC;
                    return Err(e.into());
                }
                Ok(v) => {
                    let info = value::into_struct(v)?;
                    let pid = value::int_field(&info, "pid")?;
                    rows.push((format::namespec_of(&info), pid));
                    if !ctl.style.json {
                        ctl.output(&value::str_field(&info, "pid"));
                    }
                    if pid == 0 {
                        ctl.exitstatus = exit::NOT_RUNNING;
                    }
                }
            }
        }
    }
    if ctl.style.json {
        ctl.output(&json::render(&json::pids(&rows)));
    }
    Ok(())
}
