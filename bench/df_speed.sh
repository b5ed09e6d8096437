#!/usr/bin/env bash
# Deep Fingerprinting's training speed, hush (burn Flex) against PyTorch CPU, on IoT Sentinel:
# the DF rows of the 550 captures (27 types; the first LENGTH packet directions of each, as
# `hush attack features -a df:length=LENGTH` writes them), fold 0 of 5 by capture validating and
# the rest training; the published network and schedule (Adamax 0.002, batch 128); EPOCHS epochs
# on 1 thread and on 2, the median epoch (training plus scoring the validation rows) compared.
# Peak memory of each run is reported too (GNU time).
# Installs PyTorch CPU with pip if missing (the CPU index first, then PyPI's wheel).
set -euo pipefail
cd "$(dirname "$0")/.."
DATA=${DATA:-../shared/data/iot-sentinel}
LENGTH=${LENGTH:-5000}
EPOCHS=${EPOCHS:-3}
OUT=${OUT:-bench/runs/$(date +%F)-2core-epyc}
mkdir -p "$OUT"
python3 -c "import torch" 2>/dev/null ||
  pip install --quiet torch --index-url https://download.pytorch.org/whl/cpu ||
  pip install --quiet torch
cargo build --release -q -p hush-cli
cargo build --release -q -p hush-ml --features neural --example df_bench
ROWS=$(mktemp --suffix=.csv)
trap 'rm -f "$ROWS"' EXIT
target/release/hush attack features -a "df:length=$LENGTH" --data "$DATA" --types -o "$ROWS"
TIME=/usr/bin/time
{
  echo "\$ LENGTH=$LENGTH EPOCHS=$EPOCHS bench/df_speed.sh   # $(date -u +%FT%TZ), hush $(git rev-parse --short HEAD), $(nproc) cores"
  for threads in 1 2; do
    RAYON_NUM_THREADS=$threads $TIME -f '{"peak_rss_kb":%M,"tool":"hush","threads":'"$threads"'}' \
      target/release/examples/df_bench "$ROWS" "$EPOCHS" 2>&1
    $TIME -f '{"peak_rss_kb":%M,"tool":"pytorch","threads":'"$threads"'}' \
      python3 bench/df_torch.py "$ROWS" "$EPOCHS" "$threads" 2>&1
  done
} | tee "$OUT/df_speed.txt"
python3 - "$OUT/df_speed.txt" <<'PY'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.startswith("{")]
epochs = [r for r in rows if "epoch" in r]
for t in (1, 2):
    med = lambda hush: statistics.median(r["seconds"] for r in epochs
                                         if r["threads"] == t and (r["tool"] == "hush") == hush)
    h, p = med(True), med(False)
    mem = {("hush" if r["tool"] == "hush" else "pytorch"): r["peak_rss_kb"] / 1024
           for r in rows if "peak_rss_kb" in r and r["threads"] == t}
    print(f"{t} thread(s): epoch hush {h:.2f} s vs PyTorch {p:.2f} s: hush takes {h / p:.2f}x "
          f"PyTorch's time (goal <= 1.5x: {'met' if h / p <= 1.5 else 'NOT met'}); peak memory "
          f"hush {mem.get('hush', 0):.0f} MiB, PyTorch {mem.get('pytorch', 0):.0f} MiB")
PY
