//! Engine types rendered as supervisord's XML-RPC structures, key for key.

use std::collections::BTreeMap;

use dxr::Value;

use super::codec::{int, text};
use crate::config::Limits;
use crate::engine::{ConfigInfo, LogName, OpResult, ProcessInfo, ProcessStats};

fn st(pairs: Vec<(&str, Value)>) -> Value {
    Value::Struct(pairs.into_iter().map(|(k, v)| (k.to_string(), v)).collect::<BTreeMap<_, _>>())
}

/// `getProcessInfo`'s struct: exactly supervisord's 14 keys.
pub fn process_info(p: &ProcessInfo) -> Value {
    st(vec![
        ("name", text(&p.name)),
        ("group", text(&p.group)),
        ("start", int(p.start)),
        ("stop", int(p.stop)),
        ("now", int(p.now)),
        ("state", int(i64::from(p.state.code()))),
        ("statename", text(p.state.name())),
        ("spawnerr", text(&p.spawnerr)),
        ("exitstatus", int(i64::from(p.exitstatus))),
        // `logfile` is supervisord's backwards-compatible alias of stdout_logfile.
        ("logfile", text(&p.stdout_logfile)),
        ("stdout_logfile", text(&p.stdout_logfile)),
        ("stderr_logfile", text(&p.stderr_logfile)),
        ("pid", int(i64::from(p.pid))),
        ("description", text(&p.description)),
    ])
}

/// A group/all operation's result entry.
pub fn op_result(r: &OpResult) -> Value {
    st(vec![
        ("name", text(&r.name)),
        ("group", text(&r.group)),
        ("status", int(r.status as i64)),
        ("description", text(&r.description)),
    ])
}

/// An array of result entries.
pub fn op_results(rs: &[OpResult]) -> Value {
    Value::Array(rs.iter().map(op_result).collect())
}

fn log_name(l: &LogName) -> Value {
    match l {
        LogName::None => text("none"),
        LogName::Auto => text("auto"),
        LogName::Path(p) => text(p.to_string_lossy()),
    }
}

fn u64_int(n: u64) -> Value {
    int(i64::try_from(n).unwrap_or(i64::MAX))
}

/// One `getAllConfigInfo` struct, with supervisord 4.3.0's keys (`None` becomes `"none"`).
pub fn config_info(c: &ConfigInfo) -> Value {
    let p = &c.process;
    st(vec![
        ("autostart", Value::Boolean(p.autostart)),
        ("command", text(&p.command)),
        ("directory", p.directory.as_ref().map_or_else(|| text("none"), |d| text(d.to_string_lossy()))),
        ("exitcodes", Value::Array(p.exitcodes.iter().map(|c| int(i64::from(*c))).collect())),
        ("group", text(&c.group)),
        ("group_prio", int(i64::from(c.group_prio))),
        ("inuse", Value::Boolean(c.inuse)),
        ("killasgroup", Value::Boolean(p.killasgroup)),
        ("name", text(&p.name)),
        ("process_prio", int(i64::from(p.priority))),
        ("redirect_stderr", Value::Boolean(p.redirect_stderr)),
        ("serverurl", p.serverurl.as_ref().map_or_else(|| text("none"), text)),
        ("startretries", int(i64::from(p.startretries))),
        ("startsecs", u64_int(p.startsecs)),
        ("stderr_capture_maxbytes", u64_int(p.stderr.capture_maxbytes)),
        ("stderr_events_enabled", Value::Boolean(p.stderr.events_enabled)),
        ("stderr_logfile", log_name(&c.stderr_logfile)),
        ("stderr_logfile_backups", int(i64::from(p.stderr.backups))),
        ("stderr_logfile_maxbytes", u64_int(p.stderr.maxbytes)),
        ("stderr_syslog", Value::Boolean(p.stderr.syslog)),
        ("stdout_capture_maxbytes", u64_int(p.stdout.capture_maxbytes)),
        ("stdout_events_enabled", Value::Boolean(p.stdout.events_enabled)),
        ("stdout_logfile", log_name(&c.stdout_logfile)),
        ("stdout_logfile_backups", int(i64::from(p.stdout.backups))),
        ("stdout_logfile_maxbytes", u64_int(p.stdout.maxbytes)),
        ("stdout_syslog", Value::Boolean(p.stdout.syslog)),
        ("stopsignal", int(i64::from(p.stopsignal))),
        ("stopwaitsecs", u64_int(p.stopwaitsecs)),
        ("uid", p.user.as_ref().map_or_else(|| text("none"), |u| int(i64::from(u.uid)))),
    ])
}

/// An unsigned reading as `i8` (byte counts exceed i32); -1 when unknown.
fn long(v: Option<u64>) -> Value {
    Value::Long(v.map(|n| i64::try_from(n).unwrap_or(i64::MAX)).unwrap_or(-1))
}

/// A small count as `int`; -1 when unknown.
fn count(v: Option<u64>) -> Value {
    int(v.map(|n| i64::try_from(n).unwrap_or(i64::MAX)).unwrap_or(-1))
}

/// `corral.getProcessStats`'s struct.
pub fn process_stats(p: &ProcessStats) -> Value {
    st(vec![
        ("name", text(&p.name)),
        ("group", text(&p.group)),
        ("pid", int(i64::from(p.pid))),
        ("statename", text(p.statename)),
        ("cpu_percent", Value::Double(p.cpu_percent)),
        ("cpu_seconds", Value::Double(p.cpu_seconds)),
        ("memory_current", long(p.memory_current)),
        ("memory_peak", long(p.memory_peak)),
        ("rss", long(p.rss)),
        ("io_read_bytes", long(p.io_read_bytes)),
        ("io_write_bytes", long(p.io_write_bytes)),
        ("tasks", count(p.tasks)),
        ("threads", count(p.threads)),
        ("fds", count(p.fds)),
        ("restarts", count(Some(p.restarts))),
        ("oom_kills", count(Some(p.oom_kills))),
        ("cgroup", text(p.cgroup.as_deref().unwrap_or(""))),
    ])
}

/// `corral.getLimits`'s struct: every limit as a string in config syntax, `max` when unset.
pub fn limits(l: &Limits) -> Value {
    let n = |v: Option<u64>| text(v.map(|n| n.to_string()).unwrap_or_else(|| "max".into()));
    let w = |v: Option<u32>| text(v.map(|n| n.to_string()).unwrap_or_else(|| "max".into()));
    st(vec![
        ("memory_max", n(l.memory_max)),
        ("memory_high", n(l.memory_high)),
        ("memory_swap_max", n(l.memory_swap_max)),
        ("cpu_quota", text(l.cpu_quota.map(|q| format!("{q}%")).unwrap_or_else(|| "max".into()))),
        ("cpu_weight", w(l.cpu_weight)),
        ("tasks_max", n(l.tasks_max)),
        ("io_weight", w(l.io_weight)),
    ])
}

/// Apply `corral.setLimits` changes (option name → value in config syntax,
/// `max` or empty to unset) to `limits`; the error names the option.
pub fn update_limits(limits: &mut Limits, changes: &BTreeMap<String, Value>) -> Result<(), String> {
    for (key, value) in changes {
        let raw = match value {
            Value::String(s) => s.clone(),
            Value::Integer(i) => i.to_string(),
            Value::Long(i) => i.to_string(),
            _ => return Err(format!("{key}: expected a string")),
        };
        crate::config::values::set_limit(limits, key, &raw)?;
    }
    Ok(())
}
