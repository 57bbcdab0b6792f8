//! Batch-scoring jobs over real HTTP on 127.0.0.1: upload, queue, progress, download,
//! the output checked against the model called directly on the same windows; cancel;
//! bad inputs naming their field. (A job that survives a killed server process is in
//! `crates/loopcast-cli/tests/serve_cli.rs`.)

mod common;

use std::collections::HashSet;
use std::time::Duration;

use common::{Server, close, model, read_forecast_rows, write_fleet};
use loopcast_core::Role;
use loopcast_data::{Origins, ReadOptions, TelemetryReader, WindowBatcher, WindowSpec};
use loopcast_model::ForecastOptions;
use loopcast_serve::{Jobs, ServeConfig, model_batch};
use serde_json::{Value, json};

const HORIZON: usize = 32;

fn config(data_dir: &std::path::Path, chunk_series: usize) -> ServeConfig {
    ServeConfig {
        jobs: Jobs { data_dir: data_dir.to_path_buf(), chunk_series, max_upload_bytes: 4 << 20 },
        ..ServeConfig::default()
    }
}

/// Polls job `id` until it has ended; returns its last state.
async fn wait(server: &Server, id: &str) -> Value {
    for _ in 0..2400 {
        let (status, _, job) = server.get(&format!("/v1/jobs/{id}")).await;
        assert_eq!(status, 200, "{job}");
        if ["succeeded", "failed", "cancelled"].contains(&job["state"].as_str().unwrap()) {
            return job;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("job {id} never ended");
}

/// The model's median of `(series, target)` at every step, on the windows scoring cuts.
async fn direct_medians(path: &std::path::Path) -> Vec<(String, usize, Vec<f32>)> {
    let model = model();
    let config = model.config();
    let mut reader = TelemetryReader::open(path, ReadOptions::default()).await.unwrap();
    let channels = reader.channels().to_vec();
    let spec = WindowSpec {
        context: config.max_context_patches * config.patch_len,
        horizon: HORIZON,
        origins: Origins::Last,
    };
    let mut batcher = WindowBatcher::new(spec, &channels, 1024).unwrap();
    let mut batches = Vec::new();
    while let Some(series) = reader.next_series().await.unwrap() {
        batches.extend(batcher.push(&series));
    }
    batches.extend(batcher.finish());
    let windows = batches.remove(0);
    // The season a batch job gives its windows: the file's frequency's.
    let season = reader.report().frequency.expect("a regular file").season();
    let batch = model_batch(&windows, season).unwrap();
    let forecast = model.forecast(&batch, &ForecastOptions::default()).unwrap();
    let median = forecast.levels.iter().position(|l| (l - 0.5).abs() < 1e-9).unwrap();
    let targets = channels.iter().filter(|c| c.role == Role::Target).count();
    let mut medians = Vec::new();
    for (b, id) in windows.series.iter().enumerate() {
        for t in 0..targets {
            medians.push((id.clone(), t, (0..HORIZON).map(|h| forecast.value(b, t, h, median)).collect()));
        }
    }
    medians
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_uploaded_file_is_scored_into_a_downloadable_parquet_that_matches_the_model() {
    let data = tempfile::tempdir().unwrap();
    let server = Server::start(config(data.path(), 4)).await;
    let source = tempfile::tempdir().unwrap();
    let file = source.path().join("fleet.parquet");
    write_fleet(&file, 10, 400);
    let bytes = std::fs::read(&file).unwrap();

    let response =
        server.client.put(server.url("/v1/files/fleet.parquet")).body(bytes.clone()).send().await.unwrap();
    let (status, _, upload) = common::split(response).await;
    assert_eq!(status, 201, "{upload}");
    assert_eq!(upload["input"], "uploads/fleet.parquet");
    assert_eq!(upload["bytes"].as_u64().unwrap() as usize, bytes.len());

    let body = json!({"input": "uploads/fleet.parquet", "horizon": HORIZON, "quantiles": [0.1, 0.5, 0.9]});
    let (status, headers, job) = server.post("/v1/jobs", &body).await;
    assert_eq!(status, 202, "{job}");
    let id = job["id"].as_str().unwrap().to_string();
    assert_eq!(headers["location"], format!("/v1/jobs/{id}"));
    let job = wait(&server, &id).await;
    assert_eq!(job["state"], "succeeded", "{job}");
    assert_eq!(job["progress"]["series"], 10);
    assert_eq!(job["progress"]["windows"], 10);
    assert_eq!(job["progress"]["chunks_done"], 3, "10 series in chunks of 4");
    assert_eq!(job["progress"]["rows_written"], 10 * 2 * HORIZON);
    assert_eq!(job["progress"]["rows_read"], job["progress"]["total_rows"]);
    let listed = server.get("/v1/jobs").await.2;
    assert!(listed["jobs"].as_array().unwrap().iter().any(|j| j["id"] == id.as_str()));

    // Download, and compare every median with the model's own on the same windows.
    let response = server.client.get(server.url(job["output"].as_str().unwrap())).send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "application/vnd.apache.parquet");
    let downloaded = source.path().join("output.parquet");
    std::fs::write(&downloaded, response.bytes().await.unwrap()).unwrap();
    let rows = read_forecast_rows(&downloaded);
    assert_eq!(rows.len(), 10 * 2 * HORIZON);
    let keys: HashSet<(&str, &str, i64)> =
        rows.iter().map(|(s, c, t, _)| (s.as_str(), c.as_str(), *t)).collect();
    assert_eq!(keys.len(), rows.len(), "no row twice");
    let names = ["cpu_util", "latency_p95_ms"];
    for (series, t, medians) in direct_medians(&file).await {
        let mut served: Vec<&(String, String, i64, f64)> =
            rows.iter().filter(|(s, c, _, _)| *s == series && c == names[t]).collect();
        served.sort_by_key(|r| r.2);
        assert_eq!(served.len(), HORIZON);
        for (h, row) in served.iter().enumerate() {
            close(row.3, f64::from(medians[h]), "scored median");
            if h > 0 {
                assert_eq!(row.2 - served[h - 1].2, 300_000_000, "5-minute steps");
            }
        }
    }
    // A finished job cannot be cancelled.
    let response = server.client.delete(server.url(&format!("/v1/jobs/{id}"))).send().await.unwrap();
    assert_eq!(common::split(response).await.0, 409);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jobs_refuse_bad_input_and_can_be_cancelled() {
    let data = tempfile::tempdir().unwrap();
    write_fleet(&data.path().join("fleet.parquet"), 40, 300);
    std::fs::write(data.path().join("broken.parquet"), b"not parquet at all").unwrap();
    let server = Server::start(config(data.path(), 1)).await;

    for (body, field) in [
        (json!({"input": "../fleet.parquet", "horizon": 8}), "input"),
        (json!({"input": "/etc/passwd.csv", "horizon": 8}), "input"),
        (json!({"input": "fleet.txt", "horizon": 8}), "input"),
        (json!({"input": "fleet.parquet", "horizon": 0}), "horizon"),
        (json!({"input": "fleet.parquet", "horizon": 8, "quantiles": [0.9, 0.9]}), "quantiles[1]"),
        (json!({"input": "fleet.parquet", "horizon": 8, "extra": 1}), "extra"),
        (json!({"input": "fleet.parquet", "horizon": 8, "layout": "wide"}), "mapping"),
    ] {
        let (status, _, problem) = server.post("/v1/jobs", &body).await;
        assert_eq!(status, 422, "{body}: {problem}");
        assert_eq!(problem["field"], field, "{problem}");
    }
    let (status, _, problem) =
        server.post("/v1/jobs", &json!({"input": "missing.parquet", "horizon": 8})).await;
    assert_eq!((status, problem["field"].as_str()), (404, Some("input")), "{problem}");
    assert!(
        problem["detail"].as_str().unwrap().contains("does not exist in the data directory"),
        "{problem}"
    );
    assert_eq!(server.get("/v1/jobs/nope").await.0, 404);
    let put =
        |name: &str, bytes: Vec<u8>| server.client.put(server.url(&format!("/v1/files/{name}"))).body(bytes);
    let (status, _, problem) = common::split(put(".hidden.parquet", vec![1]).send().await.unwrap()).await;
    assert_eq!((status, problem["field"].as_str()), (422, Some("name")), "{problem}");
    let (status, _, problem) = common::split(put("notes.txt", vec![1]).send().await.unwrap()).await;
    assert_eq!((status, problem["field"].as_str()), (422, Some("name")), "{problem}");
    assert!(problem["detail"].as_str().unwrap().contains("not a telemetry file"), "{problem}");
    let (status, _, problem) = common::split(put("empty.parquet", Vec::new()).send().await.unwrap()).await;
    assert_eq!((status, problem["field"].as_str()), (422, Some("body")), "{problem}");
    assert!(!data.path().join("uploads/empty.parquet").exists(), "no empty file stored");
    let leftovers = std::fs::read_dir(data.path().join("uploads")).unwrap().count();
    assert_eq!(leftovers, 0, "no temporary file left behind");
    // Its own client: the server stops reading a refused upload and closes the connection.
    let big = reqwest::Client::new().put(server.url("/v1/files/big.parquet")).body(vec![0; 5 << 20]);
    let (status, headers, problem) = common::split(big.send().await.unwrap()).await;
    assert_eq!(headers["connection"], "close");
    assert_eq!(status, 413, "{problem}");
    assert!(!data.path().join("uploads/big.parquet").exists(), "no partial upload left");

    // A file that is not Parquet fails with the file named.
    let (_, _, job) = server.post("/v1/jobs", &json!({"input": "broken.parquet", "horizon": 8})).await;
    let job = wait(&server, job["id"].as_str().unwrap()).await;
    assert_eq!(job["state"], "failed");
    assert!(job["error"].as_str().unwrap().contains("broken.parquet"), "{job}");

    // Cancel a running job (one series per chunk, so it runs a while).
    let (_, _, job) = server.post("/v1/jobs", &json!({"input": "fleet.parquet", "horizon": 64})).await;
    let id = job["id"].as_str().unwrap().to_string();
    let response = server.client.delete(server.url(&format!("/v1/jobs/{id}"))).send().await.unwrap();
    assert_eq!(response.status(), 202);
    let job = wait(&server, &id).await;
    assert_eq!(job["state"], "cancelled", "{job}");
    assert!(job["output"].is_null());
    assert!(!data.path().join(format!("jobs/{id}/parts")).exists(), "the parts are removed");
    let metrics = server.get("/metrics").await.2;
    assert!(metrics.as_str().unwrap().contains("loopcast_jobs_ended_total"), "{metrics}");
    assert_eq!(server.get("/health").await.0, 200);
    server.stop().await;
}

/// The data directory is sealed: a job input or an upload that a symbolic link leads out of
/// it (a linked file, a linked folder, a linked `uploads/`) is refused with the field named,
/// so is an absolute link, a relative link that stays inside is followed, and a job reads the file it was submitted with: a
/// file swapped for an outward link after its job was queued changes nothing it reads.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn symbolic_links_do_not_lead_out_of_the_data_directory() {
    use std::os::unix::fs::symlink;
    let (data, outside) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    // Three series outside, two in every file inside: a job's series count says which it read.
    write_fleet(&outside.path().join("secret.parquet"), 3, 300);
    write_fleet(&data.path().join("fleet.parquet"), 40, 300);
    write_fleet(&data.path().join("queued.parquet"), 2, 300);
    symlink(outside.path().join("secret.parquet"), data.path().join("linked.parquet")).unwrap();
    symlink(outside.path(), data.path().join("elsewhere")).unwrap();
    symlink("queued.parquet", data.path().join("inner.parquet")).unwrap();
    symlink(data.path().join("queued.parquet"), data.path().join("absolute.parquet")).unwrap();
    let server = Server::start(config(data.path(), 1)).await;

    for input in ["linked.parquet", "elsewhere/secret.parquet", "absolute.parquet"] {
        let (status, _, problem) = server.post("/v1/jobs", &json!({"input": input, "horizon": 8})).await;
        assert_eq!((status, problem["field"].as_str()), (422, Some("input")), "{input}: {problem}");
        assert!(problem["detail"].as_str().unwrap().contains("outside the data directory"), "{problem}");
    }
    let (status, _, job) = server.post("/v1/jobs", &json!({"input": "inner.parquet", "horizon": 8})).await;
    assert!(status < 300, "a link inside the directory is followed: {job}");
    assert_eq!(wait(&server, job["id"].as_str().unwrap()).await["state"], "succeeded");

    // A long job holds the runner while the next one's file is swapped for an outward link.
    let (_, _, long) = server.post("/v1/jobs", &json!({"input": "fleet.parquet", "horizon": 64})).await;
    let (_, _, swapped) = server.post("/v1/jobs", &json!({"input": "queued.parquet", "horizon": 8})).await;
    assert_eq!(swapped["state"], "queued", "{swapped}");
    std::fs::remove_file(data.path().join("queued.parquet")).unwrap();
    symlink(outside.path().join("secret.parquet"), data.path().join("queued.parquet")).unwrap();
    let long = long["id"].as_str().unwrap();
    let response = server.client.delete(server.url(&format!("/v1/jobs/{long}"))).send().await.unwrap();
    assert_eq!(response.status(), 202);
    let swapped = wait(&server, swapped["id"].as_str().unwrap()).await;
    assert_eq!(swapped["state"], "succeeded", "{swapped}");
    assert_eq!(swapped["progress"]["series"], 2, "the job read the file it was submitted with: {swapped}");

    // An `uploads/` folder that leads out of the directory takes no upload.
    symlink(outside.path(), data.path().join("uploads")).unwrap();
    let put = server.client.put(server.url("/v1/files/new.parquet")).body(vec![1u8; 64]);
    let (status, _, problem) = common::split(put.send().await.unwrap()).await;
    assert_eq!((status, problem["field"].as_str()), (422, Some("name")), "{problem}");
    assert!(!outside.path().join("new.parquet").exists(), "nothing written outside");
    server.stop().await;
}

/// The open is race-free: while another thread swaps a job's input between a file inside
/// the directory and an outward link as fast as it can (each swap one atomic rename, so
/// the name always exists), every submission is either refused as leading outside or
/// scores the inside file; none reads the file outside.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_swapped_for_an_outward_link_while_jobs_are_submitted_is_never_read() {
    use std::os::unix::fs::symlink;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};
    let (data, outside) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    write_fleet(&outside.path().join("secret.parquet"), 3, 200);
    write_fleet(&data.path().join("inside.parquet"), 2, 200);
    std::fs::copy(data.path().join("inside.parquet"), data.path().join("racy.parquet")).unwrap();
    let server = Server::start(config(data.path(), 4)).await;
    let stop = Arc::new(AtomicBool::new(false));
    let swapper = {
        let (dir, secret, stop) =
            (data.path().to_path_buf(), outside.path().join("secret.parquet"), stop.clone());
        std::thread::spawn(move || {
            let mut swaps = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let staged = dir.join(".staged");
                if swaps.is_multiple_of(2) {
                    symlink(&secret, &staged).unwrap();
                } else {
                    std::fs::hard_link(dir.join("inside.parquet"), &staged).unwrap();
                }
                std::fs::rename(&staged, dir.join("racy.parquet")).unwrap();
                swaps += 1;
            }
            swaps
        })
    };
    // At least 60 submissions, and on until both sides of the race were hit: on a loaded
    // machine the swapper can be descheduled for a whole burst of submissions.
    let (mut accepted, mut refused, mut submitted) = (Vec::new(), 0, 0);
    while submitted < 60 || ((refused == 0 || accepted.is_empty()) && submitted < 5_000) {
        submitted += 1;
        if submitted > 60 {
            tokio::time::sleep(std::time::Duration::from_millis(1)).await;
        }
        let (status, _, answer) =
            server.post("/v1/jobs", &json!({"input": "racy.parquet", "horizon": 8})).await;
        if status == 422 {
            assert!(answer["detail"].as_str().unwrap().contains("outside the data directory"), "{answer}");
            refused += 1;
        } else {
            assert!(status < 300, "{status}: {answer}");
            accepted.push(answer["id"].as_str().unwrap().to_string());
        }
    }
    stop.store(true, Ordering::Relaxed);
    let swaps = swapper.join().unwrap();
    assert!(swaps > 60, "the file was swapped while jobs came in ({swaps} swaps)");
    assert!(
        refused > 0 && !accepted.is_empty(),
        "both sides of the race were hit: {refused} of {submitted} refused"
    );
    for id in &accepted {
        let job = wait(&server, id).await;
        assert_eq!(job["state"], "succeeded", "{job}");
        assert_eq!(job["progress"]["series"], 2, "the job read the inside file: {job}");
    }
    server.stop().await;
}
