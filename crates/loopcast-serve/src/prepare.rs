//! From request bodies to model windows (every check names the field it refuses), and
//! from the model's quantiles back to answers in the data's units and timestamps.

use std::collections::BTreeSet;

use chrono::{DateTime, Utc};
use loopcast_core::{Frequency, Role};
use loopcast_model::{Forecast, ForecastOptions, MissingActions, ModelBatch, ModelConfig, quantiles};

use crate::api::{
    ChannelForecast, ChannelInput, ChannelRole, ComputeOptions, MAX_SERIES_CALIBRATION, MissingActionsInput,
    QuantileTrajectory, SeriesInput,
};
use crate::batcher::{Plan, WorkItem};
use crate::config::Limits;
use crate::problem::Problem;

/// What the model and the limits allow a request.
#[derive(Debug, Clone)]
pub(crate) struct Bounds {
    /// The model's quantile levels.
    pub(crate) levels: Vec<f64>,
    /// Steps per patch.
    pub(crate) patch_len: usize,
    /// Longest horizon: the smaller of the limit and what the model rolls out.
    pub(crate) max_horizon: usize,
    /// History steps the model reads.
    pub(crate) max_context: usize,
    /// The configured limits.
    pub(crate) limits: Limits,
    /// The model's effect intervals for planning (`ModelConfig::effect_widening`).
    pub(crate) effect_widening: f64,
}

impl Bounds {
    /// `horizon` if the model and the limits allow it; the problem names `horizon`.
    pub(crate) fn check_horizon(&self, horizon: usize) -> Result<(), Problem> {
        if horizon == 0 || horizon > self.max_horizon {
            return Err(Problem::invalid(
                "horizon",
                format!("must be 1 to {} steps, got {horizon}", self.max_horizon),
            ));
        }
        Ok(())
    }

    /// The bounds of `model` under `limits`.
    pub(crate) fn new(model: &ModelConfig, limits: &Limits) -> Self {
        Self {
            levels: model.quantiles.clone(),
            patch_len: model.patch_len,
            max_horizon: limits.max_horizon.min(model.max_horizon()),
            max_context: model.max_context_patches * model.patch_len,
            limits: limits.clone(),
            effect_widening: model.effect_widening,
        }
    }
}

/// A checked series as one model window: targets first, then actions and covariates in
/// request order.
#[derive(Debug, Clone)]
pub(crate) struct PreparedSeries {
    /// Identifier for the answer.
    pub(crate) id: String,
    /// Target channel names, in model order.
    pub(crate) targets: Vec<String>,
    /// Action and covariate channel names, in model order (after the targets).
    pub(crate) inputs: Vec<String>,
    /// One window; its future holds the series' own known future values.
    pub(crate) batch: ModelBatch,
    /// Timestamps of the forecast steps.
    pub(crate) future_timestamps: Vec<DateTime<Utc>>,
}

/// A checked request's common parts.
#[derive(Debug, Clone)]
pub(crate) struct Prepared {
    /// The series.
    pub(crate) series: Vec<PreparedSeries>,
    /// Levels to answer with.
    pub(crate) levels: Vec<f64>,
    /// Loop control and missing-action policy for the model.
    pub(crate) options: ForecastOptions,
    /// Steps to forecast.
    pub(crate) horizon: usize,
}

/// Checks the parts every request shares: series, horizon, quantiles and compute options.
pub(crate) fn prepare(
    series: &[SeriesInput],
    horizon: usize,
    quantiles: Option<&[f64]>,
    compute: &ComputeOptions,
    missing: MissingActionsInput,
    bounds: &Bounds,
) -> Result<Prepared, Problem> {
    bounds.check_horizon(horizon)?;
    if series.is_empty() {
        return Err(Problem::invalid("series", "at least one series is needed"));
    }
    if series.len() > bounds.limits.max_series {
        return Err(Problem::invalid(
            "series",
            format!("{} series, the limit is {} (limits.max_series)", series.len(), bounds.limits.max_series),
        ));
    }
    let levels = levels(quantiles, bounds)?;
    let options = options(compute, missing, bounds)?;
    let series = series
        .iter()
        .enumerate()
        .map(|(i, s)| prepare_series(i, s, horizon, bounds))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Prepared { series, levels, options, horizon })
}

/// The quantile levels a request asks for (the model's when absent): 1 to
/// `limits.max_quantiles` distinct levels within the model's range, in increasing order.
pub(crate) fn levels(quantiles: Option<&[f64]>, bounds: &Bounds) -> Result<Vec<f64>, Problem> {
    let Some(levels) = quantiles else {
        return Ok(bounds.levels.clone());
    };
    if levels.is_empty() || levels.len() > bounds.limits.max_quantiles {
        return Err(Problem::invalid(
            "quantiles",
            format!(
                "1 to {} levels (limits.max_quantiles), got {}",
                bounds.limits.max_quantiles,
                levels.len()
            ),
        ));
    }
    let (low, high) = (bounds.levels[0], bounds.levels[bounds.levels.len() - 1]);
    for (k, level) in levels.iter().enumerate() {
        if !(low..=high).contains(level) {
            return Err(Problem::invalid(
                format!("quantiles[{k}]"),
                format!("{level} is outside the model's range {low}–{high}"),
            ));
        }
    }
    // Any order is taken and answered in increasing order (each answer names its level);
    // a level given twice is refused at its second place.
    let mut order: Vec<usize> = (0..levels.len()).collect();
    order.sort_by(|a, b| levels[*a].total_cmp(&levels[*b]).then(a.cmp(b)));
    if let Some(pair) = order.windows(2).find(|pair| levels[pair[0]] == levels[pair[1]]) {
        let k = pair[1];
        return Err(Problem::invalid(
            format!("quantiles[{k}]"),
            format!("{} is given twice: levels must be distinct", levels[k]),
        ));
    }
    Ok(order.into_iter().map(|k| levels[k]).collect())
}

pub(crate) fn options(
    compute: &ComputeOptions,
    missing: MissingActionsInput,
    bounds: &Bounds,
) -> Result<ForecastOptions, Problem> {
    let cap = bounds.limits.max_loops;
    for (name, value) in [("compute.min_loops", compute.min_loops), ("compute.max_loops", compute.max_loops)]
    {
        if let Some(loops) = value
            && !(1..=cap).contains(&loops)
        {
            return Err(Problem::invalid(
                name,
                format!("must be 1 to {cap} (limits.max_loops), got {loops}"),
            ));
        }
    }
    if let (Some(min), Some(max)) = (compute.min_loops, compute.max_loops)
        && min > max
    {
        return Err(Problem::invalid("compute.min_loops", format!("{min} is above max_loops {max}")));
    }
    if let Some(threshold) = compute.exit_threshold
        && !(threshold.is_finite() && threshold >= 0.0)
    {
        return Err(Problem::invalid(
            "compute.exit_threshold",
            format!("must be 0 or more, got {threshold}"),
        ));
    }
    if compute.series_calibration > MAX_SERIES_CALIBRATION {
        return Err(Problem::invalid(
            "compute.series_calibration",
            format!("must be 0 to {MAX_SERIES_CALIBRATION}, got {}", compute.series_calibration),
        ));
    }
    Ok(ForecastOptions {
        min_loops: compute.min_loops,
        max_loops: compute.max_loops,
        exit_threshold: compute.exit_threshold,
        patches: None,
        missing_actions: match missing {
            MissingActionsInput::HoldLast => MissingActions::HoldLast,
            MissingActionsInput::Unknown => MissingActions::Unknown,
        },
        series_calibration: compute.series_calibration,
    })
}

/// `value` as the model's `f32`, refused when it does not fit.
fn cell(value: f64, field: impl FnOnce() -> String) -> Result<f32, Problem> {
    let narrow = value as f32;
    if narrow.is_finite() {
        Ok(narrow)
    } else {
        Err(Problem::invalid(field(), format!("{value} is out of range (|value| < 3.4e38)")))
    }
}

fn prepare_series(
    i: usize,
    series: &SeriesInput,
    horizon: usize,
    bounds: &Bounds,
) -> Result<PreparedSeries, Problem> {
    let at = |rest: &str| format!("series[{i}]{rest}");
    let channels = &series.channels;
    if channels.is_empty() {
        return Err(Problem::invalid(at(".channels"), "at least one channel is needed"));
    }
    let length = channels[0].values.len();
    let mut names = BTreeSet::new();
    for (j, channel) in channels.iter().enumerate() {
        if channel.name.trim().is_empty() {
            return Err(Problem::invalid(at(&format!(".channels[{j}].name")), "a channel needs a name"));
        }
        if !names.insert(channel.name.as_str()) {
            return Err(Problem::invalid(
                at(&format!(".channels[{j}].name")),
                format!("channel `{}` appears twice", channel.name),
            ));
        }
        if channel.values.len() != length {
            return Err(Problem::invalid(
                at(&format!(".channels[{j}].values")),
                format!(
                    "has {} values, channel `{}` has {length}: every channel needs one value per timestamp",
                    channel.values.len(),
                    channels[0].name
                ),
            ));
        }
        check_future(channel, horizon, || at(&format!(".channels[{j}].future")))?;
    }
    if length == 0 {
        return Err(Problem::invalid(at(".channels[0].values"), "the history is empty"));
    }
    if let Some(season) = series.season.filter(|s| !(1..=1_000_000).contains(s)) {
        return Err(Problem::invalid(at(".season"), format!("{season} steps: give 1 to 1,000,000")));
    }
    if length > bounds.limits.max_context {
        return Err(Problem::invalid(
            at(".channels[0].values"),
            format!(
                "{length} history steps, the limit is {} (limits.max_context)",
                bounds.limits.max_context
            ),
        ));
    }
    let targets: Vec<(usize, &ChannelInput)> =
        channels.iter().enumerate().filter(|(_, c)| c.role == ChannelRole::Target).collect();
    if targets.is_empty() {
        return Err(Problem::invalid(at(".channels"), "no channel has role `target`: nothing to forecast"));
    }
    if let Some((j, _)) = targets.iter().find(|(_, c)| c.values.iter().all(Option::is_none)) {
        return Err(Problem::invalid(
            at(&format!(".channels[{j}].values")),
            "a target needs at least one value",
        ));
    }
    let others: Vec<(usize, &ChannelInput)> =
        channels.iter().enumerate().filter(|(_, c)| c.role != ChannelRole::Target).collect();
    let ordered: Vec<(usize, &ChannelInput)> = targets.iter().chain(&others).copied().collect();

    let (mut values, mut observed) = (Vec::with_capacity(ordered.len() * length), Vec::new());
    let (mut future, mut known) = (Vec::with_capacity(ordered.len() * horizon), Vec::new());
    for (j, channel) in &ordered {
        for (t, value) in channel.values.iter().enumerate() {
            match value {
                Some(v) => {
                    values.push(cell(*v, || at(&format!(".channels[{j}].values[{t}]")))?);
                    observed.push(true);
                }
                None => {
                    values.push(0.0);
                    observed.push(false);
                }
            }
        }
        let planned = channel.future.as_deref().unwrap_or(&[]);
        for t in 0..horizon {
            match planned.get(t).copied().flatten() {
                Some(v) => {
                    future.push(cell(v, || at(&format!(".channels[{j}].future[{t}]")))?);
                    known.push(true);
                }
                None => {
                    future.push(0.0);
                    known.push(false);
                }
            }
        }
    }
    let roles = ordered.iter().map(|(_, c)| Role::from(c.role)).collect();
    let batch = ModelBatch::new(roles, 1, length, horizon, values, observed, future, known)
        .map_err(|e| Problem::invalid(at(""), e.to_string()))?;
    let (future_timestamps, frequency) = future_grid(i, series, length, horizon)?;
    Ok(PreparedSeries {
        id: series.id.clone().unwrap_or_else(|| format!("series-{i}")),
        targets: targets.iter().map(|(_, c)| c.name.clone()).collect(),
        inputs: others.iter().map(|(_, c)| c.name.clone()).collect(),
        batch: match series.season {
            Some(steps) => batch.with_season(steps as usize),
            None => batch.with_season(frequency.season()).find_seasons(),
        },
        future_timestamps,
    })
}

fn check_future(channel: &ChannelInput, horizon: usize, field: impl Fn() -> String) -> Result<(), Problem> {
    let Some(future) = &channel.future else {
        return Ok(());
    };
    if channel.role == ChannelRole::Target {
        return Err(Problem::invalid(field(), "a target has no future values: it is what is forecast"));
    }
    if future.len() > horizon {
        return Err(Problem::invalid(
            field(),
            format!("{} values, more than the horizon of {horizon}", future.len()),
        ));
    }
    Ok(())
}

/// The grid of series `i` checked (strictly increasing, regular, as long as the values)
/// and continued over the horizon, with its frequency.
fn future_grid(
    i: usize,
    series: &SeriesInput,
    length: usize,
    horizon: usize,
) -> Result<(Vec<DateTime<Utc>>, Frequency), Problem> {
    let at = |rest: &str| format!("series[{i}]{rest}");
    let given = match &series.frequency {
        Some(text) => Some(crate::frequency_field::parse(at(".frequency"), text)?),
        None => None,
    };
    let (last, frequency) = match (&series.timestamps, series.start) {
        (Some(_), Some(_)) => {
            return Err(Problem::invalid(at(".start"), "give `timestamps` or `start`, not both"));
        }
        (None, None) => {
            return Err(Problem::invalid(
                at(".timestamps"),
                "the series needs `timestamps`, or `start` and `frequency`",
            ));
        }
        (None, Some(start)) => {
            let frequency = given
                .ok_or_else(|| Problem::invalid(at(".frequency"), "`start` needs a `frequency` (e.g. 5m)"))?;
            (step(start.timestamp_micros(), frequency, length - 1), frequency)
        }
        (Some(stamps), None) => {
            if stamps.len() != length {
                return Err(Problem::invalid(
                    at(".timestamps"),
                    format!("{} timestamps for {length} values per channel", stamps.len()),
                ));
            }
            let micros: Vec<i64> = stamps.iter().map(DateTime::timestamp_micros).collect();
            if let Some(t) = (1..length).find(|t| micros[*t] <= micros[t - 1]) {
                return Err(Problem::invalid(
                    at(&format!(".timestamps[{t}]")),
                    format!(
                        "{} is not after the timestamp before it: timestamps must be sorted and unique",
                        stamps[t]
                    ),
                ));
            }
            let frequency = match given {
                Some(f) => f,
                None if length > 1 => {
                    Frequency::from_spacing(micros[1] - micros[0]).expect("positive spacing")
                }
                None => {
                    return Err(Problem::invalid(
                        at(".frequency"),
                        "one timestamp does not give a grid step: add `frequency`",
                    ));
                }
            };
            if let Some(t) = (1..length).find(|t| step(micros[t - 1], frequency, 1) != micros[*t]) {
                return Err(Problem::invalid(
                    at(&format!(".timestamps[{t}]")),
                    format!(
                        "{} is off the {frequency} grid of the timestamps before it: resample onto a regular \
                         grid first (`loopcast inspect` shows how a file regularises)",
                        stamps[t]
                    ),
                ));
            }
            (micros[length - 1], frequency)
        }
    };
    let timestamps = (1..=horizon)
        .map(|k| {
            DateTime::from_timestamp_micros(step(last, frequency, k))
                .ok_or_else(|| Problem::invalid(at(".timestamps"), "the forecast runs past the year 262143"))
        })
        .collect::<Result<_, _>>()?;
    Ok((timestamps, frequency))
}

/// `at` moved `steps` grid steps on: fixed steps add; calendar months keep the offset
/// into the month.
pub(crate) fn step(at: i64, frequency: Frequency, steps: usize) -> i64 {
    match frequency {
        Frequency::Fixed(micros) => at.saturating_add(micros.saturating_mul(steps as i64)),
        Frequency::Months(_) => {
            let offset = at - frequency.cell_start(frequency.cell(at));
            frequency.cell_start(frequency.cell(at) + steps as i64) + offset
        }
    }
}

/// Series grouped into work items by shape (roles and history length): the series
/// indices of each item, and the item with `plans(i)` as series `i`'s plans.
pub(crate) fn work_items(
    prepared: &Prepared,
    plans: impl Fn(usize) -> Vec<Plan>,
    deadline: std::time::Instant,
) -> Result<(Vec<Vec<usize>>, Vec<WorkItem>), Problem> {
    let mut groups: Vec<Vec<usize>> = Vec::new();
    for (i, series) in prepared.series.iter().enumerate() {
        let shape = |j: &usize| {
            let other = &prepared.series[*j].batch;
            other.roles() == series.batch.roles() && other.context() == series.batch.context()
        };
        match groups.iter_mut().find(|g| shape(&g[0])) {
            Some(group) => group.push(i),
            None => groups.push(vec![i]),
        }
    }
    let mut items = Vec::with_capacity(groups.len());
    for group in &groups {
        let batches: Vec<&ModelBatch> = group.iter().map(|i| &prepared.series[*i].batch).collect();
        let batch = ModelBatch::concat(&batches).map_err(|e| Problem::internal(e.to_string()))?;
        let per_series: Vec<Vec<Plan>> = group.iter().map(|i| plans(*i)).collect();
        let plans = (0..per_series[0].len())
            .map(|k| {
                let values = per_series.iter().flat_map(|p| p[k].0.iter().copied()).collect();
                let known = per_series.iter().flat_map(|p| p[k].1.iter().copied()).collect();
                (values, known)
            })
            .collect();
        items.push(WorkItem { batch, plans, options: prepared.options.clone(), deadline });
    }
    Ok((groups, items))
}

/// The series' own future as its single plan (a plain forecast).
pub(crate) fn own_future(series: &PreparedSeries) -> Vec<Plan> {
    let (values, known) = series.batch.future_arrays();
    vec![(values.to_vec(), known.to_vec())]
}

/// Window `window` of `forecast` as per-channel answers at `levels`: each requested
/// level interpolated linearly between the model's neighbouring levels, and the mean as
/// the integral of the model's quantile function (flat beyond its end levels).
pub(crate) fn channel_forecasts(
    forecast: &Forecast,
    window: usize,
    names: &[String],
    levels: &[f64],
    horizon: usize,
) -> Vec<ChannelForecast> {
    let model_levels = &forecast.levels;
    let weights = mean_weights(model_levels);
    names
        .iter()
        .enumerate()
        .map(|(t, name)| {
            let at = |h: usize, q: usize| f64::from(forecast.value(window, t, h, q));
            let mean =
                (0..horizon).map(|h| weights.iter().enumerate().map(|(q, w)| w * at(h, q)).sum()).collect();
            let quantiles = levels
                .iter()
                .map(|level| QuantileTrajectory {
                    level: *level,
                    values: (0..horizon)
                        .map(|h| quantiles::interpolate(model_levels, |q| at(h, q), *level))
                        .collect(),
                })
                .collect();
            ChannelForecast { name: name.clone(), mean, quantiles }
        })
        .collect()
}

/// Loops per forecast step of `window` (each patch's count repeated over its steps).
pub(crate) fn loops_per_step(
    forecast: &Forecast,
    window: usize,
    patch_len: usize,
    horizon: usize,
) -> Vec<u32> {
    (0..horizon).map(|h| forecast.loops[window][h / patch_len]).collect()
}

/// `a − b`, trajectory by trajectory (same channels and levels).
pub(crate) fn difference(a: &[ChannelForecast], b: &[ChannelForecast]) -> Vec<ChannelForecast> {
    let minus = |x: &[f64], y: &[f64]| x.iter().zip(y).map(|(x, y)| x - y).collect();
    a.iter()
        .zip(b)
        .map(|(a, b)| ChannelForecast {
            name: a.name.clone(),
            mean: minus(&a.mean, &b.mean),
            quantiles: a
                .quantiles
                .iter()
                .zip(&b.quantiles)
                .map(|(x, y)| QuantileTrajectory { level: x.level, values: minus(&x.values, &y.values) })
                .collect(),
        })
        .collect()
}

/// Trapezoid weights of the quantile levels for the mean `∫₀¹ Q(u) du`, with `Q` flat
/// below the first level and above the last.
fn mean_weights(levels: &[f64]) -> Vec<f64> {
    let n = levels.len();
    let mut weights = vec![0.0; n];
    weights[0] += levels[0];
    weights[n - 1] += 1.0 - levels[n - 1];
    for i in 0..n - 1 {
        let width = levels[i + 1] - levels[i];
        weights[i] += width / 2.0;
        weights[i + 1] += width / 2.0;
    }
    weights
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mean_weights_sum_to_one() {
        let levels = [0.1, 0.5, 0.9];
        let weights = mean_weights(&levels);
        assert!((weights.iter().sum::<f64>() - 1.0).abs() < 1e-12);
        for (weight, expected) in weights.iter().zip([0.3, 0.4, 0.3]) {
            assert!((weight - expected).abs() < 1e-12, "{weights:?}");
        }
    }

    #[test]
    fn calendar_steps_keep_the_offset_into_the_month() {
        let at = DateTime::parse_from_rfc3339("2026-01-01T06:00:00Z").unwrap().timestamp_micros();
        let next = DateTime::from_timestamp_micros(step(at, Frequency::Months(1), 2)).unwrap();
        assert_eq!(next.to_rfc3339(), "2026-03-01T06:00:00+00:00");
        let five = Frequency::minutes(5);
        assert_eq!(step(at, five, 2) - at, 10 * 60 * 1_000_000);
    }
}
