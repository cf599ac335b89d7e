//! Typed configuration: what the parser hands to the engine.
//!
//! Every value here is already validated and expanded; nothing downstream
//! re-parses strings. Field names follow supervisord's option names.

use std::path::PathBuf;
use std::sync::Arc;

/// A whole, validated configuration (the main file plus its includes).
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// The main configuration file, absolute.
    pub source: PathBuf,
    /// `[supervisord]`.
    pub supervisord: SupervisordConfig,
    /// `[unix_http_server]`, if present.
    pub unix_http_server: Option<UnixHttpServerConfig>,
    /// Every `[inet_http_server*]` section, in file order.
    pub inet_http_servers: Vec<InetHttpServerConfig>,
    /// `[supervisorctl]`, if present.
    pub supervisorctl: Option<CtlConfig>,
    /// `[rpcinterface:x]` sections (only the built-in factory is honoured).
    pub rpcinterfaces: Vec<RpcInterfaceConfig>,
    /// Process groups, sorted by (priority, name) as supervisord orders them.
    pub groups: Vec<GroupConfig>,
    /// What `serverurl=AUTO` means: the first unix server, else the first inet server.
    pub serverurl: Option<String>,
    /// Non-fatal messages found while parsing, to be logged once the main log is open.
    pub messages: Vec<ParseMessage>,
}

/// A non-fatal message from the parser (supervisord logs these after startup).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseMessage {
    /// Severity.
    pub level: MessageLevel,
    /// Text, already formatted as supervisord words it.
    pub text: String,
}

/// Severity of a [`ParseMessage`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MessageLevel {
    /// Informational (e.g. `Included extra file ...`).
    Info,
    /// Warning (e.g. an include glob with no match, an unknown option).
    Warn,
}

/// `[supervisord]` section.
#[derive(Debug, Clone, PartialEq)]
pub struct SupervisordConfig {
    /// Activity log destination.
    pub logfile: MainLog,
    /// Rotate the activity log at this size; 0 never rotates.
    pub logfile_maxbytes: u64,
    /// Number of rotated activity logs kept.
    pub logfile_backups: u32,
    /// Activity log level.
    pub loglevel: LogLevel,
    /// Pid file written after daemonizing.
    pub pidfile: PathBuf,
    /// umask applied when daemonizing.
    pub umask: u32,
    /// Stay in the foreground.
    pub nodaemon: bool,
    /// In the foreground, do not copy the activity log to stdout.
    pub silent: bool,
    /// Raise RLIMIT_NOFILE to at least this.
    pub minfds: u64,
    /// Raise RLIMIT_NPROC to at least this.
    pub minprocs: u64,
    /// Keep old AUTO child logs at start.
    pub nocleanup: bool,
    /// Directory for AUTO child logs.
    pub childlogdir: PathBuf,
    /// Drop privileges to this user at start.
    pub user: Option<User>,
    /// chdir here when daemonizing.
    pub directory: Option<PathBuf>,
    /// Strip ANSI escapes from child output before logging.
    pub strip_ansi: bool,
    /// Added to every child's environment, in file order.
    pub environment: Vec<(String, String)>,
    /// Returned by `getIdentification`, used in event headers.
    pub identifier: String,
    /// corral: where the program cgroups live (default: the daemon's own cgroup).
    pub cgroup_root: Option<PathBuf>,
    /// corral: after an unclean exit, a new daemon takes over the programs still
    /// running in their cgroups instead of killing them.
    pub adopt_orphans: bool,
}

/// Where the activity log goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MainLog {
    /// A file (rotated per `logfile_maxbytes`).
    File(PathBuf),
    /// The local syslog.
    Syslog,
}

/// supervisord's log levels, most to least severe.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum LogLevel {
    /// `critical` (CRIT)
    Critical = 50,
    /// `error` (ERRO)
    Error = 40,
    /// `warn` (WARN)
    Warn = 30,
    /// `info` (INFO)
    Info = 20,
    /// `debug` (DEBG)
    Debug = 10,
    /// `trace` (TRAC)
    Trace = 5,
    /// `blather` (BLAT)
    Blather = 3,
}

/// A resolved user account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    /// The name or number as written in the file.
    pub spec: String,
    /// Resolved uid.
    pub uid: u32,
    /// The account's primary gid.
    pub gid: u32,
    /// Account name (for initgroups), if the uid has a passwd entry.
    pub name: Option<String>,
}

/// `[unix_http_server]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnixHttpServerConfig {
    /// Socket path, absolute.
    pub file: PathBuf,
    /// Mode applied to the socket.
    pub chmod: u32,
    /// Owner applied to the socket: (uid, gid); `None` leaves it unchanged.
    pub chown: Option<(u32, Option<u32>)>,
    /// Basic auth, if configured.
    pub auth: Option<Credentials>,
    /// corral: whether `/metrics` asks for the credentials too (`metrics_auth`, default true).
    pub metrics_auth: bool,
}

/// `[inet_http_server]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InetHttpServerConfig {
    /// Section name (`inet_http_server` or `inet_http_server:x`).
    pub section: String,
    /// Host to bind; empty means all interfaces.
    pub host: String,
    /// TCP port.
    pub port: u16,
    /// Basic auth, if configured.
    pub auth: Option<Credentials>,
    /// corral: whether `/metrics` asks for the credentials too (`metrics_auth`, default true).
    pub metrics_auth: bool,
}

/// HTTP Basic credentials; `password` may be `{SHA}<hex>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credentials {
    /// User name.
    pub username: String,
    /// Password as written (plain, or `{SHA}` + 40 hex digits).
    pub password: String,
}

/// `[supervisorctl]`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CtlConfig {
    /// `serverurl` (`unix:///path` or `http://host:port`).
    pub serverurl: Option<String>,
    /// User name for Basic auth.
    pub username: Option<String>,
    /// Password for Basic auth.
    pub password: Option<String>,
    /// Prompt of the interactive shell.
    pub prompt: String,
    /// readline history file.
    pub history_file: Option<PathBuf>,
}

/// `[rpcinterface:x]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RpcInterfaceConfig {
    /// Namespace name (`x`).
    pub name: String,
    /// `supervisor.rpcinterface_factory`.
    pub factory: String,
}

/// What kind of section produced a group.
#[derive(Debug, Clone, PartialEq)]
pub enum GroupKind {
    /// `[program:x]` (alone or gathered by `[group:x]`).
    Program,
    /// `[eventlistener:x]` pool.
    EventListener(EventListenerConfig),
    /// `[fcgi-program:x]`.
    Fcgi(FcgiConfig),
}

/// Options only an `[eventlistener:x]` pool has.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventListenerConfig {
    /// Subscribed event type names, upper-case, as written.
    pub events: Vec<String>,
    /// Per-pool queue length.
    pub buffer_size: usize,
    /// `module:callable`; only supervisord's default handler semantics are implemented.
    pub result_handler: String,
}

/// Options only an `[fcgi-program:x]` has.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FcgiConfig {
    /// `tcp://host:port` or `unix:///path`.
    pub socket: String,
    /// listen backlog.
    pub socket_backlog: Option<u32>,
    /// Owner of a unix socket.
    pub socket_owner: Option<(u32, Option<u32>)>,
    /// Mode of a unix socket.
    pub socket_mode: u32,
}

/// A process group: the unit of `reread`/`update`/`add`/`remove`.
#[derive(Debug, Clone, PartialEq)]
pub struct GroupConfig {
    /// Group name.
    pub name: String,
    /// Group priority.
    pub priority: i32,
    /// Section kind.
    pub kind: GroupKind,
    /// Processes, sorted by (priority, name). Shared, not copied, by the engine's
    /// process records and by every clone of the configuration.
    pub processes: Vec<Arc<ProcessConfig>>,
    /// corral: limits shared by every process of the group (the group's cgroup).
    pub limits: Limits,
}

/// `autorestart`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AutoRestart {
    /// Never restart after EXITED.
    Never,
    /// Restart only when the exit code is not in `exitcodes`.
    Unexpected,
    /// Always restart after EXITED.
    Always,
}

/// corral: what a stop kills.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KillMode {
    /// Signal the main process; after `stopwaitsecs` kill everything left in its cgroup.
    Cgroup,
    /// Signal the process group (like `stopasgroup`), then kill the cgroup.
    Group,
    /// supervisord's behaviour: only the main pid (or its group with stopasgroup).
    Process,
}

/// Where one output channel of a process is written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LogFile {
    /// `NONE`/`OFF`: discarded.
    None,
    /// `AUTO`: a file under `childlogdir`, named when the group is created.
    Auto,
    /// A path (may be `/dev/stdout` or any other non-seekable file).
    Path(PathBuf),
    /// corral: `journal`, one journald entry per line (no file, no rotation).
    Journal,
}

/// One output channel (stdout or stderr) of a process.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChannelConfig {
    /// Destination.
    pub logfile: LogFile,
    /// Rotate at this size; 0 never rotates.
    pub maxbytes: u64,
    /// Rotated files kept.
    pub backups: u32,
    /// >0 enables capture mode for PROCESS_COMMUNICATION events.
    pub capture_maxbytes: u64,
    /// Emit PROCESS_LOG events.
    pub events_enabled: bool,
    /// Also send lines to syslog.
    pub syslog: bool,
}

/// corral: cgroup limits for a process or a group. `None` means unlimited/unset.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Limits {
    /// Hard memory limit in bytes.
    pub memory_max: Option<u64>,
    /// Memory throttling threshold in bytes.
    pub memory_high: Option<u64>,
    /// Swap limit in bytes.
    pub memory_swap_max: Option<u64>,
    /// CPU quota in percent of one CPU (`150%` = 150).
    pub cpu_quota: Option<u32>,
    /// CPU weight, 1–10000.
    pub cpu_weight: Option<u32>,
    /// Maximum number of tasks.
    pub tasks_max: Option<u64>,
    /// IO weight, 1–10000.
    pub io_weight: Option<u32>,
}

impl Limits {
    /// True when no limit is set.
    pub fn is_empty(&self) -> bool {
        *self == Limits::default()
    }

    /// Every limit as (option name, value in config syntax), `max` when unset;
    /// sizes in the largest exact unit (`512M`), quotas with `%`.
    pub fn options(&self) -> [(&'static str, String); 7] {
        fn size(v: Option<u64>) -> String {
            match v {
                None => "max".into(),
                Some(n) => [(1u64 << 40, "T"), (1 << 30, "G"), (1 << 20, "M"), (1 << 10, "K")]
                    .iter()
                    .find(|(unit, _)| n != 0 && n % unit == 0)
                    .map(|(unit, suffix)| format!("{}{suffix}", n / unit))
                    .unwrap_or_else(|| n.to_string()),
            }
        }
        let num = |v: Option<u32>| v.map(|n| n.to_string()).unwrap_or_else(|| "max".into());
        [
            ("memory_max", size(self.memory_max)),
            ("memory_high", size(self.memory_high)),
            ("memory_swap_max", size(self.memory_swap_max)),
            ("cpu_quota", self.cpu_quota.map(|q| format!("{q}%")).unwrap_or_else(|| "max".into())),
            ("cpu_weight", num(self.cpu_weight)),
            ("tasks_max", self.tasks_max.map(|n| n.to_string()).unwrap_or_else(|| "max".into())),
            ("io_weight", num(self.io_weight)),
        ]
    }
}

/// One process (one per `process_num` of a program section).
#[derive(Debug, Clone, PartialEq)]
pub struct ProcessConfig {
    /// Process name (after `process_name` expansion).
    pub name: String,
    /// Name of the program section (`x` of `[program:x]`).
    pub program: String,
    /// Section name as written (`program:x`), for messages.
    pub section: String,
    /// File that defined the section.
    pub file: PathBuf,
    /// Command line after expansion (split when spawning, as supervisord does).
    pub command: String,
    /// Working directory.
    pub directory: Option<PathBuf>,
    /// umask for the child.
    pub umask: Option<u32>,
    /// Start order inside the group.
    pub priority: i32,
    /// Start when the daemon starts.
    pub autostart: bool,
    /// Restart policy from EXITED.
    pub autorestart: AutoRestart,
    /// Seconds the process must stay up to count as started.
    pub startsecs: u64,
    /// Failed starts tolerated before FATAL.
    pub startretries: u32,
    /// Expected exit codes.
    pub exitcodes: Vec<i32>,
    /// Stop signal number.
    pub stopsignal: i32,
    /// Grace period before SIGKILL.
    pub stopwaitsecs: u64,
    /// Send the stop signal to the process group.
    pub stopasgroup: bool,
    /// Send SIGKILL to the process group.
    pub killasgroup: bool,
    /// Run as this user.
    pub user: Option<User>,
    /// stderr goes to the stdout channel.
    pub redirect_stderr: bool,
    /// stdout channel.
    pub stdout: ChannelConfig,
    /// stderr channel.
    pub stderr: ChannelConfig,
    /// `[supervisord] environment` merged with the program's own (program wins), in order.
    pub environment: Vec<(String, String)>,
    /// `serverurl` as written: `None` for AUTO (or absent), `Some("")` for none at
    /// all; `getAllConfigInfo` reports it like this, the child gets [`Config::serverurl`] for AUTO.
    pub serverurl: Option<String>,
    /// corral: what a stop kills.
    pub kill_mode: KillMode,
    /// corral: readiness, health check and watchdog (all opt-in).
    pub health: super::readiness::HealthConfig,
    /// corral: per-process cgroup limits.
    pub limits: Limits,
    /// corral: `oom_score_adj` written for the child.
    pub oom_score_adj: Option<i32>,
    /// corral: restart pacing beyond supervisord's (all opt-in).
    pub restart: RestartPolicy,
    /// corral `requires=`: started along with this process and ready (RUNNING)
    /// before it is spawned; a failed one keeps it stopped.
    pub requires: Vec<Dependency>,
    /// corral `after=`: ordering only; waits for these while they are starting.
    pub after: Vec<Dependency>,
}

impl ProcessConfig {
    /// A process with supervisord's defaults for every option (`[program:<name>]`,
    /// `command=<command>`, logs NONE), for programs built without a file.
    pub fn new(name: &str, command: &str) -> ProcessConfig {
        let channel = ChannelConfig {
            logfile: LogFile::None,
            maxbytes: 50 * 1024 * 1024,
            backups: 10,
            capture_maxbytes: 0,
            events_enabled: false,
            syslog: false,
        };
        ProcessConfig {
            name: name.into(),
            program: name.into(),
            section: format!("program:{name}"),
            file: PathBuf::new(),
            command: command.into(),
            directory: None,
            umask: None,
            priority: 999,
            autostart: true,
            autorestart: AutoRestart::Unexpected,
            startsecs: 1,
            startretries: 3,
            exitcodes: vec![0],
            stopsignal: 15,
            stopwaitsecs: 10,
            stopasgroup: false,
            killasgroup: false,
            user: None,
            redirect_stderr: false,
            stdout: channel.clone(),
            stderr: channel,
            environment: vec![],
            serverurl: None,
            kill_mode: KillMode::Cgroup,
            health: Default::default(),
            limits: Limits::default(),
            oom_score_adj: None,
            restart: RestartPolicy::default(),
            requires: Vec::new(),
            after: Vec::new(),
        }
    }
}

/// corral: what a `requires=`/`after=` entry names.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Dependency {
    /// `name`: every process of `[program:name]` (all of its `numprocs`).
    Program(String),
    /// `name:*`: every process of group `name`.
    Group(String),
}

impl Dependency {
    /// Whether `cfg`, a member of group `group`, is one of the processes named.
    pub fn matches(&self, group: &str, cfg: &ProcessConfig) -> bool {
        match self {
            Dependency::Program(name) => cfg.program == *name,
            Dependency::Group(name) => group == name,
        }
    }
}

impl std::fmt::Display for Dependency {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Dependency::Program(name) => f.write_str(name),
            Dependency::Group(name) => write!(f, "{name}:*"),
        }
    }
}

/// corral: how restarts are paced. The default is exactly supervisord's:
/// linear backoff between failed starts, immediate restart after a crash
/// from RUNNING, no rate limit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RestartPolicy {
    /// `backoff=`: `None` keeps supervisord's behaviour; set, it also paces
    /// restarts after crashes from RUNNING.
    pub backoff: Option<Backoff>,
    /// `backoff_max=`: longest wait between two starts, in seconds.
    pub backoff_max: Option<u64>,
    /// `backoff_reset=`: a run at least this long (seconds) resets the pacing.
    pub backoff_reset: u64,
    /// `start_limit_burst=`: at most this many starts within `start_limit_interval`…
    pub start_limit_burst: Option<u32>,
    /// `start_limit_interval=`: …seconds, else FATAL.
    pub start_limit_interval: u64,
}

impl Default for RestartPolicy {
    fn default() -> Self {
        RestartPolicy {
            backoff: None,
            backoff_max: None,
            backoff_reset: 60,
            start_limit_burst: None,
            start_limit_interval: 10,
        }
    }
}

/// corral: growth of the wait between restarts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backoff {
    /// 1 s, 2 s, 3 s, … (supervisord's).
    Linear,
    /// 1 s, 2 s, 4 s, 8 s, … up to `backoff_max` (default 60 s).
    Exponential,
}

impl RestartPolicy {
    /// Seconds to wait before the `n`th consecutive retry (n ≥ 1).
    pub fn delay(&self, n: u32) -> u64 {
        let n = n.max(1);
        let raw = match self.backoff.unwrap_or(Backoff::Linear) {
            Backoff::Linear => u64::from(n),
            Backoff::Exponential => 1u64.checked_shl(n - 1).unwrap_or(u64::MAX),
        };
        let cap = match (self.backoff, self.backoff_max) {
            (_, Some(max)) => max,
            (Some(Backoff::Exponential), None) => 60,
            _ => u64::MAX,
        };
        raw.min(cap)
    }
}
