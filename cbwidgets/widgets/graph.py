"""CodeGraph: the codes that make one prediction, as a graph you can click.

Nodes are the strongest codes by their exact effect on a target (``cbwidgets.circuits``), laid
out by layer (rows, the last layer on top) and token position (columns, the prompt's tokens along
the axis); size is the effect's size, colour its sign (blue holds the target up, red pushes it
down). Edges are the effects of removing one code on a later code's firing margin. Hovering a node
tells what its code is about: the tokens it fires on most (given a CodeIndex) or the tokens it
writes toward. Click a node to select its code (a linked heatmap selects it too, a linked dashboard
opens it, a linked ablation panel moves to its token); with "click to: ablate", a click removes that
code at that token and the kernel recomputes the whole graph and the prediction under the removal.
A linked ablation panel's edits hold under the graph too: moving a slider there recomputes it here.
"""

from __future__ import annotations

import html
from typing import Any

import numpy as np
import pandas as pd
import traitlets

from ..circuits import Target, ablation_effects, graph_edges
from ..code_effects import code_logit_effect, residual_vector
from ..errors import CodebookError, check_choice
from ..index import CodeIndex
from ..interventions import ABLATION_MODES, Ablate, Intervention
from ..model import CodebookModel
from ..names import as_integer
from .ablation import AblationPanel
from .base import STATIC, Array, Integer, as_array, refusing
from .dashboard import CodeDashboard
from .heatmap import CodeHeatmap
from .labelled import LabelledCodes
from .selection import CodeSelecting
from .text import token_strings

__all__ = ["CLICKS", "CodeGraph", "code_graph_view"]

CLICKS = ("select", "ablate")  # what a click on a node does


class CodeGraph(CodeSelecting, LabelledCodes):
    """The strongest codes for a target and the edges between them, recomputed on every ablation.

    ``ablated`` lists ``{"code": "1.mlp.173", "position": 12}`` removals the graph is computed under
    (set it from Python too, or call ``reset()``); ``nodes_frame`` and ``edges_frame`` are the
    tables drawn. ``index`` (a CodeIndex of the same codebooks) makes each node's hover name the
    tokens its code fires on most; without one it names the tokens the code writes toward.
    ``selected_position`` is the token of the node selected last (a click sets it with the code).
    A node's hover shows its code's label (``model.labels``) where it has one.
    """

    _esm = STATIC / "graph.js"
    _called = "graph"
    tokens = traitlets.List(traitlets.Unicode()).tag(sync=True)
    labels = traitlets.List(traitlets.Unicode()).tag(sync=True)
    names = traitlets.List(traitlets.Unicode()).tag(sync=True)
    layers = Integer(1).tag(sync=True)
    nodes = Array("<i4", ndim=2)  # (M, 4): position, codebook, code id, layer
    node_effects = Array("<f4")  # (M,)
    edges = Array("<i4", ndim=2)  # (E, 2): source row, target row of nodes
    edge_effects = Array("<f4")  # (E,)
    node_notes = traitlets.List(traitlets.Unicode()).tag(sync=True)  # per node: what its code is about
    selected_position = Integer(-1).tag(sync=True)
    target_position = Integer(0).tag(sync=True)
    title = traitlets.Unicode("").tag(sync=True)  # the target in words, with its value
    click = traitlets.Unicode("select").tag(sync=True)
    ablated = traitlets.List(traitlets.Dict()).tag(sync=True)
    status = traitlets.Unicode("").tag(sync=True)

    _answers_to = ("ablated",)

    def __init__(
        self,
        model: CodebookModel,
        prompt: Any,
        target: Target,
        mode: str = "substitute",
        nodes: int = 12,
        min_edge: float = 0.0,
        index: CodeIndex | None = None,
    ) -> None:
        check_choice("mode", mode, ABLATION_MODES)
        if index is not None and list(index.codebooks.labels) != list(model.names.labels):
            raise CodebookError(
                "the index holds other codebooks than the model; build it with CodeIndex.build(model, corpus)."
            )
        ids = model.as_input_ids(model.tokenize(prompt) if isinstance(prompt, str) else prompt)
        if ids.shape[0] != 1:
            raise CodebookError(f"the graph shows one prompt; got a batch of {ids.shape[0]}. Pass one text.")
        self._model, self._ids, self._target, self._mode = model, ids, target, mode
        self._top, self._min_edge, self._index = nodes, min_edge, index
        self._notes: dict[str, str] = {}  # per code: a node's hover line, kept across recomputes
        self._panel: AblationPanel | None = None  # a linked panel's edits hold under the graph
        self.codebooks = model.names
        self.effects = pd.DataFrame()
        self.nodes_frame = pd.DataFrame()
        self.edges_frame = pd.DataFrame()
        super().__init__(
            tokens=token_strings(model.tokenizer, ids[0].tolist()),
            labels=list(model.names.labels),
            names=list(model.names.names),
            layers=int(model.config.num_hidden_layers),
            choices={"click": list(CLICKS)},
        )
        self._recompute()
        self.follow_labels(model.labels)

    # ------------------------------------------------------------ running
    @traitlets.validate("click")
    @refusing
    def _valid_click(self, proposal: dict[str, Any]) -> str:
        check_choice("click", proposal["value"], CLICKS)
        return str(proposal["value"])

    @traitlets.validate("ablated")
    @refusing
    def _valid_ablated(self, proposal: dict[str, Any]) -> list[dict[str, Any]]:
        """Held in the written form whoever sets them; ids and positions may be numpy or torch integers."""
        out = []
        for item in proposal["value"]:
            if not isinstance(item, dict) or "code" not in item or "position" not in item:
                raise CodebookError(f"{item!r} is not a removal; give {{'code': '1.mlp.173', 'position': 12}}.")
            try:
                position = as_integer(item["position"])
            except (TypeError, ValueError):
                raise CodebookError(f"position {item['position']!r} is not one integer.") from None
            if not 0 <= position < len(self.tokens):
                raise CodebookError(f"position {position} is outside the prompt's {len(self.tokens)} tokens.")
            out.append({"code": self._model.names.canonical(item["code"]), "position": position})
        return out

    def ablate(self, code: Any, position: Any) -> None:
        """Remove ``code`` at ``position`` too, as a click in "ablate" mode does."""
        self.ablated = [*self.ablated, {"code": code, "position": position}]

    def reset(self) -> None:
        """Back to the untouched model."""
        self.ablated = []

    def answer(self, changed: set[str], command: str) -> None:
        if command == "reset":
            self.ablated = []
        self._recompute()

    def _outer(self) -> list[Intervention]:
        return [] if self._panel is None else self._panel.interventions()

    def _recompute(self) -> None:
        model = self._model
        removals = [Ablate(a["code"], [a["position"]], self._mode) for a in self.ablated]
        with model.intervene(*self._outer(), *removals):
            effects = ablation_effects(model, self._ids, self._target, self._mode)
            top = effects.head(self._top).reset_index(drop=True)
            edges = graph_edges(model, self._ids, top, self._mode, self._min_edge)
        row = {(p, c): i for i, (p, c) in enumerate(zip(top.position, top.code, strict=True))}
        book = {label: i for i, label in enumerate(self.labels)}
        self.effects, self.nodes_frame, self.edges_frame = effects, top, edges
        with self.hold_sync():
            self.nodes = as_array(
                np.stack([top.position, top.codebook.map(book), top["id"], top.layer], axis=1).reshape(-1, 4), "<i4"
            )
            self.node_effects = as_array(top.effect.to_numpy(), "<f4")
            pairs = [
                (row[(sp, sc)], row[(tp, tc)])
                for sc, sp, tc, tp in zip(
                    edges.source, edges.source_position, edges.target, edges.target_position, strict=True
                )
            ]
            self.edges = as_array(np.asarray(pairs, dtype=np.int32).reshape(-1, 2), "<i4")
            self.edge_effects = as_array(edges.effect.to_numpy(), "<f4")
            self.node_notes = [self._note(code) for code in top.code]
            self.refresh_labels()
            attrs = effects.attrs
            self.target_position = int(top.position.max()) if len(top) else len(self.tokens) - 1
            self.title = f"{attrs.get('target', '')}: {attrs.get('clean', float('nan')):.3f}"
            removed = ", ".join(f"{a['code']}@{a['position']}" for a in self.ablated) or "none"
            panel = ""
            if self._panel is not None:
                panel = f"; panel edits: {self._panel.edits_text()}"
            self.status = (
                f"{len(top)} strongest of {len(effects)} codes, {len(edges)} edges (|effect| >= {self._min_edge:g}); "
                f"mode {self._mode}; removed: {removed}{panel}"
            )

    def _codes_shown(self) -> list[str]:
        return list(self.nodes_frame.code) if len(self.nodes_frame) else []

    def _note(self, code: str) -> str:
        """What a code is about, in a few tokens: where it fires (index) or what it writes toward."""
        if code not in self._notes:
            tok = self._model.tokenizer
            if self._index is not None:
                top = self._index.code_stats(code, top=4)["top_tokens"]
                shown = ", ".join(f"{token!r} ({count})" for token, count in top)
                self._notes[code] = f"fires on: {shown}" if shown else "fires on: nothing in the index"
            elif tok is not None and residual_vector(self._model, code) is not None:
                table = code_logit_effect(self._model, code, top=4)
                up = table[table.effect > 0].token.tolist()
                self._notes[code] = "writes toward: " + ", ".join(repr(t) for t in up)
            else:
                self._notes[code] = ""
        return self._notes[code]

    @traitlets.observe("selected")
    def _node_position(self, change: dict[str, Any]) -> None:
        """A code selected from Python (or a linked view) is at its first node's token, unless the
        click that selected it named another node of that code."""
        frame = self.nodes_frame
        if not change["new"] or not len(frame):
            return
        at = frame.position[frame.code == change["new"]].tolist()
        if at and self.selected_position not in at:
            self.selected_position = int(at[0])

    # ------------------------------------------------------------- linking
    def link(self, other: CodeHeatmap | CodeDashboard | AblationPanel) -> None:
        """Wire this graph to another view of the same model.

        - a CodeHeatmap of the same prompt: select codes together; the heatmap's cells are coloured by
          their effect on this graph's target (kept up to date as removals change it);
        - a CodeDashboard (of an index of the same codebooks): a selected node opens its code there;
        - an AblationPanel of the same prompt: its edits hold under this graph (a slider moved there
          recomputes the graph), and a selected node moves the panel to that node's token.
        """
        if isinstance(other, CodeHeatmap):
            self._link_heatmap(other)
        elif isinstance(other, CodeDashboard):
            self._link_dashboard(other)
        elif isinstance(other, AblationPanel):
            self._link_panel(other)
        else:
            raise CodebookError(
                f"a graph links to a CodeHeatmap, a CodeDashboard or an AblationPanel; got {type(other).__name__}."
            )

    def _link_dashboard(self, dashboard: CodeDashboard) -> None:
        if list(dashboard._index.codebooks.labels) != list(self.labels):
            raise CodebookError("the dashboard's index holds other codebooks; build it from this graph's model.")
        self.on_select(lambda code: dashboard.show(code) if code else None)
        if self.selected:
            dashboard.show(self.selected)

    def _link_panel(self, panel: AblationPanel) -> None:
        if panel._model is not self._model or panel.tokens != self.tokens:
            raise CodebookError("the panel shows another prompt or model; make it from the same model and prompt.")
        if self._panel is not None:
            raise CodebookError("this graph is already linked to an ablation panel; make a new graph for another.")
        self._panel = panel

        def follow(change: dict[str, Any]) -> None:
            if change["name"] == "position" and panel.where != "token":
                return  # edits that hold everywhere do not depend on the panel's token
            self._recompute()

        panel.observe(self.guarded(follow), names=["edits", "mode", "where", "position"])
        self.observe(
            lambda change: setattr(panel, "position", change["new"]) if change["new"] >= 0 else None,
            names="selected_position",
        )
        self._recompute()

    def _link_heatmap(self, heatmap: CodeHeatmap) -> None:
        if heatmap.codebooks != self.codebooks or heatmap.tokens != self.tokens:
            raise CodebookError("the heatmap shows another prompt or model; make it from the same model and prompt.")
        heatmap.observe(lambda change: self.select(change["new"]), names="selected")
        self.observe(lambda change: heatmap.select(change["new"]), names="selected")

        def colour(_: Any = None) -> None:
            heatmap.show_effects(self.effects)

        self.observe(colour, names="node_effects")
        colour()

    # ------------------------------------------------------------ rendering
    def __repr__(self) -> str:
        return f"CodeGraph(tokens={len(self.tokens)}, nodes={len(self.nodes)}, edges={len(self.edges)})"

    def _fallback_html(self) -> str:
        frame = self.nodes_frame
        rows = "".join(
            f"<tr><td>{position}</td><td><code>{html.escape(str(token))}</code></td>"
            f"<td>{html.escape(str(code))}</td><td>{effect:+.3f}</td></tr>"
            for position, token, code, effect in zip(
                frame.position.tolist(), frame.token.tolist(), frame.code.tolist(), frame.effect.tolist(), strict=True
            )
        )
        return (
            f"<p>{html.escape(self.title)}</p><table><thead><tr><th>position</th><th>token</th><th>code</th>"
            f"<th>effect</th></tr></thead><tbody>{rows}</tbody></table>"
        )


def code_graph_view(
    model: CodebookModel,
    prompt: Any,
    target: Target,
    mode: str = "substitute",
    nodes: int = 12,
    min_edge: float = 0.0,
    index: CodeIndex | None = None,
) -> CodeGraph:
    """``cbwidgets.code_graph_view(model, prompt, NextToken(...))``: the codes that make a prediction."""
    return CodeGraph(model, prompt, target, mode, nodes, min_edge, index)
