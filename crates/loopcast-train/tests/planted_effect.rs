//! A small model learns a planted multiplicative effect by gradient alone.
//!
//! In a toy world a service's load follows a daily wave and its CPU is `k · load /
//! replicas`; the replica count steps now and then in the history, and every history
//! continues under four replica plans (the operator's hold and three departures between
//! half and twice the count). Trained by `train_on` on these windows only — the twin loss
//! in log units weighted by each pair's true effect (as `configs/experiments/effects-v2.toml`
//! does), the direct action path in ratio units measured from the expected plan, nothing
//! solved after training — the model's predicted CPU effect of a held-out departure over the true one (its gain)
//! is near 1, and the load, which replicas do not move, stays put. A fresh model of the
//! same config has a gain near 0, so the test measures what training learned.

use std::sync::atomic::AtomicBool;

use loopcast_core::Role;
use loopcast_model::{DeviceKind, ForecastOptions, LoopedWorldModel, ModelBatch};
use loopcast_train::data::{Source, StepBatch};
use loopcast_train::{TrainConfig, TrainError, TrainOptions, TrainOutcome, train_on};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, StandardNormal};

const CONTEXT: usize = 64;
const HORIZON: usize = 16;
const SEASON: usize = 32;
const PLANS: usize = 4;
const HISTORIES: usize = 4;
const STEPS: u64 = 400;

/// One history of the toy world and the replica plans it continues under.
struct Toy {
    load: Vec<f32>,
    noise: Vec<f32>,
    k: f32,
    replicas: Vec<f32>,
}

impl Toy {
    fn new(seed: u64) -> Self {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let len = CONTEXT + HORIZON;
        let level = rng.random_range(20f32.ln()..2000f32.ln()).exp();
        let phase = rng.random_range(0..SEASON);
        let mut normal = || 0.05 * <StandardNormal as Distribution<f32>>::sample(&StandardNormal, &mut rng);
        let load = (0..len)
            .map(|t| {
                let wave = (2.0 * std::f32::consts::PI * ((t + phase) % SEASON) as f32 / SEASON as f32).sin();
                level * (1.0 + 0.4 * wave) * (1.0 + normal())
            })
            .collect();
        let noise = (0..len).map(|_| 1.0 + normal()).collect();
        let k = rng.random_range(0.002f32.ln()..0.02f32.ln()).exp();
        let mut count = rng.random_range(2..=12) as f32;
        let replicas = (0..CONTEXT)
            .map(|_| {
                if rng.random::<f32>() < 0.05 {
                    let factor = [0.5, 0.67, 1.5, 2.0][rng.random_range(0..4)];
                    count = (count * factor).round().clamp(1.0, 32.0);
                }
                count
            })
            .collect();
        Self { load, noise, k, replicas }
    }

    fn last(&self) -> f32 {
        self.replicas[CONTEXT - 1]
    }

    /// The CPU under `plan` (the replicas over the horizon), context and future.
    fn cpu(&self, plan: &[f32]) -> Vec<f32> {
        let replicas = self.replicas.iter().chain(plan);
        self.load.iter().zip(&self.noise).zip(replicas).map(|((l, n), r)| self.k * l / r * n).collect()
    }

    /// A departure to `count` replicas from step `from` of the horizon on.
    fn plan(&self, count: f32, from: usize) -> Vec<f32> {
        (0..HORIZON).map(|h| if h < from { self.last() } else { count }).collect()
    }
}

/// Windows of `(history, plan)` pairs: channels load and CPU (targets, their future the
/// truth) and replicas.
fn windows(rows: &[(&Toy, Vec<f32>)]) -> ModelBatch {
    let (mut values, mut future) = (Vec::new(), Vec::new());
    for (toy, plan) in rows {
        let cpu = toy.cpu(plan);
        for channel in [&toy.load, &cpu] {
            values.extend_from_slice(&channel[..CONTEXT]);
            future.extend_from_slice(&channel[CONTEXT..]);
        }
        values.extend_from_slice(&toy.replicas);
        future.extend_from_slice(plan);
    }
    let known = vec![true; future.len()];
    let roles = vec![Role::Target, Role::Target, Role::Action];
    let observed = vec![true; values.len()];
    ModelBatch::new(roles, rows.len(), CONTEXT, HORIZON, values, observed, future, known)
        .unwrap()
        .with_season(SEASON)
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
            let mut count = (toy.last() * 2f32.powf(rng.random_range(-1.0..1.0))).round().max(1.0);
            if count == toy.last() {
                count += 1.0;
            }
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
checkpoint_every = 1000
log_every = 100
[model]
d_model = 32
heads = 4
mlp_ratio = 2
patch_len = 8
encoder_layers = 1
max_context_patches = 8
max_horizon_patches = 2
quantiles = [0.1, 0.5, 0.9]
min_loops = 1
max_loops = 2
exit_threshold = 0.5
scale_floor = 0.001
anchor = true
action_effects = true
effect_units = "ratio"
expected_plan = true
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

/// Over held-out histories, for doubling or halving the replicas from the forecast time
/// on: the median gain (predicted ÷ true mean effect on the CPU), the median effect error
/// `|gain − 1|`, and the median predicted effect on the load as a share of its level.
fn gains(model: &LoopedWorldModel) -> (f32, f32, f32) {
    let toys: Vec<Toy> = (0..32).map(|i| Toy::new((1 << 62) + i)).collect();
    let mut rows = Vec::new();
    for (i, toy) in toys.iter().enumerate() {
        let count = if i % 2 == 0 { toy.last() * 2.0 } else { (toy.last() / 2.0).round().max(1.0) };
        rows.push((toy, toy.plan(toy.last(), 0)));
        rows.push((toy, toy.plan(if count == toy.last() { count + 1.0 } else { count }, 0)));
    }
    let options = ForecastOptions { exit_threshold: Some(2.0), ..ForecastOptions::default() };
    let forecast = model.forecast(&windows(&rows), &options).unwrap();
    let median = forecast.levels.iter().position(|l| *l == 0.5).unwrap();
    let mean = |b: usize, t: usize| {
        (0..HORIZON).map(|h| forecast.value(b, t, h, median)).sum::<f32>() / HORIZON as f32
    };
    let middle = |mut x: Vec<f32>| {
        x.sort_by(f32::total_cmp);
        x[x.len() / 2]
    };
    let (mut cpu, mut load) = (Vec::new(), Vec::new());
    for (i, toy) in toys.iter().enumerate() {
        let truth = |plan: &[f32]| toy.cpu(plan)[CONTEXT..].iter().sum::<f32>() / HORIZON as f32;
        let true_effect = truth(&rows[2 * i + 1].1) - truth(&rows[2 * i].1);
        cpu.push((mean(2 * i + 1, 1) - mean(2 * i, 1)) / true_effect);
        let level = toy.load[..CONTEXT].iter().sum::<f32>() / CONTEXT as f32;
        load.push((mean(2 * i + 1, 0) - mean(2 * i, 0)).abs() / level);
    }
    let errors = cpu.iter().map(|gain| (gain - 1.0).abs()).collect();
    (middle(cpu), middle(errors), middle(load))
}

#[test]
fn a_small_model_learns_a_planted_multiplicative_effect_by_gradient_alone() {
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
    let device = DeviceKind::Cpu.device().unwrap();
    let fresh = LoopedWorldModel::new(config.model.config.clone(), &device).unwrap();
    let (fresh_gain, _, _) = gains(&fresh);
    assert!(fresh_gain.abs() < 0.2, "a fresh model barely moves with the plan (gain {fresh_gain})");

    let outcome = train_on(&config, &options, &AtomicBool::new(false), &training_batch).unwrap();
    let TrainOutcome::Finished { model_dir, .. } = outcome else { panic!("not interrupted") };
    eprintln!("{}", std::fs::read_to_string(dir.path().join("metrics.jsonl")).unwrap());
    let trained = LoopedWorldModel::load(&model_dir, &device).unwrap();
    let (gain, error, load) = gains(&trained);
    eprintln!("CPU gain {gain}, effect error {error}, load moved by {load} of its level");
    assert!((0.7..=1.3).contains(&gain), "CPU gain {gain} (fresh {fresh_gain})");
    // With the v2 recipe's expected plan and material weights, measured 0.32 / 0.31 /
    // 0.28 over seeds 3–5 (gains 1.01–1.07; without them 0.27–0.29); the direct path in
    // scaled units, trained alike, scores 0.37–0.38 (median gains 0.74–0.78).
    assert!(error < 0.36, "CPU effect error {error} (gain {gain})");
    assert!(load < 0.05, "replicas move the load by {load} of its level");
}
