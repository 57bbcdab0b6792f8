//! Relative MASE per target channel on the held-out evaluation seeds: which series a
//! model loses to seasonal naive on.
//! `cargo run --release -p loopcast-train --example targets -- MODEL_DIR`
//! (the windows of the `evaluate` example: 32 SRE twin pairs at 5-minute steps, season
//! 288, and 32 two-channel prior series, hourly, season 24; context 512, horizon 64).

use loopcast_core::Frequency;
use loopcast_eval::{baselines, metrics};
use loopcast_model::{DeviceKind, ForecastOptions, LoopedWorldModel, ModelBatch};
use loopcast_sim::TARGET_CHANNELS;
use loopcast_train::data::{EVALUATION_SEEDS, SreLayout, prior_windows, sre_windows};

/// Per target channel, the ratio of the model's MASE to seasonal naive's, one per window.
fn ratios(
    model: &LoopedWorldModel,
    batch: &ModelBatch,
    season: usize,
) -> Result<Vec<Vec<f64>>, Box<dyn std::error::Error>> {
    let forecast = model.forecast(batch, &ForecastOptions::default())?;
    let median = model.config().median_level();
    let (c, l, h) = (batch.roles().len(), batch.context(), batch.horizon());
    let ((values, observed), (future, known)) = (batch.context_arrays(), batch.future_arrays());
    let cell = |v: &[f32], seen: &[bool], i: usize| if seen[i] { f64::from(v[i]) } else { f64::NAN };
    let mut per_target = vec![Vec::new(); batch.targets()];
    for b in 0..batch.batch() {
        for (t, out) in per_target.iter_mut().enumerate() {
            let row = b * c + t;
            let past: Vec<f64> = (0..l).map(|i| cell(values, observed, row * l + i)).collect();
            let truth: Vec<f64> = (0..h).map(|i| cell(future, known, row * h + i)).collect();
            let point: Vec<f64> = (0..h).map(|s| f64::from(forecast.value(b, t, s, median))).collect();
            let naive = baselines::seasonal_naive(&past, season, h);
            let (model, naive) =
                (metrics::mase(&past, season, &truth, &point), metrics::mase(&past, season, &truth, &naive));
            if let (Some(m), Some(n)) = (model, naive) {
                out.push(m / n);
            }
        }
    }
    Ok(per_target)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let Some(dir) = std::env::args().nth(1) else {
        return Err("usage: targets MODEL_DIR".into());
    };
    let model = LoopedWorldModel::load(&dir, &DeviceKind::Cpu.device()?)?;
    let seeds: Vec<u64> = (EVALUATION_SEEDS..EVALUATION_SEEDS + 32).collect();
    let sre = sre_windows(&seeds, 512, 64, Frequency::minutes(5), &SreLayout::full())?.0;
    let prior = prior_windows(&seeds, 512, 64, 2, Some(Frequency::hours(1)))?;
    println!("| series | windows | relative MASE (geometric mean) |\n|---|---:|---:|");
    let mut all = Vec::new();
    for (names, batch, season) in
        [(TARGET_CHANNELS.to_vec(), &sre, 288), (vec!["prior channel 1", "prior channel 2"], &prior, 24)]
    {
        for (name, scores) in names.iter().zip(ratios(&model, batch, season)?) {
            let mean = metrics::geometric_mean(scores.iter().copied()).unwrap_or(f64::NAN);
            println!("| {name} | {} | {mean:.3} |", scores.len());
            all.extend(scores);
        }
    }
    let mean = metrics::geometric_mean(all.iter().copied()).unwrap_or(f64::NAN);
    println!("| all | {} | {mean:.3} |", all.len());
    Ok(())
}
