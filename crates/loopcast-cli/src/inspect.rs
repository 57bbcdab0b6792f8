//! `loopcast inspect`: what is in a telemetry file, and what ingestion would do with it.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result};
use chrono::{DateTime, SecondsFormat};
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use loopcast_core::{ChannelMapping, Frequency, Season, SeasonSource};
use loopcast_data::{IngestReport, InputFormat, Layout, ReadOptions, TelemetryReader};

/// Arguments of `loopcast inspect`.
#[derive(Debug, Args)]
pub(crate) struct InspectArgs {
    /// The telemetry file (.parquet, .csv, .arrow/.arrows/.ipc/.feather).
    file: PathBuf,
    /// Table layout: one value per row (long) or one column per channel (wide).
    #[arg(long, value_enum, default_value_t = LayoutArg::Long)]
    format: LayoutArg,
    /// Container format, when the extension does not say.
    #[arg(long, value_enum)]
    file_type: Option<FileTypeArg>,
    /// Mapping file (TOML or JSON) naming columns and channel roles; needed for wide.
    #[arg(long)]
    mapping: Option<PathBuf>,
    /// SQL predicate over the file's columns, e.g. "unique_id = 'T1'".
    #[arg(long = "where", value_name = "SQL")]
    filter: Option<String>,
    /// Grid step (5m, 1h, 1d, 1mo, ...); inferred when absent.
    #[arg(long)]
    freq: Option<Frequency>,
    /// Skip the sort: rows are already grouped by series and in time order.
    #[arg(long)]
    assume_sorted: bool,
    /// Fail on the first bad row instead of reporting it.
    #[arg(long)]
    strict: bool,
    /// History steps each series' seasonal period is read from (the model's context).
    #[arg(long, default_value_t = 512, value_parser = clap::value_parser!(u32).range(2..))]
    context: u32,
    /// Print the report as JSON.
    #[arg(long)]
    json: bool,
}

/// `--format`: the table layout.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub(crate) enum LayoutArg {
    Long,
    Wide,
}

impl From<LayoutArg> for Layout {
    fn from(layout: LayoutArg) -> Self {
        match layout {
            LayoutArg::Long => Layout::Long,
            LayoutArg::Wide => Layout::Wide,
        }
    }
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum FileTypeArg {
    Parquet,
    Csv,
    Arrow,
}

/// Runs `loopcast inspect`.
pub(crate) async fn run(args: InspectArgs) -> Result<()> {
    let mapping = args.mapping.as_deref().map(load_mapping).transpose()?;
    let options = ReadOptions {
        format: args.file_type.map(|t| match t {
            FileTypeArg::Parquet => InputFormat::Parquet,
            FileTypeArg::Csv => InputFormat::Csv,
            FileTypeArg::Arrow => InputFormat::ArrowIpc,
        }),
        layout: args.format.into(),
        mapping,
        filter: args.filter,
        frequency: args.freq,
        strict: args.strict,
        assume_sorted: args.assume_sorted,
        ..ReadOptions::default()
    };
    let reader = TelemetryReader::open(&args.file, options).await?;
    let progress = ProgressBar::new_spinner().with_style(
        ProgressStyle::with_template("{spinner} {pos} series read ({per_sec}) {elapsed}")
            .expect("valid template"),
    );
    progress.enable_steady_tick(Duration::from_millis(200));
    let mut seasons = Seasons::new();
    let report = reader
        .for_each_series(|series| {
            *seasons.entry(series.found_season(args.context as usize)).or_default() += 1;
            progress.inc(1);
            Ok(())
        })
        .await;
    progress.finish_and_clear();
    let report = report?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&to_json(&report, &seasons))?);
    } else {
        print!("{}", to_text(&report, &seasons));
    }
    Ok(())
}

/// Reads a mapping file; `.json` files as JSON, anything else as TOML.
pub(crate) fn load_mapping(path: &Path) -> Result<ChannelMapping> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("{}: cannot read mapping", path.display()))?;
    let is_json = path.extension().is_some_and(|e| e.eq_ignore_ascii_case("json"));
    let mapping = if is_json { ChannelMapping::from_json(&text) } else { ChannelMapping::from_toml(&text) };
    mapping.map_err(|source| loopcast_data::DataError::Mapping { path: path.to_path_buf(), source }.into())
}

/// How many series forecast with each seasonal period.
type Seasons = BTreeMap<Season, u64>;

fn rfc3339(micros: Option<i64>) -> Option<String> {
    micros.and_then(DateTime::from_timestamp_micros).map(|t| t.to_rfc3339_opts(SecondsFormat::AutoSi, true))
}

fn to_json(report: &IngestReport, seasons: &Seasons) -> serde_json::Value {
    let mut value = serde_json::to_value(report).expect("a report serialises");
    let object = value.as_object_mut().expect("a report is an object");
    let seasons: Vec<serde_json::Value> = seasons
        .iter()
        .map(|(season, series)| {
            serde_json::json!({"steps": season.steps, "source": season.source.as_str(), "series": series})
        })
        .collect();
    object.insert("seasons".into(), seasons.into());
    object.insert("start".into(), rfc3339(report.start).into());
    object.insert("end".into(), rfc3339(report.end).into());
    object.insert("gap_share".into(), report.gap_share().into());
    if let Some(values) = object.get_mut("values").and_then(|v| v.as_object_mut()) {
        values.insert("total".into(), report.values.total().into());
    }
    value
}

fn to_text(report: &IngestReport, seasons: &Seasons) -> String {
    use std::fmt::Write;
    let mut out = String::new();
    let v = &report.values;
    let _ = writeln!(out, "file        {}", report.file);
    let _ = writeln!(out, "series      {}", report.series);
    let _ = writeln!(
        out,
        "rows        {} ({} values: {} used, {} missing, {} duplicate, {} rejected)",
        report.rows,
        v.total(),
        v.used,
        v.missing,
        v.duplicates,
        v.rejected
    );
    let roles = match report.role_source {
        loopcast_data::RoleSource::Mapping => "roles from the mapping",
        loopcast_data::RoleSource::RoleColumn => "roles from the role column",
        loopcast_data::RoleSource::DefaultAllTargets => {
            "no mapping or role column: every channel taken as a target"
        }
    };
    let _ = writeln!(out, "channels    {} ({roles})", report.channels.len());
    for c in &report.channels {
        let future = if c.known_future { ", known in the future" } else { "" };
        let _ = writeln!(out, "  {:<24} {:<9} {}{future}", c.name, c.role.as_str(), c.aggregation);
    }
    let _ = writeln!(
        out,
        "time range  {} .. {}",
        rfc3339(report.start).unwrap_or_else(|| "-".into()),
        rfc3339(report.end).unwrap_or_else(|| "-".into())
    );
    let frequency = report.frequency.map_or_else(|| "-".to_string(), |f| f.to_string());
    let how = if report.frequency_inferred { "inferred" } else { "given" };
    let _ = writeln!(out, "frequency   {frequency} ({how})");
    for (i, (season, series)) in seasons.iter().enumerate() {
        let label = if i == 0 { "season" } else { "" };
        let from = match season.source {
            SeasonSource::Calendar => "the calendar's",
            SeasonSource::Data => "found in the data",
            SeasonSource::Given => "given",
            SeasonSource::None => "none",
        };
        let _ = writeln!(out, "{label:<11} {} steps ({from}): {series} series", season.steps);
    }
    let _ = writeln!(
        out,
        "gaps        {:.2}% of {} grid cells ({} unobserved)",
        100.0 * report.gap_share(),
        report.cells,
        report.gap_cells
    );
    if report.rejected_by_reason.is_empty() {
        let _ = writeln!(out, "rejected    none");
    } else {
        let _ = writeln!(out, "rejected    {}", v.rejected);
        for (reason, count) in &report.rejected_by_reason {
            let _ = writeln!(out, "  {reason:<24} {count}");
        }
        for rejection in &report.rejection_samples {
            let _ = writeln!(out, "  {rejection}");
        }
    }
    out
}
