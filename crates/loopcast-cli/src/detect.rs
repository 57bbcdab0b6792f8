//! `loopcast detect FILE|--prometheus … --out DIR`: anomalies from the model's quantiles
//! over every series' history (`loopcast_eval::detect`), with two classical detectors
//! scored on the same windows; chunks of series written as they finish, so Ctrl-C and
//! the same command again resumes.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::Ordering;

use anyhow::{Context, Result, bail};
use arrow::array::{
    ArrayRef, BooleanBuilder, Float64Builder, RecordBatch, StringBuilder, TimestampMicrosecondBuilder,
};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use chrono::DateTime;
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use loopcast_core::RegularSeries;
use loopcast_data::{AtomicParquetWriter, ReadOptions, TelemetryReader, concat_parquet};
use loopcast_eval::detect::{
    ActionChange, Anomaly, DetectConfig, Detector, PointScore, Shape, detect_series, series_windows,
};
use loopcast_model::{DeviceKind, ForecastOptions, LoopedWorldModel};
use serde::{Deserialize, Serialize};

use crate::inspect::{LayoutArg, load_mapping};
use crate::local::write_atomically;
use crate::prometheus::{self, PrometheusArgs};
use crate::{Interrupted, UsageError, interrupt_flag, models};

/// Windows forecast in one batch.
const WINDOWS_PER_BATCH: usize = 256;

/// Arguments of `loopcast detect`.
#[derive(Debug, Args)]
pub(crate) struct DetectArgs {
    /// The telemetry file (.parquet, .csv, .arrow/.arrows/.ipc); or --prometheus.
    #[arg(required_unless_present = "prometheus", conflicts_with = "prometheus")]
    input: Option<PathBuf>,
    #[command(flatten)]
    source: PrometheusArgs,
    /// Table layout of the file: long, or wide (needs --mapping).
    #[arg(long, value_enum, default_value_t = LayoutArg::Long)]
    format: LayoutArg,
    /// Mapping file (TOML or JSON) with the channel roles.
    #[arg(long)]
    mapping: Option<PathBuf>,
    /// The results: `points.parquet` (every scored observation), `anomalies.csv`
    /// (flagged intervals), `changes.csv` (each move of an action and the scores around
    /// it) and `summary.json`.
    #[arg(long)]
    out: PathBuf,
    /// Flag observations outside the forecast's central band of this probability.
    #[arg(long, default_value_t = 0.99)]
    level: f64,
    /// History before the first scored point, in steps [default: a season (a day of
    /// sub-daily steps) and four patches].
    #[arg(long)]
    min_context: Option<usize>,
    /// Score only the last N patches of each series [default: all after --min-context].
    #[arg(long)]
    last_patches: Option<usize>,
    /// Forecast without the actions that were taken (as before the fact), so their
    /// effects count as anomalies too.
    #[arg(long)]
    hide_actions: bool,
    /// Fit each window's interval widths on up to N backtests over the end of its own
    /// history before scoring it (0 to 8; 0: the model's calibration alone).
    #[arg(long, default_value_t = 0)]
    series_calibration: usize,
    /// Series per chunk: the unit of progress and of resume.
    #[arg(long, default_value_t = 16)]
    chunk_series: usize,
    /// A model directory [default: the embedded shipped model].
    #[arg(long)]
    model: Option<PathBuf>,
    /// `cpu` (burn flex) or `wgpu`.
    #[arg(long, default_value = "cpu")]
    device: String,
}

/// What a run is asked, kept in its parts directory: a resumed run must ask the same.
#[derive(Debug, PartialEq, Serialize, Deserialize)]
struct Fingerprint {
    input: PathBuf,
    format: String,
    mapping: Option<PathBuf>,
    level: f64,
    min_context: Option<usize>,
    last_patches: Option<usize>,
    hide_actions: bool,
    series_calibration: usize,
    chunk_series: usize,
    model: String,
}

/// What one chunk found besides its points (the chunk's commit marker). Its anomalies and
/// moves are kept as CSV rows, so a resumed run writes the very same text.
#[derive(Debug, Default, Serialize, Deserialize)]
struct ChunkResult {
    series: usize,
    skipped: usize,
    points: usize,
    flagged: [usize; 3],
    anomalies: usize,
    changes: usize,
    anomalies_csv: String,
    changes_csv: String,
}

/// The header of `anomalies.csv` ([`AnomalyRow`]'s fields).
const ANOMALIES_HEADER: &str = "series_id,channel,start,end,points,peak_score,direction\n";
/// The header of `changes.csv` ([`ChangeRow`]'s fields).
const CHANGES_HEADER: &str =
    "series_id,action,timestamp,before,after,score_before,score_after,flagged_after\n";

/// An anomaly as a CSV row.
#[derive(Debug, Serialize)]
struct AnomalyRow {
    series_id: String,
    channel: String,
    start: String,
    end: String,
    points: usize,
    peak_score: f64,
    direction: String,
}

/// An action move as a CSV row.
#[derive(Debug, Serialize)]
struct ChangeRow {
    series_id: String,
    action: String,
    timestamp: String,
    before: f64,
    after: f64,
    score_before: Option<f64>,
    score_after: Option<f64>,
    flagged_after: usize,
}

fn rfc3339(micros: i64) -> String {
    DateTime::from_timestamp_micros(micros).map_or_else(|| micros.to_string(), |t| t.to_rfc3339())
}

impl From<&Anomaly> for AnomalyRow {
    fn from(a: &Anomaly) -> Self {
        Self {
            series_id: a.series.clone(),
            channel: a.channel.clone(),
            start: rfc3339(a.start),
            end: rfc3339(a.end),
            points: a.points,
            peak_score: a.peak_score,
            direction: a.direction.to_string(),
        }
    }
}

impl From<&ActionChange> for ChangeRow {
    fn from(c: &ActionChange) -> Self {
        let finite = |v: f64| v.is_finite().then_some(v);
        Self {
            series_id: c.series.clone(),
            action: c.channel.clone(),
            timestamp: rfc3339(c.timestamp),
            before: c.before,
            after: c.after,
            score_before: finite(c.score_before),
            score_after: finite(c.score_after),
            flagged_after: c.flagged_after,
        }
    }
}

/// Runs `loopcast detect`.
pub(crate) async fn run(args: DetectArgs) -> Result<()> {
    if !(args.level > 0.5 && args.level < 1.0) {
        bail!(UsageError(format!("--level {} must lie in (0.5, 1)", args.level)));
    }
    if args.chunk_series == 0 {
        bail!(UsageError("--chunk-series must be at least 1".into()));
    }
    let device = args.device.parse::<DeviceKind>()?.device()?;
    let (model, name, _) = models::load(args.model.as_deref(), &device)?;
    let config = model.config();
    let patch = config.patch_len;
    let max_context = patch * config.max_context_patches;
    let parts = args.out.join("parts");
    let mapping = args.mapping.as_deref().map(load_mapping).transpose()?;
    let (input, layout, mapping) =
        prometheus::input(args.input.as_deref(), args.format.into(), &args.source, mapping, &parts).await?;
    let fingerprint = Fingerprint {
        input: input.clone(),
        format: format!("{:?}", args.format),
        mapping: args.mapping.clone(),
        level: args.level,
        min_context: args.min_context,
        last_patches: args.last_patches,
        hide_actions: args.hide_actions,
        series_calibration: args.series_calibration,
        chunk_series: args.chunk_series,
        model: name.clone(),
    };
    claim(&parts, &fingerprint)?;
    let mut reader =
        TelemetryReader::open(&input, ReadOptions { layout, mapping, ..ReadOptions::default() }).await?;
    let channels = reader.channels().to_vec();
    let detect = DetectConfig {
        level: args.level,
        season: 1,
        action_futures: !args.hide_actions,
        forecast_options: ForecastOptions {
            series_calibration: args.series_calibration,
            ..ForecastOptions::default()
        },
    };
    let bar = ProgressBar::new(reader.total_rows()).with_style(
        ProgressStyle::with_template("{bar:30} {percent:>3}% of rows read ({elapsed}, eta {eta}) {msg}")
            .expect("valid template"),
    );
    let interrupted = interrupt_flag();
    let schema = points_schema();
    let mut totals = ChunkResult::default();
    let mut chunk: Vec<RegularSeries> = Vec::new();
    let (mut index, mut resumed) = (0usize, 0usize);
    loop {
        let next = reader.next_series().await?;
        let done = next.is_none();
        chunk.extend(next);
        if chunk.len() < args.chunk_series && !done {
            continue;
        }
        if chunk.is_empty() {
            break;
        }
        if interrupted.load(Ordering::SeqCst) {
            bar.abandon_with_message("interrupted");
            bail!(Interrupted(format!(
                "interrupted after {index} chunks, kept in {}; run the same command again to resume",
                parts.display()
            )));
        }
        let frequency = reader.report().frequency.context("no grid step could be found in the input")?;
        let marker = parts.join(format!("chunk-{index:05}.json"));
        let result = match std::fs::read_to_string(&marker) {
            Ok(text) => {
                resumed += 1;
                serde_json::from_str(&text)
                    .with_context(|| format!("{}: a damaged part", marker.display()))?
            }
            Err(_) => {
                let min_context = args.min_context.unwrap_or(frequency.season() + 4 * patch).max(1);
                let shape = Shape { patch, max_context, min_context, last_patches: args.last_patches };
                // The calendar's season is the prior of the period each window finds.
                let config = DetectConfig { season: frequency.season(), ..detect.clone() };
                let result = detect_chunk(
                    &model, &chunk, &channels, frequency, &config, shape, &schema, &parts, index,
                )?;
                write_atomically(&marker, serde_json::to_string(&result)?.as_bytes())?;
                result
            }
        };
        totals.series += result.series;
        totals.skipped += result.skipped;
        totals.points += result.points;
        for (total, count) in totals.flagged.iter_mut().zip(result.flagged) {
            *total += count;
        }
        totals.anomalies += result.anomalies;
        totals.changes += result.changes;
        totals.anomalies_csv.push_str(&result.anomalies_csv);
        totals.changes_csv.push_str(&result.changes_csv);
        index += 1;
        chunk.clear();
        bar.set_position(reader.report().rows);
        bar.set_message(format!("{} series, {} anomalies", totals.series, totals.anomalies));
        if done {
            break;
        }
    }
    bar.finish_and_clear();
    if totals.points == 0 {
        bail!(loopcast_data::DataError::WindowSpec(format!(
            "{}: no series is longer than --min-context (by default a season and four patches); nothing was scored",
            input.display()
        )));
    }
    finish(&args, &parts, index, &totals, &name)?;
    eprintln!(
        "loopcast: scored {} points of {} series into {}: {} flagged in {} anomalies at level {}; {} action moves{}{}",
        totals.points,
        totals.series - totals.skipped,
        args.out.display(),
        totals.flagged[0],
        totals.anomalies,
        args.level,
        totals.changes,
        if totals.skipped > 0 {
            format!("; {} series too short to score", totals.skipped)
        } else {
            String::new()
        },
        if resumed > 0 { format!(" ({resumed} chunks resumed)") } else { String::new() },
    );
    Ok(())
}

/// Detects over one chunk of series and writes its points.
#[allow(clippy::too_many_arguments)]
fn detect_chunk(
    model: &LoopedWorldModel,
    chunk: &[RegularSeries],
    channels: &[loopcast_core::ChannelSpec],
    frequency: loopcast_core::Frequency,
    config: &DetectConfig,
    shape: Shape,
    schema: &SchemaRef,
    parts: &Path,
    index: usize,
) -> Result<ChunkResult> {
    let mut result = ChunkResult::default();
    let mut writer =
        AtomicParquetWriter::create(parts.join(format!("chunk-{index:05}.parquet")), schema.clone())?;
    for series in chunk {
        result.series += 1;
        let batches = series_windows(series, channels, shape, WINDOWS_PER_BATCH)?;
        if batches.is_empty() {
            result.skipped += 1;
            continue;
        }
        let found = detect_series(model, &batches, frequency, config)?;
        if found.points.is_empty() {
            result.skipped += 1;
            continue;
        }
        result.points += found.points.len();
        for (count, detector) in result.flagged.iter_mut().zip(Detector::ALL) {
            *count += found.points.iter().filter(|p| p.flagged_by(detector)).count();
        }
        writer.write(&points_batch(schema, &found.points)?)?;
        result.anomalies += found.anomalies.len();
        result.changes += found.changes.len();
        result.anomalies_csv.push_str(&csv_rows(found.anomalies.iter().map(AnomalyRow::from))?);
        result.changes_csv.push_str(&csv_rows(found.changes.iter().map(ChangeRow::from))?);
    }
    writer.finish()?;
    Ok(result)
}

/// The columns of `points.parquet`.
fn points_schema() -> SchemaRef {
    let mut fields = vec![
        Field::new("series_id", DataType::Utf8, false),
        Field::new("channel", DataType::Utf8, false),
        Field::new("timestamp", DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())), false),
    ];
    for name in ["value", "median", "lower", "upper", "tail_probability", "score", "p_value"] {
        fields.push(Field::new(name, DataType::Float64, false));
    }
    for detector in Detector::ALL {
        fields.push(Field::new(
            format!("flagged_{}", detector.as_str().replace('-', "_")),
            DataType::Boolean,
            false,
        ));
    }
    Arc::new(Schema::new(fields))
}

fn points_batch(schema: &SchemaRef, points: &[PointScore]) -> Result<RecordBatch> {
    let (mut ids, mut channels) = (StringBuilder::new(), StringBuilder::new());
    let mut times = TimestampMicrosecondBuilder::new().with_timezone("UTC");
    let mut numbers: Vec<Float64Builder> = (0..7).map(|_| Float64Builder::new()).collect();
    let mut flags: Vec<BooleanBuilder> = (0..3).map(|_| BooleanBuilder::new()).collect();
    for p in points {
        ids.append_value(&p.series);
        channels.append_value(&p.channel);
        times.append_value(p.timestamp);
        for (builder, value) in numbers.iter_mut().zip([
            p.value,
            p.median,
            p.lower,
            p.upper,
            p.tail_probability,
            p.score,
            p.p_value,
        ]) {
            builder.append_value(value);
        }
        for (builder, detector) in flags.iter_mut().zip(Detector::ALL) {
            builder.append_value(p.flagged_by(detector));
        }
    }
    let mut arrays: Vec<ArrayRef> =
        vec![Arc::new(ids.finish()), Arc::new(channels.finish()), Arc::new(times.finish())];
    arrays.extend(numbers.iter_mut().map(|b| Arc::new(b.finish()) as ArrayRef));
    arrays.extend(flags.iter_mut().map(|b| Arc::new(b.finish()) as ArrayRef));
    Ok(RecordBatch::try_new(schema.clone(), arrays)?)
}

/// Creates `parts` for `fingerprint`, or checks that the parts there were asked the same.
fn claim(parts: &Path, fingerprint: &Fingerprint) -> Result<()> {
    std::fs::create_dir_all(parts).with_context(|| format!("cannot create {}", parts.display()))?;
    let path = parts.join("detect.json");
    match std::fs::read_to_string(&path) {
        Ok(text) => {
            let existing: Fingerprint = serde_json::from_str(&text)
                .with_context(|| format!("{}: not a detection record", path.display()))?;
            if &existing != fingerprint {
                bail!(UsageError(format!(
                    "{} holds the parts of a run with other settings; remove it to start over",
                    parts.display()
                )));
            }
            Ok(())
        }
        Err(_) => write_atomically(&path, serde_json::to_string_pretty(fingerprint)?.as_bytes()),
    }
}

/// Joins the parts into the results and removes them.
fn finish(args: &DetectArgs, parts: &Path, chunks: usize, totals: &ChunkResult, model: &str) -> Result<()> {
    let points: Vec<PathBuf> = (0..chunks).map(|i| parts.join(format!("chunk-{i:05}.parquet"))).collect();
    concat_parquet(&points, args.out.join("points.parquet"))?;
    let anomalies = format!("{ANOMALIES_HEADER}{}", totals.anomalies_csv);
    write_atomically(&args.out.join("anomalies.csv"), anomalies.as_bytes())?;
    let changes = format!("{CHANGES_HEADER}{}", totals.changes_csv);
    write_atomically(&args.out.join("changes.csv"), changes.as_bytes())?;
    let flagged: serde_json::Map<String, serde_json::Value> = Detector::ALL
        .iter()
        .zip(totals.flagged)
        .map(|(d, n)| (d.as_str().to_string(), serde_json::json!(n)))
        .collect();
    let summary = serde_json::json!({
        "model": model,
        "level": args.level,
        "action_futures": !args.hide_actions,
        "series": totals.series,
        "series_too_short": totals.skipped,
        "points": totals.points,
        "flagged": flagged,
        "anomalies": totals.anomalies,
        "action_moves": totals.changes,
    });
    write_atomically(&args.out.join("summary.json"), serde_json::to_string_pretty(&summary)?.as_bytes())?;
    std::fs::remove_dir_all(parts).with_context(|| format!("cannot remove {}", parts.display()))
}

/// `rows` as CSV lines, without a header.
fn csv_rows<T: Serialize>(rows: impl Iterator<Item = T>) -> Result<String> {
    let mut writer = csv::WriterBuilder::new().has_headers(false).from_writer(Vec::new());
    for row in rows {
        writer.serialize(row)?;
    }
    let bytes = writer.into_inner().map_err(|e| anyhow::anyhow!("CSV: {e}"))?;
    Ok(String::from_utf8(bytes)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The headers written before the rows are the rows' own field names.
    #[test]
    fn the_csv_headers_name_the_row_fields() {
        let header = |row: &dyn Header| row.header();
        let anomaly = AnomalyRow {
            series_id: "s".into(),
            channel: "c".into(),
            start: "a".into(),
            end: "b".into(),
            points: 1,
            peak_score: 2.0,
            direction: "up".into(),
        };
        let change = ChangeRow {
            series_id: "s".into(),
            action: "a".into(),
            timestamp: "t".into(),
            before: 1.0,
            after: 2.0,
            score_before: None,
            score_after: Some(1.0),
            flagged_after: 0,
        };
        assert_eq!(header(&anomaly), ANOMALIES_HEADER);
        assert_eq!(header(&change), CHANGES_HEADER);
    }

    trait Header {
        fn header(&self) -> String;
    }

    impl<T: Serialize> Header for T {
        fn header(&self) -> String {
            let mut writer = csv::Writer::from_writer(Vec::new());
            writer.serialize(self).unwrap();
            let text = String::from_utf8(writer.into_inner().unwrap()).unwrap();
            format!("{}\n", text.lines().next().unwrap())
        }
    }
}
