//! The local store: reseal's own object store on a filesystem, where reseal is the server
//! and does the server-side encryption itself with the [`crate::crypto`] engine.
//!
//! Layout of a store folder:
//!
//! ```text
//! reseal-store.json                      format version
//! keys/                                  root keyring, local KMS keys, audit log (keys.rs)
//! tmp/                                   temporary files of writes in progress
//! buckets/NAME/bucket.json               bucket settings (default encryption)
//! buckets/NAME/.lock                     held while a write checks and commits
//! buckets/NAME/objects/AB/SHA256.meta    one object's metadata (object.rs), by key hash
//! buckets/NAME/data/AB/ID                an object's data, immutable, sealed or plain
//! ```
//!
//! Object keys never become paths: a metadata file is named by the SHA-256 of the key,
//! so any key (1 to 1,024 bytes, `../` included) is safe. Writing the metadata file is the
//! commit point; data files are written first, under a fresh id, and never changed. Must
//! not touch jobs or S3; prints nothing.

mod body;
mod bucket;
mod error;
pub mod keys;
pub mod multipart;
pub mod object;
mod request;
mod sealing;

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::{self, BufReader, BufWriter, Read, Seek, SeekFrom, Write};
use std::ops::Range;
use std::path::{Path, PathBuf};

use md5::Digest;
use sha2::Sha256;

use crate::crypto::{self, CustomerKey, DataKey, Engine, MasterKey, Mode};
use crate::durable::{self, AtomicFile};
use crate::encoding::{hex, unhex};
use body::{HashingReader, LayeredReader, open_layers, piped, reader_error, seal_body};
use bucket::check_bucket_name;
pub use bucket::{BucketInfo, DefaultEncryption};
pub use error::StoreError;
use error::{Result, io_err};
use keys::KeyManager;
use object::MetaMacKey;
pub use object::{DataPart, ObjectMeta, SseState};
use request::etag_matches;
pub use request::{
    ByteRange, CopyRequest, Encryption, GetRequest, PutOptions, ReadConditions, Reencrypt,
    ReencryptMethod, WriteCondition,
};
use sealing::{data_aad, part_aad};

const STORE_FILE: &str = "reseal-store.json";
const FORMAT: u32 = 1;
const MAX_KEY_LEN: usize = 1024;

/// An open local store.
pub struct Store {
    root: PathBuf,
    tmp: PathBuf,
    keys: KeyManager,
    mac: MetaMacKey,
}

impl Store {
    /// Creates a store in `dir` (made when missing; it must not hold a store already),
    /// with its root key and default KMS key sealed under `master`.
    pub fn init(dir: &Path, master: MasterKey) -> Result<Store> {
        if dir.join(STORE_FILE).exists() {
            return Err(StoreError::AlreadyAStore(dir.to_path_buf()));
        }
        for sub in ["", "tmp", "buckets", "keys"] {
            create_private_dir(&dir.join(sub))?;
        }
        let tmp = dir.join("tmp");
        let mac = MetaMacKey::derive(&master);
        let keys = KeyManager::init(&dir.join("keys"), &tmp, master)?;
        let marker = serde_json::json!({ "format": FORMAT, "created": crate::time::now_ms() });
        durable::write_file(&tmp, &dir.join(STORE_FILE), marker.to_string().as_bytes())
            .map_err(io_err(&dir.join(STORE_FILE)))?;
        Ok(Store {
            root: dir.to_path_buf(),
            tmp,
            keys,
            mac,
        })
    }

    /// Opens the store in `dir`. A wrong master key is refused here.
    pub fn open(dir: &Path, master: MasterKey) -> Result<Store> {
        let marker = dir.join(STORE_FILE);
        let text = match fs::read_to_string(&marker) {
            Ok(t) => t,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(StoreError::NotAStore(dir.to_path_buf()));
            }
            Err(e) => return Err(io_err(&marker)(e)),
        };
        let format = serde_json::from_str::<serde_json::Value>(&text)
            .ok()
            .and_then(|v| v["format"].as_u64());
        if format != Some(u64::from(FORMAT)) {
            return Err(StoreError::Corrupt {
                object: marker.display().to_string(),
                message: format!("unknown store format {format:?}; this reseal reads {FORMAT}"),
            });
        }
        let tmp = dir.join("tmp");
        // A copy of a store (a backup, a checkout) may have lost the empty tmp/ folder.
        create_private_dir(&tmp)?;
        let mac = MetaMacKey::derive(&master);
        let keys = KeyManager::open(&dir.join("keys"), &tmp, master)?;
        Ok(Store {
            root: dir.to_path_buf(),
            tmp,
            keys,
            mac,
        })
    }

    pub fn keys(&self) -> &KeyManager {
        &self.keys
    }

    pub fn keys_mut(&mut self) -> &mut KeyManager {
        &mut self.keys
    }

    fn bucket_dir(&self, bucket: &str) -> PathBuf {
        self.root.join("buckets").join(bucket)
    }

    fn meta_path(&self, bucket: &str, key: &str) -> PathBuf {
        let hash = hex(&Sha256::digest(key.as_bytes()));
        self.bucket_dir(bucket)
            .join("objects")
            .join(&hash[..2])
            .join(format!("{hash}.meta"))
    }

    fn data_path(&self, bucket: &str, data_id: &str) -> PathBuf {
        self.bucket_dir(bucket)
            .join("data")
            .join(&data_id[..2])
            .join(data_id)
    }

    // ---- objects ----

    /// Reads and authenticates an object's metadata.
    pub fn head(&self, bucket: &str, key: &str) -> Result<ObjectMeta> {
        // The name check keeps any bucket name from becoming a path; the bucket's file is
        // read only to tell a missing bucket from a missing key (inspections are hot).
        check_bucket_name(bucket).map_err(|_| StoreError::NoSuchBucket(bucket.to_owned()))?;
        check_key(key)?;
        match self.read_meta(bucket, key)? {
            Some(meta) => Ok(meta),
            None => {
                self.bucket(bucket)?;
                Err(StoreError::NoSuchKey {
                    bucket: bucket.to_owned(),
                    key: key.to_owned(),
                })
            }
        }
    }

    fn read_meta(&self, bucket: &str, key: &str) -> Result<Option<ObjectMeta>> {
        let path = self.meta_path(bucket, key);
        let bytes = match fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(io_err(&path)(e)),
        };
        let meta: ObjectMeta = self.decode_meta(&path, &bytes)?;
        if meta.bucket != bucket || meta.key != key {
            return Err(StoreError::Corrupt {
                object: format!("{bucket}/{key}"),
                message: format!(
                    "its metadata file belongs to {}/{}: it was moved outside reseal",
                    meta.bucket, meta.key
                ),
            });
        }
        Ok(Some(meta))
    }

    fn decode_meta<T: serde::de::DeserializeOwned>(&self, path: &Path, bytes: &[u8]) -> Result<T> {
        self.mac
            .decode(bytes)
            .map_err(|message| StoreError::Corrupt {
                object: path.display().to_string(),
                message,
            })
    }

    /// Objects of a bucket whose keys start with `prefix`, in key order.
    pub fn list(&self, bucket: &str, prefix: &str) -> Result<Vec<ObjectMeta>> {
        self.bucket(bucket)?;
        let objects = self.bucket_dir(bucket).join("objects");
        let mut out = Vec::new();
        for shard in fs::read_dir(&objects).map_err(io_err(&objects))? {
            let shard = shard.map_err(io_err(&objects))?.path();
            for entry in fs::read_dir(&shard).map_err(io_err(&shard))? {
                let path = entry.map_err(io_err(&shard))?.path();
                if path.extension().is_none_or(|e| e != "meta") {
                    continue;
                }
                let bytes = match fs::read(&path) {
                    Ok(b) => b,
                    // Deleted while listing.
                    Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                    Err(e) => return Err(io_err(&path)(e)),
                };
                let meta: ObjectMeta = self.decode_meta(&path, &bytes)?;
                if meta.key.starts_with(prefix) {
                    out.push(meta);
                }
            }
        }
        out.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(out)
    }

    /// Writes an object from `body`, encrypted as `options` says (or as the bucket's
    /// default). Nothing is visible until the whole object is durable.
    pub fn put(
        &self,
        bucket: &str,
        key: &str,
        body: impl Read,
        options: PutOptions,
    ) -> Result<ObjectMeta> {
        let info = self.bucket(bucket)?;
        check_key(key)?;
        let encryption = options
            .encryption
            .clone()
            .unwrap_or_else(|| info.default_encryption.to_encryption());
        let data_id = uuid::Uuid::new_v4().simple().to_string();
        let mut hashing = HashingReader::new(body);
        let (sse, segment_size, data_file) =
            self.write_data(bucket, key, &data_id, &encryption, &mut hashing)?;
        let (size, etag) = hashing.finish();
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
        let now = crate::time::now_ms();
        let meta = ObjectMeta {
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
            headers: options.headers,
            md5: None,
            parts: Vec::new(),
        };
        let condition = match &options.condition {
            WriteCondition::Always => Expect::Nothing,
            WriteCondition::IfMatch(etag) => Expect::ETag(etag),
            WriteCondition::IfAbsent => Expect::Absent,
        };
        self.commit(&meta, data_file, condition)?;
        Ok(meta)
    }

    /// Copies an object (the plaintext, through the source's keys and the new object's)
    /// to `bucket`/`key`, which may be the source itself. The source is read as it is when
    /// the copy starts and must meet `request.source_conditions`.
    pub fn copy(
        &self,
        source: (&str, &str),
        bucket: &str,
        key: &str,
        request: CopyRequest<'_>,
    ) -> Result<ObjectMeta> {
        let get = GetRequest {
            range: None,
            sse_c: request.source_key,
            conditions: request.source_conditions,
        };
        self.bucket(bucket)?;
        check_key(key)?;
        piped(
            |out| self.get_object(source.0, source.1, &get, &mut |_, _| {}, out),
            |body| self.put(bucket, key, body, request.options),
        )
    }

    /// Writes `meta` (and its data file, when there is a new one) as the object's current
    /// state, if `expect` holds at that moment.
    fn commit(
        &self,
        meta: &ObjectMeta,
        data: Option<AtomicFile>,
        expect: Expect<'_>,
    ) -> Result<()> {
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
        file.write_all(&self.mac.encode(meta))
            .map_err(io_err(&self.tmp))?;
        // The lock covers only the check and the rename: the new metadata is made durable
        // before it is taken, and the rename after it is released (below), so that the
        // fsyncs of concurrent writers overlap instead of queueing behind the lock.
        file.sync().map_err(io_err(&self.tmp))?;
        let lock = self.lock_bucket(&meta.bucket)?;
        let previous = self.read_meta(&meta.bucket, &meta.key)?;
        if let Err(e) = expect.check(meta, previous.as_ref()) {
            drop(lock);
            if new_data {
                let _ = fs::remove_file(self.data_path(&meta.bucket, &meta.data_id));
            }
            return Err(e);
        }
        file.rename(&meta_path, || Ok(()))
            .map_err(io_err(&meta_path))?;
        drop(lock);
        // The write is done, and the previous data files may go, only once the rename is
        // durable.
        durable::sync_dir(shard).map_err(io_err(shard))?;
        if let Some(previous) = previous {
            let kept = meta.data_ids();
            for id in previous.data_ids() {
                if !kept.contains(&id) {
                    let _ = fs::remove_file(self.data_path(&previous.bucket, id));
                }
            }
        }
        Ok(())
    }

    pub fn delete(&self, bucket: &str, key: &str) -> Result<()> {
        let meta = self.head(bucket, key)?;
        let path = self.meta_path(bucket, key);
        let current = {
            let _lock = self.lock_bucket(bucket)?;
            // What is deleted is what is there now, which may be newer than `meta`.
            let current = self.read_meta(bucket, key)?.unwrap_or(meta);
            match fs::remove_file(&path) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
                Err(e) => return Err(io_err(&path)(e)),
            }
            durable::sync_dir(path.parent().expect("a metadata path has a folder"))
                .map_err(io_err(&path))?;
            current
        };
        for id in current.data_ids() {
            let _ = fs::remove_file(self.data_path(bucket, id));
        }
        Ok(())
    }

    /// Sets an object's tags (no key is needed, as in S3; the data is not touched).
    pub fn set_tags(
        &self,
        bucket: &str,
        key: &str,
        tags: BTreeMap<String, String>,
    ) -> Result<ObjectMeta> {
        let current = self.head(bucket, key)?;
        let mut meta = current.clone();
        meta.tags = tags;
        meta.modified = crate::time::now_ms();
        self.commit(&meta, None, Expect::Same(&current))?;
        Ok(meta)
    }

    /// Checks the SSE-C key a request gave for an object (as S3 does on HEAD too): an
    /// SSE-C object needs its key, and a key for another object is refused.
    pub fn check_customer_key(&self, meta: &ObjectMeta, given: Option<&CustomerKey>) -> Result<()> {
        match (&meta.sse, given) {
            (SseState::SseC { fingerprint, .. }, Some(key)) => {
                fingerprint
                    .verify(key)
                    .map_err(|_| StoreError::AccessDenied {
                        bucket: meta.bucket.clone(),
                        key: meta.key.clone(),
                    })
            }
            (SseState::SseC { .. }, None) => Err(StoreError::SseCKeyRequired {
                bucket: meta.bucket.clone(),
                key: meta.key.clone(),
            }),
            (_, Some(_)) => Err(StoreError::SseCKeyNotExpected {
                bucket: meta.bucket.clone(),
                key: meta.key.clone(),
            }),
            (_, None) => Ok(()),
        }
    }

    /// Reads an object (or `range` of it, end exclusive) into `out`. SSE-C objects need
    /// their key. Returns the object's metadata; nothing is written to `out` before the
    /// key is checked, and a range read opens only the segments it needs.
    pub fn get(
        &self,
        bucket: &str,
        key: &str,
        range: Option<Range<u64>>,
        sse_c: Option<&CustomerKey>,
        out: &mut dyn Write,
    ) -> Result<ObjectMeta> {
        let meta = self.head(bucket, key)?;
        let range = match range {
            Some(r) if r.start > r.end || r.end > meta.size => {
                return Err(StoreError::InvalidRange {
                    bucket: bucket.to_owned(),
                    key: key.to_owned(),
                    start: r.start,
                    end: r.end,
                    size: meta.size,
                });
            }
            Some(r) => r,
            None => 0..meta.size,
        };
        let layers = self.open_keys(&meta, sse_c)?;
        self.read_data(&meta, &layers, range, out)?;
        Ok(meta)
    }

    /// Reads an object as an S3 GET does: `request.conditions` are checked (412, 304),
    /// then the SSE-C key, then the range (416). `ready` is called with the metadata and
    /// the resolved range once every check has passed and before any byte is written to
    /// `out`, so that a server can send its response headers then.
    pub fn get_object(
        &self,
        bucket: &str,
        key: &str,
        request: &GetRequest<'_>,
        ready: &mut dyn FnMut(&ObjectMeta, Range<u64>),
        out: &mut dyn Write,
    ) -> Result<ObjectMeta> {
        let meta = self.head(bucket, key)?;
        request.conditions.check(&meta)?;
        let layers = self.open_keys(&meta, request.sse_c)?;
        let range = match request.range {
            None => 0..meta.size,
            Some(r) => r.resolve(meta.size).ok_or_else(|| {
                let (start, end) = match r {
                    ByteRange::From { first, last } => (first, last.unwrap_or(meta.size)),
                    ByteRange::Suffix(n) => (meta.size.saturating_sub(n), meta.size),
                };
                StoreError::InvalidRange {
                    bucket: bucket.to_owned(),
                    key: key.to_owned(),
                    start,
                    end,
                    size: meta.size,
                }
            })?,
        };
        ready(&meta, range.clone());
        self.read_data(&meta, &layers, range, out)?;
        Ok(meta)
    }

    /// The data files of an object with the plaintext bytes each holds and the
    /// associated data it was sealed with.
    fn pieces(&self, meta: &ObjectMeta) -> Vec<Piece> {
        let (bucket, key) = (meta.bucket.as_str(), meta.key.as_str());
        if meta.parts.is_empty() {
            return vec![Piece {
                path: self.data_path(bucket, &meta.data_id),
                size: meta.size,
                aad: data_aad(bucket, key),
            }];
        }
        meta.parts
            .iter()
            .map(|p| Piece {
                path: self.data_path(bucket, &p.data_id),
                size: p.size,
                aad: part_aad(bucket, key, p.number),
            })
            .collect()
    }

    /// Writes `range` of an object's plaintext to `out`, through its data files.
    fn read_data(
        &self,
        meta: &ObjectMeta,
        layers: &[Engine],
        range: Range<u64>,
        out: &mut dyn Write,
    ) -> Result<()> {
        let mut at = 0;
        for piece in self.pieces(meta) {
            let piece_range = at..at + piece.size;
            at += piece.size;
            let start = range.start.max(piece_range.start);
            let end = range.end.min(piece_range.end);
            if start >= end && !(piece.size == 0 && range.is_empty()) {
                continue;
            }
            self.read_piece(
                meta,
                layers,
                &piece,
                start - piece_range.start..end - piece_range.start,
                out,
            )?;
        }
        Ok(())
    }

    fn read_piece(
        &self,
        meta: &ObjectMeta,
        layers: &[Engine],
        piece: &Piece,
        range: Range<u64>,
        out: &mut dyn Write,
    ) -> Result<()> {
        let (bucket, key) = (meta.bucket.as_str(), meta.key.as_str());
        let path = &piece.path;
        let mut file = File::open(path).map_err(io_err(path))?;
        let crypto_err = |source| StoreError::Crypto {
            bucket: bucket.to_owned(),
            key: key.to_owned(),
            source,
        };
        match layers {
            [] => {
                file.seek(SeekFrom::Start(range.start))
                    .map_err(io_err(path))?;
                let copied = io::copy(&mut (&mut file).take(range.end - range.start), out)
                    .map_err(io_err(path))?;
                if copied != range.end - range.start {
                    return Err(StoreError::Corrupt {
                        object: format!("{bucket}/{key}"),
                        message: format!("its data file is shorter than its {} bytes", meta.size),
                    });
                }
            }
            [engine] if range == (0..piece.size) => {
                engine
                    .open_stream(BufReader::with_capacity(1 << 20, file), out, &piece.aad)
                    .map_err(crypto_err)?;
            }
            _ => {
                let sealed_len = file.metadata().map_err(io_err(path))?.len();
                // Chunks of a few MiB, so that whole-object reads of DSSE objects stay
                // within bounded memory too.
                let chunk = 4 << 20;
                let mut at = range.start;
                while at < range.end {
                    let end = (at + chunk).min(range.end);
                    let bytes = open_layers(layers, &mut file, sealed_len, &piece.aad, at..end)
                        .map_err(crypto_err)?;
                    out.write_all(&bytes).map_err(io_err(Path::new("output")))?;
                    at = end;
                }
            }
        }
        Ok(())
    }

    /// Re-encrypts one object in place: only its encryption changes; bytes, ETag,
    /// content type, metadata and tags stay. A multipart object's parts become one data
    /// file.
    pub fn reencrypt(
        &self,
        bucket: &str,
        key: &str,
        request: &Reencrypt<'_>,
    ) -> Result<(ObjectMeta, ReencryptMethod)> {
        let current = self.head(bucket, key)?;
        if let Some(expected) = request.if_match {
            let expected = expected.trim_matches('"');
            if expected != current.etag {
                return Err(StoreError::PreconditionFailed {
                    bucket: bucket.to_owned(),
                    key: key.to_owned(),
                    expected: expected.to_owned(),
                    actual: current.etag,
                });
            }
        }
        let now = crate::time::now_ms();
        if request.fast_path
            && let Some(sse) = self.reseal(&current, &request.to, request.source_key)?
        {
            let meta = ObjectMeta {
                sse,
                modified: now,
                ..current.clone()
            };
            self.commit(&meta, None, Expect::Same(&current))?;
            return Ok((meta, ReencryptMethod::Reseal));
        }

        let layers = self.open_keys(&current, request.source_key)?;
        let data_id = uuid::Uuid::new_v4().simple().to_string();
        let crypto_err = |source| StoreError::Crypto {
            bucket: bucket.to_owned(),
            key: key.to_owned(),
            source,
        };
        let ((sse, segment_size, data_file), (size, md5)) = if current.parts.is_empty() {
            let path = self.data_path(bucket, &current.data_id);
            let mut source = File::open(&path).map_err(io_err(&path))?;
            let sealed_len = source.metadata().map_err(io_err(&path))?.len();
            let aad = data_aad(bucket, key);
            // Plaintext flows from the old layers into the new ones in bounded chunks;
            // objects larger than memory stream.
            let mut reader =
                LayeredReader::new(&layers, &mut source, sealed_len, &aad, current.size);
            let mut hashing = HashingReader::new(&mut reader);
            let written = self.write_data(bucket, key, &data_id, &request.to, &mut hashing);
            if let Some(e) = reader_error(&mut hashing) {
                return Err(crypto_err(e));
            }
            let written = written?;
            (written, hashing.finish())
        } else {
            // Several data files: through a pipe from a reading thread.
            piped(
                |out| {
                    self.read_data(&current, &layers, 0..current.size, out)?;
                    Ok(current.clone())
                },
                |body| {
                    let mut hashing = HashingReader::new(body);
                    let written =
                        self.write_data(bucket, key, &data_id, &request.to, &mut hashing)?;
                    Ok((written, hashing.finish()))
                },
            )?
        };
        let known_md5 = current.plaintext_md5();
        if size != current.size || known_md5.is_some_and(|m| m != md5) {
            return Err(StoreError::Corrupt {
                object: format!("{bucket}/{key}"),
                message: format!(
                    "its data read back as {size} bytes with MD5 {md5}, not the {} bytes with ETag {} it was written with",
                    current.size, current.etag
                ),
            });
        }
        let meta = ObjectMeta {
            data_id,
            segment_size,
            sse,
            modified: now,
            md5: (md5 != current.etag).then_some(md5),
            parts: Vec::new(),
            ..current.clone()
        };
        self.commit(&meta, data_file, Expect::Same(&current))?;
        Ok((meta, ReencryptMethod::Rewrite))
    }

    /// The fast path: new sealed data keys for the same data, when the mode stays and only
    /// the sealing key changes. `None` when it does not apply.
    fn reseal(
        &self,
        meta: &ObjectMeta,
        to: &Encryption,
        source_key: Option<&CustomerKey>,
    ) -> Result<Option<SseState>> {
        let (bucket, key) = (meta.bucket.as_str(), meta.key.as_str());
        Ok(match (&meta.sse, to) {
            (SseState::SseS3 { root_version, dek }, Encryption::SseS3) => {
                let data_key = self.keys.root_open(*root_version, dek, bucket, key)?;
                let (root_version, dek) = self.keys.root_seal(&data_key, bucket, key)?;
                Some(SseState::SseS3 { root_version, dek })
            }
            (SseState::SseKms { dek, .. }, Encryption::SseKms { key_id, bucket_key }) => {
                let dek =
                    self.keys
                        .kms_reseal(dek, key_id.as_deref(), Mode::SseKms, bucket, key)?;
                Some(SseState::SseKms {
                    dek,
                    bucket_key: *bucket_key,
                })
            }
            (SseState::DsseKms { inner, outer }, Encryption::DsseKms { key_id }) => {
                Some(SseState::DsseKms {
                    inner: self.keys.kms_reseal(
                        inner,
                        Some(key_id),
                        Mode::DsseKmsInner,
                        bucket,
                        key,
                    )?,
                    outer: self.keys.kms_reseal(
                        outer,
                        Some(key_id),
                        Mode::DsseKmsOuter,
                        bucket,
                        key,
                    )?,
                })
            }
            (SseState::SseC { .. }, Encryption::SseC(new_key)) => {
                let data_key = self.open_ssec_key(meta, source_key)?;
                Some(self.seal_ssec(&data_key, new_key, bucket, key)?)
            }
            _ => None,
        })
    }

    /// Seals `body` (plaintext) with `keys` (in sealing order; none: plaintext) into a new,
    /// uncommitted file.
    fn seal_data(
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
    fn write_data(
        &self,
        bucket: &str,
        key: &str,
        _data_id: &str,
        encryption: &Encryption,
        body: &mut dyn Read,
    ) -> Result<(SseState, u32, Option<AtomicFile>)> {
        let (sse, keys) = self.new_data_keys(bucket, key, encryption)?;
        let file = self.seal_data(bucket, key, &keys, &data_aad(bucket, key), body)?;
        let segment_size = if keys.is_empty() {
            0
        } else {
            crypto::DEFAULT_SEGMENT_SIZE
        };
        Ok((sse, segment_size, Some(file)))
    }
}

/// What a commit must find in place of the object.
#[derive(Debug, Clone, Copy)]
enum Expect<'a> {
    Nothing,
    /// The object as it was read (same data, same time, same encryption).
    Same(&'a ObjectMeta),
    /// An object with this ETag.
    ETag(&'a str),
    /// No object.
    Absent,
}

impl Expect<'_> {
    fn check(self, meta: &ObjectMeta, previous: Option<&ObjectMeta>) -> Result<()> {
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

/// One data file of an object.
struct Piece {
    path: PathBuf,
    /// Plaintext bytes.
    size: u64,
    aad: Vec<u8>,
}

fn check_key(key: &str) -> Result<()> {
    if key.is_empty() {
        return Err(StoreError::InvalidKey(
            "a key is 1 to 1,024 bytes; this one is empty".into(),
        ));
    }
    if key.len() > MAX_KEY_LEN {
        return Err(StoreError::InvalidKey(format!(
            "a key is 1 to 1,024 bytes of UTF-8; this one is {} bytes",
            key.len()
        )));
    }
    Ok(())
}

fn create_private_dir(path: &Path) -> Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    match fs::DirBuilder::new().mode(0o700).create(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(io_err(path)(e)),
    }
}

#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_serve;
