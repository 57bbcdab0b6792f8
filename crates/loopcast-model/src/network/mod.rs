//! The looped world model as a burn module, by concern: host-side inputs and scaling
//! ([`inputs`]), the history and action encoders ([`encode`]), the looped core and its
//! rollouts ([`rollout`]), the quantile decoder with its direct action path ([`decode`]),
//! the departure memory of ratio effects ([`memory`]), the effect recurrence
//! ([`recurrence`]) and the relative action path
//! ([`relative`]).

use burn::module::{Module, Param};
use burn::nn::{Initializer, LayerNorm, LayerNormConfig, Linear, LinearConfig};
use burn::tensor::{Device, Distribution, Tensor, TensorData};
use loopcast_core::Role;

use crate::layers::{CoreBlock, FactorisedLayer, ResidualMlp};
use crate::retention::Retention;
use crate::{EffectUnits, ModelConfig};

mod decode;
mod encode;
mod inputs;
mod memory;
mod recurrence;
mod relative;
mod rollout;

pub use inputs::Inputs;
pub use relative::{
    KIND_CUES, RELATIVE_ACTION_KINDS, RELATIVE_FEATURES, RELATIVE_TARGET_KINDS, RELATIVE_UNITS,
    RelativeDesign,
};

use decode::FEATURES;

/// Index of a role in the role embedding tables.
fn role_index(role: Role) -> i64 {
    match role {
        Role::Target => 0,
        Role::Action => 1,
        Role::Covariate => 2,
    }
}

fn table(rows: usize, d_model: usize, device: &Device) -> Param<Tensor<2>> {
    Param::from_tensor(Tensor::random([rows, d_model], Distribution::Normal(0.0, 0.02), device))
}

/// The history encoded once: memory tokens and the initial latent state.
#[derive(Debug, Clone)]
pub struct Encoded {
    /// Memory tokens `[B, C·N, d]`, read by cross-attention at every loop.
    pub memory: Tensor<3>,
    /// Initial state `[B, T + 1, d]`: one token per target channel and a global one.
    pub state: Tensor<3>,
}

/// How many times the shared block runs per future patch.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LoopControl {
    /// Fewest loops.
    pub min_loops: usize,
    /// Most loops.
    pub max_loops: usize,
    /// Exit once the gate reaches this (`0` exits at `min_loops`, above `1` never exits
    /// early).
    pub exit_threshold: f64,
}

/// A latent rollout: the state after each future patch and the loops each took.
#[derive(Debug, Clone)]
pub struct Rollout {
    /// `K` states `[B, T + 1, d]`.
    pub states: Vec<Tensor<3>>,
    /// Loops used per window and patch, `[B][K]`.
    pub loops: Vec<Vec<u32>>,
    /// The action tokens the rollout read, `[B, A, K, d]` ([`Network::actions`]; the
    /// decoder's direct action path reads them again).
    pub actions: Tensor<4>,
}

/// What a training rollout leaves behind for the losses.
#[derive(Debug, Clone)]
pub struct Trace {
    /// The state after each of the `K` patches, `[B, T + 1, d]`, with gradients.
    pub states: Vec<Tensor<3>>,
    /// Exit probability after every loop, `[B, K, loops]`.
    pub gates: Tensor<3>,
    /// Root-mean-square change of the state in every loop, `[B, K, loops]`.
    pub changes: Tensor<3>,
    /// The state after every loop, detached, `[K][loops]` (to score each loop count).
    pub loop_states: Vec<Vec<Tensor<3>>>,
    /// The action tokens the rollout read, `[B, A, K, d]`, with gradients.
    pub actions: Tensor<4>,
}

/// The network: every learned weight of the looped world model.
#[derive(Module, Debug)]
pub struct Network {
    patch_len: usize,
    quantiles: usize,
    patch_encoder: ResidualMlp,
    /// Whether the patch encoder also reads the targets' context in the decoding unit
    /// (`ModelConfig::naive_unit_context`).
    naive_unit_context: bool,
    action_encoder: ResidualMlp,
    role_embedding: Param<Tensor<2>>,
    action_role_embedding: Param<Tensor<2>>,
    context_position: Param<Tensor<2>>,
    horizon_position: Param<Tensor<2>>,
    no_action: Param<Tensor<2>>,
    encoder: Vec<FactorisedLayer>,
    memory_norm: LayerNorm,
    state_init: Linear,
    global_init: Linear,
    core: CoreBlock,
    /// The blocks of loops 2, 3, … when the core is unshared (empty when shared).
    unshared_cores: Vec<CoreBlock>,
    /// The retention update (absent without the constraint: `x ← x + u`).
    retention: Option<Retention>,
    /// Whether the rollout stays latent (`false`: decode and re-encode every patch).
    deferred_decoding: bool,
    /// Index of the quantile level nearest 0.5 (what re-encoding feeds back).
    median: usize,
    gate: Linear,
    head_norm: LayerNorm,
    head: Linear,
    /// Whether quantiles are offsets from the seasonal naive anchor (`ModelConfig::anchor`).
    anchor: bool,
    /// The quantiles' distance from the median is multiplied by this (`ModelConfig::interval_scale`).
    interval_scale: f32,
    /// The head on the anchor's own features (`ModelConfig::anchor_features`): `4P → P × Q`.
    anchor_head: Option<Linear>,
    /// The state's weights on the anchor features (`ModelConfig::state_blend`): `d → 4`.
    blend: Option<Linear>,
    /// The direct action path (`ModelConfig::action_effects`): the target-state side of
    /// the coefficient (initialised near zero), the action-token side and its norm.
    effect_state: Option<Linear>,
    /// Whether the direct path multiplies the targets by the plan's log ratios
    /// (`EffectUnits::Ratio`) rather than adding its scaled changes.
    ratio_effects: bool,
    effect_action: Option<Linear>,
    effect_norm: Option<LayerNorm>,
    /// The head forecasting the operator's plan (`ModelConfig::expected_plan`): an action
    /// channel's last context token and the global state read into one vector per
    /// channel, then per future patch (with its position) a norm and a log ratio per step,
    /// starting near zero (the last value).
    plan_reader: Option<ResidualMlp>,
    plan_norm: Option<LayerNorm>,
    plan_head: Option<Linear>,
    /// The departure memory (`ModelConfig::departure_memory`): the target-state sides of
    /// the coefficients of its features ([`memory::MEMORY_FEATURES`]), each a bilinear
    /// form with the direct path's action tokens.
    memory_sides: Vec<Linear>,
    /// The effect recurrence (`ModelConfig::effect_recurrence`).
    effect_recurrence: Option<recurrence::EffectRecurrence>,
    /// The relative action path (`ModelConfig::relative_effects`): which of
    /// [`RELATIVE_TARGET_KINDS`] kinds a target is (logits of its state and kind cues,
    /// `d + KIND_CUES → K_t`) and which of [`RELATIVE_ACTION_KINDS`] an action channel is
    /// (of its token and cues, `d + KIND_CUES → K_a`),
    /// the coefficient of each unit and feature between the two kinds, with a constant on
    /// the target side (`K_a → U·F·(K_t + 1)`, starting near zero; the path is solved,
    /// `Network::with_relative_weights`), and the action tokens' norm.
    relative_state: Option<Linear>,
    relative_action: Option<Linear>,
    relative_coefficients: Option<Linear>,
    relative_norm: Option<LayerNorm>,
}

impl Network {
    /// A network with fresh weights for `config` (assumed valid).
    pub fn new(config: &ModelConfig, device: &Device) -> Self {
        let d = config.d_model;
        let hidden = d * config.mlp_ratio;
        let features = 2 * config.patch_len + 2;
        let network = Self {
            patch_len: config.patch_len,
            quantiles: config.quantiles.len(),
            patch_encoder: ResidualMlp::new(
                features + if config.naive_unit_context { config.patch_len } else { 0 },
                d,
                device,
            ),
            naive_unit_context: config.naive_unit_context,
            action_encoder: ResidualMlp::new(features, d, device),
            role_embedding: table(3, d, device),
            action_role_embedding: table(3, d, device),
            context_position: table(config.max_context_patches, d, device),
            horizon_position: table(config.max_horizon_patches, d, device),
            no_action: table(1, d, device),
            encoder: (0..config.encoder_layers)
                .map(|_| FactorisedLayer::new(d, config.heads, hidden, device))
                .collect(),
            memory_norm: LayerNormConfig::new(d).init(device),
            state_init: LinearConfig::new(2 * d, d).init(device),
            global_init: LinearConfig::new(d, d).init(device),
            core: CoreBlock::new(d, config.heads, hidden, device),
            unshared_cores: if config.shared_core {
                Vec::new()
            } else {
                (1..config.max_loops).map(|_| CoreBlock::new(d, config.heads, hidden, device)).collect()
            },
            retention: config.retention.then(|| Retention::new(d, device)),
            deferred_decoding: config.deferred_decoding,
            median: config.median_level(),
            gate: LinearConfig::new(2 * d, 1).init(device),
            head_norm: LayerNormConfig::new(d).init(device),
            head: quantile_head(config, device),
            anchor: config.anchor,
            interval_scale: config.interval_scale as f32,
            anchor_head: config.anchor_features.then(|| {
                let p = config.patch_len;
                LinearConfig::new(FEATURES * p, p * config.quantiles.len())
                    .with_bias(false)
                    .with_initializer(NEAR_ZERO)
                    .init(device)
            }),
            blend: config.state_blend.then(|| {
                LinearConfig::new(config.d_model, FEATURES)
                    .with_bias(false)
                    .with_initializer(NEAR_ZERO)
                    .init(device)
            }),
            effect_state: config.action_effects.then(|| {
                LinearConfig::new(d, d).with_bias(false).with_initializer(ALMOST_CLOSED).init(device)
            }),
            ratio_effects: config.effect_units == EffectUnits::Ratio,
            effect_action: config
                .action_effects
                .then(|| LinearConfig::new(d, d).with_bias(false).init(device)),
            effect_norm: config.action_effects.then(|| LayerNormConfig::new(d).init(device)),
            plan_reader: None,
            plan_norm: None,
            plan_head: None,
            memory_sides: Vec::new(),
            effect_recurrence: None,
            relative_state: None,
            relative_action: None,
            relative_coefficients: None,
            relative_norm: None,
        };
        let network = if config.expected_plan { network.with_plan_head(device) } else { network };
        let network = if config.departure_memory { network.with_departure_memory(device) } else { network };
        let network = if config.effect_recurrence { network.with_effect_recurrence(device) } else { network };
        if config.relative_effects { network.with_relative_path(device) } else { network }
    }

    /// The same weights with a fresh head for the operator's expected plan
    /// (`ModelConfig::expected_plan`), in place of the one it has, if any.
    pub(crate) fn with_plan_head(self, device: &Device) -> Self {
        let d = self.d_model();
        Self {
            plan_reader: Some(ResidualMlp::new(2 * d, d, device)),
            plan_norm: Some(LayerNormConfig::new(d).init(device)),
            plan_head: Some(LinearConfig::new(d, self.patch_len).with_initializer(NEAR_ZERO).init(device)),
            ..self
        }
    }

    /// The same weights decoding intervals `scale` times as wide about the median
    /// (`ModelConfig::interval_scale`, a setting of the decoder, not a weight).
    pub(crate) fn with_interval_scale(self, scale: f64) -> Self {
        Self { interval_scale: scale as f32, ..self }
    }

    fn d_model(&self) -> usize {
        self.no_action.val().dims()[1]
    }
}

/// `x` squashed softly to ±10: `10 · tanh(x / 10)`.
fn soft_clip<const D: usize>(x: Tensor<D>) -> Tensor<D> {
    x.div_scalar(10.0).tanh().mul_scalar(10.0)
}

/// Weights that start a path almost closed but still pass gradients on (exact zeros would
/// leave everything before them without a gradient on the first step).
const NEAR_ZERO: Initializer = Initializer::Normal { mean: 0.0, std: 0.01 };

/// The direct action path's start, a hundredth of [`NEAR_ZERO`]: a fresh model's forecast
/// barely moves with the plan (without the anchor the effect is in scaled units, which a
/// context's incident can make large in the data's units).
const ALMOST_CLOSED: Initializer = Initializer::Normal { mean: 0.0, std: 1e-4 };

/// The quantile head: `P × Q` numbers per target state. With the anchor it starts with
/// near-zero weights, the median on the anchor and the levels half a unit (the series'
/// seasonal naive error) apart.
fn quantile_head(config: &ModelConfig, device: &Device) -> Linear {
    let (d, p, q) = (config.d_model, config.patch_len, config.quantiles.len());
    if !config.anchor {
        return LinearConfig::new(d, p * q).init(device);
    }
    let mut head = LinearConfig::new(d, p * q).with_initializer(NEAR_ZERO).init(device);
    // softplus(x) = 0.5 at x = ln(e^0.5 − 1).
    let gap = (0.5f32.exp() - 1.0).ln();
    let bias: Vec<f32> = (0..p * q).map(|i| if i % q == 0 { 0.0 } else { gap }).collect();
    head.bias = Some(Param::from_tensor(Tensor::from_data(TensorData::new(bias, [p * q]), device)));
    head
}
