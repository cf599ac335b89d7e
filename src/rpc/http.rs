//! Request routing as supervisord's medusa handlers: auth first, then the
//! first handler whose path prefix matches; paths the RPC side does not own
//! go to the web page ([`crate::web`]).

use std::sync::Arc;

use axum::body::{to_bytes, Body};
use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use tokio::sync::watch;
use tower::ServiceExt as _;

use super::auth::{self, AuthOutcome};
use super::codec;
use super::dispatch::Dispatcher;
use super::logtail;
use super::ServerContext;
use crate::config::model::Credentials;
use crate::engine::Handle;

/// Everything one listener's requests need.
#[derive(Debug, Clone)]
pub struct AppState {
    /// Method dispatcher.
    pub dispatcher: Dispatcher,
    /// Engine handle (for the tail endpoints).
    pub handle: Handle,
    /// Basic auth for this listener, if configured.
    pub auth: Option<Arc<Credentials>>,
    /// Server settings.
    pub ctx: Arc<ServerContext>,
    /// Becomes true when the server shuts down; ends tail streams.
    pub stopping: watch::Receiver<bool>,
    /// The web page and `/metrics` ([`crate::web::router`]): every path the RPC side does not own.
    pub web: axum::Router,
    /// Whether `/metrics` needs the credentials too (`metrics_auth=`).
    pub metrics_auth: bool,
}

/// medusa's error page, so a 4xx looks like supervisord's.
pub fn error_response(status: StatusCode) -> Response {
    let reason = status.canonical_reason().unwrap_or("Error");
    let body = format!(
        "<head>\n<title>Error response</title>\n</head>\n<body>\n<h1>Error response</h1>\n<p>Error code {}.\n<p>Message: {}.\n</body>",
        status.as_u16(),
        reason
    );
    (status, [(header::CONTENT_TYPE, "text/html")], body).into_response()
}

fn unauthorized() -> Response {
    let mut r = error_response(StatusCode::UNAUTHORIZED);
    r.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Basic realm=\"default\""));
    r.headers_mut().insert(header::CONNECTION, HeaderValue::from_static("close"));
    r
}

/// The single entry point for every request of a listener.
pub async fn handle(State(state): State<AppState>, req: Request) -> Response {
    let authz = req.headers().get(header::AUTHORIZATION).map(|v| v.as_bytes());
    let public = !state.metrics_auth && req.uri().path() == crate::web::METRICS_PATH;
    let outcome = if public { AuthOutcome::Allowed } else { auth::check(state.auth.as_deref(), authz) };
    if outcome != AuthOutcome::Allowed {
        // Read the request first, as medusa does: answering while the client is
        // still sending would reset the connection before it sees the 401.
        let _ = to_bytes(req.into_body(), state.ctx.body_limit).await;
        return match outcome {
            AuthOutcome::Malformed => error_response(StatusCode::BAD_REQUEST),
            _ => unauthorized(),
        };
    }
    let path = req.uri().path().to_string();
    if path.starts_with("/RPC2") {
        if req.method() != Method::POST {
            return error_response(StatusCode::BAD_REQUEST);
        }
        return rpc(state, req).await;
    }
    if let Some(rest) = path.strip_prefix("/logtail") {
        if req.method() != Method::GET {
            return error_response(StatusCode::BAD_REQUEST);
        }
        return logtail::process_tail(&state, rest).await;
    }
    if path.starts_with("/mainlogtail") {
        if req.method() != Method::GET {
            return error_response(StatusCode::BAD_REQUEST);
        }
        return logtail::main_tail(&state).await;
    }
    match state.web.clone().oneshot(req).await {
        Ok(resp) => resp,
        Err(never) => match never {},
    }
}

async fn rpc(state: AppState, req: Request) -> Response {
    let limit = state.ctx.body_limit;
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return error_response(StatusCode::PAYLOAD_TOO_LARGE);
    }
    let body = match to_bytes(req.into_body(), limit).await {
        Ok(b) => b,
        // A chunked body over the limit (or a client that vanished mid-body).
        Err(_) => return error_response(StatusCode::PAYLOAD_TOO_LARGE),
    };
    let call = match codec::decode_call(&body) {
        Ok(c) => c,
        Err(e) => {
            tracing::error!("{e}: {:?}", String::from_utf8_lossy(&body));
            return error_response(StatusCode::BAD_REQUEST);
        }
    };
    tracing::trace!("XML-RPC method called: {}()", call.method);
    let dispatcher = state.dispatcher.clone();
    // A task of its own: a bug that panics costs this request a 500, never the server.
    let outcome = tokio::spawn(async move { dispatcher.call(&call.method, &call.params).await }).await;
    let xml = match outcome {
        Ok(Ok(value)) => codec::encode_response(value),
        Ok(Err(fault)) => codec::encode_fault(&fault),
        Err(e) => {
            tracing::error!("XML-RPC request handling failed: {e}");
            return error_response(StatusCode::INTERNAL_SERVER_ERROR);
        }
    };
    if xml.len() > BIG_REPLY {
        // The value tree behind a big reply (a struct per process) is freed by now,
        // in small pieces all over the heap: give those pages back once the
        // client is done (a trim walks the whole heap: not after every call).
        crate::heap::trim_soon();
    }
    (StatusCode::OK, [(header::CONTENT_TYPE, "text/xml")], Body::from(xml)).into_response()
}

/// A reply this size (a few hundred processes' info) is worth a heap trim after.
const BIG_REPLY: usize = 256 * 1024;
