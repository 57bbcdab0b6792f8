//! The HTTP application: the router of every route (one module per family: the model's
//! in [`model`], jobs and files in [`jobs`]; datasets and the console have their own),
//! bearer-token auth, per-route metrics and the OpenAPI document.

use std::time::Instant;

use axum::Router;
use axum::extract::{DefaultBodyLimit, MatchedPath, Request, State};
use axum::http::{HeaderMap, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use tower_http::compression::CompressionLayer;
use tower_http::trace::TraceLayer;
use utoipa::OpenApi;

use crate::extract::BodyLimit;
use crate::metrics;
use crate::problem::Problem;
use crate::state::AppState;
use crate::{console, datasets};

mod jobs;
mod model;

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
        .route("/openapi.json", get(openapi))
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

/// This document.
#[utoipa::path(get, path = "/openapi.json", responses((status = 200, description = "OpenAPI 3.1 document")), security((), ("bearer" = [])))]
async fn openapi() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "application/json")], openapi_json())
}

/// The OpenAPI document of the service, pretty-printed (what `schemas/openapi.json` holds).
pub fn openapi_json() -> String {
    ApiDoc::openapi().to_pretty_json().expect("the document serialises") + "\n"
}

#[derive(OpenApi)]
#[openapi(
    info(title = "loopcast", description = "Forecasts, counterfactual what-ifs and capacity plans for operations telemetry."),
    paths(model::forecast, model::whatif, model::plan, datasets::read_series, datasets::list_examples, datasets::get_example, jobs::post_job, jobs::list_jobs, jobs::get_job, jobs::delete_job, jobs::job_output, jobs::put_file, model::models, model::health, model::ready, model::metrics_text, openapi),
    modifiers(&BearerAuth),
)]
struct ApiDoc;

struct BearerAuth;

impl utoipa::Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(
                        "Needed only when the server has an API key (`api_key`, `LOOPCAST_API_KEY`); without one every route answers without it",
                    ))
                    .build(),
            ),
        );
    }
}
