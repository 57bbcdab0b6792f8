//! Request and response bodies of the HTTP API (JSON; their schemas are in
//! `schemas/openapi.json`, generated from these types).

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use loopcast_core::{Aggregation, Role};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::objects::{object, objects, optional_object};

/// What a channel is to the model.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ChannelRole {
    /// A channel to forecast (CPU, latency, request rate, …).
    Target,
    /// A controllable input, known in the future because it is chosen (replicas, traffic
    /// weight, deploy flag, rate limit).
    Action,
    /// An exogenous input (hour of week, planned events), known in the future or not.
    Covariate,
}

impl From<ChannelRole> for Role {
    fn from(role: ChannelRole) -> Self {
        match role {
            ChannelRole::Target => Role::Target,
            ChannelRole::Action => Role::Action,
            ChannelRole::Covariate => Role::Covariate,
        }
    }
}

impl From<Role> for ChannelRole {
    fn from(role: Role) -> Self {
        match role {
            Role::Target => ChannelRole::Target,
            Role::Action => ChannelRole::Action,
            Role::Covariate => ChannelRole::Covariate,
        }
    }
}

/// One channel of a series: its history and, for actions and covariates, its planned
/// future.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ChannelInput {
    /// Channel name, unique within the series (e.g. `latency_p95_ms`, `replicas`); not
    /// blank.
    #[schema(pattern = r"\S")]
    pub name: String,
    /// Role of the channel.
    pub role: ChannelRole,
    /// History, one value per timestamp (at least one); `null` marks a missing value.
    #[schema(min_items = 1)]
    pub values: Vec<Option<f64>>,
    /// Known future values of an action or covariate, from the first forecast step on
    /// (at most `horizon`; `null` or absent cells are unknown). Not allowed on targets.
    #[serde(default)]
    pub future: Option<Vec<Option<f64>>>,
}

/// One series: a regular time grid given by `timestamps`, or by `start` and `frequency`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SeriesInput {
    /// Series identifier, echoed in the answer (default `series-<index>`).
    #[serde(default)]
    pub id: Option<String>,
    /// Timestamps of the history (RFC 3339), strictly increasing on a regular grid.
    #[serde(default)]
    pub timestamps: Option<Vec<DateTime<Utc>>>,
    /// First timestamp of the history, with `frequency`, instead of `timestamps`.
    #[serde(default)]
    pub start: Option<DateTime<Utc>>,
    /// Grid step: an optional count (1 to 999,999) and a unit, lower case (`1m`, `5m`,
    /// `15min`, `1h`, `1d`, `1w`, `1mo`, `1q`, `1y`); inferred from `timestamps` when absent.
    #[serde(default)]
    pub frequency: Option<String>,
    /// Steps per season, when you know it (1: no season). By default the period the
    /// history repeats at, with the frequency's conventional one (a day of steps below a
    /// day, a week of days, a year of weeks, months or quarters) as the prior.
    #[serde(default)]
    #[schema(minimum = 1, maximum = 1_000_000)]
    pub season: Option<u32>,
    /// Channels: at least one target; every `values` array as long as the history.
    #[schema(min_items = 1)]
    #[serde(deserialize_with = "objects")]
    pub channels: Vec<ChannelInput>,
}

/// What becomes of future action cells a request leaves unknown.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum MissingActionsInput {
    /// The last known value holds ("keep doing what we do").
    #[default]
    HoldLast,
    /// The cells stay unknown and the model forecasts without them.
    Unknown,
}

/// How much the model may compute: loops per future patch, and backtests per series.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ComputeOptions {
    /// Fewest loops of the shared block per patch (default: the model's).
    #[serde(default)]
    pub min_loops: Option<usize>,
    /// Most loops per patch (default: the model's).
    #[serde(default)]
    pub max_loops: Option<usize>,
    /// Exit once the gate reaches this (default: the model's); `0` stops at `min_loops`,
    /// above `1` always runs `max_loops`.
    #[serde(default)]
    pub exit_threshold: Option<f64>,
    /// Fit each series' interval widths on up to this many backtests over the end of its
    /// own history, one horizon apart (0 to 8; default 0: the model's calibration alone).
    /// Each costs one more forecast of the series; medians are unchanged.
    #[serde(default)]
    pub series_calibration: usize,
}

/// The most backtests a request may ask for per series (`compute.series_calibration`).
pub const MAX_SERIES_CALIBRATION: usize = 8;

/// `POST /v1/forecast`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ForecastRequest {
    /// Series to forecast (each with its own history and channels).
    #[serde(deserialize_with = "objects")]
    pub series: Vec<SeriesInput>,
    /// Steps to forecast.
    pub horizon: usize,
    /// Quantile levels to return: distinct, within the model's range, in any order
    /// (answered in increasing order; default: the model's levels).
    #[serde(default)]
    pub quantiles: Option<Vec<f64>>,
    /// Loop limits and exit threshold.
    #[serde(default, deserialize_with = "object")]
    pub compute: ComputeOptions,
    /// Unknown future action cells.
    #[serde(default)]
    pub missing_actions: MissingActionsInput,
}

/// A named action plan of a what-if: future values per action or covariate channel.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PlanInput {
    /// Plan name, unique within the request.
    pub name: String,
    /// Future values per channel name, from the first forecast step on (at most
    /// `horizon`; `null` or absent cells fall back to the series' own `future`, then to
    /// `missing_actions`).
    pub actions: BTreeMap<String, Vec<Option<f64>>>,
}

/// `POST /v1/whatif`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WhatIfRequest {
    /// Series whose histories are encoded once for all plans.
    #[serde(deserialize_with = "objects")]
    pub series: Vec<SeriesInput>,
    /// Steps to forecast.
    pub horizon: usize,
    /// Candidate plans, applied to every series.
    #[serde(deserialize_with = "objects")]
    pub plans: Vec<PlanInput>,
    /// The plan others are compared with (default: the first).
    #[serde(default)]
    pub baseline: Option<String>,
    /// Quantile levels to return, as in a forecast (default: the model's levels).
    #[serde(default)]
    pub quantiles: Option<Vec<f64>>,
    /// Loop limits and exit threshold.
    #[serde(default, deserialize_with = "object")]
    pub compute: ComputeOptions,
    /// Unknown future action cells.
    #[serde(default)]
    pub missing_actions: MissingActionsInput,
}

/// One controllable channel of a plan search: the levels it may take, how often it may
/// change, and what a unit costs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ActionSpace {
    /// An `action` channel of the series (e.g. `replicas`).
    pub channel: String,
    /// Lowest level (e.g. 2 replicas).
    pub min: f64,
    /// Highest level (e.g. 40 replicas).
    pub max: f64,
    /// Distance between levels (default 1: whole replicas).
    #[serde(default = "one")]
    pub step: f64,
    /// The level may change only every this many steps, from the first forecast step on
    /// (default: the horizon, one level throughout).
    #[serde(default)]
    pub change_every: Option<usize>,
    /// Cost of one unit for one step (e.g. a replica's price per 5 minutes).
    pub cost_per_unit: f64,
}

fn one() -> f64 {
    1.0
}

/// The service-level bound a plan must keep at every forecast step: the `quantile` of
/// `channel` at most `max` (or at least `min`; exactly one of the two).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PlanConstraint {
    /// A target channel of the series (e.g. `latency_p95_ms`).
    pub channel: String,
    /// Confidence level: the quantile of the forecast that must keep the bound (e.g. 0.9).
    pub quantile: f64,
    /// Upper bound (e.g. 250 ms).
    #[serde(default)]
    pub max: Option<f64>,
    /// Lower bound (e.g. a throughput floor).
    #[serde(default)]
    pub min: Option<f64>,
}

/// `POST /v1/plan`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PlanRequest {
    /// The series to plan for: its history, and the known future of channels the search
    /// does not set.
    #[serde(deserialize_with = "object")]
    pub series: SeriesInput,
    /// Steps to plan.
    pub horizon: usize,
    /// The channels the search sets, each with its range, step, change interval and cost.
    #[serde(deserialize_with = "objects")]
    pub actions: Vec<ActionSpace>,
    /// The bound every step must keep.
    #[serde(deserialize_with = "object")]
    pub constraint: PlanConstraint,
    /// Most schedules to evaluate (default and cap: `limits.max_plan_candidates`).
    #[serde(default)]
    pub max_candidates: Option<usize>,
    /// Quantile levels of the returned trajectories, as in a forecast (default: the
    /// model's levels).
    #[serde(default)]
    pub quantiles: Option<Vec<f64>>,
    /// Loop limits and exit threshold.
    #[serde(default, deserialize_with = "object")]
    pub compute: ComputeOptions,
    /// Unknown future cells of actions the search does not set.
    #[serde(default)]
    pub missing_actions: MissingActionsInput,
}

/// One evaluated schedule.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct PlanCandidate {
    /// The level of each searched channel at each forecast step.
    pub actions: BTreeMap<String, Vec<f64>>,
    /// Total cost over the horizon (Σ steps × levels × `cost_per_unit`).
    pub cost: f64,
    /// The constrained quantile at its worst over the horizon (its highest value under a
    /// `max`, its lowest under a `min`).
    pub worst: f64,
    /// Risk: the highest probability, over the steps, that the channel breaks the bound
    /// (read off the forecast's quantile function; clamped to the model's level range).
    pub breach_probability: f64,
    /// Whether the constrained quantile keeps the bound at every step.
    pub meets: bool,
}

/// A schedule with its forecast.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct PlannedOutcome {
    /// The schedule, its cost and risk.
    pub candidate: PlanCandidate,
    /// Forecast per target channel under the schedule.
    pub channels: Vec<ChannelForecast>,
    /// Loops used at each step.
    pub loops: Vec<u32>,
}

/// How much searching a plan took.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct SearchSummary {
    /// Schedules evaluated.
    pub candidates: usize,
    /// Batched what-ifs run (a grid, then refinement rounds).
    pub rounds: usize,
}

/// `POST /v1/plan` answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct PlanResponse {
    /// Model that answered.
    pub model: String,
    /// Series identifier.
    pub id: String,
    /// Timestamps of the forecast steps.
    pub timestamps: Vec<DateTime<Utc>>,
    /// Quantile levels of every trajectory.
    pub quantiles: Vec<f64>,
    /// Whether some schedule keeps the bound, effect intervals included.
    pub feasible: bool,
    /// The answer in one sentence.
    pub detail: String,
    /// Why no schedule is recommended (absent when one is).
    pub refusal: Option<PlanRefusal>,
    /// The cheapest schedule found that keeps the bound (absent when none does).
    pub plan: Option<PlannedOutcome>,
    /// When no schedule keeps the bound: the least risky one evaluated.
    pub closest: Option<PlannedOutcome>,
    /// Cost/risk Pareto frontier of every schedule evaluated, cheapest first: each is
    /// less risky than every cheaper one.
    pub frontier: Vec<PlanCandidate>,
    /// Search effort.
    pub search: SearchSummary,
    /// What became of unknown future cells of the other actions.
    pub missing_actions: MissingActionsInput,
}

/// Why `POST /v1/plan` recommends no schedule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum PlanRefusal {
    /// No schedule evaluated keeps the bound, even by its forecast.
    Unreachable,
    /// Some schedules keep the bound by their forecast, but none once the model's effect
    /// intervals are accounted for: the model cannot vouch for any of them.
    UncertainEffects,
}

/// One quantile level's trajectory.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct QuantileTrajectory {
    /// Quantile level in (0, 1).
    pub level: f64,
    /// One value per forecast step.
    pub values: Vec<f64>,
}

/// The forecast of one target channel.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ChannelForecast {
    /// Channel name.
    pub name: String,
    /// Mean per step (the average of the model's quantile function).
    pub mean: Vec<f64>,
    /// One trajectory per requested level, in increasing level.
    pub quantiles: Vec<QuantileTrajectory>,
}

/// Where a series' seasonal period came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum SeasonSourceOutput {
    /// The frequency's conventional season, which the history did not contradict.
    Calendar,
    /// A period the history repeats at, which the calendar does not give.
    Data,
    /// The request's `season`.
    Given,
    /// No season: the forecast is anchored on the last value.
    None,
}

impl From<loopcast_core::SeasonSource> for SeasonSourceOutput {
    fn from(source: loopcast_core::SeasonSource) -> Self {
        use loopcast_core::SeasonSource as S;
        match source {
            S::Calendar => Self::Calendar,
            S::Data => Self::Data,
            S::Given => Self::Given,
            S::None => Self::None,
        }
    }
}

/// The seasonal period a series was forecast with: the model decodes around the last
/// season repeated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct SeasonOutput {
    /// Steps per season (1: none).
    #[schema(minimum = 1)]
    pub steps: usize,
    /// Where the period came from.
    pub source: SeasonSourceOutput,
}

impl From<loopcast_core::Season> for SeasonOutput {
    fn from(season: loopcast_core::Season) -> Self {
        Self { steps: season.steps, source: season.source.into() }
    }
}

/// The forecast of one series.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct SeriesForecast {
    /// Series identifier.
    pub id: String,
    /// Timestamps of the forecast steps.
    pub timestamps: Vec<DateTime<Utc>>,
    /// The seasonal period the forecast used.
    pub season: SeasonOutput,
    /// One forecast per target channel, in request order.
    pub channels: Vec<ChannelForecast>,
    /// Loops of the shared block used at each step (one count per patch of steps).
    pub loops: Vec<u32>,
}

/// `POST /v1/forecast` answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ForecastResponse {
    /// Model that answered.
    pub model: String,
    /// Quantile levels of every trajectory.
    pub quantiles: Vec<f64>,
    /// What became of unknown future action cells.
    pub missing_actions: MissingActionsInput,
    /// One forecast per series, in request order.
    pub series: Vec<SeriesForecast>,
}

/// One plan's outcome for one series.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct PlanForecast {
    /// Plan name.
    pub plan: String,
    /// Forecast per target channel.
    pub channels: Vec<ChannelForecast>,
    /// This plan minus the baseline per target channel: the mean's difference, and each
    /// quantile's difference (the twins share every exogenous draw, so quantiles are
    /// paired level by level). All zero for the baseline itself.
    pub difference: Vec<ChannelForecast>,
    /// Loops used at each step.
    pub loops: Vec<u32>,
}

/// The what-if of one series.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct SeriesWhatIf {
    /// Series identifier.
    pub id: String,
    /// Timestamps of the forecast steps.
    pub timestamps: Vec<DateTime<Utc>>,
    /// The seasonal period the forecasts used.
    pub season: SeasonOutput,
    /// One outcome per plan, in request order.
    pub plans: Vec<PlanForecast>,
}

/// `POST /v1/whatif` answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct WhatIfResponse {
    /// Model that answered.
    pub model: String,
    /// The plan differences are taken against.
    pub baseline: String,
    /// Quantile levels of every trajectory.
    pub quantiles: Vec<f64>,
    /// What became of unknown future action cells.
    pub missing_actions: MissingActionsInput,
    /// One what-if per series, in request order.
    pub series: Vec<SeriesWhatIf>,
}

/// A model the service can answer with.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ModelInfo {
    /// Name (`loopcast-small` for the shipped model, else the directory's name).
    pub name: String,
    /// Whether requests use it by default.
    pub default: bool,
    /// Learned parameters.
    pub parameters: usize,
    /// Device it runs on.
    pub device: String,
    /// Quantile levels of its head.
    pub quantiles: Vec<f64>,
    /// Steps per patch.
    pub patch_len: usize,
    /// History steps it reads (longer histories keep their last steps).
    pub max_context: usize,
    /// Longest horizon, steps: several rollouts chained, each continuing from the
    /// medians of the one before.
    pub max_horizon: usize,
    /// Longest horizon one rollout covers, steps.
    pub native_horizon: usize,
    /// Default loops per patch: fewest and most.
    pub min_loops: usize,
    /// Most loops per patch by default.
    pub max_loops: usize,
    /// Default exit threshold of the gate.
    pub exit_threshold: f64,
}

/// `GET /v1/models` answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ModelsResponse {
    /// Models served.
    pub models: Vec<ModelInfo>,
}

/// `GET /health` and `GET /ready` answers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Status {
    /// `ok`, or why not.
    pub status: String,
}

/// `POST /v1/jobs`: score every series of a telemetry file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct JobRequest {
    /// The input file (Parquet, CSV or Arrow IPC), relative to the service's data
    /// directory; `uploads/<name>` for a file sent with `PUT /v1/files/{name}`. No leading
    /// `/`, no `..`, and a telemetry file's extension (.parquet, .csv, .arrow, .arrows,
    /// .ipc); it must exist at submission (404 otherwise), and the job reads it as it was
    /// then.
    #[schema(
        pattern = r"^(?![/\\])(?!(.*[/\\])?\.\.([/\\]|$))(.*[/\\])?[^/\\]+\.([pP][aA][rR][qQ][uU][eE][tT]|[cC][sS][vV]|[aA][rR][rR][oO][wW][sS]?|[iI][pP][cC])$"
    )]
    pub input: String,
    /// `long` (one value per row: `series_id, timestamp, channel, value`) or `wide` (one
    /// column per channel; needs `mapping`).
    #[serde(default)]
    pub layout: TableLayout,
    /// Channel roles and column names, as in a mapping file (`{"channels": {"cpu":
    /// "target", "replicas": "action"}}`); without it the roles come from a `role` column,
    /// or else every channel of a long file is a target.
    #[serde(default, deserialize_with = "optional_object")]
    pub mapping: Option<MappingInput>,
    /// Steps to forecast after each series' last observed target value.
    pub horizon: usize,
    /// Quantile levels of the output columns, as in a forecast (default: the model's
    /// levels).
    #[serde(default)]
    pub quantiles: Option<Vec<f64>>,
    /// Loop limits and exit threshold.
    #[serde(default, deserialize_with = "object")]
    pub compute: ComputeOptions,
    /// Unknown future action cells.
    #[serde(default)]
    pub missing_actions: MissingActionsInput,
}

/// A job's mapping, as a mapping file says it: which column holds what, and every
/// channel's role.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MappingInput {
    /// Column of the series identifier (default: `series_id`, `unique_id` or `item_id`).
    #[serde(default)]
    pub series_id: Option<String>,
    /// Column of the timestamp (default: `timestamp` or `ds`).
    #[serde(default)]
    pub timestamp: Option<String>,
    /// Grid step, spelled as a series' `frequency` (default: inferred from the data).
    #[serde(default)]
    pub frequency: Option<String>,
    /// Channel (or wide column) name → its role, or its role and settings.
    #[serde(default)]
    pub channels: BTreeMap<String, ChannelEntryInput>,
}

/// One channel of a mapping: its role alone, or with settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(untagged)]
pub enum ChannelEntryInput {
    /// The role; aggregation and future knowledge take the role's defaults.
    Role(ChannelRole),
    /// The role and settings.
    Detailed(#[serde(deserialize_with = "object")] ChannelSettingsInput),
}

/// A mapped channel's role and settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ChannelSettingsInput {
    /// Role of the channel.
    pub role: ChannelRole,
    /// How values within one grid cell combine (default by role: `last` for actions,
    /// `mean` otherwise).
    #[serde(default)]
    pub aggregation: Option<AggregationInput>,
    /// Whether future values are known (default: true for actions, false otherwise).
    #[serde(default)]
    pub known_future: Option<bool>,
}

/// How values within one grid cell combine.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum AggregationInput {
    /// Arithmetic mean (gauges).
    Mean,
    /// Sum (counts per interval).
    Sum,
    /// The latest value (actions, set-points).
    Last,
    /// The maximum (peaks).
    Max,
}

impl From<AggregationInput> for Aggregation {
    fn from(aggregation: AggregationInput) -> Self {
        match aggregation {
            AggregationInput::Mean => Self::Mean,
            AggregationInput::Sum => Self::Sum,
            AggregationInput::Last => Self::Last,
            AggregationInput::Max => Self::Max,
        }
    }
}

/// How a telemetry table lays out channels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum TableLayout {
    /// One row per (series, timestamp, channel) value.
    #[default]
    Long,
    /// One row per (series, timestamp), one column per channel.
    Wide,
}

impl From<TableLayout> for loopcast_data::Layout {
    fn from(layout: TableLayout) -> Self {
        match layout {
            TableLayout::Long => Self::Long,
            TableLayout::Wide => Self::Wide,
        }
    }
}

/// Where a job is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum JobState {
    /// Waiting for the job runner (jobs run one at a time, behind interactive requests).
    Queued,
    /// Scoring.
    Running,
    /// Done: the output is ready.
    Succeeded,
    /// Stopped by an error (`error` says which file, column or row).
    Failed,
    /// Cancelled by `DELETE /v1/jobs/{id}`.
    Cancelled,
}

impl JobState {
    /// The state's name, as in JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Queued => "queued",
            Self::Running => "running",
            Self::Succeeded => "succeeded",
            Self::Failed => "failed",
            Self::Cancelled => "cancelled",
        }
    }

    /// Whether the job will not change again.
    pub fn is_final(self) -> bool {
        matches!(self, Self::Succeeded | Self::Failed | Self::Cancelled)
    }
}

/// A batch-scoring job.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Job {
    /// Job identifier.
    pub id: String,
    /// Where it is.
    pub state: JobState,
    /// What it scores.
    pub request: JobRequest,
    /// When it was submitted.
    pub created: DateTime<Utc>,
    /// When its state or progress last changed.
    pub updated: DateTime<Utc>,
    /// How far it has come (rows written are on disk: a restart keeps them).
    pub progress: ScoreProgress,
    /// Times it has started running (more than one after a restart resumed it).
    pub starts: u32,
    /// Why it failed.
    pub error: Option<String>,
    /// Where to download the output (`GET`, Parquet), once it succeeded.
    pub output: Option<String>,
}

/// `GET /v1/jobs` answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct JobList {
    /// Every job the service knows, oldest first.
    pub jobs: Vec<Job>,
}

/// `PUT /v1/files/{name}` answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Upload {
    /// The path to give as a job's `input`.
    pub input: String,
    /// Bytes stored.
    pub bytes: u64,
}

/// `POST /v1/series` answer: a telemetry file read into request series.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct SeriesFile {
    /// The file's name, as sent in `name`.
    pub file: String,
    /// Rows read.
    pub rows: u64,
    /// Grid cells with no observation, over every series and channel (sent as `null`).
    pub gap_cells: u64,
    /// The series, ready to be the `series` of a forecast, what-if or plan request.
    pub series: Vec<SeriesInput>,
}

/// A bundled example dataset, without its data.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ExampleSummary {
    /// Name to fetch it by (`GET /v1/examples/{name}`).
    pub name: String,
    /// One line on what it is.
    pub title: String,
    /// Where it comes from and what it shows.
    pub description: String,
}

/// `GET /v1/examples` answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ExamplesResponse {
    /// The datasets bundled with the service.
    pub examples: Vec<ExampleSummary>,
}

/// A plan search that suits an example dataset.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ExamplePlan {
    /// The channels to search, as in `POST /v1/plan`.
    pub actions: Vec<ActionSpace>,
    /// The bound to keep, as in `POST /v1/plan`.
    pub constraint: PlanConstraint,
}

/// `GET /v1/examples/{name}` answer: an example's series with a horizon and a plan search
/// that suit it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ExampleDataset {
    /// What the dataset is.
    #[serde(flatten)]
    pub summary: ExampleSummary,
    /// A horizon that suits it, steps.
    pub horizon: usize,
    /// Its series, ready to be the `series` of a request.
    pub series: Vec<SeriesInput>,
    /// A capacity question to ask of it.
    pub plan: ExamplePlan,
}

/// Scenario label of plain forecasts in the output.
pub const FORECAST_SCENARIO: &str = "forecast";

/// How far a run has come.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ScoreProgress {
    /// Input rows read.
    pub rows_read: u64,
    /// Input rows in all (after the filter).
    pub total_rows: u64,
    /// Series read (in this shard).
    pub series: u64,
    /// Series forecast (a series with no observed target value has nothing to forecast).
    pub windows: u64,
    /// Chunks whose rows are on disk.
    pub chunks_done: u64,
    /// Of those, chunks found on disk from an earlier, stopped run.
    pub chunks_resumed: u64,
    /// Output rows on disk.
    pub rows_written: u64,
}
