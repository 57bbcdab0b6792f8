//! Regular series on a frequency grid, and panels of them.

use serde::{Deserialize, Serialize};

use crate::{ChannelSpec, CoreError, Frequency};

/// An instant as microseconds since the Unix epoch, UTC.
pub type Timestamp = i64;

/// The values of one channel on a series' grid, with an explicit observation mask.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChannelValues {
    /// The channel this column holds.
    pub spec: ChannelSpec,
    /// One value per grid cell; `0.0` where `observed` is false.
    pub values: Vec<f64>,
    /// `true` where at least one observation fell into the cell.
    pub observed: Vec<bool>,
}

impl ChannelValues {
    /// Number of grid cells with no observation.
    pub fn gaps(&self) -> usize {
        self.observed.iter().filter(|o| !**o).count()
    }
}

/// One series (a service, a host, a sensor) regularised onto a grid: every channel has
/// exactly `len` cells starting at grid cell `first_cell`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RegularSeries {
    /// Series identifier (`series_id` in the long format).
    pub id: String,
    /// The grid step.
    pub frequency: Frequency,
    /// Index of the first grid cell (see [`Frequency::cell`]).
    pub first_cell: i64,
    /// Channels, each with `len` cells.
    pub channels: Vec<ChannelValues>,
}

impl RegularSeries {
    /// Builds a series, checking that every channel covers the same number of cells.
    pub fn new(
        id: impl Into<String>,
        frequency: Frequency,
        first_cell: i64,
        channels: Vec<ChannelValues>,
    ) -> Result<Self, CoreError> {
        let id = id.into();
        let len = channels.first().map_or(0, |c| c.values.len());
        for channel in &channels {
            if channel.values.len() != len || channel.observed.len() != len {
                return Err(CoreError::Shape(format!(
                    "series `{id}`: channel `{}` has {} values and {} mask cells, expected {len}",
                    channel.spec.name,
                    channel.values.len(),
                    channel.observed.len()
                )));
            }
        }
        Ok(Self { id, frequency, first_cell, channels })
    }

    /// Number of grid cells.
    pub fn len(&self) -> usize {
        self.channels.first().map_or(0, |c| c.values.len())
    }

    /// Whether the series has no cells.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Start time of cell `i` of this series.
    pub fn timestamp(&self, i: usize) -> Timestamp {
        self.frequency.cell_start(self.first_cell + i as i64)
    }

    /// The channel named `name`, if present.
    pub fn channel(&self, name: &str) -> Option<&ChannelValues> {
        self.channels.iter().find(|c| c.spec.name == name)
    }

    /// Cells `range` of every channel, as a series of its own on the same grid.
    ///
    /// # Panics
    /// If the range reaches past the end of the series.
    pub fn slice(&self, range: std::ops::Range<usize>) -> RegularSeries {
        let channels = self
            .channels
            .iter()
            .map(|c| ChannelValues {
                spec: c.spec.clone(),
                values: c.values[range.clone()].to_vec(),
                observed: c.observed[range.clone()].to_vec(),
            })
            .collect();
        RegularSeries {
            id: self.id.clone(),
            frequency: self.frequency,
            first_cell: self.first_cell + range.start as i64,
            channels,
        }
    }
}

/// Many regular series sharing one frequency.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Panel {
    /// The common grid step.
    pub frequency: Frequency,
    /// The series, in the order they were read.
    pub series: Vec<RegularSeries>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Role;

    fn column(name: &str, values: Vec<f64>, observed: Vec<bool>) -> ChannelValues {
        ChannelValues { spec: ChannelSpec::new(name, Role::Target), values, observed }
    }

    #[test]
    fn channels_must_share_a_length() {
        let ok = RegularSeries::new(
            "a",
            Frequency::minutes(5),
            10,
            vec![column("cpu", vec![1.0, 2.0], vec![true, true])],
        )
        .unwrap();
        assert_eq!(ok.len(), 2);
        assert_eq!(ok.timestamp(1), 11 * 5 * 60 * 1_000_000);
        let err = RegularSeries::new(
            "a",
            Frequency::minutes(5),
            0,
            vec![column("cpu", vec![1.0, 2.0], vec![true, true]), column("rps", vec![1.0], vec![true])],
        )
        .unwrap_err();
        assert!(err.to_string().contains("`rps`"), "{err}");
    }

    #[test]
    fn slices_keep_the_grid() {
        let s = RegularSeries::new(
            "a",
            Frequency::minutes(5),
            10,
            vec![column("cpu", vec![1.0, 2.0, 3.0], vec![true, false, true])],
        )
        .unwrap();
        let tail = s.slice(1..3);
        assert_eq!(tail.first_cell, 11);
        assert_eq!(tail.timestamp(0), s.timestamp(1));
        assert_eq!(tail.channels[0].values, vec![2.0, 3.0]);
        assert_eq!(tail.channels[0].observed, vec![false, true]);
    }

    #[test]
    fn gaps_count_unobserved_cells() {
        let c = column("cpu", vec![1.0, 0.0, 3.0], vec![true, false, true]);
        assert_eq!(c.gaps(), 1);
    }
}
