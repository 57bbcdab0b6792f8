// The loopcast console: data from an example, an upload or pasted JSON; forecasts with
// fan charts, what-if scenarios, and capacity plans with their cost/risk frontier. Every
// action is one call of the service's public API, and every error it answers is shown
// next to the field it names.

import { formatNumber, loopsStrip, scatterChart, stepEditor, timeChart } from "./charts.js";

const $ = (id) => document.getElementById(id);
const PALETTE = ["#2b6cb0", "#c05621", "#2f855a", "#6b46c1", "#b83280", "#2c7a7b", "#975a16", "#4a5568"];
const BAND_LEVELS = { 0.5: 50, 0.8: 80, 0.98: 98 };
const WHATIF_QUANTILES = [0.1, 0.5, 0.9];

const state = {
  model: null,
  series: [],
  index: 0,
  planDefaults: null,
  plans: [],
  whatif: null,
  planAnswer: null,
};

// ---------------------------------------------------------------- the API and its errors

/** Calls the service; throws its problem+json (or one made up for a network failure). */
async function api(method, path, body, contentType = "application/json") {
  const headers = { Accept: "application/json" };
  const key = $("api-key").value.trim();
  if (key) headers.Authorization = `Bearer ${key}`;
  let payload;
  if (body !== undefined) {
    headers["Content-Type"] = contentType;
    payload = contentType === "application/json" ? JSON.stringify(body) : body;
  }
  let response;
  try {
    response = await fetch(path, { method, headers, body: payload });
  } catch (error) {
    throw { status: 0, detail: `the service did not answer (${error.message})` };
  }
  const text = await response.text();
  let json = null;
  try {
    json = JSON.parse(text);
  } catch {
    // not JSON: reported as text below
  }
  if (!response.ok) {
    throw json && typeof json.detail === "string" ? json : { status: response.status, detail: text || response.statusText };
  }
  return json;
}

function fieldMatches(field, prefix) {
  return field === prefix || field.startsWith(`${prefix}.`) || field.startsWith(`${prefix}[`);
}

/** Clears the errors and invalid marks inside `scope`. */
function clearErrors(scope) {
  scope.querySelectorAll(".error").forEach((element) => {
    element.textContent = "";
  });
  scope.querySelectorAll("[aria-invalid]").forEach((element) => element.removeAttribute("aria-invalid"));
}

/**
 * Shows `problem` next to the input its `field` names: `fields` lists
 * `[field prefix, input id]` (the error sits in `<input id>-error`); an unmatched
 * problem goes to `fallback`.
 */
function showProblem(problem, fields, fallback) {
  if (problem.status === 401) {
    $("api-key-error").textContent = problem.detail;
    $("api-key").setAttribute("aria-invalid", "true");
    $("api-key").focus();
    return;
  }
  const field = problem.field ?? "";
  let best = null;
  for (const [prefix, input] of fields) {
    if (fieldMatches(field, prefix) && (!best || prefix.length > best[0].length)) best = [prefix, input];
  }
  const message = field ? `${field}: ${problem.detail}` : problem.detail;
  if (best) {
    const input = $(best[1]);
    $(`${best[1]}-error`).textContent = message;
    if (input) {
      input.setAttribute("aria-invalid", "true");
      input.setAttribute("aria-describedby", `${best[1]}-error`);
    }
  } else {
    $(fallback).textContent = message;
  }
}

/** Runs `work` with `button` disabled and a status line. */
async function busy(button, status, text, work) {
  button.disabled = true;
  status.textContent = text;
  try {
    await work();
  } finally {
    button.disabled = false;
  }
}

// ---------------------------------------------------------------- series helpers

function frequencyMs(text) {
  const match = /^(\d+)\s*(us|ms|s|m|h|d|w|mo|q|y)$/.exec((text ?? "").trim().toLowerCase());
  if (!match) return 3_600_000;
  const unit = { us: 1e-3, ms: 1, s: 1e3, m: 6e4, h: 3.6e6, d: 8.64e7, w: 6.048e8, mo: 2.63e9, q: 7.89e9, y: 3.156e10 }[match[2]];
  return Number(match[1]) * unit;
}

/** The grid step of a series: its frequency, else its first timestamps' spacing. */
function stepMs(series) {
  if (series?.frequency) return frequencyMs(series.frequency);
  const [a, b] = (series?.timestamps ?? []).map((t) => Date.parse(t));
  return b > a ? b - a : 3_600_000;
}

function historyTimes(series) {
  if (series.timestamps) return series.timestamps.map((t) => Date.parse(t));
  const start = Date.parse(series.start);
  const step = stepMs(series);
  return series.channels[0].values.map((_, i) => start + i * step);
}

const current = () => state.series[state.index];
const channelsOf = (role) => (current()?.channels ?? []).filter((c) => c.role === role).map((c) => c.name);

function lastValue(values) {
  for (let i = values.length - 1; i >= 0; i -= 1) if (values[i] !== null && values[i] !== undefined) return values[i];
  return null;
}

/** The last `count` points of the history of channel `name`. */
function historyTail(name, count) {
  const series = current();
  const channel = series.channels.find((c) => c.name === name);
  const times = historyTimes(series);
  const from = Math.max(0, times.length - count);
  return { x: times.slice(from), y: channel.values.slice(from) };
}

const tailLength = (horizon) => Math.max(3 * horizon, 96);
const quantile = (channel, level) => channel.quantiles.find((q) => Math.abs(q.level - level) < 1e-9)?.values;
const round = (value) => +value.toFixed(6);

function option(select, value, text) {
  const element = document.createElement("option");
  element.value = value;
  element.textContent = text ?? value;
  select.appendChild(element);
}

function fillSelect(select, values, keep = true) {
  const previous = select.value;
  select.replaceChildren();
  values.forEach((value) => option(select, value));
  if (keep && values.includes(previous)) select.value = previous;
}

// ---------------------------------------------------------------- data

/** Makes `series` the working data, with a horizon and plan search that suit it. */
function useSeries(series, { horizon, plan } = {}) {
  state.series = structuredClone(series);
  state.index = 0;
  state.planDefaults = plan ?? null;
  const select = $("series-select");
  select.replaceChildren();
  state.series.forEach((s, i) => option(select, i, s.id ?? `series-${i}`));
  if (horizon) ["forecast-horizon", "whatif-horizon", "plan-horizon"].forEach((id) => ($(id).value = horizon));
  $("channels").hidden = false;
  $("forecast-charts").replaceChildren();
  $("whatif-charts").replaceChildren();
  $("plan-result").hidden = true;
  const first = state.series[0];
  $("data-status").textContent =
    `${state.series.length} series loaded; ${first.id ?? "series-0"} has ${first.channels[0]?.values.length ?? 0} steps` +
    ` of ${first.channels.length} channels${first.frequency ? ` at ${first.frequency}` : ""}.`;
  seriesChanged();
}

function seriesChanged() {
  renderRoles();
  rolesChanged();
}

function renderRoles() {
  const body = $("roles-body");
  body.replaceChildren();
  current().channels.forEach((channel, i) => {
    const row = body.insertRow();
    const name = row.insertCell();
    name.textContent = channel.name;
    const role = row.insertCell();
    const select = document.createElement("select");
    select.id = `role-${i}`;
    select.setAttribute("aria-label", `Role of ${channel.name}`);
    ["target", "action", "covariate"].forEach((r) => option(select, r));
    select.value = channel.role;
    select.addEventListener("change", () => {
      for (const series of state.series) {
        for (const c of series.channels) if (c.name === channel.name) c.role = select.value;
      }
      rolesChanged();
    });
    role.appendChild(select);
    const last = lastValue(channel.values);
    row.insertCell().textContent = last === null ? "—" : formatNumber(last);
  });
}

/** Refills every control that lists channels, and resets the plans. */
function rolesChanged() {
  const targets = channelsOf("target");
  const actions = channelsOf("action");
  fillSelect($("whatif-action"), actions);
  fillSelect($("whatif-channel"), targets);
  fillSelect($("plan-action"), actions);
  fillSelect($("plan-channel"), targets);
  planDefaults();
  resetPlans();
}

function planDefaults() {
  const defaults = state.planDefaults;
  const space = defaults?.actions?.find((a) => channelsOf("action").includes(a.channel));
  const action = space?.channel ?? $("plan-action").value;
  if (action) $("plan-action").value = action;
  const level = action ? lastValue(current().channels.find((c) => c.name === action).values) ?? 1 : 1;
  $("plan-min").value = space?.min ?? Math.max(1, Math.floor(level / 2));
  $("plan-max").value = space?.max ?? Math.ceil(level * 2) + 1;
  $("plan-step").value = space?.step ?? 1;
  $("plan-change-every").value = space?.change_every ?? "";
  $("plan-cost").value = space?.cost_per_unit ?? 1;
  const constraint = defaults?.constraint;
  const targets = channelsOf("target");
  const channel = constraint && targets.includes(constraint.channel)
    ? constraint.channel
    : targets.find((t) => t.includes("latency")) ?? targets[0];
  if (!channel) return;
  $("plan-channel").value = channel;
  $("plan-quantile").value = constraint?.quantile ?? 0.9;
  $("plan-bound").value = constraint?.min !== undefined && constraint?.min !== null ? "min" : "max";
  const values = current().channels.find((c) => c.name === channel).values.filter((v) => v !== null);
  const threshold = constraint?.max ?? constraint?.min ?? (values.length > 0 ? 1.2 * Math.max(...values) : null);
  $("plan-threshold").value = threshold === null ? "" : +threshold.toPrecision(4);
}

async function loadExamples() {
  try {
    const answer = await api("GET", "/v1/examples");
    const select = $("example-select");
    select.replaceChildren();
    answer.examples.forEach((e) => option(select, e.name, e.title));
    const describe = () => {
      $("example-description").textContent = answer.examples.find((e) => e.name === select.value)?.description ?? "";
    };
    select.onchange = describe;
    describe();
  } catch (problem) {
    showProblem(problem, [], "example-error");
  }
}

async function loadModel() {
  try {
    const answer = await api("GET", "/v1/models");
    state.model = answer.models.find((m) => m.default) ?? answer.models[0];
    const m = state.model;
    $("model-info").textContent =
      `${m.name}: ${formatNumber(m.parameters)} parameters on ${m.device}; ` +
      `${m.min_loops}–${m.max_loops} loops per patch, horizon up to ${m.max_horizon} steps`;
    $("api-key-error").textContent = "";
    $("api-key").removeAttribute("aria-invalid");
  } catch (problem) {
    $("model-info").textContent = "not connected";
    showProblem(problem, [], "api-key-error");
  }
}

async function loadExample() {
  clearErrors($("data"));
  const name = $("example-select").value;
  await busy($("load-example"), $("data-status"), `loading ${name}…`, async () => {
    try {
      const dataset = await api("GET", `/v1/examples/${encodeURIComponent(name)}`);
      useSeries(dataset.series, { horizon: dataset.horizon, plan: dataset.plan });
    } catch (problem) {
      $("data-status").textContent = "";
      showProblem(problem, [], "example-error");
    }
  });
}

async function uploadFile() {
  clearErrors($("data"));
  const file = $("upload-file").files[0];
  if (!file) {
    showProblem({ field: "file", detail: "choose a file first" }, [["file", "upload-file"]], "upload-file-error");
    return;
  }
  const params = new URLSearchParams({ name: file.name, layout: $("upload-layout").value });
  const optional = { series_id: "upload-series-id", timestamp: "upload-timestamp", frequency: "upload-frequency", actions: "upload-actions", covariates: "upload-covariates" };
  for (const [key, id] of Object.entries(optional)) {
    const value = $(id).value.trim();
    if (value) params.set(key, value);
  }
  await busy($("upload-button"), $("data-status"), `reading ${file.name}…`, async () => {
    try {
      const answer = await api("POST", `/v1/series?${params}`, file, "application/octet-stream");
      useSeries(answer.series);
      $("data-status").textContent += ` Read ${answer.rows} rows; ${answer.gap_cells} cells are gaps.`;
    } catch (problem) {
      $("data-status").textContent = "";
      const fields = [["file", "upload-file"], ["name", "upload-file"], ["format", "upload-file"], ["query", "upload-file"], ["layout", "upload-file"], ["targets", "upload-file"]];
      for (const [key, id] of Object.entries(optional)) fields.push([key, id]);
      showProblem(problem, fields, "upload-file-error");
    }
  });
}

function usePasted() {
  clearErrors($("data"));
  const fail = (detail) => showProblem({ field: "json", detail }, [["json", "paste-json"]], "paste-json-error");
  let value;
  try {
    value = JSON.parse($("paste-json").value);
  } catch (error) {
    fail(`not valid JSON: ${error.message}`);
    return;
  }
  let series = Array.isArray(value) ? value : value?.series;
  if (series && !Array.isArray(series)) series = [series];
  if (!series || series.length === 0) {
    fail("give a request with a `series` array (or the array itself)");
    return;
  }
  const bad = series.findIndex((s) => !Array.isArray(s?.channels) || s.channels.length === 0 || !s.channels.every((c) => Array.isArray(c?.values) && typeof c?.name === "string"));
  if (bad >= 0) {
    fail(`series[${bad}] needs a \`channels\` array of {name, role, values}`);
    return;
  }
  // A channel without a role shows up as a target in the roles table, to be changed there.
  series.forEach((s) => s.channels.forEach((c) => {
    c.role ??= "target";
  }));
  const plan = value.actions && value.constraint ? { actions: value.actions, constraint: value.constraint } : null;
  useSeries(series, { horizon: value.horizon, plan });
}

// ---------------------------------------------------------------- forecast view

/** Starts a view's run: clears its errors and the data section's; false without data. */
function readyToRun(event, view, error) {
  event.preventDefault();
  clearErrors($(view));
  clearErrors($("data"));
  if (current()) return true;
  $(error).textContent = "load data first";
  return false;
}

const SERIES_FIELDS = [["series", "series"]];

async function runForecast(event) {
  if (!readyToRun(event, "view-forecast", "forecast-error")) return;
  const view = $("view-forecast");
  const bands = [...view.querySelectorAll(".bands input:checked")].map((b) => Number(b.value));
  const levels = new Set([0.5]);
  bands.forEach((b) => {
    levels.add(round((1 - b) / 2));
    levels.add(round((1 + b) / 2));
  });
  const horizon = Number($("forecast-horizon").value);
  const body = { series: [current()], horizon, quantiles: [...levels].sort((a, b) => a - b) };
  await busy($("forecast-run"), $("forecast-status"), "forecasting…", async () => {
    try {
      const answer = await api("POST", "/v1/forecast", body);
      renderForecast(answer.series[0], bands, horizon);
    } catch (problem) {
      $("forecast-status").textContent = "";
      showProblem(problem, [["horizon", "forecast-horizon"], ["quantiles", "forecast-quantiles"], ...SERIES_FIELDS], "forecast-error");
    }
  });
}

function renderForecast(forecast, bands, horizon) {
  const charts = $("forecast-charts");
  charts.replaceChildren();
  const x = forecast.timestamps.map((t) => Date.parse(t));
  for (const channel of forecast.channels) {
    const figure = document.createElement("figure");
    figure.className = "chart";
    figure.dataset.channel = channel.name;
    const caption = document.createElement("figcaption");
    caption.textContent = `${channel.name}: history, median and ${bands.map((b) => `${BAND_LEVELS[b]} %`).join(" / ") || "no"} bands`;
    figure.appendChild(caption);
    const layers = [{ kind: "line", ...historyTail(channel.name, tailLength(horizon)), className: "history" }];
    for (const band of [...bands].sort((a, b) => b - a)) {
      layers.push({
        kind: "band",
        x,
        lower: quantile(channel, round((1 - band) / 2)),
        upper: quantile(channel, round((1 + band) / 2)),
        className: `band band-${BAND_LEVELS[band]}`,
        data: { level: band },
      });
    }
    layers.push({ kind: "line", x, y: quantile(channel, 0.5), className: "median" });
    figure.appendChild(timeChart({ layers, label: `Forecast of ${channel.name}` }));
    figure.appendChild(loopsStrip({ loops: forecast.loops, maxLoops: state.model?.max_loops ?? 8, label: `Loops used per step for ${channel.name}` }));
    charts.appendChild(figure);
  }
  const loops = forecast.loops;
  const mean = loops.reduce((a, b) => a + b, 0) / Math.max(loops.length, 1);
  $("forecast-status").textContent =
    `${forecast.id}: ${loops.length} steps of ${forecast.channels.length} channels; ` +
    `loops per step ${Math.min(...loops)}–${Math.max(...loops)} (mean ${mean.toFixed(1)}).`;
}

// ---------------------------------------------------------------- what-if view

/** Steps per editable segment: an hour's worth below an hour, at most 24 segments. */
function segmentLength(horizon) {
  const perHour = Math.max(1, Math.round(3_600_000 / stepMs(current())));
  return Math.max(perHour, Math.ceil(horizon / 24));
}

function resetPlans() {
  const action = $("whatif-action").value;
  state.plans = [];
  if (action) {
    const level = lastValue(current().channels.find((c) => c.name === action).values) ?? 1;
    const delta = Math.max(1, Math.round(level * 0.25));
    state.plans = [
      { name: "hold", level },
      { name: "scale-out", level: level + delta },
      { name: "scale-in", level: Math.max(0, level - delta) },
    ].map(({ name, level: l }) => ({ name, values: Array(segmentCount()).fill(l) }));
  }
  renderPlans();
}

const segmentCount = () => {
  const horizon = Math.max(1, Number($("whatif-horizon").value) || 1);
  return Math.ceil(horizon / segmentLength(horizon));
};

function renderPlans() {
  const container = $("plans");
  container.replaceChildren();
  const action = $("whatif-action").value;
  if (!action) {
    container.textContent = "No action channel: mark one in the roles table to plan it.";
    return;
  }
  const horizon = Math.max(1, Number($("whatif-horizon").value) || 1);
  const length = segmentLength(horizon);
  const all = state.plans.flatMap((p) => p.values);
  const history = current().channels.find((c) => c.name === action).values.filter((v) => v !== null);
  const top = Math.ceil(Math.max(...all, ...history) * 1.5) + 1;
  state.plans.forEach((plan, k) => {
    const editor = document.createElement("fieldset");
    editor.className = "plan-editor";
    editor.dataset.plan = plan.name;
    editor.style.setProperty("--series-color", PALETTE[k % PALETTE.length]);
    const title = document.createElement("legend");
    title.textContent = k === 0 ? `Plan ${k + 1} (baseline)` : `Plan ${k + 1}`;
    editor.appendChild(title);
    const nameField = document.createElement("div");
    nameField.className = "field";
    const nameLabel = document.createElement("label");
    nameLabel.textContent = "Name";
    nameLabel.htmlFor = `plan-name-${k}`;
    const name = document.createElement("input");
    name.id = `plan-name-${k}`;
    name.className = "plan-name";
    name.value = plan.name;
    name.addEventListener("change", () => {
      plan.name = name.value.trim();
      editor.dataset.plan = plan.name;
    });
    nameField.append(nameLabel, name);
    const nameError = document.createElement("p");
    nameError.className = "error";
    nameError.id = `plan-name-${k}-error`;
    nameError.setAttribute("role", "alert");
    nameField.appendChild(nameError);
    editor.appendChild(nameField);
    const remove = document.createElement("button");
    remove.type = "button";
    remove.textContent = "Remove";
    remove.className = "remove-plan";
    remove.setAttribute("aria-label", `Remove plan ${plan.name}`);
    remove.disabled = state.plans.length === 1;
    remove.addEventListener("click", () => {
      state.plans.splice(k, 1);
      renderPlans();
    });
    const inputs = document.createElement("div");
    inputs.className = "plan-values";
    const cells = plan.values.map((value, s) => {
      const input = document.createElement("input");
      input.type = "number";
      input.step = "any";
      input.className = "plan-value";
      input.value = value;
      const from = s * length + 1;
      const to = Math.min((s + 1) * length, horizon);
      input.setAttribute("aria-label", `${action} in plan ${plan.name}, steps ${from}–${to}`);
      input.title = `steps ${from}–${to}`;
      input.addEventListener("change", () => {
        plan.values[s] = Number(input.value);
        editorSvg.replaceWith((editorSvg = drawEditor()));
      });
      inputs.appendChild(input);
      return input;
    });
    const drawEditor = () =>
      stepEditor({
        values: plan.values,
        min: 0,
        max: Math.max(top, ...plan.values),
        step: 1,
        label: `${action} in plan ${plan.name}`,
        onChange: (s, value) => {
          plan.values[s] = value;
          cells[s].value = value;
        },
      });
    let editorSvg = drawEditor();
    editor.append(inputs, remove, editorSvg);
    const valuesError = document.createElement("p");
    valuesError.className = "error";
    valuesError.id = `plan-values-${k}-error`;
    valuesError.setAttribute("role", "alert");
    editor.appendChild(valuesError);
    container.appendChild(editor);
  });
}

function addPlan() {
  const base = state.plans[state.plans.length - 1]?.values ?? Array(segmentCount()).fill(1);
  let n = state.plans.length + 1;
  while (state.plans.some((p) => p.name === `plan-${n}`)) n += 1;
  state.plans.push({ name: `plan-${n}`, values: [...base] });
  renderPlans();
}

/** Resizes every plan to the horizon's segments, keeping what was typed. */
function horizonChanged() {
  const count = segmentCount();
  for (const plan of state.plans) {
    const last = plan.values[plan.values.length - 1] ?? 1;
    plan.values = Array.from({ length: count }, (_, i) => plan.values[i] ?? last);
  }
  renderPlans();
}

async function runWhatIf(event) {
  if (!readyToRun(event, "view-whatif", "whatif-error")) return;
  const action = $("whatif-action").value;
  const horizon = Number($("whatif-horizon").value);
  const length = segmentLength(horizon);
  const plans = state.plans.map((plan) => ({
    name: plan.name,
    actions: { [action]: Array.from({ length: horizon }, (_, t) => plan.values[Math.floor(t / length)]) },
  }));
  const body = { series: [current()], horizon, plans, baseline: plans[0]?.name, quantiles: WHATIF_QUANTILES };
  await busy($("whatif-run"), $("whatif-status"), "running the plans…", async () => {
    try {
      state.whatif = await api("POST", "/v1/whatif", body);
      renderWhatIf();
    } catch (problem) {
      $("whatif-status").textContent = "";
      const fields = [["horizon", "whatif-horizon"], ["plans", "whatif-action"], ...SERIES_FIELDS];
      state.plans.forEach((_, k) => {
        fields.push([`plans[${k}].name`, `plan-name-${k}`]);
        fields.push([`plans[${k}].actions`, `plan-values-${k}`]);
      });
      showProblem(problem, fields, "whatif-error");
    }
  });
}

function renderWhatIf() {
  const answer = state.whatif;
  if (!answer) return;
  const charts = $("whatif-charts");
  charts.replaceChildren();
  const series = answer.series[0];
  const name = $("whatif-channel").value || series.plans[0].channels[0].name;
  const x = series.timestamps.map((t) => Date.parse(t));
  const color = (k) => PALETTE[k % PALETTE.length];
  const scenarios = [{ kind: "line", ...historyTail(name, tailLength(x.length)), className: "history" }];
  const differences = [];
  series.plans.forEach((plan, k) => {
    const channel = plan.channels.find((c) => c.name === name);
    const data = { plan: plan.plan };
    scenarios.push({ kind: "band", x, lower: quantile(channel, 0.1), upper: quantile(channel, 0.9), className: "scenario-band", data, color: color(k) });
    scenarios.push({ kind: "line", x, y: quantile(channel, 0.5), className: "scenario-median", data, color: color(k) });
    if (plan.plan !== answer.baseline) {
      const difference = plan.difference.find((c) => c.name === name);
      differences.push({ kind: "line", x, y: quantile(difference, 0.5), className: "difference", data, color: color(k) });
    }
  });
  const figure = (caption, svg) => {
    const element = document.createElement("figure");
    element.className = "chart";
    const text = document.createElement("figcaption");
    text.textContent = caption;
    element.append(text, svg);
    charts.appendChild(element);
    return element;
  };
  const overlay = figure(`${name} under each plan: median and 80 % band`, timeChart({ layers: scenarios, label: `Scenarios of ${name}` }));
  overlay.classList.add("scenario-chart");
  overlay.appendChild(legend(series.plans.map((p) => p.plan)));
  if (differences.length > 0) {
    const chart = figure(
      `${name}: each plan's median minus the baseline (${answer.baseline})`,
      timeChart({ layers: differences, rules: [{ y: 0, className: "zero" }], label: `Difference from ${answer.baseline} for ${name}` }),
    );
    chart.classList.add("difference-chart");
  }
  charts.appendChild(differenceTable(series, answer.baseline));
  const loops = series.plans.flatMap((p) => p.loops);
  $("whatif-status").textContent = `${series.plans.length} plans from one encoding of ${series.id}; loops per step ${Math.min(...loops)}–${Math.max(...loops)}.`;
}

function legend(names) {
  const list = document.createElement("ul");
  list.className = "legend";
  names.forEach((name, k) => {
    const item = document.createElement("li");
    item.style.setProperty("--series-color", PALETTE[k % PALETTE.length]);
    item.textContent = name;
    list.appendChild(item);
  });
  return list;
}

/** The mean difference of every channel's median from the baseline, per plan. */
function differenceTable(series, baseline) {
  const table = document.createElement("table");
  table.className = "differences";
  const caption = table.createCaption();
  caption.textContent = `Mean difference of the median from ${baseline} over the horizon`;
  const head = table.createTHead().insertRow();
  const names = series.plans[0].difference.map((c) => c.name);
  ["plan", ...names].forEach((text) => {
    const cell = document.createElement("th");
    cell.scope = "col";
    cell.textContent = text;
    head.appendChild(cell);
  });
  const body = table.createTBody();
  for (const plan of series.plans) {
    const row = body.insertRow();
    row.insertCell().textContent = plan.plan;
    for (const channel of plan.difference) {
      const values = quantile(channel, 0.5);
      const mean = values.reduce((a, b) => a + b, 0) / values.length;
      row.insertCell().textContent = `${mean >= 0 ? "+" : ""}${formatNumber(mean)}`;
    }
  }
  return table;
}

// ---------------------------------------------------------------- plan view

const PLAN_FIELDS = [
  ["horizon", "plan-horizon"],
  ["actions", "plan-action"],
  ["actions[0].channel", "plan-action"],
  ["actions[0].min", "plan-min"],
  ["actions[0].max", "plan-max"],
  ["actions[0].step", "plan-step"],
  ["actions[0].change_every", "plan-change-every"],
  ["actions[0].cost_per_unit", "plan-cost"],
  ["constraint", "plan-channel"],
  ["constraint.channel", "plan-channel"],
  ["constraint.quantile", "plan-quantile"],
  ["constraint.max", "plan-threshold"],
  ["constraint.min", "plan-threshold"],
  ["series", "series"],
];

async function runPlan(event) {
  if (!readyToRun(event, "view-plan", "plan-error")) return;
  const number = (id) => ($(id).value === "" ? null : Number($(id).value));
  const level = number("plan-quantile");
  const space = {
    channel: $("plan-action").value,
    min: number("plan-min"),
    max: number("plan-max"),
    step: number("plan-step") ?? 1,
    cost_per_unit: number("plan-cost"),
  };
  if (number("plan-change-every") !== null) space.change_every = number("plan-change-every");
  const constraint = { channel: $("plan-channel").value, quantile: level, [$("plan-bound").value]: number("plan-threshold") };
  const levels = [...new Set([0.1, 0.5, 0.9, level].filter((l) => l > 0 && l < 1))].sort((a, b) => a - b);
  const body = { series: current(), horizon: number("plan-horizon"), actions: [space], constraint, quantiles: levels };
  await busy($("plan-run"), $("plan-status"), "searching plans…", async () => {
    try {
      state.planAnswer = await api("POST", "/v1/plan", body);
      state.planAnswer.request = body;
      renderPlan();
    } catch (problem) {
      $("plan-status").textContent = "";
      $("plan-result").hidden = true;
      // A plan's one series sits at `series`, not `series[0]`.
      showProblem(problem, PLAN_FIELDS, "plan-error");
    }
  });
}

function renderPlan(inspected = null) {
  const answer = state.planAnswer;
  const { request } = answer;
  const outcome = answer.plan ?? answer.closest;
  const action = request.actions[0].channel;
  const x = answer.timestamps.map((t) => Date.parse(t));
  $("plan-result").hidden = false;
  $("plan-detail").textContent = answer.detail;
  $("plan-detail").className = `detail ${answer.feasible ? "feasible" : "infeasible"}`;
  $("plan-status").textContent = `${answer.search.candidates} schedules evaluated in ${answer.search.rounds} batched what-ifs.`;
  $("plan-schedule-caption").textContent = answer.feasible
    ? "Recommended schedule"
    : "Least risky schedule (none evaluated keeps the bound)";
  if (!inspected) $("frontier-inspect").textContent = "";

  const schedule = [{ kind: "step", x, y: outcome.candidate.actions[action], className: "schedule" }];
  if (inspected) schedule.push({ kind: "step", x, y: inspected.actions[action], className: "inspected-schedule" });
  $("plan-schedule").replaceChildren(timeChart({ layers: schedule, label: `${action} per step under the recommended plan`, height: 160 }));
  const body = $("plan-schedule-body");
  body.replaceChildren();
  outcome.candidate.actions[action].forEach((value, t, all) => {
    if (t > 0 && all[t - 1] === value) return;
    const row = body.insertRow();
    row.insertCell().textContent = answer.timestamps[t].replace("T", " ").slice(0, 16);
    row.insertCell().textContent = formatNumber(value);
  });

  const { channel: name, quantile: level } = request.constraint;
  const bound = request.constraint.max ?? request.constraint.min;
  const channel = outcome.channels.find((c) => c.name === name);
  const layers = [
    { kind: "line", ...historyTail(name, tailLength(x.length)), className: "history" },
    { kind: "band", x, lower: quantile(channel, 0.1), upper: quantile(channel, 0.9), className: "band band-80" },
    { kind: "line", x, y: quantile(channel, 0.5), className: "median" },
    { kind: "line", x, y: quantile(channel, level), className: "constraint-quantile" },
  ];
  $("plan-forecast-caption").textContent = `${name} under the plan: median, 80 % band, q${level} and the bound`;
  $("plan-forecast").replaceChildren(
    timeChart({ layers, rules: [{ y: bound, className: "threshold", label: `bound ${formatNumber(bound)}` }], label: `Forecast of ${name} under the plan` }),
  );

  const chosen = JSON.stringify(outcome.candidate.actions);
  const points = answer.frontier.map((c) => ({
    x: c.cost,
    y: c.breach_probability,
    className: `frontier-point${c.meets ? " meets" : ""}${JSON.stringify(c.actions) === chosen ? " chosen" : ""}${inspected === c ? " inspected" : ""}`,
    label: `cost ${formatNumber(c.cost)}, breach probability ${(100 * c.breach_probability).toFixed(1)} %${c.meets ? ", keeps the bound" : ""}`,
  }));
  $("plan-frontier").replaceChildren(
    scatterChart({
      points,
      label: "Cost against breach probability of the frontier's schedules",
      xLabel: "cost over the horizon",
      yLabel: "breach probability",
      onSelect: (i) => inspect(answer.frontier[i], action),
    }),
  );
}

function inspect(candidate, action) {
  renderPlan(candidate);
  const levels = [...new Set(candidate.actions[action])].map(formatNumber).join(", ");
  $("frontier-inspect").textContent =
    `Inspected: cost ${formatNumber(candidate.cost)}, breach probability ${(100 * candidate.breach_probability).toFixed(1)} %, ` +
    `worst q ${formatNumber(candidate.worst)}; ${candidate.meets ? "keeps" : "breaks"} the bound; ${action} levels ${levels}.`;
  document.querySelector(`#plan-frontier circle[data-index="${state.planAnswer.frontier.indexOf(candidate)}"]`)?.focus();
}

// ---------------------------------------------------------------- tabs and start

function selectTab(tab) {
  document.querySelectorAll('[role="tab"]').forEach((t) => {
    const selected = t === tab;
    t.setAttribute("aria-selected", String(selected));
    t.tabIndex = selected ? 0 : -1;
    $(t.getAttribute("aria-controls")).hidden = !selected;
  });
  tab.focus();
}

function start() {
  const tabs = [...document.querySelectorAll('[role="tab"]')];
  tabs.forEach((tab, i) => {
    tab.addEventListener("click", () => selectTab(tab));
    tab.addEventListener("keydown", (event) => {
      const next = { ArrowRight: i + 1, ArrowLeft: i - 1, Home: 0, End: tabs.length - 1 }[event.key];
      if (next !== undefined) {
        event.preventDefault();
        selectTab(tabs[(next + tabs.length) % tabs.length]);
      }
    });
  });
  document.querySelectorAll('input[name="source"]').forEach((radio) =>
    radio.addEventListener("change", () => {
      for (const source of ["example", "upload", "paste"]) $(`${source}-panel`).hidden = radio.value !== source;
    }),
  );
  $("load-example").addEventListener("click", loadExample);
  $("upload-button").addEventListener("click", uploadFile);
  $("paste-button").addEventListener("click", usePasted);
  $("series-select").addEventListener("change", () => {
    state.index = Number($("series-select").value);
    seriesChanged();
  });
  $("forecast-form").addEventListener("submit", runForecast);
  $("whatif-form").addEventListener("submit", runWhatIf);
  $("plan-form").addEventListener("submit", runPlan);
  $("add-plan").addEventListener("click", addPlan);
  $("whatif-action").addEventListener("change", resetPlans);
  $("whatif-horizon").addEventListener("change", horizonChanged);
  $("whatif-channel").addEventListener("change", renderWhatIf);
  $("api-key").addEventListener("change", () => {
    loadModel();
    loadExamples();
  });
  loadModel();
  loadExamples();
}

start();
