//! The root keyring, which seals the data keys of SSE-S3 objects: `keys/root.keyring`,
//! sealed by the master key; the copy each process caches and reads again when another
//! process has rotated it; and the context that binds a data key it seals to one object.
//! Root-key operations are not audited: the audit log is the KMS's. Must not touch the
//! KMS keys or the audit log.

use std::fs::{self, File};
use std::io::{self, Read};
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::sync::PoisonError;

use super::error::{KeyError, io_error};
use super::{KeyManager, store_dir};
use crate::crypto::{self, KeyContext, Keyring, MasterKey, Mode};

pub(super) const ROOT_FILE: &str = "root.keyring";

/// What identifies one version of a file on disk. Every write replaces the file by a
/// rename, so a changed stamp means the content may have changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct FileStamp {
    dev: u64,
    ino: u64,
    len: u64,
    mtime: i64,
    mtime_nsec: i64,
}

impl FileStamp {
    pub(super) fn of(meta: &fs::Metadata) -> Self {
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
pub(super) struct RootCache {
    pub(super) keyring: Keyring,
    pub(super) stamp: FileStamp,
}

pub(super) fn root_context<'a>(bucket: &'a str, key: &'a str, version: u32) -> KeyContext<'a> {
    KeyContext {
        bucket,
        key,
        mode: Mode::SseS3,
        key_id: Keyring::ROOT_ID,
        key_version: version,
    }
}

pub(super) fn load_root(dir: &Path, master: &MasterKey) -> Result<RootCache, KeyError> {
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

impl KeyManager {
    /// Runs `f` with the root keyring, read again first if another process replaced
    /// its file (a rotation); a `stat` per call keeps long-running processes current.
    pub(super) fn with_root<T>(
        &self,
        f: impl FnOnce(&Keyring) -> Result<T, KeyError>,
    ) -> Result<T, KeyError> {
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
