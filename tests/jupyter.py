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

__all__ = [
    "FrontEnd",
    "JupyterLab",
    "classic_notebook",
    "free_port",
    "front_end",
    "jupyterlab",
    "lab_server",
    "notebook7",
    "open_classic",
    "open_notebook",
    "run_all",
    "stop",
    "wait_until_up",
]


@dataclass
class JupyterLab:
    url: str
    root: Path
    log: Path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="session")
def jupyterlab() -> Iterator[JupyterLab]:
    with lab_server() as lab:
        yield lab


class LabDidNotStart(RuntimeError):
    """A server (JupyterLab, Notebook, marimo) exited or never answered; the message holds the end of its log."""


@pytest.fixture(scope="session")
def notebook7() -> Iterator[JupyterLab]:
    """Jupyter Notebook 7 (the classic-looking front end built on JupyterLab's parts). Only the
    Colab-versions run of .ci/run lacks it (it has Notebook 6 instead); anywhere else it must be there."""
    _require_notebook(classic=False)
    with lab_server("notebook") as server:
        yield server


@dataclass(frozen=True)
class FrontEnd:
    """A front end a workshop may open (JupyterLab 4 or Notebook 7) and the path its notebooks live under."""

    name: str
    server: JupyterLab
    path: str

    def open(self, page: object, name: str, cells: list[str], wait: bool = True) -> None:
        open_notebook(self.server, page, name, cells, path=self.path, wait=wait)

    def shot_name(self, name: str) -> str:
        return name if self.name == "jupyterlab" else name.replace("jupyterlab", self.name)


@pytest.fixture(params=["jupyterlab", "notebook7"])
def front_end(request: pytest.FixtureRequest) -> FrontEnd:
    """Each widget's end-to-end test runs in both front ends (their widget managers differ in detail)."""
    server = request.getfixturevalue(request.param)
    return FrontEnd(request.param, server, "/lab/tree/" if request.param == "jupyterlab" else "/notebooks/")


@pytest.fixture(scope="session")
def classic_notebook() -> Iterator[JupyterLab]:
    """The classic Notebook 6 with ipywidgets 7's own front end (widgetsnbextension 3.6): the widget
    stack Colab ships. Only the Colab-versions run of .ci/run installs it; there it must not be missing."""
    _require_notebook(classic=True)
    with lab_server("classic") as server:
        yield server


def _require_notebook(classic: bool) -> None:
    """One environment has one Notebook: 6 in the Colab-versions run (CBWIDGETS_EXPECT_CLASSIC set),
    7 everywhere else. The one that belongs here must be installed (else fail); the other is skipped
    with the reason."""
    import notebook

    version = notebook.__version__
    if version.startswith("6.") == classic:
        return
    if bool(os.environ.get("CBWIDGETS_EXPECT_CLASSIC")) == classic:
        wanted = "the classic Notebook 6.5 (CBWIDGETS_EXPECT_CLASSIC is set)" if classic else "Notebook 7"
        pytest.fail(f"{wanted} is needed here but notebook {version} is installed.")
    pytest.skip(
        f"the classic Notebook 6 is not installed here (notebook {version}); .ci/run's Colab-versions run installs it"
        if classic
        else "the Colab-versions run has the classic Notebook 6, not Notebook 7 (tested in the main run)"
    )


@contextmanager
def lab_server(app: str = "jupyterlab") -> Iterator[JupyterLab]:
    """JupyterLab (or ``app="notebook"``: Notebook 7; ``"classic"``: Notebook 6) on 127.0.0.1 and a
    free port, no token, quiet; stopped with SIGTERM on exit."""
    prefix = {"jupyterlab": "LabApp", "notebook": "JupyterNotebookApp", "classic": "NotebookApp"}[app]
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp)
        root, settings, workspaces = base / "notebooks", base / "settings", base / "workspaces"
        for folder in (root, settings, workspaces):
            folder.mkdir()
        # no "Jupyter news?" pop-up over the notebook
        news = settings / "@jupyterlab" / "apputils-extension" / "notification.jupyterlab-settings"
        news.parent.mkdir(parents=True)
        news.write_text(json.dumps({"fetchNews": "false", "checkForUpdates": False}))
        port = free_port()
        log = base / "jupyterlab.log"
        env = {**os.environ, "JUPYTERLAB_SETTINGS_DIR": str(settings), "JUPYTERLAB_WORKSPACES_DIR": str(workspaces)}
        command = [
            sys.executable,
            "-m",
            "notebook" if app == "classic" else app,
            "--no-browser",
            "--ip=127.0.0.1",
            f"--port={port}",
            f"--ServerApp.root_dir={root}",
            "--ServerApp.token=",
            "--ServerApp.password=",
            "--ServerApp.allow_root=True",
            "--ServerApp.disable_check_xsrf=True",
        ]
        if app == "classic":  # Notebook 6's own server takes its settings as NotebookApp's
            command = [arg.replace("--ServerApp.", "--NotebookApp.") for arg in command]
            command = [arg.replace("root_dir", "notebook_dir") for arg in command]
        else:
            command.append(f"--{prefix}.expose_app_in_browser=True")
        if app == "jupyterlab":
            command += [
                "--LabApp.news_url=None",
                "--LabServerApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
            ]
        with open(log, "w") as out:
            server = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=root)
        url = f"http://127.0.0.1:{port}"
        try:
            wait_until_up(server, f"{url}/api/status", log, app, seconds=90)
            yield JupyterLab(url, root, log)
        finally:
            stop(server)


def wait_until_up(server: subprocess.Popen[bytes], url: str, log: Path, name: str, seconds: float) -> None:
    """Poll ``url`` until the server answers; LabDidNotStart, with the end of its log, if it exits or
    ``seconds`` pass first."""
    deadline = time.monotonic() + seconds
    while True:
        try:
            urllib.request.urlopen(url, timeout=2)
            return
        except OSError as err:
            if server.poll() is not None or time.monotonic() > deadline:
                raise LabDidNotStart(f"{name} did not start; its log:\n{log.read_text()[-3000:]}") from err
            time.sleep(0.5)


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


_EXECUTE = """async (code) => {
  const kernel = window.jupyterapp.shell.currentWidget.sessionContext.session.kernel;
  const future = kernel.requestExecute({ code, store_history: false });
  let error = null;
  future.onIOPub = (msg) => { if (msg.header.msg_type === "error") error = msg.content.evalue; };
  await future.done;
  return error;
}"""


def execute(page: object, code: str) -> str | None:
    """Run ``code`` in the kernel of JupyterLab's current notebook, as the user would in a new cell
    (after every widget message the page sent before it); its error's text, or None."""
    return page.evaluate(_EXECUTE, code)  # type: ignore[attr-defined,no-any-return]


def open_notebook(
    lab: JupyterLab, page: object, name: str, cells: list[str], path: str = "/lab/tree/", wait: bool = True
) -> None:
    """Write a notebook of ``cells`` into the server's folder, open it and run it (``path="/notebooks/"``
    for Notebook 7; ``wait=False`` returns while the cells still run)."""
    _write_notebook(lab.root / name, cells)
    page.set_default_timeout(60_000)  # type: ignore[attr-defined]
    run_all(page, f"{lab.url}{path}{name}", wait)


def _write_notebook(path: Path, cells: list[str], trusted: bool = False) -> None:
    """A notebook of code ``cells`` on the python3 kernel; ``trusted`` signs it, as a notebook its user
    wrote (the classic Notebook runs no widget output of an untrusted one)."""
    import nbformat

    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in cells])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    if trusted:
        from nbformat.sign import NotebookNotary

        NotebookNotary().sign(nb)
    nbformat.write(nb, path)


_CLASSIC_RUN_ALL = """async () => {
  const ready = () => window.Jupyter && Jupyter.notebook && Jupyter.notebook._fully_loaded &&
    Jupyter.notebook.kernel && Jupyter.notebook.kernel.is_connected() && Jupyter.WidgetManager;
  while (!ready()) await new Promise((r) => setTimeout(r, 100));
  await new Promise((r) => setTimeout(r, 1000));  // the widget manager asks the kernel for its widgets first
  Jupyter.notebook.execute_all_cells();
}"""


def open_classic(server: JupyterLab, page: object, name: str, cells: list[str]) -> None:
    """``open_notebook`` for the classic Notebook 6: write, open, and run every cell (returns once
    they are sent)."""
    _write_notebook(server.root / name, cells, trusted=True)
    page.set_default_timeout(60_000)  # type: ignore[attr-defined]
    page.goto(f"{server.url}/notebooks/{name}")  # type: ignore[attr-defined]
    page.evaluate(_CLASSIC_RUN_ALL)  # type: ignore[attr-defined]
