-- Issue 14: the last known state of each aspect of a host or app that is not its state: an
-- endpoint check (`check:NAME`, per app), a status source (`source:NAME`, app ''), the agent's
-- clock (`clock`, app ''). Events and alerts are raised when it changes, whether the agent's
-- event stream or a poll saw the change first, so each change is recorded once.
CREATE TABLE aspects (
    host_id     INTEGER NOT NULL REFERENCES hosts(id),
    app         TEXT NOT NULL DEFAULT '',
    aspect      TEXT NOT NULL,
    ok          INTEGER NOT NULL,
    since_ms    INTEGER NOT NULL,
    -- Agent-clock time of the observation this state comes from: older ones change nothing.
    observed_ms INTEGER NOT NULL,
    -- Why it is not ok (a check's error, a source's error, the skew), for problems after a restart.
    reason      TEXT,
    PRIMARY KEY (host_id, app, aspect)
) WITHOUT ROWID;
