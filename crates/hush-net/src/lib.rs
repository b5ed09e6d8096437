//! Live drivers for the hush shaping engine.
//!
//! hush-net moves the records of [`hush_shape`]'s sans-IO engine over real TCP sockets with a
//! real clock, and nothing else: every byte on the wire is one the engine chose, at the time it
//! chose.
//!
//! - [`blocking`]: [`blocking::Connection`] with `send`, `recv` (whole messages) and `close`
//!   (drains the queue first), shaped like Datta et al.'s library; threads, no runtime.
//! - [`aio`]: the tokio API: [`aio::Tunnel`] (message sender/receiver) and
//!   [`aio::ShapedStream`] (`AsyncRead + AsyncWrite`).
//! - [`mux`], [`proxy`], [`gateway`]: the `hush proxy` / `hush gateway` daemons. The proxy runs
//!   beside an unmodified device, accepts its TCP connections (SOCKS5 or fixed forwards) and
//!   carries all of them inside one shaped tunnel to the gateway, which connects to the real
//!   servers, so neither the number of connections nor their timing leaks.
//! - [`config`]: TOML configuration and key files; [`limits`]: what a peer may cost;
//!   [`policy`]: where a gateway may connect.
//!
//! # Hostile networks and peers
//!
//! - Every stream of a tunnel has its own credit window ([`mux`]): a stream whose far side stops
//!   reading stops consuming credit, and the others go on.
//! - The initiator's first handshake message carries a timestamp; a responder keeps the greatest
//!   seen per peer ([`limits::ReplayGuard`]) and answers no replay. A responder sends no shaped
//!   record before the initiator's first authenticated record, so a replayed or forged handshake
//!   draws no traffic. Handshakes are rate limited per source and capped in flight; tunnels,
//!   streams and buffers are capped; a tunnel silent for the idle timeout is closed.
//! - Schedule seeds are 256 bits from the OS per connection unless a caller asks for a
//!   reproducible `u64` ([`Options::new`], the CLI's `--insecure-seed`); keys and handshake
//!   randomness always come from the OS ([`generate_keypair`]).

pub mod aio;
pub mod blocking;
mod clock;
pub mod config;
mod error;
pub mod gateway;
mod handshake;
pub mod limits;
pub mod mux;
pub mod policy;
pub mod proxy;

use std::sync::Arc;

use hush_shape::ScheduleSeed;

pub use clock::Clock;
pub use error::{NetError, error_chain};
pub use handshake::{HANDSHAKE_TIMEOUT, generate_keypair, os_entropy};
pub use limits::Limits;

/// Observes every record a driver writes: for tests, benchmarks and capture taps.
pub trait Tap: Send + Sync {
    /// `record` is about to be written. `now` is the driver's clock reading for the wake-up that
    /// produced it (engine time of the connection's clock); records due together share it and go
    /// out in one write right after.
    fn on_record(&self, record: &hush_shape::Transmit, now: hush_shape::Instant);
}

/// Per-connection settings beyond the schedule.
#[derive(Clone, Default)]
pub struct Options {
    /// A reproducible seed of the schedule's random draws, for tests and reproduction only:
    /// `None` (the default) draws 256 bits from the OS for each connection.
    pub seed: Option<u64>,
    /// Called for each record written.
    pub tap: Option<Arc<dyn Tap>>,
    /// Timeouts and buffer limits.
    pub limits: Limits,
}

impl Options {
    /// Options with this **reproducible** schedule seed (tests, benchmarks, reproducing a run:
    /// anyone who knows it can predict the schedule) and no tap.
    pub fn new(seed: u64) -> Options {
        Options {
            seed: Some(seed),
            ..Options::default()
        }
    }

    /// Options whose schedule seed is drawn from the OS for each connection.
    pub fn secure() -> Options {
        Options::default()
    }

    /// Replace the limits.
    pub fn with_limits(mut self, limits: Limits) -> Options {
        self.limits = limits;
        self
    }

    /// The seed for one connection: the reproducible one, or 256 fresh bits.
    pub(crate) fn schedule_seed(&self) -> Result<ScheduleSeed, NetError> {
        Ok(match self.seed {
            Some(s) => ScheduleSeed::U64(s),
            None => ScheduleSeed::from(os_entropy()?),
        })
    }

    /// Add a tap.
    pub fn with_tap(mut self, tap: Arc<dyn Tap>) -> Options {
        self.tap = Some(tap);
        self
    }
}

impl std::fmt::Debug for Options {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Options")
            .field("seed", &self.seed.map_or("os", |_| "reproducible"))
            .field("tap", &self.tap.is_some())
            .field("limits", &self.limits)
            .finish()
    }
}
