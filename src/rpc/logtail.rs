//! `/logtail/<namespec>[/<channel>]` and `/mainlogtail`: supervisord's `tail_f_producer`.
//!
//! The response starts with the last 1024 bytes of the file and then follows
//! it: appended bytes are sent as they appear, a shrunk file sends
//! `==> File truncated <==\n` and restarts at 0, and a replaced file (new
//! inode, i.e. rotation) is reopened and streamed from its start. There is no
//! Content-Length, so HTTP/1.1 clients get a chunked body that only ends when
//! the client goes away or the server stops. The file is checked every
//! `tail_poll` only while a client is connected.

use std::convert::Infallible;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::task::{Context, Poll};

use axum::body::{Body, Bytes, HttpBody};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use http_body::Frame;
use tokio::io::{AsyncReadExt, AsyncSeekExt};
use tokio::sync::{mpsc, watch};

use super::http::{error_response, AppState};
use crate::engine::{Channel, NameSpec};

/// How much of the existing file a new tail client gets first.
const HEAD: u64 = 1024;
/// Largest chunk read at once.
const CHUNK: u64 = 64 * 1024;

/// A response body fed by a channel; dropped (client gone) ends the producer.
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

/// Decode `%XX` escapes (supervisord unquotes the path when it contains `%`).
fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            let hex =
                std::str::from_utf8(&bytes[i + 1..i + 3]).ok().and_then(|h| u8::from_str_radix(h, 16).ok());
            if let Some(b) = hex {
                out.push(b);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Split `/<namespec>[/<channel>]` (the part after `/logtail`).
fn parse_tail_path(rest: &str) -> Option<(NameSpec, Option<Channel>)> {
    let decoded = percent_decode(rest);
    let path = decoded.trim_start_matches('/');
    if path.is_empty() {
        return None;
    }
    let (name, channel) = match path.split_once('/') {
        Some((n, c)) => (n, c),
        None => (path, "stdout"),
    };
    let channel = match channel {
        "stdout" => Some(Channel::Stdout),
        "stderr" => Some(Channel::Stderr),
        // supervisord looks up `<channel>_logfile`: anything else has no file.
        _ => None,
    };
    Some((NameSpec::parse(name), channel))
}

/// `GET /logtail/...`.
pub async fn process_tail(state: &AppState, rest: &str) -> Response {
    let Some((spec, Some(channel))) = parse_tail_path(rest) else {
        return error_response(StatusCode::NOT_FOUND);
    };
    if spec.process.is_none() {
        return error_response(StatusCode::NOT_FOUND);
    }
    match state.handle.log_path(spec, channel).await {
        Ok(Some(path)) => stream_file(state, path, true).await,
        _ => error_response(StatusCode::NOT_FOUND),
    }
}

/// `GET /mainlogtail`.
pub async fn main_tail(state: &AppState) -> Response {
    match state.handle.info().await {
        Ok(info) => match info.main_log {
            Some(path) => stream_file(state, path, false).await,
            None => error_response(StatusCode::NOT_FOUND),
        },
        Err(_) => error_response(StatusCode::NOT_FOUND),
    }
}

fn http_date(mtime: i64) -> String {
    chrono::DateTime::from_timestamp(mtime, 0)
        .map(|d| d.format("%a, %d %b %Y %H:%M:%S GMT").to_string())
        .unwrap_or_default()
}

async fn stream_file(state: &AppState, path: PathBuf, accel_header: bool) -> Response {
    let Ok(file) = tokio::fs::File::open(&path).await else {
        // Missing is a temporary condition (never started, reloadable config): 404 as supervisord.
        return error_response(StatusCode::NOT_FOUND);
    };
    let Ok(meta) = file.metadata().await else {
        return error_response(StatusCode::NOT_FOUND);
    };
    let (tx, rx) = mpsc::channel(4);
    let start = meta.len().saturating_sub(HEAD);
    tokio::spawn(follow(path, file, meta.ino(), start, tx, state.stopping.clone(), state.ctx.tail_poll));
    let mut resp = (StatusCode::OK, Body::new(ChannelBody(rx))).into_response();
    let headers = resp.headers_mut();
    headers.insert(header::CONTENT_TYPE, header::HeaderValue::from_static("text/plain;charset=utf-8"));
    if let Ok(v) = header::HeaderValue::from_str(&http_date(meta.mtime())) {
        headers.insert(header::LAST_MODIFIED, v);
    }
    if accel_header {
        // Tell reverse proxies (nginx) not to buffer the stream.
        headers.insert("x-accel-buffering", header::HeaderValue::from_static("no"));
    }
    resp
}

/// The producer: sends file data until the client leaves or the server stops.
async fn follow(
    path: PathBuf,
    mut file: tokio::fs::File,
    mut ino: u64,
    mut pos: u64,
    tx: mpsc::Sender<Bytes>,
    mut stopping: watch::Receiver<bool>,
    poll: std::time::Duration,
) {
    loop {
        if *stopping.borrow() {
            return;
        }
        // Rotation: the name now points to a new file; stream that one from its start.
        if let Some(new_ino) = inode(&path).await {
            if new_ino != ino {
                if let Ok(f) = tokio::fs::File::open(&path).await {
                    file = f;
                    ino = new_ino;
                    pos = 0;
                }
            }
        }
        let Ok(meta) = file.metadata().await else { return };
        let size = meta.len();
        if size < pos {
            pos = 0;
            if tx.send(Bytes::from_static(b"==> File truncated <==\n")).await.is_err() {
                return;
            }
            continue;
        }
        if size > pos {
            let want = (size - pos).min(CHUNK);
            let mut buf = vec![0u8; want as usize];
            if file.seek(std::io::SeekFrom::Start(pos)).await.is_err() {
                return;
            }
            let n = match file.read(&mut buf).await {
                Ok(n) => n,
                Err(_) => return,
            };
            buf.truncate(n);
            pos += n as u64;
            if n > 0 && tx.send(Bytes::from(buf)).await.is_err() {
                return;
            }
            if n > 0 {
                continue;
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(poll) => {}
            _ = stopping.changed() => return,
            _ = tx.closed() => return,
        }
    }
}

async fn inode(path: &Path) -> Option<u64> {
    tokio::fs::metadata(path).await.ok().map(|m| m.ino())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tail_paths() {
        let (spec, ch) = parse_tail_path("/web").unwrap();
        assert_eq!(spec, NameSpec::parse("web"));
        assert_eq!(ch, Some(Channel::Stdout));
        let (spec, ch) = parse_tail_path("/g%3Ap/stderr").unwrap();
        assert_eq!(spec, NameSpec::parse("g:p"));
        assert_eq!(ch, Some(Channel::Stderr));
        assert_eq!(parse_tail_path("/web/other").unwrap().1, None);
        assert!(parse_tail_path("").is_none());
        assert!(parse_tail_path("/").is_none());
        assert_eq!(percent_decode("a%2"), "a%2");
        assert_eq!(percent_decode("%zz%41"), "%zzA");
    }
}
