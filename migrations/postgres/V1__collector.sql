-- The collector's schema on PostgreSQL: what SQLite's migrations 0001-0006 (../) build, in one
-- step, as no PostgreSQL database predates them. Column meanings are documented there. Every
-- integer is BIGINT and every real DOUBLE PRECISION, so the store binds and reads the same Rust
-- types (i64, f64) on both backends; flags are BIGINT 0/1 as in SQLite.

CREATE TABLE hosts (
    id              BIGSERIAL PRIMARY KEY,
    name            TEXT NOT NULL UNIQUE,
    url             TEXT NOT NULL,
    active          BIGINT NOT NULL DEFAULT 1,
    hostname        TEXT,
    instance_id     TEXT,
    last_seq        BIGINT NOT NULL DEFAULT 0,
    last_event_id   TEXT,
    status          TEXT NOT NULL DEFAULT 'unknown',
    status_since_ms BIGINT,
    last_seen_ms    BIGINT,
    missed_polls    BIGINT NOT NULL DEFAULT 0,
    last_error      TEXT,
    metrics_json    TEXT,
    agent_version   TEXT,
    wire_version    BIGINT
);

CREATE TABLE apps (
    host_id        BIGINT NOT NULL REFERENCES hosts(id),
    name           TEXT NOT NULL,
    state          TEXT NOT NULL,
    state_since_ms BIGINT NOT NULL,
    observed_ms    BIGINT NOT NULL,
    status_json    TEXT NOT NULL,
    PRIMARY KEY (host_id, name)
);

CREATE TABLE samples_raw (
    host_id         BIGINT NOT NULL,
    ts_ms           BIGINT NOT NULL,
    instance        BIGINT NOT NULL,
    seq             BIGINT NOT NULL,
    cpu             DOUBLE PRECISION,
    mem_used        BIGINT,
    mem_total       BIGINT,
    swap_used       BIGINT,
    load1           DOUBLE PRECISION,
    disk_used       BIGINT,
    disk_total      BIGINT,
    net_rx          DOUBLE PRECISION,
    net_tx          DOUBLE PRECISION,
    disk_read       DOUBLE PRECISION,
    disk_write      DOUBLE PRECISION,
    root_inodes_pct DOUBLE PRECISION,
    PRIMARY KEY (host_id, ts_ms, seq)
);
CREATE INDEX samples_raw_ts ON samples_raw (ts_ms);

CREATE TABLE agent_instances (
    id            BIGSERIAL PRIMARY KEY,
    host_id       BIGINT NOT NULL,
    instance_id   TEXT NOT NULL,
    first_seen_ms BIGINT NOT NULL,
    UNIQUE (host_id, instance_id)
);

CREATE TABLE samples_1m (
    host_id         BIGINT NOT NULL,
    bucket_ms       BIGINT NOT NULL,
    n               BIGINT NOT NULL,
    cpu             DOUBLE PRECISION,
    cpu_max         DOUBLE PRECISION,
    mem_used        BIGINT,
    mem_total       BIGINT,
    swap_used       BIGINT,
    load1           DOUBLE PRECISION,
    disk_used       BIGINT,
    disk_total      BIGINT,
    net_rx          DOUBLE PRECISION,
    net_tx          DOUBLE PRECISION,
    disk_read       DOUBLE PRECISION,
    disk_write      DOUBLE PRECISION,
    root_inodes_pct DOUBLE PRECISION,
    PRIMARY KEY (host_id, bucket_ms)
);
CREATE INDEX samples_1m_bucket ON samples_1m (bucket_ms);

CREATE TABLE samples_1h (LIKE samples_1m INCLUDING ALL);

CREATE TABLE rollup_state (
    name       TEXT PRIMARY KEY,
    done_until BIGINT NOT NULL,
    dirty_from BIGINT
);
INSERT INTO rollup_state (name, done_until) VALUES ('1m', 0), ('1h', 0);

CREATE TABLE status_history (
    id       BIGSERIAL PRIMARY KEY,
    host_id  BIGINT NOT NULL,
    app      TEXT NOT NULL,
    state    TEXT NOT NULL,
    start_ms BIGINT NOT NULL,
    end_ms   BIGINT
);
CREATE INDEX status_history_subject ON status_history (host_id, app, start_ms);
CREATE UNIQUE INDEX status_history_open ON status_history (host_id, app) WHERE end_ms IS NULL;
CREATE INDEX status_history_end ON status_history (end_ms);

CREATE TABLE events (
    id          BIGSERIAL PRIMARY KEY,
    ts_ms       BIGINT NOT NULL,
    severity    TEXT NOT NULL,
    source      TEXT NOT NULL,
    kind        TEXT NOT NULL,
    host        TEXT NOT NULL,
    app         TEXT,
    from_state  TEXT,
    to_state    TEXT,
    exit_json   TEXT,
    message     TEXT NOT NULL,
    detail_json TEXT
);
CREATE INDEX events_ts ON events (ts_ms);
CREATE INDEX events_host ON events (host, id);
CREATE INDEX events_app ON events (host, app, id);

CREATE TABLE alerts (
    id          BIGSERIAL PRIMARY KEY,
    ts_ms       BIGINT NOT NULL,
    kind        TEXT NOT NULL,
    host        TEXT NOT NULL,
    app         TEXT,
    state       TEXT NOT NULL,
    message     TEXT NOT NULL,
    severity    TEXT,
    aspect_json TEXT,
    detail_json TEXT,
    resolved_ms BIGINT,
    resolved_by BIGINT,
    ack_ms      BIGINT,
    ack_by      TEXT,
    ack_note    TEXT,
    silenced_by BIGINT,
    held        BIGINT NOT NULL DEFAULT 0
);
CREATE INDEX alerts_subject ON alerts (host, app, resolved_ms);

-- rowid: the order deliveries were recorded in, named as SQLite's implicit column.
CREATE TABLE alert_deliveries (
    rowid    BIGSERIAL PRIMARY KEY,
    alert_id BIGINT NOT NULL REFERENCES alerts(id),
    webhook  TEXT NOT NULL,
    attempts BIGINT NOT NULL,
    status   BIGINT,
    error    TEXT,
    ts_ms    BIGINT NOT NULL
);
CREATE INDEX alert_deliveries_alert ON alert_deliveries (alert_id);

-- Ids from a sequence are never handed out twice, as AUTOINCREMENT in SQLite.
CREATE TABLE api_keys (
    id           BIGSERIAL PRIMARY KEY,
    name         TEXT NOT NULL UNIQUE,
    role         TEXT NOT NULL,
    hash         BYTEA NOT NULL UNIQUE,
    created_ms   BIGINT NOT NULL,
    last_used_ms BIGINT
);

CREATE TABLE audit (
    id       BIGSERIAL PRIMARY KEY,
    ts_ms    BIGINT NOT NULL,
    key_name TEXT NOT NULL,
    action   TEXT NOT NULL,
    target   TEXT NOT NULL,
    result   TEXT NOT NULL,
    key_id   BIGINT
);

CREATE TABLE app_samples_raw (
    host_id     BIGINT NOT NULL,
    app         TEXT NOT NULL,
    ts_ms       BIGINT NOT NULL,
    cpu         DOUBLE PRECISION,
    mem         BIGINT,
    mem_limit   BIGINT,
    net_rx      DOUBLE PRECISION,
    net_tx      DOUBLE PRECISION,
    checks_json TEXT,
    PRIMARY KEY (host_id, app, ts_ms)
);
CREATE INDEX app_samples_raw_ts ON app_samples_raw (ts_ms);

CREATE TABLE app_samples_1m (
    host_id     BIGINT NOT NULL,
    app         TEXT NOT NULL,
    bucket_ms   BIGINT NOT NULL,
    n           BIGINT NOT NULL,
    cpu         DOUBLE PRECISION,
    cpu_max     DOUBLE PRECISION,
    mem         BIGINT,
    mem_max     BIGINT,
    mem_limit   BIGINT,
    net_rx      DOUBLE PRECISION,
    net_tx      DOUBLE PRECISION,
    checks_json TEXT,
    PRIMARY KEY (host_id, app, bucket_ms)
);
CREATE TABLE app_samples_1h (LIKE app_samples_1m INCLUDING ALL);

CREATE TABLE aspects (
    host_id     BIGINT NOT NULL REFERENCES hosts(id),
    app         TEXT NOT NULL DEFAULT '',
    aspect      TEXT NOT NULL,
    ok          BIGINT NOT NULL,
    since_ms    BIGINT NOT NULL,
    observed_ms BIGINT NOT NULL,
    reason      TEXT,
    PRIMARY KEY (host_id, app, aspect)
);

CREATE TABLE silences (
    id          BIGSERIAL PRIMARY KEY,
    hosts       TEXT NOT NULL,
    apps        TEXT,
    kind        TEXT,
    reason      TEXT NOT NULL,
    created_by  TEXT NOT NULL,
    created_ms  BIGINT NOT NULL,
    starts_ms   BIGINT NOT NULL,
    ends_ms     BIGINT NOT NULL,
    removed_ms  BIGINT,
    removed_by  TEXT
);
CREATE INDEX silences_ends ON silences (ends_ms);
