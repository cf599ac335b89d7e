//! `stats` and `limits`: corral's own `corral.*` methods.

use dxr::Value;

use super::super::client::ClientError;
use super::super::controller::{exit, faults, Controller};
use super::super::error::CtlError;
use super::super::format::{self, split_namespec};
use super::super::json;
use super::super::stats_table;
use super::super::value::{self, Struct};
use super::help::help_text;
use super::words;

/// The order limits are shown in.
pub const LIMIT_KEYS: &[&str] =
    &["memory_max", "memory_high", "memory_swap_max", "cpu_quota", "cpu_weight", "tasks_max", "io_weight"];

/// Printed when the server has no `corral.*` namespace (a plain supervisord).
fn not_corral(ctl: &mut Controller) {
    ctl.output(
        "ERROR: the server does not provide corral.* methods (is it supervisord rather than corrald?)",
    );
    ctl.exitstatus = exit::UNIMPLEMENTED_FEATURE;
}

/// `stats [name|group:* ...]`.
pub fn stats(ctl: &mut Controller, arg: &str) -> Result<(), CtlError> {
    if !ctl.upcheck()? {
        return Ok(());
    }
    let all = match ctl.call("corral.getAllProcessStats", vec![]) {
        Ok(v) => value::into_structs(v)?,
        Err(ClientError::Fault { code: faults::UNKNOWN_METHOD, .. }) => {
            not_corral(ctl);
            return Ok(());
        }
        Err(e) => return Err(e.into()),
    };
    let names = words(arg);
    let rows: Vec<Struct> = if names.is_empty() || names.iter().any(|n| n == "all") {
        all
    } else {
        let mut rows = Vec::new();
        for name in &names {
            let (group, process) = split_namespec(name);
            let hits: Vec<&Struct> = all
                .iter()
                .filter(|s| {
                    value::str_field(s, "group") == group
                        && process.as_ref().is_none_or(|p| value::str_field(s, "name") == *p)
                })
                .collect();
            if hits.is_empty() {
                let msg = match process {
                    None => format!("{group}: ERROR (no such group)"),
                    Some(_) => format!("{name}: ERROR (no such process)"),
                };
                eprintln!("{msg}");
                ctl.exitstatus = exit::GENERIC;
            }
            rows.extend(hits.into_iter().cloned());
        }
        rows
    };
    if ctl.style.json {
        ctl.output(&json::render(&json::stats(&rows)));
    } else {
        for line in stats_table::lines(&rows, ctl.style.color) {
            ctl.output(&line);
        }
    }
    Ok(())
}

/// `limits name [key=value ...]`.
pub fn limits(ctl: &mut Controller, arg: &str) -> Result<(), CtlError> {
    let args = words(arg);
    let Some(name) = args.first().cloned() else {
        ctl.output("Error: limits requires a process name");
        ctl.exitstatus = exit::INVALID_ARGS;
        ctl.output(&help_text("limits").unwrap_or_default());
        return Ok(());
    };
    if !ctl.upcheck()? {
        return Ok(());
    }
    let mut changes = Struct::new();
    for setting in &args[1..] {
        match setting.split_once('=') {
            Some((k, v)) if !k.is_empty() => {
                changes.insert(k.to_string(), Value::String(v.to_string()));
            }
            _ => {
                ctl.output(&format!("Error: expected key=value, got {setting}"));
                ctl.exitstatus = exit::INVALID_ARGS;
                return Ok(());
            }
        }
    }
    let call = if changes.is_empty() {
        ctl.call("corral.getLimits", vec![Value::String(name.clone())])
    } else {
        ctl.call("corral.setLimits", vec![Value::String(name.clone()), Value::Struct(changes)])
    };
    let limits = match call {
        Ok(v) => value::into_struct(v)?,
        Err(ClientError::Fault { code: faults::UNKNOWN_METHOD, .. }) => {
            not_corral(ctl);
            return Ok(());
        }
        Err(ClientError::Fault { code: faults::BAD_NAME, .. }) => {
            ctl.output(&format!("{name}: ERROR (no such process)"));
            ctl.exitstatus = exit::GENERIC;
            return Ok(());
        }
        Err(ClientError::Fault { code: faults::BAD_ARGUMENTS, text }) => {
            let reason = text.strip_prefix("BAD_ARGUMENTS: ").unwrap_or(&text);
            ctl.output(&format!("{name}: ERROR ({reason})"));
            ctl.exitstatus = exit::INVALID_ARGS;
            return Ok(());
        }
        Err(e) => return Err(e.into()),
    };
    if ctl.style.json {
        ctl.output(&json::render(&json::limits(&name, &limits)));
        return Ok(());
    }
    let mut keys: Vec<&String> = limits.keys().collect();
    keys.sort_by_key(|k| (LIMIT_KEYS.iter().position(|l| l == k).unwrap_or(usize::MAX), k.as_str()));
    let width = keys.iter().map(|k| k.len()).max().unwrap_or(0) + 2;
    for k in keys {
        let v = limits.get(k).map(value::text).unwrap_or_default();
        let shown = match k.as_str() {
            "memory_max" | "memory_high" | "memory_swap_max" => with_human_size(&v),
            _ => v,
        };
        ctl.output(&format!("{k:<width$}{shown}"));
    }
    Ok(())
}

/// `536870912` as `536870912 (512.0M)`; other values unchanged.
fn with_human_size(v: &str) -> String {
    match v.parse::<i64>() {
        Ok(n) if n >= 1024 => format!("{v} ({})", format::human_bytes(n)),
        _ => v.to_string(),
    }
}

/// `reexec`: re-execute corrald without stopping programs.
pub fn reexec(ctl: &mut Controller, arg: &str) -> Result<(), CtlError> {
    if !arg.trim().is_empty() {
        ctl.output("Error: reexec accepts no arguments");
        ctl.exitstatus = exit::GENERIC;
        ctl.output(&help_text("reexec").unwrap_or_default());
        return Ok(());
    }
    match ctl.call("corral.reexec", vec![]) {
        Ok(_) => ctl.output("Re-executing corrald"),
        Err(ClientError::Fault { code: faults::UNKNOWN_METHOD, .. }) => not_corral(ctl),
        Err(ClientError::Fault { code: faults::SHUTDOWN_STATE, .. }) => {
            ctl.output("ERROR: already shutting down or re-executing");
            ctl.exitstatus = exit::GENERIC;
        }
        Err(ClientError::Fault { text, .. }) => {
            ctl.output(&format!("ERROR: {text}"));
            ctl.exitstatus = exit::GENERIC;
        }
        Err(e) => return Err(e.into()),
    }
    Ok(())
}
