//! A bucket's encryption configuration: its default encryption and whether it blocks
//! SSE-C writes (`BlockedEncryptionTypes`, which S3 sets on new buckets since April 2026).
//! s3s 0.14.1 knows no `BlockedEncryptionTypes` (its PutBucketEncryption refuses the
//! element as MalformedXML and its GetBucketEncryption cannot give it), so Get and
//! PutBucketEncryption are an s3s route ([`EncryptionRoute`]) that reads and writes the
//! XML itself with s3s's XML reader and writer; DeleteBucketEncryption stays an
//! operation. Must not touch objects: the store refuses blocked writes.

use bytes::Bytes;
use hyper::http::Extensions;
use hyper::{HeaderMap, Method, Uri};
use s3s::dto::*;
use s3s::route::S3Route;
use s3s::xml::{DeError, DeResult, Deserializer, SerResult, Serializer};
use s3s::{Body, S3ErrorCode, S3Request, S3Response, S3Result};

use super::Endpoint;
use crate::serve::error::{error, internal};
use crate::store::{BucketInfo, DefaultEncryption};

/// S3's XML namespace.
const XMLNS: &str = "http://s3.amazonaws.com/doc/2006-03-01/";
/// An encryption configuration is a few hundred bytes; this bounds what is read of one.
const MAX_CONFIGURATION_BYTES: usize = 64 * 1024;
const SSE_C: &str = "SSE-C";
const NONE: &str = "NONE";

/// GET and PUT `/BUCKET?encryption`, instead of s3s's operations.
pub struct EncryptionRoute {
    endpoint: Endpoint,
}

impl EncryptionRoute {
    pub fn new(endpoint: Endpoint) -> EncryptionRoute {
        EncryptionRoute { endpoint }
    }
}

#[async_trait::async_trait]
impl S3Route for EncryptionRoute {
    fn is_match(&self, method: &Method, uri: &Uri, _: &HeaderMap, _: &mut Extensions) -> bool {
        (method == Method::GET || method == Method::PUT)
            && bucket_of(uri.path()).is_some()
            && uri.query().is_some_and(|q| {
                q.split('&')
                    .any(|p| p.split_once('=').map_or(p, |(k, _)| k) == "encryption")
            })
    }

    // The default `check_access` stays: a signed request (s3s has checked its signature).

    async fn call(&self, mut req: S3Request<Body>) -> S3Result<S3Response<Body>> {
        let bucket = bucket_of(req.uri.path())
            .expect("matched a bucket path")
            .to_owned();
        if req.method == Method::GET {
            let info = self.endpoint.require_bucket(&bucket).await?;
            let mut response = S3Response::new(Body::from(configuration_xml(&info)?));
            response.headers.insert(
                hyper::header::CONTENT_TYPE,
                http::HeaderValue::from_static("application/xml"),
            );
            return Ok(response);
        }
        let body = req
            .input
            .store_all_limited(MAX_CONFIGURATION_BYTES)
            .await
            .map_err(|e| {
                error(
                    S3ErrorCode::MalformedXML,
                    format!("cannot read the encryption configuration: {e}"),
                )
            })?;
        let rule = parse_configuration(&body)?;
        put_encryption(&self.endpoint, bucket, rule).await?;
        Ok(S3Response::new(Body::empty()))
    }
}

/// The bucket of a path-style bucket request (`/BUCKET` or `/BUCKET/`).
fn bucket_of(path: &str) -> Option<&str> {
    let name = path.strip_prefix('/')?;
    let name = name.strip_suffix('/').unwrap_or(name);
    (!name.is_empty() && !name.contains('/')).then_some(name)
}

/// The one rule of a configuration, as sent.
#[derive(Debug, Default)]
struct Rule {
    default: Option<ServerSideEncryptionByDefault>,
    bucket_key_enabled: Option<bool>,
    /// `None`: the element was not sent.
    blocked: Option<Vec<String>>,
}

fn malformed(e: DeError) -> s3s::S3Error {
    error(
        S3ErrorCode::MalformedXML,
        format!(
            "The XML you provided was not well-formed or did not validate against our published schema ({e})"
        ),
    )
}

fn parse_configuration(xml: &Bytes) -> S3Result<Rule> {
    let mut d = Deserializer::new(xml);
    let rules = d
        .named_element("ServerSideEncryptionConfiguration", |d| {
            let mut rules = Vec::new();
            d.for_each_element(|d, name| match name {
                b"Rule" => {
                    rules.push(rule(d)?);
                    Ok(())
                }
                _ => Err(DeError::UnexpectedTagName),
            })?;
            Ok(rules)
        })
        .map_err(malformed)?;
    d.expect_eof().map_err(malformed)?;
    let mut rules = rules.into_iter();
    match (rules.next(), rules.next()) {
        (Some(rule), None) => Ok(rule),
        _ => Err(error(
            S3ErrorCode::MalformedXML,
            "a bucket encryption configuration has exactly one rule",
        )),
    }
}

fn rule(d: &mut Deserializer<'_>) -> DeResult<Rule> {
    let mut rule = Rule::default();
    d.for_each_element(|d, name| {
        match name {
            b"ApplyServerSideEncryptionByDefault" if rule.default.is_none() => {
                rule.default = Some(d.content()?);
            }
            b"BucketKeyEnabled" if rule.bucket_key_enabled.is_none() => {
                rule.bucket_key_enabled = Some(d.content()?);
            }
            b"BlockedEncryptionTypes" if rule.blocked.is_none() => {
                let mut types = Vec::new();
                d.for_each_element(|d, name| match name {
                    b"EncryptionType" => {
                        types.push(d.content::<String>()?);
                        Ok(())
                    }
                    _ => Err(DeError::UnexpectedTagName),
                })?;
                rule.blocked = Some(types);
            }
            b"ApplyServerSideEncryptionByDefault"
            | b"BucketKeyEnabled"
            | b"BlockedEncryptionTypes" => {
                return Err(DeError::DuplicateField);
            }
            _ => return Err(DeError::UnexpectedTagName),
        }
        Ok(())
    })?;
    Ok(rule)
}

/// Checks a rule and keeps it as the bucket's encryption. Without
/// `BlockedEncryptionTypes` the bucket keeps what it had, so that a client that does not
/// know the element cannot unblock SSE-C by changing the default encryption.
async fn put_encryption(endpoint: &Endpoint, bucket: String, rule: Rule) -> S3Result<()> {
    let default = match &rule.default {
        // A rule may only block: the default stays S3's, SSE-S3.
        None => DefaultEncryption::SseS3,
        Some(default) => default_encryption(default, rule.bucket_key_enabled)?,
    };
    let blocked = match rule.blocked.as_deref() {
        None => None,
        Some([]) => Some(false),
        Some([one]) if one == SSE_C => Some(true),
        Some([one]) if one == NONE => Some(false),
        Some(other) => {
            return Err(error(
                S3ErrorCode::InvalidArgument,
                format!(
                    "BlockedEncryptionTypes takes one EncryptionType, {SSE_C} or {NONE}, not {other:?}"
                ),
            ));
        }
    };
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
            let blocked = match blocked {
                Some(b) => b,
                None => s.bucket(&bucket)?.sse_c_blocked,
            };
            s.set_default_encryption(&bucket, default, blocked)
        })
        .await?;
    Ok(())
}

fn default_encryption(
    default: &ServerSideEncryptionByDefault,
    bucket_key: Option<bool>,
) -> S3Result<DefaultEncryption> {
    let key = default.kms_master_key_id.clone().filter(|k| !k.is_empty());
    Ok(match default.sse_algorithm.as_str() {
        ServerSideEncryption::AES256 if key.is_some() => {
            return Err(error(
                S3ErrorCode::InvalidArgument,
                "a KMS key is given only with aws:kms or aws:kms:dsse",
            ));
        }
        ServerSideEncryption::AES256 => DefaultEncryption::SseS3,
        ServerSideEncryption::AWS_KMS => DefaultEncryption::SseKms {
            key_id: key,
            bucket_key: bucket_key.unwrap_or(false),
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
    })
}

/// GetBucketEncryption's answer: the default, the Bucket Key, and
/// `BlockedEncryptionTypes` when the bucket blocks SSE-C.
fn configuration_xml(info: &BucketInfo) -> S3Result<Vec<u8>> {
    let (algorithm, key, bucket_key) = match &info.default_encryption {
        DefaultEncryption::SseS3 => (ServerSideEncryption::AES256, None, false),
        DefaultEncryption::SseKms { key_id, bucket_key } => (
            ServerSideEncryption::AWS_KMS,
            key_id.as_deref(),
            *bucket_key,
        ),
        DefaultEncryption::DsseKms { key_id } => (
            ServerSideEncryption::AWS_KMS_DSSE,
            Some(key_id.as_str()),
            false,
        ),
    };
    let mut out = Vec::with_capacity(512);
    let written: SerResult = (|| {
        let mut s = Serializer::new(&mut out);
        s.decl()?;
        s.element_with_ns("ServerSideEncryptionConfiguration", XMLNS, |s| {
            s.element("Rule", |s| {
                s.element("ApplyServerSideEncryptionByDefault", |s| {
                    if let Some(key) = key {
                        s.content("KMSMasterKeyID", key)?;
                    }
                    s.content("SSEAlgorithm", algorithm)
                })?;
                s.content("BucketKeyEnabled", &bucket_key)?;
                if info.sse_c_blocked {
                    s.element("BlockedEncryptionTypes", |s| {
                        s.content("EncryptionType", SSE_C)
                    })?;
                }
                Ok(())
            })
        })
    })();
    written.map_err(internal)?;
    Ok(out)
}

pub(super) async fn delete_bucket_encryption(
    endpoint: &Endpoint,
    req: S3Request<DeleteBucketEncryptionInput>,
) -> S3Result<S3Response<DeleteBucketEncryptionOutput>> {
    // As in S3: the bucket goes back to SSE-S3, never to no encryption. Whether it blocks
    // SSE-C stays as it was: that is a guard, not an encryption to fall back to.
    let bucket = req.input.bucket;
    endpoint
        .blocking(move |s| {
            let blocked = s.bucket(&bucket)?.sse_c_blocked;
            s.set_default_encryption(&bucket, DefaultEncryption::SseS3, blocked)
        })
        .await?;
    Ok(S3Response::new(DeleteBucketEncryptionOutput {}))
}
