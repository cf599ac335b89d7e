//! sd_notify: corrald tells a service manager (here, a socket the test owns)
//! when it is ready, how its programs are doing, and when it reloads or stops.

mod common;

use std::time::Duration;

use common::*;

fn text(d: &[u8]) -> String {
    String::from_utf8_lossy(d).into_owned()
}

fn states(d: &Daemon) -> Vec<String> {
    array_of(d.call("supervisor.getAllProcessInfo", vec![]))
        .into_iter()
        .map(|v| str_of(&struct_of(v)["statename"]))
        .collect()
}

#[test]
fn ready_status_reloading_and_stopping_reach_the_notify_socket() {
    let dir = tempfile::tempdir().expect("temp dir");
    let notify = DatagramSink::bind(dir.path(), "notify.sock");
    let d = dir.path().display().to_string();
    let text_conf = format!(
        "{}[program:envdump]\ncommand=/bin/sh -c 'env > {d}/envdump.env; exec sleep 1000'\nstartsecs=0\npriority=1\n\n\
         [program:slow]\ncommand=sleep 1000\nstartsecs=1\npriority=2\n\n\
         [program:broken]\ncommand=/bin/sh -c 'exit 3'\nstartsecs=1\nstartretries=0\npriority=3\n\n\
         [program:manual]\ncommand=sleep 1000\nautostart=false\n",
        preamble(dir.path())
    );
    let notify_path = notify.path.display().to_string();
    let mut daemon = Daemon::spawn_with(dir, &text_conf, &[("NOTIFY_SOCKET", &notify_path)], &[]);

    let ready = notify.recv_until("READY=1", |m| text(m).lines().any(|l| l == "READY=1"));
    // By READY every autostart program has been spawned; only `manual` is still STOPPED.
    let stopped = states(&daemon).iter().filter(|s| *s == "STOPPED").count();
    assert_eq!(stopped, 1, "{:?} at {}", states(&daemon), text(&ready));
    assert!(text(&ready).contains("STATUS="), "{}", text(&ready));

    notify.recv_until("STATUS with the settled counts", |m| {
        text(m).lines().any(|l| l == "STATUS=2 running, 1 stopped, 1 fatal")
    });

    // Children never see the daemon's notify socket.
    let env_file = daemon.path("envdump.env");
    wait_for("envdump to write its environment", DEADLINE, || env_file.exists());
    let env = std::fs::read_to_string(&env_file).expect("read env dump");
    assert!(env.contains("SUPERVISOR_PROCESS_NAME=envdump"), "{env}");
    assert!(!env.contains("NOTIFY_SOCKET"), "{env}");

    daemon.signal(nix::sys::signal::Signal::SIGHUP);
    let reloading = text(&notify.recv_until("RELOADING=1", |m| text(m).starts_with("RELOADING=1\n")));
    let usec = reloading
        .lines()
        .find_map(|l| l.strip_prefix("MONOTONIC_USEC="))
        .and_then(|v| v.parse::<u64>().ok())
        .unwrap_or_else(|| panic!("no MONOTONIC_USEC in {reloading:?}"));
    assert!(usec > 0);
    notify.recv_until("READY=1 after the reload", |m| text(m).lines().any(|l| l == "READY=1"));

    daemon.signal(nix::sys::signal::Signal::SIGTERM);
    notify.recv_until("STOPPING=1", |m| text(m).lines().any(|l| l == "STOPPING=1"));
    assert_eq!(daemon.wait_exit(), Some(0));
}

#[test]
fn without_notify_socket_nothing_is_sent_and_programs_start() {
    let dir = tempfile::tempdir().expect("temp dir");
    let text_conf = format!("{}[program:a]\ncommand=sleep 1000\nstartsecs=0\n", preamble(dir.path()));
    let daemon = Daemon::spawn_with(dir, &text_conf, &[], &[]);
    daemon.wait_answering();
    daemon.wait_state("a", "RUNNING");
    assert!(!daemon.main_log().contains("NOTIFY_SOCKET"), "{}", daemon.main_log());
}

#[test]
fn an_unreachable_notify_socket_is_a_warning_not_a_failure() {
    let dir = tempfile::tempdir().expect("temp dir");
    let missing = dir.path().join("nobody-listens").display().to_string();
    let text_conf = format!("{}[program:a]\ncommand=sleep 1000\nstartsecs=0\n", preamble(dir.path()));
    let daemon = Daemon::spawn_with(dir, &text_conf, &[("NOTIFY_SOCKET", &missing)], &[]);
    daemon.wait_answering();
    daemon.wait_state("a", "RUNNING");
    wait_for("the failed send to be logged", Duration::from_secs(10), || {
        daemon.main_log().contains("sending to NOTIFY_SOCKET")
    });
}
