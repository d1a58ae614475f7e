//! Amazon S3 and S3-compatible stores as a target, through `aws-sdk-s3`.
//!
//! One task is: HEAD (with the source SSE-C key when the object needs one) → skip when
//! compliant → `UpdateObjectEncryption`, `CopyObject` onto itself, or a multipart copy →
//! (the runner's) HEAD to confirm. Every write is guarded by the ETag the HEAD saw, so an
//! object rewritten by someone else during the job is never overwritten with stale bytes.
//! The copy source is always the key's current version: copying an older version would
//! roll the object back.
//!
//! - `client.rs` — connecting, and [`S3Target::call`], the one place requests are sent:
//!   the SDK's own retries are off, and a failed request is retried there under the
//!   [`Pacer`] (`pace.rs`), which lowers concurrency on throttling;
//! - `inspect.rs` — HEAD, what it says of the object, and whether that is compliant;
//! - `write.rs` — UpdateObjectEncryption, CopyObject and the multipart copy;
//! - `acl.rs`, `versions.rs` — ACLs re-applied and noncurrent versions deleted after a write;
//! - `files.rs` — not the target's: manifests fetched and listed, reports uploaded, for the
//!   command line;
//! - this file — the target, its options, the choice of method and the task itself.

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

mod acl;
mod client;
pub mod files;
mod inspect;
pub mod pace;
pub mod plan;
mod versions;
mod write;

use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, Ordering};

use aws_sdk_s3::Client;
use aws_sdk_s3::types::EncryptionType;

pub use client::{Connection, connect};
use pace::Pacer;
use plan::Chosen;

use super::{ErrorKind, Listed, ObjectRef, ObjectState, Target, TargetError, Want, Written};
use crate::crypto::CustomerKey;
use crate::sse::{SseMode, SseSpec};

/// The largest object one CopyObject can copy, and the default multipart threshold.
pub const MAX_COPY_SIZE: u64 = 5 << 30;

/// S3's smallest part (but for the last one), and the default part size.
pub const MIN_PART_SIZE: u64 = 5 << 20;

/// S3's most parts per upload.
const MAX_PARTS: u64 = 10_000;

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
    /// Requests in flight to start with (the pacer grows or cuts it from there).
    pub max_in_flight: usize,
    /// The most requests in flight the pacer grows to.
    pub max_concurrency: usize,
    /// Tries per request for transient errors (throttling, 5xx, lost connections).
    pub max_attempts: u32,
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
            max_concurrency: 1024,
            max_attempts: 8,
            max_rps: None,
            amazon: true,
        }
    }
}

/// The encryption a job wants, as request headers will say it.
struct Wanted {
    mode: SseMode,
    kms_key_id: Option<String>,
    bucket_key: bool,
    customer_key: Option<CustomerKey>,
}

pub struct S3Target {
    client: Client,
    want: Wanted,
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
    pub fn new(client: Client, want: Want, options: S3Options) -> S3Target {
        let (kms_key_id, customer_key) = match &want.sse {
            SseSpec::SseS3 => (None, None),
            SseSpec::SseKms { key_id } => (key_id.clone(), None),
            SseSpec::DsseKms { key_id } => (Some(key_id.clone()), None),
            SseSpec::SseC { .. } => (
                None,
                Some(want.customer_key.expect("an SSE-C job is given its key")),
            ),
        };
        S3Target {
            client,
            want: Wanted {
                mode: want.sse.mode(),
                kms_key_id,
                bucket_key: want.bucket_key,
                customer_key,
            },
            source_key: want.source_customer_key,
            pacer: Pacer::new(
                options.max_in_flight,
                options.max_concurrency,
                options.max_rps,
            ),
            options,
            learned_kms_arn: OnceLock::new(),
            update_unsupported: AtomicBool::new(false),
        }
    }

    /// What the job wants, as the method table ([`plan`]) needs it.
    pub fn wants(&self) -> plan::Wants {
        plan::Wants {
            mode: self.want.mode,
            named_kms_key: self.want.kms_key_id.is_some(),
        }
    }

    /// Which method re-encrypts this object: [`plan::choose`], the table an estimate
    /// counts; `--method update` on an object it cannot change is refused, saying why.
    fn choose(&self, seen: &ObjectState) -> Result<Chosen, TargetError> {
        match self.options.method {
            Method::Update if !plan::update_applies(self.wants(), seen.mode) => {
                Err(TargetError::permanent(
                    400,
                    "UpdateNotApplicable",
                    format!(
                        "UpdateObjectEncryption cannot make a {} object {}{} (it changes SSE-S3 or SSE-KMS objects to SSE-KMS with a named key); use --method auto or copy",
                        seen.mode,
                        self.want.mode,
                        if self.want.kms_key_id.is_none() && self.want.mode == SseMode::SseKms {
                            " with the default key"
                        } else {
                            ""
                        }
                    ),
                ))
            }
            _ => Ok(plan::choose(
                self.wants(),
                seen.mode,
                seen.size,
                &self.options,
                self.update_unsupported.load(Ordering::Relaxed),
            )),
        }
    }

    async fn write(&self, object: &ObjectRef, seen: &ObjectState) -> Result<Written, TargetError> {
        if seen.mode == SseMode::SseC && self.source_key_for(seen).is_none() {
            return Err(TargetError::permanent(
                400,
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

#[async_trait::async_trait]
impl Target for S3Target {
    async fn inspect(&self, object: &ObjectRef) -> Result<ObjectState, TargetError> {
        self.head_state(object).await
    }

    fn is_compliant(&self, state: &ObjectState) -> bool {
        self.compliant(state)
    }

    async fn reencrypt(
        &self,
        object: &ObjectRef,
        seen: &ObjectState,
    ) -> Result<Written, TargetError> {
        self.write(object, seen).await
    }

    fn trusted_state(&self, _object: &ObjectRef, listed: &Listed) -> Option<ObjectState> {
        self.listed_state(listed)
    }

    fn concurrency(&self) -> Option<usize> {
        Some(self.pacer.limit())
    }

    fn learned_kms_arn(&self) -> Option<String> {
        self.learned_kms_arn.get().cloned()
    }

    fn throttled(&self) -> u64 {
        self.pacer.throttled()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target(sse: &str, bucket_key: bool, options: S3Options) -> S3Target {
        let want = Want {
            sse: SseSpec::parse(sse).unwrap(),
            bucket_key,
            customer_key: None,
            source_customer_key: None,
        };
        let config = aws_sdk_s3::config::Builder::new()
            .behavior_version(aws_sdk_s3::config::BehaviorVersion::latest())
            .region(aws_sdk_s3::config::Region::new("us-east-1"))
            .build();
        S3Target::new(Client::from_conf(config), want, options)
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
            extra: None,
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
        assert_eq!(
            write::copy_source(&o),
            "b/a%20dir/x%2By%25z%3F%23%C3%A9.txt"
        );
    }
}
