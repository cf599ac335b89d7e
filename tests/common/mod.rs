//! Test harness: a real `corrald` on a temporary configuration, driven over XML-RPC.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use corral::ctl::client::{Client, ServerUrl};
use dxr::Value;

/// Generous deadline for conditions on a shared, noisy machine.
pub const DEADLINE: Duration = Duration::from_secs(30);

/// Poll `cond` every 20 ms until it holds or `timeout` passes; panics with `what` on timeout.
pub fn wait_for(what: &str, timeout: Duration, mut cond: impl FnMut() -> bool) {
    let start = Instant::now();
    while !cond() {
        if start.elapsed() > timeout {
            panic!("timed out after {timeout:?} waiting for {what}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Skip a test that cannot run here, or fail it in CI (which forbids skips).
pub fn skip(reason: &str) {
    if std::env::var_os("CI").is_some() {
        panic!("test cannot run in CI: {reason}");
    }
    eprintln!("SKIPPED: {reason}");
}

/// The Python with Supervisor installed (from `scripts/test`), if any.
pub fn python() -> Option<PathBuf> {
    let candidates = [
        std::env::var_os("CORRAL_TEST_PYTHON").map(PathBuf::from),
        Some(Path::new(env!("CARGO_MANIFEST_DIR")).join(".venv/bin/python")),
    ];
    candidates.into_iter().flatten().find(|p| p.exists())
}

/// The stock supervisorctl from PyPI, if installed.
pub fn supervisorctl() -> Option<PathBuf> {
    python().map(|p| p.with_file_name("supervisorctl")).filter(|p| p.exists())
}

/// A running corrald with its own directory, socket and config.
pub struct Daemon {
    pub child: Option<Child>,
    pub dir: tempfile::TempDir,
    pub conf: PathBuf,
    pub sock: PathBuf,
}

/// The `[supervisord]` and server sections every test config gets.
pub fn preamble(dir: &Path) -> String {
    format!(
        "[supervisord]\nlogfile={d}/corrald.log\npidfile={d}/corrald.pid\nchildlogdir={d}\nloglevel=debug\nnodaemon=true\nidentifier=test-{id}\n\n\
         [unix_http_server]\nfile={d}/corral.sock\n\n\
         [rpcinterface:supervisor]\nsupervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface\n\n\
         [supervisorctl]\nserverurl=unix://{d}/corral.sock\n\n",
        d = dir.display(),
        id = dir.file_name().and_then(|n| n.to_str()).unwrap_or("x").trim_start_matches('.')
    )
}

impl Daemon {
    /// Start corrald with `programs` (INI text) after the standard preamble; waits until it answers.
    pub fn start(programs: &str) -> Daemon {
        let dir = tempfile::tempdir().expect("temp dir");
        let text = format!(
            "{}{}",
            preamble(dir.path()),
            programs.replace("{dir}", &dir.path().display().to_string())
        );
        Daemon::start_with(dir, &text)
    }

    /// Start corrald on exactly `text` written to `<dir>/corral.conf`.
    pub fn start_with(dir: tempfile::TempDir, text: &str) -> Daemon {
        Daemon::launch(dir, text, &[], false)
    }

    /// Like [`Daemon::start`], passing `args` to corrald after `-c <conf>`.
    pub fn start_with_args(programs: &str, args: &[String]) -> Daemon {
        let dir = tempfile::tempdir().expect("temp dir");
        let text = format!(
            "{}{}",
            preamble(dir.path()),
            programs.replace("{dir}", &dir.path().display().to_string())
        );
        Daemon::launch(dir, &text, args, false)
    }

    /// Run corrald on `text`; ready once it answers (with `auth`, a 401 counts).
    /// Unless `args` choose a bus, D-Bus is off: tests never touch a host's system bus.
    fn launch(dir: tempfile::TempDir, text: &str, args: &[String], auth: bool) -> Daemon {
        let no_bus = !args.iter().any(|a| a.starts_with("--dbus"));
        let mut all: Vec<&str> = if no_bus { vec!["--dbus", "none"] } else { vec![] };
        all.extend(args.iter().map(String::as_str));
        let d = Daemon::spawn_full(dir, text, &[], &[], false, &all);
        wait_for("corrald to answer on its socket", DEADLINE, || {
            match d.try_call("supervisor.getPID", vec![]) {
                Ok(_) => true,
                Err(corral::ctl::client::ClientError::Http(401)) => auth,
                Err(_) => false,
            }
        });
        d
    }

    /// Write `<dir>/corral.conf` and start `wrapper… corrald [-n] -c <conf> args…` with
    /// `env` added and stderr in `<dir>/corrald.stderr`; does not wait.
    fn spawn_full(
        dir: tempfile::TempDir,
        text: &str,
        env: &[(&str, &str)],
        wrapper: &[&str],
        foreground: bool,
        args: &[&str],
    ) -> Daemon {
        let conf = dir.path().join("corral.conf");
        std::fs::write(&conf, text).expect("write config");
        let sock = dir.path().join("corral.sock");
        let corrald = env!("CARGO_BIN_EXE_corrald");
        let mut cmd = match wrapper.split_first() {
            Some((first, rest)) => {
                let mut c = Command::new(first);
                c.args(rest).arg(corrald);
                c
            }
            None => Command::new(corrald),
        };
        if foreground {
            cmd.arg("-n");
        }
        let child = cmd
            .arg("-c")
            .arg(&conf)
            .args(args)
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::from(
                std::fs::File::create(dir.path().join("corrald.stderr")).expect("stderr file"),
            ))
            .spawn()
            .expect("spawn corrald");
        Daemon { child: Some(child), dir, conf, sock }
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    pub fn client(&self) -> Client {
        Client::new(ServerUrl::Unix(self.sock.clone())).with_timeout(Some(Duration::from_secs(60)))
    }

    pub fn try_call(
        &self,
        method: &str,
        params: Vec<Value>,
    ) -> Result<Value, corral::ctl::client::ClientError> {
        self.client().call(method, params)
    }

    pub fn call(&self, method: &str, params: Vec<Value>) -> Value {
        self.try_call(method, params).unwrap_or_else(|e| panic!("{method} failed: {e}"))
    }

    /// getProcessInfo as a map of strings/ints.
    pub fn info(&self, name: &str) -> BTreeMap<String, Value> {
        struct_of(self.call("supervisor.getProcessInfo", vec![s(name)]))
    }

    pub fn state(&self, name: &str) -> String {
        str_of(&self.info(name)["statename"])
    }

    pub fn pid(&self, name: &str) -> i64 {
        int_of(&self.info(name)["pid"])
    }

    /// Wait until `name` is in `state`.
    pub fn wait_state(&self, name: &str, state: &str) {
        wait_for(&format!("{name} to be {state}"), DEADLINE, || self.state(name) == state);
    }

    /// The daemon's pid.
    pub fn daemon_pid(&self) -> i32 {
        self.child.as_ref().map(|c| c.id() as i32).unwrap_or(0)
    }

    pub fn signal(&self, sig: nix::sys::signal::Signal) {
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(self.daemon_pid()), sig).expect("signal corrald");
    }

    /// Wait for the daemon to exit; returns its exit code.
    pub fn wait_exit(&mut self) -> Option<i32> {
        let mut child = self.child.take()?;
        let start = Instant::now();
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                return status.code();
            }
            if start.elapsed() > DEADLINE {
                let _ = child.kill();
                let _ = child.wait();
                panic!("corrald did not exit");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn main_log(&self) -> String {
        std::fs::read_to_string(self.path("corrald.log")).unwrap_or_default()
    }
}

/// SIGTERM a daemon and wait for it (generously), then SIGKILL what is left.
pub fn terminate(mut child: Child) {
    let pid = nix::unistd::Pid::from_raw(child.id() as i32);
    let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
    let start = Instant::now();
    while start.elapsed() < DEADLINE {
        if let Ok(Some(_)) = child.try_wait() {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    let _ = child.wait();
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Some(child) = self.child.take() {
            terminate(child);
        }
    }
}

pub fn struct_of(v: Value) -> BTreeMap<String, Value> {
    match v {
        Value::Struct(m) => m,
        other => panic!("expected a struct, got {other:?}"),
    }
}

pub fn array_of(v: Value) -> Vec<Value> {
    match v {
        Value::Array(a) => a,
        other => panic!("expected an array, got {other:?}"),
    }
}

pub fn str_of(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => panic!("expected a string, got {other:?}"),
    }
}

pub fn int_of(v: &Value) -> i64 {
    match v {
        Value::Integer(i) => i64::from(*i),
        Value::Long(i) => *i,
        other => panic!("expected an int, got {other:?}"),
    }
}

pub fn s(v: &str) -> Value {
    Value::String(v.into())
}

/// Whether a pid is alive (and not a zombie).
pub fn alive(pid: i64) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(s) => !s.rsplit(')').next().unwrap_or("").trim_start().starts_with('Z'),
        Err(_) => false,
    }
}

/// Test double: a tiny XML-RPC responder on a unix socket, answering each call
/// with whatever `handler` returns (`Err((code, text))` is sent as a fault).
/// Used where the real daemon does not (yet) provide a method.
pub struct FakeRpcServer {
    pub dir: tempfile::TempDir,
    pub sock: PathBuf,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

/// What a [`FakeRpcServer`] answers for one call.
pub type FakeAnswer = Result<Value, (i32, String)>;

impl FakeRpcServer {
    pub fn start(handler: impl Fn(&str, &[Value]) -> FakeAnswer + Send + 'static) -> FakeRpcServer {
        use std::io::{BufRead, BufReader, Read, Write};
        use std::sync::atomic::Ordering;
        let dir = tempfile::tempdir().expect("temp dir");
        let sock = dir.path().join("fake.sock");
        let listener = std::os::unix::net::UnixListener::bind(&sock).expect("bind fake socket");
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let stopping = stop.clone();
        let thread = std::thread::spawn(move || {
            for conn in listener.incoming() {
                if stopping.load(Ordering::SeqCst) {
                    return;
                }
                let Ok(conn) = conn else { continue };
                let mut reader = BufReader::new(conn);
                let mut length = 0usize;
                loop {
                    let mut line = String::new();
                    if reader.read_line(&mut line).unwrap_or(0) == 0 {
                        break;
                    }
                    let line = line.trim_end();
                    if line.is_empty() {
                        break;
                    }
                    if let Some((k, v)) = line.split_once(':') {
                        if k.eq_ignore_ascii_case("content-length") {
                            length = v.trim().parse().unwrap_or(0);
                        }
                    }
                }
                let mut body = vec![0u8; length];
                if reader.read_exact(&mut body).is_err() {
                    continue;
                }
                let text = String::from_utf8_lossy(&body).into_owned();
                let xml = match dxr::MethodCall::from_xml(&text) {
                    Ok(call) => match handler(&call.name, &call.params) {
                        Ok(v) => dxr::MethodResponse { value: v }.to_xml().expect("encode"),
                        Err((code, text)) => dxr::FaultResponse { fault: dxr::Fault::new(code, text) }
                            .to_xml()
                            .expect("encode"),
                    },
                    Err(_) => String::new(),
                };
                let xml = format!("<?xml version='1.0'?>\n{xml}");
                let mut conn = reader.into_inner();
                let _ = write!(
                    conn,
                    "HTTP/1.1 200 OK\r\nContent-Type: text/xml\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{xml}",
                    xml.len()
                );
            }
        });
        FakeRpcServer { dir, sock, stop, thread: Some(thread) }
    }

    pub fn url(&self) -> String {
        format!("unix://{}", self.sock.display())
    }
}

impl Drop for FakeRpcServer {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::SeqCst);
        // Wake the accept loop so the thread sees the flag and ends.
        let _ = std::os::unix::net::UnixStream::connect(&self.sock);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Daemon {
    /// Start corrald on exactly `text`, whose server requires authentication;
    /// ready once the socket answers at all (a 401 counts).
    pub fn start_with_auth(dir: tempfile::TempDir, text: &str) -> Daemon {
        Daemon::launch(dir, text, &[], true)
    }
}

/// A TCP port that was free a moment ago (bind to port 0, read it, close).
pub fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a free port");
    l.local_addr().expect("local addr").port()
}

/// A plain HTTP answer: status code, lower-case headers, body.
pub struct HttpResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl HttpResponse {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }
}

/// One HTTP/1.0 request to `127.0.0.1:port` (the server closes after answering,
/// so the body is everything up to EOF). `headers` are sent as given.
pub fn http(port: u16, method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> HttpResponse {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect");
    stream.set_read_timeout(Some(DEADLINE)).expect("timeout");
    let mut req =
        format!("{method} {path} HTTP/1.0\r\nHost: 127.0.0.1:{port}\r\nContent-Length: {}\r\n", body.len());
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    stream.write_all(req.as_bytes()).expect("send request");
    stream.write_all(body).expect("send body");
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).expect("read response");
    let split = raw.windows(4).position(|w| w == b"\r\n\r\n").expect("end of headers");
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let mut lines = head.lines();
    let status =
        lines.next().and_then(|l| l.split(' ').nth(1)).and_then(|c| c.parse().ok()).expect("status line");
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    HttpResponse { status, headers, body: raw[split + 4..].to_vec() }
}

/// `Authorization` header value for HTTP Basic.
pub fn basic_auth(user: &str, password: &str) -> String {
    use base64::Engine as _;
    format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}")))
}

impl Daemon {
    /// Write `text` to `<dir>/corral.conf` and start `wrapper… corrald -n -c <conf>` with
    /// `env` added (e.g. `NOTIFY_SOCKET`, or `unshare …` as the wrapper). Does not wait
    /// for the socket: callers wait for what they test.
    pub fn spawn_with(dir: tempfile::TempDir, text: &str, env: &[(&str, &str)], wrapper: &[&str]) -> Daemon {
        Daemon::spawn_full(dir, text, env, wrapper, true, &[])
    }

    /// Wait until the daemon answers on its socket.
    pub fn wait_answering(&self) {
        wait_for("corrald to answer on its socket", DEADLINE, || {
            self.try_call("supervisor.getPID", vec![]).is_ok()
        });
    }
}

/// A unix datagram socket bound in `dir` standing in for systemd's notify socket or
/// journald's: a thread drains it at once (a full datagram queue would block the
/// sender, as a stuck journald would) and keeps what corrald sends.
pub struct DatagramSink {
    pub path: PathBuf,
    rx: std::sync::mpsc::Receiver<Vec<u8>>,
}

impl DatagramSink {
    pub fn bind(dir: &Path, name: &str) -> DatagramSink {
        let path = dir.join(name);
        let socket = std::os::unix::net::UnixDatagram::bind(&path).expect("bind datagram socket");
        socket.set_read_timeout(Some(Duration::from_millis(200))).expect("read timeout");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut buf = vec![0u8; 256 * 1024];
            loop {
                let datagram = match socket.recv(&mut buf) {
                    Ok(n) => buf[..n].to_vec(),
                    // An empty message on timeout: the way to notice the test has gone.
                    Err(e)
                        if matches!(
                            e.kind(),
                            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                        ) =>
                    {
                        Vec::new()
                    }
                    Err(e) => panic!("recv: {e}"),
                };
                if tx.send(datagram).is_err() {
                    return;
                }
            }
        });
        DatagramSink { path, rx }
    }

    /// The next datagram, or `None` after `timeout`.
    pub fn recv(&self, timeout: Duration) -> Option<Vec<u8>> {
        let start = Instant::now();
        while let Some(left) = timeout.checked_sub(start.elapsed()) {
            match self.rx.recv_timeout(left) {
                Ok(d) if d.is_empty() => continue,
                Ok(d) => return Some(d),
                Err(_) => return None,
            }
        }
        None
    }

    /// Receive until `pred` accepts a datagram; returns it. Panics after `DEADLINE`,
    /// listing what was received.
    pub fn recv_until(&self, what: &str, mut pred: impl FnMut(&[u8]) -> bool) -> Vec<u8> {
        let start = Instant::now();
        let mut seen = Vec::new();
        while start.elapsed() < DEADLINE {
            if let Some(d) = self.recv(Duration::from_millis(500)) {
                if pred(&d) {
                    return d;
                }
                seen.push(String::from_utf8_lossy(&d).into_owned());
            }
        }
        panic!("timed out waiting for {what}; received {seen:#?}");
    }
}

/// Whether this process may create namespaces and mount (root in CI).
pub fn can_unshare() -> bool {
    Command::new("unshare")
        .args(["--pid", "--fork", "--mount-proc", "true"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

/// The real Python supervisord (next to `python()`) on the same kind of config as [`Daemon`],
/// for side-by-side comparisons. Stopped (and its children with it) on drop.
pub struct Reference {
    pub child: Option<Child>,
    pub dir: tempfile::TempDir,
    pub conf: PathBuf,
    pub sock: PathBuf,
}

impl Reference {
    /// Start supervisord with `programs` after [`preamble`]; `None` when it is not installed.
    pub fn start(programs: &str) -> Option<Reference> {
        let bin = python()?.with_file_name("supervisord");
        if !bin.exists() {
            return None;
        }
        let dir = tempfile::tempdir().expect("temp dir");
        let text = format!(
            "{}{}",
            preamble(dir.path()),
            programs.replace("{dir}", &dir.path().display().to_string())
        );
        let conf = dir.path().join("corral.conf");
        std::fs::write(&conf, text).expect("write config");
        let sock = dir.path().join("corral.sock");
        let child = Command::new(bin)
            .arg("-c")
            .arg(&conf)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn supervisord");
        let r = Reference { child: Some(child), dir, conf, sock };
        wait_for("supervisord to answer", DEADLINE, || ctl(&r.conf, &["pid"]).1 == 0);
        Some(r)
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Wait for supervisord to exit (after `shutdown`).
    pub fn wait_exit(&mut self) {
        if let Some(mut child) = self.child.take() {
            wait_for("supervisord to exit", DEADLINE, || matches!(child.try_wait(), Ok(Some(_))));
        }
    }
}

impl Drop for Reference {
    fn drop(&mut self) {
        if let Some(child) = self.child.take() {
            terminate(child);
        }
    }
}

/// Run the stock `supervisorctl -c conf args…`; returns (stdout+stderr, exit code).
/// Panics if it runs longer than a minute (a server that never answers).
pub fn ctl(conf: &Path, args: &[&str]) -> (String, i32) {
    let bin = supervisorctl().expect("supervisorctl installed");
    let out = tempfile::NamedTempFile::new().expect("temp file");
    let mut child = Command::new(bin)
        .arg("-c")
        .arg(conf)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::from(out.reopen().expect("reopen")))
        .stderr(Stdio::from(out.reopen().expect("reopen")))
        .spawn()
        .expect("spawn supervisorctl");
    let start = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait supervisorctl") {
            break status;
        }
        if start.elapsed() > Duration::from_secs(60) {
            let _ = child.kill();
            let _ = child.wait();
            panic!("supervisorctl {args:?} did not finish within 60 s (server never answered)");
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    (std::fs::read_to_string(out.path()).unwrap_or_default(), status.code().unwrap_or(-1))
}

/// Make two servers' outputs comparable: the temp dir becomes `{dir}`, pids `N`,
/// uptimes `T`, stop times (`Nov 25 01:23 PM`) `DATE`, lines that are only a number `PID`.
pub fn normalise(text: &str, dir: &Path) -> String {
    let text = text.replace(&dir.display().to_string(), "{dir}");
    let mut out = String::new();
    for line in text.split_inclusive('\n') {
        let body = line.trim_end_matches('\n');
        if !body.is_empty() && body.bytes().all(|b| b.is_ascii_digit()) {
            out.push_str("PID");
            out.push_str(&line[body.len()..]);
            continue;
        }
        let mut s = body.to_string();
        for (word, repl) in [("pid ", "pid N"), ("uptime ", "uptime T"), ("with pid ", "with pid N")] {
            let mut from = 0;
            while let Some(i) = s[from..].find(word).map(|i| i + from) {
                let rest = &s[i + word.len()..];
                let n = rest.bytes().take_while(|b| b.is_ascii_digit() || *b == b':').count();
                if n == 0 {
                    from = i + word.len();
                    continue;
                }
                s.replace_range(i..i + word.len() + n, repl);
                from = i + repl.len();
            }
        }
        // `%b %d %I:%M %p`, e.g. `Nov 25 01:23 PM`.
        let b = s.as_bytes();
        if b.len() >= 15 {
            let tail = &s[s.len() - 15..];
            let t = tail.as_bytes();
            if t[0].is_ascii_uppercase()
                && t[3] == b' '
                && t[6] == b' '
                && t[9] == b':'
                && (tail.ends_with(" AM") || tail.ends_with(" PM"))
            {
                let cut = s.len() - 15;
                s.replace_range(cut.., "DATE");
            }
        }
        out.push_str(&s);
        out.push_str(&line[body.len()..]);
    }
    out
}
