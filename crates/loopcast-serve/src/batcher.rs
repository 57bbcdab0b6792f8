//! The dynamic batcher: handlers queue work items (windows with their action plans); one
//! worker thread, off the async runtime, takes what is queued within a few milliseconds,
//! groups items of the same shape into one model call, and answers each item on its own
//! channel. The queue is bounded by a slot count: a request that does not fit is refused
//! at once (503), never parked. Items whose caller has gone (client gone, deadline
//! passed) are dropped before they cost any compute.

use std::collections::VecDeque;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender, channel};
use std::time::{Duration, Instant};

use loopcast_model::{Forecast, ForecastOptions, LoopedWorldModel, ModelBatch};
use tokio::sync::oneshot;

use crate::config::Batching;
use crate::metrics;

/// Future values and known-masks of one plan, `[B, C, H]` like the batch's own future.
pub type Plan = (Vec<f32>, Vec<bool>);

/// Why an item got no forecast.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum BatchError {
    /// Every queue slot is taken.
    #[error("the queue is full")]
    Overloaded,
    /// The worker has stopped (shutdown, or a fault).
    #[error("the model worker has stopped")]
    Stopped,
    /// The item's deadline passed before the worker reached it.
    #[error("the deadline passed in the queue")]
    DeadlinePassed,
    /// The model refused the input or failed.
    #[error("{0}")]
    Model(String),
}

/// Windows that share roles, context and horizon, with `K` plans for their future.
#[derive(Debug)]
pub struct WorkItem {
    /// The windows (their own future is not read: `plans` carries it).
    pub batch: ModelBatch,
    /// `K` plans, each shaped like the batch's future.
    pub plans: Vec<Plan>,
    /// Loop control and missing-action policy.
    pub options: ForecastOptions,
    /// Past this instant the caller no longer waits.
    pub deadline: Instant,
}

impl WorkItem {
    /// Windows the model runs for the item: each plan's, and each backtest's.
    fn windows(&self) -> usize {
        self.batch.batch() * (self.plans.len() + self.options.series_calibration)
    }

    /// Items that can run in one model call.
    fn fits_with(&self, other: &WorkItem) -> bool {
        self.batch.roles() == other.batch.roles()
            && self.batch.context() == other.batch.context()
            && self.batch.horizon() == other.batch.horizon()
            && self.plans.len() == other.plans.len()
            && self.options == other.options
    }
}

type Reply = oneshot::Sender<Result<Vec<Forecast>, BatchError>>;

/// A queue slot: released once, by the worker when it takes the item or by the caller
/// when it stops waiting (so a cancelled request frees its slot at once).
#[derive(Debug)]
struct Slot {
    released: AtomicBool,
    queued: Arc<AtomicUsize>,
}

impl Slot {
    fn release(&self) {
        if !self.released.swap(true, Ordering::AcqRel) {
            self.queued.fetch_sub(1, Ordering::AcqRel);
            metrics::queue_depth(self.queued.load(Ordering::Acquire));
        }
    }
}

/// A queued item's answer, to await; dropping it cancels the item.
#[derive(Debug)]
pub struct Ticket {
    receiver: oneshot::Receiver<Result<Vec<Forecast>, BatchError>>,
    slot: Arc<Slot>,
}

impl Ticket {
    /// The item's forecasts, one per plan.
    pub async fn answer(mut self) -> Result<Vec<Forecast>, BatchError> {
        (&mut self.receiver).await.unwrap_or(Err(BatchError::Stopped))
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        self.slot.release();
    }
}

/// What travels to the worker with an item.
struct Queued {
    item: WorkItem,
    reply: Reply,
    slot: Arc<Slot>,
}

/// The handle handlers submit through; cheap to clone.
#[derive(Debug, Clone)]
pub struct Batcher {
    sender: Sender<Queued>,
    queued: Arc<AtomicUsize>,
    ready: Arc<AtomicBool>,
    capacity: usize,
}

impl Batcher {
    /// Starts the worker thread that owns `model`.
    pub fn start(model: LoopedWorldModel, config: Batching) -> Self {
        let (sender, receiver) = channel();
        let queued = Arc::new(AtomicUsize::new(0));
        let ready = Arc::new(AtomicBool::new(false));
        let worker = Worker { model, config: config.clone(), ready: ready.clone() };
        std::thread::Builder::new()
            .name("loopcast-model".into())
            .spawn(move || worker.run(receiver))
            .expect("the model thread starts");
        Self { sender, queued, ready, capacity: config.queue_capacity }
    }

    /// Whether the worker has warmed up and is taking work.
    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Acquire)
    }

    /// Items waiting for the worker.
    pub fn queued(&self) -> usize {
        self.queued.load(Ordering::Acquire)
    }

    /// Queues `items` all or none: each takes a slot until the worker picks it up or its
    /// ticket is dropped. The tickets answer in the same order.
    pub fn submit(&self, items: Vec<WorkItem>) -> Result<Vec<Ticket>, BatchError> {
        let n = items.len();
        self.queued
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |q| (q + n <= self.capacity).then_some(q + n))
            .map_err(|_| BatchError::Overloaded)?;
        metrics::queue_depth(self.queued());
        let slots: Vec<Arc<Slot>> = (0..n)
            .map(|_| Arc::new(Slot { released: AtomicBool::new(false), queued: self.queued.clone() }))
            .collect();
        let mut tickets = Vec::with_capacity(n);
        for (item, slot) in items.into_iter().zip(slots) {
            let (reply, receiver) = oneshot::channel();
            // The ticket exists before the send, so a failed send still frees the slot.
            tickets.push(Ticket { receiver, slot: slot.clone() });
            if self.sender.send(Queued { item, reply, slot }).is_err() {
                return Err(BatchError::Stopped);
            }
        }
        Ok(tickets)
    }
}

struct Worker {
    model: LoopedWorldModel,
    config: Batching,
    ready: Arc<AtomicBool>,
}

impl Worker {
    fn run(self, receiver: Receiver<Queued>) {
        self.warm_up();
        self.ready.store(true, Ordering::Release);
        let wait = Duration::from_millis(self.config.max_wait_ms);
        // Items in the last model call: more than one means requests arrive together, and
        // waiting a little for the rest of them pays.
        let mut last_items = 1;
        while let Ok(first) = receiver.recv() {
            first.slot.release();
            let mut pending = VecDeque::from([first]);
            if self.config.enabled {
                let mut windows = pending[0].item.windows();
                // What queued up while the last call ran joins at once; then, under
                // concurrent load only, up to `max_wait` more.
                let until = Instant::now() + if last_items > 1 { wait } else { Duration::ZERO };
                while windows < self.config.max_batch_windows {
                    let left = until.saturating_duration_since(Instant::now());
                    let next = if left.is_zero() {
                        receiver.try_recv().map_err(|_| RecvTimeoutError::Timeout)
                    } else {
                        receiver.recv_timeout(left)
                    };
                    match next {
                        Ok(queued) => {
                            queued.slot.release();
                            windows += queued.item.windows();
                            pending.push_back(queued);
                        }
                        Err(RecvTimeoutError::Timeout | RecvTimeoutError::Disconnected) => break,
                    }
                }
            }
            last_items = pending.len();
            let now = Instant::now();
            let (live, expired): (VecDeque<Queued>, VecDeque<Queued>) = pending
                .into_iter()
                .filter(|queued| !queued.reply.is_closed())
                .partition(|q| q.item.deadline > now);
            for queued in expired {
                let _ = queued.reply.send(Err(BatchError::DeadlinePassed));
            }
            self.run_groups(live);
        }
        self.ready.store(false, Ordering::Release);
    }

    /// Runs `pending` as few model calls as shapes allow, each at most
    /// `max_batch_windows` windows (a larger single item runs alone).
    fn run_groups(&self, mut pending: VecDeque<Queued>) {
        let limit = if self.config.enabled { self.config.max_batch_windows } else { 0 };
        while let Some(first) = pending.pop_front() {
            let mut windows = first.item.windows();
            let mut group = vec![first];
            let mut rest = VecDeque::with_capacity(pending.len());
            for queued in pending {
                if queued.item.fits_with(&group[0].item) && windows + queued.item.windows() <= limit {
                    windows += queued.item.windows();
                    group.push(queued);
                } else {
                    rest.push_back(queued);
                }
            }
            pending = rest;
            self.run_group(group, windows);
        }
    }

    fn run_group(&self, group: Vec<Queued>, windows: usize) {
        metrics::batch(windows, group.len());
        let (items, replies): (Vec<WorkItem>, Vec<Reply>) =
            group.into_iter().map(|q| (q.item, q.reply)).unzip();
        let result = catch_unwind(AssertUnwindSafe(|| self.forecast(&items)))
            .unwrap_or_else(|_| Err(BatchError::Model("the model failed on this batch".into())));
        match result {
            Ok(per_item) => {
                for (forecasts, reply) in per_item.into_iter().zip(replies) {
                    for forecast in &forecasts {
                        metrics::loops(&forecast.loops);
                    }
                    let _ = reply.send(Ok(forecasts));
                }
            }
            Err(error) => {
                for reply in replies {
                    let _ = reply.send(Err(error.clone()));
                }
            }
        }
    }

    /// One model call for `items` (same shape): windows concatenated, plan by plan;
    /// answers split back per item, plan by plan.
    fn forecast(&self, items: &[WorkItem]) -> Result<Vec<Vec<Forecast>>, BatchError> {
        let model_error = |e: loopcast_model::ModelError| BatchError::Model(e.to_string());
        let batches: Vec<&ModelBatch> = items.iter().map(|i| &i.batch).collect();
        let batch = ModelBatch::concat(&batches).map_err(model_error)?;
        let k = items[0].plans.len();
        let plans: Vec<Plan> = (0..k)
            .map(|plan| {
                let values = items.iter().flat_map(|i| i.plans[plan].0.iter().copied()).collect();
                let known = items.iter().flat_map(|i| i.plans[plan].1.iter().copied()).collect();
                (values, known)
            })
            .collect();
        let forecasts = self.model.whatif(&batch, &plans, &items[0].options).map_err(model_error)?;
        let sizes: Vec<usize> = items.iter().map(|i| i.batch.batch()).collect();
        let split: Vec<Vec<Forecast>> = forecasts.iter().map(|f| f.split(&sizes)).collect();
        Ok((0..items.len()).map(|item| split.iter().map(|plan| plan[item].clone()).collect()).collect())
    }

    /// One small forecast before the service reports ready, so the first request does
    /// not pay for lazy initialisation.
    fn warm_up(&self) {
        let config = self.model.config();
        let (context, horizon) = (2 * config.patch_len, config.patch_len);
        let values: Vec<f32> = (0..context).map(|t| (t as f32 / 4.0).sin()).collect();
        let batch = ModelBatch::new(
            vec![loopcast_core::Role::Target],
            1,
            context,
            horizon,
            values,
            vec![true; context],
            vec![0.0; horizon],
            vec![false; horizon],
        );
        if let Ok(batch) = batch {
            let _ = self.model.forecast(&batch, &ForecastOptions::default());
        }
    }
}
