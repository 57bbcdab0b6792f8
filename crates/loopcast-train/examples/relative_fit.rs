//! Adds the relative action path to a trained model and fits it by least squares, as a
//! recipe with `effects.relative_pairs` does after its last step (`loopcast_train::
//! fit_relative_path`), and scores the result on the recipe's held-out windows:
//! `cargo run --release -p loopcast-train --example relative_fit -- RECIPE.toml MODEL_DIR OUT_DIR [PAIRS]`
//! (PAIRS: the recipe's `effects.relative_pairs`, or 4,096 when it has none). `OUT_DIR`
//! gets the model and `MODEL_DIR`'s `summary.json` with its `parameters`, `relative_fit`
//! and `evaluation` replaced.

use std::path::Path;

use loopcast_model::{DeviceKind, LoopedWorldModel};
use loopcast_train::data::{EVALUATION_SEEDS, SreLayout};
use loopcast_train::{TrainConfig, ValidationSet, evaluate, fit_relative_path};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [recipe, dir, out, rest @ ..] = args.as_slice() else {
        return Err("usage: relative_fit RECIPE.toml MODEL_DIR OUT_DIR [PAIRS]".into());
    };
    let recipe = TrainConfig::from_file(recipe)?;
    let pairs = match rest.first() {
        Some(pairs) => pairs.parse()?,
        None if recipe.effects.relative_pairs > 0 => recipe.effects.relative_pairs,
        None => 4096,
    };
    let model = LoopedWorldModel::load(dir, &DeviceKind::Cpu.device()?)?;
    let (fitted, fit) = fit_relative_path(&model, &recipe, pairs, true)?;
    println!("{}", serde_json::to_string_pretty(&fit)?);
    fitted.save(out)?;
    let v = &recipe.validation;
    let held_out = ValidationSet::new(EVALUATION_SEEDS, v.windows, v.context, v.horizon, &SreLayout::full())?;
    let evaluation = evaluate(&fitted, &held_out)?;
    println!("{}", serde_json::to_string_pretty(&evaluation)?);
    let mut summary: serde_json::Value = match std::fs::read(Path::new(dir).join("summary.json")) {
        Ok(bytes) => serde_json::from_slice(&bytes)?,
        Err(_) => serde_json::json!({}),
    };
    summary["parameters"] = fitted.parameter_count().into();
    summary["relative_fit"] = serde_json::to_value(&fit)?;
    summary["evaluation"] = serde_json::to_value(&evaluation)?;
    std::fs::write(Path::new(out).join("summary.json"), serde_json::to_vec_pretty(&summary)?)?;
    println!("wrote {out}");
    Ok(())
}
