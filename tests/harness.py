"""Mount a widget's real bundle and state in a browser page, bridged to the Python widget.

Used by the browser tests and the latency benchmark (Playwright pages): a stand-in for the widget
model with get/set/on/save_changes, where ``save_changes`` hands the Python widget what changed
(``set_state``, as a kernel's comm does, so its requests are answered) and the widget's new state
flows back into the page.
"""

from __future__ import annotations

import json
from typing import Any

from cbwidgets.widgets.export import _source, widget_state

__all__ = ["mount"]

_HARNESS = """<!doctype html><html><head><meta charset="utf-8"><style id="css"></style></head>
<body><div id="view"></div></body></html>"""

_MOUNT = """async ([esm, css, state]) => {
  const decode = (b64) => Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
  const wire = (v) => {  // {"__bytes__": base64} anywhere in the state -> a DataView, as a kernel sends it
    if (v && typeof v === "object" && "__bytes__" in v) {
      const b = decode(v.__bytes__);
      return new DataView(b.buffer, b.byteOffset, b.byteLength);
    }
    if (v && typeof v === "object") for (const k of Object.keys(v)) v[k] = wire(v[k]);
    return v;
  };
  document.getElementById("css").textContent = css;
  const values = wire(state), listeners = {}, dirty = new Set();
  const same = (a, b) => {  // deep equality, buffers compared byte by byte
    if (a instanceof DataView || b instanceof DataView) {
      if (!(a instanceof DataView && b instanceof DataView) || a.byteLength !== b.byteLength) return false;
      for (let i = 0; i < a.byteLength; i++) if (a.getUint8(i) !== b.getUint8(i)) return false;
      return true;
    }
    if (a && b && typeof a === "object" && typeof b === "object") {
      const keys = Object.keys(a);
      return keys.length === Object.keys(b).length && keys.every((k) => same(a[k], b[k]));
    }
    return a === b;
  };
  window.cbwSent = [];
  const fire = (key) => (listeners["change:" + key] || []).forEach((f) => f());
  const model = {
    get: (k) => values[k],
    set: (k, v) => { values[k] = v; dirty.add(k); fire(k); },
    on: (name, f) => { (listeners[name] ||= []).push(f); },
    off: () => {},
    send: (msg) => window.cbwSent.push(msg),
    save_changes: async () => {
      const changes = {};
      for (const k of dirty) changes[k] = values[k];
      dirty.clear();
      window.cbwSent.push(changes);
      if (window.cbwDeaf) return;  // a test's stand-in for a kernel that no longer answers
      apply(await window.cbwSave(JSON.stringify(changes)));
    },
  };
  // like a widget manager: set every changed value first, then announce each change
  const apply = (json) => {
    const fresh = wire(JSON.parse(json));
    const changed = Object.keys(fresh).filter((k) => !same(fresh[k], values[k]));
    for (const k of changed) values[k] = fresh[k];
    for (const k of changed) fire(k);
  };
  // what the kernel would push unasked (a background thread's updates): fetched when a test pulls
  window.cbwPull = async () => apply(await window.cbwState());
  window.cbwModel = model;
  window.cbwFire = (name) => (listeners[name] || []).forEach((f) => f());  // e.g. "comm_live_update"
  const url = URL.createObjectURL(new Blob([esm], { type: "text/javascript" }));
  const widget = (await import(url)).default;
  await widget.render({ model, el: document.getElementById("view") });
}"""


def mount(page: Any, widget: Any, drop_buffers: bool = False) -> None:
    """Render ``widget``'s real bundle in ``page``; ``save_changes`` sets the Python widget's traits
    (so its observers run, as in a kernel) and sends the widget's new state back.
    ``page.evaluate("cbwPull()")`` brings changes made in Python since (by a thread, say);
    ``window.cbwDeaf = true`` stops answering (a kernel gone); ``cbwFire(event)`` fires a model event.
    ``drop_buffers`` loses every binary buffer on the way, as Colab's widget manager does."""

    def state() -> dict[str, Any]:
        sent = widget_state(widget)
        return _without_buffers(sent) if drop_buffers else sent

    def save(changes_json: str) -> str:
        widget.set_state(json.loads(changes_json))
        return json.dumps(state())

    page.expose_function("cbwSave", save)
    page.expose_function("cbwState", lambda: json.dumps(state()))
    page.set_content(_HARNESS)
    page.evaluate(_MOUNT, [_source(widget._esm), _source(widget._css), state()])


def _without_buffers(value: Any) -> Any:
    if isinstance(value, dict):
        return {key: _without_buffers(item) for key, item in value.items() if not _is_buffer(item)}
    if isinstance(value, list):
        return [_without_buffers(item) for item in value]
    return value


def _is_buffer(value: Any) -> bool:
    return isinstance(value, dict) and "__bytes__" in value
