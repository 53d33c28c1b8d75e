//! Who the client is: the socket peer, unless the peer is a trusted proxy.
//!
//! nginx's realip module (`set_real_ip_from` + `real_ip_header X-Forwarded-For` +
//! `real_ip_recursive on`): walk `X-Forwarded-For` from the right, skipping addresses that
//! are themselves trusted; the first untrusted one is the client. From an untrusted peer
//! the headers are ignored entirely, so a client cannot dodge the rate limit by sending
//! its own `X-Forwarded-For`.

use std::net::IpAddr;

use axum::http::HeaderMap;
use ipnet::IpNet;

/// The CIDRs whose forwarding headers are believed.
#[derive(Debug, Clone, Default)]
pub struct TrustedProxies(Vec<IpNet>);

impl TrustedProxies {
    /// Trust these networks.
    pub fn new(nets: Vec<IpNet>) -> Self {
        TrustedProxies(nets)
    }

    fn trusts(&self, ip: IpAddr) -> bool {
        let ip = canonical(ip);
        self.0.iter().any(|net| net.contains(&ip))
    }

    /// The client address for a request from `peer` with these headers.
    pub fn client_ip(&self, peer: IpAddr, headers: &HeaderMap) -> IpAddr {
        // The common case (no trusted proxies) needs no list of the fields.
        if !self.trusts(peer) {
            return canonical(peer);
        }
        let fields: Vec<crate::headers::Field<'_>> = headers
            .iter()
            .map(|(name, value)| (name.as_str().as_bytes(), value.as_bytes()))
            .collect();
        self.client_ip_of_fields(peer, fields.into_iter())
    }

    /// [`TrustedProxies::client_ip`] for the fields of a head as read off the wire.
    pub(crate) fn client_ip_of_fields<'a, I>(&self, peer: IpAddr, fields: I) -> IpAddr
    where
        I: Iterator<Item = crate::headers::Field<'a>> + Clone,
    {
        let peer = canonical(peer);
        if !self.trusts(peer) {
            return peer;
        }
        let mut client = peer;
        // Every X-Forwarded-For header line, in order, as one comma-separated list.
        let hops: Vec<IpAddr> = fields
            .clone()
            .filter(|(name, _)| name.eq_ignore_ascii_case(b"x-forwarded-for"))
            .filter_map(|(_, value)| std::str::from_utf8(value).ok())
            .flat_map(|v| v.split(','))
            .filter_map(|s| s.trim().parse::<IpAddr>().ok())
            .collect();
        if hops.is_empty() {
            if let Some(ip) = fields
                .clone()
                .find(|(name, _)| name.eq_ignore_ascii_case(b"x-real-ip"))
                .and_then(|(_, value)| std::str::from_utf8(value).ok())
                .and_then(|v| v.trim().parse::<IpAddr>().ok())
            {
                return canonical(ip);
            }
            return peer;
        }
        for hop in hops.into_iter().rev() {
            client = canonical(hop);
            if !self.trusts(client) {
                break;
            }
        }
        client
    }
}

/// `::ffff:1.2.3.4` and `1.2.3.4` are one client, as nginx's `$binary_remote_addr` sees it.
pub(crate) fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4),
        v4 => v4,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (k, v) in pairs {
            map.append(*k, v.parse().unwrap());
        }
        map
    }

    fn trusted() -> TrustedProxies {
        TrustedProxies::new(vec![
            "10.0.0.0/8".parse().unwrap(),
            "::1/128".parse().unwrap(),
        ])
    }

    #[test]
    fn untrusted_peer_headers_are_ignored() {
        let peer: IpAddr = "203.0.113.9".parse().unwrap();
        let h = headers(&[("x-forwarded-for", "1.2.3.4"), ("x-real-ip", "5.6.7.8")]);
        assert_eq!(trusted().client_ip(peer, &h), peer);
    }

    #[test]
    fn trusted_peer_gives_rightmost_untrusted_hop() {
        let peer: IpAddr = "10.0.0.2".parse().unwrap();
        // The client sent a forged first entry; the proxy appended the real one.
        let h = headers(&[("x-forwarded-for", "6.6.6.6, 198.51.100.7, 10.1.1.1")]);
        assert_eq!(
            trusted().client_ip(peer, &h),
            "198.51.100.7".parse::<IpAddr>().unwrap()
        );
    }

    #[test]
    fn several_header_lines_form_one_list_and_x_real_ip_is_the_fallback() {
        let peer: IpAddr = "10.0.0.2".parse().unwrap();
        let h = headers(&[
            ("x-forwarded-for", "198.51.100.1"),
            ("x-forwarded-for", "198.51.100.2"),
        ]);
        assert_eq!(
            trusted().client_ip(peer, &h),
            "198.51.100.2".parse::<IpAddr>().unwrap()
        );
        let h = headers(&[("x-real-ip", "198.51.100.3")]);
        assert_eq!(
            trusted().client_ip(peer, &h),
            "198.51.100.3".parse::<IpAddr>().unwrap()
        );
        let h = headers(&[("x-forwarded-for", "garbage")]);
        assert_eq!(trusted().client_ip(peer, &h), peer);
    }

    #[test]
    fn v4_mapped_v6_is_the_v4_client() {
        let peer: IpAddr = "::ffff:192.0.2.1".parse().unwrap();
        assert_eq!(
            TrustedProxies::default().client_ip(peer, &HeaderMap::new()),
            "192.0.2.1".parse::<IpAddr>().unwrap()
        );
    }
}
