//! The data files of ORC inventories (`fileFormat` `ORC`), read through `orc-rust`'s Arrow
//! reader: one stripe at a time, and only the columns reseal reads, so memory follows the
//! largest stripe's streams of those columns, not the file. Turning batches into rows is
//! `columnar`'s; checking the file's MD5 is `inventory`'s.

use std::fs::File;
use std::path::Path;

use arrow_array::RecordBatchReader;
use orc_rust::ArrowReaderBuilder;
use orc_rust::projection::ProjectionMask;

use super::columnar::{self, Layout, Parts};
use super::{Column, ManifestError, Row};

/// Reads every row of one ORC data file, in order, into `sink`. `columns` are those
/// manifest.json's `fileSchema` lists.
pub(super) fn read_rows(
    path: &Path,
    columns: &[Column],
    sink: &mut dyn FnMut(Row) -> Result<(), ManifestError>,
) -> Result<(), ManifestError> {
    let invalid = |message: String| ManifestError::invalid(path, message);
    let file = File::open(path).map_err(|e| ManifestError::io(path, e))?;
    let builder = columnar::unpanicked(|| ArrowReaderBuilder::try_new(file))
        .and_then(|built| built.map_err(|e| e.to_string()))
        .map_err(|e| invalid(format!("not a readable ORC file: {e}")))?;
    // Checks the file's columns and their types before any stripe is decoded.
    Layout::resolve(&builder.schema(), columns).map_err(invalid)?;
    let metadata = builder.file_metadata();
    let parts = Parts::new(
        "stripe",
        metadata
            .stripe_metadatas()
            .iter()
            .map(|s| s.number_of_rows()),
    );
    let names: Vec<&str> = columns.iter().map(|c| c.columnar_name()).collect();
    let projection = ProjectionMask::named_roots(metadata.root_data_type(), &names);
    let reader = builder
        .with_projection(projection)
        .with_batch_size(columnar::BATCH_ROWS)
        .build();
    let schema = reader.schema();
    columnar::read_batches(path, &parts, columns, &schema, reader, sink)
}
