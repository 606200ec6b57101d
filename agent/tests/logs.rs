//! Logs through the real agent: journald for units, the Docker API for containers; pages newest
//! first with `before`, grep and priority; live follows that resume from a cursor with nothing lost
//! or doubled; hostile output; and journalctl processes freed when a client goes away.

mod common;

use std::time::Duration;

use common::*;
use fleetdeck_proto::{LogEntry, LogPage, LogStream};

async fn page(agent: &RunningAgent, app: &str, query: &str) -> Vec<LogEntry> {
    let page: LogPage = serde_json::from_value(
        agent
            .get_json(&format!("/v1/apps/{app}/logs?{query}"))
            .await,
    )
    .expect("LogPage");
    page.entries
}

/// The same page asked for one entry a line (`Accept: application/x-ndjson`): its lines, parsed
/// as entries or as the error that ends it.
async fn page_lines(agent: &RunningAgent, app: &str, query: &str) -> Vec<serde_json::Value> {
    let resp = reqwest::Client::new()
        .get(agent.url(&format!("/v1/apps/{app}/logs?{query}")))
        .bearer_auth(TOKEN)
        .header("accept", "application/x-ndjson")
        .send()
        .await
        .expect("request");
    assert_eq!(resp.status(), 200, "{query}");
    assert_eq!(resp.headers()["content-type"], "application/x-ndjson");
    let body = resp.text().await.expect("body");
    assert!(body.is_empty() || body.ends_with('\n'), "{body}");
    body.lines()
        .map(|l| serde_json::from_str(l).expect("a JSON line"))
        .collect()
}

/// A page asked for one entry a line answers what the JSON page answers, for a unit's search
/// (streamed from journalctl as it prints) and a container's page alike.
#[tokio::test]
async fn a_page_streamed_a_line_at_a_time_answers_the_same_entries() {
    require_testbed();
    let script = "for i in 1 2 3 4 5 6 7 8; do echo \"s $i\"; done; sleep 1000";
    let unit = TransientUnit::start("lines", &[], script);
    let c = Container::run("lines", &[], &["sh", "-c", script]);
    let work = Workdir::new();
    let mut config = unit_app("web", &unit.name);
    config.push_str(&container_app("cache", &c.name));
    let agent = RunningAgent::start(&work.config(&config));
    for app in ["web", "cache"] {
        let all = wait_for("all eight lines", Duration::from_secs(20), || async {
            let e = page(&agent, app, "limit=100&grep=%5Es%20").await;
            (e.len() >= 8).then_some(e)
        })
        .await;
        let since = all[7].unix_us / 1_000;
        for query in [
            "grep=%5Es%20%5B2-7%5D&limit=3".to_owned(),
            format!(
                "grep=%5Es%20&limit=4&since={since}&before={}",
                urlencode(&all[1].cursor)
            ),
            "limit=2".to_owned(),
        ] {
            let whole = page(&agent, app, &query).await;
            let lines: Vec<LogEntry> = page_lines(&agent, app, &query)
                .await
                .into_iter()
                .map(|v| serde_json::from_value(v).expect("an entry, not an error"))
                .collect();
            assert!(!whole.is_empty(), "{app} {query}");
            assert_eq!(lines, whole, "{app} {query}");
        }
    }
    // A search that matches nothing is an empty answer, streamed or not (the streamed one once
    // closed the connection instead: its stream was polled past its end).
    for app in ["web", "cache"] {
        let query = "grep=no%20line%20says%20this&limit=5";
        assert_eq!(
            page(&agent, app, query).await,
            Vec::<LogEntry>::new(),
            "{app}"
        );
        assert_eq!(
            page_lines(&agent, app, query).await,
            Vec::<serde_json::Value>::new(),
            "{app}"
        );
    }
    // A search journalctl refuses is an error before the first line: a 400, as for a page.
    let resp = reqwest::Client::new()
        .get(agent.url("/v1/apps/web/logs?grep=%28unclosed"))
        .bearer_auth(TOKEN)
        .header("accept", "application/x-ndjson")
        .send()
        .await
        .expect("request");
    assert_eq!(resp.status(), 400);
}

fn entry(ev: &SseEvent) -> Option<LogEntry> {
    (ev.event.as_deref() == Some("log"))
        .then(|| serde_json::from_str(&ev.data).expect("LogEntry JSON"))
}

#[tokio::test]
async fn unit_log_pages_newest_first_with_before_grep_and_priority() {
    require_testbed();
    // <3> is the syslog prefix journald reads as priority err.
    let unit = TransientUnit::start(
        "logs",
        &[],
        "for i in 1 2 3 4 5 6 7 8 9 10; do echo \"line $i\"; done; echo \"<3>disk on fire\"; sleep 1000",
    );
    let work = Workdir::new();
    let agent = RunningAgent::start(&work.config(&unit_app("web", &unit.name)));
    let all = wait_for(
        "all 11 lines in the journal",
        Duration::from_secs(10),
        || async {
            let e = page(&agent, "web", "limit=100").await;
            (e.len() >= 11).then_some(e)
        },
    )
    .await;
    let messages: Vec<&str> = all.iter().map(|e| e.message.as_str()).collect();
    assert_eq!(
        messages[..3],
        ["disk on fire", "line 10", "line 9"],
        "newest first"
    );
    assert!(all.windows(2).all(|w| w[0].unix_us >= w[1].unix_us));
    assert_eq!(all[0].priority, Some(3));
    assert_eq!(all[1].priority, Some(6));

    let first = page(&agent, "web", "limit=3").await;
    let next = page(
        &agent,
        "web",
        &format!("limit=3&before={}", urlencode(&first[2].cursor)),
    )
    .await;
    let texts = |v: &[LogEntry]| v.iter().map(|e| e.message.clone()).collect::<Vec<_>>();
    assert_eq!(texts(&first), ["disk on fire", "line 10", "line 9"]);
    assert_eq!(
        texts(&next),
        ["line 8", "line 7", "line 6"],
        "before pages back without overlap"
    );

    assert_eq!(
        texts(&page(&agent, "web", "grep=LINE%20[2-3]$&limit=10").await),
        Vec::<String>::new(),
        "capitals: case-sensitive"
    );
    assert_eq!(
        texts(&page(&agent, "web", "grep=line%20[2-3]$&limit=10").await),
        ["line 3", "line 2"]
    );
    assert_eq!(
        texts(&page(&agent, "web", "priority=err").await),
        ["disk on fire"]
    );
    assert_eq!(
        texts(&page(&agent, "web", "priority=3").await),
        ["disk on fire"]
    );

    for (query, code) in [
        ("before=--since%3Dyesterday", "bad_cursor"),
        ("priority=loud", "bad_request"),
        ("grep=(unclosed", "bad_request"),
        ("colour=red", "bad_request"),
    ] {
        let resp = agent.get(&format!("/v1/apps/web/logs?{query}")).await;
        assert_eq!(resp.status(), 400, "{query}");
        let body: serde_json::Value = resp.json().await.expect("json");
        assert_eq!(body["error"]["code"], code, "{query}: {body}");
    }
}

#[tokio::test]
async fn unit_follow_resumes_after_a_cursor_without_loss_or_doubles() {
    require_testbed();
    let unit = TransientUnit::start(
        "follow",
        &[],
        "i=0; while true; do i=$((i+1)); echo \"tick $i\"; sleep 0.05; done",
    );
    let work = Workdir::new();
    let agent = RunningAgent::start(&work.config(&unit_app("web", &unit.name)));
    let tick = |e: &LogEntry| {
        e.message
            .strip_prefix("tick ")
            .and_then(|n| n.parse::<u64>().ok())
    };

    let mut stream = agent.sse("/v1/apps/web/logs/stream", None).await;
    let mut seen = Vec::new();
    let mut last_cursor = String::new();
    while seen.len() < 10 {
        let ev = stream
            .next_within(Duration::from_secs(5))
            .await
            .expect("a live line");
        let e = entry(&ev).expect("log event");
        assert_eq!(
            ev.id.as_deref(),
            Some(e.cursor.as_str()),
            "the SSE id is the cursor"
        );
        seen.push(tick(&e).expect("tick line"));
        last_cursor = e.cursor;
    }
    drop(stream);
    // The unit keeps writing while no one follows; the resumed stream must deliver all of it
    // (more than journalctl's default 10 lines of a follow).
    let last_seen = *seen.last().expect("ticks");
    wait_for(
        "15 more lines in the journal",
        Duration::from_secs(10),
        || async {
            let newest = page(&agent, "web", "limit=1")
                .await
                .first()
                .and_then(tick)?;
            (newest >= last_seen + 15).then_some(())
        },
    )
    .await;
    let mut resumed = agent
        .sse("/v1/apps/web/logs/stream", Some(&last_cursor))
        .await;
    while seen.len() < 30 {
        let ev = resumed
            .next_within(Duration::from_secs(5))
            .await
            .expect("a resumed line");
        seen.push(tick(&entry(&ev).expect("log event")).expect("tick line"));
    }
    assert!(
        seen.windows(2).all(|w| w[1] == w[0] + 1),
        "consecutive, none lost or doubled: {seen:?}"
    );
}

#[tokio::test]
async fn hostile_output_does_not_break_pages_or_follows() {
    require_testbed();
    // The unit writes once the test's follower is open (it waits for the file `go`). Every line
    // is written by the unit's long-lived shell: journald may not tag the output of a process that
    // exits within milliseconds with its unit (test bed note 6).
    let work = Workdir::new();
    let go = work.path("go");
    let unit = TransientUnit::start(
        "hostile",
        &[],
        &format!(
            "while [ ! -e {} ]; do sleep 0.05; done; printf \"bin\\001\\377\\376 end\\n\"; x=$(head -c 100000 /dev/zero | tr \"\\\\0\" x); echo \"$x\"; echo after; sleep 1000",
            go.display()
        ),
    );
    let agent = RunningAgent::start(&work.config(&unit_app("web", &unit.name)));
    let mut stream = agent.sse("/v1/apps/web/logs/stream", None).await;
    std::fs::write(&go, "").expect("go");
    let mut got = Vec::new();
    while !got.iter().any(|e: &LogEntry| e.message == "after") {
        let ev = stream
            .next_within(Duration::from_secs(10))
            .await
            .expect("lines keep coming");
        got.push(entry(&ev).expect("log event"));
    }
    let bin = got
        .iter()
        .find(|e| e.message.starts_with("bin"))
        .expect("binary line");
    assert_eq!(bin.message, "bin\u{1}\u{fffd}\u{fffd} end");
    // journald cuts lines at its LineMax (48 KiB) itself; whatever arrives is whole x's.
    let long: Vec<&LogEntry> = got
        .iter()
        .filter(|e| e.message.starts_with("xxx"))
        .collect();
    assert!(
        !long.is_empty() && long.iter().all(|e| e.message.bytes().all(|b| b == b'x')),
        "{:?}",
        got.iter()
            .map(|e| (
                e.message.len(),
                e.message.chars().take(20).collect::<String>()
            ))
            .collect::<Vec<_>>()
    );
    let paged = page(&agent, "web", "limit=50").await;
    assert!(paged.iter().any(|e| e.message == bin.message));
}

#[tokio::test]
async fn a_client_that_leaves_frees_its_journalctl_at_once() {
    require_testbed();
    let unit = TransientUnit::start("leave", &[], "while true; do echo hi; sleep 1; done");
    let work = Workdir::new();
    let agent = RunningAgent::start(&work.config(&unit_app("web", &unit.name)));
    assert_eq!(children_running(agent.pid(), "journalctl", None), 0);
    let mut streams = Vec::new();
    for _ in 0..3 {
        streams.push(agent.sse("/v1/apps/web/logs/stream", None).await);
    }
    wait_for(
        "three journalctl followers",
        Duration::from_secs(5),
        || async { (children_running(agent.pid(), "journalctl", None) == 3).then_some(()) },
    )
    .await;
    streams.truncate(1);
    wait_for("two followers freed", Duration::from_secs(5), || async {
        (children_running(agent.pid(), "journalctl", None) == 1).then_some(())
    })
    .await;
    drop(streams);
    wait_for("all followers freed", Duration::from_secs(5), || async {
        (children_running(agent.pid(), "journalctl", None) == 0).then_some(())
    })
    .await;
}

#[tokio::test]
async fn container_logs_mark_streams_page_and_resume() {
    require_testbed();
    let c = Container::run(
        "logs",
        &[],
        &["sh", "-c", "echo out-1; echo err-1 >&2; i=1; while true; do i=$((i+1)); echo \"tick $i\"; sleep 0.05; done"],
    );
    let work = Workdir::new();
    let agent = RunningAgent::start(&work.config(&container_app("cache", &c.name)));
    let entries = wait_for("the first lines", Duration::from_secs(10), || async {
        let e = page(&agent, "cache", "limit=5000").await;
        (e.len() >= 5).then_some(e)
    })
    .await;
    assert!(
        entries.windows(2).all(|w| w[0].unix_us >= w[1].unix_us),
        "newest first"
    );
    let err = entries
        .iter()
        .find(|e| e.message == "err-1")
        .expect("stderr line");
    assert_eq!(
        (err.stream, err.priority),
        (Some(LogStream::Stderr), Some(3))
    );
    let out = entries
        .iter()
        .find(|e| e.message == "out-1")
        .expect("stdout line");
    assert_eq!(
        (out.stream, out.priority),
        (Some(LogStream::Stdout), Some(6))
    );
    assert_eq!(
        page(&agent, "cache", "priority=err")
            .await
            .iter()
            .map(|e| e.message.as_str())
            .collect::<Vec<_>>(),
        ["err-1"]
    );
    let older = page(
        &agent,
        "cache",
        &format!("limit=2&before={}", entries[0].cursor),
    )
    .await;
    let texts = |v: &[LogEntry]| v.iter().map(|e| e.message.clone()).collect::<Vec<_>>();
    assert_eq!(
        texts(&older),
        texts(&entries[1..3]),
        "before pages back without overlap"
    );

    let tick = |e: &LogEntry| {
        e.message
            .strip_prefix("tick ")
            .and_then(|n| n.parse::<u64>().ok())
    };
    let mut stream = agent.sse("/v1/apps/cache/logs/stream", None).await;
    let mut seen = Vec::new();
    let mut last = String::new();
    while seen.len() < 5 {
        let e = entry(
            &stream
                .next_within(Duration::from_secs(5))
                .await
                .expect("live line"),
        )
        .expect("log");
        seen.extend(tick(&e));
        last = e.cursor;
    }
    drop(stream);
    let mut resumed = agent.sse("/v1/apps/cache/logs/stream", Some(&last)).await;
    while seen.len() < 20 {
        let e = entry(
            &resumed
                .next_within(Duration::from_secs(5))
                .await
                .expect("resumed line"),
        )
        .expect("log");
        seen.extend(tick(&e));
    }
    assert!(
        seen.windows(2).all(|w| w[1] == w[0] + 1),
        "none lost or doubled: {seen:?}"
    );
}

/// Open sockets of the agent (its Docker API connections among them).
fn sockets(agent_pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{agent_pid}/fd"))
        .expect("fds")
        .flatten()
        .filter(|fd| {
            std::fs::read_link(fd.path()).is_ok_and(|l| l.to_string_lossy().starts_with("socket:"))
        })
        .count()
}

#[tokio::test]
async fn a_client_that_leaves_frees_its_docker_log_stream_at_once() {
    require_testbed();
    let c = Container::run(
        "leave",
        &[],
        &["sh", "-c", "while true; do echo hi; sleep 0.5; done"],
    );
    let work = Workdir::new();
    let agent = RunningAgent::start(&work.config(&container_app("cache", &c.name)));
    // One request first, so lazily opened connections (the Docker client's) exist in the baseline.
    page(&agent, "cache", "limit=1").await;
    let idle = wait_for("a stable socket count", Duration::from_secs(5), || async {
        let a = sockets(agent.pid());
        tokio::time::sleep(Duration::from_millis(200)).await;
        (sockets(agent.pid()) == a).then_some(a)
    })
    .await;
    let mut streams = Vec::new();
    for _ in 0..3 {
        let mut s = agent.sse("/v1/apps/cache/logs/stream", None).await;
        s.next_within(Duration::from_secs(5)).await.expect("a line");
        streams.push(s);
    }
    // Each follower holds a Docker API connection and a client connection (one of which may be
    // the idle keep-alive connection, reused).
    assert!(
        sockets(agent.pid()) >= idle + 5,
        "{} sockets with 3 followers, {idle} idle",
        sockets(agent.pid())
    );
    drop(streams);
    wait_for(
        "the followers' sockets closed",
        Duration::from_secs(5),
        || async { (sockets(agent.pid()) <= idle).then_some(()) },
    )
    .await;
}

/// The entries of `all` written in `[since, until)` (Unix ms), newest first: what a time-range
/// page must answer.
fn written_between(all: &[LogEntry], since_ms: u64, until_ms: u64) -> Vec<String> {
    all.iter()
        .filter(|e| e.unix_us >= since_ms * 1_000 && e.unix_us < until_ms * 1_000)
        .map(|e| e.message.clone())
        .collect()
}

#[tokio::test]
async fn unit_and_container_pages_keep_to_a_time_range() {
    require_testbed();
    // Lines 1.1 s apart: distinct seconds even for an engine with whole-second timestamps.
    let script = "for i in 1 2 3 4 5 6; do echo \"t $i\"; sleep 1.1; done; sleep 1000";
    let unit = TransientUnit::start("range", &[], script);
    let c = Container::run("range", &[], &["sh", "-c", script]);
    let work = Workdir::new();
    let mut config = unit_app("web", &unit.name);
    config.push_str(&container_app("cache", &c.name));
    let agent = RunningAgent::start(&work.config(&config));
    for app in ["web", "cache"] {
        let all = wait_for("all six lines", Duration::from_secs(20), || async {
            let e: Vec<LogEntry> = page(&agent, app, "limit=100")
                .await
                .into_iter()
                .filter(|e| e.message.starts_with("t "))
                .collect();
            (e.len() >= 6).then_some(e)
        })
        .await;
        let ms = |i: usize| all[6 - i].unix_us / 1_000; // line i's millisecond
        let (since, until) = (ms(2), ms(5));
        let want = written_between(&all, since, until);
        assert_eq!(want, ["t 4", "t 3", "t 2"], "{app}: the lines themselves");
        let got = page(
            &agent,
            app,
            &format!("since={since}&until={until}&limit=100"),
        )
        .await;
        let texts: Vec<String> = got.iter().map(|e| e.message.clone()).collect();
        assert_eq!(texts, want, "{app}: [since, until)");
        // Paging back inside the range, a line a page from the last one's cursor (journalctl
        // takes --since or --after-cursor, not both): every line once, the range kept.
        let (mut paged, mut cursor) = (Vec::new(), None::<String>);
        for _ in 0..5 {
            let from = cursor
                .as_deref()
                .map(|c| format!("&before={}", urlencode(c)));
            let got = page(
                &agent,
                app,
                &format!(
                    "since={since}&until={until}&limit=1{}",
                    from.unwrap_or_default()
                ),
            )
            .await;
            let Some(last) = got.last() else { break };
            cursor = Some(last.cursor.clone());
            paged.extend(got.iter().map(|e| e.message.clone()));
        }
        assert_eq!(paged, want, "{app}: paging back inside [since, until)");
        // Only one bound; and a limit inside the range keeps its newest lines.
        let after: Vec<String> = page(&agent, app, &format!("since={}", ms(5)))
            .await
            .iter()
            .map(|e| e.message.clone())
            .collect();
        assert_eq!(after, ["t 6", "t 5"], "{app}: since only");
        let before: Vec<String> = page(&agent, app, &format!("until={}&limit=2", ms(3)))
            .await
            .iter()
            .map(|e| e.message.clone())
            .collect();
        assert_eq!(before, ["t 2", "t 1"], "{app}: until only");
        // grep and the range together.
        let both: Vec<String> = page(
            &agent,
            app,
            &format!("since={since}&until={until}&grep=%5Et%20%5B34%5D"),
        )
        .await
        .iter()
        .map(|e| e.message.clone())
        .collect();
        assert_eq!(both, ["t 4", "t 3"], "{app}: grep inside the range");
        let resp = agent
            .get(&format!("/v1/apps/{app}/logs?since={until}&until={since}"))
            .await;
        assert_eq!(resp.status(), 400, "{app}: an empty range is refused");
        let huge = agent
            .get(&format!("/v1/apps/{app}/logs?until={}", u64::MAX))
            .await;
        assert_eq!(
            huge.status(),
            400,
            "{app}: a time past 2286 is refused, not a 502"
        );
        let body: serde_json::Value = resp.json().await.expect("json");
        assert!(
            body["error"]["message"]
                .as_str()
                .is_some_and(|m| m.contains("must be before")),
            "{body}"
        );
    }
}
