"""Re-run the tutorial notebooks and store their outputs (they are deterministic), for readers on GitHub.

    python tools/execute_notebooks.py [cbwidgets/notebooks/01_tokfsm.ipynb ...]

CI does not need this: it runs the notebooks itself under nbval (``python -m pytest``).
Widget views are stripped from the stored outputs (they point at a kernel that is gone when the
file is reopened); each widget's text/HTML fallback stays, so a reader still sees its data.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import nbclient
import nbformat

ROOT = Path(__file__).resolve().parent.parent
WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"


def strip_widget_views(nb: nbformat.NotebookNode) -> None:
    for cell in nb.cells:
        for output in cell.get("outputs", []):
            output.get("data", {}).pop(WIDGET_VIEW, None)
    nb.metadata.pop("widgets", None)


def main(paths: list[str]) -> None:
    folder = ROOT / "cbwidgets" / "notebooks"
    # exercise notebooks stay without outputs (tools/make_exercises.py writes them from their solutions)
    solved = {p.name for p in folder.glob("solutions/*.ipynb")}
    found = [p for p in sorted(folder.glob("*.ipynb")) if p.name not in solved] + sorted(
        folder.glob("solutions/*.ipynb")
    )
    notebooks = [Path(p) for p in paths] or found
    for path in notebooks:
        nb = nbformat.read(path, as_version=4)
        start = time.perf_counter()
        nbclient.NotebookClient(
            nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(ROOT)}}
        ).execute()
        strip_widget_views(nb)
        nbformat.write(nb, path)
        print(f"{path.name}: {time.perf_counter() - start:.1f} s")


if __name__ == "__main__":
    main(sys.argv[1:])
