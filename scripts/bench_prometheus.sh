#!/usr/bin/env bash
# Issue #31's read benchmark: a week of 5-minute data for 100 series × 4 channels put into
# a real Prometheus (promtool's OpenMetrics import), then read through loopcast and as raw
# HTTP in the same run. Needs prometheus and promtool (Debian: prometheus) and python3.
set -euo pipefail
cd "$(dirname "$0")/.."
work=$(mktemp -d)
trap 'kill "${server:-0}" 2>/dev/null || true; rm -rf "$work"' EXIT
end=$(( $(date +%s) / 300 * 300 - 300 ))
python3 - "$work/history.om" "$end" <<'PY'
import math, random, sys
path, end = sys.argv[1], int(sys.argv[2])
steps, random = 7 * 288, random.Random(1)
with open(path, "w") as out:
    for metric in ["svc_rps", "svc_cpu", "svc_latency_ms", "svc_errors"]:
        out.write(f"# TYPE {metric} gauge\n")
        for s in range(100):
            level = 10 + 10 * s
            for i in range(steps):
                value = level * (1 + 0.5 * math.sin(2 * math.pi * (i % 288) / 288)) * (1 + 0.05 * random.gauss(0, 1))
                out.write(f'{metric}{{service="svc{s:03d}"}} {value:.4f} {end - (steps - 1 - i) * 300}\n')
    out.write("# EOF\n")
PY
promtool tsdb create-blocks-from openmetrics "$work/history.om" "$work/data" >/dev/null
printf 'global:\n  scrape_interval: 1h\nscrape_configs: []\n' > "$work/prometheus.yml"
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
prometheus --config.file="$work/prometheus.yml" --storage.tsdb.path="$work/data" \
    --web.listen-address="127.0.0.1:$port" >"$work/prometheus.log" 2>&1 &
server=$!
until curl -sf "http://127.0.0.1:$port/-/ready" >/dev/null; do sleep 0.2; done
cargo run --release --locked --example read_bench -- "http://127.0.0.1:$port" 7d 5m \
    "$(date -u -d "@$end" +%Y-%m-%dT%H:%M:%SZ)" \
    rps=svc_rps cpu=svc_cpu latency=svc_latency_ms errors=svc_errors
