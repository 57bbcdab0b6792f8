//! Scores a saved model on the held-out evaluation seeds, as a training run does at its
//! end: `cargo run --release -p loopcast-train --example evaluate -- DIR [--action-blind]`
//! (32 SRE twin pairs and 32 prior series, context 512, horizon 64).

use loopcast_model::{DeviceKind, LoopedWorldModel};
use loopcast_train::data::{EVALUATION_SEEDS, SreLayout};
use loopcast_train::{ValidationSet, evaluate};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some(dir) = args.iter().find(|a| !a.starts_with("--")) else {
        return Err("usage: evaluate MODEL_DIR [--action-blind]".into());
    };
    let model = LoopedWorldModel::load(dir, &DeviceKind::Cpu.device()?)?;
    let layout = SreLayout { action_blind: args.iter().any(|a| a == "--action-blind"), ..SreLayout::full() };
    let set = ValidationSet::new(EVALUATION_SEEDS, 32, 512, 64, &layout)?;
    println!("{}", serde_json::to_string_pretty(&evaluate(&model, &set)?)?);
    Ok(())
}
