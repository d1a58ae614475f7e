-- Rows an inventory already shows compliant (a sweep leaves them out of its job), the
-- bucket's census by encryption mode as the manifest showed it, and the job's estimate
-- (requests, cost, duration), both as JSON.
ALTER TABLE jobs ADD COLUMN rows_compliant INTEGER NOT NULL DEFAULT 0;
ALTER TABLE jobs ADD COLUMN census TEXT;
ALTER TABLE jobs ADD COLUMN estimate TEXT;

-- A sweep: a named, repeatable job source over an inventory configuration's prefix. Its
-- lock (owner, since, expiry) keeps two runs of it from overlapping; a crashed holder's
-- lock expires.
CREATE TABLE sweeps (
    name         TEXT PRIMARY KEY,
    lock_owner   TEXT,
    lock_since   INTEGER,
    lock_expires INTEGER
);

-- Which inventory (its date folder) each of a sweep's jobs came from.
CREATE TABLE sweep_jobs (
    name       TEXT    NOT NULL,
    inventory  TEXT    NOT NULL,
    job_id     TEXT    NOT NULL,
    created_at INTEGER NOT NULL,
    PRIMARY KEY (name, inventory)
);
