//! The forecast and what-if services: a request prepared, run through the model worker
//! and answered per series and channel, as `POST /v1/forecast` and `POST /v1/whatif` (and
//! `loopcast forecast` and `whatif` locally) answer them.

use std::collections::BTreeSet;
use std::time::Instant;

use crate::api::{
    ForecastRequest, ForecastResponse, PlanForecast, SeriesForecast, SeriesWhatIf, WhatIfRequest,
    WhatIfResponse,
};
use crate::batcher::Plan;
use crate::prepare::{Prepared, channel_forecasts, difference, loops_per_step, own_future, prepare};
use crate::problem::Problem;
use crate::worker::Worker;

impl Worker {
    /// Forecasts every target channel of every series, as `POST /v1/forecast` does.
    pub async fn forecast(&self, request: ForecastRequest) -> Result<ForecastResponse, Problem> {
        let deadline = Instant::now() + self.timeout();
        let bounds = self.bounds();
        let prepared = prepare(
            &request.series,
            request.horizon,
            request.quantiles.as_deref(),
            &request.compute,
            request.missing_actions,
            bounds,
        )?;
        let answers = self.run(&prepared, |i| own_future(&prepared.series[i]), deadline).await?;
        let series = prepared
            .series
            .iter()
            .enumerate()
            .map(|(i, input)| {
                let (forecasts, window) = answers.of(i);
                SeriesForecast {
                    id: input.id.clone(),
                    timestamps: input.future_timestamps.clone(),
                    season: input.batch.season(0).into(),
                    channels: channel_forecasts(
                        &forecasts[0],
                        window,
                        &input.targets,
                        &prepared.levels,
                        prepared.horizon,
                    ),
                    loops: loops_per_step(&forecasts[0], window, bounds.patch_len, prepared.horizon),
                }
            })
            .collect();
        Ok(ForecastResponse {
            model: self.model_name().to_string(),
            quantiles: prepared.levels.clone(),
            missing_actions: request.missing_actions,
            series,
        })
    }

    /// Rolls K action plans out from one encoding of each history, as `POST /v1/whatif`
    /// does.
    pub async fn whatif(&self, request: WhatIfRequest) -> Result<WhatIfResponse, Problem> {
        let deadline = Instant::now() + self.timeout();
        let bounds = self.bounds();
        let prepared = prepare(
            &request.series,
            request.horizon,
            request.quantiles.as_deref(),
            &request.compute,
            request.missing_actions,
            bounds,
        )?;
        let baseline = check_plans(&request, bounds.limits.max_scenarios)?;
        let plans = (0..prepared.series.len())
            .map(|i| plan_arrays(&request, &prepared, i))
            .collect::<Result<Vec<_>, _>>()?;
        let answers = self.run(&prepared, |i| plans[i].clone(), deadline).await?;
        let series = prepared
            .series
            .iter()
            .enumerate()
            .map(|(i, input)| {
                let (forecasts, window) = answers.of(i);
                let outcome = |k: usize| {
                    channel_forecasts(
                        &forecasts[k],
                        window,
                        &input.targets,
                        &prepared.levels,
                        prepared.horizon,
                    )
                };
                let base = outcome(baseline);
                let plans = request
                    .plans
                    .iter()
                    .enumerate()
                    .map(|(k, plan)| {
                        let channels = outcome(k);
                        PlanForecast {
                            plan: plan.name.clone(),
                            difference: difference(&channels, &base),
                            channels,
                            loops: loops_per_step(&forecasts[k], window, bounds.patch_len, prepared.horizon),
                        }
                    })
                    .collect();
                SeriesWhatIf {
                    id: input.id.clone(),
                    timestamps: input.future_timestamps.clone(),
                    season: input.batch.season(0).into(),
                    plans,
                }
            })
            .collect();
        Ok(WhatIfResponse {
            model: self.model_name().to_string(),
            baseline: request.plans[baseline].name.clone(),
            quantiles: prepared.levels.clone(),
            missing_actions: request.missing_actions,
            series,
        })
    }
}

/// Checks the plans' count and names; returns the baseline's index.
fn check_plans(request: &WhatIfRequest, max_scenarios: usize) -> Result<usize, Problem> {
    let plans = &request.plans;
    if plans.is_empty() || plans.len() > max_scenarios {
        return Err(Problem::invalid(
            "plans",
            format!("1 to {max_scenarios} plans (limits.max_scenarios), got {}", plans.len()),
        ));
    }
    let mut names = BTreeSet::new();
    for (k, plan) in plans.iter().enumerate() {
        if !names.insert(plan.name.as_str()) {
            return Err(Problem::invalid(
                format!("plans[{k}].name"),
                format!("plan `{}` appears twice", plan.name),
            ));
        }
    }
    match &request.baseline {
        None => Ok(0),
        Some(name) => plans
            .iter()
            .position(|p| &p.name == name)
            .ok_or_else(|| Problem::invalid("baseline", format!("no plan is named `{name}`"))),
    }
}

/// Series `i`'s future under every plan: its own known future, overridden by each
/// plan's values for the channels it names.
fn plan_arrays(request: &WhatIfRequest, prepared: &Prepared, i: usize) -> Result<Vec<Plan>, Problem> {
    let series = &prepared.series[i];
    let horizon = prepared.horizon;
    let own = own_future(series).remove(0);
    request
        .plans
        .iter()
        .enumerate()
        .map(|(k, plan)| {
            let (mut values, mut known) = own.clone();
            for (name, planned) in &plan.actions {
                let field = format!("plans[{k}].actions.{name}");
                let Some(position) = series.inputs.iter().position(|n| n == name) else {
                    let detail = if series.targets.contains(name) {
                        format!("`{name}` is a target of series[{i}]; plans set actions and covariates")
                    } else {
                        format!("series[{i}] has no action or covariate channel `{name}`")
                    };
                    return Err(Problem::invalid(field, detail));
                };
                if planned.len() > horizon {
                    return Err(Problem::invalid(
                        field,
                        format!("{} values, more than the horizon of {horizon}", planned.len()),
                    ));
                }
                let row = (series.targets.len() + position) * horizon;
                for (t, value) in planned.iter().enumerate() {
                    if let Some(v) = value {
                        let narrow = *v as f32;
                        if !narrow.is_finite() {
                            return Err(Problem::invalid(
                                format!("{field}[{t}]"),
                                format!("{v} is out of range"),
                            ));
                        }
                        values[row + t] = narrow;
                        known[row + t] = true;
                    }
                }
            }
            Ok((values, known))
        })
        .collect()
}
