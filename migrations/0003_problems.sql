-- Issue 14: every problem says why, apps and disks get history.

-- What a problem event carries besides its message, as JSON:
-- {"context": CrashContext?, "check": CheckResult?, "threshold": ThresholdHit?}.
ALTER TABLE events ADD COLUMN detail_json TEXT;

-- An alert's severity (warning | critical), which side of its subject it is about
-- (`alerting::rules::Aspect` as JSON) and why (`alerting::rules::Detail` as JSON).
-- NULL in alerts written before this migration: critical, the app's or host's state.
ALTER TABLE alerts ADD COLUMN severity TEXT;
ALTER TABLE alerts ADD COLUMN aspect_json TEXT;
ALTER TABLE alerts ADD COLUMN detail_json TEXT;

-- Host samples: all whole disks' I/O together, and the root filesystem's inodes in use (0-100).
ALTER TABLE samples_raw ADD COLUMN disk_read REAL;
ALTER TABLE samples_raw ADD COLUMN disk_write REAL;
ALTER TABLE samples_raw ADD COLUMN root_inodes_pct REAL;
ALTER TABLE samples_1m ADD COLUMN disk_read REAL;
ALTER TABLE samples_1m ADD COLUMN disk_write REAL;
ALTER TABLE samples_1m ADD COLUMN root_inodes_pct REAL;
ALTER TABLE samples_1h ADD COLUMN disk_read REAL;
ALTER TABLE samples_1h ADD COLUMN disk_write REAL;
ALTER TABLE samples_1h ADD COLUMN root_inodes_pct REAL;

-- Per-app samples, as the agents took them. checks_json: [{"name", "ok", "latency_ms"}].
CREATE TABLE app_samples_raw (
    host_id    INTEGER NOT NULL,
    app        TEXT NOT NULL,
    ts_ms      INTEGER NOT NULL,
    cpu        REAL,
    mem        INTEGER,
    mem_limit  INTEGER,
    net_rx     REAL,
    net_tx     REAL,
    checks_json TEXT,
    PRIMARY KEY (host_id, app, ts_ms)
) WITHOUT ROWID;
CREATE INDEX app_samples_raw_ts ON app_samples_raw (ts_ms);

-- Rollups of the same. checks_json: [{"name", "latency_ms" (average), "ok_ratio"}].
CREATE TABLE app_samples_1m (
    host_id    INTEGER NOT NULL,
    app        TEXT NOT NULL,
    bucket_ms  INTEGER NOT NULL,
    n          INTEGER NOT NULL,
    cpu        REAL,
    cpu_max    REAL,
    mem        INTEGER,
    mem_max    INTEGER,
    mem_limit  INTEGER,
    net_rx     REAL,
    net_tx     REAL,
    checks_json TEXT,
    PRIMARY KEY (host_id, app, bucket_ms)
) WITHOUT ROWID;
CREATE TABLE app_samples_1h (
    host_id    INTEGER NOT NULL,
    app        TEXT NOT NULL,
    bucket_ms  INTEGER NOT NULL,
    n          INTEGER NOT NULL,
    cpu        REAL,
    cpu_max    REAL,
    mem        INTEGER,
    mem_max    INTEGER,
    mem_limit  INTEGER,
    net_rx     REAL,
    net_tx     REAL,
    checks_json TEXT,
    PRIMARY KEY (host_id, app, bucket_ms)
) WITHOUT ROWID;
