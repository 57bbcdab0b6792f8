//! Does a model keep the physics of capacity — more replicas never raise the median CPU
//! or p95 latency at fixed demand? `cargo run --release -p loopcast-train --example
//! monotone -- [MODEL_DIR] [--episodes N]` (the shipped model without a directory; 64
//! held-out episodes unless given): each episode's operator plan with the replicas held at
//! ½, ¾, 1, 1½, 2 and 3 times the last count, the other actions as planned; prints, per
//! channel, how many (episode, step, neighbouring pair) cells rise by more than 0.1 % and
//! the worst rise. Issue #28 asks for a test of this on the shipped model; it becomes one
//! once a shipped model passes it.

use loopcast_core::{Frequency, Role};
use loopcast_model::{DeviceKind, ForecastOptions, LoopedWorldModel, ModelBatch};
use loopcast_sim::{ACTION_CHANNELS, TARGET_CHANNELS};
use loopcast_train::data::{EVALUATION_SEEDS, SreLayout, sre_windows};

const CONTEXT: usize = 512;
const HORIZON: usize = 64;
const FACTORS: [f32; 6] = [0.5, 0.75, 1.0, 1.5, 2.0, 3.0];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let usage = "usage: monotone [MODEL_DIR] [--episodes N]";
    let (mut dir, mut episodes) = (None, 64usize);
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--episodes" => episodes = args.next().and_then(|v| v.parse().ok()).ok_or(usage)?,
            _ => dir = Some(arg),
        }
    }
    let device = DeviceKind::Cpu.device()?;
    let model = match &dir {
        Some(dir) => LoopedWorldModel::load(dir, &device)?,
        None => LoopedWorldModel::shipped(&device)?,
    };
    let seeds: Vec<u64> = (0..episodes as u64).map(|i| EVALUATION_SEEDS + 1000 + i).collect();
    let layout = SreLayout { plans: 2, ..SreLayout::full() };
    let (batch, _) = sre_windows(&seeds, CONTEXT, HORIZON, Frequency::minutes(5), &layout)?;
    let c = batch.roles().len();
    let replicas =
        TARGET_CHANNELS.len() + ACTION_CHANNELS.iter().position(|a| *a == "replicas").ok_or("replicas")?;
    assert_eq!(batch.roles()[replicas], Role::Action);
    let (values, observed) = batch.context_arrays();
    let (future, known) = batch.future_arrays();
    let (mut context, mut seen, mut plans, mut planned) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for i in 0..episodes {
        // The operator's plan of episode `i` is row 2·i; window `i·F + f` holds factor `f`.
        let (rows, steps) = (2 * i * c..(2 * i + 1) * c, |len: usize| 2 * i * c * len..(2 * i + 1) * c * len);
        let last = values[(rows.start + replicas) * CONTEXT + CONTEXT - 1];
        for factor in FACTORS {
            context.extend_from_slice(&values[steps(CONTEXT)]);
            seen.extend_from_slice(&observed[steps(CONTEXT)]);
            let mut plan = future[steps(HORIZON)].to_vec();
            plan[replicas * HORIZON..(replicas + 1) * HORIZON].fill((last * factor).round().max(1.0));
            plans.extend(plan);
            planned.extend_from_slice(&known[steps(HORIZON)]);
        }
    }
    let windows = episodes * FACTORS.len();
    let sweep =
        ModelBatch::new(batch.roles().to_vec(), windows, CONTEXT, HORIZON, context, seen, plans, planned)?
            .with_season(288);
    let forecast = model.forecast(&sweep, &ForecastOptions::default())?;
    let median = forecast.levels.iter().position(|l| *l == 0.5).ok_or("no median level")?;
    for name in ["cpu_util", "latency_p50_ms", "latency_p95_ms", "queue_depth"] {
        let t = TARGET_CHANNELS.iter().position(|c| *c == name).ok_or(name)?;
        let (mut rises, mut cells, mut worst) = (0usize, 0usize, 0f32);
        for i in 0..episodes {
            for h in 0..HORIZON {
                for f in 1..FACTORS.len() {
                    let fewer = forecast.value(i * FACTORS.len() + f - 1, t, h, median);
                    let more = forecast.value(i * FACTORS.len() + f, t, h, median);
                    let rise = (more - fewer) / fewer.abs().max(1e-6);
                    cells += 1;
                    rises += usize::from(rise > 1e-3);
                    worst = worst.max(rise);
                }
            }
        }
        println!(
            "{name}: {rises} of {cells} cells rise by more than 0.1 % with more replicas ({:.1} %), worst rise {:.2} %",
            100.0 * rises as f64 / cells as f64,
            100.0 * worst
        );
    }
    Ok(())
}
