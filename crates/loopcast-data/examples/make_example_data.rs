//! Writes the sample files of `examples/data/`: three small web services sampled every
//! five minutes for two days, in long and wide layouts, as Parquet, CSV and Arrow IPC.
//!
//! The numbers come from a tiny deterministic model (daily demand cycle, replicas that
//! scale up for the peak, utilisation-driven latency, a few missed scrapes), seeded by a
//! hash, so re-running gives byte-identical values:
//!
//! ```sh
//! cargo run --release -p loopcast-data --example make_example_data -- examples/data
//! ```

use std::f64::consts::PI;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::array::{ArrayRef, Float64Array, RecordBatch, StringArray, TimestampMicrosecondArray};
use arrow::datatypes::{DataType, Field, Schema, TimeUnit};
use loopcast_data::AtomicParquetWriter;

const STEP_MICROS: i64 = 5 * 60 * 1_000_000;
const STEPS: usize = 576;
/// 2024-03-04T00:00:00Z, a Monday.
const START_MICROS: i64 = 1_709_510_400_000_000;
const SERVICES: [(&str, f64, f64); 3] =
    [("api", 900.0, 120.0), ("checkout", 250.0, 60.0), ("search", 1500.0, 200.0)];
const CHANNELS: [&str; 4] = ["rps", "cpu_util", "latency_p95_ms", "replicas"];

/// A deterministic uniform number in [0, 1) for (service, step, salt) (SplitMix64).
fn noise(service: usize, step: usize, salt: u64) -> f64 {
    let mut z = (service as u64) << 40 ^ (step as u64) << 8 ^ salt;
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    (z ^ (z >> 31)) as f64 / u64::MAX as f64
}

/// One row of the wide table; `None` marks a missed scrape.
struct Row {
    service: &'static str,
    timestamp: i64,
    values: [Option<f64>; 4],
}

fn simulate() -> Vec<Row> {
    let mut rows = Vec::new();
    for (s, &(service, base_rps, per_replica)) in SERVICES.iter().enumerate() {
        for step in 0..STEPS {
            let day_phase = 2.0 * PI * (step % 288) as f64 / 288.0;
            let demand =
                base_rps * (1.0 + 0.6 * (day_phase - PI * 0.6).sin()) * (0.95 + 0.1 * noise(s, step, 1));
            let replicas = if (96..=240).contains(&(step % 288)) { 12.0 } else { 8.0 };
            let utilisation = (demand / (replicas * per_replica)).min(0.98);
            let latency = 40.0 / (1.0 - utilisation) * (0.9 + 0.2 * noise(s, step, 2));
            let missed = noise(s, step, 3) < 0.01;
            let round = |v: f64, places: i32| (v * 10f64.powi(places)).round() / 10f64.powi(places);
            let observed = |v: f64| (!missed).then_some(v);
            rows.push(Row {
                service,
                timestamp: START_MICROS + step as i64 * STEP_MICROS,
                values: [
                    observed(round(demand, 1)),
                    observed(round(utilisation, 4)),
                    observed(round(latency, 1)),
                    Some(replicas),
                ],
            });
        }
    }
    rows
}

fn timestamp_field(name: &str) -> Field {
    Field::new(name, DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())), false)
}

fn long_batch(rows: &[Row]) -> RecordBatch {
    let schema = Schema::new(vec![
        Field::new("series_id", DataType::Utf8, false),
        timestamp_field("timestamp"),
        Field::new("channel", DataType::Utf8, false),
        Field::new("value", DataType::Float64, true),
    ]);
    let cells = rows.iter().flat_map(|r| CHANNELS.iter().zip(r.values).map(move |(c, v)| (r, *c, v)));
    let (mut ids, mut times, mut channels, mut values) = (vec![], vec![], vec![], vec![]);
    for (row, channel, value) in cells {
        ids.push(row.service);
        times.push(row.timestamp);
        channels.push(channel);
        values.push(value);
    }
    let columns: Vec<ArrayRef> = vec![
        Arc::new(StringArray::from(ids)),
        Arc::new(TimestampMicrosecondArray::from(times).with_timezone("UTC")),
        Arc::new(StringArray::from(channels)),
        Arc::new(Float64Array::from(values)),
    ];
    RecordBatch::try_new(Arc::new(schema), columns).expect("columns match the schema")
}

fn wide_batch(rows: &[Row]) -> RecordBatch {
    let mut fields = vec![Field::new("service", DataType::Utf8, false), timestamp_field("ts")];
    fields.extend(CHANNELS.iter().map(|c| Field::new(*c, DataType::Float64, true)));
    let mut columns: Vec<ArrayRef> = vec![
        Arc::new(StringArray::from(rows.iter().map(|r| r.service).collect::<Vec<_>>())),
        Arc::new(
            TimestampMicrosecondArray::from(rows.iter().map(|r| r.timestamp).collect::<Vec<_>>())
                .with_timezone("UTC"),
        ),
    ];
    for c in 0..CHANNELS.len() {
        columns.push(Arc::new(Float64Array::from(rows.iter().map(|r| r.values[c]).collect::<Vec<_>>())));
    }
    RecordBatch::try_new(Arc::new(Schema::new(fields)), columns).expect("columns match the schema")
}

fn write_parquet(path: &Path, batch: &RecordBatch) -> Result<(), Box<dyn std::error::Error>> {
    let mut writer = AtomicParquetWriter::create(path, batch.schema())?;
    writer.write(batch)?;
    writer.finish()?;
    Ok(())
}

fn write_csv(path: &Path, batch: &RecordBatch) -> Result<(), Box<dyn std::error::Error>> {
    let mut writer = arrow::csv::WriterBuilder::new()
        .with_timestamp_tz_format("%Y-%m-%dT%H:%M:%SZ".to_string())
        .build(File::create(path)?);
    writer.write(batch)?;
    Ok(())
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let out = PathBuf::from(std::env::args().nth(1).unwrap_or_else(|| "examples/data".to_string()));
    std::fs::create_dir_all(&out)?;
    let rows = simulate();
    let long = long_batch(&rows);
    let wide = wide_batch(&rows);
    write_parquet(&out.join("services_long.parquet"), &long)?;
    write_csv(&out.join("services_long.csv"), &long)?;
    write_parquet(&out.join("services_wide.parquet"), &wide)?;
    write_csv(&out.join("services_wide.csv"), &wide)?;
    let mut ipc = arrow::ipc::writer::FileWriter::try_new(
        File::create(out.join("services_long.arrow"))?,
        &long.schema(),
    )?;
    ipc.write(&long)?;
    ipc.finish()?;
    let mut stream = arrow::ipc::writer::StreamWriter::try_new(
        File::create(out.join("services_long.arrows"))?,
        &long.schema(),
    )?;
    stream.write(&long)?;
    stream.finish()?;
    println!(
        "wrote {} rows per long file and {} per wide file to {}",
        long.num_rows(),
        wide.num_rows(),
        out.display()
    );
    Ok(())
}
