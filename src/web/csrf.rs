//! Cross-site request forgery protection for the page's actions.
//!
//! Basic auth alone does not stop CSRF: a browser that has the credentials
//! cached sends them with a form another site makes it post. So every action
//! (always a POST) must pass two checks:
//!
//! 1. **The token.** corrald draws a random 256-bit token when its HTTP server
//!    starts and embeds it in every page it serves (`<meta name="csrf-token">`).
//!    An action carries it in the `X-CSRF-Token` header (the page's script) or
//!    a `csrf` form field (plain forms). Another site cannot read the page, so
//!    it cannot know the token. Comparison is constant-time.
//! 2. **The origin.** If the browser says where the request comes from, it
//!    must be this server: `Sec-Fetch-Site` must be `same-origin` or `none`,
//!    and an `Origin` header must name the same host and port as `Host`
//!    (`Origin: null`, sent by sandboxed frames and some redirects, is refused).
//!    Clients that send neither header (curl, scripts) rely on the token alone.
//!
//! Either failure is answered 403.

use axum::http::{header, HeaderMap};
use rand::RngCore;

/// Header the page's script sends the token in.
pub const HEADER: &str = "x-csrf-token";

/// Form field plain forms send the token in.
pub const FIELD: &str = "csrf";

/// Why an action was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CsrfError {
    /// No token in the header or the form.
    #[error("missing CSRF token")]
    Missing,
    /// A token that is not this daemon's.
    #[error("wrong CSRF token")]
    Wrong,
    /// `Sec-Fetch-Site` says another site made the request.
    #[error("cross-site request refused (Sec-Fetch-Site: {0})")]
    CrossSite(String),
    /// `Origin` names another origin than the one that served the page.
    #[error("cross-origin request refused (Origin: {0})")]
    CrossOrigin(String),
}

/// The daemon's token, drawn once per server start.
#[derive(Clone, PartialEq, Eq)]
pub struct CsrfToken(String);

impl std::fmt::Debug for CsrfToken {
    // Keep the secret out of logs and panics.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CsrfToken(..)")
    }
}

impl CsrfToken {
    /// A fresh random token (64 hex digits).
    pub fn generate() -> CsrfToken {
        let mut bytes = [0u8; 32];
        rand::rng().fill_bytes(&mut bytes);
        CsrfToken(bytes.iter().map(|b| format!("{b:02x}")).collect())
    }

    /// A fixed token (tests).
    pub fn from_string(token: impl Into<String>) -> CsrfToken {
        CsrfToken(token.into())
    }

    /// The token text, for embedding in pages.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Check a request's headers and its form token (if it had a form).
    pub fn check(&self, headers: &HeaderMap, form_token: Option<&str>) -> Result<(), CsrfError> {
        check_origin(headers)?;
        let given = headers.get(HEADER).and_then(|v| v.to_str().ok()).or(form_token);
        match given {
            None | Some("") => Err(CsrfError::Missing),
            Some(t) if constant_time_eq(t.as_bytes(), self.0.as_bytes()) => Ok(()),
            Some(_) => Err(CsrfError::Wrong),
        }
    }
}

fn check_origin(headers: &HeaderMap) -> Result<(), CsrfError> {
    if let Some(site) = headers.get("sec-fetch-site") {
        let site = String::from_utf8_lossy(site.as_bytes()).to_string();
        if site != "same-origin" && site != "none" {
            return Err(CsrfError::CrossSite(site));
        }
    }
    let Some(origin) = headers.get(header::ORIGIN) else {
        return Ok(());
    };
    let origin = String::from_utf8_lossy(origin.as_bytes()).to_string();
    let authority = origin.strip_prefix("http://").or_else(|| origin.strip_prefix("https://"));
    let host = headers.get(header::HOST).and_then(|h| h.to_str().ok());
    match (authority, host) {
        (Some(a), Some(h)) if a.eq_ignore_ascii_case(h) => Ok(()),
        _ => Err(CsrfError::CrossOrigin(origin)),
    }
}

/// Equality that takes the same time wherever the first difference is.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        // The length of the token is no secret (always 64).
        return false;
    }
    let diff = a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y));
    std::hint::black_box(diff) == 0
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, HeaderValue::from_static(v));
        }
        h
    }

    #[test]
    fn tokens_are_random_hex() {
        let a = CsrfToken::generate();
        let b = CsrfToken::generate();
        assert_ne!(a, b);
        assert_eq!(a.as_str().len(), 64);
        assert!(a.as_str().bytes().all(|c| c.is_ascii_hexdigit()));
        assert_eq!(format!("{a:?}"), "CsrfToken(..)");
    }

    #[test]
    fn the_right_token_in_header_or_form_passes() {
        let t = CsrfToken::from_string("secret");
        assert_eq!(t.check(&headers(&[(HEADER, "secret")]), None), Ok(()));
        assert_eq!(t.check(&headers(&[]), Some("secret")), Ok(()));
        let same_origin = headers(&[
            (HEADER, "secret"),
            ("host", "127.0.0.1:9001"),
            ("origin", "http://127.0.0.1:9001"),
            ("sec-fetch-site", "same-origin"),
        ]);
        assert_eq!(t.check(&same_origin, None), Ok(()));
    }

    #[test]
    fn missing_or_wrong_tokens_are_refused() {
        let t = CsrfToken::from_string("secret");
        assert_eq!(t.check(&headers(&[]), None), Err(CsrfError::Missing));
        assert_eq!(t.check(&headers(&[]), Some("")), Err(CsrfError::Missing));
        assert_eq!(t.check(&headers(&[(HEADER, "secreT")]), None), Err(CsrfError::Wrong));
        assert_eq!(t.check(&headers(&[]), Some("secret2")), Err(CsrfError::Wrong));
    }

    #[test]
    fn cross_site_requests_are_refused_even_with_the_token() {
        let t = CsrfToken::from_string("secret");
        let evil_origin =
            headers(&[(HEADER, "secret"), ("host", "127.0.0.1:9001"), ("origin", "http://evil.example")]);
        assert!(matches!(t.check(&evil_origin, None), Err(CsrfError::CrossOrigin(_))));
        let other_port =
            headers(&[(HEADER, "secret"), ("host", "127.0.0.1:9001"), ("origin", "http://127.0.0.1:9002")]);
        assert!(matches!(t.check(&other_port, None), Err(CsrfError::CrossOrigin(_))));
        let null = headers(&[(HEADER, "secret"), ("host", "127.0.0.1:9001"), ("origin", "null")]);
        assert!(matches!(t.check(&null, None), Err(CsrfError::CrossOrigin(_))));
        let no_host = headers(&[(HEADER, "secret"), ("origin", "http://127.0.0.1:9001")]);
        assert!(matches!(t.check(&no_host, None), Err(CsrfError::CrossOrigin(_))));
        let fetch_site = headers(&[(HEADER, "secret"), ("sec-fetch-site", "cross-site")]);
        assert_eq!(t.check(&fetch_site, None), Err(CsrfError::CrossSite("cross-site".into())));
        let same_site = headers(&[("sec-fetch-site", "same-site")]);
        assert!(matches!(t.check(&same_site, Some("secret")), Err(CsrfError::CrossSite(_))));
    }
}
