//! `loopcast score --prometheus … --remote-write …` against a real Prometheus (Debian's
//! `prometheus` 2.42, installed by `.ci/run`): a TSDB filled with simulator telemetry by
//! `promtool tsdb create-blocks-from openmetrics`, the server on 127.0.0.1 with its
//! remote-write receiver on, series read back through loopcast and forecasts written to
//! it and queried again. Without the binaries the tests say so and pass, unless
//! `LOOPCAST_REQUIRE_PROMETHEUS=1` (CI) makes that a failure.

mod common;

use std::fmt::Write as _;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use loopcast_core::{Frequency, RegularSeries, Role};
use loopcast_prom::{Auth, ChannelQuery, PromError, PrometheusSource};
use loopcast_sim::{EpisodeSpec, ParamRanges, Topology, sre_episode};

use common::loopcast;

/// Steps of history per service (three days of five minutes).
const STEPS: usize = 864;
const SERVICES: [&str; 2] = ["checkout", "search"];
/// The simulator's channels put into Prometheus, with their metric names.
const METRICS: [(&str, &str); 3] =
    [("rps", "svc_rps"), ("cpu_util", "svc_cpu_util"), ("replicas", "svc_replicas")];
/// `loopcast-secret`, hashed with bcrypt for Prometheus' web configuration.
const PASSWORD_HASH: &str = "$2b$04$eeqA3VH6SQXuwd34jo3Xn.vihuyv69ssLZf6HxVzHvB43lAz9VszO";

/// The `prometheus` and `promtool` binaries, or `None` (with a note) when absent.
fn binaries() -> Option<(PathBuf, PathBuf)> {
    let find = |name: &str| {
        std::env::var_os("PATH")
            .and_then(|paths| std::env::split_paths(&paths).map(|p| p.join(name)).find(|p| p.is_file()))
    };
    match (find("prometheus"), find("promtool")) {
        (Some(server), Some(tool)) => Some((server, tool)),
        _ if std::env::var_os("LOOPCAST_REQUIRE_PROMETHEUS").is_some() => {
            panic!("LOOPCAST_REQUIRE_PROMETHEUS is set but prometheus or promtool is not on PATH")
        }
        _ => {
            eprintln!("skipped: no prometheus/promtool on PATH (Debian: apt-get install prometheus)");
            None
        }
    }
}

/// A Prometheus server on 127.0.0.1, stopped on drop.
struct Prometheus {
    child: Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Prometheus {
    /// Starts a server over a TSDB holding `openmetrics`; with `basic_auth`, every request
    /// needs the user `loopcast` and the password `loopcast-secret`.
    fn start(server: &Path, tool: &Path, openmetrics: &str, basic_auth: bool) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let (input, data) = (dir.path().join("history.om"), dir.path().join("data"));
        std::fs::write(&input, openmetrics).unwrap();
        let out = Command::new(tool)
            .args(["tsdb", "create-blocks-from", "openmetrics"])
            .args([&input, &data])
            .output()
            .unwrap();
        assert!(out.status.success(), "promtool: {}", String::from_utf8_lossy(&out.stderr));
        let config = dir.path().join("prometheus.yml");
        std::fs::write(&config, "global:\n  scrape_interval: 1h\nscrape_configs: []\n").unwrap();
        let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let mut command = Command::new(server);
        command
            .arg(format!("--config.file={}", config.display()))
            .arg(format!("--storage.tsdb.path={}", data.display()))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .arg("--web.enable-remote-write-receiver")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.path().join("prometheus.log")).unwrap());
        if basic_auth {
            let web = dir.path().join("web.yml");
            std::fs::write(&web, format!("basic_auth_users:\n  loopcast: {PASSWORD_HASH}\n")).unwrap();
            command.arg(format!("--web.config.file={}", web.display()));
        }
        let child = command.spawn().unwrap();
        let prometheus = Self { child, port, _dir: dir };
        prometheus.wait_ready();
        prometheus
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Waits until the server answers on its port (its readiness page needs no
    /// credentials only without basic auth, so any HTTP answer counts).
    fn wait_ready(&self) {
        let started = Instant::now();
        loop {
            if let Ok(mut stream) = std::net::TcpStream::connect(("127.0.0.1", self.port)) {
                use std::io::{Read, Write};
                let _ = stream.write_all(b"GET /-/ready HTTP/1.0\r\n\r\n");
                let mut answer = String::new();
                let _ = stream.read_to_string(&mut answer);
                if answer.starts_with("HTTP/1.0 200") || answer.starts_with("HTTP/1.0 401") {
                    return;
                }
            }
            let log = std::fs::read_to_string(self._dir.path().join("prometheus.log")).unwrap_or_default();
            assert!(started.elapsed() < Duration::from_secs(60), "prometheus did not start: {log}");
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

/// The last history instant: five minutes before now, on the five-minute grid.
fn history_end() -> i64 {
    let step = 300_000;
    Utc::now().timestamp_millis().div_euclid(step) * step - step
}

/// Simulated histories of [`SERVICES`], `STEPS` five-minute steps ending at `end_ms`.
fn histories() -> Vec<RegularSeries> {
    let spec = EpisodeSpec {
        context: STEPS,
        horizon: 1,
        plans: 1,
        frequency: Frequency::minutes(5),
        topology: Topology::Single,
    };
    (0..SERVICES.len() as u64)
        .map(|seed| sre_episode(seed + 11, &ParamRanges::default(), spec).unwrap().history)
        .collect()
}

/// The histories as OpenMetrics text, step `i` at `end_ms − (STEPS − 1 − i) · 5 min`.
fn openmetrics(histories: &[RegularSeries], end_ms: i64) -> String {
    let mut text = String::new();
    for (channel, metric) in METRICS {
        writeln!(text, "# TYPE {metric} gauge").unwrap();
        for (service, history) in SERVICES.iter().zip(histories) {
            let column = history.channel(channel).unwrap();
            for (i, (value, observed)) in column.values.iter().zip(&column.observed).enumerate() {
                if *observed {
                    let at = end_ms - (STEPS - 1 - i) as i64 * 300_000;
                    writeln!(text, "{metric}{{service=\"{service}\"}} {value} {}", at as f64 / 1000.0)
                        .unwrap();
                }
            }
        }
    }
    text.push_str("# EOF\n");
    text
}

/// A server over the simulated histories, and their last instant; `None` (with a note)
/// when the binaries are absent.
fn serve_histories(basic_auth: bool) -> Option<(Prometheus, i64)> {
    let (server, tool) = binaries()?;
    let end = history_end();
    Some((Prometheus::start(&server, &tool, &openmetrics(&histories(), end), basic_auth), end))
}

/// `--prometheus URL --query Q… --range RANGE --step 5m --end END`.
fn source<'a>(url: &'a str, end: &'a str, range: &'a str, queries: &[&'a str]) -> Vec<&'a str> {
    let mut args = vec!["--prometheus", url];
    for query in queries {
        args.extend(["--query", query]);
    }
    args.extend(["--range", range, "--step", "5m", "--end", end]);
    args
}

fn rfc3339(ms: i64) -> String {
    DateTime::from_timestamp_millis(ms).unwrap().to_rfc3339()
}

/// The values of `query` over `[start, end]` every `step` seconds, per series labels.
async fn query_range(url: &str, query: &str, start: i64, end: i64, step: u32) -> serde_json::Value {
    let form = [
        ("query", query.to_string()),
        ("start", (start as f64 / 1000.0).to_string()),
        ("end", (end as f64 / 1000.0).to_string()),
        ("step", step.to_string()),
    ];
    let answer =
        reqwest::Client::new().post(format!("{url}/api/v1/query_range")).form(&form).send().await.unwrap();
    answer.json().await.unwrap()
}

/// Series read back from Prometheus have exactly the simulator's values on the grid, also
/// over a range that needs two requests per query (more than 11,000 points).
#[tokio::test(flavor = "multi_thread")]
async fn series_read_from_prometheus_are_the_ones_put_in_also_past_the_point_limit() {
    let Some((server, tool)) = binaries() else { return };
    let (histories, end) = (histories(), history_end());
    let prometheus = Prometheus::start(&server, &tool, &openmetrics(&histories, end), false);
    let source = PrometheusSource {
        url: prometheus.url(),
        queries: METRICS
            .iter()
            .map(|(channel, metric)| ChannelQuery {
                channel: channel.to_string(),
                query: metric.to_string(),
                role: if *channel == "replicas" { Role::Action } else { Role::Target },
            })
            .collect(),
        range: "2d".into(),
        step: "15s".into(),
        end: Some(rfc3339(end)),
        series_labels: Some(vec!["service".into()]),
        timeout_seconds: 30.0,
    };
    let fetched = loopcast_prom::fetch(&source, &Auth::None, Utc::now()).await.unwrap();
    assert_eq!(fetched.window.len(), 2 * 24 * 240 + 1);
    assert_eq!(fetched.requests, 2 * METRICS.len(), "two requests per query: 11,521 points");
    assert_eq!(fetched.series.len(), SERVICES.len());
    for (service, history) in SERVICES.iter().zip(&histories) {
        let got = fetched.series.iter().find(|s| s.id == format!("service=\"{service}\"")).unwrap();
        assert_eq!(got.frequency, Frequency::Fixed(15_000_000));
        for (channel, _) in METRICS {
            let (want, read) = (history.channel(channel).unwrap(), got.channel(channel).unwrap());
            let mut compared = 0;
            for i in 0..STEPS {
                let at = end - (STEPS - 1 - i) as i64 * 300_000;
                let Some(offset) = at.checked_sub(fetched.window.start_ms).filter(|o| *o >= 0) else {
                    continue;
                };
                let cell = (offset / 15_000) as usize;
                if want.observed[i] {
                    assert!(read.observed[cell], "{service} {channel} step {i} unobserved");
                    assert_eq!(read.values[cell], want.values[i], "{service} {channel} step {i}");
                    compared += 1;
                }
            }
            assert!(compared > 500, "{service} {channel}: {compared} values compared");
            assert_eq!(read.spec.role == Role::Action, channel == "replicas");
        }
    }
}

/// `loopcast score --prometheus … --remote-write …` forecasts every service and writes
/// the quantiles back; Prometheus then answers them as it answers any series.
#[tokio::test(flavor = "multi_thread")]
async fn score_reads_prometheus_and_writes_its_forecasts_back() {
    let Some((prometheus, end)) = serve_histories(false) else { return };
    let dir = tempfile::tempdir().unwrap();
    let (output, mapping) = (dir.path().join("forecast.parquet"), dir.path().join("roles.toml"));
    std::fs::write(&mapping, "[channels]\nreplicas = \"action\"\n").unwrap();
    let url = prometheus.url();
    let write = format!("{url}/api/v1/write");
    let (end_text, output_text, mapping_text) =
        (rfc3339(end), output.display().to_string(), mapping.display().to_string());
    let queries = ["rps=sum by (service) (svc_rps)", "cpu_util=svc_cpu_util", "replicas=svc_replicas"];
    let mut args = vec!["score"];
    args.extend(source(&url, &end_text, "3d", &queries));
    args.extend([
        "--mapping",
        &mapping_text,
        "--horizon",
        "12",
        "-o",
        &output_text,
        "--remote-write",
        &write,
    ]);
    let out = loopcast(&args);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("read 2 series") && stderr.contains("wrote"), "{stderr}");
    let keys = common::forecast_keys(&output);
    for service in SERVICES {
        for channel in ["rps", "cpu_util"] {
            let rows: Vec<i64> = keys
                .iter()
                .filter(|(id, c, _)| *id == format!("service=\"{service}\"") && c == channel)
                .map(|(_, _, t)| *t)
                .collect();
            let want: Vec<i64> = (1..=12).map(|k| (end + k * 300_000) * 1_000).collect();
            assert_eq!(rows, want, "{service} {channel}");
        }
        assert!(!keys.iter().any(|(_, c, _)| c == "replicas"), "an action is not forecast");
    }
    // The medians Prometheus holds now are the file's.
    let medians = common::forecast_column(&output, "q0.5");
    let answer =
        query_range(&url, "loopcast_forecast_rps{quantile=\"0.5\"}", end + 300_000, end + 3_600_000, 300)
            .await;
    let result = answer["data"]["result"].as_array().unwrap();
    assert_eq!(result.len(), SERVICES.len(), "{answer}");
    for series in result {
        let service = series["metric"]["service"].as_str().unwrap();
        let id = format!("service=\"{service}\"");
        let values = series["values"].as_array().unwrap();
        assert_eq!(values.len(), 12, "{answer}");
        for (k, pair) in values.iter().enumerate() {
            let got: f64 = pair[1].as_str().unwrap().parse().unwrap();
            let want = medians
                .iter()
                .find(|(i, c, t, _)| *i == id && c == "rps" && *t == (end + (k as i64 + 1) * 300_000) * 1_000)
                .unwrap()
                .3;
            assert_eq!(got, want, "{service} step {k}");
        }
    }
}

/// Bad queries, empty results, a server that is not there, a receiver that is off and
/// missing or wrong credentials each get an error naming the query or the URL.
#[tokio::test(flavor = "multi_thread")]
async fn every_failure_names_the_query_or_the_url() {
    let Some((prometheus, end)) = serve_histories(true) else { return };
    let dir = tempfile::tempdir().unwrap();
    let output = dir.path().join("forecast.parquet").display().to_string();
    let password = dir.path().join("password");
    std::fs::write(&password, "loopcast-secret\n").unwrap();
    let wrong = dir.path().join("wrong");
    std::fs::write(&wrong, "guess").unwrap();
    let (password, wrong) = (password.display().to_string(), wrong.display().to_string());
    let url = prometheus.url();
    let end_text = rfc3339(end);
    let score = |extra: &[&str]| {
        let mut args = vec![
            "score",
            "--range",
            "1d",
            "--step",
            "5m",
            "--end",
            &end_text,
            "--horizon",
            "4",
            "-o",
            &output,
        ];
        args.extend_from_slice(extra);
        loopcast(&args)
    };
    let auth = ["--prometheus-user", "loopcast", "--prometheus-password-file", password.as_str()];
    // (flags, whether the right credentials go with them, exit status, message)
    let cases: Vec<(Vec<&str>, bool, i32, &str)> = vec![
        (
            vec!["--prometheus", &url, "--query", "rps=sum(svc_rps"],
            true,
            65,
            "query `rps` (sum(svc_rps): bad_data",
        ),
        (
            vec!["--prometheus", &url, "--query", "rps=svc_nothing"],
            true,
            65,
            "query `rps` (svc_nothing): no series over",
        ),
        (
            vec!["--prometheus", "http://127.0.0.1:9", "--query", "rps=svc_rps"],
            false,
            1,
            "http://127.0.0.1:9/api/v1/query_range: cannot connect",
        ),
        (
            vec!["--prometheus", &url, "--query", "rps=svc_rps"],
            false,
            1,
            "HTTP 401: the server refused the credentials; none were given",
        ),
        (
            vec![
                "--prometheus",
                &url,
                "--query",
                "rps=svc_rps",
                "--prometheus-user",
                "loopcast",
                "--prometheus-password-file",
                &wrong,
            ],
            false,
            1,
            "HTTP 401: the server refused the credentials; check",
        ),
        (
            vec!["--prometheus", "https://example.com", "--query", "rps=svc_rps"],
            false,
            65,
            "only plain http://",
        ),
        (vec!["--prometheus", &url, "--query", "rps svc_rps"], true, 2, "expected CHANNEL=PROMQL"),
    ];
    for (mut args, with_auth, code, expected) in cases {
        if with_auth {
            args.extend_from_slice(&auth);
        }
        let out = score(&args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(code), "{args:?}: {stderr}");
        assert!(stderr.contains(expected), "{args:?}: {stderr}");
    }
    // With the credentials the same read works, and a receiver path that does not exist
    // says what to check.
    let mut args = vec!["--prometheus", &url, "--query", "rps=svc_rps", "--remote-write", "http-bad"];
    args.extend_from_slice(&auth);
    let out = score(&args);
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("only plain http://"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let missing = format!("{url}/api/v1/nowhere");
    let mut args = vec!["--prometheus", &url, "--query", "rps=svc_rps", "--remote-write", &missing];
    args.extend_from_slice(&auth);
    let out = score(&args);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("scored 2 series") && stderr.contains("HTTP 404") && stderr.contains("/api/v1/write"),
        "{stderr}"
    );
    // A result without a label that names series is refused, naming the channel.
    let source = PrometheusSource {
        url: url.clone(),
        queries: vec![ChannelQuery { channel: "one".into(), query: "vector(1)".into(), role: Role::Target }],
        range: "1h".into(),
        step: "5m".into(),
        end: None,
        series_labels: Some(vec!["service".into()]),
        timeout_seconds: 5.0,
    };
    let basic = Auth::Basic { user: "loopcast".into(), password: "loopcast-secret".into() };
    match loopcast_prom::fetch(&source, &basic, Utc::now()).await {
        Err(PromError::Query { channel, detail, .. }) => {
            assert_eq!(channel, "one");
            assert!(
                detail.contains("no label `service`") || detail.contains("not a range vector"),
                "{detail}"
            );
        }
        other => panic!("{other:?}"),
    }
}

/// A score stopped after the read resumes on the snapshot it took, with the server gone,
/// and refuses a snapshot of other queries.
#[test]
fn a_resumed_score_reads_the_snapshot_not_the_server_again() {
    let Some((server, tool)) = binaries() else { return };
    let end = history_end();
    let prometheus = Prometheus::start(&server, &tool, &openmetrics(&histories(), end), false);
    let dir = tempfile::tempdir().unwrap();
    let output = dir.path().join("forecast.parquet").display().to_string();
    let end_text = rfc3339(end);
    let score = |url: &str, query: &str, horizon: &str| {
        let mut args = vec!["score"];
        args.extend(source(url, &end_text, "1d", &[query]));
        args.extend(["--horizon", horizon, "-o", &output]);
        loopcast(&args)
    };
    let url = prometheus.url();
    // Refused after the read: a horizon past the model's reach.
    let out = score(&url, "rps=svc_rps", "100000");
    assert_eq!(out.status.code(), Some(65), "{}", String::from_utf8_lossy(&out.stderr));
    drop(prometheus);
    let out = score(&url, "rps=svc_rps", "6");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains("resuming on the Prometheus snapshot of") && stderr.contains("scored 2 series"),
        "{stderr}"
    );
    assert_eq!(common::forecast_keys(Path::new(&output)).len(), 2 * 6);
    // The snapshot is gone with the finished run; a new one is taken, here of a server
    // that is gone.
    let out = score(&url, "rps=svc_rps", "6");
    assert_eq!(out.status.code(), Some(1), "{}", String::from_utf8_lossy(&out.stderr));
    // Left over from a stopped run, a snapshot of other queries is refused.
    let prometheus = Prometheus::start(&server, &tool, &openmetrics(&histories(), end), false);
    let url = prometheus.url();
    let first = score(&url, "rps=svc_rps", "100000");
    assert_eq!(first.status.code(), Some(65));
    let other = score(&url, "rps=svc_cpu_util", "6");
    let stderr = String::from_utf8_lossy(&other.stderr);
    assert_eq!(other.status.code(), Some(65), "{stderr}");
    assert!(stderr.contains("holds a snapshot of other queries or settings"), "{stderr}");
}

/// `loopcast detect --prometheus …` scores the series Prometheus holds, named by their
/// labels, and leaves no snapshot behind.
#[test]
fn detect_reads_its_series_from_prometheus() {
    let Some((prometheus, end)) = serve_histories(false) else { return };
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("detect");
    let (url, end_text) = (prometheus.url(), rfc3339(end));
    let mut args = vec!["detect"];
    args.extend(source(&url, &end_text, "3d", &["rps=svc_rps", "cpu_util=svc_cpu_util"]));
    args.extend(["--out", out.to_str().unwrap()]);
    let run = loopcast(&args);
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(run.status.success(), "{stderr}");
    assert!(stderr.contains("read 2 series") && stderr.contains("of 2 series"), "{stderr}");
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("summary.json")).unwrap()).unwrap();
    // Three days and a step: the first day and four patches are context, the rest scored
    // in whole patches, for two channels of two series (less the simulator's missed scrapes).
    let scored = summary["points"].as_u64().unwrap();
    let most = 2 * 2 * ((STEPS + 1 - 288 - 64) / 16 * 16) as u64;
    assert!(scored > most * 9 / 10 && scored <= most, "{summary}");
    let changes = std::fs::read_to_string(out.join("changes.csv")).unwrap();
    assert!(changes.starts_with("series_id,action,"), "{changes}");
    assert!(!out.join("parts").exists(), "the snapshot goes with the parts");
    let points = std::fs::File::open(out.join("points.parquet")).unwrap();
    let reader = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(points)
        .unwrap()
        .build()
        .unwrap();
    let mut names = std::collections::BTreeSet::new();
    for batch in reader {
        let batch = batch.unwrap();
        let ids = batch.column_by_name("series_id").unwrap();
        let ids = ids.as_any().downcast_ref::<arrow::array::StringArray>().unwrap();
        names.extend(ids.iter().flatten().map(str::to_string));
    }
    let want: std::collections::BTreeSet<String> =
        SERVICES.iter().map(|s| format!("service=\"{s}\"")).collect();
    assert_eq!(names, want);
}
