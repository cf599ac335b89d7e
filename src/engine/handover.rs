//! Re-exec hand-over: the engine's state and the descriptors that outlive an
//! `execve` of corrald.
//!
//! The old daemon writes a [`SavedState`] (JSON) into a memfd, clears
//! `FD_CLOEXEC` on that memfd and on every descriptor the state names (the
//! children's pipes, the HTTP listeners), and executes the binary again with
//! the memfd's number in `CORRAL_REEXEC_FD`. The new daemon reads it back in
//! [`HandOver::from_env`] before anything else opens a descriptor. Processes
//! stay children of the same pid, so reaping goes on unchanged.

use std::collections::HashMap;
use std::ffi::{CString, OsString};
use std::io::{self, Read, Seek, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::state::SavedMachine;

/// The environment variable holding the state descriptor's number.
pub const ENV_FD: &str = "CORRAL_REEXEC_FD";

/// Version of the [`SavedState`] layout; a binary refuses a layout it does not know.
pub const VERSION: u32 = 1;

/// Why a hand-over could not be read or made.
#[derive(Debug, thiserror::Error)]
pub enum HandOverError {
    /// `CORRAL_REEXEC_FD` is not a descriptor number.
    #[error("{ENV_FD}={0:?} is not a descriptor number")]
    BadVariable(String),
    /// Reading or writing the state descriptor failed.
    #[error("{what} the re-exec state: {source}")]
    Io {
        /// The step that failed.
        what: &'static str,
        /// The error.
        #[source]
        source: io::Error,
    },
    /// The state is not JSON this binary understands.
    #[error("cannot decode the re-exec state: {0}")]
    Decode(#[from] serde_json::Error),
    /// The state was written by an incompatible binary.
    #[error("re-exec state version {0} is not supported (this binary reads version {VERSION})")]
    Version(u32),
    /// The binary to execute is unusable; the daemon keeps running.
    #[error("cannot re-execute {path}: {reason}")]
    Binary {
        /// The binary.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
}

fn io_err(what: &'static str) -> impl FnOnce(io::Error) -> HandOverError {
    move |source| HandOverError::Io { what, source }
}

/// How a held-back exit (main pid gone, cgroup not yet empty) is carried.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum SavedExit {
    /// `exit(code)`.
    Code(i32),
    /// Killed by a signal.
    Signal {
        /// Signal number.
        signal: i32,
        /// A core file was written.
        core: bool,
    },
    /// Not a child of the daemon (adopted after a crash).
    Unknown,
}

/// One process as the old daemon left it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SavedProcess {
    /// Group name.
    pub group: String,
    /// Process name.
    pub name: String,
    /// The lifecycle state machine.
    pub machine: SavedMachine,
    /// The child runs in its own cgroup leaf.
    pub placed: bool,
    /// OOM kills seen so far.
    pub oom_kills: u64,
    /// Descriptor of the stdout pipe's read end.
    pub stdout: Option<RawFd>,
    /// Descriptor of the stderr pipe's read end.
    pub stderr: Option<RawFd>,
    /// Descriptor of the stdin pipe's write end.
    pub stdin: Option<RawFd>,
    /// Bytes `sendProcessStdin` accepted that the pipe had not taken yet; the
    /// next daemon writes them first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub stdin_pending: Vec<u8>,
    /// The main pid exited while its cgroup still held processes.
    pub drain: Option<SavedExit>,
    /// Adopted after a crash: not a child of the daemon, its exit is seen through a pidfd.
    #[serde(default)]
    pub orphan: bool,
    /// The AUTO stdout log file, which the next daemon goes on writing.
    #[serde(default)]
    pub stdout_auto: Option<PathBuf>,
    /// The AUTO stderr log file.
    #[serde(default)]
    pub stderr_auto: Option<PathBuf>,
}

/// Where an HTTP listener listens, to match it with the configuration again.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ListenerAddr {
    /// `[unix_http_server]`: the socket file and its inode.
    Unix {
        /// Socket path.
        path: PathBuf,
        /// Inode of the socket file the old daemon created.
        ino: u64,
    },
    /// `[inet_http_server]`: the configured host and port.
    Tcp {
        /// Host as configured.
        host: String,
        /// Port as configured.
        port: u16,
    },
}

/// An HTTP listener kept open across the exec, so clients see no refused connection.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SavedListener {
    /// What it listens on.
    pub addr: ListenerAddr,
    /// Its descriptor.
    pub fd: RawFd,
}

/// Everything the new daemon needs, in a serializable form.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SavedState {
    /// Layout version ([`VERSION`]).
    pub version: u32,
    /// Every process of every active group.
    pub processes: Vec<SavedProcess>,
    /// The HTTP listeners.
    pub listeners: Vec<SavedListener>,
    /// A shutdown was requested during the re-exec: the new daemon carries it out.
    #[serde(default)]
    pub shutdown: bool,
}

/// A hand-over: the saved state plus the descriptors it names.
#[derive(Debug)]
pub struct HandOver {
    /// The serializable part.
    pub state: SavedState,
    fds: HashMap<RawFd, OwnedFd>,
    readers: Vec<tokio::task::JoinHandle<()>>,
    sinks: Vec<tokio::task::JoinHandle<()>>,
}

/// Longest wait for the journald/syslog line sinks to send what the stopped
/// readers had queued for them (a stalled journal must not hold up the re-exec).
pub const SINK_DRAIN: std::time::Duration = std::time::Duration::from_secs(5);

impl HandOver {
    /// An empty hand-over.
    pub fn new() -> HandOver {
        HandOver {
            state: SavedState {
                version: VERSION,
                processes: Vec::new(),
                listeners: Vec::new(),
                shutdown: false,
            },
            fds: HashMap::new(),
            readers: Vec::new(),
            sinks: Vec::new(),
        }
    }

    /// Keep `fd` across the exec; returns the number the state refers to it by.
    pub fn keep(&mut self, fd: OwnedFd) -> RawFd {
        let n = fd.as_raw_fd();
        self.fds.insert(n, fd);
        n
    }

    /// Take back a descriptor the state names.
    pub fn take(&mut self, n: Option<RawFd>) -> Option<OwnedFd> {
        self.fds.remove(&n?)
    }

    /// Move `other`'s state and descriptors into this one.
    pub fn merge(&mut self, mut other: HandOver) {
        self.state.processes.append(&mut other.state.processes);
        self.state.listeners.append(&mut other.state.listeners);
        self.state.shutdown |= other.state.shutdown;
        self.fds.extend(other.fds.drain());
        self.readers.append(&mut other.readers);
        self.sinks.append(&mut other.sinks);
    }

    /// Reader tasks (cancelled) and the line sink tasks they fed, which must
    /// finish before the exec.
    pub(crate) fn add_readers(
        &mut self,
        readers: Vec<tokio::task::JoinHandle<()>>,
        sinks: Vec<tokio::task::JoinHandle<()>>,
    ) {
        self.readers.extend(readers);
        self.sinks.extend(sinks);
    }

    /// Wait for the stopped pipe readers, then for the journald/syslog sinks they
    /// fed: after this every byte they read is in its log file, and every line
    /// in the journal or syslog (an unfinished last line is sent as it is, and
    /// its rest becomes a line of its own after the exec). A sink still sending
    /// after [`SINK_DRAIN`] (a stalled journal) is given up and what it still
    /// held is lost; that is logged.
    pub async fn settle_readers(&mut self) {
        for r in self.readers.drain(..) {
            let _ = r.await;
        }
        let sinks = std::mem::take(&mut self.sinks);
        let all = async {
            for s in sinks {
                let _ = s.await;
            }
        };
        if tokio::time::timeout(SINK_DRAIN, all).await.is_err() {
            tracing::warn!(
                "journal/syslog output still unsent {} s after the readers stopped (a stalled \
                 journal?); the lines still queued for it are lost",
                SINK_DRAIN.as_secs()
            );
        }
    }

    /// Let the kept descriptors survive `execve` (`true`) or not (`false`, after a failed exec,
    /// so children spawned later do not inherit them).
    pub fn set_inheritable(&self, inherit: bool) -> io::Result<()> {
        for fd in self.fds.values() {
            set_cloexec(fd.as_raw_fd(), !inherit)?;
        }
        Ok(())
    }

    /// Write the state to a fresh memfd that survives `execve`.
    pub fn to_memfd(&self) -> Result<OwnedFd, HandOverError> {
        let json = serde_json::to_vec(&self.state)?;
        // SAFETY: a NUL-terminated name and valid flags; the result is checked.
        let raw = unsafe { libc::memfd_create(c"corral-reexec".as_ptr(), 0) };
        if raw < 0 {
            return Err(io_err("creating a memfd for")(io::Error::last_os_error()));
        }
        // SAFETY: `raw` is a descriptor we just created and own.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        let mut file = std::fs::File::from(fd);
        file.write_all(&json).map_err(io_err("writing"))?;
        Ok(OwnedFd::from(file))
    }

    /// The hand-over the previous daemon left, if this process was started by a
    /// re-exec. Takes the variable out of the environment so children never see it,
    /// and marks every inherited descriptor close-on-exec again.
    pub fn from_env() -> Result<Option<HandOver>, HandOverError> {
        let Some(value) = std::env::var_os(ENV_FD) else { return Ok(None) };
        // Called first thing in `main`, while the process has one thread.
        std::env::remove_var(ENV_FD);
        let text = value.to_string_lossy().into_owned();
        let n: RawFd = text.parse().map_err(|_| HandOverError::BadVariable(text.clone()))?;
        if !is_open(n) {
            return Err(HandOverError::BadVariable(text));
        }
        // SAFETY: the previous daemon left this descriptor open for us and nothing else owns it.
        let mut file = std::fs::File::from(unsafe { OwnedFd::from_raw_fd(n) });
        set_cloexec(n, true).map_err(io_err("reading"))?;
        file.rewind().map_err(io_err("reading"))?;
        let mut json = Vec::new();
        file.read_to_end(&mut json).map_err(io_err("reading"))?;
        // The version first: another layout would fail to decode with a less useful message.
        #[derive(Deserialize)]
        struct Versioned {
            version: u32,
        }
        let Versioned { version } = serde_json::from_slice(&json)?;
        if version != VERSION {
            return Err(HandOverError::Version(version));
        }
        let state: SavedState = serde_json::from_slice(&json)?;
        let mut fds = HashMap::new();
        let named = state
            .processes
            .iter()
            .flat_map(|p| [p.stdout, p.stderr, p.stdin])
            .flatten()
            .chain(state.listeners.iter().map(|l| l.fd));
        for n in named {
            if is_open(n) && !fds.contains_key(&n) {
                // SAFETY: inherited from the previous daemon for exactly this use; owned once.
                let fd = unsafe { OwnedFd::from_raw_fd(n) };
                set_cloexec(n, true).map_err(io_err("reading"))?;
                fds.insert(n, fd);
            }
        }
        Ok(Some(HandOver { state, fds, readers: Vec::new(), sinks: Vec::new() }))
    }
}

impl Default for HandOver {
    fn default() -> Self {
        HandOver::new()
    }
}

/// Close every descriptor above stderr: what a re-exec passed that could not be
/// read. Call while the process has one thread and has opened nothing itself.
pub fn close_inherited() {
    let fds: Vec<RawFd> = match std::fs::read_dir("/proc/self/fd") {
        Ok(dir) => dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok()).collect(),
        Err(_) => return,
    };
    for fd in fds.into_iter().filter(|fd| *fd > 2) {
        // SAFETY: nothing in this process owns these descriptors yet; the one
        // read_dir used is already closed, and closing a stale number is harmless.
        unsafe { libc::close(fd) };
    }
}

fn is_open(fd: RawFd) -> bool {
    // SAFETY: F_GETFD only inspects the descriptor table.
    fd >= 0 && unsafe { libc::fcntl(fd, libc::F_GETFD) } >= 0
}

fn set_cloexec(fd: RawFd, on: bool) -> io::Result<()> {
    // SAFETY: F_GETFD/F_SETFD on a descriptor we own.
    unsafe {
        let flags = libc::fcntl(fd, libc::F_GETFD);
        if flags < 0 {
            return Err(io::Error::last_os_error());
        }
        let flags = if on { flags | libc::FD_CLOEXEC } else { flags & !libc::FD_CLOEXEC };
        if libc::fcntl(fd, libc::F_SETFD, flags) < 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

/// Check that `path` looks like something `execve` can run, before anything is
/// torn down: a regular, executable file starting with an ELF header or `#!`.
pub fn check_binary(path: &Path) -> Result<(), HandOverError> {
    let bad = |reason: String| HandOverError::Binary { path: path.to_path_buf(), reason };
    let meta = std::fs::metadata(path).map_err(|e| bad(e.to_string()))?;
    if !meta.is_file() {
        return Err(bad("not a regular file".into()));
    }
    let c = CString::new(path.as_os_str().as_bytes()).map_err(|e| bad(e.to_string()))?;
    // SAFETY: a valid NUL-terminated path.
    if unsafe { libc::access(c.as_ptr(), libc::X_OK) } != 0 {
        return Err(bad(io::Error::last_os_error().to_string()));
    }
    let mut head = [0u8; 4];
    let mut f = std::fs::File::open(path).map_err(|e| bad(e.to_string()))?;
    f.read_exact(&mut head).map_err(|_| bad("too short to be an executable".into()))?;
    if head != *b"\x7fELF" && head[..2] != *b"#!" {
        return Err(bad("not an executable (no ELF header)".into()));
    }
    Ok(())
}

/// The signals corrald handles. They stay blocked across the exec until the new
/// process has its handlers ([`unblock_signals`]): the mask survives `execve`, so
/// a SIGTERM arriving meanwhile waits instead of killing the daemon.
fn handled_signals() -> nix::sys::signal::SigSet {
    use nix::sys::signal::{SigSet, Signal};
    let mut set = SigSet::empty();
    for s in
        [Signal::SIGTERM, Signal::SIGINT, Signal::SIGQUIT, Signal::SIGHUP, Signal::SIGUSR1, Signal::SIGUSR2]
    {
        set.add(s);
    }
    set
}

/// Hold the handled signals back on this thread (the one that will exec).
pub fn block_signals() -> io::Result<()> {
    handled_signals().thread_block().map_err(io::Error::from)
}

/// Deliver the signals held back across a re-exec, once their handlers are installed.
pub fn unblock_signals() -> io::Result<()> {
    handled_signals().thread_unblock().map_err(io::Error::from)
}

/// Replace this process with `path`, passing `argv`, the current environment
/// plus `extra`, and the state descriptor in [`ENV_FD`]. Returns only on failure.
pub fn exec(path: &Path, argv: &[OsString], extra: &[(OsString, OsString)], state: &OwnedFd) -> io::Error {
    let cstr = |b: &[u8]| CString::new(b).map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e));
    let build = || -> io::Result<(CString, Vec<CString>, Vec<CString>)> {
        let prog = cstr(path.as_os_str().as_bytes())?;
        let args = argv.iter().map(|a| cstr(a.as_bytes())).collect::<io::Result<Vec<_>>>()?;
        let mut vars: Vec<(OsString, OsString)> =
            std::env::vars_os().filter(|(k, _)| !extra.iter().any(|(e, _)| e == k) && k != ENV_FD).collect();
        vars.extend(extra.iter().cloned());
        vars.push((ENV_FD.into(), state.as_raw_fd().to_string().into()));
        let env = vars
            .iter()
            .map(|(k, v)| {
                let mut kv = k.as_bytes().to_vec();
                kv.push(b'=');
                kv.extend_from_slice(v.as_bytes());
                cstr(&kv)
            })
            .collect::<io::Result<Vec<_>>>()?;
        Ok((prog, args, env))
    };
    let (prog, args, env) = match build() {
        Ok(v) => v,
        Err(e) => return e,
    };
    if let Err(e) = set_cloexec(state.as_raw_fd(), false) {
        return e;
    }
    let mut old = nix::sys::signal::SigSet::empty();
    if let Err(e) = nix::sys::signal::pthread_sigmask(
        nix::sys::signal::SigmaskHow::SIG_BLOCK,
        Some(&handled_signals()),
        Some(&mut old),
    ) {
        return io::Error::from(e);
    }
    match nix::unistd::execve(&prog, &args, &env) {
        Err(e) => {
            let _ = nix::sys::signal::pthread_sigmask(
                nix::sys::signal::SigmaskHow::SIG_SETMASK,
                Some(&old),
                None,
            );
            let _ = set_cloexec(state.as_raw_fd(), true);
            io::Error::from(e)
        }
        Ok(never) => match never {},
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_binary_that_is_not_executable_is_refused_before_anything_stops() {
        let dir = tempfile::tempdir().expect("tempdir");
        let text = dir.path().join("corrald");
        std::fs::write(&text, b"garbage").expect("write");
        assert!(matches!(check_binary(&text), Err(HandOverError::Binary { .. })));
        assert!(matches!(check_binary(&dir.path().join("missing")), Err(HandOverError::Binary { .. })));
        assert!(check_binary(Path::new("/bin/sh")).is_ok());
    }

    #[test]
    fn the_state_survives_a_round_trip_through_a_memfd() {
        let mut h = HandOver::new();
        let (r, _w) = nix::unistd::pipe().expect("pipe");
        let n = h.keep(r);
        h.state
            .listeners
            .push(SavedListener { addr: ListenerAddr::Tcp { host: "x".into(), port: 1 }, fd: n });
        let memfd = h.to_memfd().expect("memfd");
        let mut file = std::fs::File::from(memfd);
        file.rewind().expect("rewind");
        let back: SavedState = serde_json::from_reader(file).expect("decode");
        assert_eq!(back.listeners[0].fd, n);
        assert_eq!(back.version, VERSION);
    }
}
