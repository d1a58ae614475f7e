-- A lease's token, one per leased batch: a result counts only while the task is leased to
-- the same owner under the same token (fencing), so that a run whose lease expired and was
-- taken again, even by the same owner, cannot record over the newer lease.
ALTER TABLE tasks ADD COLUMN lease_token INTEGER;

-- The runs that worked on a job, as their heartbeats left them (job describe).
CREATE TABLE workers (
    job_pk     INTEGER NOT NULL REFERENCES jobs (pk) ON DELETE CASCADE,
    owner      TEXT    NOT NULL,
    started_at INTEGER NOT NULL,
    last_seen  INTEGER NOT NULL,
    tasks_done INTEGER NOT NULL DEFAULT 0,
    bytes      INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (job_pk, owner)
) WITHOUT ROWID;
