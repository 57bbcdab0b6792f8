//! Domain types shared by every loopcast crate: channel roles and aggregations,
//! frequencies, regular series and panels, seasonal naive and seasonal periods found from the data, and the error type of the
//! domain layer.
//!
//! This crate has no heavy dependencies on purpose: the model, the simulator, the
//! service and the ingestion layer all speak these types.
#![warn(missing_docs, missing_debug_implementations, rust_2018_idioms, unreachable_pub)]

mod channel;
mod error;
mod frequency;
mod mapping;
mod periods;
mod seasonal;
mod series;

pub use channel::{Aggregation, ChannelSpec, Role};
pub use error::{CoreError, toml_error_line};
pub use frequency::Frequency;
pub use mapping::{ChannelEntry, ChannelMapping};
pub use periods::{Season, SeasonSource, find_season};
pub use seasonal::seasonal_naive_sources;
pub use series::{ChannelValues, Panel, RegularSeries, Timestamp};
