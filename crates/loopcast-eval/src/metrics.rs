//! Forecast metrics and their aggregation. Truth values that are `NaN` are missing and
//! skipped; a metric with nothing to measure is `None`.

/// Quantile forecasts of one trajectory: `values[h][q]` at `levels[q]`, increasing levels.
#[derive(Debug, Clone, Copy)]
pub struct Quantiles<'a> {
    /// Quantile levels in (0, 1), increasing.
    pub levels: &'a [f64],
    /// One row of `levels.len()` values per step.
    pub values: &'a [Vec<f64>],
}

/// The pinball (quantile) loss of `forecast` at `level` for `truth`.
pub fn pinball(truth: f64, forecast: f64, level: f64) -> f64 {
    let error = truth - forecast;
    (level * error).max((level - 1.0) * error)
}

/// Mean absolute error over the observed steps.
pub fn mae(truth: &[f64], point: &[f64]) -> Option<f64> {
    mean(truth.iter().zip(point).filter(|(y, _)| y.is_finite()).map(|(y, f)| (y - f).abs()))
}

/// The in-sample mean absolute error of the seasonal naive forecast on `context`, the
/// MASE denominator: `mean |y_t − y_{t−season}|` over pairs where both are observed.
pub fn seasonal_scale(context: &[f64], season: usize) -> Option<f64> {
    let season = season.max(1);
    if context.len() <= season {
        return None;
    }
    mean(
        context[season..]
            .iter()
            .zip(context)
            .filter(|(now, then)| now.is_finite() && then.is_finite())
            .map(|(now, then)| (now - then).abs()),
    )
}

/// Mean absolute scaled error: the forecast's MAE over the seasonal naive in-sample MAE
/// of the context. `None` when the context's scale is zero or unmeasurable, or nothing
/// in `truth` is observed.
pub fn mase(context: &[f64], season: usize, truth: &[f64], point: &[f64]) -> Option<f64> {
    let scale = seasonal_scale(context, season).filter(|s| *s > 0.0)?;
    Some(mae(truth, point)? / scale)
}

/// Weighted quantile loss (GluonTS `mean_wQuantileLoss`): `2 Σ pinball / Σ |y|`, averaged
/// over the levels. `None` when no truth is observed or every observed value is zero.
pub fn weighted_quantile_loss(truth: &[f64], forecast: Quantiles<'_>) -> Option<f64> {
    let denominator: f64 = truth.iter().filter(|y| y.is_finite()).map(|y| y.abs()).sum();
    if denominator <= 0.0 {
        return None;
    }
    let levels = forecast.levels;
    let total: f64 = truth
        .iter()
        .zip(forecast.values)
        .filter(|(y, _)| y.is_finite())
        .map(|(y, row)| levels.iter().zip(row).map(|(l, f)| pinball(*y, *f, *l)).sum::<f64>())
        .sum();
    Some(2.0 * total / denominator / levels.len() as f64)
}

/// CRPS approximated from quantiles: twice the pinball loss averaged over levels and
/// observed steps, in the data's units.
pub fn crps(truth: &[f64], forecast: Quantiles<'_>) -> Option<f64> {
    let levels = forecast.levels;
    mean(truth.iter().zip(forecast.values).filter(|(y, _)| y.is_finite()).map(|(y, row)| {
        2.0 * levels.iter().zip(row).map(|(l, f)| pinball(*y, *f, *l)).sum::<f64>() / levels.len() as f64
    }))
}

/// Share of observed steps whose truth lies within `[lower, upper]`.
pub fn coverage(truth: &[f64], lower: &[f64], upper: &[f64]) -> Option<f64> {
    mean(
        truth
            .iter()
            .zip(lower.iter().zip(upper))
            .filter(|(y, _)| y.is_finite())
            .map(|(y, (l, u))| f64::from(u8::from(*l <= *y && *y <= *u))),
    )
}

/// Geometric mean of the positive finite values; `None` if there are none. Zeros and
/// non-finite ratios are left out (a perfect or broken series says nothing about scale).
pub fn geometric_mean(values: impl IntoIterator<Item = f64>) -> Option<f64> {
    mean(values.into_iter().filter(|v| v.is_finite() && *v > 0.0).map(f64::ln)).map(f64::exp)
}

/// GIFT-Eval's relative score: the geometric mean over series of `model / baseline`,
/// over the series where both are defined.
pub fn relative_score(pairs: impl IntoIterator<Item = (Option<f64>, Option<f64>)>) -> Option<f64> {
    geometric_mean(pairs.into_iter().filter_map(|(model, baseline)| Some(model? / baseline?)))
}

fn mean(values: impl Iterator<Item = f64>) -> Option<f64> {
    let (sum, count) = values.fold((0.0, 0usize), |(s, n), v| (s + v, n + 1));
    (count > 0).then(|| sum / count as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-12
    }

    #[test]
    fn pinball_weighs_under_and_over_forecasts_by_the_level() {
        assert!(close(pinball(10.0, 8.0, 0.9), 1.8));
        assert!(close(pinball(10.0, 12.0, 0.9), 0.2));
        assert!(close(pinball(10.0, 12.0, 0.5), 1.0));
    }

    #[test]
    fn mase_by_hand() {
        // Season 2: |3−1| + |2−2| + |5−3| + |4−2| = 6 over 4 pairs → scale 1.5.
        let context = [1.0, 2.0, 3.0, 2.0, 5.0, 4.0];
        assert!(close(seasonal_scale(&context, 2).unwrap(), 1.5));
        // MAE (1 + 2) / 2 = 1.5 → MASE 1.
        assert!(close(mase(&context, 2, &[6.0, 6.0], &[5.0, 4.0]).unwrap(), 1.0));
    }

    #[test]
    fn missing_values_are_skipped_and_zero_scale_is_none() {
        let context = [1.0, f64::NAN, 3.0, 2.0, 5.0];
        // Pairs (3,1) and (5,3); (2,NaN) is skipped.
        assert!(close(seasonal_scale(&context, 2).unwrap(), 2.0));
        assert!(close(mae(&[1.0, f64::NAN, 3.0], &[2.0, 100.0, 3.0]).unwrap(), 0.5));
        assert_eq!(mase(&[4.0, 4.0, 4.0, 4.0], 1, &[1.0], &[2.0]), None);
        assert_eq!(mase(&[1.0, 2.0, 3.0], 1, &[f64::NAN], &[2.0]), None);
        assert_eq!(seasonal_scale(&[1.0, 2.0], 2), None);
    }

    #[test]
    fn weighted_quantile_loss_and_crps_by_hand() {
        let levels = [0.1, 0.5, 0.9];
        let values = vec![vec![8.0, 10.0, 12.0], vec![1.0, 2.0, 3.0]];
        let forecast = Quantiles { levels: &levels, values: &values };
        let truth = [11.0, 4.0];
        // Step 1: 0.1·3 + 0.5·1 + 0.1·1 = 0.9; step 2: 0.1·3 + 0.5·2 + 0.9·1 = 2.2.
        let total = 0.9 + 2.2;
        let wql = weighted_quantile_loss(&truth, forecast).unwrap();
        assert!(close(wql, 2.0 * total / 15.0 / 3.0), "{wql}");
        let crps = crps(&truth, forecast).unwrap();
        assert!(close(crps, 2.0 * total / 3.0 / 2.0), "{crps}");
        assert_eq!(weighted_quantile_loss(&[0.0, 0.0], forecast), None);
        assert_eq!(weighted_quantile_loss(&[f64::NAN, f64::NAN], forecast), None);
    }

    #[test]
    fn coverage_counts_observed_values_inside_the_interval() {
        let truth = [1.0, 5.0, f64::NAN, 3.0];
        let cover = coverage(&truth, &[0.0, 0.0, 0.0, 3.0], &[2.0, 4.0, 9.0, 3.0]).unwrap();
        assert!(close(cover, 2.0 / 3.0));
        assert_eq!(coverage(&[f64::NAN], &[0.0], &[1.0]), None);
    }

    #[test]
    fn geometric_aggregation_skips_undefined_series() {
        assert!(close(geometric_mean([2.0, 8.0]).unwrap(), 4.0));
        assert_eq!(geometric_mean([0.0, f64::NAN]), None);
        let score = relative_score([(Some(1.0), Some(2.0)), (Some(2.0), Some(1.0)), (None, Some(1.0))]);
        assert!(close(score.unwrap(), 1.0));
    }
}
