//! Classical baselines.

/// Seasonal naive: each future step repeats the value one season earlier (the last
/// observed season, cycled). Missing (`NaN`) context values are taken from the season
/// before, falling back to the last observed value. `season` 1 is the naive forecast.
/// An empty or all-missing context forecasts `NaN`.
pub fn seasonal_naive(context: &[f64], season: usize, horizon: usize) -> Vec<f64> {
    let season = season.max(1);
    let last_observed = context.iter().rev().copied().find(|v| v.is_finite()).unwrap_or(f64::NAN);
    let n = context.len();
    let lookup = |mut i: usize| loop {
        if context[i].is_finite() {
            return context[i];
        }
        if i < season {
            return last_observed;
        }
        i -= season;
    };
    (0..horizon)
        .map(|h| {
            if n == 0 {
                return f64::NAN;
            }
            let back = season - h % season;
            if back > n { last_observed } else { lookup(n - back) }
        })
        .collect()
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
}
