//! Errors of the model crate.

use thiserror::Error;

/// A model that cannot be built, a batch it cannot take, or a checkpoint it cannot read.
#[derive(Debug, Error)]
pub enum ModelError {
    /// A configuration value out of range; the message names the field.
    #[error("model config: {0}")]
    Config(String),
    /// A batch whose shapes or contents the model cannot use; the message names the field.
    #[error("model input: {0}")]
    Input(String),
    /// A device that is not compiled in or not present.
    #[error("device: {0}")]
    Device(String),
    /// A checkpoint that cannot be written or read.
    #[error("checkpoint {path}: {message}")]
    Checkpoint {
        /// The file.
        path: std::path::PathBuf,
        /// What went wrong.
        message: String,
    },
}
