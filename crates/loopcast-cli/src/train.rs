//! `loopcast train`: trains the looped world model from a recipe, with progress,
//! checkpoints and `--resume`.

use std::path::PathBuf;
use std::sync::atomic::Ordering;

use anyhow::{Result, bail};
use clap::Args;
use loopcast_model::DeviceKind;
use loopcast_train::{TrainConfig, TrainError, TrainOptions, TrainOutcome, train};

use crate::interrupt_flag;

/// Arguments of `loopcast train`.
#[derive(Debug, Args)]
pub(crate) struct TrainArgs {
    /// Training recipe (TOML), e.g. `configs/train-small.toml`.
    #[arg(long)]
    config: PathBuf,
    /// Run directory: checkpoints, `metrics.jsonl`, `summary.json` and the final model
    /// in `model/`.
    #[arg(long, default_value = "runs/train")]
    out: PathBuf,
    /// Continue the run in `--out` from its last checkpoint (same recipe required).
    #[arg(long, conflicts_with = "init")]
    resume: bool,
    /// Start from this model directory's weights instead of random ones (fine-tuning, or
    /// training a model further); its config must be the recipe's `model`.
    #[arg(long, value_name = "MODEL_DIR")]
    init: Option<PathBuf>,
    /// Device: `cpu` (burn's flex backend) or `wgpu` (Vulkan, Metal, DX12).
    #[arg(long, default_value = "cpu")]
    device: DeviceKind,
    /// No progress bar (logs still go to `metrics.jsonl`).
    #[arg(long)]
    quiet: bool,
}

/// Runs `loopcast train`.
pub(crate) async fn run(args: TrainArgs) -> Result<()> {
    let config = TrainConfig::from_file(&args.config)?;
    let options = TrainOptions {
        out_dir: args.out.clone(),
        resume: args.resume,
        init: args.init.clone(),
        device: args.device,
        progress: !args.quiet,
        select: None,
    };
    let stop = interrupt_flag();
    let flag = stop.clone();
    let outcome = tokio::task::spawn_blocking(move || train(&config, &options, flag.as_ref())).await?;
    match outcome {
        Ok(TrainOutcome::Finished { steps, model_dir, evaluation }) => {
            println!(
                "trained {steps} steps; model in {}; held-out: relative MASE {:.3}, relative WQL {:.3}, 80% coverage {:.3}, mean loops {:.2}, effect error {:.3}",
                model_dir.display(),
                evaluation.relative_mase,
                evaluation.relative_wql,
                evaluation.coverage_80,
                evaluation.mean_loops,
                evaluation.effect_error
            );
            Ok(())
        }
        Ok(TrainOutcome::Interrupted { step }) => {
            debug_assert!(stop.load(Ordering::SeqCst));
            bail!(crate::Interrupted(format!(
                "interrupted at step {step}: checkpoint written in {}; continue with --resume",
                args.out.display()
            )))
        }
        Err(e @ TrainError::Resume(_)) => bail!(crate::UsageError(e.to_string())),
        Err(e) => Err(e.into()),
    }
}
