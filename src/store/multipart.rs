//! Multipart uploads in the local store, as S3 has them: an upload is created with the
//! object's encryption, content headers, metadata, tags and checksum algorithm and type;
//! parts (1 to 10,000) are written one by one, each a data file of its own sealed with the
//! upload's data key(s) and checksummed; completing the upload commits an object whose
//! data is those parts, with S3's ETag (the MD5 of the parts' MD5s, `-N`) and a checksum
//! made of the parts'.
//!
//! Layout, beside the bucket's objects:
//!
//! ```text
//! buckets/NAME/uploads/ID/upload.meta     the object to be (ObjectMeta, authenticated)
//! buckets/NAME/uploads/ID/NNNNN.part      one part: number, size, MD5, checksum, data id
//! buckets/NAME/uploads/ID/.lock           held while a part is replaced or the upload ends
//! buckets/NAME/data/AB/ID                 the parts' data, immutable, as for objects
//! ```
//!
//! Every record is written atomically and authenticated like object metadata; a part's
//! data file is durable before its record names it. The object's metadata file is the
//! commit point of a completion: a crash before it leaves the upload as it was, a crash
//! after it leaves an upload folder whose parts the object owns (an abort then deletes
//! only the files the object does not use). Must not commit an object but through the
//! write path's commit. Part copies are in copy.rs.

use std::fs::{self, File};
use std::io::{self, Read};
use std::path::PathBuf;

use md5::{Digest, Md5};
use serde::{Deserialize, Serialize};

use super::body::HashingReader;
use super::checksum::{Checksum, ChecksumType, ChecksumValue, PartChecksum};
use super::error::{Result, StoreError, io_err};
use super::sealing::{part_aad, segment_size};
use super::write::Expect;
use super::{
    CompletedPart, ObjectMeta, PartDigests, PutOptions, Store, WriteCondition, create_private_dir,
};
use crate::crypto::CustomerKey;
use crate::durable::{self, AtomicFile};
use crate::encoding::{hex, unhex};

/// S3's limits: part numbers 1 to 10,000; every part but the last at least 5 MiB.
pub const MAX_PART_NUMBER: u32 = 10_000;
pub const MIN_PART_SIZE: u64 = 5 * 1024 * 1024;

/// An upload in progress.
#[derive(Debug, Clone)]
pub struct Upload {
    pub id: String,
    pub bucket: String,
    pub key: String,
    /// Milliseconds since the Unix epoch.
    pub initiated: i64,
    /// The object to be: its encryption (sealed data keys), content headers, metadata
    /// and tags.
    pub object: ObjectMeta,
}

/// One uploaded part.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Part {
    pub number: u32,
    pub size: u64,
    /// Hex MD5 of the part's plaintext: its ETag.
    pub etag: String,
    pub modified: i64,
    data_id: String,
    /// Of the upload's checksum algorithm, or, for an upload without one, of the
    /// algorithm the part's request asked for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checksum: Option<ChecksumValue>,
}

impl Store {
    fn uploads_dir(&self, bucket: &str) -> PathBuf {
        self.bucket_dir(bucket).join("uploads")
    }

    fn upload_dir(&self, bucket: &str, id: &str) -> Result<PathBuf> {
        // The id becomes a path: only ids this store makes are taken.
        if id.len() != 32 || !id.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(StoreError::NoSuchUpload(id.to_owned()));
        }
        Ok(self.uploads_dir(bucket).join(id))
    }

    /// Starts a multipart upload; returns it. Its encryption (the request's, or the
    /// bucket's default) is fixed now: the data key is made and sealed here.
    pub fn create_upload(&self, bucket: &str, key: &str, options: PutOptions) -> Result<Upload> {
        let (encryption, _) = self.new_object_encryption(bucket, key, &options)?;
        let checksum = match (&options.checksum, options.checksum_type) {
            (None, _) => None,
            (Some(asked), kind) => {
                let algorithm = asked.algorithm;
                let checksum_type = kind.unwrap_or(algorithm.default_multipart_type());
                if !algorithm.allows(checksum_type) {
                    return Err(StoreError::ChecksumTypeNotAllowed {
                        algorithm,
                        checksum_type,
                    });
                }
                Some(Checksum {
                    algorithm,
                    checksum_type,
                    value: Vec::new(),
                    parts: Vec::new(),
                })
            }
        };
        let (sse, keys) = self.new_data_keys(bucket, key, &encryption)?;
        let id = uuid::Uuid::new_v4().simple().to_string();
        let headers = options.kept_headers();
        let now = crate::time::now_ms();
        let object = ObjectMeta {
            bucket: bucket.to_owned(),
            key: key.to_owned(),
            size: 0,
            etag: String::new(),
            content_type: options.content_type,
            metadata: options.metadata,
            tags: options.tags,
            created: now,
            modified: now,
            data_id: id.clone(),
            segment_size: segment_size(&keys),
            sse,
            headers,
            md5: None,
            parts: Vec::new(),
            version_id: None,
            versioned: 0,
            delete_marker: false,
            checksum,
        };
        create_private_dir(&self.uploads_dir(bucket))?;
        let dir = self.upload_dir(bucket, &id)?;
        create_private_dir(&dir)?;
        let path = dir.join("upload.meta");
        durable::write_file(&self.tmp, &path, &self.mac.encode(&object)).map_err(io_err(&path))?;
        durable::sync_dir(&self.uploads_dir(bucket)).map_err(io_err(&dir))?;
        Ok(Upload {
            id,
            bucket: bucket.to_owned(),
            key: key.to_owned(),
            initiated: now,
            object,
        })
    }

    /// An upload in progress.
    pub fn upload(&self, bucket: &str, id: &str) -> Result<Upload> {
        self.bucket(bucket)?;
        let path = self.upload_dir(bucket, id)?.join("upload.meta");
        let bytes = match fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(StoreError::NoSuchUpload(id.to_owned()));
            }
            Err(e) => return Err(io_err(&path)(e)),
        };
        let object: ObjectMeta = self.decode_meta(&path, &bytes)?;
        if object.bucket != bucket || object.data_id != id {
            return Err(StoreError::Corrupt {
                object: path.display().to_string(),
                message: "the upload's record belongs to another upload".into(),
            });
        }
        Ok(Upload {
            id: id.to_owned(),
            bucket: bucket.to_owned(),
            key: object.key.clone(),
            initiated: object.created,
            object,
        })
    }

    /// An upload in progress, as an S3 request names it: with its key too (an id under
    /// another key is no such upload).
    pub fn upload_of(&self, bucket: &str, key: &str, id: &str) -> Result<Upload> {
        let upload = self.upload(bucket, id)?;
        if upload.key != key {
            return Err(StoreError::NoSuchUpload(id.to_owned()));
        }
        Ok(upload)
    }

    /// The uploads in progress in a bucket, by key then time.
    pub fn list_uploads(&self, bucket: &str) -> Result<Vec<Upload>> {
        self.bucket(bucket)?;
        let dir = self.uploads_dir(bucket);
        let entries = match fs::read_dir(&dir) {
            Ok(e) => e,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(io_err(&dir)(e)),
        };
        let mut uploads = Vec::new();
        for entry in entries {
            let name = entry.map_err(io_err(&dir))?.file_name();
            let Some(id) = name.to_str() else { continue };
            match self.upload(bucket, id) {
                Ok(u) => uploads.push(u),
                // Ended while listing, or not an upload folder.
                Err(StoreError::NoSuchUpload(_)) => {}
                Err(e) => return Err(e),
            }
        }
        uploads.sort_by(|a, b| (&a.key, a.initiated).cmp(&(&b.key, b.initiated)));
        Ok(uploads)
    }

    fn lock_upload(&self, dir: &std::path::Path) -> Result<File> {
        let path = dir.join(".lock");
        let file = fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(|e| match e.kind() {
                io::ErrorKind::NotFound => StoreError::NoSuchUpload(
                    dir.file_name()
                        .map(|n| n.to_string_lossy().into_owned())
                        .unwrap_or_default(),
                ),
                _ => io_err(&path)(e),
            })?;
        file.lock().map_err(io_err(&path))?;
        Ok(file)
    }

    /// Writes part `number` of an upload from `body`, sealed with the upload's data
    /// key(s); replaces an earlier part with that number. SSE-C uploads need their key.
    /// The part's checksum is of the upload's algorithm (a `checksum` of another is
    /// refused), or of `checksum`'s for an upload without one; a body that is not the one
    /// `checksum` expects leaves the upload as it was.
    pub fn upload_part(
        &self,
        bucket: &str,
        id: &str,
        number: u32,
        sse_c: Option<&CustomerKey>,
        digests: PartDigests<'_>,
        body: &mut dyn Read,
    ) -> Result<Part> {
        let checksum = digests.checksum;
        if !(1..=MAX_PART_NUMBER).contains(&number) {
            return Err(StoreError::InvalidPartNumber { number });
        }
        let upload = self.upload(bucket, id)?;
        let keys = self.data_keys(&upload.object, sse_c)?;
        let algorithm = match (&upload.object.checksum, checksum) {
            (Some(theirs), Some(asked)) if theirs.algorithm != asked.algorithm => {
                return Err(StoreError::ChecksumAlgorithmMismatch {
                    expected: theirs.algorithm,
                    actual: asked.algorithm,
                });
            }
            (Some(theirs), _) => Some(theirs.algorithm),
            (None, asked) => asked.map(|a| a.algorithm),
        };
        let mut hashing = HashingReader::with_checksum(body, algorithm);
        let file = self.seal_data(
            bucket,
            &upload.key,
            &keys,
            &part_aad(bucket, &upload.key, number),
            &mut hashing,
        )?;
        let hashed = hashing.finish();
        let computed = algorithm
            .zip(hashed.checksum)
            .map(|(algorithm, value)| ChecksumValue { algorithm, value });
        if let (Some(asked), Some(computed)) = (checksum, &computed)
            && !asked.expected.holds(&computed.value)
        {
            return Err(StoreError::BadChecksum {
                bucket: bucket.to_owned(),
                key: upload.key,
                algorithm: asked.algorithm,
            });
        }
        // Checked before the part is recorded: a part refused leaves the one it would have
        // replaced as it was.
        if let Some(expected) = digests.content_md5
            && !expected.eq_ignore_ascii_case(&hashed.md5)
        {
            return Err(StoreError::BadDigest {
                bucket: bucket.to_owned(),
                key: upload.key,
                expected: expected.to_owned(),
                actual: hashed.md5,
            });
        }
        let data_id = uuid::Uuid::new_v4().simple().to_string();
        self.commit_data(bucket, &data_id, file)?;
        let part = Part {
            number,
            size: hashed.size,
            etag: hashed.md5,
            modified: crate::time::now_ms(),
            data_id,
            checksum: computed,
        };
        let dir = self.upload_dir(bucket, id)?;
        let record = dir.join(format!("{number:05}.part"));
        let replaced = {
            let _lock = self.lock_upload(&dir)?;
            // Completed or aborted meanwhile: this part is nobody's.
            if !dir.join("upload.meta").exists() {
                let _ = fs::remove_file(self.data_path(bucket, &part.data_id));
                return Err(StoreError::NoSuchUpload(id.to_owned()));
            }
            let replaced = self.read_part(&record)?;
            let mut file = AtomicFile::create(&self.tmp).map_err(io_err(&self.tmp))?;
            io::Write::write_all(&mut file, &self.mac.encode(&part)).map_err(io_err(&self.tmp))?;
            file.commit(&record).map_err(io_err(&record))?;
            replaced
        };
        if let Some(old) = replaced {
            let _ = fs::remove_file(self.data_path(bucket, &old.data_id));
        }
        Ok(part)
    }

    fn commit_data(&self, bucket: &str, data_id: &str, file: AtomicFile) -> Result<()> {
        let path = self.data_path(bucket, data_id);
        create_private_dir(path.parent().expect("a data path has a folder"))?;
        file.commit(&path).map_err(io_err(&path))
    }

    fn read_part(&self, path: &std::path::Path) -> Result<Option<Part>> {
        match fs::read(path) {
            Ok(bytes) => Ok(Some(self.decode_meta(path, &bytes)?)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io_err(path)(e)),
        }
    }

    /// The parts of an upload, by number.
    pub fn list_parts(&self, bucket: &str, id: &str) -> Result<Vec<Part>> {
        self.upload(bucket, id)?;
        let dir = self.upload_dir(bucket, id)?;
        let mut parts = Vec::new();
        for entry in fs::read_dir(&dir).map_err(io_err(&dir))? {
            let path = entry.map_err(io_err(&dir))?.path();
            if path.extension().is_some_and(|e| e == "part")
                && let Some(part) = self.read_part(&path)?
            {
                parts.push(part);
            }
        }
        parts.sort_by_key(|p| p.number);
        Ok(parts)
    }

    /// Completes an upload with `parts` (number, ETag and perhaps checksum, ascending), as
    /// the object at its key, if `condition` holds then. Parts not listed are deleted. An
    /// upload with composite checksums needs every part's checksum listed; `checksum`, when
    /// given, must be the object's.
    pub fn complete_upload(
        &self,
        bucket: &str,
        id: &str,
        parts: &[CompletedPart],
        checksum: Option<&ChecksumValue>,
        condition: WriteCondition,
    ) -> Result<ObjectMeta> {
        let upload = self.upload(bucket, id)?;
        let dir = self.upload_dir(bucket, id)?;
        let lock = self.lock_upload(&dir)?;
        let have = self.list_parts(bucket, id)?;
        if parts.is_empty() {
            return Err(StoreError::InvalidPart(
                "a completion lists at least one part".into(),
            ));
        }
        let wanted = upload.object.checksum.as_ref();
        let mut chosen = Vec::with_capacity(parts.len());
        for (i, listed) in parts.iter().enumerate() {
            let number = listed.number;
            if i > 0 && number <= parts[i - 1].number {
                return Err(StoreError::InvalidPartOrder);
            }
            let etag = listed.etag.trim_matches('"');
            let part = have
                .iter()
                .find(|p| p.number == number && p.etag == etag)
                .ok_or_else(|| {
                    StoreError::InvalidPart(format!(
                        "part {number} with ETag {etag} was not uploaded (or was replaced)"
                    ))
                })?;
            match (wanted, &listed.checksum) {
                (Some(w), Some(c)) if c.algorithm != w.algorithm => {
                    return Err(StoreError::ChecksumAlgorithmMismatch {
                        expected: w.algorithm,
                        actual: c.algorithm,
                    });
                }
                (Some(w), None) if w.checksum_type == ChecksumType::Composite => {
                    return Err(StoreError::PartChecksumMissing {
                        algorithm: w.algorithm,
                        number,
                    });
                }
                _ => {}
            }
            if let Some(c) = &listed.checksum
                && part.checksum.as_ref() != Some(c)
            {
                return Err(StoreError::InvalidPart(format!(
                    "part {number}'s {} is not the one listed",
                    c.algorithm
                )));
            }
            chosen.push(part.clone());
        }
        for part in &chosen[..chosen.len() - 1] {
            if part.size < MIN_PART_SIZE {
                return Err(StoreError::EntityTooSmall {
                    number: part.number,
                    size: part.size,
                });
            }
        }
        let object_checksum = match wanted {
            None => None,
            Some(w) => {
                let mut of_parts = Vec::with_capacity(chosen.len());
                for part in &chosen {
                    let value = part
                        .checksum
                        .as_ref()
                        .filter(|c| c.algorithm == w.algorithm)
                        .ok_or_else(|| StoreError::Corrupt {
                            object: format!("{bucket}/{}", upload.key),
                            message: format!("part {} has no {}", part.number, w.algorithm),
                        })?;
                    of_parts.push(PartChecksum {
                        number: part.number,
                        size: part.size,
                        value: value.value.clone(),
                    });
                }
                Some(Checksum::of_parts(w.algorithm, w.checksum_type, of_parts))
            }
        };
        if let (Some(given), Some(w)) = (checksum, wanted) {
            if given.algorithm != w.algorithm {
                return Err(StoreError::ChecksumAlgorithmMismatch {
                    expected: w.algorithm,
                    actual: given.algorithm,
                });
            }
            if object_checksum.as_ref().map(|c| &c.value) != Some(&given.value) {
                return Err(StoreError::BadChecksum {
                    bucket: bucket.to_owned(),
                    key: upload.key,
                    algorithm: given.algorithm,
                });
            }
        }
        let mut md5s = Md5::new();
        for part in &chosen {
            let raw = unhex(&part.etag).ok_or_else(|| StoreError::Corrupt {
                object: format!("{bucket}/{}", upload.key),
                message: format!("part {} has a malformed ETag", part.number),
            })?;
            md5s.update(&raw);
        }
        let now = crate::time::now_ms();
        let mut meta = ObjectMeta {
            size: chosen.iter().map(|p| p.size).sum(),
            etag: format!("{}-{}", hex(&md5s.finalize()), chosen.len()),
            created: now,
            modified: now,
            data_id: uuid::Uuid::new_v4().simple().to_string(),
            parts: chosen
                .iter()
                .map(|p| super::DataPart {
                    number: p.number,
                    data_id: p.data_id.clone(),
                    size: p.size,
                })
                .collect(),
            checksum: object_checksum,
            ..upload.object
        };
        let versioning = self.bucket(bucket)?.versioning;
        self.commit(&mut meta, None, Expect::from(&condition), versioning)?;
        self.remove_upload(bucket, &dir, &have, Some(&meta));
        drop(lock);
        Ok(meta)
    }

    /// Aborts an upload: its parts are deleted (those an object completed from it does not
    /// use, should a completion have been interrupted after its commit).
    pub fn abort_upload(&self, bucket: &str, id: &str) -> Result<()> {
        let upload = self.upload(bucket, id)?;
        let dir = self.upload_dir(bucket, id)?;
        let _lock = self.lock_upload(&dir)?;
        let parts = self.list_parts(bucket, id)?;
        let current = self.read_meta(bucket, &upload.key)?;
        self.remove_upload(bucket, &dir, &parts, current.as_ref());
        Ok(())
    }

    /// Removes an upload's folder, and the data files of its parts that `keep` does not use.
    fn remove_upload(
        &self,
        bucket: &str,
        dir: &std::path::Path,
        parts: &[Part],
        keep: Option<&ObjectMeta>,
    ) {
        // The record goes first: from then on the upload does not exist.
        let _ = fs::remove_file(dir.join("upload.meta"));
        let kept = keep.map(ObjectMeta::data_ids).unwrap_or_default();
        for part in parts {
            if !kept.contains(&part.data_id.as_str()) {
                let _ = fs::remove_file(self.data_path(bucket, &part.data_id));
            }
        }
        let _ = fs::remove_dir_all(dir);
    }
}
