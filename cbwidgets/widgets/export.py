"""One self-contained HTML file per widget view: bundle and data inline, no CDN, no kernel.

The page mounts the same ESM bundle the notebook uses, on a read-only stand-in for the widget
model built from the widget's synced state, serialised as the kernel sends it. Binary buffers
travel as base64 and arrive as the same DataView the live widget receives, so the view is
identical; clicks select and highlight but nothing re-runs.
"""

from __future__ import annotations

import base64
import html
import json
from pathlib import Path
from typing import Any

__all__ = ["export_html", "widget_state"]

_SKIP = {"_esm", "_css", "_anywidget_id", "layout", "_dom_classes", "tabbable", "tooltip", "comm", "keys", "log"}

# Nothing leaves the page: scripts only inline or from the blob the bundle is loaded from.
_CSP = "default-src 'none'; script-src 'unsafe-inline' blob:; style-src 'unsafe-inline'; img-src data:"

_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title>
<meta http-equiv="Content-Security-Policy" content="{csp}">
<style>body{{margin:16px;}}</style><style id="cbw-css"></style></head>
<body><div id="cbw-view"></div>
<script type="module">
const decode = (b64) => Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
const text = (b64) => new TextDecoder().decode(decode(b64));
const buffers = (value) => {{  // {{"__bytes__": base64}} anywhere in the state -> a DataView
  if (value && typeof value === "object" && "__bytes__" in value) {{
    const bytes = decode(value.__bytes__);
    return new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  }}
  if (value && typeof value === "object") for (const key of Object.keys(value)) value[key] = buffers(value[key]);
  return value;
}};
const state = buffers(JSON.parse(text("{state}")));
document.getElementById("cbw-css").textContent = text("{css}");
const listeners = {{}};
const model = {{
  get: (key) => state[key],
  set: (key, value) => {{ state[key] = value; (listeners["change:" + key] || []).forEach((f) => f()); }},
  save_changes: () => {{}},
  on: (name, f) => {{ (listeners[name] ||= []).push(f); }},
  off: () => {{}},
  send: () => {{}},
  widget_manager: null,
}};
const url = URL.createObjectURL(new Blob([text("{esm}")], {{ type: "text/javascript" }}));
const widget = (await import(url)).default;
const el = document.getElementById("cbw-view");
if (widget.initialize) await widget.initialize({{ model }});
await widget.render({{ model, el }});
</script></body></html>
"""


def _source(value: Any) -> str:
    """anywidget turns the class's ``_esm`` / ``_css`` paths into their text (or a file watcher in dev mode)."""
    return value.read_text(encoding="utf-8") if isinstance(value, Path) else str(value)


def widget_state(widget: Any) -> dict[str, Any]:
    """The widget's synced state as the kernel sends it, binary buffers as ``{"__bytes__": base64}``."""
    state = widget.get_state()
    return {name: _encoded(value) for name, value in state.items() if name not in _SKIP and not name.startswith("_")}


def _encoded(value: Any) -> Any:
    if isinstance(value, bytes | bytearray | memoryview):
        return {"__bytes__": base64.b64encode(bytes(value)).decode()}
    if isinstance(value, dict):
        return {key: _encoded(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_encoded(item) for item in value]
    return value


def export_html(widget: Any, path: str | Path | None = None, title: str | None = None) -> str:
    """The page as a string; also written to ``path`` when given."""
    esm, css = _source(widget._esm), _source(widget._css)

    def b64(text: str) -> str:
        return base64.b64encode(text.encode("utf-8")).decode()

    page = _PAGE.format(
        csp=_CSP,
        title=html.escape(title or type(widget).__name__),
        state=b64(json.dumps(widget_state(widget))),
        css=b64(css),
        esm=b64(esm),
    )
    if path is not None:
        Path(path).write_text(page, encoding="utf-8")
    return page
