//! Keeping a collector for years, at the command line on its host: `check-config`, `backup PATH`
//! (SQLite's online backup API: a consistent copy while the collector runs), `restore PATH` (only
//! while it is stopped), and `keys list|delete`. The running collector holds an exclusive lock on
//! `<database>.lock` ([`RunLock`]): a second collector on the same database, or a restore under a
//! running one, is refused with what to do.

use std::fs::{File, OpenOptions};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use rusqlite::{Connection, OpenFlags};

use crate::config::Config;
use crate::store::audit::{self, Who};
use crate::store::{keys, now_ms, Store};

/// The lock a running collector holds on its database, released when it ends (or dies).
#[derive(Debug)]
pub struct RunLock {
    _file: File,
}

fn lock_path(database: &Path) -> PathBuf {
    let mut p = database.as_os_str().to_owned();
    p.push(".lock");
    PathBuf::from(p)
}

impl RunLock {
    /// Takes the lock of `database`, or says who holds it.
    pub fn take(database: &Path) -> anyhow::Result<Self> {
        let path = lock_path(database);
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .mode(0o600)
            .open(&path)
            .with_context(|| {
                format!(
                    "cannot open the lock file {}; check the database directory's owner and permissions",
                    path.display()
                )
            })?;
        match file.try_lock() {
            Ok(()) => {
                // Who holds it, for `agents add` to signal (a reload) and for the operator.
                use std::io::Write;
                let mut f = &file;
                let _ = file
                    .set_len(0)
                    .and_then(|()| writeln!(f, "{}", std::process::id()));
                Ok(Self { _file: file })
            }
            Err(std::fs::TryLockError::WouldBlock) => bail!(
                "another fleetdeck-collector runs on the database {} (it holds {}); stop it first \
                 (systemctl stop fleetdeck-collector), or give this one its own database",
                database.display(),
                path.display()
            ),
            Err(std::fs::TryLockError::Error(e)) => {
                Err(e).with_context(|| format!("cannot lock {}", path.display()))
            }
        }
    }
}

/// `check-config`: the file is read exactly as at start (token files and all); what it holds.
pub fn check_config(config_path: &Path) -> anyhow::Result<String> {
    let c = Config::load(config_path)?;
    let listen: Vec<String> = c
        .listen
        .iter()
        .map(|l| match l {
            fleetdeck_daemon::listen::ListenSpec::Addr(a) => a.to_string(),
            fleetdeck_daemon::listen::ListenSpec::Tailscale { port } => {
                format!("the tailnet's addresses, port {port}")
            }
        })
        .collect();
    Ok(format!(
        "{} is valid: listens on {}{}; database {}; {} agents, polled every {}; {} channels, {} \
         routes, {} threshold rules, {} maintenance windows",
        config_path.display(),
        if listen.is_empty() {
            "nothing".to_owned()
        } else {
            listen.join(", ")
        },
        if c.tls.is_some() { " (HTTPS)" } else { "" },
        c.database,
        c.agents.len(),
        humantime::format_duration(c.poll_interval),
        c.channels.len(),
        c.routes.len(),
        c.rules.len(),
        c.maintenance.len(),
    ))
}

/// The SQLite file `what` works on; on PostgreSQL, what to use instead.
fn sqlite_only<'a>(config: &'a Config, what: &str) -> anyhow::Result<&'a Path> {
    config.database.sqlite_path().with_context(|| {
        format!(
            "`{what}` copies an SQLite file; the database is PostgreSQL ({}): back it up and \
             restore it with pg_dump and pg_restore, or the server's own backups",
            config.database
        )
    })
}

/// What a database holds, for a person: its schema version and a few counts.
fn describe(conn: &Connection) -> anyhow::Result<String> {
    let version: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    let count = |table: &str| -> anyhow::Result<i64> {
        Ok(conn.query_row(&format!("SELECT count(*) FROM {table}"), [], |r| r.get(0))?)
    };
    Ok(format!(
        "schema version {version}, {} hosts, {} raw samples, {} events, {} alerts, {} API keys",
        count("hosts")?,
        count("samples_raw")?,
        count("events")?,
        count("alerts")?,
        count("api_keys")?
    ))
}

/// Runs `PRAGMA integrity_check` on `conn`: `Ok` or what is wrong.
fn integrity(conn: &Connection) -> anyhow::Result<()> {
    let mut stmt = conn.prepare("PRAGMA integrity_check")?;
    let problems: Vec<String> = stmt
        .query_map([], |r| r.get::<_, String>(0))?
        .collect::<Result<_, _>>()?;
    if problems != ["ok"] {
        bail!("integrity_check: {}", problems.join("; "));
    }
    Ok(())
}

/// `copy-from-sqlite PATH`: the SQLite database at PATH, whole, into the PostgreSQL database
/// of the config (empty, no collector running on it); see [`crate::store::copy`].
pub fn copy_from_sqlite(config_path: &Path, source: &Path) -> anyhow::Result<String> {
    let config = Config::load(config_path)?;
    let crate::store::Target::Postgres(target) = &config.database else {
        bail!(
            "copy-from-sqlite writes into PostgreSQL, but `database` in {} is the SQLite file {}: \
             set `database = \"postgres://USER@HOST/DATABASE\"` there first (the SQLite file to \
             copy is this command's argument)",
            config_path.display(),
            config.database
        );
    };
    if !source.is_file() {
        bail!(
            "{} is not a file: give the SQLite database to copy (the old `database` path)",
            source.display()
        );
    }
    // No collector may write the source meanwhile: what it wrote after the snapshot would be lost.
    let _source_lock = RunLock::take(source)?;
    let started = Instant::now();
    let copied = crate::store::copy::sqlite_to_postgres(source, target)
        .with_context(|| format!("nothing was copied from {}", source.display()))?;
    let rows: u64 = copied.iter().map(|(_, n)| n).sum();
    let tables = copied
        .iter()
        .filter(|(_, n)| *n > 0)
        .map(|(t, n)| format!("{t} {n}"))
        .collect::<Vec<_>>()
        .join(", ");
    Ok(format!(
        "copied {} into {target}: {rows} rows in {:.1} s ({tables}); start the collector on \
         {} now, and keep the SQLite file until you have looked",
        source.display(),
        started.elapsed().as_secs_f64(),
        config_path.display()
    ))
}

/// `backup PATH`: a consistent copy of the database, taken while the collector runs (one read
/// transaction: writers go on), checked, then renamed into place with mode 0600. An existing
/// PATH is never overwritten.
pub fn backup(config_path: &Path, dest: &Path) -> anyhow::Result<String> {
    let config = Config::load(config_path)?;
    let database = sqlite_only(&config, "backup")?;
    if dest.exists() {
        bail!(
            "{} exists; give a new path (a backup never overwrites a file)",
            dest.display()
        );
    }
    if !database.exists() {
        bail!(
            "the database {} does not exist (yet): there is nothing to back up",
            database.display()
        );
    }
    let src = Connection::open_with_flags(
        database,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .with_context(|| format!("cannot open the database {}", database.display()))?;
    src.busy_timeout(Duration::from_secs(10))?;
    let partial = {
        let mut p = dest.as_os_str().to_owned();
        p.push(".partial");
        PathBuf::from(p)
    };
    let _ = std::fs::remove_file(&partial);
    // Created private before SQLite writes a byte of it.
    OpenOptions::new()
        .create_new(true)
        .write(true)
        .mode(0o600)
        .open(&partial)
        .with_context(|| format!("cannot create {}", partial.display()))?;
    let result = (|| -> anyhow::Result<String> {
        let mut dst = Connection::open(&partial)?;
        {
            let backup = rusqlite::backup::Backup::new(&src, &mut dst)?;
            let started = Instant::now();
            // All pages in one step: one read transaction, so the copy is one moment's database.
            loop {
                match backup.step(-1)? {
                    rusqlite::backup::StepResult::Done => break,
                    _ if started.elapsed() > Duration::from_secs(60) => {
                        bail!("the database stayed locked for a minute; try again")
                    }
                    _ => std::thread::sleep(Duration::from_millis(100)),
                }
            }
        }
        integrity(&dst).context("the copy does not check out")?;
        let what = describe(&dst)?;
        dst.close().map_err(|(_, e)| e)?;
        Ok(what)
    })();
    let what = match result {
        Ok(what) => what,
        Err(e) => {
            let _ = std::fs::remove_file(&partial);
            return Err(e.context(format!("backup of {} failed", database.display())));
        }
    };
    std::fs::rename(&partial, dest)
        .with_context(|| format!("cannot move the backup to {}", dest.display()))?;
    if let Some(dir) = dest.parent().filter(|d| !d.as_os_str().is_empty()) {
        File::open(dir).and_then(|d| d.sync_all()).ok();
    }
    let bytes = std::fs::metadata(dest).map(|m| m.len()).unwrap_or(0);
    Ok(format!(
        "backed up {} to {} ({bytes} bytes, checked): {what}",
        database.display(),
        dest.display()
    ))
}

/// The PID of the collector running on `database` (the holder of its lock), if one runs.
pub fn running_pid(database: &Path) -> anyhow::Result<Option<u32>> {
    let path = lock_path(database);
    let file = match File::open(&path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e).with_context(|| format!("cannot open {}", path.display())),
    };
    match file.try_lock_shared() {
        // Nobody holds it: no collector runs (the shared lock goes with the file).
        Ok(()) => Ok(None),
        Err(std::fs::TryLockError::WouldBlock) => {
            let text = std::fs::read_to_string(&path)?;
            let pid = text.trim().parse().with_context(|| {
                format!(
                    "{} is held but names no PID; run systemctl reload fleetdeck-collector",
                    path.display()
                )
            })?;
            Ok(Some(pid))
        }
        Err(std::fs::TryLockError::Error(e)) => {
            Err(e).with_context(|| format!("cannot look at {}", path.display()))
        }
    }
}

/// `restore PATH`: replaces the database with a backup, only while no collector runs on it. The
/// backup is checked first (integrity, and a schema this collector knows); the database it
/// replaces is kept beside it as `<database>.before-restore-<time>`.
pub fn restore(config_path: &Path, from: &Path) -> anyhow::Result<String> {
    let config = Config::load(config_path)?;
    let database = sqlite_only(&config, "restore")?.to_owned();
    let backup = Connection::open_with_flags(from, OpenFlags::SQLITE_OPEN_READ_ONLY)
        .with_context(|| format!("cannot open the backup {}", from.display()))?;
    integrity(&backup).with_context(|| {
        format!(
            "the backup {} is damaged; restore an older one",
            from.display()
        )
    })?;
    let version: i64 = backup.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    let known = crate::store::migrate::VERSION;
    if version > known {
        bail!(
            "the backup {} has schema version {version}, made by a newer collector (this one knows \
             {known}); restore it with that version",
            from.display()
        );
    }
    let what = describe(&backup)?;
    drop(backup);
    let _lock = RunLock::take(&database).context(
        "restore replaces the database under the collector: stop the collector, then restore",
    )?;
    let aside = {
        let mut p = database.as_os_str().to_owned();
        p.push(format!(".before-restore-{}", now_ms()));
        PathBuf::from(p)
    };
    let mut kept = Vec::new();
    for suffix in ["", "-wal", "-shm"] {
        let mut file = database.as_os_str().to_owned();
        file.push(suffix);
        let file = PathBuf::from(file);
        if file.exists() {
            let mut to = aside.as_os_str().to_owned();
            to.push(suffix);
            std::fs::rename(&file, &to)
                .with_context(|| format!("cannot move {} aside", file.display()))?;
            kept.push(PathBuf::from(to));
        }
    }
    let partial = {
        let mut p = database.as_os_str().to_owned();
        p.push(".restoring");
        PathBuf::from(p)
    };
    std::fs::copy(from, &partial)
        .with_context(|| format!("cannot copy {} to {}", from.display(), partial.display()))?;
    std::fs::set_permissions(&partial, std::fs::Permissions::from_mode(0o600))?;
    File::open(&partial)?.sync_all()?;
    std::fs::rename(&partial, &database)?;
    // Opened once as the collector will: migrated to this version if the backup is older.
    drop(Store::open(&crate::store::Target::Sqlite(
        database.clone(),
    ))?);
    owned_like_state_dir(&database)?;
    Ok(format!(
        "restored {} from {} ({what}); the database it replaced is kept as {} (delete it once the \
         collector runs well); start the collector now",
        database.display(),
        from.display(),
        kept.first().unwrap_or(&aside).display()
    ))
}

/// The database (and its WAL files) owned as the directory holding it: a restore run as root
/// (`sudo fleetdeck-collector restore`) leaves no file the collector's own user cannot open.
fn owned_like_state_dir(database: &Path) -> anyhow::Result<()> {
    use std::os::unix::fs::MetadataExt;
    let dir = database.parent().unwrap_or(Path::new("."));
    let owner = std::fs::metadata(dir).with_context(|| format!("cannot read {}", dir.display()))?;
    for suffix in ["", "-wal", "-shm"] {
        let mut file = database.as_os_str().to_owned();
        file.push(suffix);
        let file = PathBuf::from(file);
        let Ok(meta) = std::fs::metadata(&file) else {
            continue;
        };
        if (meta.uid(), meta.gid()) != (owner.uid(), owner.gid()) {
            std::os::unix::fs::chown(&file, Some(owner.uid()), Some(owner.gid())).with_context(
                || {
                    format!(
                        "cannot give {} the owner of {} (the collector's user): run restore as \
                         root or as that user",
                        file.display(),
                        dir.display()
                    )
                },
            )?;
        }
    }
    Ok(())
}

/// `keys list`: name, role, when made, when last used; never a key.
pub fn keys_list(config_path: &Path) -> anyhow::Result<String> {
    let config = Config::load(config_path)?;
    let store = Store::open(&config.database)?;
    let all = store.with_conn_blocking(|conn| keys::list(conn))?;
    if all.is_empty() {
        return Ok(
            "no API key; make one with: fleetdeck-collector --config collector.toml keys create --name NAME --role admin"
                .to_owned(),
        );
    }
    let now = now_ms();
    let ago = |ms: u64| {
        let secs = now.saturating_sub(ms) / 1000;
        format!(
            "{} ago",
            humantime::format_duration(Duration::from_secs(secs))
        )
    };
    Ok(all
        .iter()
        .map(|k| {
            format!(
                "{}\t{}\tmade {}\t{}",
                k.name,
                k.role.as_str(),
                ago(k.created_unix_ms),
                k.last_used_unix_ms
                    .map_or_else(|| "never used".to_owned(), |u| format!("used {}", ago(u)))
            )
        })
        .collect::<Vec<_>>()
        .join("\n"))
}

/// `keys delete NAME`: audited; the running collector refuses the key from its next request and
/// ends its open streams within [`crate::api::KEY_RECHECK`].
pub fn keys_delete(config_path: &Path, name: &str) -> anyhow::Result<String> {
    let config = Config::load(config_path)?;
    let store = Store::open(&config.database)?;
    let deleted = store.with_conn_blocking(|conn| {
        let deleted = keys::delete(conn, name)?;
        audit::record(
            conn,
            &Who::command_line(),
            "key.delete",
            &format!("key {name}"),
            if deleted { "ok" } else { "no such key" },
            now_ms(),
        )?;
        Ok(deleted)
    })?;
    if !deleted {
        bail!("no API key named {name:?}; `keys list` shows them");
    }
    Ok(format!("deleted API key {name:?}"))
}
