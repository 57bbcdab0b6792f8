//! Helpers that write real input files for the ingestion tests.
#![allow(dead_code)]

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::array::{ArrayRef, RecordBatch};
use arrow::datatypes::{Field, Schema};
use loopcast_core::RegularSeries;
use loopcast_data::{DataError, IngestReport, ReadOptions, TelemetryReader};

/// Builds a record batch from named columns.
pub fn batch(columns: Vec<(&str, ArrayRef)>) -> RecordBatch {
    let fields: Vec<Field> =
        columns.iter().map(|(name, array)| Field::new(*name, array.data_type().clone(), true)).collect();
    let arrays = columns.into_iter().map(|(_, a)| a).collect();
    RecordBatch::try_new(Arc::new(Schema::new(fields)), arrays).unwrap()
}

/// Writes `batch` as Parquet.
pub fn parquet(dir: &Path, name: &str, batch: &RecordBatch) -> PathBuf {
    let path = dir.join(name);
    let mut writer =
        parquet::arrow::ArrowWriter::try_new(File::create(&path).unwrap(), batch.schema(), None).unwrap();
    writer.write(batch).unwrap();
    writer.close().unwrap();
    path
}

/// Writes `text` as a file.
pub fn text(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

/// Writes `batch` as an Arrow IPC file.
pub fn ipc_file(dir: &Path, name: &str, batch: &RecordBatch) -> PathBuf {
    let path = dir.join(name);
    let mut writer =
        arrow::ipc::writer::FileWriter::try_new(File::create(&path).unwrap(), &batch.schema()).unwrap();
    writer.write(batch).unwrap();
    writer.finish().unwrap();
    path
}

/// Writes `batch` as an Arrow IPC stream.
pub fn ipc_stream(dir: &Path, name: &str, batch: &RecordBatch) -> PathBuf {
    let path = dir.join(name);
    let mut writer =
        arrow::ipc::writer::StreamWriter::try_new(File::create(&path).unwrap(), &batch.schema()).unwrap();
    writer.write(batch).unwrap();
    writer.finish().unwrap();
    path
}

/// Reads every series of `path`.
pub async fn read_all(
    path: &Path,
    options: ReadOptions,
) -> Result<(Vec<RegularSeries>, IngestReport), DataError> {
    let mut reader = TelemetryReader::open(path, options).await?;
    let mut all = Vec::new();
    while let Some(series) = reader.next_series().await? {
        all.push(series);
    }
    Ok((all, reader.into_report()))
}

/// Reads `path` and returns the error it must produce.
pub async fn read_err(path: &Path, options: ReadOptions) -> DataError {
    match read_all(path, options).await {
        Ok((series, _)) => panic!("{} should not be readable, got {} series", path.display(), series.len()),
        Err(e) => e,
    }
}

/// Non-strict options (report and go on).
pub fn lenient() -> ReadOptions {
    ReadOptions { strict: false, ..ReadOptions::default() }
}
