//! Planner scoring on held-out simulated services: does the schedule the planner picks
//! truly keep the SLO when it is played in the simulator, and what does it cost next to
//! the oracle — the cheapest schedule that truly keeps it, found by simulating every
//! candidate?
//!
//! Per episode the question is the capacity planner's: "the cheapest replica schedule
//! for the next `horizon` steps that keeps latency p95's quantile `q` under the SLO".
//! The SLO is set from the history (`slo_margin` × the `q` quantile of latency p95 over
//! the last day of the context), replicas range over a grid from 1 to twice the most the
//! operator ran, and the level may change every `horizon / segments` steps; traffic
//! weight, deploys and rate limits follow the operator's own plan.
//!
//! A schedule *truly keeps* a bound on quantile `q` when the simulated latency breaks it
//! at no more than a share `1 − q` of the observed steps: what "the `q` quantile stays
//! under the bound at every step" means for the one future that happens. The oracle is the
//! cheapest schedule that truly keeps the bound among everything simulated: every schedule
//! the planner evaluated, every schedule of the same search judged by the simulator itself
//! (a perfect model, also scored as a planner: what the search alone loses), every
//! constant level of the grid and the operator's plan. The operator's autoscaler (the
//! history's policy carried on) is scored as a reference.

use loopcast_core::RegularSeries;
use loopcast_model::planner::{Bound, Dimension, Outcome, Search};
use loopcast_model::{ForecastOptions, LoopedWorldModel};
use loopcast_sim::policy::history_plan;
use loopcast_sim::{ActionPlan, ParamRanges, World};
use serde::{Deserialize, Serialize};

use crate::backtest::EvalError;
use crate::counterfactual::{PlanArrays, TwinSpec, observed_values, twin_frequency, whatif_inputs};

/// The constrained target channel.
pub const SLO_CHANNEL: &str = "latency_p95_ms";
/// The searched action channel.
pub const SEARCHED_CHANNEL: &str = "replicas";

/// How the planning problems are posed.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PlanEvalSpec {
    /// Episodes, context and horizon (the number of plans is not used).
    pub twins: TwinSpec,
    /// Quantile level of the bound.
    pub quantile: f64,
    /// The SLO over the history's latency quantile.
    pub slo_margin: f64,
    /// Segments of the horizon the replica level may change at.
    pub segments: usize,
    /// Most schedules the planner evaluates per episode.
    pub budget: usize,
    /// Most levels on the replica grid.
    pub max_levels: usize,
}

impl Default for PlanEvalSpec {
    fn default() -> Self {
        Self {
            twins: TwinSpec::default(),
            quantile: 0.9,
            slo_margin: 1.1,
            segments: 4,
            budget: 48,
            max_levels: 32,
        }
    }
}

/// How one planner fared on one episode.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PlanRow {
    /// Episode seed.
    pub seed: u64,
    /// `loopcast` (the planner), `perfect_model` (the same search judged by the simulator)
    /// or `operator` (the history's autoscaler carried on).
    pub planner: String,
    /// The SLO, ms.
    pub slo_ms: f64,
    /// The planner found a schedule it believes keeps the bound (always for the operator).
    pub planned: bool,
    /// Replica-steps of the schedule (`None`: no plan).
    pub cost: Option<f64>,
    /// Share of observed steps over the SLO when the schedule is simulated.
    pub breach_share: Option<f64>,
    /// The simulated schedule keeps the bound.
    pub truly_meets: bool,
    /// Cost of the cheapest simulated candidate that keeps the bound (`None`: none does).
    pub oracle_cost: Option<f64>,
}

/// One planner over every episode.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct PlanSummary {
    /// Episodes where some candidate truly keeps the bound (the others cannot be won).
    pub solvable: usize,
    /// Of those, episodes where the planner returned a plan.
    pub planned: usize,
    /// Of the solvable episodes, the share whose chosen schedule truly keeps the bound.
    pub meets_share: Option<f64>,
    /// Median of cost ÷ oracle cost over the schedules that truly keep the bound.
    pub median_cost_ratio: Option<f64>,
}

/// What the planner scored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PlanReport {
    /// Episodes posed.
    pub episodes: usize,
    /// The loopcast planner.
    pub loopcast: PlanSummary,
    /// The same search judged by the simulator itself: what the search loses with a
    /// perfect model.
    pub perfect_model: PlanSummary,
    /// The operator's autoscaler, carried on.
    pub operator: PlanSummary,
    /// Schedules the planner evaluated, per episode on average.
    pub mean_candidates: f64,
    /// Every planner on every episode (written as CSV, left out of the JSON).
    #[serde(skip)]
    pub rows: Vec<PlanRow>,
}

/// The planning problem of one episode and its simulated answers.
struct Problem {
    seed: u64,
    world: World,
    base: ActionPlan,
    history: RegularSeries,
    future: RegularSeries,
    slo_ms: f64,
    latency: usize,
    replicas: usize,
    dimension: Dimension,
}

fn channel(series: &RegularSeries, name: &str) -> Result<usize, EvalError> {
    series
        .channels
        .iter()
        .position(|c| c.spec.name == name)
        .ok_or_else(|| EvalError::Config(format!("the simulator has no channel `{name}`")))
}

/// The `level` quantile of the finite values of `values` (nearest rank).
fn quantile_of(values: &[f64], level: f64) -> Option<f64> {
    let mut seen: Vec<f64> = values.iter().copied().filter(|v| v.is_finite()).collect();
    if seen.is_empty() {
        return None;
    }
    seen.sort_by(f64::total_cmp);
    let rank = ((level * seen.len() as f64).ceil() as usize).clamp(1, seen.len());
    Some(seen[rank - 1])
}

impl Problem {
    fn new(seed: u64, spec: &PlanEvalSpec) -> Result<Option<Self>, EvalError> {
        let fail = |e: loopcast_sim::SimError| EvalError::Config(e.to_string());
        let (context, horizon) = (spec.twins.context, spec.twins.horizon);
        let world = World::new(seed, ParamRanges::default().draw(seed), twin_frequency(), context + horizon)
            .map_err(fail)?
            .with_topology(spec.twins.topology);
        let base = history_plan(&world);
        let run = world.run(&base).map_err(fail)?;
        let history = run.series.slice(0..context);
        let future = run.series.slice(context..context + horizon);
        let (latency, replicas) = (channel(&history, SLO_CHANNEL)?, channel(&history, SEARCHED_CHANNEL)?);
        let day = context.min(crate::counterfactual::TWIN_SEASON);
        let recent = &observed_values(&history, latency)[context - day..];
        let Some(reference) = quantile_of(recent, spec.quantile) else { return Ok(None) };
        let most = base.replicas.iter().copied().max().unwrap_or(1);
        let top_level = (2 * most).max(most + 4);
        let step = top_level.div_ceil(spec.max_levels as u32).max(1);
        let dimension = Dimension {
            min: 1.0,
            step: f64::from(step),
            top: ((top_level - 1) / step) as usize,
            segment_len: horizon.div_ceil(spec.segments.max(1)),
            cost_per_unit: 1.0,
        };
        Ok(Some(Self {
            seed,
            world,
            base,
            history,
            future,
            slo_ms: spec.slo_margin * reference,
            latency,
            replicas,
            dimension,
        }))
    }

    /// The full plan with `replicas` over the horizon.
    fn plan(&self, replicas: &[f64]) -> ActionPlan {
        let mut plan = self.base.clone();
        let context = self.history.len();
        for (h, level) in replicas.iter().enumerate() {
            plan.replicas[context + h] = level.round().max(1.0) as u32;
        }
        plan
    }

    /// Simulates every schedule (replicas per step): the share of observed steps over
    /// the SLO for each.
    fn breach_shares(&self, schedules: &[Vec<f64>]) -> Result<Vec<f64>, EvalError> {
        let plans: Vec<ActionPlan> = schedules.iter().map(|s| self.plan(s)).collect();
        let runs = self.world.twins(&plans).map_err(|e| EvalError::Config(e.to_string()))?;
        let context = self.history.len();
        Ok(runs
            .iter()
            .map(|run| {
                let latency = observed_values(&run.series.slice(context..run.series.len()), self.latency);
                let seen: Vec<f64> = latency.into_iter().filter(|v| v.is_finite()).collect();
                seen.iter().filter(|v| **v > self.slo_ms).count() as f64 / seen.len().max(1) as f64
            })
            .collect())
    }
}

/// Poses the planning problem of every episode of `spec.twins`, plans with `model`, and
/// scores the chosen schedules in the simulator; `progress` hears how many episodes are
/// done and returns `false` to stop the run ([`EvalError::Stopped`]).
pub fn evaluate_planner(
    model: &LoopedWorldModel,
    spec: &PlanEvalSpec,
    options: &ForecastOptions,
    progress: &mut dyn FnMut(usize) -> bool,
) -> Result<PlanReport, EvalError> {
    let allowed = 1.0 - spec.quantile;
    let mut rows = Vec::new();
    let mut candidates = 0usize;
    let mut posed = 0usize;
    for (done, seed) in
        (spec.twins.first_seed..spec.twins.first_seed + spec.twins.episodes as u64).enumerate()
    {
        if !progress(done) {
            return Err(EvalError::Stopped);
        }
        let Some(problem) = Problem::new(seed, spec)? else { continue };
        posed += 1;
        let horizon = problem.future.len();
        let (batch, own) = whatif_inputs(&[&problem.history], &[vec![&problem.future]], false)?;
        let row = problem.replicas * horizon;
        let bound = Bound { level: spec.quantile, value: problem.slo_ms, upper: true };
        // With effect intervals, every schedule is judged by its departure from the
        // forecast under the operator's own plan, as `POST /v1/plan` judges it.
        let widening = model.config().effect_widening;
        let own_forecast =
            if widening > 0.0 { Some(model.whatif(&batch, &own[..1], options)?.remove(0)) } else { None };
        let median = model.config().median_level();
        let planned = search(&problem, spec.budget, |schedules| {
            let plans: Vec<PlanArrays> = schedules
                .iter()
                .map(|levels| {
                    let (mut values, known) = own[0].clone();
                    for (h, level) in levels.iter().enumerate() {
                        values[row + h] = *level as f32;
                    }
                    (values, known)
                })
                .collect();
            let forecasts = model.whatif(&batch, &plans, options)?;
            Ok(forecasts
                .iter()
                .map(|f| {
                    let value = |h, q| f64::from(f.value(0, problem.latency, h, q));
                    match &own_forecast {
                        Some(own) => {
                            let own = |h, q| f64::from(own.value(0, problem.latency, h, q));
                            bound.judge_departure(&f.levels, horizon, median, value, own, widening)
                        }
                        None => bound.judge(&f.levels, horizon, value),
                    }
                })
                .collect())
        })?;
        // The same search with the simulator as its judge: a perfect model.
        let perfect = search(&problem, spec.budget, |schedules| {
            Ok(problem
                .breach_shares(schedules)?
                .into_iter()
                .map(|share| Outcome { worst: share, risk: share, meets: share <= allowed })
                .collect())
        })?;
        candidates += planned.evaluated.len();
        // The oracle's candidates: both searches', every constant level, the operator's plan.
        let context = problem.history.len();
        let operator: Vec<f64> = problem.base.replicas[context..].iter().map(|r| f64::from(*r)).collect();
        let mut schedules: Vec<Vec<f64>> =
            planned.evaluated.iter().chain(&perfect.evaluated).cloned().collect();
        schedules.extend((0..=problem.dimension.top).map(|i| vec![problem.dimension.level(i); horizon]));
        schedules.push(operator);
        let shares = problem.breach_shares(&schedules)?;
        let oracle_cost = (0..schedules.len())
            .filter(|i| shares[*i] <= allowed)
            .map(|i| schedules[i].iter().sum::<f64>())
            .min_by(f64::total_cmp);
        // Each choice is one of the simulated schedules: read its share, do not simulate it again.
        let operator_index = schedules.len() - 1;
        let choices = [
            ("loopcast", planned.best),
            ("perfect_model", perfect.best.map(|i| planned.evaluated.len() + i)),
            ("operator", Some(operator_index)),
        ];
        for (planner, choice) in choices {
            let share = choice.map(|i| shares[i]);
            rows.push(PlanRow {
                seed: problem.seed,
                planner: planner.into(),
                slo_ms: problem.slo_ms,
                planned: choice.is_some(),
                cost: choice.map(|i| schedules[i].iter().sum()),
                breach_share: share,
                truly_meets: share.is_some_and(|s| s <= allowed),
                oracle_cost,
            });
        }
    }
    let _ = progress(spec.twins.episodes);
    let summary = |planner: &str| summarise(rows.iter().filter(|r| r.planner == planner));
    Ok(PlanReport {
        episodes: posed,
        loopcast: summary("loopcast"),
        perfect_model: summary("perfect_model"),
        operator: summary("operator"),
        mean_candidates: candidates as f64 / posed.max(1) as f64,
        rows,
    })
}

impl PlanReport {
    /// The table in Markdown.
    pub fn markdown(&self, spec: &PlanEvalSpec) -> String {
        let cell = |v: Option<f64>, percent: bool| match v {
            None => "–".to_string(),
            Some(v) if percent => format!("{:.1} %", 100.0 * v),
            Some(v) => format!("{v:.3}"),
        };
        let mut out = format!(
            "{} planning problems: the cheapest `{SEARCHED_CHANNEL}` schedule ({} segments) keeping \
             `{SLO_CHANNEL}` q{} under {} × its q{} over the last day of history; the planner evaluated \
             {:.1} schedules per problem (budget {}).\n\n| planner | solvable problems | plans returned | \
             truly keeps the SLO | median cost ÷ oracle (plans that keep it) |\n|---|---:|---:|---:|---:|\n",
            self.episodes,
            spec.segments,
            spec.quantile,
            spec.slo_margin,
            spec.quantile,
            self.mean_candidates,
            spec.budget
        );
        let rows = [
            ("loopcast", &self.loopcast),
            ("the same search, judged by the simulator", &self.perfect_model),
            ("operator's autoscaler", &self.operator),
        ];
        for (name, s) in rows {
            out.push_str(&format!(
                "| {name} | {} | {} | {} | {} |\n",
                s.solvable,
                s.planned,
                cell(s.meets_share, true),
                cell(s.median_cost_ratio, false)
            ));
        }
        out
    }
}

/// What one search found: every schedule it evaluated, as replicas per step, and the
/// index of its choice among them.
struct Searched {
    evaluated: Vec<Vec<f64>>,
    best: Option<usize>,
}

/// Runs the plan search over `problem`'s replica grid, `judge` scoring each batch of
/// schedules (replicas per step).
fn search(
    problem: &Problem,
    budget: usize,
    mut judge: impl FnMut(&[Vec<f64>]) -> Result<Vec<Outcome>, EvalError>,
) -> Result<Searched, EvalError> {
    let horizon = problem.future.len();
    let mut search = Search::new(vec![problem.dimension.clone()], horizon, budget);
    while let Some(schedules) = search.propose() {
        let levels: Vec<Vec<f64>> = schedules.iter().map(|s| search.per_step(s, 0)).collect();
        let outcomes = judge(&levels)?;
        search.observe(&outcomes);
    }
    let evaluated: Vec<Vec<f64>> =
        search.evaluated().iter().map(|e| search.per_step(&e.schedule, 0)).collect();
    Ok(Searched { evaluated, best: search.best() })
}

fn summarise<'a>(rows: impl Iterator<Item = &'a PlanRow>) -> PlanSummary {
    let solvable: Vec<&PlanRow> = rows.filter(|r| r.oracle_cost.is_some()).collect();
    let meeting: Vec<&&PlanRow> = solvable.iter().filter(|r| r.truly_meets).collect();
    let mut ratios: Vec<f64> =
        meeting.iter().filter_map(|r| Some(r.cost? / r.oracle_cost?)).filter(|r| r.is_finite()).collect();
    ratios.sort_by(f64::total_cmp);
    let n = solvable.len();
    PlanSummary {
        solvable: n,
        planned: solvable.iter().filter(|r| r.planned).count(),
        meets_share: (n > 0).then(|| meeting.len() as f64 / n as f64),
        median_cost_ratio: (!ratios.is_empty()).then(|| ratios[ratios.len() / 2]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(planner: &str, cost: Option<f64>, meets: bool, oracle: Option<f64>) -> PlanRow {
        PlanRow {
            seed: 0,
            planner: planner.into(),
            slo_ms: 100.0,
            planned: cost.is_some(),
            cost,
            breach_share: cost.map(|_| if meets { 0.0 } else { 0.5 }),
            truly_meets: meets,
            oracle_cost: oracle,
        }
    }

    #[test]
    fn summaries_count_only_solvable_episodes_and_ratios_of_plans_that_keep_the_bound() {
        let rows = [
            row("loopcast", Some(120.0), true, Some(100.0)),
            row("loopcast", Some(50.0), false, Some(100.0)), // cheap but breaks the SLO
            row("loopcast", None, false, Some(80.0)),
            row("loopcast", Some(90.0), false, None), // nothing could keep it
        ];
        let summary = summarise(rows.iter());
        assert_eq!((summary.solvable, summary.planned), (3, 2));
        assert!((summary.meets_share.unwrap() - 1.0 / 3.0).abs() < 1e-12);
        assert_eq!(summary.median_cost_ratio, Some(1.2));
    }

    #[test]
    fn nearest_rank_quantiles_skip_gaps() {
        assert_eq!(quantile_of(&[3.0, f64::NAN, 1.0, 2.0, 4.0], 0.5), Some(2.0));
        assert_eq!(quantile_of(&[3.0, 1.0, 2.0, 4.0], 0.9), Some(4.0));
        assert_eq!(quantile_of(&[f64::NAN], 0.9), None);
    }
}
