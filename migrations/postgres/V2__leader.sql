-- Which collector leads on this database (a standby takes over when it goes): the epoch is
-- raised by each new leader, and every write of agent data checks it (FOR SHARE) in its own
-- transaction, so a leader that lost the lease can no longer write (fencing).
CREATE TABLE cluster_leader (
    id       INTEGER PRIMARY KEY CHECK (id = 1),
    epoch    BIGINT NOT NULL,
    holder   TEXT NOT NULL,
    since_ms BIGINT NOT NULL
);
INSERT INTO cluster_leader (id, epoch, holder, since_ms) VALUES (1, 0, '', 0);
