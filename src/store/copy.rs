//! Copies, as S3 has them: CopyObject (an object made from another, or from itself) and
//! UploadPartCopy (a part made from a range of an object). The store decides what a copy
//! onto itself is: nothing at all (refused, as S3 refuses it), a re-encryption in place
//! (with the fast path where it applies), or a new object from the source's bytes; it
//! checks the source's conditions and the destination's. A copy reads the source's bytes
//! only through the read path and writes only through the write path. Must not know S3's
//! wire format: callers translate their requests into [`CopyObject`] and [`CopySource`].

use std::collections::BTreeMap;
use std::io::Write;

use super::body::piped;
use super::checksum::{ChecksumRequest, ExpectedChecksum};
use super::error::{Result, StoreError};
use super::multipart::Part;
use super::object::STANDARD_STORAGE_CLASS;
use super::request::{
    ByteRange, CopyMethod, CopyObject, CopySource, Directive, GetRequest, PartDigests, PutOptions,
    ReadConditions, Reencrypt,
};
use super::write::Expect;
use super::{ObjectMeta, Store, check_key};
use crate::crypto::CustomerKey;

impl Store {
    /// Carries out a CopyObject. A copy onto itself that changes none of the metadata,
    /// storage class, website redirect, checksum algorithm or encryption is refused
    /// ([`StoreError::CopyChangesNothing`]); one that changes only the encryption (and
    /// perhaps the tags) re-encrypts the object in place, its checksum kept; any other
    /// copy writes a new object from the bytes of the source as it was checked, with a
    /// checksum of the whole of it.
    pub fn copy_object(&self, request: CopyObject) -> Result<(ObjectMeta, CopyMethod)> {
        let CopyObject {
            mut source,
            bucket,
            key,
            condition,
            encryption,
            metadata,
            tags,
            headers,
            storage_class,
            website_redirect_location,
            checksum_algorithm,
        } = request;
        let seen = self.find(&source.bucket, &source.key, source.version_id.as_deref())?;
        source
            .conditions
            .check(&seen)
            .map_err(failed_source_condition)?;
        self.check_customer_key(&seen, source.sse_c.as_ref())?;
        // A copy of an older version onto its own key makes a new object of its bytes.
        let onto_itself = source.bucket == bucket
            && source.key == key
            && (source.version_id.is_none()
                || self.head(&bucket, &key).ok().map(|c| c.version_id)
                    == Some(seen.version_id.clone()));
        let class_changes = storage_class
            .as_deref()
            .is_some_and(|c| c != seen.storage_class().unwrap_or(STANDARD_STORAGE_CLASS));
        let redirect_changes = website_redirect_location
            .as_deref()
            .is_some_and(|r| Some(r) != seen.website_redirect_location());
        let checksum_changes = checksum_algorithm
            .is_some_and(|a| Some(a) != seen.checksum.as_ref().map(|c| c.algorithm));
        let in_place = onto_itself
            && matches!(metadata, Directive::Copy)
            && !class_changes
            && !redirect_changes
            && !checksum_changes;
        if in_place && encryption.is_none() {
            return Err(StoreError::CopyChangesNothing { bucket, key });
        }
        let destination = self.bucket(&bucket)?;
        let to = match encryption {
            Some(e) => e,
            None => destination.default_encryption.to_encryption(),
        };
        destination.check_allowed(&key, &to)?;
        if in_place {
            // The destination is the source: its condition is checked against the object
            // seen, and the re-encryption commits only if the object is still that one.
            Expect::from(&condition).check(&seen, Some(&seen))?;
            let (meta, how) = self.reencrypt(
                &bucket,
                &key,
                &Reencrypt {
                    to,
                    if_match: Some(&seen.etag),
                    source_key: source.sse_c.as_ref(),
                    fast_path: true,
                },
            )?;
            let meta = match tags {
                Directive::Replace(tags) if tags != meta.tags => {
                    self.set_tags(&bucket, &key, None, tags)?
                }
                _ => meta,
            };
            return Ok((meta, CopyMethod::InPlace(how)));
        }
        pin(&mut source.conditions, &seen);
        let (content_type, metadata, mut kept) = match metadata {
            Directive::Replace(new) => (new.content_type, new.metadata, BTreeMap::new()),
            Directive::Copy => (
                seen.content_type.clone(),
                seen.metadata.clone(),
                seen.headers.clone(),
            ),
        };
        kept.extend(headers);
        let options = PutOptions {
            encryption: Some(to),
            content_type,
            metadata,
            tags: match tags {
                Directive::Replace(tags) => tags,
                Directive::Copy => seen.tags.clone(),
            },
            headers: kept,
            storage_class,
            website_redirect_location,
            content_md5: None,
            // The copy is one new object: its checksum is of the whole of it, of the
            // algorithm asked for or else the source's.
            checksum: checksum_algorithm
                .or(seen.checksum.as_ref().map(|c| c.algorithm))
                .map(|algorithm| ChecksumRequest {
                    algorithm,
                    expected: ExpectedChecksum::Unknown,
                }),
            checksum_type: None,
            condition,
        };
        let meta = self.copy(&source, &bucket, &key, options)?;
        Ok((meta, CopyMethod::NewObject))
    }

    /// Copies an object (the plaintext, through the source's keys and the new object's)
    /// to `bucket`/`key`, which may be the source itself, written with `options` alone
    /// (the caller decides what is copied). The source is read as it is when the copy
    /// starts and must meet its conditions.
    pub(super) fn copy(
        &self,
        source: &CopySource,
        bucket: &str,
        key: &str,
        options: PutOptions,
    ) -> Result<ObjectMeta> {
        self.bucket(bucket)?;
        check_key(key)?;
        piped(
            |out| self.read_source(source, &source.conditions, None, out),
            |body| self.put(bucket, key, body, options),
        )
    }

    /// Writes part `number` of an upload from a range of another object (`bytes=first-last`,
    /// within the source), read through `source`'s key and conditions, and pinned to the
    /// source as it was when the copy started.
    pub fn upload_part_copy(
        &self,
        bucket: &str,
        id: &str,
        number: u32,
        sse_c: Option<&CustomerKey>,
        source: &CopySource,
        range: Option<ByteRange>,
    ) -> Result<Part> {
        let upload = self.upload(bucket, id)?;
        let seen = self.find(&source.bucket, &source.key, source.version_id.as_deref())?;
        if let Some(r) = range
            && r.resolve(seen.size) != r.resolve(u64::MAX)
        {
            return Err(StoreError::CopyRangeOutsideSource {
                number,
                size: seen.size,
            });
        }
        // The upload's key is checked before any byte is read.
        self.data_keys(&upload.object, sse_c)?;
        let mut conditions = source.conditions.clone();
        pin(&mut conditions, &seen);
        piped(
            |out| self.read_source(source, &conditions, range, out),
            |body| self.upload_part(bucket, id, number, sse_c, PartDigests::default(), body),
        )
    }

    /// Reads (a range of) a copy's source into `out`.
    fn read_source(
        &self,
        source: &CopySource,
        conditions: &ReadConditions,
        range: Option<ByteRange>,
        out: &mut dyn Write,
    ) -> Result<ObjectMeta> {
        let get = GetRequest {
            range,
            part_number: None,
            version_id: source.version_id.as_deref(),
            sse_c: source.sse_c.as_ref(),
            conditions: conditions.clone(),
        };
        self.get_object(&source.bucket, &source.key, &get, &mut |_, _| {}, out)
            .map_err(failed_source_condition)
    }
}

/// Pins a copy to the source it checked: where the caller named no ETag, the bytes copied
/// must still be those of `seen`.
fn pin(conditions: &mut ReadConditions, seen: &ObjectMeta) {
    conditions.if_match.get_or_insert_with(|| seen.etag.clone());
}

/// A copy source's If-None-Match or If-Modified-Since that fails is a failed precondition
/// (S3's 412): a copy has no cached copy to keep, so "not modified" means nothing to it.
fn failed_source_condition(e: StoreError) -> StoreError {
    match e {
        StoreError::NotModified { bucket, key } => StoreError::PreconditionFailed {
            bucket,
            key,
            expected: "a modified source".into(),
            actual: "not modified".into(),
        },
        other => other,
    }
}
