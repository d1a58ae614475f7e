//! Versioned 256-bit key material, stored encrypted under the master key.
//!
//! The store's root key (SSE-S3) is a keyring with id `root`; each key of the local KMS
//! is a keyring with the KMS key id. Rotation adds a version and makes it current; old
//! versions stay, because objects sealed under them must still open. Which keys are
//! enabled, their aliases and the audit log are the store's business, not this one's.

use std::collections::BTreeMap;
use std::fmt;

use zeroize::Zeroizing;

use super::cipher::{Cipher, KEY_LEN, NONCE_LEN, TAG_LEN};
use super::seal::push_field;
use super::{Error, MasterKey, Result, SecretKey};

const MAGIC: [u8; 4] = *b"RSKR";
const FORMAT_VERSION: u8 = 1;
const PREFIX_LEN: usize = MAGIC.len() + 1;
/// Associated data label: the master key seals nothing else with this label, so a
/// keyring file cannot be passed off as any other sealed value or vice versa.
const LABEL: &[u8] = b"reseal/keyring/v1";
const ENTRY_LEN: usize = 4 + KEY_LEN;

/// A key id and its versions of key material; one version is current.
#[derive(Clone)]
pub struct Keyring {
    id: String,
    current: u32,
    versions: BTreeMap<u32, SecretKey>,
}

impl fmt::Debug for Keyring {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Keyring")
            .field("id", &self.id)
            .field("current", &self.current)
            .field("versions", &self.versions.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

impl Keyring {
    /// The id of the store's root keyring (SSE-S3).
    pub const ROOT_ID: &'static str = "root";

    /// A new keyring whose version 1 is fresh random key material.
    pub fn create(id: impl Into<String>) -> Result<Self> {
        let mut versions = BTreeMap::new();
        versions.insert(1, SecretKey::generate()?);
        Ok(Keyring {
            id: id.into(),
            current: 1,
            versions,
        })
    }

    /// The key id.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The version new objects are sealed under.
    pub fn current_version(&self) -> u32 {
        self.current
    }

    /// The current version and its key.
    pub fn current(&self) -> (u32, &SecretKey) {
        match self.versions.get(&self.current) {
            Some(key) => (self.current, key),
            // Every constructor and `rotate` keep `current` among the versions.
            None => unreachable!("keyring {:?} lost its current version", self.id),
        }
    }

    /// The key of `version`, to open objects sealed under it.
    pub fn get(&self, version: u32) -> Result<&SecretKey> {
        self.versions
            .get(&version)
            .ok_or_else(|| Error::UnknownKeyVersion {
                id: self.id.clone(),
                version,
            })
    }

    /// Every version held, oldest first.
    pub fn versions(&self) -> impl Iterator<Item = u32> + '_ {
        self.versions.keys().copied()
    }

    /// Adds a version of fresh key material and makes it current. Returns its number.
    pub fn rotate(&mut self) -> Result<u32> {
        let next = self
            .versions
            .keys()
            .next_back()
            .copied()
            .unwrap_or(0)
            .checked_add(1)
            .ok_or(Error::TooLarge)?;
        self.versions.insert(next, SecretKey::generate()?);
        self.current = next;
        Ok(next)
    }

    /// Encrypts the keyring under `master`, bound to its id.
    ///
    /// Bytes: `"RSKR"` ‖ format version (1) ‖ nonce (12) ‖ AES-256-GCM ciphertext ‖ tag
    /// (16), associated data = label ‖ the first 5 bytes ‖ id (length-prefixed); the
    /// plaintext is current version (u32 BE) ‖ count (u32 BE) ‖ count × (version
    /// (u32 BE) ‖ key (32)).
    pub fn seal(&self, master: &MasterKey) -> Result<Vec<u8>> {
        let mut plain = Zeroizing::new(Vec::with_capacity(8 + self.versions.len() * ENTRY_LEN));
        plain.extend_from_slice(&self.current.to_be_bytes());
        let count = u32::try_from(self.versions.len()).map_err(|_| Error::TooLarge)?;
        plain.extend_from_slice(&count.to_be_bytes());
        for (version, key) in &self.versions {
            plain.extend_from_slice(&version.to_be_bytes());
            plain.extend_from_slice(key.expose_secret());
        }

        let mut nonce = [0u8; NONCE_LEN];
        getrandom::fill(&mut nonce)?;
        let mut out = Vec::with_capacity(PREFIX_LEN + NONCE_LEN + plain.len() + TAG_LEN);
        out.extend_from_slice(&MAGIC);
        out.push(FORMAT_VERSION);
        out.extend_from_slice(&nonce);
        let body = out.len();
        out.extend_from_slice(&plain);
        let tag = Cipher::new(master.expose_secret())
            .seal_in_place(&nonce, &aad(&self.id), &mut out[body..])
            .map_err(|_| Error::TooLarge)?;
        out.extend_from_slice(&tag);
        Ok(out)
    }

    /// Decrypts a keyring sealed by [`Keyring::seal`] for key id `id`. Another master
    /// key, another id, or any altered byte fails with [`Error::KeyringMismatch`].
    pub fn open(id: &str, sealed: &[u8], master: &MasterKey) -> Result<Self> {
        let malformed = |reason| Error::Malformed {
            what: "keyring",
            reason,
        };
        if sealed.len() < PREFIX_LEN + NONCE_LEN + TAG_LEN || sealed[..MAGIC.len()] != MAGIC {
            return Err(malformed("not a sealed keyring"));
        }
        if sealed[MAGIC.len()] != FORMAT_VERSION {
            return Err(malformed("unknown format version"));
        }
        let mut nonce = [0u8; NONCE_LEN];
        nonce.copy_from_slice(&sealed[PREFIX_LEN..PREFIX_LEN + NONCE_LEN]);
        let (ciphertext, tag) = sealed[PREFIX_LEN + NONCE_LEN..]
            .split_at(sealed.len() - PREFIX_LEN - NONCE_LEN - TAG_LEN);
        let mut tag_bytes = [0u8; TAG_LEN];
        tag_bytes.copy_from_slice(tag);
        let mut plain = Zeroizing::new(ciphertext.to_vec());
        Cipher::new(master.expose_secret())
            .open_in_place(&nonce, &aad(id), &mut plain, &tag_bytes)
            .map_err(|_| Error::KeyringMismatch { id: id.to_owned() })?;

        // Authentic, so written by `seal`; the checks guard against a bug, not an attacker.
        let (head, entries) = plain
            .split_at_checked(8)
            .ok_or(malformed("short plaintext"))?;
        let current = u32::from_be_bytes([head[0], head[1], head[2], head[3]]);
        let count = u32::from_be_bytes([head[4], head[5], head[6], head[7]]) as usize;
        if count == 0 || entries.len() != count * ENTRY_LEN {
            return Err(malformed("version count does not match"));
        }
        let mut versions = BTreeMap::new();
        for entry in entries.chunks_exact(ENTRY_LEN) {
            let version = u32::from_be_bytes([entry[0], entry[1], entry[2], entry[3]]);
            versions.insert(version, SecretKey::from_slice(&entry[4..])?);
        }
        if versions.len() != count || !versions.contains_key(&current) {
            return Err(malformed("inconsistent versions"));
        }
        Ok(Keyring {
            id: id.to_owned(),
            current,
            versions,
        })
    }
}

fn aad(id: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(LABEL.len() + PREFIX_LEN + 16 + id.len());
    push_field(&mut out, LABEL);
    out.extend_from_slice(&MAGIC);
    out.push(FORMAT_VERSION);
    push_field(&mut out, id.as_bytes());
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::{DataKey, KeyContext, Mode, open_data_key, seal_data_key};

    #[test]
    fn rotate_keeps_old_versions_that_still_open_old_objects() {
        let mut ring = Keyring::create(Keyring::ROOT_ID).unwrap();
        assert_eq!(ring.current_version(), 1);
        let dek = DataKey::generate().unwrap();
        let ctx = KeyContext {
            bucket: "b",
            key: "k",
            mode: Mode::SseS3,
            key_id: Keyring::ROOT_ID,
            key_version: 1,
        };
        let sealed_v1 = seal_data_key(ring.current().1, &dek, &ctx).unwrap();
        let v1_bytes = *ring.get(1).unwrap().expose_secret();

        assert_eq!(ring.rotate().unwrap(), 2);
        assert_eq!(ring.rotate().unwrap(), 3);
        assert_eq!(ring.current_version(), 3);
        assert_eq!(ring.versions().collect::<Vec<_>>(), [1, 2, 3]);
        assert_ne!(ring.current().1.expose_secret(), &v1_bytes);

        let master = MasterKey::generate().unwrap();
        let stored = ring.seal(&master).unwrap();
        let back = Keyring::open(Keyring::ROOT_ID, &stored, &master).unwrap();
        assert_eq!(back.current_version(), 3);
        assert_eq!(back.get(1).unwrap().expose_secret(), &v1_bytes);
        let opened = open_data_key(back.get(1).unwrap(), &sealed_v1, &ctx).unwrap();
        assert_eq!(opened.expose_secret(), dek.expose_secret());
        // The current version is another key: the v1 sealed key does not open with it.
        assert!(open_data_key(back.current().1, &sealed_v1, &ctx).is_err());
        assert!(matches!(
            back.get(4),
            Err(Error::UnknownKeyVersion { version: 4, .. })
        ));
    }

    #[test]
    fn sealed_keyring_needs_its_master_key_and_id() {
        let ring = Keyring::create("kms-key-1").unwrap();
        let master = MasterKey::generate().unwrap();
        let stored = ring.seal(&master).unwrap();
        assert!(
            !stored
                .windows(KEY_LEN)
                .any(|w| w == ring.current().1.expose_secret())
        );

        let other = MasterKey::generate().unwrap();
        assert!(matches!(
            Keyring::open("kms-key-1", &stored, &other),
            Err(Error::KeyringMismatch { .. })
        ));
        // A KMS key's file passed off as another key's.
        assert!(matches!(
            Keyring::open("kms-key-2", &stored, &master),
            Err(Error::KeyringMismatch { .. })
        ));
        for i in 0..stored.len() {
            let mut bad = stored.clone();
            bad[i] ^= 0x10;
            assert!(
                Keyring::open("kms-key-1", &bad, &master).is_err(),
                "byte {i}"
            );
        }
        assert!(Keyring::open("kms-key-1", &stored[..10], &master).is_err());
    }

    #[test]
    fn debug_shows_versions_not_keys() {
        let mut ring = Keyring::create("root").unwrap();
        ring.rotate().unwrap();
        let s = format!("{ring:?}");
        assert!(s.contains("current: 2") && s.contains("[1, 2]"), "{s}");
        assert!(!s.contains("SecretKey"), "{s}");
    }
}
