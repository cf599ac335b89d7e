//! Readiness and health checks: the daemon's notify socket for programs,
//! `fd:N` readiness pipes and the network probes.
//!
//! Nothing here touches process state. Each piece is a small tokio task that
//! reports back to the engine task through one channel ([`Report`]); the
//! engine decides what a report means for the process. `exec:` probes are
//! forked by the engine itself (it is the only reaper), not here.

use std::io::{self, IoSliceMut};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::{SocketAddr, UnixDatagram};
use std::path::Path;
use std::time::Duration;

use nix::sys::socket::{recvmsg, setsockopt, sockopt, ControlMessageOwned, MsgFlags, UnixAddr};
use tokio::io::unix::AsyncFd;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc;

use super::core::ProcId;
use crate::config::Probe;

/// Something a check found out, sent to the engine task.
#[derive(Debug)]
pub(crate) enum Report {
    /// A datagram on the notify socket from `pid` (the kernel's credentials).
    Notify {
        /// Sender pid.
        pid: i32,
        /// The message text.
        text: String,
    },
    /// A probe or readiness pipe of process `id`, started in generation `generation`.
    Check {
        /// The process.
        id: ProcId,
        /// The process's check generation when the check began.
        generation: u64,
        /// `Ok` when it passed, else why not.
        result: Result<(), String>,
    },
}

/// Largest notify datagram read (systemd allows more, but status texts are short).
const NOTIFY_MAX: usize = 4096;

/// The daemon's notify socket: one abstract `SOCK_DGRAM` socket with
/// `SO_PASSCRED`, so every datagram carries the sender's pid from the kernel.
pub(crate) struct NotifySocket {
    /// What programs get in `NOTIFY_SOCKET` (`@name`).
    pub env_value: String,
}

impl NotifySocket {
    /// Bind `@corral/<identifier>/<daemon pid>/notify` and start the task that
    /// forwards datagrams to `tx`.
    pub fn bind(identifier: &str, tx: mpsc::Sender<Report>) -> io::Result<NotifySocket> {
        let name = format!("corral/{identifier}/{}/notify", std::process::id());
        let addr = SocketAddr::from_abstract_name(name.as_bytes())?;
        let sock = UnixDatagram::bind_addr(&addr)?;
        setsockopt(&sock, sockopt::PassCred, &true).map_err(io::Error::from)?;
        sock.set_nonblocking(true)?;
        // SAFETY: the socket is moved into the `AsyncFd`, which owns it until
        // it is dropped, so the descriptor stays open and unchanged meanwhile.
        let fd = unsafe { AsyncFd::register_with_interest(sock, tokio::io::Interest::READABLE) }
            .map_err(io::Error::from)?;
        tokio::spawn(async move {
            let mut buf = vec![0u8; NOTIFY_MAX];
            loop {
                let Ok(mut guard) = fd.readable().await else { return };
                match guard.try_io(|inner| recv_with_pid(inner.get_ref(), &mut buf)) {
                    Ok(Ok((pid, n))) => {
                        let text = String::from_utf8_lossy(&buf[..n]).into_owned();
                        // Awaiting a full channel leaves datagrams in the socket's
                        // buffer, so a flood costs the kernel's memory, not ours.
                        if tx.send(Report::Notify { pid, text }).await.is_err() {
                            return;
                        }
                    }
                    Ok(Err(e)) => tracing::debug!("notify socket: {e}"),
                    Err(_would_block) => continue,
                }
            }
        });
        Ok(NotifySocket { env_value: format!("@{name}") })
    }
}

/// One datagram and the sender's pid (0 when the kernel gave no credentials).
fn recv_with_pid(sock: &UnixDatagram, buf: &mut [u8]) -> io::Result<(i32, usize)> {
    let mut cmsg = nix::cmsg_space!(libc::ucred);
    let mut iov = [IoSliceMut::new(buf)];
    let msg = recvmsg::<UnixAddr>(sock.as_raw_fd(), &mut iov, Some(&mut cmsg), MsgFlags::MSG_CMSG_CLOEXEC)
        .map_err(io::Error::from)?;
    let mut pid = 0;
    if let Ok(cmsgs) = msg.cmsgs() {
        for c in cmsgs {
            if let ControlMessageOwned::ScmCredentials(cred) = c {
                pid = cred.pid();
            }
        }
    }
    Ok((pid, msg.bytes))
}

/// One `KEY=value` assignment of a notify message that corrald acts on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum NotifyMsg {
    /// `READY=1`.
    Ready,
    /// `STATUS=text`.
    Status(String),
    /// `STOPPING=1`.
    Stopping,
    /// `RELOADING=1`.
    Reloading,
    /// `WATCHDOG=1`.
    Watchdog,
    /// `WATCHDOG=trigger`: the program asks to be treated as hung.
    WatchdogTrigger,
    /// `EXTEND_TIMEOUT_USEC=n`.
    ExtendTimeout(Duration),
}

/// Parse a notify datagram as systemd does: newline-separated assignments,
/// unknown ones ignored.
pub(crate) fn parse_notify(text: &str) -> Vec<NotifyMsg> {
    let mut out = Vec::new();
    for line in text.split('\n') {
        let Some((k, v)) = line.split_once('=') else { continue };
        match (k, v) {
            ("READY", "1") => out.push(NotifyMsg::Ready),
            ("STATUS", v) => out.push(NotifyMsg::Status(v.to_string())),
            ("STOPPING", "1") => out.push(NotifyMsg::Stopping),
            ("RELOADING", "1") => out.push(NotifyMsg::Reloading),
            ("WATCHDOG", "1") => out.push(NotifyMsg::Watchdog),
            ("WATCHDOG", "trigger") => out.push(NotifyMsg::WatchdogTrigger),
            ("EXTEND_TIMEOUT_USEC", v) => {
                if let Ok(us) = v.parse::<u64>() {
                    out.push(NotifyMsg::ExtendTimeout(Duration::from_micros(us)));
                }
            }
            _ => {}
        }
    }
    out
}

/// Whether `pid` sits in `cgroup` (a path as `/proc/PID/cgroup` shows it) or below it.
pub(crate) fn pid_in_cgroup(proc_cgroup: &str, cgroup: &str) -> bool {
    proc_cgroup.lines().any(|line| {
        let path = line.splitn(3, ':').nth(2).unwrap_or("");
        path == cgroup || path.strip_prefix(cgroup).is_some_and(|rest| rest.starts_with('/'))
    })
}

/// The pipe for `ready=fd:N`: a non-blocking read end for corrald and a
/// blocking write end numbered `n` or above (close-on-exec both; the child
/// gets the write end as its descriptor `n`).
///
/// Holding `n` itself when it is free keeps every other descriptor opened
/// before the fork (such as the one std uses to report a failed exec) off
/// that number, so placing the write end there in the child closes nothing else.
pub(crate) fn readiness_pipe(n: i32) -> nix::Result<(OwnedFd, OwnedFd)> {
    use nix::fcntl::{fcntl, FcntlArg, OFlag};
    use std::os::fd::FromRawFd;
    let (r, w) = nix::unistd::pipe2(OFlag::O_CLOEXEC)?;
    let flags = OFlag::from_bits_truncate(fcntl(&r, FcntlArg::F_GETFL)?);
    fcntl(&r, FcntlArg::F_SETFL(flags | OFlag::O_NONBLOCK))?;
    let high = fcntl(&w, FcntlArg::F_DUPFD_CLOEXEC(n))?;
    // SAFETY: F_DUPFD_CLOEXEC just returned this new descriptor, owned by nothing else.
    let w = unsafe { OwnedFd::from_raw_fd(high) };
    Ok((r, w))
}

/// Wait for a newline on the `fd:N` readiness pipe of descriptor `n` (read end,
/// non-blocking); report once: ready, or why it never will be (closed first).
pub(crate) fn watch_ready_fd(
    fd: OwnedFd,
    n: i32,
    id: ProcId,
    generation: u64,
    tx: mpsc::Sender<Report>,
) -> io::Result<tokio::task::JoinHandle<()>> {
    // SAFETY: as for the notify socket: the `AsyncFd` owns the descriptor.
    let afd = unsafe { AsyncFd::register_with_interest(fd, tokio::io::Interest::READABLE) }
        .map_err(io::Error::from)?;
    Ok(tokio::spawn(async move {
        let mut buf = [0u8; 512];
        let result = loop {
            let Ok(mut guard) = afd.readable().await else {
                break Err(format!("cannot wait on the readiness pipe of fd {n} (ready=fd:{n})"));
            };
            let read =
                guard.try_io(|inner| nix::unistd::read(inner.get_ref(), &mut buf).map_err(io::Error::from));
            match read {
                // Every copy of the write end is closed: s6's "never ready".
                Ok(Ok(0)) => break Err(format!("closed fd {n} without writing a newline (ready=fd:{n})")),
                Ok(Ok(len)) if buf[..len].contains(&b'\n') => break Ok(()),
                Ok(Ok(_)) => continue,
                Ok(Err(e)) => break Err(format!("reading the readiness pipe of fd {n}: {e} (ready=fd:{n})")),
                Err(_would_block) => continue,
            }
        };
        let _ = tx.send(Report::Check { id, generation, result }).await;
    }))
}

/// Run a network or file probe in its own task, bounded by `timeout`.
/// (`exec:` probes are run by the engine.)
pub(crate) fn spawn_probe(
    probe: Probe,
    timeout: Duration,
    id: ProcId,
    generation: u64,
    tx: mpsc::Sender<Report>,
) {
    tokio::spawn(async move {
        let result = match tokio::time::timeout(timeout, run_probe(&probe)).await {
            Ok(r) => r,
            Err(_) => {
                Err(format!("{} timed out after {}", probe.describe(), super::state::secs_text(timeout)))
            }
        };
        let _ = tx.send(Report::Check { id, generation, result }).await;
    });
}

async fn run_probe(probe: &Probe) -> Result<(), String> {
    match probe {
        Probe::Tcp { host, port } => TcpStream::connect((host.as_str(), *port))
            .await
            .map(drop)
            .map_err(|e| format!("tcp:{host}:{port}: {e}")),
        Probe::Http(url) => http_get(url).await.map_err(|e| format!("{url}: {e}")),
        Probe::File(path) => file_exists(path),
        Probe::Exec(_) => Err("exec probes are run by the engine".into()),
    }
}

fn file_exists(path: &Path) -> Result<(), String> {
    match std::fs::symlink_metadata(path) {
        Ok(_) => Ok(()),
        Err(e) => Err(format!("file:{}: {e}", path.display())),
    }
}

/// `GET` the URL over HTTP/1.0; passes on a 2xx status line.
async fn http_get(url: &str) -> Result<(), String> {
    let (host, port, path) = crate::config::readiness::http_target(url).map_err(str::to_string)?;
    let mut conn = TcpStream::connect((host.as_str(), port)).await.map_err(|e| e.to_string())?;
    let bracketed = if host.contains(':') { format!("[{host}]") } else { host.clone() };
    let host_header = if port == 80 { bracketed } else { format!("{bracketed}:{port}") };
    let req = format!(
        "GET {path} HTTP/1.0\r\nHost: {host_header}\r\nUser-Agent: corrald\r\nConnection: close\r\n\r\n"
    );
    conn.write_all(req.as_bytes()).await.map_err(|e| e.to_string())?;
    // The status line is all that matters; read until its end.
    let mut head = Vec::with_capacity(128);
    let mut buf = [0u8; 256];
    while !head.contains(&b'\n') && head.len() < 4096 {
        let n = conn.read(&mut buf).await.map_err(|e| e.to_string())?;
        if n == 0 {
            break;
        }
        head.extend_from_slice(&buf[..n]);
    }
    let line = String::from_utf8_lossy(&head);
    let line = line.lines().next().unwrap_or("").trim();
    let code = line.split_whitespace().nth(1).unwrap_or("");
    if line.starts_with("HTTP/") && code.len() == 3 && code.starts_with('2') {
        Ok(())
    } else if line.is_empty() {
        Err("no HTTP answer".into())
    } else {
        Err(format!("answered {line:?}"))
    }
}

/// A stable offset in `[0, interval)` for `key`, so the first checks of many
/// programs spread over the interval instead of landing in the same instant.
pub(crate) fn stagger(key: &str, interval: Duration) -> Duration {
    // FNV-1a: stable across runs and platforms.
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in key.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    let ms = interval.as_millis().max(1) as u64;
    Duration::from_millis(h % ms)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notify_messages_parse_as_systemd_does() {
        assert_eq!(
            parse_notify("READY=1\nSTATUS=serving 3 clients\nMAINPID=4\nWATCHDOG=1"),
            vec![NotifyMsg::Ready, NotifyMsg::Status("serving 3 clients".into()), NotifyMsg::Watchdog]
        );
        assert_eq!(
            parse_notify("EXTEND_TIMEOUT_USEC=2500000\nSTOPPING=1\nRELOADING=1\nWATCHDOG=trigger\nREADY=0"),
            vec![
                NotifyMsg::ExtendTimeout(Duration::from_millis(2500)),
                NotifyMsg::Stopping,
                NotifyMsg::Reloading,
                NotifyMsg::WatchdogTrigger
            ]
        );
    }

    #[test]
    fn cgroup_membership_is_the_leaf_or_below() {
        let hybrid = "12:memory:/corral/g/p\n0::/corral/g/p\n";
        assert!(pid_in_cgroup(hybrid, "/corral/g/p"));
        assert!(pid_in_cgroup("0::/corral/g/p/sub\n", "/corral/g/p"));
        assert!(!pid_in_cgroup("0::/corral/g/p2\n", "/corral/g/p"));
        assert!(!pid_in_cgroup("0::/corral/g\n", "/corral/g/p"));
    }

    #[test]
    fn stagger_is_stable_and_inside_the_interval() {
        let i = Duration::from_secs(30);
        assert_eq!(stagger("g:p", i), stagger("g:p", i));
        let offsets: std::collections::BTreeSet<_> =
            (0..100).map(|n| stagger(&format!("g:p{n}"), i)).collect();
        assert!(offsets.iter().all(|o| *o < i));
        assert!(offsets.len() > 90, "names spread over the interval");
    }
}
