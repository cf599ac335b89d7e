//! A child's stdin as `sendProcessStdin` writes it: in call order, never
//! blocking the engine, with a bounded backlog.
//!
//! A call writes straight into the pipe while nothing is queued. What the pipe
//! does not take (the child is not reading) is queued, and one writer task per
//! process feeds the queue to the pipe as it drains; while anything is queued,
//! later calls append to the queue, so nothing overtakes earlier data. The
//! queue holds at most [`STDIN_QUEUE_MAX`] bytes: a call that would exceed it
//! fails as a whole (nothing of it is written) and the caller reports a fault.
//! The writer task changes the queue only under its lock, between two
//! non-blocking writes, so stopping it (child gone, re-exec) leaves the queue
//! exactly as what has not reached the pipe yet.

use std::collections::VecDeque;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::io::unix::AsyncFd;

/// Most bytes accepted for one process's stdin and not yet taken by its pipe.
pub const STDIN_QUEUE_MAX: usize = 1024 * 1024;

/// Why bytes could not be sent to a child's stdin.
#[derive(Debug, thiserror::Error)]
pub enum StdinError {
    /// The child closed its stdin (or has none): supervisord's `NO_FILE`.
    #[error("stdin is closed")]
    Closed,
    /// The child is not reading fast enough and the queue would exceed its limit.
    #[error(
        "stdin is full: {pending} bytes are still waiting for the program to read them, \
         {len} more would exceed the limit of {STDIN_QUEUE_MAX} bytes"
    )]
    Full {
        /// Bytes already queued.
        pending: usize,
        /// Bytes of the refused call.
        len: usize,
    },
    /// Writing failed otherwise.
    #[error("writing to stdin: {0}")]
    Io(#[source] io::Error),
}

#[derive(Debug, Default)]
struct Queue {
    /// Accepted bytes the pipe has not taken yet, in order.
    buf: VecDeque<u8>,
    /// The read end is gone (EPIPE): nothing more can be written.
    broken: bool,
}

fn lock(q: &Mutex<Queue>) -> MutexGuard<'_, Queue> {
    q.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// One `write(2)` on a non-blocking descriptor.
fn write_some(fd: &OwnedFd, data: &[u8]) -> io::Result<usize> {
    loop {
        // SAFETY: the slice is valid for its length and the descriptor is open.
        let n = unsafe { libc::write(fd.as_raw_fd(), data.as_ptr().cast(), data.len()) };
        if n >= 0 {
            return Ok(n as usize);
        }
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
}

fn is_closed(e: &io::Error) -> bool {
    e.raw_os_error() == Some(libc::EPIPE)
}

/// The write end of a child's stdin pipe, with its queue and writer task.
#[derive(Debug)]
pub(crate) struct Stdin {
    fd: OwnedFd,
    queue: Arc<Mutex<Queue>>,
    writer: Option<Writer>,
}

impl Stdin {
    /// Wrap the write end of a child's stdin (made non-blocking here).
    pub fn new(fd: OwnedFd) -> Stdin {
        if let Err(e) = set_nonblocking(&fd) {
            tracing::debug!("stdin pipe: cannot make it non-blocking: {e}");
        }
        Stdin { fd, queue: Arc::default(), writer: None }
    }

    /// Bytes accepted and not yet in the pipe.
    pub fn pending(&self) -> usize {
        lock(&self.queue).buf.len()
    }

    /// Send `data` after everything sent before; see the module documentation.
    pub fn send(&mut self, data: &[u8]) -> Result<(), StdinError> {
        let mut q = lock(&self.queue);
        if q.broken {
            return Err(StdinError::Closed);
        }
        if q.buf.len() + data.len() > STDIN_QUEUE_MAX {
            return Err(StdinError::Full { pending: q.buf.len(), len: data.len() });
        }
        if !q.buf.is_empty() {
            // The writer task is running; it looks at the queue under this lock.
            q.buf.extend(data);
            return Ok(());
        }
        let mut off = 0;
        while off < data.len() {
            match write_some(&self.fd, &data[off..]) {
                Ok(n) => off += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if is_closed(&e) => {
                    q.broken = true;
                    return Err(StdinError::Closed);
                }
                Err(e) => return Err(StdinError::Io(e)),
            }
        }
        if off < data.len() {
            q.buf.extend(&data[off..]);
            drop(q);
            self.start_writer().map_err(StdinError::Io)?;
        }
        Ok(())
    }

    /// Queue bytes a previous daemon had accepted and not written (a re-exec),
    /// ahead of anything sent from now on.
    pub fn restore_pending(&mut self, data: Vec<u8>) {
        if data.is_empty() {
            return;
        }
        lock(&self.queue).buf.extend(data);
        if let Err(e) = self.start_writer() {
            tracing::warn!("stdin: cannot write {} carried-over bytes: {e}", self.pending());
        }
    }

    /// Stop the writer task and take what has not reached the pipe yet (for a re-exec).
    pub fn take_pending(&mut self) -> Vec<u8> {
        self.writer = None;
        std::mem::take(&mut lock(&self.queue).buf).into()
    }

    /// Take the pipe's write end out; whatever is still queued is dropped
    /// (take it first with [`take_pending`](Self::take_pending)).
    pub fn into_fd(self) -> OwnedFd {
        self.fd
    }

    /// Start the writer task (the previous one, if any, has emptied the queue
    /// and ended or is about to, without writing again).
    fn start_writer(&mut self) -> io::Result<()> {
        let dup = self.fd.try_clone()?;
        // SAFETY: the duplicate moves into the `AsyncFd`, which owns it until dropped.
        let afd = unsafe { AsyncFd::register_with_interest(dup, tokio::io::Interest::WRITABLE) }
            .map_err(io::Error::from)?;
        let queue = self.queue.clone();
        self.writer = Some(Writer(tokio::spawn(feed(afd, queue))));
        Ok(())
    }
}

/// The writer task's handle; the task stops when its `Stdin` goes (the child
/// is gone, the process is removed, or a re-exec took the queue).
#[derive(Debug)]
struct Writer(tokio::task::JoinHandle<()>);

impl Drop for Writer {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// The writer task: feed the queue to the pipe whenever it can take more; end
/// when the queue is empty (under the lock, so the next call writes directly).
async fn feed(afd: AsyncFd<OwnedFd>, queue: Arc<Mutex<Queue>>) {
    loop {
        let mut ready = match afd.writable().await {
            Ok(r) => r,
            Err(e) => {
                let mut q = lock(&queue);
                tracing::debug!("stdin: waiting for the pipe failed, {} bytes dropped: {e}", q.buf.len());
                q.broken = true;
                q.buf.clear();
                return;
            }
        };
        let mut q = lock(&queue);
        loop {
            if q.buf.is_empty() {
                return;
            }
            let (front, _) = q.buf.as_slices();
            match write_some(afd.get_ref(), front) {
                Ok(n) => {
                    q.buf.drain(..n);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    ready.clear_ready();
                    break;
                }
                Err(e) => {
                    tracing::debug!("stdin: {} queued bytes dropped: {e}", q.buf.len());
                    q.broken = true;
                    q.buf.clear();
                    return;
                }
            }
        }
    }
}

fn set_nonblocking(fd: &OwnedFd) -> io::Result<()> {
    use nix::fcntl::{fcntl, FcntlArg, OFlag};
    use std::os::fd::AsFd;
    let flags = fcntl(fd.as_fd(), FcntlArg::F_GETFL)?;
    fcntl(fd.as_fd(), FcntlArg::F_SETFL(OFlag::from_bits_retain(flags) | OFlag::O_NONBLOCK))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    fn pipe() -> (std::fs::File, OwnedFd) {
        let (r, w) = nix::unistd::pipe().expect("pipe");
        (std::fs::File::from(r), w)
    }

    fn rt() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime")
    }

    /// Numbered lines, so any reordering or loss shows.
    fn lines(from: usize, n: usize) -> Vec<u8> {
        (from..from + n).map(|i| format!("{i:08}\n")).collect::<String>().into_bytes()
    }

    #[test]
    fn writes_keep_their_order_when_the_pipe_fills() {
        rt().block_on(async {
            let (mut r, w) = pipe();
            let mut stdin = Stdin::new(w);
            // More than a pipe holds: the rest is queued.
            let big = lines(0, 20_000);
            stdin.send(&big).expect("accepted");
            assert!(stdin.pending() > 0, "the pipe filled up");
            let mut expected = big;
            for i in 0..100 {
                let more = lines(20_000 + i, 1);
                stdin.send(&more).expect("accepted");
                expected.extend(more);
            }
            let reader = tokio::task::spawn_blocking(move || {
                let mut got = vec![0u8; expected.len()];
                r.read_exact(&mut got).expect("read everything");
                (got, expected)
            });
            let (got, expected) = reader.await.expect("reader");
            assert!(got == expected, "bytes arrive in the order they were sent");
            // Once drained, a send writes directly again.
            tokio::task::yield_now().await;
            assert_eq!(stdin.pending(), 0);
        });
    }

    #[test]
    fn a_send_beyond_the_limit_fails_whole_and_later_ones_succeed_once_read() {
        rt().block_on(async {
            let (mut r, w) = pipe();
            let mut stdin = Stdin::new(w);
            let chunk = vec![b'x'; 64 * 1024];
            let mut accepted = 0;
            let err = loop {
                match stdin.send(&chunk) {
                    Ok(()) => accepted += chunk.len(),
                    Err(e) => break e,
                }
            };
            assert!(matches!(err, StdinError::Full { len, .. } if len == chunk.len()), "{err}");
            assert!(err.to_string().contains("limit of 1048576 bytes"), "{err}");
            assert!(stdin.pending() <= STDIN_QUEUE_MAX);
            let reader = tokio::task::spawn_blocking(move || {
                let mut got = vec![0u8; accepted];
                r.read_exact(&mut got).expect("read what was accepted");
                r
            });
            let _r = reader.await.expect("reader");
            stdin.send(b"more").expect("room again");
        });
    }

    #[test]
    fn a_closed_read_end_is_reported_as_closed() {
        rt().block_on(async {
            let (r, w) = pipe();
            drop(r);
            let mut stdin = Stdin::new(w);
            assert!(matches!(stdin.send(b"x"), Err(StdinError::Closed)));
            assert!(matches!(stdin.send(b"y"), Err(StdinError::Closed)), "and stays closed");
        });
    }

    #[test]
    fn pending_bytes_can_be_taken_and_queued_again_in_order() {
        rt().block_on(async {
            let (mut r, w) = pipe();
            let mut stdin = Stdin::new(w);
            let data = lines(0, 20_000);
            stdin.send(&data).expect("accepted");
            let pending = stdin.take_pending();
            assert!(!pending.is_empty());
            let fd = stdin.into_fd();
            // As after a re-exec: a new owner of the same pipe queues the rest first.
            let mut next = Stdin::new(fd);
            next.restore_pending(pending);
            next.send(b"after\n").expect("accepted");
            let mut expected = data;
            expected.extend_from_slice(b"after\n");
            let reader = tokio::task::spawn_blocking(move || {
                let mut got = vec![0u8; expected.len()];
                r.read_exact(&mut got).expect("read everything");
                (got, expected)
            });
            let (got, expected) = reader.await.expect("reader");
            assert!(got == expected, "nothing lost or reordered across the hand-over");
        });
    }
}
