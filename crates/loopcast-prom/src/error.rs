//! What can go wrong talking to Prometheus; every error names the query or the URL.

/// An error reading from or writing to Prometheus.
#[derive(Debug, thiserror::Error)]
pub enum PromError {
    /// The source's settings are wrong (the field is named).
    #[error("prometheus source: `{field}`: {detail}")]
    Invalid {
        /// The setting.
        field: String,
        /// What is wrong with it.
        detail: String,
    },
    /// The server could not be reached, or did not answer in time.
    #[error("{url}: {detail}")]
    Unreachable {
        /// The URL asked.
        url: String,
        /// What happened.
        detail: String,
    },
    /// The server refused the credentials (HTTP 401 or 403).
    #[error("{url}: HTTP {status}: the server refused the credentials{hint}")]
    Auth {
        /// The URL asked.
        url: String,
        /// The HTTP status.
        status: u16,
        /// What to check.
        hint: String,
    },
    /// The server refused a query (bad PromQL, too many points, a time-out on its side).
    #[error("query `{channel}` ({query}): {detail}")]
    Query {
        /// The channel the query fills.
        channel: String,
        /// The PromQL.
        query: String,
        /// The server's error, or what was wrong with its answer.
        detail: String,
    },
    /// A query matched no series over the range.
    #[error("query `{channel}` ({query}): no series over {range}; check the metric name, labels and range")]
    Empty {
        /// The channel the query fills.
        channel: String,
        /// The PromQL.
        query: String,
        /// The range asked, as RFC 3339 instants.
        range: String,
    },
    /// The remote-write receiver refused a request.
    #[error("remote write to {url}: HTTP {status}: {detail}")]
    Write {
        /// The receiver's URL.
        url: String,
        /// The HTTP status.
        status: u16,
        /// The receiver's message.
        detail: String,
    },
    /// A forecast file could not be read for writing back.
    #[error("{path}: {detail}")]
    Forecasts {
        /// The file.
        path: String,
        /// What is wrong.
        detail: String,
    },
}
