//! Rows as both databases give them, and the model values they become. The tables have the
//! same columns in SQLite and PostgreSQL (every whole number a 64-bit integer), so one
//! `FromRow` per row shape serves both, and a damaged row is reported the same way.

use crate::job::model::{IngestCounts, Job, Task, TaskCounts, TaskRecord, TaskState, Worker};

use super::JobStoreError;

#[derive(sqlx::FromRow)]
pub(super) struct JobRow {
    pk: i64,
    id: String,
    status: String,
    priority: i64,
    description: String,
    spec: String,
    manifest_location: String,
    manifest: Option<String>,
    rows_read: i64,
    rows_filtered: i64,
    rows_compliant: i64,
    census: Option<String>,
    estimate: Option<String>,
    delete_markers: i64,
    noncurrent_versions: i64,
    total_tasks: i64,
    total_bytes: i64,
    failure_reasons: String,
    target: Option<String>,
    created_at: i64,
    updated_at: i64,
    started_at: Option<i64>,
    finished_at: Option<i64>,
    report_written_at: Option<i64>,
    report_claim: Option<String>,
}

impl JobRow {
    pub(super) fn into_job(self) -> Result<Job, JobStoreError> {
        let id = self.id;
        let corrupt = |message: String| JobStoreError::Corrupt {
            id: id.clone(),
            message,
        };
        let count = |n: i64| n.max(0) as u64;
        Ok(Job {
            pk: self.pk,
            status: self.status.parse().map_err(corrupt)?,
            priority: self.priority,
            description: self.description,
            spec: serde_json::from_str(&self.spec).map_err(|e| corrupt(format!("spec: {e}")))?,
            manifest_location: self.manifest_location,
            manifest: self
                .manifest
                .map(|m| serde_json::from_str(&m))
                .transpose()
                .map_err(|e| corrupt(format!("manifest: {e}")))?,
            ingest: IngestCounts {
                rows_read: count(self.rows_read),
                rows_filtered: count(self.rows_filtered),
                rows_compliant: count(self.rows_compliant),
                delete_markers: count(self.delete_markers),
                noncurrent_versions: count(self.noncurrent_versions),
                tasks: count(self.total_tasks),
                bytes: count(self.total_bytes),
            },
            failure_reasons: serde_json::from_str(&self.failure_reasons)
                .map_err(|e| corrupt(format!("failure reasons: {e}")))?,
            target: self
                .target
                .map(|t| serde_json::from_str(&t))
                .transpose()
                .map_err(|e| corrupt(format!("target: {e}")))?,
            created_at: self.created_at,
            updated_at: self.updated_at,
            started_at: self.started_at,
            finished_at: self.finished_at,
            report_written_at: self.report_written_at,
            report_claim: self.report_claim,
            census: self
                .census
                .map(|c| serde_json::from_str(&c))
                .transpose()
                .map_err(|e| corrupt(format!("census: {e}")))?,
            estimate: self
                .estimate
                .map(|e| serde_json::from_str(&e))
                .transpose()
                .map_err(|e| corrupt(format!("estimate: {e}")))?,
            id,
        })
    }
}

/// The counts kept on a job row.
#[derive(sqlx::FromRow)]
pub(super) struct CountsRow {
    tasks_pending: i64,
    tasks_leased: i64,
    tasks_succeeded: i64,
    tasks_failed: i64,
    tasks_skipped: i64,
}

impl From<CountsRow> for TaskCounts {
    fn from(r: CountsRow) -> TaskCounts {
        let n = |v: i64| v.max(0) as u64;
        let c = TaskCounts {
            total: 0,
            pending: n(r.tasks_pending),
            leased: n(r.tasks_leased),
            succeeded: n(r.tasks_succeeded),
            failed: n(r.tasks_failed),
            skipped: n(r.tasks_skipped),
        };
        TaskCounts {
            total: c.pending + c.leased + c.succeeded + c.failed + c.skipped,
            ..c
        }
    }
}

/// A task as a lease returns it.
#[derive(sqlx::FromRow)]
pub(super) struct LeasedRow {
    seq: i64,
    bucket: String,
    key: String,
    version_id: Option<String>,
    size: Option<i64>,
    attempts: i64,
    write_started: bool,
    etag: Option<String>,
    storage_class: Option<String>,
    encryption_status: Option<String>,
}

impl LeasedRow {
    pub(super) fn into_task(self, lease_token: i64) -> Task {
        Task {
            seq: self.seq,
            bucket: self.bucket,
            key: self.key,
            version_id: self.version_id,
            size: self.size.map(|s| s.max(0) as u64),
            attempts: self.attempts.max(0) as u32,
            lease_token,
            write_started: self.write_started,
            etag: self.etag,
            storage_class: self.storage_class,
            // Written by ingestion from a parsed mode: anything else is no statement.
            encryption_status: self.encryption_status.and_then(|m| m.parse().ok()),
        }
    }
}

/// A task as a report or an inspection reads it.
#[derive(sqlx::FromRow)]
pub(super) struct RecordRow {
    seq: i64,
    bucket: String,
    key: String,
    version_id: Option<String>,
    state: String,
    http_status: Option<i64>,
    error_code: Option<String>,
    result_message: Option<String>,
}

impl RecordRow {
    pub(super) fn into_record(self, job: &Job) -> Result<(i64, TaskRecord), JobStoreError> {
        let state = task_state(job, &self.state)?;
        Ok((
            self.seq,
            TaskRecord {
                bucket: self.bucket,
                key: self.key,
                version_id: self.version_id,
                state,
                http_status: self.http_status.map(|s| s as u16),
                error_code: self.error_code,
                message: self.result_message,
            },
        ))
    }
}

#[derive(sqlx::FromRow)]
pub(super) struct WorkerRow {
    owner: String,
    started_at: i64,
    last_seen: i64,
    tasks_done: i64,
    bytes: i64,
}

impl From<WorkerRow> for Worker {
    fn from(r: WorkerRow) -> Worker {
        Worker {
            owner: r.owner,
            started_at: r.started_at,
            last_seen: r.last_seen,
            tasks_done: r.tasks_done.max(0) as u64,
            bytes: r.bytes.max(0) as u64,
        }
    }
}

pub(super) fn task_state(job: &Job, text: &str) -> Result<TaskState, JobStoreError> {
    TaskState::ALL
        .into_iter()
        .find(|s| s.as_str() == text)
        .ok_or_else(|| JobStoreError::Corrupt {
            id: job.id.clone(),
            message: format!("unknown task state {text:?}"),
        })
}
