//! Cgroup backends against the real kernel: placement before exec, kill of
//! escaped descendants, OOM kills and task limits.
//!
//! Needs root and a writable cgroupfs. Without them each test prints why and
//! passes, unless `CORRAL_REQUIRE_CGROUPS=1` (CI), where it fails instead.
//! Every test makes its own subtree (`<own cgroup>/corral-test-<pid>-<name>`)
//! so tests and parallel runs never share a cgroup, and a guard kills and
//! removes everything it made, even when an assertion fails.

use std::collections::BTreeMap;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use corral::cgroup::{self, join_in_child, Backend, Mode, OomWatch, OpenOptions, Target};
use corral::config::model::Limits;
use corral::stats::{self, CpuSampler};

const DEADLINE: Duration = Duration::from_secs(20);

/// Opens the host's backend under a subtree private to this test, or says
/// why the test cannot run.
fn backend_for(test: &str) -> Option<Box<dyn Backend>> {
    let required = std::env::var("CORRAL_REQUIRE_CGROUPS").is_ok_and(|v| v == "1");
    let skip = |reason: String| {
        assert!(!required, "CORRAL_REQUIRE_CGROUPS=1 but {reason}");
        eprintln!("skipping {test}: {reason}");
        None
    };
    if !nix::unistd::geteuid().is_root() {
        return skip("not running as root".to_string());
    }
    let setup = match cgroup::detect_host() {
        Ok(setup) => setup,
        Err(err) => return skip(err.to_string()),
    };
    if setup.mode == Mode::None {
        return skip(format!("no usable cgroups: {:?}", setup.reason));
    }
    let options =
        OpenOptions { cgroup_root: None, top: format!("corral-test-{}-{test}", std::process::id()) };
    match cgroup::open(&setup, &options) {
        Ok(backend) => Some(backend),
        Err(err) => skip(err.to_string()),
    }
}

/// Kills and reaps what a test started and removes its cgroups, on every exit path.
struct Guard {
    backend: Box<dyn Backend>,
    children: Vec<Child>,
    /// Groups this test spawned into (only these are killed on cleanup:
    /// other tests run in parallel).
    groups: Vec<String>,
}

impl Guard {
    fn new(backend: Box<dyn Backend>) -> Guard {
        Guard { backend, children: Vec::new(), groups: Vec::new() }
    }

    /// Spawns `sh -c script` straight into a fresh leaf of `group/process`,
    /// tagged with a marker in its environment that every descendant inherits.
    fn spawn(&mut self, group: &str, process: &str, limits: &Limits, script: &str) -> u32 {
        if !self.groups.iter().any(|g| g == group) {
            self.groups.push(group.to_string());
        }
        self.backend.prepare_group(group, &Limits::default()).expect("prepare group");
        let placement = self.backend.prepare_process(group, process, limits).expect("prepare process");
        let fds = placement.raw_fds();
        let mut command = Command::new("sh");
        command
            .args(["-c", script])
            .env("CORRAL_TEST_MARK", marker(group))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        // SAFETY: join_in_child only calls write(2) on descriptors the
        // placement keeps open until after spawn; nothing is allocated.
        unsafe {
            command.pre_exec(move || join_in_child(&fds));
        }
        let child = command.spawn().expect("spawn");
        drop(placement);
        let pid = child.id();
        self.children.push(child);
        pid
    }

    fn wait_last(&mut self) -> std::process::ExitStatus {
        self.children.last_mut().expect("a child").wait().expect("wait")
    }

    fn wait_until_empty(&self, target: Target<'_>) -> bool {
        let start = Instant::now();
        while start.elapsed() < DEADLINE {
            if !self.backend.is_populated(target).unwrap_or(false) {
                return true;
            }
            std::thread::yield_now();
            std::thread::sleep(Duration::from_millis(5));
        }
        false
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        for child in &mut self.children {
            let _ = child.kill();
        }
        // Kill whatever is left under the test's subtree, group by group.
        let groups = self.groups.clone();
        for group in &groups {
            let _ = self.backend.kill(Target::Group(group));
        }
        // Anything that escaped its cgroup (a failing test) still carries
        // the marker in its environment.
        for group in &groups {
            for pid in marked_processes(group).keys() {
                // SAFETY: kill(2) has no memory-safety preconditions.
                unsafe { libc::kill(*pid, libc::SIGKILL) };
            }
        }
        for child in &mut self.children {
            let _ = child.wait();
        }
        for group in &groups {
            self.wait_until_empty(Target::Group(group));
            if let Err(err) = self.backend.remove(Target::Group(group)) {
                eprintln!("cleanup: {err}");
            }
        }
        if let Err(err) = self.backend.remove_all() {
            eprintln!("cleanup: {err}");
        }
    }
}

fn marker(group: &str) -> String {
    format!("{}-{group}", std::process::id())
}

/// Pids whose environment carries this test's marker, with their command
/// names (descendants, including ones reparented after `setsid`).
fn marked_processes(group: &str) -> BTreeMap<i32, String> {
    let needle = format!("CORRAL_TEST_MARK={}", marker(group));
    let mut found = BTreeMap::new();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return found;
    };
    for entry in entries.flatten() {
        let Some(pid) = entry.file_name().to_str().and_then(|n| n.parse::<i32>().ok()) else {
            continue;
        };
        let Ok(environ) = std::fs::read(format!("/proc/{pid}/environ")) else {
            continue;
        };
        if environ.split(|&b| b == 0).any(|var| var == needle.as_bytes()) {
            let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
            found.insert(pid, comm.trim().to_string());
        }
    }
    found
}

/// True once the pid is gone or a zombie (dead, waiting for its reaper).
fn is_dead(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(stat) => stat.rsplit_once(')').is_some_and(|(_, rest)| rest.trim_start().starts_with('Z')),
    }
}

fn poll_until(what: &str, mut done: impl FnMut() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(start.elapsed() < DEADLINE, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

#[test]
fn double_forked_and_setsid_descendants_are_placed_and_killed() {
    let Some(backend) = backend_for("escape") else {
        return;
    };
    let mut guard = Guard::new(backend);
    let target = Target::Process { group: "escape", process: "p" };
    let leader = guard.spawn(
        "escape",
        "p",
        &Limits::default(),
        r#"sleep 300 & setsid sh -c "sleep 300 &" ; sleep 300"#,
    );
    // Three sleeps: the background one, the setsid orphan, the foreground one.
    poll_until("three sleeps", || {
        marked_processes("escape").values().filter(|c| c.as_str() == "sleep").count() == 3
    });
    let marked = marked_processes("escape");
    let in_cgroup = guard.backend.pids(target).expect("pids");
    let path = guard.backend.path(target);
    assert!(path.ends_with("/escape/p"), "{path}");
    for (pid, comm) in &marked {
        assert!(in_cgroup.contains(pid), "{comm} ({pid}) escaped: cgroup has {in_cgroup:?}");
        let membership =
            std::fs::read_to_string(format!("/proc/{pid}/cgroup")).expect("read /proc/PID/cgroup");
        for line in membership.lines() {
            let (_, rest) = line.split_once(':').expect("id");
            let (controllers, cgroup) = rest.split_once(':').expect("path");
            // Where corral puts every process: cgroup2 (on hybrid hosts v1 hierarchies
            // only for limits, none set here).
            let ours = match guard.backend.mode() {
                Mode::Hybrid => controllers.is_empty(),
                Mode::Legacy => matches!(controllers, "memory" | "cpu" | "pids"),
                _ => controllers.is_empty(),
            };
            if ours && guard.backend.mode() != Mode::None {
                assert!(cgroup.ends_with("/escape/p"), "{comm} ({pid}) is in {controllers}:{cgroup}");
            }
        }
    }
    assert!(marked.contains_key(&(leader as i32)));
    assert!(guard.backend.is_populated(target).expect("populated"));

    guard.backend.kill(target).expect("kill");
    assert!(guard.wait_until_empty(target), "cgroup still populated after kill");
    let status = guard.wait_last();
    assert_eq!(status.signal(), Some(libc::SIGKILL), "{status:?}");
    for (pid, comm) in &marked {
        poll_until(&format!("{comm} ({pid}) to die"), || is_dead(*pid));
    }
    if let Some(events) = guard.backend.events_path(target) {
        let text = std::fs::read_to_string(&events).expect("events");
        assert!(text.contains("populated 0"), "{text}");
    }
    guard.backend.remove(target).expect("remove leaf");
}

#[test]
fn memory_max_gets_the_program_oom_killed_and_counted() {
    let Some(backend) = backend_for("oom") else {
        return;
    };
    let limits = Limits { memory_max: Some(32 << 20), ..Limits::default() };
    if let Err(err) = backend.check_limits(&limits) {
        assert!(!std::env::var("CORRAL_REQUIRE_CGROUPS").is_ok_and(|v| v == "1"), "{err}");
        eprintln!("skipping: {err}");
        return;
    }
    let mut guard = Guard::new(backend);
    let target = Target::Process { group: "oom", process: "p" };
    let mut watch = OomWatch::new();
    // tail keeps a newline-less input in memory: 200 MB against a 32 MB limit.
    guard.spawn("oom", "p", &limits, "head -c 200M /dev/zero | tail");
    let status = guard.wait_last();
    assert!(!status.success(), "200 MB fit in 32 MB? {status:?}");
    let kills = guard.backend.oom_kills(target).expect("oom kills");
    assert!(kills >= 1, "oom_kills = {kills}, status {status:?}");
    assert!(watch.oom_killed_since_last(guard.backend.as_ref(), target).expect("watch"));
    let readings = guard.backend.readings(target).expect("readings");
    if let Some(peak) = readings.memory_peak {
        assert!(peak <= (32 << 20) + (1 << 20), "peak {peak} above the limit");
        eprintln!("oom: {kills} kill(s), peak {} KiB", peak / 1024);
    }
}

#[test]
fn tasks_max_limits_forks() {
    let Some(backend) = backend_for("tasks") else {
        return;
    };
    let limits = Limits { tasks_max: Some(8), ..Limits::default() };
    if let Err(err) = backend.check_limits(&limits) {
        assert!(!std::env::var("CORRAL_REQUIRE_CGROUPS").is_ok_and(|v| v == "1"), "{err}");
        eprintln!("skipping: {err}");
        return;
    }
    let mut guard = Guard::new(backend);
    let target = Target::Process { group: "tasks", process: "p" };
    // dash gives up ("Cannot fork") at the first refused fork.
    guard.spawn("tasks", "p", &limits, "i=0; while [ $i -lt 20 ]; do sleep 300 & i=$((i+1)); done; exit 0");
    let status = guard.wait_last();
    assert!(!status.success(), "20 forks under tasks_max=8: {status:?}");
    let left = guard.backend.pids(target).expect("pids");
    assert!(!left.is_empty() && left.len() <= 8, "{} tasks: {left:?}", left.len());
    if let Some(tasks) = guard.backend.readings(target).expect("readings").tasks {
        assert!(tasks <= 8, "pids.current = {tasks}");
    }
    guard.backend.kill(target).expect("kill");
    assert!(guard.wait_until_empty(target));
}

#[test]
fn stats_and_cpu_percent_come_from_the_cgroup() {
    let Some(backend) = backend_for("stats") else {
        return;
    };
    let mut guard = Guard::new(backend);
    let target = Target::Process { group: "stats", process: "p" };
    // A busy loop plus an idle child: two tasks, one burning CPU.
    let pid = guard.spawn("stats", "p", &Limits::default(), "sleep 300 & while :; do :; done") as i32;
    poll_until("two tasks", || guard.backend.pids(target).map(|p| p.len()).unwrap_or(0) == 2);
    let mut sampler = CpuSampler::new();
    let first = stats::read_process(guard.backend.as_ref(), target, Some(pid)).expect("stats");
    assert!(sampler.sample(&first, Instant::now()).is_none(), "needs two readings");
    let start = Instant::now();
    let mut percent = None;
    while percent.is_none_or(|p: f64| p < 1.0) && start.elapsed() < DEADLINE {
        std::thread::sleep(Duration::from_millis(200));
        let next = stats::read_process(guard.backend.as_ref(), target, Some(pid)).expect("stats");
        percent = sampler.sample(&next, Instant::now());
    }
    let percent = percent.expect("cpu percent");
    assert!(percent > 20.0 && percent < 130.0, "busy loop at {percent:.1}% CPU");
    let reading = stats::read_process(guard.backend.as_ref(), target, Some(pid)).expect("stats");
    assert_eq!(reading.processes, Some(2), "{reading:?}");
    assert!(reading.rss_bytes.is_some_and(|r| r > 0), "{reading:?}");
    assert!(reading.open_fds.is_some_and(|n| n >= 3), "{reading:?}");
    assert!(reading.memory_current.is_some_and(|m| m > 0), "{reading:?}");
    assert_eq!(reading.cgroup.as_deref(), Some(guard.backend.path(target).as_str()));
    let group = stats::read_group(guard.backend.as_ref(), "stats").expect("group stats");
    assert_eq!(group.processes, Some(2), "{group:?}");
    eprintln!("stats: busy loop at {percent:.1}% CPU; {reading:?}");
    guard.backend.kill(target).expect("kill");
    assert!(guard.wait_until_empty(target));
}

#[test]
fn freeze_stops_and_thaw_resumes() {
    let Some(backend) = backend_for("freeze") else {
        return;
    };
    let mut guard = Guard::new(backend);
    let target = Target::Process { group: "freeze", process: "p" };
    let pid = guard.spawn("freeze", "p", &Limits::default(), "while :; do :; done") as i32;
    guard.backend.freeze(target).expect("freeze");
    let state = || {
        std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .ok()
            .and_then(|s| s.rsplit_once(')').map(|(_, r)| r.trim_start().chars().next()))
            .flatten()
    };
    poll_until("frozen task to sleep", || matches!(state(), Some('S' | 'D')));
    guard.backend.thaw(target).expect("thaw");
    poll_until("thawed task to run", || state() == Some('R'));
    guard.backend.kill(target).expect("kill");
    assert!(guard.wait_until_empty(target));
}
