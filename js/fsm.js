// FSMView: the TokFSM's states on a grid, beside the model's codes.
// Click a state: arrows to its true out-neighbours and to the model's top predictions (green where
// they agree, grey dashed for a missed edge, orange dashed for a wrong guess), a table of both, and
// the codes that fire at the state, per codebook. Click a code: the states where it fires are
// shaded by the share of its firings that land on each. Everything is drawn from data the kernel
// sent once; Python hears of each click (selected_state, selected_at).

import { readArray } from "./wire.js";
import { codeName } from "./names.js";
import { createFrame, divs } from "./frame.js";

const CELL = 38; // px between state centres
const RADIUS = 14;
const PAD = 22;
const SVG = "http://www.w3.org/2000/svg";
const GREEN = "#1a9850";
const ORANGE = "#e66101";
const GREY = "#8c8c8c";

function render({ model, el }) {
  const frame = createFrame(el, "cbw-fsm", model);
  const { root, error, status, tooltip } = frame;
  root.append(error, status);
  const [body] = divs(root, "cbw-fsm-body");
  const svg = document.createElementNS(SVG, "svg");
  svg.classList.add("cbw-fsm-grid");
  body.appendChild(svg);
  const [side] = divs(body, "cbw-fsm-side");

  let data = null;

  function load() {
    const edges = readArray(model.get("edges"));
    const predicted = readArray(model.get("predicted"));
    const pairs = readArray(model.get("pairs"));
    const states = model.get("states");
    const N = states.length;
    const E = edges.shape[1] || 0;
    const byState = Array.from({ length: N }, () => []); // [book, id, firings]
    const byCode = new Map(); // "book:id" -> [[state, firings]]
    const totals = new Map(); // "book:id" -> firings at any state's end
    const p = pairs.values;
    for (let r = 0; r + 3 < p.length; r += 4) {
      const [book, id, state, firings] = [p[r], p[r + 1], p[r + 2], p[r + 3]];
      if (state < 0 || state >= N) continue;
      byState[state].push([book, id, firings]);
      const key = `${book}:${id}`;
      if (!byCode.has(key)) byCode.set(key, []);
      byCode.get(key).push([state, firings]);
      totals.set(key, (totals.get(key) || 0) + firings);
    }
    data = {
      states,
      N,
      E,
      columns: Math.max(1, model.get("columns")),
      edges: (s) => Array.from(edges.values.subarray(s * E, (s + 1) * E)),
      prob: (s, t) => predicted.values[s * N + t] || 0,
      labels: model.get("labels"),
      names: model.get("names"),
      occurrences: readArray(model.get("occurrences")).values,
      byState,
      byCode,
      totals,
    };
    drawGrid();
    paint();
  }

  // ------------------------------------------------------------ the grid
  const where = (s) => [PAD + (s % data.columns) * CELL, PAD + Math.floor(s / data.columns) * CELL];

  function drawGrid() {
    const rows = Math.ceil(data.N / data.columns);
    const width = 2 * PAD + (data.columns - 1) * CELL;
    const height = 2 * PAD + (rows - 1) * CELL;
    svg.setAttribute("viewBox", `0 0 ${width} ${height}`);
    svg.setAttribute("width", String(width));
    svg.setAttribute("height", String(height));
    svg.replaceChildren();
    const defs = element("defs");
    for (const [name, colour] of [
      ["true", GREEN],
      ["missed", GREY],
      ["wrong", ORANGE],
    ])
      defs.appendChild(arrowHead(`cbw-fsm-head-${name}`, colour));
    svg.append(defs, element("g", { class: "cbw-fsm-arrows" }));
    const nodes = element("g", { class: "cbw-fsm-nodes" });
    for (let s = 0; s < data.N; s++) {
      const [x, y] = where(s);
      const node = element("g", { class: "cbw-fsm-node", "data-s": String(s) });
      node.append(
        element("circle", { cx: x, cy: y, r: RADIUS }),
        Object.assign(element("text", { x, y: y + 4, "text-anchor": "middle" }), { textContent: data.states[s] }),
      );
      nodes.appendChild(node);
    }
    svg.appendChild(nodes);
  }

  function arrowHead(id, colour) {
    const marker = element("marker", {
      id,
      viewBox: "0 0 10 10",
      refX: 9,
      refY: 5,
      markerWidth: 6,
      markerHeight: 6,
      orient: "auto-start-reverse",
    });
    marker.appendChild(element("path", { d: "M 0 0 L 10 5 L 0 10 z", fill: colour }));
    return marker;
  }

  // The selection, as the kernel holds it
  const state = () => {
    const s = model.get("selected_state");
    return s >= 0 && s < data.N ? s : -1;
  };
  const code = () => {
    const at = model.get("selected_at");
    return at && at.length === 2 && at[0] < data.labels.length ? { book: at[0], id: at[1] } : null;
  };

  function topPredicted(s) {
    const order = [...Array(data.N).keys()].sort((a, b) => data.prob(s, b) - data.prob(s, a) || a - b);
    return order.slice(0, data.E);
  }

  function paint() {
    const s = state();
    const c = code();
    const shares = new Map(); // state -> share of the selected code's firings
    if (c) {
      const key = `${c.book}:${c.id}`;
      const total = data.totals.get(key) || 0;
      for (const [t, firings] of data.byCode.get(key) || []) shares.set(t, total ? firings / total : 0);
    }
    const edges = s >= 0 ? new Set(data.edges(s)) : new Set();
    const guesses = s >= 0 ? new Set(topPredicted(s)) : new Set();
    for (const node of svg.querySelectorAll(".cbw-fsm-node")) {
      const t = Number(node.dataset.s);
      const share = shares.get(t) || 0;
      node.classList.toggle("cbw-fsm-selected", t === s);
      node.classList.toggle("cbw-fsm-edge", edges.has(t));
      node.classList.toggle("cbw-fsm-guess", guesses.has(t));
      node.classList.toggle("cbw-fsm-fires", share > 0);
      node.dataset.share = share.toFixed(3);
      const circle = node.querySelector("circle");
      circle.style.fill = share > 0 ? `rgba(33, 102, 172, ${0.15 + 0.85 * share})` : "";
      node.querySelector("text").style.fill = share > 0.5 ? "#fff" : "";
    }
    drawArrows(s, edges, guesses);
    paintSide(s, c, edges, guesses);
    paintStatus(s, c, shares);
  }

  function drawArrows(s, edges, guesses) {
    const layer = svg.querySelector(".cbw-fsm-arrows");
    layer.replaceChildren();
    if (s < 0) return;
    const [x0, y0] = where(s);
    for (const t of new Set([...edges, ...guesses])) {
      const kind = edges.has(t) ? (guesses.has(t) ? "true" : "missed") : "wrong";
      const colour = { true: GREEN, missed: GREY, wrong: ORANGE }[kind];
      if (t === s) {
        layer.appendChild(
          element("circle", {
            class: `cbw-fsm-arrow cbw-fsm-${kind}`,
            "data-t": String(t),
            cx: x0,
            cy: y0,
            r: RADIUS + 4,
            fill: "none",
            stroke: colour,
            "stroke-width": 2,
            "stroke-dasharray": kind === "true" ? "" : "4 3",
          }),
        );
        continue;
      }
      const [x1, y1] = where(t);
      // a bend, so an arrow along a row or column passes beside the states between, not through them
      const [mx, my] = [(x0 + x1) / 2, (y0 + y1) / 2];
      const length = Math.hypot(x1 - x0, y1 - y0);
      const [nx, ny] = [-(y1 - y0) / length, (x1 - x0) / length];
      const bend = Math.min(0.22 * length, 40);
      const [cx, cy] = [mx + nx * bend, my + ny * bend];
      const trim = (px, py, qx, qy, by) => {
        const d = Math.hypot(qx - px, qy - py);
        return [px + ((qx - px) / d) * by, py + ((qy - py) / d) * by];
      };
      const [ax, ay] = trim(x0, y0, cx, cy, RADIUS);
      const [bx, by] = trim(x1, y1, cx, cy, RADIUS + 1);
      layer.appendChild(
        element("path", {
          class: `cbw-fsm-arrow cbw-fsm-${kind}`,
          "data-t": String(t),
          d: `M ${ax} ${ay} Q ${cx} ${cy} ${bx} ${by}`,
          fill: "none",
          stroke: colour,
          "stroke-width": kind === "true" ? 2 : 1.6,
          "stroke-dasharray": kind === "true" ? "" : "5 3",
          "marker-end": `url(#cbw-fsm-head-${kind})`,
        }),
      );
    }
  }

  // ------------------------------------------------------------ the side panel
  function paintSide(s, c, edges, guesses) {
    side.replaceChildren();
    if (s < 0) {
      side.appendChild(text("div", "cbw-fsm-hint", "Click a state to see its transitions and its codes."));
      return;
    }
    side.appendChild(text("div", "cbw-fsm-title", `state ${data.states[s]} (read ${data.occurrences[s] || 0} times)`));
    side.appendChild(text("div", "cbw-fsm-subtitle", `next state: true (${data.E} edges) vs predicted (top ${data.E})`));
    const table = document.createElement("div");
    table.className = "cbw-fsm-transitions";
    table.append(text("div", "cbw-fsm-th", "next"), text("div", "cbw-fsm-th", "edge"));
    table.append(text("div", "cbw-fsm-th", "top"), text("div", "cbw-fsm-th", "model's probability"));
    const rows = [...new Set([...edges, ...guesses])].sort((a, b) => data.prob(s, b) - data.prob(s, a) || a - b);
    const top = Math.max(1e-9, ...rows.map((t) => data.prob(s, t))); // the longest bar fills its cell
    for (const t of rows) {
      const p = data.prob(s, t);
      const row = [
        text("div", "cbw-fsm-next", data.states[t]),
        text("div", edges.has(t) ? "cbw-fsm-yes" : "cbw-fsm-no", edges.has(t) ? "\u2713" : "\u2717"),
        text("div", guesses.has(t) ? "cbw-fsm-yes" : "cbw-fsm-no", guesses.has(t) ? "\u2713" : ""),
        text("div", "cbw-fsm-bar", `${(100 * p).toFixed(1)}%`),
      ];
      row[3].style.setProperty("--cbw-p", String(p / top));
      row[0].dataset.s = String(t);
      table.append(...row);
    }
    side.appendChild(table);
    side.appendChild(text("div", "cbw-fsm-subtitle", "codes at this state (precision / recall)"));
    const list = document.createElement("div");
    list.className = "cbw-fsm-codes";
    const perBook = new Map();
    for (const [book, id, firings] of data.byState[s]) {
      if (!perBook.has(book)) perBook.set(book, []);
      perBook.get(book).push([id, firings]);
    }
    const occurrences = data.occurrences[s] || 0;
    for (const book of [...perBook.keys()].sort((a, b) => a - b)) {
      const codes = perBook
        .get(book)
        .sort((a, b) => b[1] - a[1] || a[0] - b[0])
        .slice(0, Math.max(1, model.get("per_codebook")));
      list.appendChild(text("div", "cbw-fsm-book", data.labels[book]));
      const chips = document.createElement("div");
      for (const [id, firings] of codes) {
        const precision = firings / (data.totals.get(`${book}:${id}`) || 1);
        const recall = occurrences ? firings / occurrences : 0;
        const chip = text(
          "button",
          "cbw-fsm-code",
          `${id} ${Math.round(100 * precision)}% / ${Math.round(100 * recall)}%`,
        );
        chip.type = "button";
        chip.dataset.book = String(book);
        chip.dataset.id = String(id);
        chip.dataset.name = codeName(data.labels[book], id);
        chip.title = `${chip.dataset.name}: ${firings} of its firings at this state`;
        chip.style.setProperty("--cbw-p", String(precision));
        if (c && c.book === book && c.id === id) chip.classList.add("cbw-fsm-chosen");
        chips.appendChild(chip);
      }
      list.appendChild(chips);
    }
    side.appendChild(list);
  }

  function paintStatus(s, c, shares) {
    if (!c) {
      status.textContent =
        s < 0
          ? `${data.N} states, ${data.E} edges each. Click a state, then one of its codes.`
          : `state ${data.states[s]}: click a code to see every state where it fires.`;
      return;
    }
    const name = codeName(data.labels[c.book], c.id);
    const total = data.totals.get(`${c.book}:${c.id}`) || 0;
    if (!total) {
      status.textContent = `code ${name} never fired at a state's last digit in the walks read.`;
      return;
    }
    const best = [...shares.entries()].sort((a, b) => b[1] - a[1]);
    const parts = best.slice(0, 4).map(([t, share]) => `${data.states[t]} ${Math.round(100 * share)}%`);
    const more = best.length > 4 ? `, ${best.length - 4} more` : "";
    status.textContent = `code ${name} fires ${total} times at ${best.length} state(s): ${parts.join(", ")}${more}`;
  }

  // ------------------------------------------------------------ clicks and hovers
  function send(name, value) {
    model.set(name, value);
    model.save_changes();
  }

  svg.addEventListener("click", (event) => {
    const node = event.target.closest(".cbw-fsm-node");
    if (!node) return;
    const t = Number(node.dataset.s);
    send("selected_state", t === state() ? -1 : t); // a second click clears
  });
  side.addEventListener("click", (event) => {
    const chip = event.target.closest(".cbw-fsm-code");
    if (chip) {
      const [book, id] = [Number(chip.dataset.book), Number(chip.dataset.id)];
      const c = code();
      send("selected_at", c && c.book === book && c.id === id ? [] : [book, id]);
      return;
    }
    const next = event.target.closest(".cbw-fsm-next");
    if (next) send("selected_state", Number(next.dataset.s)); // walk on to a next state
  });
  svg.addEventListener("mousemove", (event) => {
    const node = event.target.closest(".cbw-fsm-node");
    if (!node) return tooltip.hide();
    const t = Number(node.dataset.s);
    const rows = [[`state ${data.states[t]}`, `read ${data.occurrences[t] || 0} times`]];
    const s = state();
    if (s >= 0 && t !== s) rows.push([`from ${data.states[s]}`, `${(100 * data.prob(s, t)).toFixed(1)}% predicted`]);
    const c = code();
    if (c) rows.push([codeName(data.labels[c.book], c.id), `${Math.round(100 * Number(node.dataset.share))}% of its firings`]);
    tooltip.show(event, rows);
  });
  svg.addEventListener("mouseleave", () => tooltip.hide());

  for (const name of ["selected_state", "selected_at", "per_codebook"]) model.on(`change:${name}`, paint);
  for (const name of ["states", "edges", "predicted", "pairs", "occurrences", "labels", "columns"])
    model.on(`change:${name}`, load);
  load();
  return () => tooltip.hide();
}

function element(tag, attributes = {}) {
  const node = document.createElementNS(SVG, tag);
  for (const [key, value] of Object.entries(attributes)) node.setAttribute(key, String(value));
  return node;
}

function text(tag, className, content) {
  const node = document.createElement(tag);
  node.className = className;
  node.textContent = content;
  return node;
}

export default { render };
