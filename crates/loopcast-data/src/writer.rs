//! Atomic Parquet output: rows go to a temporary file beside the target, which is renamed
//! over it only once complete, so readers never see a half-written file.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::array::{
    ArrayRef, Float64Builder, RecordBatch, StringArray, StringBuilder, TimestampMicrosecondBuilder,
    UInt32Builder,
};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use parquet::arrow::ArrowWriter;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::WriterProperties;

use loopcast_core::{RegularSeries, Timestamp};

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

/// The schema of forecast output (DESIGN.md §3): `series_id, timestamp, channel,
/// scenario`, one `q<level>` column per quantile level (`q0.05`, `q0.5`, …), `mean` and
/// `loops_used` (loops of the shared block at that step).
pub fn forecast_schema(levels: &[f64]) -> SchemaRef {
    let mut fields = vec![
        Field::new("series_id", DataType::Utf8, false),
        Field::new("timestamp", DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())), false),
        Field::new("channel", DataType::Utf8, false),
        Field::new("scenario", DataType::Utf8, false),
    ];
    fields.extend(levels.iter().map(|level| Field::new(format!("q{level}"), DataType::Float64, false)));
    fields.push(Field::new("mean", DataType::Float64, false));
    fields.push(Field::new("loops_used", DataType::UInt32, false));
    Arc::new(Schema::new(fields))
}

/// The forecast of one target channel of one series under one scenario, as rows.
#[derive(Debug, Clone, Copy)]
pub struct ForecastRows<'a> {
    /// Series identifier.
    pub series_id: &'a str,
    /// Target channel.
    pub channel: &'a str,
    /// Scenario label (`forecast` for a plain forecast).
    pub scenario: &'a str,
    /// Timestamps of the forecast steps.
    pub timestamps: &'a [Timestamp],
    /// One trajectory per quantile level of the file, each as long as `timestamps`.
    pub quantiles: &'a [Vec<f64>],
    /// Mean per step.
    pub mean: &'a [f64],
    /// Loops used per step.
    pub loops: &'a [u32],
}

/// Streams forecasts into a Parquet file of [`forecast_schema`], atomically.
#[derive(Debug)]
pub struct ForecastWriter {
    writer: AtomicParquetWriter,
    schema: SchemaRef,
    rows: u64,
}

impl ForecastWriter {
    /// Starts a file at `path` with one quantile column per level.
    pub fn create(path: impl AsRef<Path>, levels: &[f64]) -> Result<Self, DataError> {
        let schema = forecast_schema(levels);
        let writer = AtomicParquetWriter::create(path, schema.clone())?;
        Ok(Self { writer, schema, rows: 0 })
    }

    /// Appends `parts` as one record batch.
    pub fn write(&mut self, parts: &[ForecastRows<'_>]) -> Result<(), DataError> {
        let batch = forecast_batch(&self.schema, parts)
            .map_err(|message| DataError::Write { path: self.writer.target.clone(), message })?;
        self.writer.write(&batch)?;
        self.rows += batch.num_rows() as u64;
        Ok(())
    }

    /// Completes the file, moves it into place and returns its row count.
    pub fn finish(self) -> Result<u64, DataError> {
        self.writer.finish()?;
        Ok(self.rows)
    }
}

/// `parts` as one record batch of `schema` (a [`forecast_schema`]); the error says which
/// part does not fit it.
pub fn forecast_batch(schema: &SchemaRef, parts: &[ForecastRows<'_>]) -> Result<RecordBatch, String> {
    let levels = schema.fields().len() - 6;
    let rows: usize = parts.iter().map(|p| p.timestamps.len()).sum();
    let mut ids = StringBuilder::new();
    let mut times = TimestampMicrosecondBuilder::with_capacity(rows).with_timezone("UTC");
    let mut channels = StringBuilder::new();
    let mut scenarios = StringBuilder::new();
    let mut quantiles: Vec<Float64Builder> =
        (0..levels).map(|_| Float64Builder::with_capacity(rows)).collect();
    let mut mean = Float64Builder::with_capacity(rows);
    let mut loops = UInt32Builder::with_capacity(rows);
    for part in parts {
        let steps = part.timestamps.len();
        if part.quantiles.len() != levels
            || part.quantiles.iter().any(|q| q.len() != steps)
            || part.mean.len() != steps
            || part.loops.len() != steps
        {
            return Err(format!(
                "series `{}` channel `{}`: trajectories do not match its {steps} timestamps and {levels} levels",
                part.series_id, part.channel
            ));
        }
        for h in 0..steps {
            ids.append_value(part.series_id);
            times.append_value(part.timestamps[h]);
            channels.append_value(part.channel);
            scenarios.append_value(part.scenario);
        }
        for (builder, values) in quantiles.iter_mut().zip(part.quantiles) {
            builder.append_slice(values);
        }
        mean.append_slice(part.mean);
        loops.append_slice(part.loops);
    }
    let mut arrays: Vec<ArrayRef> = vec![
        Arc::new(ids.finish()),
        Arc::new(times.finish()),
        Arc::new(channels.finish()),
        Arc::new(scenarios.finish()),
    ];
    arrays.extend(quantiles.iter_mut().map(|b| Arc::new(b.finish()) as ArrayRef));
    arrays.push(Arc::new(mean.finish()));
    arrays.push(Arc::new(loops.finish()));
    RecordBatch::try_new(schema.clone(), arrays).map_err(|e| e.to_string())
}

/// Rows of the Parquet file at `path`, from its footer.
pub fn parquet_rows(path: impl AsRef<Path>) -> Result<u64, DataError> {
    let path = path.as_ref();
    let fail = |message: String| DataError::Write { path: path.to_path_buf(), message };
    let file = File::open(path).map_err(|e| fail(e.to_string()))?;
    let builder = ParquetRecordBatchReaderBuilder::try_new(file).map_err(|e| fail(e.to_string()))?;
    Ok(builder.metadata().file_metadata().num_rows() as u64)
}

/// Concatenates Parquet files of one schema, in order, into `target` (atomically: the
/// file appears complete or not at all); returns the rows written.
pub fn concat_parquet(parts: &[PathBuf], target: impl AsRef<Path>) -> Result<u64, DataError> {
    let target = target.as_ref();
    let fail = |path: &Path, message: String| DataError::Write { path: path.to_path_buf(), message };
    let mut writer: Option<AtomicParquetWriter> = None;
    let mut rows = 0;
    for part in parts {
        let file = File::open(part).map_err(|e| fail(part, e.to_string()))?;
        let builder =
            ParquetRecordBatchReaderBuilder::try_new(file).map_err(|e| fail(part, e.to_string()))?;
        let out = match &mut writer {
            Some(out) => out,
            None => writer.insert(AtomicParquetWriter::create(target, builder.schema().clone())?),
        };
        for batch in builder.build().map_err(|e| fail(part, e.to_string()))? {
            let batch = batch.map_err(|e| fail(part, e.to_string()))?;
            rows += batch.num_rows() as u64;
            out.write(&batch)?;
        }
    }
    match writer {
        Some(writer) => writer.finish()?,
        None => return Err(fail(target, "nothing to concatenate".into())),
    };
    Ok(rows)
}
