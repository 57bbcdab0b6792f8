//! Errors of the ingestion layer. Every variant names the file, and where it applies the
//! column, row (1-based, in file order) and series.

use std::path::PathBuf;
use thiserror::Error;

use crate::report::Rejection;

/// An input that cannot be read, or an output that cannot be written.
#[derive(Debug, Error)]
pub enum DataError {
    /// The file could not be opened or read.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// The file's extension does not say which reader to use.
    #[error(
        "{path}: cannot tell the format from the extension (use .parquet, .csv, .arrow, .arrows, .ipc or .feather, or pass the format)"
    )]
    UnknownFormat {
        /// The file.
        path: PathBuf,
    },
    /// A required column is absent.
    #[error("{path}: missing column `{column}` (found: {available})")]
    MissingColumn {
        /// The file.
        path: PathBuf,
        /// The column that was looked for (with its accepted aliases).
        column: String,
        /// The columns the file has.
        available: String,
    },
    /// A column has a type that cannot hold what it should.
    #[error("{path}: column `{column}` has type {found}, expected {expected}")]
    WrongType {
        /// The file.
        path: PathBuf,
        /// The column.
        column: String,
        /// The Arrow type found.
        found: String,
        /// What would have been accepted.
        expected: &'static str,
    },
    /// A row-level problem in strict mode (non-finite value, unparseable timestamp,
    /// conflicting duplicate, ...).
    #[error("{path}: {rejection}")]
    Rejected {
        /// The file.
        path: PathBuf,
        /// What was wrong, where.
        rejection: Rejection,
    },
    /// Rows of a series are not contiguous or go back in time although the input was
    /// declared sorted.
    #[error(
        "{path}: row {row}: {message} (the input was declared sorted; drop --assume-sorted to let loopcast sort it)"
    )]
    OutOfOrder {
        /// The file.
        path: PathBuf,
        /// The first offending row.
        row: u64,
        /// What went back.
        message: String,
    },
    /// The input (after the filter) has no rows.
    #[error("{path}: no rows{}", .filter.as_ref().map(|f| format!(" match the filter `{f}`")).unwrap_or_default())]
    EmptyInput {
        /// The file.
        path: PathBuf,
        /// The filter that was applied, if any.
        filter: Option<String>,
    },
    /// The mapping names a channel that the data does not have.
    #[error("{path}: channel `{channel}` is in the mapping but not in the data (found: {available})")]
    ChannelNotInData {
        /// The file.
        path: PathBuf,
        /// The mapped channel.
        channel: String,
        /// The channels the data has.
        available: String,
    },
    /// Series of the same input have different frequencies.
    #[error(
        "{path}: mixed frequencies: series `{first_series}` is sampled every {first}, series `{series}` every {other}; pass a frequency to regularise all onto one grid"
    )]
    MixedFrequencies {
        /// The file.
        path: PathBuf,
        /// The series that set the frequency.
        first_series: String,
        /// Its frequency.
        first: String,
        /// A series that disagrees.
        series: String,
        /// Its frequency.
        other: String,
    },
    /// No series has two distinct timestamps, so no frequency can be inferred.
    #[error("{path}: cannot infer a frequency (no series has two distinct timestamps); pass one")]
    NoFrequency {
        /// The file.
        path: PathBuf,
    },
    /// The `role` column of a long table is inconsistent for a channel.
    #[error("{path}: column `role`: channel `{channel}` {message}")]
    RoleColumn {
        /// The file.
        path: PathBuf,
        /// The channel.
        channel: String,
        /// What is wrong.
        message: String,
    },
    /// The wide format was asked for without a mapping.
    #[error("{path}: the wide format needs a mapping that gives each channel column its role")]
    MappingRequired {
        /// The file.
        path: PathBuf,
    },
    /// The mapping or another domain value is invalid.
    #[error("{path}: {source}")]
    Mapping {
        /// The mapping file.
        path: PathBuf,
        /// What is wrong with it.
        source: loopcast_core::CoreError,
    },
    /// DataFusion could not plan or run the query (for example an invalid filter).
    #[error("{path}: {message}")]
    Query {
        /// The file.
        path: PathBuf,
        /// DataFusion's message.
        message: String,
    },
    /// Writing an output failed.
    #[error("{path}: cannot write: {message}")]
    Write {
        /// The output file.
        path: PathBuf,
        /// What failed.
        message: String,
    },
    /// Windows or batches were asked for with invalid sizes.
    #[error("invalid window spec: {0}")]
    WindowSpec(String),
}
