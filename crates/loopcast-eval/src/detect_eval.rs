//! Anomaly detection scored on simulated services whose incidents are known: flash crowds
//! (a sudden wave of demand), out-of-memory restarts and deploys (a restart and a burst of
//! errors), each from the simulator's own record. Every detector of [`crate::detect`] runs
//! on the same windows; an incident counts as found when a flagged interval of any target
//! channel overlaps it (or the two patches after it), and a flagged interval as right when
//! it overlaps an incident so widened.

use loopcast_core::{Frequency, Role};
use loopcast_model::LoopedWorldModel;
use loopcast_sim::{EpisodeSpec, ParamRanges, Topology, sre_episode};
use serde::Serialize;

use crate::backtest::EvalError;
use crate::detect::{DetectConfig, Detector, Shape, anomalies, detect_series, series_windows};

/// What the simulator records as an incident.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum IncidentKind {
    /// A flash crowd: demand up to several times its usual level for 20 minutes to 3 hours.
    FlashCrowd,
    /// A replica restarted out of memory.
    OomRestart,
    /// A deploy: a restart, then a burst of errors that fades over 15 minutes.
    Deploy,
}

impl IncidentKind {
    /// Every kind.
    pub const ALL: [IncidentKind; 3] =
        [IncidentKind::FlashCrowd, IncidentKind::OomRestart, IncidentKind::Deploy];

    /// The kind's name in reports.
    pub fn as_str(self) -> &'static str {
        match self {
            IncidentKind::FlashCrowd => "flash crowd",
            IncidentKind::OomRestart => "OOM restart",
            IncidentKind::Deploy => "deploy",
        }
    }
}

/// An incident: its kind and the steps it spans (inclusive).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Incident {
    kind: IncidentKind,
    start: usize,
    end: usize,
}

/// The evaluation's settings.
#[derive(Debug, Clone)]
pub struct DetectEvalConfig {
    /// Services simulated, one seed each from `first_seed`.
    pub services: usize,
    /// The first seed (the evaluation seeds of `loopcast eval --twins` are never trained on).
    pub first_seed: u64,
    /// Steps of telemetry per service.
    pub steps: usize,
    /// The grid step.
    pub frequency: Frequency,
    /// How windows are cut.
    pub shape: Shape,
    /// The detectors' settings.
    pub detect: DetectConfig,
}

/// One detector's figures for one kind of incident.
#[derive(Debug, Clone, Default, Serialize)]
pub struct KindScore {
    /// Incidents of the kind in the scored range.
    pub incidents: usize,
    /// Those a flagged interval overlapped.
    pub found: usize,
    /// Median steps from the incident's start to the first flagged point on it.
    pub median_delay_steps: Option<f64>,
}

/// One detector's figures.
#[derive(Debug, Clone, Serialize)]
pub struct DetectorScore {
    /// The detector.
    pub detector: Detector,
    /// Flagged intervals.
    pub intervals: usize,
    /// Those overlapping an incident.
    pub right: usize,
    /// `right / intervals`.
    pub precision: Option<f64>,
    /// Incidents found over incidents, every kind together.
    pub recall: Option<f64>,
    /// The harmonic mean of the two.
    pub f1: Option<f64>,
    /// Share of scored points away from every incident that were flagged.
    pub false_alarm_share: Option<f64>,
    /// Per kind of incident, in [`IncidentKind::ALL`] order.
    pub kinds: Vec<(IncidentKind, KindScore)>,
}

/// Scores every detector on `config.services` simulated services.
pub fn evaluate_detection(
    model: &LoopedWorldModel,
    config: &DetectEvalConfig,
    progress: &mut dyn FnMut(usize),
) -> Result<Vec<DetectorScore>, EvalError> {
    let spec = EpisodeSpec {
        context: config.steps,
        horizon: 1,
        plans: 1,
        frequency: config.frequency,
        topology: Topology::Single,
    };
    let tolerance = 2 * config.shape.patch;
    let mut tallies: Vec<Tally> = Detector::ALL.iter().map(|_| Tally::default()).collect();
    for i in 0..config.services {
        let seed = config.first_seed + i as u64;
        let episode =
            sre_episode(seed, &ParamRanges::default(), spec).map_err(|e| EvalError::Config(e.to_string()))?;
        let series = &episode.history;
        let incidents = incidents(&episode);
        let channels: Vec<_> = series.channels.iter().map(|c| c.spec.clone()).collect();
        let batches = series_windows(series, &channels, config.shape, 256)?;
        let found = detect_series(model, &batches, config.frequency, &config.detect)?;
        let Some(first_scored) = found.points.iter().map(|p| p.timestamp).min() else { continue };
        let step_of = |timestamp| (config.frequency.cell(timestamp) - series.first_cell) as usize;
        let first = step_of(first_scored);
        let scored: Vec<Incident> = incidents.into_iter().filter(|c| c.start >= first).collect();
        for (tally, detector) in tallies.iter_mut().zip(Detector::ALL) {
            let intervals: Vec<(usize, usize)> = anomalies(&found.points, detector)
                .iter()
                .map(|a| (step_of(a.start), step_of(a.end)))
                .collect();
            tally.add(&scored, &intervals, tolerance);
            let near =
                |step: usize| scored.iter().any(|c| step + tolerance >= c.start && step <= c.end + tolerance);
            for point in &found.points {
                if !near(step_of(point.timestamp)) {
                    tally.quiet_points += 1;
                    tally.false_alarms += usize::from(point.flagged_by(detector));
                }
            }
        }
        progress(i + 1);
    }
    Ok(Detector::ALL.iter().zip(tallies).map(|(d, t)| t.score(*d)).collect())
}

/// The incidents of an episode's history: runs of flash-crowd steps, OOM restarts (the
/// step and the restart's recovery), and deploys (the step and the error burst after it).
fn incidents(episode: &loopcast_sim::Episode) -> Vec<Incident> {
    let steps = episode.history.len();
    let truth = &episode.truths[0];
    let minutes = episode.history.frequency.nominal_micros() as f64 / 60e6;
    // A restart and an error burst last about a quarter of an hour.
    let after = (15.0 / minutes).ceil() as usize;
    let mut found = Vec::new();
    let mut crowd: Option<usize> = None;
    for t in 0..steps {
        match (truth.flash_crowd[t], crowd) {
            (true, None) => crowd = Some(t),
            (false, Some(start)) => {
                found.push(Incident { kind: IncidentKind::FlashCrowd, start, end: t - 1 });
                crowd = None;
            }
            _ => {}
        }
        if truth.oom_restart[t] {
            found.push(Incident {
                kind: IncidentKind::OomRestart,
                start: t,
                end: (t + after).min(steps - 1),
            });
        }
    }
    if let Some(start) = crowd {
        found.push(Incident { kind: IncidentKind::FlashCrowd, start, end: steps - 1 });
    }
    let deploy =
        episode.history.channels.iter().find(|c| c.spec.name == "deploy" && c.spec.role == Role::Action);
    if let Some(deploy) = deploy {
        for t in 0..steps {
            if deploy.observed[t] && deploy.values[t] > 0.5 {
                found.push(Incident {
                    kind: IncidentKind::Deploy,
                    start: t,
                    end: (t + after).min(steps - 1),
                });
            }
        }
    }
    found
}

/// One detector's counts over the services.
#[derive(Debug, Default)]
struct Tally {
    intervals: usize,
    right: usize,
    incidents: [usize; 3],
    found: [usize; 3],
    delays: [Vec<usize>; 3],
    quiet_points: usize,
    false_alarms: usize,
}

impl Tally {
    fn add(&mut self, incidents: &[Incident], intervals: &[(usize, usize)], tolerance: usize) {
        let overlaps =
            |(start, end): (usize, usize), c: &Incident| start <= c.end + tolerance && end >= c.start;
        self.intervals += intervals.len();
        self.right += intervals.iter().filter(|i| incidents.iter().any(|c| overlaps(**i, c))).count();
        for c in incidents {
            let k = IncidentKind::ALL.iter().position(|kind| *kind == c.kind).expect("a known kind");
            self.incidents[k] += 1;
            if let Some(first) = intervals.iter().filter(|i| overlaps(**i, c)).map(|i| i.0.max(c.start)).min()
            {
                self.found[k] += 1;
                self.delays[k].push(first - c.start);
            }
        }
    }

    fn score(self, detector: Detector) -> DetectorScore {
        let ratio = |a: usize, b: usize| (b > 0).then(|| a as f64 / b as f64);
        let precision = ratio(self.right, self.intervals);
        let recall = ratio(self.found.iter().sum(), self.incidents.iter().sum());
        let f1 = match (precision, recall) {
            (Some(p), Some(r)) if p + r > 0.0 => Some(2.0 * p * r / (p + r)),
            (Some(_), Some(_)) => Some(0.0),
            _ => None,
        };
        let kinds = IncidentKind::ALL
            .iter()
            .enumerate()
            .map(|(k, kind)| {
                let mut delays = self.delays[k].clone();
                delays.sort_unstable();
                let median_delay_steps = (!delays.is_empty()).then(|| {
                    let m = delays.len() / 2;
                    if delays.len() % 2 == 1 {
                        delays[m] as f64
                    } else {
                        (delays[m - 1] + delays[m]) as f64 / 2.0
                    }
                });
                (*kind, KindScore { incidents: self.incidents[k], found: self.found[k], median_delay_steps })
            })
            .collect();
        DetectorScore {
            detector,
            intervals: self.intervals,
            right: self.right,
            precision,
            recall,
            f1,
            false_alarm_share: ratio(self.false_alarms, self.quiet_points),
            kinds,
        }
    }
}

/// The scores as a Markdown table per detector and per kind of incident.
pub fn markdown(scores: &[DetectorScore], config: &DetectEvalConfig) -> String {
    let fmt = |v: Option<f64>| v.map_or("–".to_string(), |v| format!("{v:.3}"));
    let mut text = format!(
        "Anomaly detection on {} simulated services ({} steps of {} each, seeds {}–{}), level {}\n\n\
         | detector | intervals | precision | recall | F1 | false alarms (share of quiet points) |\n\
         |---|---:|---:|---:|---:|---:|\n",
        config.services,
        config.steps,
        config.frequency,
        config.first_seed,
        config.first_seed + config.services.saturating_sub(1) as u64,
        config.detect.level
    );
    for s in scores {
        text.push_str(&format!(
            "| {} | {} | {} | {} | {} | {} |\n",
            s.detector.as_str(),
            s.intervals,
            fmt(s.precision),
            fmt(s.recall),
            fmt(s.f1),
            fmt(s.false_alarm_share)
        ));
    }
    text.push_str("\n| detector | incident | incidents | found | recall | median steps to detect |\n|---|---|---:|---:|---:|---:|\n");
    for s in scores {
        for (kind, k) in &s.kinds {
            text.push_str(&format!(
                "| {} | {} | {} | {} | {} | {} |\n",
                s.detector.as_str(),
                kind.as_str(),
                k.incidents,
                k.found,
                fmt((k.incidents > 0).then(|| k.found as f64 / k.incidents as f64)),
                k.median_delay_steps.map_or("–".into(), |d| format!("{d:.0}"))
            ));
        }
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn intervals_are_right_when_they_overlap_an_incident_or_its_wake() {
        let incidents = [
            Incident { kind: IncidentKind::FlashCrowd, start: 100, end: 120 },
            Incident { kind: IncidentKind::Deploy, start: 300, end: 303 },
        ];
        let mut tally = Tally::default();
        // One on the crowd, one in the deploy's wake (within 32 steps), one far from both.
        tally.add(&incidents, &[(110, 112), (330, 331), (500, 500)], 32);
        let score = tally.score(Detector::Loopcast);
        assert_eq!((score.intervals, score.right), (3, 2));
        assert_eq!(score.precision, Some(2.0 / 3.0));
        assert_eq!(score.recall, Some(1.0));
        assert_eq!(score.kinds[0].1.median_delay_steps, Some(10.0));
        assert_eq!(score.kinds[2].1.median_delay_steps, Some(30.0));
        assert_eq!(score.kinds[1].1.incidents, 0);
    }
}
