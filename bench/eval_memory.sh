#!/usr/bin/env bash
# Issue 13's memory goal, measured: peak resident memory and wall time of `hush eval` on
#   1. the full IoT Sentinel matrix of bench/eval_matrix.sh (27 types, 17 defenses, the three
#      forests and two networks, EPOCHS=5, MAX_TRAIN_WINDOWS=32), both observation views;
#   2. a 15-device, 24-hour whole-home capture built from IoT Sentinel by the make_home example
#      (--hours 24 --events 480, seed 0), cut into a trace per device and minute, with eval's
#      default defenses and attacks, both views.
# BASE=path/to/an/older/hush (one from before the views, which sees sessions only) also runs (1)
# with --observation session and with BASE in the same run, prints new/base ratios and checks
# that the session rows are identical. The goal is a peak under 2 GB for both runs.
# SKIP_MATRIX=1 or SKIP_HOME=1 leave a run out. Raw output:
# bench/runs/<date>-<cores>core-<cpu>/eval_memory.txt (or $OUT).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
DATA=${HUSH_DATA:-$root/../shared/data}
EPOCHS=${EPOCHS:-5}
MAX_TRAIN_WINDOWS=${MAX_TRAIN_WINDOWS:-32}
cpu_tag="$(grep -m1 'model name' /proc/cpuinfo | awk '{print tolower($NF)}')"
out="${OUT:-$root/bench/runs/$(date +%F)-$(nproc)core-${cpu_tag:-cpu}/eval_memory.txt}"
mkdir -p "$(dirname "$out")"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cargo build --release -q -p hush-cli --bin hush
cargo build --release -q -p hush-trace --example make_home
hush="$root/target/release/hush"

exec > >(tee "$out") 2>&1
echo "\$ bench/eval_memory.sh   # $(date -u +%FT%TZ), hush $(git rev-parse --short HEAD), EPOCHS=$EPOCHS MAX_TRAIN_WINDOWS=$MAX_TRAIN_WINDOWS${BASE:+, BASE=$BASE}"
echo "== machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)," \
    "$(free -g | awk '/Mem:/{print $2}') GB, load average $(cut -d' ' -f1-3 /proc/loadavg)"

# Runs "$@" under GNU time; prints "<label>: W s wall, R MB peak RSS" and keeps both numbers.
measure() {
    local label=$1
    shift
    /usr/bin/time -f "%e %M" -o "$tmp/time" "$@" >"$tmp/stdout" 2>"$tmp/stderr" || {
        echo "$label: failed"
        tail -5 "$tmp/stderr"
        return 1
    }
    read -r wall_s rss_kb <"$tmp/time"
    rss_mb=$((rss_kb / 1024))
    printf '%-44s %8.1f s wall %8d MB peak RSS\n' "$label" "$wall_s" "$rss_mb"
}

DEFENSES=none,pad-mtu,pad-pow2,random-pad,ilp-constant,ilp-random,buflo,tamaraw,front,stp,ipet-constant,ipet-random,ipet-random-plus,maybenot-front,regulator,interspace,break-pad
ATTACKS=iot-sentinel,flow-stats,m-agg,m-seq,packet-lstm
matrix=(eval --data "$DATA/iot-sentinel" --types --defenses "$DEFENSES" --attacks "$ATTACKS"
    --epochs "$EPOCHS" --max-train-windows "$MAX_TRAIN_WINDOWS" --no-cache)

if [ -z "${SKIP_MATRIX:-}" ]; then
    measure "IoT Sentinel matrix, session+window" "$hush" "${matrix[@]}" -o "$tmp/new"
    new_wall=$wall_s new_rss=$rss_mb
    cut -d, -f2 "$tmp/new/results.csv" | tail -n +2 | sort | uniq -c | sed 's/^/    rows: /'
    if [ -n "${BASE:-}" ]; then
        measure "IoT Sentinel matrix, session only" "$hush" "${matrix[@]}" --observation session \
            -o "$tmp/new-session"
        ses_wall=$wall_s ses_rss=$rss_mb
        measure "IoT Sentinel matrix, session, BASE" "$BASE" "${matrix[@]}" -o "$tmp/base"
        awk -v a="$ses_wall" -v b="$wall_s" -v c="$ses_rss" -v d="$rss_mb" \
            'BEGIN { printf "    session only, new/base: wall %.2f, peak RSS %.2f\n", a / b, c / d }'
        # The session view must reproduce the older binary's rows exactly.
        if python3 - "$tmp/new-session/results.csv" "$tmp/base/results.csv" <<'PY'; then
import csv, sys
new = list(csv.DictReader(open(sys.argv[1])))
base = list(csv.DictReader(open(sys.argv[2])))
cols = [c for c in base[0] if c in new[0]]
same = len(new) == len(base) and all(
    [n[c] for c in cols] == [b[c] for c in cols] for n, b in zip(new, base))
print(f"    session rows identical to BASE: {same} ({len(new)} vs {len(base)} rows)")
sys.exit(0 if same else 1)
PY
            :
        fi
    fi
fi

if [ -z "${SKIP_HOME:-}" ]; then
    target/release/examples/make_home "$tmp/home.pcap" --devices 15 --hours 24 --events 480 \
        --from "$DATA/iot-sentinel" >/dev/null
    echo "    whole home: $(du -m "$tmp/home.pcap" | cut -f1) MB pcap," \
        "$(($(wc -l <"$tmp/home-devices.csv") - 1)) devices"
    measure "whole home 15 devices x 24 h, session+window" "$hush" eval --data "$tmp/home.pcap" \
        --devices "$tmp/home-devices.csv" --no-cache -o "$tmp/home"
    grep -m1 "traces\|windows" "$tmp/stderr" | sed 's/^/    /' || true
fi
