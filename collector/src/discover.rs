//! `fleetdeck-collector discover`: lists the tailnet peers (from `tailscale status --json`) whose
//! agent answers `GET /healthz`, and prints `[[agents]]` stanzas to paste into the config, so
//! setting up a fleet does not start with copying IP addresses by hand.
//!
//! The parts are separate so each is tested on its own: [`parse_status`] is a pure function over
//! the CLI's JSON (fixture files), [`agent_name`], [`stanza`] and [`render`] are pure text,
//! [`probe`] talks HTTP (tested against a real local server), and [`run`] only glues them to the
//! `tailscale` process.

use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use anyhow::Context as _;
use fleetdeck_daemon::toml_text::basic_string as toml_string;
use serde::Deserialize;

/// A tailnet peer, reduced to what discovery needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Peer {
    /// The machine's own host name (`HostName`): what the operator calls it, not necessarily
    /// unique or DNS-safe (`Alice's MacBook Pro`).
    pub hostname: String,
    /// The MagicDNS name (`DNSName`) without its trailing dot, e.g. `vm-1.tail1a2b3c.ts.net`.
    pub dns_name: String,
    /// Tailnet addresses in the order Tailscale lists them.
    pub ips: Vec<IpAddr>,
    pub online: bool,
    /// `linux`, `macOS`, `windows`, ... as Tailscale reports it.
    pub os: String,
}

/// The outcome of probing one online peer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found {
    pub peer: Peer,
    /// The agent base URL probed (`http://100.101.1.2:7070`), as it goes into a stanza.
    pub url: String,
    /// `GET {url}/healthz` answered 200 with the body `ok`, as a Fleetdeck agent does.
    pub answered: bool,
    /// Why it did not answer (`cannot connect (...)`, `no answer within 2s`, `answered 404 Not
    /// Found`), so the operator can tell "no agent" from "something else on that port".
    pub problem: Option<String>,
}

/// `tailscale status --json` could not be used.
#[derive(Debug, thiserror::Error)]
pub enum DiscoverError {
    #[error("`tailscale status --json` did not print JSON ({0}); is Tailscale running? try `tailscale status`")]
    NotJson(serde_json::Error),
    #[error("`tailscale status --json` printed JSON of an unexpected shape ({0}); check that `tailscale version` is a current release")]
    UnexpectedShape(serde_json::Error),
    #[error("Tailscale is not connected (BackendState {state:?}); {fix}, then run discover again")]
    NotConnected { state: String, fix: &'static str },
}

/// The parts of `ipnstate.Status` read here; serde ignores every other field, so new Tailscale
/// releases that add fields keep working.
#[derive(Deserialize)]
struct Status {
    #[serde(rename = "BackendState", default)]
    backend_state: Option<String>,
    /// Keyed by node key; `null` or absent when this node is alone in its tailnet.
    #[serde(rename = "Peer", default)]
    peer: Option<HashMap<String, PeerStatus>>,
}

/// The parts of `ipnstate.PeerStatus` read here. Every field has a default because Go writes
/// zero values for whatever it does not know, and a peer half-described is still worth listing.
#[derive(Deserialize)]
struct PeerStatus {
    #[serde(rename = "HostName", default)]
    host_name: String,
    #[serde(rename = "DNSName", default)]
    dns_name: String,
    #[serde(rename = "TailscaleIPs", default)]
    tailscale_ips: Option<Vec<IpAddr>>,
    #[serde(rename = "Online", default)]
    online: bool,
    #[serde(rename = "OS", default)]
    os: String,
}

/// Parses the output of `tailscale status --json` into its peers (not this node itself, which
/// `Self` describes: the collector does not discover itself), sorted by host name and then DNS
/// name, so the printed list is stable from run to run.
///
/// Refuses a node that is logged out or stopped, because its empty peer list would otherwise read
/// as "no agents here"; a missing `BackendState` is tolerated.
pub fn parse_status(json: &str) -> Result<Vec<Peer>, DiscoverError> {
    let status: Status = serde_json::from_str(json).map_err(|e| match e.classify() {
        serde_json::error::Category::Data => DiscoverError::UnexpectedShape(e),
        _ => DiscoverError::NotJson(e),
    })?;
    if let Some(state) = status.backend_state {
        let fix = match state.as_str() {
            "NeedsLogin" => Some("run `tailscale up` and log in"),
            "NeedsMachineAuth" => Some("approve this machine in the Tailscale admin console"),
            "Stopped" => Some("run `tailscale up`"),
            "NoState" => Some("start tailscaled (e.g. `systemctl start tailscaled`)"),
            _ => None,
        };
        if let Some(fix) = fix {
            return Err(DiscoverError::NotConnected { state, fix });
        }
    }
    let mut peers: Vec<Peer> = status
        .peer
        .unwrap_or_default()
        .into_values()
        .map(|p| Peer {
            hostname: p.host_name,
            dns_name: p.dns_name.trim_end_matches('.').to_owned(),
            ips: p.tailscale_ips.unwrap_or_default(),
            online: p.online,
            os: p.os,
        })
        .collect();
    peers.sort_by(|a, b| (&a.hostname, &a.dns_name).cmp(&(&b.hostname, &b.dns_name)));
    Ok(peers)
}

/// The longest name the collector's config accepts.
const MAX_NAME: usize = 64;

/// A name the collector's config accepts for this peer: lowercase `[a-z0-9._-]`, starting and
/// ending with a letter or digit, at most 64 characters. Made from `HostName`, or from the first
/// label of `DNSName` when nothing of the host name survives, or `peer` as a last resort.
///
/// Apostrophes are dropped rather than turned into dashes (`Alice's MacBook Pro` becomes
/// `alices-macbook-pro`, as MagicDNS names it); any other run of unsafe characters becomes one
/// dash. Host names are not unique in a tailnet, so [`render`] numbers repeats.
pub fn agent_name(peer: &Peer) -> String {
    let first_label = peer.dns_name.split('.').next().unwrap_or_default();
    [sanitize(&peer.hostname), sanitize(first_label)]
        .into_iter()
        .find(|name| !name.is_empty())
        .unwrap_or_else(|| "peer".to_owned())
}

fn sanitize(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars().map(|c| c.to_ascii_lowercase()) {
        match c {
            'a'..='z' | '0'..='9' | '.' | '_' | '-' => out.push(c),
            '\'' | '\u{2019}' => {}
            _ if out.ends_with('-') => {}
            _ => out.push('-'),
        }
    }
    let trimmed = out.trim_matches(|c: char| !c.is_ascii_alphanumeric());
    // Every character left is ASCII, so cutting at a byte index is safe.
    let cut = &trimmed[..trimmed.len().min(MAX_NAME)];
    cut.trim_end_matches(|c: char| !c.is_ascii_alphanumeric())
        .to_owned()
}

/// One `[[agents]]` stanza of the collector's config, ending in a newline. The token file is
/// `/etc/fleetdeck/agents/NAME.token`: the operator copies the agent's token there.
pub fn stanza(name: &str, url: &str) -> String {
    stanza_with(name, url, &format!("/etc/fleetdeck/agents/{name}.token"))
}

/// One `[[agents]]` stanza with its token file at `token_file`.
pub fn stanza_with(name: &str, url: &str, token_file: &str) -> String {
    format!(
        "[[agents]]\nname = {}\nurl = {}\ntoken_file = {}\n",
        toml_string(name),
        toml_string(url),
        toml_string(token_file),
    )
}

/// The agent URL for a peer: its first IPv4 tailnet address (shorter, and reachable from nodes
/// without IPv6), else its first address, bracketed if IPv6. `None` for a peer with no address.
fn agent_url(peer: &Peer, port: u16) -> Option<String> {
    let ip = peer
        .ips
        .iter()
        .find(|ip| ip.is_ipv4())
        .or_else(|| peer.ips.first())?;
    Some(format!("http://{}", SocketAddr::new(*ip, port)))
}

/// Asks every online peer's `GET http://IP:PORT/healthz` at once, each bounded by `timeout`, and
/// returns one [`Found`] per online peer that has an address, in the order of `peers`. Offline
/// peers are not asked: they would only cost a timeout each.
pub async fn probe(
    client: &reqwest::Client,
    peers: &[Peer],
    port: u16,
    timeout: Duration,
) -> Vec<Found> {
    let checks = peers.iter().filter(|p| p.online).filter_map(|peer| {
        let url = agent_url(peer, port)?;
        Some(async move {
            let problem = healthz_problem(client, &url, timeout).await;
            Found {
                peer: peer.clone(),
                url,
                answered: problem.is_none(),
                problem,
            }
        })
    });
    futures_util::future::join_all(checks).await
}

/// `None` when `{url}/healthz` answers like an agent, else what happened instead.
async fn healthz_problem(client: &reqwest::Client, url: &str, timeout: Duration) -> Option<String> {
    let response = match client
        .get(format!("{url}/healthz"))
        .timeout(timeout)
        .send()
        .await
    {
        Ok(response) => response,
        Err(e) => return Some(request_problem(&e, timeout)),
    };
    let status = response.status();
    if status != reqwest::StatusCode::OK {
        return Some(format!("answered {status}"));
    }
    match response.text().await {
        Ok(body) if body.trim() == "ok" => None,
        Ok(_) => Some(format!(
            "answered {status} but not `ok`: not a Fleetdeck agent"
        )),
        Err(e) => Some(request_problem(&e, timeout)),
    }
}

fn request_problem(e: &reqwest::Error, timeout: Duration) -> String {
    if e.is_timeout() {
        return format!("no answer within {}", humantime::format_duration(timeout));
    }
    // reqwest's own message names the URL, which the listing already shows; the innermost cause
    // ("Connection refused (os error 111)") is the useful part.
    let mut cause: &dyn std::error::Error = e;
    while let Some(next) = cause.source() {
        cause = next;
    }
    if e.is_connect() {
        format!("cannot connect ({cause})")
    } else {
        format!("request failed ({cause})")
    }
}

/// The text `discover` prints: a `[[agents]]` stanza for every peer that answered (names made
/// unique by numbering repeats: the config refuses duplicates), then, as comments, the online
/// peers that did not answer and why, so the operator sees what was tried. Offline peers were
/// never probed and are not listed.
pub fn render(found: &[Found]) -> String {
    let (answered, silent): (Vec<&Found>, Vec<&Found>) = found.iter().partition(|f| f.answered);
    let mut out = String::new();
    if answered.is_empty() {
        out.push_str("# No Fleetdeck agent answered GET /healthz on this tailnet.\n");
    } else {
        out.push_str(&format!(
            "# {} of {} online peers run a Fleetdeck agent. Paste these stanzas into the collector's\n\
             # config and copy each agent's token (its token_file, e.g. /etc/fleetdeck/agent.token)\n\
             # to the token_file named here, mode 0600.\n",
            answered.len(),
            found.len(),
        ));
        for (name, f) in named(found) {
            out.push('\n');
            out.push_str(&stanza(&name, &f.url));
        }
    }
    if found.is_empty() {
        out.push_str(
            "# No online peers to ask; `tailscale status` lists this tailnet's machines.\n",
        );
    } else if !silent.is_empty() {
        out.push_str(
            "\n# Online peers that did not answer (no agent, another --port, or a firewall):\n",
        );
        for f in silent {
            let line = format!(
                "#   {} ({}, {}) {}: {}",
                f.peer.hostname,
                f.peer.dns_name,
                f.peer.os,
                f.url,
                f.problem.as_deref().unwrap_or("did not answer"),
            );
            // A host name or an error message must not end the comment and inject config lines.
            out.extend(line.chars().map(|c| if c.is_control() { ' ' } else { c }));
            out.push('\n');
        }
    }
    out
}

/// The peers that answered, each with the name its stanza gets: [`agent_name`], repeats numbered
/// (`web-2`), as [`render`] prints them and `discover --add` joins them.
pub fn named(found: &[Found]) -> Vec<(String, &Found)> {
    let mut used = HashSet::new();
    let mut out = Vec::new();
    for f in found.iter().filter(|f| f.answered) {
        let base = agent_name(&f.peer);
        let (mut name, mut n) = (base.clone(), 1);
        while used.contains(&name) {
            n += 1;
            name = numbered(&base, n);
        }
        used.insert(name.clone());
        out.push((name, f));
    }
    out
}

/// `base-n`, shortened so the result stays within the config's name limit.
fn numbered(base: &str, n: u32) -> String {
    let suffix = format!("-{n}");
    let keep = base.len().min(MAX_NAME - suffix.len());
    let stem = base[..keep].trim_end_matches(|c: char| !c.is_ascii_alphanumeric());
    format!("{stem}{suffix}")
}

/// How long `tailscale status --json` may take: it asks the local tailscaled only, so more than
/// this means tailscaled is stuck, and saying so beats hanging.
const CLI_TIMEOUT: Duration = Duration::from_secs(15);

/// The whole command: runs `tailscale status --json`, probes the online peers on `port` with
/// `timeout` each, and returns the text to print (see [`render`]).
pub async fn run(port: u16, timeout: Duration) -> anyhow::Result<String> {
    Ok(render(&find(port, timeout).await?))
}

/// Runs `tailscale status --json` and probes the online peers on `port`, `timeout` each.
pub async fn find(port: u16, timeout: Duration) -> anyhow::Result<Vec<Found>> {
    let json = tailscale_status_json("tailscale").await?;
    let peers = parse_status(&json)?;
    // Tailnet addresses are reached directly: an HTTP(S)_PROXY meant for the internet must not
    // carry these requests (it could not reach 100.x addresses anyway).
    let client = reqwest::Client::builder()
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .context("cannot set up the HTTP client")?;
    Ok(probe(&client, &peers, port, timeout).await)
}

/// Runs `{program} status --json` and returns its output; `program` is a parameter so tests can
/// name a CLI that does not exist.
async fn tailscale_status_json(program: &str) -> anyhow::Result<String> {
    let child = tokio::process::Command::new(program)
        .args(["status", "--json"])
        .kill_on_drop(true)
        .output();
    let output = match tokio::time::timeout(CLI_TIMEOUT, child).await {
        Err(_) => anyhow::bail!(
            "`tailscale status --json` did not finish within {}; is tailscaled stuck? try `tailscale status`",
            humantime::format_duration(CLI_TIMEOUT)
        ),
        Ok(Err(e)) if e.kind() == std::io::ErrorKind::NotFound => {
            anyhow::bail!("the tailscale CLI was not found; install Tailscale and log in")
        }
        Ok(Err(e)) => anyhow::bail!("cannot run `tailscale status --json` ({e})"),
        Ok(Ok(output)) => output,
    };
    if !output.status.success() {
        anyhow::bail!(
            "`tailscale status --json` failed ({}): {}; is Tailscale running? try `tailscale status`",
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    String::from_utf8(output.stdout).map_err(|_| {
        anyhow::anyhow!(
            "`tailscale status --json` printed text that is not UTF-8; try `tailscale status`"
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const STATUS: &str = include_str!("../tests/fixtures/tailscale-status.json");
    const EMPTY: &str = include_str!("../tests/fixtures/tailscale-status-empty.json");

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("test address")
    }

    fn peer(hostname: &str, dns_name: &str) -> Peer {
        Peer {
            hostname: hostname.to_owned(),
            dns_name: dns_name.to_owned(),
            ips: vec![ip("100.101.1.2")],
            online: true,
            os: "linux".to_owned(),
        }
    }

    #[test]
    fn parses_the_fixture() {
        let peers = parse_status(STATUS).expect("fixture parses");
        let summary: Vec<(&str, &str, bool, &str)> = peers
            .iter()
            .map(|p| {
                (
                    p.hostname.as_str(),
                    p.dns_name.as_str(),
                    p.online,
                    p.os.as_str(),
                )
            })
            .collect();
        assert_eq!(
            summary,
            vec![
                (
                    "Alice's MacBook Pro",
                    "alices-macbook-pro.tail1a2b3c.ts.net",
                    true,
                    "macOS"
                ),
                (
                    "Build-Runner",
                    "build-runner.tail1a2b3c.ts.net",
                    true,
                    "linux"
                ),
                ("db-backup", "db-backup.tail1a2b3c.ts.net", false, "linux"),
                ("vm-1", "vm-1.tail1a2b3c.ts.net", true, "linux"),
                ("vm-2", "vm-2.tail1a2b3c.ts.net", true, "linux"),
            ]
        );
        assert!(
            peers.iter().all(|p| p.hostname != "collector"),
            "Self is not a peer"
        );
        let vm1 = &peers[3];
        assert_eq!(
            vm1.ips,
            vec![ip("100.101.1.2"), ip("fd7a:115c:a1e0::6a01:102")]
        );
        let runner = &peers[1];
        assert_eq!(
            runner.ips,
            vec![ip("fd7a:115c:a1e0::6a01:109"), ip("100.101.1.9")]
        );
    }

    #[test]
    fn empty_tailnet_is_no_peers() {
        assert_eq!(parse_status(EMPTY).expect("fixture parses"), vec![]);
        for json in [
            r#"{"BackendState":"Running","Peer":null}"#,
            r#"{"BackendState":"Running"}"#,
            r#"{"Peer":{}}"#,
            r#"{}"#,
        ] {
            assert_eq!(parse_status(json).expect(json), vec![], "{json}");
        }
    }

    /// One line per case: a `Peer` map entry, and what it parses to.
    #[test]
    fn peer_entries() {
        /// HostName, DNSName, TailscaleIPs, Online, OS.
        type Want = (
            &'static str,
            &'static str,
            &'static [&'static str],
            bool,
            &'static str,
        );
        #[rustfmt::skip]
        let cases: &[(&str, Want)] = &[
            (r#"{"HostName":"vm-1","DNSName":"vm-1.ts.net.","TailscaleIPs":["100.64.0.1"],"Online":true,"OS":"linux"}"#, ("vm-1", "vm-1.ts.net", &["100.64.0.1"], true, "linux")),
            (r#"{"HostName":"vm-1","DNSName":"vm-1.ts.net","TailscaleIPs":["100.64.0.1"],"Online":false,"OS":"linux","Future":{"x":1}}"#, ("vm-1", "vm-1.ts.net", &["100.64.0.1"], false, "linux")),
            (r#"{"HostName":"v6","TailscaleIPs":["fd7a:115c:a1e0::1"]}"#, ("v6", "", &["fd7a:115c:a1e0::1"], false, "")),
            (r#"{"HostName":"noips","TailscaleIPs":null,"Online":true}"#, ("noips", "", &[], true, "")),
            (r#"{"DNSName":"only-dns.ts.net."}"#, ("", "only-dns.ts.net", &[], false, "")),
        ];
        for (entry, (hostname, dns_name, ips, online, os)) in cases {
            let json = format!(r#"{{"BackendState":"Running","Peer":{{"nodekey:1":{entry}}}}}"#);
            let peers = parse_status(&json).expect(entry);
            let want = Peer {
                hostname: hostname.to_string(),
                dns_name: dns_name.to_string(),
                ips: ips.iter().map(|s| ip(s)).collect(),
                online: *online,
                os: os.to_string(),
            };
            assert_eq!(peers, vec![want], "{entry}");
        }
    }

    #[test]
    fn sorted_by_hostname_then_dns_name() {
        let json = r#"{"Peer":{
            "k1":{"HostName":"b","DNSName":"b.ts.net."},
            "k2":{"HostName":"a","DNSName":"a-1.ts.net."},
            "k3":{"HostName":"a","DNSName":"a.ts.net."}}}"#;
        let names: Vec<String> = parse_status(json)
            .expect("parses")
            .into_iter()
            .map(|p| p.dns_name)
            .collect();
        assert_eq!(names, ["a-1.ts.net", "a.ts.net", "b.ts.net"]);
    }

    /// One line per case: input, and a fragment the error message must contain.
    #[test]
    fn errors_say_what_to_do() {
        for (json, want) in [
            ("", "is Tailscale running? try `tailscale status`"),
            (
                "failed to connect to local tailscaled",
                "did not print JSON",
            ),
            ("{\"Peer\":", "did not print JSON"),
            ("[1, 2]", "unexpected shape"),
            (
                r#"{"Peer":{"k":{"TailscaleIPs":["not-an-ip"]}}}"#,
                "unexpected shape",
            ),
            (r#"{"Peer":{"k":{"Online":"yes"}}}"#, "unexpected shape"),
            (
                r#"{"BackendState":"NeedsLogin","Peer":null}"#,
                "run `tailscale up` and log in",
            ),
            (
                r#"{"BackendState":"Stopped"}"#,
                "BackendState \"Stopped\"); run `tailscale up`",
            ),
            (r#"{"BackendState":"NeedsMachineAuth"}"#, "admin console"),
            (r#"{"BackendState":"NoState"}"#, "start tailscaled"),
        ] {
            let err = parse_status(json).expect_err(json).to_string();
            assert!(err.contains(want), "{json:?}: {err}");
        }
        assert!(parse_status(r#"{"BackendState":"Starting"}"#).is_ok());
    }

    /// One line per case: HostName, DNSName, expected name.
    #[test]
    fn agent_names() {
        let long = "a".repeat(70);
        let long_dashes = format!("{}-{}", "a".repeat(63), "b".repeat(5));
        for (hostname, dns_name, want) in [
            ("vm-1", "vm-1.tail1a2b3c.ts.net", "vm-1"),
            ("VM-1", "vm-1.tail1a2b3c.ts.net", "vm-1"),
            (
                "Alice's MacBook Pro",
                "alices-macbook-pro.ts.net",
                "alices-macbook-pro",
            ),
            ("Alice\u{2019}s iPhone", "", "alices-iphone"),
            ("db_backup.prod", "x.ts.net", "db_backup.prod"),
            ("  web  server  ", "", "web-server"),
            ("web / api", "", "web-api"),
            ("-edge-", "", "edge"),
            (".hidden", "", "hidden"),
            ("..", "dots.ts.net", "dots"),
            ("", "vm-7.tail1a2b3c.ts.net", "vm-7"),
            ("", "Fancy_Box.ts.net", "fancy_box"),
            ("Büro-PC", "buro-pc.ts.net", "b-ro-pc"),
            ("日本", "nihon.ts.net", "nihon"),
            ("", "", "peer"),
            ("???", "", "peer"),
            (long.as_str(), "", &long[..64]),
            (long_dashes.as_str(), "", &long_dashes[..63]),
        ] {
            assert_eq!(
                agent_name(&peer(hostname, dns_name)),
                want,
                "{hostname:?} {dns_name:?}"
            );
        }
    }

    #[test]
    fn stanza_text() {
        assert_eq!(
            stanza("vm-1", "http://100.101.1.2:7070"),
            "[[agents]]\nname = \"vm-1\"\nurl = \"http://100.101.1.2:7070\"\ntoken_file = \"/etc/fleetdeck/agents/vm-1.token\"\n"
        );
        assert_eq!(
            stanza("v6", "http://[fd7a:115c:a1e0::1]:7070"),
            "[[agents]]\nname = \"v6\"\nurl = \"http://[fd7a:115c:a1e0::1]:7070\"\ntoken_file = \"/etc/fleetdeck/agents/v6.token\"\n"
        );
        // Hand-passed values that would break TOML are escaped, not pasted raw.
        assert_eq!(
            stanza("a\"b", "http://x\\y\n"),
            "[[agents]]\nname = \"a\\\"b\"\nurl = \"http://x\\\\y\\u000A\"\ntoken_file = \"/etc/fleetdeck/agents/a\\\"b.token\"\n"
        );
    }

    #[test]
    fn agent_url_prefers_ipv4_and_brackets_ipv6() {
        for (ips, want) in [
            (
                vec!["100.101.1.2", "fd7a:115c:a1e0::2"],
                Some("http://100.101.1.2:7070"),
            ),
            (
                vec!["fd7a:115c:a1e0::9", "100.101.1.9"],
                Some("http://100.101.1.9:7070"),
            ),
            (
                vec!["fd7a:115c:a1e0::9"],
                Some("http://[fd7a:115c:a1e0::9]:7070"),
            ),
            (vec![], None),
        ] {
            let p = Peer {
                ips: ips.iter().map(|s| ip(s)).collect(),
                ..peer("x", "")
            };
            assert_eq!(agent_url(&p, 7070).as_deref(), want, "{ips:?}");
        }
    }

    fn found(hostname: &str, url: &str, problem: Option<&str>) -> Found {
        Found {
            peer: Peer {
                dns_name: format!("{}.ts.net", hostname.to_lowercase()),
                ..peer(hostname, "")
            },
            url: url.to_owned(),
            answered: problem.is_none(),
            problem: problem.map(str::to_owned),
        }
    }

    #[test]
    fn render_stanzas_then_silent_peers() {
        let text = render(&[
            found("vm-1", "http://100.101.1.2:7070", None),
            found(
                "laptop",
                "http://100.88.14.3:7070",
                Some("cannot connect (refused)"),
            ),
            found("vm-2", "http://100.101.1.3:7070", None),
        ]);
        let want = "\
# 2 of 3 online peers run a Fleetdeck agent. Paste these stanzas into the collector's
# config and copy each agent's token (its token_file, e.g. /etc/fleetdeck/agent.token)
# to the token_file named here, mode 0600.

[[agents]]
name = \"vm-1\"
url = \"http://100.101.1.2:7070\"
token_file = \"/etc/fleetdeck/agents/vm-1.token\"

[[agents]]
name = \"vm-2\"
url = \"http://100.101.1.3:7070\"
token_file = \"/etc/fleetdeck/agents/vm-2.token\"

# Online peers that did not answer (no agent, another --port, or a firewall):
#   laptop (laptop.ts.net, linux) http://100.88.14.3:7070: cannot connect (refused)
";
        assert_eq!(text, want);
    }

    #[test]
    fn render_numbers_repeated_names() {
        let text = render(&[
            found("pi", "http://100.64.0.1:7070", None),
            found("PI", "http://100.64.0.2:7070", None),
            found("pi", "http://100.64.0.3:7070", None),
        ]);
        let names: Vec<&str> = text.lines().filter(|l| l.starts_with("name = ")).collect();
        assert_eq!(
            names,
            ["name = \"pi\"", "name = \"pi-2\"", "name = \"pi-3\""]
        );
        assert_eq!(
            numbered(&"a".repeat(64), 2),
            format!("{}-2", "a".repeat(62))
        );
    }

    #[test]
    fn render_without_agents() {
        assert_eq!(
            render(&[]),
            "# No Fleetdeck agent answered GET /healthz on this tailnet.\n\
             # No online peers to ask; `tailscale status` lists this tailnet's machines.\n"
        );
        let text = render(&[found(
            "evil\n[[agents]]",
            "http://100.64.0.1:7070",
            Some("x\ny"),
        )]);
        assert!(text.starts_with("# No Fleetdeck agent answered"), "{text}");
        assert!(
            text.lines().all(|l| l.is_empty() || l.starts_with('#')),
            "only comments when nothing answered: {text}"
        );
    }

    #[test]
    fn parsed_fixture_names_are_config_safe() {
        for p in parse_status(STATUS).expect("fixture parses") {
            let name = agent_name(&p);
            assert!(
                (1..=MAX_NAME).contains(&name.len())
                    && name.starts_with(|c: char| c.is_ascii_alphanumeric())
                    && name
                        .chars()
                        .all(|c| matches!(c, 'a'..='z' | '0'..='9' | '.' | '_' | '-')),
                "{name:?}"
            );
        }
    }

    #[tokio::test]
    async fn missing_cli_says_install_tailscale() {
        let err = tailscale_status_json("fleetdeck-test-no-such-tailscale")
            .await
            .expect_err("no such program");
        assert_eq!(
            err.to_string(),
            "the tailscale CLI was not found; install Tailscale and log in"
        );
    }

    #[tokio::test]
    async fn failing_cli_says_check_tailscale() {
        // `false` ignores its arguments and exits 1, like `tailscale status` without tailscaled.
        let err = tailscale_status_json("false")
            .await
            .expect_err("exit status 1")
            .to_string();
        assert!(err.contains("`tailscale status --json` failed"), "{err}");
        assert!(err.contains("try `tailscale status`"), "{err}");
    }
}
