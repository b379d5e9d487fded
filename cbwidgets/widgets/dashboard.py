"""CodeDashboard: one code over a corpus, and ``code_explorer``: search, dashboard and heatmap wired."""

from __future__ import annotations

import html
from typing import Any

import numpy as np
import traitlets

from ..code_effects import code_logit_effect, residual_vector, similar_codes
from ..index import CodeIndex
from ..model import CodebookModel
from .base import STATIC, WidgetBase
from .export import export_html
from .heatmap import CodeHeatmap
from .search import CodeSearch

__all__ = ["CodeDashboard", "code_explorer"]

BINS = 20


class CodeDashboard(WidgetBase):
    """Frequency, where in documents it fires, top examples, logit effect and similar codes (the last
    two need the model). Clicking an example shows its window in ``heatmap`` with the code selected;
    clicking a similar code (or setting ``code``) switches the dashboard."""

    _esm = STATIC / "dashboard.js"
    code = traitlets.Unicode("").tag(sync=True)
    stats = traitlets.Dict().tag(sync=True)
    hist = traitlets.Bytes(b"").tag(sync=True)  # float32 (BINS,): share of firings by place in the document
    examples = traitlets.List(traitlets.Dict()).tag(sync=True)
    effects = traitlets.List(traitlets.Dict()).tag(sync=True)
    similar = traitlets.List(traitlets.Dict()).tag(sync=True)
    opened_example = traitlets.Int(-1).tag(sync=True)
    status = traitlets.Unicode("").tag(sync=True)

    def __init__(
        self, index: CodeIndex, code: str, model: CodebookModel | None = None, examples: int = 12, context: int = 8
    ) -> None:
        index.positions(code)  # a bad code fails here, with the index's message
        super().__init__(code=code)
        self._index, self._model = index, model
        self._n, self._context = examples, context
        self.heatmap = CodeHeatmap([], np.zeros((0, len(index.labels)), dtype=np.int32), index.labels)
        self._show()
        self.observe(lambda _: self._guarded_show(), names="code")
        self.observe(lambda change: self._guarded_open(change["new"]), names="opened_example")

    def _guarded_show(self) -> None:
        with self.reporting_errors():
            self._show()

    def _guarded_open(self, i: int) -> None:
        with self.reporting_errors():
            self.open_example(i)

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
            self.hist = (hist / max(1.0, float(hist.sum()))).astype("<f4").tobytes()
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
        a = max(int(index.doc_starts[d]), p - 4 * self._context)
        b = min(int(index.doc_starts[d + 1]), p + 4 * self._context + 1)
        ids = np.asarray(index.codes[a:b]).astype(np.int64)
        ids[ids == index.empty] = -1
        with self.heatmap.hold_sync():
            self.heatmap.tokens = [index.vocab[t] for t in np.asarray(index.tokens[a:b]).tolist()]
            self.heatmap.labels = index.labels
            self.heatmap.names = index.labels
            self.heatmap.codes, self.heatmap.shape = (
                np.ascontiguousarray(ids, dtype="<i4").tobytes(),
                list(ids.shape),
            )
            self.heatmap.selected = self.code
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
        return export_html(self, path, title=f"CodeDashboard {self.code}")


def code_explorer(index: CodeIndex, model: CodebookModel | None = None, pattern: str = "") -> Any:
    """A search box, the dashboard of the code clicked there, and the heatmap of the example clicked there."""
    import ipywidgets

    search = CodeSearch(index, pattern)
    first = search.codes[0] if search.codes else f"{index.labels[0]}.0"
    dashboard = CodeDashboard(index, first, model)
    search.on_open(lambda code: setattr(dashboard, "code", code))
    box = ipywidgets.VBox([search, dashboard, dashboard.heatmap])
    box.search, box.dashboard = search, dashboard
    return box
