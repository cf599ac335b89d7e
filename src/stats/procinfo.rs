//! What /proc says about one pid, through `procfs`.

use procfs::process::Process;
use procfs::WithCurrentSystemInfo;

/// One process's /proc readings.
pub(crate) struct PidInfo {
    /// utime + stime, microseconds.
    pub(crate) cpu_usec: u64,
    pub(crate) rss_bytes: u64,
    pub(crate) threads: u64,
    /// `None` when /proc/PID/fd is not readable (another user's process
    /// while unprivileged).
    pub(crate) open_fds: Option<u64>,
    pub(crate) io_read_bytes: Option<u64>,
    pub(crate) io_write_bytes: Option<u64>,
}

/// Reads a pid; `None` once it has exited (or never existed).
pub(crate) fn read_pid(pid: i32) -> Option<PidInfo> {
    let process = Process::new(pid).ok()?;
    let stat = process.stat().ok()?;
    let ticks = procfs::ticks_per_second().max(1);
    let io = process.io().ok();
    Some(PidInfo {
        cpu_usec: (stat.utime + stat.stime).saturating_mul(1_000_000) / ticks,
        rss_bytes: stat.rss_bytes().get(),
        threads: u64::try_from(stat.num_threads).unwrap_or(0),
        open_fds: process.fd_count().ok().map(|n| n as u64),
        io_read_bytes: io.map(|io| io.read_bytes),
        io_write_bytes: io.map(|io| io.write_bytes),
    })
}
