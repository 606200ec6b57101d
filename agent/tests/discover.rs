//! Issue 16 item 1: apps found, not typed, on the real test bed (podman's Docker API, the
//! systemd user manager). `[discover]` watches matching containers and units as they appear and
//! drops them when they go; `fleetdeck-agent suggest` prints stanzas the agent loads as they are.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::*;

const LIMIT: Duration = Duration::from_secs(20);

/// A compose project's working directory with a `.env`, as `docker compose` leaves it.
fn project(work: &Workdir, name: &str) -> PathBuf {
    let dir = work.path(name);
    std::fs::create_dir(&dir).expect("project dir");
    std::fs::write(dir.join(".env"), "GREETING=hello\n").expect(".env");
    dir
}

/// The labels compose puts on a service's container.
fn compose_labels(project: &str, dir: &Path, service: &str) -> Vec<String> {
    [
        format!("com.docker.compose.project={project}"),
        format!("com.docker.compose.project.working_dir={}", dir.display()),
        format!("com.docker.compose.service={service}"),
    ]
    .into_iter()
    .flat_map(|l| ["--label".to_owned(), l])
    .collect()
}

fn container_with(prefix: &str, labels: &[String]) -> Container {
    let labels: Vec<&str> = labels.iter().map(String::as_str).collect();
    Container::run(prefix, &labels, &["sleep", "3600"])
}

/// A running user unit that reads `env_file` (`EnvironmentFile=`), removed when dropped.
fn env_unit(prefix: &str, env_file: &Path) -> UnitFile {
    UnitFile::start_with(
        prefix,
        &format!("EnvironmentFile={}\n", env_file.display()),
        "while true; do sleep 1; done",
    )
}

async fn apps(agent: &RunningAgent) -> Vec<fleetdeck_proto::AppStatus> {
    serde_json::from_value(agent.get_json("/v1/apps").await).expect("apps")
}

#[tokio::test]
async fn discovered_containers_and_units_come_and_go() {
    require_testbed();
    let work = Workdir::new();
    let pid = std::process::id();
    let shop = project(&work, "shop");
    let unit_env = work.path("worker.env");
    std::fs::write(&unit_env, "QUEUE=jobs\n").expect("unit env");
    let config = work.config(&format!(
        "[discover]\ncontainers = [\"fdtest-disc-{pid}-*\"]\nunits = [\"fdtest-discunit-{pid}-*.service\"]\n"
    ));
    let agent = RunningAgent::start(&config);
    assert!(apps(&agent).await.is_empty(), "nothing matches yet");

    // A container started after the agent: watched, with its compose project's .env.
    let web = container_with("disc", &compose_labels("shop", &shop, "web"));
    let found = wait_for("the new container watched", LIMIT, || async {
        apps(&agent)
            .await
            .into_iter()
            .find(|a| a.target == web.name)
    })
    .await;
    assert_eq!(found.name, web.name);
    assert_eq!(found.kind, fleetdeck_proto::AppKind::Docker);
    let env = agent.get(&format!("/v1/apps/{}/env", web.name)).await;
    assert_eq!(env.status(), 200, "its .env is read where compose keeps it");
    let env: serde_json::Value = env.json().await.expect("env json");
    assert_eq!(env["path"], shop.join(".env").display().to_string());
    // Discovered apps get no actions until the operator lists them.
    let act = agent
        .client
        .post(agent.url(&format!("/v1/apps/{}/actions/restart", web.name)))
        .bearer_auth(TOKEN)
        .send()
        .await
        .expect("act");
    assert_eq!(act.status(), 403);

    // A unit that matches, with its EnvironmentFile=.
    let unit = env_unit("discunit", &unit_env);
    let stem = unit.name.trim_end_matches(".service").to_owned();
    wait_for("the new unit watched", LIMIT, || async {
        apps(&agent)
            .await
            .into_iter()
            .find(|a| a.name == stem && a.state == fleetdeck_proto::AppState::Running)
    })
    .await;
    let env: serde_json::Value = agent.get_json(&format!("/v1/apps/{stem}/env")).await;
    assert_eq!(env["path"], unit_env.display().to_string());

    // Both go away: neither is watched any more.
    drop(web);
    drop(unit);
    wait_for("the removed container and unit dropped", LIMIT, || async {
        apps(&agent).await.is_empty().then_some(())
    })
    .await;
}

#[tokio::test]
async fn suggest_prints_stanzas_the_agent_loads() {
    require_testbed();
    let work = Workdir::new();
    let shop = project(&work, "shop-suggest");
    let unit_env = work.path("api.env");
    std::fs::write(&unit_env, "PORT=8080\n").expect("unit env");
    let web = container_with("sugg-web", &compose_labels("shop", &shop, "web"));
    let plain = container_with("sugg-plain", &[]);
    let listed = container_with("sugg-listed", &[]);
    let unit = env_unit("sugg-api", &unit_env);

    let listing = work.config(&container_app("already", &listed.name));
    let out = Command::new(agent_bin())
        .args(["suggest", "--systemd", "user", "--config"])
        .arg(&listing)
        .output()
        .expect("run suggest");
    save_log("fleetdeck-agent-suggest", Some(&out.stdout), &out.stderr);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).expect("utf-8");
    let parsed: toml::Value = toml::from_str(&text).expect("suggest prints TOML");
    let stanzas = parsed["apps"].as_array().expect("[[apps]]").clone();
    let find = |key: &str, target: &str| {
        stanzas
            .iter()
            .find(|s| s.get(key).and_then(|v| v.as_str()) == Some(target))
            .cloned()
    };

    let s = find("docker_container", &web.name).expect("the compose container");
    assert_eq!(s["name"].as_str(), Some(web.name.as_str()));
    assert_eq!(
        s["env_file"].as_str(),
        Some(shop.join(".env").to_str().expect("utf-8"))
    );
    assert_eq!(s["allow_actions"].as_bool(), Some(false));
    let s = find("docker_container", &plain.name).expect("the plain container");
    assert!(s.get("env_file").is_none(), "no .env to find: {s}");
    assert!(
        find("docker_container", &listed.name).is_none(),
        "an app agent.toml lists already is not suggested again"
    );
    let s = find("systemd_unit", &unit.name).expect("the unit");
    assert_eq!(
        s["name"].as_str(),
        Some(unit.name.trim_end_matches(".service"))
    );
    assert_eq!(s["env_file"].as_str(), unit_env.to_str());
    // No unit of the OS: every suggested unit's file is outside the distribution's directories,
    // and is not a transient one (the test bed's other tests run many).
    for s in &stanzas {
        let Some(u) = s.get("systemd_unit").and_then(|v| v.as_str()) else {
            continue;
        };
        let fragment = run(
            "systemctl",
            &["--user", "show", "-p", "FragmentPath", "--value", u],
        );
        let fragment = fragment.trim();
        assert!(
            !fragment.is_empty()
                && !fragment.starts_with("/usr/")
                && !fragment.starts_with("/lib/")
                && !fragment.contains("/transient/"),
            "{u} ({fragment}) is the system's, not an app"
        );
    }
    // The drop-in names both .env directories.
    for dir in [&shop, &work.dir.path().to_owned()] {
        assert!(
            text.contains(&format!("# ReadWritePaths=-{}\n", dir.display())),
            "the drop-in lists {}:\n{text}",
            dir.display()
        );
    }

    // The stanzas are a config the agent takes as it is.
    let config = work.config(&text);
    let agent = RunningAgent::start(&config);
    let names: Vec<String> = apps(&agent).await.into_iter().map(|a| a.name).collect();
    assert!(names.contains(&web.name), "{names:?}");
    assert!(names.contains(&unit.name.trim_end_matches(".service").to_owned()));
}
