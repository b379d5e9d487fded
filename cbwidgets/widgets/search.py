"""CodeSearch: type a regex, see the codes that fire on its matches, most precise first."""

from __future__ import annotations

import html
from collections.abc import Callable
from typing import Any

import numpy as np
import traitlets

from ..index import CodeIndex
from .base import STATIC, WidgetBase
from .export import export_html

__all__ = ["CodeSearch"]


class CodeSearch(WidgetBase):
    """A regex box over a ``CodeIndex``; the table updates as you type (150 ms debounce in the view).

    A bad regex shows its message in the widget. Clicking a row sets ``opened`` to that code;
    ``on_open(callback)`` hears it (a CodeDashboard can follow it, see ``code_explorer``).
    """

    _esm = STATIC / "search.js"
    pattern = traitlets.Unicode("").tag(sync=True)
    request = traitlets.Int(0).tag(sync=True)
    answered = traitlets.Int(0).tag(sync=True)
    codes = traitlets.List(traitlets.Unicode()).tag(sync=True)
    precision = traitlets.Bytes(b"").tag(sync=True)  # float32 per row
    recall = traitlets.Bytes(b"").tag(sync=True)
    matches = traitlets.Bytes(b"").tag(sync=True)  # int32 per row
    firings = traitlets.Bytes(b"").tag(sync=True)
    summary = traitlets.Unicode("").tag(sync=True)
    opened = traitlets.Unicode("").tag(sync=True)

    def __init__(self, index: CodeIndex, pattern: str = "", rows: int = 50, min_matches: int = 1) -> None:
        super().__init__(pattern=pattern)
        self._index = index
        self._rows = rows
        self._min_matches = min_matches
        self._on_pattern({})
        self.observe(self._on_pattern, names="pattern")

    def _on_pattern(self, _change: dict[str, Any]) -> None:
        with self.reporting_errors():
            self._run()

    def _run(self) -> None:
        table = self._index.search(self.pattern, min_matches=self._min_matches) if self.pattern else None
        shown = table.head(self._rows) if table is not None else None
        with self.hold_sync():
            self.codes = [] if shown is None else shown["code"].tolist()
            self.precision = _bytes(shown, "precision", "<f4")
            self.recall = _bytes(shown, "recall", "<f4")
            self.matches = _bytes(shown, "matches", "<i4")
            self.firings = _bytes(shown, "firings", "<i4")
            if table is None or shown is None:
                self.summary = f"type a regex to search {self._index.num_tokens:,} tokens"
            else:
                found = table.attrs["matched_tokens"]  # the search already ran the regex
                self.summary = f"{found:,} matched tokens; {len(table):,} codes fire on them (showing {len(shown)})"
            self.answered = self.request

    def on_open(self, callback: Callable[[str], Any]) -> None:
        """Call ``callback(code)`` when a row is clicked; its errors show in the widget."""
        guarded = self.guarded(callback)
        self.observe(lambda change: guarded(change["new"]) if change["new"] else None, names="opened")

    @property
    def table(self) -> Any:
        """The rows shown, as a DataFrame."""
        import pandas as pd

        return pd.DataFrame(
            {
                "code": self.codes,
                "precision": np.frombuffer(self.precision, "<f4"),
                "recall": np.frombuffer(self.recall, "<f4"),
                "matches": np.frombuffer(self.matches, "<i4"),
                "firings": np.frombuffer(self.firings, "<i4"),
            }
        )

    def __repr__(self) -> str:
        return f"CodeSearch(pattern={self.pattern!r}, rows={len(self.codes)})"

    def _fallback_html(self) -> str:
        rows = "".join(
            f"<tr><td>{html.escape(r.code)}</td><td>{r.precision:.3f}</td><td>{r.recall:.3f}</td></tr>"
            for r in self.table.itertuples()
        )
        return (
            f"<p>{html.escape(self.pattern)}: {html.escape(self.summary)}</p>"
            f"<table><tr><th>code</th><th>precision</th><th>recall</th></tr>{rows}</table>"
        )

    def to_html(self, path: str | None = None) -> str:
        return export_html(self, path, title="CodeSearch")


def _bytes(table: Any, column: str, dtype: str) -> bytes:
    if table is None:
        return b""
    return np.ascontiguousarray(table[column].to_numpy(), dtype=dtype).tobytes()
