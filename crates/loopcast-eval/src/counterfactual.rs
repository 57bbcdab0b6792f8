//! Counterfactual scoring on simulator twins: the same history continued under different
//! action plans, so the true effect of each plan is known exactly (the twins share every
//! noise draw and every dropped scrape).
//!
//! Three forecasters of effects are compared on the same twins: loopcast (one what-if per
//! episode, every plan rolled out from one encoding of the history), the action-blind
//! ablation (the same model with every action value zeroed, past and future: whatever a
//! model that cannot see actions predicts for one twin it predicts for the other) and
//! [`Arx`] (least squares on lags of the target and the actions). A fourth, the *oracle*,
//! is the simulator itself: it knows the service's parameters and its state at the
//! forecast time, and plays the plans in [`ORACLE_DRAWS`] futures drawn again
//! ([`Episode::redrawn_futures`]). No forecaster that sees only the history can know more,
//! so its scores are the ceiling of what the metrics allow on these twins.
//!
//! Per (departing plan × target channel) effect that is *material* (its mean size is at
//! least a tenth of the channel's context standard deviation):
//! - effect error `Σ|predicted − true| / Σ|true|` over the horizon (1 = no better than
//!   predicting no effect), summarised by its median;
//! - whether the summed effect's sign is right (a zero prediction has no sign);
//! - coverage of the 80 % effect interval over the horizon's steps;
//! - its gain, the predicted mean effect over the true one, summarised by its median (1 =
//!   the right size; near 0, an effect seen but not sized).
//!
//! loopcast's effect at level `u` is `Q_plan(u) − Q_base(u)`, the two forecasts paired
//! level by level (as the service reports differences); its 80 % interval spans those
//! differences over the levels 0.1 … 0.9, widened on both sides by the model's
//! `effect_widening` times the median's difference (the planner's effect intervals).

use std::collections::BTreeMap;

use loopcast_core::{Frequency, RegularSeries, Role};
use loopcast_model::{ForecastOptions, LoopedWorldModel, ModelBatch};
use loopcast_sim::policy::Variant;
use loopcast_sim::{Episode, EpisodeSpec, ParamRanges, Topology, sre_episode};
use serde::{Deserialize, Serialize};

use crate::arx::{Arx, ArxSpec, empirical_quantile};
use crate::backtest::EvalError;

/// First seed of the held-out twins: training draws its seeds below 2⁶², its validation
/// from 2⁶² and the model card's evaluation a few thousand from 2⁶³, so seeds from here
/// on are never trained or tuned on.
pub const HELD_OUT_SEEDS: u64 = (1 << 63) + (1 << 62);

/// Which twins to score.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TwinSpec {
    /// Seed of the first episode (each episode is a different simulated service).
    pub first_seed: u64,
    /// Episodes.
    pub episodes: usize,
    /// History steps (5-minute steps).
    pub context: usize,
    /// Future steps.
    pub horizon: usize,
    /// Plans per episode, the operator's own plan first: `plans − 1` departures.
    pub plans: usize,
    /// The world the services live in: the SRE world training draws from, or the
    /// held-out two-tier world.
    pub topology: Topology,
}

impl Default for TwinSpec {
    fn default() -> Self {
        Self {
            first_seed: HELD_OUT_SEEDS,
            episodes: 48,
            context: 512,
            horizon: 64,
            plans: 4,
            topology: Topology::Single,
        }
    }
}

/// The grid step of the twins: 5 minutes.
pub fn twin_frequency() -> Frequency {
    Frequency::minutes(5)
}
/// Daily season of the twins at [`twin_frequency`].
pub const TWIN_SEASON: usize = 288;

/// The episodes of `spec`, each a history and `spec.plans` twin futures.
pub fn twin_episodes(spec: TwinSpec) -> Result<Vec<Episode>, EvalError> {
    let episode = EpisodeSpec {
        context: spec.context,
        horizon: spec.horizon,
        plans: spec.plans,
        frequency: twin_frequency(),
        topology: spec.topology,
    };
    let ranges = ParamRanges::default();
    (spec.first_seed..spec.first_seed + spec.episodes as u64)
        .map(|seed| sre_episode(seed, &ranges, episode).map_err(|e| EvalError::Config(e.to_string())))
        .collect()
}

/// A forecaster of effects.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EffectModel {
    /// The looped world model's what-if.
    Loopcast,
    /// The same model with every action value zeroed.
    ActionBlind,
    /// Least squares on lags of the target and the actions ([`Arx`]).
    Arx,
    /// The simulator, told the service and its state, over redrawn futures: the ceiling.
    Oracle,
}

impl EffectModel {
    /// Every effect model, in table order.
    pub const ALL: [EffectModel; 4] = [Self::Loopcast, Self::ActionBlind, Self::Arx, Self::Oracle];

    /// The name in tables and result files.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Loopcast => "loopcast",
            Self::ActionBlind => "action_blind",
            Self::Arx => "arx",
            Self::Oracle => "oracle",
        }
    }
}

/// How one material effect was predicted.
#[derive(Debug, Clone, PartialEq)]
pub struct EffectScore {
    /// `Σ|predicted − true| / Σ|true|` over the steps where both twins were observed.
    pub error: f64,
    /// The summed effect's sign is right (never for a zero prediction).
    pub sign_right: bool,
    /// Steps inside the 80 % effect interval, and steps scored (`None`: no interval).
    pub covered: Option<(usize, usize)>,
    /// Per scored step with an interval, how far the true effect lies outside it, in units
    /// of the predicted effect's size at that step (negative inside; infinite for a step
    /// outside with no predicted effect): the widening that step needs to be covered.
    pub excess: Vec<f64>,
    /// The true effect's mean per scored step, in the channel's units.
    pub true_mean: f64,
    /// The predicted effect's mean per scored step, in the channel's units.
    pub predicted_mean: f64,
}

/// Scores one effect on a target channel: `base` and `twin` are the twins' observed futures
/// (`NaN` where unobserved), `predicted` the predicted difference `twin − base` per step,
/// `interval` its 80 % interval. `None` when the effect is not material against the
/// context's spread (or nothing was observed).
pub fn score_effect(
    context: &[f64],
    base: &[f64],
    twin: &[f64],
    predicted: &[f64],
    interval: Option<(&[f64], &[f64])>,
) -> Option<EffectScore> {
    let steps: Vec<usize> =
        (0..base.len()).filter(|i| base[*i].is_finite() && twin[*i].is_finite()).collect();
    let seen: Vec<f64> = context.iter().copied().filter(|v| v.is_finite()).collect();
    if steps.is_empty() || seen.len() < 2 {
        return None;
    }
    let mean = seen.iter().sum::<f64>() / seen.len() as f64;
    let sd = (seen.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / seen.len() as f64).sqrt();
    let truth = |i: usize| twin[i] - base[i];
    let size: f64 = steps.iter().map(|i| truth(*i).abs()).sum();
    if size / (steps.len() as f64) < 0.1 * sd.max(1e-9) {
        return None;
    }
    let error = steps.iter().map(|i| (truth(*i) - predicted[*i]).abs()).sum::<f64>() / size;
    let (true_sum, guess): (f64, f64) =
        (steps.iter().map(|i| truth(*i)).sum(), steps.iter().map(|i| predicted[*i]).sum());
    // A zero predicted effect has no sign, so it is never right (`signum(0.0)` is 1).
    let sign_right = guess != 0.0 && true_sum.signum() == guess.signum();
    let covered = interval.map(|(lower, upper)| {
        let inside = steps.iter().filter(|i| lower[**i] <= truth(**i) && truth(**i) <= upper[**i]).count();
        (inside, steps.len())
    });
    let excess = match interval {
        Some((lower, upper)) => steps
            .iter()
            .map(|i| {
                let outside = (lower[*i] - truth(*i)).max(truth(*i) - upper[*i]);
                let unit = predicted[*i].abs();
                if unit > 0.0 {
                    outside / unit
                } else if outside > 0.0 {
                    f64::INFINITY
                } else {
                    f64::NEG_INFINITY
                }
            })
            .collect(),
        None => Vec::new(),
    };
    let n = steps.len() as f64;
    Some(EffectScore {
        error,
        sign_right,
        covered,
        excess,
        true_mean: true_sum / n,
        predicted_mean: guess / n,
    })
}

/// Running totals of [`EffectScore`]s.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct EffectTally {
    errors: Vec<f64>,
    gains: Vec<f64>,
    signs_right: usize,
    covered: usize,
    scored_steps: usize,
    excess: Vec<f64>,
}

impl EffectTally {
    /// Adds one score.
    pub fn push(&mut self, score: EffectScore) {
        self.excess.extend_from_slice(&score.excess);
        self.errors.push(score.error);
        // An effect that changes sign over the horizon can sum to nothing: it has no gain.
        if score.true_mean != 0.0 {
            self.gains.push(score.predicted_mean / score.true_mean);
        }
        self.signs_right += usize::from(score.sign_right);
        if let Some((inside, steps)) = score.covered {
            self.covered += inside;
            self.scored_steps += steps;
        }
    }

    /// The totals so far.
    pub fn summary(&self) -> EffectSummary {
        let n = self.errors.len();
        EffectSummary {
            material: n,
            median_error: median(&self.errors),
            median_gain: median(&self.gains),
            sign_accuracy: (n > 0).then(|| self.signs_right as f64 / n as f64),
            interval_coverage: (self.scored_steps > 0)
                .then(|| self.covered as f64 / self.scored_steps as f64),
            // Interpolating between two infinite order statistics gives NaN: still infinite.
            widening_to_80: (!self.excess.is_empty())
                .then(|| quantile(&mut self.excess.clone(), 0.8))
                .map(|w| if w.is_nan() { f64::INFINITY } else { w }),
        }
    }
}

/// The median of `values` (`None` when empty).
fn median(values: &[f64]) -> Option<f64> {
    (!values.is_empty()).then(|| quantile(&mut values.to_vec(), 0.5))
}

/// What a forecaster of effects scored.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct EffectSummary {
    /// Material effects scored (departing plan × target channel).
    pub material: usize,
    /// Median effect error (`None`: no material effect).
    pub median_error: Option<f64>,
    /// Median gain, predicted over true mean effect (`None`: no material effect with a
    /// non-zero mean).
    pub median_gain: Option<f64>,
    /// Share of material effects whose sign is right.
    pub sign_accuracy: Option<f64>,
    /// Share of the true effect's steps inside the 80 % effect interval.
    pub interval_coverage: Option<f64>,
    /// How much the intervals must widen on each side, in units of each step's predicted
    /// effect, to cover 80 % of the steps (negative: they could narrow; infinite: no
    /// widening reaches 80 %, the effect predicted at zero where it is not). A model's
    /// `effect_widening` plus this is its calibrated widening.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub widening_to_80: Option<f64>,
}

/// One scored effect, for the per-effect CSV.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EffectRow {
    /// Episode seed.
    pub seed: u64,
    /// Plan index within the episode (1 = the first departure).
    pub plan: usize,
    /// The kind of departure.
    pub variant: String,
    /// Target channel.
    pub channel: String,
    /// The forecaster.
    pub model: EffectModel,
    /// Effect error.
    pub error: f64,
    /// Whether the sign is right.
    pub sign_right: bool,
    /// Share of steps inside the 80 % interval.
    pub coverage_80: Option<f64>,
    /// The true effect's mean per step, in the channel's units.
    pub true_mean: f64,
    /// The predicted effect's mean per step, in the channel's units.
    pub predicted_mean: f64,
}

/// Counterfactual scores of every forecaster on the same twins.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CounterfactualReport {
    /// Episodes scored.
    pub episodes: usize,
    /// Departing plans scored (episodes × (plans − 1)).
    pub departures: usize,
    /// Per forecaster: the summary over every material effect.
    pub overall: BTreeMap<EffectModel, EffectSummary>,
    /// Per forecaster and departure kind (`Scale`, `Step`, …).
    pub by_variant: BTreeMap<EffectModel, BTreeMap<String, EffectSummary>>,
    /// Per forecaster and target channel.
    pub by_channel: BTreeMap<EffectModel, BTreeMap<String, EffectSummary>>,
    /// Every material effect, every forecaster (written as CSV, left out of the JSON).
    #[serde(skip)]
    pub rows: Vec<EffectRow>,
}

impl CounterfactualReport {
    /// The tables in Markdown: every forecaster overall, then per departure kind and per
    /// target channel.
    pub fn markdown(&self) -> String {
        let cell = |v: Option<f64>, percent: bool| match v {
            None => "–".to_string(),
            Some(v) if percent => format!("{:.1} %", 100.0 * v),
            // A gain that rounds to zero is written as zero, whatever its sign.
            Some(v) if v.abs() < 5e-4 => format!("{:.3}", 0.0),
            Some(v) => format!("{v:.3}"),
        };
        let blind = self.overall.get(&EffectModel::ActionBlind).and_then(|s| s.median_error);
        let arx = self.overall.get(&EffectModel::Arx).and_then(|s| s.median_error);
        let ratio = |e: Option<f64>, of: Option<f64>| match (e, of) {
            (Some(e), Some(of)) if of > 0.0 => format!("{:.2}", e / of),
            _ => "–".into(),
        };
        let mut out = format!(
            "{} episodes, {} departing plans; effects scored where material (mean size ≥ 0.1 × the \
             channel's context sd).\n\n| model | material effects | median effect error | ÷ action-blind | \
             ÷ ARX | sign right | 80 % effect interval coverage | median gain |\n\
             |---|---:|---:|---:|---:|---:|---:|---:|\n",
            self.episodes, self.departures
        );
        for (model, s) in &self.overall {
            out.push_str(&format!(
                "| {} | {} | {} | {} | {} | {} | {} | {} |\n",
                model.as_str(),
                s.material,
                cell(s.median_error, false),
                ratio(s.median_error, blind),
                ratio(s.median_error, arx),
                cell(s.sign_accuracy, true),
                cell(s.interval_coverage, true),
                cell(s.median_gain, false)
            ));
        }
        if let Some(w) = self.overall.get(&EffectModel::Loopcast).and_then(|s| s.widening_to_80) {
            out.push_str(&format!(
                "\nloopcast's effect intervals would cover 80 % of the steps widened on each side by {} × \
                 the predicted effect (`effect_widening` {}).\n",
                if w.is_finite() { format!("{w:.2}") } else { "∞".into() },
                if w.is_finite() {
                    "plus this, at least 0"
                } else {
                    "cannot reach it: effects predicted at zero"
                }
            ));
        }
        for (title, column, groups, with_gain) in [
            (
                "By kind of departure (median effect error / sign right):",
                "departure",
                &self.by_variant,
                false,
            ),
            (
                "By target channel (median effect error / sign right / median gain, the predicted mean \
                 effect over the true one):",
                "channel",
                &self.by_channel,
                true,
            ),
        ] {
            out.push_str(&format!("\n{title}\n\n| {column} |"));
            let models: Vec<&EffectModel> = groups.keys().collect();
            for model in &models {
                out.push_str(&format!(" {} |", model.as_str()));
            }
            out.push_str(&format!("\n|---|{}\n", "---:|".repeat(models.len())));
            let mut names: Vec<&String> = groups.values().flat_map(|v| v.keys()).collect();
            names.sort();
            names.dedup();
            for name in names {
                out.push_str(&format!("| {name} |"));
                for model in &models {
                    out.push_str(&match groups[*model].get(name) {
                        Some(s) => {
                            let gain = if with_gain {
                                format!(" / {}", cell(s.median_gain, false))
                            } else {
                                String::new()
                            };
                            format!(
                                " {} / {}{gain} (n = {}) |",
                                cell(s.median_error, false),
                                cell(s.sign_accuracy, true),
                                s.material
                            )
                        }
                        None => " – |".into(),
                    });
                }
                out.push('\n');
            }
        }
        out
    }
}

/// Episodes per what-if call.
const EPISODES_PER_CALL: usize = 8;
/// Coefficient draws of ARX's effect intervals.
const ARX_DRAWS: usize = 64;
/// Redrawn futures the oracle plays every plan in.
pub const ORACLE_DRAWS: usize = 32;

/// A what-if plan: future values and their known mask, `[B, C, H]`.
pub(crate) type PlanArrays = (Vec<f32>, Vec<bool>);

/// One episode's inputs on the model's channel order: `[C, L]` context and, per plan,
/// `[C, H]` futures with the actions and covariates known and the targets not.
struct EpisodeArrays {
    values: Vec<f32>,
    observed: Vec<bool>,
    plans: Vec<PlanArrays>,
}

fn episode_arrays(history: &RegularSeries, futures: &[&RegularSeries], blind: bool) -> EpisodeArrays {
    let zeroed = |role: Role| blind && role == Role::Action;
    let mut values = Vec::new();
    let mut observed = Vec::new();
    for channel in &history.channels {
        let zero = zeroed(channel.spec.role);
        values.extend(channel.values.iter().map(|v| if zero { 0.0 } else { *v as f32 }));
        observed.extend(&channel.observed);
    }
    let plans = futures
        .iter()
        .map(|future| {
            let mut values = Vec::new();
            let mut known = Vec::new();
            for channel in &future.channels {
                let (target, zero) = (channel.spec.role == Role::Target, zeroed(channel.spec.role));
                values.extend(channel.values.iter().map(|v| if target || zero { 0.0 } else { *v as f32 }));
                known.extend(channel.observed.iter().map(|o| *o && !target));
            }
            (values, known)
        })
        .collect();
    EpisodeArrays { values, observed, plans }
}

/// The model batch of several episodes and their plans, plan `j` of every episode forming
/// the `j`-th what-if plan.
pub(crate) fn whatif_inputs(
    histories: &[&RegularSeries],
    futures: &[Vec<&RegularSeries>],
    blind: bool,
) -> Result<(ModelBatch, Vec<PlanArrays>), EvalError> {
    let first = histories.first().ok_or_else(|| EvalError::Config("no episode to score".into()))?;
    let roles: Vec<Role> = first.channels.iter().map(|c| c.spec.role).collect();
    let (context, horizon) = (first.len(), futures[0][0].len());
    let k = futures[0].len();
    let mut values = Vec::new();
    let mut observed = Vec::new();
    let mut plans = vec![(Vec::new(), Vec::new()); k];
    for (history, futures) in histories.iter().zip(futures) {
        let arrays = episode_arrays(history, futures, blind);
        values.extend(arrays.values);
        observed.extend(arrays.observed);
        for (plan, (future, known)) in plans.iter_mut().zip(arrays.plans) {
            plan.0.extend(future);
            plan.1.extend(known);
        }
    }
    let (future, known) = plans[0].clone();
    let batch = ModelBatch::new(roles, histories.len(), context, horizon, values, observed, future, known)?
        .with_seasons(histories.iter().map(|h| h.frequency.season()).collect())?
        .find_seasons();
    Ok((batch, plans))
}

/// A channel's values with `NaN` where unobserved.
pub fn observed_values(series: &RegularSeries, channel: usize) -> Vec<f64> {
    let channel = &series.channels[channel];
    channel.values.iter().zip(&channel.observed).map(|(v, o)| if *o { *v } else { f64::NAN }).collect()
}

/// Gaps filled with the previous observed value (leading gaps with the first one), so
/// the series keeps its length and stays aligned with the actions.
fn forward_filled(values: &[f64]) -> Option<Vec<f64>> {
    let mut last = *values.iter().find(|v| v.is_finite())?;
    Some(
        values
            .iter()
            .map(|v| {
                if v.is_finite() {
                    last = *v;
                }
                last
            })
            .collect(),
    )
}

fn variant_name(variant: Variant) -> String {
    format!("{variant:?}")
}

/// Scores the effects of every departing plan of `episodes` with each of `models`
/// (loopcast and the action-blind ablation need `model`); `progress` hears how many
/// episodes are done and returns `false` to stop the run ([`EvalError::Stopped`]).
pub fn evaluate_effects(
    model: Option<&LoopedWorldModel>,
    episodes: &[Episode],
    models: &[EffectModel],
    options: &ForecastOptions,
    progress: &mut dyn FnMut(usize) -> bool,
) -> Result<CounterfactualReport, EvalError> {
    let mut tallies: BTreeMap<EffectModel, EffectTally> = BTreeMap::new();
    let mut by_variant: BTreeMap<EffectModel, BTreeMap<String, EffectTally>> = BTreeMap::new();
    let mut by_channel: BTreeMap<EffectModel, BTreeMap<String, EffectTally>> = BTreeMap::new();
    let mut rows = Vec::new();
    let mut record =
        |model: EffectModel, episode: &Episode, plan: usize, channel: usize, score: EffectScore| {
            tallies.entry(model).or_default().push(score.clone());
            let variant = variant_name(episode.plans[plan].0);
            by_variant.entry(model).or_default().entry(variant.clone()).or_default().push(score.clone());
            let channel = episode.history.channels[channel].spec.name.clone();
            by_channel.entry(model).or_default().entry(channel.clone()).or_default().push(score.clone());
            rows.push(EffectRow {
                seed: episode.seed,
                plan,
                variant,
                channel,
                model,
                error: score.error,
                sign_right: score.sign_right,
                coverage_80: score.covered.map(|(inside, steps)| inside as f64 / steps.max(1) as f64),
                true_mean: score.true_mean,
                predicted_mean: score.predicted_mean,
            });
        };
    for (done, chunk) in episodes.chunks(EPISODES_PER_CALL).enumerate() {
        if !progress(done * EPISODES_PER_CALL) {
            return Err(EvalError::Stopped);
        }
        for &effect_model in models {
            let blind = match effect_model {
                EffectModel::Arx | EffectModel::Oracle => {
                    for episode in chunk {
                        let scores = match effect_model {
                            EffectModel::Arx => arx_effects(episode),
                            _ => oracle_effects(episode)?,
                        };
                        for (plan, channel, score) in scores {
                            record(effect_model, episode, plan, channel, score);
                        }
                    }
                    continue;
                }
                EffectModel::Loopcast => false,
                EffectModel::ActionBlind => true,
            };
            let model =
                model.ok_or_else(|| EvalError::Config(format!("{} needs a model", effect_model.as_str())))?;
            let histories: Vec<&RegularSeries> = chunk.iter().map(|e| &e.history).collect();
            let futures: Vec<Vec<&RegularSeries>> =
                chunk.iter().map(|e| e.futures.iter().collect()).collect();
            let (batch, plans) = whatif_inputs(&histories, &futures, blind)?;
            let forecasts = model.whatif(&batch, &plans, options)?;
            let levels = &forecasts[0].levels;
            let interval: Vec<usize> =
                (0..levels.len()).filter(|q| (0.1 - 1e-9..=0.9 + 1e-9).contains(&levels[*q])).collect();
            let median = levels.iter().position(|l| (l - 0.5).abs() < 1e-9);
            let (Some(median), false) = (median, interval.is_empty()) else {
                return Err(EvalError::Config(
                    "effect scoring needs the model's levels 0.1, 0.5 and 0.9".into(),
                ));
            };
            for (b, episode) in chunk.iter().enumerate() {
                for t in 0..batch.targets() {
                    let context = observed_values(&episode.history, t);
                    let base = observed_values(&episode.futures[0], t);
                    let steps = batch.horizon();
                    let paired = |plan: usize, q: usize| -> Vec<f64> {
                        (0..steps)
                            .map(|h| {
                                f64::from(forecasts[plan].value(b, t, h, q))
                                    - f64::from(forecasts[0].value(b, t, h, q))
                            })
                            .collect()
                    };
                    for plan in 1..episode.futures.len() {
                        let twin = observed_values(&episode.futures[plan], t);
                        let predicted = paired(plan, median);
                        let differences: Vec<Vec<f64>> = interval.iter().map(|q| paired(plan, *q)).collect();
                        // The level-by-level differences, widened by the model's effect
                        // intervals (`ModelConfig::effect_widening`, as the planner widens).
                        let widening = model.config().effect_widening;
                        let lower: Vec<f64> = (0..steps)
                            .map(|h| {
                                differences.iter().map(|d| d[h]).fold(f64::INFINITY, f64::min)
                                    - widening * predicted[h].abs()
                            })
                            .collect();
                        let upper: Vec<f64> = (0..steps)
                            .map(|h| {
                                differences.iter().map(|d| d[h]).fold(f64::NEG_INFINITY, f64::max)
                                    + widening * predicted[h].abs()
                            })
                            .collect();
                        if let Some(score) =
                            score_effect(&context, &base, &twin, &predicted, Some((&lower, &upper)))
                        {
                            record(effect_model, episode, plan, t, score);
                        }
                    }
                }
            }
        }
    }
    let _ = progress(episodes.len());
    let departures = episodes.iter().map(|e| e.futures.len().saturating_sub(1)).sum();
    Ok(CounterfactualReport {
        episodes: episodes.len(),
        departures,
        overall: tallies.iter().map(|(m, t)| (*m, t.summary())).collect(),
        by_variant: summaries(&by_variant),
        by_channel: summaries(&by_channel),
        rows,
    })
}

/// The summaries of grouped tallies.
fn summaries(
    groups: &BTreeMap<EffectModel, BTreeMap<String, EffectTally>>,
) -> BTreeMap<EffectModel, BTreeMap<String, EffectSummary>> {
    groups
        .iter()
        .map(|(m, tallies)| (*m, tallies.iter().map(|(name, t)| (name.clone(), t.summary())).collect()))
        .collect()
}

/// ARX's scored effects of one episode: `(plan, target channel, score)`.
fn arx_effects(episode: &Episode) -> Vec<(usize, usize, EffectScore)> {
    let channels = &episode.history.channels;
    let targets = channels.iter().take_while(|c| c.spec.role == Role::Target).count();
    let actions: Vec<usize> =
        (0..channels.len()).filter(|c| channels[*c].spec.role == Role::Action).collect();
    let past: Vec<Vec<f64>> = actions.iter().map(|a| channels[*a].values.clone()).collect();
    let plan_actions: Vec<Vec<Vec<f64>>> = episode
        .futures
        .iter()
        .map(|f| actions.iter().map(|a| f.channels[*a].values.clone()).collect())
        .collect();
    let spec = ArxSpec { season: Some(TWIN_SEASON), ..ArxSpec::default() };
    let mut out = Vec::new();
    for t in 0..targets {
        let context = observed_values(&episode.history, t);
        let Some(filled) = forward_filled(&context) else { continue };
        let base = observed_values(&episode.futures[0], t);
        let fitted = Arx::fit(&filled, &past, spec);
        for plan in 1..episode.futures.len() {
            let twin = observed_values(&episode.futures[plan], t);
            // No fit (too short a history): ARX predicts no effect, with no interval.
            let effect = fitted.as_ref().map(|arx| {
                arx.effect(
                    &filled,
                    &past,
                    &plan_actions[0],
                    &plan_actions[plan],
                    ARX_DRAWS,
                    episode.seed ^ plan as u64,
                )
            });
            let zero = vec![0.0; base.len()];
            let (predicted, interval) = match &effect {
                Some(e) => (&e.point, Some((e.lower.as_slice(), e.upper.as_slice()))),
                None => (&zero, None),
            };
            if let Some(score) = score_effect(&context, &base, &twin, predicted, interval) {
                out.push((plan, t, score));
            }
        }
    }
    out
}

/// The oracle's scored effects of one episode: `(plan, target channel, score)`. Per step,
/// the predicted effect is the median over [`ORACLE_DRAWS`] redrawn futures of the plan's
/// difference from the base plan, and the 80 % interval spans their 10th to 90th
/// percentiles.
fn oracle_effects(episode: &Episode) -> Result<Vec<(usize, usize, EffectScore)>, EvalError> {
    let draws = episode.redrawn_futures(ORACLE_DRAWS).map_err(|e| EvalError::Config(e.to_string()))?;
    let targets = episode.history.channels.iter().take_while(|c| c.spec.role == Role::Target).count();
    let mut out = Vec::new();
    for t in 0..targets {
        let context = observed_values(&episode.history, t);
        let base = observed_values(&episode.futures[0], t);
        let drawn_bases: Vec<Vec<f64>> =
            draws.iter().map(|futures| observed_values(&futures[0], t)).collect();
        for plan in 1..episode.futures.len() {
            let twin = observed_values(&episode.futures[plan], t);
            let differences: Vec<Vec<f64>> = draws
                .iter()
                .zip(&drawn_bases)
                .map(|(futures, base)| {
                    let twin = observed_values(&futures[plan], t);
                    base.iter().zip(&twin).map(|(b, p)| p - b).collect()
                })
                .collect();
            let at = |level: f64| -> Vec<f64> {
                (0..base.len())
                    .map(|h| {
                        let mut seen: Vec<f64> =
                            differences.iter().map(|d| d[h]).filter(|d| d.is_finite()).collect();
                        quantile(&mut seen, level)
                    })
                    .collect()
            };
            let (predicted, lower, upper) = (at(0.5), at(0.1), at(0.9));
            if let Some(score) = score_effect(&context, &base, &twin, &predicted, Some((&lower, &upper))) {
                out.push((plan, t, score));
            }
        }
    }
    Ok(out)
}

/// The `level` quantile of `values` (linear between order statistics; 0 when empty).
fn quantile(values: &mut [f64], level: f64) -> f64 {
    if values.is_empty() {
        return 0.0;
    }
    values.sort_by(f64::total_cmp);
    empirical_quantile(values, level)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn effects_are_scored_against_the_truth_and_a_zero_guess_has_no_sign() {
        let context = [0.0, 2.0, 0.0, 2.0]; // standard deviation 1
        let base = [10.0, 10.0];
        let twin = [12.0, 14.0]; // true effect +2, +4
        let score =
            score_effect(&context, &base, &twin, &[1.0, 3.0], Some((&[0.0, 3.5], &[2.0, 5.0]))).unwrap();
        assert_eq!(score.error, 2.0 / 6.0);
        assert!(score.sign_right);
        assert_eq!(score.covered, Some((2, 2)));
        assert_eq!((score.true_mean, score.predicted_mean), (3.0, 2.0));
        let zero =
            score_effect(&context, &base, &twin, &[0.0, 0.0], Some((&[0.0, 0.0], &[0.0, 0.0]))).unwrap();
        assert_eq!(zero.error, 1.0);
        assert!(!zero.sign_right, "a zero predicted effect is not a right sign");
        assert_eq!(zero.covered, Some((0, 2)));
        // How far each step lies outside its interval, in predicted effects: the first on
        // its edge, the second half a unit inside (of 3); none of a zero prediction helps.
        assert_eq!(score.excess.len(), 2);
        assert!(score.excess[0].abs() < 1e-12 && (score.excess[1] + 0.5 / 3.0).abs() < 1e-12);
        assert_eq!(zero.excess, vec![f64::INFINITY; 2]);
        let mut tally = EffectTally::default();
        tally.push(score.clone());
        // The 80 % quantile of −1/6 and 0: the intervals could narrow by 1/30.
        assert!((tally.summary().widening_to_80.unwrap() + 1.0 / 30.0).abs() < 1e-12);
        tally.push(zero);
        assert_eq!(tally.summary().widening_to_80, Some(f64::INFINITY));
        assert_eq!(EffectTally::default().summary().widening_to_80, None);
        // An immaterial effect (under a tenth of the context's spread) is not scored, and
        // unobserved steps are skipped.
        assert!(score_effect(&context, &base, &[10.01, 10.0], &[0.0, 0.0], None).is_none());
        let gap = score_effect(&context, &[10.0, f64::NAN], &twin, &[2.0, 0.0], None).unwrap();
        assert_eq!((gap.error, gap.covered), (0.0, None));
    }

    #[test]
    fn the_tally_takes_the_median_and_the_shares() {
        let mut tally = EffectTally::default();
        for (error, sign_right) in [(0.2, true), (0.8, false), (0.4, true), (1.0, true)] {
            let (true_mean, predicted_mean) = (1.0, 1.0 - error);
            let excess = Vec::new();
            tally.push(EffectScore {
                error,
                sign_right,
                covered: Some((1, 4)),
                excess,
                true_mean,
                predicted_mean,
            });
        }
        let summary = tally.summary();
        assert_eq!(summary.material, 4);
        assert!((summary.median_error.unwrap() - 0.6).abs() < 1e-12);
        // Gains 0.8, 0.2, 0.6 and 0: their median is 0.4.
        assert!((summary.median_gain.unwrap() - 0.4).abs() < 1e-12);
        // An effect whose true mean is zero counts everywhere but in the gains.
        tally.push(EffectScore {
            error: 0.5,
            sign_right: false,
            covered: None,
            excess: Vec::new(),
            true_mean: 0.0,
            predicted_mean: 1.0,
        });
        assert_eq!(tally.summary().material, 5);
        assert!((tally.summary().median_gain.unwrap() - 0.4).abs() < 1e-12);
        assert_eq!(summary.sign_accuracy, Some(0.75));
        assert_eq!(summary.interval_coverage, Some(0.25));
        assert_eq!(EffectTally::default().summary().median_error, None);
    }

    #[test]
    fn quantiles_interpolate_between_order_statistics() {
        assert_eq!(quantile(&mut [3.0, 1.0, 2.0], 0.5), 2.0);
        assert_eq!(quantile(&mut [4.0, 0.0], 0.25), 1.0);
        assert_eq!(quantile(&mut [], 0.9), 0.0);
    }
}
