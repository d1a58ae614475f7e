//! S3 Inventory reports: `manifest.json` (with its sibling `manifest.checksum`) and the data
//! files it lists, found where a user who copied the inventory prefix to disk has them. Owns
//! the checks every format shares (checksums, `fileSchema`, required columns) and reads the
//! gzip CSV data files; Parquet and ORC data files are read by `parquet.rs` and `orc.rs`.

use std::fs::File;
use std::io::BufReader;
use std::path::{Path, PathBuf};

use flate2::read::MultiGzDecoder;
use md5::Digest;
use serde::Deserialize;

use super::{
    Column, Entry, LineCounter, ManifestError, ManifestFormat, ManifestSummary, Md5Reader, Row,
    RowKind, columnar, hex, next_record, object_key,
};
use crate::sse::SseMode;

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ManifestJson {
    source_bucket: String,
    #[serde(default)]
    destination_bucket: Option<String>,
    #[serde(default)]
    creation_timestamp: Option<String>,
    file_format: String,
    file_schema: String,
    files: Vec<FileJson>,
}

#[derive(Deserialize)]
struct FileJson {
    key: String,
    #[serde(rename = "MD5checksum")]
    md5_checksum: String,
}

/// How an inventory's data files are written: its manifest.json's `fileFormat`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum FileFormat {
    Csv,
    Parquet,
    Orc,
}

impl FileFormat {
    fn parse(file_format: &str) -> Result<FileFormat, String> {
        [FileFormat::Csv, FileFormat::Parquet, FileFormat::Orc]
            .into_iter()
            .find(|f| f.name().eq_ignore_ascii_case(file_format.trim()))
            .ok_or_else(|| {
                format!(
                    "fileFormat is {file_format:?}: S3 Inventory writes CSV, ORC or Parquet, and \
                     reseal reads those three"
                )
            })
    }

    fn name(self) -> &'static str {
        match self {
            FileFormat::Csv => "CSV",
            FileFormat::Parquet => "Parquet",
            FileFormat::Orc => "ORC",
        }
    }

    fn manifest_format(self) -> ManifestFormat {
        match self {
            FileFormat::Csv => ManifestFormat::Inventory,
            FileFormat::Parquet => ManifestFormat::InventoryParquet,
            FileFormat::Orc => ManifestFormat::InventoryOrc,
        }
    }

    /// A column's name as this format's `fileSchema` and data files spell it.
    fn column_name(self, column: Column) -> &'static str {
        match self {
            FileFormat::Csv => column.name(),
            FileFormat::Parquet | FileFormat::Orc => column.columnar_name(),
        }
    }

    fn column(self, name: &str) -> Option<Column> {
        match self {
            FileFormat::Csv => Column::from_name(name),
            FileFormat::Parquet | FileFormat::Orc => Column::from_columnar_name(name),
        }
    }
}

/// The columns `fileSchema` lists, and where each is in a CSV data file's rows (Parquet and
/// ORC data files are read by column name, not position).
#[derive(Debug, Clone)]
struct Schema {
    width: usize,
    index: [Option<usize>; Column::ALL.len()],
}

impl Schema {
    fn parse(format: FileFormat, file_schema: &str) -> Result<Schema, String> {
        let names: Vec<String> = match format {
            FileFormat::Csv => file_schema
                .split(',')
                .map(|name| name.trim().to_owned())
                .collect(),
            FileFormat::Parquet => columnar::parquet_column_names(file_schema)?,
            FileFormat::Orc => columnar::orc_column_names(file_schema)?,
        };
        let mut index = [None; Column::ALL.len()];
        for (i, name) in names.iter().enumerate() {
            if name.is_empty() {
                return Err(format!(
                    "fileSchema {file_schema:?} has an empty column name at position {}",
                    i + 1
                ));
            }
            if let Some(column) = format.column(name) {
                let slot = &mut index[column as usize];
                if slot.is_some() {
                    return Err(format!("fileSchema names the column {name} twice"));
                }
                *slot = Some(i);
            }
        }
        let schema = Schema {
            width: names.len(),
            index,
        };
        let name = |c: Column| format.column_name(c);
        for required in [Column::Bucket, Column::Key] {
            if !schema.has(required) {
                return Err(format!(
                    "fileSchema {file_schema:?} has no {} column; it is required",
                    name(required)
                ));
            }
        }
        if schema.has(Column::VersionId) && !schema.has(Column::IsLatest) {
            return Err(format!(
                "fileSchema {file_schema:?} lists versions ({}) but has no {} column, so \
                 current versions cannot be told from old ones",
                name(Column::VersionId),
                name(Column::IsLatest)
            ));
        }
        Ok(schema)
    }

    fn has(&self, column: Column) -> bool {
        self.index[column as usize].is_some()
    }

    fn columns(&self) -> Vec<Column> {
        Column::ALL.into_iter().filter(|&c| self.has(c)).collect()
    }
}

#[derive(Debug)]
struct DataFile {
    path: PathBuf,
    md5: String,
}

impl DataFile {
    /// Compares the MD5 of the file's bytes with the one manifest.json gives.
    fn check_md5(&self, md5: &str) -> Result<(), ManifestError> {
        if md5 == self.md5 {
            return Ok(());
        }
        Err(ManifestError::invalid(
            &self.path,
            format!(
                "MD5 mismatch: manifest.json says {} but the file has {md5}; the data file is \
                 damaged or belongs to another inventory",
                self.md5
            ),
        ))
    }
}

/// An S3 Inventory report whose manifest.json passed its checks and whose data files exist.
#[derive(Debug)]
pub struct Inventory {
    pub summary: ManifestSummary,
    format: FileFormat,
    schema: Schema,
    files: Vec<DataFile>,
}

impl Inventory {
    pub fn open(path: &Path) -> Result<Inventory, ManifestError> {
        let bytes = std::fs::read(path).map_err(|e| ManifestError::io(path, e))?;
        let md5 = hex(&md5::Md5::digest(&bytes));
        check_manifest_checksum(path, &md5)?;

        let json: ManifestJson = serde_json::from_slice(&bytes).map_err(|e| {
            ManifestError::invalid(path, format!("not a valid S3 Inventory manifest.json: {e}"))
        })?;
        let format =
            FileFormat::parse(&json.file_format).map_err(|m| ManifestError::invalid(path, m))?;
        let schema = Schema::parse(format, &json.file_schema)
            .map_err(|m| ManifestError::invalid(path, m))?;
        let created = match &json.creation_timestamp {
            Some(t) => Some(t.trim().parse::<i64>().map_err(|_| {
                ManifestError::invalid(
                    path,
                    format!("creationTimestamp {t:?} is not milliseconds since the epoch"),
                )
            })?),
            None => None,
        };

        let mut files = Vec::with_capacity(json.files.len());
        for file in &json.files {
            let md5 = file.md5_checksum.trim().to_ascii_lowercase();
            if md5.len() != 32 || !md5.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(ManifestError::invalid(
                    path,
                    format!(
                        "files[].MD5checksum {:?} of {} is not a hex MD5",
                        file.md5_checksum, file.key
                    ),
                ));
            }
            files.push(DataFile {
                path: locate_data_file(path, &file.key)?,
                md5,
            });
        }

        let summary = ManifestSummary {
            format: format.manifest_format(),
            location: absolute(path).display().to_string(),
            md5,
            columns: schema.columns(),
            source_bucket: Some(json.source_bucket),
            destination_bucket: json.destination_bucket,
            created,
            data_files: files.iter().map(|f| f.path.display().to_string()).collect(),
        };
        Ok(Inventory {
            summary,
            format,
            schema,
            files,
        })
    }

    pub fn read_rows(
        &self,
        sink: &mut dyn FnMut(Row) -> Result<(), ManifestError>,
    ) -> Result<(), ManifestError> {
        for file in &self.files {
            self.read_file(file, sink)?;
        }
        Ok(())
    }

    fn read_file(
        &self,
        file: &DataFile,
        sink: &mut dyn FnMut(Row) -> Result<(), ManifestError>,
    ) -> Result<(), ManifestError> {
        let columns = self.schema.columns();
        let read_rows = match self.format {
            FileFormat::Csv => return self.read_csv_file(file, sink),
            FileFormat::Parquet => super::parquet::read_rows,
            FileFormat::Orc => super::orc::read_rows,
        };
        // Parquet and ORC files are not read front to back (a footer says where each part
        // is), so their MD5 is a pass of its own: on another thread, beside the decoding,
        // where it takes no time from the reader's.
        let (md5, outcome) = std::thread::scope(|scope| {
            let md5 = scope.spawn(|| super::md5_file(&file.path));
            let outcome = read_rows(&file.path, &columns, sink);
            (
                md5.join().expect("computing an MD5 does not panic"),
                outcome,
            )
        });
        if let Err(ManifestError::Stopped(_)) = outcome {
            return outcome;
        }
        // As for CSV, a file that is not what manifest.json promised is reported as such,
        // whatever its decoder made of it.
        file.check_md5(&md5?)?;
        outcome
    }

    fn read_csv_file(
        &self,
        file: &DataFile,
        sink: &mut dyn FnMut(Row) -> Result<(), ManifestError>,
    ) -> Result<(), ManifestError> {
        let path = &file.path;
        let handle = File::open(path).map_err(|e| ManifestError::io(path, e))?;
        let gz = MultiGzDecoder::new(Md5Reader::new(BufReader::with_capacity(256 * 1024, handle)));
        let mut reader = csv::ReaderBuilder::new()
            .has_headers(false)
            .flexible(true)
            .buffer_capacity(256 * 1024)
            .from_reader(LineCounter::new(gz));
        let mut record = csv::ByteRecord::new();
        let outcome = loop {
            let line = match next_record(
                &mut reader,
                &mut record,
                path,
                "cannot decompress the gzip data",
            ) {
                Ok(None) => break Ok(()),
                Ok(Some(line)) => line,
                Err(e) => break Err(e),
            };
            let row = self
                .parse_record(&record)
                .map_err(|m| ManifestError::row(path, line, m));
            if let Err(e) = row.and_then(&mut *sink) {
                break Err(e);
            }
        };
        if let Err(ManifestError::Stopped(_)) = outcome {
            return outcome;
        }
        // The checksum is the stronger statement: a file that is not what manifest.json
        // promised is reported as such, even when the damage also broke a row.
        let md5 = reader
            .into_inner()
            .into_inner()
            .into_inner()
            .finish()
            .map_err(|e| ManifestError::io(path, e))?;
        file.check_md5(&md5)?;
        outcome
    }

    fn parse_record(&self, record: &csv::ByteRecord) -> Result<Row, String> {
        if record.len() != self.schema.width {
            return Err(format!(
                "{} fields where fileSchema has {} columns",
                record.len(),
                self.schema.width
            ));
        }
        let field = |c: Column| -> Result<Option<&str>, String> {
            match self.schema.index[c as usize] {
                None => Ok(None),
                Some(i) => std::str::from_utf8(&record[i])
                    .map(Some)
                    .map_err(|_| format!("the {c} field is not UTF-8")),
            }
        };
        let non_empty =
            |c: Column| -> Result<Option<&str>, String> { Ok(field(c)?.filter(|s| !s.is_empty())) };

        let bucket = non_empty(Column::Bucket)?.ok_or("the Bucket field is empty")?;
        let raw_key = field(Column::Key)?.unwrap_or_default();
        let key = object_key(raw_key)?;
        let is_delete_marker = parse_bool(field(Column::IsDeleteMarker)?, Column::IsDeleteMarker)?;
        let is_latest = parse_bool(field(Column::IsLatest)?, Column::IsLatest)?;
        let kind = RowKind::from_flags(is_delete_marker, is_latest);
        let version_id = field(Column::VersionId)?.map(|v| {
            if v.is_empty() {
                "null".to_owned()
            } else {
                v.to_owned()
            }
        });
        let size = match non_empty(Column::Size)? {
            Some(s) => Some(
                s.parse::<u64>()
                    .map_err(|_| format!("Size {s:?} is not a whole number of bytes"))?,
            ),
            None => None,
        };
        let last_modified = match non_empty(Column::LastModifiedDate)? {
            Some(s) => Some(crate::time::parse_rfc3339(s).ok_or_else(|| {
                format!("LastModifiedDate {s:?} is not an ISO 8601 time such as 2024-05-01T12:00:00.000Z")
            })?),
            None => None,
        };
        let encryption_status = match non_empty(Column::EncryptionStatus)? {
            Some(s) => Some(s.parse::<SseMode>()?),
            None => None,
        };
        Ok(Row {
            kind,
            entry: Entry {
                bucket: bucket.to_owned(),
                key,
                version_id,
                size,
                etag: non_empty(Column::ETag)?.map(|s| s.trim_matches('"').to_owned()),
                last_modified,
                storage_class: non_empty(Column::StorageClass)?.map(str::to_owned),
                encryption_status,
            },
        })
    }
}

fn parse_bool(value: Option<&str>, column: Column) -> Result<Option<bool>, String> {
    match value {
        None | Some("") => Ok(None),
        Some(v) if v.eq_ignore_ascii_case("true") => Ok(Some(true)),
        Some(v) if v.eq_ignore_ascii_case("false") => Ok(Some(false)),
        Some(v) => Err(format!("{column} {v:?} is neither true nor false")),
    }
}

fn check_manifest_checksum(path: &Path, md5: &str) -> Result<(), ManifestError> {
    let checksum_path = path.with_file_name("manifest.checksum");
    let expected = match std::fs::read_to_string(&checksum_path) {
        Ok(text) => text.trim().to_ascii_lowercase(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(ManifestError::io(&checksum_path, e)),
    };
    if expected != md5 {
        return Err(ManifestError::invalid(
            path,
            format!(
                "MD5 mismatch: {} says {expected} but the file has {md5}",
                checksum_path.display()
            ),
        ));
    }
    Ok(())
}

/// Finds a data file named by `files[].key`: under any ancestor folder of the manifest
/// (where the destination prefix was copied), or by file name in the `data/` folder beside
/// the manifest's date folder (the layout S3 writes: `…/config/DATE/manifest.json` and
/// `…/config/data/FILE.csv.gz`).
fn locate_data_file(manifest: &Path, key: &str) -> Result<PathBuf, ManifestError> {
    let manifest_dir = absolute(manifest)
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default();
    let relative_key = key.trim_start_matches('/');
    let mut tried = Vec::new();
    for ancestor in manifest_dir.ancestors() {
        tried.push(ancestor.join(relative_key));
    }
    if let (Some(config_dir), Some(name)) = (manifest_dir.parent(), Path::new(key).file_name()) {
        tried.push(config_dir.join("data").join(name));
        tried.push(manifest_dir.join("data").join(name));
    }
    if let Some(found) = tried.iter().find(|p| p.is_file()) {
        return Ok(found.clone());
    }
    let list: Vec<String> = tried.iter().map(|p| p.display().to_string()).collect();
    Err(ManifestError::invalid(
        manifest,
        format!(
            "data file {key:?} not found; tried:\n  {}",
            list.join("\n  ")
        ),
    ))
}

pub(crate) fn absolute(path: &Path) -> PathBuf {
    std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf())
}
