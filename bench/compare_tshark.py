#!/usr/bin/env python3
"""Compare hush's per-packet fields with tshark's, packet by packet.

For each capture, runs `read_fields --dump` (hush, file order) and `tshark -T fields` for time,
frame length, IPv4 protocol and TCP/UDP ports, and counts the packets where a field differs.
tshark lists repeated fields (tunnels, ICMP errors quoting a packet) comma-separated; the first
value is compared. Files whose packet counts differ (hush skips link types and 802.11 frames it
does not decode) are counted, not compared.

Usage: bench/compare_tshark.py [--examples N] FILE...
  (build first: cargo build --release -p hush-benches --bin read_fields)
"""
import collections
import pathlib
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent
HUSH = ROOT / "target" / "release" / "read_fields"
FIELDS = ["frame.time_epoch", "frame.len", "ip.proto",
          "tcp.srcport", "tcp.dstport", "udp.srcport", "udp.dstport"]


def tshark_rows(path):
    args = ["tshark", "-r", path, "-T", "fields"] + [a for f in FIELDS for a in ("-e", f)]
    out = subprocess.run(args, capture_output=True, text=True).stdout
    rows = []
    for line in out.splitlines():
        cols = [c.split(",", 1)[0] for c in line.split("\t")]
        sec, _, frac = cols[0].partition(".")
        cols[0] = f"{sec}.{(frac + '000000')[:6]}"
        rows.append(cols)
    return rows


def hush_rows(path):
    run = subprocess.run([str(HUSH), "--dump", path], capture_output=True, text=True)
    if run.returncode:
        return None, run.stderr.strip()
    return [l.split("\t") for l in run.stdout.splitlines() if not l.startswith("#")], ""


def main(argv):
    examples = 1
    if argv[:1] == ["--examples"]:
        examples, argv = int(argv[1]), argv[2:]
    stats = collections.Counter()
    shown = collections.defaultdict(list)
    for path in argv:
        ours, err = hush_rows(path)
        if ours is None:
            stats["hush error"] += 1
            print(f"hush error: {err}")
            continue
        theirs = tshark_rows(path)
        if len(ours) != len(theirs):
            stats["packet counts differ"] += 1
            continue
        stats["files compared"] += 1
        stats["packets compared"] += len(ours)
        for i, (a, b) in enumerate(zip(ours, theirs), start=1):
            for field, x, y in zip(FIELDS, a, b):
                if x != y:
                    stats[field] += 1
                    files = {e[0] for e in shown[field]}
                    if path not in files and len(files) < examples * 20:
                        shown[field].append((path, i, x, y))
    for key, n in stats.items():
        print(f"{key}: {n}")
    for field, cases in shown.items():
        print(f"== {field} differs (file, packet, hush, tshark)")
        for case in cases:
            print("   ", *case)


if __name__ == "__main__":
    main(sys.argv[1:])
