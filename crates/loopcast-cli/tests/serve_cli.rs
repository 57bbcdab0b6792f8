//! `loopcast serve` as a user starts it: the README's main command on a free port, asked
//! over HTTP, stopped with SIGTERM; and a bad configuration refused with the field.

mod common;

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, ChildStderr, Command, Stdio};
use std::time::Duration;

use common::{forecast_keys, loopcast};

/// One HTTP/1.1 exchange on a fresh connection: the status code and the body.
fn http(address: &str, method: &str, path: &str, body: &[u8]) -> (u16, String) {
    let mut stream = TcpStream::connect(address).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).unwrap();
    stream.write_all(body).unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let status = response.split_whitespace().nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    let body = response.split_once("\r\n\r\n").map_or(String::new(), |(_, b)| b.to_string());
    (status, body)
}

/// Starts `loopcast serve ARGS` on a free port; returns the process, its stderr and its
/// address once it is ready.
fn start(args: &[&str]) -> (Child, BufReader<ChildStderr>, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_loopcast"))
        .args(["serve", "--listen", "127.0.0.1:0"])
        .args(args)
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    let mut banner = String::new();
    stderr.read_line(&mut banner).unwrap();
    assert!(banner.contains("loopcast-small (embedded, cpu)"), "{banner}");
    let address = banner.split("http://").nth(1).unwrap().split_whitespace().next().unwrap().to_string();
    let mut ready = 0;
    for _ in 0..600 {
        ready = http(&address, "GET", "/ready", b"").0;
        if ready == 200 {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(ready, 200, "never ready");
    (child, stderr, address)
}

#[test]
fn serve_answers_forecasts_and_drains_on_sigterm() {
    let (mut child, mut stderr, address) = start(&[]);
    let request =
        std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples/requests/forecast.json")).unwrap();
    let (status, body) = http(&address, "POST", "/v1/forecast", &request);
    assert_eq!(status, 200, "{body}");
    let answer: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(answer["model"], "loopcast-small");
    assert_eq!(answer["series"][1]["id"], "api");
    assert_eq!(answer["series"][0]["channels"][2]["quantiles"][2]["values"].as_array().unwrap().len(), 48);

    let term = Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
    assert!(term.success());
    let status = child.wait().unwrap();
    let mut rest = String::new();
    stderr.read_to_string(&mut rest).unwrap();
    assert!(status.success(), "{status}: {rest}");
    assert!(rest.contains("stopped after draining"), "{rest}");
}

#[test]
fn a_bad_configuration_exits_65_naming_the_field() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("loopcast.toml");
    std::fs::write(&path, "[batching]\nqueue_capacity = 0\n").unwrap();
    let out = loopcast(&["serve", "--config", path.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(65));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("batching.queue_capacity") && stderr.contains("loopcast.toml"), "{stderr}");
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    let out = loopcast(&["serve", "--device", "tpu"]);
    assert_eq!(out.status.code(), Some(65), "{}", String::from_utf8_lossy(&out.stderr));
}

/// Job `id` as the server reports it.
fn job(address: &str, id: &str) -> serde_json::Value {
    let (status, body) = http(address, "GET", &format!("/v1/jobs/{id}"), b"");
    assert_eq!(status, 200, "{body}");
    serde_json::from_str(&body).unwrap()
}

#[test]
fn a_job_killed_with_its_server_resumes_after_a_restart_with_every_row_once() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir(&data).unwrap();
    let fleet = data.join("fleet.parquet");
    let out = loopcast(&["simulate", "--series", "96", "--length", "320", "--out", fleet.to_str().unwrap()]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let config = dir.path().join("loopcast.toml");
    std::fs::write(&config, format!("[jobs]\ndata_dir = {:?}\nchunk_series = 1\n", data.to_str().unwrap()))
        .unwrap();
    let config = config.to_str().unwrap();

    let (mut child, _stderr, address) = start(&["--config", config]);
    let request = br#"{"input": "fleet.parquet", "horizon": 24, "quantiles": [0.05, 0.5, 0.95]}"#;
    let (status, body) = http(&address, "POST", "/v1/jobs", request);
    assert_eq!(status, 202, "{body}");
    let id = serde_json::from_str::<serde_json::Value>(&body).unwrap()["id"].as_str().unwrap().to_string();
    // Kill the server (SIGKILL: no drain, no goodbye) once some chunks are on disk.
    let mut before = 0;
    for _ in 0..6000 {
        let state = job(&address, &id);
        let running = ["queued", "running"].contains(&state["state"].as_str().unwrap());
        assert!(running, "the job ended before it could be killed: {state}");
        before = state["progress"]["chunks_done"].as_u64().unwrap();
        if before >= 3 {
            break;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(before >= 3, "no chunk reached the disk");
    let on_disk: serde_json::Value =
        serde_json::from_slice(&std::fs::read(data.join(format!("jobs/{id}/job.json"))).unwrap()).unwrap();
    assert_eq!(on_disk["state"], "running");
    assert!(!data.join(format!("jobs/{id}/output.parquet")).exists());

    // Restart: the job is queued again, resumes from its chunks, and completes.
    let (mut child, _stderr, address) = start(&["--config", config]);
    let mut finished = serde_json::Value::Null;
    for _ in 0..12000 {
        finished = job(&address, &id);
        if finished["state"] != "running" && finished["state"] != "queued" {
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(finished["state"], "succeeded", "{finished}");
    assert_eq!(finished["starts"], 2);
    let progress = &finished["progress"];
    assert!(progress["chunks_resumed"].as_u64().unwrap() >= before, "{progress}");
    assert_eq!(progress["series"], 96);
    assert_eq!(progress["windows"], 96);

    // Exactly the expected rows: each (series, target) has every horizon step once.
    let rows = forecast_keys(&data.join(format!("jobs/{id}/output.parquet")));
    assert_eq!(rows.len() as u64, progress["rows_written"].as_u64().unwrap());
    let mut per_pair: HashMap<(String, String), Vec<i64>> = HashMap::new();
    for (series, channel, time) in rows {
        per_pair.entry((series, channel)).or_default().push(time);
    }
    let targets = per_pair.len() / 96;
    assert!(targets >= 1 && per_pair.len() == 96 * targets, "{} pairs", per_pair.len());
    for (pair, mut times) in per_pair {
        times.sort();
        times.dedup();
        assert_eq!(times.len(), 24, "{pair:?}: every step exactly once");
    }
    assert!(!data.join(format!("jobs/{id}/parts")).exists(), "the parts are gone once joined");
    child.kill().unwrap();
    child.wait().unwrap();
}
