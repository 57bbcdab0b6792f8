//! Whether a model's what-ifs respect capacity: on held-out twins, the operator's own plan
//! with its replicas scaled up and down (demand, traffic weights and rate limits left as
//! they are) must never raise the predicted median CPU utilisation or latency when
//! replicas rise. A model that learned effects from the twins' differences rather than
//! from the physics can still break this, so it is checked on its own.

use loopcast_core::{RegularSeries, Role};
use loopcast_model::{ForecastOptions, LoopedWorldModel};
use loopcast_sim::Episode;
use serde::{Deserialize, Serialize};

use crate::backtest::EvalError;
use crate::counterfactual::whatif_inputs;

/// The action channel scaled by the sweep.
pub const REPLICAS: &str = "replicas";

/// The targets that more replicas must never raise at fixed demand.
pub const CAPACITY_BOUND: [&str; 3] = ["cpu_util", "latency_p50_ms", "latency_p95_ms"];

/// The sweep `loopcast eval --twins` runs: from half to twice the operator's replicas.
pub const SWEEP_FACTORS: [f64; 5] = [0.5, 0.75, 1.0, 1.5, 2.0];

/// Per target, how often a step's predicted median rose with the replicas.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MonotoneRow {
    /// The target channel.
    pub channel: String,
    /// Comparisons made: episodes × adjacent pairs of the sweep × horizon steps.
    pub comparisons: usize,
    /// Comparisons where more replicas raised the median by more than the tolerance.
    pub rises: usize,
    /// The largest rise, as a share of the lower plan's median (0 when none rose).
    pub worst: f64,
}

/// Sweeps every episode's replicas by `factors` (ascending; each plan's replicas are the
/// operator's times the factor, rounded, at least 1) and counts, for each of
/// [`CAPACITY_BOUND`], the steps where the predicted median under more replicas exceeds
/// the one under fewer by more than `tolerance` times the latter's magnitude. `progress`
/// hears how many episodes are done and returns `false` to stop ([`EvalError::Stopped`]).
pub fn replica_sweep(
    model: &LoopedWorldModel,
    episodes: &[Episode],
    factors: &[f64],
    tolerance: f64,
    options: &ForecastOptions,
    progress: &mut dyn FnMut(usize) -> bool,
) -> Result<Vec<MonotoneRow>, EvalError> {
    if factors.len() < 2 || factors.windows(2).any(|w| w[0] >= w[1]) || factors[0] <= 0.0 {
        return Err(EvalError::Config(format!(
            "the sweep needs ascending positive factors, got {factors:?}"
        )));
    }
    let first = episodes.first().ok_or_else(|| EvalError::Config("no episode to sweep".into()))?;
    let find = |name: &str| {
        first
            .history
            .channels
            .iter()
            .position(|c| c.spec.name == name)
            .ok_or_else(|| EvalError::Config(format!("the episodes have no `{name}` channel")))
    };
    let replicas = find(REPLICAS)?;
    // A target's index among the forecast's targets: the targets before it in the series.
    let channels = &first.history.channels;
    let targets = CAPACITY_BOUND
        .iter()
        .map(|name| {
            let c = find(name)?;
            if channels[c].spec.role != Role::Target {
                return Err(EvalError::Config(format!("`{name}` is not a target of the episodes")));
            }
            Ok(channels[..c].iter().filter(|ch| ch.spec.role == Role::Target).count())
        })
        .collect::<Result<Vec<_>, _>>()?;
    let mut rows: Vec<MonotoneRow> = CAPACITY_BOUND
        .iter()
        .map(|name| MonotoneRow { channel: name.to_string(), comparisons: 0, rises: 0, worst: 0.0 })
        .collect();
    for (done, episode) in episodes.iter().enumerate() {
        if !progress(done) {
            return Err(EvalError::Stopped);
        }
        let swept: Vec<RegularSeries> =
            factors.iter().map(|f| scaled(&episode.futures[0], replicas, *f)).collect();
        let (batch, plans) = whatif_inputs(&[&episode.history], &[swept.iter().collect()], false)?;
        let forecasts = model.whatif(&batch, &plans, options)?;
        let median = forecasts[0]
            .levels
            .iter()
            .position(|l| (l - 0.5).abs() < 1e-9)
            .ok_or_else(|| EvalError::Config("the sweep needs the model's median level".into()))?;
        for (row, &t) in rows.iter_mut().zip(&targets) {
            for pair in forecasts.windows(2) {
                for h in 0..batch.horizon() {
                    let (fewer, more) = (
                        f64::from(pair[0].value(0, t, h, median)),
                        f64::from(pair[1].value(0, t, h, median)),
                    );
                    let rise = more - fewer;
                    row.comparisons += 1;
                    if rise > tolerance * fewer.abs().max(1e-9) {
                        row.rises += 1;
                        row.worst = row.worst.max(rise / fewer.abs().max(1e-9));
                    }
                }
            }
        }
    }
    let _ = progress(episodes.len());
    Ok(rows)
}

/// The sweep's rows as a Markdown table.
pub fn markdown(rows: &[MonotoneRow], factors: &[f64]) -> String {
    let factors: Vec<String> = factors.iter().map(|f| format!("{f}")).collect();
    let mut out = format!(
        "The operator's replicas times {}, demand and every other action unchanged: steps where \
         more replicas raised the predicted median.\n\n| target | comparisons | rises | share | worst rise |\n\
         |---|---:|---:|---:|---:|\n",
        factors.join(" / ")
    );
    for row in rows {
        out.push_str(&format!(
            "| {} | {} | {} | {:.1} % | {:.2} % |\n",
            row.channel,
            row.comparisons,
            row.rises,
            100.0 * row.rises as f64 / row.comparisons.max(1) as f64,
            100.0 * row.worst
        ));
    }
    out
}

/// `future` with channel `channel` times `factor`, rounded, at least 1.
fn scaled(future: &RegularSeries, channel: usize, factor: f64) -> RegularSeries {
    let mut future = future.clone();
    for v in &mut future.channels[channel].values {
        *v = (*v * factor).round().max(1.0);
    }
    future
}
