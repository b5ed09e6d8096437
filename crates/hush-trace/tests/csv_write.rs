//! CSV in and out, and pcap out: every text format hush reads, its errors, and round trips
//! (CSV → CSV, trace → pcap → trace) on hand-built traces and on real IoT Sentinel captures.
//!
//! Real-data tests skip with a message when `../shared/data` is absent; the tshark cross-check
//! also skips when tshark is not installed.

#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

use std::net::IpAddr;
use std::path::{Path, PathBuf};

use hush_trace::csv::{read_csv, write_csv};
use hush_trace::data::shared_data;
use hush_trace::write::write_pcap;
use hush_trace::{
    Direction, Endpoint, EndpointId, ErrorKind, Format, Mac, Packet, Proto, ReadOptions, Trace,
    TraceError, read_from, read_trace,
};
use proptest::prelude::*;

const LENIENT: ReadOptions = ReadOptions { strict: false };
const STRICT: ReadOptions = ReadOptions { strict: true };

fn csv(text: &str, opts: ReadOptions) -> Result<Trace, TraceError> {
    read_csv(text.as_bytes(), "t.csv", opts)
}

fn ip(s: &str) -> Option<IpAddr> {
    Some(s.parse().unwrap())
}

fn mac(s: &str) -> Option<Mac> {
    Some(s.parse().unwrap())
}

/// A packet with its endpoints replaced by their values, for comparing traces whose endpoint
/// tables are numbered differently.
#[derive(Debug, PartialEq, Eq)]
struct Resolved {
    p: Packet,
    src: Endpoint,
    dst: Endpoint,
}

fn resolved(t: &Trace) -> Vec<Resolved> {
    t.packets
        .iter()
        .map(|p| Resolved {
            p: Packet {
                src: EndpointId(0),
                dst: EndpointId(0),
                ..*p
            },
            src: *t.endpoint(p.src),
            dst: *t.endpoint(p.dst),
        })
        .collect()
}

// ---- tshark exports ----

#[test]
fn ipet_tshark_columns_read_with_empty_cells() {
    // The column set iPET exported; a UDP packet leaves tcp.len empty, an ARP frame every IP cell.
    let text = "\
frame.time_relative,ip.src,ip.dst,ip.proto,tcp.len,udp.length,eth.src,eth.dst
0.000000000,192.168.1.10,52.1.2.3,6,517,,00:17:88:2b:9a:0c,00:b5:6d:06:08:ba
0.250000000,192.168.1.10,8.8.8.8,17,,43,00:17:88:2b:9a:0c,00:b5:6d:06:08:ba
1.5,,,,,,00:17:88:2b:9a:0c,ff:ff:ff:ff:ff:ff
";
    let err = csv(text, STRICT).unwrap_err();
    // iPET's set has no frame length: that is the one thing a size trace cannot do without.
    assert!(matches!(&err.kind, ErrorKind::MissingColumn(c) if c.starts_with("frame.len")));
    assert_eq!(err.line, Some(1));

    let with_len = "\
frame.time_relative,ip.src,ip.dst,ip.proto,tcp.len,udp.length,eth.src,eth.dst,frame.len
0.000000000,192.168.1.10,52.1.2.3,6,517,,00:17:88:2b:9a:0c,00:b5:6d:06:08:ba,571
0.250000000,192.168.1.10,8.8.8.8,17,,43,00:17:88:2b:9a:0c,00:b5:6d:06:08:ba,77
1.5,,,,,,00:17:88:2b:9a:0c,ff:ff:ff:ff:ff:ff,42
";
    let t = csv(with_len, STRICT).unwrap();
    assert_eq!(t.report.format, Some(Format::Csv));
    assert_eq!(t.report.records, 3);
    let [tcp, udp, arp] = &t.packets[..] else {
        panic!("{:?}", t.packets)
    };
    assert_eq!(
        (tcp.t_ns, tcp.frame_len, tcp.payload_len, tcp.ip_proto),
        (0, 571, 517, 6)
    );
    assert_eq!(tcp.proto, Proto::IPV4 | Proto::TCP);
    assert_eq!(tcp.dir, Direction::Unknown);
    assert_eq!(
        *t.endpoint(tcp.src),
        Endpoint {
            mac: mac("00:17:88:2b:9a:0c"),
            ip: ip("192.168.1.10")
        }
    );
    assert_eq!(t.endpoint(tcp.dst).ip, ip("52.1.2.3"));
    assert_eq!(
        (udp.t_ns, udp.payload_len, udp.ip_proto),
        (250_000_000, 35, 17)
    );
    assert_eq!(udp.proto, Proto::IPV4 | Proto::UDP);
    assert_eq!(
        (arp.t_ns, arp.frame_len, arp.ip_proto),
        (1_500_000_000, 42, 0)
    );
    assert_eq!(arp.proto, Proto::empty());
    assert_eq!(t.endpoint(arp.dst).mac, Some(Mac::BROADCAST));
    assert_eq!(t.endpoint(arp.dst).ip, None);
}

#[test]
fn full_tab_separated_tshark_export_sets_every_field() {
    // tshark's default separator is a tab; an ICMP error quotes a second IP header, which tshark
    // joins with a comma inside the cell.
    let text = "frame.time_epoch\tframe.len\tframe.protocols\teth.src\teth.dst\tip.src\tip.dst\t\
ipv6.src\tipv6.dst\tip.proto\ttcp.srcport\ttcp.dstport\tudp.srcport\tudp.dstport\ttcp.len\t\
udp.length\tip.len\tframe.number
1474552510.734151000\t583\teth:ethertype:ip:tcp:tls\t00:17:88:2b:9a:0c\t00:b5:6d:06:08:ba\t\
192.168.1.10\t52.1.2.3\t\t\t6\t49152\t443\t\t\t517\t\t569\t1
1474552510.800000000\t90\teth:ethertype:ipv6:udp:mdns\t00:17:88:2b:9a:0c\t33:33:00:00:00:fb\t\
\t\tfe80::1\tff02::fb\t\t\t\t5353\t5353\t\t36\t\t2
1474552510.900000000\t70\teth:ethertype:ip:icmp:ip:udp\t00:b5:6d:06:08:ba\t00:17:88:2b:9a:0c\t\
192.168.1.1,192.168.1.10\t192.168.1.10,8.8.8.8\t\t\t1,17\t\t\t5000\t53\t\t\t56,28\t3
";
    let t = csv(text, STRICT).unwrap();
    let [tls, mdns, icmp] = &t.packets[..] else {
        panic!("{:?}", t.packets)
    };
    assert_eq!(tls.t_ns, 1_474_552_510_734_151_000);
    assert_eq!(
        (tls.frame_len, tls.ip_len, tls.payload_len),
        (583, 569, 517)
    );
    assert_eq!((tls.src_port, tls.dst_port, tls.ip_proto), (49152, 443, 6));
    assert_eq!(tls.proto, Proto::IPV4 | Proto::TCP | Proto::TLS);

    assert_eq!(mdns.proto, Proto::IPV6 | Proto::UDP | Proto::MDNS);
    assert_eq!(
        (mdns.payload_len, mdns.src_port, mdns.ip_proto),
        (28, 5353, 17)
    );
    assert_eq!(
        *t.endpoint(mdns.dst),
        Endpoint {
            mac: mac("33:33:00:00:00:fb"),
            ip: ip("ff02::fb")
        }
    );
    // The outer header's values come first; the quoted packet's ports and protocols are not the
    // ICMP packet's.
    assert_eq!(t.endpoint(icmp.src).ip, ip("192.168.1.1"));
    assert_eq!((icmp.ip_proto, icmp.ip_len), (1, 56));
    assert_eq!((icmp.src_port, icmp.dst_port, icmp.payload_len), (0, 0, 0));
    assert_eq!(icmp.proto, Proto::IPV4 | Proto::ICMP);
}

#[test]
fn quoted_comma_export_with_several_occurrences_reads() {
    let text = "\"frame.time_epoch\",\"frame.len\",\"ip.src\",\"ip.proto\"\n\
\"10.5\",\"70\",\"192.168.1.1,192.168.1.10\",\"1,17\"\n";
    let t = csv(text, STRICT).unwrap();
    assert_eq!(t.packets[0].t_ns, 10_500_000_000);
    assert_eq!(t.endpoint(t.packets[0].src).ip, ip("192.168.1.1"));
    assert_eq!(t.packets[0].ip_proto, 1);
}

#[test]
fn unquoted_occurrences_in_a_comma_export_are_a_bad_line() {
    let text = "frame.time_epoch,frame.len,ip.src\n1.0,60,10.0.0.1\n2.0,70,10.0.0.1,10.0.0.2\n";
    let err = csv(text, STRICT).unwrap_err();
    assert_eq!(err.line, Some(3));
    assert_eq!(err.to_string(), "t.csv:3: 4 fields where the header has 3");
    let t = csv(text, LENIENT).unwrap();
    assert_eq!(t.packets.len(), 1);
    assert_eq!(t.report.skipped.get("bad CSV line"), Some(&1));
    assert_eq!(
        t.report.warnings,
        ["t.csv:3: 4 fields where the header has 3"]
    );
    assert_eq!(t.report.records, 2);
}

#[test]
fn frame_protocols_names_and_port_rules_give_the_same_flags() {
    // Without frame.protocols the flags come from ports, as the pcap decoder sets them.
    let text = "frame.time_relative,frame.len,ip.src,ip.dst,tcp.srcport,tcp.dstport,tcp.len,\
udp.srcport,udp.dstport,udp.length,ip.proto
0,100,10.0.0.2,10.0.0.3,40000,443,46,,,,6
0,100,10.0.0.2,10.0.0.3,40000,443,0,,,,6
0,100,10.0.0.2,10.0.0.3,,,,40000,53,50,17
0,100,10.0.0.2,224.0.0.22,,,,,,,2
";
    let t = csv(text, STRICT).unwrap();
    let flags: Vec<Proto> = t.packets.iter().map(|p| p.proto).collect();
    assert_eq!(
        flags,
        [
            Proto::IPV4 | Proto::TCP | Proto::TLS,
            Proto::IPV4 | Proto::TCP,
            Proto::IPV4 | Proto::UDP | Proto::DNS,
            Proto::IPV4 | Proto::OTHER_IP,
        ]
    );
}

// ---- minimal and maybenot forms ----

#[test]
fn time_direction_size_reads_with_every_name_for_time_and_direction() {
    let t = csv(
        "time,direction,size\n0.5,out,100\n0.25,in,1500\n0.75,?,60\n1,s,1\n2,received,2\n",
        STRICT,
    )
    .unwrap();
    let rows: Vec<(i64, Direction, u32)> = t
        .packets
        .iter()
        .map(|p| (p.t_ns, p.dir, p.frame_len))
        .collect();
    assert_eq!(
        rows,
        [
            (250_000_000, Direction::Inbound, 1500),
            (500_000_000, Direction::Outbound, 100),
            (750_000_000, Direction::Unknown, 60),
            (1_000_000_000, Direction::Outbound, 1),
            (2_000_000_000, Direction::Inbound, 2),
        ]
    );
    // Sorted on load, and the file's disorder is reported.
    assert_eq!(t.report.backwards_timestamps, 1);
    // One endpoint without addresses stands for both ends.
    assert_eq!(
        t.endpoints,
        [Endpoint {
            mac: None,
            ip: None
        }]
    );

    let ns = csv("t_ns,direction,size\n1500,sent,10\n", STRICT).unwrap();
    assert_eq!(
        (ns.packets[0].t_ns, ns.packets[0].dir),
        (1500, Direction::Outbound)
    );
    let s = csv("time_s\tdirection\tsize\n1.000000001\tr\t10\n", STRICT).unwrap();
    assert_eq!(
        (s.packets[0].t_ns, s.packets[0].dir),
        (1_000_000_001, Direction::Inbound)
    );
}

#[test]
fn signed_sizes_carry_direction_without_a_direction_column() {
    let t = csv("time,size\n0,512\n0.1,-1500\n0.2,0\n", STRICT).unwrap();
    let rows: Vec<(Direction, u32)> = t.packets.iter().map(|p| (p.dir, p.frame_len)).collect();
    assert_eq!(
        rows,
        [
            (Direction::Outbound, 512),
            (Direction::Inbound, 1500),
            (Direction::Unknown, 0)
        ]
    );
    let err = csv("time,direction,size\n0,in,-5\n", STRICT).unwrap_err();
    assert_eq!(
        err.to_string(),
        "t.csv:2: field \"size\": negative size in a file that has a direction column"
    );
}

#[test]
fn maybenot_traces_read_with_padding_and_without_sizes() {
    // The format of maybenot-simulator's parse_trace: integer ns from the start, no header.
    let text = "0,sn,52\n19714282,rn,52\n20000000,sp,1420\n21000000,rp,1420\n183976147,s\n";
    let t = csv(text, STRICT).unwrap();
    let rows: Vec<(i64, Direction, u32)> = t
        .packets
        .iter()
        .map(|p| (p.t_ns, p.dir, p.frame_len))
        .collect();
    assert_eq!(
        rows,
        [
            (0, Direction::Outbound, 52),
            (19_714_282, Direction::Inbound, 52),
            (20_000_000, Direction::Outbound, 1420),
            (21_000_000, Direction::Inbound, 1420),
            (183_976_147, Direction::Outbound, 0),
        ]
    );
    assert_eq!(t.report.records, 5);
    let err = csv("0,sn,52\n10,xx,52\n", STRICT).unwrap_err();
    assert!(matches!(&err.kind, ErrorKind::BadField { field, .. } if field == "direction"));
    assert_eq!(err.line, Some(2));
}

// ---- errors ----

#[test]
fn a_licence_text_is_a_missing_column_on_its_first_line() {
    let text = "\n                                 Apache License\n  Version 2.0, January 2004\n";
    let err = read_from(text.as_bytes(), "LICENSE", LENIENT).unwrap_err();
    assert_eq!(
        err.to_string(),
        "LICENSE:2: missing column \"frame.time_epoch (or frame.time_relative, time_s, time, t_ns)\""
    );
    let err = read_from(
        &b"MIT License\n\nCopyright (c) 2024\n"[..],
        "LICENSE",
        STRICT,
    )
    .unwrap_err();
    assert!(matches!(err.kind, ErrorKind::MissingColumn(_)));
    assert_eq!(err.line, Some(1));
}

#[test]
fn bad_fields_name_file_line_and_column() {
    let text = "frame.time_epoch,frame.len,ip.src,tcp.srcport\n\
1.0,60,10.0.0.1,80\n\
2.0,60,10.0.0.300,80\n\
3.0,sixty,10.0.0.1,80\n\
4.0,60,10.0.0.1,70000\n\
5.0,,10.0.0.1,80\n\
6.0,60,10.0.0.1,80\n";
    let err = csv(text, STRICT).unwrap_err();
    assert_eq!(
        err.to_string(),
        "t.csv:3: field \"ip.src\": \"10.0.0.300\" is not an IP address"
    );
    let t = csv(text, LENIENT).unwrap();
    assert_eq!(t.packets.len(), 2);
    assert_eq!(t.report.records, 6);
    assert_eq!(t.report.skipped.get("bad CSV line"), Some(&4));
    assert_eq!(
        t.report.warnings,
        [
            "t.csv:3: field \"ip.src\": \"10.0.0.300\" is not an IP address",
            "t.csv:4: field \"frame.len\": \"sixty\": invalid digit found in string",
            "t.csv:5: field \"tcp.srcport\": \"70000\": number too large to fit in target type",
            "t.csv:6: field \"frame.len\": empty",
        ]
    );
}

#[test]
fn warnings_stay_bounded_while_every_bad_line_is_counted() {
    let mut text = String::from("time,size\n0,1\n");
    for i in 0..1000 {
        text.push_str(&format!("{i},x\n"));
    }
    let t = csv(&text, LENIENT).unwrap();
    assert_eq!(t.report.skipped.get("bad CSV line"), Some(&1000));
    assert_eq!(
        t.report.warnings.len(),
        hush_trace::ReadReport::MAX_WARNINGS
    );
}

#[test]
fn a_file_with_no_good_line_is_an_error_even_when_lenient() {
    let err = csv("time,size\nnow,big\n", LENIENT).unwrap_err();
    assert_eq!(err.line, Some(2));
    assert!(matches!(&err.kind, ErrorKind::BadField { field, .. } if field == "time"));
    // A header alone is an empty trace, not an error.
    assert!(csv("time,size\n", STRICT).unwrap().packets.is_empty());
    assert!(csv("", STRICT).unwrap().packets.is_empty());
}

#[test]
fn overlong_and_non_utf8_lines_are_bad_lines() {
    let mut text = b"time,size\n0,1\n".to_vec();
    text.extend(vec![b'7'; 100_000]);
    text.extend(b"\n1,\xff\xfe\n2,3\n");
    let t = read_csv(&text[..], "t.csv", LENIENT).unwrap();
    assert_eq!(t.packets.len(), 2);
    assert_eq!(
        t.report.warnings,
        [
            "t.csv:3: line longer than 65536 bytes",
            "t.csv:4: not UTF-8 text (byte 3 of the line)"
        ]
    );
    let err = read_csv(&text[..], "t.csv", STRICT).unwrap_err();
    assert_eq!(err.line, Some(3));
}

#[test]
fn read_from_sends_text_to_the_csv_reader() {
    let t = read_from(&b"time,direction,size\n0,out,10\n"[..], "x", STRICT).unwrap();
    assert_eq!(t.report.format, Some(Format::Csv));
    assert_eq!(t.packets.len(), 1);
}

// ---- CSV round trip ----

fn arb_endpoint() -> impl Strategy<Value = Endpoint> {
    let mac = proptest::option::of(any::<[u8; 6]>().prop_map(Mac));
    let ip = proptest::option::of(prop_oneof![
        any::<[u8; 4]>().prop_map(IpAddr::from),
        any::<[u8; 16]>().prop_map(IpAddr::from),
    ]);
    (mac, ip).prop_map(|(mac, ip)| Endpoint { mac, ip })
}

fn arb_trace() -> impl Strategy<Value = Trace> {
    let packet = (
        any::<i64>(),
        any::<(u32, u32, u32)>(),
        any::<u32>(),
        any::<(u16, u16, u8)>(),
        0u8..3,
        (0u32..6, 0u32..6),
    );
    (
        proptest::collection::vec(arb_endpoint(), 1..6),
        proptest::collection::vec(packet, 0..40),
    )
        .prop_map(|(endpoints, packets)| {
            let packets = packets
                .into_iter()
                .map(
                    |(t_ns, (frame_len, ip_len, payload_len), bits, ports, dir, ids)| {
                        Packet {
                            t_ns,
                            frame_len,
                            ip_len,
                            payload_len,
                            proto: Proto::from_bits_truncate(bits),
                            src_port: ports.0,
                            dst_port: ports.1,
                            // Ids past the table stand for "no endpoint", as Trace::endpoint says.
                            src: EndpointId(ids.0),
                            dst: EndpointId(ids.1),
                            dir: [Direction::Unknown, Direction::Outbound, Direction::Inbound]
                                [dir as usize],
                            ip_proto: ports.2,
                        }
                    },
                )
                .collect();
            Trace {
                name: "gen".into(),
                packets,
                endpoints,
                ..Trace::default()
            }
        })
}

proptest! {
    #[test]
    fn write_csv_then_read_csv_gives_the_same_packets(trace in arb_trace()) {
        let mut text = Vec::new();
        write_csv(&trace, &mut text).unwrap();
        let back = read_csv(&text[..], "rt.csv", STRICT).unwrap();
        let mut expected = trace.clone();
        expected.sort_by_time();
        prop_assert_eq!(resolved(&back), resolved(&expected));
        prop_assert_eq!(back.report.records, trace.packets.len() as u64);
    }
}

#[test]
fn written_csv_has_the_documented_header_and_cells() {
    let trace = Trace {
        endpoints: vec![
            Endpoint {
                mac: mac("00:17:88:2b:9a:0c"),
                ip: ip("192.168.1.10"),
            },
            Endpoint {
                mac: None,
                ip: ip("2001:db8::1"),
            },
        ],
        packets: vec![Packet {
            t_ns: -1,
            frame_len: 583,
            ip_len: 569,
            payload_len: 517,
            proto: Proto::IPV4 | Proto::TCP | Proto::TLS,
            src_port: 49152,
            dst_port: 443,
            src: EndpointId(0),
            dst: EndpointId(1),
            dir: Direction::Outbound,
            ip_proto: 6,
        }],
        ..Trace::default()
    };
    let mut out = Vec::new();
    write_csv(&trace, &mut out).unwrap();
    assert_eq!(
        String::from_utf8(out).unwrap(),
        "time_s,direction,frame_len,ip_len,payload_len,protocols,src,dst,src_port,dst_port,ip_proto\n\
         -0.000000001,out,583,569,517,IPV4:TCP:TLS,192.168.1.10 (00:17:88:2b:9a:0c),2001:db8::1,49152,443,6\n"
    );
}

fn first_capture(dir: &Path, device: &str) -> PathBuf {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir.join(device))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "pcap"))
        .collect();
    files.sort();
    files.swap_remove(0)
}

#[test]
fn iot_sentinel_captures_round_trip_through_csv() {
    let Some(dir) = shared_data("iot-sentinel") else {
        return;
    };
    for device in ["HueBridge", "D-LinkCam", "Withings", "EdimaxPlug1101W"] {
        let trace = read_trace(first_capture(&dir, device), STRICT).unwrap();
        let mut text = Vec::new();
        write_csv(&trace, &mut text).unwrap();
        let back = read_csv(&text[..], device, STRICT).unwrap();
        assert_eq!(resolved(&back), resolved(&trace), "{device}");
    }
}

/// tshark's own dissection of a real capture, exported with the iPET columns plus frame.len,
/// IPv6 addresses and ports, reads to the same times, sizes, addresses and ports as hush's pcap
/// reader gives.
#[test]
fn tshark_export_of_a_real_capture_agrees_with_the_pcap_reader() {
    let Some(dir) = shared_data("iot-sentinel") else {
        return;
    };
    let file = first_capture(&dir, "HueBridge");
    let fields = [
        "frame.time_epoch",
        "frame.len",
        "ip.src",
        "ip.dst",
        "ip.proto",
        "tcp.len",
        "udp.length",
        "eth.src",
        "eth.dst",
        "ipv6.src",
        "ipv6.dst",
        "tcp.srcport",
        "tcp.dstport",
        "udp.srcport",
        "udp.dstport",
    ];
    let mut cmd = std::process::Command::new("tshark");
    cmd.args(["-r"])
        .arg(&file)
        .args(["-T", "fields", "-E", "header=y", "-E", "separator=,"]);
    cmd.args(["-E", "occurrence=f"]);
    for f in fields {
        cmd.args(["-e", f]);
    }
    let Ok(out) = cmd.output() else {
        eprintln!("skipped: tshark is not installed");
        return;
    };
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let from_tshark = read_csv(&out.stdout[..], "tshark", STRICT).unwrap();
    let from_pcap = read_trace(&file, STRICT).unwrap();
    assert_eq!(from_tshark.packets.len(), from_pcap.packets.len());
    for (a, b) in from_tshark.packets.iter().zip(&from_pcap.packets) {
        assert_eq!((a.t_ns, a.frame_len), (b.t_ns, b.frame_len));
        assert_eq!(from_tshark.endpoint(a.src), from_pcap.endpoint(b.src));
        assert_eq!(from_tshark.endpoint(a.dst), from_pcap.endpoint(b.dst));
        if b.proto.intersects(Proto::TCP | Proto::UDP) {
            assert_eq!(
                (a.payload_len, a.ip_proto),
                (b.payload_len, b.ip_proto),
                "{b:?}"
            );
            assert_eq!((a.src_port, a.dst_port), (b.src_port, b.dst_port), "{b:?}");
        }
    }
}

// ---- pcap out ----

const DEVICE_MAC: &str = "00:17:88:2b:9a:0c";
const GATEWAY_MAC: &str = "00:b5:6d:06:08:ba";

/// A trace with one packet of every kind the writer synthesizes. Endpoint ids: 0 device (IPv4),
/// 1 cloud server behind the gateway, 2 device (IPv6), 3 mDNS group, 4 broadcast MAC, 5 the
/// gateway's MAC alone, 6 an endpoint with no address, 7 IGMP group, 8 the device's MAC alone,
/// 9 the MLD group.
fn hand_built_trace() -> Trace {
    let e = |m: Option<&str>, i: Option<&str>| Endpoint {
        mac: m.map(|m| m.parse().unwrap()),
        ip: i.map(|i| i.parse().unwrap()),
    };
    let endpoints = vec![
        e(Some(DEVICE_MAC), Some("192.168.1.10")),
        e(Some(GATEWAY_MAC), Some("52.1.2.3")),
        e(Some(DEVICE_MAC), Some("fe80::217:88ff:fe2b:9a0c")),
        e(Some("33:33:00:00:00:fb"), Some("ff02::fb")),
        e(Some("ff:ff:ff:ff:ff:ff"), None),
        e(Some(GATEWAY_MAC), None),
        e(None, None),
        e(Some("01:00:5e:00:00:16"), Some("224.0.0.22")),
        e(Some(DEVICE_MAC), None),
        e(Some("33:33:00:00:00:16"), Some("ff02::16")),
    ];
    let out = Direction::Outbound;
    let inb = Direction::Inbound;
    let tcp = Proto::IPV4 | Proto::TCP;
    let udp = Proto::IPV4 | Proto::UDP;
    #[rustfmt::skip]
    #[allow(clippy::type_complexity)] // one row per packet, read as a table
    let rows: [(u32, u32, u32, Proto, u16, u16, u32, u32, Direction, u8); 18] = [
        // frame, ip, payload, flags, ports, src, dst, dir, ip_proto
        (583, 569, 517, tcp | Proto::TLS, 49152, 443, 0, 1, out, 6),
        (1434, 1420, 1368, tcp | Proto::TLS, 443, 49152, 1, 0, inb, 6),
        (74, 60, 0, tcp, 49152, 443, 0, 1, out, 6),
        (60, 40, 0, tcp, 443, 49152, 1, 0, inb, 6),
        (230, 216, 164, tcp | Proto::HTTP, 49153, 80, 0, 1, out, 6),
        (77, 63, 35, udp | Proto::DNS, 40000, 53, 0, 1, out, 17),
        (120, 106, 58, Proto::IPV6 | Proto::UDP | Proto::MDNS, 5353, 5353, 2, 3, out, 17),
        (98, 84, 0, Proto::IPV4 | Proto::ICMP, 0, 0, 1, 0, inb, 1),
        (60, 32, 0, Proto::IPV4 | Proto::ROUTER_ALERT | Proto::OTHER_IP, 0, 0, 0, 7, out, 2),
        (42, 0, 0, Proto::ARP, 0, 0, 8, 4, out, 0),
        (60, 0, 0, Proto::ARP, 0, 0, 5, 8, inb, 0),
        (113, 0, 0, Proto::EAPOL, 0, 0, 5, 8, inb, 0),
        (60, 0, 0, Proto::LLC, 0, 0, 5, 4, Direction::Unknown, 0),
        // Shorter than its headers: the IP header says 63 bytes, the wire 42.
        (42, 63, 35, udp | Proto::DNS, 40001, 53, 0, 1, out, 17),
        (78, 60, 0, tcp | Proto::VLAN, 49154, 8883, 0, 1, out, 6),
        // MLDv2 report: hop-by-hop router alert, one 20-byte record.
        (90, 76, 0, Proto::IPV6 | Proto::ICMPV6 | Proto::ROUTER_ALERT, 0, 0, 2, 9, out, 58),
        // HTTP too short for a Content-Length header.
        (80, 66, 14, tcp | Proto::HTTP, 8899, 3391, 1, 0, inb, 6),
        // A size-only packet, as a time,direction,size CSV gives.
        (1500, 0, 0, Proto::empty(), 0, 0, 6, 6, inb, 0),
    ];
    let packets = rows
        .iter()
        .enumerate()
        .map(|(i, r)| Packet {
            t_ns: 1_474_552_510_000_000_000 + i as i64 * 1_234_567,
            frame_len: r.0,
            ip_len: r.1,
            payload_len: r.2,
            proto: r.3,
            src_port: r.4,
            dst_port: r.5,
            src: EndpointId(r.6),
            dst: EndpointId(r.7),
            dir: r.8,
            ip_proto: r.9,
        })
        .collect();
    Trace {
        name: "hand-built".into(),
        packets,
        endpoints,
        ..Trace::default()
    }
}

fn pcap_bytes(trace: &Trace, seed: u64) -> Vec<u8> {
    let mut out = Vec::new();
    write_pcap(trace, &mut out, seed).unwrap();
    out
}

#[test]
fn hand_built_trace_reads_back_from_its_pcap() {
    let trace = hand_built_trace();
    let back = read_from(&pcap_bytes(&trace, 1)[..], "out.pcap", STRICT).unwrap();
    assert_eq!(back.report.format, Some(Format::Pcap));
    assert!(!back.report.has_anomalies(), "{:?}", back.report);
    assert_eq!(back.packets.len(), trace.packets.len());
    for (i, (a, b)) in trace.packets.iter().zip(&back.packets).enumerate() {
        assert_eq!((a.t_ns, a.frame_len), (b.t_ns, b.frame_len), "packet {i}");
        let fields = |p: &Packet| (p.ip_len, p.payload_len, p.src_port, p.dst_port, p.ip_proto);
        if i != 17 {
            assert_eq!(fields(a), fields(b), "packet {i}");
            assert_eq!(trace.endpoint(a.src), back.endpoint(b.src), "packet {i}");
            assert_eq!(trace.endpoint(a.dst), back.endpoint(b.dst), "packet {i}");
            assert_eq!(a.proto, b.proto, "packet {i}");
        }
    }
    // The size-only packet: IPv4, experimental protocol 253, from a made-up peer to the device.
    let last = &back.packets[17];
    assert_eq!((last.ip_len, last.ip_proto), (1486, 253));
    assert_eq!(last.proto, Proto::IPV4 | Proto::OTHER_IP);
    assert_eq!(back.endpoint(last.src).ip, ip("10.0.0.9"));
    assert_eq!(back.endpoint(last.dst).ip, ip("10.0.0.2"));
    assert_eq!(back.endpoint(last.dst).mac, mac("02:00:00:00:00:01"));
}

#[test]
fn same_seed_same_bytes_other_seed_other_payload() {
    let trace = hand_built_trace();
    let a = pcap_bytes(&trace, 42);
    assert_eq!(a, pcap_bytes(&trace, 42));
    let b = pcap_bytes(&trace, 43);
    assert_eq!(a.len(), b.len());
    assert_ne!(a, b);
    let (ra, rb) = (
        read_from(&a[..], "a", STRICT).unwrap(),
        read_from(&b[..], "b", STRICT).unwrap(),
    );
    assert_eq!(resolved(&ra), resolved(&rb));
}

#[test]
fn pcap_header_is_little_endian_nanosecond_ethernet_and_records_keep_frame_len() {
    let trace = hand_built_trace();
    let bytes = pcap_bytes(&trace, 0);
    assert_eq!(bytes[..4], 0xa1b2_3c4du32.to_le_bytes());
    assert_eq!(bytes[20..24], 1u32.to_le_bytes());
    // Walk the records: captured length = original length = frame_len (none passes the snap length).
    let mut at = 24;
    for p in &trace.packets {
        let word = |k: usize| u32::from_le_bytes(bytes[at + k..at + k + 4].try_into().unwrap());
        assert_eq!(
            i64::from(word(0)) * 1_000_000_000 + i64::from(word(4)),
            p.t_ns
        );
        assert_eq!((word(8), word(12)), (p.frame_len, p.frame_len));
        at += 16 + p.frame_len as usize;
    }
    assert_eq!(at, bytes.len());
}

#[test]
fn raw_ip_traces_are_written_as_raw_ip() {
    // A trace read from a raw-IP capture: no MACs, frame length equal to IP length.
    let mut trace = hand_built_trace();
    trace.endpoints = vec![
        Endpoint {
            mac: None,
            ip: ip("10.8.0.2"),
        },
        Endpoint {
            mac: None,
            ip: ip("1.1.1.1"),
        },
    ];
    trace.packets.truncate(6);
    for p in &mut trace.packets {
        p.frame_len = p.ip_len;
        // pcap keeps no direction.
        p.dir = Direction::Unknown;
        p.src = EndpointId(p.src.0.min(1));
        p.dst = EndpointId(p.dst.0.min(1));
    }
    let back = read_from(&pcap_bytes(&trace, 5)[..], "raw", STRICT).unwrap();
    assert_eq!(back.report.link_types.keys().collect::<Vec<_>>(), ["RAW"]);
    assert_eq!(resolved(&back), resolved(&trace));
}

#[test]
fn times_pcap_cannot_store_are_an_error() {
    let mut trace = hand_built_trace();
    trace.packets[3].t_ns = -1;
    let err = write_pcap(&trace, Vec::new(), 0).unwrap_err();
    assert_eq!(
        err.to_string(),
        "<input>: packet 3: time -1 ns is outside what pcap stores (1970 to 2106)"
    );
}

#[test]
fn iot_sentinel_captures_round_trip_through_pcap() {
    let Some(dir) = shared_data("iot-sentinel") else {
        return;
    };
    let mut devices: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_dir())
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    devices.sort();
    assert_eq!(devices.len(), 31);
    let (mut packets, mut proto_differences) = (0, 0);
    for device in &devices {
        let trace = read_trace(first_capture(&dir, device), STRICT).unwrap();
        let back = read_from(&pcap_bytes(&trace, 9)[..], device, STRICT).unwrap();
        assert_eq!(back.packets.len(), trace.packets.len(), "{device}");
        for (a, b) in trace.packets.iter().zip(&back.packets) {
            assert_eq!(
                (a.t_ns, a.frame_len),
                (b.t_ns, b.frame_len),
                "{device}: {a:?}"
            );
            assert_eq!(
                trace.endpoint(a.src),
                back.endpoint(b.src),
                "{device}: {a:?}"
            );
            assert_eq!(
                trace.endpoint(a.dst),
                back.endpoint(b.dst),
                "{device}: {a:?}"
            );
            if a.proto.intersects(Proto::TCP | Proto::UDP) {
                let fields =
                    |p: &Packet| (p.ip_len, p.payload_len, p.src_port, p.dst_port, p.ip_proto);
                assert_eq!(fields(a), fields(b), "{device}: {a:?}");
            }
            // Written BOOTP messages always carry the DHCP cookie; nothing else may change.
            if a.proto | Proto::DHCP != b.proto | Proto::DHCP {
                proto_differences += 1;
                eprintln!("{device}: flags {:?} read back as {:?}", a.proto, b.proto);
            }
            packets += 1;
        }
    }
    println!("iot-sentinel pcap round trip: {packets} packets, {proto_differences} flag changes");
    assert_eq!(proto_differences, 0);
}

fn tshark(args: &[&str]) -> Option<String> {
    let out = std::process::Command::new("tshark")
        .args(args)
        .output()
        .ok()?;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    Some(String::from_utf8(out.stdout).unwrap())
}

/// Wireshark's dissectors, checksum validation on, find nothing wrong in the written frames but
/// the one frame that is shorter than its own IP header says.
#[test]
fn tshark_reads_the_written_pcap_without_errors() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("out.pcap");
    let trace = hand_built_trace();
    std::fs::write(&path, pcap_bytes(&trace, 3)).unwrap();
    let path = path.to_str().unwrap();
    let Some(lens) = tshark(&["-r", path, "-T", "fields", "-e", "frame.len"]) else {
        eprintln!("skipped: tshark is not installed");
        return;
    };
    let expected: Vec<String> = trace
        .packets
        .iter()
        .map(|p| p.frame_len.to_string())
        .collect();
    assert_eq!(lens.lines().collect::<Vec<_>>(), expected);
    let checks = [
        "-o",
        "ip.check_checksum:TRUE",
        "-o",
        "tcp.check_checksum:TRUE",
        "-o",
        "udp.check_checksum:TRUE",
    ];
    // Frames with an expert item of severity "error" (malformed, bad checksum, bad length).
    let mut args = vec!["-r", path, "-Y", "_ws.expert.severity >= 0x800000"];
    args.extend([
        "-T",
        "fields",
        "-e",
        "frame.number",
        "-e",
        "_ws.expert.message",
    ]);
    args.extend(checks);
    let errors = tshark(&args).unwrap();
    let frames: Vec<&str> = errors
        .lines()
        .map(|l| l.split('\t').next().unwrap())
        .collect();
    assert_eq!(frames, ["14"], "{errors}");
    assert!(
        errors.contains("IPv4 total length exceeds packet length"),
        "{errors}"
    );
    // The protocols tshark sees are the ones the flags named, but for the cut DNS query (too
    // short for the DNS layer) and HTTP on ports tshark does not know for HTTP.
    let mut args = vec!["-r", path, "-T", "fields", "-e", "_ws.col.Protocol"];
    args.extend(checks);
    let protocols = tshark(&args).unwrap();
    assert_eq!(
        protocols.lines().collect::<Vec<_>>(),
        [
            "TLSv1.2", "TLSv1.2", "TCP", "TCP", "HTTP", "DNS", "MDNS", "ICMP", "IGMPv2", "ARP",
            "ARP", "EAPOL", "LLC", "UDP", "TCP", "ICMPv6", "TCP", "IPv4"
        ]
    );
}
