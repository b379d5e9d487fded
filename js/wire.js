// Arrays arrive as the kernel's Array traits send them: {shape, dtype, data} with data a binary
// buffer (a DataView), or {shape, dtype, base64} where the widget's wire is "base64" (front ends
// that drop buffers, such as Colab's). This is the one reader; widgets/wire.py is its twin in Python.

const TYPES = { int32: Int32Array, float32: Float32Array, uint16: Uint16Array, uint32: Uint32Array };

function fromBase64(text) {
  const chars = atob(text);
  const bytes = new Uint8Array(chars.length);
  for (let i = 0; i < chars.length; i++) bytes[i] = chars.charCodeAt(i);
  return new DataView(bytes.buffer);
}

function asBytes(value) {
  if (typeof value === "string") return fromBase64(value);
  if (value instanceof DataView) return value;
  if (value instanceof ArrayBuffer) return new DataView(value);
  if (ArrayBuffer.isView(value)) return new DataView(value.buffer, value.byteOffset, value.byteLength);
  return new DataView(new ArrayBuffer(0));
}

/** An array trait as { shape, values } (a typed array); an empty one when nothing was sent. */
export function readArray(value) {
  const payload = value && (typeof value.base64 === "string" ? value.base64 : value.data);
  if (payload == null || !TYPES[value.dtype]) return { shape: [0], values: new Float32Array(0) };
  const Type = TYPES[value.dtype];
  const bytes = asBytes(payload);
  const count = Math.floor(bytes.byteLength / Type.BYTES_PER_ELEMENT);
  const values = new Type(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + count * Type.BYTES_PER_ELEMENT));
  return { shape: value.shape, values };
}

/** The values of a 1-D array trait. */
export function readVector(value) {
  return readArray(value).values;
}

/** Code ids (T, N, K); -1 marks an empty slot. Returns sizes and an accessor. */
export function readCodes(value) {
  const { shape, values } = readArray(value);
  const [T, N, K] = shape.length === 3 ? shape : [0, 0, 1];
  return { T, N, K, ids: values, at: (t, n, k) => values[(t * N + n) * K + k] };
}
