//! An event-listener pool: its bounded buffer, its members and dispatch.
//!
//! A port of supervisord 4.3's `EventListenerPool`, without I/O: writing an
//! envelope is a callback, so the buffer, requeue and serial rules are tested
//! without processes. Rules kept exactly:
//! - the buffer holds `buffer_size` events; accepting one more discards the oldest
//!   (`pool <name> event buffer overflowed, discarding event <serial>`, ERRO), even
//!   when the incoming event is a requeue going to the head;
//! - `serial` is process-wide and given once per event by the first pool that
//!   accepts it; `poolserial` is per pool and kept when an event is requeued;
//! - dispatch sends the oldest event to the first member whose process is RUNNING
//!   and whose listener is READY; a member takes one event at a time;
//! - a rejected event (FAIL, bad result line) or the event of a member that died
//!   while BUSY goes back to the head of the buffer. So a listener that crashes
//!   mid-event gets the event again once it is running again.

use std::collections::VecDeque;
use std::sync::Arc;

use super::protocol::{ListenerState, Outcome, Protocol};
use super::types::{Event, Subscription};

/// supervisord wraps serials at `sys.maxsize`.
const SERIAL_MAX: u64 = i64::MAX as u64;

/// The process-wide event serial (supervisord's `GlobalSerial`): lives as long as
/// the daemon, across in-process reloads.
#[derive(Debug, Clone, Default)]
pub struct SerialCounter {
    last: Option<u64>,
}

impl SerialCounter {
    /// The next serial: 0, 1, 2, …, wrapping to 0 after `i64::MAX`.
    pub fn next_serial(&mut self) -> u64 {
        let n = match self.last {
            None => 0,
            Some(SERIAL_MAX) => 0,
            Some(n) => n + 1,
        };
        self.last = Some(n);
        n
    }
}

/// An event in a pool's buffer.
#[derive(Debug, Clone)]
pub struct Queued {
    /// The event, shared by every pool that accepted it.
    pub event: Arc<Event>,
    /// Its global serial.
    pub serial: u64,
    /// Its serial in this pool, once accepted.
    pub poolserial: Option<u64>,
}

impl Queued {
    /// A new event with its global serial.
    pub fn new(event: Arc<Event>, serial: u64) -> Queued {
        Queued { event, serial, poolserial: None }
    }
}

/// One process of the pool. `W` is how the dispatcher writes to its stdin.
#[derive(Debug)]
pub struct Member<W> {
    /// Process name.
    pub name: String,
    /// Current pid (0 when not running).
    pub pid: u32,
    /// Whether the process state is RUNNING.
    pub running: bool,
    /// Protocol state, reset at every spawn.
    pub protocol: Protocol,
    /// The event it is processing.
    pub current: Option<Queued>,
    /// Its stdin, while the process lives.
    pub writer: Option<W>,
}

/// An event-listener pool.
#[derive(Debug)]
pub struct Pool<W> {
    name: String,
    subscription: Subscription,
    buffer_size: usize,
    buffer: VecDeque<Queued>,
    poolserial: SerialCounter,
    members: Vec<Member<W>>,
}

impl<W> Pool<W> {
    /// A pool named `name` with members `members` (in dispatch order).
    pub fn new(name: &str, subscription: Subscription, buffer_size: usize, members: &[String]) -> Pool<W> {
        Pool {
            name: name.to_string(),
            subscription,
            buffer_size,
            buffer: VecDeque::new(),
            poolserial: SerialCounter::default(),
            members: members
                .iter()
                .map(|m| Member {
                    name: m.clone(),
                    pid: 0,
                    running: false,
                    protocol: Protocol::new(m),
                    current: None,
                    writer: None,
                })
                .collect(),
        }
    }

    /// The pool (group) name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The subscription.
    pub fn subscription(&self) -> &Subscription {
        &self.subscription
    }

    /// Events waiting, oldest first.
    pub fn buffered(&self) -> impl Iterator<Item = &Queued> {
        self.buffer.iter()
    }

    /// A member by process name.
    pub fn member(&self, name: &str) -> Option<&Member<W>> {
        self.members.iter().find(|m| m.name == name)
    }

    fn member_mut(&mut self, name: &str) -> Option<&mut Member<W>> {
        self.members.iter_mut().find(|m| m.name == name)
    }

    /// supervisord's `_acceptEvent`: buffer an event (at the head for a requeue).
    pub fn accept(&mut self, mut q: Queued, head: bool) {
        if q.poolserial.is_none() {
            q.poolserial = Some(self.poolserial.next_serial());
        } else {
            tracing::debug!(
                "rebuffering event {} for pool {} (buf size={}, max={})",
                q.serial,
                self.name,
                self.buffer.len(),
                self.buffer_size
            );
        }
        if self.buffer.len() >= self.buffer_size {
            if let Some(old) = self.buffer.pop_front() {
                tracing::error!(
                    "pool {} event buffer overflowed, discarding event {}",
                    self.name,
                    old.serial
                );
            }
        }
        if head {
            self.buffer.push_front(q);
        } else {
            self.buffer.push_back(q);
        }
    }

    /// A member was spawned: new pid, new stdin, protocol back to ACKNOWLEDGED.
    pub fn spawned(&mut self, name: &str, pid: u32, writer: W) {
        let requeue = self.member_mut(name).and_then(|m| {
            m.pid = pid;
            m.running = false;
            m.protocol = Protocol::new(name);
            m.writer = Some(writer);
            m.current.take()
        });
        if let Some(q) = requeue {
            self.accept(q, true);
        }
    }

    /// A member's process changed state. `alive` is false once the process is gone
    /// (EXITED, STOPPED, BACKOFF, FATAL, UNKNOWN): its event is requeued.
    pub fn process_state(&mut self, name: &str, running: bool, alive: bool) {
        let requeue = self.member_mut(name).and_then(|m| {
            m.running = running;
            if alive {
                return None;
            }
            m.writer = None;
            m.pid = 0;
            m.current.take()
        });
        if let Some(q) = requeue {
            self.accept(q, true);
        }
    }

    /// Bytes a member (process `pid`) wrote to its stdout. Stale output of an
    /// earlier process of the same name is ignored.
    pub fn listener_output(&mut self, name: &str, pid: u32, data: &[u8]) {
        let Some(m) = self.member_mut(name) else { return };
        if m.pid != pid || pid == 0 {
            return;
        }
        let mut requeue = Vec::new();
        for outcome in m.protocol.feed(data) {
            match outcome {
                Outcome::Ready | Outcome::WentUnknown => {}
                Outcome::Accepted => m.current = None,
                Outcome::Rejected => requeue.extend(m.current.take()),
            }
        }
        for q in requeue {
            self.accept(q, true);
        }
    }

    /// supervisord's `dispatch`: send buffered events, oldest first, while some
    /// member can take one. `write` returns false when the member's stdin is
    /// closed (supervisord's EPIPE: try the next member).
    pub fn dispatch(&mut self, identifier: &str, mut write: impl FnMut(&W, Vec<u8>) -> bool) {
        while let Some(q) = self.buffer.pop_front() {
            let poolserial = q.poolserial.unwrap_or(0);
            let mut sent = false;
            for m in &mut self.members {
                if !m.running || m.protocol.state() != ListenerState::Ready {
                    continue;
                }
                let Some(w) = &m.writer else { continue };
                if !write(w, envelope(identifier, q.serial, &self.name, poolserial, &q.event)) {
                    tracing::debug!(
                        "epipe occurred while sending event {} to listener {}, listener state unchanged",
                        q.serial,
                        m.name
                    );
                    continue;
                }
                m.protocol.sent();
                tracing::debug!("event {} sent to listener {}", q.serial, m.name);
                m.current = Some(q.clone());
                sent = true;
                break;
            }
            if !sent {
                self.buffer.push_front(q);
                break;
            }
        }
    }

    /// The pool is being removed: what it still held is dropped, as supervisord does.
    pub fn members(&self) -> &[Member<W>] {
        &self.members
    }
}

/// The header line and payload supervisord writes to a listener.
pub fn envelope(identifier: &str, serial: u64, pool: &str, poolserial: u64, event: &Event) -> Vec<u8> {
    format!(
        "ver:3.0 server:{identifier} serial:{serial} pool:{pool} poolserial:{poolserial} eventname:{} len:{}\n{}",
        event.kind().name(),
        event.len_token(),
        event.payload()
    )
    .into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::types::EventType;
    use std::cell::RefCell;

    type Sent = RefCell<Vec<(u32, String)>>;

    fn pool(size: usize, members: &[&str]) -> Pool<u32> {
        let names: Vec<String> = members.iter().map(|s| s.to_string()).collect();
        Pool::new("listen", Subscription::parse(&["EVENT"]).expect("names"), size, &names)
    }

    fn ev(n: &str) -> Arc<Event> {
        Arc::new(Event::group_added(n))
    }

    fn run(p: &mut Pool<u32>, sent: &Sent) {
        p.dispatch("supervisor", |w, b| {
            sent.borrow_mut().push((*w, String::from_utf8(b).expect("utf8")));
            true
        });
    }

    /// Spawn member `name` as pid `pid`, make it RUNNING and READY.
    fn up(p: &mut Pool<u32>, name: &str, pid: u32) {
        p.spawned(name, pid, pid);
        p.process_state(name, true, true);
        p.listener_output(name, pid, b"READY\n");
    }

    #[test]
    fn serials_start_at_zero_and_wrap() {
        let mut s = SerialCounter::default();
        assert_eq!((s.next_serial(), s.next_serial()), (0, 1));
        let mut s = SerialCounter { last: Some(SERIAL_MAX - 1) };
        assert_eq!((s.next_serial(), s.next_serial()), (SERIAL_MAX, 0));
    }

    #[test]
    fn envelope_is_byte_exact() {
        let e = Event::process_state(
            "listen",
            "listen",
            crate::engine::ProcessState::Stopped,
            crate::engine::ProcessState::Starting,
            0,
            0,
            None,
        );
        assert_eq!(
            String::from_utf8(envelope("supervisor", 9, "listen", 9, &e)).expect("utf8"),
            "ver:3.0 server:supervisor serial:9 pool:listen poolserial:9 eventname:PROCESS_STATE_STARTING \
             len:62\nprocessname:listen groupname:listen from_state:STOPPED tries:0"
        );
    }

    #[test]
    fn overflow_drops_the_oldest() {
        let mut p = pool(2, &["a"]);
        for (serial, name) in ["x", "y", "z"].iter().enumerate() {
            p.accept(Queued::new(ev(name), serial as u64), false);
        }
        let left: Vec<(u64, Option<u64>)> = p.buffered().map(|q| (q.serial, q.poolserial)).collect();
        assert_eq!(left, vec![(1, Some(1)), (2, Some(2))]);
    }

    #[test]
    fn a_requeue_into_a_full_buffer_still_drops_the_oldest() {
        let mut p = pool(2, &["a"]);
        p.accept(Queued::new(ev("x"), 0), false);
        p.accept(Queued::new(ev("y"), 1), false);
        let mut back = Queued::new(ev("w"), 7);
        back.poolserial = Some(3);
        p.accept(back, true);
        let left: Vec<u64> = p.buffered().map(|q| q.serial).collect();
        assert_eq!(left, vec![7, 1]);
    }

    #[test]
    fn nothing_is_sent_until_running_and_ready() {
        let sent = Sent::default();
        let mut p = pool(10, &["a"]);
        p.accept(Queued::new(ev("x"), 0), false);
        p.spawned("a", 10, 10);
        p.listener_output("a", 10, b"READY\n");
        run(&mut p, &sent);
        assert!(sent.borrow().is_empty(), "STARTING member got an event");
        p.process_state("a", true, true);
        run(&mut p, &sent);
        assert_eq!(sent.borrow().len(), 1);
        assert!(sent.borrow()[0]
            .1
            .starts_with("ver:3.0 server:supervisor serial:0 pool:listen poolserial:0 "));
    }

    #[test]
    fn one_event_per_listener_at_a_time_then_the_next_member() {
        let sent = Sent::default();
        let mut p = pool(10, &["a", "b"]);
        up(&mut p, "a", 1);
        up(&mut p, "b", 2);
        for i in 0..3 {
            p.accept(Queued::new(ev("x"), i), false);
        }
        run(&mut p, &sent);
        let who: Vec<u32> = sent.borrow().iter().map(|(w, _)| *w).collect();
        assert_eq!(who, vec![1, 2]);
        assert_eq!(p.buffered().count(), 1);
        p.listener_output("a", 1, b"RESULT 2\nOKREADY\n");
        run(&mut p, &sent);
        assert_eq!(sent.borrow().len(), 3);
        assert_eq!(sent.borrow()[2].0, 1);
    }

    #[test]
    fn fail_requeues_at_the_head_with_the_same_serials() {
        let sent = Sent::default();
        let mut p = pool(10, &["a"]);
        up(&mut p, "a", 1);
        p.accept(Queued::new(ev("x"), 5), false);
        p.accept(Queued::new(ev("y"), 6), false);
        run(&mut p, &sent);
        p.listener_output("a", 1, b"RESULT 4\nFAILREADY\n");
        run(&mut p, &sent);
        let s = sent.borrow();
        assert_eq!(s.len(), 2);
        assert_eq!(s[0].1, s[1].1, "the rejected event comes again, unchanged");
        assert!(s[1].1.contains("serial:5 pool:listen poolserial:0 "));
    }

    #[test]
    fn a_violation_while_busy_requeues_and_others_keep_receiving() {
        let sent = Sent::default();
        let mut p = pool(10, &["a", "b"]);
        up(&mut p, "a", 1);
        p.accept(Queued::new(ev("x"), 0), false);
        run(&mut p, &sent);
        p.listener_output("a", 1, b"garbage\n");
        assert_eq!(p.member("a").map(|m| m.protocol.state()), Some(ListenerState::Unknown));
        run(&mut p, &sent);
        assert_eq!(sent.borrow().len(), 1, "UNKNOWN listener got an event");
        up(&mut p, "b", 2);
        run(&mut p, &sent);
        assert_eq!(sent.borrow().len(), 2);
        assert_eq!(sent.borrow()[1].0, 2);
        assert_eq!(sent.borrow()[0].1, sent.borrow()[1].1);
    }

    #[test]
    fn a_listener_dying_while_busy_gets_the_event_after_restart() {
        let sent = Sent::default();
        let mut p = pool(10, &["a"]);
        up(&mut p, "a", 1);
        p.accept(Queued::new(ev("x"), 3), false);
        run(&mut p, &sent);
        p.process_state("a", false, false);
        assert_eq!(p.buffered().map(|q| q.serial).collect::<Vec<_>>(), vec![3]);
        // Late output of the dead process is ignored.
        p.listener_output("a", 1, b"RESULT 2\nOK");
        up(&mut p, "a", 2);
        run(&mut p, &sent);
        let s = sent.borrow();
        assert_eq!(s.len(), 2);
        assert_eq!(s[1].0, 2);
        assert_eq!(s[0].1, s[1].1);
    }

    #[test]
    fn a_closed_stdin_tries_the_next_member() {
        let mut p = pool(10, &["a", "b"]);
        up(&mut p, "a", 1);
        up(&mut p, "b", 2);
        p.accept(Queued::new(ev("x"), 0), false);
        let mut got = Vec::new();
        p.dispatch("s", |w, _| {
            got.push(*w);
            *w == 2
        });
        assert_eq!(got, vec![1, 2]);
        assert_eq!(p.member("a").map(|m| m.protocol.state()), Some(ListenerState::Ready));
        assert_eq!(p.member("b").map(|m| m.protocol.state()), Some(ListenerState::Busy));
    }

    #[test]
    fn subscription_is_kept() {
        let p = pool(1, &[]);
        assert!(p.subscription().matches(EventType::Tick5));
        assert_eq!(p.name(), "listen");
    }
}
