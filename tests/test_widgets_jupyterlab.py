"""End to end: JupyterLab, a kernel, the shipped model, Chromium clicking the AblationPanel."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path
from typing import Any

from tests.browser import shot
from tests.jupyter import FrontEnd, JupyterLab, open_notebook, run_all

CELLS = [
    "import json, ipywidgets\nimport cbwidgets\nfrom cbwidgets.tokfsm import TokFSM, load_default\n"
    "model = load_default()\nprompt = TokFSM().sample(1, 41, seed=2)",
    # the kernel's own numbers, printed into a Label whenever the panel answers a request
    "panel = cbwidgets.ablation_panel(model, prompt)\nkernel = ipywidgets.Label(layout={'width': '100%'})\n"
    "kernel.add_class('kernel-view')\n"
    "def report(_):\n"
    "    kernel.value = json.dumps({'edits': panel.edits, 'answered': panel.answered,\n"
    "                              'after': {t: round(a * 100, 1) for t, (_, a) in panel.predictions.items()}})\n"
    "panel.observe(report, 'answered')\n"
    "ipywidgets.VBox([panel, kernel])",
    "cbwidgets.heatmap(model, prompt)",
]


def test_click_reruns_the_model_in_the_kernel(front_end: FrontEnd, page: Any) -> None:
    front_end.open(page, "e2e.ipynb", CELLS)
    _click_panel_and_heatmap(page, front_end.shot_name("jupyterlab-e2e"))


def test_the_base64_wire_in_jupyterlab(jupyterlab: JupyterLab, page: Any) -> None:
    """The wire Colab gets (arrays as base64 text in the state), forced here through CBWIDGETS_WIRE in
    a real kernel: the views draw and the same clicks re-run the model."""
    cells = [
        "import os\nos.environ['CBWIDGETS_WIRE'] = 'base64'",
        *CELLS,
        "ipywidgets.HTML(f\"<span class='wire-used'>{panel.wire} {sorted(panel.get_state()['p_before'])}</span>\")",
    ]
    open_notebook(jupyterlab, page, "wire.ipynb", cells)
    page.wait_for_selector(".wire-used")
    assert page.locator(".wire-used").inner_text() == "base64 ['base64', 'dtype', 'shape']"
    _click_panel_and_heatmap(page, "jupyterlab-base64-wire")


def _click_panel_and_heatmap(page: Any, name: str) -> None:
    page.wait_for_selector(".cbw-ab-code")
    page.wait_for_selector(".cbw-hm-row")
    before = page.locator(".cbw-status").first.inner_text()
    assert before.startswith("edits: none")

    toggle = page.locator(".cbw-ab-code").nth(9)  # layer 1's MLP code at the last token
    code = toggle.get_attribute("data-code")
    assert code is not None and code.startswith("1.mlp.")
    box = toggle.locator(".cbw-ab-toggle").element_handle()
    toggle.locator(".cbw-ab-toggle").check()
    page.locator(".cbw-ablation input[value='drop']").check()
    page.wait_for_function(
        "(code) => { const k = document.querySelector('.kernel-view'); return k && k.textContent.includes(code); }",
        arg=code,
    )
    page.wait_for_function("document.querySelector('.cbw-ablation .cbw-status').textContent.includes('mode drop')")
    kernel = json.loads(page.locator(".kernel-view").inner_text())
    # the kernel echoes the edits back; the controls under the pointer must not be rebuilt for that
    assert box.evaluate("e => e.isConnected && e.checked")
    assert kernel["edits"] == [{"code": code, "scale": 0.0}]
    painted = page.evaluate(
        """() => Object.fromEntries([...document.querySelectorAll('.cbw-ab-pred[data-token]')].map(
            r => [r.dataset.token, r.querySelector('.cbw-after span').textContent]))"""
    )
    assert {t: float(v.rstrip("%")) for t, v in painted.items()} == kernel["after"]
    status = page.locator(".cbw-ablation .cbw-status").inner_text()
    assert re.search(rf"edits: {re.escape(code)}x0; mode drop, everywhere; ran in \d+ ms", status)

    # the heatmap in the same notebook: a click selects a code in the kernel's widget
    page.locator(".cbw-hm-row[data-t='3'] .cbw-hm-cell[data-n='9']").click()
    page.wait_for_function("document.querySelector('.cbw-heatmap .cbw-status').textContent.startsWith('code 1.mlp.')")
    print("screenshot:", shot(page, name))
    assert page.blocked == [] and page.widget_errors == [], (page.blocked, page.widget_errors)


EXPLORER = [
    "import cbwidgets\nfrom cbwidgets.index import CodeIndex\nfrom cbwidgets.tokfsm import TokFSM, load_default\n"
    "model = load_default()\nindex = CodeIndex.build(model, TokFSM().sample(100, 128, seed=11), progress=False)\n"
    "explorer = cbwidgets.code_explorer(index, model)\nexplorer",
]


def test_code_explorer(front_end: FrontEnd, page: Any) -> None:
    front_end.open(page, "explorer.ipynb", EXPLORER)
    page.wait_for_selector(".cbw-se-input")
    page.locator(".cbw-se-input").type("4(2)", delay=20)
    page.wait_for_function("document.querySelectorAll('.cbw-se-row[data-code]').length > 0")
    row = page.locator(".cbw-se-row[data-code]").nth(2)
    code = row.get_attribute("data-code")
    row.click()
    page.wait_for_function("(c) => document.querySelector('.cbw-db-title').textContent === 'code ' + c", arg=code)
    page.locator(".cbw-db-example").first.click()
    page.wait_for_function("document.querySelector('.cbw-heatmap .cbw-status').textContent.startsWith('code ' )")
    assert code in page.locator(".cbw-heatmap .cbw-status").inner_text()
    assert page.locator(".cbw-heatmap .cbw-hit").count() >= 1
    print("screenshot:", shot(page, front_end.shot_name("jupyterlab-explorer")))
    assert page.blocked == [] and page.widget_errors == [], (page.blocked, page.widget_errors)


STEERING = [
    "import cbwidgets\nfrom cbwidgets.index import CodeIndex\n"
    "from cbwidgets.stories import load_stories, split_stories\n"
    "model = cbwidgets.storyteller()\n_, held = split_stories(load_stories())\n"
    "index = CodeIndex.build(model, [s.text for s in held], progress=False)\n"
    "panel = cbwidgets.steering_panel(model, index, samples=2, max_new_tokens=240, seed=0)\npanel",
]


def test_steering_panel_streams_and_stops(front_end: FrontEnd, page: Any) -> None:
    front_end.open(page, "steering.ipynb", STEERING)
    page.wait_for_selector(".cbw-st-topic")
    page.locator(".cbw-st-topic").type("dragon", delay=20)
    page.wait_for_function("document.querySelectorAll('.cbw-st-row[data-code]').length > 0")
    ticked = page.locator(".cbw-st-pick:checked").count()
    assert ticked == 8
    page.locator(".cbw-st-go").click()
    page.wait_for_function("document.querySelector('.cbw-steering .cbw-status').textContent.startsWith('generating')")
    text = "() => document.querySelector('.cbw-st-steered .cbw-st-sample').textContent.length"
    first = page.evaluate(text)
    page.wait_for_function(f"({text})() > {first}")  # the text grows while the kernel samples
    assert page.locator(".cbw-st-go").is_disabled() and page.locator(".cbw-st-stop").is_enabled()
    page.locator(".cbw-st-stop").click()
    page.wait_for_function("document.querySelector('.cbw-steering .cbw-status').textContent.startsWith('stopped')")
    status = page.locator(".cbw-steering .cbw-status").inner_text()
    done = int(re.search(r"stopped after (\d+) tokens", status).group(1))  # type: ignore[union-attr]
    assert 0 < done < 240
    page.wait_for_function("!document.querySelector('.cbw-st-go').disabled")
    assert page.locator(".cbw-st-default .cbw-st-sample").count() == 2
    print("screenshot:", shot(page, front_end.shot_name("jupyterlab-steering")))
    assert page.blocked == [] and page.widget_errors == [], (page.blocked, page.widget_errors)


def test_run_all_of_the_intervention_notebook_paints_the_kernels_state(jupyterlab: JupyterLab, page: Any) -> None:
    """Run All of the shipped notebook: cells set the mode and edits from Python and then reset; the
    displayed panel must end on exactly the kernel's state (it used to read "mode substitute")."""
    shipped = Path(__file__).parents[1] / "cbwidgets" / "notebooks" / "02_code_intervention.ipynb"
    shutil.copy(shipped, jupyterlab.root / "ci.ipynb")
    page.set_default_timeout(120_000)
    run_all(page, f"{jupyterlab.url}/lab/tree/ci.ipynb")
    page.wait_for_function(
        "() => { const s = document.querySelector('.cbw-ablation .cbw-status');"
        " return s && s.textContent.startsWith('edits: none; mode drop'); }"
    )
    assert page.locator(".cbw-ablation input[value='drop']").is_checked()
    assert page.locator(".cbw-ablation .cbw-ab-toggle:checked").count() == 0
    assert page.locator(".cbw-ablation.cbw-busy").count() == 0
    print("screenshot:", shot(page, "jupyterlab-run-all-intervention"))
    assert page.blocked == [] and page.widget_errors == [], (page.blocked, page.widget_errors)


FSM = [
    "import cbwidgets\nfrom cbwidgets.tokfsm import load_default\nmodel = load_default()\n"
    "box = cbwidgets.fsm_explorer(model)\nbox",
]


def test_fsm_explorer_links_the_graph_and_the_heatmap_through_the_kernel(front_end: FrontEnd, page: Any) -> None:
    """A code chosen in the FSM view lights up in the heatmap and back: the link runs in the kernel,
    so each side changing proves a round trip."""
    front_end.open(page, "fsm.ipynb", FSM)
    _click_fsm_explorer(page, front_end.shot_name("jupyterlab-fsm-explorer"))


def _click_fsm_explorer(page: Any, name: str) -> None:
    page.wait_for_selector(".cbw-fsm-node")
    page.wait_for_selector(".cbw-hm-row")
    page.locator(".cbw-fsm-node[data-s='13']").click()
    page.wait_for_selector(".cbw-fsm-code")
    chip = page.locator(".cbw-fsm-code[data-name^='1.mlp.']").first
    code = chip.get_attribute("data-name")
    chip.click()
    page.wait_for_function(
        "(c) => document.querySelector('.cbw-heatmap .cbw-status').textContent.startsWith('code ' + c + ' ')", arg=code
    )
    cell = page.locator(".cbw-hm-row[data-t='20'] .cbw-hm-cell[data-n='14']")  # token 20, codebook 2.mlp
    code = f"2.mlp.{cell.inner_text()}"
    cell.click()
    page.wait_for_function(
        "(c) => document.querySelector('.cbw-fsm .cbw-status').textContent.startsWith('code ' + c + ' ')", arg=code
    )
    assert page.locator(".cbw-fsm-node.cbw-fsm-fires").count() >= 1  # it fires at a state's end (token 20)
    assert page.locator(".cbw-heatmap .cbw-hit").count() >= 1
    page.locator(".cbw-fsm-body").scroll_into_view_if_needed()
    print("screenshot:", shot(page, name))
    assert page.blocked == [] and page.widget_errors == [], (page.blocked, page.widget_errors)


GRAPH = [
    "import ipywidgets\nimport cbwidgets\nfrom cbwidgets.circuits import NextToken\n"
    "from cbwidgets.tokfsm import TokFSM, load_default\nmodel = load_default()\n"
    "walk = TokFSM().sample(1, 21, seed=11)\n"
    "target = NextToken(int(model(walk).logits[0, -1].argmax()), measure='logprob')\n"
    "graph = cbwidgets.code_graph_view(model, walk, target, mode='drop', nodes=8, min_edge=0.05)\n"
    "heatmap = cbwidgets.heatmap(model, walk)\ngraph.link(heatmap)\n"
    "from cbwidgets.index import CodeIndex\n"
    "index = CodeIndex.build(model, TokFSM().sample(40, 64, seed=5), progress=False)\n"
    "dashboard = cbwidgets.CodeDashboard(index, graph.nodes_frame.code[0], model)\n"
    "panel = cbwidgets.ablation_panel(model, walk)\ngraph.link(dashboard)\ngraph.link(panel)\n"
    "ipywidgets.VBox([graph, heatmap, dashboard, panel])",
]


def test_code_graph_ablates_through_the_kernel_and_recolours_the_heatmap(front_end: FrontEnd, page: Any) -> None:
    """A node clicked in "ablate" mode is removed in the kernel: the graph's status and title come
    back recomputed, and the linked heatmap's colours follow; a node clicked to select lights the
    same code up in the heatmap, opens it in the linked dashboard and moves the linked panel to its
    token."""
    front_end.open(page, "graph.ipynb", GRAPH)
    page.wait_for_selector(".cbw-graph-node")
    page.wait_for_selector(".cbw-hm-effect")
    page.wait_for_selector(".cbw-db-title")
    page.wait_for_selector(".cbw-ab-tok")
    opened = page.locator(".cbw-db-title").inner_text()
    at = page.locator(".cbw-ab-tok.cbw-selected").get_attribute("data-t")
    nodes = page.locator(".cbw-graph-node")
    node = next(  # a node the dashboard does not show yet, at a token the panel is not on
        n
        for n in (nodes.nth(i) for i in range(nodes.count()))
        if n.get_attribute("data-position") != at and f"code {n.get_attribute('data-name')}" != opened
    )
    name, position = node.get_attribute("data-name"), node.get_attribute("data-position")
    node.click()
    page.wait_for_function(
        "(c) => document.querySelector('.cbw-heatmap .cbw-status').textContent.startsWith('code ' + c + ' ')", arg=name
    )
    page.wait_for_function("(c) => document.querySelector('.cbw-db-title').textContent === 'code ' + c", arg=name)
    page.wait_for_function(
        "(t) => { const s = document.querySelector('.cbw-ab-tok.cbw-selected'); return s && s.dataset.t === t; }",
        arg=position,
    )
    page.locator(".cbw-db-title").scroll_into_view_if_needed()
    print("screenshot:", shot(page, front_end.shot_name("jupyterlab-code-graph-linked")))
    title = page.locator(".cbw-graph-title").inner_text()
    page.locator(".cbw-graph-bar input[value='ablate']").check()
    page.locator(".cbw-graph-node").first.click()
    page.wait_for_function(
        "() => document.querySelector('.cbw-graph .cbw-status').textContent.includes('removed: ') && "
        "!document.querySelector('.cbw-graph .cbw-status').textContent.includes('removed: none')",
        timeout=120000,
    )
    assert page.locator(".cbw-graph-title").inner_text() != title  # the prediction moved
    print("screenshot:", shot(page, front_end.shot_name("jupyterlab-code-graph")))
    assert page.blocked == [] and page.widget_errors == [], (page.blocked, page.widget_errors)
