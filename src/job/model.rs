//! The job model: jobs, their statuses and the lifecycle that moves between them, tasks and
//! their states, and the validated [`JobSpec`] a job runs by.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::manifest::{Filter, ManifestSummary};
use crate::sse::{CustomerKeyRef, SseMode, SseSpec};

/// A job's status, with the names S3 Batch Operations uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum JobStatus {
    New,
    Preparing,
    Suspended,
    Ready,
    Active,
    Pausing,
    Paused,
    Cancelling,
    Cancelled,
    Failing,
    Failed,
    Complete,
}

impl JobStatus {
    pub const ALL: [JobStatus; 12] = [
        JobStatus::New,
        JobStatus::Preparing,
        JobStatus::Suspended,
        JobStatus::Ready,
        JobStatus::Active,
        JobStatus::Pausing,
        JobStatus::Paused,
        JobStatus::Cancelling,
        JobStatus::Cancelled,
        JobStatus::Failing,
        JobStatus::Failed,
        JobStatus::Complete,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            JobStatus::New => "New",
            JobStatus::Preparing => "Preparing",
            JobStatus::Suspended => "Suspended",
            JobStatus::Ready => "Ready",
            JobStatus::Active => "Active",
            JobStatus::Pausing => "Pausing",
            JobStatus::Paused => "Paused",
            JobStatus::Cancelling => "Cancelling",
            JobStatus::Cancelled => "Cancelled",
            JobStatus::Failing => "Failing",
            JobStatus::Failed => "Failed",
            JobStatus::Complete => "Complete",
        }
    }

    /// Complete, Cancelled and Failed: nothing moves a job out of these.
    pub fn is_final(self) -> bool {
        matches!(
            self,
            JobStatus::Complete | JobStatus::Cancelled | JobStatus::Failed
        )
    }

    /// The status an operator's command leads to from this one, or why it is not allowed.
    pub fn after(self, op: Operation) -> Result<JobStatus, String> {
        use JobStatus::*;
        let next = match (op, self) {
            (Operation::Confirm, Suspended) => Ready,
            (Operation::Pause, Ready) => Paused,
            (Operation::Pause, Active) => Pausing,
            (Operation::Resume, Paused) => Ready,
            (Operation::Resume, Pausing) => Active,
            (Operation::Cancel, New | Preparing | Suspended | Ready | Paused) => Cancelled,
            (Operation::Cancel, Active | Pausing) => Cancelling,
            (op, status) => {
                let allowed = match op {
                    Operation::Confirm => "a Suspended job",
                    Operation::Pause => "a Ready or Active job",
                    Operation::Resume => "a Paused or Pausing job",
                    Operation::Cancel => "a job that is not Cancelling, Failing or finished",
                };
                return Err(format!(
                    "cannot {} a job that is {}: only {allowed} can be {}",
                    op.verb(),
                    status,
                    op.past()
                ));
            }
        };
        Ok(next)
    }
}

impl fmt::Display for JobStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for JobStatus {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        JobStatus::ALL
            .into_iter()
            .find(|st| st.as_str().eq_ignore_ascii_case(s))
            .ok_or_else(|| {
                let names: Vec<&str> = JobStatus::ALL.iter().map(|s| s.as_str()).collect();
                format!("unknown job status {s:?} (one of {})", names.join(", "))
            })
    }
}

/// What an operator can do to a job.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    Confirm,
    Pause,
    Resume,
    Cancel,
}

impl Operation {
    fn verb(self) -> &'static str {
        match self {
            Operation::Confirm => "confirm",
            Operation::Pause => "pause",
            Operation::Resume => "resume",
            Operation::Cancel => "cancel",
        }
    }

    fn past(self) -> &'static str {
        match self {
            Operation::Confirm => "confirmed",
            Operation::Pause => "paused",
            Operation::Resume => "resumed",
            Operation::Cancel => "cancelled",
        }
    }
}

/// A task's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TaskState {
    Pending,
    Leased,
    Succeeded,
    Failed,
    Skipped,
}

impl TaskState {
    pub const ALL: [TaskState; 5] = [
        TaskState::Pending,
        TaskState::Leased,
        TaskState::Succeeded,
        TaskState::Failed,
        TaskState::Skipped,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            TaskState::Pending => "pending",
            TaskState::Leased => "leased",
            TaskState::Succeeded => "succeeded",
            TaskState::Failed => "failed",
            TaskState::Skipped => "skipped",
        }
    }
}

/// Which tasks a completion report lists.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ReportScope {
    /// Every task.
    All,
    /// Only the tasks that failed.
    Failed,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReportSpec {
    pub destination: String,
    pub scope: ReportScope,
}

/// Everything a job does, validated once when the job is created. Holds no secret: an
/// SSE-C key appears only as where it comes from and its MD5.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobSpec {
    pub sse: SseSpec,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_sse_c: Option<CustomerKeyRef>,
    #[serde(default)]
    pub bucket_key: bool,
    #[serde(default)]
    pub filter: Filter,
    #[serde(default)]
    pub confirmation_required: bool,
    /// Take an object's ETag, encryption and storage class from the inventory row instead
    /// of inspecting it first (S3): one request for an object that needs work.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub trust_inventory: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub report: Option<ReportSpec>,
}

/// Where a job's objects are, as the job records it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum TargetSpec {
    /// reseal's local store in this folder (absolute).
    Local { store: String },
    /// Amazon S3, or the S3-compatible store at this endpoint.
    S3 {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        endpoint_url: Option<String>,
        /// The key ARN the server reported for the job's KMS key when the job names an
        /// alias or the default key, learned from the first write, so that later runs and
        /// `reseal verify` can compare what HEAD reports.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        kms_key_arn: Option<String>,
    },
}

impl TargetSpec {
    /// S3 at this endpoint (`None`: Amazon S3).
    pub fn s3(endpoint_url: Option<String>) -> TargetSpec {
        TargetSpec::S3 {
            endpoint_url,
            kms_key_arn: None,
        }
    }

    /// Whether two specs name the same place (what was learned about keys aside).
    pub fn same_place(&self, other: &TargetSpec) -> bool {
        match (self, other) {
            (TargetSpec::Local { store: a }, TargetSpec::Local { store: b }) => a == b,
            (
                TargetSpec::S3 {
                    endpoint_url: a, ..
                },
                TargetSpec::S3 {
                    endpoint_url: b, ..
                },
            ) => a == b,
            _ => false,
        }
    }
}

impl fmt::Display for TargetSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TargetSpec::Local { store } => write!(f, "local store {store}"),
            TargetSpec::S3 {
                endpoint_url: None, ..
            } => f.write_str("Amazon S3"),
            TargetSpec::S3 {
                endpoint_url: Some(url),
                ..
            } => write!(f, "S3 endpoint {url}"),
        }
    }
}

impl JobSpec {
    /// The manifest columns this spec needs, with the option that needs each.
    pub fn required_columns(&self) -> Vec<(&'static str, crate::manifest::Column)> {
        use crate::manifest::Column;
        let mut needed = self.filter.required_columns();
        if self.trust_inventory {
            for column in [Column::ETag, Column::EncryptionStatus, Column::StorageClass] {
                needed.push(("--trust-inventory", column));
            }
        }
        needed
    }
}

/// Counts made while a manifest is ingested.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct IngestCounts {
    /// Every data row of the manifest.
    pub rows_read: u64,
    /// Current-version rows that the filters left out.
    pub rows_filtered: u64,
    /// Current-version rows the manifest shows already as the job wants, left out (a
    /// sweep's job, on its inventory's EncryptionStatus).
    #[serde(default)]
    pub rows_compliant: u64,
    pub delete_markers: u64,
    pub noncurrent_versions: u64,
    /// Rows that became tasks.
    pub tasks: u64,
    /// Sum of the tasks' sizes, where the manifest gives them.
    pub bytes: u64,
}

/// Objects and bytes by encryption mode (as S3 Inventory names it, or `unknown` where the
/// manifest does not say), of the current versions a manifest lists that a job's filters
/// keep.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Census {
    pub by_mode: std::collections::BTreeMap<String, Tally>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tally {
    pub objects: u64,
    pub bytes: u64,
}

impl Census {
    /// The name a census uses for a mode the manifest may or may not give.
    pub fn mode_name(mode: Option<SseMode>) -> String {
        mode.map_or_else(|| "unknown".to_owned(), |m| m.as_str().to_owned())
    }

    pub fn add(&mut self, mode: Option<SseMode>, bytes: u64) {
        let t = self.by_mode.entry(Census::mode_name(mode)).or_default();
        t.objects += 1;
        t.bytes += bytes;
    }

    pub fn total(&self) -> Tally {
        self.by_mode.values().fold(Tally::default(), |a, t| Tally {
            objects: a.objects + t.objects,
            bytes: a.bytes + t.bytes,
        })
    }
}

/// How many of a job's tasks are in each state.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskCounts {
    pub total: u64,
    pub pending: u64,
    pub leased: u64,
    pub succeeded: u64,
    pub failed: u64,
    pub skipped: u64,
}

/// A job as the job store holds it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Job {
    pub id: String,
    pub status: JobStatus,
    pub priority: i64,
    pub description: String,
    pub spec: JobSpec,
    /// What the user named as the manifest.
    pub manifest_location: String,
    /// Filled in once the manifest has been read.
    pub manifest: Option<ManifestSummary>,
    pub ingest: IngestCounts,
    pub failure_reasons: Vec<String>,
    /// Where the job's objects are; set at creation or at the first run.
    pub target: Option<TargetSpec>,
    /// Milliseconds since the Unix epoch.
    pub created_at: i64,
    pub updated_at: i64,
    pub started_at: Option<i64>,
    pub finished_at: Option<i64>,
    /// When its completion report was written whole (a finished job with a report spec
    /// and none written yet has its report written by the next run or `job report`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub report_written_at: Option<i64>,
    /// The run writing its report, while one is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub report_claim: Option<String>,
    /// The objects the job answers for (the current versions its filters keep), by
    /// encryption mode as the manifest showed them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub census: Option<Census>,
    /// What running it costs, estimated when it was created (requests, KMS calls, cost,
    /// duration), as the command line made it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub estimate: Option<serde_json::Value>,
    #[serde(skip)]
    pub(crate) pk: i64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lifecycle_allows_only_what_it_should() {
        use JobStatus::*;
        assert_eq!(Suspended.after(Operation::Confirm), Ok(Ready));
        assert_eq!(Ready.after(Operation::Pause), Ok(Paused));
        assert_eq!(Active.after(Operation::Pause), Ok(Pausing));
        assert_eq!(Paused.after(Operation::Resume), Ok(Ready));
        assert_eq!(Pausing.after(Operation::Resume), Ok(Active));
        assert_eq!(Paused.after(Operation::Cancel), Ok(Cancelled));
        assert_eq!(Active.after(Operation::Cancel), Ok(Cancelling));
        for status in [Complete, Cancelled, Failed] {
            for op in [
                Operation::Confirm,
                Operation::Pause,
                Operation::Resume,
                Operation::Cancel,
            ] {
                assert!(status.after(op).is_err(), "{status} must not take {op:?}");
            }
        }
        let err = Ready.after(Operation::Confirm).unwrap_err();
        assert!(err.contains("only a Suspended job"), "{err}");
    }

    #[test]
    fn status_names_round_trip() {
        for s in JobStatus::ALL {
            assert_eq!(s.as_str().parse::<JobStatus>(), Ok(s));
        }
        assert_eq!("paused".parse::<JobStatus>(), Ok(JobStatus::Paused));
        assert!("Running".parse::<JobStatus>().is_err());
    }
}

/// A task as the runner takes it: which object, and what the manifest said.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Task {
    pub seq: i64,
    pub bucket: String,
    pub key: String,
    pub version_id: Option<String>,
    pub size: Option<u64>,
    pub attempts: u32,
    /// The lease the run holds the task by (one per leased batch): a result counts only
    /// while the task is still leased to the same owner under the same token.
    pub lease_token: i64,
    /// An earlier run marked it before sending the object's write (and did not record a
    /// result): if the object is compliant now, this job made it so.
    pub write_started: bool,
    /// What the manifest said of the object, where it said it.
    pub etag: Option<String>,
    pub storage_class: Option<String>,
    pub encryption_status: Option<crate::sse::SseMode>,
}

/// The outcome of one task, as the runner records it and the report shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskResult {
    pub seq: i64,
    /// The lease the task was run under ([`Task::lease_token`]).
    pub lease_token: i64,
    pub state: TaskState,
    pub attempts: u32,
    pub http_status: u16,
    pub error_code: Option<String>,
    pub message: String,
}

/// A finished (or failed) task with its object, for reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskRecord {
    pub bucket: String,
    pub key: String,
    pub version_id: Option<String>,
    pub state: TaskState,
    pub http_status: Option<u16>,
    pub error_code: Option<String>,
    pub message: Option<String>,
}

/// One worker (a `reseal job run` process) on a job, as its last heartbeat left it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Worker {
    /// `host:pid:random`, the owner its leases carry.
    pub owner: String,
    /// Milliseconds since the Unix epoch, by the job store's clock.
    pub started_at: i64,
    pub last_seen: i64,
    /// Tasks and bytes it has recorded so far.
    pub tasks_done: u64,
    pub bytes: u64,
}

impl Worker {
    pub fn host(&self) -> &str {
        self.owner.split(':').next().unwrap_or(&self.owner)
    }

    /// Tasks per second over its life so far.
    pub fn rate(&self) -> f64 {
        let secs = (self.last_seen - self.started_at) as f64 / 1000.0;
        if secs > 0.0 {
            self.tasks_done as f64 / secs
        } else {
            0.0
        }
    }
}
