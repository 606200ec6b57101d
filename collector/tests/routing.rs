//! Issue 15: routing, repeats, escalation and channel tests, through the real collector binary
//! polling and streaming a simulated host (`fleetdeck-sim`, real HTTP), with a real webhook
//! receiver behind each channel.

mod common;
#[path = "common/sim_bench.rs"]
mod sim_bench;

use std::process::Command;

use common::*;
use fleetdeck_proto::{AppState, Exit};
use serde_json::{json, Value};
use sim_bench::*;

/// Bodies received by `r` whose message contains `text`.
fn with(r: &Receiver, text: &str) -> Vec<Value> {
    r.received()
        .into_iter()
        .filter(|b| b["message"].as_str().is_some_and(|m| m.contains(text)))
        .collect()
}

async fn wait_body(r: &Receiver, what: &str, text: &str) -> Value {
    wait_for(what, LIMIT, || async { with(r, text).into_iter().next() }).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn critical_to_a_warning_to_b_repeats_and_escalation_stop_at_acknowledgement() {
    let (a, b, c) = (
        Receiver::start().await,
        Receiver::start().await,
        Receiver::start().await,
    );
    let alerting = format!(
        "[[channels]]\nname = \"pager\"\nurl = \"{}\"\n\
         [[channels]]\nname = \"chat\"\nurl = \"{}\"\n\
         [[channels]]\nname = \"lead\"\nurl = \"{}\"\n\
         [[routes]]\nseverity = \"critical\"\nchannels = [\"pager\"]\nrepeat_every = \"2s\"\n\
         escalate_after = \"3s\"\nescalate_to = [\"lead\"]\n\
         [[routes]]\nseverity = \"warning\"\nchannels = [\"chat\"]\n",
        a.url(),
        b.url(),
        c.url()
    );
    let bench = bench_with(move |_| alerting).await;
    let ops = Api::new(
        &bench.collector,
        &create_key(&bench.config, "ops", "operator"),
    );
    let (app, other) = (bench.apps[0].clone(), bench.apps[1].clone());

    // A crash is critical: the pager only. A failing check is a warning: chat only.
    bench
        .sim
        .set_state(0, &app, AppState::Failed, Some(Exit::Code(3)));
    wait_body(
        &a,
        "the crash on the pager",
        &format!("{app} on sim failed"),
    )
    .await;
    bench
        .sim
        .check_ran(0, &other, "health", false, Some("HTTP 500, expected 200"));
    wait_body(&b, "the check on chat", "check health").await;
    // Not acknowledged: reminders on the pager, then the lead hears of it.
    wait_body(&a, "a reminder on the pager", "Reminder:").await;
    let escalated = wait_body(&c, "the escalation to the lead", "Escalated").await;
    assert!(
        escalated["message"]
            .as_str()
            .is_some_and(|m| m.contains(&format!("{app} on sim failed"))),
        "{escalated}"
    );
    assert!(
        with(&b, &format!("{app} on sim")).is_empty(),
        "{:?}",
        b.received()
    );
    assert!(with(&a, "check health").is_empty(), "{:?}", a.received());
    assert!(with(&c, "check health").is_empty(), "{:?}", c.received());
    assert!(
        bench.hook.received().is_empty(),
        "the bench's own receiver is no channel here"
    );

    // Acknowledged: no more reminders (at most one already on its way).
    let alert = ops.json(&format!("/v1/alerts?app={app}&state=open")).await["alerts"][0].clone();
    let resp = ops
        .http
        .post(format!("{}/v1/alerts/{}/ack", ops.base, alert["id"]))
        .bearer_auth(&ops.key)
        .send()
        .await
        .expect("ack");
    assert_eq!(resp.status(), 200);
    let reminders = with(&a, "Reminder:").len();
    // Six polls of a second each: three periods of the reminder.
    for _ in 0..3 {
        bench.two_more_polls().await;
    }
    let later = with(&a, "Reminder:").len();
    assert!(
        later <= reminders + 1,
        "reminders went on after the acknowledgement: {reminders} then {later}"
    );
    assert_eq!(with(&c, "Escalated").len(), 1, "escalated once");

    // The recovery goes where the problem went, the escalation included; not to chat.
    bench.sim.set_state(0, &app, AppState::Running, None);
    wait_body(
        &a,
        "the recovery on the pager",
        &format!("{app} on sim recovered"),
    )
    .await;
    wait_body(
        &c,
        "the recovery to the lead",
        &format!("{app} on sim recovered"),
    )
    .await;
    assert!(
        with(&b, &format!("{app} on sim")).is_empty(),
        "{:?}",
        b.received()
    );
    // The history lists each channel's deliveries by name.
    let resolved = ops
        .json(&format!("/v1/alerts?app={app}&state=resolved"))
        .await;
    let channels: Vec<String> = resolved["alerts"][0]["deliveries"]
        .as_array()
        .expect("deliveries")
        .iter()
        .filter_map(|d| d["channel"].as_str().map(str::to_owned))
        .collect();
    assert!(
        channels.iter().any(|c| c.starts_with("pager (")),
        "{resolved}"
    );
    assert!(
        channels.iter().any(|c| c.starts_with("lead (")),
        "{resolved}"
    );
    assert!(
        !channels.iter().any(|c| c.starts_with("chat")),
        "{resolved}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_channel_test_reports_the_receivers_answer_through_the_api_and_the_command_line() {
    let good = Receiver::start().await;
    // Nothing listens on a port bound and released at once.
    let dead_port = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port();
    let good_url = good.url().replace("/hook", "/hook?token=secret-path");
    let alerting = format!(
        "[[channels]]\nname = \"good\"\nurl = \"{good_url}\"\n\
         [[channels]]\nname = \"dead\"\nurl = \"http://127.0.0.1:{dead_port}/secret-path\"\n"
    );
    // The receiver's route is /hook: the query is ignored, and it stands for a secret.
    secret("secret-path");
    let bench = bench_with(move |_| alerting).await;
    let ops = Api::new(
        &bench.collector,
        &create_key(&bench.config, "ops", "operator"),
    );

    let listed = bench.api.json("/v1/channels").await;
    assert_eq!(listed.as_array().map(Vec::len), Some(2), "{listed}");
    assert!(!listed.to_string().contains("secret-path"), "{listed}");

    let test = |api: &Api, name: &str| {
        let (api, name) = (api.clone(), name.to_owned());
        async move {
            let resp = api
                .http
                .post(format!("{}/v1/channels/{name}/test", api.base))
                .bearer_auth(&api.key)
                .send()
                .await
                .expect("test");
            let status = resp.status().as_u16();
            (status, resp.json::<Value>().await.unwrap_or(Value::Null))
        }
    };
    let (status, ok) = test(&bench.api, "good").await;
    assert_eq!(status, 200, "{ok}");
    assert_eq!(
        (&ok["ok"], &ok["status"]),
        (&json!(true), &json!(200)),
        "{ok}"
    );
    let body = wait_body(&good, "the test alert", "TEST ALERT").await;
    assert_eq!(body["host"], "fleetdeck-collector");
    let (status, failed) = test(&bench.api, "dead").await;
    assert_eq!(status, 200, "{failed}");
    assert_eq!(failed["ok"], false, "{failed}");
    assert!(
        failed["error"].as_str().is_some_and(|e| !e.is_empty()),
        "{failed}"
    );
    assert!(!failed.to_string().contains("secret-path"), "{failed}");
    assert_eq!(
        test(&ops, "good").await.0,
        403,
        "an operator may not test channels"
    );
    assert_eq!(test(&bench.api, "nope").await.0, 404);

    let cli = |args: &[&str]| {
        let out = Command::new(collector_bin())
            .arg("--config")
            .arg(&bench.config)
            .args(args)
            .output()
            .expect("run the command line");
        save_log("fleetdeck-collector-channels", None, &out.stderr);
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
        )
    };
    let (code, out) = cli(&["channels", "test", "good"]);
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("delivered: HTTP 200"), "{out}");
    let (code, out) = cli(&["channels", "test", "dead"]);
    assert_eq!(code, Some(1), "{out}");
    assert!(out.contains("NOT delivered"), "{out}");
    let (code, out) = cli(&["channels", "list"]);
    assert_eq!(code, Some(0), "{out}");
    assert!(
        out.contains("good") && out.contains("dead") && !out.contains("secret-path"),
        "{out}"
    );
    assert_eq!(
        with(&good, "TEST ALERT").len(),
        2,
        "one test through the API, one from the CLI"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_reloads_channels_and_a_broken_file_keeps_the_running_config() {
    let (a, b) = (Receiver::start().await, Receiver::start().await);
    let a_url = a.url();
    let mut bench =
        bench_with(move |_| format!("[[channels]]\nname = \"first\"\nurl = \"{a_url}\"\n")).await;
    let (app, other) = (bench.apps[0].clone(), bench.apps[1].clone());
    bench
        .sim
        .set_state(0, &app, AppState::Failed, Some(Exit::Code(3)));
    wait_body(
        &a,
        "the crash to the first channel",
        &format!("{app} on sim failed"),
    )
    .await;

    // The same file with another channel in place of the first; SIGHUP.
    let text = std::fs::read_to_string(&bench.config).expect("config");
    let reloaded = text.replace(
        &format!("[[channels]]\nname = \"first\"\nurl = \"{}\"\n", a.url()),
        &format!("[[channels]]\nname = \"second\"\nurl = \"{}\"\n", b.url()),
    );
    assert_ne!(reloaded, text);
    std::fs::write(&bench.config, &reloaded).expect("write");
    let hup = |pid: u32| {
        run("kill", &["-HUP", &pid.to_string()]);
    };
    hup(bench.collector.pid());
    wait_for("the second channel listed", LIMIT, || async {
        let listed = bench.api.json("/v1/channels").await;
        (listed[0]["name"] == "second").then_some(())
    })
    .await;
    // The open alert stays open, and its recovery goes to the channels that exist now.
    bench
        .sim
        .set_state(0, &other, AppState::Failed, Some(Exit::Code(4)));
    wait_body(
        &b,
        "a new crash to the second channel",
        &format!("{other} on sim failed"),
    )
    .await;
    assert!(
        with(&a, &format!("{other} on sim")).is_empty(),
        "{:?}",
        a.received()
    );
    let open = bench
        .api
        .json(&format!("/v1/alerts?app={app}&state=open"))
        .await;
    assert_eq!(open["alerts"].as_array().map(Vec::len), Some(1), "{open}");

    // A broken file: the running configuration stays, and the log says why.
    std::fs::write(
        &bench.config,
        format!("{reloaded}\n[[routes]]\nchannels = [\"nowhere\"]\n"),
    )
    .expect("write");
    hup(bench.collector.pid());
    wait_for("the refusal in the log", LIMIT, || {
        let refused = bench
            .collector
            .logs()
            .iter()
            .any(|l| l.contains("not reloaded") && l.contains("nowhere"));
        async move { refused.then_some(()) }
    })
    .await;
    let listed = bench.api.json("/v1/channels").await;
    assert_eq!(listed[0]["name"], "second", "{listed}");
    bench.sim.set_state(0, &other, AppState::Running, None);
    wait_body(
        &b,
        "the recovery on the second channel",
        &format!("{other} on sim recovered"),
    )
    .await;
}
