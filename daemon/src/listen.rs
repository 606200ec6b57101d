//! Where a Fleetdeck daemon (agent or collector) may listen: loopback and Tailscale addresses only,
//! unless the operator passes `--allow-public-bind`. `"tailscale"` resolves this node's tailnet
//! addresses with `tailscale ip`.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

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

fn is_tailscale_v4(ip: Ipv4Addr) -> bool {
    let [a, b, ..] = ip.octets();
    a == 100 && (64..128).contains(&b)
}

fn is_tailscale_v6(ip: Ipv6Addr) -> bool {
    let s = ip.segments();
    s[0] == 0xfd7a && s[1] == 0x115c && s[2] == 0xa1e0
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ListenError {
    #[error(
        "refusing to listen on {0}: it is neither loopback nor a Tailscale address, so it may be reachable \
         from the internet; listen on 127.0.0.1 or \"tailscale\", or pass --allow-public-bind if you really mean it"
    )]
    Public(SocketAddr),
    #[error("listen = \"tailscale\" needs the tailscale CLI, which failed: {0}; install and log in to Tailscale, or list addresses instead")]
    Tailscale(String),
}

/// Turns the configured entries into socket addresses, enforcing the bind policy.
/// `tailscale_ip` runs `tailscale ip` (injected so the policy is testable without Tailscale).
pub fn resolve(
    specs: &[ListenSpec],
    allow_public_bind: bool,
    tailscale_ip: impl Fn() -> Result<String, String>,
) -> Result<Vec<SocketAddr>, ListenError> {
    let mut out = Vec::new();
    for spec in specs {
        match spec {
            ListenSpec::Addr(addr) => {
                if !allow_public_bind && !is_private_to_operator(addr.ip()) {
                    return Err(ListenError::Public(*addr));
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

/// Parses `tailscale ip` output: one address a line; only addresses in Tailscale's ranges count.
pub fn parse_tailscale_ip(text: &str) -> Vec<IpAddr> {
    text.lines()
        .filter_map(|l| l.trim().parse::<IpAddr>().ok())
        .filter(|ip| match ip {
            IpAddr::V4(v4) => is_tailscale_v4(*v4),
            IpAddr::V6(v6) => is_tailscale_v6(*v6),
        })
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
            resolve(&specs, false, no_ts),
            Err(ListenError::Public(addr("0.0.0.0:7070")))
        );
        assert_eq!(resolve(&specs, true, no_ts), Ok(vec![addr("0.0.0.0:7070")]));
        let msg = ListenError::Public(addr("0.0.0.0:7070")).to_string();
        assert!(msg.contains("--allow-public-bind"), "{msg}");
    }

    #[test]
    fn tailscale_resolves_or_fails_clearly() {
        let specs = [
            ListenSpec::Addr(addr("127.0.0.1:1")),
            ListenSpec::Tailscale { port: 7070 },
        ];
        let got = resolve(&specs, false, || {
            Ok("100.101.1.2\nfd7a:115c:a1e0::5\n".into())
        });
        assert_eq!(
            got,
            Ok(vec![
                addr("127.0.0.1:1"),
                addr("100.101.1.2:7070"),
                addr("[fd7a:115c:a1e0::5]:7070")
            ])
        );
        let err = resolve(&specs, false, || {
            Err("cannot run `tailscale ip` (No such file)".into())
        })
        .expect_err("no tailscale");
        assert!(
            err.to_string().contains("install and log in to Tailscale"),
            "{err}"
        );
        let err = resolve(&specs, false, || Ok("\n".into())).expect_err("no addresses");
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
