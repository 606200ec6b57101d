//! What the real collector binary refuses to expose: a public listen address without
//! `--allow-public-bind`, an agent token file others can read, a config holding webhook URLs
//! (secrets) that others can read. Each refusal exits 2 naming the flag or the file and the fix,
//! and never prints the secret.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

use common::*;

const HOOK_URL: &str = "http://127.0.0.1:9/hooks/exposure-webhook-secret-0123";

/// Runs the collector on `config` expecting it to refuse to start: exit 2; its stderr.
fn refused(config: &Path, extra: &[&str]) -> String {
    let out = Command::new(collector_bin())
        .arg("--config")
        .arg(config)
        .args(extra)
        .output()
        .expect("run fleetdeck-collector");
    save_log(
        "fleetdeck-collector-refused",
        Some(&out.stdout),
        &out.stderr,
    );
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(
        out.status.code(),
        Some(2),
        "the collector should exit 2; stderr: {stderr}"
    );
    stderr
}

fn chmod(path: &Path, mode: u32) {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).expect("chmod");
}

#[test]
fn a_public_listen_address_needs_the_flag() {
    let work = Workdir::new();
    let config = work.write(
        "collector.toml",
        "listen = [\"0.0.0.0:0\"]\ndatabase = \"collector.db\"\n",
    );
    let stderr = refused(&config, &[]);
    assert!(
        stderr.contains("refusing to listen on 0.0.0.0:0")
            && stderr.contains("--allow-public-bind"),
        "{stderr}"
    );
    // The refusal comes before anything is created.
    assert!(!work.path("collector.db").exists());
}

#[tokio::test]
async fn a_public_listen_address_with_the_flag_warns_loudly() {
    let work = Workdir::new();
    let config = work.write(
        "collector.toml",
        "listen = [\"0.0.0.0:0\"]\ndatabase = \"collector.db\"\n",
    );
    let mut collector = Daemon::spawn(
        Command::new(collector_bin())
            .arg("--config")
            .arg(&config)
            .arg("--allow-public-bind"),
        "fleetdeck-collector",
        RUST_LOG,
    );
    assert!(collector.addr.ip().is_unspecified());
    let health = reqwest::get(format!(
        "http://127.0.0.1:{}/healthz",
        collector.addr.port()
    ))
    .await
    .expect("healthz");
    assert_eq!(health.status(), 200);
    let logs = collector.logs().join("\n");
    assert!(
        logs.contains("WARN") && logs.contains("PUBLIC ADDRESS"),
        "{logs}"
    );
}

#[test]
fn an_agent_token_file_others_can_read_is_refused() {
    let work = Workdir::new();
    let token = work.secret("vm-1.token", AGENT_TOKEN);
    let config = collector_config(
        &work,
        "[[agents]]\nname = \"vm-1\"\nurl = \"http://127.0.0.1:9\"\ntoken_file = \"vm-1.token\"\n",
    );
    for mode in [0o644, 0o640, 0o604, 0o660] {
        chmod(&token, mode);
        let stderr = refused(&config, &[]);
        let want = format!("run chmod 600 {}", token.display());
        assert!(
            stderr.contains(&want) && stderr.contains("agent \"vm-1\""),
            "mode {mode:o}: {stderr}"
        );
        assert!(
            !stderr.contains(AGENT_TOKEN),
            "the token never reaches a log"
        );
    }
    // Absent: named, with how to make one.
    std::fs::remove_file(&token).expect("rm token");
    let stderr = refused(&config, &[]);
    assert!(
        stderr.contains(&token.display().to_string())
            && stderr.contains("does not exist")
            && stderr.contains("chmod 600"),
        "{stderr}"
    );
}

#[test]
fn a_config_with_webhooks_others_can_read_is_refused() {
    secret(HOOK_URL);
    let work = Workdir::new();
    let config = collector_config(
        &work,
        &format!("[[webhooks]]\nurl = \"{HOOK_URL}\"\nformat = \"slack\"\n"),
    );
    for mode in [0o644, 0o640, 0o604] {
        chmod(&config, mode);
        let stderr = refused(&config, &[]);
        let want = format!("run chmod 600 {}", config.display());
        assert!(
            stderr.contains(&want) && stderr.contains("[[webhooks]]"),
            "mode {mode:o}: {stderr}"
        );
        assert!(!stderr.contains("exposure-webhook-secret"), "{stderr}");
        // `keys create` reads the same config: refused too.
        let out = Command::new(collector_bin())
            .arg("--config")
            .arg(&config)
            .args(["keys", "create", "--name", "k", "--role", "viewer"])
            .output()
            .expect("run keys create");
        save_log("fleetdeck-collector-keys-refused", None, &out.stderr);
        assert_eq!(out.status.code(), Some(2));
        assert!(
            String::from_utf8_lossy(&out.stderr).contains(&want),
            "keys create, mode {mode:o}"
        );
    }
    // Owner-only, it starts.
    chmod(&config, 0o600);
    let collector = start_collector(&config);
    assert!(collector.addr.ip().is_loopback());
}

#[test]
fn a_config_without_secrets_may_be_readable() {
    // Tokens live in their own files: a config naming them holds no secret itself.
    let work = Workdir::new();
    work.secret("vm-1.token", AGENT_TOKEN);
    let config = collector_config(
        &work,
        "[[agents]]\nname = \"vm-1\"\nurl = \"http://127.0.0.1:9\"\ntoken_file = \"vm-1.token\"\n",
    );
    chmod(&config, 0o644);
    let collector = start_collector(&config);
    assert!(collector.addr.ip().is_loopback());
}
