//! Arbitrary text as `agent.toml` and `collector.toml`: loading never panics, and a refusal is one
//! line that names what is wrong without quoting the file (TOML's error excerpt would print the
//! offending line, and a webhook URL on it is a secret for Slack and Discord). The same holds for
//! the `listen` entries and `tailscale ip` output both daemons read.

#![no_main]

use fleetdeck_agent::config::Config as AgentConfig;
use fleetdeck_collector::config::Config as CollectorConfig;
use fleetdeck_daemon::listen::{parse_tailscale_ip, ListenSpec};
use fleetdeck_daemon::secret::Token;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let doc: Option<toml::Table> = text.parse().ok();

    match AgentConfig::parse(text, Some("unix:///run/docker.sock")) {
        Ok(config) => {
            assert!(config.sample_interval.as_secs() >= 1);
            assert!(config.sample_retention >= config.sample_interval);
        }
        Err(e) => one_line("agent", text, e.message()),
    }

    // One token per agent, as `Config::load` reads them from their files.
    let agents = doc
        .as_ref()
        .and_then(|d| d.get("agents"))
        .and_then(toml::Value::as_array)
        .map_or(0, Vec::len);
    let tokens = vec![Token::new("t".repeat(32)); agents];
    match CollectorConfig::parse(text, tokens) {
        Ok(config) => assert_eq!(config.agents.len(), agents),
        Err(e) => {
            one_line("collector", text, &e);
            for secret in webhook_urls(doc.as_ref()) {
                assert!(
                    !e.contains(&secret),
                    "collector error quotes a webhook URL: {e}"
                );
            }
        }
    }

    for line in text.lines() {
        let _ = ListenSpec::parse(line, 7070);
    }
    let _ = parse_tailscale_ip(text);
});

/// A refusal is a message of one line, never an excerpt of the file.
fn one_line(which: &str, text: &str, error: &str) {
    assert!(!error.is_empty(), "{which}: empty error for {text:?}");
    assert!(
        !error.contains('\n'),
        "{which} error quotes the file:\n{error}"
    );
}

/// The fixed text of the collector's config errors that holds "://" (advice and an example agent
/// URL), whatever the input.
const ADVICE: &[&str] = &[
    "must be http:// or https:// with a host, e.g. \"http://100.101.1.2:7070\"",
    "use the full https://... address",
];

/// The webhook URLs of the document that appear nowhere else in it (as another value or a key):
/// an error may name another field's value, which is fine unless it is also a secret.
fn webhook_urls(doc: Option<&toml::Table>) -> Vec<String> {
    let Some(doc) = doc else {
        return Vec::new();
    };
    let urls: Vec<String> = doc
        .get("webhooks")
        .and_then(toml::Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|h| h.get("url")?.as_str().map(str::to_owned))
        // What could be a URL ("://") and is not part of the errors' own fixed text: a webhook
        // URL of "http://100.101.1.2:70" is in the advice `e.g. "http://100.101.1.2:7070"`, and
        // one of "e 12: missing field `token_fi" in a TOML error about another line.
        .filter(|u| u.contains("://") && !ADVICE.iter().any(|a| a.contains(u.as_str())))
        .collect();
    let mut others = Vec::new();
    collect_others(&toml::Value::Table(doc.clone()), false, &mut others);
    urls.into_iter()
        .filter(|u| !others.iter().any(|o| o.contains(u.as_str())))
        .collect()
}

/// Every key and every string value except webhooks' `url`s.
fn collect_others(v: &toml::Value, in_webhooks: bool, out: &mut Vec<String>) {
    match v {
        toml::Value::String(s) => out.push(s.clone()),
        toml::Value::Array(items) => {
            for item in items {
                collect_others(item, in_webhooks, out);
            }
        }
        toml::Value::Table(t) => {
            for (k, v) in t {
                out.push(k.clone());
                if in_webhooks && k == "url" {
                    continue;
                }
                collect_others(v, !in_webhooks && k == "webhooks", out);
            }
        }
        _ => {}
    }
}
