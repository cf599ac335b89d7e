//! Child output capture, log files with rotation, and the daemon's activity log.
