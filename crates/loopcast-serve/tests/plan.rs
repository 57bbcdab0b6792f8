//! `POST /v1/plan` over real HTTP on 127.0.0.1: the chosen schedule, its trajectory and
//! its cost checked against the model called directly; the frontier; the no-plan answer;
//! bad inputs naming their field.

mod common;

use common::{Server, Telemetry, close, model};
use loopcast_model::{Forecast, ForecastOptions};
use loopcast_serve::ServeConfig;
use serde_json::{Value, json};

const HORIZON: usize = 48;

/// The model's level index of 0.9.
fn q90(levels: &[f64]) -> usize {
    levels.iter().position(|l| (l - 0.9).abs() < 1e-9).expect("the model has a 0.9 level")
}

/// The model's forecast of `telemetry` under a replica schedule.
fn direct(telemetry: &Telemetry, replicas: &[f64]) -> Forecast {
    let planned = telemetry.batch(HORIZON, Some(replicas));
    let (values, known) = planned.future_arrays();
    let plans = vec![(values.to_vec(), known.to_vec())];
    model().whatif(&telemetry.batch(HORIZON, None), &plans, &ForecastOptions::default()).unwrap().remove(0)
}

/// Worst (highest) q0.9 of latency (target 2) over the horizon.
fn worst_latency(forecast: &Forecast) -> f64 {
    let q = q90(&forecast.levels);
    (0..HORIZON).map(|h| f64::from(forecast.value(0, 2, h, q))).fold(f64::MIN, f64::max)
}

fn request(telemetry: &Telemetry, bound: f64, max_candidates: usize) -> Value {
    json!({
        "series": telemetry.json(None),
        "horizon": HORIZON,
        "actions": [{"channel": "replicas", "min": 2, "max": 20, "change_every": 16, "cost_per_unit": 0.25}],
        "constraint": {"channel": "latency_p95_ms", "quantile": 0.9, "max": bound},
        "max_candidates": max_candidates,
        "quantiles": [0.5, 0.9],
    })
}

fn numbers(value: &Value) -> Vec<f64> {
    value.as_array().unwrap().iter().map(|v| v.as_f64().unwrap()).collect()
}

/// Judged on the forecasts alone (the shipped weights with no effect intervals), so the
/// judgement can be checked against the model called directly.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_plan_is_the_cheapest_evaluated_schedule_that_keeps_the_bound() {
    let trusting = model().with_effect_widening(0.0).unwrap();
    let server = Server::start_with(ServeConfig::default(), trusting).await;
    let telemetry = Telemetry::new("checkout", 512, 5);
    // A bound the most capacity keeps: the search must find a plan.
    let bound = worst_latency(&direct(&telemetry, &[20.0; HORIZON])) + 0.01;
    let (status, _, answer) = server.post("/v1/plan", &request(&telemetry, bound, 40)).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["feasible"], true, "{}", answer["detail"]);
    assert!(answer["closest"].is_null() && answer["refusal"].is_null());
    let plan = &answer["plan"];
    let replicas = numbers(&plan["candidate"]["actions"]["replicas"]);
    assert_eq!(replicas.len(), HORIZON);
    for segment in replicas.chunks(16) {
        assert!(segment.iter().all(|r| *r == segment[0]), "changes only every 16 steps: {replicas:?}");
        assert!(segment[0].fract() == 0.0 && (2.0..=20.0).contains(&segment[0]), "{replicas:?}");
    }
    let cost = plan["candidate"]["cost"].as_f64().unwrap();
    close(cost, 0.25 * replicas.iter().sum::<f64>(), "cost");

    // The trajectory and the judgement are the model's own under that schedule.
    let forecast = direct(&telemetry, &replicas);
    let worst = plan["candidate"]["worst"].as_f64().unwrap();
    close(worst, worst_latency(&forecast), "worst q0.9 latency");
    assert!(worst <= bound && plan["candidate"]["meets"] == true);
    let median = forecast.levels.iter().position(|l| (l - 0.5).abs() < 1e-9).unwrap();
    for h in [0, 20, HORIZON - 1] {
        let served = plan["channels"][2]["quantiles"][0]["values"][h].as_f64().unwrap();
        close(served, f64::from(forecast.value(0, 2, h, median)), "planned median latency");
    }
    assert_eq!(plan["loops"].as_array().unwrap().len(), HORIZON);
    assert_eq!(answer["timestamps"].as_array().unwrap().len(), HORIZON);

    // The frontier: cheapest first, each less risky than the ones before; no cheaper
    // point keeps the bound.
    let frontier = answer["frontier"].as_array().unwrap();
    assert!(!frontier.is_empty());
    for pair in frontier.windows(2) {
        assert!(pair[0]["cost"].as_f64() <= pair[1]["cost"].as_f64());
        assert!(pair[0]["breach_probability"].as_f64() > pair[1]["breach_probability"].as_f64());
    }
    for point in frontier {
        if point["meets"] == true {
            assert!(point["cost"].as_f64().unwrap() >= cost - 1e-9, "{point}");
        }
    }
    let candidates = answer["search"]["candidates"].as_u64().unwrap();
    assert!((1..=40).contains(&candidates), "{candidates}");
    assert!(answer["search"]["rounds"].as_u64().unwrap() >= 1);

    // A bound nothing keeps: a clear no-plan answer with the least risky schedule.
    let (status, _, answer) = server.post("/v1/plan", &request(&telemetry, -1e6, 16)).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["feasible"], false);
    assert_eq!(answer["refusal"], "unreachable");
    assert!(answer["plan"].is_null());
    assert_eq!(answer["closest"]["candidate"]["meets"], false);
    assert!(answer["detail"].as_str().unwrap().contains("none of"), "{}", answer["detail"]);
    assert!(answer["search"]["candidates"].as_u64().unwrap() <= 16);
    server.stop().await;
}

/// A problem that only a departure from the operator's own plan (holding the last
/// replica count) keeps by the forecasts, asked of the same weights with effect intervals
/// too wide to vouch for any departure: refused, naming why, with the least risky schedule
/// for reference.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_planner_refuses_when_effect_intervals_are_too_wide() {
    let telemetry = Telemetry::new("checkout", 512, 5);
    let last = *telemetry.replicas.last().unwrap();
    let hold = worst_latency(&direct(&telemetry, &[last; HORIZON]));
    // The uniform schedule the forecasts judge best; the bound is just above it.
    let best = (2..=20)
        .map(f64::from)
        .filter(|r| *r != last)
        .map(|r| worst_latency(&direct(&telemetry, &[r; HORIZON])))
        .fold(f64::MAX, f64::min);
    let bound = best + 0.01;
    assert!(bound < hold, "holding {last} replicas ({hold}) keeps the bound {bound}: no departure is needed");
    let unsure = model().with_effect_widening(50.0).unwrap();
    let server = Server::start_with(ServeConfig::default(), unsure).await;
    let (status, _, answer) = server.post("/v1/plan", &request(&telemetry, bound, 40)).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["feasible"], false, "{answer}");
    assert_eq!(answer["refusal"], "uncertain_effects");
    assert!(answer["plan"].is_null() && answer["closest"].is_object());
    let detail = answer["detail"].as_str().unwrap();
    assert!(detail.contains("cannot tell") && detail.contains("5000 %"), "{detail}");
    assert!(model().with_effect_widening(-1.0).is_err() && model().with_effect_widening(f64::NAN).is_err());
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_plan_requests_name_their_field() {
    let server = Server::start(ServeConfig::default()).await;
    let telemetry = Telemetry::new("checkout", 256, 6);
    let base = request(&telemetry, 250.0, 32);
    type Edit = Box<dyn Fn(&mut Value)>;
    let cases: Vec<(&str, Edit)> = vec![
        ("constraint.channel", Box::new(|b| b["constraint"]["channel"] = json!("replicas"))),
        ("constraint.quantile", Box::new(|b| b["constraint"]["quantile"] = json!(0.999))),
        ("constraint.max", Box::new(|b| b["constraint"]["min"] = json!(1.0))),
        ("actions[0].channel", Box::new(|b| b["actions"][0]["channel"] = json!("cpu_util"))),
        ("actions[0].max", Box::new(|b| b["actions"][0]["max"] = json!(1))),
        ("actions[0].step", Box::new(|b| b["actions"][0]["step"] = json!(0))),
        ("actions[0].change_every", Box::new(|b| b["actions"][0]["change_every"] = json!(0))),
        ("actions[0].cost_per_unit", Box::new(|b| b["actions"][0]["cost_per_unit"] = json!(-1))),
        ("actions", Box::new(|b| b["actions"] = json!([]))),
        ("max_candidates", Box::new(|b| b["max_candidates"] = json!(100_000))),
        ("horizon", Box::new(|b| b["horizon"] = json!(0))),
        ("series.channels[1].values", Box::new(|b| b["series"]["channels"][1]["values"] = json!([1.0]))),
        ("constraint.quantile", Box::new(|b| b["constraint"]["quantile"] = json!("high"))),
    ];
    for (field, edit) in cases {
        let mut body = base.clone();
        edit(&mut body);
        let (status, headers, problem) = server.post("/v1/plan", &body).await;
        assert_eq!(status, 422, "{field}: {problem}");
        assert_eq!(headers["content-type"], "application/problem+json");
        assert_eq!(problem["field"], field, "{problem}");
    }
    assert_eq!(server.get("/health").await.0, 200);
    server.stop().await;
}
