//! The relative action path: effects as multiples of a target's level and excess, read off
//! the kinds of the target and the action channel, solved after training
//! ([`Network::with_relative_weights`]).

use burn::module::Param;
use burn::nn::{LayerNormConfig, Linear, LinearConfig};
use burn::tensor::activation::softmax;
use burn::tensor::{Device, Int, Tensor, TensorData};
use loopcast_core::Role;

use super::decode::{log_ratios, select_patches};
use super::{ALMOST_CLOSED, Inputs, NEAR_ZERO, Network, soft_clip};

impl Network {
    /// The relative path's effect on every quantile of the decoded patches, `[B, T, S·P, 1]`
    /// (`None` without the path or without action channels).
    pub(super) fn relative_effect(
        &self,
        inputs: &Inputs,
        actions: &Tensor<4>,
        normed: &Tensor<4>,
        ids: &Tensor<1, Int>,
        quantiles: &Tensor<4>,
    ) -> Option<Tensor<4>> {
        let design = self.relative_design(inputs, actions, normed, ids, quantiles)?;
        let [b, steps, targets, _] = normed.dims();
        let p = self.patch_len;
        let (a, f, r) = (design.tokens.dims()[2], RELATIVE_FEATURES, RELATIVE_TARGET_KINDS + 1);
        let state_kinds = target_kinds(weights(&self.relative_state), design.states);
        // `[B, S, A, U·F·r]`: per unit, `[B, S, F·A, r]` in the features' order.
        let tokens = weights(&self.relative_coefficients)
            .forward(softmax(weights(&self.relative_action).forward(design.tokens), 3));
        let effect = (0..RELATIVE_UNITS)
            .map(|u| {
                let tokens = tokens
                    .clone()
                    .slice([0..b, 0..steps, 0..a, u * f * r..(u + 1) * f * r])
                    .reshape([b, steps, a, f, r])
                    .swap_dims(2, 3)
                    .reshape([b, steps, f * a, r]);
                let coefficients = state_kinds.clone().matmul(tokens.swap_dims(2, 3));
                let unit = design.units.clone().slice([0..b, 0..steps, 0..targets, u * p..(u + 1) * p]);
                coefficients.matmul(design.features.clone()) * unit
            })
            .reduce(|x, y| x + y)
            .expect("at least one unit");
        Some(effect.swap_dims(1, 2).reshape([b, targets, steps * p, 1]))
    }

    /// The same network with a relative action path of fresh weights
    /// (`ModelConfig::relative_effects`) in place of the one it has, if any.
    pub fn with_relative_path(mut self, device: &Device) -> Self {
        let d = self.d_model();
        let read = d + KIND_CUES;
        self.relative_state =
            Some(LinearConfig::new(read, RELATIVE_TARGET_KINDS).with_initializer(NEAR_ZERO).init(device));
        self.relative_action =
            Some(LinearConfig::new(read, RELATIVE_ACTION_KINDS).with_initializer(NEAR_ZERO).init(device));
        self.relative_coefficients = Some(
            LinearConfig::new(
                RELATIVE_ACTION_KINDS,
                RELATIVE_UNITS * RELATIVE_FEATURES * (RELATIVE_TARGET_KINDS + 1),
            )
            .with_bias(false)
            .with_initializer(ALMOST_CLOSED)
            .init(device),
        );
        self.relative_norm = Some(LayerNormConfig::new(d).init(device));
        self
    }

    /// The same network without a relative action path.
    pub(crate) fn without_relative_path(self) -> Self {
        Self {
            relative_state: None,
            relative_action: None,
            relative_coefficients: None,
            relative_norm: None,
            ..self
        }
    }

    /// What the relative action path reads for the decoded `patches` (`None` without the
    /// path or without action channels): its coefficients are
    /// `[kinds(states), 1]ᵀ · C_{u,f} · kinds(tokens)` per unit `u` and feature `f`, times
    /// the features and the unit, where `kinds` is a softmax over the kinds' logits (of
    /// the state or token and the channel's [`kind_cues`]) and the units are read off the
    /// history and the plain forecast. Covariates are left to
    /// the rest of the network: they are the same in every plan of a what-if, so twins
    /// say nothing of their effect. Public so the path can be fitted by least squares on a
    /// frozen network's states ([`Network::with_relative_weights`]).
    pub fn relative_inputs(
        &self,
        inputs: &Inputs,
        actions: &Tensor<4>,
        states: Vec<Tensor<3>>,
        patches: &[usize],
    ) -> Option<RelativeDesign> {
        let (normed, ids) = self.decoding_states(states, patches, inputs.targets);
        let quantiles = self.plain_quantiles(inputs, &normed, &ids);
        self.relative_design(inputs, actions, &normed, &ids, &quantiles)
    }

    fn relative_design(
        &self,
        inputs: &Inputs,
        actions: &Tensor<4>,
        normed: &Tensor<4>,
        ids: &Tensor<1, Int>,
        quantiles: &Tensor<4>,
    ) -> Option<RelativeDesign> {
        let norm = self.relative_norm.as_ref()?;
        let targets = inputs.targets;
        let channels: Vec<i64> = (targets..inputs.roles.len())
            .filter(|c| inputs.roles[*c] == Role::Action)
            .map(|c| c as i64)
            .collect();
        if channels.is_empty() {
            return None;
        }
        let len = channels.len();
        let channels = Tensor::<1, Int>::from_data(TensorData::new(channels, [len]), &normed.device());
        // The rollout's tokens are `[B, A, K, d]`, over the action and covariate channels.
        let tokens = actions.clone().select(1, channels.clone().sub_scalar(targets as i64));
        let steps = ids.dims()[0];
        let with_cues = |x: Tensor<4>, cues: Tensor<3>| {
            let [b, n, e] = cues.dims();
            Tensor::cat(vec![x, cues.reshape([b, 1, n, e]).repeat_dim(1, steps)], 3)
        };
        let target_ids = Tensor::<1, Int>::arange(0..targets as i64, &normed.device());
        Some(RelativeDesign {
            states: with_cues(normed.clone(), kind_cues(inputs, target_ids)),
            tokens: with_cues(
                norm.forward(tokens.select(2, ids.clone()).swap_dims(1, 2)),
                kind_cues(inputs, channels.clone()),
            ),
            features: select_patches(relative_features(inputs, channels), ids, self.patch_len)
                .swap_dims(1, 2),
            units: relative_units(inputs, median_of(quantiles, self.median), self.patch_len),
        })
    }

    /// The same network with the relative path's weights replaced: the target kinds'
    /// `[d + KIND_CUES, K_t]` weight and `[K_t]` bias, the action kinds' `[d + KIND_CUES,
    /// K_a]` and `[K_a]`, and the coefficients' `[K_a, U·F·(K_t + 1)]` (row: the action
    /// kind; column: unit-major, then the feature, then the target kind, the last one the
    /// constant). `None` without the path or when a shape does not fit.
    pub fn with_relative_weights(
        mut self,
        state: (Tensor<2>, Tensor<1>),
        action: (Tensor<2>, Tensor<1>),
        coefficients: Tensor<2>,
    ) -> Option<Self> {
        let set = |layer: &mut Linear, weight: Tensor<2>, bias: Option<Tensor<1>>| {
            if weight.dims() != layer.weight.val().dims()
                || bias.as_ref().map(|b| b.dims()) != layer.bias.as_ref().map(|b| b.val().dims())
            {
                return None;
            }
            layer.weight = Param::from_tensor(weight);
            layer.bias = bias.map(Param::from_tensor);
            Some(())
        };
        set(self.relative_state.as_mut()?, state.0, Some(state.1))?;
        set(self.relative_action.as_mut()?, action.0, Some(action.1))?;
        set(self.relative_coefficients.as_mut()?, coefficients, None)?;
        Some(self)
    }
}

/// What the relative action path reads ([`Network::relative_inputs`]).
#[derive(Debug, Clone)]
pub struct RelativeDesign {
    /// The targets' normalised states and their kind cues ([`KIND_CUES`]),
    /// `[B, S, T, d + KIND_CUES]`.
    pub states: Tensor<4>,
    /// The action channels' normalised tokens and their kind cues, `[B, S, A, d + KIND_CUES]`.
    pub tokens: Tensor<4>,
    /// The features, `[B, S, F·A, P]`, feature-major ([`RELATIVE_FEATURES`]).
    pub features: Tensor<4>,
    /// What each target's effect is a multiple of, per step ([`RELATIVE_UNITS`] of them,
    /// in scaled units, the first its level), `[B, S, T, U·P]`, unit-major.
    pub units: Tensor<4>,
}

/// Cues per channel, beside its state or token, that the relative path tells kinds by
/// ([`kind_cues`]).
pub const KIND_CUES: usize = 6;

/// What each of the `channels` is like over its observed context, `[B, C', KIND_CUES]`,
/// in the data's units:
/// 1. how large it is, `ln(1 + |location|)`;
/// 2. how much it varies, `ln(scale / (1 + |location|))`;
/// 3. the share of its values that are whole numbers (a replica count, a deploy flag);
/// 4. the share of consecutive observed steps that change it (a plan holds, a metric
///    moves);
/// 5. whether it stays within [0, 1] (a utilisation, an error rate, a weight);
/// 6. the share of its values at its lowest (an error rate or a queue at rest).
///
/// Once scaled, a replica count looks like a traffic weight and a request rate like a
/// memory size; in these they differ. A channel never observed has cues of 0 but its
/// size and spread.
fn kind_cues(inputs: &Inputs, channels: Tensor<1, Int>) -> Tensor<3> {
    let [b, _, l] = inputs.context.dims();
    let n = channels.dims()[0];
    let pick = |x: &Tensor<3>| x.clone().select(1, channels.clone());
    let (location, scale, mask) = (pick(&inputs.location), pick(&inputs.scale), pick(&inputs.context_mask));
    let raw = pick(&inputs.context) * scale.clone() + location.clone();
    let magnitude = location.abs().add_scalar(1.0);
    // Differences below a millionth of the magnitude are the scaling's rounding.
    let tolerance = magnitude.clone().mul_scalar(1e-6);
    let count = mask.clone().sum_dim(2);
    let seen = count.clone().greater_elem(0.0).float();
    let share = |flags: Tensor<3>| (flags * mask.clone()).sum_dim(2) / count.clone().clamp_min(1.0);
    let whole = share((raw.clone() - raw.clone().round()).abs().lower_elem(1e-4).float());
    let moved = if l < 2 {
        Tensor::zeros([b, n, 1], &raw.device())
    } else {
        let pairs = mask.clone().slice([0..b, 0..n, 1..l]) * mask.clone().slice([0..b, 0..n, 0..l - 1]);
        let step = raw.clone().slice([0..b, 0..n, 1..l]) - raw.clone().slice([0..b, 0..n, 0..l - 1]);
        (step.abs().greater(tolerance.clone()).float() * pairs.clone()).sum_dim(2)
            / pairs.sum_dim(2).clamp_min(1.0)
    };
    let unobserved = (mask.clone().neg() + 1.0) * 1e9;
    let low = (raw.clone() + unobserved.clone()).min_dim(2);
    let high = (raw.clone() - unobserved).max_dim(2);
    let unit = low.clone().greater_equal_elem(0.0).float() * high.lower_equal_elem(1.0).float() * seen;
    let at_floor = share((raw - low).abs().lower_equal(tolerance).float());
    Tensor::cat(vec![magnitude.clone().log(), (scale / magnitude).log(), whole, moved, unit, at_floor], 2)
}

/// Kinds of target the relative path tells apart: a target's effect from an action is a
/// coefficient per kind of target, kind of action and feature, so a traffic shift can
/// move a request rate and leave memory alone (the SRE world has seven targets).
pub const RELATIVE_TARGET_KINDS: usize = 7;

/// Kinds of action channel the relative path tells apart (the SRE world has four).
pub const RELATIVE_ACTION_KINDS: usize = 4;

/// A relative path layer, which a network with a relative design has.
fn weights(layer: &Option<Linear>) -> &Linear {
    layer.as_ref().expect("a design has weights")
}

/// The shares of the target states `x`'s kinds, a softmax of their logits through
/// `layer`, with a constant 1 appended: `[.., K_t + 1]`.
fn target_kinds(layer: &Linear, x: Tensor<4>) -> Tensor<4> {
    let shares = softmax(layer.forward(x), 3);
    let [b, s, n, _] = shares.dims();
    let ones = Tensor::ones([b, s, n, 1], &shares.device());
    Tensor::cat(vec![shares, ones], 3)
}

/// Features per action channel of the relative path ([`relative_features`]).
pub const RELATIVE_FEATURES: usize = 4;

/// Steps back of the relative path's lagged ratio (a replica change loads CPU at once and
/// drains a queue over the following steps).
const RELATIVE_LAG: usize = 3;

/// Steps over which the relative path's decayed change falls by `1/e`.
const RELATIVE_DECAY: f32 = 3.0;

/// Units per target and step that the relative path's effects are multiples of
/// ([`relative_units`]).
pub const RELATIVE_UNITS: usize = 2;

/// The relative path's units, `[B, S, T, U·P]` (unit-major), in scaled units and at most
/// 100, from the history and `median`, the plain forecast's median `[B, T, S·P, 1]`:
/// 1. the target's level, `|location| / scale`: an effect in proportion to the history's
///    level (a replica step moves CPU by a share of what it was);
/// 2. its forecast excess over the lowest observed context value (at least 0): what is
///    expected to sit above the target's floor at that step (the leaked memory a restart
///    frees, the queueing part of a latency, a backlog).
///
/// (The forecast's own level and a unit of one were tried as well and not kept:
/// docs/experiments/effects.md, "Units of the relative path".)
fn relative_units(inputs: &Inputs, median: Tensor<4>, p: usize) -> Tensor<4> {
    let [b, t, len, _] = median.dims();
    let l = inputs.context.dims()[2];
    let observed = inputs.context_mask.clone().slice([0..b, 0..t, 0..l]);
    // Unobserved cells sit far above any value, so a target never observed has no excess.
    let floor = (inputs.context.clone().slice([0..b, 0..t, 0..l]) + (observed.neg() + 1.0) * 1e9).min_dim(2);
    let level = target_level(inputs).repeat_dim(2, len);
    let excess = (median.reshape([b, t, len]) - floor).clamp(0.0, 100.0);
    let per_step = |x: Tensor<3>| x.reshape([b, t, len / p, p]).swap_dims(1, 2);
    Tensor::cat(vec![per_step(level), per_step(excess)], 3)
}

/// The quantiles' level `median`, `[B, T, S·P, 1]`.
fn median_of(quantiles: &Tensor<4>, median: usize) -> Tensor<4> {
    let [b, t, len, _] = quantiles.dims();
    quantiles.clone().slice([0..b, 0..t, 0..len, median..median + 1])
}

/// Each target's level in scaled units, `|location| / scale` (at most 100), `[B, T, 1]`:
/// the first of the relative path's units.
fn target_level(inputs: &Inputs) -> Tensor<3> {
    let [b, _, _] = inputs.location.dims();
    let t = inputs.targets;
    let location = inputs.location.clone().slice([0..b, 0..t, 0..1]);
    let scale = inputs.scale.clone().slice([0..b, 0..t, 0..1]);
    (location.abs() / scale).clamp_max(100.0)
}

/// The relative path's features over the padded future, `[B, F·A, K·P]` (feature-major),
/// per action channel (of `ids`) and step, zero where the plan is unknown:
/// 1. the log ratio of the planned value to the last observed one, in the data's units,
///    each offset by a twentieth of the channel's typical magnitude (|mean| + spread), so
///    a channel at zero has a ratio, clipped to ±3;
/// 2. that ratio [`RELATIVE_LAG`] steps earlier (0 before the horizon);
/// 3. whether it has moved since the forecast time: the running sum of its change in
///    scaled units (squashed to ±10), clipped to ±1, so a deploy counts once it happened;
/// 4. that change decayed by `1/e` every [`RELATIVE_DECAY`] steps (squashed to ±10).
///
/// Between two plans for one history, each differences out to a comparison of the two
/// plans (their ratio, which of them deployed and how recently).
fn relative_features(inputs: &Inputs, ids: Tensor<1, Int>) -> Tensor<3> {
    let [b, _, len] = inputs.future.dims();
    let a = ids.dims()[0];
    let device = inputs.future.device();
    let channels =
        |x: &Tensor<3>, steps: usize| x.clone().select(1, ids.clone()).slice([0..b, 0..a, 0..steps]);
    let known = channels(&inputs.future_mask, len);
    let (planned, last) = (channels(&inputs.future, len), channels(&inputs.last, 1));
    let ratio = log_ratios(inputs, ids);
    let lag = RELATIVE_LAG.min(len);
    let lagged = Tensor::cat(
        vec![Tensor::zeros([b, a, lag], &device), ratio.clone().slice([0..b, 0..a, 0..len - lag])],
        2,
    );
    let change = soft_clip((planned - last) * known);
    let since = change.clone().cumsum(2).clamp(-1.0, 1.0);
    // `decay[j, h] = e^{−(h − j)/τ}` for `j ≤ h`: row `j`'s change as seen at step `h`.
    let decay: Vec<f32> = (0..len)
        .flat_map(|j| {
            (0..len).map(move |h| if j <= h { (-((h - j) as f32) / RELATIVE_DECAY).exp() } else { 0.0 })
        })
        .collect();
    let decay = Tensor::<2>::from_data(TensorData::new(decay, [len, len]), &device);
    let recent = soft_clip(change.reshape([b * a, len]).matmul(decay).reshape([b, a, len]));
    Tensor::cat(vec![ratio, lagged, since, recent], 1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{ModelBatch, ModelConfig};

    /// A step of an action from 10 to 20 two steps into the horizon, and a one-step pulse
    /// of a second (a deploy): the relative path's four features per channel and step.
    #[test]
    fn relative_features_compare_the_plan_with_the_last_value() {
        let (l, h) = (16, 16);
        let roles = vec![Role::Target, Role::Action, Role::Action];
        let mut values: Vec<f32> = (0..l).map(|i| 100.0 + i as f32).collect();
        values.extend(vec![10.0; l]);
        values.extend(vec![0.0; l]);
        let mut future = vec![0.0; h];
        future.extend((0..h).map(|i| if i < 2 { 10.0 } else { 20.0 }));
        future.extend((0..h).map(|i| if i == 4 { 1.0 } else { 0.0 }));
        let known: Vec<bool> = (0..3 * h).map(|i| i >= h).collect();
        let batch = ModelBatch::new(roles, 1, l, h, values, vec![true; 3 * l], future, known).unwrap();
        let config = ModelConfig { patch_len: 8, ..ModelConfig::small() };
        let device = Device::flex();
        let inputs = Inputs::new(&batch, &config, &device);
        let read = |x: &Tensor<3>| x.clone().into_data().try_to_vec::<f32>().unwrap();
        let actions = Tensor::<1, Int>::from_data(TensorData::new(vec![1i64, 2], [2]), &device);
        let features = read(&relative_features(&inputs, actions));
        let at = |feature: usize, action: usize, step: usize| features[(feature * 2 + action) * h + step];
        let (location, scale) = (read(&inputs.location), read(&inputs.scale));
        let offset = 0.05 * (location[1].abs() + scale[1]);
        let ratio = ((20.0 + offset) / (10.0 + offset)).ln();
        let close = |a: f32, b: f32| (a - b).abs() < 1e-4;
        for step in 0..h {
            let moved = step >= 2;
            assert!(close(at(0, 0, step), if moved { ratio } else { 0.0 }), "ratio at {step}");
            assert!(close(at(1, 0, step), if step >= 5 { ratio } else { 0.0 }), "lagged ratio at {step}");
            assert!(close(at(2, 0, step), if moved { 1.0 } else { 0.0 }), "moved at {step}");
            assert!(close(at(2, 1, step), if step >= 4 { 1.0 } else { 0.0 }), "deployed at {step}");
        }
        let pulse = 10.0 * (1.0 / scale[2] / 10.0).tanh();
        let decayed = |step: usize| 10.0 * (pulse * (-((step - 4) as f32) / 3.0).exp() / 10.0).tanh();
        assert!(
            close(at(3, 1, 3), 0.0) && close(at(3, 1, 4), decayed(4)) && close(at(3, 1, 10), decayed(10))
        );
        assert!(at(3, 0, 15) > at(3, 0, 2), "a held change builds up");
        assert!(features.iter().all(|v| v.is_finite()));
    }

    /// The relative path's units: the target's level, repeated, and the median's excess
    /// over the lowest observed context value, never below zero; a target never observed
    /// has no excess.
    #[test]
    fn relative_units_are_the_level_and_the_excess_over_the_floor() {
        let (l, h) = (8, 4);
        let roles = vec![Role::Target, Role::Target, Role::Action];
        let mut values: Vec<f32> = vec![50.0, 40.0, 20.0, 60.0, 45.0, 52.0, 70.0, 30.0];
        values.extend(vec![7.0; l]);
        values.extend(vec![3.0; l]);
        let mut observed = vec![true; 3 * l];
        observed[2] = false; // the 20 is a gap: the floor is 30
        observed[l..2 * l].iter_mut().for_each(|o| *o = false);
        let known: Vec<bool> = (0..3 * h).map(|i| i >= 2 * h).collect();
        let batch = ModelBatch::new(roles, 1, l, h, values, observed, vec![3.0; 3 * h], known).unwrap();
        let config = ModelConfig { patch_len: 2, ..ModelConfig::small() };
        let device = Device::flex();
        let inputs = Inputs::new(&batch, &config, &device);
        let read = |x: Tensor<3>| x.into_data().try_to_vec::<f32>().unwrap();
        let (location, scale) = (read(inputs.location.clone()), read(inputs.scale.clone()));
        // The median in scaled units: 80, 30, 10 and 55 in the data's.
        let median: Vec<f32> =
            [80.0, 30.0, 10.0, 55.0].iter().map(|v| (v - location[0]) / scale[0]).collect();
        let median =
            Tensor::<4>::from_data(TensorData::new([median, vec![0.0; h]].concat(), [1, 2, h, 1]), &device);
        let units = relative_units(&inputs, median, 2).into_data().try_to_vec::<f32>().unwrap();
        // `[1, S = 2, T = 2, U·P = 4]`.
        let at = |s: usize, t: usize, u: usize, step: usize| units[(s * 2 + t) * 4 + u * 2 + step];
        let close = |a: f32, b: f32| (a - b).abs() < 1e-4;
        for (i, excess) in [50.0, 0.0, 0.0, 25.0].iter().enumerate() {
            let (s, step) = (i / 2, i % 2);
            assert!(close(at(s, 0, 0, step), location[0].abs() / scale[0]), "level at {i}");
            assert!(close(at(s, 0, 1, step), excess / scale[0]), "excess at {i}");
            assert_eq!(at(s, 1, 1, step), 0.0, "a target never observed has no excess");
        }
    }

    /// A replica count (whole, held, at its lowest half the time), a traffic weight
    /// (within [0, 1], moving every step), a request rate with a gap, and a channel never
    /// observed: the six kind cues of each.
    #[test]
    fn kind_cues_tell_a_channel_by_its_values() {
        let l = 8;
        let roles = vec![Role::Target, Role::Action, Role::Action, Role::Covariate];
        let mut values = vec![900.0, 1000.5, 1100.0, 1050.25, 0.0, 980.0, 990.0, 1010.0];
        values.extend([3.0, 3.0, 3.0, 3.0, 4.0, 4.0, 4.0, 4.0]);
        values.extend([0.5, 0.6, 0.7, 0.8, 0.9, 1.0, 0.9, 0.8]);
        values.extend(vec![0.0; l]);
        let mut observed = vec![true; 4 * l];
        observed[4] = false; // the request rate's gap
        observed[3 * l..].iter_mut().for_each(|o| *o = false);
        let batch = ModelBatch::new(roles, 1, l, 2, values, observed, vec![0.0; 8], vec![false; 8]).unwrap();
        let config = ModelConfig { patch_len: 2, ..ModelConfig::small() };
        let device = Device::flex();
        let inputs = Inputs::new(&batch, &config, &device);
        let read = |x: &Tensor<3>| x.clone().into_data().try_to_vec::<f32>().unwrap();
        let channels = Tensor::<1, Int>::from_data(TensorData::new(vec![0i64, 1, 2, 3], [4]), &device);
        let cues = read(&kind_cues(&inputs, channels));
        let (location, scale) = (read(&inputs.location), read(&inputs.scale));
        let close = |a: f32, b: f32| (a - b).abs() < 1e-4;
        for c in 0..4 {
            let at = |cue: usize| cues[c * KIND_CUES + cue];
            let magnitude = 1.0 + location[c].abs();
            assert!(close(at(0), magnitude.ln()) && close(at(1), (scale[c] / magnitude).ln()), "size of {c}");
        }
        let rest = |c: usize| cues[c * KIND_CUES + 2..(c + 1) * KIND_CUES].to_vec();
        // The request rate: 5 of its 7 values whole, its 5 observed consecutive pairs all
        // moving, 900 its lowest.
        let rps = rest(0);
        assert!(close(rps[0], 5.0 / 7.0) && close(rps[1], 1.0) && rps[2] == 0.0 && close(rps[3], 1.0 / 7.0));
        assert!(close(rest(1)[0], 1.0) && close(rest(1)[1], 1.0 / 7.0) && rest(1)[2] == 0.0);
        assert!(close(rest(1)[3], 0.5), "the replica count is at its lowest half the time");
        let weight = rest(2);
        assert!(
            close(weight[0], 1.0 / 8.0)
                && close(weight[1], 1.0)
                && weight[2] == 1.0
                && close(weight[3], 0.125)
        );
        assert_eq!(rest(3), vec![0.0; 4], "a channel never observed");
        assert!(cues.iter().all(|v| v.is_finite()));
    }
}
