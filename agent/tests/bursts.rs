//! Bursts of container output: thousands of lines within one second share a timestamp (podman
//! stamps lines to the second). Pages must never lose a line because timestamps tie: the newest
//! lines, a search for the first and the last, paging back through all of them without loss or
//! repeats, and a follow resumed in the middle of the burst.

mod common;

use std::collections::HashMap;
use std::time::Duration;

use common::*;
use fleetdeck_proto::{LogEntry, LogPage};

async fn page(agent: &RunningAgent, query: &str) -> Vec<LogEntry> {
    let page: LogPage = serde_json::from_value(
        agent
            .get_json(&format!("/v1/apps/burst/logs?{query}"))
            .await,
    )
    .expect("LogPage");
    page.entries
}

fn texts(entries: &[LogEntry]) -> Vec<String> {
    entries.iter().map(|e| e.message.clone()).collect()
}

async fn burst(lines: usize) {
    require_testbed();
    let c = Container::run(
        "burst",
        &[],
        &["sh", "-c", &format!("seq 1 {lines}; sleep 100000")],
    );
    let work = Workdir::new();
    let agent = RunningAgent::start(&work.config(&container_app("burst", &c.name)));
    let last = lines.to_string();
    wait_for("the burst written", Duration::from_secs(20), || async {
        let newest = page(&agent, "limit=1").await;
        (newest.first().map(|e| e.message.as_str()) == Some(last.as_str())).then_some(())
    })
    .await;

    let newest = page(&agent, "limit=3").await;
    let want: Vec<String> = (lines - 2..=lines).rev().map(|n| n.to_string()).collect();
    assert_eq!(texts(&newest), want, "the newest three lines");
    for wanted in [last.clone(), "1".to_owned(), (lines / 2).to_string()] {
        let found = page(
            &agent,
            &format!("limit=5&grep={}", urlencode(&format!("^{wanted}$"))),
        )
        .await;
        let cursors: Vec<&str> = found.iter().map(|e| e.cursor.as_str()).collect();
        assert!(
            texts(&found) == [wanted.as_str()],
            "a search for line {wanted}: {:?} at {cursors:?}",
            texts(&found)
        );
    }

    // Back through everything, a page at a time.
    let mut all: Vec<LogEntry> = Vec::new();
    loop {
        let query = match all.last() {
            None => "limit=1000".to_owned(),
            Some(e) => format!("limit=1000&before={}", urlencode(&e.cursor)),
        };
        let next = page(&agent, &query).await;
        if next.is_empty() {
            break;
        }
        let first = next.first().map(|e| (e.message.clone(), e.cursor.clone()));
        all.extend(next);
        assert!(
            all.len() <= lines,
            "more lines than written: repeats, after {first:?}"
        );
    }
    let want: Vec<String> = (1..=lines).rev().map(|n| n.to_string()).collect();
    assert!(texts(&all) == want, "every line once, newest first");
    let mut per_second: HashMap<u64, usize> = HashMap::new();
    for e in &all {
        *per_second.entry(e.unix_us / 1_000_000).or_default() += 1;
    }
    let biggest = per_second.values().max().copied().unwrap_or(0);
    println!(
        "{lines} lines over {} second(s), {biggest} in the fullest",
        per_second.len()
    );
    assert!(
        biggest > 1_000,
        "the burst must outgrow a page's first window in one second"
    );

    // A follow resumed in the middle of the burst gets the rest, once each and in order.
    let middle = &all[lines / 2];
    let from: usize = middle.message.parse().expect("a number");
    let mut stream = agent
        .sse("/v1/apps/burst/logs/stream", Some(&middle.cursor))
        .await;
    let mut followed = Vec::new();
    while followed.last() != Some(&last) {
        let ev = stream
            .next_within(Duration::from_secs(10))
            .await
            .expect("the rest of the burst");
        if ev.event.as_deref() == Some("log") {
            let e: LogEntry = serde_json::from_str(&ev.data).expect("LogEntry");
            followed.push(e.message);
        }
    }
    let want: Vec<String> = (from + 1..=lines).map(|n| n.to_string()).collect();
    assert!(
        followed == want,
        "the follow resumed exactly after line {from}"
    );
}

#[tokio::test]
async fn a_burst_of_5000_lines_in_one_second_pages_without_loss() {
    burst(5_000).await;
}

#[tokio::test]
async fn a_burst_of_20000_lines_in_one_second_pages_without_loss() {
    burst(20_000).await;
}
