//! Arrow IPC stream bodies (`application/vnd.apache.arrow.stream`) for forecasts and
//! what-ifs.
//!
//! A request table is the long format of files (DESIGN.md §3): `series_id, timestamp,
//! channel, role, value` (aliases `unique_id`/`item_id`, `ds`, `y` accepted), with the
//! JSON body's other fields as query parameters (`?horizon=48&quantiles=0.1,0.5,0.9`).
//! Each series' history ends at its last observed target value; action and covariate rows
//! after it are their known future. A what-if adds a `scenario` column: rows with a
//! scenario are that plan's future values (plans apply to every series alike, as in
//! JSON). An answer table has the columns of batch-scoring output: `series_id, timestamp,
//! channel, scenario, q…, mean, loops_used`.

use std::collections::{BTreeMap, HashMap};
use std::io::Cursor;

use arrow::array::{Array, ArrayRef, AsArray, RecordBatch};
use arrow::compute::cast;
use arrow::datatypes::{DataType, Float64Type, TimeUnit, TimestampMicrosecondType};
use arrow::ipc::reader::StreamReader;
use arrow::ipc::writer::StreamWriter;
use chrono::{DateTime, Utc};
use loopcast_data::{
    CHANNEL_ALIASES, ForecastRows, ROLE_ALIASES, SERIES_ALIASES, TIMESTAMP_ALIASES, VALUE_ALIASES,
    forecast_batch, forecast_schema,
};
use serde::Deserialize;

use crate::api::{
    ChannelForecast, ChannelInput, ChannelRole, ComputeOptions, FORECAST_SCENARIO, ForecastRequest,
    ForecastResponse, MissingActionsInput, PlanInput, SeriesInput, WhatIfRequest, WhatIfResponse,
};
use crate::problem::Problem;

/// The media type of Arrow IPC streams.
pub const ARROW_STREAM: &str = "application/vnd.apache.arrow.stream";

/// The JSON body's fields other than the series, as query parameters of an Arrow request.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ArrowQuery {
    horizon: Option<usize>,
    /// Comma-separated levels.
    quantiles: Option<String>,
    min_loops: Option<usize>,
    max_loops: Option<usize>,
    exit_threshold: Option<f64>,
    series_calibration: Option<usize>,
    missing_actions: Option<MissingActionsInput>,
    /// Grid step of every series (`5m`); inferred from the timestamps when absent.
    frequency: Option<String>,
    /// What-if only: the plan others are compared with.
    baseline: Option<String>,
}

impl ArrowQuery {
    fn horizon(&self) -> Result<usize, Problem> {
        self.horizon
            .ok_or_else(|| Problem::invalid("horizon", "an Arrow request needs `?horizon=` in its URL"))
    }

    fn quantiles(&self) -> Result<Option<Vec<f64>>, Problem> {
        let Some(text) = &self.quantiles else { return Ok(None) };
        text.split(',')
            .enumerate()
            .map(|(k, level)| {
                level.trim().parse::<f64>().map_err(|_| {
                    Problem::invalid(format!("quantiles[{k}]"), format!("`{level}` is not a number"))
                })
            })
            .collect::<Result<Vec<_>, _>>()
            .map(Some)
    }

    fn compute(&self) -> ComputeOptions {
        ComputeOptions {
            min_loops: self.min_loops,
            max_loops: self.max_loops,
            exit_threshold: self.exit_threshold,
            series_calibration: self.series_calibration.unwrap_or(0),
        }
    }
}

/// A request that can come as an Arrow table.
pub(crate) trait FromArrow: Sized {
    /// Builds the request from the table in `bytes` and the query parameters.
    fn from_arrow(bytes: &[u8], query: ArrowQuery) -> Result<Self, Problem>;
}

impl FromArrow for ForecastRequest {
    fn from_arrow(bytes: &[u8], query: ArrowQuery) -> Result<Self, Problem> {
        if query.baseline.is_some() {
            return Err(Problem::invalid("baseline", "a forecast has no plans to compare"));
        }
        let horizon = query.horizon()?;
        let table = Table::read(bytes, false)?;
        let (series, _) = table.series(horizon, query.frequency.as_deref())?;
        Ok(Self {
            series,
            horizon,
            quantiles: query.quantiles()?,
            compute: query.compute(),
            missing_actions: query.missing_actions.unwrap_or_default(),
        })
    }
}

impl FromArrow for WhatIfRequest {
    fn from_arrow(bytes: &[u8], query: ArrowQuery) -> Result<Self, Problem> {
        let horizon = query.horizon()?;
        let table = Table::read(bytes, true)?;
        let (series, plans) = table.series(horizon, query.frequency.as_deref())?;
        Ok(Self {
            series,
            horizon,
            plans,
            baseline: query.baseline.clone(),
            quantiles: query.quantiles()?,
            compute: query.compute(),
            missing_actions: query.missing_actions.unwrap_or_default(),
        })
    }
}

/// Plans by name: the row that first named each, and its future values per channel.
type Plans = BTreeMap<String, (usize, BTreeMap<String, Vec<Option<f64>>>)>;

/// Per target channel, per quantile level, one value per step.
type Trajectories = Vec<Vec<Vec<f64>>>;

/// The rows of a request table.
#[derive(Debug, Default)]
struct Table {
    series: Vec<String>,
    times: Vec<i64>,
    channels: Vec<String>,
    roles: Vec<ChannelRole>,
    values: Vec<Option<f64>>,
    scenarios: Vec<Option<String>>,
}

/// The column of `batch` with the first of `names`, cast to `to`.
fn column(
    batch: &RecordBatch,
    names: &[&str],
    to: &DataType,
    required: bool,
) -> Result<Option<ArrayRef>, Problem> {
    let schema = batch.schema();
    let Some(name) = names.iter().find(|n| schema.column_with_name(n).is_some()) else {
        if !required {
            return Ok(None);
        }
        let present: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
        return Err(Problem::invalid(
            format!("body.{}", names[0]),
            format!("the table has no `{}` column (it has: {})", names.join("` or `"), present.join(", ")),
        ));
    };
    let array = batch.column_by_name(name).expect("found above");
    let field = format!("body.{name}");
    let target = match (array.data_type(), to) {
        (DataType::Timestamp(_, zone), DataType::Timestamp(..)) => {
            DataType::Timestamp(TimeUnit::Microsecond, zone.clone())
        }
        (other, DataType::Timestamp(..)) => {
            return Err(Problem::invalid(field, format!("is {other}, not a timestamp")));
        }
        _ => to.clone(),
    };
    cast(array, &target)
        .map(Some)
        .map_err(|e| Problem::invalid(field, format!("cannot be read as {to}: {e}")))
}

impl Table {
    /// Reads an Arrow IPC stream; `scenarios` allows the `scenario` column.
    fn read(bytes: &[u8], scenarios: bool) -> Result<Self, Problem> {
        let reader = StreamReader::try_new(Cursor::new(bytes), None)
            .map_err(|e| Problem::malformed(format!("not an Arrow IPC stream: {e}")))?;
        let mut table = Self::default();
        let text = DataType::Utf8;
        let time = DataType::Timestamp(TimeUnit::Microsecond, None);
        for batch in reader {
            let batch = batch.map_err(|e| Problem::malformed(format!("a broken Arrow IPC stream: {e}")))?;
            let first = table.series.len();
            let at = |i: usize| format!("row {}", first + i);
            let ids = column(&batch, SERIES_ALIASES, &text, true)?.expect("required");
            let times = column(&batch, TIMESTAMP_ALIASES, &time, true)?.expect("required");
            let channels = column(&batch, CHANNEL_ALIASES, &text, true)?.expect("required");
            let roles = column(&batch, ROLE_ALIASES, &text, true)?.expect("required");
            let values = column(&batch, VALUE_ALIASES, &DataType::Float64, true)?.expect("required");
            let scenario = column(&batch, &["scenario"], &text, false)?;
            if scenario.is_some() && !scenarios {
                return Err(Problem::invalid(
                    "body.scenario",
                    "a forecast has no plans: drop the scenario column",
                ));
            }
            let (ids, channels, roles) =
                (ids.as_string::<i32>(), channels.as_string::<i32>(), roles.as_string::<i32>());
            let times = times.as_primitive::<TimestampMicrosecondType>();
            let values = values.as_primitive::<Float64Type>();
            let scenario = scenario.as_ref().map(|s| s.as_string::<i32>());
            for i in 0..batch.num_rows() {
                for (array, name) in [
                    (ids as &dyn Array, "series_id"),
                    (times, "timestamp"),
                    (channels, "channel"),
                    (roles, "role"),
                ] {
                    if array.is_null(i) {
                        return Err(Problem::invalid(
                            format!("body.{name}"),
                            format!("{} has no {name}", at(i)),
                        ));
                    }
                }
                let role = match roles.value(i) {
                    "target" => ChannelRole::Target,
                    "action" => ChannelRole::Action,
                    "covariate" => ChannelRole::Covariate,
                    other => {
                        return Err(Problem::invalid(
                            "body.role",
                            format!("{}: `{other}` is not target, action or covariate", at(i)),
                        ));
                    }
                };
                table.series.push(ids.value(i).to_string());
                table.times.push(times.value(i));
                table.channels.push(channels.value(i).to_string());
                table.roles.push(role);
                table.values.push(values.is_valid(i).then(|| values.value(i)));
                table.scenarios.push(scenario.filter(|s| s.is_valid(i)).map(|s| s.value(i).to_string()));
            }
        }
        if table.series.is_empty() {
            return Err(Problem::invalid("body", "the table has no rows"));
        }
        Ok(table)
    }

    /// The series (in order of first appearance) and the plans of the table.
    fn series(
        &self,
        horizon: usize,
        frequency: Option<&str>,
    ) -> Result<(Vec<SeriesInput>, Vec<PlanInput>), Problem> {
        let mut order: Vec<&str> = Vec::new();
        let mut rows: HashMap<&str, Vec<usize>> = HashMap::new();
        for (r, id) in self.series.iter().enumerate() {
            rows.entry(id).or_insert_with(|| {
                order.push(id);
                Vec::new()
            });
            rows.get_mut(id.as_str()).expect("inserted").push(r);
        }
        let mut plans: Plans = BTreeMap::new();
        let mut series = Vec::with_capacity(order.len());
        for id in order {
            series.push(self.one_series(id, &rows[id], horizon, frequency, &mut plans)?);
        }
        let mut plans: Vec<(usize, PlanInput)> = plans
            .into_iter()
            .map(|(name, (first_row, actions))| (first_row, PlanInput { name, actions }))
            .collect();
        plans.sort_by_key(|(row, _)| *row);
        Ok((series, plans.into_iter().map(|(_, plan)| plan).collect()))
    }

    fn one_series(
        &self,
        id: &str,
        rows: &[usize],
        horizon: usize,
        frequency: Option<&str>,
        plans: &mut Plans,
    ) -> Result<SeriesInput, Problem> {
        let history_rows: Vec<usize> =
            rows.iter().copied().filter(|r| self.scenarios[*r].is_none()).collect();
        let end = history_rows
            .iter()
            .filter(|r| self.roles[**r] == ChannelRole::Target && self.values[**r].is_some())
            .map(|r| self.times[*r])
            .max()
            .ok_or_else(|| {
                Problem::invalid("body.value", format!("series `{id}` has no observed target value"))
            })?;
        let mut stamps: Vec<i64> =
            history_rows.iter().map(|r| self.times[*r]).filter(|t| *t <= end).collect();
        stamps.sort_unstable();
        stamps.dedup();
        let spacing = match frequency {
            Some(text) => match text.parse::<loopcast_core::Frequency>() {
                Ok(loopcast_core::Frequency::Fixed(micros)) => Some(micros),
                _ => None,
            },
            None => stamps.windows(2).map(|w| w[1] - w[0]).min(),
        };
        let index: HashMap<i64, usize> = stamps.iter().enumerate().map(|(i, t)| (*t, i)).collect();
        // Future step of a timestamp after the history, when on the grid and within the horizon.
        let step_of = |r: usize| -> Result<usize, Problem> {
            let offset = self.times[r] - end;
            match spacing {
                Some(s) if s > 0 && offset % s == 0 && (1..=horizon as i64).contains(&(offset / s)) => {
                    Ok((offset / s - 1) as usize)
                }
                _ => Err(Problem::invalid(
                    "body.timestamp",
                    format!(
                        "row {r}: {} is not a step of the {horizon}-step horizon after series `{id}`'s history",
                        stamp(self.times[r])
                    ),
                )),
            }
        };
        let mut channels: Vec<ChannelInput> = Vec::new();
        let mut seen: HashMap<(usize, i64, Option<&str>), usize> = HashMap::new();
        for &r in rows {
            let name = &self.channels[r];
            let position = match channels.iter().position(|c| &c.name == name) {
                Some(p) => p,
                None => {
                    channels.push(ChannelInput {
                        name: name.clone(),
                        role: self.roles[r],
                        values: vec![None; stamps.len()],
                        future: None,
                    });
                    channels.len() - 1
                }
            };
            let channel = &mut channels[position];
            if channel.role != self.roles[r] {
                return Err(Problem::invalid(
                    "body.role",
                    format!("row {r}: channel `{name}` of series `{id}` changes role"),
                ));
            }
            if let Some(first) = seen.insert((position, self.times[r], self.scenarios[r].as_deref()), r) {
                return Err(Problem::invalid(
                    "body.timestamp",
                    format!(
                        "rows {first} and {r}: series `{id}` has two values of `{name}` at {}",
                        stamp(self.times[r])
                    ),
                ));
            }
            let value = self.values[r];
            match &self.scenarios[r] {
                Some(plan) => {
                    if channel.role == ChannelRole::Target {
                        return Err(Problem::invalid(
                            "body.scenario",
                            format!("row {r}: a plan sets actions and covariates, `{name}` is a target"),
                        ));
                    }
                    let step = step_of(r)?;
                    let entry = plans.entry(plan.clone()).or_insert_with(|| (r, BTreeMap::new()));
                    let cells = entry.1.entry(name.clone()).or_insert_with(|| vec![None; horizon]);
                    match cells[step] {
                        Some(existing) if Some(existing) != value => {
                            return Err(Problem::invalid(
                                "body.value",
                                format!(
                                    "row {r}: plan `{plan}` sets `{name}` at step {step} to {value:?}, another series to \
                                     {existing}: plans apply to every series alike"
                                ),
                            ));
                        }
                        _ => cells[step] = value.or(cells[step]),
                    }
                }
                None if self.times[r] <= end => channel.values[index[&self.times[r]]] = value,
                None => {
                    if channel.role == ChannelRole::Target {
                        continue;
                    }
                    let step = step_of(r)?;
                    channel.future.get_or_insert_with(|| vec![None; horizon])[step] = value;
                }
            }
        }
        Ok(SeriesInput {
            id: Some(id.to_string()),
            timestamps: Some(
                stamps
                    .iter()
                    .map(|t| DateTime::from_timestamp_micros(*t).expect("a valid timestamp"))
                    .collect(),
            ),
            start: None,
            frequency: frequency.map(str::to_string),
            season: None,
            channels,
        })
    }
}

fn stamp(micros: i64) -> String {
    DateTime::<Utc>::from_timestamp_micros(micros).map_or_else(|| micros.to_string(), |t| t.to_rfc3339())
}

/// Rows of one scenario's channel forecasts.
fn rows<'a>(
    id: &'a str,
    scenario: &'a str,
    timestamps: &'a [i64],
    channels: &'a [ChannelForecast],
    quantiles: &'a [Vec<Vec<f64>>],
    loops: &'a [u32],
) -> impl Iterator<Item = ForecastRows<'a>> + 'a {
    channels.iter().zip(quantiles).map(move |(channel, quantiles)| ForecastRows {
        series_id: id,
        channel: &channel.name,
        scenario,
        timestamps,
        quantiles,
        mean: &channel.mean,
        loops,
    })
}

fn trajectories(channels: &[ChannelForecast]) -> Trajectories {
    channels.iter().map(|c| c.quantiles.iter().map(|q| q.values.clone()).collect()).collect()
}

fn micros(timestamps: &[DateTime<Utc>]) -> Vec<i64> {
    timestamps.iter().map(DateTime::timestamp_micros).collect()
}

/// An Arrow IPC stream of one record batch.
fn stream(batch: &RecordBatch) -> Result<Vec<u8>, Problem> {
    let mut bytes = Vec::new();
    let fail = |e: arrow::error::ArrowError| Problem::internal(format!("cannot write Arrow: {e}"));
    let mut writer = StreamWriter::try_new(&mut bytes, &batch.schema()).map_err(fail)?;
    writer.write(batch).map_err(fail)?;
    writer.finish().map_err(fail)?;
    drop(writer);
    Ok(bytes)
}

/// A forecast answer as an Arrow IPC stream (scenario `forecast`).
pub(crate) fn forecast_stream(answer: &ForecastResponse) -> Result<Vec<u8>, Problem> {
    let schema = forecast_schema(&answer.quantiles);
    let prepared: Vec<(Vec<i64>, Trajectories)> =
        answer.series.iter().map(|s| (micros(&s.timestamps), trajectories(&s.channels))).collect();
    let parts: Vec<ForecastRows<'_>> = answer
        .series
        .iter()
        .zip(&prepared)
        .flat_map(|(s, (times, quantiles))| {
            rows(&s.id, FORECAST_SCENARIO, times, &s.channels, quantiles, &s.loops)
        })
        .collect();
    stream(&forecast_batch(&schema, &parts).map_err(Problem::internal)?)
}

/// A what-if answer as an Arrow IPC stream (one scenario per plan; the differences from
/// the baseline are the JSON answer's).
pub(crate) fn whatif_stream(answer: &WhatIfResponse) -> Result<Vec<u8>, Problem> {
    let schema = forecast_schema(&answer.quantiles);
    let prepared: Vec<(Vec<i64>, Vec<Trajectories>)> = answer
        .series
        .iter()
        .map(|s| (micros(&s.timestamps), s.plans.iter().map(|p| trajectories(&p.channels)).collect()))
        .collect();
    let mut parts = Vec::new();
    for (s, (times, per_plan)) in answer.series.iter().zip(&prepared) {
        for (plan, quantiles) in s.plans.iter().zip(per_plan) {
            parts.extend(rows(&s.id, &plan.plan, times, &plan.channels, quantiles, &plan.loops));
        }
    }
    stream(&forecast_batch(&schema, &parts).map_err(Problem::internal)?)
}

/// Whether `accept` asks for an Arrow IPC stream.
pub(crate) fn wants_arrow(accept: Option<&str>) -> bool {
    accept.is_some_and(|a| a.split(',').any(|m| m.split(';').next().unwrap_or("").trim() == ARROW_STREAM))
}
