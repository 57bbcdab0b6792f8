//! Forecasts written back through Prometheus' remote-write protocol (version 1: a
//! protobuf `WriteRequest`, snappy's block format, one POST per batch of series).

use std::collections::BTreeMap;
use std::path::Path;

use arrow::array::{Array, Float64Array, StringArray, TimestampMicrosecondArray};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use prost::Message;

use crate::labels::{metric_name_part, parse_series_name};
use crate::query::{auth_error, client, excerpt};
use crate::{Auth, PromError};

/// Samples per request: small enough for any receiver's default body limit.
const SAMPLES_PER_REQUEST: usize = 20_000;

/// `prometheus.WriteRequest` (fields 1; the metadata, field 3, is not sent).
#[derive(Clone, PartialEq, Message)]
pub struct WriteRequest {
    /// The series.
    #[prost(message, repeated, tag = "1")]
    pub timeseries: Vec<TimeSeries>,
}

/// `prometheus.TimeSeries`: labels sorted by name, samples by time.
#[derive(Clone, PartialEq, Message)]
pub struct TimeSeries {
    /// The labels, `__name__` among them.
    #[prost(message, repeated, tag = "1")]
    pub labels: Vec<Label>,
    /// The samples.
    #[prost(message, repeated, tag = "2")]
    pub samples: Vec<Sample>,
}

/// `prometheus.Label`.
#[derive(Clone, PartialEq, Message)]
pub struct Label {
    /// The label's name.
    #[prost(string, tag = "1")]
    pub name: String,
    /// Its value.
    #[prost(string, tag = "2")]
    pub value: String,
}

/// `prometheus.Sample`.
#[derive(Clone, PartialEq, Message)]
pub struct Sample {
    /// The value.
    #[prost(double, tag = "1")]
    pub value: f64,
    /// Milliseconds since the epoch.
    #[prost(int64, tag = "2")]
    pub timestamp: i64,
}

impl TimeSeries {
    /// A series with `labels` (any order; sorted here) and `samples` (sorted here).
    pub fn new(labels: BTreeMap<String, String>, mut samples: Vec<Sample>) -> Self {
        samples.sort_by_key(|s| s.timestamp);
        Self { labels: labels.into_iter().map(|(name, value)| Label { name, value }).collect(), samples }
    }
}

/// What a remote write sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Written {
    /// Series sent.
    pub series: usize,
    /// Samples sent.
    pub samples: usize,
    /// Requests made.
    pub requests: usize,
}

/// Sends `series` to the remote-write receiver at `url` in requests of about
/// [`SAMPLES_PER_REQUEST`] samples.
pub async fn remote_write(
    url: &str,
    auth: &Auth,
    timeout: std::time::Duration,
    series: Vec<TimeSeries>,
) -> Result<Written, PromError> {
    if !url.starts_with("http://") {
        return Err(PromError::Invalid {
            field: "remote_write".into(),
            detail: format!("`{url}`: only plain http:// URLs are supported (this build has no TLS stack)"),
        });
    }
    let client = client()?;
    let mut written = Written::default();
    let mut batch: Vec<TimeSeries> = Vec::new();
    let mut batch_samples = 0;
    let total = series.len();
    for (i, one) in series.into_iter().enumerate() {
        batch_samples += one.samples.len();
        batch.push(one);
        if batch_samples >= SAMPLES_PER_REQUEST || i + 1 == total {
            let request = WriteRequest { timeseries: std::mem::take(&mut batch) };
            send(&client, url, auth, timeout, &request).await?;
            written.series += request.timeseries.len();
            written.samples += batch_samples;
            written.requests += 1;
            batch_samples = 0;
        }
    }
    Ok(written)
}

async fn send(
    client: &reqwest::Client,
    url: &str,
    auth: &Auth,
    timeout: std::time::Duration,
    request: &WriteRequest,
) -> Result<(), PromError> {
    let body = snap::raw::Encoder::new()
        .compress_vec(&request.encode_to_vec())
        .map_err(|e| PromError::Write { url: url.into(), status: 0, detail: format!("snappy: {e}") })?;
    let http = client
        .post(url)
        .header("Content-Encoding", "snappy")
        .header("Content-Type", "application/x-protobuf")
        .header("X-Prometheus-Remote-Write-Version", "0.1.0")
        .timeout(timeout)
        .body(body);
    let response = auth.apply(http).send().await.map_err(|e| PromError::Unreachable {
        url: url.into(),
        detail: if e.is_timeout() {
            format!("no answer within {} s", timeout.as_secs_f64())
        } else {
            e.to_string()
        },
    })?;
    let status = response.status();
    if status.is_success() {
        return Ok(());
    }
    if status == reqwest::StatusCode::UNAUTHORIZED || status == reqwest::StatusCode::FORBIDDEN {
        return Err(auth_error(url, status.as_u16(), auth));
    }
    let text = response.text().await.unwrap_or_default();
    let hint = if status == reqwest::StatusCode::NOT_FOUND {
        " (is the receiver on? Prometheus needs --web.enable-remote-write-receiver, and the path is /api/v1/write)"
    } else {
        ""
    };
    Err(PromError::Write {
        url: url.into(),
        status: status.as_u16(),
        detail: format!("{}{hint}", excerpt(&text)),
    })
}

/// The quantiles of a forecast file (`loopcast score`'s output) as remote-write series:
/// `loopcast_forecast_<channel>{<the series' labels>, quantile="0.9"[, scenario=…]}`. A
/// series whose name is a label set (read from Prometheus) gets those labels back; any
/// other gets `series_id`. The plain forecast's scenario is left out of the labels.
pub fn forecast_series(path: &Path) -> Result<Vec<TimeSeries>, PromError> {
    let fail = |detail: String| PromError::Forecasts { path: path.display().to_string(), detail };
    let file = std::fs::File::open(path).map_err(|e| fail(e.to_string()))?;
    let reader = ParquetRecordBatchReaderBuilder::try_new(file)
        .and_then(|b| b.build())
        .map_err(|e| fail(e.to_string()))?;
    let mut series: BTreeMap<Vec<(String, String)>, Vec<Sample>> = BTreeMap::new();
    for batch in reader {
        let batch = batch.map_err(|e| fail(e.to_string()))?;
        let strings = |name: &str| {
            batch
                .column_by_name(name)
                .and_then(|c| c.as_any().downcast_ref::<StringArray>())
                .ok_or_else(|| fail(format!("no text column `{name}`: not a loopcast forecast file")))
        };
        let (ids, channels, scenarios) = (strings("series_id")?, strings("channel")?, strings("scenario")?);
        let times = batch
            .column_by_name("timestamp")
            .and_then(|c| c.as_any().downcast_ref::<TimestampMicrosecondArray>())
            .ok_or_else(|| fail("no timestamp column: not a loopcast forecast file".into()))?;
        let schema = batch.schema();
        let quantiles: Vec<(&str, &Float64Array)> = schema
            .fields()
            .iter()
            .enumerate()
            .filter_map(|(i, f)| {
                let level = f.name().strip_prefix('q')?;
                level.parse::<f64>().ok()?;
                Some((level, batch.column(i).as_any().downcast_ref::<Float64Array>()?))
            })
            .collect();
        if quantiles.is_empty() {
            return Err(fail("no quantile columns (`q0.5`, …): not a loopcast forecast file".into()));
        }
        for row in 0..batch.num_rows() {
            let mut labels = parse_series_name(ids.value(row))
                .unwrap_or_else(|| BTreeMap::from([("series_id".to_string(), ids.value(row).to_string())]));
            labels.insert(
                "__name__".into(),
                format!("loopcast_forecast_{}", metric_name_part(channels.value(row))),
            );
            if scenarios.value(row) != "forecast" {
                labels.insert("scenario".into(), scenarios.value(row).to_string());
            }
            for (level, values) in &quantiles {
                if values.is_null(row) {
                    continue;
                }
                let mut labels = labels.clone();
                labels.insert("quantile".into(), (*level).to_string());
                series
                    .entry(labels.into_iter().collect())
                    .or_default()
                    .push(Sample { value: values.value(row), timestamp: times.value(row).div_euclid(1_000) });
            }
        }
    }
    Ok(series
        .into_iter()
        .map(|(labels, samples)| TimeSeries::new(labels.into_iter().collect(), samples))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The encoding Prometheus' own protobuf definitions give (field numbers and wire
    /// types), checked byte by byte on a one-label, one-sample request.
    #[test]
    fn a_write_request_encodes_as_prometheus_expects() {
        let request = WriteRequest {
            timeseries: vec![TimeSeries::new(
                BTreeMap::from([("__name__".to_string(), "m".to_string())]),
                vec![Sample { value: 1.0, timestamp: 2 }],
            )],
        };
        let bytes = request.encode_to_vec();
        let label =
            [0x0a, 0x0d, 0x0a, 0x08, b'_', b'_', b'n', b'a', b'm', b'e', b'_', b'_', 0x12, 0x01, b'm'];
        let sample = [0x12, 0x0b, 0x09, 0, 0, 0, 0, 0, 0, 0xf0, 0x3f, 0x10, 0x02];
        let mut series = vec![0x0a, (label.len() + sample.len()) as u8];
        series.extend(label);
        series.extend(sample);
        assert_eq!(bytes, series);
        assert_eq!(WriteRequest::decode(bytes.as_slice()).unwrap(), request);
    }
}
