//! Forecasts past the native rollout (issue #29): the horizon is cut into segments the
//! network rolls out natively; each segment after the first continues from the windows
//! advanced over the forecast so far, their targets filled with its medians and their
//! actions and covariates with the plan. The medians fed back are smoother than the data,
//! so a later segment alone would be too sure of itself: each of its quantiles' distances
//! from the median is at least the distance reached at the end of the segment before
//! (`max(|D|, |d|)` on each side), so intervals never narrow past the first rollout and
//! never cross. Adding the two as independent errors (`√(D² + d²)`) was tried and scored
//! worse (docs/MODEL.md, "Horizons past the rollout"): telemetry reverts to its seasons,
//! so the early errors do not compound.

use crate::model::{Forecast, ForecastOptions, LoopedWorldModel};
use crate::series_calibration::scale_intervals;
use crate::{ModelBatch, ModelError};

/// How many native horizons a forecast may reach.
pub const LONG_HORIZON_FACTOR: usize = 4;

impl LoopedWorldModel {
    /// [`LoopedWorldModel::whatif`] past the native horizon, segment by segment.
    pub(crate) fn whatif_long(
        &self,
        batch: &ModelBatch,
        plans: &[(Vec<f32>, Vec<bool>)],
        options: &ForecastOptions,
    ) -> Result<Vec<Forecast>, ModelError> {
        let (native, horizon) = (self.config().native_horizon(), batch.horizon());
        if horizon > self.config().max_horizon() {
            return Err(ModelError::Input(format!(
                "`horizon` {horizon} is beyond the {} steps the model forecasts ({LONG_HORIZON_FACTOR} rollouts \
                 of {native})",
                self.config().max_horizon()
            )));
        }
        if options.patches.is_some() {
            return Err(ModelError::Input(format!(
                "`patches` (deferred decoding) reaches only the native horizon of {native} steps"
            )));
        }
        let plain = ForecastOptions { series_calibration: 0, ..options.clone() };
        // Every plan over the whole horizon, its unknown actions settled once by the
        // policy, so that the segments agree on them.
        let mut windows = Vec::with_capacity(plans.len());
        for (future, known) in plans {
            let mut window = batch.with_future(future.clone(), known.clone())?;
            window.apply_missing_actions(options.missing_actions);
            windows.push(window);
        }
        // The first segment from one encoding of the history.
        let first = windows.iter().map(|w| w.with_horizon(native).map(|h| h.future_arrays_owned()));
        let first = first.collect::<Result<Vec<_>, _>>()?;
        let mut forecasts = self.whatif(&batch.with_horizon(native)?, &first, &plain)?;
        let median = self.config().median_level();
        let (mut done, mut last) = (native, native);
        while done < horizon {
            let steps = native.min(horizon - done);
            // Each plan's windows advanced over the segment just forecast, then every
            // plan's next segment in one batch.
            let advanced = windows
                .iter()
                .zip(&forecasts)
                .map(|(w, f)| w.advance(last, &medians_of_last(f, last, median)))
                .collect::<Result<Vec<_>, _>>()?;
            let heads = advanced.iter().map(|w| w.with_horizon(steps)).collect::<Result<Vec<_>, _>>()?;
            let next = self.forecast(&ModelBatch::concat(&heads.iter().collect::<Vec<_>>())?, &plain)?;
            let parts = next.split(&vec![batch.batch(); plans.len()]);
            forecasts =
                forecasts.into_iter().zip(parts).map(|(f, part)| append_widened(f, &part, median)).collect();
            windows = advanced;
            (done, last) = (done + steps, steps);
        }
        if options.series_calibration > 0 {
            let short = ForecastOptions { series_calibration: options.series_calibration, ..plain };
            if let Some(factors) = self.series_factors(&batch.with_horizon(native)?, &short)? {
                for forecast in &mut forecasts {
                    scale_intervals(forecast, &factors, median);
                }
            }
        }
        Ok(forecasts)
    }
}

/// The medians of the last `steps` steps of `forecast`, `[B, T, steps]`.
fn medians_of_last(forecast: &Forecast, steps: usize, median: usize) -> Vec<f32> {
    let mut out = Vec::with_capacity(forecast.batch * forecast.targets * steps);
    for b in 0..forecast.batch {
        for t in 0..forecast.targets {
            out.extend((forecast.steps - steps..forecast.steps).map(|h| forecast.value(b, t, h, median)));
        }
    }
    out
}

/// `so_far` followed by `next`, whose quantiles' distances from its median are at least
/// those at `so_far`'s last step (on each side of the median).
fn append_widened(so_far: Forecast, next: &Forecast, median: usize) -> Forecast {
    let q = so_far.levels.len();
    let steps = so_far.steps + next.steps;
    let mut values = Vec::with_capacity(so_far.batch * so_far.targets * steps * q);
    for b in 0..so_far.batch {
        for t in 0..so_far.targets {
            let start = (b * so_far.targets + t) * so_far.steps * q;
            values.extend_from_slice(&so_far.values[start..start + so_far.steps * q]);
            let end = |i: usize| {
                so_far.value(b, t, so_far.steps - 1, i) - so_far.value(b, t, so_far.steps - 1, median)
            };
            for h in 0..next.steps {
                let centre = next.value(b, t, h, median);
                values.extend((0..q).map(|i| {
                    let (reached, own) = (end(i), next.value(b, t, h, i) - centre);
                    centre + if reached.abs() > own.abs() { reached } else { own }
                }));
            }
        }
    }
    let loops =
        so_far.loops.iter().zip(&next.loops).map(|(a, b)| a.iter().chain(b).copied().collect()).collect();
    Forecast { steps, values, loops, ..so_far }
}
