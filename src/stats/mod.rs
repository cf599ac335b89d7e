//! Readings from /proc and cgroup files: CPU, memory, tasks, fds.
