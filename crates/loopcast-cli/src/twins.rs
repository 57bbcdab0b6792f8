//! `loopcast eval --twins N`: counterfactual scoring on held-out simulator twins (loopcast,
//! the action-blind ablation, ARX and the simulator's oracle on the same twins) and the
//! planner scored against the oracle found by simulating every candidate (see
//! `loopcast_eval::counterfactual` and `loopcast_eval::plan_eval`).
//!
//! Writes `counterfactual.md`, `counterfactual.json`, `effects.csv` (one row per material
//! effect and model: its error, sign, interval coverage, and the true and predicted mean
//! effect per step in the channel's units) and `plans.csv` (one row per problem and
//! planner) under `--out`. In the SRE world it also sweeps each episode's replicas from
//! half to twice the operator's and counts the steps where more replicas raised the
//! predicted median CPU or latency (`loopcast_eval::monotone`).

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::{Context, Result, bail};
use indicatif::{ProgressBar, ProgressStyle};
use loopcast_eval::EvalError;
use loopcast_eval::counterfactual::{EffectModel, TwinSpec, evaluate_effects, twin_episodes};
use loopcast_eval::monotone::{self, MonotoneRow, SWEEP_FACTORS, replica_sweep};
use loopcast_eval::plan_eval::{PlanEvalSpec, evaluate_planner};
use loopcast_eval::report::{write_atomically, write_csv};
use loopcast_model::{ForecastOptions, LoopedWorldModel};
use loopcast_sim::Topology;
use serde::Serialize;

use crate::{Interrupted, UsageError, interrupt_flag};

/// What `loopcast eval --twins` scores.
#[derive(Debug, Clone)]
pub(crate) struct TwinsRun {
    pub(crate) twins: TwinSpec,
    /// Planning problems (`0`: no planner scoring).
    pub(crate) problems: usize,
    pub(crate) planner_budget: usize,
}

#[derive(Serialize)]
struct Results<'a> {
    model: &'a str,
    world: Topology,
    first_seed: u64,
    context: usize,
    horizon: usize,
    plans: usize,
    counterfactual: &'a loopcast_eval::counterfactual::CounterfactualReport,
    /// The SRE world's replica sweep (absent in the two-tier world).
    monotone: Option<&'a [MonotoneRow]>,
    planner: Option<&'a loopcast_eval::plan_eval::PlanReport>,
}

fn bar(len: u64, prefix: &str) -> ProgressBar {
    let bar = ProgressBar::new(len).with_style(
        ProgressStyle::with_template("{prefix} {bar:30} {pos}/{len} episodes ({elapsed}, eta {eta})")
            .expect("valid template"),
    );
    bar.set_prefix(prefix.to_string());
    bar
}

/// A progress callback that stops the run on Ctrl-C.
fn tracker(bar: &ProgressBar, interrupted: Arc<AtomicBool>) -> impl FnMut(usize) -> bool + '_ {
    move |done| {
        bar.set_position(done as u64);
        !interrupted.load(Ordering::SeqCst)
    }
}

/// A stopped run as the CLI reports it (exit status 130, nothing written).
fn stopped(error: EvalError) -> anyhow::Error {
    match error {
        EvalError::Stopped => Interrupted("interrupted; nothing written".into()).into(),
        other => other.into(),
    }
}

/// Runs the twin scoring and writes its results under `out`.
pub(crate) fn run(
    run: &TwinsRun,
    model: &LoopedWorldModel,
    name: &str,
    options: &ForecastOptions,
    out: &Path,
) -> Result<()> {
    if run.twins.episodes == 0 || run.twins.plans < 2 {
        bail!(UsageError("--twins needs at least 1 episode and --plans at least 2".into()));
    }
    if run.twins.first_seed.checked_add(run.twins.episodes.max(run.problems) as u64).is_none() {
        bail!(UsageError("--first-seed + --twins runs past the last seed (2^64 - 1)".into()));
    }
    if run.planner_budget == 0 {
        bail!(UsageError("--planner-budget must be at least 1".into()));
    }
    std::fs::create_dir_all(out).with_context(|| format!("cannot create {}", out.display()))?;
    let interrupted = interrupt_flag();
    let episodes = twin_episodes(run.twins)?;
    let effects_bar = bar(episodes.len() as u64, "effects");
    let mut progress = tracker(&effects_bar, interrupted.clone());
    let report = tokio::task::block_in_place(|| {
        evaluate_effects(Some(model), &episodes, &EffectModel::ALL, options, &mut progress)
    })
    .map_err(stopped)?;
    effects_bar.finish_and_clear();
    // In the two-tier world more replicas truly raise latency where the downstream binds,
    // so only the SRE world's twins hold the model to monotone capacity.
    let monotone = if run.twins.topology == Topology::Single {
        let sweep_bar = bar(episodes.len() as u64, "replica sweep");
        let mut progress = tracker(&sweep_bar, interrupted.clone());
        let rows = tokio::task::block_in_place(|| {
            replica_sweep(model, &episodes, &SWEEP_FACTORS, 0.0, options, &mut progress)
        })
        .map_err(stopped)?;
        sweep_bar.finish_and_clear();
        Some(rows)
    } else {
        None
    };
    let spec = PlanEvalSpec {
        twins: TwinSpec { episodes: run.problems, ..run.twins },
        budget: run.planner_budget,
        ..PlanEvalSpec::default()
    };
    let planner = if run.problems > 0 {
        let plan_bar = bar(run.problems as u64, "planner");
        let mut progress = tracker(&plan_bar, interrupted.clone());
        let planned = tokio::task::block_in_place(|| evaluate_planner(model, &spec, options, &mut progress))
            .map_err(stopped)?;
        plan_bar.finish_and_clear();
        Some(planned)
    } else {
        None
    };
    let t = &run.twins;
    let mut markdown = format!(
        "# Counterfactuals on held-out simulator twins\n\nModel `{name}`; world `{}`; seeds {} to {}, \
         context {}, horizon {} (5-minute steps), {} plans per episode.\n\n## Effects\n\n{}",
        t.topology.as_str(),
        t.first_seed,
        t.first_seed + t.episodes as u64 - 1,
        t.context,
        t.horizon,
        t.plans,
        report.markdown()
    );
    if let Some(rows) = &monotone {
        markdown
            .push_str(&format!("\n## Capacity monotonicity\n\n{}", monotone::markdown(rows, &SWEEP_FACTORS)));
    }
    if let Some(planner) = &planner {
        markdown.push_str(&format!("\n## Planner\n\n{}", planner.markdown(&spec)));
    }
    let results = Results {
        model: name,
        world: t.topology,
        first_seed: t.first_seed,
        context: t.context,
        horizon: t.horizon,
        plans: t.plans,
        counterfactual: &report,
        monotone: monotone.as_deref(),
        planner: planner.as_ref(),
    };
    let json = serde_json::to_vec_pretty(&results)?;
    write_atomically(&out.join("counterfactual.json"), |f| std::io::Write::write_all(f, &json))?;
    write_csv(&out.join("effects.csv"), &report.rows)?;
    if let Some(planner) = &planner {
        write_csv(&out.join("plans.csv"), &planner.rows)?;
    }
    write_atomically(&out.join("counterfactual.md"), |f| std::io::Write::write_all(f, markdown.as_bytes()))?;
    println!("\n{markdown}");
    eprintln!("loopcast: results in {}", out.display());
    Ok(())
}
