//! Streaming reader: a DataFusion query over one file, turned into regular series one at a
//! time.

use std::collections::{BTreeMap, HashSet, VecDeque};
use std::fmt;
use std::path::{Path, PathBuf};

use arrow::array::{Array, AsArray, Float64Array, RecordBatch, StringViewArray};
use arrow::datatypes::UInt64Type;
use datafusion::datasource::file_format::options::ArrowReadOptions;
use datafusion::error::DataFusionError;
use datafusion::execution::SendableRecordBatchStream;
use datafusion::execution::runtime_env::RuntimeEnvBuilder;
use datafusion::functions_window::expr_fn::row_number;
use datafusion::prelude::{
    CsvReadOptions, DataFrame, ParquetReadOptions, SessionConfig, SessionContext, ident, lit,
};
use futures::StreamExt;
use loopcast_core::{ChannelMapping, ChannelSpec, Frequency, RegularSeries, Role, Timestamp};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::columns::{
    self, CHANNEL_ALIASES, ColumnKind, ROLE_ALIASES, SERIES_ALIASES, TIMESTAMP_ALIASES, TimeCell,
    VALUE_ALIASES, ViewCache,
};
use crate::regularise::{Observation, infer_spacing, regularise};
use crate::report::{IngestReport, RejectReason, Rejection, RoleSource};
use crate::{DataError, InputFormat, Layout};

const SERIES: &str = "__loopcast_series";
const TIME: &str = "__loopcast_time";
const CHANNEL: &str = "__loopcast_channel";
const ROW: &str = "__loopcast_row";

/// How to read one telemetry file.
#[derive(Debug, Clone)]
pub struct ReadOptions {
    /// The container format; taken from the extension when `None`.
    pub format: Option<InputFormat>,
    /// Long (one value per row) or wide (one column per channel, needs `mapping`).
    pub layout: Layout,
    /// Column names, frequency and channel roles; required for the wide layout.
    pub mapping: Option<ChannelMapping>,
    /// A SQL predicate over the file's own columns (`unique_id = 'T1' AND y > 0`).
    pub filter: Option<String>,
    /// The grid step; overrides the mapping's, inferred from the data when neither is set.
    pub frequency: Option<Frequency>,
    /// Fail on the first rejected value instead of reporting it and going on.
    pub strict: bool,
    /// Trust that rows are grouped by series and in time order within a series, and skip
    /// the sort; a row that breaks the promise is an error.
    pub assume_sorted: bool,
    /// Memory DataFusion may use (for the sort) before it spills to disk, in bytes.
    pub memory_limit: usize,
    /// Rows per record batch.
    pub batch_size: usize,
}

impl Default for ReadOptions {
    fn default() -> Self {
        Self {
            format: None,
            layout: Layout::Long,
            mapping: None,
            filter: None,
            frequency: None,
            strict: true,
            assume_sorted: false,
            memory_limit: 1 << 30,
            batch_size: 32 * 1024,
        }
    }
}

/// Where the values of a row are.
#[derive(Debug, Clone)]
enum ValueLayout {
    /// Column `CHANNEL` names the channel; the value column is named here.
    Long { value_column: String },
    /// One value column per channel, in channel order.
    Wide,
}

/// A series whose rows are being collected.
#[derive(Debug)]
struct OpenSeries {
    id: String,
    observations: Vec<Observation>,
    last_time: Timestamp,
}

/// Reads one telemetry file and yields its series regularised onto one grid.
///
/// Needs a tokio runtime (as DataFusion does); on a multi-threaded one, decoding runs on
/// another worker while series are regularised.
///
/// A first pass over the key columns finds the channels and whether each series' rows are
/// contiguous. If they are (or [`ReadOptions::assume_sorted`] promises it), series come out
/// in file order straight from the stream; otherwise DataFusion sorts the rows by series,
/// spilling to disk past [`ReadOptions::memory_limit`], and series come out in identifier
/// order. Besides that sort, one series and a few record batches are in memory at a time.
pub struct TelemetryReader {
    path: PathBuf,
    options: ReadOptions,
    /// Record batches decoded by a task of their own, so that decoding overlaps with
    /// regularisation on a multi-threaded runtime.
    batches: mpsc::Receiver<Result<RecordBatch, DataFusionError>>,
    _decoder: AbortOnDrop,
    layout: ValueLayout,
    series_column: String,
    time_column: String,
    channels: Vec<ChannelSpec>,
    /// Channel index (or unmapped) by the channel column's string views.
    channel_ids: ViewCache<Option<usize>>,
    /// Observations in the last closed series, to size the next one's buffer.
    last_series_len: usize,
    frequency: Option<Frequency>,
    frequency_set_by: Option<String>,
    report: IngestReport,
    open: Option<OpenSeries>,
    closed: HashSet<String>,
    waiting: Vec<OpenSeries>,
    ready: VecDeque<RegularSeries>,
    exhausted: bool,
    /// Whether the last column holds 1-based file row numbers (else rows arrive in file
    /// order and are counted here).
    rows_in_engine: bool,
    rows_seen: u64,
    /// Rows after the filter, from the first pass.
    total_rows: u64,
}

impl fmt::Debug for TelemetryReader {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TelemetryReader")
            .field("path", &self.path)
            .field("channels", &self.channels)
            .field("frequency", &self.frequency)
            .finish_non_exhaustive()
    }
}

impl TelemetryReader {
    /// Opens `path`, checks its columns and types, and starts the query.
    pub async fn open(path: impl AsRef<Path>, options: ReadOptions) -> Result<Self, DataError> {
        let path = path.as_ref().to_path_buf();
        if let Err(source) = std::fs::metadata(&path) {
            return Err(DataError::Io { path, source });
        }
        if options.layout == Layout::Wide && options.mapping.is_none() {
            return Err(DataError::MappingRequired { path });
        }
        let query = |e: DataFusionError| query_error(&path, e);
        let format = match options.format {
            Some(format) => format,
            None => InputFormat::from_path(&path)?,
        };
        let ctx = session(&options).map_err(query)?;
        let raw = scan(&ctx, &path, format).await.map_err(query)?;
        let schema = raw.schema().as_arrow().clone();
        let mapping = options.mapping.clone().unwrap_or_default();

        let series_column =
            columns::find_column(&path, &schema, mapping.series_id.as_deref(), SERIES_ALIASES)?;
        let time_column =
            columns::find_column(&path, &schema, mapping.timestamp.as_deref(), TIMESTAMP_ALIASES)?
                .ok_or_else(|| columns::missing_column(&path, &schema, "timestamp (or ds)"))?;
        if let Some(series) = &series_column {
            columns::check_type(&path, &schema, series, ColumnKind::Key)?;
        }
        columns::check_type(&path, &schema, &time_column, ColumnKind::Time)?;

        let filtered = match &options.filter {
            None => raw.clone(),
            Some(predicate) => {
                let expr = raw.parse_sql_expr(predicate).map_err(|e| DataError::Query {
                    path: path.clone(),
                    message: format!("invalid filter `{predicate}`: {e}"),
                })?;
                raw.clone().filter(expr).map_err(query)?
            }
        };

        let (grouped, total_rows);
        // Whether series are contiguous only matters when nobody promised it.
        let grouping_column = series_column.as_deref().filter(|_| !options.assume_sorted);
        let (layout, channels, role_source, channel_expr, value_exprs) = match options.layout {
            Layout::Long => {
                let value = columns::find_column(&path, &schema, None, VALUE_ALIASES)?
                    .ok_or_else(|| columns::missing_column(&path, &schema, "value (or y)"))?;
                columns::check_type(&path, &schema, &value, ColumnKind::Number)?;
                let channel = columns::find_column(&path, &schema, None, CHANNEL_ALIASES)?;
                let role = columns::find_column(&path, &schema, None, ROLE_ALIASES)?;
                for column in channel.iter().chain(&role) {
                    columns::check_type(&path, &schema, column, ColumnKind::Text)?;
                }
                let scan =
                    prescan(&path, &filtered, grouping_column, channel.as_deref(), role.as_deref()).await?;
                if scan.rows == 0 {
                    return Err(DataError::EmptyInput { path, filter: options.filter.clone() });
                }
                grouped = scan.grouped;
                total_rows = scan.rows;
                let (channels, role_source) = long_channels(
                    &path,
                    scan.channels,
                    channel.is_some(),
                    role.as_deref(),
                    &value,
                    &options,
                )?;
                let channel_expr = match &channel {
                    Some(c) => ident(c),
                    None => lit(value.clone()),
                };
                (
                    ValueLayout::Long { value_column: value.clone() },
                    channels,
                    role_source,
                    channel_expr,
                    vec![ident(&value)],
                )
            }
            Layout::Wide => {
                let channels = ordered(mapping.specs());
                let mut names = Vec::with_capacity(channels.len());
                for spec in &channels {
                    if schema.field_with_name(&spec.name).is_err() {
                        return Err(DataError::ChannelNotInData {
                            path,
                            channel: spec.name.clone(),
                            available: field_names(&schema),
                        });
                    }
                    columns::check_type(&path, &schema, &spec.name, ColumnKind::Number)?;
                    names.push(spec.name.clone());
                }
                let exprs = names.iter().map(ident).collect();
                let scan = prescan(&path, &filtered, grouping_column, None, None).await?;
                if scan.rows == 0 {
                    return Err(DataError::EmptyInput { path, filter: options.filter.clone() });
                }
                grouped = scan.grouped;
                total_rows = scan.rows;
                (ValueLayout::Wide, channels, RoleSource::Mapping, lit("__wide"), exprs)
            }
        };

        let series_expr = match &series_column {
            Some(s) => ident(s),
            None => lit(default_series_id(&path)),
        };
        let mut select =
            vec![series_expr.alias(SERIES), ident(&time_column).alias(TIME), channel_expr.alias(CHANNEL)];
        select.extend(value_exprs.into_iter().enumerate().map(|(i, e)| e.alias(format!("__loopcast_v{i}"))));

        // Rows reach us in file order unless DataFusion sorts them or a filter drops some;
        // only then must row numbers (for error messages) be taken before the query runs.
        let sort = !grouped && !options.assume_sorted;
        let rows_in_engine = sort || options.filter.is_some();
        let mut frame = raw;
        if rows_in_engine {
            select.push(ident(ROW));
            frame = frame.with_column(ROW, row_number()).map_err(query)?;
        }
        if let Some(predicate) = &options.filter {
            let expr = frame.parse_sql_expr(predicate).map_err(query)?;
            frame = frame.filter(expr).map_err(query)?;
        }
        frame = frame.select(select).map_err(query)?;
        if sort {
            // Within a series, regularisation orders values by time itself.
            frame = frame
                .sort(vec![ident(SERIES).sort(true, false), ident(ROW).sort(true, false)])
                .map_err(query)?;
        }
        let stream = frame.execute_stream().await.map_err(query)?;
        let (batches, decoder) = decode_ahead(stream);

        let frequency = options.frequency.or(mapping.frequency);
        let mut report = IngestReport::new(path.display().to_string(), channels.clone(), role_source);
        report.frequency = frequency;
        Ok(Self {
            series_column: series_column.unwrap_or_else(|| SERIES_ALIASES[0].to_string()),
            time_column,
            path,
            options,
            batches,
            _decoder: decoder,
            layout,
            channels,
            channel_ids: ViewCache::new(),
            last_series_len: 0,
            frequency,
            frequency_set_by: None,
            report,
            open: None,
            closed: HashSet::new(),
            waiting: Vec::new(),
            ready: VecDeque::new(),
            exhausted: false,
            rows_in_engine,
            rows_seen: 0,
            total_rows,
        })
    }

    /// The channels every series carries, targets first, then actions, then covariates.
    pub fn channels(&self) -> &[ChannelSpec] {
        &self.channels
    }

    /// Rows the input holds after the filter (counted when it was opened): with
    /// [`IngestReport::rows`], how far reading has come.
    pub fn total_rows(&self) -> u64 {
        self.total_rows
    }

    /// What has been read so far; complete once [`Self::next_series`] returned `None`.
    pub fn report(&self) -> &IngestReport {
        &self.report
    }

    /// Consumes the reader and returns its report.
    pub fn into_report(self) -> IngestReport {
        self.report
    }

    /// The next regularised series, or `None` when the input is exhausted.
    pub async fn next_series(&mut self) -> Result<Option<RegularSeries>, DataError> {
        loop {
            if let Some(series) = self.ready.pop_front() {
                return Ok(Some(series));
            }
            if self.exhausted {
                return Ok(None);
            }
            match self.batches.recv().await {
                Some(batch) => {
                    let batch = batch.map_err(|e| query_error(&self.path, e))?;
                    self.ingest_batch(&batch)?;
                }
                None => self.finish()?,
            }
        }
    }

    /// Reads every remaining series, calling `each` on them, and returns the report.
    pub async fn for_each_series(
        mut self,
        mut each: impl FnMut(RegularSeries) -> Result<(), DataError>,
    ) -> Result<IngestReport, DataError> {
        while let Some(series) = self.next_series().await? {
            each(series)?;
        }
        Ok(self.report)
    }

    fn ingest_batch(&mut self, batch: &RecordBatch) -> Result<(), DataError> {
        let decode = |e: String| DataError::Query { path: self.path.clone(), message: e };
        let n = batch.num_rows();
        let series = columns::as_strings(batch.column(0), &self.series_column).map_err(decode)?;
        let times = columns::as_times(batch.column(1), &self.time_column).map_err(decode)?;
        let value_end = batch.num_columns() - usize::from(self.rows_in_engine);
        let rows = self.rows_in_engine.then(|| batch.column(value_end).as_primitive::<UInt64Type>().clone());
        let first_row = self.rows_seen + 1;
        self.rows_seen += n as u64;
        let channel_names: Option<StringViewArray> = match &self.layout {
            ValueLayout::Long { .. } => Some(columns::as_strings(batch.column(2), CHANNEL).map_err(decode)?),
            ValueLayout::Wide => None,
        };
        let values: Vec<Float64Array> = (3..value_end)
            .map(|i| columns::as_f64(batch.column(i), "value").map_err(decode))
            .collect::<Result<_, _>>()?;
        self.report.rows += n as u64;
        self.channel_ids.next_array();
        // The row of this batch whose series is the open one, to compare views against.
        let mut open_row: Option<usize> = None;

        for i in 0..n {
            let time = times.get(i);
            let row = rows.as_ref().map_or(first_row + i as u64, |r| r.value(i));
            let values_in_row = if channel_names.is_some() { 1 } else { values.len() };
            let key_problem = if series.is_null(i) {
                Some((self.series_column.clone(), RejectReason::NullSeriesId))
            } else {
                match time {
                    TimeCell::At(_) => None,
                    TimeCell::Null => Some((self.time_column.clone(), RejectReason::NullTimestamp)),
                    TimeCell::Unparseable(text) => Some((
                        self.time_column.clone(),
                        RejectReason::UnparseableTimestamp { text: text.to_string() },
                    )),
                }
            };
            let id = (!series.is_null(i)).then(|| series.value(i));
            if let Some((column, reason)) = key_problem {
                for _ in 0..values_in_row {
                    self.reject(row, &column, id, reason.clone())?;
                }
                continue;
            }
            let (Some(id), TimeCell::At(timestamp)) = (id, time) else { unreachable!("checked above") };
            if open_row.is_some_and(|o| columns::same_string(&series, o, i)) {
                self.continue_series(timestamp, row)?;
            } else {
                self.switch_series(id, timestamp, row)?;
            }
            open_row = Some(i);
            match &channel_names {
                Some(names) => {
                    let channel = if names.is_null(i) {
                        Err(RejectReason::NullChannel)
                    } else {
                        let specs = &self.channels;
                        self.channel_ids
                            .get(names, i, |name| specs.iter().position(|c| c.name == name))
                            .ok_or(RejectReason::UnmappedChannel)
                    };
                    match channel {
                        Ok(channel) => self.push(channel, timestamp, &values[0], i, row),
                        Err(reason) => self.reject(row, CHANNEL_ALIASES[0], Some(id), reason)?,
                    }
                }
                None => {
                    for (channel, column) in values.iter().enumerate() {
                        self.push(channel, timestamp, column, i, row);
                    }
                }
            }
        }
        Ok(())
    }

    fn push(&mut self, channel: usize, timestamp: Timestamp, values: &Float64Array, i: usize, row: u64) {
        let value = (!values.is_null(i)).then(|| values.value(i));
        let open = self.open.as_mut().expect("switch_series opened a series");
        open.observations.push(Observation { channel, timestamp, value, row });
    }

    fn reject(
        &mut self,
        row: u64,
        column: &str,
        series: Option<&str>,
        reason: RejectReason,
    ) -> Result<(), DataError> {
        let rejection =
            Rejection { row, column: column.to_string(), series: series.map(str::to_string), reason };
        self.report.values.rejected += 1;
        if self.options.strict {
            return Err(DataError::Rejected { path: self.path.clone(), rejection });
        }
        self.report.record_rejection(rejection);
        Ok(())
    }

    /// Another row of the open series; checks the sort promise.
    fn continue_series(&mut self, timestamp: Timestamp, row: u64) -> Result<(), DataError> {
        let open = self.open.as_mut().expect("a series is open");
        if self.options.assume_sorted && timestamp < open.last_time {
            let message = format!("series `{}` goes back in time", open.id);
            return Err(self.out_of_order(row, message));
        }
        open.last_time = timestamp;
        Ok(())
    }

    /// Makes `id` the open series, closing the previous one; checks the sort promise.
    fn switch_series(&mut self, id: &str, timestamp: Timestamp, row: u64) -> Result<(), DataError> {
        if self.open.as_ref().is_some_and(|open| open.id == id) {
            return self.continue_series(timestamp, row);
        }
        if self.options.assume_sorted && self.closed.contains(id) {
            return Err(self.out_of_order(row, format!("series `{id}` appears again after other series")));
        }
        if let Some(previous) = self.open.take() {
            self.last_series_len = previous.observations.len();
            if self.options.assume_sorted {
                self.closed.insert(previous.id.clone());
            }
            self.close_series(previous)?;
        }
        let observations = Vec::with_capacity(self.last_series_len);
        self.open = Some(OpenSeries { id: id.to_string(), observations, last_time: timestamp });
        Ok(())
    }

    fn out_of_order(&self, row: u64, message: String) -> DataError {
        DataError::OutOfOrder { path: self.path.clone(), row, message }
    }

    /// Regularises a complete series, or holds it until the frequency is known.
    fn close_series(&mut self, series: OpenSeries) -> Result<(), DataError> {
        let spacing = spacing_of(&series.observations);
        let Some(frequency) = self.frequency else {
            let Some(spacing) = spacing.and_then(Frequency::from_spacing) else {
                self.waiting.push(series);
                return Ok(());
            };
            self.frequency = Some(spacing);
            self.frequency_set_by = Some(series.id.clone());
            self.report.frequency = Some(spacing);
            self.report.frequency_inferred = true;
            for held in std::mem::take(&mut self.waiting) {
                self.regularise(held, spacing)?;
            }
            return self.regularise(series, spacing);
        };
        if self.report.frequency_inferred
            && let Some(other) = spacing.and_then(Frequency::from_spacing).filter(|f| *f != frequency)
        {
            return Err(DataError::MixedFrequencies {
                path: self.path.clone(),
                first_series: self.frequency_set_by.clone().unwrap_or_default(),
                first: frequency.to_string(),
                series: series.id,
                other: other.to_string(),
            });
        }
        self.regularise(series, frequency)
    }

    fn regularise(&mut self, mut series: OpenSeries, frequency: Frequency) -> Result<(), DataError> {
        let value_column = match &self.layout {
            ValueLayout::Long { value_column } => Some(value_column.as_str()),
            ValueLayout::Wide => None,
        };
        let result =
            regularise(&series.id, &self.channels, frequency, &mut series.observations, value_column);
        if let (true, Some(first)) = (self.options.strict, result.rejections.first()) {
            return Err(DataError::Rejected { path: self.path.clone(), rejection: first.clone() });
        }
        self.report.values.add(&result.account);
        for rejection in result.rejections {
            self.report.record_rejection(rejection);
        }
        if let Some(regular) = result.series {
            let report = &mut self.report;
            report.series += 1;
            let cells = regular.len() as u64;
            report.cells += cells * regular.channels.len() as u64;
            report.gap_cells += regular.channels.iter().map(|c| c.gaps() as u64).sum::<u64>();
            let (start, end) = (regular.timestamp(0), regular.timestamp(regular.len() - 1));
            report.start = Some(report.start.map_or(start, |s| s.min(start)));
            report.end = Some(report.end.map_or(end, |e| e.max(end)));
            self.ready.push_back(regular);
        }
        Ok(())
    }

    fn finish(&mut self) -> Result<(), DataError> {
        self.exhausted = true;
        if let Some(open) = self.open.take() {
            self.close_series(open)?;
        }
        if !self.waiting.is_empty() {
            return Err(DataError::NoFrequency { path: self.path.clone() });
        }
        if self.report.rows == 0 {
            return Err(DataError::EmptyInput {
                path: self.path.clone(),
                filter: self.options.filter.clone(),
            });
        }
        Ok(())
    }
}

/// A task that is cancelled when its handle goes (a reader dropped mid-file).
#[derive(Debug)]
struct AbortOnDrop(JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Batches decoded ahead of use, at most two waiting, so memory stays bounded.
fn decode_ahead(
    mut stream: SendableRecordBatchStream,
) -> (mpsc::Receiver<Result<RecordBatch, DataFusionError>>, AbortOnDrop) {
    let (sender, receiver) = mpsc::channel(2);
    let task = tokio::spawn(async move {
        while let Some(batch) = stream.next().await {
            if sender.send(batch).await.is_err() {
                break;
            }
        }
    });
    (receiver, AbortOnDrop(task))
}

fn query_error(path: &Path, e: DataFusionError) -> DataError {
    DataError::Query { path: path.to_path_buf(), message: e.to_string() }
}

fn field_names(schema: &arrow::datatypes::Schema) -> String {
    schema.fields().iter().map(|f| f.name().as_str()).collect::<Vec<_>>().join(", ")
}

/// The identifier of the one series of a file without a series column: its file stem.
fn default_series_id(path: &Path) -> String {
    path.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_else(|| "series".to_string())
}

/// A column of a telemetry file, as the reader sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileColumn {
    /// Column name.
    pub name: String,
    /// Whether it holds numbers or booleans, so that a wide mapping can name it as a
    /// channel.
    pub numeric: bool,
}

/// The columns of `path` (its schema, as DataFusion infers it), without reading its rows:
/// what a wide layout's mapping can choose from.
pub async fn file_columns(
    path: impl AsRef<Path>,
    format: Option<InputFormat>,
) -> Result<Vec<FileColumn>, DataError> {
    let path = path.as_ref();
    if let Err(source) = std::fs::metadata(path) {
        return Err(DataError::Io { path: path.to_path_buf(), source });
    }
    let format = match format {
        Some(format) => format,
        None => InputFormat::from_path(path)?,
    };
    let query = |e: DataFusionError| query_error(path, e);
    let ctx = session(&ReadOptions::default()).map_err(query)?;
    let frame = scan(&ctx, path, format).await.map_err(query)?;
    let columns = frame
        .schema()
        .fields()
        .iter()
        .map(|field| FileColumn {
            name: field.name().clone(),
            numeric: field.data_type() != &arrow::datatypes::DataType::Null
                && ColumnKind::Number.accepts(field.data_type()),
        })
        .collect();
    Ok(columns)
}

/// A single-partition session, so that row numbers follow file order, with a memory
/// limit past which the sort spills to disk.
fn session(options: &ReadOptions) -> Result<SessionContext, DataFusionError> {
    let config = SessionConfig::new()
        .with_target_partitions(1)
        .with_repartition_file_scans(false)
        .with_batch_size(options.batch_size);
    let runtime = RuntimeEnvBuilder::new().with_memory_limit(options.memory_limit, 1.0).build_arc()?;
    Ok(SessionContext::new_with_config_rt(config, runtime))
}

async fn scan(ctx: &SessionContext, path: &Path, format: InputFormat) -> Result<DataFrame, DataFusionError> {
    let location = path.to_string_lossy();
    // DataFusion picks files by extension; a single named file is taken whatever it ends with.
    let extension = path.extension().map(|e| format!(".{}", e.to_string_lossy())).unwrap_or_default();
    match format {
        InputFormat::Parquet => {
            ctx.read_parquet(location.as_ref(), ParquetReadOptions::default().file_extension(&extension))
                .await
        }
        InputFormat::Csv => {
            let options = CsvReadOptions::new()
                .has_header(true)
                .file_extension(&extension)
                .schema_infer_max_records(100_000);
            ctx.read_csv(location.as_ref(), options).await
        }
        InputFormat::ArrowIpc => {
            let options = ArrowReadOptions { file_extension: &extension, ..Default::default() };
            ctx.read_arrow(location.as_ref(), options).await
        }
    }
}

/// Targets first, then actions, then covariates; by name within a role.
fn ordered(mut specs: Vec<ChannelSpec>) -> Vec<ChannelSpec> {
    specs.sort_by(|a, b| (a.role, &a.name).cmp(&(b.role, &b.name)));
    specs
}

/// What one projection-only pass over the filtered table finds out.
#[derive(Debug, Default)]
struct Prescan {
    /// Rows after the filter.
    rows: u64,
    /// Whether the rows of each series are contiguous (then no sort is needed).
    grouped: bool,
    /// Channel names seen (long layout), with the role the role column gives them.
    channels: BTreeMap<String, Option<String>>,
}

/// Streams the series, channel and role columns once: counts rows, checks that series
/// are contiguous, and collects channel names and roles.
async fn prescan(
    path: &Path,
    filtered: &DataFrame,
    series: Option<&str>,
    channel: Option<&str>,
    role: Option<&str>,
) -> Result<Prescan, DataError> {
    let query = |e: DataFusionError| query_error(path, e);
    let decode = |message: String| DataError::Query { path: path.to_path_buf(), message };
    let columns: Vec<&str> = [series, channel, role].into_iter().flatten().collect();
    if columns.is_empty() {
        let rows = filtered.clone().count().await.map_err(query)? as u64;
        return Ok(Prescan { rows, grouped: true, channels: BTreeMap::new() });
    }
    let mut scan = Prescan { grouped: true, ..Prescan::default() };
    let mut current: Option<String> = None;
    let mut closed: HashSet<String> = HashSet::new();
    // Channels in order of appearance with an index into `role_names`.
    let mut found: Vec<(String, Option<usize>)> = Vec::new();
    let mut role_names: Vec<String> = Vec::new();
    let (mut channel_ids, mut role_ids) = (ViewCache::new(), ViewCache::new());
    let frame =
        filtered.clone().select(columns.iter().map(|c| ident(*c)).collect::<Vec<_>>()).map_err(query)?;
    let mut stream = frame.execute_stream().await.map_err(query)?;
    while let Some(batch) = stream.next().await {
        let batch = batch.map_err(query)?;
        scan.rows += batch.num_rows() as u64;
        let mut next_column = 0;
        let mut take = |name: Option<&str>| -> Result<_, DataError> {
            let Some(name) = name else { return Ok(None) };
            next_column += 1;
            columns::as_strings(batch.column(next_column - 1), name).map(Some).map_err(decode)
        };
        let (ids, names, roles) = (take(series)?, take(channel)?, take(role)?);
        if let (Some(ids), true) = (&ids, scan.grouped) {
            let mut previous: Option<usize> = None;
            for i in 0..ids.len() {
                if ids.is_null(i) {
                    continue;
                }
                if previous.is_some_and(|p| columns::same_string(ids, p, i)) {
                    previous = Some(i);
                    continue;
                }
                previous = Some(i);
                let id = ids.value(i);
                if current.as_deref() == Some(id) {
                    continue;
                }
                if !closed.insert(id.to_string()) {
                    scan.grouped = false;
                    break;
                }
                current = Some(id.to_string());
            }
        }
        let Some(names) = names else { continue };
        channel_ids.next_array();
        role_ids.next_array();
        for i in 0..batch.num_rows() {
            if names.is_null(i) {
                continue;
            }
            let channel = channel_ids.get(&names, i, |name| {
                found.iter().position(|(n, _)| n == name).unwrap_or_else(|| {
                    found.push((name.to_string(), None));
                    found.len() - 1
                })
            });
            let role = roles.as_ref().filter(|r| !r.is_null(i)).map(|r| {
                role_ids.get(r, i, |text| {
                    role_names.iter().position(|n| n == text).unwrap_or_else(|| {
                        role_names.push(text.to_string());
                        role_names.len() - 1
                    })
                })
            });
            match (found[channel].1, role) {
                (Some(old), Some(new)) if old != new => {
                    return Err(DataError::RoleColumn {
                        path: path.to_path_buf(),
                        channel: found[channel].0.clone(),
                        message: format!("has roles `{}` and `{}`", role_names[old], role_names[new]),
                    });
                }
                (None, Some(new)) => found[channel].1 = Some(new),
                _ => {}
            }
        }
    }
    scan.channels =
        found.into_iter().map(|(name, role)| (name, role.map(|r| role_names[r].clone()))).collect();
    Ok(scan)
}

/// The channels of a long table and their roles: from the mapping, else from a `role`
/// column, else all targets. `found` holds the channels of the data (a table without a
/// channel column has one, named after its value column).
fn long_channels(
    path: &Path,
    mut found: BTreeMap<String, Option<String>>,
    has_channel_column: bool,
    role: Option<&str>,
    value: &str,
    options: &ReadOptions,
) -> Result<(Vec<ChannelSpec>, RoleSource), DataError> {
    if !has_channel_column {
        found.insert(value.to_string(), None);
    }
    if found.is_empty() {
        return Err(DataError::EmptyInput { path: path.to_path_buf(), filter: options.filter.clone() });
    }
    // A mapping that names no channels (only columns or the frequency) leaves the roles
    // to the role column or the default.
    if let Some(mapping) = options.mapping.as_ref().filter(|m| !m.channels.is_empty()) {
        let available = found.keys().cloned().collect::<Vec<_>>().join(", ");
        for name in mapping.channels.keys() {
            if !found.contains_key(name) {
                return Err(DataError::ChannelNotInData {
                    path: path.to_path_buf(),
                    channel: name.clone(),
                    available,
                });
            }
        }
        return Ok((ordered(mapping.specs()), RoleSource::Mapping));
    }
    if role.is_some() {
        let mut specs = Vec::with_capacity(found.len());
        for (name, role) in found {
            let role = role.ok_or_else(|| DataError::RoleColumn {
                path: path.to_path_buf(),
                channel: name.clone(),
                message: "has no role in the role column".to_string(),
            })?;
            let role: Role =
                role.parse().map_err(|source| DataError::Mapping { path: path.to_path_buf(), source })?;
            specs.push(ChannelSpec::new(name, role));
        }
        return Ok((ordered(specs), RoleSource::RoleColumn));
    }
    let specs = found.into_keys().map(|name| ChannelSpec::new(name, Role::Target)).collect();
    Ok((ordered(specs), RoleSource::DefaultAllTargets))
}

/// The typical spacing of a series' distinct timestamps.
fn spacing_of(observations: &[Observation]) -> Option<i64> {
    let mut times: Vec<Timestamp> = observations.iter().map(|o| o.timestamp).collect();
    if !times.is_sorted() {
        times.sort_unstable();
    }
    times.dedup();
    infer_spacing(&times)
}
