//! A log file that rotates by size the way supervisord does.
//!
//! The file is opened in append mode. After every write, if rotation is
//! enabled (`maxbytes > 0`) and the file has reached `maxbytes`, the backups
//! are shifted (`.N-1 → .N … .1 → .2`), the base file becomes `.1` and a new,
//! empty base file is opened. With `backups == 0` the base file is simply
//! truncated. Files can therefore exceed `maxbytes` by up to one write, as in
//! supervisord.
//!
//! Differences from supervisord, all deliberate:
//! - Targets that are not regular files (`/dev/stdout`, pipes, ttys, other
//!   character devices) never rotate, never get truncated and are never
//!   deleted by [`RotatingFile::clear`]; supervisord fails with
//!   `Illegal seek` or deletes the device node.
//! - The size is tracked in memory (initialised by one `fstat` at open) so the
//!   write path costs exactly the `write(2)` calls; a second `fstat` happens
//!   only when the tracked size reaches `maxbytes`, so that an external
//!   truncation (logrotate `copytruncate`) does not cause an early rotation.
//! - A failing write (disk full, file system gone) is reported once as an
//!   error; later failures are counted silently until a write succeeds again,
//!   and that write reports the resumption with the number of bytes lost
//!   ([`Resumed`]), so a full disk costs two lines in the activity log.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

/// Errors of a log file sink. Each carries the path it concerns.
#[derive(Debug, thiserror::Error)]
pub enum SinkError {
    /// The file could not be opened (or reopened).
    #[error("cannot open log file {path}: {source}")]
    Open {
        /// The log file.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// Writing failed; the data of this write (and of later writes, until one
    /// succeeds) is lost. Reported once per streak of failures.
    #[error("cannot write to log file {path}: {source}")]
    Write {
        /// The log file.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// Rotating (renaming backups, truncating) failed.
    #[error("cannot rotate log file {path}: {source}")]
    Rotate {
        /// The file that could not be renamed, removed or truncated.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// Deleting the file for `clear` failed.
    #[error("cannot remove log file {path}: {source}")]
    Remove {
        /// The log file.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
}

/// A write succeeded after a streak of failures: the log is complete again
/// from here on, with `dropped` bytes missing before.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resumed {
    /// The log file.
    pub path: PathBuf,
    /// Bytes lost while writes failed.
    pub dropped: u64,
}

impl std::fmt::Display for Resumed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "writing to log file {} resumed; dropped {} bytes while it failed",
            self.path.display(),
            self.dropped
        )
    }
}

/// A size-rotated, append-mode log file. See the module documentation.
#[derive(Debug)]
pub struct RotatingFile {
    path: PathBuf,
    maxbytes: u64,
    backups: u32,
    /// `None` after a failed (re)open; the next write retries the open.
    file: Option<File>,
    /// Bytes in the current base file, as far as this writer knows.
    size: u64,
    /// Regular file: may be rotated, truncated and deleted.
    regular: bool,
    /// Inside a streak of failed writes (the first one was reported).
    failing: bool,
    /// Bytes discarded because writing failed, since the last `take_dropped`.
    dropped: u64,
}

/// A log file shared between the pipe reader that writes to it and the engine
/// that reopens or clears it.
pub type SharedFile = Arc<Mutex<RotatingFile>>;

/// Locks a shared log file, recovering from a poisoned lock: the file state
/// stays consistent even if a writer panicked mid-call, so logging goes on.
pub fn lock(file: &SharedFile) -> MutexGuard<'_, RotatingFile> {
    file.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn open_append(path: &Path, truncate: bool) -> io::Result<(File, u64, bool)> {
    let mut options = OpenOptions::new();
    options.write(true).create(true).mode(0o666);
    if truncate {
        // std refuses `append(true)` with `truncate(true)`; Linux accepts
        // O_APPEND|O_TRUNC, which is exactly "reopen base truncated".
        options.truncate(true).custom_flags(libc::O_APPEND);
    } else {
        options.append(true);
    }
    let file = options.open(path)?;
    let meta = file.metadata()?;
    let regular = meta.file_type().is_file();
    // Devices, pipes and sockets have no meaningful size.
    let size = if regular { meta.len() } else { 0 };
    Ok((file, size, regular))
}

fn numbered(path: &Path, n: u32) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(format!(".{n}"));
    PathBuf::from(name)
}

/// Renames `from` to `to`, replacing `to`; a vanished source is not an error
/// (a cleanup script may have removed it), matching supervisord.
fn rename_if_exists(from: &Path, to: &Path) -> Result<(), SinkError> {
    match std::fs::rename(from, to) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(source) => Err(SinkError::Rotate { path: from.to_path_buf(), source }),
    }
}

impl RotatingFile {
    /// Opens (creating if needed) `path` for appending. `maxbytes == 0` never
    /// rotates; otherwise `backups` rotated files (`path.1` … `path.N`) are kept.
    pub fn open(path: impl Into<PathBuf>, maxbytes: u64, backups: u32) -> Result<RotatingFile, SinkError> {
        let path = path.into();
        let (file, size, regular) =
            open_append(&path, false).map_err(|source| SinkError::Open { path: path.clone(), source })?;
        Ok(RotatingFile::with(file, path, maxbytes, backups, size, regular))
    }

    fn with(
        file: File,
        path: PathBuf,
        maxbytes: u64,
        backups: u32,
        size: u64,
        regular: bool,
    ) -> RotatingFile {
        RotatingFile { path, maxbytes, backups, file: Some(file), size, regular, failing: false, dropped: 0 }
    }

    /// Takes over `file`, just created empty at `path` and opened for appending
    /// (an AUTO log), which saves opening it a second time.
    pub fn from_created(file: File, path: PathBuf, maxbytes: u64, backups: u32) -> RotatingFile {
        RotatingFile::with(file, path, maxbytes, backups, 0, true)
    }

    /// Wraps this file for sharing between a reader task and the engine.
    pub fn shared(self) -> SharedFile {
        Arc::new(Mutex::new(self))
    }

    /// The base path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Bytes in the current base file as tracked by this writer.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Whether the target is a regular file (rotatable, deletable).
    pub fn is_regular(&self) -> bool {
        self.regular
    }

    /// Returns and resets the count of bytes lost to write failures.
    pub fn take_dropped(&mut self) -> u64 {
        std::mem::take(&mut self.dropped)
    }

    /// Appends `data` (all of it, unbuffered) and rotates if the file reached
    /// `maxbytes`.
    ///
    /// Returns an error only for the first failure of a streak; while the
    /// file keeps failing, data is dropped (counted, see
    /// [`take_dropped`](Self::take_dropped)) and `Ok(None)` is returned, so
    /// callers can log every error they get without flooding the activity log.
    /// The first success after a streak returns [`Resumed`] with the bytes
    /// dropped meanwhile, for the caller to log once.
    pub fn write(&mut self, data: &[u8]) -> Result<Option<Resumed>, SinkError> {
        if data.is_empty() {
            return Ok(None);
        }
        let result = self.write_all(data).and_then(|()| self.maybe_rotate());
        match result {
            Ok(()) if self.failing => {
                self.failing = false;
                Ok(Some(Resumed { path: self.path.clone(), dropped: self.take_dropped() }))
            }
            Ok(()) => Ok(None),
            Err(e) if self.failing => {
                drop(e);
                Ok(None)
            }
            Err(e) => {
                self.failing = true;
                Err(e)
            }
        }
    }

    fn write_all(&mut self, mut data: &[u8]) -> Result<(), SinkError> {
        if self.file.is_none() {
            if let Err(e) = self.reopen() {
                self.dropped += data.len() as u64;
                return Err(e);
            }
        }
        let Some(file) = self.file.as_mut() else {
            // reopen() succeeded, so the file is present; keep the compiler
            // and future refactors honest without panicking.
            self.dropped += data.len() as u64;
            return Ok(());
        };
        while !data.is_empty() {
            match file.write(data) {
                Ok(0) => {
                    self.dropped += data.len() as u64;
                    return Err(SinkError::Write {
                        path: self.path.clone(),
                        source: io::Error::new(io::ErrorKind::WriteZero, "wrote 0 bytes"),
                    });
                }
                Ok(n) => {
                    self.size += n as u64;
                    data = &data[n..];
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(source) => {
                    self.dropped += data.len() as u64;
                    return Err(SinkError::Write { path: self.path.clone(), source });
                }
            }
        }
        Ok(())
    }

    fn maybe_rotate(&mut self) -> Result<(), SinkError> {
        if self.maxbytes == 0 || !self.regular || self.size < self.maxbytes {
            return Ok(());
        }
        // Confirm with the real size: someone may have truncated the file.
        if let Some(file) = &self.file {
            if let Ok(meta) = file.metadata() {
                self.size = meta.len();
            }
        }
        if self.size < self.maxbytes {
            return Ok(());
        }
        self.rotate()
    }

    /// Rotates now, whatever the size (supervisord's `doRollover` without the
    /// size check). Does nothing for non-regular targets.
    pub fn rotate(&mut self) -> Result<(), SinkError> {
        if !self.regular {
            return Ok(());
        }
        self.file = None;
        if self.backups > 0 {
            for i in (1..self.backups).rev() {
                let from = numbered(&self.path, i);
                if from.exists() {
                    rename_if_exists(&from, &numbered(&self.path, i + 1))?;
                }
            }
            rename_if_exists(&self.path, &numbered(&self.path, 1))?;
        }
        let (file, size, regular) = open_append(&self.path, true)
            .map_err(|source| SinkError::Rotate { path: self.path.clone(), source })?;
        self.file = Some(file);
        self.size = size;
        self.regular = regular;
        Ok(())
    }

    /// Closes and reopens the base path (SIGUSR2, external logrotate),
    /// appending to whatever file is there now.
    pub fn reopen(&mut self) -> Result<(), SinkError> {
        self.file = None;
        let (file, size, regular) = open_append(&self.path, false)
            .map_err(|source| SinkError::Open { path: self.path.clone(), source })?;
        self.file = Some(file);
        self.size = size;
        self.regular = regular;
        Ok(())
    }

    /// Deletes the base file and reopens an empty one (`clearProcessLogs`,
    /// `clearLog`). Like supervisord, rotated backups are kept. Non-regular
    /// targets are neither deleted nor truncated.
    pub fn clear(&mut self) -> Result<(), SinkError> {
        if self.regular {
            self.file = None;
            match std::fs::remove_file(&self.path) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(source) => {
                    // Keep writing to the old file rather than losing the sink.
                    let _ = self.reopen();
                    return Err(SinkError::Remove { path: self.path.clone(), source });
                }
            }
        }
        self.reopen()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(path: &Path) -> Vec<u8> {
        std::fs::read(path).unwrap_or_default()
    }

    #[test]
    fn appends_to_existing_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("f");
        std::fs::write(&p, b"old\n").expect("seed");
        let mut f = RotatingFile::open(&p, 0, 0).expect("open");
        assert_eq!(f.size(), 4);
        f.write(b"new\n").expect("write");
        assert_eq!(read(&p), b"old\nnew\n");
        assert_eq!(f.size(), 8);
    }

    #[test]
    fn rotation_keeps_exactly_backups_files() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("f");
        let mut f = RotatingFile::open(&p, 300, 2).expect("open");
        let line = [b'x'; 100];
        for i in 0..20u8 {
            let mut l = line;
            l[0] = b'a' + i;
            f.write(&l).expect("write");
        }
        assert!(p.exists());
        assert!(numbered(&p, 1).exists());
        assert!(numbered(&p, 2).exists());
        assert!(!numbered(&p, 3).exists());
        // 20 writes of 100 bytes, rotating at every 3rd write: 18 rotated
        // away (6 rotations), 2 writes left in the base file.
        assert_eq!(read(&p).len(), 200);
        assert_eq!(read(&numbered(&p, 1)).len(), 300);
        assert_eq!(read(&numbered(&p, 1))[0], b'a' + 15);
        assert_eq!(read(&numbered(&p, 2))[0], b'a' + 12);
    }

    #[test]
    fn rotation_happens_after_the_write_so_files_may_exceed_maxbytes() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("f");
        let mut f = RotatingFile::open(&p, 300, 1).expect("open");
        f.write(&[b'a'; 290]).expect("write");
        f.write(&[b'b'; 22]).expect("write");
        assert_eq!(read(&numbered(&p, 1)).len(), 312);
        assert_eq!(read(&p).len(), 0);
        assert!(!numbered(&p, 2).exists());
    }

    #[test]
    fn backups_zero_truncates() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("f");
        let mut f = RotatingFile::open(&p, 10, 0).expect("open");
        f.write(b"0123456789ab").expect("write");
        assert_eq!(read(&p).len(), 0);
        f.write(b"xyz").expect("write");
        assert_eq!(read(&p), b"xyz");
        assert!(!numbered(&p, 1).exists());
    }

    #[test]
    fn maxbytes_zero_never_rotates() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("f");
        let mut f = RotatingFile::open(&p, 0, 5).expect("open");
        for _ in 0..100 {
            f.write(&[b'z'; 1000]).expect("write");
        }
        assert_eq!(read(&p).len(), 100_000);
        assert!(!numbered(&p, 1).exists());
    }

    #[test]
    fn external_truncation_does_not_cause_early_rotation() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("f");
        let mut f = RotatingFile::open(&p, 100, 1).expect("open");
        f.write(&[b'a'; 90]).expect("write");
        // copytruncate-style external truncation
        std::fs::OpenOptions::new().write(true).open(&p).and_then(|h| h.set_len(0)).expect("truncate");
        f.write(&[b'b'; 20]).expect("write");
        assert!(!numbered(&p, 1).exists());
        assert_eq!(read(&p), vec![b'b'; 20]);
    }

    #[test]
    fn char_device_never_rotates_or_fails() {
        let mut f = RotatingFile::open("/dev/null", 10, 3).expect("open /dev/null");
        assert!(!f.is_regular());
        for _ in 0..10 {
            f.write(&[b'q'; 100]).expect("write");
        }
        f.reopen().expect("reopen");
        f.clear().expect("clear must not delete a device");
        assert!(Path::new("/dev/null").exists());
        assert!(!Path::new("/dev/null.1").exists());
    }

    #[test]
    fn pipe_target_never_rotates_and_keeps_all_bytes() {
        let (r, w) = nix::unistd::pipe().expect("pipe");
        let path = PathBuf::from(format!("/proc/self/fd/{}", std::os::fd::AsRawFd::as_raw_fd(&w)));
        let mut f = RotatingFile::open(&path, 10, 2).expect("open pipe");
        drop(w);
        assert!(!f.is_regular());
        let reader = std::thread::spawn(move || {
            let mut buf = Vec::new();
            let mut file = File::from(r);
            std::io::Read::read_to_end(&mut file, &mut buf).map(|_| buf)
        });
        for _ in 0..50 {
            f.write(b"0123456789").expect("write to pipe");
        }
        drop(f);
        let got = reader.join().expect("join").expect("read");
        assert_eq!(got.len(), 500);
    }

    #[test]
    fn reopen_follows_external_rename() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("f");
        let mut f = RotatingFile::open(&p, 0, 0).expect("open");
        f.write(b"one\n").expect("write");
        std::fs::rename(&p, dir.path().join("moved")).expect("rename");
        f.write(b"two\n").expect("write");
        f.reopen().expect("reopen");
        f.write(b"three\n").expect("write");
        assert_eq!(read(&dir.path().join("moved")), b"one\ntwo\n");
        assert_eq!(read(&p), b"three\n");
    }

    #[test]
    fn clear_deletes_base_and_keeps_writing() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("f");
        let mut f = RotatingFile::open(&p, 5, 1).expect("open");
        f.write(b"123456").expect("write");
        f.write(b"ab").expect("write");
        f.clear().expect("clear");
        assert_eq!(read(&p), b"");
        assert_eq!(f.size(), 0);
        assert!(numbered(&p, 1).exists(), "backups are kept, as in supervisord");
        f.write(b"cd").expect("write");
        assert_eq!(read(&p), b"cd");
    }

    #[test]
    fn write_errors_are_reported_once_and_writing_resumes() {
        // /dev/full fails every write with ENOSPC.
        let mut f = RotatingFile::open("/dev/full", 0, 0).expect("open /dev/full");
        let first = f.write(b"abc");
        assert!(matches!(first, Err(SinkError::Write { .. })), "{first:?}");
        assert!(matches!(f.write(b"def"), Ok(None)), "second failure is not reported");
        // Point the same sink at a working file: writing resumes, and says so once.
        let dir = tempfile::tempdir().expect("tempdir");
        let ok = dir.path().join("ok");
        f.path = ok.clone();
        f.reopen().expect("reopen");
        let resumed = f.write(b"ghi").expect("write").expect("the resumption is reported");
        assert_eq!(resumed, Resumed { path: ok.clone(), dropped: 6 });
        assert_eq!(
            resumed.to_string(),
            format!("writing to log file {} resumed; dropped 6 bytes while it failed", ok.display())
        );
        assert_eq!(f.write(b"jkl").expect("write"), None, "only once");
        assert_eq!(f.take_dropped(), 0);
        assert_eq!(read(&ok), b"ghijkl");
        let again = RotatingFile::open("/dev/full", 0, 0).expect("open").write(b"x");
        assert!(again.is_err());
    }

    #[test]
    fn missing_directory_is_an_open_error_with_path() {
        let err = RotatingFile::open("/nonexistent-dir-corral/x.log", 0, 0).unwrap_err();
        assert!(err.to_string().contains("/nonexistent-dir-corral/x.log"));
    }
}
