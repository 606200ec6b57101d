//! API keys: `fdk_` and 48 random hex digits, shown once at creation; only their SHA-256 is stored.

use super::db::{params, Conn};
use fleetdeck_proto::{KeyCreated, KeyInfo, Role};
use rand::RngCore;
use sha2::{Digest, Sha256};

use super::StoreError;
use crate::config::valid_name;

/// Who a request's key belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    /// Never reused: a name can be, after its key was deleted.
    pub id: i64,
    pub name: String,
    pub role: Role,
}

fn digest(key: &str) -> Vec<u8> {
    Sha256::digest(key.as_bytes()).to_vec()
}

/// Creates a key named `name` with `role`; the answer holds the key itself, the only time it exists.
pub fn create(conn: &Conn, name: &str, role: Role, now_ms: u64) -> Result<KeyCreated, StoreError> {
    if !valid_name(name) {
        return Err(StoreError::Invalid(format!(
            "key name {name:?}: use 1-64 letters, digits, '.', '_' or '-', starting with a letter or digit"
        )));
    }
    let mut secret = [0u8; 24];
    rand::rng().fill_bytes(&mut secret);
    let key = format!(
        "fdk_{}",
        secret
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<String>()
    );
    let inserted = conn.execute(
        "INSERT INTO api_keys (name, role, hash, created_ms) VALUES (?1, ?2, ?3, ?4)
         ON CONFLICT (name) DO NOTHING",
        params![name, role.as_str(), digest(&key), now_ms as i64],
    )?;
    if inserted == 0 {
        return Err(StoreError::Invalid(format!(
            "a key named {name:?} exists already: choose another name, or delete it first"
        )));
    }
    Ok(KeyCreated {
        name: name.to_owned(),
        role,
        key,
    })
}

/// The caller a presented key belongs to, if any. The lookup is by the key's digest, so no
/// comparison ever runs over the key itself.
pub fn lookup(conn: &Conn, key: &str, now_ms: u64) -> Result<Option<Caller>, StoreError> {
    let hash = digest(key);
    let found: Option<(i64, String, String, Option<i64>)> = conn.query_opt(
        "SELECT id, name, role, last_used_ms FROM api_keys WHERE hash = ?1",
        params![hash],
        |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
    )?;
    let Some((id, name, role, last_used)) = found else {
        return Ok(None);
    };
    // Last use is kept to the minute, so most requests do not write.
    if last_used.is_none_or(|t| now_ms as i64 - t > 60_000) {
        conn.execute(
            "UPDATE api_keys SET last_used_ms = ?2 WHERE id = ?1",
            params![id, now_ms as i64],
        )?;
    }
    Ok(Role::parse(&role).map(|role| Caller { id, name, role }))
}

pub fn list(conn: &Conn) -> Result<Vec<KeyInfo>, StoreError> {
    let rows = conn.query_map(
        "SELECT id, name, role, created_ms, last_used_ms FROM api_keys ORDER BY name",
        params![],
        |r| {
            Ok((
                r.get::<i64>(0)?,
                r.get::<String>(1)?,
                r.get::<String>(2)?,
                r.get::<i64>(3)?,
                r.get::<Option<i64>>(4)?,
            ))
        },
    )?;
    let mut out = Vec::new();
    for (id, name, role, created, used) in rows {
        if let Some(role) = Role::parse(&role) {
            out.push(KeyInfo {
                id,
                name,
                role,
                created_unix_ms: created as u64,
                last_used_unix_ms: used.map(|u| u as u64),
            });
        }
    }
    Ok(out)
}

/// Whether the key `id` exists (it was not deleted).
pub fn exists(conn: &Conn, id: i64) -> Result<bool, StoreError> {
    Ok(conn
        .query_opt("SELECT 1 FROM api_keys WHERE id = ?1", params![id], |_| {
            Ok(())
        })?
        .is_some())
}

/// Deletes a key; whether it existed.
pub fn delete(conn: &Conn, name: &str) -> Result<bool, StoreError> {
    Ok(conn.execute("DELETE FROM api_keys WHERE name = ?1", params![name])? > 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::store::db::testing::each_backend;

    #[test]
    fn created_keys_are_found_by_their_key_only() {
        each_backend(created_keys_are_found_by_their_key_only_on);
    }

    fn created_keys_are_found_by_their_key_only_on(conn: &Conn) {
        let k = create(conn, "ops", Role::Operator, 1).expect("create");
        assert!(k.key.starts_with("fdk_") && k.key.len() == 52, "{}", k.key);
        let caller = lookup(conn, &k.key, 2).expect("lookup").expect("found");
        assert_eq!((caller.name.as_str(), caller.role), ("ops", Role::Operator));
        assert!(exists(conn, caller.id).expect("exists"));
        assert_eq!(lookup(conn, "fdk_wrong", 2).expect("lookup"), None);
        // Only the digest is stored.
        let stored: Vec<u8> = conn
            .query_row("SELECT hash FROM api_keys", params![], |r| r.get(0))
            .expect("hash");
        assert_ne!(stored, k.key.as_bytes());
        assert_eq!(stored.len(), 32);
        let dup = create(conn, "ops", Role::Admin, 3).expect_err("duplicate");
        assert!(dup.to_string().contains("exists already"), "{dup}");
        assert!(create(conn, "no spaces", Role::Admin, 3).is_err());
        assert!(delete(conn, "ops").expect("delete"));
        assert_eq!(lookup(conn, &k.key, 4).expect("lookup"), None);
        assert!(!exists(conn, caller.id).expect("exists"));
        // The name can be taken again; the id cannot (AUTOINCREMENT), so the audit and the
        // revocation of streams tell the two keys apart.
        let again = create(conn, "ops", Role::Operator, 5).expect("create again");
        let second = lookup(conn, &again.key, 6).expect("lookup").expect("found");
        assert!(second.id > caller.id, "{} reused {}", second.id, caller.id);
    }
}
