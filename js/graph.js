// CodeGraph: the codes that make one prediction. Rows are layers (the last on top), columns the
// token positions that hold a node, with the prompt's tokens along the bottom; a circle's area is
// its code's effect on the target, blue where it holds the target up, red where it pushes it down.
// Lines are edges: removing the lower code moves the upper code's firing margin. Hover for the
// numbers and what the code is about; click a node to select its code (and its token), or
// (click to: ablate) to remove it at that token and have the kernel recompute the graph.

import { diverging } from "./colour.js";
import { readArray } from "./wire.js";
import { codeName } from "./names.js";
import { quotedToken } from "./tokens.js";
import { createRequests } from "./request.js";
import { checkRadio, createFrame, divs, radios } from "./frame.js";

const SVG = "http://www.w3.org/2000/svg";
const COLUMN = 74; // px per position column
const ROW = 86; // px per layer row
const SLOT = 62; // px between nodes sharing a cell: room for a code's name under each
const PAD = { left: 56, top: 44, bottom: 48, right: 24 };
const MAX_R = 16;
const MIN_R = 4;

function make(tag, attrs = {}, parent = null) {
  const node = document.createElementNS(SVG, tag);
  for (const [key, value] of Object.entries(attrs)) node.setAttribute(key, String(value));
  if (parent) parent.appendChild(node);
  return node;
}

function render({ model, el }) {
  const frame = createFrame(el, "cbw-graph", model);
  const { root, error, status, tooltip } = frame;
  const requests = createRequests(model, frame);
  const [bar, title] = divs(root, "cbw-graph-bar", "cbw-graph-title");
  root.append(error, status);
  const [body] = divs(root, "cbw-graph-body");
  const svg = make("svg", { class: "cbw-graph-svg" }, body);

  const click = radios("click", model.get("choices").click || [], model.get("click"), (value) => {
    model.set("click", value);
    model.save_changes();
  });
  const clickLabel = document.createElement("span");
  clickLabel.textContent = "click to: ";
  const reset = document.createElement("button");
  reset.type = "button";
  reset.className = "cbw-graph-reset";
  reset.textContent = "Reset";
  reset.addEventListener("click", () => requests.send({ ablated: [] }, "reset"));
  bar.append(clickLabel, click, reset);

  let data = null;

  function load() {
    const nodes = readArray(model.get("nodes"));
    const effects = readArray(model.get("node_effects")).values;
    const edges = readArray(model.get("edges"));
    const edgeEffects = readArray(model.get("edge_effects")).values;
    const M = nodes.shape.length === 2 ? nodes.shape[0] : 0;
    const E = edges.shape.length === 2 ? edges.shape[0] : 0;
    const labels = model.get("labels");
    const notes = model.get("node_notes") || [];
    const list = [];
    for (let i = 0; i < M; i++) {
      const [position, book, id, layer] = nodes.values.subarray(i * 4, i * 4 + 4);
      const name = codeName(labels[book], id);
      list.push({ i, position, book, id, layer, effect: effects[i], name, note: notes[i] || "" });
    }
    const links = [];
    for (let e = 0; e < E; e++) links.push({ from: edges.values[2 * e], to: edges.values[2 * e + 1], effect: edgeEffects[e] });
    data = { list, links, tokens: model.get("tokens"), layers: Math.max(1, model.get("layers")) };
    draw();
  }

  function draw() {
    tooltip.hide(); // the node under the pointer may be another one after a redraw
    svg.replaceChildren();
    const { list, links, tokens, layers } = data;
    title.textContent = model.get("title");
    status.textContent = model.get("status");
    const target = model.get("target_position");
    const positions = [...new Set([...list.map((n) => n.position), target])].sort((a, b) => a - b);
    const column = new Map(positions.map((p, c) => [p, c]));
    // nodes sharing a (layer, position) cell sit side by side, in codebook order
    const cells = new Map();
    for (const n of [...list].sort((a, b) => a.book - b.book)) {
      const key = `${n.layer}:${n.position}`;
      if (!cells.has(key)) cells.set(key, []);
      cells.get(key).push(n);
    }
    const widest = Math.max(1, ...[...cells.values()].map((c) => c.length));
    const colWidth = Math.max(COLUMN, widest * SLOT + 16);
    const width = PAD.left + positions.length * colWidth + PAD.right;
    const height = PAD.top + (layers + 1) * ROW + PAD.bottom;
    svg.setAttribute("width", width);
    svg.setAttribute("height", height);
    const maxAbs = Math.max(1e-12, ...list.map((n) => Math.abs(n.effect)));
    const maxEdge = Math.max(1e-12, ...links.map((l) => Math.abs(l.effect)));
    const rowY = (layer) => PAD.top + (layers - layer) * ROW; // layer `layers` is the prediction's row
    for (const [key, members] of cells) {
      const [layer, position] = key.split(":").map(Number);
      const centre = PAD.left + column.get(position) * colWidth + colWidth / 2;
      members.forEach((n, s) => {
        n.x = centre + (s - (members.length - 1) / 2) * SLOT;
        n.y = rowY(layer);
      });
    }
    for (let layer = 0; layer < layers; layer++) {
      make("line", { class: "cbw-graph-rule", x1: PAD.left - 8, x2: width - PAD.right, y1: rowY(layer), y2: rowY(layer) }, svg);
      make("text", { class: "cbw-graph-layer", x: 6, y: rowY(layer) + 4 }, svg).textContent = `layer ${layer}`;
    }
    positions.forEach((p, c) => {
      const x = PAD.left + c * colWidth + colWidth / 2;
      const label = make("text", { class: "cbw-graph-token", x, y: height - PAD.bottom / 2, "text-anchor": "middle" }, svg);
      label.textContent = `${p}: ${quotedToken(tokens[p] ?? "")}`;
    });
    const tx = PAD.left + column.get(target) * colWidth + colWidth / 2;
    const ty = rowY(layers);
    const goal = make("rect", { class: "cbw-graph-target", x: tx - 9, y: ty - 9, width: 18, height: 18 }, svg);
    make("title", {}, goal).textContent = model.get("title");
    make("text", { class: "cbw-graph-layer", x: tx + 14, y: ty + 4 }, svg).textContent = "target";
    for (const l of links) {
      const a = list[l.from];
      const b = list[l.to];
      if (!a || !b) continue;
      const line = make("line", {
        class: "cbw-graph-edge",
        x1: a.x,
        y1: a.y,
        x2: b.x,
        y2: b.y,
        stroke: diverging(l.effect, maxEdge / 0.8),
        "stroke-width": 1 + 4 * (Math.abs(l.effect) / maxEdge),
      }, svg);
      line.dataset.from = a.name;
      line.dataset.to = b.name;
    }
    for (const n of list) {
      const g = make("g", { class: "cbw-graph-node" }, svg);
      g.dataset.i = String(n.i);
      g.dataset.name = n.name;
      g.dataset.position = String(n.position);
      const r = MIN_R + (MAX_R - MIN_R) * Math.sqrt(Math.abs(n.effect) / maxAbs);
      make("circle", { cx: n.x, cy: n.y, r, fill: diverging(n.effect, maxAbs), stroke: "#333" }, g);
      const label = make("text", { class: "cbw-graph-name", x: n.x, y: n.y + MAX_R + 12, "text-anchor": "middle" }, g);
      label.textContent = n.name;
      const chosen = n.name === model.get("selected") && n.position === model.get("selected_position");
      if (chosen) g.classList.add("cbw-graph-chosen");
    }
  }

  svg.addEventListener("mousemove", (event) => {
    const g = event.target.closest(".cbw-graph-node");
    if (!g) return tooltip.hide();
    const n = data.list[Number(g.dataset.i)];
    const into = data.links.filter((l) => l.to === n.i).length;
    const out = data.links.filter((l) => l.from === n.i).length;
    const rows = [["code", n.name]];
    const label = (model.get("code_labels") || {})[n.name];
    if (label) rows.push(["label", label]);
    rows.push(
      ["token", `${n.position}: ${quotedToken(data.tokens[n.position] ?? "")}`],
      ["effect on the target", `${n.effect >= 0 ? "+" : ""}${n.effect.toPrecision(3)}`],
      ["edges", `${into} in, ${out} out`],
    );
    if (n.note) {
      const cut = n.note.indexOf(": ");
      rows.push(cut > 0 ? [n.note.slice(0, cut), n.note.slice(cut + 2)] : ["about", n.note]);
    }
    tooltip.show(event, rows);
  });
  svg.addEventListener("mouseleave", () => tooltip.hide());
  svg.addEventListener("click", (event) => {
    const g = event.target.closest(".cbw-graph-node");
    if (!g) return;
    const n = data.list[Number(g.dataset.i)];
    if (model.get("click") === "ablate") {
      requests.send({ ablated: [...model.get("ablated"), { code: n.name, position: n.position }] });
      return;
    }
    // a second click on the selected node clears
    const again = model.get("selected") === n.name && model.get("selected_position") === n.position;
    model.set("selected_position", again ? -1 : n.position);
    model.set("selected_at", again ? [] : [n.book, n.id]);
    model.save_changes();
  });

  requests.onAnswer(load);
  for (const name of ["nodes", "node_effects", "edges", "node_notes", "title", "status"]) model.on(`change:${name}`, load);
  model.on("change:selected", draw);
  model.on("change:selected_position", draw);
  model.on("change:click", () => checkRadio(click, model.get("click")));
  load();
  return () => tooltip.hide();
}

export default { render };
