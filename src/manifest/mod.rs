//! Manifests: where a job's objects come from. Reads an S3 Inventory report (CSV, Parquet or
//! ORC) or a plain CSV list into a stream of [`Row`]s, checking everything that can be
//! checked on the way (checksums, schema, encoding). Knows nothing of jobs or of the job
//! store.
//!
//! Reading streams: memory does not grow with the size of the manifest.

mod columnar;
pub mod csv_list;
pub mod filter;
pub mod inventory;
pub mod keycode;
mod orc;
mod parquet;

use std::fmt;
use std::io::{self, Read};
use std::path::{Path, PathBuf};

use md5::{Digest, Md5};
use serde::{Deserialize, Serialize};

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

/// Counts lines in what is read through it, so that a CSV record's line can be named
/// exactly (the csv crate's own count drifts on blank lines).
pub(crate) struct LineCounter<R> {
    inner: R,
    read: u64,
    /// Offsets of newlines read but not yet passed by a query.
    ahead: std::collections::VecDeque<u64>,
    passed: u64,
}

impl<R: Read> LineCounter<R> {
    pub(crate) fn new(inner: R) -> Self {
        LineCounter {
            inner,
            read: 0,
            ahead: Default::default(),
            passed: 0,
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
}

impl<R: Read> Read for LineCounter<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        let base = self.read;
        self.ahead
            .extend(memchr::memchr_iter(b'\n', &buf[..n]).map(|i| base + i as u64));
        self.read += n as u64;
        Ok(n)
    }
}

/// Reads the next record of a CSV reader over a [`LineCounter`]; gives the line it starts on.
pub(crate) fn next_record<R: Read>(
    reader: &mut csv::Reader<LineCounter<R>>,
    record: &mut csv::ByteRecord,
) -> Result<Option<u64>, (u64, csv::Error)> {
    match reader.read_byte_record(record) {
        Ok(false) => Ok(None),
        Ok(true) => {
            let end = reader.position().byte();
            Ok(Some(reader.get_mut().record_start_line(end, record)))
        }
        Err(e) => Err((reader.get_ref().current_line(), e)),
    }
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    use fmt::Write;
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
}

pub(crate) fn md5_file(path: &Path) -> Result<String, ManifestError> {
    let file = std::fs::File::open(path).map_err(|e| ManifestError::io(path, e))?;
    Md5Reader::new(io::BufReader::new(file))
        .finish()
        .map_err(|e| ManifestError::io(path, e))
}

#[cfg(test)]
mod tests;
