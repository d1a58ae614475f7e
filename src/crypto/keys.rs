//! 256-bit secret key types. Each is a newtype over `Zeroizing<[u8; 32]>`, so its
//! bytes are wiped on drop, and its `Debug` prints `[REDACTED]`. There is no
//! `Display`, no `PartialEq` (a non-constant-time comparison of secrets) and no serde:
//! a key leaves its type only through `expose_secret`, which is easy to grep for.

/// Defines a 256-bit secret key newtype with the shared constructors and a redacted
/// `Debug`.
macro_rules! secret_key_type {
    ($(#[$meta:meta])* $name:ident) => {
        $(#[$meta])*
        #[derive(Clone)]
        pub struct $name(::zeroize::Zeroizing<[u8; $crate::crypto::KEY_LEN]>);

        impl $name {
            /// A fresh random key from the operating system's random generator.
            pub fn generate() -> $crate::crypto::Result<Self> {
                let mut bytes = ::zeroize::Zeroizing::new([0u8; $crate::crypto::KEY_LEN]);
                ::getrandom::fill(bytes.as_mut_slice())?;
                Ok(Self(bytes))
            }

            /// Wraps key bytes the caller already holds in a zeroizing buffer.
            pub fn from_bytes(bytes: ::zeroize::Zeroizing<[u8; $crate::crypto::KEY_LEN]>) -> Self {
                Self(bytes)
            }

            /// Copies a key out of a slice, which must be exactly 32 bytes. The caller
            /// stays responsible for wiping its own copy.
            pub fn from_slice(bytes: &[u8]) -> $crate::crypto::Result<Self> {
                let mut key = ::zeroize::Zeroizing::new([0u8; $crate::crypto::KEY_LEN]);
                if bytes.len() != key.len() {
                    return Err($crate::crypto::Error::InvalidKey {
                        what: stringify!($name),
                        reason: format!("expected 32 bytes, got {}", bytes.len()),
                    });
                }
                key.copy_from_slice(bytes);
                Ok(Self(key))
            }

            /// The key bytes. Every call site is a place where the secret is used.
            pub fn expose_secret(&self) -> &[u8; $crate::crypto::KEY_LEN] {
                &self.0
            }
        }

        impl ::std::fmt::Debug for $name {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                f.write_str(concat!(stringify!($name), "([REDACTED])"))
            }
        }
    };
}
pub(crate) use secret_key_type;

/// Decodes standard base64 (padding required, surrounding whitespace ignored) of
/// exactly 32 bytes, without leaving copies of the key in unzeroized buffers.
pub(crate) fn decode_key_base64(
    what: &'static str,
    text: &str,
) -> crate::crypto::Result<::zeroize::Zeroizing<[u8; crate::crypto::KEY_LEN]>> {
    use base64::Engine as _;
    use base64::engine::general_purpose::STANDARD;

    let invalid = |reason: String| crate::crypto::Error::InvalidKey { what, reason };
    // Room for more than a key, so that a too-long value is told apart from bad base64.
    let mut buf = ::zeroize::Zeroizing::new([0u8; 2 * crate::crypto::KEY_LEN]);
    let n = STANDARD
        .decode_slice(text.trim(), buf.as_mut_slice())
        .map_err(|e| match e {
            base64::DecodeSliceError::OutputSliceTooSmall => {
                invalid("base64 decodes to more than 32 bytes".into())
            }
            base64::DecodeSliceError::DecodeError(_) => {
                invalid("not valid base64 (standard alphabet, with padding)".into())
            }
        })?;
    if n != crate::crypto::KEY_LEN {
        return Err(invalid(format!("base64 decodes to {n} bytes, expected 32")));
    }
    let mut key = ::zeroize::Zeroizing::new([0u8; crate::crypto::KEY_LEN]);
    key.copy_from_slice(&buf[..n]);
    Ok(key)
}

secret_key_type! {
    /// The per-object data key (DEK): random, fresh for every object, used only to
    /// seal that object's data with the STREAM [`Engine`](super::Engine). Only its
    /// sealed form ([`SealedKey`](super::SealedKey)) is ever stored.
    DataKey
}

secret_key_type! {
    /// A key-encryption key: a version of the root key or of a KMS key, or the key
    /// derived from an SSE-C customer key. It seals data keys.
    SecretKey
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::Error;

    #[test]
    fn generated_keys_differ_and_debug_is_redacted() {
        let a = DataKey::generate().unwrap();
        let b = DataKey::generate().unwrap();
        assert_ne!(a.expose_secret(), b.expose_secret());
        assert_eq!(format!("{a:?}"), "DataKey([REDACTED])");
        let k = SecretKey::from_slice(&[0xAB; 32]).unwrap();
        let dbg = format!("{k:?}");
        assert_eq!(dbg, "SecretKey([REDACTED])");
        assert!(!dbg.contains("171") && !dbg.to_lowercase().contains("ab,"));
    }

    #[test]
    fn base64_keys_decode_only_at_32_bytes() {
        let k =
            decode_key_base64("key", " AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=\n").unwrap();
        assert_eq!(k[31], 31);
        for bad in [
            "AAEC",
            "not base64!",
            "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8gIQ==",
        ] {
            let err = decode_key_base64("key", bad).unwrap_err();
            assert!(
                matches!(err, Error::InvalidKey { what: "key", .. }),
                "{bad}: {err}"
            );
        }
    }

    #[test]
    fn wrong_length_is_refused_without_echoing_bytes() {
        let err = SecretKey::from_slice(&[0x5A; 31]).unwrap_err();
        assert!(matches!(err, Error::InvalidKey { .. }));
        assert_eq!(
            err.to_string(),
            "invalid SecretKey: expected 32 bytes, got 31"
        );
    }
}
