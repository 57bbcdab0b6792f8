# Sourced by the scripts that put `loopcast serve` under load (loadtest.sh, soak.sh), run
# from the repository root with `port` set: builds the workspace once (the same feature
# set as the tests, so nothing rebuilds), and defines `url`, `bin`, `load` (the load
# example), a scratch data directory removed on exit, `start_server [ARGS…]` (waits for
# /ready), `stop_server` and `machine` (a line naming the date, cores and CPU).
url="http://127.0.0.1:$port"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-target}"
cargo build --release --workspace --all-targets --quiet
bin="$CARGO_TARGET_DIR/release/loopcast"
load="$CARGO_TARGET_DIR/release/examples/load"
data=$(mktemp -d)
trap 'kill "${server:-}" 2>/dev/null || true; rm -rf "$data"' EXIT

start_server() {
    "$bin" serve --listen "127.0.0.1:$port" --data-dir "$data" "$@" 2>/dev/null &
    server=$!
    for _ in $(seq 1 200); do
        curl -fsS "$url/ready" >/dev/null 2>&1 && return 0
        sleep 0.05
    done
    echo "the server did not become ready" >&2
    exit 1
}

stop_server() {
    kill "$server"
    wait "$server" 2>/dev/null || true
}

machine() {
    echo "# $(date -u +%FT%TZ) on $(nproc) cores: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
}
