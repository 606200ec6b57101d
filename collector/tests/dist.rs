//! collector/dist: the install script places binary, state directory, a first config and prints
//! an admin key once; the unit file is valid systemd, and the real collector runs under it on the
//! test bed's systemd, where `systemctl reload` (its `ExecReload=`) takes up a changed
//! collector.toml and a broken one keeps the running configuration.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::process::Command;
use std::time::Duration;

use common::*;

const DIST: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/dist");
const EXEC: &str =
    "ExecStart=/usr/local/bin/fleetdeck-collector --config /etc/fleetdeck/collector.toml";

fn install(root: &std::path::Path) -> String {
    install_with(root, &[collector_bin()])
}

fn install_with(root: &std::path::Path, args: &[&str]) -> String {
    install_script(
        std::path::Path::new(&format!("{DIST}/install.sh")),
        root,
        args,
    )
}

fn mode(path: &std::path::Path) -> u32 {
    std::fs::metadata(path)
        .expect("installed file")
        .permissions()
        .mode()
        & 0o7777
}

#[tokio::test]
async fn install_script_places_binary_state_and_config_and_prints_a_key_once() {
    let root = tempfile::tempdir().expect("tempdir");
    let r = root.path();
    let said = install(r);
    let key = said
        .lines()
        .skip_while(|l| !l.starts_with("admin API key"))
        .nth(1)
        .expect("the admin key after its heading")
        .trim()
        .to_owned();
    secret(&key);
    assert!(key.len() >= 32, "{said}");
    let bin = r.join("usr/local/bin/fleetdeck-collector");
    assert_eq!(mode(&bin), 0o755);
    assert_eq!(
        std::fs::read(&bin).expect("bin"),
        std::fs::read(collector_bin()).expect("built bin")
    );
    assert_eq!(mode(&r.join("var/lib/fleetdeck")), 0o700);
    assert_eq!(mode(&r.join("etc/fleetdeck/agents")), 0o700);
    let config_path = r.join("etc/fleetdeck/collector.toml");
    assert_eq!(mode(&config_path), 0o600);
    assert_eq!(mode(&r.join("var/lib/fleetdeck/collector.db")), 0o600);
    let unit = std::fs::read_to_string(r.join("etc/systemd/system/fleetdeck-collector.service"))
        .expect("unit");
    assert!(unit.contains(EXEC), "{unit}");

    // A second run keeps the (edited) config and the database, and prints no key.
    let config = std::fs::read_to_string(&config_path).expect("config");
    let edited = config.replace(
        "listen = [\"127.0.0.1:7080\", \"tailscale\"]",
        "listen = [\"127.0.0.1:0\"]",
    );
    assert_ne!(
        edited, config,
        "the first config has the documented listen line"
    );
    std::fs::write(&config_path, &edited).expect("edit config");
    let again = install(r);
    assert!(again.contains("keeping existing"), "{again}");
    assert!(!again.contains("admin API key"), "{again}");
    assert_eq!(
        std::fs::read_to_string(&config_path).expect("config"),
        edited
    );

    // The installed collector starts on what was installed, and the printed key works.
    let collector = Daemon::spawn(
        Command::new(&bin).arg("--config").arg(&config_path),
        "fleetdeck-collector-installed",
        RUST_LOG,
    );
    let resp = reqwest::Client::new()
        .get(collector.url("/v1/fleet"))
        .bearer_auth(&key)
        .send()
        .await
        .expect("fleet");
    assert_eq!(resp.status(), 200);
    drop(collector);

    // --uninstall removes the binary and the unit and keeps config, database and tokens, which
    // the agent's files beside them in /etc/fleetdeck share; --purge removes the collector's.
    let agent_token = r.join("etc/fleetdeck/agent.token");
    std::fs::write(&agent_token, "an agent on the same VM\n").expect("agent token");
    std::fs::write(r.join("etc/fleetdeck/agents/web1.token"), "t\n").expect("agent's token");
    let said = install_with(r, &["--uninstall"]);
    assert!(said.contains("kept"), "{said}");
    assert!(!bin.exists(), "the binary stays after --uninstall");
    assert!(!r
        .join("etc/systemd/system/fleetdeck-collector.service")
        .exists());
    assert_eq!(
        std::fs::read_to_string(&config_path).expect("config kept"),
        edited
    );
    assert!(r.join("var/lib/fleetdeck/collector.db").exists());
    assert!(r.join("etc/fleetdeck/agents/web1.token").exists());
    install_with(r, &["--uninstall", "--purge"]);
    for gone in [
        "etc/fleetdeck/collector.toml",
        "etc/fleetdeck/agents",
        "etc/fleetdeck/agents.d",
        "var/lib/fleetdeck",
    ] {
        assert!(!r.join(gone).exists(), "{gone} stays after --purge");
    }
    assert!(agent_token.exists(), "--purge removed the agent's token");
}

#[test]
fn unit_file_is_valid_for_systemd() {
    // systemd-analyze verify checks every directive; it wants ExecStart's binary to exist, so
    // verify a copy that runs /bin/true. It warns on stderr (exit 0) for unknown keys.
    let dir = tempfile::tempdir().expect("tempdir");
    let unit =
        std::fs::read_to_string(format!("{DIST}/fleetdeck-collector.service")).expect("unit");
    for hardening in [
        "User=fleetdeck",
        "StateDirectory=fleetdeck",
        "ProtectSystem=strict",
        "CapabilityBoundingSet=\n",
        "NoNewPrivileges=yes",
        "ExecReload=/bin/kill -HUP $MAINPID",
    ] {
        assert!(unit.contains(hardening), "the unit lost {hardening:?}");
    }
    let copy = dir.path().join("fleetdeck-collector.service");
    std::fs::write(&copy, unit.replace(EXEC, "ExecStart=/bin/true")).expect("copy");
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

/// What process `pid` wrote to the journal, as text.
fn journal(pid: &str) -> String {
    let out = Command::new("journalctl")
        .args(["--no-pager", "-o", "cat", &format!("_PID={}", pid.trim())])
        .output()
        .expect("journalctl");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The real collector run by the test bed's systemd (a user manager, as root) under the shipped
/// unit, with only what a user manager cannot do changed: no `User=`/`Group=` (it cannot switch
/// users), the state directory and `ProtectHome` (a user manager puts state under the home it
/// would hide) replaced by a work directory under /var/lib made writable, and
/// ProtectKernelTunables/ProtectKernelLogs left out (this sandbox's /proc cannot be remounted
/// for them). Every other directive, the syscall filter, the empty capability set and
/// `ExecReload=` included, applies.
#[tokio::test]
async fn the_collector_runs_under_its_unit_and_reloads_with_systemctl_reload() {
    require_testbed();
    let work = std::path::PathBuf::from(format!("/var/lib/{}", unique("collector-unit")));
    std::fs::create_dir_all(&work).expect("work dir outside PrivateTmp");
    std::fs::set_permissions(&work, std::fs::Permissions::from_mode(0o700)).expect("chmod");
    let bin = work.join("fleetdeck-collector");
    if std::fs::hard_link(collector_bin(), &bin).is_err() {
        std::fs::copy(collector_bin(), &bin).expect("copy the collector binary");
    }
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port();
    let (first, second) = (Receiver::start().await, Receiver::start().await);
    let config = work.join("collector.toml");
    let head = format!("listen = [\"127.0.0.1:{port}\"]\ndatabase = \"collector.db\"\n");
    let channel = |name: &str, r: &Receiver| {
        format!("[[channels]]\nname = \"{name}\"\nurl = \"{}\"\n", r.url())
    };
    let write = |text: &str| {
        std::fs::write(&config, text).expect("config");
        std::fs::set_permissions(&config, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    };
    write(&format!("{head}{}", channel("first", &first)));
    let key = create_key(&config, "root", "admin");

    let shipped =
        std::fs::read_to_string(format!("{DIST}/fleetdeck-collector.service")).expect("unit");
    let unit_text = shipped
        .replace(
            EXEC,
            &format!(
                "ExecStart={} --config {}\nReadWritePaths={}",
                bin.display(),
                config.display(),
                work.display()
            ),
        )
        .replace("User=fleetdeck\nGroup=fleetdeck\n", "")
        .replace("StateDirectory=fleetdeck\nStateDirectoryMode=0700\n", "")
        .replace("ProtectHome=yes\n", "")
        .replace("ProtectKernelTunables=yes\n", "")
        .replace("ProtectKernelLogs=yes\n", "");
    for kept in [
        "ExecReload=/bin/kill -HUP $MAINPID",
        "SystemCallFilter=@system-service",
        "CapabilityBoundingSet=\n",
        "ProtectSystem=strict",
        "MemoryDenyWriteExecute=yes",
        "PrivateTmp=yes",
    ] {
        assert!(
            unit_text.contains(kept),
            "the shipped unit changed: {unit_text}"
        );
    }
    assert!(!unit_text.contains("User="), "{unit_text}");
    let unit_name = format!("{}.service", unique("fleetdeck-collector"));
    let unit_path = work.join(&unit_name);
    std::fs::write(&unit_path, unit_text).expect("unit file");
    run(
        "systemctl",
        &["--user", "link", unit_path.to_str().expect("utf-8 path")],
    );
    let _unit = LinkedUnit {
        name: unit_name.clone(),
        dir: work.clone(),
    };
    run("systemctl", &["--user", "start", &unit_name]);
    let base = format!("http://127.0.0.1:{port}");
    let http = reqwest::Client::new();
    let channels = || async {
        let resp = http
            .get(format!("{base}/v1/channels"))
            .bearer_auth(&key)
            .send()
            .await
            .ok()?;
        resp.json::<serde_json::Value>().await.ok()
    };
    let listed = wait_for(
        "the collector under its unit to answer",
        Duration::from_secs(15),
        || async { channels().await },
    )
    .await;
    assert_eq!(listed[0]["name"], "first", "{listed}");
    assert_eq!(
        run("systemctl", &["--user", "is-active", &unit_name]).trim(),
        "active"
    );

    // `systemctl reload`: the second channel in place of the first, the process the same.
    let pid = run(
        "systemctl",
        &["--user", "show", "-p", "MainPID", "--value", &unit_name],
    );
    write(&format!("{head}{}", channel("second", &second)));
    run("systemctl", &["--user", "reload", &unit_name]);
    wait_for("the second channel", Duration::from_secs(15), || async {
        let listed = channels().await?;
        (listed[0]["name"] == "second").then_some(())
    })
    .await;
    // A broken file: the running configuration stays, the journal says why.
    write(&format!(
        "{head}{}[[routes]]\nchannels = [\"nowhere\"]\n",
        channel("second", &second)
    ));
    run("systemctl", &["--user", "reload", &unit_name]);
    wait_for(
        "the refusal in the journal",
        Duration::from_secs(15),
        || {
            let refused = journal(&pid)
                .lines()
                .any(|l| l.contains("not reloaded") && l.contains("nowhere"));
            async move { refused.then_some(()) }
        },
    )
    .await;
    let listed = channels().await.expect("channels");
    assert_eq!(listed[0]["name"], "second", "{listed}");
    assert_eq!(
        run(
            "systemctl",
            &["--user", "show", "-p", "MainPID", "--value", &unit_name]
        ),
        pid,
        "a reload restarted the collector"
    );
    assert_eq!(
        run("systemctl", &["--user", "is-active", &unit_name]).trim(),
        "active"
    );
}
