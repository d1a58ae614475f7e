//! The job store in SQLite (WAL), through sqlx: the embedded default, for one machine.
//! Migrations in `migrations/sqlite/` are applied when the store is opened; the file is
//! created with mode 0600.

use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{QueryBuilder, Row as _, Sqlite, SqlitePool};

use super::rows::{CountsRow, JobRow, LeasedRow, RecordRow, WorkerRow};
use super::{
    JobStore, JobStoreError, NewJob, Settled, SweepLock, migrate_error, pick_job, prefix_pattern,
    settled_of, spread,
};
use crate::job::model::{
    Census, IngestCounts, Job, JobStatus, TargetSpec, Task, TaskCounts, TaskRecord, TaskResult,
    TaskState, Worker,
};
use crate::manifest::{Entry, ManifestSummary};
use crate::time::now_ms;

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");

/// Rows per INSERT statement: 10 bound values each, well under SQLite's 32,766 limit.
const INSERT_CHUNK: usize = 500;

#[derive(Clone, Debug)]
pub struct SqliteJobStore {
    pool: SqlitePool,
}

impl SqliteJobStore {
    /// Opens (creating when missing, with mode 0600) the job store named by `location`: a
    /// file path or a `sqlite:` URL.
    pub async fn open(location: &str) -> Result<SqliteJobStore, JobStoreError> {
        let open_err = |message: String| JobStoreError::Open {
            location: location.to_owned(),
            message,
        };
        let options = if location.starts_with("sqlite:") {
            SqliteConnectOptions::from_str(location).map_err(|e| open_err(e.to_string()))?
        } else {
            SqliteConnectOptions::new().filename(location)
        };
        let path = options.get_filename().to_path_buf();
        // Two processes opening a new or older job store at once (a sweep from cron and a
        // `job list`) would both apply the same migration, and the second fail: one
        // migrates at a time, under an exclusive flock of the file (apart from SQLite's
        // own fcntl locks), held until the migrations are done.
        let migrating = if path != Path::new(":memory:") {
            let file = create_private_file(&path).map_err(open_err)?;
            let locked = tokio::task::spawn_blocking(move || file.lock().map(|()| file))
                .await
                .expect("the lock does not panic");
            Some(locked.map_err(|e| open_err(format!("cannot lock {}: {e}", path.display())))?)
        } else {
            None
        };
        let options = options
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(Duration::from_secs(30))
            .foreign_keys(true)
            // Tasks are indexed by a hash of their key (the lease order), so ingestion
            // inserts all over that index: with SQLite's default 2 MiB page cache a
            // million-task job rewrote index pages more than once per row. 64 MiB per
            // connection, taken only as pages are used.
            .pragma("cache_size", "-65536");
        let pool = SqlitePoolOptions::new()
            .max_connections(4)
            .connect_with(options)
            .await
            .map_err(|e| open_err(e.to_string()))?;
        MIGRATOR
            .run(&pool)
            .await
            .map_err(|e| migrate_error(location, e))?;
        drop(migrating);
        Ok(SqliteJobStore { pool })
    }

    /// Drops a job's tasks, and their counts with them.
    async fn delete_tasks(&self, job: &Job) -> Result<(), JobStoreError> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("DELETE FROM tasks WHERE job_pk = ?")
            .bind(job.pk)
            .execute(&mut *tx)
            .await?;
        sqlx::query(
            "UPDATE jobs SET tasks_pending = 0, tasks_leased = 0, tasks_succeeded = 0, \
             tasks_failed = 0, tasks_skipped = 0 WHERE pk = ?",
        )
        .bind(job.pk)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }
}

#[async_trait::async_trait]
impl JobStore for SqliteJobStore {
    async fn insert_job(&self, new: &NewJob) -> Result<Job, JobStoreError> {
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
    async fn job(&self, id_or_prefix: &str) -> Result<Job, JobStoreError> {
        let given = id_or_prefix.trim();
        let rows: Vec<JobRow> =
            sqlx::query_as("SELECT * FROM jobs WHERE id = ? OR id LIKE ? ORDER BY id LIMIT 3")
                .bind(given)
                .bind(prefix_pattern(given))
                .fetch_all(&self.pool)
                .await?;
        pick_job(given, rows)
    }

    /// Jobs, highest priority first, then oldest first.
    async fn list_jobs(&self, status: Option<JobStatus>) -> Result<Vec<Job>, JobStoreError> {
        let rows: Vec<JobRow> =
            match status {
                Some(s) => sqlx::query_as(
                    "SELECT * FROM jobs WHERE status = ? ORDER BY priority DESC, created_at, pk",
                )
                .bind(s.as_str())
                .fetch_all(&self.pool)
                .await?,
                None => {
                    sqlx::query_as("SELECT * FROM jobs ORDER BY priority DESC, created_at, pk")
                        .fetch_all(&self.pool)
                        .await?
                }
            };
        rows.into_iter().map(JobRow::into_job).collect()
    }

    async fn task_counts(&self, job: &Job) -> Result<TaskCounts, JobStoreError> {
        let row: CountsRow = sqlx::query_as(
            "SELECT tasks_pending, tasks_leased, tasks_succeeded, tasks_failed, tasks_skipped \
             FROM jobs WHERE pk = ?",
        )
        .bind(job.pk)
        .fetch_one(&self.pool)
        .await?;
        Ok(row.into())
    }

    async fn set_status(
        &self,
        job: &Job,
        from: JobStatus,
        to: JobStatus,
    ) -> Result<(), JobStoreError> {
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
            Err(JobStoreError::Refused {
                id: job.id.clone(),
                message: format!(
                    "it changed from {from} to {} meanwhile; it was not moved to {to}",
                    now.status
                ),
            })
        }
    }

    /// Moves a job to `to` from any of `from`; stamps start and end times. Returns whether
    /// it moved.
    async fn transition(
        &self,
        job: &Job,
        from: &[JobStatus],
        to: JobStatus,
    ) -> Result<bool, JobStoreError> {
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

    async fn update_priority(&self, job: &Job, priority: i64) -> Result<(), JobStoreError> {
        sqlx::query("UPDATE jobs SET priority = ?, updated_at = ? WHERE pk = ? AND status = ?")
            .bind(priority)
            .bind(now_ms())
            .bind(job.pk)
            .bind(job.status.as_str())
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Adds tasks numbered from `first_seq`, in one transaction.
    async fn insert_tasks(
        &self,
        job: &Job,
        first_seq: u64,
        entries: &[Entry],
    ) -> Result<(), JobStoreError> {
        let mut tx = self.pool.begin().await?;
        let mut seq = first_seq as i64;
        for chunk in entries.chunks(INSERT_CHUNK) {
            let mut insert: QueryBuilder<Sqlite> = QueryBuilder::new(
                "INSERT INTO tasks (job_pk, seq, bucket, key, version_id, size, etag, \
                 last_modified, storage_class, encryption_status, spread) ",
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
                    .push_bind(e.encryption_status.map(|m| m.as_str()))
                    .push_bind(spread(&e.bucket, &e.key));
                seq += 1;
            });
            insert.build().execute(&mut *tx).await?;
        }
        sqlx::query("UPDATE jobs SET tasks_pending = tasks_pending + ? WHERE pk = ?")
            .bind(entries.len() as i64)
            .bind(job.pk)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Ends preparation: records the manifest and counts and moves the job from Preparing to
    /// `to`, only if it is still Preparing.
    async fn finish_preparing(
        &self,
        job: &Job,
        manifest: &ManifestSummary,
        counts: &IngestCounts,
        census: &Census,
        to: JobStatus,
    ) -> Result<(), JobStoreError> {
        let done = sqlx::query(
            "UPDATE jobs SET status = ?, manifest = ?, rows_read = ?, rows_filtered = ?, \
             rows_compliant = ?, census = ?, \
             delete_markers = ?, noncurrent_versions = ?, total_tasks = ?, total_bytes = ?, \
             updated_at = ? WHERE pk = ? AND status = ?",
        )
        .bind(to.as_str())
        .bind(serde_json::to_string(manifest).expect("a manifest summary serialises"))
        .bind(counts.rows_read as i64)
        .bind(counts.rows_filtered as i64)
        .bind(counts.rows_compliant as i64)
        .bind(serde_json::to_string(census).expect("a census serialises"))
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
        Err(JobStoreError::Refused {
            id: job.id.clone(),
            message: format!("it became {} while its manifest was read", now.status),
        })
    }

    /// Marks a job Failed with `reason` and drops its tasks, so that nothing of it can run.
    async fn fail(&self, job: &Job, reason: &str) -> Result<(), JobStoreError> {
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
    async fn set_target(&self, job: &Job, target: &TargetSpec) -> Result<(), JobStoreError> {
        sqlx::query("UPDATE jobs SET target = ? WHERE pk = ? AND target IS NULL")
            .bind(serde_json::to_string(target).expect("a target serialises"))
            .bind(job.pk)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Records what a run learned about a job's target (the same place, more facts).
    async fn update_target(&self, job: &Job, target: &TargetSpec) -> Result<(), JobStoreError> {
        sqlx::query("UPDATE jobs SET target = ? WHERE pk = ?")
            .bind(serde_json::to_string(target).expect("a target serialises"))
            .bind(job.pk)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Adds a failure reason to a job without touching its tasks.
    async fn add_failure_reason(&self, job: &Job, reason: &str) -> Result<(), JobStoreError> {
        let mut reasons = self.job(&job.id).await?.failure_reasons;
        reasons.push(reason.to_owned());
        sqlx::query("UPDATE jobs SET failure_reasons = ? WHERE pk = ?")
            .bind(serde_json::to_string(&reasons).expect("strings serialise"))
            .bind(job.pk)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn lease_tasks(
        &self,
        job: &Job,
        owner: &str,
        limit: u32,
        lease: Duration,
    ) -> Result<Vec<Task>, JobStoreError> {
        let now = now_ms();
        let expires = now + lease.as_millis() as i64;
        let token = fastrand::i64(..);
        let mut tx = self.pool.begin().await?;
        // Leases that expired first (their runs are gone), then pending tasks: only the
        // second changes the counts. Queries of a job's leased tasks name their index:
        // without statistics SQLite walked the job's whole primary key instead, once per
        // batch, which made a job of a million tasks quadratic.
        let mut rows: Vec<LeasedRow> = sqlx::query_as(
            "UPDATE tasks SET lease_owner = ?, lease_token = ?, lease_expires = ? \
             WHERE job_pk = ? AND seq IN ( \
               SELECT seq FROM tasks INDEXED BY tasks_by_state \
               WHERE job_pk = ? AND state = 'leased' AND lease_expires < ? \
               ORDER BY seq LIMIT ?) \
             RETURNING seq, bucket, key, version_id, size, attempts, write_started, etag, \
             storage_class, encryption_status",
        )
        .bind(owner)
        .bind(token)
        .bind(expires)
        .bind(job.pk)
        .bind(job.pk)
        .bind(now)
        .bind(i64::from(limit))
        .fetch_all(&mut *tx)
        .await?;
        let room = i64::from(limit) - rows.len() as i64;
        if room > 0 {
            let pending: Vec<LeasedRow> = sqlx::query_as(
                "UPDATE tasks SET state = 'leased', lease_owner = ?, lease_token = ?, \
                 lease_expires = ? \
                 WHERE job_pk = ? AND seq IN ( \
                   SELECT seq FROM tasks WHERE job_pk = ? AND state = 'pending' \
                   ORDER BY spread, seq LIMIT ?) \
                 RETURNING seq, bucket, key, version_id, size, attempts, write_started, etag, \
             storage_class, encryption_status",
            )
            .bind(owner)
            .bind(token)
            .bind(expires)
            .bind(job.pk)
            .bind(job.pk)
            .bind(room)
            .fetch_all(&mut *tx)
            .await?;
            if !pending.is_empty() {
                sqlx::query(
                    "UPDATE jobs SET tasks_pending = tasks_pending - ?, \
                     tasks_leased = tasks_leased + ? WHERE pk = ?",
                )
                .bind(pending.len() as i64)
                .bind(pending.len() as i64)
                .bind(job.pk)
                .execute(&mut *tx)
                .await?;
            }
            rows.extend(pending);
        }
        tx.commit().await?;
        let mut tasks: Vec<Task> = rows.into_iter().map(|r| r.into_task(token)).collect();
        tasks.sort_by_key(|t| t.seq);
        Ok(tasks)
    }

    /// Extends the leases `owner` holds on a job's tasks.
    async fn renew_leases(
        &self,
        job: &Job,
        owner: &str,
        lease: Duration,
    ) -> Result<(), JobStoreError> {
        sqlx::query(
            "UPDATE tasks INDEXED BY tasks_by_state SET lease_expires = ? \
             WHERE job_pk = ? AND state = 'leased' AND lease_owner = ?",
        )
        .bind(now_ms() + lease.as_millis() as i64)
        .bind(job.pk)
        .bind(owner)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn record_results(
        &self,
        job: &Job,
        owner: &str,
        results: &[TaskResult],
    ) -> Result<u64, JobStoreError> {
        let mut tx = self.pool.begin().await?;
        let mut by_state = [0i64; TaskState::ALL.len()];
        for r in results {
            let done = sqlx::query(
                "UPDATE tasks SET state = ?, attempts = ?, http_status = ?, error_code = ?, \
                 result_message = ?, lease_owner = NULL, lease_token = NULL, \
                 lease_expires = NULL \
                 WHERE job_pk = ? AND seq = ? AND state = 'leased' AND lease_owner = ? \
                 AND lease_token = ?",
            )
            .bind(r.state.as_str())
            .bind(i64::from(r.attempts))
            .bind(i64::from(r.http_status))
            .bind(r.error_code.as_deref())
            .bind(&r.message)
            .bind(job.pk)
            .bind(r.seq)
            .bind(owner)
            .bind(r.lease_token)
            .execute(&mut *tx)
            .await?;
            by_state[r.state as usize] += done.rows_affected() as i64;
        }
        let recorded: i64 = by_state.iter().sum();
        if recorded > 0 {
            let n = |s: TaskState| by_state[s as usize];
            sqlx::query(
                "UPDATE jobs SET tasks_leased = tasks_leased - ?, \
                 tasks_pending = tasks_pending + ?, tasks_succeeded = tasks_succeeded + ?, \
                 tasks_failed = tasks_failed + ?, tasks_skipped = tasks_skipped + ? WHERE pk = ?",
            )
            .bind(recorded - n(TaskState::Leased))
            .bind(n(TaskState::Pending))
            .bind(n(TaskState::Succeeded))
            .bind(n(TaskState::Failed))
            .bind(n(TaskState::Skipped))
            .bind(job.pk)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(recorded as u64)
    }

    async fn set_estimate(
        &self,
        job: &Job,
        estimate: &serde_json::Value,
    ) -> Result<(), JobStoreError> {
        sqlx::query("UPDATE jobs SET estimate = ? WHERE pk = ?")
            .bind(estimate.to_string())
            .bind(job.pk)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn settled_by_listed_mode(&self, job: &Job) -> Result<Settled, JobStoreError> {
        let rows = sqlx::query(
            "SELECT state, encryption_status, COUNT(*) AS n, COALESCE(SUM(size), 0) AS bytes \
             FROM tasks WHERE job_pk = ? \
             AND (state = 'succeeded' OR (state = 'skipped' AND error_code IS NULL)) \
             GROUP BY state, encryption_status",
        )
        .bind(job.pk)
        .fetch_all(&self.pool)
        .await?;
        Ok(settled_of(rows.iter().map(|r| {
            (
                r.get::<String, _>("state"),
                r.get::<Option<String>, _>("encryption_status"),
                r.get::<i64, _>("n"),
                r.get::<i64, _>("bytes"),
            )
        })))
    }

    async fn lock_sweep(
        &self,
        name: &str,
        owner: &str,
        gone: Option<&str>,
        lease: Duration,
    ) -> Result<Option<SweepLock>, JobStoreError> {
        let now = now_ms();
        let mut tx = self.pool.begin().await?;
        sqlx::query("INSERT INTO sweeps (name) VALUES (?) ON CONFLICT (name) DO NOTHING")
            .bind(name)
            .execute(&mut *tx)
            .await?;
        let taken = sqlx::query(
            "UPDATE sweeps SET lock_owner = ?, lock_expires = ?, \
             lock_since = CASE WHEN lock_owner = ? THEN lock_since ELSE ? END \
             WHERE name = ? AND (lock_owner IS NULL OR lock_owner = ? OR lock_owner = ? \
             OR lock_expires < ?)",
        )
        .bind(owner)
        .bind(now + lease.as_millis() as i64)
        .bind(owner)
        .bind(now)
        .bind(name)
        .bind(owner)
        .bind(gone)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        let holder = if taken.rows_affected() == 1 {
            None
        } else {
            let row = sqlx::query("SELECT lock_owner, lock_since FROM sweeps WHERE name = ?")
                .bind(name)
                .fetch_one(&mut *tx)
                .await?;
            Some(SweepLock {
                owner: row.get::<Option<String>, _>(0).unwrap_or_default(),
                since: row.get::<Option<i64>, _>(1).unwrap_or_default(),
            })
        };
        tx.commit().await?;
        Ok(holder)
    }

    async fn unlock_sweep(&self, name: &str, owner: &str) -> Result<(), JobStoreError> {
        sqlx::query(
            "UPDATE sweeps SET lock_owner = NULL, lock_expires = NULL, lock_since = NULL \
             WHERE name = ? AND lock_owner = ?",
        )
        .bind(name)
        .bind(owner)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn sweep_job(
        &self,
        name: &str,
        inventory: &str,
    ) -> Result<Option<String>, JobStoreError> {
        Ok(
            sqlx::query("SELECT job_id FROM sweep_jobs WHERE name = ? AND inventory = ?")
                .bind(name)
                .bind(inventory)
                .fetch_optional(&self.pool)
                .await?
                .map(|r| r.get(0)),
        )
    }

    async fn sweep_jobs(&self, name: &str) -> Result<Vec<(String, String)>, JobStoreError> {
        let rows = sqlx::query(
            "SELECT inventory, job_id FROM sweep_jobs WHERE name = ? ORDER BY inventory DESC",
        )
        .bind(name)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
    }

    async fn add_sweep_job(
        &self,
        name: &str,
        inventory: &str,
        job_id: &str,
    ) -> Result<(), JobStoreError> {
        sqlx::query(
            "INSERT INTO sweep_jobs (name, inventory, job_id, created_at) VALUES (?, ?, ?, ?)",
        )
        .bind(name)
        .bind(inventory)
        .bind(job_id)
        .bind(now_ms())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn mark_write_started(
        &self,
        job: &Job,
        owner: &str,
        seqs: &[i64],
    ) -> Result<(), JobStoreError> {
        let mut update = QueryBuilder::<Sqlite>::new(
            "UPDATE tasks SET write_started = 1 WHERE state = 'leased' AND job_pk = ",
        );
        update
            .push_bind(job.pk)
            .push(" AND lease_owner = ")
            .push_bind(owner)
            .push(" AND seq IN (");
        let mut list = update.separated(", ");
        for seq in seqs {
            list.push_bind(*seq);
        }
        update.push(")");
        update.build().execute(&self.pool).await?;
        Ok(())
    }

    async fn claim_report(
        &self,
        job: &Job,
        owner: &str,
        gone: Option<&str>,
        lease: Duration,
    ) -> Result<bool, JobStoreError> {
        let now = now_ms();
        let done = sqlx::query(
            "UPDATE jobs SET report_claim = ?, report_claim_expires = ? WHERE pk = ? \
             AND report_written_at IS NULL AND (report_claim IS NULL OR report_claim = ? \
             OR report_claim = ? OR report_claim_expires < ?)",
        )
        .bind(owner)
        .bind(now + lease.as_millis() as i64)
        .bind(job.pk)
        .bind(owner)
        .bind(gone)
        .bind(now)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn report_written(&self, job: &Job) -> Result<(), JobStoreError> {
        sqlx::query("UPDATE jobs SET report_written_at = ?, report_claim = NULL WHERE pk = ?")
            .bind(now_ms())
            .bind(job.pk)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn release_leases(&self, job: &Job, owner: &str) -> Result<u64, JobStoreError> {
        let mut tx = self.pool.begin().await?;
        let done = sqlx::query(
            "UPDATE tasks INDEXED BY tasks_by_state SET state = 'pending', lease_owner = NULL, \
             lease_token = NULL, lease_expires = NULL \
             WHERE job_pk = ? AND state = 'leased' AND lease_owner = ?",
        )
        .bind(job.pk)
        .bind(owner)
        .execute(&mut *tx)
        .await?;
        let n = done.rows_affected() as i64;
        if n > 0 {
            sqlx::query(
                "UPDATE jobs SET tasks_leased = tasks_leased - ?, tasks_pending = tasks_pending + ? \
                 WHERE pk = ?",
            )
            .bind(n)
            .bind(n)
            .bind(job.pk)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(n as u64)
    }

    /// Owners holding leases on a job's tasks.
    async fn lease_owners(&self, job: &Job) -> Result<Vec<String>, JobStoreError> {
        let rows = sqlx::query(
            "SELECT DISTINCT lease_owner FROM tasks INDEXED BY tasks_by_state \
             WHERE job_pk = ? AND state = 'leased'",
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
    async fn heartbeat(
        &self,
        job: &Job,
        owner: &str,
        tasks_done: u64,
        bytes: u64,
    ) -> Result<(), JobStoreError> {
        let now = now_ms();
        sqlx::query(
            "INSERT INTO workers (job_pk, owner, started_at, last_seen, tasks_done, bytes) \
             VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (job_pk, owner) DO UPDATE SET \
             last_seen = excluded.last_seen, tasks_done = excluded.tasks_done, \
             bytes = excluded.bytes",
        )
        .bind(job.pk)
        .bind(owner)
        .bind(now)
        .bind(now)
        .bind(tasks_done as i64)
        .bind(bytes as i64)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn workers(&self, job: &Job) -> Result<Vec<Worker>, JobStoreError> {
        let rows: Vec<WorkerRow> = sqlx::query_as(
            "SELECT owner, started_at, last_seen, tasks_done, bytes FROM workers \
             WHERE job_pk = ? ORDER BY last_seen DESC, owner",
        )
        .bind(job.pk)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.into_iter().map(Worker::from).collect())
    }

    async fn task_page(
        &self,
        job: &Job,
        after_seq: i64,
        limit: u32,
    ) -> Result<Vec<(i64, TaskRecord)>, JobStoreError> {
        let rows: Vec<RecordRow> = sqlx::query_as(
            "SELECT seq, bucket, key, version_id, state, http_status, error_code, result_message \
             FROM tasks WHERE job_pk = ? AND seq > ? ORDER BY seq LIMIT ?",
        )
        .bind(job.pk)
        .bind(after_seq)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter().map(|r| r.into_record(job)).collect()
    }
}

/// Creates the database file readable by its owner only; an existing file is left as it is.
fn create_private_file(path: &PathBuf) -> Result<std::fs::File, String> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| format!("cannot create {}: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::job::{JobSpec, TaskResult};
    use crate::sse::SseSpec;

    /// The counts the task table gives, the slow way.
    async fn counted(store: &SqliteJobStore, job: &Job) -> TaskCounts {
        let rows =
            sqlx::query("SELECT state, COUNT(*) AS n FROM tasks WHERE job_pk = ? GROUP BY state")
                .bind(job.pk)
                .fetch_all(&store.pool)
                .await
                .unwrap();
        let mut c = TaskCounts::default();
        for row in rows {
            let n = row.get::<i64, _>("n") as u64;
            match row.get::<String, _>("state").as_str() {
                "pending" => c.pending += n,
                "leased" => c.leased += n,
                "succeeded" => c.succeeded += n,
                "failed" => c.failed += n,
                "skipped" => c.skipped += n,
                other => panic!("state {other}"),
            }
            c.total += n;
        }
        c
    }

    fn result(task: &Task, state: TaskState) -> TaskResult {
        TaskResult {
            seq: task.seq,
            lease_token: task.lease_token,
            state,
            attempts: 1,
            http_status: 200,
            error_code: None,
            message: String::new(),
        }
    }

    /// A job store in `dir` with one SSE-S3 job of the CSV manifest `rows`.
    async fn store_with_job(dir: &std::path::Path, rows: &str) -> (SqliteJobStore, Job) {
        let store = SqliteJobStore::open(&dir.join("j.db").display().to_string())
            .await
            .unwrap();
        let manifest = dir.join("list.csv");
        std::fs::write(&manifest, rows).unwrap();
        let new = NewJob {
            spec: JobSpec {
                sse: SseSpec::SseS3,
                source_sse_c: None,
                bucket_key: false,
                filter: Default::default(),
                confirmation_required: false,
                trust_inventory: false,
                report: None,
            },
            target: None,
            priority: 10,
            description: String::new(),
            manifest_location: String::new(),
        };
        let (job, _) = crate::job::create_job(&store, new, manifest).await.unwrap();
        (store, job)
    }

    /// A manifest sorted by key (as inventories are) is leased spread over its prefixes:
    /// S3's request rates are per prefix.
    #[tokio::test]
    async fn a_batch_of_leases_spreads_over_prefixes() {
        let dir = tempfile::tempdir().unwrap();
        let rows: String = (0..20)
            .flat_map(|p| (0..200).map(move |i| format!("bkt,p{p:02}/k{i:04}\n")))
            .collect();
        let (store, job) = store_with_job(dir.path(), &rows).await;
        let batch = store
            .lease_tasks(&job, "a", 64, Duration::from_secs(60))
            .await
            .unwrap();
        let prefixes: std::collections::BTreeSet<&str> =
            batch.iter().map(|t| &t.key[..3]).collect();
        assert!(
            prefixes.len() >= 15,
            "64 leases over {} of 20 prefixes: {prefixes:?}",
            prefixes.len()
        );
    }

    #[tokio::test]
    async fn the_counts_on_the_job_row_follow_every_change_of_the_tasks() {
        let dir = tempfile::tempdir().unwrap();
        let rows: String = (0..50).map(|i| format!("bkt,k{i}\n")).collect();
        let (store, job) = store_with_job(dir.path(), &rows).await;
        let check = |what: &'static str| {
            let store = store.clone();
            let job = job.clone();
            async move {
                let kept = store.task_counts(&job).await.unwrap();
                assert_eq!(kept, counted(&store, &job).await, "after {what}");
                kept
            }
        };
        assert_eq!(check("ingestion").await.pending, 50);

        let lease = Duration::from_secs(60);
        let a = store.lease_tasks(&job, "a", 20, lease).await.unwrap();
        let b = store.lease_tasks(&job, "b", 10, lease).await.unwrap();
        assert_eq!(check("leasing").await.leased, 30);

        let mut results: Vec<TaskResult> = a[..5]
            .iter()
            .map(|t| result(t, TaskState::Succeeded))
            .collect();
        results.extend(a[5..8].iter().map(|t| result(t, TaskState::Failed)));
        results.extend(a[8..10].iter().map(|t| result(t, TaskState::Skipped)));
        // b's tasks recorded by a: not a's to record, so not counted.
        results.push(result(&b[0], TaskState::Succeeded));
        assert_eq!(store.record_results(&job, "a", &results).await.unwrap(), 10);
        let c = check("recording").await;
        assert_eq!((c.succeeded, c.failed, c.skipped, c.leased), (5, 3, 2, 20));

        assert_eq!(store.release_leases(&job, "a").await.unwrap(), 10);
        assert_eq!(check("releasing").await.pending, 30);

        // An expired lease taken over: still leased, by another owner.
        let gone = store
            .lease_tasks(&job, "c", 100, Duration::ZERO)
            .await
            .unwrap();
        assert_eq!(gone.len(), 30);
        let taken = store.lease_tasks(&job, "d", 100, lease).await.unwrap();
        assert_eq!(taken.len(), 30, "expired leases go to the next owner");
        assert_eq!(check("a takeover").await.leased, 40);

        store.fail(&job, "stopped").await.unwrap();
        assert_eq!(check("failing").await.total, 0);
    }
}
