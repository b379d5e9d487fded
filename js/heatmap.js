// CodeHeatmap: tokens down, codebooks across, each cell the code that fired there.
// Rows are virtualised (only the visible ones exist in the DOM), so thousands of tokens paint fast.
// Click a cell to select its code: every token where it fires lights up, and Python hears of it.
// With effects sent (show_effects), a cell's colour is its code's effect on a target instead.

import { codeColour, codeIntensity, diverging, textOn } from "./colour.js";
import { readArray, readCodes } from "./wire.js";
import { codeName, EMPTY, withMeaning } from "./names.js";
import { quotedToken, tokenSpan } from "./tokens.js";
import { createFrame, divs } from "./frame.js";

const ROW = 22; // px per token row
const OVERSCAN = 12; // rows rendered beyond the visible ones
const UNMEASURED = "rgb(228, 228, 228)";

function render({ model, el }) {
  const frame = createFrame(el, "cbw-heatmap", model);
  const { root, error, status, tooltip } = frame;
  root.append(error, status);
  const [scroller] = divs(root, "cbw-hm-scroll");
  const [spacer] = divs(scroller, "cbw-hm-spacer");
  const [head] = divs(spacer, "cbw-hm-head");

  let data = null; // { tokens, labels, names, ids, T, N, K }
  let effects = null; // { at(t, n, k), maxAbs, title } when cells are coloured by effect
  let strengths = null; // { at(t, n, k), max[n], varies[n] } when codes have values (an SAE's latents)
  let selected = null; // { column, id }
  let painted = [-1, -1];

  function load() {
    const codes = readCodes(model.get("ids"));
    data = {
      tokens: model.get("tokens"),
      labels: model.get("labels"),
      names: model.get("names"),
      ...codes,
    };
    root.style.setProperty("--cbw-cols", String(data.N));
    head.replaceChildren(cellText("cbw-hm-pos", "#"), cellText("cbw-hm-tok", "token"));
    for (let n = 0; n < data.N; n++) {
      const label = cellText("cbw-hm-label", data.labels[n]);
      label.title = data.names[n];
      head.appendChild(label);
    }
    spacer.style.height = `${(data.T + 1) * ROW}px`;
    readEffects();
    readValues();
    readSelected();
    painted = [-1, -1];
    paint();
  }

  function readSelected() {
    const at = model.get("selected_at"); // [codebook, id]: set by a click here or by the kernel
    selected = at && at.length === 2 && at[0] < data.N ? { column: at[0], id: at[1] } : null;
  }

  function readEffects() {
    const { shape, values } = readArray(model.get("effects"));
    effects = null;
    if (shape.length !== 3 || shape[0] !== data.T || shape[1] !== data.N || shape[2] !== data.K) return;
    let maxAbs = 0;
    for (const v of values) if (Number.isFinite(v)) maxAbs = Math.max(maxAbs, Math.abs(v));
    const at = (t, n, k) => values[(t * data.N + n) * data.K + k];
    effects = { at, maxAbs, title: model.get("effect_title") };
  }

  function readValues() {
    const { shape, values } = readArray(model.get("values"));
    strengths = null;
    if (shape.length !== 3 || shape[0] !== data.T || shape[1] !== data.N || shape[2] !== data.K) return;
    const at = (t, n, k) => values[(t * data.N + n) * data.K + k];
    const max = new Array(data.N).fill(0);
    const min = new Array(data.N).fill(Infinity);
    for (let t = 0; t < data.T; t++)
      for (let n = 0; n < data.N; n++)
        for (let k = 0; k < data.K; k++) {
          if (data.at(t, n, k) === EMPTY) continue;
          max[n] = Math.max(max[n], at(t, n, k));
          min[n] = Math.min(min[n], at(t, n, k));
        }
    strengths = { at, max, varies: max.map((m, n) => m > min[n]) }; // a codebook's codes are all 1
  }

  function effectText(value) {
    return Number.isFinite(value) ? `${value >= 0 ? "+" : ""}${value.toPrecision(3)}` : "not measured";
  }

  function fires(t, column, id) {
    for (let k = 0; k < data.K; k++) if (data.at(t, column, k) === id) return true;
    return false;
  }

  function shadingNote() {
    const shaded = strengths ? data.labels.filter((_, n) => strengths.varies[n]) : [];
    return shaded.length ? ` ${shaded.join(", ")}: shaded by the first latent's value (full at the column's largest).` : "";
  }

  function paintStatus() {
    if (!selected) {
      status.textContent = effects
        ? `Colour: ${effects.title}; blue holds it up, red pushes it down, full colour at ${effectText(effects.maxAbs)}, ` +
          "grey not measured. Click a code to see where it fires."
        : `${data.T} tokens x ${data.N} codebooks.${shadingNote()} Click a code to see where it fires.`;
      return;
    }
    let count = 0;
    for (let t = 0; t < data.T; t++) if (fires(t, selected.column, selected.id)) count++;
    const name = codeName(data.labels[selected.column], selected.id);
    const meaning = withMeaning(model.get("code_labels") || {}, name);
    status.textContent = `code ${name}${meaning} fires on ${count} of ${data.T} tokens`;
  }

  function paint(force = false) {
    const first = Math.max(0, Math.floor(scroller.scrollTop / ROW) - OVERSCAN);
    const visible = Math.ceil((scroller.clientHeight || 480) / ROW);
    const last = Math.min(data.T, first + visible + 2 * OVERSCAN);
    if (!force && first === painted[0] && last === painted[1]) return;
    painted = [first, last];
    for (const row of spacer.querySelectorAll(".cbw-hm-row")) row.remove();
    const rows = document.createDocumentFragment();
    for (let t = first; t < last; t++) rows.appendChild(makeRow(t));
    spacer.appendChild(rows);
    paintStatus();
  }

  function makeRow(t) {
    const row = document.createElement("div");
    row.className = "cbw-hm-row";
    row.style.top = `${(t + 1) * ROW}px`;
    row.dataset.t = String(t);
    row.appendChild(cellText("cbw-hm-pos", String(t)));
    const tok = document.createElement("div");
    tok.className = "cbw-hm-tok";
    tok.appendChild(tokenSpan(data.tokens[t]));
    row.appendChild(tok);
    let lit = false;
    for (let n = 0; n < data.N; n++) {
      const id = data.at(t, n, 0);
      const cell = cellText("cbw-hm-cell", id === EMPTY ? "" : String(id));
      cell.dataset.n = String(n);
      if (effects) {
        const value = effects.at(t, n, 0);
        if (Number.isFinite(value)) {
          cell.style.background = diverging(value, effects.maxAbs);
          cell.style.color = textOn(cell.style.background);
        } else {
          cell.style.background = UNMEASURED; // grey, unlike white (a measured zero): it cannot reach the target
          cell.style.color = "#888";
        }
        cell.classList.add("cbw-hm-effect");
      } else if (strengths && strengths.varies[n] && id !== EMPTY) {
        cell.style.background = codeIntensity(id, strengths.at(t, n, 0) / strengths.max[n]);
        cell.style.color = textOn(cell.style.background);
        cell.dataset.value = String(strengths.at(t, n, 0));
      } else cell.style.background = codeColour(id);
      if (selected) {
        if (n === selected.column && fires(t, n, selected.id)) {
          cell.classList.add("cbw-hit");
          lit = true;
        } else cell.classList.add("cbw-dim");
      }
      row.appendChild(cell);
    }
    if (lit) row.classList.add("cbw-lit");
    return row;
  }

  scroller.addEventListener("scroll", () => requestAnimationFrame(() => paint()));
  spacer.addEventListener("mousemove", (event) => {
    const cell = event.target.closest(".cbw-hm-cell");
    const row = event.target.closest(".cbw-hm-row");
    if (!row) return tooltip.hide();
    const t = Number(row.dataset.t);
    const rows = [[`token ${t}`, quotedToken(data.tokens[t])]];
    const columns = cell ? [Number(cell.dataset.n)] : [...Array(data.N).keys()];
    const meanings = model.get("code_labels") || {};
    for (const n of columns.slice(0, 16)) {
      const ids = [];
      for (let k = 0; k < data.K; k++) {
        const id = data.at(t, n, k);
        if (id === EMPTY) continue;
        const name = codeName(data.labels[n], id);
        const size = strengths && strengths.varies[n] ? ` value ${strengths.at(t, n, k).toPrecision(3)}` : "";
        ids.push(name + withMeaning(meanings, name) + size + (effects ? ` (${effectText(effects.at(t, n, k))})` : ""));
      }
      rows.push([data.names[n], ids.length ? ids.join(", ") : "none"]);
    }
    if (columns.length > 16) rows.push([`... ${columns.length - 16} more codebooks`, ""]);
    tooltip.show(event, rows);
  });
  spacer.addEventListener("mouseleave", () => tooltip.hide());
  spacer.addEventListener("click", (event) => {
    const cell = event.target.closest(".cbw-hm-cell");
    if (!cell) return;
    const t = Number(cell.closest(".cbw-hm-row").dataset.t);
    const n = Number(cell.dataset.n);
    const id = data.at(t, n, 0);
    if (id === EMPTY) return;
    const again = selected && selected.column === n && selected.id === id; // a second click clears
    model.set("selected_at", again ? [] : [n, id]);
    model.save_changes();
  });

  model.on("change:selected_at", () => {
    readSelected();
    paint(true);
  });
  for (const name of ["ids", "tokens", "labels", "effects", "effect_title", "values"]) model.on(`change:${name}`, load);
  model.on("change:code_labels", () => data && paintStatus());
  load();
  return () => tooltip.hide();
}

function cellText(className, text) {
  const div = document.createElement("div");
  div.className = className;
  div.textContent = text;
  return div;
}

export default { render };
