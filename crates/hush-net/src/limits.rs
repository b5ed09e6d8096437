//! What a misbehaving peer or a hostile network may cost: limits, the replay guard and the
//! per-source handshake rate.
//!
//! Every limit has a default an operator exposing a gateway to the internet can keep, and can be
//! set in TOML (`[gateway.limits]`, `[proxy.limits]`; see [`crate::config`]).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use hush_shape::{PublicKey, Tai64N};
use serde::Deserialize;

use crate::NetError;

/// Limits of one end of a tunnel (the gateway uses all of them, the proxy the per-tunnel ones).
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    /// Bytes one stream may have in flight towards us (its credit window): what we buffer for
    /// a stream whose local side stopped reading. At least 64 KiB.
    pub stream_window_bytes: u32,
    /// Bytes all streams of one tunnel may have buffered towards local sockets; a stream that
    /// would go past it is reset rather than stall the others.
    pub tunnel_buffer_bytes: u64,
    /// Streams open at once in one tunnel; more are refused with a reset.
    pub max_streams_per_tunnel: usize,
    /// Tunnels served at once (gateway).
    pub max_tunnels: usize,
    /// Handshakes in progress at once (gateway): connections past it are closed unanswered.
    pub max_handshakes_in_flight: usize,
    /// New connections per second accepted from one source address (gateway), on average...
    pub handshakes_per_s_per_source: f64,
    /// ...and in a burst.
    pub handshake_burst_per_source: u32,
    /// How long a peer has to complete the handshake and send its first record.
    pub handshake_timeout_s: f64,
    /// A tunnel with no record from the peer for this long is closed.
    pub idle_timeout_s: f64,
    /// Send an empty message when we have sent no record for this long, so the peer's idle
    /// timeout does not close a quiet tunnel (it rides the schedule's next slot).
    pub keepalive_s: f64,
    /// Proxy: longest wait between attempts to reach a gateway that went away (attempts start
    /// at 0.25 s and double, with jitter, up to this).
    pub reconnect_max_s: f64,
    /// Proxy: how long a local connection accepted while the tunnel is down waits for it before
    /// it is refused.
    pub reconnect_wait_s: f64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            stream_window_bytes: 256 * 1024,
            tunnel_buffer_bytes: 64 * 1024 * 1024,
            max_streams_per_tunnel: 1024,
            max_tunnels: 256,
            max_handshakes_in_flight: 64,
            handshakes_per_s_per_source: 2.0,
            handshake_burst_per_source: 20,
            handshake_timeout_s: 10.0,
            idle_timeout_s: 120.0,
            keepalive_s: 25.0,
            reconnect_max_s: 30.0,
            reconnect_wait_s: 10.0,
        }
    }
}

impl Limits {
    /// Check the values (bad input: names the field).
    pub fn validate(&self) -> Result<(), NetError> {
        let bad = |field: &str, why: &str| Err(NetError::Config(format!("limits.{field}: {why}")));
        if self.stream_window_bytes < crate::mux::INITIAL_WINDOW_BYTES {
            return bad("stream_window_bytes", "must be at least 65536");
        }
        if self.tunnel_buffer_bytes < u64::from(self.stream_window_bytes) {
            return bad(
                "tunnel_buffer_bytes",
                "must be at least stream_window_bytes",
            );
        }
        for (field, v) in [
            ("max_streams_per_tunnel", self.max_streams_per_tunnel),
            ("max_tunnels", self.max_tunnels),
            ("max_handshakes_in_flight", self.max_handshakes_in_flight),
        ] {
            if v == 0 {
                return bad(field, "must be at least 1");
            }
        }
        if self.handshake_burst_per_source == 0 {
            return bad("handshake_burst_per_source", "must be at least 1");
        }
        for (field, v) in [
            (
                "handshakes_per_s_per_source",
                self.handshakes_per_s_per_source,
            ),
            ("handshake_timeout_s", self.handshake_timeout_s),
            ("idle_timeout_s", self.idle_timeout_s),
            ("keepalive_s", self.keepalive_s),
            ("reconnect_max_s", self.reconnect_max_s),
            ("reconnect_wait_s", self.reconnect_wait_s),
        ] {
            if !(v.is_finite() && v > 0.0 && v < 1e9) {
                return bad(
                    field,
                    "must be a positive number of seconds (or per second)",
                );
            }
        }
        if self.keepalive_s >= self.idle_timeout_s {
            return bad("keepalive_s", "must be shorter than idle_timeout_s");
        }
        Ok(())
    }

    /// [`Limits::handshake_timeout_s`] as a duration.
    pub fn handshake_timeout(&self) -> Duration {
        Duration::from_secs_f64(self.handshake_timeout_s)
    }

    /// [`Limits::idle_timeout_s`] as a duration.
    pub fn idle_timeout(&self) -> Duration {
        Duration::from_secs_f64(self.idle_timeout_s)
    }

    /// [`Limits::keepalive_s`] as a duration.
    pub fn keepalive(&self) -> Duration {
        Duration::from_secs_f64(self.keepalive_s)
    }
}

/// The greatest handshake timestamp accepted from each peer key (WireGuard's anti-replay rule):
/// a first handshake message whose timestamp is not greater is a replay and gets no answer.
///
/// Kept in memory: after a gateway restarts, an old first message is answered once more, but its
/// sender cannot produce the authenticated record the gateway waits for before it sends any
/// shaped traffic, so the replay still costs one unanswered connection.
#[derive(Debug, Default)]
pub struct ReplayGuard {
    seen: Mutex<HashMap<PublicKey, Tai64N>>,
}

/// Peers remembered at most (for gateways open to any key): past this, the oldest half is
/// forgotten.
const REPLAY_PEERS_MAX: usize = 65_536;

impl ReplayGuard {
    /// An empty guard.
    pub fn new() -> ReplayGuard {
        ReplayGuard::default()
    }

    /// Accept `stamp` from `peer` if it is newer than every one accepted before, and remember it.
    pub fn check(&self, peer: PublicKey, stamp: Tai64N) -> bool {
        let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        match seen.get(&peer) {
            Some(&last) if stamp <= last => false,
            _ => {
                if seen.len() >= REPLAY_PEERS_MAX && !seen.contains_key(&peer) {
                    let mut stamps: Vec<Tai64N> = seen.values().copied().collect();
                    let mid = stamps.len() / 2;
                    let (_, &mut median, _) = stamps.select_nth_unstable(mid);
                    seen.retain(|_, t| *t > median);
                }
                seen.insert(peer, stamp);
                true
            }
        }
    }
}

/// A token bucket of handshakes per source address.
#[derive(Debug)]
pub(crate) struct SourceRate {
    rate_per_s: f64,
    burst: f64,
    buckets: Mutex<HashMap<IpAddr, (f64, Instant)>>,
}

/// Sources tracked at most; full buckets are forgotten first.
const RATE_SOURCES_MAX: usize = 16_384;

impl SourceRate {
    pub fn new(limits: &Limits) -> SourceRate {
        SourceRate {
            rate_per_s: limits.handshakes_per_s_per_source,
            burst: f64::from(limits.handshake_burst_per_source),
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// Take one token for `source` at `now`; false if its bucket is empty.
    pub fn allow(&self, source: IpAddr, now: Instant) -> bool {
        let mut buckets = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        if buckets.len() >= RATE_SOURCES_MAX && !buckets.contains_key(&source) {
            let (rate, burst) = (self.rate_per_s, self.burst);
            buckets.retain(|_, (tokens, at)| {
                *tokens + now.saturating_duration_since(*at).as_secs_f64() * rate < burst
            });
            if buckets.len() >= RATE_SOURCES_MAX {
                // Every tracked source is busy: treat newcomers as rate limited.
                return false;
            }
        }
        let (tokens, at) = buckets.entry(source).or_insert((self.burst, now));
        *tokens = (*tokens + now.saturating_duration_since(*at).as_secs_f64() * self.rate_per_s)
            .min(self.burst);
        *at = now;
        if *tokens >= 1.0 {
            *tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_documented_defaults_are_valid_and_bad_values_are_named() {
        Limits::default()
            .validate()
            .unwrap_or_else(|e| panic!("{e}"));
        let bad = Limits {
            stream_window_bytes: 100,
            ..Limits::default()
        };
        assert!(
            bad.validate()
                .unwrap_err()
                .to_string()
                .contains("stream_window_bytes")
        );
        let bad = Limits {
            keepalive_s: 500.0,
            ..Limits::default()
        };
        assert!(
            bad.validate()
                .unwrap_err()
                .to_string()
                .contains("keepalive_s")
        );
        let bad = Limits {
            idle_timeout_s: f64::NAN,
            ..Limits::default()
        };
        assert!(
            bad.validate()
                .unwrap_err()
                .to_string()
                .contains("idle_timeout_s")
        );
    }

    #[test]
    fn replays_and_old_timestamps_are_refused_per_peer() {
        let g = ReplayGuard::new();
        let (a, b) = (PublicKey([1; 32]), PublicKey([2; 32]));
        let t = |s| Tai64N::from_unix(s, 0);
        assert!(g.check(a, t(100)));
        assert!(!g.check(a, t(100)), "the same message again");
        assert!(!g.check(a, t(99)), "an older one");
        assert!(g.check(b, t(50)), "another peer has its own clock");
        assert!(g.check(a, t(101)));
    }

    #[test]
    fn each_source_gets_its_burst_then_its_rate() {
        let limits = Limits {
            handshakes_per_s_per_source: 1.0,
            handshake_burst_per_source: 3,
            ..Limits::default()
        };
        let r = SourceRate::new(&limits);
        let (x, y): (IpAddr, IpAddr) = ("192.0.2.1".parse().unwrap(), "192.0.2.2".parse().unwrap());
        let t0 = Instant::now();
        assert!((0..3).all(|_| r.allow(x, t0)));
        assert!(!r.allow(x, t0), "burst spent");
        assert!(r.allow(y, t0), "other sources are not affected");
        assert!(!r.allow(x, t0 + Duration::from_millis(500)));
        assert!(
            r.allow(x, t0 + Duration::from_millis(1600)),
            "refilled at 1/s"
        );
    }
}
