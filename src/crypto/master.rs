//! The master key, which encrypts all key material at rest (root keyring, KMS keys).
//! It comes from outside the data directory: the environment or a private key file.

use std::fs::File;
use std::io::Read;
use std::path::Path;

use zeroize::Zeroizing;

use super::keys::{decode_key_base64, secret_key_type};
use super::{Error, KEY_LEN, Result};

/// Environment variable holding the master key as base64 of 32 bytes.
pub const MASTER_KEY_ENV: &str = "RESEAL_MASTER_KEY";

secret_key_type! {
    /// The master key: seals [`Keyring`](super::Keyring)s and nothing else.
    MasterKey
}

impl MasterKey {
    /// Loads the master key: from `file` when given (a `--master-key-file` flag wins
    /// over the environment), else from `RESEAL_MASTER_KEY`, else
    /// [`Error::MasterKeyMissing`], whose message says how to give one.
    pub fn load(file: Option<&Path>) -> Result<Self> {
        let env = std::env::var(MASTER_KEY_ENV).ok().map(Zeroizing::new);
        Self::from_sources(env.as_deref().map(String::as_str), file)
    }

    /// [`MasterKey::load`] with the environment value passed in.
    pub fn from_sources(env_value: Option<&str>, file: Option<&Path>) -> Result<Self> {
        match (file, env_value) {
            (Some(path), _) => Self::from_file(path),
            (None, Some(text)) if !text.trim().is_empty() => Self::from_base64(text),
            (None, _) => Err(Error::MasterKeyMissing),
        }
    }

    /// Parses base64 of exactly 32 bytes.
    pub fn from_base64(text: &str) -> Result<Self> {
        decode_key_base64("master key", text).map(Self::from_bytes)
    }

    /// Reads a key file holding 32 raw bytes or their base64. On Unix the file must not
    /// be accessible by group or others (mode 0600 or stricter).
    pub fn from_file(path: &Path) -> Result<Self> {
        let read_error = |source| Error::MasterKeyFileRead {
            path: path.to_owned(),
            source,
        };
        let mut file = File::open(path).map_err(read_error)?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            // Checked on the opened file, so the check and the read see the same file.
            let mode = file.metadata().map_err(read_error)?.permissions().mode();
            if mode & 0o077 != 0 {
                return Err(Error::MasterKeyFilePermissions {
                    path: path.to_owned(),
                    mode: mode & 0o7777,
                });
            }
        }
        // A key file is tiny; reading at most a little more than base64 with line
        // breaks tells a wrong file from a key without reading all of it.
        let mut bytes = Zeroizing::new(Vec::with_capacity(256));
        file.by_ref()
            .take(256)
            .read_to_end(&mut bytes)
            .map_err(read_error)?;
        if bytes.len() == KEY_LEN {
            return Self::from_slice(&bytes);
        }
        let invalid = |reason: &str| Error::InvalidKey {
            what: "master key file",
            reason: format!(
                "{}: {reason}; expected 32 raw bytes or their base64",
                path.display()
            ),
        };
        let text = std::str::from_utf8(&bytes).map_err(|_| invalid("neither 32 bytes nor text"))?;
        decode_key_base64("master key file", text)
            .map(Self::from_bytes)
            .map_err(|e| match e {
                Error::InvalidKey { reason, .. } => invalid(&reason),
                other => other,
            })
    }
}

#[cfg(test)]
mod tests {
    use std::fs;

    use base64::Engine as _;
    use base64::engine::general_purpose::STANDARD;

    use super::*;

    const B64: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";

    fn expected() -> [u8; 32] {
        core::array::from_fn(|i| i as u8)
    }

    #[cfg(unix)]
    fn write_key(dir: &Path, name: &str, contents: &[u8], mode: u32) -> std::path::PathBuf {
        use std::os::unix::fs::PermissionsExt;
        let path = dir.join(name);
        fs::write(&path, contents).unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(mode)).unwrap();
        path
    }

    #[test]
    fn from_environment_value() {
        let key = MasterKey::from_sources(Some(B64), None).unwrap();
        assert_eq!(key.expose_secret(), &expected());
        assert_eq!(format!("{key:?}"), "MasterKey([REDACTED])");
    }

    #[test]
    fn missing_key_says_how_to_give_one() {
        for env in [None, Some(""), Some("  \n")] {
            let err = MasterKey::from_sources(env, None).unwrap_err();
            assert!(matches!(err, Error::MasterKeyMissing));
            let msg = err.to_string();
            assert!(
                msg.contains("RESEAL_MASTER_KEY") && msg.contains("--master-key-file"),
                "{msg}"
            );
        }
    }

    #[test]
    fn bad_base64_or_length_is_a_clear_error() {
        let short = STANDARD.encode([1u8; 16]);
        let long = STANDARD.encode([1u8; 33]);
        for (text, needle) in [
            ("%%%not-base64%%%", "not valid base64"),
            (short.as_str(), "16 bytes, expected 32"),
            (long.as_str(), "33 bytes, expected 32"),
        ] {
            let err = MasterKey::from_sources(Some(text), None).unwrap_err();
            assert!(matches!(
                err,
                Error::InvalidKey {
                    what: "master key",
                    ..
                }
            ));
            assert!(err.to_string().contains(needle), "{err}");
        }
    }

    #[cfg(unix)]
    #[test]
    fn key_file_raw_or_base64_with_mode_0600() {
        let dir = tempfile::tempdir().unwrap();
        let raw = write_key(dir.path(), "raw", &expected(), 0o600);
        let b64 = write_key(dir.path(), "b64", format!("{B64}\n").as_bytes(), 0o400);
        for path in [&raw, &b64] {
            let key = MasterKey::from_file(path).unwrap();
            assert_eq!(key.expose_secret(), &expected());
        }
        // The file wins over the environment.
        let other = STANDARD.encode([9u8; 32]);
        let key = MasterKey::from_sources(Some(&other), Some(&raw)).unwrap();
        assert_eq!(key.expose_secret(), &expected());
    }

    #[cfg(unix)]
    #[test]
    fn key_file_readable_by_others_is_refused_with_chmod_hint() {
        let dir = tempfile::tempdir().unwrap();
        for mode in [0o644, 0o640, 0o604, 0o660] {
            let path = write_key(dir.path(), "key", &expected(), mode);
            let err = MasterKey::from_file(&path).unwrap_err();
            assert!(
                matches!(err, Error::MasterKeyFilePermissions { mode: m, .. } if m == mode),
                "{err}"
            );
            assert!(
                err.to_string()
                    .contains(&format!("chmod 600 {}", path.display())),
                "{err}"
            );
        }
    }

    #[cfg(unix)]
    #[test]
    fn key_file_of_wrong_size_or_missing_is_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = write_key(dir.path(), "short", &[7u8; 31], 0o600);
        let err = MasterKey::from_file(&path).unwrap_err();
        assert!(matches!(err, Error::InvalidKey { .. }), "{err}");
        assert!(
            err.to_string().contains("32 raw bytes or their base64"),
            "{err}"
        );

        let err = MasterKey::from_file(&dir.path().join("absent")).unwrap_err();
        assert!(matches!(err, Error::MasterKeyFileRead { .. }), "{err}");
    }
}
