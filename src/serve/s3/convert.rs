//! S3's request fields as the store's values, and the store's values as S3's response
//! fields: times, ETags and conditions, tags, metadata and the content headers kept with an
//! object, Content-MD5, ranges, versions, the owner. Plain conversions and the checks S3
//! makes on the way in; must not call the store.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use s3s::dto::*;
use s3s::{S3ErrorCode, S3Request, S3Result};

use super::ACCOUNT;
use crate::encoding;
use crate::serve::error::{error, internal};
use crate::store::{ByteRange, ObjectMeta, ReadConditions, WriteCondition};

const OWNER_NAME: &str = "reseal";

pub(super) fn timestamp(ms: i64) -> Timestamp {
    let at = SystemTime::UNIX_EPOCH + Duration::from_millis(ms.max(0) as u64);
    Timestamp::from(at)
}

fn seconds(t: &Timestamp) -> i64 {
    let mut out = Vec::new();
    if t.format(TimestampFormat::EpochSeconds, &mut out).is_err() {
        return 0;
    }
    let text = String::from_utf8_lossy(&out);
    let whole = text.split('.').next().unwrap_or_default();
    whole.parse().unwrap_or(0)
}

pub(super) fn etag(meta: &ObjectMeta) -> ETag {
    ETag::Strong(meta.etag.clone())
}

fn condition_text(c: &ETagCondition) -> String {
    match c {
        ETagCondition::Any => "*".into(),
        ETagCondition::ETag(tag) => tag.value().to_owned(),
    }
}

pub(super) fn read_conditions(
    if_match: Option<&ETagCondition>,
    if_none_match: Option<&ETagCondition>,
    if_modified_since: Option<&Timestamp>,
    if_unmodified_since: Option<&Timestamp>,
) -> ReadConditions {
    ReadConditions {
        if_match: if_match.map(condition_text),
        if_none_match: if_none_match.map(condition_text),
        if_modified_since: if_modified_since.map(seconds),
        if_unmodified_since: if_unmodified_since.map(seconds),
    }
}

/// The conditional-write headers (If-Match, If-None-Match: *) of a PUT, a completion or a
/// copy's destination.
pub(super) fn write_condition(
    if_match: Option<&ETagCondition>,
    if_none_match: Option<&ETagCondition>,
) -> S3Result<WriteCondition> {
    match (if_match, if_none_match) {
        (Some(_), Some(_)) => Err(error(
            S3ErrorCode::NotImplemented,
            "If-Match and If-None-Match together are not supported",
        )),
        (Some(m), None) => Ok(WriteCondition::IfMatch(condition_text(m))),
        (None, Some(ETagCondition::Any)) => Ok(WriteCondition::IfAbsent),
        (None, Some(_)) => Err(error(
            S3ErrorCode::NotImplemented,
            "If-None-Match takes only * on writes",
        )),
        (None, None) => Ok(WriteCondition::Always),
    }
}

/// A header read from the request itself, for those s3s's input does not carry (If-Match
/// on CopyObject).
pub(super) fn header_condition<T>(
    req: &S3Request<T>,
    name: &str,
) -> S3Result<Option<ETagCondition>> {
    req.headers
        .get(name)
        .map(|v| {
            ETagCondition::parse_http_header(v.as_bytes()).map_err(|_| {
                error(
                    S3ErrorCode::InvalidArgument,
                    format!("invalid {name} header"),
                )
            })
        })
        .transpose()
}

pub(super) fn tags_from_header(text: Option<&str>) -> S3Result<BTreeMap<String, String>> {
    let mut tags = BTreeMap::new();
    let Some(text) = text.filter(|t| !t.is_empty()) else {
        return Ok(tags);
    };
    for pair in text.split('&') {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        let decode = |s: &str| {
            encoding::decode_key(s)
                .map_err(|_| error(S3ErrorCode::InvalidArgument, "invalid x-amz-tagging header"))
        };
        tags.insert(decode(k)?, decode(v)?);
    }
    check_tags(&tags)?;
    Ok(tags)
}

pub(super) fn check_tags(tags: &BTreeMap<String, String>) -> S3Result<()> {
    if tags.len() > 10 {
        return Err(error(
            S3ErrorCode::InvalidTag,
            "Object tags cannot be greater than 10",
        ));
    }
    if tags.keys().any(|k| k.is_empty() || k.chars().count() > 128)
        || tags.values().any(|v| v.chars().count() > 256)
    {
        return Err(error(
            S3ErrorCode::InvalidTag,
            "A tag key is 1 to 128 characters and its value at most 256",
        ));
    }
    Ok(())
}

fn http_date(t: &Timestamp) -> S3Result<String> {
    let mut out = Vec::new();
    t.format(TimestampFormat::HttpDate, &mut out)
        .map_err(internal)?;
    String::from_utf8(out).map_err(internal)
}

/// The content headers S3 keeps with an object, from a request (the store keeps them by
/// these names, and knows nothing of them).
pub(super) struct ContentHeaders<'a> {
    pub(super) cache_control: Option<&'a str>,
    pub(super) content_disposition: Option<&'a str>,
    pub(super) content_encoding: Option<&'a str>,
    pub(super) content_language: Option<&'a str>,
    pub(super) expires: Option<&'a Timestamp>,
}

impl ContentHeaders<'_> {
    pub(super) fn to_map(&self) -> S3Result<BTreeMap<String, String>> {
        let mut map = BTreeMap::new();
        for (name, value) in [
            ("cache-control", self.cache_control),
            ("content-disposition", self.content_disposition),
            ("content-encoding", self.content_encoding),
            ("content-language", self.content_language),
        ] {
            if let Some(v) = value {
                map.insert(name.to_owned(), v.to_owned());
            }
        }
        if let Some(t) = self.expires {
            map.insert("expires".into(), http_date(t)?);
        }
        Ok(map)
    }
}

/// An object's kept headers, as the response fields they fill.
pub(super) struct KeptHeaders {
    pub(super) cache_control: Option<String>,
    pub(super) content_disposition: Option<String>,
    pub(super) content_encoding: Option<String>,
    pub(super) content_language: Option<String>,
    pub(super) expires: Option<Timestamp>,
    pub(super) website_redirect_location: Option<String>,
    pub(super) storage_class: Option<StorageClass>,
}

pub(super) fn kept(meta: &ObjectMeta) -> KeptHeaders {
    let get = |name: &str| meta.headers.get(name).cloned();
    KeptHeaders {
        cache_control: get("cache-control"),
        content_disposition: get("content-disposition"),
        content_encoding: get("content-encoding"),
        content_language: get("content-language"),
        expires: get("expires").and_then(|t| Timestamp::parse(TimestampFormat::HttpDate, &t).ok()),
        website_redirect_location: meta.website_redirect_location().map(str::to_owned),
        storage_class: meta
            .storage_class()
            .map(|c| StorageClass::from(c.to_owned())),
    }
}

pub(super) fn metadata_of(meta: &ObjectMeta) -> Option<Metadata> {
    (!meta.metadata.is_empty()).then(|| {
        meta.metadata
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    })
}

pub(super) fn metadata_in(m: Option<&Metadata>) -> BTreeMap<String, String> {
    m.map(|m| {
        m.iter()
            .map(|(k, v)| (k.to_ascii_lowercase(), v.clone()))
            .collect()
    })
    .unwrap_or_default()
}

pub(super) fn content_md5_hex(md5: Option<&str>) -> S3Result<Option<String>> {
    use base64::Engine as _;
    md5.map(|m| {
        base64::engine::general_purpose::STANDARD
            .decode(m)
            .ok()
            .filter(|b| b.len() == 16)
            .map(|b| crate::encoding::hex(&b))
            .ok_or_else(|| {
                error(
                    S3ErrorCode::InvalidDigest,
                    "The Content-MD5 you specified is not valid.",
                )
            })
    })
    .transpose()
}

pub(super) fn byte_range(r: Range) -> ByteRange {
    match r {
        Range::Int { first, last } => ByteRange::From { first, last },
        Range::Suffix { length } => ByteRange::Suffix(length),
    }
}

/// How many keys or parts a page of a listing holds: what the request asks, at most 1,000
/// (S3's limit, and its answer when none is asked).
pub(super) fn page_size(asked: Option<i32>) -> usize {
    asked.unwrap_or(1000).clamp(0, 1000) as usize
}

pub(super) fn owner() -> Owner {
    Owner {
        display_name: Some(OWNER_NAME.into()),
        id: Some(ACCOUNT.into()),
    }
}

/// What PutObject and CreateMultipartUpload both say of the object to come: encryption,
/// content type, metadata, tags and content headers.
macro_rules! new_object_options {
    ($input:expr, $customer:expr) => {
        $crate::store::PutOptions {
            encryption: $crate::serve::sse::requested(
                $input.server_side_encryption.as_ref(),
                $input.ssekms_key_id.as_deref(),
                $input.bucket_key_enabled,
                $customer,
            )?,
            content_type: $input.content_type.clone(),
            metadata: $crate::serve::s3::convert::metadata_in($input.metadata.as_ref()),
            tags: $crate::serve::s3::convert::tags_from_header($input.tagging.as_deref())?,
            headers: $crate::serve::s3::convert::ContentHeaders {
                cache_control: $input.cache_control.as_deref(),
                content_disposition: $input.content_disposition.as_deref(),
                content_encoding: $input.content_encoding.as_deref(),
                content_language: $input.content_language.as_deref(),
                expires: $input.expires.as_ref(),
            }
            .to_map()?,
            storage_class: $input.storage_class.as_ref().map(|c| c.as_str().to_owned()),
            website_redirect_location: $input.website_redirect_location.clone(),
            ..Default::default()
        }
    };
}
pub(super) use new_object_options;
