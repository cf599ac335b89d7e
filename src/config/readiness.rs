//! corral's readiness, health check and watchdog options of a program section
//! (`ready=`, `ready_timeout=`, `healthcheck*=`, `watchdog_sec=`), all opt-in:
//! without them a program starts, runs and restarts exactly as under supervisord.

use std::path::PathBuf;
use std::time::Duration;

use super::error::ConfigError;
use super::expand::Expansions;
use super::parser::Parser;
use super::pyfmt::py_repr;
use super::values::{BadValue, ValueResult};

/// When a started program counts as ready (RUNNING).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Readiness {
    /// supervisord's rule: up for longer than `startsecs`.
    #[default]
    Startsecs,
    /// The program sends `READY=1` over `$NOTIFY_SOCKET` (sd_notify).
    Notify,
    /// s6-style: the program writes a newline to this file descriptor.
    Fd(i32),
    /// A probe passes.
    Probe(Probe),
}

/// A check corrald runs against a program.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Probe {
    /// A TCP connection to `host:port` succeeds.
    Tcp {
        /// Host name or address.
        host: String,
        /// Port.
        port: u16,
    },
    /// An HTTP GET on this `http://` URL answers 2xx.
    Http(String),
    /// This command (run with `/bin/sh -c`) exits 0.
    Exec(String),
    /// This file exists.
    File(PathBuf),
}

impl Probe {
    /// The probe as written in the configuration.
    pub fn describe(&self) -> String {
        match self {
            Probe::Tcp { host, port } => format!("tcp:{host}:{port}"),
            Probe::Http(url) => url.clone(),
            Probe::Exec(cmd) => format!("exec:{cmd}"),
            Probe::File(p) => format!("file:{}", p.display()),
        }
    }
}

/// What corrald does when a health check fails `healthcheck_retries` times in a row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HealthAction {
    /// Kill the program (its whole cgroup) and start it again.
    Restart,
    /// Stop the program as `stop` would.
    Stop,
    /// Only report it (status, events).
    None,
}

/// A liveness check run while the program is RUNNING.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HealthCheck {
    /// `healthcheck=`.
    pub probe: Probe,
    /// `healthcheck_interval=`: time between two checks.
    pub interval: Duration,
    /// `healthcheck_timeout=`: a check taking longer fails.
    pub timeout: Duration,
    /// `healthcheck_retries=`: consecutive failures before the program is unhealthy.
    pub retries: u32,
    /// `healthcheck_action=`.
    pub action: HealthAction,
}

/// A program's readiness, health check and watchdog settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HealthConfig {
    /// `ready=`.
    pub ready: Readiness,
    /// `ready_timeout=`: not ready by then is a failed start (ignored with `startsecs`).
    pub ready_timeout: Duration,
    /// `healthcheck=` and its settings.
    pub healthcheck: Option<HealthCheck>,
    /// `watchdog_sec=`: longest time between two `WATCHDOG=1` pings while RUNNING.
    pub watchdog: Option<Duration>,
}

impl Default for HealthConfig {
    fn default() -> Self {
        HealthConfig {
            ready: Readiness::Startsecs,
            ready_timeout: Duration::from_secs(90),
            healthcheck: None,
            watchdog: None,
        }
    }
}

impl HealthConfig {
    /// Whether the program needs corrald's notify socket.
    pub fn uses_notify(&self) -> bool {
        self.ready == Readiness::Notify || self.watchdog.is_some()
    }
}

/// A time span: seconds (`5`, `0.5`, `5s`) or milliseconds (`500ms`).
pub fn duration(s: &str) -> ValueResult<Duration> {
    const EXPECTED: &str = "seconds (e.g. 5, 0.5, 5s) or milliseconds (e.g. 500ms)";
    let t = s.trim();
    let (num, scale) = if let Some(n) = t.strip_suffix("ms") {
        (n, 0.001)
    } else if let Some(n) = t.strip_suffix('s') {
        (n, 1.0)
    } else {
        (t, 1.0)
    };
    match num.trim().parse::<f64>() {
        Ok(v) if v.is_finite() && v >= 0.0 && v * scale < 1e9 => Ok(Duration::from_secs_f64(v * scale)),
        _ => Err(BadValue::new(format!("invalid duration {}", py_repr(s)), EXPECTED)),
    }
}

/// A time span longer than zero (`healthcheck_interval`, `healthcheck_timeout`:
/// an interval of 0 would probe without pause, a timeout of 0 fail every check).
pub fn positive_duration(s: &str) -> ValueResult<Duration> {
    const EXPECTED: &str =
        "a duration of more than 0: seconds (e.g. 5, 0.5, 5s) or milliseconds (e.g. 500ms)";
    match duration(s) {
        Ok(d) if !d.is_zero() => Ok(d),
        Ok(_) => Err(BadValue::new(format!("{} is not more than 0", py_repr(s)), EXPECTED)),
        Err(b) => Err(BadValue::new(b.message, EXPECTED)),
    }
}

/// `tcp:host:port`, `http://…`, `exec:command` or `file:path`.
pub fn probe(s: &str) -> ValueResult<Probe> {
    const EXPECTED: &str = "tcp:host:port, http://host[:port]/path, exec:command or file:path";
    let t = s.trim();
    let bad = |why: &str| BadValue::new(format!("invalid probe {} ({why})", py_repr(s)), EXPECTED);
    if let Some(rest) = t.strip_prefix("tcp:") {
        let (host, port) = rest.rsplit_once(':').ok_or_else(|| bad("no port"))?;
        let port: u16 = port.parse().map_err(|_| bad("bad port"))?;
        let host = host.trim_start_matches('[').trim_end_matches(']');
        if host.is_empty() || port == 0 {
            return Err(bad("no host or port"));
        }
        return Ok(Probe::Tcp { host: host.to_string(), port });
    }
    if t.starts_with("http://") {
        return http_target(t).map(|_| Probe::Http(t.to_string())).map_err(&bad);
    }
    if let Some(cmd) = t.strip_prefix("exec:") {
        if cmd.trim().is_empty() {
            return Err(bad("empty command"));
        }
        return Ok(Probe::Exec(cmd.trim().to_string()));
    }
    if let Some(path) = t.strip_prefix("file:") {
        if path.trim().is_empty() {
            return Err(bad("empty path"));
        }
        return Ok(Probe::File(PathBuf::from(path.trim())));
    }
    Err(bad("unknown kind"))
}

/// Split an `http://host[:port]/path` URL into host, port and path.
pub fn http_target(url: &str) -> Result<(String, u16, String), &'static str> {
    let rest = url.strip_prefix("http://").ok_or("not an http:// URL")?;
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let (host, port) = match authority.rsplit_once(':') {
        Some((h, p)) if !h.ends_with(']') || authority.starts_with('[') => {
            (h, p.parse::<u16>().map_err(|_| "bad port")?)
        }
        _ => (authority, 80),
    };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    if host.is_empty() {
        return Err("no host");
    }
    Ok((host.to_string(), port, path.to_string()))
}

/// `ready=`: `startsecs`, `notify`, `fd:N` (N ≥ 3) or a probe.
pub fn readiness(s: &str) -> ValueResult<Readiness> {
    let t = s.trim();
    match t.to_lowercase().as_str() {
        "" | "startsecs" => return Ok(Readiness::Startsecs),
        "notify" => return Ok(Readiness::Notify),
        _ => {}
    }
    if let Some(n) = t.strip_prefix("fd:") {
        return match n.trim().parse::<i32>() {
            Ok(n) if (3..=1023).contains(&n) => Ok(Readiness::Fd(n)),
            _ => Err(BadValue::new(
                format!("invalid ready fd {}", py_repr(s)),
                "fd:N with N between 3 and 1023",
            )),
        };
    }
    probe(t).map(Readiness::Probe).map_err(|b| {
        BadValue::new(
            b.message,
            "startsecs, notify, fd:N, tcp:host:port, http://…, exec:command or file:path",
        )
    })
}

/// `healthcheck_action=`: `restart`, `stop` or `none`.
pub fn health_action(s: &str) -> ValueResult<HealthAction> {
    match s.trim().to_lowercase().as_str() {
        "restart" => Ok(HealthAction::Restart),
        "stop" => Ok(HealthAction::Stop),
        "none" => Ok(HealthAction::None),
        _ => Err(BadValue::new(
            format!("invalid 'healthcheck_action' value {}", py_repr(s)),
            "restart, stop or none",
        )),
    }
}

/// Read the options of program section `s` with expansions `exp` (per process,
/// so `%(process_num)d` can pick a port).
pub(super) fn parse(p: &Parser, s: &str, exp: &Expansions) -> Result<HealthConfig, ConfigError> {
    let ready = p.convert(s, "ready", exp, true, "startsecs", named("ready", readiness))?;
    let ready_timeout = p.convert(s, "ready_timeout", exp, true, "90", named("ready_timeout", duration))?;
    let healthcheck = match p.convert_opt(s, "healthcheck", exp, true, named("healthcheck", probe))? {
        None => None,
        Some(probe) => Some(HealthCheck {
            probe,
            interval: p.convert(
                s,
                "healthcheck_interval",
                exp,
                true,
                "30",
                named("healthcheck_interval", positive_duration),
            )?,
            timeout: p.convert(
                s,
                "healthcheck_timeout",
                exp,
                true,
                "5",
                named("healthcheck_timeout", positive_duration),
            )?,
            retries: p.convert(
                s,
                "healthcheck_retries",
                exp,
                true,
                "3",
                named("healthcheck_retries", super::values::positive::<u32>),
            )?,
            action: p.convert(s, "healthcheck_action", exp, true, "restart", health_action)?,
        }),
    };
    let watchdog = p
        .convert_opt(s, "watchdog_sec", exp, true, named("watchdog_sec", duration))?
        .filter(|d| !d.is_zero());
    Ok(HealthConfig { ready, ready_timeout, healthcheck, watchdog })
}

/// Errors name the option, as supervisord's own do: `invalid 'ready' value 'x'`.
fn named<T>(option: &'static str, parse: impl Fn(&str) -> ValueResult<T>) -> impl Fn(&str) -> ValueResult<T> {
    move |v| {
        parse(v).map_err(|b| BadValue::new(format!("invalid '{option}' value {}", py_repr(v)), b.expected))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn probes_parse_every_kind() {
        assert_eq!(probe("tcp:127.0.0.1:8080"), Ok(Probe::Tcp { host: "127.0.0.1".into(), port: 8080 }));
        assert_eq!(probe("tcp:[::1]:80"), Ok(Probe::Tcp { host: "::1".into(), port: 80 }));
        assert_eq!(probe("http://localhost:81/health"), Ok(Probe::Http("http://localhost:81/health".into())));
        assert_eq!(probe("exec: test -e /x"), Ok(Probe::Exec("test -e /x".into())));
        assert_eq!(probe("file:/run/x.ready"), Ok(Probe::File("/run/x.ready".into())));
        assert!(probe("tcp:host").is_err());
        assert!(probe("udp:host:1").is_err());
        assert!(probe("http://:80/").is_err());
    }

    #[test]
    fn http_urls_split_into_host_port_and_path() {
        assert_eq!(http_target("http://h:81/a?b"), Ok(("h".into(), 81, "/a?b".into())));
        assert_eq!(http_target("http://h"), Ok(("h".into(), 80, "/".into())));
        assert_eq!(http_target("http://[::1]:9/"), Ok(("::1".into(), 9, "/".into())));
    }

    #[test]
    fn readiness_kinds() {
        assert_eq!(readiness("startsecs"), Ok(Readiness::Startsecs));
        assert_eq!(readiness("Notify"), Ok(Readiness::Notify));
        assert_eq!(readiness("fd:3"), Ok(Readiness::Fd(3)));
        assert!(readiness("fd:1").is_err(), "stdout is not a readiness fd");
        assert!(readiness("sometimes").is_err());
    }

    #[test]
    fn durations_take_seconds_or_milliseconds() {
        assert_eq!(duration("5"), Ok(Duration::from_secs(5)));
        assert_eq!(duration("1.5s"), Ok(Duration::from_millis(1500)));
        assert_eq!(duration("250ms"), Ok(Duration::from_millis(250)));
        assert!(duration("-1").is_err());
        assert!(duration("soon").is_err());
    }

    #[test]
    fn health_actions() {
        assert_eq!(health_action("STOP"), Ok(HealthAction::Stop));
        assert!(health_action("panic").is_err());
    }
}
