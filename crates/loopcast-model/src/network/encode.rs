//! The encoders: context patches into memory tokens and the initial state, and the plan's
//! future patches into action tokens.

use burn::tensor::{Device, Int, Tensor, TensorData};
use loopcast_core::Role;

use super::{Encoded, Inputs, Network, role_index, soft_clip};

impl Network {
    /// Patches `[B, C, L]` values and masks into `[B, C, N, 2P + 2]` encoder inputs.
    fn patches(&self, values: Tensor<3>, mask: Tensor<3>, statistics: Tensor<3>) -> Tensor<4> {
        let [b, c, l] = values.dims();
        let (p, n) = (self.patch_len, l / self.patch_len);
        let statistics = statistics.reshape([b, c, 1, 2]).expand([b, c, n, 2]);
        Tensor::cat(vec![values.reshape([b, c, n, p]), mask.reshape([b, c, n, p]), statistics], 3)
    }

    fn role_tokens(&self, table: Tensor<2>, roles: &[Role], device: &Device) -> Tensor<2> {
        let ids: Vec<i64> = roles.iter().map(|r| role_index(*r)).collect();
        let len = ids.len();
        table.select(0, Tensor::<1, Int>::from_data(TensorData::new(ids, [len]), device))
    }

    /// Encodes the histories: patch tokens with role and position embeddings, factorised
    /// attention, then the initial state from the target channels' last and pooled
    /// tokens and a global summary.
    pub fn encode(&self, inputs: &Inputs) -> Encoded {
        let device = inputs.context.device();
        let [b, c, l] = inputs.context.dims();
        let (d, n, t) = (self.d_model(), l / self.patch_len, inputs.targets);
        let patches = self.patches(inputs.context.clone(), inputs.context_mask.clone(), inputs.statistics());
        let patches = if self.naive_unit_context {
            Tensor::cat(vec![patches, naive_unit_context(inputs).reshape([b, c, n, self.patch_len])], 3)
        } else {
            patches
        };
        let tokens = self.patch_encoder.forward(patches);
        let roles = self.role_tokens(self.role_embedding.val(), &inputs.roles, &device).reshape([1, c, 1, d]);
        // Positions count back from the forecast origin: the last patch is always 0.
        let back: Vec<i64> = (0..n as i64).rev().collect();
        let positions = self
            .context_position
            .val()
            .select(0, Tensor::<1, Int>::from_data(TensorData::new(back, [n]), &device))
            .reshape([1, 1, n, d]);
        let mut x = tokens + roles + positions;
        for layer in &self.encoder {
            x = layer.forward(x);
        }
        let x = self.memory_norm.forward(x);
        let target_tokens = x.clone().slice([0..b, 0..t, 0..n, 0..d]);
        let last = target_tokens.clone().slice([0..b, 0..t, n - 1..n, 0..d]).reshape([b, t, d]);
        let pooled = target_tokens.mean_dim(2).reshape([b, t, d]);
        let per_target = self.state_init.forward(Tensor::cat(vec![last, pooled], 2));
        let global = self.global_init.forward(x.clone().mean_dim(2).mean_dim(1).reshape([b, 1, d]));
        Encoded { memory: x.reshape([b, c * n, d]), state: Tensor::cat(vec![per_target, global], 1) }
    }

    /// The operator's plan as the history foretells it (`ModelConfig::expected_plan`):
    /// every action channel's log ratio to its last value per future step, `[B, C − T,
    /// K·P]`, bounded softly to ±3 like the plan's own ratios, zero on covariates. Read
    /// from the channel's last context token and the global state of `encoded`, never
    /// from the plan. `None` without the head or without action channels.
    pub fn expected_plan(&self, inputs: &Inputs, encoded: &Encoded) -> Option<Tensor<3>> {
        let (Some(reader), Some(norm), Some(head)) = (&self.plan_reader, &self.plan_norm, &self.plan_head)
        else {
            return None;
        };
        let [b, c, len] = inputs.future.dims();
        let (d, t, k) = (self.d_model(), inputs.targets, len / self.patch_len);
        if c == t {
            return None;
        }
        let n = encoded.memory.dims()[1] / c;
        let last = encoded
            .memory
            .clone()
            .reshape([b, c, n, d])
            .slice([0..b, t..c, n - 1..n, 0..d])
            .reshape([b, c - t, d]);
        let global = encoded.state.clone().slice([0..b, t..t + 1, 0..d]).expand([b, c - t, d]);
        let channel = reader.forward(Tensor::cat(vec![last, global], 2)).reshape([b, c - t, 1, d]);
        let positions = self.horizon_position.val().slice([0..k, 0..d]).reshape([1, 1, k, d]);
        let ratios = head.forward(norm.forward(channel + positions)).reshape([b, c - t, len]);
        Some(ratios.div_scalar(3.0).tanh().mul_scalar(3.0) * inputs.action_channels())
    }

    /// Action tokens for every future patch, `[B, A, K, d]`: planned values of the action
    /// and covariate channels with their masks, own encoder, own role embeddings, and
    /// horizon positions. Without such channels, one learned "no action" token per patch.
    pub fn actions(&self, inputs: &Inputs) -> Tensor<4> {
        let device = inputs.future.device();
        let [b, c, len] = inputs.future.dims();
        let (d, k, t) = (self.d_model(), len / self.patch_len, inputs.targets);
        if k > self.horizon_position.val().dims()[0] {
            panic!("horizon of {k} patches exceeds the position table; callers check max_horizon_patches");
        }
        let positions = self.horizon_position.val().slice([0..k, 0..d]).reshape([1, 1, k, d]);
        if t == c {
            return self.no_action.val().reshape([1, 1, 1, d]).expand([b, 1, k, d]) + positions;
        }
        let statistics = inputs.statistics().slice([0..b, t..c, 0..2]);
        let future = inputs.future.clone().slice([0..b, t..c, 0..len]);
        let mask = inputs.future_mask.clone().slice([0..b, t..c, 0..len]);
        let tokens = self.action_encoder.forward(self.patches(future, mask, statistics));
        let roles = self
            .role_tokens(self.action_role_embedding.val(), &inputs.roles[t..], &device)
            .reshape([1, c - t, 1, d]);
        tokens + roles + positions
    }
}

/// The context in the decoding unit, `[B, C, N·P]`: each target's gap to its last observed
/// value over its typical naive error (at least 10⁻³), squashed softly to ±10; zero where
/// unobserved and on every other channel.
fn naive_unit_context(inputs: &Inputs) -> Tensor<3> {
    let [b, c, l] = inputs.context.dims();
    let t = inputs.targets;
    let unit = inputs.naive_error.clone().clamp_min(1e-3);
    let last = inputs.last.clone().slice([0..b, 0..t, 0..1]);
    let gap = (inputs.context.clone().slice([0..b, 0..t, 0..l]) - last) / unit;
    let targets = soft_clip(gap) * inputs.context_mask.clone().slice([0..b, 0..t, 0..l]);
    if c == t {
        return targets;
    }
    Tensor::cat(vec![targets, Tensor::zeros([b, c - t, l], &inputs.context.device())], 1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{ModelBatch, ModelConfig};

    fn values(x: Tensor<3>) -> Vec<f32> {
        x.into_data().try_to_vec::<f32>().unwrap()
    }

    /// A target at about 100 with a spread of 2.5 and a lag-2 naive error of 1, and a
    /// covariate: the encoder's extra input is the target's gap to its last value (6) in
    /// naive errors, whatever the level and spread, and zero elsewhere.
    #[test]
    fn the_naive_unit_context_is_the_gap_to_the_last_value_in_naive_errors() {
        let target = [1.0f32, 3.0, 2.0, 4.0, 3.0, 5.0, 4.0, 6.0].map(|v| v * 1.0 + 100.0);
        let covariate = [7.0f32; 8];
        let mut observed = vec![true; 16];
        observed[2] = false;
        let context = target.iter().chain(&covariate).copied().collect();
        let batch = ModelBatch::new(
            vec![Role::Target, Role::Covariate],
            1,
            8,
            1,
            context,
            observed.clone(),
            vec![0.0, 7.0],
            vec![false, true],
        )
        .unwrap()
        .with_season(2);
        let config = ModelConfig { patch_len: 4, max_context_patches: 8, ..ModelConfig::small() };
        let inputs = Inputs::new(&batch, &config, &Device::flex());
        let got = values(naive_unit_context(&inputs));
        for (i, (got, x)) in got[..8].iter().zip(target).enumerate() {
            let want = if observed[i] { 10.0 * ((x - 106.0) / 10.0).tanh() } else { 0.0 };
            assert!((got - want).abs() < 1e-4, "step {i}: {got} vs {want}");
        }
        assert_eq!(&got[8..], &[0.0; 8], "the covariate has no such input");
    }
}
