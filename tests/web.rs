//! The web page and `/metrics` against a real corrald: metrics parsed by
//! Prometheus' own Python parser, CSRF and auth refusals, supervisord's
//! compatibility endpoints, and a headless Chromium clicking through the page.

mod common;

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::*;

const USER: &str = "admin";
const PASSWORD: &str = "s3cret";

/// A daemon with an `[inet_http_server]` on a free port (credentials required)
/// plus `extra` INI text.
fn daemon_with_web(extra: &str) -> (Daemon, u16) {
    let port = free_port();
    let ini =
        format!("[inet_http_server]\nport=127.0.0.1:{port}\nusername={USER}\npassword={PASSWORD}\n\n{extra}");
    (Daemon::start(&ini), port)
}

fn auth() -> String {
    basic_auth(USER, PASSWORD)
}

fn get(port: u16, path: &str) -> HttpResponse {
    let a = auth();
    http(port, "GET", path, &[("Authorization", a.as_str())], b"")
}

/// The page's CSRF token, read the way the page's script reads it.
fn csrf_token(port: u16) -> String {
    let page = get(port, "/").text();
    let marker = "<meta name=\"csrf-token\" content=\"";
    let start = page.find(marker).expect("csrf meta tag") + marker.len();
    page[start..].split('"').next().unwrap_or_default().to_string()
}

fn post_action(port: u16, headers: &[(&str, &str)], form: &str) -> HttpResponse {
    let mut all = vec![("Content-Type", "application/x-www-form-urlencoded")];
    all.extend_from_slice(headers);
    http(port, "POST", "/api/action", &all, form.as_bytes())
}

/// Python with `module` importable, or a skip.
fn python_with(module: &str) -> Option<PathBuf> {
    let Some(py) = python() else {
        skip("no Python venv (set CORRAL_TEST_PYTHON or run scripts/test)");
        return None;
    };
    let ok = Command::new(&py).args(["-c", &format!("import {module}")]).status().is_ok_and(|s| s.success());
    if !ok {
        skip(&format!("Python module {module} is not installed in {}", py.display()));
        return None;
    }
    Some(py)
}

/// One parsed sample: metric name, labels, value.
type Sample = (String, BTreeMap<String, String>, f64);

/// Parse exposition text with `prometheus_client.parser`.
fn parse_metrics(py: &Path, text: &str) -> Vec<Sample> {
    const SCRIPT: &str = r#"
import json, sys
from prometheus_client.parser import text_string_to_metric_families
out = []
for family in text_string_to_metric_families(sys.stdin.read()):
    for s in family.samples:
        out.append([s.name, s.labels, s.value])
print(json.dumps(out))
"#;
    let mut child = Command::new(py)
        .args(["-c", SCRIPT])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run python");
    child.stdin.take().expect("stdin").write_all(text.as_bytes()).expect("feed metrics");
    let out = child.wait_with_output().expect("python output");
    assert!(
        out.status.success(),
        "prometheus parser rejected the text: {}\n{text}",
        String::from_utf8_lossy(&out.stderr)
    );
    let parsed: Vec<(String, BTreeMap<String, String>, f64)> =
        serde_json::from_slice(&out.stdout).expect("parser JSON");
    parsed
}

fn value(samples: &[Sample], name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    samples
        .iter()
        .find(|(n, l, _)| n == name && labels.iter().all(|(k, v)| l.get(*k).map(String::as_str) == Some(*v)))
        .map(|(_, _, v)| *v)
}

fn scrape(py: &Path, port: u16) -> Vec<Sample> {
    let r = get(port, "/metrics");
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("content-type"), Some("text/plain; version=0.0.4; charset=utf-8"));
    parse_metrics(py, &r.text())
}

#[test]
fn metrics_parse_with_prometheus_client_and_match_the_processes() {
    let Some(py) = python_with("prometheus_client") else { return };
    let (d, port) = daemon_with_web(
        "[program:sleeper]\ncommand=/bin/sleep 1000\nstartsecs=1\nautorestart=true\n\n\
         [program:idle]\ncommand=/bin/sleep 1000\nautostart=false\n",
    );
    d.wait_state("sleeper", "RUNNING");
    let pid = d.pid("sleeper");
    let m = scrape(&py, port);
    let me = [("name", "sleeper"), ("group", "sleeper")];
    assert_eq!(value(&m, "corral_up", &[]), Some(1.0));
    let info = m.iter().find(|(n, _, _)| n == "corral_info").expect("corral_info");
    assert_eq!(info.1.get("version").map(String::as_str), Some(env!("CARGO_PKG_VERSION")));
    assert!(info.1.contains_key("cgroup_mode"));
    assert_eq!(value(&m, "corral_process_pid", &me), Some(pid as f64));
    assert_eq!(value(&m, "corral_process_up", &me), Some(1.0));
    assert_eq!(value(&m, "corral_process_state", &me), Some(20.0));
    assert_eq!(
        value(&m, "corral_process_state_info", &[("name", "sleeper"), ("state", "RUNNING")]),
        Some(1.0)
    );
    assert_eq!(value(&m, "corral_process_up", &[("name", "idle")]), Some(0.0));
    assert_eq!(value(&m, "corral_process_state", &[("name", "idle")]), Some(0.0));
    assert_eq!(value(&m, "corral_processes", &[("state", "RUNNING")]), Some(1.0));
    assert_eq!(value(&m, "corral_processes", &[("state", "STOPPED")]), Some(1.0));
    assert!(
        value(&m, "corral_process_memory_bytes", &me).is_some_and(|v| v > 0.0),
        "memory of a live process"
    );
    assert!(value(&m, "corral_process_cpu_seconds_total", &me).is_some_and(|v| v >= 0.0));
    assert!(value(&m, "corral_process_open_fds", &me).is_some_and(|v| v >= 3.0));
    assert!(value(&m, "corral_process_tasks", &me).is_some_and(|v| v >= 1.0));
    let start = value(&m, "corral_process_start_time_seconds", &me).expect("start time");
    assert_eq!(start, common::int_of(&d.info("sleeper")["start"]) as f64);
    assert_eq!(value(&m, "corral_process_restarts_total", &me), Some(0.0));
    assert_eq!(value(&m, "corral_process_oom_kills_total", &me), Some(0.0));
    assert!(value(&m, "corral_daemon_resident_memory_bytes", &[]).is_some_and(|v| v > 0.0));
    assert!(value(&m, "corral_daemon_start_time_seconds", &[]).is_some_and(|v| v > 1e9));

    // A kill makes autorestart start it again: new pid, one restart.
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid as i32), nix::sys::signal::Signal::SIGKILL)
        .expect("kill sleeper");
    wait_for("sleeper to come back with a new pid", DEADLINE, || {
        d.state("sleeper") == "RUNNING" && d.pid("sleeper") != pid
    });
    let m = scrape(&py, port);
    assert_eq!(value(&m, "corral_process_pid", &me), Some(d.pid("sleeper") as f64));
    assert!(value(&m, "corral_process_restarts_total", &me).is_some_and(|v| v >= 1.0), "{m:?}");
}

#[test]
fn metrics_auth_false_opens_only_metrics_on_that_listener() {
    let open_port = free_port();
    let locked_port = free_port();
    let d = Daemon::start(&format!(
        "[inet_http_server]\nport=127.0.0.1:{open_port}\nusername={USER}\npassword={PASSWORD}\nmetrics_auth=false\n\n\
         [inet_http_server:locked]\nport=127.0.0.1:{locked_port}\nusername={USER}\npassword={PASSWORD}\n\n\
         [program:sleeper]\ncommand=/bin/sleep 1000\n"
    ));
    d.wait_state("sleeper", "RUNNING");
    let anonymous = |port: u16, path: &str| http(port, "GET", path, &[], b"").status;
    assert_eq!(anonymous(open_port, "/metrics"), 200);
    assert!(http(open_port, "GET", "/metrics", &[], b"")
        .text()
        .contains("corral_process_up{name=\"sleeper\""));
    for path in ["/", "/api/status", "/ok.html", "/logtail/sleeper", "/metrics/x"] {
        assert_eq!(anonymous(open_port, path), 401, "{path} stays behind auth");
    }
    assert_eq!(anonymous(locked_port, "/metrics"), 401);
    assert_eq!(get(locked_port, "/metrics").status, 200);
}

#[test]
fn metrics_auth_is_parsed_and_checked_in_the_config() {
    let dir = tempfile::tempdir().expect("temp dir");
    let conf = dir.path().join("c.conf");
    std::fs::write(&conf, "[supervisord]\n[inet_http_server]\nport=9001\nmetrics_auth=no\n[unix_http_server]\nfile=/tmp/x.sock\n")
        .expect("write");
    let c = corral::config::load(&conf).expect("valid config");
    assert!(!c.inet_http_servers[0].metrics_auth);
    assert!(c.unix_http_server.expect("unix server").metrics_auth, "default is true");
    std::fs::write(&conf, "[supervisord]\n[inet_http_server]\nport=9001\nmetrics_auth=perhaps\n")
        .expect("write");
    let e = corral::config::load(&conf).expect_err("bad boolean").to_string();
    assert!(e.contains("metrics_auth") && e.contains("perhaps"), "{e}");
}

#[test]
fn actions_refuse_unauthenticated_and_cross_site_requests() {
    let (d, port) = daemon_with_web("[program:sleeper]\ncommand=/bin/sleep 1000\n");
    d.wait_state("sleeper", "RUNNING");
    let token = csrf_token(port);
    assert_eq!(token.len(), 64);
    let a = auth();
    let origin = format!("http://127.0.0.1:{port}");
    let stop = "action=stop&name=sleeper";
    let with_token = format!("{stop}&csrf={token}");

    // No credentials: 401 whatever else is right.
    let r = post_action(port, &[("X-CSRF-Token", &token), ("Origin", &origin)], stop);
    assert_eq!(r.status, 401);
    // Credentials but no token, or a wrong one.
    assert_eq!(post_action(port, &[("Authorization", &a)], stop).status, 403);
    assert_eq!(
        post_action(port, &[("Authorization", &a), ("X-CSRF-Token", "0".repeat(64).as_str())], stop).status,
        403
    );
    assert_eq!(post_action(port, &[("Authorization", &a)], &format!("{stop}&csrf=nope")).status, 403);
    // The right token from the wrong site.
    let r = post_action(port, &[("Authorization", &a), ("Origin", "http://evil.example")], &with_token);
    assert_eq!(r.status, 403, "{}", r.text());
    let r = post_action(port, &[("Authorization", &a), ("Sec-Fetch-Site", "cross-site")], &with_token);
    assert_eq!(r.status, 403, "{}", r.text());
    let r = post_action(port, &[("Authorization", &a), ("Origin", "null")], &with_token);
    assert_eq!(r.status, 403, "{}", r.text());
    // Actions are never GETs.
    assert_eq!(
        http(port, "GET", "/api/action?action=stop&name=sleeper", &[("Authorization", &a)], b"").status,
        405
    );
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(d.state("sleeper"), "RUNNING", "refused requests changed nothing");

    // Same origin with the token: done.
    let r = post_action(
        port,
        &[
            ("Authorization", &a),
            ("Origin", &origin),
            ("Sec-Fetch-Site", "same-origin"),
            ("X-CSRF-Token", &token),
        ],
        stop,
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(r.text().contains("\"ok\":true"), "{}", r.text());
    d.wait_state("sleeper", "STOPPED");
    let r = post_action(port, &[("Authorization", &a)], &format!("action=start&name=sleeper&csrf={token}"));
    assert_eq!(r.status, 200, "{}", r.text());
    d.wait_state("sleeper", "RUNNING");
    let r = post_action(port, &[("Authorization", &a), ("X-CSRF-Token", &token)], "action=start&name=nosuch");
    assert!(r.text().contains("BAD_NAME"), "{}", r.text());
    let r = post_action(port, &[("Authorization", &a), ("X-CSRF-Token", &token)], "action=format");
    assert_eq!(r.status, 400);
}

/// Read from a never-ending stream until `needle` shows up.
fn stream_contains(port: u16, path: &str, needle: &str) -> bool {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect");
    s.set_read_timeout(Some(Duration::from_millis(500))).expect("timeout");
    let req = format!("GET {path} HTTP/1.1\r\nHost: x\r\nAuthorization: {}\r\n\r\n", auth());
    s.write_all(req.as_bytes()).expect("send");
    let mut seen = Vec::new();
    let start = std::time::Instant::now();
    let mut buf = [0u8; 4096];
    while start.elapsed() < DEADLINE {
        match s.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => seen.extend_from_slice(&buf[..n]),
            Err(_) => {}
        }
        if String::from_utf8_lossy(&seen).contains(needle) {
            return true;
        }
    }
    false
}

#[test]
fn supervisord_endpoints_stay_and_the_page_is_served() {
    let (d, port) = daemon_with_web(
        "[program:talker]\ncommand=/bin/sh -c 'echo out-line; echo err-line >&2; exec sleep 1000'\n",
    );
    d.wait_state("talker", "RUNNING");
    let ok = get(port, "/ok.html");
    assert_eq!((ok.status, ok.text().as_str()), (200, "OK"));
    assert!(stream_contains(port, "/logtail/talker", "out-line"));
    assert!(stream_contains(port, "/logtail/talker/stderr", "err-line"));
    assert!(stream_contains(port, "/mainlogtail", "talker"));
    assert_eq!(get(port, "/logtail/nosuch").status, 404);
    assert_eq!(get(port, "/RPC2").status, 400, "GET /RPC2 is still supervisord's 400");
    assert_eq!(get(port, "/no/such/page").status, 404);

    for path in ["/", "/index.html", "/program/talker"] {
        let page = get(port, path);
        assert_eq!(page.status, 200, "{path}");
        assert_eq!(page.header("content-type"), Some("text/html;charset=utf-8"));
        assert!(page.header("content-security-policy").is_some_and(|c| c.contains("frame-ancestors 'none'")));
        assert!(page.text().contains("/static/app.js"));
    }
    assert_eq!(get(port, "/program/nosuch").status, 404);
    assert_eq!(get(port, "/static/app.js").header("content-type"), Some("text/javascript;charset=utf-8"));
    assert_eq!(get(port, "/static/style.css").status, 200);
    let status = get(port, "/api/status");
    assert_eq!(status.status, 200);
    let v: serde_json::Value = serde_json::from_slice(&status.body).expect("status JSON");
    assert_eq!(v["processes"][0]["namespec"], "talker");
    assert_eq!(v["processes"][0]["state"], "RUNNING");
    assert_eq!(v["processes"][0]["pid"], d.pid("talker"));
    assert!(stream_contains(port, "/api/events", "event: status\ndata: {"));
}

// ---- headless Chromium ---------------------------------------------------------

/// The browser, in its own process group so every helper process goes with it.
struct Browser {
    child: Child,
    _profile: tempfile::TempDir,
    port: u16,
}

impl Browser {
    fn start(chromium: &Path) -> Browser {
        use std::os::unix::process::CommandExt;
        let profile = tempfile::tempdir().expect("profile dir");
        let child = Command::new(chromium)
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--disable-dev-shm-usage",
                "--window-size=1280,860",
                "--remote-debugging-address=127.0.0.1",
                "--remote-debugging-port=0",
            ])
            .arg(format!("--user-data-dir={}", profile.path().display()))
            .arg("about:blank")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::from(
                std::fs::File::create(profile.path().join("stderr.txt")).expect("stderr file"),
            ))
            .process_group(0)
            .spawn()
            .expect("start chromium");
        let active = profile.path().join("DevToolsActivePort");
        let mut port = 0;
        wait_for("Chromium's DevTools port", DEADLINE * 2, || {
            port = std::fs::read_to_string(&active)
                .ok()
                .and_then(|s| s.lines().next().and_then(|l| l.trim().parse().ok()))
                .unwrap_or(0);
            port != 0
        });
        Browser { child, _profile: profile, port }
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let group = nix::unistd::Pid::from_raw(-(self.child.id() as i32));
        let _ = nix::sys::signal::kill(group, nix::sys::signal::Signal::SIGKILL);
        let _ = self.child.wait();
    }
}

/// Drives the page over the DevTools protocol; exits non-zero with a reason on failure.
const BROWSER_SCRIPT: &str = r#"
import base64, json, sys, time, urllib.request
import websocket

devtools, site, auth, artifacts, program, marker = sys.argv[1:7]
DEADLINE = 60

targets = json.load(urllib.request.urlopen(f"http://127.0.0.1:{devtools}/json/list"))
page = next(t for t in targets if t["type"] == "page")
ws = websocket.create_connection(page["webSocketDebuggerUrl"], suppress_origin=True, timeout=DEADLINE)
next_id = 0

def cdp(method, **params):
    global next_id
    next_id += 1
    ws.send(json.dumps({"id": next_id, "method": method, "params": params}))
    while True:
        msg = json.loads(ws.recv())
        if msg.get("id") == next_id:
            if "error" in msg:
                raise RuntimeError(f"{method}: {msg['error']}")
            return msg.get("result", {})

def js(expr):
    r = cdp("Runtime.evaluate", expression=expr, returnByValue=True, awaitPromise=True)
    if "exceptionDetails" in r:
        raise RuntimeError(f"{expr}: {r['exceptionDetails']}")
    return r["result"].get("value")

def wait(what, expr):
    end = time.time() + DEADLINE
    while time.time() < end:
        try:
            if js(f"(() => {{ try {{ return {expr}; }} catch (e) {{ return false; }} }})()"):
                return
        except RuntimeError:
            pass  # The page is between documents (navigation): ask again.
        time.sleep(0.1)
    raise SystemExit(f"timed out waiting for {what}; page: {js('document.body.innerText')!r}")

def shot(name):
    data = cdp("Page.captureScreenshot", format="png")["data"]
    with open(f"{artifacts}/{name}.png", "wb") as f:
        f.write(base64.b64decode(data))

def click(selector):
    wait(f"{selector} to be clickable", f"(() => {{ const e = document.querySelector({json.dumps(selector)}); return !!e && !e.disabled; }})()")
    box = js(f"(() => {{ const e = document.querySelector({json.dumps(selector)}); e.scrollIntoView({{block: 'center'}}); const r = e.getBoundingClientRect(); return [r.x + r.width / 2, r.y + r.height / 2]; }})()")
    for kind in ("mousePressed", "mouseReleased"):
        cdp("Input.dispatchMouseEvent", type=kind, x=box[0], y=box[1], button="left", clickCount=1)

cdp("Page.enable")
cdp("Network.enable")
cdp("Network.setExtraHTTPHeaders", headers={"Authorization": auth})
cdp("Emulation.setDeviceMetricsOverride", width=1280, height=860, deviceScaleFactor=1, mobile=False)
cdp("Page.navigate", url=f"{site}/")
row = f'tr[data-namespec="{program}"]'
state = f'document.querySelector({json.dumps(row + " .state")})?.textContent'
wait("the program row to be RUNNING", f"{state} === 'RUNNING'")
wait("live connection", "document.getElementById('conn').textContent === 'live'")
js("window.__sameDocument = 'still here'")
shot("web-status-running")

click(f'{row} button[data-action="stop"]')
wait("the row to show STOPPED", f"{state} === 'STOPPED'")
wait("the message", "document.getElementById('message').textContent.includes('stopped')")
shot("web-status-stopped")
click(f'{row} button[data-action="start"]')
wait("the row to show RUNNING again", f"{state} === 'RUNNING'")
if js("window.__sameDocument") != "still here":
    raise SystemExit("the page was reloaded")

click(f'{row} a.tail')
wait("the program page", "document.body.dataset.page === 'program'")
wait("the printed line in the tail", f"document.getElementById('log-stdout').textContent.includes({json.dumps(marker)})")
wait("the memory chart", "document.querySelectorAll('#mem-chart polyline').length > 0")
wait("the CPU chart", "document.querySelectorAll('#cpu-chart polyline').length > 0")
wait("a CPU reading", "document.getElementById('cpu-now').textContent.includes('%')")
shot("web-program")
print("browser checks passed")
"#;

#[test]
fn a_browser_stops_and_starts_a_program_and_reads_its_tail() {
    let chromium = std::env::var_os("CORRAL_TEST_CHROMIUM")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/bin/chromium"));
    if !chromium.exists() {
        skip("Chromium is not installed (apt-get install chromium, or run scripts/test)");
        return;
    }
    let Some(py) = python_with("websocket") else { return };
    let marker = "hello from ticker";
    let (d, port) = daemon_with_web(&format!(
        "[program:ticker]\ncommand=/bin/sh -c 'i=0; while true; do echo \"{marker} $i\"; i=$((i+1)); sleep 0.5; done'\n\
         startsecs=1\n\n[program:sleeper]\ncommand=/bin/sleep 1000\n"
    ));
    d.wait_state("ticker", "RUNNING");
    let artifacts = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/test-artifacts");
    std::fs::create_dir_all(&artifacts).expect("artifacts dir");
    let browser = Browser::start(&chromium);
    let out = Command::new(&py)
        .args(["-c", BROWSER_SCRIPT])
        .arg(browser.port.to_string())
        .arg(format!("http://127.0.0.1:{port}"))
        .arg(auth())
        .arg(&artifacts)
        .arg("ticker")
        .arg(marker)
        .output()
        .expect("run the browser script");
    assert!(
        out.status.success(),
        "browser script failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    for shot in ["web-status-running", "web-status-stopped", "web-program"] {
        let png = artifacts.join(format!("{shot}.png"));
        assert!(std::fs::metadata(&png).is_ok_and(|m| m.len() > 1000), "{} missing", png.display());
    }
    // The clicks went through the engine like any other client's requests.
    assert_eq!(d.state("ticker"), "RUNNING");
    assert!(d.main_log().contains("stopped: ticker"), "{}", d.main_log());
}
