//! Quantile functions known at a few levels, linear between them: the value at any level
//! and the probability of falling under a value.

/// The value at `level` of the quantile function known at `levels` (linear between).
pub fn interpolate(levels: &[f64], value: impl Fn(usize) -> f64, level: f64) -> f64 {
    let upper = levels.partition_point(|l| *l < level).min(levels.len() - 1);
    if upper == 0 || levels[upper] == level {
        return value(upper);
    }
    let (lo, hi) = (levels[upper - 1], levels[upper]);
    let share = (level - lo) / (hi - lo);
    value(upper - 1) * (1.0 - share) + value(upper) * share
}

/// `P(Y ≤ x)` from a quantile function known at `levels` (linear between them), clamped to
/// the levels' range.
pub fn cdf(levels: &[f64], value: impl Fn(usize) -> f64, x: f64) -> f64 {
    let n = levels.len();
    if x < value(0) {
        return levels[0];
    }
    if x >= value(n - 1) {
        return levels[n - 1];
    }
    let upper = (1..n).find(|q| value(*q) > x).expect("x is under the last value");
    let (lo, hi) = (value(upper - 1), value(upper));
    levels[upper - 1] + (x - lo) / (hi - lo) * (levels[upper] - levels[upper - 1])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interpolation_is_exact_at_levels_and_linear_between() {
        let levels = [0.1, 0.5, 0.9];
        let values = [1.0, 2.0, 4.0];
        assert_eq!(interpolate(&levels, |q| values[q], 0.5), 2.0);
        assert_eq!(interpolate(&levels, |q| values[q], 0.7), 3.0);
        assert_eq!(interpolate(&levels, |q| values[q], 0.1), 1.0);
        assert_eq!(interpolate(&levels, |q| values[q], 0.9), 4.0);
    }

    #[test]
    fn the_cdf_inverts_the_interpolation_and_clamps_to_the_levels() {
        let levels = [0.1, 0.5, 0.9];
        let values = [1.0, 2.0, 4.0];
        assert!((cdf(&levels, |q| values[q], 3.0) - 0.7).abs() < 1e-12);
        assert_eq!(cdf(&levels, |q| values[q], 0.0), 0.1);
        assert_eq!(cdf(&levels, |q| values[q], 9.0), 0.9);
    }
}
