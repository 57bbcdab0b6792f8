//! Real series mixed into training (issue #29): files of `data.real` read once at the
//! start of a run, held in memory, and cut into windows at random split points per step.
//!
//! The M1 and Tourism competition series (`../shared/data/train/`, 2,312 monthly,
//! quarterly and yearly series, 235 k values) take about 2 MB this way. Short histories are
//! the point: a window's context before the series' start, and its future past the end, are
//! unobserved cells, as a real request with a short history would have them.

use loopcast_core::{ChannelEntry, ChannelMapping, Role, Season};
use loopcast_data::{ReadOptions, TelemetryReader};
use loopcast_model::ModelBatch;
use rand::Rng;
use rand_chacha::ChaCha8Rng;

use crate::{RealSource, TrainError};

/// Observed values a series needs before a split point (and so at least this many plus
/// one to be kept).
const MIN_HISTORY: usize = 8;

/// One target channel of a real series.
#[derive(Debug, Clone)]
struct RealSeries {
    values: Vec<f32>,
    observed: Vec<bool>,
    /// The calendar's season of the series' frequency.
    calendar: usize,
}

/// The real series of a recipe's `data.real`, in memory.
#[derive(Debug, Clone, Default)]
pub struct RealCorpus {
    series: Vec<RealSeries>,
}

impl RealCorpus {
    /// Reads every source (long layout, every channel a target; each channel of each
    /// series kept when it has more than 8 cells). A source that cannot be read, or that
    /// holds no such series, is an error naming it. Reading runs on the current tokio
    /// runtime, or on one of its own outside any: call it from synchronous code (the CLI
    /// trains on a blocking thread), never from inside an async task.
    pub fn load(sources: &[RealSource]) -> Result<Self, TrainError> {
        let mut series = Vec::new();
        for source in sources {
            let name = match &source.filter {
                Some(filter) => format!("`{}` (where {filter})", source.path.display()),
                None => format!("`{}`", source.path.display()),
            };
            let fail = |e: String| TrainError::Data(format!("real series {name}: {e}"));
            let read = read_source(source);
            let found = match tokio::runtime::Handle::try_current() {
                Ok(handle) => handle.block_on(read),
                Err(_) => tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .map_err(|e| fail(e.to_string()))?
                    .block_on(read),
            }
            .map_err(|e| fail(e.to_string()))?;
            if found.is_empty() {
                return Err(fail(format!("no series with more than {MIN_HISTORY} cells")));
            }
            series.extend(found);
        }
        Ok(Self { series })
    }

    /// Series (channels) held.
    pub fn len(&self) -> usize {
        self.series.len()
    }

    /// Whether no series is held.
    pub fn is_empty(&self) -> bool {
        self.series.is_empty()
    }

    /// `count` one-target windows of `context` and `horizon` steps: each a series drawn
    /// uniformly, split at a point drawn uniformly from those with at least 8 cells before
    /// and one after; cells outside the series are unobserved. Seasons are found in each
    /// context with the series' calendar season as the prior.
    pub(crate) fn windows(
        &self,
        rng: &mut ChaCha8Rng,
        count: usize,
        context: usize,
        horizon: usize,
    ) -> Result<ModelBatch, TrainError> {
        if self.series.is_empty() {
            return Err(TrainError::Data(
                "the recipe draws real series (`data.real_share`) but none were loaded".into(),
            ));
        }
        let (mut values, mut observed) = (Vec::with_capacity(count * context), Vec::new());
        let (mut future, mut known) = (Vec::with_capacity(count * horizon), Vec::new());
        let mut calendars = Vec::with_capacity(count);
        for _ in 0..count {
            let series = &self.series[rng.random_range(0..self.series.len())];
            let len = series.values.len();
            let split = rng.random_range(MIN_HISTORY..len);
            let cell = |i: isize| {
                usize::try_from(i)
                    .ok()
                    .filter(|i| *i < len && series.observed[*i])
                    .map_or((0.0, false), |i| (series.values[i], true))
            };
            for i in split as isize - context as isize..split as isize {
                let (v, o) = cell(i);
                values.push(v);
                observed.push(o);
            }
            for i in split as isize..(split + horizon) as isize {
                let (v, o) = cell(i);
                future.push(v);
                known.push(o);
            }
            calendars.push(series.calendar);
        }
        let data = |e: loopcast_model::ModelError| TrainError::Data(e.to_string());
        Ok(ModelBatch::new(vec![Role::Target], count, context, horizon, values, observed, future, known)
            .map_err(data)?
            .with_seasons(calendars)
            .map_err(data)?
            .find_seasons())
    }
}

/// The target channels of `source` (its `targets` where named) with more than
/// `MIN_HISTORY` cells once its `holdout` is cut off their ends.
async fn read_source(source: &RealSource) -> Result<Vec<RealSeries>, loopcast_data::DataError> {
    let mapping = (!source.targets.is_empty()).then(|| ChannelMapping {
        channels: source.targets.iter().map(|t| (t.clone(), ChannelEntry::Role(Role::Target))).collect(),
        ..ChannelMapping::default()
    });
    let options = ReadOptions {
        layout: source.format,
        mapping,
        filter: source.filter.clone(),
        ..ReadOptions::default()
    };
    let mut reader = TelemetryReader::open(&source.path, options).await?;
    let mut found = Vec::new();
    while let Some(series) = reader.next_series().await? {
        let calendar = Season::calendar(series.frequency.season()).steps;
        for channel in series.channels.iter().filter(|c| c.spec.role == Role::Target) {
            let kept = channel.values.len().saturating_sub(source.holdout);
            if kept > MIN_HISTORY {
                found.push(RealSeries {
                    values: channel.values[..kept].iter().map(|v| *v as f32).collect(),
                    observed: channel.observed[..kept].to_vec(),
                    calendar,
                });
            }
        }
    }
    Ok(found)
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng;

    use super::*;

    /// A long CSV of two monthly series: `a` with 30 values (1, 2, …), `b` with 5.
    fn corpus_file(dir: &std::path::Path) -> std::path::PathBuf {
        let mut text = String::from("unique_id,ds,y,kind\n");
        for (id, n) in [("a", 30), ("b", 5)] {
            for i in 0..n {
                text.push_str(&format!("{id},{}-{:02}-01,{},x\n", 2000 + i / 12, i % 12 + 1, i + 1));
            }
        }
        let path = dir.join("real.csv");
        std::fs::write(&path, text).unwrap();
        path
    }

    #[test]
    fn windows_cut_real_series_with_unobserved_cells_outside_them() {
        let dir = tempfile::tempdir().unwrap();
        let source = RealSource::file(corpus_file(dir.path()), None);
        let corpus = RealCorpus::load(&[source]).unwrap();
        assert_eq!(corpus.len(), 1, "`b` is too short to keep");
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let batch = corpus.windows(&mut rng, 64, 40, 12).unwrap();
        let ((values, observed), (future, known)) = (batch.context_arrays(), batch.future_arrays());
        for b in 0..64 {
            let (context, ahead) = (&values[b * 40..(b + 1) * 40], &future[b * 12..(b + 1) * 12]);
            let seen: Vec<f32> = (0..40).filter(|i| observed[b * 40 + i]).map(|i| context[i]).collect();
            // The context ends at the split: 1, 2, …, split, padded before the start.
            let split = seen.len();
            assert!((MIN_HISTORY..30).contains(&split), "{split}");
            assert_eq!(seen, (1..=split).map(|v| v as f32).collect::<Vec<_>>());
            assert!(observed[b * 40 + 40 - split..(b + 1) * 40].iter().all(|o| *o));
            // The future continues it until the series ends.
            let truth: Vec<f32> = (0..12).filter(|i| known[b * 12 + i]).map(|i| ahead[i]).collect();
            assert_eq!(truth, (split + 1..=30.min(split + 12)).map(|v| v as f32).collect::<Vec<_>>());
            assert_eq!(batch.season(b).steps, 12, "a monthly series' calendar season");
        }
    }

    #[test]
    fn a_holdout_leaves_the_end_of_every_series_out() {
        let dir = tempfile::tempdir().unwrap();
        let source = RealSource {
            holdout: 10,
            targets: vec!["y".into()],
            ..RealSource::file(corpus_file(dir.path()), None)
        };
        let corpus = RealCorpus::load(&[source]).unwrap();
        assert_eq!(corpus.len(), 1);
        let batch = corpus.windows(&mut ChaCha8Rng::seed_from_u64(2), 256, 40, 12).unwrap();
        let ((values, observed), (future, known)) = (batch.context_arrays(), batch.future_arrays());
        let seen =
            |v: &[f32], o: &[bool]| v.iter().zip(o).filter(|(_, o)| **o).map(|(v, _)| *v).fold(0.0, f32::max);
        // `a` is 1 … 30; 21 … 30 are held out, and 20 is reached.
        assert_eq!(seen(values, observed).max(seen(future, known)), 20.0);
        let err = RealCorpus::load(&[RealSource {
            holdout: 22,
            ..RealSource::file(corpus_file(dir.path()), None)
        }])
        .unwrap_err()
        .to_string();
        assert!(err.contains("no series with more than 8 cells"), "{err}");
    }

    #[test]
    fn sources_that_give_nothing_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let path = corpus_file(dir.path());
        let filtered = RealSource::file(path.clone(), Some("kind = 'none'".into()));
        let err = RealCorpus::load(&[filtered]).unwrap_err().to_string();
        assert!(err.contains("real.csv") && err.contains("no rows match"), "{err}");
        let short = RealSource::file(path.clone(), Some("unique_id = 'b'".into()));
        let err = RealCorpus::load(&[short]).unwrap_err().to_string();
        assert!(err.contains("unique_id = 'b'") && err.contains("no series with more than 8 cells"), "{err}");
        let missing = RealSource::file(dir.path().join("absent.parquet"), None);
        let err = RealCorpus::load(&[missing]).unwrap_err().to_string();
        assert!(err.contains("absent.parquet"), "{err}");
        let err = RealCorpus::default().windows(&mut ChaCha8Rng::seed_from_u64(0), 1, 32, 8).unwrap_err();
        assert!(err.to_string().contains("none were loaded"), "{err}");
    }
}
