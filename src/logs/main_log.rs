//! The activity (main) log: a `tracing` layer writing supervisord's format.
//!
//! Every line is `YYYY-MM-DD HH:MM:SS,mmm LEVL message\n` in local time,
//! written to a [`RotatingFile`] (`logfile`, `logfile_maxbytes`,
//! `logfile_backups`) and, when `nodaemon` and not `silent`, to stdout.
//!
//! supervisord has seven levels, `tracing` five. The two extra ones are
//! carried by a boolean field on the event:
//!
//! | supervisord | LEVL | emit with |
//! |---|---|---|
//! | critical (50) | `CRIT` | [`crit!`](crate::crit) = `tracing::error!(crit = true, …)` |
//! | error (40) | `ERRO` | `tracing::error!` |
//! | warn (30) | `WARN` | `tracing::warn!` |
//! | info (20) | `INFO` | `tracing::info!` |
//! | debug (10) | `DEBG` | `tracing::debug!` |
//! | trace (5) | `TRAC` | `tracing::trace!` |
//! | blather (3) | `BLAT` | [`blather!`](crate::blather) = `tracing::trace!(blather = true, …)` |
//!
//! An event is written when its supervisord level is at least the configured
//! `loglevel`. Fields other than the message and these markers are appended
//! as ` key=value`.

use std::fmt::{self, Write as _};
use std::io::Write as _;
use std::path::{Path, PathBuf};

use tracing::field::{Field, Visit};
use tracing::{Event, Level, Metadata, Subscriber};
use tracing_subscriber::filter::LevelFilter;
use tracing_subscriber::layer::{Context, Layer};

use super::file::{lock, RotatingFile, SharedFile, SinkError};
use super::read::{read_log, ReadError};
use crate::config::model::LogLevel;

/// Field marking an `error!` event as supervisord's CRIT.
pub const CRIT_FIELD: &str = "crit";
/// Field marking a `trace!` event as supervisord's BLAT.
pub const BLATHER_FIELD: &str = "blather";

/// Logs at supervisord's `critical` level (label `CRIT`): an `error!` event
/// with `crit = true`.
#[macro_export]
macro_rules! crit {
    ($($arg:tt)+) => { ::tracing::error!(crit = true, $($arg)+) };
}

/// Logs at supervisord's `blather` level (label `BLAT`): a `trace!` event with
/// `blather = true`.
#[macro_export]
macro_rules! blather {
    ($($arg:tt)+) => { ::tracing::trace!(blather = true, $($arg)+) };
}

/// Where and what the activity log writes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MainLogConfig {
    /// The log file; `None` writes no file (e.g. `logfile=syslog`, which this
    /// module does not implement).
    pub file: Option<PathBuf>,
    /// `logfile_maxbytes`; 0 never rotates.
    pub maxbytes: u64,
    /// `logfile_backups`.
    pub backups: u32,
    /// `loglevel`.
    pub level: LogLevel,
    /// Copy lines to stdout (`nodaemon && !silent`).
    pub stdout: bool,
}

/// Errors of `clearLog`, mapped onto supervisord's faults.
#[derive(Debug, thiserror::Error)]
pub enum ClearError {
    /// Fault `NO_FILE`: no log file configured, or it does not exist.
    #[error("NO_FILE")]
    NoFile,
    /// Fault `FAILED`: deleting or reopening failed.
    #[error("FAILED: {0}")]
    Failed(#[from] SinkError),
}

/// The engine's handle on the activity log file: reopen (SIGUSR2), clear
/// (`clearLog`) and read (`readLog`).
#[derive(Debug, Clone)]
pub struct MainLogHandle {
    file: Option<SharedFile>,
    path: Option<PathBuf>,
}

impl MainLogHandle {
    /// The log file path, if any.
    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }

    /// Reopens the file (after external rotation).
    pub fn reopen(&self) -> Result<(), SinkError> {
        match &self.file {
            Some(f) => lock(f).reopen(),
            None => Ok(()),
        }
    }

    /// `clearLog`: deletes the file and starts a new empty one.
    pub fn clear(&self) -> Result<(), ClearError> {
        let (Some(file), Some(path)) = (&self.file, &self.path) else {
            return Err(ClearError::NoFile);
        };
        if !path.exists() {
            return Err(ClearError::NoFile);
        }
        lock(file).clear()?;
        Ok(())
    }

    /// `readLog(offset, length)` on the current file.
    pub fn read(&self, offset: i64, length: i64) -> Result<Vec<u8>, ReadError> {
        match &self.path {
            Some(p) => read_log(p, offset, length),
            None => Err(ReadError::NoFile { path: PathBuf::new() }),
        }
    }
}

/// The `tracing` layer writing the activity log. Install with
/// `tracing_subscriber::registry().with(layer).init()`.
#[derive(Debug)]
pub struct MainLogLayer {
    file: Option<SharedFile>,
    stdout: bool,
    min: u8,
}

/// Creates the activity log layer and its handle. Fails if the file cannot be
/// opened (supervisord refuses to start in that case too).
pub fn main_log(cfg: &MainLogConfig) -> Result<(MainLogLayer, MainLogHandle), SinkError> {
    let file = match &cfg.file {
        Some(p) => Some(RotatingFile::open(p, cfg.maxbytes, cfg.backups)?.shared()),
        None => None,
    };
    let layer = MainLogLayer { file: file.clone(), stdout: cfg.stdout, min: cfg.level as u8 };
    let handle = MainLogHandle { file, path: cfg.file.clone() };
    Ok((layer, handle))
}

/// supervisord's level number and label for an event.
pub fn level_of(level: Level, crit: bool, blather: bool) -> (u8, &'static str) {
    match level {
        Level::ERROR if crit => (50, "CRIT"),
        Level::ERROR => (40, "ERRO"),
        Level::WARN => (30, "WARN"),
        Level::INFO => (20, "INFO"),
        Level::DEBUG => (10, "DEBG"),
        Level::TRACE if blather => (3, "BLAT"),
        Level::TRACE => (5, "TRAC"),
    }
}

/// The most verbose `tracing` level that can pass a supervisord level.
fn level_filter(min: u8) -> LevelFilter {
    match min {
        31.. => LevelFilter::ERROR,
        21..=30 => LevelFilter::WARN,
        11..=20 => LevelFilter::INFO,
        6..=10 => LevelFilter::DEBUG,
        _ => LevelFilter::TRACE,
    }
}

/// Formats one line in supervisord's format (without the trailing newline
/// handling: `message` is used as is, then `\n`).
pub fn format_line(now: &chrono::DateTime<chrono::Local>, label: &str, message: &str) -> String {
    format!("{} {label} {message}\n", now.format("%Y-%m-%d %H:%M:%S,%3f"))
}

#[derive(Default)]
struct Fields {
    message: String,
    extra: String,
    crit: bool,
    blather: bool,
}

impl Visit for Fields {
    fn record_bool(&mut self, field: &Field, value: bool) {
        match field.name() {
            CRIT_FIELD => self.crit = value,
            BLATHER_FIELD => self.blather = value,
            name => {
                let _ = write!(self.extra, " {name}={value}");
            }
        }
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.message.push_str(value);
        } else {
            let _ = write!(self.extra, " {}={value}", field.name());
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        if field.name() == "message" {
            let _ = write!(self.message, "{value:?}");
        } else {
            let _ = write!(self.extra, " {}={value:?}", field.name());
        }
    }
}

impl<S: Subscriber> Layer<S> for MainLogLayer {
    fn enabled(&self, metadata: &Metadata<'_>, _ctx: Context<'_, S>) -> bool {
        level_filter(self.min) >= *metadata.level()
    }

    fn max_level_hint(&self) -> Option<LevelFilter> {
        Some(level_filter(self.min))
    }

    fn on_event(&self, event: &Event<'_>, _ctx: Context<'_, S>) {
        let mut fields = Fields::default();
        event.record(&mut fields);
        let (num, label) = level_of(*event.metadata().level(), fields.crit, fields.blather);
        if num < self.min {
            return;
        }
        fields.message.push_str(&fields.extra);
        let line = format_line(&chrono::Local::now(), label, &fields.message);
        if let Some(file) = &self.file {
            // The activity log cannot report its own failure; stderr is the
            // last resort, once per streak of failures and once at its end.
            match lock(file).write(line.as_bytes()) {
                Ok(None) => {}
                Ok(Some(resumed)) => eprintln!("corrald: {resumed}"),
                Err(e) => eprintln!("corrald: {e}"),
            }
        }
        if self.stdout {
            // A closed stdout (EPIPE) must not take the daemon down.
            let _ = std::io::stdout().lock().write_all(line.as_bytes());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tracing_subscriber::layer::SubscriberExt;

    fn with_log(level: LogLevel, f: impl FnOnce()) -> (tempfile::TempDir, String) {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("supervisord.log");
        let (layer, _handle) = main_log(&MainLogConfig {
            file: Some(path.clone()),
            maxbytes: 0,
            backups: 0,
            level,
            stdout: false,
        })
        .expect("main log");
        tracing::subscriber::with_default(tracing_subscriber::registry().with(layer), f);
        let text = std::fs::read_to_string(&path).expect("read log");
        (dir, text)
    }

    /// `YYYY-MM-DD HH:MM:SS,mmm LEVL ` prefix, checked character by character.
    fn check_prefix(line: &str) -> (&str, &str) {
        let b = line.as_bytes();
        assert!(b.len() > 29, "{line:?}");
        let digits = [0, 1, 2, 3, 5, 6, 8, 9, 11, 12, 14, 15, 17, 18, 20, 21, 22];
        for i in digits {
            assert!(b[i].is_ascii_digit(), "{line:?} at {i}");
        }
        for (i, c) in
            [(4, b'-'), (7, b'-'), (10, b' '), (13, b':'), (16, b':'), (19, b','), (23, b' '), (28, b' ')]
        {
            assert_eq!(b[i], c, "{line:?} at {i}");
        }
        (&line[24..28], &line[29..])
    }

    #[test]
    fn line_format_and_labels() {
        let (_d, text) = with_log(LogLevel::Blather, || {
            crate::crit!("Server 'unix_http_server' running without any HTTP authentication checking");
            tracing::error!("e");
            tracing::warn!("w");
            tracing::info!("supervisord started with pid {}", 42);
            tracing::debug!("d");
            tracing::trace!("t");
            crate::blather!("b");
        });
        let lines: Vec<(&str, &str)> = text.lines().map(check_prefix).collect();
        assert_eq!(
            lines,
            vec![
                ("CRIT", "Server 'unix_http_server' running without any HTTP authentication checking"),
                ("ERRO", "e"),
                ("WARN", "w"),
                ("INFO", "supervisord started with pid 42"),
                ("DEBG", "d"),
                ("TRAC", "t"),
                ("BLAT", "b"),
            ]
        );
        assert!(text.ends_with('\n'));
    }

    #[test]
    fn level_filtering_follows_supervisord_numbers() {
        let emit_all = || {
            crate::crit!("c");
            tracing::error!("e");
            tracing::warn!("w");
            tracing::info!("i");
            tracing::debug!("d");
            tracing::trace!("t");
            crate::blather!("b");
        };
        let labels = |level| {
            let (_d, text) = with_log(level, emit_all);
            text.lines().map(|l| check_prefix(l).0.to_string()).collect::<Vec<_>>()
        };
        assert_eq!(labels(LogLevel::Critical), ["CRIT"]);
        assert_eq!(labels(LogLevel::Error), ["CRIT", "ERRO"]);
        assert_eq!(labels(LogLevel::Info), ["CRIT", "ERRO", "WARN", "INFO"]);
        assert_eq!(labels(LogLevel::Debug), ["CRIT", "ERRO", "WARN", "INFO", "DEBG"]);
        assert_eq!(labels(LogLevel::Trace), ["CRIT", "ERRO", "WARN", "INFO", "DEBG", "TRAC"]);
    }

    #[test]
    fn extra_fields_are_appended() {
        let (_d, text) = with_log(LogLevel::Info, || {
            tracing::info!(pid = 7, name = "web", "spawned");
        });
        let (_, msg) = check_prefix(text.trim_end());
        assert_eq!(msg, "spawned pid=7 name=web");
    }

    #[test]
    fn handle_reopens_clears_and_reads() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("main.log");
        let (layer, handle) = main_log(&MainLogConfig {
            file: Some(path.clone()),
            maxbytes: 0,
            backups: 0,
            level: LogLevel::Info,
            stdout: false,
        })
        .expect("main log");
        let sub = tracing_subscriber::registry().with(layer);
        tracing::subscriber::with_default(sub, || {
            tracing::info!("one");
            let moved = dir.path().join("main.log.old");
            std::fs::rename(&path, &moved).expect("rename");
            handle.reopen().expect("reopen");
            tracing::info!("two");
            let got = handle.read(-4, 0).expect("readLog");
            assert_eq!(got, b"two\n");
            handle.clear().expect("clearLog");
            assert_eq!(std::fs::read(&path).expect("read"), b"");
            tracing::info!("three");
        });
        let text = std::fs::read_to_string(&path).expect("read");
        assert!(text.ends_with(" INFO three\n"), "{text:?}");
        std::fs::remove_file(&path).expect("remove");
        assert!(matches!(handle.clear(), Err(ClearError::NoFile)));
        assert!(matches!(handle.read(0, 0), Err(ReadError::NoFile { .. })));
    }

    #[test]
    fn main_log_rotates() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("main.log");
        let (layer, _handle) = main_log(&MainLogConfig {
            file: Some(path.clone()),
            maxbytes: 200,
            backups: 2,
            level: LogLevel::Info,
            stdout: false,
        })
        .expect("main log");
        tracing::subscriber::with_default(tracing_subscriber::registry().with(layer), || {
            for i in 0..40 {
                tracing::info!("message number {i}");
            }
        });
        assert!(dir.path().join("main.log.1").exists());
        assert!(dir.path().join("main.log.2").exists());
        assert!(!dir.path().join("main.log.3").exists());
    }
}
