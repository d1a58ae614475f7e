//! The job store: jobs and their tasks, behind one trait, [`JobStore`], that the runner
//! and the command line use through `Arc<dyn JobStore>` without naming a database. SQLite
//! (`sqlite.rs`) is the embedded default; [`open`] picks the implementation from the
//! location.
//!
//! The rules every implementation keeps:
//! - status changes are compare-and-set on the status a change was computed from, so two
//!   processes steering one job cannot undo each other's change unnoticed;
//! - a task is leased to an owner until an expiry; a result counts only while the task is
//!   still leased to the owner recording it;
//! - the counts of tasks by state live on the job row and change in the same transaction
//!   as the tasks, so that reading them costs the same at any job size.
//!
//! Knows nothing of manifests' formats, targets or the terminal.

mod postgres;
mod rows;
mod sqlite;

use std::time::Duration;

use super::model::{
    Census, IngestCounts, Job, JobStatus, Operation, TargetSpec, Task, TaskCounts, TaskRecord,
    TaskResult, Worker,
};
use crate::manifest::{Entry, ManifestSummary};

pub use postgres::PostgresJobStore;
pub use sqlite::SqliteJobStore;

#[derive(Debug, thiserror::Error)]
pub enum JobStoreError {
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

impl JobStoreError {
    /// Whether this is the user's doing (an unknown id, a refused transition), not the store's.
    pub fn is_user_error(&self) -> bool {
        match self {
            JobStoreError::NotFound(_)
            | JobStoreError::Ambiguous { .. }
            | JobStoreError::Refused { .. } => true,
            JobStoreError::Open { .. }
            | JobStoreError::Database(_)
            | JobStoreError::Migrate(_)
            | JobStoreError::Corrupt { .. } => false,
        }
    }
}

/// What a job settled, by the encryption its manifest rows showed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Settled {
    /// Tasks that succeeded: objects the job re-encrypted.
    pub succeeded: Census,
    /// Tasks skipped because their object was already as wanted.
    pub found_compliant: Census,
}

/// Who holds a sweep's lock, and since when (ms since the epoch).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SweepLock {
    pub owner: String,
    pub since: i64,
}

/// A new job's fixed parts, before its manifest is read.
#[derive(Debug, Clone)]
pub struct NewJob {
    pub spec: super::model::JobSpec,
    pub target: Option<TargetSpec>,
    pub priority: i64,
    pub description: String,
    pub manifest_location: String,
}

/// Opens the job store at `location`: a `postgres://` (or `postgresql://`) URL, shared by
/// every worker of a fleet; otherwise a SQLite file path or `sqlite:` URL (created when
/// missing). Its schema is brought up to date; one newer than this binary is refused.
pub async fn open(location: &str) -> Result<std::sync::Arc<dyn JobStore>, JobStoreError> {
    if location.starts_with("postgres://") || location.starts_with("postgresql://") {
        return Ok(std::sync::Arc::new(PostgresJobStore::open(location).await?));
    }
    Ok(std::sync::Arc::new(SqliteJobStore::open(location).await?))
}

/// A migration that failed, said for people: a schema newer than this binary is not
/// altered.
fn migrate_error(location: &str, e: sqlx::migrate::MigrateError) -> JobStoreError {
    use sqlx::migrate::MigrateError;
    let message = match e {
        MigrateError::VersionMissing(version) => format!(
            "its schema has migration {version}, which this reseal does not know: it was made \
             by a newer reseal; run that version (the job store was left as it is)"
        ),
        MigrateError::VersionMismatch(version) => format!(
            "its migration {version} differs from this reseal's: it was made by another \
             build; the job store was left as it is"
        ),
        other => return JobStoreError::Migrate(other),
    };
    JobStoreError::Open {
        location: location.to_owned(),
        message,
    }
}

/// The order tasks are leased in: one of [`SPREAD_BUCKETS`] buckets by a hash of the
/// object (FNV-1a), then the manifest's order, so that a batch spreads over prefixes
/// whatever the manifest's order. Stable, so that both stores agree. Few buckets, not the
/// whole hash: within a bucket tasks arrive in order, so ingestion appends to a thousand
/// places in the index instead of writing all over it (a whole 32-bit hash made a
/// million-task ingestion several times slower).
pub(crate) fn spread(bucket: &str, key: &str) -> i64 {
    let mut hash: u32 = 0x811c_9dc5;
    for &b in bucket.as_bytes().iter().chain(b"/").chain(key.as_bytes()) {
        hash ^= u32::from(b);
        hash = hash.wrapping_mul(0x0100_0193);
    }
    i64::from(hash % SPREAD_BUCKETS)
}

/// How many lease-order buckets [`spread`] makes.
const SPREAD_BUCKETS: u32 = 1024;

/// What a job settled, by the encryption its manifest rows showed: from rows of (task
/// state, listed encryption status, objects, bytes).
fn settled_of(rows: impl Iterator<Item = (String, Option<String>, i64, i64)>) -> Settled {
    let mut settled = Settled::default();
    for (state, mode, objects, bytes) in rows {
        let census = if state == "succeeded" {
            &mut settled.succeeded
        } else {
            &mut settled.found_compliant
        };
        let t = census
            .by_mode
            .entry(Census::mode_name(mode.and_then(|m| m.parse().ok())))
            .or_default();
        t.objects += objects.max(0) as u64;
        t.bytes += bytes.max(0) as u64;
    }
    settled
}

/// The `LIKE` pattern of the jobs whose id starts with `given` (wildcards in it dropped).
fn prefix_pattern(given: &str) -> String {
    format!("{}%", given.replace(['%', '_'], ""))
}

/// The job `given` names among the rows its id or prefix matched (at most 3): the exact id,
/// or the only match; otherwise not found or ambiguous.
fn pick_job(given: &str, rows: Vec<rows::JobRow>) -> Result<Job, JobStoreError> {
    let mut jobs: Vec<Job> = rows
        .into_iter()
        .map(rows::JobRow::into_job)
        .collect::<Result<_, _>>()?;
    if given.is_empty() {
        return Err(JobStoreError::NotFound(given.to_owned()));
    }
    if let Some(i) = jobs.iter().position(|j| j.id == given) {
        return Ok(jobs.swap_remove(i));
    }
    match jobs.len() {
        0 => Err(JobStoreError::NotFound(given.to_owned())),
        1 => Ok(jobs.remove(0)),
        _ => Err(JobStoreError::Ambiguous {
            given: given.to_owned(),
            matches: jobs
                .iter()
                .map(|j| j.id.as_str())
                .collect::<Vec<_>>()
                .join(", "),
        }),
    }
}

/// Jobs and tasks, wherever they are kept.
#[async_trait::async_trait]
pub trait JobStore: Send + Sync + std::fmt::Debug {
    async fn insert_job(&self, new: &NewJob) -> Result<Job, JobStoreError>;

    /// Finds a job by its id or an unambiguous prefix of it.
    async fn job(&self, id_or_prefix: &str) -> Result<Job, JobStoreError>;

    /// Jobs, highest priority first, then oldest first.
    async fn list_jobs(&self, status: Option<JobStatus>) -> Result<Vec<Job>, JobStoreError>;

    /// How many of a job's tasks are in each state (from the job row: no task is read).
    async fn task_counts(&self, job: &Job) -> Result<TaskCounts, JobStoreError>;

    /// Moves `job` from `from` to `to`, only if it is still in `from`.
    async fn set_status(
        &self,
        job: &Job,
        from: JobStatus,
        to: JobStatus,
    ) -> Result<(), JobStoreError>;

    /// Moves a job to `to` from any of `from`; stamps start and end times. Returns whether
    /// it moved.
    async fn transition(
        &self,
        job: &Job,
        from: &[JobStatus],
        to: JobStatus,
    ) -> Result<bool, JobStoreError>;

    /// Sets the priority of a job that is not finished, only if its status did not change
    /// meanwhile.
    async fn update_priority(&self, job: &Job, priority: i64) -> Result<(), JobStoreError>;

    /// Adds tasks numbered from `first_seq`, in one transaction.
    async fn insert_tasks(
        &self,
        job: &Job,
        first_seq: u64,
        entries: &[Entry],
    ) -> Result<(), JobStoreError>;

    /// Ends preparation: records the manifest and counts and moves the job from Preparing
    /// to `to`, only if it is still Preparing (otherwise its tasks are dropped).
    async fn finish_preparing(
        &self,
        job: &Job,
        manifest: &ManifestSummary,
        counts: &IngestCounts,
        census: &Census,
        to: JobStatus,
    ) -> Result<(), JobStoreError>;

    /// Records a job's estimate.
    async fn set_estimate(
        &self,
        job: &Job,
        estimate: &serde_json::Value,
    ) -> Result<(), JobStoreError>;

    /// The tasks that a job made compliant and those it found so, by the encryption their
    /// manifest rows showed (for a census after it).
    async fn settled_by_listed_mode(&self, job: &Job) -> Result<Settled, JobStoreError>;

    /// Takes a sweep's lock for `owner` until `lease` from now (or renews it). A lock held
    /// by another run that has not expired (and is not `gone`, known dead) is not taken:
    /// its holder and since when come back.
    async fn lock_sweep(
        &self,
        name: &str,
        owner: &str,
        gone: Option<&str>,
        lease: Duration,
    ) -> Result<Option<SweepLock>, JobStoreError>;

    /// Gives a sweep's lock back.
    async fn unlock_sweep(&self, name: &str, owner: &str) -> Result<(), JobStoreError>;

    /// The job a sweep made for an inventory (its date folder), if any.
    async fn sweep_job(&self, name: &str, inventory: &str)
    -> Result<Option<String>, JobStoreError>;

    /// The jobs a sweep made, newest inventory first: (inventory, job id).
    async fn sweep_jobs(&self, name: &str) -> Result<Vec<(String, String)>, JobStoreError>;

    /// Records that a sweep's job for an inventory is `job_id`.
    async fn add_sweep_job(
        &self,
        name: &str,
        inventory: &str,
        job_id: &str,
    ) -> Result<(), JobStoreError>;

    /// Marks a job Failed with `reason` and drops its tasks, so that nothing of it can run.
    async fn fail(&self, job: &Job, reason: &str) -> Result<(), JobStoreError>;

    /// Records the job's target at its first run (only when it has none).
    async fn set_target(&self, job: &Job, target: &TargetSpec) -> Result<(), JobStoreError>;

    /// Records what a run learned about a job's target (the same place, more facts).
    async fn update_target(&self, job: &Job, target: &TargetSpec) -> Result<(), JobStoreError>;

    /// Adds a failure reason to a job without touching its tasks.
    async fn add_failure_reason(&self, job: &Job, reason: &str) -> Result<(), JobStoreError>;

    /// Leases up to `limit` pending tasks (or tasks whose lease expired) to `owner`.
    async fn lease_tasks(
        &self,
        job: &Job,
        owner: &str,
        limit: u32,
        lease: Duration,
    ) -> Result<Vec<Task>, JobStoreError>;

    /// Extends the leases `owner` holds on a job's tasks.
    async fn renew_leases(
        &self,
        job: &Job,
        owner: &str,
        lease: Duration,
    ) -> Result<(), JobStoreError>;

    /// Records results in one transaction. A result counts only while its task is still
    /// leased to `owner`: a task whose lease was lost and taken by another runner is
    /// recorded once, by whoever holds it. Returns how many were recorded.
    async fn record_results(
        &self,
        job: &Job,
        owner: &str,
        results: &[TaskResult],
    ) -> Result<u64, JobStoreError>;

    /// Marks tasks `owner` holds as about to be written, durably, before their writes are
    /// sent (see [`Task::write_started`]).
    async fn mark_write_started(
        &self,
        job: &Job,
        owner: &str,
        seqs: &[i64],
    ) -> Result<(), JobStoreError>;

    /// Claims the writing of a finished job's completion report for `owner` until
    /// `lease` from now: false when it is written already, or another run holds a claim
    /// that has not expired (unless that run is `gone`, known dead).
    async fn claim_report(
        &self,
        job: &Job,
        owner: &str,
        gone: Option<&str>,
        lease: Duration,
    ) -> Result<bool, JobStoreError>;

    /// Records that the job's report is written whole.
    async fn report_written(&self, job: &Job) -> Result<(), JobStoreError>;

    /// Gives back the tasks `owner` holds (a run that stops), so another run takes them at
    /// once.
    async fn release_leases(&self, job: &Job, owner: &str) -> Result<u64, JobStoreError>;

    /// Owners holding leases on a job's tasks.
    async fn lease_owners(&self, job: &Job) -> Result<Vec<String>, JobStoreError>;

    /// Says that worker `owner` is alive on `job`, with what it has recorded so far (first
    /// call: it joins; times come from the job store's clock).
    async fn heartbeat(
        &self,
        job: &Job,
        owner: &str,
        tasks_done: u64,
        bytes: u64,
    ) -> Result<(), JobStoreError>;

    /// The workers that have run on a job, most recently seen first.
    async fn workers(&self, job: &Job) -> Result<Vec<Worker>, JobStoreError>;

    /// Tasks in sequence order after `after_seq`, for reports and inspections.
    async fn task_page(
        &self,
        job: &Job,
        after_seq: i64,
        limit: u32,
    ) -> Result<Vec<(i64, TaskRecord)>, JobStoreError>;

    /// Applies an operator's command; returns the job's status before and after.
    async fn apply(
        &self,
        id: &str,
        op: Operation,
    ) -> Result<(JobStatus, JobStatus), JobStoreError> {
        let job = self.job(id).await?;
        let to = job
            .status
            .after(op)
            .map_err(|message| JobStoreError::Refused {
                id: job.id.clone(),
                message,
            })?;
        self.set_status(&job, job.status, to).await?;
        Ok((job.status, to))
    }

    /// Sets a job's priority (refused for a finished job); returns the job as it now is.
    async fn set_priority(&self, id: &str, priority: i64) -> Result<Job, JobStoreError> {
        let job = self.job(id).await?;
        if job.status.is_final() {
            return Err(JobStoreError::Refused {
                id: job.id,
                message: format!(
                    "it is {}: a finished job's priority cannot change",
                    job.status
                ),
            });
        }
        self.update_priority(&job, priority).await?;
        self.job(&job.id).await
    }
}
