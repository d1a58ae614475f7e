//! The sealed-object format: AES-256-GCM over fixed plaintext segments in the STREAM
//! construction (Hoang, Reyhanitabar, Rogaway, Vizár, "Online Authenticated-Encryption
//! and its Nonce-Reuse Misuse-Resistance", 2015).
//!
//! ```text
//! sealed object = header ‖ segment 0 ‖ segment 1 ‖ … ‖ segment n-1
//! header (18 bytes) = "RESEAL" ‖ version (1 byte, = 1) ‖ segment size (u32 BE) ‖ nonce prefix (7 bytes)
//! segment i        = AES-256-GCM(DEK, nonce_i, aad = header ‖ caller aad, plaintext_i) ‖ tag (16 bytes)
//! nonce_i          = nonce prefix (7) ‖ i (u32 BE) ‖ 1 if i = n-1 else 0 (1 byte)
//! ```
//!
//! Every segment but the last holds exactly `segment size` plaintext bytes; the last
//! holds 1..=segment size, or 0 when the whole plaintext is empty (one empty final
//! segment). The index in the nonce pins each segment to its place (reordering fails),
//! the last-segment flag pins the end (dropping whole final segments or appending
//! segments fails), and the header is associated data of every segment (editing the
//! segment size or prefix fails).
//!
//! Segments are independent, so they are sealed and opened in parallel with rayon (on
//! the current rayon pool: run inside `ThreadPool::install` to choose the threads), and
//! a range read opens only the segments it covers.

use std::io::{self, Read, Seek, SeekFrom, Write};
use std::ops::Range;

use rayon::prelude::*;

use super::cipher::{Cipher, NONCE_LEN, TAG_LEN};
use super::{DataKey, Error, Result};

/// First bytes of every sealed object.
pub const MAGIC: [u8; 6] = *b"RESEAL";
/// The format version this build writes and reads.
pub const FORMAT_VERSION: u8 = 1;
/// Bytes of random nonce prefix per object.
pub const PREFIX_LEN: usize = 7;
/// Bytes in the header.
pub const HEADER_LEN: usize = MAGIC.len() + 1 + 4 + PREFIX_LEN;

/// Plaintext bytes per segment written by default: 256 KiB.
///
/// - Parallelism: a 1 MiB object is already 4 segments, enough for both cores here and
///   more; a 64 MiB object is 256 tasks, so rayon balances well, while each task (tens
///   of microseconds) is long next to rayon's per-task cost.
/// - Range reads: a small range costs at most two segments (≤ 512 KiB) of reading and
///   decrypting, a fraction of a millisecond; 1 MiB segments would cost 4x that.
/// - Overhead: a 16-byte tag per 256 KiB is 0.006% of size, and a segment (copied,
///   then encrypted and hashed in place) stays in a core's L2 cache.
/// - Measured (benches/engine.rs, 64 MiB, GiB/s seal/open on 1 thread; 2 threads):
///   aes-gcm 64 KiB 2.74/2.67, 256 KiB 2.82/2.81, 1 MiB 2.68/2.72; aws-lc 64 KiB
///   11.0/10.0, 256 KiB 11.5/10.5, 1 MiB 12.7/9.1, and on 2 threads 1 MiB opens fall
///   to 13.8 against 18.1 at 256 KiB. 256 KiB is best or close to it everywhere.
/// - Memory: a streaming batch of 16 segments is 4 MiB of plaintext plus 4 MiB sealed when
///   opening; sealing reads the plaintext into the sealed batch and seals it there (4 MiB).
pub const DEFAULT_SEGMENT_SIZE: u32 = 256 * 1024;
/// Smallest segment size accepted (small sizes only make sense in tests).
pub const MIN_SEGMENT_SIZE: u32 = 1024;
/// Largest segment size accepted, which bounds what an unauthenticated header can make
/// a reader allocate (`BATCH_SEGMENTS` of them).
pub const MAX_SEGMENT_SIZE: u32 = 1024 * 1024;
/// Segments read, processed in parallel, and written per step of the streaming
/// functions.
pub const BATCH_SEGMENTS: usize = 16;

/// Segment indices are 32 bits.
const MAX_SEGMENTS: u64 = 1 << 32;

/// The parsed header of a sealed object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    /// Plaintext bytes per segment.
    pub segment_size: u32,
    /// Random nonce prefix of this object.
    pub nonce_prefix: [u8; PREFIX_LEN],
}

impl Header {
    /// A header with a fresh random nonce prefix.
    pub fn generate(segment_size: u32) -> Result<Self> {
        Layout::new(segment_size)?;
        let mut nonce_prefix = [0u8; PREFIX_LEN];
        getrandom::fill(&mut nonce_prefix)?;
        Ok(Header {
            segment_size,
            nonce_prefix,
        })
    }

    /// The header bytes.
    pub fn to_bytes(&self) -> [u8; HEADER_LEN] {
        let mut out = [0u8; HEADER_LEN];
        out[..6].copy_from_slice(&MAGIC);
        out[6] = FORMAT_VERSION;
        out[7..11].copy_from_slice(&self.segment_size.to_be_bytes());
        out[11..].copy_from_slice(&self.nonce_prefix);
        out
    }

    /// Parses the first [`HEADER_LEN`] bytes of a sealed object. The header is not
    /// authentic until a segment opens under it.
    pub fn parse(bytes: &[u8]) -> Result<Self> {
        if bytes.len() < MAGIC.len() || bytes[..MAGIC.len()] != MAGIC {
            if MAGIC.starts_with(bytes) {
                return Err(Error::InvalidSealedLength {
                    sealed_len: bytes.len() as u64,
                });
            }
            return Err(Error::NotSealed);
        }
        if bytes.len() < HEADER_LEN {
            return Err(Error::InvalidSealedLength {
                sealed_len: bytes.len() as u64,
            });
        }
        if bytes[6] != FORMAT_VERSION {
            return Err(Error::UnsupportedVersion(bytes[6]));
        }
        let segment_size = u32::from_be_bytes([bytes[7], bytes[8], bytes[9], bytes[10]]);
        Layout::new(segment_size)?;
        let mut nonce_prefix = [0u8; PREFIX_LEN];
        nonce_prefix.copy_from_slice(&bytes[11..HEADER_LEN]);
        Ok(Header {
            segment_size,
            nonce_prefix,
        })
    }

    /// Where segments and bytes lie in objects with this header.
    pub fn layout(&self) -> Layout {
        Layout {
            segment_size: self.segment_size,
        }
    }

    fn nonce(&self, index: u64, last: bool) -> [u8; NONCE_LEN] {
        debug_assert!(index < MAX_SEGMENTS);
        let mut nonce = [0u8; NONCE_LEN];
        nonce[..PREFIX_LEN].copy_from_slice(&self.nonce_prefix);
        nonce[PREFIX_LEN..PREFIX_LEN + 4].copy_from_slice(&(index as u32).to_be_bytes());
        nonce[NONCE_LEN - 1] = u8::from(last);
        nonce
    }

    /// Associated data of every segment: the header, then the caller's. The header has
    /// a fixed length, so the split is unambiguous.
    fn segment_aad(&self, aad: &[u8]) -> Vec<u8> {
        let mut out = Vec::with_capacity(HEADER_LEN + aad.len());
        out.extend_from_slice(&self.to_bytes());
        out.extend_from_slice(aad);
        out
    }
}

/// Arithmetic of the format for one segment size: lengths and which segments hold
/// which bytes. Useful to a store that fetches sealed ranges itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Layout {
    segment_size: u32,
}

impl Layout {
    /// The layout for `segment_size`, which must be within
    /// [`MIN_SEGMENT_SIZE`]..=[`MAX_SEGMENT_SIZE`].
    pub fn new(segment_size: u32) -> Result<Self> {
        if !(MIN_SEGMENT_SIZE..=MAX_SEGMENT_SIZE).contains(&segment_size) {
            return Err(Error::InvalidSegmentSize(segment_size));
        }
        Ok(Layout { segment_size })
    }

    /// Plaintext bytes per segment.
    pub fn segment_size(&self) -> u32 {
        self.segment_size
    }

    fn plain(&self) -> u64 {
        u64::from(self.segment_size)
    }

    fn sealed(&self) -> u64 {
        self.plain() + TAG_LEN as u64
    }

    /// Number of segments for a plaintext length (at least one).
    pub fn segment_count(&self, plaintext_len: u64) -> u64 {
        plaintext_len.div_ceil(self.plain()).max(1)
    }

    /// Sealed length, header included, of a plaintext of `plaintext_len` bytes.
    pub fn sealed_len(&self, plaintext_len: u64) -> Result<u64> {
        let n = self.segment_count(plaintext_len);
        if n > MAX_SEGMENTS {
            return Err(Error::TooLarge);
        }
        Ok(HEADER_LEN as u64 + plaintext_len + n * TAG_LEN as u64)
    }

    /// Plaintext length of a sealed object of `sealed_len` bytes (header included): the
    /// inverse of [`Layout::sealed_len`]. A length no object can have (a cut inside the
    /// header or a tag) is an error; whether the bytes are authentic is only known
    /// once they are opened.
    pub fn plaintext_len(&self, sealed_len: u64) -> Result<u64> {
        let bad = Error::InvalidSealedLength { sealed_len };
        let body = match sealed_len.checked_sub(HEADER_LEN as u64) {
            Some(b) if b >= TAG_LEN as u64 => b,
            _ => return Err(bad),
        };
        let n = body.div_ceil(self.sealed());
        let tail = body - (n - 1) * self.sealed();
        if tail < TAG_LEN as u64 || n > MAX_SEGMENTS {
            return Err(bad);
        }
        Ok(body - n * TAG_LEN as u64)
    }

    /// Indices of the segments that hold plaintext bytes `range` (empty for an empty
    /// range).
    pub fn segments_for(&self, range: Range<u64>) -> Range<u64> {
        if range.start >= range.end {
            return 0..0;
        }
        range.start / self.plain()..(range.end - 1) / self.plain() + 1
    }

    /// Byte range, within the sealed object, of segments `segments`.
    pub fn sealed_range_of(&self, segments: Range<u64>, sealed_len: u64) -> Range<u64> {
        let start = HEADER_LEN as u64 + segments.start * self.sealed();
        let end = (HEADER_LEN as u64 + segments.end * self.sealed()).min(sealed_len);
        start..end.max(start)
    }
}

/// Seals and opens objects with one data key.
///
/// Opening reads the segment size from the object's header, so objects sealed with any
/// allowed segment size open; [`Engine::with_segment_size`] only affects sealing.
#[derive(Debug)]
pub struct Engine {
    cipher: Cipher,
    segment_size: u32,
}

impl Engine {
    /// An engine for `key` with the default backend and segment size.
    pub fn new(key: &DataKey) -> Self {
        Self::with_cipher(Cipher::new(key.expose_secret()))
    }

    /// An engine over a cipher built by the caller (to pick the backend).
    pub fn with_cipher(cipher: Cipher) -> Self {
        Engine {
            cipher,
            segment_size: DEFAULT_SEGMENT_SIZE,
        }
    }

    /// Seals with `segment_size` plaintext bytes per segment.
    pub fn with_segment_size(mut self, segment_size: u32) -> Result<Self> {
        Layout::new(segment_size)?;
        self.segment_size = segment_size;
        Ok(self)
    }

    /// The layout objects sealed by this engine have.
    pub fn layout(&self) -> Layout {
        Layout {
            segment_size: self.segment_size,
        }
    }

    /// Seals `plaintext` into a new buffer.
    pub fn seal(&self, plaintext: &[u8], aad: &[u8]) -> Result<Vec<u8>> {
        let len = self.layout().sealed_len(plaintext.len() as u64)?;
        let mut out = vec![0u8; usize::try_from(len).map_err(|_| Error::TooLarge)?];
        self.seal_into(plaintext, aad, &mut out)?;
        Ok(out)
    }

    /// Seals `plaintext` into `out`, which must be exactly
    /// `self.layout().sealed_len(plaintext.len())` bytes (lets a caller reuse buffers).
    pub fn seal_into(&self, plaintext: &[u8], aad: &[u8], out: &mut [u8]) -> Result<()> {
        let expected = self.layout().sealed_len(plaintext.len() as u64)?;
        if out.len() as u64 != expected {
            return Err(Error::BufferLength {
                expected: usize::try_from(expected).map_err(|_| Error::TooLarge)?,
                actual: out.len(),
            });
        }
        let header = Header::generate(self.segment_size)?;
        let (head, body) = out.split_at_mut(HEADER_LEN);
        head.copy_from_slice(&header.to_bytes());
        let aad = header.segment_aad(aad);
        seal_batch(&self.cipher, &header, &aad, 0, plaintext, body, true)
    }

    /// Opens a whole sealed object into a new buffer. Nothing is returned unless every
    /// segment authenticates and the object ends where its final segment says.
    pub fn open(&self, sealed: &[u8], aad: &[u8]) -> Result<Vec<u8>> {
        let header = Header::parse(sealed)?;
        let len = header.layout().plaintext_len(sealed.len() as u64)?;
        let mut out = vec![0u8; usize::try_from(len).map_err(|_| Error::TooLarge)?];
        self.open_with(&header, sealed, aad, &mut out)?;
        Ok(out)
    }

    /// Opens a whole sealed object into `out`, which must be exactly as long as the
    /// plaintext ([`Layout::plaintext_len`] of the header's layout). On error `out`
    /// holds garbage.
    pub fn open_into(&self, sealed: &[u8], aad: &[u8], out: &mut [u8]) -> Result<()> {
        let header = Header::parse(sealed)?;
        let len = header.layout().plaintext_len(sealed.len() as u64)?;
        if out.len() as u64 != len {
            return Err(Error::BufferLength {
                expected: usize::try_from(len).map_err(|_| Error::TooLarge)?,
                actual: out.len(),
            });
        }
        self.open_with(&header, sealed, aad, out)
    }

    fn open_with(&self, header: &Header, sealed: &[u8], aad: &[u8], out: &mut [u8]) -> Result<()> {
        let aad = header.segment_aad(aad);
        open_batch(
            &self.cipher,
            header,
            &aad,
            0,
            &sealed[HEADER_LEN..],
            out,
            true,
        )
    }

    /// Seals everything `reader` yields into `writer`, [`BATCH_SEGMENTS`] segments at a
    /// time (memory stays bounded whatever the size). Returns the plaintext length.
    pub fn seal_stream(
        &self,
        mut reader: impl Read,
        mut writer: impl Write,
        aad: &[u8],
    ) -> Result<u64> {
        let header = Header::generate(self.segment_size)?;
        writer.write_all(&header.to_bytes())?;
        let aad = header.segment_aad(aad);
        let s = self.segment_size as usize;
        // One buffer: each segment's plaintext is read into its place in the sealed batch
        // and sealed there, its tag after it. A second, plaintext buffer cost 4 MiB more
        // memory to fault in and a copy of every byte (in `reseal serve`'s PUTs, whose
        // buffers are new for every object, page faults were a tenth of the CPU time).
        let mut batch = vec![0u8; BATCH_SEGMENTS * (s + TAG_LEN)];
        let mut carry = None;
        let mut index = 0u64;
        let mut total = 0u64;
        loop {
            let (filled, is_final) = fill_segments(&mut reader, &mut batch, s, &mut carry)?;
            let n = if is_final {
                header.layout().segment_count(filled as u64)
            } else {
                BATCH_SEGMENTS as u64
            };
            if index + n > MAX_SEGMENTS {
                return Err(Error::TooLarge);
            }
            let out_len = filled + n as usize * TAG_LEN;
            seal_batch_in_place(
                &self.cipher,
                &header,
                &aad,
                index,
                &mut batch[..out_len],
                filled,
                is_final,
            )?;
            writer.write_all(&batch[..out_len])?;
            index += n;
            total += filled as u64;
            if is_final {
                break;
            }
        }
        writer.flush()?;
        Ok(total)
    }

    /// Opens a sealed object from `reader` into `writer`, [`BATCH_SEGMENTS`] segments
    /// at a time. Returns the plaintext length.
    ///
    /// Every byte written has been authenticated, but on error the writer has already
    /// received the segments before the bad one: treat its output as void unless this
    /// returns `Ok` (only then is the object known to be complete).
    pub fn open_stream(
        &self,
        mut reader: impl Read,
        mut writer: impl Write,
        aad: &[u8],
    ) -> Result<u64> {
        let mut head = [0u8; HEADER_LEN];
        let got = read_full(&mut reader, &mut head)?;
        let header = Header::parse(&head[..got])?;
        let aad = header.segment_aad(aad);
        let s = header.segment_size as usize;
        let mut sealed = vec![0u8; BATCH_SEGMENTS * (s + TAG_LEN)];
        let mut plain = vec![0u8; BATCH_SEGMENTS * s];
        let mut carry = None;
        let mut index = 0u64;
        let mut read = HEADER_LEN as u64;
        let mut total = 0u64;
        loop {
            let (filled, is_final) = fill_batch(&mut reader, &mut sealed, &mut carry)?;
            read += filled as u64;
            let n = if is_final {
                filled.div_ceil(s + TAG_LEN) as u64
            } else {
                BATCH_SEGMENTS as u64
            };
            let tail = filled as u64 - n.saturating_sub(1) * (s + TAG_LEN) as u64;
            if n == 0 || tail < TAG_LEN as u64 {
                return Err(Error::InvalidSealedLength { sealed_len: read });
            }
            if index + n > MAX_SEGMENTS {
                return Err(Error::TooLarge);
            }
            let out_len = filled - n as usize * TAG_LEN;
            open_batch(
                &self.cipher,
                &header,
                &aad,
                index,
                &sealed[..filled],
                &mut plain[..out_len],
                is_final,
            )?;
            writer.write_all(&plain[..out_len])?;
            index += n;
            total += out_len as u64;
            if is_final {
                break;
            }
        }
        writer.flush()?;
        Ok(total)
    }

    /// Opens plaintext bytes `range` of a sealed object read through `reader`, reading
    /// and opening only the segments that cover it.
    pub fn open_range<R: Read + Seek>(
        &self,
        mut reader: R,
        aad: &[u8],
        range: Range<u64>,
    ) -> Result<Vec<u8>> {
        let sealed_len = reader.seek(SeekFrom::End(0))?;
        self.open_range_at(
            sealed_len,
            |offset, buf| {
                reader.seek(SeekFrom::Start(offset))?;
                reader.read_exact(buf)
            },
            aad,
            range,
        )
    }

    /// Like [`Engine::open_range`], for sealed bytes the caller fetches itself:
    /// `read_at(offset, buf)` must fill `buf` with the sealed bytes at `offset`, and
    /// `sealed_len` is the length of the whole sealed object. It is called once for
    /// the header and once for the covering segments.
    ///
    /// An empty range returns no bytes and checks only the header and length.
    pub fn open_range_at<F>(
        &self,
        sealed_len: u64,
        mut read_at: F,
        aad: &[u8],
        range: Range<u64>,
    ) -> Result<Vec<u8>>
    where
        F: FnMut(u64, &mut [u8]) -> io::Result<()>,
    {
        if sealed_len < HEADER_LEN as u64 {
            return Err(Error::InvalidSealedLength { sealed_len });
        }
        let mut head = [0u8; HEADER_LEN];
        read_at(0, &mut head)?;
        let header = Header::parse(&head)?;
        let layout = header.layout();
        let len = layout.plaintext_len(sealed_len)?;
        if range.start > range.end || range.end > len {
            return Err(Error::RangeOutOfBounds {
                start: range.start,
                end: range.end,
                len,
            });
        }
        let segments = layout.segments_for(range.clone());
        if segments.is_empty() {
            return Ok(Vec::new());
        }
        let is_final = segments.end == layout.segment_count(len);
        let span = layout.sealed_range_of(segments.clone(), sealed_len);
        let mut sealed =
            vec![0u8; usize::try_from(span.end - span.start).map_err(|_| Error::TooLarge)?];
        read_at(span.start, &mut sealed)?;
        let n = segments.end - segments.start;
        let mut plain = vec![0u8; sealed.len() - n as usize * TAG_LEN];
        let aad = header.segment_aad(aad);
        open_batch(
            &self.cipher,
            &header,
            &aad,
            segments.start,
            &sealed,
            &mut plain,
            is_final,
        )?;
        let first_byte = segments.start * layout.plain();
        let from = usize::try_from(range.start - first_byte).map_err(|_| Error::TooLarge)?;
        let to = usize::try_from(range.end - first_byte).map_err(|_| Error::TooLarge)?;
        plain.truncate(to);
        plain.drain(..from);
        Ok(plain)
    }
}

/// Seals `plain` as segments `first..` into `out`. A batch that is not final holds only
/// whole segments; a final batch ends with the final segment (empty only when it is
/// the only one).
fn seal_batch(
    cipher: &Cipher,
    header: &Header,
    aad: &[u8],
    first: u64,
    plain: &[u8],
    out: &mut [u8],
    is_final: bool,
) -> Result<()> {
    let s = header.segment_size as usize;
    let f = s + TAG_LEN;
    let n = if is_final {
        plain.len().div_ceil(s).max(1)
    } else {
        plain.len() / s
    };
    let whole = if is_final { n - 1 } else { n };
    if first + n as u64 > MAX_SEGMENTS {
        return Err(Error::TooLarge);
    }
    debug_assert_eq!(out.len(), plain.len() + n * TAG_LEN);
    let (plain_whole, plain_tail) = plain.split_at(whole * s);
    let (out_whole, out_tail) = out.split_at_mut(whole * f);

    let seal_one = |index: u64, last: bool, p: &[u8], o: &mut [u8]| -> Result<()> {
        let (ct, tag) = o.split_at_mut(p.len());
        let t = cipher
            .seal_to(&header.nonce(index, last), aad, p, ct)
            .map_err(|_| Error::TooLarge)?;
        tag.copy_from_slice(&t);
        Ok(())
    };
    let (whole_result, tail_result) = rayon::join(
        || {
            plain_whole
                .par_chunks_exact(s)
                .zip(out_whole.par_chunks_exact_mut(f))
                .enumerate()
                .try_for_each(|(j, (p, o))| seal_one(first + j as u64, false, p, o))
        },
        || {
            if is_final {
                seal_one(first + whole as u64, true, plain_tail, out_tail)
            } else {
                Ok(())
            }
        },
    );
    whole_result.and(tail_result)
}

/// [`seal_batch`] in place: `batch` holds the plaintext of segments `first..` (`filled`
/// bytes in all) each at its sealed place (segment `j` at `j * (segment size + tag)`, as
/// [`fill_segments`] reads it), and is `filled` + one tag per segment long. Seals each
/// segment where it is and writes its tag after it.
fn seal_batch_in_place(
    cipher: &Cipher,
    header: &Header,
    aad: &[u8],
    first: u64,
    batch: &mut [u8],
    filled: usize,
    is_final: bool,
) -> Result<()> {
    let s = header.segment_size as usize;
    let f = s + TAG_LEN;
    let n = if is_final {
        filled.div_ceil(s).max(1)
    } else {
        filled / s
    };
    let whole = if is_final { n - 1 } else { n };
    if first + n as u64 > MAX_SEGMENTS {
        return Err(Error::TooLarge);
    }
    debug_assert_eq!(batch.len(), filled + n * TAG_LEN);
    let (batch_whole, batch_tail) = batch.split_at_mut(whole * f);

    let seal_one = |index: u64, last: bool, segment: &mut [u8]| -> Result<()> {
        let (text, tag) = segment.split_at_mut(segment.len() - TAG_LEN);
        let t = cipher
            .seal_in_place(&header.nonce(index, last), aad, text)
            .map_err(|_| Error::TooLarge)?;
        tag.copy_from_slice(&t);
        Ok(())
    };
    let (whole_result, tail_result) = rayon::join(
        || {
            batch_whole
                .par_chunks_exact_mut(f)
                .enumerate()
                .try_for_each(|(j, segment)| seal_one(first + j as u64, false, segment))
        },
        || {
            if is_final {
                seal_one(first + whole as u64, true, batch_tail)
            } else {
                Ok(())
            }
        },
    );
    whole_result.and(tail_result)
}

/// Opens segments `first..` from `sealed` into `out`. If `is_final`, the last segment
/// in `sealed` must be the object's final segment. On failure reports the lowest
/// failing segment, and tells a cut (a final-position segment that opens as non-final)
/// and an extension (a non-final position that opens as final) from other damage.
fn open_batch(
    cipher: &Cipher,
    header: &Header,
    aad: &[u8],
    first: u64,
    sealed: &[u8],
    out: &mut [u8],
    is_final: bool,
) -> Result<()> {
    let s = header.segment_size as usize;
    let f = s + TAG_LEN;
    let n = sealed.len().div_ceil(f);
    let whole = if is_final { n - 1 } else { n };
    debug_assert!(n >= 1 && out.len() + n * TAG_LEN == sealed.len());
    let (sealed_whole, sealed_tail) = sealed.split_at(whole * f);
    let (out_whole, out_tail) = out.split_at_mut(whole * s);

    let open_one = |index: u64, last: bool, c: &[u8], o: &mut [u8]| -> Result<(), (u64, Error)> {
        let (ct, tag) = c.split_at(o.len());
        let tag: &[u8; TAG_LEN] = tag
            .try_into()
            .map_err(|_| (index, Error::SegmentAuth { segment: index }))?;
        if cipher
            .open_to(&header.nonce(index, last), aad, ct, tag, o)
            .is_ok()
        {
            return Ok(());
        }
        // Authentic under the other flag: the data is intact but ends in the wrong place.
        let error = if cipher
            .open_to(&header.nonce(index, !last), aad, ct, tag, o)
            .is_ok()
        {
            if last {
                Error::Truncated { segment: index }
            } else {
                Error::TrailingData { segment: index }
            }
        } else {
            Error::SegmentAuth { segment: index }
        };
        o.fill(0);
        Err((index, error))
    };
    let (whole_error, tail_error) = rayon::join(
        || {
            sealed_whole
                .par_chunks_exact(f)
                .zip(out_whole.par_chunks_exact_mut(s))
                .enumerate()
                .filter_map(|(j, (c, o))| open_one(first + j as u64, false, c, o).err())
                .min_by_key(|(index, _)| *index)
        },
        || {
            if is_final {
                open_one(first + whole as u64, true, sealed_tail, out_tail).err()
            } else {
                None
            }
        },
    );
    match whole_error.or(tail_error) {
        Some((_, error)) => Err(error),
        None => Ok(()),
    }
}

/// Fills `buf` from `reader` (after a byte carried over from the previous call) and
/// says whether the input ended: a batch is final when `buf` was not filled, or when it
/// was and one more byte read hits the end. The byte read to find out is carried over.
fn fill_batch(
    reader: &mut impl Read,
    buf: &mut [u8],
    carry: &mut Option<u8>,
) -> io::Result<(usize, bool)> {
    let mut filled = 0;
    if let Some(b) = carry.take() {
        buf[0] = b;
        filled = 1;
    }
    filled += read_full(reader, &mut buf[filled..])?;
    if filled < buf.len() {
        return Ok((filled, true));
    }
    let mut one = [0u8; 1];
    if read_full(reader, &mut one)? == 0 {
        return Ok((filled, true));
    }
    *carry = Some(one[0]);
    Ok((filled, false))
}

/// [`fill_batch`] for [`seal_batch_in_place`]: reads plaintext into the segment places of
/// `batch` (`segment` bytes at every `segment + tag` bytes), each full before the next, and
/// returns the plaintext bytes read and whether the input ended.
fn fill_segments(
    reader: &mut impl Read,
    batch: &mut [u8],
    segment: usize,
    carry: &mut Option<u8>,
) -> io::Result<(usize, bool)> {
    let mut filled = 0;
    for place in batch.chunks_exact_mut(segment + TAG_LEN) {
        let place = &mut place[..segment];
        let mut got = 0;
        if let Some(b) = carry.take() {
            place[0] = b;
            got = 1;
        }
        got += read_full(reader, &mut place[got..])?;
        filled += got;
        if got < segment {
            return Ok((filled, true));
        }
    }
    let mut one = [0u8; 1];
    if read_full(reader, &mut one)? == 0 {
        return Ok((filled, true));
    }
    *carry = Some(one[0]);
    Ok((filled, false))
}

/// Reads until `buf` is full or the input ends; returns the bytes read.
fn read_full(reader: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match reader.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(k) => filled += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

#[cfg(test)]
mod tests {
    use std::io::Cursor;

    use super::*;

    const S: usize = DEFAULT_SEGMENT_SIZE as usize;
    const F: usize = S + TAG_LEN;
    const AAD: &[u8] = b"bucket/key";

    fn engine() -> Engine {
        Engine::new(&DataKey::generate().unwrap())
    }

    fn data(len: usize) -> Vec<u8> {
        // Not all-equal bytes, so a segment swap would change the plaintext.
        (0..len)
            .map(|i| (i as u64).wrapping_mul(2_654_435_761).to_be_bytes()[3])
            .collect()
    }

    fn stream_seal(e: &Engine, pt: &[u8], aad: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        assert_eq!(e.seal_stream(pt, &mut out, aad).unwrap(), pt.len() as u64);
        out
    }

    fn stream_open(e: &Engine, sealed: &[u8], aad: &[u8]) -> Result<Vec<u8>> {
        let mut out = Vec::new();
        let n = e.open_stream(sealed, &mut out, aad)?;
        assert_eq!(n, out.len() as u64);
        Ok(out)
    }

    /// Both APIs must give the same verdict on damaged input.
    fn open_both(e: &Engine, sealed: &[u8]) -> (Error, Error) {
        let a = e.open(sealed, AAD).unwrap_err();
        let b = stream_open(e, sealed, AAD).unwrap_err();
        (a, b)
    }

    /// Sizes around the segment size; the streaming variants also cross a batch
    /// boundary (`BATCH_SEGMENTS` segments).
    const SIZES: &[usize] = &[
        0,
        1,
        S - 1,
        S,
        S + 1,
        3 * S + 7,
        BATCH_SEGMENTS * S,
        BATCH_SEGMENTS * S + 1,
    ];

    #[test]
    fn round_trips_in_memory_and_streaming_in_one_format() {
        let e = engine();
        for &len in SIZES {
            let pt = data(len);
            let mem = e.seal(&pt, AAD).unwrap();
            let streamed = stream_seal(&e, &pt, AAD);
            let expect = e.layout().sealed_len(len as u64).unwrap();
            assert_eq!(mem.len() as u64, expect, "len {len}");
            assert_eq!(streamed.len() as u64, expect, "len {len}");
            assert_eq!(e.layout().plaintext_len(expect).unwrap(), len as u64);

            assert_eq!(e.open(&mem, AAD).unwrap(), pt, "mem->mem len {len}");
            assert_eq!(e.open(&streamed, AAD).unwrap(), pt, "stream->mem len {len}");
            assert_eq!(
                stream_open(&e, &mem, AAD).unwrap(),
                pt,
                "mem->stream len {len}"
            );
            assert_eq!(
                stream_open(&e, &streamed, AAD).unwrap(),
                pt,
                "stream->stream len {len}"
            );

            let mut buf = vec![0u8; len];
            e.open_into(&streamed, AAD, &mut buf).unwrap();
            assert_eq!(buf, pt);
        }
    }

    #[test]
    fn empty_plaintext_is_one_empty_final_segment() {
        let e = engine();
        let sealed = e.seal(&[], AAD).unwrap();
        assert_eq!(sealed.len(), HEADER_LEN + TAG_LEN);
        assert_eq!(e.open(&sealed, AAD).unwrap(), Vec::<u8>::new());
        assert!(matches!(
            e.open(&sealed[..HEADER_LEN], AAD),
            Err(Error::InvalidSealedLength { .. })
        ));
    }

    #[test]
    fn header_and_nonce_layout() {
        let e = engine();
        let sealed = e.seal(b"hello", AAD).unwrap();
        assert_eq!(&sealed[..6], b"RESEAL");
        assert_eq!(sealed[6], 1);
        assert_eq!(&sealed[7..11], &DEFAULT_SEGMENT_SIZE.to_be_bytes());
        let header = Header::parse(&sealed).unwrap();
        assert_eq!(header.to_bytes()[..], sealed[..HEADER_LEN]);
        let nonce = header.nonce(0x0102_0304, true);
        assert_eq!(&nonce[..7], &header.nonce_prefix);
        assert_eq!(&nonce[7..], &[1, 2, 3, 4, 1]);
        assert_eq!(header.nonce(5, false)[7..], [0, 0, 0, 5, 0]);
    }

    #[test]
    fn each_seal_uses_a_fresh_nonce_prefix() {
        let e = engine();
        let a = e.seal(b"same", AAD).unwrap();
        let b = e.seal(b"same", AAD).unwrap();
        assert_ne!(a[11..HEADER_LEN], b[11..HEADER_LEN]);
        assert_ne!(a, b);
    }

    #[test]
    fn other_aad_or_key_does_not_open() {
        let e = engine();
        let sealed = e.seal(&data(S + 5), AAD).unwrap();
        assert!(matches!(
            e.open(&sealed, b"bucket/other"),
            Err(Error::SegmentAuth { segment: 0 })
        ));
        assert!(matches!(
            engine().open(&sealed, AAD),
            Err(Error::SegmentAuth { segment: 0 })
        ));
    }

    #[test]
    fn flipped_bit_in_any_segment_is_detected() {
        let e = engine();
        let sealed = e.seal(&data(3 * S + 7), AAD).unwrap();
        for (segment, offset) in [(0u64, 10usize), (1, F + S), (2, 2 * F + 3), (3, 3 * F + 2)] {
            let mut bad = sealed.clone();
            bad[HEADER_LEN + offset] ^= 0x04;
            let (a, b) = open_both(&e, &bad);
            assert!(
                matches!(a, Error::SegmentAuth { segment: s } if s == segment),
                "{a}"
            );
            assert!(
                matches!(b, Error::SegmentAuth { segment: s } if s == segment),
                "{b}"
            );
        }
    }

    #[test]
    fn swapped_segments_are_detected() {
        let e = engine();
        let sealed = e.seal(&data(3 * S + 7), AAD).unwrap();
        let mut bad = sealed.clone();
        let (a, b) = bad[HEADER_LEN..].split_at_mut(F);
        a.swap_with_slice(&mut b[..F]);
        let (x, y) = open_both(&e, &bad);
        assert!(matches!(x, Error::SegmentAuth { segment: 0 }), "{x}");
        assert!(matches!(y, Error::SegmentAuth { segment: 0 }), "{y}");
    }

    #[test]
    fn truncation_at_a_segment_border_is_reported_as_truncation() {
        let e = engine();
        let sealed = e.seal(&data(3 * S + 7), AAD).unwrap();
        // Drop the final segment: segment 2 is now last but was sealed as non-final.
        let cut = &sealed[..HEADER_LEN + 3 * F];
        let (a, b) = open_both(&e, cut);
        assert!(matches!(a, Error::Truncated { segment: 2 }), "{a}");
        assert!(matches!(b, Error::Truncated { segment: 2 }), "{b}");
        // Drop two.
        let cut = &sealed[..HEADER_LEN + 2 * F];
        assert!(matches!(
            e.open(cut, AAD),
            Err(Error::Truncated { segment: 1 })
        ));
        // Everything after the header.
        let (a, b) = open_both(&e, &sealed[..HEADER_LEN]);
        assert!(matches!(a, Error::InvalidSealedLength { .. }), "{a}");
        assert!(matches!(b, Error::InvalidSealedLength { .. }), "{b}");
    }

    #[test]
    fn truncation_mid_segment_is_detected() {
        let e = engine();
        let sealed = e.seal(&data(3 * S + 7), AAD).unwrap();
        // Inside the final segment, inside a middle segment, inside a tag.
        for cut in [
            sealed.len() - 1,
            HEADER_LEN + F + 100,
            HEADER_LEN + 3 * F + 5,
        ] {
            let (a, b) = open_both(&e, &sealed[..cut]);
            for err in [a, b] {
                assert!(
                    matches!(
                        err,
                        Error::SegmentAuth { .. } | Error::InvalidSealedLength { .. }
                    ),
                    "cut {cut}: {err}"
                );
            }
        }
    }

    #[test]
    fn appended_bytes_are_detected() {
        let e = engine();
        // Ends on a whole segment: an appended segment makes the real final segment
        // sit in a non-final position.
        let sealed = e.seal(&data(2 * S), AAD).unwrap();
        for extra in [TAG_LEN, TAG_LEN + 1, F, F + 100] {
            let mut long = sealed.clone();
            long.extend(std::iter::repeat_n(0xEE, extra));
            let (a, b) = open_both(&e, &long);
            assert!(
                matches!(a, Error::TrailingData { segment: 1 }),
                "+{extra}: {a}"
            );
            assert!(
                matches!(b, Error::TrailingData { segment: 1 }),
                "+{extra}: {b}"
            );
        }
        // A copy of a real segment appended is no better.
        let mut long = sealed.clone();
        long.extend_from_within(HEADER_LEN..HEADER_LEN + F);
        assert!(matches!(
            e.open(&long, AAD),
            Err(Error::TrailingData { segment: 1 })
        ));
        // Ends mid-segment: appended bytes extend the final segment.
        let sealed = e.seal(&data(S + 9), AAD).unwrap();
        for extra in [1, 5, 100] {
            let mut long = sealed.clone();
            long.extend(std::iter::repeat_n(0, extra));
            let (a, b) = open_both(&e, &long);
            assert!(matches!(a, Error::SegmentAuth { segment: 1 }), "{a}");
            assert!(matches!(b, Error::SegmentAuth { segment: 1 }), "{b}");
        }
    }

    #[test]
    fn edited_header_is_detected() {
        let e = engine();
        let sealed = e.seal(&data(3 * S + 7), AAD).unwrap();

        let mut bad = sealed.clone();
        bad[0] = b'X';
        assert!(matches!(
            open_both(&e, &bad),
            (Error::NotSealed, Error::NotSealed)
        ));

        let mut bad = sealed.clone();
        bad[6] = 2;
        assert!(matches!(
            e.open(&bad, AAD),
            Err(Error::UnsupportedVersion(2))
        ));

        // Another valid segment size changes the segmenting and fails authentication.
        let mut bad = sealed.clone();
        bad[7..11].copy_from_slice(&(DEFAULT_SEGMENT_SIZE / 2).to_be_bytes());
        let (a, b) = open_both(&e, &bad);
        assert!(matches!(a, Error::SegmentAuth { segment: 0 }), "{a}");
        assert!(matches!(b, Error::SegmentAuth { segment: 0 }), "{b}");

        let mut bad = sealed.clone();
        bad[7..11].copy_from_slice(&u32::MAX.to_be_bytes());
        assert!(matches!(
            e.open(&bad, AAD),
            Err(Error::InvalidSegmentSize(u32::MAX))
        ));

        for i in 11..HEADER_LEN {
            let mut bad = sealed.clone();
            bad[i] ^= 0x80;
            assert!(matches!(
                e.open(&bad, AAD),
                Err(Error::SegmentAuth { segment: 0 })
            ));
        }
    }

    #[test]
    fn open_range_reads_only_covering_segments() {
        let e = engine();
        let len = 3 * S + 7;
        let pt = data(len);
        let sealed = e.seal(&pt, AAD).unwrap();
        let ranges = [
            0..0,
            0..1,
            S - 1..S + 1,
            S..2 * S,
            2 * S + 5..len,
            len - 1..len,
            0..len,
            len..len,
        ];
        for r in ranges {
            let mut reads = Vec::new();
            let got = e
                .open_range_at(
                    sealed.len() as u64,
                    |off, buf| {
                        reads.push((off, buf.len()));
                        let off = off as usize;
                        buf.copy_from_slice(&sealed[off..off + buf.len()]);
                        Ok(())
                    },
                    AAD,
                    r.start as u64..r.end as u64,
                )
                .unwrap();
            assert_eq!(got, &pt[r.clone()], "{r:?}");
            let segs = e.layout().segments_for(r.start as u64..r.end as u64);
            let sealed_read: usize = reads.iter().skip(1).map(|(_, l)| l).sum();
            assert!(
                sealed_read <= (segs.end - segs.start) as usize * F,
                "{r:?}: {reads:?}"
            );

            let via_seek = e
                .open_range(Cursor::new(&sealed), AAD, r.start as u64..r.end as u64)
                .unwrap();
            assert_eq!(via_seek, &pt[r.clone()]);
        }
        assert!(matches!(
            e.open_range(Cursor::new(&sealed), AAD, 0..len as u64 + 1),
            Err(Error::RangeOutOfBounds { .. })
        ));
    }

    #[test]
    fn open_range_detects_damage_in_the_segments_it_reads() {
        let e = engine();
        let sealed = e.seal(&data(3 * S + 7), AAD).unwrap();
        let mut bad = sealed.clone();
        bad[HEADER_LEN + F + 1] ^= 1;
        assert!(matches!(
            e.open_range(Cursor::new(&bad), AAD, S as u64..S as u64 + 1),
            Err(Error::SegmentAuth { segment: 1 })
        ));
        // A range in an intact segment still opens: segments are independent.
        assert!(e.open_range(Cursor::new(&bad), AAD, 0..10).is_ok());
        // Truncated at a border: the last segment present is not final.
        let cut = &sealed[..HEADER_LEN + 2 * F];
        assert!(matches!(
            e.open_range(Cursor::new(cut), AAD, S as u64..S as u64 + 3),
            Err(Error::Truncated { segment: 1 })
        ));
    }

    #[test]
    fn layout_lengths() {
        let l = Layout::new(DEFAULT_SEGMENT_SIZE).unwrap();
        let h = HEADER_LEN as u64;
        let t = TAG_LEN as u64;
        let s = S as u64;
        assert_eq!(l.sealed_len(0).unwrap(), h + t);
        assert_eq!(l.sealed_len(1).unwrap(), h + 1 + t);
        assert_eq!(l.sealed_len(s).unwrap(), h + s + t);
        assert_eq!(l.sealed_len(s + 1).unwrap(), h + s + 1 + 2 * t);
        for pt in [0, 1, s - 1, s, s + 1, 5 * s, 5 * s + 3] {
            assert_eq!(l.plaintext_len(l.sealed_len(pt).unwrap()).unwrap(), pt);
        }
        for bad in [0, h, h + t - 1, h + s + t + 1, h + s + t + 15] {
            assert!(l.plaintext_len(bad).is_err(), "{bad}");
        }
        assert!(matches!(l.sealed_len(s << 32 | 1), Err(Error::TooLarge)));
        assert!(l.sealed_len(s << 32).is_ok());
        assert_eq!(l.segments_for(0..1), 0..1);
        assert_eq!(l.segments_for(s - 1..s + 1), 0..2);
        assert_eq!(l.segments_for(s..2 * s), 1..2);
        assert_eq!(l.segments_for(3..3), 0..0);
        assert!(Layout::new(MIN_SEGMENT_SIZE - 1).is_err());
        assert!(Layout::new(MAX_SEGMENT_SIZE + 1).is_err());
    }

    #[test]
    fn streaming_reports_reader_errors() {
        struct Failing;
        impl Read for Failing {
            fn read(&mut self, _: &mut [u8]) -> io::Result<usize> {
                Err(io::Error::other("disk on fire"))
            }
        }
        let e = engine();
        assert!(matches!(
            e.seal_stream(Failing, io::sink(), AAD),
            Err(Error::Io(_))
        ));
        assert!(matches!(
            e.open_stream(Failing, io::sink(), AAD),
            Err(Error::Io(_))
        ));
    }

    /// Interleaved short reads (1 byte at a time at the worst) must not change the
    /// output: batch boundaries depend only on the byte count.
    #[test]
    fn streaming_handles_short_reads() {
        struct Trickle<'a>(&'a [u8], usize);
        impl Read for Trickle<'_> {
            fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
                self.1 += 1;
                let n = buf.len().min(self.0.len()).min(1 + self.1 % 4099);
                buf[..n].copy_from_slice(&self.0[..n]);
                self.0 = &self.0[n..];
                Ok(n)
            }
        }
        let e = engine().with_segment_size(MIN_SEGMENT_SIZE).unwrap();
        let pt = data(BATCH_SEGMENTS * MIN_SEGMENT_SIZE as usize * 2 + 5);
        let mut sealed = Vec::new();
        e.seal_stream(Trickle(&pt, 0), &mut sealed, AAD).unwrap();
        assert_eq!(e.open(&sealed, AAD).unwrap(), pt);
        let mut out = Vec::new();
        e.open_stream(Trickle(&sealed, 0), &mut out, AAD).unwrap();
        assert_eq!(out, pt);
    }

    #[test]
    fn parallel_and_single_thread_agree() {
        let e = engine();
        let pt = data(10 * S + 3);
        let one = rayon::ThreadPoolBuilder::new()
            .num_threads(1)
            .build()
            .unwrap();
        let sealed = one.install(|| e.seal(&pt, AAD)).unwrap();
        assert_eq!(e.open(&sealed, AAD).unwrap(), pt);
        assert_eq!(one.install(|| e.open(&sealed, AAD)).unwrap(), pt);
    }
}
