//! agent/dist: the install script places binary, config and a fresh 0600 token, keeps them on a
//! re-run, and the installed agent starts with what it installed; the unit file is valid systemd.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::process::Command;

use common::*;

const DIST: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/dist");

fn install(root: &std::path::Path) -> String {
    install_with(root, &[agent_bin()])
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
fn install_script_refuses_a_directory_others_can_change() {
    // The files copied where someone else can change them (as into a predictable /tmp path):
    // install.sh, run as root, could be swapped while it runs. It refuses; from a private
    // directory (mktemp -d) it installs.
    let staged = tempfile::tempdir().expect("tempdir");
    let dir = staged.path();
    for f in [
        "install.sh",
        "agent.toml.example",
        "fleetdeck-agent.service",
    ] {
        std::fs::copy(format!("{DIST}/{f}"), dir.join(f)).expect("copy dist file");
    }
    std::fs::copy(agent_bin(), dir.join("fleetdeck-agent")).expect("copy binary");
    let root = tempfile::tempdir().expect("root");
    let install = || {
        Command::new(dir.join("install.sh"))
            .env("FLEETDECK_ROOT", root.path())
            .output()
            .expect("run install.sh")
    };
    for (path, loose) in [(dir.to_owned(), 0o777), (dir.join("install.sh"), 0o775)] {
        let before = mode(&path);
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(loose)).expect("chmod");
        let out = install();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            !out.status.success()
                && stderr.contains(&format!(
                    "{} is writable by group or others",
                    path.display()
                ))
                && stderr.contains("mktemp -d"),
            "{}: {stderr}",
            path.display()
        );
        assert!(
            !root.path().join("usr/local/bin/fleetdeck-agent").exists(),
            "nothing installed"
        );
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(before)).expect("chmod");
    }
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700)).expect("chmod");
    let out = install();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(root.path().join("usr/local/bin/fleetdeck-agent").exists());
}

#[test]
fn the_documented_install_uses_a_private_directory() {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../README.md"))
        .expect("README");
    let section = readme
        .split("## Installing the agent on a VM")
        .nth(1)
        .and_then(|s| s.split("\n## ").next())
        .expect("the README's install section");
    assert!(
        section.contains("mktemp -d") && !section.contains("/tmp/"),
        "{section}"
    );
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

/// The real agent run by the test bed's systemd (user manager, as root) under the shipped unit,
/// with only ExecStart, the bus address and `ReadWritePaths=` changed (the test bed's session
/// bus lives under /tmp, which PrivateTmp hides, so it is bound in; a real VM's system bus is in
/// /run). ProtectKernelTunables and ProtectKernelLogs are left out: this sandbox's /proc cannot
/// be remounted for them (status 226/NAMESPACE); every other directive, the syscall filter and
/// capability bounds included, applies.
///
/// Everything the unit runs or reads lives in a directory of its own under /var/lib, the binary
/// included: it is linked (or copied) there from the target directory, which may lie under /tmp
/// (a clone under /tmp with the default target directory) where PrivateTmp would hide it
/// (status 203/EXEC).
struct HardenedAgent {
    port: u16,
    unit: LinkedUnit,
}

impl HardenedAgent {
    /// The work directory for [`HardenedAgent::start`]: outside /tmp, removed with the unit.
    fn work_dir() -> std::path::PathBuf {
        let work = std::path::PathBuf::from(format!("/var/lib/{}", unique("hardened")));
        std::fs::create_dir_all(&work).expect("work dir outside PrivateTmp");
        std::fs::set_permissions(&work, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        work
    }

    /// [`HardenedAgent::work_dir`] holding `app/.env` (`A=1`) in a root-owned 0755 directory:
    /// (work dir, app dir, env file).
    fn work_dir_with_env() -> (std::path::PathBuf, std::path::PathBuf, std::path::PathBuf) {
        let work = Self::work_dir();
        let app_dir = work.join("app");
        std::fs::create_dir(&app_dir).expect("app dir");
        std::fs::set_permissions(&app_dir, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        let env = app_dir.join(".env");
        std::fs::write(&env, "A=1\n").expect("env");
        (work, app_dir, env)
    }

    /// Starts the agent in `work` with `apps` (`[[apps]]` tables) in its config and
    /// `ReadWritePaths=` set to `writable`; waits until it answers.
    async fn start(work: &std::path::Path, apps: &str, writable: &[&std::path::Path]) -> Self {
        require_testbed();
        let token = work.join("agent.token");
        std::fs::write(&token, TOKEN).expect("token");
        std::fs::set_permissions(&token, std::fs::Permissions::from_mode(0o600)).expect("chmod");
        let bin = work.join("fleetdeck-agent");
        if std::fs::hard_link(agent_bin(), &bin).is_err() {
            std::fs::copy(agent_bin(), &bin).expect("copy the agent binary");
        }
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .expect("bind")
            .local_addr()
            .expect("addr")
            .port();
        std::fs::write(
            work.join("agent.toml"),
            format!(
                "listen = [\"127.0.0.1:{port}\"]\ntoken_file = \"agent.token\"\nsystemd = \"user\"\n{apps}"
            ),
        )
        .expect("config");
        let shipped =
            std::fs::read_to_string(format!("{DIST}/fleetdeck-agent.service")).expect("unit");
        let bus = std::env::var("DBUS_SESSION_BUS_ADDRESS").expect("bus");
        let unit_name = format!("{}.service", unique("fleetdeck-agent"));
        let rw: Vec<String> = writable.iter().map(|p| p.display().to_string()).collect();
        let unit_text = shipped
            .replace(
                "ExecStart=/usr/local/bin/fleetdeck-agent --config /etc/fleetdeck/agent.toml",
                &format!(
                    "Environment=DBUS_SESSION_BUS_ADDRESS={bus}\nBindPaths={}\nExecStart={} --config {}/agent.toml",
                    std::env::var("XDG_RUNTIME_DIR").expect("bus dir"),
                    bin.display(),
                    work.display()
                ),
            )
            .replace("\nReadWritePaths=\n", &format!("\nReadWritePaths={}\n", rw.join(" ")))
            .replace("ProtectKernelTunables=yes\n", "")
            .replace("ProtectKernelLogs=yes\n", "")
            // Its own state directory (the user manager's: under ~/.config), so tests
            // running at once do not take each other's saved samples.
            .replace(
                "\nStateDirectory=fleetdeck-agent\n",
                &format!("\nStateDirectory={}\n", unit_name.trim_end_matches(".service")),
            );
        assert!(
            unit_text.contains("SystemCallFilter=@system-service")
                && unit_text.contains("PrivateTmp=yes")
                && unit_text.contains(&format!("ExecStart={}", bin.display()))
                && rw
                    .iter()
                    .all(|p| unit_text.contains(&format!("ReadWritePaths={p}"))),
            "the shipped unit changed: {unit_text}"
        );
        let unit_path = work.join(&unit_name);
        std::fs::write(&unit_path, unit_text).expect("unit file");
        run(
            "systemctl",
            &["--user", "link", unit_path.to_str().expect("utf-8 path")],
        );
        let unit = LinkedUnit {
            name: unit_name.clone(),
            dir: work.to_owned(),
            state: Some(user_state_dir(&unit_name)),
        };
        run("systemctl", &["--user", "start", &unit_name]);
        let agent = Self { port, unit };
        let client = reqwest::Client::new();
        wait_for(
            "the hardened agent to answer",
            std::time::Duration::from_secs(10),
            || async {
                let resp = client.get(agent.url("/healthz")).send().await.ok()?;
                resp.status().is_success().then_some(())
            },
        )
        .await;
        let active = run("systemctl", &["--user", "is-active", &unit_name]);
        assert_eq!(active.trim(), "active");
        agent
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }
}

#[tokio::test]
async fn agent_runs_under_the_hardened_unit() {
    let unit_app = TransientUnit::start("hardened-app", &[], "while true; do sleep 1; done");
    let work = HardenedAgent::work_dir();
    let agent = HardenedAgent::start(
        &work,
        &format!(
            "sample_interval = \"1s\"\n[[apps]]\nname = \"app\"\nsystemd_unit = \"{}\"\n",
            unit_app.name
        ),
        &[],
    )
    .await;
    let status: fleetdeck_proto::AppStatus = reqwest::Client::new()
        .get(agent.url("/v1/apps/app"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .expect("GET app")
        .json()
        .await
        .expect("AppStatus");
    assert_eq!(
        status.state,
        fleetdeck_proto::AppState::Running,
        "{status:?}"
    );
    // Stopped by systemd, it saves its samples where the unit's StateDirectory= says, privately.
    let latest = wait_for(
        "two samples",
        std::time::Duration::from_secs(10),
        || async {
            let page: fleetdeck_proto::SamplesPage = reqwest::Client::new()
                .get(agent.url("/v1/samples?after=0"))
                .bearer_auth(TOKEN)
                .send()
                .await
                .ok()?
                .json()
                .await
                .ok()?;
            page.latest_seq.filter(|&l| l >= 2)
        },
    )
    .await;
    run("systemctl", &["--user", "stop", &agent.unit.name]);
    let saved = agent
        .unit
        .state
        .as_ref()
        .expect("state dir")
        .join("samples.jsonl");
    let text = std::fs::read_to_string(&saved)
        .unwrap_or_else(|e| panic!("no samples saved at {}: {e}", saved.display()));
    assert!(
        text.lines().count() as u64 > latest,
        "a header and at least {latest} samples: {text}"
    );
    let mode = std::fs::metadata(&saved)
        .expect("meta")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    drop(agent.unit);
}

#[tokio::test]
async fn env_write_under_the_hardened_unit_keeps_owner_group_and_mode() {
    use std::os::unix::fs::MetadataExt;
    // A file of another user and group, mode 0640, in a root-owned directory: the agent writes a
    // new file and renames it over, so it must give it that uid, gid and mode itself, which
    // needs CAP_CHOWN and the chown system calls under the unit's filter.
    let (work, app_dir, env) = HardenedAgent::work_dir_with_env();
    let (uid, gid) = (4242, 4343);
    std::os::unix::fs::chown(&env, Some(uid), Some(gid)).expect("chown");
    std::fs::set_permissions(&env, std::fs::Permissions::from_mode(0o640)).expect("chmod");
    let agent = HardenedAgent::start(
        &work,
        &format!(
            "[[apps]]\nname = \"web\"\nsystemd_unit = \"web.service\"\nenv_file = \"{}\"\n",
            env.display()
        ),
        &[&app_dir],
    )
    .await;
    let client = reqwest::Client::new();
    let file: fleetdeck_proto::EnvFile = client
        .get(agent.url("/v1/apps/web/env"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .expect("GET env")
        .json()
        .await
        .expect("EnvFile");
    for round in 2..=3 {
        let before = std::fs::metadata(&env).expect("meta").ino();
        let resp = client
            .put(agent.url("/v1/apps/web/env"))
            .bearer_auth(TOKEN)
            .header(
                "If-Match",
                format!(
                    "\"{}\"",
                    if round == 2 {
                        file.etag.clone()
                    } else {
                        sha256_hex(b"A=2\n")
                    }
                ),
            )
            .json(&serde_json::json!({"set": {"A": round.to_string()}}))
            .send()
            .await
            .expect("PUT env");
        let status = resp.status();
        let body = resp.text().await.expect("body");
        assert_eq!(status, 200, "{body}");
        let meta = std::fs::metadata(&env).expect("meta");
        assert_ne!(
            meta.ino(),
            before,
            "a new file was renamed over the old one"
        );
        assert_eq!(
            (meta.uid(), meta.gid(), meta.mode() & 0o7777),
            (uid, gid, 0o640),
            "owner, group and mode kept"
        );
        assert_eq!(
            std::fs::read_to_string(&env).expect("env"),
            format!("A={round}\n")
        );
    }
    let backup = std::fs::metadata(app_dir.join("..env.fleetdeck-backup.1")).expect("backup");
    assert_eq!(
        (backup.uid(), backup.gid(), backup.mode() & 0o7777),
        (uid, gid, 0o640)
    );
    drop(agent.unit);
}

fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// A unit linked into the user manager, stopped and unlinked (with its directory) when dropped.
struct LinkedUnit {
    name: String,
    dir: std::path::PathBuf,
    /// The unit's `StateDirectory=`, removed with it.
    state: Option<std::path::PathBuf>,
}

/// Where the test bed's user manager makes a unit's `StateDirectory=` (named as the unit): the
/// user's config directory, as systemd 252 (Debian 12) does for user units.
fn user_state_dir(unit_name: &str) -> std::path::PathBuf {
    let base = std::env::var_os("XDG_CONFIG_HOME").map_or_else(
        || std::path::PathBuf::from(std::env::var_os("HOME").expect("HOME")).join(".config"),
        std::path::PathBuf::from,
    );
    base.join(unit_name.trim_end_matches(".service"))
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
        if let Some(state) = &self.state {
            let _ = std::fs::remove_dir_all(state);
        }
    }
}

/// A drop-in for a test's unit in the user manager's runtime directory, removed when dropped.
struct DropIn(std::path::PathBuf);

impl Drop for DropIn {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
        let _ = Command::new("systemctl")
            .args(["--user", "daemon-reload"])
            .output();
    }
}

fn main_pid(unit: &str) -> String {
    run(
        "systemctl",
        &["--user", "show", "-p", "MainPID", "--value", unit],
    )
    .trim()
    .to_owned()
}

#[tokio::test]
async fn reload_and_the_env_drop_in_under_the_hardened_unit() {
    // Issue 16 items 2 and 7: `systemctl reload` (the unit's ExecReload=) takes up an app added
    // to agent.toml without a restart; a .env in a directory the unit does not list is refused
    // with a message naming the drop-in, and the drop-in `env-drop-in` prints (install.sh
    // writes it) lets the write through.
    let (work, app_dir, env) = HardenedAgent::work_dir_with_env();
    let web = format!(
        "[[apps]]\nname = \"web\"\nsystemd_unit = \"web.service\"\nenv_file = \"{}\"\n",
        env.display()
    );
    let agent = HardenedAgent::start(&work, &web, &[]).await;
    let unit = agent.unit.name.clone();
    let client = reqwest::Client::new();
    let put = |etag: String| {
        client
            .put(agent.url("/v1/apps/web/env"))
            .bearer_auth(TOKEN)
            .header("If-Match", format!("\"{etag}\""))
            .json(&serde_json::json!({"set": {"A": "2"}}))
            .send()
    };
    let resp = put(sha256_hex(b"A=1\n")).await.expect("PUT env");
    let status = resp.status();
    let body = resp.text().await.expect("body");
    assert_eq!(status, 409, "{body}");
    assert!(
        body.contains("read_only_directory") && body.contains("env-drop-in"),
        "{body}"
    );
    assert_eq!(std::fs::read_to_string(&env).expect("env"), "A=1\n");

    // An app added to agent.toml, and `systemctl reload`: watched by the same process.
    let pid = main_pid(&unit);
    let config = work.join("agent.toml");
    let text = std::fs::read_to_string(&config).expect("config");
    std::fs::write(
        &config,
        format!("{text}[[apps]]\nname = \"extra\"\nsystemd_unit = \"extra.service\"\n"),
    )
    .expect("config");
    run("systemctl", &["--user", "reload", &unit]);
    wait_for(
        "the added app",
        std::time::Duration::from_secs(10),
        || async {
            let resp = client
                .get(agent.url("/v1/apps/extra"))
                .bearer_auth(TOKEN)
                .send()
                .await
                .ok()?;
            (resp.status() == 200).then_some(())
        },
    )
    .await;
    assert_eq!(main_pid(&unit), pid, "reloaded, not restarted");

    // The drop-in for agent.toml's .env directories, as install.sh writes it.
    let out = Command::new(agent_bin())
        .args(["env-drop-in", "--config"])
        .arg(&config)
        .output()
        .expect("env-drop-in");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let dropin = String::from_utf8(out.stdout).expect("utf-8");
    assert!(
        dropin.contains(&format!("ReadWritePaths=-{}\n", app_dir.display())),
        "{dropin}"
    );
    let dir = std::path::PathBuf::from(std::env::var("XDG_RUNTIME_DIR").expect("runtime dir"))
        .join(format!("systemd/user/{unit}.d"));
    std::fs::create_dir_all(&dir).expect("drop-in dir");
    let _dropin = DropIn(dir.clone());
    std::fs::write(dir.join("env-files.conf"), dropin).expect("drop-in");
    run("systemctl", &["--user", "daemon-reload"]);
    run("systemctl", &["--user", "restart", &unit]);
    wait_for(
        "the restarted agent",
        std::time::Duration::from_secs(10),
        || async {
            let resp = client.get(agent.url("/healthz")).send().await.ok()?;
            resp.status().is_success().then_some(())
        },
    )
    .await;
    let resp = put(sha256_hex(b"A=1\n")).await.expect("PUT env");
    let status = resp.status();
    let body = resp.text().await.expect("body");
    assert_eq!(status, 200, "{body}");
    assert_eq!(std::fs::read_to_string(&env).expect("env"), "A=2\n");
    drop(agent.unit);
}

fn install_with(root: &std::path::Path, args: &[&str]) -> String {
    install_script(
        std::path::Path::new(&format!("{DIST}/install.sh")),
        root,
        args,
    )
}

async fn info_status(agent: &RunningAgent, token: &str) -> u16 {
    agent
        .client
        .get(agent.url("/v1/info"))
        .bearer_auth(token.trim())
        .send()
        .await
        .expect("info")
        .status()
        .as_u16()
}

#[tokio::test]
async fn install_script_writes_the_drop_in_rotates_the_token_and_uninstalls() {
    let root = tempfile::tempdir().expect("tempdir");
    let r = root.path();
    install(r);
    let etc = r.join("etc/fleetdeck");
    let config_path = etc.join("agent.toml");
    let config = std::fs::read_to_string(&config_path)
        .expect("config")
        .replace(
            "listen = [\"127.0.0.1:7070\", \"tailscale\"]",
            "listen = [\"127.0.0.1:0\"]",
        )
        .replace(
            "token_file = \"/etc/fleetdeck/agent.token\"",
            "token_file = \"agent.token\"",
        );
    std::fs::write(
        &config_path,
        format!("{config}\n[[apps]]\nname = \"shop\"\nsystemd_unit = \"shop.service\"\nenv_file = \"/srv/shop/.env\"\n"),
    )
    .expect("config");

    // A reinstall writes the drop-in for the .env directories agent.toml names.
    let said = install(r);
    let dropin = r.join("etc/systemd/system/fleetdeck-agent.service.d/env-files.conf");
    assert!(said.contains("env-files.conf"), "{said}");
    let text = std::fs::read_to_string(&dropin).expect("drop-in");
    assert!(
        text.contains("[Service]\n") && text.contains("ReadWritePaths=-/srv/shop\n"),
        "{text}"
    );

    // A rotation: the agent accepts both tokens, then only the new one, never going down.
    let bin = r.join("usr/local/bin/fleetdeck-agent");
    let agent = RunningAgent::start_with(Command::new(&bin).arg("--config").arg(&config_path));
    let old = std::fs::read_to_string(etc.join("agent.token")).expect("token");
    secret(old.trim());
    assert_eq!(info_status(&agent, &old).await, 200);
    let said = install_with(r, &["--rotate-token"]);
    assert!(said.contains("--finish-rotation"), "{said}");
    let next_path = etc.join("agent.token.next");
    assert_eq!(mode(&next_path), 0o600);
    let next = std::fs::read_to_string(&next_path).expect("next token");
    secret(next.trim());
    assert!(!said.contains(next.trim()), "the token is never printed");
    assert_ne!(next, old);
    // Under FLEETDECK_ROOT the script leaves systemd alone; on a VM it runs systemctl reload.
    run("kill", &["-HUP", &agent.pid().to_string()]);
    wait_for(
        "the next token accepted",
        std::time::Duration::from_secs(10),
        || async { (info_status(&agent, &next).await == 200).then_some(()) },
    )
    .await;
    assert_eq!(
        info_status(&agent, &old).await,
        200,
        "the old one too, meanwhile"
    );
    install_with(r, &["--finish-rotation"]);
    assert!(!next_path.exists());
    assert_eq!(
        std::fs::read_to_string(etc.join("agent.token")).expect("token"),
        next
    );
    assert!(!std::fs::read_to_string(&config_path)
        .expect("config")
        .lines()
        .any(|l| l.starts_with("next_token_file")));
    run("kill", &["-HUP", &agent.pid().to_string()]);
    wait_for(
        "the old token refused",
        std::time::Duration::from_secs(10),
        || async { (info_status(&agent, &old).await == 401).then_some(()) },
    )
    .await;
    assert_eq!(info_status(&agent, &next).await, 200);
    drop(agent);

    // Uninstall keeps the config and tokens unless asked.
    let said = install_with(r, &["--uninstall"]);
    assert!(said.contains("kept"), "{said}");
    assert!(!bin.exists() && !dropin.exists());
    assert!(!r
        .join("etc/systemd/system/fleetdeck-agent.service")
        .exists());
    assert!(config_path.exists() && etc.join("agent.token").exists());
    let samples = r.join("var/lib/fleetdeck-agent");
    std::fs::create_dir_all(&samples).expect("the state directory systemd would make");
    std::fs::write(samples.join("samples.jsonl"), "{}\n").expect("saved samples");
    install_with(r, &["--uninstall", "--purge"]);
    assert!(!etc.exists() && !samples.exists());
}
