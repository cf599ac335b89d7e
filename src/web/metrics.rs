//! `/metrics` in the Prometheus text exposition format, version 0.0.4.
//!
//! Rendering is a pure function of the engine's answers and the daemon's own
//! /proc readings, so the format and the label escaping are tested without a
//! daemon. Every family gets its `# HELP` and `# TYPE` line once, followed by
//! all of its samples, as the format requires.

use std::collections::HashMap;
use std::fmt::Write as _;

use crate::engine::{DaemonInfo, ProcessInfo, ProcessState, ProcessStats};

/// The `Content-Type` of the exposition format.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Every state, for `corral_processes{state=…}` (zero counts included, so a
/// state that empties reads 0 rather than vanishing).
const STATES: [ProcessState; 8] = [
    ProcessState::Stopped,
    ProcessState::Starting,
    ProcessState::Running,
    ProcessState::Backoff,
    ProcessState::Stopping,
    ProcessState::Exited,
    ProcessState::Fatal,
    ProcessState::Unknown,
];

/// corrald's own resource use, read from /proc/self.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DaemonReadings {
    /// Resident set size, bytes.
    pub rss_bytes: Option<u64>,
    /// User plus system CPU time, seconds.
    pub cpu_seconds: Option<f64>,
    /// Open file descriptors.
    pub open_fds: Option<u64>,
    /// Start time, seconds since the epoch.
    pub start_time_seconds: Option<f64>,
}

/// Everything one scrape shows.
#[derive(Debug, Clone, Copy)]
pub struct Scrape<'a> {
    /// corral's version (`corral_info{version}`).
    pub version: &'a str,
    /// Daemon facts (identifier, cgroup mode).
    pub daemon: &'a DaemonInfo,
    /// corrald's own readings.
    pub readings: &'a DaemonReadings,
    /// Every process, as `getAllProcessInfo` reports them.
    pub processes: &'a [ProcessInfo],
    /// Kernel readings; a process missing here gets no resource samples.
    pub stats: &'a [ProcessStats],
}

/// Metric kind for the `# TYPE` line.
#[derive(Debug, Clone, Copy)]
enum Kind {
    Gauge,
    Counter,
}

/// Accumulates exposition text.
struct Exposition(String);

impl Exposition {
    fn family(&mut self, name: &str, kind: Kind, help: &str) {
        let kind = match kind {
            Kind::Gauge => "gauge",
            Kind::Counter => "counter",
        };
        let _ = writeln!(self.0, "# HELP {name} {}", escape_help(help));
        let _ = writeln!(self.0, "# TYPE {name} {kind}");
    }

    fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: f64) {
        self.0.push_str(name);
        if !labels.is_empty() {
            self.0.push('{');
            for (i, (k, v)) in labels.iter().enumerate() {
                if i > 0 {
                    self.0.push(',');
                }
                let _ = write!(self.0, "{k}=\"{}\"", escape_label(v));
            }
            self.0.push('}');
        }
        let _ = writeln!(self.0, " {}", format_value(value));
    }
}

/// Label values escape backslash, double quote and line feed.
pub fn escape_label(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    for c in v.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out
}

/// HELP text escapes backslash and line feed (quotes stay as they are).
fn escape_help(v: &str) -> String {
    v.replace('\\', "\\\\").replace('\n', "\\n")
}

/// Go's float syntax as the format expects: `+Inf`, `-Inf`, `NaN`, else decimal.
pub fn format_value(v: f64) -> String {
    if v.is_nan() {
        "NaN".to_string()
    } else if v == f64::INFINITY {
        "+Inf".to_string()
    } else if v == f64::NEG_INFINITY {
        "-Inf".to_string()
    } else {
        format!("{v}")
    }
}

/// One per-process metric: its family line and how to read it from a process.
struct ProcessMetric {
    name: &'static str,
    kind: Kind,
    help: &'static str,
    read: fn(&ProcessInfo, Option<&ProcessStats>) -> Option<f64>,
}

const PROCESS_METRICS: &[ProcessMetric] = &[
    ProcessMetric {
        name: "corral_process_state",
        kind: Kind::Gauge,
        help: "Process state as supervisord's numeric code (0 STOPPED, 10 STARTING, 20 RUNNING, 30 BACKOFF, 40 STOPPING, 100 EXITED, 200 FATAL, 1000 UNKNOWN).",
        read: |p, _| Some(f64::from(p.state.code())),
    },
    ProcessMetric {
        name: "corral_process_up",
        kind: Kind::Gauge,
        help: "1 when the process is RUNNING, else 0.",
        read: |p, _| Some(if p.state == ProcessState::Running { 1.0 } else { 0.0 }),
    },
    ProcessMetric {
        name: "corral_process_pid",
        kind: Kind::Gauge,
        help: "Pid of the process, 0 when it is not running.",
        read: |p, _| Some(f64::from(p.pid)),
    },
    ProcessMetric {
        name: "corral_process_start_time_seconds",
        kind: Kind::Gauge,
        help: "Start time of the last spawn, seconds since the epoch (0 if never started).",
        read: |p, _| Some(p.start as f64),
    },
    ProcessMetric {
        name: "corral_process_restarts_total",
        kind: Kind::Counter,
        help: "Restarts since corrald started.",
        read: |p, _| Some(p.restarts as f64),
    },
    ProcessMetric {
        name: "corral_process_oom_kills_total",
        kind: Kind::Counter,
        help: "Processes of this program killed by the kernel's OOM killer.",
        read: |p, _| Some(p.oom_kills as f64),
    },
    ProcessMetric {
        name: "corral_process_cpu_seconds_total",
        kind: Kind::Counter,
        help: "CPU time consumed by the process's cgroup (or main pid), seconds.",
        read: |_, s| s.map(|s| s.cpu_seconds),
    },
    ProcessMetric {
        name: "corral_process_memory_bytes",
        kind: Kind::Gauge,
        help: "Memory charged to the process's cgroup, or the main pid's RSS without cgroups, bytes.",
        read: |_, s| s.and_then(|s| s.memory_current.or(s.rss)).map(|v| v as f64),
    },
    ProcessMetric {
        name: "corral_process_memory_peak_bytes",
        kind: Kind::Gauge,
        help: "Highest memory charged to the process's cgroup, bytes.",
        read: |_, s| s.and_then(|s| s.memory_peak).map(|v| v as f64),
    },
    ProcessMetric {
        name: "corral_process_tasks",
        kind: Kind::Gauge,
        help: "Processes in the process's cgroup.",
        read: |_, s| s.and_then(|s| s.tasks).map(|v| v as f64),
    },
    ProcessMetric {
        name: "corral_process_threads",
        kind: Kind::Gauge,
        help: "Threads of the processes in the process's cgroup.",
        read: |_, s| s.and_then(|s| s.threads).map(|v| v as f64),
    },
    ProcessMetric {
        name: "corral_process_open_fds",
        kind: Kind::Gauge,
        help: "Open file descriptors of the main pid.",
        read: |_, s| s.and_then(|s| s.fds).map(|v| v as f64),
    },
];

/// Render one scrape.
pub fn render(scrape: &Scrape<'_>) -> String {
    let mut out = Exposition(String::with_capacity(4096));
    daemon_metrics(&mut out, scrape);
    let stats: HashMap<(&str, &str), &ProcessStats> =
        scrape.stats.iter().map(|s| ((s.group.as_str(), s.name.as_str()), s)).collect();
    for metric in PROCESS_METRICS {
        let values: Vec<(&ProcessInfo, f64)> = scrape
            .processes
            .iter()
            .filter_map(|p| {
                let s = stats.get(&(p.group.as_str(), p.name.as_str())).copied();
                (metric.read)(p, s).map(|v| (p, v))
            })
            .collect();
        if values.is_empty() {
            continue;
        }
        out.family(metric.name, metric.kind, metric.help);
        for (p, v) in values {
            out.sample(metric.name, &[("name", &p.name), ("group", &p.group)], v);
        }
    }
    // The state again as a label, for dashboards that want names rather than codes.
    if !scrape.processes.is_empty() {
        let name = "corral_process_state_info";
        out.family(name, Kind::Gauge, "Always 1; the state label names the process's current state.");
        for p in scrape.processes {
            out.sample(name, &[("name", &p.name), ("group", &p.group), ("state", p.state.name())], 1.0);
        }
    }
    out.0
}

fn daemon_metrics(out: &mut Exposition, scrape: &Scrape<'_>) {
    out.family("corral_up", Kind::Gauge, "1 while corrald answers.");
    out.sample("corral_up", &[], 1.0);
    out.family("corral_info", Kind::Gauge, "Always 1; labels describe the daemon.");
    out.sample(
        "corral_info",
        &[
            ("version", scrape.version),
            ("cgroup_mode", &scrape.daemon.cgroup_mode),
            ("identifier", &scrape.daemon.identifier),
            ("mood", scrape.daemon.mood.name()),
        ],
        1.0,
    );
    out.family("corral_processes", Kind::Gauge, "Number of processes in each state.");
    for state in STATES {
        let n = scrape.processes.iter().filter(|p| p.state == state).count();
        out.sample("corral_processes", &[("state", state.name())], n as f64);
    }
    let r = scrape.readings;
    let own: [(&str, Kind, &str, Option<f64>); 4] = [
        (
            "corral_daemon_resident_memory_bytes",
            Kind::Gauge,
            "Resident set size of corrald itself, bytes.",
            r.rss_bytes.map(|v| v as f64),
        ),
        (
            "corral_daemon_cpu_seconds_total",
            Kind::Counter,
            "CPU time used by corrald itself, seconds.",
            r.cpu_seconds,
        ),
        (
            "corral_daemon_open_fds",
            Kind::Gauge,
            "Open file descriptors of corrald itself.",
            r.open_fds.map(|v| v as f64),
        ),
        (
            "corral_daemon_start_time_seconds",
            Kind::Gauge,
            "Start time of corrald, seconds since the epoch.",
            r.start_time_seconds,
        ),
    ];
    for (name, kind, help, value) in own {
        if let Some(v) = value {
            out.family(name, kind, help);
            out.sample(name, &[], v);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::Mood;

    fn process(group: &str, name: &str, state: ProcessState, pid: u32) -> ProcessInfo {
        ProcessInfo {
            name: name.into(),
            group: group.into(),
            start: 1_700_000_000,
            stop: 0,
            now: 1_700_000_100,
            state,
            spawnerr: String::new(),
            exitstatus: 0,
            stdout_logfile: String::new(),
            stderr_logfile: String::new(),
            pid,
            description: String::new(),
            restarts: 3,
            oom_kills: 1,
            cgroup: None,
        }
    }

    fn stats(group: &str, name: &str) -> ProcessStats {
        ProcessStats {
            name: name.into(),
            group: group.into(),
            pid: 42,
            statename: "RUNNING",
            cpu_percent: 0.0,
            cpu_seconds: 1.25,
            memory_current: Some(4096),
            memory_peak: Some(8192),
            rss: Some(1000),
            io_read_bytes: None,
            io_write_bytes: None,
            tasks: Some(2),
            threads: Some(3),
            fds: Some(5),
            restarts: 3,
            oom_kills: 1,
            cgroup: None,
        }
    }

    fn daemon() -> DaemonInfo {
        DaemonInfo {
            identifier: "id\"x".into(),
            mood: Mood::Running,
            main_log: None,
            cgroup_mode: "unified".into(),
        }
    }

    fn render_with(processes: &[ProcessInfo], stats: &[ProcessStats]) -> String {
        let readings = DaemonReadings {
            rss_bytes: Some(10),
            cpu_seconds: Some(0.5),
            open_fds: Some(7),
            start_time_seconds: Some(1.0),
        };
        let d = daemon();
        render(&Scrape { version: "0.1.0", daemon: &d, readings: &readings, processes, stats })
    }

    #[test]
    fn label_values_escape_backslash_quote_and_newline() {
        assert_eq!(escape_label(r#"a\b"c"#), r#"a\\b\"c"#);
        assert_eq!(escape_label("line\nnext"), "line\\nnext");
        assert_eq!(escape_label("plain:name-1"), "plain:name-1");
        assert_eq!(escape_help("a\\b\nc\"d"), "a\\\\b\\nc\"d");
    }

    #[test]
    fn values_use_go_float_syntax() {
        assert_eq!(format_value(3.0), "3");
        assert_eq!(format_value(1.25), "1.25");
        assert_eq!(format_value(f64::INFINITY), "+Inf");
        assert_eq!(format_value(f64::NEG_INFINITY), "-Inf");
        assert_eq!(format_value(f64::NAN), "NaN");
    }

    #[test]
    fn every_family_has_help_and_type_before_its_samples() {
        let text = render_with(
            &[process("g", "a", ProcessState::Running, 42), process("g", "b", ProcessState::Stopped, 0)],
            &[stats("g", "a")],
        );
        let mut seen = std::collections::HashSet::new();
        let mut current: Option<String> = None;
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix("# HELP ") {
                let name = rest.split(' ').next().unwrap_or_default().to_string();
                assert!(seen.insert(name.clone()), "family {name} declared twice");
                current = Some(name);
            } else if let Some(rest) = line.strip_prefix("# TYPE ") {
                assert_eq!(rest.split(' ').next(), current.as_deref(), "TYPE right after HELP");
            } else {
                let family = current.as_deref().expect("sample before any family");
                let sample_name = line.split(['{', ' ']).next().unwrap_or_default();
                assert_eq!(sample_name, family, "sample {line} outside its family");
            }
        }
        assert!(text.contains("corral_process_state{name=\"a\",group=\"g\"} 20\n"), "{text}");
        assert!(text.contains("corral_process_state{name=\"b\",group=\"g\"} 0\n"));
        assert!(text.contains("corral_process_up{name=\"a\",group=\"g\"} 1\n"));
        assert!(text.contains("corral_process_up{name=\"b\",group=\"g\"} 0\n"));
        assert!(text.contains("# TYPE corral_process_restarts_total counter\n"));
        assert!(text.contains("corral_process_cpu_seconds_total{name=\"a\",group=\"g\"} 1.25\n"));
        assert!(text.contains("corral_process_memory_bytes{name=\"a\",group=\"g\"} 4096\n"));
        // b has no readings: no resource sample rather than a made-up zero.
        assert!(!text.contains("corral_process_memory_bytes{name=\"b\""));
        assert!(text.contains("corral_processes{state=\"RUNNING\"} 1\n"));
        assert!(text.contains("corral_processes{state=\"FATAL\"} 0\n"));
        assert!(text.contains("corral_info{version=\"0.1.0\",cgroup_mode=\"unified\",identifier=\"id\\\"x\",mood=\"RUNNING\"} 1\n"));
        assert!(text.contains("corral_process_state_info{name=\"a\",group=\"g\",state=\"RUNNING\"} 1\n"));
        assert!(text.ends_with('\n'));
    }

    #[test]
    fn awkward_names_are_escaped_in_every_sample() {
        let text = render_with(&[process("g\\1", "x\"y", ProcessState::Fatal, 0)], &[]);
        assert!(text.contains("corral_process_state{name=\"x\\\"y\",group=\"g\\\\1\"} 200\n"), "{text}");
    }
}
