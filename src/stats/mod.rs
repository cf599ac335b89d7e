//! Readings for `corralctl stats`, `/metrics` and the `corral.*` RPC: CPU,
//! memory, processes, threads, fds, IO and OOM kills, taken on demand from
//! the process's cgroup and from /proc.
//!
//! Cgroup files are preferred because they cover every descendant; /proc
//! fills what cgroups cannot say (RSS of the main pid, threads, fds) and
//! everything on hosts without cgroups.

mod cpu;
mod procinfo;

pub use cpu::{cpu_percent, CpuSampler};

use crate::cgroup::{Backend, CgroupError, Target};

/// One reading of a process or group. `None` means "not available here".
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct Stats {
    /// The cgroup path, if the host has cgroups.
    pub cgroup: Option<String>,
    /// CPU time consumed, microseconds (cgroup, else the main pid).
    pub cpu_usage_usec: Option<u64>,
    /// Memory charged to the cgroup, bytes; where no memory cgroup counts it (no
    /// cgroups, or a hybrid host without a memory limit), the processes' RSS.
    pub memory_current: Option<u64>,
    /// Highest memory charged since the cgroup was made, bytes.
    pub memory_peak: Option<u64>,
    /// Resident set size of the main pid, bytes.
    pub rss_bytes: Option<u64>,
    /// Processes (thread groups) in the cgroup, or 1 for a live main pid
    /// without cgroups.
    pub processes: Option<u64>,
    /// Kernel tasks (threads of all processes).
    pub threads: Option<u64>,
    /// Open file descriptors of all processes.
    pub open_fds: Option<u64>,
    /// Bytes read from storage (cgroup io.stat, else /proc/PID/io).
    pub io_read_bytes: Option<u64>,
    /// Bytes written to storage (cgroup io.stat, else /proc/PID/io).
    pub io_write_bytes: Option<u64>,
    /// Processes the OOM killer killed in the cgroup since it was made.
    pub oom_kills: Option<u64>,
}

/// Reads one process's cgroup leaf, plus /proc of its main pid and of
/// every process in the cgroup. `main_pid` is `None` when the process is
/// not running (the cgroup may still hold leftovers).
///
/// Processes that exit while being read are skipped, not errors.
pub fn read_process(
    backend: &dyn Backend,
    target: Target<'_>,
    main_pid: Option<i32>,
) -> Result<Stats, CgroupError> {
    let mut stats = read_cgroup(backend, target)?;
    if let Some(pid) = main_pid {
        let main = procinfo::read_pid(pid);
        stats.rss_bytes = main.as_ref().map(|m| m.rss_bytes);
        if stats.cgroup.is_none() {
            // No cgroup: the main pid is all we can see.
            fill_from_pids(&mut stats, &[pid]);
            stats.cpu_usage_usec = main.map(|m| m.cpu_usec);
        }
    }
    Ok(stats)
}

/// Reads a group's cgroup (every process of the group together).
pub fn read_group(backend: &dyn Backend, group: &str) -> Result<Stats, CgroupError> {
    read_cgroup(backend, Target::Group(group))
}

/// Reads /proc of one pid alone (for hosts without cgroups).
pub fn read_pid(pid: i32) -> Stats {
    let mut stats = Stats::default();
    fill_from_pids(&mut stats, &[pid]);
    if let Some(main) = procinfo::read_pid(pid) {
        stats.rss_bytes = Some(main.rss_bytes);
        stats.cpu_usage_usec = Some(main.cpu_usec);
    }
    stats
}

fn read_cgroup(backend: &dyn Backend, target: Target<'_>) -> Result<Stats, CgroupError> {
    let path = backend.path(target);
    if path.is_empty() {
        return Ok(Stats::default());
    }
    let readings = backend.readings(target)?;
    let pids = backend.pids(target)?;
    let mut stats = Stats {
        cgroup: Some(path),
        cpu_usage_usec: readings.cpu_usage_usec,
        memory_current: readings.memory_current,
        memory_peak: readings.memory_peak,
        oom_kills: readings.oom_kills,
        ..Stats::default()
    };
    fill_from_pids(&mut stats, &pids);
    if readings.io_read_bytes.is_some() {
        stats.io_read_bytes = readings.io_read_bytes;
        stats.io_write_bytes = readings.io_write_bytes;
    }
    if stats.threads.is_none() {
        stats.threads = readings.tasks;
    }
    Ok(stats)
}

/// Counts processes, threads, fds and IO over `pids` from /proc.
fn fill_from_pids(stats: &mut Stats, pids: &[i32]) {
    let mut processes = 0u64;
    let mut threads = 0u64;
    let mut fds = 0u64;
    let mut read = 0u64;
    let mut write = 0u64;
    let mut rss = 0u64;
    for &pid in pids {
        let Some(info) = procinfo::read_pid(pid) else {
            continue;
        };
        processes += 1;
        threads += info.threads;
        fds += info.open_fds.unwrap_or(0);
        read = read.saturating_add(info.io_read_bytes.unwrap_or(0));
        write = write.saturating_add(info.io_write_bytes.unwrap_or(0));
        rss = rss.saturating_add(info.rss_bytes);
    }
    stats.processes = Some(processes);
    if processes > 0 {
        // No memory cgroup (a hybrid host without a memory limit): the processes' RSS.
        stats.memory_current.get_or_insert(rss);
        stats.threads = Some(threads);
        stats.open_fds = Some(fds);
        stats.io_read_bytes = Some(read);
        stats.io_write_bytes = Some(write);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cgroup::NoneBackend;

    #[test]
    fn own_pid_reads_from_proc() {
        let pid = std::process::id() as i32;
        let stats = read_pid(pid);
        assert_eq!(stats.processes, Some(1));
        assert!(stats.threads.is_some_and(|t| t >= 1));
        assert!(stats.open_fds.is_some_and(|n| n >= 3));
        assert!(stats.rss_bytes.is_some_and(|r| r > 0));
        assert!(stats.cpu_usage_usec.is_some());
        assert_eq!(stats.cgroup, None);
    }

    #[test]
    fn without_cgroups_the_main_pid_is_read() {
        let backend = NoneBackend::new("test");
        let pid = std::process::id() as i32;
        let target = Target::Process { group: "g", process: "p" };
        let stats = read_process(&backend, target, Some(pid)).expect("stats");
        assert_eq!(stats.processes, Some(1));
        assert!(stats.cpu_usage_usec.is_some());
        let stats = read_process(&backend, target, None).expect("stats");
        assert_eq!(stats, Stats::default());
    }

    #[test]
    fn gone_pid_reads_as_nothing() {
        // pid_max is at most 2^22; this pid cannot exist.
        let stats = read_pid(i32::MAX);
        assert_eq!(stats.processes, Some(0));
        assert_eq!(stats.rss_bytes, None);
        let json = serde_json::to_string(&stats).expect("json");
        assert!(json.contains("\"processes\":0"), "{json}");
    }
}
