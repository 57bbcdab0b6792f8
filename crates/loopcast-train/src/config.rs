//! The training recipe, read from TOML (see `configs/train-small.toml`).

use std::path::{Path, PathBuf};

use loopcast_core::toml_error_line;
use loopcast_data::Layout;
use loopcast_model::ModelConfig;
use serde::{Deserialize, Serialize};

use crate::TrainError;

/// Everything that decides a training run. Two runs with equal configs produce equal
/// weights, step for step.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrainConfig {
    /// The model's hyper-parameters. In the file: a path to a model config, relative to
    /// the training config (`model = "model-small.toml"`); a table naming one and the
    /// fields it changes (`[model]` with `from = "../model-small.toml"` and
    /// `max_loops = 1`), so a variant follows its preset; or a whole inline table.
    #[serde(deserialize_with = "model_source")]
    pub model: ModelSource,
    /// Seed of every random choice: data, loop counts, initial weights.
    pub seed: u64,
    /// Optimiser steps.
    pub steps: u64,
    /// Windows per step.
    pub batch_size: usize,
    /// Optimiser and schedule.
    pub optimizer: OptimizerConfig,
    /// Loop counts during training.
    pub loops: LoopsConfig,
    /// Loss weights.
    pub loss: LossConfig,
    /// What the windows look like.
    pub data: DataConfig,
    /// Held-out validation.
    pub validation: ValidationConfig,
    /// What is solved after training rather than learned (none when absent).
    #[serde(default)]
    pub effects: EffectsConfig,
    /// Optimiser steps between checkpoints (a checkpoint is also written on interrupt and
    /// at the end).
    pub checkpoint_every: u64,
    /// Optimiser steps between lines of the training log.
    pub log_every: u64,
}

/// The model config, with the file it came from when it came from one (serialised as the
/// config alone, so a run's record does not depend on where its files sit).
#[derive(Debug, Clone, PartialEq)]
pub struct ModelSource {
    /// Where the config was read from (`None` when inline).
    pub path: Option<PathBuf>,
    /// The config.
    pub config: ModelConfig,
    /// Fields set over the file's (`[model]` with `from`) until [`TrainConfig::from_file`]
    /// reads the file and applies them; empty after.
    pub overrides: toml::Table,
}

impl Serialize for ModelSource {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.config.serialize(serializer)
    }
}

fn model_source<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<ModelSource, D::Error> {
    use serde::de::Error;
    // A file, or a file and the fields it changes, is resolved against the training
    // config's directory by `TrainConfig::from_file`.
    let pending =
        |path: PathBuf, overrides| ModelSource { path: Some(path), config: ModelConfig::small(), overrides };
    Ok(match toml::Value::deserialize(deserializer)? {
        toml::Value::String(path) => pending(PathBuf::from(path), toml::Table::new()),
        toml::Value::Table(mut table) => match table.remove("from") {
            Some(toml::Value::String(path)) => pending(PathBuf::from(path), table),
            Some(_) => return Err(D::Error::custom("`model.from` must be the path of a model config")),
            None => ModelSource {
                path: None,
                config: ModelConfig::deserialize(table)
                    .map_err(|e| D::Error::custom(format!("`model`: {e}")))?,
                overrides: toml::Table::new(),
            },
        },
        _ => return Err(D::Error::custom("`model` must be a model config's path or a table")),
    })
}

/// AdamW with linear warm-up and cosine decay, and global-norm gradient clipping.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OptimizerConfig {
    /// Peak learning rate.
    pub learning_rate: f64,
    /// Steps of linear warm-up from zero.
    pub warmup_steps: u64,
    /// The learning rate at the last step, as a share of the peak.
    pub final_lr_ratio: f64,
    /// Decoupled weight decay.
    pub weight_decay: f64,
    /// Largest global gradient norm; larger gradients are scaled down to it.
    pub grad_clip_norm: f64,
}

/// How many loops the shared block runs per patch in a training step.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoopsConfig {
    /// `R ~ 1 + Poisson(λ)` per step, capped at the model's `max_loops`.
    pub poisson_lambda: f64,
    /// Loops per patch that gradients flow through (the last ones).
    pub grad_loops: usize,
}

/// Weights of the loss terms (DESIGN.md §4).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LossConfig {
    /// Pinball loss over quantiles and horizon, in scaled units.
    pub pinball: f64,
    /// Latent consistency: the rolled-out state against the (stopped-gradient) encoding
    /// of the history extended by the true future.
    pub consistency: f64,
    /// Contraction: a loop's change may be at most `contraction_ratio` times the last.
    pub contraction: f64,
    /// `ρ` of the contraction term.
    pub contraction_ratio: f64,
    /// Exit-gate binary cross-entropy.
    pub gate: f64,
    /// The gate's target is 1 once further loops lower the pinball loss by less than
    /// this share.
    pub gate_tolerance: f64,
    /// Twin effects: on SRE pairs (one history, two plans), the predicted median
    /// difference between the twins against the true difference (L1, scaled units).
    #[serde(default)]
    pub twin: f64,
    /// What the twin term compares: the differences themselves, or their bounded
    /// transform (docs/experiments/effects.md, "What the oracle shows").
    #[serde(default)]
    pub twin_scale: TwinScale,
    /// When above 0, the twin term is Huber's penalty with this threshold (quadratic
    /// below it, of slope 1 beyond, in the unit of `twin_scale`) instead of L1: L1 fits
    /// the median effect among similar-looking states, which is about none where most
    /// departures change little (latency far from saturation), while the quadratic part
    /// fits the mean, so a consistent effect is learned in size.
    #[serde(default)]
    pub twin_huber: f64,
    /// When above 0, each twin pair's term on a target is weighted by the mean size of
    /// its true effect over this (at most 1, in the unit of `twin_scale`): pairs whose
    /// plan changes nothing for a target then do not pull the coefficients the targets
    /// share towards zero (`docs/experiments/effects.md`, "The toy reproduces it"). 0:
    /// every pair alike.
    #[serde(default)]
    pub twin_material: f64,
    /// The least weight of a twin pair under `twin_material` (0 to 1): pairs whose plan
    /// changes a target little still teach, at this weight, that it does not (a deploy
    /// barely moves CPU), where 0 lets coefficients learned from large effects (replicas
    /// on CPU) carry over to them unchecked.
    #[serde(default)]
    pub twin_material_floor: f64,
    /// When above 0, each series' pinball and twin losses are also divided by its
    /// context's in-sample seasonal naive error (mean `|x_t − x_{t−season}|`, scaled
    /// units), at least this floor: the loss then weighs series as relative MASE does, so
    /// a series seasonal naive already forecasts well is not traded for a hard one.
    /// 0 (recipes before it existed) leaves it out.
    #[serde(default)]
    pub naive_floor: f64,
    /// The expected plan's term (with `model.expected_plan`): mean absolute error of the
    /// forecast log ratios of the operator's plan against the realised ones, on the rows
    /// that continue under the operator's own plan.
    #[serde(default = "one")]
    pub expected_plan: f64,
}

fn one() -> f64 {
    1.0
}

/// How the twin loss compares a predicted twin difference with the true one.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TwinScale {
    /// The difference in scaled units, each pair over its larger twin's size. A queue or
    /// latency that blows up is thousands of context units, so single pairs dominate.
    #[default]
    Linear,
    /// The difference of `asinh(x / u)` of the two twins, `u` the series' decoding unit
    /// (its typical seasonal naive error, at least `naive_floor`, or 10⁻³ when that is
    /// 0): linear for effects of a
    /// few units, logarithmic beyond, so a blow-up counts by its ratio, not its size.
    Asinh,
    /// The difference of `ln(max(x, 0) + ε)` of the two twins in the data's units, `ε` a
    /// twentieth of the series' typical magnitude (|location| + scale): the log ratio of
    /// the twins, scale-free, so a halved CPU counts alike at 6 % and at 60 %, and the
    /// unit in which `effect_units = "ratio"` writes its effects.
    Log,
}

/// The windows a run trains on: generated on the fly from seeds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DataConfig {
    /// Share of steps whose batch comes from the SRE world (the rest: the prior).
    pub sre_share: f64,
    /// Context lengths, one drawn per step.
    pub contexts: Vec<usize>,
    /// Horizons, one drawn per step.
    pub horizons: Vec<usize>,
    /// Most channels of a prior batch (1 to this many, drawn per step).
    pub prior_max_channels: usize,
    /// Chance that an SRE batch keeps a random subset of its targets rather than all.
    pub target_subset_share: f64,
    /// Chance that an SRE batch drops its action and covariate channels.
    pub drop_actions_share: f64,
    /// Zero the action channels of every window: the action-blind ablation.
    #[serde(default)]
    pub action_blind: bool,
    /// Plans each SRE history continues under in training: the operator's and
    /// `plans_per_history − 1` departing ones, all scored by the twin loss against the
    /// operator's (2, twin pairs, when absent). `batch_size` must be a multiple of it.
    #[serde(default = "twin_pairs")]
    pub plans_per_history: usize,
    /// Share of steps whose batch comes from the real series of `real` (0 when absent);
    /// the prior gets `1 − sre_share − real_share`.
    #[serde(default)]
    pub real_share: f64,
    /// Files of real series mixed into training ([`crate::RealCorpus`]).
    #[serde(default)]
    pub real: Vec<RealSource>,
}

fn twin_pairs() -> usize {
    2
}

/// A file of real series for training (e.g. Nixtla's long `unique_id`, `ds`, `y`): every
/// target channel of every series, each trained on as a one-target window.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RealSource {
    /// The file (Parquet, CSV, Arrow IPC), relative to the recipe.
    pub path: PathBuf,
    /// SQL predicate over its columns selecting one frequency's series, e.g.
    /// `frequency = 'monthly'` (a file is read on one grid).
    #[serde(default, rename = "where")]
    pub filter: Option<String>,
    /// Table layout: `long` (the default) or `wide` (one column per channel, which needs
    /// `targets`).
    #[serde(default)]
    pub format: Layout,
    /// The channels to train on; empty: every target of the file (its `role` column's,
    /// or every channel of a long file without one).
    #[serde(default)]
    pub targets: Vec<String>,
    /// Steps at the end of every series left out of training (`loopcast tune` holds them
    /// out to check the tuned model on); 0 keeps every step.
    #[serde(default)]
    pub holdout: usize,
}

impl RealSource {
    /// Every series of the long file `path` (every target channel), nothing held out.
    pub fn file(path: impl Into<PathBuf>, filter: Option<String>) -> Self {
        Self { path: path.into(), filter, format: Layout::Long, targets: Vec::new(), holdout: 0 }
    }
}

/// The held-out windows scored during training.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ValidationConfig {
    /// Optimiser steps between validations (and at the end).
    pub every: u64,
    /// Held-out SRE episodes (each a pair of twin futures) and as many prior series.
    pub windows: usize,
    /// Context of every validation window.
    pub context: usize,
    /// Horizon of every validation window.
    pub horizon: usize,
    /// After the last step, fit the model's `interval_scale` so that its 80 % intervals
    /// cover 80 % of the validation windows' values (the held-out evaluation then
    /// measures the calibrated model). Off when absent.
    #[serde(default)]
    pub calibrate: bool,
    /// Keep the weights of the validation with the lowest relative weighted quantile
    /// loss (kept beside the checkpoints, `checkpoints/BEST`) and ship those, not the last
    /// step's. Off when absent.
    #[serde(default)]
    pub keep_best: bool,
    /// What "best" means for `keep_best`: the lowest relative weighted quantile loss (the
    /// default), or the lowest sum of it and the median twin effect error, so a run that
    /// learns its effects late does not ship weights from before it did.
    #[serde(default)]
    pub keep_best_by: KeepBy,
}

/// The score by which `validation.keep_best` ranks validations (lower is better).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum KeepBy {
    /// Relative weighted quantile loss.
    #[default]
    Wql,
    /// Relative weighted quantile loss plus the median twin effect error (1, no better
    /// than predicting no effect, when no effect was material).
    WqlAndEffect,
}

/// Action effects solved after training, on the kept and calibrated weights.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EffectsConfig {
    /// Add the relative action path (`docs/MODEL.md`, item 11) and fit it by least squares
    /// on this many SRE twin pairs drawn like the recipe's (0: no path).
    #[serde(default)]
    pub relative_pairs: usize,
}

impl TrainConfig {
    /// Reads and checks a config file; a model config given as a path is read relative to
    /// the file's directory.
    pub fn from_file(path: impl AsRef<Path>) -> Result<Self, TrainError> {
        let path = path.as_ref();
        let fail = |message: String| TrainError::Config { path: path.to_path_buf(), message };
        let text = std::fs::read_to_string(path).map_err(|e| fail(e.to_string()))?;
        let mut config: Self = toml::from_str(&text).map_err(|e| fail(toml_error_line(&text, &e)))?;
        if let Some(model) = &config.model.path {
            let model = path.parent().unwrap_or(Path::new(".")).join(model);
            let overrides = std::mem::take(&mut config.model.overrides);
            let config_of_model = ModelConfig::from_toml_file_with(&model, overrides)
                .map_err(|e| fail(format!("model config `{}`: {e}", model.display())))?;
            config.model =
                ModelSource { path: Some(model), config: config_of_model, overrides: toml::Table::new() };
        }
        let base = path.parent().unwrap_or(Path::new("."));
        for source in &mut config.data.real {
            source.path = base.join(&source.path);
        }
        config.validate().map_err(fail)?;
        Ok(config)
    }

    /// Checks ranges and that every window fits the model.
    pub fn validate(&self) -> Result<(), String> {
        let model = &self.model.config;
        model.validate().map_err(|e| format!("`model`: {e}"))?;
        let positive = [
            ("steps", self.steps),
            ("batch_size", self.batch_size as u64),
            ("checkpoint_every", self.checkpoint_every),
            ("log_every", self.log_every),
            ("validation.every", self.validation.every),
            ("validation.windows", self.validation.windows as u64),
            ("loops.grad_loops", self.loops.grad_loops as u64),
            ("data.prior_max_channels", self.data.prior_max_channels as u64),
        ];
        if let Some((name, _)) = positive.iter().find(|(_, v)| *v == 0) {
            return Err(format!("`{name}` must be at least 1"));
        }
        if let Some(wide) = self.data.real.iter().find(|s| s.format == Layout::Wide && s.targets.is_empty()) {
            return Err(format!("`data.real` `{}`: a wide file needs `targets`", wide.path.display()));
        }
        if self.data.real_share > 0.0 && self.data.real.is_empty() {
            return Err("`data.real_share` is above 0 but `data.real` names no file".into());
        }
        let plans = self.data.plans_per_history;
        if plans < 2 {
            return Err(format!("`data.plans_per_history` must be at least 2, got {plans}"));
        }
        if !self.batch_size.is_multiple_of(plans) {
            return Err(format!(
                "`batch_size` must be a multiple of `data.plans_per_history` ({plans}: SRE windows \
                 come in groups of one history under that many plans), got {}",
                self.batch_size
            ));
        }
        let o = &self.optimizer;
        for (name, value) in
            [("optimizer.learning_rate", o.learning_rate), ("optimizer.grad_clip_norm", o.grad_clip_norm)]
        {
            if !(value.is_finite() && value > 0.0) {
                return Err(format!("`{name}` must be positive, got {value}"));
            }
        }
        for (name, value) in [
            ("optimizer.final_lr_ratio", o.final_lr_ratio),
            ("data.sre_share", self.data.sre_share),
            ("data.real_share", self.data.real_share),
            ("data.sre_share + data.real_share", self.data.sre_share + self.data.real_share),
            ("data.target_subset_share", self.data.target_subset_share),
            ("data.drop_actions_share", self.data.drop_actions_share),
            ("loss.gate_tolerance", self.loss.gate_tolerance),
            ("loss.contraction_ratio", self.loss.contraction_ratio),
            ("loss.twin_material_floor", self.loss.twin_material_floor),
        ] {
            if !(0.0..=1.0).contains(&value) {
                return Err(format!("`{name}` must lie in [0, 1], got {value}"));
            }
        }
        let l = &self.loss;
        for (name, value) in [
            ("loss.pinball", l.pinball),
            ("loss.consistency", l.consistency),
            ("loss.contraction", l.contraction),
            ("loss.gate", l.gate),
            ("loss.twin", l.twin),
            ("loss.twin_huber", l.twin_huber),
            ("loss.twin_material", l.twin_material),
            ("loss.naive_floor", l.naive_floor),
            ("loss.expected_plan", l.expected_plan),
            ("optimizer.weight_decay", o.weight_decay),
            ("loops.poisson_lambda", self.loops.poisson_lambda),
        ] {
            if !(value.is_finite() && value >= 0.0) {
                return Err(format!("`{name}` must be 0 or more, got {value}"));
            }
        }
        let max_context = model.max_context_patches * model.patch_len;
        let max_horizon = model.max_horizon_patches * model.patch_len;
        let contexts = self.data.contexts.iter().chain([&self.validation.context]);
        if let Some(c) = contexts.clone().find(|c| **c < 2 * model.patch_len || **c > max_context) {
            return Err(format!(
                "context {c} is outside [{}, {max_context}] for this model",
                2 * model.patch_len
            ));
        }
        let horizons = self.data.horizons.iter().chain([&self.validation.horizon]);
        if let Some(h) = horizons.clone().find(|h| **h == 0 || **h > max_horizon) {
            return Err(format!("horizon {h} is outside [1, {max_horizon}] for this model"));
        }
        if self.data.contexts.is_empty() || self.data.horizons.is_empty() {
            return Err("`data.contexts` and `data.horizons` need at least one value each".into());
        }
        if self.effects.relative_pairs > 0 {
            if model.relative_effects {
                return Err("`effects.relative_pairs` fits the relative path onto a model without one, but \
                            `model.relative_effects` is on"
                    .into());
            }
            let d = &self.data;
            if d.sre_share == 0.0 || d.drop_actions_share == 1.0 || d.target_subset_share == 1.0 {
                return Err("`effects.relative_pairs` needs SRE twins with every target and action: \
                            `data.sre_share` above 0, `data.drop_actions_share` and \
                            `data.target_subset_share` below 1"
                    .into());
            }
        }
        Ok(())
    }

    /// Learning rate at optimiser step `step` (0-based): linear warm-up to the peak, then
    /// cosine decay to `final_lr_ratio` of it at the last step.
    pub fn learning_rate(&self, step: u64) -> f64 {
        let o = &self.optimizer;
        if step < o.warmup_steps {
            return o.learning_rate * (step + 1) as f64 / o.warmup_steps as f64;
        }
        let span = self.steps.saturating_sub(o.warmup_steps).max(1) as f64;
        let progress = ((step - o.warmup_steps) as f64 / span).min(1.0);
        let cosine = 0.5 * (1.0 + (std::f64::consts::PI * progress).cos());
        o.learning_rate * (o.final_lr_ratio + (1.0 - o.final_lr_ratio) * cosine)
    }
}
