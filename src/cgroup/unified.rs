//! The cgroup2 backend: one hierarchy for membership, kill, freeze, events
//! and (where enabled) limits. Also the membership half of [`super::HybridBackend`].

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

use super::detect::{join_cgroup_path, Hierarchy};
use super::fsutil::{self, Made};
use super::limits::{self, Controller};
use super::{Backend, CgroupError, CgroupReadings, Mode, OpenOptions, Placement, Target, DAEMON_LEAF};
use crate::config::model::Limits;

/// Drives a cgroup2 hierarchy (pure cgroup2 hosts, or the cgroup2 mount of a
/// hybrid host).
#[derive(Debug)]
pub struct UnifiedBackend {
    mount: PathBuf,
    /// `<root>` as a cgroup path (`/system.slice/corral.service`), for display.
    root_rel: String,
    /// `<mount>/<root>`.
    root: PathBuf,
    /// `<root>/<top>`.
    top: PathBuf,
    top_name: String,
    /// The daemon's own cgroup when the backend was opened.
    own: PathBuf,
    /// Controllers corral uses that `<root>` offers (its `cgroup.controllers`).
    controllers: Vec<Controller>,
    mode: Mode,
    adopted: AtomicBool,
    /// `<top>` exists with controllers enabled down to it (checked once, not per group).
    top_ready: AtomicBool,
}

impl UnifiedBackend {
    /// Opens the hierarchy. `mode` is what [`Backend::mode`] reports
    /// ([`Mode::Hybrid`] when used inside the hybrid backend).
    pub fn new(
        hierarchy: &Hierarchy,
        options: &OpenOptions,
        mode: Mode,
    ) -> Result<UnifiedBackend, CgroupError> {
        let root_rel = root_rel(options, &hierarchy.own);
        let root = join_cgroup_path(&hierarchy.mount, &root_rel);
        if !root.exists() {
            fsutil::mkdir_all(&root)?;
        }
        check_writable(&root)?;
        let offered = fsutil::read_optional(&root.join("cgroup.controllers"))?.unwrap_or_default();
        let controllers = Controller::ALL
            .into_iter()
            .filter(|c| offered.split_whitespace().any(|o| o == c.v2_name()))
            .collect();
        Ok(UnifiedBackend {
            mount: hierarchy.mount.clone(),
            top: root.join(&options.top),
            top_name: options.top.clone(),
            root_rel,
            root,
            own: hierarchy.own_dir(),
            controllers,
            mode,
            adopted: AtomicBool::new(false),
            top_ready: AtomicBool::new(false),
        })
    }

    /// The controllers this hierarchy enforces limits with.
    pub(crate) fn controllers(&self) -> &[Controller] {
        &self.controllers
    }

    fn dir(&self, target: Target<'_>) -> PathBuf {
        self.top.join(target.rel())
    }

    /// Enables our controllers for the children of `dir`.
    fn enable_controllers(&self, dir: &Path) -> Result<(), CgroupError> {
        if self.controllers.is_empty() {
            return Ok(());
        }
        let control = dir.join("cgroup.subtree_control");
        let enabled = fsutil::read_optional(&control)?.unwrap_or_default();
        for controller in &self.controllers {
            let name = controller.v2_name();
            if enabled.split_whitespace().any(|e| e == name) {
                continue;
            }
            fsutil::write(&control, &format!("+{name}")).map_err(|err| match err {
                CgroupError::Io { path, source, .. } => CgroupError::Io {
                    op: "enable controllers (EBUSY: processes sit in this cgroup) in",
                    path,
                    source,
                },
                other => other,
            })?;
        }
        Ok(())
    }

    /// `<root>/<top>` with controllers enabled down to it.
    fn ensure_top(&self) -> Result<(), CgroupError> {
        self.enable_controllers(&self.root)?;
        fsutil::mkdir(&self.top)?;
        self.enable_controllers(&self.top)
    }

    /// A group may not be named like the leaf the daemon moved itself into.
    fn refuse_daemon_leaf(&self, group: &str) -> Result<(), CgroupError> {
        if self.adopted.load(Ordering::Relaxed) && group == DAEMON_LEAF {
            return Err(CgroupError::InvalidName {
                name: group.to_string(),
                reason: "it is the daemon's own leaf on this host",
            });
        }
        Ok(())
    }

    fn ensure_group(&self, group: &str) -> Result<PathBuf, CgroupError> {
        self.make_group(group).map(|(dir, _)| dir)
    }

    /// Creates the group's cgroup (and `<top>` the first time, or when it has gone)
    /// with controllers enabled; the flag says whether it already existed.
    fn make_group(&self, group: &str) -> Result<(PathBuf, bool), CgroupError> {
        self.refuse_daemon_leaf(group)?;
        if !self.top_ready.load(Ordering::Relaxed) {
            self.ensure_top()?;
            self.top_ready.store(true, Ordering::Relaxed);
        }
        let dir = self.dir(Target::Group(group));
        let made = match fsutil::make_dir(&dir)? {
            Made::NoParent => {
                self.ensure_top()?;
                fsutil::make_dir(&dir)?
            }
            made => made,
        };
        self.enable_controllers(&dir)?;
        Ok((dir, made == Made::Existed))
    }

    /// The processes that have a cgroup in `group` (directory names unescaped).
    pub(crate) fn process_names(&self, group: &str) -> Result<Vec<String>, CgroupError> {
        let dir = self.dir(Target::Group(group));
        if !dir.exists() {
            return Ok(Vec::new());
        }
        Ok(fsutil::subdirs(&dir)?
            .iter()
            .filter_map(|d| d.file_name()?.to_str())
            // escape_name adds exactly one `_`, and to every name that starts with one.
            .map(|n| n.strip_prefix('_').unwrap_or(n).to_string())
            .collect())
    }

    /// Makes a fresh, limited leaf and returns its directory.
    pub(crate) fn fresh_leaf(
        &self,
        group: &str,
        process: &str,
        limits: &Limits,
    ) -> Result<PathBuf, CgroupError> {
        self.refuse_daemon_leaf(group)?;
        let leaf = self.dir(Target::Process { group, process });
        // The group was made when it was activated: one mkdir is the usual cost.
        match fsutil::make_dir(&leaf)? {
            Made::Created => {}
            Made::NoParent => {
                self.ensure_group(group)?;
                fsutil::mkdir(&leaf)?;
            }
            Made::Existed => {
                if self.is_populated(Target::Process { group, process })? {
                    return Err(CgroupError::Busy { path: leaf });
                }
                fsutil::rmdir(&leaf)?;
                fsutil::mkdir(&leaf)?;
            }
        }
        limits::write_v2(&leaf, limits, &self.controllers, false)?;
        Ok(leaf)
    }

    /// Probes whether a controller file exists where limits will be written.
    /// `None` when that cannot be told yet (`<root>` is the hierarchy root,
    /// which has no limit files).
    fn probe_file(&self, file: &str) -> Option<bool> {
        (self.root != self.mount).then(|| self.root.join(file).exists())
    }

    fn check_one(&self, option: &'static str, controller: Controller) -> Result<(), CgroupError> {
        if !self.controllers.contains(&controller) {
            return Err(CgroupError::Unsupported {
                option,
                reason: format!(
                    "the cgroup2 {} controller is not available in {}",
                    controller.v2_name(),
                    self.root.join("cgroup.controllers").display()
                ),
            });
        }
        let file_missing = |files: &[&str]| files.iter().all(|file| self.probe_file(file) == Some(false));
        match option {
            "memory_swap_max" if file_missing(&["memory.swap.max"]) => Err(CgroupError::Unsupported {
                option,
                reason: "memory.swap.max is missing (no swap accounting in this kernel)".to_string(),
            }),
            "io_weight" if file_missing(&["io.weight", "io.bfq.weight"]) => Err(CgroupError::Unsupported {
                option,
                reason: "neither io.weight nor io.bfq.weight exists (no iocost or BFQ)".to_string(),
            }),
            _ => Ok(()),
        }
    }
}

impl Backend for UnifiedBackend {
    fn mode(&self) -> Mode {
        self.mode
    }

    fn describe(&self) -> String {
        let names: Vec<&str> = self.controllers.iter().map(|c| c.v2_name()).collect();
        format!(
            "{}: cgroup2 at {} (controllers: {}), programs under {}",
            self.mode,
            self.mount.display(),
            if names.is_empty() { "none".to_string() } else { names.join(" ") },
            self.top.display()
        )
    }

    fn check_limits(&self, limits: &Limits) -> Result<(), CgroupError> {
        for (option, controller) in limits::requested(limits) {
            self.check_one(option, controller)?;
        }
        Ok(())
    }

    fn adopt_daemon_leaf(&self) -> Result<Option<PathBuf>, CgroupError> {
        // The rule only bites when <root> needs controllers for its children,
        // is not the hierarchy root (exempt), and the daemon is in it.
        if self.controllers.is_empty() || self.root == self.mount || self.own != self.root {
            return Ok(None);
        }
        fsutil::mkdir(&self.top)?;
        let leaf = self.top.join(DAEMON_LEAF);
        fsutil::mkdir(&leaf)?;
        fsutil::write(&leaf.join("cgroup.procs"), "0")?;
        self.adopted.store(true, Ordering::Relaxed);
        Ok(Some(leaf))
    }

    fn prepare_group(&self, group: &str, limits: &Limits) -> Result<(), CgroupError> {
        Target::Group(group).validate()?;
        // As in the v1 backend: a cgroup just made has the defaults (and a cpu.max
        // write walks every task group), so only an existing one is reset.
        let (dir, existed) = self.make_group(group)?;
        limits::write_v2(&dir, limits, &self.controllers, existed)
    }

    fn prepare_process(&self, group: &str, process: &str, limits: &Limits) -> Result<Placement, CgroupError> {
        let target = Target::Process { group, process };
        target.validate()?;
        let leaf = self.fresh_leaf(group, process, limits)?;
        Ok(Placement {
            procs_fds: vec![fsutil::open_procs(&leaf)?],
            unified_dir: Some(fsutil::open_dir(&leaf)?),
            path: self.path(target),
        })
    }

    fn apply_limits(&self, target: Target<'_>, limits: &Limits) -> Result<(), CgroupError> {
        target.validate()?;
        limits::write_v2(&self.dir(target), limits, &self.controllers, true)
    }

    fn kill(&self, target: Target<'_>) -> Result<(), CgroupError> {
        target.validate()?;
        let dir = self.dir(target);
        if !dir.exists() {
            return Ok(());
        }
        let kill_file = dir.join("cgroup.kill");
        if kill_file.exists() {
            return fsutil::write(&kill_file, "1");
        }
        // Kernels before 5.14: freeze so nothing forks while we signal.
        self.freeze(target)?;
        let mut pids = Vec::new();
        let result = fsutil::pids_recursive(&dir, &mut pids).and_then(|()| fsutil::kill_all(&pids));
        self.thaw(target)?;
        result
    }

    fn freeze(&self, target: Target<'_>) -> Result<(), CgroupError> {
        target.validate()?;
        fsutil::write(&self.dir(target).join("cgroup.freeze"), "1")
    }

    fn thaw(&self, target: Target<'_>) -> Result<(), CgroupError> {
        target.validate()?;
        fsutil::write(&self.dir(target).join("cgroup.freeze"), "0")
    }

    fn is_populated(&self, target: Target<'_>) -> Result<bool, CgroupError> {
        target.validate()?;
        let dir = self.dir(target);
        match fsutil::read_optional(&dir.join("cgroup.events"))? {
            Some(events) => Ok(fsutil::keyed_value(&events, "populated").unwrap_or(0) != 0),
            None => Ok(!self.pids(target)?.is_empty()),
        }
    }

    fn pids(&self, target: Target<'_>) -> Result<Vec<i32>, CgroupError> {
        target.validate()?;
        let mut pids = Vec::new();
        fsutil::pids_recursive(&self.dir(target), &mut pids)?;
        pids.sort_unstable();
        pids.dedup();
        Ok(pids)
    }

    fn remove(&self, target: Target<'_>) -> Result<(), CgroupError> {
        target.validate()?;
        fsutil::rmdir_tree(&self.dir(target))
    }

    fn kill_stale(&self) -> Result<usize, CgroupError> {
        self.kill_stale_sparing(&[])
    }

    fn kill_stale_sparing(&self, spare: &[Target<'_>]) -> Result<usize, CgroupError> {
        if !self.top.exists() {
            return Ok(0);
        }
        let adopted = self.adopted.load(Ordering::Relaxed);
        let spare: Vec<PathBuf> = spare.iter().map(|t| self.dir(*t)).collect();
        let stale = fsutil::stale_dirs(&self.top, &spare, adopted.then_some(DAEMON_LEAF))?;
        // Count before killing: after cgroup.kill the processes may already be gone.
        let mut found = Vec::new();
        for dir in &stale {
            fsutil::pids_recursive(dir, &mut found)?;
            let kill_file = dir.join("cgroup.kill");
            if kill_file.exists() {
                fsutil::write(&kill_file, "1")?;
            }
        }
        let killed = fsutil::kill_trees(&stale, std::time::Duration::from_secs(5))?.max(found.len());
        for dir in &stale {
            fsutil::rmdir_tree(dir)?;
        }
        Ok(killed)
    }

    fn remove_all(&self) -> Result<(), CgroupError> {
        let adopted = self.adopted.load(Ordering::Relaxed);
        for child in fsutil::subdirs(&self.top)? {
            if adopted && child.file_name().is_some_and(|n| n == DAEMON_LEAF) {
                continue;
            }
            fsutil::rmdir_tree(&child)?;
        }
        if adopted {
            Ok(())
        } else {
            fsutil::rmdir(&self.top)
        }
    }

    fn oom_kills(&self, target: Target<'_>) -> Result<u64, CgroupError> {
        target.validate()?;
        let events = fsutil::read_optional(&self.dir(target).join("memory.events"))?;
        Ok(events.and_then(|text| fsutil::keyed_value(&text, "oom_kill")).unwrap_or(0))
    }

    fn events_path(&self, target: Target<'_>) -> Option<PathBuf> {
        Some(self.dir(target).join("cgroup.events"))
    }

    fn path(&self, target: Target<'_>) -> String {
        display_path(&self.root_rel, &self.top_name, target)
    }

    fn readings(&self, target: Target<'_>) -> Result<CgroupReadings, CgroupError> {
        target.validate()?;
        let dir = self.dir(target);
        let keyed = |file: &str, key: &str| -> Result<Option<u64>, CgroupError> {
            Ok(fsutil::read_optional(&dir.join(file))?.and_then(|t| fsutil::keyed_value(&t, key)))
        };
        let (io_read_bytes, io_write_bytes) = match fsutil::read_optional(&dir.join("io.stat"))? {
            Some(text) => {
                let (read, write) = io_stat_bytes(&text);
                (Some(read), Some(write))
            }
            None => (None, None),
        };
        Ok(CgroupReadings {
            cpu_usage_usec: keyed("cpu.stat", "usage_usec")?,
            memory_current: fsutil::read_u64_optional(&dir.join("memory.current"))?,
            memory_peak: fsutil::read_u64_optional(&dir.join("memory.peak"))?,
            tasks: fsutil::read_u64_optional(&dir.join("pids.current"))?,
            io_read_bytes,
            io_write_bytes,
            oom_kills: keyed("memory.events", "oom_kill")?,
        })
    }
}

/// Sums `rbytes=` and `wbytes=` over every device line of `io.stat`.
fn io_stat_bytes(text: &str) -> (u64, u64) {
    let mut read = 0u64;
    let mut write = 0u64;
    for field in text.split_whitespace() {
        if let Some(v) = field.strip_prefix("rbytes=") {
            read = read.saturating_add(v.parse().unwrap_or(0));
        } else if let Some(v) = field.strip_prefix("wbytes=") {
            write = write.saturating_add(v.parse().unwrap_or(0));
        }
    }
    (read, write)
}

/// `<root>` as a cgroup path: `cgroup_root=` or the daemon's own cgroup.
pub(crate) fn root_rel(options: &OpenOptions, own: &str) -> String {
    let raw = match &options.cgroup_root {
        Some(root) => root.to_string_lossy().into_owned(),
        None => own.to_string(),
    };
    let trimmed = raw.trim_matches('/');
    format!("/{trimmed}")
}

/// `/<root>/<top>/<group>[/<process>]`.
pub(crate) fn display_path(root_rel: &str, top: &str, target: Target<'_>) -> String {
    let root = root_rel.trim_end_matches('/');
    format!("{root}/{top}/{}", target.rel().display())
}

/// Fails unless the daemon may create cgroups under `dir`.
pub(crate) fn check_writable(dir: &Path) -> Result<(), CgroupError> {
    nix::unistd::access(dir, nix::unistd::AccessFlags::W_OK).map_err(|errno| CgroupError::NoCgroups {
        reason: format!("{} is not writable: {}", dir.display(), std::io::Error::from(errno)),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    const V2_FILES: [&str; 10] = [
        "cgroup.events",
        "cgroup.kill",
        "cgroup.freeze",
        "memory.max",
        "memory.high",
        "memory.events",
        "cpu.max",
        "cpu.weight",
        "pids.max",
        "io.weight",
    ];

    /// A fake cgroup2 hierarchy: `<tmp>/cg` mounted, the daemon in `/svc`.
    struct Fake {
        _tmp: tempfile::TempDir,
        mount: PathBuf,
    }

    impl Fake {
        fn new(own: &str, offered: &str) -> Fake {
            let tmp = tempfile::tempdir().expect("tempdir");
            let mount = tmp.path().join("cg");
            let own_dir = join_cgroup_path(&mount, own);
            fs::create_dir_all(&own_dir).expect("mkdir");
            for dir in [&mount, &own_dir] {
                fs::write(dir.join("cgroup.controllers"), offered).expect("write");
                fs::write(dir.join("cgroup.subtree_control"), "").expect("write");
                fs::write(dir.join("cgroup.procs"), "").expect("write");
            }
            // What children get (no memory.swap.max: a kernel without swap
            // accounting). The fake kernel copies these into new cgroups.
            for file in V2_FILES {
                fs::write(own_dir.join(file), "").expect("write");
            }
            Fake { _tmp: tmp, mount }
        }

        fn hierarchy(&self, own: &str) -> Hierarchy {
            Hierarchy {
                mount: self.mount.clone(),
                controllers: Vec::new(),
                own: own.to_string(),
                read_only: false,
            }
        }

        fn backend(&self, own: &str) -> UnifiedBackend {
            UnifiedBackend::new(&self.hierarchy(own), &OpenOptions::default(), Mode::Unified)
                .expect("backend")
        }
    }

    /// Fake cgroupfs does not create interface files; a test creates the ones
    /// the kernel would, for the directory it is about to inspect.
    fn seed(dir: &Path, files: &[&str]) {
        for file in files {
            fs::write(dir.join(file), "").expect("seed");
        }
    }

    fn read(path: &Path) -> String {
        fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
    }

    #[test]
    fn group_and_process_limits_are_written_to_v2_files() {
        let fake = Fake::new("/", "cpuset cpu io memory hugetlb pids rdma misc");
        let backend = fake.backend("/");
        let group = fake.mount.join("corral/web");
        let group_limits = Limits {
            memory_max: Some(512 << 20),
            cpu_weight: Some(200),
            io_weight: Some(50),
            ..Limits::default()
        };
        backend.prepare_group("web", &group_limits).expect("group");
        // A plain file keeps only the last "+name" write (the kernel keeps
        // them all); io is the last controller corral enables.
        assert_eq!(read(&fake.mount.join("cgroup.subtree_control")), "+io");
        assert_eq!(read(&fake.mount.join("corral/cgroup.subtree_control")), "+io");
        assert_eq!(read(&group.join("cgroup.subtree_control")), "+io");
        assert_eq!(read(&group.join("memory.max")), "536870912");
        assert_eq!(read(&group.join("cpu.weight")), "200");
        assert_eq!(read(&group.join("io.weight")), "default 50");
        // A new cgroup keeps what the kernel made (the fake kernel: empty files).
        assert_eq!(read(&group.join("memory.high")), "", "a new cgroup is not reset");
        assert_eq!(read(&group.join("cpu.max")), "");
        // An existing one is: unset limits go back to the defaults.
        backend.prepare_group("web", &group_limits).expect("group again");
        assert_eq!(read(&group.join("memory.high")), "max", "unset limits are reset");
        assert_eq!(read(&group.join("cpu.max")), "max 100000");

        let limits = Limits {
            memory_max: Some(32 << 20),
            cpu_quota: Some(150),
            tasks_max: Some(8),
            ..Limits::default()
        };
        let placement = backend.prepare_process("web", "web_00", &limits).expect("start");
        assert_eq!(placement.path, "/corral/web/web_00");
        let leaf = group.join("web_00");
        assert_eq!(read(&leaf.join("memory.max")), "33554432");
        assert_eq!(read(&leaf.join("cpu.max")), "150000 100000");
        assert_eq!(read(&leaf.join("pids.max")), "8");
        assert_eq!(read(&leaf.join("memory.high")), "", "a fresh leaf keeps kernel defaults");

        let target = Target::Process { group: "web", process: "web_00" };
        let lowered = Limits { tasks_max: Some(4), ..Limits::default() };
        backend.apply_limits(target, &lowered).expect("live change");
        assert_eq!(read(&leaf.join("pids.max")), "4");
        assert_eq!(read(&leaf.join("memory.max")), "max", "dropped limit is lifted");
        assert_eq!(read(&leaf.join("cpu.max")), "max 100000");

        let err = backend
            .apply_limits(target, &Limits { memory_swap_max: Some(0), ..Limits::default() })
            .expect_err("no memory.swap.max file");
        assert!(err.to_string().contains("web_00/memory.swap.max"), "{err}");
    }

    #[test]
    fn subtree_control_gets_every_controller_in_order() {
        let fake = Fake::new("/", "cpu memory pids io");
        let backend = fake.backend("/");
        let control = fake.mount.join("cgroup.subtree_control");
        // A FIFO would show every write; a log file via a symlink cannot
        // append. Record writes by making subtree_control a directory-free
        // check: enable on a file that already lists all but one controller.
        fs::write(&control, "cpu memory io").expect("write");
        backend.ensure_top().expect("top");
        assert_eq!(read(&control), "+pids", "only the missing controller is enabled");
        fs::write(&control, "cpu memory io pids").expect("write");
        fs::write(fake.mount.join("corral/cgroup.subtree_control"), "memory cpu pids io").expect("write");
        backend.ensure_top().expect("idempotent");
        assert_eq!(read(&control), "cpu memory io pids", "nothing rewritten");
    }

    #[test]
    fn fresh_leaf_with_process_limits_on_real_style_tree() {
        let fake = Fake::new("/", "");
        let backend = fake.backend("/");
        let placement = backend
            .prepare_process("g", "p", &Limits::default())
            .expect("no limits, no controller files needed");
        assert_eq!(placement.path, "/corral/g/p");
        assert_eq!(placement.procs_fds.len(), 1);
        assert!(placement.unified_dir.is_some());
        let leaf = fake.mount.join("corral/g/p");
        fs::write(leaf.join("marker"), "old start").expect("write");
        drop(placement);
        backend.prepare_process("g", "p", &Limits::default()).expect("second start");
        assert!(!leaf.join("marker").exists(), "each start gets a fresh leaf");
    }

    #[test]
    fn populated_leaf_is_not_replaced() {
        let fake = Fake::new("/", "");
        let backend = fake.backend("/");
        drop(backend.prepare_process("g", "p", &Limits::default()).expect("start"));
        let leaf = fake.mount.join("corral/g/p");
        fs::write(leaf.join("cgroup.events"), "populated 1\nfrozen 0\n").expect("write");
        let err = backend.prepare_process("g", "p", &Limits::default()).expect_err("busy");
        assert!(matches!(err, CgroupError::Busy { .. }), "{err}");
    }

    #[test]
    fn kill_writes_one_to_cgroup_kill() {
        let fake = Fake::new("/", "");
        let backend = fake.backend("/");
        drop(backend.prepare_process("g", "p", &Limits::default()).expect("start"));
        let leaf = fake.mount.join("corral/g/p");
        seed(&leaf, &["cgroup.kill"]);
        backend.kill(Target::Process { group: "g", process: "p" }).expect("kill");
        assert_eq!(read(&leaf.join("cgroup.kill")), "1");
        assert_eq!(
            backend.events_path(Target::Process { group: "g", process: "p" }),
            Some(leaf.join("cgroup.events"))
        );
    }

    #[test]
    fn limits_the_root_does_not_offer_are_refused_by_name() {
        let fake = Fake::new("/svc", "memory pids");
        let backend = fake.backend("/svc");
        let err = backend
            .check_limits(&Limits { cpu_quota: Some(50), ..Limits::default() })
            .expect_err("no cpu controller");
        let text = err.to_string();
        assert!(text.starts_with("cpu_quota: "), "{text}");
        assert!(text.contains("cpu controller"), "{text}");
        backend
            .check_limits(&Limits { memory_max: Some(1 << 20), tasks_max: Some(8), ..Limits::default() })
            .expect("offered");
        let err = backend
            .check_limits(&Limits { memory_swap_max: Some(0), ..Limits::default() })
            .expect_err("no memory.swap.max in /svc");
        assert!(err.to_string().starts_with("memory_swap_max: "), "{err}");
    }

    #[test]
    fn daemon_moves_to_its_leaf_only_when_the_rule_requires() {
        let fake = Fake::new("/svc", "memory pids");
        let backend = fake.backend("/svc");
        let leaf = backend.adopt_daemon_leaf().expect("adopt").expect("moved");
        assert_eq!(leaf, fake.mount.join("svc/corral/daemon"));
        assert_eq!(read(&leaf.join("cgroup.procs")), "0");
        let err = backend.prepare_group("daemon", &Limits::default()).expect_err("reserved");
        assert!(matches!(err, CgroupError::InvalidName { .. }), "{err}");

        let at_root = Fake::new("/", "memory pids");
        assert_eq!(at_root.backend("/").adopt_daemon_leaf().expect("adopt"), None);
        let no_controllers = Fake::new("/svc", "");
        assert_eq!(no_controllers.backend("/svc").adopt_daemon_leaf().expect("adopt"), None);
    }

    #[test]
    fn cgroup_root_overrides_the_daemon_cgroup() {
        let fake = Fake::new("/svc", "");
        let options =
            OpenOptions { cgroup_root: Some(PathBuf::from("/corral.slice")), ..OpenOptions::default() };
        let backend = UnifiedBackend::new(&fake.hierarchy("/svc"), &options, Mode::Unified).expect("backend");
        drop(backend.prepare_process("g", "p", &Limits::default()).expect("start"));
        assert!(fake.mount.join("corral.slice/corral/g/p").is_dir());
        assert_eq!(backend.path(Target::Process { group: "g", process: "p" }), "/corral.slice/corral/g/p");
        backend.remove(Target::Group("g")).expect("remove");
        assert!(!fake.mount.join("corral.slice/corral/g").exists());
        backend.remove_all().expect("remove all");
        assert!(!fake.mount.join("corral.slice/corral").exists());
    }

    #[test]
    fn readings_parse_kernel_files() {
        let fake = Fake::new("/", "");
        let backend = fake.backend("/");
        drop(backend.prepare_process("g", "p", &Limits::default()).expect("start"));
        let leaf = fake.mount.join("corral/g/p");
        fs::write(leaf.join("cpu.stat"), "usage_usec 1500\nuser_usec 1000\n").expect("w");
        fs::write(leaf.join("memory.current"), "4096\n").expect("w");
        fs::write(leaf.join("memory.peak"), "8192\n").expect("w");
        fs::write(leaf.join("memory.events"), "low 0\noom 1\noom_kill 2\n").expect("w");
        fs::write(leaf.join("io.stat"), "8:0 rbytes=100 wbytes=20 rios=1 wios=1\n8:16 rbytes=1 wbytes=2\n")
            .expect("w");
        let target = Target::Process { group: "g", process: "p" };
        let readings = backend.readings(target).expect("readings");
        assert_eq!(readings.cpu_usage_usec, Some(1500));
        assert_eq!(readings.memory_current, Some(4096));
        assert_eq!(readings.memory_peak, Some(8192));
        assert_eq!(readings.tasks, None);
        assert_eq!(readings.io_read_bytes, Some(101));
        assert_eq!(readings.io_write_bytes, Some(22));
        assert_eq!(readings.oom_kills, Some(2));
        assert_eq!(backend.oom_kills(target).expect("oom"), 2);
    }
}
