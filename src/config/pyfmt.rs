//! The few pieces of Python semantics that supervisord's messages and
//! value syntax depend on: `repr()` of a string, `int()` of a string, and
//! `%`-formatting with a mapping (`'%(name)s' % dict`).

use std::collections::BTreeMap;

/// A value available to `%(name)…` formatting: supervisord passes strings,
/// except `process_num` and `numprocs`, which are integers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PyValue {
    /// A Python `str`.
    Str(String),
    /// A Python `int`.
    Int(i64),
}

/// Python's `repr()` of a `str`, as used in supervisord's messages.
pub fn py_repr(s: &str) -> String {
    let quote = if s.contains('\'') && !s.contains('"') { '"' } else { '\'' };
    let mut out = String::with_capacity(s.len() + 2);
    out.push(quote);
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c == quote => {
                out.push('\\');
                out.push(c);
            }
            c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                out.push_str(&format!("\\x{:02x}", c as u32));
            }
            c => out.push(c),
        }
    }
    out.push(quote);
    out
}

/// Python's `int(s)` for base 10: surrounding whitespace, a sign and
/// underscores between digits are accepted. The error is Python's text.
pub fn py_int(s: &str) -> Result<i64, String> {
    let err = || format!("invalid literal for int() with base 10: {}", py_repr(s));
    let t = s.trim();
    let (neg, digits) = match t.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, t.strip_prefix('+').unwrap_or(t)),
    };
    if digits.is_empty()
        || digits.starts_with('_')
        || digits.ends_with('_')
        || digits.contains("__")
        || !digits.chars().all(|c| c.is_ascii_digit() || c == '_')
    {
        return Err(err());
    }
    let clean: String = digits.chars().filter(|c| *c != '_').collect();
    let v: i64 = clean.parse().map_err(|_| err())?;
    Ok(if neg { -v } else { v })
}

/// The largest width or precision accepted. Python accepts any that fits in
/// memory (its limits are `width too big` past `isize::MAX` and `precision too big`
/// past `i32::MAX`) and then tries to build the string; no value wider than
/// Linux's `MAX_ARG_STRLEN` (128 KiB) can reach a child's argv or environment, so
/// a larger field is refused with Python's message instead of allocating gigabytes.
const MAX_WIDTH: usize = 131_072;

/// Why a `%`-format failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FormatError {
    /// A `%(name)` whose name is not in the mapping (Python's `KeyError`).
    MissingKey(String),
    /// Any other failure, with Python's message.
    Bad(String),
}

/// `template % mapping` with Python's rules for the conversions a config
/// file can sensibly use (`s r d i u x X o f F`, flags `-+ #0`, width and
/// precision). An unnamed conversion such as `%s` is refused: Python would
/// format the whole mapping into the value, which is never what was meant.
pub fn percent_format(template: &str, mapping: &BTreeMap<String, PyValue>) -> Result<String, FormatError> {
    let chars: Vec<char> = template.chars().collect();
    let mut out = String::with_capacity(template.len());
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c != '%' {
            out.push(c);
            i += 1;
            continue;
        }
        i += 1;
        let incomplete = || FormatError::Bad("incomplete format".to_string());
        // Mapping key, with nested parentheses counted as Python does.
        let mut key = None;
        if chars.get(i) == Some(&'(') {
            let mut depth = 1;
            let start = i + 1;
            i += 1;
            while i < chars.len() && depth > 0 {
                match chars[i] {
                    '(' => depth += 1,
                    ')' => depth -= 1,
                    _ => {}
                }
                i += 1;
            }
            if depth > 0 {
                return Err(FormatError::Bad("incomplete format key".to_string()));
            }
            key = Some(chars[start..i - 1].iter().collect::<String>());
        }
        // Python looks the key up before it reads the rest of the specification.
        let value = match &key {
            Some(k) => Some(mapping.get(k).ok_or_else(|| FormatError::MissingKey(k.clone()))?),
            None => None,
        };
        let mut left = false;
        let mut zero = false;
        let mut plus = false;
        let mut space = false;
        let mut alt = false;
        while let Some(&f) = chars.get(i) {
            match f {
                '-' => left = true,
                '0' => zero = true,
                '+' => plus = true,
                ' ' => space = true,
                '#' => alt = true,
                _ => break,
            }
            i += 1;
        }
        let mut width = 0usize;
        while let Some(d) = chars.get(i).and_then(|c| c.to_digit(10)) {
            width = width * 10 + d as usize;
            if width > MAX_WIDTH {
                return Err(FormatError::Bad("width too big".to_string()));
            }
            i += 1;
        }
        if chars.get(i) == Some(&'*') {
            return Err(FormatError::Bad("* wants int".to_string()));
        }
        let mut precision = None;
        if chars.get(i) == Some(&'.') {
            i += 1;
            let mut p = 0usize;
            while let Some(d) = chars.get(i).and_then(|c| c.to_digit(10)) {
                p = p * 10 + d as usize;
                if p > MAX_WIDTH {
                    return Err(FormatError::Bad("precision too big".to_string()));
                }
                i += 1;
            }
            precision = Some(p);
        }
        while matches!(chars.get(i), Some('h' | 'l' | 'L')) {
            i += 1;
        }
        let Some(&conv) = chars.get(i) else {
            return Err(incomplete());
        };
        let conv_index = i;
        i += 1;
        if conv == '%' {
            out.push('%');
            continue;
        }
        if !matches!(conv, 's' | 'r' | 'a' | 'd' | 'i' | 'u' | 'x' | 'X' | 'o' | 'f' | 'F') {
            return Err(FormatError::Bad(format!(
                "unsupported format character {} (0x{:x}) at index {}",
                py_repr(&conv.to_string()),
                conv as u32,
                conv_index
            )));
        }
        let Some(value) = value else {
            return Err(FormatError::Bad(format!("unnamed conversion '%{conv}' (write %% for a literal %)")));
        };
        let (body, numeric) = convert(conv, value, precision, alt)?;
        let signed = if numeric && !body.starts_with('-') && (plus || space) {
            format!("{}{}", if plus { '+' } else { ' ' }, body)
        } else {
            body
        };
        out.push_str(&pad(&signed, width, left, zero && numeric));
    }
    Ok(out)
}

fn convert(
    conv: char,
    value: &PyValue,
    precision: Option<usize>,
    alt: bool,
) -> Result<(String, bool), FormatError> {
    let type_name = match value {
        PyValue::Str(_) => "str",
        PyValue::Int(_) => "int",
    };
    Ok(match (conv, value) {
        ('s', v) | ('r' | 'a', v @ PyValue::Int(_)) => {
            let s = match v {
                PyValue::Str(s) => s.clone(),
                PyValue::Int(n) => n.to_string(),
            };
            (truncate(s, precision), false)
        }
        ('r' | 'a', PyValue::Str(s)) => (truncate(py_repr(s), precision), false),
        ('d' | 'i' | 'u', PyValue::Int(n)) => (int_digits(*n, precision, |m| m.to_string()), true),
        ('x', PyValue::Int(n)) => {
            (with_prefix(int_digits(*n, precision, |m| format!("{m:x}")), alt, "0x"), true)
        }
        ('X', PyValue::Int(n)) => {
            (with_prefix(int_digits(*n, precision, |m| format!("{m:X}")), alt, "0X"), true)
        }
        ('o', PyValue::Int(n)) => {
            (with_prefix(int_digits(*n, precision, |m| format!("{m:o}")), alt, "0o"), true)
        }
        ('f' | 'F', PyValue::Int(n)) => (format!("{:.*}", precision.unwrap_or(6), *n as f64), true),
        ('d' | 'i' | 'u', _) => {
            return Err(FormatError::Bad(format!(
                "%{conv} format: a real number is required, not {type_name}"
            )))
        }
        ('x' | 'X' | 'o', _) => {
            return Err(FormatError::Bad(format!("%{conv} format: an integer is required, not {type_name}")))
        }
        _ => return Err(FormatError::Bad(format!("must be real number, not {type_name}"))),
    })
}

fn truncate(s: String, precision: Option<usize>) -> String {
    match precision {
        Some(p) => s.chars().take(p).collect(),
        None => s,
    }
}

fn int_digits(n: i64, precision: Option<usize>, digits: impl Fn(u64) -> String) -> String {
    let mut d = digits(n.unsigned_abs());
    if let Some(p) = precision.filter(|&p| p > d.len()) {
        d = format!("{}{d}", "0".repeat(p - d.len()));
    }
    if n < 0 {
        d.insert(0, '-');
    }
    d
}

fn with_prefix(s: String, alt: bool, prefix: &str) -> String {
    if !alt {
        return s;
    }
    match s.strip_prefix('-') {
        Some(rest) => format!("-{prefix}{rest}"),
        None => format!("{prefix}{s}"),
    }
}

fn pad(s: &str, width: usize, left: bool, zero: bool) -> String {
    let len = s.chars().count();
    if len >= width {
        return s.to_string();
    }
    let fill = width - len;
    if left {
        format!("{s}{}", " ".repeat(fill))
    } else if zero {
        // Zeros go after the sign (and after a 0x prefix), as in Python.
        let sign_len = s
            .find(|c: char| c.is_ascii_alphanumeric())
            .map(|p| {
                if s[p..].starts_with("0x") || s[p..].starts_with("0X") || s[p..].starts_with("0o") {
                    p + 2
                } else {
                    p
                }
            })
            .unwrap_or(0);
        format!("{}{}{}", &s[..sign_len], "0".repeat(fill), &s[sign_len..])
    } else {
        format!("{}{s}", " ".repeat(fill))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map() -> BTreeMap<String, PyValue> {
        let mut m = BTreeMap::new();
        m.insert("a".to_string(), PyValue::Str("xy".to_string()));
        m.insert("n".to_string(), PyValue::Int(7));
        m
    }

    fn fmt(t: &str) -> Result<String, FormatError> {
        percent_format(t, &map())
    }

    #[test]
    fn formats_like_python() {
        assert_eq!(fmt("%(n)d").unwrap(), "7");
        assert_eq!(fmt("%(n)02d").unwrap(), "07");
        assert_eq!(fmt("%(n)-5d|").unwrap(), "7    |");
        assert_eq!(fmt("%(a)5s|").unwrap(), "   xy|");
        assert_eq!(fmt("%(n)s").unwrap(), "7");
        assert_eq!(fmt("%(a)r").unwrap(), "'xy'");
        assert_eq!(fmt("%(n)x").unwrap(), "7");
        assert_eq!(fmt("%(n)+d").unwrap(), "+7");
        assert_eq!(fmt("%(n)i").unwrap(), "7");
        assert_eq!(fmt("%(n)05.2f").unwrap(), "07.00");
        assert_eq!(fmt("100%% %(a)s").unwrap(), "100% xy");
        assert_eq!(fmt("no percent").unwrap(), "no percent");
    }

    #[test]
    fn errors_like_python() {
        let bad = |t: &str| match fmt(t) {
            Err(FormatError::Bad(m)) => m,
            other => panic!("{t}: {other:?}"),
        };
        assert_eq!(bad("50%"), "incomplete format");
        assert_eq!(bad("%(a"), "incomplete format key");
        assert_eq!(bad("%(a)z"), "unsupported format character 'z' (0x7a) at index 4");
        assert_eq!(bad("%(a)d"), "%d format: a real number is required, not str");
        assert_eq!(fmt("%(nope)s"), Err(FormatError::MissingKey("nope".into())));
        // The key is looked up first, as in Python.
        assert_eq!(fmt("%(nope)z"), Err(FormatError::MissingKey("nope".into())));
        assert_eq!(fmt("%(nope)99999999999999999999999s"), Err(FormatError::MissingKey("nope".into())));
    }

    #[test]
    fn huge_widths_and_precisions_are_refused_not_allocated() {
        let bad = |t: &str| match fmt(t) {
            Err(FormatError::Bad(m)) => m,
            other => panic!("{t}: {other:?}"),
        };
        // Found by fuzzing (fuzz/load_config): the first overflowed a Vec's capacity,
        // the second asked for a 2 GB string.
        let wide = format!("%(a){}s/abs/*.conf", "2".repeat(50));
        assert_eq!(bad(&wide), "width too big");
        assert_eq!(bad("%(a)222222222s"), "width too big");
        assert_eq!(bad("%(n).99999999999999999999999d"), "precision too big");
        assert_eq!(bad("%(n).2147483647f"), "precision too big");
        assert_eq!(bad("%(a).131073s"), "precision too big");
        let widest = format!("%(a){MAX_WIDTH}s");
        assert_eq!(fmt(&widest).map(|s| s.len()), Ok(MAX_WIDTH));
        let zeros = format!("%(n).{MAX_WIDTH}d");
        assert_eq!(fmt(&zeros).map(|s| s.len()), Ok(MAX_WIDTH));
    }

    #[test]
    fn repr_picks_quotes_and_escapes() {
        assert_eq!(py_repr("abc"), "'abc'");
        assert_eq!(py_repr("it's"), "\"it's\"");
        assert_eq!(py_repr("a'b\"c"), "'a\\'b\"c'");
        assert_eq!(py_repr("foo\n"), "'foo\\n'");
    }

    #[test]
    fn int_like_python() {
        assert_eq!(py_int(" 42 "), Ok(42));
        assert_eq!(py_int("-3"), Ok(-3));
        assert_eq!(py_int("1_000"), Ok(1000));
        assert_eq!(py_int("abc"), Err("invalid literal for int() with base 10: 'abc'".to_string()));
        assert!(py_int("").is_err());
        assert!(py_int("1.5").is_err());
    }
}
