// One tooltip per widget, positioned next to the pointer, filled with text rows (never markup).
// Each value is bidi-isolated and cut when long; any scroll on the page hides the tooltip, so it
// never floats over content that moved away from under it.

import { cut } from "./tokens.js";

const VALUE_CHARS = 120;

export function createTooltip(root) {
  const tip = document.createElement("div");
  tip.className = "cbw-tooltip";
  tip.hidden = true;
  root.appendChild(tip);
  const onScroll = () => hide();
  function hide() {
    tip.hidden = true;
    document.removeEventListener("scroll", onScroll, true);
  }
  return {
    show(event, rows) {
      tip.replaceChildren(
        ...rows.map(([label, value]) => {
          const row = document.createElement("div");
          const key = document.createElement("b");
          key.textContent = label;
          const text = document.createElement("span");
          text.className = "cbw-tip-value";
          text.textContent = value === undefined ? "" : ` ${cut(String(value), VALUE_CHARS)}`;
          row.append(key, text);
          return row;
        }),
      );
      const box = root.getBoundingClientRect();
      tip.style.left = `${event.clientX - box.left + 12}px`;
      tip.style.top = `${event.clientY - box.top + 12}px`;
      if (tip.hidden) document.addEventListener("scroll", onScroll, { capture: true, passive: true });
      tip.hidden = false;
    },
    hide,
    element: tip,
  };
}
