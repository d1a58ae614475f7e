//! The job store in PostgreSQL, for a job that many workers share: any number of
//! `reseal job run` processes on any number of hosts point at one database. Migrations in
//! `migrations/postgres/` are applied at open (under PostgreSQL's advisory lock, so that
//! workers starting together do not race).
//!
//! The rules well-kept PostgreSQL queues converged on:
//! - workers lease batches with `FOR UPDATE SKIP LOCKED`, so two workers never take the
//!   same task and none waits for another;
//! - every time comes from the database's clock, never a worker's;
//! - a result counts only while the task is leased to the same owner under the same token
//!   (fencing), so a worker paused past its lease cannot record over the new owner;
//! - results of a batch are recorded by one statement, tasks are ingested with `COPY`;
//! - the counts of tasks by state live on the job row, changed in the same transaction.

use std::str::FromStr;
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::{Postgres, Row as _, Transaction};

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

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

/// Tries of a transaction that PostgreSQL aborted to break a deadlock (two workers locking
/// the same rows in another order, which a lease taken over while its old owner records
/// can cause).
const DEADLOCK_TRIES: u32 = 5;

#[derive(Clone, Debug)]
pub struct PostgresJobStore {
    pool: PgPool,
}

impl PostgresJobStore {
    /// Connects to `url` (libpq's `postgres://user:password@host:port/db?sslmode=…`) and
    /// brings its schema up to date. Errors show the URL without its password.
    pub async fn open(url: &str) -> Result<PostgresJobStore, JobStoreError> {
        let shown = redact_password(url);
        let open_err = |message: String| JobStoreError::Open {
            location: shown.clone(),
            message,
        };
        let options = PgConnectOptions::from_str(url).map_err(|e| open_err(e.to_string()))?;
        let pool = PgPoolOptions::new()
            .max_connections(8)
            .acquire_timeout(Duration::from_secs(30))
            .connect_with(options)
            .await
            .map_err(|e| open_err(crate::errors::chain(&e)))?;
        MIGRATOR
            .run(&pool)
            .await
            .map_err(|e| migrate_error(&shown, e))?;
        Ok(PostgresJobStore { pool })
    }

    async fn delete_tasks(&self, job: &Job) -> Result<(), JobStoreError> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("DELETE FROM tasks WHERE job_pk = $1")
            .bind(job.pk)
            .execute(&mut *tx)
            .await?;
        sqlx::query(
            "UPDATE jobs SET tasks_pending = 0, tasks_leased = 0, tasks_succeeded = 0, \
             tasks_failed = 0, tasks_skipped = 0 WHERE pk = $1",
        )
        .bind(job.pk)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn lease_once(
        &self,
        job: &Job,
        owner: &str,
        limit: u32,
        lease: Duration,
        token: i64,
    ) -> Result<Vec<LeasedRow>, sqlx::Error> {
        let lease_ms = lease.as_millis() as i64;
        let mut tx = self.pool.begin().await?;
        // Leases that expired first (their workers are gone or cut off), then pending
        // tasks in order: only the second changes the counts.
        let mut rows: Vec<LeasedRow> = sqlx::query_as(
            "WITH picked AS ( \
               SELECT seq FROM tasks WHERE job_pk = $1 AND state = 'leased' \
               AND lease_expires < reseal_now_ms() ORDER BY lease_expires LIMIT $2 \
               FOR UPDATE SKIP LOCKED) \
             UPDATE tasks t SET lease_owner = $3, lease_token = $4, \
               lease_expires = reseal_now_ms() + $5 \
             FROM picked WHERE t.job_pk = $1 AND t.seq = picked.seq \
             RETURNING t.seq, t.bucket, t.key, t.version_id, t.size, t.attempts, t.write_started, \
             t.etag, t.storage_class, t.encryption_status",
        )
        .bind(job.pk)
        .bind(i64::from(limit))
        .bind(owner)
        .bind(token)
        .bind(lease_ms)
        .fetch_all(&mut *tx)
        .await?;
        let room = i64::from(limit) - rows.len() as i64;
        if room > 0 {
            let pending: Vec<LeasedRow> = sqlx::query_as(
                "WITH picked AS ( \
                   SELECT seq FROM tasks WHERE job_pk = $1 AND state = 'pending' \
                   ORDER BY spread, seq LIMIT $2 FOR UPDATE SKIP LOCKED) \
                 UPDATE tasks t SET state = 'leased', lease_owner = $3, lease_token = $4, \
                   lease_expires = reseal_now_ms() + $5 \
                 FROM picked WHERE t.job_pk = $1 AND t.seq = picked.seq \
                 RETURNING t.seq, t.bucket, t.key, t.version_id, t.size, t.attempts, t.write_started, \
             t.etag, t.storage_class, t.encryption_status",
            )
            .bind(job.pk)
            .bind(room)
            .bind(owner)
            .bind(token)
            .bind(lease_ms)
            .fetch_all(&mut *tx)
            .await?;
            if !pending.is_empty() {
                move_pending_to_leased(&mut tx, job, pending.len() as i64).await?;
            }
            rows.extend(pending);
        }
        tx.commit().await?;
        Ok(rows)
    }

    async fn record_once(
        &self,
        job: &Job,
        owner: &str,
        results: &[TaskResult],
    ) -> Result<u64, sqlx::Error> {
        let mut tx = self.pool.begin().await?;
        let states: Vec<String> = sqlx::query(
            "UPDATE tasks t SET state = v.state, attempts = v.attempts, \
               http_status = v.http_status, error_code = v.error_code, \
               result_message = v.message, lease_owner = NULL, lease_token = NULL, \
               lease_expires = NULL \
             FROM UNNEST($2::bigint[], $3::bigint[], $4::text[], $5::bigint[], $6::bigint[], \
                         $7::text[], $8::text[]) \
               AS v(seq, token, state, attempts, http_status, error_code, message) \
             WHERE t.job_pk = $1 AND t.seq = v.seq AND t.state = 'leased' \
               AND t.lease_owner = $9 AND t.lease_token = v.token \
             RETURNING v.state",
        )
        .bind(job.pk)
        .bind(results.iter().map(|r| r.seq).collect::<Vec<i64>>())
        .bind(results.iter().map(|r| r.lease_token).collect::<Vec<i64>>())
        .bind(
            results
                .iter()
                .map(|r| r.state.as_str().to_owned())
                .collect::<Vec<String>>(),
        )
        .bind(
            results
                .iter()
                .map(|r| i64::from(r.attempts))
                .collect::<Vec<i64>>(),
        )
        .bind(
            results
                .iter()
                .map(|r| i64::from(r.http_status))
                .collect::<Vec<i64>>(),
        )
        .bind(
            results
                .iter()
                .map(|r| r.error_code.clone())
                .collect::<Vec<Option<String>>>(),
        )
        .bind(
            results
                .iter()
                .map(|r| r.message.clone())
                .collect::<Vec<String>>(),
        )
        .bind(owner)
        .fetch_all(&mut *tx)
        .await?
        .iter()
        .map(|r| r.get::<String, _>(0))
        .collect();
        if !states.is_empty() {
            let n = |s: TaskState| states.iter().filter(|t| *t == s.as_str()).count() as i64;
            sqlx::query(
                "UPDATE jobs SET tasks_leased = tasks_leased - $1, \
                 tasks_pending = tasks_pending + $2, tasks_succeeded = tasks_succeeded + $3, \
                 tasks_failed = tasks_failed + $4, tasks_skipped = tasks_skipped + $5 \
                 WHERE pk = $6",
            )
            .bind(states.len() as i64 - n(TaskState::Leased))
            .bind(n(TaskState::Pending))
            .bind(n(TaskState::Succeeded))
            .bind(n(TaskState::Failed))
            .bind(n(TaskState::Skipped))
            .bind(job.pk)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(states.len() as u64)
    }
}

/// Moves `n` tasks' count from pending to leased, or back (`n` negative).
async fn move_pending_to_leased(
    tx: &mut Transaction<'_, Postgres>,
    job: &Job,
    n: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE jobs SET tasks_pending = tasks_pending - $1, tasks_leased = tasks_leased + $1 \
         WHERE pk = $2",
    )
    .bind(n)
    .bind(job.pk)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Runs `attempt` again when PostgreSQL broke a deadlock by aborting it.
async fn retry_deadlocks<T, F, Fut>(mut attempt: F) -> Result<T, JobStoreError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, sqlx::Error>>,
{
    let mut tries = 0;
    loop {
        tries += 1;
        match attempt().await {
            Err(sqlx::Error::Database(e))
                if tries < DEADLOCK_TRIES && e.code().as_deref() == Some("40P01") =>
            {
                tokio::time::sleep(crate::time::backoff(tries)).await;
            }
            other => return other.map_err(JobStoreError::from),
        }
    }
}

/// A CSV field for `COPY … (FORMAT csv)`: text always quoted (so that an empty string is
/// not NULL), nothing at all for NULL.
fn csv_field(out: &mut Vec<u8>, value: Option<&str>) {
    if let Some(v) = value {
        out.push(b'"');
        for &b in v.as_bytes() {
            if b == b'"' {
                out.push(b'"');
            }
            out.push(b);
        }
        out.push(b'"');
    }
}

/// `postgres://user:password@host/db` shown as `postgres://user:***@host/db`.
fn redact_password(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let (authority, tail) = match rest.find(['/', '?']) {
        Some(i) => rest.split_at(i),
        None => (rest, ""),
    };
    match authority.rsplit_once('@') {
        Some((user_info, host)) => {
            let user = user_info.split(':').next().unwrap_or_default();
            let hidden = if user_info.contains(':') { ":***" } else { "" };
            format!("{scheme}://{user}{hidden}@{host}{tail}")
        }
        None => url.to_owned(),
    }
}

#[async_trait::async_trait]
impl JobStore for PostgresJobStore {
    async fn insert_job(&self, new: &NewJob) -> Result<Job, JobStoreError> {
        let id = uuid::Uuid::new_v4().to_string();
        let spec = serde_json::to_string(&new.spec).expect("a JobSpec serialises");
        sqlx::query(
            "INSERT INTO jobs (id, status, priority, description, spec, manifest_location, \
             created_at, updated_at, target) VALUES ($1, $2, $3, $4, $5, $6, reseal_now_ms(), reseal_now_ms(), $7)",
        )
        .bind(&id)
        .bind(JobStatus::New.as_str())
        .bind(new.priority)
        .bind(&new.description)
        .bind(spec)
        .bind(&new.manifest_location)
        .bind(
            new.target
                .as_ref()
                .map(|t| serde_json::to_string(t).expect("a target serialises")),
        )
        .execute(&self.pool)
        .await?;
        self.job(&id).await
    }

    async fn job(&self, id_or_prefix: &str) -> Result<Job, JobStoreError> {
        let given = id_or_prefix.trim();
        let rows: Vec<JobRow> =
            sqlx::query_as("SELECT * FROM jobs WHERE id = $1 OR id LIKE $2 ORDER BY id LIMIT 3")
                .bind(given)
                .bind(prefix_pattern(given))
                .fetch_all(&self.pool)
                .await?;
        pick_job(given, rows)
    }

    async fn list_jobs(&self, status: Option<JobStatus>) -> Result<Vec<Job>, JobStoreError> {
        let rows: Vec<JobRow> = sqlx::query_as(
            "SELECT * FROM jobs WHERE $1::text IS NULL OR status = $1 \
             ORDER BY priority DESC, created_at, pk",
        )
        .bind(status.map(JobStatus::as_str))
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter().map(JobRow::into_job).collect()
    }

    async fn task_counts(&self, job: &Job) -> Result<TaskCounts, JobStoreError> {
        let row: CountsRow = sqlx::query_as(
            "SELECT tasks_pending, tasks_leased, tasks_succeeded, tasks_failed, tasks_skipped \
             FROM jobs WHERE pk = $1",
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
        let done = sqlx::query(
            "UPDATE jobs SET status = $1, updated_at = reseal_now_ms() WHERE pk = $2 AND status = $3",
        )
        .bind(to.as_str())
        .bind(job.pk)
        .bind(from.as_str())
        .execute(&self.pool)
        .await?;
        if done.rows_affected() == 1 {
            return Ok(());
        }
        let now = self.job(&job.id).await?;
        Err(JobStoreError::Refused {
            id: job.id.clone(),
            message: format!(
                "it changed from {from} to {} meanwhile; it was not moved to {to}",
                now.status
            ),
        })
    }

    async fn transition(
        &self,
        job: &Job,
        from: &[JobStatus],
        to: JobStatus,
    ) -> Result<bool, JobStoreError> {
        let from: Vec<&str> = from.iter().map(|s| s.as_str()).collect();
        let done = sqlx::query(
            "UPDATE jobs SET status = $1, updated_at = reseal_now_ms(), \
             started_at = CASE WHEN $1 = 'Active' THEN COALESCE(started_at, reseal_now_ms()) \
               ELSE started_at END, \
             finished_at = CASE WHEN $1 IN ('Complete', 'Cancelled', 'Failed') THEN reseal_now_ms() \
               ELSE finished_at END \
             WHERE pk = $2 AND status = ANY($3)",
        )
        .bind(to.as_str())
        .bind(job.pk)
        .bind(from)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn update_priority(&self, job: &Job, priority: i64) -> Result<(), JobStoreError> {
        sqlx::query(
            "UPDATE jobs SET priority = $1, updated_at = reseal_now_ms() WHERE pk = $2 AND status = $3",
        )
        .bind(priority)
        .bind(job.pk)
        .bind(job.status.as_str())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn insert_tasks(
        &self,
        job: &Job,
        first_seq: u64,
        entries: &[Entry],
    ) -> Result<(), JobStoreError> {
        let mut data = Vec::with_capacity(entries.len() * 128);
        for (i, e) in entries.iter().enumerate() {
            let number = |n: Option<i64>| n.map(|n| n.to_string());
            data.extend_from_slice(
                format!("{},{},", job.pk, first_seq as i64 + i as i64).as_bytes(),
            );
            csv_field(&mut data, Some(&e.bucket));
            data.push(b',');
            csv_field(&mut data, Some(&e.key));
            data.push(b',');
            csv_field(&mut data, e.version_id.as_deref());
            data.push(b',');
            if let Some(size) = number(e.size.map(|s| s as i64)) {
                data.extend_from_slice(size.as_bytes());
            }
            data.push(b',');
            csv_field(&mut data, e.etag.as_deref());
            data.push(b',');
            if let Some(t) = number(e.last_modified) {
                data.extend_from_slice(t.as_bytes());
            }
            data.push(b',');
            csv_field(&mut data, e.storage_class.as_deref());
            data.push(b',');
            csv_field(&mut data, e.encryption_status.map(|m| m.as_str()));
            data.extend_from_slice(format!(",{}\n", spread(&e.bucket, &e.key)).as_bytes());
        }
        let mut tx = self.pool.begin().await?;
        let mut copy = tx
            .copy_in_raw(
                "COPY tasks (job_pk, seq, bucket, key, version_id, size, etag, last_modified, \
                 storage_class, encryption_status, spread) FROM STDIN (FORMAT csv)",
            )
            .await?;
        copy.send(data).await?;
        copy.finish().await?;
        sqlx::query("UPDATE jobs SET tasks_pending = tasks_pending + $1 WHERE pk = $2")
            .bind(entries.len() as i64)
            .bind(job.pk)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn finish_preparing(
        &self,
        job: &Job,
        manifest: &ManifestSummary,
        counts: &IngestCounts,
        census: &Census,
        to: JobStatus,
    ) -> Result<(), JobStoreError> {
        let done = sqlx::query(
            "UPDATE jobs SET status = $1, manifest = $2, rows_read = $3, rows_filtered = $4, \
             delete_markers = $5, noncurrent_versions = $6, total_tasks = $7, total_bytes = $8, \
             updated_at = reseal_now_ms(), rows_compliant = $11, census = $12 \
             WHERE pk = $9 AND status = $10",
        )
        .bind(to.as_str())
        .bind(serde_json::to_string(manifest).expect("a manifest summary serialises"))
        .bind(counts.rows_read as i64)
        .bind(counts.rows_filtered as i64)
        .bind(counts.delete_markers as i64)
        .bind(counts.noncurrent_versions as i64)
        .bind(counts.tasks as i64)
        .bind(counts.bytes as i64)
        .bind(job.pk)
        .bind(JobStatus::Preparing.as_str())
        .bind(counts.rows_compliant as i64)
        .bind(serde_json::to_string(census).expect("a census serialises"))
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

    async fn fail(&self, job: &Job, reason: &str) -> Result<(), JobStoreError> {
        self.delete_tasks(job).await?;
        let mut reasons = self.job(&job.id).await?.failure_reasons;
        reasons.push(reason.to_owned());
        sqlx::query(
            "UPDATE jobs SET status = $1, failure_reasons = $2, total_tasks = 0, \
             total_bytes = 0, updated_at = reseal_now_ms() WHERE pk = $3",
        )
        .bind(JobStatus::Failed.as_str())
        .bind(serde_json::to_string(&reasons).expect("strings serialise"))
        .bind(job.pk)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn set_target(&self, job: &Job, target: &TargetSpec) -> Result<(), JobStoreError> {
        sqlx::query("UPDATE jobs SET target = $1 WHERE pk = $2 AND target IS NULL")
            .bind(serde_json::to_string(target).expect("a target serialises"))
            .bind(job.pk)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn update_target(&self, job: &Job, target: &TargetSpec) -> Result<(), JobStoreError> {
        sqlx::query("UPDATE jobs SET target = $1 WHERE pk = $2")
            .bind(serde_json::to_string(target).expect("a target serialises"))
            .bind(job.pk)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn add_failure_reason(&self, job: &Job, reason: &str) -> Result<(), JobStoreError> {
        // Appended in one statement: two workers failing a job at once keep both reasons.
        sqlx::query(
            "UPDATE jobs SET failure_reasons = \
             (failure_reasons::jsonb || jsonb_build_array($1::text))::text WHERE pk = $2",
        )
        .bind(reason)
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
        let token = fastrand::i64(..);
        let rows = retry_deadlocks(|| self.lease_once(job, owner, limit, lease, token)).await?;
        let mut tasks: Vec<Task> = rows.into_iter().map(|r| r.into_task(token)).collect();
        tasks.sort_by_key(|t| t.seq);
        Ok(tasks)
    }

    async fn renew_leases(
        &self,
        job: &Job,
        owner: &str,
        lease: Duration,
    ) -> Result<(), JobStoreError> {
        sqlx::query(
            "UPDATE tasks SET lease_expires = reseal_now_ms() + $1 \
             WHERE job_pk = $2 AND state = 'leased' AND lease_owner = $3",
        )
        .bind(lease.as_millis() as i64)
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
        if results.is_empty() {
            return Ok(0);
        }
        retry_deadlocks(|| self.record_once(job, owner, results)).await
    }

    async fn set_estimate(
        &self,
        job: &Job,
        estimate: &serde_json::Value,
    ) -> Result<(), JobStoreError> {
        sqlx::query("UPDATE jobs SET estimate = $1 WHERE pk = $2")
            .bind(estimate.to_string())
            .bind(job.pk)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn settled_by_listed_mode(&self, job: &Job) -> Result<Settled, JobStoreError> {
        let rows = sqlx::query(
            "SELECT state, encryption_status, COUNT(*) AS n, COALESCE(SUM(size), 0)::bigint AS bytes \
             FROM tasks WHERE job_pk = $1 \
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
        let mut tx = self.pool.begin().await?;
        sqlx::query("INSERT INTO sweeps (name) VALUES ($1) ON CONFLICT (name) DO NOTHING")
            .bind(name)
            .execute(&mut *tx)
            .await?;
        let taken = sqlx::query(
            "UPDATE sweeps SET lock_owner = $1, lock_expires = reseal_now_ms() + $2, \
             lock_since = CASE WHEN lock_owner = $1 THEN lock_since ELSE reseal_now_ms() END \
             WHERE name = $3 AND (lock_owner IS NULL OR lock_owner = $1 OR lock_owner = $4 \
             OR lock_expires < reseal_now_ms())",
        )
        .bind(owner)
        .bind(lease.as_millis() as i64)
        .bind(name)
        .bind(gone)
        .execute(&mut *tx)
        .await?;
        let holder = if taken.rows_affected() == 1 {
            None
        } else {
            let row = sqlx::query("SELECT lock_owner, lock_since FROM sweeps WHERE name = $1")
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
             WHERE name = $1 AND lock_owner = $2",
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
            sqlx::query("SELECT job_id FROM sweep_jobs WHERE name = $1 AND inventory = $2")
                .bind(name)
                .bind(inventory)
                .fetch_optional(&self.pool)
                .await?
                .map(|r| r.get(0)),
        )
    }

    async fn sweep_jobs(&self, name: &str) -> Result<Vec<(String, String)>, JobStoreError> {
        let rows = sqlx::query(
            "SELECT inventory, job_id FROM sweep_jobs WHERE name = $1 ORDER BY inventory DESC",
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
            "INSERT INTO sweep_jobs (name, inventory, job_id, created_at) \
             VALUES ($1, $2, $3, reseal_now_ms())",
        )
        .bind(name)
        .bind(inventory)
        .bind(job_id)
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
        sqlx::query(
            "UPDATE tasks SET write_started = true WHERE job_pk = $1 AND seq = ANY($2) \
             AND state = 'leased' AND lease_owner = $3",
        )
        .bind(job.pk)
        .bind(seqs)
        .bind(owner)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn claim_report(
        &self,
        job: &Job,
        owner: &str,
        gone: Option<&str>,
        lease: Duration,
    ) -> Result<bool, JobStoreError> {
        let done = sqlx::query(
            "UPDATE jobs SET report_claim = $1, report_claim_expires = reseal_now_ms() + $2 \
             WHERE pk = $3 AND report_written_at IS NULL \
             AND (report_claim IS NULL OR report_claim = $1 OR report_claim = $4 \
                  OR report_claim_expires < reseal_now_ms())",
        )
        .bind(owner)
        .bind(lease.as_millis() as i64)
        .bind(job.pk)
        .bind(gone)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn report_written(&self, job: &Job) -> Result<(), JobStoreError> {
        sqlx::query(
            "UPDATE jobs SET report_written_at = reseal_now_ms(), report_claim = NULL \
             WHERE pk = $1",
        )
        .bind(job.pk)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn release_leases(&self, job: &Job, owner: &str) -> Result<u64, JobStoreError> {
        let mut tx = self.pool.begin().await?;
        let done = sqlx::query(
            "UPDATE tasks SET state = 'pending', lease_owner = NULL, lease_token = NULL, \
             lease_expires = NULL WHERE job_pk = $1 AND state = 'leased' AND lease_owner = $2",
        )
        .bind(job.pk)
        .bind(owner)
        .execute(&mut *tx)
        .await?;
        let n = done.rows_affected() as usize;
        if n > 0 {
            move_pending_to_leased(&mut tx, job, -(n as i64)).await?;
        }
        tx.commit().await?;
        Ok(n as u64)
    }

    async fn lease_owners(&self, job: &Job) -> Result<Vec<String>, JobStoreError> {
        let rows = sqlx::query(
            "SELECT DISTINCT lease_owner FROM tasks WHERE job_pk = $1 AND state = 'leased'",
        )
        .bind(job.pk)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .iter()
            .filter_map(|r| r.get::<Option<String>, _>(0))
            .collect())
    }

    async fn heartbeat(
        &self,
        job: &Job,
        owner: &str,
        tasks_done: u64,
        bytes: u64,
    ) -> Result<(), JobStoreError> {
        sqlx::query(
            "INSERT INTO workers (job_pk, owner, started_at, last_seen, tasks_done, bytes) \
             VALUES ($1, $2, reseal_now_ms(), reseal_now_ms(), $3, $4) ON CONFLICT (job_pk, owner) DO UPDATE SET \
             last_seen = EXCLUDED.last_seen, tasks_done = EXCLUDED.tasks_done, \
             bytes = EXCLUDED.bytes",
        )
        .bind(job.pk)
        .bind(owner)
        .bind(tasks_done as i64)
        .bind(bytes as i64)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn workers(&self, job: &Job) -> Result<Vec<Worker>, JobStoreError> {
        let rows: Vec<WorkerRow> = sqlx::query_as(
            "SELECT owner, started_at, last_seen, tasks_done, bytes FROM workers \
             WHERE job_pk = $1 ORDER BY last_seen DESC, owner",
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
             FROM tasks WHERE job_pk = $1 AND seq > $2 ORDER BY seq LIMIT $3",
        )
        .bind(job.pk)
        .bind(after_seq)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter().map(|r| r.into_record(job)).collect()
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn passwords_are_never_shown() {
        use super::redact_password as r;
        assert_eq!(
            r("postgres://reseal:s3cret@db.internal:5432/reseal?sslmode=require"),
            "postgres://reseal:***@db.internal:5432/reseal?sslmode=require"
        );
        assert_eq!(r("postgres://reseal@db/x"), "postgres://reseal@db/x");
        assert_eq!(r("postgresql://db/x"), "postgresql://db/x");
        assert_eq!(r("postgres://u:p%40ss@h/d"), "postgres://u:***@h/d");
    }

    #[test]
    fn copy_fields_quote_text_and_leave_null_empty() {
        let mut out = Vec::new();
        super::csv_field(&mut out, Some("a \"b\",\nc"));
        out.push(b',');
        super::csv_field(&mut out, None);
        out.push(b',');
        super::csv_field(&mut out, Some(""));
        assert_eq!(out, b"\"a \"\"b\"\",\nc\",,\"\"");
    }
}
