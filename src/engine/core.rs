//! The engine task: owns every process, reaps children, runs timers, answers commands.
//!
//! One task, no locks around process state. It wakes only for a command, a
//! SIGCHLD or the next timer deadline; with nothing happening it sleeps.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::ffi::OsString;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::{broadcast, mpsc, oneshot};

use super::api::*;
use super::empty_watch::EmptyWatch;
use super::info;
use super::output::Output;
use super::state::{Action, Clock, Event, ExitStatus, Level, Machine, ProcessState, Transition};
use crate::cgroup::{self, Backend, OomWatch};
use crate::config::{Config, GroupConfig, KillMode, ProcessConfig};
use crate::logs::main_log::{ClearError, MainLogHandle};
use crate::spawn::{self, command};
use crate::stats::CpuSampler;

/// Identifies a process inside the engine (stable across group changes).
pub type ProcId = u64;

/// One supervised process: its configuration, lifecycle and plumbing.
pub(crate) struct Proc {
    pub group: String,
    pub cfg: ProcessConfig,
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
    /// CPU % between two stats readings.
    cpu: CpuSampler,
    /// The main pid exited but its cgroup still holds processes: the exit is
    /// reported once the cgroup is empty ("stopped" means nothing is left).
    draining: Option<Drain>,
}

impl Proc {
    fn new(group: &str, cfg: &ProcessConfig, output: Output) -> Proc {
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
            cpu: CpuSampler::new(),
            draining: None,
        }
    }
}

/// A main-pid exit held back until the process's cgroup is empty.
struct Drain {
    status: ExitStatus,
    at: Clock,
    /// When leftovers get SIGKILL (unless a stop's own deadline does it).
    kill_at: Option<Instant>,
    /// No inotify watch: re-check on a short timer.
    poll: bool,
}

/// What a timer entry is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Timer {
    /// The state machine's deadline.
    Machine,
    /// A drain's kill deadline or poll.
    Drain,
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
) -> Option<Result<(), Fault>> {
    match kind {
        WaitKind::Start if !spawnerr.is_empty() => Some(Err(Fault::new(FaultCode::SpawnError, name))),
        WaitKind::Start if !matches!(state, ProcessState::Starting | ProcessState::Running) => {
            Some(Err(Fault::new(FaultCode::AbnormalTermination, name)))
        }
        WaitKind::Start => (state == ProcessState::Running).then_some(Ok(())),
        WaitKind::Stop => state.is_stopped().then_some(Ok(())),
    }
}

/// Why [`Engine::run`] returned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// Shutdown completed; every process is stopped.
    Shutdown,
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
    /// Groups still to stop for a shutdown/restart, highest priority first.
    stop_queue: Vec<String>,
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
}

fn wall_now() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0)
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
        let (tx, rx) = mpsc::channel(256);
        let (notices, _) = broadcast::channel(4096);
        let base_env: Vec<(OsString, OsString)> = std::env::vars_os().collect();
        let daemon_path = std::env::var("PATH").ok();
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
            next_id: 1,
            base_env,
            daemon_path,
            cgroup_mode: cgroups.mode().to_string(),
            main_log,
            listeners: super::listeners::Listeners::new(&notices), // events: the bus subscribes now
            notices: notices.clone(),
            cgroups,
            empty: EmptyWatch::new(),
        };
        (engine, Handle::new(tx, notices))
    }

    /// Run until shutdown. Creates every group and starts the autostart processes.
    pub async fn run(mut self) -> std::io::Result<Exit> {
        let mut sigchld = signal(SignalKind::child())?;
        self.activate_all();
        self.listeners.start(); // events: run the bus once the startup pools exist
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
                _ = sleep_until(next), if next.is_some() => self.fire_timers(),
                ids = self.empty.changed(), if self.empty.active() => {
                    for id in ids { self.check_drain(id); }
                }
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
        let names: Vec<String> = self.config.groups.iter().map(|g| g.name.clone()).collect();
        for name in names {
            self.activate_group(&name);
        }
        self.notify(Notice::Mood(Mood::Running));
        self.autostart();
    }

    /// Create the processes of a group from the current config (no start).
    fn activate_group(&mut self, name: &str) -> bool {
        if self.groups.contains_key(name) {
            return false;
        }
        let Some(cfg) = self.config.groups.iter().find(|g| g.name == name).cloned() else {
            return false;
        };
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
        for g in self.groups_in_priority() {
            let members = self.groups[&g].members.clone();
            for id in members {
                let p = &self.procs[&id];
                if p.cfg.autostart && !p.machine.ever_started() && p.machine.state() == ProcessState::Stopped
                {
                    self.feed(id, Event::Start);
                }
            }
        }
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
    }

    fn act(&mut self, id: ProcId, action: Action) -> Option<Event> {
        match action {
            Action::Changed(t) => {
                self.on_transition(id, &t);
                None
            }
            Action::Spawn => Some(self.spawn(id)),
            Action::Signal { signal, group } => {
                let group = group || self.procs.get(&id).is_some_and(|p| p.cfg.kill_mode == KillMode::Group);
                self.send_signal(id, signal, group)
            }
            Action::Kill { group } => self.final_kill(id, group),
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
        if !self.procs.contains_key(&id) {
            return Event::SpawnFailed("no such process".into());
        }
        let placement = match self.place(id) {
            Ok(pl) => pl,
            Err(msg) => return Event::SpawnFailed(msg),
        };
        let cgroup_fds = placement.as_ref().map(|pl| pl.raw_fds()).unwrap_or_default();
        let Some(p) = self.procs.get_mut(&id) else { return Event::SpawnFailed("no such process".into()) };
        p.placed = placement.is_some();
        p.last_oom = false;
        p.oom = OomWatch::new();
        p.cpu.reset();
        let path = command::search_path(&p.cfg.environment, self.daemon_path.as_deref());
        let resolved = match command::resolve(&p.cfg.command, &path) {
            Ok(r) => r,
            Err(e) => return Event::SpawnFailed(e.to_string()),
        };
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
        let req = spawn::SpawnRequest {
            name: &p.cfg.name,
            command: &resolved,
            env,
            user: p.cfg.user.as_ref(),
            directory: p.cfg.directory.as_deref(),
            umask: p.cfg.umask,
            redirect_stderr: p.cfg.redirect_stderr,
            cgroup_procs: &cgroup_fds,
            oom_score_adj: p.cfg.oom_score_adj,
        };
        match spawn::spawn(req) {
            Ok(child) => {
                let hooks = self.listeners.spawned(&p.group, &p.cfg, child.pid, &child.stdin); // events
                p.output.attach(&p.cfg, child.pid, child.stdout, child.stderr, child.stdin, hooks);
                self.by_pid.insert(child.pid, id);
                Event::Spawned(child.pid)
            }
            Err(e) => {
                p.output.write_stderr(&p.cfg, &spawn::child::exec_failure_text(&e));
                Event::SpawnFailed(e.to_string())
            }
        }
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
            let Some(outcome) = wait_outcome(w.kind, state, &p.machine.spawnerr, &w.pending[pos].1) else {
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
                    p.output.send_stdin(data).map_err(|_| Fault::new(FaultCode::NoFile, name))
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
        let _ = self.notices.send(notice);
    }

    fn check_mood(&self) -> Result<(), Fault> {
        if self.mood == Mood::Running {
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
        if state.is_running() {
            return Err(Fault::new(FaultCode::AlreadyStarted, name));
        }
        if state == ProcessState::Unknown {
            return Err(Fault::new(FaultCode::Failed, format!("{name} is in an unknown process state")));
        }
        self.feed(id, Event::Start);
        // Pick up an instant exit now rather than after the reply.
        self.reap();
        let p = &self.procs[&id];
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
        for (idx, id) in ids.into_iter().enumerate() {
            if !single && self.procs[&id].machine.state().is_running() {
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
        // Priority order, as supervisord's stopProcessGroup (only shutdown goes in reverse).
        for (idx, id) in ids.into_iter().enumerate() {
            let state = self.procs[&id].machine.state();
            let name = self.namespec(id);
            let (group, pname) = (self.procs[&id].group.clone(), self.procs[&id].cfg.name.clone());
            if !state.is_running() {
                if single {
                    let _ = reply.send(Err(Fault::new(FaultCode::NotRunning, name)));
                    return;
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
                p.output.close();
            }
        }
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
        let old = std::mem::replace(&mut p.cfg.limits, limits.clone());
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
        let mut order = self.groups_in_priority();
        order.reverse();
        self.stop_queue = order;
        self.advance_stop_all();
    }

    /// Stop groups one at a time, highest priority number first. True when all are stopped.
    fn advance_stop_all(&mut self) -> bool {
        while let Some(name) = self.stop_queue.first().cloned() {
            let members = match self.groups.get(&name) {
                Some(g) => self.sorted_members(g),
                None => {
                    self.stop_queue.remove(0);
                    continue;
                }
            };
            for &id in members.iter().rev() {
                match self.procs[&id].machine.state() {
                    ProcessState::Running | ProcessState::Starting => self.feed(id, Event::Stop),
                    ProcessState::Backoff => self.feed(id, Event::GiveUp),
                    _ => {}
                }
            }
            if members.iter().all(|id| self.procs[id].machine.state().is_stopped()) {
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
                p.output.close();
            }
        }
        Some(())
    }

    // ----- information ------------------------------------------------------

    fn info(&self, id: ProcId) -> ProcessInfo {
        let p = &self.procs[&id];
        let mut i = info::process_info(&p.group, &p.cfg, &p.machine, &p.output, wall_now());
        i.oom_kills = p.oom_kills;
        i.cgroup = p.placed.then(|| self.cgroups.path(Self::cg_target(p)));
        if p.last_oom && matches!(i.state, ProcessState::Exited | ProcessState::Backoff | ProcessState::Fatal)
        {
            i.description = "OOM killed".into();
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
        p.limits = Default::default();
    }
    g
}

async fn sleep_until(t: Option<Instant>) {
    match t {
        Some(t) => tokio::time::sleep_until(t.into()).await,
        None => std::future::pending().await,
    }
}
