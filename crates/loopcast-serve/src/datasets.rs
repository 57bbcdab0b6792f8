//! Telemetry files into request series: `POST /v1/series` reads an uploaded Parquet, CSV
//! or Arrow IPC file (long or wide) with the reader batch jobs use, and
//! `GET /v1/examples[/{name}]` serves the example datasets bundled with the binary. The
//! console builds its requests from these, and so can any other client.

use std::collections::BTreeMap;
use std::path::Path;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path as UrlPath, Query};
use axum::http::{HeaderMap, header};
use chrono::DateTime;
use loopcast_core::{ChannelEntry, ChannelMapping, RegularSeries, Role};
use loopcast_data::{
    DataError, InputFormat, Layout, ReadOptions, SERIES_ALIASES, TIMESTAMP_ALIASES, TelemetryReader,
    file_columns,
};
use serde::Deserialize;

use crate::api::{
    ChannelInput, ExampleDataset, ExamplePlan, ExampleSummary, ExamplesResponse, PlanRequest, SeriesFile,
    SeriesInput, TableLayout,
};
use crate::problem::Problem;

/// Query parameters of `POST /v1/series`.
#[derive(Debug, Clone, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub(crate) struct SeriesQuery {
    /// The file's name, used in messages and to tell its format by extension: its last
    /// path component of letters, digits, `.`, `_`, `-` and spaces, not starting with `.`.
    #[param(pattern = r"^(.*[/\\])?[A-Za-z0-9_ -][A-Za-z0-9._ -]{0,199}$")]
    name: Option<String>,
    /// `parquet`, `csv` or `arrow` (also `arrow_ipc`, `ipc`, `feather`; any case; default:
    /// from `Content-Type`, then from `name`).
    #[param(
        pattern = r"^([pP][aA][rR][qQ][uU][eE][tT]|[cC][sS][vV]|[aA][rR][rR][oO][wW](_[iI][pP][cC])?|[iI][pP][cC]|[fF][eE][aA][tT][hH][eE][rR])$"
    )]
    format: Option<String>,
    /// `long` (`series_id, timestamp, channel, value`) or `wide` (one column per channel).
    #[serde(default)]
    layout: TableLayout,
    /// Column of the series identifier (default: `series_id`, `unique_id` or `item_id`).
    series_id: Option<String>,
    /// Column of the timestamp (default: `timestamp` or `ds`).
    timestamp: Option<String>,
    /// Grid step (`5m`, `1h`, …; default: inferred from the data).
    frequency: Option<String>,
    /// Comma-separated target channels (wide default: every other number column; when
    /// given, a long file keeps only the channels named here and in the next two).
    targets: Option<String>,
    /// Comma-separated action channels (replicas, traffic weights, …).
    actions: Option<String>,
    /// Comma-separated covariate channels.
    covariates: Option<String>,
}

/// Read a telemetry file into request series.
#[utoipa::path(
    post,
    path = "/v1/series",
    params(SeriesQuery),
    request_body(
        description = "The file's bytes: Parquet, CSV (with a header) or Arrow IPC, long or wide",
        content((Vec<u8> = "text/csv"), (Vec<u8> = "application/vnd.apache.parquet"), (Vec<u8> = "application/vnd.apache.arrow.file")),
    ),
    responses(
        (status = 200, description = "The file's series, regularised onto one grid (gaps as `null`)", body = SeriesFile),
        (status = 413, description = "Body over the limit", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "The file or a parameter is not acceptable: `field` names the parameter, or `file` with the column and row in `detail`", body = Problem, content_type = "application/problem+json"),
    ),
    security((), ("bearer" = [])),
)]
pub(crate) async fn read_series(
    headers: HeaderMap,
    query: Result<Query<SeriesQuery>, axum::extract::rejection::QueryRejection>,
    body: Bytes,
) -> Result<Json<SeriesFile>, Problem> {
    let Query(query) = query.map_err(|e| Problem::invalid("query", e.body_text()))?;
    let name = upload_name(query.name.as_deref())?;
    let content_type = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok());
    let format = upload_format(query.format.as_deref(), content_type, &name)?;
    if body.is_empty() {
        return Err(Problem::invalid("file", format!("{name}: the upload is empty")));
    }
    let dir = tempfile::tempdir().map_err(|e| Problem::internal(format!("cannot stage the upload: {e}")))?;
    let path = dir.path().join(&name);
    tokio::fs::write(&path, &body)
        .await
        .map_err(|e| Problem::internal(format!("cannot stage the upload: {e}")))?;
    let roles = query_roles(&query)?;
    let mapping = upload_mapping(&query, &roles, &path, format).await?;
    let layout = Layout::from(query.layout);
    let options =
        ReadOptions { format: Some(format), layout, mapping: Some(mapping), ..ReadOptions::default() };
    let mut file = read_file(&path, options).await.map_err(|e| data_problem(&e, dir.path(), &query))?;
    if layout == Layout::Long {
        relabel(&mut file, &roles, query.targets.is_some())?;
    }
    Ok(Json(file))
}

/// The upload's file name: its last path component, of plain characters.
fn upload_name(name: Option<&str>) -> Result<String, Problem> {
    let Some(name) = name else { return Ok("upload".to_string()) };
    let base = name.rsplit(['/', '\\']).next().unwrap_or_default();
    let plain = base.chars().all(|c| c.is_ascii_alphanumeric() || "._- ".contains(c));
    if base.is_empty() || base.starts_with('.') || !plain || base.len() > 200 {
        return Err(Problem::invalid("name", format!("`{name}` is not a plain file name")));
    }
    Ok(base.to_string())
}

/// The format named by `format`, else by the media type, else by the name's extension.
fn upload_format(
    format: Option<&str>,
    content_type: Option<&str>,
    name: &str,
) -> Result<InputFormat, Problem> {
    if let Some(format) = format {
        return match format.to_ascii_lowercase().as_str() {
            "parquet" => Ok(InputFormat::Parquet),
            "csv" => Ok(InputFormat::Csv),
            "arrow" | "arrow_ipc" | "ipc" | "feather" => Ok(InputFormat::ArrowIpc),
            other => Err(Problem::invalid("format", format!("`{other}` is not parquet, csv or arrow"))),
        };
    }
    let media = content_type.and_then(|c| c.split(';').next()).unwrap_or("").trim().to_ascii_lowercase();
    match media.as_str() {
        "text/csv" => return Ok(InputFormat::Csv),
        "application/vnd.apache.parquet" | "application/x-parquet" => return Ok(InputFormat::Parquet),
        "application/vnd.apache.arrow.file" | "application/vnd.apache.arrow.stream" => {
            return Ok(InputFormat::ArrowIpc);
        }
        _ => {}
    }
    InputFormat::from_path(Path::new(name)).map_err(|_| {
        Problem::invalid(
            "format",
            format!("cannot tell the format of `{name}`: give format=parquet, csv or arrow"),
        )
    })
}

/// The comma-separated names of a parameter.
fn names(list: Option<&str>) -> Vec<String> {
    list.unwrap_or("").split(',').map(str::trim).filter(|n| !n.is_empty()).map(str::to_string).collect()
}

/// The roles the query gives, by channel, with the parameter that gave each.
fn query_roles(query: &SeriesQuery) -> Result<BTreeMap<String, (&'static str, Role)>, Problem> {
    let mut roles = BTreeMap::new();
    let lists = [
        ("targets", &query.targets, Role::Target),
        ("actions", &query.actions, Role::Action),
        ("covariates", &query.covariates, Role::Covariate),
    ];
    for (field, list, role) in lists {
        for name in names(list.as_deref()) {
            if roles.insert(name.clone(), (field, role)).is_some() {
                return Err(Problem::invalid(field, format!("`{name}` is given two roles")));
            }
        }
    }
    Ok(roles)
}

/// The mapping the query describes. A wide file's channels are the named ones, and when
/// no targets are named, every other number column but the keys; a long file's channels
/// come from the file, and [`relabel`] applies the roles.
async fn upload_mapping(
    query: &SeriesQuery,
    roles: &BTreeMap<String, (&'static str, Role)>,
    path: &Path,
    format: InputFormat,
) -> Result<ChannelMapping, Problem> {
    let frequency = match &query.frequency {
        None => None,
        Some(text) => Some(crate::frequency_field::parse("frequency", text)?),
    };
    let mut channels = BTreeMap::new();
    if query.layout == TableLayout::Wide {
        for (name, (_, role)) in roles {
            channels.insert(name.clone(), ChannelEntry::Role(*role));
        }
        if query.targets.is_none() {
            let columns = file_columns(path, Some(format))
                .await
                .map_err(|e| Problem::invalid("file", strip_dir(&e.to_string(), path.parent())))?;
            let is_key = |column: &str, explicit: &Option<String>, aliases: &[&str]| match explicit {
                Some(name) => name == column,
                None => aliases.iter().any(|a| a.eq_ignore_ascii_case(column)),
            };
            for column in columns.iter().filter(|c| c.numeric) {
                let key = is_key(&column.name, &query.series_id, SERIES_ALIASES)
                    || is_key(&column.name, &query.timestamp, TIMESTAMP_ALIASES);
                if !key && !channels.contains_key(&column.name) {
                    channels.insert(column.name.clone(), ChannelEntry::Role(Role::Target));
                }
            }
            if !channels.values().any(|entry| matches!(entry, ChannelEntry::Role(Role::Target))) {
                let all: Vec<&str> = columns.iter().map(|c| c.name.as_str()).collect();
                return Err(Problem::invalid(
                    "targets",
                    format!("no number column is left to forecast; the file has {}", all.join(", ")),
                ));
            }
        }
    }
    Ok(ChannelMapping {
        series_id: query.series_id.clone(),
        timestamp: query.timestamp.clone(),
        frequency,
        channels,
    })
}

/// Gives the channels of a long file the roles the query names; with `targets` named,
/// keeps only the named channels.
fn relabel(
    file: &mut SeriesFile,
    roles: &BTreeMap<String, (&'static str, Role)>,
    keep_named: bool,
) -> Result<(), Problem> {
    for series in &mut file.series {
        let id = series.id.clone().unwrap_or_default();
        for (name, (field, _)) in roles {
            if !series.channels.iter().any(|c| &c.name == name) {
                let found: Vec<&str> = series.channels.iter().map(|c| c.name.as_str()).collect();
                return Err(Problem::invalid(
                    *field,
                    format!("`{name}` is not a channel of series `{id}` (found: {})", found.join(", ")),
                ));
            }
        }
        if keep_named {
            series.channels.retain(|c| roles.contains_key(&c.name));
        }
        for channel in &mut series.channels {
            if let Some((_, role)) = roles.get(&channel.name) {
                channel.role = (*role).into();
            }
        }
    }
    Ok(())
}

/// Every series of `path` as request series.
async fn read_file(path: &Path, options: ReadOptions) -> Result<SeriesFile, DataError> {
    let reader = TelemetryReader::open(path, options).await?;
    let mut series = Vec::new();
    let report = reader
        .for_each_series(|s| {
            series.push(series_input(&s));
            Ok(())
        })
        .await?;
    let file = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    Ok(SeriesFile { file, rows: report.rows, gap_cells: report.gap_cells, series })
}

/// A regularised series as a request series: its grid as `start` and `frequency`, its
/// unobserved cells as `null`.
fn series_input(series: &RegularSeries) -> SeriesInput {
    let channels = series
        .channels
        .iter()
        .map(|channel| ChannelInput {
            name: channel.spec.name.clone(),
            role: channel.spec.role.into(),
            values: channel
                .values
                .iter()
                .zip(&channel.observed)
                .map(|(v, seen)| seen.then_some(*v))
                .collect(),
            future: None,
        })
        .collect();
    SeriesInput {
        id: Some(series.id.clone()),
        timestamps: None,
        start: DateTime::from_timestamp_micros(series.frequency.cell_start(series.first_cell)),
        frequency: Some(series.frequency.to_string()),
        season: None,
        channels,
    }
}

/// A reading error as a 422 naming the parameter at fault, or `file` (the message names
/// the file by its uploaded name, and the column and row).
fn data_problem(error: &DataError, dir: &Path, query: &SeriesQuery) -> Problem {
    let detail = strip_dir(&error.to_string(), Some(dir));
    let field = match error {
        DataError::MissingColumn { column, .. }
            if query.series_id.as_ref() == Some(column) || query.timestamp.as_ref() == Some(column) =>
        {
            if query.series_id.as_ref() == Some(column) {
                "series_id"
            } else {
                "timestamp"
            }
        }
        DataError::ChannelNotInData { channel, .. } => {
            let named = |list: &Option<String>| names(list.as_deref()).contains(channel);
            if named(&query.actions) {
                "actions"
            } else if named(&query.covariates) {
                "covariates"
            } else {
                "targets"
            }
        }
        _ => "file",
    };
    Problem::invalid(field, detail)
}

/// `message` without the staging directory's path.
fn strip_dir(message: &str, dir: Option<&Path>) -> String {
    match dir {
        Some(dir) => message.replace(&format!("{}/", dir.display()), ""),
        None => message.to_string(),
    }
}

/// An example dataset: what it is, and how its series are made.
struct Example {
    name: &'static str,
    title: &'static str,
    description: &'static str,
    horizon: usize,
    source: Source,
}

/// Where an example's series come from.
enum Source {
    /// A wide CSV file read with its mapping, as an upload would be.
    WideCsv { file: &'static str, csv: &'static str, mapping: &'static str },
    /// The series of a request body.
    Request(&'static str),
}

/// The capacity question asked of every example (`examples/requests/plan.json`).
const PLAN_REQUEST: &str = include_str!("../../../examples/requests/plan.json");

const EXAMPLES: &[Example] = &[
    Example {
        name: "services",
        title: "Three services, two days at 5 minutes",
        description: "examples/data/services_wide.csv: request rate, CPU and p95 latency of api, checkout \
                      and search with their replica counts, read with its mapping like an uploaded wide CSV.",
        horizon: 48,
        source: Source::WideCsv {
            file: "services_wide.csv",
            csv: include_str!("../../../examples/data/services_wide.csv"),
            mapping: include_str!("../../../examples/data/services_wide.mapping.toml"),
        },
    },
    Example {
        name: "checkout",
        title: "Two services, one day at 5 minutes, with gaps",
        description: "examples/requests/forecast.json: checkout and api, with missing values and the replica \
                      counts as an action.",
        horizon: 48,
        source: Source::Request(include_str!("../../../examples/requests/forecast.json")),
    },
];

fn summary(example: &Example) -> ExampleSummary {
    ExampleSummary {
        name: example.name.to_string(),
        title: example.title.to_string(),
        description: example.description.to_string(),
    }
}

/// The example datasets bundled with the service.
#[utoipa::path(get, path = "/v1/examples", responses((status = 200, body = ExamplesResponse)), security((), ("bearer" = [])))]
pub(crate) async fn list_examples() -> Json<ExamplesResponse> {
    Json(ExamplesResponse { examples: EXAMPLES.iter().map(summary).collect() })
}

/// One example dataset: its series, a horizon and a plan search that suit it.
#[utoipa::path(
    get,
    path = "/v1/examples/{name}",
    params(("name" = String, Path, description = "The example's name, from `GET /v1/examples`")),
    responses(
        (status = 200, body = ExampleDataset),
        (status = 404, description = "No such example", body = Problem, content_type = "application/problem+json"),
    ),
    security((), ("bearer" = [])),
)]
pub(crate) async fn get_example(UrlPath(name): UrlPath<String>) -> Result<Json<ExampleDataset>, Problem> {
    let example = EXAMPLES
        .iter()
        .find(|e| e.name == name)
        .ok_or_else(|| Problem::not_found(format!("no example is named `{name}`; see /v1/examples")))?;
    let series = match &example.source {
        Source::WideCsv { file, csv, mapping } => {
            let mapping = ChannelMapping::from_toml(mapping).map_err(|e| Problem::internal(e.to_string()))?;
            let dir = tempfile::tempdir()
                .map_err(|e| Problem::internal(format!("cannot stage the example: {e}")))?;
            let path = dir.path().join(file);
            tokio::fs::write(&path, csv)
                .await
                .map_err(|e| Problem::internal(format!("cannot stage the example: {e}")))?;
            let options =
                ReadOptions { layout: Layout::Wide, mapping: Some(mapping), ..ReadOptions::default() };
            read_file(&path, options).await.map_err(|e| Problem::internal(e.to_string()))?.series
        }
        Source::Request(text) => {
            crate::extract::parse::<crate::api::ForecastRequest>(text.as_bytes())?.series
        }
    };
    let plan: PlanRequest = crate::extract::parse(PLAN_REQUEST.as_bytes())?;
    Ok(Json(ExampleDataset {
        summary: summary(example),
        horizon: example.horizon,
        series,
        plan: ExamplePlan { actions: plan.actions, constraint: plan.constraint },
    }))
}
