//! `loopcast tune`: fine-tunes a model on a user's own telemetry within a time budget,
//! checks it on the most recent windows of every series (which it never trains on), and
//! writes it only when it forecasts them better than the model it started from.
//!
//! The run directory holds `tune.json` (the plan: the data, the recipe as run and the
//! starting model's score), `start/` (the starting model), `run/` (the training run, with
//! its checkpoints) and, when the tuned model wins, `model/` and `report.json`.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::Ordering;

use anyhow::{Context, Result, bail};
use clap::Args;
use loopcast_core::Role;
use loopcast_data::{Origins, WindowBatcher, WindowSpec};
use loopcast_eval::report::{markdown_table, write_atomically};
use loopcast_eval::{Backtest, BacktestConfig, ModelName, ModelSummary};
use loopcast_model::{DeviceKind, ForecastOptions, LoopedWorldModel, ModelConfig};
use loopcast_train::{
    ModelSource, RealSource, Selector, TrainConfig, TrainError, TrainOptions, TrainOutcome, seconds_per_step,
    train,
};
use serde::{Deserialize, Serialize};

use crate::eval::{self, Dataset};
use crate::inspect::LayoutArg;
use crate::{Interrupted, UsageError, calibrate, interrupt_flag, models};

/// The recipe every tune starts from (see the file's comments).
const RECIPE: &str = include_str!("../../../configs/tune.toml");
/// Validations in a tune: the run keeps the weights that score best on the user's window.
const VALIDATIONS: u64 = 8;
/// Optimiser steps timed to turn the budget into a step count.
const PROBE_STEPS: u64 = 6;
/// The fewest steps a tune runs, whatever the budget.
const MIN_STEPS: u64 = 20;
/// Twin windows the tuned model's effect intervals are fitted on (as `loopcast calibrate`).
const EFFECT_WINDOWS: usize = 256;

/// Arguments of `loopcast tune`.
#[derive(Debug, Args)]
pub(crate) struct TuneArgs {
    /// The telemetry file (Parquet, CSV or Arrow IPC) to tune on: its history trains, the
    /// last `--origins` windows of every series check, and as many before them choose the
    /// weights kept.
    data: PathBuf,
    /// Directory of the run; the tuned model goes to `OUT/model` when it wins.
    #[arg(long)]
    out: PathBuf,
    /// Table layout of the file.
    #[arg(long, value_enum, default_value_t = LayoutArg::Long)]
    format: LayoutArg,
    /// Target channels, comma-separated (as `loopcast eval --target`).
    #[arg(long, value_delimiter = ',')]
    target: Vec<String>,
    /// A mapping file giving every channel's role (as `loopcast eval --mapping`).
    #[arg(long)]
    mapping: Option<PathBuf>,
    /// Covariate channels whose future is known, comma-separated.
    #[arg(long, value_delimiter = ',')]
    covariates: Vec<String>,
    /// A SQL predicate over the file's columns, to tune on a subset of it.
    #[arg(long)]
    filter: Option<String>,
    /// Season length in steps: MASE's scale and seasonal naive's period in the check.
    #[arg(long)]
    season: usize,
    /// Steps forecast per window, in training and in the check.
    #[arg(long)]
    horizon: usize,
    /// Context steps per window, in training (and half of it) and in the check.
    #[arg(long)]
    context: usize,
    /// Windows per series held out at the end to check on, one horizon apart (and as many
    /// before them to choose the kept weights by).
    #[arg(long, default_value_t = 1)]
    origins: usize,
    /// Training time, in minutes, turned into a step count by timing a few steps here
    /// (the checks before and after, and the effect intervals' fit, come on top).
    #[arg(long, default_value_t = 5.0)]
    minutes: f64,
    /// Share of the training steps drawn from the file (the rest: the simulator and the
    /// prior, as the shipped model was trained, so action effects stay trained).
    #[arg(long, default_value_t = 0.5)]
    share: f64,
    /// The least relative gain that writes the tuned model: its relative MASE on the
    /// held-out windows must be below the starting model's times `1 − min_gain` (0: any
    /// gain).
    #[arg(long, default_value_t = 0.0)]
    min_gain: f64,
    /// The model to start from; the embedded shipped model when absent.
    #[arg(long)]
    model: Option<PathBuf>,
    /// Continue the tune in `--out` (after Ctrl-C): the same command with `--resume`.
    #[arg(long)]
    resume: bool,
    /// `cpu` (burn flex) or `wgpu`.
    #[arg(long, default_value = "cpu")]
    device: DeviceKind,
    /// No progress bar.
    #[arg(long)]
    quiet: bool,
}

/// What a tune was asked to do and how it set out, kept in `OUT/tune.json` so `--resume`
/// continues the same run and the record says how the model was made.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Plan {
    /// The data and how it is cut (the check windows are the last `origins`).
    dataset: Dataset,
    /// The starting model's name (its weights are in `start/`).
    model: String,
    minutes: f64,
    share: f64,
    /// Steps at the end of every series left out of training: the check windows and,
    /// before them, as many windows the training run keeps its best weights by.
    holdout: usize,
    /// The time a training step took when the tune began.
    seconds_per_step: f64,
    /// The recipe as run.
    recipe: TrainConfig,
    /// The starting model on the check windows (loopcast, then seasonal naive).
    before: Vec<ModelSummary>,
}

/// What a finished tune measured, in `OUT/report.json`.
#[derive(Debug, Serialize)]
struct Report<'a> {
    plan: &'a Plan,
    after: &'a [ModelSummary],
    /// Whether the tuned model was written (it forecast the check windows better).
    written: bool,
}

/// The tuned model forecast the check windows no better than the one it started from
/// (exit status 3).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub(crate) struct NotBetter(pub(crate) String);

/// Runs `loopcast tune`.
pub(crate) async fn run(args: TuneArgs) -> Result<()> {
    if !(args.minutes.is_finite() && args.minutes > 0.0) {
        bail!(UsageError(format!("--minutes must be above 0, got {}", args.minutes)));
    }
    if !(0.0..1.0).contains(&args.min_gain) {
        bail!(UsageError(format!("--min-gain must lie in [0, 1), got {}", args.min_gain)));
    }
    if !(args.share > 0.0 && args.share <= 1.0) {
        bail!(UsageError(format!("--share must lie in (0, 1], got {}", args.share)));
    }
    let dataset = Dataset {
        name: args.data.file_stem().map_or("data".into(), |s| s.to_string_lossy().to_string()),
        data: args.data.clone(),
        format: args.format.into(),
        target: args.target.clone(),
        mapping: args.mapping.clone(),
        covariates: args.covariates.clone(),
        season: args.season,
        horizon: args.horizon,
        context: args.context,
        origins: args.origins,
        stride: None,
        mstl_periods: Vec::new(),
        filter: args.filter.clone(),
    };
    eval::check(&dataset)?;
    let device = args.device.device()?;
    let out = &args.out;
    let plan_path = out.join("tune.json");
    let start_dir = out.join("start");
    let plan = if args.resume {
        let text = std::fs::read_to_string(&plan_path)
            .map_err(|_| UsageError(format!("{} holds no tune to resume (no tune.json)", out.display())))?;
        let plan: Plan =
            serde_json::from_str(&text).with_context(|| format!("reading {}", plan_path.display()))?;
        let same = plan.dataset == dataset && plan.minutes == args.minutes && plan.share == args.share;
        if !same {
            bail!(UsageError(format!(
                "{} holds a tune of other flags (data, cut, --minutes or --share); resume it with the \
                 command that started it",
                out.display()
            )));
        }
        plan
    } else {
        if plan_path.exists() {
            bail!(UsageError(format!(
                "{} already holds a tune; pass --resume to continue it or choose another directory",
                out.display()
            )));
        }
        let (start, name, _) = models::load(args.model.as_deref(), &device)?;
        if args.horizon > start.config().native_horizon() {
            bail!(UsageError(format!(
                "--horizon {} is beyond the model's {} steps",
                args.horizon,
                start.config().native_horizon()
            )));
        }
        let holdout = 2 * args.horizon * args.origins;
        let targets = check_history(&dataset, holdout).await?;
        let windows =
            if args.origins == 1 { "window".to_string() } else { format!("{} windows", args.origins) };
        eprintln!("loopcast: scoring {name} on the last {windows} of every series");
        let before = check(&dataset, &start).await?;
        start.save(&start_dir)?;
        let mut recipe = recipe(start.config(), &dataset, &targets, holdout, args.share)?;
        eprintln!("loopcast: timing {PROBE_STEPS} training steps");
        let (probe, dir, kind) = (recipe.clone(), start_dir.clone(), args.device);
        let per_step =
            tokio::task::spawn_blocking(move || seconds_per_step(&probe, Some(&dir), kind, PROBE_STEPS))
                .await??;
        recipe.steps = ((args.minutes * 60.0 / per_step) as u64).max(MIN_STEPS);
        recipe.validation.every = recipe.steps.div_ceil(VALIDATIONS);
        recipe.optimizer.warmup_steps = recipe.optimizer.warmup_steps.min(recipe.steps / 5);
        let plan = Plan {
            dataset: dataset.clone(),
            model: name,
            minutes: args.minutes,
            share: args.share,
            holdout,
            seconds_per_step: per_step,
            recipe,
            before,
        };
        let json = serde_json::to_vec_pretty(&plan)?;
        write_atomically(&plan_path, |f| std::io::Write::write_all(f, &json))?;
        plan
    };
    eprintln!(
        "loopcast: tuning {} for {} steps (about {:.1} minutes at {:.2} s a step)",
        plan.model,
        plan.recipe.steps,
        plan.recipe.steps as f64 * plan.seconds_per_step / 60.0,
        plan.seconds_per_step
    );
    let run_dir = out.join("run");
    let options = TrainOptions {
        resume: args.resume && run_dir.join("checkpoints").exists(),
        out_dir: run_dir.clone(),
        init: Some(start_dir),
        device: args.device,
        progress: !args.quiet,
        select: Some(selector(&plan.dataset, plan.holdout / 2).await?),
    };
    let stop = interrupt_flag();
    let (recipe, flag) = (plan.recipe.clone(), stop.clone());
    let outcome = tokio::task::spawn_blocking(move || train(&recipe, &options, flag.as_ref())).await??;
    let trained = match outcome {
        TrainOutcome::Finished { model_dir, .. } => model_dir,
        TrainOutcome::Interrupted { step } => {
            debug_assert!(stop.load(Ordering::SeqCst));
            bail!(Interrupted(format!(
                "interrupted at step {step} of {}: checkpoint written in {}; continue with the same \
                 command and --resume",
                plan.recipe.steps,
                run_dir.display()
            )))
        }
    };
    eprintln!("loopcast: fitting the tuned model's effect intervals on {EFFECT_WINDOWS} twins");
    let tuned = LoopedWorldModel::load(&trained, &device)?;
    let (context, horizon) = (plan.recipe.validation.context, plan.recipe.validation.horizon);
    let (tuned, _) = tokio::task::spawn_blocking(move || {
        calibrate::effect_intervals(tuned, EFFECT_WINDOWS, context, horizon)
    })
    .await??;
    eprintln!("loopcast: scoring the tuned model on the same windows");
    let after = check(&plan.dataset, &tuned).await?;
    let (before, now) = (loopcast_mase(&plan.before), loopcast_mase(&after));
    let written = now < before * (1.0 - args.min_gain);
    println!("\nbefore ({}):\n\n{}", plan.model, markdown_table(&plan.before));
    println!("after ({} steps):\n\n{}", plan.recipe.steps, markdown_table(&after));
    let model_dir = out.join("model");
    if written {
        write_model(&tuned, &model_dir)?;
    }
    let report = serde_json::to_vec_pretty(&Report { plan: &plan, after: &after, written })?;
    write_atomically(&out.join("report.json"), |f| std::io::Write::write_all(f, &report))?;
    if !written {
        bail!(NotBetter(format!(
            "the tuned model did not forecast the held-out windows better than {} by --min-gain {} \
             (relative MASE {now:.3} against {before:.3}); no model written, keep using {}",
            plan.model, args.min_gain, plan.model
        )));
    }
    println!(
        "relative MASE {before:.3} -> {now:.3} on the held-out windows; the tuned model is in {} \
         (serve it with `loopcast serve --model {}`)",
        model_dir.display(),
        model_dir.display()
    );
    Ok(())
}

/// The targets of `dataset` to tune on; an error naming the file and the series when no
/// series has two seasons (and 8 steps) of history before its last `holdout` steps, and a
/// warning naming the ones left out when only some have.
async fn check_history(dataset: &Dataset, holdout: usize) -> Result<Vec<String>> {
    let (mut reader, targets) = eval::open_with_roles(dataset).await?;
    let need = (2 * dataset.season).max(8);
    let (mut kept, mut short) = (0usize, Vec::new());
    while let Some(series) = reader.next_series().await? {
        for channel in series.channels.iter().filter(|c| c.spec.role == Role::Target) {
            if !targets.contains(&channel.spec.name) {
                continue;
            }
            let cut = channel.observed.len().saturating_sub(holdout);
            let history = channel.observed[..cut].iter().filter(|o| **o).count();
            if history >= need {
                kept += 1;
            } else {
                short.push(format!("`{}` channel `{}` ({history} steps)", series.id, channel.spec.name));
            }
        }
    }
    let file = dataset.data.display();
    if kept == 0 {
        let named = short.first().map_or("it has no target series".to_string(), |s| format!("e.g. {s}"));
        bail!(loopcast_data::DataError::WindowSpec(format!(
            "{file}: no series has the {need} observed steps of history (two seasons) that tuning needs \
             before its last {holdout} (held out to check on): {named}"
        )));
    }
    if !short.is_empty() {
        let listed: Vec<&str> = short.iter().take(5).map(String::as_str).collect();
        eprintln!(
            "loopcast: warning: {} of {} series channels of {file} have less than {need} steps of history \
             before the held-out {holdout}: {}{}",
            short.len(),
            short.len() + kept,
            listed.join(", "),
            if short.len() > 5 { ", …" } else { "" }
        );
    }
    Ok(targets)
}

/// The relative MASE of the weights being trained on the `origins` windows just before
/// the last `check` steps of every series (which training never sees either): the
/// training run keeps the best weights by it, the starting ones included.
async fn selector(dataset: &Dataset, check: usize) -> Result<Selector> {
    let (mut reader, targets) = eval::open_with_roles(dataset).await?;
    let spec = WindowSpec {
        context: dataset.context,
        horizon: dataset.horizon,
        origins: Origins::Backtest { windows: dataset.origins, stride: dataset.horizon },
    };
    let mut batcher = WindowBatcher::new(spec, reader.channels(), 64)?;
    let mut windows = Vec::new();
    while let Some(mut series) = reader.next_series().await? {
        for channel in &mut series.channels {
            let kept = channel.values.len().saturating_sub(check);
            channel.values.truncate(kept);
            channel.observed.truncate(kept);
        }
        if series.channels.first().is_some_and(|c| c.values.len() > dataset.horizon) {
            windows.extend(batcher.push(&series));
        }
    }
    windows.extend(batcher.finish());
    let config = BacktestConfig { targets, ..backtest_config(dataset) };
    Ok(Selector(Arc::new(move |model: &LoopedWorldModel| {
        let mut backtest = Backtest::new(config.clone()).map_err(|e| TrainError::Data(e.to_string()))?;
        for batch in &windows {
            backtest.push(Some(model), batch).map_err(|e| TrainError::Data(e.to_string()))?;
        }
        Ok(loopcast_mase(&backtest.summary()))
    })))
}

/// The loopcast row's relative MASE (infinite when none could be scored).
fn loopcast_mase(summaries: &[ModelSummary]) -> f64 {
    summaries
        .iter()
        .find(|m| m.model == ModelName::Loopcast)
        .and_then(|m| m.relative_mase)
        .unwrap_or(f64::INFINITY)
}

/// Loopcast against seasonal naive on `dataset`'s windows, plans known.
fn backtest_config(dataset: &Dataset) -> BacktestConfig {
    BacktestConfig {
        season: dataset.season,
        mstl_periods: Vec::new(),
        models: vec![ModelName::Loopcast, ModelName::Snaive],
        forecast_options: ForecastOptions::default(),
        chart_samples: 0,
        targets: Vec::new(),
        action_futures: true,
    }
}

/// `model` and seasonal naive on the last `origins` windows of every series.
async fn check(dataset: &Dataset, model: &LoopedWorldModel) -> Result<Vec<ModelSummary>> {
    Ok(eval::backtest(dataset, backtest_config(dataset), Some(model)).await?.summary())
}

/// The tune's recipe: [`RECIPE`] with the starting model's config (less its relative
/// path, solved again after training), the file's `targets` as real series with their last
/// `holdout` steps left out, drawn at `share` of the steps, and the file's context and
/// horizon.
fn recipe(
    start: &ModelConfig,
    dataset: &Dataset,
    targets: &[String],
    holdout: usize,
    share: f64,
) -> Result<TrainConfig> {
    let mut recipe: TrainConfig = toml::from_str(&format!("model = \"(the starting model)\"\n{RECIPE}"))
        .context("the embedded tune recipe")?;
    let relative = start.relative_effects;
    recipe.model = ModelSource {
        path: None,
        config: ModelConfig { relative_effects: false, ..start.clone() },
        overrides: toml::Table::new(),
    };
    recipe.effects.relative_pairs = if relative { recipe.effects.relative_pairs } else { 0 };
    recipe.data.real = vec![RealSource {
        format: dataset.format,
        targets: targets.to_vec(),
        holdout,
        ..RealSource::file(&dataset.data, dataset.filter.clone())
    }];
    recipe.data.real_share = share;
    recipe.data.sre_share = (1.0 - share) * 0.6;
    let patch = start.patch_len;
    let context = dataset.context.clamp(2 * patch, start.max_context_patches * patch);
    recipe.data.contexts = vec![(context / 2).max(2 * patch), context];
    recipe.data.horizons = vec![dataset.horizon];
    // Validation (and the effect intervals' twins) within the model's reach.
    let validation = &mut recipe.validation;
    validation.context = validation.context.min(start.max_context_patches * patch);
    validation.horizon = validation.horizon.min(start.native_horizon());
    recipe.validate().map_err(|e| anyhow::anyhow!("the tune recipe: {e}"))?;
    Ok(recipe)
}

/// Saves `model` into `dir` whole or not at all: into a fresh sibling directory, then
/// renamed over `dir`.
fn write_model(model: &LoopedWorldModel, dir: &Path) -> Result<()> {
    let staging = dir.with_extension(format!("tmp-{}", std::process::id()));
    if staging.exists() {
        std::fs::remove_dir_all(&staging)?;
    }
    model.save(&staging)?;
    if dir.exists() {
        std::fs::remove_dir_all(dir)?;
    }
    std::fs::rename(&staging, dir).with_context(|| format!("moving the tuned model into {}", dir.display()))
}
