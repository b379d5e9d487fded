"""End to end in marimo: the heatmap and the ablation panel wrapped in ``mo.ui.anywidget``, served by
a real ``marimo run`` and clicked in Chromium; the kernel answers as it does in Jupyter."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import expect

from tests.browser import shot
from tests.jupyter import free_port, stop, wait_until_up

APP = """import marimo

app = marimo.App()


@app.cell
def _():
    import marimo as mo

    import cbwidgets
    from cbwidgets.tokfsm import TokFSM, load_default

    model = load_default()
    prompt = TokFSM().sample(1, 41, seed=2)
    panel = mo.ui.anywidget(cbwidgets.ablation_panel(model, prompt))
    heat = mo.ui.anywidget(cbwidgets.heatmap(model, prompt))
    return heat, mo, panel


@app.cell
def _(heat, mo, panel):
    mo.vstack([panel, heat])
    return


@app.cell
def _(mo, panel):
    # marimo re-runs this cell when the panel's state changes: the kernel's own view of the edits
    mo.md(f"<span class='kernel-edits'>{panel.widget.edits} answered {panel.widget.answered}</span>")
    return


if __name__ == "__main__":
    app.run()
"""


@pytest.fixture(scope="module")
def marimo_app() -> Iterator[str]:
    if importlib.util.find_spec("marimo") is None:
        pytest.fail("marimo is needed for this test; it is in the [test] extra: pip install -e '.[test]'")
    with tempfile.TemporaryDirectory() as tmp:
        app, log = Path(tmp) / "app.py", Path(tmp) / "marimo.log"
        app.write_text(APP)
        port = free_port()
        command = [
            sys.executable,
            "-m",
            "marimo",
            "run",
            str(app),
            "--headless",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--no-token",
        ]
        with open(log, "w") as out:
            server = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, cwd=tmp, env={**os.environ})
        url = f"http://127.0.0.1:{port}"
        try:
            wait_until_up(server, url, log, "marimo", seconds=60)
            yield url
        finally:
            stop(server)


def test_heatmap_and_ablation_panel_in_marimo(marimo_app: str, page: Any) -> None:
    page.set_default_timeout(90_000)
    expect.set_options(timeout=60_000)
    page.goto(marimo_app)
    page.wait_for_selector(".cbw-ab-code")
    page.wait_for_selector(".cbw-hm-row")
    assert page.locator(".cbw-ablation .cbw-status").inner_text().startswith("edits: none")

    toggle = page.locator(".cbw-ab-code").nth(9)
    code = toggle.get_attribute("data-code")
    assert code is not None and code.startswith("1.mlp.")
    toggle.locator(".cbw-ab-toggle").check()
    page.locator(".cbw-ablation input[value='drop']").check()
    # marimo draws each widget in a shadow root: Playwright's locators look inside, querySelector does not
    status = page.locator(".cbw-ablation .cbw-status")
    expect(status).to_contain_text(f"edits: {code}x0; mode drop")  # the kernel's answer, painted
    expect(page.locator(".kernel-edits")).to_contain_text(f"'code': '{code}'")  # and the kernel holds it

    page.locator(".cbw-hm-row[data-t='3'] .cbw-hm-cell[data-n='9']").click()
    expect(page.locator(".cbw-heatmap .cbw-status")).to_contain_text("code 1.mlp.")
    print("screenshot:", shot(page, "marimo-e2e"))
    assert page.blocked == [], page.blocked
