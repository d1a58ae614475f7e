//! The writes that re-encrypt an object: UpdateObjectEncryption, CopyObject onto itself,
//! and the multipart copy (CreateMultipartUpload with everything the object has, parallel
//! UploadPartCopy, CompleteMultipartUpload; aborted on any failure). Every copy is guarded
//! by the ETag the inspection saw, on the source and, where the server takes conditional
//! writes, on the destination.

use std::future::Future;

use aws_sdk_s3::primitives::{DateTime, DateTimeFormat};
use aws_sdk_s3::types::{
    ChecksumAlgorithm, CompletedMultipartUpload, CompletedPart, MetadataDirective,
    ObjectEncryption, ObjectLockLegalHoldStatus, ObjectLockMode, ServerSideEncryption,
    SsekmsEncryption, StorageClass, TaggingDirective,
};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use zeroize::Zeroizing;

use super::S3Target;
use super::inspect::{ObjectDetails, Reported};
use crate::crypto::CustomerKey;
use crate::encoding::encode_key;
use crate::sse::SseMode;
use crate::targets::{ErrorKind, ObjectRef, ObjectState, TargetError, WriteMethod, Written};

/// Sets the wanted SSE headers and the source's object lock fields and checksum
/// algorithm, which a copy must pass on, on CopyObject or CreateMultipartUpload.
macro_rules! with_target_fields {
    ($req:expr, $self:expr, $details:expr) => {
        $req.set_storage_class($details.storage_class.as_deref().map(StorageClass::from))
            .set_website_redirect_location($details.website_redirect.clone())
            .set_object_lock_mode(
                $details
                    .object_lock_mode
                    .as_deref()
                    .map(ObjectLockMode::from),
            )
            .set_object_lock_retain_until_date(
                $details
                    .object_lock_retain_until
                    .as_deref()
                    .and_then(parse_time),
            )
            .set_object_lock_legal_hold_status(
                $details
                    .object_lock_legal_hold
                    .as_deref()
                    .map(ObjectLockLegalHoldStatus::from),
            )
            .set_checksum_algorithm(
                $details
                    .checksum_algorithm
                    .as_deref()
                    .map(ChecksumAlgorithm::from),
            )
            .set_server_side_encryption($self.sse_header())
            .set_ssekms_key_id($self.kms_header())
            .set_bucket_key_enabled($self.bucket_key_header())
    };
}

impl S3Target {
    pub(super) async fn update(
        &self,
        object: &ObjectRef,
        seen: &ObjectState,
    ) -> Result<Written, TargetError> {
        let kms = SsekmsEncryption::builder()
            .kms_key_arn(self.want.kms_key_id.clone().unwrap_or_default())
            .bucket_key_enabled(self.want.bucket_key)
            .build()
            .map_err(|e| TargetError::permanent(400, "InvalidRequest", e.to_string()))?;
        self.call("UpdateObjectEncryption", object, || {
            self.client
                .update_object_encryption()
                .bucket(&object.bucket)
                .key(&object.key)
                .object_encryption(ObjectEncryption::Ssekms(kms.clone()))
                .send()
        })
        .await?;
        // UpdateObjectEncryption keeps the ETag (and the version); its answer does not say
        // the new encryption, so an inspection confirms it.
        Ok(Written {
            method: WriteMethod::Update,
            etag: Some(seen.etag.clone()),
            new_version: None,
            after: None,
            notes: Vec::new(),
        })
    }

    pub(super) async fn copy(
        &self,
        object: &ObjectRef,
        seen: &ObjectState,
    ) -> Result<Written, TargetError> {
        let details = details_of(seen);
        let target = self.want.customer_key.as_ref().map(SseCHeaders::new);
        let source = self.source_key_for(seen).map(SseCHeaders::new);
        let out = self
            .call("CopyObject", object, || {
                let mut req = self
                    .client
                    .copy_object()
                    .bucket(&object.bucket)
                    .key(&object.key)
                    .copy_source(copy_source(object))
                    .copy_source_if_match(&seen.etag)
                    // A write that lands while a large copy runs is not overwritten
                    // either, where the server takes conditional writes.
                    .if_match(&seen.etag)
                    .metadata_directive(MetadataDirective::Copy)
                    .tagging_directive(TaggingDirective::Copy);
                req = with_target_fields!(req, self, details);
                req = with_sse_c!(req, target.as_ref(), sse_customer);
                req = with_sse_c!(req, source.as_ref(), copy_source_sse_customer);
                req.send()
            })
            .await;
        let out = out?;
        self.learn_kms_arn(out.ssekms_key_id());
        let etag = out.copy_object_result().and_then(|r| r.e_tag());
        Ok(Written {
            method: WriteMethod::Copy,
            etag: etag.map(str::to_owned),
            new_version: out.version_id().map(str::to_owned),
            after: Reported {
                sse: out.server_side_encryption(),
                customer_algorithm: out.sse_customer_algorithm(),
                customer_key_md5: out.sse_customer_key_md5(),
                kms_key_id: out.ssekms_key_id(),
                bucket_key: out.bucket_key_enabled(),
                etag,
                version_id: out.version_id(),
            }
            .state(seen.size),
            notes: Vec::new(),
        })
    }

    pub(super) async fn multipart(
        &self,
        object: &ObjectRef,
        seen: &ObjectState,
    ) -> Result<Written, TargetError> {
        let details = details_of(seen);
        let target = self.want.customer_key.as_ref().map(SseCHeaders::new);
        let source = self.source_key_for(seen).map(SseCHeaders::new);

        // Nothing is inherited on this path: tags come from GetObjectTagging.
        let tagging = if details.tag_count > 0 || seen.extra.is_none() {
            let tags = self
                .call("GetObjectTagging", object, || {
                    self.client
                        .get_object_tagging()
                        .bucket(&object.bucket)
                        .key(&object.key)
                        .set_version_id(seen.version_id.clone())
                        .send()
                })
                .await?;
            let encoded: Vec<String> = tags
                .tag_set()
                .iter()
                .map(|t| format!("{}={}", encode_key(t.key()), encode_key(t.value())))
                .collect();
            (!encoded.is_empty()).then(|| encoded.join("&"))
        } else {
            None
        };
        let created = self
            .call("CreateMultipartUpload", object, || {
                let mut req = self
                    .client
                    .create_multipart_upload()
                    .bucket(&object.bucket)
                    .key(&object.key)
                    .set_metadata(
                        (!details.metadata.is_empty())
                            .then(|| details.metadata.clone().into_iter().collect()),
                    )
                    .set_content_type(details.content_type.clone())
                    .set_content_encoding(details.content_encoding.clone())
                    .set_content_language(details.content_language.clone())
                    .set_content_disposition(details.content_disposition.clone())
                    .set_cache_control(details.cache_control.clone())
                    .set_expires(details.expires.as_deref().and_then(parse_http_date))
                    .set_tagging(tagging.clone());
                req = with_target_fields!(req, self, details);
                req = with_sse_c!(req, target.as_ref(), sse_customer);
                req.send()
            })
            .await?;
        let Some(upload_id) = created.upload_id().map(str::to_owned) else {
            return Err(TargetError::new(
                ErrorKind::Transient,
                500,
                "InvalidResponse",
                "CreateMultipartUpload answered without an upload id".into(),
            ));
        };
        self.learn_kms_arn(created.ssekms_key_id());

        let result = self
            .copy_parts(object, seen, &upload_id, target.as_ref(), source.as_ref())
            .await;
        let parts = match result {
            Ok(parts) => parts,
            Err(e) => {
                self.abort(object, &upload_id).await;
                return Err(e);
            }
        };
        let completed = self
            .call("CompleteMultipartUpload", object, || {
                let mut req = self
                    .client
                    .complete_multipart_upload()
                    .bucket(&object.bucket)
                    .key(&object.key)
                    .upload_id(&upload_id)
                    .if_match(&seen.etag)
                    .multipart_upload(
                        CompletedMultipartUpload::builder()
                            .set_parts(Some(parts.clone()))
                            .build(),
                    );
                req = with_sse_c!(req, target.as_ref(), sse_customer);
                req.send()
            })
            .await;
        match completed {
            Ok(out) => {
                self.learn_kms_arn(out.ssekms_key_id());
                Ok(Written {
                    method: WriteMethod::MultipartCopy,
                    etag: out.e_tag().map(str::to_owned),
                    new_version: out.version_id().map(str::to_owned),
                    // CompleteMultipartUpload does not report an SSE-C key's MD5: an
                    // SSE-C object is confirmed by an inspection.
                    after: Reported {
                        sse: out.server_side_encryption(),
                        customer_algorithm: None,
                        customer_key_md5: None,
                        kms_key_id: out.ssekms_key_id(),
                        bucket_key: out.bucket_key_enabled(),
                        etag: out.e_tag(),
                        version_id: out.version_id(),
                    }
                    .state(seen.size),
                    notes: Vec::new(),
                })
            }
            Err(e) => {
                // No such upload: a retried completion whose first try landed (or an
                // upload aborted by someone else); the object is inspected again.
                if e.code == "NoSuchUpload" {
                    return Err(TargetError {
                        kind: ErrorKind::Changed,
                        maybe_written: true,
                        ..e
                    });
                }
                self.abort(object, &upload_id).await;
                Err(e)
            }
        }
    }

    async fn copy_parts(
        &self,
        object: &ObjectRef,
        seen: &ObjectState,
        upload_id: &str,
        target: Option<&SseCHeaders>,
        source: Option<&SseCHeaders>,
    ) -> Result<Vec<CompletedPart>, TargetError> {
        let part_size = super::plan::part_size(seen.size, &self.options);
        let count = seen.size.div_ceil(part_size).max(1);
        let sem = tokio::sync::Semaphore::new(self.options.part_concurrency.max(1));
        let parts = (0..count).map(|i| {
            let sem = &sem;
            async move {
                let _slot = sem.acquire().await.expect("never closed");
                let first = i * part_size;
                let last = (first + part_size).min(seen.size).saturating_sub(1);
                let number = (i + 1) as i32;
                let out = self
                    .call("UploadPartCopy", object, || {
                        let mut req = self
                            .client
                            .upload_part_copy()
                            .bucket(&object.bucket)
                            .key(&object.key)
                            .upload_id(upload_id)
                            .part_number(number)
                            .copy_source(copy_source(object))
                            .copy_source_range(format!("bytes={first}-{last}"))
                            .copy_source_if_match(&seen.etag);
                        req = with_sse_c!(req, target, sse_customer);
                        req = with_sse_c!(req, source, copy_source_sse_customer);
                        req.send()
                    })
                    .await?;
                let r = out.copy_part_result();
                Ok::<_, TargetError>(
                    CompletedPart::builder()
                        .part_number(number)
                        .set_e_tag(r.and_then(|r| r.e_tag()).map(str::to_owned))
                        .set_checksum_crc32(r.and_then(|r| r.checksum_crc32()).map(str::to_owned))
                        .set_checksum_crc32_c(
                            r.and_then(|r| r.checksum_crc32_c()).map(str::to_owned),
                        )
                        .set_checksum_crc64_nvme(
                            r.and_then(|r| r.checksum_crc64_nvme()).map(str::to_owned),
                        )
                        .set_checksum_sha1(r.and_then(|r| r.checksum_sha1()).map(str::to_owned))
                        .set_checksum_sha256(r.and_then(|r| r.checksum_sha256()).map(str::to_owned))
                        .build(),
                )
            }
        });
        let results = join_all_fail_fast(parts.collect()).await?;
        Ok(results)
    }

    async fn abort(&self, object: &ObjectRef, upload_id: &str) {
        let aborted = self
            .call("AbortMultipartUpload", object, || {
                self.client
                    .abort_multipart_upload()
                    .bucket(&object.bucket)
                    .key(&object.key)
                    .upload_id(upload_id)
                    .send()
            })
            .await;
        if let Err(e) = aborted {
            tracing::error!(
                bucket = %object.bucket, key = %object.key, upload_id, error = %e,
                "could not abort a multipart upload; abort it by hand or with a lifecycle rule"
            );
        }
    }

    fn sse_header(&self) -> Option<ServerSideEncryption> {
        match self.want.mode {
            SseMode::SseS3 => Some(ServerSideEncryption::Aes256),
            SseMode::SseKms => Some(ServerSideEncryption::AwsKms),
            SseMode::DsseKms => Some(ServerSideEncryption::AwsKmsDsse),
            SseMode::SseC | SseMode::NotSse => None,
        }
    }

    fn kms_header(&self) -> Option<String> {
        self.want.kms_key_id.clone()
    }

    fn bucket_key_header(&self) -> Option<bool> {
        (self.want.mode == SseMode::SseKms && self.want.bucket_key).then_some(true)
    }
}

/// Runs futures concurrently; the first error ends the wait (the others are dropped).
async fn join_all_fail_fast<T, F>(futures: Vec<F>) -> Result<Vec<T>, TargetError>
where
    F: Future<Output = Result<T, TargetError>>,
{
    use std::pin::Pin;
    use std::task::{Context, Poll};
    struct JoinAll<F: Future> {
        futures: Vec<Option<Pin<Box<F>>>>,
        results: Vec<Option<F::Output>>,
    }
    // The futures are boxed; the results are only moved out once all are in.
    impl<F: Future> Unpin for JoinAll<F> {}
    impl<T, F: Future<Output = Result<T, TargetError>>> Future for JoinAll<F> {
        type Output = Result<Vec<T>, TargetError>;
        fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
            let this = &mut *self;
            let mut pending = false;
            for (slot, result) in this.futures.iter_mut().zip(this.results.iter_mut()) {
                if let Some(f) = slot {
                    match f.as_mut().poll(cx) {
                        Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                        Poll::Ready(ok) => {
                            *result = Some(ok);
                            *slot = None;
                        }
                        Poll::Pending => pending = true,
                    }
                }
            }
            if pending {
                return Poll::Pending;
            }
            Poll::Ready(Ok(this
                .results
                .iter_mut()
                .map(|r| match r.take() {
                    Some(Ok(v)) => v,
                    _ => unreachable!("every future finished"),
                })
                .collect()))
        }
    }
    let n = futures.len();
    JoinAll {
        futures: futures.into_iter().map(|f| Some(Box::pin(f))).collect(),
        results: (0..n).map(|_| None).collect(),
    }
    .await
}

/// The SSE-C request headers of one key. The base64 key lives as briefly as the request
/// that carries it and is wiped after.
pub(super) struct SseCHeaders {
    pub(super) key: Zeroizing<String>,
    pub(super) md5: String,
}

impl SseCHeaders {
    pub(super) fn new(key: &CustomerKey) -> SseCHeaders {
        SseCHeaders {
            key: Zeroizing::new(BASE64.encode(key.expose_secret())),
            md5: key.md5_base64(),
        }
    }
}

/// `bucket/key` for x-amz-copy-source, the key URL-encoded (the SDK sends it as given).
/// Never a version id: the source is the current version.
pub(super) fn copy_source(object: &ObjectRef) -> String {
    format!("{}/{}", object.bucket, encode_key(&object.key))
}

fn parse_time(s: &str) -> Option<DateTime> {
    DateTime::from_str(s, DateTimeFormat::DateTime).ok()
}

fn parse_http_date(s: &str) -> Option<DateTime> {
    DateTime::from_str(s, DateTimeFormat::HttpDate).ok()
}

/// What the inspection found that a copy must carry over (nothing known: an empty record).
fn details_of(seen: &ObjectState) -> ObjectDetails {
    seen.extra
        .as_ref()
        .and_then(|e| e.get::<ObjectDetails>())
        .cloned()
        .unwrap_or_default()
}
