//! Targets: where objects live. One trait, [`Target`], that the runner drives through
//! `Arc<dyn Target>`; two implementations, the local store (`local.rs`) and S3 (`s3/`). A
//! target is built for one job's wanted encryption ([`Want`]), so its methods take only the
//! object. Knows nothing of jobs, the job store or the command line: what a target needs
//! comes in its constructor.

pub mod local;
pub mod s3;

use std::any::Any;
use std::fmt;
use std::sync::Arc;

use crate::crypto::CustomerKey;
use crate::sse::{SseMode, SseSpec};

/// The encryption a job wants, with the SSE-C keys it needs loaded: what a target is built
/// from.
pub struct Want {
    pub sse: SseSpec,
    /// SSE-KMS with an S3 Bucket Key.
    pub bucket_key: bool,
    /// The key of `sse` when it is SSE-C.
    pub customer_key: Option<CustomerKey>,
    /// The key of objects that are SSE-C now (it may differ: a key rotation).
    pub source_customer_key: Option<CustomerKey>,
}

/// One object a task names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectRef {
    pub bucket: String,
    pub key: String,
    pub version_id: Option<String>,
}

/// What a manifest row said of an object (an inventory's ETag, EncryptionStatus and
/// StorageClass), for a target that can act on it without inspecting the object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listed {
    pub etag: String,
    pub mode: SseMode,
    pub storage_class: String,
    pub size: Option<u64>,
}

/// What an inspection found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectState {
    pub etag: String,
    pub size: u64,
    pub mode: SseMode,
    pub kms_key_id: Option<String>,
    pub key_version: Option<u32>,
    /// SSE-KMS with an S3 Bucket Key.
    pub bucket_key: bool,
    pub sse_c_key_md5: Option<String>,
    /// The current version's id, where the store keeps versions.
    pub version_id: Option<String>,
    /// What only the target that inspected the object needs of it (S3: what a copy must
    /// carry over), opaque to everyone else.
    pub extra: Option<Extra>,
}

/// A target's own data about an inspected object; the runner only passes it back.
#[derive(Clone)]
pub struct Extra(pub Arc<dyn Any + Send + Sync>);

impl Extra {
    pub fn get<T: Any>(&self) -> Option<&T> {
        self.0.downcast_ref()
    }
}

impl fmt::Debug for Extra {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Extra(..)")
    }
}

impl PartialEq for Extra {
    fn eq(&self, other: &Extra) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

impl Eq for Extra {}

/// What a failure means for the task.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// Throttling, a server error, a lost connection, which the target has already retried
    /// as often as it was allowed: the task fails with it.
    Transient,
    /// The object changed since it was inspected: inspect again, then write again.
    Changed,
    /// Not found, access denied, a wrong key, …: fail the task.
    Permanent,
}

/// A failed operation on one object, with the HTTP status and error code S3 would give
/// (they go into the completion report).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{code} ({http_status}): {message}")]
pub struct TargetError {
    pub kind: ErrorKind,
    pub http_status: u16,
    pub code: String,
    pub message: String,
    /// A write was sent and its answer lost before this error: it may have taken effect,
    /// so an inspection that finds the object compliant counts as this task's success.
    pub maybe_written: bool,
}

impl TargetError {
    pub fn new(kind: ErrorKind, http_status: u16, code: &str, message: String) -> TargetError {
        TargetError {
            kind,
            http_status,
            code: code.to_owned(),
            message,
            maybe_written: false,
        }
    }

    pub fn permanent(http_status: u16, code: &str, message: String) -> TargetError {
        TargetError::new(ErrorKind::Permanent, http_status, code, message)
    }
}

/// How a re-encryption was done.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteMethod {
    /// S3's UpdateObjectEncryption: the data stays, only its encryption changes.
    Update,
    /// CopyObject onto itself.
    Copy,
    /// CreateMultipartUpload, UploadPartCopy, CompleteMultipartUpload.
    MultipartCopy,
    /// The local store opened the data and sealed it again under the new mode.
    Rewrite,
    /// The local store re-sealed the data keys; the data file was not touched.
    Reseal,
}

impl fmt::Display for WriteMethod {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            WriteMethod::Update => "re-encrypted by UpdateObjectEncryption",
            WriteMethod::Copy => "re-encrypted by CopyObject",
            WriteMethod::MultipartCopy => "re-encrypted by multipart copy",
            WriteMethod::Rewrite => "re-encrypted",
            WriteMethod::Reseal => "re-encrypted (data key re-sealed)",
        })
    }
}

/// What a re-encryption did, as the write's own answer tells it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Written {
    pub method: WriteMethod,
    /// The object's ETag as the write left it, where the answer gives one: an inspection
    /// that finds another ETag sees a newer write than reseal's.
    pub etag: Option<String>,
    /// The version the write made, where the store keeps versions.
    pub new_version: Option<String>,
    /// The object as the write's own answer describes it (its encryption among the rest),
    /// when the answer says: then no inspection is needed to confirm the write. `None`
    /// when it does not (UpdateObjectEncryption, a server that leaves SSE headers out).
    pub after: Option<ObjectState>,
    /// What else the write did, for the report (an ACL re-applied, versions deleted).
    pub notes: Vec<String>,
}

impl Written {
    /// The report's words for it, given the version the write replaced.
    pub fn describe(&self, old_version: Option<&str>) -> String {
        let mut text = self.method.to_string();
        if let Some(new) = &self.new_version {
            text.push_str(&format!(
                "; version {} -> {new}",
                old_version.unwrap_or("null")
            ));
        }
        for note in &self.notes {
            text.push_str("; ");
            text.push_str(note);
        }
        text
    }
}

/// Where objects live, as the runner sees them.
#[async_trait::async_trait]
pub trait Target: Send + Sync {
    /// Reads an object's current state (S3: HEAD).
    async fn inspect(&self, object: &ObjectRef) -> Result<ObjectState, TargetError>;

    /// Whether the object is already encrypted as the job wants.
    fn is_compliant(&self, state: &ObjectState) -> bool;

    /// Re-encrypts the object in place as the job wants, only if it is still the object
    /// `seen` describes (its ETag); a changed object is [`ErrorKind::Changed`].
    async fn reencrypt(
        &self,
        object: &ObjectRef,
        seen: &ObjectState,
    ) -> Result<Written, TargetError>;

    /// The object as `listed` describes it, when the target can act on that without
    /// inspecting it (S3 with `--trust-inventory`); `None` when it must inspect.
    fn trusted_state(&self, _object: &ObjectRef, _listed: &Listed) -> Option<ObjectState> {
        None
    }

    /// How many tasks may run at once now, when the target paces itself (S3's adaptive
    /// concurrency); the runner follows it.
    fn concurrency(&self) -> Option<usize> {
        None
    }

    /// The key ARN the server showed for the job's KMS key when the job names an alias or
    /// the default key, once a write has shown it; the job keeps it for later runs.
    fn learned_kms_arn(&self) -> Option<String> {
        None
    }

    /// Requests the server throttled or failed with a server error so far.
    fn throttled(&self) -> u64 {
        0
    }
}
