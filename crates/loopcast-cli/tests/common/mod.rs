//! Runs the built `loopcast` binary.

#![allow(dead_code)] // each test binary uses its own subset

use std::process::{Command, Output};

/// A training recipe for a model of 16 wide that trains in a second.
pub const TINY: &str = r#"
seed = 1
steps = 4
batch_size = 2
checkpoint_every = 2
log_every = 2
model = { d_model = 16, heads = 2, mlp_ratio = 2, patch_len = 8, encoder_layers = 1, max_context_patches = 8, max_horizon_patches = 4, quantiles = [0.1, 0.5, 0.9], min_loops = 1, max_loops = 2, exit_threshold = 0.5, scale_floor = 0.001 }
[optimizer]
learning_rate = 0.001
warmup_steps = 1
final_lr_ratio = 0.1
weight_decay = 0.0
grad_clip_norm = 1.0
[loops]
poisson_lambda = 1.0
grad_loops = 1
[loss]
pinball = 1.0
consistency = 0.1
contraction = 0.1
contraction_ratio = 0.9
gate = 0.1
gate_tolerance = 0.01
[data]
sre_share = 0.5
contexts = [32]
horizons = [8]
prior_max_channels = 2
target_subset_share = 0.0
drop_actions_share = 0.0
[validation]
every = 4
windows = 2
context = 32
horizon = 8
"#;

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
    forecast_column(path, "mean").into_iter().map(|(id, channel, time, _)| (id, channel, time)).collect()
}

/// `(series_id, channel, timestamp, value)` of every row of a forecast file, the value
/// from its number column `column` (`q0.5`, `mean`).
pub fn forecast_column(path: &std::path::Path, column: &str) -> Vec<(String, String, i64, f64)> {
    use arrow::array::{Array, Float64Array, StringArray, TimestampMicrosecondArray};
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
        let values = batch.column_by_name(column).unwrap();
        let values = values.as_any().downcast_ref::<Float64Array>().unwrap();
        for i in 0..batch.num_rows() {
            assert!(!ids.is_null(i) && !times.is_null(i));
            rows.push((
                ids.value(i).to_string(),
                channels.value(i).to_string(),
                times.value(i),
                values.value(i),
            ));
        }
    }
    rows
}
