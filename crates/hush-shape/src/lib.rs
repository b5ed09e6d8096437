//! The sans-IO traffic-shaping engine of hush.
//!
//! A device that sends through hush-shape only ever puts records on the wire whose sizes and
//! send times come from a [`Schedule`] chosen in advance (Datta, Apthorpe and Feamster's
//! *independent link padding*): short messages are padded, long ones fragmented, and when there
//! is nothing to say a cover record goes out anyway. Every record is sealed with ChaCha20-Poly1305
//! after a Noise IK handshake ([`crypto`]), so cover and real records look the same and any
//! tampering is detected. The engine keeps exact accounts of every byte ([`ShaperStats`]).
//!
//! It never touches a socket, a clock or a thread: the caller passes `now` and a seed, and moves
//! bytes. The same engine runs under the simulator (virtual time over a recorded trace, in
//! hush-defense) and under the live drivers (hush-net), so what the bench measures is what the
//! device ships.
//!
//! Main types: [`ShapeConfig`] (schedule, [`Policy`], [`Budget`]), [`Engine`] = [`Shaper`]
//! (outbound) + [`Receiver`] (inbound), [`Handshake`] and [`Session`], [`Instant`].
//!
//! # Driver contract
//!
//! - **MUST** pass a `now` that never goes backwards (the engine clamps it if it does).
//! - After [`Shaper::send`], and whenever `now` reaches [`Shaper::poll_timeout`], **MUST** call
//!   [`Shaper::poll_transmit`] until it returns `None`, writing each record whole and in order.
//! - **MUST** feed every byte read from the peer to [`Receiver::receive`] (any chunking) and then
//!   drain [`Receiver::poll_message`]; on end of stream **MUST** call [`Receiver::finish`], which
//!   tells a clean close from a cut stream.
//! - **SHOULD** send with Nagle's algorithm off (`TCP_NODELAY`), or records leave late and merged.
//! - A [`RecvError`] is final: the stream is untrustworthy and the connection should be dropped.
//!
//! ```
//! use hush_shape::{Engine, Instant, ScheduleSpec, Session, ShapeConfig};
//! use std::time::Duration;
//!
//! // Both ends of a session (a real Noise handshake, in memory).
//! let (dev, gw) = Session::in_memory_pair()?;
//! let config = ShapeConfig::new(ScheduleSpec::datta_low_latency()); // 150 B every 50 ms
//! let mut device = Engine::new(&config, dev, 42, Instant::ZERO)?;
//! let mut gateway = Engine::new(&config, gw, 7, Instant::ZERO)?;
//!
//! device.send(Instant::ZERO, b"motion detected")?;
//! device.close();
//! let mut now = Instant::ZERO;
//! let mut wire = Vec::new();
//! while let Some(deadline) = device.poll_timeout() {
//!     now = deadline;
//!     while let Some(record) = device.poll_transmit(now, &mut wire) {
//!         assert_eq!(record.size_bytes, 150);        // every record exactly the drawn size
//!         gateway.receive(&wire)?;                    // in reality: through a socket
//!     }
//! }
//! assert_eq!(gateway.poll_message().as_deref(), Some(&b"motion detected"[..]));
//! assert!(gateway.receiver().peer_closed());
//! assert_eq!(now, Instant::ZERO + Duration::from_millis(50));
//! let s = device.stats();
//! assert_eq!(s.wire_bytes, s.real_bytes + s.padding_bytes + s.framing_bytes + s.cover_bytes);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

pub mod crypto;
pub mod dist;
pub mod engine;
pub mod frame;
pub mod schedule;
pub mod time;

pub use crypto::{CryptoError, Handshake, Hello, Keypair, PublicKey, Role, Session, Tai64N};
pub use dist::{Dist, DistError};
pub use engine::{
    Budget, CloseRule, Engine, Padding, Policy, Receiver, ReceiverStats, RecordKind, RecvError,
    ScheduleSeed, SendError, SentMessage, ShapeConfig, Shaper, ShaperStats, Transmit,
};
pub use schedule::{Schedule, ScheduleSpec, Slot, SlotContext};
pub use time::Instant;

/// The random generator behind every schedule draw: xoshiro256++, seeded from a `u64`. Named by
/// its algorithm (not `StdRng`) so a seed gives the same traffic on every version of `rand`.
pub type ShapeRng = rand::rngs::Xoshiro256PlusPlus;
