//! Whether the history and the plans carry enough to predict twin effects with no network:
//! per target channel, least squares of the twin difference relative to the target's
//! context level on a few plan features (the log ratio of the departing plan's replicas,
//! traffic weight and rate limit to the base plan's, the replica ratio three steps
//! earlier, whether and how recently one plan deployed and the other did not, and the
//! replica and traffic ratios times the context's CPU level), fitted on twin episodes
//! from training seeds and scored on the held-out twins of `loopcast eval --twins`:
//! `cargo run --release -p loopcast-eval --example effect_probe -- [TRAIN_EPISODES] [HELD_OUT]`.

use std::collections::BTreeMap;

use loopcast_eval::counterfactual::{EffectTally, TwinSpec, observed_values, score_effect, twin_episodes};
use loopcast_sim::{Episode, TARGETS};
use nalgebra::{DMatrix, DVector};

/// Features per (plan, step).
const FEATURES: usize = 8;
/// Relative effects beyond this are clipped when fitting (error rates from near zero).
const CLIP: f64 = 5.0;

/// Mean |value| of a target's observed context, and the mean CPU utilisation.
fn levels(episode: &Episode) -> (Vec<f64>, f64) {
    let mean = |channel: usize| {
        let seen: Vec<f64> =
            observed_values(&episode.history, channel).into_iter().filter(|v| v.is_finite()).collect();
        seen.iter().map(|v| v.abs()).sum::<f64>() / seen.len().max(1) as f64
    };
    ((0..TARGETS).map(mean).collect(), mean(1))
}

/// The features of plan `plan` against the base plan at every step.
fn features(episode: &Episode, plan: usize, cpu: f64) -> Vec<[f64; FEATURES]> {
    let action = |p: usize, a: usize| observed_values(&episode.futures[p], TARGETS + a);
    let (n0, n1) = (action(0, 0), action(plan, 0));
    let (w0, w1) = (action(0, 1), action(plan, 1));
    let (d0, d1) = (action(0, 2), action(plan, 2));
    let (l0, l1) = (action(0, 3), action(plan, 3));
    let ratio = |a: f64, b: f64, e: f64| ((a + e) / (b + e)).ln();
    let (mut since, mut recent) = (0.0, 0.0);
    (0..n0.len())
        .map(|h| {
            since += d1[h] - d0[h];
            recent = recent * (-1.0f64 / 3.0).exp() + d1[h] - d0[h];
            let r_n = ratio(n1[h], n0[h], 0.0);
            let r_w = ratio(w1[h], w0[h], 0.05);
            let lag = h.saturating_sub(3);
            [
                r_n,
                ratio(n1[lag], n0[lag], 0.0),
                r_w,
                ratio(l1[h], l0[h], 1e-6),
                since.clamp(-1.0, 1.0),
                recent,
                r_n * cpu,
                r_w * cpu,
            ]
        })
        .collect()
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let train: usize = args.next().map_or(Ok(1024), |a| a.parse())?;
    let held_out: usize = args.next().map_or(Ok(256), |a| a.parse())?;
    // Training seeds (below 2^62), the twins' shape.
    let fitted = twin_episodes(TwinSpec { first_seed: 1 << 40, episodes: train, ..TwinSpec::default() })?;
    let mut rows: Vec<Vec<[f64; FEATURES]>> = vec![Vec::new(); TARGETS];
    let mut ys: Vec<Vec<f64>> = vec![Vec::new(); TARGETS];
    for episode in &fitted {
        let (level, cpu) = levels(episode);
        for plan in 1..episode.futures.len() {
            let x = features(episode, plan, cpu);
            for t in 0..TARGETS {
                let (base, twin) =
                    (observed_values(&episode.futures[0], t), observed_values(&episode.futures[plan], t));
                for h in 0..x.len() {
                    let y = (twin[h] - base[h]) / level[t].max(1e-9);
                    if y.is_finite() {
                        rows[t].push(x[h]);
                        ys[t].push(y.clamp(-CLIP, CLIP));
                    }
                }
            }
        }
    }
    let coefficients: Vec<DVector<f64>> = (0..TARGETS)
        .map(|t| {
            let x = DMatrix::from_fn(rows[t].len(), FEATURES, |i, j| rows[t][i][j]);
            let y = DVector::from_column_slice(&ys[t]);
            x.svd(true, true).solve(&y, 1e-9).expect("the SVD has its factors")
        })
        .collect();
    let episodes = twin_episodes(TwinSpec { episodes: held_out, ..TwinSpec::default() })?;
    let (mut all, mut by_variant) = (EffectTally::default(), BTreeMap::<String, EffectTally>::new());
    for episode in &episodes {
        let (level, cpu) = levels(episode);
        for plan in 1..episode.futures.len() {
            let x = features(episode, plan, cpu);
            for t in 0..TARGETS {
                let predicted: Vec<f64> = x
                    .iter()
                    .map(|f| level[t] * f.iter().zip(coefficients[t].iter()).map(|(a, b)| a * b).sum::<f64>())
                    .collect();
                let (base, twin) =
                    (observed_values(&episode.futures[0], t), observed_values(&episode.futures[plan], t));
                if let Some(score) =
                    score_effect(&observed_values(&episode.history, t), &base, &twin, &predicted, None)
                {
                    all.push(score.clone());
                    by_variant.entry(format!("{:?}", episode.plans[plan].0)).or_default().push(score);
                }
            }
        }
    }
    let line = |name: &str, tally: &EffectTally| {
        let s = tally.summary();
        println!(
            "| {name} | {} | {:.3} | {:.1} % |",
            s.material,
            s.median_error.unwrap_or(f64::NAN),
            100.0 * s.sign_accuracy.unwrap_or(f64::NAN)
        );
    };
    println!("fitted on {train} episodes; {held_out} held-out episodes\n");
    println!("| departure | material effects | median effect error | sign right |\n|---|---:|---:|---:|");
    line("all", &all);
    for (variant, tally) in &by_variant {
        line(variant, tally);
    }
    Ok(())
}
