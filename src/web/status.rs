//! The JSON the page renders: every process with its state and latest sample.

use serde::Serialize;

use super::sampler::{Sample, Sampler};
use crate::engine::{make_namespec, Fault, Handle, ProcessInfo, ProcessState};

/// One row of the status table.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ProcessView {
    /// `group:name`, or `name` when they are equal (what actions and links use).
    pub namespec: String,
    /// Process name.
    pub name: String,
    /// Group name.
    pub group: String,
    /// State name (`RUNNING`).
    pub state: &'static str,
    /// State code (20).
    pub statecode: i32,
    /// supervisord's description (`pid 123, uptime 0:01:02`).
    pub description: String,
    /// Pid, 0 when not running.
    pub pid: u32,
    /// Seconds since the start, while running.
    pub uptime: Option<i64>,
    /// Restarts since the daemon started.
    pub restarts: u64,
    /// Latest CPU %, if the sampler has one.
    pub cpu: Option<f64>,
    /// Latest memory, bytes, if the sampler has it.
    pub mem: Option<u64>,
}

impl ProcessView {
    /// Combine a process's info with its latest sample.
    pub fn new(p: &ProcessInfo, sample: Option<&Sample>) -> ProcessView {
        let running = matches!(p.state, ProcessState::Running | ProcessState::Stopping);
        ProcessView {
            namespec: make_namespec(&p.group, &p.name),
            name: p.name.clone(),
            group: p.group.clone(),
            state: p.state.name(),
            statecode: p.state.code(),
            description: p.description.clone(),
            pid: p.pid,
            uptime: (running && p.start > 0).then(|| (p.now - p.start).max(0)),
            restarts: p.restarts,
            cpu: sample.and_then(|s| s.cpu),
            mem: sample.and_then(|s| s.mem),
        }
    }
}

/// The whole page's data.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StatusView {
    /// `identifier` of the daemon.
    pub identifier: String,
    /// The daemon's mood (`RUNNING`, `SHUTDOWN`…).
    pub mood: &'static str,
    /// corral's version.
    pub version: &'static str,
    /// Every process, ordered by group then name.
    pub processes: Vec<ProcessView>,
}

/// Ask the engine for every process and join the sampler's latest readings.
pub async fn snapshot(handle: &Handle, sampler: &Sampler) -> Result<StatusView, Fault> {
    let info = handle.info().await?;
    let processes = handle.all_process_info().await?;
    let latest = sampler.latest();
    Ok(StatusView {
        identifier: info.identifier,
        mood: info.mood.name(),
        version: env!("CARGO_PKG_VERSION"),
        processes: processes
            .iter()
            .map(|p| ProcessView::new(p, latest.get(&(p.group.clone(), p.name.clone()))))
            .collect(),
    })
}
