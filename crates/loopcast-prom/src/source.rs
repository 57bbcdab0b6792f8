//! A Prometheus source: the server, one PromQL query per channel, the range and the
//! step, and the labels that name a series.

use std::time::Duration;

use chrono::{DateTime, Utc};
use loopcast_core::{Frequency, Role};
use serde::{Deserialize, Serialize};

use crate::PromError;

/// Prometheus refuses a range query of more than this many points per series.
pub const MAX_POINTS_PER_QUERY: i64 = 11_000;

/// One channel of the series, filled by one PromQL range query.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChannelQuery {
    /// The channel's name in loopcast (`rps`, `cpu_util`, `replicas`, …).
    pub channel: String,
    /// The PromQL expression; each result series is one loopcast series' channel.
    pub query: String,
    /// What the channel is to the model.
    #[serde(default = "target")]
    pub role: Role,
}

fn target() -> Role {
    Role::Target
}

/// Where and what to read from Prometheus.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PrometheusSource {
    /// The server's base URL (`http://prometheus:9090`, a path prefix allowed).
    pub url: String,
    /// One query per channel.
    pub queries: Vec<ChannelQuery>,
    /// How far back from `end` to read (`7d`, `36h`, …).
    pub range: String,
    /// The grid step, also the queries' resolution (`5m`, `30s`, …).
    pub step: String,
    /// The end of the range, RFC 3339; `None` for now.
    #[serde(default)]
    pub end: Option<String>,
    /// The labels whose values name a series (`["service"]`); `None`: every label of a
    /// result but `__name__`. Results of different queries with the same values are
    /// channels of one series.
    #[serde(default)]
    pub series_labels: Option<Vec<String>>,
    /// Seconds to wait for each answer.
    #[serde(default = "default_timeout")]
    pub timeout_seconds: f64,
}

fn default_timeout() -> f64 {
    30.0
}

/// Credentials for the server, kept out of every file loopcast writes.
#[derive(Clone, Default)]
pub enum Auth {
    /// None.
    #[default]
    None,
    /// `Authorization: Bearer TOKEN`.
    Bearer(String),
    /// HTTP basic authentication.
    Basic {
        /// The user.
        user: String,
        /// The password.
        password: String,
    },
}

impl std::fmt::Debug for Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Auth::None => write!(f, "None"),
            Auth::Bearer(_) => write!(f, "Bearer(…)"),
            Auth::Basic { user, .. } => write!(f, "Basic({user}, …)"),
        }
    }
}

impl Auth {
    /// `request` with these credentials.
    pub(crate) fn apply(&self, request: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        match self {
            Auth::None => request,
            Auth::Bearer(token) => request.bearer_auth(token),
            Auth::Basic { user, password } => request.basic_auth(user, Some(password)),
        }
    }
}

/// The instants a source reads: `start` to `end` inclusive every `step`, aligned to the
/// step's grid (so Prometheus' samples fall on loopcast's cells).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Window {
    /// First instant, milliseconds since the epoch.
    pub start_ms: i64,
    /// Last instant, milliseconds since the epoch.
    pub end_ms: i64,
    /// Step, milliseconds.
    pub step_ms: i64,
}

impl Window {
    /// Number of instants.
    pub fn len(&self) -> usize {
        ((self.end_ms - self.start_ms) / self.step_ms + 1) as usize
    }

    /// Whether the window holds no instant (never, once resolved).
    pub fn is_empty(&self) -> bool {
        self.end_ms < self.start_ms
    }

    /// The grid the window lies on.
    pub fn frequency(&self) -> Frequency {
        Frequency::Fixed(self.step_ms * 1_000)
    }

    /// The window as RFC 3339 instants, for messages.
    pub fn describe(&self) -> String {
        let at =
            |ms: i64| DateTime::from_timestamp_millis(ms).map_or_else(|| ms.to_string(), |t| t.to_rfc3339());
        format!("{} to {}", at(self.start_ms), at(self.end_ms))
    }

    /// The window cut into pieces of at most [`MAX_POINTS_PER_QUERY`] instants each.
    pub fn chunks(&self) -> Vec<Window> {
        let span = (MAX_POINTS_PER_QUERY - 1) * self.step_ms;
        let mut chunks = Vec::new();
        let mut start = self.start_ms;
        while start <= self.end_ms {
            let end = (start + span).min(self.end_ms);
            chunks.push(Window { start_ms: start, end_ms: end, step_ms: self.step_ms });
            start = end + self.step_ms;
        }
        chunks
    }
}

impl PrometheusSource {
    /// Checks the settings and resolves the range against `now`.
    pub fn window(&self, now: DateTime<Utc>) -> Result<Window, PromError> {
        let invalid = |field: &str, detail: String| PromError::Invalid { field: field.into(), detail };
        if !self.url.starts_with("http://") {
            return Err(invalid(
                "url",
                format!(
                    "`{}`: only plain http:// URLs are supported (this build has no TLS stack; \
                     reach an https server through a local proxy or sidecar)",
                    self.url
                ),
            ));
        }
        if self.queries.is_empty() {
            return Err(invalid("queries", "at least one query is needed".into()));
        }
        for (i, q) in self.queries.iter().enumerate() {
            if q.channel.trim().is_empty() {
                return Err(invalid(&format!("queries[{i}].channel"), "empty channel name".into()));
            }
            if q.query.trim().is_empty() {
                return Err(invalid(
                    &format!("queries[{i}].query"),
                    format!("channel `{}`: empty query", q.channel),
                ));
            }
            if self.queries[..i].iter().any(|other| other.channel == q.channel) {
                return Err(invalid(
                    &format!("queries[{i}].channel"),
                    format!("`{}` is named twice", q.channel),
                ));
            }
        }
        if !self.queries.iter().any(|q| q.role == Role::Target) {
            return Err(invalid("queries", "no query fills a target channel: nothing to forecast".into()));
        }
        if let Some(labels) = &self.series_labels
            && labels.iter().any(|l| l.trim().is_empty())
        {
            return Err(invalid("series_labels", "empty label name".into()));
        }
        if !(self.timeout_seconds.is_finite() && self.timeout_seconds > 0.0) {
            return Err(invalid(
                "timeout_seconds",
                format!("{} is not a positive number of seconds", self.timeout_seconds),
            ));
        }
        let step_ms = duration_ms("step", &self.step)?;
        if step_ms % 1_000 != 0 {
            return Err(invalid("step", format!("`{}` is not a whole number of seconds", self.step)));
        }
        let range_ms = duration_ms("range", &self.range)?;
        if range_ms < step_ms {
            return Err(invalid(
                "range",
                format!("`{}` is shorter than the step `{}`", self.range, self.step),
            ));
        }
        let end = match &self.end {
            None => now,
            Some(text) => DateTime::parse_from_rfc3339(text)
                .map_err(|e| invalid("end", format!("`{text}` is not an RFC 3339 instant: {e}")))?
                .with_timezone(&Utc),
        };
        let end_ms = end.timestamp_millis().div_euclid(step_ms) * step_ms;
        let start_ms = end_ms - (range_ms / step_ms) * step_ms;
        Ok(Window { start_ms, end_ms, step_ms })
    }

    /// How long to wait for each answer.
    pub(crate) fn timeout(&self) -> Duration {
        Duration::from_secs_f64(self.timeout_seconds)
    }

    /// `path` under the server's base URL.
    pub(crate) fn endpoint(&self, path: &str) -> String {
        format!("{}/{path}", self.url.trim_end_matches('/'))
    }
}

/// A fixed duration in milliseconds (`5m`, `30s`, `7d`), naming `field` when it is not one.
fn duration_ms(field: &str, text: &str) -> Result<i64, PromError> {
    match text.parse::<Frequency>() {
        Ok(Frequency::Fixed(micros)) if micros >= 1_000 => Ok(micros / 1_000),
        _ => Err(PromError::Invalid {
            field: field.into(),
            detail: format!("`{text}` is not a duration of at least 1 ms (e.g. `30s`, `5m`, `7d`)"),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn source() -> PrometheusSource {
        PrometheusSource {
            url: "http://127.0.0.1:9090".into(),
            queries: vec![ChannelQuery { channel: "rps".into(), query: "up".into(), role: Role::Target }],
            range: "2d".into(),
            step: "15s".into(),
            end: Some("2026-12-07T10:00:07Z".into()),
            series_labels: None,
            timeout_seconds: 30.0,
        }
    }

    #[test]
    fn the_window_is_aligned_to_the_step_and_cut_below_the_point_limit() {
        let window = source().window(Utc::now()).unwrap();
        assert_eq!(window.end_ms % 15_000, 0);
        assert_eq!(
            window.end_ms,
            DateTime::parse_from_rfc3339("2026-12-07T10:00:00Z").unwrap().timestamp_millis()
        );
        assert_eq!(window.len(), 2 * 24 * 240 + 1);
        let chunks = window.chunks();
        assert_eq!(chunks.len(), 2);
        assert!(chunks.iter().all(|c| c.len() as i64 <= MAX_POINTS_PER_QUERY));
        assert_eq!(chunks.iter().map(Window::len).sum::<usize>(), window.len());
        assert_eq!(chunks[1].start_ms, chunks[0].end_ms + 15_000);
        assert_eq!(chunks[1].end_ms, window.end_ms);
    }

    #[test]
    fn bad_settings_name_the_field() {
        type Change = fn(&mut PrometheusSource);
        let cases: Vec<(Change, &str)> = vec![
            (|s| s.url = "https://x".into(), "`url`"),
            (|s| s.queries.clear(), "`queries`"),
            (|s| s.queries[0].role = Role::Action, "no query fills a target"),
            (|s| s.queries.push(s.queries[0].clone()), "`queries[1].channel`"),
            (|s| s.step = "1mo".into(), "`step`"),
            (|s| s.step = "1500ms".into(), "whole number of seconds"),
            (|s| s.range = "5s".into(), "`range`"),
            (|s| s.end = Some("yesterday".into()), "`end`"),
            (|s| s.timeout_seconds = 0.0, "`timeout_seconds`"),
        ];
        for (change, expected) in cases {
            let mut s = source();
            change(&mut s);
            let message = s.window(Utc::now()).unwrap_err().to_string();
            assert!(message.contains(expected), "{message} should contain {expected}");
        }
    }
}
