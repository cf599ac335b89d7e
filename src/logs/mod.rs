//! Child output capture, log files with rotation, and the daemon's activity log.
//!
//! - [`file`]: [`RotatingFile`](file::RotatingFile), supervisord's size-based
//!   rotation without its non-seekable-file failure.
//! - [`pump`]: one task moving the output of every plain pipe (a log file and
//!   nothing else) to its file.
//! - [`capture`]: the per-pipe reader task for pipes that also report output
//!   events, use capture mode or feed journald/syslog; [`ansi`] (`strip_ansi`) and
//!   [`capture_mode`] (the `XSUPERVISOR:BEGIN/END` parser) are its stages.
//! - [`read`]: `readLog`/`tailProcessLog` semantics over positioned reads.
//! - [`auto`]: AUTO child log names and their cleanup.
//! - [`main_log`]: the activity log as a `tracing` layer in supervisord's format.
//! - [`tail`]: following a log file for the `/logtail` endpoints.
//! - [`journal`]: journald, for corrald's own log and `*_logfile=journal`.

pub mod ansi;
pub mod auto;
pub mod capture;
pub mod capture_mode;
pub mod file;
pub mod journal;
pub mod main_log;
pub mod pump;
pub mod read;
pub mod tail;

/// Which output of a process a log belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Channel {
    /// The child's stdout.
    Stdout,
    /// The child's stderr.
    Stderr,
}

impl Channel {
    /// `"stdout"` or `"stderr"`, as used in names, events and messages.
    pub fn as_str(self) -> &'static str {
        match self {
            Channel::Stdout => "stdout",
            Channel::Stderr => "stderr",
        }
    }
}
