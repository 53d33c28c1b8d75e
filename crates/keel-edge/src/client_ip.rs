//! Who the client is: the socket peer, unless the peer is a trusted proxy.
//!
//! nginx's realip module (`set_real_ip_from` + `real_ip_header X-Forwarded-For` +
//! `real_ip_recursive on`): walk `X-Forwarded-For` from the right, skipping addresses that
//! are themselves trusted; the first untrusted one is the client. From an untrusted peer
//! the headers are ignored entirely, so a client cannot dodge the rate limit by sending
//! its own `X-Forwarded-For`. The rule itself lives in `keel-client`, shared with
//! `keel serve`'s `forwarded_allow_ips`, so the edge and the app server never disagree.

use std::net::IpAddr;

use axum::http::HeaderMap;
use ipnet::IpNet;

/// The CIDRs whose forwarding headers are believed.
#[derive(Debug, Clone, Default)]
pub struct TrustedProxies(keel_client::Trusted);

impl TrustedProxies {
    /// Trust these networks.
    pub fn new(nets: Vec<IpNet>) -> Self {
        TrustedProxies(keel_client::Trusted::nets(nets))
    }

    /// The client address for a request from `peer` with these headers.
    pub fn client_ip(&self, peer: IpAddr, headers: &HeaderMap) -> IpAddr {
        self.0.client_ip(peer, |name| {
            headers.get_all(name).into_iter().map(|v| v.as_bytes())
        })
    }

    /// [`TrustedProxies::client_ip`] for the fields of a head as read off the wire.
    pub(crate) fn client_ip_of_fields<'a, I>(&self, peer: IpAddr, fields: I) -> IpAddr
    where
        I: Iterator<Item = crate::headers::Field<'a>> + Clone,
    {
        self.0.client_ip(peer, keel_client::wire_values(fields))
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
