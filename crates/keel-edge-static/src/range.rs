//! `Range: bytes=…` (RFC 9110 §14) for one range.
//!
//! * `bytes=a-b`, `bytes=a-`, `bytes=-n` → 206 with `Content-Range: bytes a-b/len`
//!   (`b` is clamped to the last byte, `-n` larger than the file means the whole file);
//! * a single range that starts at or past the end, or `-0` → 416 with
//!   `Content-Range: bytes */len`;
//! * anything else is ignored and the whole file is sent with 200, as the RFC allows for
//!   a Range the server does not understand: another unit, a syntax error, `b < a`, and
//!   **several ranges** (`bytes=0-1,5-6`). nginx answers several ranges with a
//!   `multipart/byteranges` body; browsers never send them for static assets (only
//!   download managers and PDF viewers do, and they accept 200), and multipart bodies
//!   are a known source of amplification attacks, so we choose the simple answer;
//! * an empty file has no bytes to address: its Range is ignored (200, empty body).
//!
//! Ranges apply to the identity representation only; see [`crate::serve`] for why a
//! request with `Range` never gets a precompressed variant.

/// The outcome of a `Range` header against a representation of `len` bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RangeRequest {
    /// Send the whole representation (no Range, or one we ignore).
    Full,
    /// Send bytes `start..=end` (inclusive, `end < len`).
    Partial { start: u64, end: u64 },
    /// 416 Range Not Satisfiable.
    Unsatisfiable,
}

/// Interpret the `Range` header value `value` for a representation of `len` bytes.
pub(crate) fn parse(value: &[u8], len: u64) -> RangeRequest {
    let value = value.trim_ascii();
    let Some(unit) = value.get(..6) else {
        return RangeRequest::Full;
    };
    if !unit.eq_ignore_ascii_case(b"bytes=") {
        return RangeRequest::Full;
    }
    let spec = value.get(6..).unwrap_or_default().trim_ascii();
    if spec.contains(&b',') || len == 0 {
        return RangeRequest::Full;
    }
    let Some(dash) = spec.iter().position(|&b| b == b'-') else {
        return RangeRequest::Full;
    };
    let first = spec.get(..dash).unwrap_or_default().trim_ascii();
    let last = spec.get(dash + 1..).unwrap_or_default().trim_ascii();
    match (number(first), number(last)) {
        // `-n`: the last n bytes.
        (None, Some(suffix)) if first.is_empty() => {
            if suffix == 0 {
                RangeRequest::Unsatisfiable
            } else {
                RangeRequest::Partial {
                    start: len.saturating_sub(suffix),
                    end: len - 1,
                }
            }
        }
        // `a-`: from a to the end.
        (Some(start), None) if last.is_empty() => from_to(start, len - 1, len),
        // `a-b`
        (Some(start), Some(end)) if start <= end => from_to(start, end.min(len - 1), len),
        _ => RangeRequest::Full,
    }
}

fn from_to(start: u64, end: u64, len: u64) -> RangeRequest {
    if start >= len {
        RangeRequest::Unsatisfiable
    } else {
        RangeRequest::Partial { start, end }
    }
}

/// A run of ASCII digits as a number; saturates at `u64::MAX` (a position that large is
/// past the end of any file, which is the right meaning). `None` if empty or not digits.
fn number(digits: &[u8]) -> Option<u64> {
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(digits.iter().fold(0u64, |acc, &d| {
        acc.saturating_mul(10).saturating_add(u64::from(d - b'0'))
    }))
}

#[cfg(test)]
mod tests {
    use super::RangeRequest::*;
    use super::*;

    #[test]
    fn single_ranges() {
        assert_eq!(parse(b"bytes=0-9", 100), Partial { start: 0, end: 9 });
        assert_eq!(parse(b"bytes=90-", 100), Partial { start: 90, end: 99 });
        assert_eq!(parse(b"bytes=-10", 100), Partial { start: 90, end: 99 });
        assert_eq!(parse(b"bytes=-1000", 100), Partial { start: 0, end: 99 });
        assert_eq!(parse(b"bytes=50-1000", 100), Partial { start: 50, end: 99 });
        assert_eq!(parse(b"Bytes = 1 - 2 ", 100), Full); // no space allowed before '='
        assert_eq!(parse(b"BYTES=1-2", 100), Partial { start: 1, end: 2 });
        assert_eq!(parse(b"bytes= 1-2", 100), Partial { start: 1, end: 2 });
        assert_eq!(parse(b"bytes=99-99", 100), Partial { start: 99, end: 99 });
    }

    #[test]
    fn unsatisfiable() {
        assert_eq!(parse(b"bytes=100-", 100), Unsatisfiable);
        assert_eq!(parse(b"bytes=100-200", 100), Unsatisfiable);
        assert_eq!(parse(b"bytes=-0", 100), Unsatisfiable);
        assert_eq!(parse(b"bytes=99999999999999999999999-", 100), Unsatisfiable);
    }

    #[test]
    fn ignored() {
        for value in [
            &b""[..],
            b"items=0-1",
            b"bytes=",
            b"bytes=-",
            b"bytes=5-1",
            b"bytes=a-b",
            b"bytes=1",
            b"bytes=0-1,5-6",
            b"bytes=0-1,",
            b"bytes=--1",
            b"bytes=+1-2",
        ] {
            assert_eq!(
                parse(value, 100),
                Full,
                "{:?}",
                String::from_utf8_lossy(value)
            );
        }
        assert_eq!(parse(b"bytes=0-1", 0), Full);
        assert_eq!(parse(b"bytes=-1", 0), Full);
    }
}
