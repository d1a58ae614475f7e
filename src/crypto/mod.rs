//! The encryption engine of the local store.
//!
//! Owns: AES-256-GCM (behind one small seam, [`Cipher`]), the segmented STREAM format
//! of object data ([`Engine`]), data keys and how they are sealed to their object
//! ([`seal_data_key`]), versioned key material sealed by the master key ([`Keyring`]),
//! loading the master key ([`MasterKey`]) and SSE-C key handling ([`CustomerKey`]).
//!
//! Must not touch: jobs, S3, the store's layout or files (the only file it reads is the
//! master key file it is pointed at). Nothing here logs: no secret can reach `tracing`
//! from this module because this module never calls it. Every key type zeroizes its
//! bytes when dropped and prints `[REDACTED]` under `Debug`.

mod cipher;
mod error;
mod keyring;
mod keys;
mod master;
mod seal;
mod ssec;
mod stream;

#[cfg(test)]
mod proptests;

pub use cipher::{AeadError, Backend, Cipher, KEY_LEN, NONCE_LEN, TAG_LEN};
pub use error::Error;
pub use keyring::Keyring;
pub use keys::{DataKey, SecretKey};
pub use master::{MASTER_KEY_ENV, MasterKey};
pub use seal::{KeyContext, Mode, SealedKey, open_data_key, seal_data_key};
pub use ssec::{CustomerKey, KeyFingerprint, SALT_LEN, key_md5_base64};
pub use stream::{
    BATCH_SEGMENTS, DEFAULT_SEGMENT_SIZE, Engine, FORMAT_VERSION, HEADER_LEN, Header, Layout,
    MAGIC, MAX_SEGMENT_SIZE, MIN_SEGMENT_SIZE, PREFIX_LEN,
};

/// Result of every fallible operation of the crypto module.
pub type Result<T, E = Error> = std::result::Result<T, E>;
