//! Checkpoints of a training run: the weights, the optimiser's state and the run's
//! progress written atomically, the best validation's model beside them, the metrics log,
//! and resumption from them.

use std::collections::BTreeSet;
use std::fs::{self, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use burn::optim::ModuleOptimizer;
use burn::tensor::Device;
use loopcast_model::{LoopedWorldModel, Network};
use serde::{Deserialize, Serialize};

use crate::trainer::{inference_model, optimizer, stable_ids};
use crate::{LogLine, TrainConfig, TrainError, ValidationReport};

/// The run's progress kept beside every checkpoint.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct RunState {
    step: u64,
    config: serde_json::Value,
    wall_seconds: f64,
}

pub(crate) const CHECKPOINTS: &str = "checkpoints";
const LATEST: &str = "LATEST";
/// The file in `checkpoints/` naming the directory of the best validation's model.
const BEST: &str = "BEST";
pub(crate) const LOG: &str = "metrics.jsonl";

pub(crate) fn io(path: &Path, e: impl std::fmt::Display) -> TrainError {
    TrainError::Io { path: path.to_path_buf(), message: e.to_string() }
}

pub(crate) fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), TrainError> {
    let temporary = path.with_extension(format!("tmp-{}", std::process::id()));
    let mut file = fs::File::create(&temporary).map_err(|e| io(&temporary, e))?;
    file.write_all(bytes).and_then(|()| file.sync_all()).map_err(|e| io(&temporary, e))?;
    fs::rename(&temporary, path).map_err(|e| io(path, e))
}

pub(crate) fn append_log(out: &Path, line: &LogLine) -> Result<(), TrainError> {
    let path = out.join(LOG);
    let mut file = OpenOptions::new().create(true).append(true).open(&path).map_err(|e| io(&path, e))?;
    let text = serde_json::to_string(line).expect("a log line serialises");
    writeln!(file, "{text}").map_err(|e| io(&path, e))
}

/// Writes the weights, the optimiser's state and the run state into a fresh directory,
/// then points `LATEST` at it (an atomic rename), then removes older checkpoints. A crash
/// at any moment leaves `LATEST` pointing at a complete checkpoint.
pub(crate) fn save_checkpoint(
    out: &Path,
    network: &Network,
    optimizer: &ModuleOptimizer,
    config: &TrainConfig,
    device: &Device,
    step: u64,
    wall_seconds: f64,
) -> Result<(), TrainError> {
    let root = out.join(CHECKPOINTS);
    let name = format!("step-{step:09}");
    let dir = fresh_dir(&root, &name)?;
    inference_model(network, config, device).save(dir.join("model"))?;
    let optimizer_path = dir.join("optimizer.bpk");
    optimizer.save(&optimizer_path).map_err(|e| io(&optimizer_path, format!("{e:?}")))?;
    let state =
        RunState { step, config: serde_json::to_value(config).expect("a config serialises"), wall_seconds };
    write_atomic(&dir.join("state.json"), &serde_json::to_vec_pretty(&state).expect("serialises"))?;
    point_at(&root, LATEST, &name, "step-")
}

/// `root/name`, emptied if it exists (a checkpoint of the same step written before a crash).
fn fresh_dir(root: &Path, name: &str) -> Result<PathBuf, TrainError> {
    let dir = root.join(name);
    if dir.exists() {
        fs::remove_dir_all(&dir).map_err(|e| io(&dir, e))?;
    }
    fs::create_dir_all(&dir).map_err(|e| io(&dir, e))?;
    Ok(dir)
}

/// Points the file `pointer` in `root` at the complete directory `name` (an atomic
/// rename), then removes the other directories whose names start with `prefix`.
fn point_at(root: &Path, pointer: &str, name: &str, prefix: &str) -> Result<(), TrainError> {
    write_atomic(&root.join(pointer), name.as_bytes())?;
    for entry in fs::read_dir(root).map_err(|e| io(root, e))?.flatten() {
        let other = entry.file_name().to_string_lossy().to_string();
        if other.starts_with(prefix) && other != name {
            let _ = fs::remove_dir_all(entry.path());
        }
    }
    Ok(())
}

/// The validation kept by `validation.keep_best`: its step and scores.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Best {
    pub(crate) step: u64,
    /// What the run ranked it by (`TrainOptions::select`, or the recipe's `keep_best_by`).
    #[serde(default)]
    pub(crate) score: Option<f64>,
    pub(crate) validation: ValidationReport,
}

impl Best {
    /// Its rank: the score it was kept by, or (kept before scores were recorded) its
    /// validation's by `by`.
    pub(crate) fn score(&self, by: crate::KeepBy) -> f64 {
        self.score.unwrap_or_else(|| self.validation.selection_score(by))
    }
}

pub(crate) fn best_name(step: u64) -> String {
    format!("best-{step:09}")
}

/// Writes the best model so far into a fresh directory beside the checkpoints, points
/// `BEST` at it (an atomic rename) and removes the one before, as [`save_checkpoint`] does.
pub(crate) fn save_best(out: &Path, model: &LoopedWorldModel, best: &Best) -> Result<(), TrainError> {
    let root = out.join(CHECKPOINTS);
    let name = best_name(best.step);
    let dir = fresh_dir(&root, &name)?;
    model.save(dir.join("model"))?;
    write_atomic(&dir.join("validation.json"), &serde_json::to_vec_pretty(best).expect("serialises"))?;
    point_at(&root, BEST, &name, "best-")
}

/// The best validation kept by an earlier part of this run (`None` in a fresh one).
pub(crate) fn read_best(out: &Path) -> Result<Option<Best>, TrainError> {
    let root = out.join(CHECKPOINTS);
    let Ok(name) = fs::read_to_string(root.join(BEST)) else { return Ok(None) };
    let path = root.join(name.trim()).join("validation.json");
    let text = fs::read_to_string(&path).map_err(|e| io(&path, e))?;
    serde_json::from_str(&text).map(Some).map_err(|e| io(&path, e))
}

/// Loads the checkpoint `LATEST` names, checking it was written by the same config, and
/// cuts the metrics log back to its step.
pub(crate) fn resume(
    out: &Path,
    config: &TrainConfig,
    device: &Device,
) -> Result<(Network, ModuleOptimizer, u64, f64), TrainError> {
    let root = out.join(CHECKPOINTS);
    let latest = root.join(LATEST);
    let name = fs::read_to_string(&latest)
        .map_err(|_| TrainError::Resume(format!("no checkpoint in {} to resume from", root.display())))?;
    let dir = root.join(name.trim());
    let state_path = dir.join("state.json");
    let text = fs::read_to_string(&state_path).map_err(|e| io(&state_path, e))?;
    let state: RunState = serde_json::from_str(&text).map_err(|e| io(&state_path, e))?;
    let config_json = serde_json::to_value(config).expect("a config serialises");
    // Read back through the current type, so a field added since (with its default)
    // does not stop an older run from resuming.
    let stored = serde_json::from_value::<TrainConfig>(state.config.clone())
        .map(|stored| serde_json::to_value(stored).expect("a config serialises"))
        .unwrap_or(state.config);
    if stored != config_json {
        let differ: BTreeSet<String> = match (&stored, &config_json) {
            (serde_json::Value::Object(a), serde_json::Value::Object(b)) => {
                a.keys().chain(b.keys()).filter(|k| a.get(*k) != b.get(*k)).cloned().collect()
            }
            _ => BTreeSet::from(["(whole config)".to_string()]),
        };
        return Err(TrainError::Resume(format!(
            "the checkpoint at step {} was written with a different config (differs in: {}); start a new run directory instead",
            state.step,
            differ.into_iter().collect::<Vec<_>>().join(", ")
        )));
    }
    let model = LoopedWorldModel::load(dir.join("model"), device)?;
    let network = stable_ids(model.network().clone(), true);
    let optimizer_path = dir.join("optimizer.bpk");
    let optimizer =
        optimizer(config).load(&optimizer_path).map_err(|e| io(&optimizer_path, format!("{e:?}")))?;
    truncate_log(&out.join(LOG), state.step)?;
    Ok((network, optimizer, state.step, state.wall_seconds))
}

/// Drops the log lines written after `step` (by the run that was interrupted).
fn truncate_log(path: &Path, step: u64) -> Result<(), TrainError> {
    let Ok(text) = fs::read_to_string(path) else { return Ok(()) };
    let kept: String = text
        .lines()
        .filter(|line| serde_json::from_str::<LogLine>(line).is_ok_and(|l| l.step <= step))
        .map(|line| format!("{line}\n"))
        .collect();
    write_atomic(path, kept.as_bytes())
}
