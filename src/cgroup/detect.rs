//! Finding the host's cgroup layout from `/proc/self/mountinfo` and
//! `/proc/self/cgroup`.
//!
//! Detection is a pure function of those two texts, so tests describe a fake
//! tree in a temp dir by writing mount points that live there.

use std::path::{Path, PathBuf};

use super::{CgroupError, Mode};

/// v1 controllers the kernel knows; anything else in a cgroup mount's super
/// options (`rw`, `name=systemd`, `clone_children`, ...) is an option.
const V1_CONTROLLERS: &[&str] = &[
    "cpu",
    "cpuacct",
    "cpuset",
    "memory",
    "devices",
    "freezer",
    "net_cls",
    "blkio",
    "perf_event",
    "net_prio",
    "hugetlb",
    "pids",
    "rdma",
    "misc",
];

/// One mounted cgroup hierarchy and the daemon's place in it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hierarchy {
    /// Where it is mounted (e.g. `/sys/fs/cgroup/memory`).
    pub mount: PathBuf,
    /// v1: the controllers bound to it; cgroup2: empty (read
    /// `cgroup.controllers` for what it offers).
    pub controllers: Vec<String>,
    /// The daemon's own cgroup, relative to the hierarchy root, starting with
    /// `/` (from `/proc/self/cgroup`, minus the mount's own root).
    pub own: String,
    /// Mounted read-only.
    pub read_only: bool,
}

impl Hierarchy {
    /// The daemon's own cgroup directory.
    pub fn own_dir(&self) -> PathBuf {
        join_cgroup_path(&self.mount, &self.own)
    }

    /// True when this v1 hierarchy carries `controller`.
    pub fn has(&self, controller: &str) -> bool {
        self.controllers.iter().any(|c| c == controller)
    }
}

/// The detected layout.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Setup {
    /// Which backend fits.
    pub mode: Mode,
    /// The cgroup2 hierarchy, if one is mounted.
    pub unified: Option<Hierarchy>,
    /// The v1 hierarchies that carry at least one controller.
    pub legacy: Vec<Hierarchy>,
    /// For [`Mode::None`]: why.
    pub reason: Option<String>,
}

/// Reads this process's mountinfo and cgroup membership and detects the layout.
pub fn detect_host() -> Result<Setup, CgroupError> {
    let read = |path: &str| {
        std::fs::read_to_string(path).map_err(|source| CgroupError::Io {
            op: "read",
            path: PathBuf::from(path),
            source,
        })
    };
    Ok(detect(&read("/proc/self/mountinfo")?, &read("/proc/self/cgroup")?))
}

/// Detects the layout from the text of `/proc/self/mountinfo` and
/// `/proc/self/cgroup`.
///
/// Unified: a cgroup2 mount and no v1 controller mounts. Hybrid: both.
/// Legacy: v1 controllers only. None: nothing mounted, or every candidate
/// mount is read-only (as in many containers).
pub fn detect(mountinfo: &str, proc_cgroup: &str) -> Setup {
    let memberships = parse_proc_cgroup(proc_cgroup);
    let mut unified = None;
    let mut legacy: Vec<Hierarchy> = Vec::new();
    for mount in mountinfo.lines().filter_map(parse_mountinfo_line) {
        match mount.fstype.as_str() {
            "cgroup2" if unified.is_none() => {
                let own = own_path(&memberships, None, &mount.root);
                unified = Some(Hierarchy {
                    mount: mount.point,
                    controllers: Vec::new(),
                    own,
                    read_only: mount.read_only,
                });
            }
            "cgroup" => {
                let controllers: Vec<String> = mount
                    .super_options
                    .split(',')
                    .filter(|o| V1_CONTROLLERS.contains(o))
                    .map(str::to_string)
                    .collect();
                // Named hierarchies (name=systemd) carry no controller; a
                // hierarchy mounted twice is used once.
                if controllers.is_empty() || legacy.iter().any(|h| h.controllers == controllers) {
                    continue;
                }
                let own = own_path(&memberships, Some(&controllers), &mount.root);
                legacy.push(Hierarchy { mount: mount.point, controllers, own, read_only: mount.read_only });
            }
            _ => {}
        }
    }

    let writable_v2 = unified.as_ref().is_some_and(|h| !h.read_only);
    let writable_v1 = legacy.iter().any(|h| !h.read_only);
    let (mode, reason) = match (unified.is_some(), !legacy.is_empty()) {
        (false, false) => (Mode::None, Some("no cgroup filesystem is mounted".to_string())),
        _ if !writable_v2 && !writable_v1 => {
            (Mode::None, Some("every cgroup filesystem is mounted read-only".to_string()))
        }
        (true, false) => (Mode::Unified, None),
        (true, true) if writable_v2 => (Mode::Hybrid, None),
        // A read-only cgroup2 next to writable v1 controllers: v1 alone.
        _ => (Mode::Legacy, None),
    };
    if mode == Mode::Legacy {
        unified = None;
    }
    Setup { mode, unified, legacy, reason }
}

/// One line of `/proc/self/cgroup`: hierarchy controllers and path.
struct Membership {
    controllers: Vec<String>,
    path: String,
}

fn parse_proc_cgroup(text: &str) -> Vec<Membership> {
    text.lines()
        .filter_map(|line| {
            let mut fields = line.splitn(3, ':');
            let _id = fields.next()?;
            let controllers = fields.next()?;
            let path = fields.next()?;
            Some(Membership {
                controllers: controllers.split(',').filter(|c| !c.is_empty()).map(str::to_string).collect(),
                path: path.to_string(),
            })
        })
        .collect()
}

/// The daemon's path in a hierarchy: the `/proc/self/cgroup` line whose
/// controller list matches (`None` = the cgroup2 line, `0::`), made relative
/// to the mount's root (a container may mount a subtree).
fn own_path(memberships: &[Membership], controllers: Option<&[String]>, mount_root: &str) -> String {
    let found = memberships.iter().find(|m| match controllers {
        None => m.controllers.is_empty(),
        Some(wanted) => {
            let mut have: Vec<&str> = m.controllers.iter().map(String::as_str).collect();
            let mut want: Vec<&str> = wanted.iter().map(String::as_str).collect();
            have.sort_unstable();
            want.sort_unstable();
            have == want
        }
    });
    let path = found.map_or("/", |m| m.path.as_str());
    // A cgroup outside the namespace's view reads as "/.."; treat it as the root.
    if path.starts_with("/..") {
        return "/".to_string();
    }
    let relative = match mount_root {
        "/" => path,
        root => path.strip_prefix(root).unwrap_or(path),
    };
    if relative.is_empty() {
        "/".to_string()
    } else {
        relative.to_string()
    }
}

struct MountLine {
    root: String,
    point: PathBuf,
    read_only: bool,
    fstype: String,
    super_options: String,
}

/// Parses `id parent maj:min root point options [optional...] - fstype source super`.
fn parse_mountinfo_line(line: &str) -> Option<MountLine> {
    let (left, right) = line.split_once(" - ")?;
    let left: Vec<&str> = left.split(' ').collect();
    let right: Vec<&str> = right.split(' ').collect();
    let root = unescape_mountinfo(left.get(3)?);
    let point = unescape_mountinfo(left.get(4)?);
    let options = left.get(5)?;
    Some(MountLine {
        root,
        point: PathBuf::from(point),
        read_only: options.split(',').any(|o| o == "ro"),
        fstype: right.first()?.to_string(),
        super_options: right.get(2).unwrap_or(&"").to_string(),
    })
}

/// mountinfo escapes space, tab, newline and backslash as `\ooo`.
fn unescape_mountinfo(field: &str) -> String {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let escaped = bytes
            .get(i + 1..i + 4)
            .filter(|_| bytes[i] == b'\\')
            .and_then(|digits| std::str::from_utf8(digits).ok())
            .and_then(|digits| u8::from_str_radix(digits, 8).ok());
        match escaped {
            Some(value) => {
                out.push(value);
                i += 4;
            }
            None => {
                out.push(bytes[i]);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// `mount` + a cgroup path that starts with `/`.
pub(crate) fn join_cgroup_path(mount: &Path, cgroup: &str) -> PathBuf {
    let relative = cgroup.trim_start_matches('/');
    if relative.is_empty() {
        mount.to_path_buf()
    } else {
        mount.join(relative)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HYBRID_MOUNTINFO: &str = "\
22 1 8:1 / / rw,relatime - ext4 /dev/sda1 rw
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
33 31 0:30 / /sys/fs/cgroup/cpuacct rw,relatime - cgroup cgroup rw,cpuacct
34 31 0:31 / /sys/fs/cgroup/cpuset rw,relatime - cgroup cgroup rw,cpuset
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
37 31 0:34 / /sys/fs/cgroup/freezer rw,relatime - cgroup cgroup rw,freezer
39 31 0:36 / /sys/fs/cgroup/pids rw,relatime - cgroup cgroup rw,pids
40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,name=systemd
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
";
    const HYBRID_CGROUP: &str = "\
9:name=systemd:/
8:pids:/
6:freezer:/
4:memory:/process_api/3e4d
3:cpuset:/
2:cpuacct:/
1:cpu:/
0::/
";

    #[test]
    fn hybrid_layout_is_found_with_own_paths() {
        let setup = detect(HYBRID_MOUNTINFO, HYBRID_CGROUP);
        assert_eq!(setup.mode, Mode::Hybrid);
        let unified = setup.unified.expect("cgroup2");
        assert_eq!(unified.mount, PathBuf::from("/sys/fs/cgroup/unified"));
        assert_eq!(unified.own, "/");
        let memory = setup.legacy.iter().find(|h| h.has("memory")).expect("memory hierarchy");
        assert_eq!(memory.own, "/process_api/3e4d");
        assert_eq!(memory.own_dir(), PathBuf::from("/sys/fs/cgroup/memory/process_api/3e4d"));
        assert!(
            !setup.legacy.iter().any(|h| h.mount.ends_with("systemd")),
            "named hierarchy without controllers is not a v1 controller mount"
        );
        assert_eq!(setup.legacy.len(), 6);
    }

    #[test]
    fn unified_layout_is_found() {
        let mountinfo = "\
25 1 0:23 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:4 - cgroup2 cgroup2 rw,nsdelegate,memory_recursiveprot
";
        let setup = detect(mountinfo, "0::/system.slice/corral.service\n");
        assert_eq!(setup.mode, Mode::Unified);
        let unified = setup.unified.expect("cgroup2");
        assert_eq!(unified.own, "/system.slice/corral.service");
        assert!(setup.legacy.is_empty());
    }

    #[test]
    fn legacy_layout_with_comounted_cpu_cpuacct() {
        let mountinfo = "\
30 25 0:26 / /sys/fs/cgroup/cpu,cpuacct rw - cgroup cgroup rw,cpu,cpuacct
31 25 0:27 / /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory
";
        let setup = detect(mountinfo, "3:cpuacct,cpu:/a\n2:memory:/b\n");
        assert_eq!(setup.mode, Mode::Legacy);
        assert!(setup.unified.is_none());
        let cpu = setup.legacy.iter().find(|h| h.has("cpu")).expect("cpu");
        assert!(cpu.has("cpuacct"));
        assert_eq!(cpu.own, "/a", "controller order in /proc/self/cgroup may differ");
    }

    #[test]
    fn nothing_mounted_is_none() {
        let setup = detect("22 1 8:1 / / rw - ext4 /dev/sda1 rw\n", "0::/\n");
        assert_eq!(setup.mode, Mode::None);
        assert!(setup.reason.expect("reason").contains("no cgroup"));
    }

    #[test]
    fn read_only_cgroupfs_is_none() {
        let mountinfo = "25 1 0:23 / /sys/fs/cgroup ro,nosuid - cgroup2 cgroup2 rw\n";
        let setup = detect(mountinfo, "0::/\n");
        assert_eq!(setup.mode, Mode::None);
        assert!(setup.reason.expect("reason").contains("read-only"));
    }

    #[test]
    fn container_subtree_mount_is_made_relative() {
        let mountinfo = "25 1 0:23 /docker/abc /sys/fs/cgroup rw - cgroup2 cgroup2 rw\n";
        let setup = detect(mountinfo, "0::/docker/abc/app\n");
        assert_eq!(setup.unified.expect("cgroup2").own, "/app");
        let setup = detect(mountinfo, "0::/docker/abc\n");
        assert_eq!(setup.unified.expect("cgroup2").own, "/");
    }

    #[test]
    fn escaped_mount_points_are_decoded() {
        let mountinfo = "25 1 0:23 / /tmp/a\\040b rw - cgroup2 cgroup2 rw\n";
        let setup = detect(mountinfo, "0::/\n");
        assert_eq!(setup.unified.expect("cgroup2").mount, PathBuf::from("/tmp/a b"));
    }
}
