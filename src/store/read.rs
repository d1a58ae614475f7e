//! The read path: an object's metadata found by its key and authenticated, listings, and
//! its plaintext written out (whole or by range, across the data files of a multipart
//! object) once the request's conditions and SSE-C key have been checked. Must not
//! write, lock or delete anything.

use std::fs::{self, File};
use std::io::{self, BufReader, Read, Seek, SeekFrom, Write};
use std::ops::Range;
use std::path::{Path, PathBuf};

use super::body::open_layers;
use super::bucket::check_bucket_name;
use super::error::{Result, StoreError, io_err};
use super::request::{ByteRange, GetRequest};
use super::sealing::{data_aad, part_aad};
use super::{ObjectMeta, SseState, Store, check_key};
use crate::crypto::{CustomerKey, Engine};

impl Store {
    /// Reads and authenticates an object's metadata.
    pub fn head(&self, bucket: &str, key: &str) -> Result<ObjectMeta> {
        // The name check keeps any bucket name from becoming a path; the bucket's file is
        // read only to tell a missing bucket from a missing key (inspections are hot).
        check_bucket_name(bucket).map_err(|_| StoreError::NoSuchBucket(bucket.to_owned()))?;
        check_key(key)?;
        match self.read_meta(bucket, key)? {
            Some(meta) if !meta.delete_marker => Ok(meta),
            Some(_) => Err(StoreError::NoSuchKey {
                bucket: bucket.to_owned(),
                key: key.to_owned(),
            }),
            None => {
                self.bucket(bucket)?;
                Err(StoreError::NoSuchKey {
                    bucket: bucket.to_owned(),
                    key: key.to_owned(),
                })
            }
        }
    }

    pub(super) fn read_meta(&self, bucket: &str, key: &str) -> Result<Option<ObjectMeta>> {
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

    pub(super) fn decode_meta<T: serde::de::DeserializeOwned>(
        &self,
        path: &Path,
        bytes: &[u8],
    ) -> Result<T> {
        self.mac
            .decode(bytes)
            .map_err(|message| StoreError::Corrupt {
                object: path.display().to_string(),
                message,
            })
    }

    /// Objects of a bucket whose keys start with `prefix`, in key order (the current
    /// versions; a key whose latest version is a delete marker is not listed).
    pub fn list(&self, bucket: &str, prefix: &str) -> Result<Vec<ObjectMeta>> {
        let mut objects = self.latest_versions(bucket, prefix)?;
        objects.retain(|m| !m.delete_marker);
        Ok(objects)
    }

    /// The latest version of every key that starts with `prefix`, delete markers
    /// included, in key order.
    pub(super) fn latest_versions(&self, bucket: &str, prefix: &str) -> Result<Vec<ObjectMeta>> {
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

    /// Reads an object (its current version, or the one named; or `range` of it, end
    /// exclusive) into `out`. SSE-C objects need
    /// their key. Returns the object's metadata; nothing is written to `out` before the
    /// key is checked, and a range read opens only the segments it needs.
    pub fn get(
        &self,
        bucket: &str,
        key: &str,
        version: Option<&str>,
        range: Option<Range<u64>>,
        sse_c: Option<&CustomerKey>,
        out: &mut dyn Write,
    ) -> Result<ObjectMeta> {
        let meta = self.find(bucket, key, version)?;
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
        let meta = self.find(bucket, key, request.version_id)?;
        request.conditions.check(&meta)?;
        let layers = self.open_keys(&meta, request.sse_c)?;
        let range = match (request.part_number, request.range) {
            (Some(number), _) => {
                meta.part_range(number)
                    .ok_or_else(|| StoreError::PartNotSatisfiable {
                        bucket: bucket.to_owned(),
                        key: key.to_owned(),
                        number,
                        parts: meta.parts.len().max(1),
                    })?
            }
            (None, None) => 0..meta.size,
            (None, Some(r)) => r.resolve(meta.size).ok_or_else(|| {
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
    pub(super) fn read_data(
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
}

/// One data file of an object.
struct Piece {
    path: PathBuf,
    /// Plaintext bytes.
    size: u64,
    aad: Vec<u8>,
}
