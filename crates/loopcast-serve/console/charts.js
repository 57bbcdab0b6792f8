// Charts of the loopcast console, drawn as plain SVG: time charts (lines, steps and
// quantile bands), a scatter with selectable points, the loops strip and a step-line
// editor. Every mark is an element with a class, so the page can be tested and styled.

const SVG = "http://www.w3.org/2000/svg";
const MARGIN = { top: 12, right: 16, bottom: 28, left: 56 };

/** An SVG element with attributes. */
export function svgElement(name, attributes = {}, parent = null) {
  const element = document.createElementNS(SVG, name);
  for (const [key, value] of Object.entries(attributes)) {
    if (value !== undefined && value !== null) element.setAttribute(key, String(value));
  }
  if (parent) parent.appendChild(element);
  return element;
}

/** A linear scale from `domain` onto `range`. */
function scale([d0, d1], [r0, r1]) {
  const span = d1 - d0 || 1;
  return (value) => r0 + ((value - d0) / span) * (r1 - r0);
}

/** About `count` round tick values covering [lo, hi]. */
export function niceTicks(lo, hi, count = 5) {
  if (!(hi > lo)) return [lo];
  const raw = (hi - lo) / count;
  const power = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 2.5, 5, 10].map((m) => m * power).find((s) => s >= raw);
  const ticks = [];
  for (let v = Math.ceil(lo / step) * step; v <= hi + step * 1e-9; v += step) ticks.push(+v.toFixed(12));
  return ticks;
}

/** A compact number: 12.3k, 0.042, 250. */
export function formatNumber(value) {
  const size = Math.abs(value);
  if (size >= 1e6) return `${+(value / 1e6).toPrecision(3)}M`;
  if (size >= 1e4) return `${+(value / 1e3).toPrecision(3)}k`;
  return `${+value.toPrecision(3)}`;
}

function formatTime(ms, spanMs) {
  const date = new Date(ms);
  const iso = date.toISOString();
  if (spanMs > 3 * 86_400_000) return iso.slice(5, 10);
  if (spanMs > 86_400_000) return `${iso.slice(5, 10)} ${iso.slice(11, 16)}`;
  return iso.slice(11, 16);
}

/** The path of a line through the finite points of (x, y). */
function linePath(xs, ys, sx, sy, step = false) {
  let d = "";
  let open = false;
  for (let i = 0; i < xs.length; i += 1) {
    const y = ys[i];
    if (y === null || y === undefined || !Number.isFinite(y)) {
      open = false;
      continue;
    }
    const px = sx(xs[i]).toFixed(1);
    const py = sy(y).toFixed(1);
    if (!open) d += `M${px},${py}`;
    else if (step) d += `H${px}V${py}`;
    else d += `L${px},${py}`;
    open = true;
  }
  return d;
}

/** The closed path of the area between `lower` and `upper`. */
function bandPath(xs, lower, upper, sx, sy) {
  const top = xs.map((x, i) => `${sx(x).toFixed(1)},${sy(upper[i]).toFixed(1)}`);
  const bottom = xs.map((x, i) => `${sx(x).toFixed(1)},${sy(lower[i]).toFixed(1)}`).reverse();
  return `M${top.join("L")}L${bottom.join("L")}Z`;
}

/**
 * A time chart. `layers` are drawn in order, each
 * `{ kind: "line" | "step" | "band", x, y | lower + upper, className, data }`
 * (x in milliseconds); `rules` are horizontal lines `{ y, className, label }`.
 */
export function timeChart({ layers, rules = [], label, width = 720, height = 240 }) {
  const svg = svgElement("svg", {
    viewBox: `0 0 ${width} ${height}`,
    class: "chart-svg",
    role: "img",
    "aria-label": label,
  });
  svgElement("title", {}, svg).textContent = label;
  const xs = layers.flatMap((layer) => layer.x);
  const ys = layers
    .flatMap((layer) => (layer.kind === "band" ? [...layer.lower, ...layer.upper] : layer.y))
    .concat(rules.map((rule) => rule.y))
    .filter((v) => v !== null && v !== undefined && Number.isFinite(v));
  if (xs.length === 0 || ys.length === 0) return svg;
  let [y0, y1] = [Math.min(...ys), Math.max(...ys)];
  const pad = (y1 - y0) * 0.06 || Math.abs(y1) * 0.1 || 1;
  [y0, y1] = [y0 - pad, y1 + pad];
  const [x0, x1] = [Math.min(...xs), Math.max(...xs)];
  const sx = scale([x0, x1], [MARGIN.left, width - MARGIN.right]);
  const sy = scale([y0, y1], [height - MARGIN.bottom, MARGIN.top]);

  const axes = svgElement("g", { class: "axes" }, svg);
  for (const tick of niceTicks(y0, y1)) {
    svgElement("line", { class: "grid", x1: MARGIN.left, x2: width - MARGIN.right, y1: sy(tick), y2: sy(tick) }, axes);
    const text = svgElement("text", { class: "tick", x: MARGIN.left - 6, y: sy(tick) + 4, "text-anchor": "end" }, axes);
    text.textContent = formatNumber(tick);
  }
  for (const tick of niceTicks(x0, x1, 6)) {
    const text = svgElement("text", { class: "tick", x: sx(tick), y: height - 8, "text-anchor": "middle" }, axes);
    text.textContent = formatTime(tick, x1 - x0);
  }

  const marks = svgElement("g", { class: "marks" }, svg);
  for (const layer of layers) {
    const d =
      layer.kind === "band"
        ? bandPath(layer.x, layer.lower, layer.upper, sx, sy)
        : linePath(layer.x, layer.y, sx, sy, layer.kind === "step");
    const path = svgElement("path", { d, class: layer.className }, marks);
    for (const [key, value] of Object.entries(layer.data ?? {})) path.dataset[key] = value;
    if (layer.color) path.style.setProperty("--series-color", layer.color);
  }
  for (const rule of rules) {
    svgElement("line", { class: rule.className, x1: MARGIN.left, x2: width - MARGIN.right, y1: sy(rule.y), y2: sy(rule.y) }, marks);
    if (rule.label) {
      const text = svgElement("text", { class: `${rule.className}-label`, x: width - MARGIN.right, y: sy(rule.y) - 4, "text-anchor": "end" }, marks);
      text.textContent = rule.label;
    }
  }
  return svg;
}

/**
 * A scatter of `points` (`{ x, y, className, label }`); a point is chosen by click,
 * Enter or Space, and `onSelect(index)` is called.
 */
export function scatterChart({ points, label, xLabel, yLabel, onSelect, width = 720, height = 260 }) {
  const svg = svgElement("svg", { viewBox: `0 0 ${width} ${height}`, class: "chart-svg", role: "group", "aria-label": label });
  svgElement("title", {}, svg).textContent = label;
  if (points.length === 0) return svg;
  const xsRaw = points.map((p) => p.x);
  const ysRaw = points.map((p) => p.y);
  const padded = (lo, hi) => {
    const pad = (hi - lo) * 0.08 || Math.abs(hi) * 0.1 || 0.05;
    return [lo - pad, hi + pad];
  };
  const [x0, x1] = padded(Math.min(...xsRaw), Math.max(...xsRaw));
  const [y0, y1] = padded(Math.min(...ysRaw), Math.max(...ysRaw));
  const bottom = MARGIN.bottom + 12;
  const sx = scale([x0, x1], [MARGIN.left, width - MARGIN.right]);
  const sy = scale([y0, y1], [height - bottom, MARGIN.top]);
  const axes = svgElement("g", { class: "axes" }, svg);
  for (const tick of niceTicks(y0, y1)) {
    svgElement("line", { class: "grid", x1: MARGIN.left, x2: width - MARGIN.right, y1: sy(tick), y2: sy(tick) }, axes);
    svgElement("text", { class: "tick", x: MARGIN.left - 6, y: sy(tick) + 4, "text-anchor": "end" }, axes).textContent = formatNumber(tick);
  }
  for (const tick of niceTicks(x0, x1, 6)) {
    svgElement("text", { class: "tick", x: sx(tick), y: height - bottom + 16, "text-anchor": "middle" }, axes).textContent = formatNumber(tick);
  }
  svgElement("text", { class: "axis-label", x: (MARGIN.left + width - MARGIN.right) / 2, y: height - 4, "text-anchor": "middle" }, axes).textContent = xLabel;
  const yText = svgElement("text", { class: "axis-label", x: 12, y: height / 2, "text-anchor": "middle", transform: `rotate(-90 12 ${height / 2})` }, axes);
  yText.textContent = yLabel;
  const marks = svgElement("g", { class: "marks" }, svg);
  points.forEach((point, index) => {
    const circle = svgElement("circle", {
      cx: sx(point.x),
      cy: sy(point.y),
      r: 6,
      class: point.className,
      tabindex: 0,
      role: "button",
      "aria-label": point.label,
    }, marks);
    svgElement("title", {}, circle).textContent = point.label;
    circle.dataset.index = index;
    circle.addEventListener("click", () => onSelect(index));
    circle.addEventListener("keydown", (event) => {
      if (event.key === "Enter" || event.key === " ") {
        event.preventDefault();
        onSelect(index);
      }
    });
  });
  return svg;
}

/** The loops used per step, one cell each, darker for more loops. */
export function loopsStrip({ loops, maxLoops, label, width = 720, height = 22 }) {
  const svg = svgElement("svg", { viewBox: `0 0 ${width} ${height}`, class: "loops-strip", role: "img", "aria-label": label });
  svgElement("title", {}, svg).textContent = label;
  const inner = width - MARGIN.left - MARGIN.right;
  const cell = inner / Math.max(loops.length, 1);
  loops.forEach((count, step) => {
    const rect = svgElement("rect", {
      class: "loop-cell",
      x: (MARGIN.left + step * cell).toFixed(2),
      y: 2,
      width: Math.max(cell - 0.5, 0.5).toFixed(2),
      height: height - 4,
    }, svg);
    rect.style.setProperty("--intensity", (count / Math.max(maxLoops, 1)).toFixed(3));
    rect.dataset.loops = count;
    svgElement("title", {}, rect).textContent = `step ${step + 1}: ${count} loop${count === 1 ? "" : "s"}`;
  });
  const text = svgElement("text", { class: "tick", x: MARGIN.left - 6, y: height - 7, "text-anchor": "end" }, svg);
  text.textContent = "loops";
  return svg;
}

/**
 * A step line of `values` whose segments are dragged up and down, or moved with the
 * arrow keys when focused; `onChange(index, value)` gets each new value, kept in
 * [min, max] and rounded to `step`.
 */
export function stepEditor({ values, min, max, step = 1, label, onChange, width = 720, height = 90 }) {
  const svg = svgElement("svg", { viewBox: `0 0 ${width} ${height}`, class: "step-editor", role: "group", "aria-label": label });
  const sy = scale([min, max], [height - 10, 10]);
  const inner = width - MARGIN.left - MARGIN.right;
  const cell = inner / Math.max(values.length, 1);
  for (const tick of niceTicks(min, max, 3)) {
    svgElement("line", { class: "grid", x1: MARGIN.left, x2: width - MARGIN.right, y1: sy(tick), y2: sy(tick) }, svg);
    svgElement("text", { class: "tick", x: MARGIN.left - 6, y: sy(tick) + 4, "text-anchor": "end" }, svg).textContent = formatNumber(tick);
  }
  const line = svgElement("path", { class: "plan-line" }, svg);
  const current = [...values];
  const redraw = () => {
    line.setAttribute("d", current.map((v, i) => `${i === 0 ? "M" : "L"}${MARGIN.left + i * cell},${sy(v)}H${MARGIN.left + (i + 1) * cell}`).join(""));
    handles.forEach((handle, i) => handle.setAttribute("y", sy(current[i]) - 5));
  };
  const set = (index, value) => {
    const snapped = Math.min(max, Math.max(min, Math.round(value / step) * step));
    if (snapped === current[index]) return;
    current[index] = +snapped.toFixed(10);
    redraw();
    onChange(index, current[index]);
  };
  const handles = current.map((value, index) => {
    const handle = svgElement("rect", {
      class: "plan-handle",
      x: MARGIN.left + index * cell + 1,
      width: Math.max(cell - 2, 2),
      height: 10,
      rx: 3,
      tabindex: 0,
      role: "slider",
      "aria-label": `${label}, segment ${index + 1}`,
      "aria-valuemin": min,
      "aria-valuemax": max,
      "aria-valuenow": value,
    }, svg);
    handle.dataset.index = index;
    handle.addEventListener("pointerdown", (event) => {
      handle.setPointerCapture(event.pointerId);
      const move = (e) => {
        const box = svg.getBoundingClientRect();
        const y = ((e.clientY - box.top) / box.height) * height;
        set(index, min + ((height - 10 - y) / (height - 20)) * (max - min));
        handle.setAttribute("aria-valuenow", current[index]);
      };
      handle.addEventListener("pointermove", move);
      handle.addEventListener("pointerup", () => handle.removeEventListener("pointermove", move), { once: true });
    });
    handle.addEventListener("keydown", (event) => {
      const delta = { ArrowUp: step, ArrowDown: -step, PageUp: 5 * step, PageDown: -5 * step }[event.key];
      if (delta !== undefined) {
        event.preventDefault();
        set(index, current[index] + delta);
        handle.setAttribute("aria-valuenow", current[index]);
      }
    });
    return handle;
  });
  redraw();
  return svg;
}
