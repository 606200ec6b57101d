//! `copy-from-sqlite`: moves a collector's whole SQLite history into an empty PostgreSQL
//! database, for a fleet that outgrew one file (docs/operations.md, "Moving to PostgreSQL").
//!
//! - The source is read in one read transaction: a consistent snapshot, even of a file a
//!   collector still writes (what it writes after the snapshot is not copied: stop it first).
//! - The target is written in one transaction, by binary `COPY` table by table: all or nothing.
//! - Each table's id sequence is moved past the copied ids and past any id SQLite handed out
//!   and deleted since (`sqlite_sequence`: API key ids are never reused), so new rows collide with
//!   none and no new key takes a revoked key's id.
//! - Every table's rows written are compared with the snapshot's count before the commit.
//!
//! Refused, with no data written (the schema is made first, as a collector's start would): a
//! source that is not a collector database of this version or fails `quick_check`; a source
//! table or column this copy has no place for (it would be lost); a target a collector leads on
//! (the copy holds the leader lock for its transaction, so none starts leading meanwhile); a
//! target that already holds data. The caller keeps a collector off the source
//! (`care::copy_from_sqlite` holds its run lock).

use std::collections::HashMap;
use std::path::Path;

use postgres::binary_copy::BinaryCopyInWriter;
use postgres::types::{ToSql, Type};
use rusqlite::types::ValueRef;

use super::db::{Conn, PgTarget};
use super::StoreError;

/// Every table of the schema, parents before the tables whose foreign keys name them.
pub const TABLES: &[&str] = &[
    "hosts",
    "agent_instances",
    "apps",
    "aspects",
    "samples_raw",
    "samples_1m",
    "samples_1h",
    "app_samples_raw",
    "app_samples_1m",
    "app_samples_1h",
    "rollup_state",
    "status_history",
    "events",
    "alerts",
    "alert_deliveries",
    "silences",
    "api_keys",
    "audit",
];

/// Tables the schema's migrations fill themselves: emptied in the target before the copy.
const SEEDED: &[&str] = &["rollup_state"];

/// What was copied: each table and its rows.
pub type Copied = Vec<(&'static str, u64)>;

fn invalid(message: String) -> StoreError {
    StoreError::Invalid(message)
}

/// Copies the SQLite database at `source` into `target` (see the module's documentation).
pub fn sqlite_to_postgres(source: &Path, target: &PgTarget) -> Result<Copied, StoreError> {
    let src = open_source(source)?;
    super::off_runtime(move || {
        let mut conn = target.connect()?;
        super::migrate::apply(&mut conn)?;
        let Conn::Postgres(pg) = &mut conn else {
            unreachable!("a PostgreSQL target connects to PostgreSQL")
        };
        write_target(&src, pg.get_mut().client(), source, target)
    })
}

/// Opens the source read-only and checks it is a whole collector database of this version.
fn open_source(source: &Path) -> Result<rusqlite::Connection, StoreError> {
    if !source.is_file() {
        return Err(invalid(format!(
            "{} is not a file: give the SQLite database to copy (the old `database` path)",
            source.display()
        )));
    }
    let src = rusqlite::Connection::open_with_flags(
        source,
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    src.busy_timeout(std::time::Duration::from_secs(10))?;
    let version: i64 = src
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .map_err(|e| {
            invalid(format!(
                "{} is not an SQLite database ({e}): give the collector's database file",
                source.display()
            ))
        })?;
    if version != super::migrate::VERSION {
        return Err(invalid(format!(
            "{} is at schema version {version}; this collector's is {}: {}",
            source.display(),
            super::migrate::VERSION,
            if version < super::migrate::VERSION {
                "start this collector on the file once (it upgrades it), stop it, then copy"
            } else {
                "copy it with the newer collector that wrote it"
            }
        )));
    }
    let check: String = src.query_row("PRAGMA quick_check", [], |r| r.get(0))?;
    if check != "ok" {
        return Err(invalid(format!(
            "{} is damaged (quick_check: {check}): restore a backup, then copy that",
            source.display()
        )));
    }
    let mut tables: Vec<String> = {
        let mut stmt = src.prepare(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'",
        )?;
        let rows = stmt.query_map([], |r| r.get(0))?;
        rows.collect::<Result<_, _>>()?
    };
    tables.retain(|t| !TABLES.contains(&t.as_str()));
    if !tables.is_empty() {
        return Err(invalid(format!(
            "{} holds tables this copy does not know ({}): nothing copied, as they would be lost",
            source.display(),
            tables.join(", ")
        )));
    }
    Ok(src)
}

/// Quotes an identifier for PostgreSQL (they come from the schema, quoted all the same).
fn ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

fn write_target(
    src: &rusqlite::Connection,
    client: &mut postgres::Client,
    source: &Path,
    target: &PgTarget,
) -> Result<Copied, StoreError> {
    // One snapshot of the source for every table.
    src.execute_batch("BEGIN")?;
    let copied = (|| {
        let mut tx = client.transaction()?;
        // The leader lock, for this transaction only (advisory locks are per database): refused
        // while a collector leads here, and none starts leading before the copy commits.
        let free: bool = tx
            .query_one(
                "SELECT pg_try_advisory_xact_lock($1)",
                &[&super::db::leader::LEADER_LOCK],
            )?
            .get(0);
        if !free {
            return Err(invalid(format!(
                "a collector is running on {target}: stop every collector using that database, then copy"
            )));
        }
        for table in TABLES.iter().filter(|t| !SEEDED.contains(t)) {
            let held: bool = tx
                .query_one(
                    &format!("SELECT EXISTS (SELECT 1 FROM {})", ident(table)),
                    &[],
                )?
                .get(0);
            if held {
                return Err(invalid(format!(
                    "{target} already holds data (table {table} has rows): copy into a new, empty \
                     database (createdb), never over one in use"
                )));
            }
        }
        for table in SEEDED {
            tx.batch_execute(&format!("DELETE FROM {}", ident(table)))?;
        }
        let mut copied = Vec::with_capacity(TABLES.len());
        for table in TABLES {
            copied.push((*table, copy_table(src, &mut tx, table, source)?));
        }
        move_sequences(&mut tx, &handed_out(src)?)?;
        tx.commit()?;
        Ok(copied)
    })();
    let _ = src.execute_batch("COMMIT");
    copied
}

/// The largest id SQLite ever handed out per `AUTOINCREMENT` table, deleted rows included.
fn handed_out(src: &rusqlite::Connection) -> Result<HashMap<String, i64>, StoreError> {
    let exists: bool = src.query_row(
        "SELECT count(*) > 0 FROM sqlite_master WHERE type = 'table' AND name = 'sqlite_sequence'",
        [],
        |r| r.get(0),
    )?;
    if !exists {
        return Ok(HashMap::new());
    }
    let mut stmt = src.prepare("SELECT name, seq FROM sqlite_sequence")?;
    let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// Copies one table (every column the source has, each of which the target must have); the
/// number of rows.
fn copy_table(
    src: &rusqlite::Connection,
    tx: &mut postgres::Transaction<'_>,
    table: &str,
    source: &Path,
) -> Result<u64, StoreError> {
    let target_columns: Vec<(String, String)> = tx
        .query(
            "SELECT column_name::text, data_type::text FROM information_schema.columns
             WHERE table_schema = current_schema() AND table_name = $1",
            &[&table],
        )?
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    let source_columns: Vec<String> = {
        let mut stmt = src.prepare(&format!("PRAGMA table_info({table})"))?;
        let rows = stmt.query_map([], |r| r.get(1))?;
        rows.collect::<Result<_, _>>()?
    };
    // A table SQLite keys by its implicit rowid that PostgreSQL names (`alert_deliveries`): the
    // ids, and so their order, are kept.
    let mut source_columns = source_columns;
    if !source_columns.iter().any(|c| c == "rowid")
        && target_columns.iter().any(|(c, _)| c == "rowid")
    {
        source_columns.insert(0, "rowid".to_owned());
    }
    let mut types = Vec::with_capacity(source_columns.len());
    for column in &source_columns {
        let Some((_, data_type)) = target_columns.iter().find(|(c, _)| c == column) else {
            return Err(invalid(format!(
                "column {table}.{column} of {} has no place in PostgreSQL's schema: nothing copied",
                source.display()
            )));
        };
        types.push(pg_type(data_type).ok_or_else(|| {
            invalid(format!(
                "column {table}.{column} is {data_type} in PostgreSQL, which this copy does not write"
            ))
        })?);
    }
    let list = source_columns
        .iter()
        .map(|c| ident(c))
        .collect::<Vec<_>>()
        .join(", ");
    let sink = tx.copy_in(&format!(
        "COPY {} ({list}) FROM STDIN (FORMAT binary)",
        ident(table)
    ))?;
    let mut writer = BinaryCopyInWriter::new(sink, &types);
    let mut stmt = src.prepare(&format!(
        "SELECT {} FROM {table}",
        source_columns.join(", ")
    ))?;
    let mut rows = stmt.query([])?;
    let mut row_number = 0u64;
    while let Some(row) = rows.next()? {
        row_number += 1;
        let mut values: Vec<Box<dyn ToSql + Sync>> = Vec::with_capacity(types.len());
        for (i, ty) in types.iter().enumerate() {
            values.push(convert(row.get_ref(i)?, ty).map_err(|why| {
                invalid(format!(
                    "{table}.{} in row {row_number}: {why}; nothing copied",
                    source_columns[i]
                ))
            })?);
        }
        let refs: Vec<&(dyn ToSql + Sync)> = values.iter().map(|v| v.as_ref()).collect();
        writer.write(&refs)?;
    }
    drop(rows);
    let written = writer.finish()?;
    let snapshot: i64 =
        src.query_row(&format!("SELECT count(*) FROM {table}"), [], |r| r.get(0))?;
    if written != snapshot as u64 {
        return Err(invalid(format!(
            "table {table}: {written} rows written of the {snapshot} the snapshot holds; nothing copied"
        )));
    }
    Ok(written)
}

fn pg_type(data_type: &str) -> Option<Type> {
    Some(match data_type {
        "bigint" => Type::INT8,
        "integer" => Type::INT4,
        "smallint" => Type::INT2,
        "double precision" => Type::FLOAT8,
        "real" => Type::FLOAT4,
        "text" => Type::TEXT,
        "bytea" => Type::BYTEA,
        "boolean" => Type::BOOL,
        _ => return None,
    })
}

/// One SQLite value as the PostgreSQL column's type takes it.
fn convert(value: ValueRef<'_>, ty: &Type) -> Result<Box<dyn ToSql + Sync>, String> {
    let int = |v: ValueRef<'_>| -> Result<Option<i64>, String> {
        match v {
            ValueRef::Null => Ok(None),
            ValueRef::Integer(i) => Ok(Some(i)),
            ValueRef::Real(f) if f.fract() == 0.0 && f.abs() < 9.0e15 => Ok(Some(f as i64)),
            other => Err(format!("{:?} is not an integer", other.data_type())),
        }
    };
    let narrow = |v: Option<i64>, max: i64| -> Result<Option<i64>, String> {
        match v {
            Some(i) if i.abs() > max => Err(format!("{i} is out of the column's range")),
            v => Ok(v),
        }
    };
    Ok(match *ty {
        Type::INT8 => Box::new(int(value)?),
        Type::INT4 => Box::new(narrow(int(value)?, i64::from(i32::MAX))?.map(|i| i as i32)),
        Type::INT2 => Box::new(narrow(int(value)?, i64::from(i16::MAX))?.map(|i| i as i16)),
        Type::BOOL => Box::new(int(value)?.map(|i| i != 0)),
        Type::FLOAT8 | Type::FLOAT4 => {
            let f = match value {
                ValueRef::Null => None,
                ValueRef::Integer(i) => Some(i as f64),
                ValueRef::Real(f) => Some(f),
                other => return Err(format!("{:?} is not a number", other.data_type())),
            };
            if *ty == Type::FLOAT4 {
                Box::new(f.map(|f| f as f32))
            } else {
                Box::new(f)
            }
        }
        Type::TEXT => Box::new(match value {
            ValueRef::Null => None,
            ValueRef::Text(t) => Some(
                std::str::from_utf8(t)
                    .map_err(|_| "text that is not UTF-8".to_owned())?
                    .to_owned(),
            ),
            ValueRef::Integer(i) => Some(i.to_string()),
            ValueRef::Real(f) => Some(f.to_string()),
            ValueRef::Blob(_) => return Err("a blob where text belongs".into()),
        }),
        Type::BYTEA => Box::new(match value {
            ValueRef::Null => None,
            ValueRef::Blob(b) | ValueRef::Text(b) => Some(b.to_vec()),
            other => return Err(format!("{:?} is not bytes", other.data_type())),
        }),
        _ => return Err(format!("type {ty} is not written by this copy")),
    })
}

/// Moves every id sequence past the largest copied id and past the largest SQLite handed out.
fn move_sequences(
    tx: &mut postgres::Transaction<'_>,
    handed_out: &HashMap<String, i64>,
) -> Result<(), StoreError> {
    let serials: Vec<(String, String)> = tx
        .query(
            "SELECT table_name::text, column_name::text FROM information_schema.columns
             WHERE table_schema = current_schema() AND column_default LIKE 'nextval(%'",
            &[],
        )?
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    for (table, column) in serials {
        let ever = handed_out.get(&table).copied().unwrap_or(0);
        tx.execute(
            &format!(
                "SELECT setval(pg_get_serial_sequence($1, $2),
                               GREATEST(COALESCE((SELECT max({c}) FROM {t}), 0), $3) + 1, false)",
                c = ident(&column),
                t = ident(&table)
            ),
            &[&ident(&table), &column, &ever],
        )?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A table added to the schema without a place in [`TABLES`] would be refused by every copy.
    #[test]
    fn every_table_of_the_schema_is_copied() {
        let mut conn = Conn::Sqlite(rusqlite::Connection::open_in_memory().expect("open"));
        super::super::migrate::apply(&mut conn).expect("migrate");
        let tables: Vec<String> = conn
            .query_map(
                "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name",
                crate::params![],
                |r| r.get(0),
            )
            .expect("tables");
        let mut known: Vec<String> = TABLES.iter().map(|t| t.to_string()).collect();
        known.sort();
        assert_eq!(tables, known);
    }

    #[test]
    fn values_take_the_target_columns_type_or_say_why_not() {
        assert!(convert(ValueRef::Integer(3), &Type::INT8).is_ok());
        assert!(convert(ValueRef::Real(2.0), &Type::INT8).is_ok());
        assert!(convert(ValueRef::Real(2.5), &Type::INT8).is_err());
        assert!(convert(ValueRef::Integer(1 << 40), &Type::INT4).is_err());
        assert!(convert(ValueRef::Text(b"x"), &Type::FLOAT8).is_err());
        assert!(convert(ValueRef::Text(&[0xff]), &Type::TEXT).is_err());
        assert!(convert(ValueRef::Null, &Type::TEXT).is_ok());
        assert!(convert(ValueRef::Blob(b"k"), &Type::BYTEA).is_ok());
    }
}
