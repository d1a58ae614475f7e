//! Copies: CopyObject and UploadPartCopy translated into the store's copies (the store
//! decides whether a copy is refused, done in place or written anew), and their one copy
//! source. Must not decide what a copy does.

use s3s::dto::*;
use s3s::{S3ErrorCode, S3Request, S3Response, S3Result};

use super::checksum::{self, Answer, set_checksums};
use super::convert::{
    ContentHeaders, etag, header_condition, metadata_in, read_conditions, tags_from_header,
    timestamp, write_condition,
};
use super::multipart::part_number;
use super::{Endpoint, check_encrypted_write, customer_key, customer_key_of, with_encryption};
use crate::serve::error::error;
use crate::serve::sse::{CustomerHeaders, requested};
use crate::store::{
    self, ByteRange, CopyMethod, CopyObject, Directive, NewMetadata, ReadConditions,
    ReencryptMethod,
};

/// The copy source of a CopyObject or UploadPartCopy: which object (the current version,
/// or the one named), its SSE-C key, and the conditions it must meet.
fn copy_source<T>(
    req: &S3Request<T>,
    source: &CopySource,
    customer: CustomerHeaders<'_>,
    conditions: ReadConditions,
) -> S3Result<store::CopySource> {
    let sse_c = customer_key(req, customer)?;
    let CopySource::Bucket {
        bucket,
        key,
        version_id,
    } = source
    else {
        return Err(error(
            S3ErrorCode::NotImplemented,
            "only bucket copy sources are supported",
        ));
    };
    Ok(store::CopySource {
        bucket: bucket.to_string(),
        key: key.to_string(),
        version_id: version_id.as_deref().map(str::to_owned),
        sse_c,
        conditions,
    })
}

/// [`copy_source`] of a CopyObject or UploadPartCopy, whose `copy_source*` fields have the
/// same names.
macro_rules! copy_source_of {
    ($req:expr) => {
        copy_source(
            &$req,
            &$req.input.copy_source,
            CustomerHeaders {
                algorithm: $req.input.copy_source_sse_customer_algorithm.as_deref(),
                key: $req.input.copy_source_sse_customer_key.as_deref(),
                md5: $req.input.copy_source_sse_customer_key_md5.as_deref(),
            },
            read_conditions(
                $req.input.copy_source_if_match.as_ref(),
                $req.input.copy_source_if_none_match.as_ref(),
                $req.input.copy_source_if_modified_since.as_ref(),
                $req.input.copy_source_if_unmodified_since.as_ref(),
            ),
        )
    };
}

pub(super) async fn copy_object(
    endpoint: &Endpoint,
    req: S3Request<CopyObjectInput>,
) -> S3Result<S3Response<CopyObjectOutput>> {
    // The destination is what S3 authorises (s3:PutObject), with the destination's
    // encryption headers.
    check_encrypted_write!(endpoint, req)?;
    let target_key = customer_key_of!(req)?;
    let source = copy_source_of!(req)?;
    let destination_if_match = header_condition(&req, "if-match")?;
    let destination_if_none_match = header_condition(&req, "if-none-match")?;
    let input = req.input;
    let encryption = requested(
        input.server_side_encryption.as_ref(),
        input.ssekms_key_id.as_deref(),
        input.bucket_key_enabled,
        target_key,
    )?;
    let metadata = if input
        .metadata_directive
        .as_ref()
        .is_some_and(|d| d.as_str() == MetadataDirective::REPLACE)
    {
        Directive::Replace(NewMetadata {
            content_type: input.content_type.clone(),
            metadata: metadata_in(input.metadata.as_ref()),
        })
    } else {
        Directive::Copy
    };
    let tags = if input
        .tagging_directive
        .as_ref()
        .is_some_and(|d| d.as_str() == TaggingDirective::REPLACE)
    {
        Directive::Replace(tags_from_header(input.tagging.as_deref())?)
    } else {
        Directive::Copy
    };
    let headers = ContentHeaders {
        cache_control: input.cache_control.as_deref(),
        content_disposition: input.content_disposition.as_deref(),
        content_encoding: input.content_encoding.as_deref(),
        content_language: input.content_language.as_deref(),
        expires: input.expires.as_ref(),
    }
    .to_map()?;
    let request = CopyObject {
        source,
        bucket: input.bucket,
        key: input.key,
        condition: write_condition(
            destination_if_match.as_ref(),
            destination_if_none_match.as_ref(),
        )?,
        encryption,
        metadata,
        tags,
        headers,
        storage_class: input.storage_class.map(|c| c.as_str().to_owned()),
        website_redirect_location: input.website_redirect_location,
        checksum_algorithm: input
            .checksum_algorithm
            .as_ref()
            .map(checksum::algorithm_in)
            .transpose()?,
    };
    let source_version = request.source.version_id.clone();
    let (meta, method, version_id) = endpoint
        .blocking(move |s| {
            let (meta, method) = s.copy_object(request)?;
            let version = s.version_answer(&meta)?;
            Ok((meta, method, version))
        })
        .await?;
    let mut response = S3Response::new(with_encryption!(
        endpoint,
        &meta.sse,
        CopyObjectOutput {
            copy_object_result: Some({
                let mut result = CopyObjectResult {
                    e_tag: Some(etag(&meta)),
                    last_modified: Some(timestamp(meta.modified)),
                    ..Default::default()
                };
                result.checksum_type =
                    set_checksums!(result, Answer::object(meta.checksum.as_ref()));
                result
            }),
            version_id,
            copy_source_version_id: source_version,
        }
    ));
    // How the copy was done, for operators and tests: the fast path re-seals only the
    // data keys.
    let how = match method {
        CopyMethod::InPlace(ReencryptMethod::Reseal) => "reseal",
        CopyMethod::InPlace(ReencryptMethod::Rewrite) => "rewrite",
        CopyMethod::NewObject => "copy",
    };
    response.headers.insert(
        http::HeaderName::from_static("x-reseal-copy-method"),
        http::HeaderValue::from_static(how),
    );
    Ok(response)
}

pub(super) async fn upload_part_copy(
    endpoint: &Endpoint,
    req: S3Request<UploadPartCopyInput>,
) -> S3Result<S3Response<UploadPartCopyOutput>> {
    endpoint
        .check_write(&req, &req.input.bucket, &req.input.key, None)
        .await?;
    let customer = customer_key_of!(req)?;
    let source = copy_source_of!(req)?;
    let input = req.input;
    let number = part_number(input.part_number)?;
    let range = match &input.copy_source_range {
        None => None,
        Some(text) => match Range::parse(text) {
            Ok(Range::Int {
                first,
                last: Some(last),
            }) => Some(ByteRange::From {
                first,
                last: Some(last),
            }),
            _ => {
                return Err(error(
                    S3ErrorCode::InvalidArgument,
                    "The x-amz-copy-source-range value must be of the form bytes=first-last",
                ));
            }
        },
    };
    let (bucket, key, id) = (input.bucket, input.key, input.upload_id);
    let (part, sse) = endpoint
        .blocking(move |s| {
            let upload = s.upload_of(&bucket, &key, &id)?;
            let part =
                s.upload_part_copy(&bucket, &id, number, customer.as_ref(), &source, range)?;
            Ok((part, upload.object.sse))
        })
        .await?;
    Ok(S3Response::new(with_encryption!(
        endpoint,
        &sse,
        UploadPartCopyOutput {
            copy_part_result: Some({
                let mut result = CopyPartResult {
                    last_modified: Some(timestamp(part.modified)),
                    ..Default::default()
                };
                set_checksums!(result, Answer::part(part.checksum.as_ref()));
                result.e_tag = Some(ETag::Strong(part.etag));
                result
            }),
        }
    )))
}
