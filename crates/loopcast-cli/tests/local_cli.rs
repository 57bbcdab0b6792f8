//! `loopcast forecast | whatif | plan | score` run locally on files, as a user runs them:
//! the example requests answered, bad input refused in one line naming file and field,
//! and `score` interrupted with Ctrl-C (SIGINT) and resumed to exactly the expected rows,
//! also split into shards.

mod common;

use std::collections::{BTreeSet, HashSet};
use std::process::{Command, Stdio};
use std::time::Duration;

use common::{forecast_keys, loopcast};

fn examples(file: &str) -> String {
    format!("{}/../../examples/requests/{file}", env!("CARGO_MANIFEST_DIR"))
}

fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).to_string()
}

#[test]
fn requests_are_answered_locally_and_bad_ones_name_file_and_field() {
    let dir = tempfile::tempdir().unwrap();
    for (command, file, key) in
        [("forecast", "forecast.json", "series"), ("whatif", "whatif.json", "baseline")]
    {
        let out = loopcast(&[command, &examples(file)]);
        assert!(out.status.success(), "{command}: {}", stderr(&out));
        let answer: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert!(!answer[key].is_null(), "{command}: {answer}");
    }
    let written = dir.path().join("plan.json");
    let out = loopcast(&["plan", &examples("plan.json"), "--output", written.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    let plan: serde_json::Value = serde_json::from_slice(&std::fs::read(&written).unwrap()).unwrap();
    assert!(plan["feasible"].is_boolean() && plan["frontier"].as_array().is_some_and(|f| !f.is_empty()));

    // A what-if body given to `forecast`: exit 65, one line naming the file and field.
    let out = loopcast(&["forecast", &examples("whatif.json")]);
    assert_eq!(out.status.code(), Some(65));
    let message = stderr(&out);
    assert!(message.contains("whatif.json") && message.contains("`baseline`"), "{message}");
    assert_eq!(message.trim().lines().count(), 1, "{message}");
    let bad = dir.path().join("bad.json");
    std::fs::write(&bad, r#"{"series": [], "horizon": 8}"#).unwrap();
    let out = loopcast(&["forecast", bad.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(65));
    assert!(stderr(&out).contains("`series`"), "{}", stderr(&out));
}

#[test]
fn score_resumes_after_ctrl_c_and_shards_partition_the_series() {
    let dir = tempfile::tempdir().unwrap();
    let fleet = dir.path().join("fleet.parquet");
    let out = loopcast(&["simulate", "--series", "48", "--length", "300", "--out", fleet.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    let fleet = fleet.to_str().unwrap();
    let output = dir.path().join("scores.parquet");
    let parts = dir.path().join("scores.parquet.parts");
    let args =
        ["score", fleet, "--horizon", "16", "--chunk-series", "1", "--output", output.to_str().unwrap()];

    // Ctrl-C once a few chunks are on disk: exit 130, the chunks kept.
    let child =
        Command::new(env!("CARGO_BIN_EXE_loopcast")).args(args).stderr(Stdio::piped()).spawn().unwrap();
    let chunks = || {
        std::fs::read_dir(&parts).map_or(0, |d| {
            d.flatten().filter(|e| e.file_name().to_string_lossy().starts_with("part-")).count()
        })
    };
    for _ in 0..4000 {
        if chunks() >= 3 {
            break;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    assert!(Command::new("kill").args(["-INT", &child.id().to_string()]).status().unwrap().success());
    let stopped = child.wait_with_output().unwrap();
    assert_eq!(stopped.status.code(), Some(130), "{}", stderr(&stopped));
    assert!(stderr(&stopped).contains("run the same command again to resume"), "{}", stderr(&stopped));
    assert!(!output.exists(), "no partial output");
    let kept = chunks();
    assert!(kept >= 3, "{kept} chunks kept");

    // The same command again resumes, and every (series, channel, step) is there once.
    let resumed = loopcast(&args);
    assert!(resumed.status.success(), "{}", stderr(&resumed));
    assert!(stderr(&resumed).contains("chunks resumed"), "{}", stderr(&resumed));
    assert!(!parts.exists());
    let rows = forecast_keys(&output);
    let unique: HashSet<&(String, String, i64)> = rows.iter().collect();
    assert_eq!(unique.len(), rows.len(), "a row twice");
    let series: BTreeSet<&str> = rows.iter().map(|r| r.0.as_str()).collect();
    let pairs: HashSet<(&str, &str)> = rows.iter().map(|r| (r.0.as_str(), r.1.as_str())).collect();
    assert_eq!(series.len(), 48);
    assert_eq!(rows.len(), pairs.len() * 16);

    // Two shards cover the series exactly once between them.
    let mut sharded = Vec::new();
    for shard in ["0/2", "1/2"] {
        let path = dir.path().join(format!("shard-{}.parquet", &shard[..1]));
        let out = loopcast(&[
            "score",
            fleet,
            "--horizon",
            "16",
            "--shard",
            shard,
            "--output",
            path.to_str().unwrap(),
        ]);
        assert!(out.status.success(), "{}", stderr(&out));
        sharded.push(forecast_keys(&path));
    }
    let ids = |rows: &[(String, String, i64)]| rows.iter().map(|r| r.0.clone()).collect::<BTreeSet<String>>();
    let (first, second) = (ids(&sharded[0]), ids(&sharded[1]));
    assert!(first.is_disjoint(&second) && first.len() == 24 && second.len() == 24);
    assert_eq!(sharded[0].len() + sharded[1].len(), rows.len());

    // Bad settings exit 65 naming the setting or the file; a bad shard is a usage error.
    let elsewhere = dir.path().join("x.parquet");
    let elsewhere = elsewhere.to_str().unwrap();
    let out = loopcast(&["score", fleet, "--horizon", "16", "--quantiles", "0.5,0.5", "-o", elsewhere]);
    assert_eq!(out.status.code(), Some(65), "{}", stderr(&out));
    assert!(stderr(&out).contains("quantiles[1]"), "{}", stderr(&out));
    let missing = dir.path().join("missing.parquet");
    let out = loopcast(&["score", missing.to_str().unwrap(), "--horizon", "16", "-o", elsewhere]);
    assert_eq!(out.status.code(), Some(65), "{}", stderr(&out));
    assert!(stderr(&out).contains("missing.parquet"), "{}", stderr(&out));
    let out = loopcast(&["score", fleet, "--horizon", "16", "--shard", "2/2", "-o", elsewhere]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
}

#[test]
fn score_reads_wide_tables_with_a_mapping() {
    let dir = tempfile::tempdir().unwrap();
    let data = format!("{}/../../examples/data", env!("CARGO_MANIFEST_DIR"));
    let (wide, mapping) =
        (format!("{data}/services_wide.parquet"), format!("{data}/services_wide.mapping.toml"));
    let output = dir.path().join("wide.parquet");
    let args = ["score", &wide, "--format", "wide", "--horizon", "8", "-o", output.to_str().unwrap()];
    let out = loopcast(&[&args[..], &["--mapping", &mapping]].concat());
    assert!(out.status.success(), "{}", stderr(&out));
    let rows = forecast_keys(&output);
    let series: BTreeSet<&str> = rows.iter().map(|r| r.0.as_str()).collect();
    assert_eq!(series.len(), 3, "{series:?}");
    // Without the mapping the columns' roles are unknown: exit 65 naming the file.
    let out = loopcast(&args);
    assert_eq!(out.status.code(), Some(65), "{}", stderr(&out));
    assert!(stderr(&out).contains("services_wide.parquet"), "{}", stderr(&out));
}

/// The default build has no wgpu backend: asked for it, a command fails in one line that
/// names the cargo feature and the command that builds it in, before reading any input.
#[cfg(not(feature = "wgpu"))]
#[test]
fn a_build_without_wgpu_says_which_feature_to_turn_on() {
    let out = loopcast(&["forecast", &examples("forecast.json"), "--device", "wgpu"]);
    assert!(!out.status.success());
    let message = stderr(&out);
    assert_eq!(message.trim().lines().count(), 1, "{message}");
    assert!(message.contains("`wgpu` cargo feature") && message.contains("--features wgpu"), "{message}");
}
