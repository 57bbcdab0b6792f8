//! Arrow IPC stream bodies over real HTTP on 127.0.0.1: a long table in gives the same
//! answer as the same series in JSON; `Accept: application/vnd.apache.arrow.stream` gives
//! the JSON answer's numbers as rows; bad tables name the column.

mod common;

use std::io::Cursor;
use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, AsArray, Float64Array, RecordBatch, StringArray, TimestampMicrosecondArray,
};
use arrow::datatypes::{Float64Type, TimestampMicrosecondType};
use arrow::ipc::reader::StreamReader;
use arrow::ipc::writer::StreamWriter;
use common::{Server, Telemetry, close, split};
use loopcast_serve::{ARROW_STREAM, ServeConfig};
use serde_json::{Value, json};

const HORIZON: usize = 48;
const STEP: i64 = 300_000_000;

/// `Telemetry::json`'s start, in microseconds.
fn start() -> i64 {
    chrono::DateTime::parse_from_rfc3339("2026-11-01T00:00:00Z").unwrap().timestamp_micros()
}

/// Long rows: (channel, role, step, value, scenario); step ≥ length is the future.
type Row = (&'static str, &'static str, i64, Option<f64>, Option<&'static str>);

fn history(t: &Telemetry) -> Vec<Row> {
    let mut rows = Vec::new();
    let n = t.replicas.len();
    for (name, role, values) in [
        ("cpu_util", "target", t.cpu.clone()),
        ("replicas_note", "covariate", vec![Some(1.0); n]),
        ("replicas", "action", t.replicas.iter().copied().map(Some).collect()),
        ("rps", "target", t.rps.clone()),
        ("latency_p95_ms", "target", t.latency.clone()),
    ] {
        rows.extend(values.into_iter().enumerate().map(|(i, v)| (name, role, i as i64, v, None)));
    }
    rows
}

fn table(id: &str, rows: &[Row], with_scenario: bool) -> Vec<u8> {
    let mut columns: Vec<(&str, ArrayRef)> = vec![
        ("series_id", Arc::new(StringArray::from(vec![id; rows.len()]))),
        (
            "timestamp",
            Arc::new(
                TimestampMicrosecondArray::from(
                    rows.iter().map(|r| start() + r.2 * STEP).collect::<Vec<_>>(),
                )
                .with_timezone("UTC"),
            ),
        ),
        ("channel", Arc::new(StringArray::from(rows.iter().map(|r| r.0).collect::<Vec<_>>()))),
        ("role", Arc::new(StringArray::from(rows.iter().map(|r| r.1).collect::<Vec<_>>()))),
        ("value", Arc::new(Float64Array::from(rows.iter().map(|r| r.3).collect::<Vec<_>>()))),
    ];
    if with_scenario {
        columns.push(("scenario", Arc::new(StringArray::from(rows.iter().map(|r| r.4).collect::<Vec<_>>()))));
    }
    let batch = RecordBatch::try_from_iter(columns).unwrap();
    let mut bytes = Vec::new();
    let mut writer = StreamWriter::try_new(&mut bytes, &batch.schema()).unwrap();
    writer.write(&batch).unwrap();
    writer.finish().unwrap();
    drop(writer);
    bytes
}

async fn post_arrow(server: &Server, path: &str, body: Vec<u8>, accept: &str) -> reqwest::Response {
    let request =
        server.client.post(server.url(path)).header("content-type", ARROW_STREAM).header("accept", accept);
    request.body(body).send().await.unwrap()
}

/// `(series, channel, scenario, step) → (q0.1, q0.5, q0.9, mean)` from an Arrow answer.
fn decode(bytes: &[u8]) -> Vec<(String, String, String, i64, [f64; 4], u32)> {
    let reader = StreamReader::try_new(Cursor::new(bytes), None).unwrap();
    let mut rows = Vec::new();
    for batch in reader {
        let batch = batch.unwrap();
        let text = |name: &str| batch.column_by_name(name).unwrap().as_string::<i32>().clone();
        let number = |name: &str| batch.column_by_name(name).unwrap().as_primitive::<Float64Type>().clone();
        let (ids, channels, scenarios) = (text("series_id"), text("channel"), text("scenario"));
        let times =
            batch.column_by_name("timestamp").unwrap().as_primitive::<TimestampMicrosecondType>().clone();
        let (q10, q50, q90, mean) = (number("q0.1"), number("q0.5"), number("q0.9"), number("mean"));
        let loops = batch
            .column_by_name("loops_used")
            .unwrap()
            .as_primitive::<arrow::datatypes::UInt32Type>()
            .clone();
        for i in 0..batch.num_rows() {
            assert!(!q50.is_null(i));
            rows.push((
                ids.value(i).to_string(),
                channels.value(i).to_string(),
                scenarios.value(i).to_string(),
                times.value(i),
                [q10.value(i), q50.value(i), q90.value(i), mean.value(i)],
                loops.value(i),
            ));
        }
    }
    rows
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn arrow_tables_in_and_out_match_the_json_answers() {
    let server = Server::start(ServeConfig::default()).await;
    let telemetry = Telemetry::new("checkout", 400, 9);
    let quantiles = [0.1, 0.5, 0.9];
    let body = json!({"series": [telemetry.json(None)], "horizon": HORIZON, "quantiles": quantiles});
    let (status, _, expected) = server.post("/v1/forecast", &body).await;
    assert_eq!(status, 200, "{expected}");

    // A table in, JSON out: the same answer.
    let bytes = table("checkout", &history(&telemetry), false);
    let url = format!("/v1/forecast?horizon={HORIZON}&quantiles=0.1,0.5,0.9");
    let (status, _, answer) = split(post_arrow(&server, &url, bytes.clone(), "application/json").await).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["series"], expected["series"]);

    // A table in, a table out: the JSON answer's numbers as rows.
    let response = post_arrow(&server, &url, bytes, ARROW_STREAM).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], ARROW_STREAM);
    let rows = decode(&response.bytes().await.unwrap());
    assert_eq!(rows.len(), 3 * HORIZON);
    let series = &expected["series"][0];
    for (id, channel, scenario, time, values, loops) in &rows {
        assert_eq!((id.as_str(), scenario.as_str()), ("checkout", "forecast"));
        let t = ["cpu_util", "rps", "latency_p95_ms"].iter().position(|c| c == channel).unwrap();
        let h = ((time - start()) / STEP - 400) as usize;
        let served = &series["channels"][t];
        // JSON numbers parse to within an ulp of the Arrow ones.
        for (q, value) in values.iter().take(3).enumerate() {
            close(*value, served["quantiles"][q]["values"][h].as_f64().unwrap(), "quantile");
        }
        close(values[3], served["mean"][h].as_f64().unwrap(), "mean");
        assert_eq!(u64::from(*loops), series["loops"][h].as_u64().unwrap());
    }

    // A what-if table: plan rows carry their scenario; the answer matches JSON plans.
    let plans = [("hold", 6.0), ("scale-up", 12.0)];
    let mut rows = history(&telemetry);
    for (name, replicas) in plans {
        rows.extend(
            (400..400 + HORIZON as i64).map(|s| ("replicas", "action", s, Some(replicas), Some(name))),
        );
    }
    let url = format!("/v1/whatif?horizon={HORIZON}&quantiles=0.1,0.5,0.9&baseline=hold");
    let (status, _, answer) =
        split(post_arrow(&server, &url, table("checkout", &rows, true), "application/json").await).await;
    assert_eq!(status, 200, "{answer}");
    let body = json!({
        "series": [telemetry.json(None)], "horizon": HORIZON, "quantiles": quantiles, "baseline": "hold",
        "plans": plans.map(|(name, r)| json!({"name": name, "actions": {"replicas": vec![r; HORIZON]}})),
    });
    let (_, _, expected) = server.post("/v1/whatif", &body).await;
    assert_eq!(answer["series"], expected["series"]);
    let response = post_arrow(&server, &url, table("checkout", &rows, true), ARROW_STREAM).await;
    let decoded = decode(&response.bytes().await.unwrap());
    assert_eq!(decoded.len(), 2 * 3 * HORIZON);
    assert!(decoded.iter().any(|r| r.2 == "scale-up") && decoded.iter().any(|r| r.2 == "hold"));
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_arrow_requests_name_the_column() {
    let server = Server::start(ServeConfig::default()).await;
    let telemetry = Telemetry::new("checkout", 128, 4);
    let good = table("checkout", &history(&telemetry), false);
    let mut bad_role = history(&telemetry);
    bad_role[3].1 = "boss";
    let mut late = history(&telemetry);
    late.push(("replicas", "action", 128 + HORIZON as i64 + 5, Some(3.0), None));
    let with_plan = table(
        "checkout",
        &[history(&telemetry), vec![("replicas", "action", 130, Some(2.0), Some("p"))]].concat(),
        true,
    );
    let cases: Vec<(String, Vec<u8>, u16, &str)> = vec![
        (format!("/v1/forecast?horizon={HORIZON}"), b"not arrow".to_vec(), 400, "body"),
        ("/v1/forecast".into(), good.clone(), 422, "horizon"),
        (format!("/v1/forecast?horizon={HORIZON}&quantiles=0.5,x"), good.clone(), 422, "quantiles[1]"),
        (format!("/v1/forecast?horizon={HORIZON}&colour=red"), good.clone(), 422, "query"),
        (format!("/v1/forecast?horizon={HORIZON}"), table("checkout", &bad_role, false), 422, "body.role"),
        (format!("/v1/forecast?horizon={HORIZON}"), table("checkout", &late, false), 422, "body.timestamp"),
        (format!("/v1/forecast?horizon={HORIZON}"), with_plan, 422, "body.scenario"),
    ];
    for (url, bytes, status, field) in cases {
        let (got, headers, problem) = split(post_arrow(&server, &url, bytes, "application/json").await).await;
        assert_eq!(got, status, "{url}: {problem}");
        assert_eq!(headers["content-type"], "application/problem+json");
        assert_eq!(problem["field"], field, "{url}: {problem}");
    }
    // A table without a `role` column.
    let batch = RecordBatch::try_from_iter([
        ("series_id", Arc::new(StringArray::from(vec!["a"])) as ArrayRef),
        ("timestamp", Arc::new(TimestampMicrosecondArray::from(vec![start()])) as ArrayRef),
        ("channel", Arc::new(StringArray::from(vec!["cpu"])) as ArrayRef),
        ("value", Arc::new(Float64Array::from(vec![1.0])) as ArrayRef),
    ])
    .unwrap();
    let mut bytes = Vec::new();
    let mut writer = StreamWriter::try_new(&mut bytes, &batch.schema()).unwrap();
    writer.write(&batch).unwrap();
    writer.finish().unwrap();
    drop(writer);
    let (status, _, problem): (u16, _, Value) =
        split(post_arrow(&server, "/v1/forecast?horizon=8", bytes, "application/json").await).await;
    assert_eq!((status, problem["field"].as_str()), (422, Some("body.role")), "{problem}");
    assert_eq!(server.get("/health").await.0, 200);
    server.stop().await;
}
