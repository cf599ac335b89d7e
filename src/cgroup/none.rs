//! The backend for hosts without usable cgroups: limits are refused,
//! everything else is a harmless no-op so the daemon can still supervise
//! with process-group kill and /proc stats.

use std::path::PathBuf;

use super::limits;
use super::{Backend, CgroupError, CgroupReadings, Mode, Placement, Target};
use crate::config::model::Limits;

/// No cgroups: carries the reason for the warning and for refused limits.
#[derive(Debug, Clone)]
pub struct NoneBackend {
    reason: String,
}

impl NoneBackend {
    /// A backend that explains `reason` wherever cgroups would be needed.
    pub fn new(reason: impl Into<String>) -> NoneBackend {
        NoneBackend { reason: reason.into() }
    }

    /// Why cgroups are unavailable.
    pub fn reason(&self) -> &str {
        &self.reason
    }

    fn unavailable(&self) -> CgroupError {
        CgroupError::NoCgroups { reason: self.reason.clone() }
    }
}

impl Backend for NoneBackend {
    fn mode(&self) -> Mode {
        Mode::None
    }

    fn describe(&self) -> String {
        format!("none: {} (process-group kill, /proc stats only)", self.reason)
    }

    fn check_limits(&self, limits: &Limits) -> Result<(), CgroupError> {
        match limits::requested(limits).first() {
            Some((option, _)) => Err(CgroupError::Unsupported {
                option,
                reason: format!("cgroups are not available on this host ({})", self.reason),
            }),
            None => Ok(()),
        }
    }

    fn adopt_daemon_leaf(&self) -> Result<Option<PathBuf>, CgroupError> {
        Ok(None)
    }

    fn prepare_group(&self, _group: &str, limits: &Limits) -> Result<(), CgroupError> {
        self.check_limits(limits)
    }

    fn prepare_process(
        &self,
        _group: &str,
        _process: &str,
        limits: &Limits,
    ) -> Result<Placement, CgroupError> {
        self.check_limits(limits)?;
        Ok(Placement { procs_fds: Vec::new(), unified_dir: None, path: String::new() })
    }

    fn apply_limits(&self, _target: Target<'_>, limits: &Limits) -> Result<(), CgroupError> {
        self.check_limits(limits)
    }

    fn kill(&self, _target: Target<'_>) -> Result<(), CgroupError> {
        Err(self.unavailable())
    }

    fn freeze(&self, _target: Target<'_>) -> Result<(), CgroupError> {
        Err(self.unavailable())
    }

    fn thaw(&self, _target: Target<'_>) -> Result<(), CgroupError> {
        Err(self.unavailable())
    }

    fn is_populated(&self, _target: Target<'_>) -> Result<bool, CgroupError> {
        Ok(false)
    }

    fn pids(&self, _target: Target<'_>) -> Result<Vec<i32>, CgroupError> {
        Ok(Vec::new())
    }

    fn remove(&self, _target: Target<'_>) -> Result<(), CgroupError> {
        Ok(())
    }

    fn remove_all(&self) -> Result<(), CgroupError> {
        Ok(())
    }

    fn oom_kills(&self, _target: Target<'_>) -> Result<u64, CgroupError> {
        Ok(0)
    }

    fn events_path(&self, _target: Target<'_>) -> Option<PathBuf> {
        None
    }

    fn path(&self, _target: Target<'_>) -> String {
        String::new()
    }

    fn readings(&self, _target: Target<'_>) -> Result<CgroupReadings, CgroupError> {
        Ok(CgroupReadings::default())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn any_limit_is_refused_with_option_and_reason() {
        let backend = NoneBackend::new("/sys/fs/cgroup is mounted read-only");
        backend.check_limits(&Limits::default()).expect("no limits is fine");
        let err =
            backend.check_limits(&Limits { cpu_quota: Some(50), ..Limits::default() }).expect_err("refused");
        assert_eq!(
            err.to_string(),
            "cpu_quota: cgroups are not available on this host (/sys/fs/cgroup is mounted read-only)"
        );
        let placement = backend.prepare_process("g", "p", &Limits::default()).expect("no placement needed");
        assert!(placement.procs_fds.is_empty());
    }
}
