//! `loopcast eval`: rolling-origin backtests of loopcast and classical baselines on the
//! same windows of any long or wide telemetry file, or of a suite of such files.
//!
//! Each dataset writes `summary.md`, `summary.json`, `windows.csv` (one row per series,
//! channel, window and model) and SVG fan charts under `--out`; a suite adds the
//! across-dataset geometric means.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;

use anyhow::{Context, Result, bail};
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use loopcast_core::{ChannelEntry, ChannelMapping, Role};
use loopcast_data::{Layout, Origins, ReadOptions, RoleSource, TelemetryReader, WindowBatcher, WindowSpec};
use loopcast_eval::counterfactual::TwinSpec;
use loopcast_eval::report::{fan_chart, markdown_table, write_atomically, write_csv};
use loopcast_eval::{Backtest, BacktestConfig, ModelName, ModelSummary, metrics};
use loopcast_model::{DeviceKind, ForecastOptions, LoopedWorldModel};
use loopcast_sim::Topology;
use serde::{Deserialize, Serialize};

use crate::inspect::{LayoutArg, load_mapping};
use crate::twins::{self, TwinsRun};
use crate::{Interrupted, UsageError, interrupt_flag, models};

/// Whether a backtest gives loopcast the action channels' future (`--action-futures`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum ActionFutures {
    /// The file's own future actions are the plan (a what-if).
    Known,
    /// Unknown, as in production.
    Hidden,
}

/// Arguments of `loopcast eval`.
#[derive(Debug, Args)]
pub(crate) struct EvalArgs {
    /// The telemetry file (Parquet, CSV or Arrow IPC).
    #[arg(
        long,
        required_unless_present_any = ["suite", "twins", "detect"],
        conflicts_with_all = ["suite", "twins", "detect"]
    )]
    data: Option<PathBuf>,
    /// A suite of datasets (TOML, `[[dataset]]` tables with the flags below as keys, see
    /// configs/eval-dev.toml), scored in one run with across-dataset means.
    #[arg(long, conflicts_with_all = ["twins", "detect"])]
    suite: Option<PathBuf>,
    /// Instead of a file: score counterfactual effects (loopcast, the action-blind
    /// ablation, ARX) and the planner on this many held-out simulator twin episodes.
    #[arg(long, conflicts_with = "detect")]
    twins: Option<usize>,
    /// Instead of a file: score anomaly detection (loopcast, seasonal-naive residuals,
    /// seasonal hybrid ESD) on this many simulated services with known incidents (flash
    /// crowds, OOM restarts, deploys), a week of five-minute steps each.
    #[arg(long)]
    pub(crate) detect: Option<usize>,
    /// The level of `--detect`: points outside the central band of this probability are
    /// flagged.
    #[arg(long, default_value_t = 0.99, requires = "detect")]
    pub(crate) level: f64,
    /// First seed of the twins or the detection services [default:
    /// loopcast_eval::counterfactual::HELD_OUT_SEEDS].
    #[arg(long)]
    pub(crate) first_seed: Option<u64>,
    /// Plans per twin episode: the operator's own and `plans − 1` departures.
    #[arg(long, default_value_t = 4, requires = "twins")]
    plans: usize,
    /// The world of the twins: `sre`, the SRE world training draws from, or `two-tier`,
    /// the held-out world whose replicas call a downstream of fixed capacity
    /// (docs/SIMULATOR.md).
    #[arg(long, default_value = "sre", requires = "twins")]
    world: Topology,
    /// Planning problems scored with the twins (`0`: none) [default: the twins' count].
    #[arg(long, requires = "twins")]
    planner_problems: Option<usize>,
    /// Schedules the planner evaluates per problem.
    #[arg(long, default_value_t = 48, requires = "twins")]
    planner_budget: usize,
    /// Table layout of `--data`.
    #[arg(long, value_enum, default_value_t = LayoutArg::Long)]
    format: LayoutArg,
    /// Target channels to score, comma-separated (the value column of a long file without
    /// a channel column is one channel, named after the column, e.g. `y`). With a
    /// `--mapping` or a file with a `role` column, the roles come from there and this
    /// only selects which of its targets are scored (all of them when absent); otherwise
    /// it names the targets and is required.
    #[arg(long, value_delimiter = ',')]
    target: Vec<String>,
    /// A mapping file (TOML, or JSON by extension) giving every channel's role, as
    /// `loopcast inspect` and `loopcast score` take it: actions and covariates in it are
    /// fed to the model with their known future, as a what-if would.
    #[arg(long)]
    mapping: Option<PathBuf>,
    /// Whether loopcast sees the action channels' future in `--data` backtests: `known`
    /// (a what-if: the file's own future actions are the plan) or `hidden` (as forecasts
    /// meet production, where the operator's coming decisions are unknown, and would leak
    /// the load they answer). Covariates keep their known future either way.
    #[arg(long, value_enum, default_value_t = ActionFutures::Known)]
    action_futures: ActionFutures,
    /// Covariate channels whose future is known (calendar, weather, …), comma-separated.
    #[arg(long, value_delimiter = ',')]
    covariates: Vec<String>,
    /// Season length in steps: MASE's scale and seasonal naive's period.
    #[arg(long)]
    season: Option<usize>,
    /// Steps forecast per window.
    #[arg(long)]
    horizon: Option<usize>,
    /// Context steps per window.
    #[arg(long)]
    context: Option<usize>,
    /// Forecast origins per series: the last N windows before the end of the data.
    #[arg(long, default_value_t = 1)]
    origins: usize,
    /// Steps between origins [default: the horizon].
    #[arg(long)]
    stride: Option<usize>,
    /// Models to run, comma-separated (loopcast, snaive, naive, ets, mstl); seasonal
    /// naive always runs, as the reference of every relative score [default: a suite's
    /// `models`, else loopcast,snaive,ets,mstl].
    #[arg(long, value_delimiter = ',')]
    models: Option<Vec<ModelName>>,
    /// MSTL's periods, comma-separated [default: the season].
    #[arg(long, value_delimiter = ',')]
    mstl_periods: Vec<usize>,
    /// A SQL predicate over the file's columns, to score a subset of it.
    #[arg(long)]
    filter: Option<String>,
    /// Where results go (one subdirectory per dataset of a suite).
    #[arg(long, default_value = "eval-out")]
    pub(crate) out: PathBuf,
    /// Fan charts to draw: the last window of the first N series × target channels.
    #[arg(long, default_value_t = 6)]
    charts: usize,
    /// Most loops per patch [default: the model's].
    #[arg(long)]
    max_loops: Option<usize>,
    /// Exit threshold of the loop gate [default: the model's].
    #[arg(long)]
    exit_threshold: Option<f64>,
    /// Fit each series' interval widths on up to N backtests over the end of its own
    /// context, one horizon apart (0: the model's global interval scale alone).
    #[arg(long, default_value_t = 0)]
    series_calibration: usize,
    /// A model directory; the embedded shipped model when absent.
    #[arg(long)]
    pub(crate) model: Option<PathBuf>,
    /// `cpu` (burn flex) or `wgpu`.
    #[arg(long, default_value = "cpu")]
    pub(crate) device: String,
}

/// One dataset of a backtest: what to read and how to cut it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Dataset {
    /// Name in tables and of the output subdirectory.
    pub(crate) name: String,
    pub(crate) data: PathBuf,
    #[serde(default)]
    pub(crate) format: Layout,
    /// Targets to score; with `mapping` or a role column, a selection among its targets.
    #[serde(default)]
    pub(crate) target: Vec<String>,
    /// A mapping file with every channel's role.
    #[serde(default)]
    pub(crate) mapping: Option<PathBuf>,
    #[serde(default)]
    pub(crate) covariates: Vec<String>,
    pub(crate) season: usize,
    pub(crate) horizon: usize,
    pub(crate) context: usize,
    #[serde(default = "one")]
    pub(crate) origins: usize,
    #[serde(default)]
    pub(crate) stride: Option<usize>,
    #[serde(default)]
    pub(crate) mstl_periods: Vec<usize>,
    #[serde(default)]
    pub(crate) filter: Option<String>,
}

fn one() -> usize {
    1
}

/// A suite file: datasets, and optionally the models to run on all of them.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Suite {
    #[serde(default)]
    models: Option<Vec<ModelName>>,
    dataset: Vec<Dataset>,
}

/// What `summary.json` holds for one dataset.
#[derive(Debug, Serialize)]
struct DatasetResult<'a> {
    dataset: &'a Dataset,
    model: &'a str,
    series: usize,
    windows: usize,
    summary: &'a [ModelSummary],
}

/// Runs `loopcast eval`.
pub(crate) async fn run(args: EvalArgs) -> Result<()> {
    if let Some(episodes) = args.twins {
        return run_twins(&args, episodes);
    }
    if let Some(services) = args.detect {
        return crate::eval_detect::run(&args, services);
    }
    let (datasets, models) = match &args.suite {
        Some(path) => {
            let text =
                std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
            let suite: Suite =
                toml::from_str(&text).map_err(|e| UsageError(format!("{}: {e}", path.display())))?;
            if suite.dataset.is_empty() {
                bail!(UsageError(format!("{}: no [[dataset]]", path.display())));
            }
            // The flag, when given, wins over the file.
            let models = args.models.clone().or(suite.models).unwrap_or_else(default_models);
            (suite.dataset, models)
        }
        None => (vec![dataset_from_flags(&args)?], args.models.clone().unwrap_or_else(default_models)),
    };
    for dataset in &datasets {
        check(dataset)?;
    }
    let model = if models.contains(&ModelName::Loopcast) {
        let device = args.device.parse::<DeviceKind>()?.device()?;
        Some(models::load(args.model.as_deref(), &device)?)
    } else {
        None
    };
    let options = forecast_options(&args);
    let suite = datasets.len() > 1;
    let mut tables = Vec::new();
    for dataset in &datasets {
        let out = if suite { args.out.join(&dataset.name) } else { args.out.clone() };
        let config = BacktestConfig {
            season: dataset.season,
            mstl_periods: dataset.mstl_periods.clone(),
            models: models.clone(),
            forecast_options: options.clone(),
            chart_samples: args.charts,
            // The dataset's own, once its roles are read (`open_with_roles`).
            targets: Vec::new(),
            action_futures: args.action_futures == ActionFutures::Known,
        };
        let loopcast = model.as_ref().map(|(m, _, _)| m);
        let backtest = backtest(dataset, config, loopcast).await?;
        let name = model.as_ref().map_or("–", |(_, name, _)| name.as_str());
        let summary = write_results(dataset, &backtest, name, &out)?;
        println!("\n{} ({})\n\n{}", dataset.name, dataset.data.display(), markdown_table(&summary));
        tables.push((dataset.name.clone(), summary));
    }
    if suite {
        let across = across_datasets(&tables);
        println!("\nAcross datasets (geometric mean)\n\n{across}");
        let text =
            format!("# Across datasets: geometric means of the per-dataset relative scores\n\n{across}");
        std::fs::create_dir_all(&args.out)?;
        write_atomically(&args.out.join("summary.md"), |f| std::io::Write::write_all(f, text.as_bytes()))?;
    }
    eprintln!("loopcast: results in {}", args.out.display());
    Ok(())
}

/// `loopcast eval --twins N`, with the context and horizon of the flags (default 512, 64).
fn run_twins(args: &EvalArgs, episodes: usize) -> Result<()> {
    let defaults = TwinSpec::default();
    let run = TwinsRun {
        twins: TwinSpec {
            first_seed: args.first_seed.unwrap_or(defaults.first_seed),
            episodes,
            context: args.context.unwrap_or(defaults.context),
            horizon: args.horizon.unwrap_or(defaults.horizon),
            plans: args.plans,
            topology: args.world,
        },
        problems: args.planner_problems.unwrap_or(episodes),
        planner_budget: args.planner_budget,
    };
    let device = args.device.parse::<DeviceKind>()?.device()?;
    let (model, name, _) = models::load(args.model.as_deref(), &device)?;
    twins::run(&run, &model, &name, &forecast_options(args), &args.out)
}

/// The models a backtest runs when neither the flag nor a suite names them.
fn default_models() -> Vec<ModelName> {
    vec![ModelName::Loopcast, ModelName::Snaive, ModelName::Ets, ModelName::Mstl]
}

/// The loop options of the flags.
fn forecast_options(args: &EvalArgs) -> ForecastOptions {
    ForecastOptions {
        max_loops: args.max_loops,
        exit_threshold: args.exit_threshold,
        series_calibration: args.series_calibration,
        ..ForecastOptions::default()
    }
}

fn dataset_from_flags(args: &EvalArgs) -> Result<Dataset> {
    let data = args.data.clone().expect("clap requires --data without --suite");
    let required = |v: Option<usize>, flag: &str| {
        v.ok_or_else(|| UsageError(format!("--{flag} is required (or give a --suite)")))
    };
    Ok(Dataset {
        name: data.file_stem().map_or("data".into(), |s| s.to_string_lossy().to_string()),
        format: args.format.into(),
        target: args.target.clone(),
        mapping: args.mapping.clone(),
        covariates: args.covariates.clone(),
        season: required(args.season, "season")?,
        horizon: required(args.horizon, "horizon")?,
        context: required(args.context, "context")?,
        origins: args.origins,
        stride: args.stride,
        mstl_periods: args.mstl_periods.clone(),
        filter: args.filter.clone(),
        data,
    })
}

pub(crate) fn check(dataset: &Dataset) -> Result<()> {
    let name = &dataset.name;
    for (field, value) in [
        ("season", dataset.season),
        ("horizon", dataset.horizon),
        ("context", dataset.context),
        ("origins", dataset.origins),
        ("stride", dataset.stride.unwrap_or(1)),
    ] {
        if value == 0 {
            bail!(UsageError(format!("{name}: {field} must be at least 1")));
        }
    }
    if let Some(both) = dataset.target.iter().find(|t| dataset.covariates.contains(t)) {
        bail!(UsageError(format!("{name}: `{both}` is both a target and a covariate")));
    }
    if dataset.mapping.is_some() && !dataset.covariates.is_empty() {
        bail!(UsageError(format!(
            "{name}: covariates are given in the mapping file, not with `covariates` beside it"
        )));
    }
    Ok(())
}

/// Opens `dataset`'s file with its channels' roles: from its mapping file when it has
/// one, else from the file's `role` column when it has one, else from its `target` and
/// `covariates` (the targets are required then). Returns the reader and the target
/// channels to score: `target` where given (each must be a target of the file), else
/// every target.
pub(crate) async fn open_with_roles(dataset: &Dataset) -> Result<(TelemetryReader, Vec<String>)> {
    let name = &dataset.name;
    let options = |mapping: Option<ChannelMapping>| ReadOptions {
        layout: dataset.format,
        mapping,
        filter: dataset.filter.clone(),
        ..ReadOptions::default()
    };
    let open = |mapping| TelemetryReader::open(&dataset.data, options(mapping));
    let reader = match &dataset.mapping {
        Some(path) => open(Some(load_mapping(path)?)).await?,
        None => {
            let from_file = match dataset.format {
                Layout::Long => Some(open(None).await?)
                    .filter(|reader| reader.report().role_source == RoleSource::RoleColumn),
                Layout::Wide => None,
            };
            match from_file {
                Some(reader) if dataset.covariates.is_empty() => reader,
                Some(_) => bail!(UsageError(format!(
                    "{name}: {} has a role column, which gives the covariates; drop `covariates`",
                    dataset.data.display()
                ))),
                None if dataset.target.is_empty() => bail!(UsageError(format!(
                    "{name}: `target` is required: {} has no role column and no mapping was given",
                    dataset.data.display()
                ))),
                None => open(Some(flag_mapping(dataset))).await?,
            }
        }
    };
    let targets: Vec<String> =
        reader.channels().iter().filter(|c| c.role == Role::Target).map(|c| c.name.clone()).collect();
    if let Some(other) = dataset.target.iter().find(|t| !targets.contains(t)) {
        let channels = || reader.channels().iter().map(|c| c.name.clone()).collect::<Vec<_>>();
        if !channels().contains(other) {
            bail!(loopcast_data::DataError::ChannelNotInData {
                path: dataset.data.clone(),
                channel: other.clone(),
                available: channels().join(", "),
            });
        }
        bail!(UsageError(format!(
            "{name}: `{other}` is not a target of {} (its targets: {})",
            dataset.data.display(),
            targets.join(", ")
        )));
    }
    let scored = if dataset.target.is_empty() { targets } else { dataset.target.clone() };
    Ok((reader, scored))
}

/// The mapping that makes `dataset`'s targets targets and its covariates known-future
/// covariates; other channels of the file are left out.
fn flag_mapping(dataset: &Dataset) -> ChannelMapping {
    let mut channels = BTreeMap::new();
    for target in &dataset.target {
        channels.insert(target.clone(), ChannelEntry::Role(Role::Target));
    }
    for covariate in &dataset.covariates {
        let known =
            ChannelEntry::Detailed { role: Role::Covariate, aggregation: None, known_future: Some(true) };
        channels.insert(covariate.clone(), known);
    }
    ChannelMapping { channels, ..ChannelMapping::default() }
}

/// Windows per model call.
const BATCH: usize = 64;

pub(crate) async fn backtest(
    dataset: &Dataset,
    config: BacktestConfig,
    model: Option<&LoopedWorldModel>,
) -> Result<Backtest> {
    let (mut reader, scored) = open_with_roles(dataset).await?;
    let config = BacktestConfig { targets: scored, ..config };
    let spec = WindowSpec {
        context: dataset.context,
        horizon: dataset.horizon,
        origins: Origins::Backtest {
            windows: dataset.origins,
            stride: dataset.stride.unwrap_or(dataset.horizon),
        },
    };
    let mut batcher = WindowBatcher::new(spec, reader.channels(), BATCH)?;
    let mut backtest = Backtest::new(config)?;
    let bar = ProgressBar::new(reader.total_rows()).with_style(
        ProgressStyle::with_template("{prefix} {bar:30} {percent:>3}% of rows ({elapsed}, eta {eta}) {msg}")
            .expect("valid template"),
    );
    bar.set_prefix(dataset.name.clone());
    let interrupted = interrupt_flag();
    let (mut series, mut windows) = (0usize, 0usize);
    let mut run = |batch: loopcast_data::WindowBatch, backtest: &mut Backtest| -> Result<()> {
        windows += batch.len();
        backtest.push(model, &batch)?;
        Ok(())
    };
    while let Some(next) = reader.next_series().await? {
        series += 1;
        for batch in batcher.push(&next) {
            run(batch, &mut backtest)?;
        }
        bar.set_position(reader.report().rows);
        bar.set_message(format!("{series} series"));
        if interrupted.load(Ordering::SeqCst) {
            bar.abandon_with_message("interrupted");
            bail!(Interrupted(format!(
                "{}: interrupted after {series} series; nothing written",
                dataset.name
            )));
        }
    }
    if let Some(batch) = batcher.finish() {
        run(batch, &mut backtest)?;
    }
    bar.finish_and_clear();
    if windows == 0 {
        bail!(loopcast_data::DataError::WindowSpec(format!(
            "{}: no series of {} is long enough for a {}-step horizon",
            dataset.name,
            dataset.data.display(),
            dataset.horizon
        )));
    }
    Ok(backtest)
}

/// Writes a dataset's summary, window scores and fan charts under `out`.
fn write_results(
    dataset: &Dataset,
    backtest: &Backtest,
    model: &str,
    out: &Path,
) -> Result<Vec<ModelSummary>> {
    std::fs::create_dir_all(out.join("charts"))
        .with_context(|| format!("cannot create {}", out.display()))?;
    let summary = backtest.summary();
    let scores = backtest.scores();
    let windows = scores.iter().filter(|s| s.model == ModelName::Snaive).count();
    let series = {
        let mut names: Vec<&str> = scores.iter().map(|s| s.series.as_str()).collect();
        names.sort_unstable();
        names.dedup();
        names.len()
    };
    let result = DatasetResult { dataset, model, series, windows, summary: &summary };
    let json = serde_json::to_vec_pretty(&result)?;
    write_atomically(&out.join("summary.json"), |f| std::io::Write::write_all(f, &json))?;
    let markdown = format!(
        "# {} ({})\n\nModel `{model}`; {series} series, {windows} windows × targets; season {}, horizon {}, \
         context {}, {} origins, stride {}.\n\n{}",
        dataset.name,
        dataset.data.display(),
        dataset.season,
        dataset.horizon,
        dataset.context,
        dataset.origins,
        dataset.stride.unwrap_or(dataset.horizon),
        markdown_table(&summary)
    );
    write_atomically(&out.join("summary.md"), |f| std::io::Write::write_all(f, markdown.as_bytes()))?;
    write_csv(&out.join("windows.csv"), scores)?;
    for (i, sample) in backtest.samples().iter().enumerate() {
        let file: String = format!("{:02}-{}-{}", i, sample.series, sample.channel)
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() || c == '-' || c == '_' { c } else { '_' })
            .collect();
        fan_chart(&out.join("charts").join(format!("{file}.svg")), sample).map_err(anyhow::Error::msg)?;
    }
    Ok(summary)
}

/// The across-dataset table: per model, the geometric mean over datasets of its relative
/// MASE and WQL.
fn across_datasets(tables: &[(String, Vec<ModelSummary>)]) -> String {
    let mut out = String::from("| model | relative MASE | relative WQL | datasets |\n|---|---:|---:|---:|\n");
    let models: Vec<ModelName> =
        tables.first().map(|(_, s)| s.iter().map(|m| m.model).collect()).unwrap_or_default();
    for model in models {
        let rows: Vec<&ModelSummary> =
            tables.iter().filter_map(|(_, s)| s.iter().find(|m| m.model == model)).collect();
        let mean = |f: fn(&ModelSummary) -> Option<f64>| {
            metrics::geometric_mean(rows.iter().filter_map(|m| f(m)))
                .map_or("–".into(), |v| format!("{v:.3}"))
        };
        out.push_str(&format!(
            "| {model} | {} | {} | {} |\n",
            mean(|m| m.relative_mase),
            mean(|m| m.relative_wql),
            rows.len()
        ));
    }
    out
}
