//! Prometheus metrics (`GET /metrics`): requests and latency per route, queue depth,
//! batch sizes, loops used, job progress.

use std::sync::OnceLock;
use std::time::Duration;

use metrics::{counter, gauge, histogram};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

/// Metric names, as exported.
pub mod names {
    /// Requests answered, by route and status.
    pub const REQUESTS: &str = "loopcast_http_requests_total";
    /// Request latency in seconds, by route.
    pub const LATENCY: &str = "loopcast_http_request_duration_seconds";
    /// Work items waiting for the model.
    pub const QUEUE_DEPTH: &str = "loopcast_queue_depth";
    /// Windows (series × plans) per model call.
    pub const BATCH_WINDOWS: &str = "loopcast_batch_windows";
    /// Requests' items per model call.
    pub const BATCH_ITEMS: &str = "loopcast_batch_items";
    /// Loops of the shared block per forecast patch.
    pub const LOOPS: &str = "loopcast_loops_used";
    /// Chunks of series scored by jobs.
    pub const JOB_CHUNKS: &str = "loopcast_job_chunks_total";
    /// Output rows written by jobs.
    pub const JOB_ROWS: &str = "loopcast_job_rows_total";
    /// Jobs ended, by final state.
    pub const JOBS_ENDED: &str = "loopcast_jobs_ended_total";
}

/// The process's recorder, installed on first use (every server in a process shares it).
pub fn handle() -> &'static PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE.get_or_init(|| {
        let seconds = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];
        let sizes = [1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0];
        let loops = [1.0, 2.0, 3.0, 4.0, 6.0, 8.0, 12.0, 16.0, 32.0];
        let builder = PrometheusBuilder::new()
            .set_buckets_for_metric(Matcher::Full(names::LATENCY.into()), &seconds)
            .and_then(|b| b.set_buckets_for_metric(Matcher::Full(names::BATCH_WINDOWS.into()), &sizes))
            .and_then(|b| b.set_buckets_for_metric(Matcher::Full(names::BATCH_ITEMS.into()), &sizes))
            .and_then(|b| b.set_buckets_for_metric(Matcher::Full(names::LOOPS.into()), &loops))
            .expect("bucket lists are not empty");
        builder.install_recorder().expect("no other metrics recorder in this process")
    })
}

/// Seconds between two upkeeps of the recorder.
const UPKEEP_EVERY: Duration = Duration::from_secs(5);

/// Drains the recorder's histogram samples into their buckets every [`UPKEEP_EVERY`], for
/// as long as the server runs. The recorder keeps every sample recorded since the last
/// drain, and without this task only a scrape of `/metrics` drains them: a server nobody
/// scrapes grew by about 5 MiB a minute under load (`scripts/soak.sh`).
pub(crate) async fn upkeep() {
    let handle = handle();
    let mut ticks = tokio::time::interval(UPKEEP_EVERY);
    loop {
        ticks.tick().await;
        handle.run_upkeep();
    }
}

/// A request answered.
pub fn request(route: &str, status: u16, seconds: f64) {
    let labels = [("route", route.to_string()), ("status", status.to_string())];
    counter!(names::REQUESTS, &labels).increment(1);
    histogram!(names::LATENCY, "route" => route.to_string()).record(seconds);
}

/// Items waiting now.
pub fn queue_depth(items: usize) {
    gauge!(names::QUEUE_DEPTH).set(items as f64);
}

/// A model call over `windows` windows from `items` items.
pub fn batch(windows: usize, items: usize) {
    histogram!(names::BATCH_WINDOWS).record(windows as f64);
    histogram!(names::BATCH_ITEMS).record(items as f64);
}

/// Loops used per window and patch of one forecast.
pub fn loops(loops: &[Vec<u32>]) {
    let recorder = histogram!(names::LOOPS);
    for count in loops.iter().flatten() {
        recorder.record(f64::from(*count));
    }
}

/// A job wrote a chunk of `rows` output rows.
pub fn job_chunk(rows: u64) {
    counter!(names::JOB_CHUNKS).increment(1);
    counter!(names::JOB_ROWS).increment(rows);
}

/// A job ended in `state` (`succeeded`, `failed`, `cancelled`).
pub fn job_ended(state: &str) {
    counter!(names::JOBS_ENDED, "state" => state.to_string()).increment(1);
}
