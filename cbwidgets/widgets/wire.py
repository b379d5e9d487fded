"""How an ``Array`` trait crosses to the view: as a binary buffer, or as base64 text in the state.

Binary buffers are the right wire (no copy into text, a third smaller), and JupyterLab, Notebook 7,
VS Code and marimo carry them. Colab's widget manager is known to drop them
(googlecolab/colab-cdn-widget-manager#33): there the arrays would arrive empty and every view would
be blank. So each widget has a ``wire``: ``"binary"`` by default, ``"base64"`` when the kernel runs in
Colab, or whatever ``CBWIDGETS_WIRE`` says. ``js/wire.js`` reads both forms, so nothing else changes.
"""

from __future__ import annotations

import base64
import os
import sys
from typing import Any

import numpy as np

from ..errors import CodebookError

__all__ = ["WIRES", "checked_wire", "decode", "default_wire", "encode"]

WIRES = ("binary", "base64")
_VARIABLE = "CBWIDGETS_WIRE"


def default_wire() -> str:
    """The wire a new widget uses: ``CBWIDGETS_WIRE`` if set, else base64 in Colab, else binary."""
    chosen = os.environ.get(_VARIABLE, "").strip().lower()
    if chosen:
        return checked_wire(chosen, f"{_VARIABLE}={os.environ[_VARIABLE]!r}")
    return "base64" if "google.colab" in sys.modules else "binary"


def checked_wire(value: Any, what: str = "wire") -> str:
    """``value`` if it names a wire, else a CodebookError that lists the ones there are."""
    if value not in WIRES:
        raise CodebookError(
            f"{what} is not a wire; use 'binary' (buffers: JupyterLab, Notebook, VS Code, marimo) "
            "or 'base64' (text in the state: front ends that drop buffers, such as Colab's)."
        )
    return str(value)


def encode(array: np.ndarray, wire: str) -> dict[str, Any]:
    """The state value of ``array``: shape and dtype, and the bytes as a buffer or as base64 text."""
    head: dict[str, Any] = {"shape": list(array.shape), "dtype": array.dtype.name}
    if wire == "base64":
        return {**head, "base64": base64.b64encode(array.tobytes()).decode("ascii")}
    return {**head, "data": memoryview(array.tobytes())}


def decode(value: Any) -> np.ndarray:
    """An array from either form of ``encode`` (a view never sends arrays today; this keeps the
    round trip whole for state restored from a saved notebook)."""
    if isinstance(value, np.ndarray):
        return value
    raw = base64.b64decode(value["base64"]) if "base64" in value else bytes(value["data"])
    return np.frombuffer(raw, dtype=value["dtype"]).reshape(value["shape"])
