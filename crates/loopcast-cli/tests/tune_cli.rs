//! `loopcast tune` as a user runs it, on a tiny model trained in the test and a CSV of
//! hourly series: the tuned model is written exactly when it wins on the held-out windows;
//! too little history, a refusal by `--min-gain`, and Ctrl-C then `--resume`.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{TINY, loopcast};

/// Trains the tiny model into `dir/tiny/model`.
fn tiny_model(dir: &Path) -> PathBuf {
    let config = dir.join("tiny.toml");
    std::fs::write(&config, TINY).unwrap();
    let out = dir.join("tiny");
    let run =
        loopcast(&["train", "--config", config.to_str().unwrap(), "--out", out.to_str().unwrap(), "--quiet"]);
    assert!(run.status.success(), "{}", String::from_utf8_lossy(&run.stderr));
    out.join("model")
}

/// A long CSV of hourly series `(id, steps)`: a daily cycle on a slow trend, with a
/// little deterministic noise.
fn write_csv(path: &Path, series: &[(&str, usize)]) {
    let mut text = String::from("unique_id,ds,y\n");
    for (k, (id, steps)) in series.iter().enumerate() {
        for t in 0..*steps {
            let phase = 2.0 * std::f64::consts::PI * t as f64 / 24.0;
            let noise = ((t * 7919 + k * 104_729) % 97) as f64 / 97.0 - 0.5;
            let y = 50.0 + 10.0 * (k + 1) as f64 * phase.sin() + 0.05 * t as f64 + noise;
            text.push_str(&format!("{id},2026-01-{:02}T{:02}:00:00Z,{y:.3}\n", 1 + t / 24, t % 24));
        }
    }
    std::fs::write(path, text).unwrap();
}

fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).to_string()
}

/// The flags of a tune of `data` with `model` into `out`, and `extra`.
fn tune_args<'a>(data: &'a str, model: &'a str, out: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
    let mut args = vec![
        "tune",
        data,
        "--model",
        model,
        "--out",
        out,
        "--target",
        "y",
        "--season",
        "24",
        "--horizon",
        "8",
        "--context",
        "64",
        "--quiet",
    ];
    args.extend_from_slice(extra);
    args
}

fn report(out: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(out.join("report.json")).unwrap()).unwrap()
}

/// The loopcast row's relative MASE of a summary list.
fn relative_mase(summaries: &serde_json::Value) -> f64 {
    let rows = summaries.as_array().unwrap();
    rows.iter().find(|r| r["model"] == "loopcast").unwrap()["relative_mase"].as_f64().unwrap()
}

#[test]
fn too_little_history_is_refused_naming_the_file_and_the_series() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("short.csv");
    write_csv(&data, &[("alpha", 40), ("beta", 30)]);
    let out = dir.path().join("tune");
    let args = ["tune", data.to_str().unwrap(), "--out", out.to_str().unwrap(), "--target", "y"];
    let run = loopcast(&[&args[..], &["--season", "24", "--horizon", "8", "--context", "64"]].concat());
    assert_eq!(run.status.code(), Some(65), "{}", stderr(&run));
    let message = stderr(&run);
    assert!(
        message.contains("short.csv") && message.contains("`alpha`") && message.contains("48"),
        "{message}"
    );
    assert!(!out.join("tune.json").exists(), "nothing is started");
}

#[test]
fn the_tuned_model_is_written_exactly_when_it_wins() {
    let dir = tempfile::tempdir().unwrap();
    let model = tiny_model(dir.path());
    let data = dir.path().join("hourly.csv");
    write_csv(&data, &[("a", 240), ("b", 240), ("c", 200)]);
    let (data, model) = (data.to_str().unwrap(), model.to_str().unwrap());

    // No model could gain 99 %: refused, exit status 3, the scores kept, no model written.
    let strict = dir.path().join("strict");
    let run = loopcast(&tune_args(
        data,
        model,
        strict.to_str().unwrap(),
        &["--minutes", "0.01", "--min-gain", "0.99"],
    ));
    assert_eq!(run.status.code(), Some(3), "{}", stderr(&run));
    assert!(stderr(&run).contains("no model written"), "{}", stderr(&run));
    let strict_report = report(&strict);
    assert_eq!(strict_report["written"], false);
    assert!(!strict.join("model").exists());
    let plan = &strict_report["plan"];
    assert_eq!(plan["holdout"], 16, "the check window and the one before it held out");
    assert_eq!(plan["dataset"]["origins"], 1);
    assert!(plan["recipe"]["steps"].as_u64().unwrap() >= 20);
    assert_eq!(plan["recipe"]["data"]["real"][0]["holdout"], 16);
    // The run kept its best weights by the window before the check's, the starting
    // ones (step 0) competing.
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(strict.join("run/summary.json")).unwrap()).unwrap();
    let selected = &summary["selected"];
    assert!(selected["step"].as_u64().unwrap() <= plan["recipe"]["steps"].as_u64().unwrap());
    assert!(selected["score"].as_f64().unwrap().is_finite(), "{selected}");

    // Any gain: the model is written when, and only when, it forecast the held-out windows
    // better, and then it loads and forecasts the file.
    let open = dir.path().join("open");
    let run = loopcast(&tune_args(data, model, open.to_str().unwrap(), &["--minutes", "0.01"]));
    let open_report = report(&open);
    let (before, after) =
        (relative_mase(&open_report["plan"]["before"]), relative_mase(&open_report["after"]));
    let won = after < before;
    assert_eq!(open_report["written"], won);
    assert_eq!(open.join("model").exists(), won);
    assert_eq!(run.status.code(), Some(if won { 0 } else { 3 }), "{}", stderr(&run));
    if won {
        let tuned = open.join("model");
        let eval_out = dir.path().join("eval");
        let scored = loopcast(&[
            "eval",
            "--data",
            data,
            "--target",
            "y",
            "--season",
            "24",
            "--horizon",
            "8",
            "--context",
            "64",
            "--models",
            "loopcast",
            "--model",
            tuned.to_str().unwrap(),
            "--out",
            eval_out.to_str().unwrap(),
        ]);
        assert!(scored.status.success(), "{}", stderr(&scored));
        // The same windows as the tune's check: the same score.
        let summary: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(eval_out.join("summary.json")).unwrap()).unwrap();
        let eval_mase = relative_mase(&summary["summary"]);
        assert!((eval_mase - after).abs() < 1e-9, "{eval_mase} against {after}");
    }
}

#[test]
fn ctrl_c_keeps_a_checkpoint_and_resume_finishes_the_same_run() {
    let dir = tempfile::tempdir().unwrap();
    let model = tiny_model(dir.path());
    let data = dir.path().join("hourly.csv");
    write_csv(&data, &[("a", 200), ("b", 200)]);
    let out = dir.path().join("tune");
    let (data, model, out_str) = (data.to_str().unwrap(), model.to_str().unwrap(), out.to_str().unwrap());
    let args = tune_args(data, model, out_str, &["--minutes", "0.2"]);
    let child =
        Command::new(env!("CARGO_BIN_EXE_loopcast")).args(&args).stderr(Stdio::piped()).spawn().unwrap();
    // Ctrl-C once the first checkpoint is on disk.
    let latest = out.join("run/checkpoints/LATEST");
    let started = Instant::now();
    while !latest.exists() {
        assert!(started.elapsed() < Duration::from_secs(120), "no checkpoint after two minutes");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(Command::new("kill").args(["-INT", &child.id().to_string()]).status().unwrap().success());
    let interrupted = child.wait_with_output().unwrap();
    assert_eq!(interrupted.status.code(), Some(130), "{}", stderr(&interrupted));
    assert!(stderr(&interrupted).contains("--resume"), "{}", stderr(&interrupted));
    assert!(!out.join("report.json").exists());

    // Other flags cannot resume it.
    let other = loopcast(&tune_args(data, model, out_str, &["--minutes", "0.3", "--resume"]));
    assert_eq!(other.status.code(), Some(2), "{}", stderr(&other));

    let resumed = loopcast(&[&args[..], &["--resume"]].concat());
    assert!(matches!(resumed.status.code(), Some(0 | 3)), "{}", stderr(&resumed));
    let plan: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("tune.json")).unwrap()).unwrap();
    let steps = plan["recipe"]["steps"].as_u64().unwrap();
    let log = std::fs::read_to_string(out.join("run/metrics.jsonl")).unwrap();
    let last: serde_json::Value = serde_json::from_str(log.lines().last().unwrap()).unwrap();
    assert_eq!(last["step"].as_u64(), Some(steps), "the resumed run ends at the planned step");
    assert_eq!(report(&out)["plan"]["recipe"]["steps"].as_u64(), Some(steps));
}
