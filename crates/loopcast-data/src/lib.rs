//! Telemetry ingestion for loopcast.
//!
//! Reads Parquet, CSV and Arrow IPC files in the long format (`series_id, timestamp,
//! channel, value`, with the Nixtla aliases `unique_id`/`item_id`, `ds`, `y`) or in a wide
//! format with an explicit column → role mapping. Reading, projection, filtering (a SQL
//! predicate) and sorting run in DataFusion under a memory limit (its sort spills to disk);
//! series then stream out one at a time, each regularised onto a frequency grid with an
//! explicit observation mask. Every input value is either used or reported.
//!
//! ```no_run
//! # async fn demo() -> Result<(), loopcast_data::DataError> {
//! use loopcast_data::{ReadOptions, TelemetryReader};
//! let mut reader = TelemetryReader::open("examples/data/service_long.parquet", ReadOptions::default()).await?;
//! while let Some(series) = reader.next_series().await? {
//!     println!("{}: {} cells", series.id, series.len());
//! }
//! println!("{:?}", reader.report());
//! # Ok(()) }
//! ```
#![warn(missing_docs, missing_debug_implementations, rust_2018_idioms, unreachable_pub)]

mod columns;
mod error;
mod format;
mod reader;
mod regularise;
mod report;
mod window;
mod writer;

pub use columns::{CHANNEL_ALIASES, ROLE_ALIASES, SERIES_ALIASES, TIMESTAMP_ALIASES, VALUE_ALIASES};
pub use error::DataError;
pub use format::{InputFormat, Layout};
pub use reader::{FileColumn, ReadOptions, TelemetryReader, file_columns};
pub use regularise::{Observation, RegularisedSeries, infer_spacing, regularise};
pub use report::{IngestReport, RejectReason, Rejection, RoleSource, ValueAccount};
pub use window::{Origins, WindowBatch, WindowBatcher, WindowSpec};
pub use writer::{
    AtomicParquetWriter, ForecastRows, ForecastWriter, LongSeriesWriter, concat_parquet, forecast_batch,
    forecast_schema, long_schema, parquet_rows, write_long_parquet,
};
