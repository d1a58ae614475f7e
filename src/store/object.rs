//! An object's metadata file: what the object is (key, version, size, ETag, checksum,
//! content headers, user metadata, tags, or a delete marker), how its data is encrypted (the sealed data keys), and which data file
//! holds its bytes. Metadata is not encrypted, as in S3, but it is authenticated: an
//! HMAC-SHA256 under a key derived from the master key covers every byte, so an edit made
//! outside reseal is detected.
//!
//! Replacing the metadata file is the commit point of every write: data files are
//! immutable and named by a fresh id, so a crash leaves the old object or the new one.
//! Must not read or write files: it is the format, and the names of the few kept headers
//! the store itself reads.

use std::collections::BTreeMap;

use hkdf::Hkdf;
use hmac::{Hmac, KeyInit, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use zeroize::Zeroizing;

use super::checksum::Checksum;
use super::keys::KmsSealed;
use crate::crypto::{KeyFingerprint, MasterKey, SealedKey};
use crate::sse::SseMode;

const MAGIC: &[u8; 8] = b"RSOBJ\x00\x01\n";
const MAC_LEN: usize = 32;
const MAC_LABEL: &[u8] = b"reseal/store/object-metadata/v1";

/// The names in [`ObjectMeta::headers`] of the two headers the store reads itself (a copy
/// onto itself must change one of them, or something else, to be allowed).
pub(super) const STORAGE_CLASS: &str = "x-amz-storage-class";
pub(super) const WEBSITE_REDIRECT_LOCATION: &str = "x-amz-website-redirect-location";
/// The storage class of an object that names none; it is not recorded.
pub const STANDARD_STORAGE_CLASS: &str = "STANDARD";

/// How an object's data is encrypted, with everything needed to open it but the keys
/// that seal its data keys.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "mode")]
pub enum SseState {
    /// Plaintext: written before encryption was on.
    #[serde(rename = "NOT-SSE")]
    None,
    #[serde(rename = "SSE-S3")]
    SseS3 { root_version: u32, dek: SealedKey },
    #[serde(rename = "SSE-KMS")]
    SseKms {
        dek: KmsSealed,
        #[serde(default)]
        bucket_key: bool,
    },
    /// Two layers: `inner` seals the plaintext, `outer` seals the inner layer's output.
    #[serde(rename = "DSSE-KMS")]
    DsseKms { inner: KmsSealed, outer: KmsSealed },
    #[serde(rename = "SSE-C")]
    SseC {
        /// HKDF salt from which the customer key derives the key that seals `dek`.
        #[serde(with = "b64_salt")]
        salt: [u8; crate::crypto::SALT_LEN],
        fingerprint: KeyFingerprint,
        key_md5: String,
        dek: SealedKey,
    },
}

impl SseState {
    pub fn mode(&self) -> SseMode {
        match self {
            SseState::None => SseMode::NotSse,
            SseState::SseS3 { .. } => SseMode::SseS3,
            SseState::SseKms { .. } => SseMode::SseKms,
            SseState::DsseKms { .. } => SseMode::DsseKms,
            SseState::SseC { .. } => SseMode::SseC,
        }
    }

    /// The KMS key id, for SSE-KMS and DSSE-KMS.
    pub fn kms_key_id(&self) -> Option<&str> {
        match self {
            SseState::SseKms { dek, .. } => Some(&dek.key_id),
            SseState::DsseKms { outer, .. } => Some(&outer.key_id),
            _ => None,
        }
    }

    /// The version of the key that seals the data key (root or KMS), where there is one.
    pub fn key_version(&self) -> Option<u32> {
        match self {
            SseState::SseS3 { root_version, .. } => Some(*root_version),
            SseState::SseKms { dek, .. } => Some(dek.key_version),
            SseState::DsseKms { outer, .. } => Some(outer.key_version),
            _ => None,
        }
    }
}

/// Everything the store knows of an object.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObjectMeta {
    pub bucket: String,
    pub key: String,
    /// Plaintext size in bytes.
    pub size: u64,
    /// Hex MD5 of the plaintext, as S3 gives for single-part uploads.
    pub etag: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_type: Option<String>,
    #[serde(default)]
    pub metadata: BTreeMap<String, String>,
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
    /// Milliseconds since the Unix epoch: when the content was written, and when anything
    /// (encryption, tags) last changed.
    pub created: i64,
    pub modified: i64,
    /// The data file's id; a new one for every write of the data.
    pub data_id: String,
    /// Segment size of the sealed data (0 for plaintext).
    #[serde(default)]
    pub segment_size: u32,
    pub sse: SseState,
    /// The other headers S3 keeps with an object and returns with it, by lowercase name:
    /// cache-control, content-disposition, content-encoding, content-language, expires,
    /// and the storage class and website redirect ([`ObjectMeta::storage_class`],
    /// [`ObjectMeta::website_redirect_location`]).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub headers: BTreeMap<String, String>,
    /// Hex MD5 of the plaintext where the ETag is not it (a multipart object's ETag is
    /// the MD5 of its parts' MD5s); `None` there until the object is rewritten.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub md5: Option<String>,
    /// A multipart object's data: one immutable data file per part, in order, all sealed
    /// with the object's data key(s). Empty when `data_id` names the one data file.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub parts: Vec<DataPart>,
    /// The additional checksum of the plaintext the object was written with, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checksum: Option<Checksum>,
    /// The version's id, in a bucket with versioning on; `None`: the null version (every
    /// object of a bucket that never had versioning, and those written while suspended).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version_id: Option<String>,
    /// Milliseconds since the Unix epoch when this version was made (0 in metadata written
    /// before versions were kept: then `created` tells). Orders a key's versions.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub versioned: i64,
    /// A delete marker: the version a delete without a version id leaves in a versioned
    /// bucket. It has no data, size or encryption.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub delete_marker: bool,
}

fn is_zero(n: &i64) -> bool {
    *n == 0
}

/// One part of a multipart object's data.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DataPart {
    /// The part number the upload gave it (it is in the part's associated data).
    pub number: u32,
    pub data_id: String,
    /// Plaintext bytes.
    pub size: u64,
}

impl ObjectMeta {
    /// The data files this object's bytes are in (none for a delete marker).
    pub fn data_ids(&self) -> Vec<&str> {
        if self.delete_marker {
            Vec::new()
        } else if self.parts.is_empty() {
            vec![self.data_id.as_str()]
        } else {
            self.parts.iter().map(|p| p.data_id.as_str()).collect()
        }
    }

    /// The storage class the object was written with; `None`: STANDARD.
    pub fn storage_class(&self) -> Option<&str> {
        self.headers.get(STORAGE_CLASS).map(String::as_str)
    }

    pub fn website_redirect_location(&self) -> Option<&str> {
        self.headers
            .get(WEBSITE_REDIRECT_LOCATION)
            .map(String::as_str)
    }

    /// The bytes of part `number` (from 1): of a multipart object, the part's; of any
    /// other, part 1 is the whole object. `None` past the last part.
    pub fn part_range(&self, number: u32) -> Option<std::ops::Range<u64>> {
        if self.parts.is_empty() {
            return (number == 1).then_some(0..self.size);
        }
        let index = (number as usize).checked_sub(1)?;
        self.parts.get(index)?;
        let start: u64 = self.parts[..index].iter().map(|p| p.size).sum();
        Some(start..start + self.parts[index].size)
    }

    /// The version id S3 clients see: the id, or `null`.
    pub fn version_name(&self) -> &str {
        self.version_id
            .as_deref()
            .unwrap_or(super::versions::NULL_VERSION)
    }

    /// When this version was made, to order a key's versions.
    pub fn version_time(&self) -> i64 {
        if self.versioned != 0 {
            self.versioned
        } else {
            self.created
        }
    }

    /// Hex MD5 of the plaintext, where known.
    pub fn plaintext_md5(&self) -> Option<&str> {
        match &self.md5 {
            Some(md5) => Some(md5),
            None if self.parts.is_empty() => Some(&self.etag),
            None => None,
        }
    }
}

/// The key that authenticates metadata files, derived from the master key.
pub struct MetaMacKey(Zeroizing<[u8; 32]>);

impl MetaMacKey {
    pub fn derive(master: &MasterKey) -> Self {
        let mut okm = Zeroizing::new([0u8; 32]);
        Hkdf::<Sha256>::new(None, master.expose_secret())
            .expand(MAC_LABEL, okm.as_mut_slice())
            .expect("HKDF-SHA256 expands to 32 bytes");
        MetaMacKey(okm)
    }

    fn mac(&self, body: &[u8]) -> Hmac<Sha256> {
        let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(self.0.as_slice())
            .expect("HMAC takes any key length");
        mac.update(MAGIC);
        mac.update(body);
        mac
    }

    /// The bytes of a metadata file (an object's, or an upload's records): magic ‖ JSON ‖
    /// HMAC.
    pub fn encode<T: Serialize>(&self, meta: &T) -> Vec<u8> {
        let body = serde_json::to_vec(meta).expect("object metadata serialises");
        let tag = self.mac(&body).finalize().into_bytes();
        let mut out = Vec::with_capacity(MAGIC.len() + body.len() + MAC_LEN);
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&body);
        out.extend_from_slice(&tag);
        out
    }

    /// Checks and parses a metadata file. The error says what is wrong, in words.
    pub fn decode<T: serde::de::DeserializeOwned>(&self, bytes: &[u8]) -> Result<T, String> {
        if bytes.len() < MAGIC.len() + MAC_LEN || &bytes[..MAGIC.len()] != MAGIC {
            return Err("not a reseal object metadata file".into());
        }
        let (body, tag) = bytes[MAGIC.len()..].split_at(bytes.len() - MAGIC.len() - MAC_LEN);
        self.mac(body).verify_slice(tag).map_err(|_| {
            "metadata does not authenticate: it was changed outside reseal, or the store is \
             opened with another master key"
                .to_string()
        })?;
        serde_json::from_slice(body).map_err(|e| format!("metadata does not parse: {e}"))
    }
}

mod b64_salt {
    use base64::Engine;
    use base64::engine::general_purpose::STANDARD;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(salt: &[u8; 32], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&STANDARD.encode(salt))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<[u8; 32], D::Error> {
        let text = String::deserialize(d)?;
        let bytes = STANDARD.decode(text).map_err(serde::de::Error::custom)?;
        bytes
            .try_into()
            .map_err(|_| serde::de::Error::custom("a salt is 32 bytes"))
    }
}
