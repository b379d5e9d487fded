"""CodeDashboard: one code over a corpus, and ``code_explorer``: search, dashboard and heatmap wired."""

from __future__ import annotations

import html
from typing import Any

import numpy as np
import traitlets

from ..code_effects import code_logit_effect, residual_vector, similar_codes
from ..errors import CodebookError
from ..index import CodeIndex
from ..label_proposals import propose_labels
from ..labels import CodeLabels
from ..model import CodebookModel
from ..names import as_integer
from .base import STATIC, Array, CodeTrait, Integer, refusing
from .export import export_html
from .heatmap import CodeHeatmap
from .labelled import LabelledCodes
from .search import CodeSearch

__all__ = ["CodeDashboard", "code_explorer"]

BINS = 20


class CodeDashboard(LabelledCodes):
    """Frequency, where in documents it fires, top examples, logit effect and similar codes (the last
    two need the model). Clicking an example shows its window in ``heatmap`` with the code selected;
    clicking a similar code (or ``show(code)``) switches the dashboard.

    With the model, the title holds the code's label (``model.labels``), editable in place: typing
    one there (or setting ``label`` here) labels the code in the model, for every view and for
    ``save_pretrained``; ``label_status`` says whether it is current or stale. "suggest" (or
    ``suggest()``) lists rules the kit proposes for the code, scored on held-out text
    (``label_proposals.propose_labels``); choosing one (``adopt(i)``) makes it the label, with its
    rule and scores as the label's note.
    """

    _esm = STATIC / "dashboard.js"
    code = CodeTrait()  # in the written form; any form the model takes is accepted
    stats = traitlets.Dict().tag(sync=True)
    hist = Array("<f4")  # (BINS,): share of firings by place in the document
    examples = traitlets.List(traitlets.Dict()).tag(sync=True)
    effects = traitlets.List(traitlets.Dict()).tag(sync=True)
    similar = traitlets.List(traitlets.Dict()).tag(sync=True)
    opened_example = Integer(-1).tag(sync=True)
    status = traitlets.Unicode("").tag(sync=True)
    label = traitlets.Unicode("").tag(sync=True)  # the code's label ("" none); what the title's box edits
    label_status = traitlets.Unicode("").tag(sync=True)  # current, stale or none; "" without the model
    suggestions = traitlets.List(traitlets.Dict()).tag(sync=True)  # proposed rules: label, phrase, scores
    adopted = Integer(-1).tag(sync=True)  # the suggestion the view chose

    _answers_to = ("code", "opened_example", "label", "adopted")

    def __init__(
        self, index: CodeIndex, code: Any, model: CodebookModel | None = None, examples: int = 12, context: int = 8
    ) -> None:
        self._index, self._model = index, model
        self._n, self._context = examples, context
        index.positions(code)  # a bad code fails here, with the index's message
        super().__init__(code=index.codebooks.canonical(code))
        self.heatmap = CodeHeatmap([], np.zeros((0, len(index.codebooks)), dtype=np.int32), index.codebooks)
        self._show()
        if model is not None:
            self.follow_labels(model.labels)

    @traitlets.validate("code")
    @refusing
    def _written_form(self, proposal: dict[str, Any]) -> str:
        return self._index.codebooks.canonical(proposal["value"])

    def show(self, code: Any) -> None:
        """Switch the dashboard to ``code``, in any form (what clicking a similar code does)."""
        self.code = self._index.codebooks.canonical(code)

    def answer(self, changed: set[str], command: str) -> None:
        if command == "suggest":
            self.suggest()
        if "adopted" in changed and self.adopted >= 0:
            self.adopt(self.adopted)
        if "label" in changed and "code" not in changed:
            if self._model is None:
                self.label = ""
            labels = self._labels()
            try:
                kept = labels.set(self.code, self.label)  # every view that shows the code follows
            except CodebookError:
                self.refresh_labels()  # the box shows the label the model still holds
                raise
            self.status = (
                f"labelled {self.code}: {kept.text} (model.save_pretrained keeps it)"
                if kept is not None
                else f"removed the label of {self.code}"
            )
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
            shown = ["document", "position", "left", "token", "right"] + (["value"] if "value" in table else [])
            self.examples = [  # plain numbers: a latent's value (an SAE's index) is float16 on disk
                {key: float(v) if key == "value" else v for key, v in row.items()}
                for row in table[shown].to_dict("records")
            ]
            self.effects = effects
            self.similar = similar
            self.opened_example = -1
            self.suggestions = []
            self.status = "" if self._model is not None else "logit effect, similar codes and labels need the model"
            self.refresh_labels()

    def suggest(self, top: int = 5) -> list[dict[str, Any]]:
        """Rules that may describe the code, best first, scored on the index's held-out half."""
        table = propose_labels(self._index, self.code, top=top)
        columns = ["label", "phrase", "pattern", "topic", "phase", "precision", "recall"]
        self.suggestions = [{str(k): v for k, v in row.items()} for row in table[columns].to_dict("records")]
        if not table.attrs["held_out"]:
            self.status = (
                f"{self.code} fires {table.attrs['held_out_firings']} times in the index's held-out half of its "
                f"documents: its rules are scored where they came from; build the index from more documents"
            )
        else:
            self.status = f"{len(table)} suggestions for {self.code}: click one to make it the label"
        return list(self.suggestions)

    def adopt(self, i: Any) -> None:
        """Make suggestion ``i`` the code's label; its rule and scores become the label's note."""
        labels = self._labels()
        i = as_integer(i)
        if not 0 <= i < len(self.suggestions):
            raise CodebookError(f"suggestion {i} does not exist; there are {len(self.suggestions)} (press suggest).")
        chosen = self.suggestions[i]
        rule = f"rule {chosen['pattern']!r}" + (
            f" in documents matching {chosen['topic']!r}" if chosen["topic"] else ""
        )
        if chosen["phase"]:
            rule += f" at token offsets {chosen['phase'][1]} mod {chosen['phase'][0]}"
        note = f"{rule}; held-out precision {chosen['precision']:.2f}, recall {chosen['recall']:.2f}"
        labels.set(self.code, chosen["phrase"], note=note)
        with self.showing():
            self.adopted = -1
        self.status = f"labelled {self.code}: {chosen['phrase']}"

    def _labels(self) -> CodeLabels:
        """The model's labels, which the dashboard edits; without the model there are none to edit."""
        if self._model is None:
            raise CodebookError("labels live in the model: open the dashboard as CodeDashboard(index, code, model).")
        return self._model.labels

    def _codes_shown(self) -> list[str]:
        return [self.code, *(row["code"] for row in self.similar)]

    def refresh_labels(self) -> None:
        """The labels of the code and of its similar codes, and the title's label, up to date."""
        super().refresh_labels()
        if self._model is None:
            return
        found = self._model.labels.get(self.code)
        with self.showing():  # the model's label, not an edit of it
            self.label = "" if found is None else found.text
            self.label_status = self._model.labels.status(self.code)

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

    search = CodeSearch(index, pattern, labels=None if model is None else model.labels)
    first = search.code_names[0] if search.code_names else index.codebooks.code_name(0, 0)
    dashboard = CodeDashboard(index, first, model)
    search.on_open(dashboard.show)
    box = ipywidgets.VBox([search, dashboard, dashboard.heatmap])
    box.search, box.dashboard = search, dashboard
    return box
