//! Prometheus for loopcast: PromQL range queries read as regular series (one query per
//! channel, series named by their labels, long ranges cut into pieces of at most 11,000
//! points as Prometheus requires), and forecast quantiles written back through the
//! remote-write protocol so Grafana draws them beside the actuals.
//!
//! Plain HTTP only: this crate builds no TLS stack.
#![warn(missing_docs, missing_debug_implementations, rust_2018_idioms, unreachable_pub)]

mod error;
mod labels;
mod query;
mod remote_write;
mod source;

pub use error::PromError;
pub use labels::{is_label_name, parse_series_name, series_name};
pub use query::{Fetched, fetch};
pub use remote_write::{Label, Sample, TimeSeries, WriteRequest, Written, forecast_series, remote_write};
pub use source::{Auth, ChannelQuery, MAX_POINTS_PER_QUERY, PrometheusSource, Window};
