//! Adaptors that move an object's bytes between bodies, pipes, files and the crypto
//! engine in bounded memory: a pipe from one read into another write, a reader that
//! hashes what passes (the ETag, a checksum), a body sealed into a data file, and the
//! plaintext of a data file opened through one or two layers, whole or by range. They see bytes and
//! engines only: must not touch the store's layout, metadata or keys.

use std::fs::File;
use std::io::{self, BufWriter, Read, Seek, SeekFrom, Write};
use std::ops::Range;
use std::path::Path;

use md5::{Digest, Md5};

use super::ObjectMeta;
use super::checksum::{ChecksumAlgorithm, Hasher};
use super::error::{Result, StoreError, io_err};
use crate::crypto::{self, Engine};
use crate::encoding::hex;

/// Runs `produce` on a thread of its own, writing into a pipe that `consume` reads:
/// one object's plaintext flows into another write in bounded memory. When both fail,
/// the one that failed first wins: the producer's if the consumer reached the end of a
/// failed read, the consumer's if it gave up before the end (the producer then only saw
/// the pipe close: a write refused for an unknown KMS key is refused as that).
pub(super) fn piped<T>(
    produce: impl FnOnce(&mut dyn Write) -> Result<ObjectMeta> + Send,
    consume: impl FnOnce(&mut dyn Read) -> Result<T>,
) -> Result<T> {
    let (reader, mut writer) = io::pipe().map_err(io_err(Path::new("pipe")))?;
    let (done, outcome) = std::sync::mpsc::sync_channel(1);
    std::thread::scope(|scope| {
        let producer = scope.spawn(move || {
            let mut out = BufWriter::with_capacity(1 << 20, &mut writer);
            let read = produce(&mut out).and_then(|meta| {
                out.flush().map_err(io_err(Path::new("pipe")))?;
                Ok(meta)
            });
            drop(out);
            // Said before the pipe closes, so that the reader never takes the end of
            // a failed read for the end of the object.
            let _ = done.send(read.is_ok());
            drop(writer);
            read
        });
        let mut body = PipedReader {
            pipe: reader,
            outcome,
            ended_well: None,
        };
        let consumed = consume(&mut body);
        let consumer_gave_up = consumed.is_err() && body.ended_well.is_none();
        // The producer may be blocked on a full pipe: closing it ends its write.
        drop(body);
        let produced = producer.join().unwrap_or_else(|_| {
            Err(StoreError::Corrupt {
                object: "copy".into(),
                message: "the reading thread panicked".into(),
            })
        });
        match (produced, consumed) {
            (Err(_), Err(e)) if consumer_gave_up => Err(e),
            (Err(e), _) => Err(e),
            (Ok(_), consumed) => consumed,
        }
    })
}

/// The reading end of [`piped`]: its end is an error unless the producer
/// finished well.
struct PipedReader {
    pipe: io::PipeReader,
    outcome: std::sync::mpsc::Receiver<bool>,
    ended_well: Option<bool>,
}

impl Read for PipedReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.pipe.read(buf)?;
        if n == 0 && !buf.is_empty() {
            let outcome = &self.outcome;
            if !*self
                .ended_well
                .get_or_insert_with(|| outcome.recv().unwrap_or(false))
            {
                return Err(io::Error::other("the source could not be read"));
            }
        }
        Ok(n)
    }
}

/// Bodies up to this many bytes (one segment) are read whole and sealed in one call, in
/// buffers of their own size. Larger ones stream through [`Engine::seal_stream`], whose
/// batch buffer (16 segments, 4 MiB) is allocated zeroed
/// for every call: for a 4 KiB object, zeroing and faulting it in took most of the CPU
/// time of a whole re-encryption, fsyncs included.
const SEAL_WHOLE_MAX: usize = crypto::DEFAULT_SEGMENT_SIZE as usize;

/// Seals `body` into `out`, in the same format whichever way: one header, then the
/// segments.
pub(super) fn seal_body(
    engine: &Engine,
    body: &mut dyn Read,
    out: &mut File,
    aad: &[u8],
) -> crypto::Result<()> {
    let mut head = Vec::new();
    body.take(SEAL_WHOLE_MAX as u64 + 1)
        .read_to_end(&mut head)?;
    if head.len() <= SEAL_WHOLE_MAX {
        out.write_all(&engine.seal(&head, aad)?)?;
        return Ok(());
    }
    engine.seal_stream(
        io::Cursor::new(head).chain(body),
        BufWriter::with_capacity(1 << 20, out),
        aad,
    )?;
    Ok(())
}

/// Opens `range` of the plaintext through `layers` (outermost first).
pub(super) fn open_layers(
    layers: &[Engine],
    file: &mut File,
    sealed_len: u64,
    aad: &[u8],
    range: Range<u64>,
) -> crypto::Result<Vec<u8>> {
    match layers {
        [] => unreachable!("plaintext is read directly"),
        [only] => only.open_range_at(sealed_len, |at, buf| read_at(file, at, buf), aad, range),
        [outer, rest @ ..] => {
            let inner_len = outer.layout().plaintext_len(sealed_len)?;
            let mut failure = None;
            let result = rest[0].open_range_at(
                inner_len,
                |at, buf| {
                    let bytes = open_layers(
                        std::slice::from_ref(outer),
                        file,
                        sealed_len,
                        aad,
                        at..at + buf.len() as u64,
                    )
                    .map_err(|e| {
                        let text = e.to_string();
                        failure = Some(e);
                        io::Error::other(text)
                    })?;
                    buf.copy_from_slice(&bytes);
                    Ok(())
                },
                aad,
                range,
            );
            match (result, failure) {
                (Err(_), Some(e)) => Err(e),
                (r, _) => r,
            }
        }
    }
}

fn read_at(file: &mut File, at: u64, buf: &mut [u8]) -> io::Result<()> {
    file.seek(SeekFrom::Start(at))?;
    file.read_exact(buf)
}

/// Reads an object's plaintext through its layers in bounded chunks.
pub(super) struct LayeredReader<'a> {
    layers: &'a [Engine],
    file: &'a mut File,
    sealed_len: u64,
    aad: &'a [u8],
    at: u64,
    size: u64,
    buf: Vec<u8>,
    pos: usize,
    error: Option<crypto::Error>,
}

impl<'a> LayeredReader<'a> {
    /// Reads the `size` plaintext bytes of `file` (`sealed_len` bytes on disk) from the
    /// start.
    pub(super) fn new(
        layers: &'a [Engine],
        file: &'a mut File,
        sealed_len: u64,
        aad: &'a [u8],
        size: u64,
    ) -> Self {
        LayeredReader {
            layers,
            file,
            sealed_len,
            aad,
            at: 0,
            size,
            buf: Vec::new(),
            pos: 0,
            error: None,
        }
    }
}

impl Read for LayeredReader<'_> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        if self.layers.is_empty() {
            // Plaintext: straight from the file into the caller's buffer, without a
            // chunk of its own to allocate and copy through.
            let want = (out.len() as u64).min(self.size - self.at) as usize;
            if want == 0 {
                return Ok(0);
            }
            let n = std::os::unix::fs::FileExt::read_at(&*self.file, &mut out[..want], self.at)?;
            if n == 0 {
                return Err(io::ErrorKind::UnexpectedEof.into());
            }
            self.at += n as u64;
            return Ok(n);
        }
        if self.pos == self.buf.len() {
            if self.at == self.size {
                return Ok(0);
            }
            let end = (self.at + (4 << 20)).min(self.size);
            let chunk = match open_layers(
                self.layers,
                self.file,
                self.sealed_len,
                self.aad,
                self.at..end,
            ) {
                Ok(chunk) => chunk,
                Err(e) => {
                    let text = e.to_string();
                    self.error = Some(e);
                    return Err(io::Error::other(text));
                }
            };
            self.buf = chunk;
            self.pos = 0;
            self.at = end;
        }
        let n = out.len().min(self.buf.len() - self.pos);
        out[..n].copy_from_slice(&self.buf[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

pub(super) fn reader_error(
    hashing: &mut HashingReader<&mut LayeredReader<'_>>,
) -> Option<crypto::Error> {
    hashing.inner.error.take()
}

/// Counts and hashes what is read through it: MD5 (the ETag), and the additional checksum
/// asked for, if any.
pub(super) struct HashingReader<R> {
    inner: R,
    md5: Md5,
    checksum: Option<Hasher>,
    size: u64,
}

/// What a [`HashingReader`] saw.
pub(super) struct Hashed {
    pub size: u64,
    /// Hex MD5.
    pub md5: String,
    pub checksum: Option<Vec<u8>>,
}

impl<R: Read> HashingReader<R> {
    pub(super) fn new(inner: R) -> Self {
        Self::with_checksum(inner, None)
    }

    pub(super) fn with_checksum(inner: R, checksum: Option<ChecksumAlgorithm>) -> Self {
        HashingReader {
            inner,
            md5: Md5::new(),
            checksum: checksum.map(Hasher::new),
            size: 0,
        }
    }

    pub(super) fn finish(self) -> Hashed {
        Hashed {
            size: self.size,
            md5: hex(&self.md5.finalize()),
            checksum: self.checksum.map(Hasher::finalize),
        }
    }
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.md5.update(&buf[..n]);
        if let Some(c) = &mut self.checksum {
            c.update(&buf[..n]);
        }
        self.size += n as u64;
        Ok(n)
    }
}
