//! Caller-owned time: the engine never reads a clock.

use std::fmt;
use std::ops::{Add, AddAssign, Sub};
use std::time::Duration;

/// A point in time, in nanoseconds since an arbitrary zero that the driver chooses.
///
/// The simulator uses the trace's own clock (zero at the first packet); the live drivers use the
/// moment the connection was created. Starting at zero rather than at `std::time::Instant::now()`
/// keeps simulated runs byte-identical from run to run.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Instant {
    nanos: u64,
}

impl Instant {
    /// The driver's zero.
    pub const ZERO: Instant = Instant { nanos: 0 };

    /// `nanos` nanoseconds after zero.
    pub const fn from_nanos(nanos: u64) -> Self {
        Instant { nanos }
    }

    /// `secs` seconds after zero (negative and NaN values clamp to zero).
    pub fn from_secs_f64(secs: f64) -> Self {
        Instant {
            nanos: secs_to_nanos(secs),
        }
    }

    /// Nanoseconds since zero.
    pub const fn as_nanos(self) -> u64 {
        self.nanos
    }

    /// Seconds since zero.
    pub fn as_secs_f64(self) -> f64 {
        self.nanos as f64 * 1e-9
    }

    /// Time from `earlier` to `self`, zero if `earlier` is later.
    pub fn saturating_duration_since(self, earlier: Instant) -> Duration {
        Duration::from_nanos(self.nanos.saturating_sub(earlier.nanos))
    }
}

/// Seconds to whole nanoseconds, clamping negatives and NaN to 0 and huge values to `u64::MAX`.
pub(crate) fn secs_to_nanos(secs: f64) -> u64 {
    if secs.is_nan() || secs <= 0.0 {
        0
    } else {
        // `as` saturates for values beyond u64::MAX.
        (secs * 1e9).round() as u64
    }
}

fn duration_nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

impl Add<Duration> for Instant {
    type Output = Instant;
    fn add(self, rhs: Duration) -> Instant {
        Instant {
            nanos: self.nanos.saturating_add(duration_nanos(rhs)),
        }
    }
}

impl AddAssign<Duration> for Instant {
    fn add_assign(&mut self, rhs: Duration) {
        *self = *self + rhs;
    }
}

impl Sub<Instant> for Instant {
    type Output = Duration;
    /// Saturating: an earlier minus a later instant is zero.
    fn sub(self, rhs: Instant) -> Duration {
        self.saturating_duration_since(rhs)
    }
}

impl fmt::Display for Instant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:.6}s", self.as_secs_f64())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arithmetic_saturates() {
        let t = Instant::from_nanos(5);
        assert_eq!(t - Instant::from_nanos(9), Duration::ZERO);
        assert_eq!(
            Instant::from_nanos(u64::MAX) + Duration::from_secs(1),
            Instant::from_nanos(u64::MAX)
        );
        assert_eq!(Instant::from_secs_f64(-1.0), Instant::ZERO);
        assert_eq!(Instant::from_secs_f64(f64::NAN), Instant::ZERO);
        assert_eq!(Instant::from_secs_f64(0.25).as_nanos(), 250_000_000);
    }
}
