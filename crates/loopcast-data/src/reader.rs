//! Streaming reader: a DataFusion query over one file, turned into regular series one at a
//! time.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::fmt;
use std::path::{Path, PathBuf};

use arrow::array::{Array, AsArray, Float64Array, RecordBatch, StringArray};
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

use crate::columns::{
    self, CHANNEL_ALIASES, ColumnKind, ROLE_ALIASES, SERIES_ALIASES, TIMESTAMP_ALIASES, TimeCell,
    VALUE_ALIASES,
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
/// Series come out in the order of their identifiers (or file order with
/// [`ReadOptions::assume_sorted`]). Only one series is held in memory at a time, besides
/// DataFusion's sort, which spills to disk past [`ReadOptions::memory_limit`].
pub struct TelemetryReader {
    path: PathBuf,
    options: ReadOptions,
    stream: SendableRecordBatchStream,
    layout: ValueLayout,
    series_column: String,
    time_column: String,
    channels: Vec<ChannelSpec>,
    channel_index: HashMap<String, usize>,
    frequency: Option<Frequency>,
    frequency_set_by: Option<String>,
    report: IngestReport,
    open: Option<OpenSeries>,
    closed: HashSet<String>,
    waiting: Vec<OpenSeries>,
    ready: VecDeque<RegularSeries>,
    exhausted: bool,
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
                let (channels, role_source) =
                    long_channels(&path, &filtered, channel.as_deref(), role.as_deref(), &value, &options)
                        .await?;
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
        select.push(ident(ROW));

        let mut frame = raw.with_column(ROW, row_number()).map_err(query)?;
        if let Some(predicate) = &options.filter {
            let expr = frame.parse_sql_expr(predicate).map_err(query)?;
            frame = frame.filter(expr).map_err(query)?;
        }
        frame = frame.select(select).map_err(query)?;
        if !options.assume_sorted {
            frame = frame
                .sort(vec![
                    ident(SERIES).sort(true, false),
                    ident(TIME).sort(true, false),
                    ident(ROW).sort(true, false),
                ])
                .map_err(query)?;
        }
        let stream = frame.execute_stream().await.map_err(query)?;

        let frequency = options.frequency.or(mapping.frequency);
        let mut report = IngestReport::new(path.display().to_string(), channels.clone(), role_source);
        report.frequency = frequency;
        let channel_index = channels.iter().enumerate().map(|(i, c)| (c.name.clone(), i)).collect();
        Ok(Self {
            series_column: series_column.unwrap_or_else(|| SERIES_ALIASES[0].to_string()),
            time_column,
            path,
            options,
            stream,
            layout,
            channels,
            channel_index,
            frequency,
            frequency_set_by: None,
            report,
            open: None,
            closed: HashSet::new(),
            waiting: Vec::new(),
            ready: VecDeque::new(),
            exhausted: false,
        })
    }

    /// The channels every series carries, targets first, then actions, then covariates.
    pub fn channels(&self) -> &[ChannelSpec] {
        &self.channels
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
            match self.stream.next().await {
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
        let rows = batch.column(batch.num_columns() - 1).as_primitive::<UInt64Type>().clone();
        let channel_names: Option<StringArray> = match &self.layout {
            ValueLayout::Long { .. } => Some(columns::as_strings(batch.column(2), CHANNEL).map_err(decode)?),
            ValueLayout::Wide => None,
        };
        let values: Vec<Float64Array> = (3..batch.num_columns() - 1)
            .map(|i| columns::as_f64(batch.column(i), "value").map_err(decode))
            .collect::<Result<_, _>>()?;
        self.report.rows += n as u64;

        for (i, time) in times.iter().enumerate() {
            let row = rows.value(i);
            let values_in_row = if channel_names.is_some() { 1 } else { values.len() };
            let key_problem = if series.is_null(i) {
                Some((self.series_column.clone(), RejectReason::NullSeriesId))
            } else {
                match time {
                    TimeCell::At(_) => None,
                    TimeCell::Null => Some((self.time_column.clone(), RejectReason::NullTimestamp)),
                    TimeCell::Unparseable(text) => Some((
                        self.time_column.clone(),
                        RejectReason::UnparseableTimestamp { text: text.clone() },
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
            self.switch_series(id, *timestamp, row)?;
            match &channel_names {
                Some(names) => {
                    let channel = if names.is_null(i) {
                        Err(RejectReason::NullChannel)
                    } else {
                        self.channel_index.get(names.value(i)).copied().ok_or(RejectReason::UnmappedChannel)
                    };
                    match channel {
                        Ok(channel) => self.push(channel, *timestamp, &values[0], i, row),
                        Err(reason) => self.reject(row, CHANNEL_ALIASES[0], Some(id), reason)?,
                    }
                }
                None => {
                    for (channel, column) in values.iter().enumerate() {
                        self.push(channel, *timestamp, column, i, row);
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

    /// Makes `id` the open series, closing the previous one; checks the sort promise.
    fn switch_series(&mut self, id: &str, timestamp: Timestamp, row: u64) -> Result<(), DataError> {
        if let Some(open) = &mut self.open
            && open.id == id
        {
            if self.options.assume_sorted && timestamp < open.last_time {
                return Err(self.out_of_order(row, format!("series `{id}` goes back in time")));
            }
            open.last_time = timestamp;
            return Ok(());
        }
        if self.options.assume_sorted && self.closed.contains(id) {
            return Err(self.out_of_order(row, format!("series `{id}` appears again after other series")));
        }
        if let Some(previous) = self.open.take() {
            if self.options.assume_sorted {
                self.closed.insert(previous.id.clone());
            }
            self.close_series(previous)?;
        }
        self.open = Some(OpenSeries { id: id.to_string(), observations: Vec::new(), last_time: timestamp });
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

/// The channels of a long table and their roles: from the mapping, else from a `role`
/// column, else all targets.
async fn long_channels(
    path: &Path,
    filtered: &DataFrame,
    channel: Option<&str>,
    role: Option<&str>,
    value: &str,
    options: &ReadOptions,
) -> Result<(Vec<ChannelSpec>, RoleSource), DataError> {
    let query = |e: DataFusionError| query_error(path, e);
    let mut found: BTreeMap<String, Option<String>> = BTreeMap::new();
    match channel {
        None => {
            let count = filtered.clone().count().await.map_err(query)?;
            if count > 0 {
                found.insert(value.to_string(), None);
            }
        }
        Some(channel) => {
            let mut columns = vec![ident(channel)];
            if let Some(role) = role {
                columns.push(ident(role));
            }
            let batches = filtered.clone().select(columns).map_err(query)?.distinct().map_err(query)?;
            for batch in batches.collect().await.map_err(query)? {
                let names = columns::as_strings(batch.column(0), channel)
                    .map_err(|message| DataError::Query { path: path.to_path_buf(), message })?;
                let roles = match role {
                    Some(role) => Some(
                        columns::as_strings(batch.column(1), role)
                            .map_err(|message| DataError::Query { path: path.to_path_buf(), message })?,
                    ),
                    None => None,
                };
                for i in 0..batch.num_rows() {
                    if names.is_null(i) {
                        continue;
                    }
                    let role = roles.as_ref().filter(|r| !r.is_null(i)).map(|r| r.value(i).to_string());
                    let entry = found.entry(names.value(i).to_string()).or_default();
                    match (entry.as_ref(), role) {
                        (Some(old), Some(new)) if *old != new => {
                            return Err(DataError::RoleColumn {
                                path: path.to_path_buf(),
                                channel: names.value(i).to_string(),
                                message: format!("has roles `{old}` and `{new}`"),
                            });
                        }
                        (_, Some(new)) => *entry = Some(new),
                        _ => {}
                    }
                }
            }
        }
    }
    if found.is_empty() {
        return Err(DataError::EmptyInput { path: path.to_path_buf(), filter: options.filter.clone() });
    }
    if let Some(mapping) = &options.mapping {
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
    times.sort_unstable();
    times.dedup();
    infer_spacing(&times)
}
