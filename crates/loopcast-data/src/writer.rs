//! Atomic Parquet output: rows go to a temporary file beside the target, which is renamed
//! over it only once complete, so readers never see a half-written file.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::array::{ArrayRef, Float64Builder, RecordBatch, StringBuilder, TimestampMicrosecondBuilder};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::WriterProperties;

use loopcast_core::RegularSeries;

use crate::DataError;

/// A Parquet file being written under a temporary name; [`Self::finish`] moves it into
/// place. Dropped without `finish`, it removes the temporary file and leaves any earlier
/// file at the target untouched.
#[derive(Debug)]
pub struct AtomicParquetWriter {
    target: PathBuf,
    temporary: PathBuf,
    writer: Option<ArrowWriter<File>>,
}

impl AtomicParquetWriter {
    /// Starts writing `schema` rows to `target` (zstd-compressed).
    pub fn create(target: impl AsRef<Path>, schema: SchemaRef) -> Result<Self, DataError> {
        let target = target.as_ref().to_path_buf();
        let name = target.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        let temporary = target.with_file_name(format!(".{name}.{}.tmp", std::process::id()));
        let fail = |message: String| DataError::Write { path: target.clone(), message };
        let file = File::create(&temporary).map_err(|e| fail(e.to_string()))?;
        let properties =
            WriterProperties::builder().set_compression(Compression::ZSTD(ZstdLevel::default())).build();
        let writer = ArrowWriter::try_new(file, schema, Some(properties)).map_err(|e| fail(e.to_string()))?;
        Ok(Self { target, temporary, writer: Some(writer) })
    }

    /// Appends rows.
    pub fn write(&mut self, batch: &RecordBatch) -> Result<(), DataError> {
        let writer = self.writer.as_mut().expect("writer is present until finish");
        writer
            .write(batch)
            .map_err(|e| DataError::Write { path: self.target.clone(), message: e.to_string() })
    }

    /// Flushes, syncs and renames the file into place.
    pub fn finish(mut self) -> Result<PathBuf, DataError> {
        let fail = |message: String| DataError::Write { path: self.target.clone(), message };
        let writer = self.writer.take().expect("writer is present until finish");
        let file = writer.into_inner().map_err(|e| fail(e.to_string()))?;
        file.sync_all().map_err(|e| fail(e.to_string()))?;
        std::fs::rename(&self.temporary, &self.target).map_err(|e| fail(e.to_string()))?;
        if let Some(dir) = self.target.parent().filter(|d| !d.as_os_str().is_empty()) {
            // Make the rename itself durable; not every platform can open a directory.
            if let Ok(dir) = File::open(dir) {
                let _ = dir.sync_all();
            }
        }
        Ok(self.target.clone())
    }
}

impl Drop for AtomicParquetWriter {
    fn drop(&mut self) {
        if self.writer.take().is_some() {
            let _ = std::fs::remove_file(&self.temporary);
        }
    }
}

/// The long-format schema of regularised series: `series_id, timestamp, channel, role,
/// value` with `value` null where a cell was not observed.
pub fn long_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("series_id", DataType::Utf8, false),
        Field::new("timestamp", DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())), false),
        Field::new("channel", DataType::Utf8, false),
        Field::new("role", DataType::Utf8, false),
        Field::new("value", DataType::Float64, true),
    ]))
}

/// Writes regular series as long-format Parquet at `path`, atomically. Unobserved cells
/// are written as nulls, so reading the file back gives the same grid.
pub fn write_long_parquet<'a>(
    path: impl AsRef<Path>,
    series: impl IntoIterator<Item = &'a RegularSeries>,
) -> Result<PathBuf, DataError> {
    let schema = long_schema();
    let target = path.as_ref().to_path_buf();
    let mut writer = AtomicParquetWriter::create(&target, schema.clone())?;
    for s in series {
        let rows = s.len() * s.channels.len();
        let mut ids = StringBuilder::with_capacity(rows, rows * s.id.len());
        let mut times = TimestampMicrosecondBuilder::with_capacity(rows).with_timezone("UTC");
        let mut channels = StringBuilder::new();
        let mut roles = StringBuilder::new();
        let mut values = Float64Builder::with_capacity(rows);
        for column in &s.channels {
            for (i, (value, observed)) in column.values.iter().zip(&column.observed).enumerate() {
                ids.append_value(&s.id);
                times.append_value(s.timestamp(i));
                channels.append_value(&column.spec.name);
                roles.append_value(column.spec.role.as_str());
                values.append_option(observed.then_some(*value));
            }
        }
        let arrays: Vec<ArrayRef> = vec![
            Arc::new(ids.finish()),
            Arc::new(times.finish()),
            Arc::new(channels.finish()),
            Arc::new(roles.finish()),
            Arc::new(values.finish()),
        ];
        let batch = RecordBatch::try_new(schema.clone(), arrays)
            .map_err(|e| DataError::Write { path: target.clone(), message: e.to_string() })?;
        writer.write(&batch)?;
    }
    writer.finish()
}
