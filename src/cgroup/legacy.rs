//! The cgroup v1 backend: one directory per needed controller hierarchy.
//! Also the limits half of [`super::HybridBackend`].

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use super::detect::{join_cgroup_path, Hierarchy};
use super::fsutil::{self, Made};
use super::limits::{self, Controller};
use super::unified::{check_writable, display_path, root_rel};
use super::{Backend, CgroupError, CgroupReadings, Mode, OpenOptions, Placement, Target};
use crate::config::model::Limits;

/// How long a legacy kill waits for the freezer to report `FROZEN`.
const FREEZE_TIMEOUT: Duration = Duration::from_secs(2);

/// One v1 hierarchy the backend uses.
#[derive(Debug)]
struct V1Tree {
    mount: PathBuf,
    controllers: Vec<String>,
    /// `<root>` in this hierarchy as a cgroup path.
    root_rel: String,
    /// `<mount>/<root>/<top>`.
    top: PathBuf,
    /// Whether `top` may exist: until it is made, a lazy hierarchy (hybrid hosts)
    /// has no cgroup to look for, so a start without limits costs no syscall here.
    in_use: AtomicBool,
}

impl V1Tree {
    fn has(&self, controller: &str) -> bool {
        self.controllers.iter().any(|c| c == controller)
    }

    /// Whether `limits` set anything this hierarchy's controllers enforce.
    fn limited_by(&self, limits: &Limits) -> bool {
        limits::requested(limits).iter().any(|(_, c)| self.has(c.v1_name()))
    }

    fn dir(&self, target: Target<'_>) -> PathBuf {
        self.top.join(target.rel())
    }

    /// Creates a cgroup directory; in a hierarchy that carries cpuset, copies
    /// the parent's CPUs and memory nodes, without which joining fails (ENOSPC).
    fn mkdir(&self, dir: &Path) -> Result<(), CgroupError> {
        self.make(dir)?.require(dir).map(drop)
    }

    /// [`fsutil::make_dir`] plus the cpuset copy for a directory it created.
    fn make(&self, dir: &Path) -> Result<Made, CgroupError> {
        let made = fsutil::make_dir(dir)?;
        if made != Made::NoParent {
            self.in_use.store(true, Ordering::Relaxed);
        }
        if made == Made::Created && self.has("cpuset") {
            if let Some(parent) = dir.parent() {
                for file in ["cpuset.cpus", "cpuset.mems"] {
                    let value = fsutil::read(&parent.join(file))?;
                    fsutil::write(&dir.join(file), value.trim())?;
                }
            }
        }
        Ok(made)
    }
}

/// Drives cgroup v1 controllers: memory, cpu, cpuacct, pids, blkio and, when
/// it also owns membership (legacy hosts), freezer.
#[derive(Debug)]
pub struct LegacyBackend {
    trees: Vec<V1Tree>,
    /// Controllers whose limits this backend writes.
    limit_controllers: Vec<Controller>,
    /// False inside the hybrid backend, where cgroup2 owns membership and kill.
    /// Then a group or process gets a cgroup in a v1 hierarchy only where one of
    /// its limits needs that controller, as systemd realizes v1 controllers on
    /// hybrid hosts. Each one costs a mkdir per start and, worse, a migration: a
    /// write to a v1 `cgroup.procs` waits for an RCU grace period when nothing has
    /// migrated lately (10-20 ms for a lone restart), where cgroup2 places the child
    /// at clone time. Without them CPU use comes from cgroup2's `cpu.stat`, tasks,
    /// IO and memory from /proc; OOM kills are attributed to programs with a memory
    /// limit (the memory cgroup counts them), as systemd does on such hosts.
    owns_membership: bool,
    top_name: String,
}

impl LegacyBackend {
    /// Opens the v1 hierarchies a legacy host needs (memory, cpu, cpuacct,
    /// pids, blkio, and freezer when `owns_membership`). cpuset and the
    /// others are left alone.
    pub fn new(
        hierarchies: &[Hierarchy],
        options: &OpenOptions,
        owns_membership: bool,
    ) -> Result<LegacyBackend, CgroupError> {
        Self::with_controllers(hierarchies, options, &Controller::ALL, true, owns_membership)
    }

    /// Opens the hierarchies for `limit_controllers` (plus cpuacct when
    /// `cpu_usage` and freezer when `owns_membership`).
    pub(crate) fn with_controllers(
        hierarchies: &[Hierarchy],
        options: &OpenOptions,
        limit_controllers: &[Controller],
        cpu_usage: bool,
        owns_membership: bool,
    ) -> Result<LegacyBackend, CgroupError> {
        let mut wanted: Vec<&str> = limit_controllers.iter().map(|c| c.v1_name()).collect();
        if cpu_usage {
            wanted.push("cpuacct");
        }
        if owns_membership {
            wanted.push("freezer");
        }
        let mut trees: Vec<V1Tree> = Vec::new();
        for hierarchy in hierarchies {
            let needed = wanted.iter().any(|w| hierarchy.has(w));
            if !needed || hierarchy.read_only {
                continue;
            }
            let root_rel = root_rel(options, &hierarchy.own);
            let root = join_cgroup_path(&hierarchy.mount, &root_rel);
            if !root.exists() {
                fsutil::mkdir_all(&root)?;
            }
            check_writable(&root)?;
            let top = root.join(&options.top);
            trees.push(V1Tree {
                mount: hierarchy.mount.clone(),
                controllers: hierarchy.controllers.clone(),
                root_rel,
                in_use: AtomicBool::new(top.exists()),
                top,
            });
        }
        if owns_membership && trees.is_empty() {
            return Err(CgroupError::NoCgroups {
                reason: "no writable v1 controller hierarchy is mounted".to_string(),
            });
        }
        let limit_controllers =
            limit_controllers.iter().copied().filter(|c| trees.iter().any(|t| t.has(c.v1_name()))).collect();
        Ok(LegacyBackend { trees, limit_controllers, owns_membership, top_name: options.top.clone() })
    }

    /// Whether every hierarchy gets a cgroup for every group and process (see `owns_membership`).
    fn always(&self) -> bool {
        self.owns_membership
    }

    fn tree(&self, controller: &str) -> Option<&V1Tree> {
        self.trees.iter().find(|t| t.has(controller))
    }

    /// The hierarchy whose `cgroup.procs` defines membership: freezer (it can
    /// also stop forks during a kill), else memory, else any.
    fn membership(&self) -> Option<&V1Tree> {
        self.tree("freezer").or_else(|| self.tree("memory")).or(self.trees.first())
    }

    /// Creates the group's cgroup in every hierarchy that needs one for `limits`;
    /// true when one already existed. Where none is needed, a cgroup left from an
    /// earlier configuration is removed, so its processes do not land under stale limits.
    fn ensure_group(&self, group: &str, limits: &Limits) -> Result<bool, CgroupError> {
        let mut existed = false;
        for tree in &self.trees {
            let dir = tree.dir(Target::Group(group));
            if !self.always() && !tree.limited_by(limits) {
                if !tree.in_use.load(Ordering::Relaxed) {
                    continue;
                }
                // Usually there is none: one rmdir says so.
                match std::fs::remove_dir(&dir) {
                    Ok(()) => continue,
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                    Err(_) => match fsutil::rmdir_tree(&dir) {
                        Ok(()) => continue,
                        // Still in use (adopted processes): keep it, its limits get reset.
                        Err(CgroupError::Busy { .. }) => {}
                        Err(e) => return Err(e),
                    },
                }
            }
            match tree.make(&dir)? {
                Made::Created => {}
                Made::Existed => existed = true,
                Made::NoParent => {
                    tree.mkdir(&tree.top)?;
                    tree.mkdir(&dir)?;
                }
            }
        }
        Ok(existed)
    }

    fn write_limits(&self, target: Target<'_>, limits: &Limits, reset: bool) -> Result<(), CgroupError> {
        if !reset && limits.is_empty() {
            return Ok(());
        }
        for &controller in &self.limit_controllers {
            if let Some(tree) = self.tree(controller.v1_name()) {
                let dir = tree.dir(target);
                // A lazy hierarchy without a cgroup here has nothing to reset.
                if !self.always() && !tree.limited_by(limits) && !dir.exists() {
                    continue;
                }
                limits::write_v1(&dir, limits, controller, reset)?;
            }
        }
        Ok(())
    }

    /// Makes a fresh leaf in every hierarchy and returns the `cgroup.procs`
    /// descriptors to join.
    pub(crate) fn fresh_leaves(
        &self,
        group: &str,
        process: &str,
        limits: &Limits,
    ) -> Result<Vec<std::os::fd::OwnedFd>, CgroupError> {
        let target = Target::Process { group, process };
        let mut used = Vec::with_capacity(self.trees.len());
        for tree in &self.trees {
            let leaf = tree.dir(target);
            let needed = self.always() || tree.limited_by(limits);
            if !needed && !tree.in_use.load(Ordering::Relaxed) {
                continue;
            }
            // The group was made when it was activated: one mkdir is the usual cost.
            match tree.make(&leaf)? {
                Made::Created => {}
                // A lazy hierarchy where the group has no cgroup: the process stays out.
                Made::NoParent if !needed => continue,
                Made::NoParent => {
                    tree.mkdir(&tree.top)?;
                    tree.mkdir(&tree.dir(Target::Group(group)))?;
                    tree.mkdir(&leaf)?;
                }
                Made::Existed => {
                    let mut pids = Vec::new();
                    fsutil::pids_recursive(&leaf, &mut pids)?;
                    if !pids.is_empty() {
                        return Err(CgroupError::Busy { path: leaf });
                    }
                    fsutil::rmdir(&leaf)?;
                    tree.mkdir(&leaf)?;
                }
            }
            used.push(tree);
        }
        self.write_limits(target, limits, false)?;
        used.into_iter().map(|tree| fsutil::open_procs(&tree.dir(target))).collect()
    }

    /// Hybrid hosts: limits changed at run time may need a cgroup a lazy hierarchy
    /// does not have yet. It is made, the processes (`members` lists a process
    /// cgroup's pids, read from cgroup2, which owns membership) are moved in, and the
    /// limits written.
    pub(crate) fn apply_limits_placing(
        &self,
        target: Target<'_>,
        limits: &Limits,
        processes: &[String],
        members: &dyn Fn(Target<'_>) -> Result<Vec<i32>, CgroupError>,
    ) -> Result<(), CgroupError> {
        target.validate()?;
        for tree in self.trees.iter().filter(|t| !self.always() && t.limited_by(limits)) {
            let (group, leaves): (&str, Vec<&str>) = match target {
                Target::Process { group, process } => (group, vec![process]),
                Target::Group(group) => (group, processes.iter().map(String::as_str).collect()),
            };
            let group_dir = tree.dir(Target::Group(group));
            if tree.dir(target).exists()
                && leaves.iter().all(|p| tree.dir(Target::Process { group, process: p }).exists())
            {
                continue;
            }
            tree.mkdir(&tree.top)?;
            tree.mkdir(&group_dir)?;
            for process in leaves {
                let leaf_target = Target::Process { group, process };
                let leaf = tree.dir(leaf_target);
                tree.mkdir(&leaf)?;
                // Forks racing the move are caught by the next round.
                for _ in 0..10 {
                    let pids = members(leaf_target)?;
                    let outside: Vec<i32> = {
                        let mut inside = Vec::new();
                        fsutil::pids_recursive(&leaf, &mut inside)?;
                        pids.into_iter().filter(|p| !inside.contains(p)).collect()
                    };
                    if outside.is_empty() {
                        break;
                    }
                    for pid in outside {
                        match fsutil::write(&leaf.join("cgroup.procs"), &pid.to_string()) {
                            Ok(()) => {}
                            // Gone meanwhile.
                            Err(CgroupError::Io { source, .. })
                                if source.raw_os_error() == Some(libc::ESRCH) => {}
                            Err(e) => return Err(e),
                        }
                    }
                }
            }
        }
        self.write_limits(target, limits, true)
    }

    /// Runs `probe` on `<root>/<top>`, where limit files can be probed (v1 roots
    /// lack several of them). A top made for the probe is removed again: a
    /// configuration refused for the answer must leave no cgroup behind.
    fn probe_in_top<T>(&self, tree: &V1Tree, probe: impl FnOnce(&Path) -> T) -> Result<T, CgroupError> {
        let made = tree.make(&tree.top)?.require(&tree.top)?;
        let answer = probe(&tree.top);
        if made == Made::Created && std::fs::remove_dir(&tree.top).is_ok() {
            tree.in_use.store(false, Ordering::Relaxed);
        }
        Ok(answer)
    }

    fn check_one(
        &self,
        option: &'static str,
        controller: Controller,
        limits: &Limits,
    ) -> Result<(), CgroupError> {
        let name = controller.v1_name();
        let Some(tree) = self.tree(name).filter(|_| self.limit_controllers.contains(&controller)) else {
            return Err(CgroupError::Unsupported {
                option,
                reason: format!("the cgroup v1 {name} controller is not mounted"),
            });
        };
        match option {
            "memory_swap_max" => {
                if limits.memory_max.is_none() {
                    return Err(CgroupError::Unsupported {
                        option,
                        reason: "cgroup v1 limits memory+swap together, so it needs memory_max too"
                            .to_string(),
                    });
                }
                if !self.probe_in_top(tree, |top| top.join("memory.memsw.limit_in_bytes").exists())? {
                    return Err(CgroupError::Unsupported {
                        option,
                        reason: "memory.memsw.limit_in_bytes is missing (swap accounting is off; boot with swapaccount=1)".to_string(),
                    });
                }
            }
            "io_weight" if self.probe_in_top(tree, |top| limits::v1_io_weight_file(top).is_none())? => {
                return Err(CgroupError::Unsupported {
                    option,
                    reason: "neither blkio.weight nor blkio.bfq.weight exists (no CFQ or BFQ scheduler)"
                        .to_string(),
                });
            }
            _ => {}
        }
        Ok(())
    }

    /// Freezer-freeze, SIGKILL every task, thaw: nothing can fork in between.
    fn freezer_kill(&self, freezer: &V1Tree, target: Target<'_>) -> Result<(), CgroupError> {
        let dir = freezer.dir(target);
        let state = dir.join("freezer.state");
        fsutil::write(&state, "FROZEN")?;
        let deadline = Instant::now() + FREEZE_TIMEOUT;
        // FREEZING turns into FROZEN once every task stopped; signalling
        // earlier is still safe, only forks in flight could slip through.
        while fsutil::read(&state)?.trim() != "FROZEN" && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(1));
        }
        let mut pids = Vec::new();
        let result = fsutil::pids_recursive(&dir, &mut pids).and_then(|()| fsutil::kill_all(&pids));
        fsutil::write(&state, "THAWED")?;
        result
    }

    fn readings_v1(&self, target: Target<'_>) -> Result<CgroupReadings, CgroupError> {
        let mut readings = CgroupReadings::default();
        if let Some(tree) = self.tree("cpuacct") {
            readings.cpu_usage_usec =
                fsutil::read_u64_optional(&tree.dir(target).join("cpuacct.usage"))?.map(|ns| ns / 1000);
        }
        if let Some(tree) =
            self.tree("memory").filter(|_| self.limit_controllers.contains(&Controller::Memory))
        {
            let dir = tree.dir(target);
            readings.memory_current = fsutil::read_u64_optional(&dir.join("memory.usage_in_bytes"))?;
            readings.memory_peak = fsutil::read_u64_optional(&dir.join("memory.max_usage_in_bytes"))?;
            readings.oom_kills = Some(oom_kills_v1(&dir)?);
        }
        if let Some(tree) = self.tree("pids").filter(|_| self.limit_controllers.contains(&Controller::Pids)) {
            readings.tasks = fsutil::read_u64_optional(&tree.dir(target).join("pids.current"))?;
        }
        if let Some(tree) = self.tree("blkio").filter(|_| self.limit_controllers.contains(&Controller::Io)) {
            let file = tree.dir(target).join("blkio.throttle.io_service_bytes_recursive");
            if let Some(text) = fsutil::read_optional(&file)? {
                let (read, write) = blkio_bytes(&text);
                readings.io_read_bytes = Some(read);
                readings.io_write_bytes = Some(write);
            }
        }
        Ok(readings)
    }
}

/// `oom_kill` of `memory.oom_control`, summed over `dir` and every cgroup
/// below it (v1 counts only where the victim lived).
fn oom_kills_v1(dir: &Path) -> Result<u64, CgroupError> {
    let own = fsutil::read_optional(&dir.join("memory.oom_control"))?
        .and_then(|text| fsutil::keyed_value(&text, "oom_kill"))
        .unwrap_or(0);
    let mut total = own;
    for child in fsutil::subdirs(dir)? {
        total = total.saturating_add(oom_kills_v1(&child)?);
    }
    Ok(total)
}

/// Sums the `Read` and `Write` lines of `blkio.throttle.io_service_bytes*`.
fn blkio_bytes(text: &str) -> (u64, u64) {
    let mut read = 0u64;
    let mut write = 0u64;
    for line in text.lines() {
        let fields: Vec<&str> = line.split_whitespace().collect();
        if let [_device, op, value] = fields[..] {
            let value: u64 = value.parse().unwrap_or(0);
            match op {
                "Read" => read = read.saturating_add(value),
                "Write" => write = write.saturating_add(value),
                _ => {}
            }
        }
    }
    (read, write)
}

impl Backend for LegacyBackend {
    fn mode(&self) -> Mode {
        Mode::Legacy
    }

    fn describe(&self) -> String {
        let mounts: Vec<String> = self
            .trees
            .iter()
            .map(|t| format!("{} ({})", t.mount.display(), t.controllers.join(",")))
            .collect();
        format!("legacy: cgroup v1 {}", mounts.join(", "))
    }

    fn check_limits(&self, limits: &Limits) -> Result<(), CgroupError> {
        for (option, controller) in limits::requested(limits) {
            self.check_one(option, controller, limits)?;
        }
        Ok(())
    }

    fn adopt_daemon_leaf(&self) -> Result<Option<PathBuf>, CgroupError> {
        // v1 has no no-internal-process rule.
        Ok(None)
    }

    fn prepare_group(&self, group: &str, limits: &Limits) -> Result<(), CgroupError> {
        Target::Group(group).validate()?;
        // A cgroup the kernel has just made carries the defaults. Resetting them is
        // not free (each cpu.cfs_* write walks every task group on the host, so a
        // thousand groups cost quadratic time); only a group that already existed
        // can hold stale values.
        let existed = self.ensure_group(group, limits)?;
        self.write_limits(Target::Group(group), limits, existed)
    }

    fn prepare_process(&self, group: &str, process: &str, limits: &Limits) -> Result<Placement, CgroupError> {
        let target = Target::Process { group, process };
        target.validate()?;
        Ok(Placement {
            procs_fds: self.fresh_leaves(group, process, limits)?,
            unified_dir: None,
            path: self.path(target),
        })
    }

    fn apply_limits(&self, target: Target<'_>, limits: &Limits) -> Result<(), CgroupError> {
        target.validate()?;
        self.write_limits(target, limits, true)
    }

    fn kill(&self, target: Target<'_>) -> Result<(), CgroupError> {
        target.validate()?;
        if let Some(freezer) = self.tree("freezer") {
            if freezer.dir(target).exists() {
                return self.freezer_kill(freezer, target);
            }
            return Ok(());
        }
        // No freezer: repeat until nothing is left, so forks racing the
        // first round are caught by the next.
        for _ in 0..100 {
            let pids = self.pids(target)?;
            if pids.is_empty() {
                return Ok(());
            }
            fsutil::kill_all(&pids)?;
        }
        Ok(())
    }

    fn freeze(&self, target: Target<'_>) -> Result<(), CgroupError> {
        target.validate()?;
        let freezer = self.tree("freezer").ok_or_else(|| CgroupError::Unsupported {
            option: "freeze",
            reason: "the cgroup v1 freezer controller is not mounted".to_string(),
        })?;
        fsutil::write(&freezer.dir(target).join("freezer.state"), "FROZEN")
    }

    fn thaw(&self, target: Target<'_>) -> Result<(), CgroupError> {
        target.validate()?;
        let freezer = self.tree("freezer").ok_or_else(|| CgroupError::Unsupported {
            option: "thaw",
            reason: "the cgroup v1 freezer controller is not mounted".to_string(),
        })?;
        fsutil::write(&freezer.dir(target).join("freezer.state"), "THAWED")
    }

    fn is_populated(&self, target: Target<'_>) -> Result<bool, CgroupError> {
        Ok(!self.pids(target)?.is_empty())
    }

    fn pids(&self, target: Target<'_>) -> Result<Vec<i32>, CgroupError> {
        target.validate()?;
        let mut pids = Vec::new();
        if let Some(tree) = self.membership() {
            fsutil::pids_recursive(&tree.dir(target), &mut pids)?;
        }
        pids.sort_unstable();
        pids.dedup();
        Ok(pids)
    }

    fn remove(&self, target: Target<'_>) -> Result<(), CgroupError> {
        target.validate()?;
        for tree in &self.trees {
            fsutil::rmdir_tree(&tree.dir(target))?;
        }
        Ok(())
    }

    fn kill_stale(&self) -> Result<usize, CgroupError> {
        let tops: Vec<PathBuf> = self.trees.iter().map(|t| t.top.clone()).filter(|t| t.exists()).collect();
        let killed = if self.owns_membership {
            fsutil::kill_trees(&tops, std::time::Duration::from_secs(5))?
        } else {
            0
        };
        self.remove_all()?;
        Ok(killed)
    }

    fn kill_stale_sparing(&self, spare: &[Target<'_>]) -> Result<usize, CgroupError> {
        let mut killed = 0;
        for tree in self.trees.iter().filter(|t| t.top.exists()) {
            let keep: Vec<PathBuf> = spare.iter().map(|t| tree.dir(*t)).collect();
            let stale = fsutil::stale_dirs(&tree.top, &keep, None)?;
            if self.owns_membership {
                killed += fsutil::kill_trees(&stale, std::time::Duration::from_secs(5))?;
            }
            for dir in &stale {
                fsutil::rmdir_tree(dir)?;
            }
        }
        Ok(killed)
    }

    fn remove_all(&self) -> Result<(), CgroupError> {
        for tree in &self.trees {
            fsutil::rmdir_tree(&tree.top)?;
            // Gone (a stale tree removed at start-up too): starts without limits
            // need not look in this hierarchy again.
            tree.in_use.store(false, Ordering::Relaxed);
        }
        Ok(())
    }

    fn oom_kills(&self, target: Target<'_>) -> Result<u64, CgroupError> {
        target.validate()?;
        match self.tree("memory") {
            Some(tree) => oom_kills_v1(&tree.dir(target)),
            None => Ok(0),
        }
    }

    fn events_path(&self, _target: Target<'_>) -> Option<PathBuf> {
        // v1 has no populated notification a daemon can watch without a
        // release agent; callers poll is_populated.
        None
    }

    fn path(&self, target: Target<'_>) -> String {
        let root =
            if self.owns_membership { self.membership() } else { self.tree("memory").or(self.trees.first()) };
        match root {
            Some(tree) => display_path(&tree.root_rel, &self.top_name, target),
            None => String::new(),
        }
    }

    fn readings(&self, target: Target<'_>) -> Result<CgroupReadings, CgroupError> {
        target.validate()?;
        self.readings_v1(target)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    /// A fake v1 layout like this build machine's: separate cpu, cpuacct,
    /// cpuset, memory, pids, freezer, blkio mounts; the daemon nested in memory.
    struct Fake {
        _tmp: tempfile::TempDir,
        base: PathBuf,
        hierarchies: Vec<Hierarchy>,
    }

    const MEMORY_OWN: &str = "/machine/abc";

    impl Fake {
        fn new() -> Fake {
            let tmp = tempfile::tempdir().expect("tempdir");
            let base = tmp.path().to_path_buf();
            let mut hierarchies = Vec::new();
            for name in ["cpu", "cpuacct", "cpuset", "memory", "pids", "freezer", "blkio"] {
                let own = if name == "memory" { MEMORY_OWN } else { "/" };
                let mount = base.join(name);
                let own_dir = join_cgroup_path(&mount, own);
                fs::create_dir_all(&own_dir).expect("mkdir");
                let files: &[&str] = match name {
                    "memory" => &[
                        "memory.limit_in_bytes",
                        "memory.soft_limit_in_bytes",
                        "memory.memsw.limit_in_bytes",
                        "memory.oom_control",
                    ],
                    "cpu" => &["cpu.cfs_quota_us", "cpu.cfs_period_us", "cpu.shares"],
                    "pids" => &["pids.max"],
                    "freezer" => &["freezer.state"],
                    _ => &[],
                };
                for file in files.iter().chain(&["cgroup.procs"]) {
                    fs::write(own_dir.join(file), "").expect("seed");
                }
                hierarchies.push(Hierarchy {
                    mount,
                    controllers: vec![name.to_string()],
                    own: own.to_string(),
                    read_only: false,
                });
            }
            Fake { _tmp: tmp, base, hierarchies }
        }

        fn backend(&self) -> LegacyBackend {
            LegacyBackend::new(&self.hierarchies, &OpenOptions::default(), true).expect("backend")
        }

        fn seed(&self, rel: &str, files: &[(&str, &str)]) {
            for (file, content) in files {
                let (controller, _) = file.split_once('.').expect("controller.file");
                let hierarchy = if controller == "cgroup" { "freezer" } else { controller };
                let own = if hierarchy == "memory" { MEMORY_OWN } else { "/" };
                let dir = join_cgroup_path(&self.base.join(hierarchy), own).join(rel);
                fs::create_dir_all(&dir).expect("mkdir");
                fs::write(dir.join(file), content).expect("seed");
            }
        }

        fn read(&self, hierarchy: &str, rel: &str, file: &str) -> String {
            let own = if hierarchy == "memory" { MEMORY_OWN } else { "/" };
            let path = join_cgroup_path(&self.base.join(hierarchy), own).join(rel).join(file);
            fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        }
    }

    #[test]
    fn dirs_go_under_the_daemons_own_path_and_skip_cpuset() {
        let fake = Fake::new();
        let backend = fake.backend();
        let placement = backend.prepare_process("web", "web_00", &Limits::default()).expect("start");
        assert_eq!(placement.procs_fds.len(), 6, "cpu cpuacct memory pids freezer blkio");
        assert!(fake.base.join("memory/machine/abc/corral/web/web_00").is_dir());
        assert!(!fake.base.join("memory/corral").exists(), "never at the v1 root");
        assert!(!fake.base.join("cpuset/corral").exists(), "cpuset is left alone");
        assert_eq!(placement.path, "/corral/web/web_00", "freezer path shown");
    }

    #[test]
    fn v1_limit_files_get_v1_values() {
        let fake = Fake::new();
        let backend = fake.backend();
        let rel = "corral/web";
        // This kernel's blkio offers the BFQ weight only.
        fake.seed("", &[("blkio.bfq.weight", "")]);
        let limits = Limits {
            memory_max: Some(32 << 20),
            memory_high: Some(16 << 20),
            memory_swap_max: Some(1 << 20),
            cpu_quota: Some(50),
            cpu_weight: Some(200),
            tasks_max: Some(8),
            io_weight: Some(10_000),
        };
        backend.check_limits(&limits).expect("all enforceable");
        backend.prepare_group("web", &limits).expect("group");
        assert_eq!(fake.read("memory", rel, "memory.limit_in_bytes"), "33554432");
        assert_eq!(fake.read("memory", rel, "memory.soft_limit_in_bytes"), "16777216");
        assert_eq!(fake.read("memory", rel, "memory.memsw.limit_in_bytes"), "34603008");
        assert_eq!(fake.read("cpu", rel, "cpu.cfs_period_us"), "100000");
        assert_eq!(fake.read("cpu", rel, "cpu.cfs_quota_us"), "50000");
        assert_eq!(fake.read("cpu", rel, "cpu.shares"), "2048");
        assert_eq!(fake.read("pids", rel, "pids.max"), "8");
        assert_eq!(fake.read("blkio", rel, "blkio.bfq.weight"), "1000");

        backend.apply_limits(Target::Group("web"), &Limits::default()).expect("reset");
        assert_eq!(fake.read("memory", rel, "memory.limit_in_bytes"), "-1");
        assert_eq!(fake.read("cpu", rel, "cpu.cfs_quota_us"), "-1");
        assert_eq!(fake.read("pids", rel, "pids.max"), "max");
    }

    #[test]
    fn a_new_group_keeps_the_kernel_defaults_and_an_existing_one_is_reset() {
        let fake = Fake::new();
        let backend = fake.backend();
        backend.prepare_group("fresh", &Limits::default()).expect("group");
        // Nothing written: the fake's files stay as the fake kernel made them.
        assert_eq!(fake.read("cpu", "corral/fresh", "cpu.cfs_quota_us"), "");
        assert_eq!(fake.read("cpu", "corral/fresh", "cpu.cfs_period_us"), "");
        assert_eq!(fake.read("pids", "corral/fresh", "pids.max"), "");

        // Left over with limits (say by an earlier daemon): defaults are restored.
        fake.seed(
            "corral/old",
            &[
                ("cpu.cfs_quota_us", "50000"),
                ("cpu.cfs_period_us", "100000"),
                ("cpu.shares", "1024"),
                ("pids.max", "8"),
            ],
        );
        backend.prepare_group("old", &Limits::default()).expect("group");
        assert_eq!(fake.read("cpu", "corral/old", "cpu.cfs_quota_us"), "-1");
        assert_eq!(fake.read("pids", "corral/old", "pids.max"), "max");
    }

    #[test]
    fn unenforceable_v1_limits_name_the_option() {
        let fake = Fake::new();
        let without_pids: Vec<Hierarchy> =
            fake.hierarchies.iter().filter(|h| !h.has("pids")).cloned().collect();
        let backend = LegacyBackend::new(&without_pids, &OpenOptions::default(), true).expect("backend");
        let err = backend
            .check_limits(&Limits { tasks_max: Some(8), ..Limits::default() })
            .expect_err("no pids hierarchy");
        assert_eq!(err.to_string(), "tasks_max: the cgroup v1 pids controller is not mounted");

        let err = backend
            .check_limits(&Limits { memory_swap_max: Some(1), ..Limits::default() })
            .expect_err("swap without max");
        assert!(err.to_string().starts_with("memory_swap_max: "), "{err}");

        let err = backend
            .check_limits(&Limits { io_weight: Some(100), ..Limits::default() })
            .expect_err("no blkio weight file in the fake tree");
        assert!(err.to_string().starts_with("io_weight: "), "{err}");
    }

    #[test]
    fn kill_freezes_signals_and_thaws() {
        let fake = Fake::new();
        let backend = fake.backend();
        drop(backend.prepare_process("g", "p", &Limits::default()).expect("start"));
        // An empty freezer leaf: the kill has no one to signal, but must
        // leave the cgroup thawed.
        fake.seed("corral/g/p", &[("freezer.state", "THAWED"), ("cgroup.procs", "")]);
        backend.kill(Target::Process { group: "g", process: "p" }).expect("kill");
        assert_eq!(fake.read("freezer", "corral/g/p", "freezer.state"), "THAWED");
        assert!(!backend.is_populated(Target::Group("g")).expect("populated"));
        assert_eq!(backend.events_path(Target::Group("g")), None);
    }

    #[test]
    fn fresh_leaf_per_start_and_busy_leaf_refused() {
        let fake = Fake::new();
        let backend = fake.backend();
        drop(backend.prepare_process("g", "p", &Limits::default()).expect("start"));
        fake.seed("corral/g/p", &[("memory.marker", "old")]);
        drop(backend.prepare_process("g", "p", &Limits::default()).expect("restart"));
        assert!(!fake.base.join("memory/machine/abc/corral/g/p/memory.marker").exists());
        fake.seed("corral/g/p", &[("cgroup.procs", "4242\n")]);
        let err = backend.prepare_process("g", "p", &Limits::default()).expect_err("busy");
        assert!(matches!(err, CgroupError::Busy { .. }), "{err}");
        assert_eq!(backend.pids(Target::Group("g")).expect("pids"), vec![4242]);
    }

    #[test]
    fn v1_readings_and_oom_kills_sum_below_a_group() {
        let fake = Fake::new();
        let backend = fake.backend();
        drop(backend.prepare_process("g", "a", &Limits::default()).expect("a"));
        drop(backend.prepare_process("g", "b", &Limits::default()).expect("b"));
        let oom = "oom_kill_disable 0\nunder_oom 0\noom_kill 1\n";
        fake.seed("corral/g/a", &[("memory.oom_control", oom)]);
        fake.seed("corral/g/b", &[("memory.oom_control", oom)]);
        fake.seed(
            "corral/g",
            &[
                ("memory.usage_in_bytes", "1000\n"),
                ("memory.max_usage_in_bytes", "2000\n"),
                ("cpuacct.usage", "5000000\n"),
                ("pids.current", "3\n"),
                (
                    "blkio.throttle.io_service_bytes_recursive",
                    "8:0 Read 10\n8:0 Write 20\n8:0 Total 30\nTotal 30\n",
                ),
            ],
        );
        let readings = backend.readings(Target::Group("g")).expect("readings");
        assert_eq!(readings.memory_current, Some(1000));
        assert_eq!(readings.memory_peak, Some(2000));
        assert_eq!(readings.cpu_usage_usec, Some(5000));
        assert_eq!(readings.tasks, Some(3));
        assert_eq!(readings.io_read_bytes, Some(10));
        assert_eq!(readings.io_write_bytes, Some(20));
        assert_eq!(readings.oom_kills, Some(2));
        assert_eq!(backend.oom_kills(Target::Process { group: "g", process: "a" }).expect("oom"), 1);
    }
}
