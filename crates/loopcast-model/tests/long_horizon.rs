//! Forecasts past the native rollout (`LONG_HORIZON_FACTOR` rollouts), with the shipped
//! model: finite, monotone quantiles whose 80 % interval never narrows past the first
//! rollout; the first rollout is the native forecast itself; plans forecast together
//! equal plans forecast alone.

use loopcast_core::Role;
use loopcast_model::{
    DeviceKind, Forecast, ForecastOptions, LONG_HORIZON_FACTOR, LoopedWorldModel, ModelBatch,
};

const CONTEXT: usize = 512;

/// Two windows, a target (a daily wave of 24 steps on a trend, with noise) and an action
/// held at 4 in the history; the future plan sets the action to `plan` throughout.
fn batch(horizon: usize, plan: f32) -> ModelBatch {
    let (windows, channels) = (2, 2);
    let mut values = Vec::new();
    let mut state = 11u64;
    for w in 0..windows {
        for t in 0..CONTEXT {
            state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            let noise = (state >> 40) as f32 / (1u64 << 23) as f32 - 1.0;
            let wave = 50.0 + 20.0 * (w + 1) as f32 * (t as f32 * std::f32::consts::TAU / 24.0).sin();
            values.push(wave + 0.02 * t as f32 + 3.0 * noise);
        }
        values.extend(std::iter::repeat_n(4.0, CONTEXT));
    }
    let mut future = Vec::new();
    let mut known = Vec::new();
    for _ in 0..windows {
        future.extend(std::iter::repeat_n(0.0, horizon));
        known.extend(std::iter::repeat_n(false, horizon));
        future.extend(std::iter::repeat_n(plan, horizon));
        known.extend(std::iter::repeat_n(true, horizon));
    }
    ModelBatch::new(
        vec![Role::Target, Role::Action],
        windows,
        CONTEXT,
        horizon,
        values,
        vec![true; windows * channels * CONTEXT],
        future,
        known,
    )
    .unwrap()
    .with_season(24)
}

fn model() -> LoopedWorldModel {
    LoopedWorldModel::shipped(&DeviceKind::Cpu.device().unwrap()).unwrap()
}

/// The 80 % interval's width of window `b` at step `h`.
fn width(forecast: &Forecast, b: usize, h: usize) -> f32 {
    let level = |l: f64| forecast.levels.iter().position(|x| (*x - l).abs() < 1e-9).unwrap();
    forecast.value(b, 0, h, level(0.9)) - forecast.value(b, 0, h, level(0.1))
}

#[test]
fn four_native_horizons_give_sane_quantiles_that_never_narrow_past_the_first() {
    let model = model();
    let native = model.config().native_horizon();
    let horizon = LONG_HORIZON_FACTOR * native;
    assert_eq!(model.config().max_horizon(), horizon);
    let options = ForecastOptions::default();
    let long = model.forecast(&batch(horizon, 4.0), &options).unwrap();
    assert_eq!(long.steps, horizon);
    let q = long.levels.len();
    for b in 0..2 {
        for h in 0..horizon {
            let row: Vec<f32> = (0..q).map(|l| long.value(b, 0, h, l)).collect();
            assert!(row.iter().all(|v| v.is_finite()), "window {b} step {h}: {row:?}");
            assert!(row.windows(2).all(|p| p[0] <= p[1]), "window {b} step {h} crosses: {row:?}");
        }
        // Past the first rollout, no step is narrower than where the first one ended.
        let first_end = width(&long, b, native - 1);
        assert!(first_end > 0.0);
        for h in native..horizon {
            assert!(width(&long, b, h) >= first_end * (1.0 - 1e-5), "window {b} step {h}");
        }
        // And no rollout ends narrower than the one before.
        let ends: Vec<f32> = (1..=LONG_HORIZON_FACTOR).map(|s| width(&long, b, s * native - 1)).collect();
        assert!(ends.windows(2).all(|p| p[1] >= p[0] * (1.0 - 1e-5)), "window {b}: {ends:?}");
        // The medians carry the daily wave on (peak to peak 40 or 80 in the history):
        // each rollout feeds back medians a little flatter than the data, so the swing of
        // a rollout's last day shrinks, but by less than 40 % a rollout and never below a
        // quarter of the history's.
        let median = long.levels.iter().position(|l| *l == 0.5).unwrap();
        let swings: Vec<f32> = (1..=LONG_HORIZON_FACTOR)
            .map(|s| {
                let day = (s * native - 24..s * native).map(|h| long.value(b, 0, h, median));
                let (low, high) = day.fold((f32::MAX, f32::MIN), |(l, h), v| (l.min(v), h.max(v)));
                high - low
            })
            .collect();
        assert!(swings.windows(2).all(|p| p[1] >= 0.6 * p[0]), "window {b}: {swings:?}");
        assert!(swings[LONG_HORIZON_FACTOR - 1] >= 0.25 * 40.0 * (b + 1) as f32, "window {b}: {swings:?}");
    }
    // The first rollout is the native forecast.
    let native_forecast = model.forecast(&batch(native, 4.0), &options).unwrap();
    for b in 0..2 {
        for h in 0..native {
            for l in 0..q {
                let (a, n) = (long.value(b, 0, h, l), native_forecast.value(b, 0, h, l));
                assert!((a - n).abs() <= 1e-3 * (1.0 + n.abs()), "window {b} step {h} level {l}: {a} vs {n}");
            }
        }
    }
    assert_eq!(long.loops[0].len(), horizon / model.config().patch_len);
}

#[test]
fn plans_past_the_native_horizon_are_the_plans_forecast_alone() {
    let model = model();
    let horizon = 2 * model.config().native_horizon() + 40;
    let options = ForecastOptions::default();
    let base = batch(horizon, 4.0);
    let plans: Vec<(Vec<f32>, Vec<bool>)> = [2.0, 8.0]
        .iter()
        .map(|p| {
            let planned = batch(horizon, *p);
            let (future, known) = planned.future_arrays();
            (future.to_vec(), known.to_vec())
        })
        .collect();
    let together = model.whatif(&base, &plans, &options).unwrap();
    for (k, plan) in [2.0, 8.0].iter().enumerate() {
        let alone = model.forecast(&batch(horizon, *plan), &options).unwrap();
        assert_eq!(together[k].steps, horizon);
        for (a, b) in together[k].values.iter().zip(&alone.values) {
            assert!((a - b).abs() <= 1e-3 * (1.0 + b.abs()), "plan {k}: {a} vs {b}");
        }
    }
}

#[test]
fn horizons_past_the_reach_and_deferred_decoding_past_the_rollout_are_refused() {
    let model = model();
    let beyond = model.config().max_horizon() + 1;
    let err = model.forecast(&batch(beyond, 4.0), &ForecastOptions::default()).unwrap_err().to_string();
    assert!(err.contains("`horizon`") && err.contains(&model.config().max_horizon().to_string()), "{err}");
    let deferred = ForecastOptions { patches: Some(vec![0]), ..ForecastOptions::default() };
    let err =
        model.forecast(&batch(2 * model.config().native_horizon(), 4.0), &deferred).unwrap_err().to_string();
    assert!(err.contains("`patches`"), "{err}");
}
