//! The client's pure parts: URLs, endpoints, error mapping, the hidden key.

use super::*;
use fleetdeck_proto::ErrorBody;

#[test]
fn urls_are_checked_and_normalized() {
    for (input, want) in [
        ("http://100.64.0.5:7080", "http://100.64.0.5:7080"),
        ("http://100.64.0.5:7080/", "http://100.64.0.5:7080"),
        (
            "  https://collector.tail1234.ts.net  ",
            "https://collector.tail1234.ts.net",
        ),
        ("http://[fd7a:115c::5]:7080/", "http://[fd7a:115c::5]:7080"),
        (
            "https://example.com/fleetdeck/",
            "https://example.com/fleetdeck",
        ),
        ("HTTP://Host:7080", "http://host:7080"),
    ] {
        let url = parse_collector_url(input).unwrap_or_else(|e| panic!("{input}: {e}"));
        assert_eq!(display_url(&url), want, "{input}");
    }
    for input in [
        "",
        "100.64.0.5:7080",
        "collector",
        "ftp://host",
        "file:///etc/passwd",
        "http://",
        "http://host:7080/?x=1",
        "http://host:7080/#top",
        "http://user:pass@host:7080",
        "http://host:99999",
        "ws://host:7080",
    ] {
        let e = parse_collector_url(input).expect_err(input);
        assert_eq!(e.code, "invalid_url", "{input}");
        assert!(
            e.message.contains("http://100.64.0.5:7080"),
            "{}",
            e.message
        );
        assert!(e.message.contains(input.trim()), "{}", e.message);
    }
    let e = parse_collector_url("100.64.0.5:7080").expect_err("no scheme");
    assert!(
        e.message.contains("did you mean http://100.64.0.5:7080"),
        "{}",
        e.message
    );
    let e = CollectorClient::new("nope", ApiKey::new("fdk_secret".into())).expect_err("bad");
    assert_eq!(e.code, "invalid_url");
}

#[test]
fn endpoints_percent_encode_segments() {
    let client =
        CollectorClient::new("http://h:1/prefix/", ApiKey::new("k".into())).expect("client");
    assert_eq!(client.url(), "http://h:1/prefix");
    let path = CollectorClient::app_path("web 1", "a/b?c#d%", &["env"]).expect("path");
    assert_eq!(
        client.endpoint(&path).as_str(),
        "http://h:1/prefix/v1/hosts/web%201/apps/a%2Fb%3Fc%23d%25/env"
    );
    let root = CollectorClient::new("http://h:1", ApiKey::new("k".into())).expect("client");
    assert_eq!(
        root.endpoint(&["v1", "fleet"]).as_str(),
        "http://h:1/v1/fleet"
    );
    for bad in ["", ".", ".."] {
        let e = CollectorClient::app_path(bad, "api", &[]).expect_err(bad);
        assert_eq!(e.code, "invalid_input");
        let e = CollectorClient::app_path("web", bad, &[]).expect_err(bad);
        assert_eq!(e.code, "invalid_input");
    }
}

fn body(code: &str, message: &str) -> Vec<u8> {
    serde_json::to_vec(&ErrorBody::new(code, message)).expect("json")
}

#[test]
fn errors_map_from_status_and_body() {
    let url = "http://100.64.0.5:7080";
    let cases: &[(u16, Vec<u8>, &str, &[&str])] = &[
        (
            401,
            body("unauthorized", "missing or invalid API key"),
            "unauthorized",
            &[url, "Check the key in Settings"],
        ),
        (401, b"".to_vec(), "unauthorized", &[url]),
        (
            403,
            body(
                "forbidden",
                "this needs the operator role; your key \"ro\" is viewer",
            ),
            "forbidden",
            &["operator role", "role"],
        ),
        (
            404,
            body("host_not_found", "no host named \"x\""),
            "not_found",
            &["no host named \"x\""],
        ),
        (
            412,
            body("stale_etag", "the file changed"),
            "conflict",
            &["changed on the host", "Reload"],
        ),
        (412, b"<html>".to_vec(), "conflict", &["Reload"]),
        (
            400,
            body("bad_request", "`kind` = \"x\": use one of"),
            "invalid_input",
            &["`kind`"],
        ),
        (
            422,
            body("unprocessable", "bad key name"),
            "invalid_input",
            &["bad key name"],
        ),
        (
            428,
            body("if_match_required", "If-Match is required"),
            "invalid_input",
            &["If-Match"],
        ),
        (
            409,
            body("conflict", "a key named a exists"),
            "conflict",
            &["a key named a exists"],
        ),
        (
            502,
            body(
                "agent_unreachable",
                "the agent of \"web-1\" did not answer: timed out",
            ),
            "agent_unreachable",
            &["web-1", "timed out"],
        ),
        (
            502,
            body(
                "agent_auth_failed",
                "the agent of \"web-1\" refused the collector's token",
            ),
            "agent_auth_failed",
            &["refused the collector's token"],
        ),
        (
            502,
            body("bad_gateway", "upstream"),
            "server",
            &["502", "upstream"],
        ),
        (
            500,
            body("database_failed", "database: disk full"),
            "server",
            &["500", "disk full", url],
        ),
        (
            404,
            b"<html><body>Not Found</body></html>".to_vec(),
            "protocol",
            &[
                url,
                "did not answer like a Fleetdeck collector",
                "404",
                "check the URL",
            ],
        ),
        (
            502,
            b"<html>Bad Gateway</html>".to_vec(),
            "protocol",
            &[url, "502", "collector is running"],
        ),
        (
            403,
            b"{\"detail\": \"nope\"}".to_vec(),
            "protocol",
            &[url, "403"],
        ),
    ];
    for (status, body, code, contains) in cases {
        let e = error_from_response(url, *status, body);
        assert_eq!(e.code, *code, "{status} {}", String::from_utf8_lossy(body));
        for part in *contains {
            assert!(
                e.message.contains(part),
                "{status}: {:?} lacks {part:?}",
                e.message
            );
        }
    }
}

#[test]
fn the_key_is_never_shown() {
    let key = ApiKey::new("fdk_supersecret".into());
    assert_eq!(format!("{key:?}"), "ApiKey(****)");
    assert_eq!(format!("{:?}", Some(key.clone())), "Some(ApiKey(****))");
    let client = CollectorClient::new("http://h:7080", key).expect("client");
    let shown = format!("{client:?}");
    assert!(!shown.contains("supersecret"), "{shown}");
    assert!(shown.contains("http://h:7080"), "{shown}");
}
