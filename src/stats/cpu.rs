//! CPU percentage from two cumulative CPU-time readings.

use std::time::Instant;

use super::Stats;

/// CPU use over the interval between two readings, in percent of one CPU
/// (a process using two full CPUs reads 200). `None` when the interval is
/// empty or the counter went backwards (a new cgroup after a restart).
pub fn cpu_percent(
    previous_usec: u64,
    previous_at: Instant,
    current_usec: u64,
    current_at: Instant,
) -> Option<f64> {
    let wall = current_at.checked_duration_since(previous_at)?;
    let used = current_usec.checked_sub(previous_usec)?;
    if wall.is_zero() {
        return None;
    }
    Some(used as f64 / wall.as_micros() as f64 * 100.0)
}

/// The shortest interval a CPU percentage is computed over once a baseline exists.
pub const MIN_WINDOW: std::time::Duration = std::time::Duration::from_secs(1);

/// Keeps the previous reading of one process or group and turns each new
/// one into a CPU percentage.
#[derive(Debug, Clone, Default)]
pub struct CpuSampler {
    last: Option<(u64, Instant)>,
}

impl CpuSampler {
    /// A sampler with no reading yet.
    pub fn new() -> CpuSampler {
        CpuSampler::default()
    }

    /// Records `stats` taken at `at`; returns the CPU % since the previous
    /// sample (`None` for the first one, or when there is no CPU reading).
    ///
    /// Several readers (corralctl top, D-Bus properties, the XML-RPC API) share
    /// one sampler, so the baseline moves at most once per [`MIN_WINDOW`]: a
    /// reader polling often does not shrink another reader's window to nothing.
    pub fn sample(&mut self, stats: &Stats, at: Instant) -> Option<f64> {
        let usage = stats.cpu_usage_usec?;
        let Some((previous_usec, previous_at)) = self.last else {
            self.last = Some((usage, at));
            return None;
        };
        let percent = cpu_percent(previous_usec, previous_at, usage, at);
        if percent.is_none() || at.saturating_duration_since(previous_at) >= MIN_WINDOW {
            self.last = Some((usage, at));
        }
        percent
    }

    /// Forgets the previous reading (after a restart, the new cgroup's
    /// counter starts from zero).
    pub fn reset(&mut self) {
        self.last = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn percent_is_cpu_time_over_wall_time() {
        let t0 = Instant::now();
        let t1 = t0 + Duration::from_secs(2);
        assert_eq!(cpu_percent(0, t0, 1_000_000, t1), Some(50.0));
        assert_eq!(cpu_percent(0, t0, 4_000_000, t1), Some(200.0));
        assert_eq!(cpu_percent(5, t0, 1, t1), None, "counter reset");
        assert_eq!(cpu_percent(0, t1, 1, t0), None, "time went backwards");
        assert_eq!(cpu_percent(0, t0, 1, t0), None, "empty interval");
    }

    #[test]
    fn sampler_needs_two_readings() {
        let t0 = Instant::now();
        let mut sampler = CpuSampler::new();
        let at = |usec| Stats { cpu_usage_usec: Some(usec), ..Stats::default() };
        assert_eq!(sampler.sample(&at(100), t0), None);
        let pct = sampler.sample(&at(100 + 250_000), t0 + Duration::from_secs(1)).expect("second reading");
        assert!((pct - 25.0).abs() < 1e-9, "{pct}");
        sampler.reset();
        assert_eq!(sampler.sample(&at(0), t0 + Duration::from_secs(2)), None);
        assert_eq!(sampler.sample(&Stats::default(), t0), None);
    }
}

#[cfg(test)]
mod shared_sampler_tests {
    use super::*;
    use std::time::Duration;

    fn at(usec: u64) -> Stats {
        Stats { cpu_usage_usec: Some(usec), ..Stats::default() }
    }

    #[test]
    fn a_frequent_reader_does_not_shrink_the_window_below_a_second() {
        let t0 = Instant::now();
        let mut s = CpuSampler::new();
        assert_eq!(s.sample(&at(0), t0), None);
        // Two quick readings 100 ms apart: both measure from t0.
        let a = s.sample(&at(50_000), t0 + Duration::from_millis(100)).unwrap();
        let b = s.sample(&at(100_000), t0 + Duration::from_millis(200)).unwrap();
        assert!((a - 50.0).abs() < 1e-9 && (b - 50.0).abs() < 1e-9, "{a} {b}");
        // Past a second the baseline moves.
        s.sample(&at(600_000), t0 + Duration::from_millis(1200)).unwrap();
        let c = s.sample(&at(700_000), t0 + Duration::from_millis(1400)).unwrap();
        assert!((c - 50.0).abs() < 1e-9, "measured from the 1.2 s baseline: {c}");
    }
}
