//! The engine's side of the event bus: the hooks `core.rs` and `output.rs` call.
//!
//! Every hook only sends a message or builds a reader hook; none waits, so the
//! engine never blocks on a listener. The bus task itself lives in
//! [`crate::events::bus`]. Child output reaches the bus straight from the pipe
//! readers (not through the engine); the bus re-broadcasts it as
//! [`Notice::Output`] for other subscribers.

use std::collections::HashSet;
use std::os::fd::OwnedFd;
use std::sync::Arc;

use tokio::sync::{broadcast, mpsc};

use super::api::{Channel, Notice};
use super::state::Transition;
use crate::config::{GroupConfig, GroupKind, ProcessConfig};
use crate::events::{Bus, BusChannels, BusInput, Event, OutputTag};
use crate::logs::capture::{EventHook, OutputEvent, ReaderConfig};

/// Room for reader output waiting for the bus; a full channel slows the
/// writing child down rather than losing events.
const OUTPUT_QUEUE: usize = 1024;

/// Handles to the bus, held by the engine.
pub(crate) struct Listeners {
    inputs: mpsc::UnboundedSender<BusInput>,
    output: mpsc::Sender<OutputEvent<OutputTag>>,
    /// Names of the active `[eventlistener:x]` groups.
    pools: HashSet<String>,
    /// The bus until [`Listeners::start`] spawns it.
    idle: Option<(Bus, BusChannels)>,
}

/// What the readers of one freshly spawned process report to the bus.
#[derive(Debug, Default)]
pub(crate) struct ReaderHooks {
    stdout: Option<EventHook<OutputTag>>,
    stderr: Option<EventHook<OutputTag>>,
    /// An event listener: its stdout is the protocol channel.
    listener: bool,
    /// The process, for tags of events produced by other sinks (journald).
    group: Arc<str>,
    name: Arc<str>,
}

impl ReaderHooks {
    /// Wire a reader's events (and keep capture mode off on a listener's stdout,
    /// as supervisord does). With `strip_ansi`, the protocol parser sees the
    /// stripped bytes where supervisord parses the raw ones; protocol tokens hold
    /// no escape sequences, so only a listener writing nothing but escapes
    /// behaves differently (it is not made UNKNOWN).
    /// The tag a reader of this process stamps on its output events.
    pub fn tag(&self, pid: u32) -> OutputTag {
        OutputTag { group: self.group.clone(), name: self.name.clone(), pid, protocol: false }
    }

    pub fn apply(&self, channel: Channel, rc: &mut ReaderConfig<OutputTag>) {
        match channel {
            Channel::Stdout => {
                rc.events = self.stdout.clone();
                if self.listener {
                    rc.capture_maxbytes = 0;
                }
            }
            Channel::Stderr => rc.events = self.stderr.clone(),
        }
    }
}

impl Listeners {
    /// Create the bus; notices reach it through [`Listeners::notice`], queued until it runs.
    pub fn new(notices: &broadcast::Sender<Notice>) -> Listeners {
        let (inputs, inputs_rx) = mpsc::unbounded_channel();
        let (output, output_rx) = mpsc::channel(OUTPUT_QUEUE);
        let channels = BusChannels { inputs: inputs_rx, output: output_rx };
        Listeners { inputs, output, pools: HashSet::new(), idle: Some((Bus::new(notices.clone()), channels)) }
    }

    /// Spawn the bus task (needs the runtime, hence not in `new`). Called after the
    /// startup groups are active: the bus then creates every pool before it looks at
    /// the notices queued meanwhile, so SUPERVISOR_STATE_CHANGE_RUNNING (announced
    /// before the groups) is buffered for the listeners, as in supervisord.
    pub fn start(&mut self) {
        if let Some((bus, channels)) = self.idle.take() {
            tokio::spawn(bus.run(channels));
        }
    }

    /// A group became active; pools must exist before their own GROUP_ADDED.
    pub fn group_added(&mut self, cfg: &GroupConfig, identifier: &str) {
        let GroupKind::EventListener(el) = &cfg.kind else {
            self.pools.remove(&cfg.name);
            return;
        };
        self.pools.insert(cfg.name.clone());
        self.send(BusInput::PoolAdded {
            name: cfg.name.clone(),
            events: el.events.clone(),
            buffer_size: el.buffer_size,
            members: cfg.processes.iter().map(|p| p.name.clone()).collect(),
            identifier: identifier.to_string(),
        });
    }

    /// A process was spawned: tell the bus about a listener's pid and stdin,
    /// and return the reader hooks for its output.
    pub fn spawned(&self, group: &str, p: &ProcessConfig, pid: u32, stdin: Option<&OwnedFd>) -> ReaderHooks {
        let listener = self.pools.contains(group);
        if let (true, Some(stdin)) = (listener, stdin) {
            match stdin.try_clone() {
                Ok(stdin) => self.send(BusInput::Spawned {
                    group: group.to_string(),
                    name: p.name.clone(),
                    pid,
                    stdin,
                }),
                Err(e) => tracing::warn!("{}: cannot share stdin with the event bus: {e}", p.name),
            }
        }
        let (group, name): (Arc<str>, Arc<str>) = (group.into(), p.name.as_str().into());
        let hook = |protocol: bool, log_events: bool| EventHook {
            tag: OutputTag { group: group.clone(), name: name.clone(), pid, protocol },
            tx: self.output.clone(),
            log_events,
        };
        let wants = |c: &crate::config::ChannelConfig| c.events_enabled || c.capture_maxbytes > 0;
        ReaderHooks {
            stdout: if listener {
                Some(hook(true, true))
            } else {
                wants(&p.stdout).then(|| hook(false, p.stdout.events_enabled))
            },
            stderr: wants(&p.stderr).then(|| hook(false, p.stderr.events_enabled)),
            listener,
            group: group.clone(),
            name: name.clone(),
        }
    }

    /// A process changed state: a listener's pool needs to know (dispatch only to
    /// RUNNING members; requeue the event of one that died).
    pub fn transition(&self, group: &str, name: &str, t: &Transition) {
        if self.pools.contains(group) {
            self.send(BusInput::Transition { group: group.to_string(), name: name.to_string(), to: t.to });
        }
    }

    /// Publish an event the engine produces itself (corral's `CORRAL_*`).
    #[allow(dead_code)] // called once the engine reports OOM kills and limit changes
    pub fn publish(&self, event: Event) {
        self.send(BusInput::Publish(event));
    }

    /// Pass one of the engine's notices on to the bus, losslessly.
    pub fn notice(&self, notice: &Notice) {
        self.send(BusInput::Notice(notice.clone()));
    }

    fn send(&self, input: BusInput) {
        // Fails only once the bus is gone, at shutdown.
        let _ = self.inputs.send(input);
    }
}
