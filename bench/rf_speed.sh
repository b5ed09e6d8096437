#!/usr/bin/env bash
# Random forest fit + predict, hush against scikit-learn, on the IoT Sentinel flow-feature matrix:
# same CSV, same split (fold 0 of 5 by capture tests), 100 trees, Gini, sqrt features, bootstrap;
# on 1 thread and on 2. Needs the shared data; installs scikit-learn with pip if missing.
set -euo pipefail
cd "$(dirname "$0")/.."
DATA=${HUSH_DATA:-../shared/data}/iot-sentinel
REPEAT=${REPEAT:-20}
OUT=bench/runs/$(date +%F)-2core-epyc
mkdir -p "$OUT"
python3 -c "import sklearn" 2>/dev/null || pip install --quiet scikit-learn
cargo build --release -q -p hush-cli -p hush-benches --bin hush --bin rf_bench
CSV=$(mktemp --suffix=.csv)
trap 'rm -f "$CSV"' EXIT
target/release/hush attack features -a flow-stats --data "$DATA" --types -o "$CSV"
{
  echo "\$ bench/rf_speed.sh   # $(date -u +%FT%TZ), hush $(git rev-parse --short HEAD), $(nproc) cores"
  for threads in 1 2; do
    RAYON_NUM_THREADS=$threads target/release/rf_bench "$CSV" "$REPEAT" 0 100
    python3 bench/rf_sklearn.py "$CSV" "$REPEAT" 0 100 "$threads"
  done
} | tee "$OUT/rf_speed.txt"
python3 - "$OUT/rf_speed.txt" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.startswith("{")]
for t in (1, 2):
    h = next(r for r in rows if r["tool"] == "hush" and r["threads"] == t)
    s = next(r for r in rows if r["tool"] != "hush" and r["threads"] == t)
    print(f"{t} thread(s): fit hush {h['fit_s']*1e3:.1f} ms vs {s['tool']} {s['fit_s']*1e3:.1f} ms ({s['fit_s']/h['fit_s']:.2f}x); "
          f"predict {h['predict_s']*1e3:.2f} vs {s['predict_s']*1e3:.2f} ms ({s['predict_s']/h['predict_s']:.2f}x); "
          f"accuracy {100*h['accuracy']:.1f}% vs {100*s['accuracy']:.1f}%")
PY
