//! The state shared while turning the raw INI into typed sections: the
//! merged INI, the expansions every option sees, and the messages collected.

use std::collections::BTreeMap;
use std::path::PathBuf;

use super::error::ConfigError;
use super::expand::{expand, put, Expansions};
use super::ini::{Found, Ini};
use super::model::{MessageLevel, ParseMessage};
use super::values::{BadValue, ValueResult};
use super::Environment;

/// A value after expansion, with where it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Value {
    /// Expanded text.
    pub text: String,
    /// The raw text as written.
    pub raw: String,
    /// Index of the defining file.
    pub file: usize,
    /// Line of the definition.
    pub line: usize,
}

/// Parsing state for one load.
pub struct Parser<'a> {
    /// The merged INI of the main file and its includes.
    pub ini: Ini,
    /// Outside inputs.
    pub env: &'a Environment,
    /// Per file index: the name supervisord uses for it in messages.
    pub source_names: Vec<String>,
    /// `ENV_*` values: the process environment plus `[supervisord] environment`.
    pub environ: BTreeMap<String, String>,
    /// With an `[include]` section supervisord substitutes `%(here)s`
    /// textually in every value, so it is available everywhere.
    pub here_everywhere: bool,
    /// Non-fatal messages.
    pub messages: Vec<ParseMessage>,
}

impl<'a> Parser<'a> {
    /// Directory of file `file`, as `%(here)s` means it.
    pub fn here_of(&self, file: usize) -> String {
        let path = &self.ini.files[file];
        path.parent().map(|p| p.to_string_lossy().into_owned()).unwrap_or_else(|| "/".to_string())
    }

    /// The path of file `file`.
    pub fn path_of(&self, file: usize) -> PathBuf {
        self.ini.files[file].clone()
    }

    /// `ENV_*` expansions of the current environment.
    pub fn env_expansions(&self) -> Expansions {
        let mut exp = Expansions::new();
        super::expand::put_env(&mut exp, &self.environ);
        exp
    }

    /// Records a warning.
    pub fn warn(&mut self, text: String) {
        self.messages.push(ParseMessage { level: MessageLevel::Warn, text });
    }

    /// Records an informational message.
    pub fn info(&mut self, text: String) {
        self.messages.push(ParseMessage { level: MessageLevel::Info, text });
    }

    /// Looks up the raw value.
    pub fn raw(&self, section: &str, key: &str) -> Option<Found<'_>> {
        self.ini.get(section, key)
    }

    /// Error located at the section header (for missing options).
    pub fn error_at_section(&self, section: &str, message: impl Into<String>) -> ConfigError {
        let mut e = ConfigError::new(message).section(section);
        if let Some(s) = self.ini.section(section) {
            e = e.at(self.path_of(s.file), Some(s.line));
        }
        e
    }

    /// Error located at an option's definition.
    pub fn error_at(&self, section: &str, key: &str, message: impl Into<String>) -> ConfigError {
        let e = ConfigError::new(message).section(section).option(key);
        match self.raw(section, key) {
            Some(f) => e.at(self.path_of(f.file), Some(f.line)),
            None => match self.ini.section(section) {
                Some(s) => e.at(self.path_of(s.file), Some(s.line)),
                None => e,
            },
        }
    }

    /// Error for a value that does not parse.
    pub fn bad_value(&self, section: &str, key: &str, value: &str, bad: BadValue) -> ConfigError {
        self.error_at(section, key, bad.message).invalid(value, bad.expected)
    }

    /// supervisord's `saneget`: the value of `key` (or `[DEFAULT]`'s),
    /// expanded with `exp` (plus `here` when `here` is true or an include
    /// made it available everywhere). `None` when the option is absent.
    pub fn get(
        &self,
        section: &str,
        key: &str,
        exp: &Expansions,
        here: bool,
    ) -> Result<Option<Value>, ConfigError> {
        let Some(found) = self.raw(section, key) else {
            return Ok(None);
        };
        let text = if here || self.here_everywhere {
            let mut with_here = exp.clone();
            put(&mut with_here, "here", self.here_of(found.file));
            expand(found.value, &with_here, &format!("{section}.{key}"))
        } else {
            expand(found.value, exp, &format!("{section}.{key}"))
        }
        .map_err(|m| self.error_at(section, key, m))?;
        Ok(Some(Value { text, raw: found.value.to_string(), file: found.file, line: found.line }))
    }

    /// The raw, unexpanded value (for options supervisord expands later).
    pub fn get_raw(&self, section: &str, key: &str) -> Option<Value> {
        self.raw(section, key).map(|f| Value {
            text: f.value.to_string(),
            raw: f.value.to_string(),
            file: f.file,
            line: f.line,
        })
    }

    /// Gets and converts a value, using `default` (unexpanded) when absent.
    pub fn convert<T>(
        &self,
        section: &str,
        key: &str,
        exp: &Expansions,
        here: bool,
        default: &str,
        parse: impl Fn(&str) -> ValueResult<T>,
    ) -> Result<T, ConfigError> {
        let text = match self.get(section, key, exp, here)? {
            Some(v) => v.text,
            None => default.to_string(),
        };
        parse(&text).map_err(|b| self.bad_value(section, key, &text, b))
    }

    /// Gets and converts a value that has no default.
    pub fn convert_opt<T>(
        &self,
        section: &str,
        key: &str,
        exp: &Expansions,
        here: bool,
        parse: impl Fn(&str) -> ValueResult<T>,
    ) -> Result<Option<T>, ConfigError> {
        match self.get(section, key, exp, here)? {
            Some(v) => parse(&v.text).map(Some).map_err(|b| self.bad_value(section, key, &v.text, b)),
            None => Ok(None),
        }
    }

    /// Converts a value read without `%` expansion (corral's own options).
    pub fn convert_raw_opt<T>(
        &self,
        section: &str,
        key: &str,
        parse: impl Fn(&str) -> ValueResult<T>,
    ) -> Result<Option<T>, ConfigError> {
        match self.get_raw(section, key) {
            Some(v) => parse(&v.text).map(Some).map_err(|b| self.bad_value(section, key, &v.text, b)),
            None => Ok(None),
        }
    }

    /// Warns once per option of `section` that is not in `known`, with a
    /// suggestion when a known name is close. Inherited `[DEFAULT]` keys are
    /// not checked: they legitimately reach sections that do not use them.
    pub fn warn_unknown_options(&mut self, section: &str, known: &[&[&str]]) {
        let Some(sect) = self.ini.section(section) else {
            return;
        };
        let mut warnings = Vec::new();
        for (key, value) in &sect.entries {
            if known.iter().any(|list| list.contains(&key.as_str())) {
                continue;
            }
            let all = known.iter().flat_map(|l| l.iter().copied());
            let hint = match super::known::suggest(key, all) {
                Some(s) => format!("; did you mean '{s}'?"),
                None => String::new(),
            };
            warnings.push(format!(
                "{}:{}: unknown option '{key}' in section [{section}] is ignored{hint}",
                self.ini.files[value.file].display(),
                value.line
            ));
        }
        for w in warnings {
            self.warn(w);
        }
    }
}
