//! Reaping: `waitpid(-1, WNOHANG)` until nothing is left.
//!
//! The engine is the only caller (on SIGCHLD), so no other `waitpid` can steal a
//! status, and the daemon can be a child subreaper (PID 1 in a container).

use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};

use crate::engine::ExitStatus;

/// Mark the daemon as a child subreaper so orphaned descendants are reparented
/// to it (and reaped by [`reap_all`]) instead of to init.
pub fn become_subreaper() -> std::io::Result<()> {
    // SAFETY: prctl with PR_SET_CHILD_SUBREAPER takes an integer argument only.
    let rc = unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) };
    if rc == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// Reap every exited child; returns `(pid, status)` pairs.
pub fn reap_all() -> Vec<(u32, ExitStatus)> {
    let mut out = Vec::new();
    loop {
        match waitpid(None, Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::Exited(pid, code)) => out.push((pid.as_raw() as u32, ExitStatus::Code(code))),
            Ok(WaitStatus::Signaled(pid, sig, core)) => {
                out.push((pid.as_raw() as u32, ExitStatus::Signal { signal: sig as i32, core }))
            }
            Ok(WaitStatus::StillAlive) | Err(_) => break,
            Ok(_) => continue,
        }
    }
    out
}
