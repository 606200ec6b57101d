//! What a client sends to resume or page logs (`before=`, `Last-Event-ID`), and the timestamps a
//! Docker engine prints: journald cursors are checked before they reach journalctl's command
//! line, container cursors parse back to what they were made from, and no timestamp panics.

#![no_main]

use fleetdeck_agent::docker::logs::{parse_cursor, parse_rfc3339_ns};
use fleetdeck_agent::docker::parse_docker_time;
use fleetdeck_agent::journal::valid_cursor;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    if valid_cursor(s) {
        // It goes to journalctl as `--after-cursor=VALUE`: one argument, no option of its own.
        assert!(s.starts_with("s=") && s.len() <= 512, "{s:?}");
        assert!(
            !s.contains(|c: char| c.is_whitespace() || c.is_control()),
            "{s:?}"
        );
    }
    if let Some(p) = parse_cursor(s) {
        let again = format!("d{}-{}", p.ns, p.ordinal);
        assert_eq!(parse_cursor(&again), Some(p), "{s:?}");
    }
    let ms = parse_docker_time(s);
    let ns = parse_rfc3339_ns(s);
    // Both read the same instant: nanoseconds are the milliseconds and the digits after them.
    if let Some(ns) = ns {
        assert_eq!(ms, Some(ns / 1_000_000), "{s:?}");
    }
});
