//! Re-exec without stopping programs: `corral.reexec` (corralctl `reexec`,
//! SIGUSR1) runs the binary at the path corrald was started from again, and
//! every program keeps its pid, its state and its log, without a gap.

mod common;

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use common::*;
use dxr::Value;

/// A copy of corrald in `dir/bin`, as a package would install it.
fn install_binary(dir: &Path) -> PathBuf {
    let bin = dir.join("bin");
    std::fs::create_dir_all(&bin).expect("bin dir");
    let path = bin.join("corrald");
    // A hard link is enough (an upgrade renames a new file over it, leaving the
    // build's file alone) and spares copying a large debug binary.
    if std::fs::hard_link(env!("CARGO_BIN_EXE_corrald"), &path).is_err() {
        std::fs::copy(env!("CARGO_BIN_EXE_corrald"), &path).expect("copy corrald");
    }
    path
}

/// Replace the installed binary the way a package upgrade does: write a new
/// file next to it and rename it over the old one. Returns the new inode.
fn upgrade_binary(path: &Path, contents: &Path) -> u64 {
    let next = path.with_extension("new");
    std::fs::copy(contents, &next).expect("copy new binary");
    std::fs::rename(&next, path).expect("rename over the old binary");
    std::fs::metadata(path).expect("stat new binary").ino()
}

/// Start the corrald installed at `binary` on `programs` after the standard preamble.
fn start_installed(dir: tempfile::TempDir, binary: &Path, programs: &str) -> Daemon {
    let text =
        format!("{}{}", preamble(dir.path()), programs.replace("{dir}", &dir.path().display().to_string()));
    let conf = dir.path().join("corral.conf");
    std::fs::write(&conf, text).expect("write config");
    let child = Command::new(binary)
        .arg("-c")
        .arg(&conf)
        .args(["--dbus", "none"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::from(std::fs::File::create(dir.path().join("corrald.stderr")).expect("stderr file")))
        .spawn()
        .expect("spawn corrald");
    let sock = dir.path().join("corral.sock");
    let d = Daemon { child: Some(child), dir, conf, sock };
    d.wait_answering();
    d
}

/// Inode of the executable a process runs.
fn exe_inode(pid: i32) -> u64 {
    std::fs::metadata(format!("/proc/{pid}/exe")).map(|m| m.ino()).unwrap_or(0)
}

/// name → (pid, statename) for every process.
fn snapshot(d: &Daemon) -> Vec<(String, i64, String)> {
    array_of(d.call("supervisor.getAllProcessInfo", vec![]))
        .into_iter()
        .map(|v| {
            let s = struct_of(v);
            (str_of(&s["name"]), int_of(&s["pid"]), str_of(&s["statename"]))
        })
        .collect()
}

/// The counter lines of a log, as numbers.
fn counter_lines(path: &Path) -> Vec<u64> {
    std::fs::read_to_string(path).unwrap_or_default().lines().filter_map(|l| l.trim().parse().ok()).collect()
}

const TWENTY_PROGRAMS: &str = "\
[program:counter]
command=sh -c 'i=0; while :; do echo $i; i=$((i+1)); sleep 0.01; done'
stdout_logfile={dir}/counter.log
startsecs=0

[program:sleeper]
command=sleep 100000
process_name=%(program_name)s_%(process_num)02d
numprocs=19
startsecs=0
";

#[test]
fn reexec_of_an_upgraded_binary_keeps_every_program_and_loses_no_output() {
    let dir = tempfile::tempdir().expect("temp dir");
    let binary = install_binary(dir.path());
    let d = start_installed(dir, &binary, TWENTY_PROGRAMS);
    wait_for("20 programs RUNNING", DEADLINE, || {
        let s = snapshot(&d);
        s.len() == 20 && s.iter().all(|(_, _, state)| state == "RUNNING")
    });
    let before = snapshot(&d);
    let log = d.path("counter.log");
    wait_for("the counter to be logging", DEADLINE, || counter_lines(&log).len() >= 20);
    let daemon = d.daemon_pid();
    let old_exe = exe_inode(daemon);

    let new_exe = upgrade_binary(&binary, Path::new(env!("CARGO_BIN_EXE_corrald")));
    assert_ne!(old_exe, new_exe);
    assert_eq!(d.call("corral.reexec", vec![]), Value::Boolean(true));

    wait_for("corrald to run the new binary", DEADLINE, || exe_inode(daemon) == new_exe);
    d.wait_answering();
    assert_eq!(int_of(&d.call("supervisor.getPID", vec![])), daemon as i64, "the daemon keeps its pid");
    let after = snapshot(&d);
    assert_eq!(before, after, "same programs, same pids, all still RUNNING");
    for (_, pid, _) in &after {
        assert!(alive(*pid), "pid {pid} is alive");
    }

    let at_reexec = counter_lines(&log).last().copied().unwrap_or(0);
    wait_for("the counter to go on after the re-exec", DEADLINE, || {
        counter_lines(&log).last().is_some_and(|n| *n > at_reexec + 50)
    });
    let lines = counter_lines(&log);
    for pair in lines.windows(2) {
        assert_eq!(pair[1], pair[0] + 1, "no line lost or repeated around the re-exec");
    }
    assert_eq!(lines[0], 0);
    let main_log = d.main_log();
    assert!(main_log.contains("adopted 20 running process(es)"), "{main_log}");
}

#[test]
fn reexec_follows_a_symlink_switched_by_an_upgrade() {
    // /opt-style layout: bin/corrald -> v1/corrald; the upgrade installs v2 and
    // switches the link. The daemon was started as bin/corrald, so that runs next.
    let dir = tempfile::tempdir().expect("temp dir");
    let v1 = install_binary(&dir.path().join("v1"));
    let v2_dir = dir.path().join("v2");
    std::fs::create_dir_all(&v2_dir).expect("v2 dir");
    let v2 = v2_dir.join("corrald");
    std::fs::copy(env!("CARGO_BIN_EXE_corrald"), &v2).expect("copy v2");
    let link = dir.path().join("corrald");
    std::os::unix::fs::symlink(&v1, &link).expect("link to v1");
    let d = start_installed(dir, &link, "[program:a]\ncommand=sleep 100000\nstartsecs=0\n");
    d.wait_state("a", "RUNNING");
    let (daemon, pid) = (d.daemon_pid(), d.pid("a"));
    assert_eq!(exe_inode(daemon), std::fs::metadata(&v1).expect("v1").ino());

    let next = d.path("corrald.next");
    std::os::unix::fs::symlink(&v2, &next).expect("new link");
    std::fs::rename(&next, &link).expect("switch the link");
    assert_eq!(d.call("corral.reexec", vec![]), Value::Boolean(true));

    let v2_inode = std::fs::metadata(&v2).expect("v2").ino();
    wait_for("corrald to run the binary the link now points to", DEADLINE, || exe_inode(daemon) == v2_inode);
    d.wait_answering();
    assert_eq!(d.pid("a"), pid);
}

#[test]
fn reexec_of_an_unusable_binary_is_refused_and_nothing_changes() {
    let dir = tempfile::tempdir().expect("temp dir");
    let binary = install_binary(dir.path());
    let d = start_installed(dir, &binary, "[program:a]\ncommand=sleep 100000\nstartsecs=0\n");
    d.wait_state("a", "RUNNING");
    let pid = d.pid("a");
    let garbage = d.path("garbage");
    std::fs::write(&garbage, b"not a program").expect("write");
    let mode = std::os::unix::fs::PermissionsExt::from_mode(0o755);
    std::fs::set_permissions(&garbage, mode).expect("chmod");
    upgrade_binary(&binary, &garbage);

    let err = d.try_call("corral.reexec", vec![]).expect_err("reexec must fail");
    let text = err.to_string();
    assert!(text.contains("FAILED") && text.contains("cannot re-execute"), "{text}");
    assert_eq!(d.pid("a"), pid);
    assert_eq!(d.state("a"), "RUNNING");
    // The daemon is fully working: commands still act.
    d.call("supervisor.stopProcess", vec![s("a")]);
    assert!(!alive(pid));
}

#[test]
fn sigusr1_reexecs_and_corralctl_reexec_too() {
    let mut d = Daemon::start("[program:a]\ncommand=sleep 100000\nstartsecs=0\n");
    d.wait_state("a", "RUNNING");
    let pid = d.pid("a");
    let auto_log = str_of(&d.info("a")["stdout_logfile"]);
    assert!(auto_log.contains("---test-"), "an AUTO log: {auto_log}");
    d.signal(nix::sys::signal::Signal::SIGUSR1);
    wait_for("the SIGUSR1 re-exec to finish", DEADLINE, || {
        d.main_log().matches("adopted 1 running process(es)").count() == 1
    });
    d.wait_answering();
    assert_eq!(d.pid("a"), pid);
    assert_eq!(str_of(&d.info("a")["stdout_logfile"]), auto_log, "the AUTO log stays the same file");

    let out = Command::new(env!("CARGO_BIN_EXE_corralctl"))
        .arg("-c")
        .arg(&d.conf)
        .arg("reexec")
        .output()
        .expect("run corralctl");
    assert!(out.status.success(), "{out:?}");
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "Re-executing corrald");
    wait_for("the second re-exec to finish", DEADLINE, || {
        d.main_log().matches("adopted 1 running process(es)").count() == 2
    });
    d.wait_answering();
    assert_eq!(d.pid("a"), pid);
    assert_eq!(d.state("a"), "RUNNING");

    // Signals held back across the exec are handled again, and children start with none blocked.
    d.call("supervisor.stopProcess", vec![s("a")]);
    d.call("supervisor.startProcess", vec![s("a")]);
    let status = std::fs::read_to_string(format!("/proc/{}/status", d.pid("a"))).expect("status");
    let blocked = status.lines().find_map(|l| l.strip_prefix("SigBlk:")).map(str::trim);
    assert_eq!(blocked, Some("0000000000000000"), "{status}");
    d.signal(nix::sys::signal::Signal::SIGTERM);
    assert_eq!(d.wait_exit(), Some(0));
}

#[test]
fn an_exec_that_fails_after_the_checks_leaves_the_old_daemon_running() {
    let dir = tempfile::tempdir().expect("temp dir");
    let binary = install_binary(dir.path());
    let d = start_installed(dir, &binary, "[program:a]\ncommand=sleep 100000\nstartsecs=0\n");
    d.wait_state("a", "RUNNING");
    let pid = d.pid("a");
    // A program added with reread/update since the start is kept too.
    let conf = std::fs::read_to_string(&d.conf).expect("read config");
    std::fs::write(&d.conf, format!("{conf}\n[program:b]\ncommand=sleep 100000\nstartsecs=0\n"))
        .expect("write");
    d.call("supervisor.reloadConfig", vec![]);
    d.call("supervisor.addProcessGroup", vec![s("b")]);
    d.wait_state("b", "RUNNING");
    let b_pid = d.pid("b");
    // An ELF header and nothing else: it passes the checks, the kernel refuses it.
    let broken = d.path("broken");
    std::fs::write(&broken, b"\x7fELF-truncated").expect("write");
    std::fs::set_permissions(&broken, std::os::unix::fs::PermissionsExt::from_mode(0o755)).expect("chmod");
    upgrade_binary(&binary, &broken);

    assert_eq!(d.call("corral.reexec", vec![]), Value::Boolean(true));
    wait_for("the failure to be logged", DEADLINE, || d.main_log().contains("re-exec failed"));
    d.wait_answering();
    assert!(d.main_log().contains("adopted 2 running process(es)"), "{}", d.main_log());
    assert_eq!(d.pid("a"), pid);
    assert_eq!(d.state("a"), "RUNNING");
    assert_eq!(d.pid("b"), b_pid);
    // Still in charge: a stop kills it.
    d.call("supervisor.stopProcess", vec![s("a")]);
    assert!(!alive(pid));
}

#[test]
fn programs_removed_from_the_config_are_stopped_and_listeners_restarted() {
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::write(
        dir.path().join("listener.py"),
        "import sys\n\
         while True:\n\
         \x20   sys.stdout.write('READY\\n'); sys.stdout.flush()\n\
         \x20   h = sys.stdin.readline()\n\
         \x20   f = dict(x.split(':', 1) for x in h.split())\n\
         \x20   sys.stdin.read(int(f['len']))\n\
         \x20   open(sys.argv[1], 'a').write(f['eventname'] + '\\n')\n\
         \x20   sys.stdout.write('RESULT 2\\nOK'); sys.stdout.flush()\n",
    )
    .expect("write listener");
    let listener =
        "[eventlistener:listen]\ncommand=python3 {dir}/listener.py {dir}/events.log\nevents=PROCESS_STATE\nstartsecs=0\n\n";
    let keep = "[program:keep]\ncommand=sleep 100000\nstartsecs=0\n\n";
    let gone = "[program:gone]\ncommand=sleep 100000\nstartsecs=0\n\n";
    let text = format!("{}{listener}{keep}{gone}", preamble(dir.path()))
        .replace("{dir}", &dir.path().display().to_string());
    let d = Daemon::start_with(dir, &text);
    d.wait_state("keep", "RUNNING");
    d.wait_state("gone", "RUNNING");
    d.wait_state("listen", "RUNNING");
    let (keep_pid, gone_pid, listener_pid) = (d.pid("keep"), d.pid("gone"), d.pid("listen"));

    std::fs::write(&d.conf, text.replace(gone, "")).expect("rewrite config");
    assert_eq!(d.call("corral.reexec", vec![]), Value::Boolean(true));
    wait_for("the re-exec to finish", DEADLINE, || d.main_log().contains("adopted 1 running process(es)"));
    d.wait_answering();

    assert_eq!(d.pid("keep"), keep_pid);
    assert!(!alive(gone_pid), "a program without a section is stopped before the exec");
    assert!(d.try_call("supervisor.getProcessInfo", vec![s("gone")]).is_err());
    d.wait_state("listen", "RUNNING");
    assert_ne!(d.pid("listen"), listener_pid, "the listener starts afresh");
    assert!(!alive(listener_pid));
    // The new listener gets events.
    let events = d.path("events.log");
    let lines =
        || std::fs::read_to_string(&events).unwrap_or_default().lines().map(String::from).collect::<Vec<_>>();
    let seen = lines().len();
    d.call("supervisor.stopProcess", vec![s("keep")]);
    wait_for("the new listener to see keep stop", DEADLINE, || {
        lines()[seen..].iter().any(|l| l == "PROCESS_STATE_STOPPED")
    });
}

#[test]
fn a_service_manager_sees_reloading_then_ready() {
    let dir = tempfile::tempdir().expect("temp dir");
    let notify = DatagramSink::bind(dir.path(), "notify.sock");
    let text = format!("{}[program:a]\ncommand=sleep 100000\nstartsecs=0\n", preamble(dir.path()));
    let path = notify.path.display().to_string();
    let d = Daemon::spawn_with(dir, &text, &[("NOTIFY_SOCKET", &path)], &[]);
    let is = |m: &[u8], line: &str| String::from_utf8_lossy(m).lines().any(|l| l == line);
    notify.recv_until("READY=1", |m| is(m, "READY=1"));
    d.wait_state("a", "RUNNING");
    let pid = d.pid("a");
    assert_eq!(d.call("corral.reexec", vec![]), Value::Boolean(true));
    notify.recv_until("RELOADING=1", |m| is(m, "RELOADING=1"));
    notify.recv_until("READY=1 from the new daemon", |m| is(m, "READY=1"));
    assert_eq!(d.pid("a"), pid);
}

// ----- crash recovery ------------------------------------------------------------

fn cgroups_usable() -> bool {
    let ok = nix::unistd::Uid::effective().is_root()
        && std::fs::read_to_string("/proc/self/mountinfo").map(|m| m.contains(" cgroup")).unwrap_or(false);
    if !ok {
        if std::env::var_os("CORRAL_REQUIRE_CGROUPS").is_some() {
            panic!("CORRAL_REQUIRE_CGROUPS is set but this run has no usable cgroupfs");
        }
        skip("finding programs after a crash needs root and a writable cgroupfs");
    }
    ok
}

/// SIGKILL the daemon, as a crash would, and start a new one on the same directory.
fn crash_and_restart(d: &mut Daemon, conf_text: Option<&str>) {
    let mut old = d.child.take().expect("daemon running");
    old.kill().expect("SIGKILL corrald");
    old.wait().expect("reap corrald");
    if let Some(text) = conf_text {
        std::fs::write(&d.conf, text).expect("rewrite config");
    }
    let child = Command::new(env!("CARGO_BIN_EXE_corrald"))
        .arg("-c")
        .arg(&d.conf)
        .args(["--dbus", "none"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::from(std::fs::File::create(d.path("corrald2.stderr")).expect("stderr file")))
        .spawn()
        .expect("spawn corrald");
    d.child = Some(child);
    d.wait_answering();
}

/// A counter that survives writing to a pipe nobody reads (SIGPIPE ignored).
const HARDY_COUNTER: &str = "[program:counter]\n\
    command=sh -c 'trap \"\" PIPE; i=0; while :; do echo $i; i=$((i+1)); sleep 0.01; done'\n\
    stdout_logfile={dir}/counter.log\nstartsecs=0\n\n";

#[test]
fn after_a_crash_adopt_orphans_takes_the_programs_over_with_their_pids() {
    if !cgroups_usable() {
        return;
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let programs = format!(
        "{HARDY_COUNTER}[program:a]\ncommand=sleep 100000\nstartsecs=0\n\n[program:gone]\ncommand=sleep 100000\nstartsecs=0\n\n"
    );
    let text = format!("{}{programs}", preamble(dir.path()))
        .replace("[supervisord]\n", "[supervisord]\nadopt_orphans=true\n")
        .replace("{dir}", &dir.path().display().to_string());
    let mut d = Daemon::start_with(dir, &text);
    for name in ["a", "counter", "gone"] {
        d.wait_state(name, "RUNNING");
    }
    let (a, counter, gone) = (d.pid("a"), d.pid("counter"), d.pid("gone"));
    let log = d.path("counter.log");
    wait_for("the counter to be logging", DEADLINE, || counter_lines(&log).len() >= 10);

    // `gone` leaves the configuration while no daemon runs: it must not survive.
    crash_and_restart(
        &mut d,
        Some(&text.replace("[program:gone]\ncommand=sleep 100000\nstartsecs=0\n\n", "")),
    );

    assert_eq!(d.pid("a"), a, "adopted, not started again");
    assert_eq!(d.pid("counter"), counter);
    assert_eq!(d.state("a"), "RUNNING");
    wait_for("the program removed from the config to be killed", DEADLINE, || !alive(gone));
    // Output is reached again through the program's own pipe, and the gap is marked.
    let text_now = || std::fs::read_to_string(&log).unwrap_or_default();
    wait_for("the adoption to be marked in the log", DEADLINE, || {
        text_now().contains(&format!("corrald: adopted pid {counter} after an unclean daemon exit"))
    });
    let marked_at = text_now().len();
    wait_for("the counter to be captured again", DEADLINE, || {
        text_now()[marked_at..].lines().filter(|l| l.trim().parse::<u64>().is_ok()).count() >= 10
    });

    // Adopted programs stay adopted across a re-exec.
    assert_eq!(d.call("corral.reexec", vec![]), Value::Boolean(true));
    wait_for("the re-exec to finish", DEADLINE, || d.main_log().contains("adopted 2 running process(es)"));
    d.wait_answering();
    assert_eq!(d.pid("a"), a);
    assert_eq!(d.pid("counter"), counter);

    // A stop works on an adopted program, and its end is seen without being its parent.
    d.call("supervisor.stopProcess", vec![s("a")]);
    assert!(!alive(a));
    assert_eq!(d.state("a"), "STOPPED");
    // An exit nobody asked for is reported, with an honest status, and restarted.
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(counter as i32), nix::sys::signal::Signal::SIGKILL)
        .expect("kill counter");
    wait_for("the counter to be restarted", DEADLINE, || {
        let pid = d.pid("counter");
        pid != 0 && pid != counter && d.state("counter") == "RUNNING"
    });
    assert!(d.main_log().contains("exit status unknown"), "{}", d.main_log());
}

#[test]
fn an_adopted_program_keeps_its_auto_log_and_its_output_even_with_stdin_closed() {
    if !cgroups_usable() {
        return;
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let identifier = format!(
        "test-{}",
        dir.path().file_name().and_then(|n| n.to_str()).unwrap_or("x").trim_start_matches('.')
    );
    let programs = "[program:counter]\n\
        command=sh -c 'exec 0<&-; trap \"\" PIPE; i=0; while :; do echo $i; i=$((i+1)); sleep 0.01; done'\n\
        stdout_logfile=AUTO\nstartsecs=0\n";
    let text = format!("{}{programs}", preamble(dir.path()))
        .replace("[supervisord]\n", "[supervisord]\nadopt_orphans=true\n");
    let mut d = Daemon::start_with(dir, &text);
    d.wait_state("counter", "RUNNING");
    let counter = d.pid("counter");
    let log_path = |d: &Daemon| PathBuf::from(str_of(&d.info("counter")["stdout_logfile"]));
    let log = log_path(&d);
    wait_for("the counter to be logging", DEADLINE, || counter_lines(&log).len() >= 10);
    // The AUTO log of a program that is not there to adopt is cleaned up as usual.
    let stale = d.path(&format!("gone-stdout---{identifier}-abcdefgh.log"));
    std::fs::write(&stale, "old\n").expect("stale AUTO log");
    let before = counter_lines(&log).len();

    crash_and_restart(&mut d, None);

    assert_eq!(d.pid("counter"), counter, "adopted");
    assert_eq!(log_path(&d), log, "its AUTO log goes on in the same file");
    assert!(counter_lines(&log).len() >= before, "what it logged before the crash is kept");
    assert!(!stale.exists(), "other AUTO logs are cleaned up");
    let text_now = || std::fs::read_to_string(&log).unwrap_or_default();
    wait_for("the adoption to be marked", DEADLINE, || text_now().contains("corrald: adopted pid"));
    let marked_at = text_now().len();
    wait_for("its output to be captured again although its stdin is closed", DEADLINE, || {
        text_now()[marked_at..].lines().filter(|l| l.trim().parse::<u64>().is_ok()).count() >= 10
    });
}

#[test]
fn after_a_crash_without_adoption_the_programs_are_replaced_and_none_survives() {
    if !cgroups_usable() {
        return;
    }
    let mut d = Daemon::start(
        "[program:a]\ncommand=sh -c 'sleep 100000 & exec sleep 100000'\nstartsecs=0\n\n\
         [program:b]\ncommand=sleep 100000\nstartsecs=0\n",
    );
    d.wait_state("a", "RUNNING");
    d.wait_state("b", "RUNNING");
    let cgroup = str_of(&d.call("corral.getProcessCgroup", vec![s("a")]));
    let members = cgroup_member_pids(&cgroup).unwrap_or_default();
    let old: Vec<i64> = members.into_iter().chain([d.pid("b")]).collect();
    assert_eq!(old.len(), 3, "both sleeps of a, and b: {old:?}");

    crash_and_restart(&mut d, None);

    d.wait_state("a", "RUNNING");
    d.wait_state("b", "RUNNING");
    for pid in &old {
        assert!(!alive(*pid), "pid {pid} of the crashed daemon still runs");
    }
    assert!(!old.contains(&d.pid("a")) && !old.contains(&d.pid("b")));
    assert!(d.main_log().contains("left running by a previous corrald"), "{}", d.main_log());
}

/// Pids in a cgroup shown as `/…/corral-…/g/p`, looked up in every mounted hierarchy.
fn cgroup_member_pids(path: &str) -> Option<Vec<i64>> {
    for root in ["/sys/fs/cgroup/unified", "/sys/fs/cgroup"] {
        let procs = Path::new(root).join(path.trim_start_matches('/')).join("cgroup.procs");
        if let Ok(text) = std::fs::read_to_string(procs) {
            return Some(text.lines().filter_map(|l| l.parse().ok()).collect());
        }
    }
    None
}

#[test]
fn a_sigterm_during_a_reexec_is_not_lost() {
    let mut d = Daemon::start("[program:a]\ncommand=sleep 100000\nstartsecs=0\n");
    d.wait_state("a", "RUNNING");
    let pid = d.pid("a");
    assert_eq!(d.call("corral.reexec", vec![]), Value::Boolean(true));
    // Whatever stage the re-exec is at, the stop request is carried out.
    d.signal(nix::sys::signal::Signal::SIGTERM);
    assert_eq!(d.wait_exit(), Some(0));
    assert!(!alive(pid), "the program was stopped");
}

#[test]
fn restart_counters_survive_a_reexec() {
    let d =
        Daemon::start("[program:flappy]\ncommand=sh -c 'sleep 0.2; exit 3'\nstartsecs=0\nautorestart=true\n");
    let restarts = || int_of(&struct_of(d.call("corral.getProcessStats", vec![s("flappy")]))["restarts"]);
    wait_for("a few restarts", DEADLINE, || restarts() >= 3);
    let before = restarts();
    assert_eq!(d.call("corral.reexec", vec![]), Value::Boolean(true));
    wait_for("the re-exec to finish", DEADLINE, || d.main_log().contains("handing 1 process(es) over"));
    d.wait_answering();
    assert!(restarts() >= before, "restarts went from {before} to {}", restarts());
}

#[test]
fn a_state_this_binary_cannot_read_means_a_fresh_start() {
    use std::os::fd::AsRawFd;
    use std::os::unix::process::CommandExt;
    let dir = tempfile::tempdir().expect("temp dir");
    let text = format!("{}[program:a]\ncommand=sleep 100000\nstartsecs=0\n", preamble(dir.path()));
    let conf = dir.path().join("corral.conf");
    std::fs::write(&conf, text).expect("write config");
    // What another version might have left: a state in a format this one does not
    // know, and the control socket's listener.
    let state = dir.path().join("state");
    std::fs::write(&state, b"{\"version\": 999}").expect("write state");
    let state = std::fs::File::open(&state).expect("open state");
    let sock = dir.path().join("corral.sock");
    let listener = std::os::unix::net::UnixListener::bind(&sock).expect("bind");
    let (state_fd, listener_fd) = (state.as_raw_fd(), listener.as_raw_fd());
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_corrald"));
    cmd.arg("-c").arg(&conf).args(["--dbus", "none"]).env("CORRAL_REEXEC_FD", "50");
    cmd.stdin(Stdio::null()).stdout(Stdio::null());
    cmd.stderr(Stdio::from(std::fs::File::create(dir.path().join("corrald.stderr")).expect("stderr file")));
    // SAFETY: dup2 is async-signal-safe; both descriptors are open in the parent.
    unsafe {
        cmd.pre_exec(move || {
            if libc::dup2(state_fd, 50) < 0 || libc::dup2(listener_fd, 51) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let child = cmd.spawn().expect("spawn corrald");
    drop((state, listener));
    let d = Daemon { child: Some(child), dir, conf, sock };
    d.wait_answering();
    d.wait_state("a", "RUNNING");
    let stderr = std::fs::read_to_string(d.path("corrald.stderr")).unwrap_or_default();
    assert!(
        stderr.contains("version 999 is not supported") && stderr.contains("starting afresh"),
        "{stderr}"
    );
}

/// Inode of the socket listening on 127.0.0.1:`port` (from /proc/net/tcp).
fn listening_inode(port: u16) -> Option<String> {
    let table = std::fs::read_to_string("/proc/net/tcp").ok()?;
    let local = format!("0100007F:{port:04X}");
    table.lines().skip(1).find_map(|l| {
        let f: Vec<&str> = l.split_whitespace().collect();
        (f.get(1) == Some(&local.as_str()) && f.get(3) == Some(&"0A"))
            .then(|| f.get(9).map(|s| s.to_string()))?
    })
}

#[test]
fn the_http_listeners_are_the_same_sockets_after_a_reexec() {
    let port = free_port();
    let d = Daemon::start(&format!(
        "[inet_http_server]\nport=127.0.0.1:{port}\nmetrics_auth=false\n\n[program:a]\ncommand=sleep 100000\nstartsecs=0\n"
    ));
    d.wait_state("a", "RUNNING");
    let before = listening_inode(port).expect("a listening socket");
    let unix_before = std::fs::metadata(&d.sock).expect("socket file").ino();
    assert_eq!(d.call("corral.reexec", vec![]), Value::Boolean(true));
    wait_for("the re-exec to finish", DEADLINE, || d.main_log().contains("adopted 1 running process(es)"));
    d.wait_answering();
    assert_eq!(listening_inode(port), Some(before), "the TCP listener was handed over, not bound again");
    assert_eq!(std::fs::metadata(&d.sock).expect("socket file").ino(), unix_before);
    let page = http(port, "GET", "/metrics", &[], b"");
    assert_eq!(page.status, 200, "{}", page.text());
}

#[test]
fn a_backoff_in_progress_goes_on_counting_across_a_reexec() {
    let d = Daemon::start("[program:flaky]\ncommand=sh -c 'exit 1'\nstartsecs=1\nstartretries=2\n");
    d.wait_state("flaky", "BACKOFF");
    assert_eq!(d.call("corral.reexec", vec![]), Value::Boolean(true));
    // The pending retry fires in the new daemon, and the count goes on: FATAL after
    // exactly startretries + 1 spawns, not a fresh series.
    d.wait_state("flaky", "FATAL");
    let log = d.main_log();
    assert!(log.contains("handing 1 process(es) over"), "{log}");
    assert_eq!(log.matches("spawned: 'flaky'").count(), 3, "{log}");
}

#[test]
fn health_checks_go_on_after_a_reexec() {
    let dir = tempfile::tempdir().expect("tempdir");
    let marker = dir.path().join("healthy");
    std::fs::write(&marker, "").expect("marker");
    let text = format!(
        "{}[program:svc]\ncommand=sleep 1000\nstartsecs=0\nhealthcheck=file:{}\nhealthcheck_interval=1\n\
         healthcheck_retries=1\nhealthcheck_action=none\n",
        preamble(dir.path()),
        marker.display()
    );
    let d = Daemon::start_with(dir, &text);
    d.wait_state("svc", "RUNNING");
    let pid = d.pid("svc");
    assert_eq!(d.call("corral.reexec", vec![]), Value::Boolean(true));
    wait_for("the re-exec to finish", DEADLINE, || d.main_log().contains("handing 1 process(es) over"));
    d.wait_answering();
    std::fs::remove_file(&marker).expect("remove marker");
    let description = || str_of(&d.info("svc")["description"]);
    wait_for("the resumed health check to notice", DEADLINE, || description().contains("unhealthy"));
    assert_eq!(d.pid("svc"), pid, "a failing check with action none restarted the program");
}

#[test]
fn stdin_a_program_has_not_read_yet_is_carried_across_a_reexec_in_order() {
    // The program reads nothing until `go` exists: the first write fills its pipe
    // and the rest waits in the daemon's backlog when the re-exec happens.
    let d = Daemon::start(
        "[program:echo]\ncommand=sh -c 'while [ ! -e {dir}/go ]; do sleep 0.05; done; exec cat'\n\
         stdout_logfile={dir}/echo.log\nstartsecs=0\n",
    );
    d.wait_state("echo", "RUNNING");
    let numbered = |from: usize, n: usize| (from..from + n).map(|i| format!("{i:07}\n")).collect::<String>();
    let mut expected = numbered(0, 32 * 1024);
    d.call("supervisor.sendProcessStdin", vec![s("echo"), s(&expected)]);
    for i in 0..50 {
        let line = numbered(32 * 1024 + i, 1);
        d.call("supervisor.sendProcessStdin", vec![s("echo"), s(&line)]);
        expected.push_str(&line);
    }
    assert_eq!(d.call("corral.reexec", vec![]), Value::Boolean(true));
    wait_for("the re-exec to finish", DEADLINE, || d.main_log().contains("adopted 1 running process(es)"));
    d.wait_answering();
    let after = numbered(32 * 1024 + 50, 1);
    d.call("supervisor.sendProcessStdin", vec![s("echo"), s(&after)]);
    expected.push_str(&after);
    std::fs::write(d.path("go"), "").expect("let the program read");
    let log = d.path("echo.log");
    wait_for("everything to come back", DEADLINE, || {
        std::fs::metadata(&log).is_ok_and(|m| m.len() >= expected.len() as u64)
    });
    let got = std::fs::read_to_string(&log).expect("read log");
    assert!(got == expected, "nothing lost or reordered ({} of {} bytes)", got.len(), expected.len());
}

#[test]
fn journal_lines_are_all_sent_around_a_reexec() {
    let dir = tempfile::tempdir().expect("temp dir");
    let journal = DatagramSink::bind(dir.path(), "journal.sock");
    let text = format!(
        "{}[program:counter]\ncommand=sh -c 'i=0; while :; do echo $i; i=$((i+1)); sleep 0.002; done'\n\
         stdout_logfile=journal\nstartsecs=0\n",
        preamble(dir.path())
    );
    let path = journal.path.display().to_string();
    let d = Daemon::spawn_with(dir, &text, &[("CORRAL_JOURNAL_SOCKET", &path)], &[]);
    d.wait_answering();
    d.wait_state("counter", "RUNNING");
    let message = |datagram: &[u8]| -> Option<u64> {
        let text = String::from_utf8_lossy(datagram);
        text.lines().find_map(|l| l.strip_prefix("MESSAGE=")).and_then(|m| m.parse().ok())
    };
    let collect = |lines: &mut Vec<u64>, what: &str, want: usize| {
        while lines.len() < want {
            let d = journal.recv_until(what, |d| message(d).is_some());
            lines.extend(message(&d));
        }
    };
    let mut lines = Vec::new();
    collect(&mut lines, "a few lines", 20);
    assert_eq!(d.call("corral.reexec", vec![]), Value::Boolean(true));
    wait_for("the re-exec to finish", DEADLINE, || d.main_log().contains("adopted 1 running process(es)"));
    let at_reexec = lines.len();
    collect(&mut lines, "lines after the re-exec", at_reexec + 300);
    for pair in lines.windows(2) {
        assert_eq!(pair[1], pair[0] + 1, "no journal line lost or repeated around the re-exec");
    }
}
