//! Who the client is: its address and whether it came over HTTPS, worked out once per
//! request from the socket peer and, only when that peer is trusted, the forwarding
//! headers a proxy in front set.
//!
//! The edge (nginx's `set_real_ip_from` + `real_ip_header X-Forwarded-For` +
//! `real_ip_recursive on`) and the app server (gunicorn's `forwarded_allow_ips`) both
//! answer this question; they share this crate so the two can never disagree about who a
//! client is, and no other code reads `X-Forwarded-For`, `X-Real-IP` or
//! `X-Forwarded-Proto`.
//!
//! The rule, from a trusted peer: walk `X-Forwarded-For` (every header line, in order, as
//! one list) from the right, skipping addresses that are themselves trusted; the first
//! untrusted one is the client. An entry that is not an address ends the walk and the
//! client is the peer, as nginx declines then. Without `X-Forwarded-For`, `X-Real-IP` is
//! believed. From an untrusted peer every forwarding header is ignored, so a client can
//! neither dodge a per-address limit nor charge another address by forging them.

use std::net::IpAddr;

use ipnet::IpNet;

/// One header field as read off the wire or out of a header map: `(name, value)`.
pub type Field<'a> = (&'a [u8], &'a [u8]);

/// The peers whose forwarding headers are believed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Trusted {
    /// These networks (a bare address is a /32 or /128). Empty: nobody.
    #[default]
    None,
    /// Networks in CIDR notation.
    Nets(Vec<IpNet>),
    /// Every peer: gunicorn's `forwarded_allow_ips = "*"`. Only safe when nothing but the
    /// proxy can reach the server, since any client can then claim any address.
    Any,
}

impl Trusted {
    /// Trust these networks (none when empty).
    pub fn nets(nets: Vec<IpNet>) -> Self {
        if nets.is_empty() {
            Trusted::None
        } else {
            Trusted::Nets(nets)
        }
    }

    /// gunicorn's default: this machine only (`127.0.0.1,::1`).
    pub fn loopback() -> Self {
        Trusted::Nets(vec![
            IpNet::from(IpAddr::from([127, 0, 0, 1])),
            IpNet::from(IpAddr::from([0u16, 0, 0, 0, 0, 0, 0, 1])),
        ])
    }

    /// Whether `ip` is a trusted proxy.
    pub fn trusts(&self, ip: IpAddr) -> bool {
        match self {
            Trusted::None => false,
            Trusted::Any => true,
            Trusted::Nets(nets) => {
                let ip = canonical(ip);
                nets.iter().any(|net| net.contains(&ip))
            }
        }
    }

    /// The client address of a request from `peer`; `values(name)` gives the values of
    /// the header `name` (asked in lowercase) in the order they came.
    pub fn client_ip<'a, F, I>(&self, peer: IpAddr, values: F) -> IpAddr
    where
        F: Fn(&'static str) -> I,
        I: Iterator<Item = &'a [u8]>,
    {
        let peer = canonical(peer);
        if !self.trusts(peer) {
            return peer;
        }
        let mut forwarded_for = values("x-forwarded-for").peekable();
        if forwarded_for.peek().is_none() {
            return values("x-real-ip")
                .next()
                .and_then(parse_ip)
                .unwrap_or(peer);
        }
        // All lines as one list, walked from the right.
        let hops: Vec<&[u8]> = forwarded_for
            .flat_map(|value| value.split(|&b| b == b','))
            .map(<[u8]>::trim_ascii)
            .filter(|hop| !hop.is_empty())
            .collect();
        let mut client = peer;
        for hop in hops.into_iter().rev() {
            let Some(ip) = parse_ip(hop) else {
                return peer;
            };
            client = ip;
            if !self.trusts(ip) {
                break;
            }
        }
        client
    }

    /// The whole answer for a request: its client address, and whether it came over
    /// HTTPS (`tls` for this hop; `X-Forwarded-Proto: https` from a trusted peer).
    pub fn client<'a, F, I>(&self, peer: IpAddr, tls: bool, values: F) -> Client
    where
        F: Fn(&'static str) -> I,
        I: Iterator<Item = &'a [u8]>,
    {
        let https = tls
            || (self.trusts(peer)
                && values("x-forwarded-proto")
                    .next()
                    .is_some_and(|value| value.trim_ascii().eq_ignore_ascii_case(b"https")));
        Client {
            ip: self.client_ip(peer, values),
            https,
        }
    }
}

/// Header values by name out of a list of fields as read off the wire (names compared
/// without regard to case), for [`Trusted::client_ip`].
pub fn wire_values<'a, I>(fields: I) -> impl Fn(&'static str) -> WireValues<'a, I>
where
    I: Iterator<Item = Field<'a>> + Clone,
{
    move |name| WireValues {
        fields: fields.clone(),
        name,
    }
}

/// The values of one header among wire fields; see [`wire_values`].
#[derive(Debug, Clone)]
pub struct WireValues<'a, I: Iterator<Item = Field<'a>>> {
    fields: I,
    name: &'static str,
}

impl<'a, I: Iterator<Item = Field<'a>>> Iterator for WireValues<'a, I> {
    type Item = &'a [u8];

    fn next(&mut self) -> Option<&'a [u8]> {
        let name = self.name.as_bytes();
        self.fields
            .by_ref()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, value)| value)
    }
}

/// Who the client of one request is. Servers put it in the request's extensions once;
/// every part that needs the client (limits, sessions, streams, logs) reads it from there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Client {
    /// The client's address, IPv4-mapped IPv6 shown as IPv4.
    pub ip: IpAddr,
    /// Whether the client's own connection was HTTPS.
    pub https: bool,
}

/// `::ffff:1.2.3.4` and `1.2.3.4` are one client, as nginx's `$binary_remote_addr` sees it.
pub fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4),
        v4 => v4,
    }
}

fn parse_ip(value: &[u8]) -> Option<IpAddr> {
    std::str::from_utf8(value.trim_ascii())
        .ok()?
        .parse::<IpAddr>()
        .ok()
        .map(canonical)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn trusted() -> Trusted {
        Trusted::nets(vec![
            "10.0.0.0/8".parse().unwrap(),
            "::1/128".parse().unwrap(),
        ])
    }

    type Pairs<'a> = std::iter::Map<
        std::slice::Iter<'a, (&'a str, &'a str)>,
        fn(&'a (&'a str, &'a str)) -> Field<'a>,
    >;

    fn fields<'a>(
        pairs: &'a [(&'a str, &'a str)],
    ) -> impl Fn(&'static str) -> WireValues<'a, Pairs<'a>> {
        let as_field: fn(&'a (&'a str, &'a str)) -> Field<'a> =
            |(n, v)| (n.as_bytes(), v.as_bytes());
        wire_values(pairs.iter().map(as_field))
    }

    #[test]
    fn untrusted_peer_headers_are_ignored() {
        let h = [
            ("x-forwarded-for", "1.2.3.4"),
            ("x-real-ip", "5.6.7.8"),
            ("x-forwarded-proto", "https"),
        ];
        let client = trusted().client(ip("203.0.113.9"), false, fields(&h));
        assert_eq!(
            client,
            Client {
                ip: ip("203.0.113.9"),
                https: false
            }
        );
        assert_eq!(
            Trusted::None.client_ip(ip("10.0.0.2"), fields(&h)),
            ip("10.0.0.2")
        );
    }

    #[test]
    fn trusted_peer_gives_rightmost_untrusted_hop() {
        // The client forged the first entry; the proxy appended the real one.
        let h = [("x-forwarded-for", "6.6.6.6, 198.51.100.7, 10.1.1.1")];
        assert_eq!(
            trusted().client_ip(ip("10.0.0.2"), fields(&h)),
            ip("198.51.100.7")
        );
    }

    #[test]
    fn lines_form_one_list_and_x_real_ip_is_the_fallback() {
        let peer = ip("10.0.0.2");
        let h = [
            ("X-Forwarded-For", "198.51.100.1"),
            ("x-forwarded-for", "198.51.100.2"),
            ("x-real-ip", "198.51.100.9"),
        ];
        assert_eq!(trusted().client_ip(peer, fields(&h)), ip("198.51.100.2"));
        let h = [("x-real-ip", " 198.51.100.3 ")];
        assert_eq!(trusted().client_ip(peer, fields(&h)), ip("198.51.100.3"));
        let h = [("x-real-ip", "forged")];
        assert_eq!(trusted().client_ip(peer, fields(&h)), peer);
    }

    #[test]
    fn a_bad_hop_on_the_walk_leaves_the_peer() {
        let peer = ip("10.0.0.2");
        let h = [("x-forwarded-for", "198.51.100.1, garbage")];
        assert_eq!(trusted().client_ip(peer, fields(&h)), peer);
        // A bad entry left of the client is never reached.
        let h = [("x-forwarded-for", "garbage, 198.51.100.1")];
        assert_eq!(trusted().client_ip(peer, fields(&h)), ip("198.51.100.1"));
    }

    #[test]
    fn all_trusted_hops_give_the_leftmost_and_any_trusts_everyone() {
        let h = [("x-forwarded-for", "10.9.9.9, 10.1.1.1")];
        assert_eq!(
            trusted().client_ip(ip("10.0.0.2"), fields(&h)),
            ip("10.9.9.9")
        );
        let h = [("x-forwarded-for", "198.51.100.5")];
        assert_eq!(
            Trusted::Any.client_ip(ip("203.0.113.1"), fields(&h)),
            ip("198.51.100.5")
        );
    }

    #[test]
    fn forwarded_proto_from_a_trusted_peer_only() {
        let h = [("x-forwarded-proto", "HTTPS")];
        assert!(trusted().client(ip("10.0.0.2"), false, fields(&h)).https);
        assert!(!trusted().client(ip("192.0.2.1"), false, fields(&h)).https);
        assert!(trusted().client(ip("192.0.2.1"), true, fields(&[])).https);
    }

    #[test]
    fn v4_mapped_v6_is_the_v4_client_and_loopback_is_trusted() {
        let peer = ip("::ffff:192.0.2.1");
        assert_eq!(Trusted::None.client_ip(peer, fields(&[])), ip("192.0.2.1"));
        let h = [("x-real-ip", "192.0.2.7")];
        assert_eq!(
            Trusted::loopback().client_ip(ip("::ffff:127.0.0.1"), fields(&h)),
            ip("192.0.2.7")
        );
        assert_eq!(
            Trusted::loopback().client_ip(ip("::1"), fields(&h)),
            ip("192.0.2.7")
        );
    }
}
