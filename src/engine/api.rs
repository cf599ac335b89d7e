//! The engine's typed front door: commands, replies and supervisor's fault codes.
//!
//! Every control surface (XML-RPC, D-Bus, the web page, signals) turns a request
//! into one [`Command`] sent through a [`Handle`], and gets a typed reply back.
//! Nothing outside the engine touches process state.

use std::path::PathBuf;

use tokio::sync::{broadcast, mpsc, oneshot};

use super::state::ProcessState;
use crate::config::{Limits, ProcessConfig};

/// supervisord's XML-RPC fault codes (`supervisor.xmlrpc.Faults`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FaultCode {
    /// Unknown method name.
    UnknownMethod = 1,
    /// Wrong argument count or type.
    IncorrectParameters = 2,
    /// Argument values out of range.
    BadArguments = 3,
    /// No signature for the method.
    SignatureUnsupported = 4,
    /// The daemon is shutting down or restarting.
    ShutdownState = 6,
    /// No such process or group.
    BadName = 10,
    /// Unknown signal.
    BadSignal = 11,
    /// A file (command, log) does not exist.
    NoFile = 20,
    /// The command cannot be executed.
    NotExecutable = 21,
    /// Generic failure.
    Failed = 30,
    /// The process left STARTING/RUNNING while a start waited.
    AbnormalTermination = 40,
    /// The process could not be spawned or exited too quickly.
    SpawnError = 50,
    /// The process is already running.
    AlreadyStarted = 60,
    /// The process is not running.
    NotRunning = 70,
    /// Success (only used in result arrays).
    Success = 80,
    /// The group is already active.
    AlreadyAdded = 90,
    /// The group still has running processes.
    StillRunning = 91,
    /// The configuration could not be re-read.
    CantReread = 92,
}

impl FaultCode {
    /// supervisord's upper-case name for the code.
    pub fn name(self) -> &'static str {
        match self {
            FaultCode::UnknownMethod => "UNKNOWN_METHOD",
            FaultCode::IncorrectParameters => "INCORRECT_PARAMETERS",
            FaultCode::BadArguments => "BAD_ARGUMENTS",
            FaultCode::SignatureUnsupported => "SIGNATURE_UNSUPPORTED",
            FaultCode::ShutdownState => "SHUTDOWN_STATE",
            FaultCode::BadName => "BAD_NAME",
            FaultCode::BadSignal => "BAD_SIGNAL",
            FaultCode::NoFile => "NO_FILE",
            FaultCode::NotExecutable => "NOT_EXECUTABLE",
            FaultCode::Failed => "FAILED",
            FaultCode::AbnormalTermination => "ABNORMAL_TERMINATION",
            FaultCode::SpawnError => "SPAWN_ERROR",
            FaultCode::AlreadyStarted => "ALREADY_STARTED",
            FaultCode::NotRunning => "NOT_RUNNING",
            FaultCode::Success => "SUCCESS",
            FaultCode::AlreadyAdded => "ALREADY_ADDED",
            FaultCode::StillRunning => "STILL_RUNNING",
            FaultCode::CantReread => "CANT_REREAD",
        }
    }
}

/// A supervisor fault: code plus optional detail, rendered `NAME` or `NAME: detail`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", self.text())]
pub struct Fault {
    /// The fault code.
    pub code: FaultCode,
    /// Text after `NAME: `, if any.
    pub detail: Option<String>,
}

impl Fault {
    /// A fault with a detail string.
    pub fn new(code: FaultCode, detail: impl Into<String>) -> Fault {
        Fault { code, detail: Some(detail.into()) }
    }

    /// A fault with no detail.
    pub fn bare(code: FaultCode) -> Fault {
        Fault { code, detail: None }
    }

    /// supervisord's `faultString`.
    pub fn text(&self) -> String {
        match &self.detail {
            Some(d) => format!("{}: {}", self.code.name(), d),
            None => self.code.name().to_string(),
        }
    }
}

/// supervisord's "mood", reported by `getState`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mood {
    /// Normal operation (code 1).
    Running,
    /// Reloading the configuration in-process (code 0).
    Restarting,
    /// Shutting down (code -1).
    Shutdown,
}

impl Mood {
    /// `statecode` of `getState`.
    pub fn code(self) -> i32 {
        match self {
            Mood::Running => 1,
            Mood::Restarting => 0,
            Mood::Shutdown => -1,
        }
    }

    /// `statename` of `getState`.
    pub fn name(self) -> &'static str {
        match self {
            Mood::Running => "RUNNING",
            Mood::Restarting => "RESTARTING",
            Mood::Shutdown => "SHUTDOWN",
        }
    }
}

/// A parsed namespec: `group:process`, `group:*`/`group:` (whole group), or `name` (= `name:name`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NameSpec {
    /// Group name.
    pub group: String,
    /// Process name; `None` means the whole group.
    pub process: Option<String>,
}

impl NameSpec {
    /// Parse as supervisord's `split_namespec`.
    pub fn parse(spec: &str) -> NameSpec {
        match spec.split_once(':') {
            Some((g, p)) if p.is_empty() || p == "*" => NameSpec { group: g.to_string(), process: None },
            Some((g, p)) => NameSpec { group: g.to_string(), process: Some(p.to_string()) },
            None => NameSpec { group: spec.to_string(), process: Some(spec.to_string()) },
        }
    }
}

/// supervisord's `make_namespec`: `process` when it equals the group name, else `group:process`.
pub fn make_namespec(group: &str, process: &str) -> String {
    if group == process {
        process.to_string()
    } else {
        format!("{group}:{process}")
    }
}

/// What a start/stop/signal/clear acts on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// One process.
    Process {
        /// Group name.
        group: String,
        /// Process name.
        process: String,
    },
    /// Every process of a group.
    Group(String),
    /// Every process of every group.
    All,
}

impl From<NameSpec> for Target {
    fn from(spec: NameSpec) -> Target {
        match spec.process {
            Some(process) => Target::Process { group: spec.group, process },
            None => Target::Group(spec.group),
        }
    }
}

/// One entry of a group/all operation's result array.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpResult {
    /// Process name.
    pub name: String,
    /// Group name.
    pub group: String,
    /// `Success` or the fault that hit this process.
    pub status: FaultCode,
    /// `OK` or the fault text.
    pub description: String,
}

impl OpResult {
    /// A successful result.
    pub fn ok(group: &str, name: &str) -> OpResult {
        OpResult {
            name: name.into(),
            group: group.into(),
            status: FaultCode::Success,
            description: "OK".into(),
        }
    }

    /// A failed result.
    pub fn fault(group: &str, name: &str, fault: &Fault) -> OpResult {
        OpResult { name: name.into(), group: group.into(), status: fault.code, description: fault.text() }
    }
}

/// `getProcessInfo`'s struct, typed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcessInfo {
    /// Process name.
    pub name: String,
    /// Group name.
    pub group: String,
    /// Epoch seconds of the last spawn, 0 if never.
    pub start: i64,
    /// Epoch seconds of the last exit, 0 if never.
    pub stop: i64,
    /// Epoch seconds now.
    pub now: i64,
    /// Current state.
    pub state: ProcessState,
    /// Last spawn error, or empty.
    pub spawnerr: String,
    /// Last exit status (-1 when killed by a signal).
    pub exitstatus: i32,
    /// stdout log path, or empty.
    pub stdout_logfile: String,
    /// stderr log path, or empty.
    pub stderr_logfile: String,
    /// Pid, 0 when not running.
    pub pid: u32,
    /// supervisord's description text.
    pub description: String,
    /// corral: restarts since the daemon started (not in supervisor's struct).
    pub restarts: u64,
    /// corral: OOM kills seen (not in supervisor's struct).
    pub oom_kills: u64,
    /// corral: the process's cgroup path, if it has one.
    pub cgroup: Option<String>,
}

/// One entry of `getAllConfigInfo`.
#[derive(Debug, Clone, PartialEq)]
pub struct ConfigInfo {
    /// Group name.
    pub group: String,
    /// Group priority.
    pub group_prio: i32,
    /// Whether the group is active (added).
    pub inuse: bool,
    /// The process configuration.
    pub process: std::sync::Arc<ProcessConfig>,
    /// The resolved stdout log path (`None` for NONE; AUTO resolved when active).
    pub stdout_logfile: LogName,
    /// The resolved stderr log path.
    pub stderr_logfile: LogName,
}

/// corral: kernel readings for one process (its cgroup, else its main pid).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct ProcessStats {
    /// Process name.
    pub name: String,
    /// Group name.
    pub group: String,
    /// Pid, 0 when not running.
    pub pid: u32,
    /// Current state.
    pub statename: &'static str,
    /// CPU use since the previous stats reading of this process, in percent of one CPU.
    pub cpu_percent: f64,
    /// CPU time consumed (whole cgroup), in seconds.
    pub cpu_seconds: f64,
    /// Memory in use (cgroup), bytes.
    pub memory_current: Option<u64>,
    /// Peak memory (cgroup), bytes.
    pub memory_peak: Option<u64>,
    /// Resident set of the main pid, bytes.
    pub rss: Option<u64>,
    /// Bytes read (IO).
    pub io_read_bytes: Option<u64>,
    /// Bytes written (IO).
    pub io_write_bytes: Option<u64>,
    /// Processes in the cgroup.
    pub tasks: Option<u64>,
    /// Threads of those processes.
    pub threads: Option<u64>,
    /// Open file descriptors of the main pid.
    pub fds: Option<u64>,
    /// Restarts since the daemon started.
    pub restarts: u64,
    /// OOM kills seen.
    pub oom_kills: u64,
    /// The cgroup path, if any.
    pub cgroup: Option<String>,
}

/// A log file name as `getAllConfigInfo` reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LogName {
    /// No log (`"none"`).
    None,
    /// AUTO, not yet resolved (`"auto"`).
    Auto,
    /// A path.
    Path(PathBuf),
}

/// `reloadConfig`'s answer: group names.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConfigDiff {
    /// Groups in the new file only.
    pub added: Vec<String>,
    /// Groups whose configuration differs.
    pub changed: Vec<String>,
    /// Groups gone from the file.
    pub removed: Vec<String>,
}

/// Output channel of a process (shared with the log readers).
pub use crate::logs::Channel;

/// Facts about the daemon itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DaemonInfo {
    /// `identifier` from the config.
    pub identifier: String,
    /// Current mood.
    pub mood: Mood,
    /// The activity log file, if it is a file.
    pub main_log: Option<PathBuf>,
    /// corral: the cgroup mode in use (`unified`, `hybrid`, `legacy`, `none`).
    pub cgroup_mode: String,
}

/// Something that happened in the engine, for subscribers (event listeners,
/// D-Bus signals, the web page). Delivered through a broadcast channel: a
/// subscriber that falls far behind loses the oldest notices.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Notice {
    /// A process changed state (supervisord's PROCESS_STATE_* events).
    ProcessState {
        /// Group name.
        group: String,
        /// Process name.
        name: String,
        /// Previous state.
        from: ProcessState,
        /// New state.
        to: ProcessState,
        /// Pid at the change (0 if none).
        pid: u32,
        /// Backoff count (STARTING: before this start; BACKOFF: after increment).
        tries: u32,
        /// EXITED only: whether the exit code was expected.
        expected: Option<bool>,
    },
    /// A group became active.
    GroupAdded(String),
    /// A group was removed.
    GroupRemoved(String),
    /// The daemon entered a mood (RUNNING at start, STOPPING on shutdown/restart).
    Mood(Mood),
    /// `sendRemoteCommEvent(type, data)`.
    RemoteCommunication {
        /// The `type` argument.
        kind: String,
        /// The `data` argument.
        data: String,
    },
    /// The kernel's OOM killer killed something in a process's cgroup.
    Oom {
        /// Group name.
        group: String,
        /// Process name.
        name: String,
        /// Pid of the main process at the time.
        pid: u32,
        /// OOM kills of this process since the daemon started.
        oom_kills: u64,
    },
    /// A process failed its health check `healthcheck_retries` times in a row,
    /// or missed its watchdog deadline (`reason` starts with `watchdog:`).
    Unhealthy {
        /// Group name.
        group: String,
        /// Process name.
        name: String,
        /// Pid of the main process at the time.
        pid: u32,
        /// Why, e.g. `tcp:127.0.0.1:80: Connection refused`.
        reason: String,
    },
    /// Limits of a process (or of a whole group, `name` = None) changed in place.
    LimitsChanged {
        /// Group name.
        group: String,
        /// Process name, or `None` for the group's own limits.
        name: Option<String>,
        /// The limits before the change.
        old: Limits,
        /// The limits now in force.
        limits: Limits,
    },
    /// Output of a process with `*_events_enabled` (PROCESS_LOG_*) or a
    /// completed capture block (PROCESS_COMMUNICATION_*).
    Output {
        /// Group name.
        group: String,
        /// Process name.
        name: String,
        /// Pid of the writer.
        pid: u32,
        /// Which pipe.
        channel: Channel,
        /// `true`: a capture block; `false`: a log chunk.
        communication: bool,
        /// The bytes.
        data: Vec<u8>,
    },
}

type Reply<T> = oneshot::Sender<T>;

/// A request to the engine. Built by [`Handle`]'s methods.
#[derive(Debug)]
pub enum Command {
    /// Daemon facts.
    Info(Reply<DaemonInfo>),
    /// One process's info.
    ProcessInfo(NameSpec, Reply<Result<ProcessInfo, Fault>>),
    /// Every process's info, ordered by group then process name.
    AllProcessInfo(Reply<Vec<ProcessInfo>>),
    /// Every configured process (active or not), sorted by group then name.
    AllConfigInfo(Reply<Vec<ConfigInfo>>),
    /// Start; replies when started (wait=false) or settled (wait=true).
    Start(Target, bool, Reply<Result<Vec<OpResult>, Fault>>),
    /// Stop; replies when signalled (wait=false) or stopped (wait=true).
    Stop(Target, bool, Reply<Result<Vec<OpResult>, Fault>>),
    /// Send a signal (name or number, as text).
    Signal(Target, String, Reply<Result<Vec<OpResult>, Fault>>),
    /// Re-read the config file; apply nothing.
    Reread(Reply<Result<ConfigDiff, Fault>>),
    /// Activate a group from the re-read config.
    AddGroup(String, Reply<Result<(), Fault>>),
    /// Remove a stopped group.
    RemoveGroup(String, Reply<Result<(), Fault>>),
    /// Stop everything and exit.
    Shutdown(Reply<Result<(), Fault>>),
    /// Stop everything, re-read the config, start again.
    Restart(Reply<Result<(), Fault>>),
    /// Where a process's log for a channel is (None: no log file).
    LogPath(NameSpec, Channel, Reply<Result<Option<PathBuf>, Fault>>),
    /// Delete and reopen a process's logs.
    ClearLogs(Target, Reply<Result<Vec<OpResult>, Fault>>),
    /// Delete and reopen the activity log.
    ClearMainLog(Reply<Result<(), Fault>>),
    /// Write to a process's stdin.
    SendStdin(NameSpec, Vec<u8>, Reply<Result<(), Fault>>),
    /// Emit a REMOTE_COMMUNICATION event.
    RemoteCommEvent(String, String, Reply<Result<(), Fault>>),
    /// Reopen every log (SIGUSR2).
    ReopenLogs,
    /// corral: kernel readings for one process or all (`None`).
    Stats(Option<NameSpec>, Reply<Result<Vec<ProcessStats>, Fault>>),
    /// corral: the limits in force for a process.
    GetLimits(NameSpec, Reply<Result<Limits, Fault>>),
    /// corral: replace a process's limits, applied live to its cgroup.
    SetLimits(NameSpec, Limits, Reply<Result<Limits, Fault>>),
    /// corral: freeze (`true`) or thaw (`false`) a target's cgroups.
    Freeze(Target, bool, Reply<Result<Vec<OpResult>, Fault>>),
    /// corral: re-execute corrald keeping every program running; replies once the
    /// binary and the configuration were checked, before anything is handed over.
    Reexec(Reply<Result<(), Fault>>),
    /// corral: the front-ends are quiet; hand the state over as soon as the
    /// processes that cannot be carried across (event listeners, programs gone
    /// from the configuration) have stopped.
    HandOver,
}

/// A cloneable sender of [`Command`]s with one async method per request.
#[derive(Debug, Clone)]
pub struct Handle {
    tx: mpsc::Sender<Command>,
    notices: broadcast::Sender<Notice>,
}

/// Fault for a request the engine can no longer answer (it has exited).
fn gone() -> Fault {
    Fault::new(FaultCode::ShutdownState, "engine stopped")
}

impl Handle {
    /// Wrap a command channel and the engine's notice broadcaster.
    pub fn new(tx: mpsc::Sender<Command>, notices: broadcast::Sender<Notice>) -> Handle {
        Handle { tx, notices }
    }

    /// Whether the engine has exited (commands can no longer reach it).
    pub fn engine_gone(&self) -> bool {
        self.tx.is_closed()
    }

    /// Receive every [`Notice`] from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<Notice> {
        self.notices.subscribe()
    }

    async fn ask<T>(&self, make: impl FnOnce(Reply<T>) -> Command) -> Option<T> {
        let (tx, rx) = oneshot::channel();
        self.tx.send(make(tx)).await.ok()?;
        rx.await.ok()
    }

    async fn ask_fallible<T>(
        &self,
        make: impl FnOnce(Reply<Result<T, Fault>>) -> Command,
    ) -> Result<T, Fault> {
        self.ask(make).await.unwrap_or_else(|| Err(gone()))
    }

    /// Daemon facts.
    pub async fn info(&self) -> Result<DaemonInfo, Fault> {
        self.ask(Command::Info).await.ok_or_else(gone)
    }

    /// One process's info (`getProcessInfo`).
    pub async fn process_info(&self, spec: NameSpec) -> Result<ProcessInfo, Fault> {
        self.ask_fallible(|r| Command::ProcessInfo(spec, r)).await
    }

    /// Every process's info (`getAllProcessInfo`).
    pub async fn all_process_info(&self) -> Result<Vec<ProcessInfo>, Fault> {
        self.ask(Command::AllProcessInfo).await.ok_or_else(gone)
    }

    /// Every configured process (`getAllConfigInfo`).
    pub async fn all_config_info(&self) -> Result<Vec<ConfigInfo>, Fault> {
        self.ask(Command::AllConfigInfo).await.ok_or_else(gone)
    }

    /// Start a target. For one process the result array has one OK entry or the call faults.
    pub async fn start(&self, target: Target, wait: bool) -> Result<Vec<OpResult>, Fault> {
        self.ask_fallible(|r| Command::Start(target, wait, r)).await
    }

    /// Stop a target.
    pub async fn stop(&self, target: Target, wait: bool) -> Result<Vec<OpResult>, Fault> {
        self.ask_fallible(|r| Command::Stop(target, wait, r)).await
    }

    /// Signal a target; `signal` is a name (`HUP`, `SIGHUP`) or a number.
    pub async fn signal(&self, target: Target, signal: String) -> Result<Vec<OpResult>, Fault> {
        self.ask_fallible(|r| Command::Signal(target, signal, r)).await
    }

    /// Re-read the configuration (`reloadConfig`).
    pub async fn reread(&self) -> Result<ConfigDiff, Fault> {
        self.ask_fallible(Command::Reread).await
    }

    /// `addProcessGroup`.
    pub async fn add_group(&self, name: String) -> Result<(), Fault> {
        self.ask_fallible(|r| Command::AddGroup(name, r)).await
    }

    /// `removeProcessGroup`.
    pub async fn remove_group(&self, name: String) -> Result<(), Fault> {
        self.ask_fallible(|r| Command::RemoveGroup(name, r)).await
    }

    /// `shutdown`.
    pub async fn shutdown(&self) -> Result<(), Fault> {
        self.ask_fallible(Command::Shutdown).await
    }

    /// `restart`.
    pub async fn restart(&self) -> Result<(), Fault> {
        self.ask_fallible(Command::Restart).await
    }

    /// The log file of a process channel.
    pub async fn log_path(&self, spec: NameSpec, channel: Channel) -> Result<Option<PathBuf>, Fault> {
        self.ask_fallible(|r| Command::LogPath(spec, channel, r)).await
    }

    /// `clearProcessLogs` / `clearAllProcessLogs`.
    pub async fn clear_logs(&self, target: Target) -> Result<Vec<OpResult>, Fault> {
        self.ask_fallible(|r| Command::ClearLogs(target, r)).await
    }

    /// `clearLog`.
    pub async fn clear_main_log(&self) -> Result<(), Fault> {
        self.ask_fallible(Command::ClearMainLog).await
    }

    /// `sendProcessStdin`.
    pub async fn send_stdin(&self, spec: NameSpec, data: Vec<u8>) -> Result<(), Fault> {
        self.ask_fallible(|r| Command::SendStdin(spec, data, r)).await
    }

    /// `sendRemoteCommEvent`.
    pub async fn remote_comm_event(&self, kind: String, data: String) -> Result<(), Fault> {
        self.ask_fallible(|r| Command::RemoteCommEvent(kind, data, r)).await
    }

    /// Kernel readings of one process, or of all when `spec` is `None`.
    pub async fn stats(&self, spec: Option<NameSpec>) -> Result<Vec<ProcessStats>, Fault> {
        self.ask_fallible(|r| Command::Stats(spec, r)).await
    }

    /// The limits in force for a process.
    pub async fn limits(&self, spec: NameSpec) -> Result<Limits, Fault> {
        self.ask_fallible(|r| Command::GetLimits(spec, r)).await
    }

    /// Replace a process's limits live.
    pub async fn set_limits(&self, spec: NameSpec, limits: Limits) -> Result<Limits, Fault> {
        self.ask_fallible(|r| Command::SetLimits(spec, limits, r)).await
    }

    /// Freeze (`true`) or thaw (`false`) the cgroups of a target.
    pub async fn freeze(&self, target: Target, freeze: bool) -> Result<Vec<OpResult>, Fault> {
        self.ask_fallible(|r| Command::Freeze(target, freeze, r)).await
    }

    /// Re-execute corrald without stopping programs (`corral.reexec`, SIGUSR1).
    pub async fn reexec(&self) -> Result<(), Fault> {
        self.ask_fallible(Command::Reexec).await
    }

    /// After an accepted [`reexec`](Handle::reexec): let the engine hand its state over.
    pub async fn hand_over(&self) {
        let _ = self.tx.send(Command::HandOver).await;
    }

    /// Reopen every log file (SIGUSR2).
    pub async fn reopen_logs(&self) {
        let _ = self.tx.send(Command::ReopenLogs).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn namespec_forms_match_supervisord() {
        assert_eq!(NameSpec::parse("g:p"), NameSpec { group: "g".into(), process: Some("p".into()) });
        assert_eq!(NameSpec::parse("g:*"), NameSpec { group: "g".into(), process: None });
        assert_eq!(NameSpec::parse("g:"), NameSpec { group: "g".into(), process: None });
        assert_eq!(NameSpec::parse("web"), NameSpec { group: "web".into(), process: Some("web".into()) });
        assert_eq!(make_namespec("web", "web"), "web");
        assert_eq!(make_namespec("g", "p"), "g:p");
    }

    #[test]
    fn fault_text_is_name_or_name_colon_detail() {
        assert_eq!(Fault::new(FaultCode::BadName, "x").text(), "BAD_NAME: x");
        assert_eq!(Fault::bare(FaultCode::Failed).text(), "FAILED");
        assert_eq!(FaultCode::CantReread as i32, 92);
    }
}
