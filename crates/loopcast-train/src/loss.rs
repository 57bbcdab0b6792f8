//! The training loss of DESIGN.md §4: pinball over quantiles and horizon, latent
//! consistency, contraction of the loop, and the exit gate's cross-entropy — each term
//! weighted by the config and reported on its own.

use burn::tensor::activation::relu;
use burn::tensor::{Device, Int, Tensor, TensorData};
use loopcast_model::{Inputs, ModelBatch, Network};
use serde::{Deserialize, Serialize};

use crate::data::{Source, StepBatch};
use crate::{LossConfig, TrainConfig, TrainError, TwinScale};

/// The value of every loss term of one step (unweighted) and their weighted total.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct LossValues {
    /// Weighted sum of the terms.
    pub total: f64,
    /// Mean pinball loss over observed target cells and quantiles, scaled units, each
    /// series divided by its horizon's mean absolute scaled value (when above 1).
    pub pinball: f64,
    /// Mean squared distance of a rolled-out state to the encoding of the true future,
    /// both standardised per token.
    pub consistency: f64,
    /// Mean excess of a loop's change over `ρ` times the previous loop's.
    pub contraction: f64,
    /// Exit-gate binary cross-entropy.
    pub gate: f64,
    /// Mean absolute error of the predicted twin difference (median of the departing
    /// twin minus median of the base twin) against the true one, in scaled units (in
    /// asinh units with `loss.twin_scale = "asinh"`); 0 on batches without twins.
    #[serde(default)]
    pub twin: f64,
    /// Mean absolute error of the expected plan's log ratios against the operator's
    /// realised plan (`model.expected_plan`); 0 without the head or action channels.
    #[serde(default)]
    pub plan: f64,
}

impl LossValues {
    /// Adds every term of `other` (for averages over steps).
    pub fn accumulate(&mut self, other: &Self) {
        self.total += other.total;
        self.pinball += other.pinball;
        self.consistency += other.consistency;
        self.contraction += other.contraction;
        self.gate += other.gate;
        self.twin += other.twin;
        self.plan += other.plan;
    }

    /// Every term divided by `n`.
    pub fn divided(&self, n: f64) -> Self {
        Self {
            total: self.total / n,
            pinball: self.pinball / n,
            consistency: self.consistency / n,
            contraction: self.contraction / n,
            gate: self.gate / n,
            twin: self.twin / n,
            plan: self.plan / n,
        }
    }
}

/// The loss of one step on `device` (an autodiff device when training) and its terms.
pub fn step_loss(
    network: &Network,
    config: &TrainConfig,
    step: &StepBatch,
    device: &Device,
) -> Result<(Tensor<1>, LossValues), TrainError> {
    let model = &config.model.config;
    let weights = &config.loss;
    let inputs = Inputs::new(&step.batch, model, device);
    let (b, t, p) = (step.batch.batch(), inputs.targets, model.patch_len);
    let q = model.quantiles.len();
    let encoded = network.encode(&inputs);
    let expected = network.expected_plan(&inputs, &encoded);
    let inputs = inputs.with_expected_plan(expected.clone());
    let memory = network.memory_keys(encoded.memory.clone());
    let trace =
        network.rollout_fixed(&inputs, encoded.state.clone(), memory, step.loops, config.loops.grad_loops);
    let k = trace.states.len();
    let r = step.loops;
    let levels = Tensor::<1>::from_data(
        TensorData::new(model.quantiles.iter().map(|l| *l as f32).collect::<Vec<_>>(), [q]),
        device,
    );
    let truth = inputs.future.clone().slice([0..b, 0..t, 0..k * p]);
    let mask = inputs.future_mask.clone().slice([0..b, 0..t, 0..k * p]);
    let observed = mask.clone().sum().clamp_min(1.0);
    let zero = || Tensor::<1>::zeros([1], device);

    let patches: Vec<usize> = (0..k).collect();
    // The plan's direct effect learns from twin differences only (see `decode_parts`).
    let (quantiles, effect) = network.decode_parts(&inputs, &trace.actions, trace.states.clone(), &patches);
    let (observed_quantiles, quantiles) = match effect {
        Some(effect) => (quantiles.clone() + effect.clone().detach(), quantiles + effect),
        None => (quantiles.clone(), quantiles),
    };
    let per_cell = pinball(
        truth.clone().reshape([b, t, k * p, 1]),
        observed_quantiles,
        levels.clone().reshape([1, 1, 1, q]),
    )
    .mean_dim(3)
    .reshape([b, t, k * p]);
    // Each series' loss is divided by the mean |truth| of its horizon (at least 1, in
    // scaled units): a channel flat in its context and busy in its future (an error rate
    // at zero, then a burst) would otherwise outweigh every other series by orders of
    // magnitude.
    let size = ((truth.clone().abs() * mask.clone()).sum_dim(2) / mask.clone().sum_dim(2).clamp_min(1.0))
        .clamp_min(1.0);
    let size = if weights.naive_floor > 0.0 {
        size * inputs.naive_error.clone().clamp_min(weights.naive_floor)
    } else {
        size
    };
    let pinball_loss = (per_cell * mask.clone() / size.clone()).sum() / observed;
    let twin = if weights.twin > 0.0 && step.source == Source::Sre {
        let plans = config.data.plans_per_history;
        let point =
            quantiles.clone().slice([0..b, 0..t, 0..k * p, model.median_level()..model.median_level() + 1]);
        let point = point.reshape([b, t, k * p]);
        match weights.twin_scale {
            TwinScale::Linear => twin_loss(point, truth.clone(), &mask, &size, plans, weights),
            TwinScale::Log => {
                let per_target = |x: &Tensor<3>| x.clone().slice([0..b, 0..t, 0..1]);
                let (location, scale) = (per_target(&inputs.location), per_target(&inputs.scale));
                let offset = per_target(&inputs.log_offset());
                let log = |x: Tensor<3>| {
                    ((x * scale.clone() + location.clone()).clamp_min(0.0) + offset.clone()).log()
                };
                let ones = Tensor::ones([b, t, 1], device);
                twin_loss(log(point), log(truth.clone()), &mask, &ones, plans, weights)
            }
            TwinScale::Asinh => {
                let unit = inputs.naive_error.clone().clamp_min(weights.naive_floor.max(1e-3));
                let bounded = |x: Tensor<3>| asinh(x / unit.clone());
                twin_loss(
                    bounded(point),
                    bounded(truth.clone()),
                    &mask,
                    &Tensor::ones([b, t, 1], device),
                    plans,
                    weights,
                )
            }
        }
    } else {
        zero()
    };

    let consistency = if weights.consistency > 0.0 {
        let target = network.encode(&Inputs::new(
            &shifted(&step.batch, (step.consistency_patch + 1) * p)?,
            model,
            device,
        ));
        let state = standardise(trace.states[step.consistency_patch.min(k - 1)].clone());
        (state - standardise(target.state.detach())).powf_scalar(2.0).mean()
    } else {
        zero()
    };

    let contraction = if weights.contraction > 0.0 && r > 1 {
        let now = trace.changes.clone().slice([0..b, 0..k, 1..r]);
        let before = trace.changes.clone().slice([0..b, 0..k, 0..r - 1]);
        relu(now - before * weights.contraction_ratio).mean()
    } else {
        zero()
    };

    let gate = if weights.gate > 0.0 {
        // Score every loop count: decode each loop's (detached) state once, batched; with
        // an effect recurrence, which runs over the patches in order, loop by loop.
        let decoded = if model.effect_recurrence {
            let per_loop: Vec<Tensor<4>> = (0..r)
                .map(|round| {
                    let states = trace.loop_states.iter().map(|loops| loops[round].clone()).collect();
                    network.decode(&inputs, &trace.actions, states, &patches).detach()
                })
                .collect();
            Tensor::stack::<5>(per_loop, 3).reshape([b * t, k, p, r, q]).swap_dims(2, 3)
        } else {
            let states: Vec<Tensor<3>> = trace.loop_states.iter().flatten().cloned().collect();
            let patches: Vec<usize> = (0..k).flat_map(|patch| std::iter::repeat_n(patch, r)).collect();
            network.decode(&inputs, &trace.actions, states, &patches).detach().reshape([b * t, k, r, p, q])
        };
        let cell_truth = truth.reshape([b * t, k, 1, p, 1]);
        let loss = pinball(cell_truth, decoded, levels.reshape([1, 1, 1, 1, q])).mean_dim(4)
            * mask.reshape([b * t, k, 1, p, 1]);
        let loss = loss.sum_dim(3).reshape([b, t, k, r]).sum_dim(1).reshape([b * k, r]);
        let loss = loss.into_data().try_to_vec::<f32>().map_err(|e| TrainError::Data(format!("{e:?}")))?;
        let targets = settled(&loss, r, weights.gate_tolerance);
        let targets = Tensor::<3>::from_data(TensorData::new(targets, [b, k, r]), device);
        let gates = trace.gates.clamp(1e-6, 1.0 - 1e-6);
        let ones = Tensor::<3>::ones([b, k, r], device);
        (targets.clone() * gates.clone().log() + (ones.clone() - targets) * (ones - gates).log()).mean().neg()
    } else {
        zero()
    };

    let plan = match expected {
        Some(expected) => {
            let plans = if step.source == Source::Sre { config.data.plans_per_history } else { 1 };
            plan_loss(&inputs, expected, plans)
        }
        None => zero(),
    };

    let total = pinball_loss.clone() * weights.pinball
        + consistency.clone() * weights.consistency
        + contraction.clone() * weights.contraction
        + gate.clone() * weights.gate
        + twin.clone() * weights.twin
        + plan.clone() * weights.expected_plan;
    let scalar = |x: &Tensor<1>| -> Result<f64, TrainError> {
        let values =
            x.clone().into_data().try_to_vec::<f32>().map_err(|e| TrainError::Data(format!("{e:?}")))?;
        Ok(f64::from(values[0]))
    };
    let values = LossValues {
        total: scalar(&total)?,
        pinball: scalar(&pinball_loss)?,
        consistency: scalar(&consistency)?,
        contraction: scalar(&contraction)?,
        gate: scalar(&gate)?,
        twin: scalar(&twin)?,
        plan: scalar(&plan)?,
    };
    Ok((total, values))
}

/// The expected plan's loss: mean absolute error of `expected` (`[B, A, K·P]`, log
/// ratios) against the realised plan's log ratios, over the known cells of action
/// channels on rows `plans·i` only: with `plans` above 1 (twin batches) the other rows
/// continue under departures drawn around the operator's plan, not under the operator's
/// conduct the head forecasts.
fn plan_loss(inputs: &Inputs, expected: Tensor<3>, plans: usize) -> Tensor<1> {
    let [b, c, len] = inputs.future.dims();
    let t = inputs.targets;
    let device = inputs.future.device();
    let own: Vec<f32> = (0..b).map(|row| f32::from(u8::from(row % plans.max(1) == 0))).collect();
    let own = Tensor::<3>::from_data(TensorData::new(own, [b, 1, 1]), &device);
    let known = inputs.future_mask.clone().slice([0..b, t..c, 0..len]) * own * inputs.action_channels();
    let error = (expected - inputs.action_log_ratios()).abs() * known.clone();
    error.sum() / known.sum().clamp_min(1.0)
}

/// The twin loss: rows `K·i` (base plan) to `K·i + K − 1` (departing plans), `K =
/// plans`, share a history and its scaling, so the difference of a departing row's
/// median and the base row's in `point` (`[B, T, S]`) is the predicted effect of that
/// departure and the difference of their truths the true one (noise shared). Mean
/// absolute error over the cells both twins observe, each pair divided by the larger of
/// its twins' `size` (`[B, T, 1]`, as the pinball loss is); with `loss.twin_huber` above
/// 0, Huber's penalty with that threshold in place of the absolute error; with
/// `loss.twin_material` above 0, each pair and target weighted by its true effect's mean
/// size over that (at least `loss.twin_material_floor`, at most 1), the loss then a
/// weighted mean.
fn twin_loss(
    point: Tensor<3>,
    truth: Tensor<3>,
    mask: &Tensor<3>,
    size: &Tensor<3>,
    plans: usize,
    weights: &LossConfig,
) -> Tensor<1> {
    let b = point.dims()[0];
    let device = point.device();
    let pairs: Vec<(i64, i64)> = (0..b / plans)
        .flat_map(|i| (1..plans).map(move |j| ((plans * i) as i64, (plans * i + j) as i64)))
        .collect();
    let rows = |ids: Vec<i64>| Tensor::<1, Int>::from_data(TensorData::new(ids, [pairs.len()]), &device);
    let (base, departing) =
        (rows(pairs.iter().map(|p| p.0).collect()), rows(pairs.iter().map(|p| p.1).collect()));
    let difference = |x: Tensor<3>| x.clone().select(0, departing.clone()) - x.select(0, base.clone());
    let both = mask.clone().select(0, base.clone()) * mask.clone().select(0, departing.clone());
    let size = size.clone().select(0, base.clone()).max_pair(size.clone().select(0, departing.clone()));
    let true_difference = difference(truth);
    let error = (difference(point) - true_difference.clone()).abs();
    let error = if weights.twin_huber > 0.0 { huber_penalty(error, weights.twin_huber) } else { error };
    let weight = if weights.twin_material > 0.0 {
        let cells = both.clone().sum_dim(2).clamp_min(1.0);
        let mean_size = (true_difference.abs() * both.clone()).sum_dim(2) / cells;
        both * mean_size.div_scalar(weights.twin_material).clamp(weights.twin_material_floor, 1.0)
    } else {
        both
    };
    (error * weight.clone() / size).sum() / weight.sum().clamp_min(1.0)
}

/// Huber's penalty of absolute errors `a` with threshold `delta`, scaled to slope 1:
/// `a² / 2δ` up to `δ`, `a − δ/2` beyond.
fn huber_penalty<const D: usize>(a: Tensor<D>, delta: f64) -> Tensor<D> {
    let inner = a.clone().clamp_max(delta);
    inner.clone() * (a - inner.mul_scalar(0.5)) / delta
}

/// `asinh`, elementwise: `sign(x) · ln(|x| + √(x² + 1))`.
fn asinh<const D: usize>(x: Tensor<D>) -> Tensor<D> {
    (x.clone().abs() + x.clone().powf_scalar(2.0).add_scalar(1.0).sqrt()).log() * x.sign()
}

/// Each token standardised over its features (zero mean, unit variance): the consistency
/// loss compares directions, not sizes — the encoder's state is unbounded while the
/// looped state is held inside the retention's bound, so raw distances would only teach
/// the encoder to shrink or the loss to grow.
fn standardise(tokens: Tensor<3>) -> Tensor<3> {
    let centred = tokens.clone() - tokens.mean_dim(2);
    let spread = centred.clone().powf_scalar(2.0).mean_dim(2).add_scalar(1e-5).sqrt();
    centred / spread
}

/// Pinball loss of `forecast` against `truth` at `levels` (broadcast).
fn pinball<const D: usize>(truth: Tensor<D>, forecast: Tensor<D>, levels: Tensor<D>) -> Tensor<D> {
    let error = truth - forecast;
    (error.clone() * levels.clone()).max_pair(error * (levels - 1.0))
}

/// Gate targets per loop from each loop's loss, rows of `loops`: 1 once no later loop
/// lowers the loss by more than `tolerance` of it, else 0.
pub(crate) fn settled(loss: &[f32], loops: usize, tolerance: f64) -> Vec<f32> {
    let mut targets = vec![0f32; loss.len()];
    for (row, out) in loss.chunks(loops).zip(targets.chunks_mut(loops)) {
        let mut best_after = f32::INFINITY;
        for r in (0..loops).rev() {
            let done = f64::from(best_after) >= f64::from(row[r]) * (1.0 - tolerance);
            out[r] = f32::from(u8::from(done));
            best_after = best_after.min(row[r]);
        }
    }
    targets
}

/// The window `batch` would be `steps` later: its context moved forward over the first
/// `steps` of the future (the truth for targets, the plan for actions), and a one-step
/// unknown future. The encoding of this window is the consistency loss's target.
fn shifted(batch: &ModelBatch, steps: usize) -> Result<ModelBatch, TrainError> {
    let (b, c, l, h) = (batch.batch(), batch.roles().len(), batch.context(), batch.horizon());
    // Never past the horizon, nor more than the whole context.
    let steps = steps.min(h).min(l);
    let (values, observed) = batch.context_arrays();
    let (future, known) = batch.future_arrays();
    let mut new_values = Vec::with_capacity(b * c * l);
    let mut new_observed = Vec::with_capacity(b * c * l);
    for row in 0..b * c {
        new_values.extend_from_slice(&values[row * l + steps..(row + 1) * l]);
        new_values.extend_from_slice(&future[row * h..row * h + steps]);
        new_observed.extend_from_slice(&observed[row * l + steps..(row + 1) * l]);
        new_observed.extend_from_slice(&known[row * h..row * h + steps]);
    }
    ModelBatch::new(
        batch.roles().to_vec(),
        b,
        l,
        1,
        new_values,
        new_observed,
        vec![0.0; b * c],
        vec![false; b * c],
    )
    .map_err(|e| TrainError::Data(e.to_string()))
}

#[cfg(test)]
mod tests {
    use loopcast_core::Role;

    use super::*;

    #[test]
    fn a_loop_is_settled_once_later_loops_gain_less_than_the_tolerance() {
        // Loss falls 10 → 5 → 4.9 → 4.95: loop 0 is not settled (later ones gain 51 %),
        // loop 1 is (gains 2 % < 5 %), and so are loops 2 and 3.
        assert_eq!(settled(&[10.0, 5.0, 4.9, 4.95], 4, 0.05), vec![0.0, 1.0, 1.0, 1.0]);
        assert_eq!(settled(&[1.0, 2.0, 0.5], 3, 0.0), vec![0.0, 0.0, 1.0]);
    }

    /// The expected plan learns the operator's conduct only: with two plans per history
    /// its error counts on the operator's rows (even) and on action channels, never on a
    /// departing row nor a covariate; with one plan, on every row.
    #[test]
    fn the_expected_plan_is_scored_on_the_operators_rows_only() {
        let device = Device::flex();
        let config = loopcast_model::ModelConfig {
            patch_len: 4,
            max_context_patches: 4,
            max_horizon_patches: 1,
            ..loopcast_model::ModelConfig::small()
        };
        let roles = vec![Role::Target, Role::Action, Role::Covariate];
        let (rows, l, h) = (4, 8, 4);
        let context: Vec<f32> =
            (0..rows * 3).flat_map(|r| vec![if r % 3 == 1 { 4.0 } else { 10.0 }; l]).collect();
        // Departing rows (odd) plan a hundredfold, covariates move too.
        let future: Vec<f32> = (0..rows * 3)
            .flat_map(|r| {
                let (row, channel) = (r / 3, r % 3);
                let value = match channel {
                    1 if row % 2 == 1 => 400.0,
                    1 => 4.0 + row as f32,
                    _ => 50.0,
                };
                vec![value; h]
            })
            .collect();
        let batch = ModelBatch::new(
            roles,
            rows,
            l,
            h,
            context,
            vec![true; rows * 3 * l],
            future,
            vec![true; rows * 3 * h],
        )
        .unwrap();
        let inputs = Inputs::new(&batch, &config, &device);
        let value = |x: Tensor<1>| x.into_data().try_to_vec::<f32>().unwrap()[0];
        let ratios = inputs.action_log_ratios().into_data().try_to_vec::<f32>().unwrap();
        // `[B, 2, H]`: the action is channel 0 of the two after the target.
        let mean_abs = |picked: &[usize]| {
            picked
                .iter()
                .map(|row| ratios[row * 2 * h..row * 2 * h + h].iter().map(|r| r.abs()).sum::<f32>())
                .sum::<f32>()
                / (picked.len() * h) as f32
        };
        let zeros = Tensor::<3>::zeros([rows, 2, h], &device);
        let own = value(plan_loss(&inputs, zeros.clone(), 2));
        assert!(own > 0.0 && (own - mean_abs(&[0, 2])).abs() < 1e-6, "{own} vs {}", mean_abs(&[0, 2]));
        let every = value(plan_loss(&inputs, zeros, 1));
        assert!((every - mean_abs(&[0, 1, 2, 3])).abs() < 1e-5 && every > 5.0 * own, "{every}");
    }

    #[test]
    fn the_twin_loss_compares_differences_and_asinh_bounds_a_blow_up() {
        let device = Device::flex();
        let plain = LossConfig {
            pinball: 1.0,
            consistency: 0.0,
            contraction: 0.0,
            contraction_ratio: 0.9,
            gate: 0.0,
            gate_tolerance: 0.01,
            twin: 1.0,
            twin_scale: TwinScale::Linear,
            twin_huber: 0.0,
            twin_material: 0.0,
            twin_material_floor: 0.0,
            naive_floor: 0.0,
            expected_plan: 1.0,
        };
        let huber = LossConfig { twin_huber: 2.0, ..plain.clone() };
        let tensor = |v: Vec<f32>| Tensor::<3>::from_data(TensorData::new(v, [2, 1, 2]), &device);
        let value = |x: Tensor<1>| x.into_data().try_to_vec::<f32>().unwrap()[0];
        // Base row 0, departing row 1; true effects +2 and +4, predicted +1 and +4.
        let (point, truth) = (tensor(vec![0.0, 0.0, 1.0, 4.0]), tensor(vec![0.0, 0.0, 2.0, 4.0]));
        let (mask, size) = (tensor(vec![1.0; 4]), Tensor::<3>::ones([2, 1, 1], &device));
        assert!((value(twin_loss(point.clone(), truth.clone(), &mask, &size, 2, &plain)) - 0.5).abs() < 1e-6);
        // Cells one twin misses are left out.
        let gap = tensor(vec![1.0, 0.0, 1.0, 1.0]);
        assert!((value(twin_loss(point, truth, &gap, &size, 2, &plain)) - 1.0).abs() < 1e-6);
        // Three plans per history: both departures (rows 1 and 2) against the base (row
        // 0), none against each other. True effects +2, +4 / +6, +6; predicted +1, +4 /
        // +6, +2: errors 1, 0, 0, 4 over 4 cells.
        let three = |v: Vec<f32>| Tensor::<3>::from_data(TensorData::new(v, [3, 1, 2]), &device);
        let point = three(vec![0.0, 0.0, 1.0, 4.0, 6.0, 2.0]);
        let truth = three(vec![0.0, 0.0, 2.0, 4.0, 6.0, 6.0]);
        let (mask, size) = (three(vec![1.0; 6]), Tensor::<3>::ones([3, 1, 1], &device));
        assert!((value(twin_loss(point, truth, &mask, &size, 3, &plain)) - 1.25).abs() < 1e-6);
        // Weighted by the true effect's size over 0.5: the first pair (true effect 0,
        // predicted 1) weighs nothing, the second (true 2, predicted 1) fully: loss 1.
        let pairs = |v: Vec<f32>| Tensor::<3>::from_data(TensorData::new(v, [4, 1, 1]), &device);
        let (point, truth) = (pairs(vec![0.0, 1.0, 0.0, 1.0]), pairs(vec![0.0, 0.0, 0.0, 2.0]));
        let (mask, size) = (pairs(vec![1.0; 4]), Tensor::<3>::ones([4, 1, 1], &device));
        let material = LossConfig { twin_material: 0.5, ..plain.clone() };
        assert!((value(twin_loss(point, truth, &mask, &size, 2, &material)) - 1.0).abs() < 1e-6);
        // Huber with threshold 2: errors 1 and 0 as `a² / 4`, 0.25 over 2 cells; an error
        // of 5 as `5 − 1`.
        let (point, truth) = (tensor(vec![0.0, 0.0, 1.0, 4.0]), tensor(vec![0.0, 0.0, 2.0, 4.0]));
        let two = |v: Vec<f32>| Tensor::<3>::from_data(TensorData::new(v, [2, 1, 2]), &device);
        let (mask, size) = (two(vec![1.0; 4]), Tensor::<3>::ones([2, 1, 1], &device));
        assert!((value(twin_loss(point, truth.clone(), &mask, &size, 2, &huber)) - 0.125).abs() < 1e-6);
        let far = tensor(vec![0.0, 0.0, -3.0, 4.0]);
        assert!((value(twin_loss(far, truth, &mask, &size, 2, &huber)) - 2.0).abs() < 1e-6);
        // asinh is the f64 one, odd, and turns a thousandfold blow-up into a few units.
        let xs = vec![-1000.0f32, -0.5, 0.0, 3.0];
        let mapped = asinh(Tensor::<1>::from_data(TensorData::new(xs.clone(), [4]), &device));
        for (x, y) in xs.iter().zip(mapped.into_data().try_to_vec::<f32>().unwrap()) {
            assert!((f64::from(y) - f64::from(*x).asinh()).abs() < 1e-4, "asinh({x}) = {y}");
        }
    }

    #[test]
    fn shifting_moves_the_context_over_the_truth_and_stops_at_its_length() {
        use loopcast_core::Role;
        let batch = ModelBatch::new(
            vec![Role::Target],
            1,
            4,
            8,
            vec![1.0, 2.0, 3.0, 4.0],
            vec![true; 4],
            (5..13).map(|v| v as f32).collect(),
            vec![true, false, true, true, true, true, true, true],
        )
        .unwrap();
        let two = shifted(&batch, 2).unwrap();
        assert_eq!(two.context_arrays().0, &[3.0, 4.0, 5.0, 6.0]);
        assert_eq!(two.context_arrays().1, &[true, true, true, false]);
        // More steps than the context holds: the whole context is the future's start.
        let far = shifted(&batch, 16).unwrap();
        assert_eq!(far.context_arrays().0, &[5.0, 6.0, 7.0, 8.0]);
        assert_eq!(far.horizon(), 1);
    }
}
