//! corrald's own resource use for `/metrics`, from /proc/self.

use super::metrics::DaemonReadings;

/// Read RSS, CPU time, open fds and start time of this process.
pub fn read() -> DaemonReadings {
    let pid = std::process::id() as i32;
    let stats = crate::stats::read_pid(pid);
    DaemonReadings {
        rss_bytes: stats.rss_bytes,
        cpu_seconds: stats.cpu_usage_usec.map(|u| u as f64 / 1e6),
        open_fds: stats.open_fds,
        start_time_seconds: start_time(),
    }
}

/// Boot time plus the process's start in clock ticks after boot.
fn start_time() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    let ticks = start_ticks(&stat)?;
    let btime = boot_time(&std::fs::read_to_string("/proc/stat").ok()?)?;
    // SAFETY: sysconf only reads a configuration value.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    (hz > 0).then(|| btime as f64 + ticks as f64 / hz as f64)
}

/// Field 22 (`starttime`) of /proc/PID/stat; the command name (field 2) may
/// hold spaces and parentheses, so counting starts after its last `)`.
fn start_ticks(stat: &str) -> Option<u64> {
    let rest = stat.rsplit_once(')')?.1;
    rest.split_whitespace().nth(19)?.parse().ok()
}

fn boot_time(proc_stat: &str) -> Option<u64> {
    proc_stat.lines().find_map(|l| l.strip_prefix("btime ")).and_then(|v| v.trim().parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_start_ticks_after_odd_command_names() {
        let stat = "123 (a) b) S 1 123 123 0 -1 4194560 100 0 0 0 5 6 0 0 20 0 1 0 98765 1000 10 184467";
        assert_eq!(start_ticks(stat), Some(98765));
        assert_eq!(boot_time("cpu 1 2 3\nbtime 1700000000\nprocesses 5\n"), Some(1_700_000_000));
    }

    #[test]
    fn reads_this_process() {
        let r = read();
        assert!(r.rss_bytes.is_some_and(|v| v > 0), "{r:?}");
        assert!(r.open_fds.is_some_and(|v| v > 0), "{r:?}");
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs_f64();
        assert!(r.start_time_seconds.is_some_and(|s| s > now - 86_400.0 * 365.0 && s <= now + 5.0), "{r:?}");
    }
}
