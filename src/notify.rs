//! systemd's readiness protocol (`sd_notify`) without libsystemd.
//!
//! When systemd starts a `Type=notify` service it puts the path of a unix
//! datagram socket in `NOTIFY_SOCKET` (a leading `@` means an abstract socket).
//! The service sends newline-separated `KEY=value` assignments there:
//! `READY=1` once it is up, `STATUS=` free text for `systemctl status`,
//! `RELOADING=1` (with `MONOTONIC_USEC=`) when it starts reloading and
//! `READY=1` again when done, `STOPPING=1` when it begins to shut down, and
//! `MAINPID=` when the process systemd should watch is not the one it started.
//!
//! corrald takes the variable out of its environment at start
//! ([`Notifier::take_from_env`]), so supervised programs never inherit the
//! daemon's notify socket, and [`track`] turns the engine's notices into
//! these messages:
//!
//! - `READY=1` after the engine has entered RUNNING and started every
//!   autostart program in priority order (the first `getAllProcessInfo`
//!   answered after that notice, since the engine spawns them before it
//!   serves any command);
//! - `STATUS=3 running, 1 fatal` whenever process states change, at most
//!   once per [`STATUS_INTERVAL`];
//! - `RELOADING=1` + `MONOTONIC_USEC=` on SIGHUP or `supervisor.restart`,
//!   then `READY=1` when the programs are started again;
//! - `STOPPING=1` on shutdown.

use std::future::Future;
use std::io;
use std::os::unix::net::{SocketAddr, UnixDatagram};
use std::time::Duration;

use tokio::sync::broadcast::{self, error::RecvError};
use tokio::time::Instant;

use crate::engine::{Handle, Mood, Notice, ProcessInfo, ProcessState};

/// The environment variable systemd sets for `Type=notify` services.
pub const NOTIFY_SOCKET_ENV: &str = "NOTIFY_SOCKET";

/// Shortest time between two `STATUS=` messages: a crash loop or a pool of
/// hundreds of workers starting must not flood the service manager.
pub const STATUS_INTERVAL: Duration = Duration::from_secs(1);

/// Why a notification could not be sent.
#[derive(Debug, thiserror::Error)]
pub enum NotifyError {
    /// `NOTIFY_SOCKET` is neither an absolute path nor `@abstract`.
    #[error("NOTIFY_SOCKET={0:?} is neither an absolute path nor an abstract socket name")]
    BadAddress(String),
    /// The socket could not be created or the datagram not sent.
    #[error("sending to NOTIFY_SOCKET {addr}: {source}")]
    Send {
        /// The socket as given in the environment.
        addr: String,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
}

/// A connection to the service manager's notify socket.
#[derive(Debug)]
pub struct Notifier {
    socket: UnixDatagram,
    addr: SocketAddr,
    text: String,
}

impl Notifier {
    /// Reads and removes `NOTIFY_SOCKET` from the environment. `Ok(None)`
    /// when corrald was not started by a service manager that wants
    /// notifications.
    ///
    /// Must be called before any thread exists (it changes the process
    /// environment), which `corrald` does first thing in `main`.
    pub fn take_from_env() -> Result<Option<Notifier>, NotifyError> {
        let Some(value) = std::env::var_os(NOTIFY_SOCKET_ENV) else {
            return Ok(None);
        };
        // Children must not talk to systemd in corrald's name.
        std::env::remove_var(NOTIFY_SOCKET_ENV);
        let text = value.to_string_lossy().into_owned();
        if text.is_empty() {
            return Ok(None);
        }
        Notifier::connect(&text).map(Some)
    }

    /// A notifier for `addr`: an absolute path, or `@name` for an abstract socket.
    pub fn connect(addr: &str) -> Result<Notifier, NotifyError> {
        let send_err = |source| NotifyError::Send { addr: addr.to_string(), source };
        let sockaddr = if let Some(name) = addr.strip_prefix('@') {
            use std::os::linux::net::SocketAddrExt;
            SocketAddr::from_abstract_name(name.as_bytes()).map_err(send_err)?
        } else if addr.starts_with('/') {
            SocketAddr::from_pathname(addr).map_err(send_err)?
        } else {
            return Err(NotifyError::BadAddress(addr.to_string()));
        };
        let socket = UnixDatagram::unbound().map_err(send_err)?;
        Ok(Notifier { socket, addr: sockaddr, text: addr.to_string() })
    }

    /// Sends one message (newline-separated `KEY=value` assignments).
    pub fn send(&self, message: &str) -> Result<(), NotifyError> {
        self.socket
            .send_to_addr(message.as_bytes(), &self.addr)
            .map(|_| ())
            .map_err(|source| NotifyError::Send { addr: self.text.clone(), source })
    }

    /// Sends a message; a failure is logged, never fatal (the daemon's job
    /// is its programs, not its service manager).
    pub fn send_or_warn(&self, message: &str) {
        if let Err(e) = self.send(message) {
            tracing::warn!("{e}");
        }
    }
}

/// `MONOTONIC_USEC=` value: CLOCK_MONOTONIC in microseconds, which systemd
/// compares with its own reload request time.
pub fn monotonic_usec() -> u64 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: `ts` is a valid, writable timespec; CLOCK_MONOTONIC always exists on Linux.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    (ts.tv_sec as u64) * 1_000_000 + (ts.tv_nsec as u64) / 1_000
}

/// The `RELOADING=1` message with its timestamp.
pub fn reloading_message() -> String {
    format!("RELOADING=1\nMONOTONIC_USEC={}", monotonic_usec())
}

/// Process counts per state for `STATUS=`, in lifecycle order, e.g.
/// `12 running, 1 fatal`; `no programs` when there are none.
pub fn status_text(infos: &[ProcessInfo]) -> String {
    const ORDER: [ProcessState; 8] = [
        ProcessState::Running,
        ProcessState::Starting,
        ProcessState::Backoff,
        ProcessState::Stopping,
        ProcessState::Stopped,
        ProcessState::Exited,
        ProcessState::Fatal,
        ProcessState::Unknown,
    ];
    let parts: Vec<String> = ORDER
        .iter()
        .filter_map(|state| {
            let n = infos.iter().filter(|i| i.state == *state).count();
            (n > 0).then(|| format!("{n} {}", state.name().to_lowercase()))
        })
        .collect();
    if parts.is_empty() {
        "no programs".to_string()
    } else {
        parts.join(", ")
    }
}

/// Follows the engine and reports to the service manager until the engine
/// stops. It subscribes when called, so call it before `Engine::run` is
/// awaited (and spawn the returned future) to see the first RUNNING notice.
pub fn track(handle: Handle, notifier: Notifier) -> impl Future<Output = ()> + Send + 'static {
    let notices = handle.subscribe();
    report(handle, notices, notifier)
}

async fn report(handle: Handle, mut notices: broadcast::Receiver<Notice>, notifier: Notifier) {
    let mut last_status: Option<Instant> = None;
    let mut dirty = false;
    let mut shown = String::new();
    loop {
        let due = last_status.map_or_else(Instant::now, |t| t + STATUS_INTERVAL);
        tokio::select! {
            notice = notices.recv() => match notice {
                Ok(Notice::Mood(Mood::Running)) => {
                    // The engine spawns the autostart programs before it serves
                    // the next command, so this answer comes after they started.
                    let Ok(infos) = handle.all_process_info().await else { return };
                    shown = status_text(&infos);
                    notifier.send_or_warn(&format!("READY=1\nSTATUS={shown}"));
                    last_status = Some(Instant::now());
                    dirty = false;
                }
                Ok(Notice::Mood(Mood::Restarting)) => {
                    notifier.send_or_warn(&format!("{}\nSTATUS=reloading", reloading_message()));
                }
                Ok(Notice::Mood(Mood::Shutdown)) => {
                    notifier.send_or_warn("STOPPING=1\nSTATUS=stopping");
                }
                Ok(Notice::ProcessState { .. } | Notice::GroupAdded(_) | Notice::GroupRemoved(_))
                | Err(RecvError::Lagged(_)) => dirty = true,
                Ok(_) => {}
                Err(RecvError::Closed) => return,
            },
            _ = tokio::time::sleep_until(due), if dirty => {
                dirty = false;
                last_status = Some(Instant::now());
                let Ok(infos) = handle.all_process_info().await else { return };
                let text = status_text(&infos);
                if text != shown {
                    notifier.send_or_warn(&format!("STATUS={text}"));
                    shown = text;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(state: ProcessState) -> ProcessInfo {
        ProcessInfo {
            name: "x".into(),
            group: "x".into(),
            start: 0,
            stop: 0,
            now: 0,
            state,
            spawnerr: String::new(),
            exitstatus: 0,
            stdout_logfile: String::new(),
            stderr_logfile: String::new(),
            pid: 0,
            description: String::new(),
            restarts: 0,
            oom_kills: 0,
            cgroup: None,
        }
    }

    #[test]
    fn status_counts_states_in_lifecycle_order() {
        let infos = [
            info(ProcessState::Fatal),
            info(ProcessState::Running),
            info(ProcessState::Running),
            info(ProcessState::Starting),
        ];
        assert_eq!(status_text(&infos), "2 running, 1 starting, 1 fatal");
        assert_eq!(status_text(&[]), "no programs");
    }

    #[test]
    fn sends_to_a_path_and_to_an_abstract_socket() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("notify");
        let server = UnixDatagram::bind(&path).expect("bind");
        Notifier::connect(path.to_str().expect("utf-8")).expect("connect").send("READY=1").expect("send");
        let mut buf = [0u8; 64];
        let n = server.recv(&mut buf).expect("recv");
        assert_eq!(&buf[..n], b"READY=1");

        use std::os::linux::net::SocketAddrExt;
        let name = format!("corral-notify-test-{}", std::process::id());
        let addr = SocketAddr::from_abstract_name(name.as_bytes()).expect("abstract name");
        let server = UnixDatagram::bind_addr(&addr).expect("bind abstract");
        Notifier::connect(&format!("@{name}")).expect("connect").send("STOPPING=1").expect("send");
        let n = server.recv(&mut buf).expect("recv");
        assert_eq!(&buf[..n], b"STOPPING=1");
    }

    #[test]
    fn relative_addresses_are_refused() {
        assert!(matches!(Notifier::connect("notify.sock"), Err(NotifyError::BadAddress(_))));
    }

    #[test]
    fn reloading_carries_a_monotonic_timestamp() {
        let msg = reloading_message();
        let usec: u64 = msg
            .strip_prefix("RELOADING=1\nMONOTONIC_USEC=")
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("{msg:?}"));
        assert!(usec > 0);
    }
}
