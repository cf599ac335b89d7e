//! The interactive shell: supervisorctl's `cmd` loop with rustyline.
//!
//! It runs `status` first, then reads lines at `<prompt>> ` with line editing,
//! history (in `history_file` when the config names one) and tab completion of
//! command names, and of process and group names fetched from the server, as
//! supervisorctl's completer offers them.

use std::cell::RefCell;

use rustyline::completion::{Completer, Pair};
use rustyline::error::ReadlineError;
use rustyline::highlight::Highlighter;
use rustyline::hint::Hinter;
use rustyline::history::DefaultHistory;
use rustyline::validate::Validator;
use rustyline::{Context, Editor, Helper};

use super::client::Client;
use super::commands::{CORRAL_COMMANDS, SUPERVISORCTL_COMMANDS};
use super::controller::Controller;
use super::value::{self, Struct};

/// Completes command names and process/group names.
pub struct ShellHelper {
    client: Option<Client>,
    /// getAllProcessInfo, fetched on the first Tab after each command.
    cache: RefCell<Option<Vec<Struct>>>,
}

impl ShellHelper {
    fn infos(&self) -> Vec<Struct> {
        let mut cache = self.cache.borrow_mut();
        if cache.is_none() {
            let fetched = self
                .client
                .as_ref()
                .and_then(|c| c.call("supervisor.getAllProcessInfo", vec![]).ok())
                .and_then(|v| value::into_structs(v).ok())
                .unwrap_or_default();
            *cache = Some(fetched);
        }
        cache.clone().unwrap_or_default()
    }
}

/// Command names the shell completes: supervisorctl's vocabulary plus corral's.
fn vocabulary() -> Vec<&'static str> {
    let mut v: Vec<&str> = SUPERVISORCTL_COMMANDS.iter().chain(CORRAL_COMMANDS).copied().collect();
    v.push("help");
    v.sort_unstable();
    v.dedup();
    v
}

/// supervisorctl's `complete`: candidates for the word being typed at the end of `line`.
pub fn candidates(line: &str, text: &str, infos: &dyn Fn() -> Vec<Struct>) -> Vec<String> {
    let actions =
        || vocabulary().into_iter().filter(|a| a.starts_with(text)).map(|a| format!("{a} ")).collect();
    if line.trim().is_empty() {
        return actions();
    }
    let words: Vec<&str> = line.split_whitespace().collect();
    if words.len() == 1 && !line.ends_with(' ') {
        return actions();
    }
    match words[0] {
        "help" => actions(),
        "add" | "remove" | "update" => {
            let mut groups: Vec<String> = Vec::new();
            for info in infos() {
                let g = value::str_field(&info, "group");
                if !groups.contains(&g) {
                    groups.push(g);
                }
            }
            groups.into_iter().filter(|g| g.starts_with(text)).map(|g| format!("{g} ")).collect()
        }
        "clear" | "fg" | "pid" | "restart" | "signal" | "start" | "status" | "stop" | "tail" | "stats"
        | "limits" => {
            let mut names: Vec<String> = Vec::new();
            for info in infos() {
                let (g, n) = (value::str_field(&info, "group"), value::str_field(&info, "name"));
                if text.contains(':') || g != n {
                    names.push(format!("{g}:{n}"));
                    let star = format!("{g}:*");
                    if !names.contains(&star) {
                        names.push(star);
                    }
                } else {
                    names.push(n);
                }
            }
            names.into_iter().filter(|p| p.starts_with(text)).map(|p| format!("{p} ")).collect()
        }
        _ => Vec::new(),
    }
}

impl Completer for ShellHelper {
    type Candidate = Pair;

    fn complete(&self, line: &str, pos: usize, _ctx: &Context<'_>) -> rustyline::Result<(usize, Vec<Pair>)> {
        let upto = &line[..pos];
        // Only whitespace separates words: ':', '*' and '-' belong to names, as in supervisorctl.
        let start = upto.rfind(char::is_whitespace).map(|i| i + 1).unwrap_or(0);
        let text = &upto[start..];
        let found = candidates(upto, text, &|| self.infos());
        Ok((
            start,
            found.into_iter().map(|c| Pair { display: c.trim_end().to_string(), replacement: c }).collect(),
        ))
    }
}

impl Hinter for ShellHelper {
    type Hint = String;
}
impl Highlighter for ShellHelper {}
impl Validator for ShellHelper {}
impl Helper for ShellHelper {}

/// Run the shell until `quit`, `exit`, end of input or Ctrl-C. Always exit status 0, as supervisorctl.
pub fn run(ctl: &mut Controller) -> i32 {
    let mut editor: Editor<ShellHelper, DefaultHistory> = match Editor::new() {
        Ok(e) => e,
        Err(e) => {
            eprintln!("Error: cannot start the shell: {e}");
            return 1;
        }
    };
    editor.set_helper(Some(ShellHelper { client: ctl.client().ok(), cache: RefCell::new(None) }));
    let history = ctl.options.history_file.clone();
    if let Some(h) = &history {
        let _ = editor.load_history(h);
    }
    ctl.onecmd("status");
    let prompt = format!("{}> ", ctl.options.prompt);
    loop {
        if let Some(h) = editor.helper_mut() {
            // Names change with every command; fetch again on the next Tab.
            h.cache = RefCell::new(None);
            h.client = ctl.client().ok();
        }
        match editor.readline(&prompt) {
            Ok(line) => {
                if !line.trim().is_empty() {
                    let _ = editor.add_history_entry(line.as_str());
                }
                if ctl.onecmd(&line) {
                    break;
                }
            }
            Err(ReadlineError::Eof) => {
                ctl.onecmd("EOF");
                break;
            }
            Err(ReadlineError::Interrupted) => {
                ctl.output("");
                break;
            }
            Err(e) => {
                eprintln!("Error: {e}");
                break;
            }
        }
    }
    ctl.flush();
    if let Some(h) = &history {
        let _ = editor.save_history(h);
    }
    0
}

#[cfg(test)]
mod tests {
    use super::*;
    use dxr::Value;

    fn info(group: &str, name: &str) -> Struct {
        [("group", group), ("name", name)]
            .into_iter()
            .map(|(k, v)| (k.into(), Value::String(v.into())))
            .collect()
    }

    #[test]
    fn completes_like_supervisorctl() {
        let infos = || vec![info("web", "web"), info("pool", "pool_00"), info("pool", "pool_01")];
        assert_eq!(candidates("sta", "sta", &infos), vec!["start ", "stats ", "status "]);
        assert_eq!(
            candidates("start ", "", &infos),
            vec!["web ", "pool:pool_00 ", "pool:* ", "pool:pool_01 "]
        );
        assert_eq!(candidates("stop po", "po", &infos), vec!["pool:pool_00 ", "pool:* ", "pool:pool_01 "]);
        assert_eq!(candidates("update ", "", &infos), vec!["web ", "pool "]);
        assert_eq!(
            candidates("help s", "s", &infos),
            vec!["shutdown ", "signal ", "start ", "stats ", "status ", "stop "]
        );
    }
}
