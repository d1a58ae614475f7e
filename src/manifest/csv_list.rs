//! Plain CSV manifests, as S3 Batch Operations takes them: `bucket,key[,versionId]`, no
//! header, keys URL-encoded (`%20` or `+` for a space; `/` may be literal). Either every row
//! has a version id or none does. The result files of a completion report are read too.

use std::fs::File;
use std::io::BufReader;
use std::path::{Path, PathBuf};

use super::inventory::absolute;
use super::{
    Column, Entry, LineCounter, ManifestError, ManifestFormat, ManifestSummary, Md5Reader, Row,
    RowKind, next_record, object_key,
};

#[derive(Debug)]
pub struct CsvList {
    pub summary: ManifestSummary,
    path: PathBuf,
}

impl CsvList {
    pub fn open(path: &Path) -> Result<CsvList, ManifestError> {
        let md5 = super::md5_file(path)?;
        Ok(CsvList {
            summary: ManifestSummary {
                format: ManifestFormat::Csv,
                location: absolute(path).display().to_string(),
                md5,
                columns: vec![Column::Bucket, Column::Key],
                source_bucket: None,
                destination_bucket: None,
                created: None,
                data_files: Vec::new(),
            },
            path: path.to_path_buf(),
        })
    }

    pub fn read_rows(
        &self,
        sink: &mut dyn FnMut(Row) -> Result<(), ManifestError>,
    ) -> Result<(), ManifestError> {
        let path = &self.path;
        let file = File::open(path).map_err(|e| ManifestError::io(path, e))?;
        let mut reader = csv::ReaderBuilder::new()
            .has_headers(false)
            .flexible(true)
            .buffer_capacity(256 * 1024)
            .from_reader(LineCounter::new(Md5Reader::new(BufReader::new(file))));
        let mut record = csv::ByteRecord::new();
        // (line, versioned) of the first row, to hold every later row to the same choice.
        let mut first: Option<(u64, bool)> = None;
        while let Some(line) = next_record(&mut reader, &mut record, path, "cannot read the file")?
        {
            if record.len() == 1 && record[0].trim_ascii().is_empty() {
                continue;
            }
            let entry = parse_record(&record, first.is_none())
                .map_err(|m| ManifestError::row(path, line, m))?;
            let versioned = entry.version_id.is_some();
            match first {
                None => first = Some((line, versioned)),
                Some((first_line, first_versioned)) if first_versioned != versioned => {
                    return Err(ManifestError::row(
                        path,
                        line,
                        format!(
                            "this row {} a version id but line {first_line} {}: every row must \
                             have a version id or none may",
                            if versioned { "has" } else { "has no" },
                            if first_versioned {
                                "has one"
                            } else {
                                "has none"
                            },
                        ),
                    ));
                }
                Some(_) => {}
            }
            sink(Row {
                kind: RowKind::Current,
                entry,
            })?;
        }
        let md5 = reader
            .into_inner()
            .into_inner()
            .finish()
            .map_err(|e| ManifestError::io(path, e))?;
        if md5 != self.summary.md5 {
            return Err(ManifestError::invalid(
                path,
                "the file changed while it was being read",
            ));
        }
        Ok(())
    }
}

fn parse_record(record: &csv::ByteRecord, is_first: bool) -> Result<Entry, String> {
    let text = |i: usize| -> Result<&str, String> {
        std::str::from_utf8(&record[i]).map_err(|_| format!("field {} is not UTF-8", i + 1))
    };
    // A row of a completion report (Bucket,Key,VersionId,TaskStatus,…) names its object
    // the same way, so a report of failed tasks can be run again as it is.
    let is_report_row = record.len() == 7 && matches!(&record[3], b"succeeded" | b"failed");
    if !is_report_row && (record.len() < 2 || record.len() > 3) {
        return Err(format!(
            "{} fields: a row is bucket,key or bucket,key,versionId",
            record.len()
        ));
    }
    let bucket = text(0)?.trim();
    let raw_key = text(1)?;
    if is_first && looks_like_header(bucket, raw_key) {
        return Err(format!(
            "the first line looks like a header ({bucket},{raw_key}); plain CSV manifests have \
             no header row: remove it"
        ));
    }
    if bucket.is_empty() {
        return Err("the bucket field is empty".into());
    }
    let key = object_key(raw_key)?;
    let version_id = match record.len() {
        3 | 7 => Some(text(2)?.trim())
            .filter(|v| !v.is_empty())
            .map(str::to_owned),
        _ => None,
    };
    Ok(Entry {
        bucket: bucket.to_owned(),
        key,
        version_id,
        size: None,
        etag: None,
        last_modified: None,
        storage_class: None,
        encryption_status: None,
    })
}

fn looks_like_header(bucket: &str, key: &str) -> bool {
    let norm = |s: &str| s.trim().to_ascii_lowercase().replace([' ', '_', '-'], "");
    matches!(
        norm(bucket).as_str(),
        "bucket" | "bucketname" | "sourcebucket"
    ) && matches!(norm(key).as_str(), "key" | "objectkey" | "name")
}
