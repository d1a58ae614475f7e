//! S3's flexible checksums on the wire, to the store's checksums and back: the
//! `x-amz-checksum-*` values a request gives (as headers, or as trailers after an
//! aws-chunked body, named by `x-amz-trailer`), the algorithm and type it names, and the
//! base64 values (`-N` for a composite one) and type an answer gives. Must not compute or
//! compare checksums: the store does, over the plaintext as it is written.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use s3s::dto::{self, ChecksumMode};
use s3s::{S3ErrorCode, S3Result, TrailingHeaders};

use crate::serve::error::{checksum_type_name, error};
use crate::store::{
    Checksum, ChecksumAlgorithm, ChecksumRequest, ChecksumType, ChecksumValue, ExpectedChecksum,
};

/// The five `x-amz-checksum-*` values of a request or of a part it lists, as given.
#[derive(Default)]
pub(super) struct Given<'a> {
    pub crc32: Option<&'a str>,
    pub crc32c: Option<&'a str>,
    pub crc64nvme: Option<&'a str>,
    pub sha1: Option<&'a str>,
    pub sha256: Option<&'a str>,
}

/// [`Given`] of any input (or completed part) with the five `checksum_*` fields.
macro_rules! given_of {
    ($input:expr) => {
        $crate::serve::s3::checksum::Given {
            crc32: $input.checksum_crc32.as_deref(),
            crc32c: $input.checksum_crc32c.as_deref(),
            crc64nvme: $input.checksum_crc64nvme.as_deref(),
            sha1: $input.checksum_sha1.as_deref(),
            sha256: $input.checksum_sha256.as_deref(),
        }
    };
}
pub(super) use given_of;

/// The five `checksum_*` fields of an output (or a part it lists) set from [`Answer`].
macro_rules! set_checksums {
    ($output:expr, $answer:expr) => {{
        let answer: $crate::serve::s3::checksum::Answer = $answer;
        $output.checksum_crc32 = answer.crc32;
        $output.checksum_crc32c = answer.crc32c;
        $output.checksum_crc64nvme = answer.crc64nvme;
        $output.checksum_sha1 = answer.sha1;
        $output.checksum_sha256 = answer.sha256;
        answer.checksum_type
    }};
}
pub(super) use set_checksums;

impl<'a> Given<'a> {
    /// The one value given, with its algorithm; more than one is refused.
    fn one(&self) -> S3Result<Option<(ChecksumAlgorithm, &'a str)>> {
        let all = [
            (ChecksumAlgorithm::Crc32, self.crc32),
            (ChecksumAlgorithm::Crc32c, self.crc32c),
            (ChecksumAlgorithm::Crc64Nvme, self.crc64nvme),
            (ChecksumAlgorithm::Sha1, self.sha1),
            (ChecksumAlgorithm::Sha256, self.sha256),
        ];
        let mut given = all.into_iter().filter_map(|(a, v)| v.map(|v| (a, v)));
        let first = given.next();
        if given.next().is_some() {
            return Err(error(
                S3ErrorCode::InvalidRequest,
                "Expecting a single x-amz-checksum- header. Multiple checksum Types are not \
                 allowed.",
            ));
        }
        Ok(first)
    }

    /// The one value given, decoded; `composite` allows (and strips) a `-N` suffix.
    pub(super) fn value(&self, composite: bool) -> S3Result<Option<ChecksumValue>> {
        let Some((algorithm, text)) = self.one()? else {
            return Ok(None);
        };
        let text = match text.rsplit_once('-') {
            Some((value, n)) if composite && n.parse::<u32>().is_ok() => value,
            _ => text,
        };
        Ok(Some(ChecksumValue {
            algorithm,
            value: decode(algorithm, text)?,
        }))
    }
}

fn header_name(algorithm: ChecksumAlgorithm) -> String {
    format!("x-amz-checksum-{}", algorithm.name().to_ascii_lowercase())
}

fn decode(algorithm: ChecksumAlgorithm, text: &str) -> S3Result<Vec<u8>> {
    STANDARD
        .decode(text.trim())
        .ok()
        .filter(|v| v.len() == algorithm.value_len())
        .ok_or_else(|| {
            error(
                S3ErrorCode::InvalidRequest,
                format!("Value for {} header is invalid.", header_name(algorithm)),
            )
        })
}

/// An algorithm as S3 names it.
pub(super) fn algorithm_in(a: &dto::ChecksumAlgorithm) -> S3Result<ChecksumAlgorithm> {
    ChecksumAlgorithm::ALL
        .into_iter()
        .find(|x| x.name().eq_ignore_ascii_case(a.as_str()))
        .ok_or_else(|| {
            error(
                S3ErrorCode::InvalidRequest,
                format!(
                    "Value for x-amz-checksum-algorithm header is invalid: {}",
                    a.as_str()
                ),
            )
        })
}

pub(super) fn algorithm_out(a: ChecksumAlgorithm) -> dto::ChecksumAlgorithm {
    dto::ChecksumAlgorithm::from(a.name().to_owned())
}

pub(super) fn type_in(t: &dto::ChecksumType) -> S3Result<ChecksumType> {
    match t.as_str() {
        dto::ChecksumType::FULL_OBJECT => Ok(ChecksumType::FullObject),
        dto::ChecksumType::COMPOSITE => Ok(ChecksumType::Composite),
        other => Err(error(
            S3ErrorCode::InvalidRequest,
            format!("Value for x-amz-checksum-type header is invalid: {other}"),
        )),
    }
}

pub(super) fn type_out(t: ChecksumType) -> dto::ChecksumType {
    dto::ChecksumType::from(checksum_type_name(t).to_owned())
}

/// What a request with a body asks of its checksum: a value in a header; or one in a
/// trailer (`x-amz-trailer`), known once the body is read; or only an algorithm
/// (`x-amz-sdk-checksum-algorithm`), for the store to compute the checksum and keep it.
pub(super) fn requested(
    given: Given<'_>,
    algorithm: Option<&dto::ChecksumAlgorithm>,
    headers: &http::HeaderMap,
    trailers: Option<&TrailingHeaders>,
) -> S3Result<Option<ChecksumRequest>> {
    if let Some(v) = given.value(false)? {
        return Ok(Some(ChecksumRequest {
            algorithm: v.algorithm,
            expected: ExpectedChecksum::Value(v.value),
        }));
    }
    let trailer = headers
        .get("x-amz-trailer")
        .and_then(|v| v.to_str().ok())
        .map(|v| v.trim().to_ascii_lowercase());
    if let Some(name) = trailer {
        let algorithm = ChecksumAlgorithm::ALL
            .into_iter()
            .find(|a| header_name(*a) == name)
            .ok_or_else(|| {
                error(
                    S3ErrorCode::InvalidRequest,
                    format!(
                        "The value specified in the x-amz-trailer header is not supported: {name}"
                    ),
                )
            })?;
        let trailers = trailers.cloned().ok_or_else(|| {
            error(
                S3ErrorCode::InvalidRequest,
                "x-amz-trailer needs a streaming body with trailers",
            )
        })?;
        let expected = ExpectedChecksum::AtEnd(std::sync::Arc::new(move || {
            trailers
                .read(|h| {
                    h.get(name.as_str())
                        .and_then(|v| v.to_str().ok().map(str::to_owned))
                })
                .flatten()
                .and_then(|text| decode(algorithm, &text).ok())
        }));
        return Ok(Some(ChecksumRequest {
            algorithm,
            expected,
        }));
    }
    // s3s reads the algorithm from `x-amz-checksum-algorithm`; an SDK names it in
    // `x-amz-sdk-checksum-algorithm`.
    let sdk = headers
        .get("x-amz-sdk-checksum-algorithm")
        .and_then(|v| v.to_str().ok())
        .map(|v| dto::ChecksumAlgorithm::from(v.to_owned()));
    algorithm
        .or(sdk.as_ref())
        .map(|a| {
            Ok(ChecksumRequest {
                algorithm: algorithm_in(a)?,
                expected: ExpectedChecksum::Unknown,
            })
        })
        .transpose()
}

/// Whether a GET or HEAD asks for checksums (`x-amz-checksum-mode: ENABLED`).
pub(super) fn mode_enabled(mode: Option<&ChecksumMode>) -> bool {
    mode.is_some_and(|m| m.as_str().eq_ignore_ascii_case(ChecksumMode::ENABLED))
}

/// The checksum fields of an answer: at most one value, base64, and the type.
#[derive(Default)]
pub(super) struct Answer {
    pub crc32: Option<String>,
    pub crc32c: Option<String>,
    pub crc64nvme: Option<String>,
    pub sha1: Option<String>,
    pub sha256: Option<String>,
    pub checksum_type: Option<dto::ChecksumType>,
}

impl Answer {
    fn of(algorithm: ChecksumAlgorithm, text: String, t: Option<ChecksumType>) -> Answer {
        let mut a = Answer {
            checksum_type: t.map(type_out),
            ..Default::default()
        };
        *match algorithm {
            ChecksumAlgorithm::Crc32 => &mut a.crc32,
            ChecksumAlgorithm::Crc32c => &mut a.crc32c,
            ChecksumAlgorithm::Crc64Nvme => &mut a.crc64nvme,
            ChecksumAlgorithm::Sha1 => &mut a.sha1,
            ChecksumAlgorithm::Sha256 => &mut a.sha256,
        } = Some(text);
        a
    }

    /// An object's checksum as S3 gives it: a composite one with `-N`, N its parts.
    pub(super) fn object(checksum: Option<&Checksum>) -> Answer {
        let Some(c) = checksum else {
            return Answer::default();
        };
        let mut text = STANDARD.encode(&c.value);
        if c.checksum_type == ChecksumType::Composite {
            text = format!("{text}-{}", c.parts.len());
        }
        Answer::of(c.algorithm, text, Some(c.checksum_type))
    }

    /// A part's checksum (no type).
    pub(super) fn part(checksum: Option<&ChecksumValue>) -> Answer {
        checksum.map_or_else(Answer::default, |c| {
            Answer::of(c.algorithm, STANDARD.encode(&c.value), None)
        })
    }

    pub(super) fn into_dto(self) -> dto::Checksum {
        dto::Checksum {
            checksum_crc32: self.crc32,
            checksum_crc32c: self.crc32c,
            checksum_crc64nvme: self.crc64nvme,
            checksum_sha1: self.sha1,
            checksum_sha256: self.sha256,
            checksum_type: self.checksum_type,
        }
    }
}
