//! Checksums of an object's plaintext kept with it (S3's additional checksums): the
//! algorithms, a hasher that computes one as bytes pass, what a write expects the body's
//! to be, and how a multipart object's checksum is made of its parts' (a composite
//! checksum of their checksums, or a CRC of the whole object combined from theirs).
//! Values are raw digests; must not know how a protocol spells them (header names,
//! base64) or touch files.

use std::fmt;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use sha2::Digest as _;

/// The algorithms S3 offers for additional checksums.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ChecksumAlgorithm {
    #[serde(rename = "CRC32")]
    Crc32,
    #[serde(rename = "CRC32C")]
    Crc32c,
    #[serde(rename = "CRC64NVME")]
    Crc64Nvme,
    #[serde(rename = "SHA1")]
    Sha1,
    #[serde(rename = "SHA256")]
    Sha256,
}

impl ChecksumAlgorithm {
    pub const ALL: [ChecksumAlgorithm; 5] = [
        ChecksumAlgorithm::Crc32,
        ChecksumAlgorithm::Crc32c,
        ChecksumAlgorithm::Crc64Nvme,
        ChecksumAlgorithm::Sha1,
        ChecksumAlgorithm::Sha256,
    ];

    /// The algorithm's usual name, upper case (`CRC32`, `SHA256`, …).
    pub fn name(self) -> &'static str {
        match self {
            ChecksumAlgorithm::Crc32 => "CRC32",
            ChecksumAlgorithm::Crc32c => "CRC32C",
            ChecksumAlgorithm::Crc64Nvme => "CRC64NVME",
            ChecksumAlgorithm::Sha1 => "SHA1",
            ChecksumAlgorithm::Sha256 => "SHA256",
        }
    }

    /// Bytes in a value.
    pub fn value_len(self) -> usize {
        match self {
            ChecksumAlgorithm::Crc32 | ChecksumAlgorithm::Crc32c => 4,
            ChecksumAlgorithm::Crc64Nvme => 8,
            ChecksumAlgorithm::Sha1 => 20,
            ChecksumAlgorithm::Sha256 => 32,
        }
    }

    fn crc(self) -> Option<crc_fast::CrcAlgorithm> {
        match self {
            ChecksumAlgorithm::Crc32 => Some(crc_fast::CrcAlgorithm::Crc32IsoHdlc),
            ChecksumAlgorithm::Crc32c => Some(crc_fast::CrcAlgorithm::Crc32Iscsi),
            ChecksumAlgorithm::Crc64Nvme => Some(crc_fast::CrcAlgorithm::Crc64Nvme),
            ChecksumAlgorithm::Sha1 | ChecksumAlgorithm::Sha256 => None,
        }
    }

    /// The checksum type a multipart object gets when none is asked for: CRC64NVME has
    /// only full-object checksums, the others composite ones by default.
    pub fn default_multipart_type(self) -> ChecksumType {
        match self {
            ChecksumAlgorithm::Crc64Nvme => ChecksumType::FullObject,
            _ => ChecksumType::Composite,
        }
    }

    /// Whether a multipart object's checksum can be of `kind` with this algorithm: a
    /// full-object checksum is combined from the parts' CRCs, which a SHA cannot be; a
    /// composite CRC64NVME is not offered.
    pub fn allows(self, kind: ChecksumType) -> bool {
        match kind {
            ChecksumType::FullObject => self.crc().is_some(),
            ChecksumType::Composite => self != ChecksumAlgorithm::Crc64Nvme,
        }
    }

    pub fn digest(self, data: &[u8]) -> Vec<u8> {
        let mut hasher = Hasher::new(self);
        hasher.update(data);
        hasher.finalize()
    }
}

impl fmt::Display for ChecksumAlgorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Of what an object's checksum is: its whole plaintext, or (a multipart object's) the
/// concatenation of its parts' checksums.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ChecksumType {
    #[serde(rename = "FULL_OBJECT")]
    FullObject,
    #[serde(rename = "COMPOSITE")]
    Composite,
}

/// An object's checksum, kept in its metadata.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checksum {
    pub algorithm: ChecksumAlgorithm,
    pub checksum_type: ChecksumType,
    /// The digest. Empty in an upload's record, where the object is still to come.
    #[serde(with = "b64")]
    pub value: Vec<u8>,
    /// A multipart object's parts, in order, each with its checksum: they stay when a
    /// re-encryption makes the parts one data file.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub parts: Vec<PartChecksum>,
}

/// One part of a multipart object, with its checksum.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartChecksum {
    pub number: u32,
    /// Plaintext bytes.
    pub size: u64,
    #[serde(with = "b64")]
    pub value: Vec<u8>,
}

/// A checksum of one algorithm: a part's, or one a request gives.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChecksumValue {
    pub algorithm: ChecksumAlgorithm,
    #[serde(with = "b64")]
    pub value: Vec<u8>,
}

/// The checksum a write is to compute and keep, and what the body's must be.
#[derive(Debug, Clone)]
pub struct ChecksumRequest {
    pub algorithm: ChecksumAlgorithm,
    pub expected: ExpectedChecksum,
}

/// What the body's checksum must be.
#[derive(Clone)]
pub enum ExpectedChecksum {
    /// Nothing: the checksum is computed and kept.
    Unknown,
    /// This value, known before the body.
    Value(Vec<u8>),
    /// A value known only once the whole body is read (one that comes after it);
    /// `None` there fails as a mismatch.
    AtEnd(Arc<dyn Fn() -> Option<Vec<u8>> + Send + Sync>),
}

impl fmt::Debug for ExpectedChecksum {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ExpectedChecksum::Unknown => f.write_str("Unknown"),
            ExpectedChecksum::Value(v) => f.debug_tuple("Value").field(v).finish(),
            ExpectedChecksum::AtEnd(_) => f.write_str("AtEnd"),
        }
    }
}

impl ExpectedChecksum {
    /// Whether `computed` is what was expected.
    pub(super) fn holds(&self, computed: &[u8]) -> bool {
        match self {
            ExpectedChecksum::Unknown => true,
            ExpectedChecksum::Value(v) => v == computed,
            ExpectedChecksum::AtEnd(get) => get().is_some_and(|v| v == computed),
        }
    }
}

impl Checksum {
    /// A multipart object's checksum from its parts' (`(size, checksum)`, in order), of
    /// the algorithm and type its upload was created with.
    pub(super) fn of_parts(
        algorithm: ChecksumAlgorithm,
        checksum_type: ChecksumType,
        parts: Vec<PartChecksum>,
    ) -> Checksum {
        let value = match (checksum_type, algorithm.crc()) {
            (ChecksumType::FullObject, Some(crc)) => {
                let mut whole: Option<u64> = None;
                for part in &parts {
                    let this = crc_value(&part.value);
                    whole = Some(match whole {
                        None => this,
                        Some(w) => crc_fast::checksum_combine(crc, w, this, part.size),
                    });
                }
                let whole = whole.unwrap_or_else(|| crc_fast::checksum(crc, b""));
                crc_bytes(algorithm, whole)
            }
            _ => {
                let mut hasher = Hasher::new(algorithm);
                for part in &parts {
                    hasher.update(&part.value);
                }
                hasher.finalize()
            }
        };
        Checksum {
            algorithm,
            checksum_type,
            value,
            parts,
        }
    }
}

fn crc_value(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0u64, |acc, b| (acc << 8) | u64::from(*b))
}

fn crc_bytes(algorithm: ChecksumAlgorithm, crc: u64) -> Vec<u8> {
    crc.to_be_bytes()[8 - algorithm.value_len()..].to_vec()
}

/// Computes one algorithm's checksum of what it is given.
pub(super) enum Hasher {
    Crc(ChecksumAlgorithm, crc_fast::Digest),
    Sha1(sha1::Sha1),
    Sha256(sha2::Sha256),
}

impl Hasher {
    pub(super) fn new(algorithm: ChecksumAlgorithm) -> Hasher {
        match (algorithm, algorithm.crc()) {
            (_, Some(crc)) => Hasher::Crc(algorithm, crc_fast::Digest::new(crc)),
            (ChecksumAlgorithm::Sha1, None) => Hasher::Sha1(sha1::Sha1::new()),
            _ => Hasher::Sha256(sha2::Sha256::new()),
        }
    }

    pub(super) fn update(&mut self, data: &[u8]) {
        match self {
            Hasher::Crc(_, d) => d.update(data),
            Hasher::Sha1(h) => h.update(data),
            Hasher::Sha256(h) => h.update(data),
        }
    }

    pub(super) fn finalize(self) -> Vec<u8> {
        match self {
            Hasher::Crc(algorithm, d) => crc_bytes(algorithm, d.finalize()),
            Hasher::Sha1(h) => h.finalize().to_vec(),
            Hasher::Sha256(h) => h.finalize().to_vec(),
        }
    }
}

mod b64 {
    use base64::Engine;
    use base64::engine::general_purpose::STANDARD;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(value: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&STANDARD.encode(value))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let text = String::deserialize(d)?;
        STANDARD.decode(text).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Known values: the CRC catalogue's check value of "123456789", and SHA-1/SHA-256
    // of "abc" (FIPS 180).
    #[test]
    fn each_algorithm_gives_its_known_value() {
        let check = b"123456789";
        assert_eq!(
            ChecksumAlgorithm::Crc32.digest(check),
            0xcbf4_3926u32.to_be_bytes()
        );
        assert_eq!(
            ChecksumAlgorithm::Crc32c.digest(check),
            0xe306_9283u32.to_be_bytes()
        );
        assert_eq!(
            ChecksumAlgorithm::Crc64Nvme.digest(check),
            0xae8b_1486_0a79_9888u64.to_be_bytes()
        );
        assert_eq!(
            crate::encoding::hex(&ChecksumAlgorithm::Sha1.digest(b"abc")),
            "a9993e364706816aba3e25717850c26c9cd0d89d"
        );
        assert_eq!(
            crate::encoding::hex(&ChecksumAlgorithm::Sha256.digest(b"abc")),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn a_full_object_crc_of_parts_is_the_crc_of_the_whole() {
        let parts: [&[u8]; 3] = [b"1234", b"", b"56789"];
        for algorithm in [
            ChecksumAlgorithm::Crc32,
            ChecksumAlgorithm::Crc32c,
            ChecksumAlgorithm::Crc64Nvme,
        ] {
            let of_parts = parts
                .iter()
                .enumerate()
                .map(|(i, p)| PartChecksum {
                    number: i as u32 + 1,
                    size: p.len() as u64,
                    value: algorithm.digest(p),
                })
                .collect();
            let whole = Checksum::of_parts(algorithm, ChecksumType::FullObject, of_parts);
            assert_eq!(whole.value, algorithm.digest(b"123456789"), "{algorithm}");
        }
    }

    #[test]
    fn a_composite_checksum_is_of_the_parts_checksums() {
        let a = ChecksumAlgorithm::Sha256.digest(b"a");
        let b = ChecksumAlgorithm::Sha256.digest(b"b");
        let parts = vec![
            PartChecksum {
                number: 1,
                size: 1,
                value: a.clone(),
            },
            PartChecksum {
                number: 2,
                size: 1,
                value: b.clone(),
            },
        ];
        let c = Checksum::of_parts(ChecksumAlgorithm::Sha256, ChecksumType::Composite, parts);
        assert_eq!(c.value, ChecksumAlgorithm::Sha256.digest(&[a, b].concat()));
    }
}
