//! The loopcast forecasting service (DESIGN.md §6): forecasts, what-ifs and capacity
//! plans over JSON, resumable batch-scoring jobs over Parquet, with a dynamic batcher between the handlers and the
//! model, limits and `application/problem+json` errors that name the field, optional
//! bearer-token auth, Prometheus metrics and an OpenAPI document generated from the code.
//!
//! Modules depend one way. At the bottom, what imports nothing of the crate: the API's
//! types ([`api`]), problems, the configuration and [`metrics`]. Above them the batcher,
//! request preparation, the model worker and the services that run on it (forecasts and
//! what-ifs, plans, batch scoring), then the job manager, the extractors, the handlers'
//! state, and at the top the routes.
#![warn(missing_docs, missing_debug_implementations, rust_2018_idioms, unreachable_pub)]

pub mod api;
mod arrow_io;
mod batcher;
mod config;
mod console;
mod data_dir;
mod datasets;
mod extract;
mod forecasting;
mod frequency_field;
mod jobs;
pub mod metrics;
mod objects;
mod planning;
mod prepare;
mod problem;
mod routes;
mod score;
mod state;
mod worker;

use std::future::Future;

pub use api::{FORECAST_SCENARIO, ScoreProgress};
pub use arrow_io::ARROW_STREAM;
pub use batcher::{BatchError, Batcher, Plan, Ticket, WorkItem};
pub use config::{Batching, Jobs, Limits, ServeConfig};
pub use extract::{ApiBody, ApiJson, BodyLimit, parse};
pub use loopcast_eval::model_batch;
pub use problem::{PROBLEM_JSON, Problem};
pub use routes::{openapi_json, router};
pub use score::{ScoreError, ScoreSpec, Shard, score};
pub use state::AppState;
pub use worker::Worker;

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
    let upkeep = tokio::spawn(metrics::upkeep());
    let served = axum::serve(listener, app).with_graceful_shutdown(shutdown).await;
    upkeep.abort();
    served?;
    Ok(())
}
