//! corralctl against a real corrald, side by side with the stock supervisorctl:
//! same daemon, same state, same stdout and exit code.

mod common;

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::*;
use dxr::Value;

const CORRALCTL: &str = env!("CARGO_BIN_EXE_corralctl");

/// Programs used by most tests: a running one that ignores SIGHUP and writes to
/// both channels, a stopped one, a group with a running and a fatal member, and
/// a name longer than the status column.
const PROGRAMS: &str = "\
[program:web]
command=sh -c 'trap \"\" HUP; echo hello out; echo hello err >&2; while :; do sleep 1; done'
startsecs=0
stdout_logfile={dir}/web.out
stderr_logfile={dir}/web.err

[program:idle]
command=sleep 1000
autostart=false

[group:pool]
programs=w1,w2

[program:w1]
command=sleep 1000
startsecs=0

[program:w2]
command=/bin/false
startretries=0

[program:a_program_with_a_name_longer_than_thirty]
command=sleep 1000
startsecs=0
";

fn start_daemon() -> Daemon {
    let d = Daemon::start(PROGRAMS);
    d.wait_state("web", "RUNNING");
    d.wait_state("pool:w1", "RUNNING");
    d.wait_state("pool:w2", "FATAL");
    d.wait_state("a_program_with_a_name_longer_than_thirty", "RUNNING");
    wait_for("web's output", DEADLINE, || {
        std::fs::read_to_string(d.path("web.out")).unwrap_or_default().contains("hello out")
            && std::fs::read_to_string(d.path("web.err")).unwrap_or_default().contains("hello err")
    });
    d
}

fn run(program: &Path, conf: &Path, args: &[&str]) -> Output {
    Command::new(program)
        .arg("-c")
        .arg(conf)
        .args(args)
        .env("PYTHONIOENCODING", "utf-8")
        .stdin(Stdio::null())
        .output()
        .expect("run client")
}

/// (stdout, exit code) of corralctl.
fn ctl(conf: &Path, args: &[&str]) -> (String, i32) {
    let o = run(Path::new(CORRALCTL), conf, args);
    (String::from_utf8_lossy(&o.stdout).into_owned(), o.status.code().unwrap_or(-1))
}

/// (stdout, exit code) of the stock supervisorctl.
fn stock(sc: &Path, conf: &Path, args: &[&str]) -> (String, i32) {
    let o = run(sc, conf, args);
    (String::from_utf8_lossy(&o.stdout).into_owned(), o.status.code().unwrap_or(-1))
}

/// Both clients give the same stdout and exit code for a read-only command.
/// Retried a few times because uptimes may tick between the two runs.
fn same(sc: &Path, conf: &Path, args: &[&str]) -> (String, i32) {
    let mut last = None;
    for _ in 0..5 {
        let a = stock(sc, conf, args);
        let b = ctl(conf, args);
        if a == b {
            return b;
        }
        last = Some((a, b));
    }
    let (a, b) = last.expect("compared at least once");
    panic!(
        "{args:?} differs\n--- supervisorctl (exit {}):\n{}\n--- corralctl (exit {}):\n{}",
        a.1, a.0, b.1, b.0
    );
}

fn stock_client() -> Option<PathBuf> {
    let sc = supervisorctl();
    if sc.is_none() {
        skip("the stock supervisorctl is not installed (set CORRAL_TEST_PYTHON)");
    }
    sc
}

#[test]
fn status_avail_pid_version_and_help_match_supervisorctl() {
    let Some(sc) = stock_client() else { return };
    let d = start_daemon();
    let c = &d.conf;
    let (out, code) = same(&sc, c, &["status"]);
    assert_eq!(code, 3, "a FATAL and a STOPPED process make status exit 3:\n{out}");
    assert!(out.contains("a_program_with_a_name_longer_than_thirty   RUNNING   pid "), "{out}");
    assert_eq!(same(&sc, c, &["status", "web"]).1, 0);
    same(&sc, c, &["status", "pool:*"]);
    same(&sc, c, &["status", "pool:w1", "web"]);
    same(&sc, c, &["status", "all"]);
    let (out, code) = same(&sc, c, &["status", "nope", "nog:*", "web"]);
    assert_eq!(code, 4);
    assert!(out.starts_with("nope: ERROR (no such process)\nnog: ERROR (no such group)\n"), "{out}");
    same(&sc, c, &["avail"]);
    same(&sc, c, &["avail", "x"]);
    same(&sc, c, &["pid"]);
    same(&sc, c, &["pid", "all"]);
    assert_eq!(same(&sc, c, &["pid", "web"]).1, 0);
    assert_eq!(same(&sc, c, &["pid", "idle"]).1, 7);
    assert_eq!(same(&sc, c, &["pid", "nope"]).1, 1);
    same(&sc, c, &["version"]);
    same(&sc, c, &["version", "x"]);
    same(&sc, c, &["help"]);
    for cmd in [
        "add", "avail", "clear", "exit", "fg", "maintail", "open", "pid", "quit", "reload", "remove",
        "reread", "restart", "shutdown", "signal", "start", "status", "stop", "tail", "update", "version",
        "help", "nope",
    ] {
        same(&sc, c, &["help", cmd]);
    }
    assert_eq!(same(&sc, c, &["frobnicate", "x"]).1, 1);
}

#[test]
fn tail_maintail_and_clear_match_supervisorctl() {
    let Some(sc) = stock_client() else { return };
    let d = start_daemon();
    let c = &d.conf;
    let (out, _) = same(&sc, c, &["tail", "web"]);
    assert!(out.contains("hello out"), "{out}");
    let (out, _) = same(&sc, c, &["tail", "web", "stderr"]);
    assert!(out.contains("hello err"), "{out}");
    same(&sc, c, &["tail", "-4", "web"]);
    same(&sc, c, &["tail", "-4", "web", "STDERR"]);
    for bad in [
        &["tail"][..],
        &["tail", "nope"],
        &["tail", "web", "sideways"],
        &["tail", "-x", "web"],
        &["tail", "a", "b", "c", "d"],
        &["tail", "-f"],
    ] {
        assert_eq!(same(&sc, c, bad).1, 1, "{bad:?}");
    }
    same(&sc, c, &["maintail", "-50"]);
    same(&sc, c, &["maintail", "x"]);
    same(&sc, c, &["maintail", "-1", "-2"]);
    same(&sc, c, &["clear"]);
    same(&sc, c, &["clear", "nope"]);
    let (out, code) = same(&sc, c, &["clear", "web", "pool:w1"]);
    assert_eq!((out.as_str(), code), ("web: cleared\npool:w1: cleared\n", 0));
    same(&sc, c, &["clear", "all"]);
}

/// Run a state-changing command with supervisorctl, undo it, then with
/// corralctl, so both meet the same state; outputs and exit codes must match.
fn same_change(sc: &Path, conf: &Path, args: &[&str], undo: &[&str]) -> (String, i32) {
    let a = stock(sc, conf, args);
    ctl(conf, undo);
    let b = ctl(conf, args);
    assert_eq!(a, b, "{args:?}\n--- supervisorctl:\n{}\n--- corralctl:\n{}", a.0, b.0);
    b
}

#[test]
fn start_stop_restart_signal_match_supervisorctl() {
    let Some(sc) = stock_client() else { return };
    let d = start_daemon();
    let c = &d.conf;
    assert_eq!(same_change(&sc, c, &["stop", "web"], &["start", "web"]), ("web: stopped\n".into(), 0));
    assert_eq!(same_change(&sc, c, &["start", "web"], &["stop", "web"]), ("web: started\n".into(), 0));
    same_change(&sc, c, &["restart", "web"], &[]);
    same_change(&sc, c, &["stop", "pool:*"], &["start", "pool:w1"]);
    let (out, code) = same_change(&sc, c, &["start", "pool:*"], &["stop", "pool:w1"]);
    assert_eq!(code, 7, "a spawn error exits 7:\n{out}");
    assert_eq!(same(&sc, c, &["start", "web"]), ("web: ERROR (already started)\n".into(), 0));
    assert_eq!(same(&sc, c, &["stop", "idle"]), ("idle: ERROR (not running)\n".into(), 0));
    assert_eq!(same(&sc, c, &["start", "nope"]).1, 1);
    assert_eq!(same(&sc, c, &["start", "nog:*"]).1, 2);
    assert_eq!(same(&sc, c, &["stop", "nope", "nog:*"]).1, 1);
    assert_eq!(same(&sc, c, &["start"]).1, 2);
    assert_eq!(same(&sc, c, &["stop"]).1, 1);
    assert_eq!(same(&sc, c, &["restart"]).1, 1);
    assert_eq!(same(&sc, c, &["signal", "HUP", "web"]), ("web: signalled\n".into(), 0));
    same(&sc, c, &["signal", "HUP", "pool:*"]);
    assert_eq!(same(&sc, c, &["signal", "HUP", "idle"]).1, 7);
    assert_eq!(same(&sc, c, &["signal", "BOGUS", "web"]).1, 1);
    assert_eq!(same(&sc, c, &["signal", "HUP", "nope", "nog:*"]).1, 1);
    assert_eq!(same(&sc, c, &["signal", "HUP"]).1, 1);
    assert_eq!(d.state("web"), "RUNNING", "web ignores SIGHUP");
}

#[test]
fn reread_update_add_remove_match_supervisorctl() {
    let Some(sc) = stock_client() else { return };
    let d = start_daemon();
    let c = &d.conf;
    assert_eq!(same(&sc, c, &["reread"]), ("No config updates to processes\n".into(), 0));
    let mut text = std::fs::read_to_string(c).unwrap();
    text.push_str("\n[program:extra]\ncommand=sleep 1000\nstartsecs=0\n");
    std::fs::write(c, &text).unwrap();
    assert_eq!(same(&sc, c, &["reread"]), ("extra: available\n".into(), 0));
    assert_eq!(same(&sc, c, &["add", "nope"]).1, 1);
    assert_eq!(same(&sc, c, &["remove", "nope"]).1, 1);
    assert_eq!(same(&sc, c, &["update", "nope"]).1, 1);
    let undo_add = |conf: &Path| {
        ctl(conf, &["stop", "extra"]);
        ctl(conf, &["remove", "extra"]);
    };
    let a = stock(&sc, c, &["update"]);
    undo_add(c);
    let b = ctl(c, &["update"]);
    assert_eq!(a, b);
    assert_eq!(b, ("extra: added process group\n".into(), 0));
    d.wait_state("extra", "RUNNING");
    assert_eq!(same(&sc, c, &["remove", "extra"]), ("ERROR: process/group still running: extra\n".into(), 1));
    assert_eq!(same(&sc, c, &["add", "extra"]), ("ERROR: process group already active\n".into(), 0));
    ctl(c, &["stop", "extra"]);
    let a = stock(&sc, c, &["remove", "extra"]);
    ctl(c, &["add", "extra"]);
    ctl(c, &["stop", "extra"]);
    let b = ctl(c, &["remove", "extra"]);
    assert_eq!(a, b);
    assert_eq!(b, ("extra: removed process group\n".into(), 0));
    let a = stock(&sc, c, &["add", "extra"]);
    ctl(c, &["stop", "extra"]);
    ctl(c, &["remove", "extra"]);
    let b = ctl(c, &["add", "extra"]);
    assert_eq!((a.clone(), b), (("extra: added process group\n".into(), 0), a));
    // A section that disappears: update stops and removes it.
    std::fs::write(c, text.replace("[program:extra]\ncommand=sleep 1000\nstartsecs=0\n", "")).unwrap();
    assert_eq!(same(&sc, c, &["reread"]), ("extra: disappeared\n".into(), 0));
    let (out, code) = ctl(c, &["update", "all"]);
    assert_eq!((out.as_str(), code), ("extra: stopped\nextra: removed process group\n", 0));
}

#[test]
fn connection_failures_match_supervisorctl() {
    let Some(sc) = stock_client() else { return };
    let dir = tempfile::tempdir().unwrap();
    let conf = dir.path().join("ctl.conf");
    let missing = format!("unix://{}/missing.sock", dir.path().display());
    std::fs::write(&conf, format!("[supervisorctl]\nserverurl={missing}\n")).unwrap();
    let (out, code) = same(&sc, &conf, &["status"]);
    assert_eq!((out, code), (format!("{missing} no such file\n"), 4));
    assert_eq!(same(&sc, &conf, &["pid"]).1, 7);
    assert_eq!(same(&sc, &conf, &["start", "x"]).1, 7);
    assert_eq!(same(&sc, &conf, &["shutdown"]).1, 1);
    // A socket nobody listens on: connection refused.
    let dead = dir.path().join("dead.sock");
    drop(std::os::unix::net::UnixListener::bind(&dead).unwrap());
    std::fs::write(&conf, format!("[supervisorctl]\nserverurl=unix://{}\n", dead.display())).unwrap();
    assert_eq!(same(&sc, &conf, &["status"]).1, 4);
    assert_eq!(same(&sc, &conf, &["version"]).1, 4);
    assert_eq!(same(&sc, &conf, &["shutdown"]).1, 1);
    // A config without [supervisorctl].
    std::fs::write(&conf, "[supervisord]\n").unwrap();
    let o = run(Path::new(CORRALCTL), &conf, &["status"]);
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr.starts_with("Error: .ini file does not include supervisorctl section\n"), "{stderr}");
}

#[test]
fn authentication_is_required_when_configured() {
    let dir = tempfile::tempdir().unwrap();
    let text = preamble(dir.path()).replace(
        &format!("file={}/corral.sock\n", dir.path().display()),
        &format!("file={}/corral.sock\nusername=admin\npassword=secret\n", dir.path().display()),
    );
    let d = Daemon::start_with_auth(dir, &format!("{text}[program:web]\ncommand=sleep 1000\nstartsecs=0\n"));
    let (out, code) = ctl(&d.conf, &["status"]);
    assert_eq!((out.as_str(), code), ("Server requires authentication\n", 1));
    let (out, code) = ctl(&d.conf, &["-u", "admin", "-p", "secret", "status", "web"]);
    assert!(out.starts_with("web "), "{out}");
    assert_eq!(code, 0);
    if let Some(sc) = supervisorctl() {
        // supervisorctl then retries the command once more and also prints the
        // resulting traceback line; corralctl stops after the message.
        let (theirs, code) = stock(&sc, &d.conf, &["status"]);
        assert_eq!((theirs.lines().next(), code), (Some("Server requires authentication"), 1));
    }
}

#[test]
fn json_output_parses_and_carries_the_values() {
    let d = start_daemon();
    let c = &d.conf;
    let parse = |args: &[&str]| -> serde_json::Value {
        let (out, _) = ctl(c, args);
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("{args:?}: {e}\n{out}"))
    };
    let status = parse(&["--json", "status"]);
    let rows = status.as_array().unwrap();
    assert_eq!(rows.len(), 5);
    let web = rows.iter().find(|r| r["namespec"] == "web").unwrap();
    assert_eq!(web["statename"], "RUNNING");
    assert_eq!(web["state"], 20);
    assert_eq!(web["pid"].as_i64().unwrap(), d.pid("web"));
    let w2 = rows.iter().find(|r| r["namespec"] == "pool:w2").unwrap();
    assert_eq!(
        (w2["group"].as_str(), w2["name"].as_str(), w2["statename"].as_str()),
        (Some("pool"), Some("w2"), Some("FATAL"))
    );
    // The flag also works after the command, and filters like text status.
    let one = parse(&["status", "--json", "pool:*"]);
    assert_eq!(one.as_array().unwrap().len(), 2);
    let (_, code) = ctl(c, &["status", "--json", "nope"]);
    assert_eq!(code, 4);

    let avail = parse(&["avail", "--json"]);
    let idle = avail.as_array().unwrap().iter().find(|r| r["name"] == "idle").unwrap();
    assert_eq!((idle["in_use"].as_bool(), idle["autostart"].as_bool()), (Some(true), Some(false)));
    assert_eq!(idle["group_priority"], 999);

    let pids = parse(&["pid", "--json"]);
    assert_eq!(pids[0]["name"], "supervisord");
    assert_eq!(pids[0]["pid"].as_i64().unwrap(), i64::from(d.daemon_pid()));
    let pids = parse(&["pid", "--json", "web", "idle"]);
    assert_eq!(pids[0]["pid"].as_i64().unwrap(), d.pid("web"));
    assert_eq!(pids[1], serde_json::json!({"name": "idle", "pid": 0}));
    assert_eq!(parse(&["pid", "--json", "all"]).as_array().unwrap().len(), 5);

    let version = parse(&["version", "--json"]);
    assert_eq!(
        version["supervisor_version"],
        str_of(&d.call("supervisor.getSupervisorVersion", vec![])).as_str()
    );
    assert_eq!(version["api_version"], "3.0");
    assert!(version["identification"].as_str().unwrap_or("").starts_with("test-"), "{version}");
    // Which cgroup setup the daemon runs with is part of `version --json`.
    assert_eq!(version["cgroup_mode"], str_of(&d.call("corral.getCgroupMode", vec![])).as_str());
}

/// Stats the fake server reports for one process.
fn fake_stats(name: &str, cpu: f64, memory: i64) -> Value {
    let mut m = BTreeMap::new();
    let put = |m: &mut BTreeMap<String, Value>, k: &str, v: Value| {
        m.insert(k.to_string(), v);
    };
    put(&mut m, "name", Value::String(name.into()));
    put(&mut m, "group", Value::String(name.into()));
    put(&mut m, "pid", Value::Integer(4242));
    put(&mut m, "statename", Value::String("RUNNING".into()));
    put(&mut m, "cpu_percent", Value::Double(cpu));
    put(&mut m, "cpu_seconds", Value::Double(12.5));
    put(&mut m, "memory_current", Value::Long(memory));
    put(&mut m, "memory_peak", Value::Long(memory * 2));
    put(&mut m, "rss", Value::Long(memory));
    put(&mut m, "io_read_bytes", Value::Long(-1));
    put(&mut m, "io_write_bytes", Value::Long(0));
    put(&mut m, "tasks", Value::Integer(3));
    put(&mut m, "threads", Value::Integer(4));
    put(&mut m, "fds", Value::Integer(-1));
    put(&mut m, "restarts", Value::Integer(2));
    put(&mut m, "oom_kills", Value::Integer(1));
    put(&mut m, "cgroup", Value::String(format!("/corral/{name}/{name}")));
    Value::Struct(m)
}

/// A fake corrald answering getVersion, stats and limits (the limits start at `max`).
fn fake_corrald() -> FakeRpcServer {
    let limits = std::sync::Mutex::new(BTreeMap::from([
        ("memory_max".to_string(), Value::String("max".into())),
        ("cpu_quota".to_string(), Value::String("max".into())),
    ]));
    FakeRpcServer::start(move |method, params| match method {
        "supervisor.getVersion" => Ok(Value::String("3.0".into())),
        "corral.getAllProcessStats" => Ok(Value::Array(vec![
            fake_stats("hungry", 1.5, 512 * 1024 * 1024),
            fake_stats("busy", 87.25, 1024),
        ])),
        "corral.getLimits" | "corral.setLimits" => {
            if params.first() != Some(&Value::String("hungry".into())) {
                return Err((10, "BAD_NAME: nope".into()));
            }
            let mut l = limits.lock().unwrap();
            if let Some(Value::Struct(changes)) = params.get(1) {
                for (k, v) in changes {
                    if !l.contains_key(k) {
                        return Err((3, format!("BAD_ARGUMENTS: unknown limit {k}")));
                    }
                    let v = if v == &Value::String("512M".into()) {
                        Value::String("536870912".into())
                    } else {
                        v.clone()
                    };
                    l.insert(k.clone(), v);
                }
            }
            Ok(Value::Struct(l.clone()))
        }
        _ => Err((1, "UNKNOWN_METHOD".into())),
    })
}

fn ctl_url(url: &str, args: &[&str]) -> (String, String, i32) {
    let o = Command::new(CORRALCTL).arg("-s").arg(url).args(args).stdin(Stdio::null()).output().unwrap();
    (
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
        o.status.code().unwrap_or(-1),
    )
}

#[test]
fn stats_table_and_json_against_the_fake_server() {
    let fake = fake_corrald();
    let (out, _, code) = ctl_url(&fake.url(), &["stats"]);
    assert_eq!(code, 0, "{out}");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 3, "{out}");
    for h in ["NAME", "STATE", "PID", "CPU%", "MEM", "PEAK", "TASKS", "FDS", "RESTARTS", "OOM", "CGROUP"] {
        assert!(lines[0].contains(h), "{h} in {}", lines[0]);
    }
    let hungry = lines.iter().find(|l| l.starts_with("hungry")).unwrap();
    for cell in ["RUNNING", "4242", "1.5", "512.0M", "1.0G", "/corral/hungry/hungry"] {
        assert!(hungry.contains(cell), "{cell} in {hungry}");
    }
    let (out, _, _) = ctl_url(&fake.url(), &["stats", "--json", "busy"]);
    let doc: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(doc.as_array().unwrap().len(), 1);
    let busy = &doc[0];
    assert_eq!(busy["cpu_percent"], 87.25);
    assert_eq!(busy["memory_current"], 1024);
    assert_eq!(busy["memory_peak"], 2048);
    assert_eq!(busy["fds"], serde_json::Value::Null, "-1 is unknown");
    assert_eq!(busy["io_read_bytes"], serde_json::Value::Null);
    assert_eq!(
        (busy["tasks"].as_i64(), busy["restarts"].as_i64(), busy["oom_kills"].as_i64()),
        (Some(3), Some(2), Some(1))
    );
    let (_, err, code) = ctl_url(&fake.url(), &["stats", "nope"]);
    assert_eq!((err.as_str(), code), ("nope: ERROR (no such process)\n", 1));
}

#[test]
fn limits_read_and_change_against_the_fake_server() {
    let fake = fake_corrald();
    let (out, _, code) = ctl_url(&fake.url(), &["limits", "hungry"]);
    assert_eq!((out.as_str(), code), ("memory_max  max\ncpu_quota   max\n", 0));
    let (out, _, code) = ctl_url(&fake.url(), &["limits", "hungry", "memory_max=512M", "cpu_quota=150%"]);
    assert_eq!((out.as_str(), code), ("memory_max  536870912 (512.0M)\ncpu_quota   150%\n", 0));
    let (out, _, _) = ctl_url(&fake.url(), &["limits", "--json", "hungry"]);
    let doc: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        doc,
        serde_json::json!({"name": "hungry", "limits": {"memory_max": "536870912", "cpu_quota": "150%"}})
    );
    assert_eq!(ctl_url(&fake.url(), &["limits", "nope"]).0, "nope: ERROR (no such process)\n");
    let (out, _, code) = ctl_url(&fake.url(), &["limits", "hungry", "bogus=1"]);
    assert_eq!((out.as_str(), code), ("hungry: ERROR (unknown limit bogus)\n", 2));
    assert_eq!(ctl_url(&fake.url(), &["limits", "hungry", "novalue"]).2, 2);
}

#[test]
fn stats_and_limits_against_the_real_daemon() {
    let d = start_daemon();
    let (out, code) = ctl(&d.conf, &["stats", "--json"]);
    assert_eq!(code, 0, "{out}");
    let doc: serde_json::Value = serde_json::from_str(&out).unwrap();
    let web = doc.as_array().unwrap().iter().find(|r| r["namespec"] == "web").unwrap();
    assert_eq!(web["pid"].as_i64().unwrap(), d.pid("web"));
    assert!(web["restarts"].as_i64().is_some() && web["statename"] == "RUNNING", "{web}");
    let (out, code) = ctl(&d.conf, &["limits", "web", "memory_max=64M"]);
    assert_eq!(code, 0, "{out}");
    let (out, code) = ctl(&d.conf, &["limits", "web", "--json"]);
    assert_eq!(code, 0, "{out}");
    let doc: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(doc["limits"]["memory_max"], (64u64 << 20).to_string(), "{doc}");
}

/// A tmux session running one command, killed on drop.
struct Tmux {
    name: String,
}

impl Tmux {
    fn start(command: &str) -> Option<Tmux> {
        if Command::new("tmux").arg("-V").output().is_err() {
            skip("tmux is not installed");
            return None;
        }
        let name = format!("corralctl-test-{}-{}", std::process::id(), rand_suffix());
        let ok = Command::new("tmux")
            .args(["new-session", "-d", "-x", "200", "-y", "50", "-s", &name, command])
            .status()
            .map(|s| s.success())
            .unwrap_or(false);
        assert!(ok, "tmux new-session failed");
        Some(Tmux { name })
    }

    fn capture(&self) -> String {
        let o = Command::new("tmux").args(["capture-pane", "-p", "-t", &self.name]).output().unwrap();
        String::from_utf8_lossy(&o.stdout).into_owned()
    }

    fn wait_for_text(&self, text: &str) -> String {
        let start = Instant::now();
        loop {
            let screen = self.capture();
            if screen.contains(text) {
                return screen;
            }
            assert!(start.elapsed() < DEADLINE, "timed out waiting for {text:?} on screen:\n{screen}");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn keys(&self, keys: &[&str]) {
        let mut cmd = Command::new("tmux");
        cmd.args(["send-keys", "-t", &self.name]).args(keys);
        assert!(cmd.status().unwrap().success());
    }

    /// Wait until the shell shows an empty prompt on its last line (so typed keys are not lost).
    fn wait_prompt(&self, prompt: &str) {
        let start = Instant::now();
        loop {
            let screen = self.capture();
            if screen.lines().rev().find(|l| !l.trim().is_empty()) == Some(prompt) {
                return;
            }
            assert!(start.elapsed() < DEADLINE, "no idle prompt {prompt:?}:\n{screen}");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Type `keys` at an idle prompt until `expect` shows (a line editor may drop
    /// keys that arrive while it sets up the terminal, so idempotent lines are re-sent).
    fn command(&self, prompt: &str, keys: &[&str], expect: &str) -> String {
        let start = Instant::now();
        loop {
            self.wait_prompt(prompt);
            self.keys(keys);
            let sent = Instant::now();
            while sent.elapsed() < Duration::from_secs(3) {
                let screen = self.capture();
                if screen.contains(expect) {
                    return screen;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            assert!(start.elapsed() < DEADLINE, "{keys:?} never showed {expect:?}:\n{}", self.capture());
        }
    }

    /// Type `keys` at an idle prompt until the session ends.
    fn command_to_end(&self, prompt: &str, keys: &[&str]) {
        let start = Instant::now();
        while self.alive() {
            if self.capture().lines().rev().find(|l| !l.trim().is_empty()) == Some(prompt) {
                self.keys(keys);
            }
            let sent = Instant::now();
            while self.alive() && sent.elapsed() < Duration::from_secs(3) {
                std::thread::sleep(Duration::from_millis(50));
            }
            assert!(
                start.elapsed() < DEADLINE || !self.alive(),
                "the session did not end:\n{}",
                self.capture()
            );
        }
    }

    fn alive(&self) -> bool {
        Command::new("tmux")
            .args(["has-session", "-t", &self.name])
            .status()
            .map(|s| s.success())
            .unwrap_or(false)
    }

    fn wait_gone(&self) {
        let start = Instant::now();
        while self.alive() {
            assert!(start.elapsed() < DEADLINE, "the tmux session did not end:\n{}", self.capture());
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = Command::new("tmux").args(["kill-session", "-t", &self.name]).status();
    }
}

fn rand_suffix() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}

#[test]
fn top_shows_rows_sorts_and_quits_on_q() {
    let fake = fake_corrald();
    let Some(t) = Tmux::start(&format!("{CORRALCTL} -s {} top --interval 0.2", fake.url())) else { return };
    let screen = t.wait_for_text("hungry");
    assert!(screen.contains("by CPU"), "{screen}");
    let busy = screen.find("busy").unwrap();
    let hungry = screen.find("hungry").unwrap();
    assert!(busy < hungry, "busier first by CPU:\n{screen}");
    t.keys(&["m"]);
    let screen = t.wait_for_text("processes, by memory");
    assert!(
        screen.find("hungry").unwrap() < screen.find("busy").unwrap(),
        "bigger first by memory:\n{screen}"
    );
    t.keys(&["q"]);
    t.wait_gone();
}

#[test]
fn top_against_the_real_daemon_shows_programs() {
    let d = start_daemon();
    let Some(t) = Tmux::start(&format!("{CORRALCTL} -c {} top", d.conf.display())) else { return };
    let screen = t.wait_for_text("a_program_with_a_name_longer_than_thirty");
    assert!(screen.contains("pool:w1"), "{screen}");
    t.keys(&["q"]);
    t.wait_gone();
}

#[test]
fn interactive_shell_shows_status_prompt_and_unknown_syntax() {
    let d = start_daemon();
    let Some(t) = Tmux::start(&format!("{CORRALCTL} -c {}", d.conf.display())) else { return };
    let screen = t.wait_for_text("supervisor>");
    assert!(screen.contains("pool:w2"), "status runs first:\n{screen}");
    let p = "supervisor>";
    t.command(p, &["frobnicate", "Enter"], "*** Unknown syntax: frobnicate");
    t.command(p, &["pid web", "Enter"], &format!("pid web\n{}", d.pid("web")));
    // Tab completes command names and process names.
    let version = str_of(&d.call("supervisor.getSupervisorVersion", vec![]));
    t.command(p, &["versi", "Tab", "Enter"], &format!("> version\n{version}"));
    t.command(
        p,
        &["status a_pro", "Tab", "Enter"],
        "> status a_program_with_a_name_longer_than_thirty\na_program",
    );
    t.command_to_end(p, &["quit", "Enter"]);
}

/// Read `child`'s stdout until it contains `text`; returns what was read.
fn read_until(child: &mut Child, text: &str) -> String {
    let mut out = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while let Ok(n) = out.read(&mut buf) {
            if n == 0 || tx.send(buf[..n].to_vec()).is_err() {
                break;
            }
        }
    });
    let mut seen = Vec::new();
    let start = Instant::now();
    while !String::from_utf8_lossy(&seen).contains(text) {
        assert!(
            start.elapsed() < DEADLINE,
            "timed out waiting for {text:?}; got {:?}",
            String::from_utf8_lossy(&seen)
        );
        if let Ok(chunk) = rx.recv_timeout(Duration::from_millis(100)) {
            seen.extend(chunk);
        }
    }
    // Keep draining in the background so the child never blocks on a full pipe.
    std::thread::spawn(move || while rx.recv().is_ok() {});
    String::from_utf8_lossy(&seen).into_owned()
}

fn wait_child(child: &mut Child) -> i32 {
    let start = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status.code().unwrap_or(-1);
        }
        if start.elapsed() > DEADLINE {
            let _ = child.kill();
            let _ = child.wait();
            panic!("corralctl did not exit");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn tail_f_streams_until_ctrl_c() {
    let d = start_daemon();
    let mut child = Command::new(CORRALCTL)
        .args(["-c", &d.conf.display().to_string(), "tail", "-f", "web", "stderr"])
        .stdout(Stdio::piped())
        .stdin(Stdio::null())
        .spawn()
        .unwrap();
    let seen = read_until(&mut child, "hello err");
    assert!(seen.starts_with("==> Press Ctrl-C to exit <==\n"), "{seen}");
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(child.id() as i32), nix::sys::signal::Signal::SIGINT)
        .unwrap();
    assert_eq!(wait_child(&mut child), 0);
}

#[test]
fn fg_sends_lines_and_shows_output() {
    let d = Daemon::start("[program:echo]\ncommand=cat\nstartsecs=0\n");
    d.wait_state("echo", "RUNNING");
    let mut child = Command::new(CORRALCTL)
        .args(["-c", &d.conf.display().to_string(), "fg", "echo"])
        .stdout(Stdio::piped())
        .stdin(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    // The follower may connect after the line is echoed; its first read shows the file's tail anyway.
    stdin.write_all(b"ping from fg\n").unwrap();
    let seen = read_until(&mut child, "ping from fg");
    assert!(seen.starts_with("==> Press Ctrl-C to exit <==\n"), "{seen}");
    drop(stdin);
    assert_eq!(wait_child(&mut child), 0);
}

#[test]
fn shutdown_and_reload() {
    let mut d = Daemon::start("[program:web]\ncommand=sleep 1000\nstartsecs=0\n");
    let (out, code) = ctl(&d.conf, &["reload"]);
    assert_eq!((out.as_str(), code), ("Restarted supervisord\n", 0));
    wait_for("the daemon to answer after reload", DEADLINE, || {
        d.try_call("supervisor.getPID", vec![]).is_ok()
    });
    let (out, code) = ctl(&d.conf, &["shutdown"]);
    assert_eq!((out.as_str(), code), ("Shut down\n", 0));
    d.wait_exit();
    let (out, code) = ctl(&d.conf, &["shutdown"]);
    assert_eq!(
        (out, code),
        (format!("ERROR: unix://{} no such file (already shut down?)\n", d.sock.display()), 1)
    );
}

#[test]
fn check_config_validates_like_corrald() {
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("good.conf");
    std::fs::write(&good, format!("{}[program:web]\ncommand=sleep 1\n", preamble(dir.path()))).unwrap();
    let o = Command::new(CORRALCTL).arg("check-config").arg(&good).output().unwrap();
    let theirs = Command::new(env!("CARGO_BIN_EXE_corrald"))
        .arg("--check-config")
        .arg("-c")
        .arg(&good)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0));
    assert_eq!(o.stdout, theirs.stdout);
    let bad = dir.path().join("bad.conf");
    std::fs::write(
        &bad,
        format!("{}[program:web]\ncommand=sleep 1\nautostart=perhaps\n", preamble(dir.path())),
    )
    .unwrap();
    let o = Command::new(CORRALCTL).arg("check-config").arg(&bad).output().unwrap();
    assert_eq!(o.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("autostart"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
}

/// The checked-in completions and man page are what the code generates.
/// `CORRAL_REGENERATE=1 cargo test --test corralctl generated` rewrites them.
#[test]
fn generated_completions_and_man_page_are_up_to_date() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let files = [
        (vec!["completions", "bash"], "packaging/completions/corralctl.bash"),
        (vec!["completions", "zsh"], "packaging/completions/_corralctl"),
        (vec!["completions", "fish"], "packaging/completions/corralctl.fish"),
        (vec!["manpage"], "man/corralctl.1"),
    ];
    let regenerate = std::env::var_os("CORRAL_REGENERATE").is_some();
    for (args, path) in files {
        let o = Command::new(CORRALCTL).args(&args).output().unwrap();
        assert!(o.status.success());
        let file = root.join(path);
        if regenerate {
            std::fs::write(&file, &o.stdout).unwrap();
        }
        let checked_in = std::fs::read(&file).unwrap_or_default();
        assert!(
            checked_in == o.stdout,
            "{path} is stale: run `CORRAL_REGENERATE=1 cargo test --test corralctl generated`"
        );
    }
}
