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
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "install.sh failed: {text}");
    text
}

fn mode(path: &std::path::Path) -> u32 {
    std::fs::metadata(path)
        .expect("installed file")
        .permissions()
        .mode()
        & 0o7777
}

#[tokio::test]
async fn install_script_places_binary_config_and_private_token() {
    let root = tempfile::tempdir().expect("tempdir");
    let r = root.path();
    let said = install(r);
    assert!(said.contains("generated a new token"), "{said}");

    let bin = r.join("usr/local/bin/fleetdeck-agent");
    assert_eq!(mode(&bin), 0o755);
    assert_eq!(
        std::fs::read(&bin).expect("bin"),
        std::fs::read(agent_bin()).expect("built bin")
    );
    let token_path = r.join("etc/fleetdeck/agent.token");
    assert_eq!(
        mode(&token_path),
        0o600,
        "the token is private from its creation"
    );
    let token = std::fs::read_to_string(&token_path).expect("token");
    assert_eq!(token.len(), 64);
    assert!(token.chars().all(|c| c.is_ascii_hexdigit()), "{token}");
    assert!(
        !said.contains(&token),
        "install.sh must not print the token"
    );
    let unit = std::fs::read_to_string(r.join("etc/systemd/system/fleetdeck-agent.service"))
        .expect("unit");
    assert!(unit
        .contains("ExecStart=/usr/local/bin/fleetdeck-agent --config /etc/fleetdeck/agent.toml"));

    // A second run keeps the token and the (edited) config.
    let config_path = r.join("etc/fleetdeck/agent.toml");
    let config = std::fs::read_to_string(&config_path).expect("config");
    let edited = config
        .replace(
            "listen = [\"127.0.0.1:7070\", \"tailscale\"]",
            "listen = [\"127.0.0.1:0\"]",
        )
        .replace(
            "token_file = \"/etc/fleetdeck/agent.token\"",
            "token_file = \"agent.token\"",
        );
    assert_ne!(
        edited, config,
        "the example config has the documented listen and token_file lines"
    );
    std::fs::write(&config_path, &edited).expect("edit config");
    let said = install(r);
    assert!(said.contains("keeping existing token"), "{said}");
    assert_eq!(std::fs::read_to_string(&token_path).expect("token"), token);
    assert_eq!(
        std::fs::read_to_string(&config_path).expect("config"),
        edited
    );

    // The installed example config (pointed at the temp paths) starts the installed agent.
    let agent = RunningAgent::start_with(Command::new(&bin).arg("--config").arg(&config_path));
    let resp = agent
        .client
        .get(agent.url("/v1/info"))
        .bearer_auth(token.trim())
        .send()
        .await
        .expect("info");
    assert_eq!(resp.status(), 200);
}

#[test]
fn unit_file_is_valid_for_systemd() {
    // systemd-analyze verify checks every directive; it wants ExecStart's binary to exist, so
    // verify a copy that runs /bin/true. It warns on stderr (exit 0) for unknown keys.
    let dir = tempfile::tempdir().expect("tempdir");
    let unit = std::fs::read_to_string(format!("{DIST}/fleetdeck-agent.service")).expect("unit");
    let copy = dir.path().join("fleetdeck-agent.service");
    std::fs::write(
        &copy,
        unit.replace(
            "/usr/local/bin/fleetdeck-agent --config /etc/fleetdeck/agent.toml",
            "/bin/true",
        ),
    )
    .expect("copy");
    let out = Command::new("systemd-analyze")
        .arg("verify")
        .arg(&copy)
        .output()
        .expect("systemd-analyze");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && stderr.trim().is_empty(),
        "systemd-analyze verify: {stderr}"
    );
}

#[tokio::test]
async fn agent_runs_under_the_hardened_unit() {
    // The shipped unit, run by the test bed's systemd (user manager, as root) with only ExecStart
    // and the bus address changed (the test bed's session bus lives under /tmp, which PrivateTmp
    // hides, so it is bound in; a real VM's system bus is in /run). ProtectKernelTunables and ProtectKernelLogs are left out: this
    // sandbox's /proc cannot be remounted for them (status 226/NAMESPACE); every other directive,
    // the syscall filter and capability bounds included, applies.
    require_testbed();
    // Not under /tmp: the unit has PrivateTmp.
    let work = std::path::PathBuf::from(format!("/var/lib/{}", unique("hardened")));
    std::fs::create_dir_all(&work).expect("work dir outside PrivateTmp");
    let token = work.join("agent.token");
    std::fs::write(&token, TOKEN).expect("token");
    std::fs::set_permissions(&token, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port();
    let unit_app = TransientUnit::start("hardened-app", &[], "while true; do sleep 1; done");
    std::fs::write(
        work.join("agent.toml"),
        format!(
            "listen = [\"127.0.0.1:{port}\"]\ntoken_file = \"agent.token\"\nsystemd = \"user\"\n\
             [[apps]]\nname = \"app\"\nsystemd_unit = \"{}\"\n",
            unit_app.name
        ),
    )
    .expect("config");
    let shipped = std::fs::read_to_string(format!("{DIST}/fleetdeck-agent.service")).expect("unit");
    let bus = std::env::var("DBUS_SESSION_BUS_ADDRESS").expect("bus");
    let unit_name = format!("{}.service", unique("fleetdeck-agent"));
    let unit_text = shipped
        .replace(
            "ExecStart=/usr/local/bin/fleetdeck-agent --config /etc/fleetdeck/agent.toml",
            &format!(
                "Environment=DBUS_SESSION_BUS_ADDRESS={bus}\nBindPaths={}\nExecStart={} --config {}/agent.toml",
                std::env::var("XDG_RUNTIME_DIR").expect("bus dir"),
                agent_bin(),
                work.display()
            ),
        )
        .replace("ProtectKernelTunables=yes\n", "")
        .replace("ProtectKernelLogs=yes\n", "");
    assert!(
        unit_text.contains("SystemCallFilter=@system-service") && unit_text.contains(agent_bin())
    );
    let unit_path = work.join(&unit_name);
    std::fs::write(&unit_path, unit_text).expect("unit file");
    run(
        "systemctl",
        &["--user", "link", unit_path.to_str().expect("utf-8 path")],
    );
    let _cleanup = LinkedUnit {
        name: unit_name.clone(),
        dir: work.clone(),
    };
    run("systemctl", &["--user", "start", &unit_name]);

    let client = reqwest::Client::new();
    let url = format!("http://127.0.0.1:{port}/v1/apps/app");
    let status: fleetdeck_proto::AppStatus = wait_for(
        "the hardened agent to answer",
        std::time::Duration::from_secs(10),
        || async {
            let resp = client.get(&url).bearer_auth(TOKEN).send().await.ok()?;
            resp.json().await.ok()
        },
    )
    .await;
    let active = run("systemctl", &["--user", "is-active", &unit_name]);
    assert_eq!(active.trim(), "active");
    assert_eq!(
        status.state,
        fleetdeck_proto::AppState::Running,
        "{status:?}"
    );
}

/// A unit linked into the user manager, stopped and unlinked (with its directory) when dropped.
struct LinkedUnit {
    name: String,
    dir: std::path::PathBuf,
}

impl Drop for LinkedUnit {
    fn drop(&mut self) {
        let _ = Command::new("systemctl")
            .args(["--user", "stop", &self.name])
            .output();
        let _ = Command::new("systemctl")
            .args(["--user", "disable", &self.name])
            .output();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
