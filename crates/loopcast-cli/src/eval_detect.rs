//! `loopcast eval --detect N`: anomaly detection scored on simulated services whose
//! incidents are known (`loopcast_eval::detect_eval`), every detector on the same windows.

use anyhow::{Result, bail};
use indicatif::{ProgressBar, ProgressStyle};
use loopcast_core::Frequency;
use loopcast_eval::counterfactual::HELD_OUT_SEEDS;
use loopcast_eval::detect::{DetectConfig, Shape};
use loopcast_eval::detect_eval::{DetectEvalConfig, evaluate_detection, markdown};
use loopcast_model::{DeviceKind, ForecastOptions};

use crate::eval::EvalArgs;
use crate::local::write_atomically;
use crate::{UsageError, models};

/// Steps per service: a week of five minutes.
const STEPS: usize = 7 * 288;

/// Runs `loopcast eval --detect SERVICES`: writes `detect.md` and `detect.json` to
/// `--out` and prints the table.
pub(crate) fn run(args: &EvalArgs, services: usize) -> Result<()> {
    if services == 0 {
        bail!(UsageError("--detect needs at least one service".into()));
    }
    if !(args.level > 0.5 && args.level < 1.0) {
        bail!(UsageError(format!("--level {} must lie in (0.5, 1)", args.level)));
    }
    let device = args.device.parse::<DeviceKind>()?.device()?;
    let (model, name, _) = models::load(args.model.as_deref(), &device)?;
    let frequency = Frequency::minutes(5);
    let patch = model.config().patch_len;
    let config = DetectEvalConfig {
        services,
        first_seed: args.first_seed.unwrap_or(HELD_OUT_SEEDS),
        steps: STEPS,
        frequency,
        shape: Shape {
            patch,
            max_context: patch * model.config().max_context_patches,
            min_context: frequency.season() + 4 * patch,
            last_patches: None,
        },
        detect: DetectConfig {
            level: args.level,
            season: frequency.season(),
            action_futures: true,
            forecast_options: ForecastOptions::default(),
        },
    };
    let bar = ProgressBar::new(services as u64).with_style(
        ProgressStyle::with_template("{bar:30} {pos}/{len} services ({elapsed}, eta {eta})")
            .expect("valid template"),
    );
    let scores = evaluate_detection(&model, &config, &mut |done| bar.set_position(done as u64))?;
    bar.finish_and_clear();
    let table = format!("Model: {name}\n\n{}", markdown(&scores, &config));
    std::fs::create_dir_all(&args.out)?;
    write_atomically(&args.out.join("detect.md"), table.as_bytes())?;
    write_atomically(&args.out.join("detect.json"), serde_json::to_string_pretty(&scores)?.as_bytes())?;
    println!("{table}");
    eprintln!("loopcast: results in {}", args.out.display());
    Ok(())
}
