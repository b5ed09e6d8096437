#!/usr/bin/env bash
# Shaping speed and cost: what a record costs the engine and the AEAD (divan, benches/benches/
# shape.rs), then the live transport on loopback (benches/src/bin/net_bench.rs): unshaped tunnel
# throughput against a plain tokio TCP copy, the lateness of records on 100 concurrent shaped
# tunnels, and the CPU per shaped stream at 20 records/s against the same writes on plain TCP.
#
# Goals (from the issue): tunnel throughput >= 1 Gbit/s with the unshaped schedule; p99
# |actual - scheduled| <= 1 ms with 100 concurrent shaped streams on 2 cores; CPU per stream at
# 20 records/s <= 0.1% of a core. The report says "met" or "NOT met"; nothing is tuned to them.
#
# Raw output goes to bench/runs/<date>-<cores>core-<cpu>/shape_speed.txt (or $OUT). Durations:
# MEASURE_S (30) seconds per timers/cpu run, THROUGHPUT_BYTES (2e9) / THROUGHPUT_S (10) per
# throughput run, REPEAT (3) throughput runs; QUICK=1 shortens everything for a smoke test and
# writes to a temporary file instead. Needs: cargo, Linux /proc. Takes about 7 minutes.
# Usage: bench/shape_speed.sh
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"

if [ "${QUICK:-0}" = 1 ]; then
    measure_s=3 warmup_s=1 bytes=200000000 tput_s=2 repeat=1
    default_out="$(mktemp -t shape_speed.XXXXXX.txt)"
else
    measure_s="${MEASURE_S:-30}" warmup_s=2 bytes="${THROUGHPUT_BYTES:-2000000000}"
    tput_s="${THROUGHPUT_S:-10}" repeat="${REPEAT:-3}"
    cpu_tag="$(grep -m1 'model name' /proc/cpuinfo | awk '{print tolower($NF)}')"
    default_out="$root/bench/runs/$(date +%F)-$(nproc)core-${cpu_tag:-cpu}/shape_speed.txt"
fi
out="${OUT:-$default_out}"
mkdir -p "$(dirname "$out")"

# Build first, so compiler output stays out of the report and no build competes for the cores.
(cd "$root" && cargo build --quiet --release -p hush-benches --bin net_bench &&
    cargo bench --quiet -p hush-benches --bench shape --no-run)
net_bench="$root/target/release/net_bench"

exec > >(tee "$out") 2>&1
rev="$(git -C "$root" rev-parse --short HEAD)"
git -C "$root" diff --quiet HEAD -- crates benches || rev="$rev+uncommitted"
echo "\$ bench/shape_speed.sh   # $(date -u +%FT%TZ)"
echo "== machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)," \
    "$(awk '/MemTotal/ {printf "%.0f GB", $2 / 1e6}' /proc/meminfo), $(uname -sr)"
echo "== hush $rev, $(rustc --version)"
# The machine may be shared: say how busy it was before each part.
load() { echo "== load average: $(cut -d' ' -f1-3 /proc/loadavg)"; }

echo
echo "== engine + AEAD per record (divan; each iteration is 1000 records, so µs read as ns/record)"
load
(cd "$root" && cargo bench --quiet -p hush-benches --bench shape)

echo
load
"$net_bench" throughput --bytes "$bytes" --seconds "$tput_s" --repeat "$repeat"

for schedule in constant exp; do
    echo
    load
    "$net_bench" timers --streams 100 --schedule "$schedule" --seconds "$measure_s" \
        --warmup "$warmup_s"
done
echo
load
"$net_bench" timers --streams 100 --duplex --seconds "$measure_s" --warmup "$warmup_s"

echo
load
"$net_bench" cpu --streams 1,10,100 --seconds "$measure_s" --warmup "$warmup_s"
echo
load
echo "== raw output: $out"
