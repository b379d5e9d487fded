// Token strings as a reader should see them. Always set through textContent: a token is text,
// never markup, whatever it holds. Each token is bidi-isolated (a U+202E inside it cannot reverse
// its neighbours) and a long one is cut, with the whole text a double-click away.

// Byte-level BPE (GPT-2 style) writes bytes as printable stand-ins; map the common ones back.
const BPE = new Map([
  ["\u0120", " "], // Ġ: space
  ["\u010a", "\n"], // Ċ: newline
  ["\u0109", "\t"], // ĉ: tab
]);

export const TOKEN_CHARS = 40; // a token longer than this is shown cut, with an ellipsis
const FSI = "\u2068"; // first strong isolate ... pop directional isolate: bidi isolation in plain text
const PDI = "\u2069";
const BIDI_CONTROLS = /[\u200e\u200f\u202a-\u202e\u2066-\u2069]/g;

/** The text a token stands for, with byte-level BPE stand-ins turned back into characters. */
export function tokenText(raw) {
  let out = "";
  for (const ch of String(raw)) out += BPE.get(ch) ?? ch;
  return out;
}

/** A visible rendering: newlines as ↵, tabs as →, leading spaces as ·, empty as ∅. */
export function visibleToken(raw) {
  const text = tokenText(raw);
  if (text.length === 0) return "\u2205";
  const lead = text.match(/^ */)[0].length;
  return ("\u00b7".repeat(lead) + text.slice(lead)).replace(/\n/g, "\u21b5").replace(/\t/g, "\u2192");
}

/** At most `limit` characters of `text`, then "…" and how long it is in all. */
export function cut(text, limit = TOKEN_CHARS) {
  const chars = [...text];
  if (chars.length <= limit) return text;
  return `${chars.slice(0, limit).join("")}\u2026 (${chars.length.toLocaleString("en-US")} characters)`;
}

/** `text` wrapped in bidi isolates, for strings that are not inside their own element (titles, rows). */
export function isolated(text) {
  return FSI + text + PDI;
}

/** A token quoted for tooltips and summaries: JSON-quoted, cut when long (its length said), isolated. */
export function quotedToken(raw) {
  const chars = [...tokenText(raw)];
  // JSON-quoted, with direction controls written out (\u202e): invisible, yet they reorder text
  const head = JSON.stringify(chars.slice(0, TOKEN_CHARS).join("")).replace(
    BIDI_CONTROLS,
    (c) => `\\u${c.codePointAt(0).toString(16).padStart(4, "0")}`,
  );
  const more = chars.length > TOKEN_CHARS ? `\u2026 (${chars.length.toLocaleString("en-US")} characters)` : "";
  return isolated(head + more);
}

/** A span holding one token as text; a long token is cut and a double-click shows it whole.
 * `fromEnd` keeps the end of a long text instead (a left context, which ends at the firing token). */
export function tokenSpan(raw, className = "cbw-token", { limit = TOKEN_CHARS, fromEnd = false } = {}) {
  const span = document.createElement("span");
  span.className = className;
  const shown = visibleToken(raw);
  const chars = [...shown];
  span.title = quotedToken(raw);
  if (chars.length <= limit) {
    span.textContent = shown;
    return span;
  }
  const part = fromEnd ? chars.slice(-limit) : chars.slice(0, limit);
  span.textContent = fromEnd ? `\u2026${part.join("")}` : `${part.join("")}\u2026`;
  span.classList.add("cbw-cut");
  span.title += " (double-click to see it whole)";
  span.dataset.full = tokenText(raw); // read by the frame's full-text box
  return span;
}
