// The frame every widget draws in: a namespaced root, an error box, a status line, a tooltip.

import { createTooltip } from "./tooltip.js";

export function createFrame(el, className) {
  const root = document.createElement("div");
  root.className = `cbw-root ${className}`;
  el.appendChild(root);
  const error = document.createElement("div");
  error.hidden = true;
  const status = document.createElement("div");
  status.className = "cbw-status";
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


