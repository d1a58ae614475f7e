//! Server-side encryption as S3 takes it in request headers and gives it back in
//! responses: which mode a request asks for (or none, then the bucket's default), the
//! SSE-C key with its MD5 check, and the headers that describe an object's encryption.
//! Must not call the store: a key the request names is checked there, when it is used.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use s3s::S3Result;
use s3s::dto::ServerSideEncryption;
use s3s::{S3Error, S3ErrorCode};

use super::error::error;
use crate::crypto::CustomerKey;
use crate::crypto::key_md5_base64;
use crate::store::keys::DEFAULT_KMS_ALIAS;
use crate::store::{Encryption, SseState};

/// The SSE-C headers of a request (or its copy-source variants).
pub struct CustomerHeaders<'a> {
    pub algorithm: Option<&'a str>,
    pub key: Option<&'a str>,
    pub md5: Option<&'a str>,
}

fn invalid(message: &str) -> S3Error {
    error(S3ErrorCode::InvalidArgument, message)
}

impl CustomerHeaders<'_> {
    pub fn given(&self) -> bool {
        self.algorithm.is_some() || self.key.is_some() || self.md5.is_some()
    }

    /// The customer key, checked as S3 checks it: algorithm AES256, a 256-bit key, and
    /// the MD5 the client computed (400 when any is wrong or missing).
    pub fn key(&self) -> S3Result<Option<CustomerKey>> {
        if !self.given() {
            return Ok(None);
        }
        match self.algorithm {
            Some("AES256") => {}
            Some(_) => {
                return Err(error(
                    S3ErrorCode::InvalidEncryptionAlgorithmError,
                    "The Encryption request you specified is not valid. Supported value: AES256.",
                ));
            }
            None => {
                return Err(invalid(
                    "Requests specifying Server Side Encryption with Customer provided keys must \
                     provide a valid encryption algorithm.",
                ));
            }
        }
        let Some(text) = self.key else {
            return Err(invalid(
                "Requests specifying Server Side Encryption with Customer provided keys must \
                 provide an appropriate secret key.",
            ));
        };
        let Some(md5) = self.md5 else {
            return Err(invalid(
                "Requests specifying Server Side Encryption with Customer provided keys must \
                 provide the client calculated MD5 of the secret key.",
            ));
        };
        let bytes = STANDARD
            .decode(text)
            .map_err(|_| invalid("The secret key was invalid for the specified algorithm."))?;
        if key_md5_base64(&bytes) != md5 {
            return Err(invalid(
                "The calculated MD5 hash of the key did not match the hash that was provided.",
            ));
        }
        CustomerKey::from_slice(&bytes)
            .map(Some)
            .map_err(|_| invalid("The secret key was invalid for the specified algorithm."))
    }
}

/// The encryption a write asks for in its headers; `None`: the bucket's default.
pub fn requested(
    sse: Option<&ServerSideEncryption>,
    kms_key_id: Option<&str>,
    bucket_key: Option<bool>,
    customer: Option<CustomerKey>,
) -> S3Result<Option<Encryption>> {
    if let Some(key) = customer {
        if sse.is_some() || kms_key_id.is_some() {
            return Err(invalid(
                "Server Side Encryption with Customer provided key is incompatible with the \
                 encryption method specified",
            ));
        }
        return Ok(Some(Encryption::SseC(key)));
    }
    let Some(sse) = sse else {
        if kms_key_id.is_some() {
            return Err(invalid(
                "Server Side Encryption with AWS KMS managed key requires HTTP header \
                 x-amz-server-side-encryption : aws:kms",
            ));
        }
        return Ok(None);
    };
    let kms_key_id = kms_key_id.filter(|k| !k.is_empty()).map(str::to_owned);
    match sse.as_str() {
        ServerSideEncryption::AES256 if kms_key_id.is_some() => Err(invalid(
            "Server Side Encryption with AWS KMS managed key requires HTTP header \
             x-amz-server-side-encryption : aws:kms",
        )),
        ServerSideEncryption::AES256 => Ok(Some(Encryption::SseS3)),
        ServerSideEncryption::AWS_KMS => Ok(Some(Encryption::SseKms {
            key_id: kms_key_id,
            bucket_key: bucket_key.unwrap_or(false),
        })),
        ServerSideEncryption::AWS_KMS_DSSE => Ok(Some(Encryption::DsseKms {
            key_id: kms_key_id.unwrap_or_else(|| DEFAULT_KMS_ALIAS.to_owned()),
        })),
        other => Err(invalid(&format!(
            "The encryption method specified is not supported: {other}"
        ))),
    }
}

/// The response headers that describe an object's encryption.
#[derive(Debug, Clone, Default)]
pub struct Described {
    pub sse: Option<ServerSideEncryption>,
    pub kms_key_id: Option<String>,
    pub bucket_key: Option<bool>,
    pub customer_algorithm: Option<String>,
    pub customer_key_md5: Option<String>,
}

/// How reseal names its local KMS keys in responses: as ARNs in the server's region and
/// account, ending in `key/ID`.
#[derive(Debug, Clone)]
pub struct KeyArns {
    pub region: String,
    pub account: String,
}

impl KeyArns {
    pub fn arn(&self, key_id: &str) -> String {
        format!("arn:aws:kms:{}:{}:key/{key_id}", self.region, self.account)
    }

    pub fn describe(&self, sse: &SseState) -> Described {
        let aws = |s: &'static str| Some(ServerSideEncryption::from_static(s));
        match sse {
            SseState::None => Described::default(),
            SseState::SseS3 { .. } => Described {
                sse: aws(ServerSideEncryption::AES256),
                ..Default::default()
            },
            SseState::SseKms { dek, bucket_key } => Described {
                sse: aws(ServerSideEncryption::AWS_KMS),
                kms_key_id: Some(self.arn(&dek.key_id)),
                bucket_key: bucket_key.then_some(true),
                ..Default::default()
            },
            SseState::DsseKms { outer, .. } => Described {
                sse: aws(ServerSideEncryption::AWS_KMS_DSSE),
                kms_key_id: Some(self.arn(&outer.key_id)),
                ..Default::default()
            },
            SseState::SseC { key_md5, .. } => Described {
                customer_algorithm: Some("AES256".into()),
                customer_key_md5: Some(key_md5.clone()),
                ..Default::default()
            },
        }
    }
}
