//! corrald as PID 1 of a new PID namespace (a container's init): orphans are
//! reaped and SIGTERM ends it with status 0.

mod common;

use std::time::Duration;

use common::*;

/// Host pids of the processes in the same PID namespace as `pid`, with their state letter.
fn namespace_members(pid: i32) -> Vec<(i32, char)> {
    let Ok(ns) = std::fs::read_link(format!("/proc/{pid}/ns/pid")) else { return Vec::new() };
    let Ok(entries) = std::fs::read_dir("/proc") else { return Vec::new() };
    entries
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i32>().ok())
        .filter(|p| std::fs::read_link(format!("/proc/{p}/ns/pid")).ok().as_ref() == Some(&ns))
        .filter_map(|p| {
            let stat = std::fs::read_to_string(format!("/proc/{p}/stat")).ok()?;
            let state = stat.rsplit(')').next()?.trim_start().chars().next()?;
            Some((p, state))
        })
        .collect()
}

/// The host pid of unshare's forked child (corrald, PID 1 inside).
fn child_of(pid: i32) -> Option<i32> {
    let children = std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children")).ok()?;
    children.split_whitespace().next()?.parse().ok()
}

#[test]
fn as_pid1_orphans_are_reaped_and_sigterm_exits_zero() {
    if !can_unshare() {
        skip("needs root for a PID namespace (unshare --pid)");
        return;
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let d = dir.path().display().to_string();
    // Each `( … & )` subshell exits at once, so its sleep is orphaned to PID 1 and
    // exits shortly after: only PID 1 can reap it.
    let text = format!(
        "{}[program:orphaner]\n\
         command=/bin/sh -c 'for i in 1 2 3 4 5; do (sleep 0.3 &); done; touch {d}/forked; exec sleep 1000'\n\
         startsecs=0\n",
        preamble(dir.path())
    );
    let mut daemon = Daemon::spawn_with(dir, &text, &[], &["unshare", "--pid", "--fork", "--mount-proc"]);
    daemon.wait_answering();
    daemon.wait_state("orphaner", "RUNNING");
    let unshare = daemon.daemon_pid();
    let corrald = child_of(unshare).expect("corrald runs under unshare");
    let inner = std::fs::read_to_string(format!("/proc/{corrald}/status")).expect("status");
    assert!(inner.lines().any(|l| l.starts_with("NSpid:") && l.trim_end().ends_with("\t1")), "{inner}");
    assert_eq!(daemon.call("supervisor.getPID", vec![]), dxr::Value::Integer(1));

    wait_for("the orphans to be forked", DEADLINE, || daemon.path("forked").exists());
    // Left: corrald and the program's `sleep 1000`; no zombie, no orphan.
    wait_for("every orphan to be reaped", DEADLINE, || {
        let members = namespace_members(corrald);
        members.len() == 2 && members.iter().all(|(_, s)| *s != 'Z')
    });
    std::thread::sleep(Duration::from_millis(200));
    assert!(namespace_members(corrald).iter().all(|(_, s)| *s != 'Z'));

    // unshare --fork exits with its child's status.
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(corrald), nix::sys::signal::Signal::SIGTERM)
        .expect("SIGTERM corrald");
    assert_eq!(daemon.wait_exit(), Some(0));
}
