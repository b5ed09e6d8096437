#!/usr/bin/env bash
# The live tunnel's timing, measured on this machine: the checks that depend on the wall clock and
# the machine's load, kept out of the default test run (issue 13: no wall-clock assertions there).
#   - hush-net tests/loopback.rs `the_wire_keeps_the_schedules_gaps`: record gaps on the wire
#     against the schedule's distribution (one-sample KS, idle and busy) and idle against busy;
#   - hush-net tests/sim_vs_live.rs `the_simulator_predicts_the_live_tunnels_timing`: an IoT
#     Sentinel capture replayed live and simulated with the same seeds: gap distributions (KS),
#     wire bytes within 5%, and the live lateness;
#   - hush-net clock.rs `precise_sleep_wakes_on_time`: the timer's median lateness;
#   - hush-net tests/hostile.rs `issue15_a_stalled_streams_neighbour_echoes_within_a_second`:
#     with one stream of a tunnel stalled, a 10 kB echo on another returns in under a second.
# Run in release mode on a quiet machine; a loaded one fails the KS checks, which is the point of
# keeping them here. Raw output: bench/runs/<date>-<cores>core-<cpu>/live_timing.txt (or $OUT).
# Usage: bench/live_timing.sh
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cpu_tag="$(grep -m1 'model name' /proc/cpuinfo | awk '{print tolower($NF)}')"
out="${OUT:-$root/bench/runs/$(date +%F)-$(nproc)core-${cpu_tag:-cpu}/live_timing.txt}"
mkdir -p "$(dirname "$out")"
cd "$root"
cargo test --quiet --release -p hush-net --no-run

exec > >(tee "$out") 2>&1
echo "\$ bench/live_timing.sh   # $(date -u +%FT%TZ), hush $(git rev-parse --short HEAD)"
echo "== machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)," \
    "load average $(cut -d' ' -f1-3 /proc/loadavg)"
status=0
for t in "--test loopback the_wire_keeps_the_schedules_gaps" \
    "--test sim_vs_live the_simulator_predicts_the_live_tunnels_timing" \
    "--lib precise_sleep_wakes_on_time" \
    "--test hostile issue15_a_stalled_streams_neighbour_echoes_within_a_second"; do
    # shellcheck disable=SC2086
    cargo test --quiet --release -p hush-net $t -- --ignored --nocapture 2>&1 | grep -v '^$' \
        || status=1
done
exit $status
