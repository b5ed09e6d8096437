//! A trace: packets sorted by time, their endpoint table, and what reading them reported.

use std::collections::BTreeMap;

use rustc_hash::FxHashMap;
use serde::{Deserialize, Serialize};

use crate::packet::{Endpoint, EndpointId, Packet};

/// The file format a trace was read from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    /// Classic libpcap (any byte order, µs or ns, or the "modified" variant).
    Pcap,
    /// pcapng.
    Pcapng,
    /// Per-packet CSV (tshark fields export or `time,direction,size`).
    Csv,
}

/// What reading a file found besides packets: counts, and the anomalies a user should know about.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReadReport {
    /// Format of the input, once detected.
    pub format: Option<Format>,
    /// Capture records (frames) read, including skipped ones.
    pub records: u64,
    /// Sum of captured bytes over all records (what capinfos calls data size).
    pub captured_bytes: u64,
    /// Records whose captured length is shorter than the frame (snap length cut them).
    pub snap_truncated: u64,
    /// Packets whose timestamp is earlier than the packet before them in the file. The trace is
    /// sorted by time anyway; this says how often the file disagreed.
    pub backwards_timestamps: u64,
    /// Records not turned into packets, by reason (`link type PPP`, `802.11 non-data`).
    pub skipped: BTreeMap<String, u64>,
    /// Link types seen, by name, with record counts.
    pub link_types: BTreeMap<String, u64>,
    /// Byte offset of a last record cut off by the end of the file (its packets before are kept).
    pub truncated_tail_at: Option<u64>,
    /// The error that ended reading early, when reading is lenient; packets before it are kept.
    pub stopped_early: Option<String>,
    /// Non-fatal oddities (unknown pcapng interface, an unparseable block), at most a few.
    pub warnings: Vec<String>,
}

impl ReadReport {
    /// Most warnings kept per file: enough to diagnose, bounded for hostile input.
    pub const MAX_WARNINGS: usize = 16;

    /// Record a warning, dropping it once [`Self::MAX_WARNINGS`] are kept.
    pub fn warn(&mut self, msg: impl Into<String>) {
        if self.warnings.len() < Self::MAX_WARNINGS {
            self.warnings.push(msg.into());
        }
    }

    /// Count a skipped record.
    pub fn skip(&mut self, reason: impl Into<String>) {
        *self.skipped.entry(reason.into()).or_default() += 1;
    }

    /// True when anything unusual happened.
    pub fn has_anomalies(&self) -> bool {
        self.backwards_timestamps > 0
            || !self.skipped.is_empty()
            || self.truncated_tail_at.is_some()
            || self.stopped_early.is_some()
            || !self.warnings.is_empty()
    }

    /// Add another report's counts into this one (for datasets and merged inputs).
    pub fn absorb(&mut self, other: &ReadReport) {
        self.records += other.records;
        self.captured_bytes += other.captured_bytes;
        self.snap_truncated += other.snap_truncated;
        self.backwards_timestamps += other.backwards_timestamps;
        for (k, v) in &other.skipped {
            *self.skipped.entry(k.clone()).or_default() += v;
        }
        for (k, v) in &other.link_types {
            *self.link_types.entry(k.clone()).or_default() += v;
        }
        for w in &other.warnings {
            self.warn(w.clone());
        }
    }
}

/// Interns endpoints so packets can refer to them by a 4-byte id.
#[derive(Debug, Clone, Default)]
pub struct EndpointTable {
    list: Vec<Endpoint>,
    index: FxHashMap<Endpoint, EndpointId>,
}

impl EndpointTable {
    /// The id of `e`, adding it if new.
    pub fn intern(&mut self, e: Endpoint) -> EndpointId {
        if let Some(&id) = self.index.get(&e) {
            return id;
        }
        let id = EndpointId(self.list.len() as u32);
        self.list.push(e);
        self.index.insert(e, id);
        id
    }

    /// Build a table from an existing list (ids are positions).
    pub fn from_list(list: Vec<Endpoint>) -> Self {
        let index = list
            .iter()
            .enumerate()
            .map(|(i, e)| (*e, EndpointId(i as u32)))
            .collect();
        EndpointTable { list, index }
    }

    /// The endpoints, indexed by id.
    pub fn into_list(self) -> Vec<Endpoint> {
        self.list
    }

    /// The endpoints, indexed by id.
    pub fn as_slice(&self) -> &[Endpoint] {
        &self.list
    }
}

/// Packets of one capture (or one device of a capture), sorted by time.
#[derive(Debug, Clone, Default)]
pub struct Trace {
    /// Where it came from: a file path, `-`, or a derived name like `capture.pcap#00:17:88:..`.
    pub name: String,
    /// Packets in time order.
    pub packets: Vec<Packet>,
    /// Endpoint table that [`Packet::src`] and [`Packet::dst`] index.
    pub endpoints: Vec<Endpoint>,
    /// What reading found.
    pub report: ReadReport,
}

/// An endpoint that packets refer to but the table lacks; returned for hand-built traces.
pub const UNKNOWN_ENDPOINT: Endpoint = Endpoint {
    mac: None,
    ip: None,
};

impl Trace {
    /// The endpoint an id refers to (a placeholder with neither address if the id is out of range).
    pub fn endpoint(&self, id: EndpointId) -> &Endpoint {
        self.endpoints
            .get(id.0 as usize)
            .unwrap_or(&UNKNOWN_ENDPOINT)
    }

    /// Sort packets by time (stable, so equal timestamps keep file order) and count how many were
    /// out of order in the file.
    pub fn sort_by_time(&mut self) {
        let backwards = self
            .packets
            .windows(2)
            .filter(|w| w[1].t_ns < w[0].t_ns)
            .count() as u64;
        self.report.backwards_timestamps += backwards;
        if backwards > 0 {
            self.packets.sort_by_key(|p| p.t_ns);
        }
    }

    /// Duration from first to last packet, in nanoseconds (0 for fewer than two packets).
    pub fn duration_ns(&self) -> i64 {
        match (self.packets.first(), self.packets.last()) {
            (Some(a), Some(b)) => b.t_ns - a.t_ns,
            _ => 0,
        }
    }

    /// Total frame bytes.
    pub fn total_bytes(&self) -> u64 {
        self.packets.iter().map(|p| u64::from(p.frame_len)).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sort_counts_backwards_steps() {
        let mut t = Trace::default();
        for ts in [5, 3, 4, 10, 9] {
            t.packets.push(Packet {
                t_ns: ts,
                ..Packet::default()
            });
        }
        t.sort_by_time();
        assert_eq!(t.report.backwards_timestamps, 2);
        let times: Vec<i64> = t.packets.iter().map(|p| p.t_ns).collect();
        assert_eq!(times, [3, 4, 5, 9, 10]);
    }
}
