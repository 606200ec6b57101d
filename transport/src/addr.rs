//! Which addresses are private to the operator: loopback and Tailscale's ranges (100.64.0.0/10,
//! fd7a:115c:a1e0::/48, names under `.ts.net`). Plain HTTP elsewhere crosses a network someone
//! else may watch.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Whether `ip` is loopback or in Tailscale's ranges (100.64.0.0/10, fd7a:115c:a1e0::/48).
pub fn is_private_to_operator(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => v4.is_loopback() || is_tailscale_v4(v4),
        IpAddr::V6(v6) => {
            v6.is_loopback()
                || v6
                    .to_ipv4_mapped()
                    .is_some_and(|v4| v4.is_loopback() || is_tailscale_v4(v4))
                || is_tailscale_v6(v6)
        }
    }
}

/// Whether `ip` is in Tailscale's ranges (which, for IPv4, is also carrier-grade NAT's
/// 100.64.0.0/10: an address there is the tailnet's only when Tailscale assigned it).
pub fn is_tailscale(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_tailscale_v4(v4),
        IpAddr::V6(v6) => is_tailscale_v6(v6) || v6.to_ipv4_mapped().is_some_and(is_tailscale_v4),
    }
}

fn is_tailscale_v4(ip: Ipv4Addr) -> bool {
    let [a, b, ..] = ip.octets();
    a == 100 && (64..128).contains(&b)
}

fn is_tailscale_v6(ip: Ipv6Addr) -> bool {
    let s = ip.segments();
    s[0] == 0xfd7a && s[1] == 0x115c && s[2] == 0xa1e0
}

/// Whether a URL's host (as in the URL: an IPv6 address may keep its brackets) is loopback or on
/// the tailnet: an IP in those ranges, `localhost`, or a MagicDNS name under `.ts.net`.
pub fn is_private_host(host: &str) -> bool {
    let bare = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    if let Ok(ip) = bare.parse::<IpAddr>() {
        return is_private_to_operator(ip);
    }
    let name = bare.trim_end_matches('.').to_ascii_lowercase();
    name == "localhost" || name.ends_with(".localhost") || name.ends_with(".ts.net")
}

/// Whether `host` (a name, or an IP as in a URL) resolves, and only to loopback or tailnet
/// addresses: a MagicDNS short name (`web1`) is the tailnet's when the tailnet's resolver (or
/// /etc/hosts) says so. A name that does not resolve is not private. This asks the system's
/// resolver: call it where a blocking lookup is fine (once per configured agent, not per request).
pub fn resolves_privately(host: &str) -> bool {
    use std::net::ToSocketAddrs;
    let bare = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    match (bare, 0).to_socket_addrs() {
        Ok(addrs) => {
            let addrs: Vec<_> = addrs.collect();
            !addrs.is_empty() && addrs.iter().all(|a| is_private_to_operator(a.ip()))
        }
        Err(_) => false,
    }
}

/// Whether a request to `scheme://host` sends its bytes (and so a token or key) in clear over a
/// network that is neither loopback nor the tailnet: what the collector and the desktop warn of.
pub fn is_plain_http_outside_tailnet(scheme: &str, host: &str) -> bool {
    scheme.eq_ignore_ascii_case("http") && !is_private_host(host)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn private_ranges() {
        for (ip, want) in [
            ("127.0.0.1", true),
            ("127.8.9.1", true),
            ("::1", true),
            ("::ffff:127.0.0.1", true),
            ("100.64.0.0", true),
            ("100.101.1.2", true),
            ("100.127.255.255", true),
            ("100.63.255.255", false),
            ("100.128.0.0", false),
            ("fd7a:115c:a1e0::1", true),
            ("fd7a:115c:a1e0:ab12::1", true),
            ("fd7a:115c:a1e1::1", false),
            ("0.0.0.0", false),
            ("::", false),
            ("10.0.0.1", false),
            ("192.168.1.1", false),
            ("8.8.8.8", false),
        ] {
            let ip: IpAddr = ip.parse().expect("test ip");
            assert_eq!(is_private_to_operator(ip), want, "{ip}");
        }
    }

    #[test]
    fn tailscale_ranges_exclude_loopback() {
        for (ip, want) in [
            ("127.0.0.1", false),
            ("100.64.0.1", true),
            ("::ffff:100.64.0.1", true),
            ("fd7a:115c:a1e0::1", true),
            ("10.0.0.1", false),
        ] {
            let ip: IpAddr = ip.parse().expect("test ip");
            assert_eq!(is_tailscale(ip), want, "{ip}");
        }
    }

    #[test]
    fn names_resolving_to_loopback_or_the_tailnet_only_are_private() {
        assert!(resolves_privately("localhost"));
        assert!(resolves_privately("127.0.0.1"));
        assert!(resolves_privately("[::1]"));
        assert!(resolves_privately("100.101.1.2"));
        assert!(!resolves_privately("10.99.0.2"));
        assert!(!resolves_privately("no-such-host.invalid"));
    }

    #[test]
    fn plain_http_outside_the_tailnet() {
        for (scheme, host, want) in [
            ("http", "127.0.0.1", false),
            ("http", "[::1]", false),
            ("http", "localhost", false),
            ("http", "100.101.1.2", false),
            ("http", "[fd7a:115c:a1e0::5]", false),
            ("http", "vm1.tail1234.ts.net", false),
            ("http", "VM1.TAIL1234.TS.NET.", false),
            ("http", "10.99.0.2", true),
            ("HTTP", "192.168.1.4", true),
            ("http", "[2001:db8::1]", true),
            ("http", "collector.example.com", true),
            ("http", "ts.net.example.com", true),
            ("https", "10.99.0.2", false),
            ("https", "collector.example.com", false),
        ] {
            assert_eq!(
                is_plain_http_outside_tailnet(scheme, host),
                want,
                "{scheme}://{host}"
            );
        }
    }
}
