//! Two collectors on one PostgreSQL database: one leads, the other stands by and takes over.
//!
//! 1. The leader is killed (SIGKILL) in the middle of a backfill (a simulated agent with a
//!    backlog of samples at one a millisecond): the standby takes over, and the database holds
//!    every seq of the agent once, with no gap across the takeover.
//! 2. The leader is killed in the middle of delivering an alert (the receiver holds the request
//!    unanswered): the new leader delivers it, once, and does not raise it again.
//!
//! Both run with `FLEETDECK_TEST_STORE=postgres` (the test bed's server); they are skipped on
//! SQLite, where a collector runs alone.

#[path = "common/cluster.rs"]
mod cluster;
mod common;

use std::os::unix::fs::PermissionsExt;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use cluster::*;
use common::*;
use fleetdeck_sim::{Sim, SimConfig};
use serde_json::Value;

/// A simulated agent with samples every millisecond, served on `addr`.
async fn sim(addr: &str) -> (String, reqwest::Client) {
    let sim = Sim::new(SimConfig {
        hosts: 1,
        apps_per_host: 2,
        sample_interval: Duration::from_millis(1),
        token: AGENT_TOKEN.to_owned(),
        host_prefix: "sim".to_owned(),
        ..SimConfig::default()
    })
    .expect("the simulator");
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .expect("bind the simulator");
    let base = format!(
        "http://{}/agents/0",
        listener.local_addr().expect("simulator address")
    );
    tokio::spawn(async move {
        let _ = sim.serve(listener, std::future::pending()).await;
    });
    (base, reqwest::Client::new())
}

fn cursor(work: &Workdir) -> i64 {
    db(work)
        .run(|c| {
            c.query_opt(
                "SELECT last_seq FROM hosts WHERE name = 'sim'",
                fleetdeck_collector::params![],
                |r| r.get::<i64>(0),
            )
        })
        .ok()
        .flatten()
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_standby_takes_over_from_a_leader_killed_mid_backfill_with_no_gap() {
    if skip() {
        return;
    }
    let (base, http) = sim("127.0.0.1:0").await;
    wait_for("the simulated agent's backlog", TAKEOVER, || async {
        agent_latest_seq(&http, &base)
            .await
            .filter(|l| *l >= 20_000)
    })
    .await;
    let work = Workdir::new();
    work.secret("sim.token", AGENT_TOKEN);
    let config = collector_config(
        &work,
        &format!(
            "[cluster]\nlease = \"2s\"\n[[agents]]\nname = \"sim\"\nurl = \"{base}\"\ntoken_file = \"sim.token\"\n"
        ),
    );
    let mut first = start_collector(&config);
    let key = create_key(&config, "root", "admin");
    let first_api = Api::new(&first, &key);
    let leading = wait_role(&first_api, "leader", "the first collector leading").await;
    let other = Workdir::new();
    let second_config = second_config(&work, &other, &["sim.token"]);
    let mut second = start_collector(&second_config);
    let second_api = Api::new(&second, &key);
    let standing = wait_role(&second_api, "standby", "the second collector standing by").await;
    assert_eq!(
        standing["leader"], leading["this"],
        "the standby names its leader: {standing}"
    );
    // A standby serves the API from the shared database.
    assert_eq!(second_api.get("/v1/fleet").await.status(), 200);

    // Killed while the backfill moves: a page of 1000 has just been written, the next is on
    // its way.
    let from = cursor(&work);
    wait_for("the leader's backfill moving", TAKEOVER, || async {
        (cursor(&work) > from + 2_000).then_some(())
    })
    .await;
    first.child.kill().expect("SIGKILL the leader");
    let _ = first.child.wait();
    let killed = Instant::now();
    let killed_at = cursor(&work);
    let took_over = wait_role(&second_api, "leader", "the standby taking over").await;
    let takeover = killed.elapsed();
    assert!(
        took_over["epoch"].as_i64() > leading["epoch"].as_i64(),
        "a new epoch: {leading} then {took_over}"
    );
    let latest = agent_latest_seq(&http, &base)
        .await
        .expect("the agent's latest");
    wait_for(
        "the new leader catching up",
        Duration::from_secs(120),
        || async { (cursor(&work) >= latest).then_some(()) },
    )
    .await;
    let seqs = stored_seqs(&work, "sim");
    assert_eq!(seqs.len(), 1, "one agent instance: {:?}", seqs.len());
    assert_eq!(seqs[0].1.first(), Some(&1), "from the first seq");
    assert_contiguous(&seqs[0].1, "across the takeover");
    second.stop();
    let logs = second.logs().join("\n");
    assert!(
        !logs.contains("ERROR"),
        "the new leader logged an error:\n{logs}"
    );
    eprintln!(
        "leader killed at cursor {killed_at}; the standby led {takeover:?} later and stored \
         seqs 1..={} with no gap",
        seqs[0].1.last().unwrap_or(&0)
    );
}

/// A webhook receiver that holds its first request unanswered (the leader is then in the
/// middle of delivering) and answers the others, keeping their bodies.
struct StallingReceiver {
    seen: Arc<AtomicUsize>,
    answered: Arc<Mutex<Vec<Value>>>,
    url: String,
}

impl StallingReceiver {
    async fn start() -> Self {
        let seen = Arc::new(AtomicUsize::new(0));
        let answered: Arc<Mutex<Vec<Value>>> = Arc::default();
        let app = {
            let seen = Arc::clone(&seen);
            let answered = Arc::clone(&answered);
            axum::Router::new().route(
                "/hook",
                axum::routing::post(move |body: axum::body::Bytes| {
                    let seen = Arc::clone(&seen);
                    let answered = Arc::clone(&answered);
                    async move {
                        if seen.fetch_add(1, Ordering::SeqCst) == 0 {
                            std::future::pending::<()>().await;
                        }
                        let value = serde_json::from_slice(&body).unwrap_or(Value::Null);
                        answered.lock().expect("receiver").push(value);
                        axum::http::StatusCode::OK
                    }
                }),
            )
        };
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the receiver");
        let url = format!("http://{}/hook", listener.local_addr().expect("address"));
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Self {
            seen,
            answered,
            url,
        }
    }

    fn problems(&self, host: &str) -> usize {
        self.answered
            .lock()
            .expect("receiver")
            .iter()
            .filter(|b| b["kind"] == "problem" && b["host"] == host)
            .count()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_alert_the_leader_died_delivering_is_delivered_once_by_the_new_leader() {
    if skip() {
        return;
    }
    let hook = StallingReceiver::start().await;
    // An agent nobody answers for: down after two missed polls, alerted at once.
    let gone = std::net::TcpListener::bind("127.0.0.1:0").expect("a free port");
    let gone_addr = gone.local_addr().expect("address");
    drop(gone);
    let work = Workdir::new();
    work.secret("gone.token", AGENT_TOKEN);
    let config = collector_config(
        &work,
        &format!(
            "down_after = 2\n[cluster]\nlease = \"2s\"\n[alerts]\ngrace = \"0s\"\nretry_attempts = 3\n\
             [[channels]]\nname = \"hook\"\nurl = \"{}\"\n{}",
            hook.url,
            agent_entry("gone", gone_addr)
        ),
    );
    let mut first = start_collector(&config);
    let key = create_key(&config, "root", "admin");
    let first_api = Api::new(&first, &key);
    wait_role(&first_api, "leader", "the first collector leading").await;
    let other = Workdir::new();
    let second_config = second_config(&work, &other, &["gone.token"]);
    let mut second = start_collector(&second_config);
    let second_api = Api::new(&second, &key);
    wait_role(&second_api, "standby", "the second collector standing by").await;

    wait_for("the leader delivering the alert", TAKEOVER, || async {
        (hook.seen.load(Ordering::SeqCst) >= 1).then_some(())
    })
    .await;
    first.child.kill().expect("SIGKILL the leader");
    let _ = first.child.wait();
    wait_role(&second_api, "leader", "the standby taking over").await;

    // Delivered by the new leader, and recorded as delivered.
    let delivered = wait_for("the alert delivered and recorded", TAKEOVER, || async {
        let rows = db(&work)
            .run(|c| {
                c.query_map(
                    "SELECT a.id, count(d.alert_id) FROM alerts a
                     LEFT JOIN alert_deliveries d ON d.alert_id = a.id
                     WHERE a.host = 'gone' AND a.kind = 'problem' GROUP BY a.id",
                    fleetdeck_collector::params![],
                    |r| Ok((r.get::<i64>(0)?, r.get::<i64>(1)?)),
                )
            })
            .ok()?;
        rows.iter()
            .all(|(_, d)| *d >= 1)
            .then_some(rows)
            .filter(|r| !r.is_empty())
    })
    .await;
    assert_eq!(
        delivered.len(),
        1,
        "the problem is alerted once, not again by the new leader: {delivered:?}"
    );
    assert_eq!(delivered[0].1, 1, "one delivery recorded: {delivered:?}");
    assert_eq!(hook.problems("gone"), 1, "the receiver got the alert once");
    second.stop();
}

/// Forwards connections from `listen` to PostgreSQL at `to`: how the leader in the test bed's
/// namespace host (tb-agent) reaches the server, which listens on loopback only.
async fn relay(listen: &str, to: String) -> std::net::SocketAddr {
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .expect("bind the relay");
    let addr = listener.local_addr().expect("relay address");
    tokio::spawn(async move {
        while let Ok((mut inbound, _)) = listener.accept().await {
            let to = to.clone();
            tokio::spawn(async move {
                if let Ok(mut outbound) = tokio::net::TcpStream::connect(&to).await {
                    let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                }
            });
        }
    });
    addr
}

/// The test bed server's `host:port` and the test role's password (from `PGPASSFILE`).
fn pg_server() -> (String, String) {
    let url = std::env::var("FLEETDECK_TEST_PG_URL").expect("the test bed's PostgreSQL");
    let rest = url.split("://").nth(1).expect("a URL");
    let server = rest
        .split('@')
        .nth(1)
        .and_then(|s| s.split('/').next())
        .expect("host:port")
        .to_owned();
    let passfile = std::env::var("PGPASSFILE").expect("PGPASSFILE");
    let line = std::fs::read_to_string(passfile).expect("the passfile");
    let password = line
        .lines()
        .next()
        .and_then(|l| l.splitn(5, ':').nth(4))
        .expect("a passfile line")
        .to_owned();
    (server, password)
}

/// The leader runs on a second host (the test bed's namespace tb-agent, reaching the database
/// through a relay on the host); its packets are then dropped silently, as when a VM loses its
/// network. It stops leading, PostgreSQL frees the lock once its session has been silent a
/// whole lease, and the standby takes over and backfills; when the network heals, the old
/// leader finds the lock taken and stands by. The samples have no gap, and the epoch moved on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leader_cut_off_from_the_database_gives_way_to_the_standby() {
    if skip() {
        return;
    }
    testbed_net("up");
    let _heal = HealOnDrop;
    let (server, password) = pg_server();
    let relay = relay("10.99.0.1:0", server).await;
    let (base, http) = sim("10.99.0.1:0").await;
    wait_for("the simulated agent's backlog", TAKEOVER, || async {
        agent_latest_seq(&http, &base).await.filter(|l| *l >= 5_000)
    })
    .await;

    // The standby's config, on this host.
    let work = Workdir::new();
    work.secret("sim.token", AGENT_TOKEN);
    let standby_config = collector_config(
        &work,
        &format!(
            "[cluster]\nlease = \"2s\"\n[[agents]]\nname = \"sim\"\nurl = \"{base}\"\ntoken_file = \"sim.token\"\n"
        ),
    );
    let text = std::fs::read_to_string(&standby_config).expect("config");
    let database = text
        .lines()
        .find_map(|l| l.strip_prefix("database = \""))
        .and_then(|l| l.split('?').next())
        .expect("the database line")
        .trim_end_matches('"')
        .to_owned();
    let name = database
        .rsplit('/')
        .next()
        .expect("database name")
        .to_owned();

    // The leader's, on the namespace host: the same database through the relay.
    let remote = Workdir::new();
    remote.secret("sim.token", AGENT_TOKEN);
    remote.secret("pg.password", &password);
    let leader_config = remote.write(
        "collector.toml",
        &format!(
            "listen = [\"10.99.0.2:0\"]\npoll_interval = \"1s\"\npoll_timeout = \"700ms\"\n\
             database = \"postgres://fleetdeck@{relay}/{name}\"\ndatabase_password_file = \"pg.password\"\n\
             [cluster]\nlease = \"2s\"\n[[agents]]\nname = \"sim\"\nurl = \"{base}\"\ntoken_file = \"sim.token\"\n"
        ),
    );
    std::fs::set_permissions(&leader_config, std::fs::Permissions::from_mode(0o600))
        .expect("chmod");
    let mut leader = fleetdeck_testkit::Daemon::spawn(
        std::process::Command::new("nsenter")
            .arg("--net=/run/netns/tb-agent")
            .arg(collector_bin())
            .arg("--config")
            .arg(&leader_config)
            .arg("--allow-public-bind"),
        "fleetdeck-collector in netns tb-agent",
        RUST_LOG,
    );
    let key = create_key(&standby_config, "root", "admin");
    let leader_api = Api::new(&leader, &key);
    let leading = wait_role(
        &leader_api,
        "leader",
        "the namespace host's collector leading",
    )
    .await;
    let mut standby = start_collector(&standby_config);
    let standby_api = Api::new(&standby, &key);
    wait_role(&standby_api, "standby", "this host's collector standing by").await;
    let from = cursor(&work);
    wait_for("the leader storing samples", TAKEOVER, || async {
        (cursor(&work) > from + 1_000).then_some(())
    })
    .await;

    testbed_net("drop");
    let cut = Instant::now();
    let took_over = wait_role(&standby_api, "leader", "the standby taking over").await;
    let takeover = cut.elapsed();
    assert!(
        took_over["epoch"].as_i64() > leading["epoch"].as_i64(),
        "a new epoch: {leading} then {took_over}"
    );
    let latest = agent_latest_seq(&http, &base)
        .await
        .expect("the agent's latest");
    wait_for(
        "the new leader catching up",
        Duration::from_secs(120),
        || async { (cursor(&work) >= latest).then_some(()) },
    )
    .await;

    testbed_net("heal");
    // Standing by, and naming the new leader: right after the heal its lock session may not
    // have reconnected yet (a standby that knows no leader).
    let stood_down = wait_for(
        "the old leader standing by after the heal, naming the new one",
        TAKEOVER,
        || async {
            role(&leader_api)
                .await
                .filter(|r| r["role"] == "standby" && r["leader"] == took_over["this"])
        },
    )
    .await;
    assert_eq!(stood_down["epoch"], took_over["epoch"], "{stood_down}");
    let leader_logs = leader.logs().join("\n");
    assert!(
        leader_logs.contains("no longer leading") || leader_logs.contains("no longer the leader"),
        "the cut-off leader said it stopped leading:\n{leader_logs}"
    );
    let seqs = stored_seqs(&work, "sim");
    assert_eq!(seqs.len(), 1, "one agent instance");
    assert_eq!(seqs[0].1.first(), Some(&1), "from the first seq");
    assert_contiguous(&seqs[0].1, "across the partition and the takeover");
    leader.stop();
    standby.stop();
    eprintln!(
        "partitioned leader replaced {takeover:?} after the cut; seqs 1..={} with no gap",
        seqs[0].1.last().unwrap_or(&0)
    );
}
