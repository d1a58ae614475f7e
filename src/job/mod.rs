//! Jobs: the model (statuses, tasks, the validated [`JobSpec`]), the job store, and the
//! ingestion of a manifest into a job's tasks. Prints nothing.

pub mod ingest;
pub mod model;
pub mod store;

pub use ingest::{IngestError, create_job, create_job_counting};
pub use model::{
    IngestCounts, Job, JobSpec, JobStatus, Operation, ReportScope, ReportSpec, TargetSpec, Task,
    TaskCounts, TaskRecord, TaskResult, TaskState, Worker,
};
pub use store::{
    JobStore, JobStoreError, NewJob, PostgresJobStore, SqliteJobStore, open as open_store,
};
