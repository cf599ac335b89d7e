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
    pub fn sample(&mut self, stats: &Stats, at: Instant) -> Option<f64> {
        let usage = stats.cpu_usage_usec?;
        let previous = self.last.replace((usage, at));
        let (previous_usec, previous_at) = previous?;
        cpu_percent(previous_usec, previous_at, usage, at)
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
