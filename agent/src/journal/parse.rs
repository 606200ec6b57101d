//! journalctl's JSON export, one entry a line, into [`LogEntry`].

use fleetdeck_proto::LogEntry;
use serde_json::Value;

/// Longer messages are cut to this many bytes (at a character boundary) and marked truncated.
pub const MAX_MESSAGE: usize = 64 * 1024;

/// Parses one line of `journalctl -o json`. `MESSAGE` may be a string, an array of bytes (binary
/// or invalid UTF-8), or null; a line that is not an entry gives `None`.
pub fn parse_entry(line: &str) -> Option<LogEntry> {
    let v: Value = serde_json::from_str(line).ok()?;
    let cursor = v.get("__CURSOR")?.as_str()?.to_owned();
    let unix_us = v
        .get("__REALTIME_TIMESTAMP")
        .and_then(Value::as_str)
        .and_then(|t| t.parse().ok())
        .unwrap_or(0);
    let priority = v
        .get("PRIORITY")
        .and_then(Value::as_str)
        .and_then(|p| p.parse::<u8>().ok())
        .filter(|p| *p <= 7);
    let raw = match v.get("MESSAGE") {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Array(bytes)) => {
            let bytes: Vec<u8> = bytes
                .iter()
                .filter_map(|b| b.as_u64().and_then(|b| u8::try_from(b).ok()))
                .collect();
            String::from_utf8_lossy(&bytes).into_owned()
        }
        _ => String::new(),
    };
    let (message, truncated) = cut(raw);
    Some(LogEntry {
        cursor,
        unix_us,
        priority,
        stream: None,
        message,
        truncated,
    })
}

/// Cuts `s` to at most [`MAX_MESSAGE`] bytes at a character boundary.
pub fn cut(mut s: String) -> (String, bool) {
    if s.len() <= MAX_MESSAGE {
        return (s, false);
    }
    let mut end = MAX_MESSAGE;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s.truncate(end);
    (s, true)
}

/// A cursor from a client goes to journalctl as an argument; it must look like one of journald's
/// (`s=…;i=…;b=…;m=…;t=…;x=…`), so nothing else can reach the command line.
pub fn valid_cursor(c: &str) -> bool {
    !c.is_empty()
        && c.len() <= 512
        && c.starts_with("s=")
        && c.chars()
            .all(|ch| ch.is_ascii_alphanumeric() || matches!(ch, '=' | ';' | '-' | '_'))
}

/// Where a journald cursor points: its journal's sequence id (`s`), its sequence number there
/// (`i`) and its wall-clock time in microseconds (`t`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CursorPosition {
    pub seqnum_id: String,
    pub seqnum: u64,
    pub unix_us: u64,
}

impl CursorPosition {
    /// The position in a cursor, or `None` when one of `s`, `i` and `t` is missing or not hex.
    pub fn parse(cursor: &str) -> Option<Self> {
        let field = |name: &str| {
            cursor
                .split(';')
                .find_map(|kv| kv.strip_prefix(name)?.strip_prefix('='))
        };
        let hex = |name: &str| u64::from_str_radix(field(name)?, 16).ok();
        Some(Self {
            seqnum_id: field("s")?.to_owned(),
            seqnum: hex("i")?,
            unix_us: hex("t")?,
        })
    }

    /// `entry` is older than this position: earlier in time, or at the same microsecond with a
    /// lower sequence number in the same journal. An entry of another journal at the same
    /// microsecond counts as older (at worst a client is sent a line it has, never misses one).
    pub fn entry_is_older(&self, entry: &LogEntry) -> bool {
        if entry.unix_us != self.unix_us {
            return entry.unix_us < self.unix_us;
        }
        match CursorPosition::parse(&entry.cursor) {
            Some(e) if e.seqnum_id == self.seqnum_id => e.seqnum < self.seqnum,
            _ => true,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cursor_gives_its_position_and_orders_entries() {
        let pos = CursorPosition::parse("s=ab12;i=1f;b=cd;m=3;t=64;x=ff").expect("a cursor");
        assert_eq!(
            pos,
            CursorPosition {
                seqnum_id: "ab12".into(),
                seqnum: 31,
                unix_us: 100
            }
        );
        for bad in ["s=ab;i=zz;t=64", "s=ab;t=64", "i=1;t=2", "s=a;i=1;t="] {
            assert_eq!(CursorPosition::parse(bad), None, "{bad}");
        }
        let at = |cursor: &str, unix_us| LogEntry {
            cursor: cursor.into(),
            unix_us,
            priority: None,
            stream: None,
            message: String::new(),
            truncated: false,
        };
        assert!(pos.entry_is_older(&at("s=zz;i=ff;t=63", 99)));
        assert!(!pos.entry_is_older(&at("s=zz;i=1;t=65", 101)));
        assert!(pos.entry_is_older(&at("s=ab12;i=1e;t=64", 100)));
        assert!(
            !pos.entry_is_older(&at("s=ab12;i=1f;t=64", 100)),
            "the cursor itself"
        );
        assert!(!pos.entry_is_older(&at("s=ab12;i=20;t=64", 100)));
        assert!(pos.entry_is_older(&at("s=other;i=99;t=64", 100)));
    }

    #[test]
    fn entries_parse() {
        type Want<'a> = Option<(&'a str, u64, Option<u8>, &'a str, bool)>;
        let cases: &[(&str, Want)] = &[
            (
                r#"{"__CURSOR":"s=a;i=1","__REALTIME_TIMESTAMP":"1795463293535498","PRIORITY":"6","MESSAGE":"line 8"}"#,
                Some(("s=a;i=1", 1_795_463_293_535_498, Some(6), "line 8", false)),
            ),
            (
                r#"{"__CURSOR":"s=a;i=2","__REALTIME_TIMESTAMP":"1","PRIORITY":"3","MESSAGE":[98,105,110,1,255,254]}"#,
                Some(("s=a;i=2", 1, Some(3), "bin\u{1}\u{fffd}\u{fffd}", false)),
            ),
            (
                r#"{"__CURSOR":"s=a;i=3","MESSAGE":null}"#,
                Some(("s=a;i=3", 0, None, "", false)),
            ),
            (
                r#"{"__CURSOR":"s=a;i=4","PRIORITY":"9","MESSAGE":"x"}"#,
                Some(("s=a;i=4", 0, None, "x", false)),
            ),
            (r#"{"MESSAGE":"no cursor"}"#, None),
            ("not json", None),
            ("", None),
        ];
        for (line, want) in cases {
            let got = parse_entry(line)
                .map(|e| (e.cursor, e.unix_us, e.priority, e.message, e.truncated));
            let want = want.map(|(c, t, p, m, tr)| (c.to_owned(), t, p, m.to_owned(), tr));
            assert_eq!(got, want, "{line}");
        }
    }

    #[test]
    fn long_messages_are_cut_at_a_char_boundary() {
        let long = "é".repeat(MAX_MESSAGE); // 2 bytes each
        let line = serde_json::json!({"__CURSOR": "s=x", "MESSAGE": long}).to_string();
        let e = parse_entry(&line).expect("entry");
        assert!(e.truncated);
        assert_eq!(e.message.len(), MAX_MESSAGE);
        assert!(e.message.chars().all(|c| c == 'é'));
    }

    #[test]
    fn cursors_from_clients_are_checked() {
        assert!(valid_cursor(
            "s=0f6d1b2;i=4a1;b=612dd5b6;m=2a1b;t=62b0;x=706b14d8541edde3"
        ));
        for bad in [
            "",
            "--since=yesterday",
            "s=a b",
            "s=a\n",
            "x=1",
            &format!("s={}", "a".repeat(600)),
        ] {
            assert!(!valid_cursor(bad), "{bad:?}");
        }
    }
}
