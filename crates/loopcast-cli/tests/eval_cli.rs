//! `loopcast eval` end to end on a small file: the table, the per-window CSV with one row
//! per series, window and model, the fan charts, a suite with its across-dataset table,
//! and bad input refused with the right exit status.

mod common;

use std::path::Path;

use common::loopcast;
use loopcast_eval::{baselines, metrics};

const SERIES: usize = 3;
const STEPS: usize = 240;
const SEASON: usize = 24;
const HORIZON: usize = 24;
const CONTEXT: usize = 96;

/// Hourly series with a daily cycle, a trend and deterministic wiggles.
fn values(series: usize) -> Vec<f64> {
    (0..STEPS)
        .map(|t| {
            let phase = 2.0 * std::f64::consts::PI * (t % SEASON) as f64 / SEASON as f64;
            let wiggle = ((t * 7 + series * 13) % 11) as f64 - 5.0;
            100.0 * (series + 1) as f64 + 30.0 * phase.sin() + 0.2 * t as f64 + wiggle
        })
        .collect()
}

fn write_csv(path: &Path) {
    let mut text = String::from("series_id,timestamp,value\n");
    for s in 0..SERIES {
        for (t, v) in values(s).iter().enumerate() {
            text.push_str(&format!("host-{s},2026-01-{:02}T{:02}:00:00Z,{v}\n", 1 + t / 24, t % 24));
        }
    }
    std::fs::write(path, text).unwrap();
}

fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).to_string()
}

#[test]
fn eval_writes_the_table_the_window_csv_and_charts() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("hosts.csv");
    write_csv(&data);
    let out_dir = dir.path().join("out");
    let (season, horizon, context) = (SEASON.to_string(), HORIZON.to_string(), CONTEXT.to_string());
    let out = loopcast(&[
        "eval",
        "--data",
        data.to_str().unwrap(),
        "--target",
        "value",
        "--season",
        &season,
        "--horizon",
        &horizon,
        "--context",
        &context,
        "--origins",
        "2",
        "--stride",
        "12",
        "--models",
        "loopcast,snaive,ets,mstl",
        "--out",
        out_dir.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let table = String::from_utf8_lossy(&out.stdout);
    for model in ["loopcast", "snaive", "ets", "mstl"] {
        assert!(table.contains(&format!("| {model} |")), "{model} missing from\n{table}");
    }

    // One row per series × window × model.
    let mut reader = csv::Reader::from_path(out_dir.join("windows.csv")).unwrap();
    let headers = reader.headers().unwrap().clone();
    let column = |name: &str| headers.iter().position(|h| h == name).unwrap();
    let rows: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
    assert_eq!(rows.len(), SERIES * 2 * 4);
    // Seasonal naive's MASE on the last window of host-1, computed here from the data.
    let series = values(1);
    let origin = STEPS - HORIZON;
    let context_values = &series[origin - CONTEXT..origin];
    let truth = &series[origin..];
    let naive = baselines::seasonal_naive(context_values, SEASON, HORIZON);
    let want = metrics::mase(context_values, SEASON, truth, &naive).unwrap();
    let row = rows
        .iter()
        .find(|r| {
            &r[column("series")] == "host-1" && &r[column("window")] == "1" && &r[column("model")] == "snaive"
        })
        .expect("the last window of host-1");
    let got: f64 = row[column("mase")].parse().unwrap();
    assert!((got - want).abs() < 1e-4 * want, "{got} vs {want}");
    assert_eq!(&row[column("origin")], "2026-01-10T00:00:00+00:00");
    // Loopcast reports the loops it used; the baselines do not.
    assert!(
        rows.iter()
            .filter(|r| &r[column("model")] == "loopcast")
            .all(|r| r[column("mean_loops")].parse::<f64>().unwrap() >= 1.0)
    );

    let summary: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out_dir.join("summary.json")).unwrap()).unwrap();
    assert_eq!(summary["series"], SERIES);
    assert_eq!(summary["windows"], SERIES * 2);
    let snaive = summary["summary"].as_array().unwrap().iter().find(|m| m["model"] == "snaive").unwrap();
    assert_eq!(snaive["relative_mase"], 1.0);
    assert!(std::fs::read_to_string(out_dir.join("summary.md")).unwrap().contains("| relative MASE |"));
    let charts: Vec<_> = std::fs::read_dir(out_dir.join("charts")).unwrap().map(Result::unwrap).collect();
    assert_eq!(charts.len(), SERIES);
    for chart in charts {
        let svg = std::fs::read_to_string(chart.path()).unwrap();
        // Two bands (98 %, 80 %) for loopcast and a median line per model.
        assert_eq!(svg.matches("<polygon").count(), 2, "{}", chart.path().display());
    }
}

#[test]
fn a_suite_adds_the_across_dataset_table() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("hosts.csv");
    write_csv(&data);
    let suite = dir.path().join("suite.toml");
    let dataset = |name: &str, origins: usize| {
        format!(
            "[[dataset]]\nname = \"{name}\"\ndata = {:?}\ntarget = [\"value\"]\nseason = {SEASON}\nhorizon = {HORIZON}\n\
             context = {CONTEXT}\norigins = {origins}\n",
            data.to_str().unwrap()
        )
    };
    std::fs::write(
        &suite,
        format!("models = [\"snaive\", \"naive\"]\n{}{}", dataset("one", 1), dataset("two", 3)),
    )
    .unwrap();
    let out_dir = dir.path().join("out");
    let out = loopcast(&["eval", "--suite", suite.to_str().unwrap(), "--out", out_dir.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    let across = std::fs::read_to_string(out_dir.join("summary.md")).unwrap();
    assert!(across.contains("| naive |") && across.contains("| 2 |"), "{across}");
    for (name, windows) in [("one", SERIES), ("two", SERIES * 3)] {
        let rows = csv::Reader::from_path(out_dir.join(name).join("windows.csv")).unwrap().records().count();
        assert_eq!(rows, windows * 2, "{name}");
    }
    // `--models` wins over the suite's list.
    let flagged = dir.path().join("flagged");
    let args = [
        "eval",
        "--suite",
        suite.to_str().unwrap(),
        "--models",
        "snaive",
        "--out",
        flagged.to_str().unwrap(),
    ];
    let out = loopcast(&args);
    assert!(out.status.success(), "{}", stderr(&out));
    let across = std::fs::read_to_string(flagged.join("summary.md")).unwrap();
    assert!(across.contains("| snaive |") && !across.contains("| naive |"), "{across}");
}

#[test]
fn bad_input_gets_a_one_line_error_and_its_exit_status() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("hosts.csv");
    write_csv(&data);
    let out_dir = dir.path().join("out");
    let base = ["eval", "--data", data.to_str().unwrap(), "--horizon", "24", "--context", "96"];
    let run = |extra: &[&str]| {
        let mut args = base.to_vec();
        args.extend_from_slice(extra);
        args.extend_from_slice(&["--out", out_dir.to_str().unwrap()]);
        loopcast(&args)
    };
    // A channel the file does not have: exit 65, naming it and what there is.
    let out = run(&["--target", "cpu", "--season", "24", "--models", "snaive"]);
    assert_eq!(out.status.code(), Some(65), "{}", stderr(&out));
    assert!(stderr(&out).contains("cpu") && stderr(&out).contains("value"), "{}", stderr(&out));
    // Season 0 and an unknown model: usage errors, exit 2.
    let out = run(&["--target", "value", "--season", "0"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let out = run(&["--target", "value", "--season", "24", "--models", "prophet"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("prophet"), "{}", stderr(&out));
    // A horizon longer than every series: exit 65 saying so.
    let mut args = vec!["eval", "--data", data.to_str().unwrap(), "--target", "value", "--season", "24"];
    args.extend_from_slice(&["--horizon", "500", "--context", "96", "--models", "snaive"]);
    let out = loopcast(&args);
    assert_eq!(out.status.code(), Some(65), "{}", stderr(&out));
    assert_eq!(stderr(&out).lines().count(), 1, "{}", stderr(&out));
}

#[test]
fn twins_write_the_effect_and_planner_tables() {
    let dir = tempfile::tempdir().unwrap();
    let out_dir = dir.path().join("twins");
    let out = loopcast(&[
        "eval",
        "--twins",
        "2",
        "--plans",
        "3",
        "--context",
        "384",
        "--horizon",
        "48",
        "--planner-problems",
        "1",
        "--planner-budget",
        "6",
        "--out",
        out_dir.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let markdown = std::fs::read_to_string(out_dir.join("counterfactual.md")).unwrap();
    for row in ["| loopcast |", "| action_blind |", "| arx |", "| oracle |", "| operator's autoscaler |"] {
        assert!(markdown.contains(row), "{row} missing from\n{markdown}");
    }
    // The replica sweep compares 4 adjacent plans over 48 steps of 2 episodes per target.
    for row in ["| cpu_util | 384 |", "| latency_p50_ms | 384 |", "| latency_p95_ms | 384 |"] {
        assert!(markdown.contains(row), "{row} missing from\n{markdown}");
    }
    let json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out_dir.join("counterfactual.json")).unwrap()).unwrap();
    assert_eq!(json["monotone"][0]["comparisons"], 384, "{}", json["monotone"]);
    // One row per material effect and model, the same effects for every model.
    let mut reader = csv::Reader::from_path(out_dir.join("effects.csv")).unwrap();
    let headers = reader.headers().unwrap().clone();
    let model = headers.iter().position(|h| h == "model").unwrap();
    let rows: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
    let count = |name: &str| rows.iter().filter(|r| &r[model] == name).count();
    assert!(count("loopcast") > 0);
    assert_eq!(count("loopcast"), count("arx"));
    assert_eq!(count("loopcast"), count("action_blind"));
    assert_eq!(count("loopcast"), count("oracle"));
    assert_eq!(rows.len(), 4 * count("loopcast"));
    // Each row gives the true and the predicted mean effect, the same truth for every
    // model; the action-blind model's what-ifs never differ.
    let column = |name: &str| headers.iter().position(|h| h == name).unwrap();
    let (truth, predicted) = (column("true_mean"), column("predicted_mean"));
    let value = |row: &csv::StringRecord, at: usize| row[at].parse::<f64>().unwrap();
    assert!(rows.iter().any(|row| value(row, truth) != 0.0));
    for row in &rows {
        assert!(value(row, truth).is_finite() && value(row, predicted).is_finite(), "{row:?}");
        if &row[model] == "action_blind" {
            assert_eq!(value(row, predicted), 0.0, "{row:?}");
        }
    }
    let (seed, plan, channel) = (column("seed"), column("plan"), column("channel"));
    let truths = |name: &str| -> std::collections::BTreeMap<(String, String, String), String> {
        rows.iter()
            .filter(|r| &r[model] == name)
            .map(|r| {
                ((r[seed].to_string(), r[plan].to_string(), r[channel].to_string()), r[truth].to_string())
            })
            .collect()
    };
    assert_eq!(truths("loopcast"), truths("oracle"));
    assert_eq!(truths("loopcast"), truths("arx"));
    let plans = csv::Reader::from_path(out_dir.join("plans.csv")).unwrap().records().count();
    assert_eq!(plans, 3, "a loopcast, a perfect-model and an operator row for the one problem");
    let json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out_dir.join("counterfactual.json")).unwrap()).unwrap();
    assert_eq!(json["counterfactual"]["departures"], 4);
    assert_eq!(json["planner"]["episodes"], 1);
    assert!(json["counterfactual"]["rows"].is_null(), "per-effect rows go to the CSV only");
    assert_eq!(json["world"], "sre");

    // The same seeds in the held-out two-tier world: scored against that world's truth.
    let two_tier = dir.path().join("two-tier");
    let out = loopcast(&[
        "eval",
        "--twins",
        "2",
        "--plans",
        "3",
        "--context",
        "384",
        "--horizon",
        "48",
        "--planner-problems",
        "0",
        "--world",
        "two-tier",
        "--out",
        two_tier.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let markdown = std::fs::read_to_string(two_tier.join("counterfactual.md")).unwrap();
    assert!(markdown.contains("world `two-tier`"), "{markdown}");
    let json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(two_tier.join("counterfactual.json")).unwrap()).unwrap();
    assert_eq!(json["world"], "two-tier");
    // There more replicas truly raise latency where the downstream binds: no sweep.
    assert!(json["monotone"].is_null() && !markdown.contains("Capacity monotonicity"), "{markdown}");
    let mut reader = csv::Reader::from_path(two_tier.join("effects.csv")).unwrap();
    let other: std::collections::BTreeMap<_, _> = reader
        .records()
        .map(Result::unwrap)
        .filter(|r| &r[model] == "oracle")
        .map(|r| ((r[seed].to_string(), r[plan].to_string(), r[channel].to_string()), r[truth].to_string()))
        .collect();
    assert!(!other.is_empty());
    assert_ne!(other, truths("oracle"), "the two worlds' effects differ");

    // Flags that cannot work: exit 2.
    let out = loopcast(&["eval", "--twins", "2", "--plans", "1", "--out", out_dir.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let out = loopcast(&["eval", "--twins", "2", "--first-seed", &u64::MAX.to_string()]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert_eq!(stderr(&out).lines().count(), 1, "{}", stderr(&out));
    let out = loopcast(&["eval", "--twins", "2", "--data", "x.csv"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let out = loopcast(&["eval", "--twins", "2", "--world", "three-tier"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("two-tier"), "{}", stderr(&out));
}

/// `loopcast simulate`'s own output — targets, actions and covariates named in its `role`
/// column — is backtested with those roles: the actions reach the model with their plan
/// (its forecasts differ from those of the same file without them, seasonal naive's do
/// not), every target is scored unless `--target` picks some, and a `--target` that is no
/// target, or no channel, is refused naming it.
#[test]
fn a_file_with_a_role_column_is_backtested_with_its_actions() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("sre.parquet");
    let path = data.to_str().unwrap();
    let simulate =
        ["simulate", "--series", "2", "--length", "700", "--plans", "1", "--seed", "11", "--out", path];
    let out = loopcast(&simulate);
    assert!(out.status.success(), "{}", stderr(&out));
    let eval = |name: &str, extra: &[&str]| {
        let out_dir = dir.path().join(name);
        let mut args = vec!["eval", "--data", path, "--season", "288", "--horizon", "64", "--context", "512"];
        args.extend_from_slice(&[
            "--models",
            "loopcast,snaive",
            "--charts",
            "0",
            "--out",
            out_dir.to_str().unwrap(),
        ]);
        args.extend_from_slice(extra);
        (loopcast(&args), out_dir)
    };
    // (channel, model) → relative MASE's numerator, the window's MASE.
    let scores = |out_dir: &Path| -> Vec<(String, String, f64)> {
        let mut reader = csv::Reader::from_path(out_dir.join("windows.csv")).unwrap();
        let headers = reader.headers().unwrap().clone();
        let column = |name: &str| headers.iter().position(|h| h == name).unwrap();
        let mut rows: Vec<(String, String, f64)> = reader
            .records()
            .map(Result::unwrap)
            .map(|r| {
                let key = format!("{}/{}", &r[column("series")], &r[column("channel")]);
                (key, r[column("model")].to_string(), r[column("mase")].parse().unwrap())
            })
            .collect();
        rows.sort_by(|a, b| (&a.0, &a.1).cmp(&(&b.0, &b.1)));
        rows
    };

    let (out, with_actions) = eval("all", &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    let all = scores(&with_actions);
    let channels: std::collections::BTreeSet<&str> =
        all.iter().map(|(key, _, _)| key.split('/').nth(1).unwrap()).collect();
    let targets =
        ["cpu_util", "error_rate", "latency_p50_ms", "latency_p95_ms", "memory_mb", "queue_depth", "rps"];
    assert_eq!(channels.into_iter().collect::<Vec<_>>(), targets, "every target scored, nothing else");
    assert_eq!(all.len(), 2 * 7 * 2);

    let (out, blind) = eval("blind", &["--filter", "role <> 'action'"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let blind = scores(&blind);
    let (mut same_snaive, mut moved) = (0, 0);
    for (a, b) in all.iter().zip(&blind) {
        assert_eq!((&a.0, &a.1), (&b.0, &b.1));
        if a.1 == "snaive" {
            same_snaive += usize::from(a.2 == b.2);
        } else {
            moved += usize::from((a.2 - b.2).abs() > 1e-9);
        }
    }
    assert_eq!(same_snaive, 14, "seasonal naive never reads the actions");
    assert!(moved > 0, "the actions reach the model: {all:?} vs {blind:?}");

    // As in production, the actions' future hidden: the forecasts differ from the
    // what-if's, and differ from the blind ones too (the actions' history is still read).
    let (out, hidden) = eval("hidden", &["--action-futures", "hidden"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let hidden = scores(&hidden);
    let differs = |other: &[(String, String, f64)]| {
        hidden.iter().zip(other).filter(|(a, b)| a.1 == "loopcast" && (a.2 - b.2).abs() > 1e-9).count()
    };
    assert!(differs(&all) > 0 && differs(&blind) > 0, "{hidden:?}");
    assert_eq!(
        hidden.iter().filter(|r| r.1 == "snaive").collect::<Vec<_>>(),
        all.iter().filter(|r| r.1 == "snaive").collect::<Vec<_>>()
    );

    let (out, picked) = eval("picked", &["--target", "cpu_util,latency_p95_ms"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let picked = scores(&picked);
    assert_eq!(picked.len(), 2 * 2 * 2);
    for row in &picked {
        assert!(all.contains(row), "{row:?}: scores of a selection are those of the whole file");
    }

    let (out, _) = eval("action", &["--target", "replicas"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("`replicas` is not a target"), "{}", stderr(&out));
    let (out, _) = eval("missing", &["--target", "cpu"]);
    assert_eq!(out.status.code(), Some(65), "{}", stderr(&out));
    assert!(stderr(&out).contains("cpu") && stderr(&out).contains("replicas"), "{}", stderr(&out));
    let (out, _) = eval("covariates", &["--covariates", "hour_of_day"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("role column"), "{}", stderr(&out));
}
