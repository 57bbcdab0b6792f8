//! How long reading series from Prometheus takes through loopcast, against the raw HTTP
//! answers of the same range queries measured in the same run (best of three each).
//!
//! `cargo run --release --example read_bench -- URL RANGE STEP END CHANNEL=PROMQL…`;
//! `scripts/bench_prometheus.sh` fills a Prometheus and runs it.

use std::time::{Duration, Instant};

use chrono::Utc;
use loopcast_core::Role;
use loopcast_prom::{Auth, ChannelQuery, PrometheusSource};

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [url, range, step, end, queries @ ..] = args.as_slice() else {
        eprintln!("usage: read_bench URL RANGE STEP END(RFC 3339) CHANNEL=PROMQL…");
        std::process::exit(2);
    };
    let source = PrometheusSource {
        url: url.clone(),
        queries: queries
            .iter()
            .map(|q| {
                let (channel, query) = q.split_once('=').expect("CHANNEL=PROMQL");
                ChannelQuery { channel: channel.into(), query: query.into(), role: Role::Target }
            })
            .collect(),
        range: range.clone(),
        step: step.clone(),
        end: Some(end.clone()),
        series_labels: None,
        timeout_seconds: 60.0,
    };
    let window = source.window(Utc::now()).expect("valid settings");
    let client = reqwest::Client::new();
    let raw = || async {
        let started = Instant::now();
        let mut bytes = 0;
        for query in &source.queries {
            for chunk in window.chunks() {
                let seconds = |ms: i64| format!("{}", ms as f64 / 1000.0);
                let form = [
                    ("query", query.query.clone()),
                    ("start", seconds(chunk.start_ms)),
                    ("end", seconds(chunk.end_ms)),
                    ("step", seconds(chunk.step_ms)),
                ];
                let answer =
                    client.post(format!("{url}/api/v1/query_range")).form(&form).send().await.unwrap();
                bytes += answer.bytes().await.unwrap().len();
            }
        }
        (started.elapsed(), bytes)
    };
    let (mut best_raw, mut best_loopcast) = (Duration::MAX, Duration::MAX);
    let (mut bytes, mut series, mut samples) = (0, 0, 0);
    for _ in 0..3 {
        let (elapsed, read) = raw().await;
        best_raw = best_raw.min(elapsed);
        bytes = read;
        let started = Instant::now();
        let fetched = loopcast_prom::fetch(&source, &Auth::None, Utc::now()).await.expect("the read works");
        best_loopcast = best_loopcast.min(started.elapsed());
        (series, samples) = (fetched.series.len(), fetched.samples);
    }
    println!(
        "{series} series × {} channels, {samples} samples ({:.1} MB of JSON): raw HTTP {:.3} s, loopcast {:.3} s ({:.2}× raw)",
        source.queries.len(),
        bytes as f64 / 1e6,
        best_raw.as_secs_f64(),
        best_loopcast.as_secs_f64(),
        best_loopcast.as_secs_f64() / best_raw.as_secs_f64()
    );
}
