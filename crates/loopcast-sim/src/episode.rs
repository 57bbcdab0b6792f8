//! Training and evaluation episodes: one history, K candidate plans for the horizon, and
//! the K true futures those plans lead to.

use loopcast_core::{Frequency, RegularSeries};

use crate::policy::{Variant, future_variants, history_plan};
use crate::{ActionPlan, ParamRanges, ServiceParams, SimError, Truth, World};

/// Shape of an episode.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EpisodeSpec {
    /// Steps of history.
    pub context: usize,
    /// Steps of future.
    pub horizon: usize,
    /// Candidate plans (the first continues the history's policy).
    pub plans: usize,
    /// Grid step.
    pub frequency: Frequency,
}

/// A history and K counterfactual futures of one simulated service.
#[derive(Debug, Clone)]
pub struct Episode {
    /// The seed of the service.
    pub seed: u64,
    /// The service's parameters.
    pub params: ServiceParams,
    /// Observed history (`context` steps), shared by every plan.
    pub history: RegularSeries,
    /// The plans over the horizon, with what kind of departure each is.
    pub plans: Vec<(Variant, ActionPlan)>,
    /// Observed future under each plan (`horizon` steps).
    pub futures: Vec<RegularSeries>,
    /// The noise-free state under each plan, over the whole episode.
    pub truths: Vec<Truth>,
}

/// Simulates the episode of `seed`: draws a service from `ranges`, plays an autoscaling
/// operator over the history, then the candidate plans over the horizon as exact twins.
pub fn sre_episode(seed: u64, ranges: &ParamRanges, spec: EpisodeSpec) -> Result<Episode, SimError> {
    if spec.context == 0 || spec.horizon == 0 || spec.plans == 0 {
        return Err(SimError::Length(format!(
            "an episode needs context, horizon and plans of at least 1 (got {}, {}, {})",
            spec.context, spec.horizon, spec.plans
        )));
    }
    let params = ranges.draw(seed);
    let length = spec.context + spec.horizon;
    let world = World::new(seed, params.clone(), spec.frequency, length)?;
    let base = history_plan(&world);
    let plans = future_variants(&world, &base, spec.context, spec.plans);
    let runs = world.twins(&plans.iter().map(|(_, plan)| plan.clone()).collect::<Vec<_>>())?;
    let history = runs[0].series.slice(0..spec.context);
    let futures = runs.iter().map(|run| run.series.slice(spec.context..length)).collect();
    let truths = runs.into_iter().map(|run| run.truth).collect();
    let plans = plans.into_iter().map(|(kind, plan)| (kind, plan.slice(spec.context..length))).collect();
    Ok(Episode { seed, params, history, plans, futures, truths })
}
