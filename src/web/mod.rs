//! The web page and `/metrics`, served on the same listeners and behind the
//! same Basic auth as `/RPC2`.
//!
//! * `GET /`, `/index.html`: the status page (every process, live via
//!   `/api/events`, with start/stop/restart/clear log/tail and the "all" actions);
//! * `GET /program/<namespec>`: one process, its stdout/stderr tail (read from
//!   supervisord's `/logtail` stream) and CPU/memory charts;
//! * `POST /api/action`: the actions, with the CSRF checks of [`csrf`];
//! * `GET /api/status`, `/api/program/<namespec>`, `/api/events` (SSE): the
//!   page's data;
//! * `GET /metrics`: Prometheus text format ([`metrics`]); `metrics_auth=false`
//!   in a server section lets scrapers in without credentials;
//! * `GET /ok.html`: `OK`, supervisord's health probe;
//! * `GET /static/{style.css,app.js}`: embedded assets.
//!
//! Like every front-end it only talks to the engine through its
//! [`Handle`]. CPU/memory history is kept by a
//! [`Sampler`] that runs only while a page or scraper is interested.
//! The RPC server owns `/RPC2*`, `/logtail*` and `/mainlogtail*`; every
//! other path comes here ([`router`]).

pub mod actions;
pub mod csrf;
pub mod events;
pub mod metrics;
pub mod pages;
pub mod sampler;
pub mod self_stats;
pub mod status;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use tokio::sync::watch;

pub use csrf::CsrfToken;
pub use sampler::{Sampler, SamplerConfig};

use crate::engine::Handle;

/// The path of the metrics endpoint (the one path `metrics_auth=false` opens).
pub const METRICS_PATH: &str = "/metrics";

/// What every web request needs; one per server, shared by all listeners.
#[derive(Debug, Clone)]
pub struct Web {
    /// The engine.
    pub handle: Handle,
    /// The token actions must carry.
    pub csrf: CsrfToken,
    /// CPU/memory history, while someone looks.
    pub sampler: Sampler,
    /// Becomes true when the server shuts down; ends event streams.
    pub stopping: watch::Receiver<bool>,
}

impl Web {
    /// Web state with a fresh CSRF token and an idle sampler.
    pub fn new(handle: Handle, stopping: watch::Receiver<bool>, sampler: SamplerConfig) -> Web {
        Web {
            sampler: Sampler::new(handle.clone(), stopping.clone(), sampler),
            handle,
            csrf: CsrfToken::generate(),
            stopping,
        }
    }
}

/// Every web route; unknown paths get 404.
pub fn router(web: Web) -> Router {
    Router::new()
        .route("/", get(pages::index))
        .route("/index.html", get(pages::index))
        .route("/ok.html", get(pages::ok))
        .route("/program/{*spec}", get(pages::program))
        .route("/static/{file}", get(pages::asset))
        .route("/api/status", get(pages::status_json))
        .route("/api/program/{*spec}", get(pages::program_json))
        .route("/api/events", get(events::stream))
        .route("/api/action", post(actions::post))
        .route(METRICS_PATH, get(metrics_handler))
        .fallback(|| async { pages::not_found() })
        .with_state(web)
}

/// `GET /metrics`.
async fn metrics_handler(State(web): State<Web>) -> Response {
    web.sampler.touch();
    let h = &web.handle;
    let (Ok(daemon), Ok(processes)) = (h.info().await, h.all_process_info().await) else {
        return (StatusCode::SERVICE_UNAVAILABLE, "engine stopped\n").into_response();
    };
    // Without stats (engine busy shutting down) the state metrics still make sense.
    let stats = h.stats(None).await.unwrap_or_default();
    let readings = self_stats::read();
    let text = metrics::render(&metrics::Scrape {
        version: env!("CARGO_PKG_VERSION"),
        daemon: &daemon,
        readings: &readings,
        processes: &processes,
        stats: &stats,
    });
    ([(header::CONTENT_TYPE, metrics::CONTENT_TYPE)], text).into_response()
}
