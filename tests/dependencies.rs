//! Start dependencies (`requires=`, `after=`) and restart pacing, on a real daemon.
//!
//! Order is read from the activity log, which the engine writes in the order
//! things happen: `spawned: 'a'` after `success: b entered RUNNING` means a was
//! forked only once b was ready.

mod common;

use std::time::Duration;

use common::*;
use corral::ctl::client::ClientError;
use dxr::Value;

/// Position of the first activity log line containing `needle`.
fn log_pos(d: &Daemon, needle: &str) -> Option<usize> {
    d.main_log().lines().position(|l| l.contains(needle))
}

/// Waits until the activity log has `needle`; returns its position.
fn wait_log(d: &Daemon, needle: &str) -> usize {
    wait_for(&format!("log line {needle:?}"), DEADLINE, || log_pos(d, needle).is_some());
    log_pos(d, needle).unwrap_or_default()
}

fn description(d: &Daemon, name: &str) -> String {
    str_of(&d.info(name)["description"])
}

/// A program that takes a second to exit on SIGTERM, so a stop ordered after
/// it visibly waits.
const SLOW_STOP: &str = "sh -c 'trap \"sleep 1; exit 0\" TERM; while :; do sleep 0.1; done'";

#[test]
fn requires_waits_until_the_dependency_is_running_before_spawning() {
    // b is ready only once the test creates its file, so a's wait is seen, not raced.
    let d = Daemon::start(
        "[program:a]\ncommand=sleep 1000\nstartsecs=0\nrequires=b\npriority=1\n\n\
         [program:b]\ncommand=sleep 1000\nready=file:{dir}/b-ready\npriority=2\n",
    );
    wait_for("b to be spawned", DEADLINE, || d.state("b") == "STARTING" && d.pid("b") > 0);
    wait_for("a probe of b's readiness", DEADLINE, || log_pos(&d, "b is not ready yet").is_some());
    // While b is still starting, a has not been spawned and says why.
    assert_eq!(d.state("a"), "STOPPED");
    assert_eq!(description(&d, "a"), "waiting for b");
    assert!(log_pos(&d, "spawned: 'a'").is_none(), "a spawned before b was ready:\n{}", d.main_log());
    assert_eq!(d.state("b"), "STARTING", "b is not ready until its file exists");
    std::fs::write(d.path("b-ready"), b"").expect("create b's readiness file");
    d.wait_state("a", "RUNNING");
    let ready = wait_log(&d, "success: b entered RUNNING state");
    let spawned = wait_log(&d, "spawned: 'a'");
    assert!(ready < spawned, "a spawned before b was ready:\n{}", d.main_log());
}

#[test]
fn starting_a_program_starts_what_it_requires_first() {
    let d = Daemon::start(
        "[program:a]\ncommand=sleep 1000\nstartsecs=0\nautostart=false\nrequires=b\n\n\
         [program:b]\ncommand=sleep 1000\nstartsecs=1\nautostart=false\n",
    );
    assert_eq!(d.call("supervisor.startProcess", vec![s("a"), Value::Boolean(true)]), Value::Boolean(true));
    assert_eq!(d.state("a"), "RUNNING", "startProcess(wait) answers once a runs");
    assert_eq!(d.state("b"), "RUNNING");
    assert!(wait_log(&d, "success: b entered RUNNING state") < wait_log(&d, "spawned: 'a'"));
}

#[test]
fn stopping_a_dependency_stops_what_requires_it_first() {
    let d = Daemon::start(&format!(
        "[program:a]\ncommand={SLOW_STOP}\nstartsecs=0\nrequires=b\n\n\
         [program:b]\ncommand=sleep 1000\nstartsecs=0\n\n\
         [program:c]\ncommand=sleep 1000\nstartsecs=0\nafter=b\n"
    ));
    for p in ["a", "b", "c"] {
        d.wait_state(p, "RUNNING");
    }
    assert_eq!(d.call("supervisor.stopProcess", vec![s("b"), Value::Boolean(true)]), Value::Boolean(true));
    assert_eq!(d.state("b"), "STOPPED");
    assert_eq!(d.state("a"), "STOPPED", "a requires b, so it is stopped too");
    assert_eq!(d.state("c"), "RUNNING", "after= only orders: c keeps running");
    let a_stopped = wait_log(&d, "stopped: a (");
    let b_killed = wait_log(&d, "killing b (pid");
    assert!(a_stopped < b_killed, "b was signalled before a stopped:\n{}", d.main_log());
}

#[test]
fn shutdown_stops_dependents_before_their_dependencies_whatever_the_priority() {
    // By priority alone b (999) would stop first; a requires b, so a stops first.
    let mut d = Daemon::start(&format!(
        "[program:a]\ncommand={SLOW_STOP}\nstartsecs=0\nrequires=b\npriority=1\n\n\
         [program:b]\ncommand=sleep 1000\nstartsecs=0\npriority=999\n"
    ));
    d.wait_state("a", "RUNNING");
    d.wait_state("b", "RUNNING");
    d.call("supervisor.shutdown", vec![]);
    d.wait_exit();
    let log = d.main_log();
    let pos = |needle: &str| log.lines().position(|l| l.contains(needle));
    let (a_stopped, b_killed) = (pos("stopped: a ("), pos("killing b (pid"));
    assert!(a_stopped.is_some() && b_killed.is_some(), "{log}");
    assert!(a_stopped < b_killed, "b was signalled before a stopped:\n{log}");
}

#[test]
fn after_orders_without_pulling_in_or_gating() {
    let d = Daemon::start(
        "[program:a]\ncommand=sleep 1000\nstartsecs=0\nafter=b,c\npriority=1\n\n\
         [program:b]\ncommand=sleep 1000\nstartsecs=2\npriority=2\n\n\
         [program:c]\ncommand=sleep 1000\nautostart=false\n",
    );
    d.wait_state("a", "RUNNING");
    assert!(
        wait_log(&d, "success: b entered RUNNING state") < wait_log(&d, "spawned: 'a'"),
        "a waits for b, which was starting too"
    );
    assert_eq!(d.state("c"), "STOPPED", "after= never starts c");
    // Later starts do not wait for a stopped after= dependency either.
    d.call("supervisor.stopProcess", vec![s("b")]);
    d.call("supervisor.stopProcess", vec![s("a")]);
    assert_eq!(d.call("supervisor.startProcess", vec![s("a")]), Value::Boolean(true));
    d.wait_state("a", "RUNNING");
    assert_eq!(d.state("b"), "STOPPED");
}

#[test]
fn a_group_dependency_waits_for_every_member() {
    let d = Daemon::start(
        "[program:web]\ncommand=sleep 1000\nstartsecs=0\nrequires=backend:*\npriority=1\n\n\
         [program:db]\ncommand=sleep 1000\nstartsecs=1\n\n\
         [program:cache]\ncommand=sleep 1000\nstartsecs=2\n\n\
         [group:backend]\nprograms=db,cache\n",
    );
    d.wait_state("web", "RUNNING");
    let spawned = wait_log(&d, "spawned: 'web'");
    assert!(wait_log(&d, "success: db entered RUNNING state") < spawned);
    assert!(wait_log(&d, "success: cache entered RUNNING state") < spawned);
}

#[test]
fn a_failed_dependency_leaves_its_dependents_stopped_with_the_reason() {
    let d = Daemon::start(
        "[program:a]\ncommand=sleep 1000\nstartsecs=0\nrequires=b\n\n\
         [program:b]\ncommand=/bin/false\nstartsecs=1\nstartretries=0\n\n\
         [program:c]\ncommand=sleep 1000\nstartsecs=0\nrequires=a\n",
    );
    d.wait_state("b", "FATAL");
    wait_for("a to give up", DEADLINE, || description(&d, "a") == "dependency b failed (FATAL)");
    assert_eq!(d.state("a"), "STOPPED");
    wait_for("c to give up", DEADLINE, || {
        description(&d, "c") == "dependency a not started: dependency b failed (FATAL)"
    });
    assert_eq!(d.state("c"), "STOPPED");
    assert!(log_pos(&d, "spawned: 'a'").is_none(), "a never starts:\n{}", d.main_log());

    // startProcess(wait) retries b and fails with the reason instead of hanging.
    match d.try_call("supervisor.startProcess", vec![s("a"), Value::Boolean(true)]) {
        Err(ClientError::Fault { code, text }) => {
            assert_eq!(code, 50, "SPAWN_ERROR");
            assert_eq!(text, "SPAWN_ERROR: a: dependency b failed (FATAL)");
        }
        other => panic!("expected a SPAWN_ERROR fault, got {other:?}"),
    }
    assert_eq!(d.state("a"), "STOPPED");
}

/// Activity log timestamps of the lines containing `needle`, in order.
fn log_times(d: &Daemon, needle: &str) -> Vec<chrono::NaiveDateTime> {
    d.main_log()
        .lines()
        .filter(|l| l.contains(needle))
        .filter_map(|l| chrono::NaiveDateTime::parse_from_str(l.get(..23)?, "%Y-%m-%d %H:%M:%S,%3f").ok())
        .collect()
}

#[test]
fn exponential_backoff_paces_a_program_that_keeps_crashing_from_running() {
    // Each run lasts 0.2 s and crashes.
    let d = Daemon::start(
        "[program:crashy]\ncommand=sh -c 'sleep 0.2; exit 3'\n\
         startsecs=0\nautorestart=true\nbackoff=exponential\nbackoff_reset=60\n",
    );
    wait_for("four starts", Duration::from_secs(60), || log_times(&d, "spawned: 'crashy'").len() >= 4);
    d.call("supervisor.stopProcess", vec![s("crashy")]);
    // Each wait runs from an exit to the next spawn, both as the daemon logged them.
    let (spawned, exited) = (log_times(&d, "spawned: 'crashy'"), log_times(&d, "exited: crashy ("));
    assert!(exited.len() >= 3, "{}", d.main_log());
    let waits: Vec<f64> =
        (0..3).map(|i| (spawned[i + 1] - exited[i]).num_milliseconds() as f64 / 1000.0).collect();
    // 1 s, 2 s, then 4 s (linear would be 3 s): never sooner (a restart never comes
    // before its deadline; the margin covers the log's millisecond stamps).
    for (wait, at_least) in waits.iter().zip([1.0, 2.0, 4.0]) {
        assert!(*wait >= at_least - 0.05, "waits {waits:?}: expected 1 s, 2 s, 4 s at least");
    }
}

#[test]
fn the_start_rate_limit_stops_a_crash_loop_in_fatal_saying_why() {
    let d = Daemon::start(
        "[program:loop]\ncommand=sh -c 'exit 1'\nstartsecs=0\nautorestart=true\n\
         start_limit_burst=3\nstart_limit_interval=60\n",
    );
    d.wait_state("loop", "FATAL");
    assert_eq!(description(&d, "loop"), "start rate limit reached: 3 starts within 60 seconds");
}

#[test]
fn a_program_dependency_means_all_of_its_numprocs() {
    let d = Daemon::start(
        "[program:a]\ncommand=sleep 1000\nstartsecs=0\nrequires=w\n\n\
         [program:w]\ncommand=sleep 1000\nstartsecs=1\nnumprocs=2\nprocess_name=w_%(process_num)s\n",
    );
    d.wait_state("a", "RUNNING");
    let spawned = wait_log(&d, "spawned: 'a'");
    assert!(wait_log(&d, "success: w_0 entered RUNNING state") < spawned);
    assert!(wait_log(&d, "success: w_1 entered RUNNING state") < spawned);
}

#[test]
fn stopping_a_waiting_program_withdraws_its_start() {
    let d = Daemon::start(
        "[program:a]\ncommand=sleep 1000\nstartsecs=0\nautostart=false\nrequires=b\n\n\
         [program:b]\ncommand=sleep 1000\nstartsecs=5\nautostart=false\n",
    );
    assert_eq!(d.call("supervisor.startProcess", vec![s("a"), Value::Boolean(false)]), Value::Boolean(true));
    assert_eq!(d.state("b"), "STARTING", "a's start pulled b in");
    assert_eq!(description(&d, "a"), "waiting for b");
    assert_eq!(d.call("supervisor.stopProcess", vec![s("a")]), Value::Boolean(true));
    d.wait_state("b", "RUNNING");
    assert_eq!(d.state("a"), "STOPPED");
    assert!(log_pos(&d, "spawned: 'a'").is_none(), "a never starts:\n{}", d.main_log());
}
