//! Noticing OOM kills in a process's cgroup between two readings.

use super::{Backend, CgroupError, Target};

/// Remembers the OOM-kill count of one cgroup so the engine can tell whether
/// the kernel OOM-killed something since the last look (to report a process
/// as `OOM killed` when it exits).
///
/// Make a new one for every start: [`Backend::prepare_process`] gives a
/// fresh cgroup whose counter starts at 0.
#[derive(Debug, Clone, Default)]
pub struct OomWatch {
    last: u64,
}

impl OomWatch {
    /// A watch for a fresh cgroup (count 0).
    pub fn new() -> OomWatch {
        OomWatch::default()
    }

    /// The count at the last [`OomWatch::check`].
    pub fn last(&self) -> u64 {
        self.last
    }

    /// Reads the counter; returns how many OOM kills happened since the
    /// previous call (0 if none).
    pub fn check(&mut self, backend: &dyn Backend, target: Target<'_>) -> Result<u64, CgroupError> {
        let now = backend.oom_kills(target)?;
        let new = now.saturating_sub(self.last);
        self.last = self.last.max(now);
        Ok(new)
    }

    /// True when at least one OOM kill happened since the previous call.
    pub fn oom_killed_since_last(
        &mut self,
        backend: &dyn Backend,
        target: Target<'_>,
    ) -> Result<bool, CgroupError> {
        Ok(self.check(backend, target)? > 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cgroup::{Hierarchy, Mode, OpenOptions, UnifiedBackend};
    use crate::config::model::Limits;
    use std::fs;

    #[test]
    fn reports_only_new_oom_kills() {
        let tmp = tempfile::tempdir().expect("tempdir");
        fs::write(tmp.path().join("cgroup.procs"), "").expect("write");
        let hierarchy = Hierarchy {
            mount: tmp.path().to_path_buf(),
            controllers: Vec::new(),
            own: "/".to_string(),
            read_only: false,
        };
        let backend =
            UnifiedBackend::new(&hierarchy, &OpenOptions::default(), Mode::Unified).expect("backend");
        drop(backend.prepare_process("g", "p", &Limits::default()).expect("start"));
        let events = tmp.path().join("corral/g/p/memory.events");
        let target = Target::Process { group: "g", process: "p" };
        let mut watch = OomWatch::new();
        assert!(!watch.oom_killed_since_last(&backend, target).expect("no file yet"));
        fs::write(&events, "oom 1\noom_kill 1\n").expect("write");
        assert!(watch.oom_killed_since_last(&backend, target).expect("first"));
        assert!(!watch.oom_killed_since_last(&backend, target).expect("unchanged"));
        fs::write(&events, "oom 3\noom_kill 3\n").expect("write");
        assert_eq!(watch.check(&backend, target).expect("two more"), 2);
        assert_eq!(watch.last(), 3);
    }
}
