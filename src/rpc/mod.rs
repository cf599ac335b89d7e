//! HTTP server and Supervisor's XML-RPC API.
//!
//! The server answers supervisord's HTTP surface closely enough that the stock
//! `supervisorctl`, superlance and scripts cannot tell the difference:
//!
//! * `POST /RPC2*`: XML-RPC (`supervisor.*`, `system.*`, plus `corral.*`
//!   extensions that never change a supervisor structure);
//! * `GET /logtail/<namespec>[/stdout|/stderr]` and `GET /mainlogtail`: the
//!   streaming tails `supervisorctl tail -f` reads;
//! * HTTP Basic auth on every path when a username is configured.
//!
//! It is an adapter only: each request becomes a typed engine command sent
//! through a [`Handle`](crate::engine::Handle), and each reply is rendered back.
//! Slow replies (`startProcess` with `wait`) are awaited per request, so clients
//! never block each other.
//!
//! Start it with [`RpcServer::bind`] (fails like supervisord when the socket or
//! port is taken) and then [`RpcServer::run`], or both at once with [`serve`].

mod auth;
mod catalog;
mod codec;
mod dispatch;
mod http;
mod logread;
mod logtail;
mod params;
mod server;
mod structs;

pub use codec::{decode_call, encode_fault, encode_response, Call, DecodeError};
pub use dispatch::Dispatcher;
pub use server::{serve, RpcServer, ServeError};

use std::time::Duration;

/// The XML-RPC API version supervisorctl insists on (`getVersion`/`getAPIVersion`).
pub const API_VERSION: &str = "3.0";

/// The supervisor release whose API corral reproduces (`getSupervisorVersion`'s default).
pub const SUPERVISOR_VERSION: &str = "4.3.0";

/// Settings of the HTTP server that do not come from the config file.
#[derive(Debug, Clone)]
pub struct ServerContext {
    /// What `getSupervisorVersion` reports. Defaults to [`SUPERVISOR_VERSION`]:
    /// scripts compare it against supervisor releases, so corral reports the
    /// release it is compatible with; `corral.getVersion` gives corral's own.
    pub supervisor_version: String,
    /// What `getPID` reports (the daemon's pid).
    pub pid: u32,
    /// Largest accepted request body; larger requests get 413.
    pub body_limit: usize,
    /// How often a `/logtail` stream looks for new data.
    pub tail_poll: Duration,
    /// After shutdown is requested, how long in-flight requests may take to finish.
    pub shutdown_grace: Duration,
}

impl Default for ServerContext {
    fn default() -> Self {
        ServerContext {
            supervisor_version: SUPERVISOR_VERSION.to_string(),
            pid: std::process::id(),
            body_limit: 8 * 1024 * 1024,
            tail_poll: Duration::from_millis(100),
            shutdown_grace: Duration::from_secs(5),
        }
    }
}
