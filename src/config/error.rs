//! Configuration errors that say where the problem is and what was expected.
//!
//! Every error keeps two renderings: [`ConfigError`]'s `Display`, written for a
//! human at a terminal (`file:line: [section] option: ...`), and
//! [`ConfigError::supervisord_message`], the exact text supervisord would print,
//! which the XML-RPC `reloadConfig` method must return after `CANT_REREAD: `.

use std::path::PathBuf;

use super::pyfmt::py_repr;

/// Where in the configuration a problem was found; every part is optional
/// because some errors (a missing file, a missing section) have no line.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Location {
    /// File the offending text is in.
    pub file: Option<PathBuf>,
    /// 1-based line of the option (or of the section header).
    pub line: Option<usize>,
    /// Section name as written, e.g. `program:web`.
    pub section: Option<String>,
    /// Option name (lower-cased), e.g. `startsecs`.
    pub option: Option<String>,
}

/// A configuration that cannot be used.
///
/// Boxed so that `Result<_, ConfigError>` stays one pointer wide.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", self.render())]
pub struct ConfigError(Box<Inner>);

#[derive(Debug, Clone, PartialEq, Eq)]
struct Inner {
    location: Location,
    value: Option<String>,
    expected: Option<String>,
    /// supervisord's message, without its ` in section ...` suffix.
    message: String,
    /// `(section, file)` when supervisord appends ` in section %r (file: %r)`.
    suffix: Option<(String, String)>,
}

impl ConfigError {
    /// An error carrying supervisord's bare message and no location yet.
    pub fn new(message: impl Into<String>) -> Self {
        ConfigError(Box::new(Inner {
            location: Location::default(),
            value: None,
            expected: None,
            message: message.into(),
            suffix: None,
        }))
    }

    /// Where the problem is.
    pub fn location(&self) -> &Location {
        &self.0.location
    }

    /// The offending value, when one option value is at fault.
    pub fn value(&self) -> Option<&str> {
        self.0.value.as_deref()
    }

    /// What would have been accepted, e.g. `an integer`.
    pub fn expected(&self) -> Option<&str> {
        self.0.expected.as_deref()
    }

    /// Sets the file and line.
    pub fn at(mut self, file: impl Into<PathBuf>, line: Option<usize>) -> Self {
        self.0.location.file = Some(file.into());
        self.0.location.line = line;
        self
    }

    /// Sets the section name.
    pub fn section(mut self, section: impl Into<String>) -> Self {
        self.0.location.section = Some(section.into());
        self
    }

    /// Sets the option name.
    pub fn option(mut self, option: impl Into<String>) -> Self {
        self.0.location.option = Some(option.into());
        self
    }

    /// Records the offending value and what was expected instead.
    pub fn invalid(mut self, value: impl Into<String>, expected: impl Into<String>) -> Self {
        self.0.value = Some(value.into());
        self.0.expected = Some(expected.into());
        self
    }

    /// Marks the error as one supervisord reports with
    /// ` in section '<section>' (file: '<file>')` appended.
    pub fn in_section(mut self, section: &str, file: &str) -> Self {
        self.0.suffix = Some((section.to_string(), file.to_string()));
        if self.0.location.section.is_none() {
            self.0.location.section = Some(section.to_string());
        }
        self
    }

    /// supervisord's message without any location suffix.
    pub fn message(&self) -> &str {
        &self.0.message
    }

    /// The exact text supervisord 4.3 gives for this error (what follows
    /// `Error: ` on its stderr, or `CANT_REREAD: ` in an XML-RPC fault).
    pub fn supervisord_message(&self) -> String {
        match &self.0.suffix {
            Some((section, file)) => {
                format!("{} in section {} (file: {})", self.0.message, py_repr(section), py_repr(file))
            }
            None => self.0.message.clone(),
        }
    }

    fn render(&self) -> String {
        let mut out = String::new();
        if let Some(file) = &self.0.location.file {
            out.push_str(&file.display().to_string());
            if let Some(line) = self.0.location.line {
                out.push_str(&format!(":{line}"));
            }
            out.push_str(": ");
        }
        if let Some(section) = &self.0.location.section {
            out.push_str(&format!("[{section}] "));
        }
        if let Some(option) = &self.0.location.option {
            out.push_str(&format!("{option}: "));
        }
        match (&self.0.value, &self.0.expected) {
            (Some(value), Some(expected)) => {
                out.push_str(&format!(
                    "invalid value {}: expected {expected} ({})",
                    py_repr(value),
                    self.0.message
                ));
            }
            _ => out.push_str(&self.0.message),
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_has_location_and_expectation() {
        let e = ConfigError::new("invalid literal for int() with base 10: 'abc'")
            .at("/etc/t.conf", Some(3))
            .option("startsecs")
            .invalid("abc", "an integer")
            .in_section("program:x", "t.conf");
        assert_eq!(
            e.to_string(),
            "/etc/t.conf:3: [program:x] startsecs: invalid value 'abc': expected an integer \
             (invalid literal for int() with base 10: 'abc')"
        );
        assert_eq!(
            e.supervisord_message(),
            "invalid literal for int() with base 10: 'abc' in section 'program:x' (file: 't.conf')"
        );
    }

    #[test]
    fn display_without_location_is_the_message() {
        let e = ConfigError::new(".ini file does not include supervisord section");
        assert_eq!(e.to_string(), ".ini file does not include supervisord section");
        assert_eq!(e.supervisord_message(), e.to_string());
    }
}
