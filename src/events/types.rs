//! Event types, their families, and payloads rendered exactly as supervisord renders them.
//!
//! Payload rules (supervisord 4.3 `events.py`):
//! - PROCESS_STATE_*: `processname:<p> groupname:<g> from_state:<STATE>` plus extras
//!   (`tries:` for STARTING/BACKOFF, `expected:` then `pid:` for EXITED, `pid:` for
//!   RUNNING/STOPPING/STOPPED), space separated, no trailing newline.
//! - PROCESS_LOG_*: `processname:<p> groupname:<g> pid:<pid> channel:<ch>\n<data>`.
//! - PROCESS_COMMUNICATION_*: `processname:<p> groupname:<g> pid:<pid>\n<data>`.
//! - REMOTE_COMMUNICATION: `type:<type>\n<data>`.
//! - SUPERVISOR_STATE_CHANGE_*: empty.
//! - PROCESS_GROUP_*: `groupname:<g>\n` (with the newline).
//! - TICK_*: `when:<epoch seconds aligned down to the period>`.
//!
//! Output that is not UTF-8 is rendered `Undecodable: <Python bytes repr>`.
//!
//! corral's own events are delivered only to pools that name them; `EVENT` does not
//! include them, so a supervisord listener subscribed to `EVENT` never sees a type it
//! cannot know. Their payloads follow the PROCESS_STATE token style:
//! - CORRAL_PROCESS_OOM: `processname:<p> groupname:<g> pid:<pid> oom_kills:<n>`, where
//!   `oom_kills` is the cgroup's total OOM kill count after this kill.
//! - CORRAL_LIMIT_CHANGED: `processname:<p> groupname:<g> limit:<option> from:<old> to:<new>`;
//!   `processname` is empty for a group-level limit, values are written as in the
//!   configuration (`512M`, `150%`) and `max` means no limit.
//! - CORRAL_PROCESS_UNHEALTHY: `processname:<p> groupname:<g> pid:<pid>\n<reason>`.

use std::borrow::Cow;

use crate::engine::ProcessState;
use crate::logs::Channel;

/// Every event type a pool can subscribe to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[allow(missing_docs)]
pub enum EventType {
    Event,
    ProcessState,
    ProcessStateStopped,
    ProcessStateExited,
    ProcessStateStarting,
    ProcessStateStopping,
    ProcessStateBackoff,
    ProcessStateFatal,
    ProcessStateRunning,
    ProcessStateUnknown,
    ProcessCommunication,
    ProcessCommunicationStdout,
    ProcessCommunicationStderr,
    ProcessLog,
    ProcessLogStdout,
    ProcessLogStderr,
    RemoteCommunication,
    SupervisorStateChange,
    SupervisorStateChangeRunning,
    SupervisorStateChangeStopping,
    Tick,
    Tick5,
    Tick60,
    Tick3600,
    ProcessGroup,
    ProcessGroupAdded,
    ProcessGroupRemoved,
    CorralProcessOom,
    CorralLimitChanged,
    CorralProcessUnhealthy,
}

impl EventType {
    /// Every type, abstract ones included.
    pub const ALL: [EventType; 30] = {
        use EventType::*;
        [
            Event,
            ProcessState,
            ProcessStateStopped,
            ProcessStateExited,
            ProcessStateStarting,
            ProcessStateStopping,
            ProcessStateBackoff,
            ProcessStateFatal,
            ProcessStateRunning,
            ProcessStateUnknown,
            ProcessCommunication,
            ProcessCommunicationStdout,
            ProcessCommunicationStderr,
            ProcessLog,
            ProcessLogStdout,
            ProcessLogStderr,
            RemoteCommunication,
            SupervisorStateChange,
            SupervisorStateChangeRunning,
            SupervisorStateChangeStopping,
            Tick,
            Tick5,
            Tick60,
            Tick3600,
            ProcessGroup,
            ProcessGroupAdded,
            ProcessGroupRemoved,
            CorralProcessOom,
            CorralLimitChanged,
            CorralProcessUnhealthy,
        ]
    };

    /// The name used in `events=` and in the `eventname:` header token.
    pub fn name(self) -> &'static str {
        use EventType::*;
        match self {
            Event => "EVENT",
            ProcessState => "PROCESS_STATE",
            ProcessStateStopped => "PROCESS_STATE_STOPPED",
            ProcessStateExited => "PROCESS_STATE_EXITED",
            ProcessStateStarting => "PROCESS_STATE_STARTING",
            ProcessStateStopping => "PROCESS_STATE_STOPPING",
            ProcessStateBackoff => "PROCESS_STATE_BACKOFF",
            ProcessStateFatal => "PROCESS_STATE_FATAL",
            ProcessStateRunning => "PROCESS_STATE_RUNNING",
            ProcessStateUnknown => "PROCESS_STATE_UNKNOWN",
            ProcessCommunication => "PROCESS_COMMUNICATION",
            ProcessCommunicationStdout => "PROCESS_COMMUNICATION_STDOUT",
            ProcessCommunicationStderr => "PROCESS_COMMUNICATION_STDERR",
            ProcessLog => "PROCESS_LOG",
            ProcessLogStdout => "PROCESS_LOG_STDOUT",
            ProcessLogStderr => "PROCESS_LOG_STDERR",
            RemoteCommunication => "REMOTE_COMMUNICATION",
            SupervisorStateChange => "SUPERVISOR_STATE_CHANGE",
            SupervisorStateChangeRunning => "SUPERVISOR_STATE_CHANGE_RUNNING",
            SupervisorStateChangeStopping => "SUPERVISOR_STATE_CHANGE_STOPPING",
            Tick => "TICK",
            Tick5 => "TICK_5",
            Tick60 => "TICK_60",
            Tick3600 => "TICK_3600",
            ProcessGroup => "PROCESS_GROUP",
            ProcessGroupAdded => "PROCESS_GROUP_ADDED",
            ProcessGroupRemoved => "PROCESS_GROUP_REMOVED",
            CorralProcessOom => "CORRAL_PROCESS_OOM",
            CorralLimitChanged => "CORRAL_LIMIT_CHANGED",
            CorralProcessUnhealthy => "CORRAL_PROCESS_UNHEALTHY",
        }
    }

    /// Look a name up, case-insensitively (supervisord upper-cases `events=`).
    pub fn from_name(name: &str) -> Option<EventType> {
        let name = name.trim();
        EventType::ALL.into_iter().find(|t| t.name().eq_ignore_ascii_case(name))
    }

    /// The family this type belongs to; `None` for `EVENT` and corral's own types,
    /// which stand alone so that only pools naming them receive them.
    pub fn parent(self) -> Option<EventType> {
        use EventType::*;
        match self {
            Event | CorralProcessOom | CorralLimitChanged | CorralProcessUnhealthy => None,
            ProcessState
            | ProcessCommunication
            | ProcessLog
            | RemoteCommunication
            | SupervisorStateChange
            | Tick
            | ProcessGroup => Some(Event),
            ProcessStateStopped | ProcessStateExited | ProcessStateStarting | ProcessStateStopping
            | ProcessStateBackoff | ProcessStateFatal | ProcessStateRunning | ProcessStateUnknown => {
                Some(ProcessState)
            }
            ProcessCommunicationStdout | ProcessCommunicationStderr => Some(ProcessCommunication),
            ProcessLogStdout | ProcessLogStderr => Some(ProcessLog),
            SupervisorStateChangeRunning | SupervisorStateChangeStopping => Some(SupervisorStateChange),
            Tick5 | Tick60 | Tick3600 => Some(Tick),
            ProcessGroupAdded | ProcessGroupRemoved => Some(ProcessGroup),
        }
    }

    /// Whether an event of this type is delivered to a subscription to `other`
    /// (itself or one of its ancestors, as Python's `isinstance`).
    pub fn is_a(self, other: EventType) -> bool {
        let mut t = Some(self);
        while let Some(cur) = t {
            if cur == other {
                return true;
            }
            t = cur.parent();
        }
        false
    }

    /// The PROCESS_STATE_* type for entering `state`.
    pub fn for_state(state: ProcessState) -> EventType {
        match state {
            ProcessState::Stopped => EventType::ProcessStateStopped,
            ProcessState::Starting => EventType::ProcessStateStarting,
            ProcessState::Running => EventType::ProcessStateRunning,
            ProcessState::Backoff => EventType::ProcessStateBackoff,
            ProcessState::Stopping => EventType::ProcessStateStopping,
            ProcessState::Exited => EventType::ProcessStateExited,
            ProcessState::Fatal => EventType::ProcessStateFatal,
            ProcessState::Unknown => EventType::ProcessStateUnknown,
        }
    }

    /// The tick types with their periods in seconds.
    pub const TICKS: [(EventType, u64); 3] =
        [(EventType::Tick5, 5), (EventType::Tick60, 60), (EventType::Tick3600, 3600)];
}

/// A pool's `events=` list.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Subscription(Vec<EventType>);

impl Subscription {
    /// Parse names; unknown ones are returned as the error (the config loader
    /// rejects them first, so this only guards against a stale config).
    pub fn parse<S: AsRef<str>>(names: &[S]) -> Result<Subscription, String> {
        names
            .iter()
            .map(|n| EventType::from_name(n.as_ref()).ok_or_else(|| n.as_ref().to_string()))
            .collect::<Result<Vec<_>, _>>()
            .map(Subscription)
    }

    /// Whether an event of type `t` is delivered to this pool.
    pub fn matches(&self, t: EventType) -> bool {
        self.0.iter().any(|s| t.is_a(*s))
    }
}

/// One event: its type and its rendered payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    kind: EventType,
    payload: String,
}

impl Event {
    /// An event with a payload rendered by the caller.
    pub fn new(kind: EventType, payload: String) -> Event {
        Event { kind, payload }
    }

    /// The concrete type.
    pub fn kind(&self) -> EventType {
        self.kind
    }

    /// The payload text.
    pub fn payload(&self) -> &str {
        &self.payload
    }

    /// The header's `len:` value. supervisord computes `len()` of the Python
    /// string, which counts characters, not bytes; Python listeners read that many
    /// characters from a text-mode stdin (childutils), so the count must match.
    pub fn len_token(&self) -> usize {
        self.payload.chars().count()
    }

    /// A PROCESS_STATE_* event for a transition into `to`.
    pub fn process_state(
        group: &str,
        name: &str,
        from: ProcessState,
        to: ProcessState,
        pid: u32,
        tries: u32,
        expected: Option<bool>,
    ) -> Event {
        let mut s = format!("processname:{name} groupname:{group} from_state:{}", from.name());
        match to {
            ProcessState::Starting | ProcessState::Backoff => s.push_str(&format!(" tries:{tries}")),
            ProcessState::Exited => {
                s.push_str(&format!(" expected:{} pid:{pid}", u8::from(expected.unwrap_or(true))))
            }
            ProcessState::Running | ProcessState::Stopping | ProcessState::Stopped => {
                s.push_str(&format!(" pid:{pid}"))
            }
            ProcessState::Fatal | ProcessState::Unknown => {}
        }
        Event::new(EventType::for_state(to), s)
    }

    /// PROCESS_LOG_STDOUT/STDERR for a chunk of output.
    pub fn process_log(group: &str, name: &str, pid: u32, channel: Channel, data: &[u8]) -> Event {
        let kind = match channel {
            Channel::Stdout => EventType::ProcessLogStdout,
            Channel::Stderr => EventType::ProcessLogStderr,
        };
        let payload = format!(
            "processname:{name} groupname:{group} pid:{pid} channel:{}\n{}",
            channel.as_str(),
            decode(data)
        );
        Event::new(kind, payload)
    }

    /// PROCESS_COMMUNICATION_STDOUT/STDERR for a completed capture block.
    pub fn process_communication(group: &str, name: &str, pid: u32, channel: Channel, data: &[u8]) -> Event {
        let kind = match channel {
            Channel::Stdout => EventType::ProcessCommunicationStdout,
            Channel::Stderr => EventType::ProcessCommunicationStderr,
        };
        Event::new(kind, format!("processname:{name} groupname:{group} pid:{pid}\n{}", decode(data)))
    }

    /// REMOTE_COMMUNICATION from `supervisor.sendRemoteCommEvent`.
    pub fn remote_communication(kind: &str, data: &str) -> Event {
        Event::new(EventType::RemoteCommunication, format!("type:{kind}\n{data}"))
    }

    /// SUPERVISOR_STATE_CHANGE_RUNNING (empty payload).
    pub fn supervisor_running() -> Event {
        Event::new(EventType::SupervisorStateChangeRunning, String::new())
    }

    /// SUPERVISOR_STATE_CHANGE_STOPPING (empty payload).
    pub fn supervisor_stopping() -> Event {
        Event::new(EventType::SupervisorStateChangeStopping, String::new())
    }

    /// PROCESS_GROUP_ADDED.
    pub fn group_added(group: &str) -> Event {
        Event::new(EventType::ProcessGroupAdded, format!("groupname:{group}\n"))
    }

    /// PROCESS_GROUP_REMOVED.
    pub fn group_removed(group: &str) -> Event {
        Event::new(EventType::ProcessGroupRemoved, format!("groupname:{group}\n"))
    }

    /// TICK_5/60/3600 for the slice starting at `when`.
    pub fn tick(kind: EventType, when: u64) -> Event {
        Event::new(kind, format!("when:{when}"))
    }

    /// CORRAL_PROCESS_OOM: the kernel OOM-killed a process of the program.
    pub fn process_oom(group: &str, name: &str, pid: u32, oom_kills: u64) -> Event {
        Event::new(
            EventType::CorralProcessOom,
            format!("processname:{name} groupname:{group} pid:{pid} oom_kills:{oom_kills}"),
        )
    }

    /// CORRAL_LIMIT_CHANGED: a cgroup limit was changed at run time.
    /// `name` is empty for a group-level limit.
    pub fn limit_changed(group: &str, name: &str, limit: &str, from: &str, to: &str) -> Event {
        Event::new(
            EventType::CorralLimitChanged,
            format!("processname:{name} groupname:{group} limit:{limit} from:{from} to:{to}"),
        )
    }

    /// CORRAL_PROCESS_UNHEALTHY: a health check failed.
    pub fn process_unhealthy(group: &str, name: &str, pid: u32, reason: &str) -> Event {
        Event::new(
            EventType::CorralProcessUnhealthy,
            format!("processname:{name} groupname:{group} pid:{pid}\n{reason}"),
        )
    }
}

/// Output bytes as supervisord puts them in a payload: the UTF-8 text, or
/// `Undecodable: b'...'` (Python's `%r` of the bytes) when it is not UTF-8.
pub fn decode(data: &[u8]) -> Cow<'_, str> {
    match std::str::from_utf8(data) {
        Ok(s) => Cow::Borrowed(s),
        Err(_) => Cow::Owned(format!("Undecodable: {}", python_bytes_repr(data))),
    }
}

/// Python 3's `repr()` of a `bytes` object.
pub fn python_bytes_repr(data: &[u8]) -> String {
    let quote = if data.contains(&b'\'') && !data.contains(&b'"') { b'"' } else { b'\'' };
    let mut s = String::with_capacity(data.len() + 3);
    s.push('b');
    s.push(quote as char);
    for &b in data {
        match b {
            b'\\' => s.push_str("\\\\"),
            b'\t' => s.push_str("\\t"),
            b'\n' => s.push_str("\\n"),
            b'\r' => s.push_str("\\r"),
            _ if b == quote => {
                s.push('\\');
                s.push(b as char);
            }
            0x20..=0x7e => s.push(b as char),
            _ => s.push_str(&format!("\\x{b:02x}")),
        }
    }
    s.push(quote as char);
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use ProcessState as S;

    #[test]
    fn every_name_round_trips_and_matches_the_config_list() {
        for t in EventType::ALL {
            assert_eq!(EventType::from_name(t.name()), Some(t));
            assert_eq!(EventType::from_name(&t.name().to_lowercase()), Some(t));
        }
        assert_eq!(EventType::from_name("NOPE"), None);
    }

    #[test]
    fn abstract_types_deliver_their_subtypes() {
        let sub = Subscription::parse(&["PROCESS_STATE"]).expect("names");
        assert!(sub.matches(EventType::ProcessStateRunning));
        assert!(sub.matches(EventType::ProcessState));
        assert!(!sub.matches(EventType::Tick5));
        let ev = Subscription::parse(&["EVENT"]).expect("names");
        for t in EventType::ALL {
            let corral = t.name().starts_with("CORRAL_");
            assert_eq!(ev.matches(t), !corral, "{}", t.name());
        }
        let tick = Subscription::parse(&["TICK_60", "PROCESS_LOG"]).expect("names");
        assert!(tick.matches(EventType::Tick60));
        assert!(!tick.matches(EventType::Tick5));
        assert!(tick.matches(EventType::ProcessLogStderr));
        let oom = Subscription::parse(&["CORRAL_PROCESS_OOM"]).expect("names");
        assert!(oom.matches(EventType::CorralProcessOom));
        assert!(!oom.matches(EventType::CorralLimitChanged));
        assert_eq!(Subscription::parse(&["TICK_7"]), Err("TICK_7".to_string()));
    }

    #[test]
    fn process_state_payloads_match_supervisord() {
        let e = Event::process_state("listen", "listen", S::Stopped, S::Starting, 0, 0, None);
        assert_eq!(e.payload(), "processname:listen groupname:listen from_state:STOPPED tries:0");
        assert_eq!(e.len_token(), 62);
        assert_eq!(e.kind().name(), "PROCESS_STATE_STARTING");
        let e = Event::process_state("badexit", "badexit", S::Running, S::Exited, 7870, 0, Some(false));
        assert_eq!(
            e.payload(),
            "processname:badexit groupname:badexit from_state:RUNNING expected:0 pid:7870"
        );
        let e = Event::process_state("quick", "quick", S::Backoff, S::Fatal, 0, 3, None);
        assert_eq!(e.payload(), "processname:quick groupname:quick from_state:BACKOFF");
        let e = Event::process_state("g", "p", S::Starting, S::Backoff, 0, 1, None);
        assert_eq!(e.payload(), "processname:p groupname:g from_state:STARTING tries:1");
        let e = Event::process_state("g", "p", S::Starting, S::Running, 42, 0, None);
        assert_eq!(e.payload(), "processname:p groupname:g from_state:STARTING pid:42");
        let e = Event::process_state("g", "p", S::Running, S::Stopping, 42, 0, None);
        assert_eq!(e.payload(), "processname:p groupname:g from_state:RUNNING pid:42");
        let e = Event::process_state("g", "p", S::Stopping, S::Stopped, 42, 0, None);
        assert_eq!(e.payload(), "processname:p groupname:g from_state:STOPPING pid:42");
        let e = Event::process_state("g", "p", S::Stopping, S::Unknown, 42, 0, None);
        assert_eq!(e.payload(), "processname:p groupname:g from_state:STOPPING");
        assert_eq!(e.kind(), EventType::ProcessStateUnknown);
    }

    #[test]
    fn output_payloads_match_supervisord() {
        let e = Event::process_log("g", "p", 9, Channel::Stderr, b"to-stderr\n");
        assert_eq!(e.payload(), "processname:p groupname:g pid:9 channel:stderr\nto-stderr\n");
        assert_eq!(e.kind(), EventType::ProcessLogStderr);
        let e = Event::process_communication("g", "p", 9, Channel::Stdout, b"hello");
        assert_eq!(e.payload(), "processname:p groupname:g pid:9\nhello");
        assert_eq!(e.kind(), EventType::ProcessCommunicationStdout);
        let e = Event::process_log("g", "p", 9, Channel::Stdout, b"a\xffb'\n\\");
        assert_eq!(
            e.payload(),
            "processname:p groupname:g pid:9 channel:stdout\nUndecodable: b\"a\\xffb'\\n\\\\\""
        );
    }

    #[test]
    fn observed_supervisord_log_payloads() {
        // Captured from supervisord 4.3 with a logging listener.
        let e = Event::process_log("talk", "talk", 14062, Channel::Stdout, b"hello-log \xff\n");
        assert_eq!(
            e.payload(),
            "processname:talk groupname:talk pid:14062 channel:stdout\nUndecodable: b'hello-log \\xff\\n'"
        );
        assert_eq!(e.len_token(), 89);
        let e = Event::process_log("talk", "talk", 14062, Channel::Stdout, "caf\u{e9}".as_bytes());
        assert_eq!(e.len_token(), 61);
        let e = Event::process_communication("talk", "talk", 14062, Channel::Stdout, "caf\u{e9}".as_bytes());
        assert_eq!(e.len_token(), 46);
    }

    #[test]
    fn python_repr_of_bytes() {
        assert_eq!(python_bytes_repr(b"abc"), "b'abc'");
        assert_eq!(python_bytes_repr(b"it's"), "b\"it's\"");
        assert_eq!(python_bytes_repr(b"'\""), "b'\\'\"'");
        assert_eq!(python_bytes_repr(b"\x00\x7f\x80\t\r"), "b'\\x00\\x7f\\x80\\t\\r'");
    }

    #[test]
    fn other_payloads_match_supervisord() {
        assert_eq!(Event::remote_communication("t", "d\nx").payload(), "type:t\nd\nx");
        assert_eq!(Event::supervisor_running().payload(), "");
        assert_eq!(Event::supervisor_stopping().kind().name(), "SUPERVISOR_STATE_CHANGE_STOPPING");
        assert_eq!(Event::group_added("web").payload(), "groupname:web\n");
        assert_eq!(Event::group_removed("web").kind().name(), "PROCESS_GROUP_REMOVED");
        assert_eq!(Event::tick(EventType::Tick5, 1795613000).payload(), "when:1795613000");
    }

    #[test]
    fn len_counts_characters_as_python_does() {
        let e = Event::remote_communication("t", "é");
        assert_eq!(e.payload().len(), 9);
        assert_eq!(e.len_token(), 8);
    }

    #[test]
    fn corral_payloads() {
        assert_eq!(
            Event::process_oom("g", "p", 5, 2).payload(),
            "processname:p groupname:g pid:5 oom_kills:2"
        );
        assert_eq!(
            Event::limit_changed("g", "", "memory_max", "512M", "max").payload(),
            "processname: groupname:g limit:memory_max from:512M to:max"
        );
        assert_eq!(
            Event::process_unhealthy("g", "p", 5, "no answer").payload(),
            "processname:p groupname:g pid:5\nno answer"
        );
    }
}
