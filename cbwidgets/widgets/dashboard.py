"""CodeDashboard: one code over a corpus, and ``code_explorer``: search, dashboard and heatmap wired."""

from __future__ import annotations

import html
from typing import Any

import numpy as np
import traitlets

from ..code_effects import code_logit_effect, residual_vector, similar_codes
from ..index import CodeIndex
from ..model import CodebookModel
from .base import STATIC, Array, CodeTrait, Integer, WidgetBase, refusing
from .export import export_html
from .heatmap import CodeHeatmap
from .search import CodeSearch

__all__ = ["CodeDashboard", "code_explorer"]

BINS = 20


class CodeDashboard(WidgetBase):
    """Frequency, where in documents it fires, top examples, logit effect and similar codes (the last
    two need the model). Clicking an example shows its window in ``heatmap`` with the code selected;
    clicking a similar code (or ``show(code)``) switches the dashboard."""

    _esm = STATIC / "dashboard.js"
    code = CodeTrait()  # in the written form; any form the model takes is accepted
    stats = traitlets.Dict().tag(sync=True)
    hist = Array("<f4")  # (BINS,): share of firings by place in the document
    examples = traitlets.List(traitlets.Dict()).tag(sync=True)
    effects = traitlets.List(traitlets.Dict()).tag(sync=True)
    similar = traitlets.List(traitlets.Dict()).tag(sync=True)
    opened_example = Integer(-1).tag(sync=True)
    status = traitlets.Unicode("").tag(sync=True)

    _answers_to = ("code", "opened_example")

    def __init__(
        self, index: CodeIndex, code: Any, model: CodebookModel | None = None, examples: int = 12, context: int = 8
    ) -> None:
        self._index, self._model = index, model
        self._n, self._context = examples, context
        index.positions(code)  # a bad code fails here, with the index's message
        super().__init__(code=index.codebooks.canonical(code))
        self.heatmap = CodeHeatmap([], np.zeros((0, len(index.codebooks)), dtype=np.int32), index.codebooks)
        self._show()

    @traitlets.validate("code")
    @refusing
    def _written_form(self, proposal: dict[str, Any]) -> str:
        return self._index.codebooks.canonical(proposal["value"])

    def show(self, code: Any) -> None:
        """Switch the dashboard to ``code``, in any form (what clicking a similar code does)."""
        self.code = self._index.codebooks.canonical(code)

    def answer(self, changed: set[str], command: str) -> None:
        if "code" in changed:
            self._show()
        if "opened_example" in changed:
            self.open_example(self.opened_example)

    def _show(self) -> None:
        index, code = self._index, self.code
        where = index.positions(code)
        starts = np.asarray(index.doc_starts)
        docs = index.document_of(where)
        lengths = np.maximum(1, starts[docs + 1] - starts[docs])
        place = (where - starts[docs]) / lengths
        hist = np.histogram(place, bins=BINS, range=(0.0, 1.0))[0].astype(np.float32)
        table = index.top_examples(code, n=self._n, context=self._context)
        effects, similar = [], []
        if self._model is not None:
            if residual_vector(self._model, code) is not None:
                effects = code_logit_effect(self._model, code, top=5)[["token", "effect", "direction"]].to_dict(
                    "records"
                )
            similar = similar_codes(self._model, code, n=5).to_dict("records")
        with self.hold_sync():
            self.stats = index.code_stats(code)
            self.hist = hist / max(1.0, float(hist.sum()))
            self.examples = table[["document", "position", "left", "token", "right"]].to_dict("records")
            self.effects = effects
            self.similar = similar
            self.opened_example = -1
            self.status = "" if self._model is not None else "logit effect and similar codes need the model"

    def open_example(self, i: int) -> CodeHeatmap:
        """Show example ``i``'s window (the whole context around it) in ``self.heatmap``, code selected."""
        if i < 0:
            return self.heatmap
        if i >= len(self.examples):
            raise IndexError(f"example {i} does not exist; this dashboard shows {len(self.examples)}.")
        index, p = self._index, int(self.examples[i]["position"])
        d = int(index.document_of(np.array([p]))[0])
        first, last = index.document_span(d)
        a, b = max(first, p - 4 * self._context), min(last, p + 4 * self._context + 1)
        self.heatmap.show(index.token_strings(a, b), index.ids(a, b), index.codebooks, selected=self.code)
        self.opened_example = i
        self.status = f"example {i}: document {d}, tokens {a}..{b - 1} in the heatmap"
        return self.heatmap

    def __repr__(self) -> str:
        return f"CodeDashboard(code={self.code!r}, firings={self.stats.get('firings')})"

    def _fallback_html(self) -> str:
        rows = "".join(
            f"<tr><td>{html.escape(e['left'])}</td><td><b>{html.escape(e['token'])}</b></td>"
            f"<td>{html.escape(e['right'])}</td></tr>"
            for e in self.examples
        )
        return f"<p>code {html.escape(self.code)}: {self.stats.get('firings')} firings</p><table>{rows}</table>"

    def to_html(self, path: str | None = None) -> str:
        """A self-contained read-only HTML page of this view (no kernel, no network); written to ``path``."""
        return export_html(self, path, title=f"CodeDashboard {self.code}")


def code_explorer(index: CodeIndex, model: CodebookModel | None = None, pattern: str = "") -> Any:
    """A search box, the dashboard of the code clicked there, and the heatmap of the example clicked there."""
    import ipywidgets

    search = CodeSearch(index, pattern)
    first = search.code_names[0] if search.code_names else index.codebooks.code_name(0, 0)
    dashboard = CodeDashboard(index, first, model)
    search.on_open(dashboard.show)
    box = ipywidgets.VBox([search, dashboard, dashboard.heatmap])
    box.search, box.dashboard = search, dashboard
    return box
