//! The routes of batch jobs and uploads: queue, list, follow, cancel and download jobs,
//! and store the files they read.

use std::io::Read;

use axum::Json;
use axum::body::{Body, Bytes};
use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};

use crate::api::{Job, JobList, JobRequest, Upload};
use crate::extract::ApiJson;
use crate::problem::Problem;
use crate::state::AppState;

use super::BodyErrors;

/// The body of a file, streamed from disk in blocks.
fn file_body(file: std::fs::File) -> Body {
    let blocks = futures::stream::unfold(Some(file), |file| async move {
        let mut file = file?;
        let read = tokio::task::spawn_blocking(move || {
            let mut block = vec![0u8; 256 * 1024];
            let n = file.read(&mut block)?;
            block.truncate(n);
            Ok::<_, std::io::Error>((block, file))
        })
        .await
        .unwrap_or_else(|e| Err(std::io::Error::other(e)));
        match read {
            Ok((block, _)) if block.is_empty() => None,
            Ok((block, file)) => Some((Ok(Bytes::from(block)), Some(file))),
            Err(e) => Some((Err(e), None)),
        }
    });
    Body::from_stream(blocks)
}

/// Queue a batch-scoring job over a file in the data directory.
#[utoipa::path(
    post,
    path = "/v1/jobs",
    request_body = JobRequest,
    responses(
        (status = 202, description = "Queued; `Location` names the job", body = Job),
        BodyErrors,
        (status = 404, description = "The `input` file does not exist in the data directory (`field`: `input`)", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "A field is not acceptable (named in `field`)", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Jobs are off, or the runner stopped", body = Problem, content_type = "application/problem+json"),
    ),
    security((), ("bearer" = [])),
)]
pub(super) async fn post_job(
    State(state): State<AppState>,
    ApiJson(request): ApiJson<JobRequest>,
) -> Result<Response, Problem> {
    let jobs = state.jobs()?;
    let bounds = state.worker().bounds();
    bounds.check_horizon(request.horizon)?;
    crate::prepare::levels(request.quantiles.as_deref(), bounds)?;
    crate::prepare::options(&request.compute, request.missing_actions, bounds)?;
    let job = jobs.submit(request)?;
    let location = format!("/v1/jobs/{}", job.id);
    Ok((StatusCode::ACCEPTED, [(header::LOCATION, location)], Json(job)).into_response())
}

/// Every job, oldest first.
#[utoipa::path(get, path = "/v1/jobs", responses((status = 200, body = JobList)), security((), ("bearer" = [])))]
pub(super) async fn list_jobs(State(state): State<AppState>) -> Result<Json<JobList>, Problem> {
    Ok(Json(JobList { jobs: state.jobs()?.list() }))
}

/// A job's state, progress, counts and error.
#[utoipa::path(
    get,
    path = "/v1/jobs/{id}",
    params(("id" = String, Path, description = "Job identifier")),
    responses(
        (status = 200, body = Job),
        (status = 404, description = "No such job", body = Problem, content_type = "application/problem+json"),
    ),
    security((), ("bearer" = [])),
)]
pub(super) async fn get_job(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Job>, Problem> {
    Ok(Json(state.jobs()?.get(&id)?))
}

/// Cancel a job: at once when queued, after its current chunk when running.
#[utoipa::path(
    delete,
    path = "/v1/jobs/{id}",
    params(("id" = String, Path, description = "Job identifier")),
    responses(
        (status = 202, description = "Cancelled, or cancelling (the state turns `cancelled` after the current chunk)", body = Job),
        (status = 404, description = "No such job", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The job has already ended", body = Problem, content_type = "application/problem+json"),
    ),
    security((), ("bearer" = [])),
)]
pub(super) async fn delete_job(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<(StatusCode, Json<Job>), Problem> {
    Ok((StatusCode::ACCEPTED, Json(state.jobs()?.cancel(&id)?)))
}

/// Download a finished job's output: long-format Parquet (`series_id, timestamp,
/// channel, scenario, q…, mean, loops_used`).
#[utoipa::path(
    get,
    path = "/v1/jobs/{id}/output",
    params(("id" = String, Path, description = "Job identifier")),
    responses(
        (status = 200, description = "The output file", content_type = "application/vnd.apache.parquet"),
        (status = 404, description = "No such job", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The job has not succeeded", body = Problem, content_type = "application/problem+json"),
    ),
    security((), ("bearer" = [])),
)]
pub(super) async fn job_output(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Response, Problem> {
    let path = state.jobs()?.output(&id)?;
    let file =
        std::fs::File::open(&path).map_err(|e| Problem::internal(format!("cannot open the output: {e}")))?;
    let length = file.metadata().map(|m| m.len()).unwrap_or_default();
    let headers = [
        (header::CONTENT_TYPE, PARQUET.to_string()),
        (header::CONTENT_LENGTH, length.to_string()),
        (header::CONTENT_DISPOSITION, format!("attachment; filename=\"{id}.parquet\"")),
    ];
    Ok((headers, file_body(file)).into_response())
}

/// Upload a telemetry file for jobs (stored as `uploads/{name}` in the data directory).
#[utoipa::path(
    put,
    path = "/v1/files/{name}",
    params(("name" = String, Path, max_length = 128, pattern = r"^[A-Za-z0-9_-][A-Za-z0-9._-]*\.([pP][aA][rR][qQ][uU][eE][tT]|[cC][sS][vV]|[aA][rR][rR][oO][wW][sS]?|[iI][pP][cC])$", description = "File name: 1 to 128 letters, digits, `.`, `_` or `-`, not starting with `.`, with its extension (.parquet, .csv, .arrow, .arrows, .ipc)")),
    request_body(content = Vec<u8>, content_type = "application/octet-stream", description = "The file's bytes (at least one)"),
    responses(
        (status = 201, description = "Stored; give `input` to `POST /v1/jobs`", body = Upload),
        (status = 413, description = "Over `jobs.max_upload_bytes`", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "A bad name, an empty body, or an `uploads` folder that leads out of the data directory (named in `field`)", body = Problem, content_type = "application/problem+json"),
    ),
    security((), ("bearer" = [])),
)]
pub(super) async fn put_file(
    State(state): State<AppState>,
    Path(name): Path<String>,
    body: Body,
) -> Response {
    match state.jobs() {
        Ok(jobs) => match jobs.upload(&name, body).await {
            Ok(upload) => (StatusCode::CREATED, Json(upload)).into_response(),
            Err(problem) => {
                // The rest of a refused upload is not read: the client must not reuse the
                // connection.
                let mut response = problem.into_response();
                response.headers_mut().insert(header::CONNECTION, header::HeaderValue::from_static("close"));
                response
            }
        },
        Err(problem) => problem.into_response(),
    }
}

/// The media type of Parquet files.
const PARQUET: &str = "application/vnd.apache.parquet";
