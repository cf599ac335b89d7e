//! `%(name)s` expansion of option values with supervisord's error texts.

use std::collections::BTreeMap;

use super::pyfmt::{percent_format, py_repr, FormatError, PyValue};

/// The names available to one option value.
pub type Expansions = BTreeMap<String, PyValue>;

/// Adds a string expansion.
pub fn put(exp: &mut Expansions, name: &str, value: impl Into<String>) {
    exp.insert(name.to_string(), PyValue::Str(value.into()));
}

/// Adds `ENV_<k>` for every pair.
pub fn put_env<'a>(exp: &mut Expansions, vars: impl IntoIterator<Item = (&'a String, &'a String)>) {
    for (k, v) in vars {
        exp.insert(format!("ENV_{k}"), PyValue::Str(v.clone()));
    }
}

/// Expands `raw` (the value of option `name`, e.g. `program:x.command`) the
/// way supervisord's `expand()` does, with its exact error messages.
pub fn expand(raw: &str, exp: &Expansions, name: &str) -> Result<String, String> {
    percent_format(raw, exp).map_err(|e| match e {
        FormatError::MissingKey(key) => {
            let available: Vec<&str> = exp.keys().map(String::as_str).collect();
            format!(
                "Format string {} for {} contains names ({}) which cannot be expanded. \
                 Available names: {}",
                py_repr(raw),
                py_repr(name),
                py_repr(&key),
                available.join(", ")
            )
        }
        FormatError::Bad(msg) => {
            format!("Format string {} for {} is badly formatted: {}", py_repr(raw), py_repr(name), msg)
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_name_lists_sorted_available_names() {
        let mut exp = Expansions::new();
        put(&mut exp, "here", "/etc");
        put(&mut exp, "ENV_B", "b");
        put(&mut exp, "ENV_A", "a");
        put(&mut exp, "program_name", "x");
        let e = expand("%(ENV_NOPE)s", &exp, "program:x.command").unwrap_err();
        assert_eq!(
            e,
            "Format string '%(ENV_NOPE)s' for 'program:x.command' contains names ('ENV_NOPE') \
             which cannot be expanded. Available names: ENV_A, ENV_B, here, program_name"
        );
    }

    #[test]
    fn stray_percent_is_badly_formatted() {
        let e = expand("/bin/date +%", &Expansions::new(), "program:x.command").unwrap_err();
        assert_eq!(
            e,
            "Format string '/bin/date +%' for 'program:x.command' is badly formatted: incomplete format"
        );
        assert_eq!(expand("/bin/date +%%s", &Expansions::new(), "x").unwrap(), "/bin/date +%s");
    }
}
