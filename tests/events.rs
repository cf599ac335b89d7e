//! Event listeners against a real corrald: a protocol-speaking listener script
//! records every envelope it gets; superlance's listeners run unchanged.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use common::*;

/// A raw-protocol listener: logs `header\npayload\n--END--\n` per event.
/// argv: log file, mode (`ok`, `fail`: FAIL the first event, `crash`: exit
/// on the first event, `violate`: answer the first event with garbage).
const LISTENER: &str = r#"
import os, sys
log = open(sys.argv[1], 'ab', buffering=0)
mode = sys.argv[2] if len(sys.argv) > 2 else 'ok'
marker = sys.argv[1] + '.' + mode
inp, out = sys.stdin.buffer, sys.stdout.buffer
def send(b):
    out.write(b)
    out.flush()
while True:
    send(b'READY\n')
    line = inp.readline()
    if not line:
        break
    headers = dict(t.split(':', 1) for t in line.decode().split())
    payload = inp.read(int(headers['len']))
    log.write(line + payload + b'\n--END--\n')
    first = not os.path.exists(marker)
    if first and mode != 'ok':
        open(marker, 'w').close()
        if mode == 'fail':
            send(b'RESULT 4\nFAIL')
            continue
        if mode == 'crash':
            os._exit(3)
        if mode == 'violate':
            send(b'garbage!\n')
            continue
    send(b'RESULT 2\nOK')
"#;

/// One envelope a listener received.
#[derive(Debug, Clone)]
struct Received {
    headers: BTreeMap<String, String>,
    header_line: String,
    payload: String,
}

impl Received {
    fn name(&self) -> &str {
        &self.headers["eventname"]
    }
    fn serial(&self) -> &str {
        &self.headers["serial"]
    }
}

fn received(path: &Path) -> Vec<Received> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    text.split("\n--END--\n")
        .filter(|r| !r.is_empty())
        .filter_map(|r| {
            let (line, payload) = r.split_once('\n')?;
            let headers = line
                .split_whitespace()
                .filter_map(|t| t.split_once(':'))
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
            Some(Received { headers, header_line: line.to_string(), payload: payload.to_string() })
        })
        .collect()
}

fn wait_received(
    path: &Path,
    what: &str,
    timeout: Duration,
    cond: impl Fn(&[Received]) -> bool,
) -> Vec<Received> {
    wait_for(what, timeout, || cond(&received(path)));
    received(path)
}

/// Python, the listener script written to `<dir>/listener.py`, or a skip.
fn setup() -> Option<(PathBuf, tempfile::TempDir)> {
    let Some(py) = python() else {
        skip("no Python with supervisor (set CORRAL_TEST_PYTHON)");
        return None;
    };
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::write(dir.path().join("listener.py"), LISTENER).expect("write listener");
    Some((py, dir))
}

/// Start corrald in `dir` with `programs` (`{dir}` and `{py}` substituted).
fn daemon(dir: tempfile::TempDir, py: &Path, programs: &str) -> Daemon {
    let d = dir.path().display().to_string();
    let text = format!(
        "{}{}",
        preamble(dir.path()),
        programs.replace("{dir}", &d).replace("{py}", &py.display().to_string())
    );
    Daemon::start_with(dir, &text)
}

fn listener_section(name: &str, events: &str, mode: &str, extra: &str) -> String {
    format!(
        "[eventlistener:{name}]\ncommand={{py}} {{dir}}/listener.py {{dir}}/{name}.events {mode}\n\
         events={events}\nstartsecs=0\nautorestart=true\nstdout_logfile={{dir}}/{name}.out\n\
         stderr_logfile={{dir}}/{name}.err\n{extra}\n"
    )
}

fn remote(d: &Daemon, kind: &str, data: &str) {
    d.call("supervisor.sendRemoteCommEvent", vec![s(kind), s(data)]);
}

#[test]
fn every_supervisor_event_type_reaches_a_listener() {
    let Some((py, dir)) = setup() else { return };
    let mut conf = listener_section(
        "listen",
        "PROCESS_STATE,PROCESS_LOG,PROCESS_COMMUNICATION,REMOTE_COMMUNICATION,PROCESS_GROUP,\
         SUPERVISOR_STATE_CHANGE,TICK_5",
        "ok",
        "buffer_size=1000",
    );
    conf += "[program:prog]\ncommand=sleep 1000\nautostart=false\nstartsecs=0\n\n\
             [program:talk]\ncommand={py} -c \"import sys,time; sys.stdout.write('hello-log\\n'); \
             sys.stdout.write('<!--XSUPERVISOR:BEGIN-->captured text<!--XSUPERVISOR:END-->'); \
             sys.stdout.flush(); time.sleep(1000)\"\n\
             stdout_events_enabled=true\nstdout_capture_maxbytes=1KB\nstartsecs=0\n\n\
             [program:slowstop]\ncommand=sh -c \"trap 'sleep 1; exit 0' TERM; while :; do sleep 0.1; done\"\n\
             startsecs=0\npriority=999\n";
    let mut d = daemon(dir, &py, &conf);
    let log = d.path("listen.events");
    d.wait_state("listen", "RUNNING");

    // SUPERVISOR_STATE_CHANGE_RUNNING was buffered until the listener was ready.
    wait_received(&log, "SUPERVISOR_STATE_CHANGE_RUNNING", DEADLINE, |r| {
        r.iter().any(|e| e.name() == "SUPERVISOR_STATE_CHANGE_RUNNING" && e.payload.is_empty())
    });

    // PROCESS_STATE for a start and a stop, with supervisord's payloads.
    d.call("supervisor.startProcess", vec![s("prog")]);
    d.wait_state("prog", "RUNNING");
    let pid = d.pid("prog");
    d.call("supervisor.stopProcess", vec![s("prog")]);
    let got = wait_received(&log, "prog's STOPPED event", DEADLINE, |r| {
        r.iter().any(|e| e.name() == "PROCESS_STATE_STOPPED" && e.payload.contains("processname:prog "))
    });
    let prog: Vec<(String, String)> = got
        .iter()
        .filter(|e| e.payload.starts_with("processname:prog "))
        .map(|e| (e.name().to_string(), e.payload.clone()))
        .collect();
    let expect = |n: &str, p: String| (n.to_string(), p);
    assert_eq!(
        prog,
        vec![
            expect(
                "PROCESS_STATE_STARTING",
                "processname:prog groupname:prog from_state:STOPPED tries:0".into()
            ),
            expect(
                "PROCESS_STATE_RUNNING",
                format!("processname:prog groupname:prog from_state:STARTING pid:{pid}")
            ),
            expect(
                "PROCESS_STATE_STOPPING",
                format!("processname:prog groupname:prog from_state:RUNNING pid:{pid}")
            ),
            expect(
                "PROCESS_STATE_STOPPED",
                format!("processname:prog groupname:prog from_state:STOPPING pid:{pid}")
            ),
        ]
    );
    let starting = got.iter().find(|e| e.payload.starts_with("processname:prog ")).expect("starting");
    let line = &starting.header_line;
    assert!(line.starts_with("ver:3.0 server:test-") && line.contains(" serial:"), "{line}");
    assert!(line.contains(" pool:listen poolserial:"), "{line}");
    let len = starting.payload.len();
    assert!(line.ends_with(&format!(" eventname:PROCESS_STATE_STARTING len:{len}")), "{line}");

    // PROCESS_LOG_STDOUT and PROCESS_COMMUNICATION_STDOUT from `talk`.
    let talk_pid = d.pid("talk");
    let got = wait_received(&log, "talk's log and communication events", DEADLINE, |r| {
        r.iter().any(|e| e.name() == "PROCESS_COMMUNICATION_STDOUT")
            && r.iter().any(|e| e.name() == "PROCESS_LOG_STDOUT")
    });
    let comm = got.iter().find(|e| e.name() == "PROCESS_COMMUNICATION_STDOUT").expect("comm");
    assert_eq!(comm.payload, format!("processname:talk groupname:talk pid:{talk_pid}\ncaptured text"));
    let logged: String = got
        .iter()
        .filter(|e| e.name() == "PROCESS_LOG_STDOUT")
        .map(|e| {
            let (head, data) = e.payload.split_once('\n').expect("log payload has a header line");
            assert_eq!(head, format!("processname:talk groupname:talk pid:{talk_pid} channel:stdout"));
            data.to_string()
        })
        .collect();
    assert!(logged.starts_with("hello-log\n"), "{logged:?}");

    // REMOTE_COMMUNICATION.
    remote(&d, "mytype", "my data");
    wait_received(&log, "REMOTE_COMMUNICATION", DEADLINE, |r| {
        r.iter().any(|e| e.name() == "REMOTE_COMMUNICATION" && e.payload == "type:mytype\nmy data")
    });

    // PROCESS_GROUP_ADDED/REMOVED through reread, add, remove.
    let extra = "\n[program:extra]\ncommand=sleep 1000\nautostart=false\n";
    let text = std::fs::read_to_string(&d.conf).expect("read conf") + extra;
    std::fs::write(&d.conf, text).expect("write conf");
    d.call("supervisor.reloadConfig", vec![]);
    d.call("supervisor.addProcessGroup", vec![s("extra")]);
    d.call("supervisor.removeProcessGroup", vec![s("extra")]);
    wait_received(&log, "PROCESS_GROUP_ADDED and _REMOVED for extra", DEADLINE, |r| {
        r.iter().any(|e| e.name() == "PROCESS_GROUP_ADDED" && e.payload == "groupname:extra\n")
            && r.iter().any(|e| e.name() == "PROCESS_GROUP_REMOVED" && e.payload == "groupname:extra\n")
    });

    // TICK_5 within a period (plus slack for a loaded machine).
    let got =
        wait_received(&log, "TICK_5", Duration::from_secs(12), |r| r.iter().any(|e| e.name() == "TICK_5"));
    let tick = got.iter().find(|e| e.name() == "TICK_5").expect("tick");
    let when: u64 = tick.payload.strip_prefix("when:").and_then(|w| w.parse().ok()).expect("when:N");
    assert_eq!(when % 5, 0, "{}", tick.payload);

    // Serials increase by one per event, pool serials too (one pool).
    let got = received(&log);
    for pair in got.windows(2) {
        let a: u64 = pair[0].serial().parse().expect("serial");
        let b: u64 = pair[1].serial().parse().expect("serial");
        assert_eq!(b, a + 1, "{} then {}", pair[0].header_line, pair[1].header_line);
    }

    // SUPERVISOR_STATE_CHANGE_STOPPING reaches the listener before it is stopped
    // (`slowstop` takes a second to stop, and listeners stop last).
    d.call("supervisor.shutdown", vec![]);
    d.wait_exit();
    assert!(
        received(&log).iter().any(|e| e.name() == "SUPERVISOR_STATE_CHANGE_STOPPING"),
        "no STOPPING event"
    );
}

#[test]
fn a_failed_event_is_sent_again() {
    let Some((py, dir)) = setup() else { return };
    let d = daemon(dir, &py, &listener_section("failer", "REMOTE_COMMUNICATION", "fail", ""));
    d.wait_state("failer", "RUNNING");
    remote(&d, "t", "once");
    let got = wait_received(&d.path("failer.events"), "the event twice", DEADLINE, |r| r.len() >= 2);
    assert_eq!(got[0].header_line, got[1].header_line, "requeued event must be unchanged");
    assert_eq!(got[1].payload, "type:t\nonce");
    wait_for("the rejection in the activity log", DEADLINE, || {
        d.main_log().contains("WARN failer: event was rejected")
    });
}

#[test]
fn a_protocol_violation_makes_the_listener_unknown_and_others_keep_receiving() {
    let Some((py, dir)) = setup() else { return };
    let conf = listener_section("bad", "REMOTE_COMMUNICATION", "violate", "")
        + &listener_section("good", "REMOTE_COMMUNICATION", "ok", "");
    let d = daemon(dir, &py, &conf);
    d.wait_state("bad", "RUNNING");
    d.wait_state("good", "RUNNING");
    remote(&d, "t", "one");
    wait_for("the UNKNOWN warning", DEADLINE, || {
        d.main_log().contains(
            "WARN bad: has entered the UNKNOWN state and will no longer receive events, this usually \
             indicates the process violated the eventlistener protocol",
        )
    });
    remote(&d, "t", "two");
    wait_received(&d.path("good.events"), "both events at the good listener", DEADLINE, |r| r.len() == 2);
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(received(&d.path("bad.events")).len(), 1, "an UNKNOWN listener got another event");
}

#[test]
fn a_listener_killed_while_busy_gets_the_event_again_after_restart() {
    let Some((py, dir)) = setup() else { return };
    let d = daemon(dir, &py, &listener_section("crashy", "REMOTE_COMMUNICATION", "crash", ""));
    d.wait_state("crashy", "RUNNING");
    let first_pid = d.pid("crashy");
    remote(&d, "t", "precious");
    let got =
        wait_received(&d.path("crashy.events"), "the event again after restart", DEADLINE, |r| r.len() >= 2);
    assert_eq!(got[0].header_line, got[1].header_line);
    assert_eq!(got[1].payload, "type:t\nprecious");
    assert_ne!(d.pid("crashy"), first_pid);
    // And the next event is delivered normally.
    remote(&d, "t", "next");
    wait_received(&d.path("crashy.events"), "the next event", DEADLINE, |r| {
        r.iter().any(|e| e.payload == "type:t\nnext")
    });
}

#[test]
fn buffer_overflow_discards_the_oldest_event() {
    let Some((py, dir)) = setup() else { return };
    let d = daemon(
        dir,
        &py,
        &listener_section("small", "REMOTE_COMMUNICATION", "ok", "buffer_size=2\nautostart=false"),
    );
    for i in 0..5 {
        remote(&d, "t", &format!("e{i}"));
    }
    wait_for("the overflow lines", DEADLINE, || {
        let log = d.main_log();
        (0..3).all(|n| {
            log.contains(&format!("ERRO pool small event buffer overflowed, discarding event {n}\n"))
        })
    });
    d.call("supervisor.startProcess", vec![s("small")]);
    let got = wait_received(&d.path("small.events"), "the two newest events", DEADLINE, |r| r.len() >= 2);
    let payloads: Vec<&str> = got.iter().map(|e| e.payload.as_str()).collect();
    assert_eq!(payloads, vec!["type:t\ne3", "type:t\ne4"]);
    assert_eq!(got[0].serial(), "3");
}

fn superlance(py: &Path, name: &str) -> Option<PathBuf> {
    let p = py.with_file_name(name);
    if p.exists() {
        Some(p)
    } else {
        skip(&format!("superlance's {name} is not installed next to {}", py.display()));
        None
    }
}

#[test]
fn memmon_restarts_a_program_over_its_memory_limit() {
    let Some((py, dir)) = setup() else { return };
    let Some(memmon) = superlance(&py, "memmon") else { return };
    let conf = format!(
        "[eventlistener:memmon]\ncommand={} -p hog=40MB\nevents=TICK_5\nstartsecs=0\n\
         stderr_logfile={{dir}}/memmon.err\n\n\
         [program:hog]\ncommand={{py}} -c \"import time; b = bytearray(120*1024*1024); b[::4096] = b'x'*len(b[::4096]); time.sleep(1000)\"\n\
         startsecs=0\n",
        memmon.display()
    );
    let d = daemon(dir, &py, &conf);
    d.wait_state("hog", "RUNNING");
    let pid = d.pid("hog");
    wait_for("memmon to restart hog", Duration::from_secs(40), || {
        let p = d.pid("hog");
        p != 0 && p != pid
    });
}

#[test]
fn crashmail_mails_about_a_program_killed_by_a_signal() {
    let Some((py, dir)) = setup() else { return };
    let Some(crashmail) = superlance(&py, "crashmail") else { return };
    let sendmail = dir.path().join("sendmail.sh");
    std::fs::write(&sendmail, format!("#!/bin/sh\ncat >> {}/mail.txt\n", dir.path().display()))
        .expect("write sendmail");
    std::fs::set_permissions(&sendmail, std::os::unix::fs::PermissionsExt::from_mode(0o755)).expect("chmod");
    let conf = format!(
        "[eventlistener:crashmail]\ncommand={} -a -m ops@example.com -s {{dir}}/sendmail.sh\n\
         events=PROCESS_STATE\nstartsecs=0\nstderr_logfile={{dir}}/crashmail.err\n\n\
         [program:victim]\ncommand=sleep 1000\nstartsecs=0\n",
        crashmail.display()
    );
    let d = daemon(dir, &py, &conf);
    d.wait_state("crashmail", "RUNNING");
    d.wait_state("victim", "RUNNING");
    let pid = d.pid("victim");
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid as i32), nix::sys::signal::Signal::SIGKILL)
        .expect("kill victim");
    let mail = d.path("mail.txt");
    wait_for("crashmail's mail", DEADLINE, || {
        std::fs::read_to_string(&mail)
            .is_ok_and(|m| m.contains("Process victim in group victim exited unexpectedly"))
    });
    let text = std::fs::read_to_string(&mail).expect("mail");
    assert!(text.contains("To: ops@example.com"), "{text}");
    assert!(text.contains(&format!("(pid {pid})")), "{text}");
}

#[test]
fn httpok_restarts_a_program_whose_endpoint_hangs() {
    let Some((py, dir)) = setup() else { return };
    let Some(httpok) = superlance(&py, "httpok") else { return };
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        l.local_addr().expect("addr").port()
    };
    let server = format!(
        "import http.server, os, time\n\
         class H(http.server.BaseHTTPRequestHandler):\n\
         \x20   def do_GET(self):\n\
         \x20       while os.path.exists('{d}/hang'):\n\
         \x20           time.sleep(0.2)\n\
         \x20       self.send_response(200)\n\
         \x20       self.end_headers()\n\
         \x20       self.wfile.write(b'ok')\n\
         http.server.HTTPServer(('127.0.0.1', {port}), H).serve_forever()\n",
        d = dir.path().display()
    );
    std::fs::write(dir.path().join("server.py"), server).expect("write server");
    let conf = format!(
        "[eventlistener:httpok]\ncommand={} -p web -t 2 http://127.0.0.1:{port}/\n\
         events=TICK_5\nstartsecs=0\nstderr_logfile={{dir}}/httpok.err\n\n\
         [program:web]\ncommand={{py}} {{dir}}/server.py\nstartsecs=0\nstopwaitsecs=2\n",
        httpok.display()
    );
    let d = daemon(dir, &py, &conf);
    d.wait_state("web", "RUNNING");
    let pid = d.pid("web");
    // Answering: no restart across a tick.
    wait_for("the endpoint to answer", DEADLINE, || {
        std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
    });
    std::fs::write(d.path("hang"), "").expect("hang");
    wait_for("httpok to restart web", Duration::from_secs(40), || {
        let p = d.pid("web");
        p != 0 && p != pid
    });
    std::fs::remove_file(d.path("hang")).expect("unhang");
}
