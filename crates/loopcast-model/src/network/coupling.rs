//! The level coupling of ratio effects (`ModelConfig::level_coupling`): a target's effect
//! also reads where the plan takes every target's level, through a knee. A plan that
//! halves capacity doubles CPU through the direct path; whether latency then explodes
//! depends on where CPU lands against the knee, not on the plan's log ratio alone. The
//! coupling is the same for every pair of targets, read from their states, so it knows
//! no channel's name or place.

use burn::module::Module;
use burn::nn::{Linear, LinearConfig};
use burn::tensor::activation::softplus;
use burn::tensor::{Device, Tensor};

use super::{Inputs, NEAR_ZERO, Network};

/// The knee's sharpness, per log unit of the source's level: it bends over about a
/// sixth of a log unit (a level change of about 18 %).
const SHARPNESS: f64 = 6.0;

/// The bilinear sides of the coupling: its gain and its knee, each a form of the
/// receiving and the source target's states.
#[derive(Module, Debug)]
pub(crate) struct Coupling {
    gain: Linear,
    knee: Linear,
}

impl Coupling {
    fn new(d: usize, device: &Device) -> Self {
        let side = || LinearConfig::new(d, d).with_bias(false).with_initializer(NEAR_ZERO).init(device);
        Self { gain: side(), knee: side() }
    }
}

impl Network {
    /// The same weights with a fresh level coupling, in place of the one it has, if any;
    /// its gains start near zero.
    pub(crate) fn with_level_coupling(self, device: &Device) -> Self {
        let d = self.d_model();
        Self { coupling: Some(Coupling::new(d, device)), ..self }
    }

    /// The coupling's part of the ratio effects' exponent, `[B, T, S·P, 1]` (`None`
    /// without the coupling), given the decoded patches' normalised target states
    /// `normed` (`[B, S, T, d]`), their `quantiles` (`[B, T, S·P, Q]`, scaled units) and
    /// the direct path's `exponent` (`[B, T, S·P, 1]`).
    ///
    /// Every target `j`'s log level over its last observed value is taken at its median
    /// as forecast (`base`) and moved by its direct effect (`planned`). Target `i` then
    /// gets `Σ_j g_ij · (h(planned_j − k_ij) − h(base_j − k_ij))`, with `h(x) =
    /// softplus(s·x)/s` and gain `g_ij` and knee `k_ij` bilinear forms of the two targets'
    /// states. A plan with no direct effect adds nothing; one that pushes a source past its
    /// knee moves the receiver much more than one that moves it as far below.
    pub(super) fn coupling_exponent(
        &self,
        inputs: &Inputs,
        normed: &Tensor<4>,
        quantiles: &Tensor<4>,
        exponent: &Tensor<4>,
    ) -> Option<Tensor<4>> {
        let coupling = self.coupling.as_ref()?;
        let [b, s, t, d] = normed.dims();
        let p = self.patch_len;
        let per_target = |x: &Tensor<3>| x.clone().slice([0..b, 0..t, 0..1]).reshape([b, t, 1, 1]);
        let (location, scale, offset) =
            (per_target(&inputs.location), per_target(&inputs.scale), per_target(&inputs.log_offset()));
        let last = (per_target(&inputs.last) * scale.clone() + location.clone()).abs() + offset.clone();
        let median = quantiles.clone().slice([0..b, 0..t, 0..s * p, self.median..self.median + 1]);
        let base = (((median * scale + location).clamp_min(0.0) + offset).log() - last.log()).detach();
        let planned = base.clone() + exponent.clone().detach();
        // `[B, S, 1, T, P]`: per decoded patch, the sources' levels over its steps.
        let sources = |x: Tensor<4>| x.reshape([b, t, s, p]).swap_dims(1, 2).reshape([b, s, 1, t, p]);
        let form = |side: &Linear| {
            side.forward(normed.clone())
                .matmul(normed.clone().swap_dims(2, 3))
                .div_scalar((d as f32).sqrt())
                .reshape([b, s, t, t, 1])
        };
        let (gain, knee) = (form(&coupling.gain), form(&coupling.knee));
        let hinge = |level: Tensor<5>| softplus(level - knee.clone(), SHARPNESS);
        let moved = gain * (hinge(sources(planned)) - hinge(sources(base)));
        Some(moved.sum_dim(3).reshape([b, s, t, p]).swap_dims(1, 2).reshape([b, t, s * p, 1]))
    }
}

#[cfg(test)]
mod tests {
    use loopcast_core::Role;

    use burn::tensor::TensorData;

    use super::super::decode::{effect_reads, opened, small_ratio_config};
    use super::*;
    use crate::{ModelBatch, ModelConfig};

    /// Two targets at about 100 and 50, an action held at 4 whose plan is `plan` over the
    /// horizon, and a covariate at 3.
    fn batch(plan: f32) -> ModelBatch {
        let (l, h) = (24, 8);
        let mut context: Vec<f32> = (0..l).map(|i| 100.0 + (i % 2) as f32).collect();
        context.extend((0..l).map(|i| 50.0 - (i % 3) as f32));
        context.extend(vec![4.0; l]);
        context.extend(vec![3.0; l]);
        let mut future = vec![0.0; 2 * h];
        future.extend(vec![plan; h]);
        future.extend(vec![3.0; h]);
        let known: Vec<bool> = (0..4 * h).map(|i| i >= 2 * h).collect();
        let roles = vec![Role::Target, Role::Target, Role::Action, Role::Covariate];
        ModelBatch::new(roles, 1, l, h, context, vec![true; 4 * l], future, known).unwrap().with_season(2)
    }

    fn coupled_network(config: &ModelConfig, device: &Device) -> Network {
        let network = Network::new(config, device);
        let coupling = network.coupling.clone().expect("a coupling");
        Network { coupling: Some(Coupling { gain: opened(coupling.gain, 100.0), ..coupling }), ..network }
    }

    /// The coupling adds nothing where no target's level moves, and where the direct
    /// effect moves them it moves every target, by more for a rise past the knee than for
    /// a fall as far below it (`h` is convex).
    #[test]
    fn the_coupling_bends_at_the_sources_knee() {
        let device = Device::flex();
        let config = ModelConfig { level_coupling: true, ..small_ratio_config() };
        let network = coupled_network(&config, &device);
        let inputs = Inputs::new(&batch(4.0), &config, &device);
        let (normed, _, ids) = effect_reads(&network, &inputs);
        let quantiles = network.plain_quantiles(&inputs, &normed, &ids);
        let [b, t, steps, _] = quantiles.dims();
        let term = |exponent: f32| {
            let exponent = Tensor::<4>::full([b, t, steps, 1], exponent, &device);
            let term =
                network.coupling_exponent(&inputs, &normed, &quantiles, &exponent).expect("a coupling");
            term.into_data().try_to_vec::<f32>().unwrap()
        };
        assert!(term(0.0).iter().all(|e| *e == 0.0), "{:?}", term(0.0));
        let (up, down) = (term(0.5), term(-0.5));
        assert!(up.iter().all(|e| e.abs() > 1e-5), "every target and step moves: {up:?}");
        // Each cell is Σ_j g_ij (h(x_j + 0.5) − h(x_j)), and the same less 0.5: for a
        // convex h the first difference is the larger, whatever the knee, so a gain's
        // effect of a rise outweighs that of an equal fall wherever the gains agree.
        let convex = up.iter().zip(&down).filter(|(u, d)| u.abs() > d.abs()).count();
        assert!(convex * 2 > up.len(), "{convex} of {} cells bend upwards", up.len());
    }

    /// The coupling knows no channel's place: with the two targets swapped (their
    /// history, plan and direct effects), their terms swap.
    #[test]
    fn swapping_two_targets_swaps_their_coupling() {
        let device = Device::flex();
        let config = ModelConfig { level_coupling: true, ..small_ratio_config() };
        let network = coupled_network(&config, &device);
        let swap = |x: Tensor<4>| {
            let b = x.dims()[0];
            Tensor::cat(vec![x.clone().slice([0..b, 1..2]), x.slice([0..b, 0..1])], 1)
        };
        let term = |batch: &ModelBatch, swapped: bool| {
            let inputs = Inputs::new(batch, &config, &device);
            let (normed, _, ids) = effect_reads(&network, &inputs);
            let quantiles = network.plain_quantiles(&inputs, &normed, &ids);
            let [b, t, steps, _] = quantiles.dims();
            let exponent: Vec<f32> = (0..b * t * steps).map(|i| 0.1 * (i % 5) as f32 - 0.2).collect();
            let exponent = Tensor::<4>::from_data(TensorData::new(exponent, [b, t, steps, 1]), &device);
            let exponent = if swapped { swap(exponent) } else { exponent };
            network.coupling_exponent(&inputs, &normed, &quantiles, &exponent).unwrap()
        };
        let straight = batch(6.0);
        let (l, h) = (straight.context(), straight.horizon());
        let (context, observed) = straight.context_arrays();
        let (future, known) = straight.future_arrays();
        fn flip<T: Copy>(x: &[T], n: usize) -> Vec<T> {
            [&x[n..2 * n], &x[..n], &x[2 * n..]].concat()
        }
        let swapped = ModelBatch::new(
            straight.roles().to_vec(),
            1,
            l,
            h,
            flip(context, l),
            flip(observed, l),
            flip(future, h),
            flip(known, h),
        )
        .unwrap()
        .with_season(2);
        let (want, got) = (swap(term(&straight, false)), term(&swapped, true));
        let (want, got) =
            (want.into_data().try_to_vec::<f32>().unwrap(), got.into_data().try_to_vec::<f32>().unwrap());
        assert!(want.iter().any(|w| w.abs() > 1e-5), "{want:?}");
        for (w, g) in want.iter().zip(&got) {
            assert!((w - g).abs() <= 1e-4 * w.abs().max(1e-3), "{want:?} vs {got:?}");
        }
    }
}
