//! Bucket operations: create, delete, list, locate, the settings S3 clients ask about
//! (versioning; encryption is in encryption.rs), and bucket policies, kept
//! once checked (serve/policy.rs). Must not touch objects.

use s3s::dto::*;
use s3s::{S3ErrorCode, S3Request, S3Response, S3Result};

use super::Endpoint;
use super::convert::{owner, timestamp};
use crate::serve::error::error;
use crate::serve::policy::Policy;
use crate::store::Versioning;

pub(super) async fn list_buckets(
    endpoint: &Endpoint,
    _req: S3Request<ListBucketsInput>,
) -> S3Result<S3Response<ListBucketsOutput>> {
    let buckets = endpoint.blocking(|s| s.list_buckets()).await?;
    Ok(S3Response::new(ListBucketsOutput {
        buckets: Some(
            buckets
                .into_iter()
                .map(|b| Bucket {
                    name: Some(b.name),
                    creation_date: Some(timestamp(b.created)),
                    bucket_region: Some(endpoint.region.clone()),
                })
                .collect(),
        ),
        owner: Some(owner()),
        ..Default::default()
    }))
}

pub(super) async fn create_bucket(
    endpoint: &Endpoint,
    req: S3Request<CreateBucketInput>,
) -> S3Result<S3Response<CreateBucketOutput>> {
    let bucket = req.input.bucket.clone();
    endpoint
        .blocking(move |s| s.create_bucket(&bucket, None))
        .await?;
    Ok(S3Response::new(CreateBucketOutput {
        location: Some(format!("/{}", req.input.bucket)),
    }))
}

pub(super) async fn head_bucket(
    endpoint: &Endpoint,
    req: S3Request<HeadBucketInput>,
) -> S3Result<S3Response<HeadBucketOutput>> {
    endpoint.require_bucket(&req.input.bucket).await?;
    Ok(S3Response::new(HeadBucketOutput {
        bucket_region: Some(endpoint.region.clone()),
        ..Default::default()
    }))
}

pub(super) async fn get_bucket_location(
    endpoint: &Endpoint,
    req: S3Request<GetBucketLocationInput>,
) -> S3Result<S3Response<GetBucketLocationOutput>> {
    endpoint.require_bucket(&req.input.bucket).await?;
    // us-east-1 is said with an empty constraint.
    let location = (endpoint.region != "us-east-1")
        .then(|| BucketLocationConstraint::from(endpoint.region.clone()));
    Ok(S3Response::new(GetBucketLocationOutput {
        location_constraint: location,
    }))
}

pub(super) async fn delete_bucket(
    endpoint: &Endpoint,
    req: S3Request<DeleteBucketInput>,
) -> S3Result<S3Response<DeleteBucketOutput>> {
    let bucket = req.input.bucket;
    endpoint.blocking(move |s| s.delete_bucket(&bucket)).await?;
    Ok(S3Response::new(DeleteBucketOutput {}))
}

pub(super) async fn get_bucket_versioning(
    endpoint: &Endpoint,
    req: S3Request<GetBucketVersioningInput>,
) -> S3Result<S3Response<GetBucketVersioningOutput>> {
    let info = endpoint.require_bucket(&req.input.bucket).await?;
    // Never enabled: S3 then answers with no status.
    let status = match info.versioning {
        Versioning::Unversioned => None,
        Versioning::Enabled => Some(BucketVersioningStatus::ENABLED),
        Versioning::Suspended => Some(BucketVersioningStatus::SUSPENDED),
    };
    Ok(S3Response::new(GetBucketVersioningOutput {
        status: status.map(BucketVersioningStatus::from_static),
        ..Default::default()
    }))
}

pub(super) async fn put_bucket_versioning(
    endpoint: &Endpoint,
    req: S3Request<PutBucketVersioningInput>,
) -> S3Result<S3Response<PutBucketVersioningOutput>> {
    let configuration = req.input.versioning_configuration;
    if configuration
        .mfa_delete
        .as_ref()
        .is_some_and(|m| m.as_str() == MFADelete::ENABLED)
    {
        return Err(error(
            S3ErrorCode::NotImplemented,
            "reseal serve has no MFA delete",
        ));
    }
    let versioning = match configuration.status.as_ref().map(|s| s.as_str()) {
        Some(BucketVersioningStatus::ENABLED) => Versioning::Enabled,
        Some(BucketVersioningStatus::SUSPENDED) => Versioning::Suspended,
        _ => {
            return Err(error(
                S3ErrorCode::IllegalVersioningConfigurationException,
                "The versioning configuration's Status must be Enabled or Suspended",
            ));
        }
    };
    let bucket = req.input.bucket;
    endpoint
        .blocking(move |s| s.set_versioning(&bucket, versioning))
        .await?;
    Ok(S3Response::new(PutBucketVersioningOutput::default()))
}

pub(super) async fn get_bucket_policy(
    endpoint: &Endpoint,
    req: S3Request<GetBucketPolicyInput>,
) -> S3Result<S3Response<GetBucketPolicyOutput>> {
    let info = endpoint.require_bucket(&req.input.bucket).await?;
    let Some(policy) = info.policy else {
        return Err(error(
            S3ErrorCode::NoSuchBucketPolicy,
            "The bucket policy does not exist",
        ));
    };
    Ok(S3Response::new(GetBucketPolicyOutput {
        policy: Some(policy),
    }))
}

/// Keeps a policy only once all of it is understood: one with anything outside the subset
/// `reseal serve` enforces is refused whole (400 MalformedPolicy, naming the element), and
/// the bucket keeps the policy it had.
pub(super) async fn put_bucket_policy(
    endpoint: &Endpoint,
    req: S3Request<PutBucketPolicyInput>,
) -> S3Result<S3Response<PutBucketPolicyOutput>> {
    let (bucket, text) = (req.input.bucket, req.input.policy);
    endpoint.require_bucket(&bucket).await?;
    Policy::parse(&bucket, &text)
        .map_err(|e| error(S3ErrorCode::MalformedPolicy, e.to_string()))?;
    endpoint
        .blocking(move |s| s.set_bucket_policy(&bucket, Some(text)))
        .await?;
    Ok(S3Response::new(PutBucketPolicyOutput {}))
}

pub(super) async fn delete_bucket_policy(
    endpoint: &Endpoint,
    req: S3Request<DeleteBucketPolicyInput>,
) -> S3Result<S3Response<DeleteBucketPolicyOutput>> {
    let bucket = req.input.bucket;
    endpoint
        .blocking(move |s| s.set_bucket_policy(&bucket, None))
        .await?;
    Ok(S3Response::new(DeleteBucketPolicyOutput {}))
}
