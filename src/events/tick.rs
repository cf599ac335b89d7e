//! TICK_5, TICK_60 and TICK_3600, as supervisord's `tick()` computes them.
//!
//! Each period remembers the time slice it last saw (`when` = epoch seconds
//! aligned down to the period); an event is due when the slice changes, so the
//! first one comes at the first boundary after the daemon started, never at
//! start. The bus only runs a timer while some pool subscribes to a tick type;
//! the slices are still those of the daemon's start, as in supervisord.

use std::time::Duration;

use super::types::EventType;

/// The start of the slice of `period` seconds containing `now`.
pub fn timeslice(period: u64, now: u64) -> u64 {
    now - now % period
}

/// Tick bookkeeping: the last slice seen per period.
#[derive(Debug, Clone)]
pub struct Ticker {
    last: [u64; 3],
}

impl Ticker {
    /// Start at wall-clock second `now`.
    pub fn new(now: u64) -> Ticker {
        Ticker { last: EventType::TICKS.map(|(_, p)| timeslice(p, now)) }
    }

    /// Events due at `now` (seconds since the epoch), in TICK_5, 60, 3600 order.
    pub fn due(&mut self, now: u64) -> Vec<(EventType, u64)> {
        let mut out = Vec::new();
        for (i, (kind, period)) in EventType::TICKS.into_iter().enumerate() {
            let this = timeslice(period, now);
            if this != self.last[i] {
                self.last[i] = this;
                out.push((kind, this));
            }
        }
        out
    }

    /// How long to sleep from `now` (seconds and sub-second nanos since the
    /// epoch) until just past the next 5-second boundary (every period is a
    /// multiple of 5). The margin keeps a timer that fires a hair early from
    /// landing before the boundary.
    pub fn sleep_from(now_secs: u64, now_nanos: u32) -> Duration {
        let next = timeslice(5, now_secs) + 5;
        Duration::from_secs(next - now_secs) - Duration::from_nanos(u64::from(now_nanos))
            + Duration::from_millis(5)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nothing_at_start_then_each_boundary_once() {
        let mut t = Ticker::new(1_795_612_998);
        assert!(t.due(1_795_612_999).is_empty());
        assert_eq!(t.due(1_795_613_000), vec![(EventType::Tick5, 1_795_613_000)]);
        assert!(t.due(1_795_613_004).is_empty());
        assert_eq!(t.due(1_795_613_007), vec![(EventType::Tick5, 1_795_613_005)]);
    }

    #[test]
    fn longer_periods_align_down() {
        let mut t = Ticker::new(3_599);
        assert_eq!(
            t.due(3_601),
            vec![(EventType::Tick5, 3_600), (EventType::Tick60, 3_600), (EventType::Tick3600, 3_600)]
        );
        assert_eq!(t.due(3_661), vec![(EventType::Tick5, 3_660), (EventType::Tick60, 3_660)]);
    }

    #[test]
    fn sleeps_to_just_past_the_next_boundary() {
        assert_eq!(Ticker::sleep_from(12, 500_000_000), Duration::from_millis(2_505));
        assert_eq!(Ticker::sleep_from(15, 0), Duration::from_millis(5_005));
    }
}
