//! The stock `supervisorctl` against a real corrald: exact output and exit codes.
//!
//! Most checks run the same command against corrald and against the real Python
//! supervisord on an equivalent config, and require the same (normalised) output
//! and exit code; the expected text is also spelled out, so the tests read as the
//! behaviour scripts rely on.

mod common;

use std::io::Read;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;

/// Programs every comparison test uses. `{dir}` is the daemon's temp dir.
const PROGRAMS: &str = "\
[program:sleeper]
command=sleep 1000
startsecs=1

[program:idle]
command=sleep 1000
autostart=false
startsecs=0

[program:quick]
command=/bin/false
autostart=false
startsecs=1
startretries=0

[program:nofile]
command=/nonexistent/x
autostart=false

[program:echo]
command=sh -c 'echo out-line; echo err-line >&2; exec sleep 1000'
startsecs=0
stdout_logfile={dir}/echo.out
stderr_logfile={dir}/echo.err

[group:grp]
programs=ga,gb

[program:ga]
command=sleep 1000
startsecs=0

[program:gb]
command=sleep 1000
startsecs=0
priority=5
";

/// corrald and supervisord side by side on the same programs.
struct Pair {
    corral: Daemon,
    reference: Reference,
}

impl Pair {
    /// Both daemons with `programs`, once the autostarted processes are RUNNING; `None` to skip.
    fn start(programs: &str, running: &[&str]) -> Option<Pair> {
        if supervisorctl().is_none() {
            skip("no supervisorctl (set CORRAL_TEST_PYTHON)");
            return None;
        }
        let corral = Daemon::start(programs);
        let Some(reference) = Reference::start(programs) else {
            skip("no supervisord next to supervisorctl");
            return None;
        };
        let pair = Pair { corral, reference };
        for name in running {
            pair.wait_status(name, "RUNNING");
        }
        Some(pair)
    }

    /// Wait until `status name` shows `state` on both.
    fn wait_status(&self, name: &str, state: &str) {
        for conf in [&self.corral.conf, &self.reference.conf] {
            wait_for(&format!("{name} {state} in {}", conf.display()), DEADLINE, || {
                ctl(conf, &["status", name]).0.split_whitespace().nth(1) == Some(state)
            });
        }
    }

    /// Run `args` on both; assert identical normalised output and exit code; return corral's.
    fn both(&self, args: &[&str]) -> (String, i32) {
        let (c_out, c_rc) = ctl(&self.corral.conf, args);
        let (r_out, r_rc) = ctl(&self.reference.conf, args);
        let c = normalise(&c_out, self.corral.dir.path());
        let r = normalise(&r_out, self.reference.dir.path());
        assert_eq!(
            (c.as_str(), c_rc),
            (r.as_str(), r_rc),
            "supervisorctl {args:?}: corrald (left) differs from supervisord (right)"
        );
        (c, c_rc)
    }

    /// Like [`both`], and the (normalised) output and exit code are exactly `want`.
    fn expect(&self, args: &[&str], want: &str, rc: i32) {
        assert_eq!(self.both(args), (want.to_string(), rc), "supervisorctl {args:?}");
    }

    /// For batch stops: corrald must print exactly `want` (priority order); supervisord
    /// prints the same lines, but in the order its one-second polls saw the exits, which
    /// varies with load, so only the set of its lines is compared.
    fn expect_batch(&self, args: &[&str], want: &str, rc: i32) {
        let (c_out, c_rc) = ctl(&self.corral.conf, args);
        let (r_out, r_rc) = ctl(&self.reference.conf, args);
        let c = normalise(&c_out, self.corral.dir.path());
        let r = normalise(&r_out, self.reference.dir.path());
        assert_eq!((c.as_str(), c_rc), (want, rc), "corrald: supervisorctl {args:?}");
        let mut want_lines: Vec<&str> = want.lines().collect();
        let mut ref_lines: Vec<&str> = r.lines().collect();
        want_lines.sort_unstable();
        ref_lines.sort_unstable();
        assert_eq!((ref_lines, r_rc), (want_lines, rc), "supervisord: supervisorctl {args:?}");
    }

    /// Rewrite both config files with `programs` (after the standard preamble).
    fn rewrite(&self, programs: &str) {
        for (conf, dir) in
            [(&self.corral.conf, self.corral.dir.path()), (&self.reference.conf, self.reference.dir.path())]
        {
            let text = format!("{}{}", preamble(dir), programs.replace("{dir}", &dir.display().to_string()));
            std::fs::write(conf, text).unwrap();
        }
    }
}

/// A status line as supervisorctl formats it.
fn line(name: &str, state: &str, desc: &str) -> String {
    format!("{name:<33}{state:<10}{desc}\n")
}

#[test]
fn status_lists_filters_and_reports_unknown_names() {
    let Some(p) = Pair::start(PROGRAMS, &["sleeper", "echo", "grp:ga", "grp:gb"]) else { return };
    let all = [
        line("echo", "RUNNING", "pid N, uptime T"),
        line("grp:ga", "RUNNING", "pid N, uptime T"),
        line("grp:gb", "RUNNING", "pid N, uptime T"),
        line("idle", "STOPPED", "Not started"),
        line("nofile", "STOPPED", "Not started"),
        line("quick", "STOPPED", "Not started"),
        line("sleeper", "RUNNING", "pid N, uptime T"),
    ]
    .concat();
    // Some process not running: exit 3.
    p.expect(&["status"], &all, 3);
    p.expect(&["status", "all"], &all, 3);
    p.expect(&["status", "sleeper"], &line("sleeper", "RUNNING", "pid N, uptime T"), 0);
    p.expect(&["status", "idle"], &line("idle", "STOPPED", "Not started"), 3);
    p.expect(
        &["status", "grp:*"],
        &[line("grp:ga", "RUNNING", "pid N, uptime T"), line("grp:gb", "RUNNING", "pid N, uptime T")]
            .concat(),
        0,
    );
    p.expect(
        &["status", "grp:gb", "sleeper"],
        &[line("grp:gb", "RUNNING", "pid N, uptime T"), line("sleeper", "RUNNING", "pid N, uptime T")]
            .concat(),
        0,
    );
    p.expect(&["status", "nosuch"], "nosuch: ERROR (no such process)\n", 4);
    p.expect(&["status", "nosuch:*"], "nosuch: ERROR (no such group)\n", 4);
    // A later not-running process overrides the unknown-name code.
    p.expect(
        &["status", "nosuch", "idle"],
        &format!("nosuch: ERROR (no such process)\n{}", line("idle", "STOPPED", "Not started")),
        3,
    );
    // A FATAL process shows its spawn error.
    p.both(&["start", "quick"]);
    p.expect(
        &["status", "quick"],
        &line("quick", "FATAL", "Exited too quickly (process log may have details)"),
        3,
    );
    // A process stopped after running shows its stop time.
    p.both(&["start", "idle"]);
    p.both(&["stop", "idle"]);
    p.expect(&["status", "idle"], &line("idle", "STOPPED", "DATE"), 3);
}

#[test]
fn start_stop_restart_by_name_and_group() {
    let Some(p) = Pair::start(PROGRAMS, &["sleeper", "echo", "grp:ga", "grp:gb"]) else { return };
    p.expect(&["start", "idle"], "idle: started\n", 0);
    p.expect(&["start", "idle"], "idle: ERROR (already started)\n", 0);
    p.expect(&["start", "nofile"], "nofile: ERROR (no such file)\n", 1);
    p.expect(&["start", "quick"], "quick: ERROR (spawn error)\n", 7);
    p.expect(&["start", "nosuch"], "nosuch: ERROR (no such process)\n", 1);
    p.expect(&["start", "nosuch:*"], "nosuch: ERROR (no such group)\n", 2);
    p.expect(&["stop", "idle"], "idle: stopped\n", 0);
    p.expect(&["stop", "idle"], "idle: ERROR (not running)\n", 0);
    p.expect(&["stop", "nosuch"], "nosuch: ERROR (no such process)\n", 1);
    p.expect(&["stop", "nosuch:*"], "nosuch: ERROR (no such group)\n", 1);
    // A group's running processes stop, and are reported, in priority order.
    p.expect_batch(&["stop", "grp:*"], "grp:gb: stopped\ngrp:ga: stopped\n", 0);
    p.expect(&["stop", "grp:*"], "", 0);
    p.expect(&["start", "grp:*"], "grp:gb: started\ngrp:ga: started\n", 0);
    // Everything already running: nothing to say.
    p.expect(&["start", "grp:*"], "", 0);
    p.expect_batch(
        &["restart", "grp:*"],
        "grp:gb: stopped\ngrp:ga: stopped\ngrp:gb: started\ngrp:ga: started\n",
        0,
    );
    p.expect(&["restart", "sleeper"], "sleeper: stopped\nsleeper: started\n", 0);
    p.expect(&["restart", "idle"], "idle: ERROR (not running)\nidle: started\n", 0);
    p.expect(&["stop", "idle", "grp:ga"], "idle: stopped\ngrp:ga: stopped\n", 0);
    p.expect(&["start"], &ctl(&p.reference.conf, &["start"]).0, 2);
    p.expect(&["stop"], &ctl(&p.reference.conf, &["stop"]).0, 1);
    p.both(&["stop", "grp:gb", "echo", "sleeper"]);
}

#[test]
fn start_all_and_stop_all() {
    // Only programs that start cleanly: `all` with failures is `start_all_with_a_failing_program`.
    let programs = "[program:a]\ncommand=sleep 1000\nstartsecs=0\n\n[program:b]\ncommand=sleep 1000\nstartsecs=0\npriority=5\n\n\
                    [program:c]\ncommand=sleep 1000\nstartsecs=1\nautostart=false\n";
    let Some(p) = Pair::start(programs, &["a", "b"]) else { return };
    p.expect(&["start", "all"], "c: started\n", 0);
    // Results come in priority order (b, a, c), however the processes happen to exit.
    p.expect_batch(&["stop", "all"], "b: stopped\na: stopped\nc: stopped\n", 0);
    p.expect(&["stop", "all"], "", 0);
    p.expect(&["start", "all"], "b: started\na: started\nc: started\n", 0);
    p.expect_batch(
        &["restart", "all"],
        "b: stopped\na: stopped\nc: stopped\nb: started\na: started\nc: started\n",
        0,
    );
}

#[test]
fn start_all_with_a_failing_program() {
    // A program of the batch (quick) may exit while a later one (sleeper) is being
    // spawned; the batch still answers after ~startsecs with the per-process results.
    let Some(p) = Pair::start(PROGRAMS, &["sleeper", "echo", "grp:ga", "grp:gb"]) else { return };
    for _ in 0..5 {
        ctl(&p.corral.conf, &["stop", "all"]);
        ctl(&p.reference.conf, &["stop", "all"]);
        p.expect(
            &["start", "all"],
            "echo: started\ngrp:gb: started\ngrp:ga: started\nidle: started\n\
             nofile: ERROR (no such file)\nquick: ERROR (spawn error)\nsleeper: started\n",
            7,
        );
    }
}

#[test]
fn signal_and_pid() {
    let Some(p) = Pair::start(PROGRAMS, &["sleeper", "echo", "grp:ga", "grp:gb"]) else { return };
    p.expect(&["signal", "HUP", "idle"], "idle: ERROR (not running)\n", 7);
    p.expect(&["signal", "FOO", "sleeper"], "sleeper: ERROR (bad signal name)\n", 1);
    p.expect(&["signal", "HUP", "nosuch"], "nosuch: ERROR (no such process)\n", 1);
    p.expect(&["signal", "USR1", "grp:*"], "grp:gb: signalled\ngrp:ga: signalled\n", 0);
    p.expect(
        &["signal", "FOO", "grp:*"],
        "grp:gb: ERROR (bad signal name)\ngrp:ga: ERROR (bad signal name)\n",
        1,
    );
    p.expect(&["signal", "HUP"], &ctl(&p.reference.conf, &["signal", "HUP"]).0, 1);
    // SIGSTOP/SIGCONT keep the process alive; `all` covers the running ones only.
    p.expect(&["signal", "STOP", "sleeper"], "sleeper: signalled\n", 0);
    p.expect(&["signal", "18", "sleeper"], "sleeper: signalled\n", 0);
    p.expect(
        &["signal", "CONT", "all"],
        "echo: signalled\ngrp:gb: signalled\ngrp:ga: signalled\nsleeper: signalled\n",
        0,
    );
    p.expect(&["pid"], "PID\n", 0);
    let (out, _) = ctl(&p.corral.conf, &["pid"]);
    assert_eq!(out.trim(), p.corral.daemon_pid().to_string());
    p.expect(&["pid", "sleeper"], "PID\n", 0);
    assert_eq!(ctl(&p.corral.conf, &["pid", "sleeper"]).0.trim(), p.corral.pid("sleeper").to_string());
    p.expect(&["pid", "idle"], "PID\n", 7);
    assert_eq!(ctl(&p.corral.conf, &["pid", "idle"]).0, "0\n");
    p.expect(&["pid", "nosuch"], "No such process nosuch\n", 1);
    p.expect(&["pid", "all"], "PID\nPID\nPID\nPID\nPID\nPID\nPID\n", 0);
}

#[test]
fn tail_maintail_and_clear() {
    let Some(p) = Pair::start(PROGRAMS, &["sleeper", "echo", "grp:ga", "grp:gb"]) else { return };
    for d in [&p.corral.path("echo.err"), &p.reference.path("echo.err")] {
        wait_for("echo's output", DEADLINE, || std::fs::metadata(d).map(|m| m.len() > 0).unwrap_or(false));
    }
    p.expect(&["tail", "echo"], "out-line\n\n", 0);
    p.expect(&["tail", "-5", "echo"], "line\n\n", 0);
    p.expect(&["tail", "echo", "stderr"], "err-line\n\n", 0);
    p.expect(&["tail", "-3", "echo", "stderr"], "ne\n\n", 0);
    p.expect(&["tail", "echo", "bad"], "Error: bad channel 'bad'\n", 1);
    p.expect(&["tail", "nosuch"], "nosuch: ERROR (no such process name)\n", 1);
    p.expect(&["tail", "-x", "echo"], "Error: bad argument -x\n", 1);
    // idle's stdout is AUTO and idle never ran: supervisord has no file yet either.
    p.both(&["tail", "idle"]);
    p.expect(&["clear", "echo"], "echo: cleared\n", 0);
    p.expect(&["tail", "echo"], "\n", 0);
    p.expect(&["clear", "nosuch"], "nosuch: ERROR (no such process)\n", 1);
    p.both(&["clear", "all"]);

    // maintail: the activity log's last bytes (its contents differ between daemons).
    let (out, rc) = ctl(&p.corral.conf, &["maintail", "-40"]);
    assert_eq!(rc, 0);
    let log = p.corral.main_log();
    assert!(out.trim_end().len() <= 40 && log.contains(out.trim_end()), "{out:?} not the tail of the log");
    let (out, rc) = ctl(&p.corral.conf, &["maintail"]);
    assert_eq!(rc, 0);
    assert!(out.contains("success: sleeper entered RUNNING state"), "{out}");

    // tail -f streams what the program writes next until killed.
    follow(
        &p.corral.conf,
        &["tail", "-f", "echo"],
        || {
            std::fs::OpenOptions::new()
                .append(true)
                .open(p.corral.path("echo.out"))
                .and_then(|mut f| std::io::Write::write_all(&mut f, b"appended-line\n"))
                .unwrap();
        },
        "appended-line\n",
    );
}

/// Run a following `supervisorctl` command, wait for its banner, call `act`, and
/// wait (generously) until `want` arrives on its stdout; then kill it.
fn follow(conf: &std::path::Path, args: &[&str], act: impl FnOnce(), want: &str) {
    let mut child = Command::new(supervisorctl().unwrap())
        .arg("-c")
        .arg(conf)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let reader = std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while let Ok(n) = stdout.read(&mut buf) {
            if n == 0 || tx.send(buf[..n].to_vec()).is_err() {
                break;
            }
        }
    });
    let mut acc = String::new();
    let wait = |want: &str, acc: &mut String| {
        let deadline = Instant::now() + DEADLINE;
        while !acc.contains(want) {
            let left = deadline.saturating_duration_since(Instant::now());
            assert!(!left.is_zero(), "timed out waiting for {want:?} from {args:?}; got {acc:?}");
            if let Ok(chunk) = rx.recv_timeout(left.min(Duration::from_millis(200))) {
                acc.push_str(&String::from_utf8_lossy(&chunk));
            }
        }
    };
    wait("==> Press Ctrl-C to exit <==\n", &mut acc);
    act();
    wait(want, &mut acc);
    let _ = child.kill();
    let _ = child.wait();
    let _ = reader.join();
}

#[test]
fn maintail_follow_streams_the_activity_log() {
    if supervisorctl().is_none() {
        return skip("no supervisorctl");
    }
    let d = Daemon::start("[program:idle]\ncommand=sleep 1000\nautostart=false\nstartsecs=0\n");
    follow(
        &d.conf,
        &["maintail", "-f"],
        || assert_eq!(ctl(&d.conf, &["start", "idle"]).1, 0),
        "spawned: 'idle'",
    );
    ctl(&d.conf, &["stop", "idle"]);
}

#[test]
fn avail_reread_update_add_remove() {
    let before = "[program:keep]\ncommand=sleep 1000\nstartsecs=0\n\n\
                  [program:change]\ncommand=sleep 1000\nstartsecs=0\n\n\
                  [program:gone]\ncommand=sleep 1000\nstartsecs=0\n\n\
                  [program:manual]\ncommand=sleep 1000\nautostart=false\npriority=7\n";
    let Some(p) = Pair::start(before, &["keep", "change", "gone"]) else { return };
    p.expect(
        &["avail"],
        &[
            format!("{:<32} {:<9} {:<9} {}\n", "change", "in use", "auto", "999:999"),
            format!("{:<32} {:<9} {:<9} {}\n", "gone", "in use", "auto", "999:999"),
            format!("{:<32} {:<9} {:<9} {}\n", "keep", "in use", "auto", "999:999"),
            format!("{:<32} {:<9} {:<9} {}\n", "manual", "in use", "manual", "7:7"),
        ]
        .concat(),
        0,
    );
    p.expect(&["avail", "x"], &ctl(&p.reference.conf, &["avail", "x"]).0, 1);
    p.expect(&["reread"], "No config updates to processes\n", 0);

    let after = "[program:keep]\ncommand=sleep 1000\nstartsecs=0\n\n\
                 [program:change]\ncommand=sleep 999\nstartsecs=0\n\n\
                 [program:manual]\ncommand=sleep 1000\nautostart=false\npriority=7\n\n\
                 [program:fresh]\ncommand=sleep 1000\nstartsecs=0\n\n\
                 [program:later]\ncommand=sleep 1000\nstartsecs=0\n";
    p.rewrite(after);
    p.expect(&["reread"], "change: changed\nfresh: available\ngone: disappeared\nlater: available\n", 0);
    // reread applies nothing.
    p.expect(&["status", "gone"], &line("gone", "RUNNING", "pid N, uptime T"), 0);
    p.expect(&["update", "nosuch"], "ERROR: no such group: nosuch\n", 1);
    p.expect(&["update", "later"], "later: added process group\n", 0);
    p.expect(
        &["update"],
        "gone: stopped\ngone: removed process group\nchange: stopped\nchange: updated process group\nfresh: added process group\n",
        0,
    );
    p.wait_status("fresh", "RUNNING");
    p.expect(&["add", "fresh"], "ERROR: process group already active\n", 0);
    p.expect(&["add", "nosuch"], "ERROR: no such process/group: nosuch\n", 1);
    p.expect(&["remove", "fresh"], "ERROR: process/group still running: fresh\n", 1);
    p.expect(&["stop", "fresh"], "fresh: stopped\n", 0);
    p.expect(&["remove", "fresh"], "fresh: removed process group\n", 0);
    p.expect(&["remove", "fresh"], "ERROR: no such process/group: fresh\n", 1);
    p.expect(&["add", "fresh"], "fresh: added process group\n", 0);
    p.wait_status("fresh", "RUNNING");
    p.expect(&["update"], "", 0);
    p.expect(&["reread"], "No config updates to processes\n", 0);
    p.wait_status("change", "RUNNING");
    p.expect(&["status", "gone"], "gone: ERROR (no such process)\n", 4);

    // A broken config: reread reports supervisord's parse error and applies nothing.
    p.rewrite(&format!("{after}\n[program:bad]\ncommand=sleep 1\nstartsecs=soon\n"));
    p.expect(
        &["reread"],
        "ERROR: CANT_REREAD: invalid literal for int() with base 10: 'soon' in section 'program:bad' (file: '{dir}/corral.conf')\n",
        1,
    );
}

#[test]
fn version_reload_and_shutdown() {
    let Some(mut p) = Pair::start("[program:a]\ncommand=sleep 1000\nstartsecs=0\n", &["a"]) else { return };
    p.expect(&["version"], "4.3.0\n", 0);
    p.expect(&["version", "x"], &ctl(&p.reference.conf, &["version", "x"]).0, 1);
    let old = p.corral.pid("a");
    p.expect(&["reload"], "Restarted supervisord\n", 0);
    // The same daemon comes back with the program restarted.
    wait_for("corrald to answer after reload", DEADLINE, || ctl(&p.corral.conf, &["status", "a"]).1 == 0);
    p.wait_status("a", "RUNNING");
    assert_ne!(p.corral.pid("a"), old);
    assert!(!alive(old), "the old child was stopped by the reload");
    p.expect(&["shutdown", "x"], &ctl(&p.reference.conf, &["shutdown", "x"]).0, 1);
    let pid = p.corral.pid("a");
    p.expect(&["shutdown"], "Shut down\n", 0);
    assert!(p.corral.wait_exit().is_some(), "corrald exits after shutdown");
    p.reference.wait_exit();
    assert!(!alive(pid), "children are stopped on shutdown");
    p.expect(&["shutdown"], "ERROR: unix://{dir}/corral.sock no such file (already shut down?)\n", 1);
    p.expect(&["status"], "unix://{dir}/corral.sock no such file\n", 4);
}

#[test]
fn avail_after_reread_lists_the_new_file_only() {
    // After `reread` drops [program:gone] from the file, getAllConfigInfo lists what the
    // new file has: `gone` is no longer shown, though it runs until `update` removes it.
    let before = "[program:gone]\ncommand=sleep 1000\nstartsecs=0\n\n[program:keep]\ncommand=sleep 1000\nstartsecs=0\n";
    let Some(p) = Pair::start(before, &["gone", "keep"]) else { return };
    p.rewrite("[program:keep]\ncommand=sleep 1000\nstartsecs=0\n\n[program:fresh]\ncommand=sleep 1000\n");
    p.expect(&["reread"], "fresh: available\ngone: disappeared\n", 0);
    p.expect(
        &["avail"],
        &[
            format!("{:<32} {:<9} {:<9} {}\n", "fresh", "avail", "auto", "999:999"),
            format!("{:<32} {:<9} {:<9} {}\n", "keep", "in use", "auto", "999:999"),
        ]
        .concat(),
        0,
    );
}
