//! One virtual host: its fixed traits (drawn from the seed), the apps' current states, the buffer
//! of transition events, and host figures and samples computed on demand for any instant.
//!
//! Nothing here runs in the background: a sample with seq `n` is the host as it was at
//! `started_ms + n * interval`, computed from a hash when asked for.

use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::{Mutex, MutexGuard};
use std::time::{SystemTime, UNIX_EPOCH};

use fleetdeck_proto::{
    AgentEvent, AppEvent, AppKind, AppSample, AppState, AppStatus, CheckResult, Cpu, CrashContext,
    DockerDetail, EventSource, Exit, Expect, Filesystem, FsSample, HostMetrics, Info, Load, Memory,
    NetInterface, NetSample, Sample, SamplesPage, Snapshot, SourceHealth, Sources, Swap,
    SystemdDetail, WIRE_VERSION,
};
use tokio::sync::{watch, Notify};

mod figures;

use crate::logs::LogSource;
use crate::noise::{hash, hash3, hex, smooth, unit, uuid};

/// Events each host keeps for clients that resume with `Last-Event-ID`.
pub(crate) const EVENT_BUFFER: usize = 1_024;
/// How far back samples reach: a day, like the agent's default retention.
pub(crate) const SAMPLE_RETENTION_MS: u64 = 24 * 3_600 * 1_000;
/// Samples in a `/v1/samples` page unless `limit` says otherwise.
pub(crate) const SAMPLES_DEFAULT_LIMIT: usize = 500;
/// At most this many samples in one page.
pub(crate) const SAMPLES_MAX_LIMIT: usize = 1_000;
/// State changes remembered per app, so log lines of the recent past match the state then.
const STATE_HISTORY: usize = 32;
/// Logs reach this far back before the host's start, so a new demo has some to page through.
const LOG_BACKLOG_MS: u64 = 6 * 3_600 * 1_000;

const MIB: u64 = 1 << 20;
const GIB: u64 = 1 << 30;

/// The apps a host may run; each host runs a rotation of this list, so the fleet looks varied.
const APP_NAMES: [&str; 12] = [
    "web",
    "api",
    "worker",
    "postgres",
    "redis",
    "nginx",
    "scheduler",
    "mailer",
    "billing",
    "search",
    "metrics",
    "auth",
];

/// Milliseconds since the Unix epoch, now.
pub(crate) fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// What never changes about an app: its name, kind and the seeds of its figures and logs.
#[derive(Debug, Clone, Copy)]
pub(crate) struct AppSpec {
    pub(crate) name: &'static str,
    pub(crate) kind: AppKind,
    seed: u64,
    /// Mean resident memory while running.
    mem_base: u64,
    /// Mean CPU use while running, percent of one core.
    cpu_base: f64,
    /// Time between two log lines.
    log_period_ms: u64,
    /// Docker only: whether the container has a health check.
    has_health: bool,
    /// Docker only: the container's memory limit.
    mem_limit: Option<u64>,
}

impl AppSpec {
    fn new(name: &'static str, kind: AppKind, seed: u64) -> Self {
        Self {
            name,
            kind,
            seed,
            mem_base: 40 * MIB + hash(seed, 1) % (700 * MIB),
            cpu_base: 0.3 + unit(hash(seed, 2)) * 12.0,
            log_period_ms: 800 + hash(seed, 3) % 1_400,
            has_health: hash(seed, 4) & 1 == 0,
            mem_limit: (hash(seed, 5) & 1 == 0).then_some(GIB),
        }
    }

    /// The systemd unit or container name.
    pub(crate) fn target(&self) -> String {
        match self.kind {
            AppKind::Systemd => format!("{}.service", self.name),
            AppKind::Docker => self.name.to_owned(),
        }
    }

    fn image(&self) -> String {
        match self.name {
            "nginx" => "nginx:1.27-alpine".to_owned(),
            "redis" => "redis:7.2-alpine".to_owned(),
            "postgres" => "postgres:16".to_owned(),
            name => format!(
                "ghcr.io/acme/{name}:1.{}.{}",
                hash(self.seed, 6) % 20,
                hash(self.seed, 7) % 10
            ),
        }
    }

    fn memory_at(&self, t: u64) -> u64 {
        (self.mem_base as f64 * (0.85 + 0.3 * smooth(self.seed ^ 0x11, t, 300_000))) as u64
    }

    fn cpu_at(&self, t: u64) -> f64 {
        round1(self.cpu_base * (0.4 + 1.2 * smooth(self.seed ^ 0x12, t, 30_000)))
    }
}

/// What changes about an app: its state and the process it runs.
#[derive(Debug, Clone)]
pub(crate) struct AppLive {
    state: AppState,
    since_ms: u64,
    last_exit: Option<Exit>,
    restarts: u64,
    /// Counts processes: a new one gets a new invocation id, PID and start time.
    invocation: u64,
    run_started_ms: u64,
    /// `(since_ms, state)` of the last few states, oldest first.
    history: VecDeque<(u64, AppState)>,
    /// The endpoint checks' last results (see `problems.rs`).
    pub(crate) checks: Vec<CheckResult>,
    pub(crate) stopped_by_request: bool,
}

#[derive(Debug)]
pub(crate) struct Live {
    pub(crate) apps: Vec<AppLive>,
    /// Every kind of `/v1/events` event, in one id sequence.
    pub(crate) events: VecDeque<AgentEvent>,
    pub(crate) next_event_id: u64,
    /// Sources reported down (`systemd`, `docker`), with their error.
    pub(crate) sources_down: Vec<(String, String)>,
    /// How far this agent's clock is off (positive: ahead).
    pub(crate) clock_offset_ms: i64,
}

/// Whether a transition starts a new process of the app.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Process {
    /// The same process (or none): a crash, a stop.
    Same,
    /// A new process; `counted` when the source counts it as a restart (after a failure).
    New { counted: bool },
}

/// The figures of a host's hardware, drawn once from the seed.
#[derive(Debug, Clone, Copy)]
struct Hardware {
    seed: u64,
    cores: u32,
    mem_total: u64,
    swap_total: u64,
    disk_total: u64,
    cpu_base: f64,
    mem_base: f64,
    disk_base: f64,
    net_base: f64,
}

impl Hardware {
    fn new(seed: u64) -> Self {
        Self {
            seed,
            cores: [2, 2, 4, 4, 8][(hash(seed, 1) % 5) as usize],
            mem_total: (4 + hash(seed, 2) % 13) * GIB,
            swap_total: if hash(seed, 3) < u64::MAX / 3 {
                0
            } else {
                2 * GIB
            },
            disk_total: (40 + hash(seed, 4) % 210) * GIB,
            cpu_base: 4.0 + unit(hash(seed, 5)) * 30.0,
            mem_base: 0.25 + unit(hash(seed, 6)) * 0.35,
            disk_base: 0.2 + unit(hash(seed, 7)) * 0.5,
            net_base: 20_000.0 + unit(hash(seed, 8)) * 500_000.0,
        }
    }
}

/// The host's figures at one instant.
#[derive(Debug, Clone, Copy)]
struct Figures {
    cpu: f64,
    mem_used: u64,
    swap_used: u64,
    load: (f64, f64, f64),
    disk_used: u64,
    rx_rate: f64,
    tx_rate: f64,
    rx_total: u64,
    tx_total: u64,
}

/// One virtual agent.
#[derive(Debug)]
pub(crate) struct Host {
    pub(crate) name: String,
    pub(crate) instance_id: String,
    boot_id: String,
    pub(crate) started_ms: u64,
    boot_ms: u64,
    pub(crate) interval_ms: u64,
    capacity: u64,
    hw: Hardware,
    pub(crate) apps: Vec<AppSpec>,
    live: Mutex<Live>,
    /// Woken at each new event, for the `/v1/events` streams.
    pub(crate) events_changed: Notify,
    reachable: watch::Sender<bool>,
    /// `env_dir/<host>`, where the apps' `.env` files live.
    pub(crate) env_dir: Option<PathBuf>,
    /// Serializes `.env` writes, so the etag check and the rename happen as one.
    pub(crate) env_lock: Mutex<()>,
}

/// Everything [`Host::new`] needs.
#[derive(Debug, Clone)]
pub(crate) struct HostParams {
    pub(crate) name: String,
    pub(crate) seed: u64,
    pub(crate) instance_id: String,
    pub(crate) now_ms: u64,
    pub(crate) interval_ms: u64,
    pub(crate) apps: usize,
    pub(crate) env_dir: Option<PathBuf>,
    /// Every app's time between log lines, instead of its own.
    pub(crate) log_period_ms: Option<u64>,
}

impl Host {
    pub(crate) fn new(p: HostParams) -> Self {
        let seed = p.seed;
        let interval_ms = p.interval_ms.max(1);
        // Hosts start a little apart, so their samples do not all fall on the same instant.
        let started_ms = p.now_ms.saturating_sub(hash(seed, 20) % interval_ms);
        let boot_ms = started_ms.saturating_sub(3_600_000 + hash(seed, 21) % (60 * 86_400_000));
        let rotation = (hash(seed, 22) % APP_NAMES.len() as u64) as usize;
        let apps: Vec<AppSpec> = (0..p.apps.clamp(1, APP_NAMES.len()))
            .map(|i| {
                let kind = if i % 2 == 0 {
                    AppKind::Systemd
                } else {
                    AppKind::Docker
                };
                let name = APP_NAMES[(rotation + i) % APP_NAMES.len()];
                let mut spec = AppSpec::new(name, kind, hash3(seed, 30, i as u64));
                if let Some(period) = p.log_period_ms {
                    spec.log_period_ms = period.max(1);
                }
                spec
            })
            .collect();
        let live = apps
            .iter()
            .map(|a| {
                let since = started_ms.saturating_sub(hash(a.seed, 40) % (3 * 86_400_000));
                let since = since.max(boot_ms);
                AppLive {
                    state: AppState::Running,
                    since_ms: since,
                    last_exit: None,
                    restarts: hash(a.seed, 41) % 3,
                    invocation: 0,
                    run_started_ms: since,
                    history: VecDeque::from([(0, AppState::Running)]),
                    checks: Vec::new(),
                    stopped_by_request: false,
                }
            })
            .collect();
        let (reachable, _) = watch::channel(true);
        Self {
            name: p.name,
            instance_id: p.instance_id,
            boot_id: uuid(hash(seed, 23)),
            started_ms,
            boot_ms,
            interval_ms,
            capacity: (SAMPLE_RETENTION_MS / interval_ms).max(1),
            hw: Hardware::new(hash(seed, 24)),
            apps,
            live: Mutex::new(Live {
                apps: live,
                events: VecDeque::new(),
                next_event_id: 1,
                sources_down: Vec::new(),
                clock_offset_ms: 0,
            }),
            events_changed: Notify::new(),
            reachable,
            env_dir: p.env_dir,
            env_lock: Mutex::new(()),
        }
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, Live> {
        // Every update under the lock is a few plain assignments: the data stays consistent even
        // if a holder panicked.
        self.live.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(crate) fn app_index(&self, name: &str) -> Option<usize> {
        self.apps.iter().position(|a| a.name == name)
    }

    pub(crate) fn is_reachable(&self) -> bool {
        *self.reachable.borrow()
    }

    pub(crate) fn set_reachable(&self, reachable: bool) {
        self.reachable.send_replace(reachable);
    }

    /// Follows reachability, so a stream can end when the host becomes unreachable.
    pub(crate) fn watch_reachable(&self) -> watch::Receiver<bool> {
        self.reachable.subscribe()
    }

    pub(crate) fn info(&self) -> Info {
        Info {
            agent_version: "sim".to_owned(),
            wire_version: WIRE_VERSION,
            hostname: self.name.clone(),
            instance_id: self.instance_id.clone(),
            boot_id: self.boot_id.clone(),
            started_unix_ms: self.started_ms,
            capabilities: vec!["sim".to_owned()],
            sample_interval_ms: self.interval_ms,
            samples_capacity: self.capacity,
            samples_memory_bytes: 0,
        }
    }

    // --- states and events ---

    pub(crate) fn state(&self, app: usize) -> Option<AppState> {
        self.lock().apps.get(app).map(|a| a.state)
    }

    /// The app's state at `t_ms`, as far as the remembered history tells (running before it).
    pub(crate) fn state_at(&self, app: usize, t_ms: u64) -> AppState {
        self.lock()
            .apps
            .get(app)
            .map_or(AppState::Running, |a| state_in(&a.history, t_ms))
    }

    /// The app's recent states, `(since_ms, state)` oldest first.
    pub(crate) fn history(&self, app: usize) -> Vec<(u64, AppState)> {
        self.lock()
            .apps
            .get(app)
            .map(|a| a.history.iter().copied().collect())
            .unwrap_or_default()
    }

    /// Moves the app to `to`, recording how its process ended (`exit`) and whether a new one
    /// starts. Returns the event, or `None` when nothing changed (same state, same process).
    pub(crate) fn change(
        &self,
        app: usize,
        to: AppState,
        exit: Option<Exit>,
        process: Process,
    ) -> Option<AppEvent> {
        self.change_with(app, to, exit, process, false, None)
    }

    /// [`Host::change`], saying whether it was asked for through Fleetdeck and what the agent
    /// captured of a crash that ended the previous process.
    pub(crate) fn change_with(
        &self,
        app: usize,
        to: AppState,
        exit: Option<Exit>,
        process: Process,
        requested: bool,
        crash: Option<CrashContext>,
    ) -> Option<AppEvent> {
        let now = self.agent_now();
        let spec = self.apps.get(app)?;
        let mut live = self.lock();
        let next_id = live.next_event_id;
        let a = live.apps.get_mut(app)?;
        let from = a.state;
        let new_process = matches!(process, Process::New { .. });
        if from == to && !new_process {
            return None;
        }
        if let Process::New { counted } = process {
            a.invocation += 1;
            a.run_started_ms = now;
            if counted {
                a.restarts += 1;
            }
        }
        if exit.is_some() {
            a.last_exit = exit;
        }
        if to == AppState::Stopped {
            a.stopped_by_request = requested;
        } else if from != to {
            a.stopped_by_request = false;
        }
        if from != to {
            a.state = to;
            a.since_ms = now;
            if a.history.len() == STATE_HISTORY {
                a.history.pop_front();
            }
            a.history.push_back((now, to));
        }
        let event = AppEvent {
            id: next_id,
            instance_id: self.instance_id.clone(),
            app: spec.name.to_owned(),
            kind: spec.kind,
            from,
            to,
            restarted: from == to,
            at_unix_ms: now,
            exit,
            restarts: Some(a.restarts),
            source: match spec.kind {
                AppKind::Systemd => EventSource::Systemd,
                AppKind::Docker => EventSource::Docker,
            },
            requested,
            crash,
        };
        drop(live);
        self.push_event(|_| AgentEvent::Transition(event.clone()));
        Some(event)
    }

    /// The agent's clock: the wall clock shifted by the simulated offset.
    pub(crate) fn agent_now(&self) -> u64 {
        let offset = self.lock().clock_offset_ms;
        now_ms().saturating_add_signed(offset)
    }

    /// Appends an event made with the next id and wakes the streams.
    pub(crate) fn push_event(&self, make: impl FnOnce(u64) -> AgentEvent) {
        let mut live = self.lock();
        let event = make(live.next_event_id);
        live.next_event_id += 1;
        if live.events.len() == EVENT_BUFFER {
            live.events.pop_front();
        }
        live.events.push_back(event);
        drop(live);
        self.events_changed.notify_waiters();
    }

    /// Where a new `/v1/events` stream stands: no `Last-Event-ID` starts live, after the newest
    /// event; an id of this instance (`INSTANCE:ID`) replays the events after it; an id of another
    /// instance, or one that does not parse, replays the whole buffer.
    pub(crate) fn events_start(&self, last_event_id: Option<&str>) -> u64 {
        match last_event_id {
            None => self.lock().next_event_id - 1,
            Some(id) => id
                .rsplit_once(':')
                .filter(|(instance, _)| *instance == self.instance_id)
                .and_then(|(_, n)| n.parse::<u64>().ok())
                .unwrap_or(0),
        }
    }

    /// The buffered events with an id greater than `after`, oldest first.
    pub(crate) fn events_after(&self, after: u64) -> Vec<AgentEvent> {
        self.lock()
            .events
            .iter()
            .filter(|e| e.id() > after)
            .cloned()
            .collect()
    }

    // --- statuses ---

    pub(crate) fn statuses(&self) -> Vec<AppStatus> {
        let now = now_ms();
        let live = self.lock();
        self.apps
            .iter()
            .zip(&live.apps)
            .map(|(spec, a)| self.status_of(spec, a, now))
            .collect()
    }

    pub(crate) fn status(&self, app: usize) -> Option<AppStatus> {
        let now = now_ms();
        let spec = self.apps.get(app)?;
        let live = self.lock();
        live.apps.get(app).map(|a| self.status_of(spec, a, now))
    }

    fn status_of(&self, spec: &AppSpec, a: &AppLive, now: u64) -> AppStatus {
        let running = matches!(
            a.state,
            AppState::Running | AppState::Starting | AppState::Stopping
        );
        let memory = running.then(|| spec.memory_at(now));
        let run_seed = hash(spec.seed, a.invocation);
        let systemd = (spec.kind == AppKind::Systemd).then(|| {
            let (active, sub) = match a.state {
                AppState::Running => ("active", "running"),
                AppState::Starting => ("activating", "start"),
                AppState::Stopping => ("deactivating", "stop-sigterm"),
                AppState::Stopped | AppState::NotFound => ("inactive", "dead"),
                AppState::Failed => ("failed", "failed"),
                AppState::CrashLooping => ("activating", "auto-restart"),
                AppState::Unknown => ("unknown", "unknown"),
            };
            SystemdDetail {
                load_state: if a.state == AppState::NotFound {
                    "not-found"
                } else {
                    "loaded"
                }
                .to_owned(),
                active_state: active.to_owned(),
                sub_state: sub.to_owned(),
                result: Some(
                    match a.last_exit {
                        None | Some(Exit::Code(0)) => "success",
                        Some(Exit::Code(_)) => "exit-code",
                        Some(Exit::Signal(_)) => "signal",
                    }
                    .to_owned(),
                ),
                n_restarts: Some(u32::try_from(a.restarts).unwrap_or(u32::MAX)),
                exec_main_code: a.last_exit.map(|e| match e {
                    Exit::Code(_) => 1,
                    Exit::Signal(_) => 2,
                }),
                exec_main_status: a.last_exit.map(|e| match e {
                    Exit::Code(c) | Exit::Signal(c) => c,
                }),
                main_pid: running.then(|| 1_000 + (run_seed % 60_000) as u32),
                memory_current_bytes: memory,
                memory_limit_bytes: None,
                cpu_percent: None,
                state_change_unix_ms: Some(a.since_ms),
                invocation_id: Some(hex(run_seed, 32)),
            }
        });
        let docker = (spec.kind == AppKind::Docker).then(|| DockerDetail {
            id: Some(hex(spec.seed, 64)),
            image: Some(spec.image()),
            state: match a.state {
                AppState::Running | AppState::Stopping => "running",
                AppState::Starting => "created",
                AppState::Stopped | AppState::Failed => "exited",
                AppState::CrashLooping => "restarting",
                AppState::Unknown | AppState::NotFound => "dead",
            }
            .to_owned(),
            health: if spec.has_health {
                match a.state {
                    AppState::Running => Some("healthy".to_owned()),
                    AppState::CrashLooping => Some("unhealthy".to_owned()),
                    AppState::Starting => Some("starting".to_owned()),
                    _ => None,
                }
            } else {
                None
            },
            restart_count: Some(a.restarts),
            exit_code: a.last_exit.map(|e| match e {
                Exit::Code(c) => i64::from(c),
                Exit::Signal(s) => 128 + i64::from(s),
            }),
            oom_killed: false,
            started_unix_ms: Some(a.run_started_ms),
            finished_unix_ms: (!running).then_some(a.since_ms),
            cpu_percent: running.then(|| spec.cpu_at(now)),
            memory_bytes: memory,
            memory_limit_bytes: spec.mem_limit,
            net_rx_bytes_per_sec: None,
            net_tx_bytes_per_sec: None,
        });
        AppStatus {
            name: spec.name.to_owned(),
            kind: spec.kind,
            target: spec.target(),
            state: a.state,
            since_unix_ms: Some(a.since_ms),
            last_exit: a.last_exit,
            restarts: Some(a.restarts),
            memory_bytes: memory,
            error: None,
            systemd,
            docker,
            expect: Expect::Running,
            stopped_by_request: a.stopped_by_request,
            checks: a.checks.clone(),
            degraded: a.checks.iter().any(|c| c.consecutive_failures >= 2),
        }
    }

    fn sources(&self) -> Sources {
        let down = self.lock().sources_down.clone();
        let health = |kind| {
            let name = match kind {
                AppKind::Systemd => "systemd",
                AppKind::Docker => "docker",
            };
            if let Some((_, error)) = down.iter().find(|(n, _)| n == name) {
                SourceHealth::Down {
                    error: error.clone(),
                }
            } else if self.apps.iter().any(|a| a.kind == kind) {
                SourceHealth::Up
            } else {
                SourceHealth::Unused
            }
        };
        Sources {
            systemd: health(AppKind::Systemd),
            docker: health(AppKind::Docker),
        }
    }

    /// Where the app's log lines come from.
    pub(crate) fn log_source(&self, app: usize) -> Option<LogSource> {
        let spec = self.apps.get(app)?;
        Some(LogSource {
            name: spec.name,
            kind: spec.kind,
            seed: spec.seed,
            origin_ms: self.started_ms.saturating_sub(LOG_BACKLOG_MS),
            period_ms: spec.log_period_ms,
        })
    }
}

/// The state at `t_ms` in a history of `(since_ms, state)`, oldest first.
pub(crate) fn state_in<'a>(
    history: impl IntoIterator<Item = &'a (u64, AppState)>,
    t_ms: u64,
) -> AppState {
    history
        .into_iter()
        .take_while(|(since, _)| *since <= t_ms)
        .last()
        .map_or(AppState::Running, |(_, s)| *s)
}

/// Which samples a page holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct PagePlan {
    pub(crate) oldest: Option<u64>,
    pub(crate) latest: Option<u64>,
    /// The first and last seq of the page, if it holds any.
    pub(crate) range: Option<(u64, u64)>,
    pub(crate) more: bool,
}

/// The page of seqs after `after` when the newest sample is `latest` (0: none yet) and at most
/// `capacity` are kept: oldest first, at most `limit` (clamped to 1..=1000).
pub(crate) fn plan_page(latest: u64, capacity: u64, after: u64, limit: usize) -> PagePlan {
    if latest == 0 {
        return PagePlan {
            oldest: None,
            latest: None,
            range: None,
            more: false,
        };
    }
    let oldest = latest.saturating_sub(capacity.max(1)) + 1;
    let limit = limit.clamp(1, SAMPLES_MAX_LIMIT) as u64;
    let first = after.saturating_add(1).max(oldest);
    let range = (first <= latest).then(|| (first, latest.min(first + limit - 1)));
    PagePlan {
        oldest: Some(oldest),
        latest: Some(latest),
        range,
        more: range.is_some_and(|(_, last)| last < latest),
    }
}

fn round1(v: f64) -> f64 {
    (v * 10.0).round() / 10.0
}

fn round2(v: f64) -> f64 {
    (v * 100.0).round() / 100.0
}

#[cfg(test)]
mod tests;
