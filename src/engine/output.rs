//! A process's output plumbing: its log files, the pipe reader tasks and stdin.
//!
//! The engine only opens, reopens and clears files here; bytes flow from the
//! pipes to the files in reader tasks, never through the engine.

use std::io;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::path::PathBuf;

use super::api::{Channel, LogName};
use super::stdin::{Stdin, StdinError};
use crate::config::{Config, LogFile, ProcessConfig};
use crate::logs::capture::{read_pipe, ReaderConfig};
use crate::logs::file::{lock, RotatingFile, SharedFile};
use crate::logs::journal::{self, JournalTags, LineSink};
use crate::logs::pump::{Destination, PipeKey, Pump};

/// One channel's log: where it goes and the open file, once opened.
#[derive(Debug, Default)]
struct Sink {
    path: Option<PathBuf>,
    auto: bool,
    maxbytes: u64,
    backups: u32,
    file: Option<SharedFile>,
    /// `journal`: lines go to journald, tagged with these (pid filled at attach).
    journal: Option<JournalTags>,
}

impl Sink {
    fn new(
        cfg: &Config,
        p: &ProcessConfig,
        channel: Channel,
        logfile: &LogFile,
        maxbytes: u64,
        backups: u32,
    ) -> Sink {
        let sd = &cfg.supervisord;
        let mut created = None;
        let (path, auto) = match logfile {
            LogFile::None | LogFile::Journal => (None, false),
            LogFile::Path(p) => (Some(p.clone()), false),
            // AUTO logs exist (empty) from group creation, as supervisord's.
            LogFile::Auto => {
                match crate::logs::auto::create_auto_log(&sd.childlogdir, &p.name, channel, &sd.identifier) {
                    Ok((path, file)) => {
                        created =
                            Some(RotatingFile::from_created(file, path.clone(), maxbytes, backups).shared());
                        (Some(path), true)
                    }
                    Err(e) => {
                        tracing::error!("cannot create AUTO {} log for {}: {e}", channel.as_str(), p.name);
                        (None, true)
                    }
                }
            }
        };
        let journal = (*logfile == LogFile::Journal).then(|| JournalTags {
            process: p.name.clone(),
            program: p.program.clone(),
            group: group_of(cfg, p),
            pid: 0,
            channel,
        });
        let mut sink = Sink { path, auto, maxbytes, backups, file: created, journal };
        if sink.auto {
            sink.open();
        }
        sink
    }

    /// Open the file if it is not open yet; errors are logged, not fatal.
    fn open(&mut self) -> Option<SharedFile> {
        if self.file.is_none() {
            if let Some(path) = &self.path {
                match RotatingFile::open(path, self.maxbytes, self.backups) {
                    Ok(f) => self.file = Some(f.shared()),
                    Err(e) => tracing::error!("{e}"),
                }
            }
        }
        self.file.clone()
    }
}

/// The name of the group a process belongs to (its section's, unless a
/// `[group:x]` gathers it).
fn group_of(cfg: &Config, p: &ProcessConfig) -> String {
    cfg.groups
        .iter()
        .find(|g| g.processes.iter().any(|q| q.section == p.section && q.name == p.name))
        .map_or_else(|| p.program.clone(), |g| g.name.clone())
}

/// Output plumbing of one process.
#[derive(Debug)]
pub(crate) struct Output {
    stdout: Sink,
    stderr: Sink,
    stdin: Option<Stdin>,
    strip_ansi: bool,
    /// The running child's stdout/stderr read ends as their readers hold them
    /// (descriptor number, pipe inode), so a re-exec can reopen the same pipes.
    pipes: Vec<(Channel, RawFd, u64)>,
    /// The reader tasks of the running child (pipes with events, capture mode or
    /// line sinks).
    readers: Vec<tokio::task::JoinHandle<()>>,
    /// Its plain pipes, read by the output pump.
    pumped: Vec<PipeKey>,
    /// The pump those are in.
    pump: Option<Pump>,
    /// The journald/syslog line sink tasks fed by those readers; each ends once
    /// its reader is gone and it has sent what was queued for it.
    sinks: Vec<tokio::task::JoinHandle<()>>,
}

/// A running child's pipes, taken out of its [`Output`] for a re-exec.
#[derive(Debug)]
pub(crate) struct Pipes {
    /// Read end of stdout.
    pub stdout: Option<OwnedFd>,
    /// Read end of stderr (none with `redirect_stderr`).
    pub stderr: Option<OwnedFd>,
    /// Write end of stdin.
    pub stdin: Option<OwnedFd>,
    /// Bytes `sendProcessStdin` accepted that the pipe has not taken yet.
    pub stdin_pending: Vec<u8>,
}

impl Output {
    /// Prepare the sinks of a process (AUTO files are created now).
    pub fn new(cfg: &Config, p: &ProcessConfig) -> Output {
        let stdout =
            Sink::new(cfg, p, Channel::Stdout, &p.stdout.logfile, p.stdout.maxbytes, p.stdout.backups);
        // With redirect_stderr the stderr log is never created.
        let stderr = if p.redirect_stderr {
            Sink::default()
        } else {
            Sink::new(cfg, p, Channel::Stderr, &p.stderr.logfile, p.stderr.maxbytes, p.stderr.backups)
        };
        Output {
            stdout,
            stderr,
            stdin: None,
            strip_ansi: cfg.supervisord.strip_ansi,
            pipes: Vec::new(),
            readers: Vec::new(),
            pumped: Vec::new(),
            pump: None,
            sinks: Vec::new(),
        }
    }

    fn sink(&self, channel: Channel) -> &Sink {
        match channel {
            Channel::Stdout => &self.stdout,
            Channel::Stderr => &self.stderr,
        }
    }

    /// Start reader tasks for a child's pipes (a fresh spawn has all three; a
    /// program taken over after a crash may have closed some).
    pub fn attach(
        &mut self,
        p: &ProcessConfig,
        pid: u32,
        stdout: Option<OwnedFd>,
        stderr: Option<OwnedFd>,
        stdin: Option<OwnedFd>,
        hooks: super::listeners::ReaderHooks,
    ) {
        let mut readers = Vec::new();
        if let Some(fd) = stdout {
            readers.push((Channel::Stdout, fd, self.stdout.open(), self.stdout.journal.clone(), &p.stdout));
        }
        if let Some(fd) = stderr {
            readers.push((Channel::Stderr, fd, self.stderr.open(), self.stderr.journal.clone(), &p.stderr));
        }
        self.pipes.clear();
        self.readers.clear();
        self.pumped.clear();
        self.sinks.clear();
        let pump = self.pump.clone();
        for (channel, fd, file, journal, ch) in readers {
            if let Ok(st) = nix::sys::stat::fstat(&fd) {
                self.pipes.push((channel, fd.as_raw_fd(), st.st_ino));
            }
            let mut rc = ReaderConfig::new(channel, file);
            rc.strip_ansi = self.strip_ansi;
            rc.capture_maxbytes = ch.capture_maxbytes as usize;
            // events: PROCESS_LOG/COMMUNICATION, listener protocol
            hooks.apply(channel, &mut rc);
            // A log file and nothing else: the pump reads it, no task of its own.
            let plain = rc.events.is_none() && rc.capture_maxbytes == 0 && journal.is_none() && !ch.syslog;
            if let Some(pump) = pump.as_ref().filter(|_| plain) {
                let dest = Destination {
                    file: rc.file.take(),
                    strip_ansi: rc.strip_ansi,
                    name: p.name.as_str().into(),
                    channel,
                };
                self.pumped.push(pump.add(fd, dest));
                continue;
            }
            // `journal`: the reader's per-chunk output events feed a journald sink,
            // which passes them on to the event hook set above, if any.
            if let Some(tags) = journal {
                let sink = LineSink::journal(&journal::socket_path(), &JournalTags { pid, ..tags });
                let (hook, task) =
                    journal::line_sink_hook(sink, p.name.clone(), hooks.tag(pid), rc.events.take());
                rc.events = Some(hook);
                self.sinks.push(task);
            }
            // `*_syslog`: lines also go to the local syslog, as supervisord's.
            if ch.syslog {
                let sink = LineSink::syslog(&journal::syslog_socket_path(), &p.name);
                let (hook, task) =
                    journal::line_sink_hook(sink, p.name.clone(), hooks.tag(pid), rc.events.take());
                rc.events = Some(hook);
                self.sinks.push(task);
            }
            let name = p.name.clone();
            self.readers.push(tokio::spawn(async move {
                if let Err(e) = read_pipe(fd, rc).await {
                    tracing::warn!("{name}: {e}");
                }
            }));
        }
        self.stdin = stdin.map(Stdin::new);
    }

    /// Let the output pump read the plain pipes of the children attached from now
    /// on (without one, every pipe gets a reader task).
    pub fn use_pump(&mut self, pump: Option<Pump>) {
        self.pump = pump;
    }

    /// Queue stdin bytes a previous daemon accepted and had not written yet.
    pub fn restore_stdin(&mut self, pending: Vec<u8>) {
        match &mut self.stdin {
            Some(stdin) => stdin.restore_pending(pending),
            None if !pending.is_empty() => {
                tracing::warn!("{} bytes for a stdin that is gone were dropped", pending.len())
            }
            None => {}
        }
    }

    /// The child is gone: its stdin can no longer be written (what was still
    /// queued for it is dropped), and its readers end at EOF on their own.
    pub fn child_exited(&mut self) {
        self.stdin = None;
        self.pipes.clear();
        self.readers.clear();
        self.pumped.clear();
        self.sinks.clear();
    }

    /// Stop the readers and take the pipes out, for a re-exec. A reader is
    /// cancelled only at an await point, after the file write of every chunk it
    /// has read, so bytes are either in the log or still in the pipe. Its line
    /// sinks (journald, syslog) are not cancelled: they end once they have sent
    /// what the reader had queued for them.
    /// Returns the pipes, the reader tasks and the sink tasks to await before the exec.
    pub fn take_pipes(
        &mut self,
    ) -> (Pipes, Vec<tokio::task::JoinHandle<()>>, Vec<tokio::task::JoinHandle<()>>) {
        let (stdin, stdin_pending) = match self.stdin.take() {
            Some(mut s) => {
                let pending = s.take_pending();
                (Some(s.into_fd()), pending)
            }
            None => (None, Vec::new()),
        };
        let mut pipes = Pipes { stdout: None, stderr: None, stdin, stdin_pending };
        // New descriptors first (aborting closes the readers' own): opening
        // /proc/self/fd/N reaches the pipe itself; the inode check makes sure N
        // still is that pipe (a reader that hit EOF has closed it).
        for (channel, n, ino) in self.pipes.drain(..) {
            let Some(fd) = super::orphans::reopen_pipe(std::process::id(), n, false) else { continue };
            if nix::sys::stat::fstat(&fd).map(|st| st.st_ino) != Ok(ino) {
                continue;
            }
            match channel {
                Channel::Stdout => pipes.stdout = Some(fd),
                Channel::Stderr => pipes.stderr = Some(fd),
            }
        }
        let mut readers = std::mem::take(&mut self.readers);
        for r in &readers {
            r.abort();
        }
        // The pump lets go of a pipe between two chunks, so here too every byte it
        // read is in the log file and the rest is still in the pipe.
        if let Some(pump) = &self.pump {
            for key in self.pumped.drain(..) {
                let stopped = pump.stop(key);
                readers.push(tokio::spawn(async move {
                    let _ = stopped.await;
                }));
            }
        }
        (pipes, readers, std::mem::take(&mut self.sinks))
    }

    /// Append bytes the daemon itself reports for the child (exec failures)
    /// where supervisord's child would have written them: its stderr.
    pub fn write_stderr(&mut self, p: &ProcessConfig, data: &[u8]) {
        let sink = if p.redirect_stderr { &mut self.stdout } else { &mut self.stderr };
        if let Some(f) = sink.open() {
            match lock(&f).write(data) {
                Ok(None) => {}
                Ok(Some(resumed)) => tracing::warn!("{resumed}"),
                Err(e) => tracing::warn!("{e}"),
            }
        }
    }

    /// Append a line the daemon writes about the output itself (an adoption
    /// after a crash) to every log file of the process.
    pub fn mark(&mut self, text: &str) {
        for sink in [&mut self.stdout, &mut self.stderr] {
            if let Some(f) = sink.open() {
                match lock(&f).write(text.as_bytes()) {
                    Ok(None) => {}
                    Ok(Some(resumed)) => tracing::warn!("{resumed}"),
                    Err(e) => tracing::warn!("{e}"),
                }
            }
        }
    }

    /// The AUTO log files, to be kept across a re-exec: (stdout, stderr).
    pub fn auto_paths(&self) -> (Option<PathBuf>, Option<PathBuf>) {
        let auto = |s: &Sink| s.path.clone().filter(|_| s.auto);
        (auto(&self.stdout), auto(&self.stderr))
    }

    /// Go on writing to the AUTO log files the previous daemon used (a re-exec
    /// keeps a program's log in one file); the fresh, empty ones are removed.
    pub fn reuse_auto_paths(&mut self, stdout: Option<PathBuf>, stderr: Option<PathBuf>) {
        for (sink, old) in [(&mut self.stdout, stdout), (&mut self.stderr, stderr)] {
            let Some(old) = old.filter(|p| sink.auto && p.exists()) else { continue };
            if let Some(fresh) = sink.path.replace(old) {
                if std::fs::metadata(&fresh).is_ok_and(|m| m.len() == 0) {
                    let _ = std::fs::remove_file(&fresh);
                }
            }
            sink.file = None;
            sink.open();
        }
    }

    /// Path of a channel's log, if it has one.
    pub fn path(&self, channel: Channel) -> Option<PathBuf> {
        self.sink(channel).path.clone()
    }

    /// The log name as `getAllConfigInfo` reports it for an active process.
    pub fn log_name(&self, channel: Channel) -> LogName {
        match &self.sink(channel).path {
            Some(p) => LogName::Path(p.clone()),
            None if self.sink(channel).auto => LogName::Auto,
            None => LogName::None,
        }
    }

    /// Delete and reopen both logs (clearProcessLogs).
    pub fn clear(&mut self) -> Result<(), crate::logs::file::SinkError> {
        for sink in [&mut self.stdout, &mut self.stderr] {
            if let Some(f) = &sink.file {
                lock(f).clear()?;
            } else if let Some(path) = &sink.path {
                // Never opened yet: deleting is all clearing means.
                match std::fs::remove_file(path) {
                    Err(e) if e.kind() != io::ErrorKind::NotFound => {
                        return Err(crate::logs::file::SinkError::Remove { path: path.clone(), source: e })
                    }
                    _ => {}
                }
            }
        }
        Ok(())
    }

    /// Reopen both logs (SIGUSR2, after an external logrotate).
    pub fn reopen(&mut self) {
        for sink in [&mut self.stdout, &mut self.stderr] {
            if let Some(f) = &sink.file {
                if let Err(e) = lock(f).reopen() {
                    tracing::warn!("{e}");
                }
            }
        }
    }

    /// Write to the child's stdin after everything written before, without
    /// blocking the engine (see [`super::stdin`]).
    pub fn send_stdin(&mut self, data: &[u8]) -> Result<(), StdinError> {
        self.stdin.as_mut().ok_or(StdinError::Closed)?.send(data)
    }

    /// The group is going away: close stdin; readers end at EOF on their own.
    pub fn close(&mut self) {
        self.stdin = None;
        self.pipes.clear();
    }
}
