//! Connection settings, resolved as supervisorctl resolves them.
//!
//! Command-line flags win over the `[supervisorctl]` section, which wins over
//! the defaults (`http://localhost:9001`, prompt `supervisor`). With no `-c`,
//! the usual config search runs; finding nothing is fine (supervisorctl does not
//! require a file), but a file without `[supervisorctl]` is an error.

use std::path::{Path, PathBuf};

use crate::config::{self, Environment};

/// supervisorctl's default server URL.
pub const DEFAULT_SERVERURL: &str = "http://localhost:9001";

/// Everything needed to reach and talk to the server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Options {
    /// `unix:///path` or `http://host:port`, printed as given in messages.
    pub serverurl: String,
    /// Basic auth user name.
    pub username: Option<String>,
    /// Basic auth password.
    pub password: Option<String>,
    /// Shell prompt without the trailing `> `.
    pub prompt: String,
    /// Where the shell keeps its history (config only, as supervisorctl).
    pub history_file: Option<PathBuf>,
    /// Interactive: `-i` or no command; confirmations are asked only then.
    pub interactive: bool,
}

/// Flags given on the command line, before merging.
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    /// `-c FILE`.
    pub configuration: Option<PathBuf>,
    /// `-s URL`.
    pub serverurl: Option<String>,
    /// `-u USER`.
    pub username: Option<String>,
    /// `-p PASSWORD`.
    pub password: Option<String>,
    /// `-i`, or no command given.
    pub interactive: bool,
}

/// Why the options could not be resolved; printed as `Error: <msg>` with exit 2.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct OptionsError(pub String);

impl Options {
    /// Merge flags, the config file (`-c` or the search path) and defaults.
    pub fn resolve(o: &Overrides, argv0: &Path) -> Result<Options, OptionsError> {
        let path = match &o.configuration {
            Some(p) if !p.exists() => {
                return Err(OptionsError(format!("could not find config file {}", p.display())))
            }
            Some(p) => Some(p.clone()),
            None => config::find_config(argv0).ok(),
        };
        let section = match &path {
            Some(p) => Some(
                config::load_ctl_with(p, &Environment::current())
                    .map_err(|e| OptionsError(short_message(&e)))?,
            ),
            None => None,
        };
        let section = section.unwrap_or_else(|| config::CtlConfig {
            prompt: "supervisor".to_string(),
            ..config::CtlConfig::default()
        });
        if let Some(url) = &o.serverurl {
            check_url(url)?;
        }
        Ok(Options {
            serverurl: o
                .serverurl
                .clone()
                .or(section.serverurl)
                .unwrap_or_else(|| DEFAULT_SERVERURL.to_string()),
            username: o.username.clone().or(section.username),
            password: o.password.clone().or(section.password),
            prompt: section.prompt,
            history_file: section.history_file,
            interactive: o.interactive,
        })
    }
}

/// supervisorctl's check of `-s`: a scheme and something after it.
fn check_url(url: &str) -> Result<(), OptionsError> {
    let ok = url
        .split_once(':')
        .map(|(scheme, rest)| {
            !scheme.is_empty()
                && scheme.chars().all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c))
                && !rest.trim_start_matches('/').is_empty()
        })
        .unwrap_or(false);
    if ok {
        Ok(())
    } else {
        Err(OptionsError(format!("invalid value for -s '{url}': value '{url}' is not a URL")))
    }
}

/// The config error's message without file decoration when supervisorctl prints it bare.
fn short_message(e: &config::ConfigError) -> String {
    let full = e.to_string();
    if full.contains(".ini file does not include supervisorctl section") {
        ".ini file does not include supervisorctl section".to_string()
    } else {
        full
    }
}
