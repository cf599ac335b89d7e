//! Signal flood control: per-program coalescing of state changes.
//!
//! Rule: the first change of a program after a quiet period goes out at once and
//! opens a window of [`WINDOW`]. Changes inside the window are merged (the `from`
//! of the first, everything else of the latest) and go out as one change when the
//! window closes, which opens the next window. So a program emits at most one
//! `ProgramStateChanged` (and one `PropertiesChanged`) per window, and its final
//! state always goes out, at most one window late. A program crashing 50 times a
//! second costs about 10 signal pairs a second instead of hundreds.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use crate::engine::ProcessState;

/// Minimum spacing of two state signals of one program.
pub const WINDOW: Duration = Duration::from_millis(100);

/// One (possibly merged) state change of one program.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    /// Group name.
    pub group: String,
    /// Process name.
    pub name: String,
    /// State before the first merged change.
    pub from: ProcessState,
    /// State after the latest change.
    pub to: ProcessState,
    /// Pid at the latest change.
    pub pid: u32,
    /// EXITED: whether the exit was expected (else `false`).
    pub expected: bool,
}

#[derive(Debug)]
struct Slot {
    /// The window is open until then.
    until: Instant,
    /// A change held back until the window closes.
    held: Option<Change>,
}

/// Per-program windows; pure, the caller supplies the clock.
#[derive(Debug, Default)]
pub struct Coalescer {
    slots: HashMap<(String, String), Slot>,
}

impl Coalescer {
    /// Offer a change at `now`: returns it when it may go out at once, else holds it.
    pub fn offer(&mut self, change: Change, now: Instant) -> Option<Change> {
        let key = (change.group.clone(), change.name.clone());
        match self.slots.get_mut(&key) {
            Some(slot) if now < slot.until => {
                slot.held = Some(match slot.held.take() {
                    Some(first) => Change { from: first.from, ..change },
                    None => change,
                });
                None
            }
            _ => {
                self.slots.insert(key, Slot { until: now + WINDOW, held: None });
                Some(change)
            }
        }
    }

    /// Changes whose window has closed by `now`; each opens a new window.
    pub fn due(&mut self, now: Instant) -> Vec<Change> {
        let mut out = Vec::new();
        self.slots.retain(|_, slot| {
            if now < slot.until {
                return true;
            }
            match slot.held.take() {
                Some(change) => {
                    out.push(change);
                    slot.until = now + WINDOW;
                    true
                }
                // Quiet for a whole window: forget the program.
                None => false,
            }
        });
        out
    }

    /// When [`Coalescer::due`] should next be called, if anything is pending.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.slots.values().map(|s| s.until).min()
    }

    /// Drop a program's window (its object went away).
    pub fn forget_group(&mut self, group: &str) {
        self.slots.retain(|(g, _), _| g != group);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn change(from: ProcessState, to: ProcessState, pid: u32) -> Change {
        Change { group: "g".into(), name: "p".into(), from, to, pid, expected: false }
    }

    #[test]
    fn first_change_goes_out_at_once() {
        let mut c = Coalescer::default();
        let t = Instant::now();
        let ch = change(ProcessState::Stopped, ProcessState::Starting, 5);
        assert_eq!(c.offer(ch.clone(), t), Some(ch));
    }

    #[test]
    fn changes_inside_the_window_merge_and_the_last_state_goes_out() {
        let mut c = Coalescer::default();
        let t = Instant::now();
        use ProcessState::*;
        assert!(c.offer(change(Stopped, Starting, 5), t).is_some());
        assert!(c.offer(change(Starting, Running, 5), t + Duration::from_millis(10)).is_none());
        assert!(c.offer(change(Running, Exited, 5), t + Duration::from_millis(20)).is_none());
        assert!(c.offer(change(Exited, Starting, 6), t + Duration::from_millis(30)).is_none());
        assert!(c.due(t + Duration::from_millis(99)).is_empty());
        let out = c.due(t + WINDOW);
        assert_eq!(out, vec![change(Starting, Starting, 6)]);
        // The flush opened a new window; a quiet one then frees the slot.
        assert!(c.offer(change(Starting, Running, 6), t + WINDOW + Duration::from_millis(1)).is_none());
        assert_eq!(c.due(t + WINDOW * 2), vec![change(Starting, Running, 6)]);
        assert!(c.due(t + WINDOW * 3).is_empty());
        assert_eq!(c.next_deadline(), None);
    }

    #[test]
    fn a_flood_is_bounded_by_the_window() {
        let mut c = Coalescer::default();
        let t = Instant::now();
        let mut sent = 0;
        // 2 s of 3 transitions every 20 ms (50 crashes a second), checking every 5 ms.
        for ms in (0..2000u64).step_by(5) {
            let now = t + Duration::from_millis(ms);
            if ms % 20 == 0 {
                for (f, to) in [
                    (ProcessState::Starting, ProcessState::Running),
                    (ProcessState::Running, ProcessState::Exited),
                    (ProcessState::Exited, ProcessState::Starting),
                ] {
                    sent += usize::from(c.offer(change(f, to, 1), now).is_some());
                }
            }
            sent += c.due(now).len();
        }
        assert!(sent <= 21, "{sent} signals in 2 s");
        assert!(sent >= 10, "{sent} signals in 2 s");
    }
}
