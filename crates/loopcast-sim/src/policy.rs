//! Where action plans come from in generated data: a history played by a plausible
//! operator (a lagging autoscaler, occasional deploys, traffic shifts and rate limits),
//! and candidate futures that depart from it.
//!
//! The history policy reacts to the demand of the previous hour, as a horizontal
//! autoscaler does, so historical replica counts are confounded with demand exactly as in
//! real telemetry; the future variants break that link, which is what lets a model learn
//! the effect of an action rather than its correlation with load.

use rand::Rng;
use rand_chacha::ChaCha8Rng;

use crate::rng::{stream, stream_at};
use crate::{ActionPlan, World};

/// The plan an autoscaling operator would have played over the whole world.
pub fn history_plan(world: &World) -> ActionPlan {
    let mut rng = stream(world.seed(), "policy/history");
    let p = world.params();
    let n = world.len();
    let dt = world.step_seconds();
    let target_utilisation = rng.random_range(0.35..0.75);
    let cooldown = ((rng.random_range(10.0..60.0) * 60.0) / dt).ceil().max(1.0) as usize;
    let window = ((3600.0 / dt).ceil() as usize).max(1);
    let deploys_per_day: f64 = rng.random_range(0.0..1.5);
    let shifts_per_day: f64 = rng.random_range(0.0..0.3);
    let limits_per_day: f64 = rng.random_range(0.0..0.1);
    let max_replicas = max_replicas(world);

    let demand = world.demand_rps();
    let per_replica = p.replica_capacity_rps();
    let desired =
        |load: f64| ((load / (target_utilisation * per_replica)).ceil() as u32).clamp(1, max_replicas);
    let per_step = |per_day: f64| per_day * dt / 86_400.0;
    let mut plan = ActionPlan::constant(n, desired(demand[0]));

    // Deploys, traffic shifts and rate limits first: shifts and limits last a few hours.
    let (mut weight, mut weight_left) = (1.0, 0usize);
    let (mut limit, mut limit_left) = (None, 0usize);
    for (t, &now) in demand.iter().enumerate() {
        if weight_left == 0 {
            weight = 1.0;
            if rng.random::<f64>() < per_step(shifts_per_day) {
                weight = rng.random_range(0.4..1.6);
                weight_left = (rng.random_range(1.0..8.0) * 3600.0 / dt) as usize;
            }
        }
        weight_left = weight_left.saturating_sub(1);
        if limit_left == 0 {
            limit = None;
            if rng.random::<f64>() < per_step(limits_per_day) {
                limit = Some(now * weight * rng.random_range(0.6..1.2));
                limit_left = (rng.random_range(0.5..4.0) * 3600.0 / dt) as usize;
            }
        }
        limit_left = limit_left.saturating_sub(1);
        plan.traffic_weight[t] = weight;
        plan.rate_limit_rps[t] = limit;
        plan.deploy[t] = rng.random::<f64>() < per_step(deploys_per_day);
    }

    // The autoscaler targets CPU: it sees the CPU work of the last hour (load times the
    // per-request cost of the version running) and scales after a cooldown.
    let cost = world.cost_factors(&plan.deploy);
    let (mut replicas, mut last_change) = (plan.replicas[0], 0usize);
    for t in 0..n {
        let from = t.saturating_sub(window);
        let to = t.max(1);
        let work: f64 = (from..to).map(|s| demand[s] * plan.traffic_weight[s] * cost[s]).sum();
        let want = desired(work / (to - from) as f64);
        if want != replicas && t - last_change >= cooldown {
            replicas = want;
            last_change = t;
        }
        plan.replicas[t] = replicas;
    }
    plan
}

/// The kinds of departure a candidate future takes from the base plan.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Variant {
    /// The base plan, unchanged (the policy carries on).
    Base,
    /// Freeze the replica count at its value just before the split.
    Hold,
    /// Multiply the base plan's replicas by a factor from 0.4 to 0.8 or 1.25 to 2.5 (at
    /// least one replica either way).
    Scale,
    /// Set the replica count to a new level from a random step on.
    Step,
    /// Deploy at a random step.
    Deploy,
    /// Move part of the traffic away (weight 0.3–0.8) or onto the service (1.25–1.8)
    /// from a random step on.
    TrafficShift,
    /// Impose a rate limit around the current demand from a random step on.
    RateLimit,
}

const DEPARTURES: [Variant; 6] = [
    Variant::Hold,
    Variant::Scale,
    Variant::Step,
    Variant::Deploy,
    Variant::TrafficShift,
    Variant::RateLimit,
];

/// Draws of a departure before one that changes nothing is accepted.
const DEPARTURE_DRAWS: usize = 8;

/// `k` candidate plans that follow `base` before step `split` and depart from it after:
/// the first is `base` itself, the others a random [`Variant`] each, drawn from the
/// world's seed. A departure always changes the plan somewhere after `split` (a draw that
/// would change nothing — holding a count the base never changes, scaling one replica by
/// 1.2 — is drawn again), and it starts in the first half of the future, so its effect
/// has time to show. Returns the plans and their kinds.
pub fn future_variants(
    world: &World,
    base: &ActionPlan,
    split: usize,
    k: usize,
) -> Vec<(Variant, ActionPlan)> {
    let mut out = Vec::with_capacity(k);
    if k == 0 {
        return out;
    }
    out.push((Variant::Base, base.clone()));
    for i in 1..k {
        let mut rng = stream_at(world.seed(), "policy/variant", i as u64);
        let mut departure = (Variant::Base, base.clone());
        for _ in 0..DEPARTURE_DRAWS {
            let kind = DEPARTURES[rng.random_range(0..DEPARTURES.len())];
            departure = (kind, depart(world, base, split, kind, &mut rng));
            if base.first_difference(&departure.1).is_some() {
                break;
            }
        }
        out.push(departure);
    }
    out
}

/// A factor away from 1 by at least a quarter: from `low..0.8` or `1.25..high`.
fn away_from_one(rng: &mut ChaCha8Rng, low: f64, high: f64) -> f64 {
    if rng.random::<bool>() { rng.random_range(low..0.8) } else { rng.random_range(1.25..high) }
}

fn depart(world: &World, base: &ActionPlan, split: usize, kind: Variant, rng: &mut ChaCha8Rng) -> ActionPlan {
    let mut plan = base.clone();
    let n = plan.len();
    if split >= n {
        return plan;
    }
    let from = rng.random_range(split..split + (n - split).div_ceil(2));
    let max = max_replicas(world);
    let before = base.replicas[split.saturating_sub(1)];
    match kind {
        Variant::Base => {}
        Variant::Hold => plan.replicas[split..].fill(before),
        Variant::Scale => {
            // At least one replica up or down, whatever the rounding.
            let factor = away_from_one(rng, 0.4, 2.5);
            for r in &mut plan.replicas[split..] {
                let scaled = (f64::from(*r) * factor).round() as u32;
                let moved = if factor > 1.0 { scaled.max(*r + 1) } else { scaled.min(r.saturating_sub(1)) };
                *r = moved.clamp(1, max);
            }
        }
        Variant::Step => {
            let mut level = rng.random_range(1..=(2 * before).clamp(2, max));
            if level == before {
                level = if before < max { before + 1 } else { before - 1 };
            }
            plan.replicas[from..].fill(level);
        }
        Variant::Deploy => plan.deploy[from] = true,
        Variant::TrafficShift => plan.traffic_weight[from..].fill(away_from_one(rng, 0.3, 1.8)),
        Variant::RateLimit => {
            let limit = world.demand_rps()[from] * rng.random_range(0.5..1.1);
            plan.rate_limit_rps[from..].fill(Some(limit));
        }
    }
    plan
}

/// The most replicas a plan asks for: enough for three times the mean daily peak at 50 %.
fn max_replicas(world: &World) -> u32 {
    let p = world.params();
    ((3.0 * p.peak_rps() / (0.5 * p.replica_capacity_rps())).ceil() as u32).clamp(2, 10_000)
}
