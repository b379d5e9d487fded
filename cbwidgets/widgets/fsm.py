"""FSMView: the TokFSM graph beside the model's codes, so "this code means state 07" can be checked.

The states sit on a grid (for two-digit states, row = first digit, column = second, so state 47 is
row 4, column 7). Click a state: its true out-neighbours and the model's predicted next states
are drawn from it and listed side by side, and the codes that fire at it (read at its last digit)
are listed per codebook with their precision and recall. Click a code: every state where it fires
is shaded by the share of the code's firings that land there. Linked to a ``CodeHeatmap``, a code
selected in either view is selected in both.
"""

from __future__ import annotations

import html
import math
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd
import traitlets

from ..errors import CodebookError
from ..model import CodebookModel
from ..names import CodebookNames
from ..tokfsm.metrics import next_state_probs
from ..tokfsm.state_codes import state_codes, state_of
from ..tokfsm.world import TokFSM
from .base import STATIC, Array, Integer, as_array, refusing
from .heatmap import CodeHeatmap
from .selection import CodeSelecting

__all__ = ["FSMView", "fsm_explorer", "fsm_view"]


class FSMView(CodeSelecting):
    """States on a grid; a state's transitions (true vs predicted) and codes; a code's states.

    ``select_state(7)`` or ``select_state("07")`` and ``select("1.mlp.173")`` do from Python what a
    click does; ``codes_for``, ``states_for`` and ``transitions`` return the tables the view shows.
    """

    _esm = STATIC / "fsm.js"
    states = traitlets.List(traitlets.Unicode()).tag(sync=True)  # each state's written form
    columns = traitlets.Int(10).tag(sync=True)  # states per grid row
    edges = Array("<i4", ndim=2)  # (N, E): each state's true out-neighbours
    predicted = Array("<f4", ndim=2)  # (N, N): the model's next-state probabilities
    labels = traitlets.List(traitlets.Unicode()).tag(sync=True)
    names = traitlets.List(traitlets.Unicode()).tag(sync=True)
    pairs = Array("<i4", ndim=2)  # (M, 4): codebook, code id, state, firings
    occurrences = Array("<i4")  # (N,): how often each state was read
    per_codebook = Integer(2).tag(sync=True)  # codes listed per codebook for a state
    selected_state = Integer(-1).tag(sync=True)  # -1 for none

    def __init__(
        self,
        fsm: TokFSM,
        table: pd.DataFrame,
        occurrences: Any,
        predicted: Any,
        codebooks: CodebookNames,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        n = fsm.num_states
        probs = as_array(predicted, "<f4")
        counts = as_array(occurrences, "<i4")
        if probs.shape != (n, n) or counts.shape != (n,):
            raise CodebookError(
                f"predicted must be ({n}, {n}) and occurrences ({n},) for an FSM of {n} states; got "
                f"{probs.shape} and {counts.shape}. FSMView.from_model computes both."
            )
        self.fsm, self.codebooks, self.table = fsm, codebooks, table
        with self.hold_sync():
            self.states = [fsm.state_text(s) for s in range(n)]
            self.columns = fsm.base if fsm.digits == 2 else math.ceil(math.sqrt(n))
            self.edges = as_array(fsm.edges, "<i4")
            self.predicted = probs
            self.labels = list(codebooks.labels)
            self.names = list(codebooks.names)
            book = {label: i for i, label in enumerate(codebooks.labels)}
            self.pairs = as_array(
                np.stack([table.codebook.map(book), table["id"], table.state_index, table.firings], axis=1).reshape(
                    -1, 4
                ),
                "<i4",
            )
            self.occurrences = counts

    @classmethod
    def from_model(
        cls, model: CodebookModel, fsm: TokFSM | None = None, num_sequences: int = 256, length: int = 64, seed: int = 3
    ) -> FSMView:
        """Read ``model``'s codes on ``num_sequences`` fresh walks and its next-state predictions."""
        fsm = fsm or TokFSM()
        if model.config.vocab_size < fsm.vocab_size:
            raise CodebookError(
                f"this model has {model.config.vocab_size} tokens but the FSM needs {fsm.vocab_size}; give the "
                f"TokFSM the model was trained on (fsm=TokFSM(...))."
            )
        table, occurrences = state_codes(model, fsm, num_sequences, length, seed)
        return cls(fsm, table, occurrences, next_state_probs(model, fsm), model.names)

    # ------------------------------------------------------------- selecting
    def select_state(self, state: Any) -> None:
        """Select a state as a click does: its number (any integer type) or digits (``"07"``); ``None`` clears."""
        self.selected_state = -1 if state is None or state == "" else state_of(self.fsm, state)

    @traitlets.validate("selected_state")
    @refusing
    def _valid_state(self, proposal: dict[str, Any]) -> int:
        value = proposal["value"]
        return -1 if value == -1 else state_of(self.fsm, value)

    @property
    def state(self) -> str:
        """The selected state's digits, '' for none."""
        return self.states[self.selected_state] if self.selected_state >= 0 else ""

    def on_state(self, callback: Callable[[str], Any]) -> None:
        """Call ``callback(state_digits)`` ('' when cleared) on every state selection."""
        guarded = self.guarded(callback)
        self.observe(lambda change: guarded(self.state), names="selected_state")

    def link(self, heatmap: CodeHeatmap) -> None:
        """Select a code in this view and in ``heatmap`` together, from either side."""
        if heatmap.codebooks != self.codebooks:
            raise CodebookError("the heatmap shows other codebooks than this view; give one made from the same model.")
        heatmap.observe(lambda change: self.select(change["new"]), names="selected")
        self.observe(lambda change: heatmap.select(change["new"]), names="selected")
        if self.selected:
            heatmap.select(self.selected)
        elif heatmap.selected:
            self.select(heatmap.selected)

    # ---------------------------------------------------------------- tables
    def codes_for(self, state: Any = None, codebook: str | None = None) -> pd.DataFrame:
        """The codes that fire at ``state`` (default: the selected one), most firings first."""
        index = self._state_or_selected(state)
        rows = self.table[self.table.state_index == index]
        if codebook is not None:
            rows = rows[rows.codebook == self.codebooks.labels[self.codebooks.index_of(codebook)]]
        return rows.sort_values(["firings", "precision"], ascending=False).reset_index(drop=True)

    def states_for(self, code: Any = None) -> pd.DataFrame:
        """The states where ``code`` (default: the selected one) fires, by share of its firings."""
        if code is None and not self.selected:
            raise CodebookError("no code is selected; pass one (view.states_for('1.mlp.173')) or click one.")
        book, value = self._parse(self.selected if code is None else code)
        rows = self.table[(self.table.codebook == self.codebooks.labels[book]) & (self.table["id"] == value)]
        return rows.sort_values("firings", ascending=False).reset_index(drop=True)

    def transitions(self, state: Any = None) -> pd.DataFrame:
        """``state``'s true out-neighbours and the model's top predicted next states, side by side."""
        index = self._state_or_selected(state)
        probs = self.predicted[index]
        true = {int(s) for s in self.fsm.edges[index]}
        top = [int(s) for s in np.argsort(-probs, kind="stable")[: self.fsm.num_edges]]
        rows = [
            {"state": self.states[s], "edge": s in true, "predicted": s in top, "probability": float(probs[s])}
            for s in sorted(true | set(top), key=lambda s: (-probs[s], s))
        ]
        return pd.DataFrame(rows)

    def _state_or_selected(self, state: Any) -> int:
        if state is not None:
            return state_of(self.fsm, state)
        if self.selected_state < 0:
            raise CodebookError("no state is selected; pass one (view.codes_for('07')) or click one.")
        return self.selected_state

    # ------------------------------------------------------------- rendering
    def __repr__(self) -> str:
        return (
            f"FSMView(states={len(self.states)}, codebooks={len(self.labels)}, "
            f"state={self.state or None!r}, selected={self.selected or None!r})"
        )

    def _fallback_html(self) -> str:
        """Each state's neighbours and how many of the model's top predictions are neighbours."""
        rows = []
        for s, text in enumerate(self.states):
            frame = self.transitions(s)
            hits = int((frame.edge & frame.predicted).sum())
            neighbours = " ".join(self.states[int(t)] for t in self.fsm.edges[s])
            rows.append(
                f"<tr><td>{html.escape(text)}</td><td>{html.escape(neighbours)}</td>"
                f"<td>{hits}/{self.fsm.num_edges}</td></tr>"
            )
        return (
            '<table class="cbw-fallback"><thead><tr><th>state</th><th>out-neighbours</th>'
            f"<th>predicted right</th></tr></thead><tbody>{''.join(rows)}</tbody></table>"
        )


def fsm_view(model: CodebookModel, fsm: TokFSM | None = None) -> FSMView:
    """``cbwidgets.fsm_view(model)``: the TokFSM graph with the model's codes and predictions."""
    return FSMView.from_model(model, fsm)


def fsm_explorer(model: CodebookModel, fsm: TokFSM | None = None, seed: int = 0, length: int = 41) -> Any:
    """The FSM view above the heatmap of one walk, linked: a code clicked in either lights up in both."""
    import ipywidgets

    fsm = fsm or TokFSM()
    view = FSMView.from_model(model, fsm)
    heatmap = CodeHeatmap.from_model(model, fsm.sample(1, length, seed=seed))
    view.link(heatmap)
    box = ipywidgets.VBox([view, heatmap])
    box.view, box.heatmap = view, heatmap
    return box
