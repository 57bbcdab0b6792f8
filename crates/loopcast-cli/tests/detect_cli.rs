//! `loopcast detect` on real files: a planted burst is flagged and reported as one
//! interval, the replica move is listed with the scores around it, bad settings and
//! histories too short to score exit with a message, and a run killed between chunks
//! resumes to the same results.

mod common;

use std::fmt::Write as _;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use common::loopcast;

/// Steps per series: three days of five minutes.
const STEPS: usize = 864;
/// Where the burst is planted in series `s0`, and how long it lasts.
const BURST: usize = 800;
const BURST_STEPS: usize = 3;
/// Where the replicas move in every series.
const MOVE: usize = 820;

/// A long CSV of `series` services: a daily request-rate wave with noise (a target), its
/// replica count (an action, 4 → 6 at [`MOVE`]); `s0` has a burst of six times its noise.
fn telemetry(path: &Path, series: usize) {
    let mut text = String::from("series_id,timestamp,channel,role,value\n");
    let start = chrono::DateTime::parse_from_rfc3339("2026-03-02T00:00:00Z").unwrap().timestamp();
    let mut state = 7u64;
    let mut normal = move || {
        // Two uniform draws of a 64-bit LCG → one standard normal (Box–Muller).
        let mut uniform = || {
            state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            ((state >> 11) as f64 + 0.5) / (1u64 << 53) as f64
        };
        let (u, v) = (uniform(), uniform());
        (-2.0 * u.ln()).sqrt() * (2.0 * std::f64::consts::PI * v).cos()
    };
    for s in 0..series {
        let level = 100.0 * (1.0 + s as f64);
        for i in 0..STEPS {
            let at = chrono::DateTime::from_timestamp(start + 300 * i as i64, 0).unwrap().to_rfc3339();
            let day = 2.0 * std::f64::consts::PI * (i % 288) as f64 / 288.0;
            let mut rps = level * (1.0 + 0.5 * day.sin()) + 0.02 * level * normal();
            if s == 0 && (BURST..BURST + BURST_STEPS).contains(&i) {
                rps += 6.0 * 0.5 * level;
            }
            let replicas = if i < MOVE { 4 } else { 6 };
            writeln!(text, "s{s},{at},rps,target,{rps}").unwrap();
            writeln!(text, "s{s},{at},replicas,action,{replicas}").unwrap();
        }
    }
    std::fs::write(path, text).unwrap();
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[test]
fn a_planted_burst_is_flagged_as_one_interval_and_the_replica_move_is_listed() {
    let dir = tempfile::tempdir().unwrap();
    let (input, out) = (dir.path().join("telemetry.csv"), dir.path().join("out"));
    telemetry(&input, 2);
    let run = loopcast(&["detect", input.to_str().unwrap(), "--out", out.to_str().unwrap()]);
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(run.status.success(), "{stderr}");
    let summary: serde_json::Value = serde_json::from_str(&read(&out.join("summary.json"))).unwrap();
    // A day and four patches of context before the first scored point, in whole patches.
    let scored = (STEPS - 288 - 64) / 16 * 16;
    assert_eq!(summary["points"], 2 * scored, "{summary}");
    assert_eq!(summary["series"], 2);
    let flagged = summary["flagged"]["loopcast"].as_u64().unwrap();
    assert!(flagged >= BURST_STEPS as u64, "{summary}");
    assert!(flagged < (2 * scored / 20) as u64, "more than 5 % flagged: {summary}");
    assert!(!out.join("parts").exists(), "the parts are removed once joined");

    let burst_start = chrono::DateTime::parse_from_rfc3339("2026-03-02T00:00:00Z").unwrap().timestamp()
        + 300 * BURST as i64;
    let burst = chrono::DateTime::from_timestamp(burst_start, 0).unwrap().to_rfc3339();
    let anomalies = read(&out.join("anomalies.csv"));
    let hit = anomalies
        .lines()
        .skip(1)
        .map(|l| l.split(',').collect::<Vec<_>>())
        .find(|row| row[0] == "s0" && row[1] == "rps" && row[2] <= burst.as_str() && burst.as_str() <= row[3])
        .unwrap_or_else(|| panic!("no interval covers the burst at {burst}:\n{anomalies}"));
    assert!(hit[4].parse::<usize>().unwrap() >= BURST_STEPS && hit[6] == "up", "{hit:?}");

    let moved = chrono::DateTime::from_timestamp(
        chrono::DateTime::parse_from_rfc3339("2026-03-02T00:00:00Z").unwrap().timestamp() + 300 * MOVE as i64,
        0,
    )
    .unwrap()
    .to_rfc3339();
    let changes = read(&out.join("changes.csv"));
    for series in ["s0", "s1"] {
        let line = format!("{series},replicas,{moved},4.0,6.0,");
        assert!(changes.contains(&line), "{line} missing from\n{changes}");
    }
    // The points file holds every scored observation with both baselines' flags.
    let points = std::fs::File::open(out.join("points.parquet")).unwrap();
    let reader = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(points).unwrap();
    let columns: Vec<String> = reader.schema().fields().iter().map(|f| f.name().clone()).collect();
    for name in
        ["series_id", "timestamp", "value", "median", "tail_probability", "flagged_loopcast", "flagged_shesd"]
    {
        assert!(columns.iter().any(|c| c == name), "{name} in {columns:?}");
    }
    let rows: usize = reader.build().unwrap().map(|b| b.unwrap().num_rows()).sum();
    assert_eq!(rows, 2 * scored);
}

#[test]
fn bad_settings_and_short_histories_exit_with_a_message() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("telemetry.csv");
    telemetry(&input, 1);
    let out = dir.path().join("out");
    let (input, out) = (input.to_str().unwrap(), out.to_str().unwrap());
    let cases: [(&[&str], i32, &str); 3] = [
        (&["--level", "1.5"], 2, "--level 1.5 must lie in (0.5, 1)"),
        (&["--min-context", "900"], 65, "no series is longer than --min-context"),
        (&["--chunk-series", "0"], 2, "--chunk-series must be at least 1"),
    ];
    for (extra, code, message) in cases {
        let mut args = vec!["detect", input, "--out", out];
        args.extend_from_slice(extra);
        let run = loopcast(&args);
        let stderr = String::from_utf8_lossy(&run.stderr);
        assert_eq!(run.status.code(), Some(code), "{extra:?}: {stderr}");
        assert!(stderr.contains(message), "{extra:?}: {stderr}");
        let _ = std::fs::remove_dir_all(out);
    }
}

#[test]
fn a_run_killed_between_chunks_resumes_to_the_same_results() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("telemetry.csv");
    telemetry(&input, 24);
    let (whole, resumed) = (dir.path().join("whole"), dir.path().join("resumed"));
    let args = |out: &Path| {
        vec!["detect".to_string(), input.display().to_string(), "--out".into(), out.display().to_string()]
            .into_iter()
            .chain(["--chunk-series".into(), "1".into()])
            .collect::<Vec<_>>()
    };
    let mut child = Command::new(env!("CARGO_BIN_EXE_loopcast")).args(args(&resumed)).spawn().unwrap();
    let marker = resumed.join("parts").join("chunk-00002.json");
    let started = Instant::now();
    while !marker.exists() {
        assert!(started.elapsed() < Duration::from_secs(120), "no third chunk after two minutes");
        std::thread::sleep(Duration::from_millis(5));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(!resumed.join("summary.json").exists(), "killed before the end");

    let again = Command::new(env!("CARGO_BIN_EXE_loopcast")).args(args(&resumed)).output().unwrap();
    let stderr = String::from_utf8_lossy(&again.stderr);
    assert!(again.status.success(), "{stderr}");
    assert!(stderr.contains("chunks resumed)"), "{stderr}");
    let clean = Command::new(env!("CARGO_BIN_EXE_loopcast")).args(args(&whole)).output().unwrap();
    assert!(clean.status.success(), "{}", String::from_utf8_lossy(&clean.stderr));
    for file in ["anomalies.csv", "changes.csv", "summary.json"] {
        let (a, b) = (read(&resumed.join(file)), read(&whole.join(file)));
        let differ: Vec<_> = a.lines().zip(b.lines()).filter(|(x, y)| x != y).take(3).collect();
        assert!(
            a == b,
            "{file}: {} against {} lines, first differences {differ:?}",
            a.lines().count(),
            b.lines().count()
        );
    }

    // Parts of a run with other settings are refused, not mixed in.
    let mut child = Command::new(env!("CARGO_BIN_EXE_loopcast")).args(args(&resumed)).spawn().unwrap();
    let marker = resumed.join("parts").join("chunk-00000.json");
    while !marker.exists() {
        std::thread::sleep(Duration::from_millis(5));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let mut other = args(&resumed);
    other.extend(["--level".into(), "0.95".into()]);
    let refused = Command::new(env!("CARGO_BIN_EXE_loopcast")).args(&other).output().unwrap();
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert_eq!(refused.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("holds the parts of a run with other settings"), "{stderr}");
}

/// `loopcast eval --detect N` scores every detector on simulated services with known
/// incidents and writes the table and its JSON.
#[test]
fn detection_is_scored_on_simulated_incidents() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("eval");
    let run = loopcast(&["eval", "--detect", "2", "--out", out.to_str().unwrap()]);
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(run.status.success(), "{stderr}");
    let table = read(&out.join("detect.md"));
    assert!(table.contains("| loopcast |") && table.contains("| shesd |"), "{table}");
    let scores: serde_json::Value = serde_json::from_str(&read(&out.join("detect.json"))).unwrap();
    let scores = scores.as_array().unwrap();
    assert_eq!(scores.len(), 3);
    let incidents: u64 =
        scores[0]["kinds"].as_array().unwrap().iter().map(|k| k[1]["incidents"].as_u64().unwrap()).sum();
    assert!(incidents > 0, "{scores:?}");
    for score in scores {
        let found: u64 =
            score["kinds"].as_array().unwrap().iter().map(|k| k[1]["found"].as_u64().unwrap()).sum();
        assert!(found <= incidents);
        let (right, intervals) = (score["right"].as_u64().unwrap(), score["intervals"].as_u64().unwrap());
        assert!(right <= intervals);
    }
    let loopcast = &scores[0];
    assert_eq!(loopcast["detector"], "loopcast");
    let false_alarms = loopcast["false_alarm_share"].as_f64().unwrap();
    assert!(false_alarms < 0.03, "{loopcast}");
}
