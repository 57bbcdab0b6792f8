//! Model input on the host: context windows with masks, and planned future values of the
//! action and covariate channels.

use loopcast_core::{Role, Season, SeasonSource, find_season};
use serde::{Deserialize, Serialize};

use crate::ModelError;

/// What becomes of future cells of action channels that a request leaves unknown.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MissingActions {
    /// The last known value holds (from earlier in the plan, else the last observed one):
    /// "keep doing what we do". Echoed back in every answer.
    #[default]
    HoldLast,
    /// The cells stay unknown (masked) and the model forecasts without them.
    Unknown,
}

/// A batch of `B` windows over the same channels, row-major `[B, C, L]` for the context
/// and `[B, C, H]` for the future. Channels are ordered targets first; only action and
/// covariate channels are read from the future.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelBatch {
    roles: Vec<Role>,
    batch: usize,
    context: usize,
    horizon: usize,
    values: Vec<f32>,
    observed: Vec<bool>,
    future: Vec<f32>,
    future_known: Vec<bool>,
    seasons: Vec<usize>,
    season_sources: Vec<SeasonSource>,
}

impl ModelBatch {
    /// Checks shapes and contents: at least one target, targets before other channels,
    /// every array of the right length, and observed values finite.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        roles: Vec<Role>,
        batch: usize,
        context: usize,
        horizon: usize,
        values: Vec<f32>,
        observed: Vec<bool>,
        future: Vec<f32>,
        future_known: Vec<bool>,
    ) -> Result<Self, ModelError> {
        let fail = |m: String| Err(ModelError::Input(m));
        let channels = roles.len();
        let targets = roles.iter().take_while(|r| **r == Role::Target).count();
        if targets == 0 {
            return fail("no target channel: the first channels must be the targets to forecast".into());
        }
        if roles[targets..].contains(&Role::Target) {
            return fail("target channels must come before action and covariate channels".into());
        }
        if batch == 0 || context == 0 || horizon == 0 {
            return fail(format!(
                "batch ({batch}), context ({context}) and horizon ({horizon}) must be positive"
            ));
        }
        for (name, len, expected) in [
            ("values", values.len(), batch * channels * context),
            ("observed", observed.len(), batch * channels * context),
            ("future", future.len(), batch * channels * horizon),
            ("future_known", future_known.len(), batch * channels * horizon),
        ] {
            if len != expected {
                return fail(format!(
                    "`{name}` has {len} cells, expected {expected} ({batch} × {channels} × …)"
                ));
            }
        }
        if let Some(i) = values.iter().zip(&observed).position(|(v, o)| *o && !v.is_finite()) {
            let (b, c, t) = (i / (channels * context), i / context % channels, i % context);
            return fail(format!("`values` is not finite at window {b}, channel {c}, step {t}"));
        }
        if let Some(i) = future.iter().zip(&future_known).position(|(v, k)| *k && !v.is_finite()) {
            let (b, c, t) = (i / (channels * horizon), i / horizon % channels, i % horizon);
            return fail(format!("`future` is not finite at window {b}, channel {c}, step {t}"));
        }
        let (seasons, season_sources) = (vec![1; batch], vec![SeasonSource::None; batch]);
        Ok(Self {
            roles,
            batch,
            context,
            horizon,
            values,
            observed,
            future,
            future_known,
            seasons,
            season_sources,
        })
    }

    /// The same windows with a seasonal period (in steps) each, given by the caller: the
    /// baseline a model with `anchor` decodes around repeats the window's last season. 1
    /// (the default) anchors on the last observed value.
    pub fn with_seasons(self, seasons: Vec<usize>) -> Result<Self, ModelError> {
        let sources = vec![SeasonSource::Given; seasons.len()];
        self.with_season_table(seasons, sources)
    }

    /// Every window with the seasonal period `season` (see [`ModelBatch::with_seasons`]).
    pub fn with_season(self, season: usize) -> Self {
        let batch = self.batch;
        self.with_seasons(vec![season; batch]).expect("one season per window")
    }

    /// Every window with the seasonal period its targets' context shows, the period it has
    /// (the calendar's, from [`ModelBatch::with_seasons`]) as the prior (see [`find_season`]).
    pub fn find_seasons(mut self) -> Self {
        let (channels, targets, context) = (self.roles.len(), self.targets(), self.context);
        for b in 0..self.batch {
            let rows = (0..targets)
                .map(|c| (b * channels + c) * context)
                .map(|row| (&self.values[row..row + context], &self.observed[row..row + context]));
            let Season { steps, source } = find_season(rows, self.seasons[b]);
            (self.seasons[b], self.season_sources[b]) = (steps, source);
        }
        self
    }

    fn with_season_table(
        mut self,
        seasons: Vec<usize>,
        sources: Vec<SeasonSource>,
    ) -> Result<Self, ModelError> {
        if seasons.len() != self.batch || sources.len() != self.batch {
            return Err(ModelError::Input(format!(
                "{} seasons for {} windows: give one per window",
                seasons.len(),
                self.batch
            )));
        }
        self.seasons = seasons.into_iter().map(|s| s.max(1)).collect();
        self.season_sources = sources;
        Ok(self)
    }

    /// The seasonal period of each window, in steps (1 when none was given).
    pub fn seasons(&self) -> &[usize] {
        &self.seasons
    }

    /// The seasonal period of window `b` and where it came from.
    pub fn season(&self, b: usize) -> Season {
        Season { steps: self.seasons[b], source: self.season_sources[b] }
    }

    /// Channel roles, targets first.
    pub fn roles(&self) -> &[Role] {
        &self.roles
    }

    /// Number of target channels (the first ones).
    pub fn targets(&self) -> usize {
        self.roles.iter().take_while(|r| **r == Role::Target).count()
    }

    /// Windows in the batch.
    pub fn batch(&self) -> usize {
        self.batch
    }

    /// Context steps `L`.
    pub fn context(&self) -> usize {
        self.context
    }

    /// Horizon steps `H`.
    pub fn horizon(&self) -> usize {
        self.horizon
    }

    /// Context values and masks, `[B, C, L]`.
    pub fn context_arrays(&self) -> (&[f32], &[bool]) {
        (&self.values, &self.observed)
    }

    /// Future values and masks, `[B, C, H]`.
    pub fn future_arrays(&self) -> (&[f32], &[bool]) {
        (&self.future, &self.future_known)
    }

    /// Fills unknown future cells of action channels according to `policy`.
    pub fn apply_missing_actions(&mut self, policy: MissingActions) {
        if policy == MissingActions::Unknown {
            return;
        }
        let (channels, context, horizon) = (self.roles.len(), self.context, self.horizon);
        for b in 0..self.batch {
            for (c, role) in self.roles.iter().enumerate() {
                if *role != Role::Action {
                    continue;
                }
                let history = (b * channels + c) * context;
                let mut last =
                    (0..context).rev().find(|t| self.observed[history + t]).map(|t| self.values[history + t]);
                let future = (b * channels + c) * horizon;
                for t in 0..horizon {
                    if self.future_known[future + t] {
                        last = Some(self.future[future + t]);
                    } else if let Some(value) = last {
                        self.future[future + t] = value;
                        self.future_known[future + t] = true;
                    }
                }
            }
        }
    }

    /// The windows of `parts`, in order, as one batch. Every part must have the same
    /// roles, context and horizon (a serving batcher groups requests by them).
    pub fn concat(parts: &[&ModelBatch]) -> Result<Self, ModelError> {
        let Some(first) = parts.first() else {
            return Err(ModelError::Input("no batch to concatenate".into()));
        };
        if let Some(other) = parts
            .iter()
            .find(|p| p.roles != first.roles || p.context != first.context || p.horizon != first.horizon)
        {
            return Err(ModelError::Input(format!(
                "cannot batch a window of {} channels × {} + {} steps with one of {} × {} + {}",
                other.roles.len(),
                other.context,
                other.horizon,
                first.roles.len(),
                first.context,
                first.horizon
            )));
        }
        let gather =
            |field: fn(&ModelBatch) -> &[f32]| parts.iter().flat_map(|p| field(p).iter().copied()).collect();
        let flags =
            |field: fn(&ModelBatch) -> &[bool]| parts.iter().flat_map(|p| field(p).iter().copied()).collect();
        Self::new(
            first.roles.clone(),
            parts.iter().map(|p| p.batch).sum(),
            first.context,
            first.horizon,
            gather(|p| &p.values),
            flags(|p| &p.observed),
            gather(|p| &p.future),
            flags(|p| &p.future_known),
        )?
        .with_season_table(
            parts.iter().flat_map(|p| p.seasons.iter().copied()).collect(),
            parts.iter().flat_map(|p| p.season_sources.iter().copied()).collect(),
        )
    }

    /// The same windows as they stood `back` steps earlier (`horizon ≤ back < context`):
    /// each context ends `back` steps before this one's end (left-padded with masked
    /// cells), the future holds the actions and covariates that then came (known where
    /// they were observed and this batch knows its own future's), and the targets'
    /// values over that future are returned beside the batch as `(values, observed)`,
    /// `[B, T, H]`: a backtest over the end of every window's own history. Seasons are kept.
    pub fn cut_back(&self, back: usize) -> Result<(Self, Vec<f32>, Vec<bool>), ModelError> {
        let (channels, targets, context, horizon) =
            (self.roles.len(), self.targets(), self.context, self.horizon);
        if back < horizon || back >= context {
            return Err(ModelError::Input(format!(
                "a backtest {back} steps back needs a horizon ({horizon}) to at most {back} and a context \
                 ({context}) above it"
            )));
        }
        let mut values = vec![0.0; self.values.len()];
        let mut observed = vec![false; self.observed.len()];
        let mut future = vec![0.0; self.future.len()];
        let mut known = vec![false; self.future_known.len()];
        let mut truth = vec![0.0; self.batch * targets * horizon];
        let mut seen = vec![false; truth.len()];
        for b in 0..self.batch {
            for c in 0..channels {
                let row = (b * channels + c) * context;
                values[row + back..row + context].copy_from_slice(&self.values[row..row + context - back]);
                observed[row + back..row + context]
                    .copy_from_slice(&self.observed[row..row + context - back]);
                let then = row + context - back..row + context - back + horizon;
                let (into, into_known) = if c < targets {
                    let at = (b * targets + c) * horizon;
                    (&mut truth[at..at + horizon], &mut seen[at..at + horizon])
                } else {
                    let at = (b * channels + c) * horizon;
                    (&mut future[at..at + horizon], &mut known[at..at + horizon])
                };
                into.copy_from_slice(&self.values[then.clone()]);
                into_known.copy_from_slice(&self.observed[then]);
                if c >= targets {
                    // The backtest knows of the future what the forecast knows of its own.
                    let own =
                        &self.future_known[(b * channels + c) * horizon..(b * channels + c + 1) * horizon];
                    for ((value, known), own) in into.iter_mut().zip(into_known.iter_mut()).zip(own) {
                        *known &= *own;
                        if !*known {
                            *value = 0.0;
                        }
                    }
                }
            }
        }
        let cut =
            Self::new(self.roles.clone(), self.batch, context, horizon, values, observed, future, known)?
                .with_season_table(self.seasons.clone(), self.season_sources.clone())?;
        Ok((cut, truth, seen))
    }

    /// The windows `steps` later (`0 < steps < horizon`): each context drops its first
    /// `steps` cells and gains the first `steps` of the future — the targets' from
    /// `targets` (`[B, T, steps]`, observed), the actions' and covariates' from the future
    /// where it is known (unobserved elsewhere) — and the future is what remains of it.
    /// Seasons are kept. How a forecast past the native rollout continues from its own
    /// medians.
    pub fn advance(&self, steps: usize, targets: &[f32]) -> Result<Self, ModelError> {
        let (channels, t, context, horizon) = (self.roles.len(), self.targets(), self.context, self.horizon);
        if steps == 0 || steps >= horizon || targets.len() != self.batch * t * steps {
            return Err(ModelError::Input(format!(
                "advancing {steps} steps needs 0 < steps < horizon ({horizon}) and {} target values, got {}",
                self.batch * t * steps,
                targets.len()
            )));
        }
        let kept = context.saturating_sub(steps);
        let rest = horizon - steps;
        let mut values = Vec::with_capacity(self.values.len());
        let mut observed = Vec::with_capacity(self.observed.len());
        let mut future = Vec::with_capacity(self.batch * channels * rest);
        let mut known = Vec::with_capacity(self.batch * channels * rest);
        for b in 0..self.batch {
            for c in 0..channels {
                let row = (b * channels + c) * context;
                let ahead = (b * channels + c) * horizon;
                values.extend_from_slice(&self.values[row + context - kept..row + context]);
                observed.extend_from_slice(&self.observed[row + context - kept..row + context]);
                let new = context - kept;
                if c < t {
                    let at = (b * t + c) * steps;
                    values.extend_from_slice(&targets[at + steps - new..at + steps]);
                    observed.extend(std::iter::repeat_n(true, new));
                } else {
                    let span = ahead + steps - new..ahead + steps;
                    let seen = &self.future_known[span.clone()];
                    values.extend(self.future[span].iter().zip(seen).map(|(v, k)| if *k { *v } else { 0.0 }));
                    observed.extend_from_slice(seen);
                }
                future.extend_from_slice(&self.future[ahead + steps..ahead + horizon]);
                known.extend_from_slice(&self.future_known[ahead + steps..ahead + horizon]);
            }
        }
        Self::new(self.roles.clone(), self.batch, context, rest, values, observed, future, known)?
            .with_season_table(self.seasons.clone(), self.season_sources.clone())
    }

    /// The same windows with only the first `steps` of their future (`1 ≤ steps ≤
    /// horizon`).
    pub fn with_horizon(&self, steps: usize) -> Result<Self, ModelError> {
        if steps == 0 || steps > self.horizon {
            return Err(ModelError::Input(format!("a horizon of {steps} steps out of {}", self.horizon)));
        }
        let rows = 0..self.batch * self.roles.len();
        let span = |r: usize| r * self.horizon..r * self.horizon + steps;
        let future: Vec<f32> = rows.clone().flat_map(|r| self.future[span(r)].to_vec()).collect();
        let known: Vec<bool> = rows.flat_map(|r| self.future_known[span(r)].to_vec()).collect();
        Self::new(
            self.roles.clone(),
            self.batch,
            self.context,
            steps,
            self.values.clone(),
            self.observed.clone(),
            future,
            known,
        )?
        .with_season_table(self.seasons.clone(), self.season_sources.clone())
    }

    /// The same histories with other future values (a what-if plan).
    pub fn with_future(&self, future: Vec<f32>, future_known: Vec<bool>) -> Result<Self, ModelError> {
        Self::new(
            self.roles.clone(),
            self.batch,
            self.context,
            self.horizon,
            self.values.clone(),
            self.observed.clone(),
            future,
            future_known,
        )?
        .with_season_table(self.seasons.clone(), self.season_sources.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn batch() -> ModelBatch {
        // One window, a target and an action, 4 context steps, 3 future steps.
        ModelBatch::new(
            vec![Role::Target, Role::Action],
            1,
            4,
            3,
            vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 0.0],
            vec![true, true, true, true, true, true, true, false],
            vec![0.0, 0.0, 0.0, 0.0, 9.0, 0.0],
            vec![false, false, false, false, true, false],
        )
        .unwrap()
    }

    #[test]
    fn advancing_moves_the_forecast_and_the_plan_into_the_context() {
        let b = batch().with_season(2);
        // Two steps on: the target's context gains the two forecast values, the action's
        // its plan (unknown, then 9), and the future keeps the last step.
        let on = b.advance(2, &[10.0, 11.0]).unwrap();
        let ((values, observed), (future, known)) = (on.context_arrays(), on.future_arrays());
        assert_eq!(values, &[3.0, 4.0, 10.0, 11.0, 7.0, 0.0, 0.0, 9.0]);
        assert_eq!(observed, &[true, true, true, true, true, false, false, true]);
        assert_eq!((future, known), (&[0.0, 0.0][..], &[false, false][..]));
        assert_eq!((on.context(), on.horizon(), on.seasons()), (4, 1, &[2][..]));
        let head = b.with_horizon(2).unwrap();
        assert_eq!(head.future_arrays().0, &[0.0, 0.0, 0.0, 9.0]);
        assert!(b.advance(3, &[0.0; 3]).is_err(), "the whole horizon leaves no future");
        assert!(b.advance(1, &[0.0; 2]).is_err(), "one value per target and step");
        assert!(b.with_horizon(4).is_err());
    }

    #[test]
    fn hold_last_fills_unknown_action_cells() {
        let mut b = batch();
        b.apply_missing_actions(MissingActions::HoldLast);
        let (future, known) = b.future_arrays();
        assert_eq!(&future[3..], &[7.0, 9.0, 9.0]);
        assert_eq!(&known[3..], &[true, true, true]);
        assert_eq!(&known[..3], &[false, false, false], "targets are never filled");
    }

    #[test]
    fn concatenated_batches_keep_every_window_in_order() {
        let (a, b) = (batch(), batch().with_season(3).with_future(vec![0.0; 6], vec![false; 6]).unwrap());
        let both = ModelBatch::concat(&[&a, &b]).unwrap();
        assert_eq!(both.batch(), 2);
        assert_eq!(both.seasons(), &[1, 3], "each window keeps its season");
        assert_eq!(both.season(1).source, SeasonSource::Given);
        assert_eq!(both.context_arrays().0[..8], a.context_arrays().0[..]);
        assert_eq!(both.future_arrays().1[6..], b.future_arrays().1[..]);
        let short =
            ModelBatch::new(vec![Role::Target], 1, 1, 1, vec![0.0], vec![true], vec![0.0], vec![false]);
        let err = ModelBatch::concat(&[&a, &short.unwrap()]).unwrap_err();
        assert!(err.to_string().contains("cannot batch"), "{err}");
    }

    #[test]
    fn a_cut_back_batch_is_the_history_as_it_stood() {
        // The target's context is 1 2 3 4, the action's 5 6 7 and a gap; cut 3 steps back.
        let b = batch().with_season(2);
        let (cut, truth, seen) = b.cut_back(3).unwrap();
        let (values, observed) = cut.context_arrays();
        assert_eq!(values, &[0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 5.0]);
        assert_eq!(observed, &[false, false, false, true, false, false, false, true]);
        assert_eq!((truth, seen), (vec![2.0, 3.0, 4.0], vec![true, true, true]));
        let (future, known) = cut.future_arrays();
        assert_eq!(&future[3..], &[0.0, 7.0, 0.0], "the action that came, where the forecast knows its own");
        assert_eq!(&known[3..], &[false, true, false]);
        assert_eq!(&known[..3], &[false; 3], "targets are never given");
        let planned = b.with_future(vec![0.0; 6], vec![false, false, false, true, true, true]).unwrap();
        let (cut, _, _) = planned.cut_back(3).unwrap();
        let (future, known) = cut.future_arrays();
        assert_eq!(&future[3..], &[6.0, 7.0, 0.0], "the actions that came");
        assert_eq!(&known[3..], &[true, true, false], "an unobserved action cell stays unknown");
        assert_eq!(cut.seasons(), &[2]);
        for back in [2, 4] {
            let err = b.cut_back(back).unwrap_err();
            assert!(err.to_string().contains("backtest"), "{err}");
        }
    }

    #[test]
    fn bad_batches_name_the_problem() {
        let err = ModelBatch::new(vec![Role::Action], 1, 1, 1, vec![0.0], vec![true], vec![0.0], vec![false]);
        assert!(err.unwrap_err().to_string().contains("no target"));
        let err = ModelBatch::new(
            vec![Role::Target],
            1,
            2,
            1,
            vec![0.0, f32::NAN],
            vec![true, true],
            vec![0.0],
            vec![false],
        );
        assert!(err.unwrap_err().to_string().contains("step 1"));
        let err = ModelBatch::new(vec![Role::Target], 1, 2, 1, vec![0.0], vec![true], vec![0.0], vec![false]);
        assert!(err.unwrap_err().to_string().contains("`values` has 1 cells"));
    }
}
