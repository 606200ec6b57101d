//! agent/dist: the install script places binary, config and a fresh 0600 token, keeps them on a
//! re-run, and the installed agent starts with what it installed; the unit file is valid systemd.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::process::Command;

use common::*;

const DIST: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/dist");

fn install(root: &std::path::Path) -> String {
    let out = Command::new(format!("{DIST}/install.sh"))
        .arg(agent_bin())
        .env("FLEETDECK_ROOT", root)
        .output()
        .expect("run install.sh");
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "install.sh failed: {text}");
    text
}

fn mode(path: &std::path::Path) -> u32 {
    std::fs::metadata(path).expect("installed file").permissions().mode() & 0o7777
}

#[tokio::test]
async fn install_script_places_binary_config_and_private_token() {
    let root = tempfile::tempdir().expect("tempdir");
    let r = root.path();
    let said = install(r);
    assert!(said.contains("generated a new token"), "{said}");

    let bin = r.join("usr/local/bin/fleetdeck-agent");
    assert_eq!(mode(&bin), 0o755);
    assert_eq!(std::fs::read(&bin).expect("bin"), std::fs::read(agent_bin()).expect("built bin"));
    let token_path = r.join("etc/fleetdeck/agent.token");
    assert_eq!(mode(&token_path), 0o600, "the token is private from its creation");
    let token = std::fs::read_to_string(&token_path).expect("token");
    assert_eq!(token.len(), 64);
    assert!(token.chars().all(|c| c.is_ascii_hexdigit()), "{token}");
    assert!(!said.contains(&token), "install.sh must not print the token");
    let unit = std::fs::read_to_string(r.join("etc/systemd/system/fleetdeck-agent.service")).expect("unit");
    assert!(unit.contains("ExecStart=/usr/local/bin/fleetdeck-agent --config /etc/fleetdeck/agent.toml"));

    // A second run keeps the token and the (edited) config.
    let config_path = r.join("etc/fleetdeck/agent.toml");
    let config = std::fs::read_to_string(&config_path).expect("config");
    let edited = config
        .replace("listen = [\"127.0.0.1:7070\", \"tailscale\"]", "listen = [\"127.0.0.1:0\"]")
        .replace("token_file = \"/etc/fleetdeck/agent.token\"", "token_file = \"agent.token\"");
    assert_ne!(edited, config, "the example config has the documented listen and token_file lines");
    std::fs::write(&config_path, &edited).expect("edit config");
    let said = install(r);
    assert!(said.contains("keeping existing token"), "{said}");
    assert_eq!(std::fs::read_to_string(&token_path).expect("token"), token);
    assert_eq!(std::fs::read_to_string(&config_path).expect("config"), edited);

    // The installed example config (pointed at the temp paths) starts the installed agent.
    let agent = RunningAgent::start_with(Command::new(&bin).arg("--config").arg(&config_path));
    let resp = agent.client.get(agent.url("/v1/info")).bearer_auth(token.trim()).send().await.expect("info");
    assert_eq!(resp.status(), 200);
}

#[test]
fn unit_file_is_valid_for_systemd() {
    // systemd-analyze verify checks every directive; it wants ExecStart's binary to exist, so
    // verify a copy that runs /bin/true. It warns on stderr (exit 0) for unknown keys.
    let dir = tempfile::tempdir().expect("tempdir");
    let unit = std::fs::read_to_string(format!("{DIST}/fleetdeck-agent.service")).expect("unit");
    let copy = dir.path().join("fleetdeck-agent.service");
    std::fs::write(&copy, unit.replace("/usr/local/bin/fleetdeck-agent --config /etc/fleetdeck/agent.toml", "/bin/true"))
        .expect("copy");
    let out = Command::new("systemd-analyze").arg("verify").arg(&copy).output().expect("systemd-analyze");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success() && stderr.trim().is_empty(), "systemd-analyze verify: {stderr}");
}
