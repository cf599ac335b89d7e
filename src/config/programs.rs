//! Program-type sections (`[program:x]`, `[eventlistener:x]`,
//! `[fcgi-program:x]`) and `[group:x]` → process groups, in supervisord's
//! order of evaluation so the first error reported is the same one.

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::Arc;

use super::error::ConfigError;
use super::expand::{expand, put, Expansions};
use super::known::EVENT_TYPES;
use super::model::*;
use super::parser::Parser;
use super::paths::{existing_dirpath, normalize_path};
use super::pyfmt::{py_repr, PyValue};
use super::users::{resolve_user, user_group};
use super::values::{self, BadValue, ValueResult};

const DEFAULT_RESULT_HANDLER: &str = "supervisor.dispatchers:default_handler";

fn sections_with(p: &Parser, prefix: &str) -> Vec<String> {
    p.ini.sections.iter().map(|s| s.name.clone()).filter(|n| n.starts_with(prefix)).collect()
}

fn shared(processes: Vec<ProcessConfig>) -> Vec<Arc<ProcessConfig>> {
    // Not `collect()`: it would reuse the old buffer, a ProcessConfig per pointer.
    let mut out = Vec::with_capacity(processes.len());
    out.extend(processes.into_iter().map(Arc::new));
    out
}

fn suffix_of(section: &str) -> &str {
    section.split_once(':').map(|(_, n)| n).unwrap_or("")
}

/// Builds every process group, sorted by (priority, name).
pub fn groups_from_parser(p: &mut Parser) -> Result<Vec<GroupConfig>, ConfigError> {
    let all: HashSet<String> = p.ini.sections.iter().map(|s| s.name.clone()).collect();
    let mut groups = Vec::new();
    let mut grouped: HashSet<String> = HashSet::new();

    for section in sections_with(p, "group:") {
        let exp = p.env_expansions();
        let name = values::process_or_group_name(suffix_of(&section))
            .map_err(|b| p.error_at_section(&section, b.message))?;
        let programs = p
            .get(&section, "programs", &exp, true)?
            .map(|v| values::list_of_strings(&v.text))
            .unwrap_or_default();
        let priority = p.convert(&section, "priority", &exp, true, "999", values::int32)?;
        let mut processes = Vec::new();
        // supervisord reuses its `section` variable for each listed program,
        // so later messages name the previous program's section; kept as is.
        let mut named_section = section.clone();
        for program in programs {
            let prog = format!("program:{program}");
            let fcgi = format!("fcgi-program:{program}");
            let target = match (all.contains(&prog), all.contains(&fcgi)) {
                (false, false) => {
                    return Err(p.error_at(
                        &section,
                        "programs",
                        format!("[{named_section}] names unknown program or fcgi-program {program}"),
                    ))
                }
                (true, true) => {
                    return Err(p.error_at(
                        &section,
                        "programs",
                        format!(
                            "[{named_section}] name {program} is ambiguous (exists as program and \
                             fcgi-program)"
                        ),
                    ))
                }
                (true, false) => prog,
                (false, true) => fcgi,
            };
            grouped.insert(target.clone());
            named_section = target.clone();
            // Like supervisord, a grouped fcgi-program runs as a plain program.
            processes.extend(processes_from_section(p, &target, &name)?);
        }
        let limits = parse_limits(p, &section)?;
        sort_processes(&mut processes);
        groups.push(GroupConfig {
            name,
            priority,
            kind: GroupKind::Program,
            processes: shared(processes),
            limits,
        });
    }

    for section in sections_with(p, "program:") {
        if grouped.contains(&section) {
            continue;
        }
        let exp = p.env_expansions();
        let name = values::process_or_group_name(suffix_of(&section))
            .map_err(|b| p.error_at_section(&section, b.message))?;
        let priority = p.convert(&section, "priority", &exp, true, "999", values::int32)?;
        let processes = processes_from_section(p, &section, &name)?;
        groups.push(GroupConfig {
            name,
            priority,
            kind: GroupKind::Program,
            processes: shared(processes),
            limits: Limits::default(),
        });
    }

    for section in sections_with(p, "eventlistener:") {
        groups.push(event_listener_pool(p, &section)?);
    }

    for section in sections_with(p, "fcgi-program:") {
        if grouped.contains(&section) {
            continue;
        }
        groups.push(fcgi_group(p, &section)?);
    }

    // A stable sort keeps file order for equal (priority, name), as Python's.
    groups.sort_by(|a, b| (a.priority, a.name.as_bytes()).cmp(&(b.priority, b.name.as_bytes())));
    check_dependencies(p, &groups)?;
    Ok(groups)
}

/// corral `requires=`/`after=`: every name must exist and the programs must
/// not depend on each other in a circle.
fn check_dependencies(p: &Parser, groups: &[GroupConfig]) -> Result<(), ConfigError> {
    // One node per section (a numprocs program is one node), in file-independent order.
    let mut nodes: Vec<(&str, &ProcessConfig)> = Vec::new();
    let mut seen: HashSet<&str> = HashSet::new();
    for g in groups {
        for proc in &g.processes {
            if seen.insert(&proc.section) {
                nodes.push((&g.name, proc));
            }
        }
    }
    if nodes.iter().all(|(_, n)| n.requires.is_empty() && n.after.is_empty()) {
        return Ok(());
    }
    for (_, proc) in &nodes {
        for (option, deps) in [("requires", &proc.requires), ("after", &proc.after)] {
            for dep in deps {
                let known = match dep {
                    Dependency::Program(_) => nodes.iter().any(|(g, n)| dep.matches(g, n)),
                    Dependency::Group(name) => groups.iter().any(|g| g.name == *name),
                };
                if !known {
                    let what = match dep {
                        Dependency::Program(_) => "program",
                        Dependency::Group(_) => "group",
                    };
                    return Err(p
                        .error_at(&proc.section, option, format!("{option}= names unknown {what} {dep}"))
                        .invalid(dep.to_string(), format!("the name of a {what} in this configuration")));
                }
            }
        }
    }
    // Edges from a node to the nodes it depends on, with the option that made each.
    let edges: Vec<Vec<(usize, &str)>> = nodes
        .iter()
        .map(|(_, proc)| {
            let mut out = Vec::new();
            for (option, deps) in [("requires", &proc.requires), ("after", &proc.after)] {
                for dep in deps {
                    for (j, (g, n)) in nodes.iter().enumerate() {
                        if dep.matches(g, n) && !out.iter().any(|(k, _)| *k == j) {
                            out.push((j, option));
                        }
                    }
                }
            }
            out
        })
        .collect();
    if let Some(cycle) = find_cycle(&edges) {
        let names: Vec<&str> = cycle
            .iter()
            .map(|&i| nodes[i].1.program.as_str())
            .chain([nodes[cycle[0]].1.program.as_str()])
            .collect();
        let first = nodes[cycle[0]].1;
        let option = edges[cycle[0]]
            .iter()
            .find(|(j, _)| *j == cycle[1 % cycle.len()])
            .map(|(_, o)| *o)
            .unwrap_or("requires");
        return Err(p.error_at(&first.section, option, format!("dependency cycle: {}", names.join(" -> "))));
    }
    Ok(())
}

/// The first cycle found by a depth-first search, as the nodes along it.
fn find_cycle(edges: &[Vec<(usize, &str)>]) -> Option<Vec<usize>> {
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        New,
        OnPath,
        Done,
    }
    fn visit(
        i: usize,
        edges: &[Vec<(usize, &str)>],
        marks: &mut [Mark],
        path: &mut Vec<usize>,
    ) -> Option<Vec<usize>> {
        marks[i] = Mark::OnPath;
        path.push(i);
        for &(j, _) in &edges[i] {
            match marks[j] {
                Mark::OnPath => {
                    let start = path.iter().position(|&k| k == j).unwrap_or(0);
                    return Some(path[start..].to_vec());
                }
                Mark::New => {
                    if let Some(c) = visit(j, edges, marks, path) {
                        return Some(c);
                    }
                }
                Mark::Done => {}
            }
        }
        path.pop();
        marks[i] = Mark::Done;
        None
    }
    let mut marks = vec![Mark::New; edges.len()];
    for i in 0..edges.len() {
        if marks[i] == Mark::New {
            if let Some(c) = visit(i, edges, &mut marks, &mut Vec::new()) {
                return Some(c);
            }
        }
    }
    None
}

fn sort_processes(processes: &mut [ProcessConfig]) {
    processes.sort_by(|a, b| (a.priority, a.name.as_bytes()).cmp(&(b.priority, b.name.as_bytes())));
}

fn event_listener_pool(p: &mut Parser, section: &str) -> Result<GroupConfig, ConfigError> {
    let exp = p.env_expansions();
    let name = suffix_of(section).to_string();
    // Listeners start first and stop last unless told otherwise.
    let priority = p.convert(section, "priority", &exp, true, "-1", values::int32)?;
    let buffer_size = p.convert(section, "buffer_size", &exp, true, "10", values::integer)?;
    if buffer_size < 1 {
        return Err(p
            .error_at(
                section,
                "buffer_size",
                format!("[{section}] section sets invalid buffer_size ({buffer_size})"),
            )
            .invalid(buffer_size.to_string(), "an integer of at least 1"));
    }
    let result_handler = p
        .get(section, "result_handler", &exp, true)?
        .map(|v| v.text)
        .unwrap_or_else(|| DEFAULT_RESULT_HANDLER.to_string());
    if result_handler != DEFAULT_RESULT_HANDLER {
        p.warn(format!(
            "[{section}] result_handler {result_handler} is not available in corral; \
             supervisord's default handler is used"
        ));
    }
    let events_raw = p.get(section, "events", &exp, true)?.map(|v| v.text).unwrap_or_default();
    let mut events: Vec<String> = Vec::new();
    for e in values::list_of_strings(&events_raw) {
        let e = e.to_uppercase();
        if !events.contains(&e) {
            events.push(e);
        }
    }
    if events.is_empty() {
        return Err(p.error_at(
            section,
            "events",
            format!("[{section}] section requires an \"events\" line"),
        ));
    }
    for e in &events {
        if !EVENT_TYPES.contains(&e.as_str()) {
            return Err(p
                .error_at(section, "events", format!("Unknown event type {e} in [{section}] events"))
                .invalid(e.clone(), "event type names such as PROCESS_STATE or TICK_60"));
        }
    }
    let redirect = p.convert(section, "redirect_stderr", &exp, true, "false", values::boolean)?;
    if redirect {
        return Err(p.error_at(
            section,
            "redirect_stderr",
            format!(
                "[{section}] section sets redirect_stderr=true but this is not allowed because it \
                 will interfere with the eventlistener protocol"
            ),
        ));
    }
    let mut processes = processes_from_section(p, section, &name)?;
    sort_processes(&mut processes);
    Ok(GroupConfig {
        name,
        priority,
        kind: GroupKind::EventListener(EventListenerConfig {
            events,
            buffer_size: buffer_size as usize,
            result_handler,
        }),
        processes: shared(processes),
        limits: Limits::default(),
    })
}

fn fcgi_group(p: &mut Parser, section: &str) -> Result<GroupConfig, ConfigError> {
    let exp = p.env_expansions();
    let name = values::process_or_group_name(suffix_of(section))
        .map_err(|b| p.error_at_section(section, b.message))?;
    let priority = p.convert(section, "priority", &exp, true, "999", values::int32)?;
    let proc_uid = p.convert_opt(section, "user", &exp, true, resolve_user)?.map(|u| u.uid);
    let socket_backlog = match p.get(section, "socket_backlog", &exp, true)? {
        None => None,
        Some(v) => {
            let n =
                values::integer(&v.text).map_err(|b| p.bad_value(section, "socket_backlog", &v.text, b))?;
            if !(1..=65535).contains(&n) {
                return Err(p
                    .error_at(section, "socket_backlog", format!("Invalid socket_backlog value {n}"))
                    .invalid(v.text, "an integer between 1 and 65535"));
            }
            Some(n as u32)
        }
    };
    let socket_owner = match p.get(section, "socket_owner", &exp, true)? {
        None => None,
        Some(v) => Some(user_group(&v.text).map_err(|_| {
            p.error_at(section, "socket_owner", format!("Invalid socket_owner value {}", v.text))
                .invalid(v.text.clone(), "user or user:group (names or ids)")
        })?),
    };
    let socket_mode = match p.get(section, "socket_mode", &exp, true)? {
        None => None,
        Some(v) => Some(values::octal(&v.text).map_err(|_| {
            p.error_at(section, "socket_mode", format!("Invalid socket_mode value {}", v.text))
                .invalid(v.text.clone(), "an octal mode such as 0700")
        })?),
    };
    let mut sock_exp = exp.clone();
    put(&mut sock_exp, "program_name", name.clone());
    let socket = p.get(section, "socket", &sock_exp, true)?.map(|v| v.text).unwrap_or_default();
    if socket.is_empty() {
        return Err(p.error_at(section, "socket", format!("[{section}] section requires a \"socket\" line")));
    }
    let config = parse_fcgi_socket(p, &socket, proc_uid, socket_owner, socket_mode, socket_backlog)
        .map_err(|m| p.error_at(section, "socket", format!("{m} in [{section}] socket")))?;
    let processes = processes_from_section(p, section, &name)?;
    Ok(GroupConfig {
        name,
        priority,
        kind: GroupKind::Fcgi(config),
        processes: shared(processes),
        limits: Limits::default(),
    })
}

/// supervisord's `parse_fcgi_socket`, including the tuple-shaped messages
/// its two-argument `ValueError`s produce.
fn parse_fcgi_socket(
    p: &Parser,
    sock: &str,
    proc_uid: Option<u32>,
    socket_owner: Option<(u32, Option<u32>)>,
    socket_mode: Option<u32>,
    socket_backlog: Option<u32>,
) -> Result<FcgiConfig, String> {
    if let Some(path) = sock.strip_prefix("unix://") {
        if !path.starts_with('/') {
            return Err(format!("('Unix socket path %s is not an absolute path', {})", py_repr(path)));
        }
        let path = normalize_path(path, p.env);
        let owner = socket_owner.or_else(|| {
            let me = nix::unistd::getuid().as_raw();
            let uid = proc_uid.filter(|u| *u != me)?;
            let gid = nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(uid))
                .ok()
                .flatten()
                .map(|u| u.gid.as_raw());
            Some((uid, gid))
        });
        return Ok(FcgiConfig {
            socket: format!("unix://{}", path.display()),
            socket_backlog,
            socket_owner: owner,
            socket_mode: socket_mode.unwrap_or(0o700),
        });
    }
    if socket_owner.is_some() || socket_mode.is_some() {
        return Err(
            "socket_owner and socket_mode params should only be used with a Unix domain socket".to_string()
        );
    }
    let bad = || format!("('Bad socket format %s', {})", py_repr(sock));
    let rest = sock.strip_prefix("tcp://").ok_or_else(bad)?;
    let (host, port) = rest.rsplit_once(':').ok_or_else(bad)?;
    if host.is_empty()
        || host.contains(|c: char| c == ':' || c.is_whitespace())
        || port.is_empty()
        || !port.chars().all(|c| c.is_ascii_digit())
    {
        return Err(bad());
    }
    let port: u64 = port.parse().map_err(|_| bad())?;
    if port < 1 {
        return Err(format!("{port} is below lower bound (1)"));
    }
    if port > 65535 {
        return Err(format!("{port} is above upper bound (65535)"));
    }
    Ok(FcgiConfig {
        socket: format!("tcp://{}:{port}", host.to_lowercase()),
        socket_backlog,
        socket_owner: None,
        socket_mode: 0o700,
    })
}

/// Wraps a value parser so its message names the option (corral's options
/// have no supervisord text to match).
fn named<T>(option: &'static str, parse: impl Fn(&str) -> ValueResult<T>) -> impl Fn(&str) -> ValueResult<T> {
    move |v| {
        parse(v).map_err(|b| BadValue::new(format!("invalid '{option}' value {}", py_repr(v)), b.expected))
    }
}

/// corral's cgroup limit options of a program-type or `[group:x]` section.
///
/// These options are new, so no existing file depends on their `%`
/// handling; they are read without expansion so that `cpu_quota=150%`
/// works as written (`150%%` is accepted too).
fn parse_limits(p: &Parser, section: &str) -> Result<Limits, ConfigError> {
    let size = |opt: &'static str| -> Result<Option<u64>, ConfigError> {
        Ok(p.convert_raw_opt(section, opt, named(opt, values::memory_size))?.flatten())
    };
    Ok(Limits {
        memory_max: size("memory_max")?,
        memory_high: size("memory_high")?,
        memory_swap_max: size("memory_swap_max")?,
        cpu_quota: p.convert_raw_opt(section, "cpu_quota", named("cpu_quota", values::cpu_quota))?,
        cpu_weight: p.convert_raw_opt(section, "cpu_weight", named("cpu_weight", values::weight))?,
        tasks_max: p.convert_raw_opt(section, "tasks_max", named("tasks_max", values::tasks_max))?.flatten(),
        io_weight: p.convert_raw_opt(section, "io_weight", named("io_weight", values::weight))?,
    })
}

/// supervisord's `processes_from_section`: errors get the
/// ` in section '<section>' (file: '<file>')` suffix.
fn processes_from_section(
    p: &mut Parser,
    section: &str,
    group_name: &str,
) -> Result<Vec<ProcessConfig>, ConfigError> {
    let file = p.ini.section(section).map(|s| p.source_names[s.file].clone()).unwrap_or_default();
    process_section(p, section, group_name).map_err(|e| e.in_section(section, &file))
}

fn process_section(
    p: &mut Parser,
    section: &str,
    group_name: &str,
) -> Result<Vec<ProcessConfig>, ConfigError> {
    let program_name = values::process_or_group_name(suffix_of(section))
        .map_err(|b| p.error_at_section(section, b.message))?;
    let mut common = p.env_expansions();
    put(&mut common, "program_name", program_name.clone());
    put(&mut common, "host_node_name", p.env.host_node_name.clone());
    put(&mut common, "group_name", group_name);
    let exp = &common;
    let s = section;

    let priority = p.convert(s, "priority", exp, true, "999", values::int32)?;
    let autostart = p.convert(s, "autostart", exp, true, "true", values::boolean)?;
    let autorestart = p.convert(s, "autorestart", exp, true, "unexpected", values::auto_restart)?;
    let startsecs = p.convert(s, "startsecs", exp, true, "1", values::unsigned::<u64>)?;
    let startretries = p.convert(s, "startretries", exp, true, "3", values::unsigned::<u32>)?;
    let stopsignal = p.convert(s, "stopsignal", exp, true, "TERM", values::signal_number)?;
    let stopwaitsecs = p.convert(s, "stopwaitsecs", exp, true, "10", values::unsigned::<u64>)?;
    let stopasgroup = p.convert(s, "stopasgroup", exp, true, "false", values::boolean)?;
    let killasgroup =
        p.convert(s, "killasgroup", exp, true, if stopasgroup { "true" } else { "false" }, values::boolean)?;
    let exitcodes = p.convert(s, "exitcodes", exp, true, "0", values::exitcodes)?;
    let redirect_stderr = p.convert(s, "redirect_stderr", exp, true, "false", values::boolean)?;
    let numprocs = p.convert(s, "numprocs", exp, true, "1", values::integer)?;
    let numprocs_start = p.convert(s, "numprocs_start", exp, true, "0", values::integer)?;
    let environment_raw = p.get_raw(s, "environment");
    let stdout_cmax = p.convert(s, "stdout_capture_maxbytes", exp, true, "0", values::byte_size)?;
    let stdout_events = p.convert(s, "stdout_events_enabled", exp, true, "false", values::boolean)?;
    let stderr_cmax = p.convert(s, "stderr_capture_maxbytes", exp, true, "0", values::byte_size)?;
    let stderr_events = p.convert(s, "stderr_events_enabled", exp, true, "false", values::boolean)?;
    // None = AUTO (resolved by the caller once the servers are known).
    let serverurl =
        p.get(s, "serverurl", exp, true)?.map(|v| v.text).filter(|u| u.trim().to_uppercase() != "AUTO");
    let user = p.convert_opt(s, "user", exp, true, resolve_user)?;
    let umask = p.convert_opt(s, "umask", exp, true, values::octal)?;
    let process_name_raw = p.get_raw(s, "process_name");
    let process_name_text =
        process_name_raw.as_ref().map(|v| v.text.clone()).unwrap_or_else(|| "%(program_name)s".to_string());
    values::process_or_group_name(&process_name_text)
        .map_err(|b| p.bad_value(s, "process_name", &process_name_text, b))?;
    if numprocs > 1 && !process_name_text.contains("%(process_num)") {
        return Err(p.error_at(
            s,
            "process_name",
            "%(process_num) must be present within process_name when numprocs > 1",
        ));
    }
    if stopasgroup && !killasgroup {
        return Err(p.error_at(s, "killasgroup", "Cannot set stopasgroup=true and killasgroup=false"));
    }
    let kill_mode = p.convert(s, "kill_mode", exp, true, "cgroup", values::kill_mode)?;
    let oom_score_adj =
        p.convert_opt(s, "oom_score_adj", exp, true, named("oom_score_adj", values::oom_score_adj))?;
    let limits = parse_limits(p, s)?;
    let seconds = |v: &str| values::unsigned::<u64>(v);
    let restart = RestartPolicy {
        backoff: p.convert_opt(s, "backoff", exp, true, values::backoff)?,
        // 0 would restart in a tight loop: refused rather than obeyed.
        backoff_max: p.convert_opt(
            s,
            "backoff_max",
            exp,
            true,
            named("backoff_max", values::positive::<u64>),
        )?,
        backoff_reset: p.convert(s, "backoff_reset", exp, true, "60", named("backoff_reset", seconds))?,
        start_limit_burst: p.convert_opt(
            s,
            "start_limit_burst",
            exp,
            true,
            // 0 would send the program to FATAL on its first restart.
            named("start_limit_burst", values::positive::<u32>),
        )?,
        start_limit_interval: p.convert(
            s,
            "start_limit_interval",
            exp,
            true,
            "10",
            named("start_limit_interval", seconds),
        )?,
    };
    // New options, read without `%` expansion like the limits.
    let requires = p.convert_raw_opt(s, "requires", values::dependencies)?.unwrap_or_default();
    let after = p.convert_raw_opt(s, "after", values::dependencies)?.unwrap_or_default();

    let section_file = p.ini.section(s).map(|x| x.file).unwrap_or(0);
    let source_file = p.path_of(section_file);
    // Exactly sized: a ProcessConfig is large and most programs have one process.
    let mut processes = Vec::with_capacity(usize::try_from(numprocs).unwrap_or(1).min(1024));
    for process_num in numprocs_start..numprocs_start.saturating_add(numprocs) {
        let mut exp = common.clone();
        exp.insert("process_num".into(), PyValue::Int(process_num));
        exp.insert("numprocs".into(), PyValue::Int(numprocs));
        let environment = match &environment_raw {
            None => Vec::new(),
            Some(raw) => {
                let mut with_here = exp.clone();
                put(&mut with_here, "here", p.here_of(raw.file));
                let text = expand(&raw.raw, &with_here, "environment")
                    .map_err(|m| p.error_at(s, "environment", m))?;
                values::key_value_pairs(&text).map_err(|b| p.bad_value(s, "environment", &text, b))?
            }
        };
        for (k, v) in &environment {
            put(&mut exp, &format!("ENV_{k}"), v.clone());
        }
        let directory = p.get(s, "directory", &exp, true)?.map(|v| PathBuf::from(v.text));
        let stdout = channel(p, s, "stdout", &exp, stdout_cmax, stdout_events)?;
        let mut stderr = channel(p, s, "stderr", &exp, stderr_cmax, stderr_events)?;
        if redirect_stderr {
            if matches!(stderr.logfile, LogFile::Path(_)) {
                p.warn(format!(
                    "For [{s}], redirect_stderr=true but stderr_logfile has also been set to a \
                     filename, the filename has been ignored"
                ));
            }
            stderr.logfile = LogFile::None;
        }
        let Some(command) = p.get(s, "command", &exp, true)? else {
            return Err(p.error_at_section(s, format!("program section {s} does not specify a command")));
        };
        let health = super::readiness::parse(p, s, &exp)?;
        let name = {
            let mut with_here = exp.clone();
            let here_file = process_name_raw.as_ref().map(|v| v.file).unwrap_or(section_file);
            put(&mut with_here, "here", p.here_of(here_file));
            expand(&process_name_text, &with_here, "process_name")
                .map_err(|m| p.error_at(s, "process_name", m))?
        };
        processes.push(ProcessConfig {
            name,
            program: program_name.clone(),
            section: s.to_string(),
            file: source_file.clone(),
            command: command.text,
            directory,
            umask,
            priority,
            autostart,
            autorestart,
            startsecs,
            startretries,
            exitcodes: exitcodes.clone(),
            stopsignal,
            stopwaitsecs,
            stopasgroup,
            killasgroup,
            user: user.clone(),
            redirect_stderr,
            stdout,
            stderr,
            environment,
            serverurl: serverurl.clone(),
            kill_mode,
            health,
            limits: limits.clone(),
            oom_score_adj,
            restart: restart.clone(),
            requires: requires.clone(),
            after: after.clone(),
        });
    }
    sort_processes(&mut processes);
    Ok(processes)
}

/// One output channel's options (`stdout_*` or `stderr_*`).
fn channel(
    p: &mut Parser,
    s: &str,
    ch: &str,
    exp: &Expansions,
    capture_maxbytes: u64,
    events_enabled: bool,
) -> Result<ChannelConfig, ConfigError> {
    let lf_key = format!("{ch}_logfile");
    let env = p.env;
    // The deprecated `syslog` keyword means "no file, syslog on".
    let mut deprecated_syslog = false;
    let logfile = match p.get(s, &lf_key, exp, true)? {
        None => LogFile::Auto,
        Some(v) => match v.text.to_lowercase().as_str() {
            "none" | "off" => LogFile::None,
            "auto" => LogFile::Auto,
            // corral: lines go to journald (a file named `journal` needs a path: `./journal`).
            "journal" => LogFile::Journal,
            "syslog" => {
                deprecated_syslog = true;
                LogFile::None
            }
            _ => LogFile::Path(PathBuf::from(
                existing_dirpath(&v.text, env).map_err(|b| p.bad_value(s, &lf_key, &v.text, b))?,
            )),
        },
    };
    let backups = p.convert(s, &format!("{ch}_logfile_backups"), exp, true, "10", values::unsigned::<u32>)?;
    let maxbytes = p.convert(s, &format!("{ch}_logfile_maxbytes"), exp, true, "50MB", values::byte_size)?;
    let mut syslog = p.convert(s, &format!("{ch}_syslog"), exp, true, "false", values::boolean)?;
    if deprecated_syslog {
        p.warn(format!(
            "For [{s}], {lf_key}=syslog but this is deprecated and will be removed.  Use \
             {ch}_syslog=true to enable syslog instead."
        ));
        syslog = true;
    }
    if logfile == LogFile::Auto && maxbytes == 0 {
        p.warn(format!(
            "For [{s}], AUTO logging used for {lf_key} without rollover, set maxbytes > 0 to \
             avoid filling up filesystem unintentionally"
        ));
    }
    Ok(ChannelConfig { logfile, maxbytes, backups, capture_maxbytes, events_enabled, syslog })
}
