-- Jobs and their tasks, as in migrations/sqlite/ (same columns, every whole number 64-bit).
-- Times are milliseconds since the Unix epoch, taken from the database's clock, so that
-- leases mean the same on every host of a fleet.
CREATE FUNCTION reseal_now_ms() RETURNS bigint
    AS $$ SELECT (extract(epoch from clock_timestamp()) * 1000)::bigint $$
    LANGUAGE sql VOLATILE;

CREATE TABLE jobs (
    pk                  BIGSERIAL PRIMARY KEY,
    id                  TEXT   NOT NULL UNIQUE,
    status              TEXT   NOT NULL,
    priority            BIGINT NOT NULL,
    description         TEXT   NOT NULL DEFAULT '',
    spec                TEXT   NOT NULL,
    manifest_location   TEXT   NOT NULL,
    manifest            TEXT,
    rows_read           BIGINT NOT NULL DEFAULT 0,
    rows_filtered       BIGINT NOT NULL DEFAULT 0,
    delete_markers      BIGINT NOT NULL DEFAULT 0,
    noncurrent_versions BIGINT NOT NULL DEFAULT 0,
    total_tasks         BIGINT NOT NULL DEFAULT 0,
    total_bytes         BIGINT NOT NULL DEFAULT 0,
    failure_reasons     TEXT   NOT NULL DEFAULT '[]',
    created_at          BIGINT NOT NULL,
    updated_at          BIGINT NOT NULL,
    target              TEXT,
    started_at          BIGINT,
    finished_at         BIGINT,
    -- Counts of the job's tasks by state, changed in the same transaction as the tasks.
    tasks_pending       BIGINT NOT NULL DEFAULT 0,
    tasks_leased        BIGINT NOT NULL DEFAULT 0,
    tasks_succeeded     BIGINT NOT NULL DEFAULT 0,
    tasks_failed        BIGINT NOT NULL DEFAULT 0,
    tasks_skipped       BIGINT NOT NULL DEFAULT 0,
    -- The completion report: claimed by one run (with an expiry), then marked written.
    report_claim         TEXT,
    report_claim_expires BIGINT,
    report_written_at    BIGINT,
    -- Rows the inventory already shows compliant (left out by a sweep), the census by
    -- encryption mode and the estimate, as JSON.
    rows_compliant       BIGINT NOT NULL DEFAULT 0,
    census               TEXT,
    estimate             TEXT
);

CREATE INDEX jobs_by_status ON jobs (status, priority);

-- One row per object. A task row is updated twice (leased, then its result) and never
-- again: a fillfactor below 100 leaves room for those versions on the same page, and
-- autovacuum runs early, as busy queue tables need.
CREATE TABLE tasks (
    job_pk            BIGINT NOT NULL REFERENCES jobs (pk) ON DELETE CASCADE,
    seq               BIGINT NOT NULL,
    bucket            TEXT   NOT NULL,
    key               TEXT   NOT NULL,
    version_id        TEXT,
    size              BIGINT,
    etag              TEXT,
    last_modified     BIGINT,
    storage_class     TEXT,
    encryption_status TEXT,
    state             TEXT   NOT NULL DEFAULT 'pending',
    -- A hash of the key: tasks are leased in its order, not the manifest's (an inventory
    -- is sorted by key, and S3's request rates are per prefix).
    spread            BIGINT NOT NULL DEFAULT 0,
    attempts          BIGINT NOT NULL DEFAULT 0,
    lease_owner       TEXT,
    lease_token       BIGINT,
    lease_expires     BIGINT,
    -- Set before a run sends the object's write: a later run that finds the object
    -- compliant reports it as re-encrypted by this job.
    write_started     BOOLEAN NOT NULL DEFAULT false,
    http_status       BIGINT,
    error_code        TEXT,
    result_message    TEXT,
    PRIMARY KEY (job_pk, seq)
) WITH (fillfactor = 80, autovacuum_vacuum_scale_factor = 0.02,
        autovacuum_analyze_scale_factor = 0.02);

-- Leasing scans only what can be leased: pending tasks in order, and leases by expiry.
CREATE INDEX tasks_pending ON tasks (job_pk, spread, seq) WHERE state = 'pending';
CREATE INDEX tasks_leased ON tasks (job_pk, lease_expires) WHERE state = 'leased';

-- The runs that worked on a job, as their heartbeats left them (job describe).
CREATE TABLE workers (
    job_pk     BIGINT NOT NULL REFERENCES jobs (pk) ON DELETE CASCADE,
    owner      TEXT   NOT NULL,
    started_at BIGINT NOT NULL,
    last_seen  BIGINT NOT NULL,
    tasks_done BIGINT NOT NULL DEFAULT 0,
    bytes      BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (job_pk, owner)
);

-- A sweep: a named, repeatable job source over an inventory configuration's prefix, with
-- its lock (an expiry, so that a crashed holder does not block the next run).
CREATE TABLE sweeps (
    name         TEXT PRIMARY KEY,
    lock_owner   TEXT,
    lock_since   BIGINT,
    lock_expires BIGINT
);

-- Which inventory (its date folder) each of a sweep's jobs came from.
CREATE TABLE sweep_jobs (
    name       TEXT   NOT NULL,
    inventory  TEXT   NOT NULL,
    job_id     TEXT   NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (name, inventory)
);
