//! Crash recovery (`adopt_orphans=true`): find the main process of a program a
//! dead daemon left running in its cgroup leaf, watch it without being its
//! parent, and reach its output pipes again where they still exist.

use std::io;
use std::os::fd::{FromRawFd, OwnedFd};
use std::path::PathBuf;
use std::time::{SystemTime, UNIX_EPOCH};

use tokio::io::unix::AsyncFd;
use tokio::sync::mpsc;

/// What `/proc/<pid>/stat` says about a process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Stat {
    ppid: i32,
    /// Clock ticks after boot.
    starttime: u64,
}

fn stat(pid: i32) -> Option<Stat> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may hold spaces and parentheses: fields start after the last ')'.
    let rest = text.rsplit_once(')')?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // fields[0] is field 3 (state): ppid is field 4, starttime field 22.
    if fields.first() == Some(&"Z") {
        return None;
    }
    Some(Stat { ppid: fields.get(1)?.parse().ok()?, starttime: fields.get(19)?.parse().ok()? })
}

/// The main process among the members of one program's leaf: the oldest member
/// whose parent is outside the leaf (the one the daemon forked; everything else
/// descends from it). `None` when no member is alive.
pub(crate) fn main_pid(members: &[i32]) -> Option<(i32, u64)> {
    let stats: Vec<(i32, Stat)> = members.iter().filter_map(|&p| stat(p).map(|s| (p, s))).collect();
    stats
        .iter()
        .filter(|(_, s)| !members.contains(&s.ppid))
        .min_by_key(|(p, s)| (s.starttime, *p))
        .map(|(p, s)| (*p, s.starttime))
}

/// Wall-clock milliseconds since the epoch at which a process with `starttime`
/// (clock ticks after boot) started.
pub(crate) fn start_wall_ms(starttime: u64) -> Option<u64> {
    let btime: u64 = std::fs::read_to_string("/proc/stat")
        .ok()?
        .lines()
        .find_map(|l| l.strip_prefix("btime "))?
        .trim()
        .parse()
        .ok()?;
    // SAFETY: sysconf with a valid name has no other effect.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    let hz = u64::try_from(hz).ok().filter(|h| *h > 0)?;
    Some(btime * 1000 + starttime * 1000 / hz)
}

/// Now, as wall-clock milliseconds since the epoch.
pub(crate) fn now_wall_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

/// Report `pid` on `exits` when it ends. A pidfd becomes readable when the
/// process exits, whoever its parent is; the exit status stays unknown.
pub(crate) fn watch_orphan(pid: u32, exits: mpsc::UnboundedSender<u32>) -> io::Result<()> {
    // SAFETY: pidfd_open takes a pid and flags and returns a new descriptor or -1.
    let raw = unsafe { libc::syscall(libc::SYS_pidfd_open, pid as libc::pid_t, 0) };
    if raw < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: a descriptor the kernel just gave us, owned here only.
    let fd = unsafe { OwnedFd::from_raw_fd(raw as i32) };
    // SAFETY: the `OwnedFd` moves into the `AsyncFd`, which owns it until dropped.
    let fd = unsafe { AsyncFd::register_with_interest(fd, tokio::io::Interest::READABLE) }
        .map_err(io::Error::from)?;
    tokio::spawn(async move {
        let _ = fd.readable().await;
        let _ = exits.send(pid);
    });
    Ok(())
}

/// A new descriptor for the pipe behind descriptor `n` of `pid` (`write`: a
/// write end, for its stdin; else a read end, for its stdout/stderr). Opening
/// `/proc/<pid>/fd/<n>` reaches the same pipe, so output the program writes
/// from now on is captured again. `None` when it is not a pipe.
pub(crate) fn reopen_pipe(pid: u32, n: i32, write: bool) -> Option<OwnedFd> {
    let path = PathBuf::from(format!("/proc/{pid}/fd/{n}"));
    let target = std::fs::read_link(&path).ok()?;
    if !target.to_string_lossy().starts_with("pipe:") {
        return None;
    }
    use std::os::unix::fs::OpenOptionsExt;
    let file = std::fs::OpenOptions::new()
        .read(!write)
        .write(write)
        .custom_flags(libc::O_NONBLOCK)
        .open(&path)
        .ok()?;
    Some(OwnedFd::from(file))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_main_process_is_the_member_whose_parent_is_outside() {
        let mut child =
            std::process::Command::new("sh").args(["-c", "sleep 100 & wait"]).spawn().expect("spawn sh");
        let sh = child.id() as i32;
        let mut members = vec![sh];
        let start = std::time::Instant::now();
        while members.len() < 2 && start.elapsed() < std::time::Duration::from_secs(10) {
            let children =
                std::fs::read_to_string(format!("/proc/{sh}/task/{sh}/children")).unwrap_or_default();
            members.extend(children.split_whitespace().filter_map(|p| p.parse::<i32>().ok()));
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        assert_eq!(members.len(), 2, "sh started sleep");
        assert_eq!(main_pid(&members).map(|(p, _)| p), Some(sh));
        assert_eq!(main_pid(&[members[1]]).map(|(p, _)| p), Some(members[1]));
        let _ =
            nix::sys::signal::kill(nix::unistd::Pid::from_raw(members[1]), nix::sys::signal::Signal::SIGKILL);
        let _ = child.kill();
        let _ = child.wait();
    }

    #[test]
    fn a_start_time_is_in_the_past() {
        let me = stat(std::process::id() as i32).expect("own stat");
        let ms = start_wall_ms(me.starttime).expect("btime");
        assert!(ms <= now_wall_ms());
    }
}
