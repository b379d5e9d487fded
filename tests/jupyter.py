"""A real JupyterLab server on 127.0.0.1 for end-to-end widget tests, started and stopped by pytest."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

__all__ = ["JupyterLab", "jupyterlab", "lab_server", "notebook7", "open_notebook", "run_all", "stop"]


@dataclass
class JupyterLab:
    url: str
    root: Path
    log: Path


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="session")
def jupyterlab() -> Iterator[JupyterLab]:
    with lab_server() as lab:
        yield lab


class LabDidNotStart(RuntimeError):
    """JupyterLab exited or never answered /api/status; the message holds the end of its log."""


@pytest.fixture(scope="session")
def notebook7() -> Iterator[JupyterLab]:
    """Jupyter Notebook 7 (the classic-looking front end built on JupyterLab's parts)."""
    with lab_server("notebook") as server:
        yield server


@contextmanager
def lab_server(app: str = "jupyterlab") -> Iterator[JupyterLab]:
    """JupyterLab (or ``app="notebook"``: Notebook 7) on 127.0.0.1 and a free port, no token, quiet;
    stopped with SIGTERM on exit."""
    prefix = "LabApp" if app == "jupyterlab" else "JupyterNotebookApp"
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp)
        root, settings, workspaces = base / "notebooks", base / "settings", base / "workspaces"
        for folder in (root, settings, workspaces):
            folder.mkdir()
        # no "Jupyter news?" pop-up over the notebook
        news = settings / "@jupyterlab" / "apputils-extension" / "notification.jupyterlab-settings"
        news.parent.mkdir(parents=True)
        news.write_text(json.dumps({"fetchNews": "false", "checkForUpdates": False}))
        port = _free_port()
        log = base / "jupyterlab.log"
        env = {**os.environ, "JUPYTERLAB_SETTINGS_DIR": str(settings), "JUPYTERLAB_WORKSPACES_DIR": str(workspaces)}
        command = [
            sys.executable,
            "-m",
            app,
            "--no-browser",
            "--ip=127.0.0.1",
            f"--port={port}",
            f"--ServerApp.root_dir={root}",
            "--ServerApp.token=",
            "--ServerApp.password=",
            "--ServerApp.allow_root=True",
            "--ServerApp.disable_check_xsrf=True",
            f"--{prefix}.expose_app_in_browser=True",
        ]
        if app == "jupyterlab":
            command += [
                "--LabApp.news_url=None",
                "--LabServerApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
            ]
        with open(log, "w") as out:
            server = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=root)
        url = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + 90
            while True:
                try:
                    urllib.request.urlopen(f"{url}/api/status", timeout=2)
                    break
                except OSError as err:
                    if server.poll() is not None or time.monotonic() > deadline:
                        tail = log.read_text()[-3000:]
                        raise LabDidNotStart(f"{app} did not start; its log:\n{tail}") from err
                    time.sleep(0.5)
            yield JupyterLab(url, root, log)
        finally:
            stop(server)


def stop(server: subprocess.Popen[bytes]) -> None:
    """Stop a Jupyter server as Ctrl+C would (SIGTERM), and kill it if it has not ended in 20 s."""
    server.send_signal(signal.SIGTERM)
    try:
        server.wait(timeout=20)
    except subprocess.TimeoutExpired:
        server.kill()


_RUN_ALL = """async (wait) => {
  const app = window.jupyterapp;
  let panel = app.shell.currentWidget;
  for (let i = 0; i < 200 && !(panel && panel.sessionContext); i++) {
    await new Promise((r) => setTimeout(r, 100));
    panel = app.shell.currentWidget;
  }
  await panel.context.ready;
  await panel.sessionContext.ready;
  while (!panel.sessionContext.session || !panel.sessionContext.session.kernel ||
         panel.sessionContext.session.kernel.status !== "idle") {
    await new Promise((r) => setTimeout(r, 100));
  }
  const running = app.commands.execute("notebook:run-all-cells");  // settles when the last cell has run
  if (wait) await running;
}"""


def run_all(page: object, url: str, wait: bool = True) -> None:
    """Open a notebook in JupyterLab and run every cell once its kernel is ready; ``wait=False``
    returns once the cells are sent, to watch them while they run."""
    # ?reset: a fresh workspace, so notebooks opened by earlier tests do not come back and take focus
    page.goto(url + ("&" if "?" in url else "?") + "reset")  # type: ignore[attr-defined]
    page.wait_for_selector(".jp-Notebook")  # type: ignore[attr-defined]
    page.evaluate(_RUN_ALL, wait)  # type: ignore[attr-defined]


def open_notebook(
    lab: JupyterLab, page: object, name: str, cells: list[str], path: str = "/lab/tree/", wait: bool = True
) -> None:
    """Write a notebook of ``cells`` into the server's folder, open it and run it (``path="/notebooks/"``
    for Notebook 7; ``wait=False`` returns while the cells still run)."""
    import nbformat

    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in cells])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, lab.root / name)
    page.set_default_timeout(60_000)  # type: ignore[attr-defined]
    run_all(page, f"{lab.url}{path}{name}", wait)
