//! The local store's errors as S3 answers them: the error code and HTTP status S3 gives
//! for the same thing. Failures of the store itself (I/O, damaged files) are logged here
//! and answered as InternalError, without their details. Must not classify an error by its
//! message: every variant is answered by name.

use s3s::{S3Error, S3ErrorCode};

use crate::store::keys::KeyError;
use crate::store::{ChecksumType, StoreError};

/// An S3 error with a code s3s has no name for (the KMS errors S3 passes on).
pub fn custom(code: &'static str, status: http::StatusCode, message: String) -> S3Error {
    let mut e = S3Error::with_message(S3ErrorCode::Custom(code.into()), message);
    e.set_status_code(status);
    e
}

/// S3's name of a checksum type.
pub fn checksum_type_name(t: ChecksumType) -> &'static str {
    match t {
        ChecksumType::FullObject => "FULL_OBJECT",
        ChecksumType::Composite => "COMPOSITE",
    }
}

pub fn error(code: S3ErrorCode, message: impl Into<String>) -> S3Error {
    S3Error::with_message(code, message.into())
}

/// S3's answer to a store error. Every variant is named, so that a new one is answered on
/// purpose.
pub fn from_store(e: StoreError) -> S3Error {
    use S3ErrorCode as C;
    let message = e.to_string();
    match e {
        StoreError::NoSuchBucket(_) => error(C::NoSuchBucket, message),
        StoreError::BucketExists(_) => error(C::BucketAlreadyOwnedByYou, message),
        StoreError::BucketNotEmpty(_) => error(C::BucketNotEmpty, message),
        StoreError::InvalidBucketName(_) => error(C::InvalidBucketName, message),
        StoreError::InvalidKey(_) => error(C::KeyTooLongError, message),
        StoreError::NoSuchKey { .. } => error(C::NoSuchKey, message),
        StoreError::NoSuchVersion { .. } => {
            error(C::NoSuchVersion, "The specified version does not exist.")
        }
        StoreError::InvalidVersionId { .. } => {
            error(C::InvalidArgument, "Invalid version id specified")
        }
        StoreError::DeleteMarker { version, .. } => {
            // As S3 answers: 405, saying that the version is a delete marker.
            let mut e = error(
                C::MethodNotAllowed,
                "The specified method is not allowed against this resource.",
            );
            let mut headers = http::HeaderMap::new();
            headers.insert(
                "x-amz-delete-marker",
                http::HeaderValue::from_static("true"),
            );
            if let Ok(v) = http::HeaderValue::from_str(&version) {
                headers.insert("x-amz-version-id", v);
            }
            e.set_headers(headers);
            e
        }
        StoreError::VersioningCannotBeDisabled(_) => {
            error(C::IllegalVersioningConfigurationException, message)
        }
        StoreError::PreconditionFailed { .. } => error(
            C::PreconditionFailed,
            "At least one of the pre-conditions you specified did not hold",
        ),
        StoreError::NotModified { .. } => S3Error::new(C::NotModified),
        StoreError::CopyChangesNothing { .. } => error(
            C::InvalidRequest,
            "This copy request is illegal because it is trying to copy an object to itself \
             without changing the object's metadata, storage class, website redirect location \
             or encryption attributes.",
        ),
        // S3 answers a write to a bucket that blocks SSE-C as it answers any refused
        // permission: 403 AccessDenied, without saying why.
        StoreError::AccessDenied { .. } | StoreError::EncryptionTypeBlocked { .. } => {
            error(C::AccessDenied, "Access Denied")
        }
        StoreError::SseCKeyRequired { .. } => error(
            C::InvalidRequest,
            "The object was stored using a form of Server Side Encryption. The correct \
             parameters must be provided to retrieve the object.",
        ),
        StoreError::SseCKeyNotExpected { .. } => error(
            C::InvalidRequest,
            "The encryption parameters are not applicable to this object.",
        ),
        StoreError::InvalidRange { .. } => {
            error(C::InvalidRange, "The requested range is not satisfiable")
        }
        StoreError::PartNotSatisfiable { .. } => custom(
            "InvalidPartNumber",
            http::StatusCode::RANGE_NOT_SATISFIABLE,
            "The requested partnumber is not satisfiable".into(),
        ),
        StoreError::BadDigest { .. } => error(
            C::BadDigest,
            "The Content-MD5 you specified did not match what we received.",
        ),
        StoreError::BadChecksum { algorithm, .. } => error(
            C::BadDigest,
            format!("The {algorithm} you specified did not match the calculated checksum."),
        ),
        StoreError::ChecksumAlgorithmMismatch { expected, actual } => error(
            C::InvalidRequest,
            format!(
                "Checksum Type mismatch occurred, expected checksum Type: {}, actual checksum \
                 Type: {}",
                expected.name().to_ascii_lowercase(),
                actual.name().to_ascii_lowercase()
            ),
        ),
        StoreError::ChecksumTypeNotAllowed {
            algorithm,
            checksum_type,
        } => error(
            C::InvalidRequest,
            format!(
                "The {} checksum type cannot be used with the {} checksum algorithm.",
                checksum_type_name(checksum_type),
                algorithm.name().to_ascii_lowercase()
            ),
        ),
        StoreError::PartChecksumMissing { algorithm, number } => error(
            C::InvalidRequest,
            format!(
                "The upload was created using a {} checksum. The complete request must include \
                 the checksum for each part. It was missing for part {number} in the request.",
                algorithm.name().to_ascii_lowercase()
            ),
        ),
        StoreError::NoSuchUpload(_) => error(
            C::NoSuchUpload,
            "The specified upload does not exist. The upload ID may be invalid, or the upload \
             may have been aborted or completed.",
        ),
        StoreError::InvalidPartNumber { .. } | StoreError::CopyRangeOutsideSource { .. } => {
            error(C::InvalidArgument, message)
        }
        StoreError::InvalidPart(_) => error(C::InvalidPart, message),
        StoreError::InvalidPartOrder => error(C::InvalidPartOrder, message),
        StoreError::EntityTooSmall { .. } => error(C::EntityTooSmall, message),
        StoreError::Keys(KeyError::UnknownKey(_)) => custom(
            "KMS.NotFoundException",
            http::StatusCode::BAD_REQUEST,
            message,
        ),
        StoreError::Keys(KeyError::Disabled(_)) => custom(
            "KMS.DisabledException",
            http::StatusCode::BAD_REQUEST,
            message,
        ),
        StoreError::Keys(KeyError::BadAlias { .. }) => error(C::InvalidArgument, message),
        // The store's own state (its folder, files, keys, master key): nothing the request
        // can change, and nothing to tell the client about.
        other @ (StoreError::NotAStore(_)
        | StoreError::AlreadyAStore(_)
        | StoreError::Crypto { .. }
        | StoreError::Corrupt { .. }
        | StoreError::MasterKey(_)
        | StoreError::Io { .. }
        | StoreError::Keys(
            KeyError::NotInitialised { .. }
            | KeyError::AlreadyInitialised { .. }
            | KeyError::WrongMasterKey { .. }
            | KeyError::AliasTaken { .. }
            | KeyError::Io { .. }
            | KeyError::Crypto(_)
            | KeyError::Corrupt { .. },
        )) => internal(other),
    }
}

/// A failure of the server, not of the request: logged, answered without details.
pub fn internal(e: impl std::fmt::Display) -> S3Error {
    tracing::error!(error = %e, "request failed");
    S3Error::with_message(
        S3ErrorCode::InternalError,
        "We encountered an internal error. Please try again.",
    )
}
