//! Errors of the domain layer.

use thiserror::Error;

/// An invalid domain value: a role, aggregation, frequency or mapping that cannot be
/// understood. Every message names the offending text.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum CoreError {
    /// A role other than `target`, `action` or `covariate`.
    #[error("unknown channel role `{0}` (expected target, action or covariate)")]
    InvalidRole(String),
    /// An aggregation other than `mean`, `sum`, `last` or `max`.
    #[error("unknown aggregation `{0}` (expected mean, sum, last or max)")]
    InvalidAggregation(String),
    /// A frequency string that does not parse.
    #[error("invalid frequency `{0}` (expected e.g. 30s, 5m, 1h, 1d, 1w, 1mo, 1q, 1y)")]
    InvalidFrequency(String),
    /// A mapping file that is not valid.
    #[error("invalid channel mapping: {0}")]
    InvalidMapping(String),
    /// Arrays whose lengths do not agree.
    #[error("shape mismatch: {0}")]
    Shape(String),
}

/// A TOML parse error of `text` in one line: `line N: message` (the error's own
/// rendering spans several lines with a snippet of the file).
pub fn toml_error_line(text: &str, error: &toml::de::Error) -> String {
    let message = error.message().trim().replace('\n', " ");
    match error.span() {
        Some(span) => format!("line {}: {message}", text[..span.start].matches('\n').count() + 1),
        None => message,
    }
}
