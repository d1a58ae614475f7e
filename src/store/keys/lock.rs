//! The lock of the keys folder: `keys/.lock`, an exclusive `flock` held around every
//! read-modify-write of a key file or of the root keyring, so that several processes using
//! one store neither lose each other's changes nor give one alias to two keys. Audit
//! appends do not take it (see `audited`). Must not touch anything but its lock file.

use std::fs::{File, OpenOptions};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use super::error::{KeyError, io_error};

const LOCK_FILE: &str = ".lock";

/// Takes the exclusive lock of the keys folder; released when the file is dropped.
pub(super) fn lock(dir: &Path) -> Result<File, KeyError> {
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
