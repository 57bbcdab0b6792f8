//! Results as people read them: a Markdown table, per-window (or per-effect) CSV, and SVG
//! fan charts.

use std::io::Write;
use std::path::Path;

use plotters::prelude::*;

use serde::Serialize;

use crate::backtest::{CHART_LEVELS, ChartSample, ModelName, ModelSummary};

/// The summary as a Markdown table, one row per model.
pub fn markdown_table(summaries: &[ModelSummary]) -> String {
    let figure =
        |v: Option<f64>, digits: usize| v.map_or_else(|| "–".to_string(), |v| format!("{v:.digits$}"));
    let mut out = String::from(
        "| model | relative MASE | relative WQL | MASE | WQL | 80 % coverage | mean loops | fallbacks | seconds |\n\
         |---|---:|---:|---:|---:|---:|---:|---:|---:|\n",
    );
    for s in summaries {
        out.push_str(&format!(
            "| {} | {} | {} | {} | {} | {} | {} | {} | {:.2} |\n",
            s.model,
            figure(s.relative_mase, 3),
            figure(s.relative_wql, 3),
            figure(s.mase, 3),
            figure(s.wql, 3),
            figure(s.coverage_80.map(|c| 100.0 * c), 1),
            figure(s.mean_loops, 2),
            s.fallbacks,
            s.seconds,
        ));
    }
    out
}

/// Writes rows as CSV with a header from their fields (window scores: one row per series,
/// channel, window and model), atomically: the file appears complete or not at all.
pub fn write_csv<T: Serialize>(path: &Path, rows: &[T]) -> std::io::Result<()> {
    write_atomically(path, |file| {
        let mut writer = csv::Writer::from_writer(file);
        for row in rows {
            writer.serialize(row).map_err(std::io::Error::other)?;
        }
        writer.flush()
    })
}

/// Writes `contents` to `path` through a temporary file in the same directory.
pub fn write_atomically(
    path: &Path,
    contents: impl FnOnce(&mut std::fs::File) -> std::io::Result<()>,
) -> std::io::Result<()> {
    let name = path
        .file_name()
        .ok_or_else(|| std::io::Error::other(format!("{} is not a file path", path.display())))?;
    let temporary = path.with_file_name(format!(".{}.partial", name.to_string_lossy()));
    let mut file = std::fs::File::create(&temporary)?;
    contents(&mut file)?;
    file.flush()?;
    file.sync_all()?;
    std::fs::rename(&temporary, path)
}

const COLOURS: [RGBColor; 4] =
    [RGBColor(31, 119, 180), RGBColor(214, 39, 40), RGBColor(44, 160, 44), RGBColor(148, 103, 189)];

/// Draws `sample` as an SVG fan chart: the recent history and the truth in black, and
/// per model the median with its 80 % and 98 % bands.
pub fn fan_chart(path: &Path, sample: &ChartSample) -> Result<(), String> {
    draw(path, sample).map_err(|e| format!("{}: {e}", path.display()))
}

fn draw(path: &Path, sample: &ChartSample) -> Result<(), Box<dyn std::error::Error>> {
    let history = sample.history.len();
    let steps = history + sample.truth.len();
    let values = sample
        .history
        .iter()
        .chain(&sample.truth)
        .copied()
        .chain(sample.forecasts.values().flatten().flatten().copied())
        .filter(|v| v.is_finite());
    let (lo, hi) = values.fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), v| (a.min(v), b.max(v)));
    if !lo.is_finite() {
        return Err("nothing to draw".into());
    }
    let pad = ((hi - lo) * 0.05).max(1e-9);
    let root = SVGBackend::new(path, (960, 360)).into_drawing_area();
    root.fill(&WHITE)?;
    let title = format!("{} · {} · from {}", sample.series, sample.channel, sample.origin);
    let mut chart = ChartBuilder::on(&root)
        .margin(8)
        .caption(title, ("sans-serif", 16))
        .x_label_area_size(24)
        .y_label_area_size(70)
        .build_cartesian_2d(0f64..steps as f64, (lo - pad)..(hi + pad))?;
    chart.configure_mesh().x_desc("steps").light_line_style(WHITE.mix(0.0)).draw()?;
    let level = |q: f64| CHART_LEVELS.iter().position(|l| *l == q).expect("a chart level");
    let bands = [(level(0.01), level(0.99), 0.12), (level(0.1), level(0.9), 0.25)];
    // loopcast first, so its bands sit underneath the baselines' lines.
    let mut models: Vec<(&ModelName, &Vec<Vec<f64>>)> = sample.forecasts.iter().collect();
    models.sort_by_key(|(m, _)| **m != ModelName::Loopcast);
    for (i, (model, rows)) in models.iter().enumerate() {
        let colour = COLOURS[i % COLOURS.len()];
        let at = |h: usize| (history + h) as f64;
        if **model == ModelName::Loopcast {
            for (low, high, alpha) in bands {
                let outline: Vec<(f64, f64)> = rows
                    .iter()
                    .enumerate()
                    .map(|(h, r)| (at(h), r[low]))
                    .chain(rows.iter().enumerate().rev().map(|(h, r)| (at(h), r[high])))
                    .collect();
                chart.draw_series(std::iter::once(Polygon::new(outline, colour.mix(alpha).filled())))?;
            }
        }
        let median = level(0.5);
        chart
            .draw_series(LineSeries::new(
                rows.iter().enumerate().map(|(h, r)| (at(h), r[median])),
                colour.stroke_width(2),
            ))?
            .label(format!(
                "{model} median{}",
                if **model == ModelName::Loopcast { ", 80 % and 98 % bands" } else { "" }
            ))
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 16, y)], colour.stroke_width(2)));
    }
    let observed = sample.history.iter().chain(&sample.truth).enumerate().filter(|(_, v)| v.is_finite());
    chart
        .draw_series(observed.map(|(t, v)| Circle::new((t as f64, *v), 1, BLACK.filled())))?
        .label("observed")
        .legend(|(x, y)| Circle::new((x + 8, y), 2, BLACK.filled()));
    chart.draw_series(std::iter::once(PathElement::new(
        vec![(history as f64, lo - pad), (history as f64, hi + pad)],
        BLACK.mix(0.4).stroke_width(1),
    )))?;
    chart.configure_series_labels().border_style(BLACK.mix(0.3)).background_style(WHITE.mix(0.8)).draw()?;
    root.present()?;
    Ok(())
}
