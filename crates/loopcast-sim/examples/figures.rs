//! Draws the figures of `docs/SIMULATOR.md` (SVG, with plotters) from the simulator itself:
//! a week of one simulated service, twins of one service under different replica plans,
//! and a sheet of synthetic-prior samples. Also prints the figures' numbers.
//!
//! ```sh
//! cargo run --release -p loopcast-sim --example figures -- docs/figures
//! ```

use std::error::Error;
use std::path::{Path, PathBuf};

use loopcast_core::{Frequency, RegularSeries};
use loopcast_sim::policy::history_plan;
use loopcast_sim::prior::{PriorSpec, prior_series};
use loopcast_sim::{ActionPlan, ParamRanges, World};
use plotters::prelude::*;

const DAY_5M: usize = 288;
const COLOURS: [RGBColor; 5] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
];

type Lines<'a> = Vec<(&'a str, Vec<f64>)>;

/// The x axis of a figure: its label and the units per step.
struct Axis(&'static str, f64);

/// Draws `panels` (title, lines) stacked in one SVG, sharing the x axis.
fn panels(
    path: &Path,
    title: &str,
    axis: Axis,
    panels: &[(&str, Lines<'_>)],
    mark: Option<f64>,
) -> Result<(), Box<dyn Error>> {
    let Axis(x_label, per_step) = axis;
    let height = 40 + 170 * panels.len() as u32;
    let root = SVGBackend::new(path, (960, height)).into_drawing_area();
    root.fill(&WHITE)?;
    let root = root.titled(title, ("sans-serif", 20))?;
    for (area, (name, lines)) in root.split_evenly((panels.len(), 1)).iter().zip(panels) {
        let steps = lines.iter().map(|l| l.1.len()).max().unwrap_or(1);
        let (lo, hi) = lines
            .iter()
            .flat_map(|l| l.1.iter())
            .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), v| (a.min(*v), b.max(*v)));
        let pad = ((hi - lo) * 0.05).max(1e-9);
        let mut chart = ChartBuilder::on(area)
            .margin(6)
            .x_label_area_size(22)
            .y_label_area_size(70)
            .caption(*name, ("sans-serif", 14))
            .build_cartesian_2d(0f64..steps as f64 * per_step, (lo - pad)..(hi + pad))?;
        chart.configure_mesh().x_desc(x_label).light_line_style(WHITE.mix(0.0)).draw()?;
        for (i, (label, values)) in lines.iter().enumerate() {
            let colour = COLOURS[i % COLOURS.len()];
            chart
                .draw_series(LineSeries::new(
                    values.iter().enumerate().map(|(t, v)| (t as f64 * per_step, *v)),
                    colour.stroke_width(1),
                ))?
                .label(*label)
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 16, y)], colour.stroke_width(2)));
        }
        if let Some(at) = mark {
            chart.draw_series(std::iter::once(PathElement::new(
                vec![(at, lo - pad), (at, hi + pad)],
                BLACK.mix(0.5).stroke_width(1),
            )))?;
        }
        if lines.len() > 1 {
            chart
                .configure_series_labels()
                .border_style(BLACK.mix(0.3))
                .background_style(WHITE.mix(0.8))
                .draw()?;
        }
    }
    root.present()?;
    Ok(())
}

/// A channel with dropped scrapes shown as gaps filled by the last value (for the eye only).
fn channel(series: &RegularSeries, name: &str) -> Vec<f64> {
    let c = series.channel(name).expect("the channel exists");
    let mut last = c.values.iter().zip(&c.observed).find(|(_, o)| **o).map_or(0.0, |(v, _)| *v);
    c.values
        .iter()
        .zip(&c.observed)
        .map(|(v, o)| {
            if *o {
                last = *v;
            }
            last
        })
        .collect()
}

fn main() -> Result<(), Box<dyn Error>> {
    let out = PathBuf::from(std::env::args().nth(1).unwrap_or_else(|| "docs/figures".into()));
    std::fs::create_dir_all(&out)?;
    let hours = || Axis("hours", 5.0 / 60.0);

    // A week of one service under its autoscaler.
    let seed = 7;
    let world = World::new(seed, ParamRanges::default().draw(seed), Frequency::minutes(5), 7 * DAY_5M)?;
    let run = world.run(&history_plan(&world))?;
    let s = &run.series;
    panels(
        &out.join("sre_week.svg"),
        &format!("SRE world, seed {seed}: one week at 5 min under a lagging autoscaler"),
        hours(),
        &[
            ("requests/s", vec![("rps", channel(s, "rps"))]),
            ("replicas", vec![("replicas", channel(s, "replicas"))]),
            ("CPU utilisation", vec![("cpu_util", channel(s, "cpu_util"))]),
            (
                "latency ms (log10)",
                vec![
                    ("p50", log10(channel(s, "latency_p50_ms"))),
                    ("p95", log10(channel(s, "latency_p95_ms"))),
                ],
            ),
            ("memory MiB", vec![("memory_mb", channel(s, "memory_mb"))]),
        ],
        None,
    )?;
    let p = world.params();
    println!(
        "sre_week: seed {seed}, base {:.0} rps, {:.0} rps per replica, start-up {} steps, mean utilisation {:.2}",
        p.base_rps,
        p.replica_capacity_rps(),
        world.startup_steps(),
        run.truth.utilisation.iter().sum::<f64>() / run.truth.utilisation.len() as f64
    );

    // Twins: one service, four replica plans from noon of day 2.
    let seed = 21;
    let ranges = ParamRanges::from_toml_str(
        "base_rps = 600\ncpu_ms_per_request = 8\ncores_per_replica = 2\nqueue_ttl_minutes = 60",
    )?;
    let steps = 3 * DAY_5M;
    let split = DAY_5M + DAY_5M / 2;
    let world = World::new(seed, ranges.draw(seed), Frequency::minutes(5), steps)?;
    let base = history_plan(&world);
    let plans: Vec<(String, ActionPlan)> = [None, Some(2u32), Some(4), Some(8)]
        .into_iter()
        .map(|fixed| match fixed {
            None => ("autoscaler".to_string(), base.clone()),
            Some(r) => {
                let mut plan = base.clone();
                plan.replicas[split..].fill(r);
                (format!("{r} replicas"), plan)
            }
        })
        .collect();
    let runs = world.twins(&plans.iter().map(|p| p.1.clone()).collect::<Vec<_>>())?;
    let lines = |f: &dyn Fn(&loopcast_sim::Run) -> Vec<f64>| -> Lines<'_> {
        plans.iter().zip(&runs).map(|((label, _), run)| (label.as_str(), f(run))).collect()
    };
    panels(
        &out.join("sre_twins.svg"),
        &format!(
            "Counterfactual twins, seed {seed}: the same service and demand, four replica plans from hour {}",
            split / 12
        ),
        hours(),
        &[
            ("replicas", lines(&|r| channel(&r.series, "replicas"))),
            ("CPU utilisation (true)", lines(&|r| r.truth.cpu_util.clone())),
            ("latency p95 ms (true, log10)", lines(&|r| log10(r.truth.latency_p95_ms.clone()))),
            ("errors + shed share (true)", lines(&|r| r.truth.error_rate.clone())),
        ],
        Some(split as f64 * 5.0 / 60.0),
    )?;
    for ((label, _), run) in plans.iter().zip(&runs) {
        let after = &run.truth.latency_p95_ms[split..];
        let peak = after.iter().copied().fold(0.0, f64::max);
        let shed: f64 = run.truth.shed[split..].iter().sum();
        println!("sre_twins: {label:<12} peak p95 after split {peak:>10.0} ms, requests shed {shed:>10.0}");
    }

    // Prior samples.
    let samples: Vec<(String, Vec<f64>)> = (0..8u64)
        .map(|seed| {
            let sample =
                prior_series(seed, PriorSpec { length: 720, ..PriorSpec::default() }).expect("valid spec");
            let families: Vec<String> = sample.components.iter().map(|c| format!("{:?}", c.family)).collect();
            (
                format!(
                    "seed {seed} ({}, {}): {}",
                    sample.series.frequency,
                    sample.series.channels.len(),
                    families.join(" + ")
                ),
                channel(&sample.series, "y0"),
            )
        })
        .collect();
    let sheet: Vec<(&str, Lines<'_>)> =
        samples.iter().map(|(title, v)| (title.as_str(), vec![("y0", v.clone())])).collect();
    panels(
        &out.join("prior_samples.svg"),
        "Synthetic prior: eight samples (channel y0)",
        Axis("steps", 1.0),
        &sheet,
        None,
    )?;
    println!("figures written to {}", out.display());
    Ok(())
}

fn log10(values: Vec<f64>) -> Vec<f64> {
    values.into_iter().map(f64::log10).collect()
}
