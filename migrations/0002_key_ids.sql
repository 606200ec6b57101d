-- Keys get ids that are never reused, and the audit names the key by id as well as by name:
-- a name can be taken again once its key is deleted, so a name alone does not say which key
-- acted. AUTOINCREMENT keeps SQLite from handing a deleted key's id to the next key, which
-- also lets a deleted key's open streams be ended by id (collector/src/api/revoke.rs).
CREATE TABLE api_keys_v2 (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    name         TEXT NOT NULL UNIQUE,
    role         TEXT NOT NULL,
    hash         BLOB NOT NULL UNIQUE,   -- SHA-256 of the key
    created_ms   INTEGER NOT NULL,
    last_used_ms INTEGER
);
INSERT INTO api_keys_v2 (id, name, role, hash, created_ms, last_used_ms)
    SELECT id, name, role, hash, created_ms, last_used_ms FROM api_keys;
DROP TABLE api_keys;
ALTER TABLE api_keys_v2 RENAME TO api_keys;

-- NULL for what was done at the command line and for entries written before this migration.
ALTER TABLE audit ADD COLUMN key_id INTEGER;
