//! Interval widths fitted on each series' own history, on backtests over its end.
//!
//! The model's interval scale is fitted once, after training, on the simulator's held-out
//! seeds; a user's series can be calmer or wilder than those. Before answering, the model
//! forecasts the end of each window's own context as it stood one, two, … horizons
//! earlier (one more forward pass), and widens or narrows that series' quantiles around
//! the median by the factor most backtests favour: the geometric median of the factors
//! that minimise each backtest's quantile loss, shrunk towards 1 by how few cells the
//! backtests had. The median is never moved. Like the split conformal intervals of
//! classical forecasting libraries, but fitted on every level's loss rather than one
//! interval's coverage, and robust to one backtest over an incident: on the data the model
//! may be tuned on (M1, Tourism, the simulator's held-out windows) each of those choices
//! gave the lower loss (docs/MODEL.md, "Intervals per series").

use crate::{Forecast, ModelBatch, ModelError};

/// Backtest cells worth as much as the global scale: with `n` cells a series' own factor
/// `f` counts as `f^(n / (n + PRIOR_CELLS))` (chosen on M1, Tourism and the simulator's
/// held-out windows; 48 and 200 tried).
const PRIOR_CELLS: f64 = 200.0;
/// A series' factor stays within `[1/LIMIT, LIMIT]`, searched on a log grid of
/// `2·GRID_STEPS + 1` points.
const LIMIT: f64 = 4.0;
const GRID_STEPS: u32 = 24;
/// A backtest with fewer scored cells than this is left out.
const MIN_CELLS: usize = 5;

/// The backtests of a batch: the windows cut one, two, … horizons back, and the truth
/// they are scored on.
#[derive(Debug)]
pub(crate) struct Backtests {
    /// Each backtest's windows in turn (nearest first), `origins × B` in all.
    pub(crate) batch: ModelBatch,
    windows: usize,
    /// Per backtest, the targets' values over its future, `[B, T, H]`, and whether each
    /// was observed and its window had history enough to forecast from.
    truth: Vec<(Vec<f32>, Vec<bool>)>,
}

impl Backtests {
    /// Up to `origins` backtests of every window of `batch`, one horizon apart, as many
    /// as its context holds beside a history of at least `min_history` steps; `None` when
    /// it holds none. A target is scored in a backtest only where its history before the
    /// cut has `min_history` observed steps and a season.
    pub(crate) fn new(
        batch: &ModelBatch,
        origins: usize,
        min_history: usize,
    ) -> Result<Option<Self>, ModelError> {
        let (horizon, context) = (batch.horizon(), batch.context());
        let origins = origins.min(context.saturating_sub(min_history.max(1)) / horizon);
        if origins == 0 {
            return Ok(None);
        }
        let (channels, targets) = (batch.roles().len(), batch.targets());
        let mut parts = Vec::with_capacity(origins);
        let mut truth = Vec::with_capacity(origins);
        for j in 1..=origins {
            let (cut, values, mut seen) = batch.cut_back(j * horizon)?;
            let (_, observed) = cut.context_arrays();
            for b in 0..batch.batch() {
                for t in 0..targets {
                    let row = (b * channels + t) * context;
                    let steps = observed[row..row + context].iter().filter(|o| **o).count();
                    if steps < min_history.max(batch.seasons()[b]) {
                        let at = (b * targets + t) * horizon;
                        seen[at..at + horizon].fill(false);
                    }
                }
            }
            parts.push(cut);
            truth.push((values, seen));
        }
        let parts: Vec<&ModelBatch> = parts.iter().collect();
        Ok(Some(Self { batch: ModelBatch::concat(&parts)?, windows: batch.batch(), truth }))
    }

    /// Each series' factor, `[B, T]`, from the forecast of [`Backtests::batch`] over the
    /// whole horizon; `median` is the index of its median level.
    pub(crate) fn factors(&self, forecast: &Forecast, median: usize) -> Vec<f32> {
        let (targets, levels, horizon) = (forecast.targets, &forecast.levels, self.batch.horizon());
        let mut factors = Vec::with_capacity(self.windows * targets);
        for b in 0..self.windows {
            for t in 0..targets {
                // Per backtest, every scored cell: the value that came and its quantiles.
                let backtests = self.truth.iter().enumerate().map(|(j, (truth, seen))| {
                    let window = j * self.windows + b;
                    (0..horizon.min(forecast.steps))
                        .filter(|h| seen[(b * targets + t) * horizon + h])
                        .map(|h| {
                            let quantiles =
                                (0..levels.len()).map(|l| f64::from(forecast.value(window, t, h, l)));
                            (f64::from(truth[(b * targets + t) * horizon + h]), quantiles.collect())
                        })
                        .collect::<Vec<(f64, Vec<f64>)>>()
                });
                factors.push(fitted_factor(backtests, levels, median) as f32);
            }
        }
        factors
    }
}

/// A series' factor from its `backtests` (each a list of cells: a value and the quantiles
/// forecast for it): per backtest of at least `MIN_CELLS` cells, the factor on the
/// quantiles' distances from the median (`median`, an index into `levels`) that minimises
/// its quantile loss, searched on a log grid within `[1/LIMIT, LIMIT]`; then their
/// geometric median, so that one backtest over an incident does not decide it, shrunk
/// towards 1 by the number of cells. 1 without a backtest of that size.
fn fitted_factor(
    backtests: impl Iterator<Item = Vec<(f64, Vec<f64>)>>,
    levels: &[f64],
    median: usize,
) -> f64 {
    let (mut logs, mut cells) = (Vec::new(), 0);
    for backtest in backtests.filter(|b| b.len() >= MIN_CELLS) {
        logs.push(best_factor(&backtest, levels, median).ln());
        cells += backtest.len();
    }
    if logs.is_empty() {
        return 1.0;
    }
    logs.sort_by(f64::total_cmp);
    let k = logs.len();
    let middle = if k % 2 == 1 { logs[k / 2] } else { 0.5 * (logs[k / 2 - 1] + logs[k / 2]) };
    let n = cells as f64;
    (middle * n / (n + PRIOR_CELLS)).exp()
}

/// The factor on the grid that minimises the quantile loss of `cells`.
fn best_factor(cells: &[(f64, Vec<f64>)], levels: &[f64], median: usize) -> f64 {
    let loss = |factor: f64| -> f64 {
        let pinball = |(y, quantiles): &(f64, Vec<f64>)| -> f64 {
            let middle = quantiles[median];
            levels
                .iter()
                .zip(quantiles)
                .map(|(level, q)| {
                    let gap = y - (middle + factor * (q - middle));
                    if gap >= 0.0 { level * gap } else { (level - 1.0) * gap }
                })
                .sum()
        };
        cells.iter().map(pinball).sum()
    };
    let grid = (0..=2 * GRID_STEPS).map(|i| LIMIT.powf(f64::from(i) / f64::from(GRID_STEPS) - 1.0));
    grid.min_by(|a, b| loss(*a).total_cmp(&loss(*b))).unwrap_or(1.0)
}

/// `forecast` with the quantiles of window `b`, target `t` moved from their median (level
/// index `median`) by `factors[b·T + t]`.
pub(crate) fn scale_intervals(forecast: &mut Forecast, factors: &[f32], median: usize) {
    let (steps, levels) = (forecast.steps, forecast.levels.len());
    for (series, factor) in factors.iter().enumerate() {
        if *factor == 1.0 {
            continue;
        }
        for row in forecast.values[series * steps * levels..(series + 1) * steps * levels].chunks_mut(levels)
        {
            let middle = row[median];
            for value in row {
                *value = middle + factor * (*value - middle);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LEVELS: [f64; 3] = [0.1, 0.5, 0.9];

    /// A backtest whose values fall at `gaps` from a median of 0 with quantiles at ±1.
    fn backtest(gaps: impl Iterator<Item = f64>) -> Vec<(f64, Vec<f64>)> {
        gaps.map(|g| (g, vec![-1.0, 0.0, 1.0])).collect()
    }

    /// `k` backtests of 64 cells spread evenly over ±`spread`.
    fn spread(spread: f64, k: usize) -> Vec<Vec<(f64, Vec<f64>)>> {
        (0..k).map(|_| backtest((0..64).map(|i| spread * (f64::from(i) / 31.5 - 1.0)))).collect()
    }

    #[test]
    fn the_factor_fits_the_spread_and_leans_on_the_global_scale_when_cells_are_few() {
        // Values spread wider than the interval: widen, shrunk by 256 / 456.
        let wide = fitted_factor(spread(4.0, 4).into_iter(), &LEVELS, 1);
        let best = best_factor(&spread(4.0, 1)[0], &LEVELS, 1);
        assert!(best > 2.5, "{best}");
        assert!((wide - best.powf(256.0 / 456.0)).abs() < 1e-9, "{wide}");
        let calm = fitted_factor(spread(0.1, 8).into_iter(), &LEVELS, 1);
        assert!(calm < 0.5, "a calm series narrows: {calm}");
        let few = backtest((0..MIN_CELLS - 1).map(|i| 10.0 * i as f64));
        assert_eq!(fitted_factor(std::iter::once(few), &LEVELS, 1), 1.0, "too few cells");
        let wild = backtest((0..10_000).map(|i| 1e9 * f64::from(i % 3) - 1e9));
        assert!(fitted_factor(std::iter::once(wild), &LEVELS, 1) <= LIMIT + 1e-9);
    }

    #[test]
    fn one_backtest_over_an_incident_does_not_decide_the_factor() {
        let mut backtests = spread(1.25, 4);
        let calm = fitted_factor(backtests.clone().into_iter(), &LEVELS, 1);
        backtests[1] = backtest((0..64).map(|i| 1_000.0 * (f64::from(i) / 31.5 - 1.0)));
        let with_incident = fitted_factor(backtests.into_iter(), &LEVELS, 1);
        assert!(with_incident / calm < 1.2, "{calm} → {with_incident}");
    }
}
