//! Manifests: where a job's objects come from. Reads an S3 Inventory report (CSV, Parquet or
//! ORC) or a plain CSV list into a stream of [`Row`]s, checking everything that can be
//! checked on the way (checksums, schema, encoding). Knows nothing of jobs or of the job
//! store.
//!
//! Reading streams: memory grows neither with the size of the manifest nor with the length of
//! a line, since a record longer than [`MAX_RECORD_BYTES`] is refused as it is read.

mod columnar;
pub mod csv_list;
pub mod filter;
pub mod inventory;
mod orc;
mod parquet;

use std::fmt;
use std::io::{self, Read};
use std::path::{Path, PathBuf};

use md5::{Digest, Md5};

pub(crate) use crate::encoding::hex;
use serde::{Deserialize, Serialize};

use crate::encoding::decode_key;
use crate::sse::SseMode;

pub use filter::Filter;

/// A column a manifest may carry, named as S3 Inventory's `fileSchema` names it. Only the
/// columns reseal reads are listed; other columns are accepted and ignored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Column {
    Bucket,
    Key,
    VersionId,
    IsLatest,
    IsDeleteMarker,
    Size,
    LastModifiedDate,
    ETag,
    StorageClass,
    EncryptionStatus,
}

impl Column {
    pub const ALL: [Column; 10] = [
        Column::Bucket,
        Column::Key,
        Column::VersionId,
        Column::IsLatest,
        Column::IsDeleteMarker,
        Column::Size,
        Column::LastModifiedDate,
        Column::ETag,
        Column::StorageClass,
        Column::EncryptionStatus,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Column::Bucket => "Bucket",
            Column::Key => "Key",
            Column::VersionId => "VersionId",
            Column::IsLatest => "IsLatest",
            Column::IsDeleteMarker => "IsDeleteMarker",
            Column::Size => "Size",
            Column::LastModifiedDate => "LastModifiedDate",
            Column::ETag => "ETag",
            Column::StorageClass => "StorageClass",
            Column::EncryptionStatus => "EncryptionStatus",
        }
    }

    /// The column's name in Parquet and ORC inventories, which S3 writes in snake case. From
    /// the `fileSchema` of the Parquet and ORC `manifest.json` examples in AWS's S3 User
    /// Guide, "Locating your inventory list" (storage-inventory-location).
    pub fn columnar_name(self) -> &'static str {
        match self {
            Column::Bucket => "bucket",
            Column::Key => "key",
            Column::VersionId => "version_id",
            Column::IsLatest => "is_latest",
            Column::IsDeleteMarker => "is_delete_marker",
            Column::Size => "size",
            Column::LastModifiedDate => "last_modified_date",
            Column::ETag => "e_tag",
            Column::StorageClass => "storage_class",
            Column::EncryptionStatus => "encryption_status",
        }
    }

    fn from_name(name: &str) -> Option<Column> {
        Column::ALL.into_iter().find(|c| c.name() == name)
    }

    fn from_columnar_name(name: &str) -> Option<Column> {
        Column::ALL.into_iter().find(|c| c.columnar_name() == name)
    }
}

impl fmt::Display for Column {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One object named by a manifest, with what the manifest says about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub bucket: String,
    pub key: String,
    /// `None` for an unversioned manifest; `Some("null")` for the null version.
    pub version_id: Option<String>,
    pub size: Option<u64>,
    pub etag: Option<String>,
    /// Milliseconds since the Unix epoch.
    pub last_modified: Option<i64>,
    pub storage_class: Option<String>,
    pub encryption_status: Option<SseMode>,
}

/// What a manifest row stands for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RowKind {
    /// The current version of an object (or an object of an unversioned manifest): a task.
    Current,
    /// An older version in an all-versions inventory: counted, not a task.
    Noncurrent,
    /// A delete marker: skipped.
    DeleteMarker,
}

impl RowKind {
    /// What an inventory row is, from its IsDeleteMarker and IsLatest values (`None` where
    /// the inventory has no such column or the row leaves it empty).
    fn from_flags(is_delete_marker: Option<bool>, is_latest: Option<bool>) -> RowKind {
        if is_delete_marker == Some(true) {
            RowKind::DeleteMarker
        } else if is_latest == Some(false) {
            RowKind::Noncurrent
        } else {
            RowKind::Current
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Row {
    pub kind: RowKind,
    pub entry: Entry,
}

/// The format of a manifest.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ManifestFormat {
    /// An S3 Inventory report: `manifest.json` and its gzip CSV data files.
    Inventory,
    /// An S3 Inventory report whose data files are Parquet.
    InventoryParquet,
    /// An S3 Inventory report whose data files are ORC.
    InventoryOrc,
    /// A plain CSV list: `bucket,key[,versionId]`.
    Csv,
}

impl fmt::Display for ManifestFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ManifestFormat::Inventory => "S3 Inventory report (CSV)",
            ManifestFormat::InventoryParquet => "S3 Inventory report (Parquet)",
            ManifestFormat::InventoryOrc => "S3 Inventory report (ORC)",
            ManifestFormat::Csv => "plain CSV",
        })
    }
}

/// What a job records about its manifest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ManifestSummary {
    pub format: ManifestFormat,
    pub location: String,
    /// Hex MD5 of the manifest file (manifest.json or the CSV list).
    pub md5: String,
    pub columns: Vec<Column>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_bucket: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub destination_bucket: Option<String>,
    /// The inventory's `creationTimestamp`, milliseconds since the Unix epoch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created: Option<i64>,
    #[serde(default)]
    pub data_files: Vec<String>,
}

/// A manifest that passed its up-front checks and can be read row by row.
#[derive(Debug)]
pub enum Manifest {
    Inventory(inventory::Inventory),
    Csv(csv_list::CsvList),
}

impl Manifest {
    /// Opens a manifest, telling the format from its first byte (`{` is an inventory's
    /// manifest.json, anything else a CSV list). An inventory's manifest.json, its
    /// checksum and the presence of its data files are checked here, before any row is read.
    pub fn open(path: &Path) -> Result<Manifest, ManifestError> {
        let mut first = [0u8; 64];
        let n = std::fs::File::open(path)
            .and_then(|mut f| f.read(&mut first))
            .map_err(|e| ManifestError::io(path, e))?;
        let starts_with_brace = first[..n]
            .iter()
            .find(|b| !b.is_ascii_whitespace())
            .is_some_and(|&b| b == b'{');
        if starts_with_brace {
            inventory::Inventory::open(path).map(Manifest::Inventory)
        } else {
            csv_list::CsvList::open(path).map(Manifest::Csv)
        }
    }

    pub fn summary(&self) -> &ManifestSummary {
        match self {
            Manifest::Inventory(m) => &m.summary,
            Manifest::Csv(m) => &m.summary,
        }
    }

    pub fn has_column(&self, column: Column) -> bool {
        self.summary().columns.contains(&column)
    }

    /// Reads every row in order and hands it to `sink`. Stops at the first error, from the
    /// manifest or from the sink.
    pub fn read_rows(
        &self,
        sink: &mut dyn FnMut(Row) -> Result<(), ManifestError>,
    ) -> Result<(), ManifestError> {
        match self {
            Manifest::Inventory(m) => m.read_rows(sink),
            Manifest::Csv(m) => m.read_rows(sink),
        }
    }
}

/// Why a manifest was refused. Every variant names the file, and the line where there is one.
#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    #[error("{}: {source}", path.display())]
    Io { path: PathBuf, source: io::Error },
    #[error("{}: {message}", path.display())]
    Invalid { path: PathBuf, message: String },
    #[error("{} line {line}: {message}", path.display())]
    Row {
        path: PathBuf,
        line: u64,
        message: String,
    },
    /// The consumer of the rows stopped reading.
    #[error("reading the manifest was stopped: {0}")]
    Stopped(String),
}

impl ManifestError {
    pub fn io(path: &Path, source: io::Error) -> Self {
        ManifestError::Io {
            path: path.to_path_buf(),
            source,
        }
    }

    pub fn invalid(path: &Path, message: impl Into<String>) -> Self {
        ManifestError::Invalid {
            path: path.to_path_buf(),
            message: message.into(),
        }
    }

    pub fn row(path: &Path, line: u64, message: impl Into<String>) -> Self {
        ManifestError::Row {
            path: path.to_path_buf(),
            line,
            message: message.into(),
        }
    }
}

/// A reader that computes the MD5 of everything read through it.
pub(crate) struct Md5Reader<R> {
    inner: R,
    hasher: Md5,
}

impl<R: Read> Md5Reader<R> {
    pub(crate) fn new(inner: R) -> Self {
        Md5Reader {
            inner,
            hasher: Md5::new(),
        }
    }

    /// Reads what is left, then gives the hex MD5 of all bytes.
    pub(crate) fn finish(mut self) -> io::Result<String> {
        io::copy(&mut self, &mut io::sink())?;
        Ok(hex(&self.hasher.finalize()))
    }
}

impl<R: Read> Read for Md5Reader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }
}

/// The most bytes an S3 object key may have.
pub const MAX_KEY_BYTES: usize = 1024;

/// The most bytes one CSV record may take before it is refused. The csv crate holds a whole
/// record in memory, so without a bound one endless line is read into memory whole. An
/// inventory row of every column, its base64 ACL included, takes a few KiB.
pub const MAX_RECORD_BYTES: u64 = 1 << 20;

/// Decodes a row's key field. A key S3 cannot hold is refused here, so that the job does
/// not start, rather than failing later task by task.
pub(crate) fn object_key(raw: &str) -> Result<String, String> {
    let key = decode_key(raw).map_err(|e| format!("key {raw:?}: {e}"))?;
    check_key_length(&key)?;
    Ok(key)
}

/// Refuses a key longer than S3 allows (a CSV key once decoded; a Parquet or ORC key as
/// it is).
pub(crate) fn check_key_length(key: &str) -> Result<(), String> {
    if key.len() > MAX_KEY_BYTES {
        return Err(format!(
            "the key is {} bytes long once decoded; S3 keys are at most 1,024 bytes",
            key.len()
        ));
    }
    Ok(())
}

/// A CSV record that [`LineCounter`] refuses. It reaches the reader's caller inside the
/// `io::Error` the csv crate passes through, and is told apart from other I/O errors by type.
#[derive(Debug, Clone, Copy, thiserror::Error)]
enum RecordError {
    #[error(
        "this record is longer than 1 MiB ({MAX_RECORD_BYTES} bytes), the most one manifest row \
         may take"
    )]
    TooLong { line: u64 },
    #[error("a quoted field starts on this line and is never closed: the file ends inside it")]
    UnclosedQuote { line: u64 },
}

impl RecordError {
    fn line(self) -> u64 {
        match self {
            RecordError::TooLong { line } | RecordError::UnclosedQuote { line } => line,
        }
    }
}

/// Where a [`LineCounter`] is in the CSV syntax. These are csv_core's rules for the reader
/// the manifests use: `,` between fields, `"` as the quote, `""` inside quotes as an
/// escaped quote, `\r` or `\n` ending a record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Syntax {
    /// Between records, where line ends are blank lines and not records.
    BetweenRecords,
    /// At a field's first byte: the only place where a quote opens a quoted field.
    FieldStart,
    /// In an unquoted field, or after a quoted field's closing quote: bytes are literal up
    /// to the delimiter or the end of the record.
    Unquoted,
    /// Inside quotes, where only a quote matters.
    Quoted,
    /// Just after a quote inside quotes: a second quote is an escaped quote, anything else
    /// means the first one closed the field.
    QuoteInQuoted,
}

/// Counts lines in what is read through it, so that a CSV record's line can be named
/// exactly (the csv crate's own count drifts on blank lines). It follows the CSV syntax to
/// find where records start and end, and refuses a record longer than [`MAX_RECORD_BYTES`]
/// before the csv crate buffers more of it, and a quoted field still open at the end.
pub(crate) struct LineCounter<R> {
    inner: R,
    /// Bytes handed on so far.
    read: u64,
    /// Offsets of newlines read but not yet passed by a query.
    ahead: std::collections::VecDeque<u64>,
    passed: u64,
    syntax: Syntax,
    /// The line the scan is on.
    line: u64,
    /// Offset and line of the first byte of the record being scanned.
    record_start: u64,
    record_line: u64,
    /// The line where the quoted field being scanned opened.
    quote_line: u64,
    /// Once a record is refused, every later read fails the same way.
    refused: Option<RecordError>,
}

impl<R: Read> LineCounter<R> {
    pub(crate) fn new(inner: R) -> Self {
        LineCounter {
            inner,
            read: 0,
            ahead: Default::default(),
            passed: 0,
            syntax: Syntax::BetweenRecords,
            line: 1,
            record_start: 0,
            record_line: 1,
            quote_line: 1,
            refused: None,
        }
    }

    pub(crate) fn into_inner(self) -> R {
        self.inner
    }

    /// The line a record starts on, given the offset just past it (the reader's position
    /// after reading it). Offsets must not go backwards between calls.
    fn record_start_line(&mut self, end: u64, record: &csv::ByteRecord) -> u64 {
        let last_byte = end.saturating_sub(1);
        while self.ahead.front().is_some_and(|&nl| nl < last_byte) {
            self.ahead.pop_front();
            self.passed += 1;
        }
        let inside: usize = record
            .iter()
            .map(|f| memchr::memchr_iter(b'\n', f).count())
            .sum();
        self.passed + 1 - inside as u64
    }

    /// The line after the last newline passed: where reading stopped.
    fn current_line(&self) -> u64 {
        self.passed + 1
    }

    /// Follows the syntax through `bytes`, the next bytes read. Gives how many of them may be
    /// handed on: all, or those up to the limit of a record found too long.
    fn scan(&mut self, bytes: &[u8]) -> usize {
        let mut i = 0;
        while i < bytes.len() {
            // Inside a field only a few bytes matter; skip to the next of them.
            let skip = match self.syntax {
                Syntax::Unquoted => memchr::memchr3(b',', b'\r', b'\n', &bytes[i..]),
                Syntax::Quoted => memchr::memchr2(b'"', b'\n', &bytes[i..]),
                _ => Some(0),
            };
            let Some(skip) = skip else { break };
            i += skip;
            let b = bytes[i];
            let ends_record = match (self.syntax, b) {
                (Syntax::BetweenRecords, b'\r' | b'\n') => false,
                (Syntax::BetweenRecords, _) => {
                    self.record_start = self.read + i as u64;
                    self.record_line = self.line;
                    self.syntax = Syntax::FieldStart;
                    continue;
                }
                (Syntax::Quoted, b'"') => {
                    self.syntax = Syntax::QuoteInQuoted;
                    false
                }
                (Syntax::Quoted, _) => false,
                (Syntax::QuoteInQuoted, b'"') => {
                    self.syntax = Syntax::Quoted;
                    false
                }
                (Syntax::FieldStart, b'"') => {
                    self.quote_line = self.line;
                    self.syntax = Syntax::Quoted;
                    false
                }
                (_, b',') => {
                    self.syntax = Syntax::FieldStart;
                    false
                }
                (_, b'\r' | b'\n') => true,
                _ => {
                    self.syntax = Syntax::Unquoted;
                    false
                }
            };
            if ends_record {
                if let Some(allowed) = self.over_limit(i) {
                    return allowed;
                }
                self.syntax = Syntax::BetweenRecords;
            }
            if b == b'\n' {
                self.ahead.push_back(self.read + i as u64);
                self.line += 1;
            }
            i += 1;
        }
        if self.syntax != Syntax::BetweenRecords
            && let Some(allowed) = self.over_limit(bytes.len())
        {
            return allowed;
        }
        bytes.len()
    }

    /// Refuses the record being scanned if it is longer than the limit when it reaches
    /// `end`, an index into the bytes being scanned; then gives how many of those bytes may
    /// be handed on, so that the reader buffers no more of the record than the limit.
    fn over_limit(&mut self, end: usize) -> Option<usize> {
        let len = self.read + end as u64 - self.record_start;
        (len > MAX_RECORD_BYTES).then(|| {
            self.refused = Some(RecordError::TooLong {
                line: self.record_line,
            });
            (self.record_start + MAX_RECORD_BYTES - self.read) as usize
        })
    }
}

impl<R: Read> Read for LineCounter<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if let Some(refused) = self.refused {
            return Err(io::Error::new(io::ErrorKind::InvalidData, refused));
        }
        let n = self.inner.read(buf)?;
        if n == 0 && !buf.is_empty() && self.syntax == Syntax::Quoted {
            self.refused = Some(RecordError::UnclosedQuote {
                line: self.quote_line,
            });
        }
        let handed_on = self.scan(&buf[..n]);
        self.read += handed_on as u64;
        match self.refused {
            // What comes before the refused record is handed on first: its rows are read,
            // and a bad one among them is the error reported.
            Some(refused) if handed_on == 0 => {
                Err(io::Error::new(io::ErrorKind::InvalidData, refused))
            }
            _ => Ok(handed_on),
        }
    }
}

/// Reads the next record of a CSV reader over a [`LineCounter`]; gives the line it starts on.
/// `io_failure` says what an I/O error from below the reader means for this file.
pub(crate) fn next_record<R: Read>(
    reader: &mut csv::Reader<LineCounter<R>>,
    record: &mut csv::ByteRecord,
    path: &Path,
    io_failure: &str,
) -> Result<Option<u64>, ManifestError> {
    match reader.read_byte_record(record) {
        Ok(false) => Ok(None),
        Ok(true) => {
            let end = reader.position().byte();
            Ok(Some(reader.get_mut().record_start_line(end, record)))
        }
        Err(e) => {
            let line = reader.get_ref().current_line();
            Err(match e.kind() {
                csv::ErrorKind::Io(io) => {
                    match io.get_ref().and_then(|e| e.downcast_ref::<RecordError>()) {
                        Some(&refused) => {
                            ManifestError::row(path, refused.line(), refused.to_string())
                        }
                        None => ManifestError::row(path, line, format!("{io_failure}: {io}")),
                    }
                }
                _ => ManifestError::row(path, line, format!("not valid CSV: {e}")),
            })
        }
    }
}

pub(crate) fn md5_file(path: &Path) -> Result<String, ManifestError> {
    let file = std::fs::File::open(path).map_err(|e| ManifestError::io(path, e))?;
    Md5Reader::new(io::BufReader::new(file))
        .finish()
        .map_err(|e| ManifestError::io(path, e))
}

#[cfg(test)]
mod tests;
