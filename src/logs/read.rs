//! Reading log files for `readLog`, `readProcessStdoutLog`/`Stderr` and
//! `tailProcessStdoutLog`/`Stderr`, byte-for-byte as supervisord 4.3.0 answers.
//!
//! Only the current file is read (never backups), with positioned reads of
//! exactly the requested range.

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

/// Why a log could not be read; maps onto supervisord's faults.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// Fault `BAD_ARGUMENTS`: negative length, or negative offset with a
    /// non-zero length.
    #[error("BAD_ARGUMENTS")]
    BadArguments,
    /// Fault `NO_FILE`: the log file does not exist.
    #[error("NO_FILE: {}", path.display())]
    NoFile {
        /// The missing file.
        path: PathBuf,
    },
    /// Fault `FAILED`: any other I/O error.
    #[error("FAILED: {}: {source}", path.display())]
    Failed {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
}

fn failed(path: &Path) -> impl FnOnce(io::Error) -> ReadError + '_ {
    move |source| ReadError::Failed { path: path.to_path_buf(), source }
}

/// Reads up to `len` bytes at `pos` (fewer at EOF) without touching the rest.
fn read_range(file: &File, pos: u64, len: u64) -> io::Result<Vec<u8>> {
    // Cap the allocation by what the file can actually deliver.
    let size = file.metadata()?.len();
    let want = len.min(size.saturating_sub(pos));
    let want = usize::try_from(want).map_err(io::Error::other)?;
    let mut buf = vec![0u8; want];
    let mut filled = 0;
    while filled < want {
        match file.read_at(&mut buf[filled..], pos + filled as u64) {
            Ok(0) => break, // shrank meanwhile
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    buf.truncate(filled);
    Ok(buf)
}

/// supervisord's `readFile`, as used by `readLog` and `readProcess*Log`.
///
/// | offset | length | result |
/// |---|---|---|
/// | ≥ 0 | 0 | from offset to EOF |
/// | ≥ 0 | > 0 | `length` bytes from offset (fewer at EOF) |
/// | < 0 | 0 | last `abs(offset)` bytes (whole file if shorter) |
/// | < 0 | ≠ 0 | `BadArguments` |
/// | any | < 0 | `BadArguments` |
///
/// A missing file is `NoFile` (checked first, as supervisord does), any other
/// I/O error `Failed`.
pub fn read_log(path: &Path, offset: i64, length: i64) -> Result<Vec<u8>, ReadError> {
    let file = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            return Err(ReadError::NoFile { path: path.to_path_buf() })
        }
        Err(e) => return Err(failed(path)(e)),
    };
    if offset < 0 {
        if length != 0 {
            return Err(ReadError::BadArguments);
        }
        let size = file.metadata().map_err(failed(path))?.len();
        let back = offset.unsigned_abs();
        let pos = size.saturating_sub(back);
        read_range(&file, pos, back).map_err(failed(path))
    } else {
        if length < 0 {
            return Err(ReadError::BadArguments);
        }
        let len = if length == 0 { u64::MAX } else { length as u64 };
        read_range(&file, offset as u64, len).map_err(failed(path))
    }
}

/// The answer of `tailProcessStdoutLog`: `[data, new_offset, overflow]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tail {
    /// The bytes returned.
    pub data: Vec<u8>,
    /// The file size, to pass as `offset` in the next call.
    pub offset: u64,
    /// The file grew past `offset + length`: bytes were skipped.
    pub overflow: bool,
}

/// supervisord's `tailFile`, as used by `tailProcessStdoutLog`/`Stderr`.
///
/// With `size` the current file size: `overflow = size > offset + length`;
/// the new offset is always `size`. The data is empty when `length <= 0`, or
/// when there is no overflow and `offset >= size`; otherwise it is the **last**
/// `min(length, size)` bytes of the file. Note the last case: supervisord does
/// not return "from `offset` to EOF" when `offset + length > size`, it returns
/// the file's tail (`(5, 100)` on a 12-byte file gives all 12 bytes).
///
/// A missing file gives `([], 0, false)`, as supervisord does. Other I/O
/// errors are returned as `Failed`; supervisord answers `['', offset, false]`
/// for them, which the RPC layer can reproduce.
pub fn tail_log(path: &Path, offset: i64, length: i64) -> Result<Tail, ReadError> {
    let file = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            return Ok(Tail { data: Vec::new(), offset: 0, overflow: false })
        }
        Err(e) => return Err(failed(path)(e)),
    };
    let size = file.metadata().map_err(failed(path))?.len();
    // i128: offset + length must not overflow for any pair of i64 inputs.
    let (sz, off, len) = (size as i128, offset as i128, length as i128);
    let overflow = sz > off + len;
    let data = if len <= 0 || (!overflow && off >= sz) {
        Vec::new()
    } else {
        let len = (len as u64).min(size);
        read_range(&file, size - len, len).map_err(failed(path))?
    };
    Ok(Tail { data, offset: size, overflow })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hello() -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("log");
        std::fs::write(&p, b"hello world\n").expect("write");
        (dir, p)
    }

    #[test]
    fn read_log_table_and_observed_examples() {
        let (_d, p) = hello();
        let ok = |o, l| read_log(&p, o, l).expect("read");
        assert_eq!(ok(-5, 0), b"orld\n");
        assert_eq!(ok(2, 3), b"llo");
        assert_eq!(ok(0, 0), b"hello world\n");
        assert_eq!(ok(6, 0), b"world\n");
        assert_eq!(ok(6, 100), b"world\n");
        assert_eq!(ok(-100, 0), b"hello world\n");
        assert_eq!(ok(-1, 0), b"\n");
        assert_eq!(ok(100, 0), b"");
        assert_eq!(ok(100, 5), b"");
        for (o, l) in [(-5, 2), (-5, -2), (0, -1), (3, -3)] {
            assert!(matches!(read_log(&p, o, l), Err(ReadError::BadArguments)), "({o},{l})");
        }
    }

    #[test]
    fn read_log_missing_file_is_no_file_even_with_bad_arguments() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("absent");
        assert!(matches!(read_log(&p, 0, 0), Err(ReadError::NoFile { .. })));
        assert!(matches!(read_log(&p, -5, 2), Err(ReadError::NoFile { .. })));
    }

    #[test]
    fn read_log_io_error_is_failed() {
        // Reading a directory fails with EISDIR.
        let dir = tempfile::tempdir().expect("tempdir");
        assert!(matches!(read_log(dir.path(), 0, 0), Err(ReadError::Failed { .. })));
    }

    #[test]
    fn tail_log_matches_supervisord() {
        let (_d, p) = hello();
        // Vectors produced by supervisor.options.tailFile 4.3.0.
        let cases: &[(i64, i64, &[u8], bool)] = &[
            (0, 5, b"orld\n", true),
            (0, 100, b"hello world\n", false),
            (12, 100, b"", false),
            (5, 100, b"hello world\n", false),
            (5, 7, b" world\n", false),
            (5, 6, b"world\n", true),
            (11, 1, b"\n", false),
            (3, 0, b"", true),
            (12, 0, b"", false),
            (-5, 100, b"hello world\n", false),
            (0, -3, b"", true),
            (20, -3, b"", false),
            (13, 100, b"", false),
        ];
        for &(o, l, data, overflow) in cases {
            let t = tail_log(&p, o, l).expect("tail");
            assert_eq!(t, Tail { data: data.to_vec(), offset: 12, overflow }, "({o},{l})");
        }
        let t = tail_log(&p, i64::MAX, i64::MAX).expect("tail extreme");
        assert_eq!(t.data, b"");
    }

    #[test]
    fn tail_log_missing_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let t = tail_log(&dir.path().join("absent"), 40, 10).expect("tail");
        assert_eq!(t, Tail { data: vec![], offset: 0, overflow: false });
    }
}
