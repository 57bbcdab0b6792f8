//! Errors of the simulator.

use thiserror::Error;

/// A simulation that cannot be set up as asked. Every message names what was wrong.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum SimError {
    /// A parameter file or range that is not valid.
    #[error("simulator config: {0}")]
    Config(String),
    /// An action plan that cannot be played.
    #[error("action plan: {0}")]
    Plan(String),
    /// A grid step the world cannot run at.
    #[error("frequency: {0}")]
    Frequency(String),
    /// A length that is too short.
    #[error("length: {0}")]
    Length(String),
}
