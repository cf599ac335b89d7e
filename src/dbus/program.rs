//! `org.corral.Corral1.Program`: one object per process.
//!
//! Properties are read from the engine when asked (stats too), so they are never
//! stale. State properties (`State`, `StateName`, `Pid`, timestamps, `ExitStatus`,
//! `SpawnError`, `Restarts`, `OOMKills`, `ControlGroup`) are announced with
//! `PropertiesChanged` by [`super::signals`]; readings, limits and `Description`
//! change without a signal and say so in their introspection annotation.

use std::collections::HashMap;

use zbus::interface;
use zbus::Variant;

use crate::config::Limits;
use crate::engine::{make_namespec, Handle, NameSpec, ProcessInfo, ProcessStats};

use super::errors::{Error, Result};
use super::{limits, ops};

/// D-Bus interface name of program objects.
pub const INTERFACE: &str = "org.corral.Corral1.Program";

/// The object behind `/org/corral/Corral1/program/<escaped namespec>`.
#[derive(Debug, Clone)]
pub struct Program {
    handle: Handle,
    group: String,
    name: String,
}

impl Program {
    /// The object for process `name` of `group`.
    pub fn new(handle: Handle, group: String, name: String) -> Program {
        Program { handle, group, name }
    }

    fn spec(&self) -> NameSpec {
        NameSpec { group: self.group.clone(), process: Some(self.name.clone()) }
    }

    async fn info(&self) -> Result<ProcessInfo> {
        Ok(self.handle.process_info(self.spec()).await?)
    }

    async fn stats(&self) -> Result<ProcessStats> {
        self.handle
            .stats(Some(self.spec()))
            .await?
            .into_iter()
            .next()
            .ok_or_else(|| Error::BadName(format!("BAD_NAME: {}", make_namespec(&self.group, &self.name))))
    }

    async fn limits(&self) -> Result<Limits> {
        Ok(self.handle.limits(self.spec()).await?)
    }
}

/// supervisor's seconds as systemd's microseconds (0 stays "never").
fn micros(secs: i64) -> u64 {
    u64::try_from(secs).unwrap_or(0).saturating_mul(1_000_000)
}

/// The state properties of `info`, as sent in `PropertiesChanged`.
pub fn state_properties(info: &ProcessInfo) -> HashMap<&'static str, Variant<'static>> {
    HashMap::from([
        ("State", Variant::from(info.state.code() as u32)),
        ("StateName", Variant::from(info.state.name().to_string())),
        ("Pid", Variant::from(info.pid)),
        ("StartTimestamp", Variant::from(micros(info.start))),
        ("StopTimestamp", Variant::from(micros(info.stop))),
        ("ExitStatus", Variant::from(info.exitstatus)),
        ("SpawnError", Variant::from(info.spawnerr.clone())),
        ("Restarts", Variant::from(info.restarts)),
        ("OOMKills", Variant::from(info.oom_kills)),
        ("ControlGroup", Variant::from(info.cgroup.clone().unwrap_or_default())),
    ])
}

#[interface(name = "org.corral.Corral1.Program")]
impl Program {
    /// Start the program; with `wait`, reply once it is RUNNING.
    async fn start(&self, wait: bool) -> Result<()> {
        ops::start(&self.handle, &self.spec(), wait).await
    }

    /// Stop the program; with `wait`, reply once it has stopped.
    async fn stop(&self, wait: bool) -> Result<()> {
        ops::stop(&self.handle, &self.spec(), wait).await
    }

    /// Stop (if running) and start again, waiting for both.
    async fn restart(&self) -> Result<()> {
        ops::restart(&self.handle, &self.spec()).await
    }

    /// Send `signal` (name or number) to `main` (the main process) or `all`
    /// (every process in the program's cgroup).
    async fn kill(&self, whom: String, signal: String) -> Result<()> {
        ops::kill(&self.handle, &self.spec(), ops::Whom::parse(&whom)?, &signal).await
    }

    /// Freeze the program's cgroup.
    async fn freeze(&self) -> Result<()> {
        ops::freeze(&self.handle, &self.spec(), true).await
    }

    /// Thaw the program's cgroup.
    async fn thaw(&self) -> Result<()> {
        ops::freeze(&self.handle, &self.spec(), false).await
    }

    /// The namespec (`group:process`, or `name` when both are equal).
    #[zbus(property(emits_changed_signal = "const"))]
    fn name(&self) -> String {
        make_namespec(&self.group, &self.name)
    }

    /// The group name.
    #[zbus(property(emits_changed_signal = "const"))]
    fn group(&self) -> String {
        self.group.clone()
    }

    /// supervisor's state code (0 STOPPED, 10 STARTING, 20 RUNNING, 30 BACKOFF,
    /// 40 STOPPING, 100 EXITED, 200 FATAL, 1000 UNKNOWN).
    #[zbus(property)]
    async fn state(&self) -> Result<u32> {
        Ok(self.info().await?.state.code() as u32)
    }

    /// supervisor's state name.
    #[zbus(property)]
    async fn state_name(&self) -> Result<String> {
        Ok(self.info().await?.state.name().to_string())
    }

    /// Main pid, 0 when not running.
    #[zbus(property)]
    async fn pid(&self) -> Result<u32> {
        Ok(self.info().await?.pid)
    }

    /// supervisor's description (`pid 42, uptime 0:01:02`).
    #[zbus(property(emits_changed_signal = "false"))]
    async fn description(&self) -> Result<String> {
        Ok(self.info().await?.description)
    }

    /// Last start, µs since the epoch (0: never).
    #[zbus(property)]
    async fn start_timestamp(&self) -> Result<u64> {
        Ok(micros(self.info().await?.start))
    }

    /// Last stop, µs since the epoch (0: never).
    #[zbus(property)]
    async fn stop_timestamp(&self) -> Result<u64> {
        Ok(micros(self.info().await?.stop))
    }

    /// Last exit status (-1 when killed by a signal).
    #[zbus(property)]
    async fn exit_status(&self) -> Result<i32> {
        Ok(self.info().await?.exitstatus)
    }

    /// Last spawn error, or empty.
    #[zbus(property)]
    async fn spawn_error(&self) -> Result<String> {
        Ok(self.info().await?.spawnerr)
    }

    /// Restarts since the daemon started.
    #[zbus(property)]
    async fn restarts(&self) -> Result<u64> {
        Ok(self.info().await?.restarts)
    }

    /// OOM kills seen in the program's cgroup.
    #[zbus(property, name = "OOMKills")]
    async fn oom_kills(&self) -> Result<u64> {
        Ok(self.info().await?.oom_kills)
    }

    /// The program's cgroup path, empty without one.
    #[zbus(property)]
    async fn control_group(&self) -> Result<String> {
        Ok(self.info().await?.cgroup.unwrap_or_default())
    }

    /// Memory in use by the cgroup, bytes (`u64::MAX`: unknown).
    #[zbus(property(emits_changed_signal = "false"))]
    async fn memory_current(&self) -> Result<u64> {
        Ok(limits::or_infinity(self.stats().await?.memory_current))
    }

    /// Peak memory of the cgroup, bytes (`u64::MAX`: unknown).
    #[zbus(property(emits_changed_signal = "false"))]
    async fn memory_peak(&self) -> Result<u64> {
        Ok(limits::or_infinity(self.stats().await?.memory_peak))
    }

    /// CPU time used by the cgroup, nanoseconds.
    #[zbus(property(emits_changed_signal = "false"), name = "CPUUsageNSec")]
    async fn cpu_usage_nsec(&self) -> Result<u64> {
        Ok((self.stats().await?.cpu_seconds * 1e9) as u64)
    }

    /// Processes in the cgroup (`u64::MAX`: unknown).
    #[zbus(property(emits_changed_signal = "false"))]
    async fn tasks_current(&self) -> Result<u64> {
        Ok(limits::or_infinity(self.stats().await?.tasks))
    }

    /// `memory_max`, bytes (`u64::MAX`: no limit).
    #[zbus(property(emits_changed_signal = "false"))]
    async fn memory_max(&self) -> Result<u64> {
        Ok(limits::or_infinity(self.limits().await?.memory_max))
    }

    /// `memory_high`, bytes (`u64::MAX`: no limit).
    #[zbus(property(emits_changed_signal = "false"))]
    async fn memory_high(&self) -> Result<u64> {
        Ok(limits::or_infinity(self.limits().await?.memory_high))
    }

    /// `memory_swap_max`, bytes (`u64::MAX`: no limit).
    #[zbus(property(emits_changed_signal = "false"))]
    async fn memory_swap_max(&self) -> Result<u64> {
        Ok(limits::or_infinity(self.limits().await?.memory_swap_max))
    }

    /// `cpu_quota` in percent of one CPU (0: no limit).
    #[zbus(property(emits_changed_signal = "false"), name = "CPUQuotaPercent")]
    async fn cpu_quota_percent(&self) -> Result<u32> {
        Ok(self.limits().await?.cpu_quota.unwrap_or(0))
    }

    /// `cpu_weight` (0: not set).
    #[zbus(property(emits_changed_signal = "false"), name = "CPUWeight")]
    async fn cpu_weight(&self) -> Result<u32> {
        Ok(self.limits().await?.cpu_weight.unwrap_or(0))
    }

    /// `io_weight` (0: not set).
    #[zbus(property(emits_changed_signal = "false"), name = "IOWeight")]
    async fn io_weight(&self) -> Result<u32> {
        Ok(self.limits().await?.io_weight.unwrap_or(0))
    }

    /// `tasks_max` (`u64::MAX`: no limit).
    #[zbus(property(emits_changed_signal = "false"))]
    async fn tasks_max(&self) -> Result<u64> {
        Ok(limits::or_infinity(self.limits().await?.tasks_max))
    }
}
