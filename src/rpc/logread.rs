//! Reading log files for `readLog`, `readProcess*Log` and `tailProcess*Log`.
//!
//! Small private versions of the logs module's readers, so the RPC layer does
//! not wait for it; they implement supervisord's `readFile` and `tailFile`
//! arithmetic exactly (including its quirks) with positioned reads, and can be
//! swapped for `crate::logs` functions with the same contract.

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::Path;

/// Why a read failed; mapped to `BAD_ARGUMENTS` and `FAILED` faults.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// Negative length, or a negative offset with a non-zero length.
    #[error("BAD_ARGUMENTS")]
    BadArguments,
    /// The file could not be opened or read.
    #[error("FAILED: {0}")]
    Failed(#[from] io::Error),
}

/// Read up to `len` bytes at `pos` (fewer at EOF).
fn read_at(file: &File, pos: u64, len: u64) -> io::Result<Vec<u8>> {
    let mut buf = Vec::new();
    let mut pos = pos;
    let mut left = len;
    let mut chunk = vec![0u8; 64 * 1024];
    while left > 0 {
        let want = usize::try_from(left.min(chunk.len() as u64)).unwrap_or(chunk.len());
        let n = match file.read_at(&mut chunk[..want], pos) {
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        if n == 0 {
            break;
        }
        buf.extend_from_slice(&chunk[..n]);
        pos += n as u64;
        left -= n as u64;
    }
    Ok(buf)
}

/// supervisord's `readFile(filename, offset, length)`.
///
/// | offset | length | result |
/// |---|---|---|
/// | ≥ 0 | 0 | offset to EOF |
/// | ≥ 0 | > 0 | `length` bytes from offset |
/// | < 0 | 0 | last `-offset` bytes |
/// | < 0 | ≠ 0 | BAD_ARGUMENTS |
/// | any | < 0 | BAD_ARGUMENTS |
pub fn read_log(path: &Path, offset: i64, length: i64) -> Result<Vec<u8>, ReadError> {
    if offset < 0 && length != 0 {
        return Err(ReadError::BadArguments);
    }
    if offset >= 0 && length < 0 {
        return Err(ReadError::BadArguments);
    }
    let file = File::open(path)?;
    let size = file.metadata()?.len();
    if offset < 0 {
        let back = offset.unsigned_abs();
        let pos = size.saturating_sub(back);
        return Ok(read_at(&file, pos, back)?);
    }
    let pos = offset as u64;
    let len = if length == 0 { size.saturating_sub(pos) } else { length as u64 };
    Ok(read_at(&file, pos, len)?)
}

/// What `tailProcess*Log` returns: data, the new offset (file size), overflow.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tail {
    /// Bytes read.
    pub data: Vec<u8>,
    /// Offset to pass next time (the file size).
    pub offset: i64,
    /// The client fell behind and bytes were skipped.
    pub overflow: bool,
}

/// supervisord's `tailFile(filename, offset, length)`, arithmetic and all.
///
/// If the file grew past `offset + length`, only the last `length` bytes are
/// returned with `overflow`; the returned offset is always the file size. On
/// an I/O error the result is empty with the given offset, as supervisord.
pub fn tail_log(path: &Path, offset: i64, length: i64) -> Tail {
    let fallback = Tail { data: Vec::new(), offset, overflow: false };
    let Ok(file) = File::open(path) else { return fallback };
    let Ok(meta) = file.metadata() else { return fallback };
    let sz = i64::try_from(meta.len()).unwrap_or(i64::MAX);
    let mut offset = offset;
    let mut length = length;
    let mut overflow = false;
    if sz > offset.saturating_add(length) {
        overflow = true;
        offset = sz - 1;
    }
    if offset.saturating_add(length) > sz {
        if offset > sz - 1 {
            length = 0;
        }
        offset = sz.saturating_sub(length);
    }
    offset = offset.max(0);
    length = length.max(0);
    let data = if length == 0 {
        Vec::new()
    } else {
        match read_at(&file, offset as u64, length as u64) {
            Ok(d) => d,
            Err(_) => return fallback,
        }
    };
    Tail { data, offset: sz, overflow }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(content: &[u8]) -> tempfile::NamedTempFile {
        let f = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(f.path(), content).unwrap();
        f
    }

    #[test]
    fn read_log_table() {
        let f = file(b"hello world\n");
        let p = f.path();
        assert_eq!(read_log(p, -5, 0).unwrap(), b"orld\n");
        assert_eq!(read_log(p, 2, 3).unwrap(), b"llo");
        assert_eq!(read_log(p, 0, 0).unwrap(), b"hello world\n");
        assert_eq!(read_log(p, 6, 0).unwrap(), b"world\n");
        assert_eq!(read_log(p, -100, 0).unwrap(), b"hello world\n");
        assert_eq!(read_log(p, 100, 0).unwrap(), b"");
        assert_eq!(read_log(p, 10, 100).unwrap(), b"d\n");
        assert!(matches!(read_log(p, -5, 2), Err(ReadError::BadArguments)));
        assert!(matches!(read_log(p, 0, -1), Err(ReadError::BadArguments)));
        assert!(matches!(read_log(Path::new("/nonexistent/x"), 0, 0), Err(ReadError::Failed(_))));
    }

    #[test]
    fn tail_log_table() {
        let f = file(b"hello world\n");
        let p = f.path();
        assert_eq!(tail_log(p, 0, 5), Tail { data: b"orld\n".to_vec(), offset: 12, overflow: true });
        assert_eq!(
            tail_log(p, 0, 100),
            Tail { data: b"hello world\n".to_vec(), offset: 12, overflow: false }
        );
        assert_eq!(tail_log(p, 12, 100), Tail { data: vec![], offset: 12, overflow: false });
        // supervisord's quirk: a short file is returned whole, whatever the offset.
        assert_eq!(
            tail_log(p, 5, 100),
            Tail { data: b"hello world\n".to_vec(), offset: 12, overflow: false }
        );
        assert_eq!(tail_log(p, 7, 5), Tail { data: b"orld\n".to_vec(), offset: 12, overflow: false });
        assert_eq!(tail_log(p, 50, 5), Tail { data: vec![], offset: 12, overflow: false });
        assert_eq!(
            tail_log(Path::new("/nonexistent/x"), 3, 5),
            Tail { data: vec![], offset: 3, overflow: false }
        );
    }
}
