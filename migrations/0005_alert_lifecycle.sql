-- Issue 15: alerts an operator can live with (history, acknowledge, silences).

-- A problem or flapping alert is open until its subject recovers: resolved_ms is when, and
-- resolved_by the recovery alert's id (a healed crash is resolved by itself when raised).
ALTER TABLE alerts ADD COLUMN resolved_ms INTEGER;
ALTER TABLE alerts ADD COLUMN resolved_by INTEGER;
-- "I'm on it": when, the key's name, an optional note.
ALTER TABLE alerts ADD COLUMN ack_ms INTEGER;
ALTER TABLE alerts ADD COLUMN ack_by TEXT;
ALTER TABLE alerts ADD COLUMN ack_note TEXT;
-- The silence that kept it from the channels; held = 1 while it waits for that silence to end
-- (delivered then if still open).
ALTER TABLE alerts ADD COLUMN silenced_by INTEGER;
ALTER TABLE alerts ADD COLUMN held INTEGER NOT NULL DEFAULT 0;
-- Alerts stored before this migration: a problem is resolved at the next recovery of its
-- subject, if one was stored.
UPDATE alerts SET resolved_ms = (
    SELECT r.ts_ms FROM alerts r
    WHERE r.id > alerts.id AND r.kind = 'recovery' AND r.host = alerts.host
      AND r.app IS alerts.app AND r.aspect_json IS alerts.aspect_json
    ORDER BY r.id LIMIT 1)
WHERE kind IN ('problem', 'flapping');
CREATE INDEX alerts_subject ON alerts (host, app, resolved_ms);
CREATE INDEX alert_deliveries_alert ON alert_deliveries (alert_id);

CREATE TABLE silences (
    id          INTEGER PRIMARY KEY,
    hosts       TEXT NOT NULL,      -- glob over host names
    apps        TEXT,               -- glob over app names; NULL: the hosts and all their apps
    kind        TEXT,               -- an alert aspect (state, check, ...); NULL: every one
    reason      TEXT NOT NULL,
    created_by  TEXT NOT NULL,
    created_ms  INTEGER NOT NULL,
    starts_ms   INTEGER NOT NULL,
    ends_ms     INTEGER NOT NULL,
    removed_ms  INTEGER,
    removed_by  TEXT
);
CREATE INDEX silences_ends ON silences (ends_ms);
