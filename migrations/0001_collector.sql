-- The collector's schema, version 1. Times are Unix milliseconds (UTC).

-- One row per agent the collector polls; `name` is the name from collector.toml.
CREATE TABLE hosts (
    id              INTEGER PRIMARY KEY,
    name            TEXT NOT NULL UNIQUE,
    url             TEXT NOT NULL,
    active          INTEGER NOT NULL DEFAULT 1,   -- still in the config
    hostname        TEXT,
    instance_id     TEXT,                         -- the agent instance whose seqs last_seq counts
    last_seq        INTEGER NOT NULL DEFAULT 0,   -- newest sample stored from that instance
    last_event_id   TEXT,                         -- Last-Event-ID for the agent's /v1/events
    status          TEXT NOT NULL DEFAULT 'unknown', -- up | down | unknown
    status_since_ms INTEGER,
    last_seen_ms    INTEGER,
    missed_polls    INTEGER NOT NULL DEFAULT 0,
    last_error      TEXT,
    metrics_json    TEXT                          -- the latest HostMetrics
);

-- Each app's latest status. `observed_ms` is the agent's time of the observation that set it, so a
-- stale answer (a poll taken before an event already applied) cannot undo a newer state.
CREATE TABLE apps (
    host_id        INTEGER NOT NULL REFERENCES hosts(id),
    name           TEXT NOT NULL,
    state          TEXT NOT NULL,
    state_since_ms INTEGER NOT NULL,
    observed_ms    INTEGER NOT NULL,
    status_json    TEXT NOT NULL,
    PRIMARY KEY (host_id, name)
) WITHOUT ROWID;

-- Host samples as the agents took them (backfilled from their ring buffers: no gaps).
CREATE TABLE samples_raw (
    host_id     INTEGER NOT NULL,
    ts_ms       INTEGER NOT NULL,
    instance    INTEGER NOT NULL,   -- rowid of agent_instances
    seq         INTEGER NOT NULL,
    cpu         REAL,
    mem_used    INTEGER,
    mem_total   INTEGER,
    swap_used   INTEGER,
    load1       REAL,
    disk_used   INTEGER,
    disk_total  INTEGER,
    net_rx      REAL,
    net_tx      REAL,
    PRIMARY KEY (host_id, ts_ms, seq)
) WITHOUT ROWID;
CREATE INDEX samples_raw_ts ON samples_raw (ts_ms);  -- rollups and retention

CREATE TABLE agent_instances (
    id            INTEGER PRIMARY KEY,
    host_id       INTEGER NOT NULL,
    instance_id   TEXT NOT NULL,
    first_seen_ms INTEGER NOT NULL,
    UNIQUE (host_id, instance_id)
);

-- Rollups: averages over the bucket, maxima where a peak matters.
CREATE TABLE samples_1m (
    host_id     INTEGER NOT NULL,
    bucket_ms   INTEGER NOT NULL,
    n           INTEGER NOT NULL,
    cpu         REAL,
    cpu_max     REAL,
    mem_used    INTEGER,
    mem_total   INTEGER,
    swap_used   INTEGER,
    load1       REAL,
    disk_used   INTEGER,
    disk_total  INTEGER,
    net_rx      REAL,
    net_tx      REAL,
    PRIMARY KEY (host_id, bucket_ms)
) WITHOUT ROWID;

CREATE INDEX samples_1m_bucket ON samples_1m (bucket_ms);

CREATE TABLE samples_1h (
    host_id     INTEGER NOT NULL,
    bucket_ms   INTEGER NOT NULL,
    n           INTEGER NOT NULL,
    cpu         REAL,
    cpu_max     REAL,
    mem_used    INTEGER,
    mem_total   INTEGER,
    swap_used   INTEGER,
    load1       REAL,
    disk_used   INTEGER,
    disk_total  INTEGER,
    net_rx      REAL,
    net_tx      REAL,
    PRIMARY KEY (host_id, bucket_ms)
) WITHOUT ROWID;

-- How far each rollup is done, and the oldest raw sample that arrived late (a backfill) behind it.
CREATE TABLE rollup_state (
    name       TEXT PRIMARY KEY,     -- '1m' | '1h'
    done_until INTEGER NOT NULL,
    dirty_from INTEGER
);
INSERT INTO rollup_state (name, done_until) VALUES ('1m', 0), ('1h', 0);

-- Status history as intervals: one open interval (end_ms NULL) per subject. app '' is the host.
CREATE TABLE status_history (
    id       INTEGER PRIMARY KEY,
    host_id  INTEGER NOT NULL,
    app      TEXT NOT NULL,
    state    TEXT NOT NULL,
    start_ms INTEGER NOT NULL,
    end_ms   INTEGER
);
CREATE INDEX status_history_subject ON status_history (host_id, app, start_ms);
CREATE UNIQUE INDEX status_history_open ON status_history (host_id, app) WHERE end_ms IS NULL;
CREATE INDEX status_history_end ON status_history (end_ms);

CREATE TABLE events (
    id        INTEGER PRIMARY KEY,
    ts_ms     INTEGER NOT NULL,
    severity  TEXT NOT NULL,
    source    TEXT NOT NULL,
    kind      TEXT NOT NULL,
    host      TEXT NOT NULL,
    app       TEXT,
    from_state TEXT,
    to_state  TEXT,
    exit_json TEXT,
    message   TEXT NOT NULL
);
CREATE INDEX events_ts ON events (ts_ms);
CREATE INDEX events_host ON events (host, id);
CREATE INDEX events_app ON events (host, app, id);

CREATE TABLE alerts (
    id      INTEGER PRIMARY KEY,
    ts_ms   INTEGER NOT NULL,
    kind    TEXT NOT NULL,
    host    TEXT NOT NULL,
    app     TEXT,
    state   TEXT NOT NULL,
    message TEXT NOT NULL
);

CREATE TABLE alert_deliveries (
    alert_id INTEGER NOT NULL REFERENCES alerts(id),
    webhook  TEXT NOT NULL,     -- redacted: scheme and host only
    attempts INTEGER NOT NULL,
    status   INTEGER,           -- the last HTTP status, if any answered
    error    TEXT,
    ts_ms    INTEGER NOT NULL
);

CREATE TABLE api_keys (
    id           INTEGER PRIMARY KEY,
    name         TEXT NOT NULL UNIQUE,
    role         TEXT NOT NULL,
    hash         BLOB NOT NULL UNIQUE,   -- SHA-256 of the key
    created_ms   INTEGER NOT NULL,
    last_used_ms INTEGER
);

CREATE TABLE audit (
    id       INTEGER PRIMARY KEY,
    ts_ms    INTEGER NOT NULL,
    key_name TEXT NOT NULL,
    action   TEXT NOT NULL,
    target   TEXT NOT NULL,
    result   TEXT NOT NULL
);
