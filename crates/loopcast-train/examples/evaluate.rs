//! Scores a saved model on the held-out evaluation seeds, as a training run does at its
//! end: `cargo run --release -p loopcast-train --example evaluate -- DIR [--action-blind]
//! [--windows N] [--skip K]` (N SRE twin pairs and N prior series, 32 unless given, from the
//! K-th evaluation seed on; context 512, horizon 64).

use loopcast_model::{DeviceKind, LoopedWorldModel};
use loopcast_train::data::{EVALUATION_SEEDS, SreLayout};
use loopcast_train::{ValidationSet, evaluate};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let usage = "usage: evaluate MODEL_DIR [--action-blind] [--windows N] [--skip K]";
    let value = |flag: &str, default: u64| -> Result<u64, String> {
        match args.iter().position(|a| a == flag) {
            Some(i) => args
                .get(i + 1)
                .and_then(|v| v.parse().ok())
                .ok_or_else(|| format!("{flag} needs a number; {usage}")),
            None => Ok(default),
        }
    };
    let (windows, skip) = (value("--windows", 32)?, value("--skip", 0)?);
    let flag_values: Vec<usize> = ["--windows", "--skip"]
        .iter()
        .filter_map(|f| args.iter().position(|a| a == f).map(|i| i + 1))
        .collect();
    let Some(dir) = args
        .iter()
        .enumerate()
        .find(|(i, a)| !a.starts_with("--") && !flag_values.contains(i))
        .map(|(_, a)| a)
    else {
        return Err(usage.into());
    };
    let model = LoopedWorldModel::load(dir, &DeviceKind::Cpu.device()?)?;
    let layout = SreLayout { action_blind: args.iter().any(|a| a == "--action-blind"), ..SreLayout::full() };
    let set = ValidationSet::new(EVALUATION_SEEDS + skip, windows as usize, 512, 64, &layout)?;
    println!("{}", serde_json::to_string_pretty(&evaluate(&model, &set)?)?);
    Ok(())
}
