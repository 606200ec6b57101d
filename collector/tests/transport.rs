//! Listeners and transport on real parts (issue 13, item 8): a Tailscale-range address that is not
//! on `tailscale0` is refused (a namespace with dummy interfaces), an agent serving HTTPS with a
//! certificate made here is polled through its SHA-256 pin (and a wrong pin fails naming both
//! fingerprints), plain HTTP outside loopback and the tailnet is warned once, and the database's
//! files are mode 0600.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use common::*;
use fleetdeck_daemon::transport::pin::Fingerprint;

/// A network namespace made for one test, removed on drop.
struct Netns(String);

impl Netns {
    fn new() -> Self {
        let name = unique("ns");
        run("ip", &["netns", "add", &name]);
        Self(name)
    }

    fn ip(&self, args: &[&str]) {
        let mut all = vec!["-n", &self.0];
        all.extend_from_slice(args);
        run("ip", &all);
    }

    /// Two interfaces `a` and `b` (a veth pair: this kernel has no dummy links), holding
    /// `a_addr` and `b_addr` (with their prefixes), up.
    fn pair(&self, (a, a_addr): (&str, &str), (b, b_addr): (&str, &str)) {
        self.ip(&["link", "add", a, "type", "veth", "peer", "name", b]);
        for (name, addr) in [(a, a_addr), (b, b_addr)] {
            self.ip(&["addr", "add", addr, "dev", name]);
            self.ip(&["link", "set", name, "up"]);
        }
    }

    fn command(&self, program: &str) -> Command {
        let mut cmd = Command::new("nsenter");
        cmd.arg(format!("--net=/run/netns/{}", self.0)).arg(program);
        cmd
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.0]).output();
    }
}

/// Waits up to `limit` for a line of `daemon`'s log that contains `needle`; all lines so far.
fn wait_log(daemon: &mut Daemon, needle: &str, limit: Duration) -> String {
    let deadline = Instant::now() + limit;
    loop {
        let logs = daemon.logs().join("\n");
        if logs.contains(needle) {
            return logs;
        }
        assert!(
            Instant::now() < deadline,
            "no {needle:?} in the log within {limit:?}:\n{logs}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn a_tailscale_range_address_must_be_on_tailscale0() {
    let ns = Netns::new();
    ns.ip(&["link", "set", "lo", "up"]);
    ns.pair(("tailscale0", "100.70.0.2/32"), ("cgnat0", "100.70.0.1/32"));
    let work = Workdir::new();

    // Carrier-grade NAT space on another interface: refused, naming tailscale0 and the flag.
    let config = work.write(
        "collector.toml",
        "listen = [\"100.70.0.1:0\"]\ndatabase = \"refused.db\"\n",
    );
    let out = ns
        .command(collector_bin())
        .arg("--config")
        .arg(&config)
        .output()
        .expect("run the collector in the namespace");
    save_log("fleetdeck-collector-cgnat", Some(&out.stdout), &out.stderr);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("refusing to listen on 100.70.0.1:0")
            && stderr.contains("tailscale0")
            && stderr.contains("--allow-public-bind"),
        "{stderr}"
    );
    assert!(!work.path("refused.db").exists());

    // Forced, it listens, with a loud warning.
    let mut forced = Daemon::spawn(
        ns.command(collector_bin())
            .arg("--config")
            .arg(&config)
            .arg("--allow-public-bind"),
        "fleetdeck-collector-cgnat-forced",
        RUST_LOG,
    );
    assert_eq!(forced.addr.ip().to_string(), "100.70.0.1");
    let logs = forced.logs().join("\n");
    assert!(
        logs.contains("CARRIER-GRADE NAT ADDRESS NOT ON tailscale0"),
        "{logs}"
    );
    forced.stop();

    // The same range on tailscale0: accepted without the flag, and it answers.
    let config = work.write(
        "collector2.toml",
        "listen = [\"100.70.0.2:0\"]\ndatabase = \"accepted.db\"\n",
    );
    let mut accepted = Daemon::spawn(
        ns.command(collector_bin()).arg("--config").arg(&config),
        "fleetdeck-collector-tailscale0",
        RUST_LOG,
    );
    assert_eq!(accepted.addr.ip().to_string(), "100.70.0.2");
    let health = ns
        .command("curl")
        .args(["-sf", &accepted.url("/healthz")])
        .output()
        .expect("curl in the namespace");
    assert_eq!(String::from_utf8_lossy(&health.stdout).trim(), "ok");
    accepted.stop();
}

/// A self-signed certificate for 127.0.0.1 written into `work` (key 0600); its fingerprint.
fn certificate(work: &Workdir, name: &str) -> Fingerprint {
    let made = rcgen::generate_simple_self_signed(vec!["127.0.0.1".into(), "localhost".into()])
        .expect("make a certificate");
    work.write(&format!("{name}.crt"), &made.cert.pem());
    work.secret(&format!("{name}.key"), &made.key_pair.serialize_pem());
    Fingerprint::of_der(made.cert.der())
}

/// The host `name` of the collector's fleet, once `ready` holds for it.
async fn host_where(
    api: &Api,
    name: &str,
    what: &str,
    ready: impl Fn(&serde_json::Value) -> bool,
) -> serde_json::Value {
    wait_for(what, Duration::from_secs(20), || async {
        let fleet = api.json("/v1/fleet").await;
        fleet["hosts"]
            .as_array()?
            .iter()
            .find(|h| h["name"] == name && ready(h))
            .cloned()
    })
    .await
}

#[tokio::test]
async fn an_agent_serving_https_is_polled_through_its_pin() {
    require_testbed();
    let work = Workdir::new();
    let fingerprint = certificate(&work, "agent");
    let config = agent_config(&work, "agent", "127.0.0.1:0", "");
    let text = std::fs::read_to_string(&config).expect("agent config");
    std::fs::write(
        &config,
        format!("tls_cert = \"agent.crt\"\ntls_key = \"agent.key\"\n{text}"),
    )
    .expect("write agent config");
    let mut agent = start_agent(&config);
    wait_log(
        &mut agent,
        &fingerprint.to_string(),
        Duration::from_secs(10),
    );
    // Plain HTTP to an HTTPS port gets nothing useful.
    let plain = reqwest::get(agent.url("/healthz")).await;
    assert!(plain.map(|r| !r.status().is_success()).unwrap_or(true));

    let wrong = Fingerprint::of_der(b"some other certificate");
    let addr = agent.addr;
    secret(AGENT_TOKEN);
    let collector_toml = collector_config(
        &work,
        &format!(
            "[[agents]]\nname = \"pinned\"\nurl = \"https://{addr}\"\ntoken_file = \"agent.token\"\ntls_fingerprint = \"{fingerprint}\"\n\
             [[agents]]\nname = \"mispinned\"\nurl = \"https://{addr}\"\ntoken_file = \"agent.token\"\ntls_fingerprint = \"{wrong}\"\n\
             [[agents]]\nname = \"unpinned\"\nurl = \"https://{addr}\"\ntoken_file = \"agent.token\"\n"
        ),
    );
    let key = create_key(&collector_toml, "viewer", "viewer");
    let mut collector = start_collector(&collector_toml);
    let api = Api::new(&collector, &key);

    let pinned = host_where(&api, "pinned", "the pinned agent up", |h| {
        h["status"] == "up"
    })
    .await;
    assert!(pinned["hostname"].is_string(), "{pinned}");

    let mispinned = host_where(&api, "mispinned", "the mispinned agent's error", |h| {
        h["error"].is_string()
    })
    .await;
    let error = mispinned["error"].as_str().unwrap_or_default();
    assert!(
        error.contains("certificate pin mismatch")
            && error.contains(&fingerprint.to_string())
            && error.contains(&wrong.to_string()),
        "{error}"
    );
    assert_ne!(mispinned["status"], "up");

    // Without a pin, a self-signed certificate is not trusted.
    let unpinned = host_where(&api, "unpinned", "the unpinned agent's error", |h| {
        h["error"].is_string()
    })
    .await;
    assert_ne!(unpinned["status"], "up", "{unpinned}");

    // An HTTPS agent on loopback earns no plain-HTTP warning.
    let logs = collector.logs().join("\n");
    assert!(!logs.contains("PLAIN HTTP"), "{logs}");
    collector.stop();
    agent.stop();
}

#[tokio::test]
async fn plain_http_outside_the_tailnet_is_warned_once() {
    require_testbed();
    testbed_net("up");
    let work = Workdir::new();
    // 10.99.0.1 is the test bed's private link to its namespace host: neither loopback nor tailnet.
    let config = agent_config(&work, "agent", "10.99.0.1:0", "");
    let mut far = Daemon::spawn(
        Command::new(agent_bin())
            .arg("--config")
            .arg(&config)
            .arg("--allow-public-bind"),
        "fleetdeck-agent-10.99.0.1",
        RUST_LOG,
    );
    let near = start_agent(&agent_config(&work, "near", "127.0.0.1:0", ""));
    let collector_toml = collector_config(
        &work,
        &format!(
            "{}{}",
            agent_entry("agent", far.addr),
            agent_entry("near", near.addr)
        ),
    );
    let key = create_key(&collector_toml, "viewer", "viewer");
    let mut collector = start_collector(&collector_toml);
    let api = Api::new(&collector, &key);
    host_where(&api, "agent", "the far agent up", |h| h["status"] == "up").await;
    // A few more polls of both (1 s apart), then count.
    let deadline = Instant::now() + Duration::from_secs(15);
    while collector
        .logs()
        .iter()
        .filter(|l| l.contains("poll cycle"))
        .count()
        < 4
    {
        assert!(Instant::now() < deadline, "fewer than 4 poll cycles");
        std::thread::sleep(Duration::from_millis(100));
    }
    let logs = collector.logs().to_vec();
    let warnings: Vec<&String> = logs.iter().filter(|l| l.contains("PLAIN HTTP")).collect();
    assert_eq!(warnings.len(), 1, "{warnings:#?}");
    assert!(
        warnings[0].contains(&format!("http://{}", far.addr)) && warnings[0].contains("\"agent\""),
        "{}",
        warnings[0]
    );
    collector.stop();
    far.stop();
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .permissions()
        .mode()
        & 0o777
}

#[test]
fn the_database_files_are_private() {
    if on_postgres() {
        eprintln!("skipped on PostgreSQL: the modes of SQLite's files");
        return;
    }
    let work = Workdir::new();
    // An older collector's database, readable by others, is made private too.
    std::fs::write(work.path("old.db"), b"").expect("old db");
    std::fs::set_permissions(work.path("old.db"), std::fs::Permissions::from_mode(0o644))
        .expect("chmod");
    for db in ["collector.db", "old.db"] {
        let config = collector_config(&work, "");
        let text = std::fs::read_to_string(&config)
            .expect("config")
            .replace("collector.db", db);
        std::fs::write(&config, text).expect("config");
        let mut collector = start_collector(&config);
        let files = ["", "-wal", "-shm"].map(|suffix| work.path(&format!("{db}{suffix}")));
        // The database opens after the listeners bind: wait for its files.
        let deadline = Instant::now() + Duration::from_secs(10);
        while !files.iter().all(|f| f.exists()) {
            assert!(Instant::now() < deadline, "{files:?} not all made");
            std::thread::sleep(Duration::from_millis(20));
        }
        for file in &files {
            assert_eq!(mode(file), 0o600, "{}", file.display());
        }
        collector.stop();
    }
}
