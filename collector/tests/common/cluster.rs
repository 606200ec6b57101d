//! Collectors sharing a PostgreSQL database: a second one's config and each one's role
//! (`GET /v1/cluster`). Included by the cluster tests (`#[path]`), beside `common`.

use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

use serde_json::Value;

use super::common::*;

/// Whether this run is on SQLite, where a collector runs alone: the cluster tests then skip.
pub fn skip() -> bool {
    if !on_postgres() {
        eprintln!("skipped: runs with FLEETDECK_TEST_STORE=postgres (collectors share a PostgreSQL database)");
        return true;
    }
    false
}

/// How long a takeover may take here: the lease (2 s) and a tick, on a busy machine.
pub const TAKEOVER: Duration = Duration::from_secs(20);

/// A second collector's directory holding the same config (same database, same agents), so
/// each collector has its own lock file, as on two machines.
pub fn second_config(work: &Workdir, other: &Workdir, tokens: &[&str]) -> std::path::PathBuf {
    let text = std::fs::read_to_string(work.path("collector.toml")).expect("the first config");
    let config = other.write("collector.toml", &text);
    std::fs::set_permissions(&config, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    for name in tokens {
        other.secret(name, AGENT_TOKEN);
    }
    config
}

pub async fn role(api: &Api) -> Option<Value> {
    let response = api.get("/v1/cluster").await;
    if response.status() != 200 {
        return None;
    }
    response.json().await.ok()
}

pub async fn wait_role(api: &Api, want: &str, what: &str) -> Value {
    wait_for(what, TAKEOVER, || async {
        role(api).await.filter(|r| r["role"] == want)
    })
    .await
}
