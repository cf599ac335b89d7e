//! Cgroup backends (cgroup2, cgroup v1, none): setup detection, placement, limits, kill.
