//! Training of the looped world model (DESIGN.md §4).
//!
//! Every step draws its windows from seeds — SRE-world twin pairs under different action
//! plans, or series of the synthetic prior — with random context, horizon, channels and
//! missingness, and a loop count `R ~ 1 + Poisson(λ)` (capped) with gradients through the
//! last loops only. The loss adds pinball, latent consistency, contraction and exit-gate
//! terms. AdamW with warm-up and cosine decay and global-norm clipping; validation on
//! held-out seeds; atomic checkpoints with the optimiser's state, so `--resume` continues
//! exactly where an interrupted run stopped.
#![warn(missing_docs, missing_debug_implementations, rust_2018_idioms, unreachable_pub)]

mod checkpoint;
mod config;
pub mod data;
mod error;
mod loss;
mod real;
mod relative;
mod trainer;
mod validate;

pub use config::{
    DataConfig, EffectsConfig, KeepBy, LoopsConfig, LossConfig, ModelSource, OptimizerConfig, RealSource,
    TrainConfig, TwinScale, ValidationConfig,
};
pub use error::TrainError;
pub use loss::{LossValues, step_loss};
pub use real::RealCorpus;
pub use relative::{RelativeFit, fit_relative_path};
pub use trainer::{
    LogLine, SelectFn, Selector, StopSignal, TrainOptions, TrainOutcome, seconds_per_step, train, train_on,
};
pub use validate::{
    MAX_EFFECT_WIDENING, ValidationReport, ValidationSet, evaluate, evaluate_with, fitted_effect_widening,
    fitted_interval_scale,
};
