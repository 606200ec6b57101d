//! The schema: the SQL files of the top-level `migrations/` (SQLite) and `migrations/postgres/`
//! (PostgreSQL), embedded at build time and applied in order at start. On SQLite
//! rusqlite_migration records the version in `user_version`; on PostgreSQL refinery records each
//! applied migration (name and checksum) in `refinery_schema_history`. Either way applying them
//! again is a no-op and a database from a newer collector is refused.

use rusqlite::Connection;
use rusqlite_migration::{Migrations, M};

use super::db::Conn;
use super::StoreError;

/// The schema version the newest migration leaves (SQLite's `user_version`).
pub const VERSION: i64 = 6;

fn migrations() -> Migrations<'static> {
    Migrations::new(vec![
        M::up(include_str!("../../../migrations/0001_collector.sql")),
        M::up(include_str!("../../../migrations/0002_key_ids.sql")),
        M::up(include_str!("../../../migrations/0003_problems.sql")),
        M::up(include_str!("../../../migrations/0004_aspects.sql")),
        M::up(include_str!("../../../migrations/0005_alert_lifecycle.sql")),
        M::up(include_str!("../../../migrations/0006_agent_versions.sql")),
    ])
}

/// PostgreSQL's migrations, as refinery names them (`V{n}__{name}`).
const POSTGRES: &[(&str, &str)] = &[
    (
        "V1__collector",
        include_str!("../../../migrations/postgres/V1__collector.sql"),
    ),
    (
        "V2__leader",
        include_str!("../../../migrations/postgres/V2__leader.sql"),
    ),
];

/// Any number, the same in every collector: the advisory lock that lets one collector at a time
/// migrate a PostgreSQL database (refinery does not lock by itself).
const MIGRATION_LOCK: i64 = 0x6664_6d69_6772_6174; // "fdmigrat"

/// Brings the database to the newest schema.
pub fn apply(conn: &mut Conn) -> Result<(), StoreError> {
    match conn {
        Conn::Sqlite(c) => apply_sqlite(c),
        Conn::Postgres(pg) => apply_postgres(pg.get_mut().client()),
    }
}

/// Several collectors may start on one new database at once (a leader and its standbys): each
/// waits for the advisory lock, and the later ones find the schema current.
fn apply_postgres(client: &mut postgres::Client) -> Result<(), StoreError> {
    let migrations = POSTGRES
        .iter()
        .map(|(name, sql)| refinery::Migration::unapplied(name, sql))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| StoreError::Migrate(e.to_string()))?;
    client.execute("SELECT pg_advisory_lock($1)", &[&MIGRATION_LOCK])?;
    let result = refinery::Runner::new(&migrations)
        .set_abort_missing(true)
        .set_abort_divergent(true)
        .run(client)
        .map(|_| ())
        .map_err(|e| {
            StoreError::Migrate(format!(
                "{e}; a database migrated by a newer collector is refused: run that version"
            ))
        });
    client.execute("SELECT pg_advisory_unlock($1)", &[&MIGRATION_LOCK])?;
    result
}

/// Two processes may start on a new SQLite file at once (the daemon and `keys create`): the one
/// that loses the race sees the other's tables, its transaction rolls back, and a second look
/// finds the schema current.
pub fn apply_sqlite(conn: &mut Connection) -> Result<(), StoreError> {
    let mut last = None;
    for _ in 0..3 {
        match migrations().to_latest(conn) {
            Ok(()) => return Ok(()),
            Err(e) => last = Some(e),
        }
    }
    Err(StoreError::Migrate(
        last.map(|e| e.to_string()).unwrap_or_default(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tables(conn: &Connection) -> Vec<String> {
        let mut stmt = conn
            .prepare("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")
            .expect("prepare");
        stmt.query_map([], |r| r.get(0))
            .expect("query")
            .collect::<Result<_, _>>()
            .expect("rows")
    }

    #[test]
    fn version_is_the_newest_migrations() {
        let mut conn = Connection::open_in_memory().expect("open");
        apply_sqlite(&mut conn).expect("migrate");
        let v: i64 = conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .expect("user_version");
        assert_eq!(v, VERSION);
    }

    #[test]
    fn migrations_are_valid() {
        migrations().validate().expect("valid migrations");
    }

    #[test]
    fn from_empty_and_again() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("c.db");
        let mut conn = Connection::open(&path).expect("open");
        apply_sqlite(&mut conn).expect("first");
        let first = tables(&conn);
        for t in [
            "hosts",
            "apps",
            "samples_raw",
            "samples_1m",
            "samples_1h",
            "status_history",
            "events",
            "alerts",
            "api_keys",
            "audit",
            "app_samples_raw",
            "app_samples_1m",
            "app_samples_1h",
        ] {
            assert!(first.iter().any(|n| n == t), "{t} missing in {first:?}");
        }
        conn.execute(
            "INSERT INTO hosts (name, url) VALUES ('vm-1', 'http://x')",
            [],
        )
        .expect("insert");
        drop(conn);
        // A second start applies nothing and keeps the data.
        let mut conn = Connection::open(&path).expect("reopen");
        apply_sqlite(&mut conn).expect("again");
        assert_eq!(tables(&conn), first);
        let n: i64 = conn
            .query_row("SELECT count(*) FROM hosts", [], |r| r.get(0))
            .expect("count");
        assert_eq!(n, 1);
        let version: i64 = conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .expect("version");
        assert_eq!(version, VERSION);
    }

    #[test]
    fn a_database_of_the_previous_version_is_upgraded_with_nothing_lost() {
        // What a collector of the previous release left: hosts, samples, an open alert.
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("c.db");
        let mut conn = Connection::open(&path).expect("open");
        migrations()
            .to_version(&mut conn, (VERSION - 1) as usize)
            .expect("the previous schema");
        conn.execute_batch(
            "INSERT INTO hosts (name, url, instance_id, last_seq) VALUES ('vm-1', 'http://x', 'i1', 42);
             INSERT INTO samples_raw (host_id, ts_ms, instance, seq, cpu) VALUES (1, 1000, 1, 42, 12.5);
             INSERT INTO alerts (kind, host, app, state, message, ts_ms) VALUES ('problem', 'vm-1', 'web', 'failed', 'web failed', 1000);",
        )
        .expect("rows of the previous version");
        drop(conn);
        let mut conn = Connection::open(&path).expect("reopen");
        apply_sqlite(&mut conn).expect("upgrade");
        let host: (String, i64, Option<String>, Option<i64>) = conn
            .query_row(
                "SELECT instance_id, last_seq, agent_version, wire_version FROM hosts WHERE name = 'vm-1'",
                [],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
            )
            .expect("the host");
        assert_eq!(host, ("i1".to_owned(), 42, None, None));
        let cpu: f64 = conn
            .query_row("SELECT cpu FROM samples_raw WHERE seq = 42", [], |r| {
                r.get(0)
            })
            .expect("the sample");
        assert_eq!(cpu, 12.5);
        let open: i64 = conn
            .query_row(
                "SELECT count(*) FROM alerts WHERE resolved_ms IS NULL",
                [],
                |r| r.get(0),
            )
            .expect("the alert");
        assert_eq!(open, 1);
    }

    #[test]
    fn keys_of_a_first_schema_keep_their_ids_and_ids_are_never_reused() {
        let mut conn = Connection::open_in_memory().expect("open");
        migrations()
            .to_version(&mut conn, 1)
            .expect("the first schema");
        conn.execute(
            "INSERT INTO api_keys (id, name, role, hash, created_ms) VALUES (5, 'ops', 'operator', x'01', 1)",
            [],
        )
        .expect("a key");
        conn.execute(
            "INSERT INTO audit (ts_ms, key_name, action, target, result) VALUES (1, 'ops', 'app.restart', 'vm/web', 'ok')",
            [],
        )
        .expect("an entry");
        apply_sqlite(&mut conn).expect("to the newest");
        let kept: (i64, String) = conn
            .query_row("SELECT id, name FROM api_keys", [], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })
            .expect("the key");
        assert_eq!(kept, (5, "ops".to_owned()));
        let old_entry: Option<i64> = conn
            .query_row("SELECT key_id FROM audit", [], |r| r.get(0))
            .expect("the entry");
        assert_eq!(old_entry, None, "older entries have no key id");
        // The newest key deleted, the next one does not take its id.
        let insert = |name: &str| {
            conn.execute(
                "INSERT INTO api_keys (name, role, hash, created_ms) VALUES (?1, 'viewer', ?1, 1)",
                [name],
            )
            .expect("insert");
            conn.last_insert_rowid()
        };
        let six = insert("a");
        conn.execute("DELETE FROM api_keys WHERE id = ?1", [six])
            .expect("delete");
        assert_eq!((six, insert("b")), (6, 7));
    }

    /// Two collectors starting on one new PostgreSQL database at once (a leader and a standby):
    /// one migrates, the other waits and finds the schema current; a database a newer collector
    /// migrated is refused. Runs when the test bed's server is up.
    #[test]
    fn postgres_migrates_once_when_two_start_at_once_and_refuses_a_newer_schema() {
        use crate::store::db::testing::bed_target;
        let Some(target) = bed_target() else {
            return;
        };
        let schema = format!("m{:016x}", rand::random::<u64>());
        // Made once, before the race: CREATE SCHEMA IF NOT EXISTS itself is not safe to race.
        target
            .connect()
            .expect("connect")
            .execute_batch(&format!("CREATE SCHEMA {schema}"))
            .expect("schema");
        let open = || {
            let conn = target.connect().expect("connect");
            conn.execute_batch(&format!("SET search_path TO {schema}"))
                .expect("search_path");
            conn
        };
        let results: Vec<Result<(), StoreError>> = std::thread::scope(|s| {
            let a = s.spawn(|| apply(&mut open()));
            let b = s.spawn(|| apply(&mut open()));
            vec![a.join().expect("a"), b.join().expect("b")]
        });
        for r in &results {
            assert!(r.is_ok(), "{r:?}");
        }
        let mut conn = open();
        let applied: i64 = conn
            .query_row(
                "SELECT count(*) FROM refinery_schema_history",
                crate::params![],
                |r| r.get(0),
            )
            .expect("history");
        assert_eq!(
            applied as usize,
            POSTGRES.len(),
            "each migration applied once"
        );
        apply(&mut conn).expect("again: nothing to do");
        conn.execute(
            "INSERT INTO hosts (name, url) VALUES ('vm-1', 'http://x')",
            crate::params![],
        )
        .expect("a host");
        conn.execute_batch(
            "INSERT INTO refinery_schema_history (version, name, applied_on, checksum)
             VALUES (99, 'from_the_future', '2030-01-01T00:00:00Z', '0')",
        )
        .expect("a newer migration");
        let err = apply(&mut conn).expect_err("a newer schema");
        assert!(err.to_string().contains("newer collector"), "{err}");
        conn.execute_batch(&format!("DROP SCHEMA {schema} CASCADE"))
            .expect("drop");
    }

    #[test]
    fn a_newer_database_is_refused() {
        let mut conn = Connection::open_in_memory().expect("open");
        apply_sqlite(&mut conn).expect("apply");
        conn.pragma_update(None, "user_version", 99).expect("bump");
        let err = apply_sqlite(&mut conn).expect_err("newer schema");
        assert!(err.to_string().contains("migration"), "{err}");
    }
}
