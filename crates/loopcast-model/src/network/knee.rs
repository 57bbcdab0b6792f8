//! The knee of ratio effects (`ModelConfig::knee_effects`): a one-hidden-layer term of
//! the plan's departures whose units switch on where the target's state puts their
//! threshold, so adding capacity can cut a saturated service's latency by a factor and
//! leave an idle one's alone. The direct path's coefficient is linear in the departure
//! for a given state; a queue's latency is not.

use burn::module::Module;
use burn::nn::{Linear, LinearConfig};
use burn::tensor::activation::gelu;
use burn::tensor::{Device, Int, Tensor};

use super::decode::select_patches;
use super::memory::departure_features;
use super::{Inputs, NEAR_ZERO, Network};

/// Features of one action channel's departure per step: the departure itself and the
/// memory's three ([`departure_features`]).
const KNEE_FEATURES: usize = 4;

/// The knee's weights: per hidden unit, a threshold and a slope read from the target's
/// state, a weight read from the action channel's token, the lift of the departure
/// features, and the units' weights on the exponent (starting near zero).
#[derive(Module, Debug)]
pub(super) struct Knee {
    threshold: Linear,
    slope: Linear,
    channel: Linear,
    lift: Linear,
    output: Linear,
}

impl Knee {
    /// A fresh knee for states and tokens of width `d`.
    pub(super) fn new(d: usize, device: &Device) -> Self {
        let hidden = d;
        Self {
            threshold: LinearConfig::new(d, hidden).init(device),
            slope: LinearConfig::new(d, hidden).init(device),
            channel: LinearConfig::new(d, hidden).with_bias(false).init(device),
            lift: LinearConfig::new(KNEE_FEATURES, hidden).with_bias(false).init(device),
            output: LinearConfig::new(hidden, 1).with_bias(false).with_initializer(NEAR_ZERO).init(device),
        }
    }
}

impl Network {
    /// The same weights with a fresh knee, in place of the one it has, if any.
    pub(crate) fn with_knee(self, device: &Device) -> Self {
        let d = self.d_model();
        Self { knee: Some(Knee::new(d, device)), ..self }
    }

    /// The knee's part of the ratio effects' exponent, `[B, T, S·P, 1]`, for the decoded
    /// patches `ids` (`None` without the knee). `normed` are the targets' normalised
    /// states `[B, S, T, d]` and `tokens` the action tokens after the direct path's norm,
    /// `[B, A, S, d]`. Per target, step and hidden unit `k`:
    /// `m_k = Σ_a channel_k(token_a) · lift_k(features_a)` sums what every channel's
    /// departure does, and the unit adds `gelu(u_k + g_k · m_k) − gelu(u_k)` with the
    /// threshold `u` and slope `g` read from the target's state: zero without a departure,
    /// about linear in it where the unit is on, and a hinge where the departure carries
    /// the unit across its threshold.
    pub(super) fn knee_exponent(
        &self,
        inputs: &Inputs,
        normed: &Tensor<4>,
        tokens: Tensor<4>,
        ids: &Tensor<1, Int>,
    ) -> Option<Tensor<4>> {
        let knee = self.knee.as_ref()?;
        let [b, s, t, _] = normed.dims();
        let p = self.patch_len;
        let departures = inputs.plan_departures();
        let a = departures.dims()[1];
        let [risen, fallen, fading] = departure_features(departures.clone());
        let features: Vec<Tensor<4>> = [departures, risen, fallen, fading]
            .into_iter()
            .map(|feature| select_patches(feature, ids, p).reshape([b, a, s, p, 1]).squeeze_dim::<4>(4))
            .collect();
        // `[B, A, S, P, F]` lifted to `[B, A, S, P, H]`.
        let lifted = knee.lift.forward(Tensor::stack::<5>(features, 4));
        let h = lifted.dims()[4];
        let channel = knee.channel.forward(tokens).reshape([b, a, s, 1, h]);
        let summed = (channel * lifted).sum_dim(1).reshape([b, s, 1, p, h]);
        let threshold = knee.threshold.forward(normed.clone()).reshape([b, s, t, 1, h]);
        let slope = knee.slope.forward(normed.clone()).reshape([b, s, t, 1, h]);
        let hidden = gelu(threshold.clone() + slope * summed) - gelu(threshold);
        let exponent = knee.output.forward(hidden);
        Some(exponent.reshape([b, s, t, p]).swap_dims(1, 2).reshape([b, t, s * p, 1]))
    }
}

#[cfg(test)]
mod tests {
    use loopcast_core::Role;

    use super::super::LoopControl;
    use super::super::decode::{opened, small_ratio_config};
    use super::*;
    use crate::{ModelBatch, ModelConfig};

    /// A target at about 100 and an action held at 4 whose plan is `plan` over the whole
    /// horizon.
    fn batch(plan: f32) -> ModelBatch {
        let (l, h) = (24, 8);
        let mut context: Vec<f32> = (0..l).map(|i| 100.0 + (i % 2) as f32).collect();
        context.extend(vec![4.0; l]);
        let mut future = vec![0.0; h];
        future.extend(vec![plan; h]);
        let known: Vec<bool> = (0..2 * h).map(|i| i >= h).collect();
        let roles = vec![Role::Target, Role::Action];
        ModelBatch::new(roles, 1, l, h, context, vec![true; 2 * l], future, known).unwrap().with_season(2)
    }

    /// Opened, the knee leaves a plan that holds the last value exactly where it was and
    /// moves the forecast under one that departs, by an amount that is not linear in the
    /// departure.
    #[test]
    fn the_knee_is_zero_without_a_departure_and_bends_with_one() {
        let device = Device::flex();
        let config = ModelConfig { knee_effects: true, ..small_ratio_config() };
        let mut network = Network::new(&config, &device);
        let knee = network.knee.take().expect("a knee");
        network.knee = Some(Knee { output: opened(knee.output, 100.0), ..knee });
        let term = |plan: f32| {
            let inputs = Inputs::new(&batch(plan), &config, &device);
            let encoded = network.encode(&inputs);
            let control = LoopControl { min_loops: 1, max_loops: 1, exit_threshold: 2.0 };
            let rollout =
                network.rollout(&inputs, encoded.state, network.memory_keys(encoded.memory), control);
            let (normed, ids) = network.decoding_states(rollout.states, &[0, 1], inputs.targets);
            let norm = network.effect_norm.clone().expect("action effects");
            let tokens = norm.forward(rollout.actions.select(2, ids.clone()));
            let term = network.knee_exponent(&inputs, &normed, tokens, &ids).expect("a knee");
            term.into_data().try_to_vec::<f32>().unwrap()
        };
        assert!(term(4.0).iter().all(|e| *e == 0.0), "{:?}", term(4.0));
        let (half, double, quadruple) = (term(2.0), term(8.0), term(16.0));
        assert!(double.iter().all(|e| e.abs() > 1e-5), "every step moves: {double:?}");
        // ln 2 and ln 4 departures: a linear term would give exactly twice the effect, and
        // halving would give its negative.
        let bend = (0..double.len())
            .map(|i| (quadruple[i] - 2.0 * double[i]).abs().max((half[i] + double[i]).abs()))
            .fold(0.0f32, f32::max);
        assert!(bend > 1e-4, "the knee bends: {double:?} {quadruple:?} {half:?}");
    }
}
