//! Signal names and numbers as supervisord accepts them (`HUP`, `SIGHUP`, `1`).

use nix::sys::signal::Signal;

/// Parse a signal given by name (case-insensitive, with or without `SIG`) or number.
pub fn parse_signal(value: &str) -> Option<i32> {
    let v = value.trim();
    if let Ok(n) = v.parse::<i32>() {
        return Signal::try_from(n).ok().map(|s| s as i32);
    }
    let upper = v.to_ascii_uppercase();
    let name = if upper.starts_with("SIG") { upper } else { format!("SIG{upper}") };
    Signal::iterator().find(|s| s.as_str() == name).map(|s| s as i32)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_names_with_and_without_sig_and_numbers() {
        assert_eq!(parse_signal("HUP"), Some(1));
        assert_eq!(parse_signal("sigterm"), Some(15));
        assert_eq!(parse_signal("9"), Some(9));
        assert_eq!(parse_signal("FOO"), None);
        assert_eq!(parse_signal("0"), None);
        assert_eq!(parse_signal("999"), None);
    }
}
