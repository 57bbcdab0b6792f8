//! The ARX baseline of counterfactual scoring: one target regressed by least squares on its
//! own lags (and its seasonal lag) and on the current and lagged values of the action
//! channels, then rolled out recursively under each plan's actions.
//!
//! It is the classical answer to "what happens to latency if we change replicas": linear
//! in the actions and fitted on the history alone, so an action that never moved in the
//! history cannot be credited with any effect. Effect intervals come from the
//! coefficients' sampling distribution (a parametric bootstrap): the twins share their
//! noise, so what is uncertain about an effect is the fitted response, not the noise.

use nalgebra::{DMatrix, DVector};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, StandardNormal};

/// How an ARX model is shaped.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ArxSpec {
    /// Lags of the target (`y[t-1] … y[t-lags]`).
    pub lags: usize,
    /// A seasonal lag `y[t-season]`, used when the context holds at least two seasons.
    pub season: Option<usize>,
    /// Lags of each action beyond the current value (`u[t] … u[t-action_lags]`).
    pub action_lags: usize,
    /// Ridge penalty relative to the mean diagonal of `XᵀX` (keeps nearly collinear
    /// actions solvable).
    pub ridge: f64,
}

impl Default for ArxSpec {
    fn default() -> Self {
        Self { lags: 2, season: None, action_lags: 2, ridge: 1e-6 }
    }
}

/// A fitted ARX model of one target.
#[derive(Debug, Clone)]
pub struct Arx {
    spec: ArxSpec,
    /// Whether the seasonal lag is in the model.
    seasonal: bool,
    /// Actions kept (those that moved in the history), as indices into the inputs.
    actions: Vec<usize>,
    coefficients: DVector<f64>,
    /// Cholesky factor of the coefficients' covariance `σ² (XᵀX + λI)⁻¹`.
    spread: DMatrix<f64>,
}

/// The fewest fitting rows per coefficient.
const ROWS_PER_COEFFICIENT: usize = 4;

impl Arx {
    /// Fits the target's `context` (no gaps: fill them first) on `actions` (each the
    /// action's values over the same steps). `None` when there are too few rows for the
    /// coefficients or the fit is singular.
    pub fn fit(context: &[f64], actions: &[Vec<f64>], spec: ArxSpec) -> Option<Self> {
        let n = context.len();
        let kept: Vec<usize> = (0..actions.len())
            .filter(|a| {
                let values = &actions[*a];
                values.iter().any(|v| (v - values[0]).abs() > 1e-12)
            })
            .collect();
        let mut model = Self {
            spec,
            seasonal: false,
            actions: kept,
            coefficients: DVector::zeros(0),
            spread: DMatrix::zeros(0, 0),
        };
        let width = |seasonal: bool, model: &Self| {
            1 + spec.lags + usize::from(seasonal) + model.actions.len() * (spec.action_lags + 1)
        };
        model.seasonal =
            spec.season.is_some_and(|s| n >= 2 * s && n - s >= ROWS_PER_COEFFICIENT * width(true, &model));
        let k = width(model.seasonal, &model);
        let first = model.first_row();
        if n < first + ROWS_PER_COEFFICIENT * k {
            return None;
        }
        let rows = n - first;
        let mut x = DMatrix::zeros(rows, k);
        let mut y = DVector::zeros(rows);
        for (r, t) in (first..n).enumerate() {
            let row = model.regressors(context, actions, t);
            x.row_mut(r).copy_from_slice(&row);
            y[r] = context[t];
        }
        let gram = x.transpose() * &x;
        let penalty = spec.ridge * gram.trace() / k as f64;
        let regularised = &gram + DMatrix::identity(k, k) * penalty;
        let cholesky = regularised.clone().cholesky()?;
        let coefficients = cholesky.solve(&(x.transpose() * &y));
        let residuals = &y - &x * &coefficients;
        let dof = rows.saturating_sub(k).max(1) as f64;
        let variance = residuals.norm_squared() / dof;
        let covariance = cholesky.inverse() * variance;
        model.spread = covariance.cholesky()?.l();
        model.coefficients = coefficients;
        Some(model)
    }

    /// The first step with every lag inside the context.
    fn first_row(&self) -> usize {
        let seasonal = if self.seasonal { self.spec.season.unwrap_or(0) } else { 0 };
        self.spec.lags.max(self.spec.action_lags).max(seasonal)
    }

    /// The regressors of step `t`: intercept, target lags, seasonal lag, actions.
    fn regressors(&self, target: &[f64], actions: &[Vec<f64>], t: usize) -> Vec<f64> {
        let mut row = vec![1.0];
        row.extend((1..=self.spec.lags).map(|i| target[t - i]));
        if self.seasonal {
            row.push(target[t - self.spec.season.unwrap_or(0)]);
        }
        for &a in &self.actions {
            row.extend((0..=self.spec.action_lags).map(|l| actions[a][t - l]));
        }
        row
    }

    /// Rolls the model out for `future[0].len()` steps after `context`, under the actions
    /// `past` (over the context) followed by `future`, with `coefficients`.
    fn rollout(
        &self,
        context: &[f64],
        past: &[Vec<f64>],
        future: &[Vec<f64>],
        coefficients: &DVector<f64>,
    ) -> Vec<f64> {
        let horizon = future.first().map_or(0, Vec::len);
        let mut target = context.to_vec();
        let actions: Vec<Vec<f64>> =
            past.iter().zip(future).map(|(p, f)| p.iter().chain(f).copied().collect()).collect();
        for t in context.len()..context.len() + horizon {
            let row = self.regressors(&target, &actions, t);
            target.push(row.iter().zip(coefficients.iter()).map(|(x, b)| x * b).sum());
        }
        target.split_off(context.len())
    }

    /// The point forecast under the actions `future` (each action's planned values).
    pub fn forecast(&self, context: &[f64], past: &[Vec<f64>], future: &[Vec<f64>]) -> Vec<f64> {
        self.rollout(context, past, future, &self.coefficients)
    }

    /// The effect of playing `plan` instead of `base` (each action's planned values):
    /// the point effect and its 80 % interval from `draws` coefficient draws (seeded).
    pub fn effect(
        &self,
        context: &[f64],
        past: &[Vec<f64>],
        base: &[Vec<f64>],
        plan: &[Vec<f64>],
        draws: usize,
        seed: u64,
    ) -> ArxEffect {
        let difference = |coefficients: &DVector<f64>| -> Vec<f64> {
            let with = self.rollout(context, past, plan, coefficients);
            let without = self.rollout(context, past, base, coefficients);
            with.iter().zip(&without).map(|(a, b)| a - b).collect()
        };
        let point = difference(&self.coefficients);
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let k = self.coefficients.len();
        let samples: Vec<Vec<f64>> = (0..draws)
            .map(|_| {
                let z = DVector::from_fn(k, |_, _| StandardNormal.sample(&mut rng));
                difference(&(&self.coefficients + &self.spread * z))
            })
            .collect();
        let steps = point.len();
        let (mut lower, mut upper) = (point.clone(), point.clone());
        if !samples.is_empty() {
            for h in 0..steps {
                let mut at: Vec<f64> = samples.iter().map(|s| s[h]).collect();
                at.sort_by(f64::total_cmp);
                lower[h] = empirical_quantile(&at, 0.1);
                upper[h] = empirical_quantile(&at, 0.9);
            }
        }
        ArxEffect { point, lower, upper }
    }

    /// The action inputs the model kept (those that moved in the history).
    pub fn actions_used(&self) -> &[usize] {
        &self.actions
    }
}

/// An effect predicted by [`Arx::effect`].
#[derive(Debug, Clone, PartialEq)]
pub struct ArxEffect {
    /// Point effect per step.
    pub point: Vec<f64>,
    /// Lower end of the 80 % interval per step.
    pub lower: Vec<f64>,
    /// Upper end of the 80 % interval per step.
    pub upper: Vec<f64>,
}

/// The `level` quantile of sorted, non-empty `values`, linear between order statistics.
pub(crate) fn empirical_quantile(sorted: &[f64], level: f64) -> f64 {
    let position = level * (sorted.len() - 1) as f64;
    let (low, high) = (position.floor() as usize, position.ceil() as usize);
    let share = position - low as f64;
    sorted[low] * (1.0 - share) + sorted[high] * share
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `y[t] = 5 + 0.5 y[t-1] + 2 u[t]` with a small deterministic wiggle.
    fn system(u: &[f64]) -> Vec<f64> {
        let mut y = vec![10.0];
        for t in 1..u.len() {
            let wiggle = 0.01 * ((t * 7919 % 13) as f64 - 6.0);
            y.push(5.0 + 0.5 * y[t - 1] + 2.0 * u[t] + wiggle);
        }
        y
    }

    fn actions(n: usize) -> Vec<f64> {
        (0..n).map(|t| f64::from((t / 7 % 3) as u8 + (t / 31 % 2) as u8)).collect()
    }

    #[test]
    fn recovers_a_linear_system_and_its_effect() {
        let u = actions(400);
        let y = system(&u);
        let spec = ArxSpec { lags: 1, season: None, action_lags: 0, ridge: 0.0 };
        let arx = Arx::fit(&y[..300], &[u[..300].to_vec()], spec).expect("fits");
        let c = &arx.coefficients;
        assert!((c[0] - 5.0).abs() < 0.1 && (c[1] - 0.5).abs() < 0.01 && (c[2] - 2.0).abs() < 0.01, "{c}");
        // One more replica from step 0 of the future: the effect builds up to 2 / (1 - 0.5) = 4.
        let base = vec![u[300..320].to_vec()];
        let plan = vec![u[300..320].iter().map(|v| v + 1.0).collect::<Vec<_>>()];
        let effect = arx.effect(&y[..300], &[u[..300].to_vec()], &base, &plan, 64, 7);
        assert!((effect.point[0] - 2.0).abs() < 0.02, "{:?}", effect.point);
        assert!((effect.point[19] - 4.0).abs() < 0.05, "{:?}", effect.point);
        for h in 0..20 {
            assert!(effect.lower[h] <= effect.point[h] + 1e-9 && effect.point[h] <= effect.upper[h] + 1e-9);
        }
        // The point forecast follows the system itself.
        let forecast = arx.forecast(&y[..300], &[u[..300].to_vec()], &base);
        assert!((forecast[0] - y[300]).abs() < 0.1, "{} vs {}", forecast[0], y[300]);
    }

    #[test]
    fn an_action_that_never_moved_gets_no_effect_and_short_contexts_are_refused() {
        let u = actions(200);
        let y = system(&u);
        let still = vec![3.0; 200];
        let arx = Arx::fit(&y, &[still.clone(), u.clone()], ArxSpec::default()).expect("fits");
        assert_eq!(arx.actions_used(), &[1]);
        let base = vec![vec![3.0; 10], vec![1.0; 10]];
        let plan = vec![vec![9.0; 10], vec![1.0; 10]];
        let effect = arx.effect(&y, &[still, u.clone()], &base, &plan, 8, 1);
        assert!(effect.point.iter().all(|e| e.abs() < 1e-9), "{:?}", effect.point);
        assert!(Arx::fit(&y[..10], &[u[..10].to_vec()], ArxSpec::default()).is_none());
    }
}
