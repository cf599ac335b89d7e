//! The pipe reader: one task per child stdout/stderr pipe, moving every byte,
//! in order, to the channel's log file.
//!
//! The reader owns the pipe's read end and nothing big: it waits for
//! readability, then reads into a per-thread 64 KiB buffer and writes each
//! chunk straight to the file (one `read(2)` and one `write(2)` per chunk, no
//! copy unless `strip_ansi`, capture mode or events need one). Backpressure
//! is the pipe itself: while the file write runs, the child blocks on a full
//! pipe, so nothing is ever dropped. An idle reader costs its task and one
//! epoll registration.
//!
//! Pipeline per chunk, in supervisord's order: capture-mode split (if
//! `capture_maxbytes > 0`) → `strip_ansi` → log file or capture buffer →
//! PROCESS_LOG event (if enabled; supervisord emits it for captured text too)
//! and the DEBG copy to the activity log (if enabled) → on a block end, a
//! PROCESS_COMMUNICATION event.

use std::cell::RefCell;
use std::io;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::sync::Arc;

use nix::fcntl::{fcntl, FcntlArg, OFlag};
use tokio::io::unix::AsyncFd;
use tokio::sync::mpsc;

use super::ansi::AnsiStripper;
use super::capture_mode::{CaptureBuffer, CaptureParser, Piece};
use super::file::{lock, SharedFile};
use super::Channel;

/// Size of the per-thread read buffer: one default pipe capacity.
pub(crate) const READ_CHUNK: usize = 64 * 1024;

thread_local! {
    /// Shared by every reader task that runs on this thread; borrowed only
    /// between a `read(2)` and the synchronous processing of its bytes.
    static READ_BUF: RefCell<Vec<u8>> = RefCell::new(vec![0u8; READ_CHUNK]);
}

/// What a reader sends to the engine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutputEvent<T> {
    /// The caller's tag (e.g. the process key), copied from [`EventHook::tag`].
    pub tag: T,
    /// Which pipe.
    pub channel: Channel,
    /// What happened.
    pub kind: OutputEventKind,
}

/// The two kinds of event child output produces.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OutputEventKind {
    /// PROCESS_LOG_STDOUT/STDERR: a chunk of output (after `strip_ansi`).
    Log(Vec<u8>),
    /// PROCESS_COMMUNICATION_STDOUT/STDERR: a completed capture block.
    Communication(Vec<u8>),
}

/// Where events go. Sending awaits when the channel is full, so a slow
/// consumer slows the child down instead of losing events.
#[derive(Debug, Clone)]
pub struct EventHook<T> {
    /// Copied into every event.
    pub tag: T,
    /// The engine's receiver end.
    pub tx: mpsc::Sender<OutputEvent<T>>,
    /// Send [`OutputEventKind::Log`] for every chunk (`stdout_events_enabled`).
    pub log_events: bool,
}

/// Configuration of one pipe reader.
#[derive(Debug, Clone)]
pub struct ReaderConfig<T> {
    /// Which pipe this is.
    pub channel: Channel,
    /// The log file; `None` for `NONE`/`OFF` (output is still drained).
    pub file: Option<SharedFile>,
    /// `[supervisord] strip_ansi`.
    pub strip_ansi: bool,
    /// `<channel>_capture_maxbytes`; 0 disables capture mode.
    pub capture_maxbytes: usize,
    /// Events to the engine; capture blocks are only reported through this.
    pub events: Option<EventHook<T>>,
    /// When set (activity log level ≤ debug), each chunk is also logged at
    /// DEBUG as `'<name>' <channel> output:\n<data>`, as supervisord does.
    pub mainlog_name: Option<Arc<str>>,
}

impl<T> ReaderConfig<T> {
    /// A reader that only writes to `file` (or drains the pipe when `None`).
    pub fn new(channel: Channel, file: Option<SharedFile>) -> ReaderConfig<T> {
        ReaderConfig {
            channel,
            file,
            strip_ansi: false,
            capture_maxbytes: 0,
            events: None,
            mainlog_name: None,
        }
    }
}

/// How a reader ended.
#[derive(Debug, thiserror::Error)]
pub enum ReaderError {
    /// The pipe could not be registered or read.
    #[error("reading {channel} pipe: {source}", channel = channel.as_str())]
    Pipe {
        /// Which pipe.
        channel: Channel,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
}

/// Per-reader state that only exists when a feature needs it.
struct Pipeline<T> {
    cfg: ReaderConfig<T>,
    stripper: Option<AnsiStripper>,
    parser: Option<(CaptureParser, CaptureBuffer)>,
    /// Events produced while the read buffer was borrowed, sent afterwards.
    pending: Vec<OutputEvent<T>>,
}

impl<T: Clone> Pipeline<T> {
    fn new(cfg: ReaderConfig<T>) -> Pipeline<T> {
        Pipeline {
            stripper: cfg.strip_ansi.then(AnsiStripper::new),
            parser: (cfg.capture_maxbytes > 0)
                .then(|| (CaptureParser::new(), CaptureBuffer::new(cfg.capture_maxbytes))),
            pending: Vec::new(),
            cfg,
        }
    }

    /// Processes one chunk read from the pipe (`eof`: flush held-back bytes).
    fn process(&mut self, data: &[u8], eof: bool) {
        match self.parser.take() {
            None => self.text(data, eof),
            Some((mut parser, mut buffer)) => {
                let mut handle = |piece: Piece<'_>| match piece {
                    Piece::Log(d) => self.text(d, false),
                    Piece::Capture(d) => {
                        let d = self.strip(d, false);
                        buffer.push(&d);
                        self.after_output(&d);
                    }
                    Piece::End => self.communication(buffer.take()),
                };
                parser.feed(data, &mut handle);
                if eof {
                    parser.finish(&mut handle);
                    self.text(&[], true);
                }
                self.parser = Some((parser, buffer));
            }
        }
    }

    fn strip<'a>(&mut self, data: &'a [u8], eof: bool) -> std::borrow::Cow<'a, [u8]> {
        match &mut self.stripper {
            None => std::borrow::Cow::Borrowed(data),
            Some(s) => {
                let mut out = Vec::with_capacity(data.len());
                s.strip(data, &mut out);
                if eof {
                    s.finish(&mut out);
                }
                std::borrow::Cow::Owned(out)
            }
        }
    }

    /// Normal (non-captured) output.
    fn text(&mut self, data: &[u8], eof: bool) {
        let data = self.strip(data, eof);
        if data.is_empty() {
            return;
        }
        if let Some(file) = &self.cfg.file {
            // The sink reports only the first failure of a streak, and its end.
            match lock(file).write(&data) {
                Ok(None) => {}
                Ok(Some(resumed)) => tracing::warn!("{resumed}"),
                Err(e) => tracing::error!("{e}"),
            }
        }
        self.after_output(&data);
    }

    /// Events and the activity-log copy for a chunk of output.
    fn after_output(&mut self, data: &[u8]) {
        if data.is_empty() {
            return;
        }
        if let Some(name) = &self.cfg.mainlog_name {
            let text = match std::str::from_utf8(data) {
                Ok(s) => std::borrow::Cow::Borrowed(s),
                Err(_) => std::borrow::Cow::Owned(format!("Undecodable: {}", data.escape_ascii())),
            };
            tracing::debug!("'{name}' {} output:\n{text}", self.cfg.channel.as_str());
        }
        if let Some(hook) = &self.cfg.events {
            if hook.log_events {
                self.pending.push(OutputEvent {
                    tag: hook.tag.clone(),
                    channel: self.cfg.channel,
                    kind: OutputEventKind::Log(data.to_vec()),
                });
            }
        }
    }

    fn communication(&mut self, data: Vec<u8>) {
        if let Some(hook) = &self.cfg.events {
            self.pending.push(OutputEvent {
                tag: hook.tag.clone(),
                channel: self.cfg.channel,
                kind: OutputEventKind::Communication(data),
            });
        }
        if let Some(name) = &self.cfg.mainlog_name {
            tracing::debug!("'{name}' {} emitted a comm event", self.cfg.channel.as_str());
        }
    }

    /// Send the events of the last chunk, if any. The sending future lives on the
    /// heap only while there is something to send: inline it would make every
    /// reader task (one per pipe, most never sending an event) twice as large.
    async fn flush_events(&mut self) {
        if !self.pending.is_empty() {
            Box::pin(self.send_pending()).await;
        }
    }

    async fn send_pending(&mut self) {
        if self.pending.is_empty() {
            return;
        }
        let Some(hook) = &self.cfg.events else {
            self.pending.clear();
            return;
        };
        for ev in self.pending.drain(..) {
            // A closed receiver means the engine is shutting down; the log
            // file must still get every byte, so keep reading regardless.
            let _ = hook.tx.send(ev).await;
        }
    }
}

fn set_nonblocking(fd: &OwnedFd) -> io::Result<()> {
    let flags = fcntl(fd.as_fd(), FcntlArg::F_GETFL)?;
    let flags = OFlag::from_bits_retain(flags) | OFlag::O_NONBLOCK;
    fcntl(fd.as_fd(), FcntlArg::F_SETFL(flags))?;
    Ok(())
}

/// Reads `pipe` (a child's stdout or stderr read end) until EOF, sending
/// every byte to `cfg.file` and events to `cfg.events`. Returns the number of
/// bytes read.
///
/// Accepts any pipe read end: from `std::process::ChildStdout` via
/// `OwnedFd::from`, from `tokio::net::unix::pipe::Receiver` via
/// `into_nonblocking_fd()`. The descriptor is switched to non-blocking mode.
/// Must run inside a tokio runtime with I/O enabled.
pub async fn read_pipe<T: Clone>(pipe: OwnedFd, cfg: ReaderConfig<T>) -> Result<u64, ReaderError> {
    let channel = cfg.channel;
    let err = |source| ReaderError::Pipe { channel, source };
    set_nonblocking(&pipe).map_err(err)?;
    // SAFETY: the `OwnedFd` is moved into the `AsyncFd`, which owns it until
    // it is dropped, so the descriptor stays open and unchanged meanwhile.
    let pipe = unsafe { AsyncFd::register_with_interest(pipe, tokio::io::Interest::READABLE) }
        .map_err(|e| err(io::Error::from(e)))?;
    let mut pipeline = Pipeline::new(cfg);
    let mut total = 0u64;
    loop {
        let mut guard = pipe.readable().await.map_err(err)?;
        let read = guard.try_io(|fd| {
            READ_BUF.with_borrow_mut(|buf| {
                let n = loop {
                    // SAFETY: `buf` is a valid, exclusively borrowed buffer of
                    // `buf.len()` bytes and `fd` an open descriptor.
                    let r = unsafe { libc::read(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
                    if r >= 0 {
                        break r as usize;
                    }
                    let e = io::Error::last_os_error();
                    if e.kind() != io::ErrorKind::Interrupted {
                        return Err(e);
                    }
                };
                pipeline.process(&buf[..n], n == 0);
                Ok(n)
            })
        });
        match read {
            // Spurious readiness: wait again.
            Err(_would_block) => continue,
            Ok(Ok(0)) => {
                pipeline.flush_events().await;
                return Ok(total);
            }
            Ok(Ok(n)) => {
                total += n as u64;
                pipeline.flush_events().await;
                // A child writing flat out keeps the pipe readable forever;
                // give other tasks on this worker their turn.
                tokio::task::consume_budget().await;
            }
            Ok(Err(e)) => {
                // EOF-like end: flush what the parser holds, then report.
                pipeline.process(&[], true);
                pipeline.flush_events().await;
                return Err(err(e));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn pipe() -> (OwnedFd, std::fs::File) {
        let (r, w) = nix::unistd::pipe().expect("pipe");
        (r, std::fs::File::from(w))
    }

    #[tokio::test]
    async fn copies_everything_and_ends_at_eof() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("out.log");
        let file = super::super::file::RotatingFile::open(&path, 0, 0).expect("open").shared();
        let (r, mut w) = pipe();
        let task = tokio::spawn(read_pipe::<()>(r, ReaderConfig::new(Channel::Stdout, Some(file))));
        let writer = std::thread::spawn(move || {
            for i in 0..1000 {
                writeln!(w, "line {i}").expect("write");
            }
        });
        let n = task.await.expect("join").expect("reader");
        writer.join().expect("writer");
        let expected: String = (0..1000).map(|i| format!("line {i}\n")).collect();
        assert_eq!(n, expected.len() as u64);
        assert_eq!(std::fs::read_to_string(&path).expect("read"), expected);
    }

    #[tokio::test]
    async fn drains_without_a_file() {
        let (r, mut w) = pipe();
        let task = tokio::spawn(read_pipe::<()>(r, ReaderConfig::new(Channel::Stderr, None)));
        // Written from another thread: the pipe fills up and the writer
        // blocks until the reader drains it.
        let writer = std::thread::spawn(move || w.write_all(&[b'x'; 300_000]));
        assert_eq!(task.await.expect("join").expect("reader"), 300_000);
        writer.join().expect("join writer").expect("write");
    }

    #[tokio::test]
    async fn strip_ansi_events_and_capture() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("out.log");
        let file = super::super::file::RotatingFile::open(&path, 0, 0).expect("open").shared();
        let (tx, mut rx) = mpsc::channel(4);
        let mut cfg = ReaderConfig::new(Channel::Stdout, Some(file));
        cfg.strip_ansi = true;
        cfg.capture_maxbytes = 100;
        cfg.events = Some(EventHook { tag: 7u32, tx, log_events: true });
        let (r, mut w) = pipe();
        let task = tokio::spawn(read_pipe(r, cfg));
        w.write_all(b"\x1b[31mred\x1b[0m <!--XSUPERVISOR:BEGIN-->pay\x1b[1mload<!--XSUPERVISOR:END-->tail")
            .expect("write");
        drop(w);
        let mut events = Vec::new();
        while let Some(ev) = rx.recv().await {
            assert_eq!(ev.tag, 7);
            assert_eq!(ev.channel, Channel::Stdout);
            events.push(ev.kind);
        }
        task.await.expect("join").expect("reader");
        assert_eq!(std::fs::read(&path).expect("read"), b"red tail");
        let comm: Vec<_> = events
            .iter()
            .filter_map(|k| match k {
                OutputEventKind::Communication(d) => Some(d.clone()),
                OutputEventKind::Log(_) => None,
            })
            .collect();
        assert_eq!(comm, vec![b"payload".to_vec()]);
        let logged: Vec<u8> = events
            .iter()
            .filter_map(|k| match k {
                OutputEventKind::Log(d) => Some(d.clone()),
                OutputEventKind::Communication(_) => None,
            })
            .flatten()
            .collect();
        // PROCESS_LOG covers captured text too, as in supervisord.
        assert_eq!(logged, b"red payloadtail");
    }
}
