//! The `loopcast` command-line tool.

mod bench;
mod calibrate;
mod detect;
mod eval;
mod eval_detect;
mod inspect;
mod local;
mod models;
mod prometheus;
mod serve;
mod simulate;
mod train;
mod tune;
mod twins;

use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use clap::{Parser, Subcommand};
use tracing_subscriber::EnvFilter;

/// Forecasting and capacity planning for operations telemetry.
#[derive(Debug, Parser)]
#[command(name = "loopcast", version, about)]
struct Cli {
    /// Log format on stderr.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Pretty, env = "LOOPCAST_LOG_FORMAT")]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum LogFormat {
    Pretty,
    Json,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Summarise a telemetry file: series, channels and roles, time range, frequency,
    /// gaps, and the rows that had to be rejected and why.
    Inspect(inspect::InspectArgs),
    /// Generate synthetic telemetry: SRE services with counterfactual twins, or plain
    /// series from the synthetic prior, as long-format Parquet.
    Simulate(simulate::SimulateArgs),
    /// Train the looped world model on the simulator and the synthetic prior, with
    /// validation, checkpoints and `--resume`.
    Train(train::TrainArgs),
    /// Fine-tune a model on your own telemetry within a time budget: trains on each
    /// series' history, checks on its last windows against the starting model, and writes
    /// the tuned model only when it forecasts them better.
    Tune(tune::TuneArgs),
    /// Fit a model's effect intervals (how much of a predicted effect the planner trusts)
    /// on simulator twins from the validation range, and write the calibrated model.
    Calibrate(calibrate::CalibrateArgs),
    /// Describe the model loopcast uses by default (embedded in the binary), or a
    /// checkpoint directory.
    Models(models::ModelsArgs),
    /// Serve forecasts, what-ifs, capacity plans and batch jobs over HTTP (see
    /// docs/API.md).
    Serve(serve::ServeArgs),
    /// Answer a `POST /v1/forecast` request body locally, without a server.
    Forecast(local::RequestArgs),
    /// Answer a `POST /v1/whatif` request body locally, without a server.
    Whatif(local::RequestArgs),
    /// Answer a `POST /v1/plan` request body locally: the cheapest action schedule that
    /// keeps a bound, and the cost/risk frontier.
    Plan(local::RequestArgs),
    /// Forecast every series of a telemetry file (or of Prometheus range queries) into
    /// Parquet, resumably (Ctrl-C, then the same command again), optionally one shard of
    /// many; with --remote-write, also into Prometheus.
    Score(local::ScoreArgs),
    /// Flag anomalies in every series of a telemetry file (or of Prometheus range
    /// queries): each observation scored by how far into the tails of the model's
    /// rolling forecasts it falls, beside seasonal-naive and seasonal hybrid ESD
    /// detectors; resumable.
    Detect(detect::DetectArgs),
    /// Backtest loopcast and classical baselines (seasonal naive, naive, AutoETS, MSTL)
    /// on the same rolling-origin windows of a file or a suite of files: a table, per-window
    /// CSV and fan charts. With `--twins N`: counterfactual effects and the planner scored
    /// on held-out simulator twins.
    Eval(eval::EvalArgs),
    /// Measure latency, throughput, what-if cost, loops against accuracy and FLOPs, with
    /// a dense matmul and AutoETS as references in the same run.
    Bench(bench::BenchArgs),
}

/// A flag combination that cannot work (exit status 2, like clap's own usage errors).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub(crate) struct UsageError(pub(crate) String);

/// The run was stopped by Ctrl-C (exit status 130); the message says what was kept.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub(crate) struct Interrupted(pub(crate) String);

/// A flag set by Ctrl-C: long commands poll it and stop cleanly.
pub(crate) fn interrupt_flag() -> Arc<AtomicBool> {
    let flag = Arc::new(AtomicBool::new(false));
    let set = flag.clone();
    tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            set.store(true, Ordering::SeqCst);
        }
    });
    flag
}

/// Exit status for input that cannot be used (sysexits' EX_DATAERR).
const EXIT_DATA: u8 = 65;
/// Exit status for flags that do not go together (as clap's own usage errors).
const EXIT_USAGE: u8 = 2;
/// Exit status of `loopcast tune` when the tuned model did not win and nothing was written.
const EXIT_NOT_BETTER: u8 = 3;
/// Exit status after Ctrl-C (128 + SIGINT).
const EXIT_INTERRUPTED: u8 = 130;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let filter = EnvFilter::try_from_env("LOOPCAST_LOG").unwrap_or_else(|_| EnvFilter::new("warn"));
    let subscriber = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    match cli.log_format {
        LogFormat::Pretty => subscriber.init(),
        LogFormat::Json => subscriber.json().init(),
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("loopcast: error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        match cli.command {
            Command::Inspect(args) => inspect::run(args).await,
            Command::Simulate(args) => simulate::run(args).await,
            Command::Train(args) => train::run(args).await,
            Command::Tune(args) => tune::run(args).await,
            Command::Calibrate(args) => calibrate::run(args).await,
            Command::Models(args) => models::run(args).await,
            Command::Serve(args) => serve::run(args).await,
            Command::Forecast(args) => local::run_request(local::RequestKind::Forecast, args).await,
            Command::Whatif(args) => local::run_request(local::RequestKind::WhatIf, args).await,
            Command::Plan(args) => local::run_request(local::RequestKind::Plan, args).await,
            Command::Score(args) => local::run_score(args).await,
            Command::Detect(args) => detect::run(args).await,
            Command::Eval(args) => eval::run(args).await,
            Command::Bench(args) => bench::run(args).await,
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("loopcast: error: {e:#}");
            if e.downcast_ref::<loopcast_data::DataError>().is_some()
                || e.downcast_ref::<loopcast_sim::SimError>().is_some()
                || e.downcast_ref::<loopcast_train::TrainError>().is_some()
                || e.downcast_ref::<loopcast_model::ModelError>().is_some()
                || matches!(e.downcast_ref(), Some(loopcast_serve::ServeError::Config(_)))
                || e.downcast_ref::<local::RequestError>().is_some()
                || e.downcast_ref::<loopcast_eval::EvalError>().is_some()
                || matches!(
                    e.downcast_ref(),
                    Some(
                        loopcast_prom::PromError::Invalid { .. }
                            | loopcast_prom::PromError::Query { .. }
                            | loopcast_prom::PromError::Empty { .. }
                            | loopcast_prom::PromError::Forecasts { .. }
                    )
                )
                || matches!(
                    e.downcast_ref(),
                    Some(loopcast_serve::ScoreError::Data(_) | loopcast_serve::ScoreError::Invalid { .. })
                )
            {
                ExitCode::from(EXIT_DATA)
            } else if e.downcast_ref::<UsageError>().is_some() {
                ExitCode::from(EXIT_USAGE)
            } else if e.downcast_ref::<Interrupted>().is_some() {
                ExitCode::from(EXIT_INTERRUPTED)
            } else if e.downcast_ref::<tune::NotBetter>().is_some() {
                ExitCode::from(EXIT_NOT_BETTER)
            } else {
                ExitCode::FAILURE
            }
        }
    }
}
