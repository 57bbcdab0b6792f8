//! Training and validation windows, generated from seeds: SRE-world episodes with twin
//! futures under different action plans, series of the synthetic prior, and windows of
//! the recipe's real series.
//!
//! Seeds are split three ways so no held-out window is ever trained on: training windows
//! draw seeds below [`VALIDATION_SEEDS`], validation uses `[VALIDATION_SEEDS,
//! EVALUATION_SEEDS)`, and final evaluation (model cards, ablations) uses seeds from
//! [`EVALUATION_SEEDS`] on.

use loopcast_core::{ChannelValues, Frequency, RegularSeries, Role};
use loopcast_model::ModelBatch;
use loopcast_sim::prior::{PriorSpec, prior_series};
use loopcast_sim::{Episode, EpisodeSpec, ParamRanges, TARGETS, Topology, sre_episode};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Poisson};

use crate::{RealCorpus, TrainConfig, TrainError};

/// First seed of the validation windows; training seeds lie below it.
pub const VALIDATION_SEEDS: u64 = 1 << 62;
/// First seed of the final evaluation windows.
pub const EVALUATION_SEEDS: u64 = 1 << 63;

/// Where a batch's windows come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// The SRE world: twin windows (one history under the base plan and under
    /// `data.plans_per_history − 1` departing plans).
    Sre,
    /// The synthetic prior: targets only.
    Prior,
    /// Real series of `data.real`: one target each.
    Real,
}

/// The windows and loop count of one training step.
#[derive(Debug, Clone)]
pub struct StepBatch {
    /// Windows; target future cells hold the truth (masked where unobserved).
    pub batch: ModelBatch,
    /// Where they come from.
    pub source: Source,
    /// Loops per patch this step.
    pub loops: usize,
    /// The future patch whose state the consistency loss checks.
    pub consistency_patch: usize,
}

/// SplitMix64 of `a` and `b`: independent streams from one seed.
pub(crate) fn mix(a: u64, b: u64) -> u64 {
    let mut z = a ^ b.wrapping_mul(0x9E37_79B9_7F4A_7C15).wrapping_add(0x6A09_E667_F3BC_C909);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Grid steps the SRE world is simulated at.
const SRE_FREQUENCIES_MINUTES: [i64; 4] = [1, 5, 15, 60];

/// The batch of training step `step` of a recipe without real series (`data.real_share`
/// 0): see [`mixture_batch`].
pub fn training_batch(config: &TrainConfig, step: u64) -> Result<StepBatch, TrainError> {
    mixture_batch(config, &RealCorpus::default(), step)
}

/// The batch of training step `step`, drawing real series from `real` (the recipe's
/// `data.real`, loaded): a pure function of the config, the corpus and the step, so a
/// resumed run sees exactly the batches an uninterrupted one would.
pub fn mixture_batch(config: &TrainConfig, real: &RealCorpus, step: u64) -> Result<StepBatch, TrainError> {
    let mut rng = ChaCha8Rng::seed_from_u64(mix(config.seed, step));
    let data = &config.data;
    let model = &config.model.config;
    let context = data.contexts[rng.random_range(0..data.contexts.len())];
    let horizon = data.horizons[rng.random_range(0..data.horizons.len())];
    let extra: f64 = Poisson::new(config.loops.poisson_lambda.max(1e-9)).map_or(0.0, |p| p.sample(&mut rng));
    let loops = (1 + extra as usize).min(model.max_loops);
    let consistency_patch = rng.random_range(0..horizon.div_ceil(model.patch_len));
    let draw = rng.random::<f64>();
    let (batch, source) = if draw < data.sre_share {
        let seeds: Vec<u64> = (0..config.batch_size / data.plans_per_history)
            .map(|_| rng.random::<u64>() % VALIDATION_SEEDS)
            .collect();
        let frequency = Frequency::minutes(SRE_FREQUENCIES_MINUTES[rng.random_range(0..4)]);
        let targets = if rng.random::<f64>() < data.target_subset_share {
            let mut chosen: Vec<usize> = (0..TARGETS).filter(|_| rng.random::<f64>() < 0.5).collect();
            if chosen.is_empty() {
                chosen.push(rng.random_range(0..TARGETS));
            }
            chosen
        } else {
            (0..TARGETS).collect()
        };
        let layout = SreLayout {
            targets,
            with_actions: rng.random::<f64>() >= data.drop_actions_share,
            action_blind: data.action_blind,
            plans: data.plans_per_history,
        };
        let (batch, _) = sre_windows(&seeds, context, horizon, frequency, &layout)?;
        (batch, Source::Sre)
    } else if draw < data.sre_share + data.real_share {
        (real.windows(&mut rng, config.batch_size, context, horizon)?, Source::Real)
    } else {
        let channels = rng.random_range(1..=data.prior_max_channels);
        let seeds: Vec<u64> =
            (0..config.batch_size).map(|_| rng.random::<u64>() % VALIDATION_SEEDS).collect();
        (prior_windows(&seeds, context, horizon, channels, None)?, Source::Prior)
    };
    Ok(StepBatch { batch, source, loops, consistency_patch })
}

/// Which channels of the SRE world a batch carries, and under how many plans.
#[derive(Debug, Clone, PartialEq)]
pub struct SreLayout {
    /// Indices of the target channels kept (into `TARGET_CHANNELS`).
    pub targets: Vec<usize>,
    /// Whether the action and covariate channels are kept.
    pub with_actions: bool,
    /// Zero every action value (the action-blind ablation); masks are kept.
    pub action_blind: bool,
    /// Plans each history continues under: the base plan, then departing ones (at least 2).
    pub plans: usize,
}

impl SreLayout {
    /// Every channel, actions visible, twin pairs.
    pub fn full() -> Self {
        Self { targets: (0..TARGETS).collect(), with_actions: true, action_blind: false, plans: 2 }
    }

    fn channels(&self, series: &RegularSeries) -> Vec<usize> {
        let mut channels = self.targets.clone();
        if self.with_actions {
            channels.extend(TARGETS..series.channels.len());
        }
        channels
    }
}

/// Twin windows of the SRE episodes of `seeds`: with `K = layout.plans`, rows `K·i` to
/// `K·i + K − 1` share episode `i`'s history and continue it under the base plan (row
/// `K·i`) and under `K − 1` departing plans. Each window's season is the one its history
/// shows, the calendar's as the prior ([`ModelBatch::find_seasons`]), as at inference.
/// Returns the episodes too (for counterfactual scoring).
pub fn sre_windows(
    seeds: &[u64],
    context: usize,
    horizon: usize,
    frequency: Frequency,
    layout: &SreLayout,
) -> Result<(ModelBatch, Vec<Episode>), TrainError> {
    let ranges = ParamRanges::default();
    let spec = EpisodeSpec { context, horizon, plans: layout.plans, frequency, topology: Topology::Single };
    let mut rows = Rows::new(context, horizon);
    let mut episodes = Vec::with_capacity(seeds.len());
    let mut roles = Vec::new();
    for &seed in seeds {
        let episode = sre_episode(seed, &ranges, spec).map_err(|e| TrainError::Data(e.to_string()))?;
        let channels = layout.channels(&episode.history);
        roles = channels.iter().map(|c| episode.history.channels[*c].spec.role).collect();
        for future in &episode.futures {
            for &c in &channels {
                let (past, next) = (&episode.history.channels[c], &future.channels[c]);
                let blind = layout.action_blind && past.spec.role == Role::Action;
                rows.push(past, next, blind);
            }
        }
        episodes.push(episode);
    }
    let batch =
        rows.finish(roles, layout.plans * seeds.len())?.with_season(frequency.season()).find_seasons();
    Ok((batch, episodes))
}

/// Windows of the prior series of `seeds`, each with `channels` target channels, at
/// `frequency` (drawn per series when `None`); seasons found as in [`sre_windows`].
pub fn prior_windows(
    seeds: &[u64],
    context: usize,
    horizon: usize,
    channels: usize,
    frequency: Option<Frequency>,
) -> Result<ModelBatch, TrainError> {
    let mut rows = Rows::new(context, horizon);
    let mut seasons = Vec::with_capacity(seeds.len());
    for &seed in seeds {
        let spec = PriorSpec { length: context + horizon, frequency, channels: Some(channels) };
        let series = prior_series(seed, spec).map_err(|e| TrainError::Data(e.to_string()))?.series;
        seasons.push(series.frequency.season());
        let (past, next) = (series.slice(0..context), series.slice(context..context + horizon));
        for (past, next) in past.channels.iter().zip(&next.channels) {
            rows.push(past, next, false);
        }
    }
    Ok(rows
        .finish(vec![Role::Target; channels], seeds.len())?
        .with_seasons(seasons)
        .map_err(|e| TrainError::Data(e.to_string()))?
        .find_seasons())
}

/// Row-major arrays of a batch under construction.
struct Rows {
    context: usize,
    horizon: usize,
    values: Vec<f32>,
    observed: Vec<bool>,
    future: Vec<f32>,
    known: Vec<bool>,
}

impl Rows {
    fn new(context: usize, horizon: usize) -> Self {
        Self {
            context,
            horizon,
            values: Vec::new(),
            observed: Vec::new(),
            future: Vec::new(),
            known: Vec::new(),
        }
    }

    /// Appends one channel of one window: its context and its future (the truth for a
    /// target, the plan for an action or covariate).
    fn push(&mut self, past: &ChannelValues, next: &ChannelValues, zero: bool) {
        let value = |v: f64, seen: bool| if seen && !zero { v as f32 } else { 0.0 };
        let tail = past.values.len() - self.context;
        for (v, o) in past.values[tail..].iter().zip(&past.observed[tail..]) {
            self.values.push(value(*v, *o));
            self.observed.push(*o);
        }
        for (v, o) in next.values[..self.horizon].iter().zip(&next.observed[..self.horizon]) {
            self.future.push(value(*v, *o));
            self.known.push(*o);
        }
    }

    fn finish(self, roles: Vec<Role>, windows: usize) -> Result<ModelBatch, TrainError> {
        ModelBatch::new(
            roles,
            windows,
            self.context,
            self.horizon,
            self.values,
            self.observed,
            self.future,
            self.known,
        )
        .map_err(|e| TrainError::Data(e.to_string()))
    }
}
