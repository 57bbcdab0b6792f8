//! The model's routes: forecasts, what-ifs and plans (JSON or Arrow IPC), the models
//! served, liveness, readiness, metrics and the OpenAPI document.

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Response};

use crate::api::{
    ForecastRequest, ForecastResponse, ModelsResponse, PlanRequest, PlanResponse, Status, WhatIfRequest,
    WhatIfResponse,
};
use crate::arrow_io::{ARROW_STREAM, forecast_stream, wants_arrow, whatif_stream};
use crate::extract::{ApiBody, ApiJson};
use crate::metrics;
use crate::problem::Problem;
use crate::state::AppState;

use super::BodyErrors;

/// Forecast every target channel of every series.
#[utoipa::path(
    post,
    path = "/v1/forecast",
    request_body(
        description = "JSON, or an Arrow IPC stream: a long table `series_id, timestamp, channel, role, value` with the other fields as query parameters (`?horizon=48&quantiles=0.1,0.5,0.9`)",
        content((ForecastRequest = "application/json"), (Vec<u8> = "application/vnd.apache.arrow.stream")),
    ),
    responses((status = 200, description = "Quantile trajectories per series and target channel (`Accept: application/vnd.apache.arrow.stream`: rows `series_id, timestamp, channel, scenario, q…, mean, loops_used`)", content(
        (ForecastResponse = "application/json"),
        (Vec<u8> = "application/vnd.apache.arrow.stream"),
    )), BodyErrors, ModelErrors),
    security((), ("bearer" = [])),
)]
pub(super) async fn forecast(
    State(state): State<AppState>,
    headers: HeaderMap,
    ApiBody(request): ApiBody<ForecastRequest>,
) -> Result<Response, Problem> {
    answer(&headers, state.worker().forecast(request).await?, forecast_stream)
}

/// Roll K action plans out from one encoding of each history.
#[utoipa::path(
    post,
    path = "/v1/whatif",
    request_body(
        description = "JSON, or an Arrow IPC stream: a long table `series_id, timestamp, channel, role, value, scenario` (rows with a scenario are that plan's future values) with the other fields as query parameters",
        content((WhatIfRequest = "application/json"), (Vec<u8> = "application/vnd.apache.arrow.stream")),
    ),
    responses((status = 200, description = "One trajectory per plan and series, with its difference from the baseline (`Accept: application/vnd.apache.arrow.stream`: rows with the plan as `scenario`)", content(
        (WhatIfResponse = "application/json"),
        (Vec<u8> = "application/vnd.apache.arrow.stream"),
    )), BodyErrors, ModelErrors),
    security((), ("bearer" = [])),
)]
pub(super) async fn whatif(
    State(state): State<AppState>,
    headers: HeaderMap,
    ApiBody(request): ApiBody<WhatIfRequest>,
) -> Result<Response, Problem> {
    answer(&headers, state.worker().whatif(request).await?, whatif_stream)
}

/// The cheapest action schedule that keeps a service-level bound, with the cost/risk
/// frontier.
#[utoipa::path(
    post,
    path = "/v1/plan",
    request_body = PlanRequest,
    responses((status = 200, description = "The cheapest schedule found that keeps the bound (or, when none does, `feasible: false` and the least risky), its forecast and the cost/risk frontier", body = PlanResponse), BodyErrors, ModelErrors),
    security((), ("bearer" = [])),
)]
pub(super) async fn plan(
    State(state): State<AppState>,
    ApiJson(request): ApiJson<PlanRequest>,
) -> Result<Json<PlanResponse>, Problem> {
    state.worker().plan(request).await.map(Json)
}

/// The error answers of every route that runs the model, beside [`BodyErrors`].
#[derive(utoipa::IntoResponses)]
#[allow(dead_code)] // Only its OpenAPI description is used.
pub(super) enum ModelErrors {
    /// A field is not acceptable (named in `field`)
    #[response(status = 422, content_type = "application/problem+json")]
    Invalid(Problem),
    /// Queue full (see Retry-After)
    #[response(status = 503, content_type = "application/problem+json")]
    Overloaded(Problem),
    /// Deadline passed
    #[response(status = 504, content_type = "application/problem+json")]
    Deadline(Problem),
}

/// The models this service answers with.
#[utoipa::path(get, path = "/v1/models", responses((status = 200, body = ModelsResponse)), security((), ("bearer" = [])))]
pub(super) async fn models(State(state): State<AppState>) -> Json<ModelsResponse> {
    Json(ModelsResponse { models: vec![state.worker().model().clone()] })
}

/// Liveness: the process answers (no auth).
#[utoipa::path(get, path = "/health", responses((status = 200, body = Status)))]
pub(super) async fn health() -> Json<Status> {
    Json(Status { status: "ok".into() })
}

/// Readiness: the model is loaded and its worker takes work.
#[utoipa::path(
    get,
    path = "/ready",
    responses(
        (status = 200, body = Status),
        (status = 503, description = "Still warming up, or stopped", body = Problem, content_type = "application/problem+json"),
    ),
    security((), ("bearer" = [])),
)]
pub(super) async fn ready(State(state): State<AppState>) -> Result<Json<Status>, Problem> {
    if state.worker().is_ready() {
        Ok(Json(Status { status: "ready".into() }))
    } else {
        Err(Problem::unavailable("the model is still warming up"))
    }
}

/// Prometheus metrics in the text exposition format.
#[utoipa::path(get, path = "/metrics", responses((status = 200, description = "Prometheus text format", body = String, content_type = "text/plain")), security((), ("bearer" = [])))]
pub(super) async fn metrics_text() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], metrics::handle().render())
}

/// The answer as JSON, or as an Arrow IPC stream when `Accept` asks for one.
fn answer<T: serde::Serialize>(
    headers: &HeaderMap,
    value: T,
    arrow: impl FnOnce(&T) -> Result<Vec<u8>, Problem>,
) -> Result<Response, Problem> {
    if wants_arrow(headers.get(header::ACCEPT).and_then(|v| v.to_str().ok())) {
        Ok(([(header::CONTENT_TYPE, ARROW_STREAM)], arrow(&value)?).into_response())
    } else {
        Ok(Json(value).into_response())
    }
}
