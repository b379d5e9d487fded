// Token strings as a reader should see them. Always set through textContent: a token is text,
// never markup, whatever it holds.

// Byte-level BPE (GPT-2 style) writes bytes as printable stand-ins; map the common ones back.
const BPE = new Map([
  ["\u0120", " "], // Ġ: space
  ["\u010a", "\n"], // Ċ: newline
  ["\u0109", "\t"], // ĉ: tab
]);

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

/** A span holding one token as text. */
export function tokenSpan(raw, className = "cbw-token") {
  const span = document.createElement("span");
  span.className = className;
  span.textContent = visibleToken(raw);
  span.title = JSON.stringify(tokenText(raw));
  return span;
}
