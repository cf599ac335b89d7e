//! The `stats` table (also the body of `top`).

use super::format::{self, namespec_of};
use super::value::{self, Struct};

/// Column headers, in order.
pub const HEADERS: [&str; 11] =
    ["NAME", "STATE", "PID", "CPU%", "MEM", "PEAK", "TASKS", "FDS", "RESTARTS", "OOM", "CGROUP"];

fn int(s: &Struct, key: &str) -> i64 {
    s.get(key).and_then(value::int).unwrap_or(-1)
}

/// One row of cells for a stats struct.
pub fn cells(s: &Struct) -> Vec<String> {
    let pid = int(s, "pid");
    vec![
        namespec_of(s),
        value::str_field(s, "statename"),
        if pid > 0 { pid.to_string() } else { "-".into() },
        s.get("cpu_percent").and_then(value::float).map(|c| format!("{c:.1}")).unwrap_or_else(|| "-".into()),
        format::human_bytes(int(s, "memory_current")),
        format::human_bytes(int(s, "memory_peak")),
        format::count(int(s, "tasks")),
        format::count(int(s, "fds")),
        format::count(int(s, "restarts")),
        format::count(int(s, "oom_kills")),
        match value::str_field(s, "cgroup") {
            c if c.is_empty() => "-".into(),
            c => c,
        },
    ]
}

/// The header line and one line per row, columns aligned; numbers right-aligned.
pub fn lines(rows: &[Struct], color: bool) -> Vec<String> {
    let table: Vec<Vec<String>> = rows.iter().map(cells).collect();
    let mut widths: Vec<usize> = HEADERS.iter().map(|h| h.len()).collect();
    for row in &table {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let render = |row: &[String], colored: bool| -> String {
        let last = row.len() - 1;
        let mut line = String::new();
        for (i, cell) in row.iter().enumerate() {
            let w = widths[i];
            let text = match i {
                0 => format!("{cell:<w$}"),
                1 => format::padded_state(cell, w, colored),
                i if i == last => cell.clone(),
                _ => format!("{cell:>w$}"),
            };
            line.push_str(&text);
            if i != last {
                line.push_str("  ");
            }
        }
        line.trim_end().to_string()
    };
    let headers: Vec<String> = HEADERS.iter().map(|h| h.to_string()).collect();
    let mut out = vec![render(&headers, false)];
    out.extend(table.iter().map(|r| render(r, color)));
    out
}
