#!/usr/bin/env bash
# Reproduces the shipped model, models/loopcast-small (its model card says how it was
# made): the weights it was trained from (the model shipped before it, trained by
# configs/train-small.toml on calendar seasons) are taken from git history, trained 1,500
# more steps by configs/train-small-seasons.toml (found seasons; the relative action path
# dropped and solved again), and their effect intervals calibrated. About 10 minutes on
# 2 cores once built. The runs are deterministic on a given platform; on another CPU they
# give a model of the same recipe, not bit for bit the same weights.
#
#   bash scripts/train-shipped.sh [OUT]     # default runs/shipped; the model in OUT/model
set -euo pipefail
cd "$(dirname "$0")/.."

# The commit whose models/loopcast-small the shipped weights were trained from.
START_COMMIT=098b01d
OUT="${1:-runs/shipped}"

if [ -e "$OUT" ]; then
    echo "error: $OUT exists; remove it or name another directory" >&2
    exit 1
fi
if ! git cat-file -e "$START_COMMIT:models/loopcast-small/weights.bpk" 2>/dev/null; then
    echo "error: commit $START_COMMIT is not in this clone (a shallow clone?); fetch the full history" >&2
    exit 1
fi
mkdir -p "$OUT/start"
git show "$START_COMMIT:models/loopcast-small/config.json" > "$OUT/start/config.json"
git show "$START_COMMIT:models/loopcast-small/weights.bpk" > "$OUT/start/weights.bpk"

cargo build --release --locked -p loopcast-cli
loopcast=${CARGO_TARGET_DIR:-target}/release/loopcast
"$loopcast" train --config configs/train-small-seasons.toml --init "$OUT/start" --out "$OUT/run"
"$loopcast" calibrate --model "$OUT/run/model" --out "$OUT/model"
cp "$OUT/run/summary.json" "$OUT/model/summary.json"
echo "the model is in $OUT/model; compare: cmp $OUT/model/weights.bpk models/loopcast-small/weights.bpk"
