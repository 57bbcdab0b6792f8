//! Classical baselines: naive, seasonal naive, AutoETS and MSTL (the last two from the
//! `augurs` crates, Rust ports of statsforecast's), each with Gaussian prediction
//! intervals so that every baseline yields quantiles as loopcast does.
//!
//! Interval conventions follow statsforecast, so that figures can be checked against it
//! on the same windows (`scripts/compare_statsforecast.py`): the naive forecasts take
//! their spread from the root mean square of the in-sample one-step (or one-season)
//! errors and widen it with the square root of the steps (or whole seasons) ahead; the
//! augurs models report their own intervals, read back into a standard deviation per
//! step.

use augurs_core::{Fit, Predict};
use augurs_ets::AutoETS;
use augurs_ets::trend::AutoETSTrendModel;
use augurs_mstl::MSTLModel;
use loopcast_core::seasonal_naive_sources;

/// Why a fitted baseline has no forecast.
#[derive(Debug, thiserror::Error)]
pub enum BaselineError {
    /// The context has no observed value.
    #[error("the context has no observed value")]
    NoData,
    /// The model could not be fitted or could not predict.
    #[error("{model} failed: {message}")]
    Model {
        /// Which baseline.
        model: &'static str,
        /// The library's reason.
        message: String,
    },
}

/// A forecast as a normal distribution per step: the point forecast and its standard
/// deviation.
#[derive(Debug, Clone, PartialEq)]
pub struct GaussianForecast {
    /// Point forecast per step (the mean and median).
    pub point: Vec<f64>,
    /// Standard deviation per step (0 when the baseline has no spread to report).
    pub std_dev: Vec<f64>,
}

impl GaussianForecast {
    /// The forecast's quantiles at `levels`: one row of `levels.len()` values per step.
    pub fn quantiles(&self, levels: &[f64]) -> Vec<Vec<f64>> {
        let z: Vec<f64> = levels.iter().map(|l| standard_normal_quantile(*l)).collect();
        self.point
            .iter()
            .zip(&self.std_dev)
            .map(|(mean, sd)| z.iter().map(|z| mean + z * sd).collect())
            .collect()
    }
}

/// The quantile function of the standard normal distribution (0 at 0.5).
pub fn standard_normal_quantile(level: f64) -> f64 {
    distrs::Normal::ppf(level, 0.0, 1.0)
}

/// Naive: every step repeats the last observed value; the spread grows with `√h`.
pub fn naive(context: &[f64], horizon: usize) -> GaussianForecast {
    seasonal_naive_with_intervals(context, 1, horizon)
}

/// Seasonal naive with statsforecast's intervals: the point forecast of
/// [`seasonal_naive`], and a standard deviation of `σ √(k + 1)` at step `h` (from 1),
/// where `k = ⌊(h − 1) / season⌋` whole seasons lie before it and `σ` is the root mean
/// square of the in-sample errors `y_t − y_{t−season}` over observed pairs.
pub fn seasonal_naive_with_intervals(context: &[f64], season: usize, horizon: usize) -> GaussianForecast {
    let season = season.max(1);
    let point = seasonal_naive(context, season, horizon);
    let sigma = root_mean_square(
        context
            .iter()
            .skip(season)
            .zip(context)
            .filter(|(now, then)| now.is_finite() && then.is_finite())
            .map(|(now, then)| now - then),
    )
    .unwrap_or(0.0);
    let std_dev = (0..horizon).map(|h| sigma * ((h / season + 1) as f64).sqrt()).collect();
    GaussianForecast { point, std_dev }
}

/// Seasonal naive: each future step repeats the value one season earlier (the last
/// observed season, cycled). Missing (`NaN`) context values are taken from the season
/// before, falling back to the last observed value. `season` 1 is the naive forecast.
/// An empty or all-missing context forecasts `NaN`.
pub fn seasonal_naive(context: &[f64], season: usize, horizon: usize) -> Vec<f64> {
    match seasonal_naive_sources(context.len(), season, horizon, |i| context[i].is_finite()) {
        Some(sources) => sources.into_iter().map(|i| context[i]).collect(),
        None => vec![f64::NAN; horizon],
    }
}

/// The context with missing values filled, for models that need every value: leading
/// gaps are dropped, and a gap takes the value one season earlier (the previous value
/// when that is missing too). `None` when nothing is observed.
pub fn fill_missing(context: &[f64], season: usize) -> Option<Vec<f64>> {
    let first = context.iter().position(|v| v.is_finite())?;
    let season = season.max(1);
    let mut filled: Vec<f64> = Vec::with_capacity(context.len() - first);
    for value in &context[first..] {
        let i = filled.len();
        let value = if value.is_finite() {
            *value
        } else if i >= season {
            filled[i - season]
        } else {
            filled[i - 1]
        };
        filled.push(value);
    }
    Some(filled)
}

/// The interval level the augurs models are asked for; their half-width at this level
/// gives the standard deviation.
const INTERVAL_LEVEL: f64 = 0.8;

/// AutoETS (augurs, after statsforecast): error, trend and damping chosen by AICc among
/// the non-seasonal models (`ZZN`; augurs has no seasonal ETS yet, so seasonality is
/// [`mstl`]'s job). Missing values are filled first ([`fill_missing`]).
pub fn auto_ets(context: &[f64], season: usize, horizon: usize) -> Result<GaussianForecast, BaselineError> {
    let y = fill_missing(context, season).ok_or(BaselineError::NoData)?;
    let fail = |e: &dyn std::fmt::Display| BaselineError::Model { model: "AutoETS", message: e.to_string() };
    let model = AutoETS::non_seasonal().fit(&y).map_err(|e| fail(&e))?;
    let forecast = model.predict(horizon, INTERVAL_LEVEL).map_err(|e| fail(&e))?;
    gaussian(forecast, "AutoETS")
}

/// MSTL (augurs): the context is decomposed into a trend and one seasonal component per
/// period by repeated STL; the seasonal components are carried forward and the trend is
/// forecast by non-seasonal AutoETS. Periods longer than half the context are dropped;
/// with none left, it is AutoETS alone. Missing values are filled first.
pub fn mstl(context: &[f64], periods: &[usize], horizon: usize) -> Result<GaussianForecast, BaselineError> {
    let shortest = periods.iter().copied().min().unwrap_or(1);
    let y = fill_missing(context, shortest).ok_or(BaselineError::NoData)?;
    let periods: Vec<usize> = periods.iter().copied().filter(|p| *p > 1 && 2 * p <= y.len()).collect();
    if periods.is_empty() {
        return auto_ets(&y, 1, horizon);
    }
    let fail = |e: &dyn std::fmt::Display| BaselineError::Model { model: "MSTL", message: e.to_string() };
    let trend = AutoETSTrendModel::from(AutoETS::non_seasonal());
    let model = MSTLModel::new(periods, trend).fit(&y).map_err(|e| fail(&e))?;
    let forecast = model.predict(horizon, INTERVAL_LEVEL).map_err(|e| fail(&e))?;
    gaussian(forecast, "MSTL")
}

/// Reads an augurs forecast's interval back into a standard deviation per step.
fn gaussian(forecast: augurs_core::Forecast, model: &'static str) -> Result<GaussianForecast, BaselineError> {
    let intervals =
        forecast.intervals.ok_or(BaselineError::Model { model, message: "no intervals".into() })?;
    let z = standard_normal_quantile(0.5 + INTERVAL_LEVEL / 2.0);
    let std_dev =
        intervals.upper.iter().zip(&intervals.lower).map(|(u, l)| ((u - l) / (2.0 * z)).max(0.0)).collect();
    if forecast.point.iter().any(|v| !v.is_finite()) {
        return Err(BaselineError::Model { model, message: "non-finite forecast".into() });
    }
    Ok(GaussianForecast { point: forecast.point, std_dev })
}

fn root_mean_square(values: impl Iterator<Item = f64>) -> Option<f64> {
    let (sum, count) = values.fold((0.0, 0usize), |(s, n), v| (s + v * v, n + 1));
    (count > 0).then(|| (sum / count as f64).sqrt())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repeats_the_last_season_exactly() {
        let context = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0];
        assert_eq!(seasonal_naive(&context, 3, 7), vec![5.0, 6.0, 7.0, 5.0, 6.0, 7.0, 5.0]);
        assert_eq!(seasonal_naive(&context, 1, 2), vec![7.0, 7.0]);
    }

    #[test]
    fn missing_values_come_from_the_season_before() {
        let context = [1.0, 2.0, 3.0, 4.0, f64::NAN, 6.0];
        assert_eq!(seasonal_naive(&context, 3, 3), vec![4.0, 2.0, 6.0]);
        assert!(seasonal_naive(&[], 3, 2).iter().all(|v| v.is_nan()));
        // A season longer than the context falls back to the last value.
        assert_eq!(seasonal_naive(&[1.0, 2.0], 24, 2), vec![2.0, 2.0]);
    }

    #[test]
    fn seasonal_naive_spread_grows_by_whole_seasons() {
        // Season 2: errors 2, 0, 2, 2 → σ = √3.
        let context = [1.0, 2.0, 3.0, 2.0, 5.0, 4.0];
        let forecast = seasonal_naive_with_intervals(&context, 2, 5);
        assert_eq!(forecast.point, vec![5.0, 4.0, 5.0, 4.0, 5.0]);
        let sigma = 3f64.sqrt();
        let expected = [sigma, sigma, sigma * 2f64.sqrt(), sigma * 2f64.sqrt(), sigma * 3f64.sqrt()];
        for (got, want) in forecast.std_dev.iter().zip(expected) {
            assert!((got - want).abs() < 1e-12, "{got} vs {want}");
        }
        // Naive: errors 1, 1, −1, 3, −1 → σ = √(13/5), growing with √h.
        let naive = naive(&context, 2);
        assert_eq!(naive.point, vec![4.0, 4.0]);
        assert!((naive.std_dev[1] - (13.0f64 / 5.0).sqrt() * 2f64.sqrt()).abs() < 1e-12);
    }

    #[test]
    fn quantiles_are_the_normal_quantiles_around_the_point() {
        let forecast = GaussianForecast { point: vec![10.0], std_dev: vec![2.0] };
        let q = forecast.quantiles(&[0.1, 0.5, 0.9]);
        assert!((q[0][1] - 10.0).abs() < 1e-12);
        // Φ⁻¹(0.9) = 1.2815515655.
        assert!((q[0][2] - (10.0 + 2.0 * 1.281_551_565_5)).abs() < 1e-8, "{:?}", q);
        assert!((q[0][0] + q[0][2] - 20.0).abs() < 1e-9);
    }

    #[test]
    fn filling_takes_the_season_before() {
        let filled = fill_missing(&[f64::NAN, 1.0, 2.0, 3.0, f64::NAN, f64::NAN], 2).unwrap();
        assert_eq!(filled, vec![1.0, 2.0, 3.0, 2.0, 3.0]);
        assert_eq!(fill_missing(&[1.0, f64::NAN], 4).unwrap(), vec![1.0, 1.0]);
        assert_eq!(fill_missing(&[f64::NAN], 2), None);
    }

    #[test]
    fn auto_ets_matches_statsforecast() {
        // statsforecast 2.x, `AutoETS(season_length=1, model="ZZN")` on this series picks
        // ETS(A,A,N) and forecasts these means and 80 % intervals.
        let y: Vec<f64> =
            (0..60).map(|t| 10.0 + 0.5 * t as f64 + if t % 2 == 0 { 0.3 } else { -0.3 }).collect();
        let mean = [39.98433861, 40.48383925, 40.9833399, 41.48284054, 41.98234118, 42.48184182];
        let (low, high) = ([39.57916993, 42.07667272], [40.38950729, 42.88701093]);
        let forecast = auto_ets(&y, 1, 6).unwrap();
        for (got, want) in forecast.point.iter().zip(mean) {
            assert!((got - want).abs() < 1e-6, "{got} vs {want}");
        }
        let z = standard_normal_quantile(0.9);
        for (h, i) in [(0, 0), (5, 1)] {
            let want = (high[i] - low[i]) / (2.0 * z);
            assert!((forecast.std_dev[h] - want).abs() < 1e-6, "step {h}: {} vs {want}", forecast.std_dev[h]);
        }
    }

    #[test]
    fn mstl_carries_the_season_forward() {
        let y: Vec<f64> = (0..96).map(|t| 50.0 + 10.0 * (t % 12) as f64).collect();
        let forecast = mstl(&y, &[12], 12).unwrap();
        for (h, value) in forecast.point.iter().enumerate() {
            let want = 50.0 + 10.0 * h as f64;
            assert!((value - want).abs() < 1.0, "step {h}: {value} vs {want}");
        }
        // A period longer than half the context is dropped: plain AutoETS.
        assert!(mstl(&y[..20], &[12], 3).is_ok());
        assert!(matches!(auto_ets(&[f64::NAN; 4], 1, 2), Err(BaselineError::NoData)));
    }
}
