//! Jobs: the model (statuses, tasks, the validated [`JobSpec`]), the job store, and the
//! ingestion of a manifest into a job's tasks. Prints nothing.

pub mod ingest;
pub mod model;
pub mod store;

pub use ingest::{IngestError, create_job, create_job_counting};
pub use model::{
    IngestCounts, Job, JobSpec, JobStatus, Operation, ReportScope, ReportSpec, Task, TaskCounts,
    TaskRecord, TaskResult, TaskState,
};
pub use store::{JobStore, NewJob, StoreError};

/// Formats milliseconds since the epoch as an RFC 3339 UTC time, to the second.
pub fn format_time(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
        .unwrap_or_else(|| ms.to_string())
}
