//! The S3 operations of `reseal serve`, each a call into the local store on tokio's
//! blocking pool. Request bodies stream into the store and object bodies stream out of
//! it, in bounded memory. Versions are the store's: an operation passes the version a
//! request names and answers with the one the store read or made.
//!
//! This file keeps the [`Endpoint`], what every operation uses of it, and the one
//! `impl S3` that s3s needs, as a table of which file serves which operation:
//!
//! - `bucket.rs`: buckets and their settings but encryption, and bucket policies;
//! - `encryption.rs`: a bucket's encryption configuration, through an s3s route (s3s
//!   cannot read or write `BlockedEncryptionTypes`);
//! - `list.rs`: listings of objects and versions;
//! - `object.rs`: objects and their tags;
//! - `copy.rs`: CopyObject and UploadPartCopy, translated into the store's copies;
//! - `multipart.rs`: multipart uploads;
//! - `convert.rs`: S3's fields to the store's values and back;
//! - `checksum.rs`: S3's flexible checksums to the store's and back;
//! - `body.rs`: request and response bodies.
//!
//! Every write S3 authorises as `s3:PutObject` (PutObject, CopyObject, the multipart
//! upload operations) asks the bucket policy first ([`Endpoint::check_write`]).
//!
//! Must not decide what the store decides (what a copy is, whether a condition holds):
//! operations translate requests into the store's calls and their results back.

mod body;
mod bucket;
mod checksum;
mod convert;
mod copy;
mod encryption;
mod list;
mod multipart;
mod object;

use std::sync::Arc;

use s3s::dto::*;
use s3s::{S3, S3ErrorCode, S3Request, S3Response, S3Result};

use super::Connection;
use super::error::{error, from_store, internal};
use super::policy::{EncryptionHeaders, Policy, Write};
use super::sse::{CustomerHeaders, Described, KeyArns};
use crate::crypto::CustomerKey;
use crate::store::{BucketInfo, SseState, Store, StoreError};
use body::BodyOutcome;
pub use encryption::EncryptionRoute;

/// The account id in KMS key ARNs and owners (the store has one owner).
const ACCOUNT: &str = "000000000000";

/// The S3 service over one local store.
#[derive(Clone)]
pub struct Endpoint {
    store: Arc<Store>,
    region: String,
    arns: KeyArns,
}

impl Endpoint {
    pub fn new(store: Arc<Store>, region: String) -> Endpoint {
        Endpoint {
            arns: KeyArns {
                region: region.clone(),
                account: ACCOUNT.into(),
            },
            store,
            region,
        }
    }

    /// Runs `f` with the store on the blocking pool.
    async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Store) -> Result<T, StoreError> + Send + 'static,
    ) -> S3Result<T> {
        self.on_pool(f).await?.map_err(from_store)
    }

    /// [`Endpoint::blocking`] for a call that reads the request body.
    async fn blocking_reading<T: Send + 'static>(
        &self,
        body: &BodyOutcome,
        f: impl FnOnce(&Store) -> Result<T, StoreError> + Send + 'static,
    ) -> S3Result<T> {
        self.on_pool(f).await?.map_err(|e| body.answer(e))
    }

    async fn on_pool<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Store) -> Result<T, StoreError> + Send + 'static,
    ) -> S3Result<Result<T, StoreError>> {
        let store = self.store.clone();
        tokio::task::spawn_blocking(move || f(&store))
            .await
            .map_err(internal)
    }

    fn describe(&self, sse: &SseState) -> Described {
        self.arns.describe(sse)
    }

    /// The bucket's settings, or NoSuchBucket: what the bucket operations that read no
    /// object check first.
    async fn require_bucket(&self, bucket: &str) -> S3Result<BucketInfo> {
        let bucket = bucket.to_owned();
        self.blocking(move |s| s.bucket(&bucket)).await
    }

    /// Refuses a write S3 authorises as `s3:PutObject` when the bucket's policy denies it:
    /// 403 AccessDenied, as S3 answers an explicit deny, before anything is written.
    /// `encryption`: the request's encryption headers, `None` for a request that has none
    /// by its nature (UploadPart, UploadPartCopy, CompleteMultipartUpload).
    async fn check_write<T>(
        &self,
        req: &S3Request<T>,
        bucket: &str,
        key: &str,
        encryption: Option<EncryptionHeaders<'_>>,
    ) -> S3Result<()> {
        let secure_transport = req.extensions.get::<Connection>().is_some_and(|c| c.tls);
        let Some(policy) = self.require_bucket(bucket).await?.policy else {
            return Ok(());
        };
        // Stored only once checked: a policy that no longer parses is the server's fault.
        let policy = Policy::parse(bucket, &policy).map_err(internal)?;
        let write = Write {
            key,
            encryption,
            secure_transport,
        };
        if policy.denies(&write) {
            return Err(error(S3ErrorCode::AccessDenied, "Access Denied"));
        }
        Ok(())
    }
}

/// [`Endpoint::check_write`] of a write that names its encryption, with the headers of its
/// input (PutObject, CopyObject and CreateMultipartUpload name them alike).
macro_rules! check_encrypted_write {
    ($endpoint:expr, $req:expr) => {
        $endpoint
            .check_write(
                &$req,
                &$req.input.bucket,
                &$req.input.key,
                Some($crate::serve::policy::EncryptionHeaders {
                    sse: $req
                        .input
                        .server_side_encryption
                        .as_ref()
                        .map(|s| s.as_str()),
                    kms_key_id: $req.input.ssekms_key_id.as_deref(),
                    customer_algorithm: $req.input.sse_customer_algorithm.as_deref(),
                }),
            )
            .await
    };
}
pub(super) use check_encrypted_write;

/// The SSE-C key of a request, refused on plain HTTP off loopback (as AWS refuses it
/// without TLS).
fn customer_key<T>(
    req: &S3Request<T>,
    headers: CustomerHeaders<'_>,
) -> S3Result<Option<CustomerKey>> {
    if headers.given()
        && let Some(conn) = req.extensions.get::<Connection>()
        && !conn.may_carry_keys()
    {
        return Err(error(
            S3ErrorCode::InvalidRequest,
            "Requests specifying Server Side Encryption with Customer provided keys must be \
             made over a secure connection.",
        ));
    }
    headers.key()
}

/// The request's SSE-C key (`x-amz-server-side-encryption-customer-*`), checked, on any
/// input that has those three fields.
macro_rules! customer_key_of {
    ($req:expr) => {
        $crate::serve::s3::customer_key(
            &$req,
            $crate::serve::sse::CustomerHeaders {
                algorithm: $req.input.sse_customer_algorithm.as_deref(),
                key: $req.input.sse_customer_key.as_deref(),
                md5: $req.input.sse_customer_key_md5.as_deref(),
            },
        )
    };
}
pub(super) use customer_key_of;

/// `$output { fields }`, the output of an operation on an object, with the five fields
/// every such output has that describe the object's encryption (`$sse`, a
/// [`SseState`]) filled in, and the fields not given left to their defaults.
macro_rules! with_encryption {
    ($endpoint:expr, $sse:expr, $output:ident { $($field:ident $(: $value:expr)?),* $(,)? }) => {{
        let described = $endpoint.describe($sse);
        $output {
            $($field $(: $value)?,)*
            server_side_encryption: described.sse,
            ssekms_key_id: described.kms_key_id,
            bucket_key_enabled: described.bucket_key,
            sse_customer_algorithm: described.customer_algorithm,
            sse_customer_key_md5: described.customer_key_md5,
            ..Default::default()
        }
    }};
}
pub(super) use with_encryption;

/// The `impl S3` of the endpoint: each operation, its input and output, served by the
/// function of that name in the file named.
macro_rules! operations {
    ($($module:ident :: $op:ident ($input:ident) -> $output:ident;)*) => {
        #[async_trait::async_trait]
        impl S3 for Endpoint {
            $(
                async fn $op(&self, req: S3Request<$input>) -> S3Result<S3Response<$output>> {
                    $module::$op(self, req).await
                }
            )*
        }
    };
}

operations! {
    bucket::list_buckets(ListBucketsInput) -> ListBucketsOutput;
    bucket::create_bucket(CreateBucketInput) -> CreateBucketOutput;
    bucket::head_bucket(HeadBucketInput) -> HeadBucketOutput;
    bucket::get_bucket_location(GetBucketLocationInput) -> GetBucketLocationOutput;
    bucket::delete_bucket(DeleteBucketInput) -> DeleteBucketOutput;
    bucket::get_bucket_versioning(GetBucketVersioningInput) -> GetBucketVersioningOutput;
    bucket::put_bucket_versioning(PutBucketVersioningInput) -> PutBucketVersioningOutput;
    encryption::delete_bucket_encryption(DeleteBucketEncryptionInput) -> DeleteBucketEncryptionOutput;
    bucket::get_bucket_policy(GetBucketPolicyInput) -> GetBucketPolicyOutput;
    bucket::put_bucket_policy(PutBucketPolicyInput) -> PutBucketPolicyOutput;
    bucket::delete_bucket_policy(DeleteBucketPolicyInput) -> DeleteBucketPolicyOutput;
    list::list_objects_v2(ListObjectsV2Input) -> ListObjectsV2Output;
    list::list_objects(ListObjectsInput) -> ListObjectsOutput;
    list::list_object_versions(ListObjectVersionsInput) -> ListObjectVersionsOutput;
    object::put_object(PutObjectInput) -> PutObjectOutput;
    object::head_object(HeadObjectInput) -> HeadObjectOutput;
    object::get_object(GetObjectInput) -> GetObjectOutput;
    object::get_object_attributes(GetObjectAttributesInput) -> GetObjectAttributesOutput;
    object::delete_object(DeleteObjectInput) -> DeleteObjectOutput;
    object::delete_objects(DeleteObjectsInput) -> DeleteObjectsOutput;
    object::get_object_tagging(GetObjectTaggingInput) -> GetObjectTaggingOutput;
    object::put_object_tagging(PutObjectTaggingInput) -> PutObjectTaggingOutput;
    object::delete_object_tagging(DeleteObjectTaggingInput) -> DeleteObjectTaggingOutput;
    copy::copy_object(CopyObjectInput) -> CopyObjectOutput;
    copy::upload_part_copy(UploadPartCopyInput) -> UploadPartCopyOutput;
    multipart::create_multipart_upload(CreateMultipartUploadInput) -> CreateMultipartUploadOutput;
    multipart::upload_part(UploadPartInput) -> UploadPartOutput;
    multipart::complete_multipart_upload(CompleteMultipartUploadInput) -> CompleteMultipartUploadOutput;
    multipart::abort_multipart_upload(AbortMultipartUploadInput) -> AbortMultipartUploadOutput;
    multipart::list_parts(ListPartsInput) -> ListPartsOutput;
    multipart::list_multipart_uploads(ListMultipartUploadsInput) -> ListMultipartUploadsOutput;
}
