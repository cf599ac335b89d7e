//! `AUTO` child log files: naming and cleanup, as supervisord does them.
//!
//! A name is `<childlogdir>/<process>-<stdout|stderr>---<identifier>-<8 random
//! chars>.log`, the random part drawn from `[a-z0-9_]` like Python's
//! `tempfile.mkstemp`, and the file is created empty (mode 0600, exclusively)
//! when the group is created. At daemon start (unless `nocleanup`) every file
//! of the directory matching supervisord's pattern
//! `.+?---<identifier>-\S+\.log…` is deleted, which also catches rotated
//! backups (`….log.1`).

use std::fs::OpenOptions;
use std::io;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use rand::Rng;

use super::Channel;

/// Python `tempfile`'s alphabet for random names.
const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789_";
/// Length of the random part, as in `tempfile`.
const RANDOM_LEN: usize = 8;
/// `tempfile.TMP_MAX`: attempts before giving up on name collisions.
const ATTEMPTS: usize = 10_000;

/// Errors creating or cleaning AUTO log files.
#[derive(Debug, thiserror::Error)]
pub enum AutoLogError {
    /// The file could not be created.
    #[error("cannot create AUTO log file in {}: {source}", dir.display())]
    Create {
        /// The child log directory.
        dir: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// The directory could not be listed (supervisord: `Could not clear childlog dir`).
    #[error("Could not clear childlog dir {}: {source}", dir.display())]
    List {
        /// The child log directory.
        dir: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
}

fn random_part() -> String {
    let mut rng = rand::rng();
    (0..RANDOM_LEN).map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char).collect()
}

/// Creates a new, empty AUTO log file for `process_name`'s `channel`; returns
/// its path and the file, open for appending.
pub fn create_auto_log(
    childlogdir: &Path,
    process_name: &str,
    channel: Channel,
    identifier: &str,
) -> Result<(PathBuf, std::fs::File), AutoLogError> {
    let mut last = io::Error::from(io::ErrorKind::AlreadyExists);
    for _ in 0..ATTEMPTS {
        let name = format!("{process_name}-{}---{identifier}-{}.log", channel.as_str(), random_part());
        let path = childlogdir.join(name);
        match OpenOptions::new().append(true).create_new(true).mode(0o600).open(&path) {
            Ok(file) => return Ok((path, file)),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => last = e,
            Err(source) => return Err(AutoLogError::Create { dir: childlogdir.to_path_buf(), source }),
        }
    }
    Err(AutoLogError::Create { dir: childlogdir.to_path_buf(), source: last })
}

/// Whether `name` matches supervisord's `re.match(r'.+?---ID-\S+\.log\.{0,1}\d{0,4}')`.
///
/// The pattern is anchored at the start only: some text, `---<identifier>-`,
/// at least one non-whitespace character, then `.log` (anything may follow).
/// The identifier is taken literally (supervisord interpolates it unescaped
/// into the regex; identifiers are plain words in practice).
pub fn is_auto_log_name(name: &str, identifier: &str) -> bool {
    let marker = format!("---{identifier}-");
    let mut from = 1; // `.+?` needs at least one character before the marker
    while let Some(found) = name.get(from..).and_then(|s| s.find(&marker)) {
        let start = from + found;
        let rest = &name[start + marker.len()..];
        // `\S+\.log`: a ".log" preceded by ≥1 non-whitespace, all non-whitespace.
        let mut search = 1;
        while let Some(pos) = rest.get(search..).and_then(|s| s.find(".log")) {
            let at = search + pos;
            if !rest[..at].chars().any(char::is_whitespace) {
                return true;
            }
            search = at + 1;
        }
        from = start + 1;
    }
    false
}

/// Deletes AUTO log files (and their backups) of `identifier` in
/// `childlogdir`. Returns the files that could not be deleted, with why, so
/// the caller can log supervisord's `Failed to clean up '<path>'` for each.
pub fn cleanup_auto_logs(
    childlogdir: &Path,
    identifier: &str,
) -> Result<Vec<(PathBuf, io::Error)>, AutoLogError> {
    cleanup_auto_logs_except(childlogdir, identifier, &[])
}

/// Whether `path` is `base` or one of its numbered backups (`base.1`, …).
fn is_or_backs_up(path: &Path, base: &Path) -> bool {
    let (p, b) = (path.as_os_str().as_encoded_bytes(), base.as_os_str().as_encoded_bytes());
    match p.strip_prefix(b) {
        Some([]) => true,
        Some([b'.', digits @ ..]) => !digits.is_empty() && digits.iter().all(u8::is_ascii_digit),
        _ => false,
    }
}

/// [`cleanup_auto_logs`], sparing the files in `keep` and their backups: AUTO
/// logs still being written (programs taken over after a crash).
pub fn cleanup_auto_logs_except(
    childlogdir: &Path,
    identifier: &str,
    keep: &[PathBuf],
) -> Result<Vec<(PathBuf, io::Error)>, AutoLogError> {
    let list_err = |source| AutoLogError::List { dir: childlogdir.to_path_buf(), source };
    let mut failures = Vec::new();
    for entry in std::fs::read_dir(childlogdir).map_err(list_err)? {
        let entry = entry.map_err(list_err)?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if is_auto_log_name(name, identifier) {
            let path = entry.path();
            if keep.iter().any(|k| is_or_backs_up(&path, k)) {
                continue;
            }
            if let Err(e) = std::fs::remove_file(&path) {
                failures.push((path, e));
            }
        }
    }
    Ok(failures)
}

/// The AUTO log a previous daemon wrote for `process_name`'s `channel`: the most
/// recently modified file named as [`create_auto_log`] names them (backups aside),
/// other than those in `except` (the files this daemon uses already). Processes of
/// the same name in different groups share the name pattern, so for them the
/// choice is the newest file.
pub fn latest_auto_log(
    childlogdir: &Path,
    process_name: &str,
    channel: Channel,
    identifier: &str,
    except: &[PathBuf],
) -> Option<PathBuf> {
    let prefix = format!("{process_name}-{}---{identifier}-", channel.as_str());
    let mut best: Option<(std::time::SystemTime, PathBuf)> = None;
    for entry in std::fs::read_dir(childlogdir).ok()?.flatten() {
        let name = entry.file_name();
        let Some(random) =
            name.to_str().and_then(|n| n.strip_prefix(&prefix)).and_then(|r| r.strip_suffix(".log"))
        else {
            continue;
        };
        if random.len() != RANDOM_LEN || !random.bytes().all(|b| ALPHABET.contains(&b)) {
            continue;
        }
        let path = entry.path();
        if except.contains(&path) {
            continue;
        }
        let Ok(modified) = entry.metadata().and_then(|m| m.modified()) else { continue };
        if best.as_ref().is_none_or(|(t, _)| modified > *t) {
            best = Some((modified, path));
        }
    }
    best.map(|(_, p)| p)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auto_name_shape_and_empty_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (p, _) = create_auto_log(dir.path(), "sleeper", Channel::Stdout, "supervisor").expect("create");
        let name = p.file_name().and_then(|n| n.to_str()).expect("name");
        let random = name
            .strip_prefix("sleeper-stdout---supervisor-")
            .and_then(|r| r.strip_suffix(".log"))
            .expect("shape");
        assert_eq!(random.len(), 8);
        assert!(random.bytes().all(|b| ALPHABET.contains(&b)), "{random}");
        assert_eq!(std::fs::metadata(&p).expect("exists").len(), 0);
        let (q, _) = create_auto_log(dir.path(), "sleeper", Channel::Stderr, "supervisor").expect("create");
        assert!(q.to_string_lossy().contains("sleeper-stderr---supervisor-"));
        assert_ne!(p, q);
    }

    #[test]
    fn auto_name_in_missing_dir_is_an_error() {
        let r = create_auto_log(Path::new("/nonexistent-corral-dir"), "x", Channel::Stdout, "supervisor");
        assert!(matches!(r, Err(AutoLogError::Create { .. })));
    }

    #[test]
    fn name_pattern_matches_supervisord_regex() {
        let id = "supervisor";
        for yes in [
            "sleeper-stdout---supervisor-iqot93xi.log",
            "sleeper-stdout---supervisor-iqot93xi.log.1",
            "sleeper-stdout---supervisor-iqot93xi.log.12345",
            "a---supervisor-b.log",
            "a---supervisor-b.logx", // re.match is not anchored at the end
            "x---other---supervisor-y.log",
            "a---supervisor-.log.log",
        ] {
            assert!(is_auto_log_name(yes, id), "{yes}");
        }
        for no in [
            "---supervisor-b.log", // needs a character before the marker
            "a---supervisor-.log", // \S+ needs a character
            "a---supervisor-b c.log",
            "a---other-b.log",
            "supervisord.log",
            "a---supervisor-b.txt",
        ] {
            assert!(!is_auto_log_name(no, id), "{no}");
        }
    }

    #[test]
    fn cleanup_can_spare_logs_still_in_use_with_their_backups() {
        let dir = tempfile::tempdir().expect("tempdir");
        let names = [
            "p-stdout---supervisor-abcdefgh.log",
            "p-stdout---supervisor-abcdefgh.log.1",
            "p-stdout---supervisor-abcdefgh.logx",
            "q-stdout---supervisor-zzzzzzzz.log",
        ];
        for n in names {
            std::fs::write(dir.path().join(n), b"x").expect("seed");
        }
        let keep = [dir.path().join(names[0])];
        cleanup_auto_logs_except(dir.path(), "supervisor", &keep).expect("cleanup");
        let left: Vec<bool> = names.iter().map(|n| dir.path().join(n).exists()).collect();
        assert_eq!(left, [true, true, false, false]);
    }

    #[test]
    fn the_latest_auto_log_of_a_process_is_found_by_its_name() {
        let dir = tempfile::tempdir().expect("tempdir");
        let old = dir.path().join("web-stdout---supervisor-aaaaaaaa.log");
        std::fs::write(&old, b"before the crash").expect("seed");
        for other in [
            "web-stderr---supervisor-bbbbbbbb.log",
            "web2-stdout---supervisor-cccccccc.log",
            "web-stdout---supervisor-aaaaaaaa.log.1",
            "web-stdout---other-dddddddd.log",
        ] {
            std::fs::write(dir.path().join(other), b"x").expect("seed");
        }
        let (fresh, _) = create_auto_log(dir.path(), "web", Channel::Stdout, "supervisor").expect("create");
        let found = latest_auto_log(dir.path(), "web", Channel::Stdout, "supervisor", &[fresh]);
        assert_eq!(found, Some(old));
        assert_eq!(latest_auto_log(dir.path(), "db", Channel::Stdout, "supervisor", &[]), None);
    }

    #[test]
    fn cleanup_removes_only_matching_files() {
        let dir = tempfile::tempdir().expect("tempdir");
        let keep = ["supervisord.log", "p-stdout---other-abcdefgh.log", "notes"];
        let gone = [
            "p-stdout---supervisor-abcdefgh.log",
            "p-stdout---supervisor-abcdefgh.log.1",
            "p-stderr---supervisor-zz_9zz9z.log.10",
        ];
        for n in keep.iter().chain(gone.iter()) {
            std::fs::write(dir.path().join(n), b"x").expect("seed");
        }
        let failures = cleanup_auto_logs(dir.path(), "supervisor").expect("cleanup");
        assert!(failures.is_empty());
        for n in keep {
            assert!(dir.path().join(n).exists(), "{n} kept");
        }
        for n in gone {
            assert!(!dir.path().join(n).exists(), "{n} removed");
        }
    }
}
