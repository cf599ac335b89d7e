//! clone/exec of one child with supervisord's setup sequence: own process group,
//! pipes on fds 0/1/2, cgroup placement, privileges, directory, umask, exec.
//!
//! Everything the child needs is computed before the clone; between clone and exec
//! the child only makes async-signal-safe system calls on pre-built buffers.

use std::ffi::{CString, OsString};
use std::io::{self, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::sync::atomic::{AtomicI32, Ordering};

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

/// `fd`, moved to a number above 2 if it sits on a standard one (a daemon started
/// with a closed stdin gets its first pipe there).
fn above_stdio(fd: OwnedFd) -> io::Result<OwnedFd> {
    if fd.as_raw_fd() > 2 {
        return Ok(fd);
    }
    let moved = fcntl(&fd, FcntlArg::F_DUPFD_CLOEXEC(3)).map_err(io::Error::from)?;
    // SAFETY: F_DUPFD_CLOEXEC returned a new descriptor that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(moved) })
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
    // The child dup2s these onto 0, 1, 2 in order, so none may already sit there.
    let stdin_r = above_stdio(stdin_r).map_err(pipe_err)?;
    let stdout_w = above_stdio(stdout_w).map_err(pipe_err)?;
    let stderr_w = above_stdio(stderr_w).map_err(pipe_err)?;

    let argv0 = req.command.argv.first().cloned().unwrap_or_default();
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
    // execve, not execvp: supervisord never retries a non-executable file
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

    // Hand the child its descriptors through the low slots when they exist: it then
    // copies only the descriptors below them instead of the daemon's whole table.
    let mut slots = slots::lock();
    let mut handed = Handed::default();
    let stdio = [stdin_r.as_raw_fd(), stdout_w.as_raw_fd(), stderr_w.as_raw_fd()];
    let extra = req.extra_fd.map(|(fd, _)| fd);
    let sources = stdio.iter().copied().chain(req.cgroup_procs.iter().copied()).chain(extra);
    let below = match slots.as_mut() {
        Some(s) => match s.hand(sources, &mut handed) {
            Ok(()) => Some(s.limit()),
            Err(e) => return Err(pipe_err(e)),
        },
        None => {
            handed.fds.extend(sources);
            None
        }
    };
    let n_cg = req.cgroup_procs.len();
    let plan = ChildPlan {
        unshare_below: below,
        stdio: [handed.fds[0], handed.fds[1], handed.fds[2]],
        cgroup_fds: &handed.fds[3..3 + n_cg],
        oom: oom.as_deref(),
        creds: &creds,
        chdir: chdir_msgs.as_ref(),
        errno_names: &errno_names,
        umask: req.umask,
        extra_fd: req.extra_fd.map(|(_, n)| (handed.fds[3 + n_cg], n)),
        exec: &exec,
        error: AtomicI32::new(0),
    };
    let cloned = clone_vfork(&plan);
    // The child has its copies (or is gone): the slots must not keep its pipe ends open.
    if let Some(s) = slots.as_mut() {
        s.release(&handed);
    }
    drop(slots);
    let pid = match cloned {
        Ok(pid) => pid,
        Err(errno) if errno == libc::EAGAIN => {
            return Err(SpawnError::TooManyProcesses(req.name.to_string()))
        }
        Err(errno) => return Err(SpawnError::Exec { argv0, errno: errno_name(errno) }),
    };
    // The child has exec'd or exited: with CLONE_VFORK the parent resumes only then.
    let errno = plan.error.load(Ordering::SeqCst);
    if errno != 0 {
        // It exited before exec; reap it here so the engine never sees an unknown pid.
        let mut status = 0;
        // SAFETY: waitpid on our own child with a valid status pointer.
        while unsafe { libc::waitpid(pid, &mut status, 0) } < 0
            && io::Error::last_os_error().raw_os_error() == Some(libc::EINTR)
        {}
        return Err(SpawnError::Exec { argv0, errno: errno_name(errno) });
    }
    Ok(Spawned { pid: pid as u32, stdin: stdin_w, stdout: stdout_r, stderr: stderr_r })
}

/// Everything the child reads between clone and exec, built before the clone.
struct ChildPlan<'a> {
    /// The child shares the daemon's descriptor table (`CLONE_FILES`) and first
    /// unshares it keeping only the descriptors below this number, where every
    /// descriptor it needs sits (see [`slots`]). `None`: it gets a full copy.
    unshare_below: Option<RawFd>,
    /// The child's ends of its pipes, dup'd onto fds 0, 1, 2.
    stdio: [RawFd; 3],
    cgroup_fds: &'a [RawFd],
    oom: Option<&'a [u8]>,
    creds: &'a Credentials,
    chdir: Option<&'a (CString, Vec<u8>, Vec<u8>)>,
    errno_names: &'a [(i32, Vec<u8>)],
    umask: Option<u32>,
    /// `ready=fd:N`: the write end of the readiness pipe and the number N it gets.
    extra_fd: Option<(RawFd, RawFd)>,
    exec: &'a ExecImage,
    /// errno of a step that fails the spawn itself (reported as `couldn't exec`),
    /// written by the child before it exits; the parent reads it after the clone.
    error: AtomicI32,
}

/// Size of the child's stack between clone and exec (only touched pages cost).
const CHILD_STACK: usize = 256 * 1024;

/// The children's stack, mapped at the first spawn and kept (its address).
static CHILD_STACK_MAP: std::sync::Mutex<Option<usize>> = std::sync::Mutex::new(None);

/// Map the children's stack, with a guard page below it.
fn map_child_stack() -> Result<*mut libc::c_void, i32> {
    // SAFETY: a fresh anonymous mapping, used only as the children's stack and never
    // unmapped (it is reused by every spawn).
    let stack = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            CHILD_STACK,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_STACK,
            -1,
            0,
        )
    };
    if stack == libc::MAP_FAILED {
        return Err(io::Error::last_os_error().raw_os_error().unwrap_or(libc::ENOMEM));
    }
    // A guard page below the stack turns an overflow into a fault, not corruption.
    // SAFETY: the first page of the mapping made above.
    unsafe { libc::mprotect(stack, page_size(), libc::PROT_NONE) };
    Ok(stack)
}

/// `clone(CLONE_VM | CLONE_VFORK)`, as posix_spawn does: the child borrows the
/// daemon's memory until it execs, so no page table is copied and the daemon takes
/// no copy-on-write faults afterwards, whatever its size. Returns the child's pid.
fn clone_vfork(plan: &ChildPlan<'_>) -> Result<libc::pid_t, i32> {
    // One stack for every child: CLONE_VFORK suspends us until the child has exec'd or
    // exited, and the lock keeps two spawning threads off it. Mapping a fresh one per
    // spawn cost an mmap, page faults and an munmap (with its TLB flush) every time.
    let mut cached = CHILD_STACK_MAP.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    let stack = match *cached {
        Some(addr) => addr as *mut libc::c_void,
        None => {
            let stack = map_child_stack()?;
            *cached = Some(stack as usize);
            stack
        }
    };
    // Block every signal around the clone: until the child has reset the daemon's
    // handlers, a handler running in it would run on the daemon's memory.
    // SAFETY: plain sigset manipulation on local storage.
    let mut all: libc::sigset_t = unsafe { std::mem::zeroed() };
    let mut old: libc::sigset_t = unsafe { std::mem::zeroed() };
    unsafe {
        libc::sigfillset(&mut all);
        libc::pthread_sigmask(libc::SIG_SETMASK, &all, &mut old);
    }
    // SAFETY: `child_main` gets a pointer to `plan`, which outlives the child's use
    // of it (we are suspended until it execs or exits); the stack top is 16-aligned.
    let pid = unsafe {
        let top = stack.cast::<u8>().add(CHILD_STACK).cast::<libc::c_void>();
        libc::clone(
            child_main,
            top,
            libc::CLONE_VM
                | libc::CLONE_VFORK
                | if plan.unshare_below.is_some() { libc::CLONE_FILES } else { 0 }
                | libc::SIGCHLD,
            (plan as *const ChildPlan<'_>).cast_mut().cast(),
        )
    };
    let clone_errno = io::Error::last_os_error().raw_os_error().unwrap_or(0);
    // SAFETY: restoring the mask saved above.
    unsafe {
        libc::pthread_sigmask(libc::SIG_SETMASK, &old, std::ptr::null_mut());
    }
    drop(cached);
    if pid < 0 {
        return Err(clone_errno);
    }
    Ok(pid)
}

fn page_size() -> usize {
    // SAFETY: sysconf has no preconditions.
    let n = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    usize::try_from(n).unwrap_or(4096)
}

/// The child between clone and exec. It shares the daemon's memory, so it only
/// makes async-signal-safe system calls on what [`ChildPlan`] holds; it never
/// allocates and never returns (exec or `_exit`).
extern "C" fn child_main(arg: *mut libc::c_void) -> libc::c_int {
    // SAFETY: `arg` is the `ChildPlan` the parent passed to clone, alive until we exec.
    let plan = unsafe { &*arg.cast::<ChildPlan<'_>>() };
    // SAFETY: only async-signal-safe calls (sigaction, sigprocmask, dup2, fcntl,
    // setpgid, write, open, close, setgroups, setgid, setuid, chdir, umask, execve,
    // _exit) on memory prepared before the clone.
    unsafe {
        let fail = |errno: i32| -> ! {
            plan.error.store(if errno == 0 { libc::EINVAL } else { errno }, Ordering::SeqCst);
            libc::_exit(127)
        };
        let errno = || *libc::__errno_location();
        // The daemon's handlers must not run here; exec would reset them anyway.
        // SIGPIPE back to default too, as std's Command does for its children.
        for sig in 1..=libc::SIGRTMAX() {
            let mut act: libc::sigaction = std::mem::zeroed();
            if libc::sigaction(sig, std::ptr::null(), &mut act) == 0
                && (act.sa_sigaction != libc::SIG_DFL && act.sa_sigaction != libc::SIG_IGN
                    || sig == libc::SIGPIPE && act.sa_sigaction == libc::SIG_IGN)
            {
                let mut dfl: libc::sigaction = std::mem::zeroed();
                dfl.sa_sigaction = libc::SIG_DFL;
                libc::sigaction(sig, &dfl, std::ptr::null_mut());
            }
        }
        let empty: libc::sigset_t = std::mem::zeroed();
        libc::sigprocmask(libc::SIG_SETMASK, &empty, std::ptr::null_mut());
        // A private table with only the low descriptors: exec then has a few to close
        // instead of every pipe and log file of every program (the cost of a spawn
        // grew with the number of programs). Nothing before this touches descriptors.
        if let Some(below) = plan.unshare_below {
            if libc::syscall(
                libc::SYS_close_range,
                below as libc::c_uint,
                libc::c_uint::MAX,
                CLOSE_RANGE_UNSHARE,
            ) != 0
            {
                fail(errno());
            }
        }
        for (target, &fd) in plan.stdio.iter().enumerate() {
            let target = target as RawFd;
            let ok = if fd == target {
                libc::fcntl(fd, libc::F_SETFD, 0) == 0
            } else {
                libc::dup2(fd, target) == target
            };
            if !ok {
                fail(errno());
            }
        }
        // Own process group (setpgrp), so signals to the daemon's group don't reach it.
        if libc::setpgid(0, 0) != 0 {
            fail(errno());
        }
        for &fd in plan.cgroup_fds {
            if libc::write(fd, b"0".as_ptr().cast(), 1) != 1 {
                fail(errno());
            }
        }
        if let Some(v) = plan.oom {
            let fd = libc::open(c"/proc/self/oom_score_adj".as_ptr(), libc::O_WRONLY | libc::O_CLOEXEC);
            if fd < 0 || !raw_write(fd, v) {
                fail(errno());
            }
            libc::close(fd);
        }
        match plan.creds {
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
        if let Some((dir, prefix, suffix)) = plan.chdir {
            if libc::chdir(dir.as_ptr()) != 0 {
                let e = errno();
                raw_write(2, prefix);
                match plan.errno_names.iter().find(|(n, _)| *n == e) {
                    Some((_, name)) => raw_write(2, name),
                    None => raw_write(2, b"ERROR"),
                };
                child_fail(suffix);
            }
        }
        if let Some(mask) = plan.umask {
            libc::umask(mask as libc::mode_t);
        }
        if let Some((from, to)) = plan.extra_fd {
            // dup2 leaves the copy open across exec; the same number needs its flag cleared.
            let ok =
                if from == to { libc::fcntl(to, libc::F_SETFD, 0) == 0 } else { libc::dup2(from, to) == to };
            if !ok {
                fail(errno());
            }
        }
        // As supervisord's child closes 3..minfds: nothing the daemon inherited
        // without close-on-exec reaches the program, only its readiness descriptor.
        if plan.unshare_below.is_some() {
            let close = |from: libc::c_uint, to: libc::c_uint| {
                if from <= to {
                    libc::syscall(libc::SYS_close_range, from, to, 0 as libc::c_uint);
                }
            };
            match plan.extra_fd {
                Some((_, n)) if n >= 3 => {
                    close(3, n as libc::c_uint - 1);
                    close(n as libc::c_uint + 1, libc::c_uint::MAX);
                }
                _ => close(3, libc::c_uint::MAX),
            }
        }
        let image = plan.exec;
        libc::execve(image.path.as_ptr(), image.argv.as_ptr(), image.envp.as_ptr());
        fail(errno())
    }
}

/// `close_range(2)` flag: give the caller a private descriptor table first.
const CLOSE_RANGE_UNSHARE: libc::c_uint = 1 << 1;

/// Descriptors handed to one child: its stdio, cgroup and extra descriptors in
/// [`SpawnRequest`] order, as the child sees them.
#[derive(Default)]
struct Handed {
    fds: Vec<RawFd>,
}

/// A few descriptor numbers reserved low in the daemon's table.
///
/// A child started with `CLONE_FILES` drops everything at or above
/// [`Slots::limit`] in one `close_range(CLOSE_RANGE_UNSHARE)`, which copies only
/// the table below it. So before each clone the descriptors the child needs are
/// `dup3`'d into the slots, and afterwards the slots point at `/dev/null` again.
/// Reserved while the daemon has few descriptors open ([`reserve_slots`]), they
/// keep the copy small whatever the number of programs.
pub mod slots {
    use std::io;
    use std::os::fd::RawFd;
    use std::sync::{Mutex, MutexGuard, OnceLock};

    use super::Handed;

    /// stdin, stdout, stderr, up to 8 cgroup hierarchies, one `ready=fd:N` pipe.
    const COUNT: usize = 12;

    pub(super) struct Slots {
        devnull: RawFd,
        fds: [RawFd; COUNT],
    }

    static SLOTS: OnceLock<Mutex<Option<Slots>>> = OnceLock::new();

    /// Reserve the slots now (idempotent). Call early, while the daemon's table is
    /// small; spawns before this, or on a kernel without `close_range`, copy the
    /// whole table instead.
    pub fn reserve() {
        SLOTS.get_or_init(|| Mutex::new(make()));
    }

    fn make() -> Option<Slots> {
        // SAFETY: close_range on an empty range above any open descriptor changes
        // nothing; it only tells whether the kernel has the call (Linux 5.9).
        if unsafe { libc::syscall(libc::SYS_close_range, libc::c_uint::MAX, libc::c_uint::MAX, 0) } != 0 {
            tracing::debug!("close_range unavailable: children copy the whole descriptor table");
            return None;
        }
        // SAFETY: open/fcntl on a constant path; every descriptor made is kept in `Slots`.
        let devnull = unsafe { libc::open(c"/dev/null".as_ptr(), libc::O_RDONLY | libc::O_CLOEXEC) };
        if devnull < 0 {
            return None;
        }
        let mut fds = [-1; COUNT];
        for slot in &mut fds {
            // Above the standard three, which the child's own stdio replaces.
            // SAFETY: duplicating our own descriptor.
            *slot = unsafe { libc::fcntl(devnull, libc::F_DUPFD_CLOEXEC, 3) };
            if *slot < 0 {
                return None;
            }
        }
        Some(Slots { devnull, fds })
    }

    pub(super) fn lock() -> MutexGuard<'static, Option<Slots>> {
        SLOTS.get_or_init(|| Mutex::new(None)).lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    impl Slots {
        /// One above the highest descriptor the child must keep.
        pub(super) fn limit(&self) -> RawFd {
            self.fds.iter().copied().max().unwrap_or(self.devnull).max(self.devnull) + 1
        }

        /// Put `sources` into the slots, in order; `handed` gets the slot numbers.
        pub(super) fn hand(
            &mut self,
            sources: impl Iterator<Item = RawFd>,
            handed: &mut Handed,
        ) -> io::Result<()> {
            for (i, fd) in sources.enumerate() {
                let Some(&slot) = self.fds.get(i) else {
                    self.release(handed);
                    return Err(io::Error::from_raw_os_error(libc::EMFILE));
                };
                // SAFETY: both descriptors are open; the slot is ours alone.
                if unsafe { libc::dup3(fd, slot, libc::O_CLOEXEC) } < 0 {
                    let e = io::Error::last_os_error();
                    self.release(handed);
                    return Err(e);
                }
                handed.fds.push(slot);
            }
            Ok(())
        }

        /// Point the used slots at `/dev/null` again, closing the child's ends.
        pub(super) fn release(&mut self, handed: &Handed) {
            for &slot in &handed.fds {
                // SAFETY: as in `hand`.
                unsafe { libc::dup3(self.devnull, slot, libc::O_CLOEXEC) };
            }
        }
    }
}

/// Reserve the low descriptor slots children are handed their descriptors through;
/// see [`slots`]. The engine calls it before it opens any log file.
pub fn reserve_slots() {
    slots::reserve();
}

/// argv and environment as NUL-terminated arrays, built before the clone so the
/// child only calls execve.
struct ExecImage {
    path: CString,
    _strings: Vec<CString>,
    argv: Vec<*const libc::c_char>,
    envp: Vec<*const libc::c_char>,
}

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
