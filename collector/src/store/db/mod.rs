//! One connection type for both backends: SQLite (rusqlite, the embedded default) and PostgreSQL
//! (the sync `postgres` client). The store writes its SQL once, in SQLite's `?N` placeholders, and
//! [`Conn`] runs it on either; the few statements that must differ ask [`Conn::backend`].
//!
//! Both sides see the same Rust types: integers are `i64` (BIGINT in PostgreSQL's schema), reals
//! `f64` (DOUBLE PRECISION), text `String`, bytes `Vec<u8>` (BYTEA). The PostgreSQL client blocks
//! on a runtime of its own, so a [`Conn`] is used on plain or blocking threads only, never on a
//! thread that drives tokio tasks.

use std::cell::RefCell;
use std::collections::HashMap;

use super::StoreError;

/// Which engine a connection talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// A value a statement binds, the same Rust type on both backends. A `bool` binds as the
/// integer 0 or 1 (flags are integers in both schemas).
pub trait Param {
    fn sqlite(&self) -> &dyn rusqlite::ToSql;
    fn postgres(&self) -> &(dyn postgres::types::ToSql + Sync);
}

macro_rules! param_as_is {
    ($($t:ty),*) => {$(
        impl Param for $t {
            fn sqlite(&self) -> &dyn rusqlite::ToSql {
                self
            }
            fn postgres(&self) -> &(dyn postgres::types::ToSql + Sync) {
                self
            }
        }
    )*};
}
param_as_is!(
    i64,
    f64,
    String,
    &str,
    Vec<u8>,
    &[u8],
    Option<i64>,
    Option<f64>,
    Option<String>,
    Option<&str>,
    Option<Vec<u8>>
);

impl Param for bool {
    fn sqlite(&self) -> &dyn rusqlite::ToSql {
        self
    }
    fn postgres(&self) -> &(dyn postgres::types::ToSql + Sync) {
        if *self {
            &1i64
        } else {
            &0i64
        }
    }
}

impl<T: Param + ?Sized> Param for &T {
    fn sqlite(&self) -> &dyn rusqlite::ToSql {
        (**self).sqlite()
    }
    fn postgres(&self) -> &(dyn postgres::types::ToSql + Sync) {
        (**self).postgres()
    }
}

/// `params![a, b]`: the values of a statement's `?1`, `?2`, … in order.
#[macro_export]
macro_rules! params {
    () => { &[] as &[&dyn $crate::store::db::Param] };
    ($($p:expr),+ $(,)?) => { &[$(&$p as &dyn $crate::store::db::Param),+] as &[&dyn $crate::store::db::Param] };
}
pub use crate::params;

/// A column a row can be read into.
pub trait Column: Sized {
    fn from_sqlite(row: &rusqlite::Row<'_>, idx: usize) -> Result<Self, StoreError>;
    fn from_postgres(row: &postgres::Row, idx: usize) -> Result<Self, StoreError>;
}

macro_rules! column_as_is {
    ($($t:ty),*) => {$(
        impl Column for $t {
            fn from_sqlite(row: &rusqlite::Row<'_>, idx: usize) -> Result<Self, StoreError> {
                Ok(row.get(idx)?)
            }
            fn from_postgres(row: &postgres::Row, idx: usize) -> Result<Self, StoreError> {
                Ok(row.try_get(idx)?)
            }
        }
    )*};
}
column_as_is!(String, Vec<u8>);

/// Flags are integers in both schemas; a PostgreSQL comparison (`x IS NOT NULL`) is a boolean.
impl Column for bool {
    fn from_sqlite(row: &rusqlite::Row<'_>, idx: usize) -> Result<Self, StoreError> {
        Ok(row.get(idx)?)
    }
    fn from_postgres(row: &postgres::Row, idx: usize) -> Result<Self, StoreError> {
        if row.columns()[idx].type_() == &postgres::types::Type::BOOL {
            Ok(row.try_get(idx)?)
        } else {
            i64::from_postgres(row, idx).map(|v| v != 0)
        }
    }
}

/// PostgreSQL types a literal or an aggregate narrower than BIGINT (`SELECT 1`, `count(*)` is
/// BIGINT already): read as `i64` as SQLite does.
impl Column for i64 {
    fn from_sqlite(row: &rusqlite::Row<'_>, idx: usize) -> Result<Self, StoreError> {
        Ok(row.get(idx)?)
    }
    fn from_postgres(row: &postgres::Row, idx: usize) -> Result<Self, StoreError> {
        use postgres::types::Type;
        let ty = row.columns()[idx].type_().clone();
        Ok(match ty {
            Type::INT4 => i64::from(row.try_get::<_, i32>(idx)?),
            Type::INT2 => i64::from(row.try_get::<_, i16>(idx)?),
            _ => row.try_get(idx)?,
        })
    }
}

/// Counts and versions kept as BIGINT: out of range reads as an error, not a wrapped number.
impl Column for u32 {
    fn from_sqlite(row: &rusqlite::Row<'_>, idx: usize) -> Result<Self, StoreError> {
        Ok(row.get(idx)?)
    }
    fn from_postgres(row: &postgres::Row, idx: usize) -> Result<Self, StoreError> {
        let v = i64::from_postgres(row, idx)?;
        u32::try_from(v)
            .map_err(|_| StoreError::Invalid(format!("column {idx}: {v} is out of range")))
    }
}

/// Reals: an integer column reads as a real, as in SQLite.
impl Column for f64 {
    fn from_sqlite(row: &rusqlite::Row<'_>, idx: usize) -> Result<Self, StoreError> {
        Ok(row.get(idx)?)
    }
    fn from_postgres(row: &postgres::Row, idx: usize) -> Result<Self, StoreError> {
        use postgres::types::Type;
        let ty = row.columns()[idx].type_().clone();
        Ok(match ty {
            Type::INT8 => row.try_get::<_, i64>(idx)? as f64,
            Type::INT4 => f64::from(row.try_get::<_, i32>(idx)?),
            Type::FLOAT4 => f64::from(row.try_get::<_, f32>(idx)?),
            _ => row.try_get(idx)?,
        })
    }
}

impl<T: Column> Column for Option<T> {
    fn from_sqlite(row: &rusqlite::Row<'_>, idx: usize) -> Result<Self, StoreError> {
        match row.get_ref(idx)? {
            rusqlite::types::ValueRef::Null => Ok(None),
            _ => T::from_sqlite(row, idx).map(Some),
        }
    }
    fn from_postgres(row: &postgres::Row, idx: usize) -> Result<Self, StoreError> {
        // A NULL fails every non-Option read with a "was null" error: ask for it as raw bytes.
        let raw: Option<Raw> = row.try_get(idx)?;
        match raw {
            None => Ok(None),
            Some(_) => T::from_postgres(row, idx).map(Some),
        }
    }
}

/// Any PostgreSQL value, unread: only whether it is NULL.
struct Raw;

impl<'a> postgres::types::FromSql<'a> for Raw {
    fn from_sql(
        _: &postgres::types::Type,
        _: &'a [u8],
    ) -> Result<Self, Box<dyn std::error::Error + Sync + Send>> {
        Ok(Raw)
    }
    fn accepts(_: &postgres::types::Type) -> bool {
        true
    }
}

/// One result row, of either backend.
#[allow(missing_debug_implementations)]
pub enum Row<'a> {
    Sqlite(&'a rusqlite::Row<'a>),
    Postgres(&'a postgres::Row),
}

impl Row<'_> {
    pub fn get<T: Column>(&self, idx: usize) -> Result<T, StoreError> {
        match self {
            Row::Sqlite(r) => T::from_sqlite(r, idx),
            Row::Postgres(r) => T::from_postgres(r, idx),
        }
    }
}

/// A PostgreSQL session and its prepared statements, by SQL text.
pub struct PgConn {
    /// Always `Some` until dropped (see `Drop`).
    client: Option<postgres::Client>,
    statements: HashMap<String, postgres::Statement>,
}

/// Closing a session blocks on the client's runtime, which panics on a thread that drives tokio
/// tasks (a store dropped in an async task): there the client is closed on a thread of its own.
impl Drop for PgConn {
    fn drop(&mut self) {
        let Some(client) = self.client.take() else {
            return;
        };
        if tokio::runtime::Handle::try_current().is_ok() {
            let _ = std::thread::Builder::new()
                .name("db-close".into())
                .spawn(move || drop(client));
        } else {
            drop(client);
        }
    }
}

impl std::fmt::Debug for PgConn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgConn")
            .field("statements", &self.statements.len())
            .finish_non_exhaustive()
    }
}

/// At most this many prepared statements are kept per PostgreSQL session (the store has about a
/// hundred distinct statements; a few are built per call, so the cache is bounded).
const PG_STATEMENT_CACHE: usize = 512;

impl PgConn {
    pub fn new(client: postgres::Client) -> Self {
        Self {
            client: Some(client),
            statements: HashMap::new(),
        }
    }

    fn statement(&mut self, sql: &str) -> Result<postgres::Statement, StoreError> {
        if let Some(s) = self.statements.get(sql) {
            return Ok(s.clone());
        }
        let prepared = self.client().prepare(&placeholders(sql))?;
        if self.statements.len() >= PG_STATEMENT_CACHE {
            self.statements.clear();
        }
        self.statements.insert(sql.to_owned(), prepared.clone());
        Ok(prepared)
    }

    pub fn client(&mut self) -> &mut postgres::Client {
        self.client.as_mut().expect("a session until dropped")
    }
}

/// A glob as an anchored POSIX regular expression: `*` any run, `?` one character, `[...]` a
/// class (`[!...]` its complement); everything else matches itself.
pub fn glob_to_regex(glob: &str) -> String {
    let mut out = String::from("^");
    let mut chars = glob.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '*' => out.push_str(".*"),
            '?' => out.push('.'),
            '[' => {
                out.push('[');
                if chars.peek() == Some(&'!') {
                    chars.next();
                    out.push('^');
                }
                for c in chars.by_ref() {
                    if c == '\\' {
                        out.push_str("\\\\");
                        continue;
                    }
                    out.push(c);
                    if c == ']' {
                        break;
                    }
                }
            }
            c if c.is_alphanumeric() || c == '_' || c == '-' || c == '@' => out.push(c),
            c => {
                out.push('\\');
                out.push(c);
            }
        }
    }
    out.push('$');
    out
}

/// SQLite's `?N` placeholders as PostgreSQL's `$N`, outside quoted text.
pub fn placeholders(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len() + 8);
    let mut quote: Option<char> = None;
    for c in sql.chars() {
        match quote {
            Some(q) if c == q => quote = None,
            Some(_) => {}
            None if c == '\'' || c == '"' => quote = Some(c),
            None if c == '?' => {
                out.push('$');
                continue;
            }
            None => {}
        }
        out.push(c);
    }
    out
}

/// A database connection of either backend.
#[derive(Debug)]
pub enum Conn {
    Sqlite(rusqlite::Connection),
    Postgres(Box<RefCell<PgConn>>),
}

fn sqlite_params<'p>(params: &'p [&'p dyn Param]) -> Vec<&'p dyn rusqlite::ToSql> {
    params.iter().map(|p| p.sqlite()).collect()
}

fn pg_params<'p>(params: &'p [&'p dyn Param]) -> Vec<&'p (dyn postgres::types::ToSql + Sync)> {
    params.iter().map(|p| p.postgres()).collect()
}

impl Conn {
    pub fn backend(&self) -> Backend {
        match self {
            Conn::Sqlite(_) => Backend::Sqlite,
            Conn::Postgres(_) => Backend::Postgres,
        }
    }

    /// The operator matching a name against [`Conn::glob_pattern`]`(glob)`: SQLite's `GLOB`,
    /// PostgreSQL's regular expression match.
    pub fn glob_operator(&self) -> &'static str {
        match self {
            Conn::Sqlite(_) => "GLOB",
            Conn::Postgres(_) => "~",
        }
    }

    /// A glob (`*`, `?`, `[...]`, `[!...]`) as this backend's [`Conn::glob_operator`] takes it.
    pub fn glob_pattern(&self, glob: &str) -> String {
        match self {
            Conn::Sqlite(_) => glob.to_owned(),
            Conn::Postgres(_) => glob_to_regex(glob),
        }
    }

    /// Whether the connection is gone for good (a PostgreSQL session the server closed).
    pub fn is_broken(&self) -> bool {
        match self {
            Conn::Sqlite(_) => false,
            Conn::Postgres(pg) => pg
                .try_borrow_mut()
                .is_ok_and(|pg| pg.client.as_ref().is_none_or(|c| c.is_closed())),
        }
    }

    /// The SQLite connection, for what only SQLite has (pragmas, backups, `quick_check`).
    pub fn sqlite(&self) -> Option<&rusqlite::Connection> {
        match self {
            Conn::Sqlite(c) => Some(c),
            Conn::Postgres(_) => None,
        }
    }

    /// Runs a statement; the number of rows it changed.
    pub fn execute(&self, sql: &str, params: &[&dyn Param]) -> Result<usize, StoreError> {
        match self {
            Conn::Sqlite(c) => Ok(c
                .prepare_cached(sql)?
                .execute(sqlite_params(params).as_slice())?),
            Conn::Postgres(pg) => {
                let mut pg = pg.borrow_mut();
                let stmt = pg.statement(sql)?;
                Ok(pg.client().execute(&stmt, &pg_params(params))? as usize)
            }
        }
    }

    /// Runs statements without parameters, separated by `;`.
    pub fn execute_batch(&self, sql: &str) -> Result<(), StoreError> {
        match self {
            Conn::Sqlite(c) => Ok(c.execute_batch(sql)?),
            Conn::Postgres(pg) => Ok(pg.borrow_mut().client().batch_execute(sql)?),
        }
    }

    /// Every row of a query, each turned into a `T` by `f`.
    pub fn query_map<T>(
        &self,
        sql: &str,
        params: &[&dyn Param],
        mut f: impl FnMut(&Row<'_>) -> Result<T, StoreError>,
    ) -> Result<Vec<T>, StoreError> {
        match self {
            Conn::Sqlite(c) => {
                let mut stmt = c.prepare_cached(sql)?;
                let mut rows = stmt.query(sqlite_params(params).as_slice())?;
                let mut out = Vec::new();
                while let Some(row) = rows.next()? {
                    out.push(f(&Row::Sqlite(row))?);
                }
                Ok(out)
            }
            Conn::Postgres(pg) => {
                let mut pg = pg.borrow_mut();
                let stmt = pg.statement(sql)?;
                let rows = pg.client().query(&stmt, &pg_params(params))?;
                rows.iter().map(|r| f(&Row::Postgres(r))).collect()
            }
        }
    }

    /// Rows of a query one at a time, while `f` says to go on (`true`): a reader that stops
    /// early (a page bounded in bytes) never holds the rest.
    pub fn query_each(
        &self,
        sql: &str,
        params: &[&dyn Param],
        mut f: impl FnMut(&Row<'_>) -> Result<bool, StoreError>,
    ) -> Result<(), StoreError> {
        match self {
            Conn::Sqlite(c) => {
                let mut stmt = c.prepare_cached(sql)?;
                let mut rows = stmt.query(sqlite_params(params).as_slice())?;
                while let Some(row) = rows.next()? {
                    if !f(&Row::Sqlite(row))? {
                        break;
                    }
                }
                Ok(())
            }
            Conn::Postgres(pg) => {
                use postgres::fallible_iterator::FallibleIterator;
                let mut pg = pg.borrow_mut();
                let stmt = pg.statement(sql)?;
                let mut rows = pg.client().query_raw(&stmt, pg_params(params))?;
                while let Some(row) = rows.next()? {
                    if !f(&Row::Postgres(&row))? {
                        break;
                    }
                }
                Ok(())
            }
        }
    }

    /// The first row of a query, if there is one.
    pub fn query_opt<T>(
        &self,
        sql: &str,
        params: &[&dyn Param],
        f: impl FnOnce(&Row<'_>) -> Result<T, StoreError>,
    ) -> Result<Option<T>, StoreError> {
        match self {
            Conn::Sqlite(c) => {
                let mut stmt = c.prepare_cached(sql)?;
                let mut rows = stmt.query(sqlite_params(params).as_slice())?;
                match rows.next()? {
                    Some(row) => f(&Row::Sqlite(row)).map(Some),
                    None => Ok(None),
                }
            }
            Conn::Postgres(pg) => {
                let mut pg = pg.borrow_mut();
                let stmt = pg.statement(sql)?;
                let rows = pg.client().query(&stmt, &pg_params(params))?;
                rows.first().map(|r| f(&Row::Postgres(r))).transpose()
            }
        }
    }

    /// The one row a query must return.
    pub fn query_row<T>(
        &self,
        sql: &str,
        params: &[&dyn Param],
        f: impl FnOnce(&Row<'_>) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        self.query_opt(sql, params, f)?
            .ok_or_else(|| StoreError::Invalid(format!("no row for: {sql}")))
    }

    /// Runs `f` in a transaction: committed if it returns `Ok`, rolled back otherwise.
    pub fn transaction<T>(
        &self,
        f: impl FnOnce(&Conn) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        self.execute_batch(match self.backend() {
            // IMMEDIATE: take the write lock now, not at the first write (no upgrade deadlock).
            Backend::Sqlite => "BEGIN IMMEDIATE",
            Backend::Postgres => "BEGIN",
        })?;
        match f(self) {
            Ok(v) => {
                self.execute_batch("COMMIT")?;
                Ok(v)
            }
            Err(e) => {
                let _ = self.execute_batch("ROLLBACK");
                Err(e)
            }
        }
    }
}

pub mod leader;
mod target;
#[cfg(test)]
pub mod testing;

pub use target::{is_postgres_url, postgres_error, PgTarget};

/// Where the store keeps its data.
#[derive(Debug, Clone)]
pub enum Target {
    Sqlite(std::path::PathBuf),
    Postgres(Box<PgTarget>),
}

impl std::fmt::Display for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Target::Sqlite(path) => write!(f, "{}", path.display()),
            Target::Postgres(pg) => write!(f, "{pg}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs_as_regular_expressions() {
        assert_eq!(glob_to_regex("web-*"), "^web-.*$");
        assert_eq!(glob_to_regex("db?.prod"), "^db.\\.prod$");
        assert_eq!(glob_to_regex("[!a]x"), "^[^a]x$");
    }

    #[test]
    fn placeholders_outside_quotes_only() {
        assert_eq!(
            placeholders("SELECT a FROM t WHERE b = ?1 AND c = '?2' AND \"d?\" = ?3"),
            "SELECT a FROM t WHERE b = $1 AND c = '?2' AND \"d?\" = $3"
        );
    }

    #[test]
    fn sqlite_rows_read_through_the_facade() {
        let conn = Conn::Sqlite(rusqlite::Connection::open_in_memory().expect("open"));
        conn.execute_batch("CREATE TABLE t (a INTEGER, b REAL, c TEXT, d BLOB)")
            .expect("create");
        let n = conn
            .execute(
                "INSERT INTO t VALUES (?1, ?2, ?3, ?4)",
                params![7i64, 0.5f64, "x", vec![1u8, 2]],
            )
            .expect("insert");
        assert_eq!(n, 1);
        conn.execute(
            "INSERT INTO t VALUES (?1, ?2, ?3, ?4)",
            params![None::<i64>, None::<f64>, None::<String>, None::<Vec<u8>>],
        )
        .expect("insert nulls");
        let rows = conn
            .query_map("SELECT a, b, c, d FROM t ORDER BY rowid", params![], |r| {
                Ok((
                    r.get::<Option<i64>>(0)?,
                    r.get::<Option<f64>>(1)?,
                    r.get::<Option<String>>(2)?,
                    r.get::<Option<Vec<u8>>>(3)?,
                ))
            })
            .expect("rows");
        assert_eq!(
            rows,
            vec![
                (Some(7), Some(0.5), Some("x".into()), Some(vec![1, 2])),
                (None, None, None, None)
            ]
        );
        let none = conn
            .query_opt("SELECT a FROM t WHERE a = ?1", params![99i64], |r| {
                r.get::<i64>(0)
            })
            .expect("query");
        assert_eq!(none, None);
        let failed = conn.transaction(|c| {
            c.execute("DELETE FROM t", params![])?;
            Err::<(), _>(StoreError::Invalid("undo".into()))
        });
        assert!(failed.is_err());
        let count = conn
            .query_row("SELECT count(*) FROM t", params![], |r| r.get::<i64>(0))
            .expect("count");
        assert_eq!(count, 2, "the failed transaction was rolled back");
    }
}
