//! corrald end to end: a real daemon on a temporary supervisord-format config.

mod common;

use std::time::{Duration, Instant};

use common::*;
use nix::sys::signal::Signal;

#[test]
fn programs_start_in_priority_order_and_reach_running() {
    let d = Daemon::start(
        "[program:late]\ncommand=sleep 1000\npriority=20\nstartsecs=1\n\n\
         [program:early]\ncommand=sleep 1000\npriority=10\nstartsecs=1\n",
    );
    d.wait_state("early", "RUNNING");
    d.wait_state("late", "RUNNING");
    let log = d.main_log();
    let e = log.find("spawned: 'early'").expect("early spawned");
    let l = log.find("spawned: 'late'").expect("late spawned");
    assert!(e < l, "lower priority number spawns first:\n{log}");
    let info = d.info("early");
    assert!(str_of(&info["description"]).starts_with(&format!("pid {}, uptime 0:00:", int_of(&info["pid"]))));
}

#[test]
fn a_crashed_program_is_restarted_with_a_new_pid() {
    let d = Daemon::start("[program:crashy]\ncommand=sleep 1000\nstartsecs=1\nautorestart=unexpected\n");
    d.wait_state("crashy", "RUNNING");
    let first = d.pid("crashy");
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(first as i32), Signal::SIGKILL).unwrap();
    wait_for("a replacement pid", DEADLINE, || {
        let i = d.info("crashy");
        int_of(&i["pid"]) != first && int_of(&i["pid"]) != 0
    });
    d.wait_state("crashy", "RUNNING");
    assert!(d.main_log().contains("exited: crashy (terminated by SIGKILL; not expected)"));
}

#[test]
fn a_quick_exit_goes_backoff_then_fatal() {
    let d = Daemon::start("[program:quick]\ncommand=/bin/false\nstartsecs=5\nstartretries=1\n");
    d.wait_state("quick", "FATAL");
    let info = d.info("quick");
    assert_eq!(str_of(&info["description"]), "Exited too quickly (process log may have details)");
    let log = d.main_log();
    assert_eq!(log.matches("spawned: 'quick'").count(), 2, "startretries=1 means two spawns:\n{log}");
    assert!(log.contains("gave up: quick entered FATAL state, too many start retries too quickly"));
}

#[test]
fn a_missing_command_is_a_spawn_error_not_a_crash() {
    let d = Daemon::start("[program:ghost]\ncommand=/nonexistent/binary\nstartretries=0\n");
    d.wait_state("ghost", "FATAL");
    assert_eq!(str_of(&d.info("ghost")["description"]), "can't find command '/nonexistent/binary'");
    // And the daemon still answers.
    assert_eq!(str_of(&d.call("supervisor.getAPIVersion", vec![])), "3.0");
}

#[test]
fn an_exec_failure_is_reported_in_the_process_stderr_log() {
    let d = Daemon::start(
        "[program:notexe]\ncommand={dir}/script\nstartretries=0\nstderr_logfile={dir}/notexe.err\n",
    );
    // Executable bit set, but no interpreter line: exec fails with ENOEXEC.
    let script = d.path("script");
    std::fs::write(&script, [0u8, 1, 2, 3]).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    match d.try_call("supervisor.startProcess", vec![s("notexe"), dxr::Value::Boolean(false)]) {
        Err(corral::ctl::client::ClientError::Fault { code: 50, text }) => {
            assert_eq!(text, "SPAWN_ERROR: notexe")
        }
        other => panic!("expected SPAWN_ERROR, got {other:?}"),
    }
    d.wait_state("notexe", "FATAL");
    let err = std::fs::read_to_string(d.path("notexe.err")).unwrap();
    assert!(err.contains(&format!("supervisor: couldn't exec {}: ENOEXEC", script.display())), "{err}");
    assert!(err.contains("supervisor: child process was not spawned"));
}

#[test]
fn children_get_supervisor_environment() {
    let d = Daemon::start(
        "[supervisord]\nenvironment=GLOBAL=g,SHARED=from-global\n\n\
         [program:envdump]\ncommand=sh -c 'env; sleep 1000'\nenvironment=LOCAL=\"a b\",SHARED=from-program\n\
         stdout_logfile={dir}/env.log\n",
    );
    d.wait_state("envdump", "RUNNING");
    let env = std::fs::read_to_string(d.path("env.log")).unwrap();
    for want in [
        "SUPERVISOR_ENABLED=1",
        "SUPERVISOR_PROCESS_NAME=envdump",
        "SUPERVISOR_GROUP_NAME=envdump",
        &format!("SUPERVISOR_SERVER_URL=unix://{}", d.sock.display()),
        "GLOBAL=g",
        "LOCAL=a b",
        "SHARED=from-program",
    ] {
        assert!(env.lines().any(|l| l == want), "missing {want} in:\n{env}");
    }
}

#[test]
fn a_child_writing_256_mib_flat_out_is_captured_to_the_last_byte() {
    let d = Daemon::start(
        "[program:flood]\ncommand=sh -c 'head -c 268435456 /dev/zero | tr \"\\000\" \"x\"; sleep 1000'\n\
         stdout_logfile={dir}/flood.log\nstdout_logfile_maxbytes=0\nstartsecs=0\n",
    );
    let log = d.path("flood.log");
    wait_for("256 MiB in the log", Duration::from_secs(120), || {
        std::fs::metadata(&log).map(|m| m.len() >= 268_435_456).unwrap_or(false)
    });
    let data = std::fs::read(&log).unwrap();
    assert_eq!(data.len(), 268_435_456);
    assert!(data.iter().all(|&b| b == b'x'), "every byte is the child's, in order");
}

#[test]
fn rotation_keeps_exactly_backups_files() {
    let d = Daemon::start(
        "[program:chatty]\ncommand=sh -c 'i=0; while [ $i -lt 20000 ]; do echo line-$i-abcdefghijklmnopqrstuvwxyz; i=$((i+1)); done; sleep 1000'\n\
         stdout_logfile={dir}/chatty.log\nstdout_logfile_maxbytes=10KB\nstdout_logfile_backups=3\nstartsecs=0\n",
    );
    let base = d.path("chatty.log");
    // The last write may itself trigger a rotation, leaving it in `.1`; a rotation
    // renames `.2` to `.3` before `.1` to `.2`, so the backups are checked once it is over.
    let backups = || (1..=3).all(|n| d.path(&format!("chatty.log.{n}")).exists());
    wait_for("the last line to be logged, and every backup in place", DEADLINE, || {
        backups()
            && [base.clone(), d.path("chatty.log.1")]
                .iter()
                .any(|p| std::fs::read_to_string(p).map(|s| s.contains("line-19999-")).unwrap_or(false))
    });
    assert!(!d.path("chatty.log.4").exists(), "no more than 3 backups");
    let size = std::fs::metadata(d.path("chatty.log.1")).unwrap().len();
    // Rotation happens after a write, so a file may exceed maxbytes by one pipe read.
    assert!((10_240..10_240 + 65_536).contains(&size), "a rotated file holds at least maxbytes: {size}");
}

#[test]
fn stop_escalates_to_sigkill_after_stopwaitsecs() {
    let d = Daemon::start(
        "[program:stubborn]\ncommand=sh -c 'trap \"\" TERM; while :; do sleep 1; done'\nstopwaitsecs=2\nstartsecs=1\n",
    );
    d.wait_state("stubborn", "RUNNING");
    let pid = d.pid("stubborn");
    let t = Instant::now();
    d.call("supervisor.stopProcess", vec![s("stubborn")]);
    let took = t.elapsed();
    assert_eq!(d.state("stubborn"), "STOPPED");
    assert!(took >= Duration::from_millis(1900), "waited stopwaitsecs before SIGKILL: {took:?}");
    let log = d.main_log();
    assert!(log.contains(&format!("killing 'stubborn' ({pid}) with SIGKILL")), "{log}");
    assert!(log.contains("stopped: stubborn (terminated by SIGKILL)"), "{log}");
    assert!(!alive(pid));
}

#[test]
fn sigterm_stops_everything_then_exits_zero_and_removes_the_pidfile() {
    let mut d = Daemon::start(
        "[program:a]\ncommand=sleep 1000\npriority=1\n\n[program:b]\ncommand=sleep 1000\npriority=2\n",
    );
    d.wait_state("a", "RUNNING");
    d.wait_state("b", "RUNNING");
    let (pa, pb) = (d.pid("a"), d.pid("b"));
    assert!(d.path("corrald.pid").exists());
    d.signal(Signal::SIGTERM);
    assert_eq!(d.wait_exit(), Some(0));
    assert!(!alive(pa) && !alive(pb), "no child survives");
    assert!(!d.path("corrald.pid").exists(), "pid file removed");
    assert!(!d.sock.exists(), "socket removed");
    let log = d.main_log();
    let sa = log.find("stopped: a").expect("a stopped");
    let sb = log.find("stopped: b").expect("b stopped");
    assert!(sb < sa, "higher priority number stops first:\n{log}");
}

#[test]
fn sighup_restarts_programs_in_the_same_daemon() {
    let d = Daemon::start("[program:a]\ncommand=sleep 1000\n");
    d.wait_state("a", "RUNNING");
    let before = d.pid("a");
    let daemon = d.daemon_pid();
    d.signal(Signal::SIGHUP);
    wait_for("a new pid after SIGHUP", DEADLINE, || {
        d.try_call("supervisor.getProcessInfo", vec![s("a")])
            .map(|v| {
                let i = struct_of(v);
                int_of(&i["pid"]) != before && str_of(&i["statename"]) == "RUNNING"
            })
            .unwrap_or(false)
    });
    assert_eq!(d.daemon_pid(), daemon);
    assert!(!alive(before));
}

#[test]
fn sigusr2_reopens_logs_after_an_external_rotation() {
    let d = Daemon::start(
        "[program:ticker]\ncommand=sh -c 'while :; do echo tick; sleep 0.1; done'\nstdout_logfile={dir}/ticker.log\nstartsecs=0\n",
    );
    let log = d.path("ticker.log");
    wait_for("first ticks", DEADLINE, || {
        std::fs::read_to_string(&log).map(|s| s.contains("tick")).unwrap_or(false)
    });
    let moved = d.path("ticker.log.old");
    std::fs::rename(&log, &moved).unwrap();
    d.signal(Signal::SIGUSR2);
    wait_for("ticks in a new file", DEADLINE, || {
        std::fs::read_to_string(&log).map(|s| s.contains("tick")).unwrap_or(false)
    });
}

#[test]
fn a_bad_config_exits_2_naming_file_line_and_option() {
    let dir = tempfile::tempdir().unwrap();
    let conf = dir.path().join("bad.conf");
    std::fs::write(&conf, format!("{}[program:x]\ncommand=sleep 1\nstartsecs=soon\n", preamble(dir.path())))
        .unwrap();
    let out =
        std::process::Command::new(env!("CARGO_BIN_EXE_corrald")).arg("-c").arg(&conf).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(&format!("{}:", conf.display())), "{err}");
    assert!(err.contains("startsecs") && err.contains("'soon'"), "{err}");

    let check = std::process::Command::new(env!("CARGO_BIN_EXE_corrald"))
        .args(["--check-config", "-c"])
        .arg(&conf)
        .output()
        .unwrap();
    assert_eq!(check.status.code(), Some(1));
}

#[test]
fn check_config_lists_resolved_programs() {
    let dir = tempfile::tempdir().unwrap();
    let conf = dir.path().join("ok.conf");
    std::fs::write(
        &conf,
        format!(
            "{}[program:w]\ncommand=sleep 1\nprocess_name=%(program_name)s_%(process_num)02d\nnumprocs=2\n",
            preamble(dir.path())
        ),
    )
    .unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_corrald"))
        .args(["--check-config", "-c"])
        .arg(&conf)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("w_00") && text.contains("w_01"), "{text}");
}

#[test]
fn the_shipped_example_reaches_running() {
    let example =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/examples/corral.conf")).unwrap();
    let dir = tempfile::tempdir().unwrap();
    // Same file, with its /tmp paths and ports moved into this test's own directory.
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let web_port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let text = example
        .replace("/tmp/corral-example", &format!("{}/corral-example", dir.path().display()))
        .replace("childlogdir=/tmp", &format!("childlogdir={}", dir.path().display()))
        .replace("127.0.0.1:9001", &format!("127.0.0.1:{port}"))
        .replace("8765", &web_port.to_string())
        .replace("directory=%(here)s", &format!("directory={}", env!("CARGO_MANIFEST_DIR")));
    let conf = dir.path().join("corral.conf");
    std::fs::write(&conf, text).unwrap();
    let mut d = Daemon {
        child: Some(
            std::process::Command::new(env!("CARGO_BIN_EXE_corrald"))
                .arg("-c")
                .arg(&conf)
                .stdout(std::process::Stdio::null())
                .spawn()
                .unwrap(),
        ),
        sock: dir.path().join("corral-example.sock"),
        conf,
        dir,
    };
    wait_for("the example daemon to answer", DEADLINE, || d.try_call("supervisor.getPID", vec![]).is_ok());
    for name in ["clock", "web", "pool:worker_00", "pool:worker_01"] {
        d.wait_state(name, "RUNNING");
    }
    d.signal(Signal::SIGTERM);
    assert_eq!(d.wait_exit(), Some(0));
}

#[test]
fn without_nodaemon_it_detaches_and_writes_its_pid_file() {
    let dir = tempfile::tempdir().unwrap();
    let text = preamble(dir.path()).replace("nodaemon=true", "nodaemon=false")
        + "[program:bg]\ncommand=sleep 1000\nstartsecs=0\n";
    let conf = dir.path().join("corral.conf");
    std::fs::write(&conf, text).unwrap();
    let status =
        std::process::Command::new(env!("CARGO_BIN_EXE_corrald")).arg("-c").arg(&conf).status().unwrap();
    assert!(status.success(), "the foreground parent exits 0 once the daemon is detached");
    let pidfile = dir.path().join("corrald.pid");
    wait_for("the pid file", DEADLINE, || {
        std::fs::read_to_string(&pidfile).map(|s| s.ends_with('\n')).unwrap_or(false)
    });
    let pid: i32 = std::fs::read_to_string(&pidfile).unwrap().trim().parse().unwrap();
    let d = Daemon { child: None, sock: dir.path().join("corral.sock"), conf, dir };
    wait_for("the detached daemon to answer", DEADLINE, || d.try_call("supervisor.getPID", vec![]).is_ok());
    assert_eq!(int_of(&d.call("supervisor.getPID", vec![])), i64::from(pid));
    d.wait_state("bg", "RUNNING");
    let session = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let fields: Vec<&str> = session.rsplit(')').next().unwrap().split_whitespace().collect();
    assert_eq!(fields[3], pid.to_string(), "the daemon leads its own session");
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), Signal::SIGTERM).unwrap();
    wait_for("the daemon to exit", DEADLINE, || !alive(i64::from(pid)));
    assert!(!d.path("corrald.pid").exists());
}

#[test]
fn user_directory_and_umask_apply_to_the_child() {
    if !nix::unistd::Uid::effective().is_root() {
        skip("user= needs root");
        return;
    }
    let d = Daemon::start(
        "[program:who]\ncommand=sh -c 'id -un > {dir}/who.out; pwd >> {dir}/who.out; umask >> {dir}/who.out; exec sleep 1000'\n\
         user=nobody\ndirectory=/tmp\numask=027\nstartsecs=0\n",
    );
    std::fs::set_permissions(d.dir.path(), std::os::unix::fs::PermissionsExt::from_mode(0o777)).unwrap();
    d.call("supervisor.stopProcess", vec![s("who")]);
    d.call("supervisor.startProcess", vec![s("who")]);
    let out = d.path("who.out");
    wait_for("the child's report", DEADLINE, || {
        std::fs::read_to_string(&out).map(|s| s.lines().count() >= 3).unwrap_or(false)
    });
    assert_eq!(std::fs::read_to_string(&out).unwrap(), "nobody\n/tmp\n0027\n");
}

/// The descriptors a running program holds, read from `/proc/PID/fd`.
fn open_fds_of(d: &Daemon, name: &str) -> Vec<i32> {
    let dir = format!("/proc/{}/fd", d.pid(name));
    let mut fds: Vec<i32> =
        std::fs::read_dir(&dir).unwrap().filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok()).collect();
    fds.sort();
    fds
}

#[test]
fn children_inherit_only_their_stdio_and_readiness_descriptor() {
    // Many programs, so the daemon holds many pipes and log files a child must not see.
    let mut programs = String::new();
    for i in 0..30 {
        programs.push_str(&format!("[program:filler{i}]\ncommand=sleep 1000\nstartsecs=0\n\n"));
    }
    programs.push_str(
        "[program:plain]\ncommand=sleep 1000\nstartsecs=0\n\n\
         [program:ready]\ncommand=sh -c 'echo >&7; exec sleep 1000'\nready=fd:7\n",
    );
    let d = Daemon::start(&programs);
    d.wait_state("plain", "RUNNING");
    assert_eq!(open_fds_of(&d, "plain"), [0, 1, 2]);
    d.wait_state("ready", "RUNNING");
    // The readiness descriptor stays open in the program (s6 semantics): only it, besides stdio.
    wait_for("sleep to replace the shell", DEADLINE, || {
        std::fs::read_to_string(format!("/proc/{}/comm", d.pid("ready"))).is_ok_and(|c| c == "sleep\n")
    });
    assert_eq!(open_fds_of(&d, "ready"), [0, 1, 2, 7]);
}

#[test]
fn send_process_stdin_reaches_the_child() {
    let d = Daemon::start("[program:cat]\ncommand=cat\nstdout_logfile={dir}/cat.log\nstartsecs=0\n");
    d.wait_state("cat", "RUNNING");
    d.call("supervisor.sendProcessStdin", vec![s("cat"), s("hello stdin\n")]);
    wait_for("the echo", DEADLINE, || {
        std::fs::read_to_string(d.path("cat.log")).map(|s| s == "hello stdin\n").unwrap_or(false)
    });
}

/// Seconds since midnight of a main-log line (`YYYY-MM-DD HH:MM:SS,mmm …`).
fn log_time(line: &str) -> f64 {
    let t = &line[11..23];
    let (hms, ms) = t.split_once(',').unwrap();
    let p: Vec<f64> = hms.split(':').map(|x| x.parse().unwrap()).collect();
    p[0] * 3600.0 + p[1] * 60.0 + p[2] + ms.parse::<f64>().unwrap() / 1000.0
}

#[test]
fn exponential_backoff_paces_restarts_in_real_time() {
    let d = Daemon::start(
        "[program:flaky]\ncommand=sh -c 'sleep 1.2; exit 1'\nstartsecs=1\nautorestart=true\n\
         backoff=exponential\nbackoff_reset=30\n",
    );
    wait_for("four spawns", Duration::from_secs(60), || {
        d.main_log().matches("spawned: 'flaky'").count() >= 4
    });
    let log = d.main_log();
    let exits: Vec<f64> = log.lines().filter(|l| l.contains("exited: flaky")).map(log_time).collect();
    let spawns: Vec<f64> = log.lines().filter(|l| l.contains("spawned: 'flaky'")).map(log_time).collect();
    let waits: Vec<f64> = exits.iter().zip(&spawns[1..]).map(|(e, s)| s - e).collect();
    for (want, got) in [1.0, 2.0, 4.0].iter().zip(&waits) {
        assert!((got - want).abs() < 0.5, "waits {waits:?} should be about 1, 2, 4 s");
    }
    assert!(
        str_of(&d.info("flaky")["description"]).contains("restarting in") || d.state("flaky") != "BACKOFF"
    );
}
