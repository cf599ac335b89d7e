//! Any bytes as a supervisord.conf and its `[include]` tree: the full typed load
//! (INI reader, `[DEFAULT]`, `%(x)s` expansion, every section, value parsing)
//! returns a `Config` or a `ConfigError` that renders both ways, and never panics.
//!
//! Input: the main file, then any number of included files, each starting at a
//! line `>>> NAME` (NAME relative to the main file's directory). The include tree
//! is held in memory, so `files=` patterns never reach the real filesystem; the
//! only outside reads are `stat`s of directories and passwd/group look-ups.
#![no_main]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use corral::config::{describe, load_text_with, Environment, MemoryFiles};
use libfuzzer_sys::fuzz_target;

/// The main file's directory: one that exists, so `%(here)s` paths can pass the
/// "existing directory" checks.
const HERE: &str = "/tmp";
const MARKER: &[u8] = b">>> ";

fn env() -> &'static Environment {
    static ENV: OnceLock<Environment> = OnceLock::new();
    ENV.get_or_init(|| {
        let vars: BTreeMap<String, String> = [("HOME", "/root"), ("PATH", "/usr/bin:/bin"), ("USER", "root")]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Environment { vars, host_node_name: "fuzzhost".to_string(), cwd: PathBuf::from(HERE) }
    })
}

/// Splits the input at every line that starts with `>>> `: the main file's bytes
/// and the included files (name, bytes).
fn split(data: &[u8]) -> (&[u8], Vec<(String, &[u8])>) {
    let mut starts = Vec::new();
    let mut at = 0;
    while at < data.len() {
        if data[at..].starts_with(MARKER) && (at == 0 || data[at - 1] == b'\n') {
            starts.push(at);
        }
        at += 1;
    }
    let main_end = starts.first().copied().unwrap_or(data.len());
    let mut includes = Vec::new();
    for (i, &start) in starts.iter().enumerate() {
        let end = starts.get(i + 1).copied().unwrap_or(data.len());
        let block = &data[start + MARKER.len()..end];
        let (name, body) = match block.iter().position(|&b| b == b'\n') {
            Some(nl) => (&block[..nl], &block[nl + 1..]),
            None => (block, &block[block.len()..]),
        };
        includes.push((String::from_utf8_lossy(name).into_owned(), body));
    }
    (&data[..main_end], includes)
}

fuzz_target!(|data: &[u8]| {
    let (main, includes) = split(data);
    let mut files = MemoryFiles::new();
    for (name, body) in includes {
        files.insert(Path::new(HERE).join(name), body);
    }
    let text = String::from_utf8_lossy(main);
    let path = Path::new(HERE).join("supervisord.conf");
    match load_text_with(&path, &text, env(), &files) {
        Ok(config) => {
            let _ = describe(&config);
        }
        Err(e) => {
            assert!(!e.to_string().is_empty());
            let _ = e.supervisord_message();
        }
    }
});
