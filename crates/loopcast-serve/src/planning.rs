//! `POST /v1/plan`: checks the action space and the bound, drives the search with one
//! batched what-if per round, and answers with the cheapest schedule that keeps the bound,
//! its forecast and the cost/risk frontier.

use std::collections::BTreeSet;
use std::time::Instant;

use loopcast_core::Role;
use loopcast_model::Forecast;
use loopcast_model::planner::{Bound, Dimension, Evaluated, Search};

use crate::api::{
    ActionSpace, PlanCandidate, PlanConstraint, PlanRefusal, PlanRequest, PlanResponse, PlannedOutcome,
    SearchSummary,
};
use crate::batcher::Plan;
use crate::prepare::{PreparedSeries, channel_forecasts, loops_per_step, own_future, prepare};
use crate::problem::Problem;
use crate::worker::Worker;

/// Most searched channels: the grid grows as its power.
const MAX_DIMENSIONS: usize = 4;
/// Most levels one searched channel may have.
const MAX_LEVELS: f64 = 100_000.0;

impl Worker {
    /// Searches for the cheapest action schedule that keeps the bound, as
    /// `POST /v1/plan` does.
    pub async fn plan(&self, request: PlanRequest) -> Result<PlanResponse, Problem> {
        let deadline = Instant::now() + self.timeout();
        let bounds = self.bounds();
        let prepared = prepare(
            std::slice::from_ref(&request.series),
            request.horizon,
            request.quantiles.as_deref(),
            &request.compute,
            request.missing_actions,
            bounds,
        )
        .map_err(|p| p.moved("series[0]", "series"))?;
        let series = &prepared.series[0];
        let horizon = prepared.horizon;
        let (target, bound) = constraint(&request.constraint, series, &bounds.levels)?;
        let (dims, rows) = dimensions(&request.actions, series, horizon)?;
        let limit = bounds.limits.max_plan_candidates;
        let budget = match request.max_candidates {
            None => limit,
            Some(n) if (1..=limit).contains(&n) => n,
            Some(n) => {
                return Err(Problem::invalid(
                    "max_candidates",
                    format!("must be 1 to {limit} (limits.max_plan_candidates), got {n}"),
                ));
            }
        };

        let mut search = Search::new(dims, horizon, budget);
        let own = own_future(series).remove(0);
        let widening = bounds.effect_widening;
        let median = median_level(&bounds.levels);
        // The model's effect intervals are about departures from the operator's own plan:
        // its forecast is the reference every schedule's effect is measured from.
        let own_forecast = if widening > 0.0 {
            let answers = self.run(&prepared, |_| vec![own.clone()], deadline).await?;
            let (results, at) = answers.of(0);
            Some((results[0].clone(), at))
        } else {
            None
        };
        let mut forecasts: Vec<Forecast> = Vec::new();
        let mut kept_by_forecast = 0;
        let mut window = 0;
        while let Some(schedules) = search.propose() {
            let plans: Vec<Plan> = schedules
                .iter()
                .map(|schedule| {
                    let (mut values, mut known) = own.clone();
                    for (d, row) in rows.iter().enumerate() {
                        for (h, level) in search.per_step(schedule, d).into_iter().enumerate() {
                            values[row + h] = level as f32;
                            known[row + h] = true;
                        }
                    }
                    (values, known)
                })
                .collect();
            let answers = self.run(&prepared, |_| plans.clone(), deadline).await?;
            let (results, at) = answers.of(0);
            window = at;
            let outcomes: Vec<_> = results
                .iter()
                .map(|f| {
                    let value = |h, q| f64::from(f.value(window, target, h, q));
                    let forecast = bound.judge(&f.levels, horizon, value);
                    let Some((own, at)) = &own_forecast else { return forecast };
                    kept_by_forecast += usize::from(forecast.meets);
                    let own = |h, q| f64::from(own.value(*at, target, h, q));
                    bound.judge_departure(&f.levels, horizon, median, value, own, widening)
                })
                .collect();
            search.observe(&outcomes);
            forecasts.extend(results.iter().cloned());
        }

        let candidate = |i: usize| describe(&search, &request.actions, &search.evaluated()[i]);
        let outcome = |i: usize| PlannedOutcome {
            candidate: candidate(i),
            channels: channel_forecasts(&forecasts[i], window, &series.targets, &prepared.levels, horizon),
            loops: loops_per_step(&forecasts[i], window, bounds.patch_len, horizon),
        };
        let best = search.best();
        let closest = if best.is_none() { search.safest() } else { None };
        let refusal = match best {
            Some(_) => None,
            None if kept_by_forecast > 0 => Some(PlanRefusal::UncertainEffects),
            None => Some(PlanRefusal::Unreachable),
        };
        Ok(PlanResponse {
            model: self.model_name().to_string(),
            id: series.id.clone(),
            timestamps: series.future_timestamps.clone(),
            quantiles: prepared.levels.clone(),
            feasible: best.is_some(),
            detail: detail(&request.constraint, &search, best, closest, (kept_by_forecast, widening)),
            refusal,
            plan: best.map(outcome),
            closest: closest.map(outcome),
            frontier: search.frontier().into_iter().map(candidate).collect(),
            search: SearchSummary { candidates: search.evaluated().len(), rounds: search.rounds() },
            missing_actions: request.missing_actions,
        })
    }
}

/// The bound's target channel (index among the targets) and the bound; refused naming
/// the field.
fn constraint(
    constraint: &PlanConstraint,
    series: &PreparedSeries,
    levels: &[f64],
) -> Result<(usize, Bound), Problem> {
    let target = series.targets.iter().position(|t| *t == constraint.channel).ok_or_else(|| {
        let known = series.targets.join(", ");
        Problem::invalid(
            "constraint.channel",
            format!("`{}` is not a target of the series (targets: {known})", constraint.channel),
        )
    })?;
    let (low, high) = (levels[0], levels[levels.len() - 1]);
    if !(low..=high).contains(&constraint.quantile) {
        return Err(Problem::invalid(
            "constraint.quantile",
            format!("{} is outside the model's range {low}–{high}", constraint.quantile),
        ));
    }
    let (field, value, upper) = match (constraint.max, constraint.min) {
        (Some(max), None) => ("constraint.max", max, true),
        (None, Some(min)) => ("constraint.min", min, false),
        _ => {
            return Err(Problem::invalid(
                "constraint.max",
                "give exactly one of `max` (stay at or under) and `min` (stay at or over)",
            ));
        }
    };
    if !value.is_finite() {
        return Err(Problem::invalid(field, format!("{value} is not a finite number")));
    }
    Ok((target, Bound { level: constraint.quantile, value, upper }))
}

/// The searched dimensions and each one's first cell in a plan's `[C, H]` future arrays.
fn dimensions(
    actions: &[ActionSpace],
    series: &PreparedSeries,
    horizon: usize,
) -> Result<(Vec<Dimension>, Vec<usize>), Problem> {
    if actions.is_empty() || actions.len() > MAX_DIMENSIONS {
        return Err(Problem::invalid(
            "actions",
            format!("1 to {MAX_DIMENSIONS} searched channels, got {}", actions.len()),
        ));
    }
    let roles = series.batch.roles();
    let mut names = BTreeSet::new();
    let mut dims = Vec::with_capacity(actions.len());
    let mut rows = Vec::with_capacity(actions.len());
    for (k, space) in actions.iter().enumerate() {
        let field = |name: &str| format!("actions[{k}].{name}");
        let position = series.inputs.iter().position(|n| *n == space.channel);
        let channel = position.map(|p| series.targets.len() + p);
        if channel.is_none_or(|c| roles[c] != Role::Action) {
            return Err(Problem::invalid(
                field("channel"),
                format!("the series has no action channel `{}`", space.channel),
            ));
        }
        if !names.insert(space.channel.as_str()) {
            return Err(Problem::invalid(field("channel"), format!("`{}` is searched twice", space.channel)));
        }
        for (name, value) in [("min", space.min), ("max", space.max), ("cost_per_unit", space.cost_per_unit)]
        {
            if !value.is_finite() {
                return Err(Problem::invalid(field(name), format!("{value} is not a finite number")));
            }
        }
        if space.max < space.min {
            return Err(Problem::invalid(field("max"), format!("{} is under min {}", space.max, space.min)));
        }
        if !(space.step.is_finite() && space.step > 0.0) {
            return Err(Problem::invalid(field("step"), format!("must be above 0, got {}", space.step)));
        }
        let levels = ((space.max - space.min) / space.step + 1e-9).floor();
        if levels >= MAX_LEVELS {
            return Err(Problem::invalid(
                field("step"),
                format!("{levels} levels between min and max; at most {MAX_LEVELS} (raise the step)"),
            ));
        }
        if space.cost_per_unit < 0.0 {
            return Err(Problem::invalid(field("cost_per_unit"), "a cost cannot be negative"));
        }
        let segment_len = space.change_every.unwrap_or(horizon);
        if !(1..=horizon).contains(&segment_len) {
            return Err(Problem::invalid(
                field("change_every"),
                format!("must be 1 to the horizon ({horizon}) steps, got {segment_len}"),
            ));
        }
        dims.push(Dimension {
            min: space.min,
            step: space.step,
            top: levels as usize,
            segment_len,
            cost_per_unit: space.cost_per_unit,
        });
        rows.push(channel.expect("checked above") * horizon);
    }
    Ok((dims, rows))
}

/// An evaluated schedule as the answer shows it.
fn describe(search: &Search, actions: &[ActionSpace], evaluated: &Evaluated) -> PlanCandidate {
    PlanCandidate {
        actions: actions
            .iter()
            .enumerate()
            .map(|(d, a)| (a.channel.clone(), search.per_step(&evaluated.schedule, d)))
            .collect(),
        cost: evaluated.cost,
        worst: evaluated.outcome.worst,
        breach_probability: evaluated.outcome.risk,
        meets: evaluated.outcome.meets,
    }
}

/// The index of the level nearest 0.5.
fn median_level(levels: &[f64]) -> usize {
    (0..levels.len())
        .min_by(|a, b| (levels[*a] - 0.5).abs().total_cmp(&(levels[*b] - 0.5).abs()))
        .unwrap_or(0)
}

/// The answer in one sentence; `uncertain` holds how many schedules kept the bound by
/// their forecast alone and the model's effect widening.
fn detail(
    constraint: &PlanConstraint,
    search: &Search,
    best: Option<usize>,
    closest: Option<usize>,
    uncertain: (usize, f64),
) -> String {
    let (sign, value) = match (constraint.max, constraint.min) {
        (Some(max), _) => ("≤", max),
        (_, min) => ("≥", min.unwrap_or_default()),
    };
    let bound = format!("{} q{} {sign} {value}", constraint.channel, constraint.quantile);
    let evaluated = search.evaluated();
    match (best, closest) {
        (None, _) if uncertain.0 > 0 => format!(
            "no schedule can be vouched for: {} of {} schedules evaluated keep {bound} by their forecast, \
             but none once each predicted effect is taken as uncertain by ±{:.0} % of its size (the \
             model's effect intervals); the model cannot tell whether they would keep it",
            uncertain.0,
            evaluated.len(),
            100.0 * uncertain.1
        ),
        (Some(best), _) => format!(
            "the cheapest of {} schedules evaluated keeps {bound} at every step, at a cost of {:.4}",
            evaluated.len(),
            evaluated[best].cost
        ),
        (None, Some(closest)) => format!(
            "none of {} schedules evaluated keeps {bound} at every step; the least risky reaches {:.4} \
             (breach probability {:.3}): widen the action range, relax the bound or shorten the horizon",
            evaluated.len(),
            evaluated[closest].outcome.worst,
            evaluated[closest].outcome.risk
        ),
        (None, None) => format!("no schedule was evaluated for {bound}"),
    }
}
