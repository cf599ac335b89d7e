//! Object paths for programs, escaped as systemd escapes unit names in paths.

use zbus::OwnedObjectPath;

/// Where the manager object lives.
pub const MANAGER_PATH: &str = "/org/corral/Corral1";

/// Parent of every program object.
pub const PROGRAM_PREFIX: &str = "/org/corral/Corral1/program";

/// systemd's `bus_label_escape`: bytes outside `[A-Za-z0-9]` become `_xx` (lower-case
/// hex), and the empty string becomes `_`, so any name yields one valid path element.
pub fn escape_label(name: &str) -> String {
    if name.is_empty() {
        return "_".to_string();
    }
    let mut out = String::with_capacity(name.len() * 3);
    for b in name.bytes() {
        if b.is_ascii_alphanumeric() {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("_{b:02x}"));
        }
    }
    out
}

/// The inverse of [`escape_label`]; `None` when `label` is not a valid escape.
pub fn unescape_label(label: &str) -> Option<String> {
    if label == "_" {
        return Some(String::new());
    }
    let bytes = label.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'_' {
            let hex = label.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// The object path of the program whose namespec is `namespec`.
pub fn program_path(namespec: &str) -> OwnedObjectPath {
    let path = format!("{PROGRAM_PREFIX}/{}", escape_label(namespec));
    // The escaped label only holds [A-Za-z0-9_], so the path is always valid.
    OwnedObjectPath::try_from(path).unwrap_or_else(|_| OwnedObjectPath::default())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_like_systemd() {
        assert_eq!(escape_label("web"), "web");
        assert_eq!(escape_label("pool:web_01"), "pool_3aweb_5f01");
        assert_eq!(escape_label("a-b.c"), "a_2db_2ec");
        assert_eq!(escape_label(""), "_");
        assert_eq!(escape_label("é"), "_c3_a9");
    }

    #[test]
    fn unescape_inverts_escape() {
        for name in ["web", "pool:web_01", "", "a b/c", "é"] {
            assert_eq!(unescape_label(&escape_label(name)).as_deref(), Some(name));
        }
        assert_eq!(unescape_label("_zz"), None);
        assert_eq!(unescape_label("_4"), None);
    }

    #[test]
    fn program_paths_are_valid_object_paths() {
        assert_eq!(program_path("g:p").as_str(), "/org/corral/Corral1/program/g_3ap");
        assert_eq!(program_path("").as_str(), "/org/corral/Corral1/program/_");
    }
}
