//! Fits the relative action path (`relative_effects`) of a trained model by least squares
//! instead of gradient steps: on SRE twin pairs from training seeds, the shipped network's
//! states and action tokens are whitened to `r − 1` principal directions (plus a constant),
//! and the path's `F × r × r` coefficients are solved so that the level times its effect
//! matches what the twins' true difference leaves unexplained by the network's own,
//! relative to the target's level (clipped to ±5, as `effect_probe` fits). The fitted
//! model is written to `OUT_DIR`, to be scored by `loopcast eval --twins --model OUT_DIR`:
//! `cargo run --release -p loopcast-train --example relative_fit -- RECIPE.toml MODEL_DIR OUT_DIR [PAIRS]`.

use burn::tensor::{Tensor, TensorData};
use loopcast_model::{
    DeviceKind, Inputs, LoopControl, LoopedWorldModel, ModelConfig, RELATIVE_FEATURES, RELATIVE_RANK,
};
use loopcast_train::TrainConfig;
use loopcast_train::data::{Source, training_batch};
use nalgebra::{DMatrix, DVector, SymmetricEigen};

/// First step index of the batches fitted on (a recipe's runs use the steps below it).
const FIRST_STEP: u64 = 2_000_000;
/// Relative effects beyond this are clipped when fitting (error rates from near zero).
const CLIP: f64 = 5.0;
/// The smallest effect size a pair's cells are divided by (relative to the level).
const MIN_SIZE: f64 = 0.05;

/// One batch's arrays, row-major as the network's tensors.
struct Collected {
    b: usize,
    steps: usize,
    targets: usize,
    actions: usize,
    p: usize,
    states: Vec<f32>,
    tokens: Vec<f32>,
    features: Vec<f32>,
    level: Vec<f32>,
    truth: Vec<f32>,
    mask: Vec<f32>,
    median: Vec<f32>,
}

fn values<const D: usize>(x: Tensor<D>) -> Vec<f32> {
    x.into_data().try_to_vec::<f32>().expect("f32 tensors")
}

/// Whitening to the top `k` principal directions of `rows` (each `d` wide): the mean,
/// the directions (columns) and their standard deviations.
fn whitening(rows: &[f32], d: usize, k: usize) -> (DVector<f64>, DMatrix<f64>, Vec<f64>) {
    let n = rows.len() / d;
    let x = DMatrix::from_row_slice(n, d, &rows.iter().map(|v| f64::from(*v)).collect::<Vec<_>>());
    let mean = DVector::from_fn(d, |j, _| x.column(j).mean());
    let centred = DMatrix::from_fn(n, d, |i, j| x[(i, j)] - mean[j]);
    let covariance = centred.transpose() * &centred / n as f64;
    let eigen = SymmetricEigen::new(covariance);
    let mut order: Vec<usize> = (0..d).collect();
    order.sort_by(|a, b| eigen.eigenvalues[*b].total_cmp(&eigen.eigenvalues[*a]));
    let directions = DMatrix::from_fn(d, k, |i, j| eigen.eigenvectors[(i, order[j])]);
    let spread = (0..k).map(|j| eigen.eigenvalues[order[j]].max(1e-9).sqrt()).collect();
    (mean, directions, spread)
}

/// `[k]` whitened coordinates of `row` plus the constant 1.
fn whiten(row: &[f32], (mean, directions, spread): &(DVector<f64>, DMatrix<f64>, Vec<f64>)) -> Vec<f64> {
    let k = spread.len();
    let mut out: Vec<f64> = (0..k)
        .map(|j| {
            (0..row.len()).map(|i| (f64::from(row[i]) - mean[i]) * directions[(i, j)]).sum::<f64>()
                / spread[j]
        })
        .collect();
    out.push(1.0);
    out
}

/// An affine layer computing `whiten` then `matrix` (`[out, k + 1]`): `[d, out]` weight, `[out]` bias.
fn affine(
    matrix: &DMatrix<f64>,
    (mean, directions, spread): &(DVector<f64>, DMatrix<f64>, Vec<f64>),
) -> (Vec<f32>, Vec<f32>) {
    let (out, k, d) = (matrix.nrows(), spread.len(), mean.len());
    // Each direction's value at the mean, which the whitening subtracts.
    let centre: Vec<f64> = (0..k).map(|j| (0..d).map(|i| directions[(i, j)] * mean[i]).sum()).collect();
    let mut weight = vec![0f32; d * out];
    let mut bias = vec![0f32; out];
    for o in 0..out {
        let mut constant = matrix[(o, k)];
        for j in 0..k {
            let c = matrix[(o, j)] / spread[j];
            for i in 0..d {
                weight[i * out + o] += (c * directions[(i, j)]) as f32;
            }
            constant -= c * centre[j];
        }
        bias[o] = constant as f32;
    }
    (weight, bias)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [recipe, dir, out, rest @ ..] = args.as_slice() else {
        return Err("usage: relative_fit RECIPE.toml MODEL_DIR OUT_DIR [PAIRS]".into());
    };
    let pairs: usize = rest.first().map_or(Ok(1024), |a| a.parse())?;
    let device = DeviceKind::Cpu.device()?;
    let base = LoopedWorldModel::load(dir, &device)?;
    let config = ModelConfig { relative_effects: true, ..base.config().clone() };
    let extended = LoopedWorldModel::load_into(dir, &config, &device)?
        .ok_or("the model does not take the relative path")?;
    let mut recipe = TrainConfig::from_file(recipe)?;
    recipe.model.config = base.config().clone();
    let network = base.network();
    let control = LoopControl {
        min_loops: config.min_loops,
        max_loops: config.max_loops,
        exit_threshold: config.exit_threshold,
    };
    let median_level = config.median_level();
    let (mut batches, mut seen, mut index) = (Vec::new(), 0, FIRST_STEP);
    while seen < pairs {
        let step = training_batch(&recipe, index)?;
        index += 1;
        if step.source != Source::Sre {
            continue;
        }
        let inputs = Inputs::new(&step.batch, &config, &device);
        let encoded = network.encode(&inputs);
        let memory = network.memory_keys(encoded.memory);
        let rollout = network.rollout(&inputs, encoded.state, memory, control);
        let patches: Vec<usize> = (0..rollout.states.len()).collect();
        let quantiles = network.decode(&inputs, &rollout.actions, rollout.states.clone(), &patches);
        let [b, targets, len, _] = quantiles.dims();
        let median = values(quantiles.slice([0..b, 0..targets, 0..len, median_level..median_level + 1]));
        // Batches whose actions were dropped (`data.drop_actions_share`) have none to fit.
        let Some(design) =
            extended.network().relative_inputs(&inputs, &rollout.actions, rollout.states, &patches)
        else {
            continue;
        };
        let [_, steps, actions, _] = design.tokens.dims();
        batches.push(Collected {
            b,
            steps,
            targets,
            actions,
            p: config.patch_len,
            states: values(design.states),
            tokens: values(design.tokens),
            features: values(design.features),
            level: values(design.level),
            truth: values(inputs.future.clone().slice([0..b, 0..targets, 0..len])),
            mask: values(inputs.future_mask.clone().slice([0..b, 0..targets, 0..len])),
            median,
        });
        seen += b / 2;
    }
    let d = config.d_model;
    let k = RELATIVE_RANK - 1;
    let all = |pick: fn(&Collected) -> &Vec<f32>| -> Vec<f32> {
        batches.iter().flat_map(|c| pick(c).iter().copied()).collect()
    };
    let state_whitening = whitening(&all(|c| &c.states), d, k);
    let token_whitening = whitening(&all(|c| &c.tokens), d, k);
    let (f, r) = (RELATIVE_FEATURES, RELATIVE_RANK);
    let unknowns = f * r * r;
    let mut gram = DMatrix::<f64>::zeros(unknowns, unknowns);
    let mut moment = DVector::<f64>::zeros(unknowns);
    let (mut rows, mut squares) = (0usize, 0f64);
    for c in &batches {
        let len = c.steps * c.p;
        let whitened_states: Vec<Vec<f64>> =
            c.states.chunks(d).map(|row| whiten(row, &state_whitening)).collect();
        let whitened_tokens: Vec<Vec<f64>> =
            c.tokens.chunks(d).map(|row| whiten(row, &token_whitening)).collect();
        let mut x_rows: Vec<f64> = Vec::new();
        let mut ys: Vec<f64> = Vec::new();
        for pair in 0..c.b / 2 {
            let (base_row, twin_row) = (2 * pair, 2 * pair + 1);
            for t in 0..c.targets {
                let level = f64::from(c.level[base_row * c.targets + t]);
                if level < 1e-6 {
                    continue;
                }
                let first = ys.len();
                for h in (0..len).step_by(2) {
                    let cell = |row: usize, x: &[f32]| f64::from(x[(row * c.targets + t) * len + h]);
                    if cell(base_row, &c.mask) == 0.0 || cell(twin_row, &c.mask) == 0.0 {
                        continue;
                    }
                    let unexplained = (cell(twin_row, &c.truth) - cell(base_row, &c.truth))
                        - (cell(twin_row, &c.median) - cell(base_row, &c.median));
                    let (s, step) = (h / c.p, h % c.p);
                    let mut x = vec![0f64; unknowns];
                    for (row, sign) in [(twin_row, 1.0), (base_row, -1.0)] {
                        let state = &whitened_states[(row * c.steps + s) * c.targets + t];
                        for feature in 0..f {
                            for a in 0..c.actions {
                                let value = f64::from(
                                    c.features[((row * c.steps + s) * f * c.actions
                                        + feature * c.actions
                                        + a)
                                        * c.p
                                        + step],
                                );
                                if value == 0.0 {
                                    continue;
                                }
                                let token = &whitened_tokens[(row * c.steps + s) * c.actions + a];
                                for i in 0..r {
                                    for j in 0..r {
                                        x[(feature * r + i) * r + j] += sign * value * state[i] * token[j];
                                    }
                                }
                            }
                        }
                    }
                    x_rows.extend(x);
                    ys.push((unexplained / level).clamp(-CLIP, CLIP));
                }
                // Each pair's target counts by its error relative to its own effect's size,
                // as the effect error does, not by the size: a queue's ±5 would drown a CPU's 0.2.
                let cells = ys.len() - first;
                if cells > 0 {
                    let size = ys[first..].iter().map(|y| y.abs()).sum::<f64>() / cells as f64;
                    let weight = 1.0 / size.max(MIN_SIZE);
                    ys[first..].iter_mut().for_each(|y| *y *= weight);
                    x_rows[first * unknowns..].iter_mut().for_each(|x| *x *= weight);
                }
            }
        }
        let n = ys.len();
        if n == 0 {
            continue;
        }
        squares += ys.iter().map(|y| y * y).sum::<f64>();
        let x = DMatrix::from_row_slice(n, unknowns, &x_rows);
        gram += x.transpose() * &x;
        moment += x.transpose() * DVector::from_vec(ys);
        rows += n;
    }
    let ridge = 1e-3 * gram.trace() / unknowns as f64;
    let regularised = &gram + DMatrix::<f64>::identity(unknowns, unknowns) * ridge;
    let solution =
        regularised.cholesky().ok_or("the normal equations are not positive definite")?.solve(&moment);
    let residual = squares - 2.0 * solution.dot(&moment) + solution.dot(&(&gram * &solution));
    println!(
        "fitted {unknowns} coefficients on {rows} cells of {seen} twin pairs: R² {:.3} of the level-relative effect",
        1.0 - residual / squares
    );
    // State side: whitened coordinates and the constant. Action side: per feature, the
    // `[r, r]` block times the whitened token.
    let identity = DMatrix::<f64>::identity(r, r);
    let (state_weight, state_bias) = affine(&identity, &state_whitening);
    let blocks = DMatrix::from_fn(f * r, r, |row, j| solution[row * r + j]);
    let (action_weight, action_bias) = affine(&blocks, &token_whitening);
    let tensor2 =
        |data: Vec<f32>, shape: [usize; 2]| Tensor::<2>::from_data(TensorData::new(data, shape), &device);
    let tensor1 = |data: Vec<f32>| {
        let n = data.len();
        Tensor::<1>::from_data(TensorData::new(data, [n]), &device)
    };
    let fitted = extended
        .network()
        .clone()
        .with_relative_weights(
            (tensor2(state_weight, [d, r]), tensor1(state_bias)),
            (tensor2(action_weight, [d, f * r]), tensor1(action_bias)),
        )
        .ok_or("the fitted weights do not fit the path")?;
    LoopedWorldModel::from_network(fitted, config, &device).save(out)?;
    println!("wrote {out}");
    Ok(())
}
