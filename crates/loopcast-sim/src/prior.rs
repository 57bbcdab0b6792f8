//! The synthetic prior: plain telemetry shapes the model should forecast without having
//! seen them — seasonal cycles, trends, Gaussian-process-like wiggles, random walks,
//! regime switches, spikes, intermittent counts, level shifts and heteroscedastic noise,
//! combined by sums and products, at varied frequencies and lengths, with missing values,
//! and as multivariate groups whose channels share a driver at different lags.

use std::f64::consts::PI;

use loopcast_core::{ChannelSpec, ChannelValues, Frequency, RegularSeries, Role};
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Exp, Poisson, StandardNormal};
use serde::Serialize;

use crate::SimError;
use crate::rng::{stream, stream_at};

/// A family of shapes the prior draws from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Family {
    /// A periodic cycle (a few harmonics of one period: hourly, daily, weekly, yearly).
    Seasonal,
    /// Linear, damped or piecewise-linear trend.
    Trend,
    /// A smooth stationary process (Gaussian process with an RBF kernel, by random
    /// Fourier features).
    GaussianProcess,
    /// A Gaussian random walk, possibly with drift.
    RandomWalk,
    /// A Markov chain switching between levels.
    RegimeSwitch,
    /// Rare, large, quickly decaying positive spikes.
    Spikes,
    /// Intermittent counts: mostly zero, Poisson counts when not.
    Intermittent,
    /// A few permanent step changes of the level.
    LevelShift,
    /// Noise whose scale follows the level (or clusters in time, GARCH-like).
    Heteroscedastic,
    /// Channels driven by one shared signal at different lags and gains.
    GroupLag,
}

impl Family {
    /// Every family.
    pub const ALL: [Family; 10] = [
        Family::Seasonal,
        Family::Trend,
        Family::GaussianProcess,
        Family::RandomWalk,
        Family::RegimeSwitch,
        Family::Spikes,
        Family::Intermittent,
        Family::LevelShift,
        Family::Heteroscedastic,
        Family::GroupLag,
    ];
}

/// One component of a generated series, with what a test needs to check it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Component {
    /// The family.
    pub family: Family,
    /// The period in steps, for seasonal components.
    pub period_steps: Option<f64>,
    /// The lag in steps of each channel behind the shared driver, for groups.
    pub lags: Vec<usize>,
}

impl Component {
    fn of(family: Family) -> Self {
        Self { family, period_steps: None, lags: Vec::new() }
    }
}

/// What to generate; unset fields are drawn from the seed.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct PriorSpec {
    /// Steps per series.
    pub length: usize,
    /// Grid step; drawn from 1m, 5m, 15m, 1h, 1d when absent.
    pub frequency: Option<Frequency>,
    /// Channels per series; drawn from 1 to 4 when absent.
    pub channels: Option<usize>,
}

/// A generated series with its recipe.
#[derive(Debug, Clone, PartialEq)]
pub struct PriorSample {
    /// The series (every channel a target), with missing cells masked.
    pub series: RegularSeries,
    /// The components it was built from.
    pub components: Vec<Component>,
}

const FREQUENCIES_MINUTES: [i64; 5] = [1, 5, 15, 60, 1440];
/// 2024-01-01T00:00:00Z.
const START_MICROS: i64 = 1_704_067_200_000_000;

/// One series of the prior for `seed`.
pub fn prior_series(seed: u64, spec: PriorSpec) -> Result<PriorSample, SimError> {
    if spec.length < 8 {
        return Err(SimError::Length(format!("a prior series needs at least 8 steps, not {}", spec.length)));
    }
    let mut rng = stream(seed, "prior/recipe");
    let frequency = spec.frequency.unwrap_or_else(|| {
        Frequency::minutes(FREQUENCIES_MINUTES[rng.random_range(0..FREQUENCIES_MINUTES.len())])
    });
    let Frequency::Fixed(step_micros) = frequency else {
        return Err(SimError::Frequency(format!("the prior uses fixed steps, not `{frequency}`")));
    };
    let channels = spec.channels.unwrap_or_else(|| rng.random_range(1..=4)).max(1);
    let n = spec.length;
    let step_seconds = step_micros as f64 / 1e6;

    // The shared signal: a sum (or, in log space, a product) of a few families.
    let mut components = Vec::new();
    let mut driver = vec![0.0; n];
    let additive_families = [
        Family::Seasonal,
        Family::Trend,
        Family::GaussianProcess,
        Family::RandomWalk,
        Family::RegimeSwitch,
        Family::LevelShift,
    ];
    for (i, family) in additive_families.into_iter().enumerate() {
        let keep = if family == Family::Seasonal { 0.8 } else { 0.4 };
        if rng.random::<f64>() < keep {
            let (values, component) = component(family, seed.wrapping_add(i as u64 * 7919), n, step_seconds);
            for (d, v) in driver.iter_mut().zip(&values) {
                *d += v;
            }
            components.push(component);
        }
    }
    if components.is_empty() {
        let (values, component) = component(Family::Seasonal, seed, n, step_seconds);
        driver = values;
        components.push(component);
    }
    let multiplicative = rng.random::<f64>() < 0.3;
    if multiplicative {
        // Products of the components: exponentiate a standardised sum.
        let sd = standard_deviation(&driver).max(1e-9);
        let mean = driver.iter().sum::<f64>() / n as f64;
        let strength = rng.random_range(0.2..0.8);
        for d in &mut driver {
            *d = ((*d - mean) / sd * strength).exp();
        }
    }

    // Channels: the driver itself, or lagged and scaled copies of it for a group.
    let group = channels > 1;
    let mut lags = vec![0usize; channels];
    if group {
        for lag in lags.iter_mut().skip(1) {
            *lag = rng.random_range(0..=(n / 10).clamp(1, 24));
        }
        components.push(Component { family: Family::GroupLag, period_steps: None, lags: lags.clone() });
    }
    let heteroscedastic = rng.random::<f64>() < 0.4;
    let spiky = rng.random::<f64>() < 0.25;
    let intermittent = !group && rng.random::<f64>() < 0.1;
    if heteroscedastic {
        components.push(Component::of(Family::Heteroscedastic));
    }
    if spiky {
        components.push(Component::of(Family::Spikes));
    }
    if intermittent {
        components.push(Component::of(Family::Intermittent));
    }
    let missing_rate = if rng.random::<f64>() < 0.5 { 0.0 } else { rng.random_range(0.0..0.1) };

    let scale = rng.random_range(0.0f64..4.0).exp() * 10.0;
    let mut out = Vec::with_capacity(channels);
    for (c, &lag) in lags.iter().enumerate() {
        let mut rng = stream_at(seed, "prior/channel", c as u64);
        let gain = if c == 0 { 1.0 } else { rng.random_range(0.3..2.0) };
        let mut values = lagged(&driver, lag, gain);
        let sd = standard_deviation(&values).max(1e-6);
        let noise_level = sd * rng.random_range(0.02..0.3);
        let noise = if heteroscedastic {
            heteroscedastic_noise(&mut rng, &values, noise_level)
        } else {
            (0..n).map(|_| noise_level * rng.sample::<f64, _>(StandardNormal)).collect()
        };
        for (v, e) in values.iter_mut().zip(noise) {
            *v += e;
        }
        if spiky {
            let spikes = spikes(&mut rng, n, sd);
            for (v, s) in values.iter_mut().zip(spikes) {
                *v += s;
            }
        }
        // Telemetry is mostly non-negative: lift the series onto a positive level.
        let min = values.iter().copied().fold(f64::INFINITY, f64::min);
        if rng.random::<f64>() < 0.8 && min < 0.0 {
            values.iter_mut().for_each(|v| *v -= min);
        }
        values.iter_mut().for_each(|v| *v *= scale);
        if intermittent {
            values = intermittent_counts(&mut rng, n);
        }
        let observed: Vec<bool> = (0..n).map(|_| rng.random::<f64>() >= missing_rate).collect();
        for (v, o) in values.iter_mut().zip(&observed) {
            if !*o {
                *v = 0.0;
            }
        }
        out.push(ChannelValues { spec: ChannelSpec::new(format!("y{c}"), Role::Target), values, observed });
    }
    let first_cell =
        frequency.cell(START_MICROS + stream(seed, "prior/start").random_range(0..365i64) * 86_400_000_000);
    let series = RegularSeries::new(format!("prior-{seed}"), frequency, first_cell, out)
        .expect("every channel has one value per step");
    Ok(PriorSample { series, components })
}

/// One family alone: `n` values at a step of `step_seconds`, and its recipe.
///
/// `Spikes`, `Intermittent` and `Heteroscedastic` are drawn around a unit level;
/// `GroupLag` returns the driver of channel 0 (see [`group`] for the whole group).
pub fn component(family: Family, seed: u64, n: usize, step_seconds: f64) -> (Vec<f64>, Component) {
    let mut rng = stream_at(seed, "prior/component", family as u64);
    let mut recipe = Component::of(family);
    let values = match family {
        Family::Seasonal => {
            let period = season_period(&mut rng, n, step_seconds);
            recipe.period_steps = Some(period);
            let harmonics = rng.random_range(1..=3);
            let phases: Vec<f64> = (0..harmonics).map(|_| rng.random_range(0.0..2.0 * PI)).collect();
            (0..n)
                .map(|t| {
                    phases
                        .iter()
                        .enumerate()
                        .map(|(k, phase)| {
                            let k = (k + 1) as f64;
                            (2.0 * PI * k * t as f64 / period + phase).cos() / k
                        })
                        .sum()
                })
                .collect()
        }
        Family::Trend => {
            let slope = rng.random_range(0.5..3.0) / n as f64 * if rng.random::<bool>() { 1.0 } else { -1.0 };
            match rng.random_range(0..3) {
                0 => (0..n).map(|t| slope * t as f64).collect(),
                1 => {
                    let damping = rng.random_range(0.9..0.999f64);
                    let mut level = 0.0;
                    (0..n)
                        .map(|t| {
                            level += slope * n as f64 / 20.0 * damping.powi(t as i32);
                            level
                        })
                        .collect()
                }
                _ => {
                    let knot = rng.random_range(n / 4..=3 * n / 4);
                    let bend = rng.random_range(-2.0..2.0);
                    (0..n)
                        .map(|t| slope * t as f64 + slope * bend * (t.saturating_sub(knot)) as f64)
                        .collect()
                }
            }
        }
        Family::GaussianProcess => {
            let lengthscale = rng.random_range(3.0..(n as f64 / 4.0).max(4.0));
            gaussian_process(&mut rng, n, lengthscale)
        }
        Family::RandomWalk => {
            let drift = rng.random_range(-0.02..0.02);
            let mut level = 0.0;
            (0..n)
                .map(|_| {
                    level += drift + 0.1 * rng.sample::<f64, _>(StandardNormal);
                    level
                })
                .collect()
        }
        Family::RegimeSwitch => {
            let states = rng.random_range(2..=3);
            let levels: Vec<f64> = (0..states).map(|_| rng.random_range(-1.5..1.5)).collect();
            let stay = 1.0 - rng.random_range(2.0..10.0) / n as f64;
            let mut state = 0;
            (0..n)
                .map(|_| {
                    if rng.random::<f64>() > stay {
                        state = (state + rng.random_range(1..states)) % states;
                    }
                    levels[state]
                })
                .collect()
        }
        Family::LevelShift => {
            let shifts = rng.random_range(1..=3);
            let mut steps: Vec<(usize, f64)> = (0..shifts)
                .map(|_| (rng.random_range(n / 10..n - n / 10), rng.random_range(-1.5..1.5)))
                .collect();
            steps.sort_by_key(|s| s.0);
            (0..n).map(|t| steps.iter().filter(|s| s.0 <= t).map(|s| s.1).sum()).collect()
        }
        Family::Spikes => {
            let base = vec![1.0; n];
            base.iter().zip(spikes(&mut rng, n, 1.0)).map(|(b, s)| b + s).collect()
        }
        Family::Intermittent => intermittent_counts(&mut rng, n),
        Family::Heteroscedastic => {
            let level: Vec<f64> = (0..n).map(|t| 1.0 + 4.0 * t as f64 / n as f64).collect();
            let noise = heteroscedastic_noise(&mut rng, &level, 0.3);
            level.iter().zip(noise).map(|(l, e)| l + e).collect()
        }
        Family::GroupLag => {
            let (values, _) = component(Family::GaussianProcess, seed, n, step_seconds);
            values
        }
    };
    (values, recipe)
}

/// A group of `channels` series driven by one smooth signal (a Gaussian-process draw):
/// channel 0 is the driver, channel `j` the driver `lags[j]` steps later times a gain, each
/// with a little noise of its own.
pub fn group(seed: u64, n: usize, channels: usize) -> (Vec<Vec<f64>>, Component) {
    let mut rng = stream(seed, "prior/group");
    let lengthscale = rng.random_range(2.0..10.0);
    let driver = gaussian_process(&mut rng, n, lengthscale);
    let lags: Vec<usize> =
        (0..channels).map(|c| if c == 0 { 0 } else { rng.random_range(1..=(n / 10).clamp(1, 24)) }).collect();
    let values = lags
        .iter()
        .enumerate()
        .map(|(c, &lag)| {
            let gain = if c == 0 { 1.0 } else { rng.random_range(0.3..2.0) };
            let mut values = lagged(&driver, lag, gain);
            values.iter_mut().for_each(|v| *v += 0.05 * gain * rng.sample::<f64, _>(StandardNormal));
            values
        })
        .collect();
    (values, Component { family: Family::GroupLag, period_steps: None, lags })
}

/// A draw of a zero-mean, unit-variance Gaussian process with an RBF kernel of
/// `lengthscale` steps, by 64 random Fourier features.
fn gaussian_process(rng: &mut ChaCha8Rng, n: usize, lengthscale: f64) -> Vec<f64> {
    let features = 64;
    let omega: Vec<(f64, f64)> = (0..features)
        .map(|_| {
            let w: f64 = rng.sample(StandardNormal);
            (w / lengthscale, rng.random_range(0.0..2.0 * PI))
        })
        .collect();
    let norm = (2.0 / features as f64).sqrt();
    (0..n).map(|t| norm * omega.iter().map(|(w, b)| (w * t as f64 + b).cos()).sum::<f64>()).collect()
}

/// `driver` delayed by `lag` steps (holding its first value before it starts), times `gain`.
fn lagged(driver: &[f64], lag: usize, gain: f64) -> Vec<f64> {
    (0..driver.len()).map(|t| gain * driver[t.saturating_sub(lag)]).collect()
}

/// A seasonal period in steps for a grid of `step_seconds`: an hour, a day, a week or a
/// year when at least two cycles fit and a cycle spans at least 4 steps, else a free one.
fn season_period(rng: &mut ChaCha8Rng, n: usize, step_seconds: f64) -> f64 {
    let candidates: Vec<f64> = [3600.0, 86_400.0, 604_800.0, 31_557_600.0]
        .iter()
        .map(|p| p / step_seconds)
        .filter(|p| *p >= 4.0 && *p <= n as f64 / 2.0)
        .collect();
    if candidates.is_empty() {
        rng.random_range(4.0..(n as f64 / 2.0).max(4.5))
    } else {
        candidates[rng.random_range(0..candidates.len())]
    }
}

/// Sparse positive spikes of about `size`, each decaying over a few steps.
fn spikes(rng: &mut ChaCha8Rng, n: usize, size: f64) -> Vec<f64> {
    let rate = rng.random_range(0.003..0.02);
    let decay = rng.random_range(0.2..0.7);
    let height = Exp::new(1.0).expect("positive rate");
    let mut level = 0.0;
    (0..n)
        .map(|_| {
            level *= decay;
            if rng.random::<f64>() < rate {
                level += size * (3.0 + 5.0 * height.sample(rng));
            }
            level
        })
        .collect()
}

/// Counts that are zero most of the time (Croston-style demand).
fn intermittent_counts(rng: &mut ChaCha8Rng, n: usize) -> Vec<f64> {
    let p_nonzero = rng.random_range(0.05..0.4);
    let size = Poisson::new(rng.random_range(0.5..8.0)).expect("positive mean");
    (0..n).map(|_| if rng.random::<f64>() < p_nonzero { 1.0 + size.sample(rng) } else { 0.0 }).collect()
}

/// Noise whose scale follows `|level|` (multiplicative) or clusters in time (GARCH(1,1)).
fn heteroscedastic_noise(rng: &mut ChaCha8Rng, level: &[f64], scale: f64) -> Vec<f64> {
    if rng.random::<bool>() {
        let mean_abs = level.iter().map(|l| l.abs()).sum::<f64>() / level.len().max(1) as f64;
        level
            .iter()
            .map(|l| scale * (l.abs() / mean_abs.max(1e-9)) * rng.sample::<f64, _>(StandardNormal))
            .collect()
    } else {
        let (omega, alpha, beta) = (0.1, 0.15, 0.8);
        let mut variance = omega / (1.0 - alpha - beta);
        let mut last: f64 = 0.0;
        level
            .iter()
            .map(|_| {
                variance = omega + alpha * last * last + beta * variance;
                last = variance.sqrt() * rng.sample::<f64, _>(StandardNormal);
                scale * last
            })
            .collect()
    }
}

fn standard_deviation(values: &[f64]) -> f64 {
    let n = values.len().max(1) as f64;
    let mean = values.iter().sum::<f64>() / n;
    (values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / n).sqrt()
}
