"""Code labels in every view that shows a code: from Python and from the page, kept current."""

from __future__ import annotations

import gc
import weakref
from typing import Any

import pytest
import torch

import cbwidgets
from cbwidgets.circuits import NextToken
from cbwidgets.index import CodeIndex
from cbwidgets.tokfsm import TokFSM, load_default
from tests.browser import shot
from tests.harness import mount
from tests.jupyter import JupyterLab, execute, open_notebook


@pytest.fixture()
def model() -> Any:
    return load_default()  # a fresh one per test: labels are the model's own state


@pytest.fixture(scope="module")
def walk() -> torch.Tensor:
    return TokFSM().sample(1, 21, seed=11)


@pytest.fixture(scope="module")
def index() -> CodeIndex:
    return CodeIndex.build(load_default(), TokFSM().sample(40, 64, seed=5), progress=False)


def _fired(model: Any, walk: torch.Tensor) -> str:
    """A code that fires on the walk (its last token's first MLP code)."""
    return str(model(walk).codes.to_frame().query("codebook == '1.mlp'").code.iloc[-1])


def test_every_view_of_the_model_shows_the_labels_of_its_codes(model: Any, walk: torch.Tensor, index: Any) -> None:
    code = _fired(model, walk)
    heatmap = cbwidgets.heatmap(model, walk)
    panel = cbwidgets.ablation_panel(model, walk)
    search = cbwidgets.CodeSearch(index, "1", labels=model.labels)
    steer = cbwidgets.SteeringPanel(model, codes=[code])
    graph = cbwidgets.code_graph_view(model, walk, NextToken(int(model(walk).logits[0, -1].argmax())), nodes=6)
    views = [heatmap, panel, search, steer, graph]
    assert all(view.code_labels == {} for view in views)
    model.labels.set(code, "the last digit")
    assert heatmap.code_labels == {code: "the last digit"} and panel.code_labels == {code: "the last digit"}
    assert steer.code_labels == {code: "the last digit"}
    assert search.code_labels == ({code: "the last digit"} if code in search.code_names else {})
    graph_code = str(graph.nodes_frame.code.iloc[0])
    model.labels.set(graph_code, "strongest")
    assert graph.code_labels.get(graph_code) == "strongest"
    assert "9.9.9" not in heatmap.code_labels  # only the codes a view shows travel to it
    with torch.no_grad():  # retraining moves the code: every view marks its label stale
        book = model.names.codebooks[model.names.index_of(code.rsplit(".", 1)[0])]
        model.attached[str(book.site)].vectors[book.group, int(code.rsplit(".", 1)[1])] *= 1.5
    heatmap.refresh_labels()
    assert heatmap.code_labels[code] == "(stale) the last digit"
    model.labels.remove(code)
    assert code not in heatmap.code_labels and code not in panel.code_labels


def test_the_dashboard_edits_the_models_label_and_says_when_it_is_stale(model: Any, index: CodeIndex) -> None:
    code = index.search("1").code.iloc[0]
    dash = cbwidgets.CodeDashboard(index, code, model)
    assert (dash.label, dash.label_status) == ("", "none")
    dash.set_state({"label": "  fires on   ones ", "request": 1})  # what the page's box sends
    assert model.labels.get(code).text == "fires on ones" and dash.label == "fires on ones"
    assert dash.label_status == "current" and dash.answered == 1 and dash.error == ""
    assert dash.status == f"labelled {code}: fires on ones (model.save_pretrained keeps it)"
    dash.set_state({"label": "x" * 300, "request": 2})  # refused: the box goes back to the label held
    assert "short phrase" in dash.error and dash.label == "fires on ones"
    model.labels.set(code, "set from Python")  # the dashboard follows
    assert dash.label == "set from Python" and model.labels.get(code).text == "set from Python"
    other = dash.similar[0]["code"]
    model.labels.set(other, "a neighbour")
    assert dash.code_labels[other] == "a neighbour"  # the similar codes show their labels too
    dash.show(other)
    assert (dash.label, dash.label_status) == ("a neighbour", "current")
    dash.set_state({"label": "", "request": 3})  # an empty label removes it
    assert other not in model.labels and dash.status == f"removed the label of {other}"
    bare = cbwidgets.CodeDashboard(index, code)
    assert bare.label_status == ""
    bare.set_state({"label": "nowhere to keep it", "request": 1})
    assert "labels live in the model" in bare.error and bare.label == ""


def test_the_dashboard_suggests_scored_rules_and_adopts_one(model: Any, index: CodeIndex) -> None:
    code = index.search("4(2)").code.iloc[0]
    dash = cbwidgets.CodeDashboard(index, code, model)
    dash.set_state({"command": "suggest", "request": 1})  # the page's "suggest" button
    assert dash.error == "" and 1 <= len(dash.suggestions) <= 5
    first = dash.suggestions[0]
    assert first["label"].startswith(first["phrase"] + " (precision ")
    dash.set_state({"adopted": 0, "request": 2})  # a click on the first suggestion
    label = model.labels.get(code)
    assert label.text == first["phrase"] and repr(first["pattern"]) in label.note and "held-out precision" in label.note
    assert dash.label == first["phrase"] and dash.adopted == -1
    dash.show(index.search("4(2)").code.iloc[1])
    assert dash.suggestions == []  # another code: its own suggestions, on request
    with pytest.raises(cbwidgets.CodebookError, match="press suggest"):
        dash.adopt(0)


def test_labels_hold_their_followers_weakly(model: Any) -> None:
    """A view that is gone is not kept alive by the labels it followed, nor called."""

    class Follower:
        calls = 0

        def refresh(self) -> None:
            Follower.calls += 1

    follower = Follower()
    model.labels.follow(follower.refresh)
    model.labels.set("1.mlp.3", "one")
    assert Follower.calls == 1
    gone = weakref.ref(follower)
    del follower
    gc.collect()
    assert gone() is None
    model.labels.set("1.mlp.3", "two")
    assert Follower.calls == 1 and model.labels._followers == []


def test_a_label_typed_in_the_dashboard_reaches_the_model(
    page: Any, model: Any, index: CodeIndex, walk: torch.Tensor
) -> None:
    code = _fired(model, walk)
    dash = cbwidgets.CodeDashboard(index, code, model)
    mount(page, dash)
    box = page.locator(".cbw-db-label")
    box.fill("the digit after a state")
    box.press("Enter")
    page.wait_for_function("() => window.cbwSent.some((m) => m.label === 'the digit after a state')")
    assert model.labels.get(code).text == "the digit after a state"
    print("screenshot:", shot(page, "dashboard-label"))
    assert page.blocked == [] and page.js_errors == []


def test_the_heatmap_tooltip_and_status_name_a_codes_label(page: Any, model: Any, walk: torch.Tensor) -> None:
    code = _fired(model, walk)
    model.labels.set(code, "the digit after a state")
    heatmap = cbwidgets.heatmap(model, walk)
    mount(page, heatmap)
    position = int(heatmap.positions(code)[0])
    book = heatmap.labels.index(code.rsplit(".", 1)[0])
    cell = page.locator(f".cbw-hm-row[data-t='{position}'] .cbw-hm-cell[data-n='{book}']")
    cell.hover()  # scrolls the cell into view, and a scroll hides the tooltip: point at it again
    cell.hover(position={"x": 4, "y": 4})
    page.wait_for_selector(".cbw-tooltip:not([hidden])")
    assert f'{code} "the digit after a state"' in page.locator(".cbw-tooltip").inner_text()
    print("screenshot:", shot(page, "heatmap-label-tooltip"))
    heatmap.select(code)
    page.evaluate("window.cbwPull()")
    page.wait_for_function(
        "(c) => document.querySelector('.cbw-status').textContent.startsWith('code ' + c + ' \"the digit')", arg=code
    )
    assert page.blocked == [] and page.js_errors == []


RESTART = [
    "import os\nimport cbwidgets\nfrom cbwidgets import CodebookModel\nfrom cbwidgets.index import CodeIndex\n"
    "from cbwidgets.tokfsm import TokFSM, load_default\n"
    "saved = os.path.isdir('labelled-model')  # the second run: the model saved before the restart\n"
    "model = CodebookModel.from_pretrained('labelled-model') if saved else load_default()\n"
    "index = CodeIndex.build(model, TokFSM().sample(40, 64, seed=5), progress=False)\n"
    "code = index.search('4(2)').code.iloc[0]",
    "dash = cbwidgets.CodeDashboard(index, code, model)\ndash",
]


def test_a_label_typed_saved_and_reloaded_across_a_kernel_restart(jupyterlab: JupyterLab, page: Any) -> None:
    """The user's path in JupyterLab: type a label in the dashboard, save the model from the kernel,
    restart the kernel (the dashboard says it has lost its kernel, and an edit then is not taken as
    saved), run the notebook again on the saved folder: the new dashboard shows the label, current."""
    open_notebook(jupyterlab, page, "labels-restart.ipynb", RESTART)
    code = page.locator(".cbw-db-title").inner_text().removeprefix("code ")
    box = page.locator(".cbw-db-label")
    box.fill("a 2 after a 4")
    box.press("Enter")
    page.wait_for_function("document.querySelector('.cbw-dashboard .cbw-status').textContent.startsWith('labelled')")
    error = execute(
        page,
        "assert model.labels.get(code).text == 'a 2 after a 4', model.labels.to_frame()\n"
        "model.save_pretrained('labelled-model')",
    )
    assert error is None, error
    assert "a 2 after a 4" in (jupyterlab.root / "labelled-model" / "labels.json").read_text()

    page.evaluate("() => { window.jupyterapp.commands.execute('notebook:restart-kernel'); }")  # Kernel menu
    page.locator(".jp-Dialog .jp-mod-accept").click()  # "Restart"
    page.wait_for_function("document.querySelector('.cbw-dashboard').classList.contains('cbw-disconnected')")
    box.fill("typed after the restart")
    box.press("Enter")
    notice = page.locator(".cbw-dashboard .cbw-notice")
    assert notice.is_visible() and notice.inner_text().startswith("This view has lost its kernel")
    assert page.locator(".cbw-dashboard.cbw-busy").count() == 0
    said = page.locator(".cbw-dashboard .cbw-status").inner_text()  # still the answer before the restart
    assert said == f"labelled {code}: a 2 after a 4 (model.save_pretrained keeps it)"
    print("screenshot:", shot(page, "dashboard-label-kernel-restarted"))

    page.evaluate(_RUN_AGAIN)
    page.wait_for_selector(".cbw-dashboard:not(.cbw-disconnected) .cbw-db-label")
    fresh = page.locator(".cbw-dashboard:not(.cbw-disconnected) .cbw-db-label")
    page.wait_for_function("(e) => e.value === 'a 2 after a 4'", arg=fresh.element_handle())
    assert not fresh.evaluate("e => e.classList.contains('cbw-stale')")
    assert "typed after the restart" not in (jupyterlab.root / "labelled-model" / "labels.json").read_text()
    print("screenshot:", shot(page, "dashboard-label-reloaded"))
    assert page.blocked == [] and page.widget_errors == [], (page.blocked, page.widget_errors)


_RUN_AGAIN = """async () => {
  const panel = window.jupyterapp.shell.currentWidget;
  while (!panel.sessionContext.session.kernel || panel.sessionContext.session.kernel.status !== "idle") {
    await new Promise((r) => setTimeout(r, 100));
  }
  await window.jupyterapp.commands.execute("notebook:run-all-cells");
}"""
