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
//! - [`config`]: TOML configuration and key files.

pub mod aio;
pub mod blocking;
mod clock;
pub mod config;
mod error;
pub mod gateway;
mod handshake;
pub mod mux;
pub mod proxy;

use std::sync::Arc;

pub use clock::Clock;
pub use error::{NetError, error_chain};
pub use handshake::HANDSHAKE_TIMEOUT;

/// Observes every record a driver writes: for tests, benchmarks and capture taps.
pub trait Tap: Send + Sync {
    /// `record` is about to be written. `now` is the driver's clock reading for the wake-up that
    /// produced it (engine time of the connection's clock); records due together share it and go
    /// out in one write right after.
    fn on_record(&self, record: &hush_shape::Transmit, now: hush_shape::Instant);
}

/// Per-connection settings beyond the schedule.
#[derive(Clone)]
pub struct Options {
    /// Seed of the schedule's random draws.
    pub seed: u64,
    /// Called for each record written.
    pub tap: Option<Arc<dyn Tap>>,
}

impl Options {
    /// Options with this schedule seed and no tap.
    pub fn new(seed: u64) -> Options {
        Options { seed, tap: None }
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
            .field("seed", &self.seed)
            .field("tap", &self.tap.is_some())
            .finish()
    }
}
