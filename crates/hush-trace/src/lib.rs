//! Packets and traces for hush.
//!
//! hush-trace reads captures into one packet model ([`Packet`]: time, sizes, direction, protocol
//! flags, ports, endpoints) and gives every other hush crate the same view of traffic:
//!
//! - [`read_trace`] / [`PacketStream`]: pcap (any byte order, µs/ns, "modified"), pcapng (many
//!   interfaces, per-interface link type and timestamp resolution) and per-packet CSV, detected by
//!   magic bytes; Ethernet, Linux SLL/SLL2, raw IP, BSD loopback and 802.11 (+radiotap) frames.
//!   CSV in the CIC IoT Dataset 2022's per-packet layout is recognised by its header
//!   ([`cic`], which also loads that dataset's Interactions experiment per device).
//! - [`Trace`]: packets sorted by time, an endpoint table, and a [`ReadReport`] of anomalies
//!   (backwards timestamps, truncated records, skipped link types).
//!
//! ```no_run
//! use hush_trace::{read_trace, ReadOptions};
//! let trace = read_trace("capture.pcap", ReadOptions::default())?;
//! println!("{} packets over {:.1} s", trace.packets.len(), trace.duration_ns() as f64 * 1e-9);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

pub mod capture;
pub mod cic;
pub mod csv;
pub mod data;
pub mod dataset;
pub mod decode;
pub mod device;
pub mod error;
pub mod home;
pub mod packet;
pub mod read;
pub mod split;
pub mod summary;
pub mod trace;
pub mod window;
pub mod write;

pub use error::{ErrorKind, Result, TraceError};
pub use packet::{Direction, Endpoint, EndpointId, Mac, Packet, Proto};
pub use read::{PacketStream, ReadOptions, read_from, read_trace};
pub use trace::{EndpointTable, Format, ReadReport, Trace};
