"""End to end in ipywidgets 7's own front end (the classic Notebook 6 with widgetsnbextension 3.6 and
anywidget 0.9's extension): the widget stack Colab ships, in both wires. Runs in .ci/run's
Colab-versions environment; elsewhere it is skipped with the reason."""

from __future__ import annotations

from typing import Any

import pytest

from tests.jupyter import JupyterLab, open_classic
from tests.test_widgets_jupyterlab import CELLS, FSM, _click_fsm_explorer, _click_panel_and_heatmap


@pytest.mark.parametrize("wire", ["binary", "base64"])
def test_clicks_rerun_the_model_with_ipywidgets_7(classic_notebook: JupyterLab, page: Any, wire: str) -> None:
    versions = (
        "import anywidget, ipywidgets, os\n"
        f"os.environ['CBWIDGETS_WIRE'] = {wire!r}\n"
        "print('versions', ipywidgets.__version__, anywidget.__version__)"
    )
    shown = "ipywidgets.HTML(f\"<span class='wire-used'>{panel.wire}</span>\")"
    open_classic(classic_notebook, page, f"classic-{wire}.ipynb", [versions, *CELLS, shown])
    page.wait_for_selector(".wire-used")
    assert page.locator(".wire-used").inner_text() == wire
    assert "versions 7.7.1 0.9.21" in page.locator(".output_text").first.inner_text()
    _click_panel_and_heatmap(page, f"classic-notebook6-{wire}")


def test_the_fsm_explorer_with_ipywidgets_7_and_the_base64_wire(classic_notebook: JupyterLab, page: Any) -> None:
    """What a Colab participant gets: ipywidgets 7's VBox around the FSM view and a heatmap, arrays as
    base64 text, the link between them running in the kernel."""
    wire = "import os\nos.environ['CBWIDGETS_WIRE'] = 'base64'"
    open_classic(classic_notebook, page, "classic-fsm.ipynb", [wire, *FSM])
    _click_fsm_explorer(page, "classic-notebook6-fsm-explorer")
