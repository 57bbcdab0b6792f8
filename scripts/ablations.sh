#!/usr/bin/env bash
# Trains every ablation in configs/ablations/ with the same budget and prints the table
# of docs/experiments/ablations-shipped-recipe.md from their held-out scores (runs/ablations/<name>/summary.json).
# Resumable: an interrupted ablation continues from its last checkpoint when re-run.
set -euo pipefail
cd "$(dirname "$0")/.."
# LOOPCAST_BIN: an already built `loopcast` to use instead of building one here.
bin=${LOOPCAST_BIN:-}
if [[ -z $bin ]]; then
    cargo build --release -p loopcast-cli
    bin=./target/release/loopcast
fi
for config in configs/ablations/*.toml; do
    name=$(basename "$config" .toml)
    out=runs/ablations/$name
    if [[ -f $out/summary.json ]]; then
        continue
    fi
    resume=()
    [[ -f $out/checkpoints/LATEST ]] && resume=(--resume)
    "$bin" train --config "$config" --out "$out" "${resume[@]}"
done
# Scores as written at the end of each run (held-out evaluation seeds); re-score any
# model with: cargo run --release -p loopcast-train --example evaluate -- DIR
python3 - <<'PY'
import json, pathlib
rows = []
for path in sorted(pathlib.Path("runs/ablations").glob("*/summary.json")):
    e = json.loads(path.read_text())["evaluation"]
    rows.append((path.parent.name, e))
print("| ablation | rel. MASE | rel. WQL | 80% coverage | mean loops | WQL vs R_max | effect error | sign accuracy |")
print("|---|---|---|---|---|---|---|---|")
for name, e in rows:
    print(f"| {name} | {e['relative_mase']:.3f} | {e['relative_wql']:.3f} | {e['coverage_80']:.3f} | "
          f"{e['mean_loops']:.2f} | {e['wql_vs_max_loops']:.3f} | {e['effect_error']:.3f} | {e['effect_sign_accuracy']:.3f} |")
PY
