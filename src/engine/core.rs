//! The engine task: owns every process, reaps children, runs timers, answers commands.
//!
//! One task, no locks around process state. It wakes only for a command, a
//! SIGCHLD or the next timer deadline; with nothing happening it sleeps.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::ffi::OsString;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::{broadcast, mpsc, oneshot};

use super::api::*;
use super::deps;
use super::empty_watch::EmptyWatch;
use super::handover::{self, HandOver, SavedExit, SavedProcess};
use super::info;
use super::orphans::{self, watch_orphan};
use super::output::Output;
use super::state::{Action, Clock, Event, ExitStatus, Level, Machine, ProcessState, Transition};
use super::stdin::StdinError;
use crate::cgroup::{self, Backend, OomWatch};
use crate::config::{
    Config, GroupConfig, GroupKind, HealthAction, KillMode, Probe, ProcessConfig, Readiness,
};
use crate::logs::main_log::{ClearError, MainLogHandle};
use crate::logs::pump::Pump;
use crate::spawn::{self, command};
use crate::stats::CpuSampler;

/// Identifies a process inside the engine (stable across group changes).
pub type ProcId = u64;

/// One supervised process: its configuration, lifecycle and plumbing.
pub(crate) struct Proc {
    pub group: String,
    /// Shared with the configuration the engine holds.
    pub cfg: Arc<ProcessConfig>,
    pub machine: Machine,
    /// The deadline currently registered in the timer set.
    armed: Option<Instant>,
    pub output: Output,
    /// The last spawn placed the child in its own cgroup.
    placed: bool,
    /// OOM kill counter of the current cgroup leaf.
    oom: OomWatch,
    /// OOM kills seen since the daemon started.
    oom_kills: u64,
    /// The last exit was an OOM kill.
    last_oom: bool,
    /// Readiness and health checks, notify status.
    checks: Checks,
    /// CPU % between two stats readings.
    cpu: CpuSampler,
    /// The main pid exited but its cgroup still holds processes: the exit is
    /// reported once the cgroup is empty ("stopped" means nothing is left).
    draining: Option<Drain>,
    /// A start or stop held back by `requires=`/`after=`.
    held: Option<Held>,
    /// Why the last start request did not start it: a dependency failed.
    blocked: Option<String>,
    /// The running pid was adopted after a crash: not our child, watched through a pidfd.
    orphan: bool,
}

/// A request waiting for dependencies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Held {
    /// Starts once every dependency is ready.
    Start,
    /// Stops once every dependent being stopped has stopped.
    Stop,
}

/// What a held start may do now.
enum Gate {
    Wait,
    Go,
    Fail(String),
}

/// Whether the process names any dependency.
fn has_deps(cfg: &ProcessConfig) -> bool {
    !cfg.requires.is_empty() || !cfg.after.is_empty()
}

impl Proc {
    fn new(group: &str, cfg: &Arc<ProcessConfig>, output: Output) -> Proc {
        Proc {
            group: group.to_string(),
            cfg: cfg.clone(),
            machine: Machine::new(),
            armed: None,
            output,
            placed: false,
            oom: OomWatch::new(),
            oom_kills: 0,
            last_oom: false,
            checks: Checks::default(),
            cpu: CpuSampler::new(),
            draining: None,
            held: None,
            blocked: None,
            orphan: false,
        }
    }
}

/// A process's readiness and health check bookkeeping.
#[derive(Default)]
struct Checks {
    /// Bumped whenever the process changes state: a report from an older
    /// generation is stale and ignored.
    generation: u64,
    /// A probe is running.
    in_flight: bool,
    /// The running `exec:` probe.
    exec: Option<ExecProbe>,
    /// The `Timer::Check` entry registered for this process.
    timer: Option<Instant>,
    /// Consecutive failed health checks.
    failures: u32,
    /// Why the process is unhealthy, while it is.
    unhealthy: Option<String>,
    /// The program's `STATUS=` text.
    status: Option<String>,
    /// The program sent `RELOADING=1` and no `READY=1` since.
    reloading: bool,
    /// The program sent `STOPPING=1`: it is shutting down (until it leaves RUNNING).
    stopping: bool,
    /// The task reading an `fd:N` readiness pipe.
    ready_fd: Option<tokio::task::JoinHandle<()>>,
    /// The last readiness probe failure logged (each new reason is logged once).
    last_error: Option<String>,
}

/// An `exec:` probe the engine forked.
#[derive(Debug, Clone, Copy)]
struct ExecProbe {
    pid: u32,
    /// It was killed for taking longer than its timeout.
    timed_out: bool,
}

/// Time between two readiness probes while a program is STARTING.
const READY_PROBE_EVERY: std::time::Duration = std::time::Duration::from_millis(250);
/// Longest a single readiness probe may take.
const READY_PROBE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(2);
/// Shortest time between two warnings about rejected notify messages.
const NOTIFY_WARN_EVERY: std::time::Duration = std::time::Duration::from_secs(10);

/// A main-pid exit held back until the process's cgroup is empty.
struct Drain {
    status: ExitStatus,
    at: Clock,
    /// When leftovers get SIGKILL (unless a stop's own deadline does it).
    kill_at: Option<Instant>,
    /// No inotify watch: re-check on a short timer.
    poll: bool,
}

/// A child being launched: what must stay open until its exec, and what its start
/// needs afterwards.
struct Launching {
    id: ProcId,
    /// `ready=fd:N`: the read end to watch.
    ready_read: Option<std::os::fd::OwnedFd>,
}

/// What a timer entry is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Timer {
    /// The state machine's deadline.
    Machine,
    /// A drain's kill deadline or poll.
    Drain,
    /// The next readiness or health probe, or an `exec:` probe's timeout.
    Check,
}

/// How often a drain without inotify re-checks its cgroup.
const DRAIN_POLL: std::time::Duration = std::time::Duration::from_millis(20);

/// An active group.
struct Group {
    cfg: GroupConfig,
    /// Members in (priority, name) order.
    members: Vec<ProcId>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum WaitKind {
    Start,
    Stop,
}

/// A deferred reply: answered when every pending process has settled.
///
/// Results come in supervisord's order: those known at once first, in process
/// order; then the awaited ones, also in process order (supervisord polls its
/// callbacks in list order, so processes settling together report in that order).
struct Waiter {
    kind: WaitKind,
    single: bool,
    /// (process, namespec for faults, position in process order).
    pending: Vec<(ProcId, String, usize)>,
    immediate: Vec<OpResult>,
    deferred: Vec<(usize, OpResult)>,
    reply: Option<oneshot::Sender<Result<Vec<OpResult>, Fault>>>,
}

impl Waiter {
    fn new(kind: WaitKind, single: bool) -> Waiter {
        Waiter { kind, single, pending: vec![], immediate: vec![], deferred: vec![], reply: None }
    }

    fn results(mut self) -> Vec<OpResult> {
        self.deferred.sort_by_key(|(i, _)| *i);
        self.immediate.extend(self.deferred.into_iter().map(|(_, r)| r));
        self.immediate
    }
}

/// Whether a waited-for process has settled: supervisord's `onwait` callbacks.
fn wait_outcome(
    kind: WaitKind,
    state: ProcessState,
    spawnerr: &str,
    name: &str,
    held: Option<Held>,
    blocked: Option<&str>,
) -> Option<Result<(), Fault>> {
    if let (WaitKind::Start, ProcessState::Stopped, Some(why)) = (kind, state, blocked) {
        // A dependency failed: the reason follows the name.
        return Some(Err(Fault::new(FaultCode::SpawnError, format!("{name}: {why}"))));
    }
    match kind {
        WaitKind::Start if held == Some(Held::Start) => None,
        WaitKind::Start if !spawnerr.is_empty() => Some(Err(Fault::new(FaultCode::SpawnError, name))),
        WaitKind::Start if !matches!(state, ProcessState::Starting | ProcessState::Running) => {
            Some(Err(Fault::new(FaultCode::AbnormalTermination, name)))
        }
        WaitKind::Start => (state == ProcessState::Running).then_some(Ok(())),
        WaitKind::Stop => state.is_stopped().then_some(Ok(())),
    }
}

/// Why [`Engine::run`] returned.
#[derive(Debug)]
pub enum Exit {
    /// Shutdown completed; every process is stopped.
    Shutdown,
    /// A re-exec was requested: the programs keep running and this is their state.
    Reexec(Box<HandOver>),
}

/// A re-exec accepted and in preparation.
struct Reexec {
    /// Processes stopped before the hand-over (event listeners, programs gone from the config).
    stopping: Vec<ProcId>,
    /// The front-ends are quiet: hand over once `stopping` have stopped.
    hand_over: bool,
    /// A shutdown arrived meanwhile: the next daemon carries it out.
    then_shutdown: bool,
}

impl From<ExitStatus> for SavedExit {
    fn from(s: ExitStatus) -> SavedExit {
        match s {
            ExitStatus::Code(c) => SavedExit::Code(c),
            ExitStatus::Signal { signal, core } => SavedExit::Signal { signal, core },
            ExitStatus::Unknown => SavedExit::Unknown,
        }
    }
}

impl From<SavedExit> for ExitStatus {
    fn from(s: SavedExit) -> ExitStatus {
        match s {
            SavedExit::Code(c) => ExitStatus::Code(c),
            SavedExit::Signal { signal, core } => ExitStatus::Signal { signal, core },
            SavedExit::Unknown => ExitStatus::Unknown,
        }
    }
}

/// Loads the configuration again for `reread` and restarts.
pub type Loader = Box<dyn Fn() -> Result<Config, String> + Send>;

/// The engine. Build with [`Engine::new`], then `run` it on its own task.
pub struct Engine {
    config: Config,
    loader: Loader,
    groups: BTreeMap<String, Group>,
    /// Boxed: a `Proc` is about a kilobyte and the table keeps up to half its
    /// slots empty, which would otherwise cost a whole `Proc` each.
    procs: HashMap<ProcId, Box<Proc>>,
    by_pid: HashMap<u32, ProcId>,
    timers: BTreeSet<(Instant, ProcId, Timer)>,
    waiters: Vec<Waiter>,
    mood: Mood,
    rx: mpsc::Receiver<Command>,
    /// Processes still to stop for a shutdown/restart, in waves: highest priority
    /// group first, dependents before their dependencies.
    stop_queue: Vec<Vec<ProcId>>,
    /// Processes with a [`Held`] request.
    held: BTreeSet<ProcId>,
    /// `resolve_held` is running (or requests are being held): do not re-enter.
    resolving: bool,
    /// Replies to `shutdown`/`restart` sent when the daemon is about to act.
    next_id: ProcId,
    base_env: Vec<(OsString, OsString)>,
    daemon_path: Option<String>,
    cgroup_mode: String,
    main_log: Option<MainLogHandle>,
    notices: broadcast::Sender<Notice>,
    cgroups: Box<dyn Backend>,
    empty: EmptyWatch,
    /// Event listener pools and the event bus (`listeners.rs`).
    listeners: super::listeners::Listeners,
    /// Reports of notify messages and checks (`checks.rs`).
    reports_tx: mpsc::Sender<Report>,
    reports_rx: mpsc::Receiver<Report>,
    /// The programs' notify socket, bound when the first program needs it.
    notify_socket: Option<checks::NotifySocket>,
    /// Running `exec:` probes: pid → (process, check generation).
    exec_probes: HashMap<u32, (ProcId, u64)>,
    /// When a rejected notify message was last warned about.
    notify_warned: Option<Instant>,
    /// The binary a re-exec runs and who is told when one is accepted.
    reexec_to: Option<(PathBuf, mpsc::UnboundedSender<()>)>,
    /// A re-exec in preparation.
    reexec: Option<Reexec>,
    /// The previous daemon's state, applied when the groups are created.
    inherited: Option<HandOver>,
    /// Adopt what a crashed daemon left running when the groups are first created.
    scan_orphans: bool,
    /// The previous daemon was asked to shut down during its re-exec.
    shutdown_on_start: bool,
    /// Exits of adopted orphans, reported by their pidfd watchers.
    orphan_tx: mpsc::UnboundedSender<u32>,
    orphan_rx: mpsc::UnboundedReceiver<u32>,
    /// While many processes start at once: the ones whose spawn waits for
    /// [`flush_spawns`](Engine::flush_spawns).
    spawn_batch: Option<Vec<ProcId>>,
    /// The task reading every plain output pipe, started with the first child;
    /// `Some(None)` once it could not start (every pipe then gets a reader task).
    pump: Option<Option<Pump>>,
}

/// Command lines resolved on a search path, kept for one batch of starts.
type ResolveCache = HashMap<(String, Vec<PathBuf>), Result<command::ResolvedCommand, command::CommandError>>;

fn wall_now() -> i64 {
    unix_secs(SystemTime::now())
}

fn unix_secs(t: SystemTime) -> i64 {
    t.duration_since(UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0)
}

fn clock() -> Clock {
    Clock { mono: Instant::now(), wall: wall_now() }
}

impl Engine {
    /// Create an engine for `config`; `loader` re-reads the configuration file.
    pub fn new(
        config: Config,
        loader: Loader,
        main_log: Option<MainLogHandle>,
        cgroups: Box<dyn Backend>,
    ) -> (Engine, Handle) {
        // Before any log file or pipe is open, so the slots sit low in the table.
        spawn::child::reserve_slots();
        let (tx, rx) = mpsc::channel(256);
        // Every slot is allocated up front. The event bus has its own lossless
        // channel; the other subscribers (D-Bus, web, sd_notify status) resynchronize
        // when they fall behind, so a short ring is enough.
        let (notices, _) = broadcast::channel(1024);
        let base_env: Vec<(OsString, OsString)> = std::env::vars_os().collect();
        let daemon_path = std::env::var("PATH").ok();
        let (reports_tx, reports_rx) = mpsc::channel(1024);
        let (orphan_tx, orphan_rx) = mpsc::unbounded_channel();
        let engine = Engine {
            config,
            loader,
            groups: BTreeMap::new(),
            procs: HashMap::new(),
            by_pid: HashMap::new(),
            timers: BTreeSet::new(),
            waiters: Vec::new(),
            mood: Mood::Running,
            rx,
            stop_queue: Vec::new(),
            held: BTreeSet::new(),
            resolving: false,
            next_id: 1,
            base_env,
            daemon_path,
            cgroup_mode: cgroups.mode().to_string(),
            main_log,
            listeners: super::listeners::Listeners::new(&notices), // events: the bus subscribes now
            notices: notices.clone(),
            cgroups,
            empty: EmptyWatch::new(),
            reports_tx,
            reports_rx,
            notify_socket: None,
            exec_probes: HashMap::new(),
            notify_warned: None,
            reexec_to: None,
            reexec: None,
            inherited: None,
            scan_orphans: false,
            shutdown_on_start: false,
            orphan_tx,
            orphan_rx,
            spawn_batch: None,
            pump: None,
        };
        (engine, Handle::new(tx, notices))
    }

    /// Allow re-exec of `binary`; `accepted` is told when a request passed its checks,
    /// so the daemon can quiet its front-ends and then send [`Command::HandOver`].
    pub fn enable_reexec(&mut self, binary: PathBuf, accepted: mpsc::UnboundedSender<()>) {
        self.reexec_to = Some((binary, accepted));
    }

    /// Take over the processes a previous daemon handed over (same pids, same
    /// pipes); applied when [`run`](Engine::run) creates the groups.
    pub fn adopt(&mut self, state: HandOver) {
        self.inherited = Some(state);
    }

    /// After an unclean exit of the previous daemon (`adopt_orphans=true`): take over
    /// the programs still running in their cgroups and kill everything else left in
    /// the tree; applied when [`run`](Engine::run) creates the groups.
    pub fn adopt_orphans(&mut self) {
        self.scan_orphans = true;
    }

    /// Run until shutdown or re-exec. Creates every group and starts the autostart processes.
    pub async fn run(mut self) -> std::io::Result<Exit> {
        let mut sigchld = signal(SignalKind::child())?;
        self.activate_all();
        self.listeners.start(); // events: run the bus once the startup pools exist
        if std::mem::take(&mut self.shutdown_on_start) {
            tracing::warn!("shutting down, as requested during the re-exec");
            self.begin_stop_all(Mood::Shutdown);
        }
        loop {
            let next = self.timers.first().map(|(t, _, _)| *t);
            tokio::select! {
                cmd = self.rx.recv() => match cmd {
                    Some(cmd) => self.on_command(cmd),
                    None => {
                        // Every handle is gone: nobody can control us any more; shut down.
                        if self.mood == Mood::Running { self.begin_stop_all(Mood::Shutdown); }
                    }
                },
                _ = sigchld.recv() => self.reap(),
                Some(report) = self.reports_rx.recv() => self.on_report(report),
                Some(pid) = self.orphan_rx.recv() => {
                    // Only an adopted pid: a child of ours that got the number since is reaped.
                    if let Some(&id) = self.by_pid.get(&pid).filter(|id| self.procs.get(id).is_some_and(|p| p.orphan)) {
                        self.by_pid.remove(&pid);
                        self.on_main_exit(id, ExitStatus::Unknown);
                    }
                }
                _ = sleep_until(next), if next.is_some() => self.fire_timers(),
                ids = self.empty.changed(), if self.empty.active() => {
                    for id in ids { self.check_drain(id); }
                }
            }
            if self.ready_to_hand_over() {
                let mut state = self.hand_over_state();
                // Every reader stops at an await point, after writing what it read.
                state.settle_readers().await;
                return Ok(Exit::Reexec(Box::new(state)));
            }
            // A reap may race with the SIGCHLD of a just-spawned child; reaping is cheap.
            if self.mood != Mood::Running && self.advance_stop_all() {
                match self.mood {
                    Mood::Shutdown => {
                        if let Err(e) = self.cgroups.remove_all() {
                            tracing::warn!("removing cgroups: {e}");
                        }
                        return Ok(Exit::Shutdown);
                    }
                    Mood::Restarting => self.finish_restart(),
                    Mood::Running => {}
                }
            }
        }
    }

    // ----- group lifecycle -------------------------------------------------

    /// Create every configured group, announce RUNNING, then start the autostart
    /// processes: supervisord's order (GROUP_ADDED events come before
    /// SUPERVISOR_STATE_CHANGE_RUNNING, which comes before the first spawn).
    fn activate_all(&mut self) {
        for i in 0..self.config.groups.len() {
            let cfg = self.config.groups[i].clone();
            self.activate_group_config(cfg);
        }
        if let Some(state) = self.inherited.take() {
            self.restore(state);
        }
        if std::mem::take(&mut self.scan_orphans) {
            self.adopt_left_running();
            if !self.config.supervisord.nocleanup {
                self.cleanup_auto_logs();
            }
        }
        self.resume_checks();
        self.notify(Notice::Mood(Mood::Running));
        self.autostart();
    }

    /// Create the processes of a group from the current config (no start).
    fn activate_group(&mut self, name: &str) -> bool {
        match self.config.groups.iter().find(|g| g.name == name) {
            Some(cfg) => self.activate_group_config(cfg.clone()),
            None => false,
        }
    }

    /// [`Self::activate_group`] of a group already looked up (activating them all
    /// by name would search the configuration once per group).
    fn activate_group_config(&mut self, cfg: GroupConfig) -> bool {
        let name = cfg.name.as_str();
        if self.groups.contains_key(name) {
            return false;
        }
        let mut members = Vec::new();
        for pcfg in &cfg.processes {
            let id = self.next_id;
            self.next_id += 1;
            let output = Output::new(&self.config, pcfg);
            self.procs.insert(id, Box::new(Proc::new(&cfg.name, pcfg, output)));
            members.push(id);
        }
        if self.cgroups.mode() != cgroup::Mode::None {
            // Once per activation, not per spawn: the group cgroup carries the shared budget.
            if let Err(e) = self.cgroups.prepare_group(&cfg.name, &cfg.limits) {
                tracing::warn!("cannot prepare the cgroup of group {}: {e}", cfg.name);
            }
        }
        tracing::debug!(group = name, "added process group");
        self.listeners.group_added(&cfg, &self.config.supervisord.identifier); // events: pool before its GROUP_ADDED
        self.notify(Notice::GroupAdded(name.to_string()));
        self.groups.insert(name.to_string(), Group { cfg, members });
        true
    }

    /// Active groups in start order: (priority, name).
    fn groups_in_priority(&self) -> Vec<String> {
        let mut v: Vec<(&GroupConfig, &String)> = self.groups.iter().map(|(n, g)| (&g.cfg, n)).collect();
        v.sort_by(|a, b| (a.0.priority, a.1.as_bytes()).cmp(&(b.0.priority, b.1.as_bytes())));
        v.into_iter().map(|(_, n)| n.clone()).collect()
    }

    fn autostart(&mut self) {
        // Many starts at once (the daemon's start, a restart, new groups): launched
        // together, see flush_spawns.
        self.spawn_batch = Some(Vec::new());
        for id in self.start_sequence() {
            let p = &self.procs[&id];
            if p.cfg.autostart
                && !p.machine.ever_started()
                && p.machine.state() == ProcessState::Stopped
                && p.held.is_none()
            {
                self.request_start(id);
            }
        }
        self.flush_spawns();
    }

    /// Every active process in start order: groups by priority, members by
    /// priority, moved after what they depend on.
    fn start_sequence(&self) -> Vec<ProcId> {
        let ids: Vec<ProcId> =
            self.groups_in_priority().iter().flat_map(|g| self.sorted_members(&self.groups[g])).collect();
        self.dependency_order(ids)
    }

    // ----- dependencies (requires=, after=) ---------------------------------

    fn any_deps(&self) -> bool {
        self.procs.values().any(|p| has_deps(&p.cfg))
    }

    /// `ids` reordered so that each comes after what it depends on among them;
    /// unchanged without dependencies.
    fn dependency_order(&self, ids: Vec<ProcId>) -> Vec<ProcId> {
        if !self.any_deps() {
            return ids;
        }
        let nodes: Vec<deps::Node<ProcId>> = ids
            .iter()
            .map(|&id| deps::Node {
                id,
                group: self.procs[&id].group.clone(),
                deps: self.deps_of(id).into_iter().map(|(d, _)| d).filter(|d| ids.contains(d)).collect(),
            })
            .collect();
        deps::start_order(&nodes)
    }

    /// What `id` depends on among the active processes, with whether it is required.
    fn deps_of(&self, id: ProcId) -> Vec<(ProcId, bool)> {
        let Some(p) = self.procs.get(&id) else { return vec![] };
        let mut out: Vec<(ProcId, bool)> = Vec::new();
        for (list, required) in [(&p.cfg.requires, true), (&p.cfg.after, false)] {
            for dep in list {
                for g in self.groups.values() {
                    for &m in &g.members {
                        if m != id
                            && dep.matches(&g.cfg.name, &self.procs[&m].cfg)
                            && !out.iter().any(|(o, _)| *o == m)
                        {
                            out.push((m, required));
                        }
                    }
                }
            }
        }
        out
    }

    /// Active processes that depend on `id`, with whether they require it.
    fn dependents_of(&self, id: ProcId) -> Vec<(ProcId, bool)> {
        let mut out = Vec::new();
        for g in self.groups.values() {
            for &m in &g.members {
                if has_deps(&self.procs[&m].cfg) {
                    if let Some(&(_, required)) = self.deps_of(m).iter().find(|(d, _)| *d == id) {
                        out.push((m, required));
                    }
                }
            }
        }
        out
    }

    /// Start `id`: at once without dependencies, else held until they are
    /// ready. Stopped `requires=` dependencies are started first (systemd's way).
    fn request_start(&mut self, id: ProcId) {
        // No gate is judged while the dependencies are still being pulled in.
        let outer = std::mem::replace(&mut self.resolving, true);
        let mut seen = vec![id];
        self.hold_start(id, &mut seen);
        self.resolving = outer;
        self.resolve_held();
    }

    fn hold_start(&mut self, id: ProcId, seen: &mut Vec<ProcId>) {
        let Some(p) = self.procs.get_mut(&id) else { return };
        p.blocked = None;
        if !has_deps(&p.cfg) {
            self.feed(id, Event::Start);
            return;
        }
        p.held = Some(Held::Start);
        self.held.insert(id);
        for (dep, required) in self.deps_of(id) {
            if !required || seen.contains(&dep) {
                continue;
            }
            seen.push(dep);
            let d = &self.procs[&dep];
            let idle = matches!(
                d.machine.state(),
                ProcessState::Stopped | ProcessState::Exited | ProcessState::Fatal
            );
            if d.held.is_none() && idle {
                tracing::info!("starting {} (required by {})", self.namespec(dep), self.namespec(id));
                self.hold_start(dep, seen);
            }
        }
    }

    /// Whether a held start of `id` can go ahead, must wait, or has failed.
    fn start_gate(&self, id: ProcId) -> Gate {
        let p = &self.procs[&id];
        for dep in &p.cfg.requires {
            let loaded = self
                .groups
                .values()
                .any(|g| g.members.iter().any(|m| dep.matches(&g.cfg.name, &self.procs[m].cfg)));
            if !loaded {
                return Gate::Fail(format!("dependency {dep} is not loaded"));
            }
        }
        for (dep, required) in self.deps_of(id) {
            let d = &self.procs[&dep];
            let state = d.machine.state();
            let coming = d.held == Some(Held::Start)
                || matches!(state, ProcessState::Starting | ProcessState::Backoff);
            if coming {
                return Gate::Wait;
            }
            if required && state != ProcessState::Running {
                if let (Some(why), ProcessState::Stopped) = (&d.blocked, state) {
                    return Gate::Fail(format!("dependency {} not started: {why}", self.namespec(dep)));
                }
                let how = match state {
                    ProcessState::Stopped | ProcessState::Stopping => "is not running",
                    _ => "failed",
                };
                return Gate::Fail(format!("dependency {} {how} ({})", self.namespec(dep), state.name()));
            }
        }
        Gate::Go
    }

    /// Whether a held stop of `id` can go ahead: no dependent is still stopping.
    fn stop_gate(&self, id: ProcId) -> bool {
        self.dependents_of(id).iter().all(|(d, _)| {
            let p = &self.procs[d];
            p.held != Some(Held::Stop) && p.machine.state() != ProcessState::Stopping
        })
    }

    /// Carry out every held request whose dependencies now allow it. Runs after
    /// each fed event, so a dependent moves as soon as the transition it waits
    /// for happens; nothing polls.
    fn resolve_held(&mut self) {
        if self.resolving || self.held.is_empty() {
            return;
        }
        self.resolving = true;
        loop {
            let mut progressed = false;
            for id in self.held.clone() {
                let Some(held) = self.procs.get(&id).and_then(|p| p.held) else {
                    self.held.remove(&id);
                    continue;
                };
                match held {
                    Held::Start => match self.start_gate(id) {
                        Gate::Wait => {}
                        Gate::Go => {
                            self.release(id);
                            self.feed(id, Event::Start);
                            progressed = true;
                        }
                        Gate::Fail(why) => {
                            self.release(id);
                            tracing::info!("not starting {}: {why}", self.namespec(id));
                            let p = self.procs.get_mut(&id).expect("held ids exist");
                            p.blocked = Some(why);
                            let state = p.machine.state();
                            self.settle_waiters(id, state);
                            progressed = true;
                        }
                    },
                    Held::Stop => {
                        if self.stop_gate(id) {
                            self.release(id);
                            self.feed(id, Event::Stop);
                            progressed = true;
                        }
                    }
                }
            }
            if !progressed {
                break;
            }
        }
        self.resolving = false;
    }

    fn release(&mut self, id: ProcId) {
        self.held.remove(&id);
        if let Some(p) = self.procs.get_mut(&id) {
            p.held = None;
        }
    }

    /// What a held start waits for, for its description.
    fn waiting_for(&self, id: ProcId) -> String {
        let names: Vec<String> = self
            .deps_of(id)
            .into_iter()
            .filter(|(d, required)| {
                let p = &self.procs[d];
                p.held == Some(Held::Start)
                    || matches!(p.machine.state(), ProcessState::Starting | ProcessState::Backoff)
                    || (*required && p.machine.state() != ProcessState::Running)
            })
            .map(|(d, _)| self.namespec(d))
            .collect();
        format!("waiting for {}", names.join(", "))
    }

    // ----- the state machine driver ---------------------------------------

    /// Feed an event to a process's machine and carry out the resulting actions.
    fn feed(&mut self, id: ProcId, event: Event) {
        self.feed_at(id, event, None);
    }

    /// Feed an event that happened at `at` (a held-back exit), else now.
    fn feed_at(&mut self, id: ProcId, event: Event, at: Option<Clock>) {
        let mut queue = vec![event];
        let mut at = at;
        while let Some(ev) = queue.pop() {
            let Some(p) = self.procs.get_mut(&id) else { return };
            let actions = p.machine.handle(&p.cfg, ev, at.take().unwrap_or_else(clock));
            for action in actions {
                if let Some(follow) = self.act(id, action) {
                    queue.push(follow);
                }
            }
        }
        self.rearm(id);
        self.resolve_held();
    }

    fn act(&mut self, id: ProcId, action: Action) -> Option<Event> {
        match action {
            Action::Changed(t) => {
                self.on_transition(id, &t);
                None
            }
            Action::Spawn => match self.spawn_batch.as_mut() {
                Some(batch) => {
                    batch.push(id);
                    None
                }
                None => Some(self.spawn(id)),
            },
            Action::Signal { signal, group } => {
                let group = group || self.procs.get(&id).is_some_and(|p| p.cfg.kill_mode == KillMode::Group);
                self.send_signal(id, signal, group)
            }
            Action::Kill { group } => self.final_kill(id, group),
            Action::Unhealthy(reason) => {
                self.report_unhealthy(id, reason);
                None
            }
            Action::Log(level, msg) => {
                match level {
                    Level::Info => tracing::info!("{msg}"),
                    Level::Warn => tracing::warn!("{msg}"),
                    Level::Debug => tracing::debug!("{msg}"),
                }
                None
            }
        }
    }

    fn rearm(&mut self, id: ProcId) {
        let Some(p) = self.procs.get_mut(&id) else { return };
        let want = p.machine.deadline();
        if want != p.armed {
            if let Some(old) = p.armed.take() {
                self.timers.remove(&(old, id, Timer::Machine));
            }
            if let Some(new) = want {
                self.timers.insert((new, id, Timer::Machine));
            }
            p.armed = want;
        }
    }

    fn fire_timers(&mut self) {
        let now = Instant::now();
        while let Some(&(t, id, kind)) = self.timers.first() {
            if t > now {
                break;
            }
            self.timers.pop_first();
            match kind {
                Timer::Machine => {
                    if let Some(p) = self.procs.get_mut(&id) {
                        p.armed = None;
                    }
                    self.feed(id, Event::Deadline);
                }
                Timer::Drain => self.drain_timer(id, now),
                Timer::Check => self.check_timer(id),
            }
        }
    }

    // ----- cgroups: placement, final kill, draining ---------------------------

    fn cg_target(p: &Proc) -> cgroup::Target<'_> {
        cgroup::Target::Process { group: &p.group, process: &p.cfg.name }
    }

    /// Whether this process's stop ends by emptying its cgroup.
    fn cgroup_kill_applies(&self, p: &Proc) -> bool {
        p.placed && p.cfg.kill_mode != KillMode::Process && self.cgroups.mode() != cgroup::Mode::None
    }

    /// SIGKILL after `stopwaitsecs`: the main pid (or its group), then everything
    /// left in the cgroup. Without a cgroup, the process group stands in for it.
    fn final_kill(&mut self, id: ProcId, group: bool) -> Option<Event> {
        let p = self.procs.get(&id)?;
        let no_cgroup = !p.placed && p.cfg.kill_mode != KillMode::Process;
        let group = group || p.cfg.kill_mode == KillMode::Group || no_cgroup;
        let follow = self.send_signal(id, libc::SIGKILL, group);
        let p = self.procs.get(&id)?;
        if self.cgroup_kill_applies(p) {
            if let Err(e) = self.cgroups.kill(Self::cg_target(p)) {
                tracing::warn!("killing the cgroup of {}: {e}", p.cfg.name);
            }
        }
        follow
    }

    /// The main pid was reaped: report it now, or hold it until the cgroup is empty.
    fn on_main_exit(&mut self, id: ProcId, status: ExitStatus) {
        let Some(p) = self.procs.get_mut(&id) else { return };
        p.output.child_exited();
        p.orphan = false;
        if p.placed && self.cgroups.mode() != cgroup::Mode::None {
            let target = cgroup::Target::Process { group: &p.group, process: &p.cfg.name };
            p.last_oom = p.oom.oom_killed_since_last(self.cgroups.as_ref(), target).unwrap_or(false);
            if p.last_oom {
                p.oom_kills += 1;
                tracing::warn!("oom: {} was killed by the kernel for exceeding its memory limit", p.cfg.name);
                let notice = Notice::Oom {
                    group: p.group.clone(),
                    name: p.cfg.name.clone(),
                    pid: p.machine.pid,
                    oom_kills: p.oom_kills,
                };
                self.notify(notice);
            }
        }
        let p = &self.procs[&id];
        let leftovers =
            self.cgroup_kill_applies(p) && self.cgroups.is_populated(Self::cg_target(p)).unwrap_or(false);
        if !leftovers {
            self.feed(id, Event::Exited(status));
            return;
        }
        self.start_drain(id, status);
    }

    /// Leftover processes of an exited main pid get the stop signal now and
    /// SIGKILL after `stopwaitsecs`; the exit is reported when none is left.
    fn start_drain(&mut self, id: ProcId, status: ExitStatus) {
        let p = &self.procs[&id];
        let target = Self::cg_target(p);
        let pids = self.cgroups.pids(target).unwrap_or_default();
        tracing::info!(
            "{}: main process exited, stopping {} leftover process(es) in its cgroup",
            p.cfg.name,
            pids.len()
        );
        if let Ok(sig) = Signal::try_from(p.cfg.stopsignal) {
            for pid in pids {
                let _ = kill(Pid::from_raw(pid), sig);
            }
        }
        let stopping = p.machine.state() == ProcessState::Stopping;
        // A stop already has its own SIGKILL deadline in the state machine.
        let kill_at =
            (!stopping).then(|| Instant::now() + std::time::Duration::from_secs(p.cfg.stopwaitsecs));
        let watched = match self.cgroups.events_path(target) {
            Some(path) => self.empty.watch(&path, id),
            None => false,
        };
        if let Some(p) = self.procs.get_mut(&id) {
            p.draining = Some(Drain { status, at: clock(), kill_at, poll: !watched });
        }
        self.arm_drain(id);
        // It may have emptied between the first check and the watch.
        self.check_drain(id);
    }

    fn arm_drain(&mut self, id: ProcId) {
        self.timers.retain(|(_, pid, kind)| !(*pid == id && *kind == Timer::Drain));
        let Some(d) = self.procs.get(&id).and_then(|p| p.draining.as_ref()) else { return };
        let poll_at = d.poll.then(|| Instant::now() + DRAIN_POLL);
        let next = match (poll_at, d.kill_at) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        if let Some(t) = next {
            self.timers.insert((t, id, Timer::Drain));
        }
    }

    fn drain_timer(&mut self, id: ProcId, now: Instant) {
        let Some(p) = self.procs.get_mut(&id) else { return };
        let Some(d) = p.draining.as_mut() else { return };
        if d.kill_at.is_some_and(|k| k <= now) {
            d.kill_at = None;
            let p = &self.procs[&id];
            tracing::warn!("killing leftover processes of '{}' with SIGKILL", p.cfg.name);
            if let Err(e) = self.cgroups.kill(Self::cg_target(p)) {
                tracing::warn!("killing the cgroup of {}: {e}", p.cfg.name);
            }
        }
        self.check_drain(id);
        if self.procs.get(&id).is_some_and(|p| p.draining.is_some()) {
            self.arm_drain(id);
        }
    }

    /// Report the held-back exit once the cgroup is empty.
    fn check_drain(&mut self, id: ProcId) {
        let Some(p) = self.procs.get(&id) else { return };
        if p.draining.is_none() || self.cgroups.is_populated(Self::cg_target(p)).unwrap_or(false) {
            return;
        }
        self.empty.unwatch(id);
        self.timers.retain(|(_, pid, kind)| !(*pid == id && *kind == Timer::Drain));
        if let Some(d) = self.procs.get_mut(&id).and_then(|p| p.draining.take()) {
            self.feed_at(id, Event::Exited(d.status), Some(d.at));
        }
    }

    /// Create the process's cgroup (a fresh leaf) and the descriptors the child joins it with.
    fn place(&mut self, id: ProcId) -> Result<Option<cgroup::Placement>, String> {
        if self.cgroups.mode() == cgroup::Mode::None {
            return Ok(None);
        }
        let p = &self.procs[&id];
        // The group's cgroup and its limits were set up when the group was activated.
        match self.cgroups.prepare_process(&p.group, &p.cfg.name, &p.cfg.limits) {
            Ok(pl) => Ok(Some(pl)),
            // supervisord's behaviour leaves processes behind; they keep the old leaf busy.
            Err(e) if p.cfg.kill_mode == KillMode::Process => {
                tracing::warn!("{}: starting outside its cgroup: {e}", p.cfg.name);
                Ok(None)
            }
            Err(e) => Err(format!("cannot prepare the cgroup of '{}': {e}", p.cfg.name)),
        }
    }

    fn spawn(&mut self, id: ProcId) -> Event {
        match self.prepare_spawn(id, None) {
            Ok((child, launching)) => self.finish_spawn(launching, child.launch()),
            Err(failed) => failed,
        }
    }

    /// Everything a start does before the clone: cgroups, command, environment, pipes.
    /// `resolved` keeps the commands a batch of starts has searched on a PATH.
    fn prepare_spawn(
        &mut self,
        id: ProcId,
        resolved: Option<&mut ResolveCache>,
    ) -> Result<(spawn::child::Prepared, Launching), Event> {
        let Some(wants_notify) = self.procs.get(&id).map(|p| p.cfg.health.uses_notify()) else {
            return Err(Event::SpawnFailed("no such process".into()));
        };
        if wants_notify && self.notify_socket.is_none() {
            match checks::NotifySocket::bind(&self.config.supervisord.identifier, self.reports_tx.clone()) {
                Ok(sock) => self.notify_socket = Some(sock),
                Err(e) => tracing::warn!("cannot create the notify socket for programs: {e}"),
            }
        }
        let placement = self.place(id).map_err(Event::SpawnFailed)?;
        let cgroup_fds = placement.as_ref().map(|pl| pl.raw_fds()).unwrap_or_default();
        let cgroup_dir =
            placement.as_ref().and_then(|pl| pl.unified_dir.as_ref()).map(std::os::fd::AsRawFd::as_raw_fd);
        let Some(p) = self.procs.get_mut(&id) else {
            return Err(Event::SpawnFailed("no such process".into()));
        };
        p.placed = placement.is_some();
        p.last_oom = false;
        p.oom = OomWatch::new();
        p.cpu.reset();
        let path = command::search_path(&p.cfg.environment, self.daemon_path.as_deref());
        // Within one batch the same command on the same PATH is searched once.
        let resolved = match resolved {
            Some(cache) => cache
                .entry((p.cfg.command.clone(), path.clone()))
                .or_insert_with(|| command::resolve(&p.cfg.command, &path))
                .clone(),
            None => command::resolve(&p.cfg.command, &path),
        }
        .map_err(|e| Event::SpawnFailed(e.to_string()))?;
        let mut env = self.base_env.clone();
        let mut set = |k: &str, v: &str| {
            env.retain(|(ek, _)| ek != k);
            env.push((k.into(), v.into()));
        };
        set("SUPERVISOR_ENABLED", "1");
        // An explicit empty serverurl means none; AUTO (None) means the daemon's own.
        if let Some(url) =
            p.cfg.serverurl.as_ref().or(self.config.serverurl.as_ref()).filter(|u| !u.is_empty())
        {
            set("SUPERVISOR_SERVER_URL", url);
        }
        set("SUPERVISOR_PROCESS_NAME", &p.cfg.name);
        set("SUPERVISOR_GROUP_NAME", &p.group);
        for (k, v) in &p.cfg.environment {
            set(k, v);
        }
        if p.cfg.health.uses_notify() {
            match self.notify_socket.as_ref() {
                Some(sock) => set("NOTIFY_SOCKET", &sock.env_value),
                None => return Err(Event::SpawnFailed("the notify socket is not available".into())),
            }
        }
        if let Some(w) = p.cfg.health.watchdog {
            set("WATCHDOG_USEC", &w.as_micros().to_string());
        }
        let ready_pipe = match p.cfg.health.ready {
            Readiness::Fd(n) => match checks::readiness_pipe(n) {
                Ok(pair) => Some(pair),
                Err(e) => return Err(Event::SpawnFailed(format!("cannot create the readiness pipe: {e}"))),
            },
            _ => None,
        };
        let extra_fd = match (&ready_pipe, &p.cfg.health.ready) {
            (Some((_, w)), Readiness::Fd(n)) => Some((std::os::fd::AsRawFd::as_raw_fd(w), *n)),
            _ => None,
        };
        let req = spawn::SpawnRequest {
            name: &p.cfg.name,
            command: &resolved,
            env,
            user: p.cfg.user.as_ref(),
            directory: p.cfg.directory.as_deref(),
            umask: p.cfg.umask,
            redirect_stderr: p.cfg.redirect_stderr,
            cgroup_procs: &cgroup_fds,
            cgroup_dir,
            oom_score_adj: p.cfg.oom_score_adj,
            extra_fd,
        };
        match spawn::child::prepare(req) {
            Ok(mut child) => {
                // The placement and the readiness pipe's write end stay open until the
                // clone returns; the engine keeps only the read end.
                if let Some(pl) = placement {
                    child.keep_until_launched(Box::new(pl));
                }
                let ready_read = ready_pipe.map(|(r, w)| {
                    child.keep_until_launched(Box::new(w));
                    r
                });
                Ok((child, Launching { id, ready_read }))
            }
            Err(e) => {
                p.output.write_stderr(&p.cfg, &spawn::child::exec_failure_text(&e));
                Err(Event::SpawnFailed(e.to_string()))
            }
        }
    }

    /// Everything a start does once the child has exec'd (or failed to).
    fn finish_spawn(
        &mut self,
        launching: Launching,
        result: Result<spawn::Spawned, spawn::SpawnError>,
    ) -> Event {
        let Launching { id, ready_read } = launching;
        let pump = self.pump();
        let Some(p) = self.procs.get_mut(&id) else {
            return Event::SpawnFailed("no such process".into());
        };
        match result {
            Ok(child) => {
                let hooks = self.listeners.spawned(&p.group, &p.cfg, child.pid, Some(&child.stdin)); // events
                p.output.use_pump(pump);
                p.output.attach(
                    &p.cfg,
                    child.pid,
                    Some(child.stdout),
                    child.stderr,
                    Some(child.stdin),
                    hooks,
                );
                self.by_pid.insert(child.pid, id);
                // Only the child keeps the write end, so the pipe closes when it dies.
                if let (Some(r), Readiness::Fd(n)) = (ready_read, &p.cfg.health.ready) {
                    let generation = p.checks.generation;
                    match checks::watch_ready_fd(r, *n, id, generation, self.reports_tx.clone()) {
                        Ok(task) => p.checks.ready_fd = Some(task),
                        Err(e) => tracing::warn!("{}: cannot watch its readiness fd: {e}", p.cfg.name),
                    }
                }
                if matches!(p.cfg.health.ready, Readiness::Probe(_)) {
                    self.arm_check(id, Instant::now());
                }
                Event::Spawned(child.pid)
            }
            Err(e) => {
                p.output.write_stderr(&p.cfg, &spawn::child::exec_failure_text(&e));
                Event::SpawnFailed(e.to_string())
            }
        }
    }

    /// The output pump, started on first use (inside the runtime); `None` if it
    /// cannot start, and then every pipe gets a reader task.
    fn pump(&mut self) -> Option<Pump> {
        self.pump
            .get_or_insert_with(|| {
                Pump::start()
                    .map_err(|e| tracing::warn!("cannot start the output pump, using a task per pipe: {e}"))
                    .ok()
            })
            .clone()
    }

    /// Start every process whose spawn was deferred while `spawn_batch` collected
    /// them: each is prepared here and launched at once by the launcher threads,
    /// so children exec in parallel; then each start completes in the order the
    /// starts were made (supervisord's priority order), at the time of its exec.
    fn flush_spawns(&mut self) {
        let Some(ids) = self.spawn_batch.take() else { return };
        let mut resolved = ResolveCache::new();
        let mut batch = spawn::child::Batch::new();
        let mut launching = Vec::with_capacity(ids.len());
        for id in ids {
            match self.prepare_spawn(id, Some(&mut resolved)) {
                Ok((child, l)) => {
                    batch.submit(child);
                    launching.push(l);
                }
                Err(failed) => self.feed(id, failed),
            }
        }
        for (l, (result, mono, wall)) in launching.into_iter().zip(batch.finish()) {
            let id = l.id;
            let event = self.finish_spawn(l, result);
            self.feed_at(id, event, Some(Clock { mono, wall: unix_secs(wall) }));
        }
        // The prepared children (argv, environment, messages) were freed in launch order.
        crate::heap::trim_soon();
    }

    fn send_signal(&mut self, id: ProcId, sig: i32, group: bool) -> Option<Event> {
        let p = self.procs.get(&id)?;
        let pid = p.machine.pid as i32;
        if pid <= 0 {
            return None;
        }
        let target = if group { -pid } else { pid };
        let signal = Signal::try_from(sig).ok()?;
        match kill(Pid::from_raw(target), signal) {
            Ok(()) => None,
            // Already gone: the reaper will report it.
            Err(nix::errno::Errno::ESRCH) => None,
            Err(e) => Some(Event::SignalError(format!(
                "Failed to send signal {} to {}: {}",
                super::state::signal_name(sig),
                p.cfg.name,
                e
            ))),
        }
    }

    fn reap(&mut self) {
        for (pid, status) in spawn::reap::reap_all() {
            if let Some((id, generation)) = self.exec_probes.remove(&pid) {
                self.exec_probe_exited(id, generation, pid, status);
                continue;
            }
            match self.by_pid.remove(&pid) {
                Some(id) => self.on_main_exit(id, status),
                None => tracing::info!("reaped unknown pid {} ({})", pid, status.describe()),
            }
        }
    }

    fn on_transition(&mut self, id: ProcId, t: &Transition) {
        let Some(p) = self.procs.get(&id) else { return };
        tracing::debug!(
            process = %make_namespec(&p.group, &p.cfg.name),
            from = t.from.name(),
            to = t.to.name(),
            "state change"
        );
        self.listeners.transition(&p.group, &p.cfg.name, t); // events: listener pool membership
        self.checks_transition(id, t);
        let Some(p) = self.procs.get(&id) else { return };
        self.notify(Notice::ProcessState {
            group: p.group.clone(),
            name: p.cfg.name.clone(),
            from: t.from,
            to: t.to,
            pid: t.pid,
            tries: t.tries,
            expected: t.expected,
        });
        self.settle_waiters(id, t.to);
    }

    /// Resolve waiters' pending entries for `id`, now in `state`.
    fn settle_waiters(&mut self, id: ProcId, state: ProcessState) {
        let Some(p) = self.procs.get(&id) else { return };
        let mut done = Vec::new();
        for (wi, w) in self.waiters.iter_mut().enumerate() {
            let Some(pos) = w.pending.iter().position(|(pid, _, _)| *pid == id) else { continue };
            let (name, blocked) = (&w.pending[pos].1, p.blocked.as_deref());
            let Some(outcome) = wait_outcome(w.kind, state, &p.machine.spawnerr, name, p.held, blocked)
            else {
                continue;
            };
            let (_, _, idx) = w.pending.remove(pos);
            w.deferred.push((
                idx,
                match &outcome {
                    Ok(()) => OpResult::ok(&p.group, &p.cfg.name),
                    Err(f) => OpResult::fault(&p.group, &p.cfg.name, f),
                },
            ));
            if let (true, Err(f)) = (w.single, outcome) {
                if let Some(reply) = w.reply.take() {
                    let _ = reply.send(Err(f));
                }
            }
            if w.pending.is_empty() {
                done.push(wi);
            }
        }
        for wi in done.into_iter().rev() {
            let mut w = self.waiters.remove(wi);
            if let Some(reply) = w.reply.take() {
                let _ = reply.send(Ok(w.results()));
            }
        }
    }

    // ----- commands ---------------------------------------------------------

    fn on_command(&mut self, cmd: Command) {
        match cmd {
            Command::Info(r) => {
                let _ = r.send(DaemonInfo {
                    identifier: self.config.supervisord.identifier.clone(),
                    mood: self.mood,
                    main_log: match &self.config.supervisord.logfile {
                        crate::config::MainLog::File(p) => Some(p.clone()),
                        crate::config::MainLog::Syslog => None,
                    },
                    cgroup_mode: self.cgroup_mode.clone(),
                });
            }
            Command::ProcessInfo(spec, r) => {
                let _ = r.send(self.find(&spec).map(|id| self.info(id)));
            }
            Command::AllProcessInfo(r) => {
                let mut v = Vec::new();
                for g in self.groups.values() {
                    let mut ids = g.members.clone();
                    ids.sort_by(|a, b| self.procs[a].cfg.name.cmp(&self.procs[b].cfg.name));
                    v.extend(ids.into_iter().map(|id| self.info(id)));
                }
                let _ = r.send(v);
            }
            Command::AllConfigInfo(r) => {
                let _ = r.send(self.config_info());
            }
            Command::Start(target, wait, r) => self.cmd_start(target, wait, r),
            Command::Stop(target, wait, r) => self.cmd_stop(target, wait, r),
            Command::Signal(target, sig, r) => {
                let _ = r.send(self.cmd_signal(target, &sig));
            }
            Command::Reread(r) => {
                let _ = r.send(self.cmd_reread());
            }
            Command::AddGroup(name, r) => {
                let _ = r.send(self.cmd_add_group(&name));
            }
            Command::RemoveGroup(name, r) => {
                let _ = r.send(self.cmd_remove_group(&name));
            }
            Command::Shutdown(r) => {
                if let Some(reexec) = &mut self.reexec {
                    // Too late to call the re-exec off (the front-ends are going):
                    // the next daemon shuts down as soon as it has taken over.
                    tracing::warn!("received shutdown request during a re-exec; shutting down after it");
                    reexec.then_shutdown = true;
                    let _ = r.send(Ok(()));
                    return;
                }
                let res = self.check_mood();
                if res.is_ok() {
                    tracing::warn!("received shutdown request");
                    self.begin_stop_all(Mood::Shutdown);
                }
                let _ = r.send(res);
            }
            Command::Restart(r) => {
                let res = self.check_mood();
                if res.is_ok() {
                    tracing::warn!("received restart request");
                    self.begin_stop_all(Mood::Restarting);
                }
                let _ = r.send(res);
            }
            Command::LogPath(spec, channel, r) => {
                let res = self.find(&spec).map(|id| self.procs[&id].output.path(channel));
                let _ = r.send(res);
            }
            Command::ClearLogs(target, r) => {
                let res = self.targets(&target).map(|ids| {
                    ids.into_iter()
                        .map(|id| {
                            let p = self.procs.get_mut(&id).expect("target ids exist");
                            match p.output.clear() {
                                Ok(()) => OpResult::ok(&p.group, &p.cfg.name),
                                Err(e) => OpResult::fault(
                                    &p.group,
                                    &p.cfg.name,
                                    &Fault::new(FaultCode::Failed, e.to_string()),
                                ),
                            }
                        })
                        .collect()
                });
                let _ = r.send(res);
            }
            Command::ClearMainLog(r) => {
                let res = match &self.main_log {
                    None => Err(Fault::new(FaultCode::NoFile, "None")),
                    Some(h) => h.clear().map_err(|e| match e {
                        ClearError::NoFile => Fault::new(
                            FaultCode::NoFile,
                            h.path().map(|p| p.display().to_string()).unwrap_or_else(|| "None".into()),
                        ),
                        ClearError::Failed(e) => Fault::new(FaultCode::Failed, e.to_string()),
                    }),
                };
                let _ = r.send(res);
            }
            Command::SendStdin(spec, data, r) => {
                let res = self.check_mood().and_then(|_| self.find(&spec)).and_then(|id| {
                    let p = self.procs.get_mut(&id).expect("found id exists");
                    let name = make_namespec(&p.group, &p.cfg.name);
                    if p.machine.pid == 0 || p.machine.state() == ProcessState::Stopping {
                        return Err(Fault::new(FaultCode::NotRunning, name));
                    }
                    p.output.send_stdin(&data).map_err(|e| match e {
                        StdinError::Closed => Fault::new(FaultCode::NoFile, name),
                        e => Fault::new(FaultCode::Failed, format!("{name}: {e}")),
                    })
                });
                let _ = r.send(res);
            }
            Command::RemoteCommEvent(kind, data, r) => {
                self.notify(Notice::RemoteCommunication { kind, data });
                let _ = r.send(Ok(()));
            }
            Command::Stats(spec, r) => {
                let _ = r.send(self.cmd_stats(spec));
            }
            Command::GetLimits(spec, r) => {
                let _ = r.send(self.find(&spec).map(|id| self.procs[&id].cfg.limits.clone()));
            }
            Command::SetLimits(spec, limits, r) => {
                let _ = r.send(self.cmd_set_limits(&spec, limits));
            }
            Command::Freeze(target, freeze, r) => {
                let _ = r.send(self.cmd_freeze(&target, freeze));
            }
            Command::Reexec(r) => {
                let _ = r.send(self.cmd_reexec());
            }
            Command::HandOver => {
                if let Some(r) = &mut self.reexec {
                    r.hand_over = true;
                }
            }
            Command::ReopenLogs => {
                tracing::info!("received SIGUSR2 indicating log reopen request");
                if let Some(h) = &self.main_log {
                    if let Err(e) = h.reopen() {
                        tracing::warn!("{e}");
                    }
                }
                for p in self.procs.values_mut() {
                    p.output.reopen();
                }
            }
        }
    }

    /// Publish a notice; having no subscriber is normal.
    fn notify(&self, notice: Notice) {
        self.listeners.notice(&notice);
        let _ = self.notices.send(notice);
    }

    fn check_mood(&self) -> Result<(), Fault> {
        if self.mood == Mood::Running && self.reexec.is_none() {
            Ok(())
        } else {
            Err(Fault::bare(FaultCode::ShutdownState))
        }
    }

    /// The process named by a spec (which must name one process).
    fn find(&self, spec: &NameSpec) -> Result<ProcId, Fault> {
        let bad = || {
            Fault::new(
                FaultCode::BadName,
                match &spec.process {
                    Some(p) => make_namespec(&spec.group, p),
                    None => format!("{}:*", spec.group),
                },
            )
        };
        let g = self.groups.get(&spec.group).ok_or_else(bad)?;
        let p = spec.process.as_ref().ok_or_else(bad)?;
        g.members.iter().copied().find(|id| &self.procs[id].cfg.name == p).ok_or_else(bad)
    }

    /// Processes a target names, in priority order.
    fn targets(&self, target: &Target) -> Result<Vec<ProcId>, Fault> {
        match target {
            Target::Process { group, process } => {
                Ok(vec![self.find(&NameSpec { group: group.clone(), process: Some(process.clone()) })?])
            }
            Target::Group(g) => {
                let grp = self.groups.get(g).ok_or_else(|| Fault::new(FaultCode::BadName, g.clone()))?;
                Ok(self.sorted_members(grp))
            }
            Target::All => Ok(self
                .groups_in_priority()
                .iter()
                .flat_map(|g| self.sorted_members(&self.groups[g]))
                .collect()),
        }
    }

    fn sorted_members(&self, g: &Group) -> Vec<ProcId> {
        let mut ids = g.members.clone();
        ids.sort_by(|a, b| {
            let (pa, pb) = (&self.procs[a].cfg, &self.procs[b].cfg);
            (pa.priority, pa.name.as_bytes()).cmp(&(pb.priority, pb.name.as_bytes()))
        });
        ids
    }

    fn namespec(&self, id: ProcId) -> String {
        let p = &self.procs[&id];
        make_namespec(&p.group, &p.cfg.name)
    }

    /// startProcess for one process: Ok(true) when settled now, Ok(false) when it must be awaited.
    fn start_one(&mut self, id: ProcId, wait: bool) -> Result<bool, Fault> {
        let name = self.namespec(id);
        let p = &self.procs[&id];
        let path = command::search_path(&p.cfg.environment, self.daemon_path.as_deref());
        if let Err(e) = command::resolve(&p.cfg.command, &path) {
            let code = if e.is_not_found() { FaultCode::NoFile } else { FaultCode::NotExecutable };
            return Err(Fault::new(code, e.to_string()));
        }
        let state = p.machine.state();
        if state.is_running() || p.held == Some(Held::Start) {
            return Err(Fault::new(FaultCode::AlreadyStarted, name));
        }
        if state == ProcessState::Unknown {
            return Err(Fault::new(FaultCode::Failed, format!("{name} is in an unknown process state")));
        }
        self.request_start(id);
        // Pick up an instant exit now rather than after the reply.
        self.reap();
        let p = &self.procs[&id];
        if let Some(why) = &p.blocked {
            return Err(Fault::new(FaultCode::SpawnError, format!("{name}: {why}")));
        }
        if p.held == Some(Held::Start) {
            // Answered when the dependencies are ready and it runs, or one fails.
            return Ok(!wait);
        }
        if !p.machine.spawnerr.is_empty() {
            return Err(Fault::new(FaultCode::SpawnError, name));
        }
        Ok(!wait || p.machine.state() == ProcessState::Running)
    }

    fn cmd_start(
        &mut self,
        target: Target,
        wait: bool,
        reply: oneshot::Sender<Result<Vec<OpResult>, Fault>>,
    ) {
        let ids = match self.check_mood().and_then(|_| self.targets(&target)) {
            Ok(ids) => ids,
            Err(f) => {
                let _ = reply.send(Err(f));
                return;
            }
        };
        let single = matches!(target, Target::Process { .. });
        let mut waiter = Waiter::new(WaitKind::Start, single);
        // A batch starts dependencies before what needs them, so each is reported.
        let ids = self.dependency_order(ids);
        for (idx, id) in ids.into_iter().enumerate() {
            let p = &self.procs[&id];
            if !single && (p.machine.state().is_running() || p.held == Some(Held::Start)) {
                continue;
            }
            let p = &self.procs[&id];
            let (group, pname) = (p.group.clone(), p.cfg.name.clone());
            match self.start_one(id, wait) {
                Ok(true) => waiter.immediate.push(OpResult::ok(&group, &pname)),
                Ok(false) => waiter.pending.push((id, self.namespec(id), idx)),
                Err(f) if single => {
                    let _ = reply.send(Err(f));
                    return;
                }
                Err(f) => waiter.immediate.push(OpResult::fault(&group, &pname, &f)),
            }
        }
        self.settle(waiter, reply);
    }

    fn cmd_stop(&mut self, target: Target, wait: bool, reply: oneshot::Sender<Result<Vec<OpResult>, Fault>>) {
        let ids = match self.check_mood().and_then(|_| self.targets(&target)) {
            Ok(ids) => ids,
            Err(f) => {
                let _ = reply.send(Err(f));
                return;
            }
        };
        let single = matches!(target, Target::Process { .. });
        let mut waiter = Waiter::new(WaitKind::Stop, single);
        let ids = self.stop_dependents_first(ids);
        // Priority order, as supervisord's stopProcessGroup (only shutdown goes in reverse).
        for (idx, id) in ids.into_iter().enumerate() {
            let p = &self.procs[&id];
            let (group, pname) = (p.group.clone(), p.cfg.name.clone());
            if p.held == Some(Held::Start) {
                self.withdraw_start(id);
                waiter.immediate.push(OpResult::ok(&group, &pname));
                continue;
            }
            let state = p.machine.state();
            let name = self.namespec(id);
            if p.held == Some(Held::Stop) {
                if !wait {
                    waiter.immediate.push(OpResult::ok(&group, &pname));
                } else {
                    waiter.pending.push((id, name, idx));
                }
                continue;
            }
            if !state.is_running() {
                if single {
                    let _ = reply.send(Err(Fault::new(FaultCode::NotRunning, name)));
                    return;
                }
                continue;
            }
            if !self.stop_gate(id) {
                // Its dependents stop first.
                self.hold_stop(id);
                if !wait {
                    waiter.immediate.push(OpResult::ok(&group, &pname));
                } else {
                    waiter.pending.push((id, name, idx));
                }
                continue;
            }
            // No reap here: exits arrive through SIGCHLD, so every stop of a batch
            // settles as supervisord's do, in process order.
            self.feed(id, Event::Stop);
            let p = &self.procs[&id];
            if p.machine.state() == ProcessState::Unknown {
                let f = Fault::new(FaultCode::Failed, p.machine.spawnerr.clone());
                if single {
                    let _ = reply.send(Err(f));
                    return;
                }
                waiter.immediate.push(OpResult::fault(&group, &pname, &f));
            } else if !wait || p.machine.state().is_stopped() {
                waiter.immediate.push(OpResult::ok(&group, &pname));
            } else {
                waiter.pending.push((id, name, idx));
            }
        }
        self.settle(waiter, reply);
    }

    /// Begin a stop of `ids` the way a stop command does: every running process
    /// that requires one of them gets a held stop, carried out dependents first.
    /// Returns `ids` in the order to stop them (their own stops are the caller's).
    fn stop_dependents_first(&mut self, ids: Vec<ProcId>) -> Vec<ProcId> {
        let requested = ids.len();
        let mut ids = self.with_dependents(ids);
        for id in ids.split_off(requested) {
            if self.procs[&id].held == Some(Held::Start) {
                self.withdraw_start(id);
            } else if self.procs[&id].machine.state().is_running() {
                self.hold_stop(id);
            }
        }
        ids
    }

    /// Stop `id` as a stop command would (`healthcheck_action=stop`): what
    /// requires it stops first, in reverse dependency order, then `id` itself.
    fn request_stop(&mut self, id: ProcId) {
        self.stop_dependents_first(vec![id]);
        let Some(p) = self.procs.get(&id) else { return };
        if p.held.is_some() || !p.machine.state().is_running() {
            return;
        }
        if self.stop_gate(id) {
            self.feed(id, Event::Stop);
        } else {
            self.hold_stop(id);
        }
    }

    /// A held start is given up (a stop request, shutdown): it stays stopped.
    fn withdraw_start(&mut self, id: ProcId) {
        self.release(id);
        if let Some(state) = self.procs.get(&id).map(|p| p.machine.state()) {
            self.settle_waiters(id, state);
        }
    }

    /// Stop `id` once its dependents have stopped (at once when none is stopping).
    fn hold_stop(&mut self, id: ProcId) {
        if let Some(p) = self.procs.get_mut(&id) {
            p.held = Some(Held::Stop);
            self.held.insert(id);
        }
        self.resolve_held();
    }

    /// The stop targets `ids` plus every running process that requires one of
    /// them (systemd stops what requires a stopped unit), dependents first; the
    /// targets keep their order otherwise and the added ones follow them.
    fn with_dependents(&self, ids: Vec<ProcId>) -> Vec<ProcId> {
        if !self.any_deps() {
            return ids;
        }
        let live = |id: &ProcId| {
            let p = &self.procs[id];
            p.machine.state().is_running() || p.held == Some(Held::Start)
        };
        let mut all = ids.clone();
        let mut i = 0;
        while i < all.len() {
            // A target that is not running is not stopped, so nothing follows from it.
            if live(&all[i]) {
                for (d, required) in self.dependents_of(all[i]) {
                    if required && live(&d) && !all.contains(&d) {
                        all.push(d);
                    }
                }
            }
            i += 1;
        }
        let order = |list: &[ProcId]| -> Vec<ProcId> {
            let nodes: Vec<deps::Node<ProcId>> = list
                .iter()
                .map(|&id| deps::Node {
                    id,
                    group: self.procs[&id].group.clone(),
                    // Reversed edges: a process waits for its dependents.
                    deps: self
                        .dependents_of(id)
                        .into_iter()
                        .map(|(d, _)| d)
                        .filter(|d| list.contains(d))
                        .collect(),
                })
                .collect();
            deps::start_order(&nodes)
        };
        let mut out = order(&all[..ids.len()]);
        out.extend(order(&all[ids.len()..]));
        out
    }

    /// Park the waiter, then settle what already happened: a process started or
    /// stopped earlier in the same command may have changed state (reaped) before
    /// the waiter existed. Replies at once when nothing is left pending.
    fn settle(&mut self, mut waiter: Waiter, reply: oneshot::Sender<Result<Vec<OpResult>, Fault>>) {
        if waiter.pending.is_empty() {
            let _ = reply.send(Ok(waiter.results()));
            return;
        }
        waiter.reply = Some(reply);
        let ids: Vec<ProcId> = waiter.pending.iter().map(|(id, _, _)| *id).collect();
        self.waiters.push(waiter);
        for id in ids {
            if let Some(state) = self.procs.get(&id).map(|p| p.machine.state()) {
                self.settle_waiters(id, state);
            }
        }
    }

    fn cmd_signal(&mut self, target: Target, sig: &str) -> Result<Vec<OpResult>, Fault> {
        self.check_mood()?;
        let single = matches!(target, Target::Process { .. });
        let ids = self.targets(&target)?;
        let signum = crate::config::values::signal_number(sig).ok();
        let mut results = Vec::new();
        for id in ids {
            let p = &self.procs[&id];
            let (group, pname) = (p.group.clone(), p.cfg.name.clone());
            let state = p.machine.state();
            if !single && !state.is_signallable() {
                continue;
            }
            let outcome = match signum {
                None => Err(Fault::new(FaultCode::BadSignal, sig.to_string())),
                Some(_) if !state.is_signallable() => {
                    Err(Fault::new(FaultCode::NotRunning, self.namespec(id)))
                }
                Some(n) => match self.send_signal(id, n, false) {
                    None => Ok(()),
                    Some(Event::SignalError(msg)) => Err(Fault::new(FaultCode::Failed, msg)),
                    Some(_) => Ok(()),
                },
            };
            match outcome {
                Ok(()) => results.push(OpResult::ok(&group, &pname)),
                Err(f) if single => return Err(f),
                Err(f) => results.push(OpResult::fault(&group, &pname, &f)),
            }
        }
        Ok(results)
    }

    fn cmd_reread(&mut self) -> Result<ConfigDiff, Fault> {
        self.check_mood()?;
        let new = (self.loader)().map_err(|e| Fault::new(FaultCode::CantReread, e))?;
        check_limits(self.cgroups.as_ref(), &new).map_err(|e| Fault::new(FaultCode::CantReread, e))?;
        let mut diff = ConfigDiff::default();
        let mut limit_only = Vec::new();
        for g in &new.groups {
            match self.groups.get(&g.name) {
                None => diff.added.push(g.name.clone()),
                Some(active) if active.cfg != *g => {
                    // Limits change in place; only other differences need a restart.
                    if without_limits(&active.cfg) == without_limits(g) {
                        limit_only.push((active.cfg.clone(), g.clone()));
                    } else {
                        diff.changed.push(g.name.clone());
                    }
                }
                Some(_) => {}
            }
        }
        for (old, new) in &limit_only {
            self.apply_limit_changes(old, new);
            if let Some(g) = self.groups.get_mut(&new.name) {
                g.cfg = new.clone();
            }
        }
        for name in self.groups.keys() {
            if !new.groups.iter().any(|g| &g.name == name) {
                diff.removed.push(name.clone());
            }
        }
        diff.added.sort();
        diff.changed.sort();
        diff.removed.sort();
        self.config = new;
        Ok(diff)
    }

    fn cmd_add_group(&mut self, name: &str) -> Result<(), Fault> {
        self.check_mood()?;
        if !self.config.groups.iter().any(|g| g.name == name) {
            return Err(Fault::new(FaultCode::BadName, name));
        }
        if !self.activate_group(name) {
            return Err(Fault::new(FaultCode::AlreadyAdded, name));
        }
        self.autostart();
        Ok(())
    }

    fn cmd_remove_group(&mut self, name: &str) -> Result<(), Fault> {
        self.check_mood()?;
        let g = self.groups.get(name).ok_or_else(|| Fault::new(FaultCode::BadName, name))?;
        if g.members.iter().any(|id| !self.procs[id].machine.state().is_stopped()) {
            return Err(Fault::new(FaultCode::StillRunning, name));
        }
        let g = self.groups.remove(name).expect("checked above");
        self.notify(Notice::GroupRemoved(name.to_string()));
        if let Err(e) = self.cgroups.remove(cgroup::Target::Group(name)) {
            tracing::debug!("removing the cgroup of group {name}: {e}");
        }
        for id in g.members {
            if let Some(mut p) = self.procs.remove(&id) {
                if let Some(t) = p.armed.take() {
                    self.timers.remove(&(t, id, Timer::Machine));
                }
                self.timers.retain(|(_, pid, _)| *pid != id);
                self.empty.unwatch(id);
                self.held.remove(&id);
                p.output.close();
            }
        }
        // A held start that required a removed process fails now.
        self.resolve_held();
        Ok(())
    }

    fn cmd_stats(&mut self, spec: Option<NameSpec>) -> Result<Vec<ProcessStats>, Fault> {
        let ids = match spec {
            Some(spec) => vec![self.find(&spec)?],
            None => {
                let mut ids: Vec<ProcId> =
                    self.groups.values().flat_map(|g| g.members.iter().copied()).collect();
                ids.sort_by(|a, b| {
                    let (pa, pb) = (&self.procs[a], &self.procs[b]);
                    (&pa.group, &pa.cfg.name).cmp(&(&pb.group, &pb.cfg.name))
                });
                ids
            }
        };
        let now = Instant::now();
        let mut out = Vec::with_capacity(ids.len());
        for id in ids {
            let backend = self.cgroups.as_ref();
            let p = self.procs.get_mut(&id).expect("listed ids exist");
            let pid = (p.machine.pid != 0).then_some(p.machine.pid as i32);
            let target = cgroup::Target::Process { group: &p.group, process: &p.cfg.name };
            let st = if p.placed {
                crate::stats::read_process(backend, target, pid)
                    .unwrap_or_else(|_| pid.map(crate::stats::read_pid).unwrap_or_default())
            } else {
                pid.map(crate::stats::read_pid).unwrap_or_default()
            };
            let cpu_percent = if pid.is_some() { p.cpu.sample(&st, now).unwrap_or(0.0) } else { 0.0 };
            out.push(ProcessStats {
                name: p.cfg.name.clone(),
                group: p.group.clone(),
                pid: p.machine.pid,
                statename: p.machine.state().name(),
                cpu_percent,
                cpu_seconds: st.cpu_usage_usec.map(|u| u as f64 / 1e6).unwrap_or(0.0),
                memory_current: st.memory_current,
                memory_peak: st.memory_peak,
                rss: st.rss_bytes,
                io_read_bytes: st.io_read_bytes,
                io_write_bytes: st.io_write_bytes,
                tasks: st.processes,
                threads: st.threads,
                fds: st.open_fds,
                restarts: p.machine.restarts,
                oom_kills: p.oom_kills,
                cgroup: p.placed.then(|| backend.path(target)),
            });
        }
        Ok(out)
    }

    fn cmd_set_limits(
        &mut self,
        spec: &NameSpec,
        limits: crate::config::Limits,
    ) -> Result<crate::config::Limits, Fault> {
        let id = self.find(spec)?;
        self.cgroups.check_limits(&limits).map_err(|e| Fault::new(FaultCode::BadArguments, e.to_string()))?;
        let p = &self.procs[&id];
        if p.placed {
            self.cgroups
                .apply_limits(Self::cg_target(p), &limits)
                .map_err(|e| Fault::new(FaultCode::Failed, e.to_string()))?;
        }
        let p = self.procs.get_mut(&id).expect("found");
        let old = std::mem::replace(&mut Arc::make_mut(&mut p.cfg).limits, limits.clone());
        tracing::info!("limits of {} changed: {}", p.cfg.name, crate::config::describe_limits(&limits));
        let notice = Notice::LimitsChanged {
            group: p.group.clone(),
            name: Some(p.cfg.name.clone()),
            old,
            limits: limits.clone(),
        };
        self.notify(notice);
        Ok(limits)
    }

    fn cmd_freeze(&mut self, target: &Target, freeze: bool) -> Result<Vec<OpResult>, Fault> {
        self.check_mood()?;
        let ids = self.targets(target)?;
        let mut out = Vec::new();
        for id in ids {
            let p = &self.procs[&id];
            let res = if !p.placed {
                Err(Fault::new(FaultCode::Failed, format!("{} has no cgroup to freeze", p.cfg.name)))
            } else if !p.machine.state().is_signallable() {
                Err(Fault::new(FaultCode::NotRunning, make_namespec(&p.group, &p.cfg.name)))
            } else {
                let r = if freeze {
                    self.cgroups.freeze(Self::cg_target(p))
                } else {
                    self.cgroups.thaw(Self::cg_target(p))
                };
                r.map_err(|e| Fault::new(FaultCode::Failed, e.to_string()))
            };
            match res {
                Ok(()) => out.push(OpResult::ok(&p.group, &p.cfg.name)),
                Err(f) if matches!(target, Target::Process { .. }) => return Err(f),
                Err(f) => out.push(OpResult::fault(&p.group, &p.cfg.name, &f)),
            }
        }
        Ok(out)
    }

    /// Apply group and process limits that changed in a re-read file, in place.
    fn apply_limit_changes(&mut self, old: &GroupConfig, new: &GroupConfig) {
        if old.limits != new.limits {
            match self.cgroups.apply_limits(cgroup::Target::Group(&new.name), &new.limits) {
                Ok(()) => {
                    tracing::info!("limits of group {} changed in place", new.name);
                    self.notify(Notice::LimitsChanged {
                        group: new.name.clone(),
                        name: None,
                        old: old.limits.clone(),
                        limits: new.limits.clone(),
                    });
                }
                Err(e) => tracing::warn!("applying limits of group {}: {e}", new.name),
            }
        }
        let members = self.groups.get(&new.name).map(|g| g.members.clone()).unwrap_or_default();
        for id in members {
            let name = self.procs[&id].cfg.name.clone();
            if let Some(ncfg) = new.processes.iter().find(|p| p.name == name) {
                if ncfg.limits != self.procs[&id].cfg.limits {
                    let spec = NameSpec { group: new.name.clone(), process: Some(name) };
                    if let Err(f) = self.cmd_set_limits(&spec, ncfg.limits.clone()) {
                        tracing::warn!("applying limits: {}", f.text());
                    }
                }
            }
        }
        if let Some(g) = self.groups.get_mut(&new.name) {
            g.cfg.limits = new.limits.clone();
        }
    }

    // ----- shutdown and restart ---------------------------------------------

    fn begin_stop_all(&mut self, mood: Mood) {
        self.mood = mood;
        self.notify(Notice::Mood(mood));
        // Held starts never happen now; held stops are part of the waves below.
        for id in std::mem::take(&mut self.held) {
            let start = self.procs.get(&id).is_some_and(|p| p.held == Some(Held::Start));
            self.release(id);
            if start {
                self.withdraw_start(id);
            }
        }
        let nodes: Vec<deps::Node<ProcId>> = self
            .groups_in_priority()
            .iter()
            .flat_map(|g| self.sorted_members(&self.groups[g]))
            .map(|id| deps::Node {
                id,
                group: self.procs[&id].group.clone(),
                deps: self.deps_of(id).into_iter().map(|(d, _)| d).collect(),
            })
            .collect();
        self.stop_queue = deps::stop_waves(&nodes);
        self.advance_stop_all();
    }

    /// Stop a wave at a time: groups from the highest priority number, members in
    /// reverse, dependents before their dependencies. True when all are stopped.
    fn advance_stop_all(&mut self) -> bool {
        while let Some(wave) = self.stop_queue.first().cloned() {
            let members: Vec<ProcId> = wave.into_iter().filter(|id| self.procs.contains_key(id)).collect();
            for &id in &members {
                match self.procs[&id].machine.state() {
                    ProcessState::Running | ProcessState::Starting => self.feed(id, Event::Stop),
                    ProcessState::Backoff => self.feed(id, Event::GiveUp),
                    _ => {}
                }
            }
            if members.iter().all(|id| self.procs.get(id).is_none_or(|p| p.machine.state().is_stopped())) {
                self.stop_queue.remove(0);
            } else {
                return false;
            }
        }
        true
    }

    fn finish_restart(&mut self) {
        match (self.loader)().and_then(|c| check_limits(self.cgroups.as_ref(), &c).map(|_| c)) {
            Ok(cfg) => self.config = cfg,
            Err(e) => tracing::error!("configuration not reloaded, keeping the previous one: {e}"),
        }
        let names: Vec<String> = self.groups.keys().cloned().collect();
        for n in names {
            let _ = self.cmd_remove_group_unchecked(&n);
        }
        self.mood = Mood::Running;
        self.activate_all();
    }

    fn cmd_remove_group_unchecked(&mut self, name: &str) -> Option<()> {
        let g = self.groups.remove(name)?;
        self.notify(Notice::GroupRemoved(name.to_string()));
        for id in g.members {
            if let Some(mut p) = self.procs.remove(&id) {
                if let Some(t) = p.armed.take() {
                    self.timers.remove(&(t, id, Timer::Machine));
                }
                self.timers.retain(|(_, pid, _)| *pid != id);
                self.empty.unwatch(id);
                self.held.remove(&id);
                p.output.close();
            }
        }
        Some(())
    }

    // ----- re-exec ------------------------------------------------------------

    /// Accept a re-exec once the binary and the configuration it will read check out.
    /// Event listeners and programs gone from the configuration are stopped first:
    /// the listener protocol's state cannot be carried across, and a program without
    /// a section would have nothing to be adopted by.
    fn cmd_reexec(&mut self) -> Result<(), Fault> {
        self.check_mood()?;
        let Some((binary, accepted)) = &self.reexec_to else {
            return Err(Fault::new(FaultCode::Failed, "re-exec is not available in this daemon"));
        };
        handover::check_binary(binary).map_err(|e| Fault::new(FaultCode::Failed, e.to_string()))?;
        let new = (self.loader)().map_err(|e| Fault::new(FaultCode::CantReread, e))?;
        check_limits(self.cgroups.as_ref(), &new).map_err(|e| Fault::new(FaultCode::CantReread, e))?;
        let _ = accepted.send(());
        tracing::warn!("received reexec request ({})", binary.display());
        let kept = |group: &str, name: &str| {
            new.groups.iter().any(|g| {
                g.name == group
                    && !matches!(g.kind, GroupKind::EventListener(_))
                    && g.processes.iter().any(|p| p.name == name)
            })
        };
        let mut stopping = Vec::new();
        for (name, g) in &self.groups {
            let listener = matches!(g.cfg.kind, GroupKind::EventListener(_));
            for id in &g.members {
                if listener || !kept(name, &self.procs[id].cfg.name) {
                    stopping.push(*id);
                }
            }
        }
        for &id in &stopping {
            match self.procs[&id].machine.state() {
                ProcessState::Running | ProcessState::Starting => self.feed(id, Event::Stop),
                ProcessState::Backoff => self.feed(id, Event::GiveUp),
                _ => {}
            }
        }
        self.reexec = Some(Reexec { stopping, hand_over: false, then_shutdown: false });
        Ok(())
    }

    fn ready_to_hand_over(&self) -> bool {
        let Some(r) = &self.reexec else { return false };
        r.hand_over
            && r.stopping.iter().all(|id| {
                self.procs.get(id).is_none_or(|p| p.machine.state().is_stopped() && p.draining.is_none())
            })
    }

    /// Stop the pipe readers and describe every process for the next daemon.
    fn hand_over_state(&mut self) -> HandOver {
        let mut state = HandOver::new();
        let now = Instant::now();
        let (skip, shutdown) = self.reexec.take().map(|r| (r.stopping, r.then_shutdown)).unwrap_or_default();
        state.state.shutdown = shutdown;
        for g in self.groups_in_priority() {
            for id in self.groups[&g].members.clone() {
                if skip.contains(&id) {
                    continue;
                }
                let Some(p) = self.procs.get_mut(&id) else { continue };
                let (pipes, readers, sinks) = p.output.take_pipes();
                state.add_readers(readers, sinks);
                let (stdout_auto, stderr_auto) = p.output.auto_paths();
                let saved = SavedProcess {
                    group: p.group.clone(),
                    name: p.cfg.name.clone(),
                    machine: p.machine.save(now),
                    placed: p.placed,
                    oom_kills: p.oom_kills,
                    stdout: pipes.stdout.map(|fd| state.keep(fd)),
                    stderr: pipes.stderr.map(|fd| state.keep(fd)),
                    stdin: pipes.stdin.map(|fd| state.keep(fd)),
                    stdin_pending: pipes.stdin_pending,
                    drain: p.draining.as_ref().map(|d| d.status.into()),
                    orphan: p.orphan && p.machine.pid != 0,
                    stdout_auto,
                    stderr_auto,
                };
                state.state.processes.push(saved);
            }
        }
        tracing::info!("handing {} process(es) over to the new corrald", state.state.processes.len());
        state
    }

    /// Take over what the previous daemon handed over: same pids, same pipes,
    /// same counters and timers. A process whose section is gone cannot be
    /// supervised and is killed (the old daemon stops those before the exec,
    /// so this only happens when the file changed in between).
    fn restore(&mut self, mut state: HandOver) {
        let now = Instant::now();
        self.shutdown_on_start = state.state.shutdown;
        let mut adopted = 0;
        let pump = self.pump();
        for sp in std::mem::take(&mut state.state.processes) {
            let (stdout, stderr, stdin) =
                (state.take(sp.stdout), state.take(sp.stderr), state.take(sp.stdin));
            let id = self
                .groups
                .get(&sp.group)
                .and_then(|g| g.members.iter().copied().find(|id| self.procs[id].cfg.name == sp.name));
            let machine = super::state::Machine::restore(&sp.machine, now);
            let (Some(id), Some(machine)) = (id, machine) else {
                if sp.machine.pid != 0 {
                    tracing::warn!(
                        "{}: no longer in the configuration; killing pid {} it left running",
                        make_namespec(&sp.group, &sp.name),
                        sp.machine.pid
                    );
                    let _ = kill(Pid::from_raw(sp.machine.pid as i32), Signal::SIGKILL);
                    if sp.placed {
                        let target = cgroup::Target::Process { group: &sp.group, process: &sp.name };
                        if let Err(e) = self.cgroups.kill(target) {
                            tracing::warn!("killing the cgroup of {}: {e}", sp.name);
                        }
                    }
                }
                continue;
            };
            let pid = machine.pid;
            let Some(p) = self.procs.get_mut(&id) else { continue };
            p.machine = machine;
            p.placed = sp.placed;
            p.oom_kills = sp.oom_kills;
            p.output.reuse_auto_paths(sp.stdout_auto, sp.stderr_auto);
            if p.placed && pid != 0 {
                // Count from the leaf's current OOM kills, which were already reported.
                let target = cgroup::Target::Process { group: &p.group, process: &p.cfg.name };
                let _ = p.oom.check(self.cgroups.as_ref(), target);
            }
            if pid != 0 {
                self.by_pid.insert(pid, id);
                adopted += 1;
                if sp.orphan {
                    p.orphan = true;
                    if let Err(e) = watch_orphan(pid, self.orphan_tx.clone()) {
                        tracing::warn!("{}: cannot watch adopted pid {pid}: {e}", p.cfg.name);
                    }
                }
                if stdout.is_none() && stderr.is_none() {
                    // Closed by the program itself (or never handed over): nothing to read.
                    tracing::debug!("{}: no output pipe was handed over", p.cfg.name);
                }
                let hooks = self.listeners.spawned(&p.group, &p.cfg, pid, stdin.as_ref()); // events
                p.output.use_pump(pump.clone());
                p.output.attach(&p.cfg, pid, stdout, stderr, stdin, hooks);
                p.output.restore_stdin(sp.stdin_pending);
            }
            if let Some(status) = sp.drain {
                self.start_drain(id, status.into());
            }
            self.rearm(id);
        }
        tracing::info!("adopted {adopted} running process(es) from the previous corrald");
        // Children that exited during the exec left zombies and no SIGCHLD.
        self.reap();
    }

    // ----- crash recovery -----------------------------------------------------

    /// `adopt_orphans=true` after an unclean exit: every configured program whose
    /// leaf still holds processes is taken over as RUNNING with its main pid;
    /// everything else left in the tree is killed, so no program runs twice and
    /// nothing is left behind.
    fn adopt_left_running(&mut self) {
        if self.cgroups.mode() == cgroup::Mode::None {
            tracing::warn!(
                "adopt_orphans: without cgroups no program left by a previous corrald can be found"
            );
            return;
        }
        let mut spared: Vec<(String, String)> = Vec::new();
        for g in self.groups_in_priority() {
            if matches!(self.groups[&g].cfg.kind, GroupKind::EventListener(_)) {
                // Their protocol state died with the old daemon: start them afresh.
                continue;
            }
            for id in self.groups[&g].members.clone() {
                if self.adopt_orphan(id) {
                    let p = &self.procs[&id];
                    spared.push((p.group.clone(), p.cfg.name.clone()));
                }
            }
        }
        let targets: Vec<cgroup::Target<'_>> =
            spared.iter().map(|(g, p)| cgroup::Target::Process { group: g, process: p }).collect();
        match self.cgroups.kill_stale_sparing(&targets) {
            Ok(0) => {}
            Ok(n) => tracing::warn!(
                "killed {n} process(es) left running by a previous corrald that were not adoptable"
            ),
            Err(e) => tracing::warn!("cleaning up cgroups of a previous run: {e}"),
        }
        if !spared.is_empty() {
            tracing::warn!("adopted {} program(s) left running by a previous corrald", spared.len());
        }
    }

    /// Delete the AUTO logs of earlier runs, as a fresh start does, but keep those
    /// of the programs just adopted: they go on in the same files.
    fn cleanup_auto_logs(&self) {
        let sd = &self.config.supervisord;
        let in_use = self.auto_logs_in_use();
        match crate::logs::auto::cleanup_auto_logs_except(&sd.childlogdir, &sd.identifier, &in_use) {
            Ok(failed) => {
                for (p, e) in failed {
                    tracing::warn!("Failed to clean up {}: {e}", p.display());
                }
            }
            Err(e) => tracing::warn!("{e}"),
        }
    }

    /// The AUTO log files the processes write now.
    fn auto_logs_in_use(&self) -> Vec<PathBuf> {
        self.procs
            .values()
            .flat_map(|p| {
                let (out, err) = p.output.auto_paths();
                [out, err]
            })
            .flatten()
            .collect()
    }

    /// Take over one program from its leaf; false when there is nothing to adopt.
    fn adopt_orphan(&mut self, id: ProcId) -> bool {
        let p = &self.procs[&id];
        let members = self.cgroups.pids(Self::cg_target(p)).unwrap_or_default();
        let Some((pid, starttime)) = orphans::main_pid(&members) else { return false };
        let pid = pid as u32;
        if let Err(e) = watch_orphan(pid, self.orphan_tx.clone()) {
            tracing::warn!("{}: cannot watch pid {pid} left by a previous corrald: {e}", p.cfg.name);
            return false;
        }
        let now_ms = orphans::now_wall_ms();
        let started_ms = orphans::start_wall_ms(starttime).unwrap_or(now_ms).min(now_ms);
        let saved = super::state::SavedMachine {
            state: ProcessState::Running.code(),
            backoff: 0,
            laststart_age_ms: Some(now_ms - started_ms),
            start_wall: (started_ms / 1000) as i64,
            stop_wall: 0,
            pid,
            exitstatus: 0,
            spawnerr: String::new(),
            deadline_in_ms: None,
            killing: false,
            restarts: 0,
            crashes: 0,
            starts_age_ms: Vec::new(),
            abort: None,
        };
        let Some(machine) = super::state::Machine::restore(&saved, Instant::now()) else { return false };
        let Some(p) = self.procs.get_mut(&id) else { return false };
        p.machine = machine;
        p.placed = true;
        p.orphan = true;
        let target = cgroup::Target::Process { group: &p.group, process: &p.cfg.name };
        let _ = p.oom.check(self.cgroups.as_ref(), target);
        self.by_pid.insert(pid, id);
        // With redirect_stderr both descriptors are the one stdout pipe: either will do.
        let (stdout, stderr) = if p.cfg.redirect_stderr {
            (orphans::reopen_pipe(pid, 1, false).or_else(|| orphans::reopen_pipe(pid, 2, false)), None)
        } else {
            (orphans::reopen_pipe(pid, 1, false), orphans::reopen_pipe(pid, 2, false))
        };
        let stdin = orphans::reopen_pipe(pid, 0, true);
        // An AUTO log goes on in the file the previous daemon wrote (kept by the cleanup).
        let in_use = self.auto_logs_in_use();
        let pump = self.pump();
        let sd = &self.config.supervisord;
        let Some(p) = self.procs.get_mut(&id) else { return false };
        let (fresh_out, fresh_err) = p.output.auto_paths();
        let old = |fresh: Option<PathBuf>, channel| {
            fresh?;
            crate::logs::auto::latest_auto_log(&sd.childlogdir, &p.cfg.name, channel, &sd.identifier, &in_use)
        };
        let (old_out, old_err) = (old(fresh_out, Channel::Stdout), old(fresh_err, Channel::Stderr));
        p.output.reuse_auto_paths(old_out, old_err);
        // Whatever the program still has open is attached: one that closed its
        // stdin (or stderr) keeps having the rest captured.
        let note = if stdout.is_some() || stderr.is_some() {
            "output written while no corrald was running is lost"
        } else {
            "output not captured after adoption (the program closed its output pipes)"
        };
        let hooks = self.listeners.spawned(&p.group, &p.cfg, pid, stdin.as_ref()); // events
        p.output.use_pump(pump);
        p.output.attach(&p.cfg, pid, stdout, stderr, stdin, hooks);
        tracing::warn!("adopted {} (pid {pid}) left running by a previous corrald; {note}", p.cfg.name);
        p.output.mark(&format!("corrald: adopted pid {pid} after an unclean daemon exit; {note}\n"));
        true
    }

    // ----- information ------------------------------------------------------

    fn info(&self, id: ProcId) -> ProcessInfo {
        let p = &self.procs[&id];
        let mut i = info::process_info(&p.group, &p.cfg, &p.machine, &p.output, wall_now());
        i.oom_kills = p.oom_kills;
        i.cgroup = p.placed.then(|| self.cgroups.path(Self::cg_target(p)));
        let c = &p.checks;
        let health = c.unhealthy.as_ref().map(|r| format!("unhealthy: {r}"));
        let extra = match i.state {
            ProcessState::Starting | ProcessState::Running => vec![
                c.status.as_ref().map(|s| format!("status: {s}")),
                c.reloading.then(|| "reloading".to_string()),
                c.stopping.then(|| "stopping".to_string()),
                // A STARTING process is a new run: the last one's health is not its own.
                health.filter(|_| i.state == ProcessState::Running),
            ],
            // supervisord shows only the stop time; why corrald stopped it follows.
            ProcessState::Stopped | ProcessState::Exited => vec![health],
            _ => vec![],
        };
        for part in extra.into_iter().flatten() {
            if !i.description.is_empty() {
                i.description.push_str(", ");
            }
            i.description.push_str(&part);
        }
        if p.last_oom && matches!(i.state, ProcessState::Exited | ProcessState::Backoff | ProcessState::Fatal)
        {
            i.description = "OOM killed".into();
        }
        if p.held == Some(Held::Start) {
            i.description = self.waiting_for(id);
        } else if let (Some(why), ProcessState::Stopped) = (&p.blocked, i.state) {
            i.description = why.clone();
        }
        i
    }

    fn config_info(&self) -> Vec<ConfigInfo> {
        let mut v = Vec::new();
        // The last file read, as supervisord: a group gone from it is not listed
        // even while it is still active.
        for g in &self.config.groups {
            let active = self.groups.get(&g.name);
            for pcfg in &g.processes {
                let live = active.and_then(|a| {
                    a.members.iter().map(|id| &self.procs[id]).find(|p| p.cfg.name == pcfg.name)
                });
                let (stdout_logfile, stderr_logfile) = match live {
                    Some(p) => (p.output.log_name(Channel::Stdout), p.output.log_name(Channel::Stderr)),
                    None => (
                        info::configured_log_name(&pcfg.stdout.logfile),
                        info::configured_log_name(&pcfg.stderr.logfile),
                    ),
                };
                v.push(ConfigInfo {
                    group: g.name.clone(),
                    group_prio: g.priority,
                    inuse: active.is_some(),
                    process: pcfg.clone(),
                    stdout_logfile,
                    stderr_logfile,
                });
            }
        }
        v.sort_by(|a, b| (&a.group, &a.process.name).cmp(&(&b.group, &b.process.name)));
        v
    }
}

// ----- readiness, health checks, watchdog ----------------------------------

use super::checks::{self, NotifyMsg, Report};

impl Engine {
    /// Register the process's next check at `at` (replacing any other).
    fn arm_check(&mut self, id: ProcId, at: Instant) {
        let Some(p) = self.procs.get_mut(&id) else { return };
        if let Some(old) = p.checks.timer.replace(at) {
            self.timers.remove(&(old, id, Timer::Check));
        }
        self.timers.insert((at, id, Timer::Check));
    }

    /// A state change ends every check of the old state and starts the new state's.
    fn checks_transition(&mut self, id: ProcId, t: &Transition) {
        if t.from == t.to {
            return;
        }
        let Some(p) = self.procs.get_mut(&id) else { return };
        let c = &mut p.checks;
        c.generation += 1;
        c.in_flight = false;
        c.last_error = None;
        if let Some(task) = c.ready_fd.take() {
            task.abort();
        }
        if let Some(e) = c.exec.take() {
            // Reaped later and ignored as stale.
            let _ = kill(Pid::from_raw(-(e.pid as i32)), Signal::SIGKILL);
        }
        if let Some(old) = c.timer.take() {
            self.timers.remove(&(old, id, Timer::Check));
        }
        if t.to != ProcessState::Running {
            c.failures = 0;
        } else {
            // The reason a stop or restart was made for stays visible until
            // the next successful start.
            c.unhealthy = None;
        }
        if !matches!(t.to, ProcessState::Starting | ProcessState::Running) {
            c.status = None;
            c.reloading = false;
            c.stopping = false;
        }
        if t.to == ProcessState::Running {
            if let Some(h) = &p.cfg.health.healthcheck {
                // The first check waits a per-program share of the interval, so
                // programs started together do not probe together.
                let key = make_namespec(&p.group, &p.cfg.name);
                let at = Instant::now() + checks::stagger(&key, h.interval);
                self.arm_check(id, at);
            }
        }
    }

    /// Processes taken over from a previous daemon (re-exec or adoption) get their
    /// notify socket and checks back: readiness probes of a STARTING process run
    /// again, health checks of a RUNNING one resume at their staggered offset. The
    /// read end of an `fd:N` readiness pipe does not survive the exec, so a process
    /// still waiting on one fails its start and goes through the normal restart path.
    fn resume_checks(&mut self) {
        let live: Vec<ProcId> = self
            .procs
            .iter()
            .filter(|(_, p)| matches!(p.machine.state(), ProcessState::Starting | ProcessState::Running))
            .map(|(id, _)| *id)
            .collect();
        if self.notify_socket.is_none() && live.iter().any(|id| self.procs[id].cfg.health.uses_notify()) {
            match checks::NotifySocket::bind(&self.config.supervisord.identifier, self.reports_tx.clone()) {
                Ok(sock) => self.notify_socket = Some(sock),
                Err(e) => tracing::warn!("cannot create the notify socket for programs: {e}"),
            }
        }
        for id in live {
            let p = &self.procs[&id];
            match (p.machine.state(), &p.cfg.health.ready, &p.cfg.health.healthcheck) {
                (ProcessState::Starting, Readiness::Probe(_), _) => self.arm_check(id, Instant::now()),
                (ProcessState::Starting, Readiness::Fd(_), _) => {
                    self.feed(id, Event::Fail("readiness pipe lost in a daemon re-exec".into()))
                }
                (ProcessState::Running, _, Some(h)) => {
                    let at =
                        Instant::now() + checks::stagger(&make_namespec(&p.group, &p.cfg.name), h.interval);
                    self.arm_check(id, at);
                }
                _ => {}
            }
        }
    }

    /// The check timer fired: time out a running `exec:` probe, or start the next probe.
    fn check_timer(&mut self, id: ProcId) {
        let Some(p) = self.procs.get_mut(&id) else { return };
        p.checks.timer = None;
        if let Some(e) = p.checks.exec.as_mut() {
            e.timed_out = true;
            let _ = kill(Pid::from_raw(-(e.pid as i32)), Signal::SIGKILL);
            return;
        }
        if p.checks.in_flight || p.machine.aborting().is_some() {
            return;
        }
        let (probe, timeout) = match (p.machine.state(), &p.cfg.health.ready, &p.cfg.health.healthcheck) {
            (ProcessState::Starting, Readiness::Probe(probe), _) => (probe.clone(), READY_PROBE_TIMEOUT),
            (ProcessState::Running, _, Some(h)) => (h.probe.clone(), h.timeout),
            _ => return,
        };
        let generation = p.checks.generation;
        p.checks.in_flight = true;
        match probe {
            Probe::Exec(cmd) => self.start_exec_probe(id, generation, &cmd, timeout),
            other => checks::spawn_probe(other, timeout, id, generation, self.reports_tx.clone()),
        }
    }

    /// Fork `/bin/sh -c cmd` in its own process group; its exit is reaped by [`Engine::reap`].
    fn start_exec_probe(&mut self, id: ProcId, generation: u64, cmd: &str, timeout: std::time::Duration) {
        use std::os::unix::process::CommandExt;
        let Some(p) = self.procs.get(&id) else { return };
        let mut command = std::process::Command::new("/bin/sh");
        command
            .arg("-c")
            .arg(cmd)
            .envs(p.cfg.environment.iter().map(|(k, v)| (k, v)))
            .env("SUPERVISOR_PROCESS_NAME", &p.cfg.name)
            .env("SUPERVISOR_GROUP_NAME", &p.group)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .process_group(0);
        if let Some(dir) = &p.cfg.directory {
            command.current_dir(dir);
        }
        // The check runs with the program's own credentials, never more.
        if let Some(user) = &p.cfg.user {
            command.uid(user.uid).gid(user.gid);
        }
        match command.spawn() {
            Ok(child) => {
                // The engine reaps it (waitpid(-1)); the handle is not needed.
                let pid = child.id();
                drop(child);
                self.exec_probes.insert(pid, (id, generation));
                if let Some(p) = self.procs.get_mut(&id) {
                    p.checks.exec = Some(ExecProbe { pid, timed_out: false });
                }
                self.arm_check(id, Instant::now() + timeout);
            }
            Err(e) => self.on_check_result(id, generation, Err(format!("exec:{cmd}: {e}"))),
        }
    }

    fn exec_probe_exited(&mut self, id: ProcId, generation: u64, pid: u32, status: ExitStatus) {
        let Some(p) = self.procs.get_mut(&id) else { return };
        let Some(e) = p.checks.exec.filter(|e| e.pid == pid && p.checks.generation == generation) else {
            return;
        };
        p.checks.exec = None;
        if let Some(old) = p.checks.timer.take() {
            self.timers.remove(&(old, id, Timer::Check));
        }
        let cmd = match &p.machine.state() {
            ProcessState::Starting => match &p.cfg.health.ready {
                Readiness::Probe(probe) => probe.describe(),
                _ => String::new(),
            },
            _ => p.cfg.health.healthcheck.as_ref().map(|h| h.probe.describe()).unwrap_or_default(),
        };
        let result = if e.timed_out {
            Err(format!("{cmd} timed out"))
        } else if status == ExitStatus::Code(0) {
            Ok(())
        } else {
            Err(format!("{cmd}: {}", status.describe()))
        };
        self.on_check_result(id, generation, result);
    }

    fn on_report(&mut self, report: Report) {
        match report {
            Report::Notify { pid, text } => self.on_notify(pid, &text),
            Report::Check { id, generation, result } => self.on_check_result(id, generation, result),
        }
    }

    /// A probe or readiness pipe answered.
    fn on_check_result(&mut self, id: ProcId, generation: u64, result: Result<(), String>) {
        let Some(p) = self.procs.get_mut(&id) else { return };
        if p.checks.generation != generation {
            return;
        }
        p.checks.in_flight = false;
        match p.machine.state() {
            ProcessState::Starting => match result {
                Ok(()) => self.feed(id, Event::Ready),
                // An `fd:N` pipe reports once: closed without a newline, the program
                // can never say it is ready, so the start has failed now (as s6 sees it).
                Err(why) if matches!(p.cfg.health.ready, Readiness::Fd(_)) => self.feed(id, Event::Fail(why)),
                Err(why) => {
                    if p.checks.last_error.as_ref() != Some(&why) {
                        tracing::debug!("{} is not ready yet: {why}", p.cfg.name);
                        p.checks.last_error = Some(why);
                    }
                    if matches!(p.cfg.health.ready, Readiness::Probe(_)) {
                        self.arm_check(id, Instant::now() + READY_PROBE_EVERY);
                    }
                }
            },
            ProcessState::Running => {
                let Some(h) = p.cfg.health.healthcheck.clone() else { return };
                match result {
                    Ok(()) => {
                        p.checks.failures = 0;
                        if p.checks.unhealthy.take().is_some() {
                            tracing::info!("{} is healthy again", p.cfg.name);
                        }
                    }
                    Err(why) => {
                        p.checks.failures += 1;
                        tracing::debug!(
                            "health check of {} failed ({}/{}): {why}",
                            p.cfg.name,
                            p.checks.failures,
                            h.retries
                        );
                        if p.checks.failures >= h.retries && p.checks.unhealthy.is_none() {
                            self.report_unhealthy(id, why.clone());
                            match h.action {
                                HealthAction::Restart => {
                                    self.feed(id, Event::Fail(format!("unhealthy: {why}")))
                                }
                                HealthAction::Stop => self.request_stop(id),
                                HealthAction::None => {}
                            }
                        }
                    }
                }
                let still = self
                    .procs
                    .get(&id)
                    .is_some_and(|p| p.checks.generation == generation && p.machine.aborting().is_none());
                if still {
                    self.arm_check(id, Instant::now() + h.interval);
                }
            }
            _ => {}
        }
    }

    /// Mark the process unhealthy, log it and announce it (events, front-ends).
    fn report_unhealthy(&mut self, id: ProcId, reason: String) {
        let Some(p) = self.procs.get_mut(&id) else { return };
        tracing::warn!("{} is unhealthy: {reason}", p.cfg.name);
        p.checks.unhealthy = Some(reason.clone());
        let notice = Notice::Unhealthy {
            group: p.group.clone(),
            name: p.cfg.name.clone(),
            pid: p.machine.pid,
            reason,
        };
        self.notify(notice);
    }

    /// The program whose cgroup (or, without cgroups, main pid) `pid` belongs to.
    fn notify_sender(&self, pid: i32) -> Option<ProcId> {
        if pid <= 0 {
            return None;
        }
        if let Some(&id) = self.by_pid.get(&(pid as u32)) {
            return Some(id);
        }
        if self.cgroups.mode() == cgroup::Mode::None {
            return None;
        }
        let own = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).ok()?;
        self.procs
            .iter()
            .filter(|(_, p)| p.placed && p.machine.state().is_signallable())
            .find(|(_, p)| checks::pid_in_cgroup(&own, &self.cgroups.path(Self::cg_target(p))))
            .map(|(&id, _)| id)
    }

    /// A datagram on the programs' notify socket.
    fn on_notify(&mut self, pid: i32, text: &str) {
        let Some(id) = self.notify_sender(pid) else {
            let now = Instant::now();
            if self.notify_warned.is_none_or(|t| now.duration_since(t) >= NOTIFY_WARN_EVERY) {
                self.notify_warned = Some(now);
                tracing::warn!(
                    "ignoring a notify message from pid {pid}, which belongs to no running program"
                );
            }
            return;
        };
        for msg in checks::parse_notify(text) {
            let Some(p) = self.procs.get_mut(&id) else { return };
            match msg {
                NotifyMsg::Ready => {
                    p.checks.reloading = false;
                    if p.cfg.health.ready == Readiness::Notify {
                        self.feed(id, Event::Ready);
                    }
                }
                NotifyMsg::Status(text) => p.checks.status = (!text.is_empty()).then_some(text),
                NotifyMsg::Stopping => {
                    // As systemd: only shown; the state stays supervisord's until it exits.
                    if !p.checks.stopping {
                        tracing::info!("{} reports it is stopping", p.cfg.name);
                    }
                    p.checks.stopping = true;
                }
                NotifyMsg::Reloading => p.checks.reloading = true,
                NotifyMsg::Watchdog => self.feed(id, Event::WatchdogPing),
                NotifyMsg::WatchdogTrigger => {
                    if p.cfg.health.watchdog.is_some() && p.machine.state() == ProcessState::Running {
                        let reason = "watchdog: the program reported WATCHDOG=trigger".to_string();
                        self.report_unhealthy(id, reason.clone());
                        self.feed(id, Event::Fail(reason));
                    }
                }
                NotifyMsg::ExtendTimeout(d) => self.feed(id, Event::ExtendTimeout(d)),
            }
        }
    }
}

/// Every limit in `config` that `backend` cannot enforce, as one config error
/// naming the file, section and option (limits are checked at load time, never
/// silently ignored).
pub fn check_limits(backend: &dyn Backend, config: &Config) -> Result<(), String> {
    for g in &config.groups {
        if !g.limits.is_empty() {
            backend.check_limits(&g.limits).map_err(|e| format!("[group:{}] {e}", g.name))?;
        }
        for p in &g.processes {
            if !p.limits.is_empty() {
                backend
                    .check_limits(&p.limits)
                    .map_err(|e| format!("{}: [{}] {e}", p.file.display(), p.section))?;
            }
        }
    }
    Ok(())
}

/// A group's configuration with every limit cleared, to tell limit-only changes apart.
fn without_limits(g: &GroupConfig) -> GroupConfig {
    let mut g = g.clone();
    g.limits = Default::default();
    for p in &mut g.processes {
        std::sync::Arc::make_mut(p).limits = Default::default();
    }
    g
}

async fn sleep_until(t: Option<Instant>) {
    match t {
        Some(t) => tokio::time::sleep_until(t.into()).await,
        None => std::future::pending().await,
    }
}
