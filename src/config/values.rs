//! Value syntaxes of supervisord options (booleans, sizes, signals, ...) and
//! of corral's own options, each failing with supervisord's message text and
//! a short description of what would have been accepted.

use super::model::{AutoRestart, KillMode, LogLevel};
use super::pyfmt::{py_int, py_repr};

/// A value that does not parse: supervisord's message and what was expected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadValue {
    /// supervisord's message text.
    pub message: String,
    /// What would have been accepted, e.g. `an integer`.
    pub expected: &'static str,
}

impl BadValue {
    /// A new error.
    pub fn new(message: impl Into<String>, expected: &'static str) -> Self {
        BadValue { message: message.into(), expected }
    }
}

/// Result of a value parser.
pub type ValueResult<T> = Result<T, BadValue>;

const INTEGER: &str = "an integer";

/// `int(value)`.
pub fn integer(s: &str) -> ValueResult<i64> {
    py_int(s).map_err(|m| BadValue::new(m, INTEGER))
}

/// A non-negative integer that fits `T` (supervisord accepts negatives
/// for counts and times and then misbehaves; corral refuses them).
pub fn unsigned<T: TryFrom<i64>>(s: &str) -> ValueResult<T> {
    let n = integer(s)?;
    T::try_from(n).map_err(|_| {
        BadValue::new(
            format!("{} is not a non-negative integer in range", py_repr(s)),
            "a non-negative integer",
        )
    })
}

/// A count of at least 1 that fits `T` (corral options where 0 would silently
/// mean something else: `start_limit_burst`, `backoff_max`, `healthcheck_retries`).
pub fn positive<T: TryFrom<i64>>(s: &str) -> ValueResult<T> {
    const EXPECTED: &str = "an integer of 1 or more";
    match integer(s) {
        Ok(n) if n >= 1 => {
            T::try_from(n).map_err(|_| BadValue::new(format!("{} is out of range", py_repr(s)), EXPECTED))
        }
        Ok(_) => Err(BadValue::new(format!("{} is less than 1", py_repr(s)), EXPECTED)),
        Err(b) => Err(BadValue::new(b.message, EXPECTED)),
    }
}

/// An `i32` (priorities).
pub fn int32(s: &str) -> ValueResult<i32> {
    let n = integer(s)?;
    i32::try_from(n).map_err(|_| {
        BadValue::new(
            format!("{} is out of range", py_repr(s)),
            "an integer between -2147483648 and 2147483647",
        )
    })
}

/// supervisord's `boolean`: `true/false, yes/no, on/off, 1/0`, any case.
pub fn boolean(s: &str) -> ValueResult<bool> {
    match s.to_lowercase().as_str() {
        "yes" | "true" | "on" | "1" => Ok(true),
        "no" | "false" | "off" | "0" => Ok(false),
        _ => Err(BadValue::new(
            format!("not a valid boolean value: {}", py_repr(s)),
            "true/false, yes/no, on/off or 1/0",
        )),
    }
}

/// supervisord's `byte_size`: an integer with an optional `KB`/`MB`/`GB`
/// suffix (any case), 1024-based.
pub fn byte_size(s: &str) -> ValueResult<u64> {
    const EXPECTED: &str = "a byte count, optionally with suffix KB, MB or GB (1024-based)";
    let lower = s.to_lowercase();
    let (digits, mult) = match lower.len().checked_sub(2).and_then(|i| lower.get(i..)) {
        Some("kb") => (&lower[..lower.len() - 2], 1024u64),
        Some("mb") => (&lower[..lower.len() - 2], 1024 * 1024),
        Some("gb") => (&lower[..lower.len() - 2], 1024 * 1024 * 1024),
        _ => (lower.as_str(), 1),
    };
    let n = py_int(digits).map_err(|m| BadValue::new(m, EXPECTED))?;
    u64::try_from(n)
        .ok()
        .and_then(|n| n.checked_mul(mult))
        .ok_or_else(|| BadValue::new(format!("{} is not a valid byte size", py_repr(s)), EXPECTED))
}

/// supervisord's `octal_type` (`022`, `0700`, `0o22`).
pub fn octal(s: &str) -> ValueResult<u32> {
    let t = s.trim();
    let digits = t.strip_prefix("0o").or_else(|| t.strip_prefix("0O")).unwrap_or(t);
    if !digits.is_empty() && digits.chars().all(|c| ('0'..='7').contains(&c)) {
        if let Ok(v) = u32::from_str_radix(digits, 8) {
            return Ok(v);
        }
    }
    Err(BadValue::new(format!("{s} can not be converted to an octal type"), "an octal number such as 022"))
}

/// Python's `signal` module names and numbers on Linux (what supervisord
/// accepts; `SIG_DFL`-style constants included, as `getattr` finds them).
const SIGNALS: &[(&str, i32)] = &[
    ("SIGABRT", 6),
    ("SIGALRM", 14),
    ("SIGBUS", 7),
    ("SIGCHLD", 17),
    ("SIGCLD", 17),
    ("SIGCONT", 18),
    ("SIGFPE", 8),
    ("SIGHUP", 1),
    ("SIGILL", 4),
    ("SIGINT", 2),
    ("SIGIO", 29),
    ("SIGIOT", 6),
    ("SIGKILL", 9),
    ("SIGPIPE", 13),
    ("SIGPOLL", 29),
    ("SIGPROF", 27),
    ("SIGPWR", 30),
    ("SIGQUIT", 3),
    ("SIGRTMAX", 64),
    ("SIGRTMIN", 34),
    ("SIGSEGV", 11),
    ("SIGSTKFLT", 16),
    ("SIGSTOP", 19),
    ("SIGSYS", 31),
    ("SIGTERM", 15),
    ("SIGTRAP", 5),
    ("SIGTSTP", 20),
    ("SIGTTIN", 21),
    ("SIGTTOU", 22),
    ("SIGURG", 23),
    ("SIGUSR1", 10),
    ("SIGUSR2", 12),
    ("SIGVTALRM", 26),
    ("SIGWINCH", 28),
    ("SIGXCPU", 24),
    ("SIGXFSZ", 25),
    ("SIG_BLOCK", 0),
    ("SIG_DFL", 0),
    ("SIG_IGN", 1),
    ("SIG_SETMASK", 2),
    ("SIG_UNBLOCK", 1),
];

/// supervisord's `signal_number`: a name with or without `SIG`, any case, or
/// a number that is one of the module's signal numbers.
pub fn signal_number(s: &str) -> ValueResult<i32> {
    const EXPECTED: &str = "a signal name such as TERM or SIGHUP, or its number";
    let num = match py_int(s) {
        Ok(n) => n,
        Err(_) => {
            let upper = s.trim().to_uppercase();
            let name = if upper.starts_with("SIG") { upper } else { format!("SIG{upper}") };
            match SIGNALS.iter().find(|(n, _)| *n == name) {
                Some((_, n)) => i64::from(*n),
                None => {
                    return Err(BadValue::new(
                        format!("value {} is not a valid signal name", py_repr(s)),
                        EXPECTED,
                    ))
                }
            }
        }
    };
    match SIGNALS.iter().find(|(_, n)| i64::from(*n) == num) {
        Some((_, n)) => Ok(*n),
        None => Err(BadValue::new(format!("value {} is not a valid signal number", py_repr(s)), EXPECTED)),
    }
}

/// supervisord's `list_of_exitcodes`: comma-separated integers 0–255.
pub fn exitcodes(s: &str) -> ValueResult<Vec<i32>> {
    let bad = || {
        BadValue::new(
            format!("not a valid list of exit codes: {}", py_repr(s)),
            "comma-separated exit codes between 0 and 255",
        )
    };
    if s.is_empty() {
        return Ok(Vec::new());
    }
    s.split(',')
        .map(|part| match py_int(part) {
            Ok(n) if (0..=255).contains(&n) => Ok(n as i32),
            _ => Err(bad()),
        })
        .collect()
}

/// supervisord's `list_of_strings`: comma-separated, items stripped.
pub fn list_of_strings(s: &str) -> Vec<String> {
    if s.is_empty() {
        return Vec::new();
    }
    s.split(',').map(|x| x.trim().to_string()).collect()
}

/// supervisord's `auto_restart`.
pub fn auto_restart(s: &str) -> ValueResult<AutoRestart> {
    let lower = s.to_lowercase();
    match lower.as_str() {
        "yes" | "true" | "on" | "1" => Ok(AutoRestart::Always),
        "no" | "false" | "off" | "0" => Ok(AutoRestart::Never),
        "unexpected" => Ok(AutoRestart::Unexpected),
        _ => Err(BadValue::new(
            format!("invalid 'autorestart' value {}", py_repr(&lower)),
            "true, false or unexpected",
        )),
    }
}

/// supervisord's `logging_level`.
pub fn logging_level(s: &str) -> ValueResult<LogLevel> {
    Ok(match s.to_lowercase().as_str() {
        "critical" => LogLevel::Critical,
        "error" => LogLevel::Error,
        "warn" => LogLevel::Warn,
        "info" => LogLevel::Info,
        "debug" => LogLevel::Debug,
        "trace" => LogLevel::Trace,
        "blather" => LogLevel::Blather,
        _ => {
            return Err(BadValue::new(
                format!("bad logging level name {}", py_repr(s)),
                "critical, error, warn, info, debug, trace or blather",
            ))
        }
    })
}

/// supervisord's `process_or_group_name`: stripped, no space, `:` or `/`.
pub fn process_or_group_name(s: &str) -> ValueResult<String> {
    let t = s.trim();
    for c in [' ', ':', '/'] {
        if t.contains(c) {
            return Err(BadValue::new(
                format!("Invalid name: {} because of character: {}", py_repr(s), py_repr(&c.to_string())),
                "a name without spaces, ':' or '/'",
            ));
        }
    }
    Ok(t.to_string())
}

/// supervisord's `inet_address`: `host:port`, `:port`, `*:port` or `port`.
pub fn inet_address(s: &str) -> ValueResult<(String, u16)> {
    const EXPECTED: &str = "host:port, *:port or a port number (1-65535)";
    let port_number = |p: &str| -> ValueResult<u16> {
        let n = py_int(p).map_err(|m| BadValue::new(m, EXPECTED))?;
        if n < 1 {
            return Err(BadValue::new(format!("{n} is below lower bound (1)"), EXPECTED));
        }
        if n > 0xffff {
            return Err(BadValue::new(format!("{n} is above upper bound (65535)"), EXPECTED));
        }
        Ok(n as u16)
    };
    let (host, port) = match s.rsplit_once(':') {
        Some((host, p)) => {
            if p.is_empty() {
                return Err(BadValue::new("no port number specified in ''", EXPECTED));
            }
            (host.to_lowercase(), port_number(p)?)
        }
        None => {
            let port = port_number(s)
                .map_err(|_| BadValue::new(format!("not a valid port number: {} ", py_repr(s)), EXPECTED))?;
            (String::new(), port)
        }
    };
    Ok((if host == "*" { String::new() } else { host }, port))
}

/// supervisord's `dict_of_key_value_pairs`: `K=v,K2="a, b"` lexed the way
/// Python's non-POSIX `shlex` lexes it, with supervisord's quirks (the token
/// after each `K=V` is skipped unchecked; outer quotes are stripped).
pub fn key_value_pairs(s: &str) -> ValueResult<Vec<(String, String)>> {
    const EXPECTED: &str = "KEY=value pairs separated by commas, values with spaces or commas quoted";
    let tokens = shlex_tokens(s).map_err(|m| BadValue::new(m, EXPECTED))?;
    let mut out: Vec<(String, String)> = Vec::new();
    let mut i = 0;
    while i < tokens.len() {
        if i + 2 >= tokens.len() || tokens[i + 1] != "=" {
            return Err(BadValue::new(format!("Unexpected end of key/value pairs in value '{s}'"), EXPECTED));
        }
        let key = tokens[i].clone();
        let value = tokens[i + 2].trim_matches(['\'', '"']).to_string();
        match out.iter_mut().find(|(k, _)| *k == key) {
            Some((_, v)) => *v = value,
            None => out.push((key, value)),
        }
        i += 4;
    }
    Ok(out)
}

/// Python's `shlex.shlex(s)` (non-POSIX) token stream with `/.+-():` added to
/// the word characters.
fn shlex_tokens(s: &str) -> Result<Vec<String>, String> {
    let is_word = |c: char| c.is_ascii_alphanumeric() || "_/.+-():".contains(c);
    let is_space = |c: char| " \t\r\n".contains(c);
    let chars: Vec<char> = s.chars().collect();
    let mut tokens = Vec::new();
    let mut i = 0;
    let skip_comment = |i: &mut usize| {
        while *i < chars.len() && chars[*i] != '\n' {
            *i += 1;
        }
        if *i < chars.len() {
            *i += 1;
        }
    };
    while i < chars.len() {
        let c = chars[i];
        i += 1;
        if is_space(c) {
            continue;
        }
        if c == '#' {
            skip_comment(&mut i);
            continue;
        }
        if c == '\'' || c == '"' {
            let mut tok = String::from(c);
            loop {
                let Some(&n) = chars.get(i) else {
                    return Err("No closing quotation".to_string());
                };
                i += 1;
                tok.push(n);
                if n == c {
                    break;
                }
            }
            tokens.push(tok);
            continue;
        }
        if !is_word(c) {
            tokens.push(c.to_string());
            continue;
        }
        let mut tok = String::from(c);
        while let Some(&n) = chars.get(i) {
            if is_word(n) || n == '\'' || n == '"' {
                tok.push(n);
                i += 1;
            } else if n == '#' {
                // A comment inside a word drops the rest of the line but
                // keeps the word going on the next line (non-POSIX shlex).
                skip_comment(&mut i);
            } else {
                break;
            }
        }
        tokens.push(tok);
    }
    Ok(tokens)
}

/// A corral memory size: bytes, or a number with `K`/`M`/`G`/`T` or
/// `KB`/`MB`/`GB`/`TB` (1024-based, any case); `infinity`/`max` = no limit.
pub fn memory_size(s: &str) -> ValueResult<Option<u64>> {
    const EXPECTED: &str =
        "a size in bytes or with suffix K, M, G, T (1024-based), e.g. 512M or 2G, or 'infinity'";
    let t = s.trim();
    let lower = t.to_lowercase();
    if lower == "infinity" || lower == "max" {
        return Ok(None);
    }
    let body = lower.strip_suffix('b').filter(|b| b.ends_with(['k', 'm', 'g', 't']));
    let body = body.unwrap_or(&lower);
    let (digits, shift) = match body.chars().last() {
        Some('k') => (&body[..body.len() - 1], 10),
        Some('m') => (&body[..body.len() - 1], 20),
        Some('g') => (&body[..body.len() - 1], 30),
        Some('t') => (&body[..body.len() - 1], 40),
        _ => (body, 0),
    };
    let bad = || BadValue::new(format!("invalid size {}", py_repr(s)), EXPECTED);
    if digits.is_empty() || !digits.chars().all(|c| c.is_ascii_digit()) {
        return Err(bad());
    }
    let n: u64 = digits.parse().map_err(|_| bad())?;
    n.checked_mul(1u64 << shift).map(Some).ok_or_else(bad)
}

/// corral `cpu_quota`: a positive percentage of one CPU, `150%` → 150.
pub fn cpu_quota(s: &str) -> ValueResult<u32> {
    const EXPECTED: &str = "a percentage of one CPU ending in %, e.g. 50% or 150%";
    let t = s.trim();
    let bad = || BadValue::new(format!("invalid CPU quota {}", py_repr(s)), EXPECTED);
    let digits = t.strip_suffix("%%").or_else(|| t.strip_suffix('%')).ok_or_else(bad)?.trim_end();
    match digits.parse::<u32>() {
        Ok(n) if n >= 1 && digits.chars().all(|c| c.is_ascii_digit()) => Ok(n),
        _ => Err(bad()),
    }
}

/// corral `cpu_weight`/`io_weight`: an integer 1–10000.
pub fn weight(s: &str) -> ValueResult<u32> {
    const EXPECTED: &str = "an integer between 1 and 10000";
    let n = py_int(s).map_err(|m| BadValue::new(m, EXPECTED))?;
    if (1..=10000).contains(&n) {
        Ok(n as u32)
    } else {
        Err(BadValue::new(format!("weight {n} is out of range"), EXPECTED))
    }
}

/// corral `tasks_max`: a positive integer, or `infinity`/`max`.
pub fn tasks_max(s: &str) -> ValueResult<Option<u64>> {
    const EXPECTED: &str = "a positive integer or 'infinity'";
    let lower = s.trim().to_lowercase();
    if lower == "infinity" || lower == "max" {
        return Ok(None);
    }
    let n = py_int(s).map_err(|m| BadValue::new(m, EXPECTED))?;
    if n >= 1 {
        Ok(Some(n as u64))
    } else {
        Err(BadValue::new(format!("tasks_max {n} is below 1"), EXPECTED))
    }
}

/// corral `oom_score_adj`: an integer -1000..=1000.
pub fn oom_score_adj(s: &str) -> ValueResult<i32> {
    const EXPECTED: &str = "an integer between -1000 and 1000";
    let n = py_int(s).map_err(|m| BadValue::new(m, EXPECTED))?;
    if (-1000..=1000).contains(&n) {
        Ok(n as i32)
    } else {
        Err(BadValue::new(format!("oom_score_adj {n} is out of range"), EXPECTED))
    }
}

/// Apply one limit change in config syntax (`memory_max` = `512M`, `cpu_quota` =
/// `150%`; `max` or empty unsets) to `limits`, as `corral.setLimits`, D-Bus
/// `SetProgramLimits` and `corralctl limits` take them. The error names the option.
pub fn set_limit(limits: &mut super::model::Limits, key: &str, raw: &str) -> Result<(), String> {
    let unset = raw.trim().is_empty() || raw.trim().eq_ignore_ascii_case("max");
    let err = |e: BadValue| format!("{key}: {} (expected {})", e.message, e.expected);
    match key {
        "memory_max" => limits.memory_max = if unset { None } else { memory_size(raw).map_err(err)? },
        "memory_high" => limits.memory_high = if unset { None } else { memory_size(raw).map_err(err)? },
        "memory_swap_max" => {
            limits.memory_swap_max = if unset { None } else { memory_size(raw).map_err(err)? }
        }
        "cpu_quota" => limits.cpu_quota = if unset { None } else { Some(cpu_quota(raw).map_err(err)?) },
        "cpu_weight" => limits.cpu_weight = if unset { None } else { Some(weight(raw).map_err(err)?) },
        "io_weight" => limits.io_weight = if unset { None } else { Some(weight(raw).map_err(err)?) },
        "tasks_max" => limits.tasks_max = if unset { None } else { tasks_max(raw).map_err(err)? },
        other => return Err(format!("unknown limit {other:?}")),
    }
    Ok(())
}

/// corral `requires`/`after`: program names and `group:*`, separated by
/// commas or white space.
pub fn dependencies(s: &str) -> ValueResult<Vec<super::model::Dependency>> {
    const EXPECTED: &str = "program names or group:* entries, separated by commas or spaces";
    let mut out = Vec::new();
    for word in s.split(|c: char| c == ',' || c.is_whitespace()).filter(|w| !w.is_empty()) {
        let dep = match word.strip_suffix(":*") {
            Some(group) => super::model::Dependency::Group(group.to_string()),
            None => super::model::Dependency::Program(word.to_string()),
        };
        let name = match &dep {
            super::model::Dependency::Program(n) | super::model::Dependency::Group(n) => n,
        };
        if name.is_empty() || name.contains([':', '/', '*']) {
            return Err(BadValue::new(format!("invalid dependency {}", py_repr(word)), EXPECTED));
        }
        if !out.contains(&dep) {
            out.push(dep);
        }
    }
    Ok(out)
}

/// corral `backoff`: `linear` or `exponential`.
pub fn backoff(s: &str) -> ValueResult<super::model::Backoff> {
    match s.trim().to_lowercase().as_str() {
        "linear" => Ok(super::model::Backoff::Linear),
        "exponential" => Ok(super::model::Backoff::Exponential),
        _ => Err(BadValue::new(format!("invalid backoff {}", py_repr(s)), "'linear' or 'exponential'")),
    }
}

/// corral `kill_mode`: `cgroup`, `group` or `process`.
pub fn kill_mode(s: &str) -> ValueResult<KillMode> {
    match s.trim().to_lowercase().as_str() {
        "cgroup" => Ok(KillMode::Cgroup),
        "group" => Ok(KillMode::Group),
        "process" => Ok(KillMode::Process),
        _ => Err(BadValue::new(
            format!("invalid 'kill_mode' value {}", py_repr(s)),
            "cgroup, group or process",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg<T: std::fmt::Debug>(r: ValueResult<T>) -> String {
        r.unwrap_err().message
    }

    #[test]
    fn booleans() {
        for t in ["true", "Yes", "ON", "1"] {
            assert_eq!(boolean(t), Ok(true));
        }
        for f in ["false", "no", "Off", "0"] {
            assert_eq!(boolean(f), Ok(false));
        }
        assert_eq!(msg(boolean("maybe")), "not a valid boolean value: 'maybe'");
    }

    #[test]
    fn byte_sizes_are_1024_based() {
        assert_eq!(byte_size("50MB"), Ok(52_428_800));
        assert_eq!(byte_size("1kb"), Ok(1024));
        assert_eq!(byte_size("2GB"), Ok(2 * 1024 * 1024 * 1024));
        assert_eq!(byte_size("0"), Ok(0));
        assert_eq!(byte_size("300"), Ok(300));
        assert_eq!(msg(byte_size("5.5MB")), "invalid literal for int() with base 10: '5.5'");
        assert_eq!(msg(byte_size("10K")), "invalid literal for int() with base 10: '10k'");
    }

    #[test]
    fn octals() {
        assert_eq!(octal("022"), Ok(0o22));
        assert_eq!(octal("0700"), Ok(0o700));
        assert_eq!(octal("700"), Ok(0o700));
        assert_eq!(msg(octal("089")), "089 can not be converted to an octal type");
    }

    #[test]
    fn signals() {
        assert_eq!(signal_number("TERM"), Ok(15));
        assert_eq!(signal_number("sigkill"), Ok(9));
        assert_eq!(signal_number(" hup "), Ok(1));
        assert_eq!(signal_number("9"), Ok(9));
        assert_eq!(signal_number("RTMIN"), Ok(34));
        assert_eq!(msg(signal_number("FOO")), "value 'FOO' is not a valid signal name");
        assert_eq!(msg(signal_number("35")), "value '35' is not a valid signal number");
    }

    #[test]
    fn exit_codes() {
        assert_eq!(exitcodes("0,2"), Ok(vec![0, 2]));
        assert_eq!(exitcodes(" 1 , 255"), Ok(vec![1, 255]));
        assert_eq!(msg(exitcodes("0,256")), "not a valid list of exit codes: '0,256'");
        assert_eq!(msg(exitcodes("a")), "not a valid list of exit codes: 'a'");
    }

    #[test]
    fn autorestart_values() {
        assert_eq!(auto_restart("unexpected"), Ok(AutoRestart::Unexpected));
        assert_eq!(auto_restart("TRUE"), Ok(AutoRestart::Always));
        assert_eq!(auto_restart("off"), Ok(AutoRestart::Never));
        assert_eq!(msg(auto_restart("Maybe")), "invalid 'autorestart' value 'maybe'");
    }

    #[test]
    fn names() {
        assert_eq!(process_or_group_name(" web "), Ok("web".to_string()));
        assert_eq!(msg(process_or_group_name("a:b")), "Invalid name: 'a:b' because of character: ':'");
    }

    #[test]
    fn inet_addresses() {
        assert_eq!(inet_address("127.0.0.1:9001"), Ok(("127.0.0.1".into(), 9001)));
        assert_eq!(inet_address("*:9001"), Ok((String::new(), 9001)));
        assert_eq!(inet_address(":9001"), Ok((String::new(), 9001)));
        assert_eq!(inet_address("9001"), Ok((String::new(), 9001)));
        assert_eq!(inet_address("LocalHost:1"), Ok(("localhost".into(), 1)));
        assert_eq!(msg(inet_address("x")), "not a valid port number: 'x' ");
        assert_eq!(msg(inet_address("h:0")), "0 is below lower bound (1)");
        assert_eq!(msg(inet_address("h:")), "no port number specified in ''");
    }

    fn kv(s: &str) -> Vec<(String, String)> {
        key_value_pairs(s).unwrap()
    }

    fn pairs(p: &[(&str, &str)]) -> Vec<(String, String)> {
        p.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn environment_quirks() {
        assert_eq!(kv("A=\"1,2\",B='x y',C=plain"), pairs(&[("A", "1,2"), ("B", "x y"), ("C", "plain")]));
        assert_eq!(kv("K=a b"), pairs(&[("K", "a")]));
        assert_eq!(kv("A=$HOME"), pairs(&[("A", "$")]));
        assert_eq!(kv("K=\"\""), pairs(&[("K", "")]));
        assert_eq!(kv("PATH=/usr/bin:/bin,X=1"), pairs(&[("PATH", "/usr/bin:/bin"), ("X", "1")]));
        assert_eq!(kv(""), vec![]);
        assert_eq!(msg(key_value_pairs("A=1 B=2")), "Unexpected end of key/value pairs in value 'A=1 B=2'");
        assert_eq!(msg(key_value_pairs("A=1,,B=2")), "Unexpected end of key/value pairs in value 'A=1,,B=2'");
        assert_eq!(msg(key_value_pairs("A='x")), "No closing quotation");
    }

    #[test]
    fn corral_sizes() {
        assert_eq!(memory_size("512M"), Ok(Some(512 << 20)));
        assert_eq!(memory_size("2G"), Ok(Some(2 << 30)));
        assert_eq!(memory_size("2gb"), Ok(Some(2 << 30)));
        assert_eq!(memory_size("1T"), Ok(Some(1 << 40)));
        assert_eq!(memory_size("4096"), Ok(Some(4096)));
        assert_eq!(memory_size("infinity"), Ok(None));
        assert_eq!(memory_size("max"), Ok(None));
        assert_eq!(msg(memory_size("1.5G")), "invalid size '1.5G'");
        assert_eq!(msg(memory_size("12X")), "invalid size '12X'");
        assert_eq!(msg(memory_size("")), "invalid size ''");
    }

    #[test]
    fn corral_cpu_and_weights() {
        assert_eq!(cpu_quota("150%"), Ok(150));
        assert_eq!(cpu_quota("50 %"), Ok(50));
        assert_eq!(cpu_quota("150%%"), Ok(150));
        assert_eq!(msg(cpu_quota("150")), "invalid CPU quota '150'");
        assert_eq!(msg(cpu_quota("0%")), "invalid CPU quota '0%'");
        assert_eq!(weight("100"), Ok(100));
        assert_eq!(msg(weight("0")), "weight 0 is out of range");
        assert_eq!(msg(weight("10001")), "weight 10001 is out of range");
        assert_eq!(tasks_max("64"), Ok(Some(64)));
        assert_eq!(tasks_max("infinity"), Ok(None));
        assert_eq!(msg(tasks_max("0")), "tasks_max 0 is below 1");
        assert_eq!(oom_score_adj("-1000"), Ok(-1000));
        assert_eq!(msg(oom_score_adj("1001")), "oom_score_adj 1001 is out of range");
        assert_eq!(kill_mode("Group"), Ok(KillMode::Group));
        assert_eq!(msg(kill_mode("all")), "invalid 'kill_mode' value 'all'");
    }
}
