//! The HTML pages, their static assets, and the JSON the program page polls.
//!
//! Pages and assets are compiled into the binary (`include_str!`): nothing is
//! fetched at run time. Pages are small templates with `{{name}}`
//! placeholders filled with HTML-escaped values; everything dynamic is drawn
//! by `app.js` from `/api/*`.

use axum::extract::{Path, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use super::sampler::Sample;
use super::status::ProcessView;
use super::Web;
use crate::engine::NameSpec;

const INDEX_HTML: &str = include_str!("assets/index.html");
const PROGRAM_HTML: &str = include_str!("assets/program.html");
const STYLE_CSS: &str = include_str!("assets/style.css");
const APP_JS: &str = include_str!("assets/app.js");

/// Scripts only from this server; no framing (clickjacking of the action buttons).
const CSP: &str = "default-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; \
                   frame-ancestors 'none'; base-uri 'none'; form-action 'self'";

/// Escape text for HTML element content and quoted attributes.
pub fn html_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// Fill `{{key}}` placeholders with escaped values.
fn fill(template: &str, values: &[(&str, &str)]) -> String {
    let mut out = template.to_string();
    for (k, v) in values {
        out = out.replace(&format!("{{{{{k}}}}}"), &html_escape(v));
    }
    out
}

/// supervisord's UI headers: never cached.
fn no_cache(mut resp: Response, content_type: &'static str) -> Response {
    let h = resp.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    h.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    h.insert(header::EXPIRES, HeaderValue::from_static("Thu, 01 Jan 1970 00:00:00 GMT"));
    resp
}

fn html_page(body: String) -> Response {
    let mut resp = no_cache(body.into_response(), "text/html;charset=utf-8");
    let h = resp.headers_mut();
    h.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CSP));
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(header::REFERRER_POLICY, HeaderValue::from_static("same-origin"));
    resp
}

/// A plain 404.
pub fn not_found() -> Response {
    (StatusCode::NOT_FOUND, [(header::CONTENT_TYPE, "text/plain;charset=utf-8")], "Not Found\n")
        .into_response()
}

async fn identifier(web: &Web) -> String {
    web.handle.info().await.map(|i| i.identifier).unwrap_or_default()
}

/// `GET /` and `/index.html`.
pub async fn index(State(web): State<Web>) -> Response {
    let id = identifier(&web).await;
    html_page(fill(
        INDEX_HTML,
        &[("csrf", web.csrf.as_str()), ("identifier", &id), ("version", env!("CARGO_PKG_VERSION"))],
    ))
}

/// `GET /program/<namespec>`.
pub async fn program(State(web): State<Web>, Path(spec): Path<String>) -> Response {
    if web.handle.process_info(NameSpec::parse(&spec)).await.is_err() {
        return not_found();
    }
    let id = identifier(&web).await;
    html_page(fill(
        PROGRAM_HTML,
        &[
            ("csrf", web.csrf.as_str()),
            ("identifier", &id),
            ("namespec", &spec),
            ("version", env!("CARGO_PKG_VERSION")),
        ],
    ))
}

/// `GET /ok.html`: supervisord's health probe.
pub async fn ok() -> Response {
    ([(header::CONTENT_TYPE, "text/plain")], "OK").into_response()
}

/// `GET /static/<file>`.
pub async fn asset(Path(file): Path<String>) -> Response {
    let (body, kind) = match file.as_str() {
        "style.css" => (STYLE_CSS, "text/css;charset=utf-8"),
        "app.js" => (APP_JS, "text/javascript;charset=utf-8"),
        _ => return not_found(),
    };
    no_cache(body.into_response(), kind)
}

/// What the program page polls.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ProgramView {
    /// The process now.
    pub process: ProcessView,
    /// Its history, oldest first.
    pub samples: Vec<Sample>,
    /// Milliseconds between samples.
    pub interval_ms: u64,
}

/// `GET /api/program/<namespec>`: renews the sampler's interest.
pub async fn program_json(State(web): State<Web>, Path(spec): Path<String>) -> Response {
    web.sampler.touch();
    let Ok(info) = web.handle.process_info(NameSpec::parse(&spec)).await else {
        return not_found();
    };
    let samples = web.sampler.history(&info.group, &info.name);
    let view = ProgramView {
        process: ProcessView::new(&info, samples.last()),
        samples,
        interval_ms: web.sampler.config().interval.as_millis() as u64,
    };
    no_cache(axum::Json(view).into_response(), "application/json")
}

/// `GET /api/status`: the same data as the event stream, once.
pub async fn status_json(State(web): State<Web>) -> Response {
    web.sampler.touch();
    match super::status::snapshot(&web.handle, &web.sampler).await {
        Ok(view) => no_cache(axum::Json(view).into_response(), "application/json"),
        Err(f) => (StatusCode::SERVICE_UNAVAILABLE, f.text()).into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates_are_filled_with_escaped_values() {
        assert_eq!(
            html_escape("<a href=\"x\">'&'</a>"),
            "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;"
        );
        assert_eq!(fill("<p>{{who}} {{who}}</p>", &[("who", "<b>")]), "<p>&lt;b&gt; &lt;b&gt;</p>");
        for page in [INDEX_HTML, PROGRAM_HTML] {
            assert!(page.contains("<meta name=\"csrf-token\" content=\"{{csrf}}\">"));
            assert!(!page.contains("http://") && !page.contains("https://"), "no external resources");
        }
    }
}
