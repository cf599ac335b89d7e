//! The hybrid backend: cgroup2 for membership, kill, freeze and events (as
//! systemd does in hybrid mode); limits through cgroup2 controllers where the
//! cgroup2 hierarchy has them, else through the v1 controllers.

use std::path::PathBuf;

use super::detect::Hierarchy;
use super::fsutil;
use super::legacy::LegacyBackend;
use super::limits::Controller;
use super::unified::UnifiedBackend;
use super::{Backend, CgroupError, CgroupReadings, Mode, OpenOptions, Placement, Target};
use crate::config::model::Limits;

/// v1 controllers plus a cgroup2 hierarchy (usually controller-less, e.g.
/// `/sys/fs/cgroup/unified`).
#[derive(Debug)]
pub struct HybridBackend {
    unified: UnifiedBackend,
    legacy: LegacyBackend,
}

impl HybridBackend {
    /// Opens the cgroup2 hierarchy and the v1 hierarchies for the controllers
    /// cgroup2 does not offer.
    pub fn new(
        unified: &Hierarchy,
        legacy: &[Hierarchy],
        options: &OpenOptions,
    ) -> Result<HybridBackend, CgroupError> {
        let unified = UnifiedBackend::new(unified, options, Mode::Hybrid)?;
        let v1_controllers: Vec<Controller> =
            Controller::ALL.into_iter().filter(|c| !unified.controllers().contains(c)).collect();
        // cgroup2's cpu.stat has usage_usec without any controller, so
        // cpuacct is not needed; membership is cgroup2's, so no freezer.
        let legacy = LegacyBackend::with_controllers(legacy, options, &v1_controllers, false, false)?;
        Ok(HybridBackend { unified, legacy })
    }

    /// Splits limits into the part cgroup2 enforces and the part v1 does.
    fn split(&self, limits: &Limits) -> (Limits, Limits) {
        let on_v2 = |c: Controller| self.unified.controllers().contains(&c);
        let pick = |v2: bool| Limits {
            memory_max: limits.memory_max.filter(|_| on_v2(Controller::Memory) == v2),
            memory_high: limits.memory_high.filter(|_| on_v2(Controller::Memory) == v2),
            memory_swap_max: limits.memory_swap_max.filter(|_| on_v2(Controller::Memory) == v2),
            cpu_quota: limits.cpu_quota.filter(|_| on_v2(Controller::Cpu) == v2),
            cpu_weight: limits.cpu_weight.filter(|_| on_v2(Controller::Cpu) == v2),
            tasks_max: limits.tasks_max.filter(|_| on_v2(Controller::Pids) == v2),
            io_weight: limits.io_weight.filter(|_| on_v2(Controller::Io) == v2),
        };
        (pick(true), pick(false))
    }
}

impl Backend for HybridBackend {
    fn mode(&self) -> Mode {
        Mode::Hybrid
    }

    fn describe(&self) -> String {
        format!("{}; limits via {}", self.unified.describe(), self.legacy.describe())
    }

    fn check_limits(&self, limits: &Limits) -> Result<(), CgroupError> {
        let (v2, v1) = self.split(limits);
        self.unified.check_limits(&v2)?;
        self.legacy.check_limits(&v1)
    }

    fn adopt_daemon_leaf(&self) -> Result<Option<PathBuf>, CgroupError> {
        self.unified.adopt_daemon_leaf()
    }

    fn prepare_group(&self, group: &str, limits: &Limits) -> Result<(), CgroupError> {
        let (v2, v1) = self.split(limits);
        self.unified.prepare_group(group, &v2)?;
        self.legacy.prepare_group(group, &v1)
    }

    fn prepare_process(&self, group: &str, process: &str, limits: &Limits) -> Result<Placement, CgroupError> {
        let target = Target::Process { group, process };
        target.validate()?;
        let (v2, v1) = self.split(limits);
        let leaf = self.unified.fresh_leaf(group, process, &v2)?;
        let mut procs_fds = self.legacy.fresh_leaves(group, process, &v1)?;
        // cgroup2 last: once the child is there, it is in the cgroup kill reaches.
        procs_fds.push(fsutil::open_procs(&leaf)?);
        Ok(Placement {
            procs_fds,
            unified_dir: Some(fsutil::open_dir(&leaf)?),
            path: self.unified.path(target),
        })
    }

    fn apply_limits(&self, target: Target<'_>, limits: &Limits) -> Result<(), CgroupError> {
        let (v2, v1) = self.split(limits);
        self.unified.apply_limits(target, &v2)?;
        // A v1 hierarchy the program had no cgroup in gets one now, with its processes.
        let processes = match target {
            Target::Group(group) => self.unified.process_names(group)?,
            Target::Process { .. } => Vec::new(),
        };
        self.legacy.apply_limits_placing(target, &v1, &processes, &|t| self.unified.pids(t))
    }

    fn kill(&self, target: Target<'_>) -> Result<(), CgroupError> {
        self.unified.kill(target)
    }

    fn freeze(&self, target: Target<'_>) -> Result<(), CgroupError> {
        self.unified.freeze(target)
    }

    fn thaw(&self, target: Target<'_>) -> Result<(), CgroupError> {
        self.unified.thaw(target)
    }

    fn is_populated(&self, target: Target<'_>) -> Result<bool, CgroupError> {
        self.unified.is_populated(target)
    }

    fn pids(&self, target: Target<'_>) -> Result<Vec<i32>, CgroupError> {
        self.unified.pids(target)
    }

    fn remove(&self, target: Target<'_>) -> Result<(), CgroupError> {
        self.unified.remove(target)?;
        self.legacy.remove(target)
    }

    fn kill_stale(&self) -> Result<usize, CgroupError> {
        let killed = self.unified.kill_stale()?;
        self.legacy.remove_all()?;
        Ok(killed)
    }

    fn kill_stale_sparing(&self, spare: &[Target<'_>]) -> Result<usize, CgroupError> {
        let killed = self.unified.kill_stale_sparing(spare)?;
        // Membership is cgroup2's here: the v1 side only loses the emptied cgroups.
        self.legacy.kill_stale_sparing(spare)?;
        Ok(killed)
    }

    fn remove_all(&self) -> Result<(), CgroupError> {
        self.unified.remove_all()?;
        self.legacy.remove_all()
    }

    fn oom_kills(&self, target: Target<'_>) -> Result<u64, CgroupError> {
        if self.unified.controllers().contains(&Controller::Memory) {
            self.unified.oom_kills(target)
        } else {
            self.legacy.oom_kills(target)
        }
    }

    fn events_path(&self, target: Target<'_>) -> Option<PathBuf> {
        self.unified.events_path(target)
    }

    fn path(&self, target: Target<'_>) -> String {
        self.unified.path(target)
    }

    fn readings(&self, target: Target<'_>) -> Result<CgroupReadings, CgroupError> {
        let v2 = self.unified.readings(target)?;
        let v1 = self.legacy.readings(target)?;
        Ok(v2.or(v1))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cgroup::detect::detect;
    use std::fs;

    /// Every option name the hybrid split must route (kept in step with `Limits`).
    fn all_limits() -> Limits {
        Limits {
            memory_max: Some(1 << 30),
            memory_high: Some(1 << 29),
            memory_swap_max: Some(0),
            cpu_quota: Some(100),
            cpu_weight: Some(100),
            tasks_max: Some(10),
            io_weight: Some(100),
        }
    }

    fn fake_host(tmp: &std::path::Path, v2_offers: &str) -> (HybridBackend, PathBuf) {
        let mut mountinfo = String::new();
        for (i, name) in ["cpu", "cpuacct", "memory", "pids", "freezer"].iter().enumerate() {
            let mount = tmp.join(name);
            fs::create_dir_all(&mount).expect("mkdir");
            fs::write(mount.join("cgroup.procs"), "").expect("write");
            mountinfo.push_str(&format!(
                "{} 1 0:{i} / {} rw - cgroup cgroup rw,{name}\n",
                30 + i,
                mount.display()
            ));
        }
        let unified = tmp.join("unified");
        fs::create_dir_all(&unified).expect("mkdir");
        fs::write(unified.join("cgroup.controllers"), v2_offers).expect("write");
        for file in ["cgroup.subtree_control", "cgroup.procs", "cgroup.events", "cgroup.kill"] {
            fs::write(unified.join(file), "").expect("write");
        }
        mountinfo.push_str(&format!("41 1 0:9 / {} rw - cgroup2 cgroup2 rw\n", unified.display()));
        let setup = detect(&mountinfo, "1:cpu:/\n2:memory:/\n0::/\n");
        assert_eq!(setup.mode, Mode::Hybrid);
        let backend =
            HybridBackend::new(setup.unified.as_ref().expect("v2"), &setup.legacy, &OpenOptions::default())
                .expect("backend");
        (backend, unified)
    }

    #[test]
    fn membership_on_cgroup2_limits_on_v1() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let (backend, unified) = fake_host(tmp.path(), "");
        let placement = backend.prepare_process("web", "web_00", &Limits::default()).expect("start");
        // cgroup2 only: v1 hierarchies only for limits; no cpuacct or freezer.
        assert_eq!(placement.procs_fds.len(), 1);
        assert!(unified.join("corral/web/web_00").is_dir());
        assert!(!tmp.path().join("memory/corral/web").exists(), "no memory limit, no memory cgroup");
        assert!(!tmp.path().join("cpu/corral/web").exists(), "no cpu limit, no cpu cgroup");
        assert!(!tmp.path().join("pids/corral/web").exists(), "no tasks limit, no pids cgroup");
        assert!(!tmp.path().join("freezer/corral").exists(), "cgroup2 owns membership");
        assert!(!tmp.path().join("cpuacct/corral").exists(), "cgroup2 cpu.stat has usage");
        let target = Target::Process { group: "web", process: "web_00" };
        assert_eq!(backend.events_path(target), Some(unified.join("corral/web/web_00/cgroup.events")));
        backend.kill(target).expect("kill");
        assert_eq!(fs::read_to_string(unified.join("corral/web/web_00/cgroup.kill")).expect("read"), "1");
        backend.remove(Target::Group("web")).expect("remove");
        assert!(!unified.join("corral/web").exists());
        assert!(!tmp.path().join("memory/corral/web").exists());
    }

    /// Interface files the fake v1 roots offer (mkdir copies them down).
    fn seed_v1_files(tmp: &std::path::Path) {
        for (dir, files) in [
            ("cpu", &["cpu.cfs_period_us", "cpu.cfs_quota_us", "cpu.shares"][..]),
            ("pids", &["pids.max"][..]),
            ("memory", &["memory.limit_in_bytes", "memory.soft_limit_in_bytes", "memory.oom_control"][..]),
        ] {
            for file in files {
                fs::write(tmp.join(dir).join(file), "").expect("write");
            }
        }
    }

    #[test]
    fn a_v1_limit_gives_the_process_a_cgroup_in_that_hierarchy_only() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let (backend, _) = fake_host(tmp.path(), "");
        seed_v1_files(tmp.path());
        let limits = Limits { cpu_quota: Some(50), ..Limits::default() };
        backend.prepare_group("web", &Limits::default()).expect("group");
        let placement = backend.prepare_process("web", "web", &limits).expect("start");
        assert_eq!(placement.procs_fds.len(), 2, "cgroup2, cpu");
        assert_eq!(
            fs::read_to_string(tmp.path().join("cpu/corral/web/web/cpu.cfs_quota_us")).expect("read"),
            "50000"
        );
        assert!(!tmp.path().join("pids/corral/web").exists());
    }

    #[test]
    fn a_group_limit_puts_every_member_under_the_group_cgroup() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let (backend, _) = fake_host(tmp.path(), "");
        seed_v1_files(tmp.path());
        backend.prepare_group("pool", &Limits { tasks_max: Some(64), ..Limits::default() }).expect("group");
        assert_eq!(fs::read_to_string(tmp.path().join("pids/corral/pool/pids.max")).expect("read"), "64");
        for worker in ["w0", "w1"] {
            let placement = backend.prepare_process("pool", worker, &Limits::default()).expect("start");
            assert_eq!(placement.procs_fds.len(), 2, "cgroup2, pids (the group's budget)");
            assert!(tmp.path().join("pids/corral/pool").join(worker).is_dir());
        }
        assert!(!tmp.path().join("cpu/corral/pool").exists());
        // The limit is dropped from the configuration: the next activation removes the
        // pids cgroup, so new starts do not land under the old budget.
        backend.remove(Target::Group("pool")).expect("remove");
        backend.prepare_group("pool", &Limits { tasks_max: Some(64), ..Limits::default() }).expect("again");
        backend.prepare_group("pool", &Limits::default()).expect("without the limit");
        assert!(!tmp.path().join("pids/corral/pool").exists());
    }

    #[test]
    fn a_limit_set_while_running_moves_the_processes_into_a_new_cgroup() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let (backend, unified) = fake_host(tmp.path(), "");
        seed_v1_files(tmp.path());
        backend.prepare_group("web", &Limits::default()).expect("group");
        drop(backend.prepare_process("web", "web", &Limits::default()).expect("start"));
        fs::write(unified.join("corral/web/web/cgroup.procs"), "4242\n").expect("the running process");
        let target = Target::Process { group: "web", process: "web" };
        backend.apply_limits(target, &Limits { tasks_max: Some(8), ..Limits::default() }).expect("apply");
        let leaf = tmp.path().join("pids/corral/web/web");
        assert_eq!(fs::read_to_string(leaf.join("cgroup.procs")).expect("read"), "4242");
        assert_eq!(fs::read_to_string(leaf.join("pids.max")).expect("read"), "8");
        // The same for a group: every process's cgroup, under the group's.
        backend
            .apply_limits(Target::Group("web"), &Limits { cpu_quota: Some(200), ..Limits::default() })
            .expect("group");
        assert_eq!(
            fs::read_to_string(tmp.path().join("cpu/corral/web/web/cgroup.procs")).expect("read"),
            "4242"
        );
        assert_eq!(
            fs::read_to_string(tmp.path().join("cpu/corral/web/cpu.cfs_quota_us")).expect("read"),
            "200000"
        );
    }

    #[test]
    fn limits_route_to_cgroup2_only_where_it_has_the_controller() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let (backend, _) = fake_host(tmp.path(), "pids");
        let (v2, v1) = backend.split(&all_limits());
        assert_eq!(v2.tasks_max, Some(10));
        assert_eq!(v2.memory_max, None);
        assert_eq!(v1.tasks_max, None);
        assert_eq!(v1.memory_max, Some(1 << 30));
        // io has neither a cgroup2 controller nor a blkio mount here.
        let err =
            backend.check_limits(&Limits { io_weight: Some(5), ..Limits::default() }).expect_err("no io");
        assert_eq!(err.to_string(), "io_weight: the cgroup v1 blkio controller is not mounted");
    }
}
