//! Liveness health checks (`healthcheck=`) and the watchdog (`watchdog_sec=`):
//! failures show in status and events, and the configured action runs.

mod common;

use common::*;

fn helper(args: &str) -> String {
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/ready/helper.py");
    format!("python3 {} {args}", script.display())
}

fn description(d: &Daemon, name: &str) -> String {
    str_of(&d.info(name)["description"])
}

/// An event listener (tests/fixtures/ready/listener.py) that appends every
/// CORRAL_PROCESS_UNHEALTHY event to `<dir>/events`.
fn listener_section() -> String {
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/ready/listener.py");
    format!(
        "[eventlistener:watch]\ncommand=python3 {} {{dir}}/events\nevents=CORRAL_PROCESS_UNHEALTHY\n",
        script.display()
    )
}

fn events(d: &Daemon) -> String {
    std::fs::read_to_string(d.path("events")).unwrap_or_default()
}

#[test]
fn failing_http_check_restarts_the_program_and_sends_an_event() {
    let port = free_port();
    // Ready once it serves 200, so the checks only ever see a serving program.
    let d = Daemon::start(&format!(
        "[program:api]\ncommand={}\nready=http://127.0.0.1:{port}/\nhealthcheck=http://127.0.0.1:{port}/\n\
         healthcheck_interval=200ms\nhealthcheck_retries=2\n\n{}",
        helper(&format!("http {{dir}} {port}")),
        listener_section()
    ));
    std::fs::write(d.path("go"), b"").unwrap();
    d.wait_state("api", "RUNNING");
    d.wait_state("watch", "RUNNING");
    let first = d.pid("api");
    std::fs::remove_file(d.path("go")).unwrap();
    wait_for("the event", DEADLINE, || events(&d).contains("eventname:CORRAL_PROCESS_UNHEALTHY"));
    let ev = events(&d);
    assert!(
        ev.contains(&format!("processname:api groupname:api pid:{first}\nhttp://127.0.0.1:{port}/")),
        "{ev}"
    );
    assert!(ev.contains("503"), "{ev}");
    assert!(d.main_log().contains("api is unhealthy"));
    std::fs::write(d.path("go"), b"").unwrap();
    wait_for("a restart", DEADLINE, || d.state("api") == "RUNNING" && d.pid("api") != first);
    assert!(!alive(first));
}

#[test]
fn failing_tcp_check_with_action_stop_stops_the_program() {
    let port = free_port();
    // Ready once it listens; it listens until the test removes the flag, so
    // RUNNING lasts as long as the test wants.
    let d = Daemon::start(&format!(
        "[program:db]\ncommand={}\nready=tcp:127.0.0.1:{port}\nhealthcheck=tcp:127.0.0.1:{port}\n\
         healthcheck_interval=200ms\nhealthcheck_retries=1\nhealthcheck_action=stop\n",
        helper(&format!("tcp {{dir}} {port}"))
    ));
    std::fs::write(d.path("go"), b"").unwrap();
    d.wait_state("db", "RUNNING");
    let pid = d.pid("db");
    std::fs::remove_file(d.path("go")).unwrap();
    // Nothing listens: the next check fails and the program is stopped, not restarted.
    d.wait_state("db", "STOPPED");
    assert!(!alive(pid));
    assert!(d.main_log().contains("db is unhealthy: tcp:127.0.0.1"), "{}", d.main_log());
    // The status still says why it was stopped (after supervisord's stop time).
    let desc = description(&d, "db");
    assert!(desc.contains(&format!(", unhealthy: tcp:127.0.0.1:{port}: ")), "{desc}");
}

/// A program that takes a second to exit on SIGTERM, so a stop ordered after
/// it visibly waits.
const SLOW_STOP: &str = "sh -c 'trap \"sleep 1; exit 0\" TERM; while :; do sleep 0.1; done'";

#[test]
fn a_health_check_stop_stops_what_requires_the_program_first() {
    // db is healthy until the test creates {dir}/sick; web requires it, other only comes after it.
    let d = Daemon::start(&format!(
        "[program:web]\ncommand={SLOW_STOP}\nstartsecs=0\nrequires=db\n\n\
         [program:db]\ncommand=sleep 1000\nstartsecs=0\nhealthcheck=exec:test ! -e {{dir}}/sick\n\
         healthcheck_interval=200ms\nhealthcheck_retries=1\nhealthcheck_action=stop\n\n\
         [program:other]\ncommand=sleep 1000\nstartsecs=0\nafter=db\n"
    ));
    for p in ["web", "db", "other"] {
        d.wait_state(p, "RUNNING");
    }
    std::fs::write(d.path("sick"), b"").unwrap();
    // As `stop db` would: web, which requires db, stops first; then db.
    d.wait_state("db", "STOPPED");
    assert_eq!(d.state("web"), "STOPPED", "web requires db, so it is stopped too");
    assert_eq!(d.state("other"), "RUNNING", "after= only orders: other keeps running");
    let log = d.main_log();
    let pos = |needle: &str| log.lines().position(|l| l.contains(needle));
    let (web_stopped, db_killed) = (pos("stopped: web ("), pos("killing db (pid"));
    assert!(web_stopped.is_some() && db_killed.is_some(), "{log}");
    assert!(web_stopped < db_killed, "db was signalled before web stopped:\n{log}");
    assert!(description(&d, "db").contains(", unhealthy: exec:test ! -e"), "{}", description(&d, "db"));
}

#[test]
fn a_paced_restart_after_a_failed_check_says_why_while_it_waits() {
    // The check fails on every run; with backoff= each restart waits longer (1 s, 2 s, 4 s…).
    let d = Daemon::start(
        "[program:w]\ncommand=sleep 1000\nstartsecs=0\nhealthcheck=exec:test -e {dir}/healthy\n\
         healthcheck_interval=200ms\nhealthcheck_retries=1\nbackoff=exponential\n",
    );
    // The waits grow, so BACKOFF is seen however slow the machine is.
    wait_for("a paced restart saying why", DEADLINE, || {
        let info = d.info("w");
        str_of(&info["statename"]) == "BACKOFF"
            && str_of(&info["description"])
                .starts_with("exited (terminated by SIGKILL; unhealthy: exec:test -e ")
    });
}

#[test]
fn the_reason_for_a_health_restart_stays_until_the_next_successful_start() {
    // Ready and healthy while both files exist; a restart without {dir}/ready stays STARTING.
    let d = Daemon::start(
        "[program:w]\ncommand=sleep 1000\nready=file:{dir}/ready\nhealthcheck=exec:test -e {dir}/healthy\n\
         healthcheck_interval=200ms\nhealthcheck_retries=1\n",
    );
    std::fs::write(d.path("healthy"), b"").unwrap();
    std::fs::write(d.path("ready"), b"").unwrap();
    d.wait_state("w", "RUNNING");
    let first = d.pid("w");
    std::fs::remove_file(d.path("ready")).unwrap();
    std::fs::remove_file(d.path("healthy")).unwrap();
    wait_for("the restart", DEADLINE, || d.state("w") == "STARTING" && d.pid("w") != first);
    assert!(!description(&d, "w").contains("unhealthy"), "a new run: {}", description(&d, "w"));
    // Stopped before it was ever ready again: the status still says why it was restarted.
    d.call("supervisor.stopProcess", vec![s("w")]);
    assert_eq!(d.state("w"), "STOPPED");
    assert!(description(&d, "w").contains(", unhealthy: exec:test -e "), "{}", description(&d, "w"));
    // A successful start clears it.
    std::fs::write(d.path("healthy"), b"").unwrap();
    std::fs::write(d.path("ready"), b"").unwrap();
    d.call("supervisor.startProcess", vec![s("w")]);
    assert_eq!(d.state("w"), "RUNNING");
    assert!(!description(&d, "w").contains("unhealthy"), "{}", description(&d, "w"));
}

#[test]
fn failing_exec_check_with_action_none_only_reports_until_it_passes_again() {
    let d = Daemon::start(
        "[program:w]\ncommand=sleep 1000\nstartsecs=0\nhealthcheck=exec:test -e {dir}/healthy\n\
         healthcheck_interval=200ms\nhealthcheck_retries=2\nhealthcheck_action=none\n",
    );
    d.wait_state("w", "RUNNING");
    let pid = d.pid("w");
    wait_for("unhealthy in the status", DEADLINE, || {
        description(&d, "w").contains(", unhealthy: exec:test -e")
    });
    assert!(description(&d, "w").contains("exit status 1"), "{}", description(&d, "w"));
    std::fs::write(d.path("healthy"), b"").unwrap();
    wait_for("healthy again", DEADLINE, || !description(&d, "w").contains("unhealthy"));
    assert_eq!((d.state("w"), d.pid("w")), ("RUNNING".to_string(), pid), "never restarted");
}

#[test]
fn an_exec_check_that_hangs_fails_at_its_timeout() {
    let d = Daemon::start(
        "[program:w]\ncommand=sleep 1000\nstartsecs=0\nhealthcheck=exec:sleep 1000\n\
         healthcheck_interval=200ms\nhealthcheck_timeout=300ms\nhealthcheck_retries=1\nhealthcheck_action=none\n",
    );
    wait_for("the timeout in the status", DEADLINE, || {
        description(&d, "w").contains("unhealthy: exec:sleep 1000 timed out")
    });
}

#[test]
fn a_missed_watchdog_kills_and_restarts_reported_as_watchdog() {
    let d = Daemon::start(&format!(
        "[program:dog]\ncommand={}\nready=notify\nwatchdog_sec=1\n\n{}",
        helper("notify {dir}"),
        listener_section()
    ));
    std::fs::write(d.path("ping"), b"").unwrap();
    std::fs::write(d.path("go"), b"").unwrap();
    d.wait_state("dog", "RUNNING");
    d.wait_state("watch", "RUNNING");
    let first = d.pid("dog");
    // Pinging: it stays up well past its watchdog interval.
    wait_for("several pings", DEADLINE, || {
        int_of(&d.info("dog")["now"]) - int_of(&d.info("dog")["start"]) >= 3
    });
    assert_eq!(d.pid("dog"), first);
    std::fs::remove_file(d.path("ping")).unwrap();
    wait_for("a restart", DEADLINE, || d.state("dog") == "RUNNING" && d.pid("dog") != first);
    assert!(!alive(first));
    wait_for("the event", DEADLINE, || events(&d).contains("watchdog: no WATCHDOG=1 within 1 s"));
    assert!(d.main_log().contains("dog is unhealthy: watchdog: no WATCHDOG=1 within 1 s"));
}
