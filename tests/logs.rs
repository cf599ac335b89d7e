//! End-to-end tests of child output capture with real child processes.

use std::io::Read;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use corral::logs::capture::{read_pipe, ReaderConfig};
use corral::logs::file::RotatingFile;
use corral::logs::Channel;

const MIB: u64 = 1024 * 1024;

/// A child writing `words` little-endian u64 counters (0, 1, 2, …) to stdout as
/// fast as Python can produce them, 512 KiB per write.
fn counter_writer(words: u64) -> Command {
    let script = format!(
        "import sys, array\n\
         out = sys.stdout.buffer\n\
         n = {words}\n\
         k = 0\n\
         while k < n:\n\
         \x20   m = min(65536, n - k)\n\
         \x20   out.write(array.array('Q', range(k, k + m)).tobytes())\n\
         \x20   k += m\n\
         out.flush()\n"
    );
    let mut cmd = Command::new("python3");
    cmd.arg("-c").arg(script);
    cmd
}

/// Runs `cmd` with stdout piped into a reader task writing to `file`.
/// Returns (bytes read, seconds).
fn capture(mut cmd: Command, file: RotatingFile) -> (u64, f64) {
    let rt =
        tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
    let mut child = cmd.stdout(Stdio::piped()).stdin(Stdio::null()).spawn().expect("spawn child");
    let stdout = OwnedFd::from(child.stdout.take().expect("stdout pipe"));
    let start = Instant::now();
    let n = rt
        .block_on(read_pipe::<()>(stdout, ReaderConfig::new(Channel::Stdout, Some(file.shared()))))
        .expect("reader");
    let secs = start.elapsed().as_secs_f64();
    let status = child.wait().expect("wait child");
    assert!(status.success(), "child failed: {status}");
    (n, secs)
}

/// Checks that `data` continues the u64 counter sequence at `*next`.
fn check_counters(data: &[u8], next: &mut u64) {
    assert_eq!(data.len() % 8, 0);
    for word in data.chunks_exact(8) {
        let mut b = [0u8; 8];
        b.copy_from_slice(word);
        assert_eq!(u64::from_le_bytes(b), *next, "byte offset {}", *next * 8);
        *next += 1;
    }
}

fn check_file_counters(path: &Path, next: &mut u64) {
    let mut f = std::fs::File::open(path).expect("open log");
    let mut buf = vec![0u8; MIB as usize];
    let mut carry = Vec::new();
    loop {
        let n = f.read(&mut buf).expect("read log");
        if n == 0 {
            break;
        }
        carry.extend_from_slice(&buf[..n]);
        let whole = carry.len() / 8 * 8;
        check_counters(&carry[..whole], next);
        carry.drain(..whole);
    }
    assert!(carry.is_empty(), "trailing partial word in {}", path.display());
}

#[test]
fn child_writing_256_mib_flat_out_is_logged_byte_exact() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("big.log");
    let bytes = 256 * MIB;
    let file = RotatingFile::open(&path, 0, 0).expect("open");
    let (n, secs) = capture(counter_writer(bytes / 8), file);
    assert_eq!(n, bytes);
    assert_eq!(std::fs::metadata(&path).expect("stat").len(), bytes);
    let mut next = 0;
    check_file_counters(&path, &mut next);
    assert_eq!(next, bytes / 8);
    eprintln!("256 MiB counter pattern: {:.0} MB/s ({secs:.2}s)", bytes as f64 / secs / 1e6);
}

#[test]
fn raw_reader_throughput_256_mib() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("zero.log");
    let bytes = 256 * MIB;
    let mut cmd = Command::new("head");
    cmd.arg("-c").arg(bytes.to_string()).arg("/dev/zero");
    let (n, secs) = capture(cmd, RotatingFile::open(&path, 0, 0).expect("open"));
    assert_eq!(n, bytes);
    assert_eq!(std::fs::metadata(&path).expect("stat").len(), bytes);
    eprintln!("256 MiB from head -c /dev/zero: {:.0} MB/s ({secs:.2}s)", bytes as f64 / secs / 1e6);
}

#[test]
fn rotation_under_load_loses_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("rot.log");
    let bytes = 16 * MIB;
    let backups = 64;
    let file = RotatingFile::open(&path, MIB, backups).expect("open");
    let (n, _) = capture(counter_writer(bytes / 8), file);
    assert_eq!(n, bytes);
    // Oldest backup first, base file last: together they are the stream.
    let mut parts: Vec<PathBuf> = (1..=backups)
        .rev()
        .map(|i| PathBuf::from(format!("{}.{i}", path.display())))
        .filter(|p| p.exists())
        .collect();
    parts.push(path.clone());
    assert!(parts.len() >= 16, "expected ≥16 files, got {}", parts.len());
    let mut next = 0;
    for p in &parts {
        check_file_counters(p, &mut next);
    }
    assert_eq!(next, bytes / 8);
}
