//! What can go wrong with the store's keys, and which of it the user can fix (a key's
//! name or state, the master key) rather than the store. Must not touch files or keys: it
//! describes failures, it does not detect them.

use std::io;
use std::path::{Path, PathBuf};

use crate::crypto;

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
    /// opposed to a failure of the store. Every variant, and every crypto error, is named,
    /// so that a new one is classified on purpose.
    pub fn is_user_error(&self) -> bool {
        use crypto::Error as C;
        match self {
            KeyError::NotInitialised { .. }
            | KeyError::AlreadyInitialised { .. }
            | KeyError::WrongMasterKey { .. }
            | KeyError::UnknownKey(_)
            | KeyError::Disabled(_)
            | KeyError::AliasTaken { .. }
            | KeyError::BadAlias { .. } => true,
            KeyError::Io { .. } | KeyError::Corrupt { .. } => false,
            KeyError::Crypto(e) => match e {
                // The master key is the one thing here the user gives.
                C::MasterKeyMissing
                | C::MasterKeyFilePermissions { .. }
                | C::MasterKeyFileRead { .. }
                | C::InvalidKey { .. } => true,
                C::Random(_)
                | C::NotSealed
                | C::UnsupportedVersion(_)
                | C::InvalidSegmentSize(_)
                | C::InvalidSealedLength { .. }
                | C::Truncated { .. }
                | C::TrailingData { .. }
                | C::SegmentAuth { .. }
                | C::TooLarge
                | C::RangeOutOfBounds { .. }
                | C::BufferLength { .. }
                | C::Io(_)
                | C::Malformed { .. }
                | C::SealedKeyMismatch
                | C::KeyringMismatch { .. }
                | C::UnknownKeyVersion { .. }
                | C::WrongKey => false,
            },
        }
    }
}

pub(super) fn io_error(path: &Path) -> impl FnOnce(io::Error) -> KeyError + '_ {
    move |source| KeyError::Io {
        path: path.to_owned(),
        source,
    }
}
