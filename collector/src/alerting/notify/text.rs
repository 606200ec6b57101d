//! What every format shows besides the alert's one-line message: the "why" lines (a crash's exit,
//! OOM kill and memory against the limit; a check's error, status, latency or certificate date;
//! a threshold's value and level; a reason) and a crash's last log lines, with the helpers that
//! keep them inside a receiver's size limit.

use fleetdeck_proto::{signal_name, CheckResult, CrashContext, Exit, ThresholdHit};

use super::json::rfc3339_millis;
use crate::alerting::rules::Alert;

/// The detail lines of `alert`, in the order a person reads them.
pub fn why_lines(alert: &Alert) -> Vec<String> {
    let mut lines = Vec::new();
    let detail = &alert.detail;
    if let Some(context) = &detail.context {
        lines.extend(crash_lines(context));
    }
    if let Some(check) = &detail.check {
        lines.push(check_line(check));
    }
    if let Some(hit) = &detail.threshold {
        lines.push(threshold_line(hit));
    }
    if let Some(reason) = &detail.reason {
        lines.push(reason.clone());
    }
    lines
}

/// The crash's last log lines, oldest first (empty without a crash context).
pub fn last_lines(alert: &Alert) -> &[String] {
    alert
        .detail
        .context
        .as_ref()
        .map_or(&[], |c| c.last_lines.as_slice())
}

fn exit_text(exit: Exit) -> String {
    match exit {
        Exit::Code(code) => format!("exit code {code}"),
        Exit::Signal(signal) => match signal_name(signal) {
            Some(name) => format!("signal {signal} ({name})"),
            None => format!("signal {signal}"),
        },
    }
}

fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / (1024.0 * 1024.0))
}

fn crash_lines(c: &CrashContext) -> Vec<String> {
    let mut lines = Vec::new();
    let mut exit = match c.exit {
        Some(exit) => format!("Exit: {}", exit_text(exit)),
        None => "Exit: unknown".to_owned(),
    };
    if c.oom_killed {
        exit.push_str(", killed by the kernel's OOM killer");
    }
    lines.push(exit);
    match (c.memory_bytes, c.memory_limit_bytes) {
        (Some(used), Some(limit)) if limit > 0 => lines.push(format!(
            "Memory: {} of its {} limit ({:.0}%)",
            mib(used),
            mib(limit),
            used as f64 * 100.0 / limit as f64
        )),
        (Some(used), _) => lines.push(format!("Memory: {} (no limit)", mib(used))),
        _ => {}
    }
    if let Some(error) = &c.lines_error {
        lines.push(format!("Last log lines unavailable: {error}"));
    }
    lines
}

fn check_line(check: &CheckResult) -> String {
    let mut line = format!("Check {} ({})", check.name, check.target);
    if check.ok {
        line.push_str(": passing");
    } else {
        line.push_str(&format!(
            ": failing ({} in a row)",
            check.consecutive_failures
        ));
    }
    if let Some(status) = check.status_code {
        line.push_str(&format!(", HTTP {status}"));
    }
    if let Some(ms) = check.latency_ms {
        line.push_str(&format!(", {ms:.0} ms"));
    }
    if let Some(error) = &check.error {
        line.push_str(&format!(", error: {error}"));
    }
    if let Some(expiry) = check.cert_not_after_unix_ms {
        line.push_str(&format!(
            ", certificate {}",
            cert_when(expiry, check.checked_unix_ms)
        ));
    }
    line
}

/// `expires on 2026-12-09 (5 days left)`, `expires on 2026-12-05 (1 day left)` or `expired on
/// 2026-12-01`: a certificate's end as seen by a check run at `checked_ms` (whole days left,
/// rounded down).
pub(crate) fn cert_when(not_after_ms: u64, checked_ms: u64) -> String {
    let stamp = rfc3339_millis(not_after_ms);
    let day = stamp.split('T').next().unwrap_or(&stamp);
    let left_ms = not_after_ms as i64 - checked_ms as i64;
    if left_ms <= 0 {
        return format!("expired on {day}");
    }
    let days_left = left_ms.div_euclid(86_400_000);
    let unit = if days_left == 1 { "day" } else { "days" };
    format!("expires on {day} ({days_left} {unit} left)")
}

fn threshold_line(hit: &ThresholdHit) -> String {
    let subject = hit
        .subject
        .as_deref()
        .map(|s| format!(" of {s}"))
        .unwrap_or_default();
    let held = if hit.for_secs > 0 {
        format!(" for {} s", hit.for_secs)
    } else {
        String::new()
    };
    format!(
        "{}{subject}: {} (level: {} {}{held}; rule {})",
        hit.metric,
        number(hit.value),
        hit.direction,
        number(hit.threshold),
        hit.rule
    )
}

fn number(v: f64) -> String {
    let text = format!("{v:.2}");
    text.trim_end_matches('0').trim_end_matches('.').to_owned()
}

/// A code block of `lines` for Slack or Discord within `budget` bytes (fences included): the
/// newest lines are kept, older ones dropped and counted; a line alone too long is cut at a
/// character boundary. Fences inside a line are broken with a zero-width space, so a log line
/// cannot close the block. `None` when there is nothing to show or no room.
pub fn code_block(lines: &[String], budget: usize) -> Option<String> {
    const OPEN: &str = "```\n";
    const CLOSE: &str = "\n```";
    if lines.is_empty() || budget < OPEN.len() + CLOSE.len() + 16 {
        return None;
    }
    let room = budget - OPEN.len() - CLOSE.len();
    let mut kept: Vec<String> = Vec::new();
    let mut used = 0;
    for line in lines.iter().rev() {
        let clean = neutralise(line);
        let need = clean.len() + usize::from(!kept.is_empty());
        if used + need > room {
            if kept.is_empty() {
                // The newest line alone does not fit: its start is better than nothing.
                kept.push(cut(&clean, room.saturating_sub("…".len())).to_owned() + "…");
            }
            break;
        }
        used += need;
        kept.push(clean);
    }
    kept.reverse();
    Some(format!("{OPEN}{}{CLOSE}", kept.join("\n")))
}

/// Control characters other than tab dropped; ``` broken up.
fn neutralise(line: &str) -> String {
    let clean: String = line
        .chars()
        .filter(|c| *c == '\t' || !c.is_control())
        .collect();
    clean.replace("```", "`\u{200b}`\u{200b}`")
}

/// The longest prefix of `text` of at most `max` bytes that ends on a character boundary.
pub fn cut(text: &str, max: usize) -> &str {
    if text.len() <= max {
        return text;
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn code_blocks_keep_the_newest_lines_within_budget() {
        let lines: Vec<String> = (0..20)
            .map(|i| format!("line {i} {}", "x".repeat(80)))
            .collect();
        let block = code_block(&lines, 500).expect("block");
        assert!(block.len() <= 500, "{}", block.len());
        assert!(block.starts_with("```\n") && block.ends_with("\n```"));
        assert!(block.contains("line 19 "), "{block}");
        assert!(!block.contains("line 0 "), "{block}");
    }

    #[test]
    fn fences_and_multibyte_lines_are_safe() {
        let block = code_block(&["a ``` b".to_owned()], 100).expect("block");
        assert_eq!(block.matches("```").count(), 2, "{block}");
        let wide = "é".repeat(400); // 800 bytes
        let block = code_block(&[wide], 101).expect("block");
        assert!(block.len() <= 101, "{}", block.len());
        assert!(block.contains('é') && block.contains('…'));
        assert_eq!(cut("aé", 2), "a");
    }
}
