//! Object operations: put, head, get (streamed, by range), attributes, delete one or many,
//! and tags, each of the current version or of the version a request names.
//! Copies are in copy.rs, multipart uploads in multipart.rs. Must not check what the
//! store checks (conditions, SSE-C keys, digests, ranges): it passes them on.

use std::collections::BTreeMap;
use std::io;

use bytes::Bytes;
use s3s::dto::*;
use s3s::{S3ErrorCode, S3Request, S3Response, S3Result};

use super::body::{BodySender, body_reader};
use super::checksum::{self, Answer, given_of, mode_enabled, set_checksums};
use super::convert::{
    byte_range, check_tags, content_md5_hex, etag, kept, metadata_of, new_object_options,
    page_size, read_conditions, timestamp, write_condition,
};
use super::{Endpoint, check_encrypted_write, customer_key_of, with_encryption};
use crate::serve::error::{error, from_store, internal};
use crate::store::{
    ChecksumValue, GetRequest, ObjectMeta, PutOptions, STANDARD_STORAGE_CLASS, StoreError,
};

pub(super) async fn put_object(
    endpoint: &Endpoint,
    req: S3Request<PutObjectInput>,
) -> S3Result<S3Response<PutObjectOutput>> {
    check_encrypted_write!(endpoint, req)?;
    let customer = customer_key_of!(req)?;
    let checksum = checksum::requested(
        given_of!(req.input),
        req.input.checksum_algorithm.as_ref(),
        &req.headers,
        req.trailing_headers.as_ref(),
    )?;
    let input = req.input;
    let options = PutOptions {
        checksum,
        content_md5: content_md5_hex(input.content_md5.as_deref())?,
        condition: write_condition(input.if_match.as_ref(), input.if_none_match.as_ref())?,
        ..new_object_options!(input, customer)
    };
    let (body, outcome) = body_reader(input.body, &req.extensions);
    let (bucket, key) = (input.bucket, input.key);
    let (meta, version_id) = endpoint
        .blocking_reading(&outcome, move |s| {
            let meta = s.put(&bucket, &key, body, options)?;
            let version = s.version_answer(&meta)?;
            Ok((meta, version))
        })
        .await?;
    let mut output = with_encryption!(
        endpoint,
        &meta.sse,
        PutObjectOutput {
            e_tag: Some(etag(&meta)),
            size: Some(meta.size as i64),
            version_id,
        }
    );
    output.checksum_type = set_checksums!(output, Answer::object(meta.checksum.as_ref()));
    Ok(S3Response::new(output))
}

pub(super) async fn head_object(
    endpoint: &Endpoint,
    req: S3Request<HeadObjectInput>,
) -> S3Result<S3Response<HeadObjectOutput>> {
    let customer = customer_key_of!(req)?;
    let input = req.input;
    let part_number = read_part_number(input.part_number, input.range.is_some())?;
    let conditions = read_conditions(
        input.if_match.as_ref(),
        input.if_none_match.as_ref(),
        input.if_modified_since.as_ref(),
        input.if_unmodified_since.as_ref(),
    );
    let (bucket, key, version) = (input.bucket, input.key, input.version_id);
    let (meta, part, version_id) = endpoint
        .blocking(move |s| {
            let meta = s.find(&bucket, &key, version.as_deref())?;
            conditions.check(&meta)?;
            s.check_customer_key(&meta, customer.as_ref())?;
            let part =
                match part_number {
                    None => None,
                    Some(number) => Some(meta.part_range(number).ok_or_else(|| {
                        StoreError::PartNotSatisfiable {
                            bucket: bucket.clone(),
                            key: key.clone(),
                            number,
                            parts: meta.parts.len().max(1),
                        }
                    })?),
                };
            let version = s.version_answer(&meta)?;
            Ok((meta, part, version))
        })
        .await?;
    let k = kept(&meta);
    let tag_count = meta.tags.len();
    let checksums = read_checksum(
        &meta,
        part_number,
        mode_enabled(input.checksum_mode.as_ref()),
    );
    let mut response = S3Response::new(with_encryption!(
        endpoint,
        &meta.sse,
        HeadObjectOutput {
            accept_ranges: Some("bytes".into()),
            content_length: Some(part.as_ref().map_or(meta.size, |r| r.end - r.start) as i64),
            content_range: part.as_ref().map(|r| content_range(r, &meta)),
            content_type: meta.content_type.clone(),
            e_tag: Some(etag(&meta)),
            last_modified: Some(timestamp(meta.modified)),
            metadata: metadata_of(&meta),
            parts_count: parts_count(&meta, part_number),
            cache_control: k.cache_control,
            content_disposition: k.content_disposition,
            content_encoding: k.content_encoding,
            content_language: k.content_language,
            expires: k.expires,
            website_redirect_location: k.website_redirect_location,
            storage_class: k.storage_class,
            version_id,
        }
    ));
    response.output.checksum_type = set_checksums!(response.output, checksums);
    // As S3 gives it, so that a copy knows whether to read the tags.
    if tag_count > 0 {
        response.headers.insert(
            http::HeaderName::from_static("x-amz-tagging-count"),
            http::HeaderValue::from(tag_count),
        );
    }
    Ok(response)
}

pub(super) async fn get_object(
    endpoint: &Endpoint,
    req: S3Request<GetObjectInput>,
) -> S3Result<S3Response<GetObjectOutput>> {
    let customer = customer_key_of!(req)?;
    let input = req.input;
    let part_number = read_part_number(input.part_number, input.range.is_some())?;
    let conditions = read_conditions(
        input.if_match.as_ref(),
        input.if_none_match.as_ref(),
        input.if_modified_since.as_ref(),
        input.if_unmodified_since.as_ref(),
    );
    let range = input.range.map(byte_range);
    // A range's bytes have no checksum of their own.
    let checksum_mode = mode_enabled(input.checksum_mode.as_ref()) && range.is_none();
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Bytes, io::Error>>(4);
    let (ready_tx, ready_rx) = tokio::sync::oneshot::channel();
    let store = endpoint.store.clone();
    let (bucket, key, version) = (input.bucket, input.key, input.version_id);
    let reading = tokio::task::spawn_blocking(move || {
        let request = GetRequest {
            range,
            part_number,
            version_id: version.as_deref(),
            sse_c: customer.as_ref(),
            conditions,
        };
        let mut ready_tx = Some(ready_tx);
        let mut out = BodySender::new(tx.clone());
        let result = store
            .get_object(
                &bucket,
                &key,
                &request,
                &mut |meta, range| {
                    if let Some(ready) = ready_tx.take() {
                        let version = store.version_answer(meta);
                        let _ = ready.send((meta.clone(), range, version));
                    }
                },
                &mut out,
            )
            .and_then(|meta| {
                io::Write::flush(&mut out).map_err(|source| StoreError::Io {
                    path: "response".into(),
                    source,
                })?;
                Ok(meta)
            });
        if let Err(e) = &result
            && ready_tx.is_none()
        {
            // Headers are out: the body ends with an error, and the client sees a
            // response cut short, never a wrong one.
            tracing::warn!(error = %e, "GET failed after its headers were sent");
            let _ = tx.blocking_send(Err(io::Error::other(e.to_string())));
        }
        result
    });
    let (meta, range, version_id) = match ready_rx.await {
        Ok((meta, range, version)) => (meta, range, version.map_err(from_store)?),
        Err(_) => {
            return Err(match reading.await.map_err(internal)? {
                Err(e) => from_store(e),
                Ok(_) => internal("the object was read without being announced"),
            });
        }
    };
    let k = kept(&meta);
    let length = range.end - range.start;
    let content_range =
        (input.range.is_some() || part_number.is_some()).then(|| content_range(&range, &meta));
    let body = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    });
    let mut response = S3Response::new(with_encryption!(
        endpoint,
        &meta.sse,
        GetObjectOutput {
            body: Some(StreamingBlob::wrap(body)),
            accept_ranges: Some("bytes".into()),
            content_length: Some(length as i64),
            content_range,
            content_type: meta.content_type.clone(),
            e_tag: Some(etag(&meta)),
            last_modified: Some(timestamp(meta.modified)),
            metadata: metadata_of(&meta),
            tag_count: (!meta.tags.is_empty()).then_some(meta.tags.len() as i32),
            parts_count: parts_count(&meta, part_number),
            cache_control: input.response_cache_control.or(k.cache_control),
            content_disposition: input.response_content_disposition.or(k.content_disposition),
            content_encoding: input.response_content_encoding.or(k.content_encoding),
            content_language: input.response_content_language.or(k.content_language),
            expires: input.response_expires.or(k.expires),
            website_redirect_location: k.website_redirect_location,
            storage_class: k.storage_class,
            version_id,
        }
    ));
    response.output.checksum_type = set_checksums!(
        response.output,
        read_checksum(&meta, part_number, checksum_mode)
    );
    if let Some(t) = input.response_content_type {
        response.output.content_type = Some(t);
    }
    if response.output.content_range.is_some() {
        response.status = Some(http::StatusCode::PARTIAL_CONTENT);
    }
    Ok(response)
}

/// GetObjectAttributes: what HEAD and ListParts would say of an object, the attributes
/// asked for only. Parts are listed (paged by MaxParts and PartNumberMarker) only for an
/// object with a checksum, as S3 lists them; their count is given for any multipart
/// object.
pub(super) async fn get_object_attributes(
    endpoint: &Endpoint,
    req: S3Request<GetObjectAttributesInput>,
) -> S3Result<S3Response<GetObjectAttributesOutput>> {
    let customer = customer_key_of!(req)?;
    let input = req.input;
    // One header may hold the whole list, comma-separated.
    let asked = |name: &str| {
        input
            .object_attributes
            .iter()
            .flat_map(|a| a.as_str().split(','))
            .any(|a| a.trim() == name)
    };
    let (bucket, key, version) = (
        input.bucket.clone(),
        input.key.clone(),
        input.version_id.clone(),
    );
    let (meta, version_id) = endpoint
        .blocking(move |s| {
            let meta = s.find(&bucket, &key, version.as_deref())?;
            s.check_customer_key(&meta, customer.as_ref())?;
            let version = s.version_answer(&meta)?;
            Ok((meta, version))
        })
        .await?;
    let object_parts = asked(ObjectAttributes::OBJECT_PARTS)
        .then(|| object_parts(&meta, input.max_parts, input.part_number_marker))
        .flatten();
    let output = GetObjectAttributesOutput {
        e_tag: asked(ObjectAttributes::ETAG).then(|| etag(&meta)),
        checksum: asked(ObjectAttributes::CHECKSUM)
            .then_some(meta.checksum.as_ref())
            .flatten()
            .map(|c| Answer::object(Some(c)).into_dto()),
        object_parts,
        object_size: asked(ObjectAttributes::OBJECT_SIZE).then_some(meta.size as i64),
        storage_class: asked(ObjectAttributes::STORAGE_CLASS).then(|| {
            StorageClass::from(
                meta.storage_class()
                    .unwrap_or(STANDARD_STORAGE_CLASS)
                    .to_owned(),
            )
        }),
        last_modified: Some(timestamp(meta.modified)),
        version_id,
        ..Default::default()
    };
    Ok(S3Response::new(output))
}

/// The ObjectParts of a multipart object (`None` for any other): the count, and a page of
/// the parts with their sizes and checksums where the object has a checksum.
fn object_parts(
    meta: &ObjectMeta,
    max_parts: Option<i32>,
    marker: Option<i32>,
) -> Option<GetObjectAttributesParts> {
    let checksum = meta.checksum.as_ref().filter(|c| !c.parts.is_empty());
    // A re-encryption makes the parts one data file; the ETag still counts them.
    let count = match (meta.parts.len(), checksum) {
        (0, Some(c)) => c.parts.len(),
        (0, None) => meta.etag.rsplit_once('-')?.1.parse().ok()?,
        (n, _) => n,
    };
    let mut out = GetObjectAttributesParts {
        total_parts_count: Some(count as i32),
        ..Default::default()
    };
    let Some(c) = checksum else {
        return Some(out);
    };
    let max = page_size(max_parts);
    let after = marker.unwrap_or(0).max(0) as u32;
    let rest: Vec<_> = c.parts.iter().filter(|p| p.number > after).collect();
    let shown = &rest[..rest.len().min(max)];
    let truncated = rest.len() > shown.len();
    out.max_parts = Some(max as i32);
    out.part_number_marker = marker;
    out.is_truncated = Some(truncated);
    out.next_part_number_marker = shown.last().filter(|_| truncated).map(|p| p.number as i32);
    out.parts = Some(
        shown
            .iter()
            .map(|p| {
                let mut part = ObjectPart {
                    part_number: Some(p.number as i32),
                    size: Some(p.size as i64),
                    ..Default::default()
                };
                set_checksums!(
                    part,
                    Answer::part(Some(&ChecksumValue {
                        algorithm: c.algorithm,
                        value: p.value.clone(),
                    }))
                );
                part
            })
            .collect(),
    );
    Some(out)
}

pub(super) async fn delete_object(
    endpoint: &Endpoint,
    req: S3Request<DeleteObjectInput>,
) -> S3Result<S3Response<DeleteObjectOutput>> {
    let (bucket, key, version) = (req.input.bucket, req.input.key, req.input.version_id);
    let deleted = endpoint
        .blocking(move |s| match version {
            Some(v) => s.delete_version(&bucket, &key, &v),
            None => s.delete(&bucket, &key),
        })
        .await?;
    Ok(S3Response::new(DeleteObjectOutput {
        delete_marker: deleted.delete_marker.then_some(true),
        version_id: deleted.version_id,
        ..Default::default()
    }))
}

pub(super) async fn delete_objects(
    endpoint: &Endpoint,
    req: S3Request<DeleteObjectsInput>,
) -> S3Result<S3Response<DeleteObjectsOutput>> {
    let input = req.input;
    let quiet = input.delete.quiet.unwrap_or(false);
    let bucket = input.bucket;
    let keys: Vec<(String, Option<String>)> = input
        .delete
        .objects
        .into_iter()
        .map(|o| (o.key, o.version_id))
        .collect();
    if keys.len() > 1000 {
        return Err(error(
            S3ErrorCode::MalformedXML,
            "at most 1,000 keys in one DeleteObjects",
        ));
    }
    let results = endpoint
        .blocking(move |s| {
            s.bucket(&bucket)?;
            Ok(keys
                .into_iter()
                .map(|(key, version)| {
                    let result = match &version {
                        Some(v) => s.delete_version(&bucket, &key, v),
                        None => s.delete(&bucket, &key),
                    }
                    .map_err(from_store);
                    (key, version, result)
                })
                .collect::<Vec<_>>())
        })
        .await?;
    let mut deleted = Vec::new();
    let mut errors = Vec::new();
    for (key, version_id, result) in results {
        match result {
            Ok(done) if !quiet => deleted.push(DeletedObject {
                key: Some(key),
                // A delete that made a marker names the marker's version; one that removed
                // a version names that version.
                delete_marker_version_id: (version_id.is_none() && done.delete_marker)
                    .then(|| done.version_id.clone())
                    .flatten(),
                delete_marker: done.delete_marker.then_some(true),
                version_id,
            }),
            Ok(_) => {}
            Err(e) => errors.push(s3s::dto::Error {
                code: Some(e.code().as_str().to_owned()),
                message: e.message().map(str::to_owned),
                key: Some(key),
                version_id,
            }),
        }
    }
    Ok(S3Response::new(DeleteObjectsOutput {
        deleted: Some(deleted),
        errors: Some(errors),
        ..Default::default()
    }))
}

pub(super) async fn get_object_tagging(
    endpoint: &Endpoint,
    req: S3Request<GetObjectTaggingInput>,
) -> S3Result<S3Response<GetObjectTaggingOutput>> {
    let (bucket, key, version) = (req.input.bucket, req.input.key, req.input.version_id);
    let (meta, version_id) = endpoint
        .blocking(move |s| {
            let meta = s.find(&bucket, &key, version.as_deref())?;
            let version = s.version_answer(&meta)?;
            Ok((meta, version))
        })
        .await?;
    Ok(S3Response::new(GetObjectTaggingOutput {
        tag_set: meta
            .tags
            .into_iter()
            .map(|(k, v)| Tag {
                key: Some(k),
                value: Some(v),
            })
            .collect(),
        version_id,
    }))
}

pub(super) async fn put_object_tagging(
    endpoint: &Endpoint,
    req: S3Request<PutObjectTaggingInput>,
) -> S3Result<S3Response<PutObjectTaggingOutput>> {
    let tags: BTreeMap<String, String> = req
        .input
        .tagging
        .tag_set
        .into_iter()
        .map(|t| (t.key.unwrap_or_default(), t.value.unwrap_or_default()))
        .collect();
    check_tags(&tags)?;
    let (bucket, key, version) = (req.input.bucket, req.input.key, req.input.version_id);
    let version_id = endpoint
        .blocking(move |s| {
            let meta = s.set_tags(&bucket, &key, version.as_deref(), tags)?;
            s.version_answer(&meta)
        })
        .await?;
    Ok(S3Response::new(PutObjectTaggingOutput { version_id }))
}

pub(super) async fn delete_object_tagging(
    endpoint: &Endpoint,
    req: S3Request<DeleteObjectTaggingInput>,
) -> S3Result<S3Response<DeleteObjectTaggingOutput>> {
    let (bucket, key, version) = (req.input.bucket, req.input.key, req.input.version_id);
    let version_id = endpoint
        .blocking(move |s| {
            let meta = s.set_tags(&bucket, &key, version.as_deref(), BTreeMap::new())?;
            s.version_answer(&meta)
        })
        .await?;
    Ok(S3Response::new(DeleteObjectTaggingOutput { version_id }))
}

/// A GET's or HEAD's `partNumber`: from 1 to 10,000, and not with a Range (as S3 answers).
fn read_part_number(number: Option<i32>, with_range: bool) -> S3Result<Option<u32>> {
    let Some(number) = number else {
        return Ok(None);
    };
    if with_range {
        return Err(error(
            S3ErrorCode::InvalidRequest,
            "Cannot specify both Range header and partNumber query parameter",
        ));
    }
    match u32::try_from(number) {
        Ok(n @ 1..=10_000) => Ok(Some(n)),
        _ => Err(error(
            S3ErrorCode::InvalidArgument,
            "Part number must be an integer between 1 and 10000, inclusive",
        )),
    }
}

/// `bytes first-last/size`.
fn content_range(range: &std::ops::Range<u64>, meta: &ObjectMeta) -> String {
    format!(
        "bytes {}-{}/{}",
        range.start,
        range.end.saturating_sub(1),
        meta.size
    )
}

/// The checksum a GET or HEAD answers with, when it asks for one (`enabled`): the object's,
/// or the part's that is read. A part of an object whose parts a re-encryption made one
/// data file is read as the whole object (part 1), which has no part checksum.
fn read_checksum(meta: &ObjectMeta, part_number: Option<u32>, enabled: bool) -> Answer {
    let Some(c) = meta.checksum.as_ref().filter(|_| enabled) else {
        return Answer::default();
    };
    match part_number {
        Some(_) if c.parts.is_empty() => Answer::object(Some(c)),
        Some(n) if !meta.parts.is_empty() => {
            c.parts
                .get(n as usize - 1)
                .map_or_else(Answer::default, |p| {
                    Answer::part(Some(&ChecksumValue {
                        algorithm: c.algorithm,
                        value: p.value.clone(),
                    }))
                })
        }
        Some(_) => Answer::default(),
        None => Answer::object(Some(c)),
    }
}

/// `x-amz-mp-parts-count`: S3 gives it only to a read of one part of a multipart object.
fn parts_count(meta: &ObjectMeta, part_number: Option<u32>) -> Option<i32> {
    (part_number.is_some() && !meta.parts.is_empty()).then_some(meta.parts.len() as i32)
}
