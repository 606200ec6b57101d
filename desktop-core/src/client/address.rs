//! A collector's address as the operator types it: the URL checked and normalized, names as path
//! segments, the certificate pin, and the warning a plain-HTTP address outside the tailnet earns.

use fleetdeck_proto::desktop::CommandError;
use fleetdeck_transport::addr::{is_plain_http_outside_tailnet, resolves_privately};
use fleetdeck_transport::pin::Fingerprint;
use reqwest::Url;

/// Checks a collector URL as typed by a person and returns it normalized (no trailing slash).
/// It must be `http` or `https`, name a host, and carry no query, fragment or credentials.
pub fn parse_collector_url(input: &str) -> Result<Url, CommandError> {
    let input = input.trim();
    let invalid = |why: &str| {
        CommandError::new(
            "invalid_url",
            format!(
                "\"{input}\" is not a collector URL: {why}. Use the form http://100.64.0.5:7080 \
                 (http or https, the collector's address and port)."
            ),
        )
    };
    if input.is_empty() {
        return Err(invalid("it is empty"));
    }
    if !input.contains("://") {
        return Err(invalid(&format!(
            "it has no scheme; did you mean http://{input}?"
        )));
    }
    let url = Url::parse(input).map_err(|e| invalid(&e.to_string()))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(invalid(&format!(
            "the scheme is {}, not http or https",
            url.scheme()
        )));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(invalid("it names no host"));
    }
    if url.query().is_some() {
        return Err(invalid("it has a query (?...)"));
    }
    if url.fragment().is_some() {
        return Err(invalid("it has a fragment (#...)"));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(invalid(
            "it carries a user name or password; put the API key in the key field instead",
        ));
    }
    // `Url` always shows an empty path as `/`; a path prefix (a reverse proxy) keeps no trailing
    // slash, so endpoints append cleanly.
    let trimmed = url.as_str().trim_end_matches('/').to_owned();
    Url::parse(&trimmed).map_err(|e| invalid(&e.to_string()))
}

/// The URL as people read it: no trailing slash.
pub(crate) fn display_url(url: &Url) -> String {
    url.as_str().trim_end_matches('/').to_owned()
}

/// A host or app name as a path segment: `.` and `..` would be dropped from the path (and so
/// reach another endpoint), and an empty one names nothing.
pub(crate) fn segment<'a>(what: &str, name: &'a str) -> Result<&'a str, CommandError> {
    if name.is_empty() || name == "." || name == ".." {
        return Err(CommandError::new(
            "invalid_input",
            format!("\"{name}\" is not a {what} name."),
        ));
    }
    Ok(name)
}

/// Parses a collector's certificate pin as typed (`sha256:` and 64 hex digits).
pub fn parse_fingerprint(text: &str) -> Result<Fingerprint, CommandError> {
    Fingerprint::parse(text)
        .map_err(|e| CommandError::new("invalid_input", format!("TLS fingerprint: {e}.")))
}

/// What to tell the operator when `url` sends the key in clear outside loopback and the tailnet.
/// A name is looked up first (once, when the client is made), so a MagicDNS short name
/// (`http://ops:7080`) earns no warning.
pub fn plain_http_warning(url: &Url) -> Option<String> {
    let host = url.host_str().unwrap_or_default();
    (is_plain_http_outside_tailnet(url.scheme(), host) && !resolves_privately(host)).then(|| {
        format!(
            "The collector at {} is reached by plain HTTP outside loopback and the tailnet: its API \
             key and your fleet's data cross that network in clear. Serve the collector with \
             tls_cert/tls_key and add it with an https:// URL and its TLS fingerprint, or reach it \
             over Tailscale.",
            display_url(url)
        )
    })
}
