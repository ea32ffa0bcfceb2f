//! The client's address: the peer's, or, when the peer is a trusted proxy,
//! the nearest address in `X-Forwarded-For` that is not one. A header from
//! anyone else is ignored, so it cannot be used to dodge per-IP limits.

use std::net::IpAddr;

use ipnet::IpNet;
use poem::Request;

/// Parses `PARLEY_TRUSTED_PROXIES`: comma-separated addresses or CIDR
/// ranges. Returns the first bad entry on error.
pub fn parse_proxies(list: &str) -> Result<Vec<IpNet>, String> {
    list.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| {
            s.parse::<IpNet>()
                .or_else(|_| s.parse::<IpAddr>().map(IpNet::from))
                .map_err(|_| s.to_owned())
        })
        .collect()
}

fn trusted(proxies: &[IpNet], ip: IpAddr) -> bool {
    let ip = match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    };
    proxies.iter().any(|net| net.contains(&ip))
}

/// The client address of a request (`None` when the peer is not an IP
/// socket, as in tests that call endpoints directly).
pub fn client_ip(req: &Request, proxies: &[IpNet]) -> Option<IpAddr> {
    let peer = req.remote_addr().as_socket_addr().map(|a| a.ip())?;
    Some(resolve(peer, req.headers(), proxies))
}

/// What per-client limits count a client as: an IPv4 address, or the /64
/// network of an IPv6 one (one subscriber's line gets a whole /64, so a
/// single client could otherwise take a fresh address for every request).
/// IPv4 addresses written as IPv6 (`::ffff:a.b.c.d`) count as IPv4.
pub fn rate_bucket(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => v4.to_string(),
            None => {
                let s = v6.segments();
                format!("{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3])
            }
        },
    }
}

/// The client behind `peer`, given the request's headers.
fn resolve(peer: IpAddr, headers: &poem::http::HeaderMap, proxies: &[IpNet]) -> IpAddr {
    if !trusted(proxies, peer) {
        return peer;
    }
    let forwarded: Vec<Option<IpAddr>> = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|s| s.trim().parse::<IpAddr>().ok())
        .collect();
    // Right to left: the last hop was added by our proxy; stop at the first
    // address that is not a trusted proxy. An entry that is not a plain
    // address ends the walk at the last address known good: what lies to
    // its left may be the client's own invention.
    let mut client = peer;
    for hop in forwarded.into_iter().rev() {
        let Some(ip) = hop else { break };
        client = ip;
        if !trusted(proxies, ip) {
            break;
        }
    }
    client
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client(peer: &str, xff: Option<&str>, proxies: &[IpNet]) -> Option<IpAddr> {
        let mut headers = poem::http::HeaderMap::new();
        if let Some(xff) = xff {
            headers.insert("x-forwarded-for", xff.parse().unwrap());
        }
        Some(resolve(peer.parse().unwrap(), &headers, proxies))
    }

    #[test]
    fn ipv6_clients_count_per_64() {
        let bucket = |ip: &str| rate_bucket(ip.parse().unwrap());
        assert_eq!(bucket("2001:db8:1:2:aaaa::1"), bucket("2001:db8:1:2:ffff:1:2:3"));
        assert_eq!(bucket("2001:db8:1:2::1"), "2001:db8:1:2::/64");
        assert_ne!(bucket("2001:db8:1:2::1"), bucket("2001:db8:1:3::1"));
        assert_eq!(bucket("::ffff:192.0.2.7"), bucket("192.0.2.7"));
        assert_ne!(bucket("192.0.2.7"), bucket("192.0.2.8"));
    }

    #[test]
    fn forwarded_addresses_count_only_from_trusted_proxies() {
        let proxies = parse_proxies("10.0.0.0/8, 192.168.1.5").unwrap();
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        // An untrusted peer's header is ignored.
        assert_eq!(
            client("::ffff:10.0.0.9", Some("1.2.3.4"), &proxies),
            Some(ip("1.2.3.4"))
        );
        assert_eq!(
            client("203.0.113.9", Some("1.2.3.4"), &proxies),
            Some(ip("203.0.113.9"))
        );
        // Behind a trusted proxy, the nearest untrusted hop is the client,
        // whatever the client itself put further left.
        assert_eq!(
            client("10.1.2.3", Some("6.6.6.6, 198.51.100.7"), &proxies),
            Some(ip("198.51.100.7"))
        );
        assert_eq!(
            client("192.168.1.5", Some("198.51.100.7, 10.0.0.2"), &proxies),
            Some(ip("198.51.100.7"))
        );
        assert_eq!(client("10.1.2.3", None, &proxies), Some(ip("10.1.2.3")));
        // A malformed hop: nothing left of it is believed.
        assert_eq!(
            client("10.1.2.3", Some("6.6.6.6, 198.51.100.7:4711"), &proxies),
            Some(ip("10.1.2.3"))
        );
        assert!(parse_proxies("10.0.0.0/33").is_err());
        assert!(parse_proxies("").unwrap().is_empty());
    }
}
