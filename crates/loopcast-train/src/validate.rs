//! Scoring a model on held-out simulator windows: accuracy against seasonal naive,
//! calibration, loops used, and counterfactual effects on twin pairs.

use loopcast_core::{Frequency, Role};
use loopcast_eval::counterfactual::{EffectTally, score_effect};
use loopcast_eval::{baselines, metrics};
use loopcast_model::{Forecast, ForecastOptions, LoopedWorldModel, ModelBatch};
use serde::{Deserialize, Serialize};

use crate::data::{SreLayout, prior_windows, sre_windows};
use crate::{KeepBy, TrainError};

/// Held-out windows, built once from a seed range and scored many times.
#[derive(Debug, Clone)]
pub struct ValidationSet {
    /// Twin pairs of SRE windows (5-minute steps, daily season), every row with its plan:
    /// what the twin effects are scored on.
    sre: Vec<ModelBatch>,
    /// The same windows as forecasts meet them in production, what accuracy and interval
    /// coverage are scored on ([`as_forecast`]).
    sre_as_forecast: Vec<ModelBatch>,
    /// Prior windows (hourly steps, daily season).
    prior: Vec<ModelBatch>,
}

/// Windows per forecast call.
const CHUNK: usize = 16;
/// Channels of every validation prior window.
const PRIOR_CHANNELS: usize = 2;
const SRE_SEASON: usize = 288;
const PRIOR_SEASON: usize = 24;

impl ValidationSet {
    /// `windows` SRE episodes (each a twin pair) and `windows` prior series with seeds
    /// `first_seed..first_seed + windows`, every one with the same context and horizon.
    pub fn new(
        first_seed: u64,
        windows: usize,
        context: usize,
        horizon: usize,
        layout: &SreLayout,
    ) -> Result<Self, TrainError> {
        let seeds: Vec<u64> = (first_seed..first_seed + windows as u64).collect();
        let mut sre = Vec::new();
        let mut prior = Vec::new();
        for chunk in seeds.chunks(CHUNK / 2) {
            sre.push(sre_windows(chunk, context, horizon, Frequency::minutes(5), layout)?.0);
        }
        for chunk in seeds.chunks(CHUNK) {
            prior.push(prior_windows(chunk, context, horizon, PRIOR_CHANNELS, Some(Frequency::hours(1)))?);
        }
        let sre_as_forecast = sre.iter().map(as_forecast).collect::<Result<_, _>>()?;
        Ok(Self { sre, sre_as_forecast, prior })
    }
}

/// Twin windows as a forecast meets them in production: the operator's own row of each
/// pair (even rows) without the future of its action channels — no one knows in advance
/// what an autoscaler will do, and its decisions follow the very load being forecast, so
/// knowing them leaks that load — and the departing row with its plan, a planned
/// intervention as a what-if or a scheduled change gives it. Covariates (calendars) keep
/// their known future.
fn as_forecast(batch: &ModelBatch) -> Result<ModelBatch, TrainError> {
    let (future, known) = batch.future_arrays();
    let (c, h) = (batch.roles().len(), batch.horizon());
    let mut known = known.to_vec();
    for (i, cell) in known.iter_mut().enumerate() {
        let (row, channel) = (i / (c * h), i / h % c);
        if row % 2 == 0 && batch.roles()[channel] == Role::Action {
            *cell = false;
        }
    }
    batch.with_future(future.to_vec(), known).map_err(|e| TrainError::Data(e.to_string()))
}

/// What a model scored on a [`ValidationSet`]: accuracy and coverage on its windows as
/// forecasts meet them in production (the operator's own rows without their plan, the
/// departing rows with theirs), twin effects on both rows of each pair under their plans.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ValidationReport {
    /// Series (window × target channel) scored.
    pub series: usize,
    /// Geometric mean over series of MASE relative to seasonal naive's (median forecast).
    pub relative_mase: f64,
    /// The same with every SRE row's plan known, the operator's own included (the
    /// protocol of the figures before 2026-12-06, which lets a model read the load from
    /// the autoscaler's future).
    #[serde(default)]
    pub relative_mase_with_plans: f64,
    /// Geometric mean over series of weighted quantile loss (levels 0.1–0.9) relative to
    /// seasonal naive's.
    pub relative_wql: f64,
    /// Geometric mean over series of the weighted quantile loss (levels 0.1–0.9) with
    /// the adaptive exit.
    pub wql: f64,
    /// Geometric mean over series of the adaptive exit's weighted quantile loss relative
    /// to looping every patch `max_loops` times (1.02 = 2 % worse).
    pub wql_vs_max_loops: f64,
    /// Share of held-out values inside the 80 % interval (levels 0.1 and 0.9).
    pub coverage_80: f64,
    /// Mean loops per patch with the adaptive exit.
    pub mean_loops: f64,
    /// `mean_loops` over the model's `max_loops`.
    pub loops_share: f64,
    /// Median over material twin effects of `Σ|predicted − true effect| / Σ|true effect|`.
    pub effect_error: f64,
    /// Share of material twin effects whose predicted sign is right (a zero prediction
    /// counts as wrong).
    pub effect_sign_accuracy: f64,
    /// Twin effects (pair × target channel) that were material (mean |effect| at least a
    /// tenth of the channel's context standard deviation).
    pub material_effects: usize,
    /// The `effect_widening` at which 80 % of the material twin effects' steps lie inside
    /// their effect intervals (the paired level-by-level differences 0.1–0.9, widened by
    /// that times the median's difference), at least 0 and at most
    /// [`MAX_EFFECT_WIDENING`] (effects predicted at zero where they are not); `None`
    /// without a material effect. Fitted into the model by `validation.calibrate`.
    #[serde(default)]
    pub effect_widening_80: Option<f64>,
    /// Share of those steps inside the effect intervals as the model is (`None` without a
    /// material effect).
    #[serde(default)]
    pub effect_interval_coverage: Option<f64>,
}

/// The widest effect intervals a calibration writes: 1,000 times the predicted effect,
/// so that no schedule departing from the operator's plan is vouched for.
pub const MAX_EFFECT_WIDENING: f64 = 1000.0;

impl ValidationReport {
    /// The score `keep_best` ranks this validation by (lower is better).
    pub fn selection_score(&self, by: KeepBy) -> f64 {
        match by {
            KeepBy::Wql => self.relative_wql,
            KeepBy::WqlAndEffect => {
                let effect = if self.effect_error.is_finite() { self.effect_error } else { 1.0 };
                self.relative_wql + effect
            }
        }
    }
}

/// Running sums of the report.
#[derive(Default)]
struct Tally {
    relative_mase: Vec<f64>,
    relative_mase_with_plans: Vec<f64>,
    relative_wql: Vec<f64>,
    wql: Vec<f64>,
    wql_max_loops: Vec<f64>,
    covered: f64,
    observed: f64,
    loops: f64,
    patches: f64,
    effects: EffectTally,
}

/// Scores `model` on `set`.
pub fn evaluate(model: &LoopedWorldModel, set: &ValidationSet) -> Result<ValidationReport, TrainError> {
    evaluate_with(model, set, &ForecastOptions::default())
}

/// Scores `model` on `set`, every forecast made with `options` (the run at the most loops
/// with its exit threshold above 1).
pub fn evaluate_with(
    model: &LoopedWorldModel,
    set: &ValidationSet,
    options: &ForecastOptions,
) -> Result<ValidationReport, TrainError> {
    let levels = &model.config().quantiles;
    let (low, median, high) = interval_levels(model)?;
    let interval: Vec<usize> =
        (0..levels.len()).filter(|i| (0.1 - 1e-9..=0.9 + 1e-9).contains(&levels[*i])).collect();
    let fail = |e: loopcast_model::ModelError| TrainError::Data(e.to_string());
    let mut tally = Tally::default();
    let batches = set
        .sre_as_forecast
        .iter()
        .zip(set.sre.iter().map(Some))
        .map(|(b, planned)| (b, planned, SRE_SEASON))
        .chain(set.prior.iter().map(|b| (b, None, PRIOR_SEASON)));
    for (batch, planned, season) in batches {
        let adaptive = model.forecast(batch, options).map_err(fail)?;
        let full = ForecastOptions { exit_threshold: Some(2.0), ..options.clone() };
        let at_max = model.forecast(batch, &full).map_err(fail)?;
        // Twin effects compare both rows of a pair under their own plans.
        let planned = match planned {
            Some(planned) => Some(model.forecast(planned, options).map_err(fail)?),
            None => None,
        };
        tally.loops += adaptive.loops.iter().flatten().map(|l| f64::from(*l)).sum::<f64>();
        tally.patches += adaptive.loops.iter().map(Vec::len).sum::<usize>() as f64;
        let h = batch.horizon();
        let quantiles = |f: &Forecast, b: usize, t: usize, picks: &[usize]| -> Vec<Vec<f64>> {
            (0..h).map(|s| picks.iter().map(|q| f64::from(f.value(b, t, s, *q))).collect()).collect()
        };
        let interval_levels: Vec<f64> = interval.iter().map(|i| levels[*i]).collect();
        for b in 0..batch.batch() {
            for t in 0..batch.targets() {
                let (past, truth) = (context_of(batch, b, t), truth_of(batch, b, t));
                let naive = baselines::seasonal_naive(&past, season, h);
                let model_q = quantiles(&adaptive, b, t, &interval);
                let max_q = quantiles(&at_max, b, t, &interval);
                let naive_q: Vec<Vec<f64>> = naive.iter().map(|v| vec![*v; interval.len()]).collect();
                let wql = |values: &[Vec<f64>]| {
                    metrics::weighted_quantile_loss(
                        &truth,
                        metrics::Quantiles { levels: &interval_levels, values },
                    )
                };
                let point: Vec<f64> = (0..h).map(|s| f64::from(adaptive.value(b, t, s, median))).collect();
                let mase = metrics::mase(&past, season, &truth, &point);
                let naive_mase = metrics::mase(&past, season, &truth, &naive);
                if let (Some(m), Some(n)) = (mase, naive_mase) {
                    tally.relative_mase.push(m / n);
                }
                let with_plans = planned.as_ref().unwrap_or(&adaptive);
                let point: Vec<f64> = (0..h).map(|s| f64::from(with_plans.value(b, t, s, median))).collect();
                if let (Some(m), Some(n)) = (metrics::mase(&past, season, &truth, &point), naive_mase) {
                    tally.relative_mase_with_plans.push(m / n);
                }
                if let (Some(m), Some(n), Some(x)) = (wql(&model_q), wql(&naive_q), wql(&max_q)) {
                    tally.relative_wql.push(m / n);
                    tally.wql.push(m);
                    tally.wql_max_loops.push(x);
                }
                let lower: Vec<f64> = (0..h).map(|s| f64::from(adaptive.value(b, t, s, low))).collect();
                let upper: Vec<f64> = (0..h).map(|s| f64::from(adaptive.value(b, t, s, high))).collect();
                let seen = truth.iter().filter(|v| v.is_finite()).count() as f64;
                if let Some(share) = metrics::coverage(&truth, &lower, &upper) {
                    tally.covered += share * seen;
                    tally.observed += seen;
                }
                if let Some(planned) = planned.as_ref().filter(|_| b % 2 == 1) {
                    let base_truth = truth_of(batch, b - 1, t);
                    let (twin_q, base_q) =
                        (quantiles(planned, b, t, &interval), quantiles(planned, b - 1, t, &interval));
                    let widening = model.config().effect_widening;
                    let (mut lower, mut upper, mut predicted) = (Vec::new(), Vec::new(), Vec::new());
                    for s in 0..h {
                        let paired = twin_q[s].iter().zip(&base_q[s]).map(|(q, base)| q - base);
                        let effect = f64::from(planned.value(b, t, s, median))
                            - f64::from(planned.value(b - 1, t, s, median));
                        lower.push(paired.clone().fold(f64::INFINITY, f64::min) - widening * effect.abs());
                        upper.push(paired.fold(f64::NEG_INFINITY, f64::max) + widening * effect.abs());
                        predicted.push(effect);
                    }
                    if let Some(score) =
                        score_effect(&past, &base_truth, &truth, &predicted, Some((&lower, &upper)))
                    {
                        tally.effects.push(score);
                    }
                }
            }
        }
    }
    let effects = tally.effects.summary();
    let mean_loops = tally.loops / tally.patches.max(1.0);
    Ok(ValidationReport {
        series: tally.wql.len(),
        relative_mase: metrics::geometric_mean(tally.relative_mase.iter().copied()).unwrap_or(f64::NAN),
        relative_mase_with_plans: metrics::geometric_mean(tally.relative_mase_with_plans.iter().copied())
            .unwrap_or(f64::NAN),
        relative_wql: metrics::geometric_mean(tally.relative_wql.iter().copied()).unwrap_or(f64::NAN),
        wql: metrics::geometric_mean(tally.wql.iter().copied()).unwrap_or(f64::NAN),
        wql_vs_max_loops: metrics::geometric_mean(
            tally.wql.iter().zip(&tally.wql_max_loops).map(|(adaptive, full)| adaptive / full),
        )
        .unwrap_or(f64::NAN),
        coverage_80: tally.covered / tally.observed.max(1.0),
        mean_loops,
        loops_share: mean_loops / model.config().max_loops as f64,
        effect_error: effects.median_error.unwrap_or(f64::NAN),
        effect_sign_accuracy: effects.sign_accuracy.unwrap_or(f64::NAN),
        material_effects: effects.material,
        effect_interval_coverage: effects.interval_coverage,
        effect_widening_80: effects
            .widening_to_80
            .map(|extra| (model.config().effect_widening + extra).clamp(0.0, MAX_EFFECT_WIDENING)),
    })
}

/// The `effect_widening` at which a model's effect intervals cover 80 % of the steps of
/// the material twin effects it was validated on ([`ValidationReport::effect_widening_80`]);
/// an error when no twin effect was material.
pub fn fitted_effect_widening(report: &ValidationReport) -> Result<f64, TrainError> {
    report
        .effect_widening_80
        .ok_or_else(|| TrainError::Data("no material twin effect to fit the effect intervals on".into()))
}

/// The factor on `model`'s `interval_scale` at which its 80 % intervals cover `coverage`
/// of `set`'s held-out values: every value needs its distance from the median over the
/// interval's half-width on its side, and the factor is that need's `coverage` quantile
/// (clamped to 0.05–20). The median, and so the loops, do not move.
pub fn fitted_interval_scale(
    model: &LoopedWorldModel,
    set: &ValidationSet,
    coverage: f64,
) -> Result<f64, TrainError> {
    let (low, median, high) = interval_levels(model)?;
    let mut needs = Vec::new();
    for batch in set.sre_as_forecast.iter().chain(&set.prior) {
        let forecast = model
            .forecast(batch, &ForecastOptions::default())
            .map_err(|e| TrainError::Data(e.to_string()))?;
        for b in 0..batch.batch() {
            for t in 0..batch.targets() {
                for (s, truth) in truth_of(batch, b, t).into_iter().enumerate() {
                    if !truth.is_finite() {
                        continue;
                    }
                    let at = |q: usize| f64::from(forecast.value(b, t, s, q));
                    let centre = at(median);
                    let (distance, half_width) = if truth >= centre {
                        (truth - centre, at(high) - centre)
                    } else {
                        (centre - truth, centre - at(low))
                    };
                    needs.push(match (distance > 0.0, half_width > 0.0) {
                        (false, _) => 0.0,
                        (true, true) => distance / half_width,
                        (true, false) => f64::INFINITY,
                    });
                }
            }
        }
    }
    if needs.is_empty() {
        return Err(TrainError::Data("calibration found no held-out values".into()));
    }
    let rank = ((coverage * needs.len() as f64).ceil() as usize).clamp(1, needs.len()) - 1;
    let (_, need, _) = needs.select_nth_unstable_by(rank, f64::total_cmp);
    Ok(need.clamp(0.05, 20.0))
}

/// The indices of `model`'s quantile levels 0.1, 0.5 and 0.9 (the 80 % interval and the
/// median), which validation and calibration both need.
fn interval_levels(model: &LoopedWorldModel) -> Result<(usize, usize, usize), TrainError> {
    let levels = &model.config().quantiles;
    let index = |level: f64| levels.iter().position(|l| (l - level).abs() < 1e-9);
    match (index(0.1), index(0.5), index(0.9)) {
        (Some(low), Some(median), Some(high)) => Ok((low, median, high)),
        _ => Err(TrainError::Data(
            "validation needs the model to have quantile levels 0.1, 0.5 and 0.9".into(),
        )),
    }
}

/// The context of channel `t` in window `b`, `NaN` where unobserved.
fn context_of(batch: &ModelBatch, b: usize, t: usize) -> Vec<f64> {
    let (c, l) = (batch.roles().len(), batch.context());
    let (values, observed) = batch.context_arrays();
    let r = b * c + t;
    (0..l).map(|i| if observed[r * l + i] { f64::from(values[r * l + i]) } else { f64::NAN }).collect()
}

/// The held-out future of target `t` in window `b`, `NaN` where unobserved.
fn truth_of(batch: &ModelBatch, b: usize, t: usize) -> Vec<f64> {
    let (c, h) = (batch.roles().len(), batch.horizon());
    let (future, known) = batch.future_arrays();
    let r = b * c + t;
    (0..h).map(|i| if known[r * h + i] { f64::from(future[r * h + i]) } else { f64::NAN }).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// As forecasts meet them, the operator's rows lose their actions' future and keep
    /// their covariates'; the departing rows keep their whole plan.
    #[test]
    fn the_operators_rows_are_forecast_without_their_plan() {
        let roles = vec![Role::Target, Role::Action, Role::Covariate];
        let (rows, h) = (4, 3);
        let cells = rows * roles.len() * h;
        let future: Vec<f32> = (0..cells).map(|i| i as f32).collect();
        let batch = ModelBatch::new(
            roles,
            rows,
            2,
            h,
            vec![1.0; rows * 3 * 2],
            vec![true; rows * 3 * 2],
            future.clone(),
            vec![true; cells],
        )
        .unwrap();
        let forecast = as_forecast(&batch).unwrap();
        let (values, known) = forecast.future_arrays();
        assert_eq!(values, &future[..], "the values stay");
        for (i, known) in known.iter().enumerate() {
            let (row, channel) = (i / (3 * h), i / h % 3);
            assert_eq!(*known, !(row % 2 == 0 && channel == 1), "row {row} channel {channel}");
        }
    }
}
