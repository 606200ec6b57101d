//! Chaos: one task for the whole fleet that crashes a random app every few seconds and recovers
//! it a little later (or, one time in four, the restart policy heals it at once: a blip with its
//! crash context), and keeps one app of the first host crash-looping forever with a `health` check
//! that fails while it is down, so a demo always shows some trouble.

use std::sync::Arc;
use std::time::Duration;

use fleetdeck_proto::{AppKind, AppState, CrashContext, Exit};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tokio::time::Instant;

use crate::host::{Host, Process};
use crate::Sim;

/// The app of host 0 that never gets well: the third app (a systemd unit), or the only one.
pub(crate) fn forever_app(host: &Host) -> usize {
    host.apps.len().saturating_sub(1).min(2)
}

/// The steps of the forever-crashing app: a state, and how long it stays in it (~15 s a cycle).
const CYCLE: [(AppState, Duration); 3] = [
    (AppState::Failed, Duration::from_secs(5)),
    (AppState::CrashLooping, Duration::from_secs(8)),
    (AppState::Running, Duration::from_secs(2)),
];

/// Runs until aborted.
pub(crate) async fn run(sim: Arc<Sim>) {
    let Some(first) = sim.hosts.first().cloned() else {
        return;
    };
    let forever = forever_app(&first);
    let mut rng = StdRng::seed_from_u64(sim.config.seed ^ 0xC4A0_5EED);
    let mut recoveries: Vec<(Instant, usize, usize)> = Vec::new();
    let mut step = 0;
    let mut next_step = Instant::now();
    let mut next_crash = Instant::now() + pause(&mut rng, 2_000..4_000);
    loop {
        let next = recoveries
            .iter()
            .map(|r| r.0)
            .chain([next_step, next_crash])
            .min()
            .unwrap_or(next_crash);
        tokio::time::sleep_until(next).await;
        let now = Instant::now();

        if now >= next_step {
            let (state, hold) = CYCLE[step % CYCLE.len()];
            let (exit, process) = match state {
                AppState::Failed => (Some(Exit::Code(1)), Process::Same),
                AppState::Running => (None, Process::New { counted: true }),
                _ => (None, Process::Same),
            };
            first.change(forever, state, exit, process);
            first.check_ran(
                forever,
                "health",
                state == AppState::Running,
                Some("connection refused (127.0.0.1:8080)"),
            );
            step += 1;
            next_step = now + hold;
        }

        recoveries.retain(|&(due, host, app)| {
            if due > now {
                return true;
            }
            if let Some(h) = sim.hosts.get(host) {
                // Recover only what is still down: an app stopped meanwhile stays stopped.
                if matches!(
                    h.state(app),
                    Some(AppState::Failed | AppState::CrashLooping)
                ) {
                    h.change(app, AppState::Running, None, Process::New { counted: true });
                }
            }
            false
        });

        if now >= next_crash {
            next_crash = now + pause(&mut rng, 2_000..4_000);
            let host = rng.random_range(0..sim.hosts.len());
            let h = &sim.hosts[host];
            let app = rng.random_range(0..h.apps.len());
            if (host, app) == (0, forever) || h.state(app) != Some(AppState::Running) {
                continue;
            }
            let exit = if rng.random_ratio(1, 4) {
                Exit::Signal(9)
            } else {
                Exit::Code(rng.random_range(1..=3))
            };
            let to = if h.apps[app].kind == AppKind::Systemd && rng.random_ratio(1, 3) {
                AppState::CrashLooping
            } else {
                AppState::Failed
            };
            let crash = CrashContext {
                exit: Some(exit),
                oom_killed: exit == Exit::Signal(9),
                memory_bytes: h.status(app).and_then(|s| s.memory_bytes),
                memory_limit_bytes: None,
                last_lines: vec![
                    "handling request".to_owned(),
                    if exit == Exit::Signal(9) {
                        "allocating 512 MiB for the report cache".to_owned()
                    } else {
                        "fatal: cannot connect to the database: connection refused".to_owned()
                    },
                ],
                lines_error: None,
            };
            if rng.random_ratio(1, 4) {
                tracing::debug!(host = %h.name, app = h.apps[app].name, "chaos: healed crash");
                let restart = Process::New { counted: true };
                h.change_with(
                    app,
                    AppState::Running,
                    Some(exit),
                    restart,
                    false,
                    Some(crash),
                );
                continue;
            }
            tracing::debug!(host = %h.name, app = h.apps[app].name, state = %to, "chaos: crash");
            h.change_with(app, to, Some(exit), Process::Same, false, Some(crash));
            recoveries.push((now + pause(&mut rng, 5_000..20_000), host, app));
        }
    }
}

fn pause(rng: &mut StdRng, ms: std::ops::Range<u64>) -> Duration {
    Duration::from_millis(rng.random_range(ms))
}
