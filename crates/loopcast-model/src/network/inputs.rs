//! Host-side preprocessing: a batch moved to the device, padded to whole patches and
//! scaled per channel, with the seasonal anchor, profile and naive error the decoder reads.

use burn::tensor::{Device, Tensor, TensorData};
use loopcast_core::{Role, seasonal_naive_sources};

use crate::{ModelBatch, ModelConfig};

/// A batch on a device: context and future padded to whole patches, scaled per channel.
#[derive(Debug, Clone)]
pub struct Inputs {
    /// Scaled context, `[B, C, N·P]`, zero where unobserved (padding on the left).
    pub context: Tensor<3>,
    /// Context mask, 1 where observed.
    pub context_mask: Tensor<3>,
    /// Scaled future, `[B, C, K·P]` (padding on the right); target cells hold the truth
    /// when the batch carries it (training, backtests) and are never read by the model.
    pub future: Tensor<3>,
    /// Future mask, 1 where known.
    pub future_mask: Tensor<3>,
    /// Per-channel location, `[B, C, 1]`.
    pub location: Tensor<3>,
    /// Per-channel scale (positive), `[B, C, 1]`.
    pub scale: Tensor<3>,
    /// Each target's seasonal naive forecast over the padded future, scaled, `[B, T, K·P]`
    /// (0, the context mean, for a target with no observation).
    pub anchor: Tensor<3>,
    /// Each target's seasonal profile over the padded future (the mean of every whole
    /// season in the context at each step's phase), scaled, `[B, T, K·P]`.
    pub profile: Tensor<3>,
    /// How far each target's last observed value sits from the profile at its phase, in
    /// scaled units, `[B, T, 1]`.
    pub departure: Tensor<3>,
    /// Each channel's last observed value, scaled, `[B, C, 1]` (0 when none).
    pub last: Tensor<3>,
    /// Each target's typical in-sample seasonal naive error, scaled, `[B, T, 1]`: the
    /// median of `|x_i − x_{i−s}|` over the context's observed pairs (`s` the window's
    /// season, 1 when the context holds no whole season; 0 when no pair is observed). The
    /// unit in which an anchored model decodes; a median, so an incident in the context
    /// (latency at 300 s for an hour, then 10 ms again) does not make it the incident's size.
    /// Where more than half the pairs repeat exactly (an error count at zero but for a few
    /// bursts), the mean of `|x_i − x_{i−s}|` instead, so the quantiles do not collapse onto
    /// the anchor; 0 only for a context that repeats its seasons exactly.
    pub naive_error: Tensor<3>,
    /// Channel roles, targets first.
    pub roles: Vec<Role>,
    /// Number of target channels.
    pub targets: usize,
    /// Horizon steps asked for (before padding).
    pub horizon: usize,
    /// Steps per patch.
    pub patch_len: usize,
    /// The operator's expected plan, `[B, C − T, K·P]`: every action channel's log ratio
    /// to its last value per future step, as the network forecasts it from the history
    /// ([`super::Network::expected_plan`], set by [`Inputs::with_expected_plan`]); ratio
    /// effects are measured from it. `None`: from the last value.
    pub expected_plan: Option<Tensor<3>>,
}

impl Inputs {
    /// Moves `batch` to `device`: keeps the last `max_context_patches` patches of context,
    /// pads both ends to whole patches, and scales every channel by the mean and standard
    /// deviation of its observed context (with a floor relative to the level: small for
    /// targets, larger for actions and covariates), so values of any magnitude meet the
    /// network at unit scale.
    pub fn new(batch: &ModelBatch, config: &ModelConfig, device: &Device) -> Self {
        let p = config.patch_len;
        let (b, c) = (batch.batch(), batch.roles().len());
        let (l, h) = (batch.context(), batch.horizon());
        let n = l.div_ceil(p).min(config.max_context_patches);
        let kept = (n * p).min(l);
        let padded = n * p;
        let (values, observed) = batch.context_arrays();
        let mut context = vec![0f32; b * c * padded];
        let mut context_mask = vec![0f32; b * c * padded];
        for row in 0..b * c {
            for i in 0..kept {
                let (from, to) = (row * l + l - kept + i, row * padded + padded - kept + i);
                if observed[from] {
                    context[to] = values[from];
                    context_mask[to] = 1.0;
                }
            }
        }
        // An anchored model centres on the median: after an incident (latency at 300 s for
        // an hour, then 10 ms again) the mean sits so far from the recent values that f32
        // would lose them when scaling.
        let medians = config.anchor.then(|| {
            let rows = context.chunks(padded).zip(context_mask.chunks(padded));
            rows.map(|(values, mask)| {
                let mut seen: Vec<f32> =
                    values.iter().zip(mask).filter(|(_, m)| **m > 0.5).map(|(v, _)| *v).collect();
                let middle = seen.len() / 2;
                if seen.is_empty() { 0.0 } else { *seen.select_nth_unstable_by(middle, f32::total_cmp).1 }
            })
            .collect::<Vec<f32>>()
        });
        let tensor = |data: Vec<f32>| Tensor::<3>::from_data(TensorData::new(data, [b, c, padded]), device);
        let (context, context_mask) = (tensor(context), tensor(context_mask));

        let count = context_mask.clone().sum_dim(2);
        let location = match medians {
            Some(medians) => Tensor::<3>::from_data(TensorData::new(medians, [b, c, 1]), device),
            None => (context.clone() * context_mask.clone()).sum_dim(2) / count.clone().clamp_min(1.0),
        };
        let centred = (context.clone() - location.clone()) * context_mask.clone();
        let variance = centred.clone().powf_scalar(2.0).sum_dim(2) / count.clone().clamp_min(1.0);
        let floors: Vec<f32> = batch
            .roles()
            .iter()
            .map(|r| (if *r == Role::Target { config.scale_floor } else { config.input_floor() }) as f32)
            .collect();
        let floors = Tensor::<3>::from_data(TensorData::new(floors, [1, c, 1]), device);
        let floor = location.clone().abs().add_scalar(1.0) * floors;
        let scale = (variance + floor.clone() * floor).sqrt();
        let empty = count.lower_elem(0.5).float();
        let scale = scale * empty.clone().neg().add_scalar(1.0) + empty;
        let context = centred / scale.clone();
        let (future, future_mask) = scaled_future(batch, p, &location, &scale, device);
        let t = batch.targets();
        let future_len = h.div_ceil(p) * p;
        let (anchor, anchored) = seasonal_naive(batch, future_len);
        let (profile, departure) = seasonal_profile(batch, future_len);
        let target_stats = |x: &Tensor<3>| x.clone().slice([0..b, 0..t, 0..1]);
        let scaled = |raw: Vec<f32>, has: Vec<f32>, shape: [usize; 3], loc: Tensor<3>, scale: Tensor<3>| {
            let has = Tensor::<3>::from_data(TensorData::new(has, shape), device);
            (Tensor::<3>::from_data(TensorData::new(raw, shape), device) - loc) / scale * has
        };
        let shape = [b, t, future_len];
        let profile = scaled(profile, anchored.clone(), shape, target_stats(&location), target_stats(&scale));
        let anchor = scaled(anchor, anchored, shape, target_stats(&location), target_stats(&scale));
        let departure =
            Tensor::<3>::from_data(TensorData::new(departure, [b, t, 1]), device) / target_stats(&scale);
        let (last, seen) = last_observed(batch);
        let last = scaled(last, seen, [b, c, 1], location.clone(), scale.clone());
        let naive_error = Tensor::<3>::from_data(TensorData::new(naive_errors(batch), [b, t, 1]), device)
            / target_stats(&scale);
        Self {
            context,
            context_mask,
            future,
            future_mask,
            location,
            scale,
            anchor,
            profile,
            departure,
            last,
            naive_error,
            roles: batch.roles().to_vec(),
            targets: batch.targets(),
            horizon: h,
            patch_len: p,
            expected_plan: None,
        }
    }

    /// The same inputs with the operator's expected plan (see [`Inputs::expected_plan`]).
    pub fn with_expected_plan(self, expected_plan: Option<Tensor<3>>) -> Self {
        Self { expected_plan, ..self }
    }

    /// Inputs for scenarios of the same histories with the futures of `plans` (batches
    /// over these histories, each with its own future): histories repeated scenario-major
    /// (row `k·B + b`), each plan's future padded and scaled with the histories' own
    /// statistics, so the context is scaled once whatever the number of plans.
    pub fn scenarios(&self, plans: &[ModelBatch]) -> Self {
        let copies = plans.len();
        let device = self.context.device();
        let (future, future_mask): (Vec<_>, Vec<_>) = plans
            .iter()
            .map(|plan| scaled_future(plan, self.patch_len, &self.location, &self.scale, &device))
            .unzip();
        Self {
            context: self.context.clone().repeat_dim(0, copies),
            context_mask: self.context_mask.clone().repeat_dim(0, copies),
            future: Tensor::cat(future, 0),
            future_mask: Tensor::cat(future_mask, 0),
            location: self.location.clone().repeat_dim(0, copies),
            scale: self.scale.clone().repeat_dim(0, copies),
            anchor: self.anchor.clone().repeat_dim(0, copies),
            profile: self.profile.clone().repeat_dim(0, copies),
            departure: self.departure.clone().repeat_dim(0, copies),
            last: self.last.clone().repeat_dim(0, copies),
            naive_error: self.naive_error.clone().repeat_dim(0, copies),
            roles: self.roles.clone(),
            targets: self.targets,
            horizon: self.horizon,
            patch_len: self.patch_len,
            expected_plan: self.expected_plan.as_ref().map(|plan| plan.clone().repeat_dim(0, copies)),
        }
    }

    /// The history moved forward by the decoded patches `predicted` (`[B, T, P]` each,
    /// scaled): their values take the targets' place and the plan's known values the
    /// other channels', and as many of the oldest patches drop out, so the context keeps
    /// its length. The scaling stays that of the original history.
    pub(super) fn advanced(&self, predicted: &[Tensor<3>]) -> Self {
        let [b, c, l] = self.context.dims();
        let (t, shift) = (self.targets, predicted.len() * self.patch_len);
        let device = self.context.device();
        let (mut values, mut known) =
            (vec![Tensor::cat(predicted.to_vec(), 2)], vec![Tensor::ones([b, t, shift], &device)]);
        if c > t {
            values.push(self.future.clone().slice([0..b, t..c, 0..shift]));
            known.push(self.future_mask.clone().slice([0..b, t..c, 0..shift]));
        }
        let (values, known) = (Tensor::cat(values, 1), Tensor::cat(known, 1));
        let keep = |past: &Tensor<3>, next: Tensor<3>| {
            Tensor::cat(vec![past.clone(), next], 2).slice([0..b, 0..c, shift..shift + l])
        };
        Self {
            context: keep(&self.context, values),
            context_mask: keep(&self.context_mask, known),
            ..self.clone()
        }
    }

    /// A twentieth of each channel's typical magnitude, `(|location| + scale) / 20`,
    /// `[B, C, 1]`: what log ratios of the data add to both sides, so a channel at zero
    /// has one (the ratio action path's features; the log twin loss of training).
    pub fn log_offset(&self) -> Tensor<3> {
        (self.location.clone().abs() + self.scale.clone()).mul_scalar(0.05)
    }

    /// `(sign · ln(1 + |location|), ln scale)` per channel, `[B, C, 2]`: the level and
    /// spread the scaling removed, given back to the network as features.
    pub(super) fn statistics(&self) -> Tensor<3> {
        let level = self.location.clone().abs().add_scalar(1.0).log() * self.location.clone().sign();
        Tensor::cat(vec![level, self.scale.clone().log()], 2)
    }
}

/// The future of `batch`, `[B, C, K·P]`, right-padded to whole patches of `patch_len`,
/// scaled by `location` and `scale` (`[B, C, 1]`) and zero where unknown; with its mask.
fn scaled_future(
    batch: &ModelBatch,
    patch_len: usize,
    location: &Tensor<3>,
    scale: &Tensor<3>,
    device: &Device,
) -> (Tensor<3>, Tensor<3>) {
    let (b, c, h) = (batch.batch(), batch.roles().len(), batch.horizon());
    let padded = h.div_ceil(patch_len) * patch_len;
    let (future, known) = batch.future_arrays();
    let mut values = vec![0f32; b * c * padded];
    let mut mask = vec![0f32; b * c * padded];
    for row in 0..b * c {
        for i in 0..h {
            if known[row * h + i] {
                values[row * padded + i] = future[row * h + i];
                mask[row * padded + i] = 1.0;
            }
        }
    }
    let tensor = |data: Vec<f32>| Tensor::<3>::from_data(TensorData::new(data, [b, c, padded]), device);
    let mask = tensor(mask);
    let values = (tensor(values) - location.clone()) / scale.clone() * mask.clone();
    (values, mask)
}

/// Each target's seasonal naive forecast over `steps` future steps, `[B, T, steps]` in the
/// data's units, with 1 where it exists: the window's last season repeated (its
/// `seasons()` entry; a missing value is taken a season earlier), the last observed value
/// when the season is longer than the context, nothing when no value is observed.
fn seasonal_naive(batch: &ModelBatch, steps: usize) -> (Vec<f32>, Vec<f32>) {
    let (c, t, l) = (batch.roles().len(), batch.targets(), batch.context());
    let (values, observed) = batch.context_arrays();
    let mut anchor = Vec::with_capacity(batch.batch() * t * steps);
    let mut has = Vec::with_capacity(batch.batch() * t * steps);
    for (b, &season) in batch.seasons().iter().enumerate() {
        for channel in 0..t {
            let row = (b * c + channel) * l;
            match seasonal_naive_sources(l, season, steps, |i| observed[row + i]) {
                Some(sources) => {
                    anchor.extend(sources.into_iter().map(|i| values[row + i]));
                    has.extend(std::iter::repeat_n(1.0, steps));
                }
                None => {
                    anchor.extend(std::iter::repeat_n(0.0, steps));
                    has.extend(std::iter::repeat_n(0.0, steps));
                }
            }
        }
    }
    (anchor, has)
}

/// Each target's seasonal profile over `steps` future steps, `[B, T, steps]` in the data's
/// units: the mean of the observed context values at the step's phase over every whole
/// season the context holds (the last observed value when it holds none); and `[B, T]`,
/// how far the last observed value sits from the mean of the seasons before it at its
/// phase (the level's departure from the profile; 0 without an earlier season).
fn seasonal_profile(batch: &ModelBatch, steps: usize) -> (Vec<f32>, Vec<f32>) {
    let (c, t, l) = (batch.roles().len(), batch.targets(), batch.context());
    let (values, observed) = batch.context_arrays();
    let mut profile = Vec::with_capacity(batch.batch() * t * steps);
    let mut departure = Vec::with_capacity(batch.batch() * t);
    for (b, &season) in batch.seasons().iter().enumerate() {
        let season = season.max(1);
        // Per phase (index modulo the season), the sum and count of the observed values:
        // no more phases than context steps, whatever the season (a microsecond grid's day
        // is 86.4 billion steps).
        let mut sums = vec![(0f32, 0usize); season.min(l).max(1)];
        for channel in 0..t {
            let row = (b * c + channel) * l;
            let (values, observed) = (&values[row..row + l], &observed[row..row + l]);
            let Some(last) = (0..l).rev().find(|i| observed[*i]) else {
                profile.extend(std::iter::repeat_n(0.0, steps));
                departure.push(0.0);
                continue;
            };
            sums.fill((0.0, 0));
            // Latest first: f32 sums depend on the order, and the shipped model was
            // trained with the profile summed in this one.
            for i in (0..l).rev().filter(|i| observed[*i]) {
                let (sum, count) = &mut sums[i % season];
                *sum += values[i];
                *count += 1;
            }
            // Every context index of a future step's phase lies at or before `l − back`.
            for h in 0..steps {
                let back = season - h % season;
                let (sum, count) = if back > l { (0.0, 0) } else { sums[(l - back) % season] };
                profile.push(if count > 0 { sum / count as f32 } else { values[last] });
            }
            // The seasons before the last observed value, at its phase.
            let earlier: Vec<f32> = (1..=last / season)
                .map(|j| last - j * season)
                .filter(|i| observed[*i])
                .map(|i| values[i])
                .collect();
            departure.push(if earlier.is_empty() {
                0.0
            } else {
                values[last] - earlier.iter().sum::<f32>() / earlier.len() as f32
            });
        }
    }
    (profile, departure)
}

/// Each target's typical seasonal naive error in the data's units, `[B, T]` (see
/// [`Inputs::naive_error`]).
fn naive_errors(batch: &ModelBatch) -> Vec<f32> {
    let (c, t, l) = (batch.roles().len(), batch.targets(), batch.context());
    let (values, observed) = batch.context_arrays();
    let mut errors = Vec::with_capacity(batch.batch() * t);
    for (b, &season) in batch.seasons().iter().enumerate() {
        let lag = if season < l { season } else { 1 };
        for channel in 0..t {
            let row = (b * c + channel) * l;
            let mut differences: Vec<f32> = (lag..l)
                .filter(|i| observed[row + i] && observed[row + i - lag])
                .map(|i| (values[row + i] - values[row + i - lag]).abs())
                .collect();
            let middle = differences.len() / 2;
            errors.push(if differences.is_empty() {
                0.0
            } else {
                match *differences.select_nth_unstable_by(middle, f32::total_cmp).1 {
                    // Mostly exact repeats (errors at zero but for a few bursts, a season
                    // repeated but once): the mean, so the forecast keeps some spread.
                    0.0 => differences.iter().sum::<f32>() / differences.len() as f32,
                    median => median,
                }
            });
        }
    }
    errors
}

/// Each channel's last observed context value, `[B, C, 1]`, with 1 where there is one.
fn last_observed(batch: &ModelBatch) -> (Vec<f32>, Vec<f32>) {
    let l = batch.context();
    let (values, observed) = batch.context_arrays();
    values
        .chunks(l)
        .zip(observed.chunks(l))
        .map(|(v, o)| o.iter().rposition(|x| *x).map_or((0.0, 0.0), |i| (v[i], 1.0)))
        .unzip()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one_target(context: Vec<f32>, observed: Vec<bool>, season: usize) -> ModelBatch {
        let l = context.len();
        ModelBatch::new(vec![Role::Target], 1, l, 1, context, observed, vec![0.0], vec![false])
            .unwrap()
            .with_season(season)
    }

    #[test]
    fn the_anchor_repeats_the_last_season_and_fills_gaps_from_the_one_before() {
        let batch =
            one_target(vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0], vec![true, true, true, true, false, true], 3);
        let (anchor, has) = seasonal_naive(&batch, 7);
        assert_eq!(anchor, vec![4.0, 2.0, 6.0, 4.0, 2.0, 6.0, 4.0], "step 5's gap comes from step 2");
        assert_eq!(has, vec![1.0; 7]);
    }

    #[test]
    fn without_a_whole_season_or_a_season_the_anchor_is_the_last_value() {
        let (anchor, _) = seasonal_naive(&one_target(vec![1.0, 2.0], vec![true; 2], 24), 3);
        assert_eq!(anchor, vec![2.0; 3]);
        let (anchor, _) = seasonal_naive(&one_target(vec![1.0, 2.0, 3.0], vec![true, true, false], 1), 2);
        assert_eq!(anchor, vec![2.0; 2]);
        let (anchor, has) = seasonal_naive(&one_target(vec![1.0, 2.0], vec![false; 2], 1), 2);
        assert_eq!((anchor, has), (vec![0.0; 2], vec![0.0; 2]), "nothing observed, no anchor");
    }

    #[test]
    fn the_profile_averages_each_phase_and_the_departure_is_from_the_seasons_before() {
        let values: Vec<f32> = (1..=7).map(|v| v as f32).collect();
        let (profile, departure) = seasonal_profile(&one_target(values.clone(), vec![true; 7], 3), 4);
        assert_eq!(profile, vec![3.5, 4.5, 4.0, 3.5]);
        assert_eq!(departure, vec![7.0 - 2.5]);
        let gap = vec![true, true, true, false, true, true, true];
        let (profile, departure) = seasonal_profile(&one_target(values.clone(), gap, 3), 3);
        assert_eq!((profile, departure), (vec![3.5, 4.5, 4.0], vec![6.0]), "index 3 is missing");
        let (profile, departure) = seasonal_profile(&one_target(values.clone(), vec![true; 7], 10), 5);
        assert_eq!((profile, departure), (vec![7.0, 7.0, 7.0, 1.0, 2.0], vec![0.0]), "no whole season");
        // A microsecond grid's day: as many phases as context steps, not 86.4 billion.
        let (profile, departure) = seasonal_profile(&one_target(values, vec![true; 7], 86_400_000_000), 5);
        assert_eq!((profile, departure), (vec![7.0; 5], vec![0.0]));
    }

    #[test]
    fn the_naive_error_falls_back_to_the_mean_where_most_pairs_repeat_exactly() {
        let bursts = one_target(vec![0.0, 0.0, 0.0, 0.0, 0.0, 5.0, 0.0, 0.0], vec![true; 8], 1);
        assert_eq!(naive_errors(&bursts), vec![10.0 / 7.0]);
        let noisy = one_target(vec![1.0, 2.0, 4.0, 7.0, 8.0, 8.0], vec![true; 6], 1);
        assert_eq!(naive_errors(&noisy), vec![1.0], "the median where it is not zero");
        let periodic = one_target(vec![1.0, 2.0, 1.0, 2.0, 1.0, 2.0], vec![true; 6], 2);
        assert_eq!(naive_errors(&periodic), vec![0.0], "an exact repeat keeps no spread");
    }
}
