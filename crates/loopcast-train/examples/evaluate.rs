//! Scores a saved model on the held-out evaluation seeds, as a training run does at its
//! end: `cargo run --release -p loopcast-train --example evaluate -- DIR [--action-blind]
//! [--windows N] [--skip K] [--series-calibration N]` (N SRE twin pairs and N prior series,
//! 32 unless given, from the K-th evaluation seed on; context 512, horizon 64; intervals
//! fitted per series on N backtests, `ForecastOptions::series_calibration`).

use loopcast_model::{DeviceKind, ForecastOptions, LoopedWorldModel};
use loopcast_train::data::{EVALUATION_SEEDS, SreLayout};
use loopcast_train::{ValidationSet, evaluate_with};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let usage =
        "usage: evaluate MODEL_DIR [--action-blind] [--windows N] [--skip K] [--series-calibration N]";
    let (mut dir, mut action_blind, mut windows, mut skip) = (None, false, 32u64, 0u64);
    let mut options = ForecastOptions::default();
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        let mut number =
            || args.next().and_then(|v| v.parse().ok()).ok_or(format!("{arg} needs a number; {usage}"));
        match arg.as_str() {
            "--action-blind" => action_blind = true,
            "--windows" => windows = number()?,
            "--skip" => skip = number()?,
            "--series-calibration" => options.series_calibration = number()? as usize,
            _ => dir = Some(arg),
        }
    }
    let dir = dir.ok_or(usage)?;
    let model = LoopedWorldModel::load(dir, &DeviceKind::Cpu.device()?)?;
    let layout = SreLayout { action_blind, ..SreLayout::full() };
    let set = ValidationSet::new(EVALUATION_SEEDS + skip, windows as usize, 512, 64, &layout)?;
    println!("{}", serde_json::to_string_pretty(&evaluate_with(&model, &set, &options)?)?);
    Ok(())
}
