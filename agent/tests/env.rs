//! `.env` editing through the real agent: the wire rules (etag, 428/412/422, 404), files left
//! whole and untouched on refusal, values that python-dotenv 1.2, Node's dotenv 18 and
//! docker-compose read back exactly, and SIGKILL at random moments during 200 writes never leaving a torn file.

mod common;

use std::collections::BTreeMap;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::*;
use fleetdeck_proto::{EnvBackups, EnvFile, EnvWritten};
use serde_json::json;

fn tools() -> PathBuf {
    let dir = std::env::var_os("FLEETDECK_TOOLS")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var("HOME").expect("HOME")).join(".cache/fleetdeck-tools")
        });
    assert!(
        dir.join("venv/bin/python").exists() && dir.join("node/node_modules/dotenv").exists(),
        "python-dotenv / Node dotenv missing in {}: run scripts/setup.sh",
        dir.display()
    );
    dir
}

struct EnvAgent {
    _work: Workdir,
    env: PathBuf,
    agent: RunningAgent,
}

fn agent_with_env(initial: &str) -> EnvAgent {
    let work = Workdir::new();
    let env = work.path("app.env");
    secret_env(initial);
    std::fs::write(&env, initial).expect("env file");
    std::fs::set_permissions(&env, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    let agent = RunningAgent::start(&work.config(&format!(
        "[[apps]]\nname = \"web\"\nsystemd_unit = \"web.service\"\nenv_file = \"{}\"\n\
         [[apps]]\nname = \"noenv\"\nsystemd_unit = \"x.service\"\n",
        env.display()
    )));
    EnvAgent {
        _work: work,
        env,
        agent,
    }
}

async fn get_env(agent: &RunningAgent) -> EnvFile {
    serde_json::from_value(agent.get_json("/v1/apps/web/env").await).expect("EnvFile")
}

async fn put_env(
    agent: &RunningAgent,
    etag: Option<&str>,
    body: serde_json::Value,
) -> reqwest::Response {
    // What is written is a secret: the secrets check proves no log holds it.
    for value in body["set"]
        .as_object()
        .into_iter()
        .flat_map(|set| set.values())
    {
        secret(value.as_str().unwrap_or_default());
    }
    secret_env(body["raw"].as_str().unwrap_or_default());
    let mut req = agent
        .client
        .put(agent.url("/v1/apps/web/env"))
        .bearer_auth(TOKEN)
        .json(&body);
    if let Some(e) = etag {
        req = req.header("If-Match", format!("\"{e}\""));
    }
    req.send().await.expect("PUT")
}

async fn error_code(resp: reqwest::Response) -> (u16, String) {
    let status = resp.status().as_u16();
    let body: serde_json::Value = resp.json().await.expect("error json");
    (
        status,
        body["error"]["code"]
            .as_str()
            .unwrap_or_default()
            .to_owned(),
    )
}

#[tokio::test]
async fn read_edit_and_the_wire_rules() {
    let initial = "# web app\nexport DB_URL=postgres://db/app # primary\n\nPORT=80\nSECRET='s3cr3t-do-not-log'\n";
    let t = agent_with_env(initial);
    let file = get_env(&t.agent).await;
    assert_eq!(file.path, t.env.display().to_string());
    assert_eq!(file.raw, initial);
    let entries: Vec<(&str, &str, u32)> = file
        .entries
        .iter()
        .map(|e| (e.key.as_str(), e.value.as_str(), e.line))
        .collect();
    assert_eq!(
        entries,
        [
            ("DB_URL", "postgres://db/app", 2),
            ("PORT", "80", 4),
            ("SECRET", "s3cr3t-do-not-log", 5)
        ]
    );

    // Refusals leave the file byte for byte as it was.
    assert_eq!(
        error_code(put_env(&t.agent, None, json!({"set": {"PORT": "81"}})).await).await,
        (428, "if_match_required".into())
    );
    assert_eq!(
        error_code(put_env(&t.agent, Some("0123"), json!({"set": {"PORT": "81"}})).await).await,
        (412, "stale_etag".into())
    );
    for body in [
        json!({"set": {"1BAD": "x"}}),
        json!({"set": {"A B": "x"}}),
        json!({"unset": ["../etc"]}),
        json!({"raw": "A='unterminated\n"}),
        json!({"set": {"A": "needs quotes\nand ends in \\"}}),
        json!({"raw": "A=1", "set": {"B": "2"}}),
        json!({"nonsense": true}),
    ] {
        assert_eq!(
            error_code(put_env(&t.agent, Some(&file.etag), body.clone()).await).await,
            (422, "invalid_env".into()),
            "{body}"
        );
    }
    assert_eq!(
        std::fs::read_to_string(&t.env).expect("env"),
        initial,
        "untouched"
    );

    let resp = put_env(
        &t.agent,
        Some(&file.etag),
        json!({"set": {"PORT": "8080", "NEW_KEY": "a b"}, "unset": ["DB_URL"]}),
    )
    .await;
    assert_eq!(resp.status(), 200);
    let written: EnvWritten = resp.json().await.expect("EnvWritten");
    let now = std::fs::read_to_string(&t.env).expect("env");
    assert_eq!(
        now,
        "# web app\n\nPORT=8080\nSECRET='s3cr3t-do-not-log'\nNEW_KEY=a b\n"
    );
    assert_eq!(written.etag, get_env(&t.agent).await.etag);
    assert_eq!(
        std::fs::metadata(&t.env)
            .expect("meta")
            .permissions()
            .mode()
            & 0o777,
        0o600,
        "mode kept"
    );
    // The old etag is stale now.
    assert_eq!(
        error_code(put_env(&t.agent, Some(&file.etag), json!({"set": {"PORT": "1"}})).await)
            .await
            .0,
        412
    );

    // A raw write replaces the text.
    let resp = put_env(&t.agent, Some(&written.etag), json!({"raw": "ONLY=1\n"})).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(std::fs::read_to_string(&t.env).expect("env"), "ONLY=1\n");

    let resp = t.agent.get("/v1/apps/noenv/env").await;
    assert_eq!(error_code(resp).await, (404, "no_env_file".into()));
    let mut agent = t.agent;
    let logs = agent.logs().join("\n");
    assert!(logs.contains("env file written"), "{logs}");
    assert!(
        !logs.contains("s3cr3t") && !logs.contains("8080"),
        "no value in the logs: {logs}"
    );
}

/// A GET and a PUT (with the right etag for what is there, the strongest case) of app `app`'s
/// `.env`: both must be refused with 409 and `code`; the refusal's message is returned.
async fn both_refused(agent: &RunningAgent, app: &str, code: &str, etag: &str) -> String {
    let resp = agent.get(&format!("/v1/apps/{app}/env")).await;
    assert_eq!(resp.status(), 409, "GET {app}");
    let body = resp.text().await.expect("body");
    let error: serde_json::Value = serde_json::from_str(&body).expect("error json");
    assert_eq!(error["error"]["code"], code, "{body}");
    let resp = agent
        .client
        .put(agent.url(&format!("/v1/apps/{app}/env")))
        .bearer_auth(TOKEN)
        .header("If-Match", format!("\"{etag}\""))
        .json(&json!({"set": {"A": "overwritten"}}))
        .send()
        .await
        .expect("PUT");
    assert_eq!(error_code(resp).await, (409, code.to_owned()), "PUT {app}");
    error["error"]["message"]
        .as_str()
        .expect("message")
        .to_owned()
}

fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The names in `dir`, sorted.
fn names(dir: &Path) -> Vec<String> {
    let mut n: Vec<String> = std::fs::read_dir(dir)
        .expect("read dir")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    n.sort();
    n
}

/// A root-only file a link swapped in at the configured path could expose: mode 0600, its one
/// value recorded as a secret, so the secrets check also proves it reached no log.
fn root_only_file(path: &Path) -> Vec<u8> {
    let text = "ROOT_ONLY=the-root-only-secret-4711\n";
    secret_env(text);
    std::fs::write(path, text).expect("root-only file");
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    text.as_bytes().to_vec()
}

#[tokio::test]
async fn a_symlink_swapped_in_is_neither_read_nor_written() {
    let work = Workdir::new();
    let app = work.path("app");
    std::fs::create_dir(&app).expect("app dir");
    std::fs::set_permissions(&app, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let env = app.join(".env");
    std::fs::write(&env, "A=1\n").expect("env");
    let vault = work.path("vault");
    std::fs::create_dir(&vault).expect("vault");
    let secret_file = vault.join("key");
    let secret_bytes = root_only_file(&secret_file);
    let agent = RunningAgent::start(&work.config(&format!(
        "[[apps]]\nname = \"web\"\nsystemd_unit = \"web.service\"\nenv_file = \"{}\"\n",
        env.display()
    )));
    assert_eq!(get_env(&agent).await.raw, "A=1\n", "the real file is read");

    // The app's directory is writable by its owner, who swaps the file for a link.
    std::fs::remove_file(&env).expect("remove");
    std::os::unix::fs::symlink(&secret_file, &env).expect("symlink");
    let message = both_refused(
        &agent,
        "web",
        "env_file_symlink",
        &sha256_hex(&secret_bytes),
    )
    .await;
    assert!(
        message.contains(&format!("{} is a symbolic link", env.display()))
            && message.contains("env_follow_symlink_within"),
        "{message}"
    );
    assert!(!message.contains("the-root-only-secret"), "{message}");
    assert_eq!(std::fs::read(&secret_file).expect("secret"), secret_bytes);
    assert_eq!(
        std::fs::metadata(&secret_file).expect("meta").mode() & 0o7777,
        0o600
    );
    assert_eq!(
        names(&vault),
        ["key"],
        "no temp file or backup beside the target"
    );
    assert!(std::fs::symlink_metadata(&env)
        .expect("link")
        .file_type()
        .is_symlink());

    // A directory on the way swapped for a link to a directory holding a file of that name.
    std::fs::remove_file(&env).expect("remove link");
    std::fs::rename(&secret_file, vault.join(".env")).expect("rename");
    std::fs::remove_dir(&app).expect("remove app dir");
    std::os::unix::fs::symlink(&vault, &app).expect("dir symlink");
    let message = both_refused(
        &agent,
        "web",
        "env_file_symlink",
        &sha256_hex(&secret_bytes),
    )
    .await;
    assert!(
        message.contains(&format!(
            "leads through a symbolic link at {}",
            app.display()
        )),
        "{message}"
    );
    assert_eq!(
        std::fs::read(vault.join(".env")).expect("secret"),
        secret_bytes
    );
    assert_eq!(names(&vault), [".env"]);
}

#[tokio::test]
async fn a_directory_others_can_change_is_refused() {
    let work = Workdir::new();
    let app = work.path("app");
    std::fs::create_dir(&app).expect("app dir");
    let env = app.join(".env");
    std::fs::write(&env, "A=1\n").expect("env");
    let etag = sha256_hex(b"A=1\n");
    let agent = RunningAgent::start(&work.config(&format!(
        "[[apps]]\nname = \"web\"\nsystemd_unit = \"web.service\"\nenv_file = \"{}\"\n",
        env.display()
    )));
    let set = |mode: u32| {
        std::fs::set_permissions(&app, std::fs::Permissions::from_mode(mode)).expect("chmod")
    };
    let chown = |path: &Path, uid: u32| {
        std::os::unix::fs::chown(path, Some(uid), Some(uid)).expect("chown")
    };

    for (mode, who) in [
        (0o775, "group 0"),
        (0o757, "others"),
        (0o2777, "group 0 and others"),
    ] {
        set(mode);
        let message = both_refused(&agent, "web", "env_file_dir_writable", &etag).await;
        assert!(
            message.contains(&format!(
                "directory {} (mode {mode:04o}) is writable by {who}",
                app.display()
            )) && message.contains("rule: only root and the file's owner")
                && message.contains(&format!("chmod go-w {}", app.display())),
            "{message}"
        );
    }
    // Owned by a user who does not own the file: that user could swap it.
    set(0o755);
    chown(&app, 4242);
    let message = both_refused(&agent, "web", "env_file_dir_writable", &etag).await;
    assert!(
        message.contains(
            "is owned by uid 4242, who is neither root nor the owner of the env file (uid 0)"
        ),
        "{message}"
    );
    assert_eq!(std::fs::read_to_string(&env).expect("env"), "A=1\n");
    assert_eq!(names(&app), [".env"], "nothing written beside it");

    // The same directory is fine once the file belongs to that user too, and a sticky
    // world-writable directory is fine when the file in it belongs to root or its owner.
    chown(&env, 4242);
    let file = get_env(&agent).await;
    assert_eq!(file.raw, "A=1\n");
    chown(&app, 0);
    chown(&env, 0);
    set(0o1777);
    let file = get_env(&agent).await;
    let resp = put_env(&agent, Some(&file.etag), json!({"set": {"A": "2"}})).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(std::fs::read_to_string(&env).expect("env"), "A=2\n");
}

#[tokio::test]
async fn env_follow_symlink_within_allows_links_inside_only() {
    let work = Workdir::new();
    let shared = work.path("shared");
    let app = work.path("app");
    std::fs::create_dir(&shared).expect("shared");
    std::fs::create_dir(&app).expect("app");
    let real = shared.join("web.env");
    std::fs::write(&real, "A=1\n").expect("env");
    std::fs::set_permissions(&real, std::fs::Permissions::from_mode(0o640)).expect("chmod");
    let secret_file = work.path("outside.env");
    let secret_bytes = root_only_file(&secret_file);
    // Inside (a relative link, and a link to a link that stays inside); escaping by `..` and
    // by a second link.
    let link = |name: &str, to: &str| {
        std::os::unix::fs::symlink(to, app.join(name)).expect("symlink");
        app.join(name)
    };
    let web = link("web.env", "../shared/web.env");
    std::os::unix::fs::symlink("web.env", shared.join("hop-in")).expect("hop-in");
    let twice = link("twice.env", &shared.join("hop-in").display().to_string());
    let dotdot = link(
        "dotdot.env",
        &format!("{}/../outside.env", shared.display()),
    );
    std::os::unix::fs::symlink(&secret_file, shared.join("hop-out")).expect("hop-out");
    let second = link("second.env", &shared.join("hop-out").display().to_string());
    let apps: String = [
        ("web", &web),
        ("twice", &twice),
        ("dotdot", &dotdot),
        ("second", &second),
    ]
    .iter()
    .map(|(name, path)| {
        format!(
            "[[apps]]\nname = \"{name}\"\nsystemd_unit = \"{name}.service\"\nenv_file = \"{}\"\n\
                 env_follow_symlink_within = \"{}\"\n",
            path.display(),
            shared.display()
        )
    })
    .collect();
    let agent = RunningAgent::start(&work.config(&apps));

    let file = get_env(&agent).await;
    assert_eq!(file.raw, "A=1\n");
    let resp = put_env(&agent, Some(&file.etag), json!({"set": {"A": "2"}})).await;
    assert_eq!(resp.status(), 200);
    assert!(std::fs::symlink_metadata(&web)
        .expect("link")
        .file_type()
        .is_symlink());
    assert_eq!(std::fs::read_to_string(&real).expect("real"), "A=2\n");
    assert_eq!(
        std::fs::metadata(&real).expect("meta").mode() & 0o7777,
        0o640
    );
    assert!(
        shared.join(".web.env.fleetdeck-backup.1").exists(),
        "backup beside the target"
    );
    let twice_file: EnvFile =
        serde_json::from_value(agent.get_json("/v1/apps/twice/env").await).expect("EnvFile");
    assert_eq!(twice_file.raw, "A=2\n");

    for app_name in ["dotdot", "second"] {
        let message = both_refused(
            &agent,
            app_name,
            "env_file_link_outside",
            &sha256_hex(&secret_bytes),
        )
        .await;
        assert!(
            message.contains(&format!("resolves outside {}", shared.display())),
            "{message}"
        );
        assert!(
            !message.contains("outside.env"),
            "the target is not named: {message}"
        );
    }
    assert_eq!(std::fs::read(&secret_file).expect("secret"), secret_bytes);
    assert!(!work.path(".outside.env.fleetdeck-backup.1").exists());
}

/// Values a config really holds, and values chosen to break quoting.
fn hostile_values() -> Vec<String> {
    let mut v: Vec<String> = [
        "plain",
        "",
        "with space",
        " lead",
        "trail ",
        "a#b",
        "a #b",
        "#start",
        "$HOME",
        "${HOME}",
        "$$",
        "it's",
        "say \"hi\"",
        "both ' and \"",
        "multi\nline",
        "cr\rhere",
        "crlf\r\n",
        "tab\there",
        "back\\slash",
        "trailing\\",
        "\\n literal",
        "'quoted'",
        "\"dq\"",
        "`tick`",
        "=eq=",
        "é ü €",
        "postgres://user:p@ss#w0rd@db:5432/app?sslmode=require",
        "{\"json\": [1, 2]}",
        "a\\'b",
        "\\\\",
        "'",
        "\"",
        "line1\nline2 'x' \"y\" $z #w",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    // A deterministic spread of random-looking values from a small alphabet of troublemakers.
    let alphabet: Vec<char> = "ab '\"\\$#\n\r\t=`{}é ".chars().collect();
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    for _ in 0..300 {
        let len = (x % 12) as usize;
        let mut s = String::new();
        for _ in 0..len {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            s.push(alphabet[(x % alphabet.len() as u64) as usize]);
        }
        x = x.wrapping_mul(6364136223846793005).wrapping_add(1);
        v.push(s);
    }
    v
}

/// What docker compose (Debian's docker-compose 1.29; compose v2 is not packaged for Debian 12)
/// puts into a service's environment from `path` given as its `env_file`.
fn compose_reads(path: &Path) -> BTreeMap<String, String> {
    let dir = path.parent().expect("dir");
    std::fs::write(
        dir.join("docker-compose.yml"),
        format!(
            "version: \"3\"\nservices:\n  app:\n    image: busybox\n    env_file: {}\n",
            path.display()
        ),
    )
    .expect("compose file");
    let out = Command::new("docker-compose")
        .current_dir(dir)
        .arg("config")
        .output()
        .expect("docker-compose (scripts/setup.sh installs it)");
    assert!(
        out.status.success(),
        "docker-compose config: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    // compose's own Python has PyYAML; its output doubles each '$'.
    let mut to_json = Command::new("/usr/bin/python3")
        .args(["-c", "import json, sys, yaml; env = yaml.safe_load(sys.stdin)['services']['app']['environment']; print(json.dumps({k: (v or '').replace('$$', '$') for k, v in env.items()}))"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("python3 with PyYAML");
    std::io::Write::write_all(&mut to_json.stdin.take().expect("stdin"), &out.stdout)
        .expect("pipe");
    let json = to_json.wait_with_output().expect("yaml to json");
    assert!(json.status.success());
    serde_json::from_slice(&json.stdout).expect("compose environment json")
}

/// What python-dotenv and Node's dotenv read from `path`, as key → value.
fn real_parsers(path: &Path) -> (BTreeMap<String, String>, BTreeMap<String, String>) {
    let tools = tools();
    let py = Command::new(tools.join("venv/bin/python"))
        .args(["-c", "import json, sys; from dotenv import dotenv_values; print(json.dumps(dotenv_values(sys.argv[1], interpolate=True)))"])
        .arg(path)
        .output()
        .expect("python");
    assert!(
        py.status.success(),
        "{}",
        String::from_utf8_lossy(&py.stderr)
    );
    let node = Command::new("node")
        .current_dir(tools.join("node"))
        .args(["-e", "const fs = require('fs'); const d = require('dotenv'); process.stdout.write(JSON.stringify(d.parse(fs.readFileSync(process.argv[1]))))"])
        .arg(path)
        .output()
        .expect("node");
    assert!(
        node.status.success(),
        "{}",
        String::from_utf8_lossy(&node.stderr)
    );
    let parse = |out: &[u8]| -> BTreeMap<String, String> {
        let v: BTreeMap<String, Option<String>> = serde_json::from_slice(out).expect("parser json");
        v.into_iter()
            .map(|(k, v)| (k, v.unwrap_or_default()))
            .collect()
    };
    (parse(&py.stdout), parse(&node.stdout))
}

#[tokio::test]
async fn python_dotenv_node_dotenv_and_docker_compose_read_back_what_was_set() {
    let t = agent_with_env("# hostile values\nKEEP=kept\n");
    let values = hostile_values();
    let mut set = BTreeMap::new();
    // A value that needs quotes and ends with a backslash is refused (Node would misread the
    // lines after it); the rest go in one edit.
    for (i, v) in values.iter().enumerate() {
        if fleetdeck_agent::env_file::quote::quote(v).is_some() {
            set.insert(format!("K{i}"), v.clone());
        }
    }
    assert!(set.len() > values.len() * 9 / 10);
    let file = get_env(&t.agent).await;
    let resp = put_env(&t.agent, Some(&file.etag), json!({ "set": set })).await;
    assert_eq!(resp.status(), 200);
    let (py, node) = real_parsers(&t.env);
    let compose = compose_reads(&t.env);
    // Our own reading must agree too.
    let ours: BTreeMap<String, String> = get_env(&t.agent)
        .await
        .entries
        .into_iter()
        .map(|e| (e.key, e.value))
        .collect();
    let mut node_cannot = Vec::new();
    let mut wrong = Vec::new();
    for (key, want) in &set {
        assert_eq!(ours.get(key), Some(want), "agent reads {key} back");
        // python-dotenv expands ${NAME} in every form and has no escape for it.
        // docker-compose 1.29 reads env files with python-dotenv: the same ${NAME} limit.
        if !want.contains("${") && compose.get(key) != Some(want) {
            wrong.push(format!(
                "docker-compose {key}: want {want:?} got {:?}",
                compose.get(key)
            ));
        }
        if !want.contains("${") && py.get(key) != Some(want) {
            wrong.push(format!(
                "python-dotenv {key}: want {want:?} got {:?}",
                py.get(key)
            ));
        }
        // Node's dotenv cannot escape a double quote, nor anything in single quotes: a value that
        // needs a quote form and holds both kinds of quote (or a backslash) is written for
        // python-dotenv and compose.
        let written = fleetdeck_agent::env_file::quote::quote(want).expect("writable");
        let node_can = !(written.starts_with('"') && (want.contains('"') || want.contains('\\')));
        if node_can {
            if node.get(key) != Some(want) {
                wrong.push(format!(
                    "node dotenv {key}: want {want:?} (written {written:?}) got {:?}",
                    node.get(key)
                ));
            }
        } else {
            node_cannot.push(want.clone());
        }
    }
    if !wrong.is_empty() {
        let _ = std::fs::copy(&t.env, "/tmp/fd-env-debug.env");
    }
    assert!(
        wrong.is_empty(),
        "{} values read back wrong:\n{}",
        wrong.len(),
        wrong.join("\n")
    );
    assert_eq!(py.get("KEEP").map(String::as_str), Some("kept"));
    assert!(
        node_cannot.len() < values.len() / 2,
        "most values are expressible for Node too: {}",
        node_cannot.len()
    );
}

#[tokio::test]
async fn sigkill_during_writes_never_tears_the_file() {
    // 200 writes of a large file, each with the agent SIGKILLed a random moment after the request
    // was sent: the file must be exactly the old or the new text every time.
    let work = Workdir::new();
    let env = work.path("big.env");
    let text = |n: u32| {
        format!(
            "# generation {n}\n{}",
            (0..2000)
                .map(|i| format!("KEY_{i}=value-{n}-{i}-{}\n", "x".repeat(40)))
                .collect::<String>()
        )
    };
    std::fs::write(&env, text(0)).expect("env");
    let config = work.config(&format!(
        "[[apps]]\nname = \"web\"\nsystemd_unit = \"web.service\"\nenv_file = \"{}\"\n",
        env.display()
    ));
    // How long one whole write takes here, to spread the kills over it (and a bit past it).
    let span = {
        let agent = RunningAgent::start(&config);
        let etag = fleetdeck_agent::env_file::etag(&std::fs::read(&env).expect("read"));
        let t0 = std::time::Instant::now();
        let resp = agent
            .client
            .put(agent.url("/v1/apps/web/env"))
            .bearer_auth(TOKEN)
            .header("If-Match", etag)
            .json(&json!({"raw": text(0)}))
            .send()
            .await
            .expect("PUT");
        assert_eq!(resp.status(), 200);
        t0.elapsed().as_micros() as u64 * 3 / 2
    };
    let mut seed: u64 = 42;
    let mut outcomes = [0u32; 2];
    for n in 1..=200u32 {
        let agent = RunningAgent::start(&config);
        let before = std::fs::read(&env).expect("read");
        let etag = fleetdeck_agent::env_file::etag(&before);
        let new = text(n);
        let url = agent.url("/v1/apps/web/env");
        let client = agent.client.clone();
        let body = json!({"raw": new});
        let send = tokio::spawn(async move {
            let _ = client
                .put(url)
                .bearer_auth(TOKEN)
                .header("If-Match", etag)
                .json(&body)
                .send()
                .await;
        });
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        tokio::time::sleep(Duration::from_micros(seed % span.max(1))).await; // the random kill point
        let pid = agent.pid().to_string();
        run("kill", &["-KILL", &pid]);
        drop(agent);
        let _ = send.await;
        let after = std::fs::read_to_string(&env).expect("read after kill");
        let old = String::from_utf8(before).expect("utf-8");
        assert!(
            after == old || after == new,
            "write {n}: the file is neither the old nor the new text ({} bytes)",
            after.len()
        );
        outcomes[usize::from(after == new)] += 1;
    }
    // Both outcomes happened: the kills landed before and after the rename.
    assert!(
        outcomes[0] > 0 && outcomes[1] > 0,
        "old/new outcomes: {outcomes:?}"
    );
}

#[tokio::test]
async fn backups_are_listed_read_and_restorable_through_the_same_write() {
    let first = "PORT=80\nTOKEN=first-secret-b1\n";
    let t = agent_with_env(first);
    let none: serde_json::Value = t.agent.get_json("/v1/apps/web/env/backups").await;
    assert_eq!(
        none["backups"],
        serde_json::json!([]),
        "no write yet: {none}"
    );

    // Two writes: backup 1 is the file before the second, backup 2 before the first.
    let e0 = get_env(&t.agent).await.etag;
    let resp = put_env(
        &t.agent,
        Some(&e0),
        serde_json::json!({"set": {"TOKEN": "second-secret-b2"}}),
    )
    .await;
    assert_eq!(resp.status(), 200);
    let second = std::fs::read_to_string(&t.env).expect("read");
    let e1 = get_env(&t.agent).await.etag;
    let resp = put_env(
        &t.agent,
        Some(&e1),
        serde_json::json!({"set": {"PORT": "81"}}),
    )
    .await;
    assert_eq!(resp.status(), 200);
    let listed: EnvBackups =
        serde_json::from_value(t.agent.get_json("/v1/apps/web/env/backups").await)
            .expect("EnvBackups");
    let ns: Vec<u32> = listed.backups.iter().map(|b| b.n).collect();
    assert_eq!(ns, [1, 2]);
    assert_eq!(listed.backups[0].etag, sha256_hex(second.as_bytes()));
    assert_eq!(listed.backups[1].etag, sha256_hex(first.as_bytes()));
    assert_eq!(listed.backups[1].size_bytes, first.len() as u64);
    let one: EnvFile = serde_json::from_value(t.agent.get_json("/v1/apps/web/env/backups/2").await)
        .expect("EnvFile");
    assert_eq!(one.raw, first);
    assert!(
        one.path.ends_with(".app.env.fleetdeck-backup.2"),
        "{}",
        one.path
    );

    // Restore backup 2: its raw text, written with the current etag.
    let current = get_env(&t.agent).await;
    let resp = put_env(
        &t.agent,
        Some(&current.etag),
        serde_json::json!({"raw": one.raw}),
    )
    .await;
    assert_eq!(resp.status(), 200);
    assert_eq!(std::fs::read_to_string(&t.env).expect("read"), first);
    // A stale restore (the etag of before) is refused and leaves the file.
    let resp = put_env(
        &t.agent,
        Some(&current.etag),
        serde_json::json!({"raw": second}),
    )
    .await;
    assert_eq!(error_code(resp).await, (412, "stale_etag".to_owned()));
    assert_eq!(std::fs::read_to_string(&t.env).expect("read"), first);

    // What is not a backup: out of range, not a number, an app without a file.
    for (path, status, code) in [
        ("/v1/apps/web/env/backups/4", 404, "no_backup"),
        ("/v1/apps/web/env/backups/0", 404, "no_backup"),
        ("/v1/apps/web/env/backups/x", 400, "bad_request"),
        ("/v1/apps/noenv/env/backups", 404, "no_env_file"),
        ("/v1/apps/nope/env/backups/1", 404, "app_not_found"),
    ] {
        assert_eq!(
            error_code(t.agent.get(path).await).await,
            (status, code.to_owned()),
            "{path}"
        );
    }

    // A backup swapped for a symlink (to a root-only file) is not followed: it is not listed.
    let dir = t.env.parent().expect("dir");
    let three = dir.join(".app.env.fleetdeck-backup.3");
    let _ = std::fs::remove_file(&three);
    std::os::unix::fs::symlink("/etc/shadow", &three).expect("symlink");
    let listed: EnvBackups =
        serde_json::from_value(t.agent.get_json("/v1/apps/web/env/backups").await)
            .expect("EnvBackups");
    assert!(listed.backups.iter().all(|b| b.n != 3), "{listed:?}");
    assert_eq!(
        error_code(t.agent.get("/v1/apps/web/env/backups/3").await).await,
        (404, "no_backup".to_owned())
    );
}
