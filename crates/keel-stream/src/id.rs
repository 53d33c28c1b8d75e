//! Event ids: what an SSE `id:` line carries and what `Last-Event-ID` sends back.
//!
//! Both backends use the shape of a Redis Stream id, `<milliseconds>-<sequence>`, so an id
//! means the same thing whether it came from `XADD` or from the in-memory ring, ids are
//! totally ordered, and "everything after id X" is a range query in either store. The
//! classic Django view sent no ids at all, so a reconnecting browser could not say what it
//! had already seen.

use std::fmt;
use std::str::FromStr;

/// The id of an event that keel keeps for replay: `<ms>-<seq>`, ordered first by the
/// millisecond timestamp, then by the sequence number within that millisecond.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct EventId {
    ms: u64,
    seq: u64,
}

impl EventId {
    /// The smallest id; nothing is ever published with it.
    pub const ZERO: EventId = EventId { ms: 0, seq: 0 };

    /// An id from its two parts.
    pub const fn new(ms: u64, seq: u64) -> Self {
        Self { ms, seq }
    }

    /// Milliseconds since the Unix epoch at which the event was stored.
    pub const fn ms(&self) -> u64 {
        self.ms
    }

    /// Sequence number among the events stored in the same millisecond.
    pub const fn seq(&self) -> u64 {
        self.seq
    }

    /// The next id after `self` that is also at least `now_ms`: how Redis picks the id of
    /// `XADD key *`, which keeps ids increasing even when the clock steps back.
    pub(crate) fn next_after(self, now_ms: u64) -> Self {
        if now_ms > self.ms {
            Self { ms: now_ms, seq: 0 }
        } else {
            Self {
                ms: self.ms,
                seq: self.seq.saturating_add(1),
            }
        }
    }
}

impl fmt::Display for EventId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.ms, self.seq)
    }
}

/// Why a string is not an [`EventId`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not an event id (expected `<ms>-<seq>`): {input:?}")]
pub struct ParseEventIdError {
    input: String,
}

impl FromStr for EventId {
    type Err = ParseEventIdError;

    /// Parses `<ms>-<seq>`, or a bare `<ms>` (read as `<ms>-0`, as Redis does).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = || ParseEventIdError {
            input: s.chars().take(64).collect(),
        };
        let digits = |p: &str| -> Result<u64, ParseEventIdError> {
            if p.is_empty() || !p.bytes().all(|b| b.is_ascii_digit()) {
                return Err(err());
            }
            p.parse().map_err(|_| err())
        };
        match s.split_once('-') {
            Some((ms, seq)) => Ok(Self {
                ms: digits(ms)?,
                seq: digits(seq)?,
            }),
            None => Ok(Self {
                ms: digits(s)?,
                seq: 0,
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_orders() {
        let a: EventId = "1700000000000-5".parse().unwrap();
        assert_eq!(a, EventId::new(1_700_000_000_000, 5));
        assert_eq!(a.to_string(), "1700000000000-5");
        assert!(EventId::new(1, 9) < EventId::new(2, 0));
        assert!(EventId::new(2, 0) < EventId::new(2, 1));
        assert_eq!("42".parse::<EventId>().unwrap(), EventId::new(42, 0));
    }

    #[test]
    fn rejects_garbage() {
        for bad in [
            "",
            "-",
            "1-",
            "-1",
            "a-1",
            "1-2-3",
            "1 -2",
            " 1-2",
            "+1-2",
            "99999999999999999999999-0",
        ] {
            assert!(bad.parse::<EventId>().is_err(), "{bad:?}");
        }
    }

    #[test]
    fn next_after_is_monotonic() {
        let a = EventId::new(100, 3);
        assert_eq!(a.next_after(100), EventId::new(100, 4));
        assert_eq!(a.next_after(50), EventId::new(100, 4));
        assert_eq!(a.next_after(101), EventId::new(101, 0));
    }
}
