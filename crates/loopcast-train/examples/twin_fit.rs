//! Whether the twin loss can be lowered at all from a checkpoint: trains only the
//! parameters under the given paths (all of them when none is given) on the twin loss
//! alone, over SRE steps a run never trained on, and prints the twin loss every 25 steps
//! and the held-out scores at the end. `--blind` zeroes every action value instead (both
//! twins then look alike, so the twin loss is that of predicting no effect at all).
//! `--relative` adds the relative action path (`relative_effects`, fresh) to the model
//! first, `--asinh` fits the bounded twin loss, `--save=DIR` writes the fitted model (for
//! `loopcast eval --twins`):
//! `cargo run --release -p loopcast-train --example twin_fit -- RECIPE.toml MODEL_DIR STEPS LR [PATH,…] [--blind] [--relative] [--asinh] [--save=DIR]`
//! (for instance `… configs/train-small.toml models/loopcast-small 300 3e-3 effect_`).

use burn::module::{Module, ModuleVisitor, Param};
use burn::optim::{AdamWConfig, GradientsParams};
use burn::tensor::Tensor;
use loopcast_model::{DeviceKind, LoopedWorldModel, ModelConfig};
use loopcast_train::data::{EVALUATION_SEEDS, Source, SreLayout, training_batch};
use loopcast_train::{TrainConfig, ValidationSet, evaluate, step_loss};

/// First step index of the batches fitted on (a recipe's runs use the steps below it).
const FIRST_STEP: u64 = 1_000_000;

/// Drops the gradients of every parameter outside `prefixes` (dotted module paths).
struct KeepOnly<'a> {
    grads: &'a mut GradientsParams,
    path: Vec<String>,
    prefixes: &'a [String],
}

impl ModuleVisitor for KeepOnly<'_> {
    fn enter_module(&mut self, name: &str, _container_type: &str) {
        self.path.push(name.to_string());
    }

    fn exit_module(&mut self, _name: &str, _container_type: &str) {
        self.path.pop();
    }

    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        let path = self.path.join(".");
        if !self.prefixes.is_empty() && !self.prefixes.iter().any(|p| path.starts_with(p.as_str())) {
            let _ = self.grads.remove::<D>(param.id);
        }
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let blind = args.iter().any(|a| a == "--blind");
    let bounded = args.iter().any(|a| a == "--asinh");
    let positional: Vec<&String> = args.iter().filter(|a| !a.starts_with("--")).collect();
    let [recipe, dir, steps, learning_rate, rest @ ..] = positional.as_slice() else {
        return Err(
            "usage: twin_fit RECIPE.toml MODEL_DIR STEPS LR [PATH,…] [--blind] [--relative] [--asinh] [--save=DIR]"
                .into(),
        );
    };
    let (steps, learning_rate): (u64, f64) = (steps.parse()?, learning_rate.parse()?);
    let prefixes: Vec<String> =
        rest.first().map(|p| p.split(',').map(String::from).collect()).unwrap_or_default();
    let device = DeviceKind::Cpu.device()?.autodiff();
    let model = LoopedWorldModel::load(dir, &device)?;
    let model = if args.iter().any(|a| a == "--relative") {
        let config = ModelConfig { relative_effects: true, ..model.config().clone() };
        LoopedWorldModel::load_into(dir, &config, &device)?
            .ok_or("the model does not take the relative path")?
    } else {
        model
    };
    let mut config = TrainConfig::from_file(recipe)?;
    config.model.config = model.config().clone();
    config.data.action_blind = blind;
    let loss = &mut config.loss;
    (loss.pinball, loss.twin, loss.consistency, loss.contraction, loss.gate) = (0.0, 1.0, 0.0, 0.0, 0.0);
    if bounded {
        loss.twin_scale = loopcast_train::TwinScale::Asinh;
    }
    let mut network = model.network().clone();
    let mut optimizer = AdamWConfig::new().with_weight_decay(0.0).init();
    let (mut fitted, mut index, mut window) = (0u64, FIRST_STEP, 0.0);
    while fitted < steps {
        let batch = training_batch(&config, index)?;
        index += 1;
        if batch.source != Source::Sre {
            continue;
        }
        let (loss, values) = step_loss(&network, &config, &batch, &device)?;
        let mut grads = GradientsParams::from_grads(loss.backward(), &network);
        network.visit(&mut KeepOnly { grads: &mut grads, path: Vec::new(), prefixes: &prefixes });
        network = optimizer.step(learning_rate, network, grads);
        fitted += 1;
        window += values.twin;
        if fitted % 25 == 0 {
            println!("step {fitted}: twin loss {:.4}", window / 25.0);
            window = 0.0;
        }
    }
    let model =
        LoopedWorldModel::from_network(network.valid(), model.config().clone(), &device.clone().inner());
    let held_out = ValidationSet::new(EVALUATION_SEEDS, 32, 512, 64, &SreLayout::full())?;
    let report = evaluate(&model, &held_out)?;
    if let Some(dir) = args.iter().find_map(|a| a.strip_prefix("--save=")) {
        model.save(dir)?;
        println!("fitted model written to {dir}");
    }
    println!(
        "held out: relative MASE {:.3}, relative WQL {:.3}, effect error {:.3}, signs right {:.1} %",
        report.relative_mase,
        report.relative_wql,
        report.effect_error,
        100.0 * report.effect_sign_accuracy
    );
    Ok(())
}
