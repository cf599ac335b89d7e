//! Building supervisor's process info structures and description strings.

use chrono::{Local, TimeZone};

use super::api::{Channel, LogName, ProcessInfo};
use super::output::Output;
use super::state::{Machine, ProcessState};
use crate::config::{LogFile, ProcessConfig};

/// Python's `str(timedelta(seconds=n))`: `0:01:02`, `1 day, 1:02:03`, `3 days, 0:00:05`.
pub fn format_uptime(secs: i64) -> String {
    let secs = secs.max(0);
    let (days, rest) = (secs / 86_400, secs % 86_400);
    let hms = format!("{}:{:02}:{:02}", rest / 3600, (rest % 3600) / 60, rest % 60);
    match days {
        0 => hms,
        1 => format!("1 day, {hms}"),
        d => format!("{d} days, {hms}"),
    }
}

/// supervisord's `description` for a process in `state`.
pub fn description(
    name: &str,
    state: ProcessState,
    pid: u32,
    start: i64,
    stop: i64,
    now: i64,
    spawnerr: &str,
) -> String {
    match state {
        ProcessState::Running => format!("pid {pid}, uptime {}", format_uptime(now - start)),
        ProcessState::Fatal | ProcessState::Backoff => {
            if spawnerr.is_empty() {
                format!("unknown error (try \"tail {name}\")")
            } else {
                spawnerr.to_string()
            }
        }
        ProcessState::Stopped | ProcessState::Exited => {
            if start != 0 {
                match Local.timestamp_opt(stop, 0).single() {
                    Some(t) => t.format("%b %d %I:%M %p").to_string(),
                    None => String::new(),
                }
            } else {
                "Not started".to_string()
            }
        }
        _ => String::new(),
    }
}

/// The info struct of one process.
pub(crate) fn process_info(
    group: &str,
    cfg: &ProcessConfig,
    m: &Machine,
    out: &Output,
    now: i64,
) -> ProcessInfo {
    let path = |c| out.path(c).map(|p| p.to_string_lossy().into_owned()).unwrap_or_default();
    let state = m.state();
    ProcessInfo {
        name: cfg.name.clone(),
        group: group.to_string(),
        start: m.start_wall,
        stop: m.stop_wall,
        now,
        state,
        spawnerr: m.spawnerr.clone(),
        exitstatus: m.exitstatus,
        stdout_logfile: path(Channel::Stdout),
        stderr_logfile: path(Channel::Stderr),
        pid: m.pid,
        description: description(&cfg.name, state, m.pid, m.start_wall, m.stop_wall, now, &m.spawnerr),
        restarts: m.restarts,
        oom_kills: 0,
        cgroup: None,
    }
}

/// A configured (inactive) log as `getAllConfigInfo` names it.
pub fn configured_log_name(f: &LogFile) -> LogName {
    match f {
        LogFile::None => LogName::None,
        LogFile::Auto => LogName::Auto,
        LogFile::Path(p) => LogName::Path(p.clone()),
        // No file to read or tail: the lines are in the journal.
        LogFile::Journal => LogName::None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uptime_matches_python_timedelta() {
        assert_eq!(format_uptime(19), "0:00:19");
        assert_eq!(format_uptime(62), "0:01:02");
        assert_eq!(format_uptime(86_400 + 3723), "1 day, 1:02:03");
        assert_eq!(format_uptime(3 * 86_400 + 5), "3 days, 0:00:05");
        assert_eq!(format_uptime(-4), "0:00:00");
    }

    #[test]
    fn descriptions_per_state() {
        assert_eq!(
            description("x", ProcessState::Running, 7882, 100, 0, 119, ""),
            "pid 7882, uptime 0:00:19"
        );
        assert_eq!(description("x", ProcessState::Fatal, 0, 1, 2, 3, ""), "unknown error (try \"tail x\")");
        assert_eq!(
            description(
                "x",
                ProcessState::Backoff,
                0,
                1,
                2,
                3,
                "Exited too quickly (process log may have details)"
            ),
            "Exited too quickly (process log may have details)"
        );
        assert_eq!(description("x", ProcessState::Stopped, 0, 0, 0, 3, ""), "Not started");
        let d = description("x", ProcessState::Exited, 0, 1, 1_795_613_146, 3, "");
        assert!(regex_like_time(&d), "{d}");
        assert_eq!(description("x", ProcessState::Starting, 1, 1, 0, 3, ""), "");
    }

    fn regex_like_time(s: &str) -> bool {
        // e.g. "Nov 25 01:23 PM"
        let b = s.as_bytes();
        s.len() == 15
            && b[3] == b' '
            && b[6] == b' '
            && b[9] == b':'
            && (s.ends_with("AM") || s.ends_with("PM"))
    }
}
