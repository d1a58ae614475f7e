//! Jobs: the model (statuses, tasks, the validated [`JobSpec`]), the job store, and the
//! ingestion of a manifest into a job's tasks. Prints nothing.

pub mod ingest;
pub mod model;
pub mod store;

pub use ingest::{
    IngestError, NoObserver, RowObserver, Survey, create_job, create_job_counting,
    create_job_observing, survey_manifest,
};
pub use model::{
    Census, IngestCounts, Job, JobSpec, JobStatus, Operation, ReportScope, ReportSpec, Tally,
    TargetSpec, Task, TaskCounts, TaskRecord, TaskResult, TaskState, Worker,
};
pub use store::{
    JobStore, JobStoreError, NewJob, PostgresJobStore, Settled, SqliteJobStore, SweepLock,
    open as open_store,
};
