//! Cgroup backends: setup detection, placement, limits, kill and readings.
//!
//! Every program runs in `<root>/<top>/<group>/<process>` (`<top>` is `corral`
//! unless [`OpenOptions::top`] says otherwise), where `<root>` is the daemon's
//! own cgroup in each hierarchy (from `/proc/self/cgroup`) or
//! `cgroup_root=` from `[supervisord]`. Group limits live on the group's
//! cgroup, so the `numprocs` workers of a pool share one budget.
//!
//! The host's layout is found by [`detect`]; [`open`] turns it into one of
//! four [`Backend`]s:
//!
//! * [`Mode::Unified`]: cgroup2 only. Membership, kill, freeze, limits: cgroup2.
//! * [`Mode::Hybrid`]: v1 controllers plus a cgroup2 mount (usually without
//!   controllers). Membership, kill, freeze and `cgroup.events` use cgroup2;
//!   limits use cgroup2 controllers where enabled there, else v1.
//! * [`Mode::Legacy`]: v1 only. Kill is freezer-freeze, SIGKILL every task, thaw.
//! * [`Mode::None`]: no usable cgroupfs. Limits are refused, kill and
//!   membership fall back to the spawner's process group.
//!
//! A start goes: [`Backend::prepare_group`] (once per group, idempotent),
//! [`Backend::prepare_process`] (a fresh leaf every start), then the spawner
//! calls [`join_in_child`] with [`Placement::raw_fds`] from `pre_exec`, so the
//! child is inside every hierarchy before it can fork.

mod detect;
mod fsutil;
mod hybrid;
mod legacy;
mod limits;
mod none;
mod oom;
mod unified;

use std::fmt;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::path::{Path, PathBuf};

pub use detect::{detect, detect_host, Hierarchy, Setup};
pub use hybrid::HybridBackend;
pub use legacy::LegacyBackend;
pub use none::NoneBackend;
pub use oom::OomWatch;
pub use unified::UnifiedBackend;

use crate::config::model::Limits;

/// The name of the daemon's own leaf under `<root>/<top>` (see
/// [`Backend::adopt_daemon_leaf`]).
pub const DAEMON_LEAF: &str = "daemon";

/// The default name of the subtree the daemon owns under its root.
pub const DEFAULT_TOP: &str = "corral";

/// Which cgroup layout the host has, and so which backend is in use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// cgroup2 only (`/sys/fs/cgroup` is cgroup2).
    Unified,
    /// v1 controllers plus a cgroup2 hierarchy elsewhere (e.g. `/sys/fs/cgroup/unified`).
    Hybrid,
    /// v1 controllers only.
    Legacy,
    /// No usable cgroupfs (missing, read-only, or not permitted).
    None,
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Mode::Unified => "unified",
            Mode::Hybrid => "hybrid",
            Mode::Legacy => "legacy",
            Mode::None => "none",
        })
    }
}

/// The cgroup an operation applies to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target<'a> {
    /// A group's cgroup `<root>/<top>/<group>` (and, for kill, pids, freeze and
    /// readings, everything below it).
    Group(&'a str),
    /// One process's leaf `<root>/<top>/<group>/<process>`.
    Process {
        /// Group name.
        group: &'a str,
        /// Process name.
        process: &'a str,
    },
}

impl Target<'_> {
    /// The path of this cgroup relative to `<root>/<top>`, names escaped
    /// (see [`escape_name`]).
    fn rel(&self) -> PathBuf {
        match self {
            Target::Group(group) => PathBuf::from(escape_name(group).as_ref()),
            Target::Process { group, process } => {
                Path::new(escape_name(group).as_ref()).join(escape_name(process).as_ref())
            }
        }
    }

    /// Checks both names are usable as one directory name each.
    fn validate(&self) -> Result<(), CgroupError> {
        match self {
            Target::Group(group) => validate_name(group),
            Target::Process { group, process } => {
                validate_name(group)?;
                validate_name(process)
            }
        }
    }
}

/// Where a freshly prepared process cgroup is, as the spawner needs it.
///
/// The descriptors are `O_CLOEXEC`: the child inherits them across `fork`,
/// writes `"0"` into each from `pre_exec` ([`join_in_child`]) and `exec`
/// closes them. Drop the placement in the parent once the child is spawned.
#[derive(Debug)]
pub struct Placement {
    /// `cgroup.procs` of every hierarchy the child joins, opened `O_WRONLY|O_CLOEXEC`.
    pub procs_fds: Vec<OwnedFd>,
    /// The cgroup2 leaf directory (`O_RDONLY|O_DIRECTORY|O_CLOEXEC`), for
    /// `clone3(CLONE_INTO_CGROUP)` on pure cgroup2 hosts; `None` without cgroup2.
    pub unified_dir: Option<OwnedFd>,
    /// The cgroup path shown to users (same as [`Backend::path`]).
    pub path: String,
}

impl Placement {
    /// The raw descriptors to hand to [`join_in_child`]. Collect them before
    /// spawning: the `pre_exec` closure must not allocate.
    pub fn raw_fds(&self) -> Vec<RawFd> {
        self.procs_fds.iter().map(AsRawFd::as_raw_fd).collect()
    }
}

/// Joins the calling process to the cgroups whose `cgroup.procs` descriptors
/// are given, by writing `"0"` ("the writer") into each.
///
/// Meant for `pre_exec`: it only calls `write(2)` and allocates nothing, so it
/// is async-signal-safe in a multi-threaded parent. Joining before `exec`
/// means nothing the child forks can start outside its cgroup.
pub fn join_in_child(fds: &[RawFd]) -> io::Result<()> {
    for &fd in fds {
        loop {
            // SAFETY: writes one byte from a static buffer to a descriptor the
            // caller owns; no memory is shared with other threads.
            let written = unsafe { libc::write(fd, b"0".as_ptr().cast(), 1) };
            if written == 1 {
                break;
            }
            let err = io::Error::last_os_error();
            if err.kind() != io::ErrorKind::Interrupted {
                return Err(err);
            }
        }
    }
    Ok(())
}

/// Readings a backend takes from cgroup files. `None` means this host has no
/// file for it (controller not mounted or not enabled).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct CgroupReadings {
    /// CPU time in microseconds (`cpu.stat usage_usec` / `cpuacct.usage`).
    pub cpu_usage_usec: Option<u64>,
    /// Memory in use, bytes (`memory.current` / `memory.usage_in_bytes`).
    pub memory_current: Option<u64>,
    /// Highest memory use since the cgroup was made (`memory.peak` / `memory.max_usage_in_bytes`).
    pub memory_peak: Option<u64>,
    /// Number of tasks (`pids.current`).
    pub tasks: Option<u64>,
    /// Bytes read from block devices (`io.stat rbytes` / `blkio.throttle.io_service_bytes`).
    pub io_read_bytes: Option<u64>,
    /// Bytes written to block devices (`io.stat wbytes` / `blkio.throttle.io_service_bytes`).
    pub io_write_bytes: Option<u64>,
    /// Processes killed by the OOM killer (`memory.events` / `memory.oom_control`).
    pub oom_kills: Option<u64>,
}

impl CgroupReadings {
    /// Fills every reading `self` lacks from `other`.
    pub(crate) fn or(self, other: CgroupReadings) -> CgroupReadings {
        CgroupReadings {
            cpu_usage_usec: self.cpu_usage_usec.or(other.cpu_usage_usec),
            memory_current: self.memory_current.or(other.memory_current),
            memory_peak: self.memory_peak.or(other.memory_peak),
            tasks: self.tasks.or(other.tasks),
            io_read_bytes: self.io_read_bytes.or(other.io_read_bytes),
            io_write_bytes: self.io_write_bytes.or(other.io_write_bytes),
            oom_kills: self.oom_kills.or(other.oom_kills),
        }
    }
}

/// What the daemon does with cgroups, whatever the host's layout.
///
/// All methods are synchronous and short (a few file operations), so the
/// engine may call them directly or from `spawn_blocking`.
pub trait Backend: Send + Sync + fmt::Debug {
    /// The layout this backend drives.
    fn mode(&self) -> Mode;

    /// One line for logs and `corralctl version`: the layout, the mounts in
    /// use and, for [`Mode::None`], why cgroups are unavailable.
    fn describe(&self) -> String;

    /// Reports the first limit in `limits` this host cannot enforce, naming
    /// the option and the reason (controller not mounted or not enabled, file
    /// missing, no cgroups at all). The config loader turns it into an error.
    fn check_limits(&self, limits: &Limits) -> Result<(), CgroupError>;

    /// Moves the daemon into `<root>/<top>/daemon` when cgroup2's
    /// no-internal-process rule requires it: cgroup2 controllers must be
    /// enabled in `<root>`'s `cgroup.subtree_control`, which the kernel
    /// refuses while processes sit in `<root>`, and the daemon sits there
    /// when `<root>` is its own cgroup (e.g. under systemd `Delegate=yes`).
    ///
    /// Call once at start, before the first [`Backend::prepare_group`].
    /// Returns the leaf moved into, or `None` when no move was needed.
    fn adopt_daemon_leaf(&self) -> Result<Option<PathBuf>, CgroupError>;

    /// Creates (or keeps) the group's cgroup and writes the group limits
    /// there. Idempotent; call before every start and on a limit change.
    fn prepare_group(&self, group: &str, limits: &Limits) -> Result<(), CgroupError>;

    /// Makes a fresh leaf for one start of a process: removes the previous
    /// leaf (which must be empty: [`CgroupError::Busy`] otherwise), creates a
    /// new one, writes the process limits and opens what the spawner needs.
    ///
    /// A fresh leaf resets the kernel's counters (peak memory, OOM kills) and
    /// avoids the kernel killing children cloned into a cgroup that was once
    /// `cgroup.kill`ed.
    fn prepare_process(&self, group: &str, process: &str, limits: &Limits) -> Result<Placement, CgroupError>;

    /// Changes the limits of an existing cgroup while it runs. Options left
    /// `None` are reset to unlimited/default.
    fn apply_limits(&self, target: Target<'_>, limits: &Limits) -> Result<(), CgroupError>;

    /// SIGKILLs every process in the cgroup and below, including
    /// double-forked and `setsid` descendants. Returns once the signals are
    /// sent; wait for [`Backend::is_populated`] to turn false (or for
    /// `populated 0` in [`Backend::events_path`]).
    fn kill(&self, target: Target<'_>) -> Result<(), CgroupError>;

    /// Freezes every process in the cgroup and below.
    fn freeze(&self, target: Target<'_>) -> Result<(), CgroupError>;

    /// Thaws what [`Backend::freeze`] froze.
    fn thaw(&self, target: Target<'_>) -> Result<(), CgroupError>;

    /// True while any process is in the cgroup or below it. A cgroup that
    /// does not exist is not populated.
    fn is_populated(&self, target: Target<'_>) -> Result<bool, CgroupError>;

    /// The pids (thread-group ids) in the cgroup and below, sorted.
    fn pids(&self, target: Target<'_>) -> Result<Vec<i32>, CgroupError>;

    /// Removes the cgroup. For a group, also every process leaf under it.
    /// Missing cgroups are fine; a populated one gives [`CgroupError::Busy`].
    fn remove(&self, target: Target<'_>) -> Result<(), CgroupError>;

    /// Removes `<root>/<top>` and everything below it that holds no process
    /// (the daemon's own leaf stays while the daemon is in it). For shutdown.
    fn remove_all(&self) -> Result<(), CgroupError>;

    /// Kill every process left in this daemon's tree by a previous run that
    /// died without stopping its programs, then remove the stale cgroups.
    /// Returns how many processes were killed. (The daemon's own leaf is spared.)
    fn kill_stale(&self) -> Result<usize, CgroupError> {
        Ok(0)
    }

    /// [`kill_stale`](Backend::kill_stale), except that the process leaves in
    /// `spare` (programs adopted after a crash, `adopt_orphans=true`) keep
    /// their processes and their cgroups.
    fn kill_stale_sparing(&self, spare: &[Target<'_>]) -> Result<usize, CgroupError> {
        let _ = spare;
        self.kill_stale()
    }

    /// Processes killed by the OOM killer in this cgroup (and below) since it
    /// was created; 0 when the host has no memory controller for it.
    fn oom_kills(&self, target: Target<'_>) -> Result<u64, CgroupError>;

    /// The file that reports `populated 0` when the cgroup empties (cgroup2
    /// `cgroup.events`; watch it with inotify `IN_MODIFY`). `None` on v1-only
    /// and no-cgroup hosts: poll [`Backend::is_populated`] there.
    fn events_path(&self, target: Target<'_>) -> Option<PathBuf>;

    /// The cgroup path shown to users (`/…/corral/<group>/<process>`, as in
    /// `/proc/PID/cgroup`), taken from the membership hierarchy.
    fn path(&self, target: Target<'_>) -> String;

    /// Current kernel readings for the cgroup (and below).
    fn readings(&self, target: Target<'_>) -> Result<CgroupReadings, CgroupError>;
}

/// How the daemon's subtree is placed; see the module docs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenOptions {
    /// `cgroup_root=` from `[supervisord]`: a path inside every hierarchy
    /// (e.g. `/corral.slice`) used instead of the daemon's own cgroup.
    pub cgroup_root: Option<PathBuf>,
    /// The directory the daemon owns under the root; [`DEFAULT_TOP`] unless
    /// two daemons (or tests) share one root.
    pub top: String,
}

impl Default for OpenOptions {
    fn default() -> Self {
        OpenOptions { cgroup_root: None, top: DEFAULT_TOP.to_string() }
    }
}

/// Builds the backend for a detected [`Setup`].
///
/// Fails when the setup has cgroups but the daemon cannot use them (not
/// writable, not permitted); [`open_or_none`] turns that into a [`NoneBackend`].
pub fn open(setup: &Setup, options: &OpenOptions) -> Result<Box<dyn Backend>, CgroupError> {
    validate_name(&options.top)?;
    match setup.mode {
        Mode::Unified => {
            let unified = setup.unified.as_ref().ok_or_else(|| missing("cgroup2"))?;
            Ok(Box::new(UnifiedBackend::new(unified, options, Mode::Unified)?))
        }
        Mode::Hybrid => {
            let unified = setup.unified.as_ref().ok_or_else(|| missing("cgroup2"))?;
            Ok(Box::new(HybridBackend::new(unified, &setup.legacy, options)?))
        }
        Mode::Legacy => Ok(Box::new(LegacyBackend::new(&setup.legacy, options, true)?)),
        Mode::None => Ok(Box::new(NoneBackend::new(
            setup.reason.clone().unwrap_or_else(|| "no cgroup filesystem is mounted".to_string()),
        ))),
    }
}

/// [`open`], falling back to a [`NoneBackend`] that carries the reason (for
/// the one warning the daemon logs, and for `corralctl version`).
pub fn open_or_none(setup: &Setup, options: &OpenOptions) -> Box<dyn Backend> {
    open(setup, options).unwrap_or_else(|err| Box::new(NoneBackend::new(err.to_string())))
}

fn missing(what: &str) -> CgroupError {
    CgroupError::NoCgroups { reason: format!("the detected setup has no {what} hierarchy") }
}

/// Errors from cgroup operations. I/O errors carry the operation and path.
#[derive(Debug, thiserror::Error)]
pub enum CgroupError {
    /// A file operation on cgroupfs or /proc failed.
    #[error("cannot {op} {path}: {source}")]
    Io {
        /// What was being done (`write`, `mkdir`, `rmdir`, ...).
        op: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// The kernel's answer.
        #[source]
        source: io::Error,
    },
    /// A limit this host cannot enforce.
    #[error("{option}: {reason}")]
    Unsupported {
        /// The config option (`memory_max`, `cpu_quota`, ...).
        option: &'static str,
        /// Why it cannot be enforced here.
        reason: String,
    },
    /// A cgroup still holds processes where it must be empty.
    #[error("cgroup {path} still has processes in it")]
    Busy {
        /// The cgroup directory.
        path: PathBuf,
    },
    /// A group, process or top name that cannot be a cgroup directory.
    #[error("{name:?} cannot be used as a cgroup name: {reason}")]
    InvalidName {
        /// The offending name.
        name: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A kernel file did not have the expected format.
    #[error("unexpected content in {path}: {what}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// What was wrong.
        what: String,
    },
    /// The host offers no usable cgroups.
    #[error("cgroups are not available: {reason}")]
    NoCgroups {
        /// Why (no cgroupfs, read-only, not permitted).
        reason: String,
    },
}

impl CgroupError {
    /// True when the error is an I/O error of this kind.
    pub fn is_io_kind(&self, kind: io::ErrorKind) -> bool {
        matches!(self, CgroupError::Io { source, .. } if source.kind() == kind)
    }
}

/// Controller names, v1 and cgroup2: a directory named `<controller>.<x>`
/// could clash with an interface file.
const CONTROLLER_NAMES: &[&str] = &[
    "cpu",
    "cpuacct",
    "cpuset",
    "io",
    "blkio",
    "memory",
    "devices",
    "pids",
    "freezer",
    "net_cls",
    "net_prio",
    "perf_event",
    "hugetlb",
    "rdma",
    "misc",
];

/// The directory name for a group or process name, escaped as systemd
/// escapes unit cgroups: a `_` prefix when the name starts with `_` or `.`,
/// is a v1 interface file (`tasks`, `notify_on_release`, `release_agent`),
/// starts with `cgroup.`, or looks like `<controller>.<file>`. Without it a
/// program called `tasks` would collide with v1's `tasks` file.
pub fn escape_name(name: &str) -> std::borrow::Cow<'_, str> {
    let clashes = name.starts_with('_')
        || name.starts_with('.')
        || matches!(name, "notify_on_release" | "release_agent" | "tasks")
        || name.starts_with("cgroup.")
        || name.rsplit_once('.').is_some_and(|(prefix, _)| CONTROLLER_NAMES.contains(&prefix));
    if clashes {
        std::borrow::Cow::Owned(format!("_{name}"))
    } else {
        std::borrow::Cow::Borrowed(name)
    }
}

/// Checks that a name is one usable path component.
fn validate_name(name: &str) -> Result<(), CgroupError> {
    let reason = if name.is_empty() {
        "it is empty"
    } else if name == "." || name == ".." {
        "it is a relative directory"
    } else if name.contains('/') {
        "it contains '/'"
    } else if name.contains('\n') || name.contains('\0') {
        "it contains a newline or NUL"
    } else {
        return Ok(());
    };
    Err(CgroupError::InvalidName { name: name.to_string(), reason })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_that_are_not_one_component_are_refused() {
        for bad in ["", ".", "..", "a/b", "a\nb"] {
            assert!(validate_name(bad).is_err(), "{bad:?} accepted");
        }
        validate_name("web_00").expect("plain name");
        validate_name("a.b:c").expect("dots and colons are fine");
    }

    #[test]
    fn names_that_clash_with_interface_files_are_escaped() {
        for (name, dir) in [
            ("tasks", "_tasks"),
            ("cgroup.procs", "_cgroup.procs"),
            ("memory.max", "_memory.max"),
            ("_x", "__x"),
            (".hidden", "_.hidden"),
            ("web", "web"),
            ("web.1", "web.1"),
            ("tasks2", "tasks2"),
        ] {
            assert_eq!(escape_name(name), dir, "{name}");
        }
        assert_eq!(
            Target::Process { group: "tasks", process: "memory.max" }.rel(),
            PathBuf::from("_tasks/_memory.max")
        );
    }

    #[test]
    fn join_in_child_writes_zero_to_every_fd() {
        let dir = tempfile::tempdir().expect("tempdir");
        let paths = [dir.path().join("a"), dir.path().join("b")];
        let files: Vec<std::fs::File> =
            paths.iter().map(|p| std::fs::File::create(p).expect("create")).collect();
        let fds: Vec<RawFd> = files.iter().map(AsRawFd::as_raw_fd).collect();
        join_in_child(&fds).expect("write");
        for p in &paths {
            assert_eq!(std::fs::read_to_string(p).expect("read"), "0");
        }
    }

    #[test]
    fn join_in_child_reports_a_bad_fd() {
        let err = join_in_child(&[-1]).expect_err("bad fd");
        assert_eq!(err.raw_os_error(), Some(libc::EBADF));
    }
}
