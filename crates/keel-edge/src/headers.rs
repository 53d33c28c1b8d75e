//! Request and response header rewriting, as the classic nginx config does it:
//! `proxy_set_header Host $host; X-Real-IP $remote_addr; X-Forwarded-For
//! $proxy_add_x_forwarded_for; X-Forwarded-Proto $scheme`, and hop-by-hop headers
//! (RFC 9110 §7.6.1) dropped in both directions.
//!
//! Two forms of the same rules: on a `HeaderMap` (requests with a body, the in-process
//! app) and on the wire fields of a request head ([`upstream_head`], for bodiless
//! requests to upstream peers, which never need a map). A test holds them equal.

use std::io::Write as _;
use std::net::IpAddr;

use axum::http::header::{self, HeaderMap, HeaderName, HeaderValue};

/// Headers meaningful only for one connection; never forwarded.
const HOP_BY_HOP: [HeaderName; 7] = [
    header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    HeaderName::from_static("proxy-connection"),
    header::TE,
    header::TRAILER,
    header::TRANSFER_ENCODING,
    header::UPGRADE,
];

/// Removes hop-by-hop headers, including any that `Connection` names (but never `Host`),
/// and the fields nginx ignores ([`nginx_valid_name`]).
pub(crate) fn remove_hop_by_hop(headers: &mut HeaderMap) {
    let named: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|name| HeaderName::from_bytes(name.trim().as_bytes()).ok())
        .filter(|name| *name != header::HOST)
        .chain(
            headers
                .keys()
                .filter(|name| !nginx_valid_name(name.as_str().as_bytes()))
                .cloned(),
        )
        .collect();
    for name in named.iter().chain(HOP_BY_HOP.iter()) {
        headers.remove(name);
    }
}

/// nginx's `ignore_invalid_headers on` (its default): a field whose name has anything
/// but letters, digits and `-` is dropped, not forwarded. Above all `_`: a WSGI server
/// maps `X_Forwarded_For` and `X-Forwarded-For` to the same `HTTP_X_FORWARDED_FOR`, so an
/// underscore spelling would slip past the forwarding fields the edge sets.
pub(crate) fn nginx_valid_name(name: &[u8]) -> bool {
    name.iter().all(|b| b.is_ascii_alphanumeric() || *b == b'-')
}

/// Sets `X-Real-IP`, appends the peer to `X-Forwarded-For`, sets `X-Forwarded-Proto`.
/// `Host` is left as the client sent it.
pub(crate) fn set_forwarded(headers: &mut HeaderMap, client: IpAddr, peer: IpAddr, proto: &str) {
    headers.insert("x-real-ip", ip_value(client));
    // nginx's $proxy_add_x_forwarded_for: the incoming list (all lines joined), then the
    // immediate peer.
    let mut forwarded = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect::<Vec<_>>()
        .join(", ");
    if !forwarded.is_empty() {
        forwarded.push_str(", ");
    }
    forwarded.push_str(&peer.to_string());
    match HeaderValue::from_str(&forwarded) {
        Ok(value) => {
            headers.insert("x-forwarded-for", value);
        }
        Err(_) => {
            headers.insert("x-forwarded-for", ip_value(peer));
        }
    }
    headers.insert(
        "x-forwarded-proto",
        HeaderValue::from_static(match proto {
            "https" => "https",
            _ => "http",
        }),
    );
}

/// A header field as read off the wire: name and value.
pub(crate) type Field<'a> = (&'a [u8], &'a [u8]);

/// Whether a `HeaderValue` would take `value` (visible ASCII, tabs and obs-text), so a
/// head that never becomes a `HeaderMap` is held to the same rule.
pub(crate) fn valid_value(value: &[u8]) -> bool {
    value
        .iter()
        .all(|&b| b == b'\t' || (b >= 0x20 && b != 0x7f))
}

/// Whether `name` is one of [`HOP_BY_HOP`]. Asked of every field of every proxied head,
/// so the length picks the one or two names to compare.
pub(crate) fn is_hop_by_hop(name: &[u8]) -> bool {
    let same = |hop: &[u8]| name.eq_ignore_ascii_case(hop);
    match name.len() {
        2 => same(b"te"),
        7 => same(b"trailer") || same(b"upgrade"),
        10 => same(b"connection") || same(b"keep-alive"),
        16 => same(b"proxy-connection"),
        17 => same(b"transfer-encoding"),
        _ => false,
    }
}

/// Writes `ip` as its `Display` does. An IPv4 address is written by hand: the formatting
/// machinery cost as much as the rest of a proxied head.
pub(crate) fn push_ip(out: &mut Vec<u8>, ip: IpAddr) {
    match ip {
        IpAddr::V4(v4) => {
            for (i, octet) in v4.octets().into_iter().enumerate() {
                if i > 0 {
                    out.push(b'.');
                }
                if octet >= 100 {
                    out.push(b'0' + octet / 100);
                }
                if octet >= 10 {
                    out.push(b'0' + octet / 10 % 10);
                }
                out.push(b'0' + octet % 10);
            }
        }
        IpAddr::V6(_) => {
            // Infallible: writing to a Vec.
            let _ = write!(out, "{ip}");
        }
    }
}

/// The items of a comma-separated field value (`Connection: close, X-Private`), trimmed.
pub(crate) fn tokens(value: &[u8]) -> impl Iterator<Item = &[u8]> {
    value.split(|b| *b == b',').map(<[u8]>::trim_ascii)
}

/// Whether a `Connection` field among `fields` names `name` (so it is hop-by-hop too).
/// `Host` is never dropped that way: it is end-to-end, and a `Connection: host` would
/// otherwise let a client take the site's name out of what the application sees.
pub(crate) fn named_by_connection<'a>(
    fields: impl Iterator<Item = Field<'a>>,
    name: &[u8],
) -> bool {
    if name.eq_ignore_ascii_case(b"host") {
        return false;
    }
    fields
        .filter(|(n, _)| n.eq_ignore_ascii_case(b"connection"))
        .flat_map(|(_, v)| tokens(v))
        .any(|token| token.eq_ignore_ascii_case(name))
}

/// A request head for an upstream peer, from the client's fields: what
/// [`remove_hop_by_hop`] and [`set_forwarded`] make of a `HeaderMap`, written as an
/// HTTP/1.1 head in one pass over the fields as they were read. Names are written in lower
/// case, as a `HeaderMap` holds them. A request without `Host` (HTTP/1.0) is forwarded
/// without one, as nginx's `proxy_set_header Host $host` does: the peer's own address is
/// no name of the site, and applications build links from it.
#[derive(Debug, Clone)]
pub(crate) struct UpstreamHead {
    bytes: Vec<u8>,
}

impl UpstreamHead {
    /// The head as it goes to any peer.
    pub(crate) fn bytes(&self) -> &[u8] {
        &self.bytes
    }
}

/// Builds the [`UpstreamHead`] of a bodiless request: request line (HTTP/1.1, the
/// origin-form `target`), the client's fields less hop-by-hop ones and the forwarding
/// ones this edge sets, then `X-Real-IP`, `X-Forwarded-For` (the incoming list, then the
/// peer) and `X-Forwarded-Proto`.
pub(crate) fn upstream_head<'a, I>(
    method: &str,
    target: &str,
    fields: I,
    client: IpAddr,
    peer: IpAddr,
    proto: &str,
) -> UpstreamHead
where
    I: Iterator<Item = Field<'a>> + Clone,
{
    let mut bytes = Vec::with_capacity(256);
    bytes.extend_from_slice(method.as_bytes());
    bytes.push(b' ');
    bytes.extend_from_slice(target.as_bytes());
    bytes.extend_from_slice(b" HTTP/1.1\r\n");
    let has_connection = fields
        .clone()
        .any(|(n, _)| n.eq_ignore_ascii_case(b"connection"));
    let mut forwarded: Vec<&[u8]> = Vec::new();
    for (name, value) in fields.clone() {
        if is_hop_by_hop(name)
            || !nginx_valid_name(name)
            || (has_connection && named_by_connection(fields.clone(), name))
        {
            continue;
        }
        if name.eq_ignore_ascii_case(b"x-forwarded-for") {
            // As `to_str` on a map: a value that is not visible ASCII is left out.
            if value
                .iter()
                .all(|b| (0x20..0x7f).contains(b) || *b == b'\t')
            {
                forwarded.push(value);
            }
            continue;
        }
        if name.eq_ignore_ascii_case(b"x-real-ip")
            || name.eq_ignore_ascii_case(b"x-forwarded-proto")
        {
            continue;
        }
        bytes.extend(name.iter().map(u8::to_ascii_lowercase));
        bytes.extend_from_slice(b": ");
        bytes.extend_from_slice(value);
        bytes.extend_from_slice(b"\r\n");
    }
    bytes.extend_from_slice(b"x-real-ip: ");
    push_ip(&mut bytes, client);
    bytes.extend_from_slice(b"\r\nx-forwarded-for: ");
    for value in forwarded {
        bytes.extend_from_slice(value);
        bytes.extend_from_slice(b", ");
    }
    push_ip(&mut bytes, peer);
    bytes.extend_from_slice(b"\r\n");
    bytes.extend_from_slice(match proto {
        "https" => b"x-forwarded-proto: https\r\n",
        _ => b"x-forwarded-proto: http\r\n",
    });
    bytes.extend_from_slice(b"\r\n");
    UpstreamHead { bytes }
}

fn ip_value(ip: IpAddr) -> HeaderValue {
    HeaderValue::from_str(&ip.to_string()).unwrap_or(HeaderValue::from_static("unknown"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hop_by_hop_and_connection_named_headers_go() {
        let mut h = HeaderMap::new();
        h.insert("connection", "keep-alive, x-secret".parse().unwrap());
        h.insert("keep-alive", "timeout=5".parse().unwrap());
        h.insert("x-secret", "1".parse().unwrap());
        h.insert("transfer-encoding", "chunked".parse().unwrap());
        h.insert("x-kept", "1".parse().unwrap());
        remove_hop_by_hop(&mut h);
        assert_eq!(h.len(), 1, "{h:?}");
        assert!(h.contains_key("x-kept"));
    }

    /// The fields of a head, lower-cased and sorted: what an upstream can tell apart.
    fn fields_of(head: &[u8]) -> (String, Vec<(String, String)>) {
        let text = String::from_utf8(head.to_vec()).unwrap();
        assert!(text.ends_with("\r\n\r\n"), "{text:?}");
        let mut lines = text.trim_end().split("\r\n");
        let request_line = lines.next().unwrap().to_owned();
        let mut fields: Vec<(String, String)> = lines
            .map(|line| {
                let (name, value) = line.split_once(": ").unwrap();
                (name.to_ascii_lowercase(), value.to_owned())
            })
            .collect();
        // Only the order within one name carries meaning.
        fields.sort_by(|a, b| a.0.cmp(&b.0));
        (request_line, fields)
    }

    /// The wire form of the rewrite ([`upstream_head`]) sends what the map form sends:
    /// [`remove_hop_by_hop`] and [`set_forwarded`] on a `HeaderMap`, then the head as
    /// written from that map.
    #[test]
    fn the_wire_form_and_the_map_form_forward_the_same_fields() {
        let cases: &[&[(&str, &str)]] = &[
            &[("Host", "example.com")],
            &[],
            &[
                ("host", "a"),
                ("Connection", "keep-alive"),
                ("Keep-Alive", "timeout=5"),
            ],
            &[
                ("Host", "a"),
                ("Connection", "close, X-Secret"),
                ("x-secret", "1"),
                ("X-Kept", "2"),
            ],
            &[
                ("Host", "a"),
                ("X-Forwarded-For", "1.1.1.1"),
                ("x-forwarded-for", "2.2.2.2, 3.3.3.3"),
            ],
            &[
                ("Host", "a"),
                ("X-Real-IP", "forged"),
                ("X-Forwarded-Proto", "https"),
            ],
            &[
                ("Host", "a"),
                ("TE", "trailers"),
                ("Upgrade", "h2c"),
                ("Proxy-Connection", "x"),
            ],
            &[
                ("Host", "a"),
                ("Accept", "text/html"),
                ("accept", "*/*"),
                ("Cookie", "a=1; b=2"),
            ],
            &[("Connection", "host"), ("Host", "dropped")],
            &[
                ("Connection", "x-forwarded-for"),
                ("X-Forwarded-For", "9.9.9.9"),
            ],
            &[
                ("X-Forwarded-For", "caf\u{e9}"),
                ("X-Forwarded-For", "4.4.4.4"),
            ],
        ];
        let client: IpAddr = "203.0.113.9".parse().unwrap();
        let peer: IpAddr = "192.0.2.5".parse().unwrap();
        for fields in cases {
            for proto in ["http", "https"] {
                let wire = upstream_head(
                    "GET",
                    "/a?b=1",
                    fields.iter().map(|(n, v)| (n.as_bytes(), v.as_bytes())),
                    client,
                    peer,
                    proto,
                );
                let mut map = HeaderMap::new();
                for (name, value) in fields.iter() {
                    map.append(
                        HeaderName::from_bytes(name.as_bytes()).unwrap(),
                        HeaderValue::from_bytes(value.as_bytes()).unwrap(),
                    );
                }
                remove_hop_by_hop(&mut map);
                set_forwarded(&mut map, client, peer, proto);
                let mut expected = b"GET /a?b=1 HTTP/1.1\r\n".to_vec();
                for (name, value) in &map {
                    expected.extend_from_slice(name.as_str().as_bytes());
                    expected.extend_from_slice(b": ");
                    expected.extend_from_slice(value.as_bytes());
                    expected.extend_from_slice(b"\r\n");
                }
                expected.extend_from_slice(b"\r\n");
                assert_eq!(
                    fields_of(wire.bytes()),
                    fields_of(&expected),
                    "{fields:?} over {proto}"
                );
            }
        }
    }

    #[test]
    fn addresses_are_written_as_display_writes_them() {
        for ip in [
            "0.0.0.0",
            "127.0.0.1",
            "10.20.30.40",
            "192.168.100.255",
            "255.255.255.255",
            "9.99.100.109",
            "::1",
            "2001:db8::5",
        ] {
            let ip: IpAddr = ip.parse().unwrap();
            let mut out = Vec::new();
            push_ip(&mut out, ip);
            assert_eq!(out, ip.to_string().as_bytes());
        }
        for name in HOP_BY_HOP.iter() {
            assert!(is_hop_by_hop(name.as_str().as_bytes()));
            assert!(is_hop_by_hop(name.as_str().to_uppercase().as_bytes()));
        }
        for name in ["host", "te2", "x-upgrade", "connectionx", "content-length"] {
            assert!(!is_hop_by_hop(name.as_bytes()), "{name}");
        }
    }

    #[test]
    fn forwarded_headers_append_and_set() {
        let mut h = HeaderMap::new();
        h.append("x-forwarded-for", "1.1.1.1".parse().unwrap());
        h.append("x-forwarded-for", "2.2.2.2".parse().unwrap());
        h.insert("x-real-ip", "forged".parse().unwrap());
        let peer: IpAddr = "192.0.2.5".parse().unwrap();
        set_forwarded(&mut h, peer, peer, "http");
        assert_eq!(h["x-forwarded-for"], "1.1.1.1, 2.2.2.2, 192.0.2.5");
        assert_eq!(h["x-real-ip"], "192.0.2.5");
        assert_eq!(h["x-forwarded-proto"], "http");
    }
}
