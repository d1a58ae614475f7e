//! Targets: where objects live. One trait, [`Target`], that the runner drives; two
//! implementations, the local store (`local.rs`) and S3 (`s3.rs`). A target is built for one
//! job's wanted encryption, so its methods take only the object.

pub mod local;
pub mod pace;
pub mod s3;
pub mod s3io;

use std::fmt;
use std::future::Future;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::sse::SseMode;

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

/// One object a task names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectRef {
    pub bucket: String,
    pub key: String,
    pub version_id: Option<String>,
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
    /// What a copy must carry over (S3 only).
    pub details: Option<Arc<s3::ObjectDetails>>,
}

/// Whether trying again can help.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// Throttling, a server error, a lost connection: retry with backoff.
    Transient,
    /// The object changed since it was inspected: inspect again, then retry.
    Changed,
    /// Not found, access denied, a wrong key, …: fail the task.
    Permanent,
}

/// A failed operation on one object, with the HTTP status and error code S3 would give
/// (they go into the completion report).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TargetError {
    pub kind: ErrorKind,
    pub http_status: u16,
    pub code: String,
    pub message: String,
}

impl fmt::Display for TargetError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({}): {}", self.code, self.http_status, self.message)
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
pub trait Target: Send + Sync + 'static {
    /// Reads an object's current state (S3: HEAD).
    fn inspect(
        &self,
        object: &ObjectRef,
    ) -> impl Future<Output = Result<ObjectState, TargetError>> + Send;

    /// Whether the object is already encrypted as the job wants.
    fn is_compliant(&self, state: &ObjectState) -> bool;

    /// Re-encrypts the object in place as the job wants, only if it is still the object
    /// `seen` describes (its ETag); a changed object is [`ErrorKind::Changed`].
    fn reencrypt(
        &self,
        object: &ObjectRef,
        seen: &ObjectState,
    ) -> impl Future<Output = Result<Written, TargetError>> + Send;
}

/// Either target, chosen at run time from the job's [`TargetSpec`].
#[derive(Clone)]
pub enum AnyTarget {
    Local(Arc<local::LocalTarget>),
    S3(Arc<s3::S3Target>),
}

impl Target for AnyTarget {
    async fn inspect(&self, object: &ObjectRef) -> Result<ObjectState, TargetError> {
        match self {
            AnyTarget::Local(t) => t.inspect(object).await,
            AnyTarget::S3(t) => t.inspect(object).await,
        }
    }

    fn is_compliant(&self, state: &ObjectState) -> bool {
        match self {
            AnyTarget::Local(t) => t.is_compliant(state),
            AnyTarget::S3(t) => t.is_compliant(state),
        }
    }

    async fn reencrypt(
        &self,
        object: &ObjectRef,
        seen: &ObjectState,
    ) -> Result<Written, TargetError> {
        match self {
            AnyTarget::Local(t) => t.reencrypt(object, seen).await,
            AnyTarget::S3(t) => t.reencrypt(object, seen).await,
        }
    }
}
