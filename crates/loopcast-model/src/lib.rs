//! The looped world model of loopcast, in burn.
//!
//! Histories are cut into patches per channel and encoded once by factorised attention
//! (over time within a channel, across channels at each patch) into memory tokens. A
//! latent state — one token per target channel and a global one — is then rolled forward
//! one future patch at a time by **one shared block**, looped a variable number of times:
//! self-attention over the state and that patch's action tokens, cross-attention to the
//! memory, an MLP, and a spectral retention update `x ← Ā ⊙ x + B̄ ⊙ u` whose eigenvalues
//! stay strictly inside (0, 1). A learned gate ends the loop once the state has settled;
//! every answer reports the loops it used. The rollout stays in latent space; a monotone
//! quantile head decodes it once at the end, for all patches or only those asked for.
//! What-ifs encode the history once and roll K action plans out from it.
//!
//! Tensors carry their backend in their device (burn 0.22), so nothing here has a backend
//! type parameter: [`DeviceKind::Cpu`] is burn's pure-Rust `flex` backend, and
//! [`DeviceKind::Wgpu`] runs the same code on Vulkan, Metal or DX12 with the `wgpu` feature.
#![warn(missing_docs, missing_debug_implementations, rust_2018_idioms, unreachable_pub)]

mod batch;
mod config;
mod cost;
mod device;
mod error;
mod layers;
mod long_horizon;
mod model;
mod network;
pub mod planner;
pub mod quantiles;
mod retention;
mod series_calibration;

pub use batch::{MissingActions, ModelBatch};
/// The device a model runs on (burn's; carries its backend).
pub use burn::tensor::Device;
pub use config::{EffectUnits, ModelConfig};
pub use cost::{RequestShape, forecast_flops};
pub use device::DeviceKind;
pub use error::ModelError;
pub use layers::MemoryKeys;
pub use long_horizon::LONG_HORIZON_FACTOR;
pub use model::{Forecast, ForecastOptions, LoopedWorldModel, SHIPPED_MODEL};
pub use network::{
    Encoded, Inputs, KIND_CUES, LoopControl, Network, RELATIVE_ACTION_KINDS, RELATIVE_FEATURES,
    RELATIVE_TARGET_KINDS, RELATIVE_UNITS, RelativeDesign, Rollout, Trace,
};
