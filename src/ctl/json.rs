//! `--json` output: one stable document per read command.
//!
//! Every document is a single JSON value followed by a newline on stdout;
//! messages about unknown names go to stderr so stdout always parses. Keys are
//! never renamed or removed; new keys may be added.
//!
//! | command | document |
//! |---|---|
//! | `status [names]` | array of **process** objects, in the server's order |
//! | `pid` / `pid all` / `pid names` | array of `{"name": str, "pid": int}`; the daemon itself is `"supervisord"`; `0` when not running |
//! | `avail` | array of `{"name", "group", "namespec": str, "in_use", "autostart": bool, "group_priority", "process_priority": int}` |
//! | `version` | `{"supervisor_version": str, "corral_version": str\|null, "identification": str\|null, "cgroup_mode": "unified"\|"hybrid"\|"legacy"\|"none"\|null, "api_version": "3.0"}` |
//! | `stats [names]` | array of **stats** objects |
//! | `limits name` | `{"name": str, "limits": {key: str}}`, keys among `memory_max`, `memory_high`, `memory_swap_max`, `cpu_quota`, `cpu_weight`, `tasks_max`, `io_weight`; `"max"` when unset |
//!
//! A **process** object: `name`, `group`, `namespec`, `statename`,
//! `description`, `spawnerr`, `stdout_logfile`, `stderr_logfile` (strings);
//! `state`, `pid`, `exitstatus`, `start`, `stop`, `now` (integers; times are
//! Unix seconds, `0` for never).
//!
//! A **stats** object: `name`, `group`, `namespec`, `statename`, `cgroup`
//! (strings; `cgroup` is `""` without one); `pid`, `restarts`, `oom_kills`
//! (integers); `cpu_percent`, `cpu_seconds` (numbers); `memory_current`,
//! `memory_peak`, `rss`, `io_read_bytes`, `io_write_bytes` (bytes), `tasks`,
//! `threads`, `fds` (integers or `null` when the host cannot tell).

use serde_json::{json, Map, Value as Json};

use super::format::namespec_of;
use super::value::{self, Struct};

/// Render a document as one line.
pub fn render(doc: &Json) -> String {
    doc.to_string()
}

fn string(info: &Struct, key: &str) -> Json {
    Json::String(value::str_field(info, key))
}

fn integer(info: &Struct, key: &str) -> Json {
    info.get(key).and_then(value::int).map(Json::from).unwrap_or(Json::Null)
}

/// Integer or `null` when absent or negative (unknown).
fn known(info: &Struct, key: &str) -> Json {
    info.get(key).and_then(value::int).filter(|n| *n >= 0).map(Json::from).unwrap_or(Json::Null)
}

fn number(info: &Struct, key: &str) -> Json {
    info.get(key).and_then(value::float).map(Json::from).unwrap_or(Json::Null)
}

/// `status --json`.
pub fn processes(infos: &[Struct]) -> Json {
    Json::Array(
        infos
            .iter()
            .map(|i| {
                let mut m = Map::new();
                for k in ["name", "group"] {
                    m.insert(k.into(), string(i, k));
                }
                m.insert("namespec".into(), Json::String(namespec_of(i)));
                for k in ["statename", "description", "spawnerr", "stdout_logfile", "stderr_logfile"] {
                    m.insert(k.into(), string(i, k));
                }
                for k in ["state", "pid", "exitstatus", "start", "stop", "now"] {
                    m.insert(k.into(), integer(i, k));
                }
                Json::Object(m)
            })
            .collect(),
    )
}

/// `pid --json`.
pub fn pids(rows: &[(String, i64)]) -> Json {
    Json::Array(rows.iter().map(|(name, pid)| json!({"name": name, "pid": pid})).collect())
}

/// `avail --json`.
pub fn avail(infos: &[Struct]) -> Json {
    Json::Array(
        infos
            .iter()
            .map(|i| {
                json!({
                    "name": value::str_field(i, "name"),
                    "group": value::str_field(i, "group"),
                    "namespec": namespec_of(i),
                    "in_use": i.get("inuse").is_some_and(value::truthy),
                    "autostart": i.get("autostart").is_some_and(value::truthy),
                    "group_priority": integer(i, "group_prio"),
                    "process_priority": integer(i, "process_prio"),
                })
            })
            .collect(),
    )
}

/// `version --json`.
pub fn version(
    supervisor: &str,
    corral: Option<&str>,
    identification: Option<&str>,
    cgroup_mode: Option<&str>,
) -> Json {
    json!({
        "supervisor_version": supervisor,
        "corral_version": corral,
        "identification": identification,
        "cgroup_mode": cgroup_mode,
        "api_version": super::controller::API_VERSION,
    })
}

/// `stats --json`.
pub fn stats(rows: &[Struct]) -> Json {
    Json::Array(
        rows.iter()
            .map(|s| {
                let mut m = Map::new();
                for k in ["name", "group"] {
                    m.insert(k.into(), string(s, k));
                }
                m.insert("namespec".into(), Json::String(namespec_of(s)));
                for k in ["statename", "cgroup"] {
                    m.insert(k.into(), string(s, k));
                }
                for k in ["pid", "restarts", "oom_kills"] {
                    m.insert(k.into(), integer(s, k));
                }
                for k in ["cpu_percent", "cpu_seconds"] {
                    m.insert(k.into(), number(s, k));
                }
                for k in [
                    "memory_current",
                    "memory_peak",
                    "rss",
                    "io_read_bytes",
                    "io_write_bytes",
                    "tasks",
                    "threads",
                    "fds",
                ] {
                    m.insert(k.into(), known(s, k));
                }
                Json::Object(m)
            })
            .collect(),
    )
}

/// `limits --json`.
pub fn limits(name: &str, limits: &Struct) -> Json {
    let map: Map<String, Json> =
        limits.iter().map(|(k, v)| (k.clone(), Json::String(value::text(v)))).collect();
    json!({"name": name, "limits": map})
}
