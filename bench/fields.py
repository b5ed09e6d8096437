#!/usr/bin/env python3
"""Helpers for read_speed.sh: the dpkt reader, summing tshark's field export, and the report.

Every reader sums the same per-packet fields (packets, frame length, IPv4 protocol, TCP/UDP
ports, timestamp in whole microseconds mod 2^64), so the report can check they saw the same
packets. Usage:
    fields.py dpkt FILE.pcap            decode eth/ip/tcp/udp with dpkt, print sums as JSON
    fields.py tshark-sums FILE.tsv      sum a `tshark -T fields` export, print sums as JSON
    fields.py report BYTES NAME=SECONDS=SUMS.json=GOAL ...   print the comparison table; the
        first reader is hush (GOAL in MB/s), the others peers (GOAL: how many times faster hush
        should be)
"""
import json
import sys

MASK = (1 << 64) - 1


def sums(packets=0, frame_bytes=0, ip_proto_sum=0, port_sum=0, time_sum_us=0):
    return dict(packets=packets, frame_bytes=frame_bytes, ip_proto_sum=ip_proto_sum,
                port_sum=port_sum, time_sum_us=time_sum_us & MASK)


def dpkt_sums(path):
    import dpkt

    n = frame_bytes = ip_proto = ports = t_us = 0
    with open(path, "rb") as f:
        for ts, buf in dpkt.pcap.Reader(f):
            n += 1
            frame_bytes += len(buf)
            t_us += round(ts * 1e6)
            try:
                net = dpkt.ethernet.Ethernet(buf).data
            except (dpkt.UnpackError, ValueError):
                continue
            if isinstance(net, dpkt.ip.IP):
                ip_proto += net.p
            if isinstance(net, (dpkt.ip.IP, dpkt.ip6.IP6)):
                l4 = net.data
                if isinstance(l4, (dpkt.tcp.TCP, dpkt.udp.UDP)):
                    ports += l4.sport + l4.dport
    return sums(n, frame_bytes, ip_proto, ports, t_us)


def first(field):
    """tshark joins repeated fields (tunnels, ICMP errors quoting a packet) with commas."""
    return int(field.split(",", 1)[0]) if field else 0


def tshark_sums(path):
    n = frame_bytes = ip_proto = ports = t_us = 0
    with open(path) as f:
        for line in f:
            t, length, proto, tsp, tdp, usp, udp = line.rstrip("\n").split("\t")
            s, _, frac = t.partition(".")
            n += 1
            t_us += int(s) * 1_000_000 + int((frac + "000000")[:6])
            frame_bytes += int(length)
            ip_proto += first(proto)
            ports += first(tsp) + first(tdp) + first(usp) + first(udp)
    return sums(n, frame_bytes, ip_proto, ports, t_us)


def report(size_bytes, runs):
    rows = []
    for run in runs:
        name, seconds, path, goal = run.split("=", 3)
        with open(path) as f:
            rows.append((name, float(seconds), json.load(f), float(goal)))
    hush_s = rows[0][1]
    print(f"{'reader':<10}{'seconds':>10}{'MB/s':>10}{'hush faster':>13}{'packets':>10}  goal")
    for i, (name, s, result, goal) in enumerate(rows):
        mb_s = size_bytes / 1e6 / s
        if i == 0:
            ratio, met = "-", f">= {goal:.0f} MB/s: {'met' if mb_s >= goal else 'NOT met'}"
        else:
            ratio = f"{s / hush_s:.1f}x"
            met = f"hush >= {goal:.0f}x: {'met' if s / hush_s >= goal else 'NOT met'}"
        print(f"{name:<10}{s:>10.3f}{mb_s:>10.1f}{ratio:>13}{result['packets']:>10}  {met}")
    ok = True
    base = rows[0][2]
    for name, _, result, _ in rows[1:]:
        for key in base:
            if key in result and result[key] != base[key]:
                level = "MISMATCH" if key == "packets" else "differs"
                ok &= key != "packets"
                print(f"{level}: {key}: {rows[0][0]} {base[key]}, {name} {result[key]}")
    print("packet counts agree" if ok else "PACKET COUNTS DISAGREE")
    return 0 if ok else 1


if __name__ == "__main__":
    cmd, args = sys.argv[1], sys.argv[2:]
    if cmd == "dpkt":
        print(json.dumps(dpkt_sums(args[0])))
    elif cmd == "tshark-sums":
        print(json.dumps(tshark_sums(args[0])))
    elif cmd == "report":
        sys.exit(report(int(args[0]), args[1:]))
    else:
        sys.exit(__doc__)
