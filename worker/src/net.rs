//! The network guard (SSRF): Parley fetches only public addresses, unless an
//! operator allows specific private hosts. It is enforced when a URL is
//! submitted, when a name is resolved (every connection, so DNS rebinding
//! does not help), and on every redirect.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

/// The HTTP client library Parley fetches with (spider's, so one client serves both).
pub use spider::reqwest;
use spider::reqwest::{
    dns::{Addrs, Name, Resolve, Resolving},
    redirect,
};
use url::{Host, Url};

pub const USER_AGENT: &str = concat!("ParleyBot/", env!("CARGO_PKG_VERSION"), " (+https://parley.dev/bot)");

/// Which private destinations an operator allows (for intranets and tests).
#[derive(Debug, Clone, Default)]
pub struct NetPolicy {
    /// Hosts or IP addresses that may be fetched even though they are private,
    /// e.g. `127.0.0.1` or `wiki.internal`.
    pub allowed_private_hosts: Vec<String>,
}

impl NetPolicy {
    fn host_allowed(&self, host: &str) -> bool {
        let host = host.trim_start_matches('[').trim_end_matches(']');
        self.allowed_private_hosts.iter().any(|h| h.eq_ignore_ascii_case(host))
    }

    fn ip_allowed(&self, ip: IpAddr) -> bool {
        is_public_ip(ip)
            || self
                .allowed_private_hosts
                .iter()
                .any(|h| h.parse::<IpAddr>().is_ok_and(|a| a == ip))
    }
}

/// Loopback, private, link-local (cloud metadata), CGNAT, unspecified,
/// multicast, documentation and unique-local addresses are not public.
pub fn is_public_ip(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let o = v4.octets();
            !(v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_broadcast()
                || v4.is_multicast()
                || v4.is_documentation()
                || o[0] == 0
                || (o[0] == 100 && (o[1] & 0xc0) == 64)
                || (o[0] == 192 && o[1] == 0 && o[2] == 0)
                || (o[0] == 198 && (o[1] == 18 || o[1] == 19)))
        }
        IpAddr::V6(v6) => {
            let s = v6.segments();
            let embedded = |hi: u16, lo: u16| {
                IpAddr::V4(std::net::Ipv4Addr::new(
                    (hi >> 8) as u8,
                    hi as u8,
                    (lo >> 8) as u8,
                    lo as u8,
                ))
            };
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_public_ip(IpAddr::V4(v4));
            }
            // Addresses that carry an IPv4 address a gateway reaches for us:
            // judged by that address (NAT64, 6to4, IPv4-compatible).
            if s[0] == 0x64 && s[1] == 0xff9b && s[2..6] == [0, 0, 0, 0] {
                return is_public_ip(embedded(s[6], s[7]));
            }
            if s[0] == 0x2002 {
                return is_public_ip(embedded(s[1], s[2]));
            }
            if s[0..6] == [0, 0, 0, 0, 0, 0] && !v6.is_loopback() && !v6.is_unspecified() {
                return is_public_ip(embedded(s[6], s[7]));
            }
            !(v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (s[0] & 0xfe00) == 0xfc00
                || (s[0] & 0xffc0) == 0xfe80
                || (s[0] == 0x2001 && s[1] == 0x0db8)
                // Local-use NAT64 and Teredo tunnels reach where we cannot see.
                || (s[0] == 0x64 && s[1] == 0xff9b && s[2] == 1)
                || (s[0] == 0x2001 && s[1] == 0))
        }
    }
}

/// Why a URL may not be fetched.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct NotAllowed(pub String);

/// Checks a URL's scheme and literal host, without resolving it.
pub fn check_literal(url: &Url, policy: &NetPolicy) -> Result<(), NotAllowed> {
    if !matches!(url.scheme(), "http" | "https") {
        return Err(NotAllowed(format!(
            "only http and https URLs can be fetched, not `{}`",
            url.scheme()
        )));
    }
    let Some(host) = url.host() else {
        return Err(NotAllowed("the URL has no host".into()));
    };
    let host_str = url.host_str().unwrap_or_default();
    if policy.host_allowed(host_str) {
        return Ok(());
    }
    let refused = match host {
        Host::Ipv4(a) => !policy.ip_allowed(IpAddr::V4(a)),
        Host::Ipv6(a) => !policy.ip_allowed(IpAddr::V6(a)),
        Host::Domain(d) => {
            let d = d.trim_end_matches('.').to_ascii_lowercase();
            d == "localhost" || d.ends_with(".localhost") || d == "metadata.google.internal"
        }
    };
    if refused {
        Err(NotAllowed(format!("`{host_str}` is a private or local address")))
    } else {
        Ok(())
    }
}

/// Checks a URL and every address its host resolves to.
pub async fn check_url(url: &str, policy: &NetPolicy) -> Result<Url, NotAllowed> {
    let parsed = Url::parse(url).map_err(|e| NotAllowed(format!("invalid URL: {e}")))?;
    check_literal(&parsed, policy)?;
    let host = parsed
        .host_str()
        .unwrap_or_default()
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_owned();
    if policy.host_allowed(&host) || host.parse::<IpAddr>().is_ok() {
        return Ok(parsed);
    }
    let port = parsed.port_or_known_default().unwrap_or(80);
    let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), port))
        .await
        .map_err(|e| NotAllowed(format!("cannot resolve `{host}`: {e}")))?
        .collect();
    if addrs.is_empty() {
        return Err(NotAllowed(format!("`{host}` has no address")));
    }
    if let Some(bad) = addrs.iter().find(|a| !policy.ip_allowed(a.ip())) {
        return Err(NotAllowed(format!(
            "`{host}` resolves to the private or local address {}",
            bad.ip()
        )));
    }
    Ok(parsed)
}

/// Resolves names like the system does, then drops addresses the policy refuses.
struct GuardedResolver {
    policy: NetPolicy,
}

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let host = name.as_str().to_owned();
        let policy = self.policy.clone();
        Box::pin(async move {
            let all: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let allowed_by_name = policy.host_allowed(&host);
            let addrs: Vec<SocketAddr> = all
                .into_iter()
                .filter(|a| allowed_by_name || policy.ip_allowed(a.ip()))
                .collect();
            if addrs.is_empty() {
                return Err(format!("refusing to connect to `{host}`: no public address").into());
            }
            let addrs: Addrs = Box::new(addrs.into_iter());
            Ok(addrs)
        })
    }
}

/// An HTTP client that only reaches allowed addresses, follows at most 5
/// redirects, each checked, and never uses a proxy (which would resolve
/// names itself and bypass the guard).
pub fn http_client(policy: &NetPolicy, timeout: Duration) -> reqwest::Result<reqwest::Client> {
    let redirect_policy = policy.clone();
    let redirects = redirect::Policy::custom(move |attempt| {
        if attempt.previous().len() >= 5 {
            return attempt.error("too many redirects");
        }
        match check_literal(attempt.url(), &redirect_policy) {
            Ok(()) => attempt.follow(),
            Err(e) => attempt.error(e),
        }
    });
    reqwest::Client::builder()
        .user_agent(USER_AGENT)
        .no_proxy()
        .dns_resolver(Arc::new(GuardedResolver { policy: policy.clone() }))
        .redirect(redirects)
        .connect_timeout(Duration::from_secs(10))
        .timeout(timeout)
        .build()
}

/// A client for webhook deliveries: the same address guard, no redirects
/// (a redirect is a failed delivery, not a new destination), and a timeout.
pub fn webhook_client(policy: &NetPolicy, timeout: Duration, user_agent: &str) -> reqwest::Result<reqwest::Client> {
    reqwest::Client::builder()
        .user_agent(user_agent)
        .no_proxy()
        .dns_resolver(Arc::new(GuardedResolver { policy: policy.clone() }))
        .redirect(redirect::Policy::none())
        .connect_timeout(timeout.min(Duration::from_secs(10)))
        .timeout(timeout)
        .build()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn private_and_local_addresses_are_not_public() {
        for ip in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "::1",
            "fe80::1",
            "fd00::1",
            "::ffff:127.0.0.1",
            "64:ff9b::a9fe:a9fe",
            "64:ff9b::7f00:1",
            "2002:a9fe:a9fe::1",
            "2002:0a00:0001::1",
            "::10.0.0.1",
            "64:ff9b:1::1",
            "2001:0:4136:e378:8000:63bf:3fff:fdd2",
        ] {
            assert!(!is_public_ip(ip.parse().unwrap()), "{ip}");
        }
        for ip in [
            "8.8.8.8",
            "1.1.1.1",
            "2606:4700:4700::1111",
            "64:ff9b::808:808",
            "2002:0808:0808::1",
        ] {
            assert!(is_public_ip(ip.parse().unwrap()), "{ip}");
        }
    }

    #[test]
    fn literal_checks_and_the_allow_list() {
        let none = NetPolicy::default();
        let local = NetPolicy {
            allowed_private_hosts: vec!["127.0.0.1".into()],
        };
        let url = |s: &str| Url::parse(s).unwrap();
        assert!(check_literal(&url("http://127.0.0.1:8080/x"), &none).is_err());
        assert!(check_literal(&url("http://127.0.0.1:8080/x"), &local).is_ok());
        assert!(check_literal(&url("http://localhost/"), &none).is_err());
        assert!(check_literal(&url("http://[::1]/"), &none).is_err());
        assert!(check_literal(&url("file:///etc/passwd"), &local).is_err());
        assert!(check_literal(&url("http://169.254.169.254/latest/meta-data"), &local).is_err());
        assert!(check_literal(&url("https://example.com/"), &none).is_ok());
    }

    #[tokio::test]
    async fn names_are_checked_after_resolution() {
        let none = NetPolicy::default();
        assert!(check_url("http://localhost:1/", &none).await.is_err());
        let err = check_url("http://127.0.0.1.nip.invalid/", &none).await.unwrap_err();
        assert!(err.0.contains("resolve") || err.0.contains("private"), "{err}");
    }
}
