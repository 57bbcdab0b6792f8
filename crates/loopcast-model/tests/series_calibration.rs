//! Intervals fitted per series on backtests over its own history
//! (`ForecastOptions::series_calibration`), with the shipped model.

use loopcast_core::Role;
use loopcast_model::{DeviceKind, Forecast, ForecastOptions, LoopedWorldModel, ModelBatch};

const CONTEXT: usize = 512;
const HORIZON: usize = 48;

/// Deterministic pseudo-random numbers in [-1, 1).
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> f32 {
        self.0 = self.0.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        (self.0 >> 40) as f32 / (1u64 << 23) as f32 - 1.0
    }
}

/// One target per window: a daily wave (24 steps) with noise of the given sizes, some of
/// it in bursts.
fn batch(noise: &[f32]) -> ModelBatch {
    let mut rng = Lcg(7);
    let mut values = Vec::new();
    for (w, size) in noise.iter().enumerate() {
        for t in 0..CONTEXT {
            let wave = 100.0 + 30.0 * (t as f32 * std::f32::consts::TAU / 24.0).sin();
            let burst = if (t / 40 + w) % 3 == 0 { 4.0 } else { 1.0 };
            values.push(wave + size * burst * rng.next());
        }
    }
    let b = noise.len();
    ModelBatch::new(
        vec![Role::Target],
        b,
        CONTEXT,
        HORIZON,
        values,
        vec![true; b * CONTEXT],
        vec![0.0; b * HORIZON],
        vec![false; b * HORIZON],
    )
    .unwrap()
    .with_season(24)
}

fn pinball(forecast: &Forecast, b: usize, truth: &[f32], factor: f32) -> f64 {
    let median = forecast.levels.iter().position(|l| *l == 0.5).unwrap();
    let mut loss = 0.0;
    for (h, y) in truth.iter().enumerate() {
        let middle = forecast.value(b, 0, h, median);
        for (l, level) in forecast.levels.iter().enumerate() {
            let q = middle + factor * (forecast.value(b, 0, h, l) - middle);
            let gap = f64::from(y - q);
            loss += if gap >= 0.0 { level * gap } else { (level - 1.0) * gap };
        }
    }
    loss
}

#[test]
fn each_series_gets_the_factor_its_backtests_favour_and_keeps_its_median() {
    let model = LoopedWorldModel::shipped(&DeviceKind::Cpu.device().unwrap()).unwrap();
    let input = batch(&[0.0, 2.0, 25.0]);
    let plain = model.forecast(&input, &ForecastOptions::default()).unwrap();
    let origins = 4;
    let options = ForecastOptions { series_calibration: origins, ..ForecastOptions::default() };
    let encodings = model.history_encodings();
    let fitted = model.forecast(&input, &options).unwrap();
    assert_eq!(model.history_encodings(), encodings + 2, "the backtests take one more pass");
    assert_eq!((fitted.batch, fitted.steps, &fitted.loops), (plain.batch, plain.steps, &plain.loops));
    let median = plain.levels.iter().position(|l| *l == 0.5).unwrap();
    let backtests: Vec<(Forecast, Vec<f32>)> = (1..=origins)
        .map(|j| {
            let (cut, truth, _) = input.cut_back(j * HORIZON).unwrap();
            (model.forecast(&cut, &ForecastOptions::default()).unwrap(), truth)
        })
        .collect();
    let mut moved = 0;
    for b in 0..input.batch() {
        // One factor per series: every quantile's distance from the unchanged median.
        let (low, high) = (0, plain.levels.len() - 1);
        let factor = (fitted.value(b, 0, 0, high) - fitted.value(b, 0, 0, low))
            / (plain.value(b, 0, 0, high) - plain.value(b, 0, 0, low));
        for h in 0..HORIZON {
            assert_eq!(fitted.value(b, 0, h, median), plain.value(b, 0, h, median));
            for l in 0..plain.levels.len() {
                let (p, f) = (plain.value(b, 0, h, l), fitted.value(b, 0, h, l));
                let m = plain.value(b, 0, h, median);
                assert!((f - m - factor * (p - m)).abs() <= 1e-3 * (1.0 + (p - m).abs()), "{b} {h} {l}");
            }
        }
        // The factor lies between 1 and the backtests' best, so it never loses to 1 there
        // (the quantile loss is convex in the factor).
        let loss = |factor: f32| -> f64 {
            backtests
                .iter()
                .map(|(f, truth)| pinball(f, b, &truth[b * HORIZON..(b + 1) * HORIZON], factor))
                .sum()
        };
        assert!(loss(factor) <= loss(1.0) * (1.0 + 1e-6), "window {b}: factor {factor}");
        if (factor - 1.0).abs() > 0.05 {
            moved += 1;
        }
    }
    assert!(moved >= 1, "no series moved from the global scale");
}

#[test]
fn a_history_too_short_to_backtest_keeps_the_global_scale() {
    let model = LoopedWorldModel::shipped(&DeviceKind::Cpu.device().unwrap()).unwrap();
    let long = batch(&[5.0]);
    let (values, _) = long.context_arrays();
    let short = ModelBatch::new(
        vec![Role::Target],
        1,
        60,
        HORIZON,
        values[CONTEXT - 60..].to_vec(),
        vec![true; 60],
        vec![0.0; HORIZON],
        vec![false; HORIZON],
    )
    .unwrap()
    .with_season(24);
    let options = ForecastOptions { series_calibration: 4, ..ForecastOptions::default() };
    assert_eq!(
        model.forecast(&short, &options).unwrap(),
        model.forecast(&short, &ForecastOptions::default()).unwrap()
    );
    // Decoding only some patches fits on those patches' steps, and keeps their medians.
    let patches = ForecastOptions { patches: Some(vec![2]), ..options.clone() };
    let (some, all) = (model.forecast(&long, &patches).unwrap(), model.forecast(&long, &options).unwrap());
    assert_eq!(some.steps, 16);
    for level in 0..all.levels.len() {
        assert!((some.value(0, 0, 0, level) - all.value(0, 0, 32, level)).abs() < 1e-3);
    }
}

#[test]
fn every_plan_of_a_whatif_gets_its_series_factor() {
    let model = LoopedWorldModel::shipped(&DeviceKind::Cpu.device().unwrap()).unwrap();
    let input = batch(&[25.0]);
    let plans = vec![input.future_arrays().0.to_vec(); 2];
    let plans: Vec<(Vec<f32>, Vec<bool>)> = plans.into_iter().map(|p| (p, vec![false; HORIZON])).collect();
    let options = ForecastOptions { series_calibration: 4, ..ForecastOptions::default() };
    let fitted = model.whatif(&input, &plans, &options).unwrap();
    let forecast = model.forecast(&input, &options).unwrap();
    assert_eq!(fitted[0], forecast);
    assert_eq!(fitted[1], forecast);
}
