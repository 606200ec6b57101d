//! Issue 16 item 6: an `.env` edit takes effect the way the app reads it. On the test bed, with
//! real docker-compose (Debian's 1.29) against podman's Docker API and the real systemd user
//! manager: `apply` recreates a compose service's container (its environment then holds the new
//! value), restarts a unit that reads the file with `EnvironmentFile=`, and refuses a container
//! made without compose, saying it must be recreated.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::*;
use fleetdeck_proto::AppState;

const LIMIT: Duration = Duration::from_secs(60);

/// A compose project run with docker-compose, taken down when dropped.
struct Project {
    name: String,
    dir: PathBuf,
}

impl Project {
    fn up(dir: &Path) -> Self {
        let name = unique("apply");
        let image = std::env::var("TESTBED_IMAGE").expect("TESTBED_IMAGE");
        std::fs::write(
            dir.join("docker-compose.yml"),
            format!(
                "version: \"3\"\nservices:\n  web:\n    image: {image}\n    command: [\"sh\", \"-c\", \"trap 'exit 0' TERM; while true; do sleep 1; done\"]\n    env_file: .env\n"
            ),
        )
        .expect("compose file");
        let out = Command::new("docker-compose")
            .args(["--project-name", &name, "up", "-d"])
            .current_dir(dir)
            .output()
            .expect("docker-compose (scripts/setup.sh installs it)");
        assert!(
            out.status.success(),
            "docker-compose up: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Self {
            name,
            dir: dir.to_owned(),
        }
    }

    fn container(&self) -> String {
        format!("{}_web_1", self.name)
    }
}

impl Drop for Project {
    fn drop(&mut self) {
        let _ = Command::new("docker-compose")
            .args(["--project-name", &self.name, "down", "-t", "2"])
            .current_dir(&self.dir)
            .output();
    }
}

/// The value of `key` in the container's environment, as the engine holds it.
fn container_env(container: &str, key: &str) -> Option<String> {
    let out = run(
        "podman",
        &["inspect", container, "--format", "{{json .Config.Env}}"],
    );
    let env: Vec<String> = serde_json::from_str(out.trim()).expect("env json");
    env.iter()
        .find_map(|kv| kv.strip_prefix(&format!("{key}=")).map(str::to_owned))
}

async fn edit_env(agent: &RunningAgent, app: &str, key: &str, value: &str) {
    let file: fleetdeck_proto::EnvFile =
        serde_json::from_value(agent.get_json(&format!("/v1/apps/{app}/env")).await)
            .expect("EnvFile");
    let resp = agent
        .client
        .put(agent.url(&format!("/v1/apps/{app}/env")))
        .bearer_auth(TOKEN)
        .header("If-Match", format!("\"{}\"", file.etag))
        .json(&serde_json::json!({"set": {key: value}}))
        .send()
        .await
        .expect("PUT env");
    assert_eq!(
        resp.status(),
        200,
        "{}",
        resp.text().await.unwrap_or_default()
    );
}

async fn apply(agent: &RunningAgent, app: &str) -> (u16, serde_json::Value) {
    let resp = agent
        .client
        .post(agent.url(&format!("/v1/apps/{app}/actions/apply")))
        .bearer_auth(TOKEN)
        .send()
        .await
        .expect("apply");
    let status = resp.status().as_u16();
    (status, resp.json().await.expect("json"))
}

#[tokio::test]
async fn apply_recreates_compose_containers_restarts_units_and_refuses_plain_containers() {
    require_testbed();
    let work = Workdir::new();
    let shop = work.path("shop");
    std::fs::create_dir(&shop).expect("project dir");
    std::fs::write(shop.join(".env"), "GREETING=hello\n").expect(".env");
    let project = Project::up(&shop);
    let web = project.container();
    assert_eq!(container_env(&web, "GREETING").as_deref(), Some("hello"));

    // A unit that reads its environment from a file, and says what it read.
    let unit_env = work.path("api.env");
    std::fs::write(&unit_env, "GREETING=hello\n").expect("unit env");
    let said = work.path("api.said");
    let unit = UnitFile::start_with(
        "apply-unit",
        &format!("EnvironmentFile={}\n", unit_env.display()),
        &format!(
            "echo \"$GREETING\" > {}; while true; do sleep 1; done",
            said.display()
        ),
    );

    let plain_env = work.path("plain.env");
    std::fs::write(&plain_env, "GREETING=hello\n").expect("plain env");
    let plain = Container::run(
        "apply-plain",
        &["--env-file", plain_env.to_str().expect("utf-8")],
        &["sleep", "3600"],
    );

    let config = work.config(&format!(
        "[[apps]]\nname = \"web\"\ndocker_container = \"{web}\"\nenv_file = \"{}\"\nallow_actions = true\n\
         [[apps]]\nname = \"api\"\nsystemd_unit = \"{}\"\nenv_file = \"{}\"\nallow_actions = true\n\
         [[apps]]\nname = \"plain\"\ndocker_container = \"{}\"\nenv_file = \"{}\"\nallow_actions = true\n",
        shop.join(".env").display(),
        unit.name,
        unit_env.display(),
        plain.name,
        plain_env.display()
    ));
    let agent = RunningAgent::start(&config);
    agent.wait_state("web", AppState::Running).await;

    // The compose service: recreated in its project, with the new value.
    edit_env(&agent, "web", "GREETING", "bonjour").await;
    assert_eq!(
        container_env(&web, "GREETING").as_deref(),
        Some("hello"),
        "an edit alone changes nothing in the container"
    );
    let (status, outcome) = apply(&agent, "web").await;
    assert_eq!(status, 200, "{outcome}");
    let result = outcome["result"].as_str().expect("result");
    assert!(
        result.contains("recreated") && result.contains("docker-compose"),
        "{result}"
    );
    assert_eq!(container_env(&web, "GREETING").as_deref(), Some("bonjour"));
    agent.wait_state("web", AppState::Running).await;

    // The unit: restarted, and it read the new value at start.
    wait_for("the unit's first reading", LIMIT, || async {
        (std::fs::read_to_string(&said).ok()?.trim() == "hello").then_some(())
    })
    .await;
    edit_env(&agent, "api", "GREETING", "salut").await;
    let (status, outcome) = apply(&agent, "api").await;
    assert_eq!(status, 200, "{outcome}");
    assert!(
        outcome["result"]
            .as_str()
            .is_some_and(|r| r.contains("EnvironmentFile")),
        "{outcome}"
    );
    wait_for("the unit reading the new value", LIMIT, || async {
        (std::fs::read_to_string(&said).ok()?.trim() == "salut").then_some(())
    })
    .await;

    // A container made without compose: refused, saying why, and left running as it was.
    edit_env(&agent, "plain", "GREETING", "hola").await;
    let (status, body) = apply(&agent, "plain").await;
    assert_eq!(status, 409, "{body}");
    assert_eq!(body["error"]["code"], "cannot_apply");
    let message = body["error"]["message"].as_str().expect("message");
    assert!(
        message.contains("not created by compose") && message.contains("Recreate it"),
        "{message}"
    );
    assert!(!message.contains("hola"), "no value in the message");
    assert_eq!(
        container_env(&plain.name, "GREETING").as_deref(),
        Some("hello")
    );
    assert_eq!(agent.app("plain").await.state, AppState::Running);
}
