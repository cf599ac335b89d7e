//! D-Bus surface: a private system-like `dbus-daemon` with the project's bus
//! policy, corrald on it, driven by the real `busctl` and `gdbus`.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::{wait_for, Daemon, DEADLINE};

const DEST: &str = "org.corral.Corral1";
const MANAGER: &str = "/org/corral/Corral1";
const MANAGER_IF: &str = "org.corral.Corral1.Manager";
const PROGRAM_IF: &str = "org.corral.Corral1.Program";

/// A private bus whose policy is the system bus's defaults plus the project's file.
struct Bus {
    child: Option<Child>,
    dir: tempfile::TempDir,
    address: String,
}

fn have(tool: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .stdout(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

/// Whether the D-Bus tests can run here; reports the skip otherwise.
fn usable() -> bool {
    if !nix::unistd::Uid::effective().is_root() {
        common::skip("D-Bus tests need root (policy by uid, runuser)");
        return false;
    }
    for tool in ["dbus-daemon", "busctl", "gdbus", "runuser", "stdbuf"] {
        if !have(tool) {
            common::skip(&format!("{tool} is not installed"));
            return false;
        }
    }
    true
}

impl Bus {
    fn start() -> Bus {
        let dir = tempfile::Builder::new().prefix("corral-bus").tempdir().expect("bus dir");
        // nobody must reach the socket.
        set_mode(dir.path(), 0o755);
        let policy_dir = dir.path().join("system.d");
        std::fs::create_dir(&policy_dir).expect("policy dir");
        let policy = Path::new(env!("CARGO_MANIFEST_DIR")).join("packaging/dbus/org.corral.Corral1.conf");
        std::fs::copy(&policy, policy_dir.join("org.corral.Corral1.conf")).expect("copy policy");
        let sock = dir.path().join("bus.sock");
        let conf = dir.path().join("bus.conf");
        std::fs::write(&conf, bus_config(&sock, &policy_dir)).expect("bus config");
        let child = Command::new("dbus-daemon")
            .arg(format!("--config-file={}", conf.display()))
            .args(["--nofork", "--nopidfile"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn dbus-daemon");
        let address = format!("unix:path={}", sock.display());
        let bus = Bus { child: Some(child), dir, address };
        wait_for("the bus socket", DEADLINE, || sock.exists());
        bus
    }

    /// corrald on this bus with `programs`.
    fn corrald(&self, programs: &str) -> Daemon {
        let d = Daemon::start_with_args(programs, &["--dbus-address".to_string(), self.address.clone()]);
        wait_for("corrald to own its bus name", DEADLINE, || self.busctl(&["status", DEST]).status.success());
        d
    }

    fn busctl(&self, args: &[&str]) -> Output {
        Command::new("busctl")
            .arg(format!("--address={}", self.address))
            .args(args)
            .output()
            .expect("run busctl")
    }

    /// busctl that must succeed; its stdout.
    fn ok(&self, args: &[&str]) -> String {
        let out = self.busctl(args);
        assert!(out.status.success(), "busctl {args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// `busctl call` on the manager.
    fn manager(&self, method: &str, sig: &str, args: &[&str]) -> String {
        // `--` so negative numbers are arguments, not options.
        let mut v = vec!["call", "--", DEST, MANAGER, MANAGER_IF, method];
        if !sig.is_empty() {
            v.push(sig);
        }
        v.extend_from_slice(args);
        self.ok(&v)
    }

    fn program_prop(&self, path: &str, prop: &str) -> String {
        self.ok(&["get-property", DEST, path, PROGRAM_IF, prop]).trim().to_string()
    }

    /// `gdbus call` on the manager: Ok(stdout) or Err(stderr), which carries the error name.
    fn gdbus(&self, method: &str, args: &[&str]) -> Result<String, String> {
        let out = Command::new("gdbus")
            .args(["call", "--address", &self.address, "--dest", DEST, "--object-path", MANAGER])
            .args(["--method", &format!("{MANAGER_IF}.{method}")])
            .args(args)
            .output()
            .expect("run gdbus");
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).into_owned())
        } else {
            Err(String::from_utf8_lossy(&out.stderr).into_owned())
        }
    }

    /// Start a process whose stdout goes to a file in the bus directory.
    fn watch(&self, name: &str, program: &str, args: &[&str]) -> Watcher {
        let file = self.dir.path().join(name);
        let child = Command::new(program)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::from(std::fs::File::create(&file).expect("watch file")))
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn watcher");
        Watcher { child, file }
    }
}

impl Drop for Bus {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// A monitor process writing to a file; killed on drop.
struct Watcher {
    child: Child,
    file: PathBuf,
}

impl Watcher {
    fn text(&self) -> String {
        std::fs::read_to_string(&self.file).unwrap_or_default()
    }
}

impl Drop for Watcher {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn set_mode(p: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).expect("chmod");
}

/// The stock system bus policy (default deny for method calls and ownership),
/// listening on `sock`, with the project's file included from `policy_dir`.
fn bus_config(sock: &Path, policy_dir: &Path) -> String {
    format!(
        r#"<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>system</type>
  <listen>unix:path={sock}</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow user="*"/>
    <deny own="*"/>
    <deny send_type="method_call"/>
    <allow send_type="signal"/>
    <allow send_requested_reply="true" send_type="method_return"/>
    <allow send_requested_reply="true" send_type="error"/>
    <allow receive_type="method_call"/>
    <allow receive_type="method_return"/>
    <allow receive_type="error"/>
    <allow receive_type="signal"/>
    <allow send_destination="org.freedesktop.DBus" send_interface="org.freedesktop.DBus"/>
    <allow send_destination="org.freedesktop.DBus" send_interface="org.freedesktop.DBus.Introspectable"/>
    <allow send_destination="org.freedesktop.DBus" send_interface="org.freedesktop.DBus.Properties"/>
    <deny send_destination="org.freedesktop.DBus" send_interface="org.freedesktop.DBus"
          send_member="UpdateActivationEnvironment"/>
  </policy>
  <policy user="root">
    <allow send_destination="org.freedesktop.DBus" send_interface="org.freedesktop.DBus.Monitoring"/>
  </policy>
  <includedir>{policy}</includedir>
</busconfig>
"#,
        sock = sock.display(),
        policy = policy_dir.display()
    )
}

const PROGRAMS: &str = "[program:sleeper]\ncommand=sh -c 'echo hello; exec sleep 1000'\nautorestart=false\nstartsecs=0\n\n\
     [program:pool]\ncommand=sleep 1000\nnumprocs=2\nprocess_name=%(program_name)s_%(process_num)d\nstartsecs=0\n\n";

const SLEEPER: &str = "/org/corral/Corral1/program/sleeper";
const POOL0: &str = "/org/corral/Corral1/program/pool_3apool_5f0";

/// `u 123` → 123.
fn number(v: &str) -> u64 {
    v.split_whitespace().last().and_then(|n| n.parse().ok()).unwrap_or_else(|| panic!("not a number: {v}"))
}

#[test]
fn manager_properties_and_queries() {
    if !usable() {
        return;
    }
    let bus = Bus::start();
    let d = bus.corrald(PROGRAMS);
    d.wait_state("sleeper", "RUNNING");
    d.wait_state("pool:pool_1", "RUNNING");

    let prop = |p: &str| bus.ok(&["get-property", DEST, MANAGER, MANAGER_IF, p]).trim().to_string();
    assert_eq!(prop("Version"), format!("s \"{}\"", env!("CARGO_PKG_VERSION")));
    assert_eq!(prop("State"), "s \"RUNNING\"");
    assert!(
        ["unified", "hybrid", "legacy", "none"].iter().any(|m| prop("CgroupMode") == format!("s \"{m}\"")),
        "{}",
        prop("CgroupMode")
    );
    assert!(prop("Identification").starts_with("s \"test-"), "{}", prop("Identification"));

    let list = bus.manager("ListPrograms", "", &[]);
    assert!(list.starts_with("a(ssssuo) 3 "), "{list}");
    for want in ["\"sleeper\" \"sleeper\" \"RUNNING\"", "\"pool:pool_0\" \"pool\"", POOL0, SLEEPER] {
        assert!(list.contains(want), "{want} missing in {list}");
    }
    assert_eq!(bus.manager("ListGroups", "", &[]).trim(), "as 2 \"pool\" \"sleeper\"");
    assert_eq!(bus.manager("GetProgram", "s", &["pool:pool_0"]).trim(), format!("o \"{POOL0}\""));
    assert_eq!(bus.manager("GetProgram", "s", &["sleeper"]).trim(), format!("o \"{SLEEPER}\""));
    let pid = d.pid("sleeper").to_string();
    assert_eq!(bus.manager("GetProgramByPID", "u", &[&pid]).trim(), format!("o \"{SLEEPER}\""));

    // Errors are named and readable.
    let e = bus.gdbus("GetProgram", &["nope"]).expect_err("unknown program");
    assert!(e.contains("org.corral.Corral1.Error.BadName") && e.contains("BAD_NAME"), "{e}");
    let e = bus.gdbus("GetProgramByPID", &["1"]).expect_err("pid 1 is not a program");
    assert!(e.contains("org.corral.Corral1.Error.BadName"), "{e}");

    // ReadLog: bytes of the stdout log; a bad stream is BadArguments.
    let log = bus.manager("ReadLog", "ssxx", &["sleeper", "stdout", "0", "0"]);
    assert_eq!(log.trim(), "ay 6 104 101 108 108 111 10");
    let tail = bus.manager("ReadLog", "ssxx", &["sleeper", "stdout", "-3", "0"]);
    assert_eq!(tail.trim(), "ay 3 108 111 10");
    let e = bus.gdbus("ReadLog", &["sleeper", "stdin", "0", "0"]).expect_err("bad stream");
    assert!(e.contains("org.corral.Corral1.Error.BadArguments"), "{e}");
}

#[test]
fn manager_methods_control_programs() {
    if !usable() {
        return;
    }
    let bus = Bus::start();
    let d = bus.corrald(PROGRAMS);
    d.wait_state("sleeper", "RUNNING");

    bus.manager("StopProgram", "sb", &["sleeper", "true"]);
    assert_eq!(d.state("sleeper"), "STOPPED");
    let e = bus.gdbus("StopProgram", &["sleeper", "true"]).expect_err("not running");
    assert!(e.contains("org.corral.Corral1.Error.NotRunning"), "{e}");
    bus.manager("StartProgram", "sb", &["sleeper", "true"]);
    assert_eq!(d.state("sleeper"), "RUNNING");
    let e = bus.gdbus("StartProgram", &["sleeper", "true"]).expect_err("already started");
    assert!(e.contains("org.corral.Corral1.Error.AlreadyStarted"), "{e}");
    let e = bus.gdbus("StartProgram", &["ghost", "true"]).expect_err("bad name");
    assert!(e.contains("org.corral.Corral1.Error.BadName"), "{e}");

    let before = d.pid("sleeper");
    bus.manager("RestartProgram", "s", &["sleeper"]);
    d.wait_state("sleeper", "RUNNING");
    assert_ne!(d.pid("sleeper"), before, "restart gives a new process");

    // Kill: main only, then every process of the cgroup; bad inputs are named errors.
    let e = bus.gdbus("KillProgram", &["sleeper", "main", "NOTASIGNAL"]).expect_err("bad signal");
    assert!(e.contains("org.corral.Corral1.Error.BadSignal"), "{e}");
    let e = bus.gdbus("KillProgram", &["sleeper", "some", "TERM"]).expect_err("bad whom");
    assert!(e.contains("org.corral.Corral1.Error.BadArguments"), "{e}");
    bus.manager("KillProgram", "sss", &["sleeper", "main", "TERM"]);
    d.wait_state("sleeper", "EXITED");
    bus.manager("StartProgram", "sb", &["sleeper", "true"]);
    bus.manager("KillProgram", "sss", &["sleeper", "all", "KILL"]);
    d.wait_state("sleeper", "EXITED");

    // Groups: one result per process (code 80 = success).
    let stopped = bus.manager("StopGroup", "sb", &["pool", "true"]);
    assert_eq!(stopped.matches(" 80 \"OK\"").count(), 2, "{stopped}");
    assert_eq!(d.state("pool:pool_0"), "STOPPED");
    let started = bus.manager("StartGroup", "sb", &["pool", "true"]);
    assert_eq!(started.matches(" 80 \"OK\"").count(), 2, "{started}");
    assert_eq!(d.state("pool:pool_1"), "RUNNING");

    // Freeze/thaw and limits need cgroups; without them they fail with a named error.
    let mode = bus.ok(&["get-property", DEST, MANAGER, MANAGER_IF, "CgroupMode"]);
    let with_cgroups = !mode.contains("\"none\"");
    let frozen = bus.gdbus("FreezeProgram", &["pool:pool_0"]);
    let thawed = bus.gdbus("ThawProgram", &["pool:pool_0"]);
    let limited =
        bus.gdbus("SetProgramLimits", &["pool:pool_0", "{'tasks_max': <'64'>, 'cpu_quota': <uint32 50>}"]);
    if with_cgroups {
        frozen.expect("freeze");
        thawed.expect("thaw");
        limited.expect("set limits");
        assert_eq!(bus.program_prop(POOL0, "TasksMax"), "t 64");
        assert_eq!(bus.program_prop(POOL0, "CPUQuotaPercent"), "u 50");
    } else {
        assert!(frozen.expect_err("no cgroups").contains("org.corral.Corral1.Error."));
        assert!(limited.is_err());
    }
    let e =
        bus.gdbus("SetProgramLimits", &["pool:pool_0", "{'colour': <'red'>}"]).expect_err("unknown limit");
    assert!(e.contains("org.corral.Corral1.Error.BadArguments") && e.contains("colour"), "{e}");
}

#[test]
fn reread_and_update_add_and_remove_objects() {
    if !usable() {
        return;
    }
    let bus = Bus::start();
    let d = bus.corrald(PROGRAMS);
    d.wait_state("sleeper", "RUNNING");
    assert_eq!(bus.manager("Reread", "", &[]).trim(), "asasas 0 0 0");

    let monitor = bus.watch(
        "new-removed.txt",
        "stdbuf",
        &["-oL", "gdbus", "monitor", "--address", &bus.address, "--dest", DEST, "--object-path", MANAGER],
    );
    std::thread::sleep(Duration::from_millis(500));
    let text = std::fs::read_to_string(&d.conf).expect("read config");
    let extra = "\n[program:extra]\ncommand=sleep 1000\nstartsecs=0\n";
    std::fs::write(&d.conf, format!("{text}{extra}")).expect("add program");
    assert_eq!(bus.manager("Reread", "", &[]).trim(), "asasas 1 \"extra\" 0 0");
    assert_eq!(bus.manager("Update", "", &[]).trim(), "asasas 1 \"extra\" 0 0");
    let extra_path = "/org/corral/Corral1/program/extra";
    wait_for("the extra object", DEADLINE, || bus.ok(&["tree", DEST]).contains(extra_path));
    d.wait_state("extra", "RUNNING");
    assert_eq!(bus.program_prop(extra_path, "StateName"), "s \"RUNNING\"");
    wait_for("ProgramNew", DEADLINE, || monitor.text().contains("ProgramNew ('extra'"));

    std::fs::write(&d.conf, &text).expect("remove program");
    assert_eq!(bus.manager("Update", "", &[]).trim(), "asasas 0 0 1 \"extra\"");
    wait_for("the extra object to vanish", DEADLINE, || !bus.ok(&["tree", DEST]).contains(extra_path));
    wait_for("ProgramRemoved", DEADLINE, || monitor.text().contains("ProgramRemoved ('extra'"));
    assert!(bus.gdbus("GetProgram", &["extra"]).is_err());
}

#[test]
fn introspection_documents_every_member_and_is_valid_xml() {
    if !usable() {
        return;
    }
    let bus = Bus::start();
    let d = bus.corrald(PROGRAMS);
    d.wait_state("sleeper", "RUNNING");

    let manager = bus.ok(&["introspect", DEST, MANAGER, MANAGER_IF]);
    for member in [
        ".ListPrograms",
        ".ListGroups",
        ".GetProgram ",
        ".GetProgramByPID",
        ".StartProgram",
        ".StopProgram",
        ".RestartProgram",
        ".KillProgram",
        ".FreezeProgram",
        ".ThawProgram",
        ".StartGroup",
        ".StopGroup",
        ".Reread",
        ".Update",
        ".Reexec",
        ".SetProgramLimits",
        ".ReadLog",
        ".Version",
        ".State ",
        ".CgroupMode",
        ".Identification",
        ".ProgramNew",
        ".ProgramRemoved",
        ".ProgramStateChanged",
        ".ProgramOOM",
    ] {
        assert!(manager.contains(member), "{member} missing:\n{manager}");
    }
    let line = manager.lines().find(|l| l.starts_with(".ProgramStateChanged")).unwrap_or_default();
    assert_eq!(
        line.split_whitespace().take(3).collect::<Vec<_>>(),
        [".ProgramStateChanged", "signal", "sossub"]
    );
    let program = bus.ok(&["introspect", DEST, SLEEPER, PROGRAM_IF]);
    for member in [
        ".Start ",
        ".Stop ",
        ".Restart ",
        ".Kill ",
        ".Freeze ",
        ".Thaw ",
        ".Name ",
        ".Group ",
        ".State ",
        ".StateName",
        ".Pid ",
        ".Description",
        ".StartTimestamp",
        ".StopTimestamp",
        ".ExitStatus",
        ".SpawnError",
        ".Restarts",
        ".OOMKills",
        ".ControlGroup",
        ".MemoryCurrent",
        ".MemoryPeak",
        ".CPUUsageNSec",
        ".TasksCurrent",
        ".MemoryMax",
        ".MemoryHigh",
        ".MemorySwapMax",
        ".CPUQuotaPercent",
        ".CPUWeight",
        ".IOWeight",
        ".TasksMax",
    ] {
        assert!(program.contains(member), "{member} missing:\n{program}");
    }
    // Every property can be read (stats are read on demand).
    let all = bus.ok(&["call", DEST, SLEEPER, "org.freedesktop.DBus.Properties", "GetAll", "s", PROGRAM_IF]);
    assert!(all.starts_with("a{sv} 24 "), "{all}");
    assert!(number(&bus.program_prop(SLEEPER, "Pid")) > 0);
    assert!(number(&bus.program_prop(SLEEPER, "StartTimestamp")) > 1_600_000_000_000_000);
    assert_eq!(bus.program_prop(SLEEPER, "State"), "u 20");
    assert_eq!(bus.program_prop(SLEEPER, "Name"), "s \"sleeper\"");
    assert_eq!(bus.program_prop(POOL0, "Name"), "s \"pool:pool_0\"");
    assert_eq!(bus.program_prop(POOL0, "Group"), "s \"pool\"");

    // gdbus parses the XML (and fails on invalid XML); so does Python when present.
    for path in [MANAGER, SLEEPER] {
        let out = Command::new("gdbus")
            .args(["introspect", "--address", &bus.address, "--dest", DEST, "--object-path", path])
            .output()
            .expect("gdbus introspect");
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let xml = bus.ok(&["call", DEST, path, "org.freedesktop.DBus.Introspectable", "Introspect"]);
        let xml = busctl_string(&xml);
        assert!(xml.contains("<node") && xml.contains("</node>"), "{xml}");
        if have("python3") {
            let mut py = Command::new("python3")
                .args(["-c", "import sys, xml.dom.minidom; xml.dom.minidom.parseString(sys.stdin.read())"])
                .stdin(Stdio::piped())
                .spawn()
                .expect("python3");
            use std::io::Write;
            py.stdin.take().expect("stdin").write_all(xml.as_bytes()).expect("write xml");
            assert!(py.wait().expect("python3").success(), "invalid XML:\n{xml}");
        }
    }

    // Program methods work on the object itself.
    bus.ok(&["call", DEST, SLEEPER, PROGRAM_IF, "Stop", "b", "true"]);
    assert_eq!(d.state("sleeper"), "STOPPED");
    bus.ok(&["call", DEST, SLEEPER, PROGRAM_IF, "Start", "b", "true"]);
    assert_eq!(d.state("sleeper"), "RUNNING");
    let pid = d.pid("sleeper");
    bus.ok(&["call", DEST, SLEEPER, PROGRAM_IF, "Restart"]);
    d.wait_state("sleeper", "RUNNING");
    assert_ne!(d.pid("sleeper"), pid);
    bus.ok(&["call", DEST, SLEEPER, PROGRAM_IF, "Kill", "ss", "main", "TERM"]);
    d.wait_state("sleeper", "EXITED");
    let with_cgroups =
        !bus.ok(&["get-property", DEST, MANAGER, MANAGER_IF, "CgroupMode"]).contains("\"none\"");
    if with_cgroups {
        bus.ok(&["call", DEST, POOL0, PROGRAM_IF, "Freeze"]);
        bus.ok(&["call", DEST, POOL0, PROGRAM_IF, "Thaw"]);
    }
}

/// The text of a `busctl call` answer `s "..."` (with busctl's C escapes undone).
fn busctl_string(out: &str) -> String {
    let s = out.trim().strip_prefix("s \"").and_then(|s| s.strip_suffix('"')).unwrap_or(out);
    s.replace("\\n", "\n").replace("\\\"", "\"").replace("\\\\", "\\")
}

#[test]
fn monitors_see_state_changes_and_property_changes() {
    if !usable() {
        return;
    }
    let bus = Bus::start();
    let d = bus.corrald(PROGRAMS);
    d.wait_state("sleeper", "RUNNING");
    let busctl =
        bus.watch("busctl-monitor.txt", "busctl", &[&format!("--address={}", bus.address), "monitor", DEST]);
    let gdbus = bus.watch(
        "gdbus-monitor.txt",
        "stdbuf",
        &["-oL", "gdbus", "monitor", "--address", &bus.address, "--dest", DEST],
    );
    // Both monitors are subscribed once they have seen a first signal.
    std::thread::sleep(Duration::from_secs(1));
    bus.manager("StopProgram", "sb", &["sleeper", "true"]);
    // Changes less than a coalescing window apart are merged into one signal.
    std::thread::sleep(Duration::from_millis(300));
    bus.manager("StartProgram", "sb", &["sleeper", "true"]);

    wait_for("busctl monitor to see the signals", DEADLINE, || {
        let t = busctl.text();
        t.contains("Member=ProgramStateChanged") && t.contains("Member=PropertiesChanged")
    });
    let seen = |t: &str| {
        t.contains("ProgramStateChanged ('sleeper', objectpath '/org/corral/Corral1/program/sleeper', 'STOPPING', 'STOPPED'")
            && t.contains("'RUNNING'")
            && t.contains("org.freedesktop.DBus.Properties.PropertiesChanged ('org.corral.Corral1.Program'")
            && t.contains("'StateName': <'STOPPED'>")
            && t.contains("'StateName': <'RUNNING'>")
    };
    let start = Instant::now();
    while !seen(&gdbus.text()) && start.elapsed() < DEADLINE {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(seen(&gdbus.text()), "gdbus monitor saw:\n{}", gdbus.text());
}

#[test]
fn unprivileged_users_read_but_cannot_control() {
    if !usable() {
        return;
    }
    let bus = Bus::start();
    let d = bus.corrald(PROGRAMS);
    d.wait_state("sleeper", "RUNNING");
    let nobody = |args: &[&str]| {
        Command::new("runuser")
            .args(["-u", "nobody", "--", "busctl", &format!("--address={}", bus.address)])
            .args(args)
            .output()
            .expect("runuser busctl")
    };
    let read = nobody(&["get-property", DEST, SLEEPER, PROGRAM_IF, "StateName"]);
    assert!(read.status.success(), "{}", String::from_utf8_lossy(&read.stderr));
    assert_eq!(String::from_utf8_lossy(&read.stdout).trim(), "s \"RUNNING\"");
    let all = nobody(&["call", DEST, MANAGER, "org.freedesktop.DBus.Properties", "GetAll", "s", MANAGER_IF]);
    assert!(all.status.success(), "{}", String::from_utf8_lossy(&all.stderr));
    let intro = nobody(&["introspect", DEST, MANAGER]);
    assert!(intro.status.success(), "{}", String::from_utf8_lossy(&intro.stderr));

    for call in [
        vec!["call", DEST, MANAGER, MANAGER_IF, "StartProgram", "sb", "sleeper", "true"],
        vec!["call", DEST, MANAGER, MANAGER_IF, "StopProgram", "sb", "sleeper", "true"],
        vec!["call", DEST, MANAGER, MANAGER_IF, "ListPrograms"],
        vec!["call", DEST, SLEEPER, PROGRAM_IF, "Stop", "b", "true"],
    ] {
        let out = nobody(&call);
        assert!(!out.status.success(), "{call:?} was allowed");
        assert!(String::from_utf8_lossy(&out.stderr).contains("Access denied"), "{call:?}: {:?}", out);
    }
    // gdbus shows the error name.
    let out = Command::new("runuser")
        .args(["-u", "nobody", "--", "gdbus", "call", "--address", &bus.address, "--dest", DEST])
        .args([
            "--object-path",
            MANAGER,
            "--method",
            &format!("{MANAGER_IF}.StartProgram"),
            "sleeper",
            "true",
        ])
        .output()
        .expect("runuser gdbus");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("org.freedesktop.DBus.Error.AccessDenied"),
        "{out:?}"
    );
    assert_eq!(d.state("sleeper"), "RUNNING", "nothing changed");
}

#[test]
fn a_crash_loop_does_not_flood_the_bus() {
    if !usable() {
        return;
    }
    let bus = Bus::start();
    let d = bus.corrald(
        "[program:crasher]\ncommand=sh -c 'sleep 0.02; exit 3'\nstartsecs=0\nautorestart=true\nstartretries=1000000\n\n",
    );
    let path = "/org/corral/Corral1/program/crasher";
    let monitor = bus.watch("flood.txt", "busctl", &[&format!("--address={}", bus.address), "monitor", DEST]);
    std::thread::sleep(Duration::from_secs(1));
    let restarts_before = number(&bus.program_prop(path, "Restarts"));
    let seen_before = monitor.text().matches("Member=ProgramStateChanged").count();
    let started = Instant::now();
    std::thread::sleep(Duration::from_secs(2));
    let restarts = number(&bus.program_prop(path, "Restarts")) - restarts_before;
    let window = started.elapsed();
    let text = monitor.text();
    let state_signals = text.matches("Member=ProgramStateChanged").count() - seen_before;
    // The daemon still answers both surfaces promptly.
    let t = Instant::now();
    bus.ok(&["get-property", DEST, MANAGER, MANAGER_IF, "Version"]);
    d.info("crasher");
    assert!(t.elapsed() < Duration::from_secs(5), "slow answers: {:?}", t.elapsed());

    // At most one signal per program per 100 ms window (+2 for the edges and
    // the time spent reading the counters).
    let bound = (window.as_millis() / 100) as usize + 5;
    assert!(restarts >= 20, "only {restarts} crashes in {window:?}: no flood to control");
    assert!(state_signals >= 2, "no signals at all");
    assert!(
        state_signals <= bound,
        "{state_signals} ProgramStateChanged in {window:?} for {restarts} crashes"
    );
    let props = text.matches("Member=PropertiesChanged").count();
    eprintln!(
        "{restarts} crashes, {state_signals} ProgramStateChanged, {props} PropertiesChanged in {window:?}"
    );
    assert!(props <= bound + seen_before + 5, "{props} PropertiesChanged");
}

#[test]
fn without_a_bus_corrald_logs_one_line_and_runs_on() {
    let d = Daemon::start_with_args(
        PROGRAMS,
        &["--dbus-address".to_string(), "unix:path=/nonexistent/bus".to_string()],
    );
    d.wait_state("sleeper", "RUNNING");
    wait_for("the D-Bus log line", DEADLINE, || d.main_log().contains("D-Bus control disabled"));
    assert_eq!(d.main_log().matches("D-Bus").count(), 1, "{}", d.main_log());
    let off = Daemon::start_with_args(PROGRAMS, &["--dbus".to_string(), "none".to_string()]);
    off.wait_state("sleeper", "RUNNING");
    wait_for("the D-Bus log line", DEADLINE, || {
        off.main_log().contains("D-Bus control disabled: disabled by --dbus none")
    });
}

#[test]
fn reexec_over_dbus_keeps_programs_and_comes_back_on_the_bus() {
    if !usable() {
        return;
    }
    let bus = Bus::start();
    let d = bus.corrald(PROGRAMS);
    d.wait_state("sleeper", "RUNNING");
    let pid = d.pid("sleeper");
    bus.manager("Reexec", "", &[]);
    wait_for("the new corrald to take over", DEADLINE, || d.main_log().contains("adopted"));
    wait_for("corrald to own its bus name again", DEADLINE, || {
        bus.busctl(&["status", DEST]).status.success()
    });
    assert_eq!(d.pid("sleeper"), pid);
    assert_eq!(bus.program_prop(SLEEPER, "StateName"), "s \"RUNNING\"");
}
