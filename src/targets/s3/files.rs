//! Manifests and reports on S3: `s3://bucket/key` locations, downloads into a local
//! folder that the manifest readers then read as they read any file (so every check they
//! make, the MD5s of inventory data files among them, applies), listings that become a CSV
//! manifest or show an inventory configuration's date folders, and report uploads.
//!
//! These one-off requests do not go through [`super::s3::S3Target::call`], so the SDK
//! retries them itself ([`retrying`]): the client they are given has the SDK's retries
//! off, for the target's requests, which `call` retries under its pacer.

use std::fmt;
use std::io::Write;
use std::path::{Path, PathBuf};

use aws_sdk_s3::Client;
use aws_sdk_s3::config::http::HttpResponse;
use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_s3::primitives::ByteStream;
use tokio::io::AsyncWriteExt;

use crate::encoding::encode_key;
use crate::errors::chain;

/// Why a manifest, a listing or a report upload failed: what the user named does not work
/// (no such bucket or key, access denied, a prefix where an object is wanted), or the
/// network, the server or a local file failed. The message is one line, naming the
/// location.
#[derive(Debug, thiserror::Error)]
pub enum FilesError {
    #[error("{0}")]
    Input(String),
    #[error("{0}")]
    Failed(String),
}

impl FilesError {
    fn local(path: &Path, e: std::io::Error) -> FilesError {
        FilesError::Failed(format!("{}: {e}", path.display()))
    }

    /// S3's own code, when the server answered with one.
    pub fn is_not_found(&self) -> bool {
        matches!(self, FilesError::Input(m) if m.contains(": NoSuchKey:") || m.contains(": NotFound:"))
    }
}

/// `s3://bucket/key-or-prefix`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct S3Url {
    pub bucket: String,
    pub key: String,
}

impl S3Url {
    pub fn parse(s: &str) -> Result<S3Url, String> {
        let rest = s
            .strip_prefix("s3://")
            .ok_or_else(|| format!("{s:?} is not an s3://BUCKET/KEY location"))?;
        let (bucket, key) = rest.split_once('/').unwrap_or((rest, ""));
        if bucket.is_empty() {
            return Err(format!("{s:?} names no bucket"));
        }
        Ok(S3Url {
            bucket: bucket.to_owned(),
            key: key.to_owned(),
        })
    }
}

impl fmt::Display for S3Url {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "s3://{}/{}", self.bucket, self.key)
    }
}

/// A folder under the system's temporary folder, removed when dropped.
pub struct TempDir(PathBuf);

impl TempDir {
    pub fn new(what: &str) -> std::io::Result<TempDir> {
        let path =
            std::env::temp_dir().join(format!("reseal-{what}-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&path)?;
        Ok(TempDir(path))
    }

    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// An SDK error as a [`FilesError`]: an answer in the 4xx range is about what the user
/// named; anything else (5xx, no answer, a timeout) is the network's or the server's.
fn describe<E>(url: &str, e: SdkError<E, HttpResponse>) -> FilesError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    let status = e.raw_response().map(|r| r.status().as_u16());
    match e.as_service_error() {
        Some(service) if status.is_some_and(|s| (400..500).contains(&s)) => {
            FilesError::Input(format!(
                "{url}: {}: {}",
                service.code().unwrap_or("error"),
                service.message().unwrap_or("(no message)")
            ))
        }
        Some(service) => FilesError::Failed(format!(
            "{url}: {}: {}",
            service.code().unwrap_or("server error"),
            service.message().unwrap_or("(no message)")
        )),
        None => FilesError::Failed(format!("{url}: {}", chain(&e))),
    }
}

/// `client` with the SDK's standard retries (throttling, 5xx, lost connections; jittered
/// exponential backoff) for this module's requests. Without them one 503 SlowDown or one
/// dropped connection on a listing, a manifest download or a report upload ended the
/// whole command.
fn retrying(client: &Client) -> Client {
    let retry = aws_sdk_s3::config::retry::RetryConfig::standard()
        .with_max_attempts(super::S3Options::default().max_attempts)
        .with_initial_backoff(std::time::Duration::from_millis(100));
    Client::from_conf(client.config().to_builder().retry_config(retry).build())
}

/// Downloads one object into `path` (its folders made), streaming.
pub async fn download(client: &Client, from: &S3Url, path: &Path) -> Result<(), FilesError> {
    let out = retrying(client)
        .get_object()
        .bucket(&from.bucket)
        .key(&from.key)
        .send()
        .await
        .map_err(|e| describe(&from.to_string(), e))?;
    if let Some(parent) = path.parent() {
        tokio::fs::create_dir_all(parent)
            .await
            .map_err(|e| FilesError::local(parent, e))?;
    }
    let mut file = tokio::fs::File::create(path)
        .await
        .map_err(|e| FilesError::local(path, e))?;
    let mut body = out.body.into_async_read();
    tokio::io::copy(&mut body, &mut file)
        .await
        .map_err(|e| FilesError::Failed(format!("{from}: download cut short: {e}")))?;
    file.flush().await.map_err(|e| FilesError::local(path, e))?;
    Ok(())
}

/// Fetches a manifest named by an s3:// URL into `dir`, mirroring its key, and returns
/// the local path to read. An inventory `manifest.json` brings its `manifest.checksum`
/// and its data files (from the destination bucket it names) along.
pub async fn fetch_manifest(
    client: &Client,
    url: &S3Url,
    dir: &Path,
) -> Result<PathBuf, FilesError> {
    if url.key.is_empty() || url.key.ends_with('/') {
        return Err(FilesError::Input(format!(
            "{url}: names a prefix, not a manifest object"
        )));
    }
    let local = dir.join(&url.key);
    download(client, url, &local).await?;
    let text = std::fs::read(&local).map_err(|e| FilesError::local(&local, e))?;
    let first = text.iter().find(|b| !b.is_ascii_whitespace());
    if first != Some(&b'{') {
        return Ok(local);
    }
    #[derive(serde::Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Files {
        #[serde(default)]
        destination_bucket: Option<String>,
        #[serde(default)]
        files: Vec<FileKey>,
    }
    #[derive(serde::Deserialize)]
    struct FileKey {
        key: String,
    }
    // A manifest.json that does not parse is left to the inventory reader to explain.
    let Ok(parsed) = serde_json::from_slice::<Files>(&text) else {
        return Ok(local);
    };
    let checksum = S3Url {
        bucket: url.bucket.clone(),
        key: match url.key.rsplit_once('/') {
            Some((folder, _)) => format!("{folder}/manifest.checksum"),
            None => "manifest.checksum".into(),
        },
    };
    match download(client, &checksum, &dir.join(&checksum.key)).await {
        Ok(()) => {}
        Err(e) if e.is_not_found() => {}
        Err(e) => return Err(e),
    }
    let data_bucket = parsed
        .destination_bucket
        .as_deref()
        .map(|b| b.strip_prefix("arn:aws:s3:::").unwrap_or(b).to_owned())
        .unwrap_or_else(|| url.bucket.clone());
    for file in parsed.files {
        let key = file.key.trim_start_matches('/').to_owned();
        if key.split('/').any(|part| part == "..") {
            return Err(FilesError::Input(format!(
                "{url}: files[].key {key:?} climbs out of its folder"
            )));
        }
        let from = S3Url {
            bucket: data_bucket.clone(),
            key: key.clone(),
        };
        download(client, &from, &dir.join(&key)).await?;
    }
    Ok(local)
}

/// What a listing found.
#[derive(Debug, Default, Clone, Copy)]
pub struct ListingCounts {
    pub objects: u64,
    pub noncurrent_versions: u64,
    pub delete_markers: u64,
}

/// Lists `s3://bucket/prefix` into a CSV manifest at `path` (bucket, URL-encoded key and,
/// with `all_versions`, the current version's id). Noncurrent versions and delete markers
/// are counted, never listed.
pub async fn list_to_csv(
    client: &Client,
    url: &S3Url,
    all_versions: bool,
    path: &Path,
) -> Result<ListingCounts, FilesError> {
    let client = &retrying(client);
    let file = std::fs::File::create(path).map_err(|e| FilesError::local(path, e))?;
    let mut out = std::io::BufWriter::new(file);
    let mut counts = ListingCounts::default();
    let mut line = |key: &str, version: Option<&str>| -> Result<(), FilesError> {
        let r = match version {
            Some(v) => writeln!(out, "{},{},{}", url.bucket, encode_key(key), v),
            None => writeln!(out, "{},{}", url.bucket, encode_key(key)),
        };
        r.map_err(|e| FilesError::local(path, e))
    };
    let prefix = (!url.key.is_empty()).then(|| url.key.clone());
    if all_versions {
        let (mut key_marker, mut version_marker) = (None::<String>, None::<String>);
        loop {
            let page = client
                .list_object_versions()
                .bucket(&url.bucket)
                .set_prefix(prefix.clone())
                .set_key_marker(key_marker.clone())
                .set_version_id_marker(version_marker.clone())
                .send()
                .await
                .map_err(|e| describe(&url.to_string(), e))?;
            counts.delete_markers += page.delete_markers().len() as u64;
            for v in page.versions() {
                let Some(key) = v.key() else { continue };
                if v.is_latest() == Some(true) {
                    counts.objects += 1;
                    line(key, Some(v.version_id().unwrap_or("null")))?;
                } else {
                    counts.noncurrent_versions += 1;
                }
            }
            if page.is_truncated() != Some(true) {
                break;
            }
            key_marker = page.next_key_marker().map(str::to_owned);
            version_marker = page.next_version_id_marker().map(str::to_owned);
        }
    } else {
        let mut pages = client
            .list_objects_v2()
            .bucket(&url.bucket)
            .set_prefix(prefix)
            .into_paginator()
            .send();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| describe(&url.to_string(), e))?;
            for o in page.contents() {
                if let Some(key) = o.key() {
                    counts.objects += 1;
                    line(key, None)?;
                }
            }
        }
    }
    out.flush().map_err(|e| FilesError::local(path, e))?;
    Ok(counts)
}

/// One level of `s3://bucket/prefix/`, as a folder listing shows it: the names of the
/// folders (common prefixes, without their `/`) and of the objects directly in it.
pub async fn list_level(
    client: &Client,
    url: &S3Url,
) -> Result<(Vec<String>, Vec<String>), FilesError> {
    let prefix = match url.key.as_str() {
        "" => String::new(),
        k => format!("{}/", k.trim_end_matches('/')),
    };
    let (mut folders, mut objects) = (Vec::new(), Vec::new());
    let mut pages = retrying(client)
        .list_objects_v2()
        .bucket(&url.bucket)
        .prefix(&prefix)
        .delimiter("/")
        .into_paginator()
        .send();
    while let Some(page) = pages.next().await {
        let page = page.map_err(|e| describe(&url.to_string(), e))?;
        for p in page.common_prefixes() {
            if let Some(name) = p.prefix().and_then(|p| p.strip_prefix(&prefix)) {
                folders.push(name.trim_end_matches('/').to_owned());
            }
        }
        for o in page.contents() {
            if let Some(name) = o.key().and_then(|k| k.strip_prefix(&prefix)) {
                objects.push(name.to_owned());
            }
        }
    }
    Ok((folders, objects))
}

/// Uploads every file under `dir` to `to` (a prefix), keeping relative paths; files named
/// `manifest.json` go last.
pub async fn upload_dir(client: &Client, dir: &Path, to: &S3Url) -> Result<Vec<S3Url>, FilesError> {
    let mut files = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let entries = std::fs::read_dir(&d).map_err(|e| FilesError::local(&d, e))?;
        for entry in entries {
            let path = entry.map_err(|e| FilesError::local(&d, e))?.path();
            if path.is_dir() {
                stack.push(path);
            } else {
                files.push(path);
            }
        }
    }
    // A manifest.json last: a reader that finds it finds every file it names (a report's
    // results are uploaded before its manifest).
    files.sort_by_key(|p| {
        (
            p.file_name() == Some(std::ffi::OsStr::new("manifest.json")),
            p.clone(),
        )
    });
    let client = &retrying(client);
    let base = to.key.trim_end_matches('/');
    let mut uploaded = Vec::new();
    for path in files {
        let relative = path
            .strip_prefix(dir)
            .expect("listed under dir")
            .to_string_lossy()
            .replace('\\', "/");
        let dest = S3Url {
            bucket: to.bucket.clone(),
            key: if base.is_empty() {
                relative
            } else {
                format!("{base}/{relative}")
            },
        };
        let body = ByteStream::from_path(&path)
            .await
            .map_err(|e| FilesError::Failed(format!("{}: {e}", path.display())))?;
        client
            .put_object()
            .bucket(&dest.bucket)
            .key(&dest.key)
            .body(body)
            .send()
            .await
            .map_err(|e| describe(&dest.to_string(), e))?;
        uploaded.push(dest);
    }
    Ok(uploaded)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        let u = S3Url::parse("s3://b/some/key.csv").unwrap();
        assert_eq!((u.bucket.as_str(), u.key.as_str()), ("b", "some/key.csv"));
        assert_eq!(S3Url::parse("s3://b").unwrap().key, "");
        assert!(S3Url::parse("b/k").is_err());
        assert!(S3Url::parse("s3:///k").is_err());
    }
}
