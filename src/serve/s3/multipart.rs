//! Multipart uploads: create, upload a part, complete, abort, and list parts and uploads.
//! UploadPartCopy is in copy.rs. Create, UploadPart and Complete are each authorised as
//! s3:PutObject; only Create carries encryption headers for the policy to test. Must not read parts itself: the store checks them.

use s3s::dto::*;
use s3s::{S3ErrorCode, S3Request, S3Response, S3Result};

use super::body::body_reader;
use super::checksum::{self, Answer, given_of, set_checksums};
use super::convert::{
    content_md5_hex, etag, new_object_options, owner, page_size, timestamp, write_condition,
};
use super::{Endpoint, check_encrypted_write, customer_key_of, with_encryption};
use crate::serve::error::error;
use crate::store::{ChecksumRequest, CompletedPart, ExpectedChecksum, PartDigests, PutOptions};

pub(super) async fn create_multipart_upload(
    endpoint: &Endpoint,
    req: S3Request<CreateMultipartUploadInput>,
) -> S3Result<S3Response<CreateMultipartUploadOutput>> {
    check_encrypted_write!(endpoint, req)?;
    let customer = customer_key_of!(req)?;
    let input = req.input;
    let checksum = match (&input.checksum_algorithm, &input.checksum_type) {
        (None, Some(_)) => {
            return Err(error(
                S3ErrorCode::InvalidRequest,
                "The x-amz-checksum-type header can only be used with the \
                 x-amz-checksum-algorithm header.",
            ));
        }
        (a, _) => a
            .as_ref()
            .map(|a| {
                Ok::<_, s3s::S3Error>(ChecksumRequest {
                    algorithm: checksum::algorithm_in(a)?,
                    expected: ExpectedChecksum::Unknown,
                })
            })
            .transpose()?,
    };
    let options = PutOptions {
        checksum,
        checksum_type: input
            .checksum_type
            .as_ref()
            .map(checksum::type_in)
            .transpose()?,
        ..new_object_options!(input, customer)
    };
    let (bucket, key) = (input.bucket.clone(), input.key.clone());
    let upload = endpoint
        .blocking(move |s| s.create_upload(&bucket, &key, options))
        .await?;
    let wanted = upload.object.checksum.as_ref();
    Ok(S3Response::new(with_encryption!(
        endpoint,
        &upload.object.sse,
        CreateMultipartUploadOutput {
            bucket: Some(input.bucket),
            key: Some(input.key),
            checksum_algorithm: wanted.map(|c| checksum::algorithm_out(c.algorithm)),
            checksum_type: wanted.map(|c| checksum::type_out(c.checksum_type)),
            upload_id: Some(upload.id),
        }
    )))
}

pub(super) async fn upload_part(
    endpoint: &Endpoint,
    req: S3Request<UploadPartInput>,
) -> S3Result<S3Response<UploadPartOutput>> {
    endpoint
        .check_write(&req, &req.input.bucket, &req.input.key, None)
        .await?;
    let customer = customer_key_of!(req)?;
    let checksum = checksum::requested(
        given_of!(req.input),
        req.input.checksum_algorithm.as_ref(),
        &req.headers,
        req.trailing_headers.as_ref(),
    )?;
    let input = req.input;
    let number = part_number(input.part_number)?;
    let expected_md5 = content_md5_hex(input.content_md5.as_deref())?;
    let (mut body, outcome) = body_reader(input.body, &req.extensions);
    let (bucket, key, id) = (input.bucket, input.key, input.upload_id);
    let (part, sse) = endpoint
        .blocking_reading(&outcome, move |s| {
            let upload = s.upload_of(&bucket, &key, &id)?;
            let part = s.upload_part(
                &bucket,
                &id,
                number,
                customer.as_ref(),
                PartDigests {
                    content_md5: expected_md5.as_deref(),
                    checksum: checksum.as_ref(),
                },
                &mut body,
            )?;
            Ok((part, upload.object.sse))
        })
        .await?;
    let mut output = with_encryption!(
        endpoint,
        &sse,
        UploadPartOutput {
            e_tag: Some(ETag::Strong(part.etag)),
        }
    );
    set_checksums!(output, Answer::part(part.checksum.as_ref()));
    Ok(S3Response::new(output))
}

pub(super) async fn complete_multipart_upload(
    endpoint: &Endpoint,
    req: S3Request<CompleteMultipartUploadInput>,
) -> S3Result<S3Response<CompleteMultipartUploadOutput>> {
    endpoint
        .check_write(&req, &req.input.bucket, &req.input.key, None)
        .await?;
    let input = req.input;
    let condition = write_condition(input.if_match.as_ref(), input.if_none_match.as_ref())?;
    let whole = given_of!(input).value(true)?;
    let mut parts = Vec::new();
    for part in input
        .multipart_upload
        .and_then(|m| m.parts)
        .unwrap_or_default()
    {
        let number = part_number(part.part_number.unwrap_or(0))?;
        let checksum = given_of!(part).value(false)?;
        let etag = part.e_tag.map(ETag::into_value).unwrap_or_default();
        parts.push(CompletedPart {
            number,
            etag,
            checksum,
        });
    }
    if parts.is_empty() {
        return Err(error(
            S3ErrorCode::MalformedXML,
            "The XML you provided was not well-formed or did not validate against our published schema",
        ));
    }
    let (bucket, key, id) = (input.bucket.clone(), input.key.clone(), input.upload_id);
    let (meta, version_id) = endpoint
        .blocking(move |s| {
            s.upload_of(&bucket, &key, &id)?;
            let meta = s.complete_upload(&bucket, &id, &parts, whole.as_ref(), condition)?;
            let version = s.version_answer(&meta)?;
            Ok((meta, version))
        })
        .await?;
    let d = endpoint.describe(&meta.sse);
    let mut output = CompleteMultipartUploadOutput {
        bucket: Some(input.bucket.clone()),
        key: Some(input.key.clone()),
        location: Some(format!("/{}/{}", input.bucket, input.key)),
        e_tag: Some(etag(&meta)),
        server_side_encryption: d.sse,
        ssekms_key_id: d.kms_key_id,
        bucket_key_enabled: d.bucket_key,
        version_id,
        ..Default::default()
    };
    output.checksum_type = set_checksums!(output, Answer::object(meta.checksum.as_ref()));
    Ok(S3Response::new(output))
}

pub(super) async fn abort_multipart_upload(
    endpoint: &Endpoint,
    req: S3Request<AbortMultipartUploadInput>,
) -> S3Result<S3Response<AbortMultipartUploadOutput>> {
    let (bucket, key, id) = (req.input.bucket, req.input.key, req.input.upload_id);
    endpoint
        .blocking(move |s| {
            s.upload_of(&bucket, &key, &id)?;
            s.abort_upload(&bucket, &id)
        })
        .await?;
    Ok(S3Response::new(AbortMultipartUploadOutput::default()))
}

pub(super) async fn list_parts(
    endpoint: &Endpoint,
    req: S3Request<ListPartsInput>,
) -> S3Result<S3Response<ListPartsOutput>> {
    let input = req.input;
    let max = page_size(input.max_parts);
    let marker = input
        .part_number_marker
        .and_then(|m| u32::try_from(m).ok())
        .unwrap_or(0);
    let (bucket, key, id) = (
        input.bucket.clone(),
        input.key.clone(),
        input.upload_id.clone(),
    );
    let (upload, parts) = endpoint
        .blocking(move |s| {
            let upload = s.upload_of(&bucket, &key, &id)?;
            Ok((upload, s.list_parts(&bucket, &id)?))
        })
        .await?;
    let wanted = upload.object.checksum.as_ref();
    let after: Vec<_> = parts.into_iter().filter(|p| p.number > marker).collect();
    let truncated = after.len() > max;
    let shown: Vec<_> = after.into_iter().take(max).collect();
    Ok(S3Response::new(ListPartsOutput {
        bucket: Some(input.bucket),
        key: Some(input.key),
        upload_id: Some(input.upload_id),
        max_parts: Some(max as i32),
        is_truncated: Some(truncated),
        part_number_marker: input.part_number_marker,
        next_part_number_marker: shown.last().filter(|_| truncated).map(|p| p.number as i32),
        owner: Some(owner()),
        checksum_algorithm: wanted.map(|c| checksum::algorithm_out(c.algorithm)),
        checksum_type: wanted.map(|c| checksum::type_out(c.checksum_type)),
        parts: Some(
            shown
                .into_iter()
                .map(|p| {
                    let mut part = Part {
                        part_number: Some(p.number as i32),
                        size: Some(p.size as i64),
                        last_modified: Some(timestamp(p.modified)),
                        ..Default::default()
                    };
                    set_checksums!(part, Answer::part(p.checksum.as_ref()));
                    part.e_tag = Some(ETag::Strong(p.etag));
                    part
                })
                .collect(),
        ),
        ..Default::default()
    }))
}

pub(super) async fn list_multipart_uploads(
    endpoint: &Endpoint,
    req: S3Request<ListMultipartUploadsInput>,
) -> S3Result<S3Response<ListMultipartUploadsOutput>> {
    let input = req.input;
    let prefix = input.prefix.clone().unwrap_or_default();
    let bucket = input.bucket.clone();
    let uploads = endpoint.blocking(move |s| s.list_uploads(&bucket)).await?;
    Ok(S3Response::new(ListMultipartUploadsOutput {
        bucket: Some(input.bucket),
        prefix: input.prefix,
        max_uploads: Some(1000),
        is_truncated: Some(false),
        uploads: Some(
            uploads
                .into_iter()
                .filter(|u| u.key.starts_with(&prefix))
                .take(1000)
                .map(|u| MultipartUpload {
                    key: Some(u.key),
                    upload_id: Some(u.id),
                    initiated: Some(timestamp(u.initiated)),
                    owner: Some(owner()),
                    ..Default::default()
                })
                .collect(),
        ),
        ..Default::default()
    }))
}

pub(super) fn part_number(n: i32) -> S3Result<u32> {
    u32::try_from(n)
        .ok()
        .filter(|n| (1..=crate::store::multipart::MAX_PART_NUMBER).contains(n))
        .ok_or_else(|| {
            error(
                S3ErrorCode::InvalidArgument,
                "Part number must be an integer between 1 and 10000, inclusive",
            )
        })
}
