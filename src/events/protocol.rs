//! The listener side of supervisor's event protocol, as a pure state machine over
//! the bytes a listener writes to its stdout.
//!
//! A port of supervisord 4.3's `PEventListenerDispatcher.handle_listener_state_change`:
//! the same states, the same decisions at the same byte counts, the same log texts.
//! A listener starts ACKNOWLEDGED at every spawn, writes `READY\n` to become READY,
//! is made BUSY when an event is written to it, and answers `RESULT <len>\n<result>`;
//! `OK` accepts the event, anything else rejects it (requeued), and the listener is
//! ACKNOWLEDGED again. Protocol violations make it UNKNOWN until it is restarted.

use crate::events::types::decode;

/// supervisord's `EventListenerStates`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListenerState {
    /// Waiting for `READY\n`.
    Acknowledged,
    /// Waiting for an event.
    Ready,
    /// Processing an event; waiting for its result.
    Busy,
    /// Violated the protocol; receives nothing until restarted.
    Unknown,
}

impl ListenerState {
    /// supervisord's state name.
    pub fn name(self) -> &'static str {
        match self {
            ListenerState::Acknowledged => "ACKNOWLEDGED",
            ListenerState::Ready => "READY",
            ListenerState::Busy => "BUSY",
            ListenerState::Unknown => "UNKNOWN",
        }
    }
}

/// What the pool must do after the listener wrote something.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The listener became READY: dispatch to it.
    Ready,
    /// The current event was processed (`OK`).
    Accepted,
    /// The current event must be requeued at the head of the buffer
    /// (`FAIL`, a bad result line).
    Rejected,
    /// The listener went UNKNOWN outside BUSY; it had no event.
    WentUnknown,
}

const READY_TOKEN: &[u8] = b"READY\n";
const RESULT_TOKEN_START_LEN: usize = b"RESULT ".len();

/// The protocol state of one listener process.
#[derive(Debug, Clone)]
pub struct Protocol {
    name: String,
    state: ListenerState,
    buffer: Vec<u8>,
    result: Vec<u8>,
    result_len: Option<usize>,
}

impl Protocol {
    /// A freshly spawned listener named `name` (the process name, used in logs).
    pub fn new(name: &str) -> Protocol {
        Protocol {
            name: name.to_string(),
            state: ListenerState::Acknowledged,
            buffer: Vec::new(),
            result: Vec::new(),
            result_len: None,
        }
    }

    /// The current state.
    pub fn state(&self) -> ListenerState {
        self.state
    }

    /// An event was written to the listener: READY → BUSY.
    pub fn sent(&mut self) {
        self.state = ListenerState::Busy;
    }

    /// Feed bytes the listener wrote; returns what happened, in order.
    pub fn feed(&mut self, data: &[u8]) -> Vec<Outcome> {
        let mut out = Vec::new();
        if data.is_empty() {
            return out;
        }
        self.buffer.extend_from_slice(data);
        self.step(&mut out);
        out
    }

    fn step(&mut self, out: &mut Vec<Outcome>) {
        // A loop where supervisord recurses "while the buffer is not empty".
        while !self.buffer.is_empty() {
            match self.state {
                ListenerState::Unknown => {
                    self.buffer.clear();
                    return;
                }
                ListenerState::Acknowledged => {
                    if self.buffer.len() < READY_TOKEN.len() {
                        return;
                    }
                    if self.buffer.starts_with(READY_TOKEN) {
                        self.change(ListenerState::Ready);
                        self.buffer.drain(..READY_TOKEN.len());
                        out.push(Outcome::Ready);
                    } else {
                        self.change(ListenerState::Unknown);
                        self.buffer.clear();
                        out.push(Outcome::WentUnknown);
                    }
                }
                ListenerState::Ready => {
                    // Spurious output: supervisord is strict about it.
                    self.change(ListenerState::Unknown);
                    self.buffer.clear();
                    out.push(Outcome::WentUnknown);
                    return;
                }
                ListenerState::Busy => match self.result_len {
                    None => {
                        let Some(pos) = self.buffer.iter().position(|&b| b == b'\n') else { return };
                        let line: Vec<u8> = self.buffer.drain(..=pos).take(pos).collect();
                        match parse_python_int(line.get(RESULT_TOKEN_START_LEN..).unwrap_or(b"")) {
                            Some(n) => self.result_len = Some(n),
                            None => {
                                tracing::warn!("{}: bad result line: '{}'", self.name, decode(&line));
                                self.change(ListenerState::Unknown);
                                self.buffer.clear();
                                out.push(Outcome::Rejected);
                                return;
                            }
                        }
                    }
                    Some(len) => {
                        let needed = len - self.result.len();
                        let take = needed.min(self.buffer.len());
                        self.result.extend(self.buffer.drain(..take));
                        if self.result.len() == len {
                            let result = std::mem::take(&mut self.result);
                            self.result_len = None;
                            out.push(self.handle_result(&result));
                        }
                    }
                },
            }
        }
    }

    /// supervisord's `default_handler`: `OK` accepts, anything else rejects.
    fn handle_result(&mut self, result: &[u8]) -> Outcome {
        if result == b"OK" {
            tracing::debug!("{}: event was processed", self.name);
            self.change(ListenerState::Acknowledged);
            Outcome::Accepted
        } else {
            tracing::warn!("{}: event was rejected", self.name);
            self.change(ListenerState::Acknowledged);
            Outcome::Rejected
        }
    }

    fn change(&mut self, to: ListenerState) {
        tracing::debug!("{}: {} -> {}", self.name, self.state.name(), to.name());
        self.state = to;
        if to == ListenerState::Unknown {
            tracing::warn!(
                "{}: has entered the UNKNOWN state and will no longer receive events, this usually \
                 indicates the process violated the eventlistener protocol",
                self.name
            );
        }
    }
}

/// Python's `int(bytes)` for the result length: surrounding whitespace, an optional
/// `+`, digits with single underscores between them. A negative length, which
/// would wedge supervisord's dispatcher forever, is treated as a bad line.
fn parse_python_int(raw: &[u8]) -> Option<usize> {
    let s = std::str::from_utf8(raw).ok()?.trim_matches(|c: char| c.is_ascii_whitespace());
    let s = s.strip_prefix('+').unwrap_or(s);
    if s.is_empty() || s.starts_with('_') || s.ends_with('_') || s.contains("__") {
        return None;
    }
    if !s.bytes().all(|b| b.is_ascii_digit() || b == b'_') {
        return None;
    }
    s.replace('_', "").parse().ok()
}

#[cfg(test)]
mod tests {
    use super::ListenerState as L;
    use super::Outcome as O;
    use super::*;

    fn busy() -> Protocol {
        let mut p = Protocol::new("l");
        assert_eq!(p.feed(b"READY\n"), vec![O::Ready]);
        p.sent();
        p
    }

    #[test]
    fn ready_result_ok_cycle() {
        let mut p = Protocol::new("l");
        assert_eq!(p.state(), L::Acknowledged);
        assert_eq!(p.feed(b"REA"), vec![]);
        assert_eq!(p.feed(b"DY\n"), vec![O::Ready]);
        assert_eq!(p.state(), L::Ready);
        p.sent();
        assert_eq!(p.feed(b"RESULT 2\n"), vec![]);
        assert_eq!(p.state(), L::Busy);
        assert_eq!(p.feed(b"O"), vec![]);
        assert_eq!(p.feed(b"KREADY\n"), vec![O::Accepted, O::Ready]);
        assert_eq!(p.state(), L::Ready);
    }

    #[test]
    fn fail_rejects_and_acknowledges() {
        let mut p = busy();
        assert_eq!(p.feed(b"RESULT 4\nFAIL"), vec![O::Rejected]);
        assert_eq!(p.state(), L::Acknowledged);
    }

    #[test]
    fn garbage_when_acknowledged_is_decided_at_six_bytes() {
        let mut p = Protocol::new("l");
        assert_eq!(p.feed(b"hello"), vec![]);
        assert_eq!(p.state(), L::Acknowledged);
        assert_eq!(p.feed(b"!"), vec![O::WentUnknown]);
        assert_eq!(p.state(), L::Unknown);
        assert_eq!(p.feed(b"READY\n"), vec![]);
        assert_eq!(p.state(), L::Unknown);
    }

    #[test]
    fn any_output_when_ready_is_a_violation() {
        let mut p = Protocol::new("l");
        assert_eq!(p.feed(b"READY\nx"), vec![O::Ready, O::WentUnknown]);
        assert_eq!(p.state(), L::Unknown);
    }

    #[test]
    fn a_bad_result_line_rejects_and_goes_unknown() {
        let mut p = busy();
        assert_eq!(p.feed(b"RESULT two\nOK"), vec![O::Rejected]);
        assert_eq!(p.state(), L::Unknown);
        let mut p = busy();
        assert_eq!(p.feed(b"RESULT -1\n"), vec![O::Rejected]);
    }

    #[test]
    fn the_result_prefix_is_not_checked_and_length_is_python_int() {
        // supervisord only looks at bytes 7.. of the line.
        let mut p = busy();
        assert_eq!(p.feed(b"XXXXXX  +2 \nOK"), vec![O::Accepted]);
        let mut p = busy();
        assert_eq!(p.feed(b"RESULT 1_0\nFAILFAILFA"), vec![O::Rejected]);
    }

    #[test]
    fn an_empty_result_is_handled_when_more_output_arrives() {
        // Quirk kept from supervisord: with `RESULT 0\n` nothing happens until the
        // next bytes arrive; then the empty result is rejected.
        let mut p = busy();
        assert_eq!(p.feed(b"RESULT 0\n"), vec![]);
        assert_eq!(p.feed(b"READY\n"), vec![O::Rejected, O::Ready]);
    }

    #[test]
    fn python_int_parsing() {
        assert_eq!(parse_python_int(b"12"), Some(12));
        assert_eq!(parse_python_int(b" 12\t"), Some(12));
        assert_eq!(parse_python_int(b"1_2"), Some(12));
        assert_eq!(parse_python_int(b""), None);
        assert_eq!(parse_python_int(b"1__2"), None);
        assert_eq!(parse_python_int(b"0x1"), None);
        assert_eq!(parse_python_int(b"\xff"), None);
    }
}
