//! Tests of the store run on each backend: SQLite always, PostgreSQL when the test bed's server
//! is up (`FLEETDECK_TEST_PG_URL`, exported by `testbed/testbed.sh env`; `scripts/test.sh`
//! requires it), each in a schema of its own that is dropped afterwards.

use super::PgTarget;
use crate::store::{Conn, Target};

pub fn sqlite() -> Conn {
    let mut conn = Conn::Sqlite(rusqlite::Connection::open_in_memory().expect("open"));
    crate::store::migrate::apply(&mut conn).expect("migrate");
    conn
}

/// A fresh schema on the test bed's PostgreSQL server, dropped when the guard goes.
#[derive(Debug)]
pub struct PgSchema {
    pub conn: Conn,
    name: String,
    target: PgTarget,
}

impl PgSchema {
    /// Another session on this schema (a second client of the same server).
    pub fn session(&self) -> Conn {
        let conn = self
            .target
            .connect()
            .unwrap_or_else(|e| panic!("FLEETDECK_TEST_PG_URL: {e}"));
        conn.execute_batch(&format!("SET search_path TO {}", self.name))
            .expect("search_path");
        conn
    }
}

impl Drop for PgSchema {
    fn drop(&mut self) {
        if let Ok(Conn::Postgres(pg)) = self.target.connect() {
            let _ = pg
                .borrow_mut()
                .client()
                .batch_execute(&format!("DROP SCHEMA {} CASCADE", self.name));
        }
    }
}

/// The test bed's server (`FLEETDECK_TEST_PG_URL`, its password in `PGPASSFILE`).
pub fn bed_target() -> Option<PgTarget> {
    let url = std::env::var("FLEETDECK_TEST_PG_URL").ok()?;
    let url = match std::env::var("PGPASSFILE") {
        Ok(file) => format!("{url}?passfile={file}"),
        Err(_) => url,
    };
    Some(PgTarget::parse(&url, None).expect("FLEETDECK_TEST_PG_URL"))
}

pub fn postgres() -> Option<PgSchema> {
    let target = bed_target()?;
    let name = format!("t{:016x}", rand::random::<u64>());
    let mut conn = target
        .connect()
        .unwrap_or_else(|e| panic!("FLEETDECK_TEST_PG_URL: {e}"));
    conn.execute_batch(&format!("CREATE SCHEMA {name}; SET search_path TO {name}"))
        .expect("schema");
    crate::store::migrate::apply(&mut conn).expect("migrate");
    Some(PgSchema { conn, name, target })
}

/// A database for a whole [`crate::store::Store`] (its writer and pool connect on their
/// own): a file in a temporary directory, or with `FLEETDECK_TEST_STORE=postgres` a new
/// database on the test bed's server, dropped with the guard.
#[derive(Debug)]
pub struct StoreDb {
    pub target: Target,
    _dir: tempfile::TempDir,
    pg: Option<(PgTarget, String)>,
}

impl Drop for StoreDb {
    fn drop(&mut self) {
        if let Some((admin, name)) = self.pg.take() {
            std::thread::spawn(move || {
                if let Ok(conn) = admin.connect() {
                    let _ =
                        conn.execute_batch(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"));
                }
            })
            .join()
            .ok();
        }
    }
}

pub fn store_db() -> StoreDb {
    let dir = tempfile::tempdir().expect("tempdir");
    if std::env::var("FLEETDECK_TEST_STORE").is_ok_and(|v| v == "postgres") {
        let admin = bed_target().expect(
            "FLEETDECK_TEST_STORE=postgres needs FLEETDECK_TEST_PG_URL (testbed/testbed.sh pg up)",
        );
        let name = format!("fdu_{:016x}", rand::random::<u64>());
        let target = std::thread::scope(|s| {
            s.spawn(|| {
                admin
                    .connect()
                    .and_then(|c| c.execute_batch(&format!("CREATE DATABASE {name}")))
                    .expect("create the test database");
                let mut own = admin.clone();
                own.config.dbname(&name);
                own
            })
            .join()
            .expect("create the test database")
        });
        return StoreDb {
            target: Target::Postgres(Box::new(target)),
            _dir: dir,
            pg: Some((admin, name)),
        };
    }
    StoreDb {
        target: Target::Sqlite(dir.path().join("c.db")),
        _dir: dir,
        pg: None,
    }
}

/// Runs `test` on a new database of each backend.
pub fn each_backend(test: impl Fn(&Conn)) {
    test(&sqlite());
    if let Some(pg) = postgres() {
        test(&pg.conn);
    }
}
