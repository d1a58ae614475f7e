//! Encodings shared across modules: object keys as S3 Inventory and Batch Operations CSV
//! manifests, completion reports, copy sources and listings write them (form encoding,
//! where `+` is a space and `%XX` is one byte, and the bytes are UTF-8), and hex. Knows
//! nothing else.

use std::fmt;

/// Why a key could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyDecodeError {
    /// A `%` not followed by two hex digits, at this byte offset of the encoded key.
    BadEscape { offset: usize },
    /// The decoded bytes are not UTF-8.
    NotUtf8,
    /// The key is empty.
    Empty,
}

impl fmt::Display for KeyDecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KeyDecodeError::BadEscape { offset } => write!(
                f,
                "bad percent-escape at byte {offset} of the key (a '%' must be followed by two hex digits)"
            ),
            KeyDecodeError::NotUtf8 => write!(f, "the key is not valid UTF-8 after URL-decoding"),
            KeyDecodeError::Empty => write!(f, "the key is empty"),
        }
    }
}

impl std::error::Error for KeyDecodeError {}

/// Decodes a form-encoded object key: `+` becomes a space, `%XX` the byte `XX`, and the
/// result must be UTF-8. Characters that need no encoding (`/`, letters, …) pass as they are.
pub fn decode_key(encoded: &str) -> Result<String, KeyDecodeError> {
    if encoded.is_empty() {
        return Err(KeyDecodeError::Empty);
    }
    let bytes = encoded.as_bytes();
    if !bytes.iter().any(|&b| b == b'%' || b == b'+') {
        return Ok(encoded.to_owned());
    }
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b'%' => {
                let hi = bytes.get(i + 1).and_then(|&b| hex_value(b));
                let lo = bytes.get(i + 2).and_then(|&b| hex_value(b));
                match (hi, lo) {
                    (Some(hi), Some(lo)) => out.push(hi << 4 | lo),
                    _ => return Err(KeyDecodeError::BadEscape { offset: i }),
                }
                i += 3;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8(out).map_err(|_| KeyDecodeError::NotUtf8)
}

/// Encodes a key so that [`decode_key`] gives it back: unreserved characters and `/` stay,
/// everything else is `%XX` (a space too, never `+`, so the output is also a valid URL path).
pub fn encode_key(key: &str) -> String {
    let mut out = String::with_capacity(key.len());
    for &b in key.as_bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~' | b'/') {
            out.push(b as char);
        } else {
            out.push('%');
            out.push(char::from(HEX[usize::from(b >> 4)]));
            out.push(char::from(HEX[usize::from(b & 0xf)]));
        }
    }
    out
}

const HEX: &[u8; 16] = b"0123456789ABCDEF";

fn hex_value(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// Lower-case hex of `bytes`.
pub fn hex(bytes: &[u8]) -> String {
    use fmt::Write;
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
}

/// The bytes of a hex string (either case); `None` when it is not one.
pub fn unhex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plus_is_a_space_and_escaped_plus_is_a_plus() {
        assert_eq!(decode_key("a+b").unwrap(), "a b");
        assert_eq!(decode_key("a%2Bb").unwrap(), "a+b");
        assert_eq!(decode_key("a%2bb").unwrap(), "a+b");
        assert_eq!(decode_key("a%20b").unwrap(), "a b");
        assert_eq!(decode_key("%7Euser").unwrap(), "~user");
    }

    #[test]
    fn multi_byte_utf8() {
        assert_eq!(
            decode_key("caf%C3%A9/%E6%97%A5%E6%9C%AC").unwrap(),
            "café/日本"
        );
        assert_eq!(decode_key("%F0%9F%94%91").unwrap(), "🔑");
        // Already-decoded UTF-8 passes through.
        assert_eq!(decode_key("café/日本").unwrap(), "café/日本");
    }

    #[test]
    fn commas_quotes_newlines_and_percent() {
        assert_eq!(decode_key("a%2Cb%22c%0Ad").unwrap(), "a,b\"c\nd");
        assert_eq!(decode_key("100%25").unwrap(), "100%");
        assert_eq!(decode_key("dir/../x").unwrap(), "dir/../x");
    }

    #[test]
    fn bad_escapes_and_bad_utf8_are_errors() {
        assert_eq!(
            decode_key("a%G1"),
            Err(KeyDecodeError::BadEscape { offset: 1 })
        );
        assert_eq!(
            decode_key("abc%"),
            Err(KeyDecodeError::BadEscape { offset: 3 })
        );
        assert_eq!(
            decode_key("abc%4"),
            Err(KeyDecodeError::BadEscape { offset: 3 })
        );
        assert_eq!(decode_key("%FF%FE"), Err(KeyDecodeError::NotUtf8));
        assert_eq!(decode_key("%C3"), Err(KeyDecodeError::NotUtf8));
        assert_eq!(decode_key(""), Err(KeyDecodeError::Empty));
    }

    #[test]
    fn hex_round_trips() {
        assert_eq!(hex(&[0x00, 0xab, 0xff]), "00abff");
        assert_eq!(unhex("00ABff"), Some(vec![0x00, 0xab, 0xff]));
        assert_eq!(unhex("abc"), None);
        assert_eq!(unhex("zz"), None);
    }

    #[test]
    fn encode_round_trips() {
        for key in ["a b+c", "日本/x,y\"z\n", "100%", "~a/b_c-d.e", "?#&="] {
            let encoded = encode_key(key);
            assert!(!encoded.contains(' ') && !encoded.contains('+') && !encoded.contains(','));
            assert_eq!(decode_key(&encoded).unwrap(), key);
        }
    }
}
