//! Forward cost of the looped world model on the CPU device (and on wgpu when built with
//! the `wgpu` feature, the default, and an adapter is present): latency at batch 1 for R = 1, 2, 4, 8
//! loops per patch, throughput at batch 256, analytic FLOPs per forecast and achieved
//! GFLOP/s — against a plain dense matmul on the same device measured in the same run.
//!
//! ```sh
//! cargo bench --workspace --bench model
//! ```
//!
//! Request: 4 channels (3 targets, 1 action), 512 context steps, 64 horizon steps.

use std::time::Instant;

use burn::tensor::{Device, Distribution, Tensor};
use loopcast_core::Role;
use loopcast_model::{
    DeviceKind, ForecastOptions, LoopedWorldModel, ModelBatch, ModelConfig, RequestShape, forecast_flops,
};

const CONTEXT: usize = 512;
const HORIZON: usize = 64;

fn request(batch: usize) -> ModelBatch {
    let roles = vec![Role::Target, Role::Target, Role::Target, Role::Action];
    let c = roles.len();
    let values: Vec<f32> =
        (0..batch * c * CONTEXT).map(|i| ((i % CONTEXT) as f32 / 40.0).sin() * 10.0 + 50.0).collect();
    let future: Vec<f32> = vec![6.0; batch * c * HORIZON];
    let known: Vec<bool> = (0..batch * c * HORIZON).map(|i| i / HORIZON % c == 3).collect();
    ModelBatch::new(roles, batch, CONTEXT, HORIZON, values, vec![true; batch * c * CONTEXT], future, known)
        .expect("a valid request")
}

/// Median seconds of `runs` calls after two warm-up calls.
fn median(runs: usize, mut f: impl FnMut()) -> f64 {
    f();
    f();
    let mut times: Vec<f64> = (0..runs)
        .map(|_| {
            let start = Instant::now();
            f();
            start.elapsed().as_secs_f64()
        })
        .collect();
    times.sort_by(f64::total_cmp);
    times[runs / 2]
}

/// GFLOP/s of a dense `[m, k] × [k, n]` matmul on `device`: the ceiling the model's
/// matrix products could reach.
fn matmul_gflops(device: &Device) -> f64 {
    let (m, k, n) = (4096, 64, 128);
    let a = Tensor::<2>::random([m, k], Distribution::Default, device);
    let b = Tensor::<2>::random([k, n], Distribution::Default, device);
    // A new left operand every call, so no backend can reuse an earlier result.
    let mut round = 0.0f32;
    let seconds = median(20, || {
        round += 1.0;
        let _ = a.clone().mul_scalar(round).matmul(b.clone()).into_data();
    });
    2.0 * (m * k * n) as f64 / seconds / 1e9
}

fn bench(name: &str, device: &Device) {
    let config = ModelConfig::small();
    let model = LoopedWorldModel::new(config.clone(), device).expect("a valid config");
    let shape = RequestShape { channels: 4, targets: 3, context: CONTEXT, horizon: HORIZON };
    let ceiling = matmul_gflops(device);
    println!(
        "\n{name}: small preset ({} parameters); dense matmul baseline {ceiling:.1} GFLOP/s",
        model.parameter_count()
    );
    println!(
        "{:<34} {:>12} {:>14} {:>12} {:>12}",
        "measurement", "ms", "MFLOP/forecast", "GFLOP/s", "× matmul"
    );
    let one = request(1);
    for loops in [1, 2, 4, 8] {
        let options = ForecastOptions {
            min_loops: Some(loops),
            max_loops: Some(loops),
            exit_threshold: Some(2.0),
            ..ForecastOptions::default()
        };
        let seconds = median(10, || {
            model.forecast(&one, &options).expect("forecast");
        });
        let flops = forecast_flops(&config, shape, loops) as f64;
        let gflops = flops / seconds / 1e9;
        println!(
            "{:<34} {:>12.2} {:>14.1} {:>12.2} {:>12.3}",
            format!("batch 1, R = {loops}"),
            seconds * 1e3,
            flops / 1e6,
            gflops,
            gflops / ceiling
        );
    }
    let many = request(256);
    let options = ForecastOptions {
        min_loops: Some(4),
        max_loops: Some(4),
        exit_threshold: Some(2.0),
        ..ForecastOptions::default()
    };
    let seconds = median(3, || {
        model.forecast(&many, &options).expect("forecast");
    });
    let flops = 256.0 * forecast_flops(&config, shape, 4) as f64;
    let gflops = flops / seconds / 1e9;
    println!(
        "{:<34} {:>12.2} {:>14.1} {:>12.2} {:>12.3}   ({:.0} forecasts/s)",
        "batch 256, R = 4",
        seconds * 1e3,
        flops / 256.0 / 1e6,
        gflops,
        gflops / ceiling,
        256.0 / seconds
    );
}

fn main() {
    bench("cpu (flex)", &DeviceKind::Cpu.device().expect("the CPU device"));
    match DeviceKind::Wgpu.device() {
        Ok(device) => bench("wgpu", &device),
        Err(e) => println!("\nwgpu: skipped ({e})"),
    }
}
