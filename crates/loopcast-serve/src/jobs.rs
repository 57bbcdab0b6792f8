//! Batch-scoring jobs: submitted over HTTP, run one at a time by a runner task through
//! the model worker, their state persisted under `<data_dir>/jobs/<id>/job.json` (written
//! atomically at every change). A server that stops mid-job (a crash, a killed pod, a
//! restart) finds the job on start, queues it again, and [`crate::score`] resumes it from
//! the chunks already on disk.

use std::collections::{BTreeMap, HashMap};
use std::io::Write;
use std::path::{Component, Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use axum::body::{Body, Bytes};
use chrono::Utc;
use futures::StreamExt;
use tokio::sync::mpsc;

use loopcast_core::{ChannelEntry, ChannelMapping};

use crate::api::{
    ChannelEntryInput, Job, JobRequest, JobState, MappingInput, ScoreProgress, TableLayout, Upload,
};
use crate::config::Jobs as JobsConfig;
use crate::data_dir::{DataDir, UPLOADS, pin};
use crate::metrics;
use crate::problem::Problem;
use crate::score::{ScoreError, ScoreSpec, score};
use crate::worker::Worker;

/// Extensions an input file may have.
const INPUT_EXTENSIONS: [&str; 5] = ["parquet", "csv", "arrow", "arrows", "ipc"];
/// Bytes gathered before an upload writes to disk.
const UPLOAD_BUFFER: usize = 4 << 20;
/// Bytes of a refused upload read (and dropped) before the 413 goes out.
const UPLOAD_DRAIN: usize = 16 << 20;

/// The job table, its files, and the queue of the runner.
#[derive(Debug, Clone)]
pub(crate) struct JobManager {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    data: DataDir,
    chunk_series: usize,
    max_upload_bytes: usize,
    jobs: Mutex<BTreeMap<String, Job>>,
    cancels: Mutex<HashMap<String, Arc<AtomicBool>>>,
    queue: mpsc::UnboundedSender<String>,
    sequence: AtomicU64,
}

impl JobManager {
    /// Loads the jobs under `config.data_dir`, queues the unfinished ones again (oldest
    /// first), and starts the runner on the model `worker`.
    pub(crate) fn start(worker: Worker, config: &JobsConfig) -> Self {
        let (queue, receiver) = mpsc::unbounded_channel();
        let manager = Self {
            inner: Arc::new(Inner {
                data: DataDir::new(config.data_dir.clone()),
                chunk_series: config.chunk_series,
                max_upload_bytes: config.max_upload_bytes,
                jobs: Mutex::new(BTreeMap::new()),
                cancels: Mutex::new(HashMap::new()),
                queue,
                sequence: AtomicU64::new(0),
            }),
        };
        let mut unfinished = Vec::new();
        for mut job in manager.load() {
            if !job.state.is_final() {
                job.state = JobState::Queued;
                unfinished.push((job.created, job.id.clone()));
            }
            manager.inner.jobs.lock().expect("job table").insert(job.id.clone(), job);
        }
        unfinished.sort();
        for (_, id) in unfinished {
            tracing::info!(job = %id, "resuming an unfinished job");
            let _ = manager.inner.queue.send(id);
        }
        tokio::spawn(runner(worker, manager.clone(), receiver));
        manager
    }

    fn jobs_dir(&self) -> PathBuf {
        self.inner.data.path().join("jobs")
    }

    fn job_dir(&self, id: &str) -> PathBuf {
        self.jobs_dir().join(id)
    }

    /// Every readable `job.json` on disk; unreadable ones are logged and left alone.
    fn load(&self) -> Vec<Job> {
        let Ok(entries) = std::fs::read_dir(self.jobs_dir()) else { return Vec::new() };
        let mut jobs = Vec::new();
        for entry in entries.flatten() {
            let path = entry.path().join("job.json");
            match std::fs::read(&path)
                .map_err(|e| e.to_string())
                .and_then(|bytes| serde_json::from_slice::<Job>(&bytes).map_err(|e| e.to_string()))
            {
                Ok(job) => jobs.push(job),
                Err(e) if path.exists() => tracing::warn!(path = %path.display(), "skipping a job: {e}"),
                Err(_) => {}
            }
        }
        jobs
    }

    /// Writes `job` to its `job.json` atomically.
    fn persist(&self, job: &Job) -> std::io::Result<()> {
        let dir = self.job_dir(&job.id);
        std::fs::create_dir_all(&dir)?;
        let temporary = dir.join(".job.json.tmp");
        let mut file = std::fs::File::create(&temporary)?;
        file.write_all(&serde_json::to_vec_pretty(job).expect("a job serialises"))?;
        file.sync_all()?;
        std::fs::rename(&temporary, dir.join("job.json"))
    }

    /// Applies `change` to job `id` if it says so, persists, and returns the job.
    fn update(&self, id: &str, change: impl FnOnce(&mut Job) -> bool) -> Option<Job> {
        let mut jobs = self.inner.jobs.lock().expect("job table");
        let job = jobs.get_mut(id)?;
        if change(job) {
            job.updated = Utc::now();
            if let Err(e) = self.persist(job) {
                tracing::error!(job = %id, "cannot save the job's state: {e}");
            }
        }
        Some(job.clone())
    }

    /// Checks and queues a job.
    pub(crate) fn submit(&self, request: JobRequest) -> Result<Job, Problem> {
        if request.layout == TableLayout::Wide && request.mapping.is_none() {
            return Err(Problem::invalid(
                "mapping",
                "a wide table needs a mapping naming each column's role",
            ));
        }
        job_mapping(request.mapping.as_ref())?;
        let extension = checked_input(&request.input)?;
        // Opened beneath the data directory now, and pinned before the job exists: what
        // the job reads can no longer change or lead out.
        let input = self.inner.data.open_input("input", &request.input)?;
        let now = Utc::now();
        let id = format!(
            "{}-{}",
            now.format("%Y%m%dT%H%M%S%3f"),
            self.inner.sequence.fetch_add(1, Ordering::Relaxed)
        );
        let dir = self.job_dir(&id);
        if let Err(e) = std::fs::create_dir_all(&dir).and_then(|()| pin(&input, &pinned(&dir, &extension))) {
            let _ = std::fs::remove_dir_all(&dir);
            return Err(Problem::internal(format!("cannot pin the job's input: {e}")));
        }
        let job = Job {
            id: id.clone(),
            state: JobState::Queued,
            request,
            created: now,
            updated: now,
            progress: ScoreProgress::default(),
            starts: 0,
            error: None,
            output: None,
        };
        self.persist(&job).map_err(|e| Problem::internal(format!("cannot save the job: {e}")))?;
        self.inner.jobs.lock().expect("job table").insert(id.clone(), job.clone());
        self.inner.queue.send(id).map_err(|_| Problem::unavailable("the job runner has stopped"))?;
        Ok(job)
    }

    /// Job `id`.
    pub(crate) fn get(&self, id: &str) -> Result<Job, Problem> {
        let jobs = self.inner.jobs.lock().expect("job table");
        jobs.get(id).cloned().ok_or_else(|| Problem::not_found(format!("no job `{id}`")))
    }

    /// Every job, oldest first.
    pub(crate) fn list(&self) -> Vec<Job> {
        let mut jobs: Vec<Job> = self.inner.jobs.lock().expect("job table").values().cloned().collect();
        jobs.sort_by(|a, b| a.created.cmp(&b.created).then(a.id.cmp(&b.id)));
        jobs
    }

    /// Cancels job `id`: at once when queued, at its next chunk when running.
    pub(crate) fn cancel(&self, id: &str) -> Result<Job, Problem> {
        let job = self.get(id)?;
        if job.state.is_final() {
            return Err(Problem::conflict(
                "id",
                format!("job `{id}` has already ended ({})", job.state.as_str()),
            ));
        }
        self.flag(id).store(true, Ordering::SeqCst);
        let dir = self.job_dir(id);
        let parts = dir.join("parts");
        let job = self
            .update(id, |job| {
                if job.state == JobState::Queued {
                    // The parts go before the state turns final, so a client that sees
                    // `cancelled` never sees them.
                    let _ = std::fs::remove_dir_all(&parts);
                    if let Ok(extension) = checked_input(&job.request.input) {
                        let _ = std::fs::remove_file(pinned(&dir, &extension));
                    }
                    job.state = JobState::Cancelled;
                    true
                } else {
                    false
                }
            })
            .expect("the job exists");
        Ok(job)
    }

    fn flag(&self, id: &str) -> Arc<AtomicBool> {
        self.inner.cancels.lock().expect("cancel flags").entry(id.to_string()).or_default().clone()
    }

    /// The output file of a job that succeeded.
    pub(crate) fn output(&self, id: &str) -> Result<PathBuf, Problem> {
        let job = self.get(id)?;
        if job.state != JobState::Succeeded {
            return Err(Problem::conflict(
                "id",
                format!("job `{id}` has no output yet ({})", job.state.as_str()),
            ));
        }
        Ok(self.job_dir(id).join("output.parquet"))
    }

    /// Stores an uploaded file as `uploads/<name>` (atomically: it appears whole or not at
    /// all), refusing it past `max_upload_bytes`.
    pub(crate) async fn upload(&self, name: &str, body: Body) -> Result<Upload, Problem> {
        let safe = !name.is_empty()
            && name.len() <= 128
            && !name.starts_with('.')
            && name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
        if !safe {
            return Err(Problem::invalid(
                "name",
                format!("`{name}` must be 1 to 128 letters, digits, `.`, `_` or `-`, not starting with `.`"),
            ));
        }
        // A job can read nothing else.
        checked_input(name).map_err(|p| p.moved("input", "name"))?;
        let sequence = self.inner.sequence.fetch_add(1, Ordering::Relaxed);
        let mut staged = self.inner.data.stage_upload("name", name, sequence)?;
        let internal = |e: std::io::Error| Problem::internal(format!("cannot store the upload: {e}"));
        let mut stream = body.into_data_stream();
        let (mut buffer, mut bytes) = (Vec::with_capacity(UPLOAD_BUFFER), 0u64);
        loop {
            let chunk = stream.next().await;
            if let Some(chunk) = &chunk {
                let chunk: &Bytes =
                    chunk.as_ref().map_err(|e| Problem::malformed(format!("the upload broke off: {e}")))?;
                bytes += chunk.len() as u64;
                if bytes > self.inner.max_upload_bytes as u64 {
                    // Read a little more before answering, so that a client still sending
                    // gets the 413 rather than a reset connection.
                    let mut drained = 0;
                    while drained < UPLOAD_DRAIN {
                        match stream.next().await {
                            Some(Ok(more)) => drained += more.len(),
                            _ => break,
                        }
                    }
                    return Err(Problem::too_large_upload(self.inner.max_upload_bytes));
                }
                buffer.extend_from_slice(chunk);
            }
            if buffer.len() >= UPLOAD_BUFFER || (chunk.is_none() && !buffer.is_empty()) {
                let (mut open, data) =
                    (staged.take_file().expect("the file is open"), std::mem::take(&mut buffer));
                open = tokio::task::spawn_blocking(move || open.write_all(&data).map(|()| open))
                    .await
                    .map_err(|e| Problem::internal(e.to_string()))?
                    .map_err(internal)?;
                staged.put_file(open);
            }
            if chunk.is_none() {
                break;
            }
        }
        if bytes == 0 {
            return Err(Problem::invalid("body", "the upload is empty: send the file's bytes as the body"));
        }
        // Dropped unfinished (an error above, a client gone), the staged file is removed.
        tokio::task::spawn_blocking(move || staged.commit())
            .await
            .map_err(|e| Problem::internal(e.to_string()))?
            .map_err(internal)?;
        Ok(Upload { input: format!("{UPLOADS}/{name}"), bytes })
    }

    /// Runs job `id` if it is still queued.
    async fn run(&self, worker: &Worker, id: &str) {
        let Some(job) = self.update(id, |job| {
            if job.state != JobState::Queued {
                return false;
            }
            job.state = JobState::Running;
            job.starts += 1;
            true
        }) else {
            return;
        };
        if job.state != JobState::Running {
            return;
        }
        let dir = self.job_dir(id);
        let input = match self.pinned_input(&job) {
            Ok(input) => input,
            Err(problem) => {
                self.end(id, Err(problem.into()), None);
                return;
            }
        };
        let result = self.score_job(worker, &job, input.clone()).await;
        if matches!(result, Err(ScoreError::Cancelled { .. })) {
            // Removed before the state turns final, so a client that sees `cancelled`
            // never sees them.
            let _ = std::fs::remove_dir_all(dir.join("parts"));
        }
        self.end(id, result, Some(&input));
        // An ended job never reads its input again (removed once the end is on disk: a
        // server stopping in between leaves a pin behind, never a running job without one).
        let _ = std::fs::remove_file(&input);
    }

    /// The pinned input of `job`, pinned now for a job submitted before pins existed.
    fn pinned_input(&self, job: &Job) -> Result<PathBuf, Problem> {
        let extension = checked_input(&job.request.input)?;
        let path = pinned(&self.job_dir(&job.id), &extension);
        if !path.exists() {
            // Parts a server before pins left were scored from the named file, under
            // another spec: the job starts over from its pin.
            let _ = std::fs::remove_dir_all(self.job_dir(&job.id).join("parts"));
            let input = self.inner.data.open_input("input", &job.request.input)?;
            pin(&input, &path).map_err(|e| Problem::internal(format!("cannot pin the job's input: {e}")))?;
        }
        Ok(path)
    }

    /// Records how job `id` ended; an error that names the job's pinned input `pin` names
    /// the file the client named instead.
    fn end(&self, id: &str, result: Result<ScoreProgress, ScoreError>, pin: Option<&Path>) {
        self.update(id, |job| {
            match result {
                Ok(done) => {
                    job.state = JobState::Succeeded;
                    job.progress = done;
                    job.output = Some(format!("/v1/jobs/{id}/output"));
                }
                Err(ScoreError::Cancelled { .. }) => job.state = JobState::Cancelled,
                Err(e) => {
                    job.state = JobState::Failed;
                    let message = e.to_string();
                    job.error = Some(match pin {
                        Some(pin) => message.replace(&pin.display().to_string(), &job.request.input),
                        None => message,
                    });
                }
            }
            true
        });
        self.inner.cancels.lock().expect("cancel flags").remove(id);
        if let Ok(job) = self.get(id) {
            metrics::job_ended(job.state.as_str());
        }
    }

    /// Scores `job`'s `input` (resolved) through the model `worker` into its folder,
    /// its progress kept in the job table as each chunk lands.
    async fn score_job(
        &self,
        worker: &Worker,
        job: &Job,
        input: PathBuf,
    ) -> Result<ScoreProgress, ScoreError> {
        let (id, request, dir) = (&job.id, &job.request, self.job_dir(&job.id));
        let spec = ScoreSpec {
            input,
            layout: request.layout.into(),
            mapping: job_mapping(request.mapping.as_ref())?,
            horizon: request.horizon,
            quantiles: request.quantiles.clone(),
            compute: request.compute.clone(),
            missing_actions: request.missing_actions,
            shard: None,
        };
        let cancel = self.flag(id);
        let manager = self.clone();
        let owned = id.to_string();
        let mut rows = job.progress.rows_written;
        let mut progress = move |p: &ScoreProgress| {
            metrics::job_chunk(p.rows_written.saturating_sub(rows));
            rows = p.rows_written;
            manager.update(&owned, |job| {
                job.progress = p.clone();
                true
            });
        };
        let output = dir.join("output.parquet");
        score(worker, &spec, &dir.join("parts"), &output, self.inner.chunk_series, &cancel, &mut progress)
            .await
    }
}

/// The extension of job input `input` once it is known to be a relative path inside the
/// data directory, without `..`, naming a telemetry file.
fn checked_input(input: &str) -> Result<String, Problem> {
    let relative = Path::new(input);
    if input.is_empty() || !relative.components().all(|c| matches!(c, Component::Normal(_))) {
        return Err(Problem::invalid(
            "input",
            format!("`{input}` must be a relative path inside the data directory, without `..`"),
        ));
    }
    let extension = relative.extension().and_then(|e| e.to_str()).unwrap_or("").to_ascii_lowercase();
    if !INPUT_EXTENSIONS.contains(&extension.as_str()) {
        return Err(Problem::invalid(
            "input",
            format!("`{input}` is not a telemetry file (.parquet, .csv, .arrow, .arrows or .ipc)"),
        ));
    }
    Ok(extension)
}

/// A job request's mapping as the reader takes it, its frequency checked against the
/// API's grammar (named `mapping.frequency`).
fn job_mapping(mapping: Option<&MappingInput>) -> Result<Option<ChannelMapping>, Problem> {
    let Some(mapping) = mapping else { return Ok(None) };
    let frequency = match &mapping.frequency {
        Some(text) => Some(crate::frequency_field::parse("mapping.frequency", text)?),
        None => None,
    };
    let channels = mapping
        .channels
        .iter()
        .map(|(name, entry)| {
            let entry = match entry {
                ChannelEntryInput::Role(role) => ChannelEntry::Role((*role).into()),
                ChannelEntryInput::Detailed(settings) => ChannelEntry::Detailed {
                    role: settings.role.into(),
                    aggregation: settings.aggregation.map(Into::into),
                    known_future: settings.known_future,
                },
            };
            (name.clone(), entry)
        })
        .collect();
    Ok(Some(ChannelMapping {
        series_id: mapping.series_id.clone(),
        timestamp: mapping.timestamp.clone(),
        frequency,
        channels,
    }))
}

/// Where a job in `job_dir` keeps its pinned input (the extension tells the reader the
/// format).
fn pinned(job_dir: &Path, extension: &str) -> PathBuf {
    job_dir.join(format!("input.{extension}"))
}

/// Runs queued jobs one at a time, for as long as the service runs.
async fn runner(worker: Worker, manager: JobManager, mut queue: mpsc::UnboundedReceiver<String>) {
    while let Some(id) = queue.recv().await {
        manager.run(&worker, &id).await;
    }
}
