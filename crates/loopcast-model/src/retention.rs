//! The spectral retention update of the looped core: `x ← Ā ⊙ x + B̄ ⊙ u`, a diagonal
//! linear system in continuous time discretised by a zero-order hold, whose eigenvalues
//! lie strictly inside (0, 1) for any parameter values.

use burn::module::{Module, Param};
use burn::tensor::{Device, Distribution, Tensor};

/// Bounds of `Δ·(−A)`: the decay per loop stays in `[e^-20, e^-1e-4]`, strictly inside (0, 1).
const MIN_DECAY: f64 = 1e-4;
const MAX_DECAY: f64 = 20.0;

/// Per-channel retention parameters: `A = −exp(a_log)`, `Δ = exp(log_dt)`, input gain `b`.
#[derive(Module, Debug)]
pub(crate) struct Retention {
    a_log: Param<Tensor<1>>,
    log_dt: Param<Tensor<1>>,
    gain: Param<Tensor<1>>,
}

impl Retention {
    pub(crate) fn new(d_model: usize, device: &Device) -> Self {
        Self {
            a_log: Param::from_tensor(Tensor::random([d_model], Distribution::Uniform(-1.0, 1.0), device)),
            log_dt: Param::from_tensor(Tensor::full([d_model], -0.7, device)),
            gain: Param::from_tensor(Tensor::ones([d_model], device)),
        }
    }

    /// `Ā = exp(Δ·A)` and `B̄ = (1 − Ā) / (−A) · b`, each `[d]`.
    pub(crate) fn coefficients(&self) -> (Tensor<1>, Tensor<1>) {
        let rate = self.a_log.val().clamp(-6.0, 4.0).exp();
        let step = self.log_dt.val().clamp(-6.0, 2.0).exp();
        let decay = (rate.clone() * step).clamp(MIN_DECAY, MAX_DECAY);
        let retained = decay.neg().exp();
        let input = (retained.clone().neg().add_scalar(1.0) / rate) * self.gain.val();
        (retained, input)
    }

    /// One update of states `[B, S, d]` by block outputs `u` of the same shape.
    pub(crate) fn apply(&self, state: Tensor<3>, update: Tensor<3>) -> Tensor<3> {
        let d = state.dims()[2];
        let (retained, input) = self.coefficients();
        state * retained.reshape([1, 1, d]) + update * input.reshape([1, 1, d])
    }

    #[cfg(test)]
    fn with_values(a_log: Vec<f32>, log_dt: Vec<f32>, device: &Device) -> Self {
        let d = a_log.len();
        let tensor = |v: Vec<f32>| {
            Param::from_tensor(Tensor::from_data(burn::tensor::TensorData::new(v, [d]), device))
        };
        Self {
            a_log: tensor(a_log),
            log_dt: tensor(log_dt),
            gain: Param::from_tensor(Tensor::ones([d], device)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

        /// Whatever the parameters (including absurd ones), the retention eigenvalues
        /// `Ā` lie strictly inside (0, 1) and the input gain is finite.
        #[test]
        fn eigenvalues_lie_strictly_inside_the_unit_interval(
            a_log in proptest::collection::vec(-1e6f32..1e6, 1..16),
            seed in any::<u64>(),
        ) {
            let device = Device::flex();
            let log_dt: Vec<f32> = a_log.iter().enumerate().map(|(i, a)| (a * 0.37 + (seed % 97) as f32 - i as f32 * 3.1) % 1e5).collect();
            let retention = Retention::with_values(a_log, log_dt, &device);
            let (retained, input) = retention.coefficients();
            for v in retained.into_data().try_to_vec::<f32>().unwrap() {
                prop_assert!(v > 0.0 && v < 1.0, "eigenvalue {}", v);
            }
            for v in input.into_data().try_to_vec::<f32>().unwrap() {
                prop_assert!(v.is_finite() && v > 0.0, "input gain {}", v);
            }
        }
    }
}
