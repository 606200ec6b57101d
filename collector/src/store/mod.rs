//! The collector's SQLite store (WAL). [`migrate`] applies the schema of `migrations/`; [`ingest`]
//! turns polls and agent events into rows on one batching writer thread (old status read before
//! the new one is written, so each transition is recorded once); [`rollup`] keeps the rollups and
//! retention; [`query`] answers the API; [`keys`] and [`audit`] hold API keys and the audit log.

pub mod alerts;
pub mod app_metrics;
pub mod audit;
pub mod copy;
pub mod db;
pub mod ingest;
pub mod keys;
pub mod migrate;
pub mod query;
pub mod rollup;
pub mod scrape;
pub mod tail;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use fleetdeck_proto::FleetEvent;
use rusqlite::Connection;
use tokio::sync::{broadcast, mpsc, oneshot};

pub use db::{Conn, Target};

use crate::alerting::AlertInput;
use crate::telemetry::Telemetry;

/// At most this many queued writes go into one transaction.
const MAX_BATCH: usize = 512;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database {path}: {error}")]
    Open {
        path: PathBuf,
        error: rusqlite::Error,
    },
    #[error("database: {0}")]
    Sql(#[from] rusqlite::Error),
    #[error("database: {}", postgres_error(.0))]
    Postgres(postgres::Error),
    /// The database server cannot be reached now (PostgreSQL down, connection cut).
    #[error("the database is unavailable: {0}")]
    Unavailable(String),
    #[error("database migration failed: {0}")]
    Migrate(String),
    #[error("the database writer has stopped")]
    WriterGone,
    #[error("{0}")]
    Invalid(String),
    /// This collector is not (or no longer) the leader of its database: only the leader writes
    /// what agents say and records alerts.
    #[error("this collector is a standby: the leader writes")]
    NotLeader,
}

use db::postgres_error;

/// A session that broke (the server went away) is the database being unavailable; an error the
/// server answered is the statement's.
impl From<postgres::Error> for StoreError {
    fn from(e: postgres::Error) -> Self {
        let gone = (e.as_db_error().is_none() && e.is_closed())
            || e.code() == Some(&postgres::error::SqlState::ADMIN_SHUTDOWN)
            || e.code() == Some(&postgres::error::SqlState::CRASH_SHUTDOWN);
        if gone {
            StoreError::Unavailable(postgres_error(&e))
        } else {
            StoreError::Postgres(e)
        }
    }
}

/// Milliseconds since the Unix epoch, now.
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// What a write produced for the rest of the collector, handed out after its commit.
#[derive(Debug)]
pub enum Notice {
    Event(Box<FleetEvent>),
    /// For the alerter: a transition, or newly stored samples (threshold rules).
    Alert(AlertInput),
}

/// The open transaction a queued write runs in, and what it produced.
#[derive(Debug)]
pub struct WriteCtx<'a> {
    pub conn: &'a Conn,
    notices: Vec<Notice>,
    /// The rows a poll's job read up front ([`ingest::preload`]); dropped when the job ends.
    preload: Option<ingest::preload::Preload>,
}

impl WriteCtx<'_> {
    pub fn notify(&mut self, notice: Notice) {
        self.notices.push(notice);
    }
}

type Completion = Box<dyn FnOnce(bool) + Send>;
type Job = Box<dyn FnOnce(&mut WriteCtx<'_>) -> Completion + Send>;

/// The database: one writer thread that batches queued writes into transactions, and a small pool
/// of connections for reads and rare writes (keys, audit, alerts, rollups).
#[derive(Debug, Clone)]
pub struct Store {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    target: Target,
    jobs: mpsc::UnboundedSender<Job>,
    pool: Mutex<Vec<Conn>>,
    events: broadcast::Sender<FleetEvent>,
    transitions: Mutex<Option<mpsc::Receiver<AlertInput>>>,
    /// Whether the receiver was taken: only then does the writer wait for room in the queue.
    transitions_taken: Arc<std::sync::atomic::AtomicBool>,
    /// The writer's queue and transaction times, and the poller's figures (`GET /metrics`).
    telemetry: Telemetry,
    /// See [`Store::set_fence`].
    fence: Arc<AtomicI64>,
}

/// No fence: the only collector on its database.
pub const UNFENCED: i64 = 0;
/// A cluster member that does not lead: its writes of agent data and alerts are refused.
pub const STANDBY_FENCE: i64 = -1;

/// The database holds API key digests, the audit log and the fleet's history: its files (the
/// database, `-wal` and `-shm`) are readable by the collector's user only. The database is made
/// (or set to) mode 0600 before SQLite opens it; SQLite gives its `-wal` and `-shm` the
/// database's mode whatever the umask, and any left from an older run are set to 0600 too.
fn make_private(path: &Path) -> Result<(), StoreError> {
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    let fail = |error: std::io::Error| {
        StoreError::Invalid(format!(
            "cannot make the database {} private (mode 0600): {error}; check the directory's owner and permissions",
            path.display()
        ))
    };
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(path)
        .map_err(fail)?;
    for suffix in ["", "-wal", "-shm"] {
        let mut file = path.as_os_str().to_owned();
        file.push(suffix);
        match std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            other => other.map_err(fail)?,
        }
    }
    Ok(())
}

fn open_sqlite(path: &Path) -> Result<Connection, StoreError> {
    let conn = Connection::open(path).map_err(|error| StoreError::Open {
        path: path.to_owned(),
        error,
    })?;
    conn.busy_timeout(Duration::from_secs(10))?;
    // WAL: readers never block the writer; NORMAL sync is durable at each checkpoint and never
    // corrupts the file on a crash (a crash can lose at most the last transactions, which the
    // next backfill brings again).
    conn.pragma_update(None, "journal_mode", "wal")?;
    conn.pragma_update(None, "synchronous", "normal")?;
    conn.pragma_update(None, "foreign_keys", "on")?;
    Ok(conn)
}

/// What to do about a damaged database, in every error that finds one.
const RESTORE_HINT: &str = "the collector will not run on it. Restore the newest backup: stop the \
     collector, run `fleetdeck-collector --config collector.toml restore BACKUP.db`, start it \
     (backups are made while it runs with `fleetdeck-collector --config collector.toml backup PATH`)";

/// SQLite's `quick_check` at start: a damaged file is refused, naming the way back.
fn quick_check(conn: &Connection, path: &Path) -> Result<(), StoreError> {
    let damaged = |detail: String| {
        StoreError::Invalid(format!(
            "database {} is damaged ({detail}); {RESTORE_HINT}",
            path.display()
        ))
    };
    let mut stmt = conn
        .prepare("PRAGMA quick_check")
        .map_err(|e| damaged(e.to_string()))?;
    let found: Vec<String> = stmt
        .query_map([], |r| r.get::<_, String>(0))
        .and_then(|rows| rows.collect())
        .map_err(|e| damaged(e.to_string()))?;
    if found != ["ok"] {
        let mut detail = found.into_iter().take(3).collect::<Vec<_>>().join("; ");
        detail.insert_str(0, "quick_check: ");
        return Err(damaged(detail));
    }
    Ok(())
}

/// Runs `f` on a thread of its own if this one is in a tokio runtime, where PostgreSQL's sync
/// client would panic; otherwise here.
fn off_runtime<T: Send>(f: impl FnOnce() -> Result<T, StoreError> + Send) -> Result<T, StoreError> {
    if tokio::runtime::Handle::try_current().is_err() {
        return f();
    }
    std::thread::scope(|s| {
        s.spawn(f)
            .join()
            .unwrap_or_else(|_| Err(StoreError::Invalid("a database task panicked".into())))
    })
}

impl Target {
    /// The SQLite file, if the data is in one.
    pub fn sqlite_path(&self) -> Option<&Path> {
        match self {
            Target::Sqlite(path) => Some(path),
            Target::Postgres(_) => None,
        }
    }

    /// A new connection. PostgreSQL's client runs a runtime of its own: called on a thread that
    /// drives tokio tasks it would panic, so it is made on a thread of its own there.
    pub fn connect(&self) -> Result<Conn, StoreError> {
        match self {
            Target::Sqlite(path) => open_sqlite(path).map(Conn::Sqlite),
            Target::Postgres(pg) => off_runtime(|| pg.connect()),
        }
    }
}

/// Opens and checks an SQLite file: made private, refused if damaged, migrated.
fn open_sqlite_store(path: &Path) -> Result<Conn, StoreError> {
    {
        make_private(path)?;
        let conn = open_sqlite(path).map_err(|e| match e {
            StoreError::Sql(rusqlite::Error::SqliteFailure(f, _))
                if matches!(
                    f.code,
                    rusqlite::ErrorCode::NotADatabase | rusqlite::ErrorCode::DatabaseCorrupt
                ) =>
            {
                StoreError::Invalid(format!(
                    "database {} is damaged or not a database ({f}); {RESTORE_HINT}",
                    path.display()
                ))
            }
            other => other,
        })?;
        quick_check(&conn, path)?;
        let mut conn = Conn::Sqlite(conn);
        migrate::apply(&mut conn)?;
        Ok(conn)
    }
}

impl Store {
    /// Opens (creating if needed) and migrates the database, and starts the writer thread.
    pub fn open(target: &Target) -> Result<Self, StoreError> {
        let conn = match target {
            Target::Sqlite(path) => open_sqlite_store(path)?,
            Target::Postgres(pg) => off_runtime(|| {
                let mut conn = pg.connect()?;
                migrate::apply(&mut conn)?;
                Ok(conn)
            })?,
        };
        let (jobs, rx) = mpsc::unbounded_channel();
        let (events, _) = broadcast::channel(4096);
        let (transitions_tx, transitions_rx) = mpsc::channel(crate::alerting::INPUT_QUEUE);
        let transitions_taken = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let writer_events = events.clone();
        let telemetry = Telemetry::default();
        let writer_telemetry = telemetry.clone();
        let alerter = Alerter {
            tx: transitions_tx,
            listening: Arc::clone(&transitions_taken),
        };
        let fence = Arc::new(AtomicI64::new(UNFENCED));
        std::thread::Builder::new()
            .name("db-writer".into())
            .spawn({
                let target = target.clone();
                let fence = Arc::clone(&fence);
                move || {
                    writer(
                        target,
                        conn,
                        rx,
                        writer_events,
                        alerter,
                        writer_telemetry,
                        &fence,
                    )
                }
            })
            .map_err(|e| StoreError::Invalid(format!("cannot start the database writer: {e}")))?;
        Ok(Self {
            inner: Arc::new(Inner {
                target: target.clone(),
                jobs,
                pool: Mutex::new(Vec::new()),
                events,
                transitions: Mutex::new(Some(transitions_rx)),
                transitions_taken,
                telemetry,
                fence,
            }),
        })
    }

    /// Fences this store's writes of agent data and alerts: with [`UNFENCED`] (the default) it
    /// writes freely; with an epoch, each write transaction first checks (`FOR SHARE`) that the
    /// database's leader epoch is still that one and writes nothing otherwise; with
    /// [`STANDBY_FENCE`] it writes none (see [`db::leader`]).
    pub fn set_fence(&self, epoch: i64) {
        self.inner.fence.store(epoch, Ordering::SeqCst);
    }

    /// Fails with [`StoreError::NotLeader`] unless this store may write agent data and alerts
    /// now; called inside the writing transaction.
    pub(crate) fn check_fence(&self, conn: &Conn) -> Result<(), StoreError> {
        check_fence(conn, self.inner.fence.load(Ordering::SeqCst))
    }

    /// Hands `event` to the live streams as if this store's writer had committed it (a standby
    /// reading what its leader wrote).
    pub fn publish(&self, event: FleetEvent) {
        let _ = self.inner.events.send(event);
    }

    /// Where the data is.
    pub fn target(&self) -> &Target {
        &self.inner.target
    }

    /// The collector's own figures: the writer's here, the poller's recorded by it.
    pub fn telemetry(&self) -> &Telemetry {
        &self.inner.telemetry
    }

    /// Live fleet events, after their commit.
    pub fn subscribe(&self) -> broadcast::Receiver<FleetEvent> {
        self.inner.events.subscribe()
    }

    /// What the alerter needs, transitions and stored samples (taken once). From then on the
    /// writer waits for room in this bounded queue rather than drop an input: the one who takes
    /// it must keep reading it.
    pub fn take_transitions(&self) -> Option<mpsc::Receiver<AlertInput>> {
        let taken = self
            .inner
            .transitions
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        if taken.is_some() {
            self.inner
                .transitions_taken
                .store(true, std::sync::atomic::Ordering::SeqCst);
        }
        taken
    }

    /// Queues `f` for the writer thread; it runs inside a batch transaction (in a savepoint of its
    /// own, so its failure does not undo the others) and the answer comes after the commit.
    pub async fn write<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&mut WriteCtx<'_>) -> Result<T, StoreError> + Send + 'static,
    {
        let (tx, rx) = oneshot::channel();
        let job: Job = Box::new(move |ctx| {
            let result = run_in_savepoint(ctx, f);
            Box::new(move |committed| {
                let answer = if committed {
                    result
                } else {
                    Err(StoreError::Invalid(
                        "the batch transaction failed to commit".into(),
                    ))
                };
                let _ = tx.send(answer);
            })
        });
        // Counted before it is sent, so the writer never takes away what was not yet added.
        self.inner.telemetry.queued();
        if self.inner.jobs.send(job).is_err() {
            self.inner.telemetry.lost(1);
            return Err(StoreError::WriterGone);
        }
        // Dropped unanswered: its batch could not even begin (the server is unreachable).
        rx.await.map_err(|_| {
            StoreError::Unavailable("the write was not stored; it is retried".into())
        })?
    }

    /// Runs `f` on a pooled connection on the blocking pool (reads and rare writes).
    pub async fn with_conn<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Conn) -> Result<T, StoreError> + Send + 'static,
    {
        let store = self.clone();
        tokio::task::spawn_blocking(move || store.pooled(f))
            .await
            .map_err(|e| StoreError::Invalid(format!("database task failed: {e}")))?
    }

    /// The same, blocking the calling thread (on PostgreSQL from a thread of its own when the
    /// caller drives tokio tasks: the sync client cannot block such a thread).
    pub fn with_conn_blocking<T: Send>(
        &self,
        f: impl FnOnce(&mut Conn) -> Result<T, StoreError> + Send,
    ) -> Result<T, StoreError> {
        match self.inner.target {
            Target::Postgres(_) => off_runtime(|| self.pooled(f)),
            Target::Sqlite(_) => self.pooled(f),
        }
    }

    fn pooled<T>(
        &self,
        f: impl FnOnce(&mut Conn) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let pooled = self
            .inner
            .pool
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .pop();
        let mut conn = match pooled {
            Some(c) => c,
            None => self.inner.target.connect()?,
        };
        let result = f(&mut conn);
        // A PostgreSQL session that broke (server restarted, connection cut) is not kept.
        let broken = match &mut conn {
            Conn::Postgres(pg) => pg.get_mut().client().is_closed(),
            Conn::Sqlite(_) => false,
        };
        let mut pool = self.inner.pool.lock().unwrap_or_else(|e| e.into_inner());
        if pool.len() < 8 && !broken {
            pool.push(conn);
        }
        result
    }
}

fn run_in_savepoint<T>(
    ctx: &mut WriteCtx<'_>,
    f: impl FnOnce(&mut WriteCtx<'_>) -> Result<T, StoreError>,
) -> Result<T, StoreError> {
    ctx.conn.execute_batch("SAVEPOINT job")?;
    let notices_before = ctx.notices.len();
    // What a poll's job left waiting is written before the savepoint is released; its preload
    // stands for reads of this job's transaction only.
    let result = f(ctx).and_then(|v| ingest::preload::finish(ctx).map(|()| v));
    ctx.preload = None;
    match result {
        Ok(v) => {
            ctx.conn.execute_batch("RELEASE job")?;
            Ok(v)
        }
        Err(e) => {
            ctx.notices.truncate(notices_before);
            ctx.conn.execute_batch("ROLLBACK TO job; RELEASE job")?;
            Err(e)
        }
    }
}

/// The writer thread: takes a job, then every job already queued (up to [`MAX_BATCH`]), runs them in
/// one transaction, commits, then answers them and hands out what they produced.
/// The writer's way to the alerting task: waits for room once someone listens; before that (a
/// store without an alerter, in tools and tests) inputs beyond the queue are dropped, as nobody
/// would read them.
struct Alerter {
    tx: mpsc::Sender<AlertInput>,
    listening: Arc<std::sync::atomic::AtomicBool>,
}

impl Alerter {
    fn send(&self, input: AlertInput) {
        if self.listening.load(std::sync::atomic::Ordering::SeqCst) {
            // After the commit, outside any transaction: waiting holds no lock the alerting
            // task needs (it writes its history through the pool).
            let _ = self.tx.blocking_send(input);
        } else {
            let _ = self.tx.try_send(input);
        }
    }
}

/// See [`Store::set_fence`].
fn check_fence(conn: &Conn, fence: i64) -> Result<(), StoreError> {
    match fence {
        UNFENCED => Ok(()),
        STANDBY_FENCE => Err(StoreError::NotLeader),
        epoch => {
            let now: Option<i64> = conn.query_opt(
                "SELECT epoch FROM cluster_leader WHERE id = 1 FOR SHARE",
                db::params![],
                |r| r.get(0),
            )?;
            if now == Some(epoch) {
                Ok(())
            } else {
                Err(StoreError::NotLeader)
            }
        }
    }
}

fn writer(
    target: Target,
    mut conn: Conn,
    mut jobs: mpsc::UnboundedReceiver<Job>,
    events: broadcast::Sender<FleetEvent>,
    transitions: Alerter,
    telemetry: Telemetry,
    fence: &AtomicI64,
) {
    while let Some(first) = jobs.blocking_recv() {
        let started = std::time::Instant::now();
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match jobs.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        let mut ctx = WriteCtx {
            conn: &conn,
            notices: Vec::new(),
            preload: None,
        };
        let jobs_in_batch = batch.len();
        let began = conn.execute_batch(match conn.backend() {
            db::Backend::Sqlite => "BEGIN IMMEDIATE",
            db::Backend::Postgres => "BEGIN",
        });
        // A standby, or a leader deposed since: the batch is not written (its callers see
        // the failure), and the lock taken by the check keeps a new leader's epoch waiting until
        // this transaction ends.
        let fenced = began.is_ok()
            && match check_fence(&conn, fence.load(Ordering::SeqCst)) {
                Ok(()) => false,
                Err(e) => {
                    tracing::warn!(error = %e, "a write batch of agent data was not written");
                    true
                }
            };
        let completions: Vec<Completion> = match &began {
            Ok(()) if !fenced => batch.into_iter().map(|job| job(&mut ctx)).collect(),
            _ => Vec::new(),
        };
        let committed = began.is_ok() && !fenced && conn.execute_batch("COMMIT").is_ok();
        if !committed {
            if !fenced {
                tracing::error!(
                    "a database write batch failed to commit; its writes are retried by their callers"
                );
            }
            let _ = conn.execute_batch("ROLLBACK");
        }
        telemetry.batch(jobs_in_batch, started.elapsed());
        let notices = std::mem::take(&mut ctx.notices);
        drop(ctx);
        if !committed && conn.is_broken() {
            // The PostgreSQL session is gone (server restart, cut connection): a new one for
            // the next batch; the callers retry what this one lost.
            match target.connect() {
                Ok(fresh) => conn = fresh,
                Err(e) => tracing::error!(error = %e, "cannot reconnect to the database"),
            }
        }
        for done in completions {
            done(committed);
        }
        if committed {
            for notice in notices {
                match notice {
                    Notice::Event(e) => {
                        let _ = events.send(*e);
                    }
                    Notice::Alert(input) => {
                        transitions.send(input);
                    }
                }
            }
        }
    }
}
