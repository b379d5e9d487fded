// The frame every widget draws in: a namespaced root, a notice line (kernel gone or slow), an
// error box, a status line, a tooltip.

import { createTooltip } from "./tooltip.js";

const GONE =
  "This view has lost its kernel (it was restarted or shut down): clicks here do nothing now. " +
  "Run the cell again to get a live view.";

/** The frame; its error box shows the kernel's `error` trait whenever it changes. */
export function createFrame(el, className, model) {
  const root = document.createElement("div");
  root.className = `cbw-root ${className}`;
  el.appendChild(root);
  const notice = document.createElement("div");
  notice.className = "cbw-notice";
  notice.hidden = true;
  root.appendChild(notice);
  const error = document.createElement("div");
  error.hidden = true;
  const status = document.createElement("div");
  status.className = "cbw-status";
  const showError = () => {
    const text = model.get("error") || "";
    error.className = "cbw-error";
    error.textContent = text;
    error.hidden = !text;
  };
  model.on("change:error", showError);
  showError();

  let said = "";
  const connection = {
    /** True once the widget manager has marked this view's model dead (kernel restarted or gone). */
    gone() {
      return root.classList.contains("cbw-disconnected");
    },
    /** Show (or with "" clear) a note about the kernel; the disconnected note outranks the rest. */
    say(text) {
      said = text;
      notice.textContent = connection.gone() ? GONE : said;
      notice.hidden = !notice.textContent;
    },
  };
  // Jupyter's widget manager sets comm_live = false on every model when the kernel restarts or the
  // notebook is shut down; nothing sets it back on a rendered model (a new kernel has none of the
  // old widgets). The model proxy passes the event on but not the flag, so the event means "gone";
  // a closed comm means the same.
  const lost = () => {
    root.classList.add("cbw-disconnected");
    root.classList.remove("cbw-busy");
    connection.say(said);
  };
  for (const event of ["comm_live_update", "comm:close"]) model.on(event, lost);
  const tooltip = createTooltip(root);
  showWholeTokens(root);
  return { root, error, status, tooltip, connection };
}

/** A double-click on a cut token shows its whole text in a box under the notice, with a close button. */
function showWholeTokens(root) {
  const box = document.createElement("div");
  box.className = "cbw-full";
  box.hidden = true;
  const close = document.createElement("button");
  close.type = "button";
  close.className = "cbw-full-close";
  close.textContent = "close";
  const text = document.createElement("div");
  text.className = "cbw-full-text";
  box.append(close, text);
  root.children[0].after(box);
  close.addEventListener("click", () => (box.hidden = true));
  root.addEventListener("dblclick", (event) => {
    const span = event.target.closest(".cbw-cut");
    if (!span) return;
    text.textContent = span.dataset.full;
    box.hidden = false;
  });
}

/** Append elements with the given classes to a parent; returns them in order. */
export function divs(parent, ...classNames) {
  return classNames.map((name) => {
    const div = document.createElement("div");
    div.className = name;
    parent.appendChild(div);
    return div;
  });
}

/** One element: its tag, class and properties (type, textContent, title, placeholder, ...). */
export function element(tag, className, properties = {}) {
  return Object.assign(document.createElement(tag), { className, ...properties });
}

/** Radio buttons for one setting's valid values (sent by the kernel in `choices`). */
export function radios(name, values, current, onChange) {
  const group = document.createElement("span");
  group.className = "cbw-radios";
  const id = `cbw-${name}-${Math.random().toString(36).slice(2)}`;
  for (const value of values) {
    const label = document.createElement("label");
    const input = document.createElement("input");
    input.type = "radio";
    input.name = id;
    input.value = value;
    input.checked = value === current;
    input.addEventListener("change", () => input.checked && onChange(value));
    label.append(input, document.createTextNode(value));
    group.appendChild(label);
  }
  return group;
}

/** Check the radio button that holds `current` (a value set from Python or by another view). */
export function checkRadio(group, current) {
  for (const input of group.querySelectorAll("input")) input.checked = input.value === current;
}
