//! The traits an attack shares, taken from an attempt: the email's domain and the client's
//! network. Card-testing waves rotate single addresses and emails, but seldom their network
//! range or their domain, so failures are counted per trait as well as per value.

use std::net::IpAddr;

/// The part after the last `@`, lower-cased ("" when there is none).
pub fn email_domain(email: &str) -> String {
    email
        .rsplit_once('@')
        .map(|(_, d)| d.trim().to_ascii_lowercase())
        .unwrap_or_default()
}

/// The network an address sits in: IPv4 /24 (`203.0.113.0/24`), IPv6 /48. An IPv4-mapped
/// IPv6 address counts as its IPv4 address. Anything unparsable is kept as it is.
pub fn client_net(ip: &str) -> String {
    match ip.parse::<IpAddr>() {
        Ok(IpAddr::V4(v4)) => v4_net(v4),
        Ok(IpAddr::V6(v6)) => match v6.to_ipv4_mapped() {
            Some(v4) => v4_net(v4),
            None => {
                let s = v6.segments();
                format!("{:x}:{:x}:{:x}::/48", s[0], s[1], s[2])
            }
        },
        Err(_) => ip.to_owned(),
    }
}

fn v4_net(v4: std::net::Ipv4Addr) -> String {
    let [a, b, c, _] = v4.octets();
    format!("{a}.{b}.{c}.0/24")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn domains_and_networks() {
        assert_eq!(email_domain("Ana@Example.COM"), "example.com");
        assert_eq!(email_domain("a@b@c.io"), "c.io");
        assert_eq!(email_domain("nobody"), "");
        assert_eq!(client_net("203.0.113.77"), "203.0.113.0/24");
        assert_eq!(client_net("::ffff:203.0.113.77"), "203.0.113.0/24");
        assert_eq!(client_net("2001:db8:abcd:12::1"), "2001:db8:abcd::/48");
        assert_eq!(client_net("unknown"), "unknown");
    }
}
