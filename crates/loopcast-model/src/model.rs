//! The inference face of the model: forecasts and what-ifs on host arrays, loop control
//! per call, checkpoints.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use burn::module::Module;
use burn::store::{BurnpackStore, ModuleSnapshot};
use burn::tensor::{Bytes, Device, Int, Tensor, TensorData};
use serde::{Deserialize, Serialize};

use crate::network::{Encoded, Inputs, LoopControl, Network, Rollout};
use crate::series_calibration::{Backtests, scale_intervals};
use crate::{MissingActions, ModelBatch, ModelConfig, ModelError};

/// Per-call options of a forecast or what-if.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ForecastOptions {
    /// Fewest loops per future patch (default: the model's).
    pub min_loops: Option<usize>,
    /// Most loops per future patch (default: the model's).
    pub max_loops: Option<usize>,
    /// Exit threshold `τ` of the gate (default: the model's); `0` always stops at the
    /// fewest loops, above `1` always runs the most.
    pub exit_threshold: Option<f64>,
    /// Decode only these future patches (deferred decoding); all when absent.
    pub patches: Option<Vec<usize>>,
    /// What becomes of unknown future action cells.
    pub missing_actions: MissingActions,
    /// Fit each series' interval widths on up to this many backtests over the end of its
    /// own history, one horizon apart (0, the default: the model's global scale alone),
    /// for every plan alike. The backtests cost one more forward pass of that many windows
    /// per window (docs/MODEL.md, "Intervals per series").
    #[serde(default)]
    pub series_calibration: usize,
}

/// Quantile trajectories for every target channel of every window.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Forecast {
    /// Windows.
    pub batch: usize,
    /// Target channels.
    pub targets: usize,
    /// Steps per trajectory (the decoded patches × patch length, cut to the horizon).
    pub steps: usize,
    /// Quantile levels.
    pub levels: Vec<f64>,
    /// Values in the data's units, `[B, T, steps, Q]` row-major, monotone in the level.
    pub values: Vec<f32>,
    /// Loops used per window and future patch, `[B][K]`.
    pub loops: Vec<Vec<u32>>,
    /// The policy applied to unknown future actions.
    pub missing_actions: MissingActions,
}

impl Forecast {
    /// The value of quantile `level` (an index into `levels`) for window `b`, target `t`,
    /// step `h`.
    pub fn value(&self, b: usize, t: usize, h: usize, level: usize) -> f32 {
        let q = self.levels.len();
        self.values[((b * self.targets + t) * self.steps + h) * q + level]
    }
}

impl Forecast {
    /// Consecutive windows split off into forecasts of `sizes` windows each (the answers
    /// to the requests a batcher ran together). `sizes` must add up to `batch`.
    pub fn split(&self, sizes: &[usize]) -> Vec<Forecast> {
        let per_window = self.targets * self.steps * self.levels.len();
        let mut start = 0;
        sizes
            .iter()
            .map(|&size| {
                let part = Forecast {
                    batch: size,
                    values: self.values[start * per_window..(start + size) * per_window].to_vec(),
                    loops: self.loops[start..start + size].to_vec(),
                    ..self.clone_header()
                };
                start += size;
                part
            })
            .collect()
    }

    fn clone_header(&self) -> Forecast {
        Forecast {
            batch: 0,
            targets: self.targets,
            steps: self.steps,
            levels: self.levels.clone(),
            values: Vec::new(),
            loops: Vec::new(),
            missing_actions: self.missing_actions,
        }
    }
}

/// The looped world model with its configuration, on one device.
#[derive(Debug)]
pub struct LoopedWorldModel {
    network: Network,
    config: ModelConfig,
    device: Device,
    history_encodings: AtomicUsize,
}

const CONFIG_FILE: &str = "config.json";
const WEIGHTS_FILE: &str = "weights.bpk";

impl LoopedWorldModel {
    /// A model with fresh weights.
    pub fn new(config: ModelConfig, device: &Device) -> Result<Self, ModelError> {
        config.validate()?;
        let network = Network::new(&config, device);
        Ok(Self::from_network(network, config, device))
    }

    /// Wraps trained weights.
    pub fn from_network(network: Network, config: ModelConfig, device: &Device) -> Self {
        let network = network.with_interval_scale(config.interval_scale);
        Self { network, config, device: device.clone(), history_encodings: AtomicUsize::new(0) }
    }

    /// The same weights with the planner's effect intervals widened by `widening`
    /// (`ModelConfig::effect_widening`, a setting fitted after training, not a weight).
    pub fn with_effect_widening(self, widening: f64) -> Result<Self, ModelError> {
        let config = ModelConfig { effect_widening: widening, ..self.config.clone() };
        config.validate()?;
        Ok(Self { config, ..self })
    }

    /// The configuration.
    pub fn config(&self) -> &ModelConfig {
        &self.config
    }

    /// The weights.
    pub fn network(&self) -> &Network {
        &self.network
    }

    /// The device the model runs on.
    pub fn device(&self) -> &Device {
        &self.device
    }

    /// Number of learned parameters.
    pub fn parameter_count(&self) -> usize {
        self.network.num_params()
    }

    /// How many times a history has been encoded since the model was built (what-ifs
    /// encode each history once, whatever the number of plans).
    pub fn history_encodings(&self) -> usize {
        self.history_encodings.load(Ordering::Relaxed)
    }

    fn control(&self, options: &ForecastOptions) -> Result<LoopControl, ModelError> {
        let control = LoopControl {
            min_loops: options.min_loops.unwrap_or(self.config.min_loops),
            max_loops: options.max_loops.unwrap_or(self.config.max_loops),
            exit_threshold: options.exit_threshold.unwrap_or(self.config.exit_threshold),
        };
        if control.min_loops == 0 || control.max_loops < control.min_loops {
            return Err(ModelError::Input(format!(
                "`min_loops` ({}) must be at least 1 and at most `max_loops` ({})",
                control.min_loops, control.max_loops
            )));
        }
        if control.exit_threshold.is_nan() || control.exit_threshold < 0.0 {
            return Err(ModelError::Input(format!(
                "`exit_threshold` must be 0 or more, got {}",
                control.exit_threshold
            )));
        }
        Ok(control)
    }

    fn check_horizon(&self, horizon: usize) -> Result<usize, ModelError> {
        let patches = horizon.div_ceil(self.config.patch_len);
        if patches > self.config.max_horizon_patches {
            return Err(ModelError::Input(format!(
                "`horizon` {horizon} needs {patches} patches of {}, the model rolls out at most {}",
                self.config.patch_len, self.config.max_horizon_patches
            )));
        }
        Ok(patches)
    }

    fn encode(&self, inputs: &Inputs) -> Encoded {
        self.history_encodings.fetch_add(1, Ordering::Relaxed);
        self.network.encode(inputs)
    }

    /// Forecasts every target channel of every window of `batch`.
    pub fn forecast(&self, batch: &ModelBatch, options: &ForecastOptions) -> Result<Forecast, ModelError> {
        let mut plans = self.whatif(batch, &[batch.future_arrays_owned()], options)?;
        Ok(plans.pop().expect("one plan in, one forecast out"))
    }

    /// Each series' factor on its quantiles' distances from the median, `[B, T]`, fitted
    /// on `options.series_calibration` backtests over its own history; `None` when none
    /// is asked for or the histories hold none.
    pub(crate) fn series_factors(
        &self,
        batch: &ModelBatch,
        options: &ForecastOptions,
    ) -> Result<Option<Vec<f32>>, ModelError> {
        if options.series_calibration == 0 {
            return Ok(None);
        }
        let Some(backtests) = Backtests::new(batch, options.series_calibration, 2 * self.config.patch_len)?
        else {
            return Ok(None);
        };
        let plain = ForecastOptions { patches: None, series_calibration: 0, ..options.clone() };
        let forecast = self.forecast(&backtests.batch, &plain)?;
        Ok(Some(backtests.factors(&forecast, self.config.median_level())))
    }

    /// One history per window, several plans for its future: encodes each history once,
    /// then rolls every plan out from the shared encoding. `plans` are `(future values,
    /// known mask)` pairs shaped like the batch's own future, `[B, C, H]`.
    pub fn whatif(
        &self,
        batch: &ModelBatch,
        plans: &[(Vec<f32>, Vec<bool>)],
        options: &ForecastOptions,
    ) -> Result<Vec<Forecast>, ModelError> {
        if batch.horizon() > self.config.native_horizon() {
            return self.whatif_long(batch, plans, options);
        }
        let control = self.control(options)?;
        let patches = self.check_horizon(batch.horizon())?;
        if plans.is_empty() {
            return Err(ModelError::Input("no plan to roll out".into()));
        }
        let decode: Vec<usize> = match &options.patches {
            Some(list) => {
                if let Some(bad) = list.iter().find(|k| **k >= patches) {
                    return Err(ModelError::Input(format!(
                        "`patches` asks for patch {bad}, the horizon has {patches}"
                    )));
                }
                list.clone()
            }
            None => (0..patches).collect(),
        };
        let factors = self.series_factors(batch, options)?;
        let inputs = Inputs::new(batch, &self.config, &self.device);
        let mut planned = Vec::with_capacity(plans.len());
        for (future, known) in plans {
            let mut plan = batch.with_future(future.clone(), known.clone())?;
            plan.apply_missing_actions(options.missing_actions);
            planned.push(plan);
        }
        let encoded = self.encode(&inputs);
        let expected = self.network.expected_plan(&inputs, &encoded);
        let inputs = inputs.with_expected_plan(expected);
        let k = plans.len();
        let memory = self.network.memory_keys(encoded.memory).repeat(k);
        let scenarios = inputs.scenarios(&planned);
        let rollout = self.network.rollout(&scenarios, encoded.state.repeat_dim(0, k), memory, control);
        let scaled = self.decode_patches(&scenarios, &rollout, &decode);
        let [_, t, steps, q] = scaled.dims();
        let targets_scale = scenarios.scale.clone().slice([0..k * batch.batch(), 0..t, 0..1]).reshape([
            k * batch.batch(),
            t,
            1,
            1,
        ]);
        let targets_location = scenarios
            .location
            .clone()
            .slice([0..k * batch.batch(), 0..t, 0..1])
            .reshape([k * batch.batch(), t, 1, 1]);
        let values = scaled * targets_scale + targets_location;
        let keep = if options.patches.is_none() { batch.horizon() } else { steps };
        let values = values.slice([0..k * batch.batch(), 0..t, 0..keep, 0..q]);
        let values =
            values.into_data().try_to_vec::<f32>().map_err(|e| ModelError::Input(format!("{e:?}")))?;
        let b = batch.batch();
        let per_plan = b * t * keep * q;
        Ok((0..k)
            .map(|plan| Forecast {
                batch: b,
                targets: t,
                steps: keep,
                levels: self.config.quantiles.clone(),
                values: values[plan * per_plan..(plan + 1) * per_plan].to_vec(),
                loops: rollout.loops[plan * b..(plan + 1) * b].to_vec(),
                missing_actions: options.missing_actions,
            })
            .map(|mut forecast| {
                if let Some(factors) = &factors {
                    scale_intervals(&mut forecast, factors, self.config.median_level());
                }
                forecast
            })
            .collect())
    }

    /// Writes `config.json` and `weights.bpk` (burnpack) into `dir`, each through a
    /// temporary file renamed into place.
    pub fn save(&self, dir: impl AsRef<Path>) -> Result<(), ModelError> {
        let dir = dir.as_ref();
        let fail = |path: PathBuf, message: String| ModelError::Checkpoint { path, message };
        std::fs::create_dir_all(dir).map_err(|e| fail(dir.to_path_buf(), e.to_string()))?;
        let weights = dir.join(WEIGHTS_FILE);
        let temporary = dir.join(format!(".{WEIGHTS_FILE}.{}.tmp", std::process::id()));
        let mut store = BurnpackStore::from_file(&temporary).overwrite(true);
        self.network.save_into(&mut store).map_err(|e| fail(weights.clone(), format!("{e:?}")))?;
        std::fs::rename(&temporary, &weights).map_err(|e| fail(weights.clone(), e.to_string()))?;
        let config = dir.join(CONFIG_FILE);
        let text = serde_json::to_string_pretty(&self.config).expect("a config serialises");
        let temporary = dir.join(format!(".{CONFIG_FILE}.{}.tmp", std::process::id()));
        std::fs::write(&temporary, text).map_err(|e| fail(config.clone(), e.to_string()))?;
        std::fs::rename(&temporary, &config).map_err(|e| fail(config, e.to_string()))
    }

    /// Loads a model saved by [`Self::save`] onto `device`.
    pub fn load(dir: impl AsRef<Path>, device: &Device) -> Result<Self, ModelError> {
        let dir = dir.as_ref();
        let config_path = dir.join(CONFIG_FILE);
        let text = std::fs::read_to_string(&config_path)
            .map_err(|e| ModelError::Checkpoint { path: config_path.clone(), message: e.to_string() })?;
        let weights = dir.join(WEIGHTS_FILE);
        if !weights.exists() {
            return Err(ModelError::Checkpoint { path: weights, message: "not found".into() });
        }
        Self::from_parts(&text, &config_path, BurnpackStore::from_file(&weights), &weights, device)
    }

    /// The rollout's patches `decode` decoded, `[B, T, |decode|·P, Q]` in scaled units. An
    /// effect recurrence runs over the steps in order, so with one every patch up to the
    /// last one asked for is decoded, and the asked ones kept.
    fn decode_patches(&self, inputs: &Inputs, rollout: &Rollout, decode: &[usize]) -> Tensor<4> {
        let in_order = decode.iter().enumerate().all(|(i, k)| i == *k);
        if !self.config.effect_recurrence || in_order {
            let states = decode.iter().map(|k| rollout.states[*k].clone()).collect();
            return self.network.decode(inputs, &rollout.actions, states, decode);
        }
        let all: Vec<usize> = (0..=decode.iter().copied().max().unwrap_or(0)).collect();
        let states = all.iter().map(|k| rollout.states[*k].clone()).collect();
        let full = self.network.decode(inputs, &rollout.actions, states, &all);
        let [b, t, _, q] = full.dims();
        let ids = decode.iter().map(|k| *k as i64).collect::<Vec<_>>();
        let ids = Tensor::<1, Int>::from_data(TensorData::new(ids, [decode.len()]), &self.device);
        full.reshape([b, t, all.len(), self.config.patch_len * q]).select(2, ids).reshape([
            b,
            t,
            decode.len() * self.config.patch_len,
            q,
        ])
    }

    /// Loads the weights saved in `dir` into a network of `config`, for fine-tuning: the
    /// saved config must be `config` but for the interval scale (fitted after training),
    /// the relative action path (`ModelConfig::relative_effects`), the expected plan's
    /// head (`ModelConfig::expected_plan`), the departure memory
    /// (`ModelConfig::departure_memory`) and the effect recurrence
    /// (`ModelConfig::effect_recurrence`), which `config` may add and which then keep
    /// their fresh weights. `config` may also leave out the relative path the saved model
    /// has: it was solved on the saved network's states (`loopcast_train::
    /// fit_relative_path`), which training moves, so a fine-tune drops it and solves it
    /// again. `Ok(None)` when the configs differ in anything else.
    pub fn load_into(
        dir: impl AsRef<Path>,
        config: &ModelConfig,
        device: &Device,
    ) -> Result<Option<Self>, ModelError> {
        let saved = Self::load(dir.as_ref(), device)?;
        let adds_path = config.relative_effects && !saved.config.relative_effects;
        let adds_plan = config.expected_plan && !saved.config.expected_plan;
        let adds_memory = config.departure_memory && !saved.config.departure_memory;
        let adds_recurrence = config.effect_recurrence && !saved.config.effect_recurrence;
        let comparable = ModelConfig {
            interval_scale: config.interval_scale,
            effect_widening: config.effect_widening,
            relative_effects: config.relative_effects,
            expected_plan: config.expected_plan,
            departure_memory: config.departure_memory,
            effect_recurrence: config.effect_recurrence,
            ..saved.config.clone()
        };
        let drops_path = saved.config.relative_effects && !config.relative_effects;
        let drops = (saved.config.expected_plan && !config.expected_plan)
            || (saved.config.departure_memory && !config.departure_memory)
            || (saved.config.effect_recurrence && !config.effect_recurrence);
        if &comparable != config || drops {
            return Ok(None);
        }
        let network = match (adds_path, drops_path) {
            (true, _) => saved.network.with_relative_path(device),
            (_, true) => saved.network.without_relative_path(),
            _ => saved.network,
        };
        let network = if adds_plan { network.with_plan_head(device) } else { network };
        let network = if adds_memory { network.with_departure_memory(device) } else { network };
        let network = if adds_recurrence { network.with_effect_recurrence(device) } else { network };
        Ok(Some(Self::from_network(network, config.clone(), device)))
    }

    /// The model shipped with loopcast (`models/loopcast-small`, see its model card),
    /// embedded in the binary, so every command has a working default with no files.
    pub fn shipped(device: &Device) -> Result<Self, ModelError> {
        let store = BurnpackStore::from_bytes(Some(Bytes::from_bytes_vec(SHIPPED_WEIGHTS.to_vec())));
        let root = Path::new(SHIPPED_DIR);
        Self::from_parts(SHIPPED_CONFIG, &root.join(CONFIG_FILE), store, &root.join(WEIGHTS_FILE), device)
    }

    fn from_parts(
        config_text: &str,
        config_path: &Path,
        mut store: BurnpackStore,
        weights_path: &Path,
        device: &Device,
    ) -> Result<Self, ModelError> {
        let fail =
            |path: &Path, message: String| ModelError::Checkpoint { path: path.to_path_buf(), message };
        let config: ModelConfig =
            serde_json::from_str(config_text).map_err(|e| fail(config_path, e.to_string()))?;
        config.validate().map_err(|e| fail(config_path, e.to_string()))?;
        let mut network = Network::new(&config, device);
        let result = network.load_from(&mut store).map_err(|e| {
            fail(weights_path, format!("does not match the config: {}", shorten(format!("{e:?}"))))
        })?;
        // Weights the config has no place for are as wrong as missing ones: they belong to
        // another architecture (say, the retention of a model loaded as one without).
        if !result.errors.is_empty() || !result.missing.is_empty() || !result.unused.is_empty() {
            let missing: Vec<&String> = result.missing.iter().map(|(path, _)| path).collect();
            return Err(fail(
                weights_path,
                shorten(format!(
                    "does not match the config: missing {missing:?}, unused {:?}, errors {:?}",
                    result.unused, result.errors
                )),
            ));
        }
        Ok(Self::from_network(network, config, device))
    }
}

/// The first 240 characters of `text` (a store's error lists every tensor it missed).
fn shorten(text: String) -> String {
    match text.char_indices().nth(240) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text,
    }
}

/// Where the shipped model's files sit in the repository (for messages).
const SHIPPED_DIR: &str = "models/loopcast-small";
/// Name of the shipped model.
pub const SHIPPED_MODEL: &str = "loopcast-small";
const SHIPPED_CONFIG: &str = include_str!("../../../models/loopcast-small/config.json");
const SHIPPED_WEIGHTS: &[u8] = include_bytes!("../../../models/loopcast-small/weights.bpk");

impl ModelBatch {
    /// The batch's own future arrays, owned (the plan of a plain forecast).
    pub(crate) fn future_arrays_owned(&self) -> (Vec<f32>, Vec<bool>) {
        let (values, known) = self.future_arrays();
        (values.to_vec(), known.to_vec())
    }
}
