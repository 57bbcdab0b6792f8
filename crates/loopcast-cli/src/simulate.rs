//! `loopcast simulate`: synthetic telemetry from the SRE world (with counterfactual twins)
//! or from the synthetic prior, written as long-format Parquet.

use std::path::PathBuf;
use std::sync::atomic::Ordering;

use anyhow::{Context, Result, bail};
use clap::{Args, ValueEnum};
use indicatif::{ProgressBar, ProgressStyle};
use loopcast_core::Frequency;
use loopcast_data::LongSeriesWriter;
use loopcast_sim::policy::{future_variants, history_plan};
use loopcast_sim::prior::{PriorSpec, prior_series};
use loopcast_sim::{ActionPlan, ParamRanges, Topology, World};

use crate::{Interrupted, UsageError, interrupt_flag};
use serde::Serialize;

/// Arguments of `loopcast simulate`.
#[derive(Debug, Args)]
pub(crate) struct SimulateArgs {
    /// Which generator: the SRE service world, the two-tier world (the same services in
    /// front of a downstream of fixed capacity, held out from training), or the synthetic
    /// prior of plain shapes.
    #[arg(long, value_enum, default_value_t = WorldArg::Sre)]
    world: WorldArg,
    /// Number of series (services); series `i` uses seed `seed + i`.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..))]
    series: u64,
    /// Steps per series.
    #[arg(long, default_value_t = 2016, value_parser = clap::value_parser!(u64).range(8..=10_000_000))]
    length: u64,
    /// Grid step (SRE world: 10s to 1h, default 5m; prior: drawn per series when absent).
    #[arg(long)]
    freq: Option<Frequency>,
    /// Counterfactual twins per series (SRE world): plan 0 carries the history's
    /// autoscaler on, plans 1.. depart from it over the last `--horizon` steps. With more
    /// than one, the file gets a `scenario` column (`plan-0`, `plan-1`, ...).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..=64))]
    plans: u64,
    /// Steps at the end over which the twins' plans may differ (default: a quarter of
    /// `--length`).
    #[arg(long)]
    horizon: Option<u64>,
    /// Channels per prior series (1 to 16; drawn from 1 to 4 when absent).
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..=16))]
    channels: Option<u64>,
    /// Seed of the first series.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// TOML file pinning or narrowing SRE world parameters (see docs/SIMULATOR.md).
    #[arg(long)]
    params: Option<PathBuf>,
    /// Output Parquet file (written atomically).
    #[arg(long)]
    out: PathBuf,
    /// Print the summary as JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Serialize)]
#[serde(rename_all = "kebab-case")]
enum WorldArg {
    Sre,
    TwoTier,
    Prior,
}

/// What was written.
#[derive(Debug, Serialize)]
struct Summary {
    file: PathBuf,
    world: WorldArg,
    series: u64,
    scenarios: u64,
    steps: u64,
    rows: u64,
    first_seed: u64,
}

/// Runs `loopcast simulate`.
pub(crate) async fn run(args: SimulateArgs) -> Result<()> {
    let length = args.length as usize;
    let ranges = match &args.params {
        Some(path) => ParamRanges::from_toml_file(path)?,
        None => ParamRanges::default(),
    };
    let horizon = args.horizon.unwrap_or(args.length / 4).max(1) as usize;
    if horizon >= length {
        bail!(UsageError(format!("--horizon {horizon} must be shorter than --length {length}")));
    }
    if args.world == WorldArg::Prior {
        if args.plans > 1 {
            bail!(UsageError("--plans applies to the SRE world only (the prior has no actions)".into()));
        }
        if args.params.is_some() || args.horizon.is_some() {
            bail!(UsageError("--params and --horizon apply to the SRE world only".into()));
        }
    } else if args.channels.is_some() {
        bail!(UsageError("--channels applies to the prior only (the SRE world has fixed channels)".into()));
    }
    let with_scenarios = args.plans > 1;
    let mut writer = LongSeriesWriter::create(&args.out, with_scenarios)?;
    let progress = ProgressBar::new(args.series).with_style(
        ProgressStyle::with_template("{bar:30} {pos}/{len} series ({per_sec}, eta {eta}) {msg}")
            .expect("valid template"),
    );
    let interrupted = interrupt_flag();
    let mut rows = 0u64;
    for i in 0..args.series {
        if interrupted.load(Ordering::SeqCst) {
            progress.abandon_with_message("interrupted");
            bail!(Interrupted(
                "interrupted: no output written (the run is deterministic; start it again)".into()
            ));
        }
        let seed = args.seed.wrapping_add(i);
        match args.world {
            WorldArg::Sre | WorldArg::TwoTier => {
                let frequency = args.freq.unwrap_or(Frequency::minutes(5));
                let topology =
                    if args.world == WorldArg::TwoTier { Topology::TwoTier } else { Topology::Single };
                let world = World::new(seed, ranges.draw(seed), frequency, length)
                    .with_context(|| format!("series {i} (seed {seed})"))?
                    .with_topology(topology);
                let base = history_plan(&world);
                let plans: Vec<ActionPlan> =
                    future_variants(&world, &base, length - horizon, args.plans as usize)
                        .into_iter()
                        .map(|(_, plan)| plan)
                        .collect();
                for (k, run) in world.twins(&plans)?.iter().enumerate() {
                    let label = format!("plan-{k}");
                    writer.write_series(&run.series, with_scenarios.then_some(label.as_str()))?;
                    rows += (run.series.len() * run.series.channels.len()) as u64;
                }
            }
            WorldArg::Prior => {
                let spec =
                    PriorSpec { length, frequency: args.freq, channels: args.channels.map(|c| c as usize) };
                let sample = prior_series(seed, spec).with_context(|| format!("series {i} (seed {seed})"))?;
                writer.write_series(&sample.series, None)?;
                rows += (sample.series.len() * sample.series.channels.len()) as u64;
            }
        }
        progress.inc(1);
    }
    let file = writer.finish()?;
    progress.finish_and_clear();
    let summary = Summary {
        file,
        world: args.world,
        series: args.series,
        scenarios: args.plans,
        steps: args.length,
        rows,
        first_seed: args.seed,
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&summary)?);
    } else {
        println!(
            "wrote {} rows ({} series × {} scenario(s) × {} steps) to {}",
            summary.rows,
            summary.series,
            summary.scenarios,
            summary.steps,
            summary.file.display()
        );
    }
    Ok(())
}
