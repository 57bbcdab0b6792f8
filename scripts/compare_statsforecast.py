#!/usr/bin/env python3
"""statsforecast's AutoETS and AutoARIMA on exactly the windows `loopcast eval` scored.

Run `loopcast eval` first; this script reads the same suite file (or flags), takes every
window's series and origin from loopcast's `windows.csv`, fits statsforecast's models on
the same context and scores them with the same metrics (MASE of the median with the
seasonal-naive scale of the context, weighted quantile loss over levels 0.1 … 0.9,
80 % coverage), relative to loopcast's own seasonal-naive rows. statsforecast's
SeasonalNaive is run too, as a check that the two metric implementations agree.

    python3 -m venv .venv-sf && .venv-sf/bin/pip install -r scripts/requirements-statsforecast.txt
    cargo run --release -p loopcast-cli -- eval --suite configs/eval-dev.toml --out eval-out/dev
    .venv-sf/bin/python scripts/compare_statsforecast.py --suite configs/eval-dev.toml --eval-out eval-out/dev

Writes `statsforecast.csv` (one row per series, window and model, as `windows.csv`) and
`comparison.md` (loopcast's models and statsforecast's side by side, with wall times) in
each dataset's output directory, and prints the tables.
"""

import argparse
import math
import os
import sys
import time
import tomllib
from pathlib import Path

import numpy as np
import pandas as pd

LEVELS = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9]
SERIES_ALIASES = ["series_id", "unique_id", "item_id"]
TIME_ALIASES = ["timestamp", "ds"]


def fill_missing(context, season):
    """loopcast_eval::baselines::fill_missing: leading gaps dropped, a gap takes the value
    one season earlier (the previous value when that is missing too)."""
    observed = np.flatnonzero(np.isfinite(context))
    if observed.size == 0:
        return None
    filled = []
    for value in context[observed[0]:]:
        i = len(filled)
        if np.isfinite(value):
            filled.append(float(value))
        elif i >= season:
            filled.append(filled[i - season])
        else:
            filled.append(filled[i - 1])
    return np.array(filled)


def seasonal_scale(context, season):
    now, then = context[season:], context[:-season]
    ok = np.isfinite(now) & np.isfinite(then)
    return np.mean(np.abs(now[ok] - then[ok])) if ok.any() else None


def scores(context, truth, quantiles, season):
    """MASE, WQL and 80 % coverage as loopcast_eval::metrics computes them."""
    ok = np.isfinite(truth)
    if not ok.any():
        return None, None, None
    median = quantiles[:, LEVELS.index(0.5)]
    scale = seasonal_scale(context, season)
    mase = np.mean(np.abs(truth[ok] - median[ok])) / scale if scale else None
    denominator = np.sum(np.abs(truth[ok]))
    wql = None
    if denominator > 0:
        error = truth[ok, None] - quantiles[ok]
        levels = np.array(LEVELS)
        pinball = np.maximum(levels * error, (levels - 1) * error)
        wql = 2 * pinball.sum() / denominator / len(LEVELS)
    inside = (quantiles[ok, 0] <= truth[ok]) & (truth[ok] <= quantiles[ok, -1])
    return mase, wql, inside.mean()


def read_series(dataset):
    path = Path(dataset["data"])
    frame = pd.read_parquet(path) if path.suffix == ".parquet" else pd.read_csv(path)
    series = next(c for c in SERIES_ALIASES if c in frame.columns)
    stamp = next(c for c in TIME_ALIASES if c in frame.columns)
    target = dataset["target"][0]
    if target not in frame.columns:  # long with a value column named otherwise
        target = "value" if "value" in frame.columns else "y"
    frame[stamp] = pd.to_datetime(frame[stamp], utc=True)
    return {name: group.set_index(stamp)[target].sort_index() for name, group in frame.groupby(series)}


def regular(values):
    """The series on a regular grid with gaps as NaN (loopcast's regularisation)."""
    spacing = values.index.to_series().diff().dropna()
    step = spacing.mode().iloc[0]
    if step >= pd.Timedelta(days=28):  # calendar months
        return values.asfreq("MS")
    return values.asfreq(step)


def windows_of(dataset, eval_dir):
    rows = pd.read_csv(eval_dir / "windows.csv")
    snaive = rows[rows.model == "snaive"].copy()
    snaive["origin"] = pd.to_datetime(snaive["origin"], utc=True)
    return rows, snaive


def statsforecast_models(season):
    from statsforecast.models import AutoARIMA, AutoETS, SeasonalNaive

    return {
        "sf_autoets": AutoETS(season_length=season),
        "sf_autoarima": AutoARIMA(season_length=season),
        "sf_snaive": SeasonalNaive(season_length=season),
    }


def quantiles_from(forecast, name):
    """statsforecast's mean and symmetric intervals as quantiles at LEVELS."""
    columns = []
    for level in LEVELS:
        if level == 0.5:
            columns.append(forecast[name].to_numpy())
        else:
            width = round(abs(1 - 2 * level) * 100)
            side = "lo" if level < 0.5 else "hi"
            columns.append(forecast[f"{name}-{side}-{width}"].to_numpy())
    return np.stack(columns, axis=1)


def run_dataset(dataset, eval_dir, models_wanted):
    from statsforecast import StatsForecast

    season, horizon, context_len = dataset["season"], dataset["horizon"], dataset["context"]
    series = {name: regular(values) for name, values in read_series(dataset).items()}
    rows, windows = windows_of(dataset, eval_dir)
    frames, cases = [], []
    for i, window in enumerate(windows.itertuples()):
        values = series[str(window.series)] if str(window.series) in series else series[window.series]
        origin = values.index.get_indexer([window.origin])[0]
        if origin < 0:
            sys.exit(f"{dataset['name']}: origin {window.origin} of {window.series} is not on the grid")
        context = values.iloc[max(0, origin - context_len):origin].to_numpy(dtype=float)
        truth = np.full(horizon, np.nan)
        future = values.iloc[origin:origin + horizon].to_numpy(dtype=float)
        truth[: len(future)] = future
        filled = fill_missing(context, season)
        uid = f"w{i}"
        stamps = pd.date_range(end=values.index[origin - 1], periods=len(filled), freq=values.index.freq)
        frames.append(pd.DataFrame({"unique_id": uid, "ds": stamps.tz_localize(None), "y": filled}))
        cases.append((uid, window, context, truth))
    data = pd.concat(frames, ignore_index=True)
    widths = sorted({round(abs(1 - 2 * level) * 100) for level in LEVELS if level != 0.5})
    results, seconds = [], {}
    for name, model in statsforecast_models(season).items():
        if name not in models_wanted:
            continue
        model.alias = name
        started = time.perf_counter()
        forecast = StatsForecast(models=[model], freq=values.index.freq, n_jobs=1).forecast(
            df=data, h=horizon, level=widths
        )
        seconds[name] = time.perf_counter() - started
        forecast = forecast.reset_index() if "unique_id" not in forecast.columns else forecast
        by_id = dict(tuple(forecast.groupby("unique_id")))
        for uid, window, context, truth in cases:
            quantiles = quantiles_from(by_id[uid], name)
            mase, wql, coverage = scores(context, truth, quantiles, season)
            results.append(
                {
                    "series": window.series,
                    "channel": window.channel,
                    "window": window.window,
                    "origin": window.origin.isoformat(),
                    "model": name,
                    "mase": mase,
                    "wql": wql,
                    "coverage_80": coverage,
                }
            )
    return rows, pd.DataFrame(results), seconds


def geometric_mean(values):
    values = [v for v in values if v is not None and np.isfinite(v) and v > 0]
    return math.exp(np.mean(np.log(values))) if values else None


def comparison(rows, ours, seconds, loopcast_seconds):
    key = ["series", "channel", "window"]
    reference = rows[rows.model == "snaive"].set_index(key)
    table = pd.concat([rows[["series", "channel", "window", "model", "mase", "wql", "coverage_80"]], ours])
    lines = [
        "| model | relative MASE | relative WQL | 80 % coverage | seconds |",
        "|---|---:|---:|---:|---:|",
    ]
    for model, group in table.groupby("model", sort=False):
        joined = group.set_index(key).join(reference[["mase", "wql"]], rsuffix="_snaive")
        relative = lambda m: geometric_mean((joined[m] / joined[f"{m}_snaive"]).tolist())
        coverage = group.coverage_80.mean()
        time_taken = seconds.get(model, loopcast_seconds.get(model))
        cell = lambda v, f: "–" if v is None or (isinstance(v, float) and math.isnan(v)) else f.format(v)
        lines.append(
            f"| {model} | {cell(relative('mase'), '{:.3f}')} | {cell(relative('wql'), '{:.3f}')} "
            f"| {cell(100 * coverage, '{:.1f}')} | {cell(time_taken, '{:.2f}')} |"
        )
    return "\n".join(lines) + "\n"


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--suite", required=True, help="the suite file given to loopcast eval")
    parser.add_argument("--eval-out", required=True, help="the --out directory of that loopcast eval run")
    parser.add_argument("--models", default="sf_autoets,sf_autoarima,sf_snaive")
    parser.add_argument("--datasets", help="only these datasets, comma-separated")
    args = parser.parse_args()
    os.environ.setdefault("NIXTLA_ID_AS_COL", "1")
    with open(args.suite, "rb") as file:
        suite = tomllib.load(file)
    wanted = set(args.models.split(","))
    only = set(args.datasets.split(",")) if args.datasets else None
    datasets = suite["dataset"]
    for dataset in datasets:
        if only and dataset["name"] not in only:
            continue
        eval_dir = Path(args.eval_out) / dataset["name"] if len(datasets) > 1 else Path(args.eval_out)
        rows, ours, seconds = run_dataset(dataset, eval_dir, wanted)
        ours.to_csv(eval_dir / "statsforecast.csv", index=False)
        import json

        summary = json.loads((eval_dir / "summary.json").read_text())
        loopcast_seconds = {s["model"]: s["seconds"] for s in summary["summary"]}
        table = comparison(rows, ours, seconds, loopcast_seconds)
        # The metric check: statsforecast's seasonal naive scored here against loopcast's.
        check = ""
        if "sf_snaive" in wanted:
            mine = rows[rows.model == "snaive"].set_index(["series", "channel", "window"]).mase
            theirs = ours[ours.model == "sf_snaive"].set_index(["series", "channel", "window"]).mase
            gap = (mine - theirs).abs().max()
            check = f"\nLargest |MASE| gap between loopcast's and statsforecast's seasonal naive: {gap:.2e}\n"
        text = f"# {dataset['name']}: loopcast eval and statsforecast on the same windows\n\n{table}{check}"
        (eval_dir / "comparison.md").write_text(text)
        print(f"\n{text}")


if __name__ == "__main__":
    main()
