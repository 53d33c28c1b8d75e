//! Millisecond clocks for [`crate::Limiter::check`]: the real monotonic one and a manual one.
//!
//! Every decision takes `now_ms` from the caller instead of reading a clock itself, so that
//! tests replay traces to the millisecond and a server can read the clock once per request.
//! nginx reads `ngx_current_msec`, a `CLOCK_MONOTONIC` millisecond count cached once per
//! event-loop turn; [`MonotonicClock`] is the same kind of clock (never goes back, unmoved by
//! NTP or the wall clock). The zone still copes with a clock that goes back, as nginx does.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

/// A source of milliseconds that should never go backwards.
pub trait Clock: Send + Sync {
    /// Milliseconds since an origin fixed for the clock's lifetime.
    fn now_ms(&self) -> u64;
}

/// Milliseconds elapsed since the clock was created, from [`Instant`] (monotonic).
#[derive(Debug, Clone, Copy)]
pub struct MonotonicClock {
    origin: Instant,
}

impl MonotonicClock {
    /// A clock whose origin is now.
    pub fn new() -> Self {
        Self {
            origin: Instant::now(),
        }
    }
}

impl Default for MonotonicClock {
    fn default() -> Self {
        Self::new()
    }
}

impl Clock for MonotonicClock {
    fn now_ms(&self) -> u64 {
        u64::try_from(self.origin.elapsed().as_millis()).unwrap_or(u64::MAX)
    }
}

/// A clock that moves only when told to: for tests and trace replays.
#[derive(Debug, Default)]
pub struct ManualClock {
    now_ms: AtomicU64,
}

impl ManualClock {
    /// A clock that reads `now_ms` until moved.
    pub fn new(now_ms: u64) -> Self {
        Self {
            now_ms: AtomicU64::new(now_ms),
        }
    }

    /// Sets the time, backwards too (to test clock skew).
    pub fn set(&self, now_ms: u64) {
        self.now_ms.store(now_ms, Ordering::Relaxed);
    }

    /// Moves the time forward by `ms`.
    pub fn advance(&self, ms: u64) {
        self.now_ms.fetch_add(ms, Ordering::Relaxed);
    }
}

impl Clock for ManualClock {
    fn now_ms(&self) -> u64 {
        self.now_ms.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manual_clock_moves_only_when_told() {
        let c = ManualClock::new(5);
        assert_eq!(c.now_ms(), 5);
        c.advance(10);
        assert_eq!(c.now_ms(), 15);
        c.set(3);
        assert_eq!(c.now_ms(), 3);
    }

    #[test]
    fn monotonic_clock_starts_near_zero_and_never_goes_back() {
        let c = MonotonicClock::new();
        let a = c.now_ms();
        let b = c.now_ms();
        assert!(a < 1_000);
        assert!(b >= a);
    }
}
