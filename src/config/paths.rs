//! Path handling as supervisord does it: `~` expansion, lexical
//! normalisation, and the "directory must exist" checks.

use std::path::{Path, PathBuf};

use super::values::BadValue;
use super::Environment;

/// Python's `os.path.expanduser`: `~` and `~/x` use `$HOME` (or the passwd
/// entry of the current uid), `~user/x` uses that user's home; anything
/// else, or an unknown user, is returned unchanged.
pub fn expanduser(p: &str, env: &Environment) -> String {
    let Some(rest) = p.strip_prefix('~') else {
        return p.to_string();
    };
    let (user, tail) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, ""),
    };
    let home = if user.is_empty() {
        env.vars.get("HOME").cloned().or_else(|| {
            nix::unistd::User::from_uid(nix::unistd::getuid())
                .ok()
                .flatten()
                .map(|u| u.dir.to_string_lossy().into_owned())
        })
    } else {
        nix::unistd::User::from_name(user).ok().flatten().map(|u| u.dir.to_string_lossy().into_owned())
    };
    match home {
        Some(h) => {
            let h = if h.len() > 1 { h.trim_end_matches('/') } else { &h };
            format!("{h}{tail}")
        }
        None => p.to_string(),
    }
}

/// Python's `os.path.normpath(os.path.abspath(os.path.expanduser(p)))`.
pub fn normalize_path(p: &str, env: &Environment) -> PathBuf {
    let expanded = expanduser(p, env);
    let joined = if expanded.starts_with('/') { PathBuf::from(&expanded) } else { env.cwd.join(&expanded) };
    normpath(&joined)
}

/// Lexical normalisation: removes `.`, empty components and resolves `..`
/// without touching the filesystem (as Python's `normpath` does).
pub fn normpath(p: &Path) -> PathBuf {
    let mut parts: Vec<&str> = Vec::new();
    let s = p.to_string_lossy();
    for comp in s.split('/') {
        match comp {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            c => parts.push(c),
        }
    }
    PathBuf::from(format!("/{}", parts.join("/")))
}

/// Python's `os.path.dirname`.
pub fn py_dirname(p: &str) -> String {
    match p.rfind('/') {
        None => String::new(),
        Some(i) => {
            let head = &p[..=i];
            if head.chars().all(|c| c == '/') {
                head.to_string()
            } else {
                head.trim_end_matches('/').to_string()
            }
        }
    }
}

/// supervisord's `existing_dirpath`: `~` expanded; if the path has a
/// directory part, that directory must exist.
pub fn existing_dirpath(p: &str, env: &Environment) -> Result<String, BadValue> {
    let expanded = expanduser(p, env);
    let dir = py_dirname(&expanded);
    if dir.is_empty() || resolve(&dir, env).is_dir() {
        return Ok(expanded);
    }
    Err(BadValue::new(
        format!("The directory named as part of the path {p} does not exist"),
        "a path whose directory exists",
    ))
}

/// supervisord's `existing_directory`: `~` expanded, must be a directory.
pub fn existing_directory(p: &str, env: &Environment) -> Result<String, BadValue> {
    let expanded = expanduser(p, env);
    if resolve(&expanded, env).is_dir() {
        return Ok(expanded);
    }
    Err(BadValue::new(format!("{p} is not an existing directory"), "an existing directory"))
}

fn resolve(p: &str, env: &Environment) -> PathBuf {
    if p.starts_with('/') {
        PathBuf::from(p)
    } else {
        env.cwd.join(p)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn env() -> Environment {
        let mut vars = BTreeMap::new();
        vars.insert("HOME".to_string(), "/home/me".to_string());
        Environment { vars, host_node_name: "h".into(), cwd: PathBuf::from("/work/dir") }
    }

    #[test]
    fn expands_home() {
        assert_eq!(expanduser("~/x.log", &env()), "/home/me/x.log");
        assert_eq!(expanduser("~", &env()), "/home/me");
        assert_eq!(expanduser("/a/~", &env()), "/a/~");
        assert_eq!(expanduser("~root/x", &env()), "/root/x");
        assert_eq!(expanduser("~no_such_user_x/x", &env()), "~no_such_user_x/x");
    }

    #[test]
    fn normalizes() {
        assert_eq!(normalize_path("a/../b/./c", &env()), PathBuf::from("/work/dir/b/c"));
        assert_eq!(normalize_path("/x//y/..", &env()), PathBuf::from("/x"));
        assert_eq!(normalize_path("~/s.sock", &env()), PathBuf::from("/home/me/s.sock"));
    }

    #[test]
    fn dirnames() {
        assert_eq!(py_dirname("/usr/bin/x"), "/usr/bin");
        assert_eq!(py_dirname("x"), "");
        assert_eq!(py_dirname("/x"), "/");
        assert_eq!(py_dirname("a//b"), "a");
    }

    #[test]
    fn dirpath_checks() {
        assert!(existing_dirpath("supervisord.log", &env()).is_ok());
        assert!(existing_dirpath("/tmp/x.log", &env()).is_ok());
        assert_eq!(
            existing_dirpath("/nonexistent-dir-x/x.log", &env()).unwrap_err().message,
            "The directory named as part of the path /nonexistent-dir-x/x.log does not exist"
        );
        assert_eq!(
            existing_directory("/nonexistent-dir-x", &env()).unwrap_err().message,
            "/nonexistent-dir-x is not an existing directory"
        );
    }
}
