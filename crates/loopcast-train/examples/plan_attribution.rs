//! Which action's known plan helps or hurts which target's forecast, on held-out SRE twin
//! pairs: `cargo run --release -p loopcast-train --example plan_attribution -- MODEL_DIR
//! [PAIRS] [ACTION]`.
//!
//! For every target channel, the geometric mean over windows of the median forecast's
//! mean absolute error with every plan known over the error with the plan of action
//! channel `ACTION` (0 replicas, 1 traffic weight, 2 deploy, 3 rate limit) unknown, or of
//! every action and covariate channel when `ACTION` is left out — separately on the
//! operator's own rows and on the departing rows (their plans drawn around the
//! operator's), with the worst window. Below 1 the plan helps; above 1 the model's
//! effects hurt the forecast.

use loopcast_core::Frequency;
use loopcast_model::{DeviceKind, ForecastOptions, LoopedWorldModel};
use loopcast_sim::TARGET_CHANNELS;
use loopcast_train::data::{EVALUATION_SEEDS, SreLayout, sre_windows};

const CONTEXT: usize = 512;
const HORIZON: usize = 64;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let usage = "usage: plan_attribution MODEL_DIR [PAIRS] [ACTION]";
    let args: Vec<String> = std::env::args().skip(1).collect();
    let dir = args.first().ok_or(usage)?;
    let pairs: u64 = args.get(1).map(|v| v.parse()).transpose()?.unwrap_or(64);
    let action: Option<usize> = args.get(2).map(|v| v.parse()).transpose()?;
    let model = LoopedWorldModel::load(dir, &DeviceKind::Cpu.device()?)?;
    // Log error ratios per target channel, operator's rows and departing rows.
    let mut ratios = vec![[Vec::new(), Vec::new()]; TARGET_CHANNELS.len()];
    let options = ForecastOptions::default();
    let seeds: Vec<u64> = (EVALUATION_SEEDS..EVALUATION_SEEDS + pairs).collect();
    for chunk in seeds.chunks(8) {
        let (batch, _) = sre_windows(chunk, CONTEXT, HORIZON, Frequency::minutes(5), &SreLayout::full())?;
        let (future, known) = batch.future_arrays();
        let (t, c) = (batch.targets(), batch.roles().len());
        let hidden = |channel: usize| match action {
            Some(a) => channel == t + a,
            None => channel >= t,
        };
        let unknown: Vec<bool> =
            known.iter().enumerate().map(|(i, k)| *k && !hidden(i / HORIZON % c)).collect();
        let with = model.forecast(&batch, &options)?;
        let without = model.forecast(&batch.with_future(future.to_vec(), unknown)?, &options)?;
        let median = with.levels.iter().position(|l| *l == 0.5).ok_or("no median level")?;
        for b in 0..batch.batch() {
            for (channel, rows) in ratios.iter_mut().enumerate().take(t) {
                let error = |f: &loopcast_model::Forecast| {
                    (0..HORIZON)
                        .map(|h| {
                            (f64::from(f.value(b, channel, h, median))
                                - f64::from(future[(b * c + channel) * HORIZON + h]))
                            .abs()
                        })
                        .sum::<f64>()
                };
                let (known_error, unknown_error) = (error(&with), error(&without));
                if known_error > 0.0 && unknown_error > 0.0 {
                    rows[b % 2].push((known_error / unknown_error).ln());
                }
            }
        }
    }
    println!("| target | operator's rows | worst | departing rows | worst |");
    println!("|---|---:|---:|---:|---:|");
    for (name, [own, departing]) in TARGET_CHANNELS.iter().zip(&ratios) {
        let mean = |v: &[f64]| (v.iter().sum::<f64>() / v.len().max(1) as f64).exp();
        let worst = |v: &[f64]| v.iter().copied().fold(0.0f64, f64::max).exp();
        println!(
            "| {name} | {:.3} | {:.2} | {:.3} | {:.2} |",
            mean(own),
            worst(own),
            mean(departing),
            worst(departing)
        );
    }
    Ok(())
}
