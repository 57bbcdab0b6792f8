//! Runs the built `loopcast inspect` on the example data and on bad input.

mod common;

use std::path::PathBuf;

use common::{json, loopcast};

fn examples() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples/data"))
}

#[test]
fn inspect_reports_the_long_example_as_json() {
    let file = examples().join("services_long.parquet");
    let mapping = examples().join("services_long.mapping.toml");
    let report = json(&["inspect", file.to_str().unwrap(), "--mapping", mapping.to_str().unwrap(), "--json"]);
    assert_eq!(report["series"], 3);
    assert_eq!(report["rows"], 3 * 576 * 4);
    assert_eq!(report["frequency"], "5m");
    assert_eq!(report["frequency_inferred"], true);
    assert_eq!(report["start"], "2024-03-04T00:00:00Z");
    assert_eq!(report["end"], "2024-03-05T23:55:00Z");
    assert_eq!(report["role_source"], "mapping");
    // Two days of a daily cycle: the calendar's day of 5-minute steps holds.
    assert_eq!(report["seasons"], serde_json::json!([{"steps": 288, "source": "calendar", "series": 3}]));
    let channels: Vec<(String, String)> = report["channels"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| (c["name"].as_str().unwrap().to_string(), c["role"].as_str().unwrap().to_string()))
        .collect();
    assert_eq!(
        channels,
        [("cpu_util", "target"), ("latency_p95_ms", "target"), ("rps", "target"), ("replicas", "action")]
            .map(|(n, r)| (n.to_string(), r.to_string()))
    );
    // The generator drops about 1% of the gauge scrapes: they are gaps, not rejections.
    let missing = report["values"]["missing"].as_u64().unwrap();
    assert!(missing > 0 && missing < 300, "{missing}");
    assert_eq!(report["gap_cells"].as_u64().unwrap(), missing);
    assert_eq!(report["values"]["rejected"], 0);
    let share = report["gap_share"].as_f64().unwrap();
    assert!((share - missing as f64 / (3.0 * 576.0 * 4.0)).abs() < 1e-12);
}

#[test]
fn every_example_format_gives_the_same_summary() {
    let long = json(&["inspect", examples().join("services_long.parquet").to_str().unwrap(), "--json"]);
    let wide_mapping = examples().join("services_wide.mapping.toml");
    for (file, extra) in [
        ("services_long.csv", vec![]),
        ("services_long.arrow", vec![]),
        ("services_long.arrows", vec![]),
        ("services_wide.parquet", vec!["--format", "wide", "--mapping", wide_mapping.to_str().unwrap()]),
        ("services_wide.csv", vec!["--format", "wide", "--mapping", wide_mapping.to_str().unwrap()]),
    ] {
        let path = examples().join(file);
        let mut args = vec!["inspect", path.to_str().unwrap(), "--json"];
        args.extend(extra);
        let report = json(&args);
        for key in ["series", "cells", "gap_cells", "start", "end", "frequency"] {
            assert_eq!(report[key], long[key], "{file}: {key}");
        }
        assert_eq!(report["values"]["total"], long["values"]["total"], "{file}");
    }
}

#[test]
fn text_output_and_where_filter() {
    let file = examples().join("services_long.csv");
    let out =
        loopcast(&["inspect", file.to_str().unwrap(), "--where", "series_id = 'api' AND channel = 'rps'"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("series      1\n"), "{text}");
    assert!(text.contains("frequency   5m (inferred)"), "{text}");
    assert!(text.contains("season      288 steps (the calendar's): 1 series"), "{text}");
    assert!(text.contains("every channel taken as a target"), "{text}");
}

#[test]
fn bad_input_exits_with_a_one_line_message() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.csv");
    std::fs::write(&bad, "series_id,timestamp,channel,value\na,2024-01-01T00:00:00Z,cpu,1\na,not a time,cpu,2\na,2024-01-01T00:05:00Z,cpu,3\n")
        .unwrap();
    let out = loopcast(&["inspect", bad.to_str().unwrap(), "--strict"]);
    assert_eq!(out.status.code(), Some(65));
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.contains("bad.csv") && stderr.contains("row 2") && stderr.contains("`timestamp`"),
        "{stderr}"
    );

    // Without --strict the row is reported instead.
    let report = json(&["inspect", bad.to_str().unwrap(), "--json"]);
    assert_eq!(report["rejected_by_reason"]["unparseable_timestamp"], 1);
    assert_eq!(report["rejection_samples"][0]["row"], 2);

    let out = loopcast(&[
        "inspect",
        examples().join("services_wide.parquet").to_str().unwrap(),
        "--format",
        "wide",
    ]);
    assert_eq!(out.status.code(), Some(65));
    assert!(String::from_utf8_lossy(&out.stderr).contains("needs a mapping"));

    let out = loopcast(&["inspect", "does-not-exist.parquet"]);
    assert_eq!(out.status.code(), Some(65));
    assert!(String::from_utf8_lossy(&out.stderr).contains("does-not-exist.parquet"));

    let out = loopcast(&["inspect", bad.to_str().unwrap(), "--freq", "5 parsecs"]);
    assert_eq!(out.status.code(), Some(2), "usage errors exit 2");
}
