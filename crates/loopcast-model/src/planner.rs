//! The capacity-plan search (DESIGN.md §6): a grid of constant schedules, then local
//! refinement segment by segment, cheapest first, under a budget of candidates.
//!
//! The search only proposes schedules and reads back how each fared; the caller runs each
//! proposal batch as one what-if (one history encoding for the whole batch). It assumes
//! nothing about the model beyond what it observes, so a model whose risk does not fall
//! monotonically with capacity still gets the cheapest plan *among those evaluated*.
//!
//! Levels are integer indices on each dimension's grid (`min + i·step`), so schedules
//! compare exactly and a schedule is never evaluated twice.

use std::collections::HashSet;

use crate::quantiles;

/// One controllable channel's search range.
#[derive(Debug, Clone, PartialEq)]
pub struct Dimension {
    /// Lowest level.
    pub min: f64,
    /// Distance between levels.
    pub step: f64,
    /// Highest level index (`min + top·step` is the highest level).
    pub top: usize,
    /// Steps per segment: the level can change only at segment boundaries.
    pub segment_len: usize,
    /// Cost of one unit of this channel for one step.
    pub cost_per_unit: f64,
}

impl Dimension {
    /// The value of level `index`.
    pub fn level(&self, index: usize) -> f64 {
        self.min + index as f64 * self.step
    }
}

/// A schedule: per dimension, the level index of each segment.
pub type Schedule = Vec<Vec<usize>>;

/// How a schedule fared against the constraint.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Outcome {
    /// The constrained quantile at its worst over the horizon.
    pub worst: f64,
    /// The highest per-step probability of breaking the bound.
    pub risk: f64,
    /// Whether the constrained quantile keeps the bound at every step.
    pub meets: bool,
}

/// One evaluated schedule.
#[derive(Debug, Clone, PartialEq)]
pub struct Evaluated {
    /// The schedule.
    pub schedule: Schedule,
    /// Its cost over the horizon.
    pub cost: f64,
    /// How it fared.
    pub outcome: Outcome,
}

#[derive(Debug, Clone, PartialEq)]
enum Phase {
    /// The grid of constant schedules is next.
    Grid,
    /// Single-segment lowerings of the current schedule are next.
    Singles,
    /// The singles in `accepted` (indices into `evaluated`) all met the bound; their
    /// union is next, the cheapest of them the fallback.
    Combined(Vec<usize>),
    /// Nothing more to try.
    Done,
}

/// The search's state between proposal batches.
#[derive(Debug)]
pub struct Search {
    dims: Vec<Dimension>,
    horizon: usize,
    budget: usize,
    evaluated: Vec<Evaluated>,
    seen: HashSet<Schedule>,
    /// The schedule being refined (index into `evaluated`).
    current: Option<usize>,
    /// How far a single proposal lowers a segment, per dimension, in level indices.
    deltas: Vec<usize>,
    phase: Phase,
    /// Proposals handed out and not yet observed.
    proposed: Vec<Schedule>,
    rounds: usize,
}

impl Search {
    /// A search over `dims` for a horizon of `horizon` steps that evaluates at most
    /// `budget` schedules.
    pub fn new(dims: Vec<Dimension>, horizon: usize, budget: usize) -> Self {
        let deltas = vec![1; dims.len()];
        Self {
            dims,
            horizon,
            budget,
            evaluated: Vec::new(),
            seen: HashSet::new(),
            current: None,
            deltas,
            phase: Phase::Grid,
            proposed: Vec::new(),
            rounds: 0,
        }
    }

    /// Segments of dimension `d`.
    fn segments(&self, d: usize) -> usize {
        self.horizon.div_ceil(self.dims[d].segment_len)
    }

    /// Dimension `d`'s level at every step of `schedule`.
    pub fn per_step(&self, schedule: &Schedule, d: usize) -> Vec<f64> {
        let dim = &self.dims[d];
        (0..self.horizon).map(|h| dim.level(schedule[d][h / dim.segment_len])).collect()
    }

    /// The cost of `schedule` over the horizon.
    pub fn cost(&self, schedule: &Schedule) -> f64 {
        (0..self.dims.len())
            .map(|d| self.dims[d].cost_per_unit * self.per_step(schedule, d).iter().sum::<f64>())
            .sum()
    }

    fn remaining(&self) -> usize {
        self.budget.saturating_sub(self.evaluated.len())
    }

    /// The next batch of schedules to evaluate, or `None` when the search is over.
    pub fn propose(&mut self) -> Option<Vec<Schedule>> {
        assert!(self.proposed.is_empty(), "observe the last proposals first");
        loop {
            if self.remaining() == 0 {
                self.phase = Phase::Done;
            }
            let proposals = match &self.phase {
                Phase::Done => return None,
                Phase::Grid => self.grid(),
                Phase::Singles => {
                    let singles = self.singles();
                    if singles.is_empty() {
                        if !self.halve() {
                            self.phase = Phase::Done;
                        }
                        continue;
                    }
                    singles
                }
                Phase::Combined(accepted) => {
                    let union = self.union(accepted);
                    if self.seen.contains(&union) {
                        let cheapest = accepted[0];
                        self.accept(cheapest);
                        continue;
                    }
                    vec![union]
                }
            };
            let mut proposals: Vec<Schedule> =
                proposals.into_iter().filter(|s| !self.seen.contains(s)).collect();
            proposals.truncate(self.remaining());
            if proposals.is_empty() {
                self.phase = Phase::Done;
                return None;
            }
            self.seen.extend(proposals.iter().cloned());
            self.rounds += 1;
            self.proposed = proposals.clone();
            return Some(proposals);
        }
    }

    /// Records how the last proposals fared, in proposal order.
    pub fn observe(&mut self, outcomes: &[Outcome]) {
        let proposed = std::mem::take(&mut self.proposed);
        assert_eq!(proposed.len(), outcomes.len(), "one outcome per proposal");
        let first = self.evaluated.len();
        for (schedule, outcome) in proposed.into_iter().zip(outcomes) {
            let cost = self.cost(&schedule);
            self.evaluated.push(Evaluated { schedule, cost, outcome: *outcome });
        }
        let new: Vec<usize> = (first..self.evaluated.len()).collect();
        let mut meeting: Vec<usize> =
            new.iter().copied().filter(|i| self.evaluated[*i].outcome.meets).collect();
        meeting.sort_by(|a, b| self.order(*a, *b));
        match std::mem::replace(&mut self.phase, Phase::Done) {
            Phase::Grid => {
                if let Some(&cheapest) = meeting.first() {
                    self.current = Some(cheapest);
                    self.phase = Phase::Singles;
                }
            }
            Phase::Singles => match meeting.len() {
                0 => {
                    self.phase = if self.halve() { Phase::Singles } else { Phase::Done };
                }
                1 => self.accept(meeting[0]),
                _ => self.phase = Phase::Combined(meeting),
            },
            Phase::Combined(accepted) => {
                let union = new[0];
                self.accept(if self.evaluated[union].outcome.meets { union } else { accepted[0] });
            }
            Phase::Done => {}
        }
    }

    /// Cheaper first, then less risky.
    fn order(&self, a: usize, b: usize) -> std::cmp::Ordering {
        let (a, b) = (&self.evaluated[a], &self.evaluated[b]);
        a.cost.total_cmp(&b.cost).then(a.outcome.risk.total_cmp(&b.outcome.risk))
    }

    fn accept(&mut self, index: usize) {
        self.current = Some(index);
        self.phase = Phase::Singles;
    }

    /// Halves every delta above one; false when all are one already.
    fn halve(&mut self) -> bool {
        let mut changed = false;
        for delta in &mut self.deltas {
            if *delta > 1 {
                *delta = (*delta).div_ceil(2);
                changed = true;
            }
        }
        changed
    }

    /// Constant schedules on a grid of about `budget / 2` points; sets the first deltas to
    /// half the grid's spacing.
    fn grid(&mut self) -> Vec<Schedule> {
        let dims = self.dims.len();
        let points = (self.budget / 2).max(1) as f64;
        let per_dim = (points.powf(1.0 / dims as f64).floor() as usize).max(1);
        let axes: Vec<Vec<usize>> = self
            .dims
            .iter()
            .map(|dim| {
                let count = per_dim.min(dim.top + 1);
                if count == 1 {
                    // One level only: the most capacity, the likeliest to meet the bound.
                    return vec![dim.top];
                }
                let mut axis: Vec<usize> =
                    (0..count).map(|k| (k * dim.top + (count - 1) / 2) / (count - 1)).collect();
                axis.dedup();
                axis
            })
            .collect();
        for (d, axis) in axes.iter().enumerate() {
            let spacing = if axis.len() > 1 { axis[1] - axis[0] } else { self.dims[d].top };
            self.deltas[d] = spacing.div_ceil(2).max(1);
        }
        let mut schedules = vec![Vec::new()];
        for (d, axis) in axes.iter().enumerate() {
            let segments = self.segments(d);
            schedules = schedules
                .into_iter()
                .flat_map(|prefix: Schedule| {
                    axis.iter().map(move |&level| {
                        let mut next = prefix.clone();
                        next.push(vec![level; segments]);
                        next
                    })
                })
                .collect();
        }
        // Cheapest last, so that a truncated grid keeps the safe end.
        schedules.sort_by(|a, b| self.cost(b).total_cmp(&self.cost(a)));
        schedules
    }

    /// The current schedule with one segment of one dimension lowered by its delta.
    fn singles(&self) -> Vec<Schedule> {
        let Some(current) = self.current else { return Vec::new() };
        let base = &self.evaluated[current].schedule;
        let mut proposals = Vec::new();
        for (d, levels) in base.iter().enumerate() {
            for (s, &level) in levels.iter().enumerate() {
                if level == 0 {
                    continue;
                }
                let mut next = base.clone();
                next[d][s] = level.saturating_sub(self.deltas[d]);
                if !self.seen.contains(&next) {
                    proposals.push(next);
                }
            }
        }
        proposals
    }

    /// The current schedule with every lowering of `accepted` applied at once.
    fn union(&self, accepted: &[usize]) -> Schedule {
        let base = self.evaluated[self.current.expect("a current schedule")].schedule.clone();
        let mut union = base.clone();
        for &index in accepted {
            let single = &self.evaluated[index].schedule;
            for (d, levels) in single.iter().enumerate() {
                for (s, &level) in levels.iter().enumerate() {
                    union[d][s] = union[d][s].min(level);
                }
            }
        }
        union
    }

    /// Every schedule evaluated, in evaluation order.
    pub fn evaluated(&self) -> &[Evaluated] {
        &self.evaluated
    }

    /// Proposal batches evaluated.
    pub fn rounds(&self) -> usize {
        self.rounds
    }

    /// The cheapest schedule that meets the bound (ties: the less risky), if any.
    pub fn best(&self) -> Option<usize> {
        (0..self.evaluated.len())
            .filter(|i| self.evaluated[*i].outcome.meets)
            .min_by(|a, b| self.order(*a, *b))
    }

    /// The least risky schedule (ties: the cheaper).
    pub fn safest(&self) -> Option<usize> {
        (0..self.evaluated.len()).min_by(|a, b| {
            let (x, y) = (&self.evaluated[*a], &self.evaluated[*b]);
            x.outcome.risk.total_cmp(&y.outcome.risk).then(x.cost.total_cmp(&y.cost))
        })
    }

    /// The cost/risk Pareto frontier, cheapest first: each point is less risky than every
    /// cheaper one.
    pub fn frontier(&self) -> Vec<usize> {
        let mut order: Vec<usize> = (0..self.evaluated.len()).collect();
        order.sort_by(|a, b| self.order(*a, *b));
        let mut frontier = Vec::new();
        let mut lowest = f64::INFINITY;
        for index in order {
            let risk = self.evaluated[index].outcome.risk;
            if risk < lowest {
                lowest = risk;
                frontier.push(index);
            }
        }
        frontier
    }
}

/// The constraint on one target channel's quantile.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Bound {
    /// Quantile level the bound applies to.
    pub level: f64,
    /// The bound's value.
    pub value: f64,
    /// `true`: the quantile must stay at or under `value`; `false`: at or over it.
    pub upper: bool,
}

impl Bound {
    /// How a trajectory fared: `quantile(h, level)` gives the model's quantile function at
    /// step `h`, known at `levels`, linear between them.
    pub fn judge(&self, levels: &[f64], steps: usize, value: impl Fn(usize, usize) -> f64) -> Outcome {
        let mut worst = if self.upper { f64::NEG_INFINITY } else { f64::INFINITY };
        let mut risk: f64 = 0.0;
        for h in 0..steps {
            let at = quantiles::interpolate(levels, |q| value(h, q), self.level);
            worst = if self.upper { worst.max(at) } else { worst.min(at) };
            let below = quantiles::cdf(levels, |q| value(h, q), self.value);
            risk = risk.max(if self.upper { 1.0 - below } else { below });
        }
        let meets = if self.upper { worst <= self.value } else { worst >= self.value };
        Outcome { worst, risk, meets }
    }

    /// [`Bound::judge`] of a schedule's forecast `value` through the model's effect
    /// intervals (`ModelConfig::effect_widening`): at every step its quantiles move by
    /// `widening` times the distance of its median (`levels[median]`) from the median under
    /// the operator's own plan (`own`), towards breaking the bound. A schedule is then
    /// judged to keep the bound only if it would with its predicted effect that much
    /// smaller or larger; one the model forecasts no departure for is judged as it is.
    pub fn judge_departure(
        &self,
        levels: &[f64],
        steps: usize,
        median: usize,
        value: impl Fn(usize, usize) -> f64,
        own: impl Fn(usize, usize) -> f64,
        widening: f64,
    ) -> Outcome {
        let towards_breach = if self.upper { widening } else { -widening };
        self.judge(levels, steps, |h, q| {
            value(h, q) + towards_breach * (value(h, median) - own(h, median)).abs()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::quantiles::cdf;

    fn dim(top: usize, segment_len: usize) -> Dimension {
        Dimension { min: 2.0, step: 1.0, top, segment_len, cost_per_unit: 1.0 }
    }

    /// Runs a search against `judge` (per-step levels → outcome).
    fn run(search: &mut Search, judge: impl Fn(&Search, &Schedule) -> Outcome) {
        while let Some(batch) = search.propose() {
            let outcomes: Vec<Outcome> = batch.iter().map(|s| judge(search, s)).collect();
            search.observe(&outcomes);
        }
    }

    /// Load `demand[h]` served by `replicas[h]`: utilisation must stay ≤ 0.8.
    fn utilisation(demand: &[f64]) -> impl Fn(&Search, &Schedule) -> Outcome + '_ {
        move |search, schedule| {
            let replicas = search.per_step(schedule, 0);
            let worst = demand.iter().zip(&replicas).map(|(d, r)| d / r).fold(f64::MIN, f64::max);
            Outcome { worst, risk: worst / (1.0 + worst), meets: worst <= 0.8 }
        }
    }

    #[test]
    fn finds_the_cheapest_constant_level() {
        // Demand 10 needs 13 replicas (10/13 ≤ 0.8 < 10/12).
        let demand = vec![10.0; 8];
        let mut search = Search::new(vec![dim(38, 8)], 8, 64);
        run(&mut search, utilisation(&demand));
        let best = &search.evaluated()[search.best().unwrap()];
        assert_eq!(search.per_step(&best.schedule, 0), vec![13.0; 8]);
        assert!(search.evaluated().len() <= 64);
    }

    #[test]
    fn refines_each_segment_to_its_own_demand() {
        // A peak in the middle: segments of 4 steps need 4, 13 and 4 replicas.
        let mut demand = vec![3.0; 12];
        demand[4..8].fill(10.0);
        let mut search = Search::new(vec![dim(38, 4)], 12, 128);
        run(&mut search, utilisation(&demand));
        let best = &search.evaluated()[search.best().unwrap()];
        assert_eq!(best.schedule, vec![vec![2, 11, 2]], "levels 4, 13, 4");
        assert_eq!(best.cost, 4.0 * (4.0 + 13.0 + 4.0));
        // Every schedule was evaluated once.
        let distinct: HashSet<&Schedule> = search.evaluated().iter().map(|e| &e.schedule).collect();
        assert_eq!(distinct.len(), search.evaluated().len());
    }

    #[test]
    fn no_level_meets_an_impossible_bound_and_the_frontier_is_pareto() {
        let demand = vec![100.0; 4];
        let mut search = Search::new(vec![dim(38, 4)], 4, 32);
        run(&mut search, utilisation(&demand));
        assert_eq!(search.best(), None);
        let safest = &search.evaluated()[search.safest().unwrap()];
        assert_eq!(search.per_step(&safest.schedule, 0), vec![40.0; 4]);
        let frontier = search.frontier();
        for pair in frontier.windows(2) {
            let (a, b) = (&search.evaluated()[pair[0]], &search.evaluated()[pair[1]]);
            assert!(a.cost <= b.cost && a.outcome.risk > b.outcome.risk);
        }
        for e in search.evaluated() {
            let dominated = frontier.iter().any(|f| {
                let f = &search.evaluated()[*f];
                f.cost <= e.cost && f.outcome.risk <= e.outcome.risk
            });
            assert!(dominated, "{e:?} is neither on nor behind the frontier");
        }
    }

    #[test]
    fn a_tiny_budget_is_kept_and_keeps_the_safe_end() {
        let demand = vec![10.0; 4];
        let mut search = Search::new(vec![dim(38, 4), dim(10, 2)], 4, 3);
        run(&mut search, utilisation(&demand));
        assert_eq!(search.evaluated().len(), 3);
        assert!(search.evaluated().iter().any(|e| e.schedule[0][0] == 38));
    }

    /// Widened by 0.5, a schedule forecast 40 under the own plan's median is judged 20
    /// higher at every level (upper bound) or lower (lower bound); no departure, no change.
    #[test]
    fn effect_intervals_move_a_departure_towards_the_breach() {
        let levels = [0.1, 0.5, 0.9];
        let schedule = |_h: usize, q: usize| [50.0, 60.0, 70.0][q];
        let own = |_h: usize, q: usize| [90.0, 100.0, 110.0][q];
        let upper = Bound { level: 0.9, value: 80.0, upper: true };
        assert!(upper.judge(&levels, 2, schedule).meets);
        let widened = upper.judge_departure(&levels, 2, 1, schedule, own, 0.5);
        assert!((widened.worst - 90.0).abs() < 1e-9 && !widened.meets, "{widened:?}");
        let lower = Bound { level: 0.1, value: 45.0, upper: false };
        let widened = lower.judge_departure(&levels, 2, 1, schedule, own, 0.5);
        assert!((widened.worst - 30.0).abs() < 1e-9 && !widened.meets, "{widened:?}");
        let unchanged = upper.judge_departure(&levels, 2, 1, schedule, schedule, 10.0);
        assert_eq!(unchanged, upper.judge(&levels, 2, schedule));
    }

    #[test]
    fn the_bound_judges_quantiles_and_breach_probability() {
        let levels = [0.1, 0.5, 0.9];
        // Step 0: 100/200/300; step 1: 150/250/350.
        let value = |h: usize, q: usize| [[100.0, 200.0, 300.0], [150.0, 250.0, 350.0]][h][q];
        let upper = Bound { level: 0.9, value: 325.0, upper: true };
        let outcome = upper.judge(&levels, 2, value);
        assert_eq!(outcome.worst, 350.0);
        assert!(!outcome.meets);
        // At step 1, 325 sits at level 0.8 → breach 0.2.
        assert!((outcome.risk - 0.2).abs() < 1e-12, "{outcome:?}");
        let lower = Bound { level: 0.5, value: 150.0, upper: false };
        let outcome = lower.judge(&levels, 2, value);
        assert_eq!(outcome.worst, 200.0);
        assert!(outcome.meets);
        assert!((outcome.risk - 0.3).abs() < 1e-12, "{outcome:?}");
        // Beyond the levels the probability is clamped to their range.
        assert_eq!(cdf(&levels, |q| value(0, q), 50.0), 0.1);
        assert_eq!(cdf(&levels, |q| value(0, q), 400.0), 0.9);
    }
}
