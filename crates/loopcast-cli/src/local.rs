//! `loopcast forecast | whatif | plan | score`: the service's own logic, run locally on
//! files without a server. `forecast`, `whatif` and `plan` read a request body of the HTTP
//! API (docs/API.md) and write its answer; `score` forecasts every series of a telemetry
//! file into Parquet, resumably.

use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use loopcast_model::DeviceKind;
use loopcast_serve::api::{ComputeOptions, MissingActionsInput};
use loopcast_serve::{Problem, ScoreError, ScoreProgress, ScoreSpec, ServeConfig, Shard, Worker};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::inspect::{LayoutArg, load_mapping};
use crate::prometheus::{self, PrometheusArgs};
use crate::{Interrupted, interrupt_flag, models};

/// Where the model comes from, for every local command.
#[derive(Debug, Args)]
pub(crate) struct ModelArgs {
    /// A model directory (`config.json` + `weights.bpk`); the embedded shipped model when
    /// absent.
    #[arg(long)]
    model: Option<PathBuf>,
    /// `cpu` (burn flex) or `wgpu` (Vulkan, Metal, DX12).
    #[arg(long, default_value = "cpu")]
    device: String,
}

/// Arguments of `loopcast forecast`, `whatif` and `plan`.
#[derive(Debug, Args)]
pub(crate) struct RequestArgs {
    /// A request body as the HTTP API takes it (JSON; `examples/requests/` has one per
    /// endpoint).
    request: PathBuf,
    /// Write the answer here instead of standard output.
    #[arg(long, short)]
    output: Option<PathBuf>,
    #[command(flatten)]
    model: ModelArgs,
}

/// A request the service refused: the file, the field and why (exit status 65).
#[derive(Debug, thiserror::Error)]
#[error("{file}: {field}{detail}")]
pub(crate) struct RequestError {
    file: String,
    field: String,
    detail: String,
}

impl RequestError {
    fn new(file: &Path, problem: Problem) -> Self {
        Self {
            file: file.display().to_string(),
            field: problem.field.map(|f| format!("`{f}`: ")).unwrap_or_default(),
            detail: problem.detail,
        }
    }
}

/// The model worker for local runs, with limits sized for files rather than for a shared
/// server.
fn local_worker(args: &ModelArgs) -> Result<Worker> {
    let mut config = ServeConfig { device: args.device.clone(), ..ServeConfig::default() };
    let limits = &mut config.limits;
    limits.max_series = 1 << 20;
    limits.max_context = 1 << 24;
    limits.max_scenarios = 4096;
    limits.max_plan_candidates = 4096;
    limits.request_timeout_ms = 7 * 24 * 3_600_000;
    config.validate()?;
    let device = config.device.parse::<DeviceKind>()?.device()?;
    let (model, name, _) = models::load(args.model.as_deref(), &device)?;
    Ok(Worker::new(&config, model, name))
}

/// The three request commands.
#[derive(Debug, Clone, Copy)]
pub(crate) enum RequestKind {
    Forecast,
    WhatIf,
    Plan,
}

/// Runs `loopcast forecast | whatif | plan`.
pub(crate) async fn run_request(kind: RequestKind, args: RequestArgs) -> Result<()> {
    let text =
        std::fs::read(&args.request).with_context(|| format!("cannot read {}", args.request.display()))?;
    let worker = local_worker(&args.model)?;
    let spinner = ProgressBar::new_spinner()
        .with_style(ProgressStyle::with_template("{spinner} {msg} ({elapsed})").expect("valid template"));
    spinner.set_message(format!("{kind:?} {}", args.request.display()).to_lowercase());
    spinner.enable_steady_tick(Duration::from_millis(120));
    let file = &args.request;
    let answer = match kind {
        RequestKind::Forecast => answer(file, &text, |r| worker.forecast(r)).await,
        RequestKind::WhatIf => answer(file, &text, |r| worker.whatif(r)).await,
        RequestKind::Plan => answer(file, &text, |r| worker.plan(r)).await,
    };
    spinner.finish_and_clear();
    let mut json = answer?;
    json.push('\n');
    match &args.output {
        Some(path) => write_atomically(path, json.as_bytes())?,
        None => print!("{json}"),
    }
    Ok(())
}

/// Parses `text` as a request, runs it, and serialises the answer.
async fn answer<Q, A, F>(file: &Path, text: &[u8], run: impl FnOnce(Q) -> F) -> Result<String>
where
    Q: DeserializeOwned,
    A: Serialize,
    F: Future<Output = Result<A, Problem>>,
{
    let request = loopcast_serve::parse::<Q>(text).map_err(|p| RequestError::new(file, p))?;
    let answer = run(request).await.map_err(|p| RequestError::new(file, p))?;
    Ok(serde_json::to_string_pretty(&answer)?)
}

/// Writes `bytes` to `path` through a temporary file beside it.
pub(crate) fn write_atomically(path: &Path, bytes: &[u8]) -> Result<()> {
    let name = path.file_name().map(|n| n.to_string_lossy().to_string()).unwrap_or_default();
    let temporary = path.with_file_name(format!(".{name}.{}.tmp", std::process::id()));
    std::fs::write(&temporary, bytes).with_context(|| format!("cannot write {}", temporary.display()))?;
    std::fs::rename(&temporary, path).with_context(|| format!("cannot write {}", path.display()))?;
    Ok(())
}

/// Arguments of `loopcast score`.
#[derive(Debug, Args)]
pub(crate) struct ScoreArgs {
    /// The telemetry file (.parquet, .csv, .arrow/.arrows/.ipc); or --prometheus.
    #[arg(required_unless_present = "prometheus", conflicts_with = "prometheus")]
    input: Option<PathBuf>,
    #[command(flatten)]
    source: PrometheusArgs,
    /// Also write the forecast quantiles to this Prometheus remote-write receiver
    /// (`http://HOST:9090/api/v1/write`), as `loopcast_forecast_<channel>{…,
    /// quantile="0.9"}`.
    #[arg(long, value_name = "URL")]
    remote_write: Option<String>,
    /// Table layout: one value per row (long) or one column per channel (wide, needs
    /// --mapping).
    #[arg(long, value_enum, default_value_t = LayoutArg::Long)]
    format: LayoutArg,
    /// The output: long-format Parquet (`series_id, timestamp, channel, scenario, q…,
    /// mean, loops_used`), written atomically.
    #[arg(long, short)]
    output: PathBuf,
    /// Steps to forecast after each series' last observed target value.
    #[arg(long)]
    horizon: usize,
    /// Mapping file (TOML or JSON) with the channel roles; without one, a `role` column
    /// or else every channel as a target.
    #[arg(long)]
    mapping: Option<PathBuf>,
    /// Quantile levels of the output, comma-separated [default: the model's].
    #[arg(long, value_delimiter = ',')]
    quantiles: Option<Vec<f64>>,
    /// Score only shard `i` of `n` (series `i`, `i+n`, … of the file), e.g. for a
    /// Kubernetes Indexed Job.
    #[arg(long, value_name = "I/N")]
    shard: Option<Shard>,
    /// Most loops per patch [default: the model's].
    #[arg(long)]
    max_loops: Option<usize>,
    /// Exit threshold of the loop gate [default: the model's].
    #[arg(long)]
    exit_threshold: Option<f64>,
    /// Fit each series' interval widths on up to N backtests over the end of its own
    /// history (0 to 8; 0: the model's calibration alone).
    #[arg(long, default_value_t = 0)]
    series_calibration: usize,
    /// Leave unknown future action cells unknown instead of holding the last value.
    #[arg(long)]
    unknown_actions: bool,
    /// Series per chunk: the unit of progress and of resume.
    #[arg(long, default_value_t = 64)]
    chunk_series: usize,
    /// Where finished chunks wait for the end [default: `<output>.parts/`]; a run stopped
    /// by Ctrl-C or a crash resumes from it.
    #[arg(long)]
    work_dir: Option<PathBuf>,
    #[command(flatten)]
    model: ModelArgs,
}

/// Runs `loopcast score`.
pub(crate) async fn run_score(args: ScoreArgs) -> Result<()> {
    if args.chunk_series == 0 {
        bail!(crate::UsageError("--chunk-series must be at least 1".into()));
    }
    let work_dir = args.work_dir.clone().unwrap_or_else(|| {
        let name = args.output.file_name().map(|n| n.to_string_lossy().to_string()).unwrap_or_default();
        args.output.with_file_name(format!("{name}.parts"))
    });
    let mapping = args.mapping.as_deref().map(load_mapping).transpose()?;
    let (input, layout, mapping) =
        prometheus::input(args.input.as_deref(), args.format.into(), &args.source, mapping, &work_dir)
            .await?;
    let spec = ScoreSpec {
        input,
        layout,
        mapping,
        horizon: args.horizon,
        quantiles: args.quantiles.clone(),
        compute: ComputeOptions {
            min_loops: None,
            max_loops: args.max_loops,
            exit_threshold: args.exit_threshold,
            series_calibration: args.series_calibration,
        },
        missing_actions: if args.unknown_actions {
            MissingActionsInput::Unknown
        } else {
            MissingActionsInput::HoldLast
        },
        shard: args.shard,
    };
    let worker = local_worker(&args.model)?;
    let bar = ProgressBar::new(0).with_style(
        ProgressStyle::with_template("{bar:30} {percent:>3}% of rows read ({elapsed}, eta {eta}) {msg}")
            .expect("valid template"),
    );
    let mut progress = |p: &ScoreProgress| {
        bar.set_length(p.total_rows);
        bar.set_position(p.rows_read);
        bar.set_message(format!(
            "{} series, {} chunks ({} resumed), {} rows written",
            p.series, p.chunks_done, p.chunks_resumed, p.rows_written
        ));
    };
    let interrupted = interrupt_flag();
    let result = loopcast_serve::score(
        &worker,
        &spec,
        &work_dir,
        &args.output,
        args.chunk_series,
        &interrupted,
        &mut progress,
    )
    .await;
    match result {
        Ok(done) => {
            bar.finish_and_clear();
            let skipped = done.series - done.windows;
            eprintln!(
                "loopcast: scored {} series into {}: {} rows{}{}",
                done.windows,
                args.output.display(),
                done.rows_written,
                if done.chunks_resumed > 0 {
                    format!(" ({} chunks resumed)", done.chunks_resumed)
                } else {
                    String::new()
                },
                if skipped > 0 {
                    format!("; {skipped} series had no observed target value")
                } else {
                    String::new()
                },
            );
            match &args.remote_write {
                Some(url) => prometheus::write_back(&args.source, url, &args.output).await,
                None => Ok(()),
            }
        }
        Err(ScoreError::Cancelled { chunks }) if interrupted.load(Ordering::SeqCst) => {
            bar.abandon_with_message("interrupted");
            bail!(Interrupted(format!(
                "interrupted after {chunks} chunks, kept in {}; run the same command again to resume",
                work_dir.display()
            )))
        }
        Err(e) => {
            bar.abandon();
            Err(e.into())
        }
    }
}
