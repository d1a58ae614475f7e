//! The one error type of the crypto module. Messages never contain key material.

use std::io;
use std::path::PathBuf;

/// Everything that can go wrong while sealing, opening or loading keys.
///
/// The variants about sealed data say *what* is wrong (truncated, data appended, a
/// segment that does not authenticate) so that an operator can tell a cut-off upload
/// from tampering or a wrong key.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The operating system's random generator failed.
    #[error("the operating system's random generator failed: {0}")]
    Random(getrandom::Error),

    /// The bytes do not start with the sealed-object magic.
    #[error("not a sealed object (bad magic)")]
    NotSealed,

    /// The header names a format version this build cannot read.
    #[error("sealed object has format version {0}, this build reads only version 1")]
    UnsupportedVersion(u8),

    /// The header (or the caller) asked for a segment size outside the allowed bounds.
    #[error("segment size {0} is outside the allowed range")]
    InvalidSegmentSize(u32),

    /// The sealed length cannot be a header plus whole segments: a cut in a tag or
    /// header, or a cut right after the header that drops every segment.
    #[error(
        "sealed object is truncated or malformed: {sealed_len} bytes is not a valid sealed length"
    )]
    InvalidSealedLength {
        /// Length of the sealed bytes seen.
        sealed_len: u64,
    },

    /// The sealed object ends early: `segment` authenticates, but as a segment that
    /// is followed by more, so the segments after it were cut off.
    #[error("sealed object is truncated after segment {segment}")]
    Truncated {
        /// Index of the last segment present.
        segment: u64,
    },

    /// Bytes follow the final segment.
    #[error("data appended after the final segment {segment}")]
    TrailingData {
        /// Index of the authentic final segment.
        segment: u64,
    },

    /// A segment does not authenticate: altered bytes, segments swapped or moved, an
    /// edited header, other associated data, or the wrong data key.
    #[error(
        "segment {segment} failed authentication (altered, reordered or cut data, or wrong key)"
    )]
    SegmentAuth {
        /// Index of the segment that failed.
        segment: u64,
    },

    /// The plaintext is too long for the format (2^32 segments).
    #[error("plaintext too large for the sealed format")]
    TooLarge,

    /// A range read asked for bytes beyond the plaintext.
    #[error("range {start}..{end} is not within the plaintext of {len} bytes")]
    RangeOutOfBounds {
        /// First byte asked for.
        start: u64,
        /// One past the last byte asked for.
        end: u64,
        /// Plaintext length.
        len: u64,
    },

    /// A caller-provided output buffer has the wrong length.
    #[error("output buffer has {actual} bytes, {expected} are needed")]
    BufferLength {
        /// Length needed.
        expected: usize,
        /// Length given.
        actual: usize,
    },

    /// Reading sealed or plain bytes, or writing them, failed.
    #[error(transparent)]
    Io(#[from] io::Error),

    /// A sealed data key or keyring is not in a format this build reads.
    #[error("malformed {what}: {reason}")]
    Malformed {
        /// What was being parsed.
        what: &'static str,
        /// What is wrong with it.
        reason: &'static str,
    },

    /// A sealed data key does not open: another key-encryption key, or a context
    /// (bucket, key, mode, key id or version) other than the one it was sealed for.
    #[error("sealed data key does not open with this key and context")]
    SealedKeyMismatch,

    /// A keyring does not open: another master key, another key id, or altered bytes.
    #[error(
        "key material for {id:?} does not open: wrong master key, wrong key id, or altered file"
    )]
    KeyringMismatch {
        /// Key id the caller expected.
        id: String,
    },

    /// A key version that the keyring does not hold.
    #[error("key {id:?} has no version {version}")]
    UnknownKeyVersion {
        /// Key id.
        id: String,
        /// Version asked for.
        version: u32,
    },

    /// The SSE-C key given is not the key the object was written with.
    #[error("the customer-provided key does not match the key the object was encrypted with")]
    WrongKey,

    /// A key given as bytes or base64 is not a 256-bit key.
    #[error("invalid {what}: {reason}")]
    InvalidKey {
        /// Which key.
        what: &'static str,
        /// What is wrong (never the key itself).
        reason: String,
    },

    /// No master key was given.
    #[error(
        "no master key given: set RESEAL_MASTER_KEY to the base64 of 32 random bytes \
         (for example `openssl rand -base64 32`) or pass --master-key-file FILE \
         (32 raw bytes or their base64, mode 0600)"
    )]
    MasterKeyMissing,

    /// The master key file can be read by group or others.
    #[error(
        "master key file {path} is accessible by group or others (mode {mode:04o}); \
         run `chmod 600 {path}`",
        path = .path.display()
    )]
    MasterKeyFilePermissions {
        /// The file.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },

    /// The master key file could not be read.
    #[error("cannot read master key file {path}: {source}", path = .path.display())]
    MasterKeyFileRead {
        /// The file.
        path: PathBuf,
        /// Why.
        source: io::Error,
    },
}

impl From<getrandom::Error> for Error {
    fn from(e: getrandom::Error) -> Self {
        Error::Random(e)
    }
}
