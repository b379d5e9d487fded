// The frame every widget draws in: a namespaced root, an error box, a status line, a tooltip.

import { createTooltip } from "./tooltip.js";

/** The frame; its error box shows the kernel's `error` trait whenever it changes. */
export function createFrame(el, className, model) {
  const root = document.createElement("div");
  root.className = `cbw-root ${className}`;
  el.appendChild(root);
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
  return { root, error, status, tooltip: createTooltip(root) };
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
