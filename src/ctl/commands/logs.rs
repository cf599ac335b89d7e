//! `tail`, `maintail`, `clear`, `fg`: reading, following and clearing logs.

use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use dxr::Value;

use super::super::client::ClientError;
use super::super::controller::{exit, faults, Controller};
use super::super::error::CtlError;
use super::super::format::{make_namespec, namespec_of, split_namespec};
use super::super::interrupt;
use super::super::value;
use super::help::help_text;
use super::words;

/// How often blocking reads wake to notice Ctrl-C.
const TICK: Duration = Duration::from_millis(200);

/// supervisorctl's default tail length in bytes.
const DEFAULT_BYTES: i64 = 1600;

/// Python's `int()` of a string: optional sign, digits (single `_` between digits allowed).
pub fn py_int(text: &str) -> Option<i64> {
    let t = text.trim();
    let (neg, digits) = match t.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, t.strip_prefix('+').unwrap_or(t)),
    };
    let ok = !digits.is_empty()
        && !digits.starts_with('_')
        && !digits.ends_with('_')
        && !digits.contains("__")
        && digits.chars().all(|c| c.is_ascii_digit() || c == '_');
    if !ok {
        return None;
    }
    let n: i64 = digits.replace('_', "").parse().ok()?;
    Some(if neg { -n } else { n })
}

/// Read a log slice, mapping supervisorctl's three known faults to its messages.
fn print_log(ctl: &mut Controller, who: &str, method: &str, params: Vec<Value>) -> Result<(), CtlError> {
    match ctl.call(method, params) {
        Ok(v) => {
            ctl.output(&value::text(&v));
            Ok(())
        }
        Err(ClientError::Fault { code, text }) => {
            ctl.exitstatus = exit::GENERIC;
            let reason = match code {
                faults::NO_FILE => "no log file",
                faults::FAILED => "unknown error reading log",
                faults::BAD_NAME if who != "supervisord" => "no such process name",
                _ => return Err(ClientError::Fault { code, text }.into()),
            };
            ctl.output(&format!("{who}: ERROR ({reason})"));
            Ok(())
        }
        Err(e) => Err(e.into()),
    }
}

fn bytes_param(n: i64) -> Result<Value, CtlError> {
    // xmlrpc.client refuses ints beyond 32 bits, as OverflowError.
    i32::try_from(-n).map(Value::Integer).map_err(|_| CtlError::Uncaught {
        class: "OverflowError",
        message: "int exceeds XML-RPC limits".into(),
    })
}

/// `tail [-f|-N] name [stdout|stderr]`.
pub fn tail(ctl: &mut Controller, arg: &str) -> Result<(), CtlError> {
    if !ctl.upcheck()? {
        return Ok(());
    }
    let mut args = words(arg);
    if args.is_empty() || args.len() > 3 {
        let msg = if args.is_empty() { "Error: too few arguments" } else { "Error: too many arguments" };
        ctl.output(msg);
        ctl.exitstatus = exit::GENERIC;
        ctl.output(&help_text("tail").unwrap_or_default());
        return Ok(());
    }
    let modifier = if args[0].starts_with('-') { Some(args.remove(0)) } else { None };
    let (name, channel) = match args.len() {
        1 => (args[0].clone(), "stdout".to_string()),
        0 => {
            ctl.output("Error: tail requires process name");
            ctl.exitstatus = exit::GENERIC;
            return Ok(());
        }
        _ => {
            let channel = args[args.len() - 1].to_lowercase();
            if channel != "stdout" && channel != "stderr" {
                ctl.output(&format!("Error: bad channel {}", super::super::controller::py_repr(&channel)));
                ctl.exitstatus = exit::GENERIC;
                return Ok(());
            }
            (args[0].clone(), channel)
        }
    };
    let mut bytes = Some(DEFAULT_BYTES);
    if let Some(m) = &modifier {
        let what = &m[1..];
        if what == "f" {
            bytes = None;
        } else {
            match py_int(what) {
                Some(n) => bytes = Some(n),
                None => {
                    ctl.output(&format!("Error: bad argument {m}"));
                    ctl.exitstatus = exit::GENERIC;
                    return Ok(());
                }
            }
        }
    }
    match bytes {
        None => follow(ctl, &format!("/logtail/{name}/{channel}")),
        Some(n) => {
            let method = if channel == "stdout" {
                "supervisor.readProcessStdoutLog"
            } else {
                "supervisor.readProcessStderrLog"
            };
            let params = vec![Value::String(name.clone()), bytes_param(n)?, Value::Integer(0)];
            print_log(ctl, &name, method, params)
        }
    }
}

/// `maintail [-f|-N]`.
pub fn maintail(ctl: &mut Controller, arg: &str) -> Result<(), CtlError> {
    if !ctl.upcheck()? {
        return Ok(());
    }
    let args = words(arg);
    if args.len() > 1 {
        ctl.output("Error: too many arguments");
        ctl.exitstatus = exit::GENERIC;
        ctl.output(&help_text("maintail").unwrap_or_default());
        return Ok(());
    }
    let mut bytes = DEFAULT_BYTES;
    if let Some(a) = args.first() {
        match a.strip_prefix('-') {
            Some("f") => return follow(ctl, "/mainlogtail"),
            Some(what) if py_int(what).is_some() => bytes = py_int(what).unwrap_or(DEFAULT_BYTES),
            _ => {
                ctl.output(&format!("Error: bad argument {a}"));
                ctl.exitstatus = exit::GENERIC;
                return Ok(());
            }
        }
    }
    print_log(ctl, "supervisord", "supervisor.readLog", vec![bytes_param(bytes)?, Value::Integer(0)])
}

/// supervisorctl's `_tailf`: stream an endless tail until Ctrl-C.
fn follow(ctl: &mut Controller, path: &str) -> Result<(), CtlError> {
    ctl.output("==> Press Ctrl-C to exit <==");
    ctl.flush();
    let guard = interrupt::Guard::install();
    let client = ctl.client()?;
    let mut sink = |data: &[u8]| {
        if !data.is_empty() {
            ctl.write_raw(data);
        }
        !guard.interrupted()
    };
    let result = client.stream_get(path, TICK, &mut sink);
    let url = format!("{}{path}", ctl.options.serverurl);
    report_stream_error(&url, result);
    if guard.interrupted() {
        ctl.output("");
    }
    Ok(())
}

/// supervisorctl's HTTP client prints stream failures on stderr and carries on.
fn report_stream_error(url: &str, result: Result<(), ClientError>) {
    match result {
        Ok(()) => {}
        Err(ClientError::Http(status)) => eprintln!("{url} Cannot read, status code {status}"),
        Err(e) => eprintln!("{url} Cannot connect, error: {e}"),
    }
}

/// `clear name ... | all`.
pub fn clear(ctl: &mut Controller, arg: &str) -> Result<(), CtlError> {
    if !ctl.upcheck()? {
        return Ok(());
    }
    let names = words(arg);
    if names.is_empty() {
        ctl.output("Error: clear requires a process name");
        ctl.exitstatus = exit::GENERIC;
        ctl.output(&help_text("clear").unwrap_or_default());
        return Ok(());
    }
    let line = |namespec: &str, code: i32| -> Result<String, CtlError> {
        match code {
            faults::BAD_NAME => Ok(format!("{namespec}: ERROR (no such process)")),
            faults::FAILED => Ok(format!("{namespec}: ERROR (failed)")),
            faults::SUCCESS => Ok(format!("{namespec}: cleared")),
            _ => Err(CtlError::Uncaught {
                class: "ValueError",
                message: format!("Unknown result code {code} for {namespec}"),
            }),
        }
    };
    if names.iter().any(|n| n == "all") {
        for r in value::into_structs(ctl.call("supervisor.clearAllProcessLogs", vec![])?)? {
            let code = r.get("status").and_then(value::int).unwrap_or(0) as i32;
            let text = line(&namespec_of(&r), code)?;
            ctl.output(&text);
            ctl.set_exitstatus_from_fault(code, None);
        }
        return Ok(());
    }
    for name in &names {
        let (group, process) = split_namespec(name);
        let namespec = make_namespec(&group, &process.unwrap_or_default());
        match ctl.call("supervisor.clearProcessLogs", vec![Value::String(name.clone())]) {
            Ok(_) => ctl.output(&format!("{namespec}: cleared")),
            Err(ClientError::Fault { code, .. }) => {
                let text = line(&namespec, code)?;
                ctl.output(&text);
                ctl.set_exitstatus_from_fault(code, None);
            }
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

/// RUNNING's state code.
const RUNNING: i64 = 20;

/// `fg name`: follow stdout and stderr, send typed lines to the process's stdin.
pub fn fg(ctl: &mut Controller, arg: &str) -> Result<(), CtlError> {
    if !ctl.upcheck()? {
        return Ok(());
    }
    let names = words(arg);
    if names.is_empty() {
        ctl.output("ERROR: no process name supplied");
        ctl.exitstatus = exit::GENERIC;
        ctl.output(&help_text("fg").unwrap_or_default());
        return Ok(());
    }
    if names.len() > 1 {
        ctl.output("ERROR: too many process names supplied");
        ctl.exitstatus = exit::GENERIC;
        return Ok(());
    }
    let name = names[0].clone();
    let state = |ctl: &Controller| -> Result<i64, ClientError> {
        let info = ctl.call("supervisor.getProcessInfo", vec![Value::String(name.clone())])?;
        Ok(value::into_struct(info).ok().and_then(|i| i.get("state").and_then(value::int)).unwrap_or(-1))
    };
    match state(ctl) {
        Err(ClientError::Fault { code: faults::BAD_NAME, .. }) => {
            ctl.output("ERROR: bad process name supplied");
            ctl.exitstatus = exit::GENERIC;
            return Ok(());
        }
        Err(ClientError::Fault { code, text }) => {
            ctl.output(&format!("ERROR: <Fault {code}: {}>", super::super::controller::py_repr(&text)));
            return Ok(());
        }
        Err(e) => return Err(e.into()),
        Ok(s) if s != RUNNING => {
            ctl.output("ERROR: process not running");
            ctl.exitstatus = exit::GENERIC;
            return Ok(());
        }
        Ok(_) => {}
    }
    ctl.output("==> Press Ctrl-C to exit <==");
    ctl.flush();
    let guard = interrupt::Guard::install();
    let stop = Arc::new(AtomicBool::new(false));
    let mut followers = Vec::new();
    for channel in ["stdout", "stderr"] {
        let client = ctl.client()?;
        let stop = Arc::clone(&stop);
        let path = format!("/logtail/{name}/{channel}");
        let url = format!("{}{path}", ctl.options.serverurl);
        followers.push(std::thread::spawn(move || {
            let mut sink = |data: &[u8]| {
                if !data.is_empty() {
                    let mut out = std::io::stdout().lock();
                    let _ = out.write_all(data);
                    let _ = out.flush();
                }
                !stop.load(Ordering::SeqCst)
            };
            report_stream_error(&url, client.stream_get(&path, TICK, &mut sink));
        }));
    }
    let mut input = StdinLines::default();
    let ending = loop {
        let line = match input.next_line(&guard) {
            Ok(Some(line)) => line,
            Ok(None) | Err(_) => break vec!["Exiting foreground".to_string()],
        };
        let sent =
            ctl.call("supervisor.sendProcessStdin", vec![Value::String(name.clone()), Value::String(line)]);
        match sent {
            Err(ClientError::Fault { code: faults::NOT_RUNNING, .. }) => {
                break vec!["Process got killed".into(), "Exiting foreground".into()]
            }
            Err(ClientError::Fault { code, text }) => {
                break vec![
                    format!("ERROR: <Fault {code}: {}>", super::super::controller::py_repr(&text)),
                    "Exiting foreground".into(),
                ]
            }
            Err(e) => {
                stop.store(true, Ordering::SeqCst);
                return Err(e.into());
            }
            Ok(_) => {}
        }
        match state(ctl) {
            Ok(RUNNING) => {}
            Ok(_) => break vec!["Process got killed".into(), "Exiting foreground".into()],
            Err(e) => {
                stop.store(true, Ordering::SeqCst);
                return Err(e.into());
            }
        }
    };
    stop.store(true, Ordering::SeqCst);
    for line in ending {
        ctl.output(&line);
    }
    ctl.flush();
    for f in followers {
        let _ = f.join();
    }
    Ok(())
}

/// Lines typed on stdin, read without blocking Ctrl-C.
#[derive(Default)]
struct StdinLines {
    pending: Vec<u8>,
    eof: bool,
}

impl StdinLines {
    /// The next line with its newline; `None` at end of input or on Ctrl-C.
    fn next_line(&mut self, guard: &interrupt::Guard) -> std::io::Result<Option<String>> {
        loop {
            if let Some(i) = self.pending.iter().position(|b| *b == b'\n') {
                let line: Vec<u8> = self.pending.drain(..=i).collect();
                return Ok(Some(String::from_utf8_lossy(&line).into_owned()));
            }
            if self.eof || guard.interrupted() {
                return Ok(None);
            }
            let mut fds = [libc::pollfd { fd: 0, events: libc::POLLIN, revents: 0 }];
            // SAFETY: one valid pollfd for fd 0, length 1.
            let ready = unsafe { libc::poll(fds.as_mut_ptr(), 1, TICK.as_millis() as libc::c_int) };
            if ready <= 0 {
                continue;
            }
            let mut buf = [0u8; 4096];
            // SAFETY: reading into a stack buffer of the given length.
            let n = unsafe { libc::read(0, buf.as_mut_ptr().cast(), buf.len()) };
            if n < 0 {
                let e = std::io::Error::last_os_error();
                if e.kind() == std::io::ErrorKind::Interrupted {
                    continue;
                }
                return Err(e);
            }
            if n == 0 {
                // raw_input() drops a final unterminated line at EOF, as supervisorctl does.
                self.eof = true;
                continue;
            }
            self.pending.extend_from_slice(&buf[..n as usize]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::py_int;

    #[test]
    fn ints_like_python() {
        assert_eq!(py_int("100"), Some(100));
        assert_eq!(py_int("-5"), Some(-5));
        assert_eq!(py_int("+5"), Some(5));
        assert_eq!(py_int("1_000"), Some(1000));
        assert_eq!(py_int("x"), None);
        assert_eq!(py_int(""), None);
        assert_eq!(py_int("1__0"), None);
    }
}
