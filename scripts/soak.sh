#!/usr/bin/env bash
# Memory under load (docs/PERFORMANCE.md, "Memory under load"): `loopcast serve` on 127.0.0.1 takes
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
# shellcheck source=scripts/local-server.sh
source scripts/local-server.sh

start_server
machine
"$load" soak "$url" "$concurrency" "$seconds" "$server"
curl -fsS "$url/metrics" | grep -E '^loopcast_(requests|queue)' | head -20 || true
stop_server
