//! The fast path for `GET` and `HEAD` on plain HTTP/1.x connections.
//!
//! A `GET`/`HEAD` with a complete, simple request head and no body is answered here: the
//! head parsed with httparse; `/static/…` by the same static phase as every other request
//! (`handler::handle_static`: same files, headers, conditional requests, ranges and access
//! log), the plain `200` of a file in memory even from a head written at load; any other
//! path by every phase of the edge (`handler::handle`: limit_req, limit_conn, forwarded
//! headers, the backend, the access log). A request for upstream peers never becomes a `Request` at
//! all when nothing needs one (`handler::prepare_proxy`): its head is rewritten for the
//! peer from the fields as read, its access log entry is made from them, and the peer's
//! answer is written back from the wire form it was read in. The answer is written as hyper's server would frame it
//! (`Content-Length`, chunked for HTTP/1.1, to the close for HTTP/1.0), the head and the
//! ready part of the body in one `writev`, later frames as they come. hyper's per-request
//! machinery (its dispatcher, service future and body framing) was most of the
//! user-space cost of a small answer, and nginx does without it.
//!
//! A head that arrives in pieces is read here until it is whole (within the header
//! timeout, and bounded in size before anything else), then checked by the codec's rules
//! (`h1::request`); a head they refuse gets its 4xx here. A request that passes them but
//! is not for this path — another method, a body, `Expect`, `Upgrade` — is handed to
//! hyper for that one request, with the bytes already read replayed first
//! ([`Prefixed`]), and the connection ends after it.

use std::io::{self, Write as _};
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime};

use axum::body::Body;
use axum::http::{
    header, HeaderMap, HeaderName, HeaderValue, Method, Request, StatusCode, Uri, Version,
};
use bytes::{Buf, Bytes, BytesMut};
use http_body_util::BodyExt;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;
use tokio::sync::{watch, Notify};
use tokio::time::Instant;

use crate::h1::request::{self, Refusal};
use crate::handler::{self, Reply, State};
use crate::headers;
use crate::upstream::Answer;

/// Header fields parsed in place; a head with more is parsed again with room for
/// [`MAX_MANY_HEADERS`].
const MAX_HEADERS: usize = 64;
/// Header fields a head may have at all (a 32 KiB head holds at most about 8,000 of the
/// smallest; nginx counts bytes, not fields, so this is only a bound for the parser).
const MAX_MANY_HEADERS: usize = 8 * 1024;
/// Free space ensured before each read of a new request.
const READ_ROOM: usize = 4096;
/// Responses are written in pieces of at most this much.
const WRITE_CHUNK: usize = 64 * 1024;

/// How a fast-path connection ended.
pub(crate) enum Outcome {
    /// Closed (by either side, by the idle timeout, or by a stop).
    Closed,
    /// Not for this path: serve the rest of the connection with hyper.
    HandOver(Prefixed),
}

/// Connections on the fast path, so a stop can wait for them as it waits for hyper's.
#[derive(Debug, Default)]
pub(crate) struct Tracker {
    open: AtomicUsize,
    idle: Notify,
}

/// Held by each fast-path connection.
pub(crate) struct Tracked<'a>(&'a Tracker);

impl Tracker {
    pub(crate) fn enter(&self) -> Tracked<'_> {
        self.open.fetch_add(1, Ordering::AcqRel);
        Tracked(self)
    }

    /// Resolves when no fast-path connection is open.
    pub(crate) async fn drained(&self) {
        loop {
            let notified = self.idle.notified();
            if self.open.load(Ordering::Acquire) == 0 {
                return;
            }
            notified.await;
        }
    }
}

impl Drop for Tracked<'_> {
    fn drop(&mut self) {
        if self.0.open.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.0.idle.notify_waiters();
        }
    }
}

/// Serves requests on `stream` until one is not for this path.
pub(crate) async fn serve(
    mut stream: TcpStream,
    peer: SocketAddr,
    state: &State,
    idle_timeout: Duration,
    limits: request::Limits,
    stop: &mut watch::Receiver<bool>,
) -> Outcome {
    let mut buf = BytesMut::with_capacity(READ_ROOM);
    let mut out = Vec::with_capacity(16 * 1024);
    // The body frames waiting to go out behind `out`, kept for the connection's life.
    let mut frames: Vec<Bytes> = Vec::with_capacity(8);
    // One stop registration and one idle timer for the connection's whole life, not one
    // of each per request: the timer is moved only when it fires early (a wait is over
    // `idle_timeout` only if it began at least that long ago), so a busy connection
    // costs a clock read per request and no timer-wheel traffic.
    let mut stop_wait = stop.clone();
    let mut stopping = std::pin::pin!(crate::server::stopped(&mut stop_wait));
    let idle = tokio::time::sleep_until(Instant::now() + idle_timeout);
    let mut idle = std::pin::pin!(idle);
    // When the last answer went out, if that clock was read anyway (for its `Date`).
    let mut answered: Option<Instant> = None;
    // When the head being read must be complete, once it has come in pieces.
    let mut head_deadline: Option<Instant> = None;
    loop {
        if buf.is_empty() {
            // Room for a whole head in one read: reading into the few bytes left at the
            // end of the buffer would split a request and send it to hyper for nothing.
            // (Empty, the buffer is reclaimed from the front, not grown.)
            buf.reserve(READ_ROOM);
            // Between requests: the keep-alive wait, bounded like hyper's header timeout.
            let wait_began = answered.take().unwrap_or_else(Instant::now);
            let read = loop {
                tokio::select! {
                    // In this order, without select's random start (its RNG showed up in
                    // profiles): the next request is what usually comes.
                    biased;
                    read = stream.read_buf(&mut buf) => break read,
                    () = &mut idle => {
                        let deadline = wait_began + idle_timeout;
                        if Instant::now() >= deadline {
                            return Outcome::Closed;
                        }
                        idle.as_mut().reset(deadline);
                    }
                    () = &mut stopping => return Outcome::Closed,
                }
            };
            match read {
                Ok(0) | Err(_) => return Outcome::Closed,
                Ok(_) => {}
            }
        }
        // Only the answer just before a wait may stand for its start.
        answered = None;
        let stopping_now = *stop.borrow();
        let parsed = parse(&buf, limits, state, peer, |hit, form| {
            write_hit_now(
                &stream,
                &mut out,
                hit,
                form,
                form.keep_alive && !stopping_now,
            )
        });
        let Parsed {
            head_len,
            form,
            head,
        } = match parsed {
            Parse::Done(parsed) => parsed,
            Parse::HandOver => return hand_over(stream, buf),
            Parse::Refused(refusal) => {
                write_refusal(&mut stream, refusal).await;
                return Outcome::Closed;
            }
            Parse::Partial => {
                // The rest of the head, within the header timeout (nginx's
                // `client_header_timeout`), and within the size limits.
                if let Some(refusal) = request::partial_too_large(&buf, limits) {
                    write_refusal(&mut stream, refusal).await;
                    return Outcome::Closed;
                }
                let deadline = *head_deadline.get_or_insert_with(|| Instant::now() + idle_timeout);
                buf.reserve(READ_ROOM);
                match tokio::time::timeout_at(deadline, stream.read_buf(&mut buf)).await {
                    Ok(Ok(read)) if read > 0 => continue,
                    // Closed, failed or too slow: nginx closes without an answer too.
                    _ => return Outcome::Closed,
                }
            }
        };
        head_deadline = None;
        buf.advance(head_len);
        let (written, keep_alive) = match head {
            Head::Hit(written, logged) => {
                let written = match written {
                    HitWrite::Done(at) => {
                        answered = Some(at);
                        Ok(())
                    }
                    HitWrite::Rest { head_from, body } => {
                        write_all_vectored(&mut stream, &out[head_from..], body.as_slice()).await
                    }
                    HitWrite::Failed(error) => Err(error),
                };
                if let Some((entry, bytes)) = logged {
                    handler::log(state, entry, bytes);
                }
                (written, form.keep_alive && !stopping_now)
            }
            Head::Proxy(request) => {
                let reply = handler::proxy(state, request).await;
                let keep_alive = form.keep_alive && !*stop.borrow();
                write_reply(&mut stream, &mut out, &mut frames, reply, form, keep_alive).await
            }
            Head::Request(request, path) => {
                // Every phase after the rules, the static one first, as on hyper's
                // connections.
                let request = request.map(|()| Body::empty());
                let response = handler::handle_checked(state, peer, "http", request, &path).await;
                let keep_alive = form.keep_alive && !*stop.borrow();
                let reply = Reply::Response(response);
                write_reply(&mut stream, &mut out, &mut frames, reply, form, keep_alive).await
            }
        };
        if written.is_err() || !keep_alive {
            let _ = stream.shutdown().await;
            return Outcome::Closed;
        }
    }
}

fn hand_over(stream: TcpStream, buf: BytesMut) -> Outcome {
    Outcome::HandOver(Prefixed {
        prefix: buf.freeze(),
        inner: stream,
    })
}

/// What a request's framing asks of the answer.
#[derive(Clone, Copy)]
struct Form {
    keep_alive: bool,
    http10: bool,
    head_only: bool,
}

/// A complete, simple `GET` or `HEAD` at the start of the buffer: how long its head is,
/// what its framing asks, and what it is.
struct Parsed {
    head_len: usize,
    form: Form,
    head: Head,
}

enum Head {
    /// The plain `200` from memory, written (or begun) while the head was parsed, and its
    /// access log entry with the body's length, when there is a log.
    Hit(HitWrite, Option<(crate::access_log::Entry, u64)>),
    /// A request for upstream peers, taken through the edge's phases on its head as read
    /// (`handler::prepare_proxy`): no `Request` is built, and the answer stays in wire form.
    Proxy(handler::ProxyRequest),
    /// Anything else: every phase of the edge, as hyper's connections run them (the
    /// static phase's 304, 206, 404 and access log; limit_req, limit_conn, forwarded
    /// headers, the backend), with the normalised path the rules gave.
    Request(Request<()>, String),
}

/// How far writing a plain static hit got without waiting.
enum HitWrite {
    /// All of it went out; the clock read for its `Date`.
    Done(Instant),
    /// The socket took only part: the rest of the head from `head_from` in the
    /// connection's head buffer, then what is left of the body.
    Rest {
        head_from: usize,
        body: Option<Bytes>,
    },
    Failed(io::Error),
}

/// What the bytes at the start of the buffer are.
// Returned once per request and matched at once: boxing `Done` would cost every request
// an allocation to save a move of a few hundred bytes on the stack.
#[allow(clippy::large_enum_variant)]
enum Parse {
    /// A request this path answers.
    Done(Parsed),
    /// A request that passed the rules but is hyper's to serve (a body, another method,
    /// `Expect`, `Upgrade`): hyper serves it, and the connection ends after it.
    HandOver,
    /// A head the rules refuse: answered with the refusal, then the connection closes.
    Refused(Refusal),
    /// Not a whole head yet.
    Partial,
}

/// The request head at the start of `buf`, checked against the codec's rules
/// ([`request::check`]) before anything else looks at it. The plain `200` of a static
/// file is given to `on_hit` while the index is borrowed.
fn parse(
    buf: &[u8],
    limits: request::Limits,
    state: &State,
    peer: SocketAddr,
    on_hit: impl FnOnce(keel_edge_static::PlainHitRef<'_>, Form) -> HitWrite,
) -> Parse {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut head = httparse::Request::new(&mut headers);
    match head.parse(buf) {
        Ok(httparse::Status::Complete(len)) => parsed(&head, len, buf, limits, state, peer, on_hit),
        Ok(httparse::Status::Partial) => Parse::Partial,
        Err(httparse::Error::TooManyHeaders) => {
            // Rare: a second parse with room for as many fields as the bytes read have
            // lines (no more than the size cap allows), not a fixed worst case.
            let lines = buf.iter().filter(|b| **b == b'\n').count();
            let mut many = vec![httparse::EMPTY_HEADER; lines.min(MAX_MANY_HEADERS)];
            let mut head = httparse::Request::new(&mut many);
            match head.parse(buf) {
                Ok(httparse::Status::Complete(len)) => {
                    parsed(&head, len, buf, limits, state, peer, on_hit)
                }
                Ok(httparse::Status::Partial) => Parse::Partial,
                Err(error) => Parse::Refused(request::syntax_error(error)),
            }
        }
        Err(error) => Parse::Refused(request::syntax_error(error)),
    }
}

/// [`parse`] for a complete head of `head_len` bytes.
fn parsed(
    head: &httparse::Request<'_, '_>,
    head_len: usize,
    buf: &[u8],
    limits: request::Limits,
    state: &State,
    peer: SocketAddr,
    on_hit: impl FnOnce(keel_edge_static::PlainHitRef<'_>, Form) -> HitWrite,
) -> Parse {
    if let Some(refusal) = request::too_large(&buf[..head_len], head.headers, limits) {
        return Parse::Refused(refusal);
    }
    let (Some(method), Some(target), Some(version)) = (head.method, head.path, head.version) else {
        return Parse::Refused(request::syntax_error(httparse::Error::Token));
    };
    let http10 = version == 0;
    let version = if http10 {
        Version::HTTP_10
    } else {
        Version::HTTP_11
    };
    let wire = head.headers.iter().map(|h| (h.name.as_bytes(), h.value));
    let checked = match request::check(request::View {
        method,
        target,
        version,
        authority: None,
        fields: wire.clone(),
    }) {
        Ok(checked) => checked,
        Err(refusal) => return Parse::Refused(refusal),
    };
    let method = match method {
        "GET" => Method::GET,
        "HEAD" => Method::HEAD,
        _ => return Parse::HandOver,
    };
    if checked.body != request::Body::None || checked.expect_or_upgrade {
        return Parse::HandOver;
    }
    let form = Form {
        keep_alive: !checked.close,
        http10,
        head_only: method == Method::HEAD,
    };
    let path = checked.origin;
    let is_static = handler::is_static_path(path.as_bytes());
    let fields = head.headers.iter().map(|h| (h.name, h.value));
    // Only targets any URI parser takes as they are; the rest go the way that checks.
    let plain_target = checked.host_override.is_none()
        && path
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._~/%?=&+,;:@!$'()*".contains(&b));
    let done = |head| {
        Parse::Done(Parsed {
            head_len,
            form,
            head,
        })
    };
    let hit = |hit: keel_edge_static::PlainHitRef<'_>| {
        let bytes = if form.head_only { 0 } else { hit.body.len() };
        (on_hit(hit, form), bytes)
    };
    if let Some((written, bytes)) = (is_static && plain_target)
        .then(|| handler::with_plain_static_hit(state, path, fields, hit))
        .flatten()
    {
        let entry = handler::static_hit_entry(state, peer, form.head_only, version, path, wire);
        let logged = entry.map(|entry| (entry, u64::try_from(bytes).unwrap_or(u64::MAX)));
        return done(Head::Hit(written, logged));
    }
    if plain_target && wire.clone().all(|(_, value)| headers::valid_value(value)) {
        if let Some(request) = handler::prepare_proxy(
            state,
            peer,
            form.head_only,
            version,
            path,
            &checked.path,
            wire,
        ) {
            return done(Head::Proxy(request));
        }
    }
    let mut map = HeaderMap::with_capacity(head.headers.len());
    for h in head.headers.iter() {
        let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(h.name.as_bytes()),
            HeaderValue::from_bytes(h.value),
        ) else {
            return Parse::Refused(request::syntax_error(httparse::Error::HeaderValue));
        };
        map.append(name, value);
    }
    if let Some(host) = checked.host_override {
        // RFC 9112 §3.2.2: an absolute-form target's host replaces the `Host` field.
        match HeaderValue::from_str(host) {
            Ok(value) => {
                map.insert(header::HOST, value);
            }
            Err(_) => return Parse::Refused(request::syntax_error(httparse::Error::Token)),
        }
    }
    let Ok(uri) = path.parse::<Uri>() else {
        return Parse::Refused(request::syntax_error(httparse::Error::Token));
    };
    let mut request = Request::new(());
    *request.method_mut() = method;
    *request.uri_mut() = uri;
    *request.version_mut() = version;
    *request.headers_mut() = map;
    done(Head::Request(request, checked.path.into_owned()))
}

/// Answers a refused head as nginx does (its status, a short text saying why,
/// `Connection: close`) and closes: what follows a broken head cannot be trusted to be
/// the next request.
async fn write_refusal(stream: &mut TcpStream, refusal: Refusal) {
    let form = Form {
        keep_alive: false,
        http10: false,
        head_only: false,
    };
    let reply = Reply::Response(handler::refusal_response(refusal));
    let (written, _) =
        write_reply(stream, &mut Vec::new(), &mut Vec::new(), reply, form, false).await;
    if written.is_ok() {
        let _ = stream.shutdown().await;
    }
}

/// Writes a plain static hit as far as the socket takes it without waiting: status line,
/// its header lines, `Date`, the connection's framing, and the body unless `head_only`,
/// in one `writev` of the borrowed bytes. Only an answer the socket cannot take at once
/// holds a reference to the file's bytes ([`HitWrite::Rest`]).
fn write_hit_now(
    stream: &TcpStream,
    out: &mut Vec<u8>,
    hit: keel_edge_static::PlainHitRef<'_>,
    form: Form,
    keep_alive: bool,
) -> HitWrite {
    let now = Instant::now();
    out.clear();
    out.extend_from_slice(b"HTTP/1.1 200 OK\r\n");
    out.extend_from_slice(hit.head);
    end_head(out, Some(now), form.http10, keep_alive);
    let body: &[u8] = if form.head_only { &[] } else { hit.body };
    let written = match stream.try_write_vectored(&[io::IoSlice::new(out), io::IoSlice::new(body)])
    {
        Ok(written) => written,
        Err(error) if error.kind() == io::ErrorKind::WouldBlock => 0,
        Err(error) => return HitWrite::Failed(error),
    };
    if written >= out.len() + body.len() {
        HitWrite::Done(now)
    } else if written < out.len() {
        HitWrite::Rest {
            head_from: written,
            body: (!body.is_empty()).then(|| hit.body.clone()),
        }
    } else {
        HitWrite::Rest {
            head_from: out.len(),
            body: Some(hit.body.slice(written - out.len()..)),
        }
    }
}

/// `Date` when `date` (the clock read for it) is given, `Connection` when the version's
/// default does not hold, and the blank line.
fn end_head(out: &mut Vec<u8>, date: Option<Instant>, http10: bool, keep_alive: bool) {
    if let Some(now) = date {
        out.extend_from_slice(b"date: ");
        with_date(now, |date| out.extend_from_slice(date));
        out.extend_from_slice(b"\r\n");
    }
    match (keep_alive, http10) {
        (false, false) => out.extend_from_slice(b"connection: close\r\n"),
        (true, true) => out.extend_from_slice(b"connection: keep-alive\r\n"),
        _ => {}
    }
    out.extend_from_slice(b"\r\n");
}

/// How a response's body is delimited on the wire.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Framing {
    /// No body may follow (HEAD, 1xx, 204, 304).
    None,
    /// `Content-Length`.
    Length,
    /// `Transfer-Encoding: chunked` (HTTP/1.1 clients, length unknown).
    Chunked,
    /// To the close (HTTP/1.0 clients, length unknown).
    Close,
}

/// Writes either form of reply as hyper's server would: status line, headers, `Date`,
/// framing and body, the head and whatever body is ready in one `writev`, later frames as
/// soon as they come (a live stream is never held back). The body is read to its end
/// even for HEAD (the access log entry is written when it ends). Returns how the write
/// went and whether the connection can carry another request.
async fn write_reply(
    stream: &mut TcpStream,
    out: &mut Vec<u8>,
    frames: &mut Vec<Bytes>,
    reply: Reply,
    form: Form,
    keep_alive: bool,
) -> (io::Result<()>, bool) {
    out.clear();
    let mut keep_alive = keep_alive;
    let written = match reply {
        Reply::Upstream(answer) => {
            let fields = answer_head(out, &answer);
            write_rest(stream, out, frames, fields, answer.body, form, keep_alive).await
        }
        Reply::Response(response) => {
            let (parts, body) = response.into_parts();
            let fields = response_head(out, &parts, &mut keep_alive);
            write_rest(stream, out, frames, fields, body, form, keep_alive).await
        }
    };
    match written {
        Ok(open) => (Ok(()), open),
        Err(error) => (Err(error), false),
    }
}

/// Writes a `Response`'s status line and header lines to `out`. `Connection` and
/// `Transfer-Encoding` are the edge's own to write; a `Connection: close` in the response
/// (413 with an unread body) ends the connection.
fn response_head(
    out: &mut Vec<u8>,
    parts: &axum::http::response::Parts,
    keep_alive: &mut bool,
) -> HeadFields {
    status_line(out, parts.status);
    for (name, value) in &parts.headers {
        if name == header::CONNECTION {
            *keep_alive &=
                !headers::tokens(value.as_bytes()).any(|t| t.eq_ignore_ascii_case(b"close"));
            continue;
        }
        if name == header::TRANSFER_ENCODING {
            continue;
        }
        out.extend_from_slice(name.as_str().as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    HeadFields {
        status: parts.status,
        has_length: parts.headers.contains_key(header::CONTENT_LENGTH),
        has_date: parts.headers.contains_key(header::DATE),
    }
}

/// [`response_head`] for an upstream's answer in wire form: its header lines are written
/// as they are (hop-by-hop ones were left out when they were read).
fn answer_head<B>(out: &mut Vec<u8>, answer: &Answer<B>) -> HeadFields {
    status_line(out, answer.status);
    out.extend_from_slice(&answer.lines);
    HeadFields {
        status: answer.status,
        has_length: answer.has_length,
        has_date: answer.has_date,
    }
}

/// What the end of a head depends on, once its status line and header lines are written.
struct HeadFields {
    status: StatusCode,
    has_length: bool,
    has_date: bool,
}

/// The rest of an answer whose status line and header lines are in `out`: the framing
/// header, `Date`, `Connection`, the blank line, then the body. Returns whether the
/// connection can carry another request.
async fn write_rest<B>(
    stream: &mut TcpStream,
    out: &mut Vec<u8>,
    frames: &mut Vec<Bytes>,
    fields: HeadFields,
    body: B,
    form: Form,
    keep_alive: bool,
) -> io::Result<bool>
where
    B: http_body::Body<Data = Bytes> + Unpin,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let mut keep_alive = keep_alive;
    let framing = framing(
        out,
        form,
        fields.status,
        fields.has_length,
        &body,
        &mut keep_alive,
    );
    let date = (!fields.has_date).then(Instant::now);
    end_head(out, date, form.http10, keep_alive);
    write_body(stream, out, frames, body, framing).await?;
    Ok(keep_alive)
}

/// HTTP/1.1 in the status line whatever the request's version, as nginx and RFC 9110
/// (a server sends its own version); keep-alive for 1.0 is said explicitly in the head.
fn status_line(out: &mut Vec<u8>, status: StatusCode) {
    out.extend_from_slice(b"HTTP/1.1 ");
    out.extend_from_slice(status.as_str().as_bytes());
    out.push(b' ');
    out.extend_from_slice(status.canonical_reason().unwrap_or("Unknown").as_bytes());
    out.extend_from_slice(b"\r\n");
}

/// How the body is delimited, with the header that says so added to `out` when the
/// answer has none: no body for HEAD, 1xx, 204 and 304; the answer's own length, or the
/// body's when it is known; chunked for HTTP/1.1; else to the close.
fn framing(
    out: &mut Vec<u8>,
    form: Form,
    status: StatusCode,
    has_length: bool,
    body: &impl http_body::Body,
    keep_alive: &mut bool,
) -> Framing {
    let no_body = form.head_only
        || status.is_informational()
        || status == StatusCode::NO_CONTENT
        || status == StatusCode::NOT_MODIFIED;
    if no_body {
        Framing::None
    } else if has_length {
        Framing::Length
    } else if let Some(length) = body.size_hint().exact() {
        // Infallible: writing to a Vec.
        let _ = write!(out, "content-length: {length}\r\n");
        Framing::Length
    } else if !form.http10 {
        out.extend_from_slice(b"transfer-encoding: chunked\r\n");
        Framing::Chunked
    } else {
        *keep_alive = false;
        Framing::Close
    }
}

/// Writes whatever head is in `out` and the body's frames behind it: the head and the
/// ready part of the body in one `writev` (no copy of the body into the head's buffer; a
/// static file is one frame of shared bytes), later frames as they come.
async fn write_body<B>(
    stream: &mut TcpStream,
    out: &mut Vec<u8>,
    pending: &mut Vec<Bytes>,
    mut body: B,
    framing: Framing,
) -> io::Result<()>
where
    B: http_body::Body<Data = Bytes> + Unpin,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    pending.clear();
    let mut pending_len = out.len();
    // While the body waits (a live stream between events), a client that goes away must
    // end it at once, as hyper notices: otherwise its socket and the upstream's stay open
    // until the next event fails to be written.
    let mut watch_client = true;
    loop {
        let ready =
            std::future::poll_fn(|cx| Poll::Ready(Pin::new(&mut body).poll_frame(cx))).await;
        let next = match ready {
            Poll::Ready(next) => next,
            Poll::Pending => {
                // Nothing more yet: send what there is before waiting for the rest.
                if pending_len > 0 {
                    flush(stream, out, pending).await?;
                    pending_len = 0;
                }
                if watch_client {
                    tokio::select! {
                        biased;
                        next = body.frame() => next,
                        gone = client_gone(stream) => {
                            if gone {
                                return Err(io::ErrorKind::ConnectionAborted.into());
                            }
                            // A pipelined request arrived: it waits for this answer.
                            watch_client = false;
                            body.frame().await
                        }
                    }
                } else {
                    body.frame().await
                }
            }
        };
        let Some(frame) = next else { break };
        let frame = frame.map_err(io::Error::other)?;
        let Ok(data) = frame.into_data() else {
            continue;
        };
        if framing == Framing::None || data.is_empty() {
            continue;
        }
        if framing == Framing::Chunked {
            let size = Bytes::from(format!("{:x}\r\n", data.len()));
            pending_len += size.len() + data.len() + 2;
            pending.extend([size, data, Bytes::from_static(b"\r\n")]);
        } else {
            pending_len += data.len();
            pending.push(data);
        }
        if pending_len >= WRITE_CHUNK {
            flush(stream, out, pending).await?;
            pending_len = 0;
        }
    }
    if framing == Framing::Chunked {
        pending_len += 5;
        pending.push(Bytes::from_static(b"0\r\n\r\n"));
    }
    if pending_len > 0 {
        // Also empties the frame list: an idle connection holds no answer's bytes.
        flush(stream, out, pending).await?;
    }
    Ok(())
}

/// Writes the head bytes and frames waiting to go out, and empties both.
async fn flush(
    stream: &mut TcpStream,
    out: &mut Vec<u8>,
    pending: &mut Vec<Bytes>,
) -> io::Result<()> {
    write_all_vectored(stream, out, pending).await?;
    out.clear();
    pending.clear();
    Ok(())
}

/// Resolves when the client's side of `stream` has something to say: `true` if it closed
/// (or failed), `false` if it sent bytes (left unread for the next request).
async fn client_gone(stream: &TcpStream) -> bool {
    let mut byte = [0u8; 1];
    matches!(stream.peek(&mut byte).await, Ok(0) | Err(_))
}

/// Writes `head` then every buffer of `body`, in as few `writev` calls as the socket takes.
async fn write_all_vectored(
    stream: &mut TcpStream,
    mut head: &[u8],
    mut body: &[Bytes],
) -> io::Result<()> {
    // The slices of one call live on the stack: an answer is a head and a few frames.
    const MAX_SLICES: usize = 16;
    // How much of `body[0]` is already written.
    let mut offset = 0;
    loop {
        while body.first().is_some_and(|first| first.len() == offset) {
            body = &body[1..];
            offset = 0;
        }
        let mut slices = [io::IoSlice::new(&[]); MAX_SLICES];
        let mut count = 0;
        if !head.is_empty() {
            slices[0] = io::IoSlice::new(head);
            count = 1;
        }
        for (i, part) in body.iter().take(MAX_SLICES - count).enumerate() {
            slices[count] = io::IoSlice::new(if i == 0 { &part[offset..] } else { part });
            count += 1;
        }
        if count == 0 {
            return Ok(());
        }
        let mut written = stream.write_vectored(&slices[..count]).await?;
        if written == 0 {
            return Err(io::ErrorKind::WriteZero.into());
        }
        let from_head = written.min(head.len());
        head = &head[from_head..];
        written -= from_head;
        while let Some(first) = body.first() {
            let left = first.len() - offset;
            if written < left {
                offset += written;
                break;
            }
            written -= left;
            offset = 0;
            body = &body[1..];
        }
    }
}

/// The `Date` header value at `now`, formatted once per second per thread (as hyper
/// caches it). The wall clock is read only when the cached second may be over, and
/// `now` is a clock read the caller needed anyway: one read per answer, not two.
fn with_date(now: Instant, f: impl FnOnce(&[u8])) {
    thread_local! {
        static DATE: std::cell::RefCell<(Option<Instant>, String)> =
            const { std::cell::RefCell::new((None, String::new())) };
    }
    DATE.with(|cell| {
        let mut cached = cell.borrow_mut();
        if cached.0.is_none_or(|until| now >= until) {
            let wall = SystemTime::now();
            let into_second = wall
                .duration_since(SystemTime::UNIX_EPOCH)
                .map_or(Duration::ZERO, |d| {
                    Duration::from_nanos(d.subsec_nanos().into())
                });
            // Valid until the wall clock's next second begins.
            *cached = (
                Some(now + (Duration::from_secs(1) - into_second)),
                httpdate::fmt_http_date(wall),
            );
        }
        f(cached.1.as_bytes());
    });
}

/// A connection whose first bytes were already read: they are read again first.
pub(crate) struct Prefixed {
    prefix: Bytes,
    inner: TcpStream,
}

impl AsyncRead for Prefixed {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if !self.prefix.is_empty() {
            let n = self.prefix.len().min(buf.remaining());
            buf.put_slice(&self.prefix[..n]);
            self.prefix.advance(n);
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for Prefixed {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Hundreds of keep-alive requests on one connection all stay on the fast path: the
    /// buffer is reclaimed between requests, so no read splits a head (a split head would
    /// send the connection to hyper).
    #[tokio::test]
    async fn a_long_keep_alive_connection_stays_on_the_fast_path() {
        let root = tempfile::tempdir().unwrap();
        let css: &'static [(&'static str, &'static [u8])] = &[("css/site.css", b"body {}\n")];
        keel_static::collect(&keel_static::CollectOptions {
            static_root: root.path().to_owned(),
            sources: vec![keel_static::Source::Embedded(css)],
        })
        .unwrap();
        let files = keel_edge_static::StaticFiles::load(
            root.path(),
            keel_edge_static::StaticOptions::default(),
        )
        .unwrap();
        let mut cfg = crate::EdgeConfig::new(
            SocketAddr::from(([127, 0, 0, 1], 0)),
            crate::Backend::Upstreams(Vec::new()),
        );
        cfg.static_files = Some(keel_edge_static::StaticHandle::new(files));
        let state = State::new(&cfg, None);

        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let client = tokio::spawn(async move {
            let mut stream = TcpStream::connect(addr).await.unwrap();
            let request = b"GET /static/css/site.css HTTP/1.1\r\nHost: 127.0.0.1:12345\r\n\r\n";
            let mut buf = vec![0u8; 4096];
            for _ in 0..500 {
                stream.write_all(request).await.unwrap();
                // Handed to hyper, nobody would answer here: fail instead of hanging.
                let n = tokio::time::timeout(Duration::from_secs(2), stream.read(&mut buf))
                    .await
                    .expect("no answer: the connection left the fast path")
                    .unwrap();
                assert!(buf[..n].starts_with(b"HTTP/1.1 200 OK"));
                assert!(buf[..n].ends_with(b"body {}\n"));
            }
        });
        let (stream, peer) = listener.accept().await.unwrap();
        let (_stop_tx, mut stop) = watch::channel(false);
        let outcome = serve(
            stream,
            peer,
            &state,
            Duration::from_secs(5),
            request::Limits::with_max_head(8192),
            &mut stop,
        )
        .await;
        client.await.unwrap();
        assert!(
            matches!(outcome, Outcome::Closed),
            "the connection was handed to hyper"
        );
    }

    fn peer() -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], 40000))
    }

    fn no_hit(_: keel_edge_static::PlainHitRef<'_>, _: Form) -> HitWrite {
        panic!("a hit without static files")
    }

    /// The general form of a parsed head (the state here serves no files, so never a hit,
    /// and has no upstream peers, so never the wire form).
    fn full(buf: &[u8], max: usize) -> Option<(usize, Request<()>, Form)> {
        let state = State::new(
            &crate::EdgeConfig::new(
                SocketAddr::from(([127, 0, 0, 1], 0)),
                crate::Backend::InProcess(axum::Router::new()),
            ),
            None,
        );
        let Parse::Done(parsed) = parse(
            buf,
            request::Limits::with_max_head(max),
            &state,
            peer(),
            no_hit,
        ) else {
            return None;
        };
        match parsed.head {
            Head::Request(request, _) => Some((parsed.head_len, request, parsed.form)),
            Head::Hit(..) => panic!("a hit without static files"),
            Head::Proxy(_) => panic!("the wire form without peers"),
        }
    }

    /// For upstream peers, a plain bodiless request stays in wire form; what the general
    /// form must check (an unusual target, a control byte in a value) does not.
    #[test]
    fn requests_for_peers_stay_in_wire_form_when_they_can() {
        let state = State::new(
            &crate::EdgeConfig::new(
                SocketAddr::from(([127, 0, 0, 1], 0)),
                crate::Backend::Upstreams(vec!["127.0.0.1:9".parse().unwrap()]),
            ),
            None,
        );
        let wire = |buf: &[u8]| {
            let Parse::Done(parsed) = parse(
                buf,
                request::Limits::with_max_head(8192),
                &state,
                peer(),
                no_hit,
            ) else {
                return None;
            };
            match parsed.head {
                Head::Proxy(_) => Some((parsed.head_len, parsed.form)),
                // The general form (or, above, hyper's).
                Head::Request(..) => None,
                Head::Hit(..) => panic!("a hit without static files"),
            }
        };
        let (len, form) = wire(b"GET /api/x?y=1 HTTP/1.1\r\nHost: x\r\n\r\nGET").unwrap();
        assert_eq!(len, 36);
        assert!(form.keep_alive && !form.head_only);
        let (_, form) = wire(b"HEAD /api/x HTTP/1.0\r\n\r\n").unwrap();
        assert!(form.head_only && form.http10 && !form.keep_alive);
        assert!(wire(b"GET /api/\"x\" HTTP/1.1\r\nHost: x\r\n\r\n").is_none());
        assert!(wire(b"GET /api/x HTTP/1.1\r\nX-A: \x7f\r\n\r\n").is_none());
    }

    #[test]
    fn simple_gets_are_taken_the_rest_handed_over_and_bad_heads_refused() {
        let (len, request, form) =
            full(b"GET /static/a.css HTTP/1.1\r\nHost: x\r\n\r\nGET", 8192).unwrap();
        assert_eq!(len, 39);
        assert!(form.keep_alive && !form.http10 && !form.head_only);
        assert_eq!(request.uri().path(), "/static/a.css");
        assert_eq!(request.headers()["host"], "x");

        let (_, _, form) = full(
            b"HEAD /static/a.css HTTP/1.0\r\nConnection: keep-alive\r\n\r\n",
            8192,
        )
        .unwrap();
        assert!(form.keep_alive && form.http10 && form.head_only);
        let (_, _, form) = full(b"GET /static/a.css HTTP/1.0\r\n\r\n", 8192).unwrap();
        assert!(!form.keep_alive);
        let (_, _, form) = full(
            b"GET /static/a.css HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
            8192,
        )
        .unwrap();
        assert!(!form.keep_alive);

        // Any other path too: the edge's phases answer it here.
        let (_, request, _) = full(b"GET /api/x?y=1 HTTP/1.1\r\nHost: x\r\n\r\n", 8192).unwrap();
        assert_eq!(request.uri(), "/api/x?y=1");

        // What passes the rules but is not answered here is hyper's, for that request.
        for other in [
            &b"POST /api/x HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\n\r\nx"[..],
            b"DELETE /api/x HTTP/1.1\r\nHost: x\r\n\r\n",
            b"POST /static/a.css HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\n\r\nx",
            b"GET /static/a.css HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n",
            b"GET /static/a.css HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\n",
            b"GET /static/a.css HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\n\r\n",
            b"GET /static/a.css HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n\r\n",
        ] {
            assert!(
                matches!(outcome(other, 8192), Outcome_::HandOver),
                "{}",
                String::from_utf8_lossy(other)
            );
        }
        // A head not yet complete waits for the rest.
        assert!(matches!(
            outcome(b"GET /static/a.css HTTP/1.1\r\nHost: x\r\n", 8192),
            Outcome_::Partial
        ));
        // What the rules refuse is refused here, with nginx's status.
        for (refused, status) in [
            (&b"GET /static/a.css HTTP/1.1\r\nBad Header: x\r\n\r\n"[..], 400),
            (b"OPTIONS * HTTP/1.1\r\nHost: x\r\n\r\n", 400),
            (b"GET /a HTTP/1.1\r\n\r\n", 400),
            (b"get /a HTTP/1.1\r\nHost: x\r\n\r\n", 400),
            (b"CONNECT x:443 HTTP/1.1\r\nHost: x\r\n\r\n", 400),
            (b"GET /a/../../b HTTP/1.1\r\nHost: x\r\n\r\n", 400),
            (b"GET /a HTTP/2.0\r\nHost: x\r\n\r\n", 505),
            (b"POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n", 400),
            (b"POST /a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", 501),
            (b"GET /static/a.css HTTP/1.1\r\nHost: x\r\n\r\n", 431),
        ] {
            let max = if status == 431 { 20 } else { 8192 };
            match outcome(refused, max) {
                Outcome_::Refused(code) => assert_eq!(code, status, "{}", String::from_utf8_lossy(refused)),
                _ => panic!("not refused: {}", String::from_utf8_lossy(refused)),
            }
        }
        // Absolute-form: the target's host replaces the Host line, the target becomes a path.
        let (_, request, _) = full(
            b"GET http://good.example/api/x HTTP/1.1\r\nHost: evil\r\n\r\n",
            8192,
        )
        .unwrap();
        assert_eq!(request.uri(), "/api/x");
        assert_eq!(request.headers()["host"], "good.example");
        // A long request line is 414, a long header line 431, with nginx's 8 KiB buffers.
        let long_target = format!("GET /{} HTTP/1.1\r\nHost: x\r\n\r\n", "a".repeat(9000));
        assert!(matches!(
            outcome(long_target.as_bytes(), 32 * 1024),
            Outcome_::Refused(414)
        ));
        let long_field = format!(
            "GET / HTTP/1.1\r\nHost: x\r\nX-A: {}\r\n\r\n",
            "a".repeat(9000)
        );
        assert!(matches!(
            outcome(long_field.as_bytes(), 32 * 1024),
            Outcome_::Refused(431)
        ));
        let partial = format!("GET /{}", "a".repeat(9000));
        assert_eq!(
            request::partial_too_large(
                partial.as_bytes(),
                request::Limits::with_max_head(32 * 1024)
            )
            .map(|r| r.status.as_u16()),
            Some(414)
        );
    }

    /// What [`parse`] made of a head, without the parsed request.
    enum Outcome_ {
        Done,
        HandOver,
        Refused(u16),
        Partial,
    }

    fn outcome(buf: &[u8], max: usize) -> Outcome_ {
        let state = State::new(
            &crate::EdgeConfig::new(
                SocketAddr::from(([127, 0, 0, 1], 0)),
                crate::Backend::InProcess(axum::Router::new()),
            ),
            None,
        );
        match parse(
            buf,
            request::Limits::with_max_head(max),
            &state,
            peer(),
            no_hit,
        ) {
            Parse::Done(_) => Outcome_::Done,
            Parse::HandOver => Outcome_::HandOver,
            Parse::Refused(refusal) => Outcome_::Refused(refusal.status.as_u16()),
            Parse::Partial => Outcome_::Partial,
        }
    }

    #[test]
    fn many_header_fields_are_read_not_refused() {
        let mut head = b"GET /api/x HTTP/1.1\r\nHost: x\r\n".to_vec();
        for i in 0..200 {
            head.extend_from_slice(format!("X-F{i}: {i}\r\n").as_bytes());
        }
        head.extend_from_slice(b"\r\n");
        assert!(matches!(outcome(&head, 32 * 1024), Outcome_::Done));
    }
}
