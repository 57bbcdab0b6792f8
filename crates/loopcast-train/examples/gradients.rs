//! How hard each loss term pulls on the weights: on the first SRE (twin) step of a
//! training recipe, the gradient norm of the pinball loss alone and of the twin loss
//! alone, for a checkpoint, with the five parameters each pulls on most:
//! `cargo run --release -p loopcast-train --example gradients -- RECIPE.toml MODEL_DIR`.

use burn::module::{Module, ModuleVisitor, Param};
use burn::tensor::{Gradients, Tensor};
use loopcast_model::{DeviceKind, LoopedWorldModel};
use loopcast_train::data::{Source, training_batch};
use loopcast_train::{TrainConfig, step_loss};

/// Sums squared gradients over every parameter and keeps each one's norm.
struct Norms<'a> {
    grads: &'a Gradients,
    squared: f64,
    per_parameter: Vec<(f64, Vec<usize>)>,
}

impl ModuleVisitor for Norms<'_> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        if let Some(grad) = param.val().grad(self.grads)
            && let Ok(values) = grad.into_data().try_to_vec::<f32>()
        {
            let squared: f64 = values.iter().map(|x| f64::from(*x).powi(2)).sum();
            self.squared += squared;
            self.per_parameter.push((squared.sqrt(), param.val().dims().to_vec()));
        }
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [recipe, dir] = args.as_slice() else {
        return Err("usage: gradients RECIPE.toml MODEL_DIR".into());
    };
    let device = DeviceKind::Cpu.device()?.autodiff();
    let model = LoopedWorldModel::load(dir, &device)?;
    let mut config = TrainConfig::from_file(recipe)?;
    config.model.config = model.config().clone();
    let step = (0..)
        .map(|s| training_batch(&config, s))
        .find(|b| b.as_ref().map_or(true, |b| b.source == Source::Sre))
        .expect("an SRE step")?;
    for (name, pinball, twin) in [("pinball alone", 1.0, 0.0), ("twin alone", 0.0, 1.0)] {
        let mut alone = config.clone();
        let loss = &mut alone.loss;
        (loss.pinball, loss.twin, loss.consistency, loss.contraction, loss.gate) =
            (pinball, twin, 0.0, 0.0, 0.0);
        let (total, values) = step_loss(model.network(), &alone, &step, &device)?;
        let grads = total.backward();
        let mut norms = Norms { grads: &grads, squared: 0.0, per_parameter: Vec::new() };
        model.network().visit(&mut norms);
        norms.per_parameter.sort_by(|a, b| b.0.total_cmp(&a.0));
        println!(
            "{name}: pinball {:.4}, twin {:.4}; gradient norm {:.6}; largest {:?}",
            values.pinball,
            values.twin,
            norms.squared.sqrt(),
            &norms.per_parameter[..5.min(norms.per_parameter.len())]
        );
    }
    Ok(())
}
