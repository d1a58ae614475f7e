//! The local store as a target. Store calls are blocking (files, fsync, CPU-heavy
//! crypto), so they run on tokio's blocking pool, off the async threads. Must not decide
//! what the store decides (how a re-encryption is done, whether the object changed): it
//! asks the store and maps the answer to the target's terms.

use std::sync::Arc;

use super::{ErrorKind, ObjectRef, ObjectState, Target, TargetError, Want, WriteMethod, Written};
use crate::crypto::CustomerKey;
use crate::sse::{SseMode, SseSpec};
use crate::store::{Encryption, ObjectMeta, Reencrypt, SseState, Store, StoreError};

pub struct LocalTarget {
    inner: Arc<Inner>,
}

/// What the blocking store calls need, shared with them.
struct Inner {
    store: Store,
    to: Encryption,
    /// The KMS key id the job wants, resolved once (aliases name ids).
    kms_key_id: Option<String>,
    source_key: Option<CustomerKey>,
    /// Re-seal data keys instead of rewriting data where only the sealing key changes.
    fast_path: bool,
}

impl LocalTarget {
    /// A target on `store` for what the job wants.
    pub fn new(store: Store, want: Want) -> Result<LocalTarget, StoreError> {
        let (to, kms) = match &want.sse {
            SseSpec::SseS3 => (Encryption::SseS3, None),
            SseSpec::SseKms { key_id } => (
                Encryption::SseKms {
                    key_id: key_id.clone(),
                    bucket_key: want.bucket_key,
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
                Encryption::SseC(want.customer_key.expect("an SSE-C job is given its key")),
                None,
            ),
        };
        let kms_key_id = kms
            .map(|k| store.keys().describe_key(k).map(|info| info.id))
            .transpose()?;
        Ok(LocalTarget {
            inner: Arc::new(Inner {
                store,
                to,
                kms_key_id,
                source_key: want.source_customer_key,
                fast_path: true,
            }),
        })
    }

    /// Runs a store call on tokio's blocking pool.
    async fn blocking<T: Send + 'static>(
        &self,
        call: impl FnOnce(&Inner) -> Result<T, TargetError> + Send + 'static,
    ) -> Result<T, TargetError> {
        let inner = Arc::clone(&self.inner);
        tokio::task::spawn_blocking(move || call(&inner))
            .await
            .expect("a store call does not panic")
    }
}

impl Inner {
    /// What the store says of an object, with its version as S3 would name it.
    fn state_of(&self, meta: &ObjectMeta) -> Result<ObjectState, TargetError> {
        let version_id = self.store.version_answer(meta).map_err(target_error)?;
        Ok(ObjectState {
            version_id,
            ..state_of(meta)
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
        extra: None,
    }
}

/// Maps a store error to what S3 would answer. Every variant is named, so that a new one
/// is mapped on purpose.
fn target_error(e: StoreError) -> TargetError {
    let (kind, status, code) = match &e {
        StoreError::NoSuchKey { .. } => (ErrorKind::Permanent, 404, "NoSuchKey"),
        StoreError::NoSuchVersion { .. } => (ErrorKind::Permanent, 404, "NoSuchVersion"),
        StoreError::DeleteMarker { .. } => (ErrorKind::Permanent, 405, "MethodNotAllowed"),
        StoreError::NoSuchBucket(_) => (ErrorKind::Permanent, 404, "NoSuchBucket"),
        StoreError::PreconditionFailed { .. } => (ErrorKind::Changed, 412, "PreconditionFailed"),
        StoreError::AccessDenied { .. } | StoreError::EncryptionTypeBlocked { .. } => {
            (ErrorKind::Permanent, 403, "AccessDenied")
        }
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
        // The keys failed otherwise (a key file, the keyring, the master key): the task
        // fails, as for a key the user named wrongly, under S3's generic refusal.
        StoreError::Keys(_) | StoreError::MasterKey(_) => {
            (ErrorKind::Permanent, 400, "InvalidRequest")
        }
        // What a re-encryption in place does not do (buckets, uploads, conditional reads,
        // digests, ranges), or a store that is not there: S3's answer to a request it
        // refuses.
        StoreError::NotAStore(_)
        | StoreError::AlreadyAStore(_)
        | StoreError::BucketExists(_)
        | StoreError::BucketNotEmpty(_)
        | StoreError::InvalidBucketName(_)
        | StoreError::InvalidKey(_)
        | StoreError::InvalidVersionId { .. }
        | StoreError::VersioningCannotBeDisabled(_)
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
        | StoreError::PartNotSatisfiable { .. } => (ErrorKind::Permanent, 400, "InvalidRequest"),
    };
    TargetError::new(kind, status, code, e.to_string())
}

#[async_trait::async_trait]
impl Target for LocalTarget {
    async fn inspect(&self, object: &ObjectRef) -> Result<ObjectState, TargetError> {
        // The current version, as on S3: the runner compares it with the version the
        // manifest names.
        let object = object.clone();
        self.blocking(move |this| {
            let meta = this
                .store
                .head(&object.bucket, &object.key)
                .map_err(target_error)?;
            this.state_of(&meta)
        })
        .await
    }

    fn is_compliant(&self, state: &ObjectState) -> bool {
        let this = &self.inner;
        if state.mode != this.to.mode() {
            return false;
        }
        match &this.to {
            Encryption::SseKms { .. } | Encryption::DsseKms { .. } => {
                state.kms_key_id == this.kms_key_id
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
        let object = object.clone();
        let etag = seen.etag.clone();
        let source_is_ssec = seen.mode == SseMode::SseC;
        self.blocking(move |this| {
            let source_key = match (source_is_ssec, this.source_key.as_ref()) {
                (false, _) => None,
                (true, Some(k)) => Some(k),
                (true, None) => {
                    return Err(TargetError::permanent(
                        400,
                        "InvalidRequest",
                        format!(
                            "{}/{} is SSE-C: the job needs its key (--source-sse-c)",
                            object.bucket, object.key
                        ),
                    ));
                }
            };
            let (meta, method) = this
                .store
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
                .map_err(target_error)?;
            // The store's own record of what it wrote.
            let after = this.state_of(&meta)?;
            Ok(Written {
                method: match method {
                    crate::store::ReencryptMethod::Rewrite => WriteMethod::Rewrite,
                    crate::store::ReencryptMethod::Reseal => WriteMethod::Reseal,
                },
                etag: Some(meta.etag.clone()),
                // A new version where the bucket keeps versions (the null version is
                // replaced while versioning is suspended), as on S3.
                new_version: after.version_id.clone(),
                after: Some(after),
                notes: Vec::new(),
            })
        })
        .await
    }
}
