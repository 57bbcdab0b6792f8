//! Analytic cost of a forecast: multiply-add FLOPs of the matrix products, counted from
//! the shapes (elementwise work is left out; it is a few percent at these sizes).

use crate::ModelConfig;

/// The shape of a request, for [`forecast_flops`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RequestShape {
    /// Channels `C` (targets, actions and covariates).
    pub channels: usize,
    /// Target channels `T`.
    pub targets: usize,
    /// Context steps `L`.
    pub context: usize,
    /// Horizon steps `H`.
    pub horizon: usize,
}

/// FLOPs of one attention layer over `queries` query tokens and `keys` key tokens, with the
/// key/value projections over `keys` tokens.
fn attention(d: usize, queries: usize, keys: usize) -> usize {
    // Q and output projections on the queries, K and V on the keys, scores and mixing.
    2 * (2 * queries * d * d + 2 * keys * d * d + 2 * queries * keys * d)
}

fn mlp(tokens: usize, input: usize, hidden: usize, output: usize) -> usize {
    2 * tokens * (input * hidden + hidden * output)
}

/// FLOPs to forecast one window of `shape` with `loops` loops per future patch.
pub fn forecast_flops(config: &ModelConfig, shape: RequestShape, loops: usize) -> usize {
    let d = config.d_model;
    let hidden = d * config.mlp_ratio;
    let p = config.patch_len;
    let n = shape.context.div_ceil(p).min(config.max_context_patches);
    let k = shape.horizon.div_ceil(p);
    let c = shape.channels;
    let actions = (c - shape.targets).max(1);
    let features = 2 * p + 2;
    let tokens = c * n;
    let state = shape.targets + 1;

    let patch = mlp(tokens, features, d, d) + 2 * tokens * features * d;
    let layer = attention(d, n, n) * c
        + mlp(tokens, d, hidden, d)
        + attention(d, c, c) * n
        + mlp(tokens, d, hidden, d);
    let encoder = patch + config.encoder_layers * layer + 2 * shape.targets * 2 * d * d + 2 * d * d;
    let action = k * (mlp(actions, features, d, d) + 2 * actions * features * d);
    // The memory's keys and values are projected once per request (per block when the
    // core is unshared); every loop projects only the state's queries and reads them.
    let one_block_keys = 2 * 2 * tokens * d * d;
    let blocks = if config.shared_core { 1 } else { config.max_loops };
    let cross = attention(d, state, tokens) - one_block_keys;
    let block = attention(d, state + actions, state + actions) + cross + mlp(state, d, hidden, d);
    let gate = 2 * 2 * d;
    let head_per_patch = 2 * shape.targets * d * p * config.quantiles.len();
    // Without deferred decoding, every patch after the first decodes the previous one and
    // re-encodes the history (and re-projects the memory's keys).
    let reencodings = if config.deferred_decoding { 0 } else { k.saturating_sub(1) };
    let history = (1 + reencodings) * (encoder + blocks * one_block_keys);
    history + action + k * loops * (block + gate) + (k + reencodings) * head_per_patch
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cost_grows_with_loops_and_context() {
        let config = ModelConfig::small();
        let shape = RequestShape { channels: 4, targets: 3, context: 512, horizon: 64 };
        let one = forecast_flops(&config, shape, 1);
        let eight = forecast_flops(&config, shape, 8);
        assert!(eight > one);
        let longer = forecast_flops(&config, RequestShape { context: 1024, ..shape }, 1);
        assert!(longer > one);
        let unshared = ModelConfig { shared_core: false, ..config.clone() };
        assert!(forecast_flops(&unshared, shape, 8) > eight, "every block projects the memory");
        let reencoding = ModelConfig { deferred_decoding: false, ..config };
        assert!(forecast_flops(&reencoding, shape, 1) > 3 * one, "four encodings instead of one");
    }
}
