//! The store's one public error type, with the classification callers act on (whose fault
//! a failure is), and the helpers every file of the store uses to build it. Messages say
//! what to do where the user can do something. Must not touch files, keys or requests:
//! it describes failures, it does not detect them.

use std::io;
use std::path::{Path, PathBuf};

use super::checksum::{ChecksumAlgorithm, ChecksumType};
use super::keys::KeyError;
use super::multipart::MAX_PART_NUMBER;
use crate::crypto;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{} is not a reseal store (run `reseal store init {}`)", .0.display(), .0.display())]
    NotAStore(PathBuf),
    #[error("{} already holds a reseal store", .0.display())]
    AlreadyAStore(PathBuf),
    #[error("no bucket {0:?} (create it with `reseal store mb`)")]
    NoSuchBucket(String),
    #[error("bucket {0:?} already exists")]
    BucketExists(String),
    #[error("bucket {0:?} is not empty")]
    BucketNotEmpty(String),
    #[error(
        "{0:?} is not a valid bucket name (3 to 63 of a-z, 0-9, '.', '-'; starting and ending with a letter or digit)"
    )]
    InvalidBucketName(String),
    #[error("invalid object key: {0}")]
    InvalidKey(String),
    #[error("no object {bucket}/{key}")]
    NoSuchKey { bucket: String, key: String },
    #[error("{bucket}/{key}: no version {version}")]
    NoSuchVersion {
        bucket: String,
        key: String,
        version: String,
    },
    #[error("{version:?} is not a version id (versions are named by 32 hex digits, or null)")]
    InvalidVersionId { version: String },
    /// A read or copy of a version that is a delete marker (S3's 405).
    #[error("{bucket}/{key}: version {version} is a delete marker, not an object")]
    DeleteMarker {
        bucket: String,
        key: String,
        version: String,
    },
    #[error("bucket {0:?}: versioning cannot be turned off once it was on; suspend it instead")]
    VersioningCannotBeDisabled(String),
    #[error(
        "{bucket}/{key}: precondition failed: expected ETag {expected}, the object has {actual}"
    )]
    PreconditionFailed {
        bucket: String,
        key: String,
        expected: String,
        actual: String,
    },
    #[error("{bucket}/{key}: access denied: the SSE-C key given is not the object's key")]
    AccessDenied { bucket: String, key: String },
    #[error(
        "{bucket}/{key} is encrypted with SSE-C: give its customer key (--sse-c @FILE or env:VAR)"
    )]
    SseCKeyRequired { bucket: String, key: String },
    #[error(
        "{bucket}/{key}: bucket {bucket} blocks SSE-C writes (BlockedEncryptionTypes in its default encryption); choose another encryption, or allow SSE-C in the bucket's default encryption"
    )]
    EncryptionTypeBlocked { bucket: String, key: String },
    #[error("{bucket}/{key} is not encrypted with SSE-C, but an SSE-C key was given")]
    SseCKeyNotExpected { bucket: String, key: String },
    #[error(
        "{bucket}/{key}: a copy onto itself must change its metadata, storage class, website redirect or encryption"
    )]
    CopyChangesNothing { bucket: String, key: String },
    #[error("{bucket}/{key}: not modified")]
    NotModified { bucket: String, key: String },
    #[error("{bucket}/{key}: the body's MD5 is {actual}, not the {expected} the request gave")]
    BadDigest {
        bucket: String,
        key: String,
        expected: String,
        actual: String,
    },
    /// The body's checksum is not the one the request gave.
    #[error("{bucket}/{key}: the body's {algorithm} is not the one the request gave")]
    BadChecksum {
        bucket: String,
        key: String,
        algorithm: ChecksumAlgorithm,
    },
    /// A part's checksum is of another algorithm than its upload's.
    #[error("the upload's checksums are {expected}, not {actual}")]
    ChecksumAlgorithmMismatch {
        expected: ChecksumAlgorithm,
        actual: ChecksumAlgorithm,
    },
    #[error("a {checksum_type:?} checksum cannot be {algorithm}")]
    ChecksumTypeNotAllowed {
        algorithm: ChecksumAlgorithm,
        checksum_type: ChecksumType,
    },
    /// A completion of an upload with composite checksums names a part without its.
    #[error("the upload's checksums are {algorithm}; part {number} is listed without its")]
    PartChecksumMissing {
        algorithm: ChecksumAlgorithm,
        number: u32,
    },
    #[error("no multipart upload {0:?} (it was completed or aborted, or never existed)")]
    NoSuchUpload(String),
    #[error("invalid part: {0}")]
    InvalidPart(String),
    #[error("part number {number}: a part number is 1 to {max}", max = MAX_PART_NUMBER)]
    InvalidPartNumber { number: u32 },
    #[error("part number {number}: the copy range is not within the source's {size} bytes")]
    CopyRangeOutsideSource { number: u32, size: u64 },
    #[error("the parts must be listed in ascending order of part number")]
    InvalidPartOrder,
    #[error("part {number} is {size} bytes; every part but the last must be at least 5 MiB")]
    EntityTooSmall { number: u32, size: u64 },
    #[error("{bucket}/{key}: range {start}-{end} is outside the object's {size} bytes")]
    InvalidRange {
        bucket: String,
        key: String,
        start: u64,
        end: u64,
        size: u64,
    },
    /// A read of part `number` of an object that has fewer (an object not uploaded in
    /// parts has one: itself).
    #[error("{bucket}/{key}: part {number} of an object of {parts} part(s)")]
    PartNotSatisfiable {
        bucket: String,
        key: String,
        number: u32,
        parts: usize,
    },
    #[error("{bucket}/{key}: {source}")]
    Crypto {
        bucket: String,
        key: String,
        source: crypto::Error,
    },
    #[error("{object}: {message}")]
    Corrupt { object: String, message: String },
    #[error(transparent)]
    Keys(#[from] KeyError),
    #[error("master key: {0}")]
    MasterKey(crypto::Error),
    #[error("{}: {source}", path.display())]
    Io { path: PathBuf, source: io::Error },
}

impl StoreError {
    /// Whether the request is at fault (a missing object, a wrong key, …), not the store.
    /// Every variant is named, so that a new one is classified on purpose.
    pub fn is_user_error(&self) -> bool {
        match self {
            StoreError::NotAStore(_)
            | StoreError::AlreadyAStore(_)
            | StoreError::NoSuchBucket(_)
            | StoreError::BucketExists(_)
            | StoreError::BucketNotEmpty(_)
            | StoreError::InvalidBucketName(_)
            | StoreError::InvalidKey(_)
            | StoreError::NoSuchKey { .. }
            | StoreError::NoSuchVersion { .. }
            | StoreError::InvalidVersionId { .. }
            | StoreError::DeleteMarker { .. }
            | StoreError::VersioningCannotBeDisabled(_)
            | StoreError::PreconditionFailed { .. }
            | StoreError::AccessDenied { .. }
            | StoreError::SseCKeyRequired { .. }
            | StoreError::SseCKeyNotExpected { .. }
            | StoreError::EncryptionTypeBlocked { .. }
            | StoreError::NotModified { .. }
            | StoreError::CopyChangesNothing { .. }
            | StoreError::BadDigest { .. }
            | StoreError::BadChecksum { .. }
            | StoreError::ChecksumAlgorithmMismatch { .. }
            | StoreError::ChecksumTypeNotAllowed { .. }
            | StoreError::PartChecksumMissing { .. }
            | StoreError::NoSuchUpload(_)
            | StoreError::InvalidPart(_)
            | StoreError::InvalidPartNumber { .. }
            | StoreError::CopyRangeOutsideSource { .. }
            | StoreError::InvalidPartOrder
            | StoreError::EntityTooSmall { .. }
            | StoreError::InvalidRange { .. }
            | StoreError::PartNotSatisfiable { .. }
            | StoreError::MasterKey(_) => true,
            StoreError::Keys(e) => e.is_user_error(),
            // The store's own data or files failed it: a request cannot cause these.
            StoreError::Crypto { .. } | StoreError::Corrupt { .. } | StoreError::Io { .. } => false,
        }
    }
}

pub(super) type Result<T, E = StoreError> = std::result::Result<T, E>;

pub(super) fn io_err(path: &Path) -> impl FnOnce(io::Error) -> StoreError + '_ {
    move |source| StoreError::Io {
        path: path.to_path_buf(),
        source,
    }
}
