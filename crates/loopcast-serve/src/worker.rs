//! The model worker as the services use it: the batcher in front of the model, what the
//! model and the limits allow a request, and a request's work items run to its deadline.

use std::sync::Arc;
use std::time::{Duration, Instant};

use loopcast_model::{Forecast, LoopedWorldModel};

use crate::api::ModelInfo;
use crate::batcher::{BatchError, Batcher, Plan, Ticket, WorkItem};
use crate::config::ServeConfig;
use crate::prepare::{Bounds, Prepared, work_items};
use crate::problem::Problem;

/// The model worker: cheap to clone, shared by every request, job and local run.
#[derive(Debug, Clone)]
pub struct Worker {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    batcher: Batcher,
    bounds: Bounds,
    model: ModelInfo,
    timeout: Duration,
    queue_capacity: usize,
}

impl Worker {
    /// Starts the model worker for `model` (named `name`) under `config`.
    pub fn new(config: &ServeConfig, model: LoopedWorldModel, name: String) -> Self {
        let model_config = model.config().clone();
        let info = ModelInfo {
            name,
            default: true,
            parameters: model.parameter_count(),
            device: config.device.clone(),
            quantiles: model_config.quantiles.clone(),
            patch_len: model_config.patch_len,
            max_context: model_config.max_context_patches * model_config.patch_len,
            max_horizon: model_config.max_horizon(),
            native_horizon: model_config.native_horizon(),
            min_loops: model_config.min_loops,
            max_loops: model_config.max_loops,
            exit_threshold: model_config.exit_threshold,
        };
        let bounds = Bounds::new(&model_config, &config.limits);
        let batcher = Batcher::start(model, config.batching.clone());
        Self {
            inner: Arc::new(Inner {
                batcher,
                bounds,
                model: info,
                timeout: Duration::from_millis(config.limits.request_timeout_ms),
                queue_capacity: config.batching.queue_capacity,
            }),
        }
    }

    /// Whether the model worker is taking work.
    pub fn is_ready(&self) -> bool {
        self.inner.batcher.is_ready()
    }

    /// Queues work items for the model worker.
    pub(crate) fn submit(&self, items: Vec<WorkItem>) -> Result<Vec<Ticket>, BatchError> {
        self.inner.batcher.submit(items)
    }

    /// Every request's time budget.
    pub(crate) fn timeout(&self) -> Duration {
        self.inner.timeout
    }

    /// What the model and the limits allow a request.
    pub(crate) fn bounds(&self) -> &Bounds {
        &self.inner.bounds
    }

    /// The served model's name.
    pub(crate) fn model_name(&self) -> &str {
        &self.inner.model.name
    }

    /// What the served model is.
    pub(crate) fn model(&self) -> &ModelInfo {
        &self.inner.model
    }

    /// Runs `prepared` with `plans(i)` as series `i`'s plans: groups the series into work
    /// items, queues them, and waits for every answer until the request's deadline.
    pub(crate) async fn run(
        &self,
        prepared: &Prepared,
        plans: impl Fn(usize) -> Vec<Plan>,
        deadline: Instant,
    ) -> Result<Answers, Problem> {
        let inner = &self.inner;
        let (groups, items) = work_items(prepared, plans, deadline)?;
        let mut places = vec![(0, 0); prepared.series.len()];
        for (item, group) in groups.iter().enumerate() {
            for (window, &series) in group.iter().enumerate() {
                places[series] = (item, window);
            }
        }
        let tickets = inner.batcher.submit(items).map_err(|e| self.problem(e))?;
        let answers = async {
            let mut answers = Vec::with_capacity(tickets.len());
            for ticket in tickets {
                answers.push(ticket.answer().await.map_err(|e| self.problem(e))?);
            }
            Ok(answers)
        };
        let items = tokio::time::timeout_at(deadline.into(), answers)
            .await
            .unwrap_or_else(|_| Err(Problem::deadline(inner.timeout.as_millis() as u64)))?;
        Ok(Answers { items, places })
    }

    fn problem(&self, error: BatchError) -> Problem {
        match error {
            BatchError::Overloaded => Problem::overloaded(self.inner.queue_capacity),
            BatchError::Stopped => Problem::unavailable("the model worker has stopped"),
            BatchError::DeadlinePassed => Problem::deadline(self.inner.timeout.as_millis() as u64),
            BatchError::Model(message) => Problem::internal(message),
        }
    }
}

/// The model's answers to one request, found by series.
pub(crate) struct Answers {
    /// Per work item, its forecasts (one per plan).
    items: Vec<Vec<Forecast>>,
    /// Per series, its work item and its window in that item.
    places: Vec<(usize, usize)>,
}

impl Answers {
    /// Series `i`'s forecasts (one per plan) and its window in them.
    pub(crate) fn of(&self, i: usize) -> (&[Forecast], usize) {
        let (item, window) = self.places[i];
        (&self.items[item], window)
    }
}
