//! The same checkpoint gives the same forecasts on the CPU (flex) and wgpu devices.
//!
//! Built with the `wgpu` feature only (`cargo test --release --workspace --features
//! loopcast-model/wgpu --test parity`, which `.ci/run` runs after the test suite). Without a Vulkan/Metal/DX12 adapter —
//! Mesa's software Vulkan (`mesa-vulkan-drivers`, which `.ci/run` installs) counts as
//! one — the test says it was skipped and why.
#![cfg(feature = "wgpu")]

use burn::tensor::Device;
use loopcast_core::Role;
use loopcast_model::{DeviceKind, ForecastOptions, LoopedWorldModel, ModelBatch, ModelConfig};

fn batch() -> ModelBatch {
    let roles = vec![Role::Target, Role::Target, Role::Action, Role::Covariate];
    let (b, c, l, h) = (3, roles.len(), 96, 40);
    let values: Vec<f32> =
        (0..b * c * l).map(|i| 100.0 + 30.0 * ((i % l) as f32 / 9.0).sin() + (i / l) as f32).collect();
    let observed: Vec<bool> = (0..b * c * l).map(|i| i % 17 != 0).collect();
    let future: Vec<f32> = (0..b * c * h).map(|i| if i % h < h / 2 { 4.0 } else { 9.0 }).collect();
    let known: Vec<bool> = (0..b * c * h).map(|i| (i / h) % c >= 2).collect();
    ModelBatch::new(roles, b, l, h, values, observed, future, known).unwrap()
}

#[test]
fn cpu_and_wgpu_forecasts_agree() {
    let gpu = match DeviceKind::Wgpu.device() {
        Ok(device) => device,
        Err(e) => {
            eprintln!("SKIPPED cpu_and_wgpu_forecasts_agree: {e}");
            return;
        }
    };
    let config = ModelConfig { d_model: 32, heads: 4, patch_len: 8, ..ModelConfig::small() };
    let cpu = LoopedWorldModel::new(config, &Device::flex()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    cpu.save(dir.path()).unwrap();
    let on_gpu = LoopedWorldModel::load(dir.path(), &gpu).unwrap();
    // Fixed loops: a gate value within float noise of τ could otherwise take one more
    // loop on one device than on the other.
    let options = ForecastOptions {
        min_loops: Some(3),
        max_loops: Some(3),
        exit_threshold: Some(2.0),
        ..Default::default()
    };
    let input = batch();
    let a = cpu.forecast(&input, &options).unwrap();
    let b = on_gpu.forecast(&input, &options).unwrap();
    assert_eq!(a.loops, b.loops);
    let mut worst = 0f32;
    for (x, y) in a.values.iter().zip(&b.values) {
        // Within 1e-3 relative to the value (values here are around 100).
        let error = (x - y).abs() / x.abs().max(1.0);
        worst = worst.max(error);
    }
    eprintln!("cpu vs wgpu: largest relative difference {worst:.2e} over {} values", a.values.len());
    assert!(worst <= 1e-3, "cpu and wgpu differ by {worst}");
}
