//! The local store: reseal's own object store on a filesystem, where reseal is the server
//! and does the server-side encryption itself with the [`crate::crypto`] engine.
//!
//! Layout of a store folder:
//!
//! ```text
//! reseal-store.json                      format version
//! keys/                                  root keyring, local KMS keys, audit log (keys/)
//! tmp/                                   temporary files of writes in progress
//! buckets/NAME/bucket.json               bucket settings (default encryption, SSE-C block, policy)
//! buckets/NAME/.lock                     held while a write checks and commits
//! buckets/NAME/objects/AB/SHA256.meta    a key's latest version's metadata (object.rs), by key hash
//! buckets/NAME/versions/AB/SHA256/ID.meta  its older versions, in a versioned bucket (versions.rs)
//! buckets/NAME/data/AB/ID                an object's data, immutable, sealed or plain
//! ```
//!
//! Object keys never become paths: a metadata file is named by the SHA-256 of the key,
//! so any key (1 to 1,024 bytes, `../` included) is safe. Writing the metadata file is the
//! commit point; data files are written first, under a fresh id, and never changed. Must
//! not touch jobs or S3; prints nothing.
//!
//! This file keeps the [`Store`] itself (open, init, where things are on disk); each
//! other concern has a file:
//!
//! - `request.rs`: what callers ask (encryption, options, conditions, ranges, copies);
//! - `error.rs`: [`StoreError`];
//! - `bucket.rs`: buckets, their settings and lock;
//! - `write.rs`: put, delete, tags, and the commit every write ends in;
//! - `checksum.rs`: the additional checksums kept with objects and parts;
//! - `copy.rs`: copies of objects and into parts, and what a copy onto itself is;
//! - `read.rs`: head, list, get;
//! - `versions.rs`: version ids, a key's older versions, version listings and deletes;
//! - `reencrypt.rs`: re-encryption in place, by rewrite or by re-sealing data keys;
//! - `multipart.rs`: multipart uploads;
//! - `sealing.rs`: an object's data keys and what binds them to it;
//! - `body.rs`: adaptors that move bytes through pipes, hashes and the crypto engine;
//! - `object.rs`: the metadata file format;
//! - `keys/`: the root keyring, the local KMS and its audit log.

mod body;
mod bucket;
pub mod checksum;
mod copy;
mod error;
pub mod keys;
pub mod multipart;
pub mod object;
mod read;
mod reencrypt;
mod request;
mod sealing;
mod versions;
mod write;

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::crypto::MasterKey;
use crate::durable;
use crate::encoding::hex;
pub use bucket::{BucketInfo, DefaultEncryption, Versioning};
pub use checksum::{
    Checksum, ChecksumAlgorithm, ChecksumRequest, ChecksumType, ChecksumValue, ExpectedChecksum,
    PartChecksum,
};
pub use error::StoreError;
use error::{Result, io_err};
use keys::KeyManager;
use object::MetaMacKey;
pub use object::{DataPart, ObjectMeta, STANDARD_STORAGE_CLASS, SseState};
pub use request::{
    ByteRange, CompletedPart, CopyMethod, CopyObject, CopySource, Directive, Encryption,
    GetRequest, NewMetadata, PartDigests, PutOptions, ReadConditions, Reencrypt, ReencryptMethod,
    WriteCondition,
};
pub use versions::{Deleted, NULL_VERSION, VersionEntry};

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
mod tests_copy;
#[cfg(test)]
mod tests_serve;
#[cfg(test)]
mod tests_versions;
