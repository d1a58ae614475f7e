//! Listings: objects (ListObjectsV2 and version 1's markers) and their versions with
//! delete markers (ListObjectVersions), paged by S3's rules over the store's sorted keys.
//! Must not write.

use s3s::dto::*;
use s3s::{S3ErrorCode, S3Request, S3Response, S3Result};

use super::Endpoint;
use super::convert::{etag, owner, page_size, timestamp};
use crate::encoding;
use crate::serve::error::error;
use crate::store::{ObjectMeta, STANDARD_STORAGE_CLASS, VersionEntry};

/// One page of a listing: entries (objects, or versions) and common prefixes in key order.
struct Page<T> {
    entries: Vec<T>,
    prefixes: Vec<String>,
    truncated: bool,
    /// Whether the page ends on a common prefix (then the next page starts after it), not
    /// on its last entry.
    ends_on_prefix: bool,
}

impl<T> Page<T> {
    /// Where the next page starts: after the last common prefix, or after the last entry
    /// (`entry_marker`); none when this page is the last.
    fn next<M>(
        &self,
        prefix_marker: impl FnOnce(&str) -> M,
        entry_marker: impl FnOnce(&T) -> M,
    ) -> Option<M> {
        if !self.truncated {
            None
        } else if self.ends_on_prefix {
            self.prefixes.last().map(|p| prefix_marker(p))
        } else {
            self.entries.last().map(entry_marker)
        }
    }
}

/// S3's listing rules over the store's entries in key order: entries under `prefix` that
/// `skip` does not skip (those at or before the request's marker), grouped by `delimiter`
/// after `prefix`, at most `max` entries and prefixes.
fn page<T>(
    all: Vec<T>,
    key_of: impl Fn(&T) -> &str,
    mut skip: impl FnMut(&T) -> bool,
    prefix: &str,
    delimiter: Option<&str>,
    max: usize,
) -> Page<T> {
    let mut page = Page {
        entries: Vec::new(),
        prefixes: Vec::new(),
        truncated: false,
        ends_on_prefix: false,
    };
    let delimiter = delimiter.filter(|d| !d.is_empty());
    let mut count = 0;
    for entry in all {
        let key = key_of(&entry);
        if !key.starts_with(prefix) || skip(&entry) {
            continue;
        }
        let grouped = delimiter.and_then(|d| {
            key[prefix.len()..]
                .find(d)
                .map(|at| key[..prefix.len() + at + d.len()].to_owned())
        });
        if let Some(common) = &grouped
            && page.prefixes.last() == Some(common)
        {
            continue;
        }
        if count == max {
            page.truncated = true;
            break;
        }
        count += 1;
        page.ends_on_prefix = grouped.is_some();
        match grouped {
            Some(common) => page.prefixes.push(common),
            None => page.entries.push(entry),
        }
    }
    page
}

/// Whether `key` is at or before a listing's marker `after` (a key, or a common prefix
/// whose keys are all skipped).
fn at_or_before(key: &str, after: &str, delimiter: Option<&str>) -> bool {
    let after_prefix = delimiter.is_some_and(|d| !d.is_empty() && after.ends_with(d));
    key <= after || (after_prefix && key.starts_with(after))
}

/// A page of objects (see [`page`]) after the key or common prefix `after`.
fn object_page(
    all: Vec<ObjectMeta>,
    prefix: &str,
    delimiter: Option<&str>,
    after: Option<&str>,
    max: usize,
) -> Page<ObjectMeta> {
    page(
        all,
        |m| m.key.as_str(),
        |m| after.is_some_and(|a| at_or_before(&m.key, a, delimiter)),
        prefix,
        delimiter,
        max,
    )
}

/// A page of the keys of `bucket` under `prefix` (see [`page`]).
async fn listed(
    endpoint: &Endpoint,
    bucket: &str,
    prefix: &str,
    delimiter: Option<&str>,
    after: Option<&str>,
    max: usize,
) -> S3Result<Page<ObjectMeta>> {
    let (bucket, listed_prefix) = (bucket.to_owned(), prefix.to_owned());
    let all = endpoint
        .blocking(move |s| s.list(&bucket, &listed_prefix))
        .await?;
    Ok(object_page(all, prefix, delimiter, after, max))
}

fn encode_token(key: &str) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(key)
}

fn decode_token(token: &str) -> S3Result<String> {
    use base64::Engine as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(token)
        .ok()
        .and_then(|b| String::from_utf8(b).ok())
        .ok_or_else(|| {
            error(
                S3ErrorCode::InvalidArgument,
                "The continuation token provided is incorrect",
            )
        })
}

pub(super) async fn list_objects_v2(
    endpoint: &Endpoint,
    req: S3Request<ListObjectsV2Input>,
) -> S3Result<S3Response<ListObjectsV2Output>> {
    let input = req.input;
    let prefix = input.prefix.clone().unwrap_or_default();
    let max = page_size(input.max_keys);
    let after = match &input.continuation_token {
        Some(token) => Some(decode_token(token)?),
        None => input.start_after.clone(),
    };
    let page = listed(
        endpoint,
        &input.bucket,
        &prefix,
        input.delimiter.as_deref(),
        after.as_deref(),
        max,
    )
    .await?;
    let url = input
        .encoding_type
        .as_ref()
        .is_some_and(|e| e.as_str() == EncodingType::URL);
    let enc = |s: String| if url { encoding::encode_key(&s) } else { s };
    let key_count = (page.entries.len() + page.prefixes.len()) as i32;
    let next = page.next(str::to_owned, |m| m.key.clone());
    Ok(S3Response::new(ListObjectsV2Output {
        name: Some(input.bucket),
        prefix: Some(enc(prefix)),
        delimiter: input.delimiter.map(enc),
        max_keys: Some(max as i32),
        key_count: Some(key_count),
        continuation_token: input.continuation_token,
        start_after: input.start_after.map(enc),
        is_truncated: Some(page.truncated),
        next_continuation_token: next.as_deref().map(encode_token),
        encoding_type: input.encoding_type,
        contents: Some(
            page.entries
                .into_iter()
                .map(|m| Object {
                    e_tag: Some(etag(&m)),
                    last_modified: Some(timestamp(m.modified)),
                    size: Some(m.size as i64),
                    storage_class: Some(ObjectStorageClass::from(
                        m.storage_class()
                            .unwrap_or(STANDARD_STORAGE_CLASS)
                            .to_owned(),
                    )),
                    owner: input.fetch_owner.unwrap_or(false).then(owner),
                    key: Some(enc(m.key)),
                    ..Default::default()
                })
                .collect(),
        ),
        common_prefixes: Some(
            page.prefixes
                .into_iter()
                .map(|p| CommonPrefix {
                    prefix: Some(enc(p)),
                })
                .collect(),
        ),
        ..Default::default()
    }))
}

pub(super) async fn list_objects(
    endpoint: &Endpoint,
    req: S3Request<ListObjectsInput>,
) -> S3Result<S3Response<ListObjectsOutput>> {
    // Version 1 of the listing (rclone's default): a marker instead of a token.
    let v2 = req.map_input(|i| ListObjectsV2Input {
        bucket: i.bucket,
        delimiter: i.delimiter,
        encoding_type: i.encoding_type,
        max_keys: i.max_keys,
        prefix: i.prefix,
        start_after: i.marker,
        ..Default::default()
    });
    let out = list_objects_v2(endpoint, v2).await?.output;
    let next_marker = out
        .next_continuation_token
        .as_deref()
        .map(decode_token)
        .transpose()?;
    Ok(S3Response::new(ListObjectsOutput {
        name: out.name,
        prefix: out.prefix,
        marker: out.start_after,
        max_keys: out.max_keys,
        is_truncated: out.is_truncated,
        contents: out.contents,
        common_prefixes: out.common_prefixes,
        delimiter: out.delimiter,
        next_marker,
        encoding_type: out.encoding_type,
        ..Default::default()
    }))
}

/// A page of versions (see [`page`]) after `key_marker`: after all of that key's versions,
/// or after its version `version_marker`.
fn version_page(
    all: Vec<VersionEntry>,
    prefix: &str,
    delimiter: Option<&str>,
    key_marker: Option<&str>,
    version_marker: Option<&str>,
    max: usize,
) -> Page<VersionEntry> {
    let version_marker = version_marker.filter(|v| !v.is_empty());
    // Within the marker's key: whether its version marker has been passed.
    let mut past_version = false;
    let skip = |entry: &VersionEntry| {
        let Some(marker) = key_marker else {
            return false;
        };
        let key = entry.meta.key.as_str();
        match version_marker {
            Some(v) if key == marker => {
                let skipped = !past_version;
                past_version |= entry.meta.version_name() == v;
                skipped
            }
            _ => at_or_before(key, marker, delimiter),
        }
    };
    page(all, |e| e.meta.key.as_str(), skip, prefix, delimiter, max)
}

pub(super) async fn list_object_versions(
    endpoint: &Endpoint,
    req: S3Request<ListObjectVersionsInput>,
) -> S3Result<S3Response<ListObjectVersionsOutput>> {
    let input = req.input;
    let prefix = input.prefix.clone().unwrap_or_default();
    let max = page_size(input.max_keys);
    let (bucket, listed_prefix) = (input.bucket.clone(), prefix.clone());
    let all = endpoint
        .blocking(move |s| s.list_versions(&bucket, &listed_prefix))
        .await?;
    let key_marker = input.key_marker.as_deref().filter(|k| !k.is_empty());
    let page = version_page(
        all,
        &prefix,
        input.delimiter.as_deref(),
        key_marker,
        input.version_id_marker.as_deref(),
        max,
    );
    let url = input
        .encoding_type
        .as_ref()
        .is_some_and(|e| e.as_str() == EncodingType::URL);
    let enc = |s: String| if url { encoding::encode_key(&s) } else { s };
    let (mut versions, mut markers) = (Vec::new(), Vec::new());
    let (next_key, next_version) = page
        .next(
            |p| (p.to_owned(), None),
            |e| (e.meta.key.clone(), Some(e.meta.version_name().to_owned())),
        )
        .unzip();
    for VersionEntry { meta, is_latest } in page.entries {
        // A bucket that never had versioning lists each object as its `null` version.
        let version_id = Some(meta.version_name().to_owned());
        if meta.delete_marker {
            markers.push(DeleteMarkerEntry {
                is_latest: Some(is_latest),
                key: Some(enc(meta.key)),
                last_modified: Some(timestamp(meta.modified)),
                owner: Some(owner()),
                version_id,
            });
        } else {
            versions.push(ObjectVersion {
                e_tag: Some(etag(&meta)),
                is_latest: Some(is_latest),
                last_modified: Some(timestamp(meta.modified)),
                size: Some(meta.size as i64),
                storage_class: Some(ObjectVersionStorageClass::from(
                    meta.storage_class()
                        .unwrap_or(STANDARD_STORAGE_CLASS)
                        .to_owned(),
                )),
                version_id,
                owner: Some(owner()),
                key: Some(enc(meta.key)),
                ..Default::default()
            });
        }
    }
    Ok(S3Response::new(ListObjectVersionsOutput {
        name: Some(input.bucket),
        prefix: Some(enc(prefix)),
        delimiter: input.delimiter.map(enc),
        max_keys: Some(max as i32),
        key_marker: input.key_marker.map(enc),
        version_id_marker: input.version_id_marker,
        is_truncated: Some(page.truncated),
        next_key_marker: next_key.map(enc),
        next_version_id_marker: next_version.flatten(),
        encoding_type: input.encoding_type,
        versions: Some(versions),
        delete_markers: Some(markers),
        common_prefixes: Some(
            page.prefixes
                .into_iter()
                .map(|p| CommonPrefix {
                    prefix: Some(enc(p)),
                })
                .collect(),
        ),
        ..Default::default()
    }))
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::store::SseState;

    fn meta(key: &str) -> ObjectMeta {
        ObjectMeta {
            bucket: "b".into(),
            key: key.into(),
            size: 0,
            etag: String::new(),
            content_type: None,
            metadata: BTreeMap::new(),
            tags: BTreeMap::new(),
            created: 0,
            modified: 0,
            data_id: "x".into(),
            segment_size: 0,
            sse: SseState::None,
            headers: BTreeMap::new(),
            md5: None,
            parts: Vec::new(),
            version_id: None,
            versioned: 0,
            delete_marker: false,
            checksum: None,
        }
    }

    fn keys(p: &Page<ObjectMeta>) -> (Vec<&str>, Vec<&str>) {
        (
            p.entries.iter().map(|m| m.key.as_str()).collect(),
            p.prefixes.iter().map(String::as_str).collect(),
        )
    }

    fn next(p: &Page<ObjectMeta>) -> Option<String> {
        p.next(str::to_owned, |m| m.key.clone())
    }

    #[test]
    fn listing_pages_group_by_delimiter_and_resume_after_a_prefix() {
        let all: Vec<ObjectMeta> = ["a/1", "a/2", "b", "c/1", "c/d/2", "d"]
            .into_iter()
            .map(meta)
            .collect();
        let p = object_page(all.clone(), "", Some("/"), None, 2);
        assert_eq!(keys(&p), (vec!["b"], vec!["a/"]));
        assert!(p.truncated);
        let p = object_page(all.clone(), "", Some("/"), None, 3);
        assert_eq!(keys(&p), (vec!["b"], vec!["a/", "c/"]));
        assert_eq!(next(&p).as_deref(), Some("c/"));
        let p = object_page(all.clone(), "", Some("/"), Some("c/"), 10);
        assert_eq!(keys(&p), (vec!["d"], vec![]));
        assert!(!p.truncated && next(&p).is_none());
        let p = object_page(all.clone(), "c/", Some("/"), None, 10);
        assert_eq!(keys(&p), (vec!["c/1"], vec!["c/d/"]));
        let p = object_page(all, "", None, Some("b"), 2);
        assert_eq!(keys(&p), (vec!["c/1", "c/d/2"], vec![]));
        assert_eq!(next(&p).as_deref(), Some("c/d/2"));
    }
}
