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
//! Framing of the answer follows RFC 9112 §6.3 through the codec's one decoder
//! (`h1::framing`): no body for `HEAD`, 204 and 304; `Transfer-Encoding: chunked`
//! decoded strictly (trailers dropped; the edge re-frames the body for its client);
//! `Content-Length`; else the body runs to the close. As nginx, an answer is invalid
//! (→ 502, connection closed) when its `Content-Length` is not digits or comes twice, when
//! it has both `Content-Length` and `Transfer-Encoding`, a coding other than `chunked`,
//! or an interim 1xx head (these requests never send `Expect`).
//!
//! # When a connection is reused
//! Response queue poisoning — an upstream's extra bytes read as the answer to the *next*
//! client's request — is what a keep-alive pool must never allow. A connection goes back
//! to the pool only when its answer was read completely by its framing, the answer allowed
//! keep-alive (HTTP/1.1, no `Connection: close`), no byte beyond it had arrived, and the
//! answer was not bodiless by rule (HEAD, 204, 304: nothing bounds what an upstream writes
//! after those). At checkout, a pooled connection on which anything arrived while it was
//! idle (data, or the close) is dropped, asked of the socket itself. A pooled connection
//! that fails when the request is written, or closes before a byte of the answer, costs
//! one fresh retry, never an error.

use std::cell::RefCell;
use std::pin::Pin;
use std::sync::{Arc, Weak};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::Body;
use axum::http::{HeaderMap, HeaderName, HeaderValue, Response, StatusCode, Version};
use bytes::{Buf, Bytes, BytesMut};

use crate::h1::framing::{Chunk, Framing, FramingError, Step};
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
        (fresh && quiet(&idle.stream)).then_some(idle.stream)
    })
}

/// Whether nothing has arrived on an idle connection: no byte, no close, no error. An
/// upstream that wrote more than its last answer's framing said (a body after a `204`,
/// bytes written late) would otherwise have those bytes read as the *next* client's
/// answer; nginx closes a cached connection as soon as anything arrives on it
/// (`ngx_http_upstream_keepalive_close_handler`). Asked of the socket itself
/// (`recv` with `MSG_PEEK`), not of the runtime's cached readiness, which may not have
/// seen the bytes yet.
fn quiet(stream: &TcpStream) -> bool {
    let mut byte = [std::mem::MaybeUninit::<u8>::uninit(); 1];
    match socket2::SockRef::from(stream).peek(&mut byte) {
        Err(error) => error.kind() == std::io::ErrorKind::WouldBlock,
        // Data (a leftover) or 0 (the peer closed): either way, not reusable.
        Ok(_) => false,
    }
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
    /// A new connection closed (or was reset) before a single byte of an answer: the
    /// peer died or is going away. The request may have reached it, so only an
    /// idempotent request may be sent to another peer (nginx's `proxy_next_upstream
    /// error` does so for these requests).
    Closed(String),
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
        Err(Attempt::Stale) => Err(ExchangeError::Closed(
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
        if let Some(parsed) = parse_head(&buf).map_err(Attempt::Failed)? {
            buf.advance(parsed.len);
            // These requests never ask for an interim answer (no `Expect`); nginx 1.22
            // takes one as an invalid answer too, rather than guess what follows it.
            if parsed.informational {
                return Err(Attempt::Failed(format!(
                    "an interim {} answer to a request that asked for none",
                    parsed.status
                )));
            }
            let framing = parsed.framing(head_only);
            // An answer with no body by rule (to HEAD, 204, 304) says nothing of what the
            // upstream may still write after it: gunicorn's threaded worker under Django
            // sends a body on HEAD. Such a connection is not reused at all.
            let bodiless_by_rule = parsed.bodiless_by_rule(head_only);
            let mut body = RawBody {
                stream: Some(stream),
                buf,
                framing,
                reusable: parsed.keep_alive && !bodiless_by_rule,
                key: key.clone(),
            };
            if body.framing == Framing::Done {
                body.finish();
            }
            return Ok(Answer {
                status: parsed.status,
                lines: parsed.lines,
                has_date: parsed.has_date,
                // CL beside TE was refused: a length is the body's.
                has_length: parsed.length.is_some(),
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
    length: Option<u64>,
}

impl Parsed {
    /// Whether the answer has no body by rule: to `HEAD`, or a 204 or 304.
    fn bodiless_by_rule(&self, head_only: bool) -> bool {
        head_only
            || self.status == StatusCode::NO_CONTENT
            || self.status == StatusCode::NOT_MODIFIED
    }

    fn framing(&self, head_only: bool) -> Framing {
        if self.bodiless_by_rule(head_only) {
            Framing::Done
        } else if self.chunked {
            Framing::Chunked(Chunk::Size)
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
            // As nginx: exactly `chunked`, once; any other coding is an invalid answer
            // (a body running to the close would hide where it really ends).
            if chunked || !h.value.trim_ascii().eq_ignore_ascii_case(b"chunked") {
                return Err("a Transfer-Encoding other than chunked".to_owned());
            }
            chunked = true;
        } else if name.eq_ignore_ascii_case(b"content-length") {
            // Digits only (no `+5`, no list), and only one, as nginx.
            let n = crate::h1::request::content_length(h.value)
                .ok_or_else(|| "bad Content-Length".to_owned())?;
            if length.is_some() {
                return Err("more than one Content-Length header".to_owned());
            }
            length = Some(n);
        } else if name.eq_ignore_ascii_case(b"date") {
            has_date = true;
        }
    }
    if chunked && length.is_some() {
        // RFC 9112 §6.3 lets Transfer-Encoding win; nginx takes it as an invalid answer,
        // and so does the edge: one of the two is a lie about where the body ends.
        return Err("Content-Length and Transfer-Encoding in one answer".to_owned());
    }
    let mut lines = Vec::with_capacity(len);
    for (name, value) in fields.clone() {
        if crate::headers::is_hop_by_hop(name)
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
        keep_alive,
        chunked,
        length,
    }))
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

    /// Bytes of the body already read, as far as its framing allows; the connection is
    /// let go (to the pool, or closed) the moment the framing says the body is complete.
    fn step(&mut self) -> Result<Step, FramingError> {
        let step = self.framing.step(&mut self.buf)?;
        if self.framing == Framing::Done && self.stream.is_some() {
            self.finish();
        }
        Ok(step)
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
                Err(error) => {
                    let detail = error.to_string();
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

    /// A pooled connection on which anything arrived while idle — bytes, or the close —
    /// is not quiet, so it is never checked out (response queue poisoning).
    #[tokio::test]
    async fn idle_connections_with_anything_waiting_are_not_quiet() {
        use tokio::io::AsyncWriteExt;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let client = TcpStream::connect(addr).await.unwrap();
        let (mut server, _) = listener.accept().await.unwrap();
        assert!(quiet(&client));
        server.write_all(b"HTTP/1.1 200 OK\r\n").await.unwrap();
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(!quiet(&client));
        let other = TcpStream::connect(addr).await.unwrap();
        let (server, _) = listener.accept().await.unwrap();
        drop(server);
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(!quiet(&other));
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
    fn answer_heads_say_how_their_body_is_framed() {
        let p = parse_head(b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabc")
            .unwrap()
            .unwrap();
        assert_eq!(p.framing(false), Framing::Length(3));
        assert_eq!(p.framing(true), Framing::Done);
        assert!(p.keep_alive);
        let p = parse_head(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
            .unwrap()
            .unwrap();
        assert_eq!(p.framing(false), Framing::Chunked(Chunk::Size));
        // What nginx takes as an invalid answer (502) is one here too.
        for bad in [
            &b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n"[..],
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nContent-Length: +5\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nContent-Length: 1, 1\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\n",
        ] {
            assert!(parse_head(bad).is_err(), "{}", String::from_utf8_lossy(bad));
        }
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
