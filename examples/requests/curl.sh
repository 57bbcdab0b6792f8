#!/usr/bin/env bash
# Every endpoint of a running `loopcast serve`, with curl. Start the server first:
#   cargo run --release -p loopcast-cli -- serve
# then run this script (LOOPCAST_URL and LOOPCAST_API_KEY are read when set).
set -euo pipefail
cd "$(dirname "$0")"
url=${LOOPCAST_URL:-http://127.0.0.1:8080}
auth=()
[[ -n ${LOOPCAST_API_KEY:-} ]] && auth=(-H "Authorization: Bearer $LOOPCAST_API_KEY")
json=(-H 'content-type: application/json')

echo '# GET /health (never needs a token)'
curl -fsS "$url/health"; echo
echo '# GET /ready'
curl -fsS "${auth[@]}" "$url/ready"; echo
echo '# GET /v1/models'
curl -fsS "${auth[@]}" "$url/v1/models"; echo
echo '# POST /v1/forecast: two services, 48 steps of 5 min, three quantiles'
curl -fsS "${auth[@]}" "${json[@]}" -d @forecast.json "$url/v1/forecast" | head -c 600; echo ' …'
echo '# POST /v1/whatif: hold, scale in, scale out; differences against "hold"'
curl -fsS "${auth[@]}" "${json[@]}" -d @whatif.json "$url/v1/whatif" | head -c 600; echo ' …'
echo '# POST /v1/plan: the cheapest replica schedule (changes every 80 min) keeping p95 latency q0.9 <= 250 ms'
curl -fsS "${auth[@]}" "${json[@]}" -d @plan.json "$url/v1/plan" | head -c 600; echo ' …'
echo '# PUT /v1/files/{name}, then POST /v1/jobs: score a Parquet file; poll; download the output'
curl -fsS "${auth[@]}" -X PUT --data-binary @../data/services_long.parquet "$url/v1/files/services_long.parquet"; echo
job=$(curl -fsS "${auth[@]}" "${json[@]}" -d @job.json "$url/v1/jobs")
id=$(echo "$job" | sed -E 's/.*"id":"([^"]+)".*/\1/')
for _ in $(seq 1 600); do
    state=$(curl -fsS "${auth[@]}" "$url/v1/jobs/$id" | sed -E 's/.*"state":"([a-z]+)".*/\1/')
    [[ $state == queued || $state == running ]] || break
    sleep 0.2
done
echo "job $id: $state"
curl -fsS "${auth[@]}" -o "${TMPDIR:-/tmp}/loopcast-scores.parquet" "$url/v1/jobs/$id/output"
echo "output: ${TMPDIR:-/tmp}/loopcast-scores.parquet ($(wc -c < "${TMPDIR:-/tmp}/loopcast-scores.parquet") bytes)"
echo '# GET /v1/jobs'
curl -fsS "${auth[@]}" "$url/v1/jobs" | head -c 300; echo ' …'
echo '# DELETE /v1/jobs/{id} cancels a queued or running job; this one has ended: 409'
curl -sS "${auth[@]}" -X DELETE "$url/v1/jobs/$id"; echo
echo '# A bad request: the problem names the field'
curl -sS "${auth[@]}" "${json[@]}" -d '{"series": [], "horizon": 0}' "$url/v1/forecast"; echo
echo '# GET /metrics (Prometheus)'
curl -fsS "${auth[@]}" "$url/metrics" | grep -E '^loopcast_(http_requests_total|batch_windows_count)' | head -5
echo '# GET /openapi.json'
curl -fsS "${auth[@]}" "$url/openapi.json" | head -c 300; echo ' …'
