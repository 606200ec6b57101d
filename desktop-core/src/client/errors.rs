//! Every way a call to a collector fails, as a [`CommandError`] that says what was wrong and what
//! to do; the key is never in one.

use std::time::Duration;

use fleetdeck_proto::desktop::CommandError;
use fleetdeck_proto::ErrorBody;

/// Turns a collector's non-2xx answer into the desktop's error: `url` is the collector's, `body`
/// what it sent (Fleetdeck's `{"error": {"code", "message"}}` from a collector).
pub fn error_from_response(url: &str, status: u16, body: &[u8]) -> CommandError {
    // These two mean the same whoever answered, so their body is not needed.
    match status {
        401 => {
            return CommandError::new(
                "unauthorized",
                format!("The collector at {url} refused the API key. Check the key in Settings."),
            )
        }
        412 => {
            return CommandError::new(
                "conflict",
                "The .env file changed on the host since it was read. Reload it, then make your \
                 change again.",
            )
        }
        _ => {}
    }
    let reason = reqwest::StatusCode::from_u16(status)
        .ok()
        .and_then(|s| s.canonical_reason())
        .map_or_else(
            || format!("HTTP {status}"),
            |r| format!("HTTP {status} {r}"),
        );
    let Ok(ErrorBody { error }) = serde_json::from_slice::<ErrorBody>(body) else {
        let what = if (500..600).contains(&status) {
            format!(
                "{reason} without Fleetdeck's error JSON; a proxy in front of it may have \
                 answered, so also check that the collector is running"
            )
        } else {
            format!("{reason} without Fleetdeck's error JSON")
        };
        return protocol(url, &what);
    };
    let message = error.message;
    match status {
        403 => CommandError::new(
            "forbidden",
            format!(
                "The collector at {url} does not allow this with your key's role: {message}. Ask \
                 its admin for a key with that role."
            ),
        ),
        404 => CommandError::new("not_found", format!("Not found: {message}.")),
        400 | 422 | 428 => CommandError::new("invalid_input", message),
        409 => CommandError::new("conflict", message),
        502 if matches!(
            error.code.as_str(),
            "agent_unreachable" | "agent_auth_failed"
        ) =>
        {
            CommandError::new(error.code, message)
        }
        _ => CommandError::new(
            "server",
            format!(
                "The collector at {url} answered {reason} ({}): {message}",
                error.code
            ),
        ),
    }
}

pub(crate) fn protocol(url: &str, what: &str) -> CommandError {
    CommandError::new(
        "protocol",
        format!("{url} did not answer like a Fleetdeck collector ({what}); check the URL."),
    )
}

/// reqwest's error with its root cause (connection refused, DNS...), which its `Display` omits,
/// and without the request's URL (the caller names the collector once).
pub(crate) fn describe(e: reqwest::Error) -> String {
    let e = e.without_url();
    let mut text = if e.is_timeout() {
        "timed out".to_owned()
    } else if e.is_connect() {
        "cannot connect".to_owned()
    } else {
        e.to_string()
    };
    let mut source = std::error::Error::source(&e);
    let mut last = String::new();
    while let Some(s) = source {
        last = s.to_string();
        source = s.source();
    }
    if !last.is_empty() && !text.contains(&last) {
        text.push_str(": ");
        text.push_str(&last);
    }
    text
}

pub(crate) fn unreachable(url: &str, reason: &str) -> CommandError {
    CommandError::new(
        "unreachable",
        format!(
            "Could not reach the collector at {url}: {reason}. Check the URL and that the \
             collector is running."
        ),
    )
}

/// Why a stream's body stopped.
#[derive(Debug)]
pub(crate) enum BodyError {
    Http(String),
    Silent(Duration),
}

impl std::fmt::Display for BodyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Http(e) => f.write_str(e),
            Self::Silent(limit) => write!(
                f,
                "it sent nothing for {}, not even a keep-alive",
                humantime::format_duration(*limit)
            ),
        }
    }
}
