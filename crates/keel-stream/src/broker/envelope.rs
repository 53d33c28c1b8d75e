//! The pub/sub envelope that tells a keel-published message from a raw `PUBLISH`.
//!
//! Keel publishes on the *same* Redis channel as everyone else (so `redis-cli subscribe
//! demo_stream` and the classic Django view still see keel's messages, and raw and keel
//! messages keep one order), and marks its own messages with a prefix no person types:
//!
//! ```text
//! U+001E "keel" U+001F <id> U+001F <payload>      e.g. "\x1ekeel\x1f1700000000000-0\x1fhello"
//! ```
//!
//! U+001E/U+001F are the ASCII record and unit separators: control characters that
//! `redis-cli` users, JSON encoders and log shippers do not produce. The rule is therefore
//! unambiguous: a message whose bytes start with `\x1ekeel\x1f` *and* continue with a valid
//! `<ms>-<seq>` id and another `\x1f` is keel's; every other message — including one that
//! starts with the marker but is malformed — is raw and delivered verbatim without an id.
//! A raw publisher that wants its text shown with the marker literally must not start it
//! with those two control characters; nobody else has to care.
//!
//! Why not a companion channel (`demo_stream` for raw, `keel:demo_stream` for keel)? The
//! classic subscribers would then miss keel's messages, and two channels give no common
//! order between raw and keel events.

use crate::id::EventId;

/// The reserved prefix of keel envelopes.
pub const MARKER: &str = "\u{1e}keel\u{1f}";
const SEP: char = '\u{1f}';

/// The pub/sub payload keel publishes for an event with `id`.
pub fn encode(id: EventId, payload: &str) -> String {
    let mut out = String::with_capacity(MARKER.len() + 24 + payload.len());
    out.push_str(MARKER);
    out.push_str(&id.to_string());
    out.push(SEP);
    out.push_str(payload);
    out
}

/// Splits a pub/sub payload into (id, payload): `Some(id)` for keel envelopes, `None` and
/// the message unchanged for raw messages.
pub fn decode(message: &str) -> (Option<EventId>, &str) {
    if let Some(rest) = message.strip_prefix(MARKER) {
        if let Some((id, payload)) = rest.split_once(SEP) {
            if let Ok(id) = id.parse::<EventId>() {
                return (Some(id), payload);
            }
        }
    }
    (None, message)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keel_envelopes_round_trip() {
        let id = EventId::new(1_700_000_000_000, 7);
        for payload in ["", "hello", "a\u{1f}b", "line1\nline2", MARKER] {
            let wire = encode(id, payload);
            assert_eq!(decode(&wire), (Some(id), payload));
        }
    }

    #[test]
    fn raw_messages_stay_raw() {
        for raw in [
            "Test Event",
            "",
            "keel 1-0 hello",
            "\u{1e}keel\u{1f}",
            "\u{1e}keel\u{1f}not-an-id\u{1f}x",
            "\u{1e}keel\u{1f}12-3",
            "\u{1e}kee\u{1f}1-0\u{1f}x",
        ] {
            assert_eq!(decode(raw), (None, raw), "{raw:?}");
        }
    }
}
