#!/usr/bin/env bash
# The full IoT Sentinel bench matrix, timed: every catalog defense at its defaults (all but
# `maybenot`, which needs machines to be given) x every device attack (the forests and the two
# networks; image-cnn needs hours-long traces and is left out), one seed, 5 folds, adaptive and
# non-adaptive attackers. Prints the wall time and each stage's share (timing.json).
# EPOCHS caps the networks' epochs (default 5) and MAX_TRAIN_WINDOWS the training windows per capture
# (default 32: BuFLO and Tamaraw multiply packets, and packet windows with them); together they keep
# the run under 10 minutes on 2 cores.
set -euo pipefail
cd "$(dirname "$0")/.."
DATA=${HUSH_DATA:-../shared/data}/iot-sentinel
EPOCHS=${EPOCHS:-5}
MAX_TRAIN_WINDOWS=${MAX_TRAIN_WINDOWS:-32}
OUT=${OUT:-bench/runs/$(date +%F)-2core-epyc}
RES=$(mktemp -d)
trap 'rm -rf "$RES"' EXIT
mkdir -p "$OUT"
cargo build --release -q -p hush-cli --bin hush
DEFENSES=none,pad-mtu,pad-pow2,random-pad,ilp-constant,ilp-random,buflo,tamaraw,front,stp,ipet-constant,ipet-random,ipet-random-plus,maybenot-front,regulator,interspace,break-pad
ATTACKS=iot-sentinel,flow-stats,m-agg,m-seq,packet-lstm
{
  echo "\$ bench/eval_matrix.sh   # $(date -u +%FT%TZ), hush $(git rev-parse --short HEAD), $(nproc) cores, EPOCHS=$EPOCHS MAX_TRAIN_WINDOWS=$MAX_TRAIN_WINDOWS"
  /usr/bin/time -f "%e s wall, %M KB max RSS" target/release/hush eval --data "$DATA" --types \
    --defenses "$DEFENSES" --attacks "$ATTACKS" --epochs "$EPOCHS" --max-train-windows "$MAX_TRAIN_WINDOWS" --no-cache -o "$RES" 2>&1
  cat "$RES/timing.json"
  echo
} | tee "$OUT/eval_matrix.txt"
cp "$RES/results.csv" "$OUT/eval_matrix_results.csv"
