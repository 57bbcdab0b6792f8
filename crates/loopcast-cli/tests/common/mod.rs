//! Runs the built `loopcast` binary.

#![allow(dead_code)] // each test binary uses its own subset

use std::process::{Command, Output};

/// Runs `loopcast ARGS` and returns its status and output.
pub fn loopcast(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_loopcast")).args(args).output().unwrap()
}

/// Runs `loopcast ARGS`, which must succeed, and parses its standard output as JSON.
pub fn json(args: &[&str]) -> serde_json::Value {
    let out = loopcast(args);
    assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

/// `(series_id, channel, timestamp)` of every row of a forecast file.
pub fn forecast_keys(path: &std::path::Path) -> Vec<(String, String, i64)> {
    use arrow::array::{Array, StringArray, TimestampMicrosecondArray};
    let file = std::fs::File::open(path).unwrap();
    let reader = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(file)
        .unwrap()
        .build()
        .unwrap();
    let mut rows = Vec::new();
    for batch in reader {
        let batch = batch.unwrap();
        let text = |name: &str| {
            batch.column_by_name(name).unwrap().as_any().downcast_ref::<StringArray>().unwrap().clone()
        };
        let (ids, channels) = (text("series_id"), text("channel"));
        let times = batch.column_by_name("timestamp").unwrap();
        let times = times.as_any().downcast_ref::<TimestampMicrosecondArray>().unwrap();
        for i in 0..batch.num_rows() {
            assert!(!ids.is_null(i) && !times.is_null(i));
            rows.push((ids.value(i).to_string(), channels.value(i).to_string(), times.value(i)));
        }
    }
    rows
}
