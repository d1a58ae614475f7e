//! Re-encryption in place: an object's plaintext read through its old keys and sealed
//! with new ones, or, on the fast path, only its data keys re-sealed; bytes, ETag,
//! checksum, content headers, metadata and tags stay. Must not change anything but the object's encryption,
//! and commits only if the object is still the one it read.

use std::fs::File;

use super::body::{HashingReader, LayeredReader, piped, reader_error};
use super::error::{Result, StoreError, io_err};
use super::request::{Encryption, Reencrypt, ReencryptMethod};
use super::sealing::data_aad;
use super::write::Expect;
use super::{ObjectMeta, SseState, Store};
use crate::crypto::{CustomerKey, Mode};

impl Store {
    /// Re-encrypts one object in place: only its encryption changes; bytes, ETag,
    /// content type, metadata and tags stay. A multipart object's parts become one data
    /// file. In a versioned bucket the result is a new current version, as a copy onto
    /// itself is on S3, and the version it replaces stays as it was.
    pub fn reencrypt(
        &self,
        bucket: &str,
        key: &str,
        request: &Reencrypt<'_>,
    ) -> Result<(ObjectMeta, ReencryptMethod)> {
        let current = self.head(bucket, key)?;
        let bucket_info = self.bucket(bucket)?;
        bucket_info.check_allowed(key, &request.to)?;
        let versioning = bucket_info.versioning;
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
            let mut meta = ObjectMeta {
                sse,
                modified: now,
                ..current.clone()
            };
            self.commit(&mut meta, None, Expect::Same(&current), versioning)?;
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
            let written = self.write_data(bucket, key, &request.to, &mut hashing);
            if let Some(e) = reader_error(&mut hashing) {
                return Err(crypto_err(e));
            }
            let written = written?;
            let hashed = hashing.finish();
            (written, (hashed.size, hashed.md5))
        } else {
            // Several data files: through a pipe from a reading thread.
            piped(
                |out| {
                    self.read_data(&current, &layers, 0..current.size, out)?;
                    Ok(current.clone())
                },
                |body| {
                    let mut hashing = HashingReader::new(body);
                    let written = self.write_data(bucket, key, &request.to, &mut hashing)?;
                    let hashed = hashing.finish();
                    Ok((written, (hashed.size, hashed.md5)))
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
        let mut meta = ObjectMeta {
            data_id,
            segment_size,
            sse,
            modified: now,
            md5: (md5 != current.etag).then_some(md5),
            parts: Vec::new(),
            ..current.clone()
        };
        self.commit(&mut meta, data_file, Expect::Same(&current), versioning)?;
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
}
