//! CPU and memory history for the program page's charts, kept only while
//! someone looks.
//!
//! Lifecycle: no task and no timer exist until something shows interest
//! ([`Sampler::touch`]: an open status or program page, a `/metrics` scrape).
//! The first touch spawns one sampler task, which reads every process's stats
//! through the engine [`Handle`] at once and then every `interval`, keeping
//! the last `capacity` samples per process in a ring buffer. Each touch
//! extends the interest to `quiet` from now; the task exits at the first tick
//! after that, dropping the buffers. The next touch starts afresh. So an
//! unwatched daemon runs no sampling code at all.
//!
//! CPU % is computed here from consecutive CPU-time readings rather than
//! taken from the engine's reading, whose "since the previous reading" is
//! shared with every other stats caller.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde::Serialize;
use tokio::sync::watch;

use crate::engine::{Handle, ProcessStats};
use crate::stats::cpu_percent;

/// Timing and size of the sampler.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SamplerConfig {
    /// Time between samples.
    pub interval: Duration,
    /// How long interest lasts after the last touch.
    pub quiet: Duration,
    /// Samples kept per process.
    pub capacity: usize,
}

impl Default for SamplerConfig {
    /// Every 2 s, ten minutes of history; a minute of quiet (longer than
    /// common scrape intervals, so a steady scraper keeps history warm).
    fn default() -> Self {
        SamplerConfig { interval: Duration::from_secs(2), quiet: Duration::from_secs(60), capacity: 300 }
    }
}

/// One point of a process's history.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Sample {
    /// Milliseconds since the epoch.
    pub t: i64,
    /// CPU use since the previous sample, percent of one CPU (`None`: first
    /// sample, not running, or a new cgroup).
    pub cpu: Option<f64>,
    /// Memory of the cgroup (else the main pid's RSS), bytes; `None` when not running.
    pub mem: Option<u64>,
}

#[derive(Debug, Default)]
struct Series {
    points: VecDeque<Sample>,
    /// Previous CPU reading (microseconds, when).
    last_cpu: Option<(u64, Instant)>,
}

#[derive(Debug)]
struct Inner {
    interest_until: Instant,
    running: bool,
    /// Keyed by (group, process).
    series: BTreeMap<(String, String), Series>,
}

/// Shared handle to the sampler; cheap to clone.
#[derive(Debug, Clone)]
pub struct Sampler {
    inner: Arc<Mutex<Inner>>,
    handle: Handle,
    stopping: watch::Receiver<bool>,
    config: SamplerConfig,
}

impl Sampler {
    /// A sampler that has not started (and will not until touched).
    pub fn new(handle: Handle, stopping: watch::Receiver<bool>, config: SamplerConfig) -> Sampler {
        let inner = Inner { interest_until: Instant::now(), running: false, series: BTreeMap::new() };
        Sampler { inner: Arc::new(Mutex::new(inner)), handle, stopping, config }
    }

    /// The configuration in use.
    pub fn config(&self) -> SamplerConfig {
        self.config
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic while holding the lock leaves plain data behind: keep using it.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Declare interest: start sampling if idle, and keep it going for `quiet` from now.
    pub fn touch(&self) {
        if *self.stopping.borrow() {
            return;
        }
        let mut inner = self.lock();
        inner.interest_until = Instant::now() + self.config.quiet;
        if !inner.running {
            inner.running = true;
            let me = self.clone();
            tokio::spawn(async move { me.run().await });
        }
    }

    /// Whether a sampler task exists right now.
    pub fn is_running(&self) -> bool {
        self.lock().running
    }

    /// The history of one process, oldest first.
    pub fn history(&self, group: &str, name: &str) -> Vec<Sample> {
        let inner = self.lock();
        inner
            .series
            .get(&(group.to_string(), name.to_string()))
            .map(|s| s.points.iter().copied().collect())
            .unwrap_or_default()
    }

    /// The newest sample of every process.
    pub fn latest(&self) -> BTreeMap<(String, String), Sample> {
        let inner = self.lock();
        inner.series.iter().filter_map(|(k, s)| s.points.back().map(|p| (k.clone(), *p))).collect()
    }

    async fn run(self) {
        let mut stopping = self.stopping.clone();
        loop {
            if let Ok(readings) = self.handle.stats(None).await {
                self.record(&readings, Instant::now(), epoch_ms());
            }
            tokio::select! {
                _ = tokio::time::sleep(self.config.interval) => {}
                _ = stopping.wait_for(|s| *s) => {}
            }
            let mut inner = self.lock();
            if Instant::now() >= inner.interest_until || *self.stopping.borrow() {
                // Decided under the lock that `touch` takes, so a touch either
                // lands before this (and we go on) or sees `running == false`
                // (and starts a new task).
                inner.running = false;
                inner.series.clear();
                return;
            }
        }
    }

    fn record(&self, readings: &[ProcessStats], now: Instant, t: i64) {
        let capacity = self.config.capacity.max(1);
        let mut inner = self.lock();
        // Processes that are gone (group removed) lose their history.
        inner.series.retain(|(g, n), _| readings.iter().any(|r| &r.group == g && &r.name == n));
        for r in readings {
            let series = inner.series.entry((r.group.clone(), r.name.clone())).or_default();
            let running = r.pid != 0;
            let usec = (r.cpu_seconds * 1e6).round() as u64;
            let cpu = match (running, series.last_cpu) {
                (true, Some((prev, at))) => cpu_percent(prev, at, usec, now),
                _ => None,
            };
            series.last_cpu = running.then_some((usec, now));
            let mem = if running { r.memory_current.or(r.rss) } else { None };
            if series.points.len() >= capacity {
                series.points.pop_front();
            }
            series.points.push_back(Sample { t, cpu, mem });
        }
    }
}

fn epoch_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::Command;
    use std::sync::atomic::{AtomicU64, Ordering};
    use tokio::sync::{broadcast, mpsc};

    /// An engine that answers only `Stats`, counting the calls; CPU time grows 10 ms per call.
    fn fake_engine() -> (Handle, Arc<AtomicU64>) {
        let (tx, mut rx) = mpsc::channel::<Command>(16);
        let (notices, _) = broadcast::channel(4);
        let calls = Arc::new(AtomicU64::new(0));
        let counter = calls.clone();
        tokio::spawn(async move {
            while let Some(cmd) = rx.recv().await {
                if let Command::Stats(_, reply) = cmd {
                    let n = counter.fetch_add(1, Ordering::SeqCst) + 1;
                    let _ = reply.send(Ok(vec![reading(n)]));
                }
            }
        });
        (Handle::new(tx, notices), calls)
    }

    fn reading(n: u64) -> ProcessStats {
        ProcessStats {
            name: "p".into(),
            group: "g".into(),
            pid: 7,
            statename: "RUNNING",
            cpu_percent: 0.0,
            cpu_seconds: n as f64 * 0.01,
            memory_current: Some(1000 + n),
            memory_peak: None,
            rss: None,
            io_read_bytes: None,
            io_write_bytes: None,
            tasks: None,
            threads: None,
            fds: None,
            restarts: 0,
            oom_kills: 0,
            cgroup: None,
        }
    }

    fn config() -> SamplerConfig {
        SamplerConfig { interval: Duration::from_millis(20), quiet: Duration::from_millis(150), capacity: 4 }
    }

    async fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while !cond() {
            assert!(Instant::now() < deadline, "timed out waiting for {what}");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    #[tokio::test]
    async fn no_task_runs_until_touched_and_none_after_the_quiet_period() {
        let (handle, calls) = fake_engine();
        let (_stop_tx, stop_rx) = watch::channel(false);
        let metrics = tokio::runtime::Handle::current().metrics();
        let baseline = metrics.num_alive_tasks();
        let sampler = Sampler::new(handle, stop_rx, config());
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert!(!sampler.is_running());
        assert_eq!(calls.load(Ordering::SeqCst), 0, "nothing samples before interest");
        assert_eq!(metrics.num_alive_tasks(), baseline, "no task before interest");

        sampler.touch();
        assert!(sampler.is_running());
        sampler.touch(); // A second touch does not start a second task.
        assert_eq!(metrics.num_alive_tasks(), baseline + 1);
        wait_until("samples", || sampler.history("g", "p").len() >= 3).await;

        wait_until("the sampler to stop after the quiet period", || !sampler.is_running()).await;
        wait_until("the task to be gone", || metrics.num_alive_tasks() == baseline).await;
        assert!(sampler.history("g", "p").is_empty(), "history is dropped with the task");
        let after = calls.load(Ordering::SeqCst);
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert_eq!(calls.load(Ordering::SeqCst), after, "no sampling once nobody looks");

        sampler.touch();
        assert!(sampler.is_running(), "interest starts it again");
        wait_until("a new sample", || !sampler.history("g", "p").is_empty()).await;
    }

    #[tokio::test]
    async fn touches_keep_it_running_and_the_ring_keeps_the_newest() {
        let (handle, _calls) = fake_engine();
        let (_stop_tx, stop_rx) = watch::channel(false);
        let sampler = Sampler::new(handle, stop_rx, config());
        let start = Instant::now();
        while start.elapsed() < Duration::from_millis(400) {
            sampler.touch();
            tokio::time::sleep(Duration::from_millis(30)).await;
            assert!(sampler.is_running(), "stopped while still touched");
        }
        let history = sampler.history("g", "p");
        assert_eq!(history.len(), 4, "capacity bounds the ring");
        assert!(history.windows(2).all(|w| w[0].t <= w[1].t));
        let mem: Vec<u64> = history.iter().filter_map(|s| s.mem).collect();
        assert!(mem.windows(2).all(|w| w[0] < w[1]), "oldest dropped first: {mem:?}");
        assert!(history.iter().all(|s| s.cpu.is_some_and(|c| c > 0.0)), "{history:?}");
        assert_eq!(sampler.latest().get(&("g".to_string(), "p".to_string())), history.last());
    }

    #[tokio::test]
    async fn server_shutdown_ends_the_task() {
        let (handle, _calls) = fake_engine();
        let (stop_tx, stop_rx) = watch::channel(false);
        let sampler =
            Sampler::new(handle, stop_rx, SamplerConfig { quiet: Duration::from_secs(600), ..config() });
        sampler.touch();
        assert!(sampler.is_running());
        let _ = stop_tx.send(true);
        wait_until("the sampler to stop on shutdown", || !sampler.is_running()).await;
        sampler.touch();
        assert!(!sampler.is_running(), "no new task while stopping");
    }
}
