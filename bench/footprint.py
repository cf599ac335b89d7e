#!/usr/bin/env python3
"""corrald's footprint and reaction times on this machine.

Measures, each on a fresh daemon with a generated config:
  - RSS (and PSS) of corrald with N programs running;
  - CPU corrald uses while nothing happens (utime+stime from /proc/PID/stat);
  - launch -> N programs RUNNING (startsecs=0), i.e. the spawn rate;
  - SIGKILL of a child -> its replacement RUNNING (startsecs=0);
  - stop of a 50-process tree: time and processes left at return.

Run:  .venv/bin/python bench/footprint.py [--programs 100,1000] [--idle 60] [--json out.json]
(needs `cargo build --release` first; as root, programs get cgroups; add
--no-cgroups to run the daemon as `nobody`, where it has none.)
"""

import argparse
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import xmlrpc.client

from supervisor.xmlrpc import SupervisorTransport

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TICK = os.sysconf("SC_CLK_TCK")


def proxy(sock):
    t = SupervisorTransport(None, None, "unix://" + sock)
    return xmlrpc.client.ServerProxy("http://127.0.0.1", transport=t)


def write_config(d, programs, extra=""):
    conf = os.path.join(d, "corral.conf")
    with open(conf, "w") as f:
        f.write(f"""[supervisord]
logfile={d}/corrald.log
pidfile={d}/corrald.pid
childlogdir={d}
loglevel=warn
nodaemon=true
minfds=16384
identifier=bench-{os.getpid()}

[unix_http_server]
file={d}/corral.sock
chmod=0777

[rpcinterface:supervisor]
supervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface

""")
        for i in range(programs):
            f.write(f"[program:p{i}]\ncommand=sleep 1000000\nstartsecs=0\n\n")
        f.write(extra)
    return conf


class Daemon:
    def __init__(self, binary, programs, extra="", as_nobody=False):
        self.dir = tempfile.mkdtemp(prefix="corral-bench-")
        os.chmod(self.dir, 0o777)
        self.conf = write_config(self.dir, programs, extra)
        self.sock = os.path.join(self.dir, "corral.sock")
        cmd = [binary, "-c", self.conf]
        if as_nobody:
            cmd = ["runuser", "-u", "nobody", "--"] + cmd
        self.t0 = time.perf_counter()
        self.proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.time() + 60
        while True:
            try:
                self.rpc = proxy(self.sock)
                self.rpc.supervisor.getPID()
                break
            except Exception:
                if time.time() > deadline:
                    raise RuntimeError("corrald did not come up")
                time.sleep(0.005)
        self.pid = self.rpc.supervisor.getPID()

    def wait_all_running(self, n, timeout=300):
        deadline = time.time() + timeout
        while time.time() < deadline:
            infos = self.rpc.supervisor.getAllProcessInfo()
            if sum(1 for i in infos if i["statename"] == "RUNNING") >= n:
                return time.perf_counter() - self.t0
            time.sleep(0.01)
        raise RuntimeError("programs did not all reach RUNNING")

    def cpu_ticks(self):
        with open(f"/proc/{self.pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return int(fields[11]) + int(fields[12])  # utime + stime

    def memory_kib(self):
        rss = pss = None
        with open(f"/proc/{self.pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    rss = int(line.split()[1])
        try:
            with open(f"/proc/{self.pid}/smaps_rollup") as f:
                for line in f:
                    if line.startswith("Pss:"):
                        pss = int(line.split()[1])
        except OSError:
            pass
        return rss, pss

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=120)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        shutil.rmtree(self.dir, ignore_errors=True)


def processes_in(cgroup_path):
    pids = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/cgroup") as f:
                paths = [l.strip().split(":", 2)[2] for l in f if l.count(":") >= 2]
            with open(f"/proc/{name}/stat") as f:
                if f.read().rsplit(")", 1)[1].split()[0] == "Z":
                    continue
        except OSError:
            continue
        if any(p == cgroup_path or p.startswith(cgroup_path + "/") for p in paths):
            pids.append(int(name))
    return pids


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--binary", default=os.path.join(ROOT, "target/release/corrald"))
    ap.add_argument("--programs", default="100,1000")
    ap.add_argument("--idle", type=float, default=60.0)
    ap.add_argument("--kills", type=int, default=30)
    ap.add_argument("--no-cgroups", action="store_true")
    ap.add_argument("--json")
    a = ap.parse_args()
    results = {"machine": os.uname().release, "nproc": os.cpu_count(), "cgroups": not a.no_cgroups, "runs": {}}

    for n in [int(x) for x in a.programs.split(",")]:
        d = Daemon(a.binary, n, as_nobody=a.no_cgroups)
        try:
            up = d.wait_all_running(n)
            time.sleep(2)  # let startup work settle
            rss, pss = d.memory_kib()
            t0, c0 = time.time(), d.cpu_ticks()
            time.sleep(a.idle)
            t1, c1 = time.time(), d.cpu_ticks()
            cpu_ms = (c1 - c0) * 1000.0 / TICK
            r = {"launch_to_running_s": round(up, 3), "rss_kib": rss, "pss_kib": pss,
                 "idle_cpu_ms": cpu_ms, "idle_secs": round(t1 - t0, 1)}
            results["runs"][str(n)] = r
            print(f"{n} programs: launch->all RUNNING {up:.3f} s, RSS {rss} KiB (PSS {pss}), "
                  f"idle CPU {cpu_ms:.1f} ms over {t1 - t0:.0f} s", flush=True)
        finally:
            d.stop()

    # Crash -> replacement RUNNING.
    d = Daemon(a.binary, 0, "[program:crash]\ncommand=sleep 1000000\nstartsecs=0\nautorestart=true\n",
               as_nobody=a.no_cgroups)
    try:
        d.wait_all_running(1)
        times = []
        for _ in range(a.kills):
            old = d.rpc.supervisor.getProcessInfo("crash")["pid"]
            t0 = time.perf_counter()
            os.kill(old, signal.SIGKILL)
            while True:
                i = d.rpc.supervisor.getProcessInfo("crash")
                if i["pid"] not in (0, old) and i["statename"] == "RUNNING":
                    break
            times.append((time.perf_counter() - t0) * 1000.0)
        times.sort()
        results["crash_to_running_ms"] = {"median": statistics.median(times), "p90": times[int(len(times) * 0.9) - 1],
                                          "samples": len(times)}
        print(f"SIGKILL -> replacement RUNNING: median {statistics.median(times):.2f} ms, "
              f"p90 {times[int(len(times) * 0.9) - 1]:.2f} ms ({len(times)} kills)", flush=True)
    finally:
        d.stop()

    # Stop of a 50-process tree, with setsid'd escapees.
    tree = ("sh -c 'for i in $(seq 40); do sleep 1000000 & done; "
            "for i in $(seq 9); do setsid sh -c \"sleep 1000000 &\"; done; wait'")
    d = Daemon(a.binary, 0, f"[program:tree]\ncommand={tree}\nstartsecs=0\nstopwaitsecs=5\n", as_nobody=a.no_cgroups)
    try:
        d.wait_all_running(1)
        cg = d.rpc.corral.getProcessCgroup("tree") if not a.no_cgroups else ""
        deadline = time.time() + 30
        while cg and len(processes_in(cg)) < 50 and time.time() < deadline:
            time.sleep(0.01)
        before = len(processes_in(cg)) if cg else None
        t0 = time.perf_counter()
        d.rpc.supervisor.stopProcess("tree")
        took = (time.perf_counter() - t0) * 1000.0
        left = len(processes_in(cg)) if cg else None
        results["tree_stop"] = {"processes": before, "ms": took, "left": left}
        print(f"stop of a {before}-process tree: {took:.1f} ms, {left} left at return", flush=True)
    finally:
        d.stop()

    if a.json:
        with open(a.json, "w") as f:
            json.dump(results, f, indent=2)


if __name__ == "__main__":
    sys.exit(main())
