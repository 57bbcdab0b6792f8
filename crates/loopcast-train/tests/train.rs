//! Training end to end on a tiny config: the loss goes down, an interrupted and resumed
//! run ends with exactly the weights of an uninterrupted one, and the exported model
//! forecasts.

use std::path::Path;
use std::sync::atomic::AtomicBool;

use loopcast_model::{DeviceKind, ForecastOptions, LoopedWorldModel, ModelConfig};
use loopcast_train::{
    KeepBy, LogLine, Selector, StopSignal, TrainConfig, TrainOptions, TrainOutcome, ValidationConfig,
    ValidationReport, train,
};

fn tiny(steps: u64) -> TrainConfig {
    let config: TrainConfig = toml::from_str(&tiny_recipe(steps)).unwrap();
    config.validate().unwrap();
    config
}

/// The recipe of [`tiny`], as TOML.
fn tiny_recipe(steps: u64) -> String {
    format!(
        r#"
seed = 5
steps = {steps}
batch_size = 4
checkpoint_every = 1000
log_every = 1
[model]
d_model = 16
heads = 2
mlp_ratio = 2
patch_len = 8
encoder_layers = 1
max_context_patches = 8
max_horizon_patches = 4
quantiles = [0.1, 0.5, 0.9]
min_loops = 1
max_loops = 3
exit_threshold = 0.5
scale_floor = 0.001
[optimizer]
learning_rate = 0.01
warmup_steps = 3
final_lr_ratio = 0.1
weight_decay = 0.01
grad_clip_norm = 1.0
[loops]
poisson_lambda = 1.0
grad_loops = 2
[loss]
pinball = 1.0
consistency = 0.05
contraction = 0.1
contraction_ratio = 0.9
gate = 0.05
gate_tolerance = 0.01
twin = 0.5
[data]
sre_share = 0.5
contexts = [32, 64]
horizons = [8, 16]
prior_max_channels = 2
target_subset_share = 0.3
drop_actions_share = 0.1
[validation]
every = 1000
windows = 4
context = 64
horizon = 16
"#
    )
}

fn options(dir: &Path, resume: bool) -> TrainOptions {
    TrainOptions {
        out_dir: dir.to_path_buf(),
        resume,
        init: None,
        device: DeviceKind::Cpu,
        progress: false,
        select: None,
    }
}

fn log(dir: &Path) -> Vec<LogLine> {
    std::fs::read_to_string(dir.join("metrics.jsonl"))
        .unwrap()
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect()
}

fn weights(dir: &Path) -> Vec<u8> {
    std::fs::read(dir.join("model/weights.bpk")).unwrap()
}

fn held_out_wql(dir: &Path) -> f64 {
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("summary.json")).unwrap()).unwrap();
    summary["evaluation"]["wql"].as_f64().unwrap()
}

/// The same held-out windows, scored after one step and after 150: the quantile loss
/// falls by a fifth or more, and every logged term stays finite.
#[test]
fn a_tiny_config_learns() {
    let (untrained, trained) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    train(&tiny(1), &options(untrained.path(), false), &AtomicBool::new(false)).unwrap();
    let outcome = train(&tiny(150), &options(trained.path(), false), &AtomicBool::new(false)).unwrap();
    let TrainOutcome::Finished { steps, .. } = outcome else { panic!("{outcome:?}") };
    assert_eq!(steps, 150);
    let (before, after) = (held_out_wql(untrained.path()), held_out_wql(trained.path()));
    eprintln!("held-out weighted quantile loss {before:.4} → {after:.4}");
    assert!(after < 0.8 * before, "held-out weighted quantile loss went from {before:.4} to {after:.4}");
    let lines = log(trained.path());
    assert_eq!(lines.len(), 150);
    assert!(lines.iter().all(|l| l.loss.total.is_finite() && l.grad_norm.is_finite()));
    assert!(lines.iter().any(|l| l.loss.gate > 0.0) && lines.iter().any(|l| l.loops > 1.0));
}

/// The anchored decoding, the direct action path and the MASE-weighted loss (the
/// recipe of the shipped model) against the plain decoder on the tiny recipe: a fresh
/// anchored model starts near seasonal naive, well ahead of a fresh plain one, and after
/// the same training it is still ahead, with every term finite and the twin loss on.
#[test]
fn a_tiny_anchored_config_starts_and_ends_ahead_of_a_plain_one() {
    let plain = |steps| {
        let mut config = tiny(steps);
        config.model.config.anchor = false;
        config.model.config.action_effects = false;
        config
    };
    let anchored = |steps| {
        let mut config = tiny(steps);
        config.model.config.anchor = true;
        config.model.config.action_effects = true;
        config.model.config.anchor_features = true;
        config.model.config.state_blend = true;
        config.model.config.naive_unit_context = true;
        config.loss.naive_floor = 0.05;
        config
    };
    let score = |config: TrainConfig| {
        let dir = tempfile::tempdir().unwrap();
        train(&config, &options(dir.path(), false), &AtomicBool::new(false)).unwrap();
        (held_out_wql(dir.path()), log(dir.path()))
    };
    let ((plain_fresh, _), (plain_trained, _)) = (score(plain(1)), score(plain(150)));
    let ((fresh, _), (trained, lines)) = (score(anchored(1)), score(anchored(150)));
    eprintln!(
        "held-out WQL, fresh → trained: plain {plain_fresh:.4} → {plain_trained:.4}, anchored {fresh:.4} → {trained:.4}"
    );
    assert!(fresh < 0.8 * plain_fresh, "fresh: anchored {fresh:.4}, plain {plain_fresh:.4}");
    assert!(trained < plain_trained, "trained: anchored {trained:.4}, plain {plain_trained:.4}");
    assert!(lines.iter().all(|l| l.loss.total.is_finite() && l.grad_norm.is_finite()));
    assert!(lines.iter().any(|l| l.loss.twin > 0.0), "the twin loss reaches the action path");
}

/// With `validation.calibrate`, the run ends by fitting the interval scale: the saved
/// model carries it, and its 80 % intervals cover 80 % of the validation values.
#[test]
fn a_calibrated_run_covers_eighty_percent_of_validation_values() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = tiny(40);
    config.validation.calibrate = true;
    train(&config, &options(dir.path(), false), &AtomicBool::new(false)).unwrap();
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("summary.json")).unwrap()).unwrap();
    let calibration = &summary["calibration"];
    let scale = calibration["interval_scale"].as_f64().unwrap();
    let (before, after) = (
        summary["validation"]["coverage_80"].as_f64().unwrap(),
        calibration["validation"]["coverage_80"].as_f64().unwrap(),
    );
    eprintln!("interval scale {scale:.3}: validation coverage {before:.3} → {after:.3}");
    assert!((0.795..0.83).contains(&after), "calibrated coverage {after:.3}");
    assert!(scale != 1.0 && (before - 0.8).abs() > (after - 0.8).abs(), "{scale} {before} {after}");
    let model = LoopedWorldModel::load(dir.path().join("model"), &burn::tensor::Device::flex()).unwrap();
    assert_eq!(model.config().interval_scale, scale);
}

/// Asks to stop once `after` steps have run.
struct StopAfter(u64);

impl StopSignal for StopAfter {
    fn stop_requested(&self, step: u64) -> bool {
        step >= self.0
    }
}

#[test]
fn an_interrupted_run_resumes_to_the_same_weights() {
    let config = TrainConfig { checkpoint_every: 4, ..tiny(12) };
    let straight = tempfile::tempdir().unwrap();
    train(&config, &options(straight.path(), false), &AtomicBool::new(false)).unwrap();

    let resumed = tempfile::tempdir().unwrap();
    let outcome = train(&config, &options(resumed.path(), false), &StopAfter(5)).unwrap();
    assert_eq!(outcome, TrainOutcome::Interrupted { step: 5 });
    assert!(!resumed.path().join("model").exists());
    // Starting afresh over a run is refused; so is resuming with another recipe.
    let error = train(&config, &options(resumed.path(), false), &AtomicBool::new(false)).unwrap_err();
    assert!(error.to_string().contains("--resume"), "{error}");
    let other = TrainConfig { seed: 6, ..config.clone() };
    let error = train(&other, &options(resumed.path(), true), &AtomicBool::new(false)).unwrap_err();
    assert!(error.to_string().contains("differs in: seed)"), "{error}");
    // A checkpoint written before a field existed resumes, the field taking its default.
    let checkpoints = resumed.path().join("checkpoints");
    let latest = std::fs::read_to_string(checkpoints.join("LATEST")).unwrap();
    let state_path = checkpoints.join(latest.trim()).join("state.json");
    let mut state: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&state_path).unwrap()).unwrap();
    let older = |value: &mut serde_json::Value| value.as_object_mut().unwrap().remove("calibrate").unwrap();
    older(&mut state["config"]["validation"]);
    std::fs::write(&state_path, state.to_string()).unwrap();

    let outcome = train(&config, &options(resumed.path(), true), &AtomicBool::new(false)).unwrap();
    assert!(matches!(outcome, TrainOutcome::Finished { steps: 12, .. }), "{outcome:?}");
    assert_eq!(weights(straight.path()), weights(resumed.path()), "weights differ after resume");
    let (a, b) = (log(straight.path()), log(resumed.path()));
    assert_eq!(a.len(), b.len());
    for (x, y) in a.iter().zip(&b) {
        assert_eq!((x.step, x.loss), (y.step, y.loss));
    }
}

/// With `validation.keep_best`, the run ships the weights of its best validation (lowest
/// relative weighted quantile loss), also when that validation came before an interruption.
#[test]
fn a_run_keeping_the_best_ships_its_best_validation() {
    let mut config = tiny(25);
    config.validation = ValidationConfig { every: 5, keep_best: true, ..config.validation };
    let dir = tempfile::tempdir().unwrap();
    let outcome = train(&config, &options(dir.path(), false), &StopAfter(12)).unwrap();
    assert_eq!(outcome, TrainOutcome::Interrupted { step: 12 });
    train(&config, &options(dir.path(), true), &AtomicBool::new(false)).unwrap();
    let scored: Vec<(u64, f64)> = log(dir.path())
        .iter()
        .filter_map(|l| l.validation.as_ref().map(|v| (l.step, v.relative_wql)))
        .collect();
    assert_eq!(scored.iter().map(|(step, _)| *step).collect::<Vec<_>>(), [5, 10, 15, 20, 25]);
    let best = scored.iter().fold(scored[0], |best, s| if s.1 < best.1 { *s } else { best });
    assert!(best.0 < 12, "this recipe's best validation comes before the interruption: {scored:?}");
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("summary.json")).unwrap()).unwrap();
    eprintln!("validations {scored:?}; selected {}", summary["selected"]);
    assert_eq!(summary["selected"]["step"].as_u64(), Some(best.0));
    let kept = dir.path().join(format!("checkpoints/best-{:09}", best.0));
    assert_eq!(weights(dir.path()), weights(&kept), "the shipped weights are the best validation's");
    let others = std::fs::read_dir(dir.path().join("checkpoints")).unwrap().flatten();
    let names: Vec<String> = others.map(|e| e.file_name().to_string_lossy().to_string()).collect();
    assert_eq!(names.iter().filter(|n| n.starts_with("best-")).count(), 1, "{names:?}");
}

#[test]
fn the_exported_model_forecasts_finite_monotone_quantiles() {
    let dir = tempfile::tempdir().unwrap();
    train(&tiny(3), &options(dir.path(), false), &AtomicBool::new(false)).unwrap();
    let model = LoopedWorldModel::load(dir.path().join("model"), &burn::tensor::Device::flex()).unwrap();
    assert_eq!(model.config(), &tiny(3).model.config);
    let _ = ModelConfig::small();
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("summary.json")).unwrap()).unwrap();
    assert_eq!(summary["steps"], 3);
    assert!(summary["evaluation"]["series"].as_u64().unwrap() > 0);
    let _ = ForecastOptions::default();
}

#[test]
fn every_shipped_recipe_is_valid() {
    let configs = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../configs");
    let mut recipes = vec![configs.join("train-small.toml")];
    for dir in ["ablations", "experiments"] {
        for entry in std::fs::read_dir(configs.join(dir)).unwrap() {
            recipes.push(entry.unwrap().path());
        }
    }
    assert!(recipes.len() >= 4);
    for path in recipes {
        let config = TrainConfig::from_file(&path).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(config.model.config.quantiles.len(), 13, "{}", path.display());
    }
}

/// A recipe's `[model]` may name a model config and change some of its fields: the
/// result is the preset with those fields changed; a misspelt or out-of-range change is
/// refused, naming the model config and the field.
#[test]
fn a_recipe_can_change_fields_of_a_named_model_config() {
    let dir = tempfile::tempdir().unwrap();
    let preset = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../configs/model-small.toml");
    std::fs::copy(&preset, dir.path().join("model-small.toml")).unwrap();
    let recipe =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../../configs/train-small.toml"))
            .unwrap();
    let with_model = |model: &str| {
        let path = dir.path().join("recipe.toml");
        std::fs::write(&path, recipe.replace("model = \"model-small.toml\"", model)).unwrap();
        TrainConfig::from_file(&path)
    };
    let plain = with_model("model = \"model-small.toml\"").unwrap();
    let changed =
        with_model("model = { from = \"model-small.toml\", max_loops = 1, retention = false }").unwrap();
    assert_eq!(changed.model.path, plain.model.path);
    assert_eq!(
        changed.model.config,
        ModelConfig { max_loops: 1, retention: false, ..plain.model.config.clone() }
    );
    assert!(changed.model.overrides.is_empty());
    let misspelt =
        with_model("model = { from = \"model-small.toml\", max_loop = 1 }").unwrap_err().to_string();
    assert!(misspelt.contains("model-small.toml") && misspelt.contains("max_loop"), "{misspelt}");
    let out_of_range =
        with_model("model = { from = \"model-small.toml\", heads = 3 }").unwrap_err().to_string();
    assert!(out_of_range.contains("model-small.toml") && out_of_range.contains("heads"), "{out_of_range}");
    let not_a_path = with_model("model = { from = 3 }").unwrap_err().to_string();
    assert!(not_a_path.contains("model.from"), "{not_a_path}");
}

/// A run started from a model's weights: with a learning rate of zero it exports that
/// model's forecasts; a recipe may add the relative action path; a model of another
/// shape is refused, naming the directory.
#[test]
fn a_run_can_start_from_a_models_weights() {
    let (first, second, other) =
        (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let calibrated =
        TrainConfig { validation: ValidationConfig { calibrate: true, ..tiny(20).validation }, ..tiny(20) };
    train(&calibrated, &options(first.path(), false), &AtomicBool::new(false)).unwrap();
    let mut frozen = tiny(1);
    frozen.optimizer.learning_rate = 1e-30; // below f32 resolution: the weights stay
    frozen.optimizer.weight_decay = 0.0;
    frozen.seed = 99;
    let start = first.path().join("model");
    let from = TrainOptions { init: Some(start.clone()), ..options(second.path(), false) };
    train(&frozen, &from, &AtomicBool::new(false)).unwrap();
    let device = DeviceKind::Cpu.device().unwrap();
    let a = LoopedWorldModel::load(&start, &device).unwrap();
    let b = LoopedWorldModel::load(second.path().join("model"), &device).unwrap();
    assert_ne!(a.config().interval_scale, 1.0, "a calibrated model starts the run");
    assert_eq!(b.config().interval_scale, 1.0, "at the recipe's interval scale");
    let b = LoopedWorldModel::from_network(b.network().clone(), a.config().clone(), &device);
    let window = loopcast_train::data::prior_windows(&[3], 32, 16, 1, None).unwrap();
    let (x, y) = (
        a.forecast(&window, &ForecastOptions::default()).unwrap(),
        b.forecast(&window, &ForecastOptions::default()).unwrap(),
    );
    assert_eq!(x.values, y.values, "the run starts from the given weights");
    // A recipe may add the relative action path to the weights it starts from.
    let added = tempfile::tempdir().unwrap();
    let mut relative = frozen.clone();
    relative.model.config.relative_effects = true;
    let from = TrainOptions { init: Some(start.clone()), ..options(added.path(), false) };
    train(&relative, &from, &AtomicBool::new(false)).unwrap();
    let c = LoopedWorldModel::load(added.path().join("model"), &device).unwrap();
    assert!(c.config().relative_effects && c.parameter_count() > a.parameter_count());

    let mut wider = tiny(1);
    wider.model.config.d_model = 32;
    let err = train(
        &wider,
        &TrainOptions { init: Some(start), ..options(other.path(), false) },
        &AtomicBool::new(false),
    )
    .unwrap_err();
    assert!(err.to_string().contains("model"), "{err}");
}

/// With a selector, `keep_best` ranks by it and the initial weights compete: a run whose
/// steps all score worse than its start ships the start's weights; one whose later steps
/// score better ships those.
#[test]
fn a_selector_ranks_the_kept_weights_and_the_start_competes() {
    let (first, second, third) =
        (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    train(&tiny(10), &options(first.path(), false), &AtomicBool::new(false)).unwrap();
    let start = first.path().join("model");
    let mut recipe = tiny(6);
    recipe.validation.every = 2;
    recipe.validation.keep_best = true;
    let run = |dir: &Path, scores: Vec<f64>| {
        let calls = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let counted = calls.clone();
        let select = Selector(std::sync::Arc::new(move |_: &LoopedWorldModel| {
            Ok(scores[counted.fetch_add(1, std::sync::atomic::Ordering::SeqCst)])
        }));
        let options = TrainOptions { init: Some(start.clone()), select: Some(select), ..options(dir, false) };
        train(&recipe, &options, &AtomicBool::new(false)).unwrap();
        let summary: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(dir.join("summary.json")).unwrap()).unwrap();
        assert_eq!(calls.load(std::sync::atomic::Ordering::SeqCst), 4, "the start and steps 2, 4, 6");
        summary["selected"]["step"].as_u64().unwrap()
    };
    assert_eq!(run(second.path(), vec![0.5, 0.9, 0.8, 0.7]), 0);
    let device = DeviceKind::Cpu.device().unwrap();
    let (a, b) = (
        LoopedWorldModel::load(&start, &device).unwrap(),
        LoopedWorldModel::load(second.path().join("model"), &device).unwrap(),
    );
    let window = loopcast_train::data::prior_windows(&[5], 32, 16, 1, None).unwrap();
    let (x, y) = (
        a.forecast(&window, &ForecastOptions::default()).unwrap(),
        b.forecast(&window, &ForecastOptions::default()).unwrap(),
    );
    assert_eq!(x.values, y.values, "the start's weights are shipped");
    assert_eq!(run(third.path(), vec![0.5, 0.9, 0.4, 0.45]), 4);
}

/// `effects.relative_pairs` adds the relative action path after training and solves it:
/// the shipped model has the path and the summary says how the fit went; the fit moves the
/// forecast of a twin whose plan departs, leaves a series without actions as it was, and
/// refuses a model that has the path already. A recipe that cannot draw full twins for it
/// is refused, naming the field.
#[test]
fn a_recipe_fits_the_relative_path_after_training() {
    let (plain, fitted_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let mut recipe = tiny(6);
    train(&recipe, &options(plain.path(), false), &AtomicBool::new(false)).unwrap();
    recipe.effects.relative_pairs = 16;
    recipe.validate().unwrap();
    train(&recipe, &options(fitted_dir.path(), false), &AtomicBool::new(false)).unwrap();
    let device = DeviceKind::Cpu.device().unwrap();
    let shipped = LoopedWorldModel::load(fitted_dir.path().join("model"), &device).unwrap();
    assert!(shipped.config().relative_effects);
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(fitted_dir.path().join("summary.json")).unwrap())
            .unwrap();
    let fit = &summary["relative_fit"];
    assert!(fit["pairs"].as_u64().unwrap() >= 16 && fit["cells"].as_u64().unwrap() > 0, "{fit}");
    assert!(fit["r_squared"].as_f64().unwrap().is_finite(), "{fit}");

    let base = LoopedWorldModel::load(plain.path().join("model"), &device).unwrap();
    let (fitted, _) = loopcast_train::fit_relative_path(&base, &recipe, 16, false).unwrap();
    let (twins, _) = loopcast_train::data::sre_windows(
        &[11],
        64,
        16,
        loopcast_core::Frequency::minutes(5),
        &loopcast_train::data::SreLayout::full(),
    )
    .unwrap();
    let prior = loopcast_train::data::prior_windows(&[3], 64, 16, 1, None).unwrap();
    let forecast =
        |model: &LoopedWorldModel, batch| model.forecast(batch, &ForecastOptions::default()).unwrap();
    assert_eq!(
        forecast(&fitted, &twins).values,
        forecast(&shipped, &twins).values,
        "the run's fit is this solve"
    );
    let again = tempfile::tempdir().unwrap();
    fitted.save(again.path()).unwrap();
    let bytes = |dir: &std::path::Path| std::fs::read(dir.join("weights.bpk")).unwrap();
    assert!(
        bytes(again.path()) == bytes(&fitted_dir.path().join("model")),
        "the same solve writes the same file"
    );
    assert_ne!(forecast(&base, &twins).values, forecast(&fitted, &twins).values, "the path moves effects");
    assert_eq!(forecast(&base, &prior).values, forecast(&fitted, &prior).values, "no actions, no path");
    assert!(loopcast_train::fit_relative_path(&fitted, &recipe, 16, false).is_err());

    let mut blind = recipe.clone();
    blind.data.sre_share = 0.0;
    let message = blind.validate().unwrap_err();
    assert!(message.contains("effects.relative_pairs"), "{message}");
}

/// `data.plans_per_history = 4`: each SRE history comes as four adjacent windows (the
/// operator's plan, then three departures) with the same context and different plans;
/// such a recipe trains with the twin term on, and a batch size that is no multiple of
/// the plans, or fewer than two plans, is refused naming the field.
#[test]
fn a_recipe_can_continue_each_history_under_more_plans() {
    let mut recipe = tiny(6);
    recipe.data.plans_per_history = 4;
    recipe.validate().unwrap();
    let step = (0..)
        .map(|i| loopcast_train::data::training_batch(&recipe, i).unwrap())
        .find(|s| s.source == loopcast_train::data::Source::Sre && s.batch.roles().len() > s.batch.targets())
        .unwrap();
    let batch = &step.batch;
    assert_eq!(batch.batch(), 4, "one history under four plans");
    let channels = batch.roles().len();
    let (context, _) = batch.context_arrays();
    let (future, _) = batch.future_arrays();
    let rows = |values: &[f32], len: usize| -> Vec<Vec<f32>> {
        values.chunks(channels * len).map(<[f32]>::to_vec).collect()
    };
    let (contexts, futures) = (rows(context, batch.context()), rows(future, batch.horizon()));
    assert!(contexts.iter().all(|c| *c == contexts[0]), "one history");
    let plan = |f: &Vec<f32>| f[batch.targets() * batch.horizon()..].to_vec();
    for departing in &futures[1..] {
        assert_ne!(plan(departing), plan(&futures[0]), "every departure changes the plan");
    }

    let dir = tempfile::tempdir().unwrap();
    train(&recipe, &options(dir.path(), false), &AtomicBool::new(false)).unwrap();
    let lines = log(dir.path());
    assert!(lines.iter().all(|l| l.loss.total.is_finite()));
    assert!(lines.iter().any(|l| l.loss.twin > 0.0), "the twin term scores the departures");

    recipe.batch_size = 6;
    let message = recipe.validate().unwrap_err();
    assert!(message.contains("batch_size") && message.contains("plans_per_history"), "{message}");
    recipe.data.plans_per_history = 1;
    let message = recipe.validate().unwrap_err();
    assert!(message.contains("data.plans_per_history"), "{message}");
}

/// A recipe with the effect recurrence trains with every term on (the gate's per-loop
/// decoding runs loop by loop for it), and its model forecasts finite quantiles.
#[test]
fn a_recipe_trains_the_effect_recurrence() {
    let mut recipe = tiny(6);
    recipe.data.plans_per_history = 4;
    recipe.model.config.action_effects = true;
    recipe.model.config.effect_units = loopcast_model::EffectUnits::Ratio;
    recipe.model.config.expected_plan = true;
    recipe.model.config.effect_recurrence = true;
    recipe.validate().unwrap();
    let dir = tempfile::tempdir().unwrap();
    train(&recipe, &options(dir.path(), false), &AtomicBool::new(false)).unwrap();
    let lines = log(dir.path());
    assert!(lines.iter().all(|l| l.loss.total.is_finite()), "every loss is finite");
    assert!(lines.iter().any(|l| l.loss.gate > 0.0 && l.loss.twin > 0.0), "the gate and twin terms ran");
    let model = LoopedWorldModel::load(dir.path().join("model"), &DeviceKind::Cpu.device().unwrap()).unwrap();
    assert!(model.config().effect_recurrence);
}

/// `keep_best_by = "wql_and_effect"` ranks validations by relative WQL plus the median
/// effect error, counting a validation with no material effect as predicting none (1).
#[test]
fn keeping_by_wql_and_effect_adds_the_effect_error() {
    let report = ValidationReport { relative_wql: 0.7, effect_error: 0.4, ..ValidationReport::default() };
    assert_eq!(report.selection_score(KeepBy::Wql), 0.7);
    assert!((report.selection_score(KeepBy::WqlAndEffect) - 1.1).abs() < 1e-12);
    let no_effect = ValidationReport { effect_error: f64::NAN, ..report };
    assert!((no_effect.selection_score(KeepBy::WqlAndEffect) - 1.7).abs() < 1e-12);
}

/// A recipe may mix real series into training: its files are read at the start (paths
/// relative to the recipe), a share without files or a file that cannot be read is refused
/// naming it, and a run drawing half of its steps from them trains.
#[test]
fn a_recipe_mixes_real_series_into_training() {
    let dir = tempfile::tempdir().unwrap();
    let mut csv = String::from("unique_id,ds,y\n");
    for (id, scale) in [("a", 1.0), ("b", 3.0)] {
        for i in 0..90 {
            let value = scale * (10.0 + (i % 12) as f64 + 0.1 * i as f64);
            csv.push_str(&format!("{id},{}-{:02}-01,{value}\n", 2000 + i / 12, i % 12 + 1));
        }
    }
    std::fs::write(dir.path().join("real.csv"), csv).unwrap();
    let recipe = |data: &str| {
        let path = dir.path().join("recipe.toml");
        let text = tiny_recipe(6).replace("[data]\n", &format!("[data]\n{data}\n"));
        std::fs::write(&path, text).unwrap();
        TrainConfig::from_file(&path)
    };
    let err = recipe("real_share = 0.3").unwrap_err().to_string();
    assert!(err.contains("data.real"), "{err}");
    let err = recipe("real_share = 0.6\nreal = [{ path = \"real.csv\" }]").unwrap_err().to_string();
    assert!(err.contains("data.sre_share + data.real_share"), "{err}");
    // Half SRE, half real, none from the prior.
    let config = recipe("real_share = 0.5\nreal = [{ path = \"real.csv\" }]").unwrap();
    assert_eq!(config.data.real[0].path, dir.path().join("real.csv"));
    let corpus = loopcast_train::RealCorpus::load(&config.data.real).unwrap();
    assert_eq!(corpus.len(), 2);
    let real_steps = (0..6)
        .filter(|step| {
            let batch = loopcast_train::data::mixture_batch(&config, &corpus, *step).unwrap();
            batch.source == loopcast_train::data::Source::Real
        })
        .count();
    assert!(real_steps > 0, "the run draws real series");
    let out = tempfile::tempdir().unwrap();
    train(&config, &options(out.path(), false), &AtomicBool::new(false)).unwrap();
    assert_eq!(log(out.path()).len(), 6);
    assert!(out.path().join("model").exists());

    let absent = recipe("real_share = 0.3\nreal = [{ path = \"absent.csv\" }]").unwrap();
    let err = train(&absent, &options(tempfile::tempdir().unwrap().path(), false), &AtomicBool::new(false))
        .unwrap_err()
        .to_string();
    assert!(err.contains("absent.csv"), "{err}");
}
