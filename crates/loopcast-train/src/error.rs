//! Errors of a training run.

use std::path::PathBuf;

use thiserror::Error;

/// Why a run could not start or go on.
#[derive(Debug, Error)]
pub enum TrainError {
    /// A training config that cannot be read or is out of range; the message names the field.
    #[error("training config {path}: {message}")]
    Config {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// Windows that could not be generated or scored.
    #[error("training data: {0}")]
    Data(String),
    /// A checkpoint, log or model file that could not be written or read.
    #[error("{path}: {message}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// What went wrong.
        message: String,
    },
    /// `--resume` against a checkpoint of a different config, or with none to resume.
    #[error("cannot resume: {0}")]
    Resume(String),
    /// The model rejected something.
    #[error(transparent)]
    Model(#[from] loopcast_model::ModelError),
    /// The loss stopped being finite.
    #[error("the loss is not finite at step {step} ({detail}); lower the learning rate or check the data")]
    Diverged {
        /// The optimiser step.
        step: u64,
        /// The loss terms.
        detail: String,
    },
}
