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
use super::info;
use super::output::Output;
use super::state::{Action, Clock, Event, Level, Machine, ProcessState, Transition};
use crate::config::{Config, GroupConfig, ProcessConfig};
use crate::logs::main_log::{ClearError, MainLogHandle};
use crate::spawn::{self, command};

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
}

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
struct Waiter {
    kind: WaitKind,
    single: bool,
    pending: Vec<(ProcId, String)>,
    results: Vec<OpResult>,
    reply: Option<oneshot::Sender<Result<Vec<OpResult>, Fault>>>,
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
    procs: HashMap<ProcId, Proc>,
    by_pid: HashMap<u32, ProcId>,
    timers: BTreeSet<(Instant, ProcId)>,
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
    pub fn new(config: Config, loader: Loader, main_log: Option<MainLogHandle>) -> (Engine, Handle) {
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
            cgroup_mode: "none".into(),
            main_log,
            listeners: super::listeners::Listeners::new(&notices), // events: the bus subscribes now
            notices: notices.clone(),
        };
        (engine, Handle::new(tx, notices))
    }

    /// Run until shutdown. Creates every group and starts the autostart processes.
    pub async fn run(mut self) -> std::io::Result<Exit> {
        let mut sigchld = signal(SignalKind::child())?;
        self.notify(Notice::Mood(Mood::Running));
        self.activate_all();
        self.listeners.start(); // events: run the bus once the startup pools exist
        loop {
            let next = self.timers.first().map(|(t, _)| *t);
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
            }
            // A reap may race with the SIGCHLD of a just-spawned child; reaping is cheap.
            if self.mood != Mood::Running && self.advance_stop_all() {
                match self.mood {
                    Mood::Shutdown => return Ok(Exit::Shutdown),
                    Mood::Restarting => self.finish_restart(),
                    Mood::Running => {}
                }
            }
        }
    }

    // ----- group lifecycle -------------------------------------------------

    fn activate_all(&mut self) {
        let names: Vec<String> = self.config.groups.iter().map(|g| g.name.clone()).collect();
        for name in names {
            self.activate_group(&name);
        }
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
            self.procs.insert(
                id,
                Proc {
                    group: cfg.name.clone(),
                    cfg: pcfg.clone(),
                    machine: Machine::new(),
                    armed: None,
                    output,
                },
            );
            members.push(id);
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
        let mut queue = vec![event];
        while let Some(ev) = queue.pop() {
            let Some(p) = self.procs.get_mut(&id) else { return };
            let actions = p.machine.handle(&p.cfg, ev, clock());
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
            Action::Signal { signal, group } => self.send_signal(id, signal, group),
            Action::Kill { group } => self.send_signal(id, libc::SIGKILL, group),
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
                self.timers.remove(&(old, id));
            }
            if let Some(new) = want {
                self.timers.insert((new, id));
            }
            p.armed = want;
        }
    }

    fn fire_timers(&mut self) {
        let now = Instant::now();
        while let Some(&(t, id)) = self.timers.first() {
            if t > now {
                break;
            }
            self.timers.pop_first();
            if let Some(p) = self.procs.get_mut(&id) {
                p.armed = None;
            }
            self.feed(id, Event::Deadline);
        }
    }

    fn spawn(&mut self, id: ProcId) -> Event {
        let Some(p) = self.procs.get_mut(&id) else { return Event::SpawnFailed("no such process".into()) };
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
        if let Some(url) = &p.cfg.serverurl {
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
            cgroup_procs: &[],
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
                Some(id) => {
                    if let Some(p) = self.procs.get_mut(&id) {
                        p.output.child_exited();
                    }
                    self.feed(id, Event::Exited(status));
                }
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
        let Some(p) = self.procs.get(&id) else { return };
        let spawnerr = p.machine.spawnerr.clone();
        let mut done = Vec::new();
        for (wi, w) in self.waiters.iter_mut().enumerate() {
            let Some(pos) = w.pending.iter().position(|(pid, _)| *pid == id) else { continue };
            let name = &w.pending[pos].1;
            let outcome = match w.kind {
                WaitKind::Start => {
                    if !spawnerr.is_empty() {
                        Some(Err(Fault::new(FaultCode::SpawnError, name.clone())))
                    } else if !matches!(t.to, ProcessState::Starting | ProcessState::Running) {
                        Some(Err(Fault::new(FaultCode::AbnormalTermination, name.clone())))
                    } else if t.to == ProcessState::Running {
                        Some(Ok(()))
                    } else {
                        None
                    }
                }
                WaitKind::Stop => t.to.is_stopped().then_some(Ok(())),
            };
            if let Some(outcome) = outcome {
                let (_, _) = w.pending.remove(pos);
                w.results.push(match &outcome {
                    Ok(()) => OpResult::ok(&p.group, &p.cfg.name),
                    Err(f) => OpResult::fault(&p.group, &p.cfg.name, f),
                });
                if let (true, Err(f)) = (w.single, outcome) {
                    if let Some(reply) = w.reply.take() {
                        let _ = reply.send(Err(f));
                    }
                }
                if w.pending.is_empty() {
                    done.push(wi);
                }
            }
        }
        for wi in done.into_iter().rev() {
            let mut w = self.waiters.remove(wi);
            if let Some(reply) = w.reply.take() {
                let _ = reply.send(Ok(w.results));
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
        if let Err(f) = self.check_mood() {
            let _ = reply.send(Err(f));
            return;
        }
        let ids = match self.targets(&target) {
            Ok(ids) => ids,
            Err(f) => {
                let _ = reply.send(Err(f));
                return;
            }
        };
        let single = matches!(target, Target::Process { .. });
        let mut waiter =
            Waiter { kind: WaitKind::Start, single, pending: vec![], results: vec![], reply: None };
        for id in ids {
            if !single && self.procs[&id].machine.state().is_running() {
                continue;
            }
            let p = &self.procs[&id];
            let (group, pname) = (p.group.clone(), p.cfg.name.clone());
            match self.start_one(id, wait) {
                Ok(true) => waiter.results.push(OpResult::ok(&group, &pname)),
                Ok(false) => waiter.pending.push((id, self.namespec(id))),
                Err(f) if single => {
                    let _ = reply.send(Err(f));
                    return;
                }
                Err(f) => waiter.results.push(OpResult::fault(&group, &pname, &f)),
            }
        }
        self.settle(waiter, reply);
    }

    fn cmd_stop(&mut self, target: Target, wait: bool, reply: oneshot::Sender<Result<Vec<OpResult>, Fault>>) {
        if let Err(f) = self.check_mood() {
            let _ = reply.send(Err(f));
            return;
        }
        let ids = match self.targets(&target) {
            Ok(ids) => ids,
            Err(f) => {
                let _ = reply.send(Err(f));
                return;
            }
        };
        let single = matches!(target, Target::Process { .. });
        let mut waiter =
            Waiter { kind: WaitKind::Stop, single, pending: vec![], results: vec![], reply: None };
        // Stop in reverse priority order, as supervisord's stop_all.
        for id in ids.into_iter().rev() {
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
            self.feed(id, Event::Stop);
            self.reap();
            let p = &self.procs[&id];
            if p.machine.state() == ProcessState::Unknown {
                let f = Fault::new(FaultCode::Failed, p.machine.spawnerr.clone());
                if single {
                    let _ = reply.send(Err(f));
                    return;
                }
                waiter.results.push(OpResult::fault(&group, &pname, &f));
            } else if !wait || p.machine.state().is_stopped() {
                waiter.results.push(OpResult::ok(&group, &pname));
            } else {
                waiter.pending.push((id, name));
            }
        }
        self.settle(waiter, reply);
    }

    /// Reply now if nothing is pending, else park the waiter.
    fn settle(&mut self, mut waiter: Waiter, reply: oneshot::Sender<Result<Vec<OpResult>, Fault>>) {
        if waiter.pending.is_empty() {
            let _ = reply.send(Ok(waiter.results));
        } else {
            waiter.reply = Some(reply);
            self.waiters.push(waiter);
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
        let mut diff = ConfigDiff::default();
        for g in &new.groups {
            match self.groups.get(&g.name) {
                None => diff.added.push(g.name.clone()),
                Some(active) if active.cfg != *g => diff.changed.push(g.name.clone()),
                Some(_) => {}
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
        for id in g.members {
            if let Some(mut p) = self.procs.remove(&id) {
                if let Some(t) = p.armed.take() {
                    self.timers.remove(&(t, id));
                }
                p.output.close();
            }
        }
        Ok(())
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
        match (self.loader)() {
            Ok(cfg) => self.config = cfg,
            Err(e) => tracing::error!("configuration not reloaded, keeping the previous one: {e}"),
        }
        let names: Vec<String> = self.groups.keys().cloned().collect();
        for n in names {
            let _ = self.cmd_remove_group_unchecked(&n);
        }
        self.mood = Mood::Running;
        self.notify(Notice::Mood(Mood::Running));
        self.activate_all();
    }

    fn cmd_remove_group_unchecked(&mut self, name: &str) -> Option<()> {
        let g = self.groups.remove(name)?;
        self.notify(Notice::GroupRemoved(name.to_string()));
        for id in g.members {
            if let Some(mut p) = self.procs.remove(&id) {
                if let Some(t) = p.armed.take() {
                    self.timers.remove(&(t, id));
                }
                p.output.close();
            }
        }
        Some(())
    }

    // ----- information ------------------------------------------------------

    fn info(&self, id: ProcId) -> ProcessInfo {
        let p = &self.procs[&id];
        info::process_info(&p.group, &p.cfg, &p.machine, &p.output, wall_now())
    }

    fn config_info(&self) -> Vec<ConfigInfo> {
        let mut v = Vec::new();
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

async fn sleep_until(t: Option<Instant>) {
    match t {
        Some(t) => tokio::time::sleep_until(t.into()).await,
        None => std::future::pending().await,
    }
}
