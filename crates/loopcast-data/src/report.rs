//! What ingestion did with every input value: used, missing, dropped as an identical
//! duplicate, or rejected with a reason.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;

use loopcast_core::{ChannelSpec, Frequency, Timestamp};

/// How many rejections are kept verbatim in a report (all are counted).
pub(crate) const REJECTION_SAMPLES: usize = 20;

/// Why an input value was not used.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum RejectReason {
    /// The series identifier is null.
    NullSeriesId,
    /// The timestamp is null.
    NullTimestamp,
    /// The channel name is null.
    NullChannel,
    /// The timestamp text could not be parsed.
    UnparseableTimestamp {
        /// The text found.
        text: String,
    },
    /// The value is NaN or infinite.
    NonFinite {
        /// The value found, as text (`NaN`, `inf`, `-inf`).
        value: String,
    },
    /// Another row has the same (series, timestamp, channel) and a different value.
    ConflictingDuplicate {
        /// The row whose value was kept.
        kept_row: u64,
        /// The value kept.
        kept: f64,
        /// The value rejected.
        value: f64,
    },
    /// The channel is not in the mapping.
    UnmappedChannel,
}

impl RejectReason {
    /// A short stable key for counting (`non_finite`, `conflicting_duplicate`, ...).
    pub fn key(&self) -> &'static str {
        match self {
            RejectReason::NullSeriesId => "null_series_id",
            RejectReason::NullTimestamp => "null_timestamp",
            RejectReason::NullChannel => "null_channel",
            RejectReason::UnparseableTimestamp { .. } => "unparseable_timestamp",
            RejectReason::NonFinite { .. } => "non_finite",
            RejectReason::ConflictingDuplicate { .. } => "conflicting_duplicate",
            RejectReason::UnmappedChannel => "unmapped_channel",
        }
    }
}

impl fmt::Display for RejectReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RejectReason::NullSeriesId => write!(f, "null series id"),
            RejectReason::NullTimestamp => write!(f, "null timestamp"),
            RejectReason::NullChannel => write!(f, "null channel name"),
            RejectReason::UnparseableTimestamp { text } => {
                write!(f, "unparseable timestamp `{text}`")
            }
            RejectReason::NonFinite { value } => write!(f, "non-finite value {value}"),
            RejectReason::ConflictingDuplicate { kept_row, kept, value } => write!(
                f,
                "duplicate (series, timestamp, channel) with value {value}, conflicting with {kept} at row {kept_row}"
            ),
            RejectReason::UnmappedChannel => write!(f, "channel not in the mapping"),
        }
    }
}

/// One rejected input value and where it was.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Rejection {
    /// 1-based data row in file order (the header of a CSV file is not counted).
    pub row: u64,
    /// The column that holds the bad value.
    pub column: String,
    /// The series, when it is known.
    pub series: Option<String>,
    /// What was wrong.
    pub reason: RejectReason,
}

impl fmt::Display for Rejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "row {}, column `{}`", self.row, self.column)?;
        if let Some(series) = &self.series {
            write!(f, ", series `{series}`")?;
        }
        write!(f, ": {}", self.reason)
    }
}

/// Where each input value went. `total() ==` the number of values read.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ValueAccount {
    /// Values that went into a grid cell.
    pub used: u64,
    /// Null values (missing scrapes): they extend the grid but leave the cell unobserved.
    pub missing: u64,
    /// Exact repeats of an earlier (series, timestamp, channel, value): dropped.
    pub duplicates: u64,
    /// Values rejected with a reason.
    pub rejected: u64,
}

impl ValueAccount {
    /// All values accounted for.
    pub fn total(&self) -> u64 {
        self.used + self.missing + self.duplicates + self.rejected
    }

    /// Adds another account to this one.
    pub fn add(&mut self, other: &ValueAccount) {
        self.used += other.used;
        self.missing += other.missing;
        self.duplicates += other.duplicates;
        self.rejected += other.rejected;
    }
}

/// Where the roles of the channels came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RoleSource {
    /// The mapping file.
    Mapping,
    /// A `role` column in the data.
    RoleColumn,
    /// Neither was given: every channel is taken as a target, and said so.
    DefaultAllTargets,
}

/// A summary of one ingestion: what was read, what grid it went onto, what was rejected.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IngestReport {
    /// The input file.
    pub file: String,
    /// Rows read after the filter.
    pub rows: u64,
    /// Where every value went.
    pub values: ValueAccount,
    /// Series regularised (series with no usable value are not counted).
    pub series: u64,
    /// Channels with their roles, targets first.
    pub channels: Vec<ChannelSpec>,
    /// Where the roles came from.
    pub role_source: RoleSource,
    /// The grid step (given or inferred).
    pub frequency: Option<Frequency>,
    /// Whether the frequency was inferred from the data.
    pub frequency_inferred: bool,
    /// Earliest timestamp used (microseconds since the epoch, UTC).
    pub start: Option<Timestamp>,
    /// Latest timestamp used.
    pub end: Option<Timestamp>,
    /// Grid cells over all series and channels.
    pub cells: u64,
    /// Grid cells with no observation.
    pub gap_cells: u64,
    /// Rejections counted by reason key.
    pub rejected_by_reason: BTreeMap<String, u64>,
    /// The first rejections, verbatim.
    pub rejection_samples: Vec<Rejection>,
}

impl IngestReport {
    pub(crate) fn new(file: String, channels: Vec<ChannelSpec>, role_source: RoleSource) -> Self {
        Self {
            file,
            rows: 0,
            values: ValueAccount::default(),
            series: 0,
            channels,
            role_source,
            frequency: None,
            frequency_inferred: false,
            start: None,
            end: None,
            cells: 0,
            gap_cells: 0,
            rejected_by_reason: BTreeMap::new(),
            rejection_samples: Vec::new(),
        }
    }

    /// Share of grid cells with no observation, in [0, 1].
    pub fn gap_share(&self) -> f64 {
        if self.cells == 0 { 0.0 } else { self.gap_cells as f64 / self.cells as f64 }
    }

    pub(crate) fn record_rejection(&mut self, rejection: Rejection) {
        *self.rejected_by_reason.entry(rejection.reason.key().to_string()).or_default() += 1;
        if self.rejection_samples.len() < REJECTION_SAMPLES {
            self.rejection_samples.push(rejection);
        }
    }
}
