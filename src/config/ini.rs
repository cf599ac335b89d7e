//! A reader for the INI dialect supervisord uses: Python's `RawConfigParser`
//! with `inline_comment_prefixes=(';', '#')` and `strict=False`.
//!
//! It is hand-written rather than built on rust-ini because the details that
//! matter here have no rust-ini equivalent: line numbers for every key (for
//! error messages), inline comments only after whitespace, `[DEFAULT]`
//! inheritance, merging of repeated sections across included files, and
//! Python's exact parse-error texts.

use std::collections::HashMap;
use std::path::PathBuf;

use super::pyfmt::py_repr;

/// One option value as read, with where it was defined.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawValue {
    /// The value, stripped, continuation lines joined with `\n`.
    pub value: String,
    /// Index into [`Ini::files`] of the file that defined it.
    pub file: usize,
    /// 1-based line of the `key = value` line.
    pub line: usize,
}

/// One section (all its occurrences merged, later keys winning).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawSection {
    /// Section name as written (case-sensitive).
    pub name: String,
    /// File of the first occurrence.
    pub file: usize,
    /// Line of the first header.
    pub line: usize,
    /// Options in order of first definition; keys are lower-cased and unique.
    pub entries: Vec<(String, RawValue)>,
}

impl RawSection {
    fn set(&mut self, key: String, value: RawValue) {
        match self.entries.iter_mut().find(|(k, _)| *k == key) {
            Some((_, v)) => *v = value,
            None => self.entries.push((key, value)),
        }
    }
}

/// A parse error, rendered as Python's `configparser` renders it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IniError {
    /// Python's message (e.g. `Source contains parsing errors: 't.conf'...`).
    pub message: String,
    /// Line of the first bad line.
    pub line: usize,
}

/// Everything read so far: the files in read order and the merged sections.
#[derive(Debug, Clone, Default)]
pub struct Ini {
    /// Files read, in order; [`RawValue::file`] indexes this.
    pub files: Vec<PathBuf>,
    /// Sections in order of first appearance.
    pub sections: Vec<RawSection>,
    /// `[DEFAULT]` keys, inherited by every section.
    pub defaults: Vec<(String, RawValue)>,
    /// Section name → index in `sections` (thousands of programs make a linear
    /// search per lookup quadratic).
    index: HashMap<String, usize>,
}

/// A looked-up value, possibly inherited from `[DEFAULT]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found<'a> {
    /// The raw value.
    pub value: &'a str,
    /// File whose directory `%(here)s` means for this value.
    pub file: usize,
    /// Line of the definition.
    pub line: usize,
}

impl Ini {
    /// Parses `text` (the contents of `path`) into this parser, merging with
    /// what was read before. `source` is the name Python's messages use.
    /// Returns the names of sections this file created.
    pub fn read(&mut self, path: PathBuf, source: &str, text: &str) -> Result<Vec<String>, IniError> {
        let file = self.files.len();
        self.files.push(path);
        let mut created = Vec::new();
        // `None` = no section yet; `Some(None)` = DEFAULT; `Some(Some(i))` = sections[i].
        let mut cursect: Option<Option<usize>> = None;
        let mut optname: Option<String> = None;
        let mut indent_level = 0usize;
        let mut errors: Vec<(usize, String)> = Vec::new();
        // Values are collected as lines and joined at the end, as Python does.
        let mut pending: Vec<(Option<usize>, String, Vec<String>, usize)> = Vec::new();

        for (idx, line) in split_lines_keep_ends(text).into_iter().enumerate() {
            let lineno = idx + 1;
            let comment_start = inline_comment_start(line);
            let comment_start = if line.trim().starts_with('#') || line.trim().starts_with(';') {
                Some(0)
            } else {
                comment_start
            };
            let value = match comment_start {
                Some(c) => line[..c].trim(),
                None => line.trim(),
            };
            if value.is_empty() {
                // Blank lines inside a value are kept (joined as empty lines,
                // trailing ones trimmed); comment lines are skipped.
                if comment_start.is_none() && cursect.is_some() && optname.is_some() {
                    if let Some(p) = pending.last_mut() {
                        p.2.push(String::new());
                    }
                }
                continue;
            }
            let cur_indent = line.find(|c: char| !c.is_whitespace()).unwrap_or(0);
            if cursect.is_some() && optname.is_some() && cur_indent > indent_level {
                if let Some(p) = pending.last_mut() {
                    p.2.push(value.to_string());
                }
                continue;
            }
            indent_level = cur_indent;
            if let Some(header) = section_header(value) {
                if header == "DEFAULT" {
                    cursect = Some(None);
                } else if let Some(&i) = self.index.get(header) {
                    cursect = Some(Some(i));
                } else {
                    self.index.insert(header.to_string(), self.sections.len());
                    self.sections.push(RawSection {
                        name: header.to_string(),
                        file,
                        line: lineno,
                        entries: Vec::new(),
                    });
                    created.push(header.to_string());
                    cursect = Some(Some(self.sections.len() - 1));
                }
                optname = None;
                continue;
            }
            let Some(target) = cursect else {
                return Err(IniError {
                    message: format!(
                        "File contains no section headers.\nfile: {}, line: {}\n{}",
                        py_repr(source),
                        lineno,
                        py_repr(line)
                    ),
                    line: lineno,
                });
            };
            match split_option(value) {
                Some((name, val)) => {
                    if name.is_empty() {
                        errors.push((lineno, line.to_string()));
                    }
                    let key = name.to_lowercase();
                    optname = Some(key.clone());
                    pending.push((target, key, vec![val.to_string()], lineno));
                }
                None => errors.push((lineno, line.to_string())),
            }
        }

        for (target, key, lines, lineno) in pending {
            let value = RawValue { value: lines.join("\n").trim_end().to_string(), file, line: lineno };
            match target {
                None => match self.defaults.iter_mut().find(|(k, _)| *k == key) {
                    Some((_, v)) => *v = value,
                    None => self.defaults.push((key, value)),
                },
                Some(i) => self.sections[i].set(key, value),
            }
        }

        if let Some(&(first, _)) = errors.first() {
            let mut message = format!("Source contains parsing errors: {}", py_repr(source));
            for (lineno, line) in &errors {
                message.push_str(&format!("\n\t[line {lineno:2}]: {}", py_repr(line)));
            }
            return Err(IniError { message, line: first });
        }
        Ok(created)
    }

    /// The section named `name`, if any.
    pub fn section(&self, name: &str) -> Option<&RawSection> {
        self.index.get(name).and_then(|&i| self.sections.get(i))
    }

    /// True when the section exists.
    pub fn has_section(&self, name: &str) -> bool {
        self.section(name).is_some()
    }

    /// Looks up `key` in `section`, falling back to `[DEFAULT]`.
    pub fn get(&self, section: &str, key: &str) -> Option<Found<'_>> {
        let sect = self.section(section)?;
        if let Some((_, v)) = sect.entries.iter().find(|(k, _)| k == key) {
            return Some(Found { value: &v.value, file: v.file, line: v.line });
        }
        self.defaults.iter().find(|(k, _)| k == key).map(|(_, v)| Found {
            value: &v.value,
            // supervisord substitutes %(here)s after each file is read, so an
            // inherited value takes the directory of whichever came later:
            // the section or the [DEFAULT] key.
            file: v.file.max(sect.file),
            line: v.line,
        })
    }
}

/// Splits into lines, each keeping its `\n` (Python iterates a file that way,
/// and parse errors show the line with its newline).
fn split_lines_keep_ends(text: &str) -> Vec<&str> {
    text.split_inclusive('\n').collect()
}

/// Python's inline-comment search: in rounds, the next occurrence of each
/// prefix is examined; the first round that finds one preceded by whitespace
/// (or at column 0) decides, taking the smallest such position in that round.
fn inline_comment_start(line: &str) -> Option<usize> {
    let mut next: Vec<(char, Option<usize>)> = vec![(';', None), ('#', None)];
    loop {
        let mut found: Option<usize> = None;
        let mut still = Vec::new();
        for (prefix, last) in &next {
            let from = last.map(|i| i + 1).unwrap_or(0);
            let Some(rel) = line.get(from..).and_then(|s| s.find(*prefix)) else {
                continue;
            };
            let index = from + rel;
            still.push((*prefix, Some(index)));
            let preceded = index == 0 || line[..index].chars().next_back().is_some_and(char::is_whitespace);
            if preceded {
                found = Some(found.map_or(index, |f: usize| f.min(index)));
            }
        }
        if found.is_some() || still.is_empty() {
            return found;
        }
        next = still;
    }
}

/// `[name]` → `name` (Python's `\[(?P<header>.+)\]`, greedy, unanchored end).
fn section_header(value: &str) -> Option<&str> {
    let rest = value.strip_prefix('[')?;
    let end = rest.rfind(']')?;
    if end == 0 {
        return None;
    }
    Some(&rest[..end])
}

/// `key = value` or `key: value` split at the first `=` or `:`.
fn split_option(value: &str) -> Option<(&str, &str)> {
    let pos = value.find(['=', ':'])?;
    Some((value[..pos].trim_end(), value[pos + 1..].trim()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Ini, IniError> {
        let mut ini = Ini::default();
        ini.read(PathBuf::from("/t.conf"), "t.conf", text)?;
        Ok(ini)
    }

    fn get(ini: &Ini, s: &str, k: &str) -> Option<String> {
        ini.get(s, k).map(|f| f.value.to_string())
    }

    #[test]
    fn inline_comments_need_whitespace_before() {
        let ini = parse("[s]\na=b ;c\nb=b;c\nc=x #y\nd=x#y\n").unwrap();
        assert_eq!(get(&ini, "s", "a").as_deref(), Some("b"));
        assert_eq!(get(&ini, "s", "b").as_deref(), Some("b;c"));
        assert_eq!(get(&ini, "s", "c").as_deref(), Some("x"));
        assert_eq!(get(&ini, "s", "d").as_deref(), Some("x#y"));
    }

    #[test]
    fn inline_comment_rounds_quirk() {
        // Python finds '#' at 9 in round one before ';' at 6 in round two.
        let ini = parse("[s]\na=b;c ;d #e\n").unwrap();
        assert_eq!(get(&ini, "s", "a").as_deref(), Some("b;c ;d"));
    }

    #[test]
    fn continuation_lines_and_blank_lines() {
        let ini = parse("[s]\nfiles = a\n  b\n\n   c\n; comment\n\nx=1\n").unwrap();
        assert_eq!(get(&ini, "s", "files").as_deref(), Some("a\nb\n\nc"));
        assert_eq!(ini.get("s", "x").unwrap().line, 8);
    }

    #[test]
    fn keys_lowercased_sections_case_sensitive_last_wins() {
        let ini = parse("[S]\nKey: 1\n[s]\nkey=2\n[S]\nkey = 3\n").unwrap();
        assert_eq!(get(&ini, "S", "key").as_deref(), Some("3"));
        assert_eq!(get(&ini, "s", "key").as_deref(), Some("2"));
        assert_eq!(ini.get("S", "key").unwrap().line, 6);
        assert_eq!(ini.sections.len(), 2);
    }

    #[test]
    fn defaults_are_inherited() {
        let ini = parse("[DEFAULT]\nstartsecs=7\n[a]\n[b]\nstartsecs=1\n").unwrap();
        assert_eq!(get(&ini, "a", "startsecs").as_deref(), Some("7"));
        assert_eq!(get(&ini, "b", "startsecs").as_deref(), Some("1"));
        assert!(!ini.has_section("DEFAULT"));
    }

    #[test]
    fn no_quote_stripping_no_escapes() {
        let ini = parse("[s]\ncommand=bash -c 'echo \\d+'\n").unwrap();
        assert_eq!(get(&ini, "s", "command").as_deref(), Some("bash -c 'echo \\d+'"));
    }

    #[test]
    fn parse_errors_are_pythons() {
        let e = parse("[s]\nfoo\n").unwrap_err();
        assert_eq!(e.message, "Source contains parsing errors: 't.conf'\n\t[line  2]: 'foo\\n'");
        let e = parse("a=1\n").unwrap_err();
        assert_eq!(e.message, "File contains no section headers.\nfile: 't.conf', line: 1\n'a=1\\n'");
    }
}
