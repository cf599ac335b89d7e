//! fork/exec of one child with supervisord's setup sequence: own process group,
//! pipes on fds 0/1/2, cgroup placement, privileges, directory, umask, exec.
//!
//! Everything the child needs is computed before the fork; the `pre_exec` step only
//! makes async-signal-safe system calls on pre-built buffers.

use std::ffi::{CString, OsString};
use std::io::{self, Write};
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};

use nix::fcntl::{fcntl, FcntlArg, OFlag};
use nix::unistd::Uid;

use super::command::ResolvedCommand;
use crate::config::User;

/// Everything needed to start one child.
#[derive(Debug)]
pub struct SpawnRequest<'a> {
    /// Process name (for error messages).
    pub name: &'a str,
    /// What to exec.
    pub command: &'a ResolvedCommand,
    /// The complete environment of the child.
    pub env: Vec<(OsString, OsString)>,
    /// Run as this user.
    pub user: Option<&'a User>,
    /// chdir here before exec.
    pub directory: Option<&'a Path>,
    /// umask for the child.
    pub umask: Option<u32>,
    /// stderr shares the stdout pipe.
    pub redirect_stderr: bool,
    /// `cgroup.procs` files (opened O_WRONLY by the caller) the child writes `0`
    /// into before exec, so it and everything it forks start inside its cgroups.
    pub cgroup_procs: &'a [RawFd],
    /// Written to `/proc/self/oom_score_adj` in the child.
    pub oom_score_adj: Option<i32>,
    /// `(fd, n)`: the child gets the caller's open `fd` as its descriptor `n`
    /// (`ready=fd:N`).
    pub extra_fd: Option<(RawFd, i32)>,
}

/// A started child and the parent's ends of its pipes (non-blocking, close-on-exec).
#[derive(Debug)]
pub struct Spawned {
    /// The child's pid.
    pub pid: u32,
    /// Write end of the child's stdin.
    pub stdin: OwnedFd,
    /// Read end of the child's stdout (and stderr with `redirect_stderr`).
    pub stdout: OwnedFd,
    /// Read end of the child's stderr, unless redirected.
    pub stderr: Option<OwnedFd>,
}

/// Why a spawn failed. Display gives supervisord's spawnerr text.
#[derive(Debug, thiserror::Error)]
pub enum SpawnError {
    /// Out of file descriptors for the pipes.
    #[error("too many open files to spawn '{0}'")]
    TooManyFiles(String),
    /// fork hit the process limit.
    #[error("Too many processes in process table to spawn '{0}'")]
    TooManyProcesses(String),
    /// Pipe creation failed otherwise.
    #[error("unknown error making dispatchers for '{name}': {errno}")]
    Pipes {
        /// Process name.
        name: String,
        /// errno name.
        errno: String,
    },
    /// exec (or a setup step that reports through exec) failed.
    #[error("couldn't exec {argv0}: {errno}")]
    Exec {
        /// argv[0] as written.
        argv0: String,
        /// errno name (`ENOENT`, `ENOEXEC`...).
        errno: String,
    },
}

/// `ENOENT`-style name of an errno value, as Python's `errno.errorcode` gives it.
pub fn errno_name(errno: i32) -> String {
    let e = nix::errno::Errno::from_raw(errno);
    if e == nix::errno::Errno::UnknownErrno {
        errno.to_string()
    } else {
        format!("{e:?}")
    }
}

fn pipe() -> io::Result<(OwnedFd, OwnedFd)> {
    nix::unistd::pipe2(OFlag::O_CLOEXEC).map_err(io::Error::from)
}

fn set_nonblocking(fd: &OwnedFd) -> io::Result<()> {
    let flags = OFlag::from_bits_truncate(fcntl(fd, FcntlArg::F_GETFL).map_err(io::Error::from)?);
    fcntl(fd, FcntlArg::F_SETFL(flags | OFlag::O_NONBLOCK)).map_err(io::Error::from)?;
    Ok(())
}

/// Privilege drop prepared in the parent.
enum Credentials {
    /// Keep the daemon's identity.
    Keep,
    /// setgroups + setgid + setuid.
    Switch { uid: libc::uid_t, gid: libc::gid_t, groups: Vec<libc::gid_t> },
    /// Refuse in the child with this message on stderr (exit 127), as supervisord.
    Refuse(Vec<u8>),
}

fn credentials(user: Option<&User>) -> Credentials {
    let Some(user) = user else { return Credentials::Keep };
    let me = Uid::current();
    if me.as_raw() == user.uid {
        return Credentials::Keep;
    }
    if !me.is_root() {
        return Credentials::Refuse(
            format!(
                "supervisor: couldn't setuid to {}: Can't drop privilege as nonroot user\nsupervisor: child process was not spawned\n",
                user.uid
            )
            .into_bytes(),
        );
    }
    let groups = user
        .name
        .as_deref()
        .and_then(|n| CString::new(n).ok())
        .and_then(|n| nix::unistd::getgrouplist(&n, nix::unistd::Gid::from_raw(user.gid)).ok())
        .map(|g| g.into_iter().map(|g| g.as_raw()).collect())
        .unwrap_or_else(|| vec![user.gid]);
    Credentials::Switch { uid: user.uid, gid: user.gid, groups }
}

/// Write all of `buf` to `fd`; async-signal-safe.
fn raw_write(fd: RawFd, buf: &[u8]) -> bool {
    // SAFETY: buf is a valid slice; write(2) is async-signal-safe.
    unsafe { libc::write(fd, buf.as_ptr().cast(), buf.len()) == buf.len() as isize }
}

/// Child-side failure exactly as supervisord reports it: a message on stderr, exit 127.
fn child_fail(msg: &[u8]) -> ! {
    raw_write(2, msg);
    // SAFETY: _exit is async-signal-safe and never returns.
    unsafe { libc::_exit(127) }
}

/// Start a child. Returns once exec has succeeded (or failed, as an error).
pub fn spawn(req: SpawnRequest<'_>) -> Result<Spawned, SpawnError> {
    let pipe_err = |e: io::Error| match e.raw_os_error() {
        Some(libc::EMFILE) | Some(libc::ENFILE) => SpawnError::TooManyFiles(req.name.to_string()),
        other => SpawnError::Pipes { name: req.name.to_string(), errno: errno_name(other.unwrap_or(0)) },
    };
    let (stdin_r, stdin_w) = pipe().map_err(pipe_err)?;
    let (stdout_r, stdout_w) = pipe().map_err(pipe_err)?;
    let (stderr_r, stderr_w) = if req.redirect_stderr {
        (None, stdout_w.try_clone().map_err(pipe_err)?)
    } else {
        let (r, w) = pipe().map_err(pipe_err)?;
        (Some(r), w)
    };
    for fd in [Some(&stdin_w), Some(&stdout_r), stderr_r.as_ref()].into_iter().flatten() {
        set_nonblocking(fd).map_err(pipe_err)?;
    }

    let argv0 = req.command.argv.first().cloned().unwrap_or_default();
    let mut cmd = Command::new(&req.command.filename);
    cmd.arg0(&argv0)
        .args(req.command.argv.iter().skip(1))
        .env_clear()
        .envs(req.env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::from(stdin_r))
        .stdout(Stdio::from(stdout_w))
        .stderr(Stdio::from(stderr_w))
        // Own process group (setpgrp), so signals to the daemon's group don't reach it.
        .process_group(0);

    let cgroup_fds: Vec<RawFd> = req.cgroup_procs.to_vec();
    let creds = credentials(req.user);
    let chdir = match req.directory {
        Some(d) => Some((
            CString::new(d.as_os_str().as_bytes())
                .map_err(|_| SpawnError::Exec { argv0: argv0.clone(), errno: "EINVAL".into() })?,
            d.to_string_lossy().into_owned(),
        )),
        None => None,
    };
    let chdir_msgs: Option<(CString, Vec<u8>, Vec<u8>)> = chdir.map(|(c, shown)| {
        let prefix = format!("supervisor: couldn't chdir to {shown}: ").into_bytes();
        let suffix = b"\nsupervisor: child process was not spawned\n".to_vec();
        (c, prefix, suffix)
    });
    let umask = req.umask;
    let extra_fd = req.extra_fd;
    // execve, not std's execvp: supervisord never retries a non-executable file
    // through /bin/sh, so an ENOEXEC must stay an error.
    let exec = ExecImage::new(&req.command.filename, &req.command.argv, &req.env)
        .map_err(|_| SpawnError::Exec { argv0: argv0.clone(), errno: "EINVAL".into() })?;
    let oom = req.oom_score_adj.map(|v| v.to_string().into_bytes());
    // Pre-rendered errno names for the chdir message (no allocation in the child).
    let errno_names: Vec<(i32, Vec<u8>)> =
        [libc::ENOENT, libc::EACCES, libc::ENOTDIR, libc::ELOOP, libc::ENAMETOOLONG]
            .iter()
            .map(|&e| (e, errno_name(e).into_bytes()))
            .collect();

    // SAFETY: the closure only makes async-signal-safe system calls (write, setgroups,
    // setgid, setuid, chdir, umask, open, close, dup2, fcntl, _exit) on memory prepared before fork.
    unsafe {
        cmd.pre_exec(move || {
            for &fd in &cgroup_fds {
                if libc::write(fd, b"0".as_ptr().cast(), 1) != 1 {
                    return Err(io::Error::last_os_error());
                }
            }
            if let Some(v) = &oom {
                let fd = libc::open(c"/proc/self/oom_score_adj".as_ptr(), libc::O_WRONLY | libc::O_CLOEXEC);
                if fd < 0 || !raw_write(fd, v) {
                    return Err(io::Error::last_os_error());
                }
                libc::close(fd);
            }
            match &creds {
                Credentials::Keep => {}
                Credentials::Refuse(msg) => child_fail(msg),
                Credentials::Switch { uid, gid, groups } => {
                    if libc::setgroups(groups.len(), groups.as_ptr()) != 0
                        || libc::setgid(*gid) != 0
                        || libc::setuid(*uid) != 0
                    {
                        raw_write(2, b"supervisor: couldn't setuid: permission denied\n");
                        child_fail(b"supervisor: child process was not spawned\n");
                    }
                }
            }
            if let Some((dir, prefix, suffix)) = &chdir_msgs {
                if libc::chdir(dir.as_ptr()) != 0 {
                    let e = *libc::__errno_location();
                    raw_write(2, prefix);
                    match errno_names.iter().find(|(n, _)| *n == e) {
                        Some((_, name)) => raw_write(2, name),
                        None => raw_write(2, b"ERROR"),
                    };
                    child_fail(suffix);
                }
            }
            if let Some(mask) = umask {
                libc::umask(mask as libc::mode_t);
            }
            if let Some((from, to)) = extra_fd {
                // dup2 leaves the copy open across exec; the same number needs its flag cleared.
                let ok = if from == to {
                    libc::fcntl(to, libc::F_SETFD, 0) == 0
                } else {
                    libc::dup2(from, to) == to
                };
                if !ok {
                    return Err(io::Error::last_os_error());
                }
            }
            let image = &exec; // capture the whole (Send) struct, not its raw-pointer fields
            libc::execve(image.path.as_ptr(), image.argv.as_ptr(), image.envp.as_ptr());
            // Only reached when execve failed; std reports the errno to the parent.
            Err(io::Error::last_os_error())
        });
    }

    match cmd.spawn() {
        Ok(child) => Ok(Spawned { pid: child.id(), stdin: stdin_w, stdout: stdout_r, stderr: stderr_r }),
        Err(e) => {
            let errno = e.raw_os_error().unwrap_or(0);
            if errno == libc::EAGAIN {
                return Err(SpawnError::TooManyProcesses(req.name.to_string()));
            }
            Err(SpawnError::Exec { argv0, errno: errno_name(errno) })
        }
    }
}

/// argv and environment as NUL-terminated arrays, built before fork so the
/// child only calls execve.
struct ExecImage {
    path: CString,
    _strings: Vec<CString>,
    argv: Vec<*const libc::c_char>,
    envp: Vec<*const libc::c_char>,
}

// SAFETY: the raw pointers point into `_strings`, owned by the same struct and never mutated.
unsafe impl Send for ExecImage {}
unsafe impl Sync for ExecImage {}

impl ExecImage {
    fn new(
        path: &Path,
        argv: &[String],
        env: &[(OsString, OsString)],
    ) -> Result<ExecImage, std::ffi::NulError> {
        let path = CString::new(path.as_os_str().as_bytes())?;
        let mut strings = Vec::with_capacity(argv.len() + env.len());
        for a in argv {
            strings.push(CString::new(a.as_bytes())?);
        }
        for (k, v) in env {
            let mut kv = k.as_bytes().to_vec();
            kv.push(b'=');
            kv.extend_from_slice(v.as_bytes());
            strings.push(CString::new(kv)?);
        }
        let mut argv_ptrs: Vec<*const libc::c_char> =
            strings[..argv.len()].iter().map(|c| c.as_ptr()).collect();
        argv_ptrs.push(std::ptr::null());
        let mut envp: Vec<*const libc::c_char> = strings[argv.len()..].iter().map(|c| c.as_ptr()).collect();
        envp.push(std::ptr::null());
        Ok(ExecImage { path, _strings: strings, argv: argv_ptrs, envp })
    }
}

/// What supervisord's child writes to stderr when exec fails, for the process log.
pub fn exec_failure_text(err: &SpawnError) -> Vec<u8> {
    let mut out = Vec::new();
    let _ = writeln!(out, "supervisor: {err}");
    let _ = writeln!(out, "supervisor: child process was not spawned");
    out
}

/// Raw fd of an owned fd (helper for callers holding `OwnedFd`s).
pub fn raw(fd: &OwnedFd) -> RawFd {
    fd.as_raw_fd()
}
