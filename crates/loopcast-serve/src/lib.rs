//! The loopcast forecasting service (DESIGN.md §6): forecasts, what-ifs and capacity
//! plans over JSON, resumable batch-scoring jobs over Parquet, with a dynamic batcher between the handlers and the
//! model, limits and `application/problem+json` errors that name the field, optional
//! bearer-token auth, Prometheus metrics and an OpenAPI document generated from the code.
#![warn(missing_docs, missing_debug_implementations, rust_2018_idioms, unreachable_pub)]

pub mod api;
mod app;
mod arrow_io;
mod batcher;
mod config;
mod console;
mod datasets;
mod jobs;
pub mod metrics;
mod planning;
mod prepare;
mod problem;
mod score;

use std::future::Future;

pub use app::{ApiBody, ApiJson, AppState, openapi_json, parse, router};
pub use arrow_io::ARROW_STREAM;
pub use batcher::{BatchError, Batcher, Plan, Ticket, WorkItem};
pub use config::{Batching, Jobs, Limits, ServeConfig};
pub use loopcast_eval::model_batch;
pub use problem::{PROBLEM_JSON, Problem};
pub use score::{FORECAST_SCENARIO, ScoreError, ScoreProgress, ScoreSpec, Shard, score};

use loopcast_model::LoopedWorldModel;

/// Errors of starting the service.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// A bad configuration (file, environment or flag), named.
    #[error("{0}")]
    Config(String),
    /// The listening socket failed.
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

/// Serves `model` (named `name`) on `listener` until `shutdown` completes, then stops
/// taking connections and drains the requests in flight.
pub async fn serve(
    listener: tokio::net::TcpListener,
    config: &ServeConfig,
    model: LoopedWorldModel,
    name: String,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServeError> {
    let state = AppState::new(config, model, name);
    state.start_jobs(&config.jobs);
    let app = router(state);
    metrics::handle();
    axum::serve(listener, app).with_graceful_shutdown(shutdown).await?;
    Ok(())
}
