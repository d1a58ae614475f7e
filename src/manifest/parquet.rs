//! The data files of Parquet inventories (`fileFormat` `Parquet`), read through the
//! `parquet` crate's Arrow reader: one row group at a time, and only the columns reseal reads,
//! so memory follows the largest row group's chunks of those columns, not the file. Turning
//! batches into rows is `columnar`'s; checking the file's MD5 is `inventory`'s.

use std::fs::File;
use std::path::Path;

use ::parquet::arrow::ProjectionMask;
use ::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use arrow_array::RecordBatchReader;

use super::columnar::{self, Layout, Parts};
use super::{Column, ManifestError, Row};

/// Reads every row of one Parquet data file, in order, into `sink`. `columns` are those
/// manifest.json's `fileSchema` lists.
pub(super) fn read_rows(
    path: &Path,
    columns: &[Column],
    sink: &mut dyn FnMut(Row) -> Result<(), ManifestError>,
) -> Result<(), ManifestError> {
    let invalid = |message: String| ManifestError::invalid(path, message);
    let file = File::open(path).map_err(|e| ManifestError::io(path, e))?;
    let builder = columnar::unpanicked(|| ParquetRecordBatchReaderBuilder::try_new(file))
        .and_then(|built| built.map_err(|e| e.to_string()))
        .map_err(|e| invalid(format!("not a readable Parquet file: {e}")))?;
    let layout = Layout::resolve(builder.schema(), columns).map_err(invalid)?;
    let parts = Parts::new(
        "row group",
        builder
            .metadata()
            .row_groups()
            .iter()
            .map(|g| u64::try_from(g.num_rows()).unwrap_or(0)),
    );
    let projection = ProjectionMask::roots(builder.parquet_schema(), layout.positions());
    let reader = builder
        .with_projection(projection)
        .with_batch_size(columnar::BATCH_ROWS)
        .build()
        .map_err(|e| invalid(format!("not a readable Parquet file: {e}")))?;
    let schema = reader.schema();
    columnar::read_batches(path, &parts, columns, &schema, reader, sink)
}
