// Colour scales. Diverging: the colour-blind-safe red - white - blue pair (ColorBrewer RdBu ends),
// saturated at the scale's own max, clamped. Categorical: a pale colour per code id.

const RED = [178, 24, 43];
const BLUE = [33, 102, 172];

/** White (t = 0) to the colour (t = 1). */
function mix(rgb, t) {
  const c = rgb.map((v) => Math.round(255 + (v - 255) * t));
  return `rgb(${c[0]}, ${c[1]}, ${c[2]})`;
}

function clamp01(x) {
  return Number.isFinite(x) ? Math.min(1, Math.max(0, x)) : 0;
}

/** Signed values: red below zero, blue above, white at zero; saturated at |value| >= maxAbs. */
export function diverging(value, maxAbs) {
  const t = maxAbs > 0 ? clamp01(Math.abs(value) / maxAbs) : 0;
  return mix(value < 0 ? RED : BLUE, t);
}

/** Dark text on light backgrounds, white on dark ones. */
export function textOn(background) {
  const m = /rgb\((\d+), (\d+), (\d+)\)/.exec(background);
  if (!m) return "#111";
  const [r, g, b] = m.slice(1).map(Number);
  return 0.299 * r + 0.587 * g + 0.114 * b < 140 ? "#fff" : "#111";
}

// Pale categorical colours (Okabe-Ito hues, lightened) so equal codes in a column look alike.
const PALE = [
  [230, 159, 0],
  [86, 180, 233],
  [0, 158, 115],
  [240, 228, 66],
  [0, 114, 178],
  [213, 94, 0],
  [204, 121, 167],
];

/** A pale colour for a code id: the same id always gets the same colour. */
export function codeColour(id) {
  if (id < 0) return "rgb(245, 245, 245)";
  const base = PALE[(id * 2654435761) % PALE.length];
  const t = 0.22 + 0.16 * (Math.floor(id / PALE.length) % 3);
  return mix(base, t);
}

/** A code's own hue at a strength in [0, 1]: how strongly a latent with a value fired. */
export function codeIntensity(id, strength) {
  if (id < 0) return "rgb(245, 245, 245)";
  return mix(PALE[(id * 2654435761) % PALE.length], 0.12 + 0.78 * clamp01(strength));
}
