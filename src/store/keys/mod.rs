//! The store's key manager: the SSE-S3 root key and the keys of the local KMS, sealed by
//! the master key, and the audit log of every use of a KMS key.
//!
//! Owns the folder `STORE/keys/`:
//! - `root.keyring` — the root [`Keyring`] (id [`Keyring::ROOT_ID`]), sealed by the master key;
//! - `kms/<key-id>.json` — one KMS key: id, aliases, description, enabled, created, and its
//!   keyring sealed by the master key (base64);
//! - `audit.log` — one JSON [`AuditRecord`] per line, appended and fsynced;
//! - `.lock` — an exclusive `flock` held around every rewrite of the files above, so that
//!   read-modify-write updates by several processes do not lose each other's changes.
//!
//! Every file is written with mode 0600, the keyrings and key files through
//! [`durable::write_file`]. No key bytes are stored unsealed, logged, audited or put in an
//! error; the only secret that leaves this module is a [`DataKey`] handed to the caller.
//!
//! This file keeps [`KeyManager`]'s public operations; what they are made of has a file
//! each: `kms.rs` (KMS key files, names, sealing), `root.rs` (the root keyring),
//! `audit.rs` (the audit log), `lock.rs` (the keys lock), `error.rs` ([`KeyError`]).
//!
//! Must not touch: objects, buckets, the rest of the store's layout.

mod audit;
mod error;
mod kms;
mod lock;
mod root;

use std::collections::HashMap;
use std::fmt;
use std::fs::{self, DirBuilder};
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, PoisonError, RwLock};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

use crate::crypto::{DataKey, Keyring, MasterKey, Mode, SealedKey, open_data_key, seal_data_key};
use crate::durable;
pub use audit::{AuditContext, AuditOperation, AuditOutcome, AuditRecord};
use audit::{AuditLog, audit_context, open_log, read_log};
pub use error::KeyError;
use error::io_error;
use kms::{KMS_DIR, RESERVED_ALIAS_PREFIX, normalise_alias};
pub use kms::{KmsKeyInfo, KmsSealed};
use lock::lock;
use root::{FileStamp, ROOT_FILE, RootCache, load_root, root_context};

/// The alias of the KMS key used when none is named, as AWS names its S3 default key.
pub const DEFAULT_KMS_ALIAS: &str = "alias/aws/s3";

/// The store's keys, unlocked by the master key. Several processes may use one store at
/// once: every rewrite of a key file happens under `keys/.lock`, and every KMS operation
/// reads the key's file, so a key disabled or rotated by another process takes effect
/// at once. `Send + Sync`: share it between workers behind an `Arc`.
pub struct KeyManager {
    dir: PathBuf,
    tmp: PathBuf,
    master: MasterKey,
    root: RwLock<RootCache>,
    /// Alias → key id, as last found; checked against the key's file at every use.
    aliases: Mutex<HashMap<String, String>>,
    /// `audit.log`, opened for appending.
    audit: AuditLog,
}

impl fmt::Debug for KeyManager {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyManager")
            .field("dir", &self.dir)
            .finish_non_exhaustive()
    }
}

impl KeyManager {
    /// Creates the keys of a new store in `dir` (`STORE/keys`): root keyring version 1
    /// and the default KMS key, alias [`DEFAULT_KMS_ALIAS`]. `tmp` is a folder on the same
    /// filesystem for atomic writes. Refuses when `dir` already holds a root keyring.
    pub fn init(dir: &Path, tmp: &Path, master: MasterKey) -> Result<Self, KeyError> {
        let store = store_dir(dir);
        create_private_dir(&dir.join(KMS_DIR))?;
        create_private_dir(tmp)?;
        {
            let _lock = lock(dir)?;
            let root_path = dir.join(ROOT_FILE);
            if root_path.try_exists().map_err(io_error(&root_path))? {
                return Err(KeyError::AlreadyInitialised { store });
            }
            let keyring = Keyring::create(Keyring::ROOT_ID)?;
            durable::write_file(tmp, &root_path, &keyring.seal(&master)?)
                .map_err(io_error(&root_path))?;
            // `keys/` itself may be new.
            durable::sync_dir(&store).map_err(io_error(&store))?;
        }
        // `open` creates the default KMS key.
        Self::open(dir, tmp, master)
    }

    /// Opens the keys of a store. A master key other than the one the store was created
    /// with fails with [`KeyError::WrongMasterKey`]. Creates the default KMS key if an
    /// interrupted `init` left none.
    pub fn open(dir: &Path, tmp: &Path, master: MasterKey) -> Result<Self, KeyError> {
        let root = load_root(dir, &master)?;
        let audit = open_log(dir)?;
        let manager = KeyManager {
            dir: dir.to_owned(),
            tmp: tmp.to_owned(),
            master,
            root: RwLock::new(root),
            aliases: Mutex::new(HashMap::new()),
            audit,
        };
        if manager.find_alias(DEFAULT_KMS_ALIAS)?.is_none() {
            let _lock = lock(dir)?;
            // Another process may have created it meanwhile.
            if manager.find_alias(DEFAULT_KMS_ALIAS)?.is_none() {
                manager.create_key_audited(
                    DEFAULT_KMS_ALIAS,
                    Ok(Some(DEFAULT_KMS_ALIAS.to_owned())),
                    "Default key for SSE-KMS objects that name no key",
                )?;
            }
        }
        Ok(manager)
    }

    /// Seals `dek` for object `bucket`/`key` under the newest version of the root key.
    /// Returns that version, which the object stores beside the sealed key.
    pub fn root_seal(
        &self,
        dek: &DataKey,
        bucket: &str,
        key: &str,
    ) -> Result<(u32, SealedKey), KeyError> {
        self.with_root(|ring| {
            let (version, kek) = ring.current();
            let sealed = seal_data_key(kek, dek, &root_context(bucket, key, version))?;
            Ok((version, sealed))
        })
    }

    /// Opens a data key sealed by [`KeyManager::root_seal`] for `bucket`/`key`.
    pub fn root_open(
        &self,
        version: u32,
        sealed: &SealedKey,
        bucket: &str,
        key: &str,
    ) -> Result<DataKey, KeyError> {
        self.with_root(|ring| {
            Ok(open_data_key(
                ring.get(version)?,
                sealed,
                &root_context(bucket, key, version),
            )?)
        })
    }

    /// The current version of the root key and every version held, oldest first.
    pub fn root_versions(&self) -> Result<(u32, Vec<u32>), KeyError> {
        self.with_root(|ring| Ok((ring.current_version(), ring.versions().collect())))
    }

    /// Adds a version to the root key and makes it current; returns its number. Objects
    /// sealed under older versions still open.
    pub fn rotate_root(&mut self) -> Result<u32, KeyError> {
        let _lock = lock(&self.dir)?;
        // Another process may have rotated since this one read the keyring.
        let mut fresh = load_root(&self.dir, &self.master)?;
        let version = fresh.keyring.rotate()?;
        let path = self.dir.join(ROOT_FILE);
        durable::write_file(&self.tmp, &path, &fresh.keyring.seal(&self.master)?)
            .map_err(io_error(&path))?;
        fresh.stamp = FileStamp::of(&fs::metadata(&path).map_err(io_error(&path))?);
        *self.root.get_mut().unwrap_or_else(PoisonError::into_inner) = fresh;
        Ok(version)
    }

    /// Creates an enabled KMS key with version 1, and `alias` (`NAME` or `alias/NAME`)
    /// if given. Audited as CreateKey.
    pub fn create_key(
        &self,
        alias: Option<&str>,
        description: &str,
    ) -> Result<KmsKeyInfo, KeyError> {
        let checked = alias
            .map(|a| {
                let alias = normalise_alias(a)?;
                if alias.starts_with(RESERVED_ALIAS_PREFIX) {
                    return Err(KeyError::BadAlias {
                        alias: a.to_owned(),
                        reason: "names starting with aws/ are reserved",
                    });
                }
                Ok(alias)
            })
            .transpose();
        let _lock = lock(&self.dir)?;
        self.create_key_audited(alias.unwrap_or(""), checked, description)
    }

    /// Every KMS key, oldest first.
    pub fn list_keys(&self) -> Result<Vec<KmsKeyInfo>, KeyError> {
        let mut keys = Vec::new();
        for (id, _) in self.key_files()? {
            if let Some(key) = self.read_key(&id)? {
                keys.push(key.info());
            }
        }
        keys.sort_by(|a, b| (&a.created, &a.id).cmp(&(&b.created, &b.id)));
        Ok(keys)
    }

    /// One KMS key, named by id, `alias/NAME`, `NAME` or ARN.
    pub fn describe_key(&self, id_or_alias: &str) -> Result<KmsKeyInfo, KeyError> {
        Ok(self.resolve(id_or_alias)?.info())
    }

    /// Enables or disables a KMS key. A disabled key neither seals nor opens data keys.
    /// Audited as EnableKey or DisableKey.
    pub fn set_enabled(&self, id_or_alias: &str, enabled: bool) -> Result<KmsKeyInfo, KeyError> {
        let operation = if enabled {
            AuditOperation::EnableKey
        } else {
            AuditOperation::DisableKey
        };
        self.audited(AuditRecord::new(operation, id_or_alias, None), |record| {
            let _lock = lock(&self.dir)?;
            let mut key = self.resolve(id_or_alias)?;
            record.key_id.clone_from(&key.file.id);
            record.key_version = Some(key.keyring.current_version());
            if key.file.enabled != enabled {
                key.file.enabled = enabled;
                self.write_key_file(&key.file)?;
            }
            Ok(key.info())
        })
    }

    /// Adds a version to an enabled KMS key and makes it current. Data keys sealed under
    /// older versions still open. Audited as RotateKey.
    pub fn rotate_key(&self, id_or_alias: &str) -> Result<KmsKeyInfo, KeyError> {
        let record = AuditRecord::new(AuditOperation::RotateKey, id_or_alias, None);
        self.audited(record, |record| {
            let _lock = lock(&self.dir)?;
            let mut key = self.resolve(id_or_alias)?;
            record.key_id.clone_from(&key.file.id);
            key.require_enabled()?;
            let version = key.keyring.rotate()?;
            record.key_version = Some(version);
            key.file.keyring = STANDARD.encode(key.keyring.seal(&self.master)?);
            self.write_key_file(&key.file)?;
            Ok(key.info())
        })
    }

    /// Seals `dek` for object `bucket`/`key` in `mode` under the current version of a KMS
    /// key (the default key when `None`). Audited as GenerateDataKey.
    pub fn kms_seal(
        &self,
        id_or_alias: Option<&str>,
        dek: &DataKey,
        mode: Mode,
        bucket: &str,
        key: &str,
    ) -> Result<KmsSealed, KeyError> {
        let requested = id_or_alias.unwrap_or(DEFAULT_KMS_ALIAS);
        let record = AuditRecord::new(
            AuditOperation::GenerateDataKey,
            requested,
            audit_context(mode, bucket, key),
        );
        self.audited(record, |record| {
            let kms = self.resolve(requested)?;
            record.key_id.clone_from(&kms.file.id);
            record.key_version = Some(kms.keyring.current_version());
            kms.seal(dek, mode, bucket, key)
        })
    }

    /// Opens a data key sealed by [`KeyManager::kms_seal`] for the same object and mode.
    /// Audited as Decrypt.
    pub fn kms_open(
        &self,
        sealed: &KmsSealed,
        mode: Mode,
        bucket: &str,
        key: &str,
    ) -> Result<DataKey, KeyError> {
        let mut record = AuditRecord::new(
            AuditOperation::Decrypt,
            &sealed.key_id,
            audit_context(mode, bucket, key),
        );
        record.key_version = Some(sealed.key_version);
        self.audited(record, |_| {
            self.resolve_sealer(&sealed.key_id)?
                .open(sealed, mode, bucket, key)
        })
    }

    /// Opens a sealed data key and seals it again under the current version of `to` (the
    /// default key when `None`), without the data key leaving this module: the fast path
    /// when only the KMS key changes. Both keys must be enabled. Audited as ReEncrypt.
    pub fn kms_reseal(
        &self,
        sealed: &KmsSealed,
        to: Option<&str>,
        mode: Mode,
        bucket: &str,
        key: &str,
    ) -> Result<KmsSealed, KeyError> {
        let requested = to.unwrap_or(DEFAULT_KMS_ALIAS);
        let mut record = AuditRecord::new(
            AuditOperation::ReEncrypt,
            requested,
            audit_context(mode, bucket, key),
        );
        record.source_key_id = Some(sealed.key_id.clone());
        record.source_key_version = Some(sealed.key_version);
        self.audited(record, |record| {
            let source = self.resolve_sealer(&sealed.key_id)?;
            let dek = source.open(sealed, mode, bucket, key)?;
            let target = self.resolve(requested)?;
            record.key_id.clone_from(&target.file.id);
            record.key_version = Some(target.keyring.current_version());
            target.seal(&dek, mode, bucket, key)
        })
    }

    /// The audit log, oldest first; only the records about `key` (as the key used or as
    /// the source of a ReEncrypt) when given. A `key` that names no key matches records
    /// of failed attempts that named it exactly so.
    pub fn audit(&self, key: Option<&str>) -> Result<Vec<AuditRecord>, KeyError> {
        let wanted = match key {
            None => None,
            Some(input) => match self.resolve(input) {
                Ok(kms) => Some(kms.file.id),
                Err(KeyError::UnknownKey(_)) => Some(input.to_owned()),
                Err(e) => return Err(e),
            },
        };
        read_log(&self.dir, wanted.as_deref())
    }
}

/// The store folder, for messages: `dir` is `STORE/keys`.
fn store_dir(dir: &Path) -> PathBuf {
    match dir.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent.to_owned(),
        _ => PathBuf::from("."),
    }
}

fn create_private_dir(path: &Path) -> Result<(), KeyError> {
    DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(path)
        .map_err(io_error(path))
}

#[cfg(test)]
mod tests;
