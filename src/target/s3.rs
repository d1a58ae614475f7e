//! Amazon S3 and S3-compatible stores as a target, through `aws-sdk-s3`.
//!
//! One task is: HEAD (with the source SSE-C key when the object needs one) → skip when
//! compliant → `UpdateObjectEncryption`, `CopyObject` onto itself, or a multipart copy →
//! (the runner's) HEAD to confirm. Every write is guarded by the ETag the HEAD saw, so an
//! object rewritten by someone else during the job is never overwritten with stale bytes.
//! The copy source is always the key's current version: copying an older version would
//! roll the object back.
//!
//! Requests go through [`S3Target::call`]: the SDK's own retries are off, and failed
//! requests are retried here under the [`Pacer`], which lowers concurrency on throttling.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use aws_sdk_s3::Client;
use aws_sdk_s3::config::http::HttpResponse;
use aws_sdk_s3::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_s3::primitives::{DateTime, DateTimeFormat};
use aws_sdk_s3::types::{
    AccessControlPolicy, ChecksumAlgorithm, ChecksumMode, CompletedMultipartUpload, CompletedPart,
    EncryptionType, MetadataDirective, ObjectEncryption, ObjectLockLegalHoldStatus, ObjectLockMode,
    ServerSideEncryption, SsekmsEncryption, StorageClass, TaggingDirective,
};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use zeroize::Zeroizing;

use super::pace::{Pacer, backoff};
use super::{ErrorKind, ObjectRef, ObjectState, Target, TargetError, WriteMethod, Written};
use crate::crypto::CustomerKey;
use crate::encoding::encode_key;
use crate::job::JobSpec;
use crate::sse::{SseMode, SseSpec};

/// The largest object one CopyObject can copy, and the default multipart threshold.
pub const MAX_COPY_SIZE: u64 = 5 << 30;
/// S3's smallest part (but for the last one), and the default part size.
pub const MIN_PART_SIZE: u64 = 5 << 20;
/// S3's most parts per upload.
const MAX_PARTS: u64 = 10_000;
/// Tries per request for transient errors (throttling, 5xx, lost connections).
pub(crate) const REQUEST_ATTEMPTS: u32 = 8;

/// How to reach the server. None of it is secret: credentials come from the AWS chain.
#[derive(Debug, Clone, Default)]
pub struct Connection {
    pub endpoint_url: Option<String>,
    pub region: Option<String>,
    pub profile: Option<String>,
}

/// Builds a client from the standard AWS configuration chain (environment, profile, SSO,
/// instance metadata, assume-role). With an endpoint URL (an S3-compatible store) it uses
/// path-style addressing and sends checksums only where an operation requires them.
pub async fn connect(conn: &Connection) -> Result<Client, String> {
    use aws_config::{BehaviorVersion, Region};
    let mut loader = aws_config::defaults(BehaviorVersion::latest())
        .retry_config(aws_config::retry::RetryConfig::disabled())
        .timeout_config(
            aws_config::timeout::TimeoutConfig::builder()
                .connect_timeout(Duration::from_secs(10))
                .read_timeout(Duration::from_secs(300))
                .build(),
        );
    if let Some(profile) = &conn.profile {
        loader = loader.profile_name(profile);
    }
    if let Some(region) = &conn.region {
        loader = loader.region(Region::new(region.clone()));
    }
    if let Some(url) = &conn.endpoint_url {
        loader = loader
            .endpoint_url(url)
            .request_checksum_calculation(
                aws_sdk_s3::config::RequestChecksumCalculation::WhenRequired,
            )
            .response_checksum_validation(
                aws_sdk_s3::config::ResponseChecksumValidation::WhenRequired,
            );
    }
    let shared = loader.load().await;
    let mut config = aws_sdk_s3::config::Builder::from(&shared);
    if shared.region().is_none() {
        if conn.endpoint_url.is_none() {
            return Err(
                "no AWS region: give --region, or set AWS_REGION or a region in the profile".into(),
            );
        }
        // S3-compatible stores mostly ignore the region but SigV4 needs one.
        config = config.region(Region::new("us-east-1"));
    }
    if conn.endpoint_url.is_some() {
        config = config.force_path_style(true);
    }
    Ok(Client::from_conf(config.build()))
}

/// How objects are re-encrypted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    /// UpdateObjectEncryption where it applies and the server has it; a copy otherwise.
    Auto,
    /// Always copy.
    Copy,
    /// Only UpdateObjectEncryption; objects it cannot change fail.
    Update,
}

#[derive(Debug, Clone)]
pub struct S3Options {
    pub method: Method,
    /// Objects larger than this are copied in parts.
    pub multipart_threshold: u64,
    pub part_size: u64,
    /// Parts of one object copied at once.
    pub part_concurrency: usize,
    pub preserve_acl: bool,
    pub delete_noncurrent: bool,
    /// Requests in flight at most (the pacer's ceiling).
    pub max_in_flight: usize,
    pub max_rps: Option<f64>,
    /// The server is Amazon S3 itself (no endpoint URL). `auto` uses UpdateObjectEncryption
    /// only there: a server that does not know the operation may take its request for a
    /// PutObject and replace the object with the request's XML (moto does).
    pub amazon: bool,
}

impl Default for S3Options {
    fn default() -> Self {
        S3Options {
            method: Method::Auto,
            multipart_threshold: MAX_COPY_SIZE,
            part_size: 64 << 20,
            part_concurrency: 8,
            preserve_acl: false,
            delete_noncurrent: false,
            max_in_flight: 64,
            max_rps: None,
            amazon: true,
        }
    }
}

/// What S3 reports of an object beyond its encryption: what a copy must carry over.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ObjectDetails {
    pub storage_class: Option<String>,
    pub website_redirect: Option<String>,
    pub content_type: Option<String>,
    pub content_encoding: Option<String>,
    pub content_language: Option<String>,
    pub content_disposition: Option<String>,
    pub cache_control: Option<String>,
    pub expires: Option<String>,
    pub metadata: BTreeMap<String, String>,
    pub object_lock_mode: Option<String>,
    /// RFC 3339.
    pub object_lock_retain_until: Option<String>,
    pub object_lock_legal_hold: Option<String>,
    pub checksum_algorithm: Option<String>,
    pub tag_count: i32,
}

/// Sets the three SSE-C headers of one key (`sse_customer` for the object written,
/// `copy_source_sse_customer` for the copy source) on any request builder that has them.
macro_rules! with_sse_c {
    ($req:expr, $headers:expr, sse_customer) => {
        match $headers {
            Some(h) => $req
                .sse_customer_algorithm("AES256")
                .sse_customer_key(h.key.as_str())
                .sse_customer_key_md5(&h.md5),
            None => $req,
        }
    };
    ($req:expr, $headers:expr, copy_source_sse_customer) => {
        match $headers {
            Some(h) => $req
                .copy_source_sse_customer_algorithm("AES256")
                .copy_source_sse_customer_key(h.key.as_str())
                .copy_source_sse_customer_key_md5(&h.md5),
            None => $req,
        }
    };
}

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

/// The encryption a job wants, as request headers will say it.
struct Want {
    mode: SseMode,
    kms_key_id: Option<String>,
    bucket_key: bool,
    customer_key: Option<CustomerKey>,
}

pub struct S3Target {
    client: Client,
    want: Want,
    source_key: Option<CustomerKey>,
    options: S3Options,
    pacer: Pacer,
    /// The key ARN the server reports for the job's KMS key, learned from the first write
    /// (an alias or the default key cannot be compared with what HEAD reports otherwise).
    learned_kms_arn: OnceLock<String>,
    /// Set once the server answers that it does not implement UpdateObjectEncryption.
    update_unsupported: AtomicBool,
}

impl S3Target {
    pub fn new(
        client: Client,
        spec: &JobSpec,
        target_key: Option<CustomerKey>,
        source_key: Option<CustomerKey>,
        options: S3Options,
    ) -> S3Target {
        let (kms_key_id, customer_key) = match &spec.sse {
            SseSpec::SseS3 => (None, None),
            SseSpec::SseKms { key_id } => (key_id.clone(), None),
            SseSpec::DsseKms { key_id } => (Some(key_id.clone()), None),
            SseSpec::SseC { .. } => (
                None,
                Some(target_key.expect("an SSE-C job is given its key")),
            ),
        };
        S3Target {
            client,
            want: Want {
                mode: spec.sse.mode(),
                kms_key_id,
                bucket_key: spec.bucket_key,
                customer_key,
            },
            source_key,
            pacer: Pacer::new(options.max_in_flight, options.max_rps),
            options,
            learned_kms_arn: OnceLock::new(),
            update_unsupported: AtomicBool::new(false),
        }
    }

    pub fn client(&self) -> &Client {
        &self.client
    }

    pub fn pacer(&self) -> &Pacer {
        &self.pacer
    }

    /// Sends a request, retrying transient failures with backoff under the pacer. A 412
    /// after such a retry may be the first attempt's own write having landed: it comes back
    /// as transient ("outcome unknown"), so that the runner's re-inspection decides.
    async fn call<T, E, F, Fut>(
        &self,
        what: &str,
        object: &ObjectRef,
        mut send: F,
    ) -> Result<T, TargetError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, SdkError<E, HttpResponse>>>,
        E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    {
        let mut attempt = 0;
        loop {
            attempt += 1;
            let permit = self.pacer.acquire().await;
            match send().await {
                Ok(v) => {
                    permit.success();
                    return Ok(v);
                }
                Err(e) => {
                    let mut err = classify(what, object, &e);
                    if err.kind == ErrorKind::Changed && attempt > 1 {
                        err.kind = ErrorKind::Transient;
                        err.message
                            .push_str(" (after a retry: an earlier attempt may have taken effect)");
                    }
                    if err.kind != ErrorKind::Transient || attempt > 1 && err.http_status == 412 {
                        drop(permit);
                        return Err(err);
                    }
                    permit.throttled();
                    tracing::debug!(what, attempt, error = %err, "retrying");
                    if attempt >= REQUEST_ATTEMPTS {
                        return Err(err);
                    }
                    tokio::time::sleep(backoff(attempt)).await;
                }
            }
        }
    }

    async fn head(
        &self,
        object: &ObjectRef,
        key: Option<&CustomerKey>,
    ) -> Result<aws_sdk_s3::operation::head_object::HeadObjectOutput, TargetError> {
        let headers = key.map(SseCHeaders::new);
        self.call("HeadObject", object, || {
            let mut req = self
                .client
                .head_object()
                .bucket(&object.bucket)
                .key(&object.key)
                .checksum_mode(ChecksumMode::Enabled);
            req = with_sse_c!(req, headers.as_ref(), sse_customer);
            req.send()
        })
        .await
    }

    /// The customer keys this job has, the target's first (objects already rotated are
    /// the ones a re-run meets most).
    fn customer_keys(&self) -> Vec<&CustomerKey> {
        let mut keys: Vec<&CustomerKey> = Vec::new();
        for k in [self.want.customer_key.as_ref(), self.source_key.as_ref()]
            .into_iter()
            .flatten()
        {
            if !keys.iter().any(|have| have.md5_base64() == k.md5_base64()) {
                keys.push(k);
            }
        }
        keys
    }

    fn source_key_for(&self, state: &ObjectState) -> Option<&CustomerKey> {
        let md5 = state.sse_c_key_md5.as_deref()?;
        self.customer_keys()
            .into_iter()
            .find(|k| k.md5_base64() == md5)
    }

    fn kms_matches(&self, reported: Option<&str>) -> bool {
        let Some(reported) = reported else {
            return false;
        };
        if let Some(arn) = self.learned_kms_arn.get() {
            return reported == arn;
        }
        match self.want.kms_key_id.as_deref() {
            Some(want) if !want.starts_with("alias/") && !want.contains(":alias/") => {
                reported == want
                    || reported.ends_with(&format!("key/{want}"))
                    || want.ends_with(&format!("key/{reported}"))
            }
            // An alias or the default key: known once a write has shown its ARN.
            _ => false,
        }
    }

    /// The key ARN learned for the job's KMS key (an alias or the default key), if any.
    pub fn learned_kms_arn(&self) -> Option<&str> {
        self.learned_kms_arn.get().map(String::as_str)
    }

    pub fn learn_kms_arn(&self, reported: Option<&str>) {
        let comparable = self
            .want
            .kms_key_id
            .as_deref()
            .is_some_and(|k| !k.starts_with("alias/") && !k.contains(":alias/"));
        if matches!(self.want.mode, SseMode::SseKms | SseMode::DsseKms)
            && !comparable
            && let Some(arn) = reported
        {
            let _ = self.learned_kms_arn.set(arn.to_owned());
        }
    }

    /// Which method re-encrypts this object.
    fn choose(&self, seen: &ObjectState) -> Result<Chosen, TargetError> {
        let update_applies = self.want.mode == SseMode::SseKms
            && self.want.kms_key_id.is_some()
            && matches!(seen.mode, SseMode::SseS3 | SseMode::SseKms);
        match self.options.method {
            Method::Update if !update_applies => Err(TargetError {
                kind: ErrorKind::Permanent,
                http_status: 400,
                code: "UpdateNotApplicable".into(),
                message: format!(
                    "UpdateObjectEncryption cannot make a {} object {}{} (it changes SSE-S3 or SSE-KMS objects to SSE-KMS with a named key); use --method auto or copy",
                    seen.mode,
                    self.want.mode,
                    if self.want.kms_key_id.is_none() && self.want.mode == SseMode::SseKms {
                        " with the default key"
                    } else {
                        ""
                    }
                ),
            }),
            Method::Update => Ok(Chosen::Update),
            Method::Auto
                if update_applies
                    && self.options.amazon
                    && !self.update_unsupported.load(Ordering::Relaxed) =>
            {
                Ok(Chosen::Update)
            }
            _ if seen.size > self.options.multipart_threshold => Ok(Chosen::Multipart),
            _ => Ok(Chosen::Copy),
        }
    }

    async fn update(&self, object: &ObjectRef, seen: &ObjectState) -> Result<Written, TargetError> {
        let kms = SsekmsEncryption::builder()
            .kms_key_arn(self.want.kms_key_id.clone().unwrap_or_default())
            .bucket_key_enabled(self.want.bucket_key)
            .build()
            .map_err(|e| permanent("InvalidRequest", e.to_string()))?;
        self.call("UpdateObjectEncryption", object, || {
            self.client
                .update_object_encryption()
                .bucket(&object.bucket)
                .key(&object.key)
                .object_encryption(ObjectEncryption::Ssekms(kms.clone()))
                .send()
        })
        .await?;
        // UpdateObjectEncryption keeps the ETag (and the version).
        Ok(Written {
            method: WriteMethod::Update,
            etag: Some(seen.etag.clone()),
            new_version: None,
            notes: Vec::new(),
        })
    }

    async fn copy(&self, object: &ObjectRef, seen: &ObjectState) -> Result<Written, TargetError> {
        let details = seen.details.as_deref().cloned().unwrap_or_default();
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
        Ok(Written {
            method: WriteMethod::Copy,
            etag: out
                .copy_object_result()
                .and_then(|r| r.e_tag())
                .map(str::to_owned),
            new_version: out.version_id().map(str::to_owned),
            notes: Vec::new(),
        })
    }

    async fn multipart(
        &self,
        object: &ObjectRef,
        seen: &ObjectState,
    ) -> Result<Written, TargetError> {
        let details = seen.details.as_deref().cloned().unwrap_or_default();
        let target = self.want.customer_key.as_ref().map(SseCHeaders::new);
        let source = self.source_key_for(seen).map(SseCHeaders::new);

        // Nothing is inherited on this path: tags come from GetObjectTagging.
        let tagging = if details.tag_count > 0 || seen.details.is_none() {
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
            return Err(TargetError {
                kind: ErrorKind::Transient,
                http_status: 500,
                code: "InvalidResponse".into(),
                message: "CreateMultipartUpload answered without an upload id".into(),
            });
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
            Ok(out) => Ok(Written {
                method: WriteMethod::MultipartCopy,
                etag: out.e_tag().map(str::to_owned),
                new_version: out.version_id().map(str::to_owned),
                notes: Vec::new(),
            }),
            Err(e) => {
                // NoSuchUpload after a retry: the first completion landed.
                if e.code == "NoSuchUpload" {
                    return Err(TargetError {
                        kind: ErrorKind::Transient,
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
        let part_size = self
            .options
            .part_size
            .max(seen.size.div_ceil(MAX_PARTS))
            .max(MIN_PART_SIZE);
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

    /// Re-applies an ACL read before the write. Returns what the report should say.
    async fn reapply_acl(
        &self,
        object: &ObjectRef,
        acl: Option<AccessControlPolicy>,
    ) -> Result<&'static str, TargetError> {
        let Some(acl) = acl else {
            return Ok(
                "the bucket does not use ACLs (Object Ownership: bucket owner enforced); none re-applied",
            );
        };
        // As grant headers rather than an XML body: every server takes those (moto ignores
        // the body).
        let mut by_permission: BTreeMap<&str, Vec<String>> = BTreeMap::new();
        for grant in acl.grants() {
            let (Some(grantee), Some(permission)) = (grant.grantee(), grant.permission()) else {
                continue;
            };
            let who = if let Some(id) = grantee.id() {
                format!("id=\"{id}\"")
            } else if let Some(uri) = grantee.uri() {
                format!("uri=\"{uri}\"")
            } else if let Some(email) = grantee.email_address() {
                format!("emailAddress=\"{email}\"")
            } else {
                continue;
            };
            by_permission
                .entry(permission.as_str())
                .or_default()
                .push(who);
        }
        let header = |p: &str| by_permission.get(p).map(|v| v.join(", "));
        let put = self
            .call("PutObjectAcl", object, || {
                self.client
                    .put_object_acl()
                    .bucket(&object.bucket)
                    .key(&object.key)
                    .set_grant_full_control(header("FULL_CONTROL"))
                    .set_grant_read(header("READ"))
                    .set_grant_read_acp(header("READ_ACP"))
                    .set_grant_write_acp(header("WRITE_ACP"))
                    .send()
            })
            .await;
        match put {
            Ok(_) => Ok("ACL re-applied"),
            Err(e) if e.code == "AccessControlListNotSupported" => Ok(
                "the bucket does not use ACLs (Object Ownership: bucket owner enforced); none re-applied",
            ),
            Err(e) => Err(TargetError {
                message: format!(
                    "re-encrypted, but its ACL could not be re-applied: {}",
                    e.message
                ),
                kind: ErrorKind::Permanent,
                ..e
            }),
        }
    }

    async fn read_acl(
        &self,
        object: &ObjectRef,
    ) -> Result<Option<AccessControlPolicy>, TargetError> {
        let got = self
            .call("GetObjectAcl", object, || {
                self.client
                    .get_object_acl()
                    .bucket(&object.bucket)
                    .key(&object.key)
                    .send()
            })
            .await;
        match got {
            Ok(out) => Ok(Some(
                AccessControlPolicy::builder()
                    .set_grants(Some(out.grants().to_vec()))
                    .set_owner(out.owner().cloned())
                    .build(),
            )),
            Err(e) if e.code == "AccessControlListNotSupported" => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Deletes the key's noncurrent versions once its current version is confirmed.
    async fn delete_noncurrent(&self, object: &ObjectRef) -> Result<usize, TargetError> {
        let now = self.inspect(object).await?;
        if !self.is_compliant(&now) {
            return Err(TargetError {
                kind: ErrorKind::Transient,
                http_status: 500,
                code: "VerificationFailed".into(),
                message: format!(
                    "after re-encryption the object is {}; its noncurrent versions were kept",
                    now.mode
                ),
            });
        }
        let mut noncurrent = Vec::new();
        let (mut key_marker, mut version_marker) = (None::<String>, None::<String>);
        loop {
            let page = self
                .call("ListObjectVersions", object, || {
                    self.client
                        .list_object_versions()
                        .bucket(&object.bucket)
                        .prefix(&object.key)
                        .set_key_marker(key_marker.clone())
                        .set_version_id_marker(version_marker.clone())
                        .send()
                })
                .await?;
            for v in page.versions() {
                if v.key() == Some(object.key.as_str())
                    && v.is_latest() != Some(true)
                    && v.version_id() != now.version_id.as_deref()
                    && let Some(id) = v.version_id()
                {
                    noncurrent.push(id.to_owned());
                }
            }
            // Keys sort after their prefix: past our key, nothing more is ours.
            let past = page
                .versions()
                .last()
                .and_then(|v| v.key())
                .is_some_and(|k| k > object.key.as_str());
            if page.is_truncated() != Some(true) || past {
                break;
            }
            key_marker = page.next_key_marker().map(str::to_owned);
            version_marker = page.next_version_id_marker().map(str::to_owned);
        }
        for id in &noncurrent {
            self.call("DeleteObject", object, || {
                self.client
                    .delete_object()
                    .bucket(&object.bucket)
                    .key(&object.key)
                    .version_id(id)
                    .send()
            })
            .await?;
        }
        Ok(noncurrent.len())
    }

    /// On a 403 for a request that carried SSE-C, finds out whether the bucket blocks
    /// SSE-C and says what to change.
    async fn explain_sse_c_refusal(&self, object: &ObjectRef, e: TargetError) -> TargetError {
        let blocked = match self
            .client
            .get_bucket_encryption()
            .bucket(&object.bucket)
            .send()
            .await
        {
            Ok(out) => out
                .server_side_encryption_configuration()
                .map(|c| {
                    c.rules().iter().any(|r| {
                        r.blocked_encryption_types()
                            .is_some_and(|b| b.encryption_type().contains(&EncryptionType::SseC))
                    })
                })
                .unwrap_or(false),
            Err(_) => false,
        };
        let message = if blocked {
            format!(
                "bucket {} blocks SSE-C (BlockedEncryptionTypes in its default encryption; AWS sets it on new buckets since April 2026): allow SSE-C in the bucket's default encryption (PutBucketEncryption without SSE-C in BlockedEncryptionTypes), or choose another --sse",
                object.bucket
            )
        } else {
            format!(
                "{} (the request carried an SSE-C key: a wrong key answers 403, and so does a bucket that blocks SSE-C, which AWS does by default since April 2026)",
                e.message
            )
        };
        TargetError {
            kind: ErrorKind::Permanent,
            message,
            ..e
        }
    }
}

enum Chosen {
    Update,
    Copy,
    Multipart,
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
struct SseCHeaders {
    key: Zeroizing<String>,
    md5: String,
}

impl SseCHeaders {
    fn new(key: &CustomerKey) -> SseCHeaders {
        SseCHeaders {
            key: Zeroizing::new(BASE64.encode(key.expose_secret())),
            md5: key.md5_base64(),
        }
    }
}

/// `bucket/key` for x-amz-copy-source, the key URL-encoded (the SDK sends it as given).
/// Never a version id: the source is the current version.
fn copy_source(object: &ObjectRef) -> String {
    format!("{}/{}", object.bucket, encode_key(&object.key))
}

fn parse_time(s: &str) -> Option<DateTime> {
    DateTime::from_str(s, DateTimeFormat::DateTime).ok()
}

fn parse_http_date(s: &str) -> Option<DateTime> {
    DateTime::from_str(s, DateTimeFormat::HttpDate).ok()
}

fn permanent(code: &str, message: String) -> TargetError {
    TargetError {
        kind: ErrorKind::Permanent,
        http_status: 400,
        code: code.into(),
        message,
    }
}

/// Error codes that mean "slow down or try again".
const TRANSIENT_CODES: &[&str] = &[
    "SlowDown",
    "InternalError",
    "ServiceUnavailable",
    "RequestTimeout",
    "RequestTimeTooSkewed",
    "Throttling",
    "ThrottlingException",
    "KMS.ThrottlingException",
    "KMS.KMSInternalException",
    "OperationAborted",
];

/// Turns an SDK error into a [`TargetError`]: which kind, the HTTP status and S3's code.
fn classify<E>(what: &str, object: &ObjectRef, e: &SdkError<E, HttpResponse>) -> TargetError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    let status = e.raw_response().map(|r| r.status().as_u16());
    let where_ = format!("{what} s3://{}/{}", object.bucket, object.key);
    match e {
        SdkError::ServiceError(service) => {
            let err = service.err();
            let status = status.unwrap_or(500);
            let code = err
                .code()
                .map(str::to_owned)
                .unwrap_or_else(|| match status {
                    404 => "NotFound".into(),
                    403 => "AccessDenied".into(),
                    412 => "PreconditionFailed".into(),
                    400 => "BadRequest".into(),
                    _ => format!("Http{status}"),
                });
            let kind = if status == 412 || code == "PreconditionFailed" {
                ErrorKind::Changed
            } else if status >= 500 || status == 429 || TRANSIENT_CODES.contains(&code.as_str()) {
                ErrorKind::Transient
            } else {
                ErrorKind::Permanent
            };
            let message = match err.message() {
                Some(m) => format!("{where_}: {m}"),
                None => format!("{where_}: HTTP {status}"),
            };
            TargetError {
                kind,
                http_status: status,
                code,
                message,
            }
        }
        SdkError::ConstructionFailure(_) => TargetError {
            kind: ErrorKind::Permanent,
            http_status: 0,
            code: "RequestNotBuilt".into(),
            message: format!("{where_}: {}", DisplayErrorContext(e)),
        },
        // No answer, a timeout or an answer cut short: it may or may not have taken effect.
        _ => TargetError {
            kind: ErrorKind::Transient,
            http_status: status.unwrap_or(0),
            code: "RequestFailed".into(),
            message: format!("{where_}: {}", DisplayErrorContext(e)),
        },
    }
}

fn details_of(head: &aws_sdk_s3::operation::head_object::HeadObjectOutput) -> ObjectDetails {
    let checksum_algorithm = if head.checksum_crc64_nvme().is_some() {
        Some("CRC64NVME")
    } else if head.checksum_crc32().is_some() {
        Some("CRC32")
    } else if head.checksum_crc32_c().is_some() {
        Some("CRC32C")
    } else if head.checksum_sha1().is_some() {
        Some("SHA1")
    } else if head.checksum_sha256().is_some() {
        Some("SHA256")
    } else {
        None
    };
    ObjectDetails {
        storage_class: head.storage_class().map(|c| c.as_str().to_owned()),
        website_redirect: head.website_redirect_location().map(str::to_owned),
        content_type: head.content_type().map(str::to_owned),
        content_encoding: head.content_encoding().map(str::to_owned),
        content_language: head.content_language().map(str::to_owned),
        content_disposition: head.content_disposition().map(str::to_owned),
        cache_control: head.cache_control().map(str::to_owned),
        expires: head.expires_string().map(str::to_owned),
        metadata: head
            .metadata()
            .map(|m| m.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
            .unwrap_or_default(),
        object_lock_mode: head.object_lock_mode().map(|m| m.as_str().to_owned()),
        object_lock_retain_until: head
            .object_lock_retain_until_date()
            .and_then(|d| d.fmt(DateTimeFormat::DateTime).ok()),
        object_lock_legal_hold: head
            .object_lock_legal_hold_status()
            .map(|s| s.as_str().to_owned()),
        checksum_algorithm: checksum_algorithm.map(str::to_owned),
        tag_count: head.tag_count().unwrap_or(0),
    }
}

impl Target for Arc<S3Target> {
    async fn inspect(&self, object: &ObjectRef) -> Result<ObjectState, TargetError> {
        self.as_ref().inspect(object).await
    }

    fn is_compliant(&self, state: &ObjectState) -> bool {
        self.as_ref().is_compliant(state)
    }

    async fn reencrypt(
        &self,
        object: &ObjectRef,
        seen: &ObjectState,
    ) -> Result<Written, TargetError> {
        self.as_ref().reencrypt(object, seen).await
    }
}

impl S3Target {
    pub async fn inspect(&self, object: &ObjectRef) -> Result<ObjectState, TargetError> {
        let head = match self.head(object, None).await {
            Ok(head) => head,
            // An SSE-C object answers 400 to a HEAD without its key, 403 to a wrong one.
            Err(e) if e.http_status == 400 => {
                let keys = self.customer_keys();
                if keys.is_empty() {
                    return Err(permanent(
                        "InvalidRequest",
                        format!(
                            "{}: the object looks SSE-C encrypted (HEAD without a key answers 400); give its key with --source-sse-c",
                            e.message
                        ),
                    ));
                }
                let mut found = None;
                let mut last = e;
                for key in keys {
                    match self.head(object, Some(key)).await {
                        Ok(head) => {
                            found = Some(head);
                            break;
                        }
                        Err(e) if e.http_status == 403 || e.http_status == 400 => last = e,
                        Err(e) => return Err(e),
                    }
                }
                match found {
                    Some(head) => head,
                    None => {
                        return Err(permanent(
                            "AccessDenied",
                            format!(
                                "{}: the object is SSE-C encrypted with a key that is neither the job's nor --source-sse-c",
                                last.message
                            ),
                        ));
                    }
                }
            }
            Err(e) => return Err(e),
        };
        let mode = match (head.server_side_encryption(), head.sse_customer_algorithm()) {
            (_, Some(_)) => SseMode::SseC,
            (Some(ServerSideEncryption::Aes256), _) => SseMode::SseS3,
            (Some(ServerSideEncryption::AwsKms), _) => SseMode::SseKms,
            (Some(ServerSideEncryption::AwsKmsDsse), _) => SseMode::DsseKms,
            (Some(other), _) => {
                return Err(permanent(
                    "UnknownEncryption",
                    format!(
                        "HeadObject s3://{}/{}: unknown server-side encryption {:?}",
                        object.bucket,
                        object.key,
                        other.as_str()
                    ),
                ));
            }
            (None, None) => SseMode::NotSse,
        };
        Ok(ObjectState {
            etag: head.e_tag().unwrap_or_default().to_owned(),
            size: head.content_length().unwrap_or(0).max(0) as u64,
            mode,
            kms_key_id: head.ssekms_key_id().map(str::to_owned),
            key_version: None,
            bucket_key: head.bucket_key_enabled().unwrap_or(false),
            sse_c_key_md5: head.sse_customer_key_md5().map(str::to_owned),
            version_id: head.version_id().map(str::to_owned),
            details: Some(Arc::new(details_of(&head))),
        })
    }

    pub fn is_compliant(&self, state: &ObjectState) -> bool {
        if state.mode != self.want.mode {
            return false;
        }
        match self.want.mode {
            SseMode::SseKms => {
                self.kms_matches(state.kms_key_id.as_deref())
                    && (!self.want.bucket_key || state.bucket_key)
            }
            SseMode::DsseKms => self.kms_matches(state.kms_key_id.as_deref()),
            SseMode::SseC => {
                state.sse_c_key_md5.as_deref()
                    == self
                        .want
                        .customer_key
                        .as_ref()
                        .map(|k| k.md5_base64())
                        .as_deref()
            }
            SseMode::SseS3 | SseMode::NotSse => true,
        }
    }

    pub async fn reencrypt(
        &self,
        object: &ObjectRef,
        seen: &ObjectState,
    ) -> Result<Written, TargetError> {
        if seen.mode == SseMode::SseC && self.source_key_for(seen).is_none() {
            return Err(permanent(
                "InvalidRequest",
                format!(
                    "s3://{}/{} is SSE-C: the job needs its key (--source-sse-c)",
                    object.bucket, object.key
                ),
            ));
        }
        let acl = if self.options.preserve_acl {
            Some(self.read_acl(object).await?)
        } else {
            None
        };
        let sse_c_involved = seen.mode == SseMode::SseC || self.want.mode == SseMode::SseC;
        let written = match self.choose(seen)? {
            Chosen::Update => match self.update(object, seen).await {
                Err(e)
                    if self.options.method == Method::Auto
                        && (e.http_status == 501
                            || e.http_status == 405
                            || e.code == "NotImplemented"
                            || e.code == "MethodNotAllowed") =>
                {
                    if !self.update_unsupported.swap(true, Ordering::Relaxed) {
                        tracing::info!(
                            "the server does not implement UpdateObjectEncryption ({}): copying instead",
                            e.code
                        );
                    }
                    match seen.size > self.options.multipart_threshold {
                        true => self.multipart(object, seen).await,
                        false => self.copy(object, seen).await,
                    }
                }
                other => other,
            },
            Chosen::Copy => self.copy(object, seen).await,
            Chosen::Multipart => self.multipart(object, seen).await,
        };
        let mut written = match written {
            Err(e) if e.http_status == 403 && sse_c_involved => {
                return Err(self.explain_sse_c_refusal(object, e).await);
            }
            other => other?,
        };
        if let Some(acl) = acl {
            let note = self.reapply_acl(object, acl).await?;
            written.notes.push(note.to_owned());
        }
        if self.options.delete_noncurrent {
            let n = self.delete_noncurrent(object).await?;
            written
                .notes
                .push(format!("{n} noncurrent versions deleted"));
        }
        Ok(written)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target(sse: &str, bucket_key: bool, options: S3Options) -> S3Target {
        let spec = JobSpec {
            sse: SseSpec::parse(sse).unwrap(),
            source_sse_c: None,
            bucket_key,
            filter: Default::default(),
            confirmation_required: false,
            report: None,
        };
        let config = aws_sdk_s3::config::Builder::new()
            .behavior_version(aws_sdk_s3::config::BehaviorVersion::latest())
            .region(aws_sdk_s3::config::Region::new("us-east-1"))
            .build();
        S3Target::new(Client::from_conf(config), &spec, None, None, options)
    }

    fn state(mode: SseMode, kms: Option<&str>, size: u64) -> ObjectState {
        ObjectState {
            etag: "\"e\"".into(),
            size,
            mode,
            kms_key_id: kms.map(str::to_owned),
            key_version: None,
            bucket_key: false,
            sse_c_key_md5: None,
            version_id: None,
            details: None,
        }
    }

    #[test]
    fn methods_are_chosen_by_mode_size_and_server() {
        let key = "1234abcd-12ab-34cd-56ef-1234567890ab";
        let aws = target(&format!("sse-kms:{key}"), false, S3Options::default());
        let small = state(SseMode::SseS3, None, 10);
        assert!(matches!(aws.choose(&small), Ok(Chosen::Update)));
        // UpdateObjectEncryption does not take plaintext objects: copy.
        assert!(matches!(
            aws.choose(&state(SseMode::NotSse, None, 10)),
            Ok(Chosen::Copy)
        ));
        let big = state(SseMode::NotSse, None, MAX_COPY_SIZE + 1);
        assert!(matches!(aws.choose(&big), Ok(Chosen::Multipart)));

        // Not Amazon S3: never UpdateObjectEncryption under auto.
        let other = target(
            &format!("sse-kms:{key}"),
            false,
            S3Options {
                amazon: false,
                ..S3Options::default()
            },
        );
        assert!(matches!(other.choose(&small), Ok(Chosen::Copy)));

        // --method update on an object it cannot change: a clear, permanent error.
        let update = target(
            "sse-kms",
            false,
            S3Options {
                method: Method::Update,
                ..S3Options::default()
            },
        );
        let err = update.choose(&small).err().unwrap();
        assert_eq!(err.kind, ErrorKind::Permanent);
        assert!(
            err.message.contains("with the default key"),
            "{}",
            err.message
        );

        // A lower threshold sends smaller objects to the multipart path.
        let low = target(
            "sse-s3",
            false,
            S3Options {
                multipart_threshold: 8 << 20,
                ..S3Options::default()
            },
        );
        assert!(matches!(
            low.choose(&state(SseMode::NotSse, None, 12 << 20)),
            Ok(Chosen::Multipart)
        ));
        assert!(matches!(
            low.choose(&state(SseMode::NotSse, None, 8 << 20)),
            Ok(Chosen::Copy)
        ));
    }

    #[test]
    fn kms_keys_match_by_id_or_arn_and_aliases_once_learned() {
        let id = "1234abcd-12ab-34cd-56ef-1234567890ab";
        let arn = format!("arn:aws:kms:us-east-1:111122223333:key/{id}");
        let t = target(&format!("sse-kms:{id}"), false, S3Options::default());
        assert!(t.is_compliant(&state(SseMode::SseKms, Some(&arn), 1)));
        assert!(t.is_compliant(&state(SseMode::SseKms, Some(id), 1)));
        assert!(!t.is_compliant(&state(
            SseMode::SseKms,
            Some("arn:aws:kms:us-east-1:111122223333:key/other"),
            1
        )));
        assert!(!t.is_compliant(&state(SseMode::SseKms, None, 1)));
        assert!(!t.is_compliant(&state(SseMode::SseS3, None, 1)));

        let by_arn = target(&format!("sse-kms:{arn}"), false, S3Options::default());
        assert!(by_arn.is_compliant(&state(SseMode::SseKms, Some(id), 1)));

        // An alias is not comparable until a write shows its ARN.
        let alias = target("sse-kms:alias/archive", false, S3Options::default());
        assert!(!alias.is_compliant(&state(SseMode::SseKms, Some(&arn), 1)));
        alias.learn_kms_arn(Some(&arn));
        assert!(alias.is_compliant(&state(SseMode::SseKms, Some(&arn), 1)));
        assert!(!alias.is_compliant(&state(SseMode::SseKms, Some("arn:…:key/other"), 1)));

        // --bucket-key: an object without it is not compliant.
        let bk = target(&format!("sse-kms:{id}"), true, S3Options::default());
        let mut s = state(SseMode::SseKms, Some(&arn), 1);
        assert!(!bk.is_compliant(&s));
        s.bucket_key = true;
        assert!(bk.is_compliant(&s));
    }

    #[test]
    fn copy_source_encodes_the_key() {
        let o = ObjectRef {
            bucket: "b".into(),
            key: "a dir/x+y%z?#é.txt".into(),
            version_id: Some("v1".into()),
        };
        assert_eq!(copy_source(&o), "b/a%20dir/x%2By%25z%3F%23%C3%A9.txt");
    }
}
