//! Simulator throughput, single-threaded (so the figures are per core): channel-steps per
//! second of the SRE world (one plan per world, and eight twins per world) and of the
//! synthetic prior, against drawing one ChaCha8 standard normal per channel-step measured
//! in the same run — the cost of the randomness alone.
//!
//! ```sh
//! cargo bench --workspace --bench simulate
//! ```

use std::hint::black_box;
use std::time::Instant;

use loopcast_core::Frequency;
use loopcast_sim::prior::{PriorSpec, prior_series};
use loopcast_sim::{ActionPlan, ParamRanges, World, channel_specs, policy};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, StandardNormal};

/// One week at five minutes.
const STEPS: usize = 2016;
const SEEDS: u64 = 200;
const REPEATS: usize = 3;

/// Fastest of a few runs of `f`, which returns the channel-steps it produced.
fn measure(mut f: impl FnMut() -> usize) -> (f64, usize) {
    (0..REPEATS)
        .map(|_| {
            let start = Instant::now();
            let count = f();
            (start.elapsed().as_secs_f64(), count)
        })
        .min_by(|a, b| a.0.total_cmp(&b.0))
        .expect("at least one run")
}

fn main() {
    let channels = channel_specs().len();
    let ranges = ParamRanges::default();
    let five_minutes = Frequency::minutes(5);

    let (baseline, baseline_count) = measure(|| {
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let n = SEEDS as usize * STEPS * channels;
        let mut sum = 0.0f64;
        for _ in 0..n {
            let z: f64 = StandardNormal.sample(&mut rng);
            sum += z;
        }
        black_box(sum);
        n
    });
    let per_baseline = baseline / baseline_count as f64;

    let sre = measure(|| {
        let mut count = 0;
        for seed in 0..SEEDS {
            let world = World::new(seed, ranges.draw(seed), five_minutes, STEPS).expect("valid world");
            let plan = policy::history_plan(&world);
            let run = world.run(&plan).expect("valid plan");
            count += run.series.len() * run.series.channels.len();
            black_box(run);
        }
        count
    });
    let twins = measure(|| {
        let mut count = 0;
        for seed in 0..SEEDS / 4 {
            let world = World::new(seed, ranges.draw(seed), five_minutes, STEPS).expect("valid world");
            let base = policy::history_plan(&world);
            let plans: Vec<ActionPlan> =
                policy::future_variants(&world, &base, STEPS / 2, 8).into_iter().map(|(_, p)| p).collect();
            for run in world.twins(&plans).expect("valid plans") {
                count += run.series.len() * run.series.channels.len();
                black_box(run);
            }
        }
        count
    });
    let prior = measure(|| {
        let mut count = 0;
        for seed in 0..SEEDS {
            let sample =
                prior_series(seed, PriorSpec { length: STEPS, ..PriorSpec::default() }).expect("valid spec");
            count += sample.series.len() * sample.series.channels.len();
            black_box(sample);
        }
        count
    });

    println!(
        "{:<44} {:>14} {:>16} {:>12}",
        "measurement (1 thread, best of 3)", "channel-steps", "channel-steps/s", "× baseline"
    );
    let row = |label: &str, (secs, count): (f64, usize)| {
        let per = secs / count as f64;
        println!("{label:<44} {count:>14} {:>16.0} {:>12.2}", 1.0 / per, per / per_baseline);
    };
    row("baseline: one ChaCha8 normal per channel-step", (baseline, baseline_count));
    row("SRE world, one plan per world (14 channels)", sre);
    row("SRE world, 8 twins per world", twins);
    row("synthetic prior (1-4 channels)", prior);
}
