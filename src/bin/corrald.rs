//! corrald: the corral daemon. Reads a supervisord-format config and supervises its programs.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use anyhow::Context;
use clap::Parser;

use corral::config::{self, Config, MainLog};
use corral::engine::handover::{self, HandOver};
use corral::engine::{Engine, Exit, Handle};
use corral::logs::main_log::{self, MainLogConfig, MainLogHandle};
use corral::notify::Notifier;

/// corrald's command line: supervisord's flags, plus corral's own.
#[derive(Debug, Parser)]
#[command(name = "corrald", version, about = "corral process supervisor daemon (supervisord-compatible)")]
struct Args {
    /// Configuration file (default: /etc/corral/corral.conf, then supervisord's search path).
    #[arg(short = 'c', long = "configuration", value_name = "FILE")]
    configuration: Option<PathBuf>,
    /// Run in the foreground.
    #[arg(short = 'n', long)]
    nodaemon: bool,
    /// In the foreground, do not copy the activity log to stdout.
    #[arg(short = 's', long)]
    silent: bool,
    /// Run as this user (or numeric uid).
    #[arg(short = 'u', long, value_name = "USER")]
    user: Option<String>,
    /// umask for the daemon process when daemonizing (octal).
    #[arg(short = 'm', long, value_name = "UMASK")]
    umask: Option<String>,
    /// Directory to chdir to when daemonizing.
    #[arg(short = 'd', long, value_name = "DIR")]
    directory: Option<PathBuf>,
    /// Activity log file.
    #[arg(short = 'l', long, value_name = "FILE")]
    logfile: Option<PathBuf>,
    /// Rotate the activity log at this size (e.g. 50MB).
    #[arg(short = 'y', long = "logfile_maxbytes", value_name = "BYTES")]
    logfile_maxbytes: Option<String>,
    /// Number of activity log backups.
    #[arg(short = 'z', long = "logfile_backups", value_name = "NUM")]
    logfile_backups: Option<u32>,
    /// Activity log level (critical, error, warn, info, debug, trace, blather).
    #[arg(short = 'e', long, value_name = "LEVEL")]
    loglevel: Option<String>,
    /// Pid file.
    #[arg(short = 'j', long, value_name = "FILE")]
    pidfile: Option<PathBuf>,
    /// Identifier returned by getIdentification.
    #[arg(short = 'i', long, value_name = "STR")]
    identifier: Option<String>,
    /// Directory for AUTO child logs.
    #[arg(short = 'q', long, value_name = "DIR")]
    childlogdir: Option<PathBuf>,
    /// Keep old AUTO child logs at start.
    #[arg(short = 'k', long)]
    nocleanup: bool,
    /// Minimum number of file descriptors.
    #[arg(short = 'a', long, value_name = "NUM")]
    minfds: Option<u64>,
    /// Minimum number of processes.
    #[arg(long, value_name = "NUM")]
    minprocs: Option<u64>,
    /// Strip ANSI escape sequences from child output.
    #[arg(short = 't', long = "strip_ansi")]
    strip_ansi: bool,
    /// Validate the configuration, print the resolved programs and exit (0: valid, 1: invalid).
    #[arg(long = "check-config")]
    check_config: bool,
    /// D-Bus bus to serve org.corral.Corral1 on: system, session or none (default: system when present).
    #[arg(long = "dbus", value_name = "BUS")]
    dbus: Option<corral::dbus::BusChoice>,
    /// D-Bus bus address to serve on instead (e.g. unix:path=/run/my-bus).
    #[arg(long = "dbus-address", value_name = "ADDR")]
    dbus_address: Option<String>,
}

/// The D-Bus flags, handed to `serve`.
#[derive(Debug, Clone)]
struct DbusFlags {
    bus: Option<corral::dbus::BusChoice>,
    address: Option<String>,
}

/// What a re-exec runs: the binary corrald was started from (by path, so an
/// upgraded file is what runs next, see [`started_as`]), the same arguments,
/// the same notify socket.
#[derive(Debug, Clone)]
struct Relaunch {
    binary: Option<PathBuf>,
    argv: Vec<OsString>,
    notify_socket: Option<String>,
}

fn fail(msg: impl std::fmt::Display) -> ExitCode {
    let argv0 = std::env::args().next().unwrap_or_else(|| "corrald".into());
    eprintln!("Error: {msg}");
    eprintln!("For help, use {argv0} -h");
    ExitCode::from(2)
}

/// glibc's allocator tuned for a long-running daemon whose memory is mostly one
/// thread's small records: one arena (a heap per thread that ever answered a large
/// request kept megabytes it never gave back), and large buffers (an XML-RPC answer
/// listing thousands of processes) mapped on their own and returned when freed,
/// instead of the threshold growing until they stay in the heap.
fn tune_malloc() {
    #[cfg(target_env = "gnu")]
    // SAFETY: mallopt only sets allocator parameters; called before other threads exist.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 1);
        libc::mallopt(libc::M_MMAP_THRESHOLD, 128 * 1024);
        libc::mallopt(libc::M_TRIM_THRESHOLD, 128 * 1024);
    }
}

fn main() -> ExitCode {
    // A re-exec left its state and descriptors; take them before anything opens more.
    let inherited = match HandOver::from_env() {
        Ok(h) => h,
        Err(e) => {
            // Unreadable (another version's format): the programs are treated as after
            // a crash, and the inherited listeners must not make the socket look taken.
            eprintln!("corrald: {e}; starting afresh");
            handover::close_inherited();
            None
        }
    };
    tune_malloc();
    // Low in the descriptor table, before logs and sockets open: see spawn::child::lanes.
    corral::spawn::child::reserve_slots();
    // First, while there is one thread: programs must not inherit systemd's notify socket.
    let notify_socket = std::env::var("NOTIFY_SOCKET").ok().filter(|s| !s.is_empty());
    let notifier = match Notifier::take_from_env() {
        Ok(n) => n,
        Err(e) => {
            eprintln!("corrald: {e}");
            None
        }
    };
    let relaunch = Relaunch { binary: started_as(), argv: std::env::args_os().collect(), notify_socket };
    let args = Args::parse();
    let argv0 = std::env::args_os().next().map(PathBuf::from).unwrap_or_else(|| PathBuf::from("corrald"));
    let path = match &args.configuration {
        Some(p) if !p.exists() => return fail(format!("could not find config file {}", p.display())),
        Some(p) => p.clone(),
        None => match config::find_config(&argv0) {
            Ok(p) => p,
            Err(e) => return fail(e),
        },
    };
    let mut cfg = match config::load(&path) {
        Ok(c) => c,
        Err(e) if args.check_config => {
            eprintln!("{e}");
            return ExitCode::from(1);
        }
        Err(e) => return fail(e),
    };
    if let Err(e) = apply_overrides(&mut cfg, &args) {
        return fail(e);
    }
    if args.check_config {
        // Limits this host cannot enforce make the file invalid here.
        if let Err(e) = corral::engine::check_limits(open_cgroups(&cfg).as_ref(), &cfg) {
            eprintln!("{e}");
            return ExitCode::from(1);
        }
        print!("{}", config::describe(&cfg));
        return ExitCode::SUCCESS;
    }
    let dbus = DbusFlags { bus: args.dbus, address: args.dbus_address.clone() };
    match run(cfg, path, dbus, notifier, relaunch, inherited) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("Error: {e:#}");
            ExitCode::from(2)
        }
    }
}

/// The path a re-exec runs: the one corrald was started as (`argv[0]`: absolute,
/// relative to the working directory at start, or found on `PATH`), as long as it
/// leads to the binary running now. It is kept as given, symlinks and all, so an
/// upgrade that switches a symlink (`/opt/corral/current -> v2`) runs the new
/// target. Otherwise (an `argv[0]` that names something else) `current_exe()`,
/// which is the running file with every symlink resolved.
fn started_as() -> Option<PathBuf> {
    let exe = std::env::current_exe().ok();
    let argv0 = std::env::args_os().next().map(PathBuf::from);
    let cwd = std::env::current_dir().ok();
    let path = std::env::var_os("PATH");
    let given = argv0.and_then(|a| resolve_argv0(&a, cwd.as_deref(), path.as_deref()));
    match (given, exe) {
        (Some(given), Some(exe)) if std::fs::canonicalize(&given).is_ok_and(|c| c == exe) => Some(given),
        (_, exe) => exe,
    }
}

/// Where `argv0` points, as a shell would have found it: an absolute path as is, a
/// relative one with a slash against `cwd`, a bare name on `path`. `None` when it
/// cannot be told.
fn resolve_argv0(argv0: &Path, cwd: Option<&Path>, path: Option<&std::ffi::OsStr>) -> Option<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    if argv0.as_os_str().is_empty() {
        return None;
    }
    if argv0.is_absolute() {
        return Some(argv0.to_path_buf());
    }
    if argv0.as_os_str().as_encoded_bytes().contains(&b'/') {
        return cwd.map(|c| c.join(argv0));
    }
    std::env::split_paths(path?)
        .map(|dir| if dir.is_absolute() { dir } else { cwd.unwrap_or(Path::new("/")).join(dir) })
        .map(|dir| dir.join(argv0))
        .find(|p| std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0))
}

/// Command-line flags override the file, as supervisord's.
fn apply_overrides(cfg: &mut Config, a: &Args) -> Result<(), String> {
    let sd = &mut cfg.supervisord;
    if a.nodaemon {
        sd.nodaemon = true;
    }
    if a.silent {
        sd.silent = true;
    }
    if a.nocleanup {
        sd.nocleanup = true;
    }
    if a.strip_ansi {
        sd.strip_ansi = true;
    }
    if let Some(v) = &a.umask {
        sd.umask = u32::from_str_radix(v, 8).map_err(|_| format!("invalid umask {v:?}"))?;
    }
    if let Some(v) = &a.directory {
        sd.directory = Some(v.clone());
    }
    if let Some(v) = &a.logfile {
        sd.logfile = if v.as_os_str() == "syslog" { MainLog::Syslog } else { MainLog::File(absolute(v)) };
    }
    if let Some(v) = &a.logfile_maxbytes {
        sd.logfile_maxbytes = config::values::byte_size(v).map_err(|e| e.message)?;
    }
    if let Some(v) = a.logfile_backups {
        sd.logfile_backups = v;
    }
    if let Some(v) = &a.loglevel {
        sd.loglevel = config::values::logging_level(v).map_err(|e| e.message)?;
    }
    if let Some(v) = &a.pidfile {
        sd.pidfile = absolute(v);
    }
    if let Some(v) = &a.identifier {
        sd.identifier = v.clone();
    }
    if let Some(v) = &a.childlogdir {
        sd.childlogdir = absolute(v);
    }
    if let Some(v) = a.minfds {
        sd.minfds = v;
    }
    if let Some(v) = a.minprocs {
        sd.minprocs = v;
    }
    if let Some(v) = &a.user {
        sd.user = Some(config::users::resolve_user(v).map_err(|e| e.message)?);
    }
    Ok(())
}

fn absolute(p: &Path) -> PathBuf {
    std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf())
}

fn run(
    cfg: Config,
    path: PathBuf,
    dbus: DbusFlags,
    notifier: Option<Notifier>,
    relaunch: Relaunch,
    inherited: Option<HandOver>,
) -> anyhow::Result<ExitCode> {
    let sd = cfg.supervisord.clone();
    if let Some(user) = &sd.user {
        corral::spawn::privileges::drop_to(user).context("dropping privileges")?;
    }
    let limit_infos = corral::spawn::privileges::raise_limits(sd.minfds, sd.minprocs)?;
    // After a re-exec the process already is the daemon: same pid, same session.
    if !sd.nodaemon && inherited.is_none() {
        // Fork before any thread exists; the parent exits 0 as supervisord's does.
        corral::spawn::privileges::daemonize(sd.directory.as_deref(), sd.umask).context("daemonizing")?;
    }
    let main_log = init_logging(&sd)?;
    if let (Some(n), false, None) = (&notifier, sd.nodaemon, &inherited) {
        // systemd started the parent that just exited; this is the process to watch
        // (accepted with NotifyAccess=all; the shipped unit runs corrald with -n instead).
        n.send_or_warn(&format!("MAINPID={}", std::process::id()));
    }
    for m in &limit_infos {
        tracing::info!("{m}");
    }
    for m in &cfg.messages {
        match m.level {
            config::MessageLevel::Info => tracing::info!("{}", m.text),
            config::MessageLevel::Warn => tracing::warn!("{}", m.text),
        }
    }
    // The AUTO logs of programs handed over by a re-exec are still being written; with
    // adopt_orphans the engine cleans up once it knows which programs it takes over.
    if !sd.nocleanup && inherited.is_none() && !sd.adopt_orphans {
        match corral::logs::auto::cleanup_auto_logs(&sd.childlogdir, &sd.identifier) {
            Ok(failed) => {
                for (p, e) in failed {
                    tracing::warn!("Failed to clean up {}: {e}", p.display());
                }
            }
            Err(e) => tracing::warn!("{e}"),
        }
    }
    if nix::unistd::Uid::effective().is_root() && sd.user.is_none() {
        corral::crit!(
            "Supervisor is running as root.  Privileges were not dropped because no user is specified in the config file.  If you intend to run as root, you can set user=root in the config file to avoid this message."
        );
    }
    // Only the main thread takes the handled signals (serve() unblocks them there):
    // every thread made from now on starts with them blocked. A signal that arrives
    // while the main thread holds them back for a re-exec then stays pending across
    // the exec, instead of reaching a worker thread whose handler dies with the image.
    if let Err(e) = handover::block_signals() {
        tracing::warn!("blocking signals on the runtime's threads: {e}");
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let result = rt.block_on(serve(cfg, path, main_log, dbus, notifier, relaunch, inherited));
    // Tasks still running now are cut short, but a thread blocked on a stalled journal
    // (a line sink's send) is not waited for beyond this.
    rt.shutdown_timeout(std::time::Duration::from_secs(2));
    let _ = std::fs::remove_file(&sd.pidfile);
    result
}

/// Install the activity log (supervisord's format) as the tracing subscriber,
/// plus journald when running as a systemd service.
fn init_logging(sd: &config::SupervisordConfig) -> anyhow::Result<MainLogHandle> {
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    let file = match &sd.logfile {
        MainLog::File(p) => Some(p.clone()),
        MainLog::Syslog => None,
    };
    let journal = if corral::logs::journal::under_journald() {
        match corral::logs::journal::daemon_layer(sd.loglevel) {
            Ok(layer) => Some(layer),
            Err(e) => {
                eprintln!("corrald: cannot log to the journal, using stdout/stderr: {e}");
                None
            }
        }
    } else {
        None
    };
    let (layer, handle) = main_log::main_log(&MainLogConfig {
        file,
        maxbytes: sd.logfile_maxbytes,
        backups: sd.logfile_backups,
        level: sd.loglevel,
        // Under journald, stdout goes to the journal too: one copy is enough.
        stdout: sd.nodaemon && !sd.silent && journal.is_none(),
    })
    .context("opening the activity log")?;
    tracing_subscriber::registry()
        .with(journal)
        .with(layer)
        .try_init()
        .context("installing the activity log")?;
    Ok(handle)
}

/// Pick the cgroup backend for this host; without cgroups, say so once and go on.
fn open_cgroups(cfg: &Config) -> Box<dyn corral::cgroup::Backend> {
    // Several daemons may share one parent cgroup (a login session, a test run):
    // a non-default `identifier` gets its own tree so they never touch each other's.
    let ident = &cfg.supervisord.identifier;
    let top = if ident == "supervisor" {
        "corral".to_string()
    } else {
        format!(
            "corral-{}",
            ident.replace(|c: char| !(c.is_ascii_alphanumeric() || c == '-' || c == '_'), "_")
        )
    };
    let options = corral::cgroup::OpenOptions { cgroup_root: cfg.supervisord.cgroup_root.clone(), top };
    let backend = match corral::cgroup::detect_host() {
        Ok(setup) => corral::cgroup::open_or_none(&setup, &options),
        Err(e) => {
            tracing::warn!("cannot read the cgroup setup: {e}");
            Box::new(corral::cgroup::NoneBackend::new(e.to_string()))
        }
    };
    if backend.mode() == corral::cgroup::Mode::None {
        tracing::warn!(
            "running without cgroups ({}): stops kill process groups, stats come from /proc, limits are refused",
            backend.describe()
        );
    } else {
        match backend.adopt_daemon_leaf() {
            Ok(Some(leaf)) => tracing::info!("moved corrald into {}", leaf.display()),
            Ok(None) => {}
            Err(e) => tracing::warn!("cannot move corrald into its own leaf cgroup: {e}"),
        }
        tracing::info!("cgroups: {}", backend.describe());
    }
    backend
}

/// Programs a previous corrald left running when it died (its tree is ours:
/// the HTTP servers are bound, so no live daemon with this identifier exists).
fn kill_leftovers(backend: &dyn corral::cgroup::Backend) {
    match backend.kill_stale() {
        Ok(0) => {}
        Ok(n) => {
            tracing::warn!("killed {n} process(es) left running by a previous corrald that did not shut down")
        }
        Err(e) => tracing::warn!("cleaning up cgroups of a previous run: {e}"),
    }
}

/// A shutdown signal arrived after the engine handed its state over for a
/// re-exec: the next daemon (or this one, if the exec fails) carries it out.
static SHUTDOWN_AFTER_REEXEC: AtomicBool = AtomicBool::new(false);

/// How one run of the engine ended.
enum Served {
    /// Shut down; the daemon exits.
    Exit,
    /// A re-exec was requested; this is what the next daemon takes over. The
    /// signal forwarder stays until the exec, so no shutdown signal is lost.
    Reexec(Box<HandOver>, tokio::task::JoinHandle<()>),
}

async fn serve(
    cfg: Config,
    path: PathBuf,
    main_log: MainLogHandle,
    dbus: DbusFlags,
    notifier: Option<Notifier>,
    relaunch: Relaunch,
    inherited: Option<HandOver>,
) -> anyhow::Result<ExitCode> {
    if let Err(e) = corral::spawn::reap::become_subreaper() {
        tracing::warn!("cannot become a child subreaper, orphans go to init: {e}");
    }
    let (mut cfg, mut notifier, mut inherited) = (cfg, notifier, inherited);
    loop {
        let keep = cfg.clone();
        let served = serve_once(
            cfg,
            &path,
            main_log.clone(),
            dbus.clone(),
            notifier.take(),
            &relaunch,
            inherited.take(),
        )
        .await?;
        match served {
            Served::Exit => return Ok(ExitCode::SUCCESS),
            Served::Reexec(mut state, signals) => {
                let err = reexec(&relaunch, &mut state);
                signals.abort();
                // Still here: the exec failed and nothing was lost; take everything back.
                tracing::error!("re-exec failed, corrald keeps running: {err:#}");
                if let Err(e) = state.set_inheritable(false) {
                    tracing::warn!("restoring close-on-exec after the failed re-exec: {e}");
                }
                // The configuration the new binary would have read: programs added by
                // `update` since the start must be found again.
                cfg = reload_as_started(&path, &relaunch.argv).unwrap_or_else(|e| {
                    tracing::warn!("re-reading the configuration: {e}; using the one from startup");
                    keep
                });
                inherited = Some(*state);
                notifier = relaunch.notify_socket.as_deref().and_then(|a| Notifier::connect(a).ok());
            }
        }
    }
}

/// Load the configuration file with the command line's overrides, as a fresh start would.
fn reload_as_started(path: &Path, argv: &[OsString]) -> Result<Config, String> {
    let args = Args::try_parse_from(argv).map_err(|e| e.to_string())?;
    let mut cfg = config::load(path).map_err(|e| e.to_string())?;
    apply_overrides(&mut cfg, &args)?;
    Ok(cfg)
}

/// Execute the binary again with the hand-over; returns only on failure.
fn reexec(relaunch: &Relaunch, state: &mut HandOver) -> anyhow::Error {
    let Some(binary) = &relaunch.binary else {
        return anyhow::anyhow!("the path of the corrald binary is unknown");
    };
    // From here a shutdown signal waits, blocked, for the next daemon's handlers.
    if let Err(e) = handover::block_signals() {
        return anyhow::Error::new(e).context("blocking signals for the exec");
    }
    state.state.shutdown |= SHUTDOWN_AFTER_REEXEC.swap(false, Ordering::SeqCst);
    let memfd = match state.to_memfd() {
        Ok(fd) => fd,
        Err(e) => return e.into(),
    };
    if let Err(e) = state.set_inheritable(true) {
        return anyhow::Error::new(e).context("keeping descriptors open across exec");
    }
    let mut extra = Vec::new();
    if let Some(addr) = &relaunch.notify_socket {
        // systemd's reload protocol: RELOADING=1 now, READY=1 from the new daemon.
        if let Ok(n) = Notifier::connect(addr) {
            n.send_or_warn(&corral::notify::reloading_message());
        }
        extra.push((OsString::from("NOTIFY_SOCKET"), OsString::from(addr)));
    }
    tracing::warn!("re-executing {}", binary.display());
    let e = handover::exec(binary, &relaunch.argv, &extra, &memfd);
    anyhow::Error::new(e).context(format!("executing {}", binary.display()))
}

/// Run the engine and its front-ends once, until shutdown or a re-exec.
async fn serve_once(
    cfg: Config,
    path: &Path,
    main_log: MainLogHandle,
    dbus: DbusFlags,
    notifier: Option<Notifier>,
    relaunch: &Relaunch,
    mut inherited: Option<HandOver>,
) -> anyhow::Result<Served> {
    let cgroups = open_cgroups(&cfg);
    if let Err(e) = corral::engine::check_limits(cgroups.as_ref(), &cfg) {
        anyhow::bail!("{e}");
    }
    let pidfile = cfg.supervisord.pidfile.clone();
    std::fs::write(&pidfile, format!("{}\n", std::process::id()))
        .with_context(|| format!("writing pid file {}", pidfile.display()))?;
    let loader_path = path.to_path_buf();
    let loader: corral::engine::Loader =
        Box::new(move || config::load(&loader_path).map_err(|e| e.supervisord_message()));
    let server = match inherited.as_mut() {
        Some(state) => {
            corral::rpc::RpcServer::inherit(cfg.unix_http_server.as_ref(), &cfg.inet_http_servers, state)
                .await
        }
        None => corral::rpc::RpcServer::bind(cfg.unix_http_server.as_ref(), &cfg.inet_http_servers).await,
    }
    .context("starting the HTTP servers")?;
    // With adopt_orphans the engine takes over what is still running and kills the rest.
    let adopt_orphans = inherited.is_none() && cfg.supervisord.adopt_orphans;
    if inherited.is_none() && !adopt_orphans {
        kill_leftovers(cgroups.as_ref());
    }
    // Second descriptors of the listeners, for a re-exec.
    let mut listeners = HandOver::new();
    let can_reexec = match server.hand_over(&mut listeners) {
        Ok(()) => relaunch.binary.is_some(),
        Err(e) => {
            tracing::warn!("re-exec unavailable: cannot keep the HTTP listeners: {e}");
            false
        }
    };
    let keep_socket = server.keep_socket_flag();
    let (mut engine, handle) = Engine::new(cfg, loader, Some(main_log), cgroups);
    let (accepted_tx, mut accepted_rx) = tokio::sync::mpsc::unbounded_channel();
    match (&relaunch.binary, can_reexec) {
        (Some(binary), true) => engine.enable_reexec(binary.clone(), accepted_tx),
        // The front-ends then stop when the engine exits (the channel closes).
        _ => drop(accepted_tx),
    }
    if let Some(state) = inherited {
        engine.adopt(state);
    }
    if adopt_orphans {
        engine.adopt_orphans();
    }
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let stop_tx = Arc::new(stop_tx);
    let rpc = tokio::spawn(server.run(handle.clone(), corral::rpc::ServerContext::default(), async move {
        let mut rx = stop_rx;
        let _ = rx.wait_for(|stop| *stop).await;
    }));
    let signals = forward_signals(handle.clone())?;
    if let Err(e) = handover::unblock_signals() {
        tracing::warn!("unblocking signals: {e}");
    }
    if let Some(n) = notifier {
        // Subscribes now, before the engine announces RUNNING.
        tokio::spawn(corral::notify::track(handle.clone(), n));
    }
    // In its own task: a slow or absent bus never delays the engine.
    let dbus = tokio::spawn({
        let handle = handle.clone();
        async move { corral::dbus::start_from_flags(dbus.bus, dbus.address.as_deref(), handle).await }
    });
    // The front-ends stop when the engine exits, or before the hand-over of a re-exec
    // (in-flight requests, the reexec reply among them, are answered first).
    let front_ends = tokio::spawn({
        let (handle, stop_tx) = (handle.clone(), stop_tx.clone());
        async move {
            let reexec = accepted_rx.recv().await.is_some();
            if reexec {
                keep_socket.store(true, std::sync::atomic::Ordering::SeqCst);
            }
            let _ = stop_tx.send(true);
            // HTTP first: while it drains, a D-Bus Reexec reply has time to leave.
            let served = rpc.await;
            if dbus.is_finished() {
                if let Ok(Some(service)) = dbus.await {
                    service.stop().await;
                }
            } else {
                dbus.abort();
            }
            if reexec {
                handle.hand_over().await;
            }
            served
        }
    });
    tracing::info!("corrald started with pid {}", std::process::id());
    // On the worker threads, like the tasks that wake it: an exit, a request or a
    // timer then runs the engine on the thread that saw it, without a hop to this one.
    let exit = tokio::spawn(engine.run())
        .await
        .map_err(|e| anyhow::anyhow!("the engine task failed: {e}"))?
        .context("running the engine")?;
    let _ = stop_tx.send(true);
    match front_ends.await {
        Ok(Ok(Err(e))) => tracing::warn!("HTTP server: {e}"),
        Ok(Err(e)) | Err(e) => tracing::warn!("HTTP server task: {e}"),
        Ok(Ok(Ok(()))) => {}
    }
    match exit {
        Exit::Shutdown => {
            signals.abort();
            tracing::info!("exiting ({exit:?})");
            Ok(Served::Exit)
        }
        Exit::Reexec(mut state) => {
            state.merge(listeners);
            Ok(Served::Reexec(state, signals))
        }
    }
}

/// Ask the engine to shut down; once it has handed over for a re-exec, the next daemon will.
async fn shutdown(handle: &Handle) {
    // Noted before asking: the exec may come before the engine's answer.
    SHUTDOWN_AFTER_REEXEC.store(true, Ordering::SeqCst);
    if handle.shutdown().await.is_ok() || !handle.engine_gone() {
        SHUTDOWN_AFTER_REEXEC.store(false, Ordering::SeqCst);
    }
}

/// Signals are requests like any other: turn them into engine commands.
fn forward_signals(handle: Handle) -> anyhow::Result<tokio::task::JoinHandle<()>> {
    use tokio::signal::unix::{signal, SignalKind};
    // A stop signal is noted in the handler itself: one that arrives just before a
    // re-exec's exec, when the task below may not run again in this image, is then
    // still carried to the next daemon (the task clears the note once the engine
    // has taken the shutdown itself).
    for sig in [libc::SIGTERM, libc::SIGINT, libc::SIGQUIT] {
        // SAFETY: the action only stores to an atomic, which is async-signal-safe.
        unsafe {
            signal_hook_registry::register(sig, || SHUTDOWN_AFTER_REEXEC.store(true, Ordering::SeqCst))
        }
        .context("installing a signal handler")?;
    }
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    let mut quit = signal(SignalKind::quit())?;
    let mut hup = signal(SignalKind::hangup())?;
    let mut usr2 = signal(SignalKind::user_defined2())?;
    let mut usr1 = signal(SignalKind::user_defined1())?;
    Ok(tokio::spawn(async move {
        loop {
            tokio::select! {
                _ = term.recv() => { tracing::warn!("received SIGTERM indicating exit request"); shutdown(&handle).await; }
                _ = int.recv() => { tracing::warn!("received SIGINT indicating exit request"); shutdown(&handle).await; }
                _ = quit.recv() => { tracing::warn!("received SIGQUIT indicating exit request"); shutdown(&handle).await; }
                _ = hup.recv() => {
                    tracing::warn!("received SIGHUP indicating restart request");
                    if handle.restart().await.is_err() {
                        tracing::warn!("ignored SIGHUP indicating restart request (shutdown in progress)");
                    }
                }
                _ = usr2.recv() => handle.reopen_logs().await,
                _ = usr1.recv() => {
                    tracing::warn!("received SIGUSR1 indicating re-exec request");
                    if let Err(e) = handle.reexec().await {
                        tracing::error!("re-exec refused: {}", e.to_string());
                    }
                }
            }
        }
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn argv0_is_resolved_as_a_shell_found_it_without_following_symlinks() {
        let dir = tempfile::tempdir().expect("tempdir");
        let bin = dir.path().join("bin");
        std::fs::create_dir(&bin).expect("bin");
        let real = bin.join("corrald-1.2");
        std::fs::write(&real, "#!/bin/sh\n").expect("binary");
        std::fs::set_permissions(&real, std::os::unix::fs::PermissionsExt::from_mode(0o755)).expect("chmod");
        let link = bin.join("corrald");
        std::os::unix::fs::symlink("corrald-1.2", &link).expect("symlink");
        let path = std::ffi::OsString::from(format!("/nonexistent:{}", bin.display()));

        assert_eq!(resolve_argv0(&link, None, None), Some(link.clone()), "absolute: as given");
        assert_eq!(
            resolve_argv0(Path::new("bin/corrald"), Some(dir.path()), None),
            Some(dir.path().join("bin/corrald")),
            "relative: against the start directory"
        );
        assert_eq!(resolve_argv0(Path::new("corrald"), None, Some(&path)), Some(link), "a name: on PATH");
        assert_eq!(resolve_argv0(Path::new("corrald"), None, None), None);
        assert_eq!(resolve_argv0(Path::new("nothere"), None, Some(&path)), None);
        assert_eq!(resolve_argv0(Path::new(""), None, Some(&path)), None);
    }
}
