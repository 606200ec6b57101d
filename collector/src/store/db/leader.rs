//! Which of the collectors on one PostgreSQL database leads: the one whose session holds a
//! session-level advisory lock. No consensus of ours: PostgreSQL decides who holds the lock.
//!
//! The lock lives on a session of its own, on a thread of its own (the sync client), renewed
//! every [`Lease::tick`] by a round trip. Two clocks end a leadership that can no longer reach
//! the database, the leader's one first:
//! - the leader leads until half a lease after it *sent* its last answered renewal
//!   ([`Role::Leader::until`]); past that its work stops, whatever its thread is stuck on;
//! - the server ends the session once it has been idle a whole lease (`idle_session_timeout`),
//!   which frees the lock for a standby. The session's last activity is never before that send,
//!   so the server lets go at least half a lease after the leader stopped.
//!
//! A new leader raises the epoch in `cluster_leader`; every write of agent data checks it in its
//! own transaction (`FOR SHARE`, see [`crate::store::Store::set_fence`]), so a leader that lost
//! the lease cannot write even if it has not noticed yet, and the raise waits for the writes of
//! the old leader in flight to end. Other sessions of a cluster member end when idle inside a
//! transaction for a lease ([`super::PgTarget::for_cluster`]): a partitioned leader cannot hold
//! the row lock for ever.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::watch;

use super::PgTarget;
use crate::store::{now_ms, StoreError};

/// Any number, the same in every collector: the lock whose holder leads.
pub(crate) const LEADER_LOCK: i64 = 0x6664_6c65_6164_6572; // "fdleader"

/// What this collector is now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Role {
    /// Not yet answered by the database: the first try for the lock is on its way.
    Starting,
    /// Waiting for the lock. `leader` is who holds it, as it told the database, and `epoch`
    /// the leaders so far.
    Standby {
        leader: Option<String>,
        epoch: Option<i64>,
    },
    /// Holding the lock as the `epoch`th leader, until `until` unless renewed.
    Leader { epoch: i64, until: Instant },
}

/// How long a leader that stopped answering keeps the lock: it stops leading after half of
/// it, the server frees the lock after all of it.
#[derive(Debug, Clone, Copy)]
pub struct Lease(pub Duration);

impl Lease {
    /// How often the lock is renewed (or, on a standby, tried).
    pub fn tick(self) -> Duration {
        (self.0 / 5).max(Duration::from_millis(100))
    }

    fn ms(d: Duration) -> u64 {
        u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
    }
}

/// The lock's thread; dropping it lets go of the lock (a standby then takes over at once).
#[derive(Debug)]
pub struct Leadership {
    role: watch::Receiver<Role>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Leadership {
    /// Starts contending for the lead on `target` as `who` (the holder others are shown).
    pub fn start(target: PgTarget, lease: Lease, who: String) -> Self {
        let (tx, role) = watch::channel(Role::Starting);
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let stop = Arc::clone(&stop);
            std::thread::Builder::new()
                .name("leader-lock".into())
                .spawn(move || contend(&target, lease, &who, &tx, &stop))
                .expect("spawn the leader lock's thread")
        };
        Self {
            role,
            stop,
            thread: Some(thread),
        }
    }

    pub fn watch(&self) -> watch::Receiver<Role> {
        self.role.clone()
    }
}

impl Drop for Leadership {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(thread) = self.thread.take() {
            // A thread stuck on an unreachable server is left behind: the process is ending.
            if thread.is_finished() {
                let _ = thread.join();
            }
        }
    }
}

/// `fleetdeck-collector pid N on HOST`: how a collector names itself to the others.
pub fn who_am_i() -> String {
    format!(
        "fleetdeck-collector pid {} on {}",
        std::process::id(),
        std::fs::read_to_string("/etc/hostname")
            .map(|h| h.trim().to_owned())
            .unwrap_or_else(|_| "?".into())
    )
}

fn sleep_unless_stopped(d: Duration, stop: &AtomicBool) -> bool {
    let end = Instant::now() + d;
    while Instant::now() < end {
        if stop.load(Ordering::SeqCst) {
            return false;
        }
        std::thread::sleep((end - Instant::now()).min(Duration::from_millis(50)));
    }
    !stop.load(Ordering::SeqCst)
}

fn contend(
    target: &PgTarget,
    lease: Lease,
    who: &str,
    role: &watch::Sender<Role>,
    stop: &AtomicBool,
) {
    let mut last_error: Option<String> = None;
    while !stop.load(Ordering::SeqCst) {
        match term(target, lease, who, role, stop) {
            Ok(()) => last_error = None,
            Err(e) => {
                let e = e.to_string();
                if last_error.as_ref() != Some(&e) {
                    tracing::warn!(error = %e, "the leader lock's session failed; trying again");
                }
                last_error = Some(e);
            }
        }
        role.send_if_modified(|r| {
            if matches!(r, Role::Leader { .. }) {
                tracing::warn!("no longer the leader: the database did not answer in time");
                *r = Role::Standby {
                    leader: None,
                    epoch: None,
                };
                true
            } else {
                false
            }
        });
        sleep_unless_stopped(lease.tick(), stop);
    }
}

/// One session: a standby's tries, then (if it gets the lock) a leadership, until the session
/// fails, a renewal comes too late, or `stop`.
fn term(
    target: &PgTarget,
    lease: Lease,
    who: &str,
    role: &watch::Sender<Role>,
    stop: &AtomicBool,
) -> Result<(), StoreError> {
    let conn = target.connect()?;
    conn.execute(
        "SELECT set_config('application_name', ?1, false)",
        params![who],
    )?;
    conn.execute_batch(&format!(
        "SET idle_session_timeout = '{}ms'",
        Lease::ms(lease.0)
    ))?;
    let sent = loop {
        let sent = Instant::now();
        let taken: bool = conn.query_row(
            "SELECT pg_try_advisory_lock(?1)",
            params![LEADER_LOCK],
            |r| r.get(0),
        )?;
        if taken {
            break sent;
        }
        let (leader, epoch) = conn
            .query_opt(
                "SELECT holder, epoch FROM cluster_leader WHERE id = 1",
                params![],
                |r| Ok((r.get::<String>(0)?, r.get::<i64>(1)?)),
            )?
            .map_or((None, None), |(holder, epoch)| {
                ((!holder.is_empty()).then_some(holder), Some(epoch))
            });
        role.send_if_modified(|r| {
            let now = Role::Standby { leader, epoch };
            let changed = *r != now;
            *r = now;
            changed
        });
        if !sleep_unless_stopped(lease.tick(), stop) {
            return Ok(());
        }
    };
    // Waits for writes of an earlier leader still in flight (they hold the row FOR SHARE).
    let epoch: i64 = conn.query_row(
        "UPDATE cluster_leader SET epoch = epoch + 1, holder = ?1, since_ms = ?2 WHERE id = 1
         RETURNING epoch",
        params![who, now_ms() as i64],
        |r| r.get(0),
    )?;
    let mut until = sent + lease.0 / 2;
    if Instant::now() >= until {
        // Too slow to lead: let go and try again.
        return Ok(());
    }
    tracing::info!(epoch, "leading: polling, subscribing and alerting");
    role.send_replace(Role::Leader { epoch, until });
    loop {
        if !sleep_unless_stopped(lease.tick(), stop) {
            let _ = conn.execute("SELECT pg_advisory_unlock(?1)", params![LEADER_LOCK]);
            role.send_replace(Role::Standby {
                leader: None,
                epoch: Some(epoch),
            });
            return Ok(());
        }
        let sent = Instant::now();
        let held: bool = conn.query_row(
            "SELECT count(*) > 0 FROM pg_locks WHERE locktype = 'advisory' AND granted
               AND pid = pg_backend_pid() AND (classid::bigint << 32) | objid::bigint = ?1",
            params![LEADER_LOCK],
            |r| r.get(0),
        )?;
        if !held || Instant::now() >= until {
            return Ok(());
        }
        until = sent + lease.0 / 2;
        role.send_replace(Role::Leader { epoch, until });
    }
}
