//! Anomaly detection from the model's quantiles: rolling forecasts over a series' history
//! (one window per patch, batched), each observation scored by how far into the tail of
//! its forecast distribution it falls, flagged points merged into intervals, and a view of
//! what changed after each move of an action channel. Two classical detectors run on the
//! same windows for comparison: seasonal-naive residuals over a robust scale, and a
//! seasonal hybrid ESD (Hochenbaum, Vallis and Kejariwal 2017: a per-phase median profile
//! removed, then Rosner's generalised ESD test with the median and MAD).

use std::collections::BTreeMap;

use loopcast_core::{ChannelSpec, Frequency, RegularSeries, Role, Timestamp};
use loopcast_data::{Origins, WindowBatch, WindowBatcher, WindowSpec};
use loopcast_model::{Forecast, ForecastOptions, LoopedWorldModel};
use serde::{Deserialize, Serialize};

use crate::backtest::{EvalError, model_batch};
use crate::baselines::seasonal_naive;

/// The smallest tail probability reported (scores stop at 12).
const MIN_PROBABILITY: f64 = 1e-12;
/// `1.4826 · MAD` estimates a normal standard deviation.
const MAD_TO_SD: f64 = 1.4826;
/// Seasonal hybrid ESD tests at most this share of a window's points as anomalies.
const ESD_MAX_SHARE: f64 = 0.1;

/// How to detect.
#[derive(Debug, Clone)]
pub struct DetectConfig {
    /// A point is flagged when its two-sided tail probability is below `1 − level`.
    pub level: f64,
    /// The calendar's season (steps), the prior of the period each window finds.
    pub season: usize,
    /// Whether the forecasts know the actions that were taken (else the future of action
    /// channels is unknown, as in production before the fact).
    pub action_futures: bool,
    /// Loop limits and the rest of the forecast's settings.
    pub forecast_options: ForecastOptions,
}

/// How a series is cut into detection windows: rolling origins a patch apart, each
/// forecasting one patch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shape {
    /// Steps per window's horizon and between origins (the model's patch).
    pub patch: usize,
    /// Context steps per window (the model's reach).
    pub max_context: usize,
    /// History before the first scored step.
    pub min_context: usize,
    /// Score only the last this many patches.
    pub last_patches: Option<usize>,
}

/// The detection windows of `series` laid out with `channels`, in batches of at most
/// `batch` windows; none when the series is no longer than `shape.min_context`.
pub fn series_windows(
    series: &RegularSeries,
    channels: &[ChannelSpec],
    shape: Shape,
    batch: usize,
) -> Result<Vec<WindowBatch>, EvalError> {
    let mut windows = series.len().saturating_sub(shape.min_context) / shape.patch.max(1);
    if let Some(last) = shape.last_patches {
        windows = windows.min(last);
    }
    if windows == 0 {
        return Ok(Vec::new());
    }
    let spec = WindowSpec {
        context: shape.max_context,
        horizon: shape.patch,
        origins: Origins::Backtest { windows, stride: shape.patch },
    };
    let mut batcher =
        WindowBatcher::new(spec, channels, batch).map_err(|e| EvalError::Config(e.to_string()))?;
    let mut batches = batcher.push(series);
    batches.extend(batcher.finish());
    Ok(batches)
}

/// Which detector.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Detector {
    /// The model's quantiles.
    Loopcast,
    /// Seasonal-naive residuals over a robust scale (median absolute deviation).
    SeasonalNaive,
    /// Seasonal hybrid ESD.
    Shesd,
}

impl Detector {
    /// Every detector, loopcast first.
    pub const ALL: [Detector; 3] = [Detector::Loopcast, Detector::SeasonalNaive, Detector::Shesd];

    /// The detector's name in files and reports.
    pub fn as_str(self) -> &'static str {
        match self {
            Detector::Loopcast => "loopcast",
            Detector::SeasonalNaive => "seasonal-naive",
            Detector::Shesd => "shesd",
        }
    }
}

/// One observation of a target, scored.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PointScore {
    /// Series.
    pub series: String,
    /// Target channel.
    pub channel: String,
    /// The observation's time.
    pub timestamp: Timestamp,
    /// The observed value.
    pub value: f64,
    /// The forecast's median.
    pub median: f64,
    /// The forecast's band at the level (its `(1 − level)/2` quantile).
    pub lower: f64,
    /// Its `(1 + level)/2` quantile.
    pub upper: f64,
    /// Two-sided tail probability of the value under the forecast.
    pub tail_probability: f64,
    /// `−log10` of it: 2 at the 1 % tails.
    pub score: f64,
    /// How rare the score is among the channel's earlier scores (their share at least as
    /// high, with a fitted exponential tail beyond their top tenth): a p-value against
    /// the series' own history, so a level means the same whatever the model's tails.
    /// The tail probability for a channel's first 50 points.
    pub p_value: f64,
    /// Flagged by the model: `p_value` below `1 − level`.
    pub flagged: bool,
    /// Flagged by the seasonal-naive residual threshold.
    pub seasonal_naive: bool,
    /// Flagged by seasonal hybrid ESD.
    pub shesd: bool,
}

impl PointScore {
    /// Whether `detector` flagged the point.
    pub fn flagged_by(&self, detector: Detector) -> bool {
        match detector {
            Detector::Loopcast => self.flagged,
            Detector::SeasonalNaive => self.seasonal_naive,
            Detector::Shesd => self.shesd,
        }
    }
}

/// Consecutive flagged points of one series and channel.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Anomaly {
    /// Series.
    pub series: String,
    /// Target channel.
    pub channel: String,
    /// First flagged point.
    pub start: Timestamp,
    /// Last flagged point.
    pub end: Timestamp,
    /// Points in it.
    pub points: usize,
    /// Highest score in it.
    pub peak_score: f64,
    /// `up` when the peak lies above the median, else `down`.
    pub direction: &'static str,
}

/// A move of an action channel, and what the targets did around it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ActionChange {
    /// Series.
    pub series: String,
    /// Action channel.
    pub channel: String,
    /// First step at the new value.
    pub timestamp: Timestamp,
    /// Value before.
    pub before: f64,
    /// Value after.
    pub after: f64,
    /// Mean score of every target's points in the `span` steps before the move.
    pub score_before: f64,
    /// The same after it (from the move on).
    pub score_after: f64,
    /// Points flagged by the model after the move, within `span` steps.
    pub flagged_after: usize,
}

/// Everything detection found in one series.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct SeriesDetection {
    /// Every scored observation, in time order per channel.
    pub points: Vec<PointScore>,
    /// Flagged intervals.
    pub anomalies: Vec<Anomaly>,
    /// Moves of action channels.
    pub changes: Vec<ActionChange>,
}

/// The two-sided tail probability of `y` under the distribution whose quantiles at
/// `levels` (increasing) are `values` (non-decreasing): the CDF is linear between
/// quantiles and exponential beyond the outer ones, its rate fitted to the two outer
/// quantiles on each side. `NaN` for a missing value.
pub fn tail_probability(levels: &[f64], values: &[f64], y: f64) -> f64 {
    if !y.is_finite() || levels.is_empty() {
        return f64::NAN;
    }
    let cdf = cdf(levels, values, y);
    (2.0 * cdf.min(1.0 - cdf)).clamp(MIN_PROBABILITY, 1.0)
}

fn cdf(levels: &[f64], values: &[f64], y: f64) -> f64 {
    let q = levels.len();
    if y < values[0] {
        return match lower_tail(levels, values) {
            Some(scale) => levels[0] * ((y - values[0]) / scale).exp(),
            None => 0.0,
        };
    }
    if y > values[q - 1] {
        return match upper_tail(levels, values) {
            Some(scale) => 1.0 - (1.0 - levels[q - 1]) * (-(y - values[q - 1]) / scale).exp(),
            None => 1.0,
        };
    }
    // Within the quantiles: the middle of the levels whose values tie with y, else the
    // interpolation between the two around it.
    let above = values.partition_point(|v| *v < y);
    let last_tie = values.partition_point(|v| *v <= y);
    if last_tie > above {
        return (levels[above] + levels[last_tie - 1]) / 2.0;
    }
    let (i, j) = (above - 1, above);
    let share = (y - values[i]) / (values[j] - values[i]);
    levels[i] + share * (levels[j] - levels[i])
}

/// The scale of the exponential tail below the lowest quantile:
/// `P(Y < x) = l₁ · exp((x − v₁)/scale)`, the widest such tail through the lowest quantile
/// and any other quantile up to the median (two outer quantiles that nearly tie would
/// otherwise make the tail thin enough to flag a value just past them as impossible).
/// `None` when every such quantile ties with the lowest.
fn lower_tail(levels: &[f64], values: &[f64]) -> Option<f64> {
    (1..levels.len())
        .take_while(|i| levels[*i] <= 0.5)
        .map(|i| (values[i] - values[0]) / (levels[i] / levels[0]).ln())
        .filter(|scale| scale.is_finite() && *scale > 0.0)
        .max_by(f64::total_cmp)
}

/// The same above the highest quantile.
fn upper_tail(levels: &[f64], values: &[f64]) -> Option<f64> {
    let q = levels.len();
    (0..q - 1)
        .rev()
        .take_while(|i| levels[*i] >= 0.5)
        .map(|i| (values[q - 1] - values[i]) / ((1.0 - levels[i]) / (1.0 - levels[q - 1])).ln())
        .filter(|scale| scale.is_finite() && *scale > 0.0)
        .max_by(f64::total_cmp)
}

/// The quantile at `level` of the distribution [`tail_probability`] reads from `levels`
/// and `values`, with the same exponential tails beyond the outer quantiles.
pub fn quantile_at(levels: &[f64], values: &[f64], level: f64) -> f64 {
    let q = levels.len();
    if level <= levels[0] {
        return match lower_tail(levels, values) {
            Some(scale) => values[0] + scale * (level / levels[0]).ln(),
            None => values[0],
        };
    }
    if level >= levels[q - 1] {
        return match upper_tail(levels, values) {
            Some(scale) => values[q - 1] - scale * ((1.0 - level) / (1.0 - levels[q - 1])).ln(),
            None => values[q - 1],
        };
    }
    let j = levels.partition_point(|l| *l < level);
    let i = j - 1;
    let share = (level - levels[i]) / (levels[j] - levels[i]);
    values[i] + share * (values[j] - values[i])
}

/// Detection over `batches`, every window of one series (rolling origins a patch
/// apart, as [`loopcast_data::Origins::Backtest`] lays them out): the model's forecast of
/// each batch, every observed target cell of a horizon scored (once, where windows
/// overlap), the flagged points merged into intervals, and each action move with the
/// scores around it.
pub fn detect_series(
    model: &LoopedWorldModel,
    batches: &[WindowBatch],
    frequency: Frequency,
    config: &DetectConfig,
) -> Result<SeriesDetection, EvalError> {
    if !(config.level > 0.5 && config.level < 1.0) {
        return Err(EvalError::Config(format!("level {} is not in (0.5, 1)", config.level)));
    }
    let mut points = Vec::new();
    let mut moves = BTreeMap::new();
    for windows in batches.iter().filter(|w| !w.is_empty()) {
        let input = if config.action_futures { windows.clone() } else { hide_action_futures(windows) };
        let batch = model_batch(&input, config.season)?;
        let forecast = model.forecast(&batch, &config.forecast_options)?;
        points.extend(score_points(windows, frequency, &forecast, batch.seasons(), config.level));
        moves.extend(action_changes(windows, frequency));
    }
    points.sort_by(|a, b| (&a.channel, a.timestamp).cmp(&(&b.channel, b.timestamp)));
    points
        .dedup_by(|later, earlier| later.channel == earlier.channel && later.timestamp == earlier.timestamp);
    conformal(&mut points, config.level);
    let anomalies = anomalies(&points, Detector::Loopcast);
    let Some(first) = batches.iter().find(|w| !w.is_empty()) else {
        return Ok(SeriesDetection::default());
    };
    let span = first.horizon as i64;
    let changes = moves
        .into_iter()
        .map(|((channel, timestamp), (before, after))| {
            let cell = frequency.cell(timestamp);
            let (from, to) = (frequency.cell_start(cell - span), frequency.cell_start(cell + span));
            let near = |from: Timestamp, to: Timestamp| {
                points.iter().filter(move |p| p.timestamp >= from && p.timestamp < to)
            };
            let mean = |from, to| {
                let scores: Vec<f64> = near(from, to).map(|p| p.score).collect();
                if scores.is_empty() { f64::NAN } else { scores.iter().sum::<f64>() / scores.len() as f64 }
            };
            ActionChange {
                series: first.series[0].clone(),
                channel,
                timestamp,
                before,
                after,
                score_before: mean(from, timestamp),
                score_after: mean(timestamp, to),
                flagged_after: near(timestamp, to).filter(|p| p.flagged).count(),
            }
        })
        .collect();
    Ok(SeriesDetection { points, anomalies, changes })
}

/// Bins of the running score histogram: scores lie in `[0, 12]`.
const SCORE_BINS: usize = 12_001;
/// Earlier points a channel needs before its own scores judge a new one.
const MIN_REFERENCE: usize = 50;
/// The share of a channel's scores above which the tail is modelled.
const TAIL_SHARE: f64 = 0.1;

/// Replaces each point's p-value by one read from the channel's earlier scores (`points`
/// in time order per channel) and flags by it: the share of them at least as high, once
/// there are `1 / (1 − level)` of them; before that, beyond their top tenth, the
/// exponential tail fitted to the excesses over it (peaks over threshold, as SPOT does:
/// Siffer et al. 2017), so a level below one over the points seen can be reached. A
/// channel's first [`MIN_REFERENCE`] points keep the forecast's own tail probability.
fn conformal(points: &mut [PointScore], level: f64) {
    // Enough earlier points for a rank to reach the level: ranks alone judge.
    let reference = (1.0 / (1.0 - level)).ceil() as usize;
    let bin = |score: f64| ((score * 1_000.0).round() as usize).min(SCORE_BINS - 1);
    let mut start = 0;
    while start < points.len() {
        let end = points[start..]
            .iter()
            .position(|p| p.channel != points[start].channel)
            .map_or(points.len(), |n| start + n);
        let (mut counts, mut sums) = (Fenwick::new(SCORE_BINS), Fenwick::new(SCORE_BINS));
        let mut total = 0.0;
        for (seen, point) in points[start..end].iter_mut().enumerate() {
            let b = bin(point.score);
            if seen >= MIN_REFERENCE {
                let at_least = seen as f64 - counts.below(b);
                // The threshold: the lowest bin with at most the tail share above it.
                let threshold = counts.first_reaching((1.0 - TAIL_SHARE) * seen as f64);
                let above = seen as f64 - counts.below(threshold);
                let excess = (total - sums.below(threshold)) / above.max(1.0) - threshold as f64 / 1_000.0;
                let scale = excess.max(0.05);
                let tail = threshold as f64 / 1_000.0;
                point.p_value = if point.score <= tail || above < 1.0 || seen >= reference {
                    (1.0 + at_least) / (1.0 + seen as f64)
                } else {
                    (above + 1.0) / (seen as f64 + 1.0) * (-(point.score - tail) / scale).exp()
                };
                point.flagged = point.p_value < 1.0 - level;
            }
            counts.add(b, 1.0);
            sums.add(b, point.score);
            total += point.score;
        }
        start = end;
    }
}

/// Sums over bins with prefix queries in logarithmic time.
struct Fenwick(Vec<f64>);

impl Fenwick {
    fn new(bins: usize) -> Self {
        Self(vec![0.0; bins + 1])
    }

    fn add(&mut self, bin: usize, value: f64) {
        let mut i = bin + 1;
        while i < self.0.len() {
            self.0[i] += value;
            i += i & i.wrapping_neg();
        }
    }

    /// The sum over bins below `bin`.
    fn below(&self, bin: usize) -> f64 {
        let (mut i, mut sum) = (bin, 0.0);
        while i > 0 {
            sum += self.0[i];
            i -= i & i.wrapping_neg();
        }
        sum
    }

    /// The lowest bin `b` whose sum below `b + 1` reaches `target` (binary lifting).
    fn first_reaching(&self, target: f64) -> usize {
        let (mut position, mut remaining) = (0, target);
        let mut step = (self.0.len() - 1).next_power_of_two();
        while step > 0 {
            let next = position + step;
            if next < self.0.len() && self.0[next] < remaining {
                position = next;
                remaining -= self.0[next];
            }
            step /= 2;
        }
        position.min(self.0.len() - 2)
    }
}

/// Every observed target cell of every window's horizon, scored by the model and the
/// two baselines.
fn score_points(
    windows: &WindowBatch,
    frequency: Frequency,
    forecast: &Forecast,
    seasons: &[usize],
    level: f64,
) -> Vec<PointScore> {
    let (c, l, h) = (windows.channels.len(), windows.context_len, windows.horizon);
    let targets: Vec<(usize, usize)> = windows
        .channels
        .iter()
        .enumerate()
        .filter(|(_, ch)| ch.role == Role::Target)
        .enumerate()
        .map(|(t, (i, _))| (t, i))
        .collect();
    let (lower_level, upper_level) = ((1.0 - level) / 2.0, (1.0 + level) / 2.0);
    let mut points = Vec::new();
    for (b, season) in seasons.iter().enumerate().take(windows.len()) {
        let season = (*season).max(1);
        for &(t, i) in &targets {
            let cells = |values: &[f32], mask: &[f32], start: usize, len: usize| -> Vec<f64> {
                (start..start + len)
                    .map(|k| if mask[k] > 0.5 { f64::from(values[k]) } else { f64::NAN })
                    .collect()
            };
            let context = cells(&windows.context, &windows.context_mask, (b * c + i) * l, l);
            let future = cells(&windows.future, &windows.future_mask, (b * c + i) * h, h);
            let naive = seasonal_naive_flags(&context, &future, season, level);
            let esd = shesd_flags(&context, &future, season, 1.0 - level);
            for (k, y) in future.iter().enumerate() {
                if !y.is_finite() {
                    continue;
                }
                let values: Vec<f64> =
                    (0..forecast.levels.len()).map(|q| f64::from(forecast.value(b, t, k, q))).collect();
                let p = tail_probability(&forecast.levels, &values, *y);
                points.push(PointScore {
                    series: windows.series[b].clone(),
                    channel: windows.channels[i].name.clone(),
                    timestamp: frequency.cell_start(frequency.cell(windows.origins[b]) + k as i64),
                    value: *y,
                    median: quantile_at(&forecast.levels, &values, 0.5),
                    lower: quantile_at(&forecast.levels, &values, lower_level),
                    upper: quantile_at(&forecast.levels, &values, upper_level),
                    tail_probability: p,
                    score: -p.log10(),
                    p_value: p,
                    flagged: p < 1.0 - level,
                    seasonal_naive: naive[k],
                    shesd: esd[k],
                });
            }
        }
    }
    points
}

/// Flags of `future` by seasonal-naive residuals: each value's gap to the value a season
/// earlier, against the context's seasonal differences (their median and `1.4826 · MAD`),
/// flagged when its two-sided normal tail probability is below `1 − level`.
pub fn seasonal_naive_flags(context: &[f64], future: &[f64], season: usize, level: f64) -> Vec<bool> {
    let anchor = seasonal_naive(context, season, future.len());
    let differences: Vec<f64> = context
        .iter()
        .skip(season)
        .zip(context)
        .map(|(now, then)| now - then)
        .filter(|d| d.is_finite())
        .collect();
    let Some((centre, spread)) = median_and_mad(&differences) else {
        return vec![false; future.len()];
    };
    let scale = (MAD_TO_SD * spread).max(1e-9 * (1.0 + centre.abs()));
    let z = distrs::Normal::ppf((1.0 + level) / 2.0, 0.0, 1.0);
    future
        .iter()
        .zip(&anchor)
        .enumerate()
        .map(|(k, (y, a))| {
            // Past the first season the anchor repeats itself: the error of k seasons.
            let seasons = (k / season.max(1) + 1) as f64;
            y.is_finite() && a.is_finite() && ((y - a - centre).abs() / (scale * seasons.sqrt())) > z
        })
        .collect()
}

/// Flags of `future` by seasonal hybrid ESD over the context and the future together:
/// each value less the median of its phase over both, then the generalised ESD test
/// (median and MAD in place of the mean and standard deviation) at significance `alpha`,
/// testing at most a tenth of the points.
pub fn shesd_flags(context: &[f64], future: &[f64], season: usize, alpha: f64) -> Vec<bool> {
    let season = season.max(1);
    let all: Vec<f64> = context.iter().chain(future).copied().collect();
    let mut phases: Vec<Vec<f64>> = vec![Vec::new(); season];
    for (i, v) in all.iter().enumerate() {
        if v.is_finite() {
            phases[i % season].push(*v);
        }
    }
    let profile: Vec<Option<f64>> = phases.iter().map(|p| median(p)).collect();
    let residuals: Vec<(usize, f64)> = all
        .iter()
        .enumerate()
        .filter_map(|(i, v)| Some((i, v - profile[i % season]?)).filter(|(_, r)| r.is_finite()))
        .collect();
    let flagged = generalised_esd(&residuals, alpha, ESD_MAX_SHARE);
    (context.len()..all.len()).map(|i| flagged.contains(&i)).collect()
}

/// Rosner's generalised ESD with the median and MAD: the indices of `points` found to be
/// outliers at significance `alpha`, testing at most `max_share` of them.
fn generalised_esd(points: &[(usize, f64)], alpha: f64, max_share: f64) -> Vec<usize> {
    let n = points.len();
    let max_outliers = ((n as f64 * max_share).floor() as usize).min(n.saturating_sub(3));
    let mut remaining: Vec<(usize, f64)> = points.to_vec();
    let mut removed = Vec::new();
    let mut outliers = 0;
    for i in 1..=max_outliers {
        let values: Vec<f64> = remaining.iter().map(|(_, v)| *v).collect();
        let Some((centre, spread)) = median_and_mad(&values) else { break };
        if spread <= 0.0 {
            break;
        }
        let (position, statistic) = remaining
            .iter()
            .enumerate()
            .map(|(k, (_, v))| (k, (v - centre).abs() / (MAD_TO_SD * spread)))
            .max_by(|a, b| a.1.total_cmp(&b.1))
            .expect("at least three points remain");
        let m = (n - i + 1) as f64;
        let p = 1.0 - alpha / (2.0 * m);
        let t = distrs::StudentsT::ppf(p, m - 2.0);
        let critical = (m - 1.0) * t / ((m - 2.0 + t * t) * m).sqrt();
        removed.push(remaining.remove(position).0);
        if statistic > critical {
            outliers = i;
        }
    }
    removed.truncate(outliers);
    removed
}

fn median(values: &[f64]) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let m = sorted.len() / 2;
    Some(if sorted.len() % 2 == 1 { sorted[m] } else { (sorted[m - 1] + sorted[m]) / 2.0 })
}

fn median_and_mad(values: &[f64]) -> Option<(f64, f64)> {
    let centre = median(values)?;
    let deviations: Vec<f64> = values.iter().map(|v| (v - centre).abs()).collect();
    Some((centre, median(&deviations)?))
}

/// Runs of points flagged by `detector`, per channel (`points` in time order per
/// channel): consecutive scored points, gaps in the data not breaking a run.
pub fn anomalies(points: &[PointScore], detector: Detector) -> Vec<Anomaly> {
    let mut found: Vec<Anomaly> = Vec::new();
    let mut open = false;
    for (i, point) in points.iter().enumerate() {
        let same_channel =
            i > 0 && points[i - 1].channel == point.channel && points[i - 1].series == point.series;
        if !point.flagged_by(detector) {
            open = false;
            continue;
        }
        let direction = if point.value >= point.median { "up" } else { "down" };
        match found.last_mut() {
            Some(run) if open && same_channel => {
                run.end = point.timestamp;
                run.points += 1;
                if point.score > run.peak_score {
                    run.peak_score = point.score;
                    run.direction = direction;
                }
            }
            _ => found.push(Anomaly {
                series: point.series.clone(),
                channel: point.channel.clone(),
                start: point.timestamp,
                end: point.timestamp,
                points: 1,
                peak_score: point.score,
                direction,
            }),
        }
        open = true;
    }
    found
}

/// Every move of an action channel inside the windows' horizons (from the value before
/// it, in the context or the horizon), keyed by channel and time (once where windows
/// overlap), with the values before and after.
fn action_changes(windows: &WindowBatch, frequency: Frequency) -> BTreeMap<(String, Timestamp), (f64, f64)> {
    let (c, l, h) = (windows.channels.len(), windows.context_len, windows.horizon);
    let mut moves: BTreeMap<(String, Timestamp), (f64, f64)> = BTreeMap::new();
    for b in 0..windows.len() {
        for (i, channel) in windows.channels.iter().enumerate() {
            if channel.role != Role::Action {
                continue;
            }
            let start = (b * c + i) * l;
            let mut last = (0..l)
                .rev()
                .find(|k| windows.context_mask[start + k] > 0.5)
                .map(|k| f64::from(windows.context[start + k]));
            for k in 0..h {
                let cell = (b * c + i) * h + k;
                if windows.future_mask[cell] < 0.5 {
                    continue;
                }
                let value = f64::from(windows.future[cell]);
                if let Some(before) = last.filter(|before| *before != value) {
                    let at = frequency.cell_start(frequency.cell(windows.origins[b]) + k as i64);
                    moves.insert((channel.name.clone(), at), (before, value));
                }
                last = Some(value);
            }
        }
    }
    moves
}

/// `windows` with the future of every action channel unknown.
fn hide_action_futures(windows: &WindowBatch) -> WindowBatch {
    let mut hidden = windows.clone();
    let (c, h) = (windows.channels.len(), windows.horizon);
    for (i, channel) in windows.channels.iter().enumerate() {
        if channel.role == Role::Action {
            for b in 0..windows.len() {
                let cells = (b * c + i) * h..(b * c + i + 1) * h;
                hidden.future[cells.clone()].fill(0.0);
                hidden.future_mask[cells].fill(0.0);
            }
        }
    }
    hidden
}

#[cfg(test)]
mod tests {
    use super::*;

    const LEVELS: [f64; 5] = [0.01, 0.1, 0.5, 0.9, 0.99];
    const VALUES: [f64; 5] = [-2.0, -1.0, 0.0, 1.0, 2.0];

    #[test]
    fn tail_probabilities_follow_the_quantiles_and_decay_beyond_them() {
        let p = |y| tail_probability(&LEVELS, &VALUES, y);
        assert!((p(0.0) - 1.0).abs() < 1e-12);
        assert!((p(1.0) - 0.2).abs() < 1e-12);
        assert!((p(-2.0) - 0.02).abs() < 1e-12);
        assert!((p(0.5) - 0.6).abs() < 1e-12);
        // Beyond 0.99 the tail is the widest exponential through the 0.99 quantile and
        // one nearer the median: from the median, 2 units for a fiftieth.
        let scale = 2.0 / 50f64.ln();
        assert!((p(3.0) - 0.02 * (-1.0 / scale).exp()).abs() < 1e-12);
        assert!((p(-4.0) - 0.02 * (-2.0 / scale).exp()).abs() < 1e-12);
        // Two outer quantiles that nearly tie do not make a thin tail.
        let close = [-2.0, -1.0, 0.0, 1.99, 2.0];
        assert!(tail_probability(&LEVELS, &close, 2.1) > 1e-3);
        assert_eq!(p(1e9), MIN_PROBABILITY);
        assert!(p(f64::NAN).is_nan());
        // Ties: a point mass at 0 (every quantile 0) is not in its own tail.
        assert_eq!(tail_probability(&LEVELS, &[0.0; 5], 0.0), 1.0);
        assert_eq!(tail_probability(&LEVELS, &[0.0; 5], 0.1), MIN_PROBABILITY);
    }

    #[test]
    fn quantiles_past_the_outer_levels_follow_the_same_tails() {
        for level in [0.001, 0.005, 0.05, 0.3, 0.5, 0.75, 0.995, 0.9999] {
            let y = quantile_at(&LEVELS, &VALUES, level);
            let cdf = cdf(&LEVELS, &VALUES, y);
            assert!((cdf - level).abs() < 1e-9, "{level}: {y} has cdf {cdf}");
        }
    }

    #[test]
    fn seasonal_baselines_flag_a_spike_and_not_the_season() {
        let season = 12;
        let wave = |i: usize| 10.0 + 5.0 * (2.0 * std::f64::consts::PI * i as f64 / season as f64).sin();
        // A fixed pseudo-random noise of about ±0.1.
        let noise = |i: usize| 0.2 * (((i as f64 * 12.9898).sin() * 43_758.545).fract().abs() - 0.5);
        let context: Vec<f64> = (0..120).map(|i| wave(i) + noise(i)).collect();
        let mut future: Vec<f64> = (120..136).map(|i| wave(i) + noise(i)).collect();
        future[5] += 4.0;
        let naive = seasonal_naive_flags(&context, &future, season, 0.999);
        let esd = shesd_flags(&context, &future, season, 0.001);
        for (name, flags) in [("naive", naive), ("esd", esd)] {
            assert!(flags[5], "{name}: {flags:?}");
            assert_eq!(flags.iter().filter(|f| **f).count(), 1, "{name}: {flags:?}");
        }
    }

    #[test]
    fn conformal_p_values_hold_the_level_on_the_series_own_scores() {
        let mut state = 11u64;
        let mut uniform = move || {
            state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            ((state >> 11) as f64 + 0.5) / (1u64 << 53) as f64
        };
        // A model whose tails are far too thin: its raw tail probabilities flag a fifth.
        let mut points: Vec<PointScore> = (0..2_000)
            .map(|i| {
                let p = uniform().powi(3);
                PointScore {
                    series: "s".into(),
                    channel: "c".into(),
                    timestamp: i,
                    value: 0.0,
                    median: 0.0,
                    lower: 0.0,
                    upper: 0.0,
                    tail_probability: p,
                    score: -p.log10(),
                    p_value: p,
                    flagged: p < 0.01,
                    seasonal_naive: false,
                    shesd: false,
                }
            })
            .collect();
        points[1_500].score = 12.0;
        conformal(&mut points, 0.99);
        let late = &points[MIN_REFERENCE..];
        let share = late.iter().filter(|p| p.flagged).count() as f64 / late.len() as f64;
        assert!((0.005..0.02).contains(&share), "{share}");
        assert!(points[1_500].flagged, "{:?}", points[1_500]);
        assert!(
            points[..MIN_REFERENCE].iter().all(|p| p.p_value == p.tail_probability),
            "raw until 50 are seen"
        );
        // Before a rank can reach the level, the fitted tail does.
        let mut early = points[..80].to_vec();
        early[70].score = 12.0;
        conformal(&mut early, 0.999);
        assert!(early[70].flagged && early[70].p_value < 1.0 / 70.0, "{:?}", early[70]);
    }

    #[test]
    fn flagged_points_merge_into_runs_per_channel() {
        let point = |channel: &str, t: i64, flagged: bool, value: f64| PointScore {
            series: "s".into(),
            channel: channel.into(),
            timestamp: t,
            value,
            median: 0.0,
            lower: -1.0,
            upper: 1.0,
            tail_probability: 0.5,
            score: value.abs(),
            p_value: 0.5,
            flagged,
            seasonal_naive: false,
            shesd: false,
        };
        let points = vec![
            point("a", 0, true, 3.0),
            point("a", 1, true, -5.0),
            point("a", 2, false, 0.0),
            point("a", 3, true, 2.0),
            point("b", 4, true, 1.0),
        ];
        let runs = anomalies(&points, Detector::Loopcast);
        assert_eq!(runs.len(), 3);
        assert_eq!((runs[0].start, runs[0].end, runs[0].points, runs[0].direction), (0, 1, 2, "down"));
        assert_eq!((runs[1].start, runs[1].points), (3, 1));
        assert_eq!((runs[2].channel.as_str(), runs[2].start), ("b", 4));
        assert!(anomalies(&points, Detector::Shesd).is_empty());
    }
}
