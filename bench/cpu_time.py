#!/usr/bin/env python3
"""corrald's own CPU time for launch, getAllProcessInfo and crash -> RUNNING.

Wall times on a shared machine move with other load; the daemon's on-CPU time
(nanoseconds from /proc/PID/task/*/schedstat, summed over its threads) does not,
so before/after comparisons of a change use this.

Run:  .venv/bin/python bench/cpu_time.py [--binary target/release/corrald] [--programs 1000]
"""
import argparse
import os
import signal
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import footprint as fp  # noqa: E402

def cpu_ns(pid):
    t = 0
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{tid}/schedstat") as f:
                t += int(f.read().split()[0])
        except OSError:
            pass
    return t

ap = argparse.ArgumentParser()
ap.add_argument("--binary", default=os.path.join(fp.ROOT, "target/release/corrald"))
ap.add_argument("--programs", type=int, default=1000)
ap.add_argument("--calls", type=int, default=100)
ap.add_argument("--kills", type=int, default=30)
a = ap.parse_args()

def children(pid):
    out = []
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{tid}/children") as f:
                out += f.read().split()
        except OSError:
            pass
    return out


d = fp.Daemon(a.binary, a.programs)
try:
    # Poll /proc, not the daemon: an RPC poll loop would be most of the CPU measured.
    while len(children(d.pid)) < a.programs:
        time.sleep(0.01)
    launch = cpu_ns(d.pid)
    kids = sum(cpu_ns(int(c)) for c in children(d.pid))
    up = d.wait_all_running(a.programs)
    time.sleep(1)
    rss, pss = d.memory_kib()
    nfd = len(os.listdir(f"/proc/{d.pid}/fd"))
    c0 = cpu_ns(d.pid); lat = []
    for _ in range(a.calls):
        t0 = time.perf_counter(); d.rpc.supervisor.getAllProcessInfo(); lat.append((time.perf_counter() - t0) * 1000)
    c1 = cpu_ns(d.pid)
    print(f"{a.programs} programs: launch wall {up:.2f} s, daemon CPU to all spawned {launch/1e6:.0f} ms (+ children before exec {kids/1e6:.0f} ms); RSS {rss} KiB PSS {pss}; fds {nfd}; "
          f"getAllProcessInfo daemon CPU {(c1-c0)/a.calls/1e6:.2f} ms/call, wall median {statistics.median(lat):.2f} ms", flush=True)
finally:
    d.stop()
d = fp.Daemon(a.binary, 0, "[program:crash]\ncommand=sleep 1000000\nstartsecs=0\nautorestart=true\n")
try:
    d.wait_all_running(1)
    times = []; cpu = []
    for _ in range(a.kills):
        old = d.rpc.supervisor.getProcessInfo("crash")["pid"]
        c0 = cpu_ns(d.pid); t0 = time.perf_counter()
        os.kill(old, signal.SIGKILL)
        while True:
            i = d.rpc.supervisor.getProcessInfo("crash")
            if i["pid"] not in (0, old) and i["statename"] == "RUNNING":
                break
        times.append((time.perf_counter() - t0) * 1000.0); cpu.append((cpu_ns(d.pid) - c0) / 1e6)
    print(f"SIGKILL -> RUNNING: wall median {statistics.median(times):.2f} ms; daemon CPU median {statistics.median(cpu):.2f} ms (incl. polling RPCs)", flush=True)
finally:
    d.stop()
