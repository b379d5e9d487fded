"""FSMView and the table under it: the shipped TokFSM model's codes per state, checked against the
metrics computed another way, drawn by the real bundle in Chromium and clicked."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

import cbwidgets
from cbwidgets import CodebookError
from cbwidgets.tokfsm import TokFSM, codes_vs_neurons, load_default, state_codes, state_of
from cbwidgets.tokfsm.state_codes import STATE_CODE_COLUMNS
from tests.browser import mount, shot


@pytest.fixture(scope="module")
def model() -> Any:
    return load_default()


@pytest.fixture(scope="module")
def view(model: Any) -> Any:
    return cbwidgets.fsm_view(model)


@pytest.fixture
def fresh(view: Any) -> Any:
    """The module's view with nothing selected and no links or callbacks left by another test."""
    view.select_state(None)
    view.select("")
    view.per_codebook = 2
    return view


# ------------------------------------------------------------------ the table


def test_state_codes_agree_with_codes_vs_neurons(model: Any) -> None:
    """The best layer-1 MLP code per state, by F1 from the table, is the one codes_vs_neurons finds
    on the same walks (seed 2), with the same precision and recall: two routes, one answer."""
    fsm = TokFSM()
    table, occurrences = state_codes(model, fsm, num_sequences=256, length=64, seed=2)
    assert occurrences.sum() == 256 * len(fsm.state_ends(64))
    versus = codes_vs_neurons(model, fsm).set_index("state")
    mine = table[table.codebook == "1.mlp"].copy()
    mine["f1"] = 2 * mine.precision * mine.recall / (mine.precision + mine.recall)
    best = mine.sort_values(["f1", "id"], ascending=[False, True]).groupby("state").head(1).set_index("state")
    assert len(best) == len(versus) == fsm.num_states
    np.testing.assert_allclose(best.precision[versus.index], versus.code_precision, atol=1e-6)
    np.testing.assert_allclose(best.recall[versus.index], versus.code_recall, atol=1e-6)
    same = (best.code[versus.index] == versus.code).mean()
    assert same > 0.95, f"the best code differs on {1 - same:.0%} of states (ties aside, it must not)"


def test_state_codes_counts_are_consistent(model: Any) -> None:
    fsm = TokFSM()
    table, occurrences = state_codes(model, fsm, num_sequences=32, length=33, seed=5)
    assert list(table.columns) == list(STATE_CODE_COLUMNS)
    per_code = table.groupby("code").firings.transform("sum")
    np.testing.assert_allclose(table.precision, table.firings / per_code)
    np.testing.assert_allclose(table.recall, table.firings / occurrences[table.state_index])
    # k = 1: each codebook fires once per state read, so its firings add up to the reads
    assert (table.groupby("codebook").firings.sum() == occurrences.sum()).all()
    assert set(table.state) <= {fsm.state_text(s) for s in range(100)}


def test_layer_zero_mlp_codes_read_the_last_digit(model: Any) -> None:
    """A known answer of the shipped model: the layer-0 MLP code at a state's end depends on its last
    digit only, so every state a 0.mlp code fires at ends in the same digit."""
    table, _ = state_codes(model, TokFSM(), num_sequences=64, length=64)
    zero = table[table.codebook == "0.mlp"]
    assert zero.groupby("code").state.agg(lambda s: len({text[-1] for text in s})).max() == 1
    assert zero.state.str[-1].nunique() == 10


@pytest.mark.parametrize("value", [7, np.int64(7), torch.tensor(7), "07"])
def test_state_of_takes_the_forms_a_user_has(value: Any) -> None:
    assert state_of(TokFSM(), value) == 7


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("7", "'7' is not a state of this FSM; states are written '00'..'99'"),
        (100, "states are 0..99"),
        (-1, "states are 0..99"),
        (2.5, "give its number (7) or its digits ('07')"),
    ],
)
def test_state_of_refuses_with_the_valid_forms(value: Any, message: str) -> None:
    with pytest.raises(CodebookError, match=message.replace("(", r"\(").replace(")", r"\)").replace(".", r"\.")):
        state_of(TokFSM(), value)


def test_bad_arguments_are_explained(model: Any) -> None:
    with pytest.raises(CodebookError, match="length=2 holds no whole state"):
        state_codes(model, TokFSM(), length=2)
    with pytest.raises(CodebookError, match="the FSM needs 17"):
        cbwidgets.FSMView.from_model(model, TokFSM(base=16, digits=2, num_states=100))


# ------------------------------------------------------------------ Python side


def test_tables_follow_the_selection(fresh: Any, model: Any) -> None:
    view, fsm = fresh, TokFSM()
    with pytest.raises(CodebookError, match="no state is selected"):
        view.codes_for()
    with pytest.raises(CodebookError, match="no code is selected"):
        view.states_for()
    view.select_state(np.int64(13))
    assert view.state == "13" and view.selected_state == 13
    moves = view.transitions()
    assert set(moves.state[moves.edge]) == {fsm.state_text(int(s)) for s in fsm.edges[13]}
    assert moves.predicted.sum() == fsm.num_edges
    assert moves.probability.is_monotonic_decreasing
    codes = view.codes_for(codebook="layers.1.mlp")
    assert set(codes.codebook) == {"1.mlp"} and (codes.state == "13").all()
    view.select(("layers.1.mlp", np.int64(codes.id[0])))
    assert view.selected == codes.code[0]
    states = view.states_for()
    assert "13" in set(states.state) and states.precision.sum() == pytest.approx(1.0)


def test_refused_values_keep_the_old_ones(fresh: Any) -> None:
    fresh.select_state("47")
    for bad in ("4", 100, "x"):
        with pytest.raises(CodebookError):
            fresh.selected_state = bad
    assert fresh.state == "47"
    with pytest.raises(CodebookError, match="is not a code of this view"):
        fresh.select("9.mlp.1")
    assert fresh.selected == ""


def test_link_selects_a_code_in_both_views(model: Any) -> None:
    view = cbwidgets.fsm_view(model)
    heatmap = cbwidgets.heatmap(model, TokFSM().sample(1, 41, seed=0))
    heard: list[str] = []
    view.on_select(heard.append)
    view.link(heatmap)
    code = heatmap.code_at(8, "1.mlp")
    heatmap.select(code)
    assert view.selected == code and heard == [code]
    view.select(view.codes_for("13", "2.mlp").code[0])
    assert heatmap.selected == view.selected
    view.select("")
    assert heatmap.selected == ""
    other = cbwidgets.CodeHeatmap(["a"], np.zeros((1, 1), dtype=np.int64), ["x.mlp"])
    with pytest.raises(CodebookError, match="other codebooks"):
        view.link(other)


# ------------------------------------------------------------------ in Chromium


def test_clicks_select_in_python_and_draw_what_the_kernel_holds(page: Any, fresh: Any) -> None:
    view, fsm = fresh, TokFSM()
    states: list[str] = []
    view.on_state(states.append)
    mount(page, view)
    assert page.locator(".cbw-fsm-node").count() == 100
    page.locator(".cbw-fsm-node[data-s='13']").click()
    page.wait_for_selector(".cbw-fsm-title")
    assert view.selected_state == 13 and states[-1] == "13"
    assert page.locator(".cbw-fsm-title").inner_text().startswith("state 13")
    table = view.transitions()
    assert page.locator(".cbw-fsm-next").all_inner_texts() == list(table.state)
    edges = page.locator(".cbw-fsm-node.cbw-fsm-edge").evaluate_all("ns => ns.map(n => Number(n.dataset.s))")
    assert sorted(edges) == sorted(int(s) for s in fsm.edges[13])
    assert page.locator(".cbw-fsm-arrow").count() == len(table)
    wrong = page.locator(".cbw-fsm-arrow.cbw-fsm-wrong").count()
    assert wrong == int((table.predicted & ~table.edge).sum())

    chip = page.locator(".cbw-fsm-code").first
    name = chip.get_attribute("data-name")
    chip.click()
    page.wait_for_function("document.querySelector('.cbw-status').textContent.startsWith('code ')")
    assert view.selected == name
    lit = page.locator(".cbw-fsm-node.cbw-fsm-fires").evaluate_all("ns => ns.map(n => n.dataset.s)")
    assert sorted(lit, key=int) == sorted((str(s) for s in view.states_for().state_index), key=int)
    assert f"code {name} fires {int(view.states_for().firings.sum())} times" in page.locator(".cbw-status").inner_text()
    page.locator(".cbw-fsm-node[data-s='23']").hover()
    assert "state 23" in page.locator(".cbw-tooltip").inner_text()
    print("screenshot:", shot(page, "fsm-view"))

    chip.click()  # a second click clears the code
    page.wait_for_function("!document.querySelector('.cbw-status').textContent.startsWith('code ')")
    assert view.selected == "" and page.locator(".cbw-fsm-fires").count() == 0
    nxt = page.locator(".cbw-fsm-next").nth(2)  # walk on along a predicted transition
    target = nxt.inner_text()
    nxt.click()
    page.wait_for_function(
        "(t) => document.querySelector('.cbw-fsm-title').textContent.startsWith('state ' + t)", arg=target
    )
    assert view.state == target
    page.locator(f".cbw-fsm-node[data-s='{view.selected_state}']").click()  # a second click clears
    page.wait_for_selector(".cbw-fsm-hint")
    assert view.selected_state == -1 and states[-1] == ""
    assert page.blocked == [] and page.js_errors == []


def test_python_selections_reach_the_page(page: Any, fresh: Any) -> None:
    mount(page, fresh)
    fresh.select_state(torch.tensor(47))
    fresh.select(fresh.codes_for(codebook="0.mlp").code[0])
    page.evaluate("cbwPull()")
    page.wait_for_selector(".cbw-fsm-chosen")
    assert page.locator(".cbw-fsm-title").inner_text().startswith("state 47")
    assert page.locator(".cbw-fsm-chosen").get_attribute("data-name") == fresh.selected
    ends = {fsm_state[-1] for fsm_state in fresh.states_for().state}
    assert ends == {"7"}  # a layer-0 MLP code: every state it fires at ends in 7
    assert page.locator(".cbw-fsm-fires").count() == len(fresh.states_for())
    fresh.per_codebook = np.int64(1)  # one chip per codebook, as the library's integers come
    page.evaluate("cbwPull()")
    books = fresh.codes_for().codebook.nunique()
    page.wait_for_function(f"document.querySelectorAll('.cbw-fsm-code').length === {books}")
    assert page.js_errors == []


def test_the_exported_page_draws_and_clicks_offline(page: Any, fresh: Any, tmp_path: Path) -> None:
    fresh.select_state(13)
    path = tmp_path / "fsm.html"
    fresh.to_html(str(path))
    page.goto(path.as_uri())
    page.wait_for_selector(".cbw-fsm-title")
    assert page.locator(".cbw-fsm-node").count() == 100
    assert page.locator(".cbw-fsm-next").all_inner_texts() == list(fresh.transitions().state)
    page.locator(".cbw-fsm-node[data-s='47']").click()  # read-only, but clicks still select and draw
    page.wait_for_function("document.querySelector('.cbw-fsm-title').textContent.startsWith('state 47')")
    assert page.blocked == [] and page.js_errors == []


def test_an_error_in_a_widgets_own_code_is_told_apart_from_the_pages(page: Any, fresh: Any) -> None:
    """``page.widget_errors`` (what the end-to-end tests assert empty) catches an error thrown inside a
    widget's bundle, and not one thrown by the page's own scripts: the check can fail."""
    mount(page, fresh)
    page.evaluate("setTimeout(() => { throw new Error('the page itself'); })")
    page.evaluate("() => { window.cbwModel.get = () => { throw new Error('inside the widget'); }; }")
    page.locator(".cbw-fsm-node[data-s='5']").click()
    page.wait_for_timeout(200)
    assert "the page itself" in page.js_errors and len(page.widget_errors) == len(page.js_errors) - 1 >= 1
    assert all(error.startswith("inside the widget") for error in page.widget_errors)
