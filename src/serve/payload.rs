//! A request body against the `x-amz-content-sha256` it was signed with. s3s checks that
//! digest, but its error type is private: the failure reaches an operation as an opaque
//! body error, not to be told from a client that went away. This tells the endpoint why a
//! body broke off, so that it answers S3's 400 XAmzContentSHA256Mismatch; a body that does
//! not match is never stored whole (s3s, and [`Checked`] here, hold back its last bytes).
//!
//! Object data (PutObject, UploadPart) is hashed once, by s3s: its digest failure is told
//! from other body errors by [`Verdict::note`] where the operation reads the body. Other
//! bodies (XML, which s3s reads itself and answers InternalError when it breaks off) are
//! small, and hashed a second time here, as they pass. Must not buffer a body.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll, ready};

use bytes::Bytes;
use hyper::body::{Body, Frame, Incoming, SizeHint};
use s3s::S3Error;
use sha2::{Digest, Sha256};

/// Whether a request's body turned out not to be the one its `x-amz-content-sha256` names
/// (a request extension, for the operations that read bodies).
#[derive(Clone, Default)]
pub struct Verdict(Arc<AtomicBool>);

impl Verdict {
    pub fn mismatched(&self) -> bool {
        self.0.load(Ordering::Acquire)
    }

    /// Takes note of the error a body read through s3s ended with: s3s's own check of the
    /// declared SHA-256 (the only one object data goes through) failing is a mismatch.
    pub fn note(&self, error: &(dyn std::error::Error + 'static)) {
        let mut cause = Some(error);
        while let Some(e) = cause {
            // s3s 0.14's `UploadStreamError::Sha256Mismatch`, a private type: known by its
            // text (tests/serve_auth.rs pins the answer it leads to).
            if e.to_string().contains("Sha256Mismatch") {
                self.0.store(true, Ordering::Release);
                return;
            }
            cause = e.source();
        }
    }
}

/// The request for s3s, its body checked as it is read when the request declares the body's
/// SHA-256 and length (s3s refuses a declared digest without a length) and is not object
/// data.
pub fn checked(mut request: http::Request<Incoming>) -> (s3s::HttpRequest, Verdict) {
    let verdict = Verdict::default();
    request.extensions_mut().insert(verdict.clone());
    let declared = request
        .headers()
        .get("x-amz-content-sha256")
        .and_then(|v| from_hex(v.as_bytes()));
    let length = request.body().size_hint().exact();
    let request = match (declared, length) {
        (Some(expected), Some(remaining)) if !object_data(&request) => {
            let verdict = verdict.clone();
            request.map(|inner| {
                let mut body = Checked {
                    inner,
                    expected,
                    remaining,
                    sha256: Some(Sha256::new()),
                    verdict,
                };
                // An empty body is complete before it is read.
                body.settle();
                s3s::Body::http_body(body)
            })
        }
        _ => request.map(s3s::Body::from),
    };
    (request, verdict)
}

/// Whether a request's body is an object's data, which the operation reads (PutObject,
/// UploadPart: a PUT on a key, with no query but an upload's part), not s3s: those bodies
/// are large, and the operation tells s3s's digest failure through [`Verdict::note`].
/// The endpoint is addressed path-style (`/bucket/key`).
fn object_data<B>(request: &http::Request<B>) -> bool {
    let key = request
        .uri()
        .path()
        .trim_start_matches('/')
        .split_once('/')
        .is_some_and(|(_, key)| !key.is_empty());
    let only_part = request.uri().query().is_none_or(|query| {
        query.split('&').all(|pair| {
            let name = pair.split_once('=').map_or(pair, |(name, _)| name);
            matches!(name, "partNumber" | "uploadId" | "x-id")
        })
    });
    request.method() == http::Method::PUT && key && only_part
}

/// S3's answer to a body that is not the one its `x-amz-content-sha256` names.
pub fn mismatch() -> S3Error {
    super::error::custom(
        "XAmzContentSHA256Mismatch",
        http::StatusCode::BAD_REQUEST,
        "The provided 'x-amz-content-sha256' header does not match what was computed.".into(),
    )
}

struct Checked {
    inner: Incoming,
    expected: [u8; 32],
    /// Declared bytes not read yet.
    remaining: u64,
    /// Until every declared byte is hashed.
    sha256: Option<Sha256>,
    verdict: Verdict,
}

impl Checked {
    /// Once every declared byte is hashed, compares the digest; true when it differs.
    fn settle(&mut self) -> bool {
        if self.remaining > 0 {
            return false;
        }
        let Some(sha256) = self.sha256.take() else {
            return false;
        };
        let differs = sha256.finalize()[..] != self.expected;
        if differs {
            self.verdict.0.store(true, Ordering::Release);
        }
        differs
    }
}

#[derive(Debug, thiserror::Error)]
enum BodyError {
    #[error(transparent)]
    Transport(#[from] hyper::Error),
    #[error("the body does not match its x-amz-content-sha256")]
    Mismatch,
}

impl Body for Checked {
    type Data = Bytes;
    type Error = BodyError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        let this = &mut *self;
        let frame = match ready!(Pin::new(&mut this.inner).poll_frame(cx)) {
            Some(Ok(frame)) => frame,
            other => return Poll::Ready(other.map(|r| r.map_err(BodyError::from))),
        };
        if let Some(data) = frame.data_ref() {
            if let Some(sha256) = &mut this.sha256 {
                sha256.update(data);
            }
            this.remaining = this.remaining.saturating_sub(data.len() as u64);
            if this.settle() {
                return Poll::Ready(Some(Err(BodyError::Mismatch)));
            }
        }
        Poll::Ready(Some(Ok(frame)))
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// A SHA-256 in hex (what `x-amz-content-sha256` holds unless it names a signing mode).
fn from_hex(text: &[u8]) -> Option<[u8; 32]> {
    let digit = |c: u8| char::from(c).to_digit(16).map(|d| d as u8);
    if text.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (byte, pair) in out.iter_mut().zip(text.chunks_exact(2)) {
        *byte = digit(pair[0])? << 4 | digit(pair[1])?;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    #[test]
    fn object_data_is_a_put_on_a_key_with_at_most_a_part() {
        let object_data = |method: &str, uri: &str| {
            let request = http::Request::builder()
                .method(method)
                .uri(uri)
                .body(())
                .unwrap();
            super::object_data(&request)
        };
        assert!(object_data("PUT", "/b/k"));
        assert!(object_data("PUT", "/b/a/b?partNumber=1&uploadId=x"));
        assert!(object_data("PUT", "/b/k?x-id=PutObject"));
        assert!(!object_data("PUT", "/b"));
        assert!(!object_data("PUT", "/b/"));
        assert!(!object_data("PUT", "/b/k?tagging"));
        assert!(!object_data("PUT", "/b?policy"));
        assert!(!object_data("POST", "/b?delete"));
        assert!(!object_data("POST", "/b/k?uploadId=x"));
    }

    #[test]
    fn only_a_hex_digest_is_a_declared_sha256() {
        let empty = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
        assert_eq!(
            super::from_hex(empty.as_bytes()).unwrap()[..2],
            [0xe3, 0xb0]
        );
        assert!(super::from_hex(b"UNSIGNED-PAYLOAD").is_none());
        assert!(super::from_hex(&[b'g'; 64]).is_none());
    }
}
