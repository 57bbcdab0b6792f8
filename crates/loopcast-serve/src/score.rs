//! Batch scoring (DESIGN.md §3): a forecast for every series of a telemetry file, as
//! long-format Parquet. Series are cut into chunks; each chunk's rows go to a part file
//! that appears complete or not at all, so a run stopped at any point (Ctrl-C, a crash, a
//! killed pod) resumes with the chunks it lacks, and the output, joined from the parts at
//! the end, has every row exactly once.
//!
//! The model is reached through the service's batcher: jobs of a running server queue
//! behind interactive requests, and `loopcast score` runs the very same path locally.

use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use loopcast_core::{ChannelMapping, Role};
use loopcast_data::{
    DataError, ForecastRows, ForecastWriter, Layout, Origins, ReadOptions, TelemetryReader, WindowBatch,
    WindowBatcher, WindowSpec, concat_parquet, parquet_rows,
};
use loopcast_eval::model_batch;
use loopcast_model::ModelBatch;
use serde::{Deserialize, Serialize};

use crate::api::{ComputeOptions, FORECAST_SCENARIO, MissingActionsInput, ScoreProgress};
use crate::batcher::{BatchError, WorkItem};
use crate::prepare::{channel_forecasts, levels, loops_per_step, options, step};
use crate::problem::Problem;
use crate::worker::Worker;

/// What to score and how.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScoreSpec {
    /// The telemetry file (Parquet, CSV or Arrow IPC; long layout, or wide with a mapping).
    pub input: PathBuf,
    /// One value per row (long) or one column per channel (wide, needs `mapping`).
    pub layout: Layout,
    /// Channel roles and column names; without it every channel of a long file is a
    /// target.
    pub mapping: Option<ChannelMapping>,
    /// Steps to forecast after each series' last observed target value.
    pub horizon: usize,
    /// Quantile levels of the output columns (default: the model's).
    pub quantiles: Option<Vec<f64>>,
    /// Loop limits and exit threshold.
    pub compute: ComputeOptions,
    /// Unknown future action cells.
    pub missing_actions: MissingActionsInput,
    /// Score only this shard of the series.
    pub shard: Option<Shard>,
}

/// Shard `index` of `count`: the series whose position in the file is `index` modulo
/// `count` (written `i/n`, as an Indexed Job's completion index and completions).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Shard {
    /// This shard, from 0.
    pub index: usize,
    /// Shards in all.
    pub count: usize,
}

impl FromStr for Shard {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let parsed = text.split_once('/').and_then(|(i, n)| Some((i.parse().ok()?, n.parse().ok()?)));
        match parsed {
            Some((index, count)) if index < count => Ok(Self { index, count }),
            _ => Err(format!("`{text}` is not a shard: write i/n with 0 ≤ i < n (e.g. 0/4)")),
        }
    }
}

/// Why a run stopped.
#[derive(Debug, thiserror::Error)]
pub enum ScoreError {
    /// The input could not be read, or the output not written (names file, column, row).
    #[error(transparent)]
    Data(#[from] DataError),
    /// A setting is not acceptable (named).
    #[error("{field}: {detail}")]
    Invalid {
        /// The setting.
        field: String,
        /// What is wrong.
        detail: String,
    },
    /// The model failed, or the service stopped.
    #[error("the model could not score: {0}")]
    Model(String),
    /// The work directory could not be used.
    #[error("{path}: {message}")]
    WorkDir {
        /// The directory or file.
        path: PathBuf,
        /// What failed.
        message: String,
    },
    /// Stopped on request; the chunks on disk are kept for a resume.
    #[error("stopped after {chunks} chunks; run again to resume")]
    Cancelled {
        /// Chunks on disk.
        chunks: u64,
    },
}

impl From<Problem> for ScoreError {
    fn from(problem: Problem) -> Self {
        Self::Invalid { field: problem.field.unwrap_or_else(|| "request".into()), detail: problem.detail }
    }
}

/// Where the part files of a run live, and the spec they were made with.
const SPEC_FILE: &str = "spec.json";

fn part_path(work_dir: &Path, chunk: u64) -> PathBuf {
    work_dir.join(format!("part-{chunk:06}.parquet"))
}

/// Scores `spec` into `output` through the model `worker`, `chunk_series` series per
/// part file in `work_dir`. Resumes from the parts there (they must come from the same
/// spec); removes them once `output` is complete. Stops between chunks once `cancel` is
/// set. `progress` hears after every chunk.
pub async fn score(
    worker: &Worker,
    spec: &ScoreSpec,
    work_dir: &Path,
    output: &Path,
    chunk_series: usize,
    cancel: &AtomicBool,
    progress: &mut (dyn FnMut(&ScoreProgress) + Send),
) -> Result<ScoreProgress, ScoreError> {
    let bounds = worker.bounds();
    bounds.check_horizon(spec.horizon)?;
    let levels = levels(spec.quantiles.as_deref(), bounds)?;
    let options = options(&spec.compute, spec.missing_actions, bounds)?;
    let read = ReadOptions { layout: spec.layout, mapping: spec.mapping.clone(), ..ReadOptions::default() };
    let mut reader = TelemetryReader::open(&spec.input, read).await?;
    claim_work_dir(work_dir, spec, chunk_series)?;
    let channels = reader.channels().to_vec();
    let targets: Vec<String> =
        channels.iter().filter(|c| c.role == Role::Target).map(|c| c.name.clone()).collect();
    if targets.is_empty() {
        return Err(ScoreError::Invalid {
            field: "mapping".into(),
            detail: format!("{}: no channel is a target: nothing to forecast", spec.input.display()),
        });
    }
    let window = WindowSpec { context: bounds.max_context, horizon: spec.horizon, origins: Origins::Last };
    let mut batcher = Some(WindowBatcher::new(window, &channels, chunk_series)?);
    let mut done = ScoreProgress { total_rows: reader.total_rows(), ..ScoreProgress::default() };
    let mut position = 0usize;
    let mut chunk =
        Chunker { worker, options, levels: &levels, targets: &targets, work_dir, horizon: spec.horizon };
    loop {
        let next = reader.next_series().await?;
        let batches = match &next {
            Some(series) => {
                let mine = spec.shard.is_none_or(|s| position % s.count == s.index);
                position += 1;
                if !mine {
                    continue;
                }
                done.series += 1;
                batcher.as_mut().expect("open until the input ends").push(series)
            }
            None => batcher.take().and_then(WindowBatcher::finish).into_iter().collect(),
        };
        for windows in batches {
            if cancel.load(Ordering::SeqCst) {
                return Err(ScoreError::Cancelled { chunks: done.chunks_done });
            }
            let frequency = reader.report().frequency.ok_or_else(|| ScoreError::Invalid {
                field: "input".into(),
                detail: format!("{}: no grid step could be found", spec.input.display()),
            })?;
            let (rows, resumed) = chunk.run(done.chunks_done, &windows, frequency, cancel).await?;
            done.windows += windows.len() as u64;
            done.chunks_done += 1;
            done.chunks_resumed += u64::from(resumed);
            done.rows_written += rows;
            done.rows_read = reader.report().rows;
            progress(&done);
        }
        if next.is_none() {
            break;
        }
    }
    done.rows_read = reader.report().rows;
    if done.chunks_done == 0 {
        return Err(ScoreError::Invalid {
            field: "input".into(),
            detail: format!(
                "{}: no series has an observed target value to forecast from",
                spec.input.display()
            ),
        });
    }
    let parts: Vec<PathBuf> = (0..done.chunks_done).map(|c| part_path(work_dir, c)).collect();
    let rows = concat_parquet(&parts, output)?;
    if rows != done.rows_written {
        return Err(ScoreError::WorkDir {
            path: work_dir.to_path_buf(),
            message: format!("the parts hold {rows} rows, {} were written", done.rows_written),
        });
    }
    std::fs::remove_dir_all(work_dir)
        .map_err(|e| ScoreError::WorkDir { path: work_dir.to_path_buf(), message: e.to_string() })?;
    progress(&done);
    Ok(done)
}

/// Creates `work_dir` for `spec` in chunks of `chunk_series`, or checks that the parts
/// already there were cut the same way.
fn claim_work_dir(work_dir: &Path, spec: &ScoreSpec, chunk_series: usize) -> Result<(), ScoreError> {
    let fail = |path: &Path, message: String| ScoreError::WorkDir { path: path.to_path_buf(), message };
    std::fs::create_dir_all(work_dir).map_err(|e| fail(work_dir, e.to_string()))?;
    let path = work_dir.join(SPEC_FILE);
    let fingerprint = serde_json::json!({"spec": spec, "chunk_series": chunk_series});
    let text = serde_json::to_string_pretty(&fingerprint).expect("a spec serialises");
    match std::fs::read_to_string(&path) {
        Ok(existing) if existing == text => Ok(()),
        Ok(_) => Err(fail(
            &path,
            "holds the parts of a run with other settings; remove the directory to start over".into(),
        )),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let temporary = work_dir.join(format!(".{SPEC_FILE}.tmp"));
            std::fs::write(&temporary, text).map_err(|e| fail(&temporary, e.to_string()))?;
            std::fs::rename(&temporary, &path).map_err(|e| fail(&path, e.to_string()))
        }
        Err(e) => Err(fail(&path, e.to_string())),
    }
}

/// Scores one chunk of windows into its part file.
struct Chunker<'a> {
    worker: &'a Worker,
    options: loopcast_model::ForecastOptions,
    levels: &'a [f64],
    targets: &'a [String],
    work_dir: &'a Path,
    horizon: usize,
}

impl Chunker<'_> {
    /// Writes chunk `index` unless its part is on disk already; returns its rows and
    /// whether it was found on disk.
    async fn run(
        &mut self,
        index: u64,
        windows: &WindowBatch,
        frequency: loopcast_core::Frequency,
        cancel: &AtomicBool,
    ) -> Result<(u64, bool), ScoreError> {
        let path = part_path(self.work_dir, index);
        if path.exists() {
            return Ok((parquet_rows(&path)?, true));
        }
        let batch = model_batch(windows, frequency.season()).map_err(|e| ScoreError::Model(e.to_string()))?;
        let forecast = self.forecast(batch, cancel, index).await?;
        let patch_len = self.worker.bounds().patch_len;
        let mut writer = ForecastWriter::create(&path, self.levels)?;
        for (b, series_id) in windows.series.iter().enumerate() {
            let timestamps: Vec<i64> =
                (0..self.horizon).map(|h| step(windows.origins[b], frequency, h)).collect();
            let loops = loops_per_step(&forecast, b, patch_len, self.horizon);
            let answers = channel_forecasts(&forecast, b, self.targets, self.levels, self.horizon);
            let quantiles: Vec<Vec<Vec<f64>>> =
                answers.iter().map(|c| c.quantiles.iter().map(|q| q.values.clone()).collect()).collect();
            let rows: Vec<ForecastRows<'_>> = answers
                .iter()
                .zip(&quantiles)
                .map(|(channel, quantiles)| ForecastRows {
                    series_id,
                    channel: &channel.name,
                    scenario: FORECAST_SCENARIO,
                    timestamps: &timestamps,
                    quantiles,
                    mean: &channel.mean,
                    loops: &loops,
                })
                .collect();
            writer.write(&rows)?;
        }
        Ok((writer.finish()?, false))
    }

    /// The batch's forecast from the model worker; waits while the queue is full (a job
    /// yields to interactive requests rather than failing).
    async fn forecast(
        &self,
        batch: ModelBatch,
        cancel: &AtomicBool,
        index: u64,
    ) -> Result<loopcast_model::Forecast, ScoreError> {
        let (values, known) = batch.future_arrays();
        let plan = (values.to_vec(), known.to_vec());
        loop {
            let item = WorkItem {
                batch: batch.clone(),
                plans: vec![plan.clone()],
                options: self.options.clone(),
                deadline: Instant::now() + Duration::from_secs(3600),
            };
            match self.worker.submit(vec![item]) {
                Ok(mut tickets) => {
                    let ticket = tickets.pop().expect("one ticket per item");
                    return match ticket.answer().await {
                        Ok(mut forecasts) => Ok(forecasts.remove(0)),
                        Err(e) => Err(ScoreError::Model(e.to_string())),
                    };
                }
                Err(BatchError::Overloaded) => {
                    if cancel.load(Ordering::SeqCst) {
                        return Err(ScoreError::Cancelled { chunks: index });
                    }
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                Err(e) => return Err(ScoreError::Model(e.to_string())),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shards_parse_as_index_over_count() {
        assert_eq!("1/4".parse::<Shard>(), Ok(Shard { index: 1, count: 4 }));
        for bad in ["4/4", "1", "a/2", "1/0", "-1/3"] {
            assert!(bad.parse::<Shard>().is_err(), "{bad}");
        }
    }
}
