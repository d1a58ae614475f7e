//! Bucket operations: create, delete, list, locate, and the settings S3 clients ask about
//! (versioning, never enabled; default encryption). Must not touch objects.

use s3s::dto::*;
use s3s::{S3ErrorCode, S3Request, S3Response, S3Result};

use super::Endpoint;
use super::convert::{owner, timestamp};
use crate::serve::error::error;
use crate::store::DefaultEncryption;

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
    // Never enabled: S3 then answers with no status.
    endpoint.require_bucket(&req.input.bucket).await?;
    Ok(S3Response::new(GetBucketVersioningOutput::default()))
}

pub(super) async fn put_bucket_versioning(
    endpoint: &Endpoint,
    req: S3Request<PutBucketVersioningInput>,
) -> S3Result<S3Response<PutBucketVersioningOutput>> {
    endpoint.require_bucket(&req.input.bucket).await?;
    Err(error(
        S3ErrorCode::NotImplemented,
        "reseal serve keeps no object versions; versioning cannot be enabled",
    ))
}

pub(super) async fn get_bucket_encryption(
    endpoint: &Endpoint,
    req: S3Request<GetBucketEncryptionInput>,
) -> S3Result<S3Response<GetBucketEncryptionOutput>> {
    let info = endpoint.require_bucket(&req.input.bucket).await?;
    let (algorithm, key, bucket_key) = match info.default_encryption {
        DefaultEncryption::SseS3 => (ServerSideEncryption::AES256, None, false),
        DefaultEncryption::SseKms { key_id, bucket_key } => {
            (ServerSideEncryption::AWS_KMS, key_id, bucket_key)
        }
        DefaultEncryption::DsseKms { key_id } => {
            (ServerSideEncryption::AWS_KMS_DSSE, Some(key_id), false)
        }
    };
    Ok(S3Response::new(GetBucketEncryptionOutput {
        server_side_encryption_configuration: Some(ServerSideEncryptionConfiguration {
            rules: vec![ServerSideEncryptionRule {
                apply_server_side_encryption_by_default: Some(ServerSideEncryptionByDefault {
                    sse_algorithm: ServerSideEncryption::from_static(algorithm),
                    kms_master_key_id: key,
                }),
                bucket_key_enabled: Some(bucket_key),
            }],
        }),
    }))
}

pub(super) async fn put_bucket_encryption(
    endpoint: &Endpoint,
    req: S3Request<PutBucketEncryptionInput>,
) -> S3Result<S3Response<PutBucketEncryptionOutput>> {
    let config = req.input.server_side_encryption_configuration;
    let [rule] = config.rules.as_slice() else {
        return Err(error(
            S3ErrorCode::MalformedXML,
            "a bucket encryption configuration has exactly one rule",
        ));
    };
    let Some(default) = &rule.apply_server_side_encryption_by_default else {
        return Err(error(
            S3ErrorCode::MalformedXML,
            "the rule has no ApplyServerSideEncryptionByDefault",
        ));
    };
    let key = default.kms_master_key_id.clone().filter(|k| !k.is_empty());
    let default = match default.sse_algorithm.as_str() {
        ServerSideEncryption::AES256 if key.is_some() => {
            return Err(error(
                S3ErrorCode::InvalidArgument,
                "a KMS key is given only with aws:kms or aws:kms:dsse",
            ));
        }
        ServerSideEncryption::AES256 => DefaultEncryption::SseS3,
        ServerSideEncryption::AWS_KMS => DefaultEncryption::SseKms {
            key_id: key,
            bucket_key: rule.bucket_key_enabled.unwrap_or(false),
        },
        ServerSideEncryption::AWS_KMS_DSSE => DefaultEncryption::DsseKms {
            key_id: key.unwrap_or_else(|| crate::store::keys::DEFAULT_KMS_ALIAS.into()),
        },
        other => {
            return Err(error(
                S3ErrorCode::InvalidArgument,
                format!("unknown SSEAlgorithm {other}"),
            ));
        }
    };
    let bucket = req.input.bucket;
    endpoint
        .blocking(move |s| {
            // A key that does not exist is refused now, not at the next write.
            if let DefaultEncryption::SseKms {
                key_id: Some(k), ..
            }
            | DefaultEncryption::DsseKms { key_id: k } = &default
            {
                s.keys().describe_key(k)?;
            }
            s.set_default_encryption(&bucket, default)
        })
        .await?;
    Ok(S3Response::new(PutBucketEncryptionOutput {}))
}

pub(super) async fn delete_bucket_encryption(
    endpoint: &Endpoint,
    req: S3Request<DeleteBucketEncryptionInput>,
) -> S3Result<S3Response<DeleteBucketEncryptionOutput>> {
    // As in S3: the bucket goes back to SSE-S3, never to no encryption.
    let bucket = req.input.bucket;
    endpoint
        .blocking(move |s| s.set_default_encryption(&bucket, DefaultEncryption::SseS3))
        .await?;
    Ok(S3Response::new(DeleteBucketEncryptionOutput {}))
}
