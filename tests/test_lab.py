"""``cbwidgets lab``: the shipped notebooks copied into a folder without overwriting a participant's
copy, and a real JupyterLab opened on the first one."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from cbwidgets.errors import CodebookError
from cbwidgets.lab import copy_notebooks, shipped_notebooks
from tests.browser import shot
from tests.jupyter import free_port, stop


def test_notebooks_ship_in_teaching_order_and_edited_copies_are_kept(tmp_path: Path) -> None:
    names = [p.name for p in shipped_notebooks()]
    assert names[0] == "00_quickstart.ipynb" and names[-1] == "README.md" and len(names) >= 6
    assert not any("solution" in name for name in names)  # a teacher's, not copied for participants
    first = copy_notebooks(tmp_path / "mine")
    assert first.copied == names and first.kept == [] and first.first == "00_quickstart.ipynb"
    edited = tmp_path / "mine" / "02_code_intervention.ipynb"
    edited.write_text(edited.read_text().replace("Reading codes", "My notes on reading codes"))
    again = copy_notebooks(tmp_path / "mine")
    assert again.copied == [] and again.kept == ["02_code_intervention.ipynb"]
    assert "My notes on reading codes" in edited.read_text()  # the participant's work is untouched
    assert "kept your edited copy of: 02_code_intervention.ipynb" in again.report()
    (tmp_path / "mine" / "01_tokfsm.ipynb").unlink()  # deleting a copy brings the shipped one back
    assert copy_notebooks(tmp_path / "mine").copied == ["01_tokfsm.ipynb"]
    (tmp_path / "file").write_text("")
    with pytest.raises(CodebookError, match="is a file; give a folder"):
        copy_notebooks(tmp_path / "file")


def test_lab_command_starts_jupyterlab_on_the_first_notebook(tmp_path: Path, page: Any) -> None:
    port = free_port()
    folder = tmp_path / "workshop"
    env = {**os.environ, "JUPYTER_CONFIG_DIR": str(tmp_path / "config"), "JUPYTER_RUNTIME_DIR": str(tmp_path / "rt")}
    command = [sys.executable, "-m", "cbwidgets", "lab", "--folder", str(folder), "--port", str(port), "--no-browser"]
    log = tmp_path / "lab.log"
    with open(log, "w") as out:
        server = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=tmp_path)
    try:
        deadline = time.monotonic() + 90
        while True:  # the lab keeps JupyterLab's login token (users get it in the URL it prints)
            found = re.search(r"token=([0-9a-f]+)", log.read_text())
            token = found.group(1) if found else None
            try:
                if token is not None:
                    urllib.request.urlopen(f"http://127.0.0.1:{port}/api/status?token={token}", timeout=2)
                    break
            except OSError:
                pass
            assert server.poll() is None and time.monotonic() < deadline, log.read_text()[-3000:]
            time.sleep(0.5)
        said = log.read_text()
        assert (
            f"cbwidgets lab: tutorial notebooks in {folder}" in said
            and "copied: 00_quickstart.ipynb, 01_tokfsm.ipynb" in said
        )
        assert sorted(p.name for p in folder.iterdir()) == sorted(p.name for p in shipped_notebooks())
        # the server's front page leads to the first notebook, and it opens in a real browser
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/?token={token}", timeout=10) as reply:
            assert "/lab/tree/00_quickstart.ipynb" in reply.url, reply.url
        page.set_default_timeout(60_000)
        page.goto(f"http://127.0.0.1:{port}/?token={token}")  # what a participant's browser opens
        page.wait_for_function(  # the first notebook's own text, in the notebook panel that opened
            "[...document.querySelectorAll('.jp-Notebook')].some((n) => n.innerText.includes('00 Quickstart'))"
        )
        assert page.evaluate("window.location.pathname").endswith("/lab/tree/00_quickstart.ipynb")
        print("screenshot:", shot(page, "cbwidgets-lab"))
    finally:
        stop(server)


def test_lab_without_jupyterlab_says_how_to_install_it(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import importlib.util

    from cbwidgets.lab import lab_command

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "jupyterlab" else real(name, *a))
    with pytest.raises(CodebookError, match=r"pip install 'cbwidgets\[lab\]'"):
        lab_command(tmp_path, None, browser=False)
