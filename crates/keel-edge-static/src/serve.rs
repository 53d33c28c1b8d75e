//! [`StaticFiles::serve`]: one request → one response, synchronously and without I/O
//! (a large file's bytes are read later, while its body is polled).
//!
//! The order of decisions, each of which can end the request:
//! 1. method: GET and HEAD only, else **405** with `Allow: GET, HEAD` (before the path is
//!    looked at, so it reveals nothing about which files exist);
//! 2. path: [`crate::path::normalize`] → **400** / **404**, then the index lookup → **404**;
//! 3. representation: a precompressed variant by `Accept-Encoding`, except when the
//!    request has a `Range` header (see below);
//! 4. preconditions ([`crate::conditional`]) → **412** / **304**;
//! 5. range ([`crate::range`]), guarded by `If-Range` → **206** / **416** / **200**.
//!
//! Every response carries `X-Content-Type-Options: nosniff`; file responses carry
//! `Content-Type`, `Content-Length`, a strong `ETag`, `Last-Modified`, `Cache-Control`
//! (`public, max-age=31536000, immutable` for hashed names, `public, max-age=<max_age>`
//! otherwise) and `Accept-Ranges: bytes`; files that have a `.br` or `.gz` variant
//! always carry `Vary: Accept-Encoding`, whichever form is sent, so shared caches keep
//! the forms apart. HEAD gets exactly the GET headers and no body.
//!
//! # Ranges and precompressed variants
//! A request with `Range` always gets the identity bytes (with `Vary` still sent). The
//! RFC lets the server choose the representation; choosing identity keeps one meaning
//! of byte offsets per URL, whatever `Accept-Encoding` a resuming client sends, and no
//! browser sends `Range` for CSS or JS. This is *not* exactly nginx: `gzip_static` sets
//! `allow_ranges` and serves ranges of the `.gz` bytes, while ngx_brotli's
//! `brotli_static` serves no ranges at all. Range consumers (media seeking, resumed
//! downloads) target already-compressed types that have no variants anyway.
//!
//! # How this differs from nginx
//! No directory listings or index files, no `try_files`, no error pages: error bodies are
//! one line of text. nginx accepts `POST` to a static file (405 only after opening it);
//! here the method is checked first.

use bytes::Bytes;
use http::header::{
    HeaderMap, ACCEPT_RANGES, ALLOW, CACHE_CONTROL, CONTENT_ENCODING, CONTENT_LENGTH,
    CONTENT_RANGE, CONTENT_TYPE, ETAG, LAST_MODIFIED, RANGE, VARY, X_CONTENT_TYPE_OPTIONS,
};
use http::{HeaderValue, Method, Response, StatusCode};
use keel_static::Encoding;

use crate::body::StaticBody;
use crate::conditional::{self, Precondition};
use crate::index::{Data, Entry, Rep, StaticFiles};
use crate::path::{self, PathRejection};
use crate::range::{self, RangeRequest};

const NOSNIFF: HeaderValue = HeaderValue::from_static("nosniff");
const BYTES: HeaderValue = HeaderValue::from_static("bytes");
const ACCEPT_ENCODING_VARY: HeaderValue = HeaderValue::from_static("Accept-Encoding");
const GET_HEAD: HeaderValue = HeaderValue::from_static("GET, HEAD");
const TEXT_PLAIN: HeaderValue = HeaderValue::from_static("text/plain; charset=utf-8");
const BR: HeaderValue = HeaderValue::from_static("br");
const GZIP: HeaderValue = HeaderValue::from_static("gzip");

impl StaticFiles {
    /// Answer one request for `path`, the request path after the mount prefix
    /// (`"css/site.css"` for `/static/css/site.css`), still percent-encoded, without the
    /// query string. Never fails: every problem is a status code (see the module docs).
    ///
    /// Streaming bodies of large files need a tokio runtime when they are polled.
    pub fn serve(&self, method: &Method, path: &str, headers: &HeaderMap) -> Response<StaticBody> {
        let head = *method == Method::HEAD;
        if *method != Method::GET && !head {
            let mut response = plain(
                StatusCode::METHOD_NOT_ALLOWED,
                "Method Not Allowed\n",
                false,
            );
            response.headers_mut().insert(ALLOW, GET_HEAD);
            return response;
        }
        let name = match path::normalize(path) {
            Ok(name) => name,
            Err(PathRejection::BadRequest(reason)) => {
                tracing::debug!(path, reason, "static path refused");
                return plain(StatusCode::BAD_REQUEST, "Bad Request\n", head);
            }
            Err(PathRejection::NotFound(reason)) => {
                tracing::debug!(path, reason, "static path not served");
                return plain(StatusCode::NOT_FOUND, "Not Found\n", head);
            }
        };
        match self.entries.get(&*name) {
            Some(entry) => self.respond(entry, headers, head),
            None => plain(StatusCode::NOT_FOUND, "Not Found\n", head),
        }
    }

    fn respond(&self, entry: &Entry, headers: &HeaderMap, head: bool) -> Response<StaticBody> {
        let range_header = headers.get(RANGE);
        let encoding = match range_header {
            Some(_) => None,
            None => crate::negotiate::choose(headers, entry.br.is_some(), entry.gzip.is_some()),
        };
        let rep = entry.rep(encoding);
        let modified = entry.last_modified.as_ref().map(|l| l.secs);

        match conditional::evaluate(headers, rep.etag.as_bytes(), modified) {
            Precondition::Proceed => {}
            Precondition::NotModified => {
                let mut response = Response::new(StaticBody::empty());
                *response.status_mut() = StatusCode::NOT_MODIFIED;
                validators(response.headers_mut(), entry, rep);
                return response;
            }
            Precondition::Failed => {
                return plain(
                    StatusCode::PRECONDITION_FAILED,
                    "Precondition Failed\n",
                    head,
                )
            }
        }

        let range = match range_header {
            Some(value) if conditional::if_range_allows(headers, rep.etag.as_bytes(), modified) => {
                range::parse(value.as_bytes(), rep.len)
            }
            _ => RangeRequest::Full,
        };
        match range {
            RangeRequest::Full => {
                let body = if head {
                    StaticBody::empty()
                } else {
                    self.body(rep, 0, rep.len)
                };
                let mut response = Response::new(body);
                let h = response.headers_mut();
                representation(h, entry, rep, encoding);
                h.insert(CONTENT_LENGTH, rep.content_length.clone());
                response
            }
            RangeRequest::Partial { start, end } => {
                let len = end - start + 1;
                let body = if head {
                    StaticBody::empty()
                } else {
                    self.body(rep, start, len)
                };
                let mut response = Response::new(body);
                *response.status_mut() = StatusCode::PARTIAL_CONTENT;
                let h = response.headers_mut();
                representation(h, entry, rep, encoding);
                h.insert(CONTENT_LENGTH, HeaderValue::from(len));
                if let Ok(value) = HeaderValue::try_from(format!("bytes {start}-{end}/{}", rep.len))
                {
                    h.insert(CONTENT_RANGE, value);
                }
                response
            }
            RangeRequest::Unsatisfiable => {
                let mut response = plain(
                    StatusCode::RANGE_NOT_SATISFIABLE,
                    "Range Not Satisfiable\n",
                    head,
                );
                let h = response.headers_mut();
                if let Ok(value) = HeaderValue::try_from(format!("bytes */{}", rep.len)) {
                    h.insert(CONTENT_RANGE, value);
                }
                h.insert(ACCEPT_RANGES, BYTES);
                response
            }
        }
    }

    fn body(&self, rep: &Rep, start: u64, len: u64) -> StaticBody {
        match &rep.data {
            Data::Memory(bytes) => {
                let start = usize::try_from(start).unwrap_or(usize::MAX);
                let len = usize::try_from(len).unwrap_or(usize::MAX);
                // In range by construction (start + len ≤ rep.len = bytes.len()); an
                // empty body would only ever show up as a Content-Length mismatch.
                match start.checked_add(len).filter(|&end| end <= bytes.len()) {
                    Some(end) => StaticBody::from_bytes(bytes.slice(start..end)),
                    None => StaticBody::empty(),
                }
            }
            Data::File(file) => StaticBody::from_file(
                std::sync::Arc::clone(file),
                start,
                len,
                self.opts.stream_chunk_bytes,
            ),
        }
    }
}

/// A complete `200` to a plain `GET`/`HEAD`, ready for the wire: see
/// [`StaticFiles::plain_hit`].
#[derive(Clone, Debug)]
pub struct PlainHit {
    /// The header lines (`name: value\r\n` each), without the status line, `Date`,
    /// `Connection` and the blank line that ends the head.
    pub head: Bytes,
    /// The whole body (a `GET` sends it, a `HEAD` does not).
    pub body: Bytes,
}

/// A [`PlainHit`] borrowed from the index: see [`StaticFiles::with_plain_hit`].
#[derive(Clone, Copy, Debug)]
pub struct PlainHitRef<'a> {
    /// As [`PlainHit::head`].
    pub head: &'a Bytes,
    /// As [`PlainHit::body`].
    pub body: &'a Bytes,
}

impl PlainHitRef<'_> {
    /// The hit with its own references to the bytes.
    pub fn to_owned(self) -> PlainHit {
        PlainHit {
            head: self.head.clone(),
            body: self.body.clone(),
        }
    }
}

/// Request headers that can make the answer anything but the plain `200`.
const NOT_PLAIN: [&str; 6] = [
    "range",
    "if-match",
    "if-none-match",
    "if-modified-since",
    "if-unmodified-since",
    "if-range",
];

impl StaticFiles {
    /// The answer [`StaticFiles::serve`] would give a `GET` or `HEAD` of `path`, as wire
    /// bytes, when that answer is a `200` from memory: the file exists, is held in memory,
    /// and `headers` (the request's raw name/value pairs) have no `Range` or `If-*`.
    /// `None` means "ask [`StaticFiles::serve`]", never "not found".
    ///
    /// For servers that write responses themselves: the head was written at load by the
    /// same code as `serve`'s (so the two cannot drift), and a hit costs a lookup and the
    /// `Accept-Encoding` choice — no header map, no allocation.
    pub fn plain_hit<'a>(
        &self,
        path: &str,
        headers: impl Iterator<Item = (&'a str, &'a [u8])> + Clone,
    ) -> Option<PlainHit> {
        self.with_plain_hit(path, headers, |hit| hit.to_owned())
    }

    /// [`StaticFiles::plain_hit`] lent to `f` instead of cloned: a server that can write
    /// the answer at once touches no reference count. Those counts are shared by every
    /// thread serving the file, so each clone and drop of a popular file's bytes moved a
    /// cache line between cores.
    pub fn with_plain_hit<'a, R>(
        &self,
        path: &str,
        headers: impl Iterator<Item = (&'a str, &'a [u8])> + Clone,
        f: impl FnOnce(PlainHitRef<'_>) -> R,
    ) -> Option<R> {
        if headers
            .clone()
            .any(|(name, _)| NOT_PLAIN.iter().any(|n| name.eq_ignore_ascii_case(n)))
        {
            return None;
        }
        let name = path::normalize(path).ok()?;
        let entry = self.entries.get(&*name)?;
        let encoding = crate::negotiate::choose_from(
            headers
                .filter(|(name, _)| name.eq_ignore_ascii_case("accept-encoding"))
                .map(|(_, value)| value),
            entry.br.is_some(),
            entry.gzip.is_some(),
        );
        let (rep, wire) = match encoding {
            Some(Encoding::Brotli) => (entry.br.as_ref()?, &entry.wire[1]),
            Some(Encoding::Gzip) => (entry.gzip.as_ref()?, &entry.wire[2]),
            None => (&entry.identity, &entry.wire[0]),
        };
        match &rep.data {
            Data::Memory(body) => Some(f(PlainHitRef { head: wire, body })),
            Data::File(_) => None,
        }
    }
}

/// The header lines of a full `200` of `entry` in `encoding`, as `respond` builds them.
pub(crate) fn wire_head(entry: &Entry, encoding: Option<Encoding>) -> Bytes {
    let rep = entry.rep(encoding);
    let mut h = HeaderMap::new();
    representation(&mut h, entry, rep, encoding);
    h.insert(CONTENT_LENGTH, rep.content_length.clone());
    let mut out = Vec::with_capacity(256);
    for (name, value) in &h {
        out.extend_from_slice(name.as_str().as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    Bytes::from(out)
}

/// Headers of a 200/206 (everything but the length and range).
fn representation(h: &mut HeaderMap, entry: &Entry, rep: &Rep, encoding: Option<Encoding>) {
    h.reserve(10);
    h.insert(CONTENT_TYPE, entry.content_type.clone());
    validators(h, entry, rep);
    h.insert(ACCEPT_RANGES, BYTES);
    match encoding {
        Some(Encoding::Brotli) => {
            h.insert(CONTENT_ENCODING, BR);
        }
        Some(Encoding::Gzip) => {
            h.insert(CONTENT_ENCODING, GZIP);
        }
        None => {}
    }
}

/// Headers a 304 must repeat from the 200 it stands for (RFC 9110 §15.4.5).
fn validators(h: &mut HeaderMap, entry: &Entry, rep: &Rep) {
    h.insert(ETAG, rep.etag.clone());
    if let Some(modified) = &entry.last_modified {
        h.insert(LAST_MODIFIED, modified.header.clone());
    }
    h.insert(CACHE_CONTROL, entry.cache_control.clone());
    if entry.has_variants() {
        h.insert(VARY, ACCEPT_ENCODING_VARY);
    }
    h.insert(X_CONTENT_TYPE_OPTIONS, NOSNIFF);
}

/// A short text response for errors. HEAD gets the headers and no body.
pub(crate) fn plain(status: StatusCode, text: &'static str, head: bool) -> Response<StaticBody> {
    let body = if head {
        StaticBody::empty()
    } else {
        StaticBody::from_bytes(Bytes::from_static(text.as_bytes()))
    };
    let mut response = Response::new(body);
    *response.status_mut() = status;
    let h = response.headers_mut();
    h.insert(CONTENT_TYPE, TEXT_PLAIN);
    h.insert(CONTENT_LENGTH, HeaderValue::from(text.len()));
    h.insert(X_CONTENT_TYPE_OPTIONS, NOSNIFF);
    response
}
