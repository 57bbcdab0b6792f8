//! Building blocks: MLPs, the factorised encoder layer, and the shared looped block.

use burn::module::Module;
use burn::nn::attention::{MhaInput, MultiHeadAttention, MultiHeadAttentionConfig};
use burn::nn::{LayerNorm, LayerNormConfig, Linear, LinearConfig};
use burn::tensor::activation::{gelu, softmax};
use burn::tensor::{Device, Tensor};

fn attention(d_model: usize, heads: usize, device: &Device) -> MultiHeadAttention {
    MultiHeadAttentionConfig::new(d_model, heads).with_dropout(0.0).init(device)
}

/// Two linear layers with a GELU between them.
#[derive(Module, Debug)]
pub(crate) struct Mlp {
    hidden: Linear,
    output: Linear,
}

impl Mlp {
    pub(crate) fn new(input: usize, hidden: usize, output: usize, device: &Device) -> Self {
        Self {
            hidden: LinearConfig::new(input, hidden).init(device),
            output: LinearConfig::new(hidden, output).init(device),
        }
    }

    pub(crate) fn forward<const D: usize>(&self, x: Tensor<D>) -> Tensor<D> {
        self.output.forward(gelu(self.hidden.forward(x)))
    }
}

/// An MLP with a linear skip: the patch and action encoders.
#[derive(Module, Debug)]
pub(crate) struct ResidualMlp {
    mlp: Mlp,
    skip: Linear,
}

impl ResidualMlp {
    pub(crate) fn new(input: usize, d_model: usize, device: &Device) -> Self {
        Self {
            mlp: Mlp::new(input, d_model, d_model, device),
            skip: LinearConfig::new(input, d_model).init(device),
        }
    }

    pub(crate) fn forward<const D: usize>(&self, x: Tensor<D>) -> Tensor<D> {
        self.mlp.forward(x.clone()) + self.skip.forward(x)
    }
}

/// Pre-norm self-attention and MLP over a sequence `[N, S, d]`.
#[derive(Module, Debug)]
pub(crate) struct SequenceLayer {
    norm_attention: LayerNorm,
    attention: MultiHeadAttention,
    norm_mlp: LayerNorm,
    mlp: Mlp,
}

impl SequenceLayer {
    pub(crate) fn new(d_model: usize, heads: usize, hidden: usize, device: &Device) -> Self {
        Self {
            norm_attention: LayerNormConfig::new(d_model).init(device),
            attention: attention(d_model, heads, device),
            norm_mlp: LayerNormConfig::new(d_model).init(device),
            mlp: Mlp::new(d_model, hidden, d_model, device),
        }
    }

    pub(crate) fn forward(&self, x: Tensor<3>) -> Tensor<3> {
        let attended =
            self.attention.forward(MhaInput::self_attn(self.norm_attention.forward(x.clone()))).context;
        let x = x + attended;
        x.clone() + self.mlp.forward(self.norm_mlp.forward(x))
    }
}

/// One factorised encoder layer over the token grid `[B, C, N, d]`: attention over time
/// within each channel, then across channels at each patch.
#[derive(Module, Debug)]
pub(crate) struct FactorisedLayer {
    time: SequenceLayer,
    channels: SequenceLayer,
}

impl FactorisedLayer {
    pub(crate) fn new(d_model: usize, heads: usize, hidden: usize, device: &Device) -> Self {
        Self {
            time: SequenceLayer::new(d_model, heads, hidden, device),
            channels: SequenceLayer::new(d_model, heads, hidden, device),
        }
    }

    pub(crate) fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let [b, c, n, d] = x.dims();
        let x = self.time.forward(x.reshape([b * c, n, d])).reshape([b, c, n, d]);
        let x = x.swap_dims(1, 2).reshape([b * n, c, d]);
        self.channels.forward(x).reshape([b, n, c, d]).swap_dims(1, 2)
    }
}

/// The shared block of the looped core. Its output is computed from layer-normalised
/// inputs only (no residual path from the state), so it is bounded whatever the state;
/// the retention update then keeps the state itself bounded.
#[derive(Module, Debug)]
pub(crate) struct CoreBlock {
    norm_state: LayerNorm,
    norm_action: LayerNorm,
    self_attention: MultiHeadAttention,
    norm_cross: LayerNorm,
    cross_attention: MultiHeadAttention,
    norm_mlp: LayerNorm,
    mlp: Mlp,
}

impl CoreBlock {
    pub(crate) fn new(d_model: usize, heads: usize, hidden: usize, device: &Device) -> Self {
        Self {
            norm_state: LayerNormConfig::new(d_model).init(device),
            norm_action: LayerNormConfig::new(d_model).init(device),
            self_attention: attention(d_model, heads, device),
            norm_cross: LayerNormConfig::new(d_model).init(device),
            cross_attention: attention(d_model, heads, device),
            norm_mlp: LayerNormConfig::new(d_model).init(device),
            mlp: Mlp::new(d_model, hidden, d_model, device),
        }
    }

    /// The cross-attention's keys and values of `memory` `[B, M, d]`, computed once per
    /// rollout rather than once per loop (they are most of a loop's work otherwise).
    pub(crate) fn memory_keys(&self, memory: Tensor<3>) -> BlockKeys {
        let attention = &self.cross_attention;
        BlockKeys {
            key: heads(attention.key.forward(memory.clone()), attention.n_heads),
            value: heads(attention.value.forward(memory), attention.n_heads),
        }
    }

    /// `state` `[B, S, d]`, `actions` `[B, A, d]` → update `[B, S, d]`: self-attention over
    /// state and action tokens, cross-attention from the state to the memory, an MLP.
    pub(crate) fn forward(&self, state: Tensor<3>, actions: Tensor<3>, memory: &BlockKeys) -> Tensor<3> {
        let [b, s, d] = state.dims();
        let z = self.norm_state.forward(state);
        let tokens = Tensor::cat(vec![z.clone(), self.norm_action.forward(actions)], 1);
        let attended =
            self.self_attention.forward(MhaInput::self_attn(tokens)).context.slice([0..b, 0..s, 0..d]);
        let z = self.norm_cross.forward(z + attended);
        let z = self.norm_mlp.forward(z.clone() + self.read(z, memory));
        z.clone() + self.mlp.forward(z)
    }

    /// Multi-head cross-attention from `query` `[B, S, d]` to precomputed memory keys
    /// (burn's `MultiHeadAttention` with its key and value projections hoisted out).
    fn read(&self, query: Tensor<3>, memory: &BlockKeys) -> Tensor<3> {
        let attention = &self.cross_attention;
        let [b, s, d] = query.dims();
        let query = heads(attention.query.forward(query), attention.n_heads);
        let scores = query.matmul(memory.key.clone().transpose()).div_scalar((attention.d_k as f32).sqrt());
        let context = softmax(scores, 3).matmul(memory.value.clone());
        attention.output.forward(context.swap_dims(1, 2).reshape([b, s, d]))
    }
}

/// One block's memory keys and values per head, `[B, heads, M, d/heads]` each.
#[derive(Debug, Clone)]
pub(crate) struct BlockKeys {
    key: Tensor<4>,
    value: Tensor<4>,
}

impl BlockKeys {
    fn repeat(&self, copies: usize) -> Self {
        Self { key: self.key.clone().repeat_dim(0, copies), value: self.value.clone().repeat_dim(0, copies) }
    }
}

/// The memory as every core block reads it: each block's cross-attention keys and values
/// (one block when the core is shared).
#[derive(Debug, Clone)]
pub struct MemoryKeys {
    pub(crate) blocks: Vec<BlockKeys>,
}

impl MemoryKeys {
    /// The same keys for every window repeated `copies` times, scenario-major.
    pub fn repeat(&self, copies: usize) -> Self {
        Self { blocks: self.blocks.iter().map(|keys| keys.repeat(copies)).collect() }
    }
}

/// `[B, N, d]` → `[B, heads, N, d/heads]`.
fn heads(x: Tensor<3>, n_heads: usize) -> Tensor<4> {
    let [b, n, d] = x.dims();
    x.reshape([b, n, n_heads, d / n_heads]).swap_dims(1, 2)
}
