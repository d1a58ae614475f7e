//! Sealing a data key to its object: AES-256-GCM under a key-encryption key, with the
//! object's context as associated data, so that a sealed key copied to another object,
//! another mode or another key version does not open.

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use zeroize::Zeroizing;

use super::cipher::{Cipher, KEY_LEN, NONCE_LEN, TAG_LEN};
use super::{DataKey, Error, Result, SecretKey};

/// Domain label at the start of the associated data, so these bytes can never be
/// mistaken for the associated data of another use of a key.
const LABEL: &[u8] = b"reseal/data-key/v1";
/// Format byte of a sealed key.
const SEALED_KEY_VERSION: u8 = 1;

/// The encryption mode an object's data key was sealed for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Mode {
    /// SSE-S3: sealed by a version of the store's root key.
    SseS3,
    /// SSE-KMS: sealed by a version of a local KMS key.
    SseKms,
    /// DSSE-KMS, outer layer's data key.
    DsseKmsOuter,
    /// DSSE-KMS, inner layer's data key (an independent key, so the two layers cannot
    /// be swapped).
    DsseKmsInner,
    /// SSE-C: sealed by a key derived from the customer's key.
    SseC,
}

impl Mode {
    /// Stable name bound into the associated data; never change one.
    pub fn label(self) -> &'static str {
        match self {
            Mode::SseS3 => "sse-s3",
            Mode::SseKms => "sse-kms",
            Mode::DsseKmsOuter => "dsse-kms/outer",
            Mode::DsseKmsInner => "dsse-kms/inner",
            Mode::SseC => "sse-c",
        }
    }
}

/// Where a data key belongs. Every field is bound into the sealed key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyContext<'a> {
    /// Bucket of the object.
    pub bucket: &'a str,
    /// Key of the object.
    pub key: &'a str,
    /// Encryption mode.
    pub mode: Mode,
    /// Id of the key-encryption key (root keyring id, KMS key id, or an SSE-C label).
    pub key_id: &'a str,
    /// Version of the key-encryption key.
    pub key_version: u32,
}

impl KeyContext<'_> {
    /// The associated data: the label, then every variable field as a 64-bit
    /// big-endian length and its bytes, then the version. Lengths make the encoding
    /// injective: ("a/b", "c") and ("a", "b/c") differ.
    pub fn encode(&self) -> Vec<u8> {
        let fields = [self.bucket, self.key, self.mode.label(), self.key_id];
        let mut out = Vec::with_capacity(
            LABEL.len() + 8 * 5 + 4 + fields.iter().map(|f| f.len()).sum::<usize>(),
        );
        push_field(&mut out, LABEL);
        for field in fields {
            push_field(&mut out, field.as_bytes());
        }
        out.extend_from_slice(&self.key_version.to_be_bytes());
        out
    }
}

/// Appends a field as its length (u64 big-endian, so no length needs a special case)
/// and its bytes.
pub(crate) fn push_field(out: &mut Vec<u8>, field: &[u8]) {
    out.extend_from_slice(&(field.len() as u64).to_be_bytes());
    out.extend_from_slice(field);
}

/// A data key sealed to its context. What is stored with the object.
///
/// Bytes: format version (1) ‖ nonce (12) ‖ encrypted key (32) ‖ tag (16) = 61 bytes.
/// Serde writes base64 text in human-readable formats (JSON) and raw bytes otherwise.
#[derive(Clone, PartialEq, Eq)]
pub struct SealedKey {
    nonce: [u8; NONCE_LEN],
    ciphertext: [u8; KEY_LEN],
    tag: [u8; TAG_LEN],
}

impl SealedKey {
    /// Length of [`SealedKey::to_bytes`].
    pub const LEN: usize = 1 + NONCE_LEN + KEY_LEN + TAG_LEN;

    /// The stored form.
    pub fn to_bytes(&self) -> [u8; Self::LEN] {
        let mut out = [0u8; Self::LEN];
        out[0] = SEALED_KEY_VERSION;
        out[1..13].copy_from_slice(&self.nonce);
        out[13..45].copy_from_slice(&self.ciphertext);
        out[45..].copy_from_slice(&self.tag);
        out
    }

    /// Parses the stored form.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self> {
        let malformed = |reason| Error::Malformed {
            what: "sealed data key",
            reason,
        };
        if bytes.len() != Self::LEN {
            return Err(malformed("wrong length"));
        }
        if bytes[0] != SEALED_KEY_VERSION {
            return Err(malformed("unknown format version"));
        }
        let mut key = SealedKey {
            nonce: [0; NONCE_LEN],
            ciphertext: [0; KEY_LEN],
            tag: [0; TAG_LEN],
        };
        key.nonce.copy_from_slice(&bytes[1..13]);
        key.ciphertext.copy_from_slice(&bytes[13..45]);
        key.tag.copy_from_slice(&bytes[45..]);
        Ok(key)
    }

    /// The stored form as standard base64.
    pub fn to_base64(&self) -> String {
        STANDARD.encode(self.to_bytes())
    }

    /// Parses [`SealedKey::to_base64`].
    pub fn from_base64(text: &str) -> Result<Self> {
        let bytes = STANDARD.decode(text.trim()).map_err(|_| Error::Malformed {
            what: "sealed data key",
            reason: "not valid base64",
        })?;
        Self::from_bytes(&bytes)
    }
}

impl fmt::Debug for SealedKey {
    // Not secret, but long and useless to a reader of logs: show it as stored.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SealedKey({})", self.to_base64())
    }
}

impl Serialize for SealedKey {
    fn serialize<S: Serializer>(&self, serializer: S) -> std::result::Result<S::Ok, S::Error> {
        if serializer.is_human_readable() {
            serializer.serialize_str(&self.to_base64())
        } else {
            serializer.serialize_bytes(&self.to_bytes())
        }
    }
}

impl<'de> Deserialize<'de> for SealedKey {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> std::result::Result<Self, D::Error> {
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = SealedKey;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a sealed data key as base64 text or 61 bytes")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> std::result::Result<SealedKey, E> {
                SealedKey::from_base64(v).map_err(E::custom)
            }
            fn visit_bytes<E: serde::de::Error>(
                self,
                v: &[u8],
            ) -> std::result::Result<SealedKey, E> {
                SealedKey::from_bytes(v).map_err(E::custom)
            }
        }
        if deserializer.is_human_readable() {
            deserializer.deserialize_str(Visitor)
        } else {
            deserializer.deserialize_bytes(Visitor)
        }
    }
}

/// Seals `dek` under `kek` for `context`, with a fresh random nonce.
pub fn seal_data_key(
    kek: &SecretKey,
    dek: &DataKey,
    context: &KeyContext<'_>,
) -> Result<SealedKey> {
    let mut nonce = [0u8; NONCE_LEN];
    getrandom::fill(&mut nonce)?;
    let mut ciphertext = *dek.expose_secret();
    let tag = Cipher::new(kek.expose_secret())
        .seal_in_place(&nonce, &context.encode(), &mut ciphertext)
        .map_err(|_| Error::TooLarge)?;
    Ok(SealedKey {
        nonce,
        ciphertext,
        tag,
    })
}

/// Opens a data key sealed by [`seal_data_key`]. Fails with
/// [`Error::SealedKeyMismatch`] under another key or for any other context.
pub fn open_data_key(
    kek: &SecretKey,
    sealed: &SealedKey,
    context: &KeyContext<'_>,
) -> Result<DataKey> {
    let mut key = Zeroizing::new(sealed.ciphertext);
    Cipher::new(kek.expose_secret())
        .open_in_place(
            &sealed.nonce,
            &context.encode(),
            key.as_mut_slice(),
            &sealed.tag,
        )
        .map_err(|_| Error::SealedKeyMismatch)?;
    Ok(DataKey::from_bytes(key))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx<'a>(bucket: &'a str, key: &'a str) -> KeyContext<'a> {
        KeyContext {
            bucket,
            key,
            mode: Mode::SseS3,
            key_id: "root",
            key_version: 1,
        }
    }

    #[test]
    fn round_trip_and_bound_to_context() {
        let kek = SecretKey::generate().unwrap();
        let dek = DataKey::generate().unwrap();
        let here = ctx("photos", "2024/cat.jpg");
        let sealed = seal_data_key(&kek, &dek, &here).unwrap();
        let opened = open_data_key(&kek, &sealed, &here).unwrap();
        assert_eq!(opened.expose_secret(), dek.expose_secret());

        // Another object's context, each field in turn.
        let others = [
            ctx("photos", "2024/dog.jpg"),
            ctx("backup", "2024/cat.jpg"),
            KeyContext {
                mode: Mode::SseKms,
                ..here
            },
            KeyContext {
                mode: Mode::SseC,
                ..here
            },
            KeyContext {
                key_id: "kms-1",
                ..here
            },
            KeyContext {
                key_version: 2,
                ..here
            },
            // Moving bytes between fields must not produce the same encoding.
            ctx("photos2024", "/cat.jpg"),
            ctx("photos/2024", "cat.jpg"),
        ];
        for other in others {
            assert_ne!(other.encode(), here.encode());
            assert!(
                matches!(
                    open_data_key(&kek, &sealed, &other),
                    Err(Error::SealedKeyMismatch)
                ),
                "{other:?}"
            );
        }
        let wrong_kek = SecretKey::generate().unwrap();
        assert!(matches!(
            open_data_key(&wrong_kek, &sealed, &here),
            Err(Error::SealedKeyMismatch)
        ));
    }

    #[test]
    fn dsse_layers_are_not_interchangeable() {
        let kek = SecretKey::generate().unwrap();
        let dek = DataKey::generate().unwrap();
        let outer = KeyContext {
            mode: Mode::DsseKmsOuter,
            ..ctx("b", "k")
        };
        let inner = KeyContext {
            mode: Mode::DsseKmsInner,
            ..outer
        };
        let sealed = seal_data_key(&kek, &dek, &outer).unwrap();
        assert!(open_data_key(&kek, &sealed, &inner).is_err());
    }

    #[test]
    fn serialises_as_base64_and_bytes() {
        let kek = SecretKey::generate().unwrap();
        let sealed = seal_data_key(&kek, &DataKey::generate().unwrap(), &ctx("b", "k")).unwrap();
        let json = serde_json::to_string(&sealed).unwrap();
        assert_eq!(json, format!("\"{}\"", sealed.to_base64()));
        let back: SealedKey = serde_json::from_str(&json).unwrap();
        assert_eq!(back, sealed);
        assert_eq!(SealedKey::from_bytes(&sealed.to_bytes()).unwrap(), sealed);
        assert_eq!(sealed.to_bytes().len(), 61);

        let mut bad = sealed.to_bytes();
        bad[0] = 9;
        assert!(matches!(
            SealedKey::from_bytes(&bad),
            Err(Error::Malformed { .. })
        ));
        assert!(SealedKey::from_bytes(&bad[..60]).is_err());
        assert!(serde_json::from_str::<SealedKey>("\"@@\"").is_err());
    }

    #[test]
    fn tampered_sealed_key_does_not_open() {
        let kek = SecretKey::generate().unwrap();
        let here = ctx("b", "k");
        let sealed = seal_data_key(&kek, &DataKey::generate().unwrap(), &here).unwrap();
        for i in 1..SealedKey::LEN {
            let mut bytes = sealed.to_bytes();
            bytes[i] ^= 1;
            let bad = SealedKey::from_bytes(&bytes).unwrap();
            assert!(open_data_key(&kek, &bad, &here).is_err(), "byte {i}");
        }
    }
}
