//! The shipped model (embedded from `models/loopcast-small`) loads, matches the files in
//! the repository, and forecasts the example telemetry file with finite, monotone
//! quantiles and reported loop counts.

use std::path::Path;

use loopcast_core::{ChannelMapping, Role};
use loopcast_data::{Origins, ReadOptions, TelemetryReader, WindowBatcher, WindowSpec};
use loopcast_model::{DeviceKind, ForecastOptions, LoopedWorldModel};

fn repository() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().parent().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_shipped_model_forecasts_the_example_file() {
    let device = DeviceKind::Cpu.device().unwrap();
    let model = LoopedWorldModel::shipped(&device).unwrap();
    let on_disk = LoopedWorldModel::load(repository().join("models/loopcast-small"), &device).unwrap();
    assert_eq!(model.config(), on_disk.config());
    assert_eq!(model.parameter_count(), on_disk.parameter_count());

    let data = repository().join("examples/data");
    let text = std::fs::read_to_string(data.join("services_long.mapping.toml")).unwrap();
    let options =
        ReadOptions { mapping: Some(ChannelMapping::from_toml(&text).unwrap()), ..ReadOptions::default() };
    let mut reader = TelemetryReader::open(data.join("services_long.parquet"), options).await.unwrap();
    // Targets first, as the model wants them.
    let mut channels = reader.channels().to_vec();
    channels.sort_by_key(|c| c.role != Role::Target);
    let spec =
        WindowSpec { context: 448, horizon: 64, origins: Origins::Backtest { windows: 2, stride: 64 } };
    let mut batcher = WindowBatcher::new(spec, &channels, 64).unwrap();
    let mut batches = Vec::new();
    while let Some(series) = reader.next_series().await.unwrap() {
        batches.extend(batcher.push(&series));
    }
    batches.extend(batcher.finish());
    let windows = batches.into_iter().next().expect("the file has windows");
    assert_eq!(windows.len(), 6, "3 series × 2 origins");

    let season = reader.report().frequency.expect("a regular file").season();
    let batch = loopcast_serve::model_batch(&windows, season).unwrap();
    let forecast = model.forecast(&batch, &ForecastOptions::default()).unwrap();
    assert_eq!((forecast.batch, forecast.targets, forecast.steps), (6, 3, 64));
    let q = forecast.levels.len();
    for cell in forecast.values.chunks(q) {
        assert!(cell.iter().all(|v| v.is_finite()), "{cell:?}");
        assert!(cell.windows(2).all(|w| w[0] <= w[1]), "quantiles cross: {cell:?}");
    }
    let max = model.config().max_loops as u32;
    assert!(forecast.loops.iter().flatten().all(|l| (1..=max).contains(l)));

    // The median is in the data's range: the truth of each target lies within a few
    // context ranges of it (a scaling bug would put it orders of magnitude away).
    let (l, h) = (windows.context_len, windows.horizon);
    let median = forecast.levels.iter().position(|x| (*x - 0.5).abs() < 1e-9).unwrap();
    for b in 0..6 {
        for t in 0..3 {
            let row = (b * channels.len() + t) * l;
            let past: Vec<f32> = (0..l)
                .filter(|i| windows.context_mask[row + i] > 0.5)
                .map(|i| windows.context[row + i])
                .collect();
            let (lo, hi) = past.iter().fold((f32::MAX, f32::MIN), |(a, z), v| (a.min(*v), z.max(*v)));
            let span = (hi - lo).max(1e-3);
            for s in 0..h {
                let m = forecast.value(b, t, s, median);
                assert!(
                    m > lo - 3.0 * span && m < hi + 3.0 * span,
                    "window {b} target {t} step {s}: {m} vs [{lo}, {hi}]"
                );
            }
        }
    }
}
