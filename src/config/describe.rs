//! A human-readable listing of a resolved configuration, printed by
//! `corrald --check-config`.

use std::fmt::Write;

use super::model::*;

fn logfile(l: &LogFile) -> String {
    match l {
        LogFile::None => "NONE".to_string(),
        LogFile::Auto => "AUTO".to_string(),
        LogFile::Path(p) => p.display().to_string(),
        LogFile::Journal => "journal".to_string(),
    }
}

fn size(v: Option<u64>) -> Option<String> {
    v.map(|b| {
        const UNITS: [(u64, &str); 4] = [(1 << 40, "T"), (1 << 30, "G"), (1 << 20, "M"), (1 << 10, "K")];
        UNITS
            .iter()
            .find(|(u, _)| b >= *u && b % u == 0)
            .map(|(u, s)| format!("{}{s}", b / u))
            .unwrap_or_else(|| b.to_string())
    })
}

/// `memory_max=512M cpu_quota=150% ...`, or `none`.
pub fn describe_limits(l: &Limits) -> String {
    let mut parts = Vec::new();
    let mut add = |name: &str, v: Option<String>| {
        if let Some(v) = v {
            parts.push(format!("{name}={v}"));
        }
    };
    add("memory_max", size(l.memory_max));
    add("memory_high", size(l.memory_high));
    add("memory_swap_max", size(l.memory_swap_max));
    add("cpu_quota", l.cpu_quota.map(|q| format!("{q}%")));
    add("cpu_weight", l.cpu_weight.map(|w| w.to_string()));
    add("tasks_max", l.tasks_max.map(|t| t.to_string()));
    add("io_weight", l.io_weight.map(|w| w.to_string()));
    if parts.is_empty() {
        "none".to_string()
    } else {
        parts.join(" ")
    }
}

/// Lists groups (in start order) and their processes with the settings an
/// operator checks first: command, autostart, priority, logs, limits and dependencies.
pub fn describe(config: &Config) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "config: {}", config.source.display());
    for m in &config.messages {
        let level = match m.level {
            MessageLevel::Info => "info",
            MessageLevel::Warn => "warning",
        };
        let _ = writeln!(out, "{level}: {}", m.text);
    }
    for g in &config.groups {
        let kind = match &g.kind {
            GroupKind::Program => "program".to_string(),
            GroupKind::EventListener(e) => format!("eventlistener events={}", e.events.join(",")),
            GroupKind::Fcgi(f) => format!("fcgi-program socket={}", f.socket),
        };
        let _ = writeln!(
            out,
            "group {} ({kind}) priority={} limits: {}",
            g.name,
            g.priority,
            describe_limits(&g.limits)
        );
        for p in &g.processes {
            let spec = if p.name == g.name { p.name.clone() } else { format!("{}:{}", g.name, p.name) };
            let _ = writeln!(out, "  process {spec}");
            let _ = writeln!(out, "    command: {}", p.command);
            let _ = writeln!(
                out,
                "    autostart={} priority={} user={}",
                p.autostart,
                p.priority,
                p.user.as_ref().map(|u| u.spec.as_str()).unwrap_or("-")
            );
            if let Some(line) = describe_health(&p.health) {
                let _ = writeln!(out, "    {line}");
            }
            let _ = writeln!(
                out,
                "    stdout: {}  stderr: {}",
                logfile(&p.stdout.logfile),
                if p.redirect_stderr {
                    "(redirected to stdout)".to_string()
                } else {
                    logfile(&p.stderr.logfile)
                }
            );
            let _ = writeln!(out, "    kill_mode={:?} limits: {}", p.kill_mode, describe_limits(&p.limits));
            let list = |deps: &[Dependency]| deps.iter().map(|d| d.to_string()).collect::<Vec<_>>().join(",");
            if !p.requires.is_empty() || !p.after.is_empty() {
                let _ = writeln!(out, "    requires={} after={}", list(&p.requires), list(&p.after));
            }
        }
    }
    out
}

/// `ready=notify (timeout 90 s) healthcheck=… every 30 s …`, or `None` when
/// the program uses none of these options.
fn describe_health(h: &super::HealthConfig) -> Option<String> {
    use super::Readiness;
    let secs = |d: std::time::Duration| format!("{} s", d.as_secs_f64());
    let mut parts = Vec::new();
    let ready = match &h.ready {
        Readiness::Startsecs => None,
        Readiness::Notify => Some("notify".to_string()),
        Readiness::Fd(n) => Some(format!("fd:{n}")),
        Readiness::Probe(p) => Some(p.describe()),
    };
    if let Some(kind) = ready {
        parts.push(format!("ready={kind} (timeout {})", secs(h.ready_timeout)));
    }
    if let Some(c) = &h.healthcheck {
        parts.push(format!(
            "healthcheck={} every {}, timeout {}, {} retries, action {:?}",
            c.probe.describe(),
            secs(c.interval),
            secs(c.timeout),
            c.retries,
            c.action
        ));
    }
    if let Some(w) = h.watchdog {
        parts.push(format!("watchdog_sec={}", secs(w)));
    }
    (!parts.is_empty()).then(|| parts.join(" "))
}
