//! A small model learns the size of an overload by gradient alone.
//!
//! A toy queueing service: demand follows a daily wave, each replica serves a fixed rate
//! (hidden), an autoscaler keeps the utilisation near a setpoint of its own with a lag,
//! and what exceeds the capacity waits in a backlog that drains first-in first-out, up to
//! a time-out. CPU is the utilisation; latency is a service time that grows with it plus
//! the time to drain the backlog ahead of a request. Every history continues under the
//! operator's hold and three replica plans between a third and twice the count, so some
//! plans overload the service: latency then grows by orders of magnitude, an integral of
//! demand over capacity that no single step shows. Sizes, not only directions, are what
//! the test measures: trained by `train_on` on these windows alone, with the effect
//! recurrence (`model.effect_recurrence`) beside the v2 recipe's ratio path and departure
//! memory, a held-out overload's size comes within a few fold, where without it the
//! model predicts a hundredth of it.

use std::sync::atomic::AtomicBool;

use loopcast_core::Role;
use loopcast_model::{DeviceKind, ForecastOptions, LoopedWorldModel, ModelBatch};
use loopcast_train::data::{Source, StepBatch};
use loopcast_train::{TrainConfig, TrainError, TrainOptions, TrainOutcome, train_on};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, StandardNormal};

const CONTEXT: usize = 128;
const HORIZON: usize = 32;
const SEASON: usize = 64;
const PLANS: usize = 4;
const HISTORIES: usize = 8;
const STEPS: u64 = 1000;
/// Steps a request waits at most in the backlog before it is dropped.
const TIMEOUT: f32 = 30.0;
/// Milliseconds per step (steps of a minute).
const STEP_MS: f32 = 60_000.0;

/// One history of the toy world: its demand, the replicas the autoscaler kept, and what
/// each replica serves.
struct Toy {
    demand: Vec<f32>,
    noise: Vec<f32>,
    per_replica: f32,
    service_ms: f32,
    replicas: Vec<f32>,
}

/// What the service shows under one replica schedule, context and future.
struct Observed {
    cpu: Vec<f32>,
    latency: Vec<f32>,
}

impl Toy {
    fn new(seed: u64) -> Self {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let len = CONTEXT + HORIZON;
        let level = rng.random_range(50f32.ln()..5000f32.ln()).exp();
        let phase = rng.random_range(0..SEASON);
        let mut normal = || <StandardNormal as Distribution<f32>>::sample(&StandardNormal, &mut rng);
        let demand = (0..len)
            .map(|t| {
                let wave = (2.0 * std::f32::consts::PI * ((t + phase) % SEASON) as f32 / SEASON as f32).sin();
                level * (1.0 + 0.4 * wave) * (1.0 + 0.03 * normal())
            })
            .collect::<Vec<f32>>();
        let noise = (0..len).map(|_| 1.0 + 0.02 * normal()).collect();
        let per_replica = rng.random_range(5f32.ln()..200f32.ln()).exp();
        let service_ms = rng.random_range(10f32.ln()..200f32.ln()).exp();
        let setpoint = rng.random_range(0.4..0.85);
        let mut count = (demand[0] / (per_replica * setpoint)).ceil().clamp(1.0, 256.0);
        let replicas = (0..CONTEXT)
            .map(|t| {
                // The autoscaler acts every 8 steps on the demand it saw 4 steps ago.
                if t % 8 == 0 {
                    count = (demand[t.saturating_sub(4)] / (per_replica * setpoint)).ceil().clamp(1.0, 256.0);
                }
                count
            })
            .collect();
        Self { demand, noise, per_replica, service_ms, replicas }
    }

    fn last(&self) -> f32 {
        self.replicas[CONTEXT - 1]
    }

    /// CPU and latency under `plan` (the replicas over the horizon).
    fn run(&self, plan: &[f32]) -> Observed {
        let mut backlog = 0f32;
        let (mut cpu, mut latency) = (Vec::new(), Vec::new());
        for (t, replicas) in self.replicas.iter().chain(plan).enumerate() {
            let capacity = replicas * self.per_replica;
            let waiting = backlog + self.demand[t];
            let served = waiting.min(capacity);
            backlog = (waiting - served).min(self.demand[t] * TIMEOUT);
            let utilisation = served / capacity;
            let drain = (backlog / capacity).min(TIMEOUT);
            let wait = 0.5 * utilisation / (1.0 - 0.95 * utilisation);
            cpu.push((0.05 + 0.95 * utilisation) * self.noise[t]);
            latency.push((self.service_ms * (1.0 + wait) + drain * STEP_MS) * self.noise[t]);
        }
        Observed { cpu, latency }
    }

    /// A departure to `count` replicas from step `from` of the horizon on.
    fn plan(&self, count: f32, from: usize) -> Vec<f32> {
        (0..HORIZON).map(|h| if h < from { self.last() } else { count }).collect()
    }
}

/// Windows of `(history, plan)` pairs: channels demand, CPU and latency (targets, their
/// future the truth) and replicas.
fn windows(rows: &[(&Toy, Vec<f32>)]) -> ModelBatch {
    let (mut values, mut future) = (Vec::new(), Vec::new());
    for (toy, plan) in rows {
        let observed = toy.run(plan);
        for channel in [&toy.demand, &observed.cpu, &observed.latency] {
            values.extend_from_slice(&channel[..CONTEXT]);
            future.extend_from_slice(&channel[CONTEXT..]);
        }
        values.extend_from_slice(&toy.replicas);
        future.extend_from_slice(plan);
    }
    let known = vec![true; future.len()];
    let roles = vec![Role::Target, Role::Target, Role::Target, Role::Action];
    let observed = vec![true; values.len()];
    ModelBatch::new(roles, rows.len(), CONTEXT, HORIZON, values, observed, future, known)
        .unwrap()
        .with_season(SEASON)
}

/// A departure's replica count: between a third of the last count and twice it, never
/// the last count itself.
fn departure(toy: &Toy, rng: &mut ChaCha8Rng) -> f32 {
    let count = (toy.last() * 2f32.powf(rng.random_range(-1.6..1.0))).round().max(1.0);
    if count == toy.last() { count + 1.0 } else { count }
}

/// Training step `step`: `HISTORIES` histories, each under the hold and three departures
/// (rows `PLANS·i` to `PLANS·i + 3`, the twin loss's layout).
fn training_batch(step: u64) -> Result<StepBatch, TrainError> {
    let mut rng = ChaCha8Rng::seed_from_u64(step);
    let toys: Vec<Toy> = (0..HISTORIES).map(|_| Toy::new(rng.random::<u64>() >> 1)).collect();
    let mut rows = Vec::new();
    for toy in &toys {
        rows.push((toy, toy.plan(toy.last(), 0)));
        for _ in 1..PLANS {
            let count = departure(toy, &mut rng);
            rows.push((toy, toy.plan(count, rng.random_range(0..HORIZON / 2))));
        }
    }
    let loops = 1 + (step % 2) as usize;
    Ok(StepBatch { batch: windows(&rows), source: Source::Sre, loops, consistency_patch: 0 })
}

fn config() -> TrainConfig {
    let text = format!(
        r#"
seed = 3
steps = {STEPS}
batch_size = {batch}
checkpoint_every = 100000
log_every = 100
[model]
d_model = 32
heads = 4
mlp_ratio = 2
patch_len = 8
encoder_layers = 1
max_context_patches = 16
max_horizon_patches = 4
quantiles = [0.1, 0.5, 0.9]
min_loops = 1
max_loops = 2
exit_threshold = 0.5
scale_floor = 0.001
input_scale_floor = 0.25
anchor = true
anchor_features = true
state_blend = true
naive_unit_context = true
action_effects = true
effect_units = "ratio"
expected_plan = true
departure_memory = true
effect_recurrence = true
[optimizer]
learning_rate = 0.003
warmup_steps = 20
final_lr_ratio = 0.1
weight_decay = 0.01
grad_clip_norm = 1.0
[loops]
poisson_lambda = 1.0
grad_loops = 2
[loss]
pinball = 1.0
consistency = 0.0
contraction = 0.0
contraction_ratio = 0.9
gate = 0.0
gate_tolerance = 0.01
twin = 1.0
twin_scale = "log"
twin_material = 0.05
twin_material_floor = 0.25
[data]
sre_share = 1.0
contexts = [{CONTEXT}]
horizons = [{HORIZON}]
prior_max_channels = 1
target_subset_share = 0.0
drop_actions_share = 0.0
plans_per_history = {PLANS}
[validation]
every = {STEPS}
windows = 1
context = {CONTEXT}
horizon = {HORIZON}
"#,
        batch = HISTORIES * PLANS
    );
    let config: TrainConfig = toml::from_str(&text).unwrap();
    config.validate().unwrap();
    config
}

/// How a model sizes the effects of held-out departures on one target.
#[derive(Debug)]
struct Sizes {
    /// Median predicted ÷ true mean effect over the material departures.
    gain: f32,
    /// Median distance between the predicted and the true log ratio of the departure's
    /// mean to the hold's (0.69: a factor of 2 off).
    log_error: f32,
    /// Material departures (true mean effect over a tenth of the hold's mean).
    material: usize,
}

/// The means over the horizon of one pair's predicted medians and truth: `(predicted
/// hold, predicted departure, true hold, true departure)`.
type Pair = (f32, f32, f32, f32);

fn summary(pairs: &[Pair]) -> Sizes {
    let middle = |mut x: Vec<f32>| {
        x.sort_by(f32::total_cmp);
        if x.is_empty() { f32::NAN } else { x[x.len() / 2] }
    };
    let effects = |(p0, p1, t0, t1): &Pair| (p1 - p0, t1 - t0);
    let ln_ratio = |a: f32, b: f32| (b.max(1e-6) / a.max(1e-6)).ln();
    Sizes {
        gain: middle(pairs.iter().map(effects).map(|(p, t)| p / t).collect()),
        log_error: middle(
            pairs.iter().map(|(p0, p1, t0, t1)| (ln_ratio(*p0, *p1) - ln_ratio(*t0, *t1)).abs()).collect(),
        ),
        material: pairs.len(),
    }
}

/// Over held-out histories, each under the hold and one departure from the forecast time
/// on: the CPU's and latency's [`Sizes`], and the overloads' (latency effects more than
/// ten times the hold's mean).
fn sizes(model: &LoopedWorldModel) -> (Sizes, Sizes, Sizes) {
    let mut rng = ChaCha8Rng::seed_from_u64(1 << 40);
    let toys: Vec<Toy> = (0..96).map(|i| Toy::new((1 << 62) + i)).collect();
    let mut rows = Vec::new();
    for toy in &toys {
        rows.push((toy, toy.plan(toy.last(), 0)));
        rows.push((toy, toy.plan(departure(toy, &mut rng), 0)));
    }
    let options = ForecastOptions { exit_threshold: Some(2.0), ..ForecastOptions::default() };
    let forecast = model.forecast(&windows(&rows), &options).unwrap();
    let median = forecast.levels.iter().position(|l| *l == 0.5).unwrap();
    let mean = |x: &[f32]| x.iter().sum::<f32>() / x.len() as f32;
    let predicted =
        |b: usize, t: usize| mean(&(0..HORIZON).map(|h| forecast.value(b, t, h, median)).collect::<Vec<_>>());
    let (mut cpu, mut latency, mut overloads) = (Vec::new(), Vec::new(), Vec::new());
    for (i, toy) in toys.iter().enumerate() {
        let (hold, moved) = (toy.run(&rows[2 * i].1), toy.run(&rows[2 * i + 1].1));
        for (t, before, after, pairs) in
            [(1, &hold.cpu, &moved.cpu, &mut cpu), (2, &hold.latency, &moved.latency, &mut latency)]
        {
            let (before, after) = (mean(&before[CONTEXT..]), mean(&after[CONTEXT..]));
            let pair = (predicted(2 * i, t), predicted(2 * i + 1, t), before, after);
            if (after - before).abs() > 0.1 * before {
                pairs.push(pair);
            }
            if t == 2 && after - before > 10.0 * before {
                overloads.push(pair);
            }
        }
    }
    (summary(&cpu), summary(&latency), summary(&overloads))
}

#[test]
fn a_small_model_sizes_an_overload_by_gradient_alone() {
    let config = config();
    let dir = tempfile::tempdir().unwrap();
    let options = TrainOptions {
        out_dir: dir.path().to_path_buf(),
        resume: false,
        init: None,
        device: DeviceKind::Cpu,
        progress: false,
        select: None,
    };
    let outcome = train_on(&config, &options, &AtomicBool::new(false), &training_batch).unwrap();
    let TrainOutcome::Finished { model_dir, .. } = outcome else { panic!("not interrupted") };
    // The weights are mapped from `dir`, which must outlive the model.
    let trained = LoopedWorldModel::load(&model_dir, &DeviceKind::Cpu.device().unwrap()).unwrap();
    let (cpu, latency, overloads) = sizes(&trained);
    eprintln!("CPU {cpu:?}\nlatency {latency:?}\noverloads {overloads:?}");
    assert!(
        overloads.material >= 10,
        "the held-out departures overload the service {} times",
        overloads.material
    );
    // Measured over seeds 3–5 (1,000 steps): overloads' log error 0.95 / 1.81 / 1.29, their
    // gain 0.65 / 0.18 / 0.55, latency's gain 0.70 / 0.58 / 0.55, CPU's 1.06 / 1.10 / 1.05.
    // The same recipe without the recurrence (the bilinear path and departure memory
    // alone): log error 3.28 / 3.10 / 2.87, overloads' gain 0.010 / 0.019 / 0.013,
    // latency's 0.06 / 0.08 / 0.08 — a direction and no size.
    assert!(overloads.log_error < 2.3, "overloads sized {:.2} log units off", overloads.log_error);
    assert!(overloads.gain > 0.1, "overloads' gain {}", overloads.gain);
    assert!(latency.gain > 0.35, "latency's gain {}", latency.gain);
    assert!((0.8..=1.25).contains(&cpu.gain), "CPU's gain {}", cpu.gain);
}
