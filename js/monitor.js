// TrainingMonitor: four Plotly charts that grow while train() runs, with the newest figures as text.
// The kernel sends at most one update per `interval`; each one is drawn once, on the next frame.

import Plotly from "plotly.js-basic-dist-min";
import { readArray, readVector } from "./wire.js";
import { createFrame, divs } from "./frame.js";

// Okabe-Ito (told apart with the common colour-vision deficiencies) for the named figures; the
// codebooks take the rest of it in turn, then Plotly's own sequence.
const NAMED = { loss: "#0072B2", lm_loss: "#E69F00", used_share: "#009E73", dead: "#D55E00", revived: "#CC79A7" };
const SITES = ["#56B4E9", "#000000", "#F0E442", "#999999", "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd"];
const SITES_MORE = ["#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"];

const PANELS = [
  { title: "loss (log scale)", pick: (name) => name === "loss" || name === "lm_loss", format: ".3f" },
  { title: "reconstruction (log scale)", pick: (name) => name.startsWith("reconstruction/"), format: ".4f" },
  { title: "share of codes used since the last log", pick: (name) => name === "used_share", format: ".0%" },
  { title: "dead and revived codes", pick: (name) => name === "dead" || name === "revived", format: ",d" },
];

const LABELS = { loss: "loss (with reconstruction)", lm_loss: "LM loss", used_share: "codes used" };

function label(name) {
  if (name.startsWith("reconstruction/")) return name.slice("reconstruction/".length);
  return LABELS[name] || name;
}

function siteColour(i) {
  return i < SITES.length ? SITES[i] : SITES_MORE[(i - SITES.length) % SITES_MORE.length];
}

/** One trace per series, each on its panel's axes; NaN (no value at that point) leaves a gap. */
function traces(x, names, table) {
  const [points, columns] = table.shape.length === 2 ? table.shape : [0, 0];
  const out = [];
  let sites = 0;
  names.forEach((name, j) => {
    const panel = PANELS.findIndex((p) => p.pick(name));
    if (panel < 0) return;
    const y = new Float64Array(points);
    for (let i = 0; i < points; i++) y[i] = table.values[i * columns + j];
    const axis = panel === 0 ? "" : String(panel + 1);
    out.push({
      type: "scatter",
      mode: points > 1 ? "lines" : "markers",
      name: label(name),
      legendgroup: String(panel),
      x: Array.from(x),
      y: Array.from(y, (v) => (Number.isNaN(v) ? null : v)),
      xaxis: `x${axis}`,
      yaxis: `y${axis}`,
      line: { width: 1.6, color: NAMED[name] || siteColour(sites++) },
      hovertemplate: `${label(name)}: %{y:${PANELS[panel].format}}<extra>step %{x}</extra>`,
    });
  });
  return out;
}

function layout(starts) {
  const axes = {};
  PANELS.forEach((panel, i) => {
    const n = i === 0 ? "" : String(i + 1);
    axes[`xaxis${n}`] = { title: { text: i >= 2 ? "step" : "" }, zeroline: false, automargin: true };
    axes[`yaxis${n}`] = {
      title: { text: panel.title, font: { size: 12 } },
      zeroline: false,
      automargin: true,
      type: i < 2 ? "log" : "linear", // losses fall over orders of magnitude
      rangemode: i >= 2 ? "tozero" : "normal",
      tickformat: i === 2 ? ".0%" : i < 2 ? "~g" : undefined,
    };
  });
  const shapes = [];
  for (const x of starts) {
    PANELS.forEach((_, i) => {
      const n = i === 0 ? "" : String(i + 1);
      shapes.push({
        type: "line",
        xref: `x${n}`,
        yref: `y${n} domain`,
        x0: x,
        x1: x,
        y0: 0,
        y1: 1,
        line: { color: "#888", width: 1, dash: "dot" },
      });
    });
  }
  return {
    grid: { rows: 2, columns: 2, pattern: "independent", xgap: 0.12, ygap: 0.18 },
    height: 460,
    margin: { l: 10, r: 10, t: 10, b: 10 },
    showlegend: true,
    legend: { orientation: "v", x: 1.02, y: 1, font: { size: 11 } },
    font: { family: "system-ui, sans-serif", size: 11 },
    paper_bgcolor: "rgba(0,0,0,0)",
    plot_bgcolor: "rgba(0,0,0,0)",
    shapes,
    ...axes,
  };
}

function render({ model, el }) {
  const frame = createFrame(el, "cbw-monitor", model);
  const { root, error, status } = frame;
  root.append(error, status);
  const [plot, latest] = divs(root, "cbw-mo-plot", "cbw-mo-latest");
  let queued = false;

  function paint() {
    queued = false;
    status.textContent = model.get("state");
    latest.textContent = model.get("latest");
    const table = readArray(model.get("values"));
    const x = readVector(model.get("steps"));
    plot.hidden = x.length === 0;
    if (plot.hidden) return;
    const data = traces(x, model.get("series"), table);
    Plotly.react(plot, data, layout(Array.from(readVector(model.get("run_starts")))), {
      displayModeBar: false,
      responsive: true,
    });
    plot.dataset.points = String(x.length); // for tests and screen readers' neighbours: what is drawn
  }

  function queue() {
    if (queued) return;
    queued = true;
    requestAnimationFrame(paint);
  }

  for (const name of ["values", "steps", "series", "run_starts", "latest", "state"]) model.on(`change:${name}`, queue);
  paint();
  return () => Plotly.purge(plot);
}

export default { render };
