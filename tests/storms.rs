//! Crash loops and output storms: programs that exit at once, flood their
//! output, close their pipes or never read their stdin never stop the daemon
//! from answering. (How fast it answers is measured in bench/, never here.)

mod common;

use std::collections::BTreeSet;

use common::*;
use dxr::Value;

/// Names and states of every process.
fn states(d: &Daemon) -> Vec<(String, String)> {
    array_of(d.call("supervisor.getAllProcessInfo", vec![]))
        .into_iter()
        .map(|v| {
            let s = struct_of(v);
            (str_of(&s["name"]), str_of(&s["statename"]))
        })
        .collect()
}

fn restarts(d: &Daemon, name: &str) -> i64 {
    int_of(&struct_of(d.call("corral.getProcessStats", vec![s(name)]))["restarts"])
}

/// The activity log's lines at WARN or above, less the start-up warnings every
/// test daemon gives (running as root, a socket without authentication).
fn alarming_lines(d: &Daemon) -> Vec<String> {
    d.main_log()
        .lines()
        .filter(|l| l.contains(" WARN ") || l.contains(" ERRO ") || l.contains(" CRIT "))
        .filter(|l| !l.contains("Supervisor is running as root"))
        .filter(|l| !l.contains("running without any HTTP authentication checking"))
        .map(str::to_string)
        .collect()
}

#[test]
fn a_hundred_programs_that_exit_at_once_back_off_and_the_daemon_keeps_answering() {
    let d = Daemon::start(
        "[program:crash]\ncommand=/bin/false\nprocess_name=%(program_name)s_%(process_num)03d\nnumprocs=100\n\
         startsecs=1\nstartretries=1000\nbackoff=exponential\nbackoff_max=4\n",
    );
    let mut seen_backoff = BTreeSet::new();
    wait_for("every program to be in BACKOFF at least once", DEADLINE, || {
        for (name, state) in states(&d) {
            if state == "BACKOFF" {
                seen_backoff.insert(name);
            }
        }
        seen_backoff.len() == 100
    });
    // They keep retrying (paced), and none is given up on.
    wait_for("a second failed start of each", DEADLINE, || {
        (0..100).all(|i| restarts(&d, &format!("crash:crash_{i:03}")) >= 2)
    });
    for _ in 0..20 {
        let state = struct_of(d.call("supervisor.getState", vec![]));
        assert_eq!(str_of(&state["statename"]), "RUNNING");
    }
    assert!(states(&d).iter().all(|(_, st)| st == "BACKOFF" || st == "STARTING"), "{:?}", states(&d));
    // A stop by hand ends the loop at once.
    d.call("supervisor.stopAllProcesses", vec![]);
    assert!(states(&d).iter().all(|(_, st)| st == "STOPPED"), "{:?}", states(&d));
}

#[test]
fn a_program_writing_flat_out_does_not_keep_control_requests_waiting() {
    let d = Daemon::start(
        "[program:flood]\ncommand=cat /dev/zero\nstdout_logfile={dir}/flood.log\n\
         stdout_logfile_maxbytes=20MB\nstdout_logfile_backups=1\nstartsecs=0\n",
    );
    d.wait_state("flood", "RUNNING");
    let log = d.path("flood.log");
    let rotated = d.path("flood.log.1");
    wait_for("the flood to reach its log", DEADLINE, || std::fs::metadata(&log).is_ok_and(|m| m.len() > 0));
    for i in 0..50 {
        match i % 3 {
            0 => {
                let state = struct_of(d.call("supervisor.getState", vec![]));
                assert_eq!(str_of(&state["statename"]), "RUNNING");
            }
            1 => assert_eq!(d.state("flood"), "RUNNING"),
            _ => {
                let tail = d.call("supervisor.readLog", vec![Value::Integer(-200), Value::Integer(0)]);
                assert!(matches!(tail, Value::String(_)), "{tail:?}");
            }
        }
    }
    // It was writing all along: the log has rotated at least once.
    wait_for("the log to rotate", DEADLINE, || rotated.exists());
    d.call("supervisor.stopProcess", vec![s("flood")]);
    assert_eq!(d.state("flood"), "STOPPED");
}

#[test]
fn a_program_that_closes_its_stdout_and_stderr_keeps_running_and_stops_normally() {
    let d = Daemon::start(
        "[program:quiet]\ncommand=sh -c 'echo bye; echo bye >&2; exec >&- 2>&-; exec sleep 100000'\n\
         stdout_logfile={dir}/quiet.out\nstderr_logfile={dir}/quiet.err\nstartsecs=1\n",
    );
    d.wait_state("quiet", "RUNNING");
    let pid = d.pid("quiet");
    let out = d.path("quiet.out");
    wait_for("its last words", DEADLINE, || std::fs::read_to_string(&out).is_ok_and(|t| t == "bye\n"));
    assert_eq!(d.state("quiet"), "RUNNING");
    assert_eq!(d.pid("quiet"), pid);
    assert!(alive(pid));
    d.call("supervisor.stopProcess", vec![s("quiet")]);
    assert_eq!(d.state("quiet"), "STOPPED");
    assert!(!alive(pid));
    let alarming: Vec<String> = alarming_lines(&d)
        .into_iter()
        .filter(|l| !l.contains("stopped: quiet (terminated by SIGTERM)"))
        .collect();
    assert!(alarming.is_empty(), "{alarming:#?}");
}

/// The fault sendProcessStdin answers once the program's stdin backlog is full.
fn stdin_fault(r: Result<Value, corral::ctl::client::ClientError>) -> Option<String> {
    match r {
        Ok(v) => {
            assert_eq!(v, Value::Boolean(true));
            None
        }
        Err(e) => Some(e.to_string()),
    }
}

#[test]
fn a_program_that_never_reads_stdin_fills_its_backlog_and_the_engine_keeps_answering() {
    let d = Daemon::start("[program:deaf]\ncommand=sleep 100000\nstartsecs=0\n");
    d.wait_state("deaf", "RUNNING");
    let chunk = "x".repeat(8 * 1024);
    let mut accepted = 0;
    let mut refused = Vec::new();
    // 300 × 8 KiB: more than the pipe (64 KiB) plus the backlog (1 MiB).
    for _ in 0..300 {
        match stdin_fault(d.try_call("supervisor.sendProcessStdin", vec![s("deaf"), s(&chunk)])) {
            None => accepted += chunk.len(),
            Some(fault) => refused.push(fault),
        }
        assert_eq!(d.state("deaf"), "RUNNING", "other requests are answered meanwhile");
    }
    assert!(accepted >= 1024 * 1024, "the backlog took {accepted} bytes");
    assert!(!refused.is_empty(), "the backlog is bounded");
    let fault = &refused[0];
    assert!(fault.starts_with("<Fault 30: 'FAILED: deaf: stdin is full"), "{fault}");
    assert!(fault.contains("limit of 1048576 bytes"), "{fault}");
    // A normal stop; the next run starts with an empty backlog.
    d.call("supervisor.stopProcess", vec![s("deaf")]);
    assert_eq!(d.state("deaf"), "STOPPED");
    d.call("supervisor.startProcess", vec![s("deaf")]);
    d.wait_state("deaf", "RUNNING");
    assert_eq!(d.call("supervisor.sendProcessStdin", vec![s("deaf"), s(&chunk)]), Value::Boolean(true));
}

#[test]
fn stdin_arrives_in_the_order_it_was_sent_even_when_the_pipe_is_full() {
    // The program does not read for a second, so the first write fills the pipe
    // and everything after it waits in the backlog, behind it.
    let d = Daemon::start(
        "[program:echo]\ncommand=sh -c 'sleep 1; exec cat'\nstdout_logfile={dir}/echo.log\nstartsecs=0\n",
    );
    d.wait_state("echo", "RUNNING");
    let numbered = |from: usize, n: usize| (from..from + n).map(|i| format!("{i:07}\n")).collect::<String>();
    let mut expected = numbered(0, 32 * 1024);
    d.call("supervisor.sendProcessStdin", vec![s("echo"), s(&expected)]);
    for i in 0..200 {
        let line = numbered(32 * 1024 + i, 1);
        d.call("supervisor.sendProcessStdin", vec![s("echo"), s(&line)]);
        expected.push_str(&line);
    }
    let log = d.path("echo.log");
    wait_for("everything to come back", DEADLINE, || {
        std::fs::metadata(&log).is_ok_and(|m| m.len() >= expected.len() as u64)
    });
    let got = std::fs::read_to_string(&log).expect("read log");
    assert!(
        got == expected,
        "lines arrive complete and in order ({} of {} bytes)",
        got.len(),
        expected.len()
    );
}

/// A listener that acknowledges every event without ever reading its stdin: it
/// watches the bytes waiting in the pipe (FIONREAD) grow, answers OK and READY,
/// so the daemon goes on sending until the pipe is full. It writes how many
/// bytes are waiting to the file named by its argument.
const DEAF_LISTENER: &str = r#"
import array, fcntl, os, sys, termios, time
def waiting():
    buf = array.array('i', [0])
    fcntl.ioctl(0, termios.FIONREAD, buf, True)
    return buf[0]
os.write(1, b"READY\n")
seen = 0
while True:
    now = waiting()
    if now > seen:
        seen = now
        with open(sys.argv[1] + ".tmp", "w") as f:
            f.write(str(now))
        os.rename(sys.argv[1] + ".tmp", sys.argv[1])
        os.write(1, b"RESULT 2\nOKREADY\n")
    time.sleep(0.005)
"#;

#[test]
fn an_event_listener_that_never_reads_its_stdin_does_not_block_the_engine() {
    let d = Daemon::start(
        "[eventlistener:deaf]\ncommand=python3 {dir}/deaf.py {dir}/waiting\nevents=PROCESS_STATE\n\
         buffer_size=10\nautostart=false\n\n\
         [program:flap]\ncommand=/bin/true\nprocess_name=%(program_name)s_%(process_num)d\nnumprocs=4\n\
         startsecs=0\nautorestart=true\nautostart=false\n",
    );
    std::fs::write(d.path("deaf.py"), DEAF_LISTENER).expect("write listener");
    d.call("supervisor.startProcess", vec![s("deaf")]);
    d.wait_state("deaf", "RUNNING");
    // Four programs restarting as fast as they exit: a storm of state events.
    d.call("supervisor.startProcessGroup", vec![s("flap"), Value::Boolean(false)]);
    let waiting = d.path("waiting");
    wait_for("the listener's stdin pipe to be (nearly) full", DEADLINE, || {
        std::fs::read_to_string(&waiting).ok().and_then(|t| t.parse::<usize>().ok()).unwrap_or(0) > 60 * 1024
    });
    wait_for("the pool's buffer to overflow", DEADLINE, || {
        d.main_log().contains("pool deaf event buffer overflowed")
    });
    for _ in 0..20 {
        let state = struct_of(d.call("supervisor.getState", vec![]));
        assert_eq!(str_of(&state["statename"]), "RUNNING");
        assert_eq!(d.state("deaf"), "RUNNING");
    }
    d.call("supervisor.stopProcessGroup", vec![s("flap")]);
    d.call("supervisor.stopProcess", vec![s("deaf")]);
    assert_eq!(d.state("deaf"), "STOPPED");
}

#[test]
fn a_journal_that_stops_reading_slows_only_the_program_writing_to_it() {
    // A datagram socket nobody reads: once its queue is full every send waits,
    // as it would on a stalled journald. Both channels of two programs go there,
    // more sinks than the daemon has worker threads.
    let dir = tempfile::tempdir().expect("temp dir");
    let journal = dir.path().join("journal.sock");
    let _socket = std::os::unix::net::UnixDatagram::bind(&journal).expect("bind");
    let flood = "command=sh -c 'while :; do echo out; echo err >&2; done'\nstdout_logfile=journal\n\
                 stderr_logfile=journal\nstartsecs=0\n";
    let text = format!(
        "{}[program:a]\n{flood}\n[program:b]\n{flood}\n[program:c]\ncommand=sleep 100000\nstartsecs=0\n",
        preamble(dir.path())
    );
    let path = journal.display().to_string();
    let d = Daemon::spawn_with(dir, &text, &[("CORRAL_JOURNAL_SOCKET", &path)], &[]);
    d.wait_answering();
    d.wait_state("a", "RUNNING");
    d.wait_state("b", "RUNNING");
    // The queue is full long before this; the daemon answers and acts all the same.
    for _ in 0..20 {
        let state = struct_of(d.call("supervisor.getState", vec![]));
        assert_eq!(str_of(&state["statename"]), "RUNNING");
    }
    d.call("supervisor.stopProcess", vec![s("c")]);
    assert_eq!(d.state("c"), "STOPPED");
    d.call("supervisor.startProcess", vec![s("c")]);
    assert_eq!(d.state("c"), "RUNNING");
}
