#!/usr/bin/env bash
# `status` of 1000 programs, side by side: corralctl -> corrald and supervisorctl ->
# supervisord 4.3.0 on the same generated config (programs not started, so the
# figure is the client plus getAllProcessInfo, not process churn).
#   bench/ctl_status.sh [N] [RUNS]        (needs .venv from scripts/test)
set -euo pipefail
cd "$(dirname "$0")/.."
n=${1:-1000}
runs=${2:-10}
venv=.venv
cargo build --release --quiet --bin corrald --bin corralctl
work=$(mktemp -d)
trap 'kill $cpid $spid 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$work"' EXIT

gen() { # $1 dir, $2 identifier
  printf '[supervisord]\nlogfile=%s/d.log\npidfile=%s/d.pid\nchildlogdir=%s\nnodaemon=true\nidentifier=%s\n' "$1" "$1" "$1" "$2"
  printf '[unix_http_server]\nfile=%s/s.sock\n[rpcinterface:supervisor]\nsupervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface\n' "$1"
  printf '[supervisorctl]\nserverurl=unix://%s/s.sock\n' "$1"
  for i in $(seq 0 $((n - 1))); do printf '[program:p%04d]\ncommand=sleep 1000\nautostart=false\n' "$i"; done
}
mkdir -p "$work/c" "$work/s"
gen "$work/c" "bench-ctl-$$" > "$work/c/c.conf"
gen "$work/s" "bench-sv-$$" > "$work/s/c.conf"
target/release/corrald -c "$work/c/c.conf" --dbus none >/dev/null 2>&1 & cpid=$!
$venv/bin/supervisord -c "$work/s/c.conf" >/dev/null 2>&1 & spid=$!
for sock in "$work/c/s.sock" "$work/s/s.sock"; do
  for _ in $(seq 200); do [ -S "$sock" ] && break; sleep 0.05; done
done
sleep 1

time_runs() { # label, command...
  local label=$1; shift
  local total=0 best=999999
  for _ in $(seq "$runs"); do
    local t0 t1 ms
    t0=$(date +%s%N); "$@" >/dev/null || true; t1=$(date +%s%N)
    ms=$(( (t1 - t0) / 1000000 )); total=$((total + ms)); [ $ms -lt $best ] && best=$ms
  done
  printf '| %-30s | %6d ms | %6d ms |\n' "$label" $((total / runs)) "$best"
}
echo "status of $n programs, $runs runs each, $(nproc) cores, $(uname -r)"
echo "| client -> server | mean | best |"
echo "|---|---|---|"
time_runs "corralctl -> corrald" target/release/corralctl -c "$work/c/c.conf" status
time_runs "supervisorctl -> corrald" $venv/bin/supervisorctl -c "$work/c/c.conf" status
time_runs "corralctl -> supervisord" target/release/corralctl -c "$work/s/c.conf" status
time_runs "supervisorctl -> supervisord" $venv/bin/supervisorctl -c "$work/s/c.conf" status
