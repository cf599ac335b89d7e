//! Entry points: finding the config file, reading it with its includes, and
//! turning every section into the typed [`Config`].

use std::path::{Path, PathBuf};

use super::error::ConfigError;
use super::expand::put;
use super::ini::Ini;
use super::known;
use super::model::*;
use super::parser::Parser;
use super::paths::{existing_directory, existing_dirpath, normalize_path, normpath, py_dirname};
use super::programs::groups_from_parser;
use super::users::{resolve_user, user_group};
use super::values::{self, BadValue};
use super::Environment;

/// corral's own config path, searched before supervisord's list.
pub const CORRAL_CONFIG_PATH: &str = "/etc/corral/corral.conf";

/// The files searched when no `-c` is given, in order: corral's own path,
/// then supervisord's list relative to `argv0` and the working directory.
pub fn default_search_paths(argv0: &Path) -> Vec<PathBuf> {
    let here = py_dirname(&py_dirname(&argv0.to_string_lossy()));
    let join = |tail: &str| -> PathBuf {
        if here.is_empty() {
            PathBuf::from(tail)
        } else if here.ends_with('/') {
            PathBuf::from(format!("{here}{tail}"))
        } else {
            PathBuf::from(format!("{here}/{tail}"))
        }
    };
    vec![
        PathBuf::from(CORRAL_CONFIG_PATH),
        join("etc/supervisord.conf"),
        join("supervisord.conf"),
        PathBuf::from("supervisord.conf"),
        PathBuf::from("etc/supervisord.conf"),
        PathBuf::from("/etc/supervisord.conf"),
        PathBuf::from("/etc/supervisor/supervisord.conf"),
    ]
}

/// The first existing file of [`default_search_paths`], or supervisord's
/// "No config file found at default paths (...)" error.
pub fn find_config(argv0: &Path) -> Result<PathBuf, ConfigError> {
    let paths = default_search_paths(argv0);
    if let Some(p) = paths.iter().find(|p| p.exists()) {
        return Ok(p.clone());
    }
    let list: Vec<String> = paths.iter().map(|p| p.display().to_string()).collect();
    Err(ConfigError::new(format!(
        "No config file found at default paths ({}); use the -c option to specify a config \
         file at a different path",
        list.join(", ")
    )))
}

/// Loads `path` using the process environment and host name.
pub fn load(path: &Path) -> Result<Config, ConfigError> {
    load_with(path, &Environment::current())
}

fn read_text(path: &Path) -> Result<String, ConfigError> {
    if !path.exists() {
        return Err(ConfigError::new(format!("could not find config file {}", path.display())).at(path, None));
    }
    std::fs::read(path).map(|b| String::from_utf8_lossy(&b).into_owned()).map_err(|_| {
        ConfigError::new(format!("could not read config file {}", path.display())).at(path, None)
    })
}

/// Loads `path` with the given environment (variables, host name, cwd).
pub fn load_with(path: &Path, env: &Environment) -> Result<Config, ConfigError> {
    let text = read_text(path)?;
    load_text_with(path, &text, env, &DiskFiles)
}

/// Where `[include] files=` patterns are matched and the included files read.
///
/// [`load_with`] uses [`DiskFiles`]; [`MemoryFiles`] keeps a whole include tree
/// in memory, so a configuration can be loaded without touching the disk.
pub trait IncludeFiles {
    /// The paths matching `pattern` (an absolute glob pattern), in any order.
    fn matching(&self, pattern: &str) -> Vec<String>;
    /// The bytes of `path`; an error skips the file with a warning, as supervisord does.
    fn read(&self, path: &str) -> std::io::Result<Vec<u8>>;
}

/// supervisord's `glob.glob`: `*` never crosses a `/` and never matches a leading dot.
const INCLUDE_GLOB: glob::MatchOptions = glob::MatchOptions {
    case_sensitive: true,
    require_literal_separator: true,
    require_literal_leading_dot: true,
};

/// Include files from the real filesystem.
#[derive(Debug, Clone, Copy, Default)]
pub struct DiskFiles;

impl IncludeFiles for DiskFiles {
    fn matching(&self, pattern: &str) -> Vec<String> {
        match glob::glob_with(pattern, INCLUDE_GLOB) {
            Ok(paths) => paths.filter_map(Result::ok).map(|p| p.to_string_lossy().into_owned()).collect(),
            Err(_) => Vec::new(),
        }
    }

    fn read(&self, path: &str) -> std::io::Result<Vec<u8>> {
        std::fs::read(path)
    }
}

/// Include files held in memory, keyed by absolute path.
///
/// Matching follows [`DiskFiles`] (the directories holding the files exist and
/// match too, and cannot be read), except that a pattern is first normalised
/// lexically, so `a/../b/*.conf` reports `b/x.conf` where the disk reports
/// `a/../b/x.conf`.
#[derive(Debug, Clone, Default)]
pub struct MemoryFiles {
    files: std::collections::BTreeMap<String, Vec<u8>>,
}

impl MemoryFiles {
    /// An empty tree: every include pattern matches nothing.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds (or replaces) the file at `path`, normalised to an absolute path.
    pub fn insert(&mut self, path: impl AsRef<Path>, contents: impl Into<Vec<u8>>) {
        let path = normpath(path.as_ref()).to_string_lossy().into_owned();
        self.files.insert(path, contents.into());
    }
}

impl IncludeFiles for MemoryFiles {
    fn matching(&self, pattern: &str) -> Vec<String> {
        let normal = normpath(Path::new(pattern)).to_string_lossy().into_owned();
        let Ok(pattern) = glob::Pattern::new(&normal) else { return Vec::new() };
        let mut entries = std::collections::BTreeSet::new();
        for file in self.files.keys() {
            entries.insert(file.clone());
            let mut dir = py_dirname(file);
            while entries.insert(dir.clone()) && dir != "/" {
                dir = py_dirname(&dir);
            }
        }
        entries.into_iter().filter(|path| pattern.matches_with(path, INCLUDE_GLOB)).collect()
    }

    fn read(&self, path: &str) -> std::io::Result<Vec<u8>> {
        self.files.get(path).cloned().ok_or_else(|| std::io::Error::from(std::io::ErrorKind::NotFound))
    }
}

/// Loads configuration `text` as if it had been read from `path` (which names it
/// in messages, anchors `%(here)s` and relative includes, and is not read), with
/// `[include]` files taken from `files`.
pub fn load_text_with(
    path: &Path,
    text: &str,
    env: &Environment,
    files: &dyn IncludeFiles,
) -> Result<Config, ConfigError> {
    let display = path.to_string_lossy().into_owned();
    let main_abs = normpath(&env.cwd.join(path));
    let mut ini = Ini::default();
    ini.read(main_abs.clone(), &display, text)
        .map_err(|e| ConfigError::new(e.message).at(path, Some(e.line)))?;
    let mut p = Parser {
        ini,
        env,
        source_names: vec![display],
        environ: env.vars.clone(),
        here_everywhere: false,
        messages: Vec::new(),
    };
    read_includes(&mut p, &main_abs, files)?;

    if !p.ini.has_section("supervisord") {
        return Err(ConfigError::new(".ini file does not include supervisord section").at(path, None));
    }
    let mut supervisord = supervisord_section(&mut p)?;
    let rpcinterfaces = rpcinterfaces(&mut p)?;
    let mut groups = groups_from_parser(&mut p)?;
    for group in &mut groups {
        for proc in &mut group.processes {
            // Not shared yet: make_mut changes it in place.
            let proc = std::sync::Arc::make_mut(proc);
            let mut merged = supervisord.environment.clone();
            for (k, v) in std::mem::take(&mut proc.environment) {
                match merged.iter_mut().find(|(mk, _)| *mk == k) {
                    Some((_, mv)) => *mv = v,
                    None => merged.push((k, v)),
                }
            }
            proc.environment = merged;
        }
    }
    let inet_http_servers = inet_servers(&p)?;
    let unix_http_server = unix_server(&mut p)?;
    // realize(): the daemon's own user is checked after everything else.
    if let Some(v) = p.get("supervisord", "user", &p.env_expansions(), true)? {
        let user = resolve_user(&v.text).map_err(|b| p.bad_value("supervisord", "user", &v.text, b))?;
        supervisord.user = Some(user);
    }
    let serverurl = auto_serverurl(unix_http_server.as_ref(), &inet_http_servers);
    let supervisorctl =
        if p.ini.has_section("supervisorctl") { Some(ctl_section(&p, "supervisorctl")?) } else { None };
    warn_unknown(&mut p);
    Ok(Config {
        source: main_abs,
        supervisord,
        unix_http_server,
        inet_http_servers,
        supervisorctl,
        rpcinterfaces,
        groups,
        serverurl,
        messages: p.messages,
    })
}

/// The URL children get in `SUPERVISOR_SERVER_URL` when `serverurl=AUTO`.
fn auto_serverurl(unix: Option<&UnixHttpServerConfig>, inet: &[InetHttpServerConfig]) -> Option<String> {
    if let Some(u) = unix {
        return Some(format!("unix://{}", u.file.display()));
    }
    // supervisord keeps the last inet server it iterates over.
    inet.last().map(|s| {
        let host = if s.host.is_empty() { "localhost" } else { &s.host };
        format!("http://{host}:{}", s.port)
    })
}

fn read_includes(p: &mut Parser, main_abs: &Path, files_from: &dyn IncludeFiles) -> Result<(), ConfigError> {
    if !p.ini.has_section("include") {
        return Ok(());
    }
    p.here_everywhere = true;
    let mut exp = p.env_expansions();
    put(&mut exp, "host_node_name", p.env.host_node_name.clone());
    let Some(files) = p.get("include", "files", &exp, true)? else {
        return Err(p.error_at_section("include", ".ini file has [include] section, but no files setting"));
    };
    let base = main_abs.parent().map(Path::to_path_buf).unwrap_or_else(|| PathBuf::from("/"));
    for pattern in files.text.split_whitespace() {
        let full = base.join(pattern).to_string_lossy().into_owned();
        let mut matches = files_from.matching(&full);
        if matches.is_empty() {
            p.warn(format!("No file matches via include \"{full}\""));
            continue;
        }
        matches.sort();
        for filename in matches {
            p.info(format!("Included extra file \"{filename}\" during parsing"));
            let Ok(bytes) = files_from.read(&filename) else {
                // Python's RawConfigParser.read skips files it cannot open.
                p.warn(format!("could not read included file \"{filename}\"; skipped"));
                continue;
            };
            let text = String::from_utf8_lossy(&bytes);
            let path = normpath(Path::new(&filename));
            p.ini
                .read(path, &filename, &text)
                .map_err(|e| ConfigError::new(e.message).at(&filename, Some(e.line)))?;
            p.source_names.push(filename);
        }
    }
    Ok(())
}

fn supervisord_section(p: &mut Parser) -> Result<SupervisordConfig, ConfigError> {
    const S: &str = "supervisord";
    let env = p.env;
    let exp = p.env_expansions();
    let minfds = p.convert(S, "minfds", &exp, true, "1024", values::unsigned::<u64>)?;
    let minprocs = p.convert(S, "minprocs", &exp, true, "200", values::unsigned::<u64>)?;
    let directory =
        p.convert_opt(S, "directory", &exp, true, |v| existing_directory(v, env))?.map(PathBuf::from);
    // `user` is resolved last, as supervisord's realize() does.
    let umask = p.convert(S, "umask", &exp, true, "022", values::octal)?;
    let logfile = p.convert(S, "logfile", &exp, true, "supervisord.log", |v| existing_dirpath(v, env))?;
    let logfile_maxbytes = p.convert(S, "logfile_maxbytes", &exp, true, "50MB", values::byte_size)?;
    let logfile_backups = p.convert(S, "logfile_backups", &exp, true, "10", values::unsigned::<u32>)?;
    let loglevel = p.convert(S, "loglevel", &exp, true, "info", values::logging_level)?;
    let pidfile = p.convert(S, "pidfile", &exp, true, "supervisord.pid", |v| existing_dirpath(v, env))?;
    let identifier =
        p.get(S, "identifier", &exp, true)?.map(|v| v.text).unwrap_or_else(|| "supervisor".to_string());
    let nodaemon = p.convert(S, "nodaemon", &exp, true, "false", values::boolean)?;
    let silent = p.convert(S, "silent", &exp, true, "false", values::boolean)?;
    let tempdir = env.temp_dir();
    let childlogdir = p.convert(S, "childlogdir", &exp, true, &tempdir, |v| existing_directory(v, env))?;
    let nocleanup = p.convert(S, "nocleanup", &exp, true, "false", values::boolean)?;
    let strip_ansi = p.convert(S, "strip_ansi", &exp, true, "false", values::boolean)?;
    let mut env_exp = exp.clone();
    put(&mut env_exp, "host_node_name", env.host_node_name.clone());
    let environment = p.convert(S, "environment", &env_exp, true, "", values::key_value_pairs)?;
    for (k, v) in &environment {
        p.environ.insert(k.clone(), v.clone());
    }
    let cgroup_root = p.convert_opt(S, "cgroup_root", &exp, true, |v| {
        if v.starts_with('/') {
            Ok(normpath(Path::new(v)))
        } else {
            Err(BadValue::new(
                format!("cgroup_root {v} is not an absolute path"),
                "an absolute path such as /sys/fs/cgroup/corral",
            ))
        }
    })?;
    let adopt_orphans = p.convert(S, "adopt_orphans", &exp, true, "false", values::boolean)?;
    let logfile =
        if logfile == "syslog" { MainLog::Syslog } else { MainLog::File(normalize_path(&logfile, env)) };
    Ok(SupervisordConfig {
        logfile,
        logfile_maxbytes,
        logfile_backups,
        loglevel,
        pidfile: normalize_path(&pidfile, env),
        umask,
        nodaemon,
        silent,
        minfds,
        minprocs,
        nocleanup,
        childlogdir: PathBuf::from(childlogdir),
        user: None,
        directory,
        strip_ansi,
        environment,
        identifier,
        cgroup_root,
        adopt_orphans,
    })
}

fn rpcinterfaces(p: &mut Parser) -> Result<Vec<RpcInterfaceConfig>, ConfigError> {
    const KEY: &str = "supervisor.rpcinterface_factory";
    const MAIN: &str = "supervisor.rpcinterface:make_main_rpcinterface";
    let mut out = Vec::new();
    let sections: Vec<String> =
        p.ini.sections.iter().map(|s| s.name.clone()).filter(|n| n.starts_with("rpcinterface:")).collect();
    for section in sections {
        let name = section["rpcinterface:".len()..].to_string();
        let exp = p.env_expansions();
        let Some(factory) = p.get(&section, KEY, &exp, false)? else {
            return Err(p.error_at_section(&section, format!("section [{section}] does not specify a {KEY}")));
        };
        if factory.text.trim() != MAIN {
            p.warn(format!(
                "[{section}] names factory {} which corral does not provide; the '{name}' \
                 namespace will not be available",
                factory.text
            ));
        }
        out.push(RpcInterfaceConfig { name, factory: factory.text.trim().to_string() });
    }
    Ok(out)
}

fn credentials(p: &Parser, section: &str) -> Result<Option<Credentials>, ConfigError> {
    let exp = p.env_expansions();
    let username = p.get(section, "username", &exp, false)?.map(|v| v.text);
    let password = p.get(section, "password", &exp, false)?.map(|v| v.text);
    match (username, password) {
        (None, None) => Ok(None),
        (Some(username), Some(password)) => Ok(Some(Credentials { username, password })),
        (u, _) => {
            let missing = if u.is_none() { "username" } else { "password" };
            Err(p
                .error_at_section(
                    section,
                    format!(
                        "Section [{section}] contains incomplete authentication: If a username \
                         or a password is specified, both the username and password must be \
                         specified"
                    ),
                )
                .option(missing))
        }
    }
}

/// corral's `metrics_auth=` (default true): `false` lets `/metrics` scrapers in without credentials.
fn metrics_auth(p: &Parser, section: &str) -> Result<bool, ConfigError> {
    Ok(p.convert_raw_opt(section, "metrics_auth", values::boolean)?.unwrap_or(true))
}

fn server_sections(p: &Parser, prefix: &str) -> Vec<String> {
    p.ini.sections.iter().map(|s| s.name.clone()).filter(|n| n.starts_with(prefix)).collect()
}

fn inet_servers(p: &Parser) -> Result<Vec<InetHttpServerConfig>, ConfigError> {
    let mut out = Vec::new();
    for section in server_sections(p, "inet_http_server") {
        let auth = credentials(p, &section)?;
        let exp = p.env_expansions();
        let Some(port) = p.get(&section, "port", &exp, false)? else {
            return Err(p.error_at_section(&section, format!("section [{section}] has no port value")));
        };
        let (host, port) =
            values::inet_address(&port.text).map_err(|b| p.bad_value(&section, "port", &port.text, b))?;
        let metrics_auth = metrics_auth(p, &section)?;
        out.push(InetHttpServerConfig { section, host, port, auth, metrics_auth });
    }
    Ok(out)
}

fn unix_server(p: &mut Parser) -> Result<Option<UnixHttpServerConfig>, ConfigError> {
    let mut out: Option<UnixHttpServerConfig> = None;
    for section in server_sections(p, "unix_http_server") {
        let exp = p.env_expansions();
        let Some(file) = p.get(&section, "file", &exp, true)? else {
            return Err(p.error_at_section(&section, format!("section [{section}] has no file value")));
        };
        let file = normalize_path(file.text.trim(), p.env);
        let auth = credentials(p, &section)?;
        let chown = match p.get(&section, "chown", &exp, false)? {
            None => None,
            Some(v) => Some(user_group(&v.text).map_err(|_| {
                p.bad_value(
                    &section,
                    "chown",
                    &v.text,
                    BadValue::new(
                        format!("Invalid sockchown value {}", v.text),
                        "user or user:group (names or ids)",
                    ),
                )
            })?),
        };
        let chmod = match p.get(&section, "chmod", &exp, false)? {
            None => 0o700,
            Some(v) => values::octal(&v.text).map_err(|_| {
                p.bad_value(
                    &section,
                    "chmod",
                    &v.text,
                    BadValue::new(format!("Invalid chmod value {}", v.text), "an octal mode such as 0700"),
                )
            })?,
        };
        let metrics_auth = metrics_auth(p, &section)?;
        let config = UnixHttpServerConfig { file, chmod, chown, auth, metrics_auth };
        if out.is_none() {
            out = Some(config);
        } else {
            p.warn(format!("section [{section}] ignored: corral serves only the first unix_http_server"));
        }
    }
    Ok(out)
}

/// Reads `[supervisorctl]` as supervisorctl does.
fn ctl_section(p: &Parser, section: &str) -> Result<CtlConfig, ConfigError> {
    let exp = p.env_expansions();
    let serverurl = match p.get(section, "serverurl", &exp, true)? {
        Some(v) => v.text,
        None => "http://localhost:9001".to_string(),
    };
    let serverurl = match serverurl.strip_prefix("unix://") {
        Some(path) => format!("unix://{}", normalize_path(path, p.env).display()),
        None => serverurl,
    };
    let history_file = p
        .get(section, "history_file", &exp, true)?
        .map(|v| v.text)
        .filter(|h| !h.is_empty())
        .map(|h| normalize_path(&h, p.env));
    Ok(CtlConfig {
        serverurl: Some(serverurl),
        username: p.get(section, "username", &exp, false)?.map(|v| v.text),
        password: p.get(section, "password", &exp, false)?.map(|v| v.text),
        prompt: p
            .get(section, "prompt", &exp, false)?
            .map(|v| v.text)
            .unwrap_or_else(|| "supervisor".to_string()),
        history_file,
    })
}

/// Loads only the `[supervisorctl]` section of `path`, as supervisorctl does
/// (no `[supervisord]` needed, `[include]` ignored).
pub fn load_ctl_with(path: &Path, env: &Environment) -> Result<CtlConfig, ConfigError> {
    let text = read_text(path)?;
    let display = path.to_string_lossy().into_owned();
    let main_abs = normpath(&env.cwd.join(path));
    let mut ini = Ini::default();
    ini.read(main_abs, &display, &text).map_err(|e| ConfigError::new(e.message).at(path, Some(e.line)))?;
    let p = Parser {
        ini,
        env,
        source_names: vec![display],
        environ: env.vars.clone(),
        here_everywhere: false,
        messages: Vec::new(),
    };
    if !p.ini.has_section("supervisorctl") {
        return Err(ConfigError::new(".ini file does not include supervisorctl section").at(path, None));
    }
    ctl_section(&p, "supervisorctl")
}

fn warn_unknown(p: &mut Parser) {
    let limits = known::LIMIT_OPTIONS;
    let program = known::PROGRAM_OPTIONS;
    let names: Vec<String> = p.ini.sections.iter().map(|s| s.name.clone()).collect();
    for name in names {
        let lists: &[&[&str]] = match name.as_str() {
            "supervisord" => &[known::SUPERVISORD_OPTIONS],
            "supervisorctl" => &[known::CTL_OPTIONS],
            "include" => &[known::INCLUDE_OPTIONS],
            n if n.starts_with("program:") => &[program, limits],
            n if n.starts_with("eventlistener:") => &[program, limits, known::EVENTLISTENER_OPTIONS],
            n if n.starts_with("fcgi-program:") => &[program, limits, known::FCGI_OPTIONS],
            n if n.starts_with("group:") => &[known::GROUP_OPTIONS, limits],
            n if n.starts_with("unix_http_server") => &[known::UNIX_SERVER_OPTIONS],
            n if n.starts_with("inet_http_server") => &[known::INET_SERVER_OPTIONS],
            n if n.starts_with("rpcinterface:") || n.starts_with("ctlplugin:") => continue,
            _ => {
                let (file, line) = match p.ini.section(&name) {
                    Some(s) => (p.ini.files[s.file].display().to_string(), s.line),
                    None => continue,
                };
                p.warn(format!("{file}:{line}: unknown section [{name}] is ignored"));
                continue;
            }
        };
        p.warn_unknown_options(&name, lists);
    }
}
