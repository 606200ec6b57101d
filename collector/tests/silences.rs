//! Issue 15: the alert history, acknowledgement and silences, through the real collector binary
//! polling and streaming a simulated host (`fleetdeck-sim`, real HTTP), a real webhook receiver,
//! and the collector's command line writing to the database the running collector reads.

mod common;
#[path = "common/sim_bench.rs"]
mod sim_bench;

use std::process::Command;

use common::*;
use fleetdeck_proto::{AppState, Exit};
use serde_json::{json, Value};
use sim_bench::*;

async fn send(api: &Api, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
    let mut req = api
        .http
        .request(
            method.parse().expect("method"),
            format!("{}{path}", api.base),
        )
        .bearer_auth(&api.key);
    if let Some(body) = body {
        req = req.json(&body);
    }
    let resp = req.send().await.expect("request");
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

/// The alerts of `app` in the history (newest first within each state).
async fn alerts_of(api: &Api, app: &str, query: &str) -> Vec<Value> {
    let page = api.json(&format!("/v1/alerts?app={app}{query}")).await;
    page["alerts"].as_array().cloned().unwrap_or_default()
}

fn cli(config: &std::path::Path, args: &[&str]) -> (bool, String) {
    let out = Command::new(collector_bin())
        .arg("--config")
        .arg(config)
        .args(args)
        .output()
        .expect("run the collector's command line");
    save_log("fleetdeck-collector-silence", None, &out.stderr);
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silenced_crash_is_history_not_news_until_the_silence_ends_then_acknowledged() {
    let b = bench().await;
    let ops = Api::new(&b.collector, &create_key(&b.config, "ops", "operator"));
    let viewer = Api::new(&b.collector, &create_key(&b.config, "watcher", "viewer"));
    let (app, other) = (b.apps[0].clone(), b.apps[1].clone());
    let (status, silence) = send(
        &ops,
        "POST",
        "/v1/silences",
        Some(json!({"hosts": "sim", "apps": app, "duration": "1h", "reason": "deploying"})),
    )
    .await;
    assert_eq!(status, 201, "{silence}");
    assert_eq!(silence["created_by"], "ops");
    let listed = b.api.json("/v1/silences").await;
    assert_eq!(listed[0]["id"], silence["id"], "{listed}");
    // A bad silence says what to send.
    let (status, refused) = send(
        &ops,
        "POST",
        "/v1/silences",
        Some(json!({"hosts": "sim", "reason": "no end"})),
    )
    .await;
    assert_eq!(status, 400);
    assert!(
        refused["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("duration")),
        "{refused}"
    );

    // The other app is not silenced: its crash goes out, so alerts flow.
    b.sim
        .set_state(0, &other, AppState::Failed, Some(Exit::Code(1)));
    b.alert("problem", &format!("{other} on sim")).await;
    b.sim
        .set_state(0, &app, AppState::Failed, Some(Exit::Code(3)));
    // Recorded first, then marked with the silence that holds it: wait for both.
    let alert = wait_for("the silenced alert in the history", LIMIT, || async {
        alerts_of(&b.api, &app, "")
            .await
            .into_iter()
            .find(|a| a["silenced_by"] == silence["id"])
    })
    .await;
    assert_eq!(alert["state"], "open", "{alert}");
    assert_eq!(alert["severity"], "critical");
    b.two_more_polls().await;
    assert_eq!(
        b.alerts_with(&format!("{app} on sim")),
        0,
        "a silenced crash reached the webhook: {:?}",
        b.hook.received()
    );

    // Ended early while the problem is still open: delivered then.
    let (status, ended) = send(
        &ops,
        "DELETE",
        &format!("/v1/silences/{}", silence["id"]),
        None,
    )
    .await;
    assert_eq!(status, 200, "{ended}");
    assert_eq!(ended["removed_by"], "ops");
    b.alert("problem", &format!("{app} on sim")).await;
    assert_eq!(b.alerts_with(&format!("{app} on sim")), 1);

    // Acknowledged: who and the note; a second acknowledgement and a viewer's are refused.
    let ack_path = format!("/v1/alerts/{}/ack", alert["id"]);
    let (status, denied) = send(&viewer, "POST", &ack_path, None).await;
    assert_eq!(status, 403, "{denied}");
    let (status, acked) = send(&ops, "POST", &ack_path, Some(json!({"note": "on it"}))).await;
    assert_eq!(status, 200, "{acked}");
    assert_eq!(
        (
            &acked["state"],
            &acked["acknowledged_by"],
            &acked["ack_note"]
        ),
        (&json!("acknowledged"), &json!("ops"), &json!("on it"))
    );
    let (status, again) = send(&ops, "POST", &ack_path, None).await;
    assert_eq!(status, 409, "{again}");
    let open = b.api.json("/v1/alerts?state=acknowledged").await;
    assert_eq!(open["alerts"][0]["id"], alert["id"], "{open}");

    // Recovered: resolved, with the problem's and the recovery's deliveries.
    b.sim.set_state(0, &app, AppState::Running, None);
    b.alert("recovery", &format!("{app} on sim")).await;
    let resolved = wait_for("the alert resolved with both deliveries", LIMIT, || async {
        let a = alerts_of(&b.api, &app, "&state=resolved")
            .await
            .into_iter()
            .next()?;
        (a["deliveries"].as_array()?.len() == 2).then_some(a)
    })
    .await;
    assert_eq!(resolved["acknowledged_by"], "ops");
    let of: Vec<&str> = resolved["deliveries"]
        .as_array()
        .expect("deliveries")
        .iter()
        .filter_map(|d| d["of"].as_str())
        .collect();
    assert_eq!(of, ["problem", "recovery"], "{resolved}");
    assert!(resolved["resolved_unix_ms"].as_u64() > resolved["started_unix_ms"].as_u64());

    // Everything done is audited with the key's name; the refused acknowledgement too.
    let audit = b.api.json("/v1/audit?limit=1000").await;
    let entries = audit["entries"].as_array().expect("entries");
    for (who, action, result) in [
        ("ops", "silence.add", "ok"),
        ("ops", "silence.remove", "ok"),
        ("ops", "alert.ack", "ok"),
        ("watcher", "alert.ack", "denied"),
    ] {
        assert!(
            entries
                .iter()
                .any(|e| e["key_name"] == who && e["action"] == action && e["result"] == result),
            "{who} {action} {result} not audited: {audit}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_problem_over_under_its_silence_is_never_sent_and_the_command_line_silences_too() {
    let b = bench().await;
    let app = b.apps[0].clone();
    // Added at the command line while the collector runs.
    let (ok, out) = cli(
        &b.config,
        &[
            "silence",
            "add",
            "--hosts",
            "s*",
            "--duration",
            "30m",
            "--reason",
            "window",
        ],
    );
    assert!(ok, "{out}");
    assert!(out.contains("added #"), "{out}");
    let listed = b.api.json("/v1/silences").await;
    assert_eq!(listed[0]["created_by"], "(command line)", "{listed}");
    let id = listed[0]["id"].as_i64().expect("id");

    // Crashed and recovered under the silence: in the history, resolved; nothing sent.
    b.sim
        .set_state(0, &app, AppState::Failed, Some(Exit::Code(3)));
    wait_for("the silenced alert", LIMIT, || async {
        alerts_of(&b.api, &app, "&state=open")
            .await
            .into_iter()
            .next()
    })
    .await;
    b.sim.set_state(0, &app, AppState::Running, None);
    let alert = wait_for("the silenced alert resolved", LIMIT, || async {
        alerts_of(&b.api, &app, "&state=resolved")
            .await
            .into_iter()
            .next()
    })
    .await;
    assert_eq!(alert["silenced_by"], id, "{alert}");
    assert_eq!(alert["deliveries"], json!([]), "{alert}");

    // Listed and removed at the command line; a second removal says there is none.
    let (ok, out) = cli(&b.config, &["silence", "list"]);
    assert!(ok && out.contains(&format!("#{id} hosts=s*")), "{out}");
    let (ok, out) = cli(&b.config, &["silence", "rm", &id.to_string()]);
    assert!(ok && out.contains("removed"), "{out}");
    let (ok, out) = cli(&b.config, &["silence", "rm", &id.to_string()]);
    assert!(!ok && out.contains("no silence"), "{out}");
    // Held problems that ended under the silence stay unsent after it ends, and a crash now
    // goes out.
    b.sim
        .set_state(0, &app, AppState::Failed, Some(Exit::Code(4)));
    b.alert("problem", &format!("{app} on sim")).await;
    assert_eq!(
        b.alerts_with(&format!("{app} on sim")),
        1,
        "{:?}",
        b.hook.received()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_maintenance_window_silences_its_hosts_until_it_ends() {
    // A window open now (this minute, every day, UTC) for two minutes: it ends within 60-120 s.
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs();
    let start = format!("{:02}:{:02}", (now / 3600) % 24, (now / 60) % 60);
    let b = bench_with(move |hook| {
        format!(
            "[[webhooks]]\nurl = \"{}\"\n\
             [[maintenance]]\nname = \"nightly\"\nhosts = \"s*\"\nstart = \"{start}\"\n\
             duration = \"2m\"\ntimezone = \"UTC\"\nreason = \"kernel updates\"\n",
            hook.url()
        )
    })
    .await;
    let app = b.apps[0].clone();
    let silence = wait_for("the window's silence", LIMIT, || async {
        let listed = b.api.json("/v1/silences").await;
        listed
            .as_array()?
            .iter()
            .find(|s| s["created_by"] == "maintenance nightly")
            .cloned()
    })
    .await;
    assert_eq!(silence["reason"], "kernel updates", "{silence}");
    b.sim
        .set_state(0, &app, AppState::Failed, Some(Exit::Code(3)));
    // Recorded first, then marked with the silence that holds it (or sent): wait for either.
    let alert = wait_for("the alert, marked or sent", LIMIT, || async {
        alerts_of(&b.api, &app, "").await.into_iter().find(|a| {
            !a["silenced_by"].is_null() || a["deliveries"].as_array().is_some_and(|d| !d.is_empty())
        })
    })
    .await;
    assert_eq!(alert["silenced_by"], silence["id"], "{alert}");
    b.two_more_polls().await;
    assert_eq!(
        b.alerts_with(&format!("{app} on sim")),
        0,
        "{:?}",
        b.hook.received()
    );
    // The window ends with the problem still open: it is delivered then.
    let ends = silence["ends_unix_ms"].as_u64().expect("end");
    wait_for(
        "the problem delivered after the window",
        std::time::Duration::from_secs(150),
        || async { (b.alerts_with(&format!("{app} on sim failed")) == 1).then_some(()) },
    )
    .await;
    let delivered_at = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_millis() as u64;
    assert!(delivered_at >= ends, "delivered before the window ended");
}
