//! The process lifecycle as a pure state machine.
//!
//! `(state, event, clock) -> (state, actions)`: nothing here forks, signals or
//! sleeps. The engine feeds events (requests, spawn results, exits, deadlines)
//! and carries out the returned [`Action`]s. Transitions follow supervisord's
//! `process.py` exactly, except that work supervisord defers to its next
//! one-second loop tick happens at once here (there is no tick).

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use crate::config::{AutoRestart, ProcessConfig, Readiness};

/// supervisord's process states, with their numeric codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ProcessState {
    /// Not running; never started or stopped on request.
    Stopped = 0,
    /// Spawned, waiting for `startsecs`.
    Starting = 10,
    /// Up for longer than `startsecs`.
    Running = 20,
    /// Exited too quickly; waiting to retry.
    Backoff = 30,
    /// Stop signal sent; waiting for exit.
    Stopping = 40,
    /// Exited on its own from RUNNING.
    Exited = 100,
    /// Gave up after too many failed starts.
    Fatal = 200,
    /// Signalling failed unexpectedly.
    Unknown = 1000,
}

impl ProcessState {
    /// Upper-case name (`RUNNING`).
    pub fn name(self) -> &'static str {
        match self {
            ProcessState::Stopped => "STOPPED",
            ProcessState::Starting => "STARTING",
            ProcessState::Running => "RUNNING",
            ProcessState::Backoff => "BACKOFF",
            ProcessState::Stopping => "STOPPING",
            ProcessState::Exited => "EXITED",
            ProcessState::Fatal => "FATAL",
            ProcessState::Unknown => "UNKNOWN",
        }
    }

    /// Numeric code.
    pub fn code(self) -> i32 {
        self as i32
    }

    /// supervisord's STOPPED_STATES.
    pub fn is_stopped(self) -> bool {
        matches!(
            self,
            ProcessState::Stopped | ProcessState::Exited | ProcessState::Fatal | ProcessState::Unknown
        )
    }

    /// supervisord's RUNNING_STATES (BACKOFF counts as running).
    pub fn is_running(self) -> bool {
        matches!(self, ProcessState::Running | ProcessState::Backoff | ProcessState::Starting)
    }

    /// supervisord's SIGNALLABLE_STATES.
    pub fn is_signallable(self) -> bool {
        matches!(self, ProcessState::Running | ProcessState::Starting | ProcessState::Stopping)
    }
}

/// How a child ended, decoded from its wait status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitStatus {
    /// `exit(code)`.
    Code(i32),
    /// Killed by a signal.
    Signal {
        /// Signal number.
        signal: i32,
        /// A core file was written.
        core: bool,
    },
    /// The process was not a child of this daemon (adopted after a crash):
    /// it is gone, but its exit status cannot be known.
    Unknown,
}

impl ExitStatus {
    /// supervisord's `es`: the exit code, or -1 when killed by a signal.
    pub fn es(self) -> i32 {
        match self {
            ExitStatus::Code(c) => c,
            ExitStatus::Signal { .. } | ExitStatus::Unknown => -1,
        }
    }

    /// supervisord's text: `exit status N` / `terminated by SIGTERM` (+ ` (core dumped)`).
    pub fn describe(self) -> String {
        match self {
            ExitStatus::Code(c) => format!("exit status {c}"),
            ExitStatus::Unknown => "exit status unknown: adopted, not a child of this corrald".to_string(),
            ExitStatus::Signal { signal, core } => {
                let core = if core { " (core dumped)" } else { "" };
                format!("terminated by {}{}", signal_name(signal), core)
            }
        }
    }
}

/// `SIGTERM`-style name of a signal number, or `signal N` when unknown.
pub fn signal_name(signal: i32) -> String {
    match nix::sys::signal::Signal::try_from(signal) {
        Ok(s) => s.as_str().to_string(),
        Err(_) => format!("signal {signal}"),
    }
}

/// Severity of a log line the machine asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    /// INFO
    Info,
    /// WARN
    Warn,
    /// DEBG
    Debug,
}

/// A state change, with the fields supervisord's PROCESS_STATE events carry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transition {
    /// Previous state.
    pub from: ProcessState,
    /// New state.
    pub to: ProcessState,
    /// Pid at the time of the change (0 if none).
    pub pid: u32,
    /// Backoff count (STARTING: before this start; BACKOFF: after increment).
    pub tries: u32,
    /// For EXITED: whether the exit code was expected.
    pub expected: Option<bool>,
}

/// What the engine must do after an event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// The state changed (feeds events, waiters and D-Bus).
    Changed(Transition),
    /// Fork and exec the program now; answer with `Spawned` or `SpawnFailed`.
    Spawn,
    /// Send a signal to the main pid (`group`: to its process group).
    Signal {
        /// Signal number.
        signal: i32,
        /// Signal the process group (`-pid`) instead of the pid.
        group: bool,
    },
    /// Final kill after `stopwaitsecs`: SIGKILL (to the group if `group`);
    /// the engine also kills the whole cgroup when the kill mode says so.
    Kill {
        /// Kill the process group too.
        group: bool,
    },
    /// Write a line to the activity log.
    Log(Level, String),
    /// Report the process unhealthy (status, events) with this reason.
    Unhealthy(String),
}

/// One process's lifecycle state and counters.
#[derive(Debug, Clone)]
pub struct Machine {
    state: ProcessState,
    /// Failed starts since the last time the process reached RUNNING.
    backoff: u32,
    /// Monotonic time of the last spawn.
    laststart: Option<Instant>,
    /// Wall-clock epoch seconds of the last spawn (0: never).
    pub start_wall: i64,
    /// Wall-clock epoch seconds of the last exit (0: never).
    pub stop_wall: i64,
    /// Running pid (0: none).
    pub pid: u32,
    /// Last exit status (`es`), 0 when none.
    pub exitstatus: i32,
    /// Last spawn error text.
    pub spawnerr: String,
    /// Next moment the machine wants an [`Event::Deadline`].
    deadline: Option<Instant>,
    /// A stop was requested and the process has not exited yet.
    killing: bool,
    /// Spawns since creation, minus the first (restarts).
    pub restarts: u64,
    /// corral `backoff=`: consecutive short runs that ended in a restart.
    crashes: u32,
    /// corral `start_limit_burst=`: the most recent start times, at most
    /// `start_limit_burst` of them (empty without a rate limit), so a crash
    /// loop never grows it.
    starts: VecDeque<Instant>,
    /// The daemon killed the process on its own (not ready in time, missed
    /// watchdog, failed health check): why, until it exits.
    abort: Option<String>,
}

/// Something that happened to a process.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// Autostart or a start request (the engine has checked it is allowed).
    Start,
    /// The spawn succeeded.
    Spawned(u32),
    /// The spawn failed before or during exec.
    SpawnFailed(String),
    /// The main pid was reaped.
    Exited(ExitStatus),
    /// A stop request.
    Stop,
    /// Shutdown: a BACKOFF process gives up (FATAL) instead of retrying.
    GiveUp,
    /// The deadline returned by [`Machine::deadline`] passed.
    Deadline,
    /// Signalling failed with an unexpected error.
    SignalError(String),
    /// corral `ready=`: the process reported (or a probe found) that it is ready.
    Ready,
    /// corral `watchdog_sec=`: a `WATCHDOG=1` ping.
    WatchdogPing,
    /// `EXTEND_TIMEOUT_USEC=`: the ready timeout (STARTING) or the watchdog
    /// deadline (RUNNING) is at least this far away.
    ExtendTimeout(Duration),
    /// Kill the process (its whole cgroup) and treat the exit as a failure
    /// with this reason: a failed start from STARTING, a restart from RUNNING.
    Fail(String),
}

/// The clock a transition reads: monotonic for timers, wall for display.
#[derive(Debug, Clone, Copy)]
pub struct Clock {
    /// Monotonic now.
    pub mono: Instant,
    /// Wall-clock epoch seconds now.
    pub wall: i64,
}

impl Default for Machine {
    fn default() -> Self {
        Machine::new()
    }
}

impl Machine {
    /// A process that was never started.
    pub fn new() -> Machine {
        Machine {
            state: ProcessState::Stopped,
            backoff: 0,
            laststart: None,
            start_wall: 0,
            stop_wall: 0,
            pid: 0,
            exitstatus: 0,
            spawnerr: String::new(),
            deadline: None,
            killing: false,
            restarts: 0,
            crashes: 0,
            starts: VecDeque::new(),
            abort: None,
        }
    }

    /// Current state.
    pub fn state(&self) -> ProcessState {
        self.state
    }

    /// When the machine next needs an [`Event::Deadline`].
    pub fn deadline(&self) -> Option<Instant> {
        self.deadline
    }

    /// Whether the process was ever spawned.
    pub fn ever_started(&self) -> bool {
        self.laststart.is_some()
    }

    /// Current backoff count.
    pub fn backoff(&self) -> u32 {
        self.backoff
    }

    /// Apply one event. `cfg` is the process's configuration.
    pub fn handle(&mut self, cfg: &ProcessConfig, event: Event, now: Clock) -> Vec<Action> {
        let mut out = Vec::new();
        match event {
            Event::Start => {
                if matches!(
                    self.state,
                    ProcessState::Stopped
                        | ProcessState::Exited
                        | ProcessState::Fatal
                        | ProcessState::Backoff
                ) {
                    // A start by hand is a fresh start: pacing and rate limit begin anew.
                    self.crashes = 0;
                    self.starts.clear();
                    self.begin_spawn(cfg, now, &mut out);
                }
            }
            Event::Spawned(pid) => {
                if self.state == ProcessState::Starting {
                    self.pid = pid;
                    // When many start together the exec may come a little after the
                    // start was decided: uptime and startsecs count from the exec.
                    self.laststart = Some(now.mono);
                    self.start_wall = now.wall;
                    out.push(Action::Log(Level::Info, format!("spawned: '{}' with pid {}", cfg.name, pid)));
                    if cfg.health.ready != Readiness::Startsecs {
                        // Wait for the readiness signal; a zero timeout waits for ever.
                        let t = cfg.health.ready_timeout;
                        self.deadline = (!t.is_zero()).then(|| now.mono + t);
                    } else if cfg.startsecs == 0 {
                        self.enter_running(cfg, now, &mut out);
                    } else {
                        // supervisord needs `now - laststart > startsecs`: strictly more.
                        self.deadline =
                            Some(now.mono + Duration::from_secs(cfg.startsecs) + Duration::from_millis(1));
                    }
                }
            }
            Event::SpawnFailed(msg) => {
                if self.state == ProcessState::Starting {
                    out.push(Action::Log(Level::Info, format!("spawnerr: {msg}")));
                    self.spawnerr = msg;
                    self.enter_backoff(cfg, now, &mut out);
                }
            }
            Event::Exited(status) => self.on_exit(cfg, status, now, &mut out),
            Event::Stop => match self.state {
                ProcessState::Starting | ProcessState::Running => {
                    self.killing = true;
                    self.deadline = Some(now.mono + Duration::from_secs(cfg.stopwaitsecs));
                    let group = cfg.stopasgroup;
                    out.push(Action::Log(
                        Level::Debug,
                        format!(
                            "killing {} (pid {}) {}with signal {}",
                            cfg.name,
                            self.pid,
                            if group { "process group " } else { "" },
                            signal_name(cfg.stopsignal)
                        ),
                    ));
                    self.change(ProcessState::Stopping, None, &mut out);
                    out.push(Action::Signal { signal: cfg.stopsignal, group });
                }
                ProcessState::Backoff => {
                    self.deadline = None;
                    self.change(ProcessState::Stopped, None, &mut out);
                }
                _ => {}
            },
            Event::GiveUp => {
                if self.state == ProcessState::Backoff {
                    self.give_up(&mut out);
                }
            }
            Event::Deadline => self.on_deadline(cfg, now, &mut out),
            Event::SignalError(msg) => {
                if self.state.is_signallable() {
                    out.push(Action::Log(Level::Warn, msg.clone()));
                    self.spawnerr = msg;
                    self.deadline = None;
                    self.change(ProcessState::Unknown, None, &mut out);
                }
            }
            Event::Ready => {
                if self.state == ProcessState::Starting
                    && self.pid != 0
                    && !self.killing
                    && self.abort.is_none()
                    && cfg.health.ready != Readiness::Startsecs
                {
                    self.enter_running(cfg, now, &mut out);
                }
            }
            Event::WatchdogPing => {
                if let (ProcessState::Running, Some(w), false, None) =
                    (self.state, cfg.health.watchdog, self.killing, &self.abort)
                {
                    self.deadline = Some(now.mono + w);
                }
            }
            Event::ExtendTimeout(d) => {
                let waiting = match self.state {
                    ProcessState::Starting => cfg.health.ready != Readiness::Startsecs,
                    ProcessState::Running => cfg.health.watchdog.is_some(),
                    _ => false,
                };
                if waiting && !self.killing && self.abort.is_none() {
                    if let Some(dl) = self.deadline {
                        self.deadline = Some(dl.max(now.mono + d));
                    }
                }
            }
            Event::Fail(reason) => self.fail(cfg, reason, now, &mut out),
        }
        out
    }

    /// Kill the process because the daemon gave up on it; the exit then counts as a failure.
    fn fail(&mut self, cfg: &ProcessConfig, reason: String, now: Clock, out: &mut Vec<Action>) {
        if !matches!(self.state, ProcessState::Starting | ProcessState::Running)
            || self.pid == 0
            || self.killing
            || self.abort.is_some()
        {
            return;
        }
        out.push(Action::Log(
            Level::Warn,
            format!("killing '{}' ({}) with SIGKILL: {reason}", cfg.name, self.pid),
        ));
        self.abort = Some(reason);
        // Repeat every stopwaitsecs while it is still alive, as a stop does.
        self.deadline = Some(now.mono + Duration::from_secs(cfg.stopwaitsecs.max(1)));
        out.push(Action::Kill { group: true });
    }

    /// An automatic restart, unless `start_limit_burst` starts already happened
    /// within `start_limit_interval`: then FATAL, saying why.
    fn auto_spawn(&mut self, cfg: &ProcessConfig, now: Clock, out: &mut Vec<Action>) {
        if let Some(burst) = cfg.restart.start_limit_burst {
            let window = Duration::from_secs(cfg.restart.start_limit_interval);
            while self.starts.front().is_some_and(|t| now.mono.saturating_duration_since(*t) >= window) {
                self.starts.pop_front();
            }
            if self.starts.len() >= burst as usize {
                self.spawnerr = format!(
                    "start rate limit reached: {burst} starts within {} seconds",
                    cfg.restart.start_limit_interval
                );
                out.push(Action::Log(Level::Info, format!("gave up: {} {}", cfg.name, self.spawnerr)));
                self.deadline = None;
                self.backoff = 0;
                self.change(ProcessState::Fatal, None, out);
                return;
            }
        }
        self.begin_spawn(cfg, now, out);
    }

    fn begin_spawn(&mut self, cfg: &ProcessConfig, now: Clock, out: &mut Vec<Action>) {
        // Only the rate limit reads the start times, and only the last `burst` of them.
        match cfg.restart.start_limit_burst {
            Some(burst) => {
                self.starts.push_back(now.mono);
                while self.starts.len() > burst as usize {
                    self.starts.pop_front();
                }
            }
            None => self.starts.clear(),
        }
        if self.laststart.is_some() {
            self.restarts += 1;
        }
        self.laststart = Some(now.mono);
        self.start_wall = now.wall;
        self.deadline = None;
        self.killing = false;
        self.abort = None;
        self.spawnerr.clear();
        self.exitstatus = 0;
        self.change(ProcessState::Starting, None, out);
        out.push(Action::Spawn);
    }

    fn enter_running(&mut self, cfg: &ProcessConfig, now: Clock, out: &mut Vec<Action>) {
        // With `watchdog_sec=`, RUNNING's deadline is the next ping's.
        self.deadline = cfg.health.watchdog.map(|w| now.mono + w);
        self.backoff = 0;
        self.change(ProcessState::Running, None, out);
        let why = match &cfg.health.ready {
            Readiness::Startsecs => {
                format!("process has stayed up for > than {} seconds (startsecs)", cfg.startsecs)
            }
            Readiness::Notify => "process reported READY=1 (ready=notify)".to_string(),
            Readiness::Fd(n) => format!("process wrote to fd {n} (ready=fd:{n})"),
            Readiness::Probe(p) => format!("probe passed (ready={})", p.describe()),
        };
        out.push(Action::Log(Level::Info, format!("success: {} entered RUNNING state, {why}", cfg.name)));
    }

    fn enter_backoff(&mut self, cfg: &ProcessConfig, now: Clock, out: &mut Vec<Action>) {
        self.backoff = self.backoff.saturating_add(1);
        self.change(ProcessState::Backoff, None, out);
        if self.backoff > cfg.startretries {
            self.give_up(out);
            out.push(Action::Log(
                Level::Info,
                format!("gave up: {} entered FATAL state, too many start retries too quickly", cfg.name),
            ));
        } else {
            // supervisord's linear 1 s, 2 s, 3 s… unless `backoff=` says otherwise.
            self.deadline = Some(now.mono + Duration::from_secs(cfg.restart.delay(self.backoff)));
        }
    }

    fn give_up(&mut self, out: &mut Vec<Action>) {
        self.deadline = None;
        self.backoff = 0;
        self.change(ProcessState::Fatal, None, out);
    }

    fn on_exit(&mut self, cfg: &ProcessConfig, status: ExitStatus, now: Clock, out: &mut Vec<Action>) {
        if self.pid == 0 {
            return;
        }
        self.stop_wall = now.wall;
        let es = status.es();
        let expected = cfg.exitcodes.contains(&es);
        let too_quickly = match self.laststart {
            Some(t) => now.mono.saturating_duration_since(t) < Duration::from_secs(cfg.startsecs),
            None => false,
        };
        let text = status.describe();
        let abort = self.abort.take();
        if self.killing {
            self.killing = false;
            self.deadline = None;
            self.exitstatus = es;
            let level = if expected { Level::Info } else { Level::Warn };
            self.change(ProcessState::Stopped, None, out);
            out.push(Action::Log(level, format!("stopped: {} ({})", cfg.name, text)));
        } else if let (Some(reason), ProcessState::Starting) = (&abort, self.state) {
            // Not ready in time: a failed start, like exiting too quickly.
            self.exitstatus = 0;
            self.spawnerr = reason.clone();
            out.push(Action::Log(Level::Warn, format!("exited: {} ({}; {reason})", cfg.name, text)));
            self.pid = 0;
            self.enter_backoff(cfg, now, out);
            return;
        } else if (too_quickly || cfg.health.ready != Readiness::Startsecs)
            && self.state == ProcessState::Starting
        {
            // An exit before the readiness signal is a failed start too.
            self.exitstatus = 0;
            self.spawnerr = "Exited too quickly (process log may have details)".into();
            out.push(Action::Log(Level::Warn, format!("exited: {} ({}; not expected)", cfg.name, text)));
            self.pid = 0;
            self.enter_backoff(cfg, now, out);
            return;
        } else {
            self.deadline = None;
            self.backoff = 0;
            self.exitstatus = es;
            if self.state == ProcessState::Starting {
                self.change(ProcessState::Running, None, out);
            }
            if expected {
                self.change(ProcessState::Exited, Some(true), out);
                out.push(Action::Log(Level::Info, format!("exited: {} ({}; expected)", cfg.name, text)));
            } else {
                self.spawnerr = match &abort {
                    Some(reason) => reason.clone(),
                    None => format!("Bad exit code {es}"),
                };
                self.change(ProcessState::Exited, Some(false), out);
                let why = abort.as_deref().unwrap_or("not expected");
                out.push(Action::Log(Level::Warn, format!("exited: {} ({}; {why})", cfg.name, text)));
            }
            let ran = self.laststart.map(|t| now.mono.saturating_duration_since(t)).unwrap_or_default();
            self.pid = 0;
            // A kill the daemon decided on (watchdog, health check) always restarts.
            let restart = abort.is_some()
                || match cfg.autorestart {
                    AutoRestart::Always => true,
                    AutoRestart::Unexpected => !expected,
                    AutoRestart::Never => false,
                };
            if !restart {
                return;
            }
            if cfg.restart.backoff.is_none() || ran >= Duration::from_secs(cfg.restart.backoff_reset) {
                // supervisord restarts at once; so does corral after a long enough run.
                self.crashes = 0;
                self.auto_spawn(cfg, now, out);
            } else {
                // A short run: wait as `backoff=` says before restarting, in BACKOFF.
                self.crashes = self.crashes.saturating_add(1);
                let delay = cfg.restart.delay(self.crashes);
                // A kill the daemon decided on keeps its reason visible while the restart waits.
                let why = match &abort {
                    Some(reason) => format!("{text}; {reason}"),
                    None => text,
                };
                self.spawnerr = format!("exited ({why}) after {} s; restarting in {delay} s", ran.as_secs());
                self.deadline = Some(now.mono + Duration::from_secs(delay));
                self.change(ProcessState::Backoff, None, out);
            }
            return;
        }
        self.pid = 0;
    }

    fn on_deadline(&mut self, cfg: &ProcessConfig, now: Clock, out: &mut Vec<Action>) {
        match self.deadline {
            Some(d) if d <= now.mono => {}
            _ => return,
        }
        if self.abort.is_some() && !self.killing && self.state.is_signallable() {
            // Still alive after the kill: kill again.
            self.deadline = Some(now.mono + Duration::from_secs(cfg.stopwaitsecs.max(1)));
            out.push(Action::Kill { group: true });
            return;
        }
        match self.state {
            ProcessState::Starting if cfg.health.ready != Readiness::Startsecs => {
                let t = cfg.health.ready_timeout;
                self.fail(cfg, format!("not ready within {}", secs_text(t)), now, out);
            }
            ProcessState::Starting => self.enter_running(cfg, now, out),
            ProcessState::Running if cfg.health.watchdog.is_some() => {
                let w = cfg.health.watchdog.unwrap_or_default();
                let reason = format!("watchdog: no WATCHDOG=1 within {}", secs_text(w));
                out.push(Action::Unhealthy(reason.clone()));
                self.fail(cfg, reason, now, out);
            }
            ProcessState::Backoff => {
                if self.backoff <= cfg.startretries {
                    self.auto_spawn(cfg, now, out);
                }
            }
            ProcessState::Stopping => {
                out.push(Action::Log(
                    Level::Warn,
                    format!("killing '{}' ({}) with SIGKILL", cfg.name, self.pid),
                ));
                // Repeat every stopwaitsecs while it is still alive, as supervisord.
                self.deadline = Some(now.mono + Duration::from_secs(cfg.stopwaitsecs.max(1)));
                out.push(Action::Kill { group: cfg.killasgroup });
            }
            _ => self.deadline = None,
        }
    }

    /// Whether the process is being killed because the daemon gave up on it.
    pub fn aborting(&self) -> Option<&str> {
        self.abort.as_deref()
    }

    fn change(&mut self, to: ProcessState, expected: Option<bool>, out: &mut Vec<Action>) {
        let from = self.state;
        self.state = to;
        out.push(Action::Changed(Transition { from, to, pid: self.pid, tries: self.backoff, expected }));
    }
}

/// `5 s`, `1.5 s`: a duration as the activity log and status show it.
pub fn secs_text(d: Duration) -> String {
    let ms = d.as_millis();
    if ms.is_multiple_of(1000) {
        format!("{} s", ms / 1000)
    } else {
        format!("{} s", d.as_secs_f64())
    }
}

/// A [`Machine`] in a form that survives a re-exec: instants become ages and
/// remaining durations (the monotonic clock itself carries over, but `Instant`
/// has no portable representation).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SavedMachine {
    /// supervisord's numeric state code.
    pub state: i32,
    /// Failed starts since the last RUNNING.
    pub backoff: u32,
    /// Milliseconds since the last spawn.
    pub laststart_age_ms: Option<u64>,
    /// Wall-clock epoch seconds of the last spawn.
    pub start_wall: i64,
    /// Wall-clock epoch seconds of the last exit.
    pub stop_wall: i64,
    /// Running pid.
    pub pid: u32,
    /// Last exit status.
    pub exitstatus: i32,
    /// Last spawn error.
    pub spawnerr: String,
    /// Milliseconds until the pending deadline.
    pub deadline_in_ms: Option<u64>,
    /// A stop was requested and the process has not exited yet.
    pub killing: bool,
    /// Restarts so far.
    pub restarts: u64,
    /// Consecutive short runs (`backoff=` pacing).
    pub crashes: u32,
    /// Ages in milliseconds of the recent automatic starts (`start_limit_burst=`).
    pub starts_age_ms: Vec<u64>,
    /// Why the daemon is killing the process on its own (readiness timeout, watchdog,
    /// health check), until it exits.
    #[serde(default)]
    pub abort: Option<String>,
}

fn state_from_code(code: i32) -> Option<ProcessState> {
    use ProcessState::*;
    [Stopped, Starting, Running, Backoff, Stopping, Exited, Fatal, Unknown]
        .into_iter()
        .find(|s| s.code() == code)
}

impl Machine {
    /// Everything the machine knows, relative to `now`.
    pub fn save(&self, now: Instant) -> SavedMachine {
        let age = |t: Instant| now.saturating_duration_since(t).as_millis() as u64;
        SavedMachine {
            state: self.state.code(),
            backoff: self.backoff,
            laststart_age_ms: self.laststart.map(age),
            start_wall: self.start_wall,
            stop_wall: self.stop_wall,
            pid: self.pid,
            exitstatus: self.exitstatus,
            spawnerr: self.spawnerr.clone(),
            deadline_in_ms: self.deadline.map(|d| d.saturating_duration_since(now).as_millis() as u64),
            killing: self.killing,
            restarts: self.restarts,
            crashes: self.crashes,
            starts_age_ms: self.starts.iter().map(|t| age(*t)).collect(),
            abort: self.abort.clone(),
        }
    }

    /// The machine [`save`](Machine::save) described, with its timers counted from `now`;
    /// `None` for an unknown state code.
    pub fn restore(saved: &SavedMachine, now: Instant) -> Option<Machine> {
        let ago = |ms: u64| now.checked_sub(Duration::from_millis(ms)).unwrap_or(now);
        Some(Machine {
            state: state_from_code(saved.state)?,
            backoff: saved.backoff,
            laststart: saved.laststart_age_ms.map(ago),
            start_wall: saved.start_wall,
            stop_wall: saved.stop_wall,
            pid: saved.pid,
            exitstatus: saved.exitstatus,
            spawnerr: saved.spawnerr.clone(),
            deadline: saved.deadline_in_ms.map(|ms| now + Duration::from_millis(ms)),
            killing: saved.killing,
            restarts: saved.restarts,
            crashes: saved.crashes,
            starts: saved.starts_age_ms.iter().map(|ms| ago(*ms)).collect(),
            abort: saved.abort.clone(),
        })
    }
}

#[cfg(test)]
mod tests {
    //! One test per transition, driven by a fake clock.
    use super::*;

    pub(super) fn cfg() -> ProcessConfig {
        ProcessConfig::new("p", "/bin/true")
    }

    struct T {
        m: Machine,
        cfg: ProcessConfig,
        t0: Instant,
        now: Duration,
    }

    impl T {
        fn new(cfg: ProcessConfig) -> T {
            T { m: Machine::new(), cfg, t0: Instant::now(), now: Duration::ZERO }
        }
        fn at(&mut self, secs_millis: u64) -> &mut T {
            self.now = Duration::from_millis(secs_millis);
            self
        }
        fn ev(&mut self, e: Event) -> Vec<Action> {
            let clock = Clock { mono: self.t0 + self.now, wall: 1_000_000 + self.now.as_secs() as i64 };
            self.m.handle(&self.cfg, e, clock)
        }
        fn fire(&mut self) -> Vec<Action> {
            let d = self.m.deadline().expect("a deadline is armed");
            self.now = d - self.t0;
            self.ev(Event::Deadline)
        }
    }

    fn states(actions: &[Action]) -> Vec<(ProcessState, ProcessState)> {
        actions
            .iter()
            .filter_map(|a| match a {
                Action::Changed(t) => Some((t.from, t.to)),
                _ => None,
            })
            .collect()
    }

    fn logs(actions: &[Action]) -> Vec<String> {
        actions
            .iter()
            .filter_map(|a| match a {
                Action::Log(_, m) => Some(m.clone()),
                _ => None,
            })
            .collect()
    }

    use ProcessState::*;

    #[test]
    fn start_goes_starting_and_asks_for_a_spawn() {
        let mut t = T::new(cfg());
        let a = t.ev(Event::Start);
        assert_eq!(states(&a), vec![(Stopped, Starting)]);
        assert!(a.contains(&Action::Spawn));
        assert!(matches!(&a[0], Action::Changed(tr) if tr.tries == 0));
    }

    #[test]
    fn starting_becomes_running_only_after_startsecs() {
        let mut t = T::new(cfg());
        t.ev(Event::Start);
        let a = t.ev(Event::Spawned(42));
        assert_eq!(logs(&a), vec!["spawned: 'p' with pid 42"]);
        let d = t.m.deadline().unwrap();
        assert!(d - t.t0 > Duration::from_secs(1), "strictly more than startsecs");
        t.at(500);
        assert!(t.ev(Event::Deadline).is_empty(), "an early deadline event changes nothing");
        let a = t.fire();
        assert_eq!(states(&a), vec![(Starting, Running)]);
        assert_eq!(
            logs(&a),
            vec!["success: p entered RUNNING state, process has stayed up for > than 1 seconds (startsecs)"]
        );
        assert_eq!(t.m.deadline(), None);
    }

    #[test]
    fn startsecs_zero_is_running_at_once() {
        let mut c = cfg();
        c.startsecs = 0;
        let mut t = T::new(c);
        t.ev(Event::Start);
        let a = t.ev(Event::Spawned(1));
        assert_eq!(states(&a), vec![(Starting, Running)]);
    }

    #[test]
    fn quick_exit_goes_backoff_with_linear_delay_then_fatal() {
        let mut c = cfg();
        c.startretries = 2;
        let mut t = T::new(c);
        let mut seen = vec![];
        seen.extend(states(&t.ev(Event::Start)));
        for attempt in 1..=3u32 {
            t.ev(Event::Spawned(attempt));
            let a = t.ev(Event::Exited(ExitStatus::Code(0)));
            seen.extend(states(&a));
            assert_eq!(t.m.spawnerr, "Exited too quickly (process log may have details)");
            assert_eq!(t.m.exitstatus, 0);
            if attempt < 3 {
                let before = t.now;
                let a = t.fire();
                assert_eq!(
                    t.now - before,
                    Duration::from_secs(attempt as u64),
                    "backoff grows by one second"
                );
                seen.extend(states(&a));
                assert!(a.contains(&Action::Spawn));
            } else {
                assert!(logs(&a)
                    .contains(&"gave up: p entered FATAL state, too many start retries too quickly".into()));
            }
        }
        assert_eq!(
            seen,
            vec![
                (Stopped, Starting),
                (Starting, Backoff),
                (Backoff, Starting),
                (Starting, Backoff),
                (Backoff, Starting),
                (Starting, Backoff),
                (Backoff, Fatal)
            ]
        );
        assert_eq!(t.m.state(), Fatal);
        assert_eq!(t.m.deadline(), None);
    }

    #[test]
    fn backoff_and_starting_events_carry_tries() {
        let mut t = T::new(cfg());
        t.ev(Event::Start);
        t.ev(Event::Spawned(1));
        let a = t.ev(Event::Exited(ExitStatus::Code(1)));
        assert!(matches!(&a[1], Action::Changed(tr) if tr.to == Backoff && tr.tries == 1));
        let a = t.fire();
        assert!(matches!(&a[0], Action::Changed(tr) if tr.to == Starting && tr.tries == 1));
    }

    #[test]
    fn spawn_failure_goes_backoff_with_the_error() {
        let mut t = T::new(cfg());
        t.ev(Event::Start);
        let a = t.ev(Event::SpawnFailed("can't find command '/nope'".into()));
        assert_eq!(states(&a), vec![(Starting, Backoff)]);
        assert_eq!(t.m.spawnerr, "can't find command '/nope'");
        assert_eq!(logs(&a), vec!["spawnerr: can't find command '/nope'"]);
    }

    fn running(c: ProcessConfig) -> T {
        let mut t = T::new(c);
        t.ev(Event::Start);
        t.ev(Event::Spawned(7));
        t.fire();
        assert_eq!(t.m.state(), Running);
        t
    }

    #[test]
    fn expected_exit_from_running_is_exited_without_restart_under_unexpected() {
        let mut t = running(cfg());
        t.at(5000);
        let a = t.ev(Event::Exited(ExitStatus::Code(0)));
        assert_eq!(states(&a), vec![(Running, Exited)]);
        assert!(matches!(&a[0], Action::Changed(tr) if tr.expected == Some(true) && tr.pid == 7));
        assert_eq!(logs(&a), vec!["exited: p (exit status 0; expected)"]);
        assert!(!a.contains(&Action::Spawn));
        assert_eq!(t.m.pid, 0);
    }

    #[test]
    fn unexpected_exit_restarts_and_records_bad_exit_code() {
        let mut t = running(cfg());
        t.at(5000);
        let a = t.ev(Event::Exited(ExitStatus::Code(3)));
        assert_eq!(states(&a), vec![(Running, Exited), (Exited, Starting)]);
        assert_eq!(logs(&a), vec!["exited: p (exit status 3; not expected)"]);
        assert!(a.contains(&Action::Spawn));
        assert_eq!(t.m.restarts, 1);
    }

    #[test]
    fn autorestart_false_leaves_exited_with_spawnerr() {
        let mut c = cfg();
        c.autorestart = AutoRestart::Never;
        let mut t = running(c);
        t.at(5000);
        let a = t.ev(Event::Exited(ExitStatus::Code(3)));
        assert_eq!(states(&a), vec![(Running, Exited)]);
        assert_eq!(t.m.spawnerr, "Bad exit code 3");
        assert_eq!(t.m.exitstatus, 3);
    }

    #[test]
    fn autorestart_true_restarts_even_expected_exits() {
        let mut c = cfg();
        c.autorestart = AutoRestart::Always;
        let mut t = running(c);
        t.at(5000);
        let a = t.ev(Event::Exited(ExitStatus::Code(0)));
        assert_eq!(states(&a), vec![(Running, Exited), (Exited, Starting)]);
    }

    #[test]
    fn killed_by_signal_is_unexpected_with_minus_one() {
        let mut c = cfg();
        c.autorestart = AutoRestart::Never;
        let mut t = running(c);
        t.at(5000);
        let a = t.ev(Event::Exited(ExitStatus::Signal { signal: 9, core: false }));
        assert_eq!(logs(&a), vec!["exited: p (terminated by SIGKILL; not expected)"]);
        assert_eq!(t.m.exitstatus, -1);
    }

    #[test]
    fn exit_after_startsecs_but_before_the_timer_goes_running_then_exited() {
        let mut c = cfg();
        c.autorestart = AutoRestart::Never;
        let mut t = T::new(c);
        t.ev(Event::Start);
        t.ev(Event::Spawned(3));
        t.at(1500);
        let a = t.ev(Event::Exited(ExitStatus::Code(0)));
        assert_eq!(states(&a), vec![(Starting, Running), (Running, Exited)]);
    }

    #[test]
    fn stop_signals_then_kills_after_stopwaitsecs_repeatedly() {
        let mut c = cfg();
        c.stopwaitsecs = 2;
        c.stopsignal = 2;
        let mut t = running(c);
        t.at(5000);
        let a = t.ev(Event::Stop);
        assert_eq!(states(&a), vec![(Running, Stopping)]);
        assert!(a.contains(&Action::Signal { signal: 2, group: false }));
        let a = t.fire();
        assert_eq!(t.now, Duration::from_secs(7));
        assert_eq!(logs(&a), vec!["killing 'p' (7) with SIGKILL"]);
        assert!(a.contains(&Action::Kill { group: false }));
        let a = t.fire();
        assert!(a.contains(&Action::Kill { group: false }), "SIGKILL repeats while it lives");
        let a = t.ev(Event::Exited(ExitStatus::Signal { signal: 9, core: false }));
        assert_eq!(states(&a), vec![(Stopping, Stopped)]);
        assert_eq!(logs(&a), vec!["stopped: p (terminated by SIGKILL)"]);
        assert_eq!(t.m.deadline(), None);
    }

    #[test]
    fn stop_with_expected_exit_logs_info_text() {
        let mut t = running(cfg());
        t.ev(Event::Stop);
        let a = t.ev(Event::Exited(ExitStatus::Code(0)));
        assert_eq!(logs(&a), vec!["stopped: p (exit status 0)"]);
        assert_eq!(t.m.exitstatus, 0);
    }

    #[test]
    fn stopasgroup_and_killasgroup_signal_the_group() {
        let mut c = cfg();
        c.stopasgroup = true;
        c.killasgroup = true;
        let mut t = running(c);
        let a = t.ev(Event::Stop);
        assert!(a.contains(&Action::Signal { signal: 15, group: true }));
        assert!(t.fire().contains(&Action::Kill { group: true }));
    }

    #[test]
    fn stop_while_starting_stops() {
        let mut t = T::new(cfg());
        t.ev(Event::Start);
        t.ev(Event::Spawned(9));
        let a = t.ev(Event::Stop);
        assert_eq!(states(&a), vec![(Starting, Stopping)]);
        let a = t.ev(Event::Exited(ExitStatus::Signal { signal: 15, core: false }));
        assert_eq!(states(&a), vec![(Stopping, Stopped)]);
    }

    #[test]
    fn stop_in_backoff_is_stopped_without_signal() {
        let mut t = T::new(cfg());
        t.ev(Event::Start);
        t.ev(Event::Spawned(1));
        t.ev(Event::Exited(ExitStatus::Code(1)));
        let a = t.ev(Event::Stop);
        assert_eq!(states(&a), vec![(Backoff, Stopped)]);
        assert!(!a.iter().any(|x| matches!(x, Action::Signal { .. })));
        assert_eq!(t.m.deadline(), None, "no retry after a stop");
    }

    #[test]
    fn shutdown_gives_up_a_backoff_process() {
        let mut t = T::new(cfg());
        t.ev(Event::Start);
        t.ev(Event::SpawnFailed("x".into()));
        let a = t.ev(Event::GiveUp);
        assert_eq!(states(&a), vec![(Backoff, Fatal)]);
    }

    #[test]
    fn fatal_and_exited_and_stopped_can_be_started_again() {
        for prep in [Fatal, Exited, Stopped] {
            let mut c = cfg();
            c.autorestart = AutoRestart::Never;
            c.startretries = 0;
            let mut t = T::new(c);
            match prep {
                Fatal => {
                    t.ev(Event::Start);
                    t.ev(Event::SpawnFailed("x".into()));
                }
                Exited => {
                    t.ev(Event::Start);
                    t.ev(Event::Spawned(1));
                    t.fire();
                    t.at(9000);
                    t.ev(Event::Exited(ExitStatus::Code(0)));
                }
                _ => {}
            }
            assert_eq!(t.m.state(), prep);
            let a = t.ev(Event::Start);
            assert_eq!(states(&a), vec![(prep, Starting)]);
            assert!(t.m.spawnerr.is_empty(), "a new start clears the last error");
        }
    }

    #[test]
    fn start_while_running_does_nothing() {
        let mut t = running(cfg());
        assert!(t.ev(Event::Start).is_empty());
    }

    #[test]
    fn signal_error_goes_unknown() {
        let mut t = running(cfg());
        let a = t.ev(Event::SignalError("Failed to send".into()));
        assert_eq!(states(&a), vec![(Running, Unknown)]);
    }

    #[test]
    fn exit_text_matches_supervisord() {
        assert_eq!(ExitStatus::Code(3).describe(), "exit status 3");
        assert_eq!(ExitStatus::Signal { signal: 15, core: false }.describe(), "terminated by SIGTERM");
        assert_eq!(
            ExitStatus::Signal { signal: 11, core: true }.describe(),
            "terminated by SIGSEGV (core dumped)"
        );
    }

    #[test]
    fn state_codes_and_classes() {
        assert_eq!(
            [Stopped, Starting, Running, Backoff, Stopping, Exited, Fatal, Unknown].map(|s| s.code()),
            [0, 10, 20, 30, 40, 100, 200, 1000]
        );
        assert!(Backoff.is_running() && !Stopping.is_running() && !Stopping.is_stopped());
        assert!(Stopping.is_signallable() && !Backoff.is_signallable());
    }

    mod readiness {
        //! corral's `ready=`, `watchdog_sec=` and daemon-decided kills (`Event::Fail`).
        use super::*;
        use crate::config::{Probe, Readiness};

        fn notify_cfg() -> ProcessConfig {
            let mut c = ProcessConfig::new("p", "/bin/true");
            c.health.ready = Readiness::Notify;
            c.health.ready_timeout = Duration::from_secs(5);
            c
        }

        fn kills(a: &[Action]) -> usize {
            a.iter().filter(|x| matches!(x, Action::Kill { group: true })).count()
        }

        #[test]
        fn with_a_readiness_signal_starting_waits_past_startsecs() {
            let mut t = T::new(notify_cfg());
            t.ev(Event::Start);
            t.ev(Event::Spawned(7));
            assert_eq!(
                t.m.deadline(),
                Some(t.t0 + Duration::from_secs(5)),
                "the ready timeout, not startsecs"
            );
            t.at(3000);
            assert!(states(&t.ev(Event::Deadline)).is_empty(), "startsecs passing changes nothing");
            let a = t.ev(Event::Ready);
            assert_eq!(states(&a), vec![(Starting, Running)]);
            assert_eq!(
                logs(&a),
                vec!["success: p entered RUNNING state, process reported READY=1 (ready=notify)"]
            );
            assert_eq!(t.m.deadline(), None);
            assert!(states(&t.ev(Event::Ready)).is_empty(), "a second READY=1 changes nothing");
        }

        #[test]
        fn ready_is_ignored_without_a_readiness_setting_or_before_the_spawn() {
            let mut t = T::new(cfg());
            t.ev(Event::Start);
            t.ev(Event::Spawned(7));
            assert!(t.ev(Event::Ready).is_empty(), "ready=startsecs: only startsecs counts");
            let mut t = T::new(notify_cfg());
            t.ev(Event::Start);
            assert!(t.ev(Event::Ready).is_empty(), "no pid yet");
        }

        #[test]
        fn not_ready_in_time_kills_the_cgroup_then_backs_off_like_a_failed_start() {
            let mut c = notify_cfg();
            c.startretries = 1;
            let mut t = T::new(c);
            t.ev(Event::Start);
            t.ev(Event::Spawned(7));
            let a = t.fire();
            assert!(states(&a).is_empty(), "still STARTING until it is gone");
            assert_eq!(kills(&a), 1);
            assert_eq!(t.m.aborting(), Some("not ready within 5 s"));
            assert!(t.ev(Event::Ready).is_empty(), "too late to become ready");
            let a = t.fire();
            assert_eq!(kills(&a), 1, "killed again while it lingers");
            let a = t.ev(Event::Exited(ExitStatus::Signal { signal: 9, core: false }));
            assert_eq!(states(&a), vec![(Starting, Backoff)]);
            assert_eq!(t.m.spawnerr, "not ready within 5 s");
            assert_eq!(logs(&a), vec!["exited: p (terminated by SIGKILL; not ready within 5 s)"]);
            // The retry is the normal one, and the next timeout ends in FATAL.
            let a = t.fire();
            assert_eq!(states(&a), vec![(Backoff, Starting)]);
            t.ev(Event::Spawned(8));
            t.fire();
            let a = t.ev(Event::Exited(ExitStatus::Signal { signal: 9, core: false }));
            assert_eq!(states(&a), vec![(Starting, Backoff), (Backoff, Fatal)]);
        }

        #[test]
        fn an_exit_before_the_readiness_signal_is_a_failed_start_even_after_startsecs() {
            let mut t = T::new(notify_cfg());
            t.ev(Event::Start);
            t.ev(Event::Spawned(7));
            t.at(4000);
            let a = t.ev(Event::Exited(ExitStatus::Code(0)));
            assert_eq!(states(&a), vec![(Starting, Backoff)]);
        }

        #[test]
        fn a_stop_while_killing_for_readiness_ends_stopped() {
            let mut t = T::new(notify_cfg());
            t.ev(Event::Start);
            t.ev(Event::Spawned(7));
            t.fire();
            let a = t.ev(Event::Stop);
            assert_eq!(states(&a), vec![(Starting, Stopping)]);
            let a = t.ev(Event::Exited(ExitStatus::Signal { signal: 9, core: false }));
            assert_eq!(states(&a), vec![(Stopping, Stopped)]);
        }

        #[test]
        fn extend_timeout_moves_the_ready_deadline_later_never_earlier() {
            let mut t = T::new(notify_cfg());
            t.ev(Event::Start);
            t.ev(Event::Spawned(7));
            t.at(4000);
            t.ev(Event::ExtendTimeout(Duration::from_secs(10)));
            assert_eq!(t.m.deadline(), Some(t.t0 + Duration::from_secs(14)));
            t.ev(Event::ExtendTimeout(Duration::from_secs(1)));
            assert_eq!(t.m.deadline(), Some(t.t0 + Duration::from_secs(14)));
        }

        #[test]
        fn probe_and_fd_readiness_name_themselves_in_the_log() {
            let mut c = ProcessConfig::new("p", "/bin/true");
            c.health.ready = Readiness::Probe(Probe::Tcp { host: "127.0.0.1".into(), port: 9 });
            let mut t = T::new(c);
            t.ev(Event::Start);
            t.ev(Event::Spawned(7));
            let a = t.ev(Event::Ready);
            assert_eq!(
                logs(&a),
                vec!["success: p entered RUNNING state, probe passed (ready=tcp:127.0.0.1:9)"]
            );
            let mut c = ProcessConfig::new("p", "/bin/true");
            c.health.ready = Readiness::Fd(3);
            let mut t = T::new(c);
            t.ev(Event::Start);
            t.ev(Event::Spawned(7));
            let a = t.ev(Event::Ready);
            assert_eq!(
                logs(&a),
                vec!["success: p entered RUNNING state, process wrote to fd 3 (ready=fd:3)"]
            );
        }

        fn watchdog_cfg() -> ProcessConfig {
            let mut c = notify_cfg();
            c.health.watchdog = Some(Duration::from_secs(2));
            c
        }

        fn running(c: ProcessConfig) -> T {
            let mut t = T::new(c);
            t.ev(Event::Start);
            t.ev(Event::Spawned(7));
            t.at(100);
            t.ev(Event::Ready);
            t
        }

        #[test]
        fn watchdog_pings_push_the_deadline() {
            let mut t = running(watchdog_cfg());
            assert_eq!(t.m.deadline(), Some(t.t0 + Duration::from_millis(2100)));
            t.at(1500);
            t.ev(Event::WatchdogPing);
            assert_eq!(t.m.deadline(), Some(t.t0 + Duration::from_millis(3500)));
        }

        #[test]
        fn a_missed_watchdog_reports_kills_and_restarts_even_with_autorestart_false() {
            let mut c = watchdog_cfg();
            c.autorestart = crate::config::AutoRestart::Never;
            let mut t = running(c);
            let a = t.fire();
            assert!(a.contains(&Action::Unhealthy("watchdog: no WATCHDOG=1 within 2 s".into())));
            assert_eq!(kills(&a), 1);
            assert!(states(&a).is_empty(), "RUNNING until it is gone");
            t.at(5000);
            let a = t.ev(Event::Exited(ExitStatus::Signal { signal: 9, core: false }));
            assert_eq!(states(&a), vec![(Running, Exited), (Exited, Starting)]);
            assert!(a.contains(&Action::Spawn));
            assert_eq!(
                logs(&a),
                vec!["exited: p (terminated by SIGKILL; watchdog: no WATCHDOG=1 within 2 s)"]
            );
        }

        #[test]
        fn a_watchdog_restart_follows_the_backoff_policy() {
            let mut c = watchdog_cfg();
            c.restart.backoff = Some(crate::config::Backoff::Exponential);
            let mut t = running(c);
            t.fire();
            let a = t.ev(Event::Exited(ExitStatus::Signal { signal: 9, core: false }));
            assert_eq!(states(&a), vec![(Running, Exited), (Exited, Backoff)]);
            // The wait says why the program was killed, not only how it ended.
            assert_eq!(
                t.m.spawnerr,
                "exited (terminated by SIGKILL; watchdog: no WATCHDOG=1 within 2 s) after 2 s; restarting in 1 s"
            );
        }

        #[test]
        fn fail_from_running_restarts_and_a_stop_meanwhile_wins() {
            let mut t = running(notify_cfg());
            let a = t.ev(Event::Fail("health check failed: x".into()));
            assert_eq!(kills(&a), 1);
            assert!(t.ev(Event::Fail("again".into())).is_empty(), "one kill per failure");
            let a = t.ev(Event::Stop);
            assert_eq!(states(&a), vec![(Running, Stopping)]);
            let a = t.ev(Event::Exited(ExitStatus::Signal { signal: 9, core: false }));
            assert_eq!(states(&a), vec![(Stopping, Stopped)]);
            assert!(!a.contains(&Action::Spawn));
        }

        #[test]
        fn fail_outside_starting_and_running_does_nothing() {
            let mut t = T::new(notify_cfg());
            assert!(t.ev(Event::Fail("x".into())).is_empty());
            let mut t = running(notify_cfg());
            t.ev(Event::Stop);
            assert!(t.ev(Event::Fail("x".into())).is_empty(), "STOPPING");
        }
    }
}

#[cfg(test)]
mod restart_policy_tests {
    //! corral's opt-in restart pacing (`backoff=`, `backoff_reset=`, start rate limit).
    use super::*;
    use crate::config::{Backoff, RestartPolicy};

    fn cfg(policy: RestartPolicy) -> ProcessConfig {
        let mut c = super::tests::cfg();
        c.autorestart = AutoRestart::Always;
        c.restart = policy;
        c
    }

    /// Run, stay up `run_secs`, exit; returns the actions of the exit.
    fn run_and_crash(m: &mut Machine, c: &ProcessConfig, t: &mut Instant, run_secs: u64) -> Vec<Action> {
        if m.state() != ProcessState::Starting {
            let d = m.deadline().expect("a pending restart");
            *t = d;
            let a = m.handle(c, Event::Deadline, Clock { mono: *t, wall: 0 });
            assert!(a.contains(&Action::Spawn), "{a:?}");
        }
        m.handle(c, Event::Spawned(1), Clock { mono: *t, wall: 0 });
        *t += Duration::from_secs(run_secs);
        m.handle(c, Event::Deadline, Clock { mono: *t, wall: 0 });
        m.handle(c, Event::Exited(ExitStatus::Code(1)), Clock { mono: *t, wall: 0 })
    }

    #[test]
    fn without_backoff_a_crash_from_running_restarts_at_once_as_supervisord() {
        let c = cfg(RestartPolicy::default());
        let (mut m, mut t) = (Machine::new(), Instant::now());
        m.handle(&c, Event::Start, Clock { mono: t, wall: 0 });
        let a = run_and_crash(&mut m, &c, &mut t, 2);
        assert!(a.contains(&Action::Spawn));
        assert_eq!(m.state(), ProcessState::Starting);
    }

    #[test]
    fn exponential_backoff_doubles_the_wait_after_each_short_run() {
        let c = cfg(RestartPolicy { backoff: Some(Backoff::Exponential), ..RestartPolicy::default() });
        let (mut m, mut t) = (Machine::new(), Instant::now());
        m.handle(&c, Event::Start, Clock { mono: t, wall: 0 });
        let mut waits = vec![];
        for _ in 0..5 {
            let a = run_and_crash(&mut m, &c, &mut t, 2);
            assert!(!a.contains(&Action::Spawn), "a short run waits before restarting");
            assert_eq!(m.state(), ProcessState::Backoff);
            waits.push((m.deadline().unwrap() - t).as_secs());
        }
        assert_eq!(waits, vec![1, 2, 4, 8, 16]);
        assert!(
            m.spawnerr.starts_with("exited (exit status 1) after 2 s; restarting in 16 s"),
            "{}",
            m.spawnerr
        );
    }

    #[test]
    fn a_paced_restart_never_happens_before_its_deadline() {
        let c = cfg(RestartPolicy { backoff: Some(Backoff::Exponential), ..RestartPolicy::default() });
        let (mut m, mut t) = (Machine::new(), Instant::now());
        m.handle(&c, Event::Start, Clock { mono: t, wall: 0 });
        run_and_crash(&mut m, &c, &mut t, 2);
        run_and_crash(&mut m, &c, &mut t, 2);
        // Waiting 2 s: an early wake-up (another timer, a command) restarts nothing.
        let early = m.handle(&c, Event::Deadline, Clock { mono: t + Duration::from_millis(1999), wall: 0 });
        assert!(early.is_empty(), "{early:?}");
        assert_eq!(m.state(), ProcessState::Backoff);
        let on_time = m.handle(&c, Event::Deadline, Clock { mono: t + Duration::from_secs(2), wall: 0 });
        assert!(on_time.contains(&Action::Spawn), "{on_time:?}");
    }

    #[test]
    fn linear_backoff_paces_crashes_from_running_one_second_more_each_time() {
        let c = cfg(RestartPolicy { backoff: Some(Backoff::Linear), ..RestartPolicy::default() });
        let (mut m, mut t) = (Machine::new(), Instant::now());
        m.handle(&c, Event::Start, Clock { mono: t, wall: 0 });
        let waits: Vec<u64> = (0..4)
            .map(|_| {
                run_and_crash(&mut m, &c, &mut t, 2);
                assert_eq!(m.state(), ProcessState::Backoff);
                (m.deadline().expect("a paced restart") - t).as_secs()
            })
            .collect();
        assert_eq!(waits, vec![1, 2, 3, 4]);
    }

    #[test]
    fn backoff_max_caps_the_wait() {
        let c = cfg(RestartPolicy {
            backoff: Some(Backoff::Exponential),
            backoff_max: Some(5),
            ..RestartPolicy::default()
        });
        let (mut m, mut t) = (Machine::new(), Instant::now());
        m.handle(&c, Event::Start, Clock { mono: t, wall: 0 });
        let mut last = 0;
        for _ in 0..6 {
            run_and_crash(&mut m, &c, &mut t, 2);
            last = (m.deadline().unwrap() - t).as_secs();
        }
        assert_eq!(last, 5);
    }

    #[test]
    fn a_long_run_resets_the_pacing() {
        let c = cfg(RestartPolicy {
            backoff: Some(Backoff::Exponential),
            backoff_reset: 30,
            ..RestartPolicy::default()
        });
        let (mut m, mut t) = (Machine::new(), Instant::now());
        m.handle(&c, Event::Start, Clock { mono: t, wall: 0 });
        run_and_crash(&mut m, &c, &mut t, 2);
        run_and_crash(&mut m, &c, &mut t, 2);
        assert_eq!((m.deadline().unwrap() - t).as_secs(), 2);
        let a = run_and_crash(&mut m, &c, &mut t, 31);
        assert!(a.contains(&Action::Spawn), "after a run past backoff_reset the restart is immediate");
        run_and_crash(&mut m, &c, &mut t, 2);
        assert_eq!((m.deadline().unwrap() - t).as_secs(), 1, "the count starts over");
    }

    #[test]
    fn the_start_rate_limit_sends_the_program_to_fatal_saying_why() {
        let c = cfg(RestartPolicy {
            start_limit_burst: Some(3),
            start_limit_interval: 60,
            ..RestartPolicy::default()
        });
        let (mut m, mut t) = (Machine::new(), Instant::now());
        m.handle(&c, Event::Start, Clock { mono: t, wall: 0 });
        run_and_crash(&mut m, &c, &mut t, 2);
        run_and_crash(&mut m, &c, &mut t, 2);
        let a = run_and_crash(&mut m, &c, &mut t, 2);
        assert_eq!(m.state(), ProcessState::Fatal, "{a:?}");
        assert_eq!(m.spawnerr, "start rate limit reached: 3 starts within 60 seconds");
        // A start by hand is allowed again.
        let a = m.handle(&c, Event::Start, Clock { mono: t, wall: 0 });
        assert!(a.contains(&Action::Spawn));
    }

    #[test]
    fn starts_outside_the_interval_do_not_count() {
        let c = cfg(RestartPolicy {
            start_limit_burst: Some(2),
            start_limit_interval: 10,
            ..RestartPolicy::default()
        });
        let (mut m, mut t) = (Machine::new(), Instant::now());
        m.handle(&c, Event::Start, Clock { mono: t, wall: 0 });
        for _ in 0..5 {
            run_and_crash(&mut m, &c, &mut t, 11);
            assert_ne!(m.state(), ProcessState::Fatal);
        }
    }

    /// Run, then exit at once (a crash loop), `n` times, waiting out each paced restart.
    fn crash_loop(m: &mut Machine, c: &ProcessConfig, t: &mut Instant, n: usize) {
        for _ in 0..n {
            run_and_crash(m, c, t, 0);
            if m.state() == ProcessState::Fatal {
                return;
            }
        }
    }

    #[test]
    fn a_crash_loop_without_a_rate_limit_keeps_no_start_times() {
        let mut c = cfg(RestartPolicy { backoff: Some(Backoff::Exponential), ..RestartPolicy::default() });
        c.startsecs = 0;
        let (mut m, mut t) = (Machine::new(), Instant::now());
        m.handle(&c, Event::Start, Clock { mono: t, wall: 0 });
        crash_loop(&mut m, &c, &mut t, 10_000);
        assert_eq!(m.restarts, 9_999, "every run after the first is a restart");
        assert!(m.save(t).starts_age_ms.is_empty(), "nothing reads them without start_limit_burst");
    }

    #[test]
    fn a_crash_loop_under_a_rate_limit_keeps_at_most_burst_start_times() {
        // A rate limit that is never reached: one start a second, at most 5 within 2 s.
        let mut c = cfg(RestartPolicy {
            backoff: Some(Backoff::Linear),
            backoff_max: Some(1),
            start_limit_burst: Some(5),
            start_limit_interval: 2,
            ..RestartPolicy::default()
        });
        c.startsecs = 0;
        let (mut m, mut t) = (Machine::new(), Instant::now());
        m.handle(&c, Event::Start, Clock { mono: t, wall: 0 });
        crash_loop(&mut m, &c, &mut t, 1_000);
        assert_ne!(m.state(), ProcessState::Fatal);
        assert_eq!(m.restarts, 999);
        assert!(m.save(t).starts_age_ms.len() <= 5, "{:?}", m.save(t).starts_age_ms);
    }

    #[test]
    fn failed_starts_wait_as_the_backoff_policy_says() {
        let c = cfg(RestartPolicy { backoff: Some(Backoff::Exponential), ..RestartPolicy::default() });
        let (mut m, t) = (Machine::new(), Instant::now());
        let mut c = c;
        c.startretries = 5;
        m.handle(&c, Event::Start, Clock { mono: t, wall: 0 });
        let mut waits = vec![];
        for _ in 0..4 {
            m.handle(&c, Event::SpawnFailed("x".into()), Clock { mono: t, wall: 0 });
            waits.push((m.deadline().unwrap() - t).as_secs());
            m.handle(&c, Event::Deadline, Clock { mono: m.deadline().unwrap(), wall: 0 });
        }
        assert_eq!(waits, vec![1, 2, 4, 8]);
    }
}

#[cfg(test)]
mod saved_tests {
    use super::*;

    #[test]
    fn a_saved_machine_restores_with_its_counters_and_remaining_deadline() {
        let cfg = ProcessConfig::new("p", "/bin/true");
        let t0 = Instant::now();
        let mut m = Machine::new();
        m.handle(&cfg, Event::Start, Clock { mono: t0, wall: 100 });
        m.handle(&cfg, Event::Spawned(42), Clock { mono: t0, wall: 100 });
        assert_eq!(m.state(), ProcessState::Starting);
        let deadline = m.deadline().expect("startsecs deadline");
        let later = t0 + Duration::from_millis(300);
        let saved = m.save(later);
        let back = Machine::restore(&saved, later).expect("known state");
        assert_eq!(back.state(), ProcessState::Starting);
        assert_eq!(back.pid, 42);
        assert_eq!(back.start_wall, 100);
        assert!(back.ever_started());
        let restored = back.deadline().expect("deadline kept");
        assert!(restored.saturating_duration_since(deadline) < Duration::from_millis(2));
        assert_eq!(back.save(later), saved);
    }

    #[test]
    fn an_unknown_state_code_is_refused() {
        let mut saved = Machine::new().save(Instant::now());
        saved.state = 7;
        assert!(Machine::restore(&saved, Instant::now()).is_none());
    }
}
