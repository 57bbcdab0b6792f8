//! The state probe (`ModelConfig::state_probe`): a training-only linear read of every
//! state token, asked to predict quantities of the system that its telemetry does not
//! show, so the state must carry them.

use burn::nn::LinearConfig;
use burn::tensor::{Device, Tensor};

use super::{NEAR_ZERO, Network};

/// Quantities the state probe predicts per state token.
pub const STATE_PROBES: usize = 2;

impl Network {
    /// The same weights with a fresh state probe, in place of the one it has, if any.
    pub(crate) fn with_state_probe(self, device: &Device) -> Self {
        let d = self.d_model();
        Self { probe: Some(LinearConfig::new(d, STATE_PROBES).with_initializer(NEAR_ZERO).init(device)), ..self }
    }

    /// The probe's prediction `[B, T + 1, STATE_PROBES]` from every token of `state`
    /// `[B, T + 1, d]`, read through the quantile head's norm (so the state the decoder
    /// reads is the one that must carry them). `None` without the probe.
    pub fn probe(&self, state: Tensor<3>) -> Option<Tensor<3>> {
        let probe = self.probe.as_ref()?;
        Some(probe.forward(self.head_norm.forward(state)))
    }
}

#[cfg(test)]
mod tests {
    use burn::tensor::Distribution;

    use super::*;
    use crate::ModelConfig;

    /// The probe answers every token of every window, and only when the config asks for it.
    #[test]
    fn the_probe_reads_every_state_token() {
        let device = Device::flex();
        let state = Tensor::<3>::random([2, 4, ModelConfig::small().d_model], Distribution::Default, &device);
        let without = Network::new(&ModelConfig::small(), &device);
        assert!(without.probe(state.clone()).is_none());
        let with = Network::new(&ModelConfig { state_probe: true, ..ModelConfig::small() }, &device);
        assert_eq!(with.probe(state).expect("a probe").dims(), [2, 4, STATE_PROBES]);
    }
}
