//! A load generator for a running `loopcast serve` (`scripts/loadtest.sh` drives it).
//!
//! ```sh
//! # closed loop: C clients, each sending the next request when its answer arrives
//! cargo run --release --example load -- load http://127.0.0.1:8080 16 10
//! # what-if cost: one what-if with K plans against K separate forecasts
//! cargo run --release --example load -- whatif http://127.0.0.1:8080 1,8,64
//! # soak: mixed forecasts, what-ifs and plans for S seconds at concurrency C, the
//! # server's (process PID's) resident memory sampled every 10 s (`scripts/soak.sh`)
//! cargo run --release --example load -- soak http://127.0.0.1:8080 64 600 PID
//! ```
//!
//! The standard request is `examples/requests/forecast.json` (two services, 288 steps of
//! history, 48 steps ahead, three quantiles). Each mode prints one JSON object per line.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

/// The example request `examples/requests/<name>.json`.
fn example(name: &str) -> Value {
    let path = format!("{}/../../examples/requests/{name}.json", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    serde_json::from_slice(&text).expect("the example is JSON")
}

fn standard() -> Value {
    example("forecast")
}

/// Sends `body` to `url`; the latency when the answer is 200.
async fn send(client: &reqwest::Client, url: &str, body: &[u8]) -> Option<Duration> {
    let started = Instant::now();
    let response =
        client.post(url).header("content-type", "application/json").body(body.to_vec()).send().await.ok()?;
    let ok = response.status().is_success();
    response.bytes().await.ok()?;
    ok.then(|| started.elapsed())
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let index = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[index].as_secs_f64() * 1e3
}

/// `concurrency` clients in a closed loop for `seconds`.
async fn load(base: &str, concurrency: usize, seconds: u64) {
    let body = standard();
    let series = body["series"].as_array().map_or(0, Vec::len);
    let bytes = serde_json::to_vec(&body).expect("serialises");
    let client = reqwest::Client::new();
    let url = format!("{base}/v1/forecast");
    // Warm up: the first calls pay for allocations and caches.
    for _ in 0..3 {
        send(&client, &url, &bytes).await;
    }
    let until = Instant::now() + Duration::from_secs(seconds);
    let started = Instant::now();
    let workers: Vec<_> = (0..concurrency)
        .map(|_| {
            let (client, url, bytes) = (client.clone(), url.clone(), bytes.clone());
            tokio::spawn(async move {
                let (mut latencies, mut errors) = (Vec::new(), 0usize);
                while Instant::now() < until {
                    match send(&client, &url, &bytes).await {
                        Some(latency) => latencies.push(latency),
                        None => errors += 1,
                    }
                }
                (latencies, errors)
            })
        })
        .collect();
    let (mut latencies, mut errors) = (Vec::new(), 0);
    for worker in workers {
        let (l, e) = worker.await.expect("a worker");
        latencies.extend(l);
        errors += e;
    }
    let elapsed = started.elapsed().as_secs_f64();
    latencies.sort();
    println!(
        "{}",
        json!({
            "mode": "load", "concurrency": concurrency, "seconds": elapsed,
            "requests": latencies.len(), "errors": errors,
            "p50_ms": percentile(&latencies, 0.5), "p99_ms": percentile(&latencies, 0.99),
            "requests_per_s": latencies.len() as f64 / elapsed,
            "series_per_s": (latencies.len() * series) as f64 / elapsed,
        })
    );
}

/// Median of `rounds` timings of `run`.
async fn median<F: Future<Output = ()>>(rounds: usize, mut run: impl FnMut() -> F) -> f64 {
    let mut times = Vec::with_capacity(rounds);
    for _ in 0..rounds {
        let started = Instant::now();
        run().await;
        times.push(started.elapsed());
    }
    times.sort();
    percentile(&times, 0.5)
}

/// One what-if with K plans against K forecasts: sent one after another, and as one
/// request with the history repeated K times.
async fn whatif(base: &str, ks: &[usize]) {
    let standard = standard();
    let series = standard["series"][0].clone();
    let horizon = standard["horizon"].as_u64().expect("a horizon") as usize;
    let client = reqwest::Client::new();
    let (forecast_url, whatif_url) = (format!("{base}/v1/forecast"), format!("{base}/v1/whatif"));
    let one =
        serde_json::to_vec(&json!({"series": [series.clone()], "horizon": horizon})).expect("serialises");
    for &k in ks {
        let plans: Vec<Value> = (0..k)
            .map(|p| json!({"name": format!("replicas-{}", 2 + p), "actions": {"replicas": vec![2 + p; horizon]}}))
            .collect();
        let what =
            serde_json::to_vec(&json!({"series": [series.clone()], "horizon": horizon, "plans": plans}))
                .expect("serialises");
        let repeated = serde_json::to_vec(&json!({"series": vec![series.clone(); k], "horizon": horizon}))
            .expect("serialises");
        let rounds = 7;
        let what_ms = median(rounds, || async {
            send(&client, &whatif_url, &what).await.expect("the what-if is answered");
        })
        .await;
        let separate_ms = median(rounds, || async {
            for _ in 0..k {
                send(&client, &forecast_url, &one).await.expect("a forecast is answered");
            }
        })
        .await;
        let batched_ms = median(rounds, || async {
            send(&client, &forecast_url, &repeated).await.expect("the forecast is answered");
        })
        .await;
        println!(
            "{}",
            json!({
                "mode": "whatif", "plans": k, "whatif_ms": what_ms,
                "separate_forecasts_ms": separate_ms, "one_request_k_series_ms": batched_ms,
                "whatif_over_separate": what_ms / separate_ms, "whatif_over_one_request": what_ms / batched_ms,
            })
        );
    }
}

/// Seconds between memory samples of the soak.
const SAMPLE_EVERY: u64 = 10;

/// Resident memory of process `pid` in MiB (`VmRSS` of `/proc/<pid>/status`).
fn rss_mib(pid: u32) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("the server is running");
    let kib: f64 = status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|kib| kib.parse().ok())
        .expect("a VmRSS line");
    kib / 1024.0
}

/// `concurrency` clients in a closed loop for `seconds`, each cycling through forecasts
/// (7 in 10 requests), what-ifs (2) and plans (1) of the example requests, while the
/// resident memory of `pid` is sampled every [`SAMPLE_EVERY`] seconds: one line per
/// sample, then a summary whose `growth` compares the highest sample after the first
/// fifth of the run (the warm-up) with the first sample after it.
async fn soak(base: &str, concurrency: usize, seconds: u64, pid: u32) {
    let bodies: Vec<(String, Vec<u8>)> = ["forecast", "whatif", "plan"]
        .iter()
        .map(|name| {
            let url = format!("{base}/v1/{name}");
            (url, serde_json::to_vec(&example(name)).expect("serialises"))
        })
        .collect();
    let mix = [0, 0, 0, 1, 0, 0, 2, 0, 1, 0];
    let client = reqwest::Client::new();
    let started = Instant::now();
    let until = started + Duration::from_secs(seconds);
    let workers: Vec<_> = (0..concurrency)
        .map(|worker| {
            let (client, bodies) = (client.clone(), bodies.clone());
            tokio::spawn(async move {
                let (mut served, mut refused) = ([0usize; 3], 0usize);
                let mut turn = worker;
                while Instant::now() < until {
                    let kind = mix[turn % mix.len()];
                    turn += 1;
                    let (url, body) = &bodies[kind];
                    match send(&client, url, body).await {
                        Some(_) => served[kind] += 1,
                        None => refused += 1,
                    }
                }
                (served, refused)
            })
        })
        .collect();
    let mut samples = Vec::new();
    while Instant::now() < until {
        let at = started.elapsed().as_secs_f64();
        let rss = rss_mib(pid);
        println!("{}", json!({"mode": "soak", "seconds": at, "rss_mib": rss}));
        samples.push((at, rss));
        tokio::time::sleep(Duration::from_secs(SAMPLE_EVERY)).await;
    }
    let (mut served, mut refused) = ([0usize; 3], 0);
    for worker in workers {
        let (s, r) = worker.await.expect("a worker");
        for (total, more) in served.iter_mut().zip(s) {
            *total += more;
        }
        refused += r;
    }
    samples.push((started.elapsed().as_secs_f64(), rss_mib(pid)));
    let warm = seconds as f64 / 5.0;
    let after: Vec<f64> = samples.iter().filter(|(at, _)| *at >= warm).map(|(_, rss)| *rss).collect();
    let first = after.first().copied().unwrap_or(f64::NAN);
    let highest = after.iter().copied().fold(f64::NAN, f64::max);
    println!(
        "{}",
        json!({
            "mode": "soak_summary", "concurrency": concurrency, "seconds": seconds,
            "forecasts": served[0], "whatifs": served[1], "plans": served[2], "not_ok": refused,
            "rss_start_mib": samples[0].1, "rss_after_warmup_mib": first, "rss_highest_after_mib": highest,
            "rss_end_mib": samples.last().map_or(f64::NAN, |s| s.1), "growth": highest / first - 1.0,
        })
    );
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let usage = "usage: load load URL CONCURRENCY SECONDS | load whatif URL K1,K2,… | load soak URL \
                 CONCURRENCY SECONDS PID";
    match args.iter().map(String::as_str).collect::<Vec<_>>().as_slice() {
        ["load", url, concurrency, seconds] => {
            load(url, concurrency.parse().expect(usage), seconds.parse().expect(usage)).await;
        }
        ["soak", url, concurrency, seconds, pid] => {
            let (concurrency, seconds) = (concurrency.parse().expect(usage), seconds.parse().expect(usage));
            soak(url, concurrency, seconds, pid.parse().expect(usage)).await;
        }
        ["whatif", url, ks] => {
            let ks: Vec<usize> = ks.split(',').map(|k| k.parse().expect(usage)).collect();
            whatif(url, &ks).await;
        }
        _ => {
            eprintln!("{usage}");
            std::process::exit(2);
        }
    }
}
