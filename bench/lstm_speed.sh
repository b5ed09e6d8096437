#!/usr/bin/env bash
# One training epoch of iPET's M_seq (BiLSTM(8) -> BiLSTM(8) -> concat extra -> Dense(128, tanh)
# -> Dropout(0.2) -> softmax), hush (burn Flex + hush's recurrent kernels) against PyTorch CPU:
# same shapes (WINDOWS windows of 40 slots x 4 features, 30 classes), Adam lr 1e-3, batch 128,
# 256 validation windows scored per epoch; on 1 thread and on 2. Median epoch of EPOCHS.
# ARCH=packet-lstm: hush's packet-metadata attack instead (LSTM(64) -> Dense(64, tanh), windows of
# 20 packets x 43 features, 27 classes, no extra scalar).
# Installs PyTorch CPU with pip if missing.
set -euo pipefail
cd "$(dirname "$0")/.."
WINDOWS=${WINDOWS:-20000}
EPOCHS=${EPOCHS:-5}
ARCH=${ARCH:-m-seq}
case "$ARCH" in
  m-seq) SHAPE="40 4 30"; NAME=lstm_speed ;;
  packet-lstm) SHAPE="20 43 27"; NAME=lstm_speed_packet ;;
  *) echo "ARCH must be m-seq or packet-lstm" >&2; exit 2 ;;
esac
OUT=${OUT:-bench/runs/$(date +%F)-2core-epyc}
mkdir -p "$OUT"
python3 -c "import torch" 2>/dev/null ||
  pip install --quiet torch --index-url https://download.pytorch.org/whl/cpu
cargo build --release -q -p hush-benches --bin lstm_bench
{
  echo "\$ ARCH=$ARCH bench/lstm_speed.sh   # $(date -u +%FT%TZ), hush $(git rev-parse --short HEAD), $(nproc) cores, $WINDOWS windows"
  for threads in 1 2; do
    # shellcheck disable=SC2086 # SHAPE is three numbers
    ARCH=$ARCH RAYON_NUM_THREADS=$threads target/release/lstm_bench "$WINDOWS" $SHAPE "$EPOCHS"
    # shellcheck disable=SC2086
    python3 bench/lstm_torch.py "$WINDOWS" $SHAPE "$EPOCHS" "$threads" "$ARCH"
  done
} | tee "$OUT/$NAME.txt"
python3 - "$OUT/$NAME.txt" <<'PY'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.startswith("{")]
for t in (1, 2):
    med = lambda tool: statistics.median(r["seconds"] for r in rows if r["threads"] == t and (r["tool"] == "hush") == tool)
    h, p = med(True), med(False)
    torch = next(r["tool"] for r in rows if r["tool"] != "hush")
    print(f"{t} thread(s): epoch hush {h:.2f} s vs {torch} {p:.2f} s: hush takes {h/p:.2f}x PyTorch's time "
          f"(goal <= 1.5x: {'met' if h / p <= 1.5 else 'NOT met'})")
PY
