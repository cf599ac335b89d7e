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
    /// The cgroup2 leaf's directory, whose `cgroup.procs` is the last of
    /// `cgroup_procs`: where the kernel can, the child is created in it
    /// (`clone3(CLONE_INTO_CGROUP)`) instead of writing itself in.
    pub cgroup_dir: Option<RawFd>,
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
    prepare(req)?.launch()
}

/// A child ready to be started: its pipes made, its argv, environment, credentials
/// and messages rendered. [`Prepared::launch`] starts it, on any thread.
pub struct Prepared {
    name: String,
    argv0: String,
    /// The daemon's ends: stdin's write end, stdout's and stderr's read ends.
    stdin_w: OwnedFd,
    stdout_r: OwnedFd,
    stderr_r: Option<OwnedFd>,
    /// The child's ends, dup'd onto 0, 1, 2 (closed here once it has them).
    stdio: [OwnedFd; 3],
    /// Borrowed from the caller, who keeps them open until the launch returns.
    cgroup_fds: Vec<RawFd>,
    cgroup_dir: Option<RawFd>,
    extra_fd: Option<(RawFd, i32)>,
    creds: Credentials,
    chdir: Option<(CString, Vec<u8>, Vec<u8>)>,
    errno_names: Vec<(i32, Vec<u8>)>,
    oom: Option<Vec<u8>>,
    umask: Option<u32>,
    exec: ExecImage,
    /// Whatever must stay open until the clone returns, closed right after it.
    keep: Vec<Box<dyn Send>>,
}

impl std::fmt::Debug for Prepared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Prepared")
            .field("name", &self.name)
            .field("argv0", &self.argv0)
            .finish_non_exhaustive()
    }
}

/// Everything for [`Prepared::launch`] but the clone itself. The descriptors in
/// `req.cgroup_procs` and `req.extra_fd` must stay open until the launch returns.
pub fn prepare(req: SpawnRequest<'_>) -> Result<Prepared, SpawnError> {
    let pipe_err = |e: io::Error| pipe_error(req.name, e);
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
    let chdir = chdir.map(|(c, shown)| {
        let prefix = format!("supervisor: couldn't chdir to {shown}: ").into_bytes();
        let suffix = b"\nsupervisor: child process was not spawned\n".to_vec();
        (c, prefix, suffix)
    });
    // execve, not execvp: supervisord never retries a non-executable file
    // through /bin/sh, so an ENOEXEC must stay an error.
    let exec = ExecImage::new(&req.command.filename, &req.command.argv, &req.env)
        .map_err(|_| SpawnError::Exec { argv0: argv0.clone(), errno: "EINVAL".into() })?;
    // Pre-rendered errno names for the chdir message (no allocation in the child).
    let errno_names: Vec<(i32, Vec<u8>)> =
        [libc::ENOENT, libc::EACCES, libc::ENOTDIR, libc::ELOOP, libc::ENAMETOOLONG]
            .iter()
            .map(|&e| (e, errno_name(e).into_bytes()))
            .collect();
    Ok(Prepared {
        name: req.name.to_string(),
        argv0,
        stdin_w,
        stdout_r,
        stderr_r,
        stdio: [stdin_r, stdout_w, stderr_w],
        cgroup_fds: req.cgroup_procs.to_vec(),
        cgroup_dir: req.cgroup_dir,
        extra_fd: req.extra_fd,
        creds,
        chdir,
        errno_names,
        oom: req.oom_score_adj.map(|v| v.to_string().into_bytes()),
        umask: req.umask,
        exec,
        keep: Vec::new(),
    })
}

fn pipe_error(name: &str, e: io::Error) -> SpawnError {
    match e.raw_os_error() {
        Some(libc::EMFILE) | Some(libc::ENFILE) => SpawnError::TooManyFiles(name.to_string()),
        other => SpawnError::Pipes { name: name.to_string(), errno: errno_name(other.unwrap_or(0)) },
    }
}

impl Prepared {
    /// Keep `value` (the owner of descriptors the request borrowed, such as the
    /// cgroup placement) until the clone has returned, then drop it: a batch of
    /// thousands must not hold every child's descriptors until the last has started.
    pub fn keep_until_launched(&mut self, value: Box<dyn Send>) {
        self.keep.push(value);
    }

    /// Clone and exec. Returns once the child has exec'd (or failed, as an error).
    pub fn launch(self) -> Result<Spawned, SpawnError> {
        let mut lane = lanes::take();
        let result = self.launch_in(&mut lane);
        lanes::give(lane);
        result
    }

    fn launch_in(self, lane: &mut lanes::Lane) -> Result<Spawned, SpawnError> {
        let Prepared {
            name,
            argv0,
            stdin_w,
            stdout_r,
            stderr_r,
            stdio,
            cgroup_fds,
            cgroup_dir,
            extra_fd,
            creds,
            chdir,
            errno_names,
            oom,
            umask,
            exec,
            keep,
        } = self;
        if lane.stack.is_null() {
            return Err(SpawnError::Exec { argv0, errno: errno_name(libc::ENOMEM) });
        }
        // Hand the child its descriptors through the lane's low slots when it has
        // them: the child then copies only the descriptors below them instead of the
        // daemon's whole table.
        let mut handed = Handed::default();
        let sources = stdio
            .iter()
            .map(AsRawFd::as_raw_fd)
            .chain(cgroup_fds.iter().copied())
            .chain(extra_fd.map(|(fd, _)| fd));
        let below = match lane.slots.as_mut() {
            Some(s) => match s.hand(sources, &mut handed) {
                Ok(()) => Some(s.limit()),
                Err(e) => return Err(pipe_error(&name, e)),
            },
            None => {
                handed.fds.extend(sources);
                None
            }
        };
        let n_cg = cgroup_fds.len();
        // Created inside its cgroup2 leaf, the child need not write itself in: a
        // write to cgroup.procs is a migration, which can wait for an RCU grace
        // period (milliseconds) when nothing has migrated lately.
        let into = cgroup_dir.filter(|_| n_cg > 0 && clone3::usable());
        let joins = if into.is_some() { n_cg - 1 } else { n_cg };
        let mut plan = ChildPlan {
            unshare_below: below,
            stdio: [handed.fds[0], handed.fds[1], handed.fds[2]],
            cgroup_fds: &handed.fds[3..3 + joins],
            oom: oom.as_deref(),
            creds: &creds,
            chdir: chdir.as_ref(),
            errno_names: &errno_names,
            umask,
            extra_fd: extra_fd.map(|(_, n)| (handed.fds[3 + n_cg], n)),
            exec: &exec,
            error: AtomicI32::new(0),
        };
        let mut cloned = match into {
            Some(dir) => clone3::clone_into(&plan, lane.stack, dir),
            None => Err(clone3::UNSUPPORTED),
        };
        if cloned == Err(clone3::UNSUPPORTED) {
            // No clone3 or no CLONE_INTO_CGROUP here: the child writes every cgroup.
            plan.cgroup_fds = &handed.fds[3..3 + n_cg];
            cloned = clone_vfork(&plan, lane.stack);
        }
        // The child has its copies (or is gone): the slots must not keep its pipe ends open.
        if let Some(s) = lane.slots.as_mut() {
            s.release(&handed);
        }
        drop(stdio);
        drop(keep);
        let pid = match cloned {
            Ok(pid) => pid,
            Err(errno) if errno == libc::EAGAIN => return Err(SpawnError::TooManyProcesses(name)),
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
}

/// Several children started at once: each [`Prepared`] submitted goes to a small
/// pool of launcher threads right away, so children exec in parallel while the
/// caller prepares the next ones (a clone waits for its child's exec, which on a
/// busy machine is mostly waiting for a CPU); [`Batch::finish`] returns the
/// results in submission order.
pub struct Batch {
    results: std::sync::mpsc::Receiver<(usize, Launched)>,
    reply: std::sync::mpsc::Sender<(usize, Launched)>,
    inline: Vec<(usize, Launched)>,
    submitted: usize,
}

/// A launch result and when it happened (the exec, not the end of the batch).
pub type Launched = (Result<Spawned, SpawnError>, std::time::Instant, std::time::SystemTime);

impl Batch {
    /// An empty batch.
    pub fn new() -> Batch {
        let (reply, results) = std::sync::mpsc::channel();
        Batch { results, reply, inline: Vec::new(), submitted: 0 }
    }

    /// Start `child` as soon as a launcher is free. Returns its index.
    pub fn submit(&mut self, child: Prepared) -> usize {
        let index = self.submitted;
        self.submitted += 1;
        let job = Box::new(launchers::Job { index, child, reply: self.reply.clone() });
        if let Err(job) = launchers::send(job) {
            // No launcher thread: start it here.
            self.inline.push((index, stamp(job.child.launch())));
        }
        index
    }

    /// Wait for every submitted child; results in submission order.
    pub fn finish(self) -> Vec<Launched> {
        let Batch { results, reply, inline, submitted } = self;
        drop(reply);
        let mut slots: Vec<Option<Launched>> = (0..submitted).map(|_| None).collect();
        for (index, launched) in inline.into_iter().chain(results.iter()) {
            if let Some(slot) = slots.get_mut(index) {
                *slot = Some(launched);
            }
        }
        slots
            .into_iter()
            .map(|l| {
                l.unwrap_or_else(|| {
                    let lost = SpawnError::Exec { argv0: String::new(), errno: "ECHILD".into() };
                    (Err(lost), std::time::Instant::now(), std::time::SystemTime::now())
                })
            })
            .collect()
    }
}

impl Default for Batch {
    fn default() -> Batch {
        Batch::new()
    }
}

fn stamp(result: Result<Spawned, SpawnError>) -> Launched {
    (result, std::time::Instant::now(), std::time::SystemTime::now())
}

/// The launcher threads of [`Batch`].
mod launchers {
    use std::sync::mpsc::{Receiver, Sender, SyncSender};
    use std::sync::{Arc, Mutex, OnceLock};

    use super::{stamp, Launched, Prepared};

    /// Threads that clone in parallel. Waiting for an exec costs them no CPU, so a
    /// few more than the cores a small host has.
    pub(super) const THREADS: usize = 3;

    /// Prepared children waiting for a launcher. Each holds its pipes and cgroup
    /// descriptors until it is cloned, so a full queue makes the submitter wait:
    /// the descriptors in flight stay a few hundred whatever the batch size (5000
    /// programs prepared ahead of the launchers ran out of descriptors).
    const QUEUE: usize = 32;

    pub(super) struct Job {
        pub index: usize,
        pub child: Prepared,
        pub reply: Sender<(usize, Launched)>,
    }

    static POOL: OnceLock<Option<SyncSender<Box<Job>>>> = OnceLock::new();

    fn start() -> Option<SyncSender<Box<Job>>> {
        let (tx, rx) = std::sync::mpsc::sync_channel::<Box<Job>>(QUEUE);
        let rx = Arc::new(Mutex::new(rx));
        let mut started = 0;
        for i in 0..THREADS {
            let rx = Arc::clone(&rx);
            let spawned =
                std::thread::Builder::new().name(format!("corral-launch-{i}")).spawn(move || run(&rx));
            match spawned {
                Ok(_) => started += 1,
                Err(e) => tracing::warn!("cannot start a launcher thread: {e}"),
            }
        }
        (started > 0).then_some(tx)
    }

    fn run(rx: &Mutex<Receiver<Box<Job>>>) {
        // Signals are for the daemon's own threads; these only clone and wait.
        // SAFETY: blocking every signal on this thread with a local set.
        unsafe {
            let mut all: libc::sigset_t = std::mem::zeroed();
            libc::sigfillset(&mut all);
            libc::pthread_sigmask(libc::SIG_BLOCK, &all, std::ptr::null_mut());
        }
        loop {
            let job = match rx.lock() {
                Ok(rx) => rx.recv(),
                Err(poisoned) => poisoned.into_inner().recv(),
            };
            let Ok(job) = job else { return };
            let _ = job.reply.send((job.index, stamp(job.child.launch())));
        }
    }

    /// Queue `job` for a launcher, waiting while the queue is full; gives it back
    /// when there is no launcher.
    pub(super) fn send(job: Box<Job>) -> Result<(), Box<Job>> {
        match POOL.get_or_init(start) {
            Some(tx) => tx.send(job).map_err(|e| e.0),
            None => Err(job),
        }
    }
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

/// Map a stack for children, with a guard page below it.
fn map_child_stack() -> Result<*mut libc::c_void, i32> {
    // SAFETY: a fresh anonymous mapping, used only as children's stack by the one
    // lane that owns it.
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
fn clone_vfork(plan: &ChildPlan<'_>, stack: *mut libc::c_void) -> Result<libc::pid_t, i32> {
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
    if pid < 0 {
        return Err(clone_errno);
    }
    Ok(pid)
}

/// `clone3(CLONE_VM | CLONE_VFORK | CLONE_INTO_CGROUP)`: [`clone_vfork`] with the
/// child created directly in a cgroup2 directory (Linux 5.7). libc has no wrapper
/// that runs a function on a new stack, so the x86_64 entry is a few instructions
/// of assembly, as glibc's own `clone3`; elsewhere, or where the kernel refuses,
/// callers fall back to `clone` and the child writing `cgroup.procs`.
mod clone3 {
    use std::sync::atomic::{AtomicBool, Ordering};

    use super::{child_main, ChildPlan, CHILD_STACK};

    /// The error standing for "no such clone here": try the other way.
    pub(super) const UNSUPPORTED: i32 = -1;

    static REFUSED: AtomicBool = AtomicBool::new(false);

    /// Whether to try clone3 (not yet refused by this kernel).
    pub(super) fn usable() -> bool {
        cfg!(target_arch = "x86_64") && !REFUSED.load(Ordering::Relaxed)
    }

    /// `struct clone_args` (CLONE_ARGS_SIZE_VER2).
    #[repr(C)]
    struct CloneArgs {
        flags: u64,
        pidfd: u64,
        child_tid: u64,
        parent_tid: u64,
        exit_signal: u64,
        stack: u64,
        stack_size: u64,
        tls: u64,
        set_tid: u64,
        set_tid_size: u64,
        cgroup: u64,
    }

    const CLONE_INTO_CGROUP: u64 = 0x2_0000_0000;

    /// Start `child_main(plan)` in the cgroup2 directory `dir`; the pid, an errno,
    /// or [`UNSUPPORTED`] (remembered, so later spawns go straight to `clone`).
    pub(super) fn clone_into(
        plan: &ChildPlan<'_>,
        stack: *mut libc::c_void,
        dir: std::os::fd::RawFd,
    ) -> Result<libc::pid_t, i32> {
        let mut flags = (libc::CLONE_VM | libc::CLONE_VFORK) as u64 | CLONE_INTO_CGROUP;
        if plan.unshare_below.is_some() {
            flags |= libc::CLONE_FILES as u64;
        }
        let args = CloneArgs {
            flags,
            pidfd: 0,
            child_tid: 0,
            parent_tid: 0,
            exit_signal: libc::SIGCHLD as u64,
            stack: stack as u64,
            stack_size: CHILD_STACK as u64,
            tls: 0,
            set_tid: 0,
            set_tid_size: 0,
            cgroup: dir as u64,
        };
        // Signals blocked around the clone, as in `clone_vfork`.
        // SAFETY: plain sigset manipulation on local storage.
        let mut all: libc::sigset_t = unsafe { std::mem::zeroed() };
        let mut old: libc::sigset_t = unsafe { std::mem::zeroed() };
        unsafe {
            libc::sigfillset(&mut all);
            libc::pthread_sigmask(libc::SIG_SETMASK, &all, &mut old);
        }
        // SAFETY: `args` describes a valid stack that only the child uses; the child
        // runs `child_main(plan)` on it and never returns into this frame, and we are
        // suspended (CLONE_VFORK) until it has exec'd or exited, so `plan` outlives it.
        let ret = unsafe { raw_clone3(&args, plan) };
        // SAFETY: restoring the mask saved above.
        unsafe { libc::pthread_sigmask(libc::SIG_SETMASK, &old, std::ptr::null_mut()) };
        if ret >= 0 {
            return Ok(ret as libc::pid_t);
        }
        let errno = -ret as i32;
        match errno {
            // No clone3, no CLONE_INTO_CGROUP, or a struct size it does not know.
            libc::ENOSYS | libc::EINVAL | libc::E2BIG | libc::EOPNOTSUPP | libc::EPERM => {
                REFUSED.store(true, Ordering::Relaxed);
                tracing::debug!("clone3(CLONE_INTO_CGROUP) refused ({errno}); children write cgroup.procs");
                Err(UNSUPPORTED)
            }
            other => Err(other),
        }
    }

    #[cfg(target_arch = "x86_64")]
    unsafe fn raw_clone3(args: &CloneArgs, plan: &ChildPlan<'_>) -> i64 {
        let ret: i64;
        let entry: extern "C" fn(*mut libc::c_void) -> libc::c_int = child_main;
        // The child starts on the new stack with every other register as ours: it
        // calls the entry with the plan and, should it return, exits.
        std::arch::asm!(
            "syscall",
            "test rax, rax",
            "jnz 2f",
            "xor ebp, ebp",
            "mov rdi, r13",
            "call r12",
            "mov edi, eax",
            "mov eax, 60",
            "syscall",
            "ud2",
            "2:",
            inlateout("rax") libc::SYS_clone3 => ret,
            in("rdi") args as *const CloneArgs,
            in("rsi") std::mem::size_of::<CloneArgs>(),
            in("r12") entry,
            in("r13") plan as *const ChildPlan<'_>,
            lateout("rcx") _,
            lateout("r11") _,
        );
        ret
    }

    #[cfg(not(target_arch = "x86_64"))]
    unsafe fn raw_clone3(_args: &CloneArgs, _plan: &ChildPlan<'_>) -> i64 {
        -(libc::ENOSYS as i64)
    }
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

/// What one launch at a time uses: a child stack and, where the kernel allows, a
/// dozen descriptor numbers reserved low in the daemon's table (the slots).
///
/// A child started with `CLONE_FILES` drops everything at or above
/// [`Slots::limit`] in one `close_range(CLOSE_RANGE_UNSHARE)`, which copies only
/// the table below it. So before each clone the descriptors the child needs are
/// `dup3`'d into the slots, and afterwards the slots point at `/dev/null` again.
/// Reserved while the daemon has few descriptors open ([`reserve_slots`]), they
/// keep the copy small whatever the number of programs. One lane per launcher
/// thread and one for the engine; a launch that finds none free gets a lane of its
/// own (a fresh stack, no slots: a full table copy) and drops it afterwards.
///
/// The stack is reused by every launch in the lane: CLONE_VFORK suspends the
/// launching thread until its child has exec'd or exited. Mapping a fresh one per
/// spawn cost an mmap, page faults and an munmap (with its TLB flush) every time.
mod lanes {
    use std::io;
    use std::os::fd::RawFd;
    use std::sync::{Mutex, OnceLock};

    use super::{launchers, map_child_stack, Handed, CHILD_STACK};

    /// stdin, stdout, stderr, up to 8 cgroup hierarchies, one `ready=fd:N` pipe.
    const COUNT: usize = 12;

    pub(super) struct Slots {
        devnull: RawFd,
        fds: [RawFd; COUNT],
    }

    pub(super) struct Lane {
        pub slots: Option<Slots>,
        pub stack: *mut libc::c_void,
        /// A lane made for one launch, unmapped when given back.
        spare: bool,
    }

    // SAFETY: the stack pointer is a private mapping used by whichever thread holds
    // the lane; lanes move between threads only through the pool's mutex.
    unsafe impl Send for Lane {}

    static LANES: OnceLock<Mutex<Vec<Lane>>> = OnceLock::new();

    /// Reserve the lanes now (idempotent). Call early, while the daemon's table is
    /// small; on a kernel without `close_range` the lanes have no slots.
    pub(super) fn reserve() {
        LANES.get_or_init(|| Mutex::new(make(launchers::THREADS + 1)));
    }

    fn make(n: usize) -> Vec<Lane> {
        // SAFETY: close_range on an empty range above any open descriptor changes
        // nothing; it only tells whether the kernel has the call (Linux 5.9).
        let close_range =
            unsafe { libc::syscall(libc::SYS_close_range, libc::c_uint::MAX, libc::c_uint::MAX, 0) } == 0;
        if !close_range {
            tracing::debug!("close_range unavailable: children copy the whole descriptor table");
        }
        // SAFETY: open on a constant path; the descriptor is kept for the daemon's life.
        let devnull = unsafe { libc::open(c"/dev/null".as_ptr(), libc::O_RDONLY | libc::O_CLOEXEC) };
        let mut lanes = Vec::with_capacity(n);
        for _ in 0..n {
            let Ok(stack) = map_child_stack() else { break };
            let slots = (close_range && devnull >= 0).then(|| slots(devnull)).flatten();
            lanes.push(Lane { slots, stack, spare: false });
        }
        lanes
    }

    fn slots(devnull: RawFd) -> Option<Slots> {
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

    /// A free lane, or a spare one made for this launch.
    pub(super) fn take() -> Lane {
        let pooled = LANES.get().and_then(|l| l.lock().unwrap_or_else(|p| p.into_inner()).pop());
        pooled.unwrap_or_else(|| {
            let stack = map_child_stack().unwrap_or(std::ptr::null_mut());
            Lane { slots: None, stack, spare: true }
        })
    }

    /// Return a lane taken with [`take`].
    pub(super) fn give(lane: Lane) {
        if lane.spare {
            if !lane.stack.is_null() {
                // SAFETY: the spare mapping made in `take`, no longer used.
                unsafe { libc::munmap(lane.stack, CHILD_STACK) };
            }
            return;
        }
        if let Some(pool) = LANES.get() {
            pool.lock().unwrap_or_else(|p| p.into_inner()).push(lane);
        }
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

/// Reserve the low descriptor slots and stacks children are started with; see
/// [`lanes`]. The engine calls it before it opens any log file.
pub fn reserve_slots() {
    lanes::reserve();
}

/// argv and environment as NUL-terminated arrays, built before the clone so the
/// child only calls execve.
struct ExecImage {
    path: CString,
    _strings: Vec<CString>,
    argv: Vec<*const libc::c_char>,
    envp: Vec<*const libc::c_char>,
}

// SAFETY: the pointers point into `_strings`, owned by the same value and never
// changed after construction, so the image can move to a launcher thread whole.
unsafe impl Send for ExecImage {}

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
