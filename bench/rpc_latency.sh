#!/bin/sh
# getAllProcessInfo with 1000 programs: corrald against Python supervisord.
# Usage: bench/rpc_latency.sh [extra args for bench/rpc_latency.py]
# Needs a Python with supervisor installed: PYTHON (default /tmp/svvenv/bin/python).
set -e
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-/tmp/svvenv/bin/python}
cargo build --release --bin corrald
ulimit -n 8192 2>/dev/null || true
exec "$PYTHON" bench/rpc_latency.py --corrald target/release/corrald \
    --supervisord "$(dirname "$PYTHON")/supervisord" --out bench/results.json "$@"
