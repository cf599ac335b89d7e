//! journald: corrald's own log, and programs' output with `*_logfile=journal`.
//!
//! Both speak journald's native protocol: one datagram per entry on the unix
//! socket `/run/systemd/journal/socket`, made of `KEY=value\n` fields, or
//! `KEY\n` + 64-bit little-endian length + raw value + `\n` for values that
//! contain a newline (the binary-safe form).
//!
//! - corrald's own activity log goes through `tracing-journald`
//!   ([`daemon_layer`]) when corrald runs under systemd ([`under_journald`]).
//! - A program channel with `stdout_logfile=journal` / `stderr_logfile=journal`
//!   gets a [`LineSink`]: one entry per line, `SYSLOG_IDENTIFIER=<process>`,
//!   `SYSLOG_PID`, `CORRAL_PROGRAM`, `CORRAL_PROCESS`, `CORRAL_GROUP`,
//!   `CORRAL_PID`, `CORRAL_CHANNEL` and `PRIORITY=6` (stdout) or `3` (stderr).
//!
//! The program sink's socket is [`JOURNAL_SOCKET_ENV`] when set: a test hook
//! for pointing it at a fake journald; nothing else should set it.

use std::io;
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};

use tokio::sync::mpsc;
use tracing_subscriber::filter::LevelFilter;

use super::capture::{EventHook, OutputEvent, OutputEventKind};
use super::Channel;
use crate::config::model::LogLevel;

/// journald's native-protocol socket.
pub const JOURNAL_SOCKET: &str = "/run/systemd/journal/socket";

/// Test hook: overrides [`JOURNAL_SOCKET`] for programs' journal sinks.
pub const JOURNAL_SOCKET_ENV: &str = "CORRAL_JOURNAL_SOCKET";

/// Longest line sent as one entry; longer lines are split, as journald's own
/// stream reader does at its `LineMax` (48 KiB by default).
pub const LINE_MAX: usize = 48 * 1024;

/// `PRIORITY=` of a program's stdout lines (LOG_INFO).
pub const STDOUT_PRIORITY: u8 = 6;
/// `PRIORITY=` of a program's stderr lines (LOG_ERR).
pub const STDERR_PRIORITY: u8 = 3;

/// A journal entry could not be sent.
#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    /// Creating the socket or sending the datagram failed.
    #[error("sending to the journal at {path}: {source}")]
    Send {
        /// The journal socket.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
}

/// True when corrald runs as a systemd service whose output goes to the
/// journal (systemd sets `JOURNAL_STREAM` for that, and `INVOCATION_ID` for
/// every unit).
pub fn under_journald() -> bool {
    std::env::var_os("JOURNAL_STREAM").is_some() || std::env::var_os("INVOCATION_ID").is_some()
}

/// The socket program sinks send to.
pub fn socket_path() -> PathBuf {
    std::env::var_os(JOURNAL_SOCKET_ENV).map(PathBuf::from).unwrap_or_else(|| PathBuf::from(JOURNAL_SOCKET))
}

/// The most verbose `tracing` level that passes supervisord's `loglevel`.
pub fn level_filter(level: LogLevel) -> LevelFilter {
    match level {
        LogLevel::Critical | LogLevel::Error => LevelFilter::ERROR,
        LogLevel::Warn => LevelFilter::WARN,
        LogLevel::Info => LevelFilter::INFO,
        LogLevel::Debug => LevelFilter::DEBUG,
        LogLevel::Trace | LogLevel::Blather => LevelFilter::TRACE,
    }
}

/// corrald's own log as journal entries (`SYSLOG_IDENTIFIER=corrald`, event
/// fields prefixed `CORRAL_`), filtered at `loglevel`. Fails when the
/// journal socket cannot be reached.
pub fn daemon_layer(
    level: LogLevel,
) -> io::Result<
    tracing_subscriber::filter::Filtered<tracing_journald::Layer, LevelFilter, tracing_subscriber::Registry>,
> {
    use tracing_subscriber::Layer as _;
    let layer = tracing_journald::layer()?
        .with_syslog_identifier("corrald".to_string())
        .with_field_prefix(Some("CORRAL".to_string()));
    Ok(layer.with_filter(level_filter(level)))
}

/// Appends one field in the native format: `KEY=value\n`, or the binary-safe
/// length-prefixed form when the value contains a newline.
pub fn put_field(buf: &mut Vec<u8>, key: &str, value: &[u8]) {
    buf.extend_from_slice(key.as_bytes());
    if value.contains(&b'\n') {
        buf.push(b'\n');
        buf.extend_from_slice(&(value.len() as u64).to_le_bytes());
    } else {
        buf.push(b'=');
    }
    buf.extend_from_slice(value);
    buf.push(b'\n');
}

/// Who wrote the lines a [`LineSink`] sends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JournalTags {
    /// Process name (`SYSLOG_IDENTIFIER`, `CORRAL_PROCESS`).
    pub process: String,
    /// Program section name (`CORRAL_PROGRAM`).
    pub program: String,
    /// Group name (`CORRAL_GROUP`).
    pub group: String,
    /// Pid of the writer (`CORRAL_PID`, `SYSLOG_PID`).
    pub pid: u32,
    /// Which pipe (`CORRAL_CHANNEL`, and the priority).
    pub channel: Channel,
}

/// How a line becomes a datagram.
#[derive(Debug)]
enum Format {
    /// journald's native protocol: these fields (already encoded) plus `MESSAGE`.
    Journal(Vec<u8>),
    /// The local syslog as supervisord's `*_syslog` sends it: `<PRI><prefix><line>\0`
    /// (Python's SysLogHandler framing), the prefix being `<processname> `.
    Syslog(Vec<u8>),
}

/// Sends a program channel's output to journald or syslog, one datagram per line.
#[derive(Debug)]
pub struct LineSink {
    socket: Option<UnixDatagram>,
    path: PathBuf,
    format: Format,
    /// Bytes of an unfinished line.
    partial: Vec<u8>,
    /// Inside a streak of send failures (only the first is reported).
    failing: bool,
}

/// syslog's `user.info` (supervisord logs child output at INFO).
const SYSLOG_USER_INFO: u8 = 8 + 6;

/// Where `stdout_syslog`/`stderr_syslog` lines go: `/dev/log`, or
/// `CORRAL_SYSLOG_SOCKET` (a test hook).
pub fn syslog_socket_path() -> PathBuf {
    std::env::var_os("CORRAL_SYSLOG_SOCKET").map(PathBuf::from).unwrap_or_else(|| PathBuf::from("/dev/log"))
}

impl LineSink {
    /// A sink sending journal entries to `path` (see [`socket_path`]). The socket
    /// is created on first use, so a missing journal costs nothing until output arrives.
    pub fn journal(path: &Path, tags: &JournalTags) -> LineSink {
        let mut fixed = Vec::new();
        let priority = match tags.channel {
            Channel::Stdout => STDOUT_PRIORITY,
            Channel::Stderr => STDERR_PRIORITY,
        };
        put_field(&mut fixed, "PRIORITY", priority.to_string().as_bytes());
        put_field(&mut fixed, "SYSLOG_IDENTIFIER", tags.process.as_bytes());
        put_field(&mut fixed, "SYSLOG_PID", tags.pid.to_string().as_bytes());
        put_field(&mut fixed, "CORRAL_PROGRAM", tags.program.as_bytes());
        put_field(&mut fixed, "CORRAL_PROCESS", tags.process.as_bytes());
        put_field(&mut fixed, "CORRAL_GROUP", tags.group.as_bytes());
        put_field(&mut fixed, "CORRAL_PID", tags.pid.to_string().as_bytes());
        put_field(&mut fixed, "CORRAL_CHANNEL", tags.channel.as_str().as_bytes());
        LineSink {
            socket: None,
            path: path.to_path_buf(),
            format: Format::Journal(fixed),
            partial: Vec::new(),
            failing: false,
        }
    }

    /// A sink sending `<processname> <line>` to the syslog socket at `path`.
    pub fn syslog(path: &Path, process: &str) -> LineSink {
        let prefix = format!("<{SYSLOG_USER_INFO}>{process} ").into_bytes();
        LineSink {
            socket: None,
            path: path.to_path_buf(),
            format: Format::Syslog(prefix),
            partial: Vec::new(),
            failing: false,
        }
    }

    /// Takes a chunk of output; every completed line becomes one entry.
    pub fn write(&mut self, mut data: &[u8]) -> Result<(), JournalError> {
        let mut result = Ok(());
        while !data.is_empty() {
            let room = LINE_MAX - self.partial.len();
            match data.iter().take(room).position(|&b| b == b'\n') {
                Some(i) => {
                    self.partial.extend_from_slice(&data[..i]);
                    data = &data[i + 1..];
                }
                None if data.len() >= room => {
                    // An over-long line: send what fits, continue with the rest.
                    self.partial.extend_from_slice(&data[..room]);
                    data = &data[room..];
                }
                None => {
                    self.partial.extend_from_slice(data);
                    return result;
                }
            }
            let line = std::mem::take(&mut self.partial);
            if let Err(e) = self.send_line(&line) {
                result = Err(e);
            }
        }
        result
    }

    /// Sends an unfinished last line (the pipe reached EOF).
    pub fn flush(&mut self) -> Result<(), JournalError> {
        if self.partial.is_empty() {
            return Ok(());
        }
        let line = std::mem::take(&mut self.partial);
        self.send_line(&line)
    }

    fn send_line(&mut self, line: &[u8]) -> Result<(), JournalError> {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let entry = match &self.format {
            Format::Journal(fixed) => {
                let mut entry = fixed.clone();
                put_field(&mut entry, "MESSAGE", line);
                entry
            }
            Format::Syslog(prefix) => {
                let mut entry = Vec::with_capacity(prefix.len() + line.len() + 1);
                entry.extend_from_slice(prefix);
                entry.extend_from_slice(line);
                entry.push(0);
                entry
            }
        };
        let sent = match &self.socket {
            Some(s) => s.send_to(&entry, &self.path),
            None => UnixDatagram::unbound().and_then(|s| {
                let r = s.send_to(&entry, &self.path);
                self.socket = Some(s);
                r
            }),
        };
        match sent {
            Ok(_) => {
                self.failing = false;
                Ok(())
            }
            Err(source) if !self.failing => {
                self.failing = true;
                Err(JournalError::Send { path: self.path.clone(), source })
            }
            // Already reported for this streak.
            Err(_) => Ok(()),
        }
    }
}

/// Runs a send that waits while the journal's (or syslog's) queue is full. On a
/// multi-threaded runtime (the daemon's) the worker thread hands its other tasks,
/// the engine among them, to another thread meanwhile, so a stalled journal slows
/// only the program writing to it.
fn may_block<R>(f: impl FnOnce() -> R) -> R {
    match tokio::runtime::Handle::try_current().map(|h| h.runtime_flavor()) {
        Ok(tokio::runtime::RuntimeFlavor::MultiThread) => tokio::task::block_in_place(f),
        _ => f(),
    }
}

/// The events hook for a pipe reader whose channel also goes to a [`LineSink`]
/// (journald or syslog): every output chunk becomes lines, then the event goes on to `downstream`
/// (event listeners) as if it had been sent there directly: `Log` chunks only
/// if that hook asked for them, capture blocks always. Capture blocks never
/// reach a log, as in supervisord.
///
/// Returns the hook and the sink's task, which ends once every sender of the
/// hook is gone (the reader ended or was cancelled) and it has sent what was
/// queued, an unfinished last line included: a re-exec awaits it.
pub fn line_sink_hook<T: Clone + Send + 'static>(
    mut sink: LineSink,
    name: String,
    tag: T,
    downstream: Option<EventHook<T>>,
) -> (EventHook<T>, tokio::task::JoinHandle<()>) {
    // A small bound keeps the pipe's backpressure: a stalled journal slows
    // the child down instead of buffering its output here.
    let (tx, mut rx) = mpsc::channel::<OutputEvent<T>>(8);
    let task = tokio::spawn(async move {
        while let Some(ev) = rx.recv().await {
            let wanted = match &ev.kind {
                OutputEventKind::Log(data) => {
                    if let Err(e) = may_block(|| sink.write(data)) {
                        tracing::error!("{name}: {e}");
                    }
                    downstream.as_ref().is_some_and(|d| d.log_events)
                }
                OutputEventKind::Communication(_) => downstream.is_some(),
            };
            if let (true, Some(d)) = (wanted, &downstream) {
                // A closed receiver means the engine is going away; keep journaling.
                let _ = d.tx.send(ev).await;
            }
        }
        if let Err(e) = may_block(|| sink.flush()) {
            tracing::error!("{name}: {e}");
        }
    });
    (EventHook { tag, tx, log_events: true }, task)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Decodes a native-protocol datagram into (key, value) pairs.
    fn parse(mut d: &[u8]) -> Vec<(String, Vec<u8>)> {
        let mut out = Vec::new();
        while !d.is_empty() {
            let eol = d.iter().position(|&b| b == b'\n').expect("newline");
            let head = &d[..eol];
            if let Some(eq) = head.iter().position(|&b| b == b'=') {
                out.push((String::from_utf8_lossy(&head[..eq]).into_owned(), head[eq + 1..].to_vec()));
                d = &d[eol + 1..];
            } else {
                let key = String::from_utf8_lossy(head).into_owned();
                let len_bytes: [u8; 8] = d[eol + 1..eol + 9].try_into().expect("length");
                let len = u64::from_le_bytes(len_bytes) as usize;
                out.push((key, d[eol + 9..eol + 9 + len].to_vec()));
                d = &d[eol + 9 + len + 1..];
            }
        }
        out
    }

    fn field<'a>(e: &'a [(String, Vec<u8>)], k: &str) -> &'a [u8] {
        &e.iter().find(|(key, _)| key == k).unwrap_or_else(|| panic!("no {k} in {e:?}")).1
    }

    #[test]
    fn values_with_newlines_use_the_binary_safe_form() {
        let mut buf = Vec::new();
        put_field(&mut buf, "A", b"plain");
        put_field(&mut buf, "B", b"two\nlines");
        let mut want = b"A=plain\nB\n".to_vec();
        want.extend_from_slice(&9u64.to_le_bytes());
        want.extend_from_slice(b"two\nlines\n");
        assert_eq!(buf, want);
        assert_eq!(parse(&buf)[1], ("B".to_string(), b"two\nlines".to_vec()));
    }

    #[test]
    fn one_entry_per_line_with_program_fields() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("journal.sock");
        let server = UnixDatagram::bind(&path).expect("bind");
        let tags = JournalTags {
            process: "web_01".into(),
            program: "web".into(),
            group: "pool".into(),
            pid: 4242,
            channel: Channel::Stderr,
        };
        let mut sink = LineSink::journal(&path, &tags);
        sink.write(b"first\nsec").expect("write");
        sink.write(b"ond\r\nunfinished").expect("write");
        sink.flush().expect("flush");
        let mut buf = vec![0u8; 65536];
        let mut entries = Vec::new();
        for _ in 0..3 {
            let n = server.recv(&mut buf).expect("recv");
            entries.push(parse(&buf[..n]));
        }
        let messages: Vec<&[u8]> = entries.iter().map(|e| field(e, "MESSAGE")).collect();
        assert_eq!(messages, [&b"first"[..], b"second", b"unfinished"]);
        let e = &entries[0];
        assert_eq!(field(e, "PRIORITY"), b"3");
        assert_eq!(field(e, "SYSLOG_IDENTIFIER"), b"web_01");
        assert_eq!(field(e, "CORRAL_PROGRAM"), b"web");
        assert_eq!(field(e, "CORRAL_GROUP"), b"pool");
        assert_eq!(field(e, "CORRAL_PID"), b"4242");
        assert_eq!(field(e, "CORRAL_CHANNEL"), b"stderr");
    }

    #[test]
    fn over_long_lines_are_split() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("journal.sock");
        let server = UnixDatagram::bind(&path).expect("bind");
        let tags = JournalTags {
            process: "x".into(),
            program: "x".into(),
            group: "x".into(),
            pid: 1,
            channel: Channel::Stdout,
        };
        let mut sink = LineSink::journal(&path, &tags);
        let mut data = vec![b'a'; LINE_MAX + 10];
        data.push(b'\n');
        sink.write(&data).expect("write");
        let mut buf = vec![0u8; 2 * LINE_MAX];
        let n = server.recv(&mut buf).expect("recv");
        assert_eq!(field(&parse(&buf[..n]), "MESSAGE").len(), LINE_MAX);
        let n = server.recv(&mut buf).expect("recv");
        let e = parse(&buf[..n]);
        assert_eq!(field(&e, "MESSAGE").len(), 10);
        assert_eq!(field(&e, "PRIORITY"), b"6");
    }

    #[test]
    fn a_missing_journal_is_reported_once_per_streak() {
        let dir = tempfile::tempdir().expect("tempdir");
        let tags = JournalTags {
            process: "x".into(),
            program: "x".into(),
            group: "x".into(),
            pid: 1,
            channel: Channel::Stdout,
        };
        let mut sink = LineSink::journal(&dir.path().join("absent"), &tags);
        assert!(sink.write(b"a\n").is_err());
        assert!(sink.write(b"b\n").is_ok());
    }

    #[tokio::test]
    async fn the_hook_journals_logs_and_passes_on_only_what_listeners_asked_for() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("journal.sock");
        let server = UnixDatagram::bind(&path).expect("bind");
        let tags = JournalTags {
            process: "x".into(),
            program: "x".into(),
            group: "x".into(),
            pid: 1,
            channel: Channel::Stdout,
        };
        let (dtx, mut drx) = mpsc::channel(8);
        let downstream = EventHook { tag: 7u8, tx: dtx, log_events: false };
        let (hook, task) = line_sink_hook(LineSink::journal(&path, &tags), "x".into(), 7u8, Some(downstream));
        let ev = |kind| OutputEvent { tag: 7u8, channel: Channel::Stdout, kind };
        hook.tx.send(ev(OutputEventKind::Log(b"line\nunfinished".to_vec()))).await.expect("send");
        hook.tx.send(ev(OutputEventKind::Communication(b"block".to_vec()))).await.expect("send");
        drop(hook);
        let got = drx.recv().await.expect("communication passed on");
        assert_eq!(got.kind, OutputEventKind::Communication(b"block".to_vec()));
        assert!(drx.recv().await.is_none(), "log chunks were not asked for");
        // Once its reader is gone the task ends, having sent everything, the
        // unfinished last line included (what a re-exec waits for).
        task.await.expect("sink task");
        let mut buf = vec![0u8; 4096];
        let n = server.recv(&mut buf).expect("recv");
        assert_eq!(field(&parse(&buf[..n]), "MESSAGE"), b"line");
        let n = server.recv(&mut buf).expect("recv");
        assert_eq!(field(&parse(&buf[..n]), "MESSAGE"), b"unfinished");
    }
}
