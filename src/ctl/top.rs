//! `corralctl top`: a live, full-screen view of every process.
//!
//! It redraws in place (alternate screen) every interval from
//! `corral.getAllProcessStats`, sorted by CPU (`c`) or memory (`m`), and quits
//! on `q`, Esc or Ctrl-C. Against a plain supervisord, which has no stats,
//! it shows states and pids from `getAllProcessInfo`.

use std::io::{self, Write};
use std::time::{Duration, Instant};

use crossterm::event::{self, Event, KeyCode, KeyEventKind, KeyModifiers};
use crossterm::style::Print;
use crossterm::terminal::{self, Clear, ClearType, EnterAlternateScreen, LeaveAlternateScreen};
use crossterm::{cursor, execute, queue};

use super::args::SortKey;
use super::client::{Client, ClientError};
use super::controller::faults;
use super::stats_table;
use super::value::{self, Struct};

/// Puts the terminal back however `top` ends.
struct Screen;

impl Screen {
    fn enter() -> io::Result<Screen> {
        terminal::enable_raw_mode()?;
        execute!(io::stdout(), EnterAlternateScreen, cursor::Hide)?;
        Ok(Screen)
    }
}

impl Drop for Screen {
    fn drop(&mut self) {
        let _ = execute!(io::stdout(), cursor::Show, LeaveAlternateScreen);
        let _ = terminal::disable_raw_mode();
    }
}

/// One refresh: rows, or the error to show instead.
fn fetch(client: &Client) -> Result<Vec<Struct>, ClientError> {
    match client.call("corral.getAllProcessStats", vec![]) {
        Err(ClientError::Fault { code: faults::UNKNOWN_METHOD, .. }) => {
            let v = client.call("supervisor.getAllProcessInfo", vec![])?;
            Ok(value::into_structs(v).unwrap_or_default())
        }
        other => Ok(value::into_structs(other?).unwrap_or_default()),
    }
}

fn metric(s: &Struct, key: &str) -> f64 {
    s.get(key).and_then(value::float).unwrap_or(-1.0)
}

/// Sort rows, highest first by the chosen key, then by the other, then by name.
pub fn sort_rows(rows: &mut [Struct], key: SortKey) {
    let (first, second) = match key {
        SortKey::Cpu => ("cpu_percent", "memory_current"),
        SortKey::Mem => ("memory_current", "cpu_percent"),
    };
    rows.sort_by(|a, b| {
        metric(b, first)
            .total_cmp(&metric(a, first))
            .then(metric(b, second).total_cmp(&metric(a, second)))
            .then(super::format::namespec_of(a).cmp(&super::format::namespec_of(b)))
    });
}

fn draw(url: &str, sort: SortKey, data: &Result<Vec<Struct>, ClientError>) -> io::Result<()> {
    let (width, height) = terminal::size().unwrap_or((80, 24));
    let (width, height) = (usize::from(width), usize::from(height));
    let mut out = io::stdout().lock();
    let by = match sort {
        SortKey::Cpu => "CPU",
        SortKey::Mem => "memory",
    };
    let now = chrono::Local::now().format("%H:%M:%S");
    let mut lines = Vec::new();
    match data {
        Ok(rows) => {
            lines.push(format!("corralctl top - {url} - {now} - {} processes, by {by}", rows.len()));
            lines.push("keys: c sort by CPU, m sort by memory, q quit".to_string());
            lines.push(String::new());
            lines.extend(stats_table::lines(rows, true));
        }
        Err(e) => {
            lines.push(format!("corralctl top - {url} - {now}"));
            lines.push("keys: q quit".to_string());
            lines.push(String::new());
            lines.push(format!("cannot read stats: {e}"));
        }
    }
    queue!(out, Clear(ClearType::All))?;
    for (row, line) in lines.iter().take(height).enumerate() {
        queue!(out, cursor::MoveTo(0, row as u16), Print(clip(line, width)))?;
    }
    out.flush()
}

/// Cut a line to `width` visible characters, keeping colour codes intact.
fn clip(line: &str, width: usize) -> String {
    let mut out = String::new();
    let mut visible = 0;
    let mut in_escape = false;
    for c in line.chars() {
        if in_escape {
            out.push(c);
            in_escape = c != 'm';
            continue;
        }
        if c == '\x1b' {
            in_escape = true;
            out.push(c);
            continue;
        }
        if visible == width {
            break;
        }
        out.push(c);
        visible += 1;
    }
    out.push_str("\x1b[0m");
    out
}

/// Run until the user quits; returns the exit status.
pub fn run(client: &Client, url: &str, mut sort: SortKey, interval: Duration) -> io::Result<i32> {
    // Check the server before taking over the terminal, so errors stay readable.
    if let Err(e) = client.call("supervisor.getVersion", vec![]) {
        eprintln!("{url}: {e}");
        return Ok(1);
    }
    let _screen = Screen::enter()?;
    let mut data = fetch(client);
    let mut next = Instant::now() + interval;
    loop {
        if let Ok(rows) = &mut data {
            sort_rows(rows, sort);
        }
        draw(url, sort, &data)?;
        loop {
            let wait = next.saturating_duration_since(Instant::now());
            if wait.is_zero() {
                data = fetch(client);
                next = Instant::now() + interval;
                break;
            }
            if !event::poll(wait)? {
                continue;
            }
            match event::read()? {
                Event::Key(k) if k.kind != KeyEventKind::Release => match k.code {
                    KeyCode::Char('q') | KeyCode::Char('Q') | KeyCode::Esc => return Ok(0),
                    KeyCode::Char('c') if k.modifiers.contains(KeyModifiers::CONTROL) => return Ok(0),
                    KeyCode::Char('c') | KeyCode::Char('C') => {
                        sort = SortKey::Cpu;
                        break;
                    }
                    KeyCode::Char('m') | KeyCode::Char('M') => {
                        sort = SortKey::Mem;
                        break;
                    }
                    _ => {}
                },
                Event::Resize(..) => break,
                _ => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use dxr::Value;

    fn row(name: &str, cpu: f64, mem: i64) -> Struct {
        [
            ("name".to_string(), Value::String(name.into())),
            ("group".to_string(), Value::String(name.into())),
            ("cpu_percent".to_string(), Value::Double(cpu)),
            ("memory_current".to_string(), Value::Long(mem)),
        ]
        .into_iter()
        .collect()
    }

    #[test]
    fn sorts_by_cpu_or_memory() {
        let mut rows = vec![row("a", 1.0, 300), row("b", 50.0, 100), row("c", 10.0, 200)];
        sort_rows(&mut rows, SortKey::Cpu);
        let names: Vec<String> = rows.iter().map(|r| value::str_field(r, "name")).collect();
        assert_eq!(names, ["b", "c", "a"]);
        sort_rows(&mut rows, SortKey::Mem);
        let names: Vec<String> = rows.iter().map(|r| value::str_field(r, "name")).collect();
        assert_eq!(names, ["a", "c", "b"]);
    }

    #[test]
    fn clipping_keeps_colours() {
        assert_eq!(clip("\x1b[32mRUNNING\x1b[0m x", 3), "\x1b[32mRUN\x1b[0m");
    }
}
