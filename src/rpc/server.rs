//! Listeners: the unix socket with supervisord's bind rules, TCP ports, and
//! the run loop with graceful shutdown.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use axum::Router;
use tokio::net::{TcpListener, UnixListener};
use tokio::sync::watch;

use super::dispatch::Dispatcher;
use super::http::{handle, AppState};
use super::ServerContext;
use crate::config::model::{Credentials, InetHttpServerConfig, UnixHttpServerConfig};
use crate::engine::handover::{HandOver, ListenerAddr, SavedListener};
use crate::engine::Handle;

/// supervisord's text when a socket or port is already served by someone else.
pub const ALREADY_LISTENING: &str = "Another program is already listening on a port that one of our HTTP servers is configured to use.  Shut this program down first before starting supervisord.";

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// A live server answers on the socket or the port is in use.
    #[error("{}", ALREADY_LISTENING)]
    AlreadyListening,
    /// chown of the socket was refused.
    #[error("Not permitted to chown {path} to uid/gid {uid}/{gid}; adjust \"chown\" in [unix_http_server] to values the current user can chown to")]
    Chown {
        /// Socket path.
        path: PathBuf,
        /// Requested uid.
        uid: u32,
        /// Requested gid (-1: unchanged).
        gid: i64,
    },
    /// Any other I/O error while binding, with what was being done.
    #[error("cannot {what} {target}: {source}")]
    Io {
        /// The step that failed.
        what: &'static str,
        /// Path or address.
        target: String,
        /// The error.
        source: io::Error,
    },
}

fn io_err(what: &'static str, target: impl std::fmt::Display) -> impl FnOnce(io::Error) -> ServeError {
    let target = target.to_string();
    move |source| ServeError::Io { what, target, source }
}

/// A bound unix socket, remembered so it can be removed on shutdown.
#[derive(Debug)]
struct UnixBinding {
    listener: UnixListener,
    path: PathBuf,
    /// Inode of our socket: on shutdown only our own file is unlinked.
    ino: u64,
    auth: Option<Credentials>,
    metrics_auth: bool,
}

#[derive(Debug)]
struct TcpBinding {
    listener: TcpListener,
    host: String,
    port: u16,
    auth: Option<Credentials>,
    metrics_auth: bool,
}

/// Bound listeners, ready to [`run`](RpcServer::run).
#[derive(Debug)]
pub struct RpcServer {
    unix: Option<UnixBinding>,
    tcp: Vec<TcpBinding>,
    /// Set before shutdown when a re-exec takes the listeners over: the socket file stays.
    keep_socket: Arc<AtomicBool>,
}

/// Bind, chmod and chown the unix socket the way supervisord does.
///
/// The socket is bound at `<file>.<pid>`, given its mode and owner, then
/// hard-linked to `<file>`, so no client ever sees it with the wrong
/// permissions. If `<file>` exists: a server that accepts a connection means
/// another daemon owns it ([`ServeError::AlreadyListening`]); otherwise the
/// file is stale and is removed before one retry.
fn bind_unix(cfg: &UnixHttpServerConfig) -> Result<(std::os::unix::net::UnixListener, u64), ServeError> {
    let file = &cfg.file;
    let mut tmp = file.clone().into_os_string();
    tmp.push(format!(".{}", std::process::id()));
    let tmp = PathBuf::from(tmp);
    for attempt in 0..2 {
        let _ = std::fs::remove_file(&tmp);
        let listener = std::os::unix::net::UnixListener::bind(&tmp).map_err(io_err("bind", tmp.display()))?;
        let prepared = prepare_socket(&tmp, cfg);
        if let Err(e) = prepared {
            let _ = std::fs::remove_file(&tmp);
            return Err(e);
        }
        match std::fs::hard_link(&tmp, file) {
            Ok(()) => {
                let _ = std::fs::remove_file(&tmp);
                let ino = std::fs::metadata(file).map_err(io_err("stat", file.display()))?.ino();
                return Ok((listener, ino));
            }
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists && attempt == 0 => {
                let _ = std::fs::remove_file(&tmp);
                drop(listener);
                if std::os::unix::net::UnixStream::connect(file).is_ok() {
                    return Err(ServeError::AlreadyListening);
                }
                tracing::warn!("Unlinking stale socket {}", file.display());
                std::fs::remove_file(file).map_err(io_err("unlink stale socket", file.display()))?;
            }
            Err(e) => {
                let _ = std::fs::remove_file(&tmp);
                if e.kind() == io::ErrorKind::AlreadyExists {
                    return Err(ServeError::AlreadyListening);
                }
                return Err(io_err("link socket to", file.display())(e));
            }
        }
    }
    Err(ServeError::AlreadyListening)
}

fn prepare_socket(path: &Path, cfg: &UnixHttpServerConfig) -> Result<(), ServeError> {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(cfg.chmod))
        .map_err(io_err("chmod", path.display()))?;
    if let Some((uid, gid)) = cfg.chown {
        nix::unistd::chown(path, Some(nix::unistd::Uid::from_raw(uid)), gid.map(nix::unistd::Gid::from_raw))
            .map_err(|_| ServeError::Chown { path: cfg.file.clone(), uid, gid: gid.map_or(-1, i64::from) })?;
    }
    Ok(())
}

impl RpcServer {
    /// Bind every configured listener. Fails without leaving files behind.
    pub async fn bind(
        unix: Option<&UnixHttpServerConfig>,
        inet: &[InetHttpServerConfig],
    ) -> Result<RpcServer, ServeError> {
        let mut server = RpcServer { unix: None, tcp: Vec::new(), keep_socket: Arc::default() };
        if let Some(cfg) = unix {
            let (std_listener, ino) = bind_unix(cfg)?;
            std_listener.set_nonblocking(true).map_err(io_err("configure", cfg.file.display()))?;
            let listener =
                UnixListener::from_std(std_listener).map_err(io_err("listen on", cfg.file.display()))?;
            server.unix = Some(UnixBinding {
                listener,
                path: cfg.file.clone(),
                ino,
                auth: cfg.auth.clone(),
                metrics_auth: cfg.metrics_auth,
            });
        }
        for cfg in inet {
            // Empty host (also `*` and a bare port in the file) means every interface.
            let host = if cfg.host.is_empty() || cfg.host == "*" { "0.0.0.0" } else { cfg.host.as_str() };
            let listener = match TcpListener::bind((host, cfg.port)).await {
                Ok(l) => l,
                Err(e) if e.kind() == io::ErrorKind::AddrInUse => {
                    server.remove_socket();
                    return Err(ServeError::AlreadyListening);
                }
                Err(e) => {
                    server.remove_socket();
                    return Err(io_err("listen on", format!("{host}:{}", cfg.port))(e));
                }
            };
            server.tcp.push(TcpBinding {
                listener,
                host: cfg.host.clone(),
                port: cfg.port,
                auth: cfg.auth.clone(),
                metrics_auth: cfg.metrics_auth,
            });
        }
        Ok(server)
    }

    /// Serve on the listeners a previous daemon handed over where they match the
    /// configuration (same socket file, same host and port), so clients never see a
    /// refused connection across a re-exec; anything else is bound afresh.
    pub async fn inherit(
        unix: Option<&UnixHttpServerConfig>,
        inet: &[InetHttpServerConfig],
        state: &mut HandOver,
    ) -> Result<RpcServer, ServeError> {
        let saved = std::mem::take(&mut state.state.listeners);
        let mut fds: Vec<(ListenerAddr, OwnedFd)> =
            saved.into_iter().filter_map(|l| state.take(Some(l.fd)).map(|fd| (l.addr, fd))).collect();
        let mut take = |want: &dyn Fn(&ListenerAddr) -> bool| {
            fds.iter().position(|(a, _)| want(a)).map(|i| fds.remove(i))
        };
        let unix_fd =
            unix.and_then(|cfg| take(&|a| matches!(a, ListenerAddr::Unix { path, .. } if *path == cfg.file)));
        let tcp_fds: Vec<Option<OwnedFd>> = inet
            .iter()
            .map(|cfg| {
                take(&|a| matches!(a, ListenerAddr::Tcp { host, port } if *host == cfg.host && *port == cfg.port))
                    .map(|(_, fd)| fd)
            })
            .collect();
        // Listeners the new configuration no longer has close now, so binding anew cannot clash.
        drop(fds);
        let mut server = RpcServer { unix: None, tcp: Vec::new(), keep_socket: Arc::default() };
        match (unix, unix_fd) {
            (Some(cfg), Some((ListenerAddr::Unix { ino, .. }, fd))) => {
                let std_listener = std::os::unix::net::UnixListener::from(fd);
                std_listener.set_nonblocking(true).map_err(io_err("configure", cfg.file.display()))?;
                let listener =
                    UnixListener::from_std(std_listener).map_err(io_err("listen on", cfg.file.display()))?;
                server.unix = Some(UnixBinding {
                    listener,
                    path: cfg.file.clone(),
                    ino,
                    auth: cfg.auth.clone(),
                    metrics_auth: cfg.metrics_auth,
                });
            }
            (Some(cfg), _) => server.unix = RpcServer::bind(Some(cfg), &[]).await?.unix,
            (None, _) => {}
        }
        for (cfg, fd) in inet.iter().zip(tcp_fds) {
            let bound = match fd {
                Some(fd) => {
                    let std_listener = std::net::TcpListener::from(fd);
                    let target = format!("{}:{}", cfg.host, cfg.port);
                    std_listener.set_nonblocking(true).map_err(io_err("configure", &target))?;
                    let listener =
                        TcpListener::from_std(std_listener).map_err(io_err("listen on", &target))?;
                    TcpBinding {
                        listener,
                        host: cfg.host.clone(),
                        port: cfg.port,
                        auth: cfg.auth.clone(),
                        metrics_auth: cfg.metrics_auth,
                    }
                }
                None => match RpcServer::bind(None, std::slice::from_ref(cfg)).await {
                    Ok(mut one) => one.tcp.remove(0),
                    Err(e) => {
                        server.remove_socket();
                        return Err(e);
                    }
                },
            };
            server.tcp.push(bound);
        }
        Ok(server)
    }

    /// Second descriptors of every listener, for a re-exec: the new daemon serves on
    /// them, so connections made meanwhile wait in the backlog instead of failing.
    /// The socket file is then left in place when this server shuts down.
    pub fn hand_over(&self, state: &mut HandOver) -> io::Result<()> {
        if let Some(u) = &self.unix {
            let fd = u.listener.as_fd().try_clone_to_owned()?;
            let fd = state.keep(fd);
            state
                .state
                .listeners
                .push(SavedListener { addr: ListenerAddr::Unix { path: u.path.clone(), ino: u.ino }, fd });
        }
        for t in &self.tcp {
            let fd = state.keep(t.listener.as_fd().try_clone_to_owned()?);
            state
                .state
                .listeners
                .push(SavedListener { addr: ListenerAddr::Tcp { host: t.host.clone(), port: t.port }, fd });
        }
        Ok(())
    }

    /// A flag that, once set, keeps the unix socket file when [`run`](RpcServer::run) ends
    /// (a re-exec serves on the same socket).
    pub fn keep_socket_flag(&self) -> Arc<AtomicBool> {
        self.keep_socket.clone()
    }

    /// Addresses of the TCP listeners (useful with port 0).
    pub fn tcp_addrs(&self) -> Vec<SocketAddr> {
        self.tcp.iter().filter_map(|t| t.listener.local_addr().ok()).collect()
    }

    /// Path of the unix socket, if any.
    pub fn unix_path(&self) -> Option<&Path> {
        self.unix.as_ref().map(|u| u.path.as_path())
    }

    fn remove_socket(&self) {
        if let Some(u) = &self.unix {
            remove_if_ours(&u.path, u.ino);
        }
    }

    /// Serve until `shutdown` completes.
    ///
    /// Then: listeners stop accepting, tail streams end, in-flight requests get
    /// `ctx.shutdown_grace` to finish (a deferred `startProcess` completes when
    /// the engine replies), remaining connections are dropped, and the unix
    /// socket file is removed if it is still ours.
    pub async fn run(
        self,
        handle: Handle,
        ctx: ServerContext,
        shutdown: impl Future<Output = ()> + Send,
    ) -> Result<(), ServeError> {
        let ctx = Arc::new(ctx);
        let (stop_tx, stop_rx) = watch::channel(false);
        let dispatcher = Dispatcher::new(handle.clone(), ctx.clone());
        let web = crate::web::router(crate::web::Web::new(
            handle.clone(),
            stop_rx.clone(),
            crate::web::SamplerConfig::default(),
        ));
        let state = |auth: Option<Credentials>, metrics_auth: bool| AppState {
            dispatcher: dispatcher.clone(),
            handle: handle.clone(),
            auth: auth.map(Arc::new),
            ctx: ctx.clone(),
            stopping: stop_rx.clone(),
            web: web.clone(),
            metrics_auth,
        };
        let stopped = |mut rx: watch::Receiver<bool>| async move {
            let _ = rx.wait_for(|s| *s).await;
        };
        let keep_socket = self.keep_socket.clone();
        let mut tasks = tokio::task::JoinSet::new();
        let mut socket = None;
        if let Some(u) = self.unix {
            if u.auth.is_none() {
                crate::crit!("Server 'unix_http_server' running without any HTTP authentication checking");
            }
            let app = Router::new().fallback(handle_any).with_state(state(u.auth, u.metrics_auth));
            let graceful = stopped(stop_rx.clone());
            socket = Some((u.path, u.ino));
            tasks.spawn(async move {
                let _ = axum::serve(u.listener, app).with_graceful_shutdown(graceful).await;
            });
        }
        for t in self.tcp {
            if t.auth.is_none() {
                crate::crit!("Server 'inet_http_server' running without any HTTP authentication checking");
            }
            let app = Router::new().fallback(handle_any).with_state(state(t.auth, t.metrics_auth));
            let graceful = stopped(stop_rx.clone());
            tasks.spawn(async move {
                let _ = axum::serve(t.listener, app).with_graceful_shutdown(graceful).await;
            });
        }
        shutdown.await;
        let _ = stop_tx.send(true);
        let drain = async { while tasks.join_next().await.is_some() {} };
        if tokio::time::timeout(ctx.shutdown_grace, drain).await.is_err() {
            tasks.abort_all();
            while tasks.join_next().await.is_some() {}
        }
        if let Some((path, ino)) = socket {
            if !keep_socket.load(Ordering::SeqCst) {
                remove_if_ours(&path, ino);
            }
        }
        Ok(())
    }
}

async fn handle_any(
    state: axum::extract::State<AppState>,
    req: axum::extract::Request,
) -> axum::response::Response {
    handle(state, req).await
}

/// Unlink the socket only if the path still is the file we created.
fn remove_if_ours(path: &Path, ino: u64) {
    if std::fs::symlink_metadata(path).is_ok_and(|m| m.ino() == ino) {
        let _ = std::fs::remove_file(path);
    }
}

/// Bind and run in one call: [`RpcServer::bind`] then [`RpcServer::run`].
pub async fn serve(
    handle: Handle,
    unix: Option<UnixHttpServerConfig>,
    inet: Vec<InetHttpServerConfig>,
    ctx: ServerContext,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), ServeError> {
    RpcServer::bind(unix.as_ref(), &inet).await?.run(handle, ctx, shutdown).await
}
