//! Server-Sent Events wire format: encoding (used by the hub) and a small parser (used by
//! the tests, and useful to load generators).
//!
//! Encoding follows the HTML "event stream" grammar: an `id:` line when the event has an
//! id, an optional `event:` line, one `data:` line per line of the payload — where a line
//! ends at `\r\n`, `\r` or `\n`, so a payload with any of them arrives intact as
//! `MessageEvent.data` joined with `\n` — and a blank line to dispatch. Comments (`: …`)
//! are heartbeats; `retry:` tells the browser how long to wait before reconnecting.
//!
//! Each event is encoded **once** into a shared [`Bytes`] and the same buffer is written to
//! every client. The classic Django view formatted `f"data: {message}\n\n"` per client
//! and per message, and sent a multi-line payload as one broken `data:` line.

use bytes::{BufMut, Bytes, BytesMut};
use std::time::Duration;

use crate::id::EventId;

/// Appends one event to `buf`.
pub fn encode_event_into(buf: &mut BytesMut, id: Option<EventId>, event: Option<&str>, data: &str) {
    buf.reserve(data.len() + 32);
    if let Some(id) = id {
        buf.put_slice(b"id: ");
        buf.put_slice(id.to_string().as_bytes());
        buf.put_u8(b'\n');
    }
    if let Some(event) = event {
        buf.put_slice(b"event: ");
        put_single_line(buf, event);
        buf.put_u8(b'\n');
    }
    let mut rest = data;
    loop {
        buf.put_slice(b"data: ");
        match rest.find(['\r', '\n']) {
            Some(i) => {
                buf.put_slice(&rest.as_bytes()[..i]);
                buf.put_u8(b'\n');
                let skip = if rest[i..].starts_with("\r\n") { 2 } else { 1 };
                rest = &rest[i + skip..];
            }
            None => {
                buf.put_slice(rest.as_bytes());
                buf.put_u8(b'\n');
                break;
            }
        }
    }
    buf.put_u8(b'\n');
}

/// One event as its own buffer.
pub fn encode_event(id: Option<EventId>, event: Option<&str>, data: &str) -> Bytes {
    let mut buf = BytesMut::new();
    encode_event_into(&mut buf, id, event, data);
    buf.freeze()
}

/// A comment line (`: text`), e.g. the heartbeat `: keepalive`. Line breaks in `text` are
/// replaced by spaces so a comment can never turn into a field.
pub fn encode_comment(text: &str) -> Bytes {
    let mut buf = BytesMut::with_capacity(text.len() + 4);
    buf.put_slice(b": ");
    put_single_line(&mut buf, text);
    buf.put_slice(b"\n\n");
    buf.freeze()
}

/// The reconnection hint `retry: <ms>`.
pub fn encode_retry(after: Duration) -> Bytes {
    Bytes::from(format!("retry: {}\n\n", after.as_millis()))
}

fn put_single_line(buf: &mut BytesMut, text: &str) {
    for b in text.bytes() {
        buf.put_u8(if b == b'\r' || b == b'\n' { b' ' } else { b });
    }
}

/// One parsed item of an event stream.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Item {
    /// A dispatched event (fields as the browser would see them).
    Event(ParsedEvent),
    /// A comment line, without the leading `:` and one optional space.
    Comment(String),
    /// A `retry:` field, in milliseconds.
    Retry(u64),
}

/// An event as a browser's `EventSource` would surface it.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct ParsedEvent {
    /// The `id:` field of this event, if it had one.
    pub id: Option<String>,
    /// The `event:` field, if any (`message` in the browser otherwise).
    pub event: Option<String>,
    /// The `data:` lines joined with `\n`.
    pub data: String,
}

/// An incremental event-stream parser: feed it bytes as they arrive, take out items.
///
/// Follows the spec's rules on line endings, the optional space after the colon, and
/// dispatch on a blank line; unlike a browser it also reports comments and `retry:` (so
/// tests can see heartbeats) and events whose data is empty.
#[derive(Debug, Default)]
pub struct Parser {
    buf: Vec<u8>,
    current: ParsedEvent,
    has_fields: bool,
    data_lines: usize,
}

impl Parser {
    /// An empty parser.
    pub fn new() -> Self {
        Self::default()
    }

    /// Feeds bytes and returns the items completed by them.
    pub fn feed(&mut self, bytes: &[u8]) -> Vec<Item> {
        self.buf.extend_from_slice(bytes);
        let mut items = Vec::new();
        while let Some(end) = self.buf.iter().position(|&b| b == b'\n' || b == b'\r') {
            // A lone `\r` at the very end may be the first half of `\r\n`: wait for more.
            if self.buf[end] == b'\r' && end + 1 == self.buf.len() {
                break;
            }
            let skip = if self.buf[end] == b'\r' && self.buf.get(end + 1) == Some(&b'\n') {
                2
            } else {
                1
            };
            let line: Vec<u8> = self.buf.drain(..end + skip).take(end).collect();
            let line = String::from_utf8_lossy(&line).into_owned();
            self.line(&line, &mut items);
        }
        items
    }

    fn line(&mut self, line: &str, items: &mut Vec<Item>) {
        if line.is_empty() {
            if self.has_fields {
                items.push(Item::Event(std::mem::take(&mut self.current)));
                self.has_fields = false;
                self.data_lines = 0;
            }
            return;
        }
        if let Some(comment) = line.strip_prefix(':') {
            items.push(Item::Comment(
                comment.strip_prefix(' ').unwrap_or(comment).to_owned(),
            ));
            return;
        }
        let (field, value) = match line.split_once(':') {
            Some((f, v)) => (f, v.strip_prefix(' ').unwrap_or(v)),
            None => (line, ""),
        };
        match field {
            "data" => {
                if self.data_lines > 0 {
                    self.current.data.push('\n');
                }
                self.current.data.push_str(value);
                self.data_lines += 1;
                self.has_fields = true;
            }
            "id" => {
                self.current.id = Some(value.to_owned());
                self.has_fields = true;
            }
            "event" => {
                self.current.event = Some(value.to_owned());
                self.has_fields = true;
            }
            "retry" => {
                if let Ok(ms) = value.parse() {
                    items.push(Item::Retry(ms));
                }
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(b: &Bytes) -> &str {
        std::str::from_utf8(b).unwrap()
    }

    #[test]
    fn plain_event() {
        assert_eq!(
            text(&encode_event(None, None, "Test Event")),
            "data: Test Event\n\n"
        );
    }

    #[test]
    fn id_and_event_lines() {
        let b = encode_event(Some(EventId::new(5, 1)), Some("lost"), "x");
        assert_eq!(text(&b), "id: 5-1\nevent: lost\ndata: x\n\n");
    }

    #[test]
    fn every_line_ending_splits_data() {
        let b = encode_event(None, None, "a\r\nb\rc\nd");
        assert_eq!(text(&b), "data: a\ndata: b\ndata: c\ndata: d\n\n");
        let b = encode_event(None, None, "end\n");
        assert_eq!(text(&b), "data: end\ndata: \n\n");
        let b = encode_event(None, None, "");
        assert_eq!(text(&b), "data: \n\n");
    }

    #[test]
    fn comments_cannot_inject_fields() {
        assert_eq!(text(&encode_comment("a\ndata: x")), ": a data: x\n\n");
        assert_eq!(
            text(&encode_retry(Duration::from_millis(2500))),
            "retry: 2500\n\n"
        );
    }

    #[test]
    fn parser_round_trips_payloads() {
        for payload in [
            "Test Event",
            "a\r\nb\rc\nd",
            "trailing\n",
            " leading space",
            "x:y",
        ] {
            let wire = encode_event(Some(EventId::new(1, 2)), None, payload);
            let mut p = Parser::new();
            // Byte by byte, to exercise partial lines and a split \r\n.
            let mut items = Vec::new();
            for b in wire.iter() {
                items.extend(p.feed(&[*b]));
            }
            let expected = payload.replace("\r\n", "\n").replace('\r', "\n");
            assert_eq!(
                items,
                vec![Item::Event(ParsedEvent {
                    id: Some("1-2".into()),
                    event: None,
                    data: expected
                })]
            );
        }
    }

    #[test]
    fn parser_sees_comments_and_retry() {
        let mut p = Parser::new();
        let items = p.feed(b"retry: 3000\n\n: keepalive\n\ndata: x\r\n\r\n");
        assert_eq!(
            items,
            vec![
                Item::Retry(3000),
                Item::Comment("keepalive".into()),
                Item::Event(ParsedEvent {
                    data: "x".into(),
                    ..Default::default()
                })
            ]
        );
    }
}
