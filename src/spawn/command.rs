//! Turning a `command=` line into an executable path and argv, as supervisord does
//! before it forks (so a missing or non-executable program is a spawn error, not a
//! child that dies).

use std::ffi::CString;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use crate::config::pyfmt::py_repr;

/// Why a command cannot be run. Display gives supervisord's exact text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CommandError {
    /// shlex could not split the line.
    #[error("can't parse command {}: {reason}", py_repr(.command))]
    Parse {
        /// The command line.
        command: String,
        /// shlex's message (`No closing quotation`, `No escaped character`).
        reason: String,
    },
    /// Nothing to run.
    #[error("command is empty")]
    Empty,
    /// Not found (directly or on PATH).
    #[error("can't find command {}", py_repr(.0))]
    NotFound(String),
    /// A directory.
    #[error("command at {} is a directory", py_repr(.0))]
    IsDirectory(String),
    /// No execute bits.
    #[error("command at {} is not executable", py_repr(.0))]
    NotExecutable(String),
    /// access(X_OK) fails for this user.
    #[error("no permission to run command {}", py_repr(.0))]
    NoPermission(String),
}

impl CommandError {
    /// supervisord maps "not found" to NO_FILE and everything else to NOT_EXECUTABLE.
    pub fn is_not_found(&self) -> bool {
        matches!(self, CommandError::NotFound(_))
    }
}

/// A command ready to exec.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvedCommand {
    /// The file to execute.
    pub filename: PathBuf,
    /// argv, with argv[0] as written.
    pub argv: Vec<String>,
}

/// Split like Python's `shlex.split` (POSIX mode, no comments), with its error
/// messages; the `shlex` crate reports no reason, and supervisord's text needs one.
pub fn split(command: &str) -> Result<Vec<String>, CommandError> {
    let parse_err =
        |reason: &str| CommandError::Parse { command: command.to_string(), reason: reason.into() };
    let mut words = Vec::new();
    let mut cur = String::new();
    let mut in_word = false;
    let mut chars = command.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            c if c.is_whitespace() => {
                if in_word {
                    words.push(std::mem::take(&mut cur));
                    in_word = false;
                }
            }
            '\'' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('\'') => break,
                        Some(c) => cur.push(c),
                        None => return Err(parse_err("No closing quotation")),
                    }
                }
            }
            '"' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('"') => break,
                        Some('\\') => match chars.next() {
                            Some(e @ ('"' | '\\')) => cur.push(e),
                            Some(other) => {
                                cur.push('\\');
                                cur.push(other);
                            }
                            None => return Err(parse_err("No closing quotation")),
                        },
                        Some(c) => cur.push(c),
                        None => return Err(parse_err("No closing quotation")),
                    }
                }
            }
            '\\' => {
                in_word = true;
                match chars.next() {
                    Some(e) => cur.push(e),
                    None => return Err(parse_err("No escaped character")),
                }
            }
            c => {
                in_word = true;
                cur.push(c);
            }
        }
    }
    if in_word {
        words.push(cur);
    }
    Ok(words)
}

/// The directories searched for a bare program name: the program's own
/// `PATH` (from `environment=`), else the daemon's, else supervisord's default.
pub fn search_path(program_env: &[(String, String)], daemon_path: Option<&str>) -> Vec<PathBuf> {
    if let Some((_, p)) = program_env.iter().rev().find(|(k, _)| k == "PATH") {
        return std::env::split_paths(p).collect();
    }
    match daemon_path {
        Some(p) if !p.is_empty() => std::env::split_paths(p).collect(),
        _ => ["/bin", "/usr/bin", "/usr/local/bin"].iter().map(PathBuf::from).collect(),
    }
}

/// Resolve a command line: split it, find argv[0], check it can be executed.
pub fn resolve(command: &str, path: &[PathBuf]) -> Result<ResolvedCommand, CommandError> {
    let argv = split(command)?;
    let program = argv.first().ok_or(CommandError::Empty)?.clone();
    let (filename, meta) = if program.contains('/') {
        let meta = std::fs::metadata(&program).ok();
        (PathBuf::from(&program), meta)
    } else {
        path.iter()
            .map(|dir| dir.join(&program))
            .find_map(|f| std::fs::metadata(&f).ok().map(|m| (f, Some(m))))
            .unwrap_or_else(|| (PathBuf::from(&program), None))
    };
    let shown = filename.to_string_lossy().into_owned();
    let meta = meta.ok_or_else(|| CommandError::NotFound(shown.clone()))?;
    if meta.is_dir() {
        return Err(CommandError::IsDirectory(shown));
    }
    if meta.permissions().mode() & 0o111 == 0 {
        return Err(CommandError::NotExecutable(shown));
    }
    if !access_x(&filename) {
        return Err(CommandError::NoPermission(shown));
    }
    Ok(ResolvedCommand { filename, argv })
}

fn access_x(path: &Path) -> bool {
    use std::os::unix::ffi::OsStrExt;
    let Ok(c) = CString::new(path.as_os_str().as_bytes()) else {
        return false;
    };
    // SAFETY: c is a valid NUL-terminated string for the duration of the call.
    unsafe { libc::access(c.as_ptr(), libc::X_OK) == 0 }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_like_python_shlex() {
        assert_eq!(split("a b  c").unwrap(), vec!["a", "b", "c"]);
        assert_eq!(split("sh -c 'echo a; echo b'").unwrap(), vec!["sh", "-c", "echo a; echo b"]);
        assert_eq!(split(r#"echo "x \"y\" z""#).unwrap(), vec!["echo", r#"x "y" z"#]);
        assert_eq!(split(r"a\ b").unwrap(), vec!["a b"]);
        assert_eq!(split("a''b").unwrap(), vec!["ab"]);
        assert_eq!(split("''").unwrap(), vec![""]);
    }

    #[test]
    fn unclosed_quote_gives_supervisord_message() {
        let e = split("/bin/echo 'oops").unwrap_err();
        assert_eq!(e.to_string(), "can't parse command \"/bin/echo 'oops\": No closing quotation");
        let e = split("/bin/echo \"oops").unwrap_err();
        assert_eq!(e.to_string(), "can't parse command '/bin/echo \"oops': No closing quotation");
    }

    #[test]
    fn resolution_errors_match_supervisord() {
        let path = search_path(&[], Some("/usr/bin:/bin"));
        assert_eq!(
            resolve("/nonexistent/binary", &path).unwrap_err().to_string(),
            "can't find command '/nonexistent/binary'"
        );
        assert_eq!(
            resolve("nosuchprog-xyz", &path).unwrap_err().to_string(),
            "can't find command 'nosuchprog-xyz'"
        );
        assert_eq!(resolve("/tmp", &path).unwrap_err().to_string(), "command at '/tmp' is a directory");
        let dir = tempfile::tempdir().unwrap();
        let plain = dir.path().join("plain");
        std::fs::write(&plain, "x").unwrap();
        std::fs::set_permissions(&plain, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert_eq!(
            resolve(&plain.display().to_string(), &path).unwrap_err().to_string(),
            format!("command at '{}' is not executable", plain.display())
        );
        assert_eq!(resolve("   ", &path).unwrap_err(), CommandError::Empty);
        let ok = resolve("sh -c 'exit 0'", &path).unwrap();
        assert!(ok.filename.ends_with("sh"));
        assert_eq!(ok.argv, vec!["sh", "-c", "exit 0"]);
    }

    #[test]
    fn program_path_wins_over_daemon_path() {
        let env = vec![("PATH".to_string(), "/opt/x:/opt/y".to_string())];
        assert_eq!(
            search_path(&env, Some("/usr/bin")),
            vec![PathBuf::from("/opt/x"), PathBuf::from("/opt/y")]
        );
        assert_eq!(
            search_path(&[], None),
            vec![PathBuf::from("/bin"), PathBuf::from("/usr/bin"), PathBuf::from("/usr/local/bin")]
        );
    }
}
