// CodeDashboard: one code's frequency, where in documents it fires, top examples with context,
// the tokens it promotes and suppresses, and similar codes. Click an example to open it in the
// heatmap beside; click a similar code to switch the dashboard to it.

import { diverging } from "./colour.js";
import { readVector } from "./wire.js";
import { quotedToken, tokenSpan, TOKEN_CHARS } from "./tokens.js";
import { createFrame, divs, element } from "./frame.js";
import { createRequests } from "./request.js";
import { withMeaning } from "./names.js";

function render({ model, el }) {
  const frame = createFrame(el, "cbw-dashboard", model);
  const { root, error, status } = frame;
  root.append(error);
  const [head, summary, hist, columns] = divs(root, "cbw-db-head-row", "cbw-db-summary", "cbw-db-hist", "cbw-db-columns");
  const title = element("span", "cbw-db-title");
  const label = element("input", "cbw-db-label", {
    type: "text",
    placeholder: "label this code (Enter saves it with the model)",
    maxLength: 200,
  });
  const suggest = element("button", "cbw-db-suggest", {
    textContent: "suggest",
    title: "rules that may describe this code, scored on held-out text; click one to make it the label",
  });
  const labelState = element("span", "cbw-db-label-state");
  head.append(title, label, suggest, labelState);
  const suggestions = element("div", "cbw-db-suggestions");
  head.after(suggestions);
  const [examples, side] = divs(columns, "cbw-db-examples", "cbw-db-side");
  root.append(status);

  function paint() {
    const stats = model.get("stats");
    title.textContent = `code ${model.get("code")}`;
    paintLabel();
    paintSuggestions();
    const tops = (stats.top_tokens || []).map(([t, n]) => `${quotedToken(t)} x${n}`).join(", ");
    summary.textContent =
      `fires on ${stats.firings} tokens (${(100 * stats.frequency).toFixed(3)}% of the corpus) in ` +
      `${stats.documents} documents; most often on ${tops || "nothing"}`;
    paintHistogram();
    paintExamples();
    paintSide();
  }

  function paintSuggestions() {
    const rows = model.get("suggestions").map((s, i) => {
      const row = document.createElement("div");
      row.className = "cbw-db-suggestion";
      row.dataset.i = String(i);
      row.textContent = s.label;
      row.title = `rule: ${s.pattern}${s.topic ? ` in documents matching ${s.topic}` : ""}; click to make it the label`;
      return row;
    });
    suggestions.replaceChildren(...rows);
  }

  function paintLabel() {
    const state = model.get("label_status");
    label.hidden = suggest.hidden = state === ""; // no model: nowhere to keep a label
    if (document.activeElement !== label) label.value = model.get("label");
    label.classList.toggle("cbw-stale", state === "stale");
    labelState.textContent = state === "stale" ? "stale: written for this code before it was retrained" : "";
  }

  function paintHistogram() {
    const bins = readVector(model.get("hist"));
    const max = Math.max(1e-9, ...bins);
    const bars = [...bins].map((v, i) => {
      const bar = document.createElement("div");
      bar.className = "cbw-db-bar";
      bar.style.height = `${Math.round((40 * v) / max)}px`;
      bar.title = `${(100 * v).toFixed(1)}% of firings at ${Math.round((100 * i) / bins.length)}-${Math.round((100 * (i + 1)) / bins.length)}% of a document`;
      return bar;
    });
    const label = document.createElement("div");
    label.className = "cbw-db-hist-label";
    label.textContent = "where in a document it fires (start to end)";
    hist.replaceChildren(...bars, label);
  }

  function paintExamples() {
    const rows = model.get("examples").map((ex, i) => {
      const row = document.createElement("div");
      row.className = "cbw-db-example" + (i === model.get("opened_example") ? " cbw-selected" : "");
      row.dataset.i = String(i);
      row.title = `document ${ex.document}, token ${ex.position}: click to open in the heatmap`;
      const fire = tokenSpan(ex.token, "cbw-token cbw-db-fire");
      const context = { limit: 3 * TOKEN_CHARS };
      row.append(
        tokenSpan(ex.left, "cbw-token cbw-db-ctx", { ...context, fromEnd: true }),
        fire,
        tokenSpan(ex.right, "cbw-token cbw-db-ctx", context),
      );
      if (ex.value !== undefined) {
        const value = document.createElement("span"); // an SAE latent's examples: strongest first
        value.className = "cbw-db-value";
        value.textContent = ` ${Number(ex.value).toPrecision(3)}`;
        row.appendChild(value);
      }
      return row;
    });
    const valued = rows.length && model.get("examples")[0].value !== undefined;
    const title = valued ? "examples, strongest first (the firing token marked, its value after)" : "examples (the firing token marked)";
    examples.replaceChildren(heading(title), ...rows);
  }

  function paintSide() {
    const parts = [];
    const effects = model.get("effects");
    if (effects.length) {
      parts.push(heading("logit effect (direct)"));
      const max = Math.max(...effects.map((e) => Math.abs(e.effect)));
      for (const e of effects) {
        const row = document.createElement("div");
        row.className = "cbw-db-effect";
        const value = document.createElement("span");
        value.textContent = `${e.effect >= 0 ? "+" : ""}${e.effect.toFixed(2)}`;
        value.style.background = diverging(e.effect, max);
        row.append(tokenSpan(e.token), value);
        parts.push(row);
      }
    }
    const similar = model.get("similar");
    if (similar.length) {
      parts.push(heading("similar codes (cosine)"));
      for (const s of similar) {
        const row = document.createElement("div");
        row.className = "cbw-db-similar";
        row.dataset.code = s.code;
        row.textContent = `${s.code}  ${s.cosine.toFixed(3)}${withMeaning(model.get("code_labels") || {}, s.code)}`;
        parts.push(row);
      }
    }
    side.replaceChildren(...parts);
  }

  const requests = createRequests(model, frame);
  examples.addEventListener("click", (event) => {
    const row = event.target.closest(".cbw-db-example");
    if (!row) return;
    requests.send({ opened_example: Number(row.dataset.i) });
  });
  side.addEventListener("click", (event) => {
    const row = event.target.closest(".cbw-db-similar");
    if (!row) return;
    // "... " only when the request went: a view that lost its kernel says so instead
    if (requests.send({ code: row.dataset.code })) status.textContent = `opening ${row.dataset.code} ...`;
  });
  label.addEventListener("change", () => {
    const doing = label.value.trim() ? `labelling ${model.get("code")} ...` : "removing the label ...";
    if (requests.send({ label: label.value })) status.textContent = doing;
  });
  label.addEventListener("keydown", (event) => {
    if (event.key === "Enter") label.blur(); // blur fires "change" once
    if (event.key === "Escape") {
      label.value = model.get("label");
      label.blur();
    }
  });
  suggest.addEventListener("click", () => {
    if (requests.send({}, "suggest")) status.textContent = `proposing labels for ${model.get("code")} ...`;
  });
  suggestions.addEventListener("click", (event) => {
    const row = event.target.closest(".cbw-db-suggestion");
    if (row) requests.send({ adopted: Number(row.dataset.i) });
  });
  model.on("change:code_labels", () => paintSide());
  model.on("change:suggestions", () => paintSuggestions());
  model.on("change:label change:label_status", () => paintLabel());
  requests.onAnswer(() => {
    paint();
    status.textContent = model.get("status");
  });
  status.textContent = model.get("status");
  paint();
}

function heading(text) {
  const head = document.createElement("div");
  head.className = "cbw-db-head";
  head.textContent = text;
  return head;
}

export default { render };
