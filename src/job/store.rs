//! The job store: jobs and tasks in SQLite (WAL), through sqlx. Migrations in
//! `migrations/sqlite/` are applied when the store is opened.
//!
//! Status changes are compare-and-set on the status a change was computed from, so two
//! processes steering one job cannot undo each other's change unnoticed.

use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{QueryBuilder, Row as _, Sqlite, SqlitePool};

use super::model::{
    IngestCounts, Job, JobSpec, JobStatus, Operation, Task, TaskCounts, TaskRecord, TaskResult,
    TaskState,
};
use crate::manifest::{Entry, ManifestSummary};
use crate::time::now_ms;

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");

/// Rows per INSERT statement: 10 bound values each, well under SQLite's 32,766 limit.
const INSERT_CHUNK: usize = 500;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("job store {location}: {message}")]
    Open { location: String, message: String },
    #[error("job store: {0}")]
    Database(#[from] sqlx::Error),
    #[error("job store: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("no job {0:?} in the job store (see `reseal job list`)")]
    NotFound(String),
    #[error("{given:?} matches more than one job ({matches}): give more of the id")]
    Ambiguous { given: String, matches: String },
    #[error("job {id}: {message}")]
    Refused { id: String, message: String },
    #[error("job {id}: stored data is damaged: {message}")]
    Corrupt { id: String, message: String },
}

impl StoreError {
    /// Whether this is the user's doing (an unknown id, a refused transition), not the store's.
    pub fn is_user_error(&self) -> bool {
        matches!(
            self,
            StoreError::NotFound(_) | StoreError::Ambiguous { .. } | StoreError::Refused { .. }
        )
    }
}

/// A new job's fixed parts, before its manifest is read.
#[derive(Debug, Clone)]
pub struct NewJob {
    pub spec: JobSpec,
    pub target: Option<crate::job::TargetSpec>,
    pub priority: i64,
    pub description: String,
    pub manifest_location: String,
}

#[derive(Clone, Debug)]
pub struct JobStore {
    pool: SqlitePool,
}

impl JobStore {
    /// Opens (creating when missing, with mode 0600) the job store named by `location`: a
    /// file path or a `sqlite:` URL.
    pub async fn open(location: &str) -> Result<JobStore, StoreError> {
        let open_err = |message: String| StoreError::Open {
            location: location.to_owned(),
            message,
        };
        if location.starts_with("postgres://") || location.starts_with("postgresql://") {
            return Err(open_err(
                "PostgreSQL job stores are not supported by this version; give a SQLite file path"
                    .into(),
            ));
        }
        let options = if location.starts_with("sqlite:") {
            SqliteConnectOptions::from_str(location).map_err(|e| open_err(e.to_string()))?
        } else {
            SqliteConnectOptions::new().filename(location)
        };
        let path = options.get_filename().to_path_buf();
        if path != Path::new(":memory:") {
            create_private_file(&path).map_err(open_err)?;
        }
        let options = options
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(Duration::from_secs(30))
            .foreign_keys(true);
        let pool = SqlitePoolOptions::new()
            .max_connections(4)
            .connect_with(options)
            .await
            .map_err(|e| open_err(e.to_string()))?;
        MIGRATOR.run(&pool).await?;
        Ok(JobStore { pool })
    }

    pub async fn insert_job(&self, new: &NewJob) -> Result<Job, StoreError> {
        let id = uuid::Uuid::new_v4().to_string();
        let now = now_ms();
        let spec = serde_json::to_string(&new.spec).expect("a JobSpec serialises");
        sqlx::query(
            "INSERT INTO jobs (id, status, priority, description, spec, manifest_location, \
             created_at, updated_at, target) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(&id)
        .bind(JobStatus::New.as_str())
        .bind(new.priority)
        .bind(&new.description)
        .bind(spec)
        .bind(&new.manifest_location)
        .bind(now)
        .bind(now)
        .bind(
            new.target
                .as_ref()
                .map(|t| serde_json::to_string(t).expect("a target serialises")),
        )
        .execute(&self.pool)
        .await?;
        self.job(&id).await
    }

    /// Finds a job by its id or an unambiguous prefix of it.
    pub async fn job(&self, id_or_prefix: &str) -> Result<Job, StoreError> {
        let given = id_or_prefix.trim();
        if given.is_empty() {
            return Err(StoreError::NotFound(given.to_owned()));
        }
        let pattern = format!("{}%", given.replace(['%', '_'], ""));
        let rows = sqlx::query("SELECT * FROM jobs WHERE id = ? OR id LIKE ? ORDER BY id LIMIT 3")
            .bind(given)
            .bind(pattern)
            .fetch_all(&self.pool)
            .await?;
        if let Some(exact) = rows.iter().find(|r| r.get::<String, _>("id") == given) {
            return job_from_row(exact);
        }
        match rows.len() {
            0 => Err(StoreError::NotFound(given.to_owned())),
            1 => job_from_row(&rows[0]),
            _ => Err(StoreError::Ambiguous {
                given: given.to_owned(),
                matches: rows
                    .iter()
                    .map(|r| r.get::<String, _>("id"))
                    .collect::<Vec<_>>()
                    .join(", "),
            }),
        }
    }

    /// Jobs, highest priority first, then oldest first.
    pub async fn list_jobs(&self, status: Option<JobStatus>) -> Result<Vec<Job>, StoreError> {
        let rows =
            match status {
                Some(s) => sqlx::query(
                    "SELECT * FROM jobs WHERE status = ? ORDER BY priority DESC, created_at, pk",
                )
                .bind(s.as_str())
                .fetch_all(&self.pool)
                .await?,
                None => {
                    sqlx::query("SELECT * FROM jobs ORDER BY priority DESC, created_at, pk")
                        .fetch_all(&self.pool)
                        .await?
                }
            };
        rows.iter().map(job_from_row).collect()
    }

    pub async fn task_counts(&self, job: &Job) -> Result<TaskCounts, StoreError> {
        let rows =
            sqlx::query("SELECT state, COUNT(*) AS n FROM tasks WHERE job_pk = ? GROUP BY state")
                .bind(job.pk)
                .fetch_all(&self.pool)
                .await?;
        let mut counts = TaskCounts::default();
        for row in rows {
            let n = row.get::<i64, _>("n") as u64;
            let state: String = row.get("state");
            match TaskState::ALL.into_iter().find(|s| s.as_str() == state) {
                Some(TaskState::Pending) => counts.pending += n,
                Some(TaskState::Leased) => counts.leased += n,
                Some(TaskState::Succeeded) => counts.succeeded += n,
                Some(TaskState::Failed) => counts.failed += n,
                Some(TaskState::Skipped) => counts.skipped += n,
                None => {
                    return Err(StoreError::Corrupt {
                        id: job.id.clone(),
                        message: format!("unknown task state {state:?}"),
                    });
                }
            }
            counts.total += n;
        }
        Ok(counts)
    }

    /// Moves `job` from `from` to `to`, only if it is still in `from`.
    pub async fn set_status(
        &self,
        job: &Job,
        from: JobStatus,
        to: JobStatus,
    ) -> Result<(), StoreError> {
        let done =
            sqlx::query("UPDATE jobs SET status = ?, updated_at = ? WHERE pk = ? AND status = ?")
                .bind(to.as_str())
                .bind(now_ms())
                .bind(job.pk)
                .bind(from.as_str())
                .execute(&self.pool)
                .await?;
        if done.rows_affected() == 1 {
            Ok(())
        } else {
            let now = self.job(&job.id).await?;
            Err(StoreError::Refused {
                id: job.id.clone(),
                message: format!(
                    "it changed from {from} to {} meanwhile; it was not moved to {to}",
                    now.status
                ),
            })
        }
    }

    /// Applies an operator's command; returns the job's status before and after.
    pub async fn apply(
        &self,
        id: &str,
        op: Operation,
    ) -> Result<(JobStatus, JobStatus), StoreError> {
        let job = self.job(id).await?;
        let to = job
            .status
            .after(op)
            .map_err(|message| StoreError::Refused {
                id: job.id.clone(),
                message,
            })?;
        self.set_status(&job, job.status, to).await?;
        Ok((job.status, to))
    }

    pub async fn set_priority(&self, id: &str, priority: i64) -> Result<Job, StoreError> {
        let job = self.job(id).await?;
        if job.status.is_final() {
            return Err(StoreError::Refused {
                id: job.id,
                message: format!(
                    "it is {}: a finished job's priority cannot change",
                    job.status
                ),
            });
        }
        sqlx::query("UPDATE jobs SET priority = ?, updated_at = ? WHERE pk = ? AND status = ?")
            .bind(priority)
            .bind(now_ms())
            .bind(job.pk)
            .bind(job.status.as_str())
            .execute(&self.pool)
            .await?;
        self.job(&job.id).await
    }

    /// Adds tasks numbered from `first_seq`, in one transaction.
    pub async fn insert_tasks(
        &self,
        job: &Job,
        first_seq: u64,
        entries: &[Entry],
    ) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        let mut seq = first_seq as i64;
        for chunk in entries.chunks(INSERT_CHUNK) {
            let mut insert: QueryBuilder<Sqlite> = QueryBuilder::new(
                "INSERT INTO tasks (job_pk, seq, bucket, key, version_id, size, etag, \
                 last_modified, storage_class, encryption_status) ",
            );
            insert.push_values(chunk, |mut row, e| {
                row.push_bind(job.pk)
                    .push_bind(seq)
                    .push_bind(e.bucket.as_str())
                    .push_bind(e.key.as_str())
                    .push_bind(e.version_id.as_deref())
                    .push_bind(e.size.map(|s| s as i64))
                    .push_bind(e.etag.as_deref())
                    .push_bind(e.last_modified)
                    .push_bind(e.storage_class.as_deref())
                    .push_bind(e.encryption_status.map(|m| m.as_str()));
                seq += 1;
            });
            insert.build().execute(&mut *tx).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Ends preparation: records the manifest and counts and moves the job from Preparing to
    /// `to`, only if it is still Preparing.
    pub async fn finish_preparing(
        &self,
        job: &Job,
        manifest: &ManifestSummary,
        counts: &IngestCounts,
        to: JobStatus,
    ) -> Result<(), StoreError> {
        let done = sqlx::query(
            "UPDATE jobs SET status = ?, manifest = ?, rows_read = ?, rows_filtered = ?, \
             delete_markers = ?, noncurrent_versions = ?, total_tasks = ?, total_bytes = ?, \
             updated_at = ? WHERE pk = ? AND status = ?",
        )
        .bind(to.as_str())
        .bind(serde_json::to_string(manifest).expect("a manifest summary serialises"))
        .bind(counts.rows_read as i64)
        .bind(counts.rows_filtered as i64)
        .bind(counts.delete_markers as i64)
        .bind(counts.noncurrent_versions as i64)
        .bind(counts.tasks as i64)
        .bind(counts.bytes as i64)
        .bind(now_ms())
        .bind(job.pk)
        .bind(JobStatus::Preparing.as_str())
        .execute(&self.pool)
        .await?;
        if done.rows_affected() == 1 {
            return Ok(());
        }
        let now = self.job(&job.id).await?;
        self.delete_tasks(job).await?;
        Err(StoreError::Refused {
            id: job.id.clone(),
            message: format!("it became {} while its manifest was read", now.status),
        })
    }

    /// Marks a job Failed with `reason` and drops its tasks, so that nothing of it can run.
    pub async fn fail(&self, job: &Job, reason: &str) -> Result<(), StoreError> {
        self.delete_tasks(job).await?;
        let mut reasons = self.job(&job.id).await?.failure_reasons;
        reasons.push(reason.to_owned());
        sqlx::query(
            "UPDATE jobs SET status = ?, failure_reasons = ?, total_tasks = 0, total_bytes = 0, \
             updated_at = ? WHERE pk = ?",
        )
        .bind(JobStatus::Failed.as_str())
        .bind(serde_json::to_string(&reasons).expect("strings serialise"))
        .bind(now_ms())
        .bind(job.pk)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Records the job's target at its first run.
    pub async fn set_target(
        &self,
        job: &Job,
        target: &crate::job::TargetSpec,
    ) -> Result<(), StoreError> {
        sqlx::query("UPDATE jobs SET target = ? WHERE pk = ? AND target IS NULL")
            .bind(serde_json::to_string(target).expect("a target serialises"))
            .bind(job.pk)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Records what a run learned about a job's target (the same place, more facts).
    pub async fn update_target(
        &self,
        job: &Job,
        target: &crate::job::TargetSpec,
    ) -> Result<(), StoreError> {
        sqlx::query("UPDATE jobs SET target = ? WHERE pk = ?")
            .bind(serde_json::to_string(target).expect("a target serialises"))
            .bind(job.pk)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Moves a job to `to` from any of `from`; stamps start and end times. Returns whether
    /// it moved.
    pub async fn transition(
        &self,
        job: &Job,
        from: &[JobStatus],
        to: JobStatus,
    ) -> Result<bool, StoreError> {
        let now = now_ms();
        let mut moved = false;
        for status in from {
            let done = sqlx::query(
                "UPDATE jobs SET status = ?, updated_at = ?, \
                 started_at = CASE WHEN ? = 'Active' THEN COALESCE(started_at, ?) ELSE started_at END, \
                 finished_at = CASE WHEN ? IN ('Complete', 'Cancelled', 'Failed') THEN ? ELSE finished_at END \
                 WHERE pk = ? AND status = ?",
            )
            .bind(to.as_str())
            .bind(now)
            .bind(to.as_str())
            .bind(now)
            .bind(to.as_str())
            .bind(now)
            .bind(job.pk)
            .bind(status.as_str())
            .execute(&self.pool)
            .await?;
            moved |= done.rows_affected() == 1;
        }
        Ok(moved)
    }

    /// Adds a failure reason to a job without touching its tasks.
    pub async fn add_failure_reason(&self, job: &Job, reason: &str) -> Result<(), StoreError> {
        let mut reasons = self.job(&job.id).await?.failure_reasons;
        reasons.push(reason.to_owned());
        sqlx::query("UPDATE jobs SET failure_reasons = ? WHERE pk = ?")
            .bind(serde_json::to_string(&reasons).expect("strings serialise"))
            .bind(job.pk)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Leases up to `limit` pending tasks (or tasks whose lease expired) to `owner`.
    pub async fn lease_tasks(
        &self,
        job: &Job,
        owner: &str,
        limit: u32,
        lease_ms: i64,
    ) -> Result<Vec<Task>, StoreError> {
        let now = now_ms();
        let rows = sqlx::query(
            "UPDATE tasks SET state = 'leased', lease_owner = ?, lease_expires = ? \
             WHERE job_pk = ? AND seq IN ( \
               SELECT seq FROM tasks WHERE job_pk = ? AND state = 'pending' \
               UNION ALL \
               SELECT seq FROM tasks WHERE job_pk = ? AND state = 'leased' AND lease_expires < ? \
               ORDER BY seq LIMIT ?) \
             RETURNING seq, bucket, key, version_id, size, attempts",
        )
        .bind(owner)
        .bind(now + lease_ms)
        .bind(job.pk)
        .bind(job.pk)
        .bind(job.pk)
        .bind(now)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        let mut tasks: Vec<Task> = rows
            .iter()
            .map(|r| Task {
                seq: r.get("seq"),
                bucket: r.get("bucket"),
                key: r.get("key"),
                version_id: r.get("version_id"),
                size: r.get::<Option<i64>, _>("size").map(|s| s as u64),
                attempts: r.get::<i64, _>("attempts") as u32,
            })
            .collect();
        tasks.sort_by_key(|t| t.seq);
        Ok(tasks)
    }

    /// Extends the leases `owner` holds on a job's tasks.
    pub async fn renew_leases(
        &self,
        job: &Job,
        owner: &str,
        lease_ms: i64,
    ) -> Result<(), StoreError> {
        sqlx::query("UPDATE tasks SET lease_expires = ? WHERE job_pk = ? AND state = 'leased' AND lease_owner = ?")
            .bind(now_ms() + lease_ms)
            .bind(job.pk)
            .bind(owner)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Records results in one transaction. A result counts only while its task is still
    /// leased to `owner`: a task whose lease was lost and taken by another runner is
    /// recorded once, by whoever holds it. Returns how many were recorded.
    pub async fn record_results(
        &self,
        job: &Job,
        owner: &str,
        results: &[TaskResult],
    ) -> Result<u64, StoreError> {
        let mut tx = self.pool.begin().await?;
        let mut recorded = 0;
        for r in results {
            let done = sqlx::query(
                "UPDATE tasks SET state = ?, attempts = ?, http_status = ?, error_code = ?, \
                 result_message = ?, lease_owner = NULL, lease_expires = NULL \
                 WHERE job_pk = ? AND seq = ? AND state = 'leased' AND lease_owner = ?",
            )
            .bind(r.state.as_str())
            .bind(i64::from(r.attempts))
            .bind(i64::from(r.http_status))
            .bind(r.error_code.as_deref())
            .bind(&r.message)
            .bind(job.pk)
            .bind(r.seq)
            .bind(owner)
            .execute(&mut *tx)
            .await?;
            recorded += done.rows_affected();
        }
        tx.commit().await?;
        Ok(recorded)
    }

    /// Gives back the tasks `owner` holds (a run that stops), so another run takes them at once.
    pub async fn release_leases(&self, job: &Job, owner: &str) -> Result<u64, StoreError> {
        let done = sqlx::query(
            "UPDATE tasks SET state = 'pending', lease_owner = NULL, lease_expires = NULL \
             WHERE job_pk = ? AND state = 'leased' AND lease_owner = ?",
        )
        .bind(job.pk)
        .bind(owner)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected())
    }

    /// Owners holding leases on a job's tasks.
    pub async fn lease_owners(&self, job: &Job) -> Result<Vec<String>, StoreError> {
        let rows = sqlx::query(
            "SELECT DISTINCT lease_owner FROM tasks WHERE job_pk = ? AND state = 'leased'",
        )
        .bind(job.pk)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .iter()
            .filter_map(|r| r.get::<Option<String>, _>(0))
            .collect())
    }

    /// Tasks in sequence order from `after_seq`, for reports and dry runs.
    pub async fn task_page(
        &self,
        job: &Job,
        after_seq: i64,
        limit: u32,
    ) -> Result<Vec<(i64, TaskRecord)>, StoreError> {
        let rows = sqlx::query(
            "SELECT seq, bucket, key, version_id, state, http_status, error_code, result_message \
             FROM tasks WHERE job_pk = ? AND seq > ? ORDER BY seq LIMIT ?",
        )
        .bind(job.pk)
        .bind(after_seq)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                let state: String = r.get("state");
                Ok((
                    r.get("seq"),
                    TaskRecord {
                        bucket: r.get("bucket"),
                        key: r.get("key"),
                        version_id: r.get("version_id"),
                        state: TaskState::ALL
                            .into_iter()
                            .find(|s| s.as_str() == state)
                            .ok_or_else(|| StoreError::Corrupt {
                                id: job.id.clone(),
                                message: format!("unknown task state {state:?}"),
                            })?,
                        http_status: r.get::<Option<i64>, _>("http_status").map(|s| s as u16),
                        error_code: r.get("error_code"),
                        message: r.get("result_message"),
                    },
                ))
            })
            .collect()
    }

    async fn delete_tasks(&self, job: &Job) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM tasks WHERE job_pk = ?")
            .bind(job.pk)
            .execute(&self.pool)
            .await?;
        Ok(())
    }
}

fn job_from_row(row: &sqlx::sqlite::SqliteRow) -> Result<Job, StoreError> {
    let id: String = row.get("id");
    let corrupt = |message: String| StoreError::Corrupt {
        id: id.clone(),
        message,
    };
    let status: String = row.get("status");
    let spec: String = row.get("spec");
    let manifest: Option<String> = row.get("manifest");
    let reasons: String = row.get("failure_reasons");
    let count = |name: &str| row.get::<i64, _>(name) as u64;
    Ok(Job {
        pk: row.get("pk"),
        status: status.parse().map_err(corrupt)?,
        priority: row.get("priority"),
        description: row.get("description"),
        spec: serde_json::from_str(&spec).map_err(|e| corrupt(format!("spec: {e}")))?,
        manifest_location: row.get("manifest_location"),
        manifest: manifest
            .map(|m| serde_json::from_str(&m))
            .transpose()
            .map_err(|e| corrupt(format!("manifest: {e}")))?,
        ingest: IngestCounts {
            rows_read: count("rows_read"),
            rows_filtered: count("rows_filtered"),
            delete_markers: count("delete_markers"),
            noncurrent_versions: count("noncurrent_versions"),
            tasks: count("total_tasks"),
            bytes: count("total_bytes"),
        },
        failure_reasons: serde_json::from_str(&reasons)
            .map_err(|e| corrupt(format!("failure reasons: {e}")))?,
        target: row
            .get::<Option<String>, _>("target")
            .map(|t| serde_json::from_str(&t))
            .transpose()
            .map_err(|e| corrupt(format!("target: {e}")))?,
        created_at: row.get("created_at"),
        updated_at: row.get("updated_at"),
        started_at: row.get("started_at"),
        finished_at: row.get("finished_at"),
        id,
    })
}

/// Creates the database file readable by its owner only; an existing file is left as it is.
fn create_private_file(path: &PathBuf) -> Result<(), String> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(path)
        .map(drop)
        .map_err(|e| format!("cannot create {}: {e}", path.display()))
}
