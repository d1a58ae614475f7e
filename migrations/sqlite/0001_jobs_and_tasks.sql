-- Jobs and their tasks. Times are milliseconds since the Unix epoch.
CREATE TABLE jobs (
    pk                  INTEGER PRIMARY KEY,
    id                  TEXT    NOT NULL UNIQUE,
    status              TEXT    NOT NULL,
    priority            INTEGER NOT NULL,
    description         TEXT    NOT NULL DEFAULT '',
    spec                TEXT    NOT NULL,
    manifest_location   TEXT    NOT NULL,
    manifest            TEXT,
    rows_read           INTEGER NOT NULL DEFAULT 0,
    rows_filtered       INTEGER NOT NULL DEFAULT 0,
    delete_markers      INTEGER NOT NULL DEFAULT 0,
    noncurrent_versions INTEGER NOT NULL DEFAULT 0,
    total_tasks         INTEGER NOT NULL DEFAULT 0,
    total_bytes         INTEGER NOT NULL DEFAULT 0,
    failure_reasons     TEXT    NOT NULL DEFAULT '[]',
    created_at          INTEGER NOT NULL,
    updated_at          INTEGER NOT NULL
);

CREATE INDEX jobs_by_status ON jobs (status, priority);

-- One row per object. What the manifest said is kept beside the state, so that a task can
-- be checked against the object's real state before it is acted on.
CREATE TABLE tasks (
    job_pk            INTEGER NOT NULL REFERENCES jobs (pk) ON DELETE CASCADE,
    seq               INTEGER NOT NULL,
    bucket            TEXT    NOT NULL,
    key               TEXT    NOT NULL,
    version_id        TEXT,
    size              INTEGER,
    etag              TEXT,
    last_modified     INTEGER,
    storage_class     TEXT,
    encryption_status TEXT,
    state             TEXT    NOT NULL DEFAULT 'pending',
    attempts          INTEGER NOT NULL DEFAULT 0,
    lease_owner       TEXT,
    lease_expires     INTEGER,
    http_status       INTEGER,
    error_code        TEXT,
    result_message    TEXT,
    PRIMARY KEY (job_pk, seq)
) WITHOUT ROWID;

CREATE INDEX tasks_by_state ON tasks (job_pk, state, seq);
