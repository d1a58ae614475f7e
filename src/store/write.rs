//! The write path: an object written from a body, the commit that makes a new metadata
//! file the object's current version if the caller's condition still holds (and keeps or
//! drops the version it replaces, as the bucket's versioning says), deletes and tag
//! changes. Every write ends in `commit`, the one place that takes the bucket lock and
//! removes data files an object no longer uses. Must not read an object's plaintext
//! (copies, in copy.rs, read through the read path and write through this one).

use std::collections::BTreeMap;
use std::fs;
use std::io::{self, BufReader, BufWriter, Read, Seek, SeekFrom, Write};
use std::path::Path;

use super::body::{HashingReader, seal_body};
use super::bucket::Versioning;
use super::checksum::{Checksum, ChecksumType};
use super::error::{Result, StoreError, io_err};
use super::request::{Encryption, PutOptions, WriteCondition, etag_matches};
use super::sealing::{data_aad, segment_size};
use super::versions::{Deleted, delete_marker, new_version_id};
use super::{ObjectMeta, SseState, Store, check_key, create_private_dir};
use crate::crypto::{DataKey, Engine};
use crate::durable::{self, AtomicFile};

impl Store {
    /// Writes an object from `body`, encrypted as `options` says (or as the bucket's
    /// default), with the checksum it asks for. Nothing is visible until the whole object
    /// is durable, and nothing at all is written if the body is not the one its MD5 or
    /// checksum says.
    pub fn put(
        &self,
        bucket: &str,
        key: &str,
        body: impl Read,
        options: PutOptions,
    ) -> Result<ObjectMeta> {
        let (encryption, versioning) = self.new_object_encryption(bucket, key, &options)?;
        let data_id = uuid::Uuid::new_v4().simple().to_string();
        let mut hashing =
            HashingReader::with_checksum(body, options.checksum.as_ref().map(|c| c.algorithm));
        let (sse, segment_size, data_file) =
            self.write_data(bucket, key, &encryption, &mut hashing)?;
        let hashed = hashing.finish();
        let (size, etag) = (hashed.size, hashed.md5);
        if let Some(expected) = &options.content_md5
            && !expected.eq_ignore_ascii_case(&etag)
        {
            return Err(StoreError::BadDigest {
                bucket: bucket.to_owned(),
                key: key.to_owned(),
                expected: expected.clone(),
                actual: etag,
            });
        }
        let checksum = match (&options.checksum, hashed.checksum) {
            (Some(asked), Some(value)) => {
                if !asked.expected.holds(&value) {
                    return Err(StoreError::BadChecksum {
                        bucket: bucket.to_owned(),
                        key: key.to_owned(),
                        algorithm: asked.algorithm,
                    });
                }
                Some(Checksum {
                    algorithm: asked.algorithm,
                    checksum_type: ChecksumType::FullObject,
                    value,
                    parts: Vec::new(),
                })
            }
            _ => None,
        };
        let headers = options.kept_headers();
        let now = crate::time::now_ms();
        let mut meta = ObjectMeta {
            bucket: bucket.to_owned(),
            key: key.to_owned(),
            size,
            etag,
            content_type: options.content_type,
            metadata: options.metadata,
            tags: options.tags,
            created: now,
            modified: now,
            data_id,
            segment_size,
            sse,
            headers,
            md5: None,
            parts: Vec::new(),
            checksum,
            version_id: None,
            versioned: now,
            delete_marker: false,
        };
        self.commit(
            &mut meta,
            data_file,
            Expect::from(&options.condition),
            versioning,
        )?;
        Ok(meta)
    }

    /// The encryption a new object at `bucket`/`key` is written with (the request's, or
    /// the bucket's default), and the bucket's versioning. The bucket must exist, the key
    /// be valid, and the bucket allow that encryption.
    pub(super) fn new_object_encryption(
        &self,
        bucket: &str,
        key: &str,
        options: &PutOptions,
    ) -> Result<(Encryption, Versioning)> {
        let info = self.bucket(bucket)?;
        check_key(key)?;
        let encryption = options
            .encryption
            .clone()
            .unwrap_or_else(|| info.default_encryption.to_encryption());
        info.check_allowed(key, &encryption)?;
        Ok((encryption, info.versioning))
    }

    /// Writes `meta` (and its data file, when there is a new one) as the object's new
    /// current version, if `expect` holds at that moment. The bucket's `versioning` decides
    /// what becomes of the version it replaces: removed (no versioning, or a null version
    /// replacing the null version), or kept as a noncurrent version. `meta` gets its
    /// version id here.
    pub(super) fn commit(
        &self,
        meta: &mut ObjectMeta,
        data: Option<AtomicFile>,
        expect: Expect<'_>,
        versioning: Versioning,
    ) -> Result<()> {
        meta.version_id = (versioning == Versioning::Enabled).then(new_version_id);
        meta.versioned = crate::time::now_ms();
        let meta_path = self.meta_path(&meta.bucket, &meta.key);
        let shard = meta_path.parent().expect("a metadata path has a folder");
        create_private_dir(shard)?;
        let new_data = data.is_some();
        if let Some(data) = data {
            let data_path = self.data_path(&meta.bucket, &meta.data_id);
            create_private_dir(data_path.parent().expect("a data path has a folder"))?;
            data.commit(&data_path).map_err(io_err(&data_path))?;
        }
        let mut file = AtomicFile::create(&self.tmp).map_err(io_err(&self.tmp))?;
        file.write_all(&self.mac.encode(&*meta))
            .map_err(io_err(&self.tmp))?;
        // The lock covers only the check and the rename: the new metadata is made durable
        // before it is taken, and the rename after it is released (below), so that the
        // fsyncs of concurrent writers overlap instead of queueing behind the lock.
        file.sync().map_err(io_err(&self.tmp))?;
        let lock = self.lock_bucket(&meta.bucket)?;
        let refuse = |e: StoreError| {
            if new_data {
                let _ = fs::remove_file(self.data_path(&meta.bucket, &meta.data_id));
            }
            e
        };
        let previous = self.read_meta(&meta.bucket, &meta.key)?;
        let live = previous.as_ref().filter(|p| !p.delete_marker);
        expect.check(meta, live).map_err(refuse)?;
        // The versions this write replaces for good; a versioned bucket keeps the others.
        let mut dropped = Vec::new();
        if versioning.keeps_versions() {
            if let Some(previous) = previous {
                if previous.version_id.is_none() && meta.version_id.is_none() {
                    dropped.push(previous);
                } else {
                    self.archive(&previous).map_err(refuse)?;
                }
            }
            if meta.version_id.is_none() {
                dropped.extend(self.remove_noncurrent(&meta.bucket, &meta.key, None)?);
            }
        } else {
            dropped.extend(previous);
        }
        file.rename(&meta_path, || Ok(()))
            .map_err(io_err(&meta_path))?;
        drop(lock);
        // The write is done, and the replaced data files may go, only once the rename is
        // durable.
        durable::sync_dir(shard).map_err(io_err(shard))?;
        self.drop_data(&meta.bucket, &meta.key, &dropped, Some(meta), versioning);
        Ok(())
    }

    /// Writes a version's metadata again, the same version with other tags: the current
    /// one or an older one, if it is still `expected`.
    fn update_version(&self, meta: &ObjectMeta, expected: &ObjectMeta) -> Result<()> {
        let _lock = self.lock_bucket(&meta.bucket)?;
        let current = self.read_meta(&meta.bucket, &meta.key)?;
        match current {
            Some(current) if current.version_id == meta.version_id => {
                Expect::Same(expected).check(meta, Some(&current))?;
                let path = self.meta_path(&meta.bucket, &meta.key);
                durable::write_file(&self.tmp, &path, &self.mac.encode(meta)).map_err(io_err(&path))
            }
            _ => {
                let version = self.version(&meta.bucket, &meta.key, meta.version_name())?;
                Expect::Same(expected).check(meta, Some(&version))?;
                self.rewrite_noncurrent(meta)
            }
        }
    }

    /// Deletes an object as S3's DeleteObject without a version id does: without
    /// versioning, the object goes (and deleting one that is not there is not an error);
    /// with versioning, a delete marker becomes the key's latest version (the null version
    /// while versioning is suspended) and the object's versions stay.
    pub fn delete(&self, bucket: &str, key: &str) -> Result<Deleted> {
        let info = self.bucket(bucket)?;
        check_key(key)?;
        if info.versioning.keeps_versions() {
            let mut marker = delete_marker(bucket, key);
            self.commit(&mut marker, None, Expect::Nothing, info.versioning)?;
            return Ok(Deleted {
                version_id: Some(marker.version_name().to_owned()),
                delete_marker: true,
            });
        }
        let path = self.meta_path(bucket, key);
        let current = {
            let _lock = self.lock_bucket(bucket)?;
            let current = self.read_meta(bucket, key)?;
            match fs::remove_file(&path) {
                Ok(()) => {}
                // Deleting what is not there is not an error, as on S3.
                Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Deleted::default()),
                Err(e) => return Err(io_err(&path)(e)),
            }
            durable::sync_dir(path.parent().expect("a metadata path has a folder"))
                .map_err(io_err(&path))?;
            current
        };
        for id in current.iter().flat_map(|c| c.data_ids()) {
            let _ = fs::remove_file(self.data_path(bucket, id));
        }
        Ok(Deleted::default())
    }

    /// Sets the tags of an object's current version, or of the version named (no key is
    /// needed, as in S3; the data is not touched, and no new version is made).
    pub fn set_tags(
        &self,
        bucket: &str,
        key: &str,
        version: Option<&str>,
        tags: BTreeMap<String, String>,
    ) -> Result<ObjectMeta> {
        let current = self.find(bucket, key, version)?;
        let mut meta = current.clone();
        meta.tags = tags;
        meta.modified = crate::time::now_ms();
        self.update_version(&meta, &current)?;
        Ok(meta)
    }

    /// Seals `body` (plaintext) with `keys` (in sealing order; none: plaintext) into a new,
    /// uncommitted file.
    pub(super) fn seal_data(
        &self,
        bucket: &str,
        key: &str,
        keys: &[DataKey],
        aad: &[u8],
        body: &mut dyn Read,
    ) -> Result<AtomicFile> {
        let crypto_err = |source| StoreError::Crypto {
            bucket: bucket.to_owned(),
            key: key.to_owned(),
            source,
        };
        let mut file = AtomicFile::create(&self.tmp).map_err(io_err(&self.tmp))?;
        match keys {
            [] => {
                let mut out = BufWriter::with_capacity(1 << 20, file.file());
                io::copy(body, &mut out).map_err(io_err(Path::new("input")))?;
                out.flush().map_err(io_err(&self.tmp))?;
            }
            [dek] => seal_body(&Engine::new(dek), body, file.file(), aad).map_err(crypto_err)?,
            [inner, outer] => {
                // The inner layer goes to a temporary file, the outer layer seals that.
                let mut layer = AtomicFile::create(&self.tmp).map_err(io_err(&self.tmp))?;
                seal_body(&Engine::new(inner), body, layer.file(), aad).map_err(crypto_err)?;
                layer
                    .file()
                    .seek(SeekFrom::Start(0))
                    .map_err(io_err(&self.tmp))?;
                seal_body(
                    &Engine::new(outer),
                    &mut BufReader::with_capacity(1 << 20, layer.file()),
                    file.file(),
                    aad,
                )
                .map_err(crypto_err)?;
            }
            _ => unreachable!("an object has at most two layers"),
        }
        Ok(file)
    }

    /// Writes a new data file from `body` (plaintext), encrypted as asked; returns the
    /// object's encryption state, segment size and the uncommitted file.
    pub(super) fn write_data(
        &self,
        bucket: &str,
        key: &str,
        encryption: &Encryption,
        body: &mut dyn Read,
    ) -> Result<(SseState, u32, Option<AtomicFile>)> {
        let (sse, keys) = self.new_data_keys(bucket, key, encryption)?;
        let file = self.seal_data(bucket, key, &keys, &data_aad(bucket, key), body)?;
        Ok((sse, segment_size(&keys), Some(file)))
    }
}

/// What a commit must find in place of the object.
#[derive(Debug, Clone, Copy)]
pub(super) enum Expect<'a> {
    Nothing,
    /// The object as it was read (same data, same time, same encryption).
    Same(&'a ObjectMeta),
    /// An object with this ETag.
    ETag(&'a str),
    /// No object.
    Absent,
}

impl<'a> From<&'a WriteCondition> for Expect<'a> {
    fn from(condition: &'a WriteCondition) -> Self {
        match condition {
            WriteCondition::Always => Expect::Nothing,
            WriteCondition::IfMatch(etag) => Expect::ETag(etag),
            WriteCondition::IfAbsent => Expect::Absent,
        }
    }
}

impl Expect<'_> {
    pub(super) fn check(self, meta: &ObjectMeta, previous: Option<&ObjectMeta>) -> Result<()> {
        let failed = |expected: &str| StoreError::PreconditionFailed {
            bucket: meta.bucket.clone(),
            key: meta.key.clone(),
            expected: expected.to_owned(),
            actual: previous.map_or_else(|| "none (deleted)".into(), |p| p.etag.clone()),
        };
        match self {
            Expect::Nothing => Ok(()),
            Expect::Same(expected) => {
                let same = previous.is_some_and(|p| {
                    p.data_id == expected.data_id
                        && p.version_id == expected.version_id
                        && p.modified == expected.modified
                        && p.sse == expected.sse
                });
                if same {
                    Ok(())
                } else {
                    Err(failed(&expected.etag))
                }
            }
            Expect::ETag(_) if previous.is_none() => Err(StoreError::NoSuchKey {
                bucket: meta.bucket.clone(),
                key: meta.key.clone(),
            }),
            Expect::ETag(tag) => {
                if previous.is_some_and(|p| etag_matches(tag, &p.etag)) {
                    Ok(())
                } else {
                    Err(failed(tag))
                }
            }
            Expect::Absent if previous.is_some() => Err(failed("no object")),
            Expect::Absent => Ok(()),
        }
    }
}
