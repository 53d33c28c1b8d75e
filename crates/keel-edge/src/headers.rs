//! Request and response header rewriting, as the classic nginx config does it:
//! `proxy_set_header Host $host; X-Real-IP $remote_addr; X-Forwarded-For
//! $proxy_add_x_forwarded_for; X-Forwarded-Proto $scheme`, and hop-by-hop headers
//! (RFC 9110 §7.6.1) dropped in both directions.

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

/// Removes hop-by-hop headers, including any that `Connection` names.
pub(crate) fn remove_hop_by_hop(headers: &mut HeaderMap) {
    let named: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|name| HeaderName::from_bytes(name.trim().as_bytes()).ok())
        .collect();
    for name in named.iter().chain(HOP_BY_HOP.iter()) {
        headers.remove(name);
    }
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
