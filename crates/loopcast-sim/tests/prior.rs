//! The synthetic prior covers each declared family, with the shape statistics that
//! define it.

use std::collections::HashSet;

use loopcast_sim::prior::{Family, PriorSpec, component, group, prior_series};

const N: usize = 4096;
/// Five-minute steps: an hour is 12 steps, a day 288, a week 2016.
const STEP_SECONDS: f64 = 300.0;

fn mean(x: &[f64]) -> f64 {
    x.iter().sum::<f64>() / x.len() as f64
}

fn variance(x: &[f64]) -> f64 {
    let m = mean(x);
    x.iter().map(|v| (v - m).powi(2)).sum::<f64>() / x.len() as f64
}

/// Lag-`k` autocorrelation.
fn acf(x: &[f64], k: usize) -> f64 {
    let m = mean(x);
    let v = variance(x).max(1e-300);
    x.iter().zip(&x[k..]).map(|(a, b)| (a - m) * (b - m)).sum::<f64>() / (x.len() as f64 * v)
}

fn diff(x: &[f64]) -> Vec<f64> {
    x.windows(2).map(|w| w[1] - w[0]).collect()
}

/// Period (in steps) of the strongest Fourier frequency of `x`.
fn dominant_period(x: &[f64]) -> f64 {
    let n = x.len();
    let m = mean(x);
    let power = |k: usize| {
        let (mut re, mut im) = (0.0, 0.0);
        for (t, v) in x.iter().enumerate() {
            let angle = 2.0 * std::f64::consts::PI * (k * t) as f64 / n as f64;
            re += (v - m) * angle.cos();
            im += (v - m) * angle.sin();
        }
        re * re + im * im
    };
    let best = (1..n / 2).max_by(|a, b| power(*a).total_cmp(&power(*b))).unwrap();
    n as f64 / best as f64
}

#[test]
fn seasonal_components_peak_at_their_declared_period() {
    for seed in 0..12 {
        let (values, recipe) = component(Family::Seasonal, seed, N, STEP_SECONDS);
        let declared = recipe.period_steps.unwrap();
        assert!([12.0, 288.0, 2016.0].contains(&declared), "seed {seed}: period {declared}");
        // Fourier bins are n/k apart: the peak is within one bin of the declared period.
        let found = dominant_period(&values);
        let k = N as f64 / declared;
        assert!(
            (found - declared).abs() <= declared / k.floor().max(1.0),
            "seed {seed}: {found} vs {declared}"
        );
    }
}

#[test]
fn trends_are_smooth_and_move() {
    for seed in 0..12 {
        let (values, _) = component(Family::Trend, seed, N, STEP_SECONDS);
        let range = values.iter().copied().fold(f64::NEG_INFINITY, f64::max)
            - values.iter().copied().fold(f64::INFINITY, f64::min);
        assert!(range > 0.1, "seed {seed}: range {range}");
        let roughness = variance(&diff(&diff(&values))).sqrt() / variance(&values).sqrt();
        assert!(roughness < 0.05, "seed {seed}: roughness {roughness}");
    }
}

#[test]
fn gaussian_processes_are_smooth_and_stationary() {
    for seed in 0..12 {
        let (values, _) = component(Family::GaussianProcess, seed, N, STEP_SECONDS);
        assert!(acf(&values, 1) > 0.9, "seed {seed}: acf {}", acf(&values, 1));
        let v = variance(&values);
        assert!((0.05..5.0).contains(&v), "seed {seed}: variance {v}");
    }
}

#[test]
fn random_walks_have_white_increments_and_persistent_levels() {
    for seed in 0..12 {
        let (values, _) = component(Family::RandomWalk, seed, N, STEP_SECONDS);
        let steps = diff(&values);
        assert!(acf(&values, 1) > 0.95, "seed {seed}");
        assert!(acf(&steps, 1).abs() < 0.1, "seed {seed}: increments correlate {}", acf(&steps, 1));
        let sd = variance(&steps).sqrt();
        assert!((0.08..0.12).contains(&sd), "seed {seed}: increment sd {sd}");
    }
}

#[test]
fn regimes_switch_between_a_few_levels_and_persist() {
    for seed in 0..12 {
        let (values, _) = component(Family::RegimeSwitch, seed, N, STEP_SECONDS);
        let levels: HashSet<u64> = values.iter().map(|v| v.to_bits()).collect();
        assert!((1..=3).contains(&levels.len()), "seed {seed}: {} levels", levels.len());
        let switches = diff(&values).iter().filter(|d| **d != 0.0).count();
        assert!(switches < 60, "seed {seed}: {switches} switches");
    }
}

#[test]
fn spikes_are_rare_large_and_positive() {
    for seed in 0..12 {
        let (values, _) = component(Family::Spikes, seed, N, STEP_SECONDS);
        assert!(values.iter().all(|v| *v >= 1.0));
        let m = mean(&values);
        let v = variance(&values);
        let kurtosis = values.iter().map(|x| (x - m).powi(4)).sum::<f64>() / N as f64 / (v * v);
        assert!(kurtosis > 10.0, "seed {seed}: kurtosis {kurtosis}");
    }
}

#[test]
fn intermittent_counts_are_mostly_zero_whole_numbers() {
    for seed in 0..12 {
        let (values, _) = component(Family::Intermittent, seed, N, STEP_SECONDS);
        assert!(values.iter().all(|v| *v >= 0.0 && v.fract() == 0.0));
        let zeros = values.iter().filter(|v| **v == 0.0).count() as f64 / N as f64;
        assert!((0.5..0.97).contains(&zeros), "seed {seed}: zero share {zeros}");
    }
}

#[test]
fn level_shifts_are_a_few_permanent_steps() {
    for seed in 0..12 {
        let (values, _) = component(Family::LevelShift, seed, N, STEP_SECONDS);
        let shifts = diff(&values).iter().filter(|d| **d != 0.0).count();
        assert!((1..=3).contains(&shifts), "seed {seed}: {shifts} shifts");
    }
}

#[test]
fn heteroscedastic_noise_follows_the_level_or_clusters() {
    for seed in 0..12 {
        let (values, _) = component(Family::Heteroscedastic, seed, N, STEP_SECONDS);
        let level: Vec<f64> = (0..N).map(|t| 1.0 + 4.0 * t as f64 / N as f64).collect();
        let residual: Vec<f64> = values.iter().zip(&level).map(|(v, l)| v - l).collect();
        let abs: Vec<f64> = residual.iter().map(|r| r.abs()).collect();
        let squared: Vec<f64> = residual.iter().map(|r| r * r).collect();
        let follows_level = {
            let (ma, ml) = (mean(&abs), mean(&level));
            let cov = abs.iter().zip(&level).map(|(a, l)| (a - ma) * (l - ml)).sum::<f64>() / N as f64;
            cov / (variance(&abs).sqrt() * variance(&level).sqrt())
        };
        assert!(
            follows_level > 0.2 || acf(&squared, 1) > 0.1,
            "seed {seed}: corr(|e|, level) {follows_level}, acf(e²) {}",
            acf(&squared, 1)
        );
    }
}

#[test]
fn groups_lag_their_driver_by_the_declared_steps() {
    for seed in 0..12 {
        let (channels, recipe) = group(seed, N, 4);
        assert_eq!(recipe.lags[0], 0);
        for (c, &lag) in recipe.lags.iter().enumerate().skip(1) {
            let cross = |k: usize| {
                let (a, b) = (&channels[0][..N - k], &channels[c][k..]);
                let (ma, mb) = (mean(a), mean(b));
                a.iter().zip(b).map(|(x, y)| (x - ma) * (y - mb)).sum::<f64>()
                    / (variance(a).sqrt() * variance(b).sqrt() * a.len() as f64)
            };
            let best = (0..=48).max_by(|a, b| cross(*a).total_cmp(&cross(*b))).unwrap();
            assert_eq!(best, lag, "seed {seed}, channel {c}");
        }
    }
}

#[test]
fn generated_series_cover_every_family_and_stay_clean() {
    let mut seen = HashSet::new();
    let mut frequencies = HashSet::new();
    for seed in 0..300 {
        let sample = prior_series(seed, PriorSpec { length: 512, ..PriorSpec::default() }).unwrap();
        frequencies.insert(sample.series.frequency);
        for channel in &sample.series.channels {
            assert_eq!(channel.values.len(), 512);
            for (v, o) in channel.values.iter().zip(&channel.observed) {
                assert!(v.is_finite(), "seed {seed}");
                assert!(*o || *v == 0.0, "seed {seed}: an unobserved cell holds {v}");
            }
        }
        seen.extend(sample.components.iter().map(|c| c.family));
    }
    for family in Family::ALL {
        assert!(seen.contains(&family), "{family:?} never drawn");
    }
    assert_eq!(frequencies.len(), 5);
    assert!(prior_series(1, PriorSpec { length: 4, ..PriorSpec::default() }).is_err());
}
