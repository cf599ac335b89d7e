#!/usr/bin/env python3
"""corrald against Python supervisord 4.3.0, side by side, on the same generated configs.

    python3 bench/compare.py            # full comparison (about 10-15 minutes)
    python3 bench/compare.py --quick    # fewer runs, smaller N: checks the runner itself

Builds corrald --release (skip with --no-build), creates .venv with supervisor==4.3.0 from
PyPI when it has none (--venv DIR to use another), runs both daemons as root in alternation
(ABBA order, each pair adjacent in time), prints a Markdown table and writes it with the raw
figures to bench/results.md and bench/results.json (--out DIR). bench/README.md says what
each figure measures and how. Standard library only; every process started carries a unique
token in its environment, and whatever carries it is killed on exit or Ctrl-C.
"""

import argparse
import datetime
import hashlib
import json
import os
import random
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import xmlrpc.client

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TICK_MS = 1000.0 / os.sysconf("SC_CLK_TCK")
TOKEN = "CORRAL_BENCH_RUN=%d-%d" % (os.getpid(), random.SystemRandom().randrange(1 << 30))
TOKEN_BYTES = TOKEN.encode()
MIB = 1 << 20

FULL = dict(rounds=3, launch=[1000, 5000], gapi_calls=30, idle_programs=200, idle_secs=10.0,
            kills=30, log_bytes=256 * MIB, tree_stops=3)
QUICK = dict(rounds=2, launch=[100, 300], gapi_calls=5, idle_programs=50, idle_secs=2.0,
             kills=10, log_bytes=16 * MIB, tree_stops=1)
# Between launch polls the runner pauses max(POLL_MIN, duration of the last poll), so polling
# takes at most half of a daemon's time even when one getAllProcessInfo costs seconds.
POLL_MIN = 0.1
SETTLE = 2.0
MINFDS = 65536  # set in main() from RLIMIT_NOFILE


def say(*a):
    print(*a, file=sys.stderr, flush=True)


# --- XML-RPC over the unix socket -------------------------------------------------------------

class Conn:
    """One HTTP/1.1 connection to a daemon's unix socket, reopened when the server closes it."""

    def __init__(self, path):
        self.path = path
        self.s = None

    def close(self):
        if self.s is not None:
            self.s.close()
            self.s = None

    def raw(self, method, *params):
        """Sends one call and returns the undecoded response body."""
        body = xmlrpc.client.dumps(params, method).encode()
        req = (b"POST /RPC2 HTTP/1.1\r\nHost: localhost\r\nContent-Type: text/xml\r\n"
               b"Content-Length: %d\r\n\r\n" % len(body)) + body
        if self.s is None:
            self.s = socket.socket(socket.AF_UNIX)
            self.s.settimeout(600)
            self.s.connect(self.path)
        try:
            self.s.sendall(req)
            buf = b""
            while b"\r\n\r\n" not in buf:
                chunk = self.s.recv(65536)
                if not chunk:
                    raise OSError("connection closed")
                buf += chunk
            head, _, rest = buf.partition(b"\r\n\r\n")
            headers = head.decode("latin-1").lower()
            length = int(headers.split("content-length:")[1].split("\r\n")[0])
            parts = [rest]
            have = len(rest)
            while have < length:
                chunk = self.s.recv(1 << 20)
                if not chunk:
                    raise OSError("connection closed")
                parts.append(chunk)
                have += len(chunk)
        except BaseException:
            self.close()
            raise
        if "connection: close" in headers or head.startswith(b"HTTP/1.0"):
            self.close()
        if not head.split(b" ", 2)[1] == b"200":
            raise OSError("HTTP error: %r" % head[:80])
        return b"".join(parts)

    def call(self, method, *params):
        return xmlrpc.client.loads(self.raw(method, *params))[0][0]


# --- /proc ------------------------------------------------------------------------------------

def cpu_ticks_ms(pid):
    """utime+stime of the whole process (dead threads included), 10 ms resolution."""
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) * TICK_MS


def schedstat(pid):
    """{tid: (ns on CPU, timeslices)} for every live thread."""
    out = {}
    for tid in os.listdir("/proc/%d/task" % pid):
        try:
            with open("/proc/%d/task/%s/schedstat" % (pid, tid)) as f:
                run, _wait, slices = f.read().split()
            out[tid] = (int(run), int(slices))
        except OSError:
            pass
    return out


def schedstat_delta(a, b):
    """ns and timeslices between two readings; threads that exited in between count up to `a`."""
    ns = sum(b[t][0] - a.get(t, (0, 0))[0] for t in b)
    slices = sum(b[t][1] - a.get(t, (0, 0))[1] for t in b)
    return ns, slices, sorted(a) != sorted(b)


def memory_kib(pid):
    rss = pss = None
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                rss = int(line.split()[1])
    with open("/proc/%d/smaps_rollup" % pid) as f:
        for line in f:
            if line.startswith("Pss:"):
                pss = int(line.split()[1])
    return rss, pss


def token_pids(exclude=()):
    """Live (non-zombie) processes whose environment carries this run's token."""
    pids = []
    for name in os.listdir("/proc"):
        if not name.isdigit() or int(name) in exclude or int(name) == os.getpid():
            continue
        try:
            with open("/proc/%s/environ" % name, "rb") as f:
                if TOKEN_BYTES not in f.read():
                    continue
            with open("/proc/%s/stat" % name) as f:
                if f.read().rsplit(")", 1)[1].split()[0] == "Z":
                    continue
        except OSError:
            continue
        pids.append(int(name))
    return pids


def kill_token_processes():
    for _ in range(50):
        pids = token_pids()
        if not pids:
            return
        for p in pids:
            try:
                os.kill(p, signal.SIGKILL)
            except OSError:
                pass
        time.sleep(0.05)


def remove_cgroups(ident):
    """Removes the cgroup trees corrald made for `ident` (it nests them in the cgroup it starts in,
    which is the runner's), should a killed daemon have left them."""
    with open("/proc/self/cgroup") as f:
        lines = [line.rstrip("\n").split(":", 2) for line in f]
    for _, controllers, path in lines:
        names = [c.replace("name=", "") for c in controllers.split(",")] if controllers else ["unified", ""]
        for name in names:
            top = os.path.join("/sys/fs/cgroup", name, path.lstrip("/"), "corral-" + ident)
            if not os.path.isdir(top):
                continue
            for sub, _, _ in sorted(os.walk(top), key=lambda w: -w[0].count("/")):
                try:
                    os.rmdir(sub)
                except OSError as e:
                    say("cannot remove %s: %s" % (sub, e))


def cgroup_layout():
    fs = subprocess.run(["stat", "-fc", "%T", "/sys/fs/cgroup"], capture_output=True, text=True).stdout.strip()
    if fs == "cgroup2fs":
        return "unified (cgroup2 only)"
    if os.path.isdir("/sys/fs/cgroup/unified"):
        return "hybrid (v1 controllers, controller-less cgroup2 at /sys/fs/cgroup/unified)"
    return "legacy (cgroup v1 only)"


def machine():
    model = "unknown"
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    commit = subprocess.run(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"], capture_output=True,
                            text=True).stdout.strip()
    return {"nproc": os.cpu_count(), "cpu": model, "kernel": os.uname().release, "cgroups": cgroup_layout(),
            "loadavg_start": os.getloadavg(), "commit": commit}


# --- the daemons ------------------------------------------------------------------------------

class Daemon:
    """corrald or supervisord on a generated config in a fresh directory."""

    seq = 0

    def __init__(self, kind, binaries, programs, workdir):
        Daemon.seq += 1
        self.kind = kind
        self.dir = os.path.join(workdir, "%s-%d" % (kind, Daemon.seq))
        os.makedirs(self.dir)
        self.ident = "bench-%d-%d" % (os.getpid(), Daemon.seq)
        self.sock = os.path.join(self.dir, "rpc.sock")
        conf = os.path.join(self.dir, "bench.conf")
        with open(conf, "w") as f:
            f.write(config_text(self.dir, self.ident, self.sock, programs))
        argv = [binaries[kind], "-c", conf]
        if kind == "corral":
            # The system bus may be shared with other daemons; D-Bus is not measured.
            argv += ["--dbus", "none"]
        env = dict(os.environ)
        k, v = TOKEN.split("=", 1)
        env[k] = v
        self.t0 = time.perf_counter()
        self.proc = subprocess.Popen(argv, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=open(os.path.join(self.dir, "stderr"), "wb"))
        self.pid = self.proc.pid
        LIVE.append(self)
        self.rpc = Conn(self.sock)
        # corrald may answer only once every program is spawned, so allow as long as a launch.
        deadline = time.monotonic() + 600
        while True:
            try:
                self.rpc.call("supervisor.getPID")
                break
            except (OSError, xmlrpc.client.Error):
                self.rpc.close()
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("%s did not come up; see %s/stderr" % (kind, self.dir))
                time.sleep(0.02)

    def count_running(self):
        return self.rpc.raw("supervisor.getAllProcessInfo").count(b"<string>RUNNING</string>")

    def wait_running(self, n, timeout=600):
        """Seconds from exec of the daemon until n processes are RUNNING, and the poll figures."""
        deadline = time.monotonic() + timeout
        polls = 0
        last_reply = None
        while True:
            t = time.perf_counter()
            running = self.count_running()
            reply = time.perf_counter()
            polls += 1
            if running >= n:
                return reply - self.t0, {"polls": polls, "last_poll_s": reply - t,
                                         "since_previous_reply_s": reply - last_reply if last_reply else None}
            last_reply = reply
            if time.monotonic() > deadline or self.proc.poll() is not None:
                raise RuntimeError("%s: %d programs never all RUNNING" % (self.kind, n))
            time.sleep(max(POLL_MIN, reply - t))

    def stop(self, graceful=True):
        """Stops every process, then the daemon; without `graceful` (on Ctrl-C or an error,
        when the daemon may be busy for minutes) signals the daemon at once."""
        if graceful and self.proc.poll() is None:
            # supervisord's own shutdown stops one group per turn of its loop (seconds for
            # 1000 programs); stopping every process first makes both daemons quick to exit.
            try:
                self.rpc.call("supervisor.stopAllProcesses", False)
                deadline = time.monotonic() + 120
                while token_pids(exclude={self.pid}) and time.monotonic() < deadline:
                    time.sleep(0.1)
            except (OSError, xmlrpc.client.Error) as e:
                say("%s: stopAllProcesses: %s" % (self.kind, e))
        self.rpc.close()
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=300 if graceful else 30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        kill_token_processes()
        remove_cgroups(self.ident)
        # The directory (thousands of empty AUTO logs) stays until the whole run ends:
        # ext4 skips inodes freed in the last minutes when it allocates new ones, so a
        # round that created its files right after the previous round deleted as many
        # would measure that scan instead of the daemon (both daemons alike).
        if self in LIVE:
            LIVE.remove(self)


# Daemons started and not yet stopped, for the cleanup on Ctrl-C.
LIVE = []


def start(kind, binaries, programs, workdir):
    return Daemon(kind, binaries, programs, workdir)


def finish(d):
    # Called from `finally`: while an exception (Ctrl-C) is on its way, do not wait on the daemon.
    d.stop(graceful=sys.exc_info()[0] is None)


def config_text(d, ident, sock, programs):
    """supervisord-compatible INI, the same text for both daemons but for the paths."""
    return ("[supervisord]\nlogfile=%s/daemon.log\npidfile=%s/daemon.pid\nchildlogdir=%s\nnodaemon=true\n"
            "minfds=%d\nidentifier=%s\n\n[unix_http_server]\nfile=%s\n\n[rpcinterface:supervisor]\n"
            "supervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface\n\n%s"
            % (d, d, d, MINFDS, ident, sock, programs))


def sleepers(n, startsecs):
    return "".join("[program:p%04d]\ncommand=sleep 1000000\nstartsecs=%d\nredirect_stderr=true\n\n" % (i, startsecs)
                   for i in range(n))


# --- the figures ------------------------------------------------------------------------------

def fig_launch(kind, binaries, workdir, n, gapi_calls):
    d = start(kind, binaries, sleepers(n, 1), workdir)
    try:
        up, poll = d.wait_running(n)
        # The daemon's own CPU for the launch (polls included): steadier than wall
        # time on a loaded machine, so before/after comparisons of a change use it.
        launch_cpu_ms = cpu_ticks_ms(d.pid)
        time.sleep(SETTLE)
        rss, pss = memory_kib(d.pid)
        out = {"launch_s": up, "poll": poll, "launch_cpu_ms": launch_cpu_ms,
               "rss_mb": rss * 1024 / 1e6, "pss_mb": pss * 1024 / 1e6}
        if gapi_calls:
            for _ in range(3):
                d.rpc.raw("supervisor.getAllProcessInfo")
            lat = []
            before = schedstat(d.pid)
            for _ in range(gapi_calls):
                t = time.perf_counter()
                d.rpc.raw("supervisor.getAllProcessInfo")
                lat.append((time.perf_counter() - t) * 1000)
            ns, _slices, _changed = schedstat_delta(before, schedstat(d.pid))
            out["gapi_ms"] = statistics.median(lat)
            out["gapi_cpu_ms"] = ns / 1e6 / gapi_calls
            out["gapi_all_ms"] = lat
        return out
    finally:
        finish(d)


def fig_idle(kind, binaries, workdir, n, secs):
    d = start(kind, binaries, sleepers(n, 1), workdir)
    try:
        d.wait_running(n)
        time.sleep(SETTLE)
        d.rpc.close()
        c0, s0, t0 = cpu_ticks_ms(d.pid), schedstat(d.pid), time.perf_counter()
        time.sleep(secs)
        c1, s1, t1 = cpu_ticks_ms(d.pid), schedstat(d.pid), time.perf_counter()
        ns, slices, changed = schedstat_delta(s0, s1)
        return {"idle_cpu_ms": ns / 1e6, "idle_ticks_ms": c1 - c0, "idle_timeslices": slices,
                "threads_changed": changed, "secs": t1 - t0}
    finally:
        finish(d)


def fig_crash(kind, binaries, workdir, kills):
    d = start(kind, binaries, "[program:crash]\ncommand=sleep 1000000\nstartsecs=0\nautorestart=true\n",
              workdir)
    try:
        d.wait_running(1)
        times, polls = [], []
        for _ in range(kills):
            old = d.rpc.call("supervisor.getProcessInfo", "crash")["pid"]
            t = time.perf_counter()
            os.kill(old, signal.SIGKILL)
            n = 0
            while True:
                i = d.rpc.call("supervisor.getProcessInfo", "crash")
                n += 1
                if i["pid"] not in (0, old) and i["statename"] == "RUNNING":
                    break
                if time.perf_counter() - t > 30:
                    raise RuntimeError("%s: no replacement within 30 s" % kind)
            times.append((time.perf_counter() - t) * 1000)
            polls.append(n)
            time.sleep(0.02)
        return {"crash_ms": statistics.median(times), "all_ms": times, "polls": polls}
    finally:
        finish(d)


def fig_log(kind, binaries, workdir, data, size, digest):
    log = os.path.join(workdir, "%s-writer.log" % kind)
    prog = ("[program:writer]\ncommand=cat %s\nautostart=false\nstartsecs=0\nautorestart=false\n"
            "stdout_logfile=%s\nstdout_logfile_maxbytes=0\nstdout_logfile_backups=0\n" % (data, log))
    d = start(kind, binaries, prog, workdir)
    try:
        time.sleep(SETTLE / 4)
        c0, s0 = cpu_ticks_ms(d.pid), schedstat(d.pid)
        t = time.perf_counter()
        d.rpc.call("supervisor.startProcess", "writer", False)
        deadline = t + 300
        while True:
            try:
                if os.stat(log).st_size >= size:
                    break
            except FileNotFoundError:
                pass
            if time.perf_counter() > deadline:
                raise RuntimeError("%s: log never reached %d bytes" % (kind, size))
            time.sleep(0.002)
        took = time.perf_counter() - t
        c1, s1 = cpu_ticks_ms(d.pid), schedstat(d.pid)
        ns, _, changed = schedstat_delta(s0, s1)
        # The writer has exited by now; let the daemon finish any write before checking.
        time.sleep(0.2)
        exact = os.stat(log).st_size == size and sha256(log) == digest
        return {"log_s": took, "log_cpu_s": ns / 1e9, "log_ticks_s": (c1 - c0) / 1000, "threads_changed": changed,
                "exact": exact}
    finally:
        finish(d)
        try:
            os.unlink(log)
        except FileNotFoundError:
            pass


TREE = """#!/bin/sh
for i in $(seq 40); do sleep 1000000 & done
for i in $(seq 9); do setsid sh -c 'sleep 1000000 &'; done
wait
"""


def fig_tree(kind, binaries, workdir, stops):
    script = os.path.join(workdir, "tree.sh")
    with open(script, "w") as f:
        f.write(TREE)
    prog = ("[program:tree]\ncommand=/bin/sh %s\nstartsecs=0\nautostart=false\nstopasgroup=true\n"
            "killasgroup=true\nstopwaitsecs=10\n" % script)
    d = start(kind, binaries, prog, workdir)
    try:
        survivors, ms = [], []
        for _ in range(stops):
            d.rpc.call("supervisor.startProcess", "tree", True)
            deadline = time.monotonic() + 60
            while len(token_pids(exclude={d.pid})) != 50:
                if time.monotonic() > deadline:
                    raise RuntimeError("%s: the tree never had 50 processes" % kind)
                time.sleep(0.02)
            t = time.perf_counter()
            d.rpc.call("supervisor.stopProcess", "tree", True)
            ms.append((time.perf_counter() - t) * 1000)
            left = token_pids(exclude={d.pid})
            survivors.append(len(left))
            for p in left:
                try:
                    os.kill(p, signal.SIGKILL)
                except OSError:
                    pass
            deadline = time.monotonic() + 30
            while token_pids(exclude={d.pid}) and time.monotonic() < deadline:
                time.sleep(0.02)
        return {"survivors_max": max(survivors), "survivors": survivors, "stop_ms": statistics.median(ms),
                "all_stop_ms": ms}
    finally:
        finish(d)


# --- physical references ----------------------------------------------------------------------

def token_env():
    env = dict(os.environ)
    k, v = TOKEN.split("=", 1)
    env[k] = v
    return env


def ref_spawn(n):
    """A bare posix_spawn loop: n `sleep` processes started back to back."""
    sleep = shutil.which("sleep")
    env = token_env()
    pids = []
    t = time.perf_counter()
    for _ in range(n):
        pids.append(os.posix_spawn(sleep, [sleep, "1000000"], env))
    took = time.perf_counter() - t
    for p in pids:
        os.kill(p, signal.SIGKILL)
    for p in pids:
        os.waitpid(p, 0)
    return took


def ref_crash(kills):
    """SIGKILL a child, reap it and spawn the next: the floor under crash -> replacement."""
    sleep = shutil.which("sleep")
    env = token_env()
    pid = os.posix_spawn(sleep, [sleep, "1000000"], env)
    times = []
    for _ in range(kills):
        t = time.perf_counter()
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        pid = os.posix_spawn(sleep, [sleep, "1000000"], env)
        times.append((time.perf_counter() - t) * 1000)
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
    return statistics.median(times)


def ref_log(workdir, data, size):
    """`cat data > file` and `cat data | cat > file`, timed like the daemons (until the file has it all)."""
    out = os.path.join(workdir, "ref.out")
    res = {}
    for name, cmd in (("direct", "cat %s > %s" % (data, out)), ("pipe", "cat %s | cat > %s" % (data, out))):
        t = time.perf_counter()
        subprocess.run(["sh", "-c", cmd], check=True)
        res[name] = time.perf_counter() - t
        if os.stat(out).st_size != size:
            raise RuntimeError("reference %s wrote a short file" % name)
        os.unlink(out)
    return res


def make_data(path, size):
    """Random-looking bytes from a fixed seed, so a lost or reordered chunk shows in the digest."""
    rng = random.Random(20261125)
    h = hashlib.sha256()
    with open(path, "wb") as f:
        left = size
        while left:
            chunk = rng.randbytes(min(left, MIB))
            f.write(chunk)
            h.update(chunk)
            left -= len(chunk)
    return h.hexdigest()


def sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while True:
            b = f.read(MIB)
            if not b:
                return h.hexdigest()
            h.update(b)


# --- setup ------------------------------------------------------------------------------------

def build():
    say("==> cargo build --release --bin corrald")
    subprocess.run(["cargo", "build", "--release", "--quiet", "--bin", "corrald"], cwd=ROOT, check=True)


def ensure_venv(venv):
    py = os.path.join(venv, "bin", "python")
    probe = "import importlib.metadata as m; print(m.version('supervisor'))"
    have = subprocess.run([py, "-c", probe], capture_output=True, text=True).stdout.strip() \
        if os.path.exists(py) else ""
    if have != "4.3.0":
        say("==> installing supervisor==4.3.0 from PyPI into %s" % venv)
        if not os.path.exists(py):
            subprocess.run([sys.executable, "-m", "venv", venv], check=True)
        subprocess.run([os.path.join(venv, "bin", "pip"), "install", "-q", "--disable-pip-version-check",
                        "supervisor==4.3.0"], check=True)
    return os.path.join(venv, "bin", "supervisord")


# --- the report -------------------------------------------------------------------------------

def med(xs):
    return statistics.median(xs) if xs else None


def pair_ratio(c, s):
    rs = [a / b for a, b in zip(c, s) if a is not None and b]
    return med(rs)


def fmt(v, unit, digits=2):
    if v is None:
        return "—"
    if isinstance(v, bool):
        return "yes" if v else "NO"
    return ("%." + str(digits) + "f %s") % (v, unit) if unit else ("%." + str(digits) + "f") % v


def report(res, spec, quick):
    """Markdown table rows: figure, supervisord, corral, ratio, reference, target, verdict."""
    rows = []
    full = not quick

    def row(label, key, unit, digits, target=None, limit=None, ref="", verdict=None):
        c, s = res["corral"].get(key, []), res["supervisord"].get(key, [])
        if verdict is None and limit is not None and c:
            verdict = ("met" if med(c) <= limit else "missed") if full else "— (--quick)"
        if quick and target:
            verdict = "— (--quick)"
        rows.append([label, fmt(med(s), unit, digits), fmt(med(c), unit, digits),
                     fmt(pair_ratio(c, s), "", 3), ref, target or "", verdict or ""])

    refs = res["reference"]
    n1, n2 = spec["launch"]
    for n, goal in ((n1, 1.5), (n2, 4.0)):
        r = med(refs.get("spawn_%d" % n, []))
        row("launch → %d programs RUNNING (startsecs=1)" % n, "launch_%d" % n, "s", 2, "≤ %.1f s" % goal,
            goal if n in (1000, 5000) else None,
            "fork+exec of %d: %.3f s (+1 s startsecs)" % (n, r) if r is not None else "")
    for n, goal in ((n1, 8), (n2, 20)):
        row("daemon RSS, %d programs" % n, "rss_%d" % n, "MB", 1, "≤ %d MB" % goal,
            goal if n in (1000, 5000) else None)
        row("daemon PSS, %d programs" % n, "pss_%d" % n, "MB", 1)
    row("daemon CPU while idle, %d programs, %g s" % (spec["idle_programs"], spec["idle_secs"]), "idle_cpu_ms",
        "ms", 3, "≤ 0.5 ms", 0.5 if spec["idle_programs"] == 200 and spec["idle_secs"] == 10 else None)
    row("  its timeslices (wake-ups) in that time", "idle_timeslices", "", 0, "0")
    r = med(refs.get("crash_ms", []))
    row("SIGKILL of a child → replacement RUNNING (startsecs=0), median", "crash_ms", "ms", 2, "≤ 2 ms", 2.0,
        "kill+reap+spawn: %.3f ms" % r if r is not None else "")
    row("getAllProcessInfo, %d programs, median" % n1, "gapi_ms", "ms", 1, "≤ 10 ms",
        10.0 if n1 == 1000 else None)

    mib = spec["log_bytes"] // MIB
    direct, pipe = med(refs.get("log_direct", [])), med(refs.get("log_pipe", []))
    c_log = med(res["corral"].get("log_s", []))
    ok_speed = c_log is not None and direct is not None and c_log <= 1.2 * direct
    row("%d MiB of child stdout → log file" % mib, "log_s", "s", 3,
        "≤ 1.2 × `writer > file`", None,
        "`cat > file` %.3f s, `cat \\| cat > file` %.3f s" % (direct, pipe) if direct is not None else "",
        "" if c_log is None else ("met" if ok_speed else "missed") if full else "— (--quick)")
    cpu_ratio = pair_ratio(res["corral"].get("log_cpu_s", []), res["supervisord"].get("log_cpu_s", []))
    row("  daemon CPU for it", "log_cpu_s", "CPU-s", 3, "≤ 0.5 × supervisord", None, "",
        "" if cpu_ratio is None else ("met" if cpu_ratio <= 0.5 else "missed") if full else "— (--quick)")
    c_exact = res["corral"].get("log_exact", [])
    s_exact = res["supervisord"].get("log_exact", [])
    rows.append(["  log byte-exact (sha256) in every run", "—" if not s_exact else "yes" if all(s_exact) else "NO",
                 "—" if not c_exact else "yes" if all(c_exact) else "NO", "", "", "yes",
                 "" if not c_exact else "met" if all(c_exact) else "missed"])
    c_surv = res["corral"].get("tree_survivors", [])
    s_surv = res["supervisord"].get("tree_survivors", [])
    rows.append(["stop of a 50-process tree (40 children, 9 setsid'd escapees): survivors at return, "
                 "worst of %d" % len(c_surv), "%d" % max(s_surv) if s_surv else "—",
                 "%d" % max(c_surv) if c_surv else "—", "", "", "0, always",
                 "" if not c_surv else "met" if max(c_surv) == 0 else "missed"])
    row("  stopProcess(wait) duration, median", "tree_stop_ms", "ms", 1)

    head = ["figure", "supervisord 4.3.0", "corral", "corral / supervisord", "reference", "corral target", "met?"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


# --- main -------------------------------------------------------------------------------------

def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="fewer runs and smaller N, to check the runner")
    ap.add_argument("--rounds", type=int, help="pairs of runs per figure (default 3, --quick 2)")
    ap.add_argument("--no-build", action="store_true", help="use target/release/corrald as it is")
    ap.add_argument("--venv", default=os.path.join(ROOT, ".venv"), help="venv with supervisor 4.3.0")
    ap.add_argument("--out", default=os.path.join(ROOT, "bench"), help="where results.{md,json} go")
    ap.add_argument("--only", help="comma-separated figures: launch,idle,crash,log,tree")
    a = ap.parse_args()
    if os.geteuid() != 0:
        sys.exit("compare.py runs both daemons as root (corrald's cgroups need it)")
    spec = dict(QUICK if a.quick else FULL)
    if a.rounds:
        spec["rounds"] = a.rounds
    figures = a.only.split(",") if a.only else ["launch", "idle", "crash", "log", "tree"]

    if not a.no_build:
        build()
    binaries = {"corral": os.path.join(ROOT, "target", "release", "corrald"),
                "supervisord": ensure_venv(a.venv)}
    # Both daemons get the same limit, the highest this runner may set (supervisord needs three
    # descriptors per program: stdin and stdout pipes and the log file).
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    global MINFDS
    MINFDS = hard if hard != resource.RLIM_INFINITY else 65536

    workdir = tempfile.mkdtemp(prefix="corral-compare-")

    def interrupted(signum, _frame):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, interrupted)
    res = {"corral": {}, "supervisord": {}, "reference": {}}
    raw = {"corral": {}, "supervisord": {}}
    info = machine()
    started = time.time()

    def add(kind, key, value):
        (res[kind] if kind in res else res["reference"]).setdefault(key, []).append(value)

    def pairs(fn, label):
        for r in range(spec["rounds"]):
            order = ("corral", "supervisord") if r % 2 == 0 else ("supervisord", "corral")
            for kind in order:
                t = time.perf_counter()
                out = fn(kind)
                raw[kind].setdefault(label, []).append(out)
                say("    %s %s round %d (%.1f s): %s" % (label, kind, r + 1, time.perf_counter() - t,
                                                        {k: v for k, v in out.items() if not isinstance(v, list)}))
                yield kind, out

    try:
        data = digest = None
        if "log" in figures:
            data = os.path.join(workdir, "data")
            digest = make_data(data, spec["log_bytes"])
        for fig in figures:
            say("==> %s" % fig)
            if fig == "launch":
                for i, n in enumerate(spec["launch"]):
                    calls = spec["gapi_calls"] if i == 0 else 0
                    for kind, out in pairs(lambda k: fig_launch(k, binaries, workdir, n, calls), "launch_%d" % n):
                        add(kind, "launch_%d" % n, out["launch_s"])
                        add(kind, "rss_%d" % n, out["rss_mb"])
                        add(kind, "pss_%d" % n, out["pss_mb"])
                        if "gapi_ms" in out:
                            add(kind, "gapi_ms", out["gapi_ms"])
                    for _ in range(spec["rounds"]):
                        add("reference", "spawn_%d" % n, ref_spawn(n))
            elif fig == "idle":
                for kind, out in pairs(lambda k: fig_idle(k, binaries, workdir, spec["idle_programs"],
                                                          spec["idle_secs"]), "idle"):
                    add(kind, "idle_cpu_ms", out["idle_cpu_ms"])
                    add(kind, "idle_timeslices", out["idle_timeslices"])
            elif fig == "crash":
                for kind, out in pairs(lambda k: fig_crash(k, binaries, workdir, spec["kills"]), "crash"):
                    add(kind, "crash_ms", out["crash_ms"])
                for _ in range(spec["rounds"]):
                    add("reference", "crash_ms", ref_crash(spec["kills"]))
            elif fig == "log":
                sha256(data)  # into the page cache, for every contender alike
                for kind, out in pairs(lambda k: fig_log(k, binaries, workdir, data, spec["log_bytes"], digest),
                                       "log"):
                    add(kind, "log_s", out["log_s"])
                    add(kind, "log_cpu_s", out["log_cpu_s"])
                    add(kind, "log_exact", out["exact"])
                for _ in range(spec["rounds"]):
                    r = ref_log(workdir, data, spec["log_bytes"])
                    add("reference", "log_direct", r["direct"])
                    add("reference", "log_pipe", r["pipe"])
            elif fig == "tree":
                for kind, out in pairs(lambda k: fig_tree(k, binaries, workdir, spec["tree_stops"]), "tree"):
                    add(kind, "tree_survivors", out["survivors_max"])
                    add(kind, "tree_stop_ms", out["stop_ms"])
            else:
                sys.exit("unknown figure %r" % fig)
    except KeyboardInterrupt:
        say("interrupted; cleaning up")
        return 130
    finally:
        for d in list(LIVE):
            d.stop(graceful=False)
        kill_token_processes()
        shutil.rmtree(workdir, ignore_errors=True)

    info["loadavg_end"] = os.getloadavg()
    info["minutes"] = round((time.time() - started) / 60, 1)
    when = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    title = ("%s%s, commit %s: %d cores (%s), kernel %s, cgroups %s; load average %.2f at start, %.2f at end; "
             "median of %d alternating runs; %.1f min"
             % (when, " (--quick)" if a.quick else "", info["commit"], info["nproc"], info["cpu"], info["kernel"],
                info["cgroups"], info["loadavg_start"][0], info["loadavg_end"][0], spec["rounds"],
                info["minutes"]))
    table = report(res, spec, a.quick)
    # A run of some figures only never replaces the last complete results.
    stem = "results" if a.only is None else "results-partial"
    os.makedirs(a.out, exist_ok=True)
    with open(os.path.join(a.out, stem + ".json"), "w") as f:
        json.dump({"when": when, "quick": a.quick, "machine": info, "spec": spec, "poll_min_s": POLL_MIN,
                   "figures": res, "runs": raw}, f, indent=1)
    md = title + "\n\n" + table + "\n"
    with open(os.path.join(a.out, stem + ".md"), "w") as f:
        f.write(md)
    print(md)
    return 0


if __name__ == "__main__":
    sys.exit(main())
