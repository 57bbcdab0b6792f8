//! The held-out two-tier world: the same service in front of a downstream of fixed
//! capacity, where the SRE world's "more replicas, lower latency" stops holding.

use loopcast_core::Frequency;
use loopcast_sim::policy::history_plan;
use loopcast_sim::{ActionPlan, ParamRanges, Topology, World};

const DAY_5M: usize = 288;

fn world(seed: u64, topology: Topology) -> World {
    World::new(seed, ParamRanges::default().draw(seed), Frequency::minutes(5), DAY_5M)
        .unwrap()
        .with_topology(topology)
}

#[test]
fn the_two_tier_world_keeps_the_demand_and_the_operator_and_never_serves_more() {
    for seed in 0..20 {
        let (single, two) = (world(seed, Topology::Single), world(seed, Topology::TwoTier));
        assert_eq!(single.topology(), Topology::Single);
        assert_eq!(two.topology(), Topology::TwoTier);
        assert!(single.downstream().is_none() && two.downstream().is_some());
        assert_eq!(single.demand_rps(), two.demand_rps());
        assert_eq!(single.scraped(), two.scraped());
        let plan = history_plan(&single);
        assert_eq!(plan, history_plan(&two), "the operator plays the same plan in both");
        let (a, b) = (single.run(&plan).unwrap().truth, two.run(&plan).unwrap().truth);
        assert_eq!(a.arrived, b.arrived);
        let (mut served_a, mut served_b) = (0.0, 0.0);
        for t in 0..DAY_5M {
            assert!(b.capacity_rps[t] <= a.capacity_rps[t] * (1.0 + 1e-12), "seed {seed}, step {t}");
            // The extra hop only adds time.
            assert!(b.mean_latency_ms[t] >= a.mean_latency_ms[t] || b.capacity_rps[t] < a.capacity_rps[t]);
            served_a += a.served[t];
            served_b += b.served[t];
            assert!(served_b <= served_a * (1.0 + 1e-12) + 1e-9, "seed {seed}, step {t}");
        }
    }
}

/// With the replicas held at the pool and at three times it: the extra replicas lower the
/// CPU at every step in both worlds; in the SRE world they never raise latency, in the
/// two-tier world they shrink the capacity wherever the downstream binds, and raise
/// latency there (or, where the backlog already waits out its TTL, the requests shed).
#[test]
fn past_the_pool_more_replicas_lower_cpu_but_raise_latency_where_the_downstream_binds() {
    let mut binding_steps = 0;
    for seed in 0..40 {
        let two = world(seed, Topology::TwoTier);
        let pool = two.downstream().unwrap().pool_replicas.ceil() as u32;
        let (at_pool, past_pool) =
            (ActionPlan::constant(DAY_5M, pool), ActionPlan::constant(DAY_5M, 3 * pool));
        for topology in [Topology::Single, Topology::TwoTier] {
            let world = world(seed, topology);
            let (few, many) = (world.run(&at_pool).unwrap().truth, world.run(&past_pool).unwrap().truth);
            for t in 0..DAY_5M {
                let tolerance = 1e-9 * few.cpu_util[t].max(1.0);
                assert!(many.cpu_util[t] <= few.cpu_util[t] + tolerance, "seed {seed} {topology:?} step {t}");
                match topology {
                    Topology::Single => assert!(
                        many.latency_p95_ms[t] <= few.latency_p95_ms[t] * (1.0 + 1e-9),
                        "seed {seed} step {t}"
                    ),
                    Topology::TwoTier => {
                        let d = world.downstream().unwrap();
                        let downstream = d.capacity_with(few.effective_replicas[t]);
                        if (few.capacity_rps[t] - downstream).abs() <= 1e-9 * downstream {
                            binding_steps += 1;
                            assert!(many.capacity_rps[t] < few.capacity_rps[t], "seed {seed} step {t}");
                            // Where the backlog's drain time is already at the TTL, latency
                            // is capped and the harm shows as requests shed instead.
                            let ttl = world.params().queue_ttl_minutes * 60.0;
                            if few.backlog[t] / few.capacity_rps[t] >= ttl {
                                assert!(many.shed[t] >= few.shed[t], "seed {seed} step {t}");
                            } else {
                                assert!(
                                    many.latency_p95_ms[t] > few.latency_p95_ms[t],
                                    "seed {seed} step {t}: {} vs {}",
                                    many.latency_p95_ms[t],
                                    few.latency_p95_ms[t]
                                );
                            }
                        }
                    }
                }
            }
        }
    }
    assert!(binding_steps > 100, "the downstream bound at only {binding_steps} steps");
}
