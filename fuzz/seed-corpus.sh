#!/usr/bin/env bash
# Fill fuzz/corpus/<target>/ with real inputs: the torture captures for the file readers, single
# frames cut from them for decode_frame, and CSV exports of a few of them for csv.
# The corpus is gitignored; run this once before `cargo fuzz run`.
# Usage: fuzz/seed-corpus.sh [TORTURE_DIR]   (default: $HUSH_DATA/torture or ../shared/data/torture)
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
torture="${1:-${HUSH_DATA:-$here/../../shared/data}/torture}"
[ -d "$torture" ] || { echo "seed-corpus: no torture folder at $torture" >&2; exit 1; }

for target in read_any pcap_frames csv decode_frame; do
    mkdir -p "$here/corpus/$target"
done

# Whole files, named by content hash so reruns do not duplicate.
find "$torture" -type f -size -1024k | while read -r f; do
    name="$(sha1sum "$f" | cut -c1-16)"
    cp "$f" "$here/corpus/read_any/$name"
    cp "$f" "$here/corpus/pcap_frames/$name"
done

# Single frames (up to 16 per classic pcap file, any byte order) for decode_frame.
python3 - "$torture" "$here/corpus/decode_frame" <<'PY'
import hashlib, pathlib, struct, sys
src, out = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2])
for f in sorted(src.rglob("*.pcap")):
    b = f.read_bytes()
    if len(b) < 24:
        continue
    for order in "<>":
        if struct.unpack(order + "I", b[:4])[0] in (0xA1B2C3D4, 0xA1B23C4D):
            break
    else:
        continue
    off, n = 24, 0
    while off + 16 <= len(b) and n < 16:
        caplen = struct.unpack(order + "I", b[off + 8 : off + 12])[0]
        frame = b[off + 16 : off + 16 + caplen]
        if len(frame) != caplen:
            break
        (out / hashlib.sha1(frame).hexdigest()[:16]).write_bytes(frame)
        off, n = off + 16 + caplen, n + 1
PY

# CSV seeds: the tshark field export hush reads, when tshark is installed, plus a minimal one.
printf 'time,direction,size\n0.000000,out,60\n0.001500,in,1514\n0.002000,out,54\n' \
    > "$here/corpus/csv/minimal.csv"
if command -v tshark >/dev/null; then
    for f in "$torture"/npm-pcap-parser/smtp.pcap "$torture"/pcap-parser-crate/ntp.pcap \
             "$torture"/tcpdump/dns_udp.pcap; do
        [ -f "$f" ] || continue
        tshark -r "$f" -T fields -E header=y -E separator=, -E quote=d \
            -e frame.time_epoch -e frame.len -e ip.src -e ip.dst -e ip.proto \
            -e tcp.srcport -e tcp.dstport -e udp.srcport -e udp.dstport \
            > "$here/corpus/csv/$(basename "$f" .pcap).csv" 2>/dev/null || true
    done
fi

# Model files: small models trained by hush on IoT Sentinel (a forest, k-FP's forest + kNN, and
# an ensemble of forests), when the data is there.
mkdir -p "$here/corpus/model_file" "$here/corpus/signature_file"
sentinel="$(dirname "$torture")/iot-sentinel"
if [ -d "$sentinel" ]; then
    (cd "$here/.." && cargo build --release -q -p hush-cli --bin hush)
    for a in iot-sentinel flow-stats k-fp; do
        "$here/../target/release/hush" attack train -a "$a" --data "$sentinel" --types \
            -m "$here/corpus/model_file/$a.model" >/dev/null
    done
else
    echo "seed-corpus: no IoT Sentinel at $sentinel, model_file starts from nothing" >&2
fi

# A signature file: PingPong's plug, learnt from its ON and OFF captures when they are there.
plug="$(dirname "$torture")/events/pingpong-tplink-plug"
if [ -d "$plug" ]; then
    on=$(find "$plug" -iname '*on*.pcap' | sort | head -3 | paste -sd,)
    off=$(find "$plug" -iname '*off*.pcap' | sort | head -3 | paste -sd,)
    if [ -n "$on" ] && [ -n "$off" ]; then
        "$here/../target/release/hush" attack signatures learn --event "on=$on" \
            --event "off=$off" -o "$here/corpus/signature_file/plug.sig" >/dev/null 2>&1 || true
    fi
fi
printf '{"format":"hush-signatures-1","signatures":[{"label":"on","elements":[{"device_first":true,"first":[556,556],"second":[1093,1095]}],"span_s":0.5,"instances":3}]}' \
    >"$here/corpus/signature_file/minimal.sig"

for target in read_any pcap_frames csv decode_frame model_file signature_file; do
    echo "$target: $(ls "$here/corpus/$target" | wc -l) seeds"
done
