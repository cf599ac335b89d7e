//! `GET /api/events`: Server-Sent Events that keep the page current.
//!
//! Each event is `event: status` with the whole [`StatusView`](super::status::StatusView)
//! as data: one at connect, one after every burst of engine notices (state
//! changes, groups added or removed, mood), and one per sampler interval for
//! fresh CPU and memory numbers. The interval timer belongs to the connection:
//! it exists only while a page is open, and each tick renews the sampler's
//! interest. The stream ends when the client leaves, the engine stops, or the
//! server shuts down.

use std::convert::Infallible;
use std::pin::Pin;
use std::task::{Context, Poll};

use axum::body::{Body, Bytes, HttpBody};
use axum::extract::State;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use http_body::Frame;
use tokio::sync::broadcast::error::RecvError;
use tokio::sync::mpsc;

use super::status::snapshot;
use super::Web;
use crate::engine::Notice;

/// A response body fed by a channel; dropping it (client gone) ends the producer.
struct ChannelBody(mpsc::Receiver<Bytes>);

impl HttpBody for ChannelBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        self.0.poll_recv(cx).map(|o| o.map(|b| Ok(Frame::data(b))))
    }
}

/// Frame one SSE event. `data` is one line of JSON, so it needs no splitting.
pub fn sse_event(event: &str, data: &str) -> String {
    format!("event: {event}\ndata: {data}\n\n")
}

/// Whether a notice can change what the page shows.
fn changes_status(notice: &Notice) -> bool {
    matches!(
        notice,
        Notice::ProcessState { .. }
            | Notice::GroupAdded(_)
            | Notice::GroupRemoved(_)
            | Notice::Mood(_)
            | Notice::Oom { .. }
            | Notice::Unhealthy { .. }
    )
}

/// `GET /api/events`.
pub async fn stream(State(web): State<Web>) -> Response {
    let (tx, rx) = mpsc::channel::<Bytes>(8);
    web.sampler.touch();
    tokio::spawn(produce(web, tx));
    let mut resp = (StatusCode::OK, Body::new(ChannelBody(rx))).into_response();
    let h = resp.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/event-stream"));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    h.insert("x-accel-buffering", HeaderValue::from_static("no"));
    resp
}

async fn send_status(web: &Web, tx: &mpsc::Sender<Bytes>) -> bool {
    let Ok(view) = snapshot(&web.handle, &web.sampler).await else {
        return false;
    };
    let Ok(json) = serde_json::to_string(&view) else {
        return false;
    };
    tx.send(Bytes::from(sse_event("status", &json))).await.is_ok()
}

async fn produce(web: Web, tx: mpsc::Sender<Bytes>) {
    // Subscribe before the first snapshot so no change falls between them.
    let mut notices = web.handle.subscribe();
    let mut stopping = web.stopping.clone();
    // Tell the browser how soon to reconnect if the stream breaks.
    if tx.send(Bytes::from_static(b"retry: 2000\n\n")).await.is_err() {
        return;
    }
    if !send_status(&web, &tx).await {
        return;
    }
    let mut tick = tokio::time::interval(web.sampler.config().interval);
    // After a slow snapshot, wait a full interval rather than catching up in a burst.
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await; // The first tick is immediate; the snapshot above covers it.
    loop {
        tokio::select! {
            notice = notices.recv() => match notice {
                Ok(n) if !changes_status(&n) => continue,
                Ok(_) | Err(RecvError::Lagged(_)) => {
                    // Coalesce a burst (start all) into one snapshot.
                    while notices.try_recv().is_ok() {}
                }
                Err(RecvError::Closed) => return,
            },
            _ = tick.tick() => web.sampler.touch(),
            _ = stopping.wait_for(|s| *s) => return,
            _ = tx.closed() => return,
        }
        if !send_status(&web, &tx).await {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_are_framed_with_a_blank_line() {
        assert_eq!(sse_event("status", "{\"a\":1}"), "event: status\ndata: {\"a\":1}\n\n");
        assert!(changes_status(&Notice::GroupAdded("g".into())));
        assert!(!changes_status(&Notice::RemoteCommunication { kind: "k".into(), data: "d".into() }));
    }
}
