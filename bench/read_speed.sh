#!/usr/bin/env bash
# Read speed: hush vs tshark vs dpkt, extracting per-packet time, length, IPv4 protocol and
# TCP/UDP ports from the 550 IoT Sentinel captures merged into one pcap; then the same captures
# read as a dataset (files in parallel), and peak memory of streaming a file and one 4x larger.
#
# Every reader sums the fields it extracted (bench/fields.py), and the report checks that all
# three saw the same packets. Each timing is the best of $REPEAT runs (default 3) from a warm
# page cache. Needs: cargo, mergecap and tshark (apt-get install tshark), python3 with dpkt
# (pip install dpkt), GNU time (/usr/bin/time).
# Usage: bench/read_speed.sh            (data from $HUSH_DATA or ../shared/data)
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
data="${HUSH_DATA:-$root/../shared/data}/iot-sentinel"
repeat="${REPEAT:-3}"

for tool in cargo mergecap tshark python3 /usr/bin/time; do
    command -v "$tool" >/dev/null || { echo "read_speed: $tool is not installed" >&2; exit 1; }
done
python3 -c "import dpkt" 2>/dev/null || { echo "read_speed: pip install dpkt" >&2; exit 1; }
[ -d "$data" ] || { echo "read_speed: no IoT Sentinel data at $data" >&2; exit 1; }

tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

(cd "$root" && cargo build --quiet --release -p hush-benches --bin read_fields)
hush="$root/target/release/read_fields"

# best_of NAME OUT CMD...: run CMD $repeat times with stdout to OUT; set $best_s to the fastest.
best_of() {
    local name="$1" out="$2" ns start
    shift 2
    best_s=""
    for _ in $(seq "$repeat"); do
        start=$(date +%s%N)
        "$@" >"$out"
        ns=$(($(date +%s%N) - start))
        if [ -z "$best_s" ] || [ "$ns" -lt "$best_ns" ]; then best_ns=$ns; fi
        best_s=$(printf '%d.%09d' $((best_ns / 1000000000)) $((best_ns % 1000000000)))
    done
    echo "  $name: best of $repeat: ${best_s} s" >&2
}

echo "== machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
echo "== hush $(git -C "$root" rev-parse --short HEAD), $(tshark --version 2>/dev/null | head -1)," \
    "dpkt $(python3 -c 'import dpkt; print(dpkt.__version__)'), $(python3 --version)"

mapfile -t files < <(find "$data" -name '*.pcap' | sort)
mergecap -F pcap -a -w "$tmp/merged.pcap" "${files[@]}"
size=$(stat -c %s "$tmp/merged.pcap")
cat "$tmp/merged.pcap" >/dev/null # warm the page cache for everyone
echo "== ${#files[@]} captures merged into one pcap of $size bytes"

best_of "hush" "$tmp/hush.json" "$hush" "$tmp/merged.pcap"
hush_s=$best_s
# tshark warns on stderr when run as root; keep its other messages.
quiet_tshark() { tshark "$@" 2> >(grep -v '^Running as user' >&2); }
best_of "tshark" "$tmp/tshark.tsv" quiet_tshark -r "$tmp/merged.pcap" -T fields \
    -e frame.time_epoch -e frame.len -e ip.proto \
    -e tcp.srcport -e tcp.dstport -e udp.srcport -e udp.dstport
tshark_s=$best_s
python3 "$root/bench/fields.py" tshark-sums "$tmp/tshark.tsv" >"$tmp/tshark.json"
best_of "dpkt" "$tmp/dpkt.json" python3 "$root/bench/fields.py" dpkt "$tmp/merged.pcap"
dpkt_s=$best_s

echo
echo "== per-packet fields from the merged capture (one thread each)"
python3 "$root/bench/fields.py" report "$size" \
    "hush=$hush_s=$tmp/hush.json=300" \
    "tshark=$tshark_s=$tmp/tshark.json=50" \
    "dpkt=$dpkt_s=$tmp/dpkt.json=20"

# tshark also dissects the packet quoted inside an ICMP error and reports its ports; hush and
# dpkt give ICMP packets no ports. Measure that share (untimed) so a port_sum difference is
# explained rather than waved away.
quiet_tshark -r "$tmp/merged.pcap" -Y "icmp || icmpv6" -T fields \
    -e frame.time_epoch -e frame.len -e ip.proto \
    -e tcp.srcport -e tcp.dstport -e udp.srcport -e udp.dstport >"$tmp/icmp.tsv"
python3 - "$tmp/tshark.json" "$tmp/hush.json" "$tmp/icmp.tsv" "$root/bench" <<'PY'
import json, sys
sys.path.insert(0, sys.argv[4])
from fields import tshark_sums
tshark, hush = (json.load(open(p)) for p in sys.argv[1:3])
quoted = tshark_sums(sys.argv[3])
left = tshark["port_sum"] - quoted["port_sum"]
print(f"tshark port_sum minus ports quoted in {quoted['packets']} ICMP errors: {left}"
      f" ({'equals' if left == hush['port_sum'] else 'DIFFERS FROM'} hush's {hush['port_sum']})")
PY

echo
echo "== the ${#files[@]} separate files as a dataset (whole traces, files in parallel on $(nproc) cores)"
data_bytes=$(cat "${files[@]}" | wc -c)
best_of "hush dataset" "$tmp/dataset.json" "$hush" --dataset "$data"
awk -v s="$best_s" -v b="$data_bytes" 'BEGIN { printf "%.3f s, %.1f MB/s\n", s, b / 1e6 / s }'
cat "$tmp/dataset.json"

echo
echo "== peak memory of streaming (max RSS)"
mergecap -F pcap -a -w "$tmp/merged4.pcap" "$tmp/merged.pcap" "$tmp/merged.pcap" \
    "$tmp/merged.pcap" "$tmp/merged.pcap"
for f in merged.pcap merged4.pcap; do
    rss_kib=$(/usr/bin/time -f %M "$hush" "$tmp/$f" 2>&1 >"$tmp/rss.json" | tail -1)
    packets=$(python3 -c "import json,sys; print(json.load(open(sys.argv[1]))['packets'])" "$tmp/rss.json")
    printf '%-13s %6d MB %8d packets  max RSS %6.1f MiB\n' "$f" \
        $(($(stat -c %s "$tmp/$f") / 1000000)) "$packets" "$(echo "$rss_kib" | awk '{print $1 / 1024}')"
done
