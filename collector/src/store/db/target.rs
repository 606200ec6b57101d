//! Where the store connects: a PostgreSQL URL and its password (a password file or a libpq
//! passfile, never the URL), and errors that say what to do.

use std::cell::RefCell;

use super::{Conn, PgConn};
use crate::store::StoreError;

/// A PostgreSQL database to connect to: the URL's settings, the password read from its file.
#[derive(Clone)]
pub struct PgTarget {
    pub(crate) config: postgres::Config,
    /// The URL as written minus any password: for messages.
    shown: String,
}

impl std::fmt::Debug for PgTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.shown)
    }
}

impl std::fmt::Display for PgTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.shown)
    }
}

/// A PostgreSQL error with the server's message and detail, or the cause under a connection
/// error, which `Display` leaves out.
pub fn postgres_error(e: &postgres::Error) -> String {
    if let Some(db) = e.as_db_error() {
        return match db.detail() {
            Some(detail) => format!("{} ({detail})", db.message()),
            None => db.message().to_owned(),
        };
    }
    match std::error::Error::source(e) {
        Some(cause) => format!("{e}: {cause}"),
        None => e.to_string(),
    }
}

/// Whether `database` names a PostgreSQL server rather than an SQLite file.
pub fn is_postgres_url(database: &str) -> bool {
    database.starts_with("postgres://") || database.starts_with("postgresql://")
}

impl PgTarget {
    /// `postgres://USER@HOST:PORT/DB[?passfile=PATH]`: the password comes from `password_file`
    /// (its first line) or the URL's `passfile` (a libpq `.pgpass`), never from the URL itself, so
    /// it stays out of the config and of every message that shows the URL.
    pub fn parse(url: &str, password_file: Option<&std::path::Path>) -> Result<Self, String> {
        let mut parsed = url::Url::parse(url).map_err(|e| {
            format!(
                "`database` {url:?} is not a URL ({e}): write postgres://USER@HOST:PORT/DATABASE"
            )
        })?;
        if parsed.password().is_some() {
            let _ = parsed.set_password(None);
            return Err(format!(
                "`database` {parsed} holds a password: remove it, put it in a file of mode 0600 and name it with `database_password_file`, or use the URL's passfile=PATH"
            ));
        }
        let mut passfile = None;
        let rest: Vec<(String, String)> = parsed
            .query_pairs()
            .filter_map(|(k, v)| {
                if k == "passfile" {
                    passfile = Some(std::path::PathBuf::from(v.into_owned()));
                    None
                } else {
                    Some((k.into_owned(), v.into_owned()))
                }
            })
            .collect();
        parsed.set_query(None);
        if !rest.is_empty() {
            parsed.query_pairs_mut().extend_pairs(rest);
        }
        let shown = parsed.to_string();
        let mut config: postgres::Config = shown
            .parse()
            .map_err(|e| format!("`database` {shown}: {e}"))?;
        if config.get_dbname().is_none() || config.get_user().is_none() {
            return Err(format!(
                "`database` {shown} names no user or database: write postgres://USER@HOST:PORT/DATABASE"
            ));
        }
        let password = match (password_file, passfile) {
            (Some(_), Some(_)) => {
                return Err(format!(
                    "`database` {shown}: give the password in `database_password_file` or the URL's passfile, not both"
                ))
            }
            (Some(file), None) => Some(
                crate::config::channels::read_password(file)
                    .map_err(|e| format!("`database_password_file`: {e}"))?,
            ),
            (None, Some(file)) => pgpass_lookup(&file, &config)?,
            (None, None) => None,
        };
        if let Some(password) = password {
            config.password(password);
        }
        Ok(Self { config, shown })
    }

    /// Sessions of a collector that shares its database with standbys: one left idle inside a
    /// transaction for `lease` is ended by the server, so a leader cut off from the database
    /// cannot keep a lock a new leader waits for (see [`super::leader`]).
    pub fn for_cluster(mut self, lease: std::time::Duration) -> Self {
        self.config.options(&format!(
            "-c idle_in_transaction_session_timeout={}",
            lease.as_millis()
        ));
        self
    }

    pub fn connect(&self) -> Result<Conn, StoreError> {
        let client = self.config.connect(postgres::NoTls).map_err(|e| {
            let hint = match e.code() {
                Some(&postgres::error::SqlState::INVALID_PASSWORD) => {
                    "; check the password in `database_password_file` (or the passfile)"
                }
                Some(&postgres::error::SqlState::INVALID_CATALOG_NAME) => {
                    "; create the database (createdb) or fix its name in the URL"
                }
                Some(_) => "",
                None => "; is PostgreSQL running there and reachable from this host?",
            };
            StoreError::Unavailable(format!(
                "database {}: {}{hint}",
                self.shown,
                postgres_error(&e)
            ))
        })?;
        Ok(Conn::Postgres(Box::new(RefCell::new(PgConn::new(client)))))
    }
}

/// The password of the first line of a libpq password file matching the connection
/// (`host:port:database:user:password`, `*` matches anything, `\:` and `\\` are escapes).
fn pgpass_lookup(
    file: &std::path::Path,
    config: &postgres::Config,
) -> Result<Option<String>, String> {
    let text =
        crate::config::channels::read_password(file).map_err(|e| format!("passfile: {e}"))?;
    let host = match config.get_hosts().first() {
        Some(postgres::config::Host::Tcp(h)) => h.clone(),
        Some(postgres::config::Host::Unix(p)) => p.display().to_string(),
        None => "localhost".to_owned(),
    };
    let port = config
        .get_ports()
        .first()
        .copied()
        .unwrap_or(5432)
        .to_string();
    let want = [
        host.as_str(),
        port.as_str(),
        config.get_dbname().unwrap_or(""),
        config.get_user().unwrap_or(""),
    ];
    for line in text.lines() {
        if line.starts_with('#') || line.trim().is_empty() {
            continue;
        }
        let fields = pgpass_fields(line);
        if fields.len() != 5 {
            continue;
        }
        if fields[..4]
            .iter()
            .zip(want)
            .all(|(field, want)| field == "*" || field == want)
        {
            return Ok(Some(fields[4].clone()));
        }
    }
    Err(format!(
        "passfile {} has no line for {}:{}:{}:{}: add one (host:port:database:user:password)",
        file.display(),
        want[0],
        want[1],
        want[2],
        want[3]
    ))
}

fn pgpass_fields(line: &str) -> Vec<String> {
    let mut fields = vec![String::new()];
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                if let Some(next) = chars.next() {
                    fields.last_mut().expect("one field").push(next);
                }
            }
            ':' => fields.push(String::new()),
            c => fields.last_mut().expect("one field").push(c),
        }
    }
    fields
}
