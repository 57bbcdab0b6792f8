//! The looped world model as a burn module: encoders, the shared looped core with
//! spectral retention, the exit gate and the quantile head.

use burn::module::{Module, Param};
use burn::nn::{Initializer, LayerNorm, LayerNormConfig, Linear, LinearConfig};
use burn::tensor::activation::{sigmoid, softmax, softplus};
use burn::tensor::{Device, Distribution, Int, Tensor, TensorData};
use loopcast_core::{Role, seasonal_naive_sources};

use crate::layers::{CoreBlock, FactorisedLayer, MemoryKeys, ResidualMlp};
use crate::retention::Retention;
use crate::{ModelBatch, ModelConfig};

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

/// A batch on a device: context and future padded to whole patches, scaled per channel.
#[derive(Debug, Clone)]
pub struct Inputs {
    /// Scaled context, `[B, C, N·P]`, zero where unobserved (padding on the left).
    pub context: Tensor<3>,
    /// Context mask, 1 where observed.
    pub context_mask: Tensor<3>,
    /// Scaled future, `[B, C, K·P]` (padding on the right); target cells hold the truth
    /// when the batch carries it (training, backtests) and are never read by the model.
    pub future: Tensor<3>,
    /// Future mask, 1 where known.
    pub future_mask: Tensor<3>,
    /// Per-channel location, `[B, C, 1]`.
    pub location: Tensor<3>,
    /// Per-channel scale (positive), `[B, C, 1]`.
    pub scale: Tensor<3>,
    /// Each target's seasonal naive forecast over the padded future, scaled, `[B, T, K·P]`
    /// (0, the context mean, for a target with no observation).
    pub anchor: Tensor<3>,
    /// Each target's seasonal profile over the padded future (the mean of every whole
    /// season in the context at each step's phase), scaled, `[B, T, K·P]`.
    pub profile: Tensor<3>,
    /// How far each target's last observed value sits from the profile at its phase, in
    /// scaled units, `[B, T, 1]`.
    pub departure: Tensor<3>,
    /// Each channel's last observed value, scaled, `[B, C, 1]` (0 when none).
    pub last: Tensor<3>,
    /// Each target's typical in-sample seasonal naive error, scaled, `[B, T, 1]`: the
    /// median of `|x_i − x_{i−s}|` over the context's observed pairs (`s` the window's
    /// season, 1 when the context holds no whole season; 0 when no pair is observed). The
    /// unit in which an anchored model decodes; a median, so an incident in the context
    /// (latency at 300 s for an hour, then 10 ms again) does not make it the incident's size.
    /// Where more than half the pairs repeat exactly (an error count at zero but for a few
    /// bursts), the mean of `|x_i − x_{i−s}|` instead, so the quantiles do not collapse onto
    /// the anchor; 0 only for a context that repeats its seasons exactly.
    pub naive_error: Tensor<3>,
    /// Channel roles, targets first.
    pub roles: Vec<Role>,
    /// Number of target channels.
    pub targets: usize,
    /// Horizon steps asked for (before padding).
    pub horizon: usize,
    /// Steps per patch.
    pub patch_len: usize,
}

impl Inputs {
    /// Moves `batch` to `device`: keeps the last `max_context_patches` patches of context,
    /// pads both ends to whole patches, and scales every channel by the mean and standard
    /// deviation of its observed context (with a floor relative to the level: small for
    /// targets, larger for actions and covariates), so values of any magnitude meet the
    /// network at unit scale.
    pub fn new(batch: &ModelBatch, config: &ModelConfig, device: &Device) -> Self {
        let p = config.patch_len;
        let (b, c) = (batch.batch(), batch.roles().len());
        let (l, h) = (batch.context(), batch.horizon());
        let n = l.div_ceil(p).min(config.max_context_patches);
        let kept = (n * p).min(l);
        let padded = n * p;
        let (values, observed) = batch.context_arrays();
        let mut context = vec![0f32; b * c * padded];
        let mut context_mask = vec![0f32; b * c * padded];
        for row in 0..b * c {
            for i in 0..kept {
                let (from, to) = (row * l + l - kept + i, row * padded + padded - kept + i);
                if observed[from] {
                    context[to] = values[from];
                    context_mask[to] = 1.0;
                }
            }
        }
        // An anchored model centres on the median: after an incident (latency at 300 s for
        // an hour, then 10 ms again) the mean sits so far from the recent values that f32
        // would lose them when scaling.
        let medians = config.anchor.then(|| {
            let rows = context.chunks(padded).zip(context_mask.chunks(padded));
            rows.map(|(values, mask)| {
                let mut seen: Vec<f32> =
                    values.iter().zip(mask).filter(|(_, m)| **m > 0.5).map(|(v, _)| *v).collect();
                let middle = seen.len() / 2;
                if seen.is_empty() { 0.0 } else { *seen.select_nth_unstable_by(middle, f32::total_cmp).1 }
            })
            .collect::<Vec<f32>>()
        });
        let tensor = |data: Vec<f32>| Tensor::<3>::from_data(TensorData::new(data, [b, c, padded]), device);
        let (context, context_mask) = (tensor(context), tensor(context_mask));

        let count = context_mask.clone().sum_dim(2);
        let location = match medians {
            Some(medians) => Tensor::<3>::from_data(TensorData::new(medians, [b, c, 1]), device),
            None => (context.clone() * context_mask.clone()).sum_dim(2) / count.clone().clamp_min(1.0),
        };
        let centred = (context.clone() - location.clone()) * context_mask.clone();
        let variance = centred.clone().powf_scalar(2.0).sum_dim(2) / count.clone().clamp_min(1.0);
        let floors: Vec<f32> = batch
            .roles()
            .iter()
            .map(|r| (if *r == Role::Target { config.scale_floor } else { config.input_floor() }) as f32)
            .collect();
        let floors = Tensor::<3>::from_data(TensorData::new(floors, [1, c, 1]), device);
        let floor = location.clone().abs().add_scalar(1.0) * floors;
        let scale = (variance + floor.clone() * floor).sqrt();
        let empty = count.lower_elem(0.5).float();
        let scale = scale * empty.clone().neg().add_scalar(1.0) + empty;
        let context = centred / scale.clone();
        let (future, future_mask) = scaled_future(batch, p, &location, &scale, device);
        let t = batch.targets();
        let future_len = h.div_ceil(p) * p;
        let (anchor, anchored) = seasonal_naive(batch, future_len);
        let (profile, departure) = seasonal_profile(batch, future_len);
        let target_stats = |x: &Tensor<3>| x.clone().slice([0..b, 0..t, 0..1]);
        let scaled = |raw: Vec<f32>, has: Vec<f32>, shape: [usize; 3], loc: Tensor<3>, scale: Tensor<3>| {
            let has = Tensor::<3>::from_data(TensorData::new(has, shape), device);
            (Tensor::<3>::from_data(TensorData::new(raw, shape), device) - loc) / scale * has
        };
        let shape = [b, t, future_len];
        let profile = scaled(profile, anchored.clone(), shape, target_stats(&location), target_stats(&scale));
        let anchor = scaled(anchor, anchored, shape, target_stats(&location), target_stats(&scale));
        let departure =
            Tensor::<3>::from_data(TensorData::new(departure, [b, t, 1]), device) / target_stats(&scale);
        let (last, seen) = last_observed(batch);
        let last = scaled(last, seen, [b, c, 1], location.clone(), scale.clone());
        let naive_error = Tensor::<3>::from_data(TensorData::new(naive_errors(batch), [b, t, 1]), device)
            / target_stats(&scale);
        Self {
            context,
            context_mask,
            future,
            future_mask,
            location,
            scale,
            anchor,
            profile,
            departure,
            last,
            naive_error,
            roles: batch.roles().to_vec(),
            targets: batch.targets(),
            horizon: h,
            patch_len: p,
        }
    }

    /// Inputs for scenarios of the same histories with the futures of `plans` (batches
    /// over these histories, each with its own future): histories repeated scenario-major
    /// (row `k·B + b`), each plan's future padded and scaled with the histories' own
    /// statistics, so the context is scaled once whatever the number of plans.
    pub fn scenarios(&self, plans: &[ModelBatch]) -> Self {
        let copies = plans.len();
        let device = self.context.device();
        let (future, future_mask): (Vec<_>, Vec<_>) = plans
            .iter()
            .map(|plan| scaled_future(plan, self.patch_len, &self.location, &self.scale, &device))
            .unzip();
        Self {
            context: self.context.clone().repeat_dim(0, copies),
            context_mask: self.context_mask.clone().repeat_dim(0, copies),
            future: Tensor::cat(future, 0),
            future_mask: Tensor::cat(future_mask, 0),
            location: self.location.clone().repeat_dim(0, copies),
            scale: self.scale.clone().repeat_dim(0, copies),
            anchor: self.anchor.clone().repeat_dim(0, copies),
            profile: self.profile.clone().repeat_dim(0, copies),
            departure: self.departure.clone().repeat_dim(0, copies),
            last: self.last.clone().repeat_dim(0, copies),
            naive_error: self.naive_error.clone().repeat_dim(0, copies),
            roles: self.roles.clone(),
            targets: self.targets,
            horizon: self.horizon,
            patch_len: self.patch_len,
        }
    }

    /// The history moved forward by the decoded patches `predicted` (`[B, T, P]` each,
    /// scaled): their values take the targets' place and the plan's known values the
    /// other channels', and as many of the oldest patches drop out, so the context keeps
    /// its length. The scaling stays that of the original history.
    fn advanced(&self, predicted: &[Tensor<3>]) -> Self {
        let [b, c, l] = self.context.dims();
        let (t, shift) = (self.targets, predicted.len() * self.patch_len);
        let device = self.context.device();
        let (mut values, mut known) =
            (vec![Tensor::cat(predicted.to_vec(), 2)], vec![Tensor::ones([b, t, shift], &device)]);
        if c > t {
            values.push(self.future.clone().slice([0..b, t..c, 0..shift]));
            known.push(self.future_mask.clone().slice([0..b, t..c, 0..shift]));
        }
        let (values, known) = (Tensor::cat(values, 1), Tensor::cat(known, 1));
        let keep = |past: &Tensor<3>, next: Tensor<3>| {
            Tensor::cat(vec![past.clone(), next], 2).slice([0..b, 0..c, shift..shift + l])
        };
        Self {
            context: keep(&self.context, values),
            context_mask: keep(&self.context_mask, known),
            ..self.clone()
        }
    }

    /// `(sign · ln(1 + |location|), ln scale)` per channel, `[B, C, 2]`: the level and
    /// spread the scaling removed, given back to the network as features.
    fn statistics(&self) -> Tensor<3> {
        let level = self.location.clone().abs().add_scalar(1.0).log() * self.location.clone().sign();
        Tensor::cat(vec![level, self.scale.clone().log()], 2)
    }
}

/// The future of `batch`, `[B, C, K·P]`, right-padded to whole patches of `patch_len`,
/// scaled by `location` and `scale` (`[B, C, 1]`) and zero where unknown; with its mask.
fn scaled_future(
    batch: &ModelBatch,
    patch_len: usize,
    location: &Tensor<3>,
    scale: &Tensor<3>,
    device: &Device,
) -> (Tensor<3>, Tensor<3>) {
    let (b, c, h) = (batch.batch(), batch.roles().len(), batch.horizon());
    let padded = h.div_ceil(patch_len) * patch_len;
    let (future, known) = batch.future_arrays();
    let mut values = vec![0f32; b * c * padded];
    let mut mask = vec![0f32; b * c * padded];
    for row in 0..b * c {
        for i in 0..h {
            if known[row * h + i] {
                values[row * padded + i] = future[row * h + i];
                mask[row * padded + i] = 1.0;
            }
        }
    }
    let tensor = |data: Vec<f32>| Tensor::<3>::from_data(TensorData::new(data, [b, c, padded]), device);
    let mask = tensor(mask);
    let values = (tensor(values) - location.clone()) / scale.clone() * mask.clone();
    (values, mask)
}

/// Each target's seasonal naive forecast over `steps` future steps, `[B, T, steps]` in the
/// data's units, with 1 where it exists: the window's last season repeated (its
/// `seasons()` entry; a missing value is taken a season earlier), the last observed value
/// when the season is longer than the context, nothing when no value is observed.
fn seasonal_naive(batch: &ModelBatch, steps: usize) -> (Vec<f32>, Vec<f32>) {
    let (c, t, l) = (batch.roles().len(), batch.targets(), batch.context());
    let (values, observed) = batch.context_arrays();
    let mut anchor = Vec::with_capacity(batch.batch() * t * steps);
    let mut has = Vec::with_capacity(batch.batch() * t * steps);
    for (b, &season) in batch.seasons().iter().enumerate() {
        for channel in 0..t {
            let row = (b * c + channel) * l;
            match seasonal_naive_sources(l, season, steps, |i| observed[row + i]) {
                Some(sources) => {
                    anchor.extend(sources.into_iter().map(|i| values[row + i]));
                    has.extend(std::iter::repeat_n(1.0, steps));
                }
                None => {
                    anchor.extend(std::iter::repeat_n(0.0, steps));
                    has.extend(std::iter::repeat_n(0.0, steps));
                }
            }
        }
    }
    (anchor, has)
}

/// Each target's seasonal profile over `steps` future steps, `[B, T, steps]` in the data's
/// units: the mean of the observed context values at the step's phase over every whole
/// season the context holds (the last observed value when it holds none); and `[B, T]`,
/// how far the last observed value sits from the mean of the seasons before it at its
/// phase (the level's departure from the profile; 0 without an earlier season).
fn seasonal_profile(batch: &ModelBatch, steps: usize) -> (Vec<f32>, Vec<f32>) {
    let (c, t, l) = (batch.roles().len(), batch.targets(), batch.context());
    let (values, observed) = batch.context_arrays();
    let mut profile = Vec::with_capacity(batch.batch() * t * steps);
    let mut departure = Vec::with_capacity(batch.batch() * t);
    for (b, &season) in batch.seasons().iter().enumerate() {
        let season = season.max(1);
        // Per phase (index modulo the season), the sum and count of the observed values.
        let mut sums = vec![(0f32, 0usize); season];
        for channel in 0..t {
            let row = (b * c + channel) * l;
            let (values, observed) = (&values[row..row + l], &observed[row..row + l]);
            let Some(last) = (0..l).rev().find(|i| observed[*i]) else {
                profile.extend(std::iter::repeat_n(0.0, steps));
                departure.push(0.0);
                continue;
            };
            sums.fill((0.0, 0));
            // Latest first: f32 sums depend on the order, and the shipped model was
            // trained with the profile summed in this one.
            for i in (0..l).rev().filter(|i| observed[*i]) {
                let (sum, count) = &mut sums[i % season];
                *sum += values[i];
                *count += 1;
            }
            // Every context index of a future step's phase lies at or before `l − back`.
            for h in 0..steps {
                let back = season - h % season;
                let (sum, count) = if back > l { (0.0, 0) } else { sums[(l - back) % season] };
                profile.push(if count > 0 { sum / count as f32 } else { values[last] });
            }
            // The seasons before the last observed value, at its phase.
            let earlier: Vec<f32> = (1..=last / season)
                .map(|j| last - j * season)
                .filter(|i| observed[*i])
                .map(|i| values[i])
                .collect();
            departure.push(if earlier.is_empty() {
                0.0
            } else {
                values[last] - earlier.iter().sum::<f32>() / earlier.len() as f32
            });
        }
    }
    (profile, departure)
}

/// Each target's typical seasonal naive error in the data's units, `[B, T]` (see
/// [`Inputs::naive_error`]).
fn naive_errors(batch: &ModelBatch) -> Vec<f32> {
    let (c, t, l) = (batch.roles().len(), batch.targets(), batch.context());
    let (values, observed) = batch.context_arrays();
    let mut errors = Vec::with_capacity(batch.batch() * t);
    for (b, &season) in batch.seasons().iter().enumerate() {
        let lag = if season < l { season } else { 1 };
        for channel in 0..t {
            let row = (b * c + channel) * l;
            let mut differences: Vec<f32> = (lag..l)
                .filter(|i| observed[row + i] && observed[row + i - lag])
                .map(|i| (values[row + i] - values[row + i - lag]).abs())
                .collect();
            let middle = differences.len() / 2;
            errors.push(if differences.is_empty() {
                0.0
            } else {
                match *differences.select_nth_unstable_by(middle, f32::total_cmp).1 {
                    // Mostly exact repeats (errors at zero but for a few bursts, a season
                    // repeated but once): the mean, so the forecast keeps some spread.
                    0.0 => differences.iter().sum::<f32>() / differences.len() as f32,
                    median => median,
                }
            });
        }
    }
    errors
}

/// Each channel's last observed context value, `[B, C, 1]`, with 1 where there is one.
fn last_observed(batch: &ModelBatch) -> (Vec<f32>, Vec<f32>) {
    let l = batch.context();
    let (values, observed) = batch.context_arrays();
    values
        .chunks(l)
        .zip(observed.chunks(l))
        .map(|(v, o)| o.iter().rposition(|x| *x).map_or((0.0, 0.0), |i| (v[i], 1.0)))
        .unzip()
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
    effect_action: Option<Linear>,
    effect_norm: Option<LayerNorm>,
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
            effect_action: config
                .action_effects
                .then(|| LinearConfig::new(d, d).with_bias(false).init(device)),
            effect_norm: config.action_effects.then(|| LayerNormConfig::new(d).init(device)),
            relative_state: None,
            relative_action: None,
            relative_coefficients: None,
            relative_norm: None,
        };
        if config.relative_effects { network.with_relative_path(device) } else { network }
    }

    /// The same network with a relative action path of fresh weights
    /// (`ModelConfig::relative_effects`) in place of the one it has, if any.
    pub fn with_relative_path(mut self, device: &Device) -> Self {
        let d = self.d_model();
        let read = d + KIND_CUES;
        self.relative_state =
            Some(LinearConfig::new(read, RELATIVE_TARGET_KINDS).with_initializer(NEAR_ZERO).init(device));
        self.relative_action =
            Some(LinearConfig::new(read, RELATIVE_ACTION_KINDS).with_initializer(NEAR_ZERO).init(device));
        self.relative_coefficients = Some(
            LinearConfig::new(
                RELATIVE_ACTION_KINDS,
                RELATIVE_UNITS * RELATIVE_FEATURES * (RELATIVE_TARGET_KINDS + 1),
            )
            .with_bias(false)
            .with_initializer(ALMOST_CLOSED)
            .init(device),
        );
        self.relative_norm = Some(LayerNormConfig::new(d).init(device));
        self
    }

    /// The same weights decoding intervals `scale` times as wide about the median
    /// (`ModelConfig::interval_scale`, a setting of the decoder, not a weight).
    pub(crate) fn with_interval_scale(self, scale: f64) -> Self {
        Self { interval_scale: scale as f32, ..self }
    }

    fn d_model(&self) -> usize {
        self.no_action.val().dims()[1]
    }

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

    /// The memory's cross-attention keys and values, computed once and read by every loop
    /// (once per block when the core is unshared).
    pub fn memory_keys(&self, memory: Tensor<3>) -> MemoryKeys {
        let blocks = std::iter::once(&self.core).chain(&self.unshared_cores);
        MemoryKeys { blocks: blocks.map(|block| block.memory_keys(memory.clone())).collect() }
    }

    /// Loop `round` (0-based) of a patch: the block's update, then retention. The shared
    /// block runs every round; an unshared core runs its own block per round.
    pub fn step(&self, state: Tensor<3>, actions: Tensor<3>, memory: &MemoryKeys, round: usize) -> Tensor<3> {
        let index = round.min(self.unshared_cores.len());
        let block = if index == 0 { &self.core } else { &self.unshared_cores[index - 1] };
        let update = block.forward(state.clone(), actions, &memory.blocks[index]);
        match &self.retention {
            Some(retention) => retention.apply(state, update),
            None => state + update,
        }
    }

    /// Where the rollout of patch `patch` starts when decoding is not deferred: the
    /// previous patch's median is decoded and appended to the history (`predicted` keeps
    /// every decoded patch), and the advanced history is encoded afresh. `None` for the
    /// first patch and whenever decoding is deferred (the state carries on in latent space).
    fn reencode(
        &self,
        inputs: &Inputs,
        actions: &Tensor<4>,
        patch: usize,
        state: &Tensor<3>,
        predicted: &mut Vec<Tensor<3>>,
    ) -> Option<(Tensor<3>, MemoryKeys)> {
        if self.deferred_decoding || patch == 0 {
            return None;
        }
        let quantiles = self.decode(inputs, actions, vec![state.clone().detach()], &[patch - 1]);
        let [b, t, p, _] = quantiles.dims();
        predicted.push(quantiles.slice([0..b, 0..t, 0..p, self.median..self.median + 1]).reshape([b, t, p]));
        let encoded = self.encode(&inputs.advanced(predicted));
        Some((encoded.state, self.memory_keys(encoded.memory)))
    }

    /// Exit probability `[B, 1]` from the new state and its change.
    pub fn gate(&self, state: Tensor<3>, change: Tensor<3>) -> Tensor<2> {
        let [b, _, d] = state.dims();
        let features = Tensor::cat(vec![state.mean_dim(1), change.mean_dim(1)], 2).reshape([b, 2 * d]);
        sigmoid(self.gate.forward(features))
    }

    /// Rolls the state forward over every future patch of `inputs` in latent space,
    /// looping the shared block per patch until each window's gate says its state has
    /// settled. Windows exit independently; a settled window's state is frozen while the
    /// others loop on.
    /// `state` is the initial state `[B, T + 1, d]` and `memory` the keys of its windows.
    pub fn rollout(
        &self,
        inputs: &Inputs,
        state: Tensor<3>,
        memory: MemoryKeys,
        control: LoopControl,
    ) -> Rollout {
        let actions = self.actions(inputs);
        let [b, a, k, d] = actions.dims();
        let (mut state, mut memory) = (state, memory);
        let mut states = Vec::with_capacity(k);
        let mut predicted = Vec::new();
        let mut loops = vec![Vec::with_capacity(k); b];
        let device = state.device();
        for patch in 0..k {
            if let Some((fresh, keys)) = self.reencode(inputs, &actions, patch, &state, &mut predicted) {
                (state, memory) = (fresh, keys);
            }
            let action = actions.clone().slice([0..b, 0..a, patch..patch + 1, 0..d]).reshape([b, a, d]);
            let mut done = vec![false; b];
            let mut used = vec![0u32; b];
            for round in 1..=control.max_loops {
                let next = self.step(state.clone(), action.clone(), &memory, round - 1);
                for (u, finished) in used.iter_mut().zip(&done) {
                    *u += u32::from(!finished);
                }
                let gate = (round >= control.min_loops && control.exit_threshold <= 1.0)
                    .then(|| self.gate(next.clone(), next.clone() - state.clone()));
                state = if done.iter().any(|x| *x) {
                    let frozen: Vec<bool> = done.clone();
                    let mask =
                        Tensor::<1, burn::tensor::Bool>::from_data(TensorData::new(frozen, [b]), &device)
                            .reshape([b, 1, 1])
                            .expand([b, next.dims()[1], d]);
                    next.mask_where(mask, state)
                } else {
                    next
                };
                if let Some(gate) = gate {
                    let gate = gate.into_data().try_to_vec::<f32>().expect("gate values are f32");
                    for (finished, g) in done.iter_mut().zip(gate) {
                        *finished |= f64::from(g) >= control.exit_threshold;
                    }
                }
                if done.iter().all(|x| *x) {
                    break;
                }
            }
            for (window, u) in loops.iter_mut().zip(used) {
                window.push(u);
            }
            states.push(state.clone());
        }
        Rollout { states, loops, actions }
    }

    /// Training rollout: exactly `loops` loops per patch, gradients through the last
    /// `grad_loops` of them only: the earlier loops' graph is cut (a straight-through
    /// identity to the patch's starting state), so memory does not grow with the loop
    /// count. The gate and the state's change are traced after every loop; before the
    /// gradient window they are computed from detached states, so the gate learns from
    /// every loop without reopening the cut graph.
    pub fn rollout_fixed(
        &self,
        inputs: &Inputs,
        state: Tensor<3>,
        memory: MemoryKeys,
        loops: usize,
        grad_loops: usize,
    ) -> Trace {
        let actions = self.actions(inputs);
        let [b, a, k, d] = actions.dims();
        let first_tracked = loops.saturating_sub(grad_loops.max(1));
        let (mut state, mut memory) = (state, memory);
        let mut states = Vec::with_capacity(k);
        let mut predicted = Vec::new();
        let mut loop_states = Vec::with_capacity(k);
        let (mut gates, mut changes) = (Vec::with_capacity(k), Vec::with_capacity(k));
        for patch in 0..k {
            if let Some((fresh, keys)) = self.reencode(inputs, &actions, patch, &state, &mut predicted) {
                (state, memory) = (fresh, keys);
            }
            let action = actions.clone().slice([0..b, 0..a, patch..patch + 1, 0..d]).reshape([b, a, d]);
            let (mut gate, mut change, mut detached) =
                (Vec::with_capacity(loops), Vec::with_capacity(loops), Vec::with_capacity(loops));
            let start = state.clone();
            for round in 0..loops {
                if round > 0 && round == first_tracked {
                    // Truncate: the graph of the earlier loops is dropped, and the gradient
                    // passes straight through them to the patch's starting state, so the
                    // chain across patches (and the state's initialisation) keeps learning.
                    state = start.clone() + (state - start.clone()).detach();
                }
                let next = self.step(state.clone(), action.clone(), &memory, round);
                let (new, old) = if round < first_tracked {
                    (next.clone().detach(), state.detach())
                } else {
                    (next.clone(), state)
                };
                let delta = new.clone() - old;
                change.push(delta.clone().powf_scalar(2.0).mean_dim(2).mean_dim(1).sqrt().reshape([b, 1]));
                gate.push(self.gate(new.clone(), delta));
                detached.push(new.detach());
                state = next;
            }
            gates.push(Tensor::cat(gate, 1).reshape([b, 1, loops]));
            changes.push(Tensor::cat(change, 1).reshape([b, 1, loops]));
            loop_states.push(detached);
            states.push(state.clone());
        }
        Trace { states, gates: Tensor::cat(gates, 1), changes: Tensor::cat(changes, 1), loop_states, actions }
    }

    /// Decodes the states of future patches `patches` (one index per state, as rolled out
    /// over `inputs`) into monotone quantiles in scaled units, `[B, T, states·P, Q]`: a
    /// base value plus cumulative softplus increments, so quantiles never cross. With the
    /// anchor, the median sits at the base's offset from seasonal naive; with action
    /// effects, every quantile moves by the plan's direct effect.
    /// `actions` are the rollout's action tokens ([`Rollout::actions`]).
    pub fn decode(
        &self,
        inputs: &Inputs,
        actions: &Tensor<4>,
        states: Vec<Tensor<3>>,
        patches: &[usize],
    ) -> Tensor<4> {
        match self.decode_parts(inputs, actions, states, patches) {
            (quantiles, Some(effect)) => quantiles + effect,
            (quantiles, None) => quantiles,
        }
    }

    /// [`Network::decode`] in two parts: the quantiles without the plan's direct effect,
    /// and that effect, `[B, T, states·P, 1]` (`None` without action effects or without
    /// action and covariate channels). Training fits the effect on twin differences only:
    /// in observed data, operators act on what they expect, so actions and targets move
    /// together for reasons other than the action's effect.
    pub fn decode_parts(
        &self,
        inputs: &Inputs,
        actions: &Tensor<4>,
        states: Vec<Tensor<3>>,
        patches: &[usize],
    ) -> (Tensor<4>, Option<Tensor<4>>) {
        let targets = inputs.targets;
        let (normed, ids) = self.decoding_states(states, patches, targets);
        let [b, steps, _, d] = normed.dims();
        let p = self.patch_len;
        let per_patch = |x: Tensor<3>| select_patches(x, &ids, p);
        let quantiles = self.plain_quantiles(inputs, &normed, &ids);
        let has_plans = inputs.roles.len() > targets;
        let additive = match (&self.effect_state, &self.effect_action, &self.effect_norm) {
            (Some(state_side), Some(action_side), Some(norm)) if has_plans => {
                let c = inputs.roles.len();
                let len = inputs.future.dims()[2];
                // The plan's change of every action and covariate channel from its last
                // observed value, `[B, S, A, P]`, zero where the plan is unknown.
                let change = (inputs.future.clone().slice([0..b, targets..c, 0..len])
                    - inputs.last.clone().slice([0..b, targets..c, 0..1]))
                    * inputs.future_mask.clone().slice([0..b, targets..c, 0..len]);
                let change = per_patch(change).swap_dims(1, 2);
                let tokens = action_side.forward(norm.forward(actions.clone().select(2, ids.clone())));
                let coefficients = state_side
                    .forward(normed.clone())
                    .matmul(tokens.swap_dims(1, 2).swap_dims(2, 3))
                    .div_scalar((d as f32).sqrt());
                let effect = coefficients.matmul(change).swap_dims(1, 2).reshape([b, targets, steps * p, 1]);
                // Anchored, the effect is in the same unit as the offsets: in scaled units,
                // a coefficient of 10⁻⁵ on a queue that an incident scaled by 10⁵ moved the
                // forecast by a hundred times seasonal naive's error.
                Some(if self.anchor {
                    effect * inputs.naive_error.clone().reshape([b, targets, 1, 1])
                } else {
                    effect
                })
            }
            _ => None,
        };
        let relative = self.relative_design(inputs, actions, &normed, &ids, &quantiles).map(|design| {
            let (a, f, r) = (design.tokens.dims()[2], RELATIVE_FEATURES, RELATIVE_TARGET_KINDS + 1);
            let state_kinds = target_kinds(weights(&self.relative_state), design.states);
            // `[B, S, A, U·F·r]`: per unit, `[B, S, F·A, r]` in the features' order.
            let tokens = weights(&self.relative_coefficients)
                .forward(softmax(weights(&self.relative_action).forward(design.tokens), 3));
            let effect = (0..RELATIVE_UNITS)
                .map(|u| {
                    let tokens = tokens
                        .clone()
                        .slice([0..b, 0..steps, 0..a, u * f * r..(u + 1) * f * r])
                        .reshape([b, steps, a, f, r])
                        .swap_dims(2, 3)
                        .reshape([b, steps, f * a, r]);
                    let coefficients = state_kinds.clone().matmul(tokens.swap_dims(2, 3));
                    let unit = design.units.clone().slice([0..b, 0..steps, 0..targets, u * p..(u + 1) * p]);
                    coefficients.matmul(design.features.clone()) * unit
                })
                .reduce(|x, y| x + y)
                .expect("at least one unit");
            effect.swap_dims(1, 2).reshape([b, targets, steps * p, 1])
        });
        let effect = match (additive, relative) {
            (Some(additive), Some(relative)) => Some(additive + relative),
            (additive, relative) => additive.or(relative),
        };
        (quantiles, effect)
    }

    /// The quantiles of the decoded patches' normalised target states `normed` (patches
    /// `ids`) without any action effect, `[B, T, S·P, Q]` in scaled units.
    fn plain_quantiles(&self, inputs: &Inputs, normed: &Tensor<4>, ids: &Tensor<1, Int>) -> Tensor<4> {
        let targets = inputs.targets;
        let [b, steps, _, _] = normed.dims();
        let (p, q) = (self.patch_len, self.quantiles);
        let device = normed.device();
        let per_patch = |x: Tensor<3>| select_patches(x, ids, p);
        let features = self.anchor_head.as_ref().map(|_| anchor_features(inputs, per_patch).swap_dims(1, 2));
        let raw = self.head.forward(normed.clone());
        let raw = match (&self.anchor_head, &features) {
            (Some(anchor_head), Some(features)) => raw + anchor_head.forward(features.clone()),
            _ => raw,
        };
        let cells = b * steps * targets * p;
        let raw = raw.reshape([cells, q]);
        let base = raw.clone().slice([0..cells, 0..1]);
        let base = match (&self.blend, features) {
            (Some(blend), Some(features)) => {
                // Per target state, its weights `[1, F]` times its features `[F, P]`.
                let weights = blend.forward(normed.clone()).reshape([b * steps, targets, 1, FEATURES]);
                let features = features.reshape([b * steps, targets, FEATURES, p]);
                base + weights.matmul(features).reshape([cells, 1])
            }
            _ => base,
        };
        let quantiles = if q > 1 {
            let increments = softplus(raw.slice([0..cells, 1..q]), 1.0);
            let upper: Vec<f32> =
                (0..q - 1).flat_map(|i| (0..q - 1).map(move |j| if i <= j { 1.0 } else { 0.0 })).collect();
            let cumulative =
                increments.matmul(Tensor::from_data(TensorData::new(upper, [q - 1, q - 1]), &device));
            let cumulative = Tensor::cat(vec![Tensor::zeros([cells, 1], &device), cumulative], 1);
            let median = cumulative.clone().slice([0..cells, self.median..self.median + 1]);
            match (self.anchor, self.interval_scale == 1.0) {
                // Centred on the median level, so the base is the median's offset.
                (true, _) => base + (cumulative - median).mul_scalar(self.interval_scale),
                (false, true) => base + cumulative,
                (false, false) => {
                    base + median.clone() + (cumulative - median).mul_scalar(self.interval_scale)
                }
            }
        } else {
            base
        };
        let quantiles =
            quantiles.reshape([b, steps, targets, p, q]).swap_dims(1, 2).reshape([b, targets, steps * p, q]);
        if self.anchor {
            // Offsets in units of the series' own typical seasonal naive error: a series
            // that repeats its seasons exactly (flat, or strictly periodic) keeps the
            // anchor exactly, with no spread.
            let unit = inputs.naive_error.clone().reshape([b, targets, 1, 1]);
            quantiles * unit + per_patch(inputs.anchor.clone()).reshape([b, targets, steps * p, 1])
        } else {
            quantiles
        }
    }

    /// What the relative action path reads for the decoded `patches` (`None` without the
    /// path or without action channels): its coefficients are
    /// `[kinds(states), 1]ᵀ · C_{u,f} · kinds(tokens)` per unit `u` and feature `f`, times
    /// the features and the unit, where `kinds` is a softmax over the kinds' logits (of
    /// the state or token and the channel's [`kind_cues`]) and the units are read off the
    /// history and the plain forecast. Covariates are left to
    /// the rest of the network: they are the same in every plan of a what-if, so twins
    /// say nothing of their effect. Public so the path can be fitted by least squares on a
    /// frozen network's states ([`Network::with_relative_weights`]).
    pub fn relative_inputs(
        &self,
        inputs: &Inputs,
        actions: &Tensor<4>,
        states: Vec<Tensor<3>>,
        patches: &[usize],
    ) -> Option<RelativeDesign> {
        let (normed, ids) = self.decoding_states(states, patches, inputs.targets);
        let quantiles = self.plain_quantiles(inputs, &normed, &ids);
        self.relative_design(inputs, actions, &normed, &ids, &quantiles)
    }

    /// The decoded patches' target states after the head's norm, `[B, S, T, d]`, and the
    /// patches' indices `patches` as a tensor.
    fn decoding_states(
        &self,
        states: Vec<Tensor<3>>,
        patches: &[usize],
        targets: usize,
    ) -> (Tensor<4>, Tensor<1, Int>) {
        let steps = states.len();
        let stacked: Tensor<4> = Tensor::stack(states, 1);
        let [b, _, _, d] = stacked.dims();
        let ids = Tensor::<1, Int>::from_data(
            TensorData::new(patches.iter().map(|k| *k as i64).collect::<Vec<_>>(), [steps]),
            &stacked.device(),
        );
        (self.head_norm.forward(stacked.slice([0..b, 0..steps, 0..targets, 0..d])), ids)
    }

    fn relative_design(
        &self,
        inputs: &Inputs,
        actions: &Tensor<4>,
        normed: &Tensor<4>,
        ids: &Tensor<1, Int>,
        quantiles: &Tensor<4>,
    ) -> Option<RelativeDesign> {
        let norm = self.relative_norm.as_ref()?;
        let targets = inputs.targets;
        let channels: Vec<i64> = (targets..inputs.roles.len())
            .filter(|c| inputs.roles[*c] == Role::Action)
            .map(|c| c as i64)
            .collect();
        if channels.is_empty() {
            return None;
        }
        let len = channels.len();
        let channels = Tensor::<1, Int>::from_data(TensorData::new(channels, [len]), &normed.device());
        // The rollout's tokens are `[B, A, K, d]`, over the action and covariate channels.
        let tokens = actions.clone().select(1, channels.clone().sub_scalar(targets as i64));
        let steps = ids.dims()[0];
        let with_cues = |x: Tensor<4>, cues: Tensor<3>| {
            let [b, n, e] = cues.dims();
            Tensor::cat(vec![x, cues.reshape([b, 1, n, e]).repeat_dim(1, steps)], 3)
        };
        let target_ids = Tensor::<1, Int>::arange(0..targets as i64, &normed.device());
        Some(RelativeDesign {
            states: with_cues(normed.clone(), kind_cues(inputs, target_ids)),
            tokens: with_cues(
                norm.forward(tokens.select(2, ids.clone()).swap_dims(1, 2)),
                kind_cues(inputs, channels.clone()),
            ),
            features: select_patches(relative_features(inputs, channels), ids, self.patch_len)
                .swap_dims(1, 2),
            units: relative_units(inputs, median_of(quantiles, self.median), self.patch_len),
        })
    }

    /// The same network with the relative path's weights replaced: the target kinds'
    /// `[d + KIND_CUES, K_t]` weight and `[K_t]` bias, the action kinds' `[d + KIND_CUES,
    /// K_a]` and `[K_a]`, and the coefficients' `[K_a, U·F·(K_t + 1)]` (row: the action
    /// kind; column: unit-major, then the feature, then the target kind, the last one the
    /// constant). `None` without the path or when a shape does not fit.
    pub fn with_relative_weights(
        mut self,
        state: (Tensor<2>, Tensor<1>),
        action: (Tensor<2>, Tensor<1>),
        coefficients: Tensor<2>,
    ) -> Option<Self> {
        let set = |layer: &mut Linear, weight: Tensor<2>, bias: Option<Tensor<1>>| {
            if weight.dims() != layer.weight.val().dims()
                || bias.as_ref().map(|b| b.dims()) != layer.bias.as_ref().map(|b| b.val().dims())
            {
                return None;
            }
            layer.weight = Param::from_tensor(weight);
            layer.bias = bias.map(Param::from_tensor);
            Some(())
        };
        set(self.relative_state.as_mut()?, state.0, Some(state.1))?;
        set(self.relative_action.as_mut()?, action.0, Some(action.1))?;
        set(self.relative_coefficients.as_mut()?, coefficients, None)?;
        Some(self)
    }
}

/// `x`, `[B, C, K·P]`, cut into patches of `p` steps, the patches `ids` kept: `[B, C, S, P]`.
fn select_patches(x: Tensor<3>, ids: &Tensor<1, Int>, p: usize) -> Tensor<4> {
    let [rows, channels, len] = x.dims();
    x.reshape([rows, channels, len / p, p]).select(2, ids.clone())
}

/// What the relative action path reads ([`Network::relative_inputs`]).
#[derive(Debug, Clone)]
pub struct RelativeDesign {
    /// The targets' normalised states and their kind cues ([`KIND_CUES`]),
    /// `[B, S, T, d + KIND_CUES]`.
    pub states: Tensor<4>,
    /// The action channels' normalised tokens and their kind cues, `[B, S, A, d + KIND_CUES]`.
    pub tokens: Tensor<4>,
    /// The features, `[B, S, F·A, P]`, feature-major ([`RELATIVE_FEATURES`]).
    pub features: Tensor<4>,
    /// What each target's effect is a multiple of, per step ([`RELATIVE_UNITS`] of them,
    /// in scaled units, the first its level), `[B, S, T, U·P]`, unit-major.
    pub units: Tensor<4>,
}

/// Cues per channel, beside its state or token, that the relative path tells kinds by
/// ([`kind_cues`]).
pub const KIND_CUES: usize = 6;

/// What each of the `channels` is like over its observed context, `[B, C', KIND_CUES]`,
/// in the data's units:
/// 1. how large it is, `ln(1 + |location|)`;
/// 2. how much it varies, `ln(scale / (1 + |location|))`;
/// 3. the share of its values that are whole numbers (a replica count, a deploy flag);
/// 4. the share of consecutive observed steps that change it (a plan holds, a metric
///    moves);
/// 5. whether it stays within [0, 1] (a utilisation, an error rate, a weight);
/// 6. the share of its values at its lowest (an error rate or a queue at rest).
///
/// Once scaled, a replica count looks like a traffic weight and a request rate like a
/// memory size; in these they differ. A channel never observed has cues of 0 but its
/// size and spread.
fn kind_cues(inputs: &Inputs, channels: Tensor<1, Int>) -> Tensor<3> {
    let [b, _, l] = inputs.context.dims();
    let n = channels.dims()[0];
    let pick = |x: &Tensor<3>| x.clone().select(1, channels.clone());
    let (location, scale, mask) = (pick(&inputs.location), pick(&inputs.scale), pick(&inputs.context_mask));
    let raw = pick(&inputs.context) * scale.clone() + location.clone();
    let magnitude = location.abs().add_scalar(1.0);
    // Differences below a millionth of the magnitude are the scaling's rounding.
    let tolerance = magnitude.clone().mul_scalar(1e-6);
    let count = mask.clone().sum_dim(2);
    let seen = count.clone().greater_elem(0.0).float();
    let share = |flags: Tensor<3>| (flags * mask.clone()).sum_dim(2) / count.clone().clamp_min(1.0);
    let whole = share((raw.clone() - raw.clone().round()).abs().lower_elem(1e-4).float());
    let moved = if l < 2 {
        Tensor::zeros([b, n, 1], &raw.device())
    } else {
        let pairs = mask.clone().slice([0..b, 0..n, 1..l]) * mask.clone().slice([0..b, 0..n, 0..l - 1]);
        let step = raw.clone().slice([0..b, 0..n, 1..l]) - raw.clone().slice([0..b, 0..n, 0..l - 1]);
        (step.abs().greater(tolerance.clone()).float() * pairs.clone()).sum_dim(2)
            / pairs.sum_dim(2).clamp_min(1.0)
    };
    let unobserved = (mask.clone().neg() + 1.0) * 1e9;
    let low = (raw.clone() + unobserved.clone()).min_dim(2);
    let high = (raw.clone() - unobserved).max_dim(2);
    let unit = low.clone().greater_equal_elem(0.0).float() * high.lower_equal_elem(1.0).float() * seen;
    let at_floor = share((raw - low).abs().lower_equal(tolerance).float());
    Tensor::cat(vec![magnitude.clone().log(), (scale / magnitude).log(), whole, moved, unit, at_floor], 2)
}

/// Kinds of target the relative path tells apart: a target's effect from an action is a
/// coefficient per kind of target, kind of action and feature, so a traffic shift can
/// move a request rate and leave memory alone (the SRE world has seven targets).
pub const RELATIVE_TARGET_KINDS: usize = 7;

/// Kinds of action channel the relative path tells apart (the SRE world has four).
pub const RELATIVE_ACTION_KINDS: usize = 4;

/// A relative path layer, which a network with a relative design has.
fn weights(layer: &Option<Linear>) -> &Linear {
    layer.as_ref().expect("a design has weights")
}

/// The shares of the target states `x`'s kinds, a softmax of their logits through
/// `layer`, with a constant 1 appended: `[.., K_t + 1]`.
fn target_kinds(layer: &Linear, x: Tensor<4>) -> Tensor<4> {
    let shares = softmax(layer.forward(x), 3);
    let [b, s, n, _] = shares.dims();
    let ones = Tensor::ones([b, s, n, 1], &shares.device());
    Tensor::cat(vec![shares, ones], 3)
}

/// Features per action channel of the relative path ([`relative_features`]).
pub const RELATIVE_FEATURES: usize = 4;

/// Steps back of the relative path's lagged ratio (a replica change loads CPU at once and
/// drains a queue over the following steps).
const RELATIVE_LAG: usize = 3;

/// Steps over which the relative path's decayed change falls by `1/e`.
const RELATIVE_DECAY: f32 = 3.0;

/// Units per target and step that the relative path's effects are multiples of
/// ([`relative_units`]).
pub const RELATIVE_UNITS: usize = 2;

/// The relative path's units, `[B, S, T, U·P]` (unit-major), in scaled units and at most
/// 100, from the history and `median`, the plain forecast's median `[B, T, S·P, 1]`:
/// 1. the target's level, `|location| / scale`: an effect in proportion to the history's
///    level (a replica step moves CPU by a share of what it was);
/// 2. its forecast excess over the lowest observed context value (at least 0): what is
///    expected to sit above the target's floor at that step (the leaked memory a restart
///    frees, the queueing part of a latency, a backlog).
///
/// (The forecast's own level and a unit of one were tried as well and not kept:
/// `docs/MODEL.md`, "Units of the relative path".)
fn relative_units(inputs: &Inputs, median: Tensor<4>, p: usize) -> Tensor<4> {
    let [b, t, len, _] = median.dims();
    let l = inputs.context.dims()[2];
    let observed = inputs.context_mask.clone().slice([0..b, 0..t, 0..l]);
    // Unobserved cells sit far above any value, so a target never observed has no excess.
    let floor = (inputs.context.clone().slice([0..b, 0..t, 0..l]) + (observed.neg() + 1.0) * 1e9).min_dim(2);
    let level = target_level(inputs).repeat_dim(2, len);
    let excess = (median.reshape([b, t, len]) - floor).clamp(0.0, 100.0);
    let per_step = |x: Tensor<3>| x.reshape([b, t, len / p, p]).swap_dims(1, 2);
    Tensor::cat(vec![per_step(level), per_step(excess)], 3)
}

/// The quantiles' level `median`, `[B, T, S·P, 1]`.
fn median_of(quantiles: &Tensor<4>, median: usize) -> Tensor<4> {
    let [b, t, len, _] = quantiles.dims();
    quantiles.clone().slice([0..b, 0..t, 0..len, median..median + 1])
}

/// Each target's level in scaled units, `|location| / scale` (at most 100), `[B, T, 1]`:
/// the first of the relative path's units.
fn target_level(inputs: &Inputs) -> Tensor<3> {
    let [b, _, _] = inputs.location.dims();
    let t = inputs.targets;
    let location = inputs.location.clone().slice([0..b, 0..t, 0..1]);
    let scale = inputs.scale.clone().slice([0..b, 0..t, 0..1]);
    (location.abs() / scale).clamp_max(100.0)
}

/// The relative path's features over the padded future, `[B, F·A, K·P]` (feature-major),
/// per action channel (of `channels`) and step, zero where the plan is unknown:
/// 1. the log ratio of the planned value to the last observed one, in the data's units,
///    each offset by a twentieth of the channel's typical magnitude (|mean| + spread), so
///    a channel at zero has a ratio, clipped to ±3;
/// 2. that ratio [`RELATIVE_LAG`] steps earlier (0 before the horizon);
/// 3. whether it has moved since the forecast time: the running sum of its change in
///    scaled units (squashed to ±10), clipped to ±1, so a deploy counts once it happened;
/// 4. that change decayed by `1/e` every [`RELATIVE_DECAY`] steps (squashed to ±10).
///
/// Between two plans for one history, each differences out to a comparison of the two
/// plans (their ratio, which of them deployed and how recently).
fn relative_features(inputs: &Inputs, channels: Tensor<1, Int>) -> Tensor<3> {
    let [b, _, len] = inputs.future.dims();
    let a = channels.dims()[0];
    let device = inputs.future.device();
    let channels =
        |x: &Tensor<3>, steps: usize| x.clone().select(1, channels.clone()).slice([0..b, 0..a, 0..steps]);
    let (location, scale) = (channels(&inputs.location, 1), channels(&inputs.scale, 1));
    let known = channels(&inputs.future_mask, len);
    let (planned, last) = (channels(&inputs.future, len), channels(&inputs.last, 1));
    let offset = (location.clone().abs() + scale.clone()).mul_scalar(0.05);
    let magnitude = |x: Tensor<3>| (x * scale.clone() + location.clone()).abs() + offset.clone();
    let ratio = (magnitude(planned.clone()) / magnitude(last.clone())).log().clamp(-3.0, 3.0) * known.clone();
    let lag = RELATIVE_LAG.min(len);
    let lagged = Tensor::cat(
        vec![Tensor::zeros([b, a, lag], &device), ratio.clone().slice([0..b, 0..a, 0..len - lag])],
        2,
    );
    let change = soft_clip((planned - last) * known);
    let since = change.clone().cumsum(2).clamp(-1.0, 1.0);
    // `decay[j, h] = e^{−(h − j)/τ}` for `j ≤ h`: row `j`'s change as seen at step `h`.
    let decay: Vec<f32> = (0..len)
        .flat_map(|j| {
            (0..len).map(move |h| if j <= h { (-((h - j) as f32) / RELATIVE_DECAY).exp() } else { 0.0 })
        })
        .collect();
    let decay = Tensor::<2>::from_data(TensorData::new(decay, [len, len]), &device);
    let recent = soft_clip(change.reshape([b * a, len]).matmul(decay).reshape([b, a, len]));
    Tensor::cat(vec![ratio, lagged, since, recent], 1)
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

/// `x` squashed softly to ±10: `10 · tanh(x / 10)`.
fn soft_clip<const D: usize>(x: Tensor<D>) -> Tensor<D> {
    x.div_scalar(10.0).tanh().mul_scalar(10.0)
}

/// Anchor features per future step (see [`anchor_features`]).
const FEATURES: usize = 4;

/// The anchor's features in the decoding unit, `[B, T, states, 4P]`: per future step of
/// each decoded patch, the scaled anchor, its gap to the last observed value, the gap from
/// it to the seasonal profile, and the level's departure from the profile, each divided by
/// the typical naive error (at least 10⁻³) and squashed softly to ±10.
fn anchor_features(inputs: &Inputs, per_patch: impl Fn(Tensor<3>) -> Tensor<4>) -> Tensor<4> {
    let [b, t, _] = inputs.anchor.dims();
    let unit = inputs.naive_error.clone().clamp_min(1e-3).reshape([b, t, 1, 1]);
    let last = inputs.last.clone().slice([0..b, 0..t, 0..1]).reshape([b, t, 1, 1]);
    let (anchor, profile) = (per_patch(inputs.anchor.clone()), per_patch(inputs.profile.clone()));
    let departure = inputs.departure.clone().reshape([b, t, 1, 1]).expand(anchor.dims());
    let squash = |x: Tensor<4>| soft_clip(x / unit.clone());
    Tensor::cat(
        vec![
            squash(anchor.clone()),
            squash(anchor.clone() - last),
            squash(profile - anchor),
            squash(departure),
        ],
        3,
    )
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

#[cfg(test)]
mod tests {
    use super::*;

    fn one_target(context: Vec<f32>, observed: Vec<bool>, season: usize) -> ModelBatch {
        let l = context.len();
        ModelBatch::new(vec![Role::Target], 1, l, 1, context, observed, vec![0.0], vec![false])
            .unwrap()
            .with_season(season)
    }

    /// A step of an action from 10 to 20 two steps into the horizon, and a one-step pulse
    /// of a second (a deploy): the relative path's four features per channel and step.
    #[test]
    fn relative_features_compare_the_plan_with_the_last_value() {
        let (l, h) = (16, 16);
        let roles = vec![Role::Target, Role::Action, Role::Action];
        let mut values: Vec<f32> = (0..l).map(|i| 100.0 + i as f32).collect();
        values.extend(vec![10.0; l]);
        values.extend(vec![0.0; l]);
        let mut future = vec![0.0; h];
        future.extend((0..h).map(|i| if i < 2 { 10.0 } else { 20.0 }));
        future.extend((0..h).map(|i| if i == 4 { 1.0 } else { 0.0 }));
        let known: Vec<bool> = (0..3 * h).map(|i| i >= h).collect();
        let batch = ModelBatch::new(roles, 1, l, h, values, vec![true; 3 * l], future, known).unwrap();
        let config = ModelConfig { patch_len: 8, ..ModelConfig::small() };
        let device = Device::flex();
        let inputs = Inputs::new(&batch, &config, &device);
        let read = |x: &Tensor<3>| x.clone().into_data().try_to_vec::<f32>().unwrap();
        let actions = Tensor::<1, Int>::from_data(TensorData::new(vec![1i64, 2], [2]), &device);
        let features = read(&relative_features(&inputs, actions));
        let at = |feature: usize, action: usize, step: usize| features[(feature * 2 + action) * h + step];
        let (location, scale) = (read(&inputs.location), read(&inputs.scale));
        let offset = 0.05 * (location[1].abs() + scale[1]);
        let ratio = ((20.0 + offset) / (10.0 + offset)).ln();
        let close = |a: f32, b: f32| (a - b).abs() < 1e-4;
        for step in 0..h {
            let moved = step >= 2;
            assert!(close(at(0, 0, step), if moved { ratio } else { 0.0 }), "ratio at {step}");
            assert!(close(at(1, 0, step), if step >= 5 { ratio } else { 0.0 }), "lagged ratio at {step}");
            assert!(close(at(2, 0, step), if moved { 1.0 } else { 0.0 }), "moved at {step}");
            assert!(close(at(2, 1, step), if step >= 4 { 1.0 } else { 0.0 }), "deployed at {step}");
        }
        let pulse = 10.0 * (1.0 / scale[2] / 10.0).tanh();
        let decayed = |step: usize| 10.0 * (pulse * (-((step - 4) as f32) / 3.0).exp() / 10.0).tanh();
        assert!(
            close(at(3, 1, 3), 0.0) && close(at(3, 1, 4), decayed(4)) && close(at(3, 1, 10), decayed(10))
        );
        assert!(at(3, 0, 15) > at(3, 0, 2), "a held change builds up");
        assert!(features.iter().all(|v| v.is_finite()));
    }

    /// The relative path's units: the target's level, repeated, and the median's excess
    /// over the lowest observed context value, never below zero; a target never observed
    /// has no excess.
    #[test]
    fn relative_units_are_the_level_and_the_excess_over_the_floor() {
        let (l, h) = (8, 4);
        let roles = vec![Role::Target, Role::Target, Role::Action];
        let mut values: Vec<f32> = vec![50.0, 40.0, 20.0, 60.0, 45.0, 52.0, 70.0, 30.0];
        values.extend(vec![7.0; l]);
        values.extend(vec![3.0; l]);
        let mut observed = vec![true; 3 * l];
        observed[2] = false; // the 20 is a gap: the floor is 30
        observed[l..2 * l].iter_mut().for_each(|o| *o = false);
        let known: Vec<bool> = (0..3 * h).map(|i| i >= 2 * h).collect();
        let batch = ModelBatch::new(roles, 1, l, h, values, observed, vec![3.0; 3 * h], known).unwrap();
        let config = ModelConfig { patch_len: 2, ..ModelConfig::small() };
        let device = Device::flex();
        let inputs = Inputs::new(&batch, &config, &device);
        let read = |x: Tensor<3>| x.into_data().try_to_vec::<f32>().unwrap();
        let (location, scale) = (read(inputs.location.clone()), read(inputs.scale.clone()));
        // The median in scaled units: 80, 30, 10 and 55 in the data's.
        let median: Vec<f32> =
            [80.0, 30.0, 10.0, 55.0].iter().map(|v| (v - location[0]) / scale[0]).collect();
        let median =
            Tensor::<4>::from_data(TensorData::new([median, vec![0.0; h]].concat(), [1, 2, h, 1]), &device);
        let units = relative_units(&inputs, median, 2).into_data().try_to_vec::<f32>().unwrap();
        // `[1, S = 2, T = 2, U·P = 4]`.
        let at = |s: usize, t: usize, u: usize, step: usize| units[(s * 2 + t) * 4 + u * 2 + step];
        let close = |a: f32, b: f32| (a - b).abs() < 1e-4;
        for (i, excess) in [50.0, 0.0, 0.0, 25.0].iter().enumerate() {
            let (s, step) = (i / 2, i % 2);
            assert!(close(at(s, 0, 0, step), location[0].abs() / scale[0]), "level at {i}");
            assert!(close(at(s, 0, 1, step), excess / scale[0]), "excess at {i}");
            assert_eq!(at(s, 1, 1, step), 0.0, "a target never observed has no excess");
        }
    }

    /// A replica count (whole, held, at its lowest half the time), a traffic weight
    /// (within [0, 1], moving every step), a request rate with a gap, and a channel never
    /// observed: the six kind cues of each.
    #[test]
    fn kind_cues_tell_a_channel_by_its_values() {
        let l = 8;
        let roles = vec![Role::Target, Role::Action, Role::Action, Role::Covariate];
        let mut values = vec![900.0, 1000.5, 1100.0, 1050.25, 0.0, 980.0, 990.0, 1010.0];
        values.extend([3.0, 3.0, 3.0, 3.0, 4.0, 4.0, 4.0, 4.0]);
        values.extend([0.5, 0.6, 0.7, 0.8, 0.9, 1.0, 0.9, 0.8]);
        values.extend(vec![0.0; l]);
        let mut observed = vec![true; 4 * l];
        observed[4] = false; // the request rate's gap
        observed[3 * l..].iter_mut().for_each(|o| *o = false);
        let batch = ModelBatch::new(roles, 1, l, 2, values, observed, vec![0.0; 8], vec![false; 8]).unwrap();
        let config = ModelConfig { patch_len: 2, ..ModelConfig::small() };
        let device = Device::flex();
        let inputs = Inputs::new(&batch, &config, &device);
        let read = |x: &Tensor<3>| x.clone().into_data().try_to_vec::<f32>().unwrap();
        let channels = Tensor::<1, Int>::from_data(TensorData::new(vec![0i64, 1, 2, 3], [4]), &device);
        let cues = read(&kind_cues(&inputs, channels));
        let (location, scale) = (read(&inputs.location), read(&inputs.scale));
        let close = |a: f32, b: f32| (a - b).abs() < 1e-4;
        for c in 0..4 {
            let at = |cue: usize| cues[c * KIND_CUES + cue];
            let magnitude = 1.0 + location[c].abs();
            assert!(close(at(0), magnitude.ln()) && close(at(1), (scale[c] / magnitude).ln()), "size of {c}");
        }
        let rest = |c: usize| cues[c * KIND_CUES + 2..(c + 1) * KIND_CUES].to_vec();
        // The request rate: 5 of its 7 values whole, its 5 observed consecutive pairs all
        // moving, 900 its lowest.
        let rps = rest(0);
        assert!(close(rps[0], 5.0 / 7.0) && close(rps[1], 1.0) && rps[2] == 0.0 && close(rps[3], 1.0 / 7.0));
        assert!(close(rest(1)[0], 1.0) && close(rest(1)[1], 1.0 / 7.0) && rest(1)[2] == 0.0);
        assert!(close(rest(1)[3], 0.5), "the replica count is at its lowest half the time");
        let weight = rest(2);
        assert!(
            close(weight[0], 1.0 / 8.0)
                && close(weight[1], 1.0)
                && weight[2] == 1.0
                && close(weight[3], 0.125)
        );
        assert_eq!(rest(3), vec![0.0; 4], "a channel never observed");
        assert!(cues.iter().all(|v| v.is_finite()));
    }

    #[test]
    fn the_anchor_repeats_the_last_season_and_fills_gaps_from_the_one_before() {
        let batch =
            one_target(vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0], vec![true, true, true, true, false, true], 3);
        let (anchor, has) = seasonal_naive(&batch, 7);
        assert_eq!(anchor, vec![4.0, 2.0, 6.0, 4.0, 2.0, 6.0, 4.0], "step 5's gap comes from step 2");
        assert_eq!(has, vec![1.0; 7]);
    }

    #[test]
    fn without_a_whole_season_or_a_season_the_anchor_is_the_last_value() {
        let (anchor, _) = seasonal_naive(&one_target(vec![1.0, 2.0], vec![true; 2], 24), 3);
        assert_eq!(anchor, vec![2.0; 3]);
        let (anchor, _) = seasonal_naive(&one_target(vec![1.0, 2.0, 3.0], vec![true, true, false], 1), 2);
        assert_eq!(anchor, vec![2.0; 2]);
        let (anchor, has) = seasonal_naive(&one_target(vec![1.0, 2.0], vec![false; 2], 1), 2);
        assert_eq!((anchor, has), (vec![0.0; 2], vec![0.0; 2]), "nothing observed, no anchor");
    }

    #[test]
    fn the_profile_averages_each_phase_and_the_departure_is_from_the_seasons_before() {
        let values: Vec<f32> = (1..=7).map(|v| v as f32).collect();
        let (profile, departure) = seasonal_profile(&one_target(values.clone(), vec![true; 7], 3), 4);
        assert_eq!(profile, vec![3.5, 4.5, 4.0, 3.5]);
        assert_eq!(departure, vec![7.0 - 2.5]);
        let gap = vec![true, true, true, false, true, true, true];
        let (profile, departure) = seasonal_profile(&one_target(values.clone(), gap, 3), 3);
        assert_eq!((profile, departure), (vec![3.5, 4.5, 4.0], vec![6.0]), "index 3 is missing");
        let (profile, departure) = seasonal_profile(&one_target(values, vec![true; 7], 10), 5);
        assert_eq!((profile, departure), (vec![7.0, 7.0, 7.0, 1.0, 2.0], vec![0.0]), "no whole season");
    }

    #[test]
    fn the_naive_error_falls_back_to_the_mean_where_most_pairs_repeat_exactly() {
        let bursts = one_target(vec![0.0, 0.0, 0.0, 0.0, 0.0, 5.0, 0.0, 0.0], vec![true; 8], 1);
        assert_eq!(naive_errors(&bursts), vec![10.0 / 7.0]);
        let noisy = one_target(vec![1.0, 2.0, 4.0, 7.0, 8.0, 8.0], vec![true; 6], 1);
        assert_eq!(naive_errors(&noisy), vec![1.0], "the median where it is not zero");
        let periodic = one_target(vec![1.0, 2.0, 1.0, 2.0, 1.0, 2.0], vec![true; 6], 2);
        assert_eq!(naive_errors(&periodic), vec![0.0], "an exact repeat keeps no spread");
    }

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

    /// The state's blend moves each series' whole distribution by its weighted features:
    /// with the weights closed the forecast is that of the model without the blend, and
    /// open, the median moves while every quantile's distance from it stays put.
    #[test]
    fn the_state_blend_shifts_the_distribution_without_changing_its_spread() {
        let device = Device::flex();
        let config = ModelConfig {
            patch_len: 4,
            max_context_patches: 8,
            max_horizon_patches: 2,
            ..ModelConfig::small()
        };
        let context: Vec<f32> = (0..24).map(|i| 10.0 + (i % 6) as f32 + 0.3 * i as f32).collect();
        let batch = ModelBatch::new(
            vec![Role::Target],
            1,
            24,
            8,
            context,
            vec![true; 24],
            vec![0.0; 8],
            vec![false; 8],
        )
        .unwrap()
        .with_season(6);
        let inputs = Inputs::new(&batch, &config, &device);
        let network = Network::new(&config, &device);
        let decoded = |network: &Network| {
            let encoded = network.encode(&inputs);
            let control = LoopControl { min_loops: 1, max_loops: 1, exit_threshold: 2.0 };
            let rollout =
                network.rollout(&inputs, encoded.state, network.memory_keys(encoded.memory), control);
            values(
                network
                    .decode(&inputs, &rollout.actions, rollout.states, &[0, 1])
                    .reshape([8, 13])
                    .swap_dims(0, 1)
                    .reshape([1, 13, 8]),
            )
        };
        let without = decoded(&Network { blend: None, ..network.clone() });
        let blend = network.blend.clone().unwrap();
        let closed = Linear { weight: Param::from_tensor(blend.weight.val().zeros_like()), ..blend.clone() };
        assert_eq!(decoded(&Network { blend: Some(closed), ..network.clone() }), without);
        let open = Linear { weight: Param::from_tensor(blend.weight.val().mul_scalar(100.0)), ..blend };
        let with = decoded(&Network { blend: Some(open), ..network });
        let median = config.median_level();
        let spread = |q: &[f32], level: usize, step: usize| q[level * 8 + step] - q[median * 8 + step];
        let mut moved = 0.0f32;
        for step in 0..8 {
            moved = moved.max((with[median * 8 + step] - without[median * 8 + step]).abs());
            for level in 0..13 {
                let (a, b) = (spread(&with, level, step), spread(&without, level, step));
                assert!((a - b).abs() < 1e-4 * (1.0 + b.abs()), "level {level} step {step}: {a} vs {b}");
            }
        }
        assert!(moved > 1e-2, "the open blend moves the median (by {moved})");
    }
}
