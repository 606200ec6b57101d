//! ntfy: the message as the plain-text body of a POST to the topic URL, with the title,
//! priority and tags as headers (ntfy's "publish as HTTP PUT/POST" API).

use super::{text, Rendered};
use crate::alerting::rules::{Alert, AlertKind, Aspect};

/// ntfy turns a message over 4,096 bytes into an attachment: the body stays under this.
const MAX_BODY: usize = 4_000;

pub(super) fn render(alert: &Alert) -> Rendered {
    let (priority, tags) = match alert.kind {
        AlertKind::Problem => ("5", "rotating_light"),
        AlertKind::Flapping => ("4", "warning"),
        AlertKind::Recovery => ("3", "white_check_mark"),
        AlertKind::FlapEnded => ("3", "information_source"),
    };
    Rendered {
        content_type: "text/plain; charset=utf-8",
        headers: vec![
            ("Title", header_text(&title(alert))),
            ("Priority", priority.to_owned()),
            ("Tags", tags.to_owned()),
        ],
        body: body(alert).into_bytes(),
    }
}

/// The message, the why lines, then the crash's last lines (the newest that fit).
fn body(alert: &Alert) -> String {
    let mut text = alert.message.clone();
    for line in text::why_lines(alert) {
        text.push('\n');
        text.push_str(&line);
    }
    let mut text = text::cut(&text, MAX_BODY / 2).to_owned();
    let lines = text::last_lines(alert);
    if !lines.is_empty() {
        const HEAD: &str = "\nLast log lines:";
        let mut room = MAX_BODY - text.len() - HEAD.len();
        let mut kept = Vec::new();
        for line in lines.iter().rev() {
            let line = text::cut(line, room.saturating_sub(1));
            if line.is_empty() {
                break;
            }
            room -= line.len() + 1;
            kept.push(line);
        }
        kept.reverse();
        text.push_str(HEAD);
        for line in kept {
            text.push('\n');
            text.push_str(line);
        }
    }
    text
}

/// A short title: `web on vm-1 failed`, `vm-1 is down`, `web on vm-1 recovered`.
fn title(alert: &Alert) -> String {
    let subject = match &alert.app {
        Some(app) => format!("{app} on {}", alert.host),
        None => alert.host.clone(),
    };
    let ended = alert.kind == AlertKind::Recovery;
    match &alert.aspect {
        Aspect::Threshold {
            rule,
            subject: what,
        } => {
            let what = what.as_deref().map(|w| format!(" {w}")).unwrap_or_default();
            let end = if ended { " cleared" } else { "" };
            return format!("{subject}{what}: {rule}{end}");
        }
        Aspect::Check(name) => {
            let state = if ended { "passes again" } else { "fails" };
            return format!("{subject}: check {name} {state}");
        }
        Aspect::Source(name) => {
            let state = if ended { "is back" } else { "is down" };
            return format!("{subject}: {name} {state}");
        }
        Aspect::CertExpiring(name) | Aspect::CertCritical(name) => {
            let state = if ended { "renewed" } else { "expires soon" };
            return format!("{subject}: certificate of check {name} {state}");
        }
        Aspect::Clock => {
            let state = if ended { "back in line" } else { "is off" };
            return format!("{subject}: clock {state}");
        }
        Aspect::State => {}
    }
    match alert.kind {
        AlertKind::Problem => {
            // A host's state may carry details (`down: 2 polls missed`): the body has them.
            let state = alert.state.split(':').next().unwrap_or_default().trim();
            if state == "failed" {
                format!("{subject} failed")
            } else {
                format!("{subject} is {state}")
            }
        }
        AlertKind::Recovery => format!("{subject} recovered"),
        AlertKind::Flapping => format!("{subject} is flapping"),
        AlertKind::FlapEnded => format!("{subject} stopped flapping"),
    }
}

/// HTTP header values are visible ASCII. Anything else goes as an RFC 2047 encoded word, which
/// ntfy decodes; control characters are dropped either way.
fn header_text(text: &str) -> String {
    let clean: String = text.chars().filter(|c| !c.is_control()).collect();
    if clean.is_ascii() {
        clean
    } else {
        format!("=?UTF-8?B?{}?=", base64(clean.as_bytes()))
    }
}

/// Standard base64 with padding (RFC 4648), small enough not to need a crate.
fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alerting::notify::tests_support::{crash_alert, threshold_alert};

    #[test]
    fn the_body_holds_the_context_and_the_title_stays_short() {
        let alert = crash_alert(20, 500);
        let body = body(&alert);
        assert!(body.len() <= MAX_BODY, "{}", body.len());
        assert!(
            body.contains("Exit: signal 9 (SIGKILL), killed by the kernel's OOM killer"),
            "{body}"
        );
        assert!(body.contains("\nLast log lines:\n"), "{body}");
        assert!(body.ends_with("line 19: out of memory <boom>"), "{body}");
        assert_eq!(title(&alert), "web on vm-1 failed");
        assert_eq!(title(&threshold_alert()), "db-1 /var: disk-full");
    }

    #[test]
    fn base64_matches_rfc4648_vectors() {
        for (plain, encoded) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(base64(plain.as_bytes()), encoded, "{plain:?}");
        }
    }

    #[test]
    fn titles_are_header_safe() {
        assert_eq!(header_text("web on vm-1 failed"), "web on vm-1 failed");
        assert_eq!(header_text("a\r\nb"), "ab");
        assert_eq!(header_text("café"), "=?UTF-8?B?Y2Fmw6k=?=");
    }
}
