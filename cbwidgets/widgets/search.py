"""CodeSearch: type a regex, see the codes that fire on its matches, most precise first."""

from __future__ import annotations

import html
import warnings
from collections.abc import Callable
from typing import Any

import pandas as pd
import traitlets

from ..index import CodeIndex
from ..labels import CodeLabels
from .base import STATIC, Array, CodeTrait, refusing
from .labelled import LabelledCodes

__all__ = ["CodeSearch"]


class CodeSearch(LabelledCodes):
    """A regex box over a ``CodeIndex``; the table updates as you type (150 ms debounce in the view).

    Over an index with values (an SAE's latents) the table adds "activation", the share of a latent's
    summed value that falls on the matches, and is ranked by it, as ``CodeIndex.search`` ranks.

    A bad regex shows its message in the widget (the last good table stays). Clicking a row sets
    ``opened`` to that code; ``on_open(callback)`` hears it (a CodeDashboard can follow it, see
    ``code_explorer``). ``labels`` (a model's ``labels``) shows each code's label beside its name.
    """

    _esm = STATIC / "search.js"
    pattern = traitlets.Unicode("").tag(sync=True)
    code_names = traitlets.List(traitlets.Unicode()).tag(sync=True)  # one row per code found
    precision = Array("<f4")
    activation_precision = Array("<f4")  # empty unless the index holds values (an SAE's): then it ranks
    recall = Array("<f4")
    matches = Array("<i4")
    firings = Array("<i4")
    summary = traitlets.Unicode("").tag(sync=True)
    opened = CodeTrait()

    _answers_to = ("pattern",)

    def __init__(
        self,
        index: CodeIndex,
        pattern: str = "",
        rows: int = 50,
        min_matches: int = 1,
        labels: CodeLabels | None = None,
    ) -> None:
        super().__init__(pattern=pattern)
        self._index = index
        self._rows = rows
        self._min_matches = min_matches
        with self.reporting_errors():
            self.answer({"pattern"}, "")
        self.follow_labels(labels)

    def answer(self, changed: set[str], command: str) -> None:
        table = self._index.search(self.pattern, min_matches=self._min_matches) if self.pattern else None
        shown = table.head(self._rows) if table is not None else pd.DataFrame(columns=_COLUMNS)
        with self.hold_sync():
            self.code_names = shown["code"].tolist()
            self.refresh_labels()
            self.precision, self.recall = shown["precision"], shown["recall"]
            self.activation_precision = shown.get("activation_precision", shown["precision"].iloc[:0])
            self.matches, self.firings = shown["matches"], shown["firings"]
            if table is None:
                self.summary = f"type a regex to search {self._index.num_tokens:,} tokens"
            else:
                found = table.attrs["matched_tokens"]  # the search already ran the regex
                by = "; ranked by the share of each one's activation on them" if self._index.values is not None else ""
                self.summary = f"{found:,} matched tokens; {len(table):,} codes fire on them (showing {len(shown)}){by}"

    @traitlets.validate("opened")
    @refusing
    def _written_form(self, proposal: dict[str, Any]) -> str:
        """A code opened from Python may be in any form the model takes; it reads in the written form."""
        value = proposal["value"]
        return self._index.codebooks.canonical(value) if value else ""

    def _codes_shown(self) -> list[str]:
        return list(self.code_names)

    def open_code(self, code: Any) -> None:
        """Open ``code`` (any form), as clicking its row does: ``on_open`` callbacks hear it."""
        self.opened = self._index.codebooks.canonical(code)

    def on_open(self, callback: Callable[[str], Any]) -> None:
        """Call ``callback(code)`` when a row is clicked; its errors show in the widget."""
        guarded = self.guarded(callback)
        self.observe(lambda change: guarded(change["new"]) if change["new"] else None, names="opened")

    @property
    def table(self) -> pd.DataFrame:
        """The rows shown, as a DataFrame."""
        columns = (self.code_names, self.precision, self.recall, self.matches, self.firings)
        table = pd.DataFrame(dict(zip(_COLUMNS, columns, strict=True)))
        if len(self.activation_precision) == len(table) and len(table):
            table.insert(1, "activation_precision", self.activation_precision)
        return table

    @property
    def codes(self) -> list[str]:
        """Deprecated: the rows' code names are ``code_names`` ("codes" means ids elsewhere)."""
        warnings.warn("CodeSearch.codes is now CodeSearch.code_names", DeprecationWarning, stacklevel=2)
        return list(self.code_names)

    def __repr__(self) -> str:
        return f"CodeSearch(pattern={self.pattern!r}, rows={len(self.code_names)})"

    def _fallback_html(self) -> str:
        rows = "".join(
            f"<tr><td>{html.escape(code)}</td><td>{p:.3f}</td><td>{r:.3f}</td></tr>"
            for code, p, r in zip(self.code_names, self.precision.tolist(), self.recall.tolist(), strict=True)
        )
        return (
            f"<p>{html.escape(self.pattern)}: {html.escape(self.summary)}</p>"
            f"<table><tr><th>code</th><th>precision</th><th>recall</th></tr>{rows}</table>"
        )


_COLUMNS = ("code", "precision", "recall", "matches", "firings")
