//! The HTTP application: routes, handlers, the JSON extractor that names bad fields,
//! bearer-token auth, per-route metrics and the OpenAPI document.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, FromRequest, MatchedPath, Query, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use loopcast_model::{Forecast, LoopedWorldModel};
use serde::de::DeserializeOwned;
use tower_http::compression::CompressionLayer;
use tower_http::trace::TraceLayer;
use utoipa::OpenApi;

use crate::api::{
    ForecastRequest, ForecastResponse, ModelInfo, ModelsResponse, PlanForecast, PlanRequest, PlanResponse,
    SeriesForecast, SeriesWhatIf, Status, WhatIfRequest, WhatIfResponse,
};
use crate::arrow_io::{ARROW_STREAM, ArrowQuery, FromArrow, forecast_stream, wants_arrow, whatif_stream};
use crate::batcher::{BatchError, Batcher, Plan};
use crate::config::ServeConfig;
use crate::metrics;
use crate::prepare::{
    Bounds, Prepared, channel_forecasts, difference, loops_per_step, own_future, prepare, work_items,
};
use crate::problem::Problem;
use crate::{console, datasets, jobs};

/// Shared state of every handler.
#[derive(Debug, Clone)]
pub struct AppState {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    batcher: Batcher,
    bounds: Bounds,
    model: ModelInfo,
    api_key: Option<String>,
    timeout: Duration,
    queue_capacity: usize,
    max_body_bytes: usize,
    jobs: std::sync::OnceLock<crate::jobs::JobManager>,
}

impl AppState {
    /// Starts the model worker for `model` (named `name`) under `config`.
    pub fn new(config: &ServeConfig, model: LoopedWorldModel, name: String) -> Self {
        let model_config = model.config().clone();
        let info = ModelInfo {
            name,
            default: true,
            parameters: model.parameter_count(),
            device: config.device.clone(),
            quantiles: model_config.quantiles.clone(),
            patch_len: model_config.patch_len,
            max_context: model_config.max_context_patches * model_config.patch_len,
            max_horizon: model_config.max_horizon_patches * model_config.patch_len,
            min_loops: model_config.min_loops,
            max_loops: model_config.max_loops,
            exit_threshold: model_config.exit_threshold,
        };
        let bounds = Bounds::new(&model_config, &config.limits);
        let batcher = Batcher::start(model, config.batching.clone());
        Self {
            inner: Arc::new(Inner {
                batcher,
                bounds,
                model: info,
                api_key: config.api_key.clone(),
                timeout: Duration::from_millis(config.limits.request_timeout_ms),
                queue_capacity: config.batching.queue_capacity,
                max_body_bytes: config.limits.max_body_bytes,
                jobs: std::sync::OnceLock::new(),
            }),
        }
    }

    /// Whether the model worker is taking work.
    pub fn is_ready(&self) -> bool {
        self.inner.batcher.is_ready()
    }

    /// Starts the job runner under `config` (resuming the unfinished jobs found there);
    /// until then `/v1/jobs` answers 503. Needs a tokio runtime.
    pub fn start_jobs(&self, config: &crate::config::Jobs) {
        self.inner.jobs.get_or_init(|| crate::jobs::JobManager::start(self.clone(), config));
    }

    /// The job manager, once started.
    pub(crate) fn jobs(&self) -> Result<&crate::jobs::JobManager, Problem> {
        self.inner
            .jobs
            .get()
            .ok_or_else(|| Problem::unavailable("batch jobs are not running in this process"))
    }

    /// Queues work items for the model worker.
    pub(crate) fn submit(
        &self,
        items: Vec<crate::batcher::WorkItem>,
    ) -> Result<Vec<crate::batcher::Ticket>, BatchError> {
        self.inner.batcher.submit(items)
    }

    /// Every request's time budget.
    pub(crate) fn timeout(&self) -> Duration {
        self.inner.timeout
    }

    /// What the model and the limits allow a request.
    pub(crate) fn bounds(&self) -> &Bounds {
        &self.inner.bounds
    }

    /// The served model's name.
    pub(crate) fn model_name(&self) -> &str {
        &self.inner.model.name
    }

    /// Runs `prepared` with `plans(i)` as series `i`'s plans: groups the series into work
    /// items, queues them, and waits for every answer until the request's deadline.
    pub(crate) async fn run(
        &self,
        prepared: &Prepared,
        plans: impl Fn(usize) -> Vec<Plan>,
        deadline: Instant,
    ) -> Result<Answers, Problem> {
        let inner = &self.inner;
        let (groups, items) = work_items(prepared, plans, deadline)?;
        let mut places = vec![(0, 0); prepared.series.len()];
        for (item, group) in groups.iter().enumerate() {
            for (window, &series) in group.iter().enumerate() {
                places[series] = (item, window);
            }
        }
        let tickets = inner.batcher.submit(items).map_err(|e| self.problem(e))?;
        let answers = async {
            let mut answers = Vec::with_capacity(tickets.len());
            for ticket in tickets {
                answers.push(ticket.answer().await.map_err(|e| self.problem(e))?);
            }
            Ok(answers)
        };
        let items = tokio::time::timeout_at(deadline.into(), answers)
            .await
            .unwrap_or_else(|_| Err(Problem::deadline(inner.timeout.as_millis() as u64)))?;
        Ok(Answers { items, places })
    }

    fn problem(&self, error: BatchError) -> Problem {
        match error {
            BatchError::Overloaded => Problem::overloaded(self.inner.queue_capacity),
            BatchError::Stopped => Problem::unavailable("the model worker has stopped"),
            BatchError::DeadlinePassed => Problem::deadline(self.inner.timeout.as_millis() as u64),
            BatchError::Model(message) => Problem::internal(message),
        }
    }
}

impl AppState {
    /// Forecasts every target channel of every series, as `POST /v1/forecast` does.
    pub async fn forecast(&self, request: ForecastRequest) -> Result<ForecastResponse, Problem> {
        let deadline = Instant::now() + self.inner.timeout;
        let bounds = &self.inner.bounds;
        let prepared = prepare(
            &request.series,
            request.horizon,
            request.quantiles.as_deref(),
            &request.compute,
            request.missing_actions,
            bounds,
        )?;
        let answers = self.run(&prepared, |i| own_future(&prepared.series[i]), deadline).await?;
        let series = prepared
            .series
            .iter()
            .enumerate()
            .map(|(i, input)| {
                let (forecasts, window) = answers.of(i);
                SeriesForecast {
                    id: input.id.clone(),
                    timestamps: input.future_timestamps.clone(),
                    channels: channel_forecasts(
                        &forecasts[0],
                        window,
                        &input.targets,
                        &prepared.levels,
                        prepared.horizon,
                    ),
                    loops: loops_per_step(&forecasts[0], window, bounds.patch_len, prepared.horizon),
                }
            })
            .collect();
        Ok(ForecastResponse {
            model: self.inner.model.name.clone(),
            quantiles: prepared.levels.clone(),
            missing_actions: request.missing_actions,
            series,
        })
    }

    /// Rolls K action plans out from one encoding of each history, as `POST /v1/whatif`
    /// does.
    pub async fn whatif(&self, request: WhatIfRequest) -> Result<WhatIfResponse, Problem> {
        let deadline = Instant::now() + self.inner.timeout;
        let bounds = &self.inner.bounds;
        let prepared = prepare(
            &request.series,
            request.horizon,
            request.quantiles.as_deref(),
            &request.compute,
            request.missing_actions,
            bounds,
        )?;
        let baseline = check_plans(&request, bounds.limits.max_scenarios)?;
        let plans = (0..prepared.series.len())
            .map(|i| plan_arrays(&request, &prepared, i))
            .collect::<Result<Vec<_>, _>>()?;
        let answers = self.run(&prepared, |i| plans[i].clone(), deadline).await?;
        let series = prepared
            .series
            .iter()
            .enumerate()
            .map(|(i, input)| {
                let (forecasts, window) = answers.of(i);
                let outcome = |k: usize| {
                    channel_forecasts(
                        &forecasts[k],
                        window,
                        &input.targets,
                        &prepared.levels,
                        prepared.horizon,
                    )
                };
                let base = outcome(baseline);
                let plans = request
                    .plans
                    .iter()
                    .enumerate()
                    .map(|(k, plan)| {
                        let channels = outcome(k);
                        PlanForecast {
                            plan: plan.name.clone(),
                            difference: difference(&channels, &base),
                            channels,
                            loops: loops_per_step(&forecasts[k], window, bounds.patch_len, prepared.horizon),
                        }
                    })
                    .collect();
                SeriesWhatIf { id: input.id.clone(), timestamps: input.future_timestamps.clone(), plans }
            })
            .collect();
        Ok(WhatIfResponse {
            model: self.inner.model.name.clone(),
            baseline: request.plans[baseline].name.clone(),
            quantiles: prepared.levels.clone(),
            missing_actions: request.missing_actions,
            series,
        })
    }
}

/// The model's answers to one request, found by series.
pub(crate) struct Answers {
    /// Per work item, its forecasts (one per plan).
    items: Vec<Vec<Forecast>>,
    /// Per series, its work item and its window in that item.
    places: Vec<(usize, usize)>,
}

impl Answers {
    /// Series `i`'s forecasts (one per plan) and its window in them.
    pub(crate) fn of(&self, i: usize) -> (&[Forecast], usize) {
        let (item, window) = self.places[i];
        (&self.items[item], window)
    }
}

/// The router of every endpoint, with auth (all but `/health` and the console's files),
/// metrics, tracing, compression and the body limit.
pub fn router(state: AppState) -> Router {
    let max_body_bytes = state.inner.max_body_bytes;
    Router::new()
        .route("/v1/forecast", post(forecast))
        .route("/v1/whatif", post(whatif))
        .route("/v1/plan", post(plan))
        .route("/v1/jobs", post(jobs::post_job).get(jobs::list_jobs))
        .route("/v1/jobs/{id}", get(jobs::get_job).delete(jobs::delete_job))
        .route("/v1/jobs/{id}/output", get(jobs::job_output))
        .route("/v1/files/{name}", put(jobs::put_file).layer(DefaultBodyLimit::disable()))
        .route("/v1/series", post(datasets::read_series))
        .route("/v1/examples", get(datasets::list_examples))
        .route("/v1/examples/{name}", get(datasets::get_example))
        .route("/v1/models", get(models))
        .route("/ready", get(ready))
        .route("/metrics", get(metrics_text))
        .route("/openapi.json", get(openapi))
        .route_layer(middleware::from_fn_with_state(state.clone(), authorise))
        .route("/health", get(health))
        .route("/", get(console::index))
        .route("/console/{file}", get(console::file))
        .fallback(|| async { Problem::not_found("no such route; see /openapi.json") })
        .layer(middleware::from_fn(record))
        .layer(DefaultBodyLimit::max(max_body_bytes))
        .layer(CompressionLayer::new())
        .layer(TraceLayer::new_for_http())
        .with_state(state)
}

/// A JSON body whose errors name the field: 400 for broken JSON, 422 for a value of the
/// wrong type or shape, 413 past the body limit, 415 for another media type.
#[derive(Debug)]
pub struct ApiJson<T>(pub T);

impl<T: DeserializeOwned> FromRequest<AppState> for ApiJson<T> {
    type Rejection = Problem;

    async fn from_request(request: Request, state: &AppState) -> Result<Self, Self::Rejection> {
        let media = media_type(&request);
        if media != "application/json" && !media.ends_with("+json") {
            return Err(Problem::unsupported_media(request_media(&request), &["application/json"]));
        }
        let bytes = body_bytes(request, state).await?;
        parse(&bytes).map(ApiJson)
    }
}

/// A body as JSON, or as an Arrow IPC stream (`application/vnd.apache.arrow.stream`) with
/// the other fields as query parameters; errors as [`ApiJson`]'s.
#[derive(Debug)]
pub struct ApiBody<T>(pub T);

impl<T: DeserializeOwned + FromArrow> FromRequest<AppState> for ApiBody<T> {
    type Rejection = Problem;

    async fn from_request(request: Request, state: &AppState) -> Result<Self, Self::Rejection> {
        // Every refusal comes after the body is read: a response sent over an unread body
        // makes the server close the connection, and a client that reuses it (any HTTP
        // client's pool) sees its next request fail without an answer.
        let media = media_type(&request);
        if media == ARROW_STREAM {
            let query = Query::<ArrowQuery>::try_from_uri(request.uri())
                .map_err(|e| Problem::invalid("query", e.body_text()));
            let bytes = body_bytes(request, state).await?;
            T::from_arrow(&bytes, query?.0).map(ApiBody)
        } else if media == "application/json" || media.ends_with("+json") {
            ApiJson::<T>::from_request(request, state).await.map(|ApiJson(value)| ApiBody(value))
        } else {
            let problem =
                Problem::unsupported_media(request_media(&request), &["application/json", ARROW_STREAM]);
            body_bytes(request, state).await?;
            Err(problem)
        }
    }
}

/// The request's media type without parameters, lower-cased (empty when absent).
fn media_type(request: &Request) -> String {
    request_media(request).split(';').next().unwrap_or("").trim().to_ascii_lowercase()
}

/// The request's `Content-Type` as sent.
fn request_media(request: &Request) -> &str {
    request.headers().get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("")
}

/// The body's bytes, refused past the limit.
async fn body_bytes(request: Request, state: &AppState) -> Result<Bytes, Problem> {
    Bytes::from_request(request, state).await.map_err(|rejection| {
        if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
            Problem::too_large(state.inner.max_body_bytes)
        } else {
            Problem::malformed(rejection.body_text())
        }
    })
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

/// Parses a JSON body; the error names the path of the field at fault.
pub fn parse<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, Problem> {
    let mut deserializer = serde_json::Deserializer::from_slice(bytes);
    let value = serde_path_to_error::deserialize(&mut deserializer).map_err(|error| {
        let path = error.path().to_string();
        let inner = error.into_inner();
        match inner.classify() {
            serde_json::error::Category::Data => {
                Problem::invalid(if path == "." { "body".to_string() } else { path }, inner.to_string())
            }
            _ => Problem::malformed(format!("not valid JSON: {inner}")),
        }
    })?;
    deserializer.end().map_err(|e| Problem::malformed(format!("not valid JSON: {e}")))?;
    Ok(value)
}

async fn authorise(
    State(state): State<AppState>,
    headers: HeaderMap,
    request: Request,
    next: Next,
) -> Response {
    let Some(key) = &state.inner.api_key else {
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
    )), ModelErrors),
    security(("bearer" = [])),
)]
async fn forecast(
    State(state): State<AppState>,
    headers: HeaderMap,
    ApiBody(request): ApiBody<ForecastRequest>,
) -> Result<Response, Problem> {
    answer(&headers, state.forecast(request).await?, forecast_stream)
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
    )), ModelErrors),
    security(("bearer" = [])),
)]
async fn whatif(
    State(state): State<AppState>,
    headers: HeaderMap,
    ApiBody(request): ApiBody<WhatIfRequest>,
) -> Result<Response, Problem> {
    answer(&headers, state.whatif(request).await?, whatif_stream)
}

/// The cheapest action schedule that keeps a service-level bound, with the cost/risk
/// frontier.
#[utoipa::path(
    post,
    path = "/v1/plan",
    request_body = PlanRequest,
    responses((status = 200, description = "The cheapest schedule found that keeps the bound (or, when none does, `feasible: false` and the least risky), its forecast and the cost/risk frontier", body = PlanResponse), ModelErrors),
    security(("bearer" = [])),
)]
async fn plan(
    State(state): State<AppState>,
    ApiJson(request): ApiJson<PlanRequest>,
) -> Result<Json<PlanResponse>, Problem> {
    state.plan(request).await.map(Json)
}

/// The error answers of every route that runs the model.
#[derive(utoipa::IntoResponses)]
#[allow(dead_code)] // Only its OpenAPI description is used.
enum ModelErrors {
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

/// Checks the plans' count and names; returns the baseline's index.
fn check_plans(request: &WhatIfRequest, max_scenarios: usize) -> Result<usize, Problem> {
    let plans = &request.plans;
    if plans.is_empty() || plans.len() > max_scenarios {
        return Err(Problem::invalid(
            "plans",
            format!("1 to {max_scenarios} plans (limits.max_scenarios), got {}", plans.len()),
        ));
    }
    let mut names = BTreeSet::new();
    for (k, plan) in plans.iter().enumerate() {
        if !names.insert(plan.name.as_str()) {
            return Err(Problem::invalid(
                format!("plans[{k}].name"),
                format!("plan `{}` appears twice", plan.name),
            ));
        }
    }
    match &request.baseline {
        None => Ok(0),
        Some(name) => plans
            .iter()
            .position(|p| &p.name == name)
            .ok_or_else(|| Problem::invalid("baseline", format!("no plan is named `{name}`"))),
    }
}

/// Series `i`'s future under every plan: its own known future, overridden by each
/// plan's values for the channels it names.
fn plan_arrays(request: &WhatIfRequest, prepared: &Prepared, i: usize) -> Result<Vec<Plan>, Problem> {
    let series = &prepared.series[i];
    let horizon = prepared.horizon;
    let own = own_future(series).remove(0);
    request
        .plans
        .iter()
        .enumerate()
        .map(|(k, plan)| {
            let (mut values, mut known) = own.clone();
            for (name, planned) in &plan.actions {
                let field = format!("plans[{k}].actions.{name}");
                let Some(position) = series.inputs.iter().position(|n| n == name) else {
                    let detail = if series.targets.contains(name) {
                        format!("`{name}` is a target of series[{i}]; plans set actions and covariates")
                    } else {
                        format!("series[{i}] has no action or covariate channel `{name}`")
                    };
                    return Err(Problem::invalid(field, detail));
                };
                if planned.len() > horizon {
                    return Err(Problem::invalid(
                        field,
                        format!("{} values, more than the horizon of {horizon}", planned.len()),
                    ));
                }
                let row = (series.targets.len() + position) * horizon;
                for (t, value) in planned.iter().enumerate() {
                    if let Some(v) = value {
                        let narrow = *v as f32;
                        if !narrow.is_finite() {
                            return Err(Problem::invalid(
                                format!("{field}[{t}]"),
                                format!("{v} is out of range"),
                            ));
                        }
                        values[row + t] = narrow;
                        known[row + t] = true;
                    }
                }
            }
            Ok((values, known))
        })
        .collect()
}

/// The models this service answers with.
#[utoipa::path(get, path = "/v1/models", responses((status = 200, body = ModelsResponse)), security(("bearer" = [])))]
async fn models(State(state): State<AppState>) -> Json<ModelsResponse> {
    Json(ModelsResponse { models: vec![state.inner.model.clone()] })
}

/// Liveness: the process answers (no auth).
#[utoipa::path(get, path = "/health", responses((status = 200, body = Status)))]
async fn health() -> Json<Status> {
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
    security(("bearer" = [])),
)]
async fn ready(State(state): State<AppState>) -> Result<Json<Status>, Problem> {
    if state.is_ready() {
        Ok(Json(Status { status: "ready".into() }))
    } else {
        Err(Problem::unavailable("the model is still warming up"))
    }
}

/// Prometheus metrics in the text exposition format.
#[utoipa::path(get, path = "/metrics", responses((status = 200, description = "Prometheus text format", body = String, content_type = "text/plain")), security(("bearer" = [])))]
async fn metrics_text() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], metrics::handle().render())
}

/// This document.
#[utoipa::path(get, path = "/openapi.json", responses((status = 200, description = "OpenAPI 3.1 document")), security(("bearer" = [])))]
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
    paths(forecast, whatif, plan, datasets::read_series, datasets::list_examples, datasets::get_example, jobs::post_job, jobs::list_jobs, jobs::get_job, jobs::delete_job, jobs::job_output, jobs::put_file, models, health, ready, metrics_text, openapi),
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
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}
