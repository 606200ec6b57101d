//! How figures read on screen: durations, bytes, percentages, exits, log times. Pure functions.

use fleetdeck_proto::signal_name;
use fleetdeck_proto::Exit;

/// "12 s ago", "3 min ago", "5 h ago", "2 d ago"; "just now" under a second, and "in the future"
/// should the clocks disagree.
pub fn ago(now_ms: u64, then_ms: u64) -> String {
    if then_ms > now_ms + 5_000 {
        return "in the future".into();
    }
    let secs = now_ms.saturating_sub(then_ms) / 1000;
    if secs < 1 {
        "just now".into()
    } else {
        format!("{} ago", duration_secs(secs))
    }
}

/// "42 s", "3 min", "5 h 20 min", "2 d 4 h".
pub fn duration_secs(secs: u64) -> String {
    const MIN: u64 = 60;
    const HOUR: u64 = 60 * MIN;
    const DAY: u64 = 24 * HOUR;
    if secs < MIN {
        format!("{secs} s")
    } else if secs < HOUR {
        format!("{} min", secs / MIN)
    } else if secs < DAY {
        let (h, m) = (secs / HOUR, (secs % HOUR) / MIN);
        if m == 0 {
            format!("{h} h")
        } else {
            format!("{h} h {m} min")
        }
    } else {
        let (d, h) = (secs / DAY, (secs % DAY) / HOUR);
        if h == 0 {
            format!("{d} d")
        } else {
            format!("{d} d {h} h")
        }
    }
}

/// Binary units with one decimal: "512 B", "1.5 KiB", "3.2 GiB".
pub fn bytes(n: f64) -> String {
    const UNITS: [&str; 6] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
    if !n.is_finite() {
        return "–".into();
    }
    let mut v = n.abs();
    let mut unit = 0;
    while v >= 1024.0 && unit < UNITS.len() - 1 {
        v /= 1024.0;
        unit += 1;
    }
    let sign = if n < 0.0 { "-" } else { "" };
    if unit == 0 {
        format!("{sign}{v:.0} B")
    } else {
        format!("{sign}{v:.1} {}", UNITS[unit])
    }
}

pub fn bytes_per_sec(n: f64) -> String {
    format!("{}/s", bytes(n))
}

/// A latency: "0.8 ms", "42 ms", "1.25 s".
pub fn millis(ms: f64) -> String {
    if !ms.is_finite() {
        "–".into()
    } else if ms >= 1000.0 {
        format!("{:.2} s", ms / 1000.0)
    } else if ms >= 10.0 {
        format!("{ms:.0} ms")
    } else {
        format!("{ms:.1} ms")
    }
}

/// "37.5 %"; "100 %" and "0 %" without decimals.
pub fn percent(p: f64) -> String {
    if !p.is_finite() {
        "–".into()
    } else if p >= 99.95 || p <= 0.0 {
        format!("{:.0} %", p.clamp(0.0, 100.0))
    } else {
        format!("{p:.1} %")
    }
}

/// An uptime ratio (0–1) as a percentage with enough decimals to tell 99.9 % from 100 %.
pub fn ratio(r: f64) -> String {
    let p = r * 100.0;
    if p >= 100.0 {
        "100 %".into()
    } else if p >= 99.0 {
        format!("{:.2} %", (p * 100.0).floor() / 100.0)
    } else {
        format!("{p:.1} %")
    }
}

/// When an uptime figure over the last `days` (UTC days, as the collector counts them) started
/// being known, if that is later than the window's start: `Some(ms)` for an app first seen less
/// than `days` ago, whose ratio must not read as if it covered the whole window.
pub fn partial_since(now_ms: u64, days: u64, known_since_ms: Option<u64>) -> Option<u64> {
    const DAY_MS: u64 = 86_400_000;
    let window_from = (now_ms - now_ms % DAY_MS).saturating_sub(days.saturating_sub(1) * DAY_MS);
    // A minute of slack: the collector's window and this clock are read at different moments.
    known_since_ms.filter(|&since| since > window_from + 60_000)
}

/// What an uptime ratio covers: "over 30 days", or "since first seen 3 h ago".
pub fn uptime_span(now_ms: u64, days: u64, known_since_ms: Option<u64>) -> String {
    match partial_since(now_ms, days, known_since_ms) {
        Some(since) => format!("since first seen {}", ago(now_ms, since)),
        None => format!("over {days} days"),
    }
}

/// The uptime cell's class by ratio: good, fair, poor, bad, or none when nothing is known.
pub fn ratio_class(r: Option<f64>) -> &'static str {
    match r {
        None => "none",
        Some(r) if r >= 0.999 => "good",
        Some(r) if r >= 0.99 => "fair",
        Some(r) if r >= 0.9 => "poor",
        Some(_) => "bad",
    }
}

/// "exit code 1", "signal 9 (SIGKILL)", or "–" when the process has not ended.
pub fn exit(e: Option<Exit>) -> String {
    match e {
        None => "–".into(),
        Some(Exit::Code(c)) => format!("exit code {c}"),
        Some(Exit::Signal(s)) => match signal_name(s) {
            Some(name) => format!("signal {s} ({name})"),
            None => format!("signal {s}"),
        },
    }
}

/// The syslog level's short name.
pub fn level(priority: Option<u8>) -> &'static str {
    match priority {
        Some(0) => "emerg",
        Some(1) => "alert",
        Some(2) => "crit",
        Some(3) => "err",
        Some(4) => "warn",
        Some(5) => "notice",
        Some(6) => "info",
        Some(7) => "debug",
        _ => "",
    }
}

/// Days since 1970-01-01 to a civil date (Howard Hinnant's algorithm).
fn civil(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// Local wall-clock parts of a Unix time in ms, given the zone's offset east of UTC in minutes.
fn local(unix_ms: i64, offset_min: i32) -> (i64, u32, u32, i64, i64, i64, i64) {
    let t = unix_ms + i64::from(offset_min) * 60_000;
    let days = t.div_euclid(86_400_000);
    let ms_of_day = t.rem_euclid(86_400_000);
    let (y, m, d) = civil(days);
    (
        y,
        m,
        d,
        ms_of_day / 3_600_000,
        (ms_of_day / 60_000) % 60,
        (ms_of_day / 1000) % 60,
        ms_of_day % 1000,
    )
}

/// A log line's time: "14:03:07.120".
pub fn log_time(unix_us: u64, offset_min: i32) -> String {
    let (_, _, _, h, m, s, ms) = local((unix_us / 1000) as i64, offset_min);
    format!("{h:02}:{m:02}:{s:02}.{ms:03}")
}

/// A full timestamp: "2025-03-14 14:03:07".
pub fn date_time(unix_ms: u64, offset_min: i32) -> String {
    let (y, mo, d, h, m, s, _) = local(unix_ms as i64, offset_min);
    format!("{y:04}-{mo:02}-{d:02} {h:02}:{m:02}:{s:02}")
}

/// A day: "2025-03-14".
pub fn date(unix_ms: u64) -> String {
    let (y, mo, d, ..) = local(unix_ms as i64, 0);
    format!("{y:04}-{mo:02}-{d:02}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uptime_says_since_when_the_app_is_newer_than_the_window() {
        const H: u64 = 3_600_000;
        let now = 20_000 * 24 * H + 12 * H; // midday
        let window_from = now - 12 * H - 29 * 24 * H;
        for (since, want) in [
            (Some(now - 3 * H), "since first seen 3 h ago"),
            (Some(now - 5 * 24 * H), "since first seen 5 d ago"),
            (Some(window_from), "over 30 days"),
            (Some(window_from + 30_000), "over 30 days"),
            (None, "over 30 days"),
        ] {
            assert_eq!(uptime_span(now, 30, since), want, "{since:?}");
        }
        assert_eq!(partial_since(now, 30, Some(now - H)), Some(now - H));
    }

    #[test]
    fn ago_cases() {
        let now = 100_000_000;
        for (then, want) in [
            (now, "just now"),
            (now - 500, "just now"),
            (now - 12_000, "12 s ago"),
            (now - 3 * 60_000 - 5_000, "3 min ago"),
            (now - 5 * 3_600_000, "5 h ago"),
            (now - 5 * 3_600_000 - 20 * 60_000, "5 h 20 min ago"),
            (now + 60_000, "in the future"),
            (now + 1_000, "just now"),
        ] {
            assert_eq!(ago(now, then), want, "then = {then}");
        }
        assert_eq!(ago(3 * 86_400_000, 0), "3 d ago");
        assert_eq!(ago(3 * 86_400_000 + 7_200_000, 0), "3 d 2 h ago");
    }

    #[test]
    fn bytes_cases() {
        for (n, want) in [
            (0.0, "0 B"),
            (512.0, "512 B"),
            (1536.0, "1.5 KiB"),
            (3.25 * 1024.0 * 1024.0 * 1024.0, "3.2 GiB"),
            (-2048.0, "-2.0 KiB"),
            (f64::NAN, "–"),
        ] {
            assert_eq!(bytes(n), want);
        }
        assert_eq!(bytes_per_sec(2048.0), "2.0 KiB/s");
    }

    #[test]
    fn percent_and_ratio_cases() {
        assert_eq!(percent(37.46), "37.5 %");
        assert_eq!(percent(100.0), "100 %");
        assert_eq!(percent(0.0), "0 %");
        assert_eq!(ratio(1.0), "100 %");
        assert_eq!(ratio(0.99999), "99.99 %");
        assert_eq!(ratio(0.5), "50.0 %");
        assert_eq!(ratio_class(None), "none");
        assert_eq!(ratio_class(Some(1.0)), "good");
        assert_eq!(ratio_class(Some(0.995)), "fair");
        assert_eq!(ratio_class(Some(0.95)), "poor");
        assert_eq!(ratio_class(Some(0.2)), "bad");
    }

    #[test]
    fn exit_cases() {
        assert_eq!(exit(None), "–");
        assert_eq!(exit(Some(Exit::Code(1))), "exit code 1");
        assert_eq!(exit(Some(Exit::Signal(9))), "signal 9 (SIGKILL)");
        assert_eq!(exit(Some(Exit::Signal(64))), "signal 64");
    }

    #[test]
    fn times() {
        // 2024-02-29 23:59:58.250 UTC
        let ms = 1_709_251_198_250_u64;
        assert_eq!(date_time(ms, 0), "2024-02-29 23:59:58");
        assert_eq!(date_time(ms, 60), "2024-03-01 00:59:58");
        assert_eq!(log_time(ms * 1000, 0), "23:59:58.250");
        assert_eq!(log_time(ms * 1000, -120), "21:59:58.250");
        assert_eq!(date(0), "1970-01-01");
    }

    #[test]
    fn levels() {
        assert_eq!(level(Some(3)), "err");
        assert_eq!(level(Some(6)), "info");
        assert_eq!(level(None), "");
    }

    #[test]
    fn durations() {
        assert_eq!(duration_secs(42), "42 s");
        assert_eq!(duration_secs(3600), "1 h");
        assert_eq!(duration_secs(86_400), "1 d");
    }
}
