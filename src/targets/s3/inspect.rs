//! What HEAD says of an object, and whether that is what the job wants. An SSE-C object
//! answers HEAD only with its key: the job's keys are tried in turn. A KMS alias or the
//! default key is compared with the key ARN a write has shown (see
//! [`S3Target::learn_kms_arn`]).

use std::collections::BTreeMap;
use std::sync::Arc;

use aws_sdk_s3::primitives::DateTimeFormat;
use aws_sdk_s3::types::{ChecksumMode, ServerSideEncryption};

use super::S3Target;
use super::write::SseCHeaders;
use crate::crypto::CustomerKey;
use crate::sse::SseMode;
use crate::targets::{Extra, Listed, ObjectRef, ObjectState, TargetError};

/// What S3 reports of an object beyond its encryption: what a copy must carry over.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(super) struct ObjectDetails {
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

impl S3Target {
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

    pub(super) async fn head_state(&self, object: &ObjectRef) -> Result<ObjectState, TargetError> {
        let head = match self.head(object, None).await {
            Ok(head) => head,
            // An SSE-C object answers 400 to a HEAD without its key, 403 to a wrong one.
            Err(e) if e.http_status == 400 => {
                let keys = self.customer_keys();
                if keys.is_empty() {
                    return Err(TargetError::permanent(
                        400,
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
                        return Err(TargetError::permanent(
                            400,
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
        let mode = mode_of(head.server_side_encryption(), head.sse_customer_algorithm())
            .map_err(|other| {
                TargetError::permanent(
                    400,
                    "UnknownEncryption",
                    format!(
                        "HeadObject s3://{}/{}: unknown server-side encryption {other:?}",
                        object.bucket, object.key
                    ),
                )
            })?
            .unwrap_or(SseMode::NotSse);
        Ok(ObjectState {
            etag: head.e_tag().unwrap_or_default().to_owned(),
            size: head.content_length().unwrap_or(0).max(0) as u64,
            mode,
            kms_key_id: head.ssekms_key_id().map(str::to_owned),
            key_version: None,
            bucket_key: head.bucket_key_enabled().unwrap_or(false),
            sse_c_key_md5: head.sse_customer_key_md5().map(str::to_owned),
            version_id: head.version_id().map(str::to_owned),
            extra: Some(Extra(Arc::new(details_of(&head)))),
        })
    }

    pub(super) fn compliant(&self, state: &ObjectState) -> bool {
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

    pub(super) fn source_key_for(&self, state: &ObjectState) -> Option<&CustomerKey> {
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
}

impl S3Target {
    /// The object as an inventory row describes it, for a copy without a HEAD first; `None`
    /// where a HEAD must come first ([`super::plan::trusted_without_inspection`]).
    pub(super) fn listed_state(&self, listed: &Listed) -> Option<ObjectState> {
        let size = listed.size?;
        if !super::plan::trusted_without_inspection(self.wants(), listed.mode, size, &self.options)
        {
            return None;
        }
        Some(ObjectState {
            etag: format!("\"{}\"", listed.etag.trim_matches('"')),
            size,
            mode: listed.mode,
            kms_key_id: None,
            key_version: None,
            bucket_key: false,
            sse_c_key_md5: None,
            version_id: None,
            // What a copy carries over that the inventory knows: the storage class. A
            // website redirect, object lock settings and the checksum algorithm are not in
            // it, so they are not passed on.
            extra: Some(Extra(Arc::new(ObjectDetails {
                storage_class: Some(listed.storage_class.clone()),
                ..ObjectDetails::default()
            }))),
        })
    }
}

/// The mode S3's SSE headers say; `None` when they say nothing (no header at all), an
/// error naming an encryption S3 does not have.
fn mode_of(
    sse: Option<&ServerSideEncryption>,
    customer_algorithm: Option<&str>,
) -> Result<Option<SseMode>, String> {
    Ok(match (sse, customer_algorithm) {
        (_, Some(_)) => Some(SseMode::SseC),
        (Some(ServerSideEncryption::Aes256), _) => Some(SseMode::SseS3),
        (Some(ServerSideEncryption::AwsKms), _) => Some(SseMode::SseKms),
        (Some(ServerSideEncryption::AwsKmsDsse), _) => Some(SseMode::DsseKms),
        (Some(other), _) => return Err(other.as_str().to_owned()),
        (None, None) => None,
    })
}

/// What a write's answer (CopyObject, CompleteMultipartUpload) says of the object it
/// left, when it names an encryption; `None` when it names none (a server that leaves
/// SSE headers out of a write's answer), so that only then an inspection confirms it.
pub(super) struct Reported<'a> {
    pub sse: Option<&'a ServerSideEncryption>,
    pub customer_algorithm: Option<&'a str>,
    pub customer_key_md5: Option<&'a str>,
    pub kms_key_id: Option<&'a str>,
    pub bucket_key: Option<bool>,
    pub etag: Option<&'a str>,
    pub version_id: Option<&'a str>,
}

impl Reported<'_> {
    pub(super) fn state(&self, size: u64) -> Option<ObjectState> {
        let mode = mode_of(self.sse, self.customer_algorithm).ok()??;
        Some(ObjectState {
            etag: self.etag?.to_owned(),
            size,
            mode,
            kms_key_id: self.kms_key_id.map(str::to_owned),
            key_version: None,
            bucket_key: self.bucket_key.unwrap_or(false),
            sse_c_key_md5: self.customer_key_md5.map(str::to_owned),
            version_id: self.version_id.map(str::to_owned),
            extra: None,
        })
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
