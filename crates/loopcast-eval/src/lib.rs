//! How loopcast is measured: point and probabilistic forecast metrics, their aggregation
//! across series and datasets, the baselines every figure is relative to, rolling-origin
//! backtests that run them all on the same windows, and their reports.
//!
//! Missing truth is `NaN` throughout and is skipped; a metric that has nothing left to
//! measure (no observed value, a zero scale) is `None`, never `NaN` or infinity, so
//! aggregates never silently swallow a broken series.
//!
//! ```
//! use loopcast_eval::{baselines, metrics};
//!
//! let context = [1.0, 2.0, 3.0, 1.0, 2.0, 3.0];
//! let forecast = baselines::seasonal_naive(&context, 3, 3);
//! assert_eq!(forecast, vec![1.0, 2.0, 3.0]);
//! assert_eq!(metrics::mase(&context, 3, &[1.0, 2.0, 4.0], &forecast), None); // zero scale
//! ```
#![warn(missing_docs, missing_debug_implementations, rust_2018_idioms, unreachable_pub)]

pub mod arx;
pub mod backtest;
pub mod baselines;
pub mod bench;
pub mod counterfactual;
pub mod detect;
pub mod detect_eval;
pub mod metrics;
pub mod monotone;
pub mod plan_eval;
pub mod report;

pub use backtest::{Backtest, BacktestConfig, EvalError, ModelName, ModelSummary, WindowScore, model_batch};
