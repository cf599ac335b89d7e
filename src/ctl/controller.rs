//! The command interpreter shared by one-shot mode and the shell.
//!
//! [`Controller::onecmd`] takes one line as supervisorctl's `cmd.Cmd` does
//! (command word, rest of the line as the argument), runs the command and
//! records supervisorctl's exit status. Errors a command does not handle itself
//! are reported the way supervisorctl reports them: a 401 as `Server requires
//! authentication`, anything else as an `error: <class>, <message>` line.

use std::io::{self, BufRead, Write};
use std::time::Duration;

use dxr::Value;

use super::client::{Client, ClientError, ServerUrl};
use super::commands;
use super::error::CtlError;
use super::options::Options;
use super::value::{self, Struct};

/// LSB init-script exit codes, as supervisorctl uses them.
pub mod exit {
    /// Success.
    pub const SUCCESS: i32 = 0;
    /// Generic error.
    pub const GENERIC: i32 = 1;
    /// Invalid arguments.
    pub const INVALID_ARGS: i32 = 2;
    /// The server lacks the supervisor namespace (and `status`: not running).
    pub const UNIMPLEMENTED_FEATURE: i32 = 3;
    /// Connection refused (and `status`: unknown name).
    pub const INSUFFICIENT_PRIVILEGES: i32 = 4;
    /// API version mismatch.
    pub const NOT_INSTALLED: i32 = 5;
    /// Socket missing, or a process that is not running.
    pub const NOT_RUNNING: i32 = 7;
}

/// XML-RPC fault codes supervisorctl distinguishes.
pub mod faults {
    /// Unknown method.
    pub const UNKNOWN_METHOD: i32 = 1;
    /// Bad arguments.
    pub const BAD_ARGUMENTS: i32 = 3;
    /// The daemon is shutting down.
    pub const SHUTDOWN_STATE: i32 = 6;
    /// No such process or group.
    pub const BAD_NAME: i32 = 10;
    /// Unknown signal.
    pub const BAD_SIGNAL: i32 = 11;
    /// Missing file.
    pub const NO_FILE: i32 = 20;
    /// Not executable.
    pub const NOT_EXECUTABLE: i32 = 21;
    /// Generic failure.
    pub const FAILED: i32 = 30;
    /// Exited while starting.
    pub const ABNORMAL_TERMINATION: i32 = 40;
    /// Could not spawn.
    pub const SPAWN_ERROR: i32 = 50;
    /// Already running.
    pub const ALREADY_STARTED: i32 = 60;
    /// Not running.
    pub const NOT_RUNNING: i32 = 70;
    /// Success marker in result arrays.
    pub const SUCCESS: i32 = 80;
    /// Group already active.
    pub const ALREADY_ADDED: i32 = 90;
    /// Group still has running processes.
    pub const STILL_RUNNING: i32 = 91;
    /// Config re-read failed.
    pub const CANT_REREAD: i32 = 92;
}

/// The API version supervisorctl insists on.
pub const API_VERSION: &str = "3.0";

/// How output is rendered.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Style {
    /// Colour state names (stdout is a terminal and `NO_COLOR` is unset).
    pub color: bool,
    /// Print JSON instead of text on read commands.
    pub json: bool,
}

/// supervisorctl's `Controller`: options, exit status and output.
pub struct Controller {
    /// Connection settings (`open` changes the URL).
    pub options: Options,
    /// The exit status so far; the last assignment wins, as in supervisorctl.
    pub exitstatus: i32,
    /// Output rendering.
    pub style: Style,
    out: Box<dyn Write>,
    complete_info: Option<Vec<Struct>>,
}

impl Controller {
    /// A controller writing to `out`.
    pub fn new(options: Options, style: Style, out: Box<dyn Write>) -> Controller {
        Controller { options, exitstatus: exit::SUCCESS, style, out, complete_info: None }
    }

    /// Print one line (supervisorctl's `output`: message plus newline).
    pub fn output(&mut self, message: &str) {
        // A closed stdout (`| head`) must not turn into an error storm.
        let _ = writeln!(self.out, "{message}");
    }

    /// Write raw text without adding a newline.
    pub fn write_raw(&mut self, data: &[u8]) {
        let _ = self.out.write_all(data);
        let _ = self.out.flush();
    }

    /// Flush buffered output.
    pub fn flush(&mut self) {
        let _ = self.out.flush();
    }

    /// A client for the current server and credentials.
    pub fn client(&self) -> Result<Client, ClientError> {
        let url = ServerUrl::parse(&self.options.serverurl)?;
        let client = Client::new(url).with_timeout(None::<Duration>);
        // supervisorctl sends credentials only when both are set.
        Ok(match (&self.options.username, &self.options.password) {
            (Some(u), Some(p)) => client.with_auth(u.clone(), p.clone()),
            _ => client,
        })
    }

    /// Call one method.
    pub fn call(&self, method: &str, params: Vec<Value>) -> Result<Value, ClientError> {
        self.client()?.call(method, params)
    }

    /// supervisorctl's `upcheck`: `Ok(false)` after printing why the server cannot be used.
    pub fn upcheck(&mut self) -> Result<bool, CtlError> {
        match self.call("supervisor.getVersion", vec![]) {
            Ok(v) => {
                let api = value::text(&v);
                if api != API_VERSION {
                    self.output(&format!(
                        "Sorry, this version of supervisorctl expects to talk to a server with API version \
                         {API_VERSION}, but the remote version is {api}."
                    ));
                    self.exitstatus = exit::NOT_INSTALLED;
                    return Ok(false);
                }
                Ok(true)
            }
            Err(ClientError::Fault { code: faults::UNKNOWN_METHOD, .. }) => {
                self.output(
                    "Sorry, supervisord responded but did not recognize the supervisor namespace commands \
                     that supervisorctl uses to control it.  Please check that the [rpcinterface:supervisor] \
                     section is enabled in the configuration file (see sample.conf).",
                );
                self.exitstatus = exit::UNIMPLEMENTED_FEATURE;
                Ok(false)
            }
            Err(ClientError::Io(e)) if e.raw_os_error() == Some(libc::ECONNREFUSED) => {
                let msg = format!("{} refused connection", self.options.serverurl);
                self.output(&msg);
                self.exitstatus = exit::INSUFFICIENT_PRIVILEGES;
                Ok(false)
            }
            Err(ClientError::Io(e)) if e.raw_os_error() == Some(libc::ENOENT) => {
                let msg = format!("{} no such file", self.options.serverurl);
                self.output(&msg);
                self.exitstatus = exit::NOT_RUNNING;
                Ok(false)
            }
            Err(e @ (ClientError::Fault { .. } | ClientError::Io(_))) => {
                self.exitstatus = exit::GENERIC;
                Err(e.into())
            }
            Err(e) => Err(e.into()),
        }
    }

    /// supervisorctl's `set_exitstatus_from_xmlrpc_fault`.
    pub fn set_exitstatus_from_fault(&mut self, code: i32, ignored: Option<i32>) {
        if Some(code) == ignored || code == faults::SUCCESS {
            return;
        }
        self.exitstatus = match code {
            faults::SPAWN_ERROR | faults::ABNORMAL_TERMINATION | faults::NOT_RUNNING => exit::NOT_RUNNING,
            _ => exit::GENERIC,
        };
    }

    /// Run one line; `true` when the shell should end (`quit`, `exit`, `EOF`).
    pub fn onecmd(&mut self, line: &str) -> bool {
        let Some((cmd, arg, line)) = parseline(line) else {
            return false;
        };
        self.complete_info = None;
        if cmd.is_empty() {
            self.unknown(&line);
            return false;
        }
        let outcome = match commands::run(self, &cmd, &arg) {
            None => {
                self.unknown(&line);
                return false;
            }
            Some(outcome) => outcome,
        };
        let quit = match outcome {
            Ok(quit) => quit,
            Err(CtlError::Client(ClientError::Http(401))) => {
                self.output("Server requires authentication");
                if self.options.interactive && self.ask_credentials() {
                    return self.onecmd(&line);
                }
                self.exitstatus = exit::GENERIC;
                false
            }
            Err(e) => {
                let text = describe_uncaught(&e);
                self.output(&text);
                self.exitstatus = exit::GENERIC;
                false
            }
        };
        self.flush();
        quit
    }

    fn unknown(&mut self, line: &str) {
        self.output(&format!("*** Unknown syntax: {line}"));
        self.exitstatus = exit::GENERIC;
    }

    /// Ask for a user name and password on the terminal (interactive 401), as supervisorctl.
    fn ask_credentials(&mut self) -> bool {
        self.flush();
        let Some(username) = prompt_line("Username:") else { return false };
        let Ok(password) = read_password("Password:") else { return false };
        self.output("");
        self.options.username = Some(username);
        self.options.password = Some(password);
        true
    }

    /// Ask a yes/no question; true for an answer starting with `y`.
    pub fn confirm(&mut self, question: &str) -> bool {
        self.flush();
        prompt_line(question).map(|a| a.to_lowercase().starts_with('y')).unwrap_or(false)
    }

    /// getAllProcessInfo, cached until the next command (for completion).
    pub fn complete_info(&mut self) -> &[Struct] {
        if self.complete_info.is_none() {
            let infos = self
                .call("supervisor.getAllProcessInfo", vec![])
                .ok()
                .and_then(|v| value::into_structs(v).ok())
                .unwrap_or_default();
            self.complete_info = Some(infos);
        }
        self.complete_info.as_deref().unwrap_or(&[])
    }
}

/// Print `prompt`, read one line from stdin (without its newline); `None` at end of input.
fn prompt_line(prompt: &str) -> Option<String> {
    print!("{prompt}");
    let _ = io::stdout().flush();
    let mut line = String::new();
    match io::stdin().lock().read_line(&mut line) {
        Ok(0) | Err(_) => None,
        Ok(_) => Some(line.trim_end_matches(['\n', '\r']).to_string()),
    }
}

/// Read a password with echo off when stdin is a terminal.
fn read_password(prompt: &str) -> io::Result<String> {
    use nix::sys::termios::{tcgetattr, tcsetattr, LocalFlags, SetArg};
    let stdin = io::stdin();
    let saved = tcgetattr(&stdin).ok();
    if let Some(t) = &saved {
        let mut quiet = t.clone();
        quiet.local_flags.remove(LocalFlags::ECHO);
        let _ = tcsetattr(&stdin, SetArg::TCSANOW, &quiet);
    }
    let line = prompt_line(prompt);
    if let Some(t) = &saved {
        let _ = tcsetattr(&stdin, SetArg::TCSANOW, t);
    }
    line.ok_or_else(|| io::Error::from(io::ErrorKind::UnexpectedEof))
}

/// Python `cmd.Cmd.parseline`: `(command, argument, stripped line)`; `None` for a blank line.
pub fn parseline(line: &str) -> Option<(String, String, String)> {
    let mut line = line.trim().to_string();
    if line.is_empty() {
        return None;
    }
    if let Some(rest) = line.strip_prefix('?') {
        line = format!("help {rest}");
    }
    let end = line.find(|c: char| !(c.is_ascii_alphanumeric() || c == '_')).unwrap_or(line.len());
    let cmd = line[..end].to_string();
    let arg = line[end..].trim().to_string();
    Some((cmd, arg, line))
}

/// supervisorctl's line for an exception it did not expect.
fn describe_uncaught(e: &CtlError) -> String {
    match e {
        CtlError::Uncaught { .. } => e.to_string(),
        CtlError::Client(ClientError::Fault { code, text }) => {
            format!("error: <class 'xmlrpc.client.Fault'>, <Fault {code}: {}>", py_repr(text))
        }
        CtlError::Client(ClientError::Http(status)) => {
            format!(
                "error: <class 'xmlrpc.client.ProtocolError'>, <ProtocolError for 127.0.0.1/RPC2: {status}>"
            )
        }
        CtlError::Client(ClientError::Io(io)) => describe_os_error(io),
        CtlError::Io(io) => describe_os_error(io),
        other => format!("error: <class 'Exception'>, {other}"),
    }
}

fn describe_os_error(e: &io::Error) -> String {
    let class = match e.raw_os_error() {
        Some(libc::ECONNREFUSED) => "ConnectionRefusedError",
        Some(libc::ENOENT) => "FileNotFoundError",
        Some(libc::EACCES) | Some(libc::EPERM) => "PermissionError",
        Some(libc::ECONNRESET) => "ConnectionResetError",
        Some(libc::EPIPE) => "BrokenPipeError",
        _ => "OSError",
    };
    match e.raw_os_error() {
        Some(n) => format!("error: <class '{class}'>, [Errno {n}] {}", strerror(n)),
        None => format!("error: <class '{class}'>, {e}"),
    }
}

fn strerror(n: i32) -> String {
    let text = io::Error::from_raw_os_error(n).to_string();
    // std appends " (os error N)"; Python prints the bare strerror.
    match text.rfind(" (os error") {
        Some(i) => text[..i].to_string(),
        None => text,
    }
}

/// Python `repr()` of a string, as supervisorctl prints names.
pub use crate::config::pyfmt::py_repr;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_lines_like_cmd() {
        assert_eq!(parseline("  "), None);
        assert_eq!(
            parseline("status foo bar"),
            Some(("status".into(), "foo bar".into(), "status foo bar".into()))
        );
        assert_eq!(parseline("tail-f x"), Some(("tail".into(), "-f x".into(), "tail-f x".into())));
        assert_eq!(parseline("?status"), Some(("help".into(), "status".into(), "help status".into())));
        assert_eq!(parseline("!ls"), Some(("".into(), "!ls".into(), "!ls".into())));
    }

    #[test]
    fn repr_quotes_like_python() {
        assert_eq!(py_repr("abc"), "'abc'");
        assert_eq!(py_repr("it's"), "\"it's\"");
        assert_eq!(py_repr("a\nb"), "'a\\nb'");
    }
}
