//! Every program in its own cgroup, on the real kernel: stops leave nothing
//! behind, limits hold, OOM kills are reported, stats come from the kernel.
//! Needs root and a writable cgroupfs; with `CORRAL_REQUIRE_CGROUPS=1` (CI) a
//! missing cgroupfs fails instead of skipping.

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::*;
use dxr::Value;
use nix::sys::signal::Signal;

fn cgroups_usable() -> bool {
    let ok = nix::unistd::Uid::effective().is_root()
        && std::fs::read_to_string("/proc/self/mountinfo").map(|m| m.contains(" cgroup")).unwrap_or(false);
    if !ok {
        if std::env::var_os("CORRAL_REQUIRE_CGROUPS").is_some() {
            panic!(
                "CORRAL_REQUIRE_CGROUPS is set but this run has no usable cgroupfs (root: {})",
                nix::unistd::Uid::effective().is_root()
            );
        }
        skip("needs root and a writable cgroupfs");
    }
    ok
}

/// Every live process whose cgroup (any hierarchy) is `path` or below it.
fn processes_in(path: &str) -> Vec<i32> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else { continue };
        let Ok(cg) = std::fs::read_to_string(format!("/proc/{pid}/cgroup")) else { continue };
        let inside = cg
            .lines()
            .filter_map(|l| l.splitn(3, ':').nth(2))
            .any(|p| p == path || p.starts_with(&format!("{path}/")));
        if inside && alive(i64::from(pid)) {
            out.push(pid);
        }
    }
    out
}

fn cgroup_of(d: &Daemon, name: &str) -> String {
    let path = str_of(&d.call("corral.getProcessCgroup", vec![s(name)]));
    assert!(!path.is_empty(), "{name} has a cgroup");
    path
}

/// A shell with a background child and a double-forked, setsid'd daemon.
const ESCAPER: &str = "sh -c 'sleep 1001 & setsid sh -c \"sleep 1002 &\"; exec sleep 1003'";

/// The escaper's tree once it has settled: its three `sleep`s (the shells in
/// between exec or exit on their own, so they are not waited for).
fn wait_for_tree(d: &Daemon, name: &str) -> (String, Vec<i32>) {
    d.wait_state(name, "RUNNING");
    let path = cgroup_of(d, name);
    let sleeps = || {
        processes_in(&path)
            .into_iter()
            .filter(|p| std::fs::read_to_string(format!("/proc/{p}/comm")).is_ok_and(|c| c.trim() == "sleep"))
            .collect::<Vec<i32>>()
    };
    wait_for("the three sleeps of the tree in the cgroup", DEADLINE, || sleeps().len() >= 3);
    let pids = sleeps();
    (path, pids)
}

#[test]
fn stop_leaves_no_process_behind_not_even_a_setsid_daemon() {
    if !cgroups_usable() {
        return;
    }
    let d = Daemon::start(&format!("[program:tree]\ncommand={ESCAPER}\nstartsecs=1\nstopwaitsecs=2\n"));
    let (path, pids) = wait_for_tree(&d, "tree");
    d.call("supervisor.stopProcess", vec![s("tree")]);
    assert_eq!(d.state("tree"), "STOPPED");
    for pid in &pids {
        assert!(!alive(i64::from(*pid)), "pid {pid} survived the stop");
    }
    assert!(processes_in(&path).is_empty(), "nothing left in {path}");
}

#[test]
fn restart_replaces_the_whole_tree() {
    if !cgroups_usable() {
        return;
    }
    let d = Daemon::start(&format!("[program:tree]\ncommand={ESCAPER}\nstartsecs=1\nstopwaitsecs=2\n"));
    let (_, before) = wait_for_tree(&d, "tree");
    d.call("supervisor.stopProcess", vec![s("tree")]);
    d.call("supervisor.startProcess", vec![s("tree")]);
    let (_, after) = wait_for_tree(&d, "tree");
    for pid in &before {
        assert!(!alive(i64::from(*pid)), "old pid {pid} survived the restart");
        assert!(!after.contains(pid));
    }
}

#[test]
fn daemon_sigterm_leaves_no_process_behind() {
    if !cgroups_usable() {
        return;
    }
    let mut d = Daemon::start(&format!("[program:tree]\ncommand={ESCAPER}\nstartsecs=1\nstopwaitsecs=2\n"));
    let (path, pids) = wait_for_tree(&d, "tree");
    d.signal(Signal::SIGTERM);
    assert_eq!(d.wait_exit(), Some(0));
    for pid in &pids {
        assert!(!alive(i64::from(*pid)), "pid {pid} survived the daemon");
    }
    assert!(processes_in(&path).is_empty());
}

#[test]
fn leftovers_of_a_crashed_main_process_are_cleaned_before_the_restart() {
    if !cgroups_usable() {
        return;
    }
    let d = Daemon::start(&format!(
        "[program:tree]\ncommand={ESCAPER}\nstartsecs=1\nstopwaitsecs=2\nautorestart=true\n"
    ));
    let (path, before) = wait_for_tree(&d, "tree");
    let main = d.pid("tree");
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(main as i32), Signal::SIGKILL).unwrap();
    wait_for("a new main pid", DEADLINE, || {
        let p = d.pid("tree");
        p != 0 && p != main && d.state("tree") == "RUNNING"
    });
    for pid in &before {
        assert!(
            !alive(i64::from(*pid)),
            "leftover {pid} still runs beside the new tree: no duplicate workers"
        );
    }
    wait_for("the new tree", DEADLINE, || processes_in(&path).len() >= 3);
}

#[test]
fn kill_mode_process_keeps_supervisords_behaviour() {
    if !cgroups_usable() {
        return;
    }
    let d = Daemon::start(
        "[program:old]\ncommand=sh -c 'sleep 1004 & exec sleep 1005'\nstartsecs=1\nkill_mode=process\n",
    );
    d.wait_state("old", "RUNNING");
    let path = cgroup_of(&d, "old");
    wait_for("both processes", DEADLINE, || processes_in(&path).len() >= 2);
    let main = d.pid("old") as i32;
    let child: Vec<i32> = processes_in(&path).into_iter().filter(|p| *p != main).collect();
    d.call("supervisor.stopProcess", vec![s("old")]);
    assert!(child.iter().all(|p| alive(i64::from(*p))), "the background child survives, as with supervisord");
    for p in child {
        let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(p), Signal::SIGKILL);
    }
    // Gone before the daemon stops, so it can remove the emptied cgroup.
    wait_for("the survivor to be gone", DEADLINE, || processes_in(&path).is_empty());
}

#[test]
fn memory_max_gets_an_allocation_oom_killed_reported_and_restarted() {
    if !cgroups_usable() {
        return;
    }
    let d = Daemon::start(
        "[program:hog]\ncommand=sh -c 'sleep 0.5; head -c 200M /dev/zero | tail'\nmemory_max=32M\nmemory_swap_max=0\nstartsecs=0\nautorestart=true\n",
    );
    wait_for("an OOM kill", DEADLINE, || int_of(&d.call("corral.getOomKills", vec![s("hog")])) >= 1);
    assert!(d.main_log().contains("oom: hog was killed by the kernel"), "{}", d.main_log());
    wait_for("a restart after the OOM kill", DEADLINE, || {
        let st = struct_of(d.call("corral.getProcessStats", vec![s("hog")]));
        int_of(&st["restarts"]) >= 1
    });
}

#[test]
fn cpu_quota_caps_a_busy_loop() {
    if !cgroups_usable() {
        return;
    }
    let d =
        Daemon::start("[program:spin]\ncommand=sh -c 'while :; do :; done'\ncpu_quota=20%\nstartsecs=0\n");
    d.wait_state("spin", "RUNNING");
    let cpu = |d: &Daemon| {
        let st = struct_of(d.call("corral.getProcessStats", vec![s("spin")]));
        match &st["cpu_seconds"] {
            Value::Double(x) => *x,
            other => panic!("cpu_seconds: {other:?}"),
        }
    };
    std::thread::sleep(Duration::from_millis(500)); // let it settle into its quota
    let (c0, t0) = (cpu(&d), Instant::now());
    std::thread::sleep(Duration::from_secs(3));
    let (c1, t1) = (cpu(&d), Instant::now());
    let share = (c1 - c0) / (t1 - t0).as_secs_f64();
    assert!(share <= 0.25, "a 20% quota allows at most ~25% of a CPU, measured {:.1}%", share * 100.0);
    assert!(share > 0.05, "the loop did run: {:.1}%", share * 100.0);
}

#[test]
fn tasks_max_contains_a_fork_bomb_and_the_daemon_stays_responsive() {
    if !cgroups_usable() {
        return;
    }
    let d = Daemon::start(
        "[program:bomb]\ncommand=sh -c 'while :; do sleep 1000 & done'\ntasks_max=8\nstartsecs=0\nstopwaitsecs=1\n",
    );
    d.wait_state("bomb", "RUNNING");
    let path = cgroup_of(&d, "bomb");
    wait_for("the cgroup to fill up", DEADLINE, || processes_in(&path).len() >= 8);
    std::thread::sleep(Duration::from_millis(300));
    assert!(processes_in(&path).len() <= 8, "tasks_max holds: {}", processes_in(&path).len());
    let t = Instant::now();
    d.call("supervisor.getAllProcessInfo", vec![]);
    assert!(t.elapsed() < Duration::from_secs(5), "the daemon answers while the bomb runs");
    d.call("supervisor.stopProcess", vec![s("bomb")]);
    assert!(processes_in(&path).is_empty(), "the stop takes the whole bomb");
}

/// The memory limit file of a cgroup on this host (cgroup2 or v1 memory).
fn memory_limit_of(display: &str, group_level: bool) -> Option<u64> {
    let rel = if group_level { display.rsplit_once('/').map(|(g, _)| g).unwrap_or(display) } else { display };
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").ok()?;
    for line in mountinfo.lines() {
        let fields: Vec<&str> = line.split(' ').collect();
        let Some(sep) = fields.iter().position(|f| *f == "-") else { continue };
        let (fstype, root, mnt) = (fields[sep + 1], fields[3], fields[4]);
        let super_opts = fields.get(sep + 3).copied().unwrap_or("");
        let file = match fstype {
            "cgroup2" => "memory.max",
            "cgroup" if super_opts.split(',').any(|o| o == "memory") => "memory.limit_in_bytes",
            _ => continue,
        };
        // The display path is relative to the hierarchy root; the daemon's own
        // place differs per hierarchy, so look for the tail under this mount.
        let tail = rel.trim_start_matches('/');
        let mut candidates = vec![std::path::Path::new(mnt).join(tail)];
        if let Some(own) = std::fs::read_to_string("/proc/self/cgroup").ok().and_then(|c| {
            c.lines()
                .find(|l| l.split(':').nth(1).is_some_and(|k| k.split(',').any(|k| k == "memory")))
                .and_then(|l| l.splitn(3, ':').nth(2).map(str::to_string))
        }) {
            let own = own.strip_prefix(root).unwrap_or(&own).trim_start_matches('/').to_string();
            if let Some(idx) = tail.find("corral") {
                candidates.push(std::path::Path::new(mnt).join(&own).join(&tail[idx..]));
            }
        }
        for c in candidates {
            if let Ok(v) = std::fs::read_to_string(c.join(file)) {
                if let Ok(n) = v.trim().parse::<u64>() {
                    return Some(n);
                }
            }
        }
    }
    None
}

#[test]
fn a_group_limit_is_one_budget_for_all_its_workers() {
    if !cgroups_usable() {
        return;
    }
    let d = Daemon::start(
        "[program:w]\ncommand=sleep 1000\nprocess_name=%(program_name)s_%(process_num)d\nnumprocs=4\nstartsecs=0\n\n\
         [group:pool]\nprograms=w\nmemory_max=64M\n",
    );
    for i in 0..4 {
        d.wait_state(&format!("pool:w_{i}"), "RUNNING");
    }
    let paths: Vec<String> = (0..4).map(|i| cgroup_of(&d, &format!("pool:w_{i}"))).collect();
    let parent = paths[0].rsplit_once('/').unwrap().0.to_string();
    assert!(paths.iter().all(|p| p.starts_with(&format!("{parent}/"))), "all workers under one group cgroup");
    assert_eq!(memory_limit_of(&paths[0], true), Some(64 << 20), "the group cgroup carries the shared limit");
}

#[test]
fn limits_change_live_without_a_new_pid() {
    if !cgroups_usable() {
        return;
    }
    let d = Daemon::start("[program:svc]\ncommand=sleep 1000\nstartsecs=0\nmemory_max=64M\n");
    d.wait_state("svc", "RUNNING");
    let pid = d.pid("svc");
    let path = cgroup_of(&d, "svc");
    assert_eq!(memory_limit_of(&path, false), Some(64 << 20));

    // Through the API.
    let changes: std::collections::BTreeMap<String, Value> =
        [("memory_max".to_string(), s("96M"))].into_iter().collect();
    let now = struct_of(d.call("corral.setLimits", vec![s("svc"), Value::Struct(changes)]));
    assert_eq!(str_of(&now["memory_max"]), (96u64 << 20).to_string());
    assert_eq!(memory_limit_of(&path, false), Some(96 << 20));

    // Through the file: reread applies limit-only changes in place.
    let conf = std::fs::read_to_string(&d.conf).unwrap().replace("memory_max=64M", "memory_max=128M");
    std::fs::write(&d.conf, conf).unwrap();
    let diff = d.call("supervisor.reloadConfig", vec![]);
    let changed = array_of(array_of(diff)[0].clone());
    assert!(array_of(changed[1].clone()).is_empty(), "a limit-only change is not a restart");
    assert_eq!(memory_limit_of(&path, false), Some(128 << 20));
    assert_eq!(d.pid("svc"), pid, "same pid after both changes");
}

/// The cgroup of `pid` in the hierarchy that enforces `controller` (cgroup2 when no v1
/// hierarchy carries it).
fn cgroup_for_controller(pid: i64, controller: &str) -> String {
    let text = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
    let v1 = text.lines().find_map(|l| {
        let mut f = l.splitn(3, ':');
        let (_, names, path) = (f.next()?, f.next()?, f.next()?);
        names.split(',').any(|n| n == controller).then(|| path.to_string())
    });
    v1.or_else(|| text.lines().find_map(|l| l.strip_prefix("0::").map(str::to_string))).unwrap_or_default()
}

#[test]
fn a_limit_added_while_running_takes_the_running_program_under_it() {
    if !cgroups_usable() {
        return;
    }
    let d = Daemon::start("[program:svc]\ncommand=sleep 1000\nstartsecs=0\n");
    d.wait_state("svc", "RUNNING");
    let pid = d.pid("svc");
    let changes: std::collections::BTreeMap<String, Value> = [
        ("tasks_max".to_string(), s("16")),
        ("cpu_quota".to_string(), s("50%")),
        ("memory_max".to_string(), s("256M")),
    ]
    .into_iter()
    .collect();
    d.call("corral.setLimits", vec![s("svc"), Value::Struct(changes)]);
    for controller in ["pids", "cpu", "memory"] {
        let cgroup = cgroup_for_controller(pid, controller);
        assert!(cgroup.ends_with("/svc/svc"), "{controller}: the program is in {cgroup}");
    }
    assert_eq!(d.pid("svc"), pid, "no restart");
}

#[test]
fn a_limit_this_host_cannot_enforce_is_refused_at_load() {
    if !cgroups_usable() {
        return;
    }
    // io_weight needs a controller most hybrid hosts lack; where it exists this test has nothing to say.
    let dir = tempfile::tempdir().unwrap();
    let conf = dir.path().join("c.conf");
    std::fs::write(&conf, format!("{}[program:x]\ncommand=sleep 1\nio_weight=500\n", preamble(dir.path())))
        .unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_corrald"))
        .args(["--check-config", "-c"])
        .arg(&conf)
        .output()
        .unwrap();
    // Checking made no cgroup that outlives it (a v1 hierarchy is probed from a
    // directory of corrald's own).
    let top =
        format!("corral-test-{}", dir.path().file_name().unwrap().to_str().unwrap().trim_start_matches('.'));
    let left = cgroup_dirs_named(Path::new("/sys/fs/cgroup"), &top, 4);
    assert!(left.is_empty(), "left behind: {left:?}");
    if out.status.success() {
        return;
    }
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("[program:x] io_weight:"), "the error names the section and option: {err}");
}

/// Directories called `name` under `root`, at most `depth` levels down.
fn cgroup_dirs_named(root: &Path, name: &str, depth: usize) -> Vec<std::path::PathBuf> {
    let mut found = Vec::new();
    let Ok(entries) = std::fs::read_dir(root) else { return found };
    for entry in entries.flatten() {
        let path = entry.path();
        if !entry.file_type().is_ok_and(|t| t.is_dir()) {
            continue;
        }
        if entry.file_name() == name {
            found.push(path);
        } else if depth > 1 {
            found.extend(cgroup_dirs_named(&path, name, depth - 1));
        }
    }
    found
}

#[test]
fn after_corrald_is_killed_a_new_one_replaces_its_orphans_and_none_survives() {
    if !cgroups_usable() {
        return;
    }
    let mut d = Daemon::start(&format!("[program:tree]\ncommand={ESCAPER}\nstartsecs=0\n"));
    let (path, old) = wait_for_tree(&d, "tree");
    d.signal(Signal::SIGKILL);
    d.wait_exit();
    assert!(old.iter().all(|p| alive(i64::from(*p))), "a SIGKILLed daemon cannot stop its programs");
    // Same config, same identifier: the new daemon owns the tree the old one left.
    let text = std::fs::read_to_string(&d.conf).unwrap();
    let dir = std::mem::replace(&mut d.dir, tempfile::tempdir().unwrap());
    let d2 = Daemon::start_with(dir, &text);
    let (_, new) = wait_for_tree(&d2, "tree");
    for pid in &old {
        assert!(!alive(i64::from(*pid)), "orphan {pid} of the dead daemon survived");
        assert!(!new.contains(pid));
    }
    assert!(d2.main_log().contains("left running by a previous corrald"), "{}", d2.main_log());
    let _ = path;
}
