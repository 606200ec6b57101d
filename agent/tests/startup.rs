//! What the real binary refuses to start with, and where it agrees to listen.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::process::Command;
use std::time::Duration;

use common::*;

#[test]
fn config_errors_exit_non_zero_naming_the_problem() {
    let work = Workdir::new();
    let cases: &[(&str, &[&str])] = &[
        ("colour = \"red\"\n", &["unknown field `colour`", "line 4", "agent.toml"]),
        ("[[apps]]\nname = \"a\"\nsystemd_unit = \"a.service\"\n[[apps]]\nname = \"a\"\ndocker_container = \"a\"\n",
            &["duplicate app name \"a\"", "#2"]),
        ("[[apps]]\nname = \"a\"\nsystemd_unit = \"a.service\"\ndocker_container = \"a\"\n",
            &["both systemd_unit and docker_container"]),
        ("[[apps]]\nname = \"a\"\n", &["needs systemd_unit", "or docker_container"]),
        ("[[apps]]\nname = \"a/../b\"\nsystemd_unit = \"a.service\"\n", &["invalid app name \"a/../b\""]),
        ("[[apps]]\nname = \"a\"\nsystemd_unit = \"a.service\"\nport = 80\n", &["unknown field `port`", "line 7"]),
    ];
    for (body, wants) in cases {
        let stderr = refused(&work.config(body), &[]);
        for want in *wants {
            assert!(
                stderr.contains(want),
                "config:\n{body}\nstderr: {stderr}\nlacks: {want}"
            );
        }
    }
}

#[test]
fn missing_config_and_token_files_are_named() {
    let work = Workdir::new();
    let stderr = refused(&work.path("absent.toml"), &[]);
    assert!(
        stderr.contains("absent.toml") && stderr.contains("--config"),
        "{stderr}"
    );

    let config = work.config_raw("token_file = \"missing.token\"\n");
    let stderr = refused(&config, &[]);
    assert!(
        stderr.contains("missing.token") && stderr.contains("does not exist"),
        "{stderr}"
    );
    assert!(
        stderr.contains("chmod 600"),
        "says how to make one: {stderr}"
    );
}

#[test]
fn token_readable_by_others_is_refused() {
    let work = Workdir::new();
    let config = work.config("");
    for mode in [0o644, 0o640, 0o604] {
        std::fs::set_permissions(
            work.path("agent.token"),
            std::fs::Permissions::from_mode(mode),
        )
        .expect("chmod");
        let stderr = refused(&config, &[]);
        let want = format!("run chmod 600 {}", work.path("agent.token").display());
        assert!(stderr.contains(&want), "mode {mode:o}: {stderr}");
        assert!(!stderr.contains(TOKEN), "the token never reaches a log");
    }
}

#[test]
fn public_bind_is_refused_without_the_flag() {
    let work = Workdir::new();
    let config = work.config_raw("listen = [\"0.0.0.0:0\"]\ntoken_file = \"agent.token\"\n");
    let stderr = refused(&config, &[]);
    assert!(
        stderr.contains("refusing to listen on 0.0.0.0:0")
            && stderr.contains("--allow-public-bind"),
        "{stderr}"
    );
}

#[tokio::test]
async fn public_bind_with_the_flag_warns_loudly() {
    let work = Workdir::new();
    let config = work.config_raw("listen = [\"0.0.0.0:0\"]\ntoken_file = \"agent.token\"\n");
    let mut agent = RunningAgent::start_with(
        Command::new(agent_bin())
            .arg("--config")
            .arg(&config)
            .arg("--allow-public-bind"),
    );
    assert!(agent.addr.ip().is_unspecified());
    let port = agent.addr.port();
    let resp = agent
        .client
        .get(format!("http://127.0.0.1:{port}/healthz"))
        .send()
        .await
        .expect("healthz");
    assert_eq!(resp.status(), 200);
    let logs = agent.logs().join("\n");
    assert!(
        logs.contains("WARN") && logs.contains("PUBLIC ADDRESS"),
        "{logs}"
    );
}

#[test]
fn tailscale_listen_waits_for_tailscale() {
    // At boot tailscaled may not be up: the agent waits for an address (logging why) instead of
    // exiting, and listens once `tailscale ip` names one. A namespace with 100.100.7.8 and, once
    // the agent said it waits, a `tailscale` on its PATH that prints it (the real CLI cannot run
    // without the tailnet).
    use std::io::BufRead;
    let ns = Netns::new();
    run(
        "ip",
        &["-n", &ns.0, "addr", "add", "100.100.7.8/32", "dev", "lo"],
    );
    let work = Workdir::new();
    let bin = work.path("bin");
    std::fs::create_dir(&bin).expect("bin dir");
    let config = work.config_raw("listen = [\"tailscale:0\"]\ntoken_file = \"agent.token\"\n");
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let mut child = Command::new("nsenter")
        .arg(ns.path())
        .arg(agent_bin())
        .arg("--config")
        .arg(&config)
        .env("PATH", path)
        .env("RUST_LOG", "info")
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run agent");
    let (tx, rx) = std::sync::mpsc::channel();
    let stderr = child.stderr.take().expect("stderr");
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stderr)
            .lines()
            .map_while(Result::ok)
        {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut seen = Vec::new();
    let mut wait_line = |what: &str, limit: Duration, want: &dyn Fn(&str) -> bool| -> String {
        let deadline = std::time::Instant::now() + limit;
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            match rx.recv_timeout(left) {
                Ok(line) => {
                    seen.push(line.clone());
                    if want(&line) {
                        return line;
                    }
                }
                Err(_) => panic!("no {what} within {limit:?}; the agent said: {seen:#?}"),
            }
        }
    };
    let waiting = wait_line("wait for Tailscale", Duration::from_secs(10), &|l| {
        l.contains("waiting for tailscaled")
    });
    assert!(waiting.contains("cannot run `tailscale ip`"), "{waiting}");
    assert!(
        child.try_wait().expect("wait").is_none(),
        "the agent must not exit"
    );
    std::fs::write(
        bin.join("tailscale"),
        "#!/bin/sh\n[ \"$1\" = ip ] && printf '100.100.7.8\\n'\n",
    )
    .expect("the cli appears");
    std::fs::set_permissions(
        bin.join("tailscale"),
        std::fs::Permissions::from_mode(0o755),
    )
    .expect("chmod");
    let listening = wait_line("listening", Duration::from_secs(15), &|l| {
        l.contains("listening") && l.contains("100.100.7.8")
    });
    let _ = child.kill();
    let _ = child.wait();
    save_log(
        "fleetdeck-agent-tailscale-wait",
        None,
        seen.join("\n").as_bytes(),
    );
    assert!(listening.contains("100.100.7.8:"), "{listening}");
}

/// A network namespace of this test's own, removed when dropped.
struct Netns(String);

impl Netns {
    fn new() -> Self {
        static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let name = format!("fdts{}-{n}", std::process::id());
        run("ip", &["netns", "add", &name]);
        run("ip", &["-n", &name, "link", "set", "lo", "up"]);
        Self(name)
    }
    fn path(&self) -> String {
        format!("--net=/run/netns/{}", self.0)
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.0]).output();
    }
}

#[tokio::test]
async fn tailscale_listen_binds_the_tailnet_addresses() {
    // A host whose `tailscale ip` says 100.100.7.7: a namespace with that address, and a
    // `tailscale` on PATH that prints it (the real CLI cannot run without the tailnet).
    let ns = Netns::new();
    run(
        "ip",
        &["-n", &ns.0, "addr", "add", "100.100.7.7/32", "dev", "lo"],
    );
    let work = Workdir::new();
    let bin = work.path("bin");
    std::fs::create_dir(&bin).expect("bin dir");
    std::fs::write(
        bin.join("tailscale"),
        "#!/bin/sh\n[ \"$1\" = ip ] && printf '100.100.7.7\\n'\n",
    )
    .expect("fake cli");
    std::fs::set_permissions(
        bin.join("tailscale"),
        std::fs::Permissions::from_mode(0o755),
    )
    .expect("chmod");
    let config = work.config_raw("listen = [\"tailscale:0\"]\ntoken_file = \"agent.token\"\n");
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let agent = RunningAgent::start_with(
        Command::new("nsenter")
            .arg(ns.path())
            .arg(agent_bin())
            .arg("--config")
            .arg(&config)
            .env("PATH", path),
    );
    assert_eq!(agent.addr.ip().to_string(), "100.100.7.7");
    let url = format!("http://{}/healthz", agent.addr);
    let body = wait_for(
        "healthz inside the namespace",
        Duration::from_secs(5),
        || async {
            let out = Command::new("nsenter")
                .args([ns.path().as_str(), "busybox", "wget", "-q", "-O", "-", &url])
                .output()
                .ok()?;
            out.status
                .success()
                .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
        },
    )
    .await;
    assert_eq!(body, "ok");
}
