#!/usr/bin/env bash
# Memory under load (docs/PERFORMANCE.md, "Soak"): `loopcast serve` on 127.0.0.1 takes
# mixed forecasts, what-ifs and plans (the example requests, 7 : 2 : 1) from 64 clients in
# a closed loop for 10 minutes, its resident memory sampled every 10 s. The summary's
# `growth` is the highest sample after the first 2 minutes over the first sample after
# them, less one (target: at most 0.10). Nothing else should load the machine meanwhile.
#
#   bash scripts/soak.sh [SECONDS] [CONCURRENCY]      (default 600 64)
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-600}
concurrency=${2:-64}
port=${LOOPCAST_SOAK_PORT:-18081}
url="http://127.0.0.1:$port"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-target}"
# One build of everything (the same feature set as the tests, so nothing rebuilds).
cargo build --release --workspace --all-targets --quiet
bin="$CARGO_TARGET_DIR/release/loopcast"
load="$CARGO_TARGET_DIR/release/examples/load"
data=$(mktemp -d)
trap 'kill "${server:-}" 2>/dev/null || true; rm -rf "$data"' EXIT
"$bin" serve --listen "127.0.0.1:$port" --data-dir "$data" 2>/dev/null &
server=$!
for _ in $(seq 1 200); do
    curl -fsS "$url/ready" >/dev/null 2>&1 && break
    sleep 0.05
done
curl -fsS "$url/ready" >/dev/null
echo "# $(date -u +%FT%TZ) on $(nproc) cores: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
"$load" soak "$url" "$concurrency" "$seconds" "$server"
curl -fsS "$url/metrics" | grep -E '^loopcast_(requests|queue)' | head -20 || true
