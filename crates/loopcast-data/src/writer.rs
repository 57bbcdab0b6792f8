//! Atomic Parquet output: rows go to a temporary file beside the target, which is renamed
//! over it only once complete, so readers never see a half-written file.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::array::{
    ArrayRef, Float64Builder, RecordBatch, StringArray, StringBuilder, TimestampMicrosecondBuilder,
};
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
/// value` with `value` null where a cell was not observed; with `scenario` after
/// `series_id` for files of counterfactual twins.
pub fn long_schema(with_scenario: bool) -> SchemaRef {
    let mut fields = vec![Field::new("series_id", DataType::Utf8, false)];
    if with_scenario {
        fields.push(Field::new("scenario", DataType::Utf8, false));
    }
    fields.extend([
        Field::new("timestamp", DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())), false),
        Field::new("channel", DataType::Utf8, false),
        Field::new("role", DataType::Utf8, false),
        Field::new("value", DataType::Float64, true),
    ]);
    Arc::new(Schema::new(fields))
}

/// Streams regular series into a long-format Parquet file, one record batch per series,
/// so memory holds one series at a time; the file appears at its path only on
/// [`Self::finish`].
#[derive(Debug)]
pub struct LongSeriesWriter {
    writer: AtomicParquetWriter,
    schema: SchemaRef,
    target: PathBuf,
    with_scenario: bool,
}

impl LongSeriesWriter {
    /// Starts a file at `path`; with `with_scenario`, every series is written with a
    /// scenario label.
    pub fn create(path: impl AsRef<Path>, with_scenario: bool) -> Result<Self, DataError> {
        let target = path.as_ref().to_path_buf();
        let schema = long_schema(with_scenario);
        let writer = AtomicParquetWriter::create(&target, schema.clone())?;
        Ok(Self { writer, schema, target, with_scenario })
    }

    /// Appends every cell of `series`; `scenario` is required exactly when the file was
    /// created with scenarios.
    pub fn write_series(&mut self, series: &RegularSeries, scenario: Option<&str>) -> Result<(), DataError> {
        let fail = |message: String| DataError::Write { path: self.target.clone(), message };
        if scenario.is_some() != self.with_scenario {
            return Err(fail(format!(
                "series `{}`: {} scenario label for a file {} a scenario column",
                series.id,
                if scenario.is_some() { "a" } else { "no" },
                if self.with_scenario { "with" } else { "without" }
            )));
        }
        let rows = series.len() * series.channels.len();
        let mut ids = StringBuilder::with_capacity(rows, rows * series.id.len());
        let mut times = TimestampMicrosecondBuilder::with_capacity(rows).with_timezone("UTC");
        let mut channels = StringBuilder::new();
        let mut roles = StringBuilder::new();
        let mut values = Float64Builder::with_capacity(rows);
        for column in &series.channels {
            for (i, (value, observed)) in column.values.iter().zip(&column.observed).enumerate() {
                ids.append_value(&series.id);
                times.append_value(series.timestamp(i));
                channels.append_value(&column.spec.name);
                roles.append_value(column.spec.role.as_str());
                values.append_option(observed.then_some(*value));
            }
        }
        let mut arrays: Vec<ArrayRef> = vec![Arc::new(ids.finish())];
        if let Some(scenario) = scenario {
            arrays.push(Arc::new(StringArray::from(vec![scenario; rows])));
        }
        arrays.extend([
            Arc::new(times.finish()) as ArrayRef,
            Arc::new(channels.finish()),
            Arc::new(roles.finish()),
            Arc::new(values.finish()),
        ]);
        let batch = RecordBatch::try_new(self.schema.clone(), arrays).map_err(|e| fail(e.to_string()))?;
        self.writer.write(&batch)
    }

    /// Completes the file and moves it into place.
    pub fn finish(self) -> Result<PathBuf, DataError> {
        self.writer.finish()
    }
}

/// Writes regular series as long-format Parquet at `path`, atomically. Unobserved cells
/// are written as nulls, so reading the file back gives the same grid.
pub fn write_long_parquet<'a>(
    path: impl AsRef<Path>,
    series: impl IntoIterator<Item = &'a RegularSeries>,
) -> Result<PathBuf, DataError> {
    let mut writer = LongSeriesWriter::create(path, false)?;
    for s in series {
        writer.write_series(s, None)?;
    }
    writer.finish()
}
