//! Small cgroupfs file operations that attach the path and operation to errors.

use std::fs;
use std::io::{self, Write};
use std::os::fd::OwnedFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use super::CgroupError;

pub(crate) fn io_err(op: &'static str, path: &Path) -> impl FnOnce(io::Error) -> CgroupError {
    let path = path.to_path_buf();
    move |source| CgroupError::Io { op, path, source }
}

/// Writes `value` to a cgroup file in one `write(2)`, as the kernel expects.
/// The file must exist: cgroupfs does not create interface files.
pub(crate) fn write(path: &Path, value: &str) -> Result<(), CgroupError> {
    let mut file = fs::OpenOptions::new()
        .write(true)
        .truncate(true)
        .open(path)
        .map_err(io_err("open for writing", path))?;
    file.write_all(value.as_bytes()).map_err(io_err("write", path))
}

pub(crate) fn read(path: &Path) -> Result<String, CgroupError> {
    fs::read_to_string(path).map_err(io_err("read", path))
}

/// Reads a file, `None` when it does not exist (controller absent).
pub(crate) fn read_optional(path: &Path) -> Result<Option<String>, CgroupError> {
    match fs::read_to_string(path) {
        Ok(text) => Ok(Some(text)),
        Err(err) if err.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(CgroupError::Io { op: "read", path: path.to_path_buf(), source }),
    }
}

/// Reads a file holding one unsigned number (`max` reads as `u64::MAX`).
pub(crate) fn read_u64_optional(path: &Path) -> Result<Option<u64>, CgroupError> {
    let Some(text) = read_optional(path)? else {
        return Ok(None);
    };
    let text = text.trim();
    if text == "max" {
        return Ok(Some(u64::MAX));
    }
    text.parse().map(Some).map_err(|_| CgroupError::Parse {
        path: path.to_path_buf(),
        what: format!("expected a number, found {text:?}"),
    })
}

/// The value of `key` in a flat-keyed file (`key value` per line).
pub(crate) fn keyed_value(text: &str, key: &str) -> Option<u64> {
    text.lines().find_map(|line| {
        let (k, v) = line.split_once(' ')?;
        (k == key).then(|| v.trim().parse().ok()).flatten()
    })
}

/// What [`make_dir`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Made {
    /// The directory is new.
    Created,
    /// It was already there.
    Existed,
    /// Its parent is missing.
    NoParent,
}

impl Made {
    /// `self`, or the error of a `mkdir` of `path` whose parent is missing.
    pub(crate) fn require(self, path: &Path) -> Result<Made, CgroupError> {
        match self {
            Made::NoParent => Err(CgroupError::Io {
                op: "mkdir",
                path: path.to_path_buf(),
                source: io::Error::from(io::ErrorKind::NotFound),
            }),
            made => Ok(made),
        }
    }
}

/// Creates a directory in one `mkdir(2)` and says what happened, so a caller
/// that usually finds the parent in place needs no `stat` first.
pub(crate) fn make_dir(path: &Path) -> Result<Made, CgroupError> {
    match fs::create_dir(path) {
        Ok(()) => {
            #[cfg(test)]
            fake_kernel::populate(path);
            Ok(Made::Created)
        }
        Err(err) if err.kind() == io::ErrorKind::AlreadyExists => Ok(Made::Existed),
        Err(err) if err.kind() == io::ErrorKind::NotFound => Ok(Made::NoParent),
        Err(source) => Err(CgroupError::Io { op: "mkdir", path: path.to_path_buf(), source }),
    }
}

/// Creates a directory; an existing one is fine.
pub(crate) fn mkdir(path: &Path) -> Result<(), CgroupError> {
    make_dir(path)?.require(path).map(drop)
}

/// Creates `path` and its missing parents (for a `cgroup_root=` that does
/// not exist yet).
pub(crate) fn mkdir_all(path: &Path) -> Result<(), CgroupError> {
    let mut missing: Vec<&Path> = path.ancestors().take_while(|p| !p.exists()).collect();
    missing.reverse();
    missing.into_iter().try_for_each(mkdir)
}

/// Removes a cgroup directory. Missing is fine; a populated cgroup (EBUSY)
/// is [`CgroupError::Busy`].
///
/// On cgroupfs a cgroup directory is removed with its interface files by one
/// `rmdir`. A plain directory (a fake tree in tests) needs its files removed
/// first, which this does only when `rmdir` says it is not empty and no
/// subdirectory is left.
pub(crate) fn rmdir(path: &Path) -> Result<(), CgroupError> {
    match fs::remove_dir(path) {
        Ok(()) => Ok(()),
        Err(err) if err.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(err) if err.raw_os_error() == Some(libc::EBUSY) => {
            Err(CgroupError::Busy { path: path.to_path_buf() })
        }
        Err(err) if err.raw_os_error() == Some(libc::ENOTEMPTY) && !is_cgroupfs(path) => {
            remove_plain_files(path)?;
            fs::remove_dir(path).map_err(io_err("rmdir", path))
        }
        Err(source) => Err(CgroupError::Io { op: "rmdir", path: path.to_path_buf(), source }),
    }
}

/// Removes a cgroup directory and every cgroup below it, deepest first.
pub(crate) fn rmdir_tree(path: &Path) -> Result<(), CgroupError> {
    for child in subdirs(path)? {
        rmdir_tree(&child)?;
    }
    rmdir(path)
}

/// What a stale-kill under `top` takes when the leaves in `spare` must stay:
/// every group directory holding no spared leaf, and the other leaves of the
/// groups that hold one. `skip` is a top-level name left alone (the daemon's leaf).
pub(crate) fn stale_dirs(
    top: &Path,
    spare: &[PathBuf],
    skip: Option<&str>,
) -> Result<Vec<PathBuf>, CgroupError> {
    let mut stale = Vec::new();
    for group in subdirs(top)? {
        if skip.is_some_and(|s| group.file_name().is_some_and(|n| n == s)) {
            continue;
        }
        if !spare.iter().any(|s| s.parent() == Some(group.as_path())) {
            stale.push(group);
            continue;
        }
        stale.extend(subdirs(&group)?.into_iter().filter(|leaf| !spare.contains(leaf)));
    }
    Ok(stale)
}

/// The subdirectories (child cgroups) of a cgroup directory; none if missing.
pub(crate) fn subdirs(path: &Path) -> Result<Vec<PathBuf>, CgroupError> {
    let entries = match fs::read_dir(path) {
        Ok(entries) => entries,
        Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(source) => return Err(CgroupError::Io { op: "list", path: path.to_path_buf(), source }),
    };
    let mut dirs = Vec::new();
    for entry in entries {
        let entry = entry.map_err(io_err("list", path))?;
        let kind = entry.file_type().map_err(io_err("stat", &entry.path()))?;
        if kind.is_dir() {
            dirs.push(entry.path());
        }
    }
    dirs.sort();
    Ok(dirs)
}

/// Reads the pids in `cgroup.procs` of `dir` and every cgroup below it.
pub(crate) fn pids_recursive(dir: &Path, out: &mut Vec<i32>) -> Result<(), CgroupError> {
    let procs = dir.join("cgroup.procs");
    if let Some(text) = read_optional(&procs)? {
        for line in text.lines() {
            let pid = line.trim().parse().map_err(|_| CgroupError::Parse {
                path: procs.clone(),
                what: format!("expected a pid, found {line:?}"),
            })?;
            out.push(pid);
        }
    }
    for child in subdirs(dir)? {
        pids_recursive(&child, out)?;
    }
    Ok(())
}

/// Opens `cgroup.procs` write-only and close-on-exec for the spawner.
pub(crate) fn open_procs(dir: &Path) -> Result<OwnedFd, CgroupError> {
    let path = dir.join("cgroup.procs");
    fs::OpenOptions::new()
        .write(true)
        .custom_flags(libc::O_CLOEXEC)
        .open(&path)
        .map(OwnedFd::from)
        .map_err(io_err("open for writing", &path))
}

/// Opens a cgroup directory for `clone3(CLONE_INTO_CGROUP)`.
pub(crate) fn open_dir(dir: &Path) -> Result<OwnedFd, CgroupError> {
    fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_DIRECTORY | libc::O_CLOEXEC)
        .open(dir)
        .map(OwnedFd::from)
        .map_err(io_err("open", dir))
}

/// SIGKILLs every pid; a pid that is already gone is fine.
/// SIGKILL everything below `dirs` (repeatedly, so processes forked meanwhile
/// die too) until no pid is left or `timeout` passes; returns how many pids were seen.
pub(crate) fn kill_trees(dirs: &[PathBuf], timeout: std::time::Duration) -> Result<usize, CgroupError> {
    let start = std::time::Instant::now();
    let mut seen = std::collections::BTreeSet::new();
    loop {
        let mut pids = Vec::new();
        for d in dirs {
            if d.exists() {
                pids_recursive(d, &mut pids)?;
            }
        }
        if pids.is_empty() || start.elapsed() > timeout {
            return Ok(seen.len());
        }
        seen.extend(pids.iter().copied());
        kill_all(&pids)?;
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
}

pub(crate) fn kill_all(pids: &[i32]) -> Result<(), CgroupError> {
    for &pid in pids {
        // SAFETY: kill(2) has no memory-safety preconditions.
        if unsafe { libc::kill(pid, libc::SIGKILL) } != 0 {
            let err = io::Error::last_os_error();
            if err.raw_os_error() != Some(libc::ESRCH) {
                return Err(CgroupError::Io {
                    op: "SIGKILL",
                    path: PathBuf::from(format!("/proc/{pid}")),
                    source: err,
                });
            }
        }
    }
    Ok(())
}

fn is_cgroupfs(path: &Path) -> bool {
    use nix::sys::statfs::{statfs, CGROUP2_SUPER_MAGIC, CGROUP_SUPER_MAGIC};
    statfs(path).is_ok_and(|fs| {
        let magic = fs.filesystem_type();
        magic == CGROUP_SUPER_MAGIC || magic == CGROUP2_SUPER_MAGIC
    })
}

fn remove_plain_files(path: &Path) -> Result<(), CgroupError> {
    for entry in fs::read_dir(path).map_err(io_err("list", path))? {
        let entry = entry.map_err(io_err("list", path))?;
        let kind = entry.file_type().map_err(io_err("stat", &entry.path()))?;
        if !kind.is_dir() {
            fs::remove_file(entry.path()).map_err(io_err("remove", &entry.path()))?;
        }
    }
    Ok(())
}

/// In unit tests the "cgroupfs" is a plain temp dir: a new directory gets
/// the interface files its parent has, with the kernel's initial contents,
/// as the kernel would create them.
#[cfg(test)]
mod fake_kernel {
    use std::fs;
    use std::path::Path;

    pub(super) fn populate(dir: &Path) {
        if super::is_cgroupfs(dir) {
            return;
        }
        let Some(Ok(entries)) = dir.parent().map(fs::read_dir) else {
            return;
        };
        for entry in entries.flatten() {
            if entry.file_type().is_ok_and(|t| t.is_file()) {
                let name = entry.file_name();
                let initial = match name.to_str() {
                    Some("cgroup.events") => "populated 0\nfrozen 0\n",
                    Some("freezer.state") => "THAWED\n",
                    _ => "",
                };
                let _ = fs::write(dir.join(&name), initial);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sparing_stale_kill_takes_everything_but_the_spared_leaves_and_the_daemon() {
        let dir = tempfile::tempdir().expect("tempdir");
        let top = dir.path();
        for d in ["daemon", "web/web_0", "web/web_1", "old/old", "db/db"] {
            fs::create_dir_all(top.join(d)).expect("mkdir");
        }
        let spare = vec![top.join("web/web_0"), top.join("db/db")];
        let mut stale = stale_dirs(top, &spare, Some("daemon")).expect("stale");
        stale.sort();
        assert_eq!(stale, vec![top.join("old"), top.join("web/web_1")]);
        assert_eq!(stale_dirs(top, &[], None).expect("stale").len(), 4);
    }

    #[test]
    fn keyed_values_are_found_by_exact_key() {
        let text = "oom 3\noom_kill 2\noom_group_kill 0\n";
        assert_eq!(keyed_value(text, "oom_kill"), Some(2));
        assert_eq!(keyed_value(text, "oom"), Some(3));
        assert_eq!(keyed_value(text, "missing"), None);
    }

    #[test]
    fn rmdir_of_missing_dir_is_fine_and_fake_dirs_lose_their_files() {
        let tmp = tempfile::tempdir().expect("tempdir");
        rmdir(&tmp.path().join("nope")).expect("missing is fine");
        let dir = tmp.path().join("g");
        fs::create_dir_all(dir.join("p")).expect("mkdir");
        fs::write(dir.join("p/cgroup.procs"), "").expect("write");
        rmdir_tree(&dir).expect("remove tree");
        assert!(!dir.exists());
    }
}
