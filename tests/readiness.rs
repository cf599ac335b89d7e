//! Readiness (`ready=`): a program is RUNNING only once it is ready, whichever
//! way it says so; not ready in time is a failed start that leaves nothing behind.

mod common;

use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::{SocketAddr, UnixDatagram};

use common::*;

/// The test program (tests/fixtures/ready/helper.py) run with `mode` and its arguments.
fn helper(args: &str) -> String {
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/ready/helper.py");
    format!("python3 {} {args}", script.display())
}

fn description(d: &Daemon, name: &str) -> String {
    str_of(&d.info(name)["description"])
}

fn touch(d: &Daemon, name: &str) {
    std::fs::write(d.path(name), b"").expect("create flag file");
}

/// STARTING with a pid, i.e. spawned and waiting to be ready.
fn wait_spawned(d: &Daemon, name: &str) {
    wait_for("the program to be spawned", DEADLINE, || d.state(name) == "STARTING" && d.pid(name) > 0);
}

#[test]
fn notify_ready_makes_running_and_status_text_shows_in_status() {
    // Through a shell that forks python: the notifier is not the main pid, only in its cgroup.
    let d = Daemon::start(&format!(
        "[program:web]\ncommand=/bin/sh -c '{}; true'\nready=notify\nstartsecs=0\n",
        helper("notify {dir}")
    ));
    if str_of(&d.call("corral.getCgroupMode", vec![])) == "none" {
        // Without cgroups only the main pid's messages count; the other notify tests send from it.
        return skip("a notifier other than the main pid is known by its cgroup, and there are none here");
    }
    wait_spawned(&d, "web");
    wait_for("the STATUS= text while starting", DEADLINE, || description(&d, "web") == "status: warming up");
    // Anyone else's READY=1 is not the program's: rejected, and said so.
    let ident =
        format!("test-{}", d.dir.path().file_name().unwrap().to_str().unwrap().trim_start_matches('.'));
    let name = format!("corral/{ident}/{}/notify", d.daemon_pid());
    let addr = SocketAddr::from_abstract_name(name.as_bytes()).expect("abstract address");
    UnixDatagram::unbound()
        .unwrap()
        .send_to_addr(b"READY=1", &addr)
        .expect("send to corrald's notify socket");
    wait_for("the rejection in the log", DEADLINE, || {
        d.main_log().contains("ignoring a notify message from pid")
    });
    assert_eq!(d.state("web"), "STARTING");

    touch(&d, "go");
    d.wait_state("web", "RUNNING");
    wait_for("the new STATUS= text", DEADLINE, || description(&d, "web").ends_with(", status: serving"));
    assert!(description(&d, "web").starts_with("pid "), "{}", description(&d, "web"));
    assert!(d
        .main_log()
        .contains("success: web entered RUNNING state, process reported READY=1 (ready=notify)"));
}

#[test]
fn notify_extend_timeout_reloading_and_stopping_show_as_documented() {
    // ready_timeout=3, but the program asks for 60 s more at once (EXTEND_TIMEOUT_USEC=).
    let d = Daemon::start(&format!(
        "[program:svc]\ncommand={}\nready=notify\nready_timeout=3\n",
        helper("extend {dir}")
    ));
    wait_spawned(&d, "svc");
    let pid = d.pid("svc");
    // Still the same STARTING process well past its ready timeout, by the daemon's own clock.
    wait_for("5 s past the start", DEADLINE, || {
        let info = d.info("svc");
        let now = (str_of(&info["statename"]), int_of(&info["pid"]));
        assert_eq!(now, ("STARTING".to_string(), pid), "{}", d.main_log());
        int_of(&info["now"]) - int_of(&info["start"]) >= 6
    });
    assert!(!d.main_log().contains("not ready within"), "{}", d.main_log());
    touch(&d, "go");
    d.wait_state("svc", "RUNNING");
    assert_eq!(d.pid("svc"), pid);
    // RELOADING=1 shows until the next READY=1.
    touch(&d, "reload");
    wait_for("reloading in the status", DEADLINE, || description(&d, "svc").ends_with(", reloading"));
    touch(&d, "reloaded");
    wait_for("reloading gone", DEADLINE, || !description(&d, "svc").contains("reloading"));
    // STOPPING=1 shows too; the state stays RUNNING until the program exits.
    touch(&d, "stop");
    wait_for("stopping in the status", DEADLINE, || description(&d, "svc").ends_with(", stopping"));
    assert_eq!((d.state("svc"), d.pid("svc")), ("RUNNING".to_string(), pid));
    assert!(description(&d, "svc").starts_with(&format!("pid {pid}, uptime ")), "{}", description(&d, "svc"));
}

#[test]
fn closing_the_readiness_fd_without_a_newline_is_a_failed_start_at_once() {
    // The ready timeout (90 s) is beyond the test's deadline: only the closed fd can end the start.
    let d = Daemon::start(
        "[program:s6]\ncommand=/bin/sh -c 'exec 3>&-; exec sleep 1000'\nready=fd:3\nstartretries=0\n",
    );
    d.wait_state("s6", "FATAL");
    let info = d.info("s6");
    assert_eq!(str_of(&info["spawnerr"]), "closed fd 3 without writing a newline (ready=fd:3)");
    assert_eq!(str_of(&info["description"]), "closed fd 3 without writing a newline (ready=fd:3)");
    assert!(d.main_log().contains("killing 's6'"), "{}", d.main_log());
}

#[test]
fn not_ready_in_time_is_a_failed_start_and_kills_the_whole_cgroup() {
    let d = Daemon::start(
        "[program:slow]\ncommand=/bin/sh -c 'sleep 1000 & echo $! > {dir}/child.pid; wait'\n\
         ready=notify\nready_timeout=1\nstartretries=0\n",
    );
    d.wait_state("slow", "FATAL");
    let pid: i64 = std::fs::read_to_string(d.path("child.pid")).unwrap().trim().parse().unwrap();
    assert!(!alive(pid), "the program's own child was killed too");
    assert!(d.main_log().contains("not ready within 1 s"), "{}", d.main_log());
    let info = d.info("slow");
    assert_eq!(str_of(&info["spawnerr"]), "not ready within 1 s");
}

#[test]
fn fd_readiness_waits_for_a_newline_on_the_descriptor() {
    // fd 3 is taken in the daemon, fd 200 is free there: both reach the child.
    let d = Daemon::start(&format!(
        "[program:s6]\ncommand={}\nready=fd:3\n\n[program:high]\ncommand={}\nready=fd:200\n",
        helper("fd {dir} 3"),
        helper("fd {dir} 200")
    ));
    wait_spawned(&d, "s6");
    wait_spawned(&d, "high");
    touch(&d, "go");
    d.wait_state("s6", "RUNNING");
    d.wait_state("high", "RUNNING");
    assert!(d.main_log().contains("process wrote to fd 3 (ready=fd:3)"));
    assert!(d.main_log().contains("process wrote to fd 200 (ready=fd:200)"));
}

#[test]
fn tcp_readiness_waits_for_the_port_to_accept() {
    let port = free_port();
    let d = Daemon::start(&format!(
        "[program:db]\ncommand={}\nready=tcp:127.0.0.1:{port}\n",
        helper(&format!("tcp {{dir}} {port}"))
    ));
    wait_spawned(&d, "db");
    touch(&d, "go");
    d.wait_state("db", "RUNNING");
    assert!(d.main_log().contains(&format!("probe passed (ready=tcp:127.0.0.1:{port})")));
}

#[test]
fn http_readiness_waits_for_a_2xx_answer() {
    let port = free_port();
    let d = Daemon::start(&format!(
        "[program:api]\ncommand={}\nready=http://127.0.0.1:{port}/health\n",
        helper(&format!("http {{dir}} {port}"))
    ));
    wait_spawned(&d, "api");
    // The server answers 503 meanwhile; wait until that has been probed.
    wait_for("a 503 answer", DEADLINE, || d.main_log().contains("503"));
    assert_eq!(d.state("api"), "STARTING");
    touch(&d, "go");
    d.wait_state("api", "RUNNING");
}

#[test]
fn exec_readiness_runs_the_command_until_it_succeeds() {
    let d = Daemon::start("[program:worker]\ncommand=sleep 1000\nready=exec:test -e {dir}/go\n");
    wait_spawned(&d, "worker");
    wait_for("a failed probe", DEADLINE, || d.main_log().contains("exec:test -e"));
    assert_eq!(d.state("worker"), "STARTING");
    touch(&d, "go");
    d.wait_state("worker", "RUNNING");
}

#[test]
fn file_readiness_waits_for_the_file() {
    let d = Daemon::start("[program:worker]\ncommand=sleep 1000\nready=file:{dir}/go\n");
    wait_spawned(&d, "worker");
    wait_for("a failed probe", DEADLINE, || d.main_log().contains("is not ready yet"));
    assert_eq!(d.state("worker"), "STARTING");
    touch(&d, "go");
    d.wait_state("worker", "RUNNING");
}

#[test]
fn a_plain_program_still_starts_after_startsecs_without_a_notify_socket() {
    let d = Daemon::start("[program:plain]\ncommand=/bin/sh -c 'echo \"[$NOTIFY_SOCKET]\"; exec sleep 1000'\nstdout_logfile={dir}/out\n");
    d.wait_state("plain", "RUNNING");
    assert!(d.main_log().contains("process has stayed up for > than 1 seconds (startsecs)"));
    wait_for("the program's output", DEADLINE, || {
        std::fs::read_to_string(d.path("out")).is_ok_and(|o| o == "[]\n")
    });
}

#[test]
fn start_with_wait_returns_only_once_the_program_is_ready() {
    let d = Daemon::start("[program:worker]\ncommand=sleep 1000\nautostart=false\nready=file:{dir}/go\n");
    let client = d.client();
    let (tx, rx) = std::sync::mpsc::channel();
    let waiter = std::thread::spawn(move || {
        let _ = tx.send(client.call("supervisor.startProcess", vec![s("worker"), dxr::Value::Boolean(true)]));
    });
    wait_spawned(&d, "worker");
    wait_for("a failed probe", DEADLINE, || d.main_log().contains("is not ready yet"));
    assert!(rx.try_recv().is_err(), "startProcess answered while the program was not ready");
    touch(&d, "go");
    let answer = rx.recv_timeout(DEADLINE).expect("startProcess to answer").expect("startProcess to succeed");
    assert_eq!(answer, dxr::Value::Boolean(true));
    assert_eq!(d.state("worker"), "RUNNING");
    waiter.join().unwrap();
}

#[test]
fn start_with_wait_fails_when_the_program_is_never_ready() {
    let d = Daemon::start(
        "[program:worker]\ncommand=sleep 1000\nautostart=false\nready=file:{dir}/never\nready_timeout=500ms\nstartretries=0\n",
    );
    let err = d
        .try_call("supervisor.startProcess", vec![s("worker"), dxr::Value::Boolean(true)])
        .expect_err("the start fails");
    assert!(err.to_string().contains("SPAWN_ERROR: worker"), "{err}");
    assert_eq!(d.state("worker"), "FATAL");
}
