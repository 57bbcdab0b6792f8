//! `loopcast calibrate`: fits a model's effect intervals — how much of a predicted effect
//! the planner trusts (`ModelConfig::effect_widening`) — on simulator twins from the
//! validation range (never the evaluation's seeds), and writes the calibrated model.

use std::path::PathBuf;

use anyhow::{Result, bail};
use clap::Args;
use loopcast_model::{DeviceKind, LoopedWorldModel};
use loopcast_train::data::{SreLayout, VALIDATION_SEEDS};
use loopcast_train::{ValidationReport, ValidationSet, evaluate, fitted_effect_widening};
use serde::Serialize;

use crate::{UsageError, models};

/// Arguments of `loopcast calibrate`.
#[derive(Debug, Args)]
pub(crate) struct CalibrateArgs {
    /// The model to calibrate (`config.json` + `weights.bpk`); the shipped model when
    /// absent.
    #[arg(long)]
    model: Option<PathBuf>,
    /// Directory to write the calibrated model to (`--model`'s own directory is allowed).
    #[arg(long)]
    out: PathBuf,
    /// Twin pairs to fit on (with as many prior series), seeds from the validation range.
    #[arg(long, default_value_t = 256)]
    windows: usize,
    /// History steps of every window.
    #[arg(long, default_value_t = 512)]
    context: usize,
    /// Future steps of every window.
    #[arg(long, default_value_t = 64)]
    horizon: usize,
    /// Compute device.
    #[arg(long, default_value = "cpu")]
    device: String,
    /// Print the result as JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Serialize)]
struct Calibration {
    model: String,
    out: PathBuf,
    windows: usize,
    material_effects: usize,
    effect_widening_before: f64,
    effect_interval_coverage_before: Option<f64>,
    effect_widening: f64,
}

/// `model` with its effect intervals fitted on `windows` validation-range twins of
/// `context` and `horizon` steps, and the uncalibrated model's scores on them.
pub(crate) fn effect_intervals(
    model: LoopedWorldModel,
    windows: usize,
    context: usize,
    horizon: usize,
) -> Result<(LoopedWorldModel, ValidationReport)> {
    let set = ValidationSet::new(VALIDATION_SEEDS, windows, context, horizon, &SreLayout::full())?;
    let before = evaluate(&model, &set)?;
    let widening = fitted_effect_widening(&before)?;
    Ok((model.with_effect_widening(widening)?, before))
}

/// Runs `loopcast calibrate`.
pub(crate) async fn run(args: CalibrateArgs) -> Result<()> {
    if args.windows == 0 {
        bail!(UsageError("--windows must be at least 1".into()));
    }
    let device = args.device.parse::<DeviceKind>()?.device()?;
    let (model, name, _) = models::load(args.model.as_deref(), &device)?;
    let widening_before = model.config().effect_widening;
    let (calibrated, before) = effect_intervals(model, args.windows, args.context, args.horizon)?;
    let widening = calibrated.config().effect_widening;
    calibrated.save(&args.out)?;
    let calibration = Calibration {
        model: name,
        out: args.out,
        windows: args.windows,
        material_effects: before.material_effects,
        effect_widening_before: widening_before,
        effect_interval_coverage_before: before.effect_interval_coverage,
        effect_widening: widening,
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&calibration)?);
    } else {
        println!(
            "{}: effect intervals fitted on {} material twin effects ({} windows): effect_widening {:.3} \
             (was {:.3}, covering {:.1} % of steps); written to {}",
            calibration.model,
            calibration.material_effects,
            calibration.windows,
            calibration.effect_widening,
            calibration.effect_widening_before,
            100.0 * calibration.effect_interval_coverage_before.unwrap_or(0.0),
            calibration.out.display()
        );
    }
    Ok(())
}
