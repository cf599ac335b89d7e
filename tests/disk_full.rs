//! A log file on a full disk: the program keeps running, the daemon says so
//! once, and writing resumes (saying how much was lost) when space returns.

mod common;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use common::*;

/// A small tmpfs mounted for one test; unmounted (lazily, so a straggler cannot
/// keep it) when dropped.
struct SmallDisk {
    path: PathBuf,
}

impl SmallDisk {
    fn mount(path: &Path, size: &str) -> Option<SmallDisk> {
        std::fs::create_dir_all(path).expect("mount point");
        let mounted = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(path)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        mounted.then(|| SmallDisk { path: path.to_path_buf() })
    }

    /// Fill all but `room` bytes with `filler`.
    fn fill(&self, filler: &Path, room: u64) {
        let mut f = std::fs::File::create(filler).expect("create filler");
        for chunk in [64 * 1024, 4096, 512, 1] {
            let buf = vec![0u8; chunk];
            while f.write_all(&buf).is_ok() {}
        }
        let len = f.metadata().expect("filler size").len();
        f.set_len(len.saturating_sub(room)).expect("make room");
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.path).status();
    }
}

/// The program's line counter; `None` while the shell rewrites the file.
fn count(path: &Path) -> Option<u64> {
    std::fs::read_to_string(path).ok().and_then(|t| t.trim().parse().ok())
}

#[test]
fn a_full_disk_is_logged_once_the_program_keeps_running_and_writing_resumes_with_the_loss() {
    let dir = tempfile::tempdir().expect("temp dir");
    let small = dir.path().join("small");
    let Some(disk) = SmallDisk::mount(&small, "256k") else {
        skip("needs root to mount a tmpfs");
        return;
    };
    // The program counts its lines in a file outside the small disk too, so the
    // test can tell that it went on writing while the log could not.
    let text = format!(
        "{}[program:talker]\ncommand=sh -c 'i=0; while :; do \
         if [ -e {d}/hold ]; then : > {d}/holding; sleep 0.005; continue; fi; \
         echo line-$i; echo $i > {d}/count; i=$((i+1)); sleep 0.005; done'\n\
         stdout_logfile={s}/talker.log\nstartsecs=0\n",
        preamble(dir.path()),
        d = dir.path().display(),
        s = small.display()
    );
    let d = Daemon::start_with(dir, &text);
    d.wait_state("talker", "RUNNING");
    let pid = d.pid("talker");
    let log = small.join("talker.log");
    let lines = || std::fs::read_to_string(&log).unwrap_or_default().lines().count();
    wait_for("the first lines", DEADLINE, || lines() >= 5);

    // Holding its output, and everything it wrote already in its log, while a
    // filler takes all but a few blocks; then the program's own log fills the
    // rest, so the disk runs full under that one writer.
    let (hold, holding, counter) = (d.path("hold"), d.path("holding"), d.path("count"));
    std::fs::write(&hold, "").expect("hold");
    wait_for("the program to hold", DEADLINE, || holding.exists());
    let last_logged = || {
        std::fs::read_to_string(&log)
            .unwrap_or_default()
            .lines()
            .rev()
            .find_map(|l| l.strip_prefix("line-")?.parse::<u64>().ok())
    };
    let written = count(&counter).expect("the counter, complete while the program holds");
    wait_for("the log to hold everything written so far", DEADLINE, || last_logged() == Some(written));
    let filler = small.join("filler");
    disk.fill(&filler, 8 * 1024);
    std::fs::remove_file(&hold).expect("go on");
    let failure = format!("cannot write to log file {}", log.display());
    wait_for("the daemon to report the full disk", DEADLINE, || d.main_log().contains(&failure));
    let mut at_failure = None;
    wait_for("the program's counter", DEADLINE, || {
        at_failure = count(&counter);
        at_failure.is_some()
    });
    let at_failure = at_failure.unwrap_or_default();
    wait_for("the program to go on for 30 more lines", DEADLINE, || {
        count(&counter).is_some_and(|c| c > at_failure + 30)
    });
    assert_eq!(d.pid("talker"), pid, "the program was not disturbed");
    assert_eq!(d.state("talker"), "RUNNING");
    assert_eq!(d.main_log().matches(&failure).count(), 1, "reported once:\n{}", d.main_log());
    let before = lines();

    std::fs::remove_file(&filler).expect("free the space");
    wait_for("new lines in the same file", DEADLINE, || lines() > before + 5);
    let resumed = format!("writing to log file {} resumed; dropped ", log.display());
    wait_for("the resumption to be logged", DEADLINE, || d.main_log().contains(&resumed));
    let main_log = d.main_log();
    let line = main_log.lines().find(|l| l.contains(&resumed)).expect("resumed line");
    let dropped: u64 = line
        .split(&resumed)
        .nth(1)
        .and_then(|rest| rest.split(' ').next())
        .and_then(|n| n.parse().ok())
        .expect("a byte count");
    assert!(
        dropped >= 30 * "line-0\n".len() as u64,
        "{line}\n{}",
        main_log.lines().filter(|l| l.contains("talker.log")).collect::<Vec<_>>().join("\n")
    );
    assert!(line.ends_with(" bytes while it failed"), "{line}");
    assert_eq!(main_log.matches(&failure).count(), 1, "{main_log}");
    assert_eq!(d.pid("talker"), pid);
    // The daemon holds the log open: it goes before the disk is unmounted.
    drop(d);
    drop(disk);
}
