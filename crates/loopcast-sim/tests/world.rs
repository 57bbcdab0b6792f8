//! Properties of the SRE world: determinism, exact twins, conservation, monotone response
//! to replicas, Little's law, and clean masks.

use loopcast_core::Frequency;
use loopcast_sim::policy::{Variant, future_variants, history_plan};
use loopcast_sim::{
    ActionPlan, EpisodeSpec, ParamRanges, Run, TARGET_CHANNELS, TARGETS, Topology, World, sre_episode,
};
use proptest::prelude::*;

const DAY_5M: usize = 288;

fn world(seed: u64, steps: usize) -> World {
    World::new(seed, ParamRanges::default().draw(seed), Frequency::minutes(5), steps).unwrap()
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-9 * a.abs().max(b.abs()).max(1.0)
}

#[test]
fn same_seed_and_plan_give_identical_runs_and_seeds_differ() {
    let a = world(11, DAY_5M);
    let plan = history_plan(&a);
    assert_eq!(a.run(&plan).unwrap(), world(11, DAY_5M).run(&plan).unwrap());
    let b = world(12, DAY_5M);
    assert_ne!(a.params(), b.params());
    assert_ne!(a.demand_rps(), b.demand_rps());
    assert_ne!(
        a.run(&plan).unwrap().series.channels[0].values,
        b.run(&plan).unwrap().series.channels[0].values
    );
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    /// Twins agree on everything, observed and true, before the first step where their
    /// plans differ, and share every exogenous draw after it.
    #[test]
    fn twins_are_identical_before_the_first_differing_action(seed in 0u64..10_000, split in 1usize..DAY_5M, k in 2usize..6) {
        let world = world(seed, DAY_5M);
        let base = history_plan(&world);
        let plans: Vec<ActionPlan> = future_variants(&world, &base, split, k).into_iter().map(|(_, p)| p).collect();
        let runs = world.twins(&plans).unwrap();
        for (plan, run) in plans.iter().zip(&runs) {
            let first = plans[0].first_difference(plan).unwrap_or(DAY_5M);
            prop_assert!(first >= split);
            prop_assert_eq!(run.series.slice(0..first), runs[0].series.slice(0..first));
            prop_assert_eq!(&run.truth.served[..first], &runs[0].truth.served[..first]);
            prop_assert_eq!(&run.truth.arrived[..first], &runs[0].truth.arrived[..first]);
            for c in 0..TARGETS {
                prop_assert_eq!(&run.series.channels[c].observed, &runs[0].series.channels[c].observed);
            }
        }
    }

    /// Every departing plan changes the base plan somewhere after the split.
    #[test]
    fn departures_always_change_the_plan(seed in 0u64..10_000, split in 1usize..DAY_5M - 1, k in 2usize..6) {
        let world = world(seed, DAY_5M);
        let base = history_plan(&world);
        for (kind, plan) in future_variants(&world, &base, split, k).into_iter().skip(1) {
            let first = base.first_difference(&plan);
            prop_assert!(first.is_some_and(|step| step >= split), "{:?} at {:?}", kind, first);
        }
    }

    /// Every step, in both worlds: arrived = served + shed + change in backlog, with
    /// finite latency and utilisation at most 1.
    #[test]
    fn requests_are_conserved_every_step(seed in 0u64..10_000, replicas in 1u32..12, two_tier in any::<bool>()) {
        let topology = if two_tier { Topology::TwoTier } else { Topology::Single };
        let world = world(seed, DAY_5M).with_topology(topology);
        let mut plan = history_plan(&world);
        // Under-provision half of the day so that backlog and shedding happen.
        for r in &mut plan.replicas[DAY_5M / 2..] {
            *r = replicas;
        }
        let truth = world.run(&plan).unwrap().truth;
        let mut previous = 0.0;
        for t in 0..DAY_5M {
            let balance = truth.served[t] + truth.shed[t] + truth.backlog[t] - previous;
            prop_assert!(close(truth.arrived[t], balance), "step {}: arrived {} vs {}", t, truth.arrived[t], balance);
            prop_assert!(truth.latency_p95_ms[t].is_finite() && truth.utilisation[t] <= 1.0, "step {}", t);
            previous = truth.backlog[t];
        }
    }

    /// All else equal, more replicas never raise utilisation, backlog or mean latency,
    /// once the extra replicas are ready; fewer never lower them.
    #[test]
    fn more_replicas_never_hurt(seed in 0u64..10_000, change in 0usize..DAY_5M, delta in 1u32..8, down in any::<bool>()) {
        let world = world(seed, DAY_5M);
        let base = history_plan(&world);
        let mut other = base.clone();
        for r in &mut other.replicas[change..] {
            *r = if down { r.saturating_sub(delta).max(1) } else { *r + delta };
        }
        let (more, fewer) = if down { (&base, &other) } else { (&other, &base) };
        let more = world.run(more).unwrap().truth;
        let fewer = world.run(fewer).unwrap().truth;
        for t in 0..DAY_5M {
            let tolerance = |x: f64| 1e-9 * x.abs().max(1.0);
            prop_assert!(more.utilisation[t] <= fewer.utilisation[t] + tolerance(fewer.utilisation[t]), "utilisation at {}", t);
            prop_assert!(more.backlog[t] <= fewer.backlog[t] + tolerance(fewer.backlog[t]), "backlog at {}", t);
            prop_assert!(more.mean_latency_ms[t] <= fewer.mean_latency_ms[t] + tolerance(fewer.mean_latency_ms[t]), "latency at {}", t);
            prop_assert!(more.shed[t] <= fewer.shed[t] + tolerance(fewer.shed[t]), "shed at {}", t);
        }
        // And the difference is real once the change has taken effect somewhere.
        let ready = (change + world.startup_steps()).min(DAY_5M - 1);
        prop_assert!(more.capacity_rps[ready] > fewer.capacity_rps[ready] || more.effective_replicas[ready] == fewer.effective_replicas[ready]);
    }

    /// Nothing negative, nothing non-finite, and the masks are exactly the dropped scrapes.
    #[test]
    fn values_are_finite_and_masks_mark_dropped_scrapes(seed in 0u64..10_000) {
        let ranges = ParamRanges::from_toml_str("scrape_miss_prob = [0.01, 0.2]\nscrape_outages_per_day = [0.5, 3]").unwrap();
        let world = World::new(seed, ranges.draw(seed), Frequency::minutes(1), 3 * DAY_5M).unwrap();
        let run = world.run(&history_plan(&world)).unwrap();
        let mut missing = 0;
        for (c, channel) in run.series.channels.iter().enumerate() {
            for t in 0..run.series.len() {
                let value = channel.values[t];
                prop_assert!(value.is_finite() && value >= 0.0, "{} at {}: {}", channel.spec.name, t, value);
                let expected = if c < TARGETS { world.scraped()[t][c] } else { true };
                prop_assert_eq!(channel.observed[t], expected, "{} at {}", &channel.spec.name, t);
                if !channel.observed[t] {
                    prop_assert_eq!(value, 0.0);
                    missing += 1;
                }
            }
        }
        prop_assert!(missing > 0, "with a miss probability of at least 1 %, some scrapes drop");
        let truth = &run.truth;
        for field in [&truth.served, &truth.shed, &truth.backlog, &truth.latency_p95_ms, &truth.queue_depth, &truth.memory_mb] {
            prop_assert!(field.iter().all(|v| v.is_finite() && *v >= 0.0));
        }
    }
}

/// Little's law on the backlog: the time-average number waiting equals the departure rate
/// times the mean wait, up to what is still waiting when the run ends (stated tolerance:
/// 2 %).
#[test]
fn littles_law_holds_on_long_runs() {
    let ranges = ParamRanges::from_toml_str(
        "queue_ttl_minutes = 120\nbase_rps = 1000\ncpu_ms_per_request = 10\ncores_per_replica = 2",
    )
    .unwrap();
    let mut checked = 0;
    for seed in 0..6 {
        let steps = 14 * DAY_5M;
        let world = World::new(seed, ranges.draw(seed), Frequency::minutes(5), steps).unwrap();
        // 200 rps per replica; five replicas cope off-peak and fall behind at the peak.
        let truth = world.run(&ActionPlan::constant(steps, 5)).unwrap().truth;
        let mean_backlog = truth.backlog.iter().sum::<f64>() / steps as f64;
        let departures = truth.departed.iter().sum::<f64>();
        let mean_wait = truth.departed_wait_steps.iter().sum::<f64>() / departures;
        let throughput = departures / steps as f64;
        assert!(mean_backlog > 1.0, "seed {seed}: the run never queues (mean backlog {mean_backlog})");
        let error = (mean_backlog - throughput * mean_wait).abs() / mean_backlog;
        assert!(error < 0.02, "seed {seed}: L = {mean_backlog}, λW = {}", throughput * mean_wait);
        checked += 1;
    }
    assert_eq!(checked, 6);
}

#[test]
fn a_deploy_changes_cost_only_from_its_step() {
    let world = world(3, DAY_5M);
    let base = ActionPlan::constant(DAY_5M, 4);
    let mut deployed = base.clone();
    deployed.deploy[100] = true;
    let runs = world.twins(&[base, deployed]).unwrap();
    assert_eq!(runs[0].series.slice(0..100), runs[1].series.slice(0..100));
    let errors = TARGET_CHANNELS.iter().position(|c| *c == "error_rate").unwrap();
    let bump = |run: &Run| run.truth.error_rate[100];
    assert!(bump(&runs[1]) >= bump(&runs[0]));
    assert_eq!(runs[1].series.channels[TARGETS + 2].values[100], 1.0, "the deploy channel shows the deploy");
    assert!(runs[0].series.channels[errors].values.iter().all(|v| (0.0..=1.0).contains(v)));
}

#[test]
fn bad_plans_and_frequencies_are_refused_with_the_reason() {
    let world = world(1, 10);
    let err = world.run(&ActionPlan::constant(9, 2)).unwrap_err();
    assert!(err.to_string().contains("9 steps"), "{err}");
    let err = world.run(&ActionPlan::constant(10, 0)).unwrap_err();
    assert!(err.to_string().contains("`replicas` is 0 at step 0"), "{err}");
    let err = World::new(1, ParamRanges::default().draw(1), Frequency::hours(24), 10).unwrap_err();
    assert!(err.to_string().contains("10s to 1h"), "{err}");
}

#[test]
fn episodes_share_the_history_and_differ_after_it() {
    let spec = EpisodeSpec {
        context: 256,
        horizon: 64,
        plans: 6,
        frequency: Frequency::minutes(5),
        topology: Topology::Single,
    };
    let episode = sre_episode(9, &ParamRanges::default(), spec).unwrap();
    assert_eq!(episode.history.len(), 256);
    assert_eq!(episode.plans.len(), 6);
    assert_eq!(episode.plans[0].0, Variant::Base);
    assert!(
        episode.futures.iter().all(|f| f.len() == 64 && f.first_cell == episode.history.first_cell + 256)
    );
    assert!(episode.plans.iter().all(|(_, p)| p.len() == 64));
    // Every truth starts with the same history.
    for truth in &episode.truths {
        assert_eq!(&truth.served[..256], &episode.truths[0].served[..256]);
    }
    // At least one candidate changes what happens.
    assert!(episode.futures.iter().skip(1).any(|f| f != &episode.futures[0]));
    let err = sre_episode(9, &ParamRanges::default(), EpisodeSpec { horizon: 0, ..spec }).unwrap_err();
    assert!(err.to_string().contains("at least 1"), "{err}");
}

#[test]
fn a_redrawn_world_keeps_its_past_and_what_is_known_and_draws_its_future_again() {
    let world = world(11, 2 * DAY_5M);
    let mut plan = ActionPlan::constant(2 * DAY_5M, 4);
    plan.deploy[DAY_5M + 10] = true;
    let original = world.run(&plan).unwrap();
    let redrawn = world.redrawn(DAY_5M, 0);
    let again = redrawn.run(&plan).unwrap();
    assert_eq!(original.series.slice(0..DAY_5M), again.series.slice(0..DAY_5M), "the past is kept");
    assert_eq!(world.scraped(), redrawn.scraped(), "which scrapes arrive is known in advance");
    assert_ne!(&world.demand_rps()[DAY_5M..], &redrawn.demand_rps()[DAY_5M..], "the demand is new");
    let costs = |w: &World| w.cost_factors(&plan.deploy)[DAY_5M + 10];
    assert_ne!(costs(&world), costs(&redrawn), "so is the cost of a version deployed after the split");
    // The same draw is the same world; another draw is another one.
    assert_eq!(world.redrawn(DAY_5M, 0).demand_rps(), redrawn.demand_rps());
    assert_ne!(world.redrawn(DAY_5M, 1).demand_rps(), redrawn.demand_rps());
    // The demand goes on from where the history left it, not from a fresh start.
    let jump = |w: &World| (w.demand_rps()[DAY_5M] / w.demand_rps()[DAY_5M - 1]).ln().abs();
    assert!(jump(&redrawn) < 0.5, "demand jumps by {} at the split", jump(&redrawn));
}

#[test]
fn redrawn_futures_replay_the_episode_plans_in_new_futures() {
    let spec = EpisodeSpec {
        context: 256,
        horizon: 64,
        plans: 4,
        frequency: Frequency::minutes(5),
        topology: Topology::Single,
    };
    let episode = sre_episode(21, &ParamRanges::default(), spec).unwrap();
    assert_eq!(episode.spec(), spec);
    let draws = episode.redrawn_futures(8).unwrap();
    assert_eq!(draws.len(), 8);
    for futures in &draws {
        assert_eq!(futures.len(), 4);
        for (future, (_, plan)) in futures.iter().zip(&episode.plans) {
            // The plans' own channels are the episode's plans, step for step.
            let replicas = &future.channels[TARGETS].values;
            assert_eq!(replicas, &plan.replicas.iter().map(|r| f64::from(*r)).collect::<Vec<_>>());
        }
        assert_ne!(futures[0], episode.futures[0], "the future is drawn again");
    }
    assert_eq!(draws, episode.redrawn_futures(8).unwrap(), "deterministic");
    // An episode whose plans its service would not have made is refused.
    let mut altered = episode.clone();
    altered.plans[1].1.replicas[0] += 1;
    let err = altered.redrawn_futures(1).unwrap_err();
    assert!(err.to_string().contains("plans differ"), "{err}");
}
