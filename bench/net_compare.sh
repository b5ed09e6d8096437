#!/usr/bin/env bash
# The live tunnel before and after a change, in one run on one machine: builds net_bench at BASE
# (a git revision, default `main`) into target/bench-base/ and at the working tree, then runs
# `net_bench throughput` (unshaped schedule, tokio and blocking APIs, and the plain tokio TCP copy
# as the ceiling) alternately, ROUNDS (5) rounds of one run each, base first then new, and prints
# each variant's median Gbit/s for base and new and the ratio new / base. The goal of issue 15:
# new / base >= 0.90. Then the scheduling jitter of the new build (`net_bench timers`, 100 tunnels,
# constant and exponential gaps, MEASURE_S (30) s each), the README's lateness figures.
#
# Raw output: bench/runs/<date>-<cores>core-<cpu>/net_compare.txt (or $OUT). THROUGHPUT_BYTES
# (1e9) / THROUGHPUT_S (5) per run. QUICK=1 for a smoke test (one round, 3 s timers, output to a
# temporary file). Takes about 8 minutes after the builds.
# Usage: [BASE=main] bench/net_compare.sh
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
base_rev="${BASE:-main}"
if [ "${QUICK:-0}" = 1 ]; then
    rounds=1 bytes=200000000 tput_s=2 measure_s=3 warmup_s=1
    default_out="$(mktemp -t net_compare.XXXXXX.txt)"
else
    rounds="${ROUNDS:-5}" bytes="${THROUGHPUT_BYTES:-1000000000}" tput_s="${THROUGHPUT_S:-5}"
    measure_s="${MEASURE_S:-30}" warmup_s=2
    cpu_tag="$(grep -m1 'model name' /proc/cpuinfo | awk '{print tolower($NF)}')"
    default_out="$root/bench/runs/$(date +%F)-$(nproc)core-${cpu_tag:-cpu}/net_compare.txt"
fi
out="${OUT:-$default_out}"
mkdir -p "$(dirname "$out")"

# Build both first, so no build competes with a measurement.
base_src="$root/target/bench-base/src"
rm -rf "$base_src" && mkdir -p "$base_src"
git -C "$root" archive "$base_rev" | tar -x -C "$base_src"
(cd "$base_src" && CARGO_TARGET_DIR="$root/target/bench-base/target" \
    cargo build --quiet --release -p hush-benches --bin net_bench)
(cd "$root" && cargo build --quiet --release -p hush-benches --bin net_bench)
base_bin="$root/target/bench-base/target/release/net_bench"
new_bin="$root/target/release/net_bench"

exec > >(tee "$out") 2>&1
rev="$(git -C "$root" rev-parse --short HEAD)"
git -C "$root" diff --quiet HEAD -- crates benches || rev="$rev+uncommitted"
echo "\$ bench/net_compare.sh   # $(date -u +%FT%TZ)"
echo "== machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)," \
    "$(uname -sr); the machine may be shared: load before each part"
echo "== base: $base_rev ($(git -C "$root" rev-parse --short "$base_rev")), new: $rev, $(rustc --version)"
load() { echo "== load average: $(cut -d' ' -f1-3 /proc/loadavg)"; }

json="$(mktemp)"
for round in $(seq "$rounds"); do
    for which in base new; do
        bin="$base_bin"; [ "$which" = new ] && bin="$new_bin"
        echo
        echo "== round $round/$rounds: $which"
        load
        "$bin" throughput --bytes "$bytes" --seconds "$tput_s" --repeat 1 |
            tee /dev/stderr | grep '^{"bench": *"throughput"' | sed "s/^/$which /" >>"$json" || true
    done
done 2>&1

echo
echo "== throughput, median Gbit/s over $rounds rounds (new / base: the goal is >= 0.90)"
python3 - "$json" <<'PY'
import json, statistics, sys
runs = {}
for line in open(sys.argv[1]):
    which, _, rest = line.partition(" ")
    r = json.loads(rest)
    if r.get("bench") != "throughput":
        continue
    runs.setdefault((r["variant"], which), []).append(r["gbit_s"])
for variant in sorted({v for v, _ in runs}):
    b = statistics.median(runs.get((variant, "base"), [float("nan")]))
    n = statistics.median(runs.get((variant, "new"), [float("nan")]))
    verdict = "" if "tcp" in variant else ("met" if n / b >= 0.90 else "NOT met")
    print(f"{variant:>10}: base {b:6.2f}  new {n:6.2f}  new/base {n / b:5.3f} {verdict}")
    print(json.dumps({"bench": "throughput-compare", "variant": variant, "base_gbit_s": b,
                      "new_gbit_s": n, "ratio": n / b, "rounds": len(runs.get((variant, "new"), []))}))
PY
rm -f "$json"

for schedule in constant exp; do
    echo
    load
    "$new_bin" timers --streams 100 --schedule "$schedule" --seconds "$measure_s" \
        --warmup "$warmup_s"
done
echo
load
echo "== raw output: $out"
