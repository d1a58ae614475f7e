//! SSE-C: the customer sends a 256-bit key with every request; reseal never stores it.
//!
//! Per object the store keeps (1) a random salt from which the key-encryption key is
//! derived with HKDF-SHA256, so the customer's key itself never touches data, and (2) a
//! [`KeyFingerprint`] (its own salt and an HMAC-SHA256 under the customer key) that
//! recognises the right key on a later request without storing anything from which
//! the key could be recovered.

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use hkdf::Hkdf;
use hmac::{Hmac, KeyInit, Mac};
use md5::{Digest, Md5};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use sha2::Sha256;
use zeroize::Zeroizing;

use super::keys::{decode_key_base64, secret_key_type};
use super::{Error, KEY_LEN, Result, SecretKey};

/// Bytes of the per-object HKDF salt, and of the fingerprint's salt.
pub const SALT_LEN: usize = 32;
const MAC_LEN: usize = 32;
/// HKDF `info`: separates the derived key from every other use of the customer key.
const KEK_LABEL: &[u8] = b"reseal/sse-c/kek/v1";
/// HMAC message prefix of the fingerprint (distinct from the HKDF label).
const FINGERPRINT_LABEL: &[u8] = b"reseal/sse-c/fingerprint/v1";

type HmacSha256 = Hmac<Sha256>;

secret_key_type! {
    /// An SSE-C customer-provided key. Lives only for the request that carried it.
    CustomerKey
}

impl CustomerKey {
    /// Parses the `x-amz-server-side-encryption-customer-key` header value (base64
    /// of exactly 32 bytes).
    pub fn from_base64(text: &str) -> Result<Self> {
        decode_key_base64("SSE-C customer key", text).map(Self::from_bytes)
    }

    /// A fresh per-object salt for [`CustomerKey::derive_kek`].
    pub fn new_salt() -> Result<[u8; SALT_LEN]> {
        let mut salt = [0u8; SALT_LEN];
        getrandom::fill(&mut salt)?;
        Ok(salt)
    }

    /// The key that seals this object's data key: HKDF-SHA256 with the object's salt.
    pub fn derive_kek(&self, salt: &[u8; SALT_LEN]) -> SecretKey {
        let mut okm = Zeroizing::new([0u8; KEY_LEN]);
        let hkdf = Hkdf::<Sha256>::new(Some(salt), self.expose_secret());
        // 32 bytes is far below HKDF-SHA256's limit of 255 × 32.
        if hkdf.expand(KEK_LABEL, okm.as_mut_slice()).is_err() {
            unreachable!("HKDF-SHA256 can expand to 32 bytes");
        }
        SecretKey::from_bytes(okm)
    }

    /// Base64 of the key's MD5, as S3's SSE-C key-MD5 header carries it.
    pub fn md5_base64(&self) -> String {
        key_md5_base64(self.expose_secret())
    }

    fn mac(&self, salt: &[u8; SALT_LEN]) -> HmacSha256 {
        let mut mac = match HmacSha256::new_from_slice(self.expose_secret()) {
            Ok(mac) => mac,
            Err(_) => unreachable!("HMAC takes keys of any length"),
        };
        mac.update(FINGERPRINT_LABEL);
        mac.update(salt);
        mac
    }
}

/// Base64 of the MD5 of `key` (S3's `x-amz-server-side-encryption-customer-key-MD5`).
/// An integrity check of the header, not a secret-safe fingerprint: store
/// [`KeyFingerprint`] instead.
pub fn key_md5_base64(key: &[u8]) -> String {
    STANDARD.encode(Md5::digest(key))
}

/// Recognises an SSE-C key without storing it: a random salt and
/// HMAC-SHA256(customer key, label ‖ salt).
///
/// Bytes: salt (32) ‖ mac (32). Serde writes base64 text in human-readable formats and
/// raw bytes otherwise.
#[derive(Clone, PartialEq, Eq)]
pub struct KeyFingerprint {
    salt: [u8; SALT_LEN],
    mac: [u8; MAC_LEN],
}

impl KeyFingerprint {
    /// Length of [`KeyFingerprint::to_bytes`].
    pub const LEN: usize = SALT_LEN + MAC_LEN;

    /// The fingerprint of `key` with a fresh salt.
    pub fn new(key: &CustomerKey) -> Result<Self> {
        let mut salt = [0u8; SALT_LEN];
        getrandom::fill(&mut salt)?;
        let mac = key.mac(&salt).finalize().into_bytes().into();
        Ok(KeyFingerprint { salt, mac })
    }

    /// `Ok` if `key` is the key this fingerprint was made from, else
    /// [`Error::WrongKey`]. The comparison takes constant time.
    pub fn verify(&self, key: &CustomerKey) -> Result<()> {
        key.mac(&self.salt)
            .verify_slice(&self.mac)
            .map_err(|_| Error::WrongKey)
    }

    /// The stored form.
    pub fn to_bytes(&self) -> [u8; Self::LEN] {
        let mut out = [0u8; Self::LEN];
        out[..SALT_LEN].copy_from_slice(&self.salt);
        out[SALT_LEN..].copy_from_slice(&self.mac);
        out
    }

    /// Parses the stored form.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self> {
        if bytes.len() != Self::LEN {
            return Err(Error::Malformed {
                what: "SSE-C key fingerprint",
                reason: "wrong length",
            });
        }
        let mut fp = KeyFingerprint {
            salt: [0; SALT_LEN],
            mac: [0; MAC_LEN],
        };
        fp.salt.copy_from_slice(&bytes[..SALT_LEN]);
        fp.mac.copy_from_slice(&bytes[SALT_LEN..]);
        Ok(fp)
    }

    /// The stored form as standard base64.
    pub fn to_base64(&self) -> String {
        STANDARD.encode(self.to_bytes())
    }

    /// Parses [`KeyFingerprint::to_base64`].
    pub fn from_base64(text: &str) -> Result<Self> {
        let bytes = STANDARD.decode(text.trim()).map_err(|_| Error::Malformed {
            what: "SSE-C key fingerprint",
            reason: "not valid base64",
        })?;
        Self::from_bytes(&bytes)
    }
}

impl fmt::Debug for KeyFingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "KeyFingerprint({})", self.to_base64())
    }
}

impl Serialize for KeyFingerprint {
    fn serialize<S: Serializer>(&self, serializer: S) -> std::result::Result<S::Ok, S::Error> {
        if serializer.is_human_readable() {
            serializer.serialize_str(&self.to_base64())
        } else {
            serializer.serialize_bytes(&self.to_bytes())
        }
    }
}

impl<'de> Deserialize<'de> for KeyFingerprint {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> std::result::Result<Self, D::Error> {
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = KeyFingerprint;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an SSE-C key fingerprint as base64 text or 64 bytes")
            }
            fn visit_str<E: serde::de::Error>(
                self,
                v: &str,
            ) -> std::result::Result<KeyFingerprint, E> {
                KeyFingerprint::from_base64(v).map_err(E::custom)
            }
            fn visit_bytes<E: serde::de::Error>(
                self,
                v: &[u8],
            ) -> std::result::Result<KeyFingerprint, E> {
                KeyFingerprint::from_bytes(v).map_err(E::custom)
            }
        }
        if deserializer.is_human_readable() {
            deserializer.deserialize_str(Visitor)
        } else {
            deserializer.deserialize_bytes(Visitor)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::{DataKey, KeyContext, Mode, open_data_key, seal_data_key};
    use crate::encoding::hex;

    #[test]
    fn fingerprint_recognises_the_key_and_refuses_another() {
        let key = CustomerKey::generate().unwrap();
        let fp = KeyFingerprint::new(&key).unwrap();
        fp.verify(&key).unwrap();
        let other = CustomerKey::generate().unwrap();
        assert!(matches!(fp.verify(&other), Err(Error::WrongKey)));

        // Salted: the same key gives another fingerprint each time, and neither holds
        // the key.
        let fp2 = KeyFingerprint::new(&key).unwrap();
        assert_ne!(fp, fp2);
        fp2.verify(&key).unwrap();
        let bytes = fp.to_bytes();
        assert!(!bytes.windows(KEY_LEN).any(|w| w == key.expose_secret()));

        let json = serde_json::to_string(&fp).unwrap();
        let back: KeyFingerprint = serde_json::from_str(&json).unwrap();
        back.verify(&key).unwrap();
        assert!(KeyFingerprint::from_bytes(&bytes[..63]).is_err());
    }

    #[test]
    fn derived_kek_depends_on_key_and_salt_and_opens_only_with_the_right_key() {
        let key = CustomerKey::generate().unwrap();
        let salt = CustomerKey::new_salt().unwrap();
        let kek = key.derive_kek(&salt);
        assert_eq!(kek.expose_secret(), key.derive_kek(&salt).expose_secret());
        assert_ne!(kek.expose_secret(), key.expose_secret());
        let other_salt = CustomerKey::new_salt().unwrap();
        assert_ne!(
            kek.expose_secret(),
            key.derive_kek(&other_salt).expose_secret()
        );

        let ctx = KeyContext {
            bucket: "b",
            key: "k",
            mode: Mode::SseC,
            key_id: "sse-c",
            key_version: 1,
        };
        let dek = DataKey::generate().unwrap();
        let sealed = seal_data_key(&kek, &dek, &ctx).unwrap();
        let wrong = CustomerKey::generate().unwrap().derive_kek(&salt);
        assert!(matches!(
            open_data_key(&wrong, &sealed, &ctx),
            Err(Error::SealedKeyMismatch)
        ));
        let opened = open_data_key(&kek, &sealed, &ctx).unwrap();
        assert_eq!(opened.expose_secret(), dek.expose_secret());
    }

    #[test]
    fn derive_kek_matches_rfc5869_construction() {
        // HKDF-SHA256 with a fixed key and salt, computed independently with
        // Python's hmac module: PRK = HMAC(salt, ikm); OKM = HMAC(PRK, info ‖ 0x01).
        let key = CustomerKey::from_slice(&[0x11; 32]).unwrap();
        let kek = key.derive_kek(&[0x22; 32]);
        assert_eq!(hex(kek.expose_secret()), HKDF_EXPECTED);
    }

    const HKDF_EXPECTED: &str = "9fbdde49647f72e933e069e4af81a3a8889185a15dbd64d855909d3aa469f61c";

    #[test]
    fn md5_header_value() {
        // Expected value from `openssl md5 -binary | base64` over bytes 0x00..=0x1f.
        let key: [u8; 32] = core::array::from_fn(|i| i as u8);
        assert_eq!(key_md5_base64(&key), "tP/LI3N87DFaSk0aoqYgzg==");
        let ck = CustomerKey::from_base64(&STANDARD.encode(key)).unwrap();
        assert_eq!(ck.md5_base64(), key_md5_base64(&key));
        assert!(matches!(
            CustomerKey::from_base64("c2hvcnQ="),
            Err(Error::InvalidKey { .. })
        ));
    }
}
