//! The XML-RPC server against a fake engine, driven by Python's `xmlrpc.client`,
//! the real `supervisorctl`, corral's own client and raw HTTP.
//!
//! Python is found through `CORRAL_TEST_PYTHON`, then `.venv/bin/python` at the
//! repository root, then `/tmp/svvenv/bin/python`; it must be able to import
//! `supervisor`. Without one the Python tests are skipped with a message, unless
//! `CI` is set, where they fail.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::Command as Proc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use corral::config::model::{
    Credentials, InetHttpServerConfig, LogFile, ProcessConfig, UnixHttpServerConfig,
};
use corral::ctl::client::{Client, ClientError, ServerUrl};
use corral::engine::{
    make_namespec, Command, ConfigDiff, ConfigInfo, DaemonInfo, Fault, FaultCode, Handle, LogName, Mood,
    NameSpec, OpResult, ProcessInfo, ProcessState, Target,
};
use corral::rpc::{RpcServer, ServerContext};
use dxr::Value;
use tokio::sync::{mpsc, oneshot, Notify};

// ---------------------------------------------------------------------------------------------
// Test double for the engine: answers Commands from a small in-memory table.
// ---------------------------------------------------------------------------------------------

/// What the fake engine knows and records.
struct FakeEngineState {
    mood: Mood,
    procs: Vec<ProcessInfo>,
    logdir: PathBuf,
    stdin: HashMap<String, Vec<u8>>,
}

/// A fake engine task: a test double standing in for the real engine.
struct FakeEngine {
    state: Arc<Mutex<FakeEngineState>>,
    /// Releases the deferred reply of `startProcess("slow")`.
    slow_gate: Arc<Notify>,
}

fn pinfo(
    group: &str,
    name: &str,
    state: ProcessState,
    pid: u32,
    description: &str,
    logdir: &Path,
) -> ProcessInfo {
    ProcessInfo {
        name: name.into(),
        group: group.into(),
        start: if pid != 0 { 1_700_000_000 } else { 0 },
        stop: 0,
        now: 1_700_000_100,
        state,
        spawnerr: if state == ProcessState::Fatal {
            "Exited too quickly (process log may have details)".into()
        } else {
            String::new()
        },
        exitstatus: 0,
        stdout_logfile: logdir.join(format!("{name}-stdout.log")).to_string_lossy().into_owned(),
        stderr_logfile: String::new(),
        pid,
        description: description.into(),
        restarts: 2,
        oom_kills: 3,
        cgroup: if pid != 0 { Some(format!("/sys/fs/cgroup/corral/{group}/{name}")) } else { None },
    }
}

fn pconfig(name: &str) -> ProcessConfig {
    let mut p = ProcessConfig::new(name, &format!("/bin/{name}"));
    p.file = "/etc/corral.conf".into();
    p.stdout.logfile = LogFile::Auto;
    p.stderr.logfile = LogFile::Auto;
    // 3 GiB does not fit an XML-RPC int: it must come back clamped, not break the client.
    p.stdout.maxbytes = 3 * 1024 * 1024 * 1024;
    p
}

fn ok_or(group: &str, name: &str, fault: Option<Fault>) -> OpResult {
    match fault {
        None => OpResult::ok(group, name),
        Some(f) => OpResult::fault(group, name, &f),
    }
}

impl FakeEngine {
    fn start(logdir: PathBuf) -> (Handle, FakeEngine) {
        let procs = vec![
            // Deliberately not sorted: the server sorts getAllProcessInfo.
            pinfo(
                "workers",
                "w1",
                ProcessState::Fatal,
                0,
                "Exited too quickly (process log may have details)",
                &logdir,
            ),
            pinfo("web", "web", ProcessState::Running, 1234, "pid 1234, uptime 0:01:40", &logdir),
            pinfo("workers", "w0", ProcessState::Stopped, 0, "Not started", &logdir),
            pinfo("slow", "slow", ProcessState::Stopped, 0, "Not started", &logdir),
        ];
        let state = Arc::new(Mutex::new(FakeEngineState {
            mood: Mood::Running,
            procs,
            logdir,
            stdin: HashMap::new(),
        }));
        let slow_gate = Arc::new(Notify::new());
        let (tx, rx) = mpsc::channel(64);
        tokio::spawn(Self::run(state.clone(), slow_gate.clone(), rx));
        (Handle::new(tx, tokio::sync::broadcast::channel(16).0), FakeEngine { state, slow_gate })
    }

    fn find(st: &FakeEngineState, spec: &NameSpec) -> Option<ProcessInfo> {
        let p = spec.process.as_deref()?;
        st.procs.iter().find(|i| i.group == spec.group && i.name == p).cloned()
    }

    fn targets(st: &FakeEngineState, target: &Target) -> Result<Vec<ProcessInfo>, Fault> {
        let mut v: Vec<ProcessInfo> = match target {
            Target::All => st.procs.clone(),
            Target::Group(g) => st.procs.iter().filter(|p| &p.group == g).cloned().collect(),
            Target::Process { group, process } => {
                st.procs.iter().filter(|p| &p.group == group && &p.name == process).cloned().collect()
            }
        };
        if v.is_empty() {
            let name = match target {
                Target::Group(g) => g.clone(),
                Target::Process { group, process } => make_namespec(group, process),
                Target::All => String::new(),
            };
            if !matches!(target, Target::All) {
                return Err(Fault::new(FaultCode::BadName, name));
            }
        }
        v.sort_by(|a, b| (&a.group, &a.name).cmp(&(&b.group, &b.name)));
        Ok(v)
    }

    async fn run(state: Arc<Mutex<FakeEngineState>>, gate: Arc<Notify>, mut rx: mpsc::Receiver<Command>) {
        while let Some(cmd) = rx.recv().await {
            let mut st = state.lock().unwrap();
            match cmd {
                Command::Info(r) => {
                    let _ = r.send(DaemonInfo {
                        identifier: "corral-test".into(),
                        mood: st.mood,
                        main_log: Some(st.logdir.join("main.log")),
                        cgroup_mode: "unified".into(),
                    });
                }
                Command::ProcessInfo(spec, r) => {
                    let name = make_namespec(&spec.group, spec.process.as_deref().unwrap_or("*"));
                    let _ =
                        r.send(Self::find(&st, &spec).ok_or_else(|| Fault::new(FaultCode::BadName, name)));
                }
                Command::AllProcessInfo(r) => {
                    let _ = r.send(st.procs.clone());
                }
                Command::AllConfigInfo(r) => {
                    let _ = r.send(vec![
                        ConfigInfo {
                            group: "web".into(),
                            group_prio: 999,
                            inuse: true,
                            process: pconfig("web").into(),
                            stdout_logfile: LogName::Path(st.logdir.join("web-stdout.log")),
                            stderr_logfile: LogName::None,
                        },
                        ConfigInfo {
                            group: "new".into(),
                            group_prio: 5,
                            inuse: false,
                            process: pconfig("new").into(),
                            stdout_logfile: LogName::Auto,
                            stderr_logfile: LogName::Auto,
                        },
                    ]);
                }
                Command::Start(target, wait, r) => {
                    if matches!(&target, Target::Process { process, .. } if process == "slow") && wait {
                        drop(st);
                        let gate = gate.clone();
                        tokio::spawn(async move {
                            gate.notified().await;
                            let _ = r.send(Ok(vec![OpResult::ok("slow", "slow")]));
                        });
                        continue;
                    }
                    let single = matches!(target, Target::Process { .. });
                    let res = Self::targets(&st, &target).and_then(|ps| {
                        let mut out = Vec::new();
                        for p in ps {
                            let ns = make_namespec(&p.group, &p.name);
                            let fault = if p.state.is_running() {
                                if !single {
                                    continue; // group starts skip running processes
                                }
                                Some(Fault::new(FaultCode::AlreadyStarted, ns))
                            } else if p.name == "w1" {
                                Some(Fault::new(FaultCode::SpawnError, ns))
                            } else {
                                None
                            };
                            if single {
                                if let Some(f) = fault {
                                    return Err(f);
                                }
                            }
                            out.push(ok_or(&p.group, &p.name, fault));
                        }
                        Ok(out)
                    });
                    let _ = r.send(res);
                }
                Command::Stop(target, _wait, r) => {
                    let single = matches!(target, Target::Process { .. });
                    let res = Self::targets(&st, &target).and_then(|ps| {
                        let mut out = Vec::new();
                        for p in ps {
                            if !p.state.is_running() {
                                if single {
                                    return Err(Fault::new(
                                        FaultCode::NotRunning,
                                        make_namespec(&p.group, &p.name),
                                    ));
                                }
                                continue;
                            }
                            out.push(OpResult::ok(&p.group, &p.name));
                        }
                        Ok(out)
                    });
                    let _ = r.send(res);
                }
                Command::Signal(target, sig, r) => {
                    let valid = ["HUP", "SIGHUP", "1", "USR1", "TERM"].contains(&sig.as_str());
                    let single = matches!(target, Target::Process { .. });
                    let res = Self::targets(&st, &target).and_then(|ps| {
                        if single && !valid {
                            return Err(Fault::new(FaultCode::BadSignal, sig.clone()));
                        }
                        let mut out = Vec::new();
                        for p in ps {
                            if !p.state.is_signallable() {
                                if single {
                                    return Err(Fault::new(
                                        FaultCode::NotRunning,
                                        make_namespec(&p.group, &p.name),
                                    ));
                                }
                                continue;
                            }
                            let f = (!valid).then(|| Fault::new(FaultCode::BadSignal, sig.clone()));
                            out.push(ok_or(&p.group, &p.name, f));
                        }
                        Ok(out)
                    });
                    let _ = r.send(res);
                }
                Command::Reread(r) => {
                    let _ = r.send(Ok(ConfigDiff {
                        added: vec!["new".into()],
                        changed: vec![],
                        removed: vec!["old".into()],
                    }));
                }
                Command::AddGroup(name, r) => {
                    let _ = r.send(match name.as_str() {
                        "new" => Ok(()),
                        "web" => Err(Fault::new(FaultCode::AlreadyAdded, name)),
                        _ => Err(Fault::new(FaultCode::BadName, name)),
                    });
                }
                Command::RemoveGroup(name, r) => {
                    let _ = r.send(match name.as_str() {
                        "workers" => Ok(()),
                        "web" => Err(Fault::new(FaultCode::StillRunning, name)),
                        _ => Err(Fault::new(FaultCode::BadName, name)),
                    });
                }
                Command::Shutdown(r) => {
                    st.mood = Mood::Shutdown;
                    let _ = r.send(Ok(()));
                }
                Command::Restart(r) => {
                    let _ = r.send(Ok(()));
                }
                Command::LogPath(spec, channel, r) => {
                    let res = match Self::find(&st, &spec) {
                        None => Err(Fault::new(FaultCode::BadName, spec.group.clone())),
                        Some(p) if p.name == "w0" => Ok(None),
                        Some(p) => Ok(Some(st.logdir.join(format!("{}-{}.log", p.name, channel.as_str())))),
                    };
                    let _ = r.send(res);
                }
                Command::ClearLogs(target, r) => {
                    let res = Self::targets(&st, &target)
                        .map(|ps| ps.iter().map(|p| OpResult::ok(&p.group, &p.name)).collect());
                    let _ = r.send(res);
                }
                Command::ClearMainLog(r) => {
                    let _ = r.send(Ok(()));
                }
                Command::SendStdin(spec, data, r) => {
                    let res = match Self::find(&st, &spec) {
                        None => Err(Fault::new(FaultCode::BadName, spec.group.clone())),
                        Some(p) if p.pid == 0 => Err(Fault::new(FaultCode::NotRunning, p.name.clone())),
                        Some(p) => {
                            st.stdin.entry(p.name).or_default().extend(data);
                            Ok(())
                        }
                    };
                    let _ = r.send(res);
                }
                Command::RemoteCommEvent(_, _, r) => {
                    let _ = r.send(Ok(()));
                }
                Command::ReopenLogs => {}
                // corral's own commands are exercised against the real engine.
                Command::Stats(_, r) => {
                    let _ = r.send(Ok(vec![]));
                }
                Command::GetLimits(_, r) => {
                    let _ = r.send(Ok(Default::default()));
                }
                Command::SetLimits(_, l, r) => {
                    let _ = r.send(Ok(l));
                }
                Command::Freeze(_, _, r) => {
                    let _ = r.send(Ok(vec![]));
                }
                Command::Reexec(r) => {
                    let _ =
                        r.send(Err(Fault::new(FaultCode::Failed, "re-exec is not available in this daemon")));
                }
                Command::HandOver => {}
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Harness
// ---------------------------------------------------------------------------------------------

struct Harness {
    dir: tempfile::TempDir,
    sock: PathBuf,
    tcp: Option<std::net::SocketAddr>,
    engine: FakeEngine,
    stop: Option<oneshot::Sender<()>>,
    server: Option<tokio::task::JoinHandle<()>>,
}

impl Harness {
    async fn start(auth: Option<Credentials>, ctx: ServerContext) -> Harness {
        let dir = tempfile::tempdir().unwrap();
        let logdir = dir.path().to_path_buf();
        std::fs::write(logdir.join("web-stdout.log"), b"hello world\n").unwrap();
        std::fs::write(logdir.join("main.log"), b"2024-01-01 00:00:00,000 INFO started\n").unwrap();
        let sock = dir.path().join("corral.sock");
        let unix = UnixHttpServerConfig {
            file: sock.clone(),
            chmod: 0o700,
            chown: None,
            auth: auth.clone(),
            metrics_auth: true,
        };
        let inet = vec![InetHttpServerConfig {
            section: "inet_http_server".into(),
            host: "127.0.0.1".into(),
            port: 0,
            auth,
            metrics_auth: true,
        }];
        let (handle, engine) = FakeEngine::start(logdir);
        let server = RpcServer::bind(Some(&unix), &inet).await.unwrap();
        let tcp = server.tcp_addrs().first().copied();
        let (stop_tx, stop_rx) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            server
                .run(handle, ctx, async {
                    let _ = stop_rx.await;
                })
                .await
                .unwrap();
        });
        Harness { dir, sock, tcp, engine, stop: Some(stop_tx), server: Some(task) }
    }

    fn client(&self) -> Client {
        Client::new(ServerUrl::Unix(self.sock.clone())).with_timeout(Some(Duration::from_secs(30)))
    }

    async fn call(&self, method: &str, params: Vec<Value>) -> Result<Value, ClientError> {
        let c = self.client();
        let m = method.to_string();
        tokio::task::spawn_blocking(move || c.call(&m, params)).await.unwrap()
    }

    async fn shutdown(mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.server.take() {
            tokio::time::timeout(Duration::from_secs(30), t).await.expect("server did not stop").unwrap();
        }
        assert!(!self.sock.exists(), "socket file must be removed on shutdown");
    }
}

/// Send raw bytes over the unix socket and read the whole answer (the server closes or times out).
fn raw_unix(sock: &Path, request: &[u8]) -> String {
    let mut s = UnixStream::connect(sock).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(request).unwrap();
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match s.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                out.extend_from_slice(&buf[..n]);
                if String::from_utf8_lossy(&out).contains("\r\n\r\n") && request.starts_with(b"GET /RPC2") {
                    break;
                }
            }
            Err(_) => break,
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn fault_code(r: Result<Value, ClientError>) -> (i32, String) {
    match r {
        Err(ClientError::Fault { code, text }) => (code, text),
        other => panic!("expected a fault, got {other:?}"),
    }
}

fn s(v: &str) -> Value {
    Value::String(v.into())
}

// ---------------------------------------------------------------------------------------------
// HTTP-level and client tests (no Python needed)
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn basic_calls_through_the_corral_client() {
    let h = Harness::start(None, ServerContext::default()).await;
    assert_eq!(h.call("supervisor.getVersion", vec![]).await.unwrap(), s("3.0"));
    assert_eq!(h.call("supervisor.getIdentification", vec![]).await.unwrap(), s("corral-test"));
    assert_eq!(fault_code(h.call("supervisor.nope", vec![]).await).0, 1);
    assert_eq!(fault_code(h.call("nodots", vec![]).await).0, 1);
    assert_eq!(fault_code(h.call("a.b.c", vec![]).await).0, 1);
    assert_eq!(fault_code(h.call("supervisor._update", vec![]).await).0, 1);
    assert_eq!(
        fault_code(h.call("supervisor.getState", vec![s("extra")]).await),
        (2, "INCORRECT_PARAMETERS".into())
    );
    assert_eq!(fault_code(h.call("supervisor.getProcessInfo", vec![Value::Integer(3)]).await).0, 2);
    assert_eq!(
        fault_code(h.call("supervisor.getProcessInfo", vec![s("nope")]).await),
        (10, "BAD_NAME: nope".into())
    );
    assert_eq!(h.call("corral.getCgroupMode", vec![]).await.unwrap(), s("unified"));
    assert_eq!(h.call("corral.getOomKills", vec![s("web")]).await.unwrap(), Value::Integer(3));
    assert_eq!(
        h.call("corral.getProcessCgroup", vec![s("web")]).await.unwrap(),
        s("/sys/fs/cgroup/corral/web/web")
    );
    assert_eq!(h.call("corral.getProcessCgroup", vec![s("workers:w0")]).await.unwrap(), s(""));
    // The same server answers on TCP too.
    let tcp = h.tcp.unwrap();
    let c = Client::new(ServerUrl::Http { host: tcp.ip().to_string(), port: tcp.port() });
    let v = tokio::task::spawn_blocking(move || c.call("supervisor.getAPIVersion", vec![])).await.unwrap();
    assert_eq!(v.unwrap(), s("3.0"));
    h.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn http_errors_match_supervisord() {
    let ctx = ServerContext { body_limit: 4096, ..ServerContext::default() };
    let h = Harness::start(None, ctx).await;
    let get = raw_unix(&h.sock, b"GET /RPC2 HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
    assert!(get.starts_with("HTTP/1.1 400"), "{get}");
    let garbage = b"this is not xml";
    let req = format!(
        "POST /RPC2 HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        garbage.len()
    );
    let bad = raw_unix(&h.sock, &[req.as_bytes(), garbage].concat());
    assert!(bad.starts_with("HTTP/1.1 400"), "{bad}");
    let big = vec![b'a'; 5000];
    let req = format!(
        "POST /RPC2 HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        big.len()
    );
    let too_big = raw_unix(&h.sock, &[req.as_bytes(), &big].concat());
    assert!(too_big.starts_with("HTTP/1.1 413"), "{too_big}");
    // Chunked bodies over the limit are refused too.
    let mut chunked =
        b"POST /RPC2 HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n".to_vec();
    for _ in 0..3 {
        chunked.extend_from_slice(b"800\r\n");
        chunked.extend_from_slice(&[b'a'; 0x800]);
        chunked.extend_from_slice(b"\r\n");
    }
    chunked.extend_from_slice(b"0\r\n\r\n");
    assert!(raw_unix(&h.sock, &chunked).starts_with("HTTP/1.1 413"));
    // Any path starting with /RPC2 is the RPC endpoint; others are 404.
    let body = "<?xml version='1.0'?><methodCall><methodName>supervisor.getVersion</methodName></methodCall>";
    let req = format!(
        "POST /RPC2/extra HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let ok = raw_unix(&h.sock, req.as_bytes());
    assert!(
        ok.starts_with("HTTP/1.1 200") && ok.contains("text/xml") && ok.contains("<string>3.0</string>"),
        "{ok}"
    );
    let nf = raw_unix(&h.sock, b"GET /nothing HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    assert!(nf.starts_with("HTTP/1.1 404"), "{nf}");
    h.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn basic_auth_plain_and_sha() {
    for password in ["123", "{SHA}40bd001563085fc35165329ea1ff5c5ecbdbbeef"] {
        let creds = Credentials { username: "user".into(), password: password.into() };
        let h = Harness::start(Some(creds), ServerContext::default()).await;
        let none = raw_unix(&h.sock, b"POST /RPC2 HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n");
        assert!(none.starts_with("HTTP/1.1 401"), "{none}");
        assert!(none.to_ascii_lowercase().contains("www-authenticate: basic realm=\"default\""), "{none}");
        let wrong = h.client().with_auth("user", "nope");
        let r =
            tokio::task::spawn_blocking(move || wrong.call("supervisor.getVersion", vec![])).await.unwrap();
        assert!(matches!(r, Err(ClientError::Http(401))), "{r:?}");
        let right = h.client().with_auth("user", "123");
        let r =
            tokio::task::spawn_blocking(move || right.call("supervisor.getVersion", vec![])).await.unwrap();
        assert_eq!(r.unwrap(), s("3.0"));
        // Tails are protected too.
        let tail = raw_unix(&h.sock, b"GET /logtail/web HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
        assert!(tail.starts_with("HTTP/1.1 401"), "{tail}");
        h.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_deferred_start_does_not_block_other_clients() {
    let h = Harness::start(None, ServerContext::default()).await;
    let c = h.client();
    let pending = tokio::task::spawn_blocking(move || c.call("supervisor.startProcess", vec![s("slow")]));
    // Other requests are answered while the start waits.
    for _ in 0..5 {
        assert_eq!(
            h.call("supervisor.getPID", vec![]).await.unwrap(),
            Value::Integer(std::process::id() as i32)
        );
    }
    assert!(!pending.is_finished());
    // notify_one stores a permit, so it works whether or not the fake already waits.
    h.engine.slow_gate.notify_one();
    let r = tokio::time::timeout(Duration::from_secs(30), pending).await.unwrap().unwrap();
    assert_eq!(r.unwrap(), Value::Boolean(true));
    h.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn unix_socket_bind_rules() {
    let h = Harness::start(None, ServerContext::default()).await;
    // A live server owns the socket: binding again fails with supervisord's message.
    let cfg = UnixHttpServerConfig {
        file: h.sock.clone(),
        chmod: 0o700,
        chown: None,
        auth: None,
        metrics_auth: true,
    };
    let err = RpcServer::bind(Some(&cfg), &[]).await.unwrap_err();
    assert!(err.to_string().starts_with("Another program is already listening on a port"), "{err}");
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(std::fs::metadata(&h.sock).unwrap().permissions().mode() & 0o777, 0o700);
    // A stale socket file (nobody listening) is replaced.
    let stale = h.dir.path().join("stale.sock");
    drop(std::os::unix::net::UnixListener::bind(&stale).unwrap());
    assert!(stale.exists());
    let cfg = UnixHttpServerConfig {
        file: stale.clone(),
        chmod: 0o770,
        chown: None,
        auth: None,
        metrics_auth: true,
    };
    let server = RpcServer::bind(Some(&cfg), &[]).await.unwrap();
    assert_eq!(std::fs::metadata(&stale).unwrap().permissions().mode() & 0o777, 0o770);
    assert!(UnixStream::connect(&stale).is_ok());
    drop(server);
    h.shutdown().await;
}

/// Read from a streaming response until `want` appears.
fn read_until(s: &mut UnixStream, acc: &mut String, want: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut buf = [0u8; 4096];
    while !acc.contains(want) {
        assert!(Instant::now() < deadline, "timed out waiting for {want:?}; got {acc:?}");
        match s.read(&mut buf) {
            Ok(0) => panic!("stream ended; got {acc:?}"),
            Ok(n) => acc.push_str(&String::from_utf8_lossy(&buf[..n])),
            Err(e)
                if e.kind() == std::io::ErrorKind::WouldBlock || e.kind() == std::io::ErrorKind::TimedOut => {
            }
            Err(e) => panic!("{e}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn logtail_streams_and_follows() {
    let h = Harness::start(None, ServerContext::default()).await;
    let log = h.dir.path().join("web-stdout.log");
    let big: String = (0..200).map(|i| format!("line {i:04}\n")).collect();
    std::fs::write(&log, &big).unwrap();
    let sock = h.sock.clone();
    let log2 = log.clone();
    tokio::task::spawn_blocking(move || {
        let mut st = UnixStream::connect(&sock).unwrap();
        st.set_read_timeout(Some(Duration::from_millis(200))).unwrap();
        st.write_all(b"GET /logtail/web/stdout HTTP/1.1\r\nHost: \r\n\r\n").unwrap();
        let mut acc = String::new();
        read_until(&mut st, &mut acc, "line 0199\n");
        assert!(acc.starts_with("HTTP/1.1 200"), "{acc}");
        assert!(acc.to_ascii_lowercase().contains("transfer-encoding: chunked"), "{acc}");
        assert!(acc.contains("text/plain;charset=utf-8"), "{acc}");
        // Only the last 1024 bytes were sent first.
        assert!(!acc.contains("line 0000"), "{acc}");
        std::fs::OpenOptions::new().append(true).open(&log2).unwrap().write_all(b"appended!\n").unwrap();
        read_until(&mut st, &mut acc, "appended!\n");
        std::fs::write(&log2, b"x\n").unwrap();
        read_until(&mut st, &mut acc, "==> File truncated <==\n");
    })
    .await
    .unwrap();
    for path in [
        "/logtail/nope",
        "/logtail/workers:w0",
        "/logtail/web/stderr",
        "/logtail/web/bogus",
        "/logtail/workers:*",
    ] {
        let r = raw_unix(
            &h.sock,
            format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes(),
        );
        assert!(r.starts_with("HTTP/1.1 404"), "{path}: {r}");
    }
    let post = raw_unix(
        &h.sock,
        b"POST /logtail/web HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
    );
    assert!(post.starts_with("HTTP/1.1 400"), "{post}");
    // The main log tail.
    let sock = h.sock.clone();
    tokio::task::spawn_blocking(move || {
        let mut st = UnixStream::connect(&sock).unwrap();
        st.set_read_timeout(Some(Duration::from_millis(200))).unwrap();
        st.write_all(b"GET /mainlogtail HTTP/1.1\r\nHost: \r\n\r\n").unwrap();
        let mut acc = String::new();
        read_until(&mut st, &mut acc, "INFO started");
    })
    .await
    .unwrap();
    // Shutdown ends open tails instead of hanging on them.
    let mut st = UnixStream::connect(&h.sock).unwrap();
    st.write_all(b"GET /logtail/web HTTP/1.1\r\nHost: \r\n\r\n").unwrap();
    h.shutdown().await;
    drop(st);
}

// ---------------------------------------------------------------------------------------------
// Python's xmlrpc.client and the real supervisorctl
// ---------------------------------------------------------------------------------------------

/// A Python that can import `supervisor`, or `None` (skip) when not in CI.
fn python() -> Option<PathBuf> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let mut candidates = Vec::new();
    if let Ok(p) = std::env::var("CORRAL_TEST_PYTHON") {
        candidates.push(PathBuf::from(p));
    }
    candidates.push(root.join(".venv/bin/python"));
    candidates.push(PathBuf::from("/tmp/svvenv/bin/python"));
    for c in &candidates {
        let ok = Proc::new(c).args(["-c", "import supervisor.xmlrpc"]).status().is_ok_and(|s| s.success());
        if ok {
            return Some(c.clone());
        }
    }
    let msg = format!(
        "no Python with the `supervisor` package found (tried {candidates:?}; set CORRAL_TEST_PYTHON)"
    );
    if std::env::var_os("CI").is_some() {
        panic!("{msg}");
    }
    eprintln!("skipping: {msg}");
    None
}

const PY_CLIENT: &str = r#"
import sys, xmlrpc.client
from supervisor.xmlrpc import SupervisorTransport
sock, logdir = sys.argv[1], sys.argv[2]
p = xmlrpc.client.ServerProxy('http://127.0.0.1', transport=SupervisorTransport(None, None, 'unix://' + sock))
S = p.supervisor
def fault(fn, *a):
    try:
        fn(*a)
    except xmlrpc.client.Fault as f:
        return (f.faultCode, f.faultString)
    raise AssertionError('no fault from %r%r' % (fn, a))

assert S.getAPIVersion() == '3.0' and S.getVersion() == '3.0'
assert S.getSupervisorVersion() == '4.3.0'
assert S.getIdentification() == 'corral-test'
assert S.getState() == {'statecode': 1, 'statename': 'RUNNING'}
assert isinstance(S.getPID(), int)

# process info: exactly supervisord's keys and types
keys = ['name','group','start','stop','now','state','statename','spawnerr','exitstatus','logfile','stdout_logfile','stderr_logfile','pid','description']
info = S.getProcessInfo('web')
assert sorted(info) == sorted(keys), sorted(info)
types = {'name':str,'group':str,'start':int,'stop':int,'now':int,'state':int,'statename':str,'spawnerr':str,'exitstatus':int,'logfile':str,'stdout_logfile':str,'stderr_logfile':str,'pid':int,'description':str}
for k, t in types.items():
    assert type(info[k]) is t, (k, info[k])
assert info['state'] == 20 and info['statename'] == 'RUNNING' and info['pid'] == 1234
assert info['logfile'] == info['stdout_logfile']
assert fault(S.getProcessInfo, 'nope') == (10, 'BAD_NAME: nope')
assert fault(S.getProcessInfo, 'workers:*') == (10, 'BAD_NAME: workers:*')
assert S.getProcessInfo('workers:w1')['description'].startswith('Exited too quickly')
allinfo = S.getAllProcessInfo()
assert [(i['group'], i['name']) for i in allinfo] == [('slow','slow'),('web','web'),('workers','w0'),('workers','w1')], allinfo

# config info
ci = S.getAllConfigInfo()
assert [c['name'] for c in ci] == ['new', 'web'], ci
web = ci[1]
cikeys = ['autostart','command','directory','exitcodes','group','group_prio','inuse','killasgroup','name','process_prio','redirect_stderr','serverurl','startretries','startsecs','stderr_capture_maxbytes','stderr_events_enabled','stderr_logfile','stderr_logfile_backups','stderr_logfile_maxbytes','stderr_syslog','stdout_capture_maxbytes','stdout_events_enabled','stdout_logfile','stdout_logfile_backups','stdout_logfile_maxbytes','stdout_syslog','stopsignal','stopwaitsecs','uid']
assert sorted(web) == sorted(cikeys), sorted(web)
assert web['directory'] == 'none' and web['uid'] == 'none' and web['serverurl'] == 'none'
assert web['stderr_logfile'] == 'none' and ci[0]['stdout_logfile'] == 'auto'
assert web['exitcodes'] == [0] and web['stopsignal'] == 15 and web['inuse'] is True and web['autostart'] is True
assert web['stdout_logfile_maxbytes'] == 2**31 - 1  # clamped, not an <i8>

# start / stop / signal
assert S.startProcess('workers:w0') is True
assert S.startProcess('workers:w0', False) is True
assert fault(S.startProcess, 'web') == (60, 'ALREADY_STARTED: web')
assert fault(S.startProcess, 'web:web') == (60, 'ALREADY_STARTED: web:web')
assert fault(S.startProcess, 'workers:w1') == (50, 'SPAWN_ERROR: workers:w1')
assert fault(S.startProcess, 'nope') == (10, 'BAD_NAME: nope')
assert fault(S.startProcess, 'nope:*') == (10, 'BAD_NAME: nope:*')
assert fault(S.startProcess) [0] == 2
r = S.startProcess('workers:*')
assert r == [{'name':'w0','group':'workers','status':80,'description':'OK'},
             {'name':'w1','group':'workers','status':50,'description':'SPAWN_ERROR: workers:w1'}], r
assert S.startProcessGroup('web') == []
assert fault(S.startProcessGroup, 'workers:*') == (10, 'BAD_NAME: workers:*')
assert len(S.startAllProcesses()) == 3
assert S.stopProcess('web') is True
assert fault(S.stopProcess, 'workers:w0') == (70, 'NOT_RUNNING: workers:w0')
assert S.stopProcessGroup('workers') == []
assert S.stopAllProcesses(True) == [{'name':'web','group':'web','status':80,'description':'OK'}]
assert S.signalProcess('web', 'HUP') is True
assert S.signalProcess('web', 1) is True
assert fault(S.signalProcess, 'web', 'FOO') == (11, 'BAD_SIGNAL: FOO')
assert fault(S.signalProcess, 'workers:w0', 'HUP') == (70, 'NOT_RUNNING: workers:w0')
assert S.signalProcessGroup('web', 'FOO') == [{'name':'web','group':'web','status':11,'description':'BAD_SIGNAL: FOO'}]
assert S.signalAllProcesses('USR1') == [{'name':'web','group':'web','status':80,'description':'OK'}]
assert fault(S.signalProcessGroup, 'nope', 'HUP') == (10, 'BAD_NAME: nope')

# groups and config
assert S.reloadConfig() == [[['new'], [], ['old']]]
assert S.addProcessGroup('new') is True
assert fault(S.addProcessGroup, 'web') == (90, 'ALREADY_ADDED: web')
assert fault(S.addProcessGroup, 'zzz') == (10, 'BAD_NAME: zzz')
assert S.removeProcessGroup('workers') is True
assert fault(S.removeProcessGroup, 'web') == (91, 'STILL_RUNNING: web')

# logs
assert S.readProcessStdoutLog('web', -5, 0) == 'orld\n'
assert S.readProcessLog('web', 2, 3) == 'llo'
assert fault(S.readProcessStdoutLog, 'web', -5, 2) == (3, 'BAD_ARGUMENTS')
assert fault(S.readProcessStdoutLog, 'web', 0, -1) == (3, 'BAD_ARGUMENTS')
assert fault(S.readProcessStderrLog, 'web', 0, 0) == (20, 'NO_FILE: %s/web-stderr.log' % logdir)
assert fault(S.readProcessStdoutLog, 'workers:w0', 0, 0) == (20, 'NO_FILE: None')
assert fault(S.readProcessStdoutLog, 'nope', 0, 0) == (10, 'BAD_NAME: nope')
assert S.tailProcessStdoutLog('web', 0, 5) == ['orld\n', 12, True]
assert S.tailProcessLog('web', 0, 100) == ['hello world\n', 12, False]
assert S.tailProcessStdoutLog('web', 12, 100) == ['', 12, False]
assert S.tailProcessStderrLog('web', 0, 100) == ['', 0, False]
assert fault(S.tailProcessStdoutLog, 'nope', 0, 1) == (10, 'BAD_NAME: nope')
assert S.readLog(0, 0).endswith('INFO started\n') and S.readMainLog(-8, 0) == 'started\n'
assert S.clearLog() is True
assert S.clearProcessLogs('web') is True and S.clearProcessLog('web') is True
assert fault(S.clearProcessLogs, 'nope') == (10, 'BAD_NAME: nope')
assert len(S.clearAllProcessLogs()) == 4

# log bytes XML cannot carry arrive as U+FFFD instead of breaking the parser
with open(logdir + '/web-stdout.log', 'wb') as f:
    f.write(b'\x1b[31mred\x1b[0m \x00 \xff ok\n')
assert S.readProcessStdoutLog('web', 0, 0) == '\ufffd[31mred\ufffd[0m \ufffd \ufffd ok\n'
assert S.tailProcessStdoutLog('web', 0, 100)[0] == '\ufffd[31mred\ufffd[0m \ufffd \ufffd ok\n'

# stdin and events
assert S.sendProcessStdin('web', 'hello\n') is True
assert fault(S.sendProcessStdin, 'web', 5) == (2, 'INCORRECT_PARAMETERS: 5')
assert fault(S.sendProcessStdin, 'workers:w0', 'x') == (70, 'NOT_RUNNING: workers:w0')
assert S.sendRemoteCommEvent('type', 'data') is True

# system.*
names = p.system.listMethods()
assert names == sorted(names) and len([n for n in names if not n.startswith('corral.')]) == 41
assert 'corral.getCgroupMode' in names
expected_sigs = {
 'supervisor.addProcessGroup': ['boolean','string'], 'supervisor.clearAllProcessLogs': ['array'],
 'supervisor.clearLog': ['boolean'], 'supervisor.clearProcessLog': ['boolean','string'],
 'supervisor.clearProcessLogs': ['boolean','string'], 'supervisor.getAPIVersion': ['string'],
 'supervisor.getAllConfigInfo': ['array'], 'supervisor.getAllProcessInfo': ['array'],
 'supervisor.getIdentification': ['string'], 'supervisor.getPID': ['int'],
 'supervisor.getProcessInfo': ['struct','string'], 'supervisor.getState': ['struct'],
 'supervisor.getSupervisorVersion': ['string'], 'supervisor.getVersion': ['string'],
 'supervisor.readLog': ['string','int','int'], 'supervisor.readMainLog': ['string','int','int'],
 'supervisor.readProcessLog': ['string','string','int','int'], 'supervisor.readProcessStderrLog': ['string','string','int','int'],
 'supervisor.readProcessStdoutLog': ['string','string','int','int'], 'supervisor.reloadConfig': ['array'],
 'supervisor.removeProcessGroup': ['boolean','string'], 'supervisor.restart': ['boolean'],
 'supervisor.sendProcessStdin': ['boolean','string','string'], 'supervisor.sendRemoteCommEvent': ['boolean','string','string'],
 'supervisor.shutdown': ['boolean'], 'supervisor.signalAllProcesses': ['array','string'],
 'supervisor.signalProcess': ['boolean','string','string'], 'supervisor.signalProcessGroup': ['array','string','string'],
 'supervisor.startAllProcesses': ['array','boolean'], 'supervisor.startProcess': ['boolean','string','boolean'],
 'supervisor.startProcessGroup': ['array','string','boolean'], 'supervisor.stopAllProcesses': ['array','boolean'],
 'supervisor.stopProcess': ['boolean','string','boolean'], 'supervisor.stopProcessGroup': ['array','string','boolean'],
 'supervisor.tailProcessLog': ['array','string','int','int'], 'supervisor.tailProcessStderrLog': ['array','string','int','int'],
 'supervisor.tailProcessStdoutLog': ['array','string','int','int'], 'system.listMethods': ['array'],
 'system.methodHelp': ['string','string'], 'system.methodSignature': ['array','string'], 'system.multicall': ['array','array'],
}
for n, sig in expected_sigs.items():
    assert p.system.methodSignature(n) == sig, (n, p.system.methodSignature(n))
assert fault(p.system.methodSignature, 'nope.nope') == (4, 'SIGNATURE_UNSUPPORTED')
assert fault(p.system.methodHelp, 'nope.nope') == (4, 'SIGNATURE_UNSUPPORTED')
assert '@param string name' in p.system.methodHelp('supervisor.startProcess')
assert '@return' in p.system.methodHelp('corral.getOomKills')
assert fault(p.supervisor.nosuch) == (1, 'UNKNOWN_METHOD')
assert fault(getattr(p, 'supervisor._update')) == (1, 'UNKNOWN_METHOD')

# multicall: raw values, fault structs, recursion and missing names
m = xmlrpc.client.MultiCall(p)
m.supervisor.getAPIVersion()
m.supervisor.getProcessInfo('nope')
m.supervisor.getState()
res = m()
assert res.results[0] == '3.0', res.results
assert res.results[1] == {'faultCode': 10, 'faultString': 'BAD_NAME: nope'}, res.results
assert res.results[2] == {'statecode': 1, 'statename': 'RUNNING'}
raw = p.system.multicall([{'methodName': 'system.multicall', 'params': []}, {'params': []},
                          {'methodName': 'supervisor.getVersion'}, {'methodName': 'x.y', 'params': []}])
assert raw == [{'faultCode': 2, 'faultString': 'INCORRECT_PARAMETERS: Recursive system.multicall forbidden'},
               {'faultCode': 2, 'faultString': 'INCORRECT_PARAMETERS: No methodName'},
               '3.0', {'faultCode': 1, 'faultString': 'UNKNOWN_METHOD'}], raw

# corral extensions
assert p.corral.getCgroupMode() == 'unified'
assert p.corral.getOomKills('web') == 3

# shutdown last: afterwards supervisor.* answers SHUTDOWN_STATE, except sendRemoteCommEvent
assert S.shutdown() is True
assert fault(S.getState) == (6, 'SHUTDOWN_STATE')
assert fault(S.getVersion) == (6, 'SHUTDOWN_STATE')
assert fault(S.signalAllProcesses, 'HUP') == (6, 'SHUTDOWN_STATE')
assert S.sendRemoteCommEvent('t', 'd') is True
assert p.system.listMethods() == names
print('PYTHON-OK')
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn python_xmlrpc_client_sees_supervisord() {
    let Some(py) = python() else { return };
    let h = Harness::start(None, ServerContext::default()).await;
    let script = h.dir.path().join("client.py");
    std::fs::write(&script, PY_CLIENT).unwrap();
    let (sock, logdir) = (h.sock.clone(), h.dir.path().to_path_buf());
    let out =
        tokio::task::spawn_blocking(move || Proc::new(py).arg(&script).arg(&sock).arg(&logdir).output())
            .await
            .unwrap()
            .unwrap();
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success() && stdout.contains("PYTHON-OK"), "stdout:\n{stdout}\nstderr:\n{stderr}");
    assert_eq!(h.engine.state.lock().unwrap().stdin.get("web").map(Vec::as_slice), Some(&b"hello\n"[..]));
    h.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn real_supervisorctl_status_and_version() {
    let Some(py) = python() else { return };
    let ctl = py.with_file_name("supervisorctl");
    if !ctl.exists() {
        eprintln!("skipping: no supervisorctl next to {}", py.display());
        return;
    }
    let h = Harness::start(None, ServerContext::default()).await;
    let url = format!("unix://{}", h.sock.display());
    let run = |args: Vec<String>| {
        let ctl = ctl.clone();
        async move {
            tokio::task::spawn_blocking(move || Proc::new(ctl).args(args).output()).await.unwrap().unwrap()
        }
    };
    let out = run(vec!["-s".into(), url.clone(), "status".into()]).await;
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let expected = format!(
        "{:<33}{:<10}{}\n{:<33}{:<10}{}\n{:<33}{:<10}{}\n{:<33}{:<10}{}\n",
        "slow",
        "STOPPED",
        "Not started",
        "web",
        "RUNNING",
        "pid 1234, uptime 0:01:40",
        "workers:w0",
        "STOPPED",
        "Not started",
        "workers:w1",
        "FATAL",
        "Exited too quickly (process log may have details)",
    );
    assert_eq!(stdout, expected, "stderr: {}", String::from_utf8_lossy(&out.stderr));
    // supervisorctl exits 3 when some process is not running.
    assert_eq!(out.status.code(), Some(3));
    let out = run(vec!["-s".into(), url.clone(), "status".into(), "web".into()]).await;
    assert_eq!(out.status.code(), Some(0));
    let out = run(vec!["-s".into(), url.clone(), "status".into(), "nosuch".into()]).await;
    assert_eq!(String::from_utf8_lossy(&out.stdout), "nosuch: ERROR (no such process)\n");
    assert_eq!(out.status.code(), Some(4));
    let out = run(vec!["-s".into(), url.clone(), "version".into()]).await;
    assert_eq!(String::from_utf8_lossy(&out.stdout), "4.3.0\n");
    let out = run(vec!["-s".into(), url.clone(), "start".into(), "workers:w0".into()]).await;
    assert_eq!(String::from_utf8_lossy(&out.stdout), "workers:w0: started\n");
    let out = run(vec!["-s".into(), url.clone(), "tail".into(), "web".into()]).await;
    // supervisorctl prints the log bytes followed by its own newline.
    assert_eq!(String::from_utf8_lossy(&out.stdout), "hello world\n\n");
    // `tail -f` streams /logtail/web: the banner, the existing bytes, then appended ones.
    let log = h.dir.path().join("web-stdout.log");
    let (ctl2, url2) = (ctl.clone(), url.clone());
    tokio::task::spawn_blocking(move || {
        let mut child = Proc::new(ctl2)
            .args(["-s", &url2, "tail", "-f", "web"])
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let mut stdout = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut buf = [0u8; 1024];
            while let Ok(n) = stdout.read(&mut buf) {
                if n == 0 || tx.send(buf[..n].to_vec()).is_err() {
                    break;
                }
            }
        });
        let mut acc = String::new();
        let wait_for = |want: &str, acc: &mut String| {
            let deadline = Instant::now() + Duration::from_secs(20);
            while !acc.contains(want) {
                let left = deadline.saturating_duration_since(Instant::now());
                assert!(!left.is_zero(), "timed out waiting for {want:?}; got {acc:?}");
                if let Ok(chunk) = rx.recv_timeout(left) {
                    acc.push_str(&String::from_utf8_lossy(&chunk));
                }
            }
        };
        wait_for("hello world\n", &mut acc);
        assert!(acc.contains("==> Press Ctrl-C to exit <=="), "{acc}");
        std::fs::OpenOptions::new().append(true).open(&log).unwrap().write_all(b"more\n").unwrap();
        wait_for("more\n", &mut acc);
        let _ = child.kill();
        let _ = child.wait();
    })
    .await
    .unwrap();
    h.shutdown().await;
}
