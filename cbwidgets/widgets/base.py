"""What every cbwidgets widget shares: the shipped bundle, an error box, a text fallback.

Errors raised in Python callbacks (an observer reacting to a click) are otherwise swallowed by
the widget machinery; here they are caught and shown inside the widget, and kept on
``widget.error`` for code to read.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import anywidget
import numpy as np
import traitlets

__all__ = ["STATIC", "CodeGridWidget", "WidgetBase"]

STATIC = Path(__file__).parent / "static"


class WidgetBase(anywidget.AnyWidget):
    _css = STATIC / "style.css"
    error = traitlets.Unicode("").tag(sync=True)

    @contextmanager
    def reporting_errors(self) -> Iterator[None]:
        """Run a callback's body; an exception is shown in the widget instead of vanishing."""
        try:
            yield
        except Exception as err:
            self.error = f"{type(err).__name__}: {err}"
        else:
            self.error = ""

    def guarded(self, callback: Callable[..., Any]) -> Callable[..., None]:
        """Wrap a callback so that its exceptions land in the widget's error box."""

        def run(*args: Any, **kwargs: Any) -> None:
            with self.reporting_errors():
                callback(*args, **kwargs)

        return run

    def _fallback_html(self) -> str:
        """A static HTML view for front ends that cannot render widgets (overridden per widget)."""
        return ""

    def _repr_mimebundle_(self, **kwargs: Any) -> Any:
        bundle = super()._repr_mimebundle_(**kwargs)
        if bundle is None:  # no front end to show a widget in
            return None
        data, meta = bundle if isinstance(bundle, tuple) else (bundle, {})
        data = dict(data)
        data["text/plain"] = repr(self)
        html = self._fallback_html()
        if html:
            data["text/html"] = html
        return data, meta


class CodeGridWidget(WidgetBase):
    """A widget showing one prompt's codes: token strings, codebook labels, ids as int32 bytes."""

    tokens = traitlets.List(traitlets.Unicode()).tag(sync=True)
    labels = traitlets.List(traitlets.Unicode()).tag(sync=True)
    names = traitlets.List(traitlets.Unicode()).tag(sync=True)
    codes = traitlets.Bytes(b"").tag(sync=True)  # int32 little-endian, (tokens, codebooks, k); -1 = none
    shape = traitlets.List(traitlets.Int(), default_value=[0, 0, 1]).tag(sync=True)

    @staticmethod
    def code_traits(ids: np.ndarray) -> dict[str, Any]:
        """The ``codes`` and ``shape`` trait values for ids (tokens, codebooks, k)."""
        return {"codes": np.ascontiguousarray(ids, dtype="<i4").tobytes(), "shape": list(ids.shape)}

    @property
    def ids(self) -> np.ndarray:
        """The code ids as an array (tokens, codebooks, k)."""
        return np.frombuffer(self.codes, dtype="<i4").reshape(self.shape)
