//! Daemon-side process setup done once at start: privilege drop, resource
//! limits and daemonizing. Runs before the async runtime starts any thread.

use std::io;
use std::path::Path;

use nix::sys::resource::{getrlimit, setrlimit, Resource, RLIM_INFINITY};
use nix::unistd::{Gid, Uid};

use crate::config::User;

/// Errors of daemon setup, with supervisord's wording where it has one.
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    /// A non-root daemon asked to become another user.
    #[error("Can't drop privilege as nonroot user")]
    NotRoot,
    /// A privilege-changing call failed.
    #[error("could not set {what} to {id}: {source}")]
    SetId {
        /// `uid`, `gid` or `groups`.
        what: &'static str,
        /// The id.
        id: u32,
        /// errno.
        #[source]
        source: nix::Error,
    },
    /// A limit could not be raised.
    #[error("The minimum number of {what} required to run this process is {min} as per the \"{option}\" command-line argument or config file setting. The current environment will only allow you to open {hard} {what}.  Either raise the number of usable {what} in your environment or lower the {option} setting in the config file to allow the process to start.")]
    Limit {
        /// `file descriptors` / `available processes`.
        what: &'static str,
        /// `minfds` / `minprocs`.
        option: &'static str,
        /// The requested minimum.
        min: u64,
        /// The hard limit in force.
        hard: String,
    },
    /// fork/setsid/chdir/open while daemonizing.
    #[error("{0}")]
    Io(#[from] io::Error),
}

/// Become `user` (groups, gid, uid), as supervisord's `[supervisord] user=`.
pub fn drop_to(user: &User) -> Result<(), SetupError> {
    let me = Uid::current();
    if me.as_raw() == user.uid {
        return Ok(());
    }
    if !me.is_root() {
        return Err(SetupError::NotRoot);
    }
    let gid = Gid::from_raw(user.gid);
    if let Some(name) = user.name.as_deref().and_then(|n| std::ffi::CString::new(n).ok()) {
        nix::unistd::initgroups(&name, gid).map_err(|source| SetupError::SetId {
            what: "groups",
            id: user.gid,
            source,
        })?;
    }
    nix::unistd::setgid(gid).map_err(|source| SetupError::SetId { what: "gid", id: user.gid, source })?;
    nix::unistd::setuid(Uid::from_raw(user.uid)).map_err(|source| SetupError::SetId {
        what: "uid",
        id: user.uid,
        source,
    })?;
    Ok(())
}

/// Raise RLIMIT_NOFILE and RLIMIT_NPROC to at least `minfds`/`minprocs`.
/// Returns the INFO messages supervisord logs for each raise.
pub fn raise_limits(minfds: u64, minprocs: u64) -> Result<Vec<String>, SetupError> {
    let mut infos = Vec::new();
    for (res, min, name, what, option) in [
        (Resource::RLIMIT_NOFILE, minfds, "RLIMIT_NOFILE", "file descriptors", "minfds"),
        (Resource::RLIMIT_NPROC, minprocs, "RLIMIT_NPROC", "available processes", "minprocs"),
    ] {
        let (soft, hard) = getrlimit(res).map_err(io::Error::from)?;
        if soft != RLIM_INFINITY && soft < min {
            let new_hard = if hard != RLIM_INFINITY && hard < min { min } else { hard };
            setrlimit(res, min, new_hard).map_err(|_| SetupError::Limit {
                what,
                option,
                min,
                hard: if hard == RLIM_INFINITY { "unlimited".into() } else { hard.to_string() },
            })?;
            infos.push(format!("Increased {name} limit to {min}"));
        }
    }
    Ok(infos)
}

/// Detach from the terminal: fork (the parent exits 0), setsid, chdir, umask,
/// stdio to /dev/null. Must run before any thread is started.
pub fn daemonize(directory: Option<&Path>, umask: u32) -> Result<(), SetupError> {
    use nix::unistd::{fork, ForkResult};
    // SAFETY: called from main before the runtime starts, so the process is single-threaded.
    match unsafe { fork() }.map_err(io::Error::from)? {
        ForkResult::Parent { .. } => std::process::exit(0),
        ForkResult::Child => {}
    }
    if let Some(dir) = directory {
        std::env::set_current_dir(dir)?;
    }
    nix::unistd::setsid().map_err(io::Error::from)?;
    nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(umask));
    let null = std::fs::OpenOptions::new().read(true).write(true).open("/dev/null")?;
    use std::os::fd::AsRawFd;
    for fd in 0..3 {
        // SAFETY: dup2 onto the standard descriptors; `null` stays open for the call.
        if unsafe { libc::dup2(null.as_raw_fd(), fd) } < 0 {
            return Err(io::Error::last_os_error().into());
        }
    }
    Ok(())
}
