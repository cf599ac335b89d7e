//! Text output: supervisorctl's line formats, state colours, human sizes.

use super::value::{self, Struct};

/// supervisord's `make_namespec`: `name`, or `group:name` when they differ.
pub fn make_namespec(group: &str, name: &str) -> String {
    if group == name {
        name.to_string()
    } else {
        format!("{group}:{name}")
    }
}

/// supervisord's `split_namespec`: `(group, Some(process))`, or `(group, None)` for `g:` / `g:*`.
pub fn split_namespec(namespec: &str) -> (String, Option<String>) {
    match namespec.split_once(':') {
        Some((group, process)) if process.is_empty() || process == "*" => (group.to_string(), None),
        Some((group, process)) => (group.to_string(), Some(process.to_string())),
        None => (namespec.to_string(), Some(namespec.to_string())),
    }
}

/// The namespec of an info or result struct.
pub fn namespec_of(info: &Struct) -> String {
    make_namespec(&value::str_field(info, "group"), &value::str_field(info, "name"))
}

/// ANSI colour for a state name: green running, yellow in transition, red stopped badly.
pub fn state_color(statename: &str) -> Option<&'static str> {
    match statename {
        "RUNNING" => Some("\x1b[32m"),
        "STARTING" | "BACKOFF" | "STOPPING" => Some("\x1b[33m"),
        "FATAL" | "EXITED" | "UNKNOWN" => Some("\x1b[31m"),
        _ => None,
    }
}

/// `text` left-justified to `width`, coloured (padding outside the colour) when asked.
pub fn padded_state(statename: &str, width: usize, color: bool) -> String {
    let pad = " ".repeat(width.saturating_sub(statename.chars().count()));
    match state_color(statename).filter(|_| color) {
        Some(c) => format!("{c}{statename}\x1b[0m{pad}"),
        None => format!("{statename}{pad}"),
    }
}

/// supervisorctl's `_show_statuses`: one line per process, columns aligned.
pub fn status_lines(infos: &[Struct], color: bool) -> Vec<String> {
    let namespecs: Vec<String> = infos.iter().map(namespec_of).collect();
    let width = namespecs.iter().map(|n| n.chars().count()).fold(30, usize::max) + 3;
    infos
        .iter()
        .zip(&namespecs)
        .map(|(info, namespec)| {
            format!(
                "{namespec:<width$}{}{}",
                padded_state(&value::str_field(info, "statename"), 10, color),
                value::str_field(info, "description")
            )
        })
        .collect()
}

/// supervisorctl's `_formatConfigInfo` line for `avail`.
pub fn avail_line(info: &Struct) -> String {
    let inuse = if info.get("inuse").is_some_and(value::truthy) { "in use" } else { "avail" };
    let auto = if info.get("autostart").is_some_and(value::truthy) { "auto" } else { "manual" };
    let priority =
        format!("{}:{}", value::str_field(info, "group_prio"), value::str_field(info, "process_prio"));
    format!("{:<32} {inuse:<9} {auto:<9} {priority}", namespec_of(info))
}

/// Bytes as `512B`, `1.5K`, `20.0M`, `3.2G`; `-` when unknown (negative).
pub fn human_bytes(n: i64) -> String {
    if n < 0 {
        return "-".to_string();
    }
    const UNITS: [&str; 5] = ["K", "M", "G", "T", "P"];
    if n < 1024 {
        return format!("{n}B");
    }
    let mut v = n as f64 / 1024.0;
    let mut unit = UNITS[0];
    for u in &UNITS[1..] {
        if v < 1024.0 {
            break;
        }
        v /= 1024.0;
        unit = u;
    }
    format!("{v:.1}{unit}")
}

/// A count, or `-` when unknown (negative).
pub fn count(n: i64) -> String {
    if n < 0 {
        "-".to_string()
    } else {
        n.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use dxr::Value;

    fn info(group: &str, name: &str, state: &str, desc: &str) -> Struct {
        [("group", group), ("name", name), ("statename", state), ("description", desc)]
            .into_iter()
            .map(|(k, v)| (k.to_string(), Value::String(v.to_string())))
            .collect()
    }

    #[test]
    fn namespecs() {
        assert_eq!(make_namespec("a", "a"), "a");
        assert_eq!(make_namespec("g", "p"), "g:p");
        assert_eq!(split_namespec("g:*"), ("g".into(), None));
        assert_eq!(split_namespec("g:"), ("g".into(), None));
        assert_eq!(split_namespec("g:p"), ("g".into(), Some("p".into())));
        assert_eq!(split_namespec("p"), ("p".into(), Some("p".into())));
    }

    #[test]
    fn status_columns_match_supervisorctl() {
        let lines = status_lines(&[info("a", "a", "RUNNING", "pid 1, uptime 0:00:01")], false);
        assert_eq!(lines[0], format!("{:<33}{:<10}pid 1, uptime 0:00:01", "a", "RUNNING"));
        let long = "x".repeat(40);
        let lines = status_lines(&[info(&long, &long, "STARTING", "")], false);
        assert_eq!(lines[0], format!("{long}   STARTING  "));
        let coloured = status_lines(&[info("a", "a", "FATAL", "boom")], true);
        assert_eq!(coloured[0], format!("{:<33}\x1b[31mFATAL\x1b[0m     boom", "a"));
    }

    #[test]
    fn sizes() {
        assert_eq!(human_bytes(-1), "-");
        assert_eq!(human_bytes(512), "512B");
        assert_eq!(human_bytes(1536), "1.5K");
        assert_eq!(human_bytes(512 * 1024 * 1024), "512.0M");
    }
}
