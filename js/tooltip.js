// One tooltip per widget, positioned next to the pointer, filled with text rows (never markup).

export function createTooltip(root) {
  const tip = document.createElement("div");
  tip.className = "cbw-tooltip";
  tip.hidden = true;
  root.appendChild(tip);
  return {
    show(event, rows) {
      tip.replaceChildren(
        ...rows.map(([label, value]) => {
          const row = document.createElement("div");
          const key = document.createElement("b");
          key.textContent = label;
          row.append(key, document.createTextNode(value === undefined ? "" : ` ${value}`));
          return row;
        }),
      );
      const box = root.getBoundingClientRect();
      tip.style.left = `${event.clientX - box.left + 12}px`;
      tip.style.top = `${event.clientY - box.top + 12}px`;
      tip.hidden = false;
    },
    hide() {
      tip.hidden = true;
    },
    element: tip,
  };
}
