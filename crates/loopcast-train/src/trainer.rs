//! The training loop: steps, clipping, schedule, logging, validation, checkpoints and
//! resumption.

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use burn::module::{Module, ModuleMapper, ModuleVisitor, Param, ParamId};
use burn::optim::{AdamWConfig, GradientsParams, ModuleOptimizer};
use burn::tensor::{Device, Tensor};
use indicatif::{ProgressBar, ProgressStyle};
use loopcast_model::{DeviceKind, LoopedWorldModel, ModelConfig, Network};
use serde::{Deserialize, Serialize};

use crate::checkpoint::{
    Best, CHECKPOINTS, LOG, append_log, best_name, io, read_best, resume, save_best, save_checkpoint,
    write_atomic,
};
use crate::data::{EVALUATION_SEEDS, Source, SreLayout, StepBatch, VALIDATION_SEEDS, mixture_batch};
use crate::{
    LossValues, RealCorpus, TrainConfig, TrainError, ValidationReport, ValidationSet, evaluate,
    fit_relative_path, fitted_effect_widening, fitted_interval_scale, step_loss,
};

/// Where and how a run goes.
#[derive(Debug, Clone)]
pub struct TrainOptions {
    /// The run's directory: checkpoints, the metrics log, the final model.
    pub out_dir: PathBuf,
    /// Continue from the last checkpoint in `out_dir` instead of starting afresh.
    pub resume: bool,
    /// Start a fresh run from this model directory's weights instead of random ones
    /// (fine-tuning, or training a shipped model further); its config must be the
    /// recipe's model. Ignored by `resume`, whose checkpoint holds the weights.
    pub init: Option<PathBuf>,
    /// Where the tensors live.
    pub device: DeviceKind,
    /// Draw a progress bar on stderr.
    pub progress: bool,
    /// What `validation.keep_best` ranks by instead of the recipe's `keep_best_by`; with
    /// `init`, the initial weights are scored too, so a run that never beats them ships
    /// them.
    pub select: Option<Selector>,
}

/// A score of the weights being trained, lower better (e.g. `loopcast tune`'s error on
/// the user's own windows), for [`TrainOptions::select`].
#[derive(Clone)]
pub struct Selector(pub Arc<SelectFn>);

/// What a [`Selector`] calls.
pub type SelectFn = dyn Fn(&LoopedWorldModel) -> Result<f64, TrainError> + Send + Sync;

impl std::fmt::Debug for Selector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Selector(..)")
    }
}

/// How a run ended.
#[derive(Debug, Clone, PartialEq)]
pub enum TrainOutcome {
    /// Every step ran; the model is in `model_dir`.
    Finished {
        /// Steps run in total.
        steps: u64,
        /// The exported model.
        model_dir: PathBuf,
        /// Its score on the final-evaluation seeds.
        evaluation: ValidationReport,
    },
    /// Stopped by the caller's flag after `step` steps; a checkpoint holds them.
    Interrupted {
        /// Steps completed and saved.
        step: u64,
    },
}

/// One line of `metrics.jsonl`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LogLine {
    /// Steps completed when the line was written.
    pub step: u64,
    /// Learning rate of the last step.
    pub learning_rate: f64,
    /// Loss terms, averaged over the steps since the last line.
    pub loss: LossValues,
    /// Global gradient norm before clipping, averaged likewise.
    pub grad_norm: f64,
    /// Mean loops per patch of those steps.
    pub loops: f64,
    /// Share of those steps drawn from the SRE world.
    pub sre_share: f64,
    /// Steps per second over those steps.
    pub steps_per_second: f64,
    /// Validation scores, on lines written at a validation step.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub validation: Option<ValidationReport>,
}

/// Initial weights come from burn's process-wide generator: seeding and drawing happen
/// under this lock so concurrent runs in one process cannot interleave.
static INIT: Mutex<()> = Mutex::new(());

/// Asked between steps whether the run should stop (Ctrl-C sets an [`AtomicBool`]).
pub trait StopSignal {
    /// Whether to stop now, with `step` steps done.
    fn stop_requested(&self, step: u64) -> bool;
}

impl StopSignal for AtomicBool {
    fn stop_requested(&self, _step: u64) -> bool {
        self.load(Ordering::SeqCst)
    }
}

/// Trains `config` into `options.out_dir`. `stop` is asked between steps: the run then
/// writes a checkpoint and returns [`TrainOutcome::Interrupted`].
pub fn train(
    config: &TrainConfig,
    options: &TrainOptions,
    stop: &dyn StopSignal,
) -> Result<TrainOutcome, TrainError> {
    let real = RealCorpus::load(&config.data.real)?;
    train_on(config, options, stop, &|step| mixture_batch(config, &real, step))
}

/// [`train`] on the windows `batches` gives for each step (a pure function of the step,
/// so a resumed run sees the batches an uninterrupted one would) instead of the recipe's
/// mixture: a world of one's own, e.g. with a planted effect. Validation, calibration and
/// the held-out evaluation stay the recipe's.
pub fn train_on(
    config: &TrainConfig,
    options: &TrainOptions,
    stop: &dyn StopSignal,
    batches: &dyn Fn(u64) -> Result<StepBatch, TrainError>,
) -> Result<TrainOutcome, TrainError> {
    config.validate().map_err(|message| TrainError::Config { path: options.out_dir.clone(), message })?;
    let out = &options.out_dir;
    fs::create_dir_all(out).map_err(|e| io(out, e))?;
    let device = options.device.device()?.autodiff();
    let (mut network, mut optimizer, mut step, mut wall) = if options.resume {
        resume(out, config, &device)?
    } else {
        if out.join(CHECKPOINTS).exists() {
            return Err(TrainError::Resume(format!(
                "{} already holds a run; pass --resume to continue it or choose another directory",
                out.display()
            )));
        }
        let network = initial_network(config, options.init.as_deref(), &device)?;
        let _ = fs::remove_file(out.join(LOG));
        (network, optimizer(config), 0, 0.0)
    };
    let layout = SreLayout { action_blind: config.data.action_blind, ..SreLayout::full() };
    let validation = ValidationSet::new(
        VALIDATION_SEEDS,
        config.validation.windows,
        config.validation.context,
        config.validation.horizon,
        &layout,
    )?;
    let progress = if options.progress { ProgressBar::new(config.steps) } else { ProgressBar::hidden() };
    progress.set_style(
        ProgressStyle::with_template(
            "{spinner} step {pos}/{len} {wide_msg} [{elapsed_precise}<{eta_precise}]",
        )
        .expect("a valid template"),
    );
    progress.set_position(step);
    let mut window = Window::default();
    let mut started = Instant::now();
    let mut last_validation = None;
    let mut best = if config.validation.keep_best { read_best(out)? } else { None };
    let by = config.validation.keep_best_by;
    let score = |report: &ValidationReport, model: &LoopedWorldModel| match &options.select {
        Some(Selector(select)) => select(model).map(Some),
        None => Ok(Some(report.selection_score(by))),
    };
    if let (true, false, None, Some(_), Some(_)) =
        (config.validation.keep_best, options.resume, &best, &options.init, &options.select)
    {
        // The initial weights compete with the trained ones (a resumed run kept their
        // score when it began).
        let current = inference_model(&network, config, &device);
        let validation = evaluate(&current, &validation)?;
        let kept = Best { step: 0, score: score(&validation, &current)?, validation };
        save_best(out, &current, &kept)?;
        best = Some(kept);
    }
    while step < config.steps {
        if stop.stop_requested(step) {
            wall += started.elapsed().as_secs_f64();
            save_checkpoint(out, &network, &optimizer, config, &device, step, wall)?;
            progress.abandon_with_message(format!("interrupted at step {step}; checkpoint written"));
            return Ok(TrainOutcome::Interrupted { step });
        }
        let batch = batches(step)?;
        let (loss, values) = step_loss(&network, config, &batch, &device)?;
        if !values.total.is_finite() {
            return Err(TrainError::Diverged { step, detail: format!("{values:?}") });
        }
        let mut grads = GradientsParams::from_grads(loss.backward(), &network);
        let norm = clip_global_norm(&network, &mut grads, config.optimizer.grad_clip_norm);
        let learning_rate = config.learning_rate(step);
        network = optimizer.step(learning_rate, network, grads);
        step += 1;
        window.add(&values, norm, batch.loops, batch.source);
        progress.set_position(step);
        progress.set_message(format!(
            "loss {:.4} (pinball {:.4} twin {:.4} consistency {:.3} contraction {:.3} gate {:.3}) R={}",
            values.total,
            values.pinball,
            values.twin,
            values.consistency,
            values.contraction,
            values.gate,
            batch.loops
        ));
        let validate_now = step % config.validation.every == 0 || step == config.steps;
        if step % config.log_every == 0 || validate_now {
            let report = if validate_now {
                let current = inference_model(&network, config, &device);
                let report = evaluate(&current, &validation)?;
                progress.println(format!(
                    "step {step}: relative MASE {:.3}, relative WQL {:.3}, coverage {:.3}, loops {:.2}, effect error {:.3}, sign {:.3}",
                    report.relative_mase, report.relative_wql, report.coverage_80, report.mean_loops,
                    report.effect_error, report.effect_sign_accuracy
                ));
                last_validation = Some(report.clone());
                let now = if config.validation.keep_best { score(&report, &current)? } else { None };
                let improved =
                    best.as_ref().is_none_or(|b: &Best| now.unwrap_or(f64::INFINITY) < b.score(by));
                if config.validation.keep_best && improved {
                    let kept = Best { step, score: now, validation: report.clone() };
                    save_best(out, &current, &kept)?;
                    best = Some(kept);
                }
                Some(report)
            } else {
                None
            };
            let elapsed = started.elapsed().as_secs_f64();
            wall += elapsed;
            started = Instant::now();
            append_log(out, &window.line(step, learning_rate, elapsed, report))?;
            window = Window::default();
        }
        if step % config.checkpoint_every == 0 || step == config.steps {
            wall += started.elapsed().as_secs_f64();
            started = Instant::now();
            save_checkpoint(out, &network, &optimizer, config, &device, step, wall)?;
        }
    }
    progress.finish_with_message("done");
    let mut model = match &best {
        Some(kept) => {
            let dir = out.join(CHECKPOINTS).join(best_name(kept.step)).join("model");
            LoopedWorldModel::load(dir, &device.clone().inner())?
        }
        None => inference_model(&network, config, &device),
    };
    let calibration = if config.validation.calibrate {
        let trained = &config.model.config;
        let interval_scale = trained.interval_scale * fitted_interval_scale(&model, &validation, 0.8)?;
        let model_config = ModelConfig { interval_scale, ..trained.clone() };
        model =
            LoopedWorldModel::from_network(model.network().clone(), model_config, &device.clone().inner());
        let report = evaluate(&model, &validation)?;
        Some(serde_json::json!({ "interval_scale": interval_scale, "validation": report }))
    } else {
        None
    };
    // The relative path moves every quantile alike, so it leaves the intervals' widths
    // (and so the calibration) as they are.
    let relative_fit = match config.effects.relative_pairs {
        0 => None,
        pairs => {
            let (fitted, fit) = fit_relative_path(&model, config, pairs, options.progress)?;
            model = fitted;
            Some(fit)
        }
    };
    // The effect intervals last: the relative path changes the effects they bound.
    // A validation set with no material twin effect has nothing to fit them on: the
    // model keeps its own (`effect_widening` null in the summary).
    let effect_widening = match config.validation.calibrate {
        true => fitted_effect_widening(&evaluate(&model, &validation)?).ok(),
        false => None,
    };
    if let Some(widening) = effect_widening {
        model = model.with_effect_widening(widening)?;
    }
    let model_dir = out.join("model");
    model.save(&model_dir)?;
    let held_out = ValidationSet::new(
        EVALUATION_SEEDS,
        config.validation.windows,
        config.validation.context,
        config.validation.horizon,
        &layout,
    )?;
    let evaluation = evaluate(&model, &held_out)?;
    let summary = serde_json::json!({
        "steps": step,
        "wall_seconds": wall,
        "parameters": model.parameter_count(),
        "validation": last_validation,
        "selected": best,
        "calibration": calibration,
        "effect_widening": effect_widening,
        "relative_fit": relative_fit,
        "evaluation": evaluation,
    });
    write_atomic(&out.join("summary.json"), &serde_json::to_vec_pretty(&summary).expect("serialises"))?;
    Ok(TrainOutcome::Finished { steps: step, model_dir, evaluation })
}

/// The network a fresh run starts from: `init`'s weights, or fresh ones from the seed
/// (all of them, or a path the initial model lacks), on the autodiff `device`.
fn initial_network(
    config: &TrainConfig,
    init: Option<&Path>,
    device: &Device,
) -> Result<Network, TrainError> {
    let model_config = &config.model.config;
    let _guard = INIT.lock().unwrap_or_else(|e| e.into_inner());
    device.seed(config.seed);
    Ok(match init {
        Some(dir) => {
            // The interval scale is fitted after training, not learned: a calibrated
            // model starts a run like the uncalibrated one (at the recipe's scale). A
            // recipe may add the relative action path, or drop it to solve it again
            // (`effects.relative_pairs`).
            let start = LoopedWorldModel::load_into(dir, model_config, device)?.ok_or_else(|| {
                TrainError::Config {
                    path: dir.to_path_buf(),
                    message: "the initial model's config is not the recipe's `model`".into(),
                }
            })?;
            stable_ids(start.network().clone(), true)
        }
        None => stable_ids(Network::new(model_config, device), true),
    })
}

/// Seconds an optimiser step of `config` takes here, from `init`'s weights (or fresh
/// ones): the mean of `probe` steps after a first one (which pays for allocations), on
/// the recipe's own first batches; nothing is written. How `loopcast tune` turns a time
/// budget into a step count before a run, so the schedule ends where the budget does.
pub fn seconds_per_step(
    config: &TrainConfig,
    init: Option<&Path>,
    device: DeviceKind,
    probe: u64,
) -> Result<f64, TrainError> {
    config.validate().map_err(|message| TrainError::Config { path: PathBuf::from("(recipe)"), message })?;
    let device = device.device()?.autodiff();
    let real = RealCorpus::load(&config.data.real)?;
    let mut network = initial_network(config, init, &device)?;
    let mut optimizer = optimizer(config);
    let mut started = Instant::now();
    for step in 0..=probe {
        if step == 1 {
            started = Instant::now();
        }
        let batch = mixture_batch(config, &real, step)?;
        let (loss, _) = step_loss(&network, config, &batch, &device)?;
        let mut grads = GradientsParams::from_grads(loss.backward(), &network);
        clip_global_norm(&network, &mut grads, config.optimizer.grad_clip_norm);
        network = optimizer.step(config.learning_rate(step), network, grads);
    }
    Ok(started.elapsed().as_secs_f64() / probe.max(1) as f64)
}

/// The trained weights, off the autodiff graph, as a model for forecasting.
pub(crate) fn inference_model(network: &Network, config: &TrainConfig, device: &Device) -> LoopedWorldModel {
    LoopedWorldModel::from_network(network.valid(), config.model.config.clone(), &device.clone().inner())
}

pub(crate) fn optimizer(config: &TrainConfig) -> ModuleOptimizer {
    AdamWConfig::new().with_weight_decay(config.optimizer.weight_decay as f32).init()
}

/// Running means of the steps since the last log line.
#[derive(Default)]
struct Window {
    steps: usize,
    loss: LossValues,
    grad_norm: f64,
    loops: f64,
    sre: f64,
}

impl Window {
    fn add(&mut self, values: &LossValues, norm: f64, loops: usize, source: Source) {
        self.steps += 1;
        self.loss.accumulate(values);
        self.grad_norm += norm;
        self.loops += loops as f64;
        self.sre += f64::from(u8::from(source == Source::Sre));
    }

    fn line(
        &self,
        step: u64,
        learning_rate: f64,
        seconds: f64,
        validation: Option<ValidationReport>,
    ) -> LogLine {
        let n = self.steps.max(1) as f64;
        LogLine {
            step,
            learning_rate,
            loss: self.loss.divided(n),
            grad_norm: self.grad_norm / n,
            loops: self.loops / n,
            sre_share: self.sre / n,
            steps_per_second: self.steps as f64 / seconds.max(1e-9),
            validation,
        }
    }
}

/// Scales every gradient down so that their global L2 norm is at most `max`; returns the
/// norm before clipping.
fn clip_global_norm(network: &Network, grads: &mut GradientsParams, max: f64) -> f64 {
    struct SquaredNorm<'a> {
        grads: &'a GradientsParams,
        parts: Vec<Tensor<1>>,
    }
    impl ModuleVisitor for SquaredNorm<'_> {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
            if let Some(grad) = self.grads.get::<D>(param.id) {
                self.parts.push(grad.powf_scalar(2.0).sum());
            }
        }
    }
    struct Scale<'a> {
        grads: &'a mut GradientsParams,
        factor: f64,
    }
    impl ModuleVisitor for Scale<'_> {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
            if let Some(grad) = self.grads.remove::<D>(param.id) {
                self.grads.register(param.id, grad.mul_scalar(self.factor));
            }
        }
    }
    let mut norm = SquaredNorm { grads, parts: Vec::new() };
    network.visit(&mut norm);
    if norm.parts.is_empty() {
        return 0.0;
    }
    let total = f64::from(Tensor::cat(norm.parts, 0).sum().into_scalar::<f32>()).sqrt();
    if total > max && total.is_finite() {
        network.visit(&mut Scale { grads, factor: max / total });
    }
    total
}

/// Gives every parameter an id derived from its path in the module tree, so optimiser
/// state saved by one process finds its parameters in another, and a rerun writes the same
/// weights file (burn draws ids at random). `trainable`: the parameters also require
/// gradients (the network is trained on an autodiff device).
pub(crate) fn stable_ids(network: Network, trainable: bool) -> Network {
    struct StableIds {
        path: Vec<String>,
        trainable: bool,
    }
    impl ModuleMapper for StableIds {
        fn enter_module(&mut self, name: &str, _container_type: &str) {
            self.path.push(name.to_string());
        }
        fn exit_module(&mut self, _name: &str, _container_type: &str) {
            self.path.pop();
        }
        fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
            // FNV-1a of the dotted path.
            let id = self.path.join(".").bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
                (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
            });
            let (_, value, mapper) = param.consume();
            let value = if self.trainable { value.set_require_grad(true) } else { value };
            Param::from_mapped_value(ParamId::from(id), value, mapper)
        }
    }
    network.map(&mut StableIds { path: Vec::new(), trainable })
}
