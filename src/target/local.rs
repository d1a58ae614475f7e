//! The local store as a target. Store calls are blocking (files, fsync, CPU-heavy
//! crypto), so they run on tokio's blocking pool, off the async threads.

use std::sync::Arc;

use super::{ErrorKind, ObjectRef, ObjectState, Target, TargetError, WriteMethod, Written};
use crate::crypto::CustomerKey;
use crate::job::JobSpec;
use crate::sse::{SseMode, SseSpec};
use crate::store::{Encryption, ObjectMeta, Reencrypt, SseState, Store, StoreError};

pub struct LocalTarget {
    store: Arc<Store>,
    to: Encryption,
    /// The KMS key id the job wants, resolved once (aliases name ids).
    kms_key_id: Option<String>,
    source_key: Option<CustomerKey>,
    /// Re-seal data keys instead of rewriting data where only the sealing key changes.
    fast_path: bool,
}

impl LocalTarget {
    /// A target for `spec`, with the customer keys it names already loaded.
    pub fn new(
        store: Store,
        spec: &JobSpec,
        target_key: Option<CustomerKey>,
        source_key: Option<CustomerKey>,
    ) -> Result<LocalTarget, StoreError> {
        let (to, kms) = match &spec.sse {
            SseSpec::SseS3 => (Encryption::SseS3, None),
            SseSpec::SseKms { key_id } => (
                Encryption::SseKms {
                    key_id: key_id.clone(),
                    bucket_key: spec.bucket_key,
                },
                Some(
                    key_id
                        .as_deref()
                        .unwrap_or(crate::store::keys::DEFAULT_KMS_ALIAS),
                ),
            ),
            SseSpec::DsseKms { key_id } => (
                Encryption::DsseKms {
                    key_id: key_id.clone(),
                },
                Some(key_id.as_str()),
            ),
            SseSpec::SseC { .. } => (
                Encryption::SseC(target_key.expect("an SSE-C job is given its key")),
                None,
            ),
        };
        let kms_key_id = kms
            .map(|k| store.keys().describe_key(k).map(|info| info.id))
            .transpose()?;
        Ok(LocalTarget {
            store: Arc::new(store),
            to,
            kms_key_id,
            source_key,
            fast_path: true,
        })
    }
}

fn state_of(meta: &ObjectMeta) -> ObjectState {
    ObjectState {
        etag: meta.etag.clone(),
        size: meta.size,
        mode: meta.sse.mode(),
        kms_key_id: meta.sse.kms_key_id().map(str::to_owned),
        key_version: meta.sse.key_version(),
        bucket_key: matches!(
            meta.sse,
            SseState::SseKms {
                bucket_key: true,
                ..
            }
        ),
        sse_c_key_md5: match &meta.sse {
            SseState::SseC { key_md5, .. } => Some(key_md5.clone()),
            _ => None,
        },
        version_id: None,
        details: None,
    }
}

/// Maps a store error to what S3 would answer.
fn target_error(e: StoreError) -> TargetError {
    let (kind, status, code) = match &e {
        StoreError::NoSuchKey { .. } => (ErrorKind::Permanent, 404, "NoSuchKey"),
        StoreError::NoSuchBucket(_) => (ErrorKind::Permanent, 404, "NoSuchBucket"),
        StoreError::PreconditionFailed { .. } => (ErrorKind::Changed, 412, "PreconditionFailed"),
        StoreError::AccessDenied { .. } => (ErrorKind::Permanent, 403, "AccessDenied"),
        StoreError::SseCKeyRequired { .. } | StoreError::SseCKeyNotExpected { .. } => {
            (ErrorKind::Permanent, 400, "InvalidRequest")
        }
        StoreError::Keys(k) if k.is_user_error() => {
            (ErrorKind::Permanent, 400, "KMS.KeyUnavailable")
        }
        StoreError::Crypto { .. } | StoreError::Corrupt { .. } => {
            (ErrorKind::Permanent, 500, "ObjectCorrupt")
        }
        StoreError::Io { .. } => (ErrorKind::Transient, 500, "InternalError"),
        _ => (ErrorKind::Permanent, 400, "InvalidRequest"),
    };
    TargetError {
        kind,
        http_status: status,
        code: code.to_owned(),
        message: e.to_string(),
    }
}

fn versions_unsupported(object: &ObjectRef) -> Option<TargetError> {
    match object.version_id.as_deref() {
        None | Some("null") => None,
        Some(v) => Some(TargetError {
            kind: ErrorKind::Permanent,
            http_status: 400,
            code: "InvalidArgument".into(),
            message: format!("version {v}: the local store keeps no object versions"),
        }),
    }
}

impl Target for Arc<LocalTarget> {
    async fn inspect(&self, object: &ObjectRef) -> Result<ObjectState, TargetError> {
        if let Some(e) = versions_unsupported(object) {
            return Err(e);
        }
        let this = Arc::clone(self);
        let object = object.clone();
        tokio::task::spawn_blocking(move || {
            this.store
                .head(&object.bucket, &object.key)
                .map(|m| state_of(&m))
                .map_err(target_error)
        })
        .await
        .expect("a store call does not panic")
    }

    fn is_compliant(&self, state: &ObjectState) -> bool {
        if state.mode != self.to.mode() {
            return false;
        }
        match &self.to {
            Encryption::SseKms { .. } | Encryption::DsseKms { .. } => {
                state.kms_key_id == self.kms_key_id
            }
            Encryption::SseC(key) => state.sse_c_key_md5.as_deref() == Some(&key.md5_base64()),
            _ => true,
        }
    }

    async fn reencrypt(
        &self,
        object: &ObjectRef,
        seen: &ObjectState,
    ) -> Result<Written, TargetError> {
        let this = Arc::clone(self);
        let object = object.clone();
        let etag = seen.etag.clone();
        let source_is_ssec = seen.mode == SseMode::SseC;
        tokio::task::spawn_blocking(move || {
            let source_key = if source_is_ssec {
                match this.source_key.as_ref() {
                    Some(k) => Some(k),
                    None => {
                        return Err(TargetError {
                            kind: ErrorKind::Permanent,
                            http_status: 400,
                            code: "InvalidRequest".into(),
                            message: format!(
                                "{}/{} is SSE-C: the job needs its key (--source-sse-c)",
                                object.bucket, object.key
                            ),
                        });
                    }
                }
            } else {
                None
            };
            this.store
                .reencrypt(
                    &object.bucket,
                    &object.key,
                    &Reencrypt {
                        to: this.to.clone(),
                        if_match: Some(&etag),
                        source_key,
                        fast_path: this.fast_path,
                    },
                )
                .map(|(meta, method)| Written {
                    method: match method {
                        crate::store::ReencryptMethod::Rewrite => WriteMethod::Rewrite,
                        crate::store::ReencryptMethod::Reseal => WriteMethod::Reseal,
                    },
                    etag: Some(meta.etag),
                    new_version: None,
                    notes: Vec::new(),
                })
                .map_err(target_error)
        })
        .await
        .expect("a store call does not panic")
    }
}
