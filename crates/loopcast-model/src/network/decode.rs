//! The decoder: monotone quantiles of the rolled-out states around the seasonal naive
//! anchor, the anchor features and the state blend, and the direct action path.

use burn::tensor::activation::softplus;
use burn::tensor::{Int, Tensor, TensorData};
use loopcast_core::Role;

use super::{Inputs, Network, soft_clip};

impl Network {
    /// Decodes the states of future patches `patches` (one index per state, as rolled out
    /// over `inputs`) into monotone quantiles in scaled units, `[B, T, states·P, Q]`: a
    /// base value plus cumulative softplus increments, so quantiles never cross. With the
    /// anchor, the median sits at the base's offset from seasonal naive; with action
    /// effects, every quantile moves by the plan's direct effect.
    /// `actions` are the rollout's action tokens ([`Rollout::actions`]).
    pub fn decode(
        &self,
        inputs: &Inputs,
        actions: &Tensor<4>,
        states: Vec<Tensor<3>>,
        patches: &[usize],
    ) -> Tensor<4> {
        match self.decode_parts(inputs, actions, states, patches) {
            (quantiles, Some(effect)) => quantiles + effect,
            (quantiles, None) => quantiles,
        }
    }

    /// [`Network::decode`] in two parts: the quantiles without the plan's direct effect,
    /// and that effect, `[B, T, states·P, 1]`, or `[B, T, states·P, Q]` when it is a
    /// multiplier of each quantile (`EffectUnits::Ratio`) (`None` without action effects
    /// or without action and covariate channels). Training fits the effect on twin differences only:
    /// in observed data, operators act on what they expect, so actions and targets move
    /// together for reasons other than the action's effect.
    pub fn decode_parts(
        &self,
        inputs: &Inputs,
        actions: &Tensor<4>,
        states: Vec<Tensor<3>>,
        patches: &[usize],
    ) -> (Tensor<4>, Option<Tensor<4>>) {
        let targets = inputs.targets;
        let (normed, ids) = self.decoding_states(states, patches, targets);
        let [b, steps, _, d] = normed.dims();
        let p = self.patch_len;
        let per_patch = |x: Tensor<3>| select_patches(x, &ids, p);
        let quantiles = self.plain_quantiles(inputs, &normed, &ids);
        let has_plans = inputs.roles.len() > targets;
        let direct = match (&self.effect_state, &self.effect_action, &self.effect_norm) {
            (Some(state_side), Some(action_side), Some(norm)) if has_plans => {
                // `[B, S, T, A]`: one coefficient per target, action or covariate channel
                // and decoded patch, a bilinear form of the target's state and the
                // channel's token.
                let tokens = action_side
                    .forward(norm.forward(actions.clone().select(2, ids.clone())))
                    .swap_dims(1, 2)
                    .swap_dims(2, 3);
                let coefficients =
                    state_side.forward(normed.clone()).matmul(tokens.clone()).div_scalar((d as f32).sqrt());
                let per_step = |x: Tensor<3>| {
                    coefficients.matmul(per_patch(x).swap_dims(1, 2)).swap_dims(1, 2).reshape([
                        b,
                        targets,
                        steps * p,
                        1,
                    ])
                };
                Some(if self.ratio_effects {
                    let exponent = per_step(inputs.plan_departures());
                    let exponent = match self.memory_exponent(inputs, &normed, &tokens, &ids) {
                        Some(memory) => exponent + memory,
                        None => exponent,
                    }
                    .clamp(-3.0, 3.0);
                    let exponent = match self.recurrent_exponent(inputs, &normed, actions, &ids) {
                        Some(recurrent) => exponent + recurrent,
                        None => exponent,
                    };
                    let t =
                        |x: &Tensor<3>| x.clone().slice([0..b, 0..targets, 0..1]).reshape([b, targets, 1, 1]);
                    let (location, scale) = (t(&inputs.location), t(&inputs.scale));
                    // The positive part of every quantile in the data's units, times the
                    // multiplier less one, back in scaled units.
                    let positive = (quantiles.clone() * scale.clone() + location).clamp_min(0.0);
                    positive * (exponent.exp() - 1.0) / scale
                } else {
                    let c = inputs.roles.len();
                    let len = inputs.future.dims()[2];
                    // The plan's change of every action and covariate channel from its
                    // last observed value, zero where the plan is unknown.
                    let change = (inputs.future.clone().slice([0..b, targets..c, 0..len])
                        - inputs.last.clone().slice([0..b, targets..c, 0..1]))
                        * inputs.future_mask.clone().slice([0..b, targets..c, 0..len]);
                    let effect = per_step(change);
                    // Anchored, the effect is in the same unit as the offsets: in scaled
                    // units, a coefficient of 10⁻⁵ on a queue that an incident scaled by
                    // 10⁵ moved the forecast by a hundred times seasonal naive's error.
                    if self.anchor {
                        effect * inputs.naive_error.clone().reshape([b, targets, 1, 1])
                    } else {
                        effect
                    }
                })
            }
            _ => None,
        };
        let relative = self.relative_effect(inputs, actions, &normed, &ids, &quantiles);
        let effect = match (direct, relative) {
            (Some(direct), Some(relative)) => Some(direct + relative),
            (direct, relative) => direct.or(relative),
        };
        (quantiles, effect)
    }

    /// The quantiles of the decoded patches' normalised target states `normed` (patches
    /// `ids`) without any action effect, `[B, T, S·P, Q]` in scaled units.
    pub(super) fn plain_quantiles(
        &self,
        inputs: &Inputs,
        normed: &Tensor<4>,
        ids: &Tensor<1, Int>,
    ) -> Tensor<4> {
        let targets = inputs.targets;
        let [b, steps, _, _] = normed.dims();
        let (p, q) = (self.patch_len, self.quantiles);
        let device = normed.device();
        let per_patch = |x: Tensor<3>| select_patches(x, ids, p);
        let features = self.anchor_head.as_ref().map(|_| anchor_features(inputs, per_patch).swap_dims(1, 2));
        let raw = self.head.forward(normed.clone());
        let raw = match (&self.anchor_head, &features) {
            (Some(anchor_head), Some(features)) => raw + anchor_head.forward(features.clone()),
            _ => raw,
        };
        let cells = b * steps * targets * p;
        let raw = raw.reshape([cells, q]);
        let base = raw.clone().slice([0..cells, 0..1]);
        let base = match (&self.blend, features) {
            (Some(blend), Some(features)) => {
                // Per target state, its weights `[1, F]` times its features `[F, P]`.
                let weights = blend.forward(normed.clone()).reshape([b * steps, targets, 1, FEATURES]);
                let features = features.reshape([b * steps, targets, FEATURES, p]);
                base + weights.matmul(features).reshape([cells, 1])
            }
            _ => base,
        };
        let quantiles = if q > 1 {
            let increments = softplus(raw.slice([0..cells, 1..q]), 1.0);
            let upper: Vec<f32> =
                (0..q - 1).flat_map(|i| (0..q - 1).map(move |j| if i <= j { 1.0 } else { 0.0 })).collect();
            let cumulative =
                increments.matmul(Tensor::from_data(TensorData::new(upper, [q - 1, q - 1]), &device));
            let cumulative = Tensor::cat(vec![Tensor::zeros([cells, 1], &device), cumulative], 1);
            let median = cumulative.clone().slice([0..cells, self.median..self.median + 1]);
            match (self.anchor, self.interval_scale == 1.0) {
                // Centred on the median level, so the base is the median's offset.
                (true, _) => base + (cumulative - median).mul_scalar(self.interval_scale),
                (false, true) => base + cumulative,
                (false, false) => {
                    base + median.clone() + (cumulative - median).mul_scalar(self.interval_scale)
                }
            }
        } else {
            base
        };
        let quantiles =
            quantiles.reshape([b, steps, targets, p, q]).swap_dims(1, 2).reshape([b, targets, steps * p, q]);
        if self.anchor {
            // Offsets in units of the series' own typical seasonal naive error: a series
            // that repeats its seasons exactly (flat, or strictly periodic) keeps the
            // anchor exactly, with no spread.
            let unit = inputs.naive_error.clone().reshape([b, targets, 1, 1]);
            quantiles * unit + per_patch(inputs.anchor.clone()).reshape([b, targets, steps * p, 1])
        } else {
            quantiles
        }
    }

    /// The decoded patches' target states after the head's norm, `[B, S, T, d]`, and the
    /// patches' indices `patches` as a tensor.
    pub(super) fn decoding_states(
        &self,
        states: Vec<Tensor<3>>,
        patches: &[usize],
        targets: usize,
    ) -> (Tensor<4>, Tensor<1, Int>) {
        let steps = states.len();
        let stacked: Tensor<4> = Tensor::stack(states, 1);
        let [b, _, _, d] = stacked.dims();
        let ids = Tensor::<1, Int>::from_data(
            TensorData::new(patches.iter().map(|k| *k as i64).collect::<Vec<_>>(), [steps]),
            &stacked.device(),
        );
        (self.head_norm.forward(stacked.slice([0..b, 0..steps, 0..targets, 0..d])), ids)
    }
}

/// `layer` with its weights `factor` times larger: a path that starts almost closed,
/// opened so a test sees what it does.
#[cfg(test)]
pub(super) fn opened(layer: burn::nn::Linear, factor: f32) -> burn::nn::Linear {
    let weight = burn::module::Param::from_tensor(layer.weight.val().mul_scalar(factor));
    burn::nn::Linear { weight, ..layer }
}

/// A small config in ratio units with 4-step patches, 8 context and 2 horizon patches
/// (for the decoder's tests).
#[cfg(test)]
pub(super) fn small_ratio_config() -> crate::ModelConfig {
    crate::ModelConfig {
        patch_len: 4,
        max_context_patches: 8,
        max_horizon_patches: 2,
        effect_units: crate::EffectUnits::Ratio,
        ..crate::ModelConfig::small()
    }
}

/// What the ratio effects' terms read for a one-loop rollout of `inputs` decoded at its
/// first two patches: the targets' normalised states `[B, 2, T, d]`, the direct path's
/// action tokens `[B, 2, d, A]` and the patches' indices (for the terms' tests).
#[cfg(test)]
pub(super) fn effect_reads(network: &Network, inputs: &Inputs) -> (Tensor<4>, Tensor<4>, Tensor<1, Int>) {
    let encoded = network.encode(inputs);
    let control = super::LoopControl { min_loops: 1, max_loops: 1, exit_threshold: 2.0 };
    let rollout = network.rollout(inputs, encoded.state, network.memory_keys(encoded.memory), control);
    let (normed, ids) = network.decoding_states(rollout.states, &[0, 1], inputs.targets);
    let norm = network.effect_norm.clone().expect("action effects");
    let tokens = network
        .effect_action
        .clone()
        .expect("action effects")
        .forward(norm.forward(rollout.actions.select(2, ids.clone())))
        .swap_dims(1, 2)
        .swap_dims(2, 3);
    (normed, tokens, ids)
}

/// `x`, `[B, C, K·P]`, cut into patches of `p` steps, the patches `ids` kept: `[B, C, S, P]`.
pub(super) fn select_patches(x: Tensor<3>, ids: &Tensor<1, Int>, p: usize) -> Tensor<4> {
    let [rows, channels, len] = x.dims();
    x.reshape([rows, channels, len / p, p]).select(2, ids.clone())
}

/// Anchor features per future step (see [`anchor_features`]).
/// Every channel's log ratio of its planned value to its last observed one over the padded
/// future, `[B, C', K·P]` for the `channels`, in the data's units: each side offset by
/// [`Inputs::log_offset`], so a channel at zero has a ratio, clipped to ±3, and zero where
/// the plan is unknown.
pub(super) fn log_ratios(inputs: &Inputs, channels: Tensor<1, Int>) -> Tensor<3> {
    let [b, _, len] = inputs.future.dims();
    let a = channels.dims()[0];
    let pick =
        |x: &Tensor<3>, steps: usize| x.clone().select(1, channels.clone()).slice([0..b, 0..a, 0..steps]);
    let (location, scale, offset) =
        (pick(&inputs.location, 1), pick(&inputs.scale, 1), pick(&inputs.log_offset(), 1));
    let magnitude = |x: Tensor<3>| (x * scale.clone() + location.clone()).abs() + offset.clone();
    let (planned, last) = (pick(&inputs.future, len), pick(&inputs.last, 1));
    (magnitude(planned) / magnitude(last)).log().clamp(-3.0, 3.0) * pick(&inputs.future_mask, len)
}

impl Inputs {
    /// 1 on every action channel after the targets, 0 on covariates: `[1, C − T, 1]`.
    pub fn action_channels(&self) -> Tensor<3> {
        let actions: Vec<f32> =
            self.roles[self.targets..].iter().map(|r| f32::from(u8::from(*r == Role::Action))).collect();
        let a = actions.len();
        Tensor::<3>::from_data(TensorData::new(actions, [1, a, 1]), &self.future.device())
    }

    /// [`log_ratios`] of every channel after the targets, zero on covariates: `[B, A,
    /// K·P]`, aligned with the action tokens (what ratio effects and the expected plan
    /// read).
    pub fn action_log_ratios(&self) -> Tensor<3> {
        let (t, c) = (self.targets, self.roles.len());
        let channels = Tensor::<1, Int>::arange(t as i64..c as i64, &self.future.device());
        log_ratios(self, channels) * self.action_channels()
    }

    /// [`Inputs::action_log_ratios`] less the expected plan where the plan is known: how
    /// far the plan departs from the operator's expected conduct (from the last value
    /// without an expected plan).
    pub(super) fn plan_departures(&self) -> Tensor<3> {
        let ratios = self.action_log_ratios();
        match &self.expected_plan {
            Some(expected) => {
                let [b, c, len] = self.future.dims();
                let known = self.future_mask.clone().slice([0..b, self.targets..c, 0..len]);
                ratios - expected.clone().detach() * known
            }
            None => ratios,
        }
    }
}

pub(super) const FEATURES: usize = 4;

/// The anchor's features in the decoding unit, `[B, T, states, 4P]`: per future step of
/// each decoded patch, the scaled anchor, its gap to the last observed value, the gap from
/// it to the seasonal profile, and the level's departure from the profile, each divided by
/// the typical naive error (at least 10⁻³) and squashed softly to ±10.
fn anchor_features(inputs: &Inputs, per_patch: impl Fn(Tensor<3>) -> Tensor<4>) -> Tensor<4> {
    let [b, t, _] = inputs.anchor.dims();
    let unit = inputs.naive_error.clone().clamp_min(1e-3).reshape([b, t, 1, 1]);
    let last = inputs.last.clone().slice([0..b, 0..t, 0..1]).reshape([b, t, 1, 1]);
    let (anchor, profile) = (per_patch(inputs.anchor.clone()), per_patch(inputs.profile.clone()));
    let departure = inputs.departure.clone().reshape([b, t, 1, 1]).expand(anchor.dims());
    let squash = |x: Tensor<4>| soft_clip(x / unit.clone());
    Tensor::cat(
        vec![
            squash(anchor.clone()),
            squash(anchor.clone() - last),
            squash(profile - anchor),
            squash(departure),
        ],
        3,
    )
}

#[cfg(test)]
mod tests {
    use burn::module::Param;
    use burn::nn::Linear;
    use burn::tensor::Device;

    use super::super::LoopControl;
    use super::*;
    use crate::{ModelBatch, ModelConfig};

    fn values(x: Tensor<3>) -> Vec<f32> {
        x.into_data().try_to_vec::<f32>().unwrap()
    }

    /// The state's blend moves each series' whole distribution by its weighted features:
    /// with the weights closed the forecast is that of the model without the blend, and
    /// open, the median moves while every quantile's distance from it stays put.
    #[test]
    fn the_state_blend_shifts_the_distribution_without_changing_its_spread() {
        let device = Device::flex();
        let config = ModelConfig {
            patch_len: 4,
            max_context_patches: 8,
            max_horizon_patches: 2,
            ..ModelConfig::small()
        };
        let context: Vec<f32> = (0..24).map(|i| 10.0 + (i % 6) as f32 + 0.3 * i as f32).collect();
        let batch = ModelBatch::new(
            vec![Role::Target],
            1,
            24,
            8,
            context,
            vec![true; 24],
            vec![0.0; 8],
            vec![false; 8],
        )
        .unwrap()
        .with_season(6);
        let inputs = Inputs::new(&batch, &config, &device);
        let network = Network::new(&config, &device);
        let decoded = |network: &Network| {
            let encoded = network.encode(&inputs);
            let control = LoopControl { min_loops: 1, max_loops: 1, exit_threshold: 2.0 };
            let rollout =
                network.rollout(&inputs, encoded.state, network.memory_keys(encoded.memory), control);
            values(
                network
                    .decode(&inputs, &rollout.actions, rollout.states, &[0, 1])
                    .reshape([8, 13])
                    .swap_dims(0, 1)
                    .reshape([1, 13, 8]),
            )
        };
        let without = decoded(&Network { blend: None, ..network.clone() });
        let blend = network.blend.clone().unwrap();
        let closed = Linear { weight: Param::from_tensor(blend.weight.val().zeros_like()), ..blend.clone() };
        assert_eq!(decoded(&Network { blend: Some(closed), ..network.clone() }), without);
        let open = opened(blend, 100.0);
        let with = decoded(&Network { blend: Some(open), ..network });
        let median = config.median_level();
        let spread = |q: &[f32], level: usize, step: usize| q[level * 8 + step] - q[median * 8 + step];
        let mut moved = 0.0f32;
        for step in 0..8 {
            moved = moved.max((with[median * 8 + step] - without[median * 8 + step]).abs());
            for level in 0..13 {
                let (a, b) = (spread(&with, level, step), spread(&without, level, step));
                assert!((a - b).abs() < 1e-4 * (1.0 + b.abs()), "level {level} step {step}: {a} vs {b}");
            }
        }
        assert!(moved > 1e-2, "the open blend moves the median (by {moved})");
    }

    /// With the expected plan's head, ratio effects are measured from the operator's plan
    /// as the history foretells it: that forecast reads the history alone (two plans give
    /// the same one), a plan equal to it has no effect at all, and one departing from it
    /// moves the forecast.
    #[test]
    fn ratio_effects_are_measured_from_the_expected_plan() {
        let device = Device::flex();
        let config = ModelConfig { expected_plan: true, ..small_ratio_config() };
        let (l, h) = (24, 8);
        let batch = |plan: f32| {
            let mut context: Vec<f32> = (0..l).map(|i| 50.0 + 5.0 * ((i % 6) as f32)).collect();
            context.extend(vec![4.0; l]);
            let mut future = vec![0.0; h];
            future.extend(vec![plan; h]);
            let known: Vec<bool> = (0..2 * h).map(|i| i >= h).collect();
            let roles = vec![Role::Target, Role::Action];
            ModelBatch::new(roles, 1, l, h, context, vec![true; 2 * l], future, known).unwrap().with_season(6)
        };
        let mut network = Network::new(&config, &device);
        network.effect_state = Some(opened(network.effect_state.clone().unwrap(), 3000.0));
        network.plan_head = Some(opened(network.plan_head.clone().unwrap(), 30.0));
        let effect = |inputs: &Inputs| {
            let encoded = network.encode(inputs);
            let control = LoopControl { min_loops: 1, max_loops: 1, exit_threshold: 2.0 };
            let rollout =
                network.rollout(inputs, encoded.state, network.memory_keys(encoded.memory), control);
            let (_, effect) = network.decode_parts(inputs, &rollout.actions, rollout.states, &[0, 1]);
            values(effect.expect("a plan").reshape([1, 1, h * config.quantiles.len()]))
        };
        let expected =
            |inputs: &Inputs| network.expected_plan(inputs, &network.encode(inputs)).expect("a head");
        let (held, doubled) =
            (Inputs::new(&batch(4.0), &config, &device), Inputs::new(&batch(8.0), &config, &device));
        let foretold = values(expected(&held));
        assert_eq!(foretold, values(expected(&doubled)), "the expected plan never reads the plan");
        assert!(foretold.iter().any(|r| r.abs() > 1e-3), "the opened head foretells a change: {foretold:?}");
        // Measured from the last value, the held plan has no effect; measured from the
        // expected plan, the plan the head foretells has none.
        assert!(effect(&held).iter().all(|e| *e == 0.0));
        let as_foretold = doubled.clone().with_expected_plan(Some(doubled.action_log_ratios()));
        assert!(effect(&as_foretold).iter().all(|e| e.abs() < 1e-6), "{:?}", effect(&as_foretold));
        let departing = doubled.clone().with_expected_plan(Some(expected(&doubled)));
        let moved = effect(&departing).iter().fold(0.0f32, |m, e| m.max(e.abs()));
        assert!(moved > 1e-3, "a plan departing from the expected one moves the forecast (by {moved})");
    }

    /// In ratio units the plan's effect multiplies every positive quantile of a target and
    /// step by one factor, so the forecast stays ordered, and steps where the plan still
    /// holds the last value are left exactly as they were.
    #[test]
    fn ratio_effects_multiply_every_positive_quantile_alike() {
        let device = Device::flex();
        let config = small_ratio_config();
        let (l, h) = (24, 8);
        let mut context: Vec<f32> = (0..l).map(|i| 50.0 + 5.0 * ((i % 6) as f32) + 0.2 * i as f32).collect();
        context.extend(vec![4.0; l]);
        let mut future = vec![0.0; h];
        future.extend((0..h).map(|i| if i < 3 { 4.0 } else { 8.0 }));
        let known: Vec<bool> = (0..2 * h).map(|i| i >= h).collect();
        let batch = ModelBatch::new(
            vec![Role::Target, Role::Action],
            1,
            l,
            h,
            context,
            vec![true; 2 * l],
            future,
            known,
        )
        .unwrap()
        .with_season(6);
        let inputs = Inputs::new(&batch, &config, &device);
        let mut network = Network::new(&config, &device);
        network.effect_state = Some(opened(network.effect_state.clone().unwrap(), 3000.0));
        let encoded = network.encode(&inputs);
        let control = LoopControl { min_loops: 1, max_loops: 1, exit_threshold: 2.0 };
        let rollout = network.rollout(&inputs, encoded.state, network.memory_keys(encoded.memory), control);
        let (plain, effect) = network.decode_parts(&inputs, &rollout.actions, rollout.states, &[0, 1]);
        let effect = effect.expect("a plan");
        let q = config.quantiles.len();
        assert_eq!(effect.dims(), [1, 1, h, q], "one effect per quantile");
        let (location, scale) = (values(inputs.location.clone())[0], values(inputs.scale.clone())[0]);
        let data =
            |x: Tensor<4>| x.into_data().iter::<f32>().map(|v| v * scale + location).collect::<Vec<_>>();
        let (before, after) = (data(plain.clone()), data(plain + effect));
        let mut moved = 0.0f32;
        for step in 0..h {
            let cell = |x: &[f32], level: usize| x[step * q + level];
            let factor = cell(&after, 0) / cell(&before, 0);
            for level in 0..q {
                assert!(cell(&before, level) > 0.0, "a positive forecast");
                let ratio = cell(&after, level) / cell(&before, level);
                assert!(
                    (ratio - factor).abs() < 1e-4 * factor,
                    "step {step} level {level}: {ratio} vs {factor}"
                );
                if level > 0 {
                    assert!(cell(&after, level) >= cell(&after, level - 1), "ordered at step {step}");
                }
            }
            if step < 3 {
                assert_eq!(factor, 1.0, "the plan holds at step {step}");
            }
            moved = moved.max((factor - 1.0).abs());
        }
        assert!(moved > 1e-3, "the doubled action moves the forecast (by {moved})");
    }
}
