//! Windowing regular series into model-ready arrays: a context of `L` cells and a horizon
//! of `H` cells per window, per-channel masks, and batches of many series.

use loopcast_core::{ChannelSpec, RegularSeries, Role, Timestamp};

use crate::DataError;

/// Where windows are cut.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origins {
    /// One window per series, forecasting from just after its last observed target value
    /// (future actions and known covariates are read from the cells after it, if any).
    Last,
    /// The last `windows` windows whose horizons end at the last observed target value,
    /// `stride` cells apart (backtests).
    Backtest {
        /// How many windows.
        windows: usize,
        /// Cells between consecutive origins.
        stride: usize,
    },
    /// Every `stride` cells, for training: each window has at least `min_context` context
    /// cells and a complete horizon inside the series.
    Every {
        /// Cells between consecutive origins.
        stride: usize,
        /// Fewest context cells a window may have (the rest are padded and masked).
        min_context: usize,
    },
}

/// Context and horizon lengths and where to cut.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WindowSpec {
    /// Context cells `L`.
    pub context: usize,
    /// Horizon cells `H`.
    pub horizon: usize,
    /// Where windows start.
    pub origins: Origins,
}

impl WindowSpec {
    fn validate(&self) -> Result<(), DataError> {
        let positive = |name: &str, v: usize| {
            if v == 0 { Err(DataError::WindowSpec(format!("{name} must be at least 1"))) } else { Ok(()) }
        };
        positive("context", self.context)?;
        positive("horizon", self.horizon)?;
        match self.origins {
            Origins::Last => Ok(()),
            Origins::Backtest { windows, stride } => {
                positive("windows", windows)?;
                positive("stride", stride)
            }
            Origins::Every { stride, .. } => positive("stride", stride),
        }
    }

    /// Origins (index of the first horizon cell) of the windows of `series`, ascending.
    fn origins_of(&self, series: &RegularSeries, channels: &[ChannelSpec]) -> Vec<usize> {
        let last_target = channels
            .iter()
            .filter(|c| c.role == Role::Target)
            .filter_map(|c| series.channel(&c.name))
            .filter_map(|c| c.observed.iter().rposition(|o| *o))
            .max();
        let Some(last_target) = last_target else { return Vec::new() };
        let end = last_target + 1;
        match self.origins {
            Origins::Last => vec![end],
            Origins::Backtest { windows, stride } => {
                let mut origins: Vec<usize> = (0..windows)
                    .filter_map(|k| end.checked_sub(self.horizon + k * stride))
                    .filter(|o| *o >= 1)
                    .collect();
                origins.reverse();
                origins
            }
            Origins::Every { stride, min_context } => {
                let first = min_context.max(1);
                (first..).step_by(stride).take_while(|o| o + self.horizon <= end).collect()
            }
        }
    }
}

/// A batch of windows as flat row-major arrays, ready to become tensors.
///
/// Channels follow [`WindowBatch::channels`]. Masks are 1.0 where a value was observed.
/// Future values are the truth for targets (for training and backtests; zero and masked
/// past the end of the data), the planned values for actions and known covariates, and
/// always masked for covariates not known in advance.
#[derive(Debug, Clone, PartialEq)]
pub struct WindowBatch {
    /// Channel layout of every window.
    pub channels: Vec<ChannelSpec>,
    /// Context cells `L`.
    pub context_len: usize,
    /// Horizon cells `H`.
    pub horizon: usize,
    /// Series of each window.
    pub series: Vec<String>,
    /// Start time of the first horizon cell of each window.
    pub origins: Vec<Timestamp>,
    /// `[B, C, L]` context values.
    pub context: Vec<f32>,
    /// `[B, C, L]` context mask.
    pub context_mask: Vec<f32>,
    /// `[B, C, H]` future values.
    pub future: Vec<f32>,
    /// `[B, C, H]` future mask.
    pub future_mask: Vec<f32>,
}

impl WindowBatch {
    /// A batch of no windows over `channels`.
    pub fn empty(channels: &[ChannelSpec], context_len: usize, horizon: usize) -> Self {
        Self {
            channels: channels.to_vec(),
            context_len,
            horizon,
            series: Vec::new(),
            origins: Vec::new(),
            context: Vec::new(),
            context_mask: Vec::new(),
            future: Vec::new(),
            future_mask: Vec::new(),
        }
    }

    /// Number of windows `B`.
    pub fn len(&self) -> usize {
        self.series.len()
    }

    /// Whether the batch has no window.
    pub fn is_empty(&self) -> bool {
        self.series.is_empty()
    }

    fn push(&mut self, series: &RegularSeries, origin: usize) {
        let (l, h) = (self.context_len, self.horizon);
        self.series.push(series.id.clone());
        self.origins.push(series.timestamp(origin));
        for spec in &self.channels {
            let column = series.channel(&spec.name);
            let future_visible = spec.role == Role::Target || spec.known_future;
            for i in 0..l {
                let cell = (origin + i).checked_sub(l);
                let (v, m) = cell.and_then(|c| column.map(|col| read(col, c))).unwrap_or((0.0, 0.0));
                self.context.push(v);
                self.context_mask.push(m);
            }
            for i in 0..h {
                let (v, m) =
                    column.filter(|_| future_visible).map_or((0.0, 0.0), |col| read(col, origin + i));
                self.future.push(v);
                self.future_mask.push(m);
            }
        }
    }
}

fn read(column: &loopcast_core::ChannelValues, cell: usize) -> (f32, f32) {
    match column.observed.get(cell) {
        Some(true) => (column.values[cell] as f32, 1.0),
        _ => (0.0, 0.0),
    }
}

/// Cuts series into windows and groups them into batches of at most `batch_size`.
#[derive(Debug)]
pub struct WindowBatcher {
    spec: WindowSpec,
    batch_size: usize,
    pending: WindowBatch,
}

impl WindowBatcher {
    /// A batcher laying windows out with `channels` (a series lacking one has it masked).
    pub fn new(spec: WindowSpec, channels: &[ChannelSpec], batch_size: usize) -> Result<Self, DataError> {
        spec.validate()?;
        if batch_size == 0 {
            return Err(DataError::WindowSpec("batch size must be at least 1".to_string()));
        }
        Ok(Self { spec, batch_size, pending: WindowBatch::empty(channels, spec.context, spec.horizon) })
    }

    /// Adds the windows of `series`; returns the batches that became full.
    pub fn push(&mut self, series: &RegularSeries) -> Vec<WindowBatch> {
        let mut full = Vec::new();
        for origin in self.spec.origins_of(series, &self.pending.channels) {
            self.pending.push(series, origin);
            if self.pending.len() == self.batch_size {
                full.push(self.take());
            }
        }
        full
    }

    /// The last, partly filled batch, if any window is left.
    pub fn finish(mut self) -> Option<WindowBatch> {
        (!self.pending.is_empty()).then(|| self.take())
    }

    fn take(&mut self) -> WindowBatch {
        let empty = WindowBatch::empty(&self.pending.channels, self.spec.context, self.spec.horizon);
        std::mem::replace(&mut self.pending, empty)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use loopcast_core::{ChannelValues, Frequency};

    fn series(id: &str, target: &[Option<f64>], action: &[f64], temperature: &[f64]) -> RegularSeries {
        let column = |spec: ChannelSpec, values: Vec<Option<f64>>| ChannelValues {
            spec,
            observed: values.iter().map(Option::is_some).collect(),
            values: values.iter().map(|v| v.unwrap_or(0.0)).collect(),
        };
        RegularSeries::new(
            id,
            Frequency::hours(1),
            0,
            vec![
                column(ChannelSpec::new("cpu", Role::Target), target.to_vec()),
                column(
                    ChannelSpec::new("replicas", Role::Action),
                    action.iter().copied().map(Some).collect(),
                ),
                column(
                    ChannelSpec::new("temp", Role::Covariate),
                    temperature.iter().copied().map(Some).collect(),
                ),
            ],
        )
        .unwrap()
    }

    fn channels() -> Vec<ChannelSpec> {
        vec![
            ChannelSpec::new("cpu", Role::Target),
            ChannelSpec::new("replicas", Role::Action),
            ChannelSpec::new("temp", Role::Covariate),
        ]
    }

    #[test]
    fn last_origin_pads_context_and_reads_planned_actions() {
        // cpu observed for 3 cells; replicas planned for 2 more; temperature not known ahead.
        let s = series(
            "a",
            &[Some(1.0), None, Some(3.0), None, None],
            &[2.0, 2.0, 2.0, 4.0, 4.0],
            &[9.0, 9.0, 9.0, 9.0, 9.0],
        );
        let spec = WindowSpec { context: 4, horizon: 2, origins: Origins::Last };
        let mut batcher = WindowBatcher::new(spec, &channels(), 8).unwrap();
        assert!(batcher.push(&s).is_empty());
        let b = batcher.finish().unwrap();
        assert_eq!(b.len(), 1);
        assert_eq!(b.origins[0], 3 * 3_600_000_000);
        assert_eq!(&b.context[0..4], &[0.0, 1.0, 0.0, 3.0]);
        assert_eq!(&b.context_mask[0..4], &[0.0, 1.0, 0.0, 1.0]);
        // future cpu unknown, replicas planned, temperature hidden.
        assert_eq!(&b.future_mask[0..2], &[0.0, 0.0]);
        assert_eq!(&b.future[2..4], &[4.0, 4.0]);
        assert_eq!(&b.future_mask[2..4], &[1.0, 1.0]);
        assert_eq!(&b.future_mask[4..6], &[0.0, 0.0]);
    }

    #[test]
    fn backtest_windows_end_at_the_last_target() {
        let target: Vec<Option<f64>> = (0..20).map(|i| Some(f64::from(i))).collect();
        let s = series("a", &target, &[1.0; 20], &[0.0; 20]);
        let spec =
            WindowSpec { context: 5, horizon: 4, origins: Origins::Backtest { windows: 3, stride: 4 } };
        let mut batcher = WindowBatcher::new(spec, &channels()[..1], 2).unwrap();
        let full = batcher.push(&s);
        assert_eq!(full.len(), 1);
        let rest = batcher.finish().unwrap();
        let firsts: Vec<f32> = full[0].future.chunks(4).chain(rest.future.chunks(4)).map(|c| c[0]).collect();
        assert_eq!(firsts, vec![8.0, 12.0, 16.0]);
        assert_eq!(rest.future, vec![16.0, 17.0, 18.0, 19.0]);
    }

    #[test]
    fn training_windows_keep_complete_horizons() {
        let target: Vec<Option<f64>> = (0..10).map(|i| Some(f64::from(i))).collect();
        let s = series("a", &target, &[1.0; 10], &[0.0; 10]);
        let spec =
            WindowSpec { context: 4, horizon: 3, origins: Origins::Every { stride: 2, min_context: 2 } };
        let mut batcher = WindowBatcher::new(spec, &channels(), 100).unwrap();
        batcher.push(&s);
        let b = batcher.finish().unwrap();
        // origins 2, 4, 6 (origin 8 would need cells 8..11).
        assert_eq!(b.len(), 3);
        assert_eq!(b.context.len(), 3 * 3 * 4);
        assert!(WindowBatcher::new(WindowSpec { context: 0, ..spec }, &channels(), 1).is_err());
    }
}
