//! Server-side encryption vocabulary shared by every module: the encryption mode an object
//! has ([`SseMode`], as S3 Inventory names it) and the mode a job wants ([`SseSpec`]).
//!
//! SSE-C keys are loaded here and held only in [`Zeroizing`] memory; what may be stored
//! (in the job store, a report, a log) is a [`CustomerKeySource`] and the key's MD5.

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

pub use crate::crypto::CustomerKey;

/// The encryption an object has, with the names S3 Inventory uses in `EncryptionStatus`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum SseMode {
    #[serde(rename = "NOT-SSE")]
    NotSse,
    #[serde(rename = "SSE-S3")]
    SseS3,
    #[serde(rename = "SSE-KMS")]
    SseKms,
    #[serde(rename = "DSSE-KMS")]
    DsseKms,
    #[serde(rename = "SSE-C")]
    SseC,
}

impl SseMode {
    pub const ALL: [SseMode; 5] = [
        SseMode::NotSse,
        SseMode::SseS3,
        SseMode::SseKms,
        SseMode::DsseKms,
        SseMode::SseC,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            SseMode::NotSse => "NOT-SSE",
            SseMode::SseS3 => "SSE-S3",
            SseMode::SseKms => "SSE-KMS",
            SseMode::DsseKms => "DSSE-KMS",
            SseMode::SseC => "SSE-C",
        }
    }
}

impl fmt::Display for SseMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for SseMode {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        SseMode::ALL
            .into_iter()
            .find(|m| m.as_str().eq_ignore_ascii_case(s.trim()))
            .ok_or_else(|| {
                format!("unknown encryption status {s:?} (expected NOT-SSE, SSE-S3, SSE-KMS, DSSE-KMS or SSE-C)")
            })
    }
}

/// Where an SSE-C customer key comes from. This, never the key, is what gets stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CustomerKeySource {
    /// A file holding the 32 key bytes, raw or base64. Stored as an absolute path.
    File(PathBuf),
    /// An environment variable holding the base64 of the 32 key bytes.
    Env(String),
}

impl CustomerKeySource {
    /// Parses `@FILE` or `env:VAR`.
    pub fn parse(s: &str) -> Result<Self, SpecError> {
        if let Some(path) = s.strip_prefix('@') {
            if path.is_empty() {
                return Err(SpecError::new(s, "`@` must be followed by a file name"));
            }
            let path = Path::new(path);
            let path = if path.is_absolute() {
                path.to_path_buf()
            } else {
                std::env::current_dir()
                    .map_err(|e| SpecError::new(s, format!("cannot resolve the file name: {e}")))?
                    .join(path)
            };
            Ok(CustomerKeySource::File(path))
        } else if let Some(var) = s.strip_prefix("env:") {
            if var.is_empty() {
                return Err(SpecError::new(
                    s,
                    "`env:` must be followed by a variable name",
                ));
            }
            Ok(CustomerKeySource::Env(var.to_owned()))
        } else {
            Err(SpecError::new(
                s,
                "a customer key is given as @FILE (32 raw bytes or their base64) or env:VAR (base64)",
            ))
        }
    }

    /// Reads the key. Errors name the file or variable, never the content.
    pub fn load(&self) -> Result<CustomerKey, SpecError> {
        let bytes: Zeroizing<Vec<u8>> = match self {
            CustomerKeySource::File(path) => {
                let raw = Zeroizing::new(std::fs::read(path).map_err(|e| {
                    SpecError::new(&self.to_string(), format!("cannot read the key file: {e}"))
                })?);
                if raw.len() == 32 {
                    raw
                } else {
                    decode_base64_key(&raw).ok_or_else(|| {
                        SpecError::new(
                            &self.to_string(),
                            format!(
                                "the key file holds {} bytes: it must hold exactly 32 raw bytes or their base64",
                                raw.len()
                            ),
                        )
                    })?
                }
            }
            CustomerKeySource::Env(var) => {
                let value = Zeroizing::new(std::env::var(var).map_err(|_| {
                    SpecError::new(&self.to_string(), "the environment variable is not set")
                })?);
                decode_base64_key(value.as_bytes()).ok_or_else(|| {
                    SpecError::new(
                        &self.to_string(),
                        "the variable must hold the base64 of exactly 32 bytes",
                    )
                })?
            }
        };
        let mut key = Zeroizing::new([0u8; 32]);
        key.copy_from_slice(&bytes);
        Ok(CustomerKey::from_bytes(key))
    }
}

impl fmt::Display for CustomerKeySource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CustomerKeySource::File(p) => write!(f, "@{}", p.display()),
            CustomerKeySource::Env(v) => write!(f, "env:{v}"),
        }
    }
}

fn decode_base64_key(text: &[u8]) -> Option<Zeroizing<Vec<u8>>> {
    let trimmed = text.trim_ascii();
    let decoded = Zeroizing::new(BASE64.decode(trimmed).ok()?);
    (decoded.len() == 32).then_some(decoded)
}

/// An SSE-C key as a job records it: where it comes from and its MD5, to check that the
/// key found at run time is the one the job was created with.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CustomerKeyRef {
    pub source: CustomerKeySource,
    pub md5: String,
}

impl CustomerKeyRef {
    /// Loads the key from its source (a check that it is readable and well formed).
    pub fn resolve(source: CustomerKeySource) -> Result<(Self, CustomerKey), SpecError> {
        let key = source.load()?;
        let md5 = key.md5_base64();
        Ok((CustomerKeyRef { source, md5 }, key))
    }
}

/// The encryption a job wants for every object.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "mode", rename_all = "kebab-case")]
pub enum SseSpec {
    SseS3,
    /// SSE-KMS with the given key id, ARN or alias; `None` is the account's default key.
    SseKms {
        key_id: Option<String>,
    },
    DsseKms {
        key_id: String,
    },
    SseC {
        key: CustomerKeyRef,
    },
}

impl SseSpec {
    /// Parses `sse-s3`, `sse-kms`, `sse-kms:KEY`, `dsse-kms:KEY`, `sse-c:@FILE` or
    /// `sse-c:env:VAR`. An SSE-C key is loaded once here, to fail early when it is unusable.
    pub fn parse(s: &str) -> Result<Self, SpecError> {
        let (mode, arg) = match s.split_once(':') {
            Some((m, a)) => (m, Some(a)),
            None => (s, None),
        };
        match (mode.to_ascii_lowercase().as_str(), arg) {
            ("sse-s3", None) => Ok(SseSpec::SseS3),
            ("sse-s3", Some(_)) => Err(SpecError::new(s, "sse-s3 takes no key")),
            ("sse-kms", None) => Ok(SseSpec::SseKms { key_id: None }),
            ("sse-kms", Some(key)) if !key.is_empty() => Ok(SseSpec::SseKms {
                key_id: Some(key.to_owned()),
            }),
            ("dsse-kms", Some(key)) if !key.is_empty() => Ok(SseSpec::DsseKms {
                key_id: key.to_owned(),
            }),
            ("dsse-kms", _) => Err(SpecError::new(
                s,
                "dsse-kms needs a KMS key: dsse-kms:KEY (an id, ARN or alias/NAME)",
            )),
            ("sse-kms", Some(_)) => Err(SpecError::new(
                s,
                "the KMS key after `sse-kms:` is empty (use `sse-kms` for the default key)",
            )),
            ("sse-c", Some(source)) => {
                let (key, _) = CustomerKeyRef::resolve(CustomerKeySource::parse(source)?)?;
                Ok(SseSpec::SseC { key })
            }
            ("sse-c", None) => Err(SpecError::new(
                s,
                "sse-c needs a key: sse-c:@FILE or sse-c:env:VAR",
            )),
            _ => Err(SpecError::new(
                s,
                "expected sse-s3, sse-kms[:KEY], dsse-kms:KEY, sse-c:@FILE or sse-c:env:VAR",
            )),
        }
    }

    /// The mode an object has once it is encrypted as this spec says.
    pub fn mode(&self) -> SseMode {
        match self {
            SseSpec::SseS3 => SseMode::SseS3,
            SseSpec::SseKms { .. } => SseMode::SseKms,
            SseSpec::DsseKms { .. } => SseMode::DsseKms,
            SseSpec::SseC { .. } => SseMode::SseC,
        }
    }
}

impl fmt::Display for SseSpec {
    /// A description safe to show anywhere: it names key sources, never keys.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SseSpec::SseS3 => f.write_str("SSE-S3"),
            SseSpec::SseKms { key_id: None } => f.write_str("SSE-KMS (default key)"),
            SseSpec::SseKms { key_id: Some(k) } => write!(f, "SSE-KMS (key {k})"),
            SseSpec::DsseKms { key_id } => write!(f, "DSSE-KMS (key {key_id})"),
            SseSpec::SseC { key } => {
                write!(f, "SSE-C (key from {}, MD5 {})", key.source, key.md5)
            }
        }
    }
}

/// A spec or key source that cannot be used, with the text the user gave.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{given:?}: {message}")]
pub struct SpecError {
    pub given: String,
    pub message: String,
}

impl SpecError {
    fn new(given: &str, message: impl Into<String>) -> Self {
        SpecError {
            given: given.to_owned(),
            message: message.into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn parses_each_mode() {
        assert_eq!(SseSpec::parse("sse-s3").unwrap(), SseSpec::SseS3);
        assert_eq!(
            SseSpec::parse("sse-kms").unwrap(),
            SseSpec::SseKms { key_id: None }
        );
        assert_eq!(
            SseSpec::parse("sse-kms:alias/data").unwrap(),
            SseSpec::SseKms {
                key_id: Some("alias/data".into())
            }
        );
        assert_eq!(
            SseSpec::parse("sse-kms:arn:aws:kms:eu-west-1:111122223333:key/abc").unwrap(),
            SseSpec::SseKms {
                key_id: Some("arn:aws:kms:eu-west-1:111122223333:key/abc".into())
            }
        );
        assert_eq!(
            SseSpec::parse("dsse-kms:k1").unwrap(),
            SseSpec::DsseKms {
                key_id: "k1".into()
            }
        );
        for bad in [
            "dsse-kms",
            "sse-kms:",
            "sse-s3:x",
            "aes256",
            "sse-c",
            "sse-c:key",
        ] {
            assert!(SseSpec::parse(bad).is_err(), "{bad} should be refused");
        }
    }

    #[test]
    fn customer_key_from_raw_file_base64_file_and_env() {
        let dir = tempfile::tempdir().unwrap();
        let raw = dir.path().join("raw.key");
        std::fs::write(&raw, [7u8; 32]).unwrap();
        let b64 = dir.path().join("b64.key");
        let mut f = std::fs::File::create(&b64).unwrap();
        writeln!(f, "{}", BASE64.encode([7u8; 32])).unwrap();

        let a = CustomerKeySource::parse(&format!("@{}", raw.display()))
            .unwrap()
            .load()
            .unwrap();
        let b = CustomerKeySource::parse(&format!("@{}", b64.display()))
            .unwrap()
            .load()
            .unwrap();
        assert_eq!(a.expose_secret(), &[7u8; 32]);
        assert_eq!(a.md5_base64(), b.md5_base64());
        assert_eq!(a.md5_base64(), crate::crypto::key_md5_base64(&[7u8; 32]));

        let short = dir.path().join("short.key");
        std::fs::write(&short, [1u8; 16]).unwrap();
        let err = CustomerKeySource::parse(&format!("@{}", short.display()))
            .unwrap()
            .load()
            .unwrap_err();
        assert!(err.message.contains("exactly 32"), "{err}");

        let err = CustomerKeySource::Env("RESEAL_TEST_SURELY_UNSET_VAR".into())
            .load()
            .unwrap_err();
        assert!(err.message.contains("not set"), "{err}");
    }
}
