#!/usr/bin/env bash
# A short fuzz run of every target (not part of CI): seeds the corpus, then runs each target for
# SECONDS (default 60) and prints one line per target. A crash stops the run and leaves its
# input in fuzz/artifacts/<target>/ (see README.md).
# Usage: fuzz/run-short.sh [SECONDS]
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
seconds="${1:-60}"
command -v cargo-fuzz >/dev/null || { echo "run-short: install cargo-fuzz first (cargo install cargo-fuzz)" >&2; exit 2; }
"$here/seed-corpus.sh" >/dev/null
cd "$here"
for target in read_any pcap_frames csv decode_frame records model_file signature_file; do
    mkdir -p "corpus/$target"
    log="$(mktemp)"
    if RUSTC_BOOTSTRAP=1 cargo fuzz run -O "$target" "corpus/$target" -- \
        -max_total_time="$seconds" -max_len=262144 >"$log" 2>&1; then
        echo "$target: ${seconds} s, $(grep -Eo '#[0-9]+' "$log" | tail -1 | tr -d '#') runs, no crash"
    else
        echo "$target: CRASH (see fuzz/artifacts/$target/ and $log)"
        exit 1
    fi
    rm -f "$log"
done
