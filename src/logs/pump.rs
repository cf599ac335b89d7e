//! The output pump: one task that moves the output of every plain pipe to its
//! log file.
//!
//! Most programs' output goes to a file and nowhere else (no events, no capture
//! mode, no journal). Those pipes need no task of their own: the pump keeps them
//! in a private epoll set (level-triggered) and, whenever some are readable, reads
//! one chunk from each in turn and writes it to its file before it reads the next
//! one, so every byte reaches its file in order and a program writing flat out
//! gets its turn like the others. A pipe costs an entry of a few dozen bytes, not
//! a task and a reactor registration (a kilobyte and a half each with thousands of
//! programs). Pipes with events, capture mode or line sinks use
//! [`read_pipe`](super::capture::read_pipe) instead.
//!
//! Backpressure is the pipe itself, as with the reader tasks: while the pump
//! writes a chunk, a program that fills its pipe waits.

use std::collections::HashMap;
use std::io;
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::Arc;

use tokio::io::unix::AsyncFd;
use tokio::sync::{mpsc, oneshot};

use super::ansi::AnsiStripper;
use super::capture::READ_CHUNK;
use super::file::{lock, SharedFile};
use super::Channel;

/// Where a pumped pipe's bytes go.
#[derive(Debug)]
pub struct Destination {
    /// The log file; `None` drains the pipe (`NONE` logs).
    pub file: Option<SharedFile>,
    /// `[supervisord] strip_ansi`.
    pub strip_ansi: bool,
    /// The process name, for messages.
    pub name: Arc<str>,
    /// Which pipe this is.
    pub channel: Channel,
}

/// Identifies a pipe in the pump.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PipeKey(u64);

enum Command {
    Add(PipeKey, OwnedFd, Destination),
    /// Stop reading the pipe (between two chunks) and close the pump's descriptor.
    Stop(PipeKey, oneshot::Sender<()>),
}

/// A handle to the pump task; cheap to clone.
#[derive(Debug, Clone)]
pub struct Pump {
    tx: mpsc::UnboundedSender<Command>,
    next: Arc<std::sync::atomic::AtomicU64>,
}

/// One pipe the pump reads.
struct Entry {
    fd: OwnedFd,
    dest: Destination,
    stripper: Option<AnsiStripper>,
}

/// Rounds of one chunk per readable pipe between two looks at the commands.
const ROUNDS_PER_TURN: usize = 16;

impl Pump {
    /// Start the pump task on the current tokio runtime.
    pub fn start() -> io::Result<Pump> {
        // SAFETY: epoll_create1 has no memory arguments; the result is checked.
        let raw = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
        if raw < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: a descriptor epoll_create1 just returned, owned by nothing else.
        let epoll = unsafe { OwnedFd::from_raw_fd(raw) };
        // SAFETY: the `OwnedFd` moves into the `AsyncFd`, which owns it from now on.
        let epoll = unsafe { AsyncFd::register_with_interest(epoll, tokio::io::Interest::READABLE) }
            .map_err(io::Error::from)?;
        let (tx, rx) = mpsc::unbounded_channel();
        tokio::spawn(run(epoll, rx));
        Ok(Pump { tx, next: Arc::new(std::sync::atomic::AtomicU64::new(1)) })
    }

    /// Read `pipe` (a child's stdout or stderr read end) until EOF into `dest`.
    pub fn add(&self, pipe: OwnedFd, dest: Destination) -> PipeKey {
        let key = PipeKey(self.next.fetch_add(1, std::sync::atomic::Ordering::Relaxed));
        // The pump only ends with the runtime; then nothing reads any more anyway.
        let _ = self.tx.send(Command::Add(key, pipe, dest));
        key
    }

    /// Stop reading `key` after the chunk in hand, if any; the receiver completes
    /// once the pump has closed its descriptor (at once if the pipe already ended).
    pub fn stop(&self, key: PipeKey) -> oneshot::Receiver<()> {
        let (done, rx) = oneshot::channel();
        let _ = self.tx.send(Command::Stop(key, done));
        rx
    }
}

async fn run(epoll: AsyncFd<OwnedFd>, mut rx: mpsc::UnboundedReceiver<Command>) {
    let mut pipes: HashMap<PipeKey, Entry> = HashMap::new();
    let mut events: Vec<libc::epoll_event> = vec![libc::epoll_event { events: 0, u64: 0 }; 64];
    let mut buf = vec![0u8; READ_CHUNK];
    loop {
        tokio::select! {
            command = rx.recv() => match command {
                Some(command) => apply(&epoll, &mut pipes, command),
                // Every handle is gone: the engine has ended; what is left is read to EOF.
                None => {
                    drain_all(&epoll, &mut pipes, &mut events, &mut buf).await;
                    return;
                }
            },
            ready = epoll.readable() => {
                let Ok(mut guard) = ready else {
                    tracing::error!("the output pump's epoll set failed; program output is no longer read");
                    return;
                };
                let mut rounds = 0;
                loop {
                    let n = wait(epoll.get_ref(), &mut events);
                    if n == 0 {
                        guard.clear_ready();
                        break;
                    }
                    for event in &events[..n] {
                        pump_one(&epoll, &mut pipes, PipeKey(event.u64), &mut buf);
                    }
                    rounds += 1;
                    if rounds == ROUNDS_PER_TURN {
                        // A program writing flat out keeps a pipe readable for ever:
                        // take commands and let other tasks run, then go on.
                        break;
                    }
                }
                while let Ok(command) = rx.try_recv() {
                    apply(&epoll, &mut pipes, command);
                }
                tokio::task::consume_budget().await;
            }
        }
    }
}

/// After the engine has gone: read every pipe to its end.
async fn drain_all(
    epoll: &AsyncFd<OwnedFd>,
    pipes: &mut HashMap<PipeKey, Entry>,
    events: &mut [libc::epoll_event],
    buf: &mut [u8],
) {
    while !pipes.is_empty() {
        let Ok(mut guard) = epoll.readable().await else { return };
        let n = wait(epoll.get_ref(), events);
        if n == 0 {
            guard.clear_ready();
            continue;
        }
        for event in &events[..n] {
            pump_one(epoll, pipes, PipeKey(event.u64), buf);
        }
        tokio::task::consume_budget().await;
    }
}

fn apply(epoll: &AsyncFd<OwnedFd>, pipes: &mut HashMap<PipeKey, Entry>, command: Command) {
    match command {
        Command::Add(key, fd, dest) => {
            let mut event = libc::epoll_event { events: libc::EPOLLIN as u32, u64: key.0 };
            // SAFETY: both descriptors are open; `event` is a valid epoll_event.
            let added = unsafe {
                libc::epoll_ctl(epoll.get_ref().as_raw_fd(), libc::EPOLL_CTL_ADD, fd.as_raw_fd(), &mut event)
            };
            if added != 0 {
                // Without the pump the child would block on a full pipe: say so loudly.
                tracing::error!(
                    "{}: cannot read its {} pipe: {}",
                    dest.name,
                    dest.channel.as_str(),
                    io::Error::last_os_error()
                );
                return;
            }
            let stripper = dest.strip_ansi.then(AnsiStripper::new);
            pipes.insert(key, Entry { fd, dest, stripper });
        }
        Command::Stop(key, done) => {
            if let Some(entry) = pipes.remove(&key) {
                remove(epoll, &entry);
            }
            let _ = done.send(());
        }
    }
}

fn remove(epoll: &AsyncFd<OwnedFd>, entry: &Entry) {
    // SAFETY: both descriptors are open; DEL ignores the event argument.
    unsafe {
        libc::epoll_ctl(
            epoll.get_ref().as_raw_fd(),
            libc::EPOLL_CTL_DEL,
            entry.fd.as_raw_fd(),
            std::ptr::null_mut(),
        );
    }
}

/// The ready pipes, without blocking.
fn wait(epoll: &OwnedFd, events: &mut [libc::epoll_event]) -> usize {
    loop {
        // SAFETY: `events` is a valid buffer of `events.len()` entries.
        let n = unsafe {
            libc::epoll_wait(epoll.as_fd().as_raw_fd(), events.as_mut_ptr(), events.len() as i32, 0)
        };
        if n >= 0 {
            return n as usize;
        }
        if io::Error::last_os_error().kind() != io::ErrorKind::Interrupted {
            return 0;
        }
    }
}

/// Read one chunk from `key` and write it out; at EOF or on an error the pipe leaves.
fn pump_one(epoll: &AsyncFd<OwnedFd>, pipes: &mut HashMap<PipeKey, Entry>, key: PipeKey, buf: &mut [u8]) {
    let Some(entry) = pipes.get_mut(&key) else { return };
    match read(entry.fd.as_raw_fd(), buf) {
        Ok(0) => {
            write(entry, &[], true);
            if let Some(entry) = pipes.remove(&key) {
                remove(epoll, &entry);
            }
        }
        Ok(n) => write(entry, &buf[..n], false),
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
        Err(e) => {
            tracing::warn!("{}: reading {} pipe: {e}", entry.dest.name, entry.dest.channel.as_str());
            write(entry, &[], true);
            if let Some(entry) = pipes.remove(&key) {
                remove(epoll, &entry);
            }
        }
    }
}

fn read(fd: RawFd, buf: &mut [u8]) -> io::Result<usize> {
    loop {
        // SAFETY: `buf` is a valid, exclusively borrowed buffer of `buf.len()` bytes.
        let r = unsafe { libc::read(fd, buf.as_mut_ptr().cast(), buf.len()) };
        if r >= 0 {
            return Ok(r as usize);
        }
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
}

/// `strip_ansi`, the log file, and the activity log's copy, as the reader tasks do.
fn write(entry: &mut Entry, data: &[u8], eof: bool) {
    let stripped;
    let data = match &mut entry.stripper {
        None => data,
        Some(s) => {
            let mut out = Vec::with_capacity(data.len());
            s.strip(data, &mut out);
            if eof {
                s.finish(&mut out);
            }
            stripped = out;
            &stripped[..]
        }
    };
    if data.is_empty() {
        return;
    }
    if let Some(file) = &entry.dest.file {
        // The sink reports only the first failure of a streak, and its end.
        match lock(file).write(data) {
            Ok(None) => {}
            Ok(Some(resumed)) => tracing::warn!("{resumed}"),
            Err(e) => tracing::error!("{e}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn pipe() -> (OwnedFd, std::fs::File) {
        let (r, w) =
            nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC | nix::fcntl::OFlag::O_NONBLOCK).expect("pipe");
        (r, std::fs::File::from(w))
    }

    fn dest(file: Option<SharedFile>) -> Destination {
        Destination { file, strip_ansi: false, name: "p".into(), channel: Channel::Stdout }
    }

    fn wait_for_size(path: &std::path::Path, size: u64) {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        while std::fs::metadata(path).map(|m| m.len()).unwrap_or(0) < size {
            assert!(std::time::Instant::now() < deadline, "{} never reached {size} bytes", path.display());
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn every_pipe_reaches_its_own_file_in_order() {
        let dir = tempfile::tempdir().expect("tempdir");
        let pump = Pump::start().expect("pump");
        let mut writers = Vec::new();
        for i in 0..20 {
            let path = dir.path().join(format!("{i}.log"));
            let file = super::super::file::RotatingFile::open(&path, 0, 0).expect("open").shared();
            let (r, w) = pipe();
            pump.add(r, dest(Some(file)));
            writers.push((path, w));
        }
        let handles: Vec<_> = writers
            .into_iter()
            .enumerate()
            .map(|(i, (path, w))| {
                std::thread::spawn(move || {
                    let mut w = w;
                    // Blocking writes into a non-blocking pipe: retry on EAGAIN.
                    let mut expected = Vec::new();
                    for n in 0..2000 {
                        let line = format!("{i}:{n}\n");
                        expected.extend_from_slice(line.as_bytes());
                        let mut rest = line.as_bytes();
                        while !rest.is_empty() {
                            match w.write(rest) {
                                Ok(k) => rest = &rest[k..],
                                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                                    std::thread::sleep(std::time::Duration::from_millis(1))
                                }
                                Err(e) => panic!("{e}"),
                            }
                        }
                    }
                    (path, expected)
                })
            })
            .collect();
        for h in handles {
            let (path, expected) = h.join().expect("writer");
            wait_for_size(&path, expected.len() as u64);
            assert_eq!(std::fs::read(&path).expect("read"), expected);
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_stopped_pipe_is_no_longer_read_and_keeps_what_it_holds() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("out.log");
        let file = super::super::file::RotatingFile::open(&path, 0, 0).expect("open").shared();
        let pump = Pump::start().expect("pump");
        let (r, mut w) = pipe();
        // A second descriptor of the same pipe: what a re-exec hands over.
        let kept = r.try_clone().expect("dup");
        let key = pump.add(r, dest(Some(file)));
        w.write_all(b"before\n").expect("write");
        wait_for_size(&path, 7);
        pump.stop(key).await.expect("stopped");
        w.write_all(b"after\n").expect("write");
        let mut rest = [0u8; 16];
        let n = nix::unistd::read(&kept, &mut rest).expect("read");
        assert_eq!(&rest[..n], b"after\n", "the pump no longer reads it");
        assert_eq!(std::fs::read(&path).expect("read"), b"before\n");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_pipe_leaves_at_eof_and_strip_ansi_applies() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("out.log");
        let file = super::super::file::RotatingFile::open(&path, 0, 0).expect("open").shared();
        let pump = Pump::start().expect("pump");
        let (r, mut w) = pipe();
        let key = pump.add(r, Destination { strip_ansi: true, ..dest(Some(file)) });
        w.write_all(b"\x1b[31mred\x1b[0m\n").expect("write");
        drop(w);
        wait_for_size(&path, 4);
        // Stopping a pipe that already ended answers at once.
        pump.stop(key).await.expect("stopped");
        assert_eq!(std::fs::read(&path).expect("read"), b"red\n");
    }
}
