//! Shared code for hush's benchmarks: the per-packet fields every reader in the read-speed
//! comparison extracts, summed so that the comparison can check all readers saw the same packets.
//!
//! The fields are the ones `bench/read_speed.sh` asks tshark for: time, frame length, IPv4
//! protocol, and TCP/UDP ports.

use std::io::Read;

use hush_trace::{PacketStream, Proto, Result};

/// Sums over per-packet fields. Two readers that agree on every packet agree on these.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct FieldSums {
    /// Packets read.
    pub packets: u64,
    /// Sum of frame lengths on the wire (`frame.len`).
    pub frame_bytes: u64,
    /// Sum of the IPv4 protocol field over IPv4 packets (`ip.proto`).
    pub ip_proto_sum: u64,
    /// Sum of source and destination ports over TCP and UDP packets.
    pub port_sum: u64,
    /// Sum of timestamps in whole microseconds since the Unix epoch, wrapping at 2^64 so that it
    /// is exact and independent of summation order.
    pub time_sum_us: u64,
}

impl FieldSums {
    /// Add one packet's fields.
    pub fn add(&mut self, p: &hush_trace::Packet) {
        self.packets += 1;
        self.frame_bytes += u64::from(p.frame_len);
        if p.proto.contains(Proto::IPV4) {
            self.ip_proto_sum += u64::from(p.ip_proto);
        }
        if p.proto.intersects(Proto::TCP | Proto::UDP) {
            self.port_sum += u64::from(p.src_port) + u64::from(p.dst_port);
        }
        self.time_sum_us = self
            .time_sum_us
            .wrapping_add(p.t_ns.div_euclid(1000) as u64);
    }

    /// Add another set of sums (for files read in parallel).
    pub fn absorb(&mut self, other: &FieldSums) {
        self.packets += other.packets;
        self.frame_bytes += other.frame_bytes;
        self.ip_proto_sum += other.ip_proto_sum;
        self.port_sum += other.port_sum;
        self.time_sum_us = self.time_sum_us.wrapping_add(other.time_sum_us);
    }

    /// One line of JSON, the format `bench/fields.py` reads.
    pub fn to_json(&self) -> String {
        format!(
            "{{\"packets\": {}, \"frame_bytes\": {}, \"ip_proto_sum\": {}, \"port_sum\": {}, \"time_sum_us\": {}}}",
            self.packets, self.frame_bytes, self.ip_proto_sum, self.port_sum, self.time_sum_us
        )
    }
}

/// Stream a pcap or pcapng source packet by packet, in constant memory, and sum its fields.
pub fn stream_fields(src: impl Read) -> Result<FieldSums> {
    let mut stream = PacketStream::new(src)?;
    let mut sums = FieldSums::default();
    while let Some(p) = stream.next_packet()? {
        sums.add(&p);
    }
    Ok(sums)
}
