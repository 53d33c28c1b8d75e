//! [`StaticBody`]: the response body, either bytes already in memory or a byte range of a
//! file read in chunks on tokio's blocking pool.
//!
//! Design:
//! * In-memory files are `Bytes` shared with the index: a response costs a reference
//!   count, never a copy, and a reload can drop the old index while responses from it
//!   are still being written.
//! * Large files are read with *positional* reads (`pread`) on a file handle the index
//!   opened at load. No `open()` per request, no shared cursor between concurrent
//!   responses, and the bytes sent are those of the file that was indexed (and hashed for
//!   the ETag) even if collectstatic has since renamed a new version over the name.
//! * One chunk is read ahead: when a chunk is handed to hyper the next read is already
//!   started, so disk and socket work overlap; memory per response is at most two
//!   chunks.
//! * If the file shrank since load (someone truncated it in place), the body ends with
//!   an error instead of sending fewer bytes than `Content-Length` promised; hyper then
//!   closes the connection, which is what nginx does ("file was truncated").
//!
//! nginx uses `sendfile(2)` for this: zero copies, but no TLS (kTLS aside) and no
//! precompressed-variant framing; with TLS in the edge the copy happens anyway.

use std::fmt;
use std::fs::File;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use tokio::task::JoinHandle;

/// Body of every response from this crate. Implements [`http_body::Body`] with
/// `Data = Bytes` and `Error = io::Error`, so hyper serves it directly and axum wraps it
/// with `axum::body::Body::new`.
///
/// The exact length is always known ([`Body::size_hint`]), so hyper can frame it with
/// `Content-Length`. Streaming needs a tokio runtime (reads run on `spawn_blocking`).
pub struct StaticBody {
    kind: Kind,
}

enum Kind {
    Bytes(Option<Bytes>),
    File(FileChunks),
}

impl StaticBody {
    /// A body with no bytes (HEAD, 304, 416 ...).
    pub fn empty() -> Self {
        StaticBody {
            kind: Kind::Bytes(None),
        }
    }

    /// A body that sends `bytes` in one frame.
    pub fn from_bytes(bytes: Bytes) -> Self {
        let kind = if bytes.is_empty() {
            Kind::Bytes(None)
        } else {
            Kind::Bytes(Some(bytes))
        };
        StaticBody { kind }
    }

    /// A body that reads `len` bytes of `file` from `offset` on, `chunk_bytes` at a time.
    pub(crate) fn from_file(file: Arc<File>, offset: u64, len: u64, chunk_bytes: usize) -> Self {
        if len == 0 {
            return Self::empty();
        }
        StaticBody {
            kind: Kind::File(FileChunks {
                file,
                offset,
                remaining: len,
                chunk_bytes,
                pending: None,
            }),
        }
    }
}

impl Default for StaticBody {
    fn default() -> Self {
        Self::empty()
    }
}

impl fmt::Debug for StaticBody {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            Kind::Bytes(bytes) => f
                .debug_struct("StaticBody::Bytes")
                .field("len", &bytes.as_ref().map_or(0, Bytes::len))
                .finish(),
            Kind::File(chunks) => f
                .debug_struct("StaticBody::File")
                .field("offset", &chunks.offset)
                .field("remaining", &chunks.remaining)
                .finish(),
        }
    }
}

impl Body for StaticBody {
    type Data = Bytes;
    type Error = io::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, io::Error>>> {
        match &mut self.kind {
            Kind::Bytes(bytes) => Poll::Ready(bytes.take().map(|b| Ok(Frame::data(b)))),
            Kind::File(chunks) => chunks.poll_chunk(cx).map(|r| r.map(|r| r.map(Frame::data))),
        }
    }

    fn is_end_stream(&self) -> bool {
        match &self.kind {
            Kind::Bytes(bytes) => bytes.is_none(),
            Kind::File(chunks) => chunks.remaining == 0 && chunks.pending.is_none(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.kind {
            Kind::Bytes(bytes) => {
                SizeHint::with_exact(bytes.as_ref().map_or(0, |b| b.len() as u64))
            }
            Kind::File(chunks) => SizeHint::with_exact(chunks.unsent()),
        }
    }
}

/// A range of a file, read chunk by chunk on the blocking pool.
struct FileChunks {
    file: Arc<File>,
    /// Offset of the next read to start.
    offset: u64,
    /// Bytes not yet requested from the file.
    remaining: u64,
    chunk_bytes: usize,
    /// The read in flight and how many bytes it was asked for.
    pending: Option<(JoinHandle<io::Result<Bytes>>, usize)>,
}

impl FileChunks {
    /// Bytes not yet handed out (in flight or not yet requested).
    fn unsent(&self) -> u64 {
        self.remaining + self.pending.as_ref().map_or(0, |(_, n)| *n as u64)
    }

    fn start_read(&mut self) {
        if self.remaining == 0 || self.pending.is_some() {
            return;
        }
        let want = usize::try_from(self.remaining)
            .unwrap_or(usize::MAX)
            .min(self.chunk_bytes);
        let file = Arc::clone(&self.file);
        let offset = self.offset;
        let handle = tokio::task::spawn_blocking(move || read_exact_at(&file, want, offset));
        self.offset += want as u64;
        self.remaining -= want as u64;
        self.pending = Some((handle, want));
    }

    fn poll_chunk(&mut self, cx: &mut Context<'_>) -> Poll<Option<io::Result<Bytes>>> {
        self.start_read();
        let Some((handle, _)) = self.pending.as_mut() else {
            return Poll::Ready(None);
        };
        let joined = match Pin::new(handle).poll(cx) {
            Poll::Pending => return Poll::Pending,
            Poll::Ready(joined) => joined,
        };
        self.pending = None;
        match joined {
            Ok(Ok(bytes)) => {
                // Read ahead while hyper writes this chunk.
                self.start_read();
                Poll::Ready(Some(Ok(bytes)))
            }
            Ok(Err(error)) => {
                self.remaining = 0;
                Poll::Ready(Some(Err(error)))
            }
            Err(join_error) => {
                self.remaining = 0;
                Poll::Ready(Some(Err(io::Error::other(join_error))))
            }
        }
    }
}

/// Read exactly `len` bytes at `offset`, or fail with `UnexpectedEof` if the file ended.
fn read_exact_at(file: &File, len: usize, offset: u64) -> io::Result<Bytes> {
    let mut buf = vec![0u8; len];
    let mut filled = 0;
    while filled < len {
        let dest = buf.get_mut(filled..).unwrap_or_default();
        match read_at(file, dest, offset + filled as u64) {
            Ok(0) => {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "static file was truncated since it was indexed",
                ))
            }
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(Bytes::from(buf))
}

#[cfg(unix)]
fn read_at(file: &File, buf: &mut [u8], offset: u64) -> io::Result<usize> {
    std::os::unix::fs::FileExt::read_at(file, buf, offset)
}

#[cfg(windows)]
fn read_at(file: &File, buf: &mut [u8], offset: u64) -> io::Result<usize> {
    // Moves the handle's cursor too, which nobody else relies on.
    std::os::windows::fs::FileExt::seek_read(file, buf, offset)
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;
    use std::io::Write;

    #[tokio::test]
    async fn file_ranges_are_byte_exact_and_sized() {
        let mut tmp = tempfile::tempfile().unwrap();
        let data: Vec<u8> = (0..10_000u32).map(|i| (i % 251) as u8).collect();
        tmp.write_all(&data).unwrap();
        let file = Arc::new(tmp);
        for (offset, len, chunk) in [
            (0, 10_000, 4096),
            (17, 5000, 1000),
            (9_999, 1, 7),
            (0, 0, 10),
        ] {
            let body = StaticBody::from_file(Arc::clone(&file), offset, len, chunk);
            assert_eq!(body.size_hint().exact(), Some(len));
            let got = body.collect().await.unwrap().to_bytes();
            let start = offset as usize;
            assert_eq!(&got[..], &data[start..start + len as usize]);
        }
    }

    #[tokio::test]
    async fn truncated_file_is_an_error_not_a_short_body() {
        let mut tmp = tempfile::tempfile().unwrap();
        tmp.write_all(&[1u8; 100]).unwrap();
        let body = StaticBody::from_file(Arc::new(tmp), 0, 200, 64);
        assert!(body.collect().await.is_err());
    }
}
