//! The keys of the local KMS: one file each, `keys/kms/<key-id>.json` (id, aliases,
//! description, enabled, created, and its keyring sealed by the master key); how a name
//! for a key (id, alias, ARN) finds one; and sealing and opening data keys with a key's
//! versions, bound to their object. Must not touch the root keyring or the audit log:
//! the operations in mod.rs audit what is done here, and hold the keys lock for every
//! key file written here.

use std::fs;
use std::io;
use std::path::PathBuf;
use std::sync::PoisonError;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::KeyManager;
use super::audit::{AuditOperation, AuditRecord};
use super::error::{KeyError, io_error};
use crate::crypto::{DataKey, KeyContext, Keyring, Mode, SealedKey, open_data_key, seal_data_key};
use crate::durable;

const ALIAS_PREFIX: &str = "alias/";
/// Alias names under `aws/` are reserved for keys reseal manages itself (as in AWS).
pub(super) const RESERVED_ALIAS_PREFIX: &str = "alias/aws/";
const MAX_ALIAS_NAME_LEN: usize = 250;
pub(super) const KMS_DIR: &str = "kms";

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

/// `kms/<id>.json`.
#[derive(Debug, Serialize, Deserialize)]
pub(super) struct KeyFile {
    pub(super) id: String,
    pub(super) aliases: Vec<String>,
    pub(super) description: String,
    pub(super) enabled: bool,
    pub(super) created: String,
    /// Base64 of [`Keyring::seal`].
    pub(super) keyring: String,
}

/// A KMS key read from its file, its keyring open.
pub(super) struct KmsKey {
    pub(super) file: KeyFile,
    pub(super) keyring: Keyring,
}

impl KmsKey {
    pub(super) fn info(&self) -> KmsKeyInfo {
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

    pub(super) fn require_enabled(&self) -> Result<(), KeyError> {
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
    pub(super) fn seal(
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

    pub(super) fn open(
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
pub(super) fn normalise_alias(input: &str) -> Result<String, KeyError> {
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

impl KeyManager {
    /// [`KeyManager::create_key`] for an alias already checked, audited as `named`; the
    /// caller holds the lock.
    pub(super) fn create_key_audited(
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
    pub(super) fn resolve_sealer(&self, key_id: &str) -> Result<KmsKey, KeyError> {
        match parse_key_ref(key_id)? {
            KeyRef::Id(id) => self
                .read_key(&id)?
                .ok_or_else(|| KeyError::UnknownKey(key_id.to_owned())),
            KeyRef::Alias(_) => Err(KeyError::UnknownKey(key_id.to_owned())),
        }
    }

    /// The KMS key a caller names.
    pub(super) fn resolve(&self, input: &str) -> Result<KmsKey, KeyError> {
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
    pub(super) fn find_alias(&self, alias: &str) -> Result<Option<String>, KeyError> {
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
    pub(super) fn key_files(&self) -> Result<Vec<(String, KeyFile)>, KeyError> {
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
    pub(super) fn read_key(&self, id: &str) -> Result<Option<KmsKey>, KeyError> {
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

    pub(super) fn write_key_file(&self, file: &KeyFile) -> Result<(), KeyError> {
        let path = self.key_path(&file.id);
        let mut bytes = serde_json::to_vec_pretty(file).expect("key files serialise");
        bytes.push(b'\n');
        durable::write_file(&self.tmp, &path, &bytes).map_err(io_error(&path))
    }
}
