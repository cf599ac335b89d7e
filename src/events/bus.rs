//! The event bus: one task that turns engine notices and child output into
//! events, routes them to the listener pools, runs the listener protocol and
//! the tick timer, and writes envelopes to listeners.
//!
//! Inputs, all of them messages, so the engine never waits on the bus:
//! - [`BusInput`]s from the engine, in the engine's order: pools created, listener
//!   processes spawned (pid and a duplicate of their stdin) and their state
//!   changes, events the engine publishes directly (corral's own), and every
//!   engine [`Notice`] (process states, groups, moods, remote communication), all
//!   on one unbounded channel so a burst queues instead of being lost;
//! - [`OutputEvent`]s from the pipe readers: PROCESS_LOG/PROCESS_COMMUNICATION
//!   chunks of ordinary processes (re-broadcast as [`Notice::Output`] for other
//!   subscribers) and the protocol bytes a listener writes to its stdout.
//!
//! Engine inputs are always taken before reader output (`biased` select): a
//! reader starts after its process's `Spawned` was sent, so by the time its
//! first bytes are seen the pool knows the pid they belong to.
//!
//! Each listener's stdin is written by its own small task, so a listener that
//! stops reading only stalls that task; the bus, the engine and the other
//! listeners go on. A listener only ever has one event in flight.

use std::os::fd::OwnedFd;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use tokio::sync::{broadcast, mpsc};

use super::pool::{Pool, Queued, SerialCounter};
use super::tick::Ticker;
use super::types::{Event, EventType, Subscription};
use crate::engine::{Mood, Notice, ProcessState};
use crate::logs::capture::{OutputEvent, OutputEventKind};

/// Identifies the process a pipe reader belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutputTag {
    /// Group name.
    pub group: Arc<str>,
    /// Process name.
    pub name: Arc<str>,
    /// The pid whose output this is.
    pub pid: u32,
    /// True for an event listener's stdout: protocol bytes, not PROCESS_LOG.
    pub protocol: bool,
}

/// What the engine tells the bus, in order.
#[derive(Debug)]
pub enum BusInput {
    /// An `[eventlistener:x]` group became active.
    PoolAdded {
        /// Pool (group) name.
        name: String,
        /// `events=`.
        events: Vec<String>,
        /// `buffer_size=`.
        buffer_size: usize,
        /// Process names, in dispatch order.
        members: Vec<String>,
        /// `[supervisord] identifier`, the header's `server:` token.
        identifier: String,
    },
    /// A listener process was spawned.
    Spawned {
        /// Pool name.
        group: String,
        /// Process name.
        name: String,
        /// Its pid.
        pid: u32,
        /// A duplicate of its stdin (non-blocking).
        stdin: OwnedFd,
    },
    /// A listener process changed state.
    Transition {
        /// Pool name.
        group: String,
        /// Process name.
        name: String,
        /// New state.
        to: ProcessState,
    },
    /// An event the engine emits itself (corral's own types).
    Publish(Event),
    /// One of the engine's notices, in the engine's order with the inputs above.
    /// A channel of its own rather than a broadcast subscription: a burst (5000
    /// programs starting at once) must queue, not overflow, because supervisord
    /// never loses an event a listener subscribed to.
    Notice(Notice),
}

/// The receiving ends the bus task reads.
#[derive(Debug)]
pub struct BusChannels {
    /// From the engine.
    pub inputs: mpsc::UnboundedReceiver<BusInput>,
    /// From the pipe readers.
    pub output: mpsc::Receiver<OutputEvent<OutputTag>>,
}

/// Sends an envelope to one listener's stdin writer task.
type Writer = mpsc::UnboundedSender<Vec<u8>>;

/// The bus state. Build with [`Bus::new`] and [`Bus::run`] it on its own task.
#[derive(Debug)]
pub struct Bus {
    pools: Vec<Pool<Writer>>,
    serial: SerialCounter,
    identifier: String,
    ticker: Ticker,
    /// To re-broadcast child output for other subscribers (D-Bus, web).
    notices: broadcast::Sender<Notice>,
}

fn wall_now() -> (u64, u32) {
    let d = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
    (d.as_secs(), d.subsec_nanos())
}

impl Bus {
    /// A bus with no pools; `notices` is the engine's broadcaster.
    pub fn new(notices: broadcast::Sender<Notice>) -> Bus {
        Bus {
            pools: Vec::new(),
            serial: SerialCounter::default(),
            identifier: "supervisor".into(),
            ticker: Ticker::new(wall_now().0),
            notices,
        }
    }

    /// Whether some pool would receive an event of type `t`.
    pub fn wants(&self, t: EventType) -> bool {
        self.pools.iter().any(|p| p.subscription().matches(t))
    }

    /// Whether any pool subscribes to a tick type (only then a timer runs).
    fn ticking(&self) -> bool {
        EventType::TICKS.iter().any(|(t, _)| self.wants(*t))
    }

    /// Hand an event to every subscribed pool; the first one gives it its serial.
    pub fn publish(&mut self, event: Event) {
        let kind = event.kind();
        let event = Arc::new(event);
        let mut queued: Option<Queued> = None;
        for pool in &mut self.pools {
            if pool.subscription().matches(kind) {
                let q = queued.get_or_insert_with(|| Queued::new(event.clone(), self.serial.next_serial()));
                pool.accept(q.clone(), false);
            }
        }
    }

    /// Run until the engine is gone.
    pub async fn run(mut self, mut ch: BusChannels) {
        loop {
            let ticking = self.ticking();
            let (secs, nanos) = wall_now();
            let nap = Ticker::sleep_from(secs, nanos);
            tokio::select! {
                biased;
                input = ch.inputs.recv() => match input {
                    Some(input) => self.on_input(input),
                    None => return,
                },
                Some(out) = ch.output.recv() => self.on_output(out),
                _ = tokio::time::sleep(nap), if ticking => {
                    for (kind, when) in self.ticker.due(wall_now().0) {
                        if self.wants(kind) {
                            self.publish(Event::tick(kind, when));
                        }
                    }
                }
            }
            self.dispatch();
        }
    }

    fn dispatch(&mut self) {
        for pool in &mut self.pools {
            pool.dispatch(&self.identifier, |w, bytes| w.send(bytes).is_ok());
        }
    }

    fn pool_mut(&mut self, name: &str) -> Option<&mut Pool<Writer>> {
        self.pools.iter_mut().find(|p| p.name() == name)
    }

    fn on_input(&mut self, input: BusInput) {
        match input {
            BusInput::Notice(n) => self.on_notice(n),
            BusInput::PoolAdded { name, events, buffer_size, members, identifier } => {
                self.identifier = identifier;
                let subscription = Subscription::parse(&events).unwrap_or_else(|bad| {
                    tracing::error!("pool {name}: unknown event type {bad} ignored");
                    Subscription::parse(
                        &events.iter().filter(|e| EventType::from_name(e).is_some()).collect::<Vec<_>>(),
                    )
                    .unwrap_or_default()
                });
                self.pools.retain(|p| p.name() != name);
                self.pools.push(Pool::new(&name, subscription, buffer_size.max(1), &members));
            }
            BusInput::Spawned { group, name, pid, stdin } => {
                let Some(writer) = stdin_writer(stdin, &name) else { return };
                if let Some(pool) = self.pool_mut(&group) {
                    pool.spawned(&name, pid, writer);
                }
            }
            BusInput::Transition { group, name, to } => {
                if let Some(pool) = self.pool_mut(&group) {
                    let alive =
                        matches!(to, ProcessState::Starting | ProcessState::Running | ProcessState::Stopping);
                    pool.process_state(&name, to == ProcessState::Running, alive);
                }
            }
            BusInput::Publish(event) => self.publish(event),
        }
    }

    fn on_notice(&mut self, notice: Notice) {
        let event = match notice {
            Notice::ProcessState { group, name, from, to, pid, tries, expected } => {
                if !self.wants(EventType::for_state(to)) {
                    return;
                }
                Event::process_state(&group, &name, from, to, pid, tries, expected)
            }
            Notice::GroupAdded(g) => Event::group_added(&g),
            Notice::GroupRemoved(g) => {
                // supervisord unsubscribes a pool before announcing its removal.
                self.pools.retain(|p| p.name() != g);
                Event::group_removed(&g)
            }
            Notice::Mood(Mood::Running) => Event::supervisor_running(),
            Notice::Mood(Mood::Shutdown | Mood::Restarting) => Event::supervisor_stopping(),
            Notice::RemoteCommunication { kind, data } => Event::remote_communication(&kind, &data),
            Notice::Oom { group, name, pid, oom_kills } => Event::process_oom(&group, &name, pid, oom_kills),
            Notice::Unhealthy { group, name, pid, reason } => {
                Event::process_unhealthy(&group, &name, pid, &reason)
            }
            Notice::LimitsChanged { group, name, old, limits } => {
                // One event per option that changed.
                let name = name.unwrap_or_default();
                for ((option, from), (_, to)) in old.options().into_iter().zip(limits.options()) {
                    if from != to {
                        let event = Event::limit_changed(&group, &name, option, &from, &to);
                        if self.wants(event.kind()) {
                            self.publish(event);
                        }
                    }
                }
                return;
            }
            // Our own re-broadcast of reader output, already handled.
            Notice::Output { .. } => return,
        };
        if self.wants(event.kind()) {
            self.publish(event);
        }
    }

    fn on_output(&mut self, out: OutputEvent<OutputTag>) {
        let OutputEvent { tag, channel, kind } = out;
        if tag.protocol {
            if let OutputEventKind::Log(data) = &kind {
                if let Some(pool) = self.pool_mut(&tag.group) {
                    pool.listener_output(&tag.name, tag.pid, data);
                }
            }
            return;
        }
        let (communication, data) = match kind {
            OutputEventKind::Log(d) => (false, d),
            OutputEventKind::Communication(d) => (true, d),
        };
        let event = if communication {
            Event::process_communication(&tag.group, &tag.name, tag.pid, channel, &data)
        } else {
            Event::process_log(&tag.group, &tag.name, tag.pid, channel, &data)
        };
        if self.wants(event.kind()) {
            self.publish(event);
        }
        let _ = self.notices.send(Notice::Output {
            group: tag.group.to_string(),
            name: tag.name.to_string(),
            pid: tag.pid,
            channel,
            communication,
            data,
        });
    }
}

/// A task writing envelopes to a listener's stdin; ends when the listener is
/// gone (write error) or the bus drops the sender.
fn stdin_writer(stdin: OwnedFd, name: &str) -> Option<Writer> {
    use tokio::io::AsyncWriteExt;
    let mut pipe = match tokio::net::unix::pipe::Sender::from_owned_fd(stdin) {
        Ok(p) => p,
        Err(e) => {
            tracing::warn!("{name}: cannot write events to stdin: {e}");
            return None;
        }
    };
    let (tx, mut rx) = mpsc::unbounded_channel::<Vec<u8>>();
    tokio::spawn(async move {
        while let Some(bytes) = rx.recv().await {
            if pipe.write_all(&bytes).await.is_err() {
                // The listener died; the engine reports it and the bus requeues.
                return;
            }
        }
    });
    Some(tx)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bus_with(events: &[&str]) -> Bus {
        let (tx, _) = broadcast::channel(16);
        let mut bus = Bus::new(tx);
        bus.on_input(BusInput::PoolAdded {
            name: "l".into(),
            events: events.iter().map(|s| s.to_string()).collect(),
            buffer_size: 10,
            members: vec!["l".into()],
            identifier: "supervisor".into(),
        });
        bus
    }

    #[test]
    fn only_subscribed_events_take_serials() {
        let mut bus = bus_with(&["PROCESS_GROUP"]);
        bus.on_notice(Notice::Mood(Mood::Running));
        bus.on_notice(Notice::GroupAdded("a".into()));
        bus.on_notice(Notice::GroupAdded("b".into()));
        let serials: Vec<u64> = bus.pools[0].buffered().map(|q| q.serial).collect();
        assert_eq!(serials, vec![0, 1]);
    }

    #[test]
    fn a_removed_pool_does_not_get_its_own_removal() {
        let mut bus = bus_with(&["PROCESS_GROUP"]);
        bus.on_notice(Notice::GroupRemoved("l".into()));
        assert!(bus.pools.is_empty());
        assert!(!bus.wants(EventType::ProcessGroupRemoved));
    }

    #[test]
    fn ticks_run_only_for_tick_subscribers() {
        assert!(!bus_with(&["PROCESS_STATE"]).ticking());
        assert!(bus_with(&["TICK_60"]).ticking());
        assert!(bus_with(&["EVENT"]).ticking());
        assert!(!bus_with(&["CORRAL_PROCESS_OOM"]).ticking());
    }

    #[test]
    fn corral_events_reach_only_pools_naming_them() {
        let mut all = bus_with(&["EVENT"]);
        all.on_input(BusInput::Publish(Event::process_oom("g", "p", 1, 1)));
        assert_eq!(all.pools[0].buffered().count(), 0);
        let mut oom = bus_with(&["CORRAL_PROCESS_OOM"]);
        oom.on_input(BusInput::Publish(Event::process_oom("g", "p", 1, 1)));
        assert_eq!(oom.pools[0].buffered().count(), 1);
    }

    #[test]
    fn output_events_become_log_and_communication_events() {
        let mut bus = bus_with(&["PROCESS_LOG_STDOUT", "PROCESS_COMMUNICATION"]);
        let tag = OutputTag { group: "g".into(), name: "p".into(), pid: 4, protocol: false };
        bus.on_output(OutputEvent {
            tag: tag.clone(),
            channel: crate::logs::Channel::Stdout,
            kind: OutputEventKind::Log(b"hi\n".to_vec()),
        });
        bus.on_output(OutputEvent {
            tag,
            channel: crate::logs::Channel::Stderr,
            kind: OutputEventKind::Communication(b"c".to_vec()),
        });
        let got: Vec<(EventType, String)> =
            bus.pools[0].buffered().map(|q| (q.event.kind(), q.event.payload().to_string())).collect();
        assert_eq!(
            got,
            vec![
                (EventType::ProcessLogStdout, "processname:p groupname:g pid:4 channel:stdout\nhi\n".into()),
                (EventType::ProcessCommunicationStderr, "processname:p groupname:g pid:4\nc".into()),
            ]
        );
    }
}
