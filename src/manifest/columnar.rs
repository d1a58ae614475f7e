//! What Parquet and ORC inventories share once a data file is open: their `fileSchema` read
//! into column names (a Parquet message type, an ORC `struct<…>`), and the Arrow record
//! batches their readers give turned into [`Row`]s by the rules CSV rows follow. Knows
//! nothing of either file layout (`parquet.rs` and `orc.rs` open the files and choose the
//! columns to decode) nor of manifest.json (`inventory.rs`).
//!
//! Keys are taken as they are: S3 URL-encodes keys in CSV inventories only.

use std::path::Path;

use arrow_array::cast::AsArray;
use arrow_array::types::{
    Int64Type, TimestampMicrosecondType, TimestampMillisecondType, TimestampNanosecondType,
    TimestampSecondType,
};
use arrow_array::{
    Array, ArrayRef, BooleanArray, Int64Array, LargeStringArray, PrimitiveArray, RecordBatch,
    StringArray, StringViewArray,
};
use arrow_schema::{ArrowError, DataType, Schema, TimeUnit};

use super::{Column, Entry, ManifestError, Row, RowKind};
use crate::sse::SseMode;

/// Rows per record batch: large enough that per-batch work is noise, small enough that a
/// batch of every column reseal reads stays within a few MiB.
pub(super) const BATCH_ROWS: usize = 8192;

/// The column names of a Parquet message type as S3 writes it in `fileSchema`:
/// `message s3.inventory { required binary bucket (UTF8); … optional int64
/// last_modified_date (TIMESTAMP_MILLIS); }` (AWS's example; real reports also spell the
/// annotations `(STRING)` and `(TIMESTAMP(MILLIS,true))`).
pub(super) fn parquet_column_names(file_schema: &str) -> Result<Vec<String>, String> {
    let bad = || {
        format!(
            "fileSchema {file_schema:?} is not a Parquet message type \
             (message NAME {{ REPETITION TYPE NAME; … }})"
        )
    };
    let body = file_schema.trim().strip_prefix("message").ok_or_else(bad)?;
    let (_, fields) = body.split_once('{').ok_or_else(bad)?;
    let fields = fields.trim_end().strip_suffix('}').ok_or_else(bad)?;
    fields
        .split(';')
        .map(str::trim)
        .filter(|field| !field.is_empty())
        .map(|field| {
            let mut words = field.split_whitespace();
            match (words.next(), words.next(), words.next()) {
                (Some(_repetition), Some(_type), Some(name)) => {
                    Ok(name.split('(').next().unwrap_or_default().to_owned())
                }
                _ => Err(format!(
                    "fileSchema field {field:?} is not REPETITION TYPE NAME, as in a Parquet \
                     message type"
                )),
            }
        })
        .collect()
}

/// The column names of an ORC struct type as S3 writes it in `fileSchema`:
/// `struct<bucket:string,key:string,…,last_modified_date:timestamp,…>`.
pub(super) fn orc_column_names(file_schema: &str) -> Result<Vec<String>, String> {
    let fields = file_schema
        .trim()
        .strip_prefix("struct<")
        .and_then(|s| s.strip_suffix('>'))
        .ok_or_else(|| {
            format!("fileSchema {file_schema:?} is not an ORC struct type (struct<NAME:TYPE,…>)")
        })?;
    let mut parts = Vec::new();
    let (mut depth, mut start) = (0i32, 0);
    for (i, c) in fields.char_indices() {
        match c {
            '<' | '(' => depth += 1,
            '>' | ')' => depth -= 1,
            ',' if depth == 0 => {
                parts.push(&fields[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&fields[start..]);
    if parts == [""] {
        return Ok(Vec::new());
    }
    parts
        .into_iter()
        .map(|field| match field.split_once(':') {
            Some((name, _type)) => Ok(name.trim().to_owned()),
            None => Err(format!(
                "fileSchema field {field:?} is not NAME:TYPE, as in an ORC struct type"
            )),
        })
        .collect()
}

/// What a column holds, and so which Arrow types can carry it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Text,
    Flag,
    Count,
    Time,
}

impl Kind {
    fn of(column: Column) -> Kind {
        match column {
            Column::Bucket
            | Column::Key
            | Column::VersionId
            | Column::ETag
            | Column::StorageClass
            | Column::EncryptionStatus => Kind::Text,
            Column::IsLatest | Column::IsDeleteMarker => Kind::Flag,
            Column::Size => Kind::Count,
            Column::LastModifiedDate => Kind::Time,
        }
    }

    fn accepts(self, data_type: &DataType) -> bool {
        match self {
            Kind::Text => matches!(
                data_type,
                DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View
            ),
            Kind::Flag => *data_type == DataType::Boolean,
            Kind::Count => *data_type == DataType::Int64,
            Kind::Time => matches!(data_type, DataType::Timestamp(..)),
        }
    }

    /// The type S3 writes, in the words of both formats' schemas.
    fn expected(self) -> &'static str {
        match self {
            Kind::Text => "a string (Parquet binary UTF8, ORC string)",
            Kind::Flag => "a boolean",
            Kind::Count => "a 64-bit integer (Parquet int64, ORC bigint)",
            Kind::Time => "a timestamp",
        }
    }
}

/// Where each column reseal reads is among a data file's top-level columns, found by name
/// and checked against the type S3 writes.
#[derive(Debug, Clone)]
pub(super) struct Layout {
    index: [Option<usize>; Column::ALL.len()],
}

impl Layout {
    /// Finds every one of `columns` (those manifest.json's `fileSchema` lists) in `schema`.
    pub(super) fn resolve(schema: &Schema, columns: &[Column]) -> Result<Layout, String> {
        let mut index = [None; Column::ALL.len()];
        for &column in columns {
            let name = column.columnar_name();
            let (i, field) = schema.column_with_name(name).ok_or_else(|| {
                format!("the file has no {name} column, which manifest.json's fileSchema lists")
            })?;
            let kind = Kind::of(column);
            if !kind.accepts(field.data_type()) {
                return Err(format!(
                    "column {name} is {}, where S3 Inventory writes {}",
                    field.data_type(),
                    kind.expected()
                ));
            }
            index[column as usize] = Some(i);
        }
        Ok(Layout { index })
    }

    /// The positions of the columns found, in the file's order.
    pub(super) fn positions(&self) -> Vec<usize> {
        let mut positions: Vec<usize> = self.index.iter().flatten().copied().collect();
        positions.sort_unstable();
        positions
    }
}

/// A data file's parts (Parquet row groups, ORC stripes) and how many rows each has, to say
/// where a row is. Parts and rows are counted from 1, as lines are.
pub(super) struct Parts {
    unit: &'static str,
    /// The number of rows up to the end of each part.
    ends: Vec<u64>,
}

impl Parts {
    pub(super) fn new(unit: &'static str, rows: impl IntoIterator<Item = u64>) -> Parts {
        let ends = rows
            .into_iter()
            .scan(0u64, |total, rows| {
                *total += rows;
                Some(*total)
            })
            .collect();
        Parts { unit, ends }
    }

    /// The part that holds the row at `offset` (from 0) in the file.
    fn part(&self, offset: u64) -> String {
        let part = self
            .ends
            .partition_point(|&end| end <= offset)
            .min(self.ends.len().saturating_sub(1));
        format!("{} {}", self.unit, part + 1)
    }

    fn row(&self, offset: u64) -> String {
        format!("{}, row {}", self.part(offset), offset + 1)
    }
}

/// Turns the record batches of one data file into rows and hands each to `sink`. `schema` is
/// the batches' schema; `columns` are those manifest.json's `fileSchema` lists, each of which
/// the file must have.
pub(super) fn read_batches(
    path: &Path,
    parts: &Parts,
    columns: &[Column],
    schema: &Schema,
    batches: impl Iterator<Item = Result<RecordBatch, ArrowError>>,
    sink: &mut dyn FnMut(Row) -> Result<(), ManifestError>,
) -> Result<(), ManifestError> {
    let layout = Layout::resolve(schema, columns).map_err(|m| ManifestError::invalid(path, m))?;
    let cannot_decode = |offset: u64, e: &dyn std::fmt::Display| {
        ManifestError::invalid(path, format!("{}: cannot decode: {e}", parts.part(offset)))
    };
    let mut batches = batches;
    let mut offset = 0u64;
    loop {
        let next = unpanicked(|| batches.next()).map_err(|m| cannot_decode(offset, &m))?;
        let Some(batch) = next else { break };
        let batch = batch.map_err(|e| cannot_decode(offset, &e))?;
        let view = BatchView::new(&batch, &layout)
            .map_err(|m| ManifestError::invalid(path, format!("{}: {m}", parts.part(offset))))?;
        for i in 0..batch.num_rows() {
            let row = view.row(i).map_err(|m| {
                ManifestError::invalid(path, format!("{}: {m}", parts.row(offset + i as u64)))
            })?;
            sink(row)?;
        }
        offset += batch.num_rows() as u64;
    }
    Ok(())
}

/// Runs a step of a file reader, with a panic turned into an error. `orc-rust` panics on some
/// damaged streams (a compressed chunk said to be longer than its stream), and a panic would
/// end the process with the job left Preparing, where a damaged file must leave it Failed.
pub(super) fn unpanicked<T>(step: impl FnOnce() -> T) -> Result<T, String> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(step)).map_err(|panic| {
        let message = panic
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| panic.downcast_ref::<String>().cloned())
            .unwrap_or_default();
        format!("the reader gave up on damaged data ({message})")
    })
}

/// A string column, in whichever of Arrow's string layouts the reader chose.
#[derive(Clone, Copy)]
enum Text<'a> {
    Utf8(&'a StringArray),
    LargeUtf8(&'a LargeStringArray),
    View(&'a StringViewArray),
}

impl<'a> Text<'a> {
    fn new(array: &'a ArrayRef) -> Option<Text<'a>> {
        match array.data_type() {
            DataType::Utf8 => array.as_string_opt::<i32>().map(Text::Utf8),
            DataType::LargeUtf8 => array.as_string_opt::<i64>().map(Text::LargeUtf8),
            DataType::Utf8View => array.as_string_view_opt().map(Text::View),
            _ => None,
        }
    }

    /// The value of row `i`, `None` when it is null.
    fn get(self, i: usize) -> Option<&'a str> {
        match self {
            Text::Utf8(a) => a.is_valid(i).then(|| a.value(i)),
            Text::LargeUtf8(a) => a.is_valid(i).then(|| a.value(i)),
            Text::View(a) => a.is_valid(i).then(|| a.value(i)),
        }
    }

    /// The value of row `i`, `None` when it is null or empty.
    fn non_empty(self, i: usize) -> Option<&'a str> {
        self.get(i).filter(|s| !s.is_empty())
    }
}

/// A timestamp column in any of Arrow's units, read as milliseconds since the epoch.
#[derive(Clone, Copy)]
enum Time<'a> {
    Second(&'a PrimitiveArray<TimestampSecondType>),
    Millisecond(&'a PrimitiveArray<TimestampMillisecondType>),
    Microsecond(&'a PrimitiveArray<TimestampMicrosecondType>),
    Nanosecond(&'a PrimitiveArray<TimestampNanosecondType>),
}

impl<'a> Time<'a> {
    fn new(array: &'a ArrayRef) -> Option<Time<'a>> {
        match array.data_type() {
            DataType::Timestamp(TimeUnit::Second, _) => array.as_primitive_opt().map(Time::Second),
            DataType::Timestamp(TimeUnit::Millisecond, _) => {
                array.as_primitive_opt().map(Time::Millisecond)
            }
            DataType::Timestamp(TimeUnit::Microsecond, _) => {
                array.as_primitive_opt().map(Time::Microsecond)
            }
            DataType::Timestamp(TimeUnit::Nanosecond, _) => {
                array.as_primitive_opt().map(Time::Nanosecond)
            }
            _ => None,
        }
    }

    fn millis(self, i: usize) -> Option<i64> {
        match self {
            Time::Second(a) => a.is_valid(i).then(|| a.value(i).saturating_mul(1000)),
            Time::Millisecond(a) => a.is_valid(i).then(|| a.value(i)),
            Time::Microsecond(a) => a.is_valid(i).then(|| a.value(i).div_euclid(1000)),
            Time::Nanosecond(a) => a.is_valid(i).then(|| a.value(i).div_euclid(1_000_000)),
        }
    }
}

fn flag(array: &BooleanArray, i: usize) -> Option<bool> {
    array.is_valid(i).then(|| array.value(i))
}

/// One record batch's arrays, typed, for the columns reseal reads.
struct BatchView<'a> {
    bucket: Text<'a>,
    key: Text<'a>,
    version_id: Option<Text<'a>>,
    is_latest: Option<&'a BooleanArray>,
    is_delete_marker: Option<&'a BooleanArray>,
    size: Option<&'a Int64Array>,
    last_modified: Option<Time<'a>>,
    etag: Option<Text<'a>>,
    storage_class: Option<Text<'a>>,
    encryption_status: Option<Text<'a>>,
}

impl<'a> BatchView<'a> {
    fn new(batch: &'a RecordBatch, layout: &Layout) -> Result<BatchView<'a>, String> {
        let array = |c: Column| -> Option<&'a ArrayRef> {
            layout.index[c as usize].map(|i| batch.column(i))
        };
        let mismatch = |c: Column| {
            format!(
                "column {} changed type within the file; S3 Inventory writes {}",
                c.columnar_name(),
                Kind::of(c).expected()
            )
        };
        let text = |c: Column| -> Result<Option<Text<'a>>, String> {
            array(c)
                .map(|a| Text::new(a).ok_or_else(|| mismatch(c)))
                .transpose()
        };
        let flags = |c: Column| -> Result<Option<&'a BooleanArray>, String> {
            array(c)
                .map(|a| a.as_boolean_opt().ok_or_else(|| mismatch(c)))
                .transpose()
        };
        let required = |c: Column| text(c)?.ok_or_else(|| mismatch(c));
        Ok(BatchView {
            bucket: required(Column::Bucket)?,
            key: required(Column::Key)?,
            version_id: text(Column::VersionId)?,
            is_latest: flags(Column::IsLatest)?,
            is_delete_marker: flags(Column::IsDeleteMarker)?,
            size: array(Column::Size)
                .map(|a| {
                    a.as_primitive_opt::<Int64Type>()
                        .ok_or_else(|| mismatch(Column::Size))
                })
                .transpose()?,
            last_modified: array(Column::LastModifiedDate)
                .map(|a| Time::new(a).ok_or_else(|| mismatch(Column::LastModifiedDate)))
                .transpose()?,
            etag: text(Column::ETag)?,
            storage_class: text(Column::StorageClass)?,
            encryption_status: text(Column::EncryptionStatus)?,
        })
    }

    /// Row `i`, by the rules of CSV rows: a row whose version is null is the null version,
    /// ETags lose their quotes, an empty value is no value.
    fn row(&self, i: usize) -> Result<Row, String> {
        let bucket = self.bucket.non_empty(i).ok_or("the bucket is empty")?;
        let key = self.key.non_empty(i).ok_or("the key is empty")?;
        super::check_key_length(key)?;
        let kind = RowKind::from_flags(
            self.is_delete_marker.and_then(|a| flag(a, i)),
            self.is_latest.and_then(|a| flag(a, i)),
        );
        let size = match self.size.and_then(|a| a.is_valid(i).then(|| a.value(i))) {
            Some(s) => Some(u64::try_from(s).map_err(|_| format!("size {s} is negative"))?),
            None => None,
        };
        let encryption_status = match self.encryption_status.and_then(|t| t.non_empty(i)) {
            Some(s) => Some(s.parse::<SseMode>()?),
            None => None,
        };
        Ok(Row {
            kind,
            entry: Entry {
                bucket: bucket.to_owned(),
                key: key.to_owned(),
                version_id: self
                    .version_id
                    .map(|t| t.non_empty(i).unwrap_or("null").to_owned()),
                size,
                etag: self
                    .etag
                    .and_then(|t| t.non_empty(i))
                    .map(|s| s.trim_matches('"').to_owned()),
                last_modified: self.last_modified.and_then(|t| t.millis(i)),
                storage_class: self
                    .storage_class
                    .and_then(|t| t.non_empty(i))
                    .map(str::to_owned),
                encryption_status,
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parquet_message_types_as_s3_writes_them() {
        let aws_example = "message s3.inventory { required binary bucket (UTF8); required binary \
            key (UTF8); optional binary version_id (UTF8); optional boolean is_latest; optional \
            int64 last_modified_date (TIMESTAMP_MILLIS); }";
        assert_eq!(
            parquet_column_names(aws_example).unwrap(),
            [
                "bucket",
                "key",
                "version_id",
                "is_latest",
                "last_modified_date"
            ]
        );
        let later = "message s3.inventory {  required binary bucket (STRING);  required binary \
            key (STRING);  optional int64 last_modified_date (TIMESTAMP(MILLIS,true));}";
        assert_eq!(
            parquet_column_names(later).unwrap(),
            ["bucket", "key", "last_modified_date"]
        );
        assert!(parquet_column_names("bucket, key").is_err());
        assert!(parquet_column_names("message s3.inventory { bucket; }").is_err());
    }

    #[test]
    fn a_reader_that_panics_is_a_damaged_file_named_with_its_part() {
        let schema = Schema::new(vec![
            arrow_schema::Field::new("bucket", DataType::Utf8, false),
            arrow_schema::Field::new("key", DataType::Utf8, false),
        ]);
        let batch = RecordBatch::try_new(
            std::sync::Arc::new(schema.clone()),
            vec![
                std::sync::Arc::new(StringArray::from(vec!["bkt"; 3])),
                std::sync::Arc::new(StringArray::from(vec!["a", "b", "c"])),
            ],
        )
        .unwrap();
        let mut calls = 0;
        let batches = std::iter::from_fn(|| {
            calls += 1;
            if calls == 2 {
                panic!("split_to out of bounds");
            }
            Some(Ok(batch.clone()))
        });
        let parts = Parts::new("stripe", [3, 3]);
        let mut rows = 0;
        let err = read_batches(
            Path::new("x.orc"),
            &parts,
            &[Column::Bucket, Column::Key],
            &schema,
            batches,
            &mut |_| {
                rows += 1;
                Ok(())
            },
        )
        .unwrap_err()
        .to_string();
        assert_eq!(rows, 3);
        assert!(err.starts_with("x.orc: stripe 2: cannot decode:"), "{err}");
        assert!(err.contains("split_to out of bounds"), "{err}");
    }

    #[test]
    fn orc_struct_types_as_s3_writes_them() {
        let aws_example = "struct<bucket:string,key:string,version_id:string,is_latest:boolean,\
            size:bigint,last_modified_date:timestamp,e_tag:string>";
        assert_eq!(
            orc_column_names(aws_example).unwrap(),
            [
                "bucket",
                "key",
                "version_id",
                "is_latest",
                "size",
                "last_modified_date",
                "e_tag"
            ]
        );
        assert_eq!(
            orc_column_names("struct<a:decimal(10,2),b:map<string,int>,key:string>").unwrap(),
            ["a", "b", "key"]
        );
        assert!(orc_column_names("struct<>").unwrap().is_empty());
        assert!(orc_column_names("Bucket, Key").is_err());
        assert!(orc_column_names("struct<bucket>").is_err());
    }
}
