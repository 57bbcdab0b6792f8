//! Service configuration: defaults, then `configs/loopcast.toml` (or `--config`), then
//! `LOOPCAST_*` environment variables, then command-line flags (applied by the CLI).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use loopcast_core::toml_error_line;
use serde::{Deserialize, Serialize};

use crate::ServeError;

/// Everything `loopcast serve` can be told.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServeConfig {
    /// Address to listen on.
    pub listen: SocketAddr,
    /// A model directory (`config.json` + `weights.bpk`); the embedded shipped model when
    /// absent.
    pub model: Option<PathBuf>,
    /// `cpu` (burn flex) or `wgpu`.
    pub device: String,
    /// Bearer token every route but `/health` requires (`LOOPCAST_API_KEY`); open when
    /// absent.
    pub api_key: Option<String>,
    /// Request limits.
    pub limits: Limits,
    /// The dynamic batcher.
    pub batching: Batching,
    /// Batch-scoring jobs.
    pub jobs: Jobs,
}

impl Default for ServeConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            model: None,
            device: "cpu".into(),
            api_key: None,
            limits: Limits::default(),
            batching: Batching::default(),
            jobs: Jobs::default(),
        }
    }
}

/// Request limits; a request past one is refused with 413 or 422 naming the field.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Limits {
    /// Largest request body, bytes.
    pub max_body_bytes: usize,
    /// Most series per request.
    pub max_series: usize,
    /// Most history steps per series (the model reads the last `max_context_patches ×
    /// patch_len` of them).
    pub max_context: usize,
    /// Longest horizon, steps (never more than the model forecasts: 4 rollouts).
    pub max_horizon: usize,
    /// Most action plans per what-if.
    pub max_scenarios: usize,
    /// Most quantile levels per request.
    pub max_quantiles: usize,
    /// Most loops per patch a request may ask for.
    pub max_loops: usize,
    /// Most schedules one `POST /v1/plan` evaluates.
    pub max_plan_candidates: usize,
    /// Deadline of every request, milliseconds; past it the answer is 504.
    pub request_timeout_ms: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_body_bytes: 8 * 1024 * 1024,
            max_series: 256,
            max_context: 16_384,
            max_horizon: 1024,
            max_scenarios: 64,
            max_quantiles: 32,
            max_loops: 32,
            max_plan_candidates: 256,
            request_timeout_ms: 30_000,
        }
    }
}

/// The dynamic batcher between handlers and the model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Batching {
    /// Group queued requests into one model call (`false`: one call per request).
    pub enabled: bool,
    /// Most windows (series × scenarios) in one model call.
    pub max_batch_windows: usize,
    /// Longest wait for more requests, milliseconds, once the queue is drained — taken
    /// only when the last model call ran more than one request (concurrent load), so a
    /// lone request never waits. What queued during the last call always joins.
    pub max_wait_ms: u64,
    /// Requests that may wait; past it the answer is 503 with `Retry-After`.
    pub queue_capacity: usize,
}

impl Default for Batching {
    fn default() -> Self {
        Self { enabled: true, max_batch_windows: 64, max_wait_ms: 5, queue_capacity: 1024 }
    }
}

/// Batch-scoring jobs (`/v1/jobs`) and uploads (`/v1/files`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Jobs {
    /// Directory jobs read inputs from (paths in a job are relative to it), and where
    /// uploads (`uploads/`) and job state and outputs (`jobs/`) live; created on first
    /// use. Unfinished jobs found here at start resume.
    pub data_dir: PathBuf,
    /// Series per chunk: the unit of progress, of resume after a crash, and of one model
    /// call.
    pub chunk_series: usize,
    /// Largest upload, bytes.
    pub max_upload_bytes: usize,
}

impl Default for Jobs {
    fn default() -> Self {
        Self { data_dir: PathBuf::from("loopcast-data"), chunk_series: 64, max_upload_bytes: 1 << 30 }
    }
}

impl ServeConfig {
    /// Reads a TOML file over the defaults; the error names the file, line and field.
    pub fn from_file(path: &Path) -> Result<Self, ServeError> {
        let fail = |message: String| ServeError::Config(format!("{}: {message}", path.display()));
        let text = std::fs::read_to_string(path).map_err(|e| fail(e.to_string()))?;
        let config: Self = toml::from_str(&text).map_err(|e| fail(toml_error_line(&text, &e)))?;
        config.validate().map_err(|e| fail(e.to_string()))?;
        Ok(config)
    }

    /// Applies `LOOPCAST_LISTEN`, `LOOPCAST_MODEL`, `LOOPCAST_DEVICE`,
    /// `LOOPCAST_DATA_DIR` and `LOOPCAST_API_KEY` from `lookup` (the process environment in the binary).
    pub fn apply_env(&mut self, lookup: impl Fn(&str) -> Option<String>) -> Result<(), ServeError> {
        if let Some(listen) = lookup("LOOPCAST_LISTEN") {
            self.listen =
                listen.parse().map_err(|e| ServeError::Config(format!("LOOPCAST_LISTEN `{listen}`: {e}")))?;
        }
        if let Some(model) = lookup("LOOPCAST_MODEL") {
            self.model = Some(model.into());
        }
        if let Some(device) = lookup("LOOPCAST_DEVICE") {
            self.device = device;
        }
        if let Some(dir) = lookup("LOOPCAST_DATA_DIR") {
            self.jobs.data_dir = dir.into();
        }
        if let Some(key) = lookup("LOOPCAST_API_KEY").filter(|k| !k.is_empty()) {
            self.api_key = Some(key);
        }
        self.validate()
    }

    /// Checks every limit; the error names the first bad one.
    pub fn validate(&self) -> Result<(), ServeError> {
        let l = &self.limits;
        let b = &self.batching;
        for (name, value) in [
            ("limits.max_body_bytes", l.max_body_bytes),
            ("limits.max_series", l.max_series),
            ("limits.max_context", l.max_context),
            ("limits.max_horizon", l.max_horizon),
            ("limits.max_scenarios", l.max_scenarios),
            ("limits.max_quantiles", l.max_quantiles),
            ("limits.max_loops", l.max_loops),
            ("limits.max_plan_candidates", l.max_plan_candidates),
            ("limits.request_timeout_ms", l.request_timeout_ms as usize),
            ("batching.max_batch_windows", b.max_batch_windows),
            ("batching.queue_capacity", b.queue_capacity),
            ("jobs.chunk_series", self.jobs.chunk_series),
            ("jobs.max_upload_bytes", self.jobs.max_upload_bytes),
        ] {
            if value == 0 {
                return Err(ServeError::Config(format!("`{name}` must be at least 1")));
            }
        }
        if !matches!(self.device.as_str(), "cpu" | "wgpu") {
            return Err(ServeError::Config(format!(
                "`device` must be `cpu` or `wgpu`, got `{}`",
                self.device
            )));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shipped_config_is_the_defaults_and_env_overrides_it() {
        let path = Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../../configs/loopcast.toml"));
        let mut config = ServeConfig::from_file(path).unwrap();
        assert_eq!(config, ServeConfig::default());
        let env = |name: &str| match name {
            "LOOPCAST_LISTEN" => Some("0.0.0.0:9000".to_string()),
            "LOOPCAST_API_KEY" => Some("secret".to_string()),
            _ => None,
        };
        config.apply_env(env).unwrap();
        assert_eq!(config.listen.port(), 9000);
        assert_eq!(config.api_key.as_deref(), Some("secret"));
        let err = config.apply_env(|_| Some("nowhere".into())).unwrap_err();
        assert!(err.to_string().contains("LOOPCAST_LISTEN"), "{err}");
    }

    #[test]
    fn bad_files_name_the_field() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bad.toml");
        std::fs::write(&path, "[limits]\nmax_series = 0\n").unwrap();
        let err = ServeConfig::from_file(&path).unwrap_err().to_string();
        assert!(err.contains("limits.max_series") && err.contains("bad.toml"), "{err}");
        std::fs::write(&path, "[batching]\nmax_wait = 3\n").unwrap();
        let err = ServeConfig::from_file(&path).unwrap_err().to_string();
        assert!(err.contains("max_wait") && !err.contains('\n'), "{err}");
    }
}
