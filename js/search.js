// CodeSearch: a regex box; matching codes, most precise first (an SAE's by its activation share), updated as you type.
// Clicking a row sets `opened`, which Python turns into that code's dashboard.

import { readVector } from "./wire.js";
import { createFrame, divs } from "./frame.js";
import { createRequests } from "./request.js";
import { withMeaning } from "./names.js";

const DEBOUNCE_MS = 150;

function render({ model, el }) {
  const frame = createFrame(el, "cbw-search", model);
  const { root, error, status } = frame;
  const input = document.createElement("input");
  input.type = "text";
  input.className = "cbw-se-input";
  input.placeholder = "regex, e.g. 4(2)  (group 1 picks the token)";
  input.value = model.get("pattern");
  root.append(input, error, status);
  const [table] = divs(root, "cbw-se-table");
  const requests = createRequests(model, frame);
  let timer = null;

  input.addEventListener("input", () => {
    clearTimeout(timer);
    timer = setTimeout(() => {
      timer = null;
      requests.send({ pattern: input.value });
    }, DEBOUNCE_MS);
  });

  function paint() {
    const codes = model.get("code_names");
    const precision = readVector(model.get("precision"));
    // an SAE's index ranks by the share of each latent's activation on the matches: show it first
    const activation = readVector(model.get("activation_precision"));
    const weighted = codes.length > 0 && activation.length === codes.length;
    const recall = readVector(model.get("recall"));
    const matches = readVector(model.get("matches"));
    const firings = readVector(model.get("firings"));
    status.textContent = model.get("summary");
    if (timer === null) input.value = model.get("pattern"); // a pattern set from Python; never mid-typing
    const names = ["code", ...(weighted ? ["activation"] : []), "precision", "recall", "matches", "firings"];
    const head = row(names, "cbw-se-row cbw-se-head" + (weighted ? " cbw-se-weighted" : ""));
    if (weighted) head.children[1].title = "share of the code's summed activation that falls on the matches (ranks the rows)";
    const meanings = model.get("code_labels") || {};
    const rows = codes.map((code, i) =>
      row(
        [
          code + withMeaning(meanings, code),
          ...(weighted ? [activation[i].toFixed(3)] : []),
          precision[i].toFixed(3),
          recall[i].toFixed(3),
          String(matches[i]),
          String(firings[i]),
        ],
        "cbw-se-row" + (weighted ? " cbw-se-weighted" : "") + (code === model.get("opened") ? " cbw-selected" : ""),
        code,
      ),
    );
    table.replaceChildren(head, ...rows);
  }

  function row(cells, className, code) {
    const div = document.createElement("div");
    div.className = className;
    if (code) div.dataset.code = code;
    for (const text of cells) {
      const cell = document.createElement("div");
      cell.textContent = text;
      cell.title = text;
      div.appendChild(cell);
    }
    return div;
  }

  table.addEventListener("click", (event) => {
    const row = event.target.closest(".cbw-se-row[data-code]");
    if (!row) return;
    model.set("opened", row.dataset.code);
    model.save_changes();
  });
  requests.onAnswer(paint);
  model.on("change:opened", paint);
  model.on("change:code_labels", paint);
  paint();
}

export default { render };
