#!/usr/bin/env bash
# One training epoch of iPET's M_seq (BiLSTM(8) -> BiLSTM(8) -> concat extra -> Dense(128, tanh)
# -> Dropout(0.2) -> softmax), hush (burn Flex + hush's recurrent kernels) against PyTorch CPU:
# same shapes (WINDOWS windows of 40 slots x 4 features, 30 classes), Adam lr 1e-3, batch 128,
# 256 validation windows scored per epoch; on 1 thread and on 2. Median epoch of EPOCHS.
# Installs PyTorch CPU with pip if missing.
set -euo pipefail
cd "$(dirname "$0")/.."
WINDOWS=${WINDOWS:-20000}
EPOCHS=${EPOCHS:-5}
OUT=bench/runs/$(date +%F)-2core-epyc
mkdir -p "$OUT"
python3 -c "import torch" 2>/dev/null ||
  pip install --quiet torch --index-url https://download.pytorch.org/whl/cpu
cargo build --release -q -p hush-benches --bin lstm_bench
{
  echo "\$ bench/lstm_speed.sh   # $(date -u +%FT%TZ), hush $(git rev-parse --short HEAD), $(nproc) cores, $WINDOWS windows"
  for threads in 1 2; do
    RAYON_NUM_THREADS=$threads target/release/lstm_bench "$WINDOWS" 40 4 30 "$EPOCHS"
    python3 bench/lstm_torch.py "$WINDOWS" 40 4 30 "$EPOCHS" "$threads"
  done
} | tee "$OUT/lstm_speed.txt"
python3 - "$OUT/lstm_speed.txt" <<'PY'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.startswith("{")]
for t in (1, 2):
    med = lambda tool: statistics.median(r["seconds"] for r in rows if r["threads"] == t and (r["tool"] == "hush") == tool)
    h, p = med(True), med(False)
    torch = next(r["tool"] for r in rows if r["tool"] != "hush")
    print(f"{t} thread(s): epoch hush {h:.2f} s vs {torch} {p:.2f} s: hush takes {h/p:.2f}x PyTorch's time "
          f"(goal <= 1.5x: {'met' if h / p <= 1.5 else 'NOT met'})")
PY
