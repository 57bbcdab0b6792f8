//! Run-time device choice: the pure-Rust CPU backend everywhere, wgpu where compiled in.

use burn::tensor::Device;
use serde::{Deserialize, Serialize};

use crate::ModelError;

/// Which device to run on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeviceKind {
    /// burn's `flex` CPU backend (SIMD, multi-threaded).
    #[default]
    Cpu,
    /// burn's wgpu backend (Vulkan, Metal or DX12); needs the `wgpu` cargo feature.
    Wgpu,
}

impl std::str::FromStr for DeviceKind {
    type Err = ModelError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "cpu" => Ok(DeviceKind::Cpu),
            "wgpu" | "gpu" | "vulkan" => Ok(DeviceKind::Wgpu),
            other => Err(ModelError::Device(format!("unknown device `{other}` (expected cpu or wgpu)"))),
        }
    }
}

impl DeviceKind {
    /// The device, or why it cannot be had in this build.
    pub fn device(self) -> Result<Device, ModelError> {
        match self {
            DeviceKind::Cpu => Ok(Device::flex()),
            #[cfg(feature = "wgpu")]
            DeviceKind::Wgpu => probe_wgpu(),
            #[cfg(not(feature = "wgpu"))]
            DeviceKind::Wgpu => Err(ModelError::Device(WITHOUT_WGPU.into())),
        }
    }
}

/// Why a build without the `wgpu` cargo feature cannot run on wgpu, and how to get one
/// that can.
#[cfg(not(feature = "wgpu"))]
const WITHOUT_WGPU: &str = "this build has no wgpu backend: it was compiled without the `wgpu` cargo \
     feature (rebuild with `cargo build --release -p loopcast-cli --features wgpu`, or use the \
     Vulkan image, docker/Dockerfile.vulkan)";

/// The default wgpu device, once a small computation on it has come back right (burn
/// creates wgpu devices lazily, and a machine without an adapter panics on first use).
#[cfg(feature = "wgpu")]
fn probe_wgpu() -> Result<Device, ModelError> {
    use burn::tensor::Tensor;
    let device = Device::wgpu(Default::default());
    let probe = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        Tensor::<1>::from_floats([1.0, 2.0], &device).sum().into_scalar::<f32>()
    }));
    match probe {
        Ok(3.0) => Ok(device),
        Ok(sum) => Err(ModelError::Device(format!("the wgpu adapter computed 1 + 2 = {sum}"))),
        Err(panic) => {
            let reason = panic
                .downcast_ref::<String>()
                .map(String::as_str)
                .or_else(|| panic.downcast_ref::<&str>().copied())
                .unwrap_or("initialisation failed");
            Err(ModelError::Device(format!("no usable wgpu adapter ({reason})")))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A build without the feature refuses wgpu with an error that names the feature and
    /// the command that builds it in; the CPU is always there.
    #[cfg(not(feature = "wgpu"))]
    #[test]
    fn a_build_without_wgpu_names_the_feature() {
        assert!(DeviceKind::Cpu.device().is_ok());
        let error = DeviceKind::Wgpu.device().unwrap_err().to_string();
        assert!(error.contains("`wgpu` cargo feature") && error.contains("--features wgpu"), "{error}");
    }

    #[test]
    fn device_names_parse_and_unknown_ones_are_named() {
        assert_eq!("CPU".parse::<DeviceKind>().unwrap(), DeviceKind::Cpu);
        assert_eq!(" vulkan".parse::<DeviceKind>().unwrap(), DeviceKind::Wgpu);
        let error = "tpu".parse::<DeviceKind>().unwrap_err().to_string();
        assert!(error.contains("`tpu`"), "{error}");
    }
}
