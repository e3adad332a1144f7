//! The client's IP address: the socket peer, or — only when the peer is a configured trusted
//! proxy — the address the proxies recorded. Every occurrence of the client-IP header counts
//! (a proxy may append its own separate line, as HAProxy's `option forwardfor` does), read as
//! one list from the right: trusted proxies are walked back over, and the first address that
//! is not one of them is the client. Anything to its left was written by the client itself.

use actix_web::dev::Payload;
use actix_web::{web, FromRequest, HttpRequest};
use std::fmt;
use std::future::{ready, Ready};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};

pub use crate::domain::setting::ProxyRange;

#[derive(Debug, Clone)]
pub struct TrustedProxies {
    pub proxies: Vec<ProxyRange>,
    pub header: String,
}

impl TrustedProxies {
    fn trusts(&self, ip: IpAddr) -> bool {
        self.proxies.iter().any(|p| p.contains(ip))
    }

    /// The client's address given the socket peer and every line of the client-IP header, in
    /// the order received.
    pub fn client_ip<'a>(&self, peer: IpAddr, lines: impl Iterator<Item = &'a str>) -> IpAddr {
        let mut client = peer.to_canonical();
        if !self.trusts(client) {
            return client;
        }
        let entries: Vec<&str> = lines.flat_map(|l| l.split(',')).collect();
        for entry in entries.iter().rev() {
            // A malformed entry ends the chain: nothing left of it can be believed.
            let Some(ip) = parse_entry(entry) else {
                break;
            };
            client = ip;
            if !self.trusts(ip) {
                break;
            }
        }
        client
    }
}

/// One entry of the header: an address, possibly with a port (`1.2.3.4:5678`, `[::1]:80`).
fn parse_entry(entry: &str) -> Option<IpAddr> {
    let entry = entry.trim();
    entry
        .parse::<IpAddr>()
        .or_else(|_| entry.parse::<SocketAddr>().map(|a| a.ip()))
        .ok()
        .map(|ip| ip.to_canonical())
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ClientIp(pub IpAddr);

impl ClientIp {
    pub fn from_request(req: &HttpRequest) -> ClientIp {
        let peer = req
            .peer_addr()
            .map(|a| a.ip())
            .unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED));
        match req.app_data::<web::Data<TrustedProxies>>() {
            Some(trusted) => {
                let lines = req
                    .headers()
                    .get_all(trusted.header.as_str())
                    .filter_map(|v| v.to_str().ok());
                ClientIp(trusted.client_ip(peer, lines))
            }
            None => ClientIp(peer.to_canonical()),
        }
    }
}

impl FromRequest for ClientIp {
    type Error = actix_web::Error;
    type Future = Ready<Result<Self, Self::Error>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(Ok(ClientIp::from_request(req)))
    }
}

impl fmt::Display for ClientIp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn proxies(list: &[&str]) -> TrustedProxies {
        TrustedProxies {
            proxies: list.iter().map(|p| p.parse().unwrap()).collect(),
            header: "X-Forwarded-For".into(),
        }
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn the_right_most_untrusted_address_across_all_lines_is_the_client() {
        let t = proxies(&["127.0.0.1", "10.0.0.0/8"]);
        let peer = ip("127.0.0.1");
        // HAProxy appends its own line after the client's forged one.
        let got = t.client_ip(peer, ["6.6.6.6", "203.0.113.9"].into_iter());
        assert_eq!(got, ip("203.0.113.9"));
        // A chain of trusted proxies is walked back.
        let got = t.client_ip(
            peer,
            ["6.6.6.6, 203.0.113.9, 10.1.2.3", "10.9.9.9"].into_iter(),
        );
        assert_eq!(got, ip("203.0.113.9"));
        // All trusted: the left-most.
        assert_eq!(t.client_ip(peer, ["10.1.1.1"].into_iter()), ip("10.1.1.1"));
        // No header: the peer.
        assert_eq!(t.client_ip(peer, std::iter::empty()), peer);
        // Garbage ends the chain at the last address believed.
        assert_eq!(
            t.client_ip(peer, ["1.1.1.1, nonsense, 10.2.2.2"].into_iter()),
            ip("10.2.2.2")
        );
        // Ports are allowed.
        assert_eq!(
            t.client_ip(peer, ["203.0.113.9:4711"].into_iter()),
            ip("203.0.113.9")
        );
    }

    #[test]
    fn an_untrusted_peer_is_the_client_whatever_it_sends() {
        let t = proxies(&["10.0.0.0/8"]);
        assert_eq!(
            t.client_ip(ip("198.51.100.1"), ["10.0.0.1"].into_iter()),
            ip("198.51.100.1")
        );
    }

    #[test]
    fn ipv4_mapped_addresses_compare_as_ipv4() {
        let t = proxies(&["127.0.0.1"]);
        assert_eq!(
            t.client_ip(ip("::ffff:127.0.0.1"), ["::ffff:203.0.113.9"].into_iter()),
            ip("203.0.113.9")
        );
        let t = proxies(&["::ffff:10.0.0.0/104"]);
        assert!(t.trusts(ip("10.2.3.4")));
        assert!(!t.trusts(ip("11.2.3.4")));
    }

    #[test]
    fn ranges_parse_and_print() {
        for (input, shown) in [
            ("127.0.0.1", "127.0.0.1"),
            ("10.0.0.0/8", "10.0.0.0/8"),
            ("10.1.2.3/8", "10.0.0.0/8"),
            ("fd00::/8", "fd00::/8"),
            ("::1", "::1"),
        ] {
            assert_eq!(input.parse::<ProxyRange>().unwrap().to_string(), shown);
        }
        for bad in ["", "10.0.0.0/33", "localhost", "10.0.0.0/"] {
            assert!(bad.parse::<ProxyRange>().is_err(), "{bad}");
        }
    }
}
