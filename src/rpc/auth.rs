//! HTTP Basic authentication as supervisord's medusa `auth_handler` does it.
//!
//! Passwords are plain text or `{SHA}` + the hex SHA-1 of the password. The
//! comparison hashes both sides to a fixed length first and compares the
//! digests in constant time, so neither timing nor length leaks the secret.

use base64::Engine as _;
use sha1::{Digest, Sha1};

use crate::config::model::Credentials;

/// Outcome of checking a request's `Authorization` header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthOutcome {
    /// Credentials match (or none are configured).
    Allowed,
    /// Missing or wrong credentials: 401 with `WWW-Authenticate`.
    Denied,
    /// The header's base64 does not decode: 400, as medusa answers.
    Malformed,
}

/// Check an `Authorization` header value against configured credentials.
pub fn check(expected: Option<&Credentials>, header: Option<&[u8]>) -> AuthOutcome {
    let Some(expected) = expected else {
        return AuthOutcome::Allowed;
    };
    let Some(header) = header else {
        return AuthOutcome::Denied;
    };
    let Ok(header) = std::str::from_utf8(header) else {
        return AuthOutcome::Denied;
    };
    let mut parts = header.trim().splitn(2, ' ');
    let scheme = parts.next().unwrap_or("");
    let encoded = parts.next().unwrap_or("").trim();
    if !scheme.eq_ignore_ascii_case("basic") {
        return AuthOutcome::Denied;
    }
    let Ok(decoded) = base64::engine::general_purpose::STANDARD.decode(encoded) else {
        return AuthOutcome::Malformed;
    };
    let decoded = String::from_utf8_lossy(&decoded);
    let Some((user, password)) = decoded.split_once(':') else {
        return AuthOutcome::Denied;
    };
    // Evaluate both comparisons before combining so a wrong user costs the same as a wrong password.
    let user_ok = digest_eq(user.as_bytes(), expected.username.as_bytes());
    let password_ok = password_matches(&expected.password, password);
    if user_ok & password_ok {
        AuthOutcome::Allowed
    } else {
        AuthOutcome::Denied
    }
}

/// supervisord's rule: `{SHA}<hex>` compares the SHA-1 hex digest, anything else compares plainly.
fn password_matches(configured: &str, given: &str) -> bool {
    match configured.strip_prefix("{SHA}") {
        Some(hex) => {
            let given_hex = hex_lower(&Sha1::digest(given.as_bytes()));
            digest_eq(given_hex.as_bytes(), hex.as_bytes())
        }
        None => digest_eq(given.as_bytes(), configured.as_bytes()),
    }
}

fn hex_lower(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Constant-time equality of two byte strings of any length (compares their SHA-1 digests).
fn digest_eq(a: &[u8], b: &[u8]) -> bool {
    let da = Sha1::digest(a);
    let db = Sha1::digest(b);
    let mut diff = 0u8;
    for (x, y) in da.iter().zip(db.iter()) {
        diff |= x ^ y;
    }
    // black_box keeps the optimiser from turning the fold into an early exit.
    std::hint::black_box(diff) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn creds(user: &str, password: &str) -> Credentials {
        Credentials { username: user.into(), password: password.into() }
    }

    fn basic(s: &str) -> Vec<u8> {
        format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(s)).into_bytes()
    }

    #[test]
    fn no_credentials_configured_allows_everything() {
        assert_eq!(check(None, None), AuthOutcome::Allowed);
    }

    #[test]
    fn plain_password() {
        let c = creds("user", "123");
        assert_eq!(check(Some(&c), Some(&basic("user:123"))), AuthOutcome::Allowed);
        assert_eq!(check(Some(&c), Some(&basic("user:1234"))), AuthOutcome::Denied);
        assert_eq!(check(Some(&c), Some(&basic("other:123"))), AuthOutcome::Denied);
        assert_eq!(check(Some(&c), Some(&basic("user"))), AuthOutcome::Denied);
        assert_eq!(check(Some(&c), None), AuthOutcome::Denied);
        assert_eq!(check(Some(&c), Some(b"Bearer abc")), AuthOutcome::Denied);
        // Passwords may contain colons: only the first one separates the user.
        let c = creds("u", "a:b");
        assert_eq!(check(Some(&c), Some(&basic("u:a:b"))), AuthOutcome::Allowed);
    }

    #[test]
    fn sha_password() {
        // sha1("thepassword")
        let c = creds("user", "{SHA}82ab876d1387bfafe46cc1c8a2ef074eae50cb1d");
        assert_eq!(check(Some(&c), Some(&basic("user:thepassword"))), AuthOutcome::Allowed);
        assert_eq!(check(Some(&c), Some(&basic("user:wrong"))), AuthOutcome::Denied);
        // The hash itself is not a valid password.
        assert_eq!(
            check(Some(&c), Some(&basic("user:{SHA}82ab876d1387bfafe46cc1c8a2ef074eae50cb1d"))),
            AuthOutcome::Denied
        );
    }

    #[test]
    fn malformed_base64_is_a_bad_request() {
        let c = creds("user", "123");
        assert_eq!(check(Some(&c), Some(b"Basic !!!notbase64")), AuthOutcome::Malformed);
    }
}
