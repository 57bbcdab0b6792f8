//! `loopcast bench`: what a forecast costs on this machine, always next to a reference
//! measured in the same run: a dense matrix product on the same device (the ceiling the
//! model's matrix products could reach), separate forecasts for what-ifs, running every
//! loop for the adaptive exit, and AutoETS on the same series for throughput.
//!
//! The standard request is 4 channels (3 targets, 1 action), 512 context steps and 64
//! horizon steps.

use std::time::Instant;

use burn::tensor::{Device, Distribution, Tensor};
use loopcast_core::Role;
use loopcast_data::WindowBatch;
use loopcast_model::{ForecastOptions, LoopedWorldModel, ModelBatch, RequestShape, forecast_flops};

use crate::backtest::{Backtest, BacktestConfig, EvalError, ModelName};
use crate::baselines;
use crate::counterfactual::{HELD_OUT_SEEDS, TwinSpec, twin_episodes};

/// Context steps of the standard request.
pub const CONTEXT: usize = 512;
/// Horizon steps of the standard request.
pub const HORIZON: usize = 64;
const CHANNELS: usize = 4;
const TARGETS: usize = 3;

/// How long to measure.
#[derive(Debug, Clone, Copy)]
pub struct BenchOptions {
    /// Timed calls per latency figure (the median is reported).
    pub runs: usize,
    /// Held-out simulator episodes for loops against accuracy.
    pub episodes: usize,
    /// Series AutoETS is fitted on for its throughput.
    pub ets_series: usize,
}

impl BenchOptions {
    /// The figures in docs/PERFORMANCE.md.
    pub const FULL: Self = Self { runs: 15, episodes: 48, ets_series: 48 };
    /// A fast smoke run (tests).
    pub const QUICK: Self = Self { runs: 2, episodes: 4, ets_series: 3 };
}

/// The standard request for `batch` windows; every window and target differs in phase.
pub fn standard_request(batch: usize) -> ModelBatch {
    let roles = vec![Role::Target, Role::Target, Role::Target, Role::Action];
    let mut values = Vec::with_capacity(batch * CHANNELS * CONTEXT);
    for b in 0..batch {
        for c in 0..CHANNELS {
            values.extend((0..CONTEXT).map(|t| standard_value(b, c, t)));
        }
    }
    let future: Vec<f32> = (0..batch * CHANNELS * HORIZON).map(|_| 6.0).collect();
    let known: Vec<bool> = (0..batch * CHANNELS * HORIZON).map(|i| i / HORIZON % CHANNELS == 3).collect();
    ModelBatch::new(
        roles,
        batch,
        CONTEXT,
        HORIZON,
        values,
        vec![true; batch * CHANNELS * CONTEXT],
        future,
        known,
    )
    .expect("the standard request is valid")
}

fn standard_value(b: usize, c: usize, t: usize) -> f32 {
    let phase = (b * 7 + c * 3) as f32;
    let daily = ((t as f32 + phase) / 288.0 * std::f32::consts::TAU).sin();
    let wiggle = ((t * 31 + b * 17 + c * 5) % 13) as f32 / 13.0;
    if c == 3 { 4.0 + (t / 96 % 3) as f32 } else { 50.0 + 10.0 * c as f32 + 12.0 * daily + 3.0 * wiggle }
}

/// Median seconds of `runs` calls after one warm-up call.
fn median_seconds(runs: usize, mut f: impl FnMut() -> Result<(), EvalError>) -> Result<f64, EvalError> {
    f()?;
    let mut times = Vec::with_capacity(runs);
    for _ in 0..runs.max(1) {
        let start = Instant::now();
        f()?;
        times.push(start.elapsed().as_secs_f64());
    }
    times.sort_by(f64::total_cmp);
    Ok(times[times.len() / 2])
}

/// GFLOP/s of a dense `[4096, 64] × [64, 128]` matmul on `device` (the model's width).
fn matmul_gflops(device: &Device, runs: usize) -> Result<f64, EvalError> {
    let (m, k, n) = (4096, 64, 128);
    let a = Tensor::<2>::random([m, k], Distribution::Default, device);
    let b = Tensor::<2>::random([k, n], Distribution::Default, device);
    // A new left operand every call, so no backend can reuse an earlier result.
    let mut round = 0.0f32;
    let seconds = median_seconds(runs * 2, || {
        round += 1.0;
        let _ = a.clone().mul_scalar(round).matmul(b.clone()).into_data();
        Ok(())
    })?;
    Ok(2.0 * (m * k * n) as f64 / seconds / 1e9)
}

fn fixed_loops(loops: usize) -> ForecastOptions {
    ForecastOptions {
        min_loops: Some(loops),
        max_loops: Some(loops),
        exit_threshold: Some(2.0),
        ..Default::default()
    }
}

fn mean_loops(forecast: &loopcast_model::Forecast) -> f64 {
    let all: Vec<u32> = forecast.loops.iter().flatten().copied().collect();
    all.iter().map(|l| f64::from(*l)).sum::<f64>() / all.len().max(1) as f64
}

/// Runs every measurement and returns them as Markdown.
pub fn run(
    model: &LoopedWorldModel,
    model_name: &str,
    device_name: &str,
    options: BenchOptions,
) -> Result<String, EvalError> {
    let config = model.config();
    let device = model.device();
    let shape = RequestShape { channels: CHANNELS, targets: TARGETS, context: CONTEXT, horizon: HORIZON };
    let ceiling = matmul_gflops(device, options.runs)?;
    let mut out = format!(
        "Model `{model_name}` ({} parameters, R_max = {}), device {device_name}; dense matmul \
         `[4096, 64] × [64, 128]` on the same device, same run: **{ceiling:.1} GFLOP/s** (the \
         ceiling below).\n\n",
        model.parameter_count(),
        config.max_loops
    );

    // Latency at batch 1 and throughput at batch 256.
    out.push_str("### Latency and throughput (standard request)\n\n");
    out.push_str(
        "| measurement | ms per call | forecasts/s | mean loops | MFLOP/forecast | GFLOP/s | × matmul |\n",
    );
    out.push_str("|---|---:|---:|---:|---:|---:|---:|\n");
    let mut row = |name: String,
                   batch: usize,
                   request: &ModelBatch,
                   forecast_options: &ForecastOptions,
                   runs: usize| {
        let mut loops = 0.0;
        let seconds = median_seconds(runs, || {
            loops = mean_loops(&model.forecast(request, forecast_options)?);
            Ok(())
        })?;
        let flops = forecast_flops(config, shape, loops.round().max(1.0) as usize) as f64;
        let gflops = batch as f64 * flops / seconds / 1e9;
        out.push_str(&format!(
            "| {name} | {:.2} | {:.0} | {loops:.2} | {:.1} | {gflops:.2} | {:.3} |\n",
            seconds * 1e3,
            batch as f64 / seconds,
            flops / 1e6,
            gflops / ceiling
        ));
        Ok::<f64, EvalError>(batch as f64 / seconds)
    };
    let one = standard_request(1);
    row("batch 1, adaptive exit".into(), 1, &one, &ForecastOptions::default(), options.runs)?;
    for loops in [1, 2, 4, config.max_loops] {
        row(format!("batch 1, R = {loops}"), 1, &one, &fixed_loops(loops), options.runs)?;
    }
    let many = standard_request(256);
    let throughput = row(
        "batch 256, adaptive exit".into(),
        256,
        &many,
        &ForecastOptions::default(),
        options.runs.div_ceil(4),
    )?;
    row(
        format!("batch 256, R = {}", config.max_loops),
        256,
        &many,
        &fixed_loops(config.max_loops),
        options.runs.div_ceil(4),
    )?;
    out.push_str(
        "\nMFLOP/forecast counts the matrix products from the shapes (`loopcast_model::forecast_flops`, \
         at the mean loops rounded); × matmul is the achieved rate over the ceiling.\n\n",
    );

    // What-ifs: K plans in one call against K forecasts.
    out.push_str("### What-if cost: K plans sharing one encoding against K forecasts\n\n");
    out.push_str("| K | one what-if ms | K forecasts ms | what-if ÷ K forecasts |\n|---:|---:|---:|---:|\n");
    for k in [1usize, 8, 64] {
        let (future, known) = one.future_arrays();
        let plans: Vec<(Vec<f32>, Vec<bool>)> = (0..k)
            .map(|i| {
                let mut plan = future.to_vec();
                plan[3 * HORIZON..].iter_mut().for_each(|v| *v = 2.0 + i as f32);
                (plan, known.to_vec())
            })
            .collect();
        let whatif = median_seconds(options.runs, || {
            model.whatif(&one, &plans, &ForecastOptions::default())?;
            Ok(())
        })?;
        let separate = median_seconds(options.runs.div_ceil(2), || {
            for (plan, known) in &plans {
                model
                    .forecast(&one.with_future(plan.clone(), known.clone())?, &ForecastOptions::default())?;
            }
            Ok(())
        })?;
        out.push_str(&format!(
            "| {k} | {:.2} | {:.2} | {:.2} |\n",
            whatif * 1e3,
            separate * 1e3,
            whatif / separate
        ));
    }

    // Loops against accuracy.
    out.push_str(&loops_against_accuracy(model, options)?);

    // AutoETS on the same series.
    let request_series: Vec<Vec<f64>> = (0..options.ets_series)
        .map(|i| (0..CONTEXT).map(|t| f64::from(standard_value(i / TARGETS, i % TARGETS, t))).collect())
        .collect();
    let started = Instant::now();
    for series in &request_series {
        baselines::auto_ets(series, 1, HORIZON).map_err(|e| EvalError::Config(e.to_string()))?;
    }
    let ets_per_second = request_series.len() as f64 / started.elapsed().as_secs_f64();
    let loopcast_per_second = throughput * TARGETS as f64;
    out.push_str(&format!(
        "\n### Throughput against AutoETS on the same series\n\n\
         | forecaster | target series/s | ratio |\n|---|---:|---:|\n\
         | AutoETS (augurs, fit + predict, one series at a time) | {ets_per_second:.1} | 1.00 |\n\
         | loopcast (batch 256, adaptive exit; {TARGETS} targets per forecast) | {loopcast_per_second:.0} | {:.1} |\n",
        loopcast_per_second / ets_per_second
    ));
    Ok(out)
}

/// Exit thresholds swept, from "always the fewest loops" to "always R_max".
const THRESHOLDS: [f64; 6] = [0.0, 0.25, 0.5, 0.75, 0.9, 2.0];

/// Mean loops and weighted quantile loss per exit threshold on held-out simulator
/// episodes (5-minute steps, daily season).
fn loops_against_accuracy(model: &LoopedWorldModel, options: BenchOptions) -> Result<String, EvalError> {
    let windows = held_out_windows(options.episodes)?;
    let mut rows = Vec::new();
    for threshold in THRESHOLDS {
        let config = BacktestConfig {
            season: 288,
            mstl_periods: Vec::new(),
            models: vec![ModelName::Loopcast],
            forecast_options: ForecastOptions { exit_threshold: Some(threshold), ..Default::default() },
            chart_samples: 0,
            targets: Vec::new(),
            action_futures: true,
        };
        let mut backtest = Backtest::new(config)?;
        backtest.push(Some(model), &windows)?;
        let summary =
            backtest.summary().into_iter().find(|s| s.model == ModelName::Loopcast).expect("loopcast ran");
        rows.push((threshold, summary));
    }
    // Relative WQL is a geometric mean of ratios to seasonal naive on the same series, so
    // its ratio between two thresholds is the geometric mean of the per-series ratios (a
    // plain mean WQL is swamped by series near zero, such as error rates).
    let at_max = rows.last().and_then(|(_, s)| s.relative_wql).unwrap_or(f64::NAN);
    let max_loops = model.config().max_loops as f64;
    let mut out = format!(
        "\n### Loops used against accuracy (exit threshold τ)\n\n{} held-out simulator episodes \
         (seeds from {HELD_OUT_SEEDS}), {} target series, same context and horizon; τ = 2 always runs R_max. \
         Relative scores are geometric means over series of the ratio to seasonal naive.\n\n\
         | τ | mean loops | share of R_max | relative WQL | ÷ at R_max | relative MASE |\n|---:|---:|---:|---:|---:|---:|\n",
        options.episodes,
        rows.first().map_or(0, |(_, s)| s.instances),
    );
    for (threshold, s) in &rows {
        let loops = s.mean_loops.unwrap_or(f64::NAN);
        let wql = s.relative_wql.unwrap_or(f64::NAN);
        out.push_str(&format!(
            "| {threshold} | {loops:.2} | {:.0} % | {wql:.3} | {:.3} | {:.3} |\n",
            100.0 * loops / max_loops,
            wql / at_max,
            s.relative_mase.unwrap_or(f64::NAN)
        ));
    }
    Ok(out)
}

/// Held-out SRE episodes as backtest windows: the history and the future under the
/// operator's own plan, every channel.
fn held_out_windows(episodes: usize) -> Result<WindowBatch, EvalError> {
    let spec = TwinSpec { episodes, context: CONTEXT, horizon: HORIZON, plans: 1, ..TwinSpec::default() };
    let episodes = twin_episodes(spec)?;
    let first = episodes
        .first()
        .ok_or_else(|| EvalError::Config("the loops sweep needs at least one episode".into()))?;
    let channels: Vec<_> = first.history.channels.iter().map(|c| c.spec.clone()).collect();
    let mut batch = WindowBatch::empty(&channels, CONTEXT, HORIZON);
    let mask = |o: &bool| if *o { 1.0 } else { 0.0 };
    for episode in &episodes {
        batch.series.push(format!("episode-{}", episode.seed));
        batch.origins.push(episode.futures[0].timestamp(0));
        for (past, next) in episode.history.channels.iter().zip(&episode.futures[0].channels) {
            batch.context.extend(past.values.iter().map(|v| *v as f32));
            batch.context_mask.extend(past.observed.iter().map(mask));
            batch.future.extend(next.values.iter().map(|v| *v as f32));
            batch.future_mask.extend(next.observed.iter().map(mask));
        }
    }
    Ok(batch)
}
