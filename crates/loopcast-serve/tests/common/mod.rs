//! A real `loopcast-serve` on 127.0.0.1 with the shipped model, and requests to it.

#![allow(dead_code)] // each test binary uses its own subset

use std::net::SocketAddr;

use loopcast_core::Role;
use loopcast_model::{DeviceKind, LoopedWorldModel, ModelBatch};
use loopcast_serve::ServeConfig;
use serde_json::{Value, json};
use tokio::sync::oneshot;

/// A running server; shuts down (draining) when dropped.
pub struct Server {
    pub address: SocketAddr,
    pub client: reqwest::Client,
    stop: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl Server {
    /// Binds a free port, serves the shipped model under `config`, and waits until ready.
    pub async fn start(config: ServeConfig) -> Self {
        Self::start_with(config, model()).await
    }

    /// [`Server::start`] with `model` (the shipped weights with other settings) in its place.
    pub async fn start_with(config: ServeConfig, model: LoopedWorldModel) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            let shutdown = async move {
                let _ = stopped.await;
            };
            loopcast_serve::serve(listener, &config, model, "loopcast-small".into(), shutdown).await.unwrap();
        });
        let server = Self { address, client: reqwest::Client::new(), stop: Some(stop), task: Some(task) };
        for _ in 0..600 {
            let ready = server.client.get(server.url("/ready")).bearer_auth("test-key").send().await;
            if ready.is_ok_and(|r| r.status() == 200) {
                return server;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        panic!("the server never became ready");
    }

    /// The URL of `path` on this server.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.address)
    }

    /// POSTs `body` as JSON; returns the status, headers and parsed body.
    pub async fn post(&self, path: &str, body: &Value) -> (u16, reqwest::header::HeaderMap, Value) {
        let response = self.client.post(self.url(path)).json(body).send().await.unwrap();
        split(response).await
    }

    /// GETs `path`.
    pub async fn get(&self, path: &str) -> (u16, reqwest::header::HeaderMap, Value) {
        split(self.client.get(self.url(path)).send().await.unwrap()).await
    }

    /// Stops taking connections, drains, and waits for the server task.
    pub async fn stop(mut self) {
        let _ = self.stop.take().unwrap().send(());
        self.task.take().unwrap().await.unwrap();
    }
}

/// Status, headers and the body as JSON (or as a JSON string when it is not JSON).
pub async fn split(response: reqwest::Response) -> (u16, reqwest::header::HeaderMap, Value) {
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let text = response.text().await.unwrap();
    let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
    (status, headers, body)
}

/// The model the server runs, for direct calls.
pub fn model() -> LoopedWorldModel {
    LoopedWorldModel::shipped(&DeviceKind::Cpu.device().unwrap()).unwrap()
}

/// Deterministic noise in [0, 1).
fn noise(seed: u64, t: usize) -> f64 {
    let mut z = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ (t as u64).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z ^= z >> 31;
    z = z.wrapping_mul(0x94D0_49BB_1331_11EB);
    (z >> 11) as f64 / (1u64 << 53) as f64
}

/// One service's telemetry: `length` 5-minute steps of CPU, request rate and latency
/// with a daily wave, and a replica count that steps up halfway; some values missing.
pub struct Telemetry {
    pub id: String,
    pub cpu: Vec<Option<f64>>,
    pub rps: Vec<Option<f64>>,
    pub latency: Vec<Option<f64>>,
    pub replicas: Vec<f64>,
}

impl Telemetry {
    pub fn new(id: &str, length: usize, seed: u64) -> Self {
        let wave = |t: usize| (2.0 * std::f64::consts::PI * t as f64 / 288.0).sin();
        let gap = |t: usize| noise(seed ^ 7, t) < 0.02;
        let replicas: Vec<f64> = (0..length).map(|t| if t < length / 2 { 4.0 } else { 6.0 }).collect();
        let rps: Vec<f64> =
            (0..length).map(|t| 400.0 * (1.0 + 0.5 * wave(t)) + 30.0 * noise(seed, t)).collect();
        Self {
            id: id.to_string(),
            cpu: (0..length)
                .map(|t| (!gap(t)).then(|| rps[t] / (replicas[t] * 2.0) + noise(seed + 1, t)))
                .collect(),
            latency: (0..length)
                .map(|t| Some(80.0 + rps[t] / replicas[t] / 2.0 + 5.0 * noise(seed + 2, t)))
                .collect(),
            rps: rps.into_iter().map(Some).collect(),
            replicas,
        }
    }

    /// The series as a request's `series[…]` entry, with `future_replicas` as the
    /// action's known future (if any).
    pub fn json(&self, future_replicas: Option<&[f64]>) -> Value {
        let mut replicas = json!({"name": "replicas", "role": "action", "values": self.replicas});
        if let Some(future) = future_replicas {
            replicas["future"] = json!(future);
        }
        json!({
            "id": self.id,
            "start": "2026-11-01T00:00:00Z",
            "frequency": "5m",
            "channels": [
                {"name": "cpu_util", "role": "target", "values": self.cpu},
                {"name": "replicas_note", "role": "covariate", "values": vec![1.0; self.replicas.len()]},
                replicas,
                {"name": "rps", "role": "target", "values": self.rps},
                {"name": "latency_p95_ms", "role": "target", "values": self.latency},
            ]
        })
    }

    /// The same window as the server builds it: targets first (request order), then the
    /// covariate and the action; the action's future as given; the season of its 5-minute
    /// grid.
    pub fn batch(&self, horizon: usize, future_replicas: Option<&[f64]>) -> ModelBatch {
        let length = self.replicas.len();
        let channels: [Vec<Option<f64>>; 5] = [
            self.cpu.clone(),
            self.rps.clone(),
            self.latency.clone(),
            vec![Some(1.0); length],
            self.replicas.iter().copied().map(Some).collect(),
        ];
        let values = channels.iter().flatten().map(|v| v.unwrap_or(0.0) as f32).collect();
        let observed = channels.iter().flatten().map(Option::is_some).collect();
        let mut future = vec![0.0; 5 * horizon];
        let mut known = vec![false; 5 * horizon];
        if let Some(plan) = future_replicas {
            for (t, v) in plan.iter().enumerate() {
                future[4 * horizon + t] = *v as f32;
                known[4 * horizon + t] = true;
            }
        }
        let roles = vec![Role::Target, Role::Target, Role::Target, Role::Covariate, Role::Action];
        ModelBatch::new(roles, 1, length, horizon, values, observed, future, known)
            .unwrap()
            .with_season(loopcast_core::Frequency::minutes(5).season())
            .find_seasons()
    }
}

/// Asserts two values agree to a relative `1e-4` (batched and unbatched float sums differ
/// in the last bits).
pub fn close(served: f64, direct: f64, what: &str) {
    assert!(
        (served - direct).abs() <= 1e-4 * direct.abs().max(1.0),
        "{what}: served {served}, direct {direct}"
    );
}

/// Writes `services` series of `length` 5-minute steps (CPU and latency targets, a
/// replica action) as long-format Parquet at `path`, roles in its `role` column.
pub fn write_fleet(path: &std::path::Path, services: usize, length: usize) {
    use loopcast_core::{ChannelSpec, ChannelValues, Frequency, RegularSeries};
    let series: Vec<RegularSeries> = (0..services)
        .map(|s| {
            let telemetry = Telemetry::new(&format!("svc-{s:04}"), length, s as u64 + 11);
            let channel = |name: &str, role: Role, values: Vec<Option<f64>>| ChannelValues {
                spec: ChannelSpec::new(name, role),
                observed: values.iter().map(Option::is_some).collect(),
                values: values.iter().map(|v| v.unwrap_or(0.0)).collect(),
            };
            let replicas = telemetry.replicas.iter().copied().map(Some).collect();
            let start = 1_700_000_000 / 300 + s as i64;
            RegularSeries::new(
                telemetry.id.clone(),
                Frequency::minutes(5),
                start,
                vec![
                    channel("cpu_util", Role::Target, telemetry.cpu.clone()),
                    channel("latency_p95_ms", Role::Target, telemetry.latency.clone()),
                    channel("replicas", Role::Action, replicas),
                ],
            )
            .unwrap()
        })
        .collect();
    loopcast_data::write_long_parquet(path, &series).unwrap();
}

/// `(series_id, channel, timestamp µs)` and the `q0.5` value of every row of a forecast
/// Parquet file.
pub fn read_forecast_rows(path: &std::path::Path) -> Vec<(String, String, i64, f64)> {
    use arrow::array::{Array, Float64Array, StringArray, TimestampMicrosecondArray};
    let file = std::fs::File::open(path).unwrap();
    let reader = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(file)
        .unwrap()
        .build()
        .unwrap();
    let mut rows = Vec::new();
    for batch in reader {
        let batch = batch.unwrap();
        let column =
            |name: &str| batch.column_by_name(name).unwrap_or_else(|| panic!("no column {name}")).clone();
        let (ids, channels, times, medians) =
            (column("series_id"), column("channel"), column("timestamp"), column("q0.5"));
        let ids = ids.as_any().downcast_ref::<StringArray>().unwrap();
        let channels = channels.as_any().downcast_ref::<StringArray>().unwrap();
        let times = times.as_any().downcast_ref::<TimestampMicrosecondArray>().unwrap();
        let medians = medians.as_any().downcast_ref::<Float64Array>().unwrap();
        for i in 0..batch.num_rows() {
            assert!(!medians.is_null(i));
            rows.push((
                ids.value(i).to_string(),
                channels.value(i).to_string(),
                times.value(i),
                medians.value(i),
            ));
        }
    }
    rows
}
