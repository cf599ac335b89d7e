//! Learning, without polling, when a process's cgroup has emptied.
//!
//! `cgroup.events` (cgroup2) is modified when `populated` flips; inotify on it
//! wakes the engine. Where there is no such file (cgroup v1 only), the engine
//! falls back to re-checking on a short timer while something is draining.

use std::collections::HashMap;
use std::path::Path;

use std::os::fd::{AsFd, AsRawFd, RawFd};

use nix::sys::inotify::{AddWatchFlags, InitFlags, Inotify, WatchDescriptor};
use tokio::io::unix::AsyncFd;

/// `Inotify` as tokio needs it (nix implements only `AsFd`).
struct Fd(Inotify);

impl AsRawFd for Fd {
    fn as_raw_fd(&self) -> RawFd {
        self.0.as_fd().as_raw_fd()
    }
}

use super::core::ProcId;

/// inotify watches on `cgroup.events` files, keyed by process.
pub(crate) struct EmptyWatch {
    inotify: Option<AsyncFd<Fd>>,
    by_wd: HashMap<WatchDescriptor, ProcId>,
}

impl EmptyWatch {
    /// A watcher; without inotify every `watch` reports false (use polling).
    pub fn new() -> EmptyWatch {
        let inotify = Inotify::init(InitFlags::IN_NONBLOCK | InitFlags::IN_CLOEXEC).ok().and_then(|i| {
            // SAFETY: `Fd` owns the inotify descriptor for as long as the AsyncFd
            // holds it, and always returns that same descriptor.
            unsafe { AsyncFd::register_with_interest(Fd(i), tokio::io::Interest::READABLE) }.ok()
        });
        if inotify.is_none() {
            tracing::debug!("inotify unavailable; cgroup drains are polled");
        }
        EmptyWatch { inotify, by_wd: HashMap::new() }
    }

    /// Watch `events` (a `cgroup.events` file) for `id`. False when it cannot be watched.
    pub fn watch(&mut self, events: &Path, id: ProcId) -> bool {
        let Some(fd) = &self.inotify else { return false };
        match fd.get_ref().0.add_watch(events, AddWatchFlags::IN_MODIFY) {
            Ok(wd) => {
                self.by_wd.insert(wd, id);
                true
            }
            Err(e) => {
                tracing::debug!("cannot watch {}: {e}", events.display());
                false
            }
        }
    }

    /// Stop watching for `id`.
    pub fn unwatch(&mut self, id: ProcId) {
        let wds: Vec<WatchDescriptor> =
            self.by_wd.iter().filter(|(_, p)| **p == id).map(|(w, _)| *w).collect();
        for wd in wds {
            self.by_wd.remove(&wd);
            if let Some(fd) = &self.inotify {
                let _ = fd.get_ref().0.rm_watch(wd);
            }
        }
    }

    /// Whether anything is watched (so the engine only awaits when it must).
    pub fn active(&self) -> bool {
        !self.by_wd.is_empty()
    }

    /// Wait until a watched file changes; returns the processes to re-check.
    pub async fn changed(&self) -> Vec<ProcId> {
        let Some(fd) = &self.inotify else { return std::future::pending().await };
        loop {
            let Ok(mut guard) = fd.readable().await else { return std::future::pending().await };
            match guard.try_io(|f| f.get_ref().0.read_events().map_err(std::io::Error::from)) {
                Ok(Ok(events)) => {
                    let mut ids: Vec<ProcId> =
                        events.iter().filter_map(|e| self.by_wd.get(&e.wd).copied()).collect();
                    ids.dedup();
                    return ids;
                }
                Ok(Err(_)) | Err(_) => continue,
            }
        }
    }
}
