//! Known option names of each section kind (for "did you mean" warnings on
//! unknown options) and the event type names listeners may subscribe to.

/// corral's limit options, valid in program-type sections and `[group:x]`.
pub const LIMIT_OPTIONS: &[&str] =
    &["memory_max", "memory_high", "memory_swap_max", "cpu_quota", "cpu_weight", "tasks_max", "io_weight"];

/// Options of `[program:x]` (supervisord's and corral's).
pub const PROGRAM_OPTIONS: &[&str] = &[
    "command",
    "process_name",
    "numprocs",
    "numprocs_start",
    "priority",
    "autostart",
    "startsecs",
    "startretries",
    "autorestart",
    "exitcodes",
    "stopsignal",
    "stopwaitsecs",
    "stopasgroup",
    "killasgroup",
    "user",
    "redirect_stderr",
    "stdout_logfile",
    "stdout_logfile_maxbytes",
    "stdout_logfile_backups",
    "stdout_capture_maxbytes",
    "stdout_events_enabled",
    "stdout_syslog",
    "stderr_logfile",
    "stderr_logfile_maxbytes",
    "stderr_logfile_backups",
    "stderr_capture_maxbytes",
    "stderr_events_enabled",
    "stderr_syslog",
    "environment",
    "directory",
    "umask",
    "serverurl",
    "ready",
    "ready_timeout",
    "healthcheck",
    "healthcheck_interval",
    "healthcheck_timeout",
    "healthcheck_retries",
    "healthcheck_action",
    "watchdog_sec",
    "oom_score_adj",
    "kill_mode",
    "backoff",
    "backoff_max",
    "backoff_reset",
    "start_limit_burst",
    "start_limit_interval",
    "requires",
    "after",
];

/// Extra options of `[eventlistener:x]`.
pub const EVENTLISTENER_OPTIONS: &[&str] = &["events", "buffer_size", "result_handler"];

/// Extra options of `[fcgi-program:x]`.
pub const FCGI_OPTIONS: &[&str] = &["socket", "socket_backlog", "socket_owner", "socket_mode"];

/// Options of `[supervisord]`.
pub const SUPERVISORD_OPTIONS: &[&str] = &[
    "logfile",
    "logfile_maxbytes",
    "logfile_backups",
    "loglevel",
    "pidfile",
    "umask",
    "nodaemon",
    "silent",
    "minfds",
    "minprocs",
    "nocleanup",
    "childlogdir",
    "user",
    "directory",
    "strip_ansi",
    "environment",
    "identifier",
    "cgroup_root",
    "adopt_orphans",
];

/// Options of `[group:x]`.
pub const GROUP_OPTIONS: &[&str] = &["programs", "priority"];

/// Options of `[unix_http_server]`.
pub const UNIX_SERVER_OPTIONS: &[&str] = &["file", "chmod", "chown", "username", "password", "metrics_auth"];

/// Options of `[inet_http_server]`.
pub const INET_SERVER_OPTIONS: &[&str] = &["port", "username", "password", "metrics_auth"];

/// Options of `[supervisorctl]`.
pub const CTL_OPTIONS: &[&str] = &["serverurl", "username", "password", "prompt", "history_file"];

/// Options of `[include]`.
pub const INCLUDE_OPTIONS: &[&str] = &["files"];

/// Event types supervisord knows, plus corral's own.
pub const EVENT_TYPES: &[&str] = &[
    "EVENT",
    "PROCESS_COMMUNICATION",
    "PROCESS_COMMUNICATION_STDERR",
    "PROCESS_COMMUNICATION_STDOUT",
    "PROCESS_GROUP",
    "PROCESS_GROUP_ADDED",
    "PROCESS_GROUP_REMOVED",
    "PROCESS_LOG",
    "PROCESS_LOG_STDERR",
    "PROCESS_LOG_STDOUT",
    "PROCESS_STATE",
    "PROCESS_STATE_BACKOFF",
    "PROCESS_STATE_EXITED",
    "PROCESS_STATE_FATAL",
    "PROCESS_STATE_RUNNING",
    "PROCESS_STATE_STARTING",
    "PROCESS_STATE_STOPPED",
    "PROCESS_STATE_STOPPING",
    "PROCESS_STATE_UNKNOWN",
    "REMOTE_COMMUNICATION",
    "SUPERVISOR_STATE_CHANGE",
    "SUPERVISOR_STATE_CHANGE_RUNNING",
    "SUPERVISOR_STATE_CHANGE_STOPPING",
    "TICK",
    "TICK_3600",
    "TICK_5",
    "TICK_60",
    "CORRAL_PROCESS_OOM",
    "CORRAL_LIMIT_CHANGED",
    "CORRAL_PROCESS_UNHEALTHY",
];

/// The closest known name to `unknown`, if one is close enough to be a typo.
pub fn suggest<'a>(unknown: &str, known: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    let limit = (unknown.chars().count() / 3).max(2);
    known
        .into_iter()
        .map(|k| (levenshtein(unknown, k), k))
        .filter(|(d, _)| *d <= limit)
        .min_by_key(|(d, _)| *d)
        .map(|(_, k)| k)
}

fn levenshtein(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.iter().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(ca != cb);
            cur[j + 1] = (prev[j] + cost).min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggests_close_names_only() {
        assert_eq!(suggest("startsec", PROGRAM_OPTIONS.iter().copied()), Some("startsecs"));
        assert_eq!(suggest("autorestrat", PROGRAM_OPTIONS.iter().copied()), Some("autorestart"));
        assert_eq!(suggest("frobnicate", PROGRAM_OPTIONS.iter().copied()), None);
        assert_eq!(levenshtein("kitten", "sitting"), 3);
    }
}
