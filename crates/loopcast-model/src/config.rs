//! Model configuration: sizes, patching, quantile levels and the loop's limits.

use serde::{Deserialize, Serialize};

use crate::ModelError;
use crate::long_horizon::LONG_HORIZON_FACTOR;

/// The looped world model's hyper-parameters. Serialised next to every checkpoint.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelConfig {
    /// Token width `d`.
    pub d_model: usize,
    /// Attention heads (must divide `d_model`).
    pub heads: usize,
    /// Hidden width of every MLP, as a multiple of `d_model`.
    pub mlp_ratio: usize,
    /// Steps per patch `P`.
    pub patch_len: usize,
    /// Factorised (time, then channel) attention layers in the history encoder.
    pub encoder_layers: usize,
    /// Most context patches the position table covers (longer contexts keep the last ones).
    pub max_context_patches: usize,
    /// Most horizon patches a rollout may take.
    pub max_horizon_patches: usize,
    /// Quantile levels of the head, strictly increasing in (0, 1).
    pub quantiles: Vec<f64>,
    /// Fewest loops of the shared block per future patch.
    pub min_loops: usize,
    /// Most loops of the shared block per future patch.
    pub max_loops: usize,
    /// Default exit threshold `τ` of the gate (a loop stops once the gate reaches it).
    pub exit_threshold: f64,
    /// Smallest per-channel scale of target channels, relative to `1 + |location|`.
    pub scale_floor: f64,
    /// Smallest scale of action and covariate channels, relative to `1 + |location|`
    /// (`scale_floor` when absent, as in checkpoints before it existed). An action is
    /// often flat over the whole context (replicas held at 4, no deploy); with a tiny
    /// floor its planned change would reach the network hundreds of units large.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input_scale_floor: Option<f64>,
    /// One block looped (`true`, the design); `false` gives every loop its own block
    /// (`max_loops` blocks, the same compute): the "unshared stack" ablation.
    #[serde(default = "yes", skip_serializing_if = "is_true")]
    pub shared_core: bool,
    /// The spectral retention update `x ← Ā ⊙ x + B̄ ⊙ u` (`true`, the design); `false`
    /// adds the block's output to the state unconstrained (`x ← x + u`): the "no retention
    /// constraint" ablation.
    #[serde(default = "yes", skip_serializing_if = "is_true")]
    pub retention: bool,
    /// Roll out in latent space and decode once at the end (`true`, the design); `false`
    /// decodes every patch's median, appends it to the history and re-encodes before the
    /// next patch: the "no deferred decoding" ablation.
    #[serde(default = "yes", skip_serializing_if = "is_true")]
    pub deferred_decoding: bool,
    /// Decode around a baseline: each target's quantiles are offsets from its seasonal
    /// naive forecast (the last season repeated, [`crate::ModelBatch::seasons`]), with the
    /// head starting near zero, so a fresh model forecasts about seasonal naive and
    /// training learns the correction. `false` (checkpoints before it existed) decodes levels.
    #[serde(default)]
    pub anchor: bool,
    /// A direct path from planned actions to the forecast: per future patch, the change
    /// of every action and covariate channel from its last observed value times a
    /// coefficient read from the target's state and the channel's action token (the
    /// coefficient starts near zero). `false` (checkpoints before it existed): plans reach
    /// the forecast only through the looped core.
    #[serde(default)]
    pub action_effects: bool,
    /// What the direct action path's coefficient multiplies, and how its effect applies
    /// ([`EffectUnits`]). `scaled` (the default, and checkpoints before it existed): the
    /// change in scaled units, added in the decoding unit.
    #[serde(default, skip_serializing_if = "EffectUnits::is_scaled")]
    pub effect_units: EffectUnits,
    /// A head that forecasts the operator's own plan from the history alone (every action
    /// channel's log ratio to its last value, per future step), and ratio effects measured
    /// from that plan instead of from the last value: the forecast without a plan is then
    /// the one under the operator's usual conduct (an autoscaler that follows the daily
    /// load), and a given plan moves it only by how far it departs from that conduct. With
    /// effects measured from the last value, an operator's routine scale-up reads as a
    /// causal cut in CPU that the load it answers never shows. Needs ratio effects.
    /// `false` (checkpoints before it existed): effects from the last value.
    #[serde(default, skip_serializing_if = "is_false")]
    pub expected_plan: bool,
    /// A memory of the plan's departures beside the ratio effects' per-step term: per
    /// action channel, how far its plan has risen above and fallen below the expected plan
    /// since the forecast time (the running maxima of its positive and negative log
    /// departures) and a fading sum of its departures (half-life 4 steps), each times a
    /// coefficient read from the target's state and the channel's token. A deploy is a
    /// single step of its plan; without memory its effect (a reset, a restart, an error
    /// bump that fades) can last no longer than that step. Needs ratio effects. `false`
    /// (checkpoints before it existed): no such memory.
    #[serde(default, skip_serializing_if = "is_false")]
    pub departure_memory: bool,
    /// An effect recurrence: per target, a gated recurrent cell runs over the future steps
    /// reading the target's rolled-out state and every action channel's log departure
    /// from the expected plan (weighted by the channel's token), once under the plan and
    /// once under no departure; the difference of its outputs is added to the ratio
    /// effects' log multiplier (bounded softly to ±10 rather than clamped to ±3). What a
    /// departure does can then accumulate over the steps after it (a backlog that grows
    /// while demand exceeds the capacity a plan leaves) and reach orders of magnitude.
    /// Needs ratio effects. `false` (checkpoints before it existed): none. Forecasts
    /// decode every patch up to the last one asked for; the non-deferred ablation's
    /// patch-by-patch decoding restarts the cell at every patch (an experiment's limit).
    #[serde(default, skip_serializing_if = "is_false")]
    pub effect_recurrence: bool,
    /// A second direct path, relative to each target's level: per future step, four
    /// features of every action and covariate channel (the log ratio of its planned value
    /// to its last observed one, now and three steps earlier; whether it has changed since
    /// the forecast time; an exponentially decayed change), each times a coefficient read
    /// from the target's state and the channel's action token (starting near zero), the
    /// sum times the target's level in scaled units. Doubling the replicas then halves a
    /// CPU at 60 % and one at 6 % with one coefficient, where the additive path needs one
    /// per level. `false` (checkpoints before it existed): no such path.
    #[serde(default, skip_serializing_if = "is_false")]
    pub relative_effects: bool,
    /// With the anchor, a second head reads the anchor itself in the decoding unit: per
    /// future step, the seasonal naive value, its gap to the last observed value and to
    /// the seasonal profile (the mean of the context's seasons), and the level's departure
    /// from the profile, in units of the series' typical naive error (squashed to ±10),
    /// so the correction can smooth the anchor, blend it with the last value or with the
    /// mean season, whatever the series' scale (the state alone sees the context in units
    /// of its spread, not of its naive error). Starts near zero. `false` (checkpoints
    /// before it existed): no such head.
    #[serde(default)]
    pub anchor_features: bool,
    /// With the anchor features, the target's state also weighs them, per series and
    /// patch, into the median: four coefficients read from the state (starting near zero)
    /// times the features, so one series can follow its last value, another the mean
    /// season and a third seasonal naive, where the linear feature head can only learn one
    /// blend for all. `false` (checkpoints before it existed): no such weights.
    #[serde(default)]
    pub state_blend: bool,
    /// With the anchor, the history encoder also reads every target's context in the
    /// decoding unit: its gap to the last observed value over the typical naive error,
    /// squashed to ±10, as a third part of each patch token's input. The state then sees
    /// the series in the unit in which its head writes offsets, not only in units of the
    /// context's spread. `false` (checkpoints before it existed): no such input.
    #[serde(default)]
    pub naive_unit_context: bool,
    /// Every quantile's distance from the median is multiplied by this: 1 as trained,
    /// fitted after training so that 80 % intervals cover 80 % of held-out validation
    /// values (`validation.calibrate` in the training recipe; split conformal on one scale).
    #[serde(default = "one", skip_serializing_if = "is_one")]
    pub interval_scale: f64,
    /// The model's effect intervals for planning: a schedule's predicted departure from
    /// the operator's own plan is trusted only to within this share of its size, so the
    /// planner judges each step's quantiles moved by this times the departure of the
    /// median, towards breaking the bound (`planner::Bound::judge_departure`). Where it is
    /// so wide that no schedule is certain to keep the bound, the planner refuses
    /// (`feasible: false`) rather than recommend one. 0 (models before it existed) trusts
    /// each predicted effect as it is.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub effect_widening: f64,
}

fn one() -> f64 {
    1.0
}

fn is_one(value: &f64) -> bool {
    *value == 1.0
}

fn is_zero(value: &f64) -> bool {
    *value == 0.0
}

fn yes() -> bool {
    true
}

fn is_true(value: &bool) -> bool {
    *value
}

/// The units of the direct action path (`ModelConfig::action_effects`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EffectUnits {
    /// Every action and covariate channel's change from its last observed value, in
    /// scaled units, times the coefficient, added to every quantile in the decoding unit.
    #[default]
    Scaled,
    /// Every action channel's log ratio of its planned value to its last observed one
    /// (offset by a twentieth of its typical magnitude, clipped to ±3), times the
    /// coefficient: a log-multiplier of the target's positive part, so every quantile
    /// `q` becomes `q + max(q, 0) · (e^{Σ c·r} − 1)` in the data's units. A replica count
    /// doubled halves a CPU at any level with one coefficient of −1, learned by
    /// gradient; quantiles stay ordered (the multiplier is positive). Covariates are left
    /// to the core: they are the same in every plan of a what-if.
    Ratio,
}

impl EffectUnits {
    fn is_scaled(&self) -> bool {
        *self == Self::Scaled
    }
}

fn is_false(value: &bool) -> bool {
    !*value
}

impl ModelConfig {
    /// The CPU-trainable preset (257,553 parameters).
    pub fn small() -> Self {
        Self {
            d_model: 64,
            heads: 4,
            mlp_ratio: 2,
            patch_len: 16,
            encoder_layers: 2,
            max_context_patches: 64,
            max_horizon_patches: 16,
            quantiles: vec![0.01, 0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.99],
            min_loops: 1,
            max_loops: 8,
            exit_threshold: 0.5,
            scale_floor: 1e-3,
            input_scale_floor: Some(0.25),
            shared_core: true,
            retention: true,
            deferred_decoding: true,
            anchor: true,
            action_effects: true,
            effect_units: EffectUnits::Scaled,
            relative_effects: false,
            expected_plan: false,
            departure_memory: false,
            effect_recurrence: false,
            anchor_features: true,
            state_blend: true,
            naive_unit_context: true,
            interval_scale: 1.0,
            effect_widening: 0.0,
        }
    }

    /// The larger preset (1,184,337 parameters).
    pub fn base() -> Self {
        Self { d_model: 128, heads: 8, encoder_layers: 3, ..Self::small() }
    }

    /// The scale floor of action and covariate channels.
    pub fn input_floor(&self) -> f64 {
        self.input_scale_floor.unwrap_or(self.scale_floor)
    }

    /// The longest horizon one rollout covers, in steps.
    pub fn native_horizon(&self) -> usize {
        self.max_horizon_patches * self.patch_len
    }

    /// The longest horizon the model forecasts, in steps: [`LONG_HORIZON_FACTOR`] rollouts
    /// chained.
    pub fn max_horizon(&self) -> usize {
        LONG_HORIZON_FACTOR * self.native_horizon()
    }

    /// Index of the quantile level nearest 0.5 (the point forecast).
    pub fn median_level(&self) -> usize {
        let distance = |i: usize| (self.quantiles[i] - 0.5).abs();
        (0..self.quantiles.len()).min_by(|a, b| distance(*a).total_cmp(&distance(*b))).unwrap_or(0)
    }

    /// Reads a configuration from a TOML file (see `configs/model-small.toml`) and checks it.
    pub fn from_toml_file(path: impl AsRef<std::path::Path>) -> Result<Self, ModelError> {
        Self::from_toml_file_with(path, toml::Table::new())
    }

    /// Reads a configuration from a TOML file with the fields in `changes` set over the
    /// file's (a variant of a preset), and checks it; an error names the file and field.
    pub fn from_toml_file_with(
        path: impl AsRef<std::path::Path>,
        changes: toml::Table,
    ) -> Result<Self, ModelError> {
        let path = path.as_ref();
        let changed = if changes.is_empty() { "" } else { " with the given changes" };
        let fail = |e: String| ModelError::Config(format!("{}{changed}: {e}", path.display()));
        let text = std::fs::read_to_string(path).map_err(|e| fail(e.to_string()))?;
        // Without changes the file is read as a config directly, so its errors keep their line.
        let config: Self = if changes.is_empty() {
            toml::from_str(&text).map_err(|e| fail(e.to_string()))?
        } else {
            let mut table: toml::Table = toml::from_str(&text).map_err(|e| fail(e.to_string()))?;
            table.extend(changes);
            Self::deserialize(table).map_err(|e| fail(e.to_string()))?
        };
        config.validate().map_err(|e| fail(e.to_string()))?;
        Ok(config)
    }

    /// Checks every field; the error names the first bad one.
    pub fn validate(&self) -> Result<(), ModelError> {
        let fail = |m: String| Err(ModelError::Config(m));
        if self.d_model == 0 || self.heads == 0 || !self.d_model.is_multiple_of(self.heads) {
            return fail(format!("`heads` ({}) must divide `d_model` ({})", self.heads, self.d_model));
        }
        for (name, value) in [
            ("mlp_ratio", self.mlp_ratio),
            ("patch_len", self.patch_len),
            ("max_context_patches", self.max_context_patches),
            ("max_horizon_patches", self.max_horizon_patches),
            ("min_loops", self.min_loops),
        ] {
            if value == 0 {
                return fail(format!("`{name}` must be at least 1"));
            }
        }
        if self.max_loops < self.min_loops {
            return fail(format!(
                "`max_loops` ({}) is below `min_loops` ({})",
                self.max_loops, self.min_loops
            ));
        }
        if self.quantiles.is_empty()
            || self.quantiles.iter().any(|q| !(*q > 0.0 && *q < 1.0))
            || self.quantiles.windows(2).any(|w| w[0] >= w[1])
        {
            return fail(format!(
                "`quantiles` must be strictly increasing in (0, 1), got {:?}",
                self.quantiles
            ));
        }
        for (name, floor) in [("scale_floor", self.scale_floor), ("input_scale_floor", self.input_floor())] {
            if !(floor > 0.0 && floor.is_finite()) {
                return fail(format!("`{name}` must be positive, got {floor}"));
            }
        }
        if !(self.interval_scale > 0.0 && self.interval_scale.is_finite()) {
            return fail(format!("`interval_scale` must be positive, got {}", self.interval_scale));
        }
        if !(self.effect_widening >= 0.0 && self.effect_widening.is_finite()) {
            return fail(format!("`effect_widening` must be 0 or more, got {}", self.effect_widening));
        }
        if self.anchor_features && !self.anchor {
            return fail("`anchor_features` needs `anchor = true`".to_string());
        }
        if self.naive_unit_context && !self.anchor {
            return fail("`naive_unit_context` needs `anchor = true`".to_string());
        }
        if self.state_blend && !self.anchor_features {
            return fail("`state_blend` needs `anchor_features = true`".to_string());
        }
        if self.effect_units == EffectUnits::Ratio && !self.action_effects {
            return fail("`effect_units = \"ratio\"` needs `action_effects = true`".to_string());
        }
        if self.expected_plan && self.effect_units != EffectUnits::Ratio {
            return fail("`expected_plan = true` needs `effect_units = \"ratio\"`".to_string());
        }
        if self.departure_memory && self.effect_units != EffectUnits::Ratio {
            return fail("`departure_memory = true` needs `effect_units = \"ratio\"`".to_string());
        }
        if self.effect_recurrence && self.effect_units != EffectUnits::Ratio {
            return fail("`effect_recurrence = true` needs `effect_units = \"ratio\"`".to_string());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_config_files_are_the_presets() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../../configs");
        assert_eq!(
            ModelConfig::from_toml_file(format!("{dir}/model-small.toml")).unwrap(),
            ModelConfig::small()
        );
        assert_eq!(
            ModelConfig::from_toml_file(format!("{dir}/model-base.toml")).unwrap(),
            ModelConfig::base()
        );
        let err = ModelConfig::from_toml_file(format!("{dir}/missing.toml")).unwrap_err();
        assert!(err.to_string().contains("missing.toml"), "{err}");
    }

    #[test]
    fn presets_are_valid_and_errors_name_the_field() {
        ModelConfig::small().validate().unwrap();
        ModelConfig::base().validate().unwrap();
        let err = ModelConfig { heads: 3, ..ModelConfig::small() }.validate().unwrap_err();
        assert!(err.to_string().contains("`heads`"), "{err}");
        let err = ModelConfig { quantiles: vec![0.5, 0.1], ..ModelConfig::small() }.validate().unwrap_err();
        assert!(err.to_string().contains("`quantiles`"), "{err}");
        let err = ModelConfig { max_loops: 0, ..ModelConfig::small() }.validate().unwrap_err();
        assert!(err.to_string().contains("`max_loops`"), "{err}");
    }
}
