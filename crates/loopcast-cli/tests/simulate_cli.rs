//! Runs the built `loopcast simulate` and reads its output back with `loopcast inspect`.

mod common;

use std::path::Path;

use common::{json, loopcast};
use serde_json::json;

fn path(p: &Path) -> &str {
    p.to_str().unwrap()
}

#[test]
fn sre_twins_are_written_and_read_back_one_scenario_at_a_time() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("twins.parquet");
    let args = [
        "simulate",
        "--series",
        "2",
        "--length",
        "300",
        "--plans",
        "3",
        "--seed",
        "5",
        "--out",
        path(&out),
        "--json",
    ];
    let summary = json(&args);
    assert_eq!(summary["rows"], 2 * 3 * 300 * 14);
    assert_eq!(summary["scenarios"], 3);

    // The same command writes the same bytes.
    let first = std::fs::read(&out).unwrap();
    json(&args);
    assert_eq!(std::fs::read(&out).unwrap(), first);

    let report = json(&["inspect", path(&out), "--where", "scenario = 'plan-2'", "--json"]);
    assert_eq!(report["series"], 2);
    assert_eq!(report["rows"], 2 * 300 * 14);
    assert_eq!(report["frequency"], "5m");
    assert_eq!(report["role_source"], "role_column");
    let roles: Vec<(String, String)> = report["channels"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| (c["name"].as_str().unwrap().into(), c["role"].as_str().unwrap().into()))
        .collect();
    assert!(roles.contains(&("replicas".into(), "action".into())));
    assert!(roles.contains(&("latency_p95_ms".into(), "target".into())));
    assert!(roles.contains(&("hour_of_day".into(), "covariate".into())));
    assert_eq!(report["values"]["rejected"], 0);

    // The same services in the two-tier world: the same shape, other latencies.
    let two_tier = dir.path().join("two-tier.parquet");
    let mut other = args;
    other[10] = path(&two_tier);
    let summary = json(&[&["simulate", "--world", "two-tier"][..], &other[1..]].concat());
    assert_eq!((summary["world"].as_str(), &summary["rows"]), (Some("two-tier"), &json!(2 * 3 * 300 * 14)));
    assert_ne!(std::fs::read(&two_tier).unwrap(), first);
}

#[test]
fn prior_series_have_the_asked_shape() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("prior.parquet");
    let summary = json(&[
        "simulate",
        "--world",
        "prior",
        "--series",
        "3",
        "--length",
        "200",
        "--freq",
        "1h",
        "--channels",
        "2",
        "--out",
        path(&out),
        "--json",
    ]);
    assert_eq!(summary["rows"], 3 * 200 * 2);
    let report = json(&["inspect", path(&out), "--json"]);
    assert_eq!(report["series"], 3);
    assert_eq!(report["frequency"], "1h");
    assert_eq!(report["channels"].as_array().unwrap().len(), 2);
}

#[test]
fn bad_flags_and_parameter_files_fail_with_the_reason() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("x.parquet");
    let run = |args: &[&str]| {
        let result = loopcast(args);
        (result.status.code(), String::from_utf8_lossy(&result.stderr).into_owned())
    };
    let (code, err) = run(&["simulate", "--length", "100", "--horizon", "100", "--out", path(&out)]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("--horizon 100"), "{err}");
    let (code, err) = run(&["simulate", "--world", "prior", "--plans", "2", "--out", path(&out)]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("--plans"), "{err}");
    let (code, err) = run(&["simulate", "--world", "prior", "--horizon", "10", "--out", path(&out)]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("--horizon"), "{err}");
    let (code, err) = run(&["simulate", "--freq", "1d", "--out", path(&out)]);
    assert_eq!(code, Some(65), "{err}");
    assert!(err.contains("10s to 1h"), "{err}");

    let params = dir.path().join("params.toml");
    std::fs::write(&params, "base_rps = [500, 100]\n").unwrap();
    let (code, err) = run(&["simulate", "--params", path(&params), "--out", path(&out)]);
    assert_eq!(code, Some(65), "{err}");
    assert!(err.contains("params.toml") && err.contains("base_rps"), "{err}");
    assert_eq!(err.lines().count(), 1, "one line: {err}");
    assert!(!out.exists(), "no output after a failure");
}
