//! Buckets: their folders, their settings file (`bucket.json`: creation time, default
//! encryption, whether SSE-C writes are blocked, versioning, and the bucket policy's text) and the lock
//! a write holds while it checks and commits. A bucket name is checked before it becomes a
//! path. Must not touch objects' metadata or data beyond asking whether a bucket is empty,
//! nor keys; keeps a bucket policy without reading it (`reseal serve` owns its language).

use std::fs::{self, File};
use std::io;

use serde::{Deserialize, Serialize};

use super::error::{Result, StoreError, io_err};
use super::{Encryption, Store, create_private_dir};
use crate::durable;

/// A bucket's default encryption, applied when a write names none.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "mode")]
pub enum DefaultEncryption {
    #[serde(rename = "SSE-S3")]
    SseS3,
    #[serde(rename = "SSE-KMS")]
    SseKms {
        key_id: Option<String>,
        #[serde(default)]
        bucket_key: bool,
    },
    #[serde(rename = "DSSE-KMS")]
    DsseKms { key_id: String },
}

impl DefaultEncryption {
    pub fn to_encryption(&self) -> Encryption {
        match self {
            DefaultEncryption::SseS3 => Encryption::SseS3,
            DefaultEncryption::SseKms { key_id, bucket_key } => Encryption::SseKms {
                key_id: key_id.clone(),
                bucket_key: *bucket_key,
            },
            DefaultEncryption::DsseKms { key_id } => Encryption::DsseKms {
                key_id: key_id.clone(),
            },
        }
    }
}

/// A bucket's versioning status, as S3 has it: off until it is first enabled, then enabled
/// or suspended, never off again.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum Versioning {
    /// Never enabled: a write replaces the object, a delete removes it.
    #[default]
    Unversioned,
    /// Every write makes a new version with its own id; a delete leaves a delete marker.
    Enabled,
    /// Writes make (and replace) the `null` version; older versions are kept.
    Suspended,
}

impl Versioning {
    fn is_unversioned(&self) -> bool {
        *self == Versioning::Unversioned
    }

    /// Whether the bucket keeps a key's older versions.
    pub fn keeps_versions(self) -> bool {
        self != Versioning::Unversioned
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BucketInfo {
    pub name: String,
    pub created: i64,
    pub default_encryption: DefaultEncryption,
    /// Whether new objects may not be written with SSE-C (S3's `BlockedEncryptionTypes`):
    /// puts, copies, multipart uploads and re-encryptions to SSE-C are refused
    /// ([`StoreError::EncryptionTypeBlocked`]); SSE-C objects already there stay readable.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub sse_c_blocked: bool,
    /// Whether the bucket keeps versions (S3's versioning status).
    #[serde(default, skip_serializing_if = "Versioning::is_unversioned")]
    pub versioning: Versioning,
    /// The bucket policy, as it was given; checked and enforced by whoever serves the
    /// bucket over S3, kept here so that it lives and dies with the bucket.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy: Option<String>,
}

impl BucketInfo {
    /// Refuses a new object (or a new encryption of one) at `key` encrypted with `to`,
    /// when the bucket blocks that kind of encryption.
    pub(super) fn check_allowed(&self, key: &str, to: &Encryption) -> Result<()> {
        if self.sse_c_blocked && matches!(to, Encryption::SseC(_)) {
            return Err(StoreError::EncryptionTypeBlocked {
                bucket: self.name.clone(),
                key: key.to_owned(),
            });
        }
        Ok(())
    }
}

impl Store {
    pub fn create_bucket(
        &self,
        name: &str,
        default: Option<DefaultEncryption>,
    ) -> Result<BucketInfo> {
        check_bucket_name(name)?;
        let dir = self.bucket_dir(name);
        match fs::create_dir(&dir) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                return Err(StoreError::BucketExists(name.to_owned()));
            }
            Err(e) => return Err(io_err(&dir)(e)),
        }
        for sub in ["objects", "data"] {
            create_private_dir(&dir.join(sub))?;
        }
        let info = BucketInfo {
            name: name.to_owned(),
            created: crate::time::now_ms(),
            default_encryption: default.unwrap_or(DefaultEncryption::SseS3),
            sse_c_blocked: false,
            versioning: Versioning::Unversioned,
            policy: None,
        };
        self.write_bucket_info(&info)?;
        durable::sync_dir(&self.root.join("buckets")).map_err(io_err(&self.root))?;
        Ok(info)
    }

    fn write_bucket_info(&self, info: &BucketInfo) -> Result<()> {
        let path = self.bucket_dir(&info.name).join("bucket.json");
        let text = serde_json::to_vec_pretty(info).expect("bucket info serialises");
        durable::write_file(&self.tmp, &path, &text).map_err(io_err(&path))
    }

    pub fn bucket(&self, name: &str) -> Result<BucketInfo> {
        check_bucket_name(name).map_err(|_| StoreError::NoSuchBucket(name.to_owned()))?;
        let path = self.bucket_dir(name).join("bucket.json");
        let bytes = match fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(StoreError::NoSuchBucket(name.to_owned()));
            }
            Err(e) => return Err(io_err(&path)(e)),
        };
        serde_json::from_slice(&bytes).map_err(|e| StoreError::Corrupt {
            object: path.display().to_string(),
            message: e.to_string(),
        })
    }

    /// Sets the bucket's default encryption and whether it blocks SSE-C writes (S3 sets
    /// both in one PutBucketEncryption).
    pub fn set_default_encryption(
        &self,
        name: &str,
        default: DefaultEncryption,
        sse_c_blocked: bool,
    ) -> Result<BucketInfo> {
        self.update_bucket(name, |info| {
            info.default_encryption = default;
            info.sse_c_blocked = sse_c_blocked;
        })
    }

    /// Turns versioning on or suspends it; it cannot be turned off once on.
    pub fn set_versioning(&self, name: &str, versioning: Versioning) -> Result<BucketInfo> {
        if versioning == Versioning::Unversioned {
            return Err(StoreError::VersioningCannotBeDisabled(name.to_owned()));
        }
        self.update_bucket(name, |info| info.versioning = versioning)
    }

    /// Keeps `policy` (or none) as the bucket's policy, replacing the one it had.
    pub fn set_bucket_policy(&self, name: &str, policy: Option<String>) -> Result<BucketInfo> {
        self.update_bucket(name, |info| info.policy = policy)
    }

    /// Changes the bucket's settings under its lock, so that two changes to different
    /// settings cannot undo each other.
    fn update_bucket(
        &self,
        name: &str,
        change: impl FnOnce(&mut BucketInfo),
    ) -> Result<BucketInfo> {
        self.bucket(name)?;
        let _lock = self.lock_bucket(name)?;
        let mut info = self.bucket(name)?;
        change(&mut info);
        self.write_bucket_info(&info)?;
        Ok(info)
    }

    pub fn list_buckets(&self) -> Result<Vec<BucketInfo>> {
        let dir = self.root.join("buckets");
        let mut names: Vec<String> = fs::read_dir(&dir)
            .map_err(io_err(&dir))?
            .filter_map(|e| e.ok()?.file_name().into_string().ok())
            .collect();
        names.sort();
        names.iter().map(|n| self.bucket(n)).collect()
    }

    pub fn delete_bucket(&self, name: &str) -> Result<()> {
        self.bucket(name)?;
        if !self.list_versions(name, "")?.is_empty() {
            return Err(StoreError::BucketNotEmpty(name.to_owned()));
        }
        let dir = self.bucket_dir(name);
        fs::remove_dir_all(&dir).map_err(io_err(&dir))?;
        durable::sync_dir(&self.root.join("buckets")).map_err(io_err(&self.root))
    }

    /// Held while a write checks its precondition and commits, so that two writers (two
    /// processes too) cannot both pass a check and then overwrite each other.
    pub(super) fn lock_bucket(&self, bucket: &str) -> Result<File> {
        let path = self.bucket_dir(bucket).join(".lock");
        let file = fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(io_err(&path))?;
        file.lock().map_err(io_err(&path))?;
        Ok(file)
    }
}

pub(super) fn check_bucket_name(name: &str) -> Result<()> {
    let ok = (3..=63).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'.' || b == b'-')
        && name.as_bytes()[0].is_ascii_alphanumeric()
        && name.as_bytes()[name.len() - 1].is_ascii_alphanumeric()
        && !name.contains("..");
    if ok {
        Ok(())
    } else {
        Err(StoreError::InvalidBucketName(name.to_owned()))
    }
}
