//! The audit log of the local KMS: `keys/audit.log`, one JSON [`AuditRecord`] per line
//! for every use or change of a KMS key, with its outcome. A record never holds key
//! bytes, and an operation whose record cannot be written fails; records are fsynced in
//! groups ([`AuditLog`]), each durable before its operation returns. Must not touch key files
//! or the root keyring, nor decide anything about keys: it records what the KMS did.

use std::fmt;
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};

use serde::{Deserialize, Serialize};

use super::KeyManager;
use super::error::{KeyError, io_error};
use crate::crypto::Mode;

pub(super) const AUDIT_FILE: &str = "audit.log";

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
    pub(super) fn new(
        operation: AuditOperation,
        key_id: &str,
        context: Option<AuditContext>,
    ) -> Self {
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

pub(super) fn audit_context(mode: Mode, bucket: &str, key: &str) -> Option<AuditContext> {
    Some(AuditContext {
        bucket: bucket.to_owned(),
        key: key.to_owned(),
        mode: mode.label().to_owned(),
    })
}

/// `audit.log`, opened for appending, and its group commit: a record is durable once an
/// fsync that began after it was written has ended, so a caller whose record another
/// caller's fsync already covered does not fsync again. Under concurrent KMS operations
/// (an endpoint re-sealing many objects at once) one fsync then serves many records
/// instead of each waiting on its own.
pub(super) struct AuditLog {
    file: File,
    /// Records written so far (each counted once its write has returned).
    written: AtomicU64,
    /// Records known durable: every record counted in `written` when an fsync began, once
    /// it ended. Held while an fsync runs, so that the callers behind it find their
    /// records covered instead of queueing fsyncs of their own.
    synced: Mutex<u64>,
}

impl AuditLog {
    /// Appends `line` (one record) and returns once it is durable.
    fn append(&self, line: &[u8]) -> std::io::Result<()> {
        // One write(2) on an O_APPEND file: lines of concurrent writers, in this process or
        // others, do not interleave, so appends need not take the keys lock.
        (&self.file).write_all(line)?;
        let mine = self.written.fetch_add(1, Ordering::AcqRel) + 1;
        let mut synced = self.synced.lock().unwrap_or_else(PoisonError::into_inner);
        if *synced >= mine {
            return Ok(());
        }
        // Every record counted here was written before this fsync begins.
        let upto = self.written.load(Ordering::Acquire);
        self.file.sync_data()?;
        *synced = upto;
        Ok(())
    }
}

/// `audit.log` in `dir`, opened for appending; created when missing.
pub(super) fn open_log(dir: &Path) -> Result<AuditLog, KeyError> {
    let path = dir.join(AUDIT_FILE);
    let file = OpenOptions::new()
        .append(true)
        .create(true)
        .mode(0o600)
        .open(&path)
        .map_err(io_error(&path))?;
    Ok(AuditLog {
        file,
        written: AtomicU64::new(0),
        synced: Mutex::new(0),
    })
}

/// The records of the log in `dir`, oldest first; only those about `key_id` (as the key
/// used or as the source of a ReEncrypt) when given.
pub(super) fn read_log(dir: &Path, key_id: Option<&str>) -> Result<Vec<AuditRecord>, KeyError> {
    let path = dir.join(AUDIT_FILE);
    let file = File::open(&path).map_err(io_error(&path))?;
    let mut records = Vec::new();
    for (index, line) in BufReader::new(file).lines().enumerate() {
        let line = line.map_err(io_error(&path))?;
        if line.trim().is_empty() {
            continue;
        }
        let record: AuditRecord = serde_json::from_str(&line).map_err(|e| KeyError::Corrupt {
            path: path.clone(),
            message: format!("line {}: {e}", index + 1),
        })?;
        if key_id.is_none_or(|id| record.concerns(id)) {
            records.push(record);
        }
    }
    Ok(records)
}

impl KeyManager {
    /// Runs `operation` and appends its audit record, completed by `operation` and with
    /// the outcome. A record that cannot be written fails the operation: no use of a KMS
    /// key goes unrecorded.
    pub(super) fn audited<T>(
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
        let path = self.dir.join(AUDIT_FILE);
        self.audit.append(&line).map_err(io_error(&path))?;
        result
    }
}
