//! An object's data keys: made and sealed for a write as its encryption says (by the root
//! key, a KMS key, or a key derived from the customer's), opened for a read, and the
//! associated data that binds a sealed key or a data segment to its object, so that
//! neither opens when copied to another. Must not touch data files, metadata files or
//! locks: the write and read paths decide where keys and bytes go.

use super::error::{Result, StoreError};
use super::{Encryption, ObjectMeta, SseState, Store};
use crate::crypto::{self, CustomerKey, DataKey, Engine, KeyFingerprint, Mode};

impl Store {
    pub(super) fn open_ssec_key(
        &self,
        meta: &ObjectMeta,
        given: Option<&CustomerKey>,
    ) -> Result<DataKey> {
        let (bucket, key) = (meta.bucket.as_str(), meta.key.as_str());
        let SseState::SseC {
            salt,
            fingerprint,
            dek,
            ..
        } = &meta.sse
        else {
            unreachable!("called for SSE-C objects only");
        };
        let given = given.ok_or_else(|| StoreError::SseCKeyRequired {
            bucket: bucket.to_owned(),
            key: key.to_owned(),
        })?;
        fingerprint
            .verify(given)
            .map_err(|_| StoreError::AccessDenied {
                bucket: bucket.to_owned(),
                key: key.to_owned(),
            })?;
        let kek = given.derive_kek(salt);
        crypto::open_data_key(&kek, dek, &ssec_context(bucket, key)).map_err(|source| {
            StoreError::Crypto {
                bucket: bucket.to_owned(),
                key: key.to_owned(),
                source,
            }
        })
    }

    pub(super) fn seal_ssec(
        &self,
        data_key: &DataKey,
        customer: &CustomerKey,
        bucket: &str,
        key: &str,
    ) -> Result<SseState> {
        let crypto_err = |source| StoreError::Crypto {
            bucket: bucket.to_owned(),
            key: key.to_owned(),
            source,
        };
        let salt = CustomerKey::new_salt().map_err(crypto_err)?;
        let kek = customer.derive_kek(&salt);
        let dek = crypto::seal_data_key(&kek, data_key, &ssec_context(bucket, key))
            .map_err(crypto_err)?;
        Ok(SseState::SseC {
            salt,
            fingerprint: KeyFingerprint::new(customer).map_err(crypto_err)?,
            key_md5: customer.md5_base64(),
            dek,
        })
    }

    /// The data keys of an object, in sealing order (DSSE-KMS: inner, then outer); empty
    /// for plaintext. An SSE-C key given for another mode is refused.
    pub(super) fn data_keys(
        &self,
        meta: &ObjectMeta,
        sse_c: Option<&CustomerKey>,
    ) -> Result<Vec<DataKey>> {
        let (bucket, key) = (meta.bucket.as_str(), meta.key.as_str());
        if sse_c.is_some() && !matches!(meta.sse, SseState::SseC { .. }) {
            return Err(StoreError::SseCKeyNotExpected {
                bucket: bucket.to_owned(),
                key: key.to_owned(),
            });
        }
        Ok(match &meta.sse {
            SseState::None => Vec::new(),
            SseState::SseS3 { root_version, dek } => {
                vec![self.keys.root_open(*root_version, dek, bucket, key)?]
            }
            SseState::SseKms { dek, .. } => {
                vec![self.keys.kms_open(dek, Mode::SseKms, bucket, key)?]
            }
            SseState::DsseKms { inner, outer } => vec![
                self.keys.kms_open(inner, Mode::DsseKmsInner, bucket, key)?,
                self.keys.kms_open(outer, Mode::DsseKmsOuter, bucket, key)?,
            ],
            SseState::SseC { .. } => vec![self.open_ssec_key(meta, sse_c)?],
        })
    }

    /// The engines that open an object's data, outermost first; empty for plaintext.
    pub(super) fn open_keys(
        &self,
        meta: &ObjectMeta,
        sse_c: Option<&CustomerKey>,
    ) -> Result<Vec<Engine>> {
        let mut keys = self.data_keys(meta, sse_c)?;
        keys.reverse();
        keys.iter()
            .map(|dek| {
                Engine::new(dek)
                    .with_segment_size(meta.segment_size)
                    .map_err(|source| StoreError::Crypto {
                        bucket: meta.bucket.clone(),
                        key: meta.key.clone(),
                        source,
                    })
            })
            .collect()
    }

    /// New data key(s) for an object written with `encryption`, sealed as it says:
    /// the object's encryption state and the keys, in sealing order.
    pub(super) fn new_data_keys(
        &self,
        bucket: &str,
        key: &str,
        encryption: &Encryption,
    ) -> Result<(SseState, Vec<DataKey>)> {
        let crypto_err = |source| StoreError::Crypto {
            bucket: bucket.to_owned(),
            key: key.to_owned(),
            source,
        };
        let new_dek = || DataKey::generate().map_err(crypto_err);
        Ok(match encryption {
            Encryption::None => (SseState::None, Vec::new()),
            Encryption::SseS3 => {
                let dek = new_dek()?;
                let (root_version, sealed) = self.keys.root_seal(&dek, bucket, key)?;
                (
                    SseState::SseS3 {
                        root_version,
                        dek: sealed,
                    },
                    vec![dek],
                )
            }
            Encryption::SseKms { key_id, bucket_key } => {
                let dek = new_dek()?;
                let sealed =
                    self.keys
                        .kms_seal(key_id.as_deref(), &dek, Mode::SseKms, bucket, key)?;
                (
                    SseState::SseKms {
                        dek: sealed,
                        bucket_key: *bucket_key,
                    },
                    vec![dek],
                )
            }
            Encryption::DsseKms { key_id } => {
                let (inner_dek, outer_dek) = (new_dek()?, new_dek()?);
                let inner = self.keys.kms_seal(
                    Some(key_id),
                    &inner_dek,
                    Mode::DsseKmsInner,
                    bucket,
                    key,
                )?;
                let outer = self.keys.kms_seal(
                    Some(key_id),
                    &outer_dek,
                    Mode::DsseKmsOuter,
                    bucket,
                    key,
                )?;
                (
                    SseState::DsseKms { inner, outer },
                    vec![inner_dek, outer_dek],
                )
            }
            Encryption::SseC(customer) => {
                let dek = new_dek()?;
                (self.seal_ssec(&dek, customer, bucket, key)?, vec![dek])
            }
        })
    }
}

/// The segment size an object sealed with `keys` records; none for plaintext.
pub(super) fn segment_size(keys: &[DataKey]) -> u32 {
    if keys.is_empty() {
        0
    } else {
        crypto::DEFAULT_SEGMENT_SIZE
    }
}

/// Associated data of every data segment: the object's identity.
pub(super) fn data_aad(bucket: &str, key: &str) -> Vec<u8> {
    identity_aad(b"reseal/object-data/v1", bucket, key)
}

/// Associated data of a multipart object's part: the object's identity and the part's
/// number, so that parts cannot be swapped or moved to another object.
pub(super) fn part_aad(bucket: &str, key: &str, number: u32) -> Vec<u8> {
    let mut aad = identity_aad(b"reseal/object-part/v1", bucket, key);
    aad.extend_from_slice(&number.to_be_bytes());
    aad
}

/// `label`, then the bucket and the key, each preceded by its length so that no two
/// identities encode alike.
fn identity_aad(label: &[u8], bucket: &str, key: &str) -> Vec<u8> {
    let mut aad = label.to_vec();
    for part in [bucket, key] {
        aad.extend_from_slice(&(part.len() as u64).to_be_bytes());
        aad.extend_from_slice(part.as_bytes());
    }
    aad
}

fn ssec_context<'a>(bucket: &'a str, key: &'a str) -> crypto::KeyContext<'a> {
    crypto::KeyContext {
        bucket,
        key,
        mode: Mode::SseC,
        key_id: "customer",
        key_version: 0,
    }
}
