//! Where a Fleetdeck daemon (agent or collector) may listen: loopback and Tailscale addresses only,
//! unless the operator passes `--allow-public-bind`. `"tailscale"` resolves this node's tailnet
//! addresses with `tailscale ip`; an address given as such in Tailscale's ranges must be one of
//! the `tailscale0` interface's (100.64.0.0/10 is also carrier-grade NAT space).

use std::net::{IpAddr, SocketAddr};

/// One entry of `listen`: an address, or this node's tailnet addresses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ListenSpec {
    Addr(SocketAddr),
    Tailscale { port: u16 },
}

impl ListenSpec {
    /// Parses one entry; `"tailscale"` without a port means `default_port` (the daemon's own).
    pub fn parse(s: &str, default_port: u16) -> Result<Self, String> {
        if s == "tailscale" {
            return Ok(Self::Tailscale { port: default_port });
        }
        if let Some(port) = s.strip_prefix("tailscale:") {
            let port = port.parse().map_err(|_| {
                format!("{s:?}: the port after \"tailscale:\" must be a number 1-65535")
            })?;
            return Ok(Self::Tailscale { port });
        }
        s.parse::<SocketAddr>().map(Self::Addr).map_err(|_| {
            format!("{s:?} is not an address: use \"IP:PORT\" (e.g. \"127.0.0.1:{default_port}\", \"[::1]:{default_port}\"), \"tailscale\" or \"tailscale:PORT\"")
        })
    }
}

pub use fleetdeck_transport::addr::is_private_to_operator;
use fleetdeck_transport::addr::is_tailscale;

/// The interface Tailscale's addresses live on (Linux, kernel networking). An address in
/// 100.64.0.0/10 elsewhere is carrier-grade NAT space, shared with strangers: not the tailnet.
pub const TAILSCALE_INTERFACE: &str = "tailscale0";

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ListenError {
    #[error(
        "refusing to listen on {0}: it is neither loopback nor a Tailscale address, so it may be reachable \
         from the internet; listen on 127.0.0.1 or \"tailscale\", or pass --allow-public-bind if you really mean it"
    )]
    Public(SocketAddr),
    #[error(
        "refusing to listen on {0}: it is in Tailscale's range but is not an address of the \
         {TAILSCALE_INTERFACE} interface, so it may be a carrier-grade NAT address that others on \
         the provider's network can reach; listen on \"tailscale\" (this node's tailnet \
         addresses), or pass --allow-public-bind if you really mean it"
    )]
    NotOnTailscale(SocketAddr),
    #[error("cannot list this host's network interfaces to check that {0} is on {TAILSCALE_INTERFACE}: {1}")]
    Interfaces(SocketAddr, String),
    #[error("listen = \"tailscale\" needs the tailscale CLI, which failed: {0}; install and log in to Tailscale, or list addresses instead")]
    Tailscale(String),
}

/// Turns the configured entries into socket addresses, enforcing the bind policy.
/// `tailscale_ip` runs `tailscale ip` and `interfaces` lists the host's interface addresses
/// (both injected so the policy is testable without Tailscale).
pub fn resolve(
    specs: &[ListenSpec],
    allow_public_bind: bool,
    tailscale_ip: impl Fn() -> Result<String, String>,
    interfaces: impl Fn() -> Result<Vec<(String, IpAddr)>, String>,
) -> Result<Vec<SocketAddr>, ListenError> {
    let mut out = Vec::new();
    for spec in specs {
        match spec {
            ListenSpec::Addr(addr) => {
                if !allow_public_bind {
                    if !is_private_to_operator(addr.ip()) {
                        return Err(ListenError::Public(*addr));
                    }
                    if is_tailscale(addr.ip()) {
                        let on = interfaces().map_err(|e| ListenError::Interfaces(*addr, e))?;
                        if !on_tailscale_interface(addr.ip(), &on) {
                            return Err(ListenError::NotOnTailscale(*addr));
                        }
                    }
                }
                out.push(*addr);
            }
            ListenSpec::Tailscale { port } => {
                let text = tailscale_ip().map_err(ListenError::Tailscale)?;
                let ips = parse_tailscale_ip(&text);
                if ips.is_empty() {
                    return Err(ListenError::Tailscale(format!(
                        "`tailscale ip` printed no tailnet address ({:?})",
                        text.trim()
                    )));
                }
                out.extend(ips.into_iter().map(|ip| SocketAddr::new(ip, *port)));
            }
        }
    }
    out.dedup();
    Ok(out)
}

/// Whether `ip` is one of the addresses of [`TAILSCALE_INTERFACE`] in `interfaces`.
pub fn on_tailscale_interface(ip: IpAddr, interfaces: &[(String, IpAddr)]) -> bool {
    let ip = match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    };
    interfaces
        .iter()
        .any(|(name, addr)| name == TAILSCALE_INTERFACE && *addr == ip)
}

/// This host's interface addresses, as (interface name, address).
pub fn interface_addrs() -> Result<Vec<(String, IpAddr)>, String> {
    let addrs = nix::ifaddrs::getifaddrs().map_err(|e| format!("getifaddrs failed ({e})"))?;
    Ok(addrs
        .filter_map(|a| {
            let storage = a.address?;
            let ip = if let Some(v4) = storage.as_sockaddr_in() {
                IpAddr::V4(v4.ip())
            } else {
                IpAddr::V6(storage.as_sockaddr_in6()?.ip())
            };
            Some((a.interface_name, ip))
        })
        .collect())
}

/// Parses `tailscale ip` output: one address a line; only addresses in Tailscale's ranges count.
pub fn parse_tailscale_ip(text: &str) -> Vec<IpAddr> {
    text.lines()
        .filter_map(|l| l.trim().parse::<IpAddr>().ok())
        .filter(|ip| is_tailscale(*ip))
        .collect()
}

/// Runs `tailscale ip` and returns what it printed.
pub fn run_tailscale_ip() -> Result<String, String> {
    let out = std::process::Command::new("tailscale")
        .arg("ip")
        .output()
        .map_err(|e| format!("cannot run `tailscale ip` ({e})"))?;
    if !out.status.success() {
        return Err(format!(
            "`tailscale ip` exited with {}: {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(s: &str) -> SocketAddr {
        s.parse().expect("test address")
    }

    fn no_interfaces() -> Result<Vec<(String, IpAddr)>, String> {
        Ok(Vec::new())
    }

    fn iface(name: &str, ip: &str) -> (String, IpAddr) {
        (name.to_owned(), ip.parse().expect("test ip"))
    }

    #[test]
    fn a_tailscale_range_address_must_be_on_tailscale0() {
        let no_ts = || Err("not installed".to_owned());
        let on = || {
            Ok(vec![
                iface("lo", "127.0.0.1"),
                iface("eth0", "100.70.0.1"),
                iface("tailscale0", "100.101.1.2"),
                iface("tailscale0", "fd7a:115c:a1e0::5"),
            ])
        };
        for (addr, allowed) in [
            ("100.101.1.2:7070", true),
            ("[fd7a:115c:a1e0::5]:7070", true),
            ("[::ffff:100.101.1.2]:7070", true),
            ("127.0.0.1:7070", true),
            ("100.70.0.1:7070", false),
            ("100.101.1.3:7070", false),
            ("[fd7a:115c:a1e0::6]:7070", false),
        ] {
            let specs = [ListenSpec::Addr(self::addr(addr))];
            let got = resolve(&specs, false, no_ts, on);
            if allowed {
                assert_eq!(got, Ok(vec![self::addr(addr)]), "{addr}");
            } else {
                assert_eq!(
                    got,
                    Err(ListenError::NotOnTailscale(self::addr(addr))),
                    "{addr}"
                );
                // The flag forces it, as for any other address.
                assert_eq!(resolve(&specs, true, no_ts, on), Ok(vec![self::addr(addr)]));
            }
        }
        let msg = ListenError::NotOnTailscale(addr("100.70.0.1:7070")).to_string();
        assert!(
            msg.contains("tailscale0") && msg.contains("--allow-public-bind"),
            "{msg}"
        );
        let specs = [ListenSpec::Addr(addr("100.101.1.2:7070"))];
        let err = resolve(&specs, false, no_ts, || Err("no netlink".into())).expect_err("fails");
        assert!(err.to_string().contains("no netlink"), "{err}");
        // Loopback needs no interface list.
        let specs = [ListenSpec::Addr(addr("127.0.0.1:7070"))];
        assert!(resolve(&specs, false, no_ts, || Err("unused".into())).is_ok());
    }

    #[test]
    fn specs_parse() {
        assert_eq!(
            ListenSpec::parse("tailscale", 7070),
            Ok(ListenSpec::Tailscale { port: 7070 })
        );
        assert_eq!(
            ListenSpec::parse("tailscale:9000", 7070),
            Ok(ListenSpec::Tailscale { port: 9000 })
        );
        assert_eq!(
            ListenSpec::parse("[::1]:7070", 7070),
            Ok(ListenSpec::Addr(addr("[::1]:7070")))
        );
        assert!(ListenSpec::parse("tailscale:x", 7070).is_err());
        assert!(ListenSpec::parse("127.0.0.1", 7070)
            .expect_err("no port")
            .contains("IP:PORT"));
        assert!(ListenSpec::parse("localhost:7070", 7070).is_err());
    }

    #[test]
    fn public_bind_needs_the_flag() {
        let specs = [ListenSpec::Addr(addr("0.0.0.0:7070"))];
        let no_ts = || Err("not installed".to_owned());
        assert_eq!(
            resolve(&specs, false, no_ts, no_interfaces),
            Err(ListenError::Public(addr("0.0.0.0:7070")))
        );
        assert_eq!(
            resolve(&specs, true, no_ts, no_interfaces),
            Ok(vec![addr("0.0.0.0:7070")])
        );
        let msg = ListenError::Public(addr("0.0.0.0:7070")).to_string();
        assert!(msg.contains("--allow-public-bind"), "{msg}");
    }

    #[test]
    fn tailscale_resolves_or_fails_clearly() {
        let specs = [
            ListenSpec::Addr(addr("127.0.0.1:1")),
            ListenSpec::Tailscale { port: 7070 },
        ];
        let got = resolve(
            &specs,
            false,
            || Ok("100.101.1.2\nfd7a:115c:a1e0::5\n".into()),
            no_interfaces,
        );
        assert_eq!(
            got,
            Ok(vec![
                addr("127.0.0.1:1"),
                addr("100.101.1.2:7070"),
                addr("[fd7a:115c:a1e0::5]:7070")
            ])
        );
        let err = resolve(
            &specs,
            false,
            || Err("cannot run `tailscale ip` (No such file)".into()),
            no_interfaces,
        )
        .expect_err("no tailscale");
        assert!(
            err.to_string().contains("install and log in to Tailscale"),
            "{err}"
        );
        let err =
            resolve(&specs, false, || Ok("\n".into()), no_interfaces).expect_err("no addresses");
        assert!(err.to_string().contains("no tailnet address"), "{err}");
    }

    #[test]
    fn tailscale_ip_output_ignores_non_tailnet_lines() {
        assert_eq!(
            parse_tailscale_ip("100.100.1.1\n192.168.1.4\ngarbage\n  fd7a:115c:a1e0::9  \n"),
            vec![
                "100.100.1.1".parse::<IpAddr>().expect("ip"),
                "fd7a:115c:a1e0::9".parse().expect("ip")
            ]
        );
    }
}
