//! The relative action path fitted by least squares after training (`effects.relative_pairs`,
//! docs/experiments/effects.md, "The relative path, fitted"): gradient steps do not open it, a linear
//! solve on a frozen network does.
//!
//! On SRE twin pairs drawn like the recipe's own (from step indices no run reaches), the
//! trained network's target states and action tokens, each with its channel's kind cues
//! (size, spread, whole numbers, changes, bounds, time at its lowest), are told apart by
//! kind — a linear discriminant of the SRE world's seven targets and four actions, the
//! softmax of whose logits the path reads — and the path's coefficients per (action
//! kind, unit, feature, target kind) are solved so that the units times their effects
//! match what the twins' true difference leaves unexplained by the network's own
//! prediction, relative to the target's level or its spread, whichever is larger
//! (clipped to ±5), each pair's target weighed by one over its effect's size.

use burn::tensor::{Tensor, TensorData};
use indicatif::{ProgressBar, ProgressStyle};
use loopcast_model::{
    Inputs, KIND_CUES, LoopControl, LoopedWorldModel, ModelConfig, RELATIVE_ACTION_KINDS, RELATIVE_FEATURES,
    RELATIVE_TARGET_KINDS, RELATIVE_UNITS,
};
use nalgebra::{DMatrix, DVector};
use serde::Serialize;

use crate::TrainConfig;
use crate::TrainError;
use crate::data::{Source, training_batch};
use crate::trainer::stable_ids;

/// First step index of the batches fitted on: far beyond any recipe's steps, so the fit
/// sees windows no training step saw.
const FIRST_STEP: u64 = 2_000_000;
/// Relative effects beyond this are clipped (error rates from near zero).
const CLIP: f64 = 5.0;
/// The least level, in scaled units (the context's spread), that effects are fitted
/// relative to.
const LEAST_LEVEL: f64 = 1.0;
/// The smallest effect size a pair's cells are divided by (relative to the level).
const MIN_SIZE: f64 = 0.05;
/// Ridge of the normal equations, as a share of their mean diagonal.
const RIDGE: f64 = 1e-3;

/// How the fit went (written to the run's `summary.json`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RelativeFit {
    /// Twin pairs fitted on.
    pub pairs: usize,
    /// Target cells (pair × target × every other step) in the least squares.
    pub cells: usize,
    /// Coefficients solved.
    pub coefficients: usize,
    /// Share of the weighted level-relative effect the path explains.
    pub r_squared: f64,
    /// Share of target states whose kind the discriminant tells right.
    pub target_kinds_right: f64,
    /// Share of action tokens whose kind the discriminant tells right.
    pub action_kinds_right: f64,
}

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
    units: Vec<f32>,
    truth: Vec<f32>,
    mask: Vec<f32>,
    median: Vec<f32>,
}

fn values<const D: usize>(x: Tensor<D>) -> Vec<f32> {
    x.into_data().try_to_vec::<f32>().expect("f32 tensors")
}

/// `model` with the relative action path added and fitted on `pairs` twin pairs of the
/// recipe `recipe` (its seed and data settings). `model` must not have the path yet.
pub fn fit_relative_path(
    model: &LoopedWorldModel,
    recipe: &TrainConfig,
    pairs: usize,
    progress: bool,
) -> Result<(LoopedWorldModel, RelativeFit), TrainError> {
    let base = model.config();
    if base.relative_effects {
        return Err(TrainError::Data("the model already has a relative action path".into()));
    }
    let device = model.device().clone();
    let config = ModelConfig { relative_effects: true, ..base.clone() };
    let network = model.network();
    let extended = network.clone().with_relative_path(&device);
    let mut recipe = recipe.clone();
    recipe.model.config = base.clone();
    // The fit reads its batches as twin pairs (rows 2i and 2i + 1), whatever the recipe
    // trained on.
    recipe.data.plans_per_history = 2;
    // Only SRE twins are read: the steps the recipe gives real series are the prior's.
    recipe.data.real_share = 0.0;
    let control = LoopControl {
        min_loops: base.min_loops,
        max_loops: base.max_loops,
        exit_threshold: base.exit_threshold,
    };
    let median_level = base.median_level();
    let bar = if progress { ProgressBar::new(pairs as u64) } else { ProgressBar::hidden() };
    bar.set_style(
        ProgressStyle::with_template(
            "{spinner} relative path: twin pair {pos}/{len} [{elapsed_precise}<{eta_precise}]",
        )
        .expect("a valid template"),
    );
    let (mut batches, mut seen, mut index) = (Vec::new(), 0, FIRST_STEP);
    while seen < pairs {
        let step = training_batch(&recipe, index)?;
        index += 1;
        if step.source != Source::Sre {
            continue;
        }
        let inputs = Inputs::new(&step.batch, base, &device);
        let encoded = network.encode(&inputs);
        let memory = network.memory_keys(encoded.memory);
        let rollout = network.rollout(&inputs, encoded.state, memory, control);
        let patches: Vec<usize> = (0..rollout.states.len()).collect();
        // Batches whose actions were dropped (`data.drop_actions_share`) have none to fit.
        let Some(design) =
            extended.relative_inputs(&inputs, &rollout.actions, rollout.states.clone(), &patches)
        else {
            continue;
        };
        let quantiles = network.decode(&inputs, &rollout.actions, rollout.states, &patches);
        let [b, targets, len, _] = quantiles.dims();
        let [_, steps, actions, _] = design.tokens.dims();
        batches.push(Collected {
            b,
            steps,
            targets,
            actions,
            p: base.patch_len,
            states: values(design.states),
            tokens: values(design.tokens),
            features: values(design.features),
            units: values(design.units),
            truth: values(inputs.future.clone().slice([0..b, 0..targets, 0..len])),
            mask: values(inputs.future_mask.clone().slice([0..b, 0..targets, 0..len])),
            median: values(quantiles.slice([0..b, 0..targets, 0..len, median_level..median_level + 1])),
        });
        seen += b / 2;
        bar.set_position(seen.min(pairs) as u64);
    }
    bar.finish_and_clear();
    // The width of a state or token with its kind cues.
    let d = base.d_model + KIND_CUES;
    // The kinds are told apart on the batches that carry every target and every action
    // channel, in the SRE world's order.
    let full = |pick: fn(&Collected) -> Option<&Vec<f32>>| -> Vec<f32> {
        batches.iter().filter_map(pick).flat_map(|x| x.iter().copied()).collect()
    };
    let no_full = || TrainError::Data("no twin batch carries every target and action channel".into());
    let target_kinds = discriminant(
        &full(|c| (c.targets == RELATIVE_TARGET_KINDS).then_some(&c.states)),
        d,
        RELATIVE_TARGET_KINDS,
    )
    .ok_or_else(no_full)?;
    let action_kinds = discriminant(
        &full(|c| (c.actions == RELATIVE_ACTION_KINDS).then_some(&c.tokens)),
        d,
        RELATIVE_ACTION_KINDS,
    )
    .ok_or_else(no_full)?;
    let (f, r, k_a) = (RELATIVE_FEATURES, RELATIVE_TARGET_KINDS + 1, RELATIVE_ACTION_KINDS);
    // Unknown `(i, u, f, j)`: action kind `i`, unit `u`, feature `f`, target kind `j` (the
    // last is the constant), laid out as the coefficients' `[K_a, U·F·r]` weight.
    let unknowns = k_a * RELATIVE_UNITS * f * r;
    let mut gram = DMatrix::<f64>::zeros(unknowns, unknowns);
    let mut moment = DVector::<f64>::zeros(unknowns);
    let (mut cells, mut squares) = (0usize, 0f64);
    for c in &batches {
        let (x, ys) =
            pair_rows(c, &target_kinds.shares(&c.states, d, true), &action_kinds.shares(&c.tokens, d, false));
        if ys.is_empty() {
            continue;
        }
        squares += ys.iter().map(|y| y * y).sum::<f64>();
        let x = DMatrix::from_row_slice(ys.len(), unknowns, &x);
        gram += x.transpose() * &x;
        moment += x.transpose() * DVector::from_vec(ys);
        cells += x.nrows();
    }
    let ridge = RIDGE * gram.trace() / unknowns as f64;
    let solution = (&gram + DMatrix::<f64>::identity(unknowns, unknowns) * ridge)
        .cholesky()
        .ok_or_else(|| TrainError::Data("the relative path's normal equations are singular".into()))?
        .solve(&moment);
    let residual = squares - 2.0 * solution.dot(&moment) + solution.dot(&(&gram * &solution));
    let tensor2 =
        |data: Vec<f32>, shape: [usize; 2]| Tensor::<2>::from_data(TensorData::new(data, shape), &device);
    let tensor1 = |data: Vec<f32>| {
        let n = data.len();
        Tensor::<1>::from_data(TensorData::new(data, [n]), &device)
    };
    let fitted = extended
        .with_relative_weights(
            (tensor2(target_kinds.weight, [d, RELATIVE_TARGET_KINDS]), tensor1(target_kinds.bias)),
            (tensor2(action_kinds.weight, [d, k_a]), tensor1(action_kinds.bias)),
            tensor2(solution.iter().map(|v| *v as f32).collect(), [k_a, RELATIVE_UNITS * f * r]),
        )
        .expect("the fitted weights have the path's shapes");
    let fit = RelativeFit {
        pairs: seen,
        cells,
        coefficients: unknowns,
        r_squared: 1.0 - residual / squares.max(f64::MIN_POSITIVE),
        target_kinds_right: target_kinds.right,
        action_kinds_right: action_kinds.right,
    };
    // Ids from the parameters' paths, not drawn at random, so a rerun writes the same file.
    Ok((LoopedWorldModel::from_network(stable_ids(fitted, false), config, &device), fit))
}

/// One batch's least-squares rows: per twin pair, target and every other future step,
/// the difference of the two twins' path inputs (`[unknowns]` each) and the effect the
/// network's own prediction leaves unexplained, both relative to the target's level (at
/// least [`LEAST_LEVEL`]), each pair and target weighed by one over its effect's size.
fn pair_rows(c: &Collected, state_kinds: &[Vec<f64>], token_kinds: &[Vec<f64>]) -> (Vec<f64>, Vec<f64>) {
    let (f, r, k_a, n_u) =
        (RELATIVE_FEATURES, RELATIVE_TARGET_KINDS + 1, RELATIVE_ACTION_KINDS, RELATIVE_UNITS);
    let unknowns = k_a * n_u * f * r;
    let len = c.steps * c.p;
    let (mut x_rows, mut ys) = (Vec::new(), Vec::new());
    for pair in 0..c.b / 2 {
        let (base_row, twin_row) = (2 * pair, 2 * pair + 1);
        for t in 0..c.targets {
            // Effects are fitted relative to the target's level (the first unit, the same at
            // every step), or to its spread where the level is lower (an error rate near zero
            // would otherwise make every unit huge).
            let level = f64::from(c.units[(base_row * c.steps * c.targets + t) * n_u * c.p]).max(LEAST_LEVEL);
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
                    let state = &state_kinds[(row * c.steps + s) * c.targets + t];
                    // Each unit relative to the level, as the effect is.
                    let units: Vec<f64> = (0..n_u)
                        .map(|u| {
                            let at = (((row * c.steps + s) * c.targets + t) * n_u + u) * c.p + step;
                            f64::from(c.units[at]) / level
                        })
                        .collect();
                    for feature in 0..f {
                        for a in 0..c.actions {
                            let at =
                                ((row * c.steps + s) * f * c.actions + feature * c.actions + a) * c.p + step;
                            let value = f64::from(c.features[at]);
                            if value == 0.0 {
                                continue;
                            }
                            let token = &token_kinds[(row * c.steps + s) * c.actions + a];
                            for (i, share) in token.iter().enumerate() {
                                for (u, unit) in units.iter().enumerate() {
                                    for (j, kind) in state.iter().enumerate() {
                                        x[((i * n_u + u) * f + feature) * r + j] +=
                                            sign * value * share * unit * kind;
                                    }
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
            let n = ys.len() - first;
            if n > 0 {
                let size = ys[first..].iter().map(|y| y.abs()).sum::<f64>() / n as f64;
                let weight = 1.0 / size.max(MIN_SIZE);
                ys[first..].iter_mut().for_each(|y| *y *= weight);
                x_rows[first * unknowns..].iter_mut().for_each(|x| *x *= weight);
            }
        }
    }
    (x_rows, ys)
}

/// A linear discriminant of channel kinds: logits `wᵀx + b`, `[d, K]` weight.
struct Discriminant {
    weight: Vec<f32>,
    bias: Vec<f32>,
    /// Share of the rows it was fitted on that it tells right.
    right: f64,
}

/// The linear discriminant of `k` kinds on `d`-wide rows whose kind is their index modulo
/// `k` (a batch's targets or its action channels in the SRE world's order): logits
/// `μ_kᵀ Σ⁻¹ x − ½ μ_kᵀ Σ⁻¹ μ_k`, `Σ` the within-kind covariance. `None` without rows.
fn discriminant(rows: &[f32], d: usize, k: usize) -> Option<Discriminant> {
    let n = rows.len() / d;
    if n < k {
        return None;
    }
    let row = |i: usize| DVector::from_iterator(d, rows[i * d..(i + 1) * d].iter().map(|v| f64::from(*v)));
    let mut means = vec![DVector::<f64>::zeros(d); k];
    for i in 0..n {
        means[i % k] += row(i);
    }
    means.iter_mut().for_each(|m| *m /= (n / k) as f64);
    let mut within = DMatrix::<f64>::zeros(d, d);
    for i in 0..n {
        let x = row(i) - &means[i % k];
        within += &x * x.transpose();
    }
    within /= n as f64;
    let ridge = 1e-3 * within.trace() / d as f64;
    let precision = (within + DMatrix::<f64>::identity(d, d) * ridge).cholesky()?.inverse();
    let directions: Vec<DVector<f64>> = means.iter().map(|m| &precision * m).collect();
    let bias: Vec<f64> = means.iter().zip(&directions).map(|(m, w)| -0.5 * m.dot(w)).collect();
    let right = (0..n)
        .filter(|i| {
            let x = row(*i);
            let logit = |kind: usize| directions[kind].dot(&x) + bias[kind];
            (0..k).max_by(|a, b| logit(*a).total_cmp(&logit(*b))) == Some(i % k)
        })
        .count();
    let mut weight = vec![0f32; d * k];
    for (kind, w) in directions.iter().enumerate() {
        for i in 0..d {
            weight[i * k + kind] = w[i] as f32;
        }
    }
    Some(Discriminant {
        weight,
        bias: bias.into_iter().map(|b| b as f32).collect(),
        right: right as f64 / n as f64,
    })
}

impl Discriminant {
    /// Per `d`-wide row, the softmax of its logits, with a constant 1 appended when
    /// `constant`: what the network's relative path computes from these weights.
    fn shares(&self, rows: &[f32], d: usize, constant: bool) -> Vec<Vec<f64>> {
        let k = self.bias.len();
        rows.chunks(d)
            .map(|x| {
                let logits: Vec<f64> = (0..k)
                    .map(|kind| {
                        f64::from(self.bias[kind])
                            + (0..d)
                                .map(|i| f64::from(x[i]) * f64::from(self.weight[i * k + kind]))
                                .sum::<f64>()
                    })
                    .collect();
                let top = logits.iter().copied().fold(f64::NEG_INFINITY, f64::max);
                let exp: Vec<f64> = logits.iter().map(|l| (l - top).exp()).collect();
                let total: f64 = exp.iter().sum();
                let mut shares: Vec<f64> = exp.iter().map(|e| e / total).collect();
                if constant {
                    shares.push(1.0);
                }
                shares
            })
            .collect()
    }
}
