//! `org.corral.Corral1.Manager` at `/org/corral/Corral1`: the daemon as a whole.

use std::collections::{BTreeSet, HashMap};

use zbus::object_server::SignalEmitter;
use zbus::{interface, OwnedObjectPath, OwnedVariant};

use crate::engine::{make_namespec, FaultCode, Handle, Target};

use super::errors::{Error, Result};
use super::escape::program_path;
use super::{limits, ops};

/// One `ListPrograms` entry: namespec, group, state name, description, pid, object path.
pub type ProgramEntry = (String, String, String, String, u32, OwnedObjectPath);

/// One entry of a group operation's result: namespec, supervisor fault code
/// (80 = success), description (`OK` or the fault text).
pub type OpEntry = (String, u32, String);

/// The manager object.
#[derive(Debug, Clone)]
pub struct Manager {
    handle: Handle,
}

impl Manager {
    /// A manager answering through `handle`.
    pub fn new(handle: Handle) -> Manager {
        Manager { handle }
    }
}

#[interface(name = "org.corral.Corral1.Manager")]
impl Manager {
    /// Every process: namespec, group, state name, description, pid, object path.
    async fn list_programs(&self) -> Result<Vec<ProgramEntry>> {
        let mut all = self.handle.all_process_info().await?;
        all.sort_by(|a, b| (&a.group, &a.name).cmp(&(&b.group, &b.name)));
        Ok(all
            .into_iter()
            .map(|p| {
                let spec = make_namespec(&p.group, &p.name);
                let path = program_path(&spec);
                (spec, p.group, p.state.name().to_string(), p.description, p.pid, path)
            })
            .collect())
    }

    /// Names of the active groups, sorted.
    async fn list_groups(&self) -> Result<Vec<String>> {
        let all = self.handle.all_process_info().await?;
        let groups: BTreeSet<String> = all.into_iter().map(|p| p.group).collect();
        Ok(groups.into_iter().collect())
    }

    /// The object path of a program given by namespec.
    async fn get_program(&self, name: String) -> Result<OwnedObjectPath> {
        let spec = ops::program_spec(&name)?;
        let info = self.handle.process_info(spec).await?;
        Ok(program_path(&make_namespec(&info.group, &info.name)))
    }

    /// The object path of the program whose main process, or any process of its
    /// cgroup, has this pid.
    #[zbus(name = "GetProgramByPID")]
    async fn get_program_by_pid(&self, pid: u32) -> Result<OwnedObjectPath> {
        let all = self.handle.all_process_info().await?;
        if pid != 0 {
            if let Some(p) = all.iter().find(|p| p.pid == pid) {
                return Ok(program_path(&make_namespec(&p.group, &p.name)));
            }
            let text = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap_or_default();
            for p in &all {
                let Some(cg) = &p.cgroup else { continue };
                if !ops::in_cgroup_text(&text, cg) {
                    continue;
                }
                return Ok(program_path(&make_namespec(&p.group, &p.name)));
            }
        }
        Err(Error::BadName(format!("BAD_NAME: no program has pid {pid}")))
    }

    /// Start a program; with `wait`, reply once it is RUNNING.
    async fn start_program(&self, name: String, wait: bool) -> Result<()> {
        ops::start(&self.handle, &ops::program_spec(&name)?, wait).await
    }

    /// Stop a program; with `wait`, reply once it has stopped.
    async fn stop_program(&self, name: String, wait: bool) -> Result<()> {
        ops::stop(&self.handle, &ops::program_spec(&name)?, wait).await
    }

    /// Stop (if running) and start a program, waiting for both.
    async fn restart_program(&self, name: String) -> Result<()> {
        ops::restart(&self.handle, &ops::program_spec(&name)?).await
    }

    /// Send `signal` (name or number) to a program's `main` process or to `all`
    /// processes of its cgroup.
    async fn kill_program(&self, name: String, whom: String, signal: String) -> Result<()> {
        let whom = ops::Whom::parse(&whom)?;
        ops::kill(&self.handle, &ops::program_spec(&name)?, whom, &signal).await
    }

    /// Freeze a program's cgroup.
    async fn freeze_program(&self, name: String) -> Result<()> {
        ops::freeze(&self.handle, &ops::program_spec(&name)?, true).await
    }

    /// Thaw a program's cgroup.
    async fn thaw_program(&self, name: String) -> Result<()> {
        ops::freeze(&self.handle, &ops::program_spec(&name)?, false).await
    }

    /// Start every process of a group; one result per process.
    async fn start_group(&self, group: String, wait: bool) -> Result<Vec<OpEntry>> {
        Ok(ops::op_results(self.handle.start(Target::Group(group), wait).await?))
    }

    /// Stop every process of a group; one result per process.
    async fn stop_group(&self, group: String, wait: bool) -> Result<Vec<OpEntry>> {
        Ok(ops::op_results(self.handle.stop(Target::Group(group), wait).await?))
    }

    /// Re-read the configuration without applying it: group names added, changed, removed.
    #[zbus(out_args("added", "changed", "removed"))]
    async fn reread(&self) -> Result<(Vec<String>, Vec<String>, Vec<String>)> {
        let d = self.handle.reread().await?;
        Ok((d.added, d.changed, d.removed))
    }

    /// supervisorctl's `update`: re-read, stop and remove removed groups, stop,
    /// remove and re-add changed ones, add new ones. Answers what it applied.
    #[zbus(out_args("added", "changed", "removed"))]
    async fn update(&self) -> Result<(Vec<String>, Vec<String>, Vec<String>)> {
        let d = self.handle.reread().await?;
        for g in d.removed.iter().chain(&d.changed) {
            match self.handle.stop(Target::Group(g.clone()), true).await {
                Ok(_) => {}
                Err(f) if f.code == FaultCode::NotRunning => {}
                Err(f) => return Err(f.into()),
            }
            self.handle.remove_group(g.clone()).await?;
        }
        for g in d.changed.iter().chain(&d.added) {
            self.handle.add_group(g.clone()).await?;
        }
        Ok((d.added, d.changed, d.removed))
    }

    /// Re-execute corrald from the binary it was started from (an upgrade takes effect)
    /// without stopping programs; replies once the binary and configuration passed
    /// their checks. The daemon then leaves the bus and its successor takes the name.
    async fn reexec(&self) -> Result<()> {
        Ok(self.handle.reexec().await?)
    }

    /// Change a program's limits live; see [`super::limits`] for keys and values.
    async fn set_program_limits(&self, name: String, changes: HashMap<String, OwnedVariant>) -> Result<()> {
        limits::set(&self.handle, &ops::program_spec(&name)?, &changes).await
    }

    /// Read `length` bytes at `offset` of a program's `stdout` or `stderr` log, as
    /// supervisor's `readProcessStdoutLog` (negative offset with length 0: the tail).
    async fn read_log(&self, name: String, stream: String, offset: i64, length: i64) -> Result<Vec<u8>> {
        ops::read_program_log(&self.handle, &ops::program_spec(&name)?, &stream, offset, length).await
    }

    /// corral's version.
    #[zbus(property(emits_changed_signal = "const"))]
    fn version(&self) -> String {
        env!("CARGO_PKG_VERSION").to_string()
    }

    /// The daemon's mood: RUNNING, RESTARTING or SHUTDOWN.
    #[zbus(property(emits_changed_signal = "false"))]
    async fn state(&self) -> Result<String> {
        Ok(self.handle.info().await?.mood.name().to_string())
    }

    /// The cgroup mode in use: unified, hybrid, legacy or none.
    #[zbus(property(emits_changed_signal = "const"))]
    async fn cgroup_mode(&self) -> Result<String> {
        Ok(self.handle.info().await?.cgroup_mode)
    }

    /// `identifier` from the configuration.
    #[zbus(property(emits_changed_signal = "const"))]
    async fn identification(&self) -> Result<String> {
        Ok(self.handle.info().await?.identifier)
    }

    /// A program object appeared (its group was added).
    #[zbus(signal)]
    pub async fn program_new(
        emitter: &SignalEmitter<'_>,
        name: &str,
        path: OwnedObjectPath,
    ) -> zbus::Result<()>;

    /// A program object vanished (its group was removed).
    #[zbus(signal)]
    pub async fn program_removed(
        emitter: &SignalEmitter<'_>,
        name: &str,
        path: OwnedObjectPath,
    ) -> zbus::Result<()>;

    /// A program changed state (coalesced: see [`super::coalesce`]). `expected`
    /// is whether an EXITED exit code was expected (false otherwise).
    #[zbus(signal)]
    #[allow(clippy::too_many_arguments)]
    pub async fn program_state_changed(
        emitter: &SignalEmitter<'_>,
        name: &str,
        path: OwnedObjectPath,
        from: &str,
        to: &str,
        pid: u32,
        expected: bool,
    ) -> zbus::Result<()>;

    /// The kernel's OOM killer killed something in a program's cgroup.
    #[zbus(signal, name = "ProgramOOM")]
    pub async fn program_oom(
        emitter: &SignalEmitter<'_>,
        name: &str,
        path: OwnedObjectPath,
    ) -> zbus::Result<()>;
}
