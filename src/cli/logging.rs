//! Log lines on stderr: their format (text or JSON), their level (`RESEAL_LOG`), colour
//! only on a terminal, and the redaction every line passes through before it is written.
//!
//! Redaction is here, at the one writer every log line goes through, and not in the level
//! of each crate: the SDK's signer and the HTTP layers print request headers (SSE-C keys,
//! `Authorization`, session tokens) at their trace and debug levels, and a filter can
//! always name a more specific target than a cap does. Whatever `RESEAL_LOG` says, the
//! values of those headers and fields never reach a line.

use std::io::{self, IsTerminal, Write};

use super::args::LogFormat;

/// Whether log lines are JSON: then progress goes only to the log, not as plain lines.
static JSON_LOGS: std::sync::OnceLock<bool> = std::sync::OnceLock::new();

pub(crate) fn json_logs() -> bool {
    JSON_LOGS.get().copied().unwrap_or(false)
}

pub(crate) fn init(format: LogFormat) {
    let _ = JSON_LOGS.set(matches!(format, LogFormat::Json));
    // JSON logs are for cron and Kubernetes, where progress lines belong in the log.
    let default = match format {
        LogFormat::Text => "warn",
        LogFormat::Json => "warn,reseal=info",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env("RESEAL_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(Redacting::default);
    match format {
        LogFormat::Text => builder.with_ansi(std::io::stderr().is_terminal()).init(),
        LogFormat::Json => builder.json().with_ansi(false).init(),
    }
}

/// Collects one log line, then writes it to stderr redacted. The formatter writes each
/// event through a writer of its own, so a whole line is here when it is dropped.
#[derive(Default)]
struct Redacting {
    line: Vec<u8>,
}

impl Write for Redacting {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.line.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Drop for Redacting {
    fn drop(&mut self) {
        if self.line.is_empty() {
            return;
        }
        let text = String::from_utf8_lossy(&self.line);
        let _ = io::stderr().lock().write_all(redact(&text).as_bytes());
        zeroize::Zeroize::zeroize(&mut self.line);
    }
}

/// Names whose values are secret, lower case: as HTTP headers (both SSE-C key headers end
/// so), as query parameters (`X-Amz-Signature`, `X-Amz-Security-Token`), inside an
/// `Authorization` value (`Signature=`), and as the field names of Debug output.
const SECRET_NAMES: [&str; 8] = [
    "server-side-encryption-customer-key",
    "sse_customer_key",
    "authorization",
    "signature",
    "security-token",
    "security_token",
    "session_token",
    "secret_access_key",
];

const REDACTED: &str = "[REDACTED]";

/// Replaces the value that follows each secret name in `line`. A name counts when it is a
/// whole word of a name (so `…-customer-key-md5` and `signature_version` are left alone);
/// its value is what follows the separators (`: `, `=`, `": "`, `\": \"`, `Some("`): up to
/// the closing quote when quoted, else up to the next blank or delimiter.
pub(crate) fn redact(line: &str) -> String {
    let lower = line.to_ascii_lowercase();
    let bytes = line.as_bytes();
    let mut out = String::with_capacity(line.len());
    let mut copied = 0;
    let mut at = 0;
    while at < bytes.len() {
        let Some((name_start, name)) = SECRET_NAMES
            .iter()
            .filter_map(|n| lower[at..].find(n).map(|i| (at + i, *n)))
            .min_by_key(|(i, _)| *i)
        else {
            break;
        };
        let name_end = name_start + name.len();
        at = name_end;
        let word = |i: usize| bytes[i].is_ascii_alphanumeric() || bytes[i] == b'_';
        if (name_start > 0 && bytes[name_start - 1].is_ascii_alphanumeric())
            || (name_end < bytes.len() && (word(name_end) || bytes[name_end] == b'-'))
        {
            continue;
        }
        let Some((value_start, quoted)) = value_after(bytes, name_end) else {
            continue;
        };
        let value_end = (value_start..bytes.len())
            .find(|&i| ends_value(bytes[i], quoted))
            .unwrap_or(bytes.len());
        if value_end == value_start {
            continue;
        }
        out.push_str(&line[copied..value_start]);
        out.push_str(REDACTED);
        copied = value_end;
        at = value_end;
    }
    out.push_str(&line[copied..]);
    out
}

/// Where the value after a name starts, and whether it is quoted; None when what follows
/// is not a separator.
fn value_after(bytes: &[u8], mut i: usize) -> Option<(usize, bool)> {
    let start = i;
    let mut quoted = false;
    // Blanks and commas alone do not make a separator: "no authorization header" is prose.
    let mut marked = false;
    while i < bytes.len() && i - start < 16 {
        match bytes[i] {
            b'"' | b'\'' => (quoted, marked) = (true, true),
            b':' | b'=' | b'(' => marked = true,
            b'\\' | b' ' | b'\t' | b',' => {}
            b'S' if bytes[i..].starts_with(b"Some(") => i += 4,
            _ => break,
        }
        i += 1;
    }
    (marked && i < bytes.len()).then_some((i, quoted))
}

fn ends_value(b: u8, quoted: bool) -> bool {
    match b {
        b'"' | b'\'' | b'\\' | b'\n' | b'\r' => true,
        b' ' | b'\t' | b',' | b'&' | b';' | b')' | b'}' | b']' => !quoted,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::redact;

    const KEY: &str = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=";

    #[test]
    fn sse_c_keys_are_redacted_in_every_shape_a_log_line_has() {
        for line in [
            // http::HeaderMap's Debug, as s3s and the SDK's orchestrator print it.
            format!(
                r#"headers: {{"x-amz-server-side-encryption-customer-key": "{KEY}", "host": "h"}}"#
            ),
            format!(r#"("x-amz-copy-source-server-side-encryption-customer-key", "{KEY}")"#),
            // JSON logs escape the quotes.
            format!(
                r#"{{"fields":{{"request":"{{\"x-amz-server-side-encryption-customer-key\": \"{KEY}\"}}"}}}}"#
            ),
            // A canonical request, a raw header line, a Debug struct.
            format!("x-amz-server-side-encryption-customer-key:{KEY}\nhost:h"),
            format!("X-Amz-Server-Side-Encryption-Customer-Key: {KEY}"),
            format!(r#"Input {{ sse_customer_key: Some("{KEY}"), bucket: "b" }}"#),
        ] {
            let out = redact(&line);
            assert!(!out.contains(KEY), "{line}\n-> {out}");
            assert!(out.contains("[REDACTED]"), "{out}");
        }
    }

    #[test]
    fn signatures_tokens_and_authorization_are_redacted() {
        let line = r#"uri: /b/k?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Signature=deadbeef00&X-Amz-Security-Token=tok%2Fen&x=1, headers: {"authorization": "AWS4-HMAC-SHA256 Credential=AKID/20260101/us-east-1/s3/aws4_request, SignedHeaders=host, Signature=cafe0123"}"#;
        let out = redact(line);
        for secret in ["deadbeef00", "tok%2Fen", "cafe0123", "SignedHeaders=host"] {
            assert!(!out.contains(secret), "{secret} in {out}");
        }
        assert!(out.contains("&x=1"), "{out}");
        assert_eq!(
            redact("session_token: \"abc\""),
            "session_token: \"[REDACTED]\""
        );
    }

    #[test]
    fn what_is_not_secret_stays() {
        for line in [
            "x-amz-server-side-encryption-customer-key-md5: qXuBPaP0hMmbd8uN7kTpQw==",
            "signature_version: v4, signing_region: us-east-1",
            "SignedHeaders=host;x-amz-date",
            "task failed code=AccessDenied error=\"HeadObject s3://b/k: Forbidden\"",
            "the request signature we calculated does not match; no authorization header",
        ] {
            assert_eq!(redact(line), line);
        }
    }
}
