//! Rolling-origin backtests: every model forecasts the same windows, and each forecast is
//! scored against the truth with the metrics of [`crate::metrics`].
//!
//! Windows come from `loopcast-data` ([`WindowBatch`], cut with
//! [`loopcast_data::Origins::Backtest`]); a [`Backtest`] takes them batch by batch, so a
//! file of any size is scored in constant memory besides the per-window results.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::str::FromStr;
use std::time::Instant;

use loopcast_core::Role;
use loopcast_data::WindowBatch;
use loopcast_model::{Forecast, ForecastOptions, LoopedWorldModel, ModelBatch, ModelError};
use serde::{Deserialize, Serialize};

use crate::baselines::{self, GaussianForecast};
use crate::metrics::{self, Quantiles};

/// A forecaster a backtest can run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ModelName {
    /// The looped world model.
    Loopcast,
    /// Seasonal naive (the reference every relative score divides by).
    Snaive,
    /// Naive (last value).
    Naive,
    /// Non-seasonal AutoETS (augurs).
    Ets,
    /// MSTL with an AutoETS trend (augurs).
    Mstl,
}

impl ModelName {
    /// Every model, in table order.
    pub const ALL: [ModelName; 5] = [Self::Loopcast, Self::Snaive, Self::Naive, Self::Ets, Self::Mstl];

    /// The name on the command line and in result files.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Loopcast => "loopcast",
            Self::Snaive => "snaive",
            Self::Naive => "naive",
            Self::Ets => "ets",
            Self::Mstl => "mstl",
        }
    }
}

impl fmt::Display for ModelName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for ModelName {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Self::ALL.into_iter().find(|m| m.as_str() == text).ok_or_else(|| {
            let known: Vec<&str> = Self::ALL.iter().map(|m| m.as_str()).collect();
            format!("unknown model `{text}` (known: {})", known.join(", "))
        })
    }
}

/// Why a backtest stopped.
#[derive(Debug, thiserror::Error)]
pub enum EvalError {
    /// The configuration cannot work.
    #[error("{0}")]
    Config(String),
    /// The loopcast model refused the windows.
    #[error("loopcast: {0}")]
    Model(#[from] ModelError),
    /// The caller asked the run to stop (its progress callback said so).
    #[error("stopped before the end")]
    Stopped,
}

/// How a backtest scores.
#[derive(Debug, Clone)]
pub struct BacktestConfig {
    /// Season length of MASE's scale and of seasonal naive.
    pub season: usize,
    /// Periods of MSTL (default: the season).
    pub mstl_periods: Vec<usize>,
    /// Models to run; seasonal naive is always run, as every relative score needs it.
    pub models: Vec<ModelName>,
    /// Loop options of the loopcast forecasts.
    pub forecast_options: ForecastOptions,
    /// How many (series, channel) pairs get their last window kept for a fan chart.
    pub chart_samples: usize,
    /// Target channels to score, by name (empty: every target). The others still reach
    /// the model as part of each window, as every action and covariate does.
    pub targets: Vec<String>,
    /// Whether loopcast is given the action channels' future (`false`: forecast as in
    /// production, where an operator's or autoscaler's coming decisions are unknown and,
    /// since they follow the load being forecast, would leak it). Their history is given
    /// either way, and covariates keep their known future.
    pub action_futures: bool,
}

/// Quantile levels of the weighted quantile loss and CRPS (0.1 … 0.9, as GIFT-Eval).
pub const SCORE_LEVELS: [f64; 9] = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9];
/// Levels kept for fan charts: the 98 % and 80 % bands and the median.
pub const CHART_LEVELS: [f64; 5] = [0.01, 0.1, 0.5, 0.9, 0.99];

/// One model's score on one window of one target channel of one series.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WindowScore {
    /// Series identifier.
    pub series: String,
    /// Target channel.
    pub channel: String,
    /// Window number within the series, from 0 (oldest).
    pub window: usize,
    /// First forecast timestamp (RFC 3339).
    pub origin: String,
    /// The model.
    pub model: ModelName,
    /// MASE of the median (`None`: zero scale or no truth).
    pub mase: Option<f64>,
    /// Weighted quantile loss over [`SCORE_LEVELS`].
    pub wql: Option<f64>,
    /// CRPS from [`SCORE_LEVELS`], in the data's units.
    pub crps: Option<f64>,
    /// Share of the truth inside the 80 % interval.
    pub coverage_80: Option<f64>,
    /// Mean loops per patch (loopcast only).
    pub mean_loops: Option<f64>,
    /// The seasonal period loopcast anchored on, in steps: the dataset's, or one found in
    /// the window's history (loopcast only).
    pub season: Option<usize>,
    /// The model failed on this window and naive's forecast stands in for it.
    pub fallback: bool,
}

/// A window kept for a fan chart: its recent history, truth and every model's forecast.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChartSample {
    /// Series identifier.
    pub series: String,
    /// Target channel.
    pub channel: String,
    /// First forecast timestamp (RFC 3339).
    pub origin: String,
    /// The context's last values (`NaN` where missing), oldest first.
    pub history: Vec<f64>,
    /// The truth over the horizon (`NaN` where missing).
    pub truth: Vec<f64>,
    /// Per model: one row of [`CHART_LEVELS`] quantiles per step.
    pub forecasts: BTreeMap<ModelName, Vec<Vec<f64>>>,
}

/// One model's figures over a whole backtest.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelSummary {
    /// The model.
    pub model: ModelName,
    /// Windows × target channels scored.
    pub instances: usize,
    /// Geometric mean over instances of MASE relative to seasonal naive's.
    pub relative_mase: Option<f64>,
    /// Geometric mean over instances of WQL relative to seasonal naive's.
    pub relative_wql: Option<f64>,
    /// Mean MASE.
    pub mase: Option<f64>,
    /// Mean weighted quantile loss.
    pub wql: Option<f64>,
    /// Share of all observed truth inside the 80 % interval.
    pub coverage_80: Option<f64>,
    /// Mean loops per patch (loopcast only).
    pub mean_loops: Option<f64>,
    /// Windows on which the model failed and naive stood in.
    pub fallbacks: usize,
    /// Wall time the model spent (fit and predict), in seconds.
    pub seconds: f64,
}

/// A running backtest: feed it window batches, then read the scores and summary.
#[derive(Debug)]
pub struct Backtest {
    config: BacktestConfig,
    scores: Vec<WindowScore>,
    samples: Vec<ChartSample>,
    seconds: BTreeMap<ModelName, f64>,
    windows_seen: HashMap<String, usize>,
    covered: BTreeMap<ModelName, (f64, f64)>,
}

/// One model's forecast of one (window, target) instance.
struct Prediction {
    /// One row of [`SCORE_LEVELS`] quantiles per step.
    score: Vec<Vec<f64>>,
    /// One row of [`CHART_LEVELS`] quantiles per step.
    chart: Vec<Vec<f64>>,
    mean_loops: Option<f64>,
    season: Option<usize>,
    fallback: bool,
}

impl Backtest {
    /// An empty backtest. Refuses a configuration without models or with season 0.
    pub fn new(mut config: BacktestConfig) -> Result<Self, EvalError> {
        if config.season == 0 {
            return Err(EvalError::Config("season must be at least 1".into()));
        }
        if config.mstl_periods.is_empty() {
            config.mstl_periods = vec![config.season];
        }
        if !config.models.contains(&ModelName::Snaive) {
            config.models.push(ModelName::Snaive);
        }
        config.models.sort();
        config.models.dedup();
        Ok(Self {
            config,
            scores: Vec::new(),
            samples: Vec::new(),
            seconds: BTreeMap::new(),
            windows_seen: HashMap::new(),
            covered: BTreeMap::new(),
        })
    }

    /// The models this backtest runs, in table order.
    pub fn models(&self) -> &[ModelName] {
        &self.config.models
    }

    /// Runs every model on `windows` and scores them. `model` is needed when the
    /// configuration includes loopcast.
    pub fn push(&mut self, model: Option<&LoopedWorldModel>, windows: &WindowBatch) -> Result<(), EvalError> {
        if windows.is_empty() {
            return Ok(());
        }
        let loopcast = if self.config.models.contains(&ModelName::Loopcast) {
            let model = model.ok_or_else(|| EvalError::Config("loopcast needs a model".into()))?;
            let started = Instant::now();
            let batch = if self.config.action_futures {
                model_batch(windows, self.config.season)?
            } else {
                model_batch(&without_action_futures(windows), self.config.season)?
            };
            let forecast = model.forecast(&batch, &self.config.forecast_options)?;
            *self.seconds.entry(ModelName::Loopcast).or_default() += started.elapsed().as_secs_f64();
            Some((forecast, batch.seasons().to_vec()))
        } else {
            None
        };
        // (index among the model's targets, channel index) of every target scored.
        let targets: Vec<(usize, usize)> = windows
            .channels
            .iter()
            .enumerate()
            .filter(|(_, c)| c.role == Role::Target)
            .enumerate()
            .filter(|(_, (_, c))| self.config.targets.is_empty() || self.config.targets.contains(&c.name))
            .map(|(t, (c, _))| (t, c))
            .collect();
        let (channels, context_len, horizon) = (windows.channels.len(), windows.context_len, windows.horizon);
        for b in 0..windows.len() {
            let series = &windows.series[b];
            let window = {
                let seen = self.windows_seen.entry(series.clone()).or_default();
                *seen += 1;
                *seen - 1
            };
            let origin = rfc3339(windows.origins[b]);
            for &(t, c) in &targets {
                let cells = |values: &[f32], mask: &[f32], len: usize| -> Vec<f64> {
                    let start = (b * channels + c) * len;
                    (start..start + len)
                        .map(|i| if mask[i] > 0.5 { f64::from(values[i]) } else { f64::NAN })
                        .collect()
                };
                let context = cells(&windows.context, &windows.context_mask, context_len);
                let truth = cells(&windows.future, &windows.future_mask, horizon);
                let mut chart = BTreeMap::new();
                for name in self.config.models.clone() {
                    let started = Instant::now();
                    let prediction = match name {
                        ModelName::Loopcast => {
                            let (forecast, seasons) = loopcast.as_ref().expect("run above");
                            loopcast_prediction(forecast, b, t, seasons[b])
                        }
                        baseline => self.baseline(baseline, &context, horizon),
                    };
                    if name != ModelName::Loopcast {
                        *self.seconds.entry(name).or_default() += started.elapsed().as_secs_f64();
                    }
                    self.score(
                        &context,
                        &truth,
                        name,
                        &prediction,
                        series,
                        &windows.channels[c].name,
                        window,
                        &origin,
                    );
                    chart.insert(name, prediction.chart);
                }
                self.keep_sample(
                    series,
                    &windows.channels[c].name,
                    &origin,
                    &context,
                    &truth,
                    chart,
                    horizon,
                );
            }
        }
        Ok(())
    }

    /// The forecast of a baseline; naive stands in (marked as a fallback) when the model
    /// fails on the window.
    fn baseline(&self, name: ModelName, context: &[f64], horizon: usize) -> Prediction {
        let season = self.config.season;
        let fitted = match name {
            ModelName::Snaive => Ok(baselines::seasonal_naive_with_intervals(context, season, horizon)),
            ModelName::Naive => Ok(baselines::naive(context, horizon)),
            ModelName::Ets => baselines::auto_ets(context, season, horizon),
            ModelName::Mstl => baselines::mstl(context, &self.config.mstl_periods, horizon),
            ModelName::Loopcast => unreachable!("loopcast is not a baseline"),
        };
        let (forecast, fallback): (GaussianForecast, bool) = match fitted {
            Ok(forecast) => (forecast, false),
            Err(_) => (baselines::naive(context, horizon), true),
        };
        Prediction {
            score: forecast.quantiles(&SCORE_LEVELS),
            chart: forecast.quantiles(&CHART_LEVELS),
            mean_loops: None,
            season: None,
            fallback,
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn score(
        &mut self,
        context: &[f64],
        truth: &[f64],
        model: ModelName,
        prediction: &Prediction,
        series: &str,
        channel: &str,
        window: usize,
        origin: &str,
    ) {
        let median = SCORE_LEVELS.iter().position(|l| *l == 0.5).expect("0.5 is a score level");
        let point: Vec<f64> = prediction.score.iter().map(|row| row[median]).collect();
        let lower: Vec<f64> = prediction.score.iter().map(|row| row[0]).collect();
        let upper: Vec<f64> = prediction.score.iter().map(|row| row[SCORE_LEVELS.len() - 1]).collect();
        let quantiles = Quantiles { levels: &SCORE_LEVELS, values: &prediction.score };
        let coverage = metrics::coverage(truth, &lower, &upper);
        let observed = truth.iter().filter(|v| v.is_finite()).count() as f64;
        let tally = self.covered.entry(model).or_default();
        tally.0 += coverage.unwrap_or(0.0) * observed;
        tally.1 += observed;
        self.scores.push(WindowScore {
            series: series.to_string(),
            channel: channel.to_string(),
            window,
            origin: origin.to_string(),
            model,
            mase: metrics::mase(context, self.config.season, truth, &point),
            wql: metrics::weighted_quantile_loss(truth, quantiles),
            crps: metrics::crps(truth, quantiles),
            coverage_80: coverage,
            mean_loops: prediction.mean_loops,
            season: prediction.season,
            fallback: prediction.fallback,
        });
    }

    #[allow(clippy::too_many_arguments)]
    fn keep_sample(
        &mut self,
        series: &str,
        channel: &str,
        origin: &str,
        context: &[f64],
        truth: &[f64],
        forecasts: BTreeMap<ModelName, Vec<Vec<f64>>>,
        horizon: usize,
    ) {
        let sample = ChartSample {
            series: series.to_string(),
            channel: channel.to_string(),
            origin: origin.to_string(),
            history: context[context.len().saturating_sub(3 * horizon)..].to_vec(),
            truth: truth.to_vec(),
            forecasts,
        };
        // The last window of each of the first `chart_samples` (series, channel) pairs.
        match self.samples.iter().position(|s| s.series == series && s.channel == channel) {
            Some(kept) => self.samples[kept] = sample,
            None if self.samples.len() < self.config.chart_samples => self.samples.push(sample),
            None => {}
        }
    }

    /// Every window score so far, in the order windows came in, models in table order.
    pub fn scores(&self) -> &[WindowScore] {
        &self.scores
    }

    /// The windows kept for fan charts.
    pub fn samples(&self) -> &[ChartSample] {
        &self.samples
    }

    /// Each model's figures, in table order.
    pub fn summary(&self) -> Vec<ModelSummary> {
        let reference: HashMap<(&str, &str, usize), &WindowScore> = self
            .scores
            .iter()
            .filter(|s| s.model == ModelName::Snaive)
            .map(|s| ((s.series.as_str(), s.channel.as_str(), s.window), s))
            .collect();
        self.config
            .models
            .iter()
            .map(|&model| {
                let mine: Vec<&WindowScore> = self.scores.iter().filter(|s| s.model == model).collect();
                let base = |s: &WindowScore| {
                    reference.get(&(s.series.as_str(), s.channel.as_str(), s.window)).copied()
                };
                let relative = |metric: fn(&WindowScore) -> Option<f64>| {
                    metrics::relative_score(mine.iter().map(|s| (metric(s), base(s).and_then(metric))))
                };
                let mean = |metric: fn(&WindowScore) -> Option<f64>| {
                    let values: Vec<f64> = mine.iter().filter_map(|s| metric(s)).collect();
                    (!values.is_empty()).then(|| values.iter().sum::<f64>() / values.len() as f64)
                };
                let (covered, observed) = self.covered.get(&model).copied().unwrap_or_default();
                ModelSummary {
                    model,
                    instances: mine.len(),
                    relative_mase: relative(|s| s.mase),
                    relative_wql: relative(|s| s.wql),
                    mase: mean(|s| s.mase),
                    wql: mean(|s| s.wql),
                    coverage_80: (observed > 0.0).then(|| covered / observed),
                    mean_loops: mean(|s| s.mean_loops),
                    fallbacks: mine.iter().filter(|s| s.fallback).count(),
                    seconds: self.seconds.get(&model).copied().unwrap_or_default(),
                }
            })
            .collect()
    }
}

/// Loopcast's quantiles of window `b`, target `t`, at the score and chart levels.
fn loopcast_prediction(forecast: &Forecast, b: usize, t: usize, season: usize) -> Prediction {
    let rows = |levels: &[f64]| -> Vec<Vec<f64>> {
        (0..forecast.steps)
            .map(|h| levels.iter().map(|l| f64::from(interpolated(forecast, b, t, h, *l))).collect())
            .collect()
    };
    let loops = &forecast.loops[b];
    let mean_loops =
        (!loops.is_empty()).then(|| loops.iter().map(|l| f64::from(*l)).sum::<f64>() / loops.len() as f64);
    Prediction {
        score: rows(&SCORE_LEVELS),
        chart: rows(&CHART_LEVELS),
        mean_loops,
        season: Some(season),
        fallback: false,
    }
}

/// The forecast's quantile at `level`, interpolated linearly between the model's
/// levels (and held flat beyond its outermost ones).
fn interpolated(forecast: &Forecast, b: usize, t: usize, h: usize, level: f64) -> f32 {
    let levels = &forecast.levels;
    let above = levels.iter().position(|l| *l >= level - 1e-9).unwrap_or(levels.len() - 1);
    if above == 0 || (levels[above] - level).abs() < 1e-9 || levels[above] < level {
        return forecast.value(b, t, h, above);
    }
    let below = above - 1;
    let share = ((level - levels[below]) / (levels[above] - levels[below])) as f32;
    let (low, high) = (forecast.value(b, t, h, below), forecast.value(b, t, h, above));
    low + share * (high - low)
}

/// A batch of cut windows as the model's input (missing cells masked), every window with
/// the seasonal period its context shows, the calendar's `calendar` (steps) as the prior
/// ([`ModelBatch::find_seasons`]).
pub fn model_batch(windows: &WindowBatch, calendar: usize) -> Result<ModelBatch, ModelError> {
    let mask = |m: &[f32]| m.iter().map(|v| *v > 0.5).collect::<Vec<_>>();
    ModelBatch::new(
        windows.channels.iter().map(|c| c.role).collect(),
        windows.len(),
        windows.context_len,
        windows.horizon,
        windows.context.clone(),
        mask(&windows.context_mask),
        windows.future.clone(),
        mask(&windows.future_mask),
    )
    .map(|batch| batch.with_season(calendar).find_seasons())
}

/// `windows` with every action channel's future unknown (and zeroed).
fn without_action_futures(windows: &WindowBatch) -> WindowBatch {
    let mut hidden = windows.clone();
    let (c, h) = (windows.channels.len(), windows.horizon);
    for (i, channel) in windows.channels.iter().enumerate() {
        if channel.role != Role::Action {
            continue;
        }
        for b in 0..windows.len() {
            let cells = (b * c + i) * h..(b * c + i + 1) * h;
            hidden.future[cells.clone()].fill(0.0);
            hidden.future_mask[cells].fill(0.0);
        }
    }
    hidden
}

fn rfc3339(micros: i64) -> String {
    chrono::DateTime::from_timestamp_micros(micros)
        .map(|t| t.to_rfc3339())
        .unwrap_or_else(|| micros.to_string())
}
