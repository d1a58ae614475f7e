//! What a caller asks of the store, as plain values: the encryption a write wants, a PUT's
//! options and condition, the parts of a completion, a read's conditions and byte range, a copy, a re-encryption.
//! These are the store's vocabulary for `serve`, the local target and the CLI, so they
//! hold no handle on the store and do no I/O; checking a condition against an object's
//! metadata is the most they do. Must not touch files, keys or the crypto engine.

use std::collections::BTreeMap;
use std::ops::Range;

use super::checksum::{ChecksumAlgorithm, ChecksumRequest, ChecksumType, ChecksumValue};
use super::error::{Result, StoreError};
use super::object::{ObjectMeta, STANDARD_STORAGE_CLASS, STORAGE_CLASS, WEBSITE_REDIRECT_LOCATION};
use crate::crypto::CustomerKey;
use crate::sse::SseMode;

/// The encryption a write asks for. Unlike [`crate::sse::SseSpec`], it holds an SSE-C key
/// itself, for the duration of the request.
#[derive(Debug, Clone)]
pub enum Encryption {
    None,
    SseS3,
    SseKms {
        key_id: Option<String>,
        bucket_key: bool,
    },
    DsseKms {
        key_id: String,
    },
    SseC(CustomerKey),
}

impl Encryption {
    pub fn mode(&self) -> SseMode {
        match self {
            Encryption::None => SseMode::NotSse,
            Encryption::SseS3 => SseMode::SseS3,
            Encryption::SseKms { .. } => SseMode::SseKms,
            Encryption::DsseKms { .. } => SseMode::DsseKms,
            Encryption::SseC(_) => SseMode::SseC,
        }
    }
}

/// What a PUT carries besides the bytes.
#[derive(Debug, Clone, Default)]
pub struct PutOptions {
    /// `None` uses the bucket's default encryption.
    pub encryption: Option<Encryption>,
    pub content_type: Option<String>,
    pub metadata: BTreeMap<String, String>,
    pub tags: BTreeMap<String, String>,
    /// Other headers kept with the object ([`ObjectMeta::headers`]).
    pub headers: BTreeMap<String, String>,
    /// S3's storage class; `None` or STANDARD: none is recorded.
    pub storage_class: Option<String>,
    /// S3's website redirect.
    pub website_redirect_location: Option<String>,
    /// The MD5 the body must have (hex); the write is refused otherwise.
    pub content_md5: Option<String>,
    /// The additional checksum to keep, and what the body's must be. For an upload, the
    /// algorithm its parts are checked with, and `checksum_type` says how the object's
    /// is made of theirs.
    pub checksum: Option<ChecksumRequest>,
    /// An upload's checksum type; `None`: the algorithm's default.
    pub checksum_type: Option<ChecksumType>,
    /// Write only if this holds when the write commits.
    pub condition: WriteCondition,
}

impl PutOptions {
    /// Everything the object keeps in [`ObjectMeta::headers`].
    pub(super) fn kept_headers(&self) -> BTreeMap<String, String> {
        let mut headers = self.headers.clone();
        if let Some(location) = &self.website_redirect_location {
            headers.insert(WEBSITE_REDIRECT_LOCATION.into(), location.clone());
        }
        if let Some(class) = &self.storage_class
            && class != STANDARD_STORAGE_CLASS
        {
            headers.insert(STORAGE_CLASS.into(), class.clone());
        }
        headers
    }
}

/// A conditional write (S3's `If-Match` and `If-None-Match: *` on PUT).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum WriteCondition {
    #[default]
    Always,
    /// The object exists with this ETag.
    IfMatch(String),
    /// No object has this key.
    IfAbsent,
}

/// What a read must find (S3's conditional GET and HEAD, RFC 9110's order): `If-Match`
/// (then `If-Unmodified-Since` is not looked at) fails with 412, `If-None-Match` (then
/// `If-Modified-Since` is not looked at) with 304. Times are seconds since the epoch.
#[derive(Debug, Clone, Default)]
pub struct ReadConditions {
    pub if_match: Option<String>,
    pub if_none_match: Option<String>,
    pub if_modified_since: Option<i64>,
    pub if_unmodified_since: Option<i64>,
}

impl ReadConditions {
    /// Checks the conditions against an object.
    pub fn check(&self, meta: &ObjectMeta) -> Result<()> {
        let modified = meta.modified.div_euclid(1000);
        let failed = || StoreError::PreconditionFailed {
            bucket: meta.bucket.clone(),
            key: meta.key.clone(),
            expected: self.if_match.clone().unwrap_or_default(),
            actual: meta.etag.clone(),
        };
        match &self.if_match {
            Some(tag) if !etag_matches(tag, &meta.etag) => return Err(failed()),
            Some(_) => {}
            None => {
                if self.if_unmodified_since.is_some_and(|t| modified > t) {
                    return Err(failed());
                }
            }
        }
        let not_modified = || StoreError::NotModified {
            bucket: meta.bucket.clone(),
            key: meta.key.clone(),
        };
        match &self.if_none_match {
            Some(tag) if etag_matches(tag, &meta.etag) => Err(not_modified()),
            Some(_) => Ok(()),
            None if self.if_modified_since.is_some_and(|t| modified <= t) => Err(not_modified()),
            None => Ok(()),
        }
    }
}

/// Whether an ETag condition (one tag, quoted or not, a list of them, or `*`) holds.
pub(super) fn etag_matches(condition: &str, etag: &str) -> bool {
    condition.split(',').map(str::trim).any(|c| {
        let c = c.strip_prefix("W/").unwrap_or(c).trim_matches('"');
        c == "*" || c == etag
    })
}

/// A byte range as HTTP gives it (inclusive), resolved against the object's size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ByteRange {
    /// `first-last` or `first-` (to the end).
    From { first: u64, last: Option<u64> },
    /// `-n`: the last n bytes.
    Suffix(u64),
}

impl ByteRange {
    /// The bytes of an object of `size` bytes that this range asks for, end exclusive;
    /// `None` when it asks for none of them (HTTP 416). A `last` past the end is cut there.
    pub fn resolve(self, size: u64) -> Option<Range<u64>> {
        match self {
            ByteRange::From { first, last } => {
                if first >= size || last.is_some_and(|l| l < first) {
                    return None;
                }
                let end = last.map_or(size, |l| l.saturating_add(1).min(size));
                Some(first..end)
            }
            ByteRange::Suffix(0) => None,
            ByteRange::Suffix(n) => Some(size.saturating_sub(n)..size),
        }
    }
}

/// What an uploaded part's bytes must match: S3's `Content-MD5` (hex) and
/// `x-amz-checksum-*`.
#[derive(Debug, Clone, Copy, Default)]
pub struct PartDigests<'a> {
    pub content_md5: Option<&'a str>,
    pub checksum: Option<&'a ChecksumRequest>,
}

/// A read through [`Store::get_object`](super::Store::get_object).
#[derive(Debug, Clone, Default)]
pub struct GetRequest<'a> {
    pub range: Option<ByteRange>,
    /// Only this part of a multipart object (S3's `partNumber`; part 1 of any other
    /// object is all of it). Not with `range`.
    pub part_number: Option<u32>,
    /// The version to read (an id, or `null`); `None`: the current one.
    pub version_id: Option<&'a str>,
    pub sse_c: Option<&'a CustomerKey>,
    pub conditions: ReadConditions,
}

/// Where a copy reads from (S3's `x-amz-copy-source*`): the object, its SSE-C key, and the
/// conditions it must meet, which fail with a 412 even where a read's would be a 304.
#[derive(Debug, Clone, Default)]
pub struct CopySource {
    pub bucket: String,
    pub key: String,
    /// The version to copy (an id, or `null`); `None`: the current one.
    pub version_id: Option<String>,
    /// The source's SSE-C key, when it is SSE-C.
    pub sse_c: Option<CustomerKey>,
    pub conditions: ReadConditions,
}

/// Whether a copy keeps what the source has (S3's `COPY` directives) or takes new values.
#[derive(Debug, Clone)]
pub enum Directive<T> {
    Copy,
    Replace(T),
}

/// What replaces the source's metadata: content type and user metadata (and the content
/// headers, which then come only from the request).
#[derive(Debug, Clone, Default)]
pub struct NewMetadata {
    pub content_type: Option<String>,
    pub metadata: BTreeMap<String, String>,
}

/// S3's CopyObject through [`Store::copy_object`](super::Store::copy_object): a source,
/// and the object to make of it at `bucket`/`key`, which may be the source itself.
#[derive(Debug, Clone)]
pub struct CopyObject {
    pub source: CopySource,
    pub bucket: String,
    pub key: String,
    /// The destination's conditional write.
    pub condition: WriteCondition,
    /// `None`: none asked for; the destination bucket's default.
    pub encryption: Option<Encryption>,
    pub metadata: Directive<NewMetadata>,
    pub tags: Directive<BTreeMap<String, String>>,
    /// Content headers the request gives: over the source's, or instead of them when the
    /// metadata is replaced.
    pub headers: BTreeMap<String, String>,
    /// As asked, STANDARD included: asking for STANDARD changes an object in another class.
    pub storage_class: Option<String>,
    pub website_redirect_location: Option<String>,
    /// The checksum the copy gets; `None`: the source's algorithm, if it has one. Naming
    /// another algorithm than the source's changes the object.
    pub checksum_algorithm: Option<ChecksumAlgorithm>,
}

/// One part a completion names: its number and ETag, and its checksum if given (it must
/// then be the part's).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CompletedPart {
    pub number: u32,
    pub etag: String,
    pub checksum: Option<ChecksumValue>,
}

/// How a copy was done.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CopyMethod {
    /// Onto itself, only the encryption (and the tags) changing: a re-encryption in place.
    InPlace(ReencryptMethod),
    /// A new object from the source's bytes.
    NewObject,
}

/// A re-encryption of one object in place.
#[derive(Debug, Clone)]
pub struct Reencrypt<'a> {
    pub to: Encryption,
    /// The ETag the caller saw; the object is left alone if it changed since.
    pub if_match: Option<&'a str>,
    /// The object's current SSE-C key, when it is SSE-C.
    pub source_key: Option<&'a CustomerKey>,
    /// Re-seal only the data keys when the mode stays the same and only the sealing key
    /// changes (root rotation, another KMS key, SSE-C key rotation).
    pub fast_path: bool,
}

/// How a re-encryption was done.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReencryptMethod {
    /// New data key(s) and new ciphertext.
    Rewrite,
    /// Only the sealed data keys changed; the data file is the same.
    Reseal,
}
