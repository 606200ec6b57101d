//! The desktop's client against a real collector serving HTTPS with a certificate made here
//! (issue 13, item 8): pinned by its SHA-256 it answers; a wrong pin fails naming both
//! fingerprints; an unpinned client does not trust the self-signed certificate.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

use common::*;
use fleetdeck_desktop_core::client::{plain_http_warning, Fingerprint};
use fleetdeck_testkit::{save_log, secret, Daemon};

/// A collector serving HTTPS on loopback with a fresh self-signed certificate; its fingerprint
/// and a viewer key.
fn https_collector(dir: &Path) -> (Daemon, Fingerprint, String) {
    let made = rcgen::generate_simple_self_signed(vec!["127.0.0.1".into(), "localhost".into()])
        .expect("make a certificate");
    std::fs::write(dir.join("tls.crt"), made.cert.pem()).expect("write cert");
    let key_pem = made.key_pair.serialize_pem();
    secret(&key_pem);
    std::fs::write(dir.join("tls.key"), key_pem).expect("write key");
    std::fs::set_permissions(dir.join("tls.key"), std::fs::Permissions::from_mode(0o600))
        .expect("chmod key");
    let config = dir.join("collector.toml");
    std::fs::write(
        &config,
        "listen = [\"127.0.0.1:0\"]\ndatabase = \"collector.db\"\ntls_cert = \"tls.crt\"\ntls_key = \"tls.key\"\n",
    )
    .expect("write config");
    let out = Command::new(collector_bin())
        .arg("--config")
        .arg(&config)
        .args(["keys", "create", "--name", "desk", "--role", "viewer"])
        .output()
        .expect("keys create");
    save_log("fleetdeck-collector-keys", None, &out.stderr);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let key = String::from_utf8_lossy(&out.stdout)
        .lines()
        .last()
        .expect("a key")
        .trim()
        .to_owned();
    secret(&key);
    let collector = Daemon::spawn(
        Command::new(collector_bin()).arg("--config").arg(&config),
        "fleetdeck-collector-https",
        "info",
    );
    (collector, Fingerprint::of_der(made.cert.der()), key)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pinned_collector_answers_and_a_wrong_pin_is_named() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (mut collector, fingerprint, key) = https_collector(dir.path());
    let url = format!("https://{}", collector.addr);

    let pinned =
        CollectorClient::new_pinned(&url, ApiKey::new(key.clone()), fingerprint).expect("client");
    assert_eq!(pinned.transport_warning(), None);
    let fleet = pinned.fleet().await.expect("the pinned collector answers");
    assert_eq!(fleet.hosts.len(), 0);

    let wrong = Fingerprint::of_der(b"another certificate");
    let mispinned =
        CollectorClient::new_pinned(&url, ApiKey::new(key.clone()), wrong).expect("client");
    let e = mispinned.fleet().await.expect_err("a wrong pin fails");
    assert_eq!(e.code, "unreachable", "{e:?}");
    assert!(
        e.message.contains("certificate pin mismatch")
            && e.message.contains(&fingerprint.to_string())
            && e.message.contains(&wrong.to_string()),
        "{}",
        e.message
    );
    assert!(!e.message.contains(&key), "the key leaked: {}", e.message);

    // A saved collector with a pin goes through the same path.
    let saved = CollectorClient::for_saved(
        &url,
        Some(
            &fingerprint
                .to_string()
                .to_uppercase()
                .replacen("SHA256", "sha256", 1),
        ),
        ApiKey::new(key.clone()),
    )
    .expect("client");
    saved.fleet().await.expect("the saved pin works");

    // Without a pin the self-signed certificate is not trusted.
    let unpinned = CollectorClient::new(&url, ApiKey::new(key.clone())).expect("client");
    let e = unpinned.fleet().await.expect_err("self-signed");
    assert_eq!(e.code, "unreachable", "{e:?}");

    // A pin on plain HTTP is a mistake the message explains.
    let e = CollectorClient::new_pinned(
        &format!("http://{}", collector.addr),
        ApiKey::new(key),
        fingerprint,
    )
    .expect_err("http with a pin");
    assert!(e.message.contains("https://"), "{}", e.message);
    collector.stop();
}

#[test]
fn plain_http_outside_the_tailnet_is_flagged() {
    for (url, warned) in [
        ("http://127.0.0.1:7080", false),
        ("http://100.64.0.5:7080", false),
        ("http://vm.tail1234.ts.net:7080", false),
        ("https://10.0.0.5:7080", false),
        ("http://10.0.0.5:7080", true),
        ("http://collector.example.com", true),
    ] {
        let client = CollectorClient::new(url, ApiKey::new("fdk_k".into())).expect("client");
        assert_eq!(client.transport_warning().is_some(), warned, "{url}");
        let parsed = fleetdeck_desktop_core::client::parse_collector_url(url).expect("url");
        assert_eq!(plain_http_warning(&parsed).is_some(), warned, "{url}");
    }
}
