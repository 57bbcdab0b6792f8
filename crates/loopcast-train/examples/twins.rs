//! Shows what a model makes of twin pairs: for each held-out SRE episode, how the
//! departing plan differs from the base plan, the true effect on every target channel
//! (departing minus base, same noise) and the model's predicted effect (difference of
//! medians), both as mean over the horizon in units of the context's spread; then, per
//! pair, where the plan's difference fades on its way through the network (scaled
//! inputs, action tokens, one step of the core block from the shared initial state):
//! `cargo run --release -p loopcast-train --example twins -- MODEL_DIR [PAIRS]`.

use burn::tensor::Tensor;
use loopcast_core::Role;
use loopcast_model::{DeviceKind, ForecastOptions, Inputs, LoopedWorldModel, ModelBatch};
use loopcast_train::data::{EVALUATION_SEEDS, SreLayout, sre_windows};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some(dir) = args.first() else {
        return Err("usage: twins MODEL_DIR [PAIRS]".into());
    };
    let pairs: u64 = args.get(1).map_or(Ok(8), |n| n.parse())?;
    let model = LoopedWorldModel::load(dir, &DeviceKind::Cpu.device()?)?;
    let seeds: Vec<u64> = (EVALUATION_SEEDS..EVALUATION_SEEDS + pairs).collect();
    let (batch, episodes) =
        sre_windows(&seeds, 512, 64, loopcast_core::Frequency::minutes(5), &SreLayout::full())?;
    let forecast = model.forecast(&batch, &ForecastOptions::default())?;
    let median = model.config().median_level();
    let (c, l, h) = (batch.roles().len(), batch.context(), batch.horizon());
    let (context, _) = batch.context_arrays();
    let (future, known) = batch.future_arrays();
    let names: Vec<String> = episodes[0].history.channels.iter().map(|ch| ch.spec.name.clone()).collect();
    for (pair, episode) in episodes.iter().enumerate() {
        let (base, twin) = (2 * pair, 2 * pair + 1);
        println!("pair {pair} ({:?})", episode.plans[1].0);
        for (ch, role) in batch.roles().iter().enumerate() {
            let row = |b: usize| &future[(b * c + ch) * h..(b * c + ch + 1) * h];
            let history = &context[(base * c + ch) * l..(base * c + ch + 1) * l];
            let spread = spread(history);
            if *role == Role::Target {
                let mut truth = 0.0;
                let mut predicted = 0.0;
                let mut count = 0.0f64;
                for s in 0..h {
                    if known[(base * c + ch) * h + s] && known[(twin * c + ch) * h + s] {
                        truth += f64::from(row(twin)[s] - row(base)[s]);
                        predicted += f64::from(
                            forecast.value(twin, ch, s, median) - forecast.value(base, ch, s, median),
                        );
                        count += 1.0;
                    }
                }
                println!(
                    "  {:<16} true effect {:+.3} sd, predicted {:+.3} sd",
                    names[ch],
                    truth / count.max(1.0) / spread,
                    predicted / count.max(1.0) / spread
                );
            } else if row(base) != row(twin) {
                let first = (0..h).find(|s| row(base)[*s] != row(twin)[*s]).unwrap_or(0);
                println!(
                    "  {:<16} plan differs from step {first}: {} → {} (context last {}, sd {:.3})",
                    names[ch],
                    row(base)[first],
                    row(twin)[first],
                    history[l - 1],
                    spread
                );
            }
        }
    }
    pathway(&model, &batch, episodes.len())?;
    Ok(())
}

/// For each pair, the size of the twins' difference at each stage of the action pathway
/// against the size of what it is added to: the scaled planned values, the action tokens
/// of the first patch, and one core-block step from the (shared) initial state.
fn pathway(
    model: &LoopedWorldModel,
    batch: &ModelBatch,
    pairs: usize,
) -> Result<(), Box<dyn std::error::Error>> {
    let network = model.network();
    let inputs = Inputs::new(batch, model.config(), model.device());
    let (b, t, c) = (batch.batch(), inputs.targets, batch.roles().len());
    let norm = |x: Tensor<3>| -> Result<f32, Box<dyn std::error::Error>> {
        Ok(x.powf_scalar(2.0).sum().sqrt().into_data().try_to_vec::<f32>().map_err(|e| format!("{e:?}"))?[0])
    };
    let encoded = network.encode(&inputs);
    let memory = network.memory_keys(encoded.memory.clone());
    let actions = network.actions(&inputs);
    let [_, a, _, d] = actions.dims();
    let first = actions.slice([0..b, 0..a, 0..1, 0..d]).reshape([b, a, d]);
    let next = network.step(encoded.state.clone(), first.clone(), &memory, 0);
    let [_, s, _] = next.dims();
    let h = inputs.future.dims()[2];
    println!("action pathway (twin minus base | base), first patch:");
    for pair in 0..pairs {
        let (base, twin) = (2 * pair, 2 * pair + 1);
        let row = |x: &Tensor<3>, r: usize, width: usize, from: usize, to: usize| {
            x.clone().slice([r..r + 1, from..to, 0..width])
        };
        let planned = norm(row(&inputs.future, twin, h, t, c) - row(&inputs.future, base, h, t, c))?;
        let tokens = norm(row(&first, twin, d, 0, a) - row(&first, base, d, 0, a))?;
        let stepped = norm(row(&next, twin, d, 0, s) - row(&next, base, d, 0, s))?;
        let update = norm(row(&next, base, d, 0, s) - row(&encoded.state, base, d, 0, s))?;
        println!(
            "  pair {pair}: scaled plan {planned:.3} | {:.3}, action tokens {tokens:.3} | {:.3}, \
             one step {stepped:.4} | update {update:.3}",
            norm(row(&inputs.future, base, h, t, c))?,
            norm(row(&first, base, d, 0, a))?,
        );
    }
    Ok(())
}

/// Standard deviation of `values` (1 when it is zero).
fn spread(values: &[f32]) -> f64 {
    let n = values.len() as f64;
    let mean = values.iter().map(|v| f64::from(*v)).sum::<f64>() / n;
    let sd = (values.iter().map(|v| (f64::from(*v) - mean).powi(2)).sum::<f64>() / n).sqrt();
    if sd > 0.0 { sd } else { 1.0 }
}
