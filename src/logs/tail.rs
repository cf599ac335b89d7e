//! Following a log file for `/logtail/…` and `/mainlogtail` (supervisorctl
//! `tail -f`, `maintail -f`, `fg`), as supervisord's `tail_f_producer` does.
//!
//! The first chunk is the last 1024 bytes of the file (all of it if shorter);
//! then every append, polled every 100 ms. If the file shrinks, the chunk
//! `==> File truncated <==\n` is produced and following restarts at offset 0.
//! If the path now names another file (rotation), the new file is opened and
//! streamed from its start. Chunks are capped at [`MAX_CHUNK`] bytes so a
//! large backlog is streamed in pieces, not loaded at once.

use std::fs::File;
use std::io;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Bytes of history sent first.
pub const HEAD: u64 = 1024;
/// Largest chunk returned by one poll.
pub const MAX_CHUNK: u64 = 1024 * 1024;
/// Interval between polls when nothing is new.
pub const POLL_INTERVAL: Duration = Duration::from_millis(100);
/// Sent when the file got shorter.
pub const TRUNCATED: &[u8] = b"==> File truncated <==\n";

/// A follower of one log file.
#[derive(Debug)]
pub struct LogTail {
    path: PathBuf,
    file: File,
    ino: u64,
    /// Bytes of the current file already sent.
    sent: u64,
}

impl LogTail {
    /// Opens `path`; a missing file is an error (the web layer answers 404).
    pub fn open(path: impl Into<PathBuf>) -> io::Result<LogTail> {
        let path = path.into();
        let file = File::open(&path)?;
        let meta = file.metadata()?;
        Ok(LogTail { ino: meta.ino(), sent: meta.len().saturating_sub(HEAD), path, file })
    }

    /// The followed path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Checks once for new data: `Ok(None)` when nothing changed.
    pub fn poll(&mut self) -> io::Result<Option<Vec<u8>>> {
        // Rotation: the path names a different file now. An unlinked path
        // keeps following the open file, as supervisord does.
        if let Ok(meta) = std::fs::metadata(&self.path) {
            if meta.ino() != self.ino {
                if let Ok(file) = File::open(&self.path) {
                    self.file = file;
                    self.ino = meta.ino();
                    self.sent = 0;
                }
            }
        }
        let size = self.file.metadata()?.len();
        if size < self.sent {
            self.sent = 0;
            return Ok(Some(TRUNCATED.to_vec()));
        }
        let want = (size - self.sent).min(MAX_CHUNK);
        if want == 0 {
            return Ok(None);
        }
        let mut buf = vec![0u8; want as usize];
        let n = self.file.read_at(&mut buf, self.sent)?;
        buf.truncate(n);
        self.sent += n as u64;
        Ok((n > 0).then_some(buf))
    }

    /// Waits for and returns the next chunk. Never ends by itself, like
    /// supervisord's endpoint; errors end the stream.
    pub async fn next_chunk(&mut self) -> io::Result<Vec<u8>> {
        loop {
            if let Some(chunk) = self.poll()? {
                return Ok(chunk);
            }
            tokio::time::sleep(POLL_INTERVAL).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn append(path: &Path, data: &[u8]) {
        std::fs::OpenOptions::new()
            .append(true)
            .create(true)
            .open(path)
            .and_then(|mut f| f.write_all(data))
            .expect("append");
    }

    #[test]
    fn starts_with_last_1024_bytes_then_follows() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("log");
        let history: Vec<u8> = (0..3000u32).map(|i| (i % 251) as u8).collect();
        append(&p, &history);
        let mut t = LogTail::open(&p).expect("open");
        assert_eq!(t.poll().expect("poll"), Some(history[3000 - 1024..].to_vec()));
        assert_eq!(t.poll().expect("poll"), None);
        append(&p, b"more\n");
        assert_eq!(t.poll().expect("poll"), Some(b"more\n".to_vec()));
    }

    #[test]
    fn short_file_is_sent_whole() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("log");
        append(&p, b"hello\n");
        let mut t = LogTail::open(&p).expect("open");
        assert_eq!(t.poll().expect("poll"), Some(b"hello\n".to_vec()));
    }

    #[test]
    fn truncation_and_rotation() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("log");
        append(&p, b"0123456789");
        let mut t = LogTail::open(&p).expect("open");
        assert!(t.poll().expect("poll").is_some());
        std::fs::write(&p, b"ab").expect("truncate+write");
        assert_eq!(t.poll().expect("poll"), Some(TRUNCATED.to_vec()));
        assert_eq!(t.poll().expect("poll"), Some(b"ab".to_vec()));
        std::fs::rename(&p, dir.path().join("log.1")).expect("rotate");
        append(&p, b"new file\n");
        assert_eq!(t.poll().expect("poll"), Some(b"new file\n".to_vec()));
    }

    #[tokio::test]
    async fn next_chunk_waits_for_data() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("log");
        append(&p, b"");
        let mut t = LogTail::open(&p).expect("open");
        let p2 = p.clone();
        let writer = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(300)).await;
            append(&p2, b"late\n");
        });
        let chunk = tokio::time::timeout(Duration::from_secs(60), t.next_chunk())
            .await
            .expect("chunk within deadline")
            .expect("read");
        assert_eq!(chunk, b"late\n");
        writer.await.expect("writer");
    }

    #[test]
    fn missing_file_is_an_error() {
        assert!(LogTail::open("/nonexistent-corral/log").is_err());
    }
}
