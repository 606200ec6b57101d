//! `fleetdeck-sim-serve`: the simulator as a process of its own, for the collector's soak
//! (`scripts/soak-collector.sh`): serves `--hosts` virtual agents (four apps each, a sample every
//! 10 s, as the poll benchmark) on a loopback address, prints `PORT=<port>` once listening, and
//! stops on SIGTERM or Ctrl-C.
//!
//! With `--poll-log FILE` (opt-in) it also writes one line per poll request it answers
//! (`GET /agents/{i}/v1/snapshot` and `.../v1/samples`):
//! `<host index> <snapshot|samples> <start, unix µs> <handling time, µs> <HTTP status>`,
//! which is what the soak's analysis measures poll gaps and latency from.
//!
//! Usage: `fleetdeck-sim-serve --hosts N --token-file FILE [--listen 127.0.0.1:0] [--poll-log FILE]`

use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::extract::Request;
use axum::middleware::{self, Next};
use axum::response::Response;
use fleetdeck_sim::{Sim, SimConfig};

const USAGE: &str = "usage: fleetdeck-sim-serve --hosts N --token-file FILE [--listen 127.0.0.1:0] [--poll-log FILE]";

struct Args {
    hosts: usize,
    token_file: PathBuf,
    listen: SocketAddr,
    poll_log: Option<PathBuf>,
}

fn parse_args() -> Result<Args, String> {
    let mut hosts = None;
    let mut token_file = None;
    let mut listen: SocketAddr = ([127, 0, 0, 1], 0).into();
    let mut poll_log = None;
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let mut value = || {
            args.next()
                .ok_or_else(|| format!("{flag} needs a value; {USAGE}"))
        };
        match flag.as_str() {
            "--hosts" => {
                let v = value()?;
                hosts = Some(
                    v.parse::<usize>()
                        .ok()
                        .filter(|n| (1..=100_000).contains(n))
                        .ok_or_else(|| {
                            format!(
                                "--hosts {v:?}: give a number of virtual agents from 1 to 100000"
                            )
                        })?,
                );
            }
            "--token-file" => token_file = Some(PathBuf::from(value()?)),
            "--listen" => {
                let v = value()?;
                listen = v.parse().map_err(|_| {
                    format!("--listen {v:?} is not an address: use e.g. 127.0.0.1:0")
                })?;
                if !listen.ip().is_loopback() {
                    return Err(format!(
                        "--listen {v}: the simulator only serves on loopback (127.0.0.1 or ::1)"
                    ));
                }
            }
            "--poll-log" => poll_log = Some(PathBuf::from(value()?)),
            "-h" | "--help" => return Err(USAGE.to_owned()),
            other => return Err(format!("unknown argument {other:?}; {USAGE}")),
        }
    }
    Ok(Args {
        hosts: hosts.ok_or_else(|| format!("--hosts is required; {USAGE}"))?,
        token_file: token_file.ok_or_else(|| format!("--token-file is required; {USAGE}"))?,
        listen,
        poll_log,
    })
}

/// The poll log: lines buffered in memory and flushed every second (and at exit).
type PollLog = Arc<Mutex<std::io::BufWriter<std::fs::File>>>;

/// Records each poll request (snapshot, samples) with its start and handling time.
async fn record(log: PollLog, request: Request, next: Next) -> Response {
    let kind_and_host = {
        let path = request.uri().path();
        path.strip_prefix("/agents/")
            .and_then(|p| p.split_once('/'))
            .and_then(|(index, rest)| {
                let kind = match rest {
                    "v1/snapshot" => "snapshot",
                    "v1/samples" => "samples",
                    _ => return None,
                };
                Some((index.parse::<usize>().ok()?, kind))
            })
    };
    let Some((host, kind)) = kind_and_host else {
        return next.run(request).await;
    };
    let start_us = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_micros());
    let started = Instant::now();
    let response = next.run(request).await;
    let took_us = started.elapsed().as_micros();
    let status = response.status().as_u16();
    let mut out = log.lock().unwrap_or_else(|e| e.into_inner());
    if let Err(e) = writeln!(out, "{host} {kind} {start_us} {took_us} {status}") {
        eprintln!("fleetdeck-sim-serve: cannot write the poll log: {e}");
    }
    response
}

fn flush(log: &PollLog) {
    if let Err(e) = log.lock().unwrap_or_else(|e| e.into_inner()).flush() {
        eprintln!("fleetdeck-sim-serve: cannot flush the poll log: {e}");
    }
}

async fn serve(args: Args) -> Result<(), String> {
    let token = std::fs::read_to_string(&args.token_file)
        .map_err(|e| {
            format!(
                "cannot read the token file {}: {e}",
                args.token_file.display()
            )
        })?
        .trim()
        .to_owned();
    let sim = Sim::new(SimConfig {
        hosts: args.hosts,
        apps_per_host: 4,
        sample_interval: Duration::from_secs(10),
        token,
        env_dir: None,
        chaos: false,
        seed: 7,
        host_prefix: "sim".into(),
        log_period: None,
    })
    .map_err(|e| format!("cannot build the simulated fleet: {e}"))?;
    let mut router = sim.router();
    let log = match &args.poll_log {
        Some(path) => {
            let file = std::fs::File::create(path)
                .map_err(|e| format!("cannot create the poll log {}: {e}", path.display()))?;
            let log: PollLog = Arc::new(Mutex::new(std::io::BufWriter::new(file)));
            let layer_log = log.clone();
            router = router.layer(middleware::from_fn(move |req: Request, next: Next| {
                record(layer_log.clone(), req, next)
            }));
            let flushed = log.clone();
            tokio::spawn(async move {
                let mut tick = tokio::time::interval(Duration::from_secs(1));
                loop {
                    tick.tick().await;
                    flush(&flushed);
                }
            });
            Some(log)
        }
        None => None,
    };
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .map_err(|e| format!("cannot listen on {}: {e}", args.listen))?;
    let port = listener
        .local_addr()
        .map_err(|e| format!("cannot read the bound address: {e}"))?
        .port();
    println!("PORT={port}");
    std::io::stdout()
        .flush()
        .map_err(|e| format!("cannot write to stdout: {e}"))?;
    let shutdown = async {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("a SIGTERM handler can be installed once at start");
        tokio::select! {
            _ = term.recv() => {}
            _ = tokio::signal::ctrl_c() => {}
        }
    };
    // Open SSE streams (the collector's event subscriptions) would hold a graceful shutdown
    // open, so the server stops as soon as the signal comes.
    tokio::select! {
        served = axum::serve(listener, router) => served.map_err(|e| format!("serve: {e}"))?,
        () = shutdown => {}
    }
    if let Some(log) = &log {
        flush(log);
    }
    Ok(())
}

fn main() -> std::process::ExitCode {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("fleetdeck-sim-serve: {e}");
            return std::process::ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("fleetdeck-sim-serve: cannot start the runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match runtime.block_on(serve(args)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("fleetdeck-sim-serve: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
