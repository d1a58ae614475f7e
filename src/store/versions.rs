//! Object versions: their ids, the folder that keeps a key's noncurrent versions, and what
//! reads, lists and deletes them. A key's latest version (an object or a delete marker)
//! is its metadata file in `objects/`, as in a bucket without versioning; its older ones
//! are in `versions/AB/SHA256/ID.meta` (`null.meta` for the null version), each a
//! metadata file of the same format with its own data files and data key. The write
//! path's commit decides when a version becomes noncurrent or is replaced; this file
//! owns where noncurrent versions are and how one is found, promoted or dropped. Must not
//! write an object's data or a current version other than by promoting a noncurrent one.

use std::collections::HashSet;
use std::fs;
use std::io;
use std::path::PathBuf;

use sha2::{Digest, Sha256};

use super::bucket::{Versioning, check_bucket_name};
use super::error::{Result, StoreError, io_err};
use super::{ObjectMeta, SseState, Store, check_key, create_private_dir};
use crate::durable;
use crate::encoding::hex;

/// The name S3 gives the version of an object written without versioning.
pub const NULL_VERSION: &str = "null";

/// One entry of a version listing.
#[derive(Debug, Clone)]
pub struct VersionEntry {
    pub meta: ObjectMeta,
    /// Whether it is its key's latest version.
    pub is_latest: bool,
}

/// What a delete did: the version it removed or made, and whether that is a delete
/// marker (S3's `x-amz-version-id` and `x-amz-delete-marker`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Deleted {
    pub version_id: Option<String>,
    pub delete_marker: bool,
}

/// A new version id: 32 hex digits that sort in the order the versions were made.
pub(super) fn new_version_id() -> String {
    uuid::Uuid::now_v7().simple().to_string()
}

/// The id a version name stands for (`null`: none), refused unless it is one this store
/// makes, so that a name from a request can become a file name.
fn parse_version(name: &str) -> Result<Option<&str>> {
    if name == NULL_VERSION {
        return Ok(None);
    }
    if name.len() == 32
        && name
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    {
        Ok(Some(name))
    } else {
        Err(StoreError::InvalidVersionId {
            version: name.to_owned(),
        })
    }
}

/// A delete marker for `bucket`/`key`; the commit gives it its version.
pub(super) fn delete_marker(bucket: &str, key: &str) -> ObjectMeta {
    let now = crate::time::now_ms();
    ObjectMeta {
        bucket: bucket.to_owned(),
        key: key.to_owned(),
        size: 0,
        etag: String::new(),
        content_type: None,
        metadata: Default::default(),
        tags: Default::default(),
        created: now,
        modified: now,
        data_id: String::new(),
        segment_size: 0,
        sse: SseState::None,
        headers: Default::default(),
        md5: None,
        parts: Vec::new(),
        checksum: None,
        version_id: None,
        versioned: now,
        delete_marker: true,
    }
}

impl Store {
    /// The folder of a key's noncurrent versions.
    fn versions_dir(&self, bucket: &str, key: &str) -> PathBuf {
        let hash = hex(&Sha256::digest(key.as_bytes()));
        self.bucket_dir(bucket)
            .join("versions")
            .join(&hash[..2])
            .join(hash)
    }

    fn noncurrent_path(&self, bucket: &str, key: &str, id: Option<&str>) -> PathBuf {
        self.versions_dir(bucket, key)
            .join(format!("{}.meta", id.unwrap_or(NULL_VERSION)))
    }

    /// A key's noncurrent versions, newest first. A copy of the current version left by
    /// a commit that crashed before its rename is among them; callers skip it.
    pub(super) fn noncurrent(&self, bucket: &str, key: &str) -> Result<Vec<ObjectMeta>> {
        let dir = self.versions_dir(bucket, key);
        let entries = match fs::read_dir(&dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(io_err(&dir)(e)),
        };
        let mut out = Vec::new();
        for entry in entries {
            let path = entry.map_err(io_err(&dir))?.path();
            if let Some(meta) = self.read_version_file(bucket, key, &path)? {
                out.push(meta);
            }
        }
        out.sort_by(|a, b| {
            (b.version_time(), b.version_name()).cmp(&(a.version_time(), a.version_name()))
        });
        Ok(out)
    }

    fn read_version_file(
        &self,
        bucket: &str,
        key: &str,
        path: &std::path::Path,
    ) -> Result<Option<ObjectMeta>> {
        let bytes = match fs::read(path) {
            Ok(b) => b,
            // Removed or promoted meanwhile.
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(io_err(path)(e)),
        };
        let meta: ObjectMeta = self.decode_meta(path, &bytes)?;
        let name = path.file_stem().and_then(|s| s.to_str());
        if meta.bucket != bucket || meta.key != key || name != Some(meta.version_name()) {
            return Err(StoreError::Corrupt {
                object: path.display().to_string(),
                message: format!(
                    "it holds version {} of {}/{}: it was moved outside reseal",
                    meta.version_name(),
                    meta.bucket,
                    meta.key
                ),
            });
        }
        Ok(Some(meta))
    }

    /// Keeps `meta`, the current version a commit replaces, as a noncurrent version.
    /// Called under the bucket lock, before the new version is renamed in.
    pub(super) fn archive(&self, meta: &ObjectMeta) -> Result<()> {
        let dir = self.versions_dir(&meta.bucket, &meta.key);
        let shard = dir.parent().expect("a versions folder has a parent");
        create_private_dir(shard.parent().expect("a shard has a parent"))?;
        create_private_dir(shard)?;
        create_private_dir(&dir)?;
        let path = self.noncurrent_path(&meta.bucket, &meta.key, meta.version_id.as_deref());
        durable::write_file(&self.tmp, &path, &self.mac.encode(meta)).map_err(io_err(&path))
    }

    /// Removes a noncurrent version's metadata file; returns what it was. Called under the
    /// bucket lock.
    pub(super) fn remove_noncurrent(
        &self,
        bucket: &str,
        key: &str,
        id: Option<&str>,
    ) -> Result<Option<ObjectMeta>> {
        let path = self.noncurrent_path(bucket, key, id);
        let Some(meta) = self.read_version_file(bucket, key, &path)? else {
            return Ok(None);
        };
        match fs::remove_file(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(io_err(&path)(e)),
        }
        let dir = self.versions_dir(bucket, key);
        durable::sync_dir(&dir).map_err(io_err(&dir))?;
        Ok(Some(meta))
    }

    /// Writes a noncurrent version's metadata again (its tags changed). Called under the
    /// bucket lock.
    pub(super) fn rewrite_noncurrent(&self, meta: &ObjectMeta) -> Result<()> {
        let path = self.noncurrent_path(&meta.bucket, &meta.key, meta.version_id.as_deref());
        durable::write_file(&self.tmp, &path, &self.mac.encode(meta)).map_err(io_err(&path))
    }

    /// A version of an object by its name (an id, or `null`), current or not. A delete
    /// marker is refused ([`StoreError::DeleteMarker`], S3's 405).
    pub fn head_version(&self, bucket: &str, key: &str, version: &str) -> Result<ObjectMeta> {
        let meta = self.version(bucket, key, version)?;
        if meta.delete_marker {
            return Err(StoreError::DeleteMarker {
                bucket: bucket.to_owned(),
                key: key.to_owned(),
                version: version.to_owned(),
            });
        }
        Ok(meta)
    }

    /// A version by its name, delete markers included.
    pub(super) fn version(&self, bucket: &str, key: &str, version: &str) -> Result<ObjectMeta> {
        check_bucket_name(bucket).map_err(|_| StoreError::NoSuchBucket(bucket.to_owned()))?;
        check_key(key)?;
        let id = parse_version(version)?;
        let found = match self.read_meta(bucket, key)? {
            Some(current) if current.version_id.as_deref() == id => Some(current),
            _ => {
                let path = self.noncurrent_path(bucket, key, id);
                self.read_version_file(bucket, key, &path)?
            }
        };
        match found {
            Some(meta) => Ok(meta),
            None => {
                self.bucket(bucket)?;
                Err(StoreError::NoSuchVersion {
                    bucket: bucket.to_owned(),
                    key: key.to_owned(),
                    version: version.to_owned(),
                })
            }
        }
    }

    /// The version id S3 gives in its answers about `meta`: its id; `null` for the null
    /// version of a bucket with versioning enabled or suspended; none in a bucket that
    /// never had versioning.
    pub fn version_answer(&self, meta: &ObjectMeta) -> Result<Option<String>> {
        if let Some(id) = &meta.version_id {
            return Ok(Some(id.clone()));
        }
        let keeps = self.bucket(&meta.bucket)?.versioning.keeps_versions();
        Ok(keeps.then(|| NULL_VERSION.to_owned()))
    }

    /// The object a request names: its current version, or the version it asks for.
    pub fn find(&self, bucket: &str, key: &str, version: Option<&str>) -> Result<ObjectMeta> {
        match version {
            None => self.head(bucket, key),
            Some(v) => self.head_version(bucket, key, v),
        }
    }

    /// Every version of the keys that start with `prefix`, delete markers included: by
    /// key, and within a key the latest first, then the older ones newest first.
    pub fn list_versions(&self, bucket: &str, prefix: &str) -> Result<Vec<VersionEntry>> {
        let keeps = self.bucket(bucket)?.versioning.keeps_versions();
        let mut out = Vec::new();
        for current in self.latest_versions(bucket, prefix)? {
            let older = if keeps || current.version_id.is_some() {
                self.noncurrent(bucket, &current.key)?
            } else {
                Vec::new()
            };
            let id = current.version_id.clone();
            out.push(VersionEntry {
                meta: current,
                is_latest: true,
            });
            out.extend(
                older
                    .into_iter()
                    .filter(|v| v.version_id != id)
                    .map(|meta| VersionEntry {
                        meta,
                        is_latest: false,
                    }),
            );
        }
        Ok(out)
    }

    /// Removes one version for good (S3's DeleteObject with a version id). When it is the
    /// latest, the newest of the others becomes the latest. Deleting a version that is not
    /// there is not an error, as on S3.
    pub fn delete_version(&self, bucket: &str, key: &str, version: &str) -> Result<Deleted> {
        let info = self.bucket(bucket)?;
        check_key(key)?;
        let id = parse_version(version)?;
        let current_path = self.meta_path(bucket, key);
        let (removed, current) = {
            let _lock = self.lock_bucket(bucket)?;
            match self.read_meta(bucket, key)? {
                Some(current) if current.version_id.as_deref() == id => {
                    let older = self.noncurrent(bucket, key)?;
                    let next = older
                        .into_iter()
                        .find(|v| v.version_id != current.version_id);
                    match &next {
                        Some(next) => {
                            let from =
                                self.noncurrent_path(bucket, key, next.version_id.as_deref());
                            fs::rename(&from, &current_path).map_err(io_err(&from))?;
                        }
                        None => fs::remove_file(&current_path).map_err(io_err(&current_path))?,
                    }
                    let shard = current_path.parent().expect("a metadata path has a folder");
                    durable::sync_dir(shard).map_err(io_err(shard))?;
                    // A copy of this version left by a crashed commit goes with it.
                    self.remove_noncurrent(bucket, key, id)?;
                    (Some(current), next)
                }
                current => (self.remove_noncurrent(bucket, key, id)?, current),
            }
        };
        let delete_marker = removed.as_ref().is_some_and(|m| m.delete_marker);
        if let Some(removed) = removed {
            self.drop_data(bucket, key, &[removed], current.as_ref(), info.versioning);
        }
        Ok(Deleted {
            version_id: Some(version.to_owned()),
            delete_marker,
        })
    }

    /// Removes the data files of `dropped` versions that neither `current` (the key's
    /// latest version now) nor any of the key's older versions uses (a re-encryption by
    /// re-sealing shares its data file with the version it replaced). When the older
    /// versions cannot be read, nothing is removed.
    pub(super) fn drop_data(
        &self,
        bucket: &str,
        key: &str,
        dropped: &[ObjectMeta],
        current: Option<&ObjectMeta>,
        versioning: Versioning,
    ) {
        if dropped.iter().all(|d| d.data_ids().is_empty()) {
            return;
        }
        let mut kept: HashSet<String> = current
            .iter()
            .flat_map(|m| m.data_ids())
            .map(str::to_owned)
            .collect();
        if versioning.keeps_versions() {
            match self.noncurrent(bucket, key) {
                Ok(older) => {
                    kept.extend(older.iter().flat_map(|m| m.data_ids()).map(str::to_owned))
                }
                Err(_) => return,
            }
        }
        for id in dropped.iter().flat_map(|d| d.data_ids()) {
            if !kept.contains(id) {
                let _ = fs::remove_file(self.data_path(bucket, id));
            }
        }
    }
}
