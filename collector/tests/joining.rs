//! Issue 16 items 1 and 3 end to end on real parts: `fleetdeck-collector agents add|rm` joins a
//! real agent to a running collector (no restart), and a container the agent discovers joins the
//! fleet and leaves it without an alert.

mod common;

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::*;
use serde_json::Value;

const LIMIT: Duration = Duration::from_secs(30);

/// Runs the collector's CLI with `stdin`; (success, stdout + stderr).
fn cli(config: &std::path::Path, args: &[&str], stdin: &str) -> (bool, String) {
    let mut child = Command::new(collector_bin())
        .arg("--config")
        .arg(config)
        .args(args)
        .env("RUST_LOG", "warn")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run fleetdeck-collector");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(stdin.as_bytes())
        .expect("write stdin");
    let out = child.wait_with_output().expect("output");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    save_log("fleetdeck-collector-agents", Some(&out.stdout), &out.stderr);
    (out.status.success(), text)
}

fn app_names(host: &Value) -> Vec<String> {
    host["apps"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|a| a["name"].as_str().or(a["status"]["name"].as_str()))
        .map(str::to_owned)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agents_add_and_rm_join_a_host_to_the_running_collector() {
    let work = Workdir::new();
    let first = start_agent(&agent_config(&work, "first", "127.0.0.1:0", ""));
    let second = start_agent(&agent_config(&work, "second", "127.0.0.1:0", ""));
    let config = collector_config(&work, &agent_entry("first", first.addr));
    let mut collector = start_collector(&config);
    let api = Api::new(&collector, &create_key(&config, "root", "admin"));
    wait_for("first up", LIMIT, || async {
        (api.json("/v1/hosts/first").await["status"] == "up").then_some(())
    })
    .await;
    let url = format!("http://{}", second.addr);
    let stanza = work.path("agents.d/second.toml");
    let token_file = work.path("agents/second.token");

    // A wrong token: refused, naming what to pipe in, and nothing is left behind.
    let wrong = "not-the-agents-token-0000";
    secret(wrong);
    let (ok, out) = cli(&config, &["agents", "add", "second", &url], wrong);
    assert!(!ok && out.contains("refuses this token (401)"), "{out}");
    assert!(
        !stanza.exists() && !token_file.exists(),
        "a refused add leaves no file"
    );
    // Nothing on stdin.
    let (ok, out) = cli(&config, &["agents", "add", "second", &url], "");
    assert!(!ok && out.contains("no token on stdin"), "{out}");
    // A name taken.
    let (ok, out) = cli(&config, &["agents", "add", "first", &url], AGENT_TOKEN);
    assert!(!ok && out.contains("in the config already"), "{out}");

    let (ok, out) = cli(&config, &["agents", "add", "second", &url], AGENT_TOKEN);
    assert!(ok, "{out}");
    assert!(
        out.contains("took it up")
            && out.contains("wire version")
            && out.contains("and polled it: second is up"),
        "{out}"
    );
    assert!(!out.contains(AGENT_TOKEN), "the token is never printed");
    use std::os::unix::fs::PermissionsExt;
    let mode =
        |p: &std::path::Path| std::fs::metadata(p).expect("file").permissions().mode() & 0o777;
    assert_eq!(mode(&token_file), 0o600);
    assert_eq!(mode(&stanza), 0o600);
    wait_for("second up, without a restart", LIMIT, || async {
        (api.json("/v1/hosts/second").await["status"] == "up").then_some(())
    })
    .await;
    assert!(collector.wait_exit(Duration::from_millis(10)).is_none());
    let (ok, out) = cli(&config, &["agents", "list"], "");
    assert!(ok && out.contains("agents.d/second.toml"), "{out}");
    let (ok, out) = cli(&config, &["check-config"], "");
    assert!(ok, "{out}");

    // collector.toml's own agents are the operator's to edit.
    let (ok, out) = cli(&config, &["agents", "rm", "first"], "");
    assert!(
        !ok && out.contains("delete its [[agents]] table there"),
        "{out}"
    );
    let (ok, out) = cli(&config, &["agents", "rm", "second"], "");
    assert!(ok && out.contains("took it up"), "{out}");
    assert!(!stanza.exists() && !token_file.exists());
    let fleet = api.json("/v1/fleet").await;
    assert_eq!(host_names(&fleet), ["first"], "{fleet}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_discovered_container_joins_the_fleet_and_leaves_without_an_alert() {
    require_testbed();
    let hook = Receiver::start().await;
    let work = Workdir::new();
    let pid = std::process::id();
    let agent = start_agent(&agent_config(
        &work,
        "vm",
        "127.0.0.1:0",
        &format!("[discover]\ncontainers = [\"fdtest-joined-{pid}-*\"]\n"),
    ));
    let config = collector_config(
        &work,
        &format!(
            "[alerts]\ngrace = \"0s\"\n[[channels]]\nname = \"hook\"\nurl = \"{}\"\n{}",
            hook.url(),
            agent_entry("vm", agent.addr)
        ),
    );
    let collector = start_collector(&config);
    let api = Api::new(&collector, &create_key(&config, "root", "admin"));
    wait_for("vm up", LIMIT, || async {
        (api.json("/v1/hosts/vm").await["status"] == "up").then_some(())
    })
    .await;

    // As compose runs a service: a process that ends on SIGTERM.
    let container = Container::run(
        "joined",
        &[],
        &[
            "sh",
            "-c",
            "trap 'exit 0' TERM; while true; do sleep 1; done",
        ],
    );
    let name = container.name.clone();
    wait_for("the discovered container in the fleet", LIMIT, || async {
        let host = api.json("/v1/hosts/vm").await;
        app_names(&host).contains(&name).then_some(())
    })
    .await;

    // As `docker compose down` takes a service away: stopped, then removed.
    run("podman", &["stop", "-t", "5", &name]);
    run("podman", &["rm", &name]);
    wait_for("the removed container out of the fleet", LIMIT, || async {
        let host = api.json("/v1/hosts/vm").await;
        (!app_names(&host).contains(&name)).then_some(())
    })
    .await;
    drop(container);
    let events = api.json("/v1/events?host=vm&limit=50").await;
    let about: Vec<&Value> = events["events"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|e| e["app"] == name.as_str())
        .collect();
    let unwatched = about
        .iter()
        .filter(|e| e["kind"] == "app-unwatched")
        .count();
    assert_eq!(unwatched, 1, "{events}");
    assert!(
        about.iter().all(|e| e["severity"] == "info"),
        "a discovered app that stops and goes is no problem: {events}"
    );
    // No transition was recorded (above), so there was nothing to alert: the receiver heard
    // nothing of the app.
    let received = hook.received();
    let about: Vec<&Value> = received
        .iter()
        .filter(|b| b["app"] == name.as_str())
        .collect();
    assert!(
        about.is_empty(),
        "a discovered app that goes is not an alert: {about:?}"
    );
}

/// A port free on both addresses now (the two agents of `discover --add` share one, as agents on
/// a tailnet all listen on 7070).
fn port_free_on(ips: &[&str]) -> u16 {
    loop {
        let first = std::net::TcpListener::bind((ips[0], 0)).expect("bind");
        let port = first.local_addr().expect("addr").port();
        if ips[1..]
            .iter()
            .all(|ip| std::net::TcpListener::bind((*ip, port)).is_ok())
        {
            return port;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn discover_add_joins_the_agents_found_whose_tokens_it_has() {
    // A tailnet of three online peers as `tailscale status --json` lists them (a stand-in CLI on
    // PATH prints it: the real one needs a tailnet): two real agents on 127.0.0.2 and .3, one
    // peer with no agent. Only web's token is in the tokens directory.
    let work = Workdir::new();
    let port = port_free_on(&["127.0.0.2", "127.0.0.3", "127.0.0.4"]);
    let _web = start_agent(&agent_config(
        &work,
        "web",
        &format!("127.0.0.2:{port}"),
        "",
    ));
    let _db = start_agent(&agent_config(&work, "db", &format!("127.0.0.3:{port}"), ""));
    let peer = |key: &str, host: &str, ip: &str| {
        format!(
            "\"{key}\": {{\"HostName\": \"{host}\", \"DNSName\": \"{host}.tail1a2b3c.ts.net.\", \
             \"TailscaleIPs\": [\"{ip}\"], \"Online\": true, \"OS\": \"linux\"}}"
        )
    };
    let status = format!(
        "{{\"BackendState\": \"Running\", \"Peer\": {{{}, {}, {}}}}}",
        peer("nodekey:1", "web", "127.0.0.2"),
        peer("nodekey:2", "db", "127.0.0.3"),
        peer("nodekey:3", "laptop", "127.0.0.4"),
    );
    work.write("status.json", &status);
    let bin = work.path("bin");
    std::fs::create_dir(&bin).expect("bin");
    let cli_path = bin.join("tailscale");
    std::fs::write(
        &cli_path,
        format!(
            "#!/bin/sh\n[ \"$1 $2\" = \"status --json\" ] && exec cat {}\nexit 1\n",
            work.path("status.json").display()
        ),
    )
    .expect("stand-in tailscale");
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&cli_path, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let tokens = work.path("tokens");
    std::fs::create_dir(&tokens).expect("tokens dir");
    std::fs::write(tokens.join("web.token"), format!("{AGENT_TOKEN}\n")).expect("web's token");

    let config = collector_config(&work, "");
    let collector = start_collector(&config);
    let api = Api::new(&collector, &create_key(&config, "root", "admin"));
    let discover_add = || {
        let out = Command::new(collector_bin())
            .arg("--config")
            .arg(&config)
            .args(["discover", "--port", &port.to_string(), "--timeout", "3s"])
            .args(["--add", "--tokens"])
            .arg(&tokens)
            .env(
                "PATH",
                format!(
                    "{}:{}",
                    bin.display(),
                    std::env::var("PATH").unwrap_or_default()
                ),
            )
            .env("RUST_LOG", "warn")
            .output()
            .expect("run discover --add");
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        save_log(
            "fleetdeck-collector-discover-add",
            Some(&out.stdout),
            &out.stderr,
        );
        (out.status.success(), text)
    };

    let (ok, out) = discover_add();
    assert!(
        !ok,
        "db has no token yet, so not everything was added: {out}"
    );
    assert!(out.contains("added web: http://127.0.0.2"), "{out}");
    assert!(
        out.contains("db: not added: no token in")
            && out.contains("ssh db.tail1a2b3c.ts.net sudo cat /etc/fleetdeck/agent.token >"),
        "{out}"
    );
    assert!(
        !out.contains("laptop"),
        "a peer without an agent is not joined: {out}"
    );
    assert!(!out.contains(AGENT_TOKEN), "the token is never printed");
    wait_for("web up, without a restart", LIMIT, || async {
        (api.json("/v1/hosts/web").await["status"] == "up").then_some(())
    })
    .await;

    // With db's token too: web is left as it is, db joins.
    std::fs::write(tokens.join("db.token"), format!("{AGENT_TOKEN}\n")).expect("db's token");
    let (ok, out) = discover_add();
    assert!(ok, "{out}");
    assert!(out.contains("web: already joined as web"), "{out}");
    assert!(out.contains("added db: http://127.0.0.3"), "{out}");
    wait_for("db up", LIMIT, || async {
        (api.json("/v1/hosts/db").await["status"] == "up").then_some(())
    })
    .await;
    let fleet = api.json("/v1/fleet").await;
    let mut names = host_names(&fleet);
    names.sort();
    assert_eq!(names, ["db", "web"], "{fleet}");
}
