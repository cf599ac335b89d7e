//! What the parser takes from the running process: environment variables,
//! host name and working directory. Passing them in keeps tests deterministic.

use std::collections::BTreeMap;
use std::path::PathBuf;

/// Inputs from the outside world that change what a config file means.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Environment {
    /// Environment variables (become `%(ENV_X)s`; `HOME` is used for `~`,
    /// `TMPDIR` for the default `childlogdir`).
    pub vars: BTreeMap<String, String>,
    /// Host node name (`%(host_node_name)s`, Python's `platform.node()`).
    pub host_node_name: String,
    /// Directory relative paths (default log and pid files) resolve against.
    pub cwd: PathBuf,
}

impl Environment {
    /// The current process's environment, host name and working directory.
    pub fn current() -> Self {
        let vars = std::env::vars_os()
            .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
            .collect();
        let host_node_name =
            nix::unistd::gethostname().map(|h| h.to_string_lossy().into_owned()).unwrap_or_default();
        let cwd = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("/"));
        Environment { vars, host_node_name, cwd }
    }

    /// An environment with the given variables and host name, resolving
    /// relative paths against the current directory.
    pub fn new(vars: BTreeMap<String, String>, host_node_name: impl Into<String>) -> Self {
        Environment {
            vars,
            host_node_name: host_node_name.into(),
            cwd: std::env::current_dir().unwrap_or_else(|_| PathBuf::from("/")),
        }
    }

    /// Python's `tempfile.gettempdir()` as far as supervisord relies on it:
    /// `$TMPDIR` if it names a directory, else `/tmp`.
    pub fn temp_dir(&self) -> String {
        for var in ["TMPDIR", "TEMP", "TMP"] {
            if let Some(dir) = self.vars.get(var) {
                if std::path::Path::new(dir).is_dir() {
                    return dir.clone();
                }
            }
        }
        "/tmp".to_string()
    }
}
