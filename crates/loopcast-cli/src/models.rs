//! `loopcast models`: the model loopcast uses by default (embedded in the binary) or the
//! one in a checkpoint directory, loaded and described.

use std::path::{Path, PathBuf};

use anyhow::Result;
use clap::Args;
use loopcast_model::{Device, DeviceKind, LoopedWorldModel, ModelConfig, SHIPPED_MODEL};
use serde::Serialize;

/// Arguments of `loopcast models`.
#[derive(Debug, Args)]
pub(crate) struct ModelsArgs {
    /// A checkpoint directory (`config.json` + `weights.bpk`, as `loopcast train` writes
    /// in `<out>/model`); the shipped model when absent.
    #[arg(long)]
    model: Option<PathBuf>,
    /// Print as JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Serialize)]
struct Description {
    name: String,
    source: String,
    parameters: usize,
    config: ModelConfig,
}

/// The model in `dir` (named after it), or the embedded shipped one; with its name and
/// where it came from.
pub(crate) fn load(dir: Option<&Path>, device: &Device) -> Result<(LoopedWorldModel, String, String)> {
    Ok(match dir {
        Some(dir) => {
            let name = dir.file_name().map_or("model".into(), |n| n.to_string_lossy().to_string());
            (LoopedWorldModel::load(dir, device)?, name, dir.display().to_string())
        }
        None => (LoopedWorldModel::shipped(device)?, SHIPPED_MODEL.to_string(), "embedded".to_string()),
    })
}

/// Runs `loopcast models`.
pub(crate) async fn run(args: ModelsArgs) -> Result<()> {
    let (model, name, source) = load(args.model.as_deref(), &DeviceKind::Cpu.device()?)?;
    let description =
        Description { name, source, parameters: model.parameter_count(), config: model.config().clone() };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&description)?);
    } else {
        let c = &description.config;
        println!("{} ({}): {} parameters", description.name, description.source, description.parameters);
        println!(
            "  d_model {}, heads {}, encoder layers {}, patch {} steps, context ≤ {} steps, horizon ≤ {} steps",
            c.d_model,
            c.heads,
            c.encoder_layers,
            c.patch_len,
            c.max_context_patches * c.patch_len,
            c.max_horizon_patches * c.patch_len
        );
        println!(
            "  loops {}..={} (exit threshold {}), quantiles {:?}",
            c.min_loops, c.max_loops, c.exit_threshold, c.quantiles
        );
    }
    Ok(())
}
