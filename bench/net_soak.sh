#!/usr/bin/env bash
# Issue 15's soak: SOAK_CONNECTIONS (1000) concurrent connections through one in-process
# proxy/gateway pair on loopback for SOAK_SECONDS (60) s, with random sizes (1 B to 32 KB per
# round), random pauses (0 to 200 ms) and every third client a slow reader (512 B reads, 2 ms
# apart); every echo is compared byte for byte, and the process's peak RSS is reported. It runs
# the ignored test `issue15_soak_1000_connections_60_s` of crates/hush-net/tests/hostile.rs in
# release mode, then the default test suite's fault tests (drop, delay, reorder, duplicate,
# truncate, bit flips between proxy and gateway: every failure a clean error, never a wrong byte).
#
# Raw output: bench/runs/<date>-<cores>core-<cpu>/net_soak.txt (or $OUT). Needs ~4,000 file
# descriptors (ulimit -n is raised to 8192 if it can be). Takes about 2 minutes after the build.
# Usage: [SOAK_CONNECTIONS=1000 SOAK_SECONDS=60] bench/net_soak.sh
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cpu_tag="$(grep -m1 'model name' /proc/cpuinfo | awk '{print tolower($NF)}')"
out="${OUT:-$root/bench/runs/$(date +%F)-$(nproc)core-${cpu_tag:-cpu}/net_soak.txt}"
mkdir -p "$(dirname "$out")"
ulimit -n 8192 2>/dev/null || true
(cd "$root" && cargo test --quiet --release -p hush-net --test hostile --no-run)

exec > >(tee "$out") 2>&1
echo "\$ bench/net_soak.sh   # $(date -u +%FT%TZ), hush $(git -C "$root" rev-parse --short HEAD)"
echo "== machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)," \
    "load average $(cut -d' ' -f1-3 /proc/loadavg), ulimit -n $(ulimit -n)"
export SOAK_CONNECTIONS="${SOAK_CONNECTIONS:-1000}" SOAK_SECONDS="${SOAK_SECONDS:-60}"
cd "$root"
start=$(date +%s)
cargo test --quiet --release -p hush-net --test hostile -- --ignored --nocapture \
    issue15_soak_1000_connections_60_s 2>&1 | grep -v '^$'
echo "== soak wall time: $(( $(date +%s) - start )) s"
cargo test --quiet --release -p hush-net --test hostile -- --nocapture \
    issue15_network_faults issue15_a_stalled issue15_a_replayed 2>&1 | grep -v '^$'
echo "== raw output: $out"
