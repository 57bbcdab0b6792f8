//! The HTTP application: the router of every route (one module per family: the model's
//! in [`model`], jobs and files in [`jobs`]; datasets and the console have their own),
//! bearer-token auth and per-route metrics; the OpenAPI document in [`openapi`].

use std::time::Instant;

use axum::Router;
use axum::extract::{DefaultBodyLimit, MatchedPath, Request, State};
use axum::http::{HeaderMap, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use tower_http::compression::CompressionLayer;
use tower_http::trace::TraceLayer;

use crate::extract::BodyLimit;
use crate::metrics;
use crate::problem::Problem;
use crate::state::AppState;
use crate::{console, datasets};

mod jobs;
mod model;
mod openapi;

pub use openapi::openapi_json;

/// The router of every endpoint, with auth (all but `/health` and the console's files),
/// metrics, tracing, compression and the body limit.
pub fn router(state: AppState) -> Router {
    let max_body_bytes = state.max_body_bytes();
    Router::new()
        .route("/v1/forecast", post(model::forecast))
        .route("/v1/whatif", post(model::whatif))
        .route("/v1/plan", post(model::plan))
        .route("/v1/jobs", post(jobs::post_job).get(jobs::list_jobs))
        .route("/v1/jobs/{id}", get(jobs::get_job).delete(jobs::delete_job))
        .route("/v1/jobs/{id}/output", get(jobs::job_output))
        .route("/v1/files/{name}", put(jobs::put_file).layer(DefaultBodyLimit::disable()))
        .route("/v1/series", post(datasets::read_series))
        .route("/v1/examples", get(datasets::list_examples))
        .route("/v1/examples/{name}", get(datasets::get_example))
        .route("/v1/models", get(model::models))
        .route("/ready", get(model::ready))
        .route("/metrics", get(model::metrics_text))
        .route("/openapi.json", get(openapi::openapi))
        .route_layer(middleware::from_fn_with_state(state.clone(), authorise))
        .route("/health", get(model::health))
        .route("/", get(console::index))
        .route("/console/{file}", get(console::file))
        .fallback(|| async { Problem::not_found("no such route; see /openapi.json") })
        .layer(middleware::from_fn(record))
        .layer(DefaultBodyLimit::max(max_body_bytes))
        .layer(CompressionLayer::new())
        .layer(TraceLayer::new_for_http())
        .with_state(state)
}

async fn authorise(
    State(state): State<AppState>,
    headers: HeaderMap,
    request: Request,
    next: Next,
) -> Response {
    let Some(key) = state.api_key() else {
        return next.run(request).await;
    };
    let Some(given) = headers.get(header::AUTHORIZATION) else {
        return Problem::unauthorized("this service needs `Authorization: Bearer <key>`").into_response();
    };
    let token = given.to_str().ok().and_then(|v| v.strip_prefix("Bearer ")).unwrap_or("");
    if !same(token.as_bytes(), key.as_bytes()) {
        return Problem::unauthorized("the bearer token is not the service's key").into_response();
    }
    next.run(request).await
}

/// Compares in time independent of where the strings differ.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

async fn record(request: Request, next: Next) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_string(), |p| p.as_str().to_string());
    let started = Instant::now();
    let response = next.run(request).await;
    metrics::request(&route, response.status().as_u16(), started.elapsed().as_secs_f64());
    response
}

/// The error answers of every route that reads a JSON body behind auth (its extractor's
/// and the auth layer's).
#[derive(utoipa::IntoResponses)]
#[allow(dead_code)] // Only its OpenAPI description is used.
enum BodyErrors {
    /// Not JSON
    #[response(status = 400, content_type = "application/problem+json")]
    Malformed(Problem),
    /// Missing or wrong bearer token
    #[response(status = 401, content_type = "application/problem+json")]
    Unauthorized(Problem),
    /// Body over the limit
    #[response(status = 413, content_type = "application/problem+json")]
    TooLarge(Problem),
    /// Not `application/json`
    #[response(status = 415, content_type = "application/problem+json")]
    Unsupported(Problem),
}
