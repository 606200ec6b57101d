//! Issue 15: email alerts through a real SMTP server (aiosmtpd from PyPI, run by the test with
//! a certificate made here with rcgen): STARTTLS and implicit TLS, each with a login; through the
//! real collector binary polling a simulated host.

mod common;
#[path = "common/sim_bench.rs"]
mod sim_bench;

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

use common::*;
use fleetdeck_proto::Exit;
use serde_json::Value;
use sim_bench::*;

const PASSWORD: &str = "i15-smtp-password-Zq8";

/// The SMTP server: its child process, where it saves messages, its two ports.
struct Smtp {
    child: Child,
    out: PathBuf,
    starttls: u16,
    tls: u16,
    ca: PathBuf,
}

impl Drop for Smtp {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

impl Smtp {
    fn start(work: &Workdir) -> Self {
        let tools = std::env::var_os("FLEETDECK_TOOLS").map_or_else(
            || {
                PathBuf::from(std::env::var_os("HOME").expect("HOME"))
                    .join(".cache/fleetdeck-tools")
            },
            PathBuf::from,
        );
        let python = tools.join("venv/bin/python");
        assert!(
            python.exists(),
            "{} is missing: run scripts/setup.sh (it installs aiosmtpd there)",
            python.display()
        );
        let (ca, cert, key) = certificate_pems();
        let ca = work.write("ca.pem", &ca);
        let cert = work.write("smtp.pem", &cert);
        let key = work.write("smtp.key", &key);
        let out = work.path("mail");
        std::fs::create_dir_all(&out).expect("mail dir");
        let (starttls, tls) = (free_port(), free_port());
        let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/smtp_receiver.py");
        let mut child = Command::new(python)
            .arg(script)
            .args([&cert, &key])
            .args(["alerts", PASSWORD])
            .arg(&out)
            .args([starttls.to_string(), tls.to_string()])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start the SMTP server");
        let mut line = String::new();
        BufReader::new(child.stdout.take().expect("stdout"))
            .read_line(&mut line)
            .expect("the SMTP server's first line");
        assert_eq!(line.trim(), "ready", "the SMTP server did not start");
        Self {
            child,
            out,
            starttls,
            tls,
            ca,
        }
    }

    /// The saved messages, oldest first.
    fn messages(&self) -> Vec<String> {
        let mut names: Vec<PathBuf> = std::fs::read_dir(&self.out)
            .expect("mail dir")
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "eml"))
            .collect();
        names.sort();
        names
            .iter()
            .map(|p| std::fs::read_to_string(p).expect("a message"))
            .collect()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_arrives_by_mail_over_starttls_and_tls_with_its_last_lines() {
    secret(PASSWORD);
    let work = Workdir::new();
    let smtp = Smtp::start(&work);
    let password = work.secret("smtp.password", PASSWORD);
    let wrong = work.secret("wrong.password", "not-the-password");
    let channel = |name: &str, port: u16, tls: &str, password: &std::path::Path| {
        format!(
            "[[channels]]\nname = \"{name}\"\ntype = \"smtp\"\nhost = \"localhost\"\nport = {port}\n\
             tls = \"{tls}\"\nusername = \"alerts\"\npassword_file = \"{}\"\n\
             from = \"Fleetdeck <alerts@example.com>\"\nto = [\"ops@example.com\"]\nca_file = \"{}\"\n",
            password.display(),
            smtp.ca.display()
        )
    };
    let alerting = format!(
        "{}{}{}[[routes]]\nchannels = [\"mail-starttls\", \"mail-tls\"]\n",
        channel("mail-starttls", smtp.starttls, "starttls", &password),
        channel("mail-tls", smtp.tls, "tls", &password),
        channel("mail-wrong", smtp.starttls, "starttls", &wrong),
    );
    let b = bench_with(move |_| alerting).await;
    let app = b.apps[0].clone();
    b.sim.crash_and_restart(
        0,
        &app,
        Exit::Code(3),
        &["loading config", "panic: missing DATABASE_URL i15mail"],
    );
    let mails = wait_for("a mail on each port", LIMIT, || async {
        let m = smtp.messages();
        (m.len() >= 2).then_some(m)
    })
    .await;
    let mut ports = Vec::new();
    for mail in &mails {
        ports.push(
            mail.lines()
                .next()
                .and_then(|l| l.strip_prefix("X-Received-On-Port: "))
                .and_then(|p| p.trim().parse::<u16>().ok())
                .expect("the port line"),
        );
        assert!(
            mail.contains(&format!(
                "Subject: [Fleetdeck WARNING] {app} on sim crashed (exit code 3)"
            )),
            "{mail}"
        );
        assert!(
            mail.contains("From: Fleetdeck <alerts@example.com>"),
            "{mail}"
        );
        assert!(mail.contains("To: ops@example.com"), "{mail}");
        assert!(mail.contains("Content-Type: text/plain"), "{mail}");
        assert!(mail.contains("Content-Type: text/html"), "{mail}");
        // In both parts: the last lines of the dead run.
        let (plain, html) = mail
            .split_once("Content-Type: text/html")
            .expect("an HTML part after the plain one");
        for part in [plain, html] {
            assert!(
                part.contains("panic: missing DATABASE_URL i15mail"),
                "{mail}"
            );
            assert!(part.contains("loading config"), "{mail}");
        }
        assert!(html.contains("<pre>loading config"), "{mail}");
    }
    ports.sort_unstable();
    let mut want = vec![smtp.starttls, smtp.tls];
    want.sort_unstable();
    assert_eq!(ports, want, "one mail over STARTTLS, one over TLS");
    assert!(
        !mails.iter().any(|m| m.contains(PASSWORD)),
        "the password is in a mail"
    );

    // Channel tests: the server's answer, or why not (a refused login), never the password.
    let test = |name: &str| {
        let api = b.api.clone();
        let name = name.to_owned();
        async move {
            let resp = api
                .http
                .post(format!("{}/v1/channels/{name}/test", api.base))
                .bearer_auth(&api.key)
                .send()
                .await
                .expect("test");
            assert_eq!(resp.status(), 200);
            resp.json::<Value>().await.expect("json")
        }
    };
    let ok = test("mail-tls").await;
    assert_eq!(
        (&ok["ok"], &ok["status"]),
        (&Value::Bool(true), &Value::from(250)),
        "{ok}"
    );
    let refused = test("mail-wrong").await;
    assert_eq!(refused["ok"], false, "{refused}");
    assert_eq!(refused["status"], 535, "{refused}");
    assert!(
        !refused.to_string().contains("not-the-password"),
        "{refused}"
    );
    let listed = b.api.json("/v1/channels").await;
    assert!(listed.to_string().contains("smtp://localhost:"), "{listed}");
    let tests = wait_for("the test mail", LIMIT, || async {
        let m = smtp.messages();
        (m.len() >= 3).then_some(m)
    })
    .await;
    assert!(
        tests[2].contains("TEST ALERT to channel mail-tls"),
        "{}",
        tests[2]
    );
}
