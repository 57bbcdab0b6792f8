//! The departure memory of ratio effects (`ModelConfig::departure_memory`): what the plan
//! has done since the forecast time, so that a one-step action (a deploy) can move the
//! steps after it.

use burn::nn::LinearConfig;
use burn::tensor::{Device, Int, Tensor, TensorData};

use super::decode::select_patches;
use super::{Inputs, NEAR_ZERO, Network};

/// Features of the memory: the highest departure so far, the lowest, and a fading sum.
pub(super) const MEMORY_FEATURES: usize = 3;

/// Steps over which the fading sum halves.
const HALF_LIFE: f32 = 4.0;

impl Network {
    /// The same weights with a fresh departure memory, in place of the one it has, if
    /// any; its coefficients start near zero.
    pub(crate) fn with_departure_memory(self, device: &Device) -> Self {
        let d = self.d_model();
        let side = || LinearConfig::new(d, d).with_bias(false).with_initializer(NEAR_ZERO).init(device);
        Self { memory_sides: (0..MEMORY_FEATURES).map(|_| side()).collect(), ..self }
    }

    /// The memory's part of the ratio effects' exponent, `[B, T, S·P, 1]`, for the
    /// decoded patches `ids` (`None` without the memory). `normed` are the targets'
    /// normalised states `[B, S, T, d]` and `tokens` the direct path's action tokens `[B,
    /// S, d, A]`: every [`departure_features`] times its own bilinear coefficient of the
    /// two, summed over the channels.
    pub(super) fn memory_exponent(
        &self,
        inputs: &Inputs,
        normed: &Tensor<4>,
        tokens: &Tensor<4>,
        ids: &Tensor<1, Int>,
    ) -> Option<Tensor<4>> {
        if self.memory_sides.is_empty() {
            return None;
        }
        let [b, s, t, d] = normed.dims();
        let p = self.patch_len;
        let features = departure_features(inputs.plan_departures());
        let terms = self.memory_sides.iter().zip(features).map(|(side, feature)| {
            let coefficients =
                side.forward(normed.clone()).matmul(tokens.clone()).div_scalar((d as f32).sqrt());
            let feature = select_patches(feature, ids, p).swap_dims(1, 2);
            coefficients.matmul(feature).swap_dims(1, 2).reshape([b, t, s * p, 1])
        });
        terms.reduce(|sum, term| sum + term)
    }
}

/// The memory's features of the plan's log departures `[B, A, L]` (zero where the plan is
/// unknown), each `[B, A, L]`: the running maximum of their positive parts, the running
/// minimum of their negative parts, and their sum fading by half every [`HALF_LIFE`]
/// steps. A single step's departure stays in the first two after it, and fades in the
/// third.
fn departure_features(departures: Tensor<3>) -> [Tensor<3>; MEMORY_FEATURES] {
    let [_, _, len] = departures.dims();
    let decay = 0.5f32.powf(1.0 / HALF_LIFE);
    // `kernel[τ, s] = decay^(s − τ)` for `s ≥ τ`: the sum at `s` of what departed at `τ`.
    let kernel: Vec<f32> = (0..len)
        .flat_map(|from| {
            (0..len).map(move |to| if to >= from { decay.powi((to - from) as i32) } else { 0.0 })
        })
        .collect();
    let kernel = Tensor::<2>::from_data(TensorData::new(kernel, [len, len]), &departures.device());
    let [b, a, _] = departures.dims();
    let fading = departures.clone().reshape([b * a, len]).matmul(kernel).reshape([b, a, len]);
    let risen = departures.clone().clamp_min(0.0).cummax(2);
    let fallen = departures.clamp_max(0.0).neg().cummax(2).neg();
    [risen, fallen, fading]
}

#[cfg(test)]
mod tests {
    use loopcast_core::Role;

    use super::super::decode::{effect_reads, opened, small_ratio_config};
    use super::*;
    use crate::{ModelBatch, ModelConfig};

    /// A target at about 100, an action held at 4 whose plan is `plan` over the first four
    /// steps and unknown after, and a covariate at 3.
    fn batch(plan: f32) -> ModelBatch {
        let (l, h) = (24, 8);
        let mut context: Vec<f32> = (0..l).map(|i| 100.0 + (i % 2) as f32).collect();
        context.extend(vec![4.0; l]);
        context.extend(vec![3.0; l]);
        let mut future = vec![0.0; h];
        future.extend((0..h).map(|i| if i < 4 { plan } else { 0.0 }));
        future.extend(vec![3.0; h]);
        let known: Vec<bool> = (0..3 * h).map(|i| (h..h + 4).contains(&i) || i >= 2 * h).collect();
        let roles = vec![Role::Target, Role::Action, Role::Covariate];
        ModelBatch::new(roles, 1, l, h, context, vec![true; 3 * l], future, known).unwrap().with_season(2)
    }

    /// Opened, the memory moves every step from a plan's departure on, the steps whose
    /// plan is unknown included, and leaves a plan that holds the last value exactly
    /// where it was.
    #[test]
    fn the_memory_moves_the_steps_after_a_departure() {
        let device = Device::flex();
        let config = ModelConfig { departure_memory: true, ..small_ratio_config() };
        let mut network = Network::new(&config, &device);
        network.memory_sides = network.memory_sides.iter().map(|side| opened(side.clone(), 100.0)).collect();
        let term = |plan: f32| {
            let inputs = Inputs::new(&batch(plan), &config, &device);
            let (normed, tokens, ids) = effect_reads(&network, &inputs);
            let term = network.memory_exponent(&inputs, &normed, &tokens, &ids).expect("a memory");
            term.into_data().try_to_vec::<f32>().unwrap()
        };
        assert!(term(4.0).iter().all(|e| *e == 0.0), "{:?}", term(4.0));
        // The plan departs over steps 0–3 and is unknown after: the memory carries on.
        let moved = term(8.0);
        assert!(moved.iter().all(|e| e.abs() > 1e-4), "every step after the departure moves: {moved:?}");
    }

    /// One deploy-like step of 3 log units at step 2 and a held step of −0.5 from step 5:
    /// the highest departure stays at 3 after the deploy, the lowest at −0.5 from step 5,
    /// and the fading sum halves every four steps.
    #[test]
    fn a_single_steps_departure_is_remembered_after_it() {
        let mut plan = vec![0.0f32; 12];
        plan[2] = 3.0;
        plan[5..].fill(-0.5);
        let departures = Tensor::<3>::from_data(TensorData::new(plan.clone(), [1, 1, 12]), &Device::flex());
        let [risen, fallen, fading] =
            departure_features(departures).map(|f| f.into_data().try_to_vec::<f32>().unwrap());
        assert_eq!(risen, [0.0, 0.0, 3.0, 3.0, 3.0, 3.0, 3.0, 3.0, 3.0, 3.0, 3.0, 3.0]);
        assert_eq!(fallen, [0.0, 0.0, 0.0, 0.0, 0.0, -0.5, -0.5, -0.5, -0.5, -0.5, -0.5, -0.5]);
        let decay = 0.5f32.powf(0.25);
        for (step, got) in fading.iter().enumerate() {
            let want: f32 = (0..=step).map(|from| plan[from] * decay.powi((step - from) as i32)).sum();
            assert!((got - want).abs() < 1e-5, "step {step}: {got} vs {want}");
        }
        assert!((fading[6] - (3.0 * 0.5 - 0.5 * (1.0 + decay))).abs() < 1e-5, "{}", fading[6]);
    }
}
