//! Who the client is, for rate limits and the playback token's address bound. The TCP peer, unless the peer is one of
//! `trusted_proxies`: then the forwarding header its proxies wrote is read from the right
//! (each proxy appends the address it received from), trusted hops are skipped, and the
//! first untrusted address is the client. Anything left of that was written by the client
//! and is never read. Where the header cannot be read (malformed, no address, or both
//! `X-Forwarded-For` and `Forwarded` present, so there is no telling which one the proxy
//! wrote) the peer is the client: the proxy's own address, one budget for all such requests.
//!
//! The key a budget counts is the address, IPv4-mapped IPv6 as IPv4 and other IPv6 by its
//! /64 (one subscriber's prefix: a host picks any address in it at will).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::atomic::{AtomicBool, Ordering};

use actix_web::http::header::{HeaderMap, HeaderValue, FORWARDED, X_FORWARDED_FOR};
use actix_web::HttpRequest;
use forwarded_header_value::ForwardedStanza;
use ipnet::IpNet;

/// `trusted_proxies`, parsed.
#[derive(Debug, Default, Clone)]
pub struct TrustedProxies(Vec<IpNet>);

impl TrustedProxies {
    pub fn new(nets: Vec<IpNet>) -> Self {
        Self(nets)
    }

    fn trusts(&self, ip: IpAddr) -> bool {
        self.0.iter().any(|net| net.contains(&ip))
    }

    /// The rate-limit key of the request's client. A request without a peer address
    /// (none reaches the server over TCP) counts as `0.0.0.0`, all such together.
    pub fn key_of(&self, req: &HttpRequest) -> IpAddr {
        let client = self.client(req.peer_addr().map(|a| a.ip()), req.headers());
        key(client.unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED)))
    }

    /// The client's address, canonical (IPv4-mapped IPv6 as IPv4).
    pub fn client(&self, peer: Option<IpAddr>, headers: &HeaderMap) -> Option<IpAddr> {
        let peer = peer?.to_canonical();
        let xff = headers.get_all(X_FORWARDED_FOR).as_slice();
        let fwd = headers.get_all(FORWARDED).as_slice();
        if !self.trusts(peer) {
            if self.0.is_empty() && !(xff.is_empty() && fwd.is_empty()) {
                untrusted_proxy_hint(peer);
            }
            return Some(peer);
        }
        let forwarded = match (xff.is_empty(), fwd.is_empty()) {
            (false, true) => self.walk(xff, forwarded_for_ip),
            (true, false) => self.walk(fwd, forwarded_element_ip),
            _ => None,
        };
        Some(forwarded.unwrap_or(peer))
    }

    /// Walks `lines` (one header's values, in order) from the right: the first address not
    /// trusted, or the leftmost when every hop is trusted; `None` when an item it has to
    /// read is not an address.
    fn walk(&self, lines: &[HeaderValue], parse: fn(&str) -> Option<IpAddr>) -> Option<IpAddr> {
        let mut leftmost = None;
        for line in lines.iter().rev() {
            for item in line.to_str().ok()?.rsplit(',') {
                let item = item.trim();
                if item.is_empty() {
                    continue;
                }
                let ip = parse(item)?.to_canonical();
                if !self.trusts(ip) {
                    return Some(ip);
                }
                leftmost = Some(ip);
            }
        }
        leftmost
    }
}

/// An `X-Forwarded-For` item: an address, or an address and port (`[::1]:443`).
fn forwarded_for_ip(item: &str) -> Option<IpAddr> {
    item.parse::<IpAddr>()
        .ok()
        .or_else(|| item.parse::<SocketAddr>().ok().map(|s| s.ip()))
}

/// A `Forwarded` element's `for=` address (RFC 7239: quoted, `"[v6]:port"`, `unknown` or
/// an obfuscated `_id`; the last two name no address).
fn forwarded_element_ip(element: &str) -> Option<IpAddr> {
    element.parse::<ForwardedStanza>().ok()?.forwarded_for_ip()
}

/// The budget key of an address: IPv4 as is, IPv4-mapped IPv6 as IPv4, IPv6 by its /64.
pub fn key(ip: IpAddr) -> IpAddr {
    match ip.to_canonical() {
        IpAddr::V6(v6) => IpAddr::V6(Ipv6Addr::from(u128::from(v6) & !(u64::MAX as u128))),
        v4 => v4,
    }
}

/// Forwarding headers from a local peer while nothing is trusted: most likely a proxy in
/// front that `trusted_proxies` does not name, so all its clients share one budget. Said
/// once; headers from a public peer are only a client's claim and say nothing.
fn untrusted_proxy_hint(peer: IpAddr) {
    static SAID: AtomicBool = AtomicBool::new(false);
    let local = match peer {
        IpAddr::V4(v4) => v4.is_loopback() || v4.is_private(),
        IpAddr::V6(v6) => v6.is_loopback(),
    };
    if local && !SAID.swap(true, Ordering::Relaxed) {
        tracing::warn!(
            %peer,
            "requests carry X-Forwarded-For or Forwarded but trusted_proxies is empty: every client behind that proxy shares one rate-limit budget; set trusted_proxies to the proxy's address"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::http::header::HeaderName;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED))
    }

    fn proxies(list: &[&str]) -> TrustedProxies {
        TrustedProxies::new(list.iter().filter_map(|n| n.parse().ok()).collect())
    }

    fn headers(list: &[(&HeaderName, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in list {
            if let Ok(v) = HeaderValue::from_str(value) {
                map.append((*name).clone(), v);
            }
        }
        map
    }

    fn client(t: &TrustedProxies, peer: &str, h: &[(&HeaderName, &str)]) -> Option<IpAddr> {
        t.client(Some(ip(peer)), &headers(h))
    }

    #[test]
    fn headers_from_an_untrusted_peer_are_ignored() {
        let none = TrustedProxies::default();
        let xff = [(&X_FORWARDED_FOR, "198.51.100.1")];
        assert_eq!(client(&none, "203.0.113.5", &xff), Some(ip("203.0.113.5")));
        let other = proxies(&["10.0.0.0/8"]);
        assert_eq!(client(&other, "203.0.113.5", &xff), Some(ip("203.0.113.5")));
        let fwd = [(&FORWARDED, "for=198.51.100.1")];
        assert_eq!(client(&other, "203.0.113.5", &fwd), Some(ip("203.0.113.5")));
        assert_eq!(none.client(None, &headers(&xff)), None);
    }

    #[test]
    fn the_first_untrusted_hop_from_the_right_is_the_client() {
        let t = proxies(&["10.0.0.0/8", "127.0.0.1/32"]);
        // The client claims 1.1.1.1; the proxy appended who really connected.
        let h = [(&X_FORWARDED_FOR, "1.1.1.1, 198.51.100.7")];
        assert_eq!(client(&t, "127.0.0.1", &h), Some(ip("198.51.100.7")));
        // Two proxies: the CDN (10.1.2.3) and the local one; the hop before them counts.
        let h = [(&X_FORWARDED_FOR, "1.1.1.1, 198.51.100.7, 10.1.2.3")];
        assert_eq!(client(&t, "127.0.0.1", &h), Some(ip("198.51.100.7")));
        // Several header lines are one list, in order.
        let h = [
            (&X_FORWARDED_FOR, "1.1.1.1"),
            (&X_FORWARDED_FOR, "198.51.100.7, 10.1.2.3"),
        ];
        assert_eq!(client(&t, "127.0.0.1", &h), Some(ip("198.51.100.7")));
        // Garbage left of the client is never read.
        let h = [(&X_FORWARDED_FOR, "not an address, 198.51.100.7")];
        assert_eq!(client(&t, "127.0.0.1", &h), Some(ip("198.51.100.7")));
        // Every hop trusted: the leftmost.
        let h = [(&X_FORWARDED_FOR, "10.9.9.9, 10.1.2.3")];
        assert_eq!(client(&t, "127.0.0.1", &h), Some(ip("10.9.9.9")));
        // Ports and IPv4-mapped addresses.
        let h = [(&X_FORWARDED_FOR, "198.51.100.7:5123, [::ffff:10.1.2.3]:80")];
        assert_eq!(client(&t, "::ffff:127.0.0.1", &h), Some(ip("198.51.100.7")));
    }

    #[test]
    fn malformed_or_ambiguous_headers_fall_back_to_the_peer() {
        let t = proxies(&["127.0.0.1/32", "10.0.0.0/8"]);
        let peer = Some(ip("127.0.0.1"));
        for h in [
            vec![(&X_FORWARDED_FOR, "198.51.100.7, garbage")],
            vec![(&X_FORWARDED_FOR, "198.51.100.7, 10.0.0.1:x")],
            vec![(&X_FORWARDED_FOR, " , ")],
            vec![(&FORWARDED, "for=unknown")],
            vec![(&FORWARDED, "for=_hidden")],
            vec![(&FORWARDED, "proto=https")],
            vec![(&FORWARDED, "for=198.51.100.7, for")],
            vec![
                (&X_FORWARDED_FOR, "198.51.100.7"),
                (&FORWARDED, "for=198.51.100.8"),
            ],
        ] {
            assert_eq!(client(&t, "127.0.0.1", &h), peer, "{h:?}");
        }
        let mut map = HeaderMap::new();
        if let Ok(v) = HeaderValue::from_bytes(b"198.51.100.7\xff") {
            map.insert(X_FORWARDED_FOR, v);
        }
        assert_eq!(t.client(peer, &map), peer, "not UTF-8");
    }

    #[test]
    fn forwarded_syntax() {
        let t = proxies(&["127.0.0.1/32", "2001:db8:ffff::/48"]);
        let cases = [
            ("for=198.51.100.7", "198.51.100.7"),
            ("For=\"198.51.100.7:4711\";proto=https", "198.51.100.7"),
            ("for=\"[2001:db8:cafe::17]:4711\"", "2001:db8:cafe::17"),
            ("for=\"[2001:db8:cafe::17]\";by=_proxy", "2001:db8:cafe::17"),
            (
                "for=192.0.2.1, for=198.51.100.7;proto=https, for=\"[2001:db8:ffff::1]\"",
                "198.51.100.7",
            ),
            (
                "proto=http;for=198.51.100.7;host=example.com",
                "198.51.100.7",
            ),
        ];
        for (value, want) in cases {
            let h = [(&FORWARDED, value)];
            assert_eq!(client(&t, "127.0.0.1", &h), Some(ip(want)), "{value}");
        }
    }

    #[test]
    fn ipv6_is_keyed_by_its_64_and_mapped_ipv4_as_ipv4() {
        assert_eq!(key(ip("2001:db8:1:2:aaaa::1")), ip("2001:db8:1:2::"));
        assert_eq!(
            key(ip("2001:db8:1:2:ffff:ffff:ffff:ffff")),
            ip("2001:db8:1:2::")
        );
        assert_ne!(key(ip("2001:db8:1:3::1")), key(ip("2001:db8:1:2::1")));
        assert_eq!(key(ip("::ffff:198.51.100.7")), ip("198.51.100.7"));
        assert_eq!(key(ip("198.51.100.7")), ip("198.51.100.7"));
        // A mapped peer is matched against IPv4 proxies as IPv4.
        let t = proxies(&["127.0.0.1/32"]);
        let h = [(&X_FORWARDED_FOR, "2001:db8:1:2::99")];
        assert_eq!(
            client(&t, "::ffff:127.0.0.1", &h).map(key),
            Some(ip("2001:db8:1:2::"))
        );
    }
}
