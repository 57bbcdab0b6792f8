//! Seasonal naive, the baseline every forecast is measured against and the anchor an
//! anchored model decodes around, written once so both agree on gaps and short contexts.

/// The context index each of `steps` future steps copies under seasonal naive: the value
/// one season earlier (the last observed season, cycled); a missing value is taken a
/// season earlier again, falling back to the last observed value, which is also what a
/// context shorter than the season gives. `season` 1 is the naive forecast. `None` when
/// `observed` is false for every index below `len`.
pub fn seasonal_naive_sources(
    len: usize,
    season: usize,
    steps: usize,
    observed: impl Fn(usize) -> bool,
) -> Option<Vec<usize>> {
    let season = season.max(1);
    let last = (0..len).rev().find(|i| observed(*i))?;
    let lookup = |mut i: usize| loop {
        if observed(i) {
            return i;
        }
        if i < season {
            return last;
        }
        i -= season;
    };
    let source = |h: usize| {
        let back = season - h % season;
        if back > len { last } else { lookup(len - back) }
    };
    Some((0..steps).map(source).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gaps_come_from_a_season_earlier_and_short_contexts_repeat_the_last_value() {
        let observed = [true, true, true, true, false, true];
        let sources = seasonal_naive_sources(6, 3, 4, |i| observed[i]).unwrap();
        assert_eq!(sources, vec![3, 1, 5, 3], "index 4 is missing, so index 1 stands in");
        assert_eq!(seasonal_naive_sources(2, 24, 2, |_| true).unwrap(), vec![1, 1]);
        assert_eq!(seasonal_naive_sources(3, 1, 2, |i| i < 2).unwrap(), vec![1, 1]);
        assert_eq!(seasonal_naive_sources(3, 0, 1, |_| true).unwrap(), vec![2], "season 0 is naive");
        assert_eq!(seasonal_naive_sources(3, 2, 2, |_| false), None);
        assert_eq!(seasonal_naive_sources(0, 2, 2, |_| true), None);
    }
}
