//! How an HTTP/1 message body is delimited (RFC 9112 §6–7), decoded from a buffer of
//! bytes as read: a `Content-Length`, chunked coding, or everything up to the close.
//!
//! One decoder for every body the edge reads in HTTP/1: an upstream's answer
//! (`upstream.rs`). It is strict where leniency lets two parsers disagree on where a
//! message ends: a chunk size is hex digits only (no sign, no `0x`, at most 16 digits),
//! optionally followed by whitespace and `;extensions`; chunk data must be followed by
//! exactly CRLF; a size or trailer line longer than [`MAX_LINE`] is an error, not a wait.

use bytes::{Buf, Bytes, BytesMut};

/// A chunk-size or trailer line may not be longer than this (nginx's own buffers for
/// them are smaller still).
pub(crate) const MAX_LINE: usize = 4096;

/// Where a body stands: what is left of it and how it is delimited.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Framing {
    /// This many bytes are still to come.
    Length(u64),
    /// Chunked coding, at this point of a chunk.
    Chunked(Chunk),
    /// Everything until the peer closes.
    UntilClose,
    /// The body is complete.
    Done,
}

/// A point inside chunked coding.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Chunk {
    /// Expecting a chunk-size line.
    Size,
    /// Inside a chunk's data, this much left.
    Data(u64),
    /// The CRLF after a chunk's data.
    DataEnd,
    /// Trailer lines after the last chunk, up to the empty line.
    Trailers,
}

/// What one step of decoding gave.
#[derive(Debug)]
pub(crate) enum Step {
    /// Body bytes.
    Data(Bytes),
    /// The buffer holds no more of the body: read more.
    NeedMore,
    /// The body is complete; whatever is left in the buffer is not part of it.
    End,
}

/// The body is not framed as its head said.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum FramingError {
    /// A chunk-size line that is not hex digits, optional whitespace and extensions.
    #[error("bad chunk size line")]
    ChunkSize,
    /// Chunk data not followed by CRLF.
    #[error("chunk data not followed by CRLF")]
    ChunkEnd,
    /// A chunk-size or trailer line longer than [`MAX_LINE`].
    #[error("chunk size or trailer line too long")]
    LineTooLong,
}

impl Framing {
    /// Takes what `buf` holds of the body, as far as the framing allows. Framing bytes
    /// (sizes, CRLFs, trailers) are consumed; data is returned a piece at a time.
    pub(crate) fn step(&mut self, buf: &mut BytesMut) -> Result<Step, FramingError> {
        loop {
            match *self {
                Framing::Done => return Ok(Step::End),
                Framing::Length(0) => {
                    *self = Framing::Done;
                    return Ok(Step::End);
                }
                Framing::Length(remaining) => {
                    if buf.is_empty() {
                        return Ok(Step::NeedMore);
                    }
                    let (data, left) = take(buf, remaining);
                    *self = if left == 0 {
                        Framing::Done
                    } else {
                        Framing::Length(left)
                    };
                    return Ok(Step::Data(data));
                }
                Framing::UntilClose => {
                    if buf.is_empty() {
                        return Ok(Step::NeedMore);
                    }
                    return Ok(Step::Data(buf.split().freeze()));
                }
                Framing::Chunked(Chunk::Size) => {
                    let Some(end) = find_crlf(buf) else {
                        return need_line(buf);
                    };
                    let size = chunk_size(&buf[..end])?;
                    buf.advance(end + 2);
                    *self = Framing::Chunked(if size == 0 {
                        Chunk::Trailers
                    } else {
                        Chunk::Data(size)
                    });
                }
                Framing::Chunked(Chunk::Data(remaining)) => {
                    if buf.is_empty() {
                        return Ok(Step::NeedMore);
                    }
                    let (data, left) = take(buf, remaining);
                    *self = Framing::Chunked(if left == 0 {
                        Chunk::DataEnd
                    } else {
                        Chunk::Data(left)
                    });
                    return Ok(Step::Data(data));
                }
                Framing::Chunked(Chunk::DataEnd) => {
                    if buf.len() < 2 {
                        // A lone byte that is not CR can already be judged.
                        if buf.first().is_some_and(|b| *b != b'\r') {
                            return Err(FramingError::ChunkEnd);
                        }
                        return Ok(Step::NeedMore);
                    }
                    if &buf[..2] != b"\r\n" {
                        return Err(FramingError::ChunkEnd);
                    }
                    buf.advance(2);
                    *self = Framing::Chunked(Chunk::Size);
                }
                Framing::Chunked(Chunk::Trailers) => {
                    let Some(end) = find_crlf(buf) else {
                        return need_line(buf);
                    };
                    buf.advance(end + 2);
                    if end == 0 {
                        *self = Framing::Done;
                        return Ok(Step::End);
                    }
                }
            }
        }
    }
}

/// Up to `remaining` bytes of `buf`, and how many are still to come.
fn take(buf: &mut BytesMut, remaining: u64) -> (Bytes, u64) {
    let take = usize::try_from(remaining)
        .unwrap_or(usize::MAX)
        .min(buf.len());
    (buf.split_to(take).freeze(), remaining - take as u64)
}

fn find_crlf(buf: &[u8]) -> Option<usize> {
    buf.windows(2).position(|w| w == b"\r\n")
}

fn need_line(buf: &[u8]) -> Result<Step, FramingError> {
    if buf.len() > MAX_LINE {
        Err(FramingError::LineTooLong)
    } else {
        Ok(Step::NeedMore)
    }
}

/// `chunk-size [ BWS ; chunk-ext ]`: 1 to 16 hex digits, then only whitespace or `;`.
/// A bare CR or LF inside the line is refused (a line ends at CRLF, nowhere else).
fn chunk_size(line: &[u8]) -> Result<u64, FramingError> {
    let digits = line.iter().take_while(|b| b.is_ascii_hexdigit()).count();
    if digits == 0 || digits > 16 {
        return Err(FramingError::ChunkSize);
    }
    let rest = &line[digits..];
    let ext_at = rest.iter().position(|b| *b == b';').unwrap_or(rest.len());
    if !rest[..ext_at].iter().all(|b| *b == b' ' || *b == b'\t') {
        return Err(FramingError::ChunkSize);
    }
    if rest[ext_at..]
        .iter()
        .any(|b| *b == b'\r' || *b == b'\n' || *b == 0)
    {
        return Err(FramingError::ChunkSize);
    }
    let mut size: u64 = 0;
    for b in &line[..digits] {
        // Hex digits only, checked above.
        let digit = u64::from((*b as char).to_digit(16).unwrap_or(0));
        size = (size << 4) | digit;
    }
    Ok(size)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Everything `framing` yields from `bytes`, and where it stopped.
    pub(crate) fn decode(framing: Framing, bytes: &[u8]) -> (Vec<u8>, Result<Framing, ()>) {
        let mut framing = framing;
        let mut buf = BytesMut::from(bytes);
        let mut out = Vec::new();
        loop {
            match framing.step(&mut buf) {
                Ok(Step::Data(data)) => out.extend_from_slice(&data),
                Ok(Step::NeedMore | Step::End) => return (out, Ok(framing)),
                Err(_) => return (out, Err(())),
            }
        }
    }

    #[test]
    fn chunked_bodies_are_decoded_to_their_end() {
        let wire = b"5;ext=1\r\nhello\r\n7 ; a=\"b\"\r\n, world\r\n0\r\nx-trailer: 1\r\n\r\nNEXT";
        let mut framing = Framing::Chunked(Chunk::Size);
        let mut buf = BytesMut::from(&wire[..]);
        let mut out = Vec::new();
        while let Ok(Step::Data(data)) = framing.step(&mut buf) {
            out.extend_from_slice(&data);
        }
        assert_eq!(out, b"hello, world");
        assert_eq!(framing, Framing::Done);
        // What follows the body is left for the next message.
        assert_eq!(&buf[..], b"NEXT");
        // Cut anywhere: what is complete comes out, the rest waits.
        let (data, end) = decode(Framing::Chunked(Chunk::Size), &wire[..12]);
        assert_eq!(data, b"hel");
        assert_eq!(end, Ok(Framing::Chunked(Chunk::Data(2))));
    }

    /// Sizes that lenient parsers read differently (a sign, `0x`, overflow, a bare LF,
    /// junk after the digits) are errors, never a length.
    #[test]
    fn malformed_chunks_are_errors() {
        for bad in [
            &b"zz\r\n"[..],
            b"+5\r\nhello\r\n",
            b"-5\r\nhello\r\n",
            b"0x5\r\nhello\r\n",
            b"5 x\r\nhello\r\n",
            b"\r\n",
            b"11111111111111111\r\n",
            b"5\r\nhelloXX",
            b"5\r\nhelloX",
            b"5\nhello\r\n0\r\n\r\n5\r\n",
        ] {
            let (_, end) = decode(Framing::Chunked(Chunk::Size), bad);
            // "5\nhello..." has no CRLF before the data: a size line with a bare LF.
            assert_eq!(end, Err(()), "{:?} was taken", String::from_utf8_lossy(bad));
        }
        let long = vec![b'1'; MAX_LINE + 1];
        assert_eq!(decode(Framing::Chunked(Chunk::Size), &long).1, Err(()));
    }

    #[test]
    fn lengths_stop_at_the_length() {
        assert_eq!(
            decode(Framing::Length(5), b"helloNEXT"),
            (b"hello".to_vec(), Ok(Framing::Done))
        );
        assert_eq!(
            decode(Framing::Length(10), b"hello"),
            (b"hello".to_vec(), Ok(Framing::Length(5)))
        );
    }
}
