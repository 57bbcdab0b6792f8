//! Regularisation of one series onto a frequency grid: per-channel aggregation within a
//! cell, an explicit observation mask, and an account of every input value.

use loopcast_core::{Aggregation, ChannelSpec, ChannelValues, Frequency, RegularSeries, Timestamp};

use crate::report::{RejectReason, Rejection, ValueAccount};

/// One input value of a series, before regularisation.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Observation {
    /// Index into the channel list passed to [`regularise`].
    pub channel: usize,
    /// When it was observed.
    pub timestamp: Timestamp,
    /// The value; `None` for a null (a known-missing scrape).
    pub value: Option<f64>,
    /// 1-based data row in the input file, for error messages.
    pub row: u64,
}

/// The result of regularising one series.
#[derive(Debug, Clone, PartialEq)]
pub struct RegularisedSeries {
    /// The series on its grid; `None` when no value of it could be placed.
    pub series: Option<RegularSeries>,
    /// Where each input value went.
    pub account: ValueAccount,
    /// The values that were rejected, with reasons, in row order.
    pub rejections: Vec<Rejection>,
}

/// Places the observations of series `id` onto the grid of `frequency`.
///
/// The grid runs from the first to the last cell that holds any observation (null values
/// included: a known-missing scrape still says the series existed then). Within a cell,
/// each channel's values are combined with the channel's aggregation; a cell without a
/// value is unobserved (mask `false`, value `0.0`). Nothing is interpolated.
///
/// Exact duplicates of (timestamp, channel, value) are dropped and counted; a duplicate
/// with a different value, and NaN or infinite values, are rejected with a reason.
/// `value_column` names the column the values came from in a long table; in a wide
/// table (`None`) the channel's own column is named instead.
pub fn regularise(
    id: &str,
    channels: &[ChannelSpec],
    frequency: Frequency,
    observations: &mut [Observation],
    value_column: Option<&str>,
) -> RegularisedSeries {
    order_by_channel_and_time(observations, channels.len());
    let mut account = ValueAccount::default();
    let mut rejections = Vec::new();
    let mut used: Vec<(usize, i64, f64)> = Vec::with_capacity(observations.len());
    let mut extent: Option<(i64, i64)> = None;
    // The last value kept for the current (channel, timestamp), to spot duplicates.
    let mut kept: Option<(usize, Timestamp, f64, u64)> = None;

    for obs in observations.iter() {
        let reject = |reason| Rejection {
            row: obs.row,
            column: value_column.unwrap_or(&channels[obs.channel].name).to_string(),
            series: Some(id.to_string()),
            reason,
        };
        let Some(value) = obs.value else {
            account.missing += 1;
            widen(&mut extent, frequency.cell(obs.timestamp));
            continue;
        };
        if !value.is_finite() {
            account.rejected += 1;
            rejections.push(reject(RejectReason::NonFinite { value: value.to_string() }));
            continue;
        }
        match kept {
            Some((channel, ts, kept_value, kept_row)) if channel == obs.channel && ts == obs.timestamp => {
                if kept_value == value {
                    account.duplicates += 1;
                } else {
                    account.rejected += 1;
                    rejections.push(reject(RejectReason::ConflictingDuplicate {
                        kept_row,
                        kept: kept_value,
                        value,
                    }));
                }
                continue;
            }
            _ => {}
        }
        kept = Some((obs.channel, obs.timestamp, value, obs.row));
        let cell = frequency.cell(obs.timestamp);
        widen(&mut extent, cell);
        used.push((obs.channel, cell, value));
        account.used += 1;
    }
    rejections.sort_by_key(|r| r.row);

    let series = extent.map(|(first, last)| {
        let len = (last - first + 1) as usize;
        let mut cells: Vec<Vec<CellAggregate>> = vec![vec![CellAggregate::default(); len]; channels.len()];
        // `used` is sorted by (channel, timestamp), so `last` sees values in time order.
        for &(channel, cell, value) in &used {
            cells[channel][(cell - first) as usize].push(value);
        }
        let columns = channels
            .iter()
            .zip(cells)
            .map(|(spec, cells)| ChannelValues {
                spec: spec.clone(),
                values: cells.iter().map(|c| c.value(spec.aggregation)).collect(),
                observed: cells.iter().map(|c| c.count > 0).collect(),
            })
            .collect();
        RegularSeries::new(id, frequency, first, columns).expect("every channel column has the grid's length")
    });
    RegularisedSeries { series, account, rejections }
}

/// Orders observations by (channel, timestamp, row) in linear time when each channel's
/// rows already come in time order (as from a sorted input): a counting sort by channel,
/// then a sort only of the channels that need one.
fn order_by_channel_and_time(observations: &mut [Observation], channels: usize) {
    let mut starts = vec![0usize; channels + 1];
    for o in observations.iter() {
        starts[o.channel + 1] += 1;
    }
    for c in 0..channels {
        starts[c + 1] += starts[c];
    }
    let mut next = starts.clone();
    let mut ordered = observations.to_vec();
    for o in observations.iter() {
        ordered[next[o.channel]] = *o;
        next[o.channel] += 1;
    }
    observations.copy_from_slice(&ordered);
    for c in 0..channels {
        let segment = &mut observations[starts[c]..starts[c + 1]];
        if !segment.is_sorted_by_key(|o| (o.timestamp, o.row)) {
            segment.sort_unstable_by_key(|o| (o.timestamp, o.row));
        }
    }
}

fn widen(extent: &mut Option<(i64, i64)>, cell: i64) {
    *extent = Some(match *extent {
        None => (cell, cell),
        Some((lo, hi)) => (lo.min(cell), hi.max(cell)),
    });
}

#[derive(Debug, Clone, Copy, Default)]
struct CellAggregate {
    count: u32,
    sum: f64,
    max: f64,
    last: f64,
}

impl CellAggregate {
    fn push(&mut self, value: f64) {
        self.max = if self.count == 0 { value } else { self.max.max(value) };
        self.count += 1;
        self.sum += value;
        self.last = value;
    }

    fn value(&self, aggregation: Aggregation) -> f64 {
        if self.count == 0 {
            return 0.0;
        }
        match aggregation {
            Aggregation::Mean => self.sum / f64::from(self.count),
            Aggregation::Sum => self.sum,
            Aggregation::Last => self.last,
            Aggregation::Max => self.max,
        }
    }
}

/// The typical spacing of sorted, distinct timestamps: the most common difference when it
/// accounts for at least half of them (regular data with gaps), else the median difference
/// (jittered scrapes, calendar months). `None` with fewer than two timestamps.
pub fn infer_spacing(sorted_distinct: &[Timestamp]) -> Option<i64> {
    let mut deltas: Vec<i64> = sorted_distinct.windows(2).map(|w| w[1] - w[0]).filter(|d| *d > 0).collect();
    if deltas.is_empty() {
        return None;
    }
    deltas.sort_unstable();
    let (mut best, mut best_count, mut run_start) = (deltas[0], 0usize, 0usize);
    for i in 1..=deltas.len() {
        if i == deltas.len() || deltas[i] != deltas[run_start] {
            if i - run_start > best_count {
                best = deltas[run_start];
                best_count = i - run_start;
            }
            run_start = i;
        }
    }
    if best_count * 2 >= deltas.len() { Some(best) } else { Some(deltas[deltas.len() / 2]) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use loopcast_core::Role;

    const MIN: i64 = 60_000_000;

    fn obs(channel: usize, minute: i64, value: Option<f64>, row: u64) -> Observation {
        Observation { channel, timestamp: minute * MIN, value, row }
    }

    fn specs() -> Vec<ChannelSpec> {
        let mut requests = ChannelSpec::new("requests", Role::Target);
        requests.aggregation = Aggregation::Sum;
        vec![ChannelSpec::new("cpu", Role::Target), requests, ChannelSpec::new("replicas", Role::Action)]
    }

    #[test]
    fn aggregates_within_cells_and_masks_gaps() {
        let mut o = vec![
            obs(0, 0, Some(1.0), 1),
            obs(0, 2, Some(3.0), 2),
            obs(1, 1, Some(10.0), 3),
            obs(1, 4, Some(5.0), 4),
            obs(2, 3, Some(4.0), 5),
            obs(2, 1, Some(2.0), 6),
            obs(0, 11, Some(7.0), 7),
        ];
        let r = regularise("svc", &specs(), Frequency::minutes(5), &mut o, Some("value"));
        let s = r.series.unwrap();
        assert_eq!(s.len(), 3);
        assert_eq!(s.channels[0].values, vec![2.0, 0.0, 7.0]);
        assert_eq!(s.channels[0].observed, vec![true, false, true]);
        assert_eq!(s.channels[1].values[0], 15.0);
        assert_eq!(s.channels[2].values[0], 4.0, "last by time, not by row");
        assert_eq!(r.account.used, 7);
    }

    #[test]
    fn duplicates_and_bad_values_are_accounted_for() {
        let mut o = vec![
            obs(0, 0, Some(1.0), 1),
            obs(0, 0, Some(1.0), 2),
            obs(0, 0, Some(2.0), 3),
            obs(0, 1, Some(f64::NAN), 4),
            obs(0, 7, None, 5),
        ];
        let r = regularise("svc", &specs()[..1], Frequency::minutes(5), &mut o, None);
        assert_eq!(r.account, ValueAccount { used: 1, missing: 1, duplicates: 1, rejected: 2 });
        assert_eq!(r.rejections[0].row, 3);
        assert_eq!(r.rejections[0].column, "cpu");
        assert!(matches!(r.rejections[0].reason, RejectReason::ConflictingDuplicate { kept_row: 1, .. }));
        assert_eq!(r.rejections[1].reason.key(), "non_finite");
        // The null at minute 7 extends the grid to a second, unobserved cell.
        assert_eq!(r.series.unwrap().channels[0].observed, vec![true, false]);
    }

    #[test]
    fn spacing_is_the_mode_or_the_median() {
        assert_eq!(infer_spacing(&[0, 5, 10, 20, 25]), Some(5));
        assert_eq!(infer_spacing(&[0, 31, 59, 90, 120]), Some(31));
        assert_eq!(infer_spacing(&[0, 9, 21, 32, 45]), Some(12));
        assert_eq!(infer_spacing(&[3]), None);
    }
}
