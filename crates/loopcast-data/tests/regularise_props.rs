//! Invariants of regularisation, checked on random observations.

use std::collections::{BTreeMap, HashSet};

use loopcast_core::{Aggregation, ChannelSpec, Frequency, RegularSeries, Role};
use loopcast_data::{Observation, regularise};
use proptest::prelude::*;

const MINUTE: i64 = 60_000_000;

fn channels() -> Vec<ChannelSpec> {
    let mut requests = ChannelSpec::new("requests", Role::Target);
    requests.aggregation = Aggregation::Sum;
    let mut queue = ChannelSpec::new("queue", Role::Target);
    queue.aggregation = Aggregation::Max;
    vec![ChannelSpec::new("cpu", Role::Target), requests, queue, ChannelSpec::new("replicas", Role::Action)]
}

fn value() -> impl Strategy<Value = Option<f64>> {
    prop_oneof![
        3 => (0u8..6).prop_map(|v| Some(f64::from(v))),
        1 => Just(None),
        1 => prop_oneof![Just(f64::NAN), Just(f64::INFINITY), Just(f64::NEG_INFINITY)].prop_map(Some),
    ]
}

fn observations() -> impl Strategy<Value = Vec<Observation>> {
    prop::collection::vec((0usize..4, 0i64..240, value()), 1..120).prop_map(|cells| {
        cells
            .into_iter()
            .enumerate()
            .map(|(i, (channel, minute, value))| Observation {
                channel,
                timestamp: minute * MINUTE,
                value,
                row: i as u64 + 1,
            })
            .collect()
    })
}

fn frequency() -> impl Strategy<Value = Frequency> {
    prop::sample::select(vec![
        Frequency::minutes(1),
        Frequency::minutes(5),
        Frequency::minutes(15),
        Frequency::hours(1),
    ])
}

/// The series written back as observations: cell starts, with nulls for unobserved cells.
fn as_observations(series: &RegularSeries) -> Vec<Observation> {
    let mut out = Vec::new();
    for (channel, column) in series.channels.iter().enumerate() {
        for i in 0..series.len() {
            out.push(Observation {
                channel,
                timestamp: series.timestamp(i),
                value: column.observed[i].then_some(column.values[i]),
                row: out.len() as u64 + 1,
            });
        }
    }
    out
}

/// The first finite value of each (channel, timestamp), in row order: what must be kept.
fn kept_values(observations: &[Observation]) -> BTreeMap<(usize, i64), f64> {
    let mut kept = BTreeMap::new();
    for o in observations {
        if let Some(v) = o.value.filter(|v| v.is_finite()) {
            kept.entry((o.channel, o.timestamp)).or_insert(v);
        }
    }
    kept
}

proptest! {
    #[test]
    fn every_value_is_used_or_reported(mut obs in observations(), freq in frequency()) {
        let n = obs.len() as u64;
        let result = regularise("s", &channels(), freq, &mut obs, Some("value"));
        prop_assert_eq!(result.account.total(), n);
        prop_assert_eq!(result.rejections.len() as u64, result.account.rejected);
        prop_assert_eq!(result.account.used, kept_values(&obs).len() as u64);
    }

    #[test]
    fn masks_mark_exactly_the_empty_cells(mut obs in observations(), freq in frequency()) {
        let result = regularise("s", &channels(), freq, &mut obs, Some("value"));
        let filled: HashSet<(usize, i64)> =
            kept_values(&obs).keys().map(|&(channel, ts)| (channel, freq.cell(ts))).collect();
        if let Some(series) = result.series {
            for (channel, column) in series.channels.iter().enumerate() {
                for (i, observed) in column.observed.iter().enumerate() {
                    let cell = series.first_cell + i as i64;
                    prop_assert_eq!(*observed, filled.contains(&(channel, cell)));
                    if !observed {
                        prop_assert_eq!(column.values[i], 0.0);
                    }
                }
            }
        } else {
            prop_assert!(filled.is_empty());
        }
    }

    #[test]
    fn sums_are_conserved(mut obs in observations(), freq in frequency()) {
        let result = regularise("s", &channels(), freq, &mut obs, Some("value"));
        let expected: f64 = kept_values(&obs).iter().filter(|((c, _), _)| *c == 1).map(|(_, v)| v).sum();
        let got: f64 = result.series.map_or(0.0, |s| s.channels[1].values.iter().sum());
        prop_assert!((expected - got).abs() < 1e-9, "{} != {}", expected, got);
    }

    #[test]
    fn regularising_twice_changes_nothing(mut obs in observations(), freq in frequency()) {
        let once = regularise("s", &channels(), freq, &mut obs, Some("value"));
        if let Some(series) = once.series {
            let mut again = as_observations(&series);
            let twice = regularise("s", &channels(), freq, &mut again, Some("value"));
            prop_assert!(twice.rejections.is_empty());
            prop_assert_eq!(twice.series.as_ref(), Some(&series));
        }
    }
}
