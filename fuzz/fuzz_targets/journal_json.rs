//! Arbitrary lines as `journalctl -o json` output: the reader never panics, keeps its limits
//! (message at most 64 KiB, cut at a character boundary; priority 0-7), and what it reads goes on
//! the wire and back unchanged.

#![no_main]

use fleetdeck_agent::journal::{cut, parse_entry, MAX_MESSAGE};
use fleetdeck_proto::LogEntry;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // The follower hands over only lines that are UTF-8; a page reads journalctl's output lossily.
    let lossy = String::from_utf8_lossy(data);
    let lines: Vec<&str> = match std::str::from_utf8(data) {
        Ok(text) => vec![text, lossy.as_ref()],
        Err(_) => vec![lossy.as_ref()],
    };
    for line in lines {
        for line in std::iter::once(line).chain(line.lines()) {
            if let Some(entry) = parse_entry(line) {
                check(&entry);
            }
        }
    }
    let (cut_text, truncated) = cut(lossy.to_string());
    assert_eq!(truncated, lossy.len() > MAX_MESSAGE);
    assert!(lossy.starts_with(&cut_text));
});

fn check(entry: &LogEntry) {
    assert!(
        entry.message.len() <= MAX_MESSAGE,
        "{}",
        entry.message.len()
    );
    if entry.truncated {
        assert!(
            entry.message.len() + 4 > MAX_MESSAGE,
            "{}",
            entry.message.len()
        );
    }
    assert!(
        entry.priority.is_none_or(|p| p <= 7),
        "{:?}",
        entry.priority
    );
    assert!(entry.stream.is_none());
    let wire = serde_json::to_string(entry).expect("a LogEntry serializes");
    let back: LogEntry = serde_json::from_str(&wire).expect("and reads back");
    assert_eq!(&back, entry, "{wire}");
}
