//! Moving to PostgreSQL (issue 17): a collector's SQLite history, made by the real collector
//! polling a simulated agent, is copied by `copy-from-sqlite` into a new database on the test
//! bed's PostgreSQL server; a collector started there serves it all (the API key made on SQLite
//! included) and goes on polling from the copied cursor: every sample of the agent is stored
//! once, with no gap across the move. A copy over data, over a running collector, from a file
//! that is not a database, or into SQLite is refused with nothing written.

mod common;

use std::path::Path;
use std::process::Output;
use std::time::Duration;

use common::*;
use fleetdeck_collector::params;
use fleetdeck_sim::SimConfig;

fn copy(config: &Path, source: &Path) -> Output {
    let out = std::process::Command::new(collector_bin())
        .arg("--config")
        .arg(config)
        .arg("copy-from-sqlite")
        .arg(source)
        .output()
        .expect("run copy-from-sqlite");
    save_log("fleetdeck-collector-copy", None, &out.stderr);
    out
}

/// Makes a key through the API (audited, unlike the command line's); its secret.
async fn key_through_api(api: &Api, name: &str) -> String {
    let resp = api
        .http
        .post(format!("{}/v1/keys", api.base))
        .bearer_auth(&api.key)
        .json(&serde_json::json!({"name": name, "role": "viewer"}))
        .send()
        .await
        .expect("POST /v1/keys");
    assert_eq!(resp.status(), 201, "POST /v1/keys {name}");
    let body: serde_json::Value = resp.json().await.expect("json");
    let key = body["key"].as_str().expect("the new key").to_owned();
    secret(&key);
    key
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Rows of the tables a move must carry, as (table, count).
fn counts(work: &Workdir) -> Vec<(String, i64)> {
    db(work)
        .run(|c| {
            let mut out = Vec::new();
            for table in fleetdeck_collector::store::copy::TABLES {
                let n = c.query_row(&format!("SELECT count(*) FROM {table}"), params![], |r| {
                    r.get::<i64>(0)
                })?;
                out.push(((*table).to_owned(), n));
            }
            Ok(out)
        })
        .expect("count the tables")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_sqlite_history_moves_to_postgresql_whole_and_polling_goes_on_without_a_gap() {
    if !on_postgres() {
        eprintln!("skipped: runs in the PostgreSQL pass, on the test bed's server");
        return;
    }
    let (_sim, addr) = serve_sim(SimConfig {
        hosts: 1,
        apps_per_host: 2,
        sample_interval: Duration::from_millis(100),
        token: AGENT_TOKEN.to_owned(),
        host_prefix: "sim".to_owned(),
        ..SimConfig::default()
    })
    .await;
    let base = format!("http://{addr}/agents/0");
    let agents = format!(
        "poll_interval = \"1s\"\n[[agents]]\nname = \"sim\"\nurl = \"{base}\"\ntoken_file = \"sim.token\"\n"
    );

    // A month of use, shortened: the collector on SQLite stores samples, statuses and events,
    // and an operator's key.
    let old = Workdir::sqlite();
    old.secret("sim.token", AGENT_TOKEN);
    let old_config = collector_config(&old, &agents);
    let key = create_key(&old_config, "ops", "admin");
    let mut collector = start_collector(&old_config);
    let first = key_through_api(&Api::new(&collector, &key), "made-on-sqlite").await;
    wait_for("samples on SQLite", Duration::from_secs(60), || async {
        let seqs = stored_seqs(&old, "sim");
        (seqs.iter().map(|(_, s)| s.len()).sum::<usize>() >= 100).then_some(())
    })
    .await;
    let new = Workdir::postgres();
    new.secret("sim.token", AGENT_TOKEN);
    let new_config = collector_config(&new, &agents);
    let source = old.path("collector.db");
    // Refused while a collector still writes the SQLite file.
    let out = copy(&new_config, &source);
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("another fleetdeck-collector runs on the database"),
        "{}",
        text(&out.stderr)
    );
    collector.stop();
    // A key made and revoked before the move: its id is never handed out again.
    create_key(&old_config, "gone-before-move", "viewer");
    let gone_id: i64 = db(&old)
        .run(|c| {
            c.query_row(
                "SELECT id FROM api_keys WHERE name = 'gone-before-move'",
                params![],
                |r| r.get(0),
            )
        })
        .expect("the revoked key's id");
    let out = std::process::Command::new(collector_bin())
        .arg("--config")
        .arg(&old_config)
        .args(["keys", "delete", "gone-before-move"])
        .output()
        .expect("keys delete");
    assert!(out.status.success(), "{}", text(&out.stderr));
    let before = stored_seqs(&old, "sim");
    assert_eq!(before.len(), 1, "one agent instance: {before:?}");
    let (instance, before_seqs) = &before[0];
    assert_contiguous(before_seqs, "on SQLite");
    let old_counts = counts(&old);

    // Refused, with nothing written: a file that is not a database; SQLite as the target.
    let junk = old.write("junk.db", "not a database at all, just text\n");
    let out = copy(&new_config, &junk);
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("not an SQLite database"),
        "{}",
        text(&out.stderr)
    );
    let out = copy(&old_config, &source);
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("writes into PostgreSQL"),
        "{}",
        text(&out.stderr)
    );

    // The move.
    let out = copy(&new_config, &source);
    assert!(out.status.success(), "copy failed: {}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains("copied"),
        "{}",
        text(&out.stdout)
    );
    assert_eq!(
        counts(&new),
        old_counts,
        "every table's rows, in PostgreSQL"
    );

    // Again over the copy: refused, and the copy is as it was.
    let out = copy(&new_config, &source);
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("already holds data"),
        "{}",
        text(&out.stderr)
    );
    assert_eq!(counts(&new), old_counts);

    // The collector on PostgreSQL: the key made on SQLite works, the history is there, and
    // polling goes on from the copied cursor.
    let mut collector = start_collector(&new_config);
    let api = Api::new(&collector, &key);
    let host = api.json("/v1/hosts/sim").await;
    assert_eq!(host["name"], "sim", "{host}");
    let out = copy(&new_config, &source);
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("a collector is running"),
        "{}",
        text(&out.stderr)
    );
    let newest_before = *before_seqs.last().expect("samples");
    wait_for("samples on PostgreSQL", Duration::from_secs(60), || async {
        let seqs = stored_seqs(&new, "sim");
        seqs.last()
            .and_then(|(_, s)| s.last())
            .filter(|last| **last >= newest_before + 50)
            .map(|_| ())
    })
    .await;
    let after = stored_seqs(&new, "sim");
    assert_eq!(after.len(), 1, "still one agent instance: {after:?}");
    assert_eq!(&after[0].0, instance);
    assert_eq!(
        &after[0].1[..before_seqs.len()],
        &before_seqs[..],
        "the copied samples"
    );
    assert_contiguous(&after[0].1, "across the move");
    // New rows take ids after the copied ones: a key and its audit line made now.
    let second = key_through_api(&api, "made-on-postgres").await;
    for made in [&first, &second] {
        assert_eq!(
            Api::new(&collector, made).get("/v1/fleet").await.status(),
            200
        );
    }
    let keys = api.json("/v1/keys").await;
    let new_id = keys
        .as_array()
        .expect("keys")
        .iter()
        .find(|k| k["name"] == "made-on-postgres")
        .and_then(|k| k["id"].as_i64())
        .expect("the new key's id");
    assert!(
        new_id > gone_id,
        "a key made after the move took id {new_id}, not after the revoked key's {gone_id}"
    );
    let audit = api.json("/v1/audit").await.to_string();
    assert!(
        audit.contains("made-on-sqlite") && audit.contains("made-on-postgres"),
        "the audit log holds the key made on SQLite and the one made on PostgreSQL: {audit}"
    );
    collector.stop();
    let logs = collector.logs().join("\n");
    assert!(
        !logs.contains("ERROR"),
        "the collector logged an error:\n{logs}"
    );
}
