//! Turning [`Limits`] into cgroup file values, for cgroup2 and v1.

use std::path::Path;

use super::fsutil;
use super::CgroupError;
use crate::config::model::Limits;

/// The CFS period used for `cpu_quota` (100 ms, the kernel's default).
pub(crate) const CPU_PERIOD_USEC: u64 = 100_000;

/// A resource controller a limit needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Controller {
    Memory,
    Cpu,
    Pids,
    Io,
}

impl Controller {
    /// Every controller corral uses for limits and readings.
    pub(crate) const ALL: [Controller; 4] =
        [Controller::Memory, Controller::Cpu, Controller::Pids, Controller::Io];

    /// The cgroup2 controller name.
    pub(crate) fn v2_name(self) -> &'static str {
        match self {
            Controller::Memory => "memory",
            Controller::Cpu => "cpu",
            Controller::Pids => "pids",
            Controller::Io => "io",
        }
    }

    /// The v1 controller name.
    pub(crate) fn v1_name(self) -> &'static str {
        match self {
            Controller::Memory => "memory",
            Controller::Cpu => "cpu",
            Controller::Pids => "pids",
            Controller::Io => "blkio",
        }
    }
}

/// The options set in `limits`, with the controller each needs.
pub(crate) fn requested(limits: &Limits) -> Vec<(&'static str, Controller)> {
    let mut out = Vec::new();
    let mut add = |set: bool, option, controller| {
        if set {
            out.push((option, controller));
        }
    };
    add(limits.memory_max.is_some(), "memory_max", Controller::Memory);
    add(limits.memory_high.is_some(), "memory_high", Controller::Memory);
    add(limits.memory_swap_max.is_some(), "memory_swap_max", Controller::Memory);
    add(limits.cpu_quota.is_some(), "cpu_quota", Controller::Cpu);
    add(limits.cpu_weight.is_some(), "cpu_weight", Controller::Cpu);
    add(limits.tasks_max.is_some(), "tasks_max", Controller::Pids);
    add(limits.io_weight.is_some(), "io_weight", Controller::Io);
    out
}

/// cgroup2 `cpu.max` for a quota in percent of one CPU.
pub(crate) fn v2_cpu_max(quota_percent: Option<u32>) -> String {
    match quota_percent {
        Some(pct) => format!("{} {CPU_PERIOD_USEC}", cpu_quota_usec(pct)),
        None => format!("max {CPU_PERIOD_USEC}"),
    }
}

/// Quota per [`CPU_PERIOD_USEC`] for a percentage (100% = one full CPU).
pub(crate) fn cpu_quota_usec(pct: u32) -> u64 {
    // The kernel refuses quotas below 1 ms.
    (u64::from(pct) * 1000).max(1000)
}

/// v1 `cpu.shares` for a cgroup2-style weight (100 ↔ 1024).
pub(crate) fn v1_cpu_shares(weight: u32) -> u64 {
    (u64::from(weight) * 1024 / 100).clamp(2, 262_144)
}

/// A weight in 1–10000 mapped linearly onto the 10–1000 range of
/// `blkio.weight` / `blkio.bfq.weight` (and 1–1000 of `io.bfq.weight`).
pub(crate) fn weight_to_range(weight: u32, low: u64, high: u64) -> u64 {
    let weight = u64::from(weight.clamp(1, 10_000));
    low + (weight - 1) * (high - low) / 9_999
}

/// Writes `value` when it is set; when it is unset and `reset` is asked,
/// writes `default` if the file exists (a live change removing a limit).
pub(crate) fn set(
    dir: &Path,
    file: &str,
    value: Option<String>,
    default: &str,
    reset: bool,
) -> Result<(), CgroupError> {
    let path = dir.join(file);
    match value {
        Some(value) => fsutil::write(&path, &value),
        None if reset && path.exists() => fsutil::write(&path, default),
        None => Ok(()),
    }
}

/// Writes the cgroup2 files for the limits of `controllers` into `dir`.
pub(crate) fn write_v2(
    dir: &Path,
    limits: &Limits,
    controllers: &[Controller],
    reset: bool,
) -> Result<(), CgroupError> {
    // Nothing to set and nothing to reset: not even a probe (this runs on every start).
    if !reset && limits.is_empty() {
        return Ok(());
    }
    let num = |v: Option<u64>| v.map(|v| v.to_string());
    for controller in controllers {
        match controller {
            Controller::Memory => {
                // memory.high first: lowering max below a current high is fine
                // either way, but a high above max would be pointless.
                set(dir, "memory.high", num(limits.memory_high), "max", reset)?;
                set(dir, "memory.max", num(limits.memory_max), "max", reset)?;
                set(dir, "memory.swap.max", num(limits.memory_swap_max), "max", reset)?;
            }
            Controller::Cpu => {
                let quota = limits.cpu_quota.map(|q| v2_cpu_max(Some(q)));
                set(dir, "cpu.max", quota, &v2_cpu_max(None), reset)?;
                let weight = limits.cpu_weight.map(|w| w.clamp(1, 10_000).to_string());
                set(dir, "cpu.weight", weight, "100", reset)?;
            }
            Controller::Pids => set(dir, "pids.max", num(limits.tasks_max), "max", reset)?,
            Controller::Io => {
                // io.weight is the iocost knob; BFQ hosts only have io.bfq.weight.
                if dir.join("io.weight").exists() || limits.io_weight.is_none() {
                    let weight = limits.io_weight.map(|w| format!("default {w}"));
                    set(dir, "io.weight", weight, "default 100", reset)?;
                } else {
                    let weight = limits.io_weight.map(|w| weight_to_range(w, 1, 1000).to_string());
                    set(dir, "io.bfq.weight", weight, "100", reset)?;
                }
            }
        }
    }
    Ok(())
}

/// Writes the v1 files for the limits of one controller into `dir` (that
/// controller's hierarchy).
pub(crate) fn write_v1(
    dir: &Path,
    limits: &Limits,
    controller: Controller,
    reset: bool,
) -> Result<(), CgroupError> {
    // Nothing to set and nothing to reset: not even a probe (this runs on every start).
    if !reset && limits.is_empty() {
        return Ok(());
    }
    let num = |v: Option<u64>| v.map(|v| v.to_string());
    match controller {
        Controller::Memory => {
            let memsw = dir.join("memory.memsw.limit_in_bytes");
            // The kernel keeps limit <= memsw limit: lift memsw first so
            // raising the memory limit cannot fail, then set it last.
            if memsw.exists() && (reset || limits.memory_swap_max.is_some()) {
                fsutil::write(&memsw, "-1")?;
            }
            set(dir, "memory.limit_in_bytes", num(limits.memory_max), "-1", reset)?;
            set(dir, "memory.soft_limit_in_bytes", num(limits.memory_high), "-1", reset)?;
            if let (Some(max), Some(swap)) = (limits.memory_max, limits.memory_swap_max) {
                fsutil::write(&memsw, &max.saturating_add(swap).to_string())?;
            }
        }
        Controller::Cpu => {
            if limits.cpu_quota.is_some() || reset {
                fsutil::write(&dir.join("cpu.cfs_period_us"), &CPU_PERIOD_USEC.to_string())?;
            }
            let quota = limits.cpu_quota.map(|q| cpu_quota_usec(q).to_string());
            set(dir, "cpu.cfs_quota_us", quota, "-1", reset)?;
            let shares = limits.cpu_weight.map(|w| v1_cpu_shares(w).to_string());
            set(dir, "cpu.shares", shares, "1024", reset)?;
        }
        Controller::Pids => set(dir, "pids.max", num(limits.tasks_max), "max", reset)?,
        Controller::Io => {
            let file = v1_io_weight_file(dir).unwrap_or("blkio.weight");
            let weight = limits.io_weight.map(|w| weight_to_range(w, 10, 1000).to_string());
            let default = if file == "blkio.weight" { "500" } else { "100" };
            set(dir, file, weight, default, reset)?;
        }
    }
    Ok(())
}

/// The v1 blkio weight file this kernel has: `blkio.weight` (CFQ, old
/// kernels) or `blkio.bfq.weight` (BFQ).
pub(crate) fn v1_io_weight_file(dir: &Path) -> Option<&'static str> {
    ["blkio.weight", "blkio.bfq.weight"].into_iter().find(|file| dir.join(file).exists())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_quota_is_percent_times_1000_per_100ms() {
        assert_eq!(v2_cpu_max(Some(150)), "150000 100000");
        assert_eq!(v2_cpu_max(Some(50)), "50000 100000");
        assert_eq!(v2_cpu_max(None), "max 100000");
        assert_eq!(cpu_quota_usec(0), 1000, "kernel minimum");
    }

    #[test]
    fn weights_map_to_v1_ranges() {
        assert_eq!(v1_cpu_shares(100), 1024);
        assert_eq!(v1_cpu_shares(1), 10);
        assert_eq!(v1_cpu_shares(10_000), 102_400);
        assert_eq!(v1_cpu_shares(0), 2);
        assert_eq!(weight_to_range(1, 10, 1000), 10);
        assert_eq!(weight_to_range(10_000, 10, 1000), 1000);
        assert_eq!(weight_to_range(5000, 10, 1000), 504);
    }

    #[test]
    fn requested_names_every_set_option() {
        let limits =
            Limits { memory_max: Some(1), tasks_max: Some(8), io_weight: Some(10), ..Limits::default() };
        let names: Vec<&str> = requested(&limits).into_iter().map(|(o, _)| o).collect();
        assert_eq!(names, ["memory_max", "tasks_max", "io_weight"]);
    }
}
