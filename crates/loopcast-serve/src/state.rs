//! The state every handler shares: the model worker, the job manager once started, and
//! what the HTTP layer enforces (the bearer key, the body limit).

use std::sync::{Arc, OnceLock};

use loopcast_model::LoopedWorldModel;

use crate::config::{Jobs, ServeConfig};
use crate::extract::BodyLimit;
use crate::jobs::JobManager;
use crate::problem::Problem;
use crate::worker::Worker;

/// Shared state of every handler.
#[derive(Debug, Clone)]
pub struct AppState {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    worker: Worker,
    api_key: Option<String>,
    max_body_bytes: usize,
    jobs: OnceLock<JobManager>,
}

impl AppState {
    /// Starts the model worker for `model` (named `name`) under `config`.
    pub fn new(config: &ServeConfig, model: LoopedWorldModel, name: String) -> Self {
        Self {
            inner: Arc::new(Inner {
                worker: Worker::new(config, model, name),
                api_key: config.api_key.clone(),
                max_body_bytes: config.limits.max_body_bytes,
                jobs: OnceLock::new(),
            }),
        }
    }

    /// The model worker.
    pub fn worker(&self) -> &Worker {
        &self.inner.worker
    }

    /// Starts the job runner under `config` (resuming the unfinished jobs found there);
    /// until then `/v1/jobs` answers 503. Needs a tokio runtime.
    pub fn start_jobs(&self, config: &Jobs) {
        self.inner.jobs.get_or_init(|| JobManager::start(self.inner.worker.clone(), config));
    }

    /// The job manager, once started.
    pub(crate) fn jobs(&self) -> Result<&JobManager, Problem> {
        self.inner
            .jobs
            .get()
            .ok_or_else(|| Problem::unavailable("batch jobs are not running in this process"))
    }

    /// The key every request but `/health` and the console's must bear, if any.
    pub(crate) fn api_key(&self) -> Option<&str> {
        self.inner.api_key.as_deref()
    }
}

impl BodyLimit for AppState {
    fn max_body_bytes(&self) -> usize {
        self.inner.max_body_bytes
    }
}
