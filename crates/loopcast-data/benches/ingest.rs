//! Ingestion benchmark: long-format Parquet (10k series × 4 channels × 250 steps = 10 M
//! rows by default) → regularised, windowed model batches, against a plain arrow-rs
//! Parquet read of the same file measured in the same run.
//!
//! Two files hold the same rows: one series after another (as exporters usually write),
//! and time-major (every series at each step, as a scrape log is), which DataFusion has to
//! sort. Each measurement runs in a fresh child process so that its peak RSS is its own.
//!
//! ```sh
//! cargo bench --workspace --bench ingest
//! LOOPCAST_BENCH_SERIES=1000 cargo bench --workspace --bench ingest   # smaller
//! LOOPCAST_BENCH_DIR=/tmp/bench cargo bench --workspace --bench ingest  # keep the files
//! ```
//!
//! A kept file can be profiled alone: `ingest child pipeline /tmp/bench/bench_time-major.parquet`.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::Instant;

use arrow::array::{ArrayRef, Float64Array, RecordBatch, StringArray, TimestampMicrosecondArray};
use arrow::datatypes::{DataType, Field, Schema, TimeUnit};
use loopcast_data::{Origins, ReadOptions, TelemetryReader, WindowBatcher, WindowSpec};
use parquet::arrow::ArrowWriter;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

const CHANNELS: [&str; 4] = ["cpu_util", "rps", "latency_p95_ms", "replicas"];
const STEPS: usize = 250;
/// Runs per measurement; the fastest counts (the least disturbed by the rest of the machine).
const REPEATS: usize = 5;

/// Row order of a benchmark file.
#[derive(Clone, Copy)]
enum Order {
    /// All rows of one series, then the next.
    SeriesMajor,
    /// All series at one step, then the next step.
    TimeMajor,
}

fn write_input(path: &Path, series: usize, order: Order) -> usize {
    let schema = Arc::new(Schema::new(vec![
        Field::new("series_id", DataType::Utf8, false),
        Field::new("timestamp", DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())), false),
        Field::new("channel", DataType::Utf8, false),
        Field::new("value", DataType::Float64, true),
    ]));
    let mut writer = ArrowWriter::try_new(File::create(path).unwrap(), schema.clone(), None).unwrap();
    let cells: Vec<(usize, usize)> = match order {
        Order::SeriesMajor => (0..series).flat_map(|s| (0..STEPS).map(move |t| (s, t))).collect(),
        Order::TimeMajor => (0..STEPS).flat_map(|t| (0..series).map(move |s| (s, t))).collect(),
    };
    let mut rows = 0;
    for chunk in cells.chunks(25_000) {
        let (mut ids, mut times, mut channels, mut values) = (vec![], vec![], vec![], vec![]);
        for &(s, t) in chunk {
            for (c, channel) in CHANNELS.iter().enumerate() {
                ids.push(format!("svc-{s:05}"));
                times.push(1_700_000_000_000_000 + t as i64 * 300_000_000);
                channels.push(*channel);
                values.push(((s * 31 + t * 7 + c) % 997) as f64 / 10.0);
            }
        }
        rows += ids.len();
        let columns: Vec<ArrayRef> = vec![
            Arc::new(StringArray::from(ids)),
            Arc::new(TimestampMicrosecondArray::from(times).with_timezone("UTC")),
            Arc::new(StringArray::from(channels)),
            Arc::new(Float64Array::from(values)),
        ];
        writer.write(&RecordBatch::try_new(schema.clone(), columns).unwrap()).unwrap();
    }
    writer.close().unwrap();
    rows
}

/// Peak resident set size of this process, in KiB.
fn peak_rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

fn plain_read(path: &Path) -> usize {
    let reader =
        ParquetRecordBatchReaderBuilder::try_new(File::open(path).unwrap()).unwrap().build().unwrap();
    reader.map(|b| b.unwrap().num_rows()).sum()
}

fn pipeline(path: &Path, assume_sorted: bool) -> usize {
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    runtime.block_on(async {
        let options = ReadOptions { assume_sorted, ..ReadOptions::default() };
        let mut reader = TelemetryReader::open(path, options).await.unwrap();
        let spec = WindowSpec { context: 192, horizon: 48, origins: Origins::Last };
        let mut batcher = WindowBatcher::new(spec, reader.channels(), 256).unwrap();
        let mut windows = 0;
        while let Some(series) = reader.next_series().await.unwrap() {
            windows += batcher.push(&series).iter().map(|b| b.len()).sum::<usize>();
        }
        windows += batcher.finish().map_or(0, |b| b.len());
        assert_eq!(reader.report().values.used as usize, reader.report().rows as usize);
        windows
    })
}

fn child(mode: &str, path: &Path) {
    let start = Instant::now();
    let count = match mode {
        "plain" => plain_read(path),
        "pipeline" => pipeline(path, false),
        "pipeline-sorted" => pipeline(path, true),
        other => panic!("unknown mode {other}"),
    };
    println!("RESULT {} {} {}", start.elapsed().as_secs_f64(), count, peak_rss_kib());
}

fn measure(mode: &str, path: &Path) -> (f64, u64) {
    let runs: Vec<(f64, u64)> = (0..REPEATS)
        .map(|_| {
            let out = Command::new(std::env::current_exe().unwrap())
                .args(["child", mode])
                .arg(path)
                .output()
                .unwrap();
            assert!(out.status.success(), "{mode}: {}", String::from_utf8_lossy(&out.stderr));
            let text = String::from_utf8_lossy(&out.stdout);
            let line = text.lines().find_map(|l| l.strip_prefix("RESULT ")).expect("a RESULT line");
            let parts: Vec<&str> = line.split_whitespace().collect();
            (parts[0].parse().unwrap(), parts[2].parse().unwrap())
        })
        .collect();
    let fastest = runs.iter().map(|r| r.0).fold(f64::INFINITY, f64::min);
    let peak = runs.iter().map(|r| r.1).max().unwrap();
    (fastest, peak)
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("child") {
        child(&args[2], &PathBuf::from(&args[3]));
        return;
    }
    let series: usize =
        std::env::var("LOOPCAST_BENCH_SERIES").ok().and_then(|s| s.parse().ok()).unwrap_or(10_000);
    let temporary = tempfile::tempdir().unwrap();
    let dir = std::env::var_os("LOOPCAST_BENCH_DIR").map_or(temporary.path().to_path_buf(), PathBuf::from);
    std::fs::create_dir_all(&dir).unwrap();
    println!(
        "{:<40} {:>9} {:>12} {:>10} {:>13}",
        "measurement (best of 5)", "seconds", "rows/s", "× plain", "peak RSS MiB"
    );
    for (name, order, modes) in [
        (
            "series-major",
            Order::SeriesMajor,
            &[("ingest → windows", "pipeline"), ("ingest → windows (--assume-sorted)", "pipeline-sorted")][..],
        ),
        ("time-major", Order::TimeMajor, &[("ingest → windows (DataFusion sort)", "pipeline")][..]),
    ] {
        let path = dir.join(format!("bench_{name}.parquet"));
        let rows = write_input(&path, series, order);
        let size = std::fs::metadata(&path).unwrap().len();
        println!(
            "{name} file: {rows} rows ({series} series × {} channels × {STEPS} steps), {:.1} MiB Parquet",
            CHANNELS.len(),
            size as f64 / 1048576.0
        );
        let (plain, plain_rss) = measure("plain", &path);
        let row = |label: &str, secs: f64, rss: u64| {
            println!(
                "  {label:<38} {secs:>9.3} {:>12.0} {:>10.2} {:>13.0}",
                rows as f64 / secs,
                secs / plain,
                rss as f64 / 1024.0
            )
        };
        row("arrow-rs parquet read (floor)", plain, plain_rss);
        for (label, mode) in modes {
            let (secs, rss) = measure(mode, &path);
            row(label, secs, rss);
        }
    }
}
