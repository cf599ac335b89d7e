//! journald: a fake journal socket receives corrald's own log (under systemd)
//! and the lines of programs with `stdout_logfile=journal`.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::*;

/// Decodes a native-protocol datagram (`KEY=value\n`, or `KEY\n` + u64 LE length + value + `\n`).
fn fields(mut d: &[u8]) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    while !d.is_empty() {
        let eol = d.iter().position(|&b| b == b'\n').expect("field ends with a newline");
        let head = &d[..eol];
        if let Some(eq) = head.iter().position(|&b| b == b'=') {
            out.insert(
                String::from_utf8_lossy(&head[..eq]).into_owned(),
                String::from_utf8_lossy(&head[eq + 1..]).into_owned(),
            );
            d = &d[eol + 1..];
        } else {
            let len_bytes: [u8; 8] = d[eol + 1..eol + 9].try_into().expect("length");
            let len = u64::from_le_bytes(len_bytes) as usize;
            out.insert(
                String::from_utf8_lossy(head).into_owned(),
                String::from_utf8_lossy(&d[eol + 9..eol + 9 + len]).into_owned(),
            );
            d = &d[eol + 9 + len + 1..];
        }
    }
    out
}

/// Receives entries until every message in `messages` has arrived (stdout and stderr
/// are separate pipes, so their relative order is not fixed); returns them by message.
fn entries_for(journal: &DatagramSink, messages: &[&str]) -> BTreeMap<String, BTreeMap<String, String>> {
    let mut got = BTreeMap::new();
    let start = std::time::Instant::now();
    while messages.iter().any(|m| !got.contains_key(*m)) {
        assert!(start.elapsed() < DEADLINE, "timed out waiting for {messages:?}; got {got:#?}");
        if let Some(d) = journal.recv(Duration::from_millis(500)) {
            let f = fields(&d);
            if let Some(m) = f.get("MESSAGE") {
                got.insert(m.clone(), f);
            }
        }
    }
    got
}

const PROGRAMS: &str = "[program:talker]\n\
    command=/bin/sh -c 'echo hello journal; echo second line; echo oops >&2; exec sleep 1000'\n\
    stdout_logfile=journal\nstderr_logfile=journal\nstartsecs=0\n\n\
    [group:chatty]\nprograms=talker\n";

#[test]
fn program_lines_become_journal_entries_with_corral_fields() {
    let dir = tempfile::tempdir().expect("temp dir");
    let journal = DatagramSink::bind(dir.path(), "journal.sock");
    let text = format!("{}{PROGRAMS}", preamble(dir.path()));
    let path = journal.path.display().to_string();
    let daemon = Daemon::spawn_with(dir, &text, &[("CORRAL_JOURNAL_SOCKET", &path)], &[]);
    daemon.wait_answering();
    daemon.wait_state("chatty:talker", "RUNNING");
    let pid = daemon.pid("chatty:talker").to_string();

    let got = entries_for(&journal, &["hello journal", "second line", "oops"]);
    let hello = &got["hello journal"];
    assert_eq!(hello["SYSLOG_IDENTIFIER"], "talker");
    assert_eq!(hello["CORRAL_PROGRAM"], "talker");
    assert_eq!(hello["CORRAL_GROUP"], "chatty");
    assert_eq!(hello["CORRAL_PID"], pid);
    assert_eq!(hello["SYSLOG_PID"], pid);
    assert_eq!(hello["CORRAL_CHANNEL"], "stdout");
    assert_eq!(hello["PRIORITY"], "6");
    let oops = &got["oops"];
    assert_eq!(oops["PRIORITY"], "3");
    assert_eq!(oops["CORRAL_CHANNEL"], "stderr");

    // No file is written for a journal channel, and the API reports none.
    let info = daemon.info("chatty:talker");
    assert_eq!(str_of(&info["stdout_logfile"]), "");
    let auto_logs = std::fs::read_dir(daemon.dir.path())
        .expect("read dir")
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().starts_with("talker"))
        .count();
    assert_eq!(auto_logs, 0);
}

#[test]
fn the_journal_keyword_is_parsed_and_listed() {
    let dir = tempfile::tempdir().expect("temp dir");
    let conf = dir.path().join("corral.conf");
    std::fs::write(&conf, format!("{}{PROGRAMS}", preamble(dir.path()))).expect("write config");
    let cfg = corral::config::load(&conf).expect("config loads");
    let p = &cfg.groups[0].processes[0];
    assert_eq!(p.stdout.logfile, corral::config::LogFile::Journal);
    assert_eq!(p.stderr.logfile, corral::config::LogFile::Journal);
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_corrald"))
        .args(["--check-config", "-c"])
        .arg(&conf)
        .output()
        .expect("run corrald --check-config");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("journal"));
}

/// Under systemd (INVOCATION_ID set) corrald's own log goes to journald too. The real
/// socket path is fixed in tracing-journald, so the fake journal is bind-mounted over
/// `/run/systemd/journal/socket` in a private mount namespace (root only).
#[test]
fn under_systemd_the_daemon_log_and_program_lines_reach_journald() {
    if !can_unshare() {
        skip("needs root for a mount namespace (unshare)");
        return;
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let journal = DatagramSink::bind(dir.path(), "journal.sock");
    let text = format!("{}{PROGRAMS}", preamble(dir.path()));
    let mount = format!(
        "mount -t tmpfs tmpfs /run && mkdir -p /run/systemd/journal && \
         touch /run/systemd/journal/socket && mount --bind {} /run/systemd/journal/socket && exec \"$0\" \"$@\"",
        journal.path.display()
    );
    let daemon = Daemon::spawn_with(
        dir,
        &text,
        &[("INVOCATION_ID", "0123456789abcdef0123456789abcdef")],
        &["unshare", "--mount", "--propagation", "private", "sh", "-c", &mount],
    );
    daemon.wait_answering();

    let started = fields(&journal.recv_until("corrald's start message", |d| {
        fields(d).get("MESSAGE").is_some_and(|m| m.starts_with("corrald started with pid"))
    }));
    assert_eq!(started["SYSLOG_IDENTIFIER"], "corrald");
    assert_eq!(started["PRIORITY"], "5", "{started:?}");
    // Without a CORRAL_JOURNAL_SOCKET override, programs use the standard socket too.
    let got = entries_for(&journal, &["hello journal"]);
    assert_eq!(got["hello journal"]["CORRAL_GROUP"], "chatty");
    // The activity log file is still written as configured.
    wait_for("the activity log file", Duration::from_secs(10), || {
        daemon.main_log().contains("corrald started with pid")
    });
}

#[test]
fn stdout_syslog_sends_each_line_prefixed_with_the_process_name_and_keeps_the_file() {
    let dir = tempfile::tempdir().expect("temp dir");
    let syslog = DatagramSink::bind(dir.path(), "log.sock");
    let text = format!(
        "{}[program:logger]\ncommand=sh -c 'echo first; echo second; exec sleep 1000'\nstdout_syslog=true\n\
         stdout_logfile={}/logger.out\nstartsecs=0\n",
        preamble(dir.path()),
        dir.path().display()
    );
    let path = syslog.path.display().to_string();
    let daemon = Daemon::spawn_with(dir, &text, &[("CORRAL_SYSLOG_SOCKET", &path)], &[]);
    daemon.wait_answering();
    // Python's SysLogHandler framing: <user.info>, "<processname> <line>", NUL.
    syslog.recv_until("the first line", |d| d == b"<14>logger first\0");
    syslog.recv_until("the second line", |d| d == b"<14>logger second\0");
    let file = daemon.path("logger.out");
    wait_for("the file copy", DEADLINE, || {
        std::fs::read_to_string(&file).map(|s| s == "first\nsecond\n").unwrap_or(false)
    });
}
