"""CodeGraph: the strongest codes for a prediction and their edges, drawn by the real bundle in
Chromium, clicked to select and to ablate, driven from Python too."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch

import cbwidgets
from cbwidgets import CodebookError
from cbwidgets.circuits import NextToken, ablation_effects, graph_edges
from cbwidgets.code_effects import code_logit_effect
from cbwidgets.index import CodeIndex
from cbwidgets.tokfsm import TokFSM, load_default
from tests.browser import mount, shot


@pytest.fixture(scope="module")
def model() -> Any:
    return load_default()


@pytest.fixture(scope="module")
def walk() -> Any:
    return TokFSM().sample(1, 21, seed=11)


@pytest.fixture(scope="module")
def target(model: Any, walk: Any) -> Any:
    return NextToken(int(model(walk).logits[0, -1].argmax()), measure="logprob")


@pytest.fixture
def graph(model: Any, walk: Any, target: Any) -> Any:
    return cbwidgets.code_graph_view(model, walk, target, mode="drop", nodes=8, min_edge=0.05)


def test_the_graph_holds_the_strongest_codes_and_their_edges(model: Any, walk: Any, target: Any, graph: Any) -> None:
    effects = ablation_effects(model, walk, target, mode="drop")
    top = effects.head(8)
    assert list(graph.nodes_frame.code) == list(top.code)
    assert graph.nodes.shape == (8, 4) and graph.nodes.dtype == np.int32
    assert [graph.codebooks.code_name(b, i) for _, b, i, _ in graph.nodes.tolist()] == list(top.code)
    np.testing.assert_allclose(graph.node_effects, top.effect, rtol=1e-6)
    edges = graph_edges(model, walk, top, "drop", 0.05)
    assert len(graph.edges) == len(edges) > 0 and (np.abs(graph.edge_effects) >= 0.05).all()
    for (source, sink), effect in zip(graph.edges.tolist(), graph.edge_effects.tolist(), strict=True):
        row = edges[(edges.source == top.code.iloc[source]) & (edges.target == top.code.iloc[sink])]
        assert row.effect.item() == pytest.approx(effect, rel=1e-6)
        assert top.position.iloc[source] <= top.position.iloc[sink]
    assert graph.title.startswith("the log-probability of ")
    assert graph.get_state()["nodes"]["dtype"] == "int32"  # binary arrays on the wire


def test_an_ablation_from_python_recomputes_the_graph(graph: Any) -> None:
    before = graph.effects.attrs["clean"]
    first = graph.nodes_frame.iloc[0]
    graph.ablate(first.code, np.int64(first.position))  # the library's own integers
    assert graph.ablated == [{"code": first.code, "position": int(first.position)}]
    assert graph.error == ""
    # a drop changes the target by exactly the effect that was measured for it
    assert graph.effects.attrs["clean"] == pytest.approx(before - first.effect, abs=1e-4)
    assert f"removed: {first.code}@{first.position}" in graph.status
    assert first.code not in set(graph.nodes_frame[graph.nodes_frame.position == first.position].code)
    graph.reset()
    assert graph.effects.attrs["clean"] == pytest.approx(before, abs=1e-6) and "removed: none" in graph.status


def test_bad_removals_say_what_to_do(graph: Any, model: Any) -> None:
    with pytest.raises(CodebookError, match="is not a removal"):
        graph.ablated = [{"code": "1.mlp.3"}]
    with pytest.raises(CodebookError, match="outside the prompt's 21 tokens"):
        graph.ablate("1.mlp.3", 40)
    with pytest.raises(CodebookError, match="not one integer"):
        graph.ablate("1.mlp.3", "end")
    with pytest.raises(CodebookError, match="click"):
        graph.click = "drag"
    assert graph.ablated == []
    with pytest.raises(CodebookError, match="one prompt"):
        cbwidgets.code_graph_view(model, TokFSM().sample(2, 9), NextToken(1))


def test_linked_heatmap_selects_together_and_is_coloured_by_effect(model: Any, walk: Any, graph: Any) -> None:
    heatmap = cbwidgets.heatmap(model, walk)
    graph.link(heatmap)
    assert np.isfinite(heatmap.effects).sum() == len(graph.effects)
    graph.select(graph.nodes_frame.code[1])
    assert heatmap.selected == graph.nodes_frame.code[1]
    heatmap.select(graph.nodes_frame.code[2])
    assert graph.selected == graph.nodes_frame.code[2]
    graph.ablate(graph.nodes_frame.code[0], graph.nodes_frame.position[0])  # the colours follow the removal
    assert np.isfinite(heatmap.effects).sum() == len(graph.effects)
    with pytest.raises(CodebookError, match="another prompt"):
        graph.link(cbwidgets.heatmap(model, walk[:, :9]))


def test_nodes_say_what_their_codes_are_about(model: Any, walk: Any, target: Any, graph: Any) -> None:
    assert len(graph.node_notes) == len(graph.nodes)
    for code, note in zip(graph.nodes_frame.code, graph.node_notes, strict=True):
        effect = code_logit_effect(model, code, top=4)
        assert note == "writes toward: " + ", ".join(repr(t) for t in effect[effect.effect > 0].token)
    index = CodeIndex.build(model, TokFSM().sample(40, 64, seed=5), progress=False)
    indexed = cbwidgets.code_graph_view(model, walk, target, mode="drop", nodes=8, index=index)
    for code, note in zip(indexed.nodes_frame.code, indexed.node_notes, strict=True):
        top = index.code_stats(code, top=4)["top_tokens"]
        shown = ", ".join(f"{t!r} ({n})" for t, n in top) or "nothing in the index"  # a rare code may not fire there
        assert note == f"fires on: {shown}"
    assert sum(note != "fires on: nothing in the index" for note in indexed.node_notes) >= 4
    with pytest.raises(CodebookError, match="other codebooks"):
        cbwidgets.code_graph_view(model, walk, target, index=CodeIndex.build(cbwidgets.storyteller(), ["a b"]))


def test_a_linked_dashboard_opens_the_selected_node(model: Any, graph: Any) -> None:
    index = CodeIndex.build(model, TokFSM().sample(40, 64, seed=5), progress=False)
    dashboard = cbwidgets.CodeDashboard(index, graph.nodes_frame.code[3], model)
    graph.link(dashboard)
    graph.select(graph.nodes_frame.code[1])
    assert dashboard.code == graph.nodes_frame.code[1] and dashboard.stats["code"] == graph.nodes_frame.code[1]
    graph.select("")  # clearing the selection leaves the dashboard where it is
    assert dashboard.code == graph.nodes_frame.code[1] and graph.error == ""


def test_a_linked_panel_edits_the_model_under_the_graph(model: Any, walk: Any, target: Any, graph: Any) -> None:
    panel = cbwidgets.ablation_panel(model, walk)
    graph.link(panel)
    clean = graph.effects.attrs["clean"]
    first = graph.nodes_frame.iloc[0]
    panel.edits = [{"code": first.code, "scale": np.float32(0.0)}]  # everywhere it fires, in substitute mode
    with model.ablate(first.code, mode="substitute"):
        expected = ablation_effects(model, walk, target, mode="drop")
    assert graph.effects.attrs["clean"] == pytest.approx(expected.attrs["clean"], abs=1e-5) != pytest.approx(clean)
    assert list(graph.nodes_frame.code) == list(expected.head(8).code)
    assert f"panel edits: {first.code}x0" in graph.status
    # a node selected in the graph moves the panel to its token, with or without a click's position
    last = graph.nodes_frame.iloc[-1]
    graph.select(last.code)
    assert graph.selected_position == int(last.position) and panel.position == int(last.position)
    panel.reset()
    assert graph.effects.attrs["clean"] == pytest.approx(clean, abs=1e-6) and "panel edits: none" in graph.status
    with pytest.raises(CodebookError, match="already linked"):
        graph.link(cbwidgets.ablation_panel(model, walk))
    with pytest.raises(CodebookError, match="another prompt"):
        cbwidgets.code_graph_view(model, walk, target, nodes=4).link(cbwidgets.ablation_panel(model, walk[:, :9]))
    with pytest.raises(CodebookError, match="links to a CodeHeatmap"):
        graph.link(object())  # type: ignore[arg-type]


def test_clicks_select_and_ablate_in_chromium(page: Any, graph: Any) -> None:
    mount(page, graph)
    assert page.locator(".cbw-graph-node").count() == 8
    assert page.locator(".cbw-graph-edge").count() == len(graph.edges)
    assert page.locator(".cbw-graph-title").inner_text() == graph.title
    node = page.locator(".cbw-graph-node").first
    name = node.get_attribute("data-name")
    node.hover()
    assert name in page.locator(".cbw-tooltip").inner_text()
    assert graph.node_notes[0].split(": ")[1] in page.locator(".cbw-tooltip").inner_text()
    print("screenshot:", shot(page, "code-graph-hover"))
    node.click()
    page.wait_for_selector(".cbw-graph-chosen")
    assert graph.selected == name and graph.selected_position == int(node.get_attribute("data-position"))
    print("screenshot:", shot(page, "code-graph"))
    page.locator(".cbw-graph-bar input[value='ablate']").check()
    page.wait_for_function("() => true")
    assert graph.click == "ablate"
    position = int(node.get_attribute("data-position"))
    page.locator(".cbw-graph-node").first.click()
    page.wait_for_function(
        "(n) => document.querySelector('.cbw-status').textContent.includes('removed: ' + n)", arg=name, timeout=60000
    )
    assert graph.ablated == [{"code": name, "position": position}]
    assert page.locator(".cbw-graph-title").inner_text() == graph.title
    page.locator(".cbw-graph-reset").click()
    page.wait_for_function(
        "() => document.querySelector('.cbw-status').textContent.includes('removed: none')", timeout=60000
    )
    assert graph.ablated == [] and page.blocked == [] and page.js_errors == []


def test_python_changes_reach_the_page(page: Any, graph: Any) -> None:
    mount(page, graph)
    graph.ablate(graph.nodes_frame.code[0], torch.tensor(int(graph.nodes_frame.position[0])))
    page.evaluate("cbwPull()")
    page.wait_for_function("() => document.querySelector('.cbw-status').textContent.includes('removed: ')")
    assert page.locator(".cbw-graph-node").count() == len(graph.nodes)
    graph.click = "ablate"
    page.evaluate("cbwPull()")
    page.wait_for_function("() => document.querySelector(\".cbw-graph-bar input[value='ablate']\").checked")
    assert page.js_errors == []
