//! HTTP/1.1 framing shared by the recording backend and the raw client: request heads,
//! response heads, and message bodies (length or chunked), parsed from a byte buffer that
//! may still be incomplete (`Ok(None)`: read more).

/// A parsed request head.
#[derive(Debug, Clone)]
pub struct RequestHead {
    pub method: String,
    pub target: String,
    /// The minor version: 0 for HTTP/1.0, 1 for HTTP/1.1.
    pub version: u8,
    pub headers: Vec<(String, String)>,
    /// Bytes of the head, request line to the empty line included.
    pub len: usize,
}

impl RequestHead {
    /// The values of every field named `name`, in order.
    pub fn values<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        values(&self.headers, name)
    }
}

/// How a message body is delimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    None,
    Length(usize),
    Chunked,
    /// To the end of the connection (responses only).
    UntilClose,
}

fn values<'a>(
    headers: &'a [(String, String)],
    name: &'a str,
) -> impl Iterator<Item = &'a str> + 'a {
    headers
        .iter()
        .filter(move |(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

fn owned_headers(headers: &[httparse::Header<'_>]) -> Vec<(String, String)> {
    headers
        .iter()
        .map(|h| {
            (
                h.name.to_owned(),
                String::from_utf8_lossy(h.value).into_owned(),
            )
        })
        .collect()
}

/// One request head from the start of `buf`.
pub fn parse_request(buf: &[u8]) -> Result<Option<RequestHead>, String> {
    let mut headers = vec![httparse::EMPTY_HEADER; 512];
    let mut request = httparse::Request::new(&mut headers);
    match request.parse(buf) {
        Ok(httparse::Status::Complete(len)) => Ok(Some(RequestHead {
            method: request.method.unwrap_or_default().to_owned(),
            target: request.path.unwrap_or_default().to_owned(),
            version: request.version.unwrap_or_default(),
            headers: owned_headers(request.headers),
            len,
        })),
        Ok(httparse::Status::Partial) => Ok(None),
        Err(e) => Err(format!("unparseable request head: {e}")),
    }
}

/// How a request's body is delimited (RFC 9112 §6.3; Transfer-Encoding wins over a
/// Content-Length, as a Python WSGI server does).
pub fn request_framing(head: &RequestHead) -> Result<Framing, String> {
    let codings: Vec<String> = head
        .values("transfer-encoding")
        .flat_map(|v| v.split(','))
        .map(|t| t.trim().to_ascii_lowercase())
        .collect();
    if !codings.is_empty() {
        return if codings.last().map(String::as_str) == Some("chunked") {
            Ok(Framing::Chunked)
        } else {
            Err(format!(
                "transfer-encoding {codings:?} does not end in chunked"
            ))
        };
    }
    content_length(&head.headers).map(|n| n.map_or(Framing::None, Framing::Length))
}

/// The one Content-Length of `headers`, if any; several different ones are an error.
fn content_length(headers: &[(String, String)]) -> Result<Option<usize>, String> {
    let mut length = None;
    for value in values(headers, "content-length").flat_map(|v| v.split(',')) {
        let value = value.trim();
        if value.is_empty() || !value.bytes().all(|b| b.is_ascii_digit()) {
            return Err(format!("bad content-length {value:?}"));
        }
        let n: usize = value
            .parse()
            .map_err(|_| format!("content-length {value} too large"))?;
        if length.is_some_and(|l| l != n) {
            return Err("two different content-lengths".to_owned());
        }
        length = Some(n);
    }
    Ok(length)
}

/// A body framed by `framing` at the start of `buf`: its bytes and how many bytes of
/// `buf` it took. With `eof`, the connection has ended (for `UntilClose`).
pub fn body(framing: Framing, buf: &[u8], eof: bool) -> Result<Option<(Vec<u8>, usize)>, String> {
    match framing {
        Framing::None => Ok(Some((Vec::new(), 0))),
        Framing::Length(n) => Ok((buf.len() >= n).then(|| (buf[..n].to_vec(), n))),
        Framing::UntilClose => Ok(eof.then(|| (buf.to_vec(), buf.len()))),
        Framing::Chunked => chunked(buf),
    }
}

fn line(buf: &[u8]) -> Option<(&[u8], usize)> {
    let end = buf.windows(2).position(|w| w == b"\r\n")?;
    Some((&buf[..end], end + 2))
}

/// A chunked body: sizes in hex, extensions after `;` ignored, trailers skipped.
fn chunked(buf: &[u8]) -> Result<Option<(Vec<u8>, usize)>, String> {
    let mut body = Vec::new();
    let mut at = 0;
    loop {
        let Some((size_line, used)) = line(&buf[at..]) else {
            return Ok(None);
        };
        let digits = size_line.split(|&b| b == b';').next().unwrap_or_default();
        if digits.is_empty() || digits.len() > 15 || !digits.iter().all(u8::is_ascii_hexdigit) {
            return Err(format!(
                "bad chunk size {:?}",
                String::from_utf8_lossy(size_line)
            ));
        }
        let size = usize::from_str_radix(&String::from_utf8_lossy(digits), 16)
            .map_err(|e| format!("bad chunk size: {e}"))?;
        at += used;
        if size == 0 {
            // Trailer fields up to the empty line.
            loop {
                let Some((trailer, used)) = line(&buf[at..]) else {
                    return Ok(None);
                };
                at += used;
                if trailer.is_empty() {
                    return Ok(Some((body, at)));
                }
            }
        }
        if buf.len() < at + size + 2 {
            return Ok(None);
        }
        body.extend_from_slice(&buf[at..at + size]);
        if &buf[at + size..at + size + 2] != b"\r\n" {
            return Err("chunk data not followed by CRLF".to_owned());
        }
        at += size + 2;
    }
}

/// A response read by the raw client.
#[derive(Debug, Clone)]
pub struct Response {
    pub status: u16,
    /// The head as received, up to the empty line.
    pub head: String,
    pub body: Vec<u8>,
}

/// What the start of a buffer holds.
#[derive(Debug)]
pub enum Parsed {
    /// A whole response and its length in bytes.
    Whole(Response, usize),
    /// The start of a response still arriving.
    Pending,
    /// Bytes that are no response (or nothing at all).
    Junk,
}

/// The response at the start of `buf`, answering a `HEAD` request when `head` (so it
/// carries no body); `eof`: the connection has ended.
pub fn parse_response(buf: &[u8], head: bool, eof: bool) -> Parsed {
    if buf.is_empty() {
        return Parsed::Junk;
    }
    let mut headers = [httparse::EMPTY_HEADER; 128];
    let mut response = httparse::Response::new(&mut headers);
    let head_len = match response.parse(buf) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) if !eof => return Parsed::Pending,
        Ok(httparse::Status::Partial) | Err(_) => return Parsed::Junk,
    };
    let status = response.code.unwrap_or_default();
    let fields = owned_headers(response.headers);
    let framing = if (100..200).contains(&status) || status == 204 || status == 304 || head {
        Framing::None
    } else if values(&fields, "transfer-encoding").any(|v| v.contains("chunked")) {
        Framing::Chunked
    } else {
        match content_length(&fields) {
            Ok(Some(n)) => Framing::Length(n),
            Ok(None) => Framing::UntilClose,
            Err(_) => return Parsed::Junk,
        }
    };
    match body(framing, &buf[head_len..], eof) {
        Ok(Some((body, used))) => Parsed::Whole(
            Response {
                status,
                head: String::from_utf8_lossy(&buf[..head_len]).into_owned(),
                body,
            },
            head_len + used,
        ),
        Ok(None) if !eof => Parsed::Pending,
        Ok(None) | Err(_) => Parsed::Junk,
    }
}

/// The responses at the start of `buf`, in order (see [`parse_response`]), how many
/// bytes they took, and whether the rest is a response still arriving.
pub fn parse_responses(buf: &[u8], head: bool, eof: bool) -> (Vec<Response>, usize, bool) {
    let mut responses = Vec::new();
    let mut at = 0;
    loop {
        match parse_response(&buf[at..], head, eof) {
            Parsed::Whole(response, used) => {
                responses.push(response);
                at += used;
            }
            Parsed::Pending => return (responses, at, true),
            Parsed::Junk => return (responses, at, false),
        }
    }
}

/// `bytes` as one line of printable ASCII: CR, LF, tab and other bytes escaped.
pub fn show(bytes: &[u8], max: usize) -> String {
    let mut out = String::new();
    for &b in bytes.iter().take(max) {
        match b {
            b'\r' => out.push_str("\\r"),
            b'\n' => out.push_str("\\n"),
            b'\t' => out.push_str("\\t"),
            b'\\' => out.push_str("\\\\"),
            0x20..=0x7e => out.push(char::from(b)),
            _ => out.push_str(&format!("\\x{b:02x}")),
        }
    }
    if bytes.len() > max {
        out.push_str(&format!("…(+{} bytes)", bytes.len() - max));
    }
    out
}
