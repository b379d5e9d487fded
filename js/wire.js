// Numbers arrive as binary traitlets: a DataView over little-endian int32 (codes) or float32.

function asBytes(value) {
  if (value instanceof DataView) return value;
  if (value instanceof ArrayBuffer) return new DataView(value);
  if (ArrayBuffer.isView(value)) return new DataView(value.buffer, value.byteOffset, value.byteLength);
  return new DataView(new ArrayBuffer(0));
}

/** Code ids (T, N, K) int32; -1 marks no code. Returns sizes and an accessor. */
export function readCodes(value, shape) {
  const view = asBytes(value);
  const [T, N, K] = shape && shape.length === 3 ? shape : [0, 0, 1];
  const count = Math.min(T * N * K, view.byteLength >> 2);
  const ids = new Int32Array(view.buffer.slice(view.byteOffset, view.byteOffset + 4 * count));
  return { T, N, K, ids, at: (t, n, k) => ids[(t * N + n) * K + k] };
}

/** A float32 vector. */
export function readFloats(value) {
  const view = asBytes(value);
  return new Float32Array(view.buffer.slice(view.byteOffset, view.byteOffset + view.byteLength));
}

/** An int32 vector. */
export function readInts(value) {
  const view = asBytes(value);
  return new Int32Array(view.buffer.slice(view.byteOffset, view.byteOffset + view.byteLength));
}
