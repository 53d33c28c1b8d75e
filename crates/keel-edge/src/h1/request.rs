//! The rules a request head passes before any phase of the edge sees it, as nginx 1.22
//! applies them (`ngx_http_parse.c`, `ngx_http_request.c`) where RFC 9112 and RFC 9110
//! leave a choice.
//!
//! [`check`] takes one borrowed view of a head ([`View`]: method, target, version,
//! fields) — the fields as read off the wire on plain HTTP/1, or a request's parts when
//! hyper read it (TLS, HTTP/2) — and either refuses it with nginx's status
//! ([`Refusal`]) or says what every later phase needs ([`Checked`]): the host, the
//! normalised path that `limit_req` and routes match, and how the body is framed.
//!
//! | what | answer |
//! |---|---|
//! | method not upper-case letters, `_` or `-` | 400 |
//! | `CONNECT`, `TRACE` | 405 |
//! | target `*`, not starting with `/`, absolute-form without a host or with userinfo | 400 |
//! | HTTP/1.1 without `Host` (and no absolute-form host); two `Host`; an invalid `Host` | 400 |
//! | HTTP/2 `host` different from `:authority` | 400 |
//! | `Content-Length` with `Transfer-Encoding`; two `Content-Length`; not digits | 400 |
//! | `Transfer-Encoding` on HTTP/1.0, or twice | 400 |
//! | `Transfer-Encoding` other than exactly `chunked` | 501 |
//! | a bad `%` escape or `%00` in the path; `..` above `/` | 400 |
//! | request line over `max_line` (8 KiB) | 414 |
//! | a header line over `max_field` (8 KiB); the head over `max_head` (32 KiB) | 431 |
//!
//! # Differences from nginx
//! - A header line that is too long gets 431 (RFC 6585), where nginx says 400 "Request
//!   Header Or Cookie Too Large".
//! - The normalised path is used for matching only: the backend receives the target as
//!   sent (nginx's `proxy_pass` without a URI part does the same).

use std::borrow::Cow;

use axum::http::{StatusCode, Version};

use crate::headers::Field;

/// nginx's `large_client_header_buffers 4 8k`: a request line, or one header line, must
/// fit one 8 KiB buffer; the whole head, four.
pub(crate) const DEFAULT_MAX_LINE: usize = 8 * 1024;

/// Size limits of a request head.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Limits {
    /// The request line (method, target, version) at most: beyond it, 414.
    pub(crate) max_line: usize,
    /// One header line at most: beyond it, 431.
    pub(crate) max_field: usize,
    /// The whole head at most: beyond it, 431.
    pub(crate) max_head: usize,
}

/// Why a request head is refused, and with which status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Refusal {
    pub(crate) status: StatusCode,
    /// What was wrong, for the client (the answer's body) and the debug log.
    pub(crate) reason: &'static str,
}

impl Refusal {
    const fn bad(reason: &'static str) -> Refusal {
        Refusal {
            status: StatusCode::BAD_REQUEST,
            reason,
        }
    }
}

impl Limits {
    /// nginx's defaults, with the whole head at `max_head` bytes.
    #[cfg(test)]
    pub(crate) fn with_max_head(max_head: usize) -> Limits {
        Limits {
            max_line: DEFAULT_MAX_LINE,
            max_field: DEFAULT_MAX_LINE,
            max_head,
        }
    }
}

/// The refusal of a head httparse could not read: 505 for a version other than
/// HTTP/1.0 and HTTP/1.1, 431 for more fields than the parser holds, else 400.
pub(crate) fn syntax_error(error: httparse::Error) -> Refusal {
    match error {
        httparse::Error::Version => Refusal {
            status: StatusCode::HTTP_VERSION_NOT_SUPPORTED,
            reason: "only HTTP/1.0 and HTTP/1.1 are spoken here",
        },
        httparse::Error::TooManyHeaders => Refusal {
            status: StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            reason: "too many header fields",
        },
        httparse::Error::HeaderName => Refusal::bad("invalid header name"),
        httparse::Error::HeaderValue => Refusal::bad("invalid header value"),
        httparse::Error::NewLine => Refusal::bad("invalid line ending"),
        httparse::Error::Token | httparse::Error::Status => Refusal::bad("invalid request line"),
    }
}

const URI_TOO_LONG: Refusal = Refusal {
    status: StatusCode::URI_TOO_LONG,
    reason: "the request line is too long",
};
const FIELD_TOO_LONG: Refusal = Refusal {
    status: StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
    reason: "a header line is too long",
};
const HEAD_TOO_LARGE: Refusal = Refusal {
    status: StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
    reason: "the request head is too large",
};

/// The size refusal of a complete head (`head` is its bytes), if any.
pub(crate) fn too_large(
    head: &[u8],
    fields: &[httparse::Header<'_>],
    limits: Limits,
) -> Option<Refusal> {
    let line = head.iter().position(|b| *b == b'\n').unwrap_or(head.len());
    if line > limits.max_line {
        return Some(URI_TOO_LONG);
    }
    if fields
        .iter()
        .any(|f| f.name.len() + 2 + f.value.len() > limits.max_field)
    {
        return Some(FIELD_TOO_LONG);
    }
    (head.len() > limits.max_head).then_some(HEAD_TOO_LARGE)
}

/// The size refusal of a head still coming in, as soon as it is certain.
pub(crate) fn partial_too_large(buf: &[u8], limits: Limits) -> Option<Refusal> {
    // Blank lines before the request line are allowed (RFC 9112 §2.2).
    let start = buf
        .iter()
        .position(|b| *b != b'\r' && *b != b'\n')
        .unwrap_or(buf.len());
    let rest = &buf[start..];
    let line_end = rest.iter().position(|b| *b == b'\n');
    if line_end.unwrap_or(rest.len()) > limits.max_line {
        return Some(URI_TOO_LONG);
    }
    // Before anything else can wait for more: blank lines alone must not grow the buffer.
    if buf.len() > limits.max_head {
        return Some(HEAD_TOO_LARGE);
    }
    line_end?;
    let last_line = rest
        .iter()
        .rposition(|b| *b == b'\n')
        .map_or(rest.len(), |at| rest.len() - at - 1);
    (last_line > limits.max_field).then_some(FIELD_TOO_LONG)
}

/// A request's target, as its form says (RFC 9112 §3.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Target<'a> {
    /// `/path?query`.
    Origin(&'a str),
    /// `http://host[:port]/path?query`: the host, and the rest in origin-form (`/` when
    /// the target names no path).
    Absolute {
        authority: &'a str,
        path_and_query: &'a str,
    },
}

/// One borrowed view of a request head: what every phase of the edge reads.
#[derive(Debug, Clone)]
pub(crate) struct View<'a, I> {
    pub(crate) method: &'a str,
    /// The target as sent (HTTP/1) or as hyper holds it.
    pub(crate) target: &'a str,
    pub(crate) version: Version,
    /// For HTTP/2: the `:authority` pseudo-field.
    pub(crate) authority: Option<&'a str>,
    pub(crate) fields: I,
}

/// How a request's body is framed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Body {
    /// No body (no `Content-Length`, or `Content-Length: 0`).
    None,
    /// `Content-Length` bytes.
    Length(u64),
    /// Chunked coding.
    Chunked,
}

/// What the rules found in a head that passed them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Checked<'a> {
    /// The target's origin-form: the target itself, or an absolute-form target's path
    /// and query.
    pub(crate) origin: &'a str,
    /// The host to forward, when it is not the `Host` field as sent: an absolute-form
    /// target's host (RFC 9112 §3.2.2: the target wins), or HTTP/2's `:authority` when
    /// there is no `host` field.
    pub(crate) host_override: Option<&'a str>,
    /// The path as nginx matches locations: percent-decoded, `.` and `..` segments
    /// resolved, slashes merged; no query.
    pub(crate) path: Cow<'a, str>,
    pub(crate) body: Body,
    /// `Connection: close`, or HTTP/1.0 without `keep-alive`.
    pub(crate) close: bool,
    /// An `Expect` field, or an `Upgrade` one (or `Connection: upgrade`): what the fast
    /// path leaves to hyper.
    pub(crate) expect_or_upgrade: bool,
}

/// Applies the rules to `view`.
pub(crate) fn check<'a, I>(view: View<'a, I>) -> Result<Checked<'a>, Refusal>
where
    I: Iterator<Item = Field<'a>>,
{
    check_method(view.method)?;
    let target = parse_target(view.target)?;
    let http10 = view.version == Version::HTTP_10;
    let h2 = view.version == Version::HTTP_2 || view.version == Version::HTTP_3;

    let mut host: Option<&'a [u8]> = None;
    let mut length: Option<u64> = None;
    let mut chunked = false;
    let mut close = http10;
    let mut expect_or_upgrade = false;
    for (name, value) in view.fields {
        if name.eq_ignore_ascii_case(b"host") {
            if host.is_some() {
                return Err(Refusal::bad("more than one Host header"));
            }
            host = Some(value);
        } else if name.eq_ignore_ascii_case(b"content-length") {
            if length.is_some() {
                return Err(Refusal::bad("more than one Content-Length header"));
            }
            length = Some(content_length(value).ok_or(Refusal::bad("invalid Content-Length"))?);
        } else if name.eq_ignore_ascii_case(b"transfer-encoding") {
            if http10 {
                return Err(Refusal::bad("Transfer-Encoding in an HTTP/1.0 request"));
            }
            if chunked {
                return Err(Refusal::bad("more than one Transfer-Encoding header"));
            }
            if !value.trim_ascii().eq_ignore_ascii_case(b"chunked") {
                return Err(Refusal {
                    status: StatusCode::NOT_IMPLEMENTED,
                    reason: "only Transfer-Encoding: chunked is implemented",
                });
            }
            chunked = true;
        } else if name.eq_ignore_ascii_case(b"connection") {
            for token in crate::headers::tokens(value) {
                if token.eq_ignore_ascii_case(b"close") {
                    close = true;
                } else if token.eq_ignore_ascii_case(b"keep-alive") && http10 {
                    close = false;
                } else if token.eq_ignore_ascii_case(b"upgrade") {
                    expect_or_upgrade = true;
                }
            }
        } else if name.eq_ignore_ascii_case(b"expect") || name.eq_ignore_ascii_case(b"upgrade") {
            expect_or_upgrade = true;
        }
    }
    if chunked && length.is_some() {
        return Err(Refusal::bad(
            "Content-Length and Transfer-Encoding in one request",
        ));
    }
    if let Some(value) = host {
        valid_host(value).ok_or(Refusal::bad("invalid Host header"))?;
    }
    let (origin, target_host) = match target {
        Target::Origin(origin) => (origin, None),
        Target::Absolute {
            authority,
            path_and_query,
        } => (path_and_query, Some(authority)),
    };
    let host_override = if h2 {
        // HTTP/2 names its host in `:authority`; a `host` field must agree (RFC 9113
        // §8.3.1), and only stands in when there is no `:authority`.
        match (view.authority.filter(|a| !a.is_empty()), host) {
            (Some(authority), Some(host)) if !host.eq_ignore_ascii_case(authority.as_bytes()) => {
                return Err(Refusal::bad("the host header differs from :authority"));
            }
            (Some(authority), None) => {
                valid_host(authority.as_bytes()).ok_or(Refusal::bad("invalid :authority"))?;
                Some(authority)
            }
            (_, _) => None,
        }
    } else if let Some(authority) = target_host {
        valid_host(authority.as_bytes()).ok_or(Refusal::bad("invalid host in the target"))?;
        Some(authority)
    } else {
        if host.is_none() && !http10 {
            return Err(Refusal::bad("an HTTP/1.1 request without a Host header"));
        }
        None
    };
    match view.method {
        "CONNECT" | "TRACE" => {
            return Err(Refusal {
                status: StatusCode::METHOD_NOT_ALLOWED,
                reason: "this method is not allowed",
            })
        }
        _ => {}
    }
    let path = normalize_path(origin)?;
    Ok(Checked {
        origin,
        host_override,
        path,
        body: match (chunked, length) {
            (true, _) => Body::Chunked,
            (false, Some(0) | None) => Body::None,
            (false, Some(n)) => Body::Length(n),
        },
        close,
        expect_or_upgrade,
    })
}

/// nginx's method syntax: upper-case letters, `_` and `-` (a lower-case `get` is not
/// `GET`, and an extension method in lower case is refused rather than guessed at).
fn check_method(method: &str) -> Result<(), Refusal> {
    let ok = !method.is_empty()
        && method
            .bytes()
            .all(|b| b.is_ascii_uppercase() || b == b'_' || b == b'-');
    if ok {
        Ok(())
    } else {
        Err(Refusal::bad("invalid method"))
    }
}

/// The target's form: origin-form, or absolute-form with `http`/`https` and a host.
/// `*`, authority-form and anything else are refused.
pub(crate) fn parse_target(target: &str) -> Result<Target<'_>, Refusal> {
    if target.starts_with('/') {
        return Ok(Target::Origin(target));
    }
    let rest = if let Some(rest) = strip_prefix_ignore_case(target, "http://") {
        rest
    } else if let Some(rest) = strip_prefix_ignore_case(target, "https://") {
        rest
    } else {
        return Err(Refusal::bad("the target is not a path or an absolute URL"));
    };
    let end = rest.find(['/', '?']).unwrap_or(rest.len());
    let authority = &rest[..end];
    if authority.is_empty() {
        return Err(Refusal::bad("an absolute target without a host"));
    }
    if authority.contains('@') {
        return Err(Refusal::bad("an absolute target with userinfo"));
    }
    let path_and_query = &rest[end..];
    let path_and_query = if path_and_query.is_empty() {
        "/"
    } else if path_and_query.starts_with('?') {
        // `http://host?x` has an empty path: nginx refuses it too.
        return Err(Refusal::bad("an absolute target without a path"));
    } else {
        path_and_query
    };
    Ok(Target::Absolute {
        authority,
        path_and_query,
    })
}

fn strip_prefix_ignore_case<'a>(s: &'a str, prefix: &str) -> Option<&'a str> {
    let head = s.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix)
        .then(|| &s[prefix.len()..])
}

/// `Content-Length`: one or more digits and nothing else (no sign, no list, no spaces
/// inside), as nginx's `ngx_atoof`.
pub(crate) fn content_length(value: &[u8]) -> Option<u64> {
    let value = value.trim_ascii();
    if value.is_empty() || value.len() > 19 || !value.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(value).ok()?.parse().ok()
}

/// nginx's `ngx_http_validate_host`: not empty; no `/`, `\`, NUL, whitespace or control
/// bytes; no `..`; a bracketed IPv6 literal may hold `:`; one trailing dot is allowed.
pub(crate) fn valid_host(host: &[u8]) -> Option<()> {
    let host = host.trim_ascii();
    let mut prev_dot = false;
    let mut in_literal = false;
    let mut name_len = host.len();
    let mut in_port = false;
    for (i, &b) in host.iter().enumerate() {
        match b {
            b'.' => {
                if prev_dot || i == 0 {
                    return None;
                }
                prev_dot = true;
                continue;
            }
            b'[' if i == 0 => in_literal = true,
            b']' if in_literal => {
                in_literal = false;
                name_len = i + 1;
                in_port = true;
            }
            b':' if !in_literal && !in_port => {
                name_len = i;
                in_port = true;
            }
            b'/' | b'\\' | b'@' | b'?' | b'#' => return None,
            b if b <= 0x20 || b == 0x7f => return None,
            _ => {}
        }
        prev_dot = false;
    }
    if in_literal {
        return None;
    }
    let name = &host[..name_len];
    let name = name.strip_suffix(b".").unwrap_or(name);
    if name.is_empty() {
        return None;
    }
    if in_port {
        let port = &host[name_len..];
        let port = port.strip_prefix(b":").unwrap_or(port);
        if !port.iter().all(u8::is_ascii_digit) || port.len() > 5 {
            return None;
        }
    }
    Some(())
}

/// The path of an origin-form target as nginx matches it against its locations
/// (`ngx_http_parse_complex_uri` with `merge_slashes on`): the query cut off, every `%XX`
/// decoded (`%2F` too), `//` merged, `.` segments dropped, `..` segments climbing one up;
/// 400 for a bad escape, a decoded NUL, or a `..` above `/`. Borrowed when the path has
/// none of these.
pub(crate) fn normalize_path(origin: &str) -> Result<Cow<'_, str>, Refusal> {
    let path = &origin[..origin.find('?').unwrap_or(origin.len())];
    let plain = !path.contains('%')
        && !path.contains("//")
        && !path.contains("/.")
        && path.starts_with('/');
    if plain {
        return Ok(Cow::Borrowed(path));
    }
    // Decode first, then resolve segments: `%2e%2e` is `..`, and `%2f` a separator, to
    // nginx as to the WSGI backend behind it.
    let mut decoded = Vec::with_capacity(path.len());
    let bytes = path.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if b == b'%' {
            let hex = |b: Option<&u8>| b.and_then(|b| (*b as char).to_digit(16));
            let (Some(hi), Some(lo)) = (hex(bytes.get(i + 1)), hex(bytes.get(i + 2))) else {
                return Err(Refusal::bad("an invalid percent-escape in the path"));
            };
            let byte = u8::try_from(hi * 16 + lo).unwrap_or(0);
            if byte == 0 {
                return Err(Refusal::bad("a NUL byte in the path"));
            }
            decoded.push(byte);
            i += 3;
        } else {
            decoded.push(b);
            i += 1;
        }
    }
    let mut segments: Vec<&[u8]> = Vec::new();
    let ends_in_slash = decoded.ends_with(b"/")
        || decoded.ends_with(b"/.")
        || decoded.ends_with(b"/..")
        || decoded == b"."
        || decoded == b"..";
    for segment in decoded.split(|b| *b == b'/') {
        match segment {
            b"" | b"." => {}
            b".." => {
                if segments.pop().is_none() {
                    return Err(Refusal::bad("the path climbs above the root"));
                }
            }
            other => segments.push(other),
        }
    }
    let mut out = Vec::with_capacity(decoded.len() + 1);
    for segment in &segments {
        out.push(b'/');
        out.extend_from_slice(segment);
    }
    if out.is_empty() || (ends_in_slash && !segments.is_empty()) {
        out.push(b'/');
    }
    // Decoded bytes need not be UTF-8; locations are matched on ASCII prefixes, which a
    // lossy conversion keeps.
    Ok(Cow::Owned(String::from_utf8_lossy(&out).into_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head(
        method: &'static str,
        target: &'static str,
        fields: &'static [Field<'static>],
    ) -> View<'static, std::iter::Copied<std::slice::Iter<'static, Field<'static>>>> {
        View {
            method,
            target,
            version: Version::HTTP_11,
            authority: None,
            fields: fields.iter().copied(),
        }
    }

    fn status(
        view: View<'static, std::iter::Copied<std::slice::Iter<'static, Field<'static>>>>,
    ) -> u16 {
        match check(view) {
            Ok(_) => 200,
            Err(refusal) => refusal.status.as_u16(),
        }
    }

    const HOST: Field<'static> = (b"Host", b"example.com");

    #[test]
    fn framing_headers_follow_nginx() {
        assert_eq!(status(head("GET", "/", &[HOST])), 200);
        let cases: &[(&[Field<'static>], u16)] = &[
            (
                &[
                    HOST,
                    (b"Content-Length", b"5"),
                    (b"Transfer-Encoding", b"chunked"),
                ],
                400,
            ),
            (&[HOST, (b"Transfer-Encoding", b"gzip, chunked")], 501),
            (&[HOST, (b"Transfer-Encoding", b"chunked, chunked")], 501),
            (
                &[
                    HOST,
                    (b"Transfer-Encoding", b"chunked"),
                    (b"Transfer-Encoding", b"chunked"),
                ],
                400,
            ),
            (&[HOST, (b"Transfer-Encoding", b"chunked")], 200),
            (&[HOST, (b"Content-Length", b"+5")], 400),
            (&[HOST, (b"Content-Length", b"-1")], 400),
            (&[HOST, (b"Content-Length", b"1, 1")], 400),
            (
                &[HOST, (b"Content-Length", b"1"), (b"Content-Length", b"1")],
                400,
            ),
            (&[HOST, (b"Content-Length", b"12")], 200),
        ];
        for (fields, expected) in cases {
            assert_eq!(status(head("POST", "/", fields)), *expected, "{fields:?}");
        }
        let view = View {
            version: Version::HTTP_10,
            ..head("POST", "/", &[(b"Transfer-Encoding", b"chunked")])
        };
        assert_eq!(status(view), 400);
    }

    #[test]
    fn methods_and_targets_follow_nginx() {
        assert_eq!(status(head("get", "/", &[HOST])), 400);
        assert_eq!(status(head("CONNECT", "/", &[HOST])), 405);
        assert_eq!(status(head("TRACE", "/", &[HOST])), 405);
        assert_eq!(status(head("PROPFIND", "/", &[HOST])), 200);
        assert_eq!(status(head("OPTIONS", "*", &[HOST])), 400);
        assert_eq!(status(head("CONNECT", "example.com:443", &[HOST])), 400);
        assert_eq!(status(head("GET", "x", &[HOST])), 400);
        assert_eq!(status(head("GET", "http:///x", &[HOST])), 400);
        assert_eq!(status(head("GET", "http://u@example.com/x", &[HOST])), 400);
        assert_eq!(status(head("GET", "ftp://example.com/x", &[HOST])), 400);
        // Absolute-form: the target's host wins over the Host line, even without one.
        let checked = check(head(
            "GET",
            "http://Good.example:8080/x?y",
            &[(b"Host", b"evil")],
        ))
        .unwrap();
        assert_eq!(checked.host_override, Some("Good.example:8080"));
        assert_eq!(checked.origin, "/x?y");
        assert_eq!(checked.path, "/x");
        let checked = check(head("GET", "HTTP://a.example", &[])).unwrap();
        assert_eq!(
            (checked.host_override, checked.origin),
            (Some("a.example"), "/")
        );
    }

    #[test]
    fn host_follows_nginx() {
        assert_eq!(status(head("GET", "/", &[])), 400);
        let view = View {
            version: Version::HTTP_10,
            ..head("GET", "/", &[])
        };
        assert_eq!(status(view), 200);
        for bad in [
            &b""[..],
            b"a b",
            b"bad/host",
            b"a..b",
            b".a",
            b"a\\b",
            b"[::1",
            b"a:b",
            b"u@a",
        ] {
            let fields: &'static [Field<'static>] = Box::leak(Box::new([(&b"Host"[..], bad)]));
            assert_eq!(
                status(head("GET", "/", fields)),
                400,
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
        for good in [
            &b"example.com"[..],
            b"example.com.",
            b"EXAMPLE.com:8080",
            b"[::1]:80",
            b"10.0.0.1",
            b"a_b",
        ] {
            assert!(
                valid_host(good).is_some(),
                "{:?}",
                String::from_utf8_lossy(good)
            );
        }
        assert_eq!(status(head("GET", "/", &[HOST, HOST])), 400);
        // HTTP/2: a host field must agree with :authority.
        let h2 = |host: &'static [Field<'static>]| View {
            version: Version::HTTP_2,
            authority: Some("example.com"),
            ..head("GET", "/", host)
        };
        assert_eq!(status(h2(&[(b"host", b"other.example")])), 400);
        assert_eq!(status(h2(&[(b"host", b"EXAMPLE.com")])), 200);
        assert_eq!(check(h2(&[])).unwrap().host_override, Some("example.com"));
    }

    /// A head still coming in is refused as soon as it is over a limit, whatever it is
    /// made of: endless blank lines before the request line too.
    #[test]
    fn partial_heads_are_bounded() {
        let limits = Limits::with_max_head(1024);
        let status = |buf: &[u8]| partial_too_large(buf, limits).map(|r| r.status.as_u16());
        assert_eq!(status(&b"\r\n".repeat(600)), Some(431));
        assert_eq!(
            status(format!("GET /{}", "a".repeat(9000)).as_bytes()),
            Some(414)
        );
        assert_eq!(status(b"GET / HTTP/1.1\r\nHost: x\r\n"), None);
        let long_field = format!("GET / HTTP/1.1\r\nX: {}", "a".repeat(900));
        assert_eq!(
            partial_too_large(
                long_field.as_bytes(),
                Limits {
                    max_field: 512,
                    ..limits
                }
            )
            .map(|r| r.status.as_u16()),
            Some(431)
        );
    }

    #[test]
    fn paths_are_normalised_as_nginx_matches_locations() {
        let n = |p| {
            normalize_path(p)
                .map(Cow::into_owned)
                .map_err(|r| r.status.as_u16())
        };
        assert_eq!(n("/accounts/login/?next=/"), Ok("/accounts/login/".into()));
        assert_eq!(n("/accounts/%6cogin/"), Ok("/accounts/login/".into()));
        assert_eq!(n("/%61ccounts/login/"), Ok("/accounts/login/".into()));
        assert_eq!(n("/accounts/login%2f"), Ok("/accounts/login/".into()));
        assert_eq!(n("/anything/../admin/login"), Ok("/admin/login".into()));
        assert_eq!(n("//accounts///login/"), Ok("/accounts/login/".into()));
        assert_eq!(n("/a/./b/."), Ok("/a/b/".into()));
        assert_eq!(n("/a/b/.."), Ok("/a/".into()));
        assert_eq!(n("/a/%2e%2e/b"), Ok("/b".into()));
        assert_eq!(n("/.."), Err(400));
        assert_eq!(n("/a/../../b"), Err(400));
        assert_eq!(n("/a/%2e%2e/%2e%2e/b"), Err(400));
        assert_eq!(n("/a%zz"), Err(400));
        assert_eq!(n("/a%2"), Err(400));
        assert_eq!(n("/a%00b"), Err(400));
        assert_eq!(n("/.hidden/x"), Ok("/.hidden/x".into()));
    }
}
