//! Bodies between S3 and the store: a request body as a blocking reader the store reads
//! on the blocking pool (and why the call failed when it broke off), and what the store
//! writes of an object fed to a response body in chunks. Memory stays bounded both ways.
//! Must not look at what the bytes are.

use std::io;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use bytes::{Bytes, BytesMut};
use futures_util::TryStreamExt;
use s3s::dto::StreamingBlob;
use s3s::{S3Error, S3ErrorCode};

use crate::serve::error::{error, from_store};
use crate::serve::payload::{self, Verdict};
use crate::store::StoreError;

/// Chunks of an object body on their way to the client.
const BODY_CHUNK: usize = 256 * 1024;

/// A request body as a blocking reader for the store (to be moved onto the blocking pool),
/// and what to answer if it breaks off.
pub(super) fn body_reader(
    body: Option<StreamingBlob>,
    extensions: &http::Extensions,
) -> (Box<dyn io::Read + Send>, BodyOutcome) {
    let outcome = BodyOutcome {
        broke: Arc::new(AtomicBool::new(false)),
        payload: extensions.get::<Verdict>().cloned(),
    };
    let reader: Box<dyn io::Read + Send> = match body {
        None => Box::new(io::empty()),
        Some(blob) => {
            let broke = outcome.broke.clone();
            let verdict = outcome.payload.clone();
            let stream = blob.map_err(move |e| {
                if let Some(verdict) = &verdict {
                    verdict.note(&*e);
                }
                broke.store(true, Ordering::Release);
                io::Error::other(e)
            });
            Box::new(tokio_util::io::SyncIoBridge::new(
                tokio_util::io::StreamReader::new(stream),
            ))
        }
    };
    (reader, outcome)
}

/// Whether a request body broke off on its way into the store.
pub(super) struct BodyOutcome {
    broke: Arc<AtomicBool>,
    payload: Option<Verdict>,
}

impl BodyOutcome {
    /// The answer to a store call that read the body. A body that broke off (it did not
    /// match its SHA-256, the client went away, s3s refused a chunk's signature) is why the
    /// call failed, and the client's doing, whatever the store made of it.
    pub(super) fn answer(&self, e: StoreError) -> S3Error {
        if self.payload.as_ref().is_some_and(Verdict::mismatched) {
            payload::mismatch()
        } else if self.broke.load(Ordering::Acquire) {
            error(
                S3ErrorCode::IncompleteBody,
                "You did not provide the number of bytes specified by the Content-Length HTTP \
                 header.",
            )
        } else {
            from_store(e)
        }
    }
}

/// Writes what the store reads into a channel that feeds a response body.
pub(super) struct BodySender {
    tx: tokio::sync::mpsc::Sender<Result<Bytes, io::Error>>,
    buf: BytesMut,
}

impl BodySender {
    pub(super) fn new(tx: tokio::sync::mpsc::Sender<Result<Bytes, io::Error>>) -> BodySender {
        BodySender {
            tx,
            buf: BytesMut::with_capacity(BODY_CHUNK),
        }
    }

    fn send(&mut self) -> io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let chunk = self.buf.split().freeze();
        self.tx
            .blocking_send(Ok(chunk))
            .map_err(|_| io::Error::new(io::ErrorKind::BrokenPipe, "the client went away"))
    }
}

impl io::Write for BodySender {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        self.buf.extend_from_slice(data);
        if self.buf.len() >= BODY_CHUNK {
            self.send()?;
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.send()
    }
}
