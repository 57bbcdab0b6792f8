//! Range queries: every channel's PromQL over the window, in pieces Prometheus accepts,
//! gathered into regular series on the step's grid.

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, Utc};
use loopcast_core::{ChannelSpec, ChannelValues, RegularSeries};
use serde::Deserialize;

use crate::labels::series_name;
use crate::{Auth, ChannelQuery, PromError, PrometheusSource, Window};

/// Series read from Prometheus, and what was read.
#[derive(Debug, Clone)]
pub struct Fetched {
    /// The window read.
    pub window: Window,
    /// One series per label set, every channel of the source on the window's grid
    /// (unobserved where Prometheus had no sample).
    pub series: Vec<RegularSeries>,
    /// HTTP requests made.
    pub requests: usize,
    /// Samples read.
    pub samples: u64,
    /// Samples that were NaN or infinite, left unobserved.
    pub non_finite: u64,
}

/// An answer of `/api/v1/query_range`.
#[derive(Debug, Deserialize)]
struct Answer {
    status: String,
    #[serde(default)]
    data: Option<Data>,
    #[serde(default)]
    error: Option<String>,
    #[serde(default, rename = "errorType")]
    error_type: Option<String>,
}

#[derive(Debug, Deserialize)]
struct Data {
    #[serde(rename = "resultType")]
    result_type: String,
    result: Vec<Matrix>,
}

#[derive(Debug, Deserialize)]
struct Matrix {
    metric: BTreeMap<String, String>,
    #[serde(default)]
    values: Vec<(f64, String)>,
}

/// Reads every query of `source` over its window (resolved against `now`).
pub async fn fetch(source: &PrometheusSource, auth: &Auth, now: DateTime<Utc>) -> Result<Fetched, PromError> {
    let window = source.window(now)?;
    let client = client()?;
    let len = window.len();
    // series name → channel index → values.
    let mut cells: BTreeMap<String, HashMap<usize, Vec<Option<f64>>>> = BTreeMap::new();
    let (mut requests, mut samples, mut non_finite) = (0, 0, 0);
    for (index, query) in source.queries.iter().enumerate() {
        let mut found = false;
        for chunk in window.chunks() {
            let matrix = range_query(&client, source, auth, query, &chunk).await?;
            requests += 1;
            let mut seen = HashMap::new();
            for result in matrix {
                let name = name_of(source, query, &result.metric)?;
                if let Some(other) = seen.insert(name.clone(), result.metric.clone()) {
                    return Err(PromError::Query {
                        channel: query.channel.clone(),
                        query: query.query.clone(),
                        detail: format!(
                            "two results are both series `{name}` ({} and {}); aggregate them in the \
                             query or name series by more labels",
                            series_name(&other),
                            series_name(&result.metric)
                        ),
                    });
                }
                found |= !result.values.is_empty();
                let values = cells.entry(name).or_default().entry(index).or_insert_with(|| vec![None; len]);
                for (at, text) in result.values {
                    let ms = (at * 1_000.0).round() as i64;
                    let offset = ms - window.start_ms;
                    if offset < 0 || offset % window.step_ms != 0 || ms > window.end_ms {
                        return Err(PromError::Query {
                            channel: query.channel.clone(),
                            query: query.query.clone(),
                            detail: format!("a sample at {at} s lies off the asked grid"),
                        });
                    }
                    let value = parse_value(&text).ok_or_else(|| PromError::Query {
                        channel: query.channel.clone(),
                        query: query.query.clone(),
                        detail: format!("sample `{text}` at {at} s is not a number"),
                    })?;
                    samples += 1;
                    if value.is_finite() {
                        values[(offset / window.step_ms) as usize] = Some(value);
                    } else {
                        non_finite += 1;
                    }
                }
            }
        }
        if !found {
            return Err(PromError::Empty {
                channel: query.channel.clone(),
                query: query.query.clone(),
                range: window.describe(),
            });
        }
    }
    let first_cell = window.frequency().cell(window.start_ms * 1_000);
    let series = cells
        .into_iter()
        .map(|(name, mut channels)| {
            let columns = source
                .queries
                .iter()
                .enumerate()
                .map(|(index, query)| {
                    let values = channels.remove(&index).unwrap_or_else(|| vec![None; len]);
                    ChannelValues {
                        spec: ChannelSpec::new(&query.channel, query.role),
                        values: values.iter().map(|v| v.unwrap_or(0.0)).collect(),
                        observed: values.iter().map(Option::is_some).collect(),
                    }
                })
                .collect();
            RegularSeries::new(name, window.frequency(), first_cell, columns)
                .expect("every channel has the window's length")
        })
        .collect();
    Ok(Fetched { window, series, requests, samples, non_finite })
}

/// The HTTP client (no TLS: plain http only, checked by [`PrometheusSource::window`]).
pub(crate) fn client() -> Result<reqwest::Client, PromError> {
    reqwest::Client::builder()
        .user_agent(concat!("loopcast/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| PromError::Unreachable { url: String::new(), detail: format!("HTTP client: {e}") })
}

/// The series name of a result of `query`: its labels (all but `__name__`, or the
/// source's `series_labels`).
fn name_of(
    source: &PrometheusSource,
    query: &ChannelQuery,
    metric: &BTreeMap<String, String>,
) -> Result<String, PromError> {
    let labels: BTreeMap<String, String> = match &source.series_labels {
        None => {
            metric.iter().filter(|(k, _)| *k != "__name__").map(|(k, v)| (k.clone(), v.clone())).collect()
        }
        Some(names) => {
            let mut labels = BTreeMap::new();
            for name in names {
                let value = metric.get(name).ok_or_else(|| PromError::Query {
                    channel: query.channel.clone(),
                    query: query.query.clone(),
                    detail: format!(
                        "result {} has no label `{name}` of series_labels; keep it in the query's `by (…)`",
                        series_name(metric)
                    ),
                })?;
                labels.insert(name.clone(), value.clone());
            }
            labels
        }
    };
    Ok(series_name(&labels))
}

/// Prometheus writes sample values as strings: numbers, `NaN`, `+Inf`, `-Inf`.
fn parse_value(text: &str) -> Option<f64> {
    match text {
        "+Inf" | "Inf" => Some(f64::INFINITY),
        "-Inf" => Some(f64::NEG_INFINITY),
        "NaN" => Some(f64::NAN),
        _ => text.parse().ok(),
    }
}

/// One `query_range` request over `chunk`.
async fn range_query(
    client: &reqwest::Client,
    source: &PrometheusSource,
    auth: &Auth,
    query: &ChannelQuery,
    chunk: &Window,
) -> Result<Vec<Matrix>, PromError> {
    let url = source.endpoint("api/v1/query_range");
    let seconds = |ms: i64| format!("{}.{:03}", ms.div_euclid(1_000), ms.rem_euclid(1_000));
    let form = [
        ("query", query.query.clone()),
        ("start", seconds(chunk.start_ms)),
        ("end", seconds(chunk.end_ms)),
        ("step", seconds(chunk.step_ms)),
        ("timeout", format!("{}s", source.timeout_seconds)),
    ];
    let request = auth.apply(client.post(&url).form(&form).timeout(source.timeout()));
    let response = request.send().await.map_err(|e| unreachable(&url, source, e))?;
    let status = response.status();
    if status == reqwest::StatusCode::UNAUTHORIZED || status == reqwest::StatusCode::FORBIDDEN {
        return Err(auth_error(&url, status.as_u16(), auth));
    }
    let body = response.text().await.map_err(|e| unreachable(&url, source, e))?;
    let fail = |detail: String| PromError::Query {
        channel: query.channel.clone(),
        query: query.query.clone(),
        detail,
    };
    let answer: Answer = serde_json::from_str(&body).map_err(|_| {
        fail(format!("HTTP {status}: the answer is not Prometheus' API JSON: {}", excerpt(&body)))
    })?;
    if answer.status != "success" {
        return Err(fail(format!(
            "{}: {}",
            answer.error_type.unwrap_or_else(|| format!("HTTP {status}")),
            answer.error.unwrap_or_default()
        )));
    }
    let data = answer.data.ok_or_else(|| fail("the answer has no data".into()))?;
    if data.result_type != "matrix" {
        return Err(fail(format!("the answer is a {}, not a range vector (matrix)", data.result_type)));
    }
    Ok(data.result)
}

pub(crate) fn unreachable(url: &str, source: &PrometheusSource, error: reqwest::Error) -> PromError {
    let detail = if error.is_timeout() {
        format!("no answer within {} s (timeout_seconds)", source.timeout_seconds)
    } else if error.is_connect() {
        format!("cannot connect: {}", root_cause(&error))
    } else {
        root_cause(&error)
    };
    PromError::Unreachable { url: url.to_string(), detail }
}

pub(crate) fn auth_error(url: &str, status: u16, auth: &Auth) -> PromError {
    let hint = match auth {
        Auth::None => "; none were given (a bearer token file, or a user and password file)".into(),
        _ => "; check the token or the user and password".into(),
    };
    PromError::Auth { url: url.to_string(), status, hint }
}

/// The innermost error of a chain: reqwest's own message is only "error sending request".
fn root_cause(error: &(dyn std::error::Error + 'static)) -> String {
    let mut inner = error;
    while let Some(source) = inner.source() {
        inner = source;
    }
    inner.to_string()
}

/// The start of a body, for an error message.
pub(crate) fn excerpt(body: &str) -> String {
    let text: String = body.chars().take(200).collect();
    if text.len() < body.len() { format!("{}…", text.trim()) } else { text.trim().to_string() }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sample_values_are_read_as_prometheus_writes_them() {
        assert_eq!(parse_value("1.5"), Some(1.5));
        assert_eq!(parse_value("+Inf"), Some(f64::INFINITY));
        assert!(parse_value("NaN").unwrap().is_nan());
        assert_eq!(parse_value("1e3"), Some(1000.0));
        assert_eq!(parse_value("x"), None);
    }
}
