//! Weekly maintenance windows (`[[maintenance]]` in collector.toml): while one is open, a silence
//! covers its hosts and apps, made by the collector itself (`created_by` = `maintenance NAME`),
//! so it shows in `GET /v1/silences` and the desktop like any other and ends by itself. Local
//! times in the window's time zone, daylight saving included.

use std::time::Duration;

use jiff::civil::Weekday;
use jiff::tz::TimeZone;
use jiff::Timestamp;

/// One `[[maintenance]]` entry, checked.
#[derive(Debug, Clone, PartialEq)]
pub struct Maintenance {
    pub name: String,
    /// A glob over host names.
    pub hosts: String,
    /// A glob over app names (none: the hosts and all their apps).
    pub apps: Option<String>,
    /// The days it starts on (empty: every day).
    pub days: Vec<Weekday>,
    pub start: (i8, i8),
    /// At most a day.
    pub duration: Duration,
    pub timezone: TimeZone,
    pub reason: String,
}

impl Maintenance {
    /// The window open at `now_ms`, as (start, end) in Unix ms, if one is.
    pub fn window_at(&self, now_ms: u64) -> Option<(u64, u64)> {
        let now = Timestamp::from_millisecond(i64::try_from(now_ms).ok()?).ok()?;
        let today = now.to_zoned_datetime(self.timezone.clone()).date();
        // A window that began yesterday may still be open (it lasts up to a day).
        for date in [today, today.yesterday().ok()?] {
            if !self.days.is_empty() && !self.days.contains(&date.weekday()) {
                continue;
            }
            let start = date
                .at(self.start.0, self.start.1, 0, 0)
                .to_zoned_datetime(self.timezone.clone())
                .ok()?
                .timestamp()
                .as_millisecond();
            let start = u64::try_from(start).ok()?;
            let end = start + u64::try_from(self.duration.as_millis()).ok()?;
            if (start..end).contains(&now_ms) {
                return Some((start, end));
            }
        }
        None
    }
}

/// `mon`..`sun` (or the whole names), for the config.
pub fn weekday(text: &str) -> Option<Weekday> {
    Some(match text.to_ascii_lowercase().get(..3)? {
        "mon" => Weekday::Monday,
        "tue" => Weekday::Tuesday,
        "wed" => Weekday::Wednesday,
        "thu" => Weekday::Thursday,
        "fri" => Weekday::Friday,
        "sat" => Weekday::Saturday,
        "sun" => Weekday::Sunday,
        _ => return None,
    })
}

/// `HH:MM`, 24-hour.
pub fn clock(text: &str) -> Option<(i8, i8)> {
    let (h, m) = text.split_once(':')?;
    let (h, m): (i8, i8) = (h.parse().ok()?, m.parse().ok()?);
    ((0..24).contains(&h) && (0..60).contains(&m) && text.len() == 5).then_some((h, m))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> u64 {
        s.parse::<Timestamp>().expect("time").as_millisecond() as u64
    }

    fn window(days: &[Weekday], start: &str, hours: u64, tz: &str) -> Maintenance {
        Maintenance {
            name: "w".into(),
            hosts: "*".into(),
            apps: None,
            days: days.to_vec(),
            start: clock(start).expect("clock"),
            duration: Duration::from_secs(hours * 3600),
            timezone: TimeZone::get(tz).expect("zone"),
            reason: "r".into(),
        }
    }

    #[test]
    fn windows_open_on_their_days_in_their_zone() {
        // Sundays 02:00-04:00 in Berlin (UTC+1 in winter).
        let w = window(&[Weekday::Sunday], "02:00", 2, "Europe/Berlin");
        // Sunday 2026-12-06 01:30 UTC is 02:30 in Berlin.
        assert_eq!(
            w.window_at(at("2026-12-06T01:30:00Z")),
            Some((at("2026-12-06T01:00:00Z"), at("2026-12-06T03:00:00Z")))
        );
        assert_eq!(w.window_at(at("2026-12-06T03:00:00Z")), None);
        assert_eq!(w.window_at(at("2026-12-05T01:30:00Z")), None, "a Saturday");
        // In summer Berlin is UTC+2: the same local window is an hour earlier in UTC.
        assert_eq!(
            w.window_at(at("2026-07-05T00:30:00Z")),
            Some((at("2026-07-05T00:00:00Z"), at("2026-07-05T02:00:00Z")))
        );
        // Across midnight: Friday 23:00 for 3 h is open early on Saturday.
        let late = window(&[Weekday::Friday], "23:00", 3, "UTC");
        assert!(late.window_at(at("2026-12-05T01:00:00Z")).is_some());
        assert!(late.window_at(at("2026-12-05T02:00:00Z")).is_none());
        // Every day.
        let daily = window(&[], "12:00", 1, "UTC");
        assert!(daily.window_at(at("2026-12-03T12:30:00Z")).is_some());
    }

    #[test]
    fn days_and_clocks_parse() {
        assert_eq!(weekday("Sun"), Some(Weekday::Sunday));
        assert_eq!(weekday("saturday"), Some(Weekday::Saturday));
        assert_eq!(weekday("xyz"), None);
        assert_eq!(clock("02:30"), Some((2, 30)));
        for bad in ["24:00", "2:30", "02:60", "0230", "aa:bb"] {
            assert_eq!(clock(bad), None, "{bad}");
        }
    }
}
