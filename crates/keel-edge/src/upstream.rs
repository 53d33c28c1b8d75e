//! Requests without a body, sent to an upstream peer over a plain HTTP/1.1 connection of
//! this worker thread's own keep-alive pool.
//!
//! hyper-util's client drives each upstream connection from a task of its own and hands
//! it every request and response through channels, with a pool shared by all workers
//! behind a lock. For the requests that make up almost all of a proxy's traffic (`GET`
//! and `HEAD`, no body) this module does the exchange in the task of the client's
//! connection instead: write the head, parse the answer's head with httparse into the
//! header lines to pass on ([`Answer`]; a `Response` is made of it only for connections
//! that hyper serves), and stream the body as a [`RawBody`] that gives the connection
//! back to the pool when the body ends — as nginx's workers keep their own `keepalive`
//! connections. Requests with a body still go through hyper-util's client.
//!
//! Framing of the answer follows RFC 9112 §6.3: no body for `HEAD`, 1xx, 204 and 304;
//! `Transfer-Encoding: chunked` decoded (trailers dropped; the edge re-frames the body for
//! its client); `Content-Length`; else the body runs to the close. A connection goes back
//! to the pool only after a complete HTTP/1.1 answer without `Connection: close`, and a
//! pooled one that the upstream has closed meanwhile costs one fresh retry, never an error.

use std::cell::RefCell;
use std::pin::Pin;
use std::sync::{Arc, Weak};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::Body;
use axum::http::{HeaderMap, HeaderName, HeaderValue, Response, StatusCode, Version};
use bytes::{Buf, Bytes, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::Instant;

/// A pooled connection unused for longer is closed rather than reused: below the
/// keep-alive of common app servers (gunicorn's is 2 s), like the hyper-util pool's.
const POOL_IDLE: Duration = Duration::from_millis(1500);
/// Idle connections kept per peer and worker thread (nginx's `keepalive 128` is per worker).
const POOL_MAX: usize = 128;
/// An answer's head may not be larger than this.
const MAX_HEAD: usize = 64 * 1024;
const MAX_HEADERS: usize = 128;
const READ_CHUNK: usize = 8 * 1024;

/// Which peer of which set of peers a connection belongs to. The set is identified by a
/// token it owns: a reload makes new peers, and connections of dropped ones are let go.
#[derive(Clone, Debug)]
pub(crate) struct PoolKey {
    pub(crate) owner: Weak<()>,
    pub(crate) peer: usize,
}

impl PoolKey {
    fn is(&self, other: &PoolKey) -> bool {
        self.peer == other.peer && Weak::ptr_eq(&self.owner, &other.owner)
    }
}

struct Idle {
    key: PoolKey,
    stream: TcpStream,
    since: Instant,
}

thread_local! {
    static POOL: RefCell<Vec<Idle>> = const { RefCell::new(Vec::new()) };
}

// The pool is kept in the order connections went idle (pushed at the back, removed
// without reordering), so the expired ones are always at the front: each call looks at
// the few entries it needs, not at the whole pool, which it did on every request.

fn checkout(key: &PoolKey) -> Option<TcpStream> {
    POOL.with(|pool| {
        let mut pool = pool.borrow_mut();
        let now = Instant::now();
        // The most recently idle first: the likeliest to be still open upstream.
        let at = pool.iter().rposition(|idle| idle.key.is(key))?;
        let idle = pool.remove(at);
        // Everything older than this one is older still: the caller connects anew.
        let fresh = now.duration_since(idle.since) < POOL_IDLE && idle.key.owner.strong_count() > 0;
        fresh.then_some(idle.stream)
    })
}

fn checkin(key: PoolKey, stream: TcpStream) {
    POOL.with(|pool| {
        let mut pool = pool.borrow_mut();
        let now = Instant::now();
        let expired = pool
            .iter()
            .position(|idle| now.duration_since(idle.since) < POOL_IDLE)
            .unwrap_or(pool.len());
        pool.drain(..expired);
        let full = pool.len() >= POOL_MAX
            && pool.iter().filter(|idle| idle.key.is(&key)).count() >= POOL_MAX;
        if !full {
            pool.push(Idle {
                key,
                stream,
                since: now,
            });
        }
    });
}

/// Why an exchange failed.
#[derive(Debug)]
pub(crate) enum ExchangeError {
    /// No connection could be made: the request never reached the peer.
    Connect(String),
    /// The peer was reached but did not answer with a usable HTTP/1.1 head.
    Upstream(String),
}

/// Sends `head` (a complete request head without a body) to `addr` and returns the
/// answer with its body streaming.
pub(crate) async fn exchange(
    addr: &str,
    key: &PoolKey,
    head: &[u8],
    head_only: bool,
    connect_timeout: Duration,
) -> Result<Answer, ExchangeError> {
    if let Some(stream) = checkout(key) {
        match attempt(stream, key, head, head_only).await {
            Ok(response) => return Ok(response),
            // The peer closed the idle connection before it saw the request: try once
            // on a new one, as hyper-util does for a request it never sent.
            Err(Attempt::Stale) => {}
            Err(Attempt::Failed(detail)) => return Err(ExchangeError::Upstream(detail)),
        }
    }
    let stream = match tokio::time::timeout(connect_timeout, TcpStream::connect(addr)).await {
        Ok(Ok(stream)) => stream,
        Ok(Err(error)) => return Err(ExchangeError::Connect(error.to_string())),
        Err(_) => {
            return Err(ExchangeError::Connect(format!(
                "connect timed out after {connect_timeout:?}"
            )))
        }
    };
    let _ = stream.set_nodelay(true);
    match attempt(stream, key, head, head_only).await {
        Ok(response) => Ok(response),
        Err(Attempt::Stale) => Err(ExchangeError::Upstream(
            "the connection closed before an answer".to_owned(),
        )),
        Err(Attempt::Failed(detail)) => Err(ExchangeError::Upstream(detail)),
    }
}

enum Attempt {
    /// Closed (or reset) before a single byte of an answer: the request may be resent.
    Stale,
    Failed(String),
}

async fn attempt(
    mut stream: TcpStream,
    key: &PoolKey,
    head: &[u8],
    head_only: bool,
) -> Result<Answer, Attempt> {
    if stream.write_all(head).await.is_err() {
        return Err(Attempt::Stale);
    }
    let mut buf = BytesMut::with_capacity(READ_CHUNK);
    loop {
        if buf.capacity() - buf.len() < 1024 {
            buf.reserve(READ_CHUNK);
        }
        let read = stream.read_buf(&mut buf).await;
        match read {
            Ok(0) | Err(_) if buf.is_empty() => return Err(Attempt::Stale),
            Ok(0) => return Err(Attempt::Failed("the answer's head was cut off".to_owned())),
            Err(error) => return Err(Attempt::Failed(format!("reading the answer: {error}"))),
            Ok(_) => {}
        }
        // 1xx answers (100 Continue, 103 Early Hints) are not passed on; the real one follows.
        while let Some(parsed) = parse_head(&buf).map_err(Attempt::Failed)? {
            buf.advance(parsed.len);
            if parsed.informational {
                continue;
            }
            let framing = parsed.framing(head_only);
            let mut body = RawBody {
                stream: Some(stream),
                buf,
                framing,
                reusable: parsed.keep_alive,
                key: key.clone(),
            };
            if body.framing == Framing::Done {
                body.finish();
            }
            return Ok(Answer {
                status: parsed.status,
                lines: parsed.lines,
                has_date: parsed.has_date,
                has_length: parsed.length.is_some() && !parsed.chunked && !parsed.close_delimited,
                body,
            });
        }
        if buf.len() > MAX_HEAD {
            return Err(Attempt::Failed("the answer's head is too large".to_owned()));
        }
    }
}

/// An upstream's answer, its head as the edge passes it on and its body streaming.
pub(crate) struct Answer<B = RawBody> {
    pub(crate) status: StatusCode,
    /// `name: value\r\n` for each field passed on: names in lower case; hop-by-hop
    /// fields (and any `Connection` names) left out, and `Content-Length` when
    /// `Transfer-Encoding` overrides it. The edge frames the body for its own client.
    pub(crate) lines: Vec<u8>,
    /// Whether `lines` has a `Date`.
    pub(crate) has_date: bool,
    /// Whether `lines` has the `Content-Length` that frames the body.
    pub(crate) has_length: bool,
    pub(crate) body: B,
}

impl<B> Answer<B> {
    pub(crate) fn map_body<C>(self, f: impl FnOnce(B) -> C) -> Answer<C> {
        Answer {
            status: self.status,
            lines: self.lines,
            has_date: self.has_date,
            has_length: self.has_length,
            body: f(self.body),
        }
    }

    /// The answer as a `Response`, for connections served by hyper.
    pub(crate) fn into_response(self) -> Response<Body>
    where
        B: http_body::Body<Data = Bytes> + Send + 'static,
        B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        let mut headers = HeaderMap::with_capacity(8);
        for line in self.lines.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            let Some(colon) = line.iter().position(|b| *b == b':') else {
                continue;
            };
            let value = line[colon + 1..].trim_ascii_start();
            // Both were checked when the head was read.
            if let (Ok(name), Ok(value)) = (
                HeaderName::from_bytes(&line[..colon]),
                HeaderValue::from_bytes(value),
            ) {
                headers.append(name, value);
            }
        }
        let body = if http_body::Body::is_end_stream(&self.body) {
            Body::empty()
        } else {
            Body::new(self.body)
        };
        let mut response = Response::new(body);
        *response.status_mut() = self.status;
        *response.version_mut() = Version::HTTP_11;
        *response.headers_mut() = headers;
        response
    }
}

struct Parsed {
    len: usize,
    status: StatusCode,
    lines: Vec<u8>,
    has_date: bool,
    informational: bool,
    keep_alive: bool,
    chunked: bool,
    close_delimited: bool,
    length: Option<u64>,
}

impl Parsed {
    fn framing(&self, head_only: bool) -> Framing {
        let no_body = head_only
            || self.status == StatusCode::NO_CONTENT
            || self.status == StatusCode::NOT_MODIFIED;
        if no_body {
            Framing::Done
        } else if self.chunked {
            Framing::Chunked(Chunk::Size)
        } else if self.close_delimited {
            Framing::UntilClose
        } else {
            match self.length {
                Some(0) => Framing::Done,
                Some(n) => Framing::Length(n),
                None => Framing::UntilClose,
            }
        }
    }
}

/// A complete answer head at the start of `buf`, `None` when more bytes are needed.
fn parse_head(buf: &[u8]) -> Result<Option<Parsed>, String> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut head = httparse::Response::new(&mut headers);
    let len = match head.parse(buf) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(error) => return Err(format!("malformed answer head: {error}")),
    };
    let code = head.code.unwrap_or(0);
    let status = StatusCode::from_u16(code).map_err(|_| format!("bad status code {code}"))?;
    if code == 101 {
        return Err("101 Switching Protocols to a request that asked for no upgrade".to_owned());
    }
    let http11 = head.version == Some(1);
    let fields = head.headers.iter().map(|h| (h.name.as_bytes(), h.value));
    let has_connection = fields
        .clone()
        .any(|(n, _)| n.eq_ignore_ascii_case(b"connection"));
    let mut keep_alive = http11;
    let mut chunked = false;
    let mut close_delimited = false;
    let mut has_date = false;
    let mut length: Option<u64> = None;
    for h in head.headers.iter() {
        let name = h.name.as_bytes();
        // What a HeaderValue takes: a value it would refuse is refused here too.
        if !crate::headers::valid_value(h.value) {
            return Err(format!("bad value of header {:?}", h.name));
        }
        if name.eq_ignore_ascii_case(b"connection") {
            for token in crate::headers::tokens(h.value) {
                if token.eq_ignore_ascii_case(b"close") {
                    keep_alive = false;
                } else if token.eq_ignore_ascii_case(b"keep-alive") && !http11 {
                    keep_alive = true;
                }
            }
        } else if name.eq_ignore_ascii_case(b"transfer-encoding") {
            // Chunked must be the last coding; any other final coding runs to the close.
            let last = crate::headers::tokens(h.value).last().unwrap_or(b"");
            chunked = last.eq_ignore_ascii_case(b"chunked");
            close_delimited = !chunked;
        } else if name.eq_ignore_ascii_case(b"content-length") {
            let n = std::str::from_utf8(h.value)
                .ok()
                .and_then(|v| v.trim().parse::<u64>().ok())
                .ok_or_else(|| "bad Content-Length".to_owned())?;
            if length.is_some_and(|m| m != n) {
                return Err("conflicting Content-Length headers".to_owned());
            }
            length = Some(n);
        } else if name.eq_ignore_ascii_case(b"date") {
            has_date = true;
        }
    }
    // Transfer-Encoding wins over Content-Length (RFC 9112 §6.3): the length is not the
    // body's and must not reach the client.
    let drop_length = chunked || close_delimited;
    let mut lines = Vec::with_capacity(len);
    for (name, value) in fields.clone() {
        if crate::headers::is_hop_by_hop(name)
            || (drop_length && name.eq_ignore_ascii_case(b"content-length"))
            || (has_connection && crate::headers::named_by_connection(fields.clone(), name))
        {
            continue;
        }
        lines.extend(name.iter().map(u8::to_ascii_lowercase));
        lines.extend_from_slice(b": ");
        lines.extend_from_slice(value);
        lines.extend_from_slice(b"\r\n");
    }
    Ok(Some(Parsed {
        len,
        status,
        lines,
        has_date,
        informational: (100..200).contains(&code),
        keep_alive: keep_alive && !close_delimited,
        chunked,
        close_delimited,
        length,
    }))
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Framing {
    Length(u64),
    Chunked(Chunk),
    UntilClose,
    Done,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Chunk {
    /// Expecting a chunk-size line.
    Size,
    /// Inside a chunk's data.
    Data(u64),
    /// The CRLF after a chunk's data.
    DataEnd,
    /// Trailer lines after the last chunk, up to the empty line.
    Trailers,
}

/// An upstream answer's body read straight from the upstream connection.
pub(crate) struct RawBody {
    stream: Option<TcpStream>,
    buf: BytesMut,
    framing: Framing,
    reusable: bool,
    key: PoolKey,
}

/// The upstream broke the body off or framed it wrongly.
#[derive(Debug, thiserror::Error)]
#[error("upstream body: {0}")]
pub(crate) struct BodyError(String);

impl RawBody {
    /// The body ended: the connection goes back to the pool when it can carry another.
    fn finish(&mut self) {
        self.framing = Framing::Done;
        if let Some(stream) = self.stream.take() {
            if self.reusable && self.buf.is_empty() {
                checkin(self.key.clone(), stream);
            }
        }
    }

    /// Up to `remaining` bytes of what was read, and how many are still to come.
    fn take(&mut self, remaining: u64) -> (Bytes, u64) {
        let take = usize::try_from(remaining)
            .unwrap_or(usize::MAX)
            .min(self.buf.len());
        (self.buf.split_to(take).freeze(), remaining - take as u64)
    }

    /// Bytes of the body (or chunk framing) already read, as far as `framing` allows.
    fn step(&mut self) -> Result<Step, String> {
        loop {
            match self.framing {
                Framing::Done => return Ok(Step::End),
                Framing::Length(remaining) => {
                    if self.buf.is_empty() {
                        return Ok(Step::NeedMore);
                    }
                    let (data, left) = self.take(remaining);
                    self.framing = Framing::Length(left);
                    if left == 0 {
                        self.finish();
                    }
                    return Ok(Step::Data(data));
                }
                Framing::UntilClose => {
                    if self.buf.is_empty() {
                        return Ok(Step::NeedMore);
                    }
                    return Ok(Step::Data(self.buf.split().freeze()));
                }
                Framing::Chunked(Chunk::Size) => {
                    let Some(end) = find_crlf(&self.buf) else {
                        return line_too_long(&self.buf);
                    };
                    let line = &self.buf[..end];
                    let digits = line
                        .split(|b| *b == b';')
                        .next()
                        .unwrap_or(b"")
                        .trim_ascii();
                    let size = std::str::from_utf8(digits)
                        .ok()
                        .filter(|d| !d.is_empty() && d.len() <= 16)
                        .and_then(|d| u64::from_str_radix(d, 16).ok())
                        .ok_or_else(|| "bad chunk size".to_owned())?;
                    self.buf.advance(end + 2);
                    self.framing = Framing::Chunked(if size == 0 {
                        Chunk::Trailers
                    } else {
                        Chunk::Data(size)
                    });
                }
                Framing::Chunked(Chunk::Data(remaining)) => {
                    if self.buf.is_empty() {
                        return Ok(Step::NeedMore);
                    }
                    let (data, left) = self.take(remaining);
                    self.framing = Framing::Chunked(if left == 0 {
                        Chunk::DataEnd
                    } else {
                        Chunk::Data(left)
                    });
                    return Ok(Step::Data(data));
                }
                Framing::Chunked(Chunk::DataEnd) => {
                    if self.buf.len() < 2 {
                        return Ok(Step::NeedMore);
                    }
                    if &self.buf[..2] != b"\r\n" {
                        return Err("chunk data not followed by CRLF".to_owned());
                    }
                    self.buf.advance(2);
                    self.framing = Framing::Chunked(Chunk::Size);
                }
                Framing::Chunked(Chunk::Trailers) => {
                    let Some(end) = find_crlf(&self.buf) else {
                        return line_too_long(&self.buf);
                    };
                    self.buf.advance(end + 2);
                    if end == 0 {
                        self.finish();
                        return Ok(Step::End);
                    }
                }
            }
        }
    }
}

enum Step {
    Data(Bytes),
    NeedMore,
    End,
}

fn find_crlf(buf: &[u8]) -> Option<usize> {
    buf.windows(2).position(|w| w == b"\r\n")
}

fn line_too_long(buf: &[u8]) -> Result<Step, String> {
    if buf.len() > 4096 {
        Err("chunk size or trailer line too long".to_owned())
    } else {
        Ok(Step::NeedMore)
    }
}

impl http_body::Body for RawBody {
    type Data = Bytes;
    type Error = BodyError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, BodyError>>> {
        let this = &mut *self;
        loop {
            match this.step() {
                Ok(Step::Data(data)) => return Poll::Ready(Some(Ok(http_body::Frame::data(data)))),
                Ok(Step::End) => return Poll::Ready(None),
                Ok(Step::NeedMore) => {}
                Err(detail) => {
                    this.stream = None;
                    this.framing = Framing::Done;
                    return Poll::Ready(Some(Err(BodyError(detail))));
                }
            }
            let Some(stream) = this.stream.as_mut() else {
                return Poll::Ready(None);
            };
            if this.buf.capacity() - this.buf.len() < 1024 {
                this.buf.reserve(READ_CHUNK);
            }
            match tokio_util::io::poll_read_buf(Pin::new(stream), cx, &mut this.buf) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Err(error)) => {
                    this.stream = None;
                    this.framing = Framing::Done;
                    return Poll::Ready(Some(Err(BodyError(error.to_string()))));
                }
                Poll::Ready(Ok(0)) => {
                    this.stream = None;
                    let to_close = this.framing == Framing::UntilClose;
                    this.framing = Framing::Done;
                    if to_close {
                        return Poll::Ready(None);
                    }
                    return Poll::Ready(Some(Err(BodyError(
                        "the upstream closed before the end of the body".to_owned(),
                    ))));
                }
                Poll::Ready(Ok(_)) => {}
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.framing == Framing::Done || self.framing == Framing::Length(0)
    }

    fn size_hint(&self) -> http_body::SizeHint {
        match self.framing {
            Framing::Length(n) if self.buf.is_empty() => http_body::SizeHint::with_exact(n),
            Framing::Done => http_body::SizeHint::with_exact(0),
            _ => http_body::SizeHint::default(),
        }
    }
}

/// A fresh key for a new set of peers: the token it returns must live as long as they do.
pub(crate) fn owner_token() -> Arc<()> {
    Arc::new(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body_of(framing: Framing, bytes: &[u8]) -> (Vec<u8>, Framing) {
        let token = owner_token();
        let mut body = RawBody {
            stream: None,
            buf: BytesMut::from(bytes),
            framing,
            reusable: false,
            key: PoolKey {
                owner: Arc::downgrade(&token),
                peer: 0,
            },
        };
        let mut out = Vec::new();
        while let Ok(Step::Data(data)) = body.step() {
            out.extend_from_slice(&data);
        }
        (out, body.framing)
    }

    #[test]
    fn chunked_bodies_are_decoded_to_their_end() {
        let wire = b"5;ext=1\r\nhello\r\n7\r\n, world\r\n0\r\nx-trailer: 1\r\n\r\n";
        let (data, end) = body_of(Framing::Chunked(Chunk::Size), wire);
        assert_eq!(data, b"hello, world");
        assert_eq!(end, Framing::Done);
        // Cut anywhere: what is complete comes out, the rest waits.
        let (data, end) = body_of(Framing::Chunked(Chunk::Size), &wire[..12]);
        assert_eq!(data, b"hel");
        assert_eq!(end, Framing::Chunked(Chunk::Data(2)));
        for bad in [&b"zz\r\n"[..], b"5\r\nhelloXX", b"\r\n"] {
            let mut body = RawBody {
                stream: None,
                buf: BytesMut::from(bad),
                framing: Framing::Chunked(Chunk::Size),
                reusable: false,
                key: PoolKey {
                    owner: Weak::new(),
                    peer: 0,
                },
            };
            let mut steps = 0;
            let failed = loop {
                match body.step() {
                    Ok(Step::Data(_)) if steps < 4 => steps += 1,
                    Ok(_) => break false,
                    Err(_) => break true,
                }
            };
            assert!(
                failed,
                "{:?} was taken as a chunk",
                String::from_utf8_lossy(bad)
            );
        }
    }

    /// The map of a hyper connection's response holds exactly the lines passed on.
    #[test]
    fn an_answer_becomes_a_response_with_the_same_fields() {
        let token = owner_token();
        let answer = Answer {
            status: StatusCode::CREATED,
            lines:
                b"content-type: text/plain\r\nset-cookie: a=1\r\nset-cookie: b=2\r\nx-empty: \r\n"
                    .to_vec(),
            has_date: false,
            has_length: false,
            body: RawBody {
                stream: None,
                buf: BytesMut::new(),
                framing: Framing::Done,
                reusable: false,
                key: PoolKey {
                    owner: Arc::downgrade(&token),
                    peer: 0,
                },
            },
        };
        let response = answer.into_response();
        assert_eq!(response.status(), StatusCode::CREATED);
        let headers = response.headers();
        assert_eq!(headers.len(), 4);
        assert_eq!(headers["content-type"], "text/plain");
        let cookies: Vec<_> = headers.get_all("set-cookie").iter().collect();
        assert_eq!(cookies, ["a=1", "b=2"]);
        assert_eq!(headers["x-empty"], "");
    }

    #[test]
    fn lengths_stop_at_the_length() {
        let (data, end) = body_of(Framing::Length(5), b"hello");
        assert_eq!(data, b"hello");
        assert_eq!(end, Framing::Done);
        let (data, end) = body_of(Framing::Length(10), b"hello");
        assert_eq!(data, b"hello");
        assert_eq!(end, Framing::Length(5));
    }

    #[test]
    fn answer_heads_say_how_their_body_is_framed() {
        let p = parse_head(b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabc")
            .unwrap()
            .unwrap();
        assert_eq!(p.framing(false), Framing::Length(3));
        assert_eq!(p.framing(true), Framing::Done);
        assert!(p.keep_alive);
        let p = parse_head(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n",
        )
        .unwrap()
        .unwrap();
        assert_eq!(p.framing(false), Framing::Chunked(Chunk::Size));
        assert!(!String::from_utf8_lossy(&p.lines).contains("content-length"));
        let p = parse_head(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n")
            .unwrap()
            .unwrap();
        assert_eq!(p.framing(false), Framing::UntilClose);
        assert!(!p.keep_alive);
        let p = parse_head(b"HTTP/1.0 200 OK\r\nContent-Length: 1\r\n\r\n")
            .unwrap()
            .unwrap();
        assert!(!p.keep_alive);
        let p = parse_head(b"HTTP/1.1 304 Not Modified\r\nContent-Length: 10\r\n\r\n")
            .unwrap()
            .unwrap();
        assert_eq!(p.framing(false), Framing::Done);
        let p = parse_head(b"HTTP/1.1 103 Early Hints\r\nLink: </a.css>\r\n\r\n")
            .unwrap()
            .unwrap();
        assert!(p.informational);
        assert!(
            parse_head(b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n")
                .is_err()
        );
        // Hop-by-hop fields, and those Connection names, are not passed on.
        let p = parse_head(
            b"HTTP/1.1 200 OK\r\nConnection: keep-alive, X-Secret\r\nKeep-Alive: timeout=5\r\n\
              X-Secret: 1\r\nContent-Type: text/plain\r\nDate: x\r\nContent-Length: 2\r\n\r\n",
        )
        .unwrap()
        .unwrap();
        assert_eq!(
            p.lines,
            b"content-type: text/plain\r\ndate: x\r\ncontent-length: 2\r\n"
        );
        assert!(p.has_date && p.keep_alive);
        assert!(parse_head(b"HTTP/1.1 200 OK\r\nX-A: a\x7fb\r\n\r\n").is_err());
        assert!(parse_head(b"HTTP/1.1 200 OK\r\nContent-Len")
            .unwrap()
            .is_none());
    }
}
