// SteeringPanel: topic word -> candidate codes to tick; rule, strength and sampling settings;
// Generate streams default and steered samples side by side (topic words marked); Stop ends it.

import { readVector } from "./wire.js";
import { createFrame, divs, radios } from "./frame.js";
import { createRequests } from "./request.js";
import { withMeaning } from "./names.js";

const DEBOUNCE_MS = 250;

function field(parent, label, input) {
  const wrap = document.createElement("label");
  wrap.className = "cbw-st-field";
  const span = document.createElement("span");
  span.textContent = label;
  wrap.append(span, input);
  parent.appendChild(wrap);
  return input;
}

function input(type, className, attrs = {}) {
  const el = document.createElement("input");
  el.type = type;
  el.className = className;
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, v);
  return el;
}

function button(text, className) {
  const el = document.createElement("button");
  el.type = "button";
  el.className = `cbw-st-button ${className}`;
  el.textContent = text;
  return el;
}

/** A case-insensitive regex for the topic, or null when it does not compile (then nothing is marked). */
function topicRegex(topic) {
  if (!topic) return null;
  try {
    return new RegExp(topic.toLowerCase(), "gi");
  } catch {
    return null;
  }
}

/** The text as nodes, with the topic's matches in <mark>; returns [nodes, whether it matched]. */
function marked(text, regex) {
  if (!regex) return [[document.createTextNode(text)], false];
  const nodes = [];
  let at = 0;
  let hit = false;
  for (const m of text.matchAll(regex)) {
    if (!m[0]) continue;
    hit = true;
    nodes.push(document.createTextNode(text.slice(at, m.index)));
    const mark = document.createElement("mark");
    mark.className = "cbw-st-hit";
    mark.textContent = m[0];
    nodes.push(mark);
    at = m.index + m[0].length;
  }
  nodes.push(document.createTextNode(text.slice(at)));
  return [nodes, hit];
}

function render({ model, el }) {
  const frame = createFrame(el, "cbw-steering", model);
  const { root, error, status } = frame;
  const [top, picker, controls] = divs(root, "cbw-st-top", "cbw-st-picker", "cbw-st-controls");
  const prompt = field(top, "prompt", input("text", "cbw-st-prompt"));
  prompt.value = model.get("prompt");
  const topic = field(top, "topic word", input("text", "cbw-st-topic", { placeholder: "e.g. dragon" }));
  topic.value = model.get("topic");

  const requests = createRequests(model, frame);
  const rules = radios("rule", model.get("choices").rule || [], model.get("rule"), (v) => send("rule", v));
  rules.classList.add("cbw-st-rules");
  controls.appendChild(rules);
  const strength = field(controls, "strength", input("range", "cbw-st-strength", { min: 0, max: 10, step: "any" }));
  const strengthValue = document.createElement("span");
  strengthValue.className = "cbw-st-value";
  strength.after(strengthValue);
  const temperature = field(controls, "temperature", input("number", "cbw-st-temp", { min: 0, max: 3, step: 0.1 }));
  const seed = field(controls, "seed", input("number", "cbw-st-seed", { min: 0, step: 1 }));
  const samples = field(controls, "samples", input("number", "cbw-st-samples", { min: 1, max: 16, step: 1 }));
  const tokens = field(controls, "tokens", input("number", "cbw-st-tokens", { min: 1, step: 10 }));
  const go = button("Generate", "cbw-st-go");
  const stop = button("Stop", "cbw-st-stop");
  controls.append(go, stop);
  root.append(error, status);
  const [outputs] = divs(root, "cbw-st-outputs");
  const [defaultColumn, steeredColumn] = divs(outputs, "cbw-st-column cbw-st-default", "cbw-st-column cbw-st-steered");

  const numbers = [
    [strength, "strength", parseFloat],
    [temperature, "temperature", parseFloat],
    [seed, "seed", (v) => parseInt(v, 10)],
    [samples, "samples", (v) => parseInt(v, 10)],
    [tokens, "max_new_tokens", (v) => parseInt(v, 10)],
  ];

  function send(key, value) {
    model.set(key, value);
    model.save_changes();
  }

  prompt.addEventListener("change", () => send("prompt", prompt.value));
  let timer = null;
  topic.addEventListener("input", () => {
    clearTimeout(timer);
    timer = setTimeout(() => requests.send({ topic: topic.value }), DEBOUNCE_MS); // the kernel finds candidates
  });
  for (const [el, key, parse] of numbers) {
    el.addEventListener("change", () => {
      const value = parse(el.value);
      if (Number.isFinite(value)) send(key, value);
    });
  }
  strength.addEventListener("input", () => {
    // dragging moves in steps of 0.1; a strength set from Python (1.25) is shown as it is held
    strength.value = String(Math.round(Number(strength.value) * 10) / 10);
    strengthValue.textContent = strength.value;
  });
  // settle any edit still in the prompt box before asking for a run
  go.addEventListener("click", () => requests.send({ prompt: prompt.value }, "generate"));
  stop.addEventListener("click", () => requests.send({}, "stop"));
  picker.addEventListener("change", (event) => {
    const box = event.target.closest(".cbw-st-pick");
    if (!box) return;
    // codes ticked from Python that are not candidates ("also ticked") stay ticked
    const shown = new Set(model.get("candidates"));
    const extra = model.get("chosen").filter((c) => !shown.has(c));
    const chosen = [...picker.querySelectorAll(".cbw-st-pick:checked")].map((b) => b.value);
    send("chosen", [...chosen, ...extra]);
  });

  function paintSettings() {
    for (const [el, key] of numbers) if (document.activeElement !== el) el.value = model.get(key);
    strengthValue.textContent = String(model.get("strength"));
    for (const r of rules.querySelectorAll("input")) r.checked = r.value === model.get("rule");
    if (document.activeElement !== prompt) prompt.value = model.get("prompt");
    if (document.activeElement !== topic) topic.value = model.get("topic");
  }

  function paintCandidates() {
    const codes = model.get("candidates");
    const precision = readVector(model.get("precision"));
    const coverage = readVector(model.get("coverage"));
    const head = document.createElement("div");
    head.className = "cbw-st-row cbw-st-head";
    head.innerHTML = "<span></span><span>code</span><span>precision</span><span>coverage</span>";
    const rows = codes.map((code, i) => {
      const row = document.createElement("label");
      row.className = "cbw-st-row";
      row.dataset.code = code;
      const box = input("checkbox", "cbw-st-pick", { value: code }); // ticked by paintChosen
      const name = document.createElement("span");
      name.textContent = code + withMeaning(model.get("code_labels") || {}, code);
      name.title = name.textContent;
      const bar = document.createElement("span");
      bar.className = "cbw-st-bar";
      bar.style.setProperty("--cbw-p", String(precision[i] ?? 0));
      bar.textContent = (precision[i] ?? 0).toFixed(2);
      const cov = document.createElement("span");
      cov.textContent = (coverage[i] ?? 0).toFixed(3);
      row.append(box, name, bar, cov);
      return row;
    });
    const note = document.createElement("div");
    note.className = "cbw-st-note";
    picker.replaceChildren(...(codes.length ? [head, ...rows] : []), note);
    paintChosen();
  }

  function paintChosen() {
    const chosen = model.get("chosen");
    for (const box of picker.querySelectorAll(".cbw-st-pick")) box.checked = chosen.includes(box.value);
    const shown = new Set(model.get("candidates"));
    const extra = chosen.filter((c) => !shown.has(c)); // ticked from Python, not among the candidates
    picker.querySelector(".cbw-st-note").textContent = extra.length ? `also ticked: ${extra.join(", ")}` : "";
  }

  function paintColumn(column, title, texts, regex) {
    const boxes = texts.map((text, i) => {
      const box = document.createElement("div");
      box.className = "cbw-st-sample";
      box.dataset.sample = String(i);
      const [nodes, hit] = marked(text, regex);
      box.classList.toggle("cbw-st-on-topic", hit);
      const promptSpan = document.createElement("span");
      promptSpan.className = "cbw-st-prompt-text";
      promptSpan.textContent = model.get("prompt");
      box.append(promptSpan, ...nodes);
      return { box, hit };
    });
    const heading = document.createElement("div");
    heading.className = "cbw-st-title";
    const hits = boxes.filter((b) => b.hit).length;
    heading.textContent = regex && texts.length ? `${title}: topic in ${hits}/${texts.length}` : title;
    column.replaceChildren(heading, ...boxes.map((b) => b.box));
  }

  function paintOutputs() {
    const regex = topicRegex(model.get("topic"));
    const chosen = model.get("chosen");
    paintColumn(defaultColumn, "default", model.get("default_texts"), regex);
    paintColumn(steeredColumn, `steered (${chosen.length} codes, ${model.get("rule")} x${model.get("strength")})`,
      model.get("steered_texts"), regex);
  }

  function paintRunning() {
    const running = model.get("running");
    go.disabled = running;
    stop.disabled = !running;
    root.classList.toggle("cbw-busy", running);
  }

  model.on("change:candidates", paintCandidates);
  model.on("change:code_labels", paintCandidates);
  model.on("change:chosen", paintChosen);
  model.on("change:default_texts", paintOutputs);
  model.on("change:steered_texts", paintOutputs);
  model.on("change:running", paintRunning);
  model.on("change:status", () => (status.textContent = model.get("status")));
  for (const key of ["strength", "temperature", "seed", "samples", "max_new_tokens", "rule", "prompt", "topic"]) {
    model.on("change:" + key, paintSettings);
  }
  requests.onAnswer(() => {
    status.textContent = model.get("status");
    paintRunning(); // busy while sampling runs on after the answer to Generate
  });
  status.textContent = model.get("status");
  paintSettings();
  paintCandidates();
  paintOutputs();
  paintRunning();
}

export default { render };
