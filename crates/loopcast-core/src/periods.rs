//! Seasonal periods found from the data, with the calendar's period as the prior.
//!
//! A frequency names a conventional season (a day of 5-minute steps is 288), but real
//! telemetry often repeats at another one: a service open 14 hours a day on a continuous
//! grid repeats every 169 steps, a batch job every 37. [`find_season`] reads the period
//! from how well a context repeats at each lag (trend removed, gaps skipped) and keeps the
//! calendar's unless the data show another period clearly and the calendar's poorly.

use serde::{Deserialize, Serialize};

use crate::{RegularSeries, Role};

/// Where a window's seasonal period came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SeasonSource {
    /// The frequency's conventional season, which the data did not contradict.
    Calendar,
    /// A period the context repeats at, which the calendar does not give.
    Data,
    /// Given by the caller.
    Given,
    /// No season: neither the calendar nor the data give one (anchored on the last value).
    None,
}

impl SeasonSource {
    /// The name in answers and reports.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Calendar => "calendar",
            Self::Data => "data",
            Self::Given => "given",
            Self::None => "none",
        }
    }
}

/// A seasonal period in steps and where it came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Season {
    /// Steps per season (1: no season).
    pub steps: usize,
    /// Where the period came from.
    pub source: SeasonSource,
}

impl Season {
    /// The calendar's period `steps` (no season when it is 1 or less).
    pub fn calendar(steps: usize) -> Self {
        let source = if steps > 1 { SeasonSource::Calendar } else { SeasonSource::None };
        Self { steps: steps.max(1), source }
    }
}

impl RegularSeries {
    /// The seasonal period the target channels' last `context` cells show, the calendar's
    /// period of the series' frequency as the prior (see [`find_season`]).
    pub fn found_season(&self, context: usize) -> Season {
        let start = self.len().saturating_sub(context);
        let targets: Vec<(Vec<f32>, &[bool])> = self
            .channels
            .iter()
            .filter(|c| c.spec.role == Role::Target)
            .map(|c| (c.values[start..].iter().map(|v| *v as f32).collect(), &c.observed[start..]))
            .collect();
        find_season(targets.iter().map(|(v, o)| (&v[..], *o)), self.frequency.season())
    }
}

/// The repetition a lag needs to be a candidate (see [`repetitions`]).
const MIN_REPETITION: f64 = 0.3;
/// The strength a period found in the data must reach (see [`seasonal_strength`]). On
/// 512 steps (measured 2026-12-07, docs/MODEL.md "Seasons"), 1–2 % of Gaussian random
/// walks and 0.3–0.5 % of AR(1) processes at 0.95 were given a period, and business days
/// of 169 five-minute steps were found in 81 % of series with Poisson arrivals peaking at
/// 9 per step and in all at 20.
const MIN_STRENGTH: f64 = 0.55;
/// By how much a found period's strength must beat the calendar period's.
const MARGIN: f64 = 0.1;
/// Of candidates this close to the strongest, the shortest is the period (the others are
/// its multiples).
const NEAR_BEST: f64 = 0.1;
/// Multiples of a period whose repetitions its strength is read from (those measured).
const MULTIPLES: usize = 4;
/// Pairs of observed values a lag needs to be measured.
const MIN_PAIRS: usize = 16;

/// The seasonal period of a window whose target channels are `channels` (each its context
/// values and which of them are observed, all of one length), given the calendar's period
/// `calendar` (1: none).
///
/// Two passes. The first scores every lag up to half the context by how well the channels
/// repeat at it ([`repetitions`]); a candidate is a lag scoring at least 0.3, above the
/// noise of its pair count, and highest within an eighth of the lag either side. The second
/// measures each candidate as a season ([`seasonal_strength`]: level removed by a moving
/// mean over two periods, the weakest repetition of up to 4 multiples, at least 2 measured
/// so that the pattern is seen three times) and climbs to the neighbouring lag that scores
/// best ([`climb`]), which must score 0.55. Of the candidates within 0.1 of the strongest
/// the shortest is taken (the others are its multiples). It replaces the calendar's period
/// when it is 0.1 stronger than the calendar's and not a multiple of it (a week of hourly
/// steps is the calendar's longer season, not a wrong calendar). A calendar period longer
/// than the context counts as none; one the context holds but cannot measure (too few
/// pairs) is kept.
pub fn find_season<'a>(
    channels: impl IntoIterator<Item = (&'a [f32], &'a [bool])>,
    calendar: usize,
) -> Season {
    let prior = Season::calendar(calendar);
    let channels: Vec<Detrended<'_>> =
        channels.into_iter().filter_map(|(values, observed)| Detrended::new(values, observed)).collect();
    let mut sum: Vec<f64> = Vec::new();
    let mut pairs: Vec<usize> = Vec::new();
    let mut counted = 0usize;
    for channel in &channels {
        let (repetition, n) = repetitions(&channel.residual, channel.observed);
        if sum.is_empty() {
            (sum, pairs) = (vec![0.0; repetition.len()], n.clone());
        }
        for (lag, r) in repetition.iter().enumerate().take(sum.len()) {
            sum[lag] += r;
            pairs[lag] = pairs[lag].min(n[lag]);
        }
        counted += 1;
    }
    if counted == 0 {
        return prior;
    }
    let repetition: Vec<f64> = sum.iter().map(|s| s / counted as f64).collect();
    let context = channels[0].residual.len();
    let measured = |lag: usize| lag < repetition.len() && pairs[lag] >= MIN_PAIRS;
    // The mean seasonal strength over the channels that measure it, and at how many
    // multiples (the fewest of those channels).
    let strength = |period: usize| {
        let each: Vec<(usize, f64)> =
            channels.iter().filter_map(|channel| seasonal_strength(channel, period)).collect();
        let multiples = each.iter().map(|(m, _)| *m).min().unwrap_or(0);
        (multiples, each.iter().map(|(_, s)| s).sum::<f64>() / each.len().max(1) as f64)
    };
    // A calendar season longer than the context cannot anchor it (seasonal naive falls
    // back to the last value): the data may find one as if there were none.
    let calendar_strength = match prior.source {
        SeasonSource::Calendar if prior.steps < context => match strength(prior.steps) {
            (0, _) => return prior,
            (_, strength) => strength,
        },
        _ => 0.0,
    };
    let mut candidates: Vec<(usize, f64)> = Vec::new();
    // A candidate's season strength, where its multiples show it at least twice more.
    let repeated = |period: usize| match strength(period) {
        (multiples, strength) if multiples >= 2 => strength,
        _ => f64::NEG_INFINITY,
    };
    for lag in 2..repetition.len() {
        if !measured(lag) {
            break;
        }
        let r = repetition[lag];
        let noise = 3.0 / (pairs[lag] as f64).sqrt();
        let near = lag - lag / 8..=lag + lag / 8;
        if r < MIN_REPETITION.max(noise)
            || near.clone().any(|other| repetition.get(other).is_some_and(|o| *o > r))
        {
            continue;
        }
        let (period, strength) = climb(lag, &near, &repeated);
        if strength >= MIN_STRENGTH && !candidates.iter().any(|(p, _)| *p == period) {
            candidates.push((period, strength));
        }
    }
    let Some(best) = candidates.iter().map(|(_, r)| *r).reduce(f64::max) else {
        return prior;
    };
    let (period, strength) =
        *candidates.iter().find(|(_, r)| *r >= best - NEAR_BEST).expect("the best is a candidate");
    // A multiple of the calendar's period is its longer season (a week of hours, a year
    // of months): the calendar stands.
    let multiple = prior.source == SeasonSource::Calendar && period % prior.steps == 0;
    if strength >= calendar_strength + MARGIN && !multiple {
        Season { steps: period, source: SeasonSource::Data }
    } else {
        prior
    }
}

/// The lag within `near` where `score` is highest, climbing from `start` one step at a time
/// in each direction while the score rises within the next 3 steps (a smooth pattern under
/// noise wobbles near its top); the lag and its score.
fn climb(
    start: usize,
    near: &std::ops::RangeInclusive<usize>,
    score: &impl Fn(usize) -> f64,
) -> (usize, f64) {
    let mut best = (start, score(start));
    for step in [-1isize, 1] {
        let (mut at, mut since) = (start, 0);
        while since < 3 {
            let Some(next) = at.checked_add_signed(step).filter(|l| near.contains(l)) else {
                break;
            };
            at = next;
            let value = score(at);
            if value > best.1 {
                (best, since) = ((at, value), 0);
            } else {
                since += 1;
            }
        }
    }
    best
}

/// One target channel of a context with its least-squares line removed, and the running
/// sums of its observed remainders that every period's moving mean reads.
struct Detrended<'a> {
    /// The values less the line (0 where unobserved).
    residual: Vec<f64>,
    observed: &'a [bool],
    /// `sums[i]`: the sum and count of the observed residuals before index `i`.
    sums: Vec<(f64, usize)>,
}

impl<'a> Detrended<'a> {
    /// `values` less their least-squares line over the `observed` ones; `None` with fewer
    /// than `2 × MIN_PAIRS` observed values or none varying.
    fn new(values: &[f32], observed: &'a [bool]) -> Option<Self> {
        let len = values.len().min(observed.len());
        let observed = &observed[..len];
        let points: Vec<(f64, f64)> =
            (0..len).filter(|i| observed[*i]).map(|i| (i as f64, f64::from(values[i]))).collect();
        if points.len() < 2 * MIN_PAIRS {
            return None;
        }
        let n = points.len() as f64;
        let (mean_t, mean_v) = points.iter().fold((0.0, 0.0), |(t, v), (pt, pv)| (t + pt / n, v + pv / n));
        let (mut stt, mut stv) = (0.0, 0.0);
        for (t, v) in &points {
            stt += (t - mean_t) * (t - mean_t);
            stv += (t - mean_t) * (v - mean_v);
        }
        let slope = if stt > 0.0 { stv / stt } else { 0.0 };
        let mut residual = vec![0.0f64; len];
        for (t, v) in &points {
            residual[*t as usize] = v - mean_v - slope * (t - mean_t);
        }
        let variance = points.iter().map(|(t, _)| residual[*t as usize].powi(2)).sum::<f64>() / n;
        if variance.is_nan() || variance <= 1e-12 * (1.0 + mean_v * mean_v) {
            return None;
        }
        let mut sums = vec![(0.0, 0usize); len + 1];
        for i in 0..len {
            let (sum, count) = sums[i];
            sums[i + 1] = if observed[i] { (sum + residual[i], count + 1) } else { (sum, count) };
        }
        Some(Self { residual, observed, sums })
    }
}

/// How well the detrended `residual` (where `observed`) repeats at each lag up to a little
/// over half its length, and each lag's count of observed pairs.
///
/// The repetition at lag `k` is `1 − d(k) / mean(d(1..=k))`, where `d(k)` is the mean
/// squared difference between values `k` apart: the cumulative-mean-normalised
/// difference of the YIN pitch detector (de Cheveigné and Kawahara, 2002). A period of a noisy pattern scores about the share of the variance the
/// pattern holds; white noise scores 0 at every lag. A slow wander can score high at a
/// long lag, which [`seasonal_strength`] then tells apart.
fn repetitions(residual: &[f64], observed: &[bool]) -> (Vec<f64>, Vec<usize>) {
    let len = residual.len();
    // Candidates fit twice in the context; their neighbours reach an eighth further.
    let lags = (len / 2 + len / 16 + 2).min(len);
    let mut repetition = vec![0.0; lags];
    let mut pairs = vec![0usize; lags];
    let (mut total, mut counted) = (0.0, 0usize);
    for lag in 1..lags {
        let (mut sum, mut count) = (0.0, 0usize);
        for i in lag..len {
            if observed[i] && observed[i - lag] {
                sum += (residual[i] - residual[i - lag]).powi(2);
                count += 1;
            }
        }
        pairs[lag] = count;
        if count == 0 {
            continue;
        }
        let difference = sum / count as f64;
        (total, counted) = (total + difference, counted + 1);
        let mean = total / counted as f64;
        repetition[lag] = if mean > 0.0 { 1.0 - difference / mean } else { 0.0 };
    }
    (repetition, pairs)
}

/// How strongly a detrended `channel` holds a season of `period` steps, and at how many of
/// its multiples it was measured (`None`: not even at the period itself).
///
/// Each value's level is removed first: the mean of the observed values over two periods
/// around it (one where two do not fit; shifted inside the context at its ends), which
/// holds every phase equally and so removes a level, a trend or a slow wander but not a
/// season of that period. The strength at a lag is `1 − mean squared difference of the
/// remainders that lag apart ÷ twice their variance` (their correlation, for a steady
/// remainder); a period's is the weakest over
/// its first multiples with enough pairs. A season scores the share of the remainder it
/// holds at every multiple; a slow wander can match itself once by chance, but seldom at
/// every multiple.
fn seasonal_strength(channel: &Detrended<'_>, period: usize) -> Option<(usize, f64)> {
    let Detrended { residual: values, observed, sums } = channel;
    let len = values.len();
    if period < 2 || period > len {
        return None;
    }
    // Two periods where they fit: gaps that miss phases bias a one-period mean more.
    let window = if 2 * period <= len { 2 * period } else { period };
    let remainder: Vec<Option<f64>> = (0..len)
        .map(|i| {
            let start = i.saturating_sub(window / 2).min(len - window);
            let ((s0, c0), (s1, c1)) = (sums[start], sums[start + window]);
            (observed[i] && 2 * (c1 - c0) >= window).then(|| values[i] - (s1 - s0) / (c1 - c0) as f64)
        })
        .collect();
    let kept: Vec<f64> = remainder.iter().flatten().copied().collect();
    let variance = kept.iter().map(|r| r * r).sum::<f64>() / kept.len().max(1) as f64;
    if kept.len() < 2 * MIN_PAIRS || variance.is_nan() || variance <= 0.0 {
        return None;
    }
    let mut strengths = Vec::new();
    for lag in (1..=MULTIPLES).map(|m| m * period) {
        let (mut sum, mut count) = (0.0, 0usize);
        for i in lag..len {
            if let (Some(a), Some(b)) = (remainder[i - lag], remainder[i]) {
                sum += (b - a).powi(2);
                count += 1;
            }
        }
        // A quarter period of pairs at least: a long lag matched over a few steps is chance.
        if count < MIN_PAIRS.max(period / 4) {
            break;
        }
        strengths.push(1.0 - sum / count as f64 / (2.0 * variance));
    }
    strengths.iter().copied().reduce(f64::min).map(|weakest| (strengths.len(), weakest))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A deterministic noise in [-1, 1] (a linear congruential generator).
    fn noise(seed: u64) -> impl FnMut() -> f32 {
        let mut state = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
        move || {
            state = state.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
            ((state >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
        }
    }

    /// `len` steps repeating every `period` (a daily-like bump: busy part, quiet part),
    /// with a trend and noise.
    fn seasonal(len: usize, period: usize, trend: f32, seed: u64) -> Vec<f32> {
        let mut noise = noise(seed);
        (0..len)
            .map(|i| {
                let phase = (i % period) as f32 / period as f32;
                let bump = (std::f32::consts::PI * phase).sin().powi(2) * 10.0;
                100.0 + bump + trend * i as f32 + noise() * 1.5
            })
            .collect()
    }

    fn found(values: &[f32], observed: &[bool], calendar: usize) -> Season {
        find_season([(values, observed)], calendar)
    }

    /// A period found in the data, within 2 % of `period` (a smooth pattern under noise
    /// fixes its period only so closely).
    fn assert_found(season: Season, period: usize, what: &str) {
        assert_eq!(season.source, SeasonSource::Data, "{what}: {season:?}");
        assert!(season.steps.abs_diff(period) <= period / 50, "{what}: {season:?}");
    }

    #[test]
    fn periods_no_calendar_gives_are_found_through_trend_noise_and_gaps() {
        for (period, calendar) in [(169, 288), (37, 288), (37, 1), (169, 1440), (12, 7)] {
            let values = seasonal(512, period, 0.02, period as u64);
            let all = vec![true; 512];
            assert_found(found(&values, &all, calendar), period, &format!("{period} (calendar {calendar})"));
            // A third of the values missing, in runs.
            let gaps: Vec<bool> = (0..512).map(|i| (i / 7) % 3 != 0).collect();
            assert_found(found(&values, &gaps, calendar), period, &format!("{period} with gaps"));
        }
    }

    #[test]
    fn the_calendar_holds_where_the_data_agree_or_cannot_measure_it() {
        let all = vec![true; 512];
        let daily = seasonal(512, 288, 0.0, 1);
        assert_eq!(found(&daily, &all, 288), Season::calendar(288), "the calendar's day");
        let hourly = seasonal(512, 24, 0.01, 2);
        assert_eq!(found(&hourly, &all, 24), Season::calendar(24));
        // A week of hourly steps on top of the day is a second season, not a wrong day.
        let weekly: Vec<f32> =
            hourly.iter().enumerate().map(|(i, v)| v + if (i / 24) % 7 >= 5 { -8.0 } else { 0.0 }).collect();
        assert_eq!(found(&weekly, &all, 24), Season::calendar(24));
        // A calendar season the context holds but cannot measure (10 pairs) is kept.
        let short = seasonal(40, 12, 0.0, 3);
        assert_eq!(found(&short, &[true; 40], 30), Season::calendar(30));
        // One longer than the context counts as none: the data's period is found.
        assert_eq!(found(&short, &[true; 40], 52), Season { steps: 12, source: SeasonSource::Data });
    }

    #[test]
    fn noise_trends_and_random_walks_find_no_period() {
        let all = vec![true; 512];
        let mut draw = noise(7);
        let white: Vec<f32> = (0..512).map(|_| draw()).collect();
        assert_eq!(found(&white, &all, 1), Season::calendar(1));
        let mut level = 0.0;
        for seed in 0..20 {
            let mut draw = noise(100 + seed);
            let walk: Vec<f32> = (0..512)
                .map(|_| {
                    level += draw();
                    level
                })
                .collect();
            assert_eq!(found(&walk, &all, 1), Season::calendar(1), "random walk {seed}");
        }
        let line: Vec<f32> = (0..512).map(|i| 3.0 * i as f32).collect();
        assert_eq!(found(&line, &all, 1), Season::calendar(1));
        assert_eq!(found(&[5.0; 64], &[true; 64], 7), Season::calendar(7), "a constant");
        assert_eq!(found(&[1.0, 2.0], &[true, false], 7), Season::calendar(7), "too short");
    }

    #[test]
    fn channels_are_read_together() {
        let all = vec![true; 512];
        let a = seasonal(512, 169, 0.0, 11);
        let b = seasonal(512, 169, -0.01, 12);
        let found = find_season([(&a[..], &all[..]), (&b[..], &all[..])], 288);
        assert_found(found, 169, "two channels");
        assert_eq!(find_season(std::iter::empty(), 288), Season::calendar(288));
    }
}
