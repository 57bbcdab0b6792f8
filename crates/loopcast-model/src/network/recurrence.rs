//! The effect recurrence of ratio effects (`ModelConfig::effect_recurrence`): a gated
//! recurrent cell run over the future steps, so what a departure does can build up over
//! the steps after it (a backlog that grows while demand exceeds the capacity a plan
//! leaves) and reach orders of magnitude in the log multiplier.

use burn::module::Module;
use burn::nn::gru::{Gru, GruConfig};
use burn::nn::{Linear, LinearConfig};
use burn::tensor::activation::relu;
use burn::tensor::{Device, Int, Tensor};

use super::decode::select_patches;
use super::{Inputs, NEAR_ZERO, Network, soft_clip};

/// Features of a channel's log departure per step: itself, its positive and its negative
/// part (a cut and a raise may act at different sizes).
const DEPARTURE_FEATURES: usize = 3;

/// The cell's weights.
#[derive(Module, Debug)]
pub(super) struct EffectRecurrence {
    /// The target's normalised state into the cell's input width.
    state_in: Linear,
    /// A channel's normalised action token into the weights of its departure features
    /// (`width × DEPARTURE_FEATURES`).
    action_in: Linear,
    cell: Gru,
    /// The cell's output into a log multiplier, starting near zero.
    out: Linear,
}

impl EffectRecurrence {
    fn width(&self) -> usize {
        self.out.weight.val().dims()[0]
    }
}

impl Network {
    /// The same weights with a fresh effect recurrence (`width` wide), in place of the one
    /// it has, if any; its output starts near zero.
    pub(crate) fn with_effect_recurrence(self, device: &Device) -> Self {
        let d = self.d_model();
        let width = (d / 2).max(8);
        let recurrence = EffectRecurrence {
            state_in: LinearConfig::new(d, width).init(device),
            action_in: LinearConfig::new(d, width * DEPARTURE_FEATURES).with_bias(false).init(device),
            cell: GruConfig::new(2 * width, width, true).init(device),
            out: LinearConfig::new(width, 1).with_bias(false).with_initializer(NEAR_ZERO).init(device),
        };
        Self { effect_recurrence: Some(recurrence), ..self }
    }

    /// The recurrence's part of the ratio effects' log multiplier, `[B, T, S·P, 1]`,
    /// bounded softly to ±10, for the decoded patches `ids` (`None` without it). `normed`
    /// are the targets' normalised states `[B, S, T, d]` and `actions` the rollout's action
    /// tokens `[B, A, K, d]`. The cell runs once on the plan's departures and once on none,
    /// from the same states; the difference is the plan's effect, zero for a plan that
    /// keeps to the expected one.
    pub(super) fn recurrent_exponent(
        &self,
        inputs: &Inputs,
        normed: &Tensor<4>,
        actions: &Tensor<4>,
        ids: &Tensor<1, Int>,
    ) -> Option<Tensor<4>> {
        let (recurrence, norm) = (self.effect_recurrence.as_ref()?, self.effect_norm.as_ref()?);
        let [b, s, t, _] = normed.dims();
        let (p, e) = (self.patch_len, recurrence.width());
        let a = actions.dims()[1];
        let steps = s * p;
        // Per channel and decoded patch, the weights of its departure features.
        let weights = recurrence
            .action_in
            .forward(norm.forward(actions.clone().select(2, ids.clone())))
            .reshape([b * a * s, e, DEPARTURE_FEATURES]);
        let departures = select_patches(inputs.plan_departures(), ids, p);
        let features =
            Tensor::cat(vec![departures.clone(), relu(departures.clone()), relu(departures.neg())], 3)
                .reshape([b * a * s, DEPARTURE_FEATURES, p]);
        // `[B, S·P, e]`: the channels' weighted features summed, the same for every target.
        let driven = weights
            .matmul(features)
            .reshape([b, a, s, e, p])
            .sum_dim(1)
            .reshape([b, s, e, p])
            .swap_dims(2, 3)
            .reshape([b, 1, steps, e])
            .expand([b, t, steps, e]);
        let state = recurrence
            .state_in
            .forward(normed.clone())
            .swap_dims(1, 2)
            .reshape([b, t, s, 1, e])
            .expand([b, t, s, p, e])
            .reshape([b, t, steps, e]);
        let planned = Tensor::cat(vec![state.clone(), driven.clone()], 3);
        let held = Tensor::cat(vec![state, driven.zeros_like()], 3);
        let both = Tensor::cat(vec![planned, held], 0).reshape([2 * b * t, steps, 2 * e]);
        let output = recurrence.out.forward(recurrence.cell.forward(both, None)).reshape([2, b, t, steps, 1]);
        let planned = output.clone().slice([0..1, 0..b, 0..t, 0..steps, 0..1]);
        let held = output.slice([1..2, 0..b, 0..t, 0..steps, 0..1]);
        Some(soft_clip((planned - held).reshape([b, t, steps, 1])))
    }
}

#[cfg(test)]
mod tests {
    use loopcast_core::Role;

    use super::super::decode::{effect_reads, opened, small_ratio_config};
    use super::*;
    use crate::{ModelBatch, ModelConfig};

    /// A target at about 100 and an action held at 4 in the context whose plan is `plan`
    /// from step 2 of the horizon on (4 before it).
    fn batch(plan: f32) -> ModelBatch {
        let (l, h) = (24, 8);
        let mut context: Vec<f32> = (0..l).map(|i| 100.0 + (i % 2) as f32).collect();
        context.extend(vec![4.0; l]);
        let mut future = vec![0.0; h];
        future.extend((0..h).map(|i| if i < 2 { 4.0 } else { plan }));
        let known: Vec<bool> = (0..2 * h).map(|i| i >= h).collect();
        let roles = vec![Role::Target, Role::Action];
        ModelBatch::new(roles, 1, l, h, context, vec![true; 2 * l], future, known).unwrap().with_season(2)
    }

    /// Opened, the recurrence leaves a plan that holds the last value exactly where it was,
    /// and moves a departing plan's steps from the departure on, never before it; a cut
    /// and a raise move them apart.
    #[test]
    fn the_recurrence_moves_the_steps_from_a_departure_on() {
        let device = Device::flex();
        let config = ModelConfig { effect_recurrence: true, ..small_ratio_config() };
        let mut network = Network::new(&config, &device);
        let recurrence = network.effect_recurrence.take().expect("a recurrence");
        network.effect_recurrence =
            Some(EffectRecurrence { out: opened(recurrence.out, 100.0), ..recurrence });
        let term = |plan: f32| {
            let inputs = Inputs::new(&batch(plan), &config, &device);
            let (normed, _, ids) = effect_reads(&network, &inputs);
            let actions = network.actions(&inputs);
            let term = network.recurrent_exponent(&inputs, &normed, &actions, &ids).expect("a recurrence");
            term.into_data().try_to_vec::<f32>().unwrap()
        };
        assert!(term(4.0).iter().all(|e| *e == 0.0), "{:?}", term(4.0));
        let (cut, raised) = (term(2.0), term(8.0));
        assert!(cut[..2].iter().chain(&raised[..2]).all(|e| *e == 0.0), "{cut:?} {raised:?}");
        assert!(cut[2..8].iter().all(|e| e.abs() > 1e-5), "every step from the departure on moves: {cut:?}");
        assert!(cut[2..8].iter().zip(&raised[2..8]).all(|(c, r)| c != r), "{cut:?} {raised:?}");
    }
}
