//! Training and validation windows, generated from seeds: SRE-world episodes with twin
//! futures under different action plans, and series of the synthetic prior.
//!
//! Seeds are split three ways so no held-out window is ever trained on: training windows
//! draw seeds below [`VALIDATION_SEEDS`], validation uses `[VALIDATION_SEEDS,
//! EVALUATION_SEEDS)`, and final evaluation (model cards, ablations) uses seeds from
//! [`EVALUATION_SEEDS`] on.

use loopcast_core::{ChannelValues, Frequency, RegularSeries, Role};
use loopcast_model::{ModelBatch, STATE_PROBES};
use loopcast_sim::prior::{PriorSpec, prior_series};
use loopcast_sim::{Episode, EpisodeSpec, ParamRanges, TARGETS, Topology, sre_episode};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Poisson};

use crate::{TrainConfig, TrainError};

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
    /// What the state probe should read (`model.state_probe`, SRE batches only).
    pub probes: Option<ProbeTargets>,
}

/// The hidden quantities the state probe learns to read, per window: over the last
/// context patch, then over every future patch (each a mean over the patch's steps).
#[derive(Debug, Clone, PartialEq)]
pub struct ProbeTargets {
    /// `[B, K + 1, STATE_PROBES]`, row-major: the log of the admitted load over the
    /// capacity, and the log of one plus the backlog in seconds of service.
    pub values: Vec<f32>,
    /// `[B, K + 1]`: 1 where the value counts (a future patch counts only when the
    /// window shows its plan), else 0.
    pub mask: Vec<f32>,
    /// Patches after the history's last one (`K`).
    pub patches: usize,
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

/// The batch of training step `step`: a pure function of the config and the step, so a
/// resumed run sees exactly the batches an uninterrupted one would.
pub fn training_batch(config: &TrainConfig, step: u64) -> Result<StepBatch, TrainError> {
    let mut rng = ChaCha8Rng::seed_from_u64(mix(config.seed, step));
    let data = &config.data;
    let model = &config.model.config;
    let context = data.contexts[rng.random_range(0..data.contexts.len())];
    let horizon = data.horizons[rng.random_range(0..data.horizons.len())];
    let extra: f64 = Poisson::new(config.loops.poisson_lambda.max(1e-9)).map_or(0.0, |p| p.sample(&mut rng));
    let loops = (1 + extra as usize).min(model.max_loops);
    let consistency_patch = rng.random_range(0..horizon.div_ceil(model.patch_len));
    let (batch, source, probes) = if rng.random::<f64>() < data.sre_share {
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
        let (batch, episodes) = sre_windows(&seeds, context, horizon, frequency, &layout)?;
        let probes = model.state_probe.then(|| {
            let plans_shown = layout.with_actions && !layout.action_blind;
            probe_targets(&episodes, context, horizon, model.patch_len, frequency, plans_shown)
        });
        (batch, Source::Sre, probes)
    } else {
        let channels = rng.random_range(1..=data.prior_max_channels);
        let seeds: Vec<u64> =
            (0..config.batch_size).map(|_| rng.random::<u64>() % VALIDATION_SEEDS).collect();
        (prior_windows(&seeds, context, horizon, channels, None)?, Source::Prior, None)
    };
    Ok(StepBatch { batch, source, loops, consistency_patch, probes })
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
/// `K·i`) and under `K − 1` departing plans.
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
    let batch = rows.finish(roles, layout.plans * seeds.len())?.with_season(frequency.season());
    Ok((batch, episodes))
}

/// The state probe's targets for the windows of `episodes` as [`sre_windows`] lays them
/// out (one row per episode and plan), at a grid step of `frequency`: from each plan's
/// noise-free truth, the admitted load over the capacity (`ln`, bounded to ±7) and the
/// backlog in seconds of service (`ln(1 + ·)`, at most `ln(1 + 10⁴)`), averaged over the
/// last context patch and over each future patch. Future patches count only when
/// `plans_shown` (a window without its plan cannot know where the plan takes it).
pub fn probe_targets(
    episodes: &[Episode],
    context: usize,
    horizon: usize,
    patch: usize,
    frequency: Frequency,
    plans_shown: bool,
) -> ProbeTargets {
    let patches = horizon.div_ceil(patch);
    let seconds = frequency.nominal_micros() as f64 / 1e6;
    let (mut values, mut mask) = (Vec::new(), Vec::new());
    for truth in episodes.iter().flat_map(|e| &e.truths) {
        let at = |step: usize| {
            let capacity = truth.capacity_rps[step].max(1e-6);
            let load = (truth.admitted[step] / (capacity * seconds)).clamp(1e-3, 1e3).ln();
            let backlog = (truth.backlog[step] / capacity).clamp(0.0, 1e4).ln_1p();
            [load, backlog]
        };
        let spans = std::iter::once(context.saturating_sub(patch)..context)
            .chain((0..patches).map(|k| context + k * patch..context + ((k + 1) * patch).min(horizon)));
        for (index, span) in spans.enumerate() {
            let n = span.len().max(1) as f64;
            let mut sums = [0.0; STATE_PROBES];
            for step in span {
                for (sum, value) in sums.iter_mut().zip(at(step)) {
                    *sum += value;
                }
            }
            values.extend(sums.map(|sum| (sum / n) as f32));
            mask.push(if index == 0 || plans_shown { 1.0 } else { 0.0 });
        }
    }
    ProbeTargets { values, mask, patches }
}

/// Windows of the prior series of `seeds`, each with `channels` target channels, at
/// `frequency` (drawn per series when `None`).
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
    rows.finish(vec![Role::Target; channels], seeds.len())?
        .with_seasons(seasons)
        .map_err(|e| TrainError::Data(e.to_string()))
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Read step by step (patches of one step), the probe's load is what the replicas
    /// see: where nothing waits and the servers are neither idle nor saturated, its
    /// exponential is the simulator's own utilisation. A window that hides its plan
    /// scores only the history's patch.
    #[test]
    fn the_probe_reads_the_load_the_replicas_see() {
        let (context, horizon, frequency) = (64, 16, Frequency::minutes(5));
        let seeds: Vec<u64> = (0..6).collect();
        let (_, episodes) = sre_windows(&seeds, context, horizon, frequency, &SreLayout::full()).unwrap();
        let probes = probe_targets(&episodes, context, horizon, 1, frequency, true);
        assert_eq!(probes.patches, horizon);
        assert_eq!(probes.values.len(), seeds.len() * 2 * (horizon + 1) * STATE_PROBES);
        assert!(probes.values.iter().all(|v| v.is_finite()) && probes.mask.iter().all(|m| *m == 1.0));
        let mut compared = 0;
        for (row, truth) in episodes.iter().flat_map(|e| &e.truths).enumerate() {
            for k in 0..=horizon {
                let step = context - 1 + k;
                let calm = truth.backlog[step] == 0.0 && truth.shed[step] == 0.0;
                if !calm || !(0.05..0.9).contains(&truth.utilisation[step]) {
                    continue;
                }
                let at = (row * (horizon + 1) + k) * STATE_PROBES;
                let load = f64::from(probes.values[at]).exp();
                let backlog = probes.values[at + 1];
                assert!(
                    (load - truth.utilisation[step]).abs() < 0.02 * truth.utilisation[step],
                    "row {row} step {step}: load {load}, utilisation {}",
                    truth.utilisation[step]
                );
                assert_eq!(backlog, 0.0);
                compared += 1;
            }
        }
        assert!(compared > 50, "only {compared} calm steps compared");
        let hidden = probe_targets(&episodes, context, horizon, 8, frequency, false);
        let scored: Vec<f32> = hidden.mask.chunks(hidden.patches + 1).map(|row| row.iter().sum()).collect();
        assert!(scored.iter().all(|s| *s == 1.0), "{scored:?}");
    }
}
