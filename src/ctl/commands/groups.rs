//! `avail`, `reread`, `update`, `add`, `remove`: configuration and groups.

use dxr::Value;

use super::super::client::ClientError;
use super::super::controller::{exit, faults, Controller};
use super::super::error::CtlError;
use super::super::format;
use super::super::json;
use super::super::value;
use super::help::help_text;
use super::words;

/// `avail`.
pub fn avail(ctl: &mut Controller, arg: &str) -> Result<(), CtlError> {
    if !arg.is_empty() {
        ctl.output("Error: avail accepts no arguments");
        ctl.exitstatus = exit::GENERIC;
        ctl.output(&help_text("avail").unwrap_or_default());
        return Ok(());
    }
    match ctl.call("supervisor.getAllConfigInfo", vec![]) {
        Ok(v) => {
            let infos = value::into_structs(v)?;
            if ctl.style.json {
                ctl.output(&json::render(&json::avail(&infos)));
            } else {
                for info in &infos {
                    ctl.output(&format::avail_line(info));
                }
            }
            Ok(())
        }
        Err(ClientError::Fault { code: faults::SHUTDOWN_STATE, .. }) => {
            ctl.exitstatus = exit::GENERIC;
            ctl.output("ERROR: supervisor shutting down");
            Ok(())
        }
        Err(e) => {
            if matches!(e, ClientError::Fault { .. }) {
                ctl.exitstatus = exit::GENERIC;
            }
            Err(e.into())
        }
    }
}

/// `reloadConfig`'s `[added, changed, removed]` group names.
struct Changes {
    added: Vec<String>,
    changed: Vec<String>,
    removed: Vec<String>,
}

fn changes(v: Value) -> Result<Changes, CtlError> {
    let outer = value::into_array(v)?;
    let inner =
        outer.into_iter().next().ok_or_else(|| CtlError::Shape("empty reloadConfig answer".into()))?;
    let mut lists = value::into_array(inner)?
        .into_iter()
        .map(|l| value::into_array(l).map(|names| names.iter().map(value::text).collect::<Vec<String>>()));
    let mut next =
        || lists.next().unwrap_or_else(|| Err(CtlError::Shape("short reloadConfig answer".into())));
    Ok(Changes { added: next()?, changed: next()?, removed: next()? })
}

/// `reread`.
pub fn reread(ctl: &mut Controller, arg: &str) -> Result<(), CtlError> {
    if !arg.is_empty() {
        ctl.output("Error: reread accepts no arguments");
        ctl.exitstatus = exit::GENERIC;
        ctl.output(&help_text("reread").unwrap_or_default());
        return Ok(());
    }
    let result = match ctl.call("supervisor.reloadConfig", vec![]) {
        Ok(v) => v,
        Err(ClientError::Fault { code, text }) => {
            ctl.exitstatus = exit::GENERIC;
            match code {
                faults::SHUTDOWN_STATE => ctl.output("ERROR: supervisor shutting down"),
                faults::CANT_REREAD => ctl.output(&format!("ERROR: {text}")),
                _ => return Err(ClientError::Fault { code, text }.into()),
            }
            return Ok(());
        }
        Err(e) => return Err(e.into()),
    };
    let c = changes(result)?;
    let mut all: Vec<(String, &str)> = Vec::new();
    // Later kinds overwrite earlier ones for a repeated name, as supervisorctl's dict update.
    for (names, kind) in [(&c.added, "available"), (&c.changed, "changed"), (&c.removed, "disappeared")] {
        for n in names {
            all.retain(|(m, _)| m != n);
            all.push((n.clone(), kind));
        }
    }
    if all.is_empty() {
        ctl.output("No config updates to processes");
    } else {
        all.sort();
        for (name, kind) in all {
            ctl.output(&format!("{name}: {kind}"));
        }
    }
    Ok(())
}

fn s(v: &str) -> Value {
    Value::String(v.to_string())
}

/// `update [all|group ...]`.
pub fn update(ctl: &mut Controller, arg: &str) -> Result<(), CtlError> {
    let result = match ctl.call("supervisor.reloadConfig", vec![]) {
        Ok(v) => v,
        Err(ClientError::Fault { code: faults::SHUTDOWN_STATE, .. }) => {
            ctl.exitstatus = exit::GENERIC;
            ctl.output("ERROR: already shutting down");
            return Ok(());
        }
        Err(e) => {
            if matches!(e, ClientError::Fault { .. }) {
                ctl.exitstatus = exit::GENERIC;
            }
            return Err(e.into());
        }
    };
    let c = changes(result)?;
    let mut wanted: Vec<String> = Vec::new();
    for w in words(arg) {
        if !wanted.contains(&w) {
            wanted.push(w);
        }
    }
    if wanted.iter().any(|w| w == "all") {
        wanted.clear();
    }
    if !wanted.is_empty() {
        let mut groups: Vec<String> = value::into_structs(ctl.call("supervisor.getAllProcessInfo", vec![])?)?
            .iter()
            .map(|i| value::str_field(i, "group"))
            .collect();
        groups.extend(c.added.iter().cloned());
        for g in &wanted {
            if !groups.contains(g) {
                ctl.output(&format!("ERROR: no such group: {g}"));
                ctl.exitstatus = exit::GENERIC;
            }
        }
    }
    let selected = |g: &String| wanted.is_empty() || wanted.contains(g);
    for g in c.removed.iter().filter(|g| selected(g)) {
        let results = value::into_structs(ctl.call("supervisor.stopProcessGroup", vec![s(g)])?)?;
        ctl.output(&format!("{g}: stopped"));
        if results.iter().any(|r| r.get("status").and_then(value::int) == Some(i64::from(faults::FAILED))) {
            ctl.output(&format!("{g}: has problems; not removing"));
            ctl.exitstatus = exit::GENERIC;
            continue;
        }
        ctl.call("supervisor.removeProcessGroup", vec![s(g)])?;
        ctl.output(&format!("{g}: removed process group"));
    }
    for g in c.changed.iter().filter(|g| selected(g)) {
        ctl.call("supervisor.stopProcessGroup", vec![s(g)])?;
        ctl.output(&format!("{g}: stopped"));
        ctl.call("supervisor.removeProcessGroup", vec![s(g)])?;
        ctl.call("supervisor.addProcessGroup", vec![s(g)])?;
        ctl.output(&format!("{g}: updated process group"));
    }
    for g in c.added.iter().filter(|g| selected(g)) {
        ctl.call("supervisor.addProcessGroup", vec![s(g)])?;
        ctl.output(&format!("{g}: added process group"));
    }
    Ok(())
}

/// `add group ...`.
pub fn add(ctl: &mut Controller, arg: &str) -> Result<(), CtlError> {
    for name in words(arg) {
        match ctl.call("supervisor.addProcessGroup", vec![s(&name)]) {
            Ok(_) => ctl.output(&format!("{name}: added process group")),
            Err(ClientError::Fault { code: faults::SHUTDOWN_STATE, .. }) => {
                ctl.output("ERROR: shutting down");
                ctl.exitstatus = exit::GENERIC;
            }
            Err(ClientError::Fault { code: faults::ALREADY_ADDED, .. }) => {
                ctl.output("ERROR: process group already active");
            }
            Err(ClientError::Fault { code: faults::BAD_NAME, .. }) => {
                ctl.output(&format!("ERROR: no such process/group: {name}"));
                ctl.exitstatus = exit::GENERIC;
            }
            Err(e) => {
                if matches!(e, ClientError::Fault { .. }) {
                    ctl.exitstatus = exit::GENERIC;
                }
                return Err(e.into());
            }
        }
    }
    Ok(())
}

/// `remove group ...`.
pub fn remove(ctl: &mut Controller, arg: &str) -> Result<(), CtlError> {
    for name in words(arg) {
        match ctl.call("supervisor.removeProcessGroup", vec![s(&name)]) {
            Ok(_) => ctl.output(&format!("{name}: removed process group")),
            Err(ClientError::Fault { code, text }) => {
                ctl.exitstatus = exit::GENERIC;
                match code {
                    faults::STILL_RUNNING => {
                        ctl.output(&format!("ERROR: process/group still running: {name}"))
                    }
                    faults::BAD_NAME => ctl.output(&format!("ERROR: no such process/group: {name}")),
                    _ => return Err(ClientError::Fault { code, text }.into()),
                }
            }
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}
