#!/usr/bin/env bash
# Load test of `loopcast serve` on this machine (docs/PERFORMANCE.md): p50/p99 latency and
# series/s of the standard request (examples/requests/forecast.json) at concurrency 1, 16
# and 64, with dynamic batching on (default: under load, wait up to 5 ms for more), on
# without the wait, and off (`--no-batching`), and the cost of one
# what-if with K = 1, 8, 64 plans against K forecasts. Servers run one at a time on
# 127.0.0.1; nothing else should load the machine meanwhile.
#
#   bash scripts/loadtest.sh [SECONDS_PER_POINT]      (default 10)
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-10}
port=${LOOPCAST_LOADTEST_PORT:-18080}
# shellcheck source=scripts/local-server.sh
source scripts/local-server.sh

machine
printf '[batching]\nmax_wait_ms = 0\n' > "$data/no-wait.toml"
for batching in on on-no-wait off; do
    case $batching in
        on) start_server ;;
        on-no-wait) start_server --config "$data/no-wait.toml" ;;
        off) start_server --no-batching ;;
    esac
    for concurrency in 1 16 64; do
        "$load" load "$url" "$concurrency" "$seconds" | sed "s/^{/{\"batching\":\"$batching\",/"
    done
    stop_server
done
start_server
"$load" whatif "$url" 1,8,64
stop_server
