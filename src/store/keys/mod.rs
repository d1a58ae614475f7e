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
//! Must not touch: objects, buckets, the rest of the store's layout.

use std::collections::HashMap;
use std::fmt;
use std::fs::{self, DirBuilder, File, OpenOptions};
use std::io::{self, BufRead, BufReader, Read, Write};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, PoisonError, RwLock};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::crypto::{
    self, DataKey, KeyContext, Keyring, MasterKey, Mode, SealedKey, open_data_key, seal_data_key,
};
use crate::durable;

/// The alias of the KMS key used when none is named, as AWS names its S3 default key.
pub const DEFAULT_KMS_ALIAS: &str = "alias/aws/s3";

const ALIAS_PREFIX: &str = "alias/";
/// Alias names under `aws/` are reserved for keys reseal manages itself (as in AWS).
const RESERVED_ALIAS_PREFIX: &str = "alias/aws/";
const MAX_ALIAS_NAME_LEN: usize = 250;
const ROOT_FILE: &str = "root.keyring";
const KMS_DIR: &str = "kms";
const AUDIT_FILE: &str = "audit.log";
const LOCK_FILE: &str = ".lock";

/// What can go wrong with the store's keys. The messages say what to do where the user
/// can do something.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KeyError {
    /// The store has no keys yet.
    #[error("no store keys at {}: run `reseal store init {}`", .store.display(), .store.display())]
    NotInitialised { store: PathBuf },

    /// `init` on a store that already has keys.
    #[error("the store at {} already has keys; refusing to replace them", .store.display())]
    AlreadyInitialised { store: PathBuf },

    /// The master key does not open the root keyring.
    #[error(
        "the master key does not open the keys of the store at {}: wrong master key \
         (RESEAL_MASTER_KEY or --master-key-file), or keys/root.keyring was altered",
        .store.display()
    )]
    WrongMasterKey { store: PathBuf },

    /// No KMS key has this id or alias.
    #[error("no KMS key {0:?} (`reseal keys list` shows the keys)")]
    UnknownKey(String),

    /// The KMS key is disabled.
    #[error("KMS key {0} is disabled; enable it with `reseal keys enable {0}`")]
    Disabled(String),

    /// The alias already belongs to a key.
    #[error("alias {alias} already belongs to KMS key {key_id}")]
    AliasTaken { alias: String, key_id: String },

    /// The alias is not a valid or allowed name.
    #[error("invalid alias {alias:?}: {reason}")]
    BadAlias { alias: String, reason: &'static str },

    /// A file of the store's keys could not be read or written.
    #[error("{}: {source}", .path.display())]
    Io { path: PathBuf, source: io::Error },

    /// Sealing or opening failed, or the master key could not be loaded.
    #[error(transparent)]
    Crypto(#[from] crypto::Error),

    /// A file of the store's keys is not what this build writes.
    #[error("{} is damaged: {message}", .path.display())]
    Corrupt { path: PathBuf, message: String },
}

impl KeyError {
    /// Whether the user can fix this (a key name, a key's state, the master key), as
    /// opposed to a failure of the store.
    pub fn is_user_error(&self) -> bool {
        use crypto::Error as C;
        matches!(
            self,
            KeyError::NotInitialised { .. }
                | KeyError::AlreadyInitialised { .. }
                | KeyError::WrongMasterKey { .. }
                | KeyError::UnknownKey(_)
                | KeyError::Disabled(_)
                | KeyError::AliasTaken { .. }
                | KeyError::BadAlias { .. }
                | KeyError::Crypto(
                    C::MasterKeyMissing
                        | C::MasterKeyFilePermissions { .. }
                        | C::MasterKeyFileRead { .. }
                        | C::InvalidKey { .. }
                )
        )
    }
}

fn io_error(path: &Path) -> impl FnOnce(io::Error) -> KeyError + '_ {
    move |source| KeyError::Io {
        path: path.to_owned(),
        source,
    }
}

/// A KMS key as `describe` shows it. No key material.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct KmsKeyInfo {
    pub id: String,
    pub aliases: Vec<String>,
    pub description: String,
    pub enabled: bool,
    pub created: String,
    pub current_version: u32,
    pub versions: Vec<u32>,
}

/// A data key sealed by a KMS key: what an SSE-KMS object stores.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KmsSealed {
    pub key_id: String,
    pub key_version: u32,
    pub sealed: SealedKey,
}

/// The KMS operations the audit log records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum AuditOperation {
    GenerateDataKey,
    Decrypt,
    ReEncrypt,
    CreateKey,
    EnableKey,
    DisableKey,
    RotateKey,
}

impl AuditOperation {
    /// The name written to the log, as AWS KMS names the operation.
    pub fn as_str(self) -> &'static str {
        match self {
            AuditOperation::GenerateDataKey => "GenerateDataKey",
            AuditOperation::Decrypt => "Decrypt",
            AuditOperation::ReEncrypt => "ReEncrypt",
            AuditOperation::CreateKey => "CreateKey",
            AuditOperation::EnableKey => "EnableKey",
            AuditOperation::DisableKey => "DisableKey",
            AuditOperation::RotateKey => "RotateKey",
        }
    }
}

impl fmt::Display for AuditOperation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AuditOutcome {
    Ok,
    Error,
}

impl AuditOutcome {
    /// The name written to the log.
    pub fn as_str(self) -> &'static str {
        match self {
            AuditOutcome::Ok => "ok",
            AuditOutcome::Error => "error",
        }
    }
}

/// The object a data key belongs to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditContext {
    pub bucket: String,
    pub key: String,
    /// [`Mode::label`].
    pub mode: String,
}

/// One line of `audit.log`: one use or change of a KMS key. Never holds key bytes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditRecord {
    /// RFC 3339, UTC, to the millisecond.
    pub time: String,
    pub operation: AuditOperation,
    /// The key id; what the caller named when that did not resolve to a key.
    pub key_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_version: Option<u32>,
    /// ReEncrypt only: the key the data key was sealed by before.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_key_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_key_version: Option<u32>,
    /// Absent for key administration.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub context: Option<AuditContext>,
    pub outcome: AuditOutcome,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl AuditRecord {
    fn new(operation: AuditOperation, key_id: &str, context: Option<AuditContext>) -> Self {
        AuditRecord {
            time: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            operation,
            key_id: key_id.to_owned(),
            key_version: None,
            source_key_id: None,
            source_key_version: None,
            context,
            outcome: AuditOutcome::Ok,
            error: None,
        }
    }

    /// Whether the record is about `key_id`, as the key used or as the source of a
    /// ReEncrypt.
    fn concerns(&self, key_id: &str) -> bool {
        self.key_id == key_id || self.source_key_id.as_deref() == Some(key_id)
    }
}

fn audit_context(mode: Mode, bucket: &str, key: &str) -> Option<AuditContext> {
    Some(AuditContext {
        bucket: bucket.to_owned(),
        key: key.to_owned(),
        mode: mode.label().to_owned(),
    })
}

/// `kms/<id>.json`.
#[derive(Debug, Serialize, Deserialize)]
struct KeyFile {
    id: String,
    aliases: Vec<String>,
    description: String,
    enabled: bool,
    created: String,
    /// Base64 of [`Keyring::seal`].
    keyring: String,
}

/// A KMS key read from its file, its keyring open.
struct KmsKey {
    file: KeyFile,
    keyring: Keyring,
}

impl KmsKey {
    fn info(&self) -> KmsKeyInfo {
        KmsKeyInfo {
            id: self.file.id.clone(),
            aliases: self.file.aliases.clone(),
            description: self.file.description.clone(),
            enabled: self.file.enabled,
            created: self.file.created.clone(),
            current_version: self.keyring.current_version(),
            versions: self.keyring.versions().collect(),
        }
    }

    fn require_enabled(&self) -> Result<(), KeyError> {
        if self.file.enabled {
            Ok(())
        } else {
            Err(KeyError::Disabled(self.file.id.clone()))
        }
    }

    fn context<'a>(
        &'a self,
        mode: Mode,
        bucket: &'a str,
        key: &'a str,
        version: u32,
    ) -> KeyContext<'a> {
        KeyContext {
            bucket,
            key,
            mode,
            key_id: &self.file.id,
            key_version: version,
        }
    }

    /// Seals `dek` under the current version.
    fn seal(
        &self,
        dek: &DataKey,
        mode: Mode,
        bucket: &str,
        key: &str,
    ) -> Result<KmsSealed, KeyError> {
        self.require_enabled()?;
        let (version, kek) = self.keyring.current();
        let sealed = seal_data_key(kek, dek, &self.context(mode, bucket, key, version))?;
        Ok(KmsSealed {
            key_id: self.file.id.clone(),
            key_version: version,
            sealed,
        })
    }

    fn open(
        &self,
        sealed: &KmsSealed,
        mode: Mode,
        bucket: &str,
        key: &str,
    ) -> Result<DataKey, KeyError> {
        self.require_enabled()?;
        let kek = self.keyring.get(sealed.key_version)?;
        let context = self.context(mode, bucket, key, sealed.key_version);
        Ok(open_data_key(kek, &sealed.sealed, &context)?)
    }
}

/// What a caller named a KMS key by, once parsed.
enum KeyRef {
    /// A key id in its canonical (hyphenated, lowercase) form.
    Id(String),
    /// `alias/NAME`.
    Alias(String),
}

/// Parses a key id, `alias/NAME`, `NAME`, or an ARN ending in `key/ID` or `alias/NAME`.
/// Anything else names no key. A UUID is a key id, never a bare alias name.
fn parse_key_ref(input: &str) -> Result<KeyRef, KeyError> {
    let unknown = || KeyError::UnknownKey(input.to_owned());
    let reference = match input.strip_prefix("arn:") {
        Some(_) => {
            // arn:PARTITION:kms:REGION:ACCOUNT:RESOURCE; an alias NAME has no ':'.
            let resource = input.splitn(6, ':').nth(5).ok_or_else(unknown)?;
            if let Some(id) = resource.strip_prefix("key/") {
                let id = Uuid::parse_str(id).map_err(|_| unknown())?;
                return Ok(KeyRef::Id(id.hyphenated().to_string()));
            }
            if !resource.starts_with(ALIAS_PREFIX) {
                return Err(unknown());
            }
            resource
        }
        None => input,
    };
    if let Ok(id) = Uuid::parse_str(reference) {
        return Ok(KeyRef::Id(id.hyphenated().to_string()));
    }
    normalise_alias(reference)
        .map(KeyRef::Alias)
        .map_err(|_| unknown())
}

/// `NAME` or `alias/NAME` as `alias/NAME`, if NAME is 1 to 250 of `[A-Za-z0-9/_-]`.
fn normalise_alias(input: &str) -> Result<String, KeyError> {
    let bad = |reason| KeyError::BadAlias {
        alias: input.to_owned(),
        reason,
    };
    let name = input.strip_prefix(ALIAS_PREFIX).unwrap_or(input);
    if name.is_empty() || name.len() > MAX_ALIAS_NAME_LEN {
        return Err(bad("the name after alias/ must be 1 to 250 characters"));
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'/' | b'_' | b'-'))
    {
        return Err(bad(
            "the name may contain only letters, digits, '/', '_' and '-'",
        ));
    }
    Ok(format!("{ALIAS_PREFIX}{name}"))
}

/// What identifies one version of a file on disk. Every write replaces the file by a
/// rename, so a changed stamp means the content may have changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct FileStamp {
    dev: u64,
    ino: u64,
    len: u64,
    mtime: i64,
    mtime_nsec: i64,
}

impl FileStamp {
    fn of(meta: &fs::Metadata) -> Self {
        FileStamp {
            dev: meta.dev(),
            ino: meta.ino(),
            len: meta.len(),
            mtime: meta.mtime(),
            mtime_nsec: meta.mtime_nsec(),
        }
    }
}

/// The root keyring as last read, and which file it was read from.
struct RootCache {
    keyring: Keyring,
    stamp: FileStamp,
}

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
    audit: File,
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
        let audit_path = dir.join(AUDIT_FILE);
        let audit = OpenOptions::new()
            .append(true)
            .create(true)
            .mode(0o600)
            .open(&audit_path)
            .map_err(io_error(&audit_path))?;
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
        let path = self.dir.join(AUDIT_FILE);
        let file = File::open(&path).map_err(io_error(&path))?;
        let mut records = Vec::new();
        for (index, line) in BufReader::new(file).lines().enumerate() {
            let line = line.map_err(io_error(&path))?;
            if line.trim().is_empty() {
                continue;
            }
            let record: AuditRecord =
                serde_json::from_str(&line).map_err(|e| KeyError::Corrupt {
                    path: path.clone(),
                    message: format!("line {}: {e}", index + 1),
                })?;
            if wanted.as_deref().is_none_or(|id| record.concerns(id)) {
                records.push(record);
            }
        }
        Ok(records)
    }

    /// Runs `operation` and appends its audit record, completed by `operation` and with
    /// the outcome. A record that cannot be written fails the operation: no use of a KMS
    /// key goes unrecorded.
    fn audited<T>(
        &self,
        mut record: AuditRecord,
        operation: impl FnOnce(&mut AuditRecord) -> Result<T, KeyError>,
    ) -> Result<T, KeyError> {
        let result = operation(&mut record);
        if let Err(e) = &result {
            record.outcome = AuditOutcome::Error;
            record.error = Some(e.to_string());
        }
        let mut line = serde_json::to_vec(&record).expect("audit records serialise");
        line.push(b'\n');
        // One write(2) on an O_APPEND file: lines of concurrent writers, in this process or
        // others, do not interleave, so appends need not take the lock (and the fsyncs of
        // several workers can share one journal commit).
        let path = self.dir.join(AUDIT_FILE);
        (&self.audit)
            .write_all(&line)
            .and_then(|()| self.audit.sync_data())
            .map_err(io_error(&path))?;
        result
    }

    /// [`KeyManager::create_key`] for an alias already checked, audited as `named`; the
    /// caller holds the lock.
    fn create_key_audited(
        &self,
        named: &str,
        alias: Result<Option<String>, KeyError>,
        description: &str,
    ) -> Result<KmsKeyInfo, KeyError> {
        self.audited(
            AuditRecord::new(AuditOperation::CreateKey, named, None),
            |record| {
                let info = self.create_key_locked(alias?, description)?;
                record.key_id.clone_from(&info.id);
                record.key_version = Some(info.current_version);
                Ok(info)
            },
        )
    }

    /// Creates a key; `alias` is already valid. The caller holds the lock, so that two
    /// processes cannot give one alias to two keys.
    fn create_key_locked(
        &self,
        alias: Option<String>,
        description: &str,
    ) -> Result<KmsKeyInfo, KeyError> {
        if let Some(alias) = &alias
            && let Some(owner) = self.find_alias(alias)?
        {
            return Err(KeyError::AliasTaken {
                alias: alias.clone(),
                key_id: owner,
            });
        }
        let id = Uuid::new_v4().hyphenated().to_string();
        let keyring = Keyring::create(id.clone())?;
        let file = KeyFile {
            id,
            aliases: alias.into_iter().collect(),
            description: description.to_owned(),
            enabled: true,
            created: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            keyring: STANDARD.encode(keyring.seal(&self.master)?),
        };
        self.write_key_file(&file)?;
        Ok(KmsKey { file, keyring }.info())
    }

    /// The key that sealed a [`KmsSealed`]: named by its id, which `kms_seal` wrote.
    fn resolve_sealer(&self, key_id: &str) -> Result<KmsKey, KeyError> {
        match parse_key_ref(key_id)? {
            KeyRef::Id(id) => self
                .read_key(&id)?
                .ok_or_else(|| KeyError::UnknownKey(key_id.to_owned())),
            KeyRef::Alias(_) => Err(KeyError::UnknownKey(key_id.to_owned())),
        }
    }

    /// The KMS key a caller names.
    fn resolve(&self, input: &str) -> Result<KmsKey, KeyError> {
        let unknown = || KeyError::UnknownKey(input.to_owned());
        let alias = match parse_key_ref(input)? {
            KeyRef::Id(id) => return self.read_key(&id)?.ok_or_else(unknown),
            KeyRef::Alias(alias) => alias,
        };
        let cached = self
            .aliases
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&alias)
            .cloned();
        if let Some(id) = cached
            && let Some(key) = self.read_key(&id)?
            && key.file.aliases.contains(&alias)
        {
            return Ok(key);
        }
        let id = self.find_alias(&alias)?.ok_or_else(unknown)?;
        self.read_key(&id)?.ok_or_else(unknown)
    }

    /// The id of the key that has `alias`, by reading every key file; remembered.
    fn find_alias(&self, alias: &str) -> Result<Option<String>, KeyError> {
        let owner = self
            .key_files()?
            .into_iter()
            .find(|(_, file)| file.aliases.iter().any(|a| a == alias))
            .map(|(id, _)| id);
        if let Some(id) = &owner {
            self.aliases
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .insert(alias.to_owned(), id.clone());
        }
        Ok(owner)
    }

    /// Every key file, keyrings still sealed. Names that are not `<key-id>.json`
    /// (temporary or foreign files) are not keys.
    fn key_files(&self) -> Result<Vec<(String, KeyFile)>, KeyError> {
        let kms_dir = self.dir.join(KMS_DIR);
        let entries = match fs::read_dir(&kms_dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(io_error(&kms_dir)(e)),
        };
        let mut files = Vec::new();
        for entry in entries {
            let entry = entry.map_err(io_error(&kms_dir))?;
            let name = entry.file_name();
            let Some(id) = name.to_str().and_then(|n| n.strip_suffix(".json")) else {
                continue;
            };
            if Uuid::parse_str(id).is_ok_and(|u| u.hyphenated().to_string() == id)
                && let Some(file) = self.read_key_file(id)?
            {
                files.push((id.to_owned(), file));
            }
        }
        Ok(files)
    }

    fn key_path(&self, id: &str) -> PathBuf {
        self.dir.join(KMS_DIR).join(format!("{id}.json"))
    }

    /// `kms/<id>.json`, or `None` when there is no such key. `id` is canonical.
    fn read_key_file(&self, id: &str) -> Result<Option<KeyFile>, KeyError> {
        let path = self.key_path(id);
        let bytes = match fs::read(&path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(io_error(&path)(e)),
        };
        let file: KeyFile = serde_json::from_slice(&bytes).map_err(|e| KeyError::Corrupt {
            path: path.clone(),
            message: e.to_string(),
        })?;
        if file.id != id {
            return Err(KeyError::Corrupt {
                path,
                message: format!("holds key {:?}", file.id),
            });
        }
        Ok(Some(file))
    }

    /// A KMS key with its keyring opened, or `None` when there is no such key.
    fn read_key(&self, id: &str) -> Result<Option<KmsKey>, KeyError> {
        let Some(file) = self.read_key_file(id)? else {
            return Ok(None);
        };
        let corrupt = |message: String| KeyError::Corrupt {
            path: self.key_path(id),
            message,
        };
        let sealed = STANDARD
            .decode(&file.keyring)
            .map_err(|_| corrupt("keyring is not valid base64".into()))?;
        // The root keyring opened with this master key, so a failure here is the file's.
        let keyring =
            Keyring::open(id, &sealed, &self.master).map_err(|e| corrupt(e.to_string()))?;
        Ok(Some(KmsKey { file, keyring }))
    }

    fn write_key_file(&self, file: &KeyFile) -> Result<(), KeyError> {
        let path = self.key_path(&file.id);
        let mut bytes = serde_json::to_vec_pretty(file).expect("key files serialise");
        bytes.push(b'\n');
        durable::write_file(&self.tmp, &path, &bytes).map_err(io_error(&path))
    }

    /// Runs `f` with the root keyring, read again first if another process replaced
    /// its file (a rotation); a `stat` per call keeps long-running processes current.
    fn with_root<T>(&self, f: impl FnOnce(&Keyring) -> Result<T, KeyError>) -> Result<T, KeyError> {
        let path = self.dir.join(ROOT_FILE);
        let stamp = FileStamp::of(&fs::metadata(&path).map_err(io_error(&path))?);
        {
            let cache = self.root.read().unwrap_or_else(PoisonError::into_inner);
            if cache.stamp == stamp {
                return f(&cache.keyring);
            }
        }
        let fresh = load_root(&self.dir, &self.master)?;
        let mut cache = self.root.write().unwrap_or_else(PoisonError::into_inner);
        *cache = fresh;
        f(&cache.keyring)
    }
}

fn root_context<'a>(bucket: &'a str, key: &'a str, version: u32) -> KeyContext<'a> {
    KeyContext {
        bucket,
        key,
        mode: Mode::SseS3,
        key_id: Keyring::ROOT_ID,
        key_version: version,
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

/// Takes the exclusive lock of the keys folder; released when the file is dropped.
fn lock(dir: &Path) -> Result<File, KeyError> {
    let path = dir.join(LOCK_FILE);
    let file = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(&path)
        .map_err(io_error(&path))?;
    file.lock().map_err(io_error(&path))?;
    Ok(file)
}

fn load_root(dir: &Path, master: &MasterKey) -> Result<RootCache, KeyError> {
    let path = dir.join(ROOT_FILE);
    let mut file = match File::open(&path) {
        Ok(file) => file,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            return Err(KeyError::NotInitialised {
                store: store_dir(dir),
            });
        }
        Err(e) => return Err(io_error(&path)(e)),
    };
    // The stamp of the file read, not of whatever the path names by now.
    let stamp = FileStamp::of(&file.metadata().map_err(io_error(&path))?);
    let mut sealed = Vec::new();
    file.read_to_end(&mut sealed).map_err(io_error(&path))?;
    let keyring = Keyring::open(Keyring::ROOT_ID, &sealed, master).map_err(|e| match e {
        crypto::Error::KeyringMismatch { .. } => KeyError::WrongMasterKey {
            store: store_dir(dir),
        },
        other => KeyError::Corrupt {
            path: path.clone(),
            message: other.to_string(),
        },
    })?;
    Ok(RootCache { keyring, stamp })
}

#[cfg(test)]
mod tests;
