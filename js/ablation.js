// AblationPanel: the codes at a chosen token, each with a toggle and a scale slider; the
// next-token predictions before and after; the prompt with per-token change marks.
// Every change is a request (request.js); answers to older requests are not painted.

import { diverging } from "./colour.js";
import { readCodes, readVector } from "./wire.js";
import { codeName, EMPTY, withMeaning } from "./names.js";
import { quotedToken, tokenSpan } from "./tokens.js";
import { checkRadio, createFrame, divs, radios } from "./frame.js";
import { createRequests } from "./request.js";

const STEPS = 20; // a dragged slider moves in steps of 1/20; a scale set from Python is kept as it is
const pct = (p) => (Number.isFinite(p) ? `${(100 * p).toFixed(1)}%` : "-");

function render({ model, el }) {
  const frame = createFrame(el, "cbw-ablation", model);
  const { root, error, status, tooltip } = frame;
  root.append(error);
  const [prompt, body] = divs(root, "cbw-ab-prompt", "cbw-ab-body");
  const [controls, preds] = divs(body, "cbw-ab-controls", "cbw-ab-preds");
  root.append(status);

  const requests = createRequests(model, frame);
  const send = requests.send;
  const edits = new Map(); // code name -> scale, for codes switched on
  let mode = null; // the radio groups, kept to show a mode or where set from Python
  let where = null;

  function readEdits() {
    edits.clear();
    for (const e of model.get("edits")) edits.set(e.code, Number(e.scale ?? 0));
  }

  function sendEdits() {
    send({ edits: [...edits].map(([code, scale]) => ({ code, scale })) });
  }

  // ---------------------------------------------------------------- prompt
  function paintPrompt() {
    const tokens = model.get("tokens");
    const before = readVector(model.get("next_before"));
    const after = readVector(model.get("next_after"));
    const position = model.get("position");
    let maxAbs = 0;
    const change = tokens.map((_, t) => {
      const d = Math.log(before[t]) - Math.log(after[t]); // loss after - loss before
      if (Number.isFinite(d)) maxAbs = Math.max(maxAbs, Math.abs(d));
      return d;
    });
    prompt.replaceChildren(
      ...tokens.map((tok, t) => {
        const span = tokenSpan(tok, "cbw-token cbw-ab-tok");
        span.dataset.t = String(t);
        if (t === position) span.classList.add("cbw-selected");
        const d = change[t];
        if (Number.isFinite(d) && Math.abs(d) > 1e-4) {
          // red: the loss rose (the real next token got less likely); blue: it fell
          span.style.borderBottom = `3px solid ${diverging(-d, maxAbs || 1)}`;
          span.classList.add("cbw-changed");
        }
        span.dataset.before = String(before[t]);
        span.dataset.after = String(after[t]);
        return span;
      }),
    );
  }

  prompt.addEventListener("click", (event) => {
    const span = event.target.closest(".cbw-ab-tok");
    if (!span) return;
    send({ position: Number(span.dataset.t) });
  });
  prompt.addEventListener("mousemove", (event) => {
    const span = event.target.closest(".cbw-ab-tok");
    if (!span) return tooltip.hide();
    const t = Number(span.dataset.t);
    const tok = quotedToken(model.get("tokens")[t]);
    tooltip.show(event, [
      [`token ${t}`, tok],
      ["p(this token) before", pct(Number(span.dataset.before))],
      ["p(this token) after", pct(Number(span.dataset.after))],
      ["click", "show this token's codes"],
    ]);
  });
  prompt.addEventListener("mouseleave", () => tooltip.hide());

  // -------------------------------------------------------------- controls
  function paintControls() {
    const data = readCodes(model.get("ids"));
    const labels = model.get("labels");
    const names = model.get("names");
    const t = model.get("position");
    const title = document.createElement("div");
    title.className = "cbw-ab-title";
    title.append(`codes at token ${t} `, tokenSpan(model.get("tokens")[t]));
    const rows = [];
    for (let n = 0; n < data.N; n++) {
      for (let k = 0; k < data.K; k++) {
        const id = data.at(t, n, k);
        if (id === EMPTY) continue;
        rows.push(codeRow(codeName(labels[n], id), names[n]));
      }
    }
    const choices = model.get("choices");
    mode = radios("mode", choices.mode || [], model.get("mode"), (v) => send({ mode: v }));
    mode.title = "at scale 0: substitute = the next most similar code takes its place; drop = nothing does";
    where = radios("where", choices.where || [], model.get("where"), (v) => send({ where: v }));
    where.title = "edit the code wherever it fires in the prompt, or only at this token";
    const reset = document.createElement("button");
    reset.className = "cbw-ab-reset";
    reset.textContent = "Reset";
    reset.title = "back to the untouched model";
    reset.addEventListener("click", () => send({}, "reset")); // the kernel clears the edits and answers
    const bar = document.createElement("div");
    bar.className = "cbw-ab-bar";
    bar.append(mode, where, reset);
    const list = document.createElement("div");
    list.className = "cbw-ab-codes";
    list.append(...rows);
    controls.replaceChildren(title, bar, list);
  }

  function codeRow(code, name) {
    const row = document.createElement("label");
    row.className = "cbw-ab-code";
    row.dataset.code = code;
    row.title = name;
    const toggle = document.createElement("input");
    toggle.title = "switch this code off (scale 0)";
    toggle.type = "checkbox";
    toggle.className = "cbw-ab-toggle";
    toggle.checked = edits.has(code);
    const text = document.createElement("span");
    text.className = "cbw-ab-name";
    text.textContent = code + withMeaning(model.get("code_labels") || {}, code);
    const slider = document.createElement("input");
    slider.type = "range";
    slider.className = "cbw-ab-scale";
    slider.min = "0";
    slider.max = "2";
    slider.step = "any";
    slider.value = String(edits.has(code) ? edits.get(code) : 1);
    slider.title = "scale: 0 = ablated, 1 = as is, 2 = doubled";
    const value = document.createElement("span");
    value.className = "cbw-ab-value";
    const show = () => {
      const scale = edits.has(code) ? edits.get(code) : 1; // the value held, not the slider's rounding
      value.textContent = !toggle.checked ? "as is" : scale === 0 ? "off" : `x${scale}`;
      row.classList.toggle("cbw-on", toggle.checked);
    };
    show();
    // the toggle switches the code off (scale 0) or back on as is; the slider sets any scale
    toggle.addEventListener("change", () => {
      slider.value = toggle.checked ? "0" : "1";
      if (toggle.checked) edits.set(code, 0);
      else edits.delete(code);
      show();
      sendEdits();
    });
    slider.addEventListener("input", () => {
      const scale = Math.round(Number(slider.value) * STEPS) / STEPS; // 23 / 20 prints 1.15; 23 * 0.05 does not
      slider.value = String(scale);
      toggle.checked = scale !== 1;
      if (toggle.checked) edits.set(code, scale);
      else edits.delete(code);
      show();
      sendEdits();
    });
    row.append(toggle, text, slider, value);
    return row;
  }

  // ----------------------------------------------------------- predictions
  function paintPredictions() {
    const tokens = model.get("top_tokens");
    const before = readVector(model.get("p_before"));
    const after = readVector(model.get("p_after"));
    const head = document.createElement("div");
    head.className = "cbw-ab-pred cbw-ab-pred-head";
    for (const text of ["next token", "before", "after", "change"]) head.appendChild(cell(text));
    const rows = tokens.map((tok, i) => {
      const row = document.createElement("div");
      row.className = "cbw-ab-pred";
      row.dataset.token = tok;
      const name = document.createElement("div");
      name.appendChild(tokenSpan(tok));
      const delta = after[i] - before[i];
      const change = cell(`${delta >= 0 ? "+" : ""}${(100 * delta).toFixed(1)}`);
      change.style.background = diverging(delta, 0.5);
      row.append(name, bar(before[i], "cbw-before"), bar(after[i], "cbw-after"), change);
      return row;
    });
    preds.replaceChildren(head, ...rows);
  }

  function bar(p, className) {
    const box = document.createElement("div");
    box.className = `cbw-ab-barcell ${className}`;
    const fill = document.createElement("div");
    fill.className = "cbw-ab-fill";
    fill.style.width = `${Math.max(0, Math.min(1, p)) * 100}%`;
    const text = document.createElement("span");
    text.textContent = pct(p);
    box.append(fill, text);
    return box;
  }

  function paintResult() {
    if (mode) checkRadio(mode, model.get("mode"));
    if (where) checkRadio(where, model.get("where"));
    paintPrompt();
    paintPredictions();
    status.textContent = model.get("status");
  }

  requests.onAnswer(paintResult);
  model.on("change:position", paintControls);
  model.on("change:code_labels", paintControls);
  model.on("change:edits", () => {
    // the kernel echoes the view's own edits back: repaint only for edits made elsewhere (Python,
    // Reset), so a slider being dragged is never replaced under the pointer
    const local = JSON.stringify([...edits].map(([code, scale]) => ({ code, scale })));
    if (JSON.stringify(model.get("edits")) === local) return;
    readEdits();
    paintControls();
  });
  readEdits();
  paintControls();
  paintResult();
  return () => tooltip.hide();
}

function cell(text) {
  const div = document.createElement("div");
  div.textContent = text;
  return div;
}

export default { render };
