//! The saturation term of ratio effects (`ModelConfig::saturation_effects`): a smooth
//! hinge on the gap between an action's planned log level and a target's anchored log
//! level, so that an action matters near a knee and not far from it.

use burn::nn::{Linear, LinearConfig};
use burn::tensor::{Device, Int, Tensor};

use super::decode::select_patches;
use super::{ALMOST_CLOSED, Inputs, NEAR_ZERO, Network};

impl Network {
    /// The same weights with a fresh saturation term, in place of the one it has, if any:
    /// its gain starts almost closed, so the forecasts barely move.
    pub(crate) fn with_saturation_term(self, device: &Device) -> Self {
        let d = self.d_model();
        let side = |init| LinearConfig::new(d, d).with_bias(false).with_initializer(init).init(device);
        Self {
            saturation_gain: Some(side(ALMOST_CLOSED)),
            saturation_shift: Some(LinearConfig::new(d, d).with_bias(false).init(device)),
            saturation_sharpness: Some(side(NEAR_ZERO)),
            ..self
        }
    }

    /// The saturation term's part of the ratio effects' exponent, `[B, T, S·P, 1]`, for
    /// the decoded patches `ids` (`None` without the term). `normed` are the targets'
    /// normalised states `[B, S, T, d]` and `tokens` the direct path's action tokens
    /// `[B, S, d, A]`. For every target `t` and action channel `a` it is
    /// `g · (h(x_plan) − h(x_expected))` with `h(x) = softplus(k · (x + s)) / k`, where
    /// `x` is the gap from the target's anchored log level to the action's log level
    /// ([`level_gaps`]) and the gain `g`, shift `s` and sharpness `k ∈ [e⁻², e²]` are
    /// bilinear forms of the target's state and the channel's token. The term is zero
    /// where the plan is the expected one, never larger than `|g|` times the plan's log
    /// departure, `g` times it far above the knee and nothing far below; covariates get
    /// none.
    pub(super) fn saturation_exponent(
        &self,
        inputs: &Inputs,
        normed: &Tensor<4>,
        tokens: &Tensor<4>,
        ids: &Tensor<1, Int>,
    ) -> Option<Tensor<4>> {
        let (Some(gain), Some(shift), Some(sharpness)) =
            (&self.saturation_gain, &self.saturation_shift, &self.saturation_sharpness)
        else {
            return None;
        };
        let [b, s, t, d] = normed.dims();
        let (a, p) = (tokens.dims()[3], self.patch_len);
        let bilinear = |side: &Linear| {
            side.forward(normed.clone())
                .matmul(tokens.clone())
                .div_scalar((d as f32).sqrt())
                .reshape([b, s, t, a, 1])
        };
        let sharpness = bilinear(sharpness).div_scalar(2.0).tanh().mul_scalar(2.0).exp();
        let (planned, expected) = level_gaps(inputs, ids, p);
        let actions = inputs.action_channels().reshape([1, 1, 1, a, 1]);
        let term = hinge_difference(bilinear(gain) * actions, bilinear(shift), sharpness, planned, expected);
        Some(term.sum_dim(3).reshape([b, s, t, p]).swap_dims(1, 2).reshape([b, t, s * p, 1]))
    }
}

/// `gain · (h(planned) − h(expected))` with `h(x) = softplus(sharpness · (x + shift)) /
/// sharpness`: zero where the gaps agree, `gain` times their difference far above the
/// knee, nothing far below it, and never more than `|gain|` times their difference.
fn hinge_difference(
    gain: Tensor<5>,
    shift: Tensor<5>,
    sharpness: Tensor<5>,
    planned: Tensor<5>,
    expected: Tensor<5>,
) -> Tensor<5> {
    let hinge = |gap: Tensor<5>| softplus((gap + shift.clone()) * sharpness.clone()) / sharpness.clone();
    gain * (hinge(planned) - hinge(expected))
}

/// `ln(1 + eˣ)` without overflow for large `x`.
fn softplus(x: Tensor<5>) -> Tensor<5> {
    x.clone().clamp_min(0.0) + x.abs().neg().exp().log1p()
}

/// Per decoded step (patches `ids` of `p` steps), the gap from every target's anchored
/// log level to every action channel's log level, under the plan and under the expected
/// plan (the last value without one): `[B, S, T, A, P]` each. Levels are in the data's
/// units offset by [`Inputs::log_offset`]; where the plan is unknown both gaps are the
/// expected plan's, so the term is zero there.
fn level_gaps(inputs: &Inputs, ids: &Tensor<1, Int>, p: usize) -> (Tensor<5>, Tensor<5>) {
    let [b, c, len] = inputs.future.dims();
    let (t, a, s) = (inputs.targets, c - inputs.targets, ids.dims()[0]);
    let offset = inputs.log_offset();
    let log_level = |x: Tensor<3>, rows: std::ops::Range<usize>| {
        let pick = |y: &Tensor<3>| y.clone().slice([0..b, rows.clone(), 0..1]);
        ((x * pick(&inputs.scale) + pick(&inputs.location)).abs() + pick(&offset)).log()
    };
    let last = log_level(inputs.last.clone().slice([0..b, t..c, 0..1]), t..c);
    let ratios = inputs.action_log_ratios();
    let expected = match &inputs.expected_plan {
        Some(expected) => expected.clone().detach(),
        None => ratios.zeros_like(),
    };
    let known = inputs.future_mask.clone().slice([0..b, t..c, 0..len]);
    let planned = last.clone() + ratios * known.clone() + expected.clone() * (known.neg() + 1.0);
    let foreseen = last + expected;
    let per_step = |x: Tensor<3>| select_patches(x, ids, p).swap_dims(1, 2);
    let anchor = per_step(log_level(inputs.anchor.clone(), 0..t)).reshape([b, s, t, 1, p]);
    let gap = |level: Tensor<3>| per_step(level).reshape([b, s, 1, a, p]) - anchor.clone();
    (gap(planned), gap(foreseen))
}

#[cfg(test)]
mod tests {
    use burn::module::Param;
    use burn::tensor::TensorData;
    use loopcast_core::Role;

    use super::super::LoopControl;
    use super::*;
    use crate::{EffectUnits, ModelBatch, ModelConfig};

    fn values<const D: usize>(x: Tensor<D>) -> Vec<f32> {
        x.into_data().try_to_vec::<f32>().unwrap()
    }

    fn row(v: &[f32]) -> Tensor<5> {
        Tensor::from_data(TensorData::new(v.to_vec(), [1, 1, 1, 1, v.len()]), &Device::flex())
    }

    /// Gaps far below, at and far above the knee, each raised by half a log unit: nothing,
    /// part of the gain, the whole gain times the half unit; a sharper hinge is nearer its
    /// kink, a shift moves the knee, and gaps of any size stay finite.
    #[test]
    fn the_hinge_acts_near_its_knee_only() {
        let every = |x: f32| row(&[x; 4]);
        let expected = row(&[-20.0, 0.0, 20.0, 3.0]);
        let planned = row(&[-19.5, 0.5, 20.5, 3.0]);
        let got =
            values(hinge_difference(every(2.0), every(0.0), every(1.0), planned.clone(), expected.clone()));
        assert!(got[0].abs() < 1e-6, "far below the knee: {}", got[0]);
        let at_knee = 2.0 * ((1.0 + 0.5f32.exp()).ln() - 2.0f32.ln());
        assert!((got[1] - at_knee).abs() < 1e-5, "at the knee: {} vs {at_knee}", got[1]);
        assert!((got[2] - 1.0).abs() < 1e-4, "far above the knee: {}", got[2]);
        assert_eq!(got[3], 0.0, "the plan is the expected one");
        let sharp =
            values(hinge_difference(every(2.0), every(0.0), every(7.0), planned.clone(), expected.clone()));
        assert!(sharp[1] > got[1] && sharp[1] <= 1.0 + 1e-6, "sharper: {} vs {}", sharp[1], got[1]);
        let shifted = values(hinge_difference(every(2.0), every(20.0), every(1.0), planned, expected));
        assert!((shifted[0] - got[1]).abs() < 1e-5, "the shift moves the knee to −20: {}", shifted[0]);
        let huge =
            values(hinge_difference(every(1.0), every(0.0), every(7.0), row(&[1e6; 4]), row(&[-1e6; 4])));
        assert!(huge.iter().all(|h| h.is_finite()), "{huge:?}");
    }

    fn batch(target: f32, last: f32, plan: f32) -> ModelBatch {
        let (l, h) = (24, 8);
        let mut context: Vec<f32> = (0..l).map(|i| target + (i % 2) as f32).collect();
        context.extend(vec![last; l]);
        context.extend(vec![3.0; l]);
        let mut future = vec![0.0; h];
        future.extend((0..h).map(|i| if i < 4 { plan } else { 0.0 }));
        future.extend(vec![3.0; h]);
        let known: Vec<bool> = (0..3 * h).map(|i| (h..h + 4).contains(&i) || i >= 2 * h).collect();
        let roles = vec![Role::Target, Role::Action, Role::Covariate];
        ModelBatch::new(roles, 1, l, h, context, vec![true; 3 * l], future, known).unwrap().with_season(2)
    }

    fn config() -> ModelConfig {
        ModelConfig {
            patch_len: 4,
            max_context_patches: 8,
            max_horizon_patches: 2,
            effect_units: EffectUnits::Ratio,
            saturation_effects: true,
            ..ModelConfig::small()
        }
    }

    /// The gaps are the action's log level less the target's anchored one, in the data's
    /// units with their offsets: the plan's where it is known, the last value's elsewhere.
    #[test]
    fn the_level_gaps_compare_the_actions_level_with_the_targets_anchor() {
        let device = Device::flex();
        let inputs = Inputs::new(&batch(100.0, 4.0, 8.0), &config(), &device);
        let ids = Tensor::<1, Int>::arange(0..2, &device);
        let (planned, expected) = level_gaps(&inputs, &ids, 4);
        assert_eq!(planned.dims(), [1, 2, 1, 2, 4]);
        let offset = values(inputs.log_offset());
        let anchor = |step: usize| if step % 2 == 0 { 100.0 } else { 101.0 };
        let (planned, expected) = (values(planned), values(expected));
        for step in 0..8 {
            let (patch, within) = (step / 4, step % 4);
            let at = |channel: usize| patch * 8 + channel * 4 + within;
            let gap = |level: f32| ((level + offset[1]) / (anchor(step) + offset[0])).ln();
            let plan = if step < 4 { 8.0 } else { 4.0 };
            assert!(
                (planned[at(0)] - gap(plan)).abs() < 1e-4,
                "step {step}: {} vs {}",
                planned[at(0)],
                gap(plan)
            );
            assert!((expected[at(0)] - gap(4.0)).abs() < 1e-4, "step {step}");
        }
    }

    /// Opened, the term moves the forecast of a plan that departs from the last value and
    /// leaves one that holds it exactly where it was.
    #[test]
    fn the_saturation_term_moves_only_departing_plans() {
        let device = Device::flex();
        let config = config();
        let mut network = Network::new(&config, &device);
        let gain = network.saturation_gain.clone().unwrap();
        network.saturation_gain =
            Some(Linear { weight: Param::from_tensor(gain.weight.val().mul_scalar(1e4)), ..gain });
        let term = |plan: f32| {
            let inputs = Inputs::new(&batch(100.0, 4.0, plan), &config, &device);
            let encoded = network.encode(&inputs);
            let control = LoopControl { min_loops: 1, max_loops: 1, exit_threshold: 2.0 };
            let rollout =
                network.rollout(&inputs, encoded.state, network.memory_keys(encoded.memory), control);
            let (normed, ids) = network.decoding_states(rollout.states, &[0, 1], 1);
            let norm = network.effect_norm.clone().unwrap();
            let tokens = network
                .effect_action
                .clone()
                .unwrap()
                .forward(norm.forward(rollout.actions.select(2, ids.clone())))
                .swap_dims(1, 2)
                .swap_dims(2, 3);
            values(network.saturation_exponent(&inputs, &normed, &tokens, &ids).expect("a term"))
        };
        assert!(term(4.0).iter().all(|e| *e == 0.0), "{:?}", term(4.0));
        let moved = term(400.0);
        assert!(moved[..4].iter().all(|e| e.abs() > 1e-4), "the planned steps move: {moved:?}");
        assert!(moved[4..].iter().all(|e| *e == 0.0), "steps without a plan do not: {moved:?}");
    }
}
