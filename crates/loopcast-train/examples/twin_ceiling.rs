//! How low the twin loss can go: the training loss's twin term (`loss::twin_loss`: the
//! predicted minus the true twin difference, in scaled units, over each series' size) for
//! predicting no effect, for a model (the shipped one unless MODEL_DIR is given) and for
//! the simulator's oracle (the median difference over 32 redrawn futures,
//! `Episode::redrawn_futures`), per target channel, on SRE twin windows no run trains on
//! (5-minute steps, context 512, horizon 64). `--asinh` scores the bounded form instead
//! (`TwinScale::Asinh`: each twin mapped by `asinh(x / unit)` before the difference):
//! `cargo run --release -p loopcast-train --example twin_ceiling -- [EPISODES] [MODEL_DIR] [--asinh]`.

use loopcast_core::Frequency;
use loopcast_model::{Device, ForecastOptions, Inputs, LoopedWorldModel};
use loopcast_sim::TARGET_CHANNELS;
use loopcast_train::data::{EVALUATION_SEEDS, SreLayout, sre_windows};

/// Seeds past the model card's evaluation windows.
const FIRST_SEED: u64 = EVALUATION_SEEDS + (1 << 40);
/// Redrawn futures per episode.
const DRAWS: usize = 32;
/// The recipe's least series size (`naive_floor`).
const NAIVE_FLOOR: f32 = 0.05;

fn values(x: burn::tensor::Tensor<3>) -> Vec<f32> {
    x.into_data().try_to_vec::<f32>().expect("f32 tensor")
}

fn middle(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    if values.is_empty() { 0.0 } else { values[values.len() / 2] }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let episodes: u64 = std::env::args().nth(1).map_or(Ok(64), |a| a.parse())?;
    let device = Device::flex();
    let model = match std::env::args().nth(2).filter(|a| !a.starts_with("--")) {
        Some(dir) => LoopedWorldModel::load(dir, &device)?,
        None => LoopedWorldModel::shipped(&device)?,
    };
    let (context, horizon) = (512, 64);
    let seeds: Vec<u64> = (FIRST_SEED..FIRST_SEED + episodes).collect();
    let (batch, episodes) = sre_windows(&seeds, context, horizon, Frequency::minutes(5), &SreLayout::full())?;
    let inputs = Inputs::new(&batch, model.config(), &device);
    let forecast = model.forecast(&batch, &ForecastOptions::default())?;
    let median = model.config().median_level();
    let [b, c, len] = inputs.future.dims();
    let t = inputs.targets;
    let (future, mask) = (values(inputs.future.clone()), values(inputs.future_mask.clone()));
    let (scale, unit) = (values(inputs.scale.clone()), values(inputs.naive_error.clone()));
    let location = values(inputs.location.clone());
    let asinh = std::env::args().any(|a| a == "--asinh");
    // Per target: summed loss of "no effect", of the model and of the oracle, and cells.
    let (mut none, mut learned, mut oracle, mut cells) = (vec![0f64; t], vec![0f64; t], vec![0f64; t], 0f64);
    // Per target: the oracle's largest loss from one pair.
    let mut worst = vec![0f64; t];
    for (i, episode) in episodes.iter().enumerate() {
        let draws = episode.redrawn_futures(DRAWS)?;
        let (base, twin) = (2 * i, 2 * i + 1);
        for target in 0..t {
            let at = |row: usize, h: usize| (row * c + target) * len + h;
            let size = |row: usize| {
                let seen: Vec<f32> = (0..horizon)
                    .filter(|h| mask[at(row, *h)] > 0.5)
                    .map(|h| future[at(row, h)].abs())
                    .collect();
                let mean = seen.iter().sum::<f32>() / seen.len().max(1) as f32;
                mean.max(1.0) * unit[row * t + target].max(NAIVE_FLOOR)
            };
            let size = size(base).max(size(twin));
            let scale = f64::from(scale[base * c + target]);
            let location = f64::from(location[base * c + target]);
            let u = f64::from(unit[base * t + target].max(NAIVE_FLOOR));
            let f = |x: f64| (x / u).asinh();
            let before = oracle[target];
            for h in 0..horizon {
                if mask[at(base, h)] < 0.5 || mask[at(twin, h)] < 0.5 {
                    continue;
                }
                if target == 0 {
                    cells += 1.0;
                }
                let truth = f64::from(future[at(twin, h)] - future[at(base, h)]);
                let mut differences: Vec<f64> = draws
                    .iter()
                    .map(|futures| {
                        let channel = |plan: usize| &futures[plan].channels[target];
                        (channel(1).values[h] - channel(0).values[h]) / scale
                    })
                    .collect();
                let point = |row: usize| f64::from(forecast.value(row, target, h, median));
                if asinh {
                    let scaled = |x: f64| (x - location) / scale;
                    let truth = f(f64::from(future[at(twin, h)])) - f(f64::from(future[at(base, h)]));
                    let mut differences: Vec<f64> = draws
                        .iter()
                        .map(|futures| {
                            let value = |plan: usize| f(scaled(futures[plan].channels[target].values[h]));
                            value(1) - value(0)
                        })
                        .collect();
                    let predicted = middle(&mut differences);
                    none[target] += truth.abs();
                    learned[target] += (f(scaled(point(twin))) - f(scaled(point(base))) - truth).abs();
                    oracle[target] += (predicted - truth).abs();
                } else {
                    let predicted = middle(&mut differences);
                    none[target] += truth.abs() / f64::from(size);
                    learned[target] += ((point(twin) - point(base)) / scale - truth).abs() / f64::from(size);
                    oracle[target] += (predicted - truth).abs() / f64::from(size);
                }
            }
            worst[target] = worst[target].max(oracle[target] - before);
        }
    }
    let cells = cells * t as f64;
    println!("{} twin pairs, {b} rows; twin loss (mean over cells of every target):", episodes.len());
    println!(
        "| target | no effect | model | oracle | model ÷ no effect | oracle ÷ no effect | oracle's worst pair |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|");
    let row = |name: &str, none: f64, learned: f64, oracle: f64, worst: f64| {
        let ratio = |x: f64| x / none.max(1e-12);
        println!(
            "| {name} | {:.4} | {:.4} | {:.4} | {:.2} | {:.2} | {:.0} % |",
            none / cells,
            learned / cells,
            oracle / cells,
            ratio(learned),
            ratio(oracle),
            100.0 * worst / oracle.max(1e-12)
        );
    };
    for target in 0..t {
        row(TARGET_CHANNELS[target], none[target], learned[target], oracle[target], worst[target]);
    }
    let worst = worst.iter().copied().fold(0.0, f64::max);
    row("all", none.iter().sum(), learned.iter().sum(), oracle.iter().sum(), worst);
    Ok(())
}
