//! Child output capture, log files with rotation, and the daemon's activity log.
//!
//! - [`file`]: [`RotatingFile`](file::RotatingFile), supervisord's size-based
//!   rotation without its non-seekable-file failure.
//! - [`capture`]: the per-pipe reader task that moves a child's output to its
//!   log file, plus ANSI stripping and the capture-mode parser.
//! - [`read`]: `readLog`/`tailProcessLog` semantics over positioned reads.
//! - [`auto`]: AUTO child log names and their cleanup.
//! - [`main_log`]: the activity log as a `tracing` layer in supervisord's format.

pub mod auto;
pub mod file;
pub mod read;
