//! The service over real HTTP on 127.0.0.1: every endpoint's happy path checked against
//! the model called directly, bad inputs, auth, concurrency and batching, overload.

mod common;

use common::{Server, Telemetry, close, model};
use loopcast_model::ForecastOptions;
use loopcast_serve::{Batching, Limits, ServeConfig};
use serde_json::{Value, json};

const HORIZON: usize = 48;

fn config() -> ServeConfig {
    ServeConfig::default()
}

/// Replaces the first series' `start` by 64 explicit 5-minute timestamps, edited by
/// `edit` first.
fn with_timestamps(body: &mut Value, edit: &dyn Fn(&mut Vec<String>)) {
    let series = &mut body["series"][0];
    series.as_object_mut().unwrap().remove("start");
    let mut stamps: Vec<String> =
        (0..64).map(|t| format!("2026-11-01T{:02}:{:02}:00Z", t * 5 / 60, t * 5 % 60)).collect();
    edit(&mut stamps);
    series["timestamps"] = json!(stamps);
}

/// The value at `level` index `q` of channel `t`, step `h`, from a served series.
fn served(series: &Value, t: usize, q: usize, h: usize) -> f64 {
    series["channels"][t]["quantiles"][q]["values"][h].as_f64().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forecasts_match_the_model_called_directly() {
    let server = Server::start(config()).await;
    // Two lengths: the server runs them as two groups of one request.
    let (a, b) = (Telemetry::new("checkout", 512, 1), Telemetry::new("search", 300, 2));
    let body = json!({"series": [a.json(None), b.json(None)], "horizon": HORIZON});
    let (status, headers, answer) = server.post("/v1/forecast", &body).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(headers["content-type"], "application/json");
    assert_eq!(answer["model"], "loopcast-small");
    assert_eq!(answer["missing_actions"], "hold_last");
    let model = model();
    let levels = &model.config().quantiles;
    assert_eq!(answer["quantiles"].as_array().unwrap().len(), levels.len());
    for (i, telemetry) in [&a, &b].into_iter().enumerate() {
        let series = &answer["series"][i];
        assert_eq!(series["id"], telemetry.id);
        let batch = telemetry.batch(HORIZON, None);
        let direct = model.forecast(&batch, &ForecastOptions::default()).unwrap();
        let season = batch.season(0);
        assert_eq!(series["season"], json!({"steps": season.steps, "source": season.source.as_str()}));
        let names: Vec<&str> =
            series["channels"].as_array().unwrap().iter().map(|c| c["name"].as_str().unwrap()).collect();
        assert_eq!(names, ["cpu_util", "rps", "latency_p95_ms"], "targets in request order");
        for t in 0..3 {
            for h in [0, 17, HORIZON - 1] {
                for q in 0..levels.len() {
                    close(served(series, t, q, h), f64::from(direct.value(0, t, h, q)), "quantile");
                }
                let mean = series["channels"][t]["mean"][h].as_f64().unwrap();
                assert!(served(series, t, 0, h) <= mean && mean <= served(series, t, levels.len() - 1, h));
            }
        }
        let loops: Vec<u32> = serde_json::from_value(series["loops"].clone()).unwrap();
        assert_eq!(loops.len(), HORIZON);
        assert_eq!(loops[0], direct.loops[0][0]);
        assert_eq!(loops[HORIZON - 1], *direct.loops[0].last().unwrap());
        // The grid continues: 5 minutes after the last history step.
        let length = telemetry.replicas.len() as i64;
        let first = chrono::DateTime::parse_from_rfc3339(series["timestamps"][0].as_str().unwrap()).unwrap();
        let start = chrono::DateTime::parse_from_rfc3339("2026-11-01T00:00:00Z").unwrap();
        assert_eq!((first - start).num_minutes(), 5 * length);
        assert_eq!(series["timestamps"].as_array().unwrap().len(), HORIZON);
    }

    // Asked levels between the model's are interpolated; loop options reach the model.
    let body = json!({
        "series": [a.json(None)], "horizon": HORIZON, "quantiles": [0.25, 0.5, 0.75],
        "compute": {"max_loops": 2, "exit_threshold": 2.0}
    });
    let (status, _, answer) = server.post("/v1/forecast", &body).await;
    assert_eq!(status, 200, "{answer}");
    let options =
        ForecastOptions { max_loops: Some(2), exit_threshold: Some(2.0), ..ForecastOptions::default() };
    let direct = model.forecast(&a.batch(HORIZON, None), &options).unwrap();
    let (q20, q30, q50) = (
        f64::from(direct.value(0, 0, 5, 3)),
        f64::from(direct.value(0, 0, 5, 4)),
        f64::from(direct.value(0, 0, 5, 6)),
    );
    close(served(&answer["series"][0], 0, 0, 5), 0.5 * (q20 + q30), "interpolated 0.25");
    close(served(&answer["series"][0], 0, 1, 5), q50, "median");
    assert!(answer["series"][0]["loops"].as_array().unwrap().iter().all(|l| l == 2));

    // Intervals fitted on the series' own backtests reach the model.
    let body = json!({"series": [a.json(None)], "horizon": HORIZON, "compute": {"series_calibration": 3}});
    let (status, _, answer) = server.post("/v1/forecast", &body).await;
    assert_eq!(status, 200, "{answer}");
    let options = ForecastOptions { series_calibration: 3, ..ForecastOptions::default() };
    let direct = model.forecast(&a.batch(HORIZON, None), &options).unwrap();
    let plain = model.forecast(&a.batch(HORIZON, None), &ForecastOptions::default()).unwrap();
    close(served(&answer["series"][0], 0, 0, 9), f64::from(direct.value(0, 0, 9, 0)), "fitted 0.01");
    assert_ne!(direct.values, plain.values, "the backtests moved an interval");

    // A season given in the request is the one the model anchors on.
    let mut given = a.json(None);
    given["season"] = json!(12);
    let (status, _, answer) =
        server.post("/v1/forecast", &json!({"series": [given], "horizon": HORIZON})).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["series"][0]["season"], json!({"steps": 12, "source": "given"}));
    let direct =
        model.forecast(&a.batch(HORIZON, None).with_season(12), &ForecastOptions::default()).unwrap();
    close(served(&answer["series"][0], 1, 6, 40), f64::from(direct.value(0, 1, 40, 6)), "given season");

    // Past the model's rollout (256 steps): chained rollouts, as the model gives them.
    let long = 3 * 256 + 5;
    let (status, _, answer) =
        server.post("/v1/forecast", &json!({"series": [a.json(None)], "horizon": long})).await;
    assert_eq!(status, 200, "{answer}");
    let direct = model.forecast(&a.batch(long, None), &ForecastOptions::default()).unwrap();
    assert_eq!(answer["series"][0]["timestamps"].as_array().unwrap().len(), long);
    for h in [0, 255, 256, 700, long - 1] {
        close(served(&answer["series"][0], 2, 10, h), f64::from(direct.value(0, 2, h, 10)), "long horizon");
    }
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn whatifs_match_the_model_and_difference_from_the_baseline() {
    let server = Server::start(config()).await;
    let telemetry = Telemetry::new("checkout", 512, 3);
    let (hold, up, down) = (vec![6.0; HORIZON], vec![12.0; HORIZON], vec![3.0; HORIZON]);
    let body = json!({
        "series": [telemetry.json(None)],
        "horizon": HORIZON,
        "plans": [
            {"name": "scale-up", "actions": {"replicas": up}},
            {"name": "hold", "actions": {"replicas": hold}},
            {"name": "scale-down", "actions": {"replicas": down}},
        ],
        "baseline": "hold",
        "quantiles": [0.1, 0.5, 0.9],
    });
    let (status, _, answer) = server.post("/v1/whatif", &body).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["baseline"], "hold");
    let model = model();
    let batch = telemetry.batch(HORIZON, None);
    let plans: Vec<(Vec<f32>, Vec<bool>)> = [&up, &hold, &down]
        .iter()
        .map(|plan| {
            let planned = telemetry.batch(HORIZON, Some(plan));
            let (values, known) = planned.future_arrays();
            (values.to_vec(), known.to_vec())
        })
        .collect();
    let direct = model.whatif(&batch, &plans, &ForecastOptions::default()).unwrap();
    let series = &answer["series"][0];
    let plans_served = series["plans"].as_array().unwrap();
    assert_eq!(plans_served.len(), 3);
    for (k, plan) in plans_served.iter().enumerate() {
        for t in 0..3 {
            for h in [0, HORIZON - 1] {
                close(
                    plan["channels"][t]["quantiles"][1]["values"][h].as_f64().unwrap(),
                    f64::from(direct[k].value(0, t, h, 6)),
                    "median",
                );
                let difference = plan["difference"][t]["quantiles"][1]["values"][h].as_f64().unwrap();
                let expected = direct[k].value(0, t, h, 6) - direct[1].value(0, t, h, 6);
                close(difference, f64::from(expected), "difference of medians");
            }
        }
    }
    let baseline = &plans_served[1];
    assert!(baseline["difference"][0]["mean"].as_array().unwrap().iter().all(|d| d == 0.0));
    // The plans are the only difference between scenarios: more replicas, less CPU each.
    let cpu_mean = |k: usize| {
        plans_served[k]["channels"][0]["mean"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_f64().unwrap())
            .sum::<f64>()
    };
    assert_ne!(cpu_mean(0), cpu_mean(2));
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn models_health_ready_metrics_and_openapi_answer() {
    let server = Server::start(config()).await;
    let (status, _, models) = server.get("/v1/models").await;
    assert_eq!(status, 200);
    let info = &models["models"][0];
    assert_eq!(info["name"], "loopcast-small");
    assert_eq!(info["parameters"].as_u64().unwrap() as usize, model().parameter_count());
    assert_eq!(info["max_horizon"], 1024);
    assert_eq!(info["native_horizon"], 256);
    assert_eq!(server.get("/health").await.2["status"], "ok");
    assert_eq!(server.get("/ready").await.2["status"], "ready");
    let (status, headers, text) = server.get("/metrics").await;
    assert_eq!(status, 200);
    assert!(headers["content-type"].to_str().unwrap().starts_with("text/plain"));
    assert!(text.as_str().unwrap().contains("loopcast_http_requests_total"), "{text}");
    let (status, _, document) = server.get("/openapi.json").await;
    assert_eq!(status, 200);
    assert!(document["paths"]["/v1/forecast"]["post"].is_object());
    let (status, headers, problem) = server.get("/v2/nothing").await;
    assert_eq!((status, headers["content-type"].to_str().unwrap()), (404, "application/problem+json"));
    assert!(problem["detail"].as_str().unwrap().contains("openapi"));
    server.stop().await;
}

/// The checked-in schema is what the code generates (regenerate with
/// `LOOPCAST_BLESS=1 cargo test --release --workspace --test http openapi`).
#[test]
fn the_checked_in_openapi_document_is_current() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../schemas/openapi.json");
    let generated = loopcast_serve::openapi_json(model().config(), &Limits::default());
    if std::env::var_os("LOOPCAST_BLESS").is_some() {
        std::fs::write(path, &generated).unwrap();
    }
    let stored = std::fs::read_to_string(path).unwrap_or_default();
    assert!(stored == generated, "schemas/openapi.json is stale: rerun with LOOPCAST_BLESS=1");
}

/// The contract: every bound the served document states is the one the server keeps. Read
/// from the document of a server with small limits, a request at each bound is answered
/// and one just past it is refused with 422 naming the field, and the document is the one
/// `openapi_json` makes for that model and those limits.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_served_document_states_the_bounds_the_server_keeps() {
    let limits = Limits {
        max_series: 3,
        max_horizon: 24,
        max_quantiles: 4,
        max_loops: 3,
        max_scenarios: 2,
        ..Limits::default()
    };
    let server = Server::start(ServeConfig { limits: limits.clone(), ..config() }).await;
    let (status, _, document) = server.get("/openapi.json").await;
    assert_eq!(status, 200);
    let expected: Value =
        serde_json::from_str(&loopcast_serve::openapi_json(model().config(), &limits)).unwrap();
    assert_eq!(document, expected);
    let schemas = &document["components"]["schemas"];
    let forecast = &schemas["ForecastRequest"]["properties"];
    let number = |v: &Value| v.as_f64().unwrap_or_else(|| panic!("a bound: {v}"));
    let (min_horizon, max_horizon) =
        (number(&forecast["horizon"]["minimum"]), number(&forecast["horizon"]["maximum"]));
    let (min_series, max_series) =
        (number(&forecast["series"]["minItems"]), number(&forecast["series"]["maxItems"]));
    let levels = &forecast["quantiles"];
    let (low, high) = (number(&levels["items"]["minimum"]), number(&levels["items"]["maximum"]));
    let max_levels = number(&levels["maxItems"]) as usize;
    let loops = &schemas["ComputeOptions"]["properties"]["max_loops"];
    let (min_loops, max_loops) = (number(&loops["minimum"]), number(&loops["maximum"]));
    let max_backtests =
        number(&schemas["ComputeOptions"]["properties"]["series_calibration"]["maximum"]) as u64;
    assert_eq!(max_backtests, 8);
    assert_eq!((min_horizon, max_horizon, min_series, max_series), (1.0, 24.0, 1.0, 3.0));
    assert_eq!((max_levels, min_loops, max_loops), (4, 1.0, 3.0));
    for request in ["WhatIfRequest", "PlanRequest", "JobRequest"] {
        let horizon = &schemas[request]["properties"]["horizon"];
        assert_eq!((number(&horizon["minimum"]), number(&horizon["maximum"])), (1.0, 24.0), "{request}");
    }

    let season = &schemas["SeriesInput"]["properties"]["season"];
    let (min_season, max_season) = (number(&season["minimum"]) as u64, number(&season["maximum"]) as u64);
    assert_eq!((min_season, max_season), (1, 1_000_000));

    let one = Telemetry::new("a", 64, 4).json(None);
    let with_season = |steps: u64| {
        let mut series = one.clone();
        series["season"] = json!(steps);
        json!({"series": [series], "horizon": 8})
    };
    // Integers go as JSON integers (a count read as `2.0` is a type error, not a bound).
    let body = |series: usize, horizon: f64, extra: Value| {
        let mut body = json!({"series": vec![one.clone(); series], "horizon": horizon as u64});
        body.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
        body
    };
    let cases = [
        ("horizon", body(1, min_horizon, json!({})), body(1, min_horizon - 1.0, json!({}))),
        ("horizon", body(1, max_horizon, json!({})), body(1, max_horizon + 1.0, json!({}))),
        ("series", body(min_series as usize, 8.0, json!({})), body(0, 8.0, json!({}))),
        ("series", body(max_series as usize, 8.0, json!({})), body(max_series as usize + 1, 8.0, json!({}))),
        (
            "quantiles[0]",
            body(1, 8.0, json!({"quantiles": [low, high]})),
            body(1, 8.0, json!({"quantiles": [low / 2.0]})),
        ),
        (
            "quantiles[1]",
            body(1, 8.0, json!({"quantiles": [low, high]})),
            body(1, 8.0, json!({"quantiles": [low, (high + 1.0) / 2.0]})),
        ),
        (
            "quantiles",
            body(1, 8.0, json!({"quantiles": vec![0.5; 1]})),
            body(
                1,
                8.0,
                json!({"quantiles": (1..=max_levels + 1).map(|k| k as f64 / (max_levels + 2) as f64).collect::<Vec<_>>()}),
            ),
        ),
        (
            "compute.max_loops",
            body(1, 8.0, json!({"compute": {"max_loops": max_loops as u64}})),
            body(1, 8.0, json!({"compute": {"max_loops": max_loops as u64 + 1}})),
        ),
        (
            "compute.min_loops",
            body(1, 8.0, json!({"compute": {"min_loops": min_loops as u64}})),
            body(1, 8.0, json!({"compute": {"min_loops": min_loops as u64 - 1}})),
        ),
        (
            "compute.exit_threshold",
            body(1, 8.0, json!({"compute": {"exit_threshold": 0.0}})),
            body(1, 8.0, json!({"compute": {"exit_threshold": -0.1}})),
        ),
        (
            "compute.series_calibration",
            body(1, 8.0, json!({"compute": {"series_calibration": max_backtests}})),
            body(1, 8.0, json!({"compute": {"series_calibration": max_backtests + 1}})),
        ),
        ("series[0].season", with_season(min_season), with_season(min_season - 1)),
        ("series[0].season", with_season(max_season), with_season(max_season + 1)),
    ];
    for (field, inside, outside) in cases {
        let (status, _, answer) = server.post("/v1/forecast", &inside).await;
        assert_eq!(status, 200, "{field} at its bound: {answer}");
        let (status, _, problem) = server.post("/v1/forecast", &outside).await;
        assert_eq!(status, 422, "{field} past its bound: {problem}");
        assert_eq!(problem["field"], field, "{problem}");
    }
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_get_a_problem_naming_the_field_and_the_server_stays_healthy() {
    let limits = Limits { max_body_bytes: 200_000, max_series: 3, max_scenarios: 2, ..Limits::default() };
    let server = Server::start(ServeConfig { limits, ..config() }).await;
    let good = Telemetry::new("a", 64, 4);
    let series = good.json(None);
    let with = |edit: &dyn Fn(&mut Value)| {
        let mut body = json!({"series": [series.clone()], "horizon": 16});
        edit(&mut body);
        body
    };
    let cases: Vec<(&str, Value, u16, &str)> = vec![
        ("wrong type", with(&|b| b["horizon"] = json!("sixteen")), 422, "horizon"),
        (
            "NaN as a string",
            with(&|b| b["series"][0]["channels"][0]["values"][3] = json!("NaN")),
            422,
            "series[0].channels[0].values[3]",
        ),
        (
            "out of f32 range",
            with(&|b| b["series"][0]["channels"][0]["values"][5] = json!(1e300)),
            422,
            "series[0].channels[0].values[5]",
        ),
        (
            "ragged lengths",
            with(&|b| {
                b["series"][0]["channels"][3]["values"].as_array_mut().unwrap().pop();
            }),
            422,
            "series[0].channels[3].values",
        ),
        (
            "duplicate timestamps",
            with(&|b| {
                with_timestamps(b, &|stamps| {
                    stamps[10] = stamps[9].clone();
                })
            }),
            422,
            "series[0].timestamps[10]",
        ),
        (
            "unsorted timestamps",
            with(&|b| {
                with_timestamps(b, &|stamps| {
                    stamps.swap(20, 21);
                })
            }),
            422,
            "series[0].timestamps[21]",
        ),
        (
            "off-grid timestamp",
            with(&|b| {
                with_timestamps(b, &|stamps| {
                    stamps[30] = "2026-11-01T02:31:00Z".into();
                })
            }),
            422,
            "series[0].timestamps[30]",
        ),
        (
            "no target",
            with(&|b| {
                for c in b["series"][0]["channels"].as_array_mut().unwrap() {
                    if c["role"] == "target" {
                        c["role"] = json!("covariate");
                    }
                }
            }),
            422,
            "series[0].channels",
        ),
        (
            "unknown role",
            with(&|b| b["series"][0]["channels"][0]["role"] = json!("driver")),
            422,
            "series[0].channels[0].role",
        ),
        ("unknown field", with(&|b| b["horizn"] = json!(3)), 422, "horizn"),
        ("horizon past the model", with(&|b| b["horizon"] = json!(1025)), 422, "horizon"),
        (
            "too many series",
            with(&|b| b["series"] = json!([series.clone(), series.clone(), series.clone(), series.clone()])),
            422,
            "series",
        ),
        (
            "future on a target",
            with(&|b| b["series"][0]["channels"][0]["future"] = json!([1.0])),
            422,
            "series[0].channels[0].future",
        ),
        ("quantile out of range", with(&|b| b["quantiles"] = json!([0.5, 0.999])), 422, "quantiles[1]"),
        ("too many loops", with(&|b| b["compute"] = json!({"max_loops": 1000})), 422, "compute.max_loops"),
        (
            "bad frequency",
            with(&|b| b["series"][0]["frequency"] = json!("fortnightly-ish")),
            422,
            "series[0].frequency",
        ),
        (
            "frequency outside the published pattern",
            with(&|b| b["series"][0]["frequency"] = json!("5M")),
            422,
            "series[0].frequency",
        ),
        ("level given twice", with(&|b| b["quantiles"] = json!([0.5, 0.1, 0.5])), 422, "quantiles[2]"),
    ];
    for (name, body, status, field) in cases {
        let (got, headers, problem) = server.post("/v1/forecast", &body).await;
        assert_eq!(got, status, "{name}: {problem}");
        assert_eq!(headers["content-type"], "application/problem+json", "{name}");
        let named = problem["field"].as_str().unwrap_or_default();
        assert!(
            named.contains(field) || problem["detail"].as_str().unwrap().contains(field),
            "{name}: {problem}"
        );
    }

    // What-if specifics: unknown channel, too many scenarios, unknown baseline.
    let plans = |plans: Value| json!({"series": [series.clone()], "horizon": 16, "plans": plans});
    for (body, field) in [
        (plans(json!([{"name": "x", "actions": {"replica": [3.0]}}])), "plans[0].actions.replica"),
        (plans(json!([{"name": "x", "actions": {"cpu_util": [3.0]}}])), "plans[0].actions.cpu_util"),
        (
            plans(
                json!([{"name": "a", "actions": {}}, {"name": "b", "actions": {}}, {"name": "c", "actions": {}}]),
            ),
            "plans",
        ),
        (plans(json!([{"name": "a", "actions": {}}, {"name": "a", "actions": {}}])), "plans[1].name"),
    ] {
        let (status, _, problem) = server.post("/v1/whatif", &body).await;
        assert_eq!((status, problem["field"].as_str().unwrap()), (422, field), "{problem}");
    }
    let mut body = plans(json!([{"name": "a", "actions": {}}]));
    body["baseline"] = json!("b");
    assert_eq!(server.post("/v1/whatif", &body).await.2["field"], "baseline");

    // Broken JSON, another media type, an oversized body.
    let raw = |body: &'static str, media: &'static str| {
        server.client.post(server.url("/v1/forecast")).header("content-type", media).body(body).send()
    };
    let (status, _, problem) = common::split(raw("{\"series\": [", "application/json").await.unwrap()).await;
    assert_eq!((status, problem["field"].as_str().unwrap()), (400, "body"), "{problem}");
    let (status, _, problem) =
        common::split(raw("series=1", "application/x-www-form-urlencoded").await.unwrap()).await;
    assert_eq!((status, problem["field"].as_str().unwrap()), (415, "Content-Type"), "{problem}");
    let detail = problem["detail"].as_str().unwrap();
    assert!(detail.contains("application/vnd.apache.arrow.stream"), "forecasts also take Arrow: {detail}");
    let long = Telemetry::new("long", 8000, 5).json(None);
    let (status, headers, problem) =
        server.post("/v1/forecast", &json!({"series": [long], "horizon": 16})).await;
    assert_eq!((status, problem["field"].as_str().unwrap()), (413, "body"), "{problem}");
    assert!(problem["detail"].as_str().unwrap().contains("200000 bytes"), "{problem}");
    // The unread rest of the body ends the connection; the client must not reuse it.
    assert_eq!(headers[reqwest::header::CONNECTION], "close");

    // Still healthy, still answering.
    assert_eq!(server.get("/health").await.0, 200);
    assert_eq!(server.post("/v1/forecast", &with(&|_| {})).await.0, 200);

    // Every grid the frequency pattern takes is answered, down to a microsecond's (whose
    // day is 86.4 billion steps: no per-phase table of that size), and levels asked in any
    // order come back in increasing order.
    let micro = with(&|b| {
        b["series"][0]["frequency"] = json!("us");
        b["quantiles"] = json!([0.9, 0.1, 0.5]);
    });
    let (status, _, answer) = server.post("/v1/forecast", &micro).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["quantiles"], json!([0.1, 0.5, 0.9]));
    let levels: Vec<f64> = answer["series"][0]["channels"][0]["quantiles"]
        .as_array()
        .unwrap()
        .iter()
        .map(|q| q["level"].as_f64().unwrap())
        .collect();
    assert_eq!(levels, [0.1, 0.5, 0.9]);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bearer_token_guards_everything_but_health() {
    let server = Server::start(ServeConfig { api_key: Some("test-key".into()), ..config() }).await;
    let body = json!({"series": [Telemetry::new("a", 64, 6).json(None)], "horizon": 16});
    let (status, headers, problem) = server.post("/v1/forecast", &body).await;
    assert_eq!((status, problem["field"].as_str().unwrap()), (401, "Authorization"));
    assert_eq!(headers["www-authenticate"], "Bearer");
    let wrong =
        server.client.post(server.url("/v1/forecast")).bearer_auth("guess").json(&body).send().await.unwrap();
    assert_eq!(wrong.status(), 401);
    let right = server
        .client
        .post(server.url("/v1/forecast"))
        .bearer_auth("test-key")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(right.status(), 200);
    assert_eq!(server.get("/metrics").await.0, 401);
    assert_eq!(server.get("/health").await.0, 200);
    server.stop().await;
}

/// The sum of `loopcast_batch_windows` observations and their count, from `/metrics`.
fn batch_windows(metrics: &str) -> (f64, f64) {
    let read = |name: &str| {
        metrics
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().last())
            .map_or(0.0, |v| v.parse().unwrap())
    };
    (read("loopcast_batch_windows_sum"), read("loopcast_batch_windows_count"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_concurrent_forecasts_are_answered_correctly_in_batches() {
    let batching = Batching { max_wait_ms: 20, ..Batching::default() };
    let server = std::sync::Arc::new(Server::start(ServeConfig { batching, ..config() }).await);
    let before = batch_windows(server.get("/metrics").await.2.as_str().unwrap());
    let telemetry: Vec<Telemetry> = (0..4).map(|i| Telemetry::new(&format!("s{i}"), 256, 10 + i)).collect();
    let mut tasks = Vec::new();
    for r in 0..200 {
        let server = server.clone();
        let body = json!({"series": [telemetry[r % 4].json(None)], "horizon": 32, "quantiles": [0.5]});
        tasks.push(tokio::spawn(async move { server.post("/v1/forecast", &body).await }));
    }
    let answers = futures::future::join_all(tasks).await;
    let model = model();
    let direct: Vec<_> = telemetry
        .iter()
        .map(|t| model.forecast(&t.batch(32, None), &ForecastOptions::default()).unwrap())
        .collect();
    for (r, answer) in answers.into_iter().enumerate() {
        let (status, _, body) = answer.unwrap();
        assert_eq!(status, 200, "request {r}: {body}");
        let series = &body["series"][0];
        assert_eq!(series["id"], format!("s{}", r % 4));
        close(served(series, 2, 0, 31), f64::from(direct[r % 4].value(0, 2, 31, 6)), "median");
    }
    let after = batch_windows(server.get("/metrics").await.2.as_str().unwrap());
    let (windows, calls) = (after.0 - before.0, after.1 - before.1);
    assert!(windows >= 200.0, "{windows} windows in {calls} calls");
    assert!(calls < windows, "batches were all of one window: {calls} calls for {windows} windows");
    eprintln!("200 requests: {windows} windows in {calls} model calls");
    std::sync::Arc::into_inner(server).unwrap().stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_queue_answers_503_and_the_server_recovers() {
    let batching = Batching { enabled: false, queue_capacity: 2, ..Batching::default() };
    let server = std::sync::Arc::new(Server::start(ServeConfig { batching, ..config() }).await);
    let heavy: Vec<Value> =
        (0..8).map(|i| Telemetry::new(&format!("h{i}"), 1024, 20 + i).json(None)).collect();
    let body = json!({"series": heavy, "horizon": 256, "missing_actions": "unknown"});
    let tasks: Vec<_> = (0..24)
        .map(|_| {
            let (server, body) = (server.clone(), body.clone());
            tokio::spawn(async move { server.post("/v1/forecast", &body).await })
        })
        .collect();
    let mut statuses = Vec::new();
    for task in tasks {
        let (status, headers, problem) = task.await.unwrap();
        if status == 503 {
            assert_eq!(headers["retry-after"], "1");
            assert!(problem["detail"].as_str().unwrap().contains("queue"), "{problem}");
        }
        statuses.push(status);
    }
    assert!(statuses.contains(&503), "no request was refused: {statuses:?}");
    assert!(statuses.contains(&200), "no request was served: {statuses:?}");
    assert!(statuses.iter().all(|s| *s == 200 || *s == 503), "{statuses:?}");
    let light = json!({"series": [Telemetry::new("after", 64, 9).json(None)], "horizon": 16});
    assert_eq!(server.post("/v1/forecast", &light).await.0, 200);
    std::sync::Arc::into_inner(server).unwrap().stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_past_its_deadline_gets_504() {
    let limits = Limits { request_timeout_ms: 1, ..Limits::default() };
    let server = Server::start(ServeConfig { limits, ..config() }).await;
    let heavy: Vec<Value> =
        (0..64).map(|i| Telemetry::new(&format!("h{i}"), 1024, 40 + i).json(None)).collect();
    let (status, _, problem) = server.post("/v1/forecast", &json!({"series": heavy, "horizon": 256})).await;
    assert_eq!(status, 504, "{problem}");
    assert!(problem["detail"].as_str().unwrap().contains("deadline"));
    assert_eq!(server.get("/health").await.0, 200);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_example_requests_are_answered() {
    let server = Server::start(config()).await;
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples/requests");
    let read = |file: &str| -> Value {
        serde_json::from_str(&std::fs::read_to_string(format!("{dir}/{file}")).unwrap()).unwrap()
    };
    for (file, route, series) in [("forecast.json", "/v1/forecast", 2), ("whatif.json", "/v1/whatif", 1)] {
        let (status, _, answer) = server.post(route, &read(file)).await;
        assert_eq!(status, 200, "{file}: {answer}");
        assert_eq!(answer["series"].as_array().unwrap().len(), series, "{file}");
    }
    let (status, _, answer) = server.post("/v1/plan", &read("plan.json")).await;
    assert_eq!(status, 200, "plan.json: {answer}");
    assert!(answer["feasible"].is_boolean() && !answer["frontier"].as_array().unwrap().is_empty());
    server.stop().await;
}

/// The repository's example files.
fn example_file(name: &str) -> Vec<u8> {
    std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples/data/").to_string() + name).unwrap()
}

/// POSTs `body` to `/v1/series?QUERY`.
async fn read_series(server: &Server, query: &str, body: Vec<u8>) -> (u16, Value) {
    let response =
        server.client.post(server.url(&format!("/v1/series?{query}"))).body(body).send().await.unwrap();
    let (status, _, answer) = common::split(response).await;
    (status, answer)
}

/// One channel's values of one series of a `series` array.
fn channel_values(series: &Value, id: &str, channel: &str) -> Value {
    let series = series.as_array().unwrap().iter().find(|s| s["id"] == id).unwrap();
    let channel = series["channels"].as_array().unwrap().iter().find(|c| c["name"] == channel).unwrap();
    channel["values"].clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn files_and_examples_become_series_that_forecast() {
    let server = Server::start(config()).await;
    let (status, _, list) = server.get("/v1/examples").await;
    assert_eq!(status, 200);
    let names: Vec<&str> =
        list["examples"].as_array().unwrap().iter().map(|e| e["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["services", "checkout"]);
    let (status, _, services) = server.get("/v1/examples/services").await;
    assert_eq!(status, 200, "{services}");
    assert_eq!(services["series"].as_array().unwrap().len(), 3);
    assert_eq!(services["plan"]["constraint"]["channel"], "latency_p95_ms");
    let api = &services["series"][0];
    assert_eq!((api["id"].as_str(), api["frequency"].as_str()), (Some("api"), Some("5m")));
    let roles: Vec<(&str, &str)> = api["channels"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| (c["name"].as_str().unwrap(), c["role"].as_str().unwrap()))
        .collect();
    assert_eq!(
        roles,
        [("cpu_util", "target"), ("latency_p95_ms", "target"), ("rps", "target"), ("replicas", "action")]
    );
    assert_eq!(api["channels"][0]["values"].as_array().unwrap().len(), 576);
    let (status, _, _) = server.get("/v1/examples/checkout").await;
    assert_eq!(status, 200);
    let (status, _, problem) = server.get("/v1/examples/nope").await;
    assert_eq!(status, 404);
    assert!(problem["detail"].as_str().unwrap().contains("nope"));

    // The same telemetry uploaded as long Parquet and as wide CSV reads the same.
    let (status, long) = read_series(
        &server,
        "name=services_long.parquet&actions=replicas",
        example_file("services_long.parquet"),
    )
    .await;
    assert_eq!(status, 200, "{long}");
    assert_eq!((long["file"].as_str(), long["rows"].as_u64()), (Some("services_long.parquet"), Some(6912)));
    let query = "name=services_wide.csv&layout=wide&series_id=service&timestamp=ts&actions=replicas";
    let (status, wide) = read_series(&server, query, example_file("services_wide.csv")).await;
    assert_eq!(status, 200, "{wide}");
    assert_eq!(wide["rows"], 1728);
    assert_eq!(long["gap_cells"], wide["gap_cells"]);
    for channel in ["rps", "latency_p95_ms", "replicas"] {
        for id in ["api", "search"] {
            assert_eq!(
                channel_values(&long["series"], id, channel),
                channel_values(&wide["series"], id, channel)
            );
            assert_eq!(
                channel_values(&wide["series"], id, channel),
                channel_values(&services["series"], id, channel)
            );
        }
    }
    let replicas = wide["series"][0]["channels"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "replicas")
        .unwrap()
        .clone();
    assert_eq!(replicas["role"], "action");

    // `targets` keeps only the named channels of a long file.
    let (status, some) = read_series(
        &server,
        "name=s.parquet&targets=rps&actions=replicas",
        example_file("services_long.parquet"),
    )
    .await;
    assert_eq!(status, 200, "{some}");
    let kept: Vec<&str> = some["series"][0]["channels"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(kept, ["replicas", "rps"]);

    // What came back is a request's `series`, as it is.
    let body = json!({"series": wide["series"], "horizon": 24});
    let (status, _, answer) = server.post("/v1/forecast", &body).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["series"].as_array().unwrap().len(), 3);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_uploads_name_the_file_row_and_column_or_the_parameter() {
    let server = Server::start(config()).await;
    let bad =
        b"series_id,timestamp,channel,value\napi,2024-01-01T00:00:00Z,rps,1\napi,yesterday,rps,2\n".to_vec();
    let wide = example_file("services_wide.csv");
    let cases: Vec<(&str, Vec<u8>, &str, &str)> = vec![
        ("name=bad.csv", bad.clone(), "file", "bad.csv: row 2, column `timestamp`"),
        ("name=empty.csv", Vec::new(), "file", "empty"),
        ("name=notes.txt", wide.clone(), "format", "notes.txt"),
        ("name=w.csv&format=xlsx", wide.clone(), "format", "xlsx"),
        ("name=..%2F.profile", wide.clone(), "name", "plain file name"),
        ("name=a%3Bb.csv", wide.clone(), "name", "plain file name"),
        ("name=w.csv&layout=wide&series_id=host&timestamp=ts", wide.clone(), "series_id", "host"),
        (
            "name=w.csv&layout=wide&series_id=service&timestamp=ts&actions=replicaz",
            wide.clone(),
            "actions",
            "replicaz",
        ),
        (
            "name=w.csv&layout=wide&series_id=service&timestamp=ts&actions=rps&covariates=rps",
            wide.clone(),
            "covariates",
            "two roles",
        ),
        ("name=w.csv&frequency=fortnightly", wide.clone(), "frequency", "fortnightly"),
        ("name=w.csv&layout=diagonal", wide.clone(), "query", "diagonal"),
        (
            "name=l.parquet&covariates=cpu",
            example_file("services_long.parquet"),
            "covariates",
            "`cpu` is not a channel",
        ),
    ];
    for (query, body, field, needle) in cases {
        let (status, problem) = read_series(&server, query, body).await;
        assert_eq!((status, problem["field"].as_str()), (422, Some(field)), "{query}: {problem}");
        let detail = problem["detail"].as_str().unwrap();
        assert!(detail.contains(needle), "{query}: {detail}");
        assert!(!detail.contains("/tmp"), "the staging directory stays hidden: {detail}");
    }
    // A wide file with no number column left to forecast.
    let text = b"service,ts,owner\napi,2024-01-01T00:00:00Z,sre\n".to_vec();
    let (status, problem) =
        read_series(&server, "name=t.csv&layout=wide&series_id=service&timestamp=ts", text).await;
    assert_eq!((status, problem["field"].as_str()), (422, Some("targets")), "{problem}");
    assert_eq!(server.get("/ready").await.0, 200);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_console_is_served_without_a_token_and_its_api_calls_need_one() {
    let server = Server::start(ServeConfig { api_key: Some("test-key".into()), ..config() }).await;
    let page = server.client.get(server.url("/")).send().await.unwrap();
    assert_eq!(page.status(), 200);
    let policy = page.headers()["content-security-policy"].to_str().unwrap().to_string();
    assert!(policy.contains("default-src 'self'"), "{policy}");
    let html = page.text().await.unwrap();
    for asset in ["/console/console.js", "/console/console.css"] {
        assert!(html.contains(asset), "the page loads {asset}");
    }
    for (asset, media) in
        [("console.js", "text/javascript"), ("charts.js", "text/javascript"), ("console.css", "text/css")]
    {
        let response = server.client.get(server.url(&format!("/console/{asset}"))).send().await.unwrap();
        assert_eq!(response.status(), 200, "{asset}");
        assert!(response.headers()["content-type"].to_str().unwrap().starts_with(media), "{asset}");
    }
    // Only files of the page itself: scripts import nothing from elsewhere.
    for asset in ["console.js", "charts.js", "console.css"] {
        let url = server.url(&format!("/console/{asset}"));
        let text = server.client.get(url).send().await.unwrap().text().await.unwrap();
        let text = text.replace("http://www.w3.org/2000/svg", "");
        assert!(
            !text.contains("http://") && !text.contains("https://"),
            "{asset} fetches nothing from elsewhere"
        );
    }
    let (status, _, problem) = server.get("/console/secrets.txt").await;
    assert_eq!(status, 404, "{problem}");
    let (status, _, _) = server.get("/v1/examples").await;
    assert_eq!(status, 401);
    let listed = server.client.get(server.url("/v1/examples")).bearer_auth("test-key").send().await.unwrap();
    assert_eq!(listed.status(), 200);
    server.stop().await;
}
