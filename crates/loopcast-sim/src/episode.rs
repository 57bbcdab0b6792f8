//! Training and evaluation episodes: one history, K candidate plans for the horizon, and
//! the K true futures those plans lead to.

use loopcast_core::{Frequency, RegularSeries};

use crate::policy::{Variant, future_variants, history_plan};
use crate::{ActionPlan, ParamRanges, ServiceParams, SimError, Topology, Truth, World};

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
    /// The world the services live in (training: always [`Topology::Single`]).
    pub topology: Topology,
}

/// A history and K counterfactual futures of one simulated service.
#[derive(Debug, Clone)]
pub struct Episode {
    /// The seed of the service.
    pub seed: u64,
    /// The service's parameters.
    pub params: ServiceParams,
    /// The world the service lives in.
    pub topology: Topology,
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
    let (world, plans) = world_and_plans(seed, params.clone(), spec)?;
    let runs = world.twins(&plans.iter().map(|(_, plan)| plan.clone()).collect::<Vec<_>>())?;
    let history = runs[0].series.slice(0..spec.context);
    let futures = runs.iter().map(|run| run.series.slice(spec.context..length)).collect();
    let truths = runs.into_iter().map(|run| run.truth).collect();
    let plans = plans.into_iter().map(|(kind, plan)| (kind, plan.slice(spec.context..length))).collect();
    Ok(Episode { seed, params, topology: spec.topology, history, plans, futures, truths })
}

/// The world of an episode and its whole plans (history and horizon).
fn world_and_plans(
    seed: u64,
    params: ServiceParams,
    spec: EpisodeSpec,
) -> Result<(World, Vec<(Variant, ActionPlan)>), SimError> {
    let world =
        World::new(seed, params, spec.frequency, spec.context + spec.horizon)?.with_topology(spec.topology);
    let base = history_plan(&world);
    let plans = future_variants(&world, &base, spec.context, spec.plans);
    Ok((world, plans))
}

impl Episode {
    /// The episode's shape.
    pub fn spec(&self) -> EpisodeSpec {
        EpisodeSpec {
            context: self.history.len(),
            horizon: self.futures.first().map_or(0, RegularSeries::len),
            plans: self.plans.len(),
            frequency: self.history.frequency,
            topology: self.topology,
        }
    }

    /// The episode's plans played again in `draws` redrawn futures of its service
    /// ([`World::redrawn`], draws `0..draws`): per draw, the observed future under every
    /// plan. The history, the service's parameters and the plans are this episode's; only
    /// what nobody could know at the forecast time — demand noise, bursts, flash crowds,
    /// measurement noise, the cost of a new version — differs. The spread of a plan's
    /// effect over the draws is what even a perfect model of the service cannot predict.
    pub fn redrawn_futures(&self, draws: usize) -> Result<Vec<Vec<RegularSeries>>, SimError> {
        let spec = self.spec();
        let (world, plans) = world_and_plans(self.seed, self.params.clone(), spec)?;
        let length = spec.context + spec.horizon;
        let same = plans.len() == self.plans.len()
            && plans
                .iter()
                .zip(&self.plans)
                .all(|((_, whole), (_, future))| whole.slice(spec.context..length) == *future);
        if !same {
            return Err(SimError::Plan(format!(
                "episode {} was not made by `sre_episode` with its parameters: its plans differ",
                self.seed
            )));
        }
        let plans: Vec<ActionPlan> = plans.into_iter().map(|(_, plan)| plan).collect();
        (0..draws as u64)
            .map(|draw| {
                let runs = world.redrawn(spec.context, draw).twins(&plans)?;
                Ok(runs.iter().map(|run| run.series.slice(spec.context..length)).collect())
            })
            .collect()
    }
}
